// The launch spec: parses the record blob Swift writes into struct hako_spec.
// Strings in the spec point into the blob; the tables of repeated records are
// allocated to the number of those records (one block), so a command line is
// limited by the kernel (ARG_MAX at exec), not by a table size.
#include "hako_shim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>

static const char *stage_names[HAKO_STAGE_COUNT] = {
    [HAKO_STAGE_NONE] = "start",
    [HAKO_STAGE_CLONE] = "clone",
    [HAKO_STAGE_SYNC] = "sync with monitor",
    [HAKO_STAGE_SETNS] = "setns",
    [HAKO_STAGE_CGROUP] = "join cgroup",
    [HAKO_STAGE_USERNS] = "user namespace",
    [HAKO_STAGE_PROPAGATION] = "mount propagation",
    [HAKO_STAGE_ROOTFS] = "mount rootfs",
    [HAKO_STAGE_MOUNT] = "mount",
    [HAKO_STAGE_DEVICE] = "device",
    [HAKO_STAGE_CONSOLE] = "console",
    [HAKO_STAGE_PIVOT_ROOT] = "pivot_root",
    [HAKO_STAGE_HOSTNAME] = "sethostname",
    [HAKO_STAGE_SYSCTL] = "sysctl",
    [HAKO_STAGE_MASK] = "mask path",
    [HAKO_STAGE_READONLY] = "read-only path",
    [HAKO_STAGE_RLIMIT] = "setrlimit",
    [HAKO_STAGE_OOM_SCORE] = "oom_score_adj",
    [HAKO_STAGE_SETGROUPS] = "setgroups",
    [HAKO_STAGE_SETGID] = "setgid",
    [HAKO_STAGE_SETUID] = "setuid",
    [HAKO_STAGE_CAPS] = "capabilities",
    [HAKO_STAGE_NO_NEW_PRIVS] = "no_new_privs",
    [HAKO_STAGE_SECCOMP] = "seccomp",
    [HAKO_STAGE_CHDIR] = "chdir",
    [HAKO_STAGE_STDIO] = "stdio",
    [HAKO_STAGE_EXEC] = "exec",
    [HAKO_STAGE_EXEC_NOT_FOUND] = "exec",
    [HAKO_STAGE_CGROUPNS] = "cgroup namespace",
    [HAKO_STAGE_HOOK] = "hook",
    [HAKO_STAGE_EXEC_FIFO] = "exec fifo",
    [HAKO_STAGE_TIMENS] = "time namespace",
    [HAKO_STAGE_PERSONALITY] = "personality",
    [HAKO_STAGE_KEYRING] = "session keyring",
    [HAKO_STAGE_DOMAINNAME] = "setdomainname",
    [HAKO_STAGE_UMASK] = "umask",
    [HAKO_STAGE_APPARMOR] = "apparmor",
    [HAKO_STAGE_READY] = "set-up (network, cgroup limits)",
};

const char *hako_stage_name(int stage) {
    if (stage < 0 || stage >= HAKO_STAGE_COUNT || !stage_names[stage]) return "start";
    return stage_names[stage];
}

struct reader { const uint8_t *p, *end; };

static int take(struct reader *r, void *out, size_t n) {
    if ((size_t)(r->end - r->p) < n) return -1;
    memcpy(out, r->p, n);
    r->p += n;
    return 0;
}

// A string field: must be NUL-terminated inside its payload.
static const char *str_at(const uint8_t *p, uint32_t len) {
    if (len == 0 || p[len - 1] != 0) return NULL;
    return (const char *)p;
}

#define FAIL(...) do { snprintf(err, errlen, __VA_ARGS__); return -1; } while (0)
#define NEED(cond, what) do { if (!(cond)) FAIL("launch spec: bad %s record", what); } while (0)
#define PUSH(arr, n, cap, v, what) do { if ((size_t)(n) >= (size_t)(cap)) FAIL("launch spec: too many %s", what); (arr)[(n)++] = (v); } while (0)

static int u32_at(const uint8_t *p, uint32_t len, uint32_t idx, uint32_t *out) {
    if (len < (idx + 1) * 4) return -1;
    memcpy(out, p + idx * 4, 4);
    return 0;
}

#define HAKO_TAGS 128

