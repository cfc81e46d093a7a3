// The path between clone() and execve(): a container's init (hako_spawn) and a
// process joining a running container (hako_exec).
//
// Rules for everything reached from the child side: no malloc, no stdio, no
// locks — only syscalls and pure functions — because the caller may be a
// multi-threaded Swift process. Each failure is written once to the error pipe
// as struct hako_failure and the child exits; the parent reaps it.
#include "hako_shim.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/mount.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <time.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef KEYCTL_JOIN_SESSION_KEYRING
#define KEYCTL_JOIN_SESSION_KEYRING 1
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#endif

// ---------------------------------------------------------------------------
// async-signal-safe helpers

static size_t s_len(const char *s) { size_t n = 0; while (s[n]) n++; return n; }

// Appends src to dst (capacity cap); returns 0, or -1 when it would not fit.
static int s_cat(char *dst, size_t cap, const char *src) {
    size_t a = s_len(dst), b = s_len(src);
    if (a + b + 1 > cap) return -1;
    memcpy(dst + a, src, b + 1);
    return 0;
}

static void s_itoa(long v, char *out) {
    char tmp[24]; int i = 0; int neg = v < 0;
    unsigned long u = neg ? (unsigned long)(-v) : (unsigned long)v;
    do { tmp[i++] = (char)('0' + u % 10); u /= 10; } while (u);
    int j = 0;
    if (neg) out[j++] = '-';
    while (i) out[j++] = tmp[--i];
    out[j] = 0;
}

static void fd_path(int fd, char out[32]) {
    out[0] = 0;
    s_cat(out, 32, "/proc/self/fd/");
    char n[24]; s_itoa(fd, n);
    s_cat(out, 32, n);
}

static int write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) { if (errno == EINTR) continue; return -1; }
        p += w; n -= (size_t)w;
    }
    return 0;
}

static int write_file(const char *path, const char *data) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    int r = write_all(fd, data, s_len(data));
    int e = errno;
    close(fd);
    errno = e;
    return r;
}

static ssize_t read_full(int fd, void *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r < 0) { if (errno == EINTR) continue; return -1; }
        if (r == 0) break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

struct child {
    const struct hako_spec *s;
    int sync_r;
    int err_w;
    int console_w;
    int stdio[3];
    int tty_slave;
    const char *tty_slave_path;
    int overlay_fd;   // a detached overlay built by the parent, or -1
    int fifo_fd;      // O_PATH fd of the exec FIFO (create mode), or -1
};

// The parent's answer to a hooks report: the state JSON for createContainer and
// for startContainer hooks. The child has its own copy of this memory (no CLONE_VM).
static char hook_msg[131072];
static const char *hook_state[2];
static uint32_t hook_state_len[2];

