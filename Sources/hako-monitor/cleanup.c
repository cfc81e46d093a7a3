// What hako-monitor removes once its container has ended for good
// (final_exit in main.c), and after a failed start: the container's leftover
// processes, its cgroup directories, its network (here, or through the
// engine's clean-up command), and a --rm container's files and name. All of
// it is read from the launch spec; nothing here keeps state of its own.
#include "monitor.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

ssize_t read_small_file(const char *path, char *buf, size_t cap) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n < 0) return -1;
    buf[n] = 0;
    return n;
}

int write_small_file(const char *path, const char *data) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    int r = write_all(fd, data, strlen(data));
    close(fd);
    return r;
}

void thaw_container(const struct hako_spec *s) {
    if (!s->freezer) return;
    write_small_file(s->freezer, s->freezer_v2 ? "0" : "THAWED");
}

void rm_rf_at(int parent, const char *name) {
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
        DIR *d = fdopendir(fd);
        if (d) {
            struct dirent *e;
            while ((e = readdir(d))) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
                if (e->d_type == DT_DIR || e->d_type == DT_UNKNOWN) rm_rf_at(dirfd(d), e->d_name);
                else unlinkat(dirfd(d), e->d_name, 0);
            }
            closedir(d);
        } else {
            close(fd);
        }
        unlinkat(parent, name, AT_REMOVEDIR);
    } else {
        unlinkat(parent, name, 0);
    }
}

void kill_leftovers(const struct hako_spec *s) {
    const char *k = s->cgroup_kill;
    if (!k) return;
    size_t n = strlen(k);
    for (int round = 0; round < 50; round++) {
        int any = 0;
        if (n >= 11 && strcmp(k + n - 11, "cgroup.kill") == 0) {
            char procs[4200];
            snprintf(procs, sizeof procs, "%.*scgroup.procs", (int)(n - 11), k);
            char buf[256];
            if (read_small_file(procs, buf, sizeof buf) > 0 && buf[0]) { any = 1; write_small_file(k, "1"); }
        } else {
            char buf[65536];
            if (read_small_file(k, buf, sizeof buf) > 0) {
                for (char *p = buf; *p;) {
                    long pid = strtol(p, &p, 10);
                    if (pid > 0) { any = 1; kill((pid_t)pid, SIGKILL); }
                    while (*p == '\n') p++;
                    if (*p && (*p < '0' || *p > '9')) break;
                }
            }
        }
        thaw_container(s);
        while (waitpid(-1, NULL, WNOHANG) > 0) {}
        if (!any) return;
        struct timespec ts = { 0, 10 * 1000000L };
        nanosleep(&ts, NULL);
    }
}

// The network lock (the engine's flock on <root>/networks/lock), waited for
// at most ~10 s; -1 when it cannot be had.
static int lock_network(const char *path) {
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) return -1;
    for (int i = 0; i < 2000; i++) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) return fd;
        if (errno != EWOULDBLOCK && errno != EINTR) break;
        struct timespec ts = { 0, 5 * 1000000L };
        nanosleep(&ts, NULL);
    }
    close(fd);
    return -1;
}

// The network release of a container that publishes no port and joins only
// the predefined networks (the engine says so with HAKO_T_NET_LOCK): nothing
// but its namespace, its leases and its endpoint record is left to remove, so
// no `hako network teardown` process (~5 ms of start-up) is needed. Under the
// network lock, as every change of the engine's: the namespace unpinned (the
// kernel destroys it, and the veth pairs in it), each lease unlinked if it is
// still this container's (a symbolic link to its id; a `run` may have
// reclaimed the address of an ended container meanwhile), the endpoint record
// last (while it exists, the next hako command finishes the job). Returns 0
// when the clean-up command must run instead: `network connect` gave the
// running container peers and a lease the spec does not list (its guard file).
static int release_network_here(const struct hako_spec *s) {
    if (!s->net_lock) return 0;
    int lock = lock_network(s->net_lock);
    if (lock < 0) return 1;  // the record stays: the next hako command settles it
    if (access(s->net_guard, F_OK) == 0) { close(lock); return 0; }
    umount2(s->net_unpin, MNT_DETACH);
    unlink(s->net_unpin);
    size_t idlen = s->id ? strlen(s->id) : 0;
    for (int i = 0; i < s->nnet_leases && idlen; i++) {
        char holder[256];
        ssize_t n = readlink(s->net_leases[i], holder, sizeof holder);
        if (n == (ssize_t)idlen && memcmp(holder, s->id, idlen) == 0) unlink(s->net_leases[i]);
    }
    unlink(s->net_record);
    close(lock);
    return 1;
}

