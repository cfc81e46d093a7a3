// Starting a container's init (hako_launch_*, hako_spawn) and a process in a
// running container (hako_exec): the parent's side, and the cgroup joins.
#include "hako_shim.h"
#include "spawn_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

static void close_if(int *fd) { if (*fd >= 0) { close(*fd); *fd = -1; } }
static int open_ns(pid_t pid, const char *name);

static int parent_fail(struct hako_failure *fail, int stage, int err, const char *detail) {
    memset(fail, 0, sizeof *fail);
    fail->stage = stage;
    fail->err = err;
    if (detail) {
        size_t n = strlen(detail);
        if (n >= sizeof fail->detail) n = sizeof fail->detail - 1;
        memcpy(fail->detail, detail, n);
    }
    return -1;
}

// The parent sets the OOM score: the child, non-dumpable or in a user namespace, may not.
static int set_oom_score(pid_t pid, const struct hako_spec *s, struct hako_failure *fail) {
    if (!s->has_oom_score_adj) return 0;
    char path[48] = "/proc/", num[24], v[24];
    s_itoa(pid, num); s_cat(path, sizeof path, num); s_cat(path, sizeof path, "/oom_score_adj");
    s_itoa(s->oom_score_adj, v);
    if (write_file(path, v) < 0) return parent_fail(fail, HAKO_STAGE_OOM_SCORE, errno, NULL);
    return 0;
}

static int join_cgroups(pid_t pid, const struct hako_spec *s, int placed_v2, int skip_v1, struct hako_failure *fail) {
    char num[24];
    if (set_oom_score(pid, s, fail) < 0) return -1;
    s_itoa(pid, num);
    for (int i = 0; i < s->ncgroup_procs && !skip_v1; i++)
        if (write_file(s->cgroup_procs[i], num) < 0) return parent_fail(fail, HAKO_STAGE_CGROUP, errno, s->cgroup_procs[i]);
    if (s->cgroup_dir && !placed_v2) {
        char path[4096] = "";
        if (s_cat(path, sizeof path, s->cgroup_dir) < 0 || s_cat(path, sizeof path, "/cgroup.procs") < 0)
            return parent_fail(fail, HAKO_STAGE_CGROUP, ENAMETOOLONG, s->cgroup_dir);
        if (write_file(path, num) < 0) return parent_fail(fail, HAKO_STAGE_CGROUP, errno, path);
    }
    return 0;
}

static void reap(pid_t pid) {
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
}

// Reads an exec'd process's verdict: EOF means it exec'd (hako_exec).
static int await_exec(int err_r, pid_t pid, struct hako_failure *fail) {
    struct hako_failure f;
    ssize_t n = read_full(err_r, &f, sizeof f);
    if (n == 0) return 0;
    if (n != (ssize_t)sizeof f) {
        int e = errno;
        reap(pid);
        return parent_fail(fail, HAKO_STAGE_NONE, n < 0 ? e : EPIPE, "container process died");
    }
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
    f.detail[sizeof f.detail - 1] = 0;
    *fail = f;
    return -1;
}

static void launch_close(struct hako_launch *l) {
    close_if(&l->sync_w); close_if(&l->report_r); close_if(&l->console_r);
    close_if(&l->stdin_w); close_if(&l->stdout_r); close_if(&l->stderr_r);
    close_if(&l->mntns_fd);
}

void hako_launch_abort(struct hako_launch *l) {
    if (l->pid > 0) reap(l->pid);
    l->pid = 0;
    launch_close(l);
    close_if(&l->pidfd);
}

void hako_launch_release(struct hako_launch *l) {
    close_if(&l->sync_w); close_if(&l->report_r); close_if(&l->console_r);
    close_if(&l->mntns_fd);
}

// The child's next report: EOF means it exec'd; a failure reaps it.
static int launch_next(struct hako_launch *l, struct hako_failure *fail) {
    struct hako_failure f;
    ssize_t n = read_full(l->report_r, &f, sizeof f);
    if (n == 0) return HAKO_EVENT_EXEC;
    if (n != (ssize_t)sizeof f) {
        int e = errno;
        hako_launch_abort(l);
        return parent_fail(fail, HAKO_STAGE_NONE, n < 0 ? e : EPIPE, "container init died");
    }
    if (f.stage == HAKO_REPORT_HOOKS) return HAKO_EVENT_HOOKS;
    if (f.stage == HAKO_REPORT_CREATED) return HAKO_EVENT_CREATED;
    f.detail[sizeof f.detail - 1] = 0;
    *fail = f;
    while (waitpid(l->pid, NULL, 0) < 0 && errno == EINTR) {}
    l->pid = 0;
    hako_launch_abort(l);
    return -1;
}

