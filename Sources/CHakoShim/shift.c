// A copy of an image layer with its owners shifted into a container's id range:
// what `--userns auto` uses where the kernel cannot idmap the layers.
// Runs in the engine (an ordinary process), so it may allocate.
#include "hako_shim.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

struct link_seen { dev_t dev; ino_t ino; char *path; };
struct shift_ctx {
    uint32_t shift, count;
    struct link_seen *links; size_t nlinks, caplinks;
    char *where;
};

static uint32_t shifted(const struct shift_ctx *c, uint32_t id) {
    return c->shift + (id < c->count ? id : c->count - 1);
}

static int fail_at(struct shift_ctx *c, const char *path) {
    int e = errno;
    strncpy(c->where, path, 4095);
    c->where[4095] = 0;
    errno = e;
    return -1;
}

static int copy_xattrs(const char *src, const char *dst) {
    char names[8192], value[65536];
    ssize_t n = llistxattr(src, names, sizeof names);
    if (n < 0) return (errno == ENOTSUP || errno == ENODATA) ? 0 : -1;
    for (ssize_t off = 0; off < n; off += (ssize_t)strlen(names + off) + 1) {
        const char *name = names + off;
        ssize_t v = lgetxattr(src, name, value, sizeof value);
        if (v < 0) continue;
        // Capabilities name host uid 0; the copy's owner is the shifted root.
        if (!strcmp(name, "security.capability")) continue;
        if (lsetxattr(dst, name, value, (size_t)v, 0) < 0 && errno != ENOTSUP && errno != EPERM) return -1;
    }
    return 0;
}

static int copy_file(const char *src, const char *dst, mode_t mode) {
    int in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (in < 0) return -1;
    int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode & 0777);
    if (out < 0) { int e = errno; close(in); errno = e; return -1; }
    char buf[65536];
    for (;;) {
        ssize_t r = read(in, buf, sizeof buf);
        if (r < 0) { if (errno == EINTR) continue; goto bad; }
        if (r == 0) break;
        for (ssize_t w = 0; w < r;) {
            ssize_t k = write(out, buf + w, (size_t)(r - w));
            if (k < 0) { if (errno == EINTR) continue; goto bad; }
            w += k;
        }
    }
    close(in);
    return close(out);
bad:;
    int e = errno;
    close(in); close(out);
    errno = e;
    return -1;
}

static int copy_entry(struct shift_ctx *c, const char *src, const char *dst, int depth);

static int copy_dir(struct shift_ctx *c, const char *src, const char *dst, int depth) {
    if (depth > 256) { errno = ELOOP; return fail_at(c, src); }
    DIR *d = opendir(src);
    if (!d) return fail_at(c, src);
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *s = NULL, *t = NULL;
        if (asprintf(&s, "%s/%s", src, e->d_name) < 0 || asprintf(&t, "%s/%s", dst, e->d_name) < 0) { rc = -1; }
        else rc = copy_entry(c, s, t, depth + 1);
        free(s); free(t);
    }
    closedir(d);
    return rc;
}

static int copy_entry(struct shift_ctx *c, const char *src, const char *dst, int depth) {
    struct stat st;
    if (lstat(src, &st) < 0) return fail_at(c, src);
    if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
        for (size_t i = 0; i < c->nlinks; i++)
            if (c->links[i].dev == st.st_dev && c->links[i].ino == st.st_ino)
                return link(c->links[i].path, dst) < 0 ? fail_at(c, dst) : 0;
        if (c->nlinks == c->caplinks) {
            size_t cap = c->caplinks ? c->caplinks * 2 : 64;
            struct link_seen *l = realloc(c->links, cap * sizeof *l);
            if (!l) return fail_at(c, src);
            c->links = l; c->caplinks = cap;
        }
        char *p = strdup(dst);
        if (!p) return fail_at(c, src);
        c->links[c->nlinks++] = (struct link_seen){ st.st_dev, st.st_ino, p };
    }
    int r;
    if (S_ISDIR(st.st_mode)) r = mkdir(dst, 0700);
    else if (S_ISREG(st.st_mode)) r = copy_file(src, dst, st.st_mode);
    else if (S_ISLNK(st.st_mode)) {
        char target[PATH_MAX];
        ssize_t n = readlink(src, target, sizeof target - 1);
        if (n < 0) return fail_at(c, src);
        target[n] = 0;
        r = symlink(target, dst);
    } else r = mknod(dst, st.st_mode, st.st_rdev);   // devices, whiteouts (0:0), fifos, sockets
    if (r < 0) return fail_at(c, dst);
    if (copy_xattrs(src, dst) < 0) return fail_at(c, dst);
    if (S_ISDIR(st.st_mode) && copy_dir(c, src, dst, depth) < 0) return -1;
    // Owner first: chown clears setuid/setgid, the mode comes after.
    if (lchown(dst, shifted(c, st.st_uid), shifted(c, st.st_gid)) < 0) return fail_at(c, dst);
    if (!S_ISLNK(st.st_mode) && chmod(dst, st.st_mode & 07777) < 0) return fail_at(c, dst);
    struct timespec times[2] = { st.st_atim, st.st_mtim };
    utimensat(AT_FDCWD, dst, times, AT_SYMLINK_NOFOLLOW);
    return 0;
}

int hako_copy_shifted(const char *src, const char *dst, uint32_t shift, uint32_t count, char *where) {
    struct shift_ctx c = { .shift = shift, .count = count ? count : 1, .where = where };
    where[0] = 0;
    int r = copy_entry(&c, src, dst, 0);
    int e = errno;
    for (size_t i = 0; i < c.nlinks; i++) free(c.links[i].path);
    free(c.links);
    errno = e;
    return r;
}
