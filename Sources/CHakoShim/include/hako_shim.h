// CHakoShim — the C side of hako.
//
// Three things live here and nothing else:
//  1. syscalls glibc does not wrap (openat2, clone3, pidfd_*, close_range …);
//  2. the launch spec: a flat, length-prefixed record blob that Swift writes and
//     C parses into `struct hako_spec` (plain C, no allocation after parsing);
//  3. the whole path between clone() and execve() for a container's init and
//     for `exec` into a running container. Only async-signal-safe calls run
//     there: every failure is reported to the parent as (stage, errno, detail).
#ifndef HAKO_SHIM_H
#define HAKO_SHIM_H

#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---------------------------------------------------------------------------
// Launch spec records. Blob = "HAKOSPEC" magic, then records of
// { uint16 tag; uint32 length; uint8 payload[length] } in host byte order.
// Strings carry their terminating NUL inside the payload.
enum hako_tag {
    HAKO_T_ID = 1,            // string: container id
    HAKO_T_CLONE_FLAGS = 2,   // u64: CLONE_NEW* flags for the init
    HAKO_T_ROOTFS = 3,        // string: directory that becomes "/"
    HAKO_T_OVERLAY = 4,       // string: overlay mount data; empty = bind rootfs onto itself
    HAKO_T_OVERLAY_DIR = 5,   // string: chdir here before mounting (relative layer paths)
    HAKO_T_HOSTNAME = 6,      // string
    HAKO_T_ARG = 7,           // string, repeated: argv
    HAKO_T_ENV = 8,           // string, repeated: KEY=VALUE
    HAKO_T_CWD = 9,           // string: working directory inside the container
    HAKO_T_UID = 10,          // u32
    HAKO_T_GID = 11,          // u32
    HAKO_T_GROUP = 12,        // u32, repeated: supplementary groups
    HAKO_T_MOUNT = 13,        // mount record (see hako_mount), repeated, in order
    HAKO_T_CGROUP_DIR = 14,   // string: cgroup2 directory for CLONE_INTO_CGROUP
    HAKO_T_CGROUP_PROCS = 15, // string, repeated: cgroup.procs files (v1) to join
    HAKO_T_TTY = 16,          // u32 rows, u32 cols: allocate a terminal of that size
    HAKO_T_STDIN = 17,        // empty: keep stdin open (a pipe) instead of /dev/null
    HAKO_T_NS_JOIN = 18,      // u32 CLONE_NEW* type + string path: join this namespace
    HAKO_T_RLIMIT = 19,       // u32 resource, u64 soft, u64 hard
    HAKO_T_CAPS = 20,         // 5 x u64: bounding, effective, permitted, inheritable, ambient
    HAKO_T_NO_NEW_PRIVS = 21, // empty
    HAKO_T_SECCOMP = 22,      // struct sock_filter[] (raw BPF)
    HAKO_T_OOM_SCORE_ADJ = 23,// i32
    HAKO_T_MASKED = 24,       // string, repeated
    HAKO_T_READONLY = 25,     // string, repeated
    HAKO_T_SYSCTL = 26,       // string "key\0value\0"
    HAKO_T_CGROUPNS = 27,     // empty: unshare the cgroup namespace after joining the cgroups
    HAKO_T_PROPAGATION = 28,  // u64: MS_* propagation for "/" (default MS_REC|MS_SLAVE)
    HAKO_T_READONLY_ROOT = 29,// empty
    HAKO_T_USERNS_MAP = 30,   // u32 kind (0 uid, 1 gid), u32 inside, u32 outside, u32 count
    HAKO_T_DEVICE = 31,       // u32 type ('c'/'b'), u32 major, u32 minor, u32 mode, u32 uid, u32 gid + string path
                              //   [+ string host source: bound instead when mknod is refused]
    HAKO_T_DETACHED_OVERLAY = 32, // u32 flags (1: idmap the lower layers to the user namespace maps)
                              //   + strings upper, work, lower... (top-most first): the overlay is built
                              //   by the parent (fsopen/fsmount) and moved onto rootfs by the child
    HAKO_T_HOST_DEVICES = 33, // empty: copy every device node of the host's /dev (--privileged)
    HAKO_T_OVERLAY_VOLATILE = 34, // empty: the overlay (either kind) is mounted "volatile": its upper
                              //   layer is never synced (a --rm container's, deleted at its end).
                              //   HAKO_T_OVERLAY's data then ends in ",volatile"; a kernel without
                              //   the option (< 5.10) gets the mount without it