int hako_launch_continue(struct hako_launch *l, const void *msg, size_t len, struct hako_failure *fail) {
    uint32_t n = (uint32_t)len;
    if (write_all(l->sync_w, "G", 1) < 0 || write_all(l->sync_w, &n, 4) < 0 || (len && write_all(l->sync_w, msg, len) < 0)) {
        hako_launch_abort(l);
        return parent_fail(fail, HAKO_STAGE_SYNC, errno, NULL);
    }
    return launch_next(l, fail);
}

int hako_launch_take_terminal(struct hako_launch *l) {
    int master = hako_recv_fd(l->console_r);
    if (master >= 0) close_if(&l->console_r);
    return master;
}

static const char *ns_file(uint32_t type) {
    switch (type) {
    case CLONE_NEWNET: return "/proc/self/ns/net";
    case CLONE_NEWIPC: return "/proc/self/ns/ipc";
    case CLONE_NEWUTS: return "/proc/self/ns/uts";
    case CLONE_NEWPID: return "/proc/self/ns/pid_for_children";
    case CLONE_NEWCGROUP: return "/proc/self/ns/cgroup";
    default: return "/proc/self/ns/time_for_children";
    }
}

// Joins the parent-joined namespaces; saved[i] keeps the caller's own (or -1).
static int join_in_parent(const struct hako_spec *s, int saved[], struct hako_failure *fail) {
    for (int i = 0; i < s->nnsjoin; i++) saved[i] = -1;
    for (int i = 0; i < s->nnsjoin; i++) {
        if (hako_joined_by_child(s->nsjoin[i].type)) continue;
        saved[i] = open(ns_file(s->nsjoin[i].type), O_RDONLY | O_CLOEXEC);
        int fd = open(s->nsjoin[i].path, O_RDONLY | O_CLOEXEC);
        if (saved[i] < 0 || fd < 0 || hako_setns(fd, (int)s->nsjoin[i].type) < 0) {
            int e = errno;
            if (fd >= 0) close(fd);
            return parent_fail(fail, HAKO_STAGE_SETNS, e, s->nsjoin[i].path);
        }
        close(fd);
    }
    return 0;
}

static void restore_parent_ns(const struct hako_spec *s, int saved[]) {
    for (int i = s->nnsjoin - 1; i >= 0; i--) {
        if (saved[i] < 0) continue;
        hako_setns(saved[i], (int)s->nsjoin[i].type);
        close(saved[i]);
        saved[i] = -1;
    }
}

