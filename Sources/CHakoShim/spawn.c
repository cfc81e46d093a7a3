// The path between clone() and execve(): a container's init (hako_spawn) and a
// process joining a running container (hako_exec).
//
// Rules for everything reached from the child side: no malloc, no stdio, no
// locks — only syscalls and pure functions — because the caller may be a
// multi-threaded Swift process. Each failure is written once to the error pipe
// as struct hako_failure and the child exits; the parent reaps it.
#include "hako_shim.h"
#include "spawn_internal.h"

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

#ifndef KEYCTL_JOIN_SESSION_KEYRING
#define KEYCTL_JOIN_SESSION_KEYRING 1
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#endif

// Splits "/a/b/c" into parent "/a/b" and name "c" (in buf).
// ---------------------------------------------------------------------------
// what the child does about its namespaces and cgroups

// Namespaces other than mount and user are joined by the parent around clone,
// so the child is born in them: after CLONE_NEWUSER the child could no longer
// join a namespace owned by the host's user namespace (the network namespace
// the engine made for the container), and a pid namespace only ever applies to
// the children of the process that joins it.
int hako_joined_by_child(uint32_t type) { return type == CLONE_NEWNS || type == CLONE_NEWUSER; }

// Whether the init joins its v1 cgroups itself (see self_attach_cgroups): not
// from inside a user namespace, whose root may not write the host's cgroup files.
int attaches_itself(const struct hako_spec *s) {
    if (s->clone_flags & CLONE_NEWUSER) return 0;
    for (int i = 0; i < s->nnsjoin; i++) if (s->nsjoin[i].type == CLONE_NEWUSER) return 0;
    return 1;
}

