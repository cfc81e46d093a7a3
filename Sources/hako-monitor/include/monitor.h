// hako-monitor: one small C process per container (see docs/architecture.md).
#ifndef HAKO_MONITOR_H
#define HAKO_MONITOR_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>
#include "hako_shim.h"

// CHakoShim's (child_base.c; the monitor links CHakoShim's C): writes all of
// buf, retrying EINTR; -1 with errno.
int write_all(int fd, const void *buf, size_t n);

// The fds and frame types: HAKO_MONITOR_FD_* and HAKO_MON_* in hako_shim.h.

// What the monitor removes at the container's end (cleanup.c), read from the spec.
ssize_t read_small_file(const char *path, char *buf, size_t cap);  // NUL-terminated; -1 with errno
int write_small_file(const char *path, const char *data);
void thaw_container(const struct hako_spec *s);      // a frozen (paused) one takes signals again
void rm_rf_at(int parent, const char *name);
void kill_leftovers(const struct hako_spec *s);      // every process left in its cgroup, SIGKILLed and reaped
void remove_cgroups(const struct hako_spec *s);
void run_cleanup_hook(const struct hako_spec *s);    // the network released here, or the engine's command run
struct hidden { char (*dirs)[4200]; int n; };
void hide_container(const struct hako_spec *s, struct hidden *h);  // --rm: out of sight, name released
void delete_hidden(struct hidden *h);                // then its bytes deleted

struct logger {
    int fd;
    const char *path;
    uint64_t max_size, size;
    uint32_t max_files;
    char partial[2][16384];
    size_t partial_len[2];
};

int log_open(struct logger *l, const char *path, uint64_t max_size, uint32_t max_files);
// stream: 0 stdout, 1 stderr
void log_write(struct logger *l, int stream, const char *data, size_t n);
void log_flush_partial(struct logger *l);
void log_close(struct logger *l);

// The health check (health.c). Small on purpose: one runs per container.
#define HEALTH_LOG 5
#define HEALTH_OUTPUT_MAX 4096
enum { HEALTH_STARTING = 0, HEALTH_HEALTHY = 1, HEALTH_UNHEALTHY = 2 };
enum { HEALTH_RECORDED = 1, HEALTH_CHANGED = 2 };  // what a health_* call did (0: nothing to write)

struct health_result {
    char start[40], end[40];
    int exit_code;
    char *output;  // NULL or the capped output (malloc'd to its size)
};

struct health {
    int enabled;
    int timer;       // timerfd: the next probe, or the running probe's deadline
    int status;      // HEALTH_*
    uint32_t streak; // failures in a row
    pid_t pid;       // the running probe (0: none)
    int out_fd;      // its stdout and stderr (-1: none)
    int out_w;       // the pipe's write end, held while the probe runs: the
                     // probe's exit is one wake-up (SIGCHLD), not two (no HUP)
    char *out; size_t out_len;
    char probe_start[40];
    struct timespec probe_started, container_started;  // CLOCK_MONOTONIC
    struct health_result log[HEALTH_LOG]; int nlog;
    // The container's probe helper, started at its first probe and kept until
    // it stops: each probe is then one vfork (hako_exec_prepared).
    struct hako_exec_target target;
    int null_fd;     // /dev/null, the probe's stdin (on hako_exec's path)
    int freezer_fd;  // the freezer's state file while the container runs (a paused one is not probed), or -1
    // The live state beside the state file (HAKO_HEALTH_FILE), written in place
    // after every probe; -1 when it cannot be opened (state.json still has it).
    int file_fd;
    size_t file_len;
    char *json; size_t json_len, json_cap; int json_failed;  // the JSON, built in place (health_json)
};

// Returns -1 when the spec has a check and its timer cannot be made.
int health_init(struct health *h, const struct hako_spec *s);
void health_container_started(struct health *h, const struct hako_spec *s);
void health_container_stopped(struct health *h);
// The timer fired: start a probe (the container's init is `target`), or end one at its deadline.
int health_on_timer(struct health *h, struct hako_spec *s, pid_t target, int running);
// A child was reaped: 0 unless it was the probe.
int health_on_reaped(struct health *h, const struct hako_spec *s, pid_t pid, int status);
void health_read_output(struct health *h);
const char *health_status_name(const struct health *h);
// {"status":…,"failingStreak":…,"log":[{"start","end","exitCode","output"}…]},
// built in h (valid until the next call; NULL when memory ran out).
const char *health_json(struct health *h, size_t *len);
// That, into f.
void health_write_json(struct health *h, FILE *f);
// Writes that to the live state file, in place (the format: HAKO_HEALTH_* in hako_shim.h).
void health_store(struct health *h);

// RFC 3339 UTC with nanoseconds, e.g. 2026-11-29T02:19:34.123456789Z
void format_time(char out[40]);

#endif
