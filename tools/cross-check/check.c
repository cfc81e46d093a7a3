// The pure C parts of hako, run on the Pis' architectures (make cross-check
// builds this for aarch64 and armhf and runs it under qemu-user): the launch
// spec parser with every kind of record, its refusals, and the monitor's log
// writer with its line format and rotation. Prints one line per failure and
// exits 1 if there was any.
#include "hako_shim.h"
#include "monitor.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

static int failures;
#define CHECK(cond) do { if (!(cond)) { printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); failures++; } } while (0)
#define CHECK_STR(a, b) do { const char *x_ = (a), *y_ = (b); \
    if (!x_ || strcmp(x_, y_) != 0) { printf("FAIL %s:%d: %s is \"%s\", not \"%s\"\n", __FILE__, __LINE__, #a, x_ ? x_ : "(null)", y_); failures++; } } while (0)

// A blob as the Swift side writes it: magic, then { u16 tag, u32 length, payload } in host byte order.
struct blob { uint8_t bytes[8192]; size_t len; };

static void put(struct blob *b, const void *p, size_t n) {
    if (b->len + n > sizeof b->bytes) { puts("FAIL blob too large"); exit(1); }
    memcpy(b->bytes + b->len, p, n);
    b->len += n;
}
static void rec(struct blob *b, uint16_t tag, const void *p, uint32_t n) { put(b, &tag, 2); put(b, &n, 4); put(b, p, n); }
static void rec_str(struct blob *b, uint16_t tag, const char *s) { rec(b, tag, s, (uint32_t)strlen(s) + 1); }
static void rec_u32(struct blob *b, uint16_t tag, uint32_t v) { rec(b, tag, &v, 4); }
static void rec_u64(struct blob *b, uint16_t tag, uint64_t v) { rec(b, tag, &v, 8); }
static void begin(struct blob *b) { b->len = 0; put(b, "HAKOSPEC", 8); }

static void full_spec(struct blob *b) {
    begin(b);
    rec_str(b, HAKO_T_ID, "0123456789abcdef");
    rec_u64(b, HAKO_T_CLONE_FLAGS, 0x7c020000ULL);
    rec_str(b, HAKO_T_ROOTFS, "/var/lib/hako/containers/x/rootfs");
    rec_str(b, HAKO_T_HOSTNAME, "pi2");
    rec_str(b, HAKO_T_ARG, "/bin/httpd");
    rec_str(b, HAKO_T_ARG, "-f");
    rec_str(b, HAKO_T_ENV, "PATH=/usr/bin:/bin");
    rec_u32(b, HAKO_T_UID, 1000);
    rec_u32(b, HAKO_T_GID, 4294967294U);
    rec_u32(b, HAKO_T_GROUP, 27);
    uint8_t mount[12 + 64]; uint32_t kind = HAKO_MNT_BIND; uint64_t flags = MS_BIND | MS_RDONLY;
    memcpy(mount, &kind, 4); memcpy(mount + 4, &flags, 8);
    const char strs[] = "/srv\0/data\0none\0ro";
    memcpy(mount + 12, strs, sizeof strs);
    rec(b, HAKO_T_MOUNT, mount, (uint32_t)(12 + sizeof strs));
    uint64_t attr[2] = { 0x1ULL, 0x100000ULL };
    rec(b, HAKO_T_MOUNT_ATTR, attr, 16);
    uint8_t rl[20]; uint32_t res = 7; uint64_t soft = 1024, hard = 0xffffffffffffffffULL;
    memcpy(rl, &res, 4); memcpy(rl + 4, &soft, 8); memcpy(rl + 12, &hard, 8);
    rec(b, HAKO_T_RLIMIT, rl, 20);
    uint64_t caps[5] = { 0xa80425fbULL, 1, 2, 3, 1ULL << 40 };
    rec(b, HAKO_T_CAPS, caps, 40);
    int32_t oom = -17;
    rec(b, HAKO_T_OOM_SCORE_ADJ, &oom, 4);
    rec(b, HAKO_T_SYSCTL, "net.ipv4.ip_forward\0" "1", 22);
    uint32_t tty[2] = { 24, 80 };
    rec(b, HAKO_T_TTY, tty, 8);
    int64_t offsets[4] = { -5, 123456789, 86400, 0 };
    rec(b, HAKO_T_TIME_OFFSETS, offsets, 32);
    rec_str(b, HAKO_T_LOG_PATH, "/var/lib/hako/containers/x/container.log");
    rec_u64(b, HAKO_T_LOG_MAX_SIZE, 10ULL << 20);
    rec_u32(b, HAKO_T_LOG_MAX_FILES, 3);
    uint32_t restart[2] = { HAKO_RESTART_ON_FAILURE, 5 };
    rec(b, HAKO_T_RESTART, restart, 8);
    rec_str(b, HAKO_T_CLEANUP_ARG, "/usr/local/bin/hako");
    rec(b, HAKO_T_FREEZER, "/sys/fs/cgroup/hako/x/cgroup.freeze\0\2", 37);
}

static void check_spec(void) {
    static struct blob b;
    static struct hako_spec s;
    char err[256];
    full_spec(&b);
    int rc = hako_spec_parse(b.bytes, b.len, &s, err, sizeof err);
    CHECK(rc == 0);
    if (rc != 0) { printf("      %s\n", err); return; }
    CHECK_STR(s.id, "0123456789abcdef");
    CHECK(s.clone_flags == 0x7c020000ULL);
    CHECK_STR(s.hostname, "pi2");
    CHECK(s.argc == 2); CHECK_STR(s.argv[1], "-f"); CHECK(s.argv[2] == NULL);
    CHECK(s.envc == 1); CHECK(s.envp[1] == NULL);
    CHECK(s.uid == 1000 && s.gid == 4294967294U);
    CHECK(s.ngroups == 1 && s.groups[0] == 27);
    CHECK(s.nmounts == 1);
    CHECK(s.mounts[0].kind == HAKO_MNT_BIND && s.mounts[0].flags == (MS_BIND | MS_RDONLY));
    CHECK_STR(s.mounts[0].target, "/data"); CHECK_STR(s.mounts[0].data, "ro");
    CHECK(s.mounts[0].attr_set == 1 && s.mounts[0].attr_clr == 0x100000ULL);
    CHECK(s.nrlimits == 1 && s.rlimits[0].resource == 7 && s.rlimits[0].soft == 1024 && s.rlimits[0].hard == 0xffffffffffffffffULL);
    CHECK(s.has_caps && s.caps[0] == 0xa80425fbULL && s.caps[4] == 1ULL << 40);
    CHECK(s.has_oom_score_adj && s.oom_score_adj == -17);
    CHECK(s.nsysctl == 1); CHECK_STR(s.sysctl_key[0], "net.ipv4.ip_forward"); CHECK_STR(s.sysctl_val[0], "1");
    CHECK(s.tty && s.tty_rows == 24 && s.tty_cols == 80);
    CHECK(s.has_time_offsets && s.time_offsets[0] == -5 && s.time_offsets[2] == 86400);
    CHECK(s.log_max_size == 10ULL << 20 && s.log_max_files == 3);
    CHECK(s.restart_policy == HAKO_RESTART_ON_FAILURE && s.restart_max == 5);
    CHECK(s.ncleanup == 1 && s.cleanup_argv[1] == NULL);
    CHECK(s.freezer_v2 == 1); CHECK_STR(s.freezer, "/sys/fs/cgroup/hako/x/cgroup.freeze");
    CHECK(s.stop_signal == 15 && s.propagation == (MS_REC | MS_SLAVE));

    // Every truncation of a good blob is refused, never read past.
    for (size_t n = 0; n < b.len; n++) {
        uint8_t *copy = malloc(n ? n : 1);
        if (!copy) { puts("FAIL malloc"); exit(1); }
        memcpy(copy, b.bytes, n);
        int r = hako_spec_parse(copy, n, &s, err, sizeof err);
        free(copy);
        // A cut exactly between records is a shorter, valid spec.
        if (r == 0) continue;
        CHECK(err[0] != 0);
    }
    // Refusals, with the reason in words.
    begin(&b); rec_str(&b, HAKO_T_ARG, "/bin/sh");
    CHECK(hako_spec_parse(b.bytes, b.len, &s, err, sizeof err) == -1 && strstr(err, "no rootfs"));
    begin(&b); rec_str(&b, HAKO_T_ROOTFS, "/r"); rec(&b, HAKO_T_ARG, "x", 1);
    CHECK(hako_spec_parse(b.bytes, b.len, &s, err, sizeof err) == -1 && strstr(err, "bad arg record"));
    begin(&b); rec_str(&b, HAKO_T_ROOTFS, "/r"); rec_str(&b, HAKO_T_ARG, "/bin/sh"); rec_u32(&b, 999, 1);
    CHECK(hako_spec_parse(b.bytes, b.len, &s, err, sizeof err) == -1 && strstr(err, "unknown record 999"));
    begin(&b); rec_str(&b, HAKO_T_ROOTFS, "/r"); rec_str(&b, HAKO_T_ARG, "/bin/sh"); rec_u32(&b, HAKO_T_UMASK, 01000);
    CHECK(hako_spec_parse(b.bytes, b.len, &s, err, sizeof err) == -1 && strstr(err, "umask"));
    CHECK(hako_spec_parse("HAKOSPE", 7, &s, err, sizeof err) == -1 && strstr(err, "bad magic"));
    CHECK_STR(hako_stage_name(HAKO_STAGE_PIVOT_ROOT), "pivot_root");
    CHECK_STR(hako_stage_name(-1), "start");
    CHECK_STR(hako_stage_name(HAKO_STAGE_COUNT), "start");
}

static size_t slurp(const char *path, char *buf, size_t cap) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    buf[n > 0 ? n : 0] = 0;
    return n > 0 ? (size_t)n : 0;
}

static void check_log(void) {
    char dir[] = "/tmp/hako-cross-check-XXXXXX";
    if (!mkdtemp(dir)) { puts("FAIL mkdtemp"); failures++; return; }
    char path[128], old[140];
    snprintf(path, sizeof path, "%s/container.log", dir);
    snprintf(old, sizeof old, "%s.1", path);
    static struct logger l;
    CHECK(log_open(&l, path, 200, 2) == 0);
    log_write(&l, 0, "hello\nwor", 9);
    log_write(&l, 1, "oops\n", 5);
    log_write(&l, 0, "ld\n", 3);
    log_write(&l, 0, "tail", 4);
    log_close(&l);
    static char text[4096], line[256];
    slurp(path, text, sizeof text);
    // <RFC3339Nano> <stream> <F|P> <text>: 2026-11-29T02:19:34.123456789Z is 30 characters.
    const char *want[] = { "stdout F hello", "stderr F oops", "stdout F world", "stdout P tail" };
    const char *p = text;
    for (int i = 0; i < 4; i++) {
        const char *nl = strchr(p, '\n');
        CHECK(nl != NULL);
        if (!nl) break;
        size_t n = (size_t)(nl - p);
        memcpy(line, p, n < sizeof line ? n : sizeof line - 1); line[n < sizeof line ? n : sizeof line - 1] = 0;
        CHECK(n > 31 && line[4] == '-' && line[10] == 'T' && line[29] == 'Z' && line[30] == ' ');
        CHECK_STR(line + 31, want[i]);
        p = nl + 1;
    }
    // Past 200 bytes the file rotates to .1 and starts again.
    CHECK(log_open(&l, path, 200, 2) == 0);
    log_write(&l, 0, "after the cap\n", 14);
    log_close(&l);
    CHECK(slurp(old, text, sizeof text) > 0 && strstr(text, "stdout P tail"));
    CHECK(slurp(path, text, sizeof text) > 0 && strstr(text, "stdout F after the cap") && !strstr(text, "hello"));
    unlink(path); unlink(old); rmdir(dir);
    char ts[40];
    format_time(ts);
    CHECK(strlen(ts) == 30 && ts[29] == 'Z' && strncmp(ts, "19", 2) != 0);
}

int main(int argc, char **argv) {
    // check --write-spec FILE: the full spec above (no run dir), for the monitor to refuse.
    if (argc == 3 && strcmp(argv[1], "--write-spec") == 0) {
        static struct blob b;
        full_spec(&b);
        FILE *f = fopen(argv[2], "wb");
        if (!f || fwrite(b.bytes, 1, b.len, f) != b.len || fclose(f) != 0) { perror(argv[2]); return 1; }
        return 0;
    }
    check_spec();
    check_log();
    if (failures) { printf("%d failure(s)\n", failures); return 1; }
    printf("ok: launch spec parser and container log (%zu-bit pointers, %zu-bit time_t)\n", sizeof(void *) * 8, sizeof(time_t) * 8);
    return 0;
}
