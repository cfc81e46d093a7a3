// The init path's steps for the OCI runtime (hako-runtime): create mode (the
// exec FIFO), hooks run by the init, the time namespace, root propagation.
// Same rules as spawn.c: async-signal-safe, no malloc, failures as (stage, errno).
#include "hako_shim.h"
#include "spawn_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>


// The parent's answer to a hooks report: the state JSON for createContainer and
// for startContainer hooks. The child has its own copy of this memory (no CLONE_VM).
static char hook_msg[131072];
static const char *hook_state[2];
static uint32_t hook_state_len[2];

static void report(struct child *c, int what) {
    struct hako_failure f;
    memset(&f, 0, sizeof f);
    f.stage = what;
    if (write_all(c->err_w, &f, sizeof f) < 0) _exit(1);
}

// An fd of ours that landed among the fds the program keeps (--preserve-fds)
// moves above them.
int lift_fd(struct child *c, int fd) {
    int min = 3 + (int)c->s->preserve_fds;
    if (fd < 0 || fd >= min) return fd;
    int n = fcntl(fd, F_DUPFD_CLOEXEC, min);
    if (n < 0) child_fail(c, HAKO_STAGE_NONE, errno, "move fd");
    close(fd);
    return n;
}

static long elapsed_ms(const struct timespec *since) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000;
}

// "<kind> hook <path> <what>: <first bytes of its output>"
static void hook_fail(struct child *c, const struct hako_hook *h, int err, const char *what, const char *out) {
    char d[256] = "";
    s_cat(d, sizeof d, h->kind == HAKO_HOOK_CREATE_CONTAINER ? "createContainer " : "startContainer ");
    s_cat(d, sizeof d, h->path);
    s_cat(d, sizeof d, " ");
    s_cat(d, sizeof d, what);
    if (out && out[0]) {
        size_t n = s_len(d);
        if (n + 3 < sizeof d) {
            s_cat(d, sizeof d, ": ");
            n += 2;
            for (size_t i = 0; out[i] && n + 1 < sizeof d; i++) d[n++] = out[i] == '\n' ? ' ' : out[i];
            d[n] = 0;
        }
    }
    child_fail(c, HAKO_STAGE_HOOK, err, d);
}

// Runs one hook from the init: the state JSON on its stdin, its output kept for
// the error, bounded by its timeout. Returns only when it exited with 0.
static void run_hook(struct child *c, const struct hako_hook *h) {
    int which = h->kind == HAKO_HOOK_START_CONTAINER;
    const char *state = hook_state[which];
    size_t len = hook_state_len[which];
    int in_p[2], out_p[2], pidfd = -1;
    if (pipe2(in_p, O_CLOEXEC) < 0 || pipe2(out_p, O_CLOEXEC) < 0) hook_fail(c, h, errno, "pipe", NULL);
    long pid = clone3_raw(CLONE_PIDFD, &pidfd, -1);
    if (pid < 0) hook_fail(c, h, errno, "clone", NULL);
    if (pid == 0) {
        if (dup2(in_p[0], 0) < 0 || dup2(out_p[1], 1) < 0 || dup2(out_p[1], 2) < 0) _exit(126);
        reset_signals();
        execve(h->path, (char *const *)h->argv, (char *const *)h->envp);
        _exit(errno == ENOENT ? 127 : 126);
    }
    close(in_p[0]);
    close(out_p[1]);
    int wfd = in_p[1], rfd = out_p[0];
    fcntl(wfd, F_SETFL, O_NONBLOCK);
    fcntl(rfd, F_SETFL, O_NONBLOCK);
    if (len == 0) { close(wfd); wfd = -1; }
    char out[160];
    size_t outn = 0, written = 0;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int exited = 0;
    while (!exited || rfd >= 0) {
        struct pollfd p[3];
        int np = 0, ip = -1, ir = -1, iw = -1;
        if (!exited) { ip = np; p[np++] = (struct pollfd){ .fd = pidfd, .events = POLLIN }; }
        if (rfd >= 0) { ir = np; p[np++] = (struct pollfd){ .fd = rfd, .events = POLLIN }; }
        if (wfd >= 0 && !exited) { iw = np; p[np++] = (struct pollfd){ .fd = wfd, .events = POLLOUT }; }
        int timeout = -1;
        if (h->timeout && !exited) {
            long left = (long)h->timeout * 1000 - elapsed_ms(&t0);
            if (left <= 0) {
                kill((pid_t)pid, SIGKILL);
                while (waitpid((pid_t)pid, NULL, 0) < 0 && errno == EINTR) {}
                out[outn] = 0;
                char what[64] = "timed out after ", n[24];
                s_itoa((long)h->timeout, n);
                s_cat(what, sizeof what, n);
                s_cat(what, sizeof what, "s");
                hook_fail(c, h, ETIMEDOUT, what, out);
            }
            timeout = (int)left;
        }
        if (exited) timeout = 0;  // drain what the hook left in the pipe
        int r = poll(p, (nfds_t)np, timeout);
        if (r < 0) { if (errno == EINTR) continue; hook_fail(c, h, errno, "poll", NULL); }
        if (r == 0 && exited) break;
        if (ip >= 0 && p[ip].revents) exited = 1;
        if (ir >= 0 && p[ir].revents) {
            char buf[512];
            ssize_t n = read(rfd, buf, sizeof buf);
            if (n > 0) {
                for (ssize_t i = 0; i < n && outn + 1 < sizeof out; i++) out[outn++] = buf[i];
            } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                close(rfd);
                rfd = -1;
            }
        }
        if (iw >= 0 && p[iw].revents) {
            ssize_t n = write(wfd, state + written, len - written);
            if (n > 0) written += (size_t)n;
            if ((n < 0 && errno != EAGAIN && errno != EINTR) || written == len) { close(wfd); wfd = -1; }
        }
    }
    if (wfd >= 0) close(wfd);
    if (rfd >= 0) close(rfd);
    close(pidfd);
    int st = 0;
    while (waitpid((pid_t)pid, &st, 0) < 0 && errno == EINTR) {}
    out[outn] = 0;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return;
    char what[64], n[24];
    if (WIFEXITED(st)) { memcpy(what, "exited with status ", 20); s_itoa(WEXITSTATUS(st), n); }
    else { memcpy(what, "was killed by signal ", 22); s_itoa(WTERMSIG(st), n); }
    s_cat(what, sizeof what, n);
    hook_fail(c, h, 0, what, out);
}