int hako_launch_start(const struct hako_spec *s, const int *stdio_fds, struct hako_launch *l, struct hako_failure *fail) {
    int sync_p[2] = {-1, -1}, err_p[2] = {-1, -1}, cons[2] = {-1, -1};
    int in_p[2] = {-1, -1}, out_p[2] = {-1, -1}, errs_p[2] = {-1, -1};
    int cgfd = -1, pidfd = -1, ovl = -1;
    memset(l, 0, sizeof *l);
    l->pidfd = l->sync_w = l->report_r = l->console_r = l->stdin_w = l->stdout_r = l->stderr_r = l->mntns_fd = -1;

    if (s->detached_overlay && (ovl = hako_detached_overlay(s, fail)) < 0) goto fail;
    if (pipe2(sync_p, O_CLOEXEC) < 0 || pipe2(err_p, O_CLOEXEC) < 0) { parent_fail(fail, HAKO_STAGE_CLONE, errno, "pipe"); goto fail; }
    if (s->tty) {
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, cons) < 0) { parent_fail(fail, HAKO_STAGE_CONSOLE, errno, "socketpair"); goto fail; }
    } else if (!stdio_fds) {
        if ((s->keep_stdin && pipe2(in_p, O_CLOEXEC) < 0) || pipe2(out_p, O_CLOEXEC) < 0 || pipe2(errs_p, O_CLOEXEC) < 0) {
            parent_fail(fail, HAKO_STAGE_STDIO, errno, "pipe"); goto fail;
        }
    }
    if (s->cgroup_dir) cgfd = open(s->cgroup_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    int saved_ns[HAKO_MAX_NSJOIN];
    if (join_in_parent(s, saved_ns, fail) < 0) { restore_parent_ns(s, saved_ns); goto fail; }

    uint64_t flags = (s->clone_flags & ~(uint64_t)CLONE_NEWCGROUP) | CLONE_PIDFD;
    int placed_v2 = 0;
    long pid = clone3_placed(flags, &pidfd, cgfd, &placed_v2);
    if (pid < 0 && errno == ENOSYS) {
        pid = syscall(SYS_clone, (unsigned long)(s->clone_flags & ~(uint64_t)CLONE_NEWCGROUP) | SIGCHLD, NULL, NULL, NULL, NULL);
        pidfd = -1;
    }
    if (pid != 0) {
        int e = errno;
        restore_parent_ns(s, saved_ns);
        errno = e;
    }
    if (pid < 0) { parent_fail(fail, HAKO_STAGE_CLONE, errno, NULL); goto fail; }

    if (pid == 0) {
        for (int i = 0; i < s->nnsjoin; i++) if (saved_ns[i] >= 0) close(saved_ns[i]);
        struct child c = { .s = s, .sync_r = sync_p[0], .err_w = err_p[1], .console_w = cons[1], .tty_slave = -1,
                           .overlay_fd = ovl, .fifo_fd = -1 };
        close(sync_p[1]); close(err_p[0]);
        if (cons[0] >= 0) close(cons[0]);
        if (stdio_fds) { c.stdio[0] = stdio_fds[0]; c.stdio[1] = stdio_fds[1]; c.stdio[2] = stdio_fds[2]; }
        else {
            c.stdio[0] = in_p[0]; c.stdio[1] = out_p[1]; c.stdio[2] = errs_p[1];
            if (in_p[1] >= 0) close(in_p[1]);
            if (out_p[0] >= 0) close(out_p[0]);
            if (errs_p[0] >= 0) close(errs_p[0]);
        }
        container_child(&c);
    }

    close_if(&sync_p[0]); close_if(&err_p[1]); close_if(&cons[1]);
    close_if(&in_p[0]); close_if(&out_p[1]); close_if(&errs_p[1]);
    close_if(&cgfd); close_if(&ovl);
    l->pid = (pid_t)pid;
    l->pidfd = pidfd;
    l->sync_w = sync_p[1];
    l->report_r = err_p[0];
    l->console_r = cons[0];
    l->stdin_w = in_p[1];
    l->stdout_r = out_p[0];
    l->stderr_r = errs_p[0];
    // The child waits for "G": it is still in the namespace it was cloned into.
    if (s->clone_flags & CLONE_NEWNS) l->mntns_fd = open_ns((pid_t)pid, "mnt");

    if ((s->nidmaps && hako_write_id_maps((pid_t)pid, s, fail) < 0) || join_cgroups((pid_t)pid, s, placed_v2, attaches_itself(s), fail) < 0) {
        hako_launch_abort(l);
        return -1;
    }
    if (write_all(l->sync_w, "G", 1) < 0) {
        parent_fail(fail, HAKO_STAGE_SYNC, errno, NULL);
        hako_launch_abort(l);
        return -1;
    }
    return launch_next(l, fail);

fail:
    close_if(&sync_p[0]); close_if(&sync_p[1]); close_if(&err_p[0]); close_if(&err_p[1]);
    close_if(&cons[0]); close_if(&cons[1]); close_if(&cgfd); close_if(&ovl);
    close_if(&in_p[0]); close_if(&in_p[1]); close_if(&out_p[0]); close_if(&out_p[1]);
    close_if(&errs_p[0]); close_if(&errs_p[1]);
    if (pidfd >= 0) close(pidfd);
    return -1;
}

