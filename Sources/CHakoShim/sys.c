// Syscalls glibc does not wrap, constants the Glibc module hides, and small
// fd helpers. Everything here is async-signal-safe unless noted.
#include <malloc.h>
#include "hako_shim.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/openat2.h>
#include <sched.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/timex.h>
#include <termios.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

const uint64_t HAKO_CLONE_NEWNS = CLONE_NEWNS, HAKO_CLONE_NEWPID = CLONE_NEWPID,
    HAKO_CLONE_NEWNET = CLONE_NEWNET, HAKO_CLONE_NEWUTS = CLONE_NEWUTS,
    HAKO_CLONE_NEWIPC = CLONE_NEWIPC, HAKO_CLONE_NEWUSER = CLONE_NEWUSER,
    HAKO_CLONE_NEWCGROUP = CLONE_NEWCGROUP, HAKO_CLONE_NEWTIME = CLONE_NEWTIME;
const uint64_t HAKO_MS_RDONLY = MS_RDONLY, HAKO_MS_NOSUID = MS_NOSUID, HAKO_MS_NODEV = MS_NODEV,
    HAKO_MS_NOEXEC = MS_NOEXEC, HAKO_MS_REC = MS_REC, HAKO_MS_PRIVATE = MS_PRIVATE,
    HAKO_MS_SLAVE = MS_SLAVE, HAKO_MS_SHARED = MS_SHARED, HAKO_MS_STRICTATIME = MS_STRICTATIME,
    HAKO_MS_RELATIME = MS_RELATIME, HAKO_MS_NOATIME = MS_NOATIME, HAKO_MS_REMOUNT = MS_REMOUNT, HAKO_MS_BIND = MS_BIND;
const int HAKO_O_PATH = O_PATH;
const int HAKO_O_TMPFILE = O_TMPFILE;

int hako_openat2(int dirfd, const char *path, int flags, int mode, uint64_t resolve) {
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (uint64_t)flags;
    how.mode = ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) ? (uint64_t)mode : 0;
    how.resolve = resolve;
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

// Opens `path` with every component resolved inside `rootfd`: "..", absolute
// symlinks and relative symlinks all stay inside the root (RESOLVE_IN_ROOT).
int hako_open_in_root(int rootfd, const char *path, int flags, int mode) {
    int fd = hako_openat2(rootfd, path, flags | O_CLOEXEC, mode, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
    if (fd >= 0 || errno != ENOSYS) return fd;
    errno = ENOSYS;  // a kernel without openat2 (< 5.6) is not supported
    return -1;
}

static int has_dot_component(const char *path) {
    for (const char *p = path; *p;) {
        while (*p == '/') p++;
        const char *end = p;
        while (*end && *end != '/') end++;
        size_t len = (size_t)(end - p);
        if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.')) return 1;
        p = end;
    }
    return 0;
}

// mkdir -p of `path` inside the root; every component resolved in the root.
// Returns an O_PATH fd of the final directory, or -1.
//
// Most targets exist already (the image's /proc and /sys, a directory a
// mount made a moment ago): one lookup finds them. Otherwise the deepest
// existing ancestor is found walking back, and only the missing components
// are made, each opened again through the root (a component another
// process made meanwhile may be a symbolic link: it still resolves inside).
// A container's set-up makes ~30 mount points: walking each from "/", with
// four calls a component, was ~110 calls more in the init.
int hako_mkdir_in_root(int rootfd, const char *path, int mode) {
    // "." and ".." are refused, as a target names a place, not a walk.
    if (has_dot_component(path)) { errno = EINVAL; return -1; }
    int found = hako_open_in_root(rootfd, path, O_PATH | O_DIRECTORY, 0);
    if (found >= 0) return found;
    if (errno != ENOENT) return -1;
    char buf[4096];
    size_t n = strlen(path);
    if (n >= sizeof buf) { errno = ENAMETOOLONG; return -1; }
    memcpy(buf, path, n + 1);
    // Back: cut components off the end until the rest opens ("" is the root).
    size_t keep = n;
    int dir = -1;
    for (;;) {
        while (keep > 0 && buf[keep - 1] == '/') keep--;
        while (keep > 0 && buf[keep - 1] != '/') keep--;
        char saved = buf[keep];
        buf[keep] = 0;
        dir = hako_open_in_root(rootfd, keep ? buf : "/", O_PATH | O_DIRECTORY, 0);
        buf[keep] = saved;
        if (dir >= 0) break;
        if (errno != ENOENT || keep == 0) return -1;
    }
    // Forward: make each missing component.
    char *p = buf + keep;
    while (*p) {
        while (*p == '/') p++;
        if (!*p) break;
        char *end = strchr(p, '/');
        if (end) *end = 0;
        if (mkdirat(dir, p, (mode_t)mode) < 0 && errno != EEXIST) { int e = errno; close(dir); errno = e; return -1; }
        // the path up to and including this component
        int next = hako_open_in_root(rootfd, buf, O_PATH | O_DIRECTORY, 0);
        if (end) *end = '/';
        int e = errno;
        close(dir);
        if (next < 0) { errno = e; return -1; }
        dir = next;
        if (!end) break;
        p = end + 1;
    }
    return dir;
}

int hako_clock_state(int *status, long *maxerror_us) {
    struct timex t;
    memset(&t, 0, sizeof t);
    int r = adjtimex(&t);
    if (r < 0) return -1;
    *status = t.status;
    *maxerror_us = t.maxerror;
    return r;
}

int hako_pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

int hako_pidfd_send_signal(int pidfd, int sig) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

int hako_close_range_cloexec(unsigned int from) {
    return (int)syscall(SYS_close_range, from, ~0U, CLOSE_RANGE_CLOEXEC);
}

int hako_memfd(const char *name) { return (int)syscall(SYS_memfd_create, name, MFD_CLOEXEC); }

int hako_pivot_root(const char *new_root, const char *put_old) {
    return (int)syscall(SYS_pivot_root, new_root, put_old);
}

int hako_setns(int fd, int type) { return (int)syscall(SYS_setns, fd, type); }

int hako_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }

int hako_accept_cloexec(int fd) { return accept4(fd, NULL, NULL, SOCK_CLOEXEC); }

int hako_setxattr(const char *path, const char *name, const void *value, size_t size, int follow) {
    return follow ? setxattr(path, name, value, size, 0) : lsetxattr(path, name, value, size, 0);
}

ssize_t hako_lgetxattr(const char *path, const char *name, void *value, size_t size) {
    return lgetxattr(path, name, value, size);
}

ssize_t hako_llistxattr(const char *path, char *list, size_t size) {
    return llistxattr(path, list, size);
}

int hako_syncfs(int fd) { return syncfs(fd); }

ssize_t hako_getrandom(void *buf, size_t len) { return syscall(SYS_getrandom, buf, len, 0); }


int hako_send_fd(int sock, int fd) {
    char data = 'F';
    struct iovec iov = { .iov_base = &data, .iov_len = 1 };
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
    memset(&u, 0, sizeof u);
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    ssize_t r;
    do { r = sendmsg(sock, &msg, MSG_NOSIGNAL); } while (r < 0 && errno == EINTR);
    return r == 1 ? 0 : -1;
}

int hako_recv_fd(int sock) {
    char data;
    struct iovec iov = { .iov_base = &data, .iov_len = 1 };
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
    ssize_t r;
    do { r = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC); } while (r < 0 && errno == EINTR);
    if (r <= 0) { if (r == 0) errno = EPIPE; return -1; }
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (!c || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int))) { errno = EBADMSG; return -1; }
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof(int));
    return fd;
}

int hako_tty_raw(int fd, void *saved, size_t savedlen) {
    struct termios t;
    if (savedlen < sizeof t) { errno = EINVAL; return -1; }
    if (tcgetattr(fd, &t) < 0) return -1;
    memcpy(saved, &t, sizeof t);
    cfmakeraw(&t);
    return tcsetattr(fd, TCSADRAIN, &t);
}

int hako_tty_restore(int fd, const void *saved) {
    struct termios t;
    memcpy(&t, saved, sizeof t);
    return tcsetattr(fd, TCSADRAIN, &t);
}