// Counts the records of every kind to size the tables. A malformed blob stops
// the count; the parse reports it.
static void count_records(const uint8_t *p, const uint8_t *end, size_t count[HAKO_TAGS]) {
    memset(count, 0, HAKO_TAGS * sizeof *count);
    if ((size_t)(end - p) < 8) return;
    p += 8;
    while ((size_t)(end - p) >= 6) {
        uint16_t tag; uint32_t n;
        memcpy(&tag, p, 2); memcpy(&n, p + 2, 4);
        p += 6;
        if ((size_t)(end - p) < n) return;
        if (tag < HAKO_TAGS) count[tag]++;
        p += n;
    }
}

struct capacity { size_t args, env, mounts, groups, devices, masked, readonly, sysctls, remove_dirs, remove_files, health_args, files; };

// Carves `n` items of `size` bytes off the block (pointer-aligned).
static void *carve(char **at, size_t n, size_t size) {
    void *p = *at;
    size_t bytes = (n * size + sizeof(void *) - 1) / sizeof(void *) * sizeof(void *);
    *at += bytes;
    return p;
}

static int parse_records(const void *blob, size_t len, struct hako_spec *s, struct capacity cap, char *err, size_t errlen);

int hako_spec_parse(const void *blob, size_t len, struct hako_spec *s, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    s->ready_fd = -1;
    size_t count[HAKO_TAGS];
    count_records(blob, (const uint8_t *)blob + len, count);
    struct capacity cap = {
        .args = count[HAKO_T_ARG], .env = count[HAKO_T_ENV], .mounts = count[HAKO_T_MOUNT],
        .groups = count[HAKO_T_GROUP], .devices = count[HAKO_T_DEVICE], .masked = count[HAKO_T_MASKED],
        .readonly = count[HAKO_T_READONLY], .sysctls = count[HAKO_T_SYSCTL],
        .remove_dirs = count[HAKO_T_REMOVE_DIR], .remove_files = count[HAKO_T_REMOVE_FILE],
        .health_args = count[HAKO_T_HEALTH_ARG], .files = count[HAKO_T_FILE],
    };
    // One block for every table; argv and envp get their NULL. Each record
    // takes at least 6 bytes of the blob, so no size overflows.
    const size_t P = sizeof(const char *), A = sizeof(void *) - 1;
    size_t sizes[] = {
        cap.mounts * sizeof(struct hako_mount), cap.devices * sizeof(struct hako_device), cap.groups * sizeof(uint32_t),
        (cap.args + 1) * P, (cap.env + 1) * P, cap.masked * P, cap.readonly * P, cap.sysctls * P, cap.sysctls * P,
        cap.remove_dirs * P, cap.remove_files * P, (cap.health_args + 1) * P, cap.files * sizeof(struct hako_file),
    };
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) total += (sizes[i] + A) / (A + 1) * (A + 1);
    char *block = calloc(1, total + 1), *at = block;
    if (!block) FAIL("launch spec: out of memory for %zu args and %zu env entries", cap.args, cap.env);
    s->mounts = carve(&at, cap.mounts, sizeof(struct hako_mount));
    s->devices = carve(&at, cap.devices, sizeof(struct hako_device));
    s->groups = carve(&at, cap.groups, sizeof(uint32_t));
    s->argv = carve(&at, cap.args + 1, P);
    s->envp = carve(&at, cap.env + 1, P);
    s->masked = carve(&at, cap.masked, P);
    s->readonly = carve(&at, cap.readonly, P);
    s->sysctl_key = carve(&at, cap.sysctls, P);
    s->sysctl_val = carve(&at, cap.sysctls, P);
    s->remove_dirs = carve(&at, cap.remove_dirs, P);
    s->remove_files = carve(&at, cap.remove_files, P);
    s->health_argv = carve(&at, cap.health_args + 1, P);
    s->files = carve(&at, cap.files, sizeof(struct hako_file));
    if (parse_records(blob, len, s, cap, err, errlen) < 0) {
        hako_spec_free(s);
        return -1;
    }
    return 0;
}

// The block starts with the mounts' table (hako_spec_parse carves it first).
void hako_spec_free(struct hako_spec *s) {
    free(s->mounts);
    s->mounts = NULL; s->devices = NULL; s->groups = NULL; s->argv = NULL; s->envp = NULL;
    s->masked = NULL; s->readonly = NULL; s->sysctl_key = NULL; s->sysctl_val = NULL;
    s->remove_dirs = NULL; s->remove_files = NULL; s->health_argv = NULL;
    s->health_argc = 0;
    s->nmounts = s->ndevices = s->ngroups = s->argc = s->envc = 0;
    s->nmasked = s->nreadonly = s->nsysctl = s->nremove_dirs = s->nremove_files = 0;
}