    // The OCI runtime's records (hako-runtime; runc's create/start model).
    HAKO_T_EXEC_FIFO = 40,    // string: create mode. The init opens this FIFO (O_PATH) before pivot_root,
                              //   does everything up to exec, clears PR_SET_PDEATHSIG, reports "created",
                              //   then blocks opening it for writing until `start` opens it for reading;
                              //   a later failure is written to the FIFO, exec closes it (EOF = started)
    HAKO_T_PRESERVE_FDS = 41, // u32 N: fds 3 .. 3+N-1 stay open across exec
    HAKO_T_NO_PIVOT = 42,     // empty: move the root onto / and chroot instead of pivot_root
    HAKO_T_DOMAINNAME = 43,   // string
    HAKO_T_PERSONALITY = 44,  // u32 persona (personality(2))
    HAKO_T_UMASK = 45,        // u32
    HAKO_T_TIME_OFFSETS = 46, // 4 x i64: monotonic s, ns, boottime s, ns: a new time namespace with these offsets
    HAKO_T_HOOK = 47,         // u32 kind (hako_hook_kind), u32 timeout s (0: none), u32 nargs,
                              //   then strings: path, args (nargs), env (the rest)
    HAKO_T_HOOK_SYNC = 48,    // empty: stop before pivot_root so the parent runs prestart/createRuntime hooks;
                              //   its answer carries the state JSON for createContainer and startContainer hooks
    HAKO_T_SECCOMP_FLAGS = 49,// u32 SECCOMP_FILTER_FLAG_*: load the filter with seccomp(2) and these flags
    HAKO_T_KEYRING = 50,      // string: join a new session keyring of this name
    HAKO_T_MOUNT_ATTR = 51,   // u64 attr_set, u64 attr_clr: mount_setattr(AT_RECURSIVE) on the previous mount
    HAKO_T_MOUNT_PROPAGATION = 52, // u64 MS_{SHARED,SLAVE,PRIVATE,UNBINDABLE} [| MS_REC]: the previous mount's propagation
    HAKO_T_APPARMOR = 53,     // string: the AppArmor profile the program is executed under
    HAKO_T_FILE = 54,         // u32 uid, u32 gid, u32 mode, string target, then the content (the rest):
                              //   a file on a tmpfs of the container's own, bound read-only at target
                              //   (secrets and configs: the bytes never touch a disk)

    // The monitor's own records (ignored by the init path).
    HAKO_T_LOG_PATH = 64,     // string
    HAKO_T_LOG_MAX_SIZE = 65, // u64 bytes (0 = unlimited)
    HAKO_T_LOG_MAX_FILES = 66,// u32
    HAKO_T_STATE_PATH = 67,   // string: the state file the monitor owns
    HAKO_T_RUN_DIR = 68,      // string: runtime dir (lock, attach socket)
    HAKO_T_RESTART = 69,      // u32 policy (hako_restart), u32 max retries
    HAKO_T_REMOVE_DIR = 70,   // string, repeated: directories removed after the final exit (--rm)
    HAKO_T_REMOVE_FILE = 71,  // string, repeated: files unlinked after the final exit (--rm)
    HAKO_T_STOP_SIGNAL = 72,  // u32
    HAKO_T_CLEANUP_ARG = 73,  // string, repeated: argv of a command run after the final exit
    // The network release the monitor does itself after the final exit, in place
    // of the clean-up command (HakoRuntime's NetworkRelease): under the lock
    // HAKO_T_NET_LOCK, unless HAKO_T_NET_GUARD exists (then the command runs),
    // the namespace HAKO_T_NET_UNPIN is unmounted (MNT_DETACH) and unlinked,
    // each HAKO_T_NET_LEASE that is a symbolic link to the container's id
    // unlinked, and HAKO_T_NET_RECORD unlinked last.
    HAKO_T_NET_LOCK = 90,     // string: the network lock file (flock)
    HAKO_T_NET_GUARD = 91,    // string: a file whose existence means "run the clean-up command"
    HAKO_T_NET_UNPIN = 92,    // string: the container's pinned network namespace
    HAKO_T_NET_LEASE = 93,    // string, repeated (at most HAKO_MAX_NET_LEASES): an address lease
    HAKO_T_NET_RECORD = 94,   // string: the container's endpoint record
    HAKO_T_CGROUP_RMDIR = 74, // string, repeated: cgroup dirs removed after the final exit
    HAKO_T_CGROUP_KILL = 75,  // string: cgroup.procs (or cgroup.kill) used to kill leftovers
    HAKO_T_FREEZER = 76,      // string, u8 kind: "cgroup.freeze" (v2) or "freezer.state" (v1)
    HAKO_T_OOM_EVENTS = 77,   // string: memory.events (v2) or memory.oom_control (v1)
    HAKO_T_RESTART_COUNT = 78,// u32: restarts so far (continues the count across `start`)
    HAKO_T_HEALTH = 79,       // u64 interval, u64 timeout, u64 start period, u64 start interval (ms), u32 retries:
                              //   the monitor probes the container (HAKO_T_HEALTH_ARG is the probe's argv)
    HAKO_T_HEALTH_ARG = 80,   // string, repeated: the probe's argv, run as `exec` would in the container
    HAKO_T_EVENT_LOG = 81,    // string: the engine's event log (events.jsonl) the monitor appends health_status to
    HAKO_T_EVENT_ATTRS = 82,  // string: the events' "attributes" JSON object (name, image, labels)
};