void run_hooks(struct child *c, uint32_t kind) {
    struct sigaction ign, dfl;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    int any = 0;
    for (int i = 0; i < c->s->nhooks; i++) {
        if (c->s->hooks[i].kind != kind) continue;
        // A hook that closes its stdin early must not kill the init with SIGPIPE.
        if (!any) { sigaction(SIGPIPE, &ign, NULL); any = 1; }
        run_hook(c, &c->s->hooks[i]);
    }
    if (any) sigaction(SIGPIPE, &dfl, NULL);
}

// Reports "hooks", waits for the parent's prestart/createRuntime hooks and
// takes the state for the container's own hooks from its answer.
void await_hook_state(struct child *c) {
    report(c, HAKO_REPORT_HOOKS);
    char g;
    uint32_t total;
    if (read_full(c->sync_r, &g, 1) != 1 || g != 'G') _exit(1);
    if (read_full(c->sync_r, &total, 4) != 4 || total > sizeof hook_msg) _exit(1);
    if (read_full(c->sync_r, hook_msg, total) != (ssize_t)total) _exit(1);
    close(c->sync_r);
    c->sync_r = -1;
    uint32_t off = 0;
    for (int i = 0; i < 2 && off + 4 <= total; i++) {
        uint32_t n;
        memcpy(&n, hook_msg + off, 4);
        off += 4;
        if (n > total - off) child_fail(c, HAKO_STAGE_HOOK, EINVAL, "state");
        hook_state[i] = hook_msg + off;
        hook_state_len[i] = n;
        off += n;
    }
}

// The program as execve would find it through $PATH (create mode checks it
// before reporting "created", so a missing program fails `create`).
static const char *find_program(struct child *c, char *buf, size_t cap) {
    const struct hako_spec *s = c->s;
    const char *file = s->argv[0];
    if (file[0] == 0) child_fail(c, HAKO_STAGE_EXEC_NOT_FOUND, ENOENT, file);
    struct stat st;
    if (strchr(file, '/')) {
        if (stat(file, &st) < 0) child_fail(c, errno == ENOENT || errno == ENOTDIR ? HAKO_STAGE_EXEC_NOT_FOUND : HAKO_STAGE_EXEC, errno, file);
        if (!S_ISREG(st.st_mode) || access(file, X_OK) < 0) child_fail(c, HAKO_STAGE_EXEC, EACCES, file);
        return file;
    }
    const char *p = env_path(s);
    int saw_eacces = 0;
    size_t fl = s_len(file);
    while (1) {
        const char *colon = strchr(p, ':');
        size_t n = colon ? (size_t)(colon - p) : s_len(p);
        if (n + fl + 2 <= cap) {
            if (n == 0) { buf[0] = '.'; n = 1; } else memcpy(buf, p, n);
            buf[n] = '/';
            memcpy(buf + n + 1, file, fl + 1);
            if (stat(buf, &st) == 0 && S_ISREG(st.st_mode)) {
                if (access(buf, X_OK) == 0) return buf;
                saw_eacces = 1;
            }
        }
        if (!colon) break;
        p = colon + 1;
    }
    if (saw_eacces) child_fail(c, HAKO_STAGE_EXEC, EACCES, file);
    child_fail(c, HAKO_STAGE_EXEC_NOT_FOUND, ENOENT, file);
}