int hako_spawn(const struct hako_spec *s, const int *stdio_fds, struct hako_proc *out, struct hako_failure *fail) {
    struct hako_launch l;
    memset(out, 0, sizeof *out);
    out->pidfd = out->stdin_fd = out->stdout_fd = out->stderr_fd = out->mntns_fd = -1;
    int ev = hako_launch_start(s, stdio_fds, &l, fail);
    // The monitor's specs carry neither hooks nor an exec FIFO; answer blindly if one does.
    for (int i = 0; ev == HAKO_EVENT_HOOKS && i < 4; i++) ev = hako_launch_continue(&l, NULL, 0, fail);
    if (ev < 0) return -1;
    if (ev != HAKO_EVENT_EXEC) {
        hako_launch_abort(&l);
        return parent_fail(fail, HAKO_STAGE_SYNC, EPROTO, "unexpected report of the init");
    }
    if (s->tty) {
        int master = hako_launch_take_terminal(&l);
        if (master < 0) {
            parent_fail(fail, HAKO_STAGE_CONSOLE, errno, "receive terminal");
            hako_launch_abort(&l);
            return -1;
        }
        out->stdout_fd = master;
    } else {
        out->stdin_fd = l.stdin_w;
        out->stdout_fd = l.stdout_r;
        out->stderr_fd = l.stderr_r;
    }
    out->mntns_fd = l.mntns_fd;
    l.mntns_fd = -1;
    hako_launch_release(&l);
    out->pid = l.pid;
    out->pidfd = l.pidfd;
    return 0;
}

// ---------------------------------------------------------------------------
// exec into a running container

static int open_ns(pid_t pid, const char *name) {
    char path[64] = "/proc/", num[24];
    s_itoa(pid, num);
    s_cat(path, sizeof path, num);
    s_cat(path, sizeof path, "/ns/");
    s_cat(path, sizeof path, name);
    return open(path, O_RDONLY | O_CLOEXEC);
}

static int same_ns(pid_t pid, const char *name) {
    char a[64] = "/proc/self/ns/", b[64] = "/proc/", num[24];
    s_cat(a, sizeof a, name);
    s_itoa(pid, num);
    s_cat(b, sizeof b, num); s_cat(b, sizeof b, "/ns/"); s_cat(b, sizeof b, name);
    struct stat x, y;
    if (stat(a, &x) < 0 || stat(b, &y) < 0) return 0;
    return x.st_ino == y.st_ino && x.st_dev == y.st_dev;
}