static int parse_records(const void *blob, size_t len, struct hako_spec *s, struct capacity cap, char *err, size_t errlen) {
    s->propagation = MS_REC | MS_SLAVE;
    s->stop_signal = 15;
    s->log_max_files = 1;
    s->uid = 0; s->gid = 0;
    struct reader r = { blob, (const uint8_t *)blob + len };
    char magic[8];
    if (take(&r, magic, 8) < 0 || memcmp(magic, "HAKOSPEC", 8) != 0) FAIL("launch spec: bad magic");
    while (r.p < r.end) {
        uint16_t tag; uint32_t n;
        if (take(&r, &tag, 2) < 0 || take(&r, &n, 4) < 0) FAIL("launch spec: truncated record header");
        if ((size_t)(r.end - r.p) < n) FAIL("launch spec: truncated record %u", tag);
        const uint8_t *p = r.p;
        r.p += n;
        const char *str = str_at(p, n);
        switch (tag) {
        case HAKO_T_ID: NEED(str, "id"); s->id = str; break;
        case HAKO_T_CLONE_FLAGS: NEED(n == 8, "clone flags"); memcpy(&s->clone_flags, p, 8); break;
        case HAKO_T_ROOTFS: NEED(str, "rootfs"); s->rootfs = str; break;
        case HAKO_T_OVERLAY: NEED(str, "overlay"); s->overlay = str; break;
        case HAKO_T_OVERLAY_DIR: NEED(str, "overlay dir"); s->overlay_dir = str; break;
        case HAKO_T_HOSTNAME: NEED(str, "hostname"); s->hostname = str; break;
        case HAKO_T_ARG: NEED(str, "arg"); PUSH(s->argv, s->argc, cap.args, str, "args"); break;
        case HAKO_T_ENV: NEED(str, "env"); PUSH(s->envp, s->envc, cap.env, str, "env entries"); break;
        case HAKO_T_CWD: NEED(str, "cwd"); s->cwd = str; break;
        case HAKO_T_UID: NEED(n == 4, "uid"); memcpy(&s->uid, p, 4); break;
        case HAKO_T_GID: NEED(n == 4, "gid"); memcpy(&s->gid, p, 4); break;
        case HAKO_T_GROUP: {
            uint32_t g; NEED(n == 4, "group"); memcpy(&g, p, 4);
            PUSH(s->groups, s->ngroups, cap.groups, g, "groups");
            break;
        }
        case HAKO_T_MOUNT: {
            // u32 kind, u64 flags, then four strings: source, target, fstype, data.
            struct hako_mount m;
            NEED(n >= 12, "mount");
            memcpy(&m.kind, p, 4); memcpy(&m.flags, p + 4, 8);
            const char *f[4]; const uint8_t *q = p + 12, *e = p + n;
            for (int i = 0; i < 4; i++) {
                const uint8_t *z = memchr(q, 0, (size_t)(e - q));
                NEED(z, "mount");
                f[i] = (const char *)q; q = z + 1;
            }
            m.source = f[0]; m.target = f[1]; m.fstype = f[2]; m.data = f[3];
            m.attr_set = m.attr_clr = 0;
            m.propagation = 0;
            NEED(m.target[0] == '/', "mount target");
            PUSH(s->mounts, s->nmounts, cap.mounts, m, "mounts");
            break;
        }
        case HAKO_T_CGROUP_DIR: NEED(str, "cgroup dir"); s->cgroup_dir = str; break;
        case HAKO_T_CGROUP_PROCS: NEED(str, "cgroup procs"); PUSH(s->cgroup_procs, s->ncgroup_procs, 32, str, "cgroup files"); break;
        case HAKO_T_TTY:
            NEED(n == 8, "tty");
            s->tty = 1; memcpy(&s->tty_rows, p, 4); memcpy(&s->tty_cols, p + 4, 4);
            break;
        case HAKO_T_STDIN: s->keep_stdin = 1; break;
        case HAKO_T_NS_JOIN: {
            struct hako_nsjoin j;
            NEED(n > 5 && p[n - 1] == 0, "namespace");
            memcpy(&j.type, p, 4); j.path = (const char *)p + 4;
            PUSH(s->nsjoin, s->nnsjoin, HAKO_MAX_NSJOIN, j, "namespaces");
            break;
        }
        case HAKO_T_RLIMIT: {
            struct hako_rlimit l;
            NEED(n == 20, "rlimit");
            memcpy(&l.resource, p, 4); memcpy(&l.soft, p + 4, 8); memcpy(&l.hard, p + 12, 8);
            PUSH(s->rlimits, s->nrlimits, 32, l, "rlimits");
            break;
        }
        case HAKO_T_CAPS: NEED(n == 40, "caps"); s->has_caps = 1; memcpy(s->caps, p, 40); break;
        case HAKO_T_NO_NEW_PRIVS: s->no_new_privs = 1; break;
        case HAKO_T_SECCOMP: NEED(n % 8 == 0 && n > 0, "seccomp"); s->seccomp = p; s->seccomp_len = n; break;
        case HAKO_T_OOM_SCORE_ADJ: NEED(n == 4, "oom score"); s->has_oom_score_adj = 1; memcpy(&s->oom_score_adj, p, 4); break;
        case HAKO_T_MASKED: NEED(str, "masked path"); PUSH(s->masked, s->nmasked, cap.masked, str, "masked paths"); break;
        case HAKO_T_READONLY: NEED(str, "read-only path"); PUSH(s->readonly, s->nreadonly, cap.readonly, str, "read-only paths"); break;
        case HAKO_T_SYSCTL: {
            const uint8_t *z = n ? memchr(p, 0, n) : NULL;
            NEED(z && p[n - 1] == 0 && z < p + n - 1, "sysctl");
            if ((size_t)s->nsysctl >= cap.sysctls) FAIL("launch spec: too many sysctls");
            s->sysctl_key[s->nsysctl] = (const char *)p;
            s->sysctl_val[s->nsysctl] = (const char *)z + 1;
            s->nsysctl++;
            break;
        }
        case HAKO_T_CGROUPNS: s->cgroupns = 1; break;
        case HAKO_T_PROPAGATION: NEED(n == 8, "propagation"); memcpy(&s->propagation, p, 8); break;
        case HAKO_T_READONLY_ROOT: s->readonly_root = 1; break;
        case HAKO_T_USERNS_MAP: {
            struct hako_idmap m;
            NEED(n == 16, "id map");
            u32_at(p, n, 0, &m.kind); u32_at(p, n, 1, &m.inside); u32_at(p, n, 2, &m.outside); u32_at(p, n, 3, &m.count);
            PUSH(s->idmaps, s->nidmaps, 16, m, "id maps");
            break;
        }
        case HAKO_T_DEVICE: {
            struct hako_device d;
            NEED(n > 25 && p[n - 1] == 0 && p[24] == '/', "device");
            u32_at(p, n, 0, &d.type); u32_at(p, n, 1, &d.major); u32_at(p, n, 2, &d.minor);
            u32_at(p, n, 3, &d.mode); u32_at(p, n, 4, &d.uid); u32_at(p, n, 5, &d.gid);
            d.path = (const char *)p + 24;
            // An optional second string: the host node bound in when mknod is refused.
            const uint8_t *z = memchr(p + 24, 0, n - 24);
            d.source = z + 1 < p + n ? (const char *)z + 1 : NULL;
            NEED(!d.source || d.source[0] == '/', "device source");
            PUSH(s->devices, s->ndevices, cap.devices, d, "devices");
            break;
        }
        case HAKO_T_FILE: {
            // u32 uid, gid, mode, the absolute target NUL-terminated, then the content.
            struct hako_file f;
            NEED(n > 13 && p[12] == '/', "file");
            u32_at(p, n, 0, &f.uid); u32_at(p, n, 1, &f.gid); u32_at(p, n, 2, &f.mode);
            const uint8_t *z = memchr(p + 12, 0, n - 12);
            NEED(z != NULL && (f.mode & ~07777u) == 0, "file");
            f.target = (const char *)p + 12;
            f.data = z + 1;
            f.len = (uint32_t)(p + n - (z + 1));
            PUSH(s->files, s->nfiles, cap.files, f, "files");
            break;
        }
        case HAKO_T_DETACHED_OVERLAY: {
            // u32 flags, then upper, work and the lower layers, each NUL-terminated.
            uint32_t flags;
            NEED(n > 4 && p[n - 1] == 0, "detached overlay");
            memcpy(&flags, p, 4);
            const uint8_t *q = p + 4, *e = p + n;
            int k = 0;
            while (q < e) {
                const uint8_t *z = memchr(q, 0, (size_t)(e - q));
                NEED(z && z > q && *q == '/', "detached overlay");
                if (k == 0) s->dov_upper = (const char *)q;
                else if (k == 1) s->dov_work = (const char *)q;
                else PUSH(s->dov_lower, s->dov_nlower, HAKO_MAX_LAYERS, (const char *)q, "overlay layers");
                k++;
                q = z + 1;
            }
            NEED(s->dov_nlower > 0, "detached overlay");
            s->detached_overlay = 1;
            s->idmap_layers = flags & 1;
            break;
        }
        case HAKO_T_HOST_DEVICES: s->host_devices = 1; break;
        case HAKO_T_OVERLAY_VOLATILE: s->overlay_volatile = 1; break;
        case HAKO_T_EXEC_FIFO: NEED(str && str[0] == '/', "exec fifo"); s->exec_fifo = str; break;
        case HAKO_T_PRESERVE_FDS: NEED(n == 4, "preserve fds"); memcpy(&s->preserve_fds, p, 4); NEED(s->preserve_fds < 65536, "preserve fds"); break;
        case HAKO_T_NO_PIVOT: s->no_pivot = 1; break;
        case HAKO_T_DOMAINNAME: NEED(str, "domainname"); s->domainname = str; break;
        case HAKO_T_PERSONALITY: NEED(n == 4, "personality"); s->has_personality = 1; memcpy(&s->personality, p, 4); break;
        case HAKO_T_UMASK: NEED(n == 4, "umask"); s->has_umask = 1; memcpy(&s->umask, p, 4); NEED(s->umask <= 0777, "umask"); break;
        case HAKO_T_TIME_OFFSETS: NEED(n == 32, "time offsets"); s->has_time_offsets = 1; memcpy(s->time_offsets, p, 32); break;
        case HAKO_T_HOOK: {
            // u32 kind, u32 timeout, u32 nargs, then path, args, env (each NUL-terminated).
            uint32_t nargs;
            NEED(n > 13 && p[n - 1] == 0, "hook");
            if (s->nhooks >= HAKO_MAX_HOOKS) FAIL("launch spec: too many hooks");
            struct hako_hook *h = &s->hooks[s->nhooks];
            memcpy(&h->kind, p, 4); memcpy(&h->timeout, p + 4, 4); memcpy(&nargs, p + 8, 4);
            NEED(h->kind <= HAKO_HOOK_START_CONTAINER && nargs <= HAKO_MAX_HOOK_ARGS, "hook");
            const uint8_t *q = p + 12, *e = p + n;
            int k = 0, nenv = 0;
            while (q < e) {
                const uint8_t *z = memchr(q, 0, (size_t)(e - q));
                NEED(z, "hook");
                if (k == 0) h->path = (const char *)q;
                else if ((uint32_t)k <= nargs) h->argv[k - 1] = (const char *)q;
                else { if (nenv >= HAKO_MAX_HOOK_ENV) FAIL("launch spec: too many hook env entries"); h->envp[nenv++] = (const char *)q; }
                k++;
                q = z + 1;
            }
            NEED(k >= 1 && (uint32_t)(k - 1) >= nargs && h->path[0] == '/', "hook");
            if (nargs == 0) { h->argv[0] = h->path; nargs = 1; }
            h->argv[nargs] = NULL;
            h->envp[nenv] = NULL;
            s->nhooks++;
            break;
        }
        case HAKO_T_HOOK_SYNC: s->hook_sync = 1; break;
        case HAKO_T_SECCOMP_FLAGS: NEED(n == 4, "seccomp flags"); memcpy(&s->seccomp_flags, p, 4); break;
        case HAKO_T_KEYRING: NEED(str, "keyring"); s->keyring = str; break;
        case HAKO_T_APPARMOR: NEED(str && str[0], "apparmor profile"); s->apparmor = str; break;
        case HAKO_T_MOUNT_PROPAGATION:
            NEED(n == 8 && s->nmounts > 0, "mount propagation");
            memcpy(&s->mounts[s->nmounts - 1].propagation, p, 8);
            break;
        case HAKO_T_MOUNT_ATTR:
            NEED(n == 16 && s->nmounts > 0, "mount attributes");
            memcpy(&s->mounts[s->nmounts - 1].attr_set, p, 8); memcpy(&s->mounts[s->nmounts - 1].attr_clr, p + 8, 8);
            break;
        case HAKO_T_LOG_PATH: NEED(str, "log path"); s->log_path = str; break;
        case HAKO_T_LOG_MAX_SIZE: NEED(n == 8, "log size"); memcpy(&s->log_max_size, p, 8); break;
        case HAKO_T_LOG_MAX_FILES: NEED(n == 4, "log files"); memcpy(&s->log_max_files, p, 4); break;
        case HAKO_T_STATE_PATH: NEED(str, "state path"); s->state_path = str; break;
        case HAKO_T_RUN_DIR: NEED(str, "run dir"); s->run_dir = str; break;
        case HAKO_T_RESTART: NEED(n == 8, "restart"); memcpy(&s->restart_policy, p, 4); memcpy(&s->restart_max, p + 4, 4); break;
        case HAKO_T_RESTART_COUNT: NEED(n == 4, "restart count"); memcpy(&s->restart_count, p, 4); break;
        case HAKO_T_REMOVE_DIR: NEED(str, "remove dir"); PUSH(s->remove_dirs, s->nremove_dirs, cap.remove_dirs, str, "remove dirs"); break;
        case HAKO_T_REMOVE_FILE: NEED(str, "remove file"); PUSH(s->remove_files, s->nremove_files, cap.remove_files, str, "remove files"); break;
        case HAKO_T_STOP_SIGNAL: NEED(n == 4, "stop signal"); memcpy(&s->stop_signal, p, 4); break;
        case HAKO_T_CLEANUP_ARG: NEED(str, "cleanup arg"); PUSH(s->cleanup_argv, s->ncleanup, 31, str, "cleanup args"); break;
        case HAKO_T_NET_LOCK: NEED(str && str[0] == '/', "network lock"); s->net_lock = str; break;
        case HAKO_T_NET_GUARD: NEED(str && str[0] == '/', "network teardown guard"); s->net_guard = str; break;
        case HAKO_T_NET_UNPIN: NEED(str && str[0] == '/', "network namespace"); s->net_unpin = str; break;
        case HAKO_T_NET_LEASE: NEED(str && str[0] == '/', "address lease"); PUSH(s->net_leases, s->nnet_leases, HAKO_MAX_NET_LEASES, str, "address leases"); break;
        case HAKO_T_NET_RECORD: NEED(str && str[0] == '/', "endpoint record"); s->net_record = str; break;
        case HAKO_T_CGROUP_RMDIR: NEED(str, "cgroup dir"); PUSH(s->cgroup_rmdir, s->ncgroup_rmdir, 64, str, "cgroup dirs"); break;
        case HAKO_T_CGROUP_KILL: NEED(str, "cgroup kill"); s->cgroup_kill = str; break;
        case HAKO_T_FREEZER:
            NEED(n >= 2 && p[n - 2] == 0, "freezer");
            s->freezer = (const char *)p; s->freezer_v2 = p[n - 1] == 2;
            break;
        case HAKO_T_OOM_EVENTS: NEED(str, "oom events"); s->oom_events = str; break;
        case HAKO_T_HEALTH:
            NEED(n == 36, "health");
            memcpy(&s->health_interval_ms, p, 8); memcpy(&s->health_timeout_ms, p + 8, 8);
            memcpy(&s->health_start_period_ms, p + 16, 8); memcpy(&s->health_start_interval_ms, p + 24, 8);
            memcpy(&s->health_retries, p + 32, 4);
            NEED(s->health_interval_ms > 0 && s->health_timeout_ms > 0 && s->health_start_interval_ms > 0 && s->health_retries > 0, "health");
            break;
        case HAKO_T_HEALTH_ARG: NEED(str, "health arg"); PUSH(s->health_argv, s->health_argc, cap.health_args, str, "health args"); break;
        case HAKO_T_EVENT_LOG: NEED(str && str[0] == '/', "event log"); s->event_log = str; break;
        case HAKO_T_EVENT_ATTRS: NEED(str && str[0] == '{', "event attributes"); s->event_attrs = str; break;
        default:
            FAIL("launch spec: unknown record %u", tag);
        }
    }
    s->argv[s->argc] = NULL;
    s->health_argv[s->health_argc] = NULL;
    if (s->health_argc && !s->health_interval_ms) FAIL("launch spec: a health command without its schedule");
    s->envp[s->envc] = NULL;
    s->cleanup_argv[s->ncleanup] = NULL;
    if (s->net_lock && !(s->net_guard && s->net_unpin && s->net_record)) FAIL("launch spec: an incomplete network release");
    // An OCI container may be created without a process; `start` refuses it then.
    if (s->argc == 0 && !s->exec_fifo) FAIL("launch spec: no command");
    if (!s->rootfs && !(s->nnsjoin)) FAIL("launch spec: no rootfs");
    return 0;
}
