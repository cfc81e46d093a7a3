// User namespaces and the detached overlay root.
//
// A container in its own user namespace cannot mount the overlay itself with
// the host's semantics (overlay's trusted.* attributes, lower layers owned by
// host ids). So the parent — the monitor, root in the initial namespace —
// builds the overlay as a detached mount with the new mount API, the lower
// layers idmapped (mount_setattr MOUNT_ATTR_IDMAP) to the container's uid/gid
// maps, and the child moves it onto its rootfs inside its own mount namespace.
// Files owned by host uid 0 in an image then appear owned by the container's
// root, and what the container writes lands in the upper dir owned by the
// mapped ids: root in the container is never root on the host.
//
// Also here: copying the host's device nodes for --privileged (child side,
// async-signal-safe: raw getdents64, no malloc).
#include "hako_shim.h"
#include "spawn_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

static int u_fail(struct hako_failure *fail, int stage, int err, const char *what, const char *path) {
    memset(fail, 0, sizeof *fail);
    fail->stage = stage;
    fail->err = err;
    s_cat(fail->detail, sizeof fail->detail, what);
    if (path) { s_cat(fail->detail, sizeof fail->detail, " "); s_cat(fail->detail, sizeof fail->detail, path); }
    errno = err;
    return -1;
}

int hako_write_id_maps(pid_t pid, const struct hako_spec *s, struct hako_failure *fail) {
    char path[64], num[24], buf[1024];
    for (int kind = 0; kind < 2; kind++) {
        buf[0] = 0;
        for (int i = 0; i < s->nidmaps; i++) {
            if (s->idmaps[i].kind != (uint32_t)kind) continue;
            s_utoa(s->idmaps[i].inside, num); s_cat(buf, sizeof buf, num); s_cat(buf, sizeof buf, " ");
            s_utoa(s->idmaps[i].outside, num); s_cat(buf, sizeof buf, num); s_cat(buf, sizeof buf, " ");
            s_utoa(s->idmaps[i].count, num); s_cat(buf, sizeof buf, num); s_cat(buf, sizeof buf, "\n");
        }
        if (!buf[0]) continue;
        path[0] = 0;
        s_cat(path, sizeof path, "/proc/");
        s_utoa((unsigned long)pid, num); s_cat(path, sizeof path, num);
        s_cat(path, sizeof path, kind == 0 ? "/uid_map" : "/gid_map");
        if (write_file(path, buf) < 0) return u_fail(fail, HAKO_STAGE_USERNS, errno, "write", path);
    }
    return 0;
}

// A user namespace with the spec's maps, held by a short-lived helper process:
// returns an fd of it (idmapping needs only the mapping, not the container's own
// namespace, which does not exist yet).
static int mapped_userns(const struct hako_spec *s, struct hako_failure *fail) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) return u_fail(fail, HAKO_STAGE_USERNS, errno, "pipe", NULL);
    long pid = syscall(SYS_clone, (unsigned long)(CLONE_NEWUSER | SIGCHLD), NULL, NULL, NULL, NULL);
    if (pid < 0) { int e = errno; close(p[0]); close(p[1]); return u_fail(fail, HAKO_STAGE_USERNS, e, "clone user namespace", NULL); }
    if (pid == 0) {
        char c;
        close(p[1]);
        while (read(p[0], &c, 1) < 0 && errno == EINTR) {}
        _exit(0);
    }
    close(p[0]);
    int fd = -1;
    if (hako_write_id_maps((pid_t)pid, s, fail) == 0) {
        char path[64] = "/proc/", num[24];
        s_utoa((unsigned long)pid, num);
        s_cat(path, sizeof path, num);
        s_cat(path, sizeof path, "/ns/user");
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) u_fail(fail, HAKO_STAGE_USERNS, errno, "open", path);
    }
    close(p[1]);  // the helper exits
    while (waitpid((pid_t)pid, NULL, 0) < 0 && errno == EINTR) {}
    return fd;
}

// A detached copy of `path`, idmapped to the user namespace `userns` and read-only.
static int idmapped_clone(const char *path, int userns) {
    int fd = (int)syscall(SYS_open_tree, AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (fd < 0) return -1;
    struct mount_attr a;
    memset(&a, 0, sizeof a);
    a.attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY;
    a.userns_fd = (uint64_t)userns;
    if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH, &a, sizeof a) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int fs_set(int fs, const char *key, const char *value) {
    return (int)syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, key, value, 0);
}