// Every fd above 2 is closed at exec, but the --preserve-fds ones.
void close_fds_at_exec(struct child *c) {
    unsigned first = 3 + c->s->preserve_fds;
    if (hako_close_range_cloexec(first) < 0) {
        for (int fd = (int)first; fd < 1024; fd++) if (fd != c->err_w) fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    for (unsigned fd = 3; fd < first; fd++) fcntl((int)fd, F_SETFD, 0);
}

// Create mode: report "created", wait for `start` on the exec FIFO, run the
// startContainer hooks, exec. From the FIFO on, failures go to `start`.
__attribute__((noreturn))
void wait_for_start(struct child *c) {
    const struct hako_spec *s = c->s;
    char prog[4096];
    const char *path = s->argc ? find_program(c, prog, sizeof prog) : NULL;
    prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);  // the caller exits; the init lives on
    report(c, HAKO_REPORT_CREATED);
    close(c->err_w);
    c->err_w = -1;
    // Blocks until `start` opens the FIFO for reading. The directory fd was opened
    // before the root changed; the init is not dumpable, and it is closed before exec.
    int w;
    do { w = openat(c->fifo_fd, c->fifo_name, O_WRONLY | O_CLOEXEC); } while (w < 0 && errno == EINTR);
    if (w < 0) _exit(1);  // nobody is left to tell: `start` sees the init gone
    close(c->fifo_fd);
    c->fifo_fd = -1;
    c->err_w = lift_fd(c, w);
    if (!path) child_fail(c, HAKO_STAGE_EXEC_NOT_FOUND, ENOENT, "(config.json has no process)");
    run_hooks(c, HAKO_HOOK_START_CONTAINER);
    close_fds_at_exec(c);
    execve(path, (char *const *)s->argv, (char *const *)s->envp);
    child_fail(c, errno == ENOENT || errno == ENOTDIR ? HAKO_STAGE_EXEC_NOT_FOUND : HAKO_STAGE_EXEC, errno, s->argv[0]);
}

// The mount holding `path` becomes private, so that binding the root does not
// propagate and pivot_root accepts it (its parent may not be shared).
void make_parent_private(struct child *c, const char *path) {
    static char info[1 << 20];
    int fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
    if (fd < 0) child_fail(c, HAKO_STAGE_PROPAGATION, errno, "/proc/self/mountinfo");
    ssize_t n = read_full(fd, info, sizeof info - 1);
    close(fd);
    if (n < 0) child_fail(c, HAKO_STAGE_PROPAGATION, errno, "/proc/self/mountinfo");
    info[n] = 0;
    char best[4096] = "/";
    size_t best_len = 1;
    for (char *line = info; *line;) {
        char *end = strchr(line, '\n');
        if (end) *end = 0;
        // field 5 is the mount point, octal-escaped
        char *f = line;
        for (int i = 0; i < 4 && f; i++) { f = strchr(f, ' '); if (f) f++; }
        if (f) {
            char mp[4096];
            size_t k = 0;
            for (char *q = f; *q && *q != ' ' && k + 1 < sizeof mp; q++) {
                if (q[0] == '\\' && q[1] >= '0' && q[1] <= '3' && q[2] && q[3]) {
                    mp[k++] = (char)(((q[1] - '0') << 6) | ((q[2] - '0') << 3) | (q[3] - '0'));
                    q += 3;
                } else mp[k++] = *q;
            }
            mp[k] = 0;
            size_t pl = s_len(path);
            if (k >= best_len && k <= pl && memcmp(mp, path, k) == 0 && (path[k] == '/' || path[k] == 0 || k == 1)) {
                memcpy(best, mp, k + 1);
                best_len = k;
            }
        }
        if (!end) break;
        line = end + 1;
    }
    if (mount(NULL, best, NULL, MS_PRIVATE, NULL) < 0) child_fail(c, HAKO_STAGE_PROPAGATION, errno, best);
}

void enter_time_namespace(struct child *c) {
    const int64_t *o = c->s->time_offsets;
    if (unshare(CLONE_NEWTIME) < 0) child_fail(c, HAKO_STAGE_TIMENS, errno, NULL);
    char buf[160] = "", n[24];
    for (int i = 0; i < 2; i++) {
        s_cat(buf, sizeof buf, i == 0 ? "monotonic " : "boottime ");
        s_itoa((long)o[i * 2], n); s_cat(buf, sizeof buf, n); s_cat(buf, sizeof buf, " ");
        s_itoa((long)o[i * 2 + 1], n); s_cat(buf, sizeof buf, n); s_cat(buf, sizeof buf, "\n");
    }
    if (write_file("/proc/self/timens_offsets", buf) < 0) child_fail(c, HAKO_STAGE_TIMENS, errno, "timens_offsets");
}