// hako-monitor's contract with whoever starts it (HakoRuntime/Monitor.swift):
// the file descriptors it is given, and the frames on its attach socket,
// [u8 type][u32 big-endian length][payload].
enum {
    HAKO_MONITOR_FD_SPEC = 3,   // the launch spec (a socket, read to its end)
    HAKO_MONITOR_FD_STATUS = 4, // a pipe: "OK <monitor pid> <container pid>" or "ERR <stage> <errno> <detail>"
    HAKO_MONITOR_FD_ATTACH = 5, // optional: the first client's end of the attach socket
    HAKO_MONITOR_FD_READY = 6,  // optional: a socket the engine sends one byte on (or closes) once what it
                                // sets up beside the init is done (the cgroups' limits and device filter, a
                                // bridge network): the first init waits for it before its program runs, so
                                // that set-up overlaps the init's mounts
};
enum {
    HAKO_MON_STDIN = 'i',       // client → monitor: bytes for the container's stdin
    HAKO_MON_STDIN_CLOSE = 'c', // client → monitor: close the container's stdin
    HAKO_MON_RESIZE = 'r',      // client → monitor: u16 rows, u16 cols (big-endian)
    HAKO_MON_SIGNAL = 'k',      // client → monitor: u32 signal; the exit that follows is final
    HAKO_MON_STOP = 's',        // client → monitor: u32 signal, u32 timeout seconds[, u8 keep: 1 = the container
                                // stays (a --rm one is not removed: `restart` starts it again)]
    HAKO_MON_ATTACH = 'a',      // client → monitor: stream output to me
    HAKO_MON_POLICY = 'p',      // client → monitor: u32 restart policy (HAKO_RESTART_*), u32 maximum retries
    HAKO_MON_STDOUT = 'o',      // monitor → client
    HAKO_MON_STDERR = 'e',      // monitor → client
    HAKO_MON_EXIT = 'x',        // monitor → client: i32 exit code, u8 final (1: the monitor is ending)
    HAKO_MON_REPLY = 'K',       // monitor → client: i32 errno of the last request (0 = done)
};

enum hako_mount_kind {
    HAKO_MNT_FS = 0,      // mount(fstype, target, flags, data)
    HAKO_MNT_BIND = 1,    // bind source (host path) onto target; MS_RDONLY → read-only
    HAKO_MNT_SYMLINK = 2, // symlink target -> source
    HAKO_MNT_FILE = 3,    // bind a host file onto target (the file is created first)
    HAKO_MNT_VOLUME = 4,  // bind a volume's directory (source) onto target; an empty
                          // volume is first filled with what the image has at target
};

enum hako_restart {
    HAKO_RESTART_NO = 0,
    HAKO_RESTART_ON_FAILURE = 1,
    HAKO_RESTART_ALWAYS = 2,
    HAKO_RESTART_UNLESS_STOPPED = 3,
};