int hako_detached_overlay(const struct hako_spec *s, struct hako_failure *fail) {
    int layers[HAKO_MAX_LAYERS];
    int nlayers = 0, userns = -1, fs = -1, mnt = -1;
    for (int i = 0; i < HAKO_MAX_LAYERS; i++) layers[i] = -1;
    // lowerdir: "/proc/self/fd/N:…" for idmapped layers (no ':' to escape), else the paths.
    static char lower[HAKO_MAX_LAYERS * 40 + 8192];
    lower[0] = 0;
    if (s->idmap_layers) {
        userns = mapped_userns(s, fail);
        if (userns < 0) goto out;
    }
    for (int i = 0; i < s->dov_nlower; i++) {
        if (i) s_cat(lower, sizeof lower, ":");
        if (s->idmap_layers) {
            layers[i] = idmapped_clone(s->dov_lower[i], userns);
            if (layers[i] < 0) { u_fail(fail, HAKO_STAGE_ROOTFS, errno, "idmapped mount of layer", s->dov_lower[i]); goto out; }
            nlayers = i + 1;
            char num[24];
            s_utoa((unsigned long)layers[i], num);
            s_cat(lower, sizeof lower, "/proc/self/fd/");
            s_cat(lower, sizeof lower, num);
        } else {
            for (const char *c = s->dov_lower[i]; *c; c++) {
                if (*c == ':' || *c == '\\') { if (s_cat(lower, sizeof lower, "\\") < 0) break; }
                char one[2] = { *c, 0 };
                if (s_cat(lower, sizeof lower, one) < 0) { u_fail(fail, HAKO_STAGE_ROOTFS, ENAMETOOLONG, "overlay lowerdir", NULL); goto out; }
            }
        }
    }
    fs = (int)syscall(SYS_fsopen, "overlay", FSOPEN_CLOEXEC);
    if (fs < 0) { u_fail(fail, HAKO_STAGE_ROOTFS, errno, "fsopen overlay", NULL); goto out; }
    if (fs_set(fs, "lowerdir", lower) < 0) { u_fail(fail, HAKO_STAGE_ROOTFS, errno, "overlay lowerdir", s->dov_lower[0]); goto out; }
    if (fs_set(fs, "upperdir", s->dov_upper) < 0) { u_fail(fail, HAKO_STAGE_ROOTFS, errno, "overlay upperdir", s->dov_upper); goto out; }
    if (fs_set(fs, "workdir", s->dov_work) < 0) { u_fail(fail, HAKO_STAGE_ROOTFS, errno, "overlay workdir", s->dov_work); goto out; }
    // Refused by a kernel without it (< 5.10): the mount goes on without.
    if (s->overlay_volatile) (void)syscall(SYS_fsconfig, fs, FSCONFIG_SET_FLAG, "volatile", NULL, 0);
    if (syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) { u_fail(fail, HAKO_STAGE_ROOTFS, errno, "create overlay", s->dov_upper); goto out; }
    mnt = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, 0);
    if (mnt < 0) u_fail(fail, HAKO_STAGE_ROOTFS, errno, "fsmount overlay", NULL);
out:
    for (int i = 0; i < nlayers; i++) if (layers[i] >= 0) close(layers[i]);
    if (fs >= 0) close(fs);
    if (userns >= 0) close(userns);
    return mnt;
}

// A stopped container's overlay, mounted detached for the caller alone (`hako cp`):
// `lowerdir` already joined with ':' and escaped. The mount fd, or -1 with errno.
int hako_overlay_mount(const char *lowerdir, const char *upperdir, const char *workdir) {
    int fs = (int)syscall(SYS_fsopen, "overlay", FSOPEN_CLOEXEC);
    if (fs < 0) return -1;
    int mnt = -1;
    if (fs_set(fs, "lowerdir", lowerdir) == 0 && fs_set(fs, "upperdir", upperdir) == 0 && fs_set(fs, "workdir", workdir) == 0
        && syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) == 0)
        mnt = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, 0);
    int e = errno;
    close(fs);
    errno = e;
    return mnt;
}

