// Filling a new volume from the image, on the init path between clone and
// exec: only syscalls, no allocation (buffers on the stack, bounded depth).
#include "hako_shim.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int put_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) { if (errno == EINTR) continue; return -1; }
        p += w; n -= (size_t)w;
    }
    return 0;
}

// Copies the tree under src_dir into dst_dir (both open directories): files,
// directories, symlinks and device nodes with owner, mode and times. Used to fill
// a new volume from the image. No allocation: buffers live on the stack, depth is bounded.
static int copy_tree(int src_dir, int dst_dir, int depth) {
    if (depth > 48) { errno = ELOOP; return -1; }
    char buf[4096];
    for (;;) {
        long n = syscall(SYS_getdents64, src_dir, buf, sizeof buf);
        if (n < 0) return -1;
        if (n == 0) return 0;
        for (long off = 0; off < n;) {
            struct { uint64_t ino; int64_t off; unsigned short reclen; unsigned char type; char name[]; } *d = (void *)(buf + off);
            off += d->reclen;
            const char *name = d->name;
            if (!strcmp(name, ".") || !strcmp(name, "..")) continue;
            struct stat st;
            if (fstatat(src_dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0) return -1;
            if (S_ISDIR(st.st_mode)) {
                if (mkdirat(dst_dir, name, st.st_mode & 07777) < 0 && errno != EEXIST) return -1;
                int s2 = openat(src_dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                int d2 = openat(dst_dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (s2 < 0 || d2 < 0 || copy_tree(s2, d2, depth + 1) < 0) { int e = errno; if (s2 >= 0) close(s2); if (d2 >= 0) close(d2); errno = e; return -1; }
                if (fchown(d2, st.st_uid, st.st_gid) < 0 || fchmod(d2, st.st_mode & 07777) < 0) { close(s2); close(d2); return -1; }
                struct timespec ts[2] = { st.st_atim, st.st_mtim };
                futimens(d2, ts);
                close(s2); close(d2);
            } else if (S_ISREG(st.st_mode)) {
                int in = openat(src_dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
                if (in < 0) return -1;
                int out = openat(dst_dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, st.st_mode & 07777);
                if (out < 0) { int e = errno; close(in); errno = e; return -1; }
                char data[16384];
                for (;;) {
                    ssize_t r = read(in, data, sizeof data);
                    if (r < 0) { if (errno == EINTR) continue; int e = errno; close(in); close(out); errno = e; return -1; }
                    if (r == 0) break;
                    if (put_all(out, data, (size_t)r) < 0) { int e = errno; close(in); close(out); errno = e; return -1; }
                }
                if (fchown(out, st.st_uid, st.st_gid) < 0 || fchmod(out, st.st_mode & 07777) < 0) { close(in); close(out); return -1; }
                struct timespec ts[2] = { st.st_atim, st.st_mtim };
                futimens(out, ts);
                close(in); close(out);
            } else if (S_ISLNK(st.st_mode)) {
                char target[4096];
                ssize_t l = readlinkat(src_dir, name, target, sizeof target - 1);
                if (l < 0) return -1;
                target[l] = 0;
                if (symlinkat(target, dst_dir, name) < 0) return -1;
                fchownat(dst_dir, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW);
            } else {
                if (mknodat(dst_dir, name, st.st_mode, st.st_rdev) < 0) return -1;
                fchownat(dst_dir, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW);
            }
        }
    }
}

static int dir_is_empty(int fd) {
    char buf[1024];
    long n = syscall(SYS_getdents64, fd, buf, sizeof buf);
    if (n < 0) return -1;
    for (long off = 0; off < n;) {
        struct { uint64_t ino; int64_t off; unsigned short reclen; unsigned char type; char name[]; } *d = (void *)(buf + off);
        off += d->reclen;
        if (strcmp(d->name, ".") && strcmp(d->name, "..")) return 0;
    }
    return 1;
}

int hako_fill_volume(int rootfd, const char *target, const char *volume_dir) {
    int from = hako_open_in_root(rootfd, target, O_RDONLY | O_DIRECTORY, 0);
    if (from < 0) return 0;  // nothing in the image there
    int to = open(volume_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (to < 0) { int e = errno; close(from); return e; }
    int err = 0;
    if (dir_is_empty(to) == 1) {
        struct stat st;
        if (copy_tree(from, to, 0) < 0) err = errno ? errno : EIO;
        else if (fstat(from, &st) == 0) { fchown(to, st.st_uid, st.st_gid); fchmod(to, st.st_mode & 07777); }
    }
    close(to);
    close(from);
    return err;
}
