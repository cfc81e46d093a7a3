// Internal to CHakoShim: what spawn.c, oci_init.c, launch.c and userns.c share. Not a
// public header (Swift never sees it).
//
// The clone → exec path calls one way only:
//   launch.c (the parent: clone, cgroups, namespaces joined around clone)
//     → spawn.c (the child: the root, mounts, devices, privileges, exec)
//       → oci_init.c (the OCI runtime's steps: hooks, the exec FIFO, time namespace)
//         → child_base.c (async-signal-safe strings, whole reads and writes, failure, clone3)
// userns.c and sys.c are beside the path (no call back into it).
#ifndef HAKO_SPAWN_INTERNAL_H
#define HAKO_SPAWN_INTERNAL_H

#include "hako_shim.h"
#include <sys/types.h>

#define HAKO_HIDDEN __attribute__((visibility("hidden")))

// Newer than some C libraries' headers (Linux 5.7 and 5.6).
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
// The new mount API (Linux 5.2, mount_setattr 5.12): numbered alike on every
// architecture (424 and up), for C libraries whose headers predate it.
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_fsopen
#define SYS_fsopen 430
#endif
#ifndef SYS_fsconfig
#define SYS_fsconfig 431
#endif
#ifndef SYS_fsmount
#define SYS_fsmount 432
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif

struct child {
    const struct hako_spec *s;
    int sync_r;
    int err_w;
    int console_w;
    int stdio[3];
    int tty_slave;
    const char *tty_slave_path;
    int overlay_fd;   // a detached overlay built by the parent, or -1
    int fifo_fd;      // create mode: an O_PATH fd of the exec FIFO's directory (no /proc needed
                      //   to open the FIFO after the root changed), or -1
    const char *fifo_name;  // the FIFO's name in that directory
};

// async-signal-safe helpers (child_base.c)
HAKO_HIDDEN size_t s_len(const char *s);
HAKO_HIDDEN int s_cat(char *dst, size_t cap, const char *src);
HAKO_HIDDEN void s_itoa(long v, char *out);
HAKO_HIDDEN void s_utoa(unsigned long v, char *out);
HAKO_HIDDEN void fd_path(int fd, char out[32]);
HAKO_HIDDEN int write_all(int fd, const void *buf, size_t n);
HAKO_HIDDEN int write_file(const char *path, const char *data);
HAKO_HIDDEN ssize_t read_full(int fd, void *buf, size_t n);
HAKO_HIDDEN __attribute__((noreturn)) void child_fail(struct child *c, int stage, int err, const char *detail);
HAKO_HIDDEN void reset_signals(void);
HAKO_HIDDEN long clone3_raw(uint64_t flags, int *pidfd, int cgroup_fd);
// clone3 born in the cgroup `cgroup_fd` (CLONE_INTO_CGROUP, cgroup v2) when one
// is given and the kernel takes it, else in the caller's (the caller then
// moves the child): *placed says which. -1 with errno as clone3's.
HAKO_HIDDEN long clone3_placed(uint64_t flags, int *pidfd, int cgroup_fd, int *placed);
HAKO_HIDDEN const char *env_path(const struct hako_spec *s);

// the shared tail of the init and exec (spawn.c)
HAKO_HIDDEN void setup_stdio(struct child *c);
HAKO_HIDDEN void apply_privileges(struct child *c);
HAKO_HIDDEN __attribute__((noreturn)) void exec_program(struct child *c);
HAKO_HIDDEN int enter_cwd(struct child *c, int late);
HAKO_HIDDEN __attribute__((noreturn)) void container_child(struct child *c);

// OCI runtime steps (oci_init.c)
HAKO_HIDDEN int lift_fd(struct child *c, int fd);
HAKO_HIDDEN void run_hooks(struct child *c, uint32_t kind);
HAKO_HIDDEN void await_hook_state(struct child *c);
HAKO_HIDDEN void close_fds_at_exec(struct child *c);
HAKO_HIDDEN __attribute__((noreturn)) void wait_for_start(struct child *c);
HAKO_HIDDEN void make_parent_private(struct child *c, const char *path);
HAKO_HIDDEN void enter_time_namespace(struct child *c);

// Namespaces joined by path: the mount and user namespaces by the child, the
// others by the parent around clone, so the child is born in them (spawn.c).
HAKO_HIDDEN int hako_joined_by_child(uint32_t type);

// v1 cgroups the init joins itself (spawn.c)
HAKO_HIDDEN int attaches_itself(const struct hako_spec *s);
HAKO_HIDDEN void self_attach_cgroups(struct child *c);

#endif