int hako_overlay_mount_idmapped(const char *const *lower, int nlower, const char *upperdir, const char *workdir,
                                uint32_t start, uint32_t count) {
    if (nlower < 1 || nlower > HAKO_MAX_LAYERS) { errno = EINVAL; return -1; }
    struct hako_spec *s = calloc(1, sizeof *s);
    if (!s) return -1;
    s->nidmaps = 2;
    s->idmaps[0] = (struct hako_idmap){ .kind = 0, .inside = 0, .outside = start, .count = count };
    s->idmaps[1] = (struct hako_idmap){ .kind = 1, .inside = 0, .outside = start, .count = count };
    s->idmap_layers = 1;
    s->dov_upper = upperdir;
    s->dov_work = workdir;
    for (int i = 0; i < nlower; i++) s->dov_lower[i] = lower[i];
    s->dov_nlower = nlower;
    struct hako_failure f;
    memset(&f, 0, sizeof f);
    // hako_detached_overlay builds its lowerdir in a static buffer (the monitor
    // calls it once, single-threaded); the engine may call this from several
    // threads at once (the API server's copies).
    static pthread_mutex_t one_at_a_time = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&one_at_a_time);
    int fd = hako_detached_overlay(s, &f);
    int e = errno;
    pthread_mutex_unlock(&one_at_a_time);
    free(s);
    errno = fd < 0 ? (f.err ? f.err : e) : 0;
    return fd;
}

struct copy_job {
    int overlay;
    const char *mountpoint;
    const struct hako_copy_bind *binds;
    int nbinds;
    int root, nsfd, failed, err;
};

