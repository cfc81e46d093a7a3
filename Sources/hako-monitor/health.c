// The health check: the monitor runs the container's probe on schedule, as
// `exec` would (the container's namespaces, cgroups, user, capabilities,
// seccomp filter, environment and working directory), kills it at its
// timeout, and keeps Docker's state: starting / healthy / unhealthy, the
// failing streak and the last HEALTH_LOG results (output capped).
//
// Docker's rules: the first probe runs one interval after the start (one
// start interval while in the start period); the next one interval after a
// probe ends. Exit 0 is healthy; anything else, a timeout or a probe that
// cannot start is a failure, and `retries` failures in a row make the
// container unhealthy, except failures that begin within the start period
// while it has never been healthy. A success makes it healthy at once.
#include "monitor.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *status_names[] = { "starting", "healthy", "unhealthy" };

const char *health_status_name(const struct health *h) { return status_names[h->status]; }

static long elapsed_ms(const struct timespec *since) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000;
}

static void arm_ms(int tfd, uint64_t ms) {
    struct itimerspec it;
    memset(&it, 0, sizeof it);
    it.it_value.tv_sec = (time_t)(ms / 1000);
    it.it_value.tv_nsec = (long)(ms % 1000) * 1000000L;
    if (ms == 0) it.it_value.tv_nsec = 1;
    timerfd_settime(tfd, 0, &it, NULL);
}

static void disarm_timer(int tfd) {
    struct itimerspec it;
    memset(&it, 0, sizeof it);
    timerfd_settime(tfd, 0, &it, NULL);
}

static int in_start_period(const struct health *h, const struct hako_spec *s, const struct timespec *at) {
    long since = (at->tv_sec - h->container_started.tv_sec) * 1000 + (at->tv_nsec - h->container_started.tv_nsec) / 1000000;
    return h->status == HEALTH_STARTING && since >= 0 && (uint64_t)since < s->health_start_period_ms;
}

static void schedule_next(struct health *h, const struct hako_spec *s) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    arm_ms(h->timer, in_start_period(h, s, &now) ? s->health_start_interval_ms : s->health_interval_ms);
}

// The live state file: HAKO_HEALTH_FILE in the state file's directory.
static void open_store(struct health *h, const struct hako_spec *s) {
    const char *slash = s->state_path ? strrchr(s->state_path, '/') : NULL;
    if (!slash) return;
    char path[4200];
    int n = snprintf(path, sizeof path, "%.*s/%s", (int)(slash - s->state_path), s->state_path, HAKO_HEALTH_FILE);
    if (n <= 0 || n >= (int)sizeof path) return;
    h->file_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    struct stat st;
    if (h->file_fd >= 0 && fstat(h->file_fd, &st) == 0) h->file_len = (size_t)st.st_size;
}

int health_init(struct health *h, const struct hako_spec *s) {
    memset(h, 0, sizeof *h);
    h->timer = h->out_fd = h->out_w = h->null_fd = h->file_fd = h->freezer_fd = -1;
    h->target.pid = 0;
    h->target.helper_sock = -1;
    if (!s->health_argc) return 0;
    h->timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (h->timer < 0) return -1;
    h->enabled = 1;
    open_store(h, s);
    return 0;
}

void health_container_started(struct health *h, const struct hako_spec *s) {
    if (!h->enabled) return;
    h->status = HEALTH_STARTING;
    h->streak = 0;
    if (h->freezer_fd < 0 && s->freezer) h->freezer_fd = open(s->freezer, O_RDONLY | O_CLOEXEC);
    clock_gettime(CLOCK_MONOTONIC, &h->container_started);
    schedule_next(h, s);
}

static void end_probe(struct health *h) {
    if (h->out_fd >= 0) close(h->out_fd);
    if (h->out_w >= 0) close(h->out_w);
    h->out_fd = h->out_w = -1;
    free(h->out);
    h->out = NULL;
    h->out_len = 0;
    h->pid = 0;
}

void health_container_stopped(struct health *h) {
    if (!h->enabled) return;
    // The probe dies with the container's pid namespace; with the host's, it
    // is killed here. Either way the monitor's waitpid reaps it.
    if (h->pid > 0) kill(h->pid, SIGKILL);
    end_probe(h);
    disarm_timer(h->timer);
    if (h->target.pid > 0) hako_exec_target_close(&h->target);
    if (h->freezer_fd >= 0) close(h->freezer_fd);
    h->freezer_fd = -1;
}

