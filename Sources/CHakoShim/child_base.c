// The bottom of the clone → exec path: what every step after clone() may call
// (spawn.c's container child, oci_init.c's OCI steps, launch.c's parent side,
// userns.c). Async-signal-safe: only syscalls and pure functions, no malloc,
// no stdio, no locks. Calls nothing else of CHakoShim: the path runs one way,
// launch.c → spawn.c → oci_init.c → child_base.c (spawn_internal.h).
#include "hako_shim.h"
#include "spawn_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_clone3
#define SYS_clone3 435
#endif

size_t s_len(const char *s) { size_t n = 0; while (s[n]) n++; return n; }

// Appends src to dst (capacity cap); returns 0, or -1 when it would not fit.
int s_cat(char *dst, size_t cap, const char *src) {
    size_t a = s_len(dst), b = s_len(src);
    if (a + b + 1 > cap) return -1;
    memcpy(dst + a, src, b + 1);
    return 0;
}

void s_utoa(unsigned long v, char *out) {
    char tmp[24]; int i = 0;
    do { tmp[i++] = (char)('0' + v % 10); v /= 10; } while (v);
    int j = 0;
    while (i) out[j++] = tmp[--i];
    out[j] = 0;
}

void s_itoa(long v, char *out) {
    if (v >= 0) { s_utoa((unsigned long)v, out); return; }
    out[0] = '-';
    s_utoa(-(unsigned long)v, out + 1);
}

void fd_path(int fd, char out[32]) {
    out[0] = 0;
    s_cat(out, 32, "/proc/self/fd/");
    char n[24]; s_itoa(fd, n);
    s_cat(out, 32, n);
}

int write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) { if (errno == EINTR) continue; return -1; }
        p += w; n -= (size_t)w;
    }
    return 0;
}

int write_file(const char *path, const char *data) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    int r = write_all(fd, data, s_len(data));
    int e = errno;
    close(fd);
    errno = e;
    return r;
}

ssize_t read_full(int fd, void *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r < 0) { if (errno == EINTR) continue; return -1; }
        if (r == 0) break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}



__attribute__((noreturn))
void child_fail(struct child *c, int stage, int err, const char *detail) {
    struct hako_failure f;
    memset(&f, 0, sizeof f);
    f.stage = stage;
    f.err = err;
    if (detail) {
        size_t n = s_len(detail);
        if (n >= sizeof f.detail) n = sizeof f.detail - 1;
        memcpy(f.detail, detail, n);
    }
    write_all(c->err_w, &f, sizeof f);
    _exit(127);
}

// A new program starts with no signal blocked and every disposition at its
// default: nothing of the runtime's own signal handling leaks into it.
void reset_signals(void) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < 65; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        sigaction(sig, &dfl, NULL);
    }
}

long clone3_raw(uint64_t flags, int *pidfd, int cgroup_fd) {
    struct clone_args a;
    memset(&a, 0, sizeof a);
    a.flags = flags;
    a.exit_signal = (flags & (CLONE_PARENT | CLONE_THREAD)) ? 0 : SIGCHLD;
    if (flags & CLONE_PIDFD) a.pidfd = (uint64_t)(uintptr_t)pidfd;
    if (flags & CLONE_INTO_CGROUP) a.cgroup = (uint64_t)cgroup_fd;
    return syscall(SYS_clone3, &a, sizeof a);
}

long clone3_placed(uint64_t flags, int *pidfd, int cgroup_fd, int *placed) {
    long pid = -1;
    *placed = 0;
    if (cgroup_fd >= 0) {
        pid = clone3_raw(flags | CLONE_INTO_CGROUP, pidfd, cgroup_fd);
        if (pid >= 0) *placed = 1;
    }
    if (pid < 0) pid = clone3_raw(flags, pidfd, -1);
    return pid;
}

const char *env_path(const struct hako_spec *s) {
    for (int i = 0; i < s->envc; i++)
        if (strncmp(s->envp[i], "PATH=", 5) == 0) return s->envp[i] + 5;
    return "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
}