__attribute__((noreturn))
static void exec_child(struct child *c, pid_t target, int target_pidfd, int cgfd, int pid_w) {
    // This process is a copy of the caller (hako) until it execs: nothing inside the
    // container may open its /proc/<pid>/exe for writing (CVE-2019-5736 class).
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    // Join the target's namespaces, the user namespace last (only if it differs):
    // as root of the host's user namespace we may join any of them, including a
    // network namespace the host's user namespace owns; inside the container's
    // user namespace we could not. The pid namespace applies to our children,
    // so fork once more.
    static const struct { const char *name; int type; } order[] = {
        {"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS}, {"net", CLONE_NEWNET}, {"pid", CLONE_NEWPID},
        {"cgroup", CLONE_NEWCGROUP}, {"mnt", CLONE_NEWNS}, {"user", CLONE_NEWUSER},
    };
    enum { NNS = sizeof order / sizeof order[0] };
    // Open them all first: once in the container's mount namespace, /proc is the container's.
    int nsfd[NNS];
    for (size_t i = 0; i < NNS; i++) {
        nsfd[i] = -1;
        if (same_ns(target, order[i].name)) continue;
        nsfd[i] = open_ns(target, order[i].name);
        if (nsfd[i] < 0) child_fail(c, HAKO_STAGE_SETNS, errno, order[i].name);
    }
    for (size_t i = 0; i < NNS; i++) {
        if (nsfd[i] < 0) continue;
        if (hako_setns(nsfd[i], order[i].type) < 0) child_fail(c, HAKO_STAGE_SETNS, errno, order[i].name);
        close(nsfd[i]);
    }
    (void)target_pidfd;
    int pidfd_unused = -1;
    int placed_in = 0;
    long pid = clone3_placed(CLONE_PARENT, &pidfd_unused, cgfd, &placed_in);
    int32_t placed = placed_in;
    if (pid < 0) child_fail(c, HAKO_STAGE_CLONE, errno, NULL);
    if (pid > 0) {
        int32_t v = (int32_t)pid;
        write_all(pid_w, &v, 4);
        write_all(pid_w, &placed, 4);
        _exit(0);
    }
    close(pid_w);
    char sync;
    if (read_full(c->sync_r, &sync, 1) != 1 || sync != 'G') _exit(1);
    close(c->sync_r);
    reset_signals();
    if (c->tty_slave_path) {
        if (setsid() < 0) child_fail(c, HAKO_STAGE_CONSOLE, errno, "setsid");
        int fd = open(c->tty_slave_path, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (fd < 0) child_fail(c, HAKO_STAGE_CONSOLE, errno, c->tty_slave_path);
        c->tty_slave = fd;
    }
    setup_stdio(c);
    int cwd_late = enter_cwd(c, 0) < 0;
    apply_privileges(c);
    if (c->s->has_umask) umask((mode_t)c->s->umask);
    if (cwd_late) enter_cwd(c, 1);
    close_fds_at_exec(c);
    exec_program(c);
}

// Waits up to timeout_ms (-1: for ever) for the exec'd process to reach its
// exec; past that it is killed and left unreaped (a frozen process dies only
// once thawed: the caller's waitpid takes it then).
static int await_exec_within(int err_r, pid_t pid, int timeout_ms, struct hako_failure *fail) {
    if (timeout_ms >= 0) {
        struct pollfd pf = { .fd = err_r, .events = POLLIN };
        int r;
        while ((r = poll(&pf, 1, timeout_ms)) < 0 && errno == EINTR) {}
        if (r == 0) {
            kill(pid, SIGKILL);
            return parent_fail(fail, HAKO_STAGE_EXEC, ETIMEDOUT, "the process did not start in time");
        }
    }
    return await_exec(err_r, pid, fail);
}

static int exec_in(const struct hako_spec *s, pid_t target, int target_pidfd, const char *tty_slave_path,
                   const int *stdio_fds, int timeout_ms, struct hako_proc *out, struct hako_failure *fail);

int hako_exec(const struct hako_spec *s, pid_t target, int target_pidfd, const char *tty_slave_path,
              const int *stdio_fds, struct hako_proc *out, struct hako_failure *fail) {
    return exec_in(s, target, target_pidfd, tty_slave_path, stdio_fds, -1, out, fail);
}

int hako_exec_bounded(const struct hako_spec *s, pid_t target, const int *stdio_fds, int timeout_ms,
                      struct hako_proc *out, struct hako_failure *fail) {
    return exec_in(s, target, -1, NULL, stdio_fds, timeout_ms, out, fail);
}

static int exec_in(const struct hako_spec *s, pid_t target, int target_pidfd, const char *tty_slave_path,
                   const int *stdio_fds, int timeout_ms, struct hako_proc *out, struct hako_failure *fail) {
    int sync_p[2] = {-1, -1}, err_p[2] = {-1, -1}, pid_p[2] = {-1, -1};
    int cgfd = -1;
    memset(out, 0, sizeof *out);
    out->pidfd = out->stdin_fd = out->stdout_fd = out->stderr_fd = out->mntns_fd = -1;
    if (pipe2(sync_p, O_CLOEXEC) < 0 || pipe2(err_p, O_CLOEXEC) < 0 || pipe2(pid_p, O_CLOEXEC) < 0) {
        parent_fail(fail, HAKO_STAGE_CLONE, errno, "pipe"); goto fail;
    }
    if (s->cgroup_dir) cgfd = open(s->cgroup_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    int unused = -1;
    long mid = clone3_raw(0, &unused, -1);
    if (mid < 0) { parent_fail(fail, HAKO_STAGE_CLONE, errno, NULL); goto fail; }
    if (mid == 0) {
        struct child c = { .s = s, .sync_r = sync_p[0], .err_w = err_p[1], .console_w = -1, .tty_slave = -1, .overlay_fd = -1, .fifo_fd = -1,
                           .tty_slave_path = s->tty ? tty_slave_path : NULL };
        close(sync_p[1]); close(err_p[0]); close(pid_p[0]);
        c.stdio[0] = stdio_fds ? stdio_fds[0] : 0;
        c.stdio[1] = stdio_fds ? stdio_fds[1] : 1;
        c.stdio[2] = stdio_fds ? stdio_fds[2] : 2;
        exec_child(&c, target, target_pidfd, cgfd, pid_p[1]);
    }
    close_if(&sync_p[0]); close_if(&err_p[1]); close_if(&pid_p[1]); close_if(&cgfd);
    int32_t info[2] = {0, 0};
    ssize_t n = read_full(pid_p[0], info, sizeof info);
    while (waitpid((pid_t)mid, NULL, 0) < 0 && errno == EINTR) {}
    close_if(&pid_p[0]);
    if (n != (ssize_t)sizeof info) {
        // The intermediate failed before forking: its report is on the error pipe.
        struct hako_failure f;
        if (read_full(err_p[0], &f, sizeof f) == (ssize_t)sizeof f) { f.detail[sizeof f.detail - 1] = 0; *fail = f; }
        else parent_fail(fail, HAKO_STAGE_CLONE, EPIPE, "exec helper died");
        goto fail;
    }
    pid_t pid = info[0];
    if (join_cgroups(pid, s, info[1], 0, fail) < 0) {
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
        goto fail;
    }
    if (write_all(sync_p[1], "G", 1) < 0) {
        parent_fail(fail, HAKO_STAGE_SYNC, errno, NULL);
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
        goto fail;
    }
    close_if(&sync_p[1]);
    if (await_exec_within(err_p[0], pid, timeout_ms, fail) < 0) goto fail;
    close_if(&err_p[0]);
    out->pid = pid;
    out->pidfd = hako_pidfd_open(pid);
    return 0;
fail:
    close_if(&sync_p[0]); close_if(&sync_p[1]); close_if(&err_p[0]); close_if(&err_p[1]);
    close_if(&pid_p[0]); close_if(&pid_p[1]); close_if(&cgfd);
    return -1;
}

// ---------------------------------------------------------------------------
// exec into a running container, again and again (hako_exec_target)
//
// The probe helper is a fork of the caller that has taken every step of
// exec_child and exec_tail that is the same for each process: the
// container's namespaces, working directory, user, groups, capabilities,
// no_new_privs and seccomp filter. The caller then places it in the
// container's cgroups and sets its OOM score, once. It stays outside the
// container's pid namespace (nothing in the container sees it). For each
// process the caller sends it the process's stdout and stderr (SCM_RIGHTS
// over a SOCK_SEQPACKET pair); it vforks (CLONE_VM | CLONE_VFORK, on a stack
// of its own) with CLONE_PARENT, so the process is the caller's child, born in
// the container's cgroups with the helper's confinement, and runs until it has
// exec'd or failed; the helper then answers with its pid or its failure. The
// kernel compiles the filter once, for the helper; no page table is copied
// and no cgroup is written per process.

static const struct { const char *name; int type; } exec_ns_order[HAKO_EXEC_NS] = {
    {"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS}, {"net", CLONE_NEWNET}, {"pid", CLONE_NEWPID},
    {"cgroup", CLONE_NEWCGROUP}, {"mnt", CLONE_NEWNS},
};

enum { HELPER_FDS = 2 };           // the process's stdout and stderr (its stdin is the helper's /dev/null)
enum { HELPER_STACK = 64 * 1024 }; // the vforked process's stack until it execs

// The process vforked by the helper, in the helper's memory until it execs.
// Everything of the helper from fd 3 up is close-on-exec (the socket, the
// failure pipe, the received fds); a failure goes to the pipe before _exit.
static int helper_child(void *arg) {
    struct child *c = arg;
    if (dup2(c->stdio[1], 1) < 0 || dup2(c->stdio[2], 2) < 0) child_fail(c, HAKO_STAGE_STDIO, errno, NULL);
    exec_program(c);
}

__attribute__((noreturn))
static void helper_main(const struct hako_spec *s, int sock, int null_fd, const int *nsfd) {
    struct child c = { .s = s, .sync_r = -1, .err_w = sock, .console_w = -1, .tty_slave = -1, .overlay_fd = -1, .fifo_fd = -1 };
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    prctl(PR_SET_NAME, (unsigned long)"hako-probe", 0, 0, 0);
    for (int i = 0; i < HAKO_EXEC_NS; i++)
        if (nsfd[i] >= 0 && hako_setns(nsfd[i], exec_ns_order[i].type) < 0) child_fail(&c, HAKO_STAGE_SETNS, errno, exec_ns_order[i].name);
    // Only the socket (3) and /dev/null (0-2) stay: the caller's other fds are none of the container's business.
    for (int i = 0; i < 3; i++) if (null_fd != i && dup2(null_fd, i) < 0) child_fail(&c, HAKO_STAGE_STDIO, errno, NULL);
    if (sock != 3) {
        if (dup3(sock, 3, O_CLOEXEC) < 0) child_fail(&c, HAKO_STAGE_STDIO, errno, NULL);
        sock = c.err_w = 3;
    }
    if (syscall(SYS_close_range, 4U, ~0U, 0U) < 0)
        for (int fd = 4; fd < 1024; fd++) close(fd);
    int failed[2];
    if (pipe2(failed, O_CLOEXEC) < 0) child_fail(&c, HAKO_STAGE_CLONE, errno, "pipe");
    fcntl(failed[0], F_SETFL, O_NONBLOCK);
    char *stack = mmap(NULL, HELPER_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) child_fail(&c, HAKO_STAGE_CLONE, errno, "stack");
    reset_signals();
    int cwd_late = enter_cwd(&c, 0) < 0;
    apply_privileges(&c);
    if (s->has_umask) umask((mode_t)s->umask);
    if (cwd_late) enter_cwd(&c, 1);
    int32_t ready = 0;
    if (send(sock, &ready, sizeof ready, MSG_NOSIGNAL) != (ssize_t)sizeof ready) _exit(1);
    c.err_w = failed[1];
    c.stdio[0] = 0;
    for (;;) {
        char byte;
        union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int) * HELPER_FDS)]; } u;
        struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
        struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
        ssize_t n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) _exit(0);  // the caller closed its end (or died)
        struct cmsghdr *h = CMSG_FIRSTHDR(&m);
        int fds[HELPER_FDS], nfds = 0;
        if (h && h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS) {
            nfds = (int)((h->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            if (nfds > HELPER_FDS) nfds = HELPER_FDS;
            memcpy(fds, CMSG_DATA(h), sizeof(int) * (size_t)nfds);
        }
        if (nfds != HELPER_FDS) {
            for (int i = 0; i < nfds; i++) close(fds[i]);
            _exit(1);
        }
        c.stdio[1] = fds[0]; c.stdio[2] = fds[1];
        // CLONE_PARENT: the process is the caller's child, reaped (and killed at its timeout) by it.
        // CLONE_VFORK: this returns once it has exec'd, or failed (its failure is then on the pipe).
        pid_t pid = clone(helper_child, stack + HELPER_STACK, CLONE_VM | CLONE_VFORK | CLONE_PARENT, &c);
        struct hako_failure f;
        memset(&f, 0, sizeof f);
        if (pid < 0) {
            f.stage = HAKO_STAGE_CLONE;
            f.err = errno;
        } else if (read(failed[0], &f, sizeof f) != (ssize_t)sizeof f) {
            f.stage = HAKO_STAGE_NONE;
        }
        if (f.stage != HAKO_STAGE_NONE) {
            send(sock, &f, sizeof f, MSG_NOSIGNAL);
        } else {
            int32_t v = (int32_t)pid;
            send(sock, &v, sizeof v, MSG_NOSIGNAL);
        }
        for (int i = 0; i < HELPER_FDS; i++) close(fds[i]);
    }
}

static void stop_helper(struct hako_exec_target *t) {
    close_if(&t->helper_sock);
    // Its end of the socket closed, it exits by itself; the kill makes sure. The caller reaps it.
    if (t->helper_pid > 0) kill(t->helper_pid, SIGKILL);
    t->helper_pid = 0;
}

void hako_exec_target_close(struct hako_exec_target *t) {
    stop_helper(t);
    t->pid = 0;
}

// Reads one message of the helper within timeout_ms: its pid or readiness (an
// int32), or a failure. Returns 0 with *value; -1 with *fail when the helper
// answered with a failure; -2 with *fail when it did not answer in time or is gone.
static int helper_reply(int sock, int timeout_ms, int32_t *value, struct hako_failure *fail) {
    struct pollfd pf = { .fd = sock, .events = POLLIN };
    int r;
    while ((r = poll(&pf, 1, timeout_ms)) < 0 && errno == EINTR) {}
    if (r == 0) { parent_fail(fail, HAKO_STAGE_CLONE, ETIMEDOUT, "probe helper"); return -2; }
    union { int32_t v; struct hako_failure f; } msg;
    ssize_t n;
    while ((n = recv(sock, &msg, sizeof msg, 0)) < 0 && errno == EINTR) {}
    if (n == (ssize_t)sizeof msg.v) { *value = msg.v; return 0; }
    if (n == (ssize_t)sizeof msg.f) { msg.f.detail[sizeof msg.f.detail - 1] = 0; *fail = msg.f; return -1; }
    parent_fail(fail, HAKO_STAGE_CLONE, n < 0 ? errno : EPIPE, "probe helper died");
    return -2;
}

static int start_helper(const struct hako_spec *s, struct hako_exec_target *t, struct hako_failure *fail) {
    int sv[2] = {-1, -1}, nsfd[HAKO_EXEC_NS], null_fd = -1, e = 0;
    for (int i = 0; i < HAKO_EXEC_NS; i++) nsfd[i] = -1;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0 || (null_fd = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0) e = errno;
    for (int i = 0; i < HAKO_EXEC_NS && !e; i++)
        if (!same_ns(t->pid, exec_ns_order[i].name) && (nsfd[i] = open_ns(t->pid, exec_ns_order[i].name)) < 0) e = errno;
    long pid = -1;
    if (!e) {
        int unused = -1;
        pid = clone3_raw(0, &unused, -1);
        if (pid == 0) { close(sv[0]); helper_main(s, sv[1], null_fd, nsfd); }
        if (pid < 0) e = errno;
    }
    for (int i = 0; i < HAKO_EXEC_NS; i++) close_if(&nsfd[i]);
    close_if(&null_fd); close_if(&sv[1]);
    if (e) { close_if(&sv[0]); return parent_fail(fail, HAKO_STAGE_CLONE, e, "probe helper"); }
    t->helper_pid = (pid_t)pid;
    t->helper_sock = sv[0];
    int32_t ready;
    // Confined, it goes into the container's cgroups (with the container's OOM
    // score): every process it starts is born there.
    if (helper_reply(t->helper_sock, 5000, &ready, fail) < 0 || join_cgroups((pid_t)pid, s, 0, 0, fail) < 0) {
        stop_helper(t);
        return -1;
    }
    return 0;
}

void hako_exec_target_open(const struct hako_spec *s, pid_t target, struct hako_exec_target *t) {
    memset(t, 0, sizeof *t);
    t->helper_sock = -1;
    t->pid = target;
    // A container with its own user namespace, or an AppArmor profile (entered
    // at each exec), keeps hako_exec's path; so does one whose helper cannot start.
    struct hako_failure f;
    if (same_ns(target, "user") && !s->apparmor) start_helper(s, t, &f);
}

int hako_exec_prepared(const struct hako_spec *s, struct hako_exec_target *t, const int *stdio_fds, int timeout_ms,
                       struct hako_proc *out, struct hako_failure *fail) {
    if (t->helper_sock < 0) return hako_exec_bounded(s, t->pid, stdio_fds, timeout_ms, out, fail);
    memset(out, 0, sizeof *out);
    out->pidfd = out->stdin_fd = out->stdout_fd = out->stderr_fd = out->mntns_fd = -1;
    int fds[HELPER_FDS] = { stdio_fds[1], stdio_fds[2] };
    union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof fds)]; } u;
    memset(&u, 0, sizeof u);
    char byte = 'P';
    struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
    struct cmsghdr *h = CMSG_FIRSTHDR(&m);
    h->cmsg_level = SOL_SOCKET;
    h->cmsg_type = SCM_RIGHTS;
    h->cmsg_len = CMSG_LEN(sizeof fds);
    memcpy(CMSG_DATA(h), fds, sizeof fds);
    int32_t pid = 0;
    ssize_t sent;
    while ((sent = sendmsg(t->helper_sock, &m, MSG_NOSIGNAL)) < 0 && errno == EINTR) {}
    int r = sent == 1 ? helper_reply(t->helper_sock, timeout_ms < 0 ? -1 : timeout_ms, &pid, fail) : -2;
    if (r == 0) { out->pid = pid; return 0; }
    // A container at its pids limit: the helper, inside it, cannot fork, but a
    // process placed in its cgroups after its fork (hako_exec's path) can, as
    // Docker's probe can.
    if (r == -1 && fail->stage == HAKO_STAGE_CLONE && fail->err == EAGAIN)
        return hako_exec_bounded(s, t->pid, stdio_fds, timeout_ms, out, fail);
    if (r == -1) return -1;  // the process could not start (its failure, or the helper's clone's)
    // The helper is gone, or stuck (a container frozen meanwhile): it is stopped
    // and the target closed, so that the next process starts a new one. A stuck
    // one is this process's timeout; a gone one, hako_exec's path this time.
    pid_t target = t->pid;
    int stuck = sent == 1 && fail->err == ETIMEDOUT;
    hako_exec_target_close(t);
    if (stuck) return -1;
    return hako_exec_bounded(s, target, stdio_fds, timeout_ms, out, fail);
}