// The mount point of a bind inside the root, made (a directory, or an empty
// file for a file) when missing; an O_PATH fd of it, or -1.
static int copy_mount_point(int root, const char *target, int directory) {
    int fd = hako_open_in_root(root, target, O_PATH, 0);
    if (fd >= 0 || errno != ENOENT) return fd;
    if (directory) return hako_mkdir_in_root(root, target, 0755);
    char parent[4096];
    const char *slash = strrchr(target, '/');
    size_t n = slash ? (size_t)(slash - target) : 0;
    if (!slash || n >= sizeof parent || !slash[1]) { errno = EINVAL; return -1; }
    memcpy(parent, target, n);
    parent[n] = 0;
    int dir = hako_mkdir_in_root(root, n ? parent : "/", 0755);
    if (dir < 0) return -1;
    int f = openat(dir, slash + 1, O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
    int e = errno;
    close(dir);
    if (f < 0) { errno = e; return -1; }
    close(f);
    return hako_open_in_root(root, target, O_PATH, 0);
}

static void *copy_root_thread(void *arg) {
    struct copy_job *j = arg;
    if (unshare(CLONE_NEWNS) < 0) goto fail;
    // Private before anything is mounted: no mount made here propagates to the host.
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) goto fail;
    if (syscall(SYS_move_mount, j->overlay, "", AT_FDCWD, j->mountpoint, MOVE_MOUNT_F_EMPTY_PATH) < 0) goto fail;
    j->root = open(j->mountpoint, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (j->root < 0) goto fail;
    for (int i = 0; i < j->nbinds; i++) {
        const struct hako_copy_bind *b = &j->binds[i];
        j->failed = i;
        struct stat st;
        if (stat(b->source, &st) < 0) goto fail;
        int target = copy_mount_point(j->root, b->target, S_ISDIR(st.st_mode));
        if (target < 0) goto fail;
        int tree = (int)syscall(SYS_open_tree, AT_FDCWD, b->source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
        if (tree < 0) { int e = errno; close(target); errno = e; goto fail; }
        int r = 0;
        if (b->read_only) {
            struct mount_attr a;
            memset(&a, 0, sizeof a);
            a.attr_set = MOUNT_ATTR_RDONLY;
            r = (int)syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof a);
        }
        if (r == 0) r = (int)syscall(SYS_move_mount, tree, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
        int e = errno;
        close(tree);
        close(target);
        if (r < 0) { errno = e; goto fail; }
    }
    j->failed = -1;
    j->nsfd = open("/proc/thread-self/ns/mnt", O_RDONLY | O_CLOEXEC);
    if (j->nsfd < 0) goto fail;
    return NULL;
fail:
    j->err = errno;
    if (j->root >= 0) close(j->root);
    j->root = -1;
    return NULL;  // the thread's namespace, and whatever it mounted, end with it
}

int hako_copy_root(int overlay, const char *mountpoint, const struct hako_copy_bind *binds, int nbinds,
                   int *nsfd, int *failed) {
    struct copy_job j = { .overlay = overlay, .mountpoint = mountpoint, .binds = binds, .nbinds = nbinds,
                          .root = -1, .nsfd = -1, .failed = -1, .err = 0 };
    pthread_t t;
    int e = pthread_create(&t, NULL, copy_root_thread, &j);
    if (e) { close(overlay); *failed = -1; errno = e; return -1; }
    pthread_join(t, NULL);
    close(overlay);
    *failed = j.failed;
    if (j.root < 0) { errno = j.err; return -1; }
    *nsfd = j.nsfd;
    return j.root;
}

int hako_move_mount(int mount_fd, const char *target) {
    return (int)syscall(SYS_move_mount, mount_fd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH);
}

int hako_idmap_supported(const char *path) {
    struct hako_spec s;
    struct hako_failure f;
    memset(&s, 0, sizeof s);
    s.nidmaps = 2;
    s.idmaps[0] = (struct hako_idmap){ .kind = 0, .inside = 0, .outside = 65536, .count = 1 };
    s.idmaps[1] = (struct hako_idmap){ .kind = 1, .inside = 0, .outside = 65536, .count = 1 };
    int userns = mapped_userns(&s, &f);
    if (userns < 0) return -1;
    int fd = idmapped_clone(path, userns);
    int e = errno;
    close(userns);
    if (fd < 0) { errno = e; return 0; }
    close(fd);
    return 1;
}

// ---------------------------------------------------------------------------
// --privileged: the host's device nodes (child side, async-signal-safe)

struct linux_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

// `rel` is the path below /dev ("" for /dev itself); depth bounds the walk.
static int copy_dir(int rootfd, const char *rel, int depth, char *where) {
    char host[512] = "/dev";
    if (rel[0]) { s_cat(host, sizeof host, "/"); if (s_cat(host, sizeof host, rel) < 0) return 0; }
    int dir = open(host, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (dir < 0) return 0;  // vanished or not a directory: nothing to copy
    char buf[4096];
    for (;;) {
        long n = syscall(SYS_getdents64, dir, buf, sizeof buf);
        if (n <= 0) break;
        for (long off = 0; off < n;) {
            struct linux_dirent64 *d = (struct linux_dirent64 *)(buf + off);
            off += d->d_reclen;
            const char *name = d->d_name;
            if (!strcmp(name, ".") || !strcmp(name, "..")) continue;
            char sub[512] = "";
            if (rel[0]) { s_cat(sub, sizeof sub, rel); s_cat(sub, sizeof sub, "/"); }
            if (s_cat(sub, sizeof sub, name) < 0) continue;
            // The container's own file systems and terminals stay its own.
            if (!rel[0] && (!strcmp(name, "pts") || !strcmp(name, "shm") || !strcmp(name, "mqueue")
                            || !strcmp(name, "ptmx") || !strcmp(name, "console"))) continue;
            struct stat st;
            if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0) continue;
            char target[600] = "/dev/";
            s_cat(target, sizeof target, sub);
            if (S_ISDIR(st.st_mode)) {
                if (depth <= 0) continue;
                int t = hako_mkdir_in_root(rootfd, target, (int)(st.st_mode & 07777));
                if (t < 0) goto fail;
                close(t);
                if (copy_dir(rootfd, sub, depth - 1, where) < 0) { close(dir); return -1; }
                continue;
            }
            if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode)) continue;
            char parent[600] = "/dev";
            if (rel[0]) { s_cat(parent, sizeof parent, "/"); s_cat(parent, sizeof parent, rel); }
            int p = hako_mkdir_in_root(rootfd, parent, 0755);
            if (p < 0) goto fail;
            char pp[32] = "/proc/self/fd/", num[24];
            s_utoa((unsigned long)p, num);
            s_cat(pp, sizeof pp, num);
            int real = open(pp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            close(p);
            if (real < 0) goto fail;
            if (mknodat(real, name, st.st_mode, st.st_rdev) < 0) {
                int e = errno;
                close(real);
                if (e == EEXIST) continue;  // a default device (null, zero, …) is already there
                errno = e;
                goto fail;
            }
            fchownat(real, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW);
            fchmodat(real, name, st.st_mode & 07777, 0);
            close(real);
            continue;
        fail:;
            int e = errno;
            memcpy(where, target, s_len(target) + 1);
            close(dir);
            errno = e;
            return -1;
        }
    }
    close(dir);
    return 0;
}

int hako_copy_host_devices(int rootfd, char *where) {
    where[0] = 0;
    return copy_dir(rootfd, "", 3, where);
}