// Stages of the init path, reported with errno when one fails.
enum hako_stage {
    HAKO_STAGE_NONE = 0,
    HAKO_STAGE_CLONE, HAKO_STAGE_SYNC, HAKO_STAGE_SETNS, HAKO_STAGE_CGROUP,
    HAKO_STAGE_USERNS, HAKO_STAGE_PROPAGATION, HAKO_STAGE_ROOTFS, HAKO_STAGE_MOUNT,
    HAKO_STAGE_DEVICE, HAKO_STAGE_CONSOLE, HAKO_STAGE_PIVOT_ROOT, HAKO_STAGE_HOSTNAME,
    HAKO_STAGE_SYSCTL, HAKO_STAGE_MASK, HAKO_STAGE_READONLY, HAKO_STAGE_RLIMIT,
    HAKO_STAGE_OOM_SCORE, HAKO_STAGE_SETGROUPS, HAKO_STAGE_SETGID, HAKO_STAGE_SETUID,
    HAKO_STAGE_CAPS, HAKO_STAGE_NO_NEW_PRIVS, HAKO_STAGE_SECCOMP, HAKO_STAGE_CHDIR,
    HAKO_STAGE_STDIO, HAKO_STAGE_EXEC, HAKO_STAGE_EXEC_NOT_FOUND, HAKO_STAGE_CGROUPNS,
    HAKO_STAGE_HOOK, HAKO_STAGE_EXEC_FIFO, HAKO_STAGE_TIMENS, HAKO_STAGE_PERSONALITY, HAKO_STAGE_KEYRING,
    HAKO_STAGE_DOMAINNAME, HAKO_STAGE_UMASK, HAKO_STAGE_APPARMOR, HAKO_STAGE_READY,
    HAKO_STAGE_COUNT
};

// Reports of the init path that are not failures (hako_failure.stage < 0).
enum hako_report {
    HAKO_REPORT_HOOKS = -1,   // stopped before pivot_root: run prestart/createRuntime hooks, then continue
    HAKO_REPORT_CREATED = -2, // create mode: everything up to exec is done; waiting on the exec FIFO
};

enum hako_hook_kind {
    HAKO_HOOK_CREATE_CONTAINER = 0, // in the container's namespaces before pivot_root (path resolved on the host)
    HAKO_HOOK_START_CONTAINER = 1,  // in the container after `start`, before exec (path resolved in the container)
};

const char *hako_stage_name(int stage);

struct hako_mount {
    uint32_t kind;
    uint64_t flags;      // MS_* flags
    uint64_t attr_set, attr_clr;  // MOUNT_ATTR_* applied recursively with mount_setattr (0: none)
    uint64_t propagation; // MS_SHARED, MS_SLAVE, MS_PRIVATE or MS_UNBINDABLE, | MS_REC for the tree (0: as made)
    const char *source;
    const char *target;  // absolute path inside the container
    const char *fstype;
    const char *data;
};

struct hako_rlimit { uint32_t resource; uint64_t soft, hard; };
#define HAKO_MAX_NSJOIN 8
struct hako_nsjoin { uint32_t type; const char *path; };
struct hako_idmap { uint32_t kind, inside, outside, count; };
struct hako_device { uint32_t type, major, minor, mode, uid, gid; const char *path; const char *source; };
struct hako_file { uint32_t uid, gid, mode; const char *target; const uint8_t *data; uint32_t len; };

#define HAKO_MAX_HOOKS 32
#define HAKO_MAX_HOOK_ARGS 32
#define HAKO_MAX_HOOK_ENV 64
#define HAKO_MAX_LAYERS 128
#define HAKO_MAX_NET_LEASES 10  // a container has at most eth0 … eth9

struct hako_hook {
    uint32_t kind, timeout;
    const char *path;
    const char *argv[HAKO_MAX_HOOK_ARGS + 1];
    const char *envp[HAKO_MAX_HOOK_ENV + 1];
};

struct hako_spec {
    // init path
    const char *id;
    uint64_t clone_flags;
    const char *rootfs;
    const char *overlay;      // NULL: no overlay
    const char *overlay_dir;
    const char *hostname;
    // Sized to the blob by hako_spec_parse (no fixed limit: the kernel's
    // ARG_MAX is the only one); NULL-terminated; freed by hako_spec_free.
    const char **argv; int argc;
    const char **envp; int envc;
    const char *cwd;
    uint32_t uid, gid;
    uint32_t *groups; int ngroups;  // sized to the blob, as argv (setgroups takes up to NGROUPS_MAX)
    struct hako_mount *mounts; int nmounts;  // sized to the blob, as argv
    const char *cgroup_dir;
    const char *cgroup_procs[32]; int ncgroup_procs;
    int tty; uint32_t tty_rows, tty_cols;
    int keep_stdin;
    struct hako_nsjoin nsjoin[HAKO_MAX_NSJOIN]; int nnsjoin;
    struct hako_rlimit rlimits[32]; int nrlimits;
    int has_caps; uint64_t caps[5];
    int no_new_privs;
    const void *seccomp; uint32_t seccomp_len;  // bytes of struct sock_filter[]
    int has_oom_score_adj; int32_t oom_score_adj;
    const char **masked; int nmasked;      // these lists too are sized to the blob
    const char **readonly; int nreadonly;
    const char **sysctl_key; const char **sysctl_val; int nsysctl;
    int cgroupns;
    uint64_t propagation;
    int readonly_root;
    struct hako_idmap idmaps[16]; int nidmaps;
    struct hako_device *devices; int ndevices;
    struct hako_file *files; int nfiles;      // sized to the blob
    int detached_overlay, idmap_layers, overlay_volatile;
    int ready_fd;  // not on the wire: the monitor's HAKO_MONITOR_FD_READY for the first start, else -1
    const char *dov_upper, *dov_work;
    const char *dov_lower[HAKO_MAX_LAYERS]; int dov_nlower;  // the detached overlay's fds and lowerdir are fixed too
    int host_devices;
    // OCI runtime
    const char *exec_fifo;
    uint32_t preserve_fds;
    int no_pivot;
    const char *domainname;
    int has_personality; uint32_t personality;
    int has_umask; uint32_t umask;
    int has_time_offsets; int64_t time_offsets[4];
    struct hako_hook hooks[HAKO_MAX_HOOKS]; int nhooks;
    int hook_sync;
    uint32_t seccomp_flags;
    const char *keyring;
    const char *apparmor;  // profile for the exec (NULL: as the runtime is)