__attribute__((noreturn))
static void child_fail(struct child *c, int stage, int err, const char *detail) {
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
static void reset_signals(void) {
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

static long clone3_raw(uint64_t flags, int *pidfd, int cgroup_fd) {
    struct clone_args a;
    memset(&a, 0, sizeof a);
    a.flags = flags;
    a.exit_signal = (flags & (CLONE_PARENT | CLONE_THREAD)) ? 0 : SIGCHLD;
    if (flags & CLONE_PIDFD) a.pidfd = (uint64_t)(uintptr_t)pidfd;
    if (flags & CLONE_INTO_CGROUP) a.cgroup = (uint64_t)cgroup_fd;
    return syscall(SYS_clone3, &a, sizeof a);
}

// Splits "/a/b/c" into parent "/a/b" and name "c" (in buf).
static int split_path(const char *path, char *parent, size_t cap, const char **name) {
    size_t n = s_len(path);
    if (n + 1 > cap) { errno = ENAMETOOLONG; return -1; }
    memcpy(parent, path, n + 1);
    while (n > 1 && parent[n - 1] == '/') parent[--n] = 0;
    char *slash = NULL;
    for (size_t i = 0; i < n; i++) if (parent[i] == '/') slash = parent + i;
    if (!slash || slash[1] == 0) { errno = EINVAL; return -1; }
    *name = path + (slash - parent) + 1;
    if (slash == parent) parent[1] = 0; else *slash = 0;
    return 0;
}

// Creates (if needed) a regular file at `path` inside the root; returns an O_PATH fd.
static int touch_in_root(int rootfd, const char *path) {
    char parent[4096]; const char *name;
    if (split_path(path, parent, sizeof parent, &name) < 0) return -1;
    int dir = hako_mkdir_in_root(rootfd, parent, 0755);
    if (dir < 0) return -1;
    close(dir);
    int fd = hako_open_in_root(rootfd, path, O_PATH, 0);
    if (fd >= 0) return fd;
    if (errno != ENOENT) return -1;
    int w = hako_open_in_root(rootfd, path, O_CREAT | O_WRONLY, 0644);
    if (w < 0) return -1;
    close(w);
    return hako_open_in_root(rootfd, path, O_PATH, 0);
}

// Flags a bind mount must keep when remounted (the kernel refuses to clear locked ones).
static unsigned long locked_flags(int fd) {
    struct statvfs v;
    unsigned long f = 0;
    if (fstatvfs(fd, &v) < 0) return 0;
    if (v.f_flag & ST_NOSUID) f |= MS_NOSUID;
    if (v.f_flag & ST_NODEV) f |= MS_NODEV;
    if (v.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
    if (v.f_flag & ST_NOATIME) f |= MS_NOATIME;
    if (v.f_flag & ST_NODIRATIME) f |= MS_NODIRATIME;
    if (v.f_flag & ST_RELATIME) f |= MS_RELATIME;
    return f;
}

static void mount_propagation(struct child *c, int rootfd, const struct hako_mount *m) {
    char tp[32];
    unsigned long prop = m->flags & (MS_PRIVATE | MS_SLAVE | MS_SHARED | MS_UNBINDABLE);
    int n = hako_open_in_root(rootfd, m->target, O_PATH, 0);
    if (n < 0) child_fail(c, HAKO_STAGE_MOUNT, errno, m->target);
    fd_path(n, tp);
    if (mount(NULL, tp, NULL, prop | (m->flags & MS_REC), NULL) < 0) child_fail(c, HAKO_STAGE_MOUNT, errno, m->target);
    close(n);
}

// Recursive mount attributes ("rro" and friends): mount_setattr(AT_RECURSIVE).
static void mount_attributes(struct child *c, int rootfd, const struct hako_mount *m) {
    if (!m->attr_set && !m->attr_clr) return;
    int n = hako_open_in_root(rootfd, m->target, O_PATH, 0);
    if (n < 0) child_fail(c, HAKO_STAGE_MOUNT, errno, m->target);
    struct mount_attr a;
    memset(&a, 0, sizeof a);
    a.attr_set = m->attr_set;
    a.attr_clr = m->attr_clr;
    if (syscall(SYS_mount_setattr, n, "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof a) < 0)
        child_fail(c, HAKO_STAGE_MOUNT, errno, m->target);
    close(n);
}

static void do_mount(struct child *c, int rootfd, const struct hako_mount *m) {
    char tp[32], sp[32];
    if (m->kind == HAKO_MNT_SYMLINK) {
        char parent[4096]; const char *name;
        if (split_path(m->target, parent, sizeof parent, &name) < 0) child_fail(c, HAKO_STAGE_MOUNT, errno, m->target);
        int dir = hako_mkdir_in_root(rootfd, parent, 0755);
        if (dir < 0) child_fail(c, HAKO_STAGE_MOUNT, errno, m->target);
        // O_PATH dirs cannot be used with symlinkat; reopen as a real directory fd.
        fd_path(dir, tp);
        int real = open(tp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        close(dir);
        if (real < 0) child_fail(c, HAKO_STAGE_MOUNT, errno, m->target);
        if (symlinkat(m->source, real, name) < 0 && errno != EEXIST) child_fail(c, HAKO_STAGE_MOUNT, errno, m->target);
        close(real);
        return;
    }
    unsigned long propagation = m->flags & (MS_PRIVATE | MS_SLAVE | MS_SHARED | MS_UNBINDABLE);
    if (m->kind == HAKO_MNT_FS) {
        int t = hako_mkdir_in_root(rootfd, m->target, 0755);
        if (t < 0) child_fail(c, HAKO_STAGE_MOUNT, errno, m->target);
        fd_path(t, tp);
        if (mount(m->source[0] ? m->source : m->fstype, tp, m->fstype, m->flags & ~(propagation | MS_REC), m->data[0] ? m->data : NULL) < 0)
            child_fail(c, HAKO_STAGE_MOUNT, errno, m->target);
        close(t);
        if (propagation) mount_propagation(c, rootfd, m);
        mount_attributes(c, rootfd, m);
        return;
    }
    // bind
    int src = open(m->source, O_PATH | O_CLOEXEC);
    if (src < 0) child_fail(c, HAKO_STAGE_MOUNT, errno, m->source);
    struct stat st;
    if (fstat(src, &st) < 0) child_fail(c, HAKO_STAGE_MOUNT, errno, m->source);
    int t = S_ISDIR(st.st_mode) ? hako_mkdir_in_root(rootfd, m->target, 0755) : touch_in_root(rootfd, m->target);
    if (t < 0) child_fail(c, HAKO_STAGE_MOUNT, errno, m->target);
    fd_path(src, sp);
    fd_path(t, tp);
    if (mount(sp, tp, NULL, MS_BIND | (m->flags & MS_REC), NULL) < 0) child_fail(c, HAKO_STAGE_MOUNT, errno, m->target);
    close(t);
    close(src);
    unsigned long extra = m->flags & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC);
    if (extra) {
        int n = hako_open_in_root(rootfd, m->target, O_PATH, 0);
        if (n < 0) child_fail(c, HAKO_STAGE_MOUNT, errno, m->target);
        fd_path(n, tp);
        if (mount(NULL, tp, NULL, MS_REMOUNT | MS_BIND | extra | locked_flags(n), NULL) < 0)
            child_fail(c, HAKO_STAGE_MOUNT, errno, m->target);
        close(n);
    }
    if (propagation) mount_propagation(c, rootfd, m);
    mount_attributes(c, rootfd, m);
}

static void make_device(struct child *c, int rootfd, const struct hako_device *d) {
    char parent[4096]; const char *name;
    if (split_path(d->path, parent, sizeof parent, &name) < 0) child_fail(c, HAKO_STAGE_DEVICE, errno, d->path);
    int dir = hako_mkdir_in_root(rootfd, parent, 0755);
    if (dir < 0) child_fail(c, HAKO_STAGE_DEVICE, errno, d->path);
    char tp[32];
    fd_path(dir, tp);
    int real = open(tp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    close(dir);
    if (real < 0) child_fail(c, HAKO_STAGE_DEVICE, errno, d->path);
    mode_t type = d->type == 'b' ? S_IFBLK : d->type == 'p' ? S_IFIFO : S_IFCHR;
    unlinkat(real, name, 0);
    if (mknodat(real, name, type | (d->mode & 07777), type == S_IFIFO ? 0 : makedev(d->major, d->minor)) < 0) {
        int e = errno;
        // Inside a user namespace mknod is refused: bind the host's node instead.
        if (e == EPERM) {
            int w = openat(real, name, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
            if (w >= 0) close(w);
            int src = open(d->source ? d->source : d->path, O_PATH | O_CLOEXEC);
            int t = hako_open_in_root(rootfd, d->path, O_PATH, 0);
            if (src >= 0 && t >= 0) {
                char sp[32];
                fd_path(src, sp); fd_path(t, tp);
                if (mount(sp, tp, NULL, MS_BIND, NULL) == 0) { close(src); close(t); close(real); return; }
            }
        }
        child_fail(c, HAKO_STAGE_DEVICE, e, d->path);
    }
    if (fchownat(real, name, d->uid, d->gid, AT_SYMLINK_NOFOLLOW) < 0) child_fail(c, HAKO_STAGE_DEVICE, errno, d->path);
    // mknod obeys the umask; set the mode exactly.
    fchmodat(real, name, d->mode & 07777, 0);
    close(real);
}

static void setup_console(struct child *c, int rootfd) {
    const struct hako_spec *s = c->s;
    int master = hako_open_in_root(rootfd, "/dev/pts/ptmx", O_RDWR | O_NOCTTY, 0);
    if (master < 0) child_fail(c, HAKO_STAGE_CONSOLE, errno, "/dev/pts/ptmx");
    int unlock = 0, n = 0;
    if (ioctl(master, TIOCSPTLCK, &unlock) < 0 || ioctl(master, TIOCGPTN, &n) < 0)
        child_fail(c, HAKO_STAGE_CONSOLE, errno, "/dev/pts/ptmx");
    char path[48] = "/dev/pts/", num[24];
    s_itoa(n, num);
    s_cat(path, sizeof path, num);
    int slave = hako_open_in_root(rootfd, path, O_RDWR | O_NOCTTY, 0);
    if (slave < 0) child_fail(c, HAKO_STAGE_CONSOLE, errno, path);
    if (s->tty_rows && s->tty_cols) hako_tty_set_size(slave, (uint16_t)s->tty_rows, (uint16_t)s->tty_cols);
    int t = touch_in_root(rootfd, "/dev/console");
    if (t < 0) child_fail(c, HAKO_STAGE_CONSOLE, errno, "/dev/console");
    char sp[32], tp[32];
    fd_path(slave, sp); fd_path(t, tp);
    if (mount(sp, tp, NULL, MS_BIND, NULL) < 0) child_fail(c, HAKO_STAGE_CONSOLE, errno, "/dev/console");
    close(t);
    if (hako_send_fd(c->console_w, master) < 0) child_fail(c, HAKO_STAGE_CONSOLE, errno, "send terminal");
    close(master);
    c->tty_slave = slave;
}

// Masks paths (/dev/null over a file, an empty read-only tmpfs over a directory)
// and makes read-only paths read-only, resolving each inside the new root.
static void apply_masks(struct child *c) {
    const struct hako_spec *s = c->s;
    if (!s->nmasked && !s->nreadonly) return;
    int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0) child_fail(c, HAKO_STAGE_MASK, errno, "/");
    int null = -1;
    if (s->nmasked) {
        null = open("/dev/null", O_PATH | O_CLOEXEC | O_NOFOLLOW);
        struct stat st;
        // The mask source must be the real null device (CVE-2025-31133 class).
        if (null < 0 || fstat(null, &st) < 0 || !S_ISCHR(st.st_mode) || major(st.st_rdev) != 1 || minor(st.st_rdev) != 3)
            child_fail(c, HAKO_STAGE_MASK, null < 0 ? errno : EPERM, "/dev/null is not the null device");
    }
    char tp[32], sp[32];
    for (int i = 0; i < s->nmasked; i++) {
        int fd = hako_open_in_root(root, s->masked[i], O_PATH | O_NOFOLLOW, 0);
        if (fd < 0) { if (errno == ENOENT) continue; child_fail(c, HAKO_STAGE_MASK, errno, s->masked[i]); }
        struct stat st;
        if (fstat(fd, &st) < 0) child_fail(c, HAKO_STAGE_MASK, errno, s->masked[i]);
        fd_path(fd, tp);
        int r;
        if (S_ISDIR(st.st_mode)) {
            r = mount("tmpfs", tp, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0,mode=0555");
        } else if (S_ISLNK(st.st_mode)) {
            r = 0;  // a symlink cannot be a mount target; nothing to read through it here
        } else {
            fd_path(null, sp);
            r = mount(sp, tp, NULL, MS_BIND, NULL);
        }
        if (r < 0) child_fail(c, HAKO_STAGE_MASK, errno, s->masked[i]);
        close(fd);
    }
    for (int i = 0; i < s->nreadonly; i++) {
        int fd = hako_open_in_root(root, s->readonly[i], O_PATH | O_NOFOLLOW, 0);
        if (fd < 0) { if (errno == ENOENT) continue; child_fail(c, HAKO_STAGE_READONLY, errno, s->readonly[i]); }
        fd_path(fd, tp);
        if (mount(tp, tp, NULL, MS_BIND | MS_REC, NULL) < 0) child_fail(c, HAKO_STAGE_READONLY, errno, s->readonly[i]);
        close(fd);
        fd = hako_open_in_root(root, s->readonly[i], O_PATH | O_NOFOLLOW, 0);
        if (fd < 0) child_fail(c, HAKO_STAGE_READONLY, errno, s->readonly[i]);
        fd_path(fd, tp);
        if (mount(NULL, tp, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_REC | locked_flags(fd), NULL) < 0)
            child_fail(c, HAKO_STAGE_READONLY, errno, s->readonly[i]);
        close(fd);
    }
    if (null >= 0) close(null);
    close(root);
}

static void apply_sysctls(struct child *c) {
    const struct hako_spec *s = c->s;
    for (int i = 0; i < s->nsysctl; i++) {
        char path[512] = "/proc/sys/";
        size_t base = s_len(path);
        const char *k = s->sysctl_key[i];
        size_t n = s_len(k);
        if (base + n + 1 > sizeof path) child_fail(c, HAKO_STAGE_SYSCTL, ENAMETOOLONG, k);
        for (size_t j = 0; j <= n; j++) path[base + j] = k[j] == '.' ? '/' : k[j];
        if (write_file(path, s->sysctl_val[i]) < 0) child_fail(c, HAKO_STAGE_SYSCTL, errno, k);
    }
}

static void apply_rlimits(struct child *c) {
    const struct hako_spec *s = c->s;
    for (int i = 0; i < s->nrlimits; i++) {
        struct rlimit l = { .rlim_cur = s->rlimits[i].soft, .rlim_max = s->rlimits[i].hard };
        if (setrlimit((int)s->rlimits[i].resource, &l) < 0) child_fail(c, HAKO_STAGE_RLIMIT, errno, NULL);
    }
}

static void setup_stdio(struct child *c) {
    if (c->tty_slave >= 0) {
        if (ioctl(c->tty_slave, TIOCSCTTY, 0) < 0) child_fail(c, HAKO_STAGE_CONSOLE, errno, "TIOCSCTTY");
        for (int i = 0; i < 3; i++)
            if (dup2(c->tty_slave, i) < 0) child_fail(c, HAKO_STAGE_STDIO, errno, NULL);
        if (c->tty_slave > 2) close(c->tty_slave);
        return;
    }
    // Move the fds out of the way first so that dup2 onto 0..2 never clobbers one.
    int high[3];
    for (int i = 0; i < 3; i++) {
        int fd = c->stdio[i];
        if (fd < 0) {
            fd = open("/dev/null", (i == 0 ? O_RDONLY : O_WRONLY) | O_CLOEXEC);
            if (fd < 0) child_fail(c, HAKO_STAGE_STDIO, errno, "/dev/null");
        }
        high[i] = fcntl(fd, F_DUPFD_CLOEXEC, 10);
        if (high[i] < 0) child_fail(c, HAKO_STAGE_STDIO, errno, NULL);
    }
    for (int i = 0; i < 3; i++)
        if (dup2(high[i], i) < 0) child_fail(c, HAKO_STAGE_STDIO, errno, NULL);
}

static int has_cap(uint64_t set, int cap) { return (set >> cap) & 1; }

static int load_seccomp(const struct hako_spec *s, struct sock_fprog *prog) {
    if (s->seccomp_flags) return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, s->seccomp_flags, prog);
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, prog, 0, 0);
}

// User, groups, capabilities, no_new_privs, seccomp — the tail shared by the
// container's init and exec.
static void apply_privileges(struct child *c) {
    const struct hako_spec *s = c->s;
    int seccomp_done = 0;
    struct sock_fprog prog = { .len = (unsigned short)(s->seccomp_len / sizeof(struct sock_filter)),
                               .filter = (struct sock_filter *)(uintptr_t)s->seccomp };
    if (s->has_caps) {
        // The kernel's last capability: probe up from 40 (Linux 5.9+), not down from 63.
        int last = 40;
        while (last < 63 && prctl(PR_CAPBSET_READ, last + 1, 0, 0, 0) >= 0) last++;
        while (last > 0 && prctl(PR_CAPBSET_READ, last, 0, 0, 0) < 0) last--;
        for (int cap = 0; cap <= last; cap++)
            if (!has_cap(s->caps[0], cap) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
                child_fail(c, HAKO_STAGE_CAPS, errno, "bounding set");
        if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) child_fail(c, HAKO_STAGE_CAPS, errno, "keepcaps");
    }
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: do it while we still have it.
    if (s->seccomp && !s->no_new_privs) {
        if (load_seccomp(s, &prog) < 0) child_fail(c, HAKO_STAGE_SECCOMP, errno, NULL);
        seccomp_done = 1;
    }
    gid_t groups[64];
    for (int i = 0; i < s->ngroups; i++) groups[i] = s->groups[i];
    if (setgroups((size_t)s->ngroups, groups) < 0 && !(errno == EPERM && s->ngroups == 0))
        child_fail(c, HAKO_STAGE_SETGROUPS, errno, NULL);
    if (setresgid(s->gid, s->gid, s->gid) < 0) child_fail(c, HAKO_STAGE_SETGID, errno, NULL);
    if (setresuid(s->uid, s->uid, s->uid) < 0) child_fail(c, HAKO_STAGE_SETUID, errno, NULL);
    if (s->has_caps) {
        struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
        struct __user_cap_data_struct d[2];
        memset(d, 0, sizeof d);
        d[0].effective = (uint32_t)s->caps[1]; d[1].effective = (uint32_t)(s->caps[1] >> 32);
        d[0].permitted = (uint32_t)s->caps[2]; d[1].permitted = (uint32_t)(s->caps[2] >> 32);
        d[0].inheritable = (uint32_t)s->caps[3]; d[1].inheritable = (uint32_t)(s->caps[3] >> 32);
        if (syscall(SYS_capset, &h, d) < 0) child_fail(c, HAKO_STAGE_CAPS, errno, "capset");
        for (int cap = 0; cap < 64; cap++)
            if (has_cap(s->caps[4], cap) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
                child_fail(c, HAKO_STAGE_CAPS, errno, "ambient set");
    }
    if (s->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) child_fail(c, HAKO_STAGE_NO_NEW_PRIVS, errno, NULL);
    if (s->seccomp && !seccomp_done && load_seccomp(s, &prog) < 0)
        child_fail(c, HAKO_STAGE_SECCOMP, errno, NULL);
}

static const char *env_path(const struct hako_spec *s) {
    for (int i = 0; i < s->envc; i++)
        if (strncmp(s->envp[i], "PATH=", 5) == 0) return s->envp[i] + 5;
    return "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
}

__attribute__((noreturn))
static void exec_program(struct child *c) {
    const struct hako_spec *s = c->s;
    const char *file = s->argv[0];
    char *const *argv = (char *const *)s->argv;
    char *const *envp = (char *const *)s->envp;
    if (file[0] == 0) child_fail(c, HAKO_STAGE_EXEC_NOT_FOUND, ENOENT, file);
    if (strchr(file, '/')) {
        execve(file, argv, envp);
        child_fail(c, errno == ENOENT || errno == ENOTDIR ? HAKO_STAGE_EXEC_NOT_FOUND : HAKO_STAGE_EXEC, errno, file);
    }
    const char *p = env_path(s);
    int saw_eacces = 0;
    char buf[4096];
    while (1) {
        const char *colon = strchr(p, ':');
        size_t n = colon ? (size_t)(colon - p) : s_len(p);
        size_t fl = s_len(file);
        if (n + fl + 2 <= sizeof buf) {
            if (n == 0) { buf[0] = '.'; n = 1; } else memcpy(buf, p, n);
            buf[n] = '/';
            memcpy(buf + n + 1, file, fl + 1);
            execve(buf, argv, envp);
            if (errno == EACCES) saw_eacces = 1;
            else if (errno != ENOENT && errno != ENOTDIR) child_fail(c, HAKO_STAGE_EXEC, errno, file);
        }
        if (!colon) break;
        p = colon + 1;
    }
    if (saw_eacces) child_fail(c, HAKO_STAGE_EXEC, EACCES, file);
    child_fail(c, HAKO_STAGE_EXEC_NOT_FOUND, ENOENT, file);
}

// Enters the working directory, first as root before the process's user and
// filter apply (a directory only root can reach), else again after them (a
// directory only the user can reach). Returns -1 when it must be retried late.
static int enter_cwd(struct child *c, int late) {
    const char *cwd = c->s->cwd && c->s->cwd[0] ? c->s->cwd : "/";
    if (chdir(cwd) < 0) {
        if (!late && (errno == EACCES || errno == EPERM)) return -1;
        child_fail(c, HAKO_STAGE_CHDIR, errno, cwd);
    }
    // The working directory must be inside the container's root (CVE-2024-21626 class).
    char buf[4096];
    long r = syscall(SYS_getcwd, buf, sizeof buf);
    if (r < 0 && late && errno == EPERM) return 0;  // the container's own seccomp filter refuses getcwd
    if (r < 0) child_fail(c, HAKO_STAGE_CHDIR, errno, cwd);
    if (buf[0] != '/') child_fail(c, HAKO_STAGE_CHDIR, EACCES, "working directory is outside the container");
    return 0;
}

// ---------------------------------------------------------------------------
// the container's init

// ---------------------------------------------------------------------------
// OCI runtime steps of the init path (create mode, hooks, extra process state)

static void report(struct child *c, int what) {
    struct hako_failure f;
    memset(&f, 0, sizeof f);
    f.stage = what;
    if (write_all(c->err_w, &f, sizeof f) < 0) _exit(1);
}

// An fd of ours that landed among the fds the program keeps (--preserve-fds)
// moves above them.
static int lift_fd(struct child *c, int fd) {
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

static void run_hooks(struct child *c, uint32_t kind) {
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
static void await_hook_state(struct child *c) {
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
static void close_fds_at_exec(struct child *c) {
    unsigned first = 3 + c->s->preserve_fds;
    if (hako_close_range_cloexec(first) < 0) {
        for (int fd = (int)first; fd < 1024; fd++) if (fd != c->err_w) fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    for (unsigned fd = 3; fd < first; fd++) fcntl((int)fd, F_SETFD, 0);
}

// Create mode: report "created", wait for `start` on the exec FIFO, run the
// startContainer hooks, exec. From the FIFO on, failures go to `start`.
__attribute__((noreturn))
static void wait_for_start(struct child *c) {
    const struct hako_spec *s = c->s;
    char prog[4096];
    const char *path = s->argc ? find_program(c, prog, sizeof prog) : NULL;
    prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);  // the caller exits; the init lives on
    report(c, HAKO_REPORT_CREATED);
    close(c->err_w);
    c->err_w = -1;
    char fp[32];
    fd_path(c->fifo_fd, fp);
    int w;
    do { w = open(fp, O_WRONLY | O_CLOEXEC); } while (w < 0 && errno == EINTR);
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
static void make_parent_private(struct child *c, const char *path) {
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

static void enter_time_namespace(struct child *c) {
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

// ---------------------------------------------------------------------------
// the container's init

static int attaches_itself(const struct hako_spec *s);
static void self_attach_cgroups(struct child *c);

__attribute__((noreturn))
static void container_child(struct child *c) {
    const struct hako_spec *s = c->s;
    char sync;
    if (read_full(c->sync_r, &sync, 1) != 1) _exit(1);  // the parent gave up
    if (!s->hook_sync) { close(c->sync_r); c->sync_r = -1; }
    if (sync != 'G') _exit(1);
    if (attaches_itself(s)) self_attach_cgroups(c);
    reset_signals();
    // Until the init reports "created" (create mode) or execs, it dies with its parent.
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    // Until execve this is the monitor's image: no process may open /proc/<pid>/exe
    // (CVE-2019-5736 class). execve makes the container's program dumpable again.
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    if (setsid() < 0) child_fail(c, HAKO_STAGE_NONE, errno, "setsid");
    if (s->preserve_fds) {
        c->sync_r = lift_fd(c, c->sync_r);
        c->err_w = lift_fd(c, c->err_w);
        c->console_w = lift_fd(c, c->console_w);
        c->overlay_fd = lift_fd(c, c->overlay_fd);
    }
    if (s->keyring && syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, s->keyring, 0, 0, 0) < 0 && errno != ENOSYS)
        child_fail(c, HAKO_STAGE_KEYRING, errno, s->keyring);

    if (s->clone_flags & CLONE_NEWUSER) {
        if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0) child_fail(c, HAKO_STAGE_USERNS, errno, NULL);
    }
    for (int i = 0; i < s->nnsjoin; i++) {
        if (s->nsjoin[i].type == CLONE_NEWPID) continue;  // joined by the parent: the init was cloned into it
        int fd = open(s->nsjoin[i].path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || hako_setns(fd, (int)s->nsjoin[i].type) < 0) child_fail(c, HAKO_STAGE_SETNS, errno, s->nsjoin[i].path);
        close(fd);
    }
    if (s->cgroupns && unshare(CLONE_NEWCGROUP) < 0) child_fail(c, HAKO_STAGE_CGROUPNS, errno, NULL);
    if (s->has_time_offsets) enter_time_namespace(c);
    if (s->exec_fifo) {
        c->fifo_fd = open(s->exec_fifo, O_PATH | O_CLOEXEC);
        if (c->fifo_fd < 0) child_fail(c, HAKO_STAGE_EXEC_FIFO, errno, s->exec_fifo);
        c->fifo_fd = lift_fd(c, c->fifo_fd);
    }

    if (mount(NULL, "/", NULL, s->propagation, NULL) < 0) child_fail(c, HAKO_STAGE_PROPAGATION, errno, "/");
    int custom_propagation = s->propagation != (MS_REC | MS_SLAVE);
    if (custom_propagation) make_parent_private(c, s->rootfs);
    if (c->overlay_fd >= 0) {
        if (hako_move_mount(c->overlay_fd, s->rootfs) < 0) child_fail(c, HAKO_STAGE_ROOTFS, errno, s->rootfs);
        close(c->overlay_fd);
    } else if (s->overlay) {
        if (s->overlay_dir && chdir(s->overlay_dir) < 0) child_fail(c, HAKO_STAGE_ROOTFS, errno, s->overlay_dir);
        if (mount("overlay", s->rootfs, "overlay", 0, s->overlay) < 0) child_fail(c, HAKO_STAGE_ROOTFS, errno, s->rootfs);
    } else if (mount(s->rootfs, s->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0) {
        child_fail(c, HAKO_STAGE_ROOTFS, errno, s->rootfs);
    }
    int rootfd = open(s->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) child_fail(c, HAKO_STAGE_ROOTFS, errno, s->rootfs);

    for (int i = 0; i < s->nmounts; i++) do_mount(c, rootfd, &s->mounts[i]);
    for (int i = 0; i < s->ndevices; i++) make_device(c, rootfd, &s->devices[i]);
    if (s->host_devices) {
        char where[600];
        if (hako_copy_host_devices(rootfd, where) < 0) child_fail(c, HAKO_STAGE_DEVICE, errno, where);
    }
    if (s->tty) setup_console(c, rootfd);
    if (s->cwd && s->cwd[0]) {
        int d = hako_mkdir_in_root(rootfd, s->cwd, 0755);
        if (d < 0) child_fail(c, HAKO_STAGE_CHDIR, errno, s->cwd);
        close(d);
    }
    if (s->hook_sync) {
        await_hook_state(c);
        run_hooks(c, HAKO_HOOK_CREATE_CONTAINER);
    }

    if (fchdir(rootfd) < 0) child_fail(c, HAKO_STAGE_PIVOT_ROOT, errno, s->rootfs);
    if (s->no_pivot) {
        if (mount(".", "/", NULL, MS_MOVE, NULL) < 0) child_fail(c, HAKO_STAGE_PIVOT_ROOT, errno, "move root");
        if (chroot(".") < 0) child_fail(c, HAKO_STAGE_PIVOT_ROOT, errno, "chroot");
    } else {
        if (hako_pivot_root(".", ".") < 0) child_fail(c, HAKO_STAGE_PIVOT_ROOT, errno, s->rootfs);
        if (umount2(".", MNT_DETACH) < 0) child_fail(c, HAKO_STAGE_PIVOT_ROOT, errno, "detach old root");
    }
    if (chdir("/") < 0) child_fail(c, HAKO_STAGE_PIVOT_ROOT, errno, "/");
    close(rootfd);
    // The root's own propagation, now that it is "/" (runc's order: the host is never touched).
    if (custom_propagation && mount(NULL, "/", NULL, s->propagation, NULL) < 0) child_fail(c, HAKO_STAGE_PROPAGATION, errno, "/");

    if (s->hostname && sethostname(s->hostname, s_len(s->hostname)) < 0) child_fail(c, HAKO_STAGE_HOSTNAME, errno, s->hostname);
    if (s->domainname && setdomainname(s->domainname, s_len(s->domainname)) < 0)
        child_fail(c, HAKO_STAGE_DOMAINNAME, errno, s->domainname);
    apply_sysctls(c);
    apply_masks(c);
    if (s->readonly_root && mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0)
        child_fail(c, HAKO_STAGE_READONLY, errno, "/");
    apply_rlimits(c);
    if (s->has_personality && personality(s->personality) < 0) child_fail(c, HAKO_STAGE_PERSONALITY, errno, NULL);
    setup_stdio(c);
    int cwd_late = enter_cwd(c, 0) < 0;
    apply_privileges(c);
    if (s->has_umask) umask((mode_t)s->umask);
    if (cwd_late) enter_cwd(c, 1);
    if (s->exec_fifo) wait_for_start(c);
    close_fds_at_exec(c);
    exec_program(c);
}

static void close_if(int *fd) { if (*fd >= 0) { close(*fd); *fd = -1; } }

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

// Whether the init joins its v1 cgroups itself (see self_attach_cgroups): not
// from inside a user namespace, whose root may not write the host's cgroup files.
static int attaches_itself(const struct hako_spec *s) {
    if (s->clone_flags & CLONE_NEWUSER) return 0;
    for (int i = 0; i < s->nnsjoin; i++) if (s->nsjoin[i].type == CLONE_NEWUSER) return 0;
    return 1;
}

// A v1 attach through cgroup.procs takes the kernel's cgroup-threadgroup lock
// for writing, whose first taker after a quiet period waits for an RCU grace
// period (4-40 ms measured here). A single-threaded task moving itself with
// "0" into `tasks` skips that lock: the init joins its v1 cgroups that way.
static void self_attach_cgroups(struct child *c) {
    const struct hako_spec *s = c->s;
    for (int i = 0; i < s->ncgroup_procs; i++) {
        char path[4096];
        size_t n = s_len(s->cgroup_procs[i]);
        const char *suffix = "cgroup.procs";
        size_t k = s_len(suffix);
        if (n < k || n - k + 6 > sizeof path || memcmp(s->cgroup_procs[i] + n - k, suffix, k) != 0)
            child_fail(c, HAKO_STAGE_CGROUP, EINVAL, s->cgroup_procs[i]);
        memcpy(path, s->cgroup_procs[i], n - k);
        memcpy(path + n - k, "tasks", 6);
        if (write_file(path, "0") < 0) child_fail(c, HAKO_STAGE_CGROUP, errno, path);
    }
}

static int join_cgroups(pid_t pid, const struct hako_spec *s, int placed_v2, int skip_v1, struct hako_failure *fail) {
    char num[24];
    // The parent sets the OOM score: the child, non-dumpable or in a user namespace, may not.
    if (s->has_oom_score_adj) {
        char path[48] = "/proc/", v[24];
        s_itoa(pid, num); s_cat(path, sizeof path, num); s_cat(path, sizeof path, "/oom_score_adj");
        s_itoa(s->oom_score_adj, v);
        if (write_file(path, v) < 0) return parent_fail(fail, HAKO_STAGE_OOM_SCORE, errno, NULL);
    }
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
}

void hako_launch_abort(struct hako_launch *l) {
    if (l->pid > 0) reap(l->pid);
    l->pid = 0;
    launch_close(l);
    close_if(&l->pidfd);
}

void hako_launch_release(struct hako_launch *l) {
    close_if(&l->sync_w); close_if(&l->report_r); close_if(&l->console_r);
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

int hako_launch_start(const struct hako_spec *s, const int *stdio_fds, struct hako_launch *l, struct hako_failure *fail) {
    int sync_p[2] = {-1, -1}, err_p[2] = {-1, -1}, cons[2] = {-1, -1};
    int in_p[2] = {-1, -1}, out_p[2] = {-1, -1}, errs_p[2] = {-1, -1};
    int cgfd = -1, pidfd = -1, ovl = -1;
    memset(l, 0, sizeof *l);
    l->pidfd = l->sync_w = l->report_r = l->console_r = l->stdin_w = l->stdout_r = l->stderr_r = -1;

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
    // A pid namespace to join takes the init's parent: setns makes it the one our next child is born in.
    int own_pidns = -1;
    for (int i = 0; i < s->nnsjoin; i++) {
        if (s->nsjoin[i].type != CLONE_NEWPID) continue;
        own_pidns = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
        int fd = open(s->nsjoin[i].path, O_RDONLY | O_CLOEXEC);
        if (own_pidns < 0 || fd < 0 || hako_setns(fd, CLONE_NEWPID) < 0) {
            parent_fail(fail, HAKO_STAGE_SETNS, errno, s->nsjoin[i].path);
            if (fd >= 0) close(fd);
            close_if(&own_pidns);
            goto fail;
        }
        close(fd);
    }

    uint64_t flags = (s->clone_flags & ~(uint64_t)CLONE_NEWCGROUP) | CLONE_PIDFD;
    int placed_v2 = 0;
    long pid = -1;
    if (cgfd >= 0) {
        pid = clone3_raw(flags | CLONE_INTO_CGROUP, &pidfd, cgfd);
        if (pid >= 0) placed_v2 = 1;
    }
    if (pid < 0) pid = clone3_raw(flags, &pidfd, -1);
    if (pid < 0 && errno == ENOSYS) {
        pid = syscall(SYS_clone, (unsigned long)(s->clone_flags & ~(uint64_t)CLONE_NEWCGROUP) | SIGCHLD, NULL, NULL, NULL, NULL);
        pidfd = -1;
    }
    if (pid != 0 && own_pidns >= 0) {
        hako_setns(own_pidns, CLONE_NEWPID);
        close_if(&own_pidns);
    }
    if (pid < 0) { parent_fail(fail, HAKO_STAGE_CLONE, errno, NULL); goto fail; }

    if (pid == 0) {
        if (own_pidns >= 0) close(own_pidns);
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
    out->pidfd = out->stdin_fd = out->stdout_fd = out->stderr_fd = -1;
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
    // Join the target's namespaces. The user namespace first (only if it differs),
    // then the rest; the pid namespace applies to our children, so fork once more.
    static const struct { const char *name; int type; } order[] = {
        {"user", CLONE_NEWUSER}, {"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS}, {"net", CLONE_NEWNET},
        {"pid", CLONE_NEWPID}, {"cgroup", CLONE_NEWCGROUP}, {"mnt", CLONE_NEWNS},
    };
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        if (same_ns(target, order[i].name)) continue;
        int fd = open_ns(target, order[i].name);
        if (fd < 0) child_fail(c, HAKO_STAGE_SETNS, errno, order[i].name);
        if (hako_setns(fd, order[i].type) < 0) child_fail(c, HAKO_STAGE_SETNS, errno, order[i].name);
        close(fd);
    }
    (void)target_pidfd;
    int pidfd_unused = -1;
    long pid = -1;
    int32_t placed = 0;
    uint64_t flags = CLONE_PARENT;
    if (cgfd >= 0) { pid = clone3_raw(flags | CLONE_INTO_CGROUP, &pidfd_unused, cgfd); placed = pid >= 0; }
    if (pid < 0) pid = clone3_raw(flags, &pidfd_unused, -1);
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

int hako_exec(const struct hako_spec *s, pid_t target, int target_pidfd, const char *tty_slave_path,
              const int *stdio_fds, struct hako_proc *out, struct hako_failure *fail) {
    int sync_p[2] = {-1, -1}, err_p[2] = {-1, -1}, pid_p[2] = {-1, -1};
    int cgfd = -1;
    memset(out, 0, sizeof *out);
    out->pidfd = out->stdin_fd = out->stdout_fd = out->stderr_fd = -1;
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
    if (await_exec(err_p[0], pid, fail) < 0) goto fail;
    close_if(&err_p[0]);
    out->pid = pid;
    out->pidfd = hako_pidfd_open(pid);
    return 0;
fail:
    close_if(&sync_p[0]); close_if(&sync_p[1]); close_if(&err_p[0]); close_if(&err_p[1]);
    close_if(&pid_p[0]); close_if(&pid_p[1]); close_if(&cgfd);
    return -1;
}