void run_cleanup_hook(const struct hako_spec *s) {
    if (release_network_here(s)) return;
    if (!s->ncleanup) return;
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) { dup2(null, 0); dup2(null, 1); dup2(null, 2); }
        execv(s->cleanup_argv[0], (char *const *)s->cleanup_argv);
        _exit(127);
    }
    if (pid < 0) return;
    for (int i = 0; i < 3000; i++) {  // at most 30 s
        if (waitpid(pid, NULL, WNOHANG) == pid) return;
        struct timespec ts = { 0, 10 * 1000000L };
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

// A name link of this container is released; `bin`, if not NULL, is a
// directory about to be deleted on the same file system that takes it. The
// link's target (~80 bytes) does not fit in its inode, so unlinking it frees
// a data block: on ext4 without a journal and mounted with `discard` (this
// VM) ~120 µs a synchronous discard, before the clients were told. Moved
// into the doomed directory, it is freed with that, after they are.
static void remove_link_if_ours(const struct hako_spec *s, const char *path, const char *bin, int index) {
    char target[512];
    ssize_t n = readlink(path, target, sizeof target - 1);
    if (n < 0) { if (errno == EINVAL) unlink(path); return; }
    target[n] = 0;
    const char *base = strrchr(target, '/');
    base = base ? base + 1 : target;
    if (!s->id || strcmp(base, s->id) != 0) return;
    char moved[4300];
    if (bin && snprintf(moved, sizeof moved, "%s/.released-name-%d", bin, index) < (int)sizeof moved && rename(path, moved) == 0) return;
    unlink(path);
}

// The container's cgroup directories. Its processes are gone (kill_leftovers).
void remove_cgroups(const struct hako_spec *s) {
    for (int i = 0; i < s->ncgroup_rmdir; i++) {
        for (int tries = 0; tries < 100; tries++) {
            if (rmdir(s->cgroup_rmdir[i]) == 0 || errno == ENOENT) break;
            if (errno != EBUSY) break;
            // Busy with exiting tasks: wait for them. Busy with child cgroups (a
            // shared parent still in use by other containers): leave it.
            char procs[4200], buf[64];
            snprintf(procs, sizeof procs, "%s/cgroup.procs", s->cgroup_rmdir[i]);
            if (read_small_file(procs, buf, sizeof buf) <= 0) break;
            while (waitpid(-1, NULL, WNOHANG) > 0) {}
            struct timespec ts = { 0, 5 * 1000000L };
            nanosleep(&ts, NULL);
        }
    }
}

// A --rm container disappears at once: each of its directories renamed to a
// hidden ".removing-<id>-<pid>" beside it (the next `create`'s collection
// leaves that to this monitor while it lives), or deleted in place if that
// fails, and its name links released (moved into the first hidden directory:
// see remove_link_if_ours). The bytes go in delete_hidden, after the clients
// have been told, so that `hako run --rm` does not wait for them.
void hide_container(const struct hako_spec *s, struct hidden *h) {
    h->n = 0;
    h->dirs = s->nremove_dirs ? calloc((size_t)s->nremove_dirs, sizeof *h->dirs) : NULL;
    for (int i = 0; i < s->nremove_dirs; i++) {
        const char *dir = s->remove_dirs[i];
        const char *slash = strrchr(dir, '/');
        if (h->dirs && slash
            && snprintf(h->dirs[h->n], sizeof h->dirs[0], "%.*s/.removing-%s-%d", (int)(slash - dir), dir, slash + 1, (int)getpid()) < (int)sizeof h->dirs[0]
            && rename(dir, h->dirs[h->n]) == 0)
            h->n++;
        else
            rm_rf_at(AT_FDCWD, dir);
    }
    for (int i = 0; i < s->nremove_files; i++) remove_link_if_ours(s, s->remove_files[i], h->n ? h->dirs[0] : NULL, i);
}

void delete_hidden(struct hidden *h) {
    for (int i = 0; i < h->n; i++) rm_rf_at(AT_FDCWD, h->dirs[i]);
    free(h->dirs);
    h->dirs = NULL;
    h->n = 0;
}