    // monitor
    const char *log_path; uint64_t log_max_size; uint32_t log_max_files;
    const char *state_path;
    const char *run_dir;
    uint32_t restart_policy, restart_max, restart_count;
    const char **remove_dirs; int nremove_dirs;
    const char **remove_files; int nremove_files;
    uint32_t stop_signal;
    const char *cleanup_argv[32]; int ncleanup;
    const char *net_lock, *net_guard, *net_unpin, *net_record;  // HAKO_T_NET_*: the monitor's own network release
    const char *net_leases[HAKO_MAX_NET_LEASES]; int nnet_leases;
    const char *cgroup_rmdir[64]; int ncgroup_rmdir;
    const char *cgroup_kill;
    const char *freezer; int freezer_v2;
    const char *oom_events;
    // health check (HAKO_T_HEALTH): durations in ms; no probe when health_argc == 0
    uint64_t health_interval_ms, health_timeout_ms, health_start_period_ms, health_start_interval_ms;
    uint32_t health_retries;
    const char **health_argv; int health_argc;  // sized to the blob, NULL-terminated
    const char *event_log, *event_attrs;
};

// Parses a blob (which must stay alive while the spec is used).
// Returns 0, or -1 with a message in err (and nothing to free). The tables of
// repeated records (argv, envp, mounts, groups, devices, masked and read-only
// paths, sysctls, overlay layers, paths to remove) are allocated to fit:
// release them with hako_spec_free once the spec is no longer used.
int hako_spec_parse(const void *blob, size_t len, struct hako_spec *spec, char *err, size_t errlen);
void hako_spec_free(struct hako_spec *spec);

// Failure report of the init path: fixed size, written once to the error pipe.
struct hako_failure {
    int32_t stage;
    int32_t err;
    char detail[256];
};

// Result of starting a container's init or an exec'd process.
struct hako_proc {
    pid_t pid;
    int pidfd;          // -1 when the kernel has no pidfd
    int stdin_fd;       // write end, -1 unless keep_stdin && !tty
    int stdout_fd;      // read end (the terminal master when tty)
    int stderr_fd;      // read end, -1 when tty
    int mntns_fd;       // the init's mount namespace held open (hako_spawn; else -1): see hako_launch
};

// A container's init being started, step by step (hako_launch_*): the parent's
// ends of the channels to the child. hako_spawn is these steps run to the end.
struct hako_launch {
    pid_t pid;
    int pidfd;
    int sync_w;       // to the child: "G", then the answer to a hooks report
    int report_r;     // from the child: reports and failures (struct hako_failure); EOF at exec
    int console_r;    // the terminal's master arrives here (-1 without a terminal)
    int stdin_w, stdout_r, stderr_r;  // pipes made when no stdio fds were given
    // The init's new mount namespace, opened right after the clone. While someone
    // holds it, the init's exit does not tear its mounts down: that teardown
    // waits for an RCU grace period (1-5 ms on a small VM) before the parent hears
    // of the exit. hako_spawn hands it to its caller, which closes it after it has
    // reported the exit; the other paths close it with the launch's channels.
    int mntns_fd;
};

// Events of hako_launch_start / hako_launch_continue (or -1 with *fail set; the
// child is then reaped and every fd closed).
enum hako_event { HAKO_EVENT_EXEC = 0, HAKO_EVENT_HOOKS = 1, HAKO_EVENT_CREATED = 2 };