// A v1 attach through cgroup.procs takes the kernel's cgroup-threadgroup lock
// for writing, whose first taker after a quiet period waits for an RCU grace
// period (4-40 ms measured here). A single-threaded task moving itself with
// "0" into `tasks` skips that lock: the init joins its v1 cgroups that way.
void self_attach_cgroups(struct child *c) {
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

// The overlay mount again without ",volatile" when the kernel refused the
// option (before 5.10: EINVAL). 1 if mounted; else 0 with errno set.
static int mount_without_volatile(const struct hako_spec *s) {
    static const char suffix[] = ",volatile";
    size_t n = strlen(s->overlay), k = sizeof suffix - 1;
    if (!s->overlay_volatile || errno != EINVAL || n < k || n - k >= 4096 || memcmp(s->overlay + n - k, suffix, k) != 0) return 0;
    char data[4096];
    memcpy(data, s->overlay, n - k);
    data[n - k] = 0;
    return mount("overlay", s->rootfs, "overlay", 0, data) == 0;
}

// Creates (if needed) a regular file at `path` inside the root; returns an O_PATH fd.
static int touch_in_root(int rootfd, const char *path) {
    int fd = hako_open_in_root(rootfd, path, O_PATH, 0);
    if (fd >= 0) return fd;
    if (errno != ENOENT) return -1;
    char parent[4096]; const char *name;
    if (split_path(path, parent, sizeof parent, &name) < 0) return -1;
    int dir = hako_mkdir_in_root(rootfd, parent, 0755);
    if (dir < 0) return -1;
    close(dir);
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

// A mount's own propagation, set once it is in place (never the flags of the
// mount call itself: "bind" + "rshared" is a plain bind whose tree is shared).
static void mount_propagation(struct child *c, int rootfd, const struct hako_mount *m) {
    char tp[32];
    if (!m->propagation) return;
    int n = hako_open_in_root(rootfd, m->target, O_PATH, 0);
    if (n < 0) child_fail(c, HAKO_STAGE_MOUNT, errno, m->target);
    fd_path(n, tp);
    if (mount(NULL, tp, NULL, m->propagation, NULL) < 0) child_fail(c, HAKO_STAGE_PROPAGATION, errno, m->target);
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

// An empty volume takes the image's content at the mount point (as Docker does).
static void fill_volume(struct child *c, int rootfd, const struct hako_mount *m) {
    int e = hako_fill_volume(rootfd, m->target, m->source);
    if (e) child_fail(c, HAKO_STAGE_MOUNT, e, m->target);
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
    const unsigned long not_mount_flags = MS_PRIVATE | MS_SLAVE | MS_SHARED | MS_UNBINDABLE | MS_REC;
    if (m->kind == HAKO_MNT_FS) {
        int t = hako_mkdir_in_root(rootfd, m->target, 0755);
        if (t < 0) child_fail(c, HAKO_STAGE_MOUNT, errno, m->target);
        fd_path(t, tp);
        if (mount(m->source[0] ? m->source : m->fstype, tp, m->fstype, m->flags & ~not_mount_flags, m->data[0] ? m->data : NULL) < 0) {
            // sysfs can only be mounted by the owner of the network namespace: a
            // user-namespaced container in a namespace the engine made gets the
            // host's /sys bound instead (read-only), as runc does. Likewise
            // cgroup2, which the kernel refuses inside a user namespace
            // (EPERM, or EBUSY from a cgroup namespace it does not own): the
            // container's own cgroup2 directory is bound, the same view.
            int e = errno;
            const char *fallback = NULL;
            int rec = MS_REC;
            if (e == EPERM && strcmp(m->fstype, "sysfs") == 0) fallback = "/sys";
            if ((e == EPERM || e == EBUSY) && strcmp(m->fstype, "cgroup2") == 0 && c->s->cgroup_dir) {
                fallback = c->s->cgroup_dir;
                rec = 0;
            }
            if (!fallback) child_fail(c, HAKO_STAGE_MOUNT, e, m->target);
            if (mount(fallback, tp, NULL, MS_BIND | rec, NULL) < 0) child_fail(c, HAKO_STAGE_MOUNT, errno, m->target);
            close(t);
            t = hako_open_in_root(rootfd, m->target, O_PATH, 0);
            if (t < 0) child_fail(c, HAKO_STAGE_MOUNT, errno, m->target);
            fd_path(t, tp);
            if ((m->flags & MS_RDONLY) && mount(NULL, tp, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | locked_flags(t), NULL) < 0)
                child_fail(c, HAKO_STAGE_MOUNT, errno, m->target);
        }
        close(t);
        mount_propagation(c, rootfd, m);
        mount_attributes(c, rootfd, m);
        return;
    }
    // bind (a volume: filled first when new)
    if (m->kind == HAKO_MNT_VOLUME) fill_volume(c, rootfd, m);
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
    mount_propagation(c, rootfd, m);
    mount_attributes(c, rootfd, m);
}

// The spec's files (secrets and configs): a tmpfs made detached in this
// mount namespace (fsopen/fsmount: no path on the host ever shows it), each
// file written into it from the spec's bytes (which only the monitor's memory
// holds) with its owner and mode, the tmpfs made read-only, and each file
// bound onto its target in the root (an empty mount point is made first, as
// for any file bind). The tmpfs lives as long as those binds.
static void place_files(struct child *c, int rootfd) {
    const struct hako_spec *s = c->s;
    if (s->nfiles == 0) return;
    int fs = (int)syscall(SYS_fsopen, "tmpfs", FSOPEN_CLOEXEC);
    if (fs < 0) child_fail(c, HAKO_STAGE_MOUNT, errno, "fsopen tmpfs (files)");
    // Sized to the files (plus a page each), so nothing else fits in it.
    unsigned long long size = 0;
    for (int i = 0; i < s->nfiles; i++) size += s->files[i].len + 4096;
    char num[24];
    s_utoa((unsigned long)size, num);
    if (syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "size", num, 0) < 0
        || syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "mode", "0755", 0) < 0
        || syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
        child_fail(c, HAKO_STAGE_MOUNT, errno, "tmpfs (files)");
    int mnt = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
    if (mnt < 0) child_fail(c, HAKO_STAGE_MOUNT, errno, "fsmount tmpfs (files)");
    close(fs);
    for (int i = 0; i < s->nfiles; i++) {
        const struct hako_file *f = &s->files[i];
        char name[24];
        s_utoa((unsigned long)i, name);
        int w = openat(mnt, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (w < 0) child_fail(c, HAKO_STAGE_MOUNT, errno, f->target);
        if (write_all(w, f->data, f->len) < 0 || fchown(w, f->uid, f->gid) < 0 || fchmod(w, f->mode) < 0)
            child_fail(c, HAKO_STAGE_MOUNT, errno, f->target);
        close(w);
    }
    struct mount_attr ro;
    memset(&ro, 0, sizeof ro);
    ro.attr_set = MOUNT_ATTR_RDONLY;
    if (syscall(SYS_mount_setattr, mnt, "", AT_EMPTY_PATH, &ro, sizeof ro) < 0) child_fail(c, HAKO_STAGE_MOUNT, errno, "tmpfs (files) read-only");
    for (int i = 0; i < s->nfiles; i++) {
        const struct hako_file *f = &s->files[i];
        char name[24];
        s_utoa((unsigned long)i, name);
        int one = (int)syscall(SYS_open_tree, mnt, name, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
        if (one < 0) child_fail(c, HAKO_STAGE_MOUNT, errno, f->target);
        int t = touch_in_root(rootfd, f->target);
        if (t < 0) child_fail(c, HAKO_STAGE_MOUNT, errno, f->target);
        if (syscall(SYS_move_mount, one, "", t, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
            child_fail(c, HAKO_STAGE_MOUNT, errno, f->target);
        close(t);
        close(one);
    }
    close(mnt);
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

void setup_stdio(struct child *c) {
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
// The AppArmor profile the next execve enters (runc's order: before the
// capabilities are dropped). The kernel's own interface: attr/apparmor/exec,
// or attr/exec on kernels before 5.8.
static void apply_apparmor(struct child *c) {
    const char *profile = c->s->apparmor;
    if (!profile) return;
    char line[4200] = "exec ";
    if (s_cat(line, sizeof line, profile) < 0) child_fail(c, HAKO_STAGE_APPARMOR, ENAMETOOLONG, profile);
    int fd = open("/proc/thread-self/attr/apparmor/exec", O_WRONLY | O_CLOEXEC);
    if (fd < 0) fd = open("/proc/thread-self/attr/exec", O_WRONLY | O_CLOEXEC);
    if (fd < 0) child_fail(c, HAKO_STAGE_APPARMOR, errno, "/proc/thread-self/attr/apparmor/exec");
    size_t n = s_len(line);
    if (write(fd, line, n) != (ssize_t)n) child_fail(c, HAKO_STAGE_APPARMOR, errno, profile);
    close(fd);
}

void apply_privileges(struct child *c) {
    const struct hako_spec *s = c->s;
    int seccomp_done = 0;
    apply_apparmor(c);
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
    _Static_assert(sizeof(gid_t) == sizeof(uint32_t), "the spec's groups are gid_t");
    if (setgroups((size_t)s->ngroups, (const gid_t *)s->groups) < 0 && !(errno == EPERM && s->ngroups == 0))
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

__attribute__((noreturn))
void exec_program(struct child *c) {
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
int enter_cwd(struct child *c, int late) {
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

// The container's root in its own mount namespace: propagation, the root
// mount, the config's mounts and devices, the terminal, createContainer hooks,
// pivot_root (or move + chroot).
static void build_root(struct child *c) {
    const struct hako_spec *s = c->s;
    // An unbindable tree cannot be the source of the binds the root is built
    // with: the copy of the host's tree is private meanwhile, and the root
    // itself unbindable once it is "/" (below).
    unsigned long initial = s->propagation & MS_UNBINDABLE ? MS_PRIVATE | (s->propagation & MS_REC) : s->propagation;
    if (mount(NULL, "/", NULL, initial, NULL) < 0) child_fail(c, HAKO_STAGE_PROPAGATION, errno, "/");
    int custom_propagation = s->propagation != (MS_REC | MS_SLAVE);
    if (custom_propagation) make_parent_private(c, s->rootfs);
    if (c->overlay_fd >= 0) {
        if (hako_move_mount(c->overlay_fd, s->rootfs) < 0) child_fail(c, HAKO_STAGE_ROOTFS, errno, s->rootfs);
        close(c->overlay_fd);
    } else if (s->overlay) {
        if (s->overlay_dir && chdir(s->overlay_dir) < 0) child_fail(c, HAKO_STAGE_ROOTFS, errno, s->overlay_dir);
        if (mount("overlay", s->rootfs, "overlay", 0, s->overlay) < 0 && !mount_without_volatile(s))
            child_fail(c, HAKO_STAGE_ROOTFS, errno, s->rootfs);
    } else if (mount(s->rootfs, s->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0) {
        child_fail(c, HAKO_STAGE_ROOTFS, errno, s->rootfs);
    }
    int rootfd = open(s->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) child_fail(c, HAKO_STAGE_ROOTFS, errno, s->rootfs);

    for (int i = 0; i < s->nmounts; i++) do_mount(c, rootfd, &s->mounts[i]);
    for (int i = 0; i < s->ndevices; i++) make_device(c, rootfd, &s->devices[i]);
    place_files(c, rootfd);
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
    // Nothing this namespace detaches or moves may reach the host: with a
    // shared root propagation the host's tree copied into this namespace is a
    // peer of the host's own mounts, and a detach or an attach on a peer
    // propagates. So the mount that is detached (the old root) or attached on
    // (the "/" the root is moved onto) is made a slave first: it still
    // receives the host's events but sends none back.
    if (s->no_pivot) {
        if (mount(NULL, "/", NULL, MS_SLAVE, NULL) < 0) child_fail(c, HAKO_STAGE_PROPAGATION, errno, "/ (before moving the root)");
        if (mount(".", "/", NULL, MS_MOVE, NULL) < 0) child_fail(c, HAKO_STAGE_PIVOT_ROOT, errno, "move root");
        if (chroot(".") < 0) child_fail(c, HAKO_STAGE_PIVOT_ROOT, errno, "chroot");
    } else {
        // The old root, held so that "." can name it after the pivot: mount(2)
        // on "." acts on the working directory's own mount and would not reach
        // the old root stacked on top of the new one.
        int oldroot = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (oldroot < 0) child_fail(c, HAKO_STAGE_PIVOT_ROOT, errno, "/");
        if (hako_pivot_root(".", ".") < 0) child_fail(c, HAKO_STAGE_PIVOT_ROOT, errno, s->rootfs);
        if (fchdir(oldroot) < 0) child_fail(c, HAKO_STAGE_PIVOT_ROOT, errno, "old root");
        close(oldroot);
        if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0) child_fail(c, HAKO_STAGE_PROPAGATION, errno, "old root");
        if (umount2(".", MNT_DETACH) < 0) child_fail(c, HAKO_STAGE_PIVOT_ROOT, errno, "detach old root");
    }
    if (chdir("/") < 0) child_fail(c, HAKO_STAGE_PIVOT_ROOT, errno, "/");
    close(rootfd);
}

// The root's own propagation, now that it is "/" and every mount of the set-up
// is made (runc's order: the host is never touched; and the masks' binds come
// first, as an unbindable tree cannot be bound from).
static void set_root_propagation(struct child *c) {
    const struct hako_spec *s = c->s;
    if (s->propagation == (MS_REC | MS_SLAVE)) return;  // already so since build_root
    if (mount(NULL, "/", NULL, s->propagation, NULL) < 0) child_fail(c, HAKO_STAGE_PROPAGATION, errno, "/");
}

// What the engine set up while this init made its root (the cgroups' limits
// and device filter; a bridge network's interfaces, addresses and routes):
// one byte says it is in place (EOF: the engine could not, and says why
// itself). Before the program, and before its user, capabilities and seccomp
// filter are applied.
static void await_engine(struct child *c) {
    const struct hako_spec *s = c->s;
    if (s->ready_fd < 0) return;
    char ok;
    ssize_t r;
    do r = read(s->ready_fd, &ok, 1); while (r < 0 && errno == EINTR);
    if (r != 1) child_fail(c, HAKO_STAGE_READY, r < 0 ? errno : EPIPE, NULL);
    close(s->ready_fd);
}

__attribute__((noreturn))
void container_child(struct child *c) {
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
        if (!hako_joined_by_child(s->nsjoin[i].type)) continue;  // joined by the parent: the init was born in it
        int fd = open(s->nsjoin[i].path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || hako_setns(fd, (int)s->nsjoin[i].type) < 0) child_fail(c, HAKO_STAGE_SETNS, errno, s->nsjoin[i].path);
        close(fd);
    }
    if (s->cgroupns && unshare(CLONE_NEWCGROUP) < 0) child_fail(c, HAKO_STAGE_CGROUPNS, errno, NULL);
    if (s->has_time_offsets) enter_time_namespace(c);
    if (s->exec_fifo) {
        char dir[4096];
        if (split_path(s->exec_fifo, dir, sizeof dir, &c->fifo_name) < 0) child_fail(c, HAKO_STAGE_EXEC_FIFO, errno, s->exec_fifo);
        c->fifo_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (c->fifo_fd < 0) child_fail(c, HAKO_STAGE_EXEC_FIFO, errno, s->exec_fifo);
        c->fifo_fd = lift_fd(c, c->fifo_fd);
    }

    // Without a mount namespace of its own the container cannot mount anything
    // without changing the host's: it gets its root by chroot alone (runc's rule).
    int own_mounts = s->clone_flags & CLONE_NEWNS;
    for (int i = 0; i < s->nnsjoin; i++) if (s->nsjoin[i].type == CLONE_NEWNS) own_mounts = 1;
    if (own_mounts) {
        build_root(c);
    } else {
        if (s->hook_sync) {
            await_hook_state(c);
            run_hooks(c, HAKO_HOOK_CREATE_CONTAINER);
        }
        if (chroot(s->rootfs) < 0) child_fail(c, HAKO_STAGE_PIVOT_ROOT, errno, "chroot");
        if (chdir("/") < 0) child_fail(c, HAKO_STAGE_PIVOT_ROOT, errno, "/");
    }

    if (s->hostname && sethostname(s->hostname, s_len(s->hostname)) < 0) child_fail(c, HAKO_STAGE_HOSTNAME, errno, s->hostname);
    if (s->domainname && setdomainname(s->domainname, s_len(s->domainname)) < 0)
        child_fail(c, HAKO_STAGE_DOMAINNAME, errno, s->domainname);
    apply_sysctls(c);
    if (own_mounts) apply_masks(c);
    if (own_mounts && s->readonly_root && mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0)
        child_fail(c, HAKO_STAGE_READONLY, errno, "/");
    if (own_mounts) set_root_propagation(c);
    apply_rlimits(c);
    if (s->has_personality && personality(s->personality) < 0) child_fail(c, HAKO_STAGE_PERSONALITY, errno, NULL);
    setup_stdio(c);
    await_engine(c);
    int cwd_late = enter_cwd(c, 0) < 0;
    apply_privileges(c);
    if (s->has_umask) umask((mode_t)s->umask);
    if (cwd_late) enter_cwd(c, 1);
    if (s->exec_fifo) wait_for_start(c);
    close_fds_at_exec(c);
    exec_program(c);
}