int hako_tty_size(int fd, uint16_t *rows, uint16_t *cols) {
    struct winsize w;
    if (ioctl(fd, TIOCGWINSZ, &w) < 0) return -1;
    *rows = w.ws_row; *cols = w.ws_col;
    return 0;
}

int hako_tty_set_size(int fd, uint16_t rows, uint16_t cols) {
    struct winsize w = { .ws_row = rows, .ws_col = cols };
    return ioctl(fd, TIOCSWINSZ, &w);
}

// Opens a new terminal in the devpts instance of a container root (its
// /dev/pts/ptmx), resolving the path inside the root. Writes the slave's path
// as seen inside the container.
int hako_pty_open_in_root(int rootfd, int *master, char *slave_path, size_t slave_len) {
    int m = hako_open_in_root(rootfd, "/dev/pts/ptmx", O_RDWR | O_NOCTTY, 0);
    if (m < 0) return -1;
    int unlock = 0, n = 0;
    if (ioctl(m, TIOCSPTLCK, &unlock) < 0 || ioctl(m, TIOCGPTN, &n) < 0) { int e = errno; close(m); errno = e; return -1; }
    char num[16]; int i = 15; num[i] = 0;
    unsigned v = (unsigned)n;
    do { num[--i] = (char)('0' + v % 10); v /= 10; } while (v && i > 0);
    const char *prefix = "/dev/pts/";
    size_t need = strlen(prefix) + strlen(num + i) + 1;
    if (need > slave_len) { close(m); errno = ENAMETOOLONG; return -1; }
    strcpy(slave_path, prefix);
    strcat(slave_path, num + i);
    *master = m;
    return 0;
}

int hako_signalfd_open(const int *signals, int n, void *old, size_t oldlen) {
    if (oldlen < sizeof(sigset_t)) { errno = EINVAL; return -1; }
    sigset_t set;
    sigemptyset(&set);
    for (int i = 0; i < n; i++) sigaddset(&set, signals[i]);
    if (pthread_sigmask(SIG_BLOCK, &set, (sigset_t *)old) != 0) return -1;
    return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

int hako_signalfd_read(int fd) {
    struct signalfd_siginfo si;
    ssize_t r = read(fd, &si, sizeof si);
    if (r == (ssize_t)sizeof si) return (int)si.ssi_signo;
    if (r < 0 && errno == EAGAIN) return 0;
    return -1;
}

int hako_sigmask_restore(const void *old) {
    return pthread_sigmask(SIG_SETMASK, (const sigset_t *)old, NULL);
}

int hako_bpf_load_device_program(const void *insns, uint32_t count, char *log, uint32_t loglen) {
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    a.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    a.insns = (uint64_t)(uintptr_t)insns;
    a.insn_cnt = count;
    a.license = (uint64_t)(uintptr_t)"Apache-2.0";
    if (log && loglen) log[0] = 0;
    int fd = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &a, sizeof a);
    if (fd < 0 && (errno == EINVAL || errno == EACCES) && log && loglen) {
        // Refused: load again with the verifier's log, to say why (logging costs, so only now).
        int e = errno;
        a.log_buf = (uint64_t)(uintptr_t)log;
        a.log_size = loglen;
        a.log_level = 1;
        fd = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &a, sizeof a);
        if (fd < 0) errno = e;
    }
    if (fd >= 0) fcntl(fd, F_SETFD, FD_CLOEXEC);
    return fd;
}

int hako_bpf_attach_device_program(int prog_fd, int cgroup_fd) {
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    a.target_fd = (uint32_t)cgroup_fd;
    a.attach_bpf_fd = (uint32_t)prog_fd;
    a.attach_type = BPF_CGROUP_DEVICE;
    a.attach_flags = BPF_F_ALLOW_MULTI;
    return (int)syscall(SYS_bpf, BPF_PROG_ATTACH, &a, sizeof a);
}

int hako_heap_single_arena(void) { return mallopt(M_ARENA_MAX, 1); }
int hako_heap_trim(void) { return malloc_trim(0); }