void health_read_output(struct health *h) {
    char buf[4096];
    while (h->out_fd >= 0) {
        ssize_t n = read(h->out_fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return;
        if (n <= 0) { close(h->out_fd); h->out_fd = -1; return; }
        // Docker keeps the first 4096 bytes; the rest is read and dropped.
        size_t keep = (size_t)n;
        if (h->out_len + keep > HEALTH_OUTPUT_MAX) keep = HEALTH_OUTPUT_MAX - h->out_len;
        if (!keep) continue;
        char *grown = realloc(h->out, h->out_len + keep + 1);
        if (!grown) continue;
        h->out = grown;
        memcpy(h->out + h->out_len, buf, keep);
        h->out_len += keep;
        h->out[h->out_len] = 0;
    }
}

// Appends "health_status: <status>" to the engine's event log, as hako's own
// EventLog does (one line, O_APPEND; past 1 MiB the file becomes .1).
static void record_event(const struct health *h, const struct hako_spec *s) {
    if (!s->event_log || !s->id) return;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    char line[8192];
    int n = snprintf(line, sizeof line,
                     "{\"time\":%ld.%03ld,\"type\":\"container\",\"action\":\"health_status: %s\",\"id\":\"%s\",\"attributes\":%s}\n",
                     (long)now.tv_sec, now.tv_nsec / 1000000L, health_status_name(h), s->id,
                     s->event_attrs ? s->event_attrs : "{}");
    if (n <= 0 || n >= (int)sizeof line) return;
    int fd = open(s->event_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return;
    struct stat st;
    if (fstat(fd, &st) == 0 && st.st_size + n > (1 << 20)) {
        char rotated[4200];
        snprintf(rotated, sizeof rotated, "%s.1", s->event_log);
        rename(s->event_log, rotated);
        close(fd);
        fd = open(s->event_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) return;
    }
    ssize_t w = write(fd, line, (size_t)n);
    (void)w;
    close(fd);
}

// Takes the probe's result (output: the collected one, or `message`), applies
// Docker's rules and schedules the next probe. Returns HEALTH_CHANGED when the
// status changed (the event is written), else HEALTH_RECORDED.
static int record_result(struct health *h, const struct hako_spec *s, int exit_code, const char *message) {
    struct health_result *r;
    if (h->nlog == HEALTH_LOG) {
        free(h->log[0].output);
        memmove(&h->log[0], &h->log[1], (HEALTH_LOG - 1) * sizeof h->log[0]);
        h->nlog--;
    }
    r = &h->log[h->nlog++];
    memcpy(r->start, h->probe_start, sizeof r->start);
    format_time(r->end);
    r->exit_code = exit_code;
    if (message) {
        free(h->out);
        h->out = strdup(message);
    }
    r->output = h->out;
    h->out = NULL;
    h->out_len = 0;

    int old = h->status;
    if (exit_code == 0) {
        h->streak = 0;
        h->status = HEALTH_HEALTHY;
    } else if (!in_start_period(h, s, &h->probe_started)) {
        h->streak++;
        if (h->streak >= s->health_retries) h->status = HEALTH_UNHEALTHY;
    }
    end_probe(h);
    schedule_next(h, s);
    if (h->status != old) { record_event(h, s); return HEALTH_CHANGED; }
    return HEALTH_RECORDED;
}

// Docker's words: "Health check exceeded timeout (30s)".
static const char *timeout_message(const struct hako_spec *s) {
    static char msg[96];
    unsigned long long ms = (unsigned long long)s->health_timeout_ms;
    if (ms % 1000 == 0) snprintf(msg, sizeof msg, "Health check exceeded timeout (%llus)", ms / 1000);
    else snprintf(msg, sizeof msg, "Health check exceeded timeout (%llums)", ms);
    return msg;
}

// The freezer's state file, opened at the container's start and read at each
// probe (an open of a cgroup file costs more than the read).
static int frozen(const struct health *h, const struct hako_spec *s) {
    if (h->freezer_fd < 0) return 0;
    char buf[32];
    ssize_t n = pread(h->freezer_fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return 0;
    buf[n] = 0;
    return s->freezer_v2 ? buf[0] == '1' : strncmp(buf, "THAWED", 6) != 0;
}

// Starts the probe in the container of `target`. The spec is the container's
// own, its argv and stdio swapped for the probe's while hako_exec copies them.
static int start_probe(struct health *h, struct hako_spec *s, pid_t target) {
    clock_gettime(CLOCK_MONOTONIC, &h->probe_started);
    format_time(h->probe_start);
    int p[2];
    if (h->null_fd < 0) h->null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (h->null_fd < 0 || pipe2(p, O_CLOEXEC) < 0) {
        char msg[128];
        snprintf(msg, sizeof msg, "cannot start the health check: %s", strerror(errno));
        return record_result(h, s, -1, msg);
    }
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    const char **argv = s->argv; int argc = s->argc, tty = s->tty, keep_stdin = s->keep_stdin;
    s->argv = s->health_argv; s->argc = s->health_argc; s->tty = 0; s->keep_stdin = 0;
    // What stays the same from probe to probe (the probe's spec among it: the
    // helper keeps its copy) is set up at the first one; a restarted container
    // is a new target, and so is one whose helper was lost (the target closed).
    // Without a helper, the probe takes hako_exec's own path, which reports
    // what is wrong.
    if (h->target.pid != target) {
        if (h->target.pid > 0) hako_exec_target_close(&h->target);
        hako_exec_target_open(s, target, &h->target);
    }
    int fds[3] = { h->null_fd, p[1], p[1] };
    struct hako_proc out;
    struct hako_failure f;
    memset(&f, 0, sizeof f);
    int timeout = (int)(s->health_timeout_ms > 0x7fffffff ? 0x7fffffff : s->health_timeout_ms);
    int rc = hako_exec_prepared(s, &h->target, fds, timeout, &out, &f);
    s->argv = argv; s->argc = argc; s->tty = tty; s->keep_stdin = keep_stdin;
    if (rc < 0) {
        close(p[0]);
        close(p[1]);
        char msg[400];
        if (f.err == ETIMEDOUT)
            snprintf(msg, sizeof msg, "%s", timeout_message(s));
        else if (f.detail[0])
            snprintf(msg, sizeof msg, "cannot start the health check: %s %s: %s", hako_stage_name(f.stage), f.detail, strerror(f.err));
        else
            snprintf(msg, sizeof msg, "cannot start the health check: %s: %s", hako_stage_name(f.stage), strerror(f.err));
        return record_result(h, s, -1, msg);
    }
    if (out.pidfd >= 0) close(out.pidfd);
    h->pid = out.pid;
    h->out_fd = p[0];
    // The monitor keeps a write end: the pipe never reports its end (POLLHUP)
    // when the probe exits, which SIGCHLD reports anyway; its output is read
    // as it comes and, at the exit, up to what is there (EAGAIN).
    h->out_w = p[1];
    long left = (long)s->health_timeout_ms - elapsed_ms(&h->probe_started);
    arm_ms(h->timer, left > 0 ? (uint64_t)left : 0);
    return 0;
}

int health_on_timer(struct health *h, struct hako_spec *s, pid_t target, int running) {
    uint64_t x;
    if (read(h->timer, &x, sizeof x) < 0 || !h->enabled) return 0;
    if (h->pid > 0) {
        // The deadline: kill the probe (its zombie is reaped with the others).
        kill(h->pid, SIGKILL);
        health_read_output(h);
        return record_result(h, s, -1, timeout_message(s));
    }
    if (!running || target <= 0) return 0;
    // A paused container is not probed (a probe would freeze with it).
    if (frozen(h, s)) { schedule_next(h, s); return 0; }
    return start_probe(h, s, target);
}

int health_on_reaped(struct health *h, const struct hako_spec *s, pid_t pid, int status) {
    if (!h->enabled || pid != h->pid || pid <= 0) return 0;
    health_read_output(h);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
    return record_result(h, s, code, NULL);
}

// The health state as JSON is built in h->json, kept from one write to the
// next (a probe's result is written after every probe: no stdio, no memstream,
// no allocation per write).
static int reserve(struct health *h, size_t more) {
    if (h->json_len + more <= h->json_cap) return 0;
    size_t cap = h->json_cap ? h->json_cap : 1024;
    while (cap < h->json_len + more) cap *= 2;
    char *grown = realloc(h->json, cap);
    if (!grown) return -1;
    h->json = grown;
    h->json_cap = cap;
    return 0;
}

static void put(struct health *h, const char *p, size_t n) {
    if (reserve(h, n) < 0) { h->json_failed = 1; return; }
    memcpy(h->json + h->json_len, p, n);
    h->json_len += n;
}

static void put_str(struct health *h, const char *p) { put(h, p, strlen(p)); }

static void put_int(struct health *h, long long v) {
    char digits[24], *end = digits + sizeof digits, *p = end;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do { *--p = (char)('0' + u % 10); u /= 10; } while (u);
    if (v < 0) *--p = '-';
    put(h, p, (size_t)(end - p));
}

// The length of the valid UTF-8 sequence at p (0: not one).
static int utf8_len(const unsigned char *p) {
    int n = p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc2 && p[0] < 0xe0 ? 2 : 0;
    if (p[0] >= 0xf5) n = 0;
    for (int i = 1; i < n; i++) if ((p[i] & 0xc0) != 0x80) return 0;
    if (n == 3 && ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0))) return 0;
    if (n == 4 && ((p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))) return 0;
    return n;
}

// A JSON string of arbitrary bytes: what is not UTF-8 becomes U+FFFD, so
// that a probe's output never makes the state file unreadable.
static void put_json_string(struct health *h, const char *s) {
    size_t n = s ? strlen(s) : 0;
    if (reserve(h, 6 * n + 2) < 0) { h->json_failed = 1; return; }  // at most 6 bytes out per byte in
    char *o = h->json + h->json_len;
    *o++ = '"';
    for (const unsigned char *p = (const unsigned char *)s; p && *p;) {
        unsigned char c = *p;
        if (c < 0x80) {
            if (c == '"' || c == '\\') { *o++ = '\\'; *o++ = (char)c; }
            else if (c < 0x20 || c == 0x7f) { memcpy(o, "\\u00", 4); o[4] = "0123456789abcdef"[c >> 4]; o[5] = "0123456789abcdef"[c & 15]; o += 6; }
            else *o++ = (char)c;
            p++;
            continue;
        }
        int len = utf8_len(p);
        if (len) { memcpy(o, p, (size_t)len); o += len; p += len; }
        else { memcpy(o, "\\ufffd", 6); o += 6; p++; }
    }
    *o++ = '"';
    h->json_len = (size_t)(o - h->json);
}

const char *health_json(struct health *h, size_t *len) {
    h->json_len = 0;
    h->json_failed = 0;
    put_str(h, "{\"status\":\"");
    put_str(h, health_status_name(h));
    put_str(h, "\",\"failingStreak\":");
    put_int(h, h->streak);
    put_str(h, ",\"log\":[");
    for (int i = 0; i < h->nlog; i++) {
        const struct health_result *r = &h->log[i];
        put_str(h, i ? ",{\"start\":\"" : "{\"start\":\"");
        put_str(h, r->start);
        put_str(h, "\",\"end\":\"");
        put_str(h, r->end);
        put_str(h, "\",\"exitCode\":");
        put_int(h, r->exit_code);
        put_str(h, ",\"output\":");
        put_json_string(h, r->output ? r->output : "");
        put(h, "}", 1);
    }
    put(h, "]}", 2);
    if (h->json_failed) return NULL;
    *len = h->json_len;
    return h->json;
}

// The buffer of a long log (outputs of kilobytes) is not kept past its write.
static void json_done(struct health *h) {
    if (h->json_cap <= 16384) return;
    free(h->json);
    h->json = NULL;
    h->json_cap = h->json_len = 0;
}

void health_write_json(struct health *h, FILE *f) {
    size_t n;
    const char *body = health_json(h, &n);
    if (body) fwrite(body, 1, n, f);
    json_done(h);
}

void health_store(struct health *h) {
    if (h->file_fd < 0) return;
    size_t n;
    const char *body = health_json(h, &n);
    if (!body) return;
    // One write at offset 0: a reader sees this content, the one before, or a
    // mix whose checksum does not match (and reads again). What lies past the
    // body (a longer one before) is not part of it; it is cut off all the same.
    char head[HAKO_HEALTH_HEADER_LEN + 1];
    hako_health_header(head, body, n);
    struct iovec iov[2] = { { head, HAKO_HEALTH_HEADER_LEN }, { (void *)body, n } };
    size_t total = HAKO_HEALTH_HEADER_LEN + n;
    ssize_t w = pwritev(h->file_fd, iov, 2, 0);
    if (w == (ssize_t)total && total < h->file_len && ftruncate(h->file_fd, (off_t)total) == 0) h->file_len = total;
    else if (w > 0 && (size_t)w > h->file_len) h->file_len = (size_t)w;
    json_done(h);
}