// Clones the init and lets it run to its first report.
int hako_launch_start(const struct hako_spec *spec, const int *stdio_fds, struct hako_launch *l, struct hako_failure *fail);
// Answers a hooks report (msg: the state JSON for createContainer, then for
// startContainer hooks, each as u32 length + bytes) and runs to the next report.
int hako_launch_continue(struct hako_launch *l, const void *msg, size_t len, struct hako_failure *fail);
// The terminal's master (a tty init sends it before any report); -1 with errno.
int hako_launch_take_terminal(struct hako_launch *l);
// Kills and reaps the child, closes every fd of the launch.
void hako_launch_abort(struct hako_launch *l);
// Closes the channels to the child (it runs on, or waits on its exec FIFO); keeps pid and pidfd.
void hako_launch_release(struct hako_launch *l);

// Starts the container's init per spec (clone3 + the init path in the child).
// Returns 0 once the child has exec'd the program; -1 with *fail filled otherwise
// (the child is reaped, nothing of it is left).
// stdio_fds: when non-NULL, three fds the process uses as its stdin/stdout/stderr
// instead of the pipes hako_spawn would create (the OCI runtime passes its own).
int hako_spawn(const struct hako_spec *spec, const int *stdio_fds, struct hako_proc *out, struct hako_failure *fail);

// Fills an empty volume directory with what the container's root has at
// `target` (resolved inside rootfd): files, directories, symlinks, device nodes,
// owner, mode and times. Async-signal-safe. Returns 0 or an errno.
int hako_fill_volume(int rootfd, const char *target, const char *volume_dir);

// Starts a process inside a running container: joins the namespaces of
// `target_pid` (through `target_pidfd` when >= 0), its cgroups (spec cgroup_dir /
// cgroup_procs), then the common tail (user, caps, seccomp, cwd, exec).
// When spec->tty is set, `tty_slave_path` names the terminal inside the container
// (opened after joining its mount namespace). The new process is a child of the
// caller. stdio_fds: the process's stdin/stdout/stderr (used unless tty).
int hako_exec(const struct hako_spec *spec, pid_t target_pid, int target_pidfd,
              const char *tty_slave_path, const int *stdio_fds,
              struct hako_proc *out, struct hako_failure *fail);
// hako_exec that waits at most `timeout_ms` for the process to reach its exec
// (a frozen container holds it before): past that the process is killed and
// left to the caller's waitpid, and the failure is ETIMEDOUT.
int hako_exec_bounded(const struct hako_spec *spec, pid_t target_pid, const int *stdio_fds, int timeout_ms,
                      struct hako_proc *out, struct hako_failure *fail);

// A process started again and again in one running container (the monitor's
// health probe). What does not change from one start to the next is done
// once, in a helper process (a fork of the caller): it takes the container's
// namespaces, working directory, user, capabilities and seccomp filter, and
// the caller places it in the container's cgroups, with the container's OOM
// score. Each process is then a vfork of the helper (CLONE_VM | CLONE_VFORK |
// CLONE_PARENT: the caller's child, born in the container's cgroups and pid
// namespace, confined as the helper is) that execs: no page table copied, no
// cgroup written, no filter compiled per process. The helper stays out of
// the container's pid namespace; in its cgroups it is one more process
// (pids.current, `hako stats`), which `hako top` leaves out (the monitor's
// child named "hako-probe"), and it is frozen, and killed, with the container.
// A container at its pids limit refuses the helper's fork: that process takes
// hako_exec's path (placed in the cgroups after its fork, as Docker's probe is).
// A container with its own user namespace or an AppArmor profile, or one
// whose helper cannot start, takes hako_exec's path (two forks, the cgroups
// written, per process).
#define HAKO_EXEC_NS 6
struct hako_exec_target {
    pid_t pid;          // the container's init (0: closed)
    pid_t helper_pid;   // the helper (the caller's child; the caller reaps it), 0: none
    int helper_sock;    // its socket, -1: no helper
};
// Starts the helper for the container of `target_pid` under `spec`; without
// one, hako_exec_prepared takes hako_exec's path.
void hako_exec_target_open(const struct hako_spec *spec, pid_t target_pid, struct hako_exec_target *t);
// Stops the helper (the caller reaps it); t->pid becomes 0.
void hako_exec_target_close(struct hako_exec_target *t);
// hako_exec_bounded through an opened target: the same process (namespaces,
// cgroups, user, capabilities, seccomp filter, environment, working
// directory) and the same timeout. Through the helper, the process's stdin is
// /dev/null and its stdout and stderr stdio_fds[1] and [2]; out->pidfd is -1.
// A helper that is gone, or does not answer within the timeout (a container
// frozen meanwhile), is stopped and the target closed (the next call on it
// must open it again); the process then takes hako_exec's path, or, for a
// helper that did not answer, fails with ETIMEDOUT.
int hako_exec_prepared(const struct hako_spec *spec, struct hako_exec_target *t, const int *stdio_fds,
                       int timeout_ms, struct hako_proc *out, struct hako_failure *fail);

