// Network namespace helpers: each runs its namespace switch on a thread of its
// own, which ends right after, so no thread of the caller ever changes namespace.
#include "hako_net.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

struct ns_job {
    int kind;            // 0: create + pin + socket, 1: socket
    const char *path;
    int nsfd, domain, type, protocol;
    int result;          // fd or -errno
};

static void *ns_thread(void *arg) {
    struct ns_job *j = arg;
    if (j->kind == 0) {
        if (unshare(CLONE_NEWNET) < 0) { j->result = -errno; return NULL; }
        if (mount("/proc/thread-self/ns/net", j->path, "none", MS_BIND, NULL) < 0) { j->result = -errno; return NULL; }
    } else if (setns(j->nsfd, CLONE_NEWNET) < 0) {
        j->result = -errno;
        return NULL;
    }
    int fd = socket(j->domain, j->type | SOCK_CLOEXEC, j->protocol);
    j->result = fd < 0 ? -errno : fd;
    if (fd < 0 && j->kind == 0) umount2(j->path, MNT_DETACH);
    return NULL;
}

static int run_job(struct ns_job *j) {
    pthread_t t;
    int e = pthread_create(&t, NULL, ns_thread, j);
    if (e) return -e;
    pthread_join(t, NULL);
    return j->result;
}

int hako_netns_create(const char *path, int domain, int type, int protocol) {
    struct ns_job j;
    memset(&j, 0, sizeof j);
    j.kind = 0;
    j.path = path;
    j.domain = domain; j.type = type; j.protocol = protocol;
    return run_job(&j);
}

int hako_socket_in_netns(int nsfd, int domain, int type, int protocol) {
    struct ns_job j;
    memset(&j, 0, sizeof j);
    j.kind = 1;
    j.nsfd = nsfd; j.domain = domain; j.type = type; j.protocol = protocol;
    return run_job(&j);
}