// The health check's live state: the monitor writes it after every probe
// (and with every state file) to HAKO_HEALTH_FILE beside the state file, in
// place (one pwritev at offset 0, the file cut to the new length after): a
// result costs no new inode, no rename and no forced write-out, and the file
// never holds an older state than the state file. The content is a header of
// HAKO_HEALTH_HEADER_LEN bytes, "hako-health-v1 LLLLLLLL CCCCCCCCCCCCCCCC\n"
// (the body's length and its FNV-1a 64 checksum, lower-case hex), then the
// body: the JSON of Docker's .State.Health ({"status", "failingStreak",
// "log"}). Bytes past the body are not part of it. A reader may race the
// write and see a mix of two contents: their checksum does not match, and it
// reads again.
#define HAKO_HEALTH_FILE "health"
#define HAKO_HEALTH_HEADER_LEN 41
// Writes the header (and a NUL) for `body`, `n` bytes.
void hako_health_header(char out[HAKO_HEALTH_HEADER_LEN + 1], const void *body, size_t n);
// The length of the body of a health file's `content` (n bytes; the body
// starts at HAKO_HEALTH_HEADER_LEN), or -1 unless the content is one whole write.
long hako_health_body(const void *content, size_t n);

// ---------------------------------------------------------------------------
// Syscalls glibc does not wrap (or hides behind feature macros).
int hako_openat2(int dirfd, const char *path, int flags, int mode, uint64_t resolve);
int hako_open_in_root(int rootfd, const char *path, int flags, int mode);
int hako_mkdir_in_root(int rootfd, const char *path, int mode);
int hako_pidfd_open(pid_t pid);
// The kernel's clock discipline, read only (adjtimex with no modes): returns the
// clock state (TIME_OK … TIME_ERROR) or -1; the status bits (STA_UNSYNC …)
// and the estimated error in microseconds.
int hako_clock_state(int *status, long *maxerror_us);
int hako_pidfd_send_signal(int pidfd, int sig);
int hako_close_range_cloexec(unsigned int from);
int hako_memfd(const char *name);
int hako_pivot_root(const char *new_root, const char *put_old);
int hako_setns(int fd, int type);
int hako_pipe2(int fds[2], int flags);
/* accept4(SOCK_CLOEXEC): a server that spawns programs from other threads leaks no client socket into them. */
int hako_accept_cloexec(int fd);
// Extended attributes and syncfs (<sys/xattr.h> is not in the Glibc module).
int hako_setxattr(const char *path, const char *name, const void *value, size_t size, int follow);
ssize_t hako_lgetxattr(const char *path, const char *name, void *value, size_t size);
ssize_t hako_llistxattr(const char *path, char *list, size_t size);
int hako_syncfs(int fd);
ssize_t hako_getrandom(void *buf, size_t len);

// Sends / receives one fd over an AF_UNIX socket (SCM_RIGHTS).
int hako_send_fd(int sock, int fd);
int hako_recv_fd(int sock);

// Terminal helpers for the CLI side.
int hako_tty_raw(int fd, void *saved, size_t savedlen);   // saved: >= sizeof(struct termios)
int hako_tty_restore(int fd, const void *saved);
int hako_tty_size(int fd, uint16_t *rows, uint16_t *cols);
int hako_tty_set_size(int fd, uint16_t rows, uint16_t cols);
// A signalfd for the given signals, which are blocked in the calling thread;
// the previous mask is stored in `old` (>= sizeof(sigset_t) bytes).
int hako_signalfd_open(const int *signals, int n, void *old, size_t oldlen);
// The next signal from a signalfd, 0 if none is pending, -1 on error.
int hako_signalfd_read(int fd);
int hako_sigmask_restore(const void *old);

int hako_pty_open_in_root(int rootfd, int *master, char *slave_path, size_t slave_len);

// ---------------------------------------------------------------------------
// User namespaces and the detached overlay root (userns.c).

// Writes /proc/<pid>/uid_map and gid_map from the spec's maps. 0, or -1 with fail set.
int hako_write_id_maps(pid_t pid, const struct hako_spec *spec, struct hako_failure *fail);
// Builds the container's overlay as a detached mount (fsopen/fsconfig/fsmount) in
// the caller's context, the lower layers idmapped to the spec's uid/gid maps when
// spec->idmap_layers. Returns the mount fd (for move_mount), or -1 with fail set.
int hako_detached_overlay(const struct hako_spec *spec, struct hako_failure *fail);
// A detached overlay mount of `lowerdir` (joined with ':', escaped), `upperdir` and
// `workdir`, seen by no mount namespace: the fd of its root, or -1 with errno.
int hako_overlay_mount(const char *lowerdir, const char *upperdir, const char *workdir);
// The same for a container with idmapped layers (--userns auto): the lower
// layers (`nlower` paths, the top one first) idmapped to ids `start`…`start+count-1`,
// as the container's own root sees them. The mount fd, or -1 with errno.
int hako_overlay_mount_idmapped(const char *const *lower, int nlower, const char *upperdir, const char *workdir,
                                uint32_t start, uint32_t count);
// One bind of a stopped container's root for `hako cp` (a volume, a -v bind,
// /etc/hosts …): `source` on the host, `target` inside the root.
struct hako_copy_bind { const char *source; const char *target; int read_only; };
// A stopped container's file tree as it sees it when running, for `hako cp`:
// the overlay (the detached mount `overlay`, which this closes) attached at
// `mountpoint` and the binds (parents before children) on it, made in a mount
// namespace of their own (private: nothing reaches the host) on a thread of its
// own (no thread of the caller changes namespace). A missing mount point is
// made inside the root, as the container's start would. Returns an O_PATH fd of
// the root and sets *nsfd to an fd of the namespace: the mounts live until
// both are closed, and go with the process. -1 with errno, and *failed the
// index of the bind that failed (-1: the root).
int hako_copy_root(int overlay, const char *mountpoint, const struct hako_copy_bind *binds, int nbinds,
                   int *nsfd, int *failed);
// Moves a detached mount onto `target` (an absolute path). 0, or -1 with errno.
int hako_move_mount(int mount_fd, const char *target);
// Whether `path` can be idmapped (open_tree + mount_setattr on a throwaway clone):
// 1 yes, 0 no (errno tells why), -1 when the probe itself failed.
int hako_idmap_supported(const char *path);
// Copies every device node of the host's /dev (recursively, bounded) into the
// /dev of `rootfd`, skipping names that exist. Async-signal-safe. 0, or -1 with
// errno and the offending path in `where` (>= 256 bytes).
int hako_copy_host_devices(int rootfd, char *where);

// ---------------------------------------------------------------------------
// bpf(2) for the cgroup v2 device filter (sys.c).

// Loads a BPF_PROG_TYPE_CGROUP_DEVICE program (`count` 8-byte instructions).
// Returns the program fd, or -1 with errno; the verifier's log goes to `log`.
int hako_bpf_load_device_program(const void *insns, uint32_t count, char *log, uint32_t loglen);
// Attaches a device program to a cgroup v2 directory fd (BPF_CGROUP_DEVICE,
// BPF_F_ALLOW_MULTI). 0, or -1 with errno.
int hako_bpf_attach_device_program(int prog_fd, int cgroup_fd);

// Constants the Glibc module hides from Swift.
extern const uint64_t HAKO_CLONE_NEWNS, HAKO_CLONE_NEWPID, HAKO_CLONE_NEWNET, HAKO_CLONE_NEWUTS,
    HAKO_CLONE_NEWIPC, HAKO_CLONE_NEWUSER, HAKO_CLONE_NEWCGROUP, HAKO_CLONE_NEWTIME;
extern const uint64_t HAKO_MS_RDONLY, HAKO_MS_NOSUID, HAKO_MS_NODEV, HAKO_MS_NOEXEC,
    HAKO_MS_REC, HAKO_MS_PRIVATE, HAKO_MS_SLAVE, HAKO_MS_SHARED, HAKO_MS_STRICTATIME,
    HAKO_MS_RELATIME, HAKO_MS_NOATIME, HAKO_MS_REMOUNT, HAKO_MS_BIND;
extern const int HAKO_O_PATH;
extern const int HAKO_O_TMPFILE;

#ifdef __cplusplus
}
#endif
// glibc's heap (malloc.h is not in Swift's Glibc module): one arena for every
// thread (M_ARENA_MAX = 1) and returning free heap pages to the kernel.
int hako_heap_single_arena(void);
int hako_heap_trim(void);

#endif
