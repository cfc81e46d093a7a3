// hako-monitor — holds one container: starts its init (hako_spawn), reaps it,
// records exit status and times in the state file, writes its output to the
// log, serves attach clients on a unix socket, forwards signals, stops it with
// escalation, applies the restart policy and runs the health check (health.c).
// It outlives the command that
// started it. Written in C to stay small: one runs per container.
//
// Started as: hako-monitor, with fd 3 = launch spec (memfd), fd 4 = status pipe
// (one line: "OK <monitor pid> <container pid>" or "ERR <stage> <errno> <detail>"),
// and optionally fd 5 = a connected attach client (the foreground CLI).
#include "monitor.h"

#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS 32
#define CLIENT_OUT_CAP (256 * 1024)
#define CLIENT_IN_MAX (1024 * 1024)

struct client {
    int fd;
    int streaming;
    uint8_t *in; size_t in_len, in_cap;
    uint8_t *out; size_t out_len;
};

enum state { ST_RUNNING, ST_RESTARTING };

struct monitor {
    struct hako_spec spec;
    int status_fd, lock_fd, listen_fd, sig_fd, restart_timer, kill_timer, run_dir_fd;
    struct logger log;
    struct hako_proc proc;
    enum state state;
    int manual_stop;
    // SIGTERM to the monitor (the host shutting down): the container stops for
    // good now, but was not stopped by a person, so `unless-stopped` brings it
    // back at the next boot (hako start --all-restartable).
    int host_stop;
    // `hako restart` of a --rm container (as Docker's): this stop keeps the
    // container, which is started again at once.
    int keep_container;
    uint32_t restart_count, failures;
    struct timespec started_mono;
    char started_at[40], finished_at[40];
    int exit_code, oom_killed;
    uint64_t oom_before;
    char error[300];
    struct client clients[MAX_CLIENTS];
    struct health health;
    uint8_t stdin_buf[65536]; size_t stdin_len; int stdin_close_pending;
};

static struct monitor M;

// ---------------------------------------------------------------------------
// small helpers

static void set_nonblock(int fd) {
    if (fd >= 0) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

// Counter of OOM kills in the container's memory cgroup ("oom_kill N").
static uint64_t oom_count(void) {
    if (!M.spec.oom_events) return 0;
    char buf[4096];
    if (read_small_file(M.spec.oom_events, buf, sizeof buf) < 0) return 0;
    char *p = strstr(buf, "oom_kill ");
    while (p && p != buf && p[-1] != '\n') p = strstr(p + 1, "oom_kill ");
    return p ? strtoull(p + 9, NULL, 10) : 0;
}

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

// The state file: written whole to a temporary name, then renamed over. The
// name carries the writer's pid (as hako's own atomic writes do) so that a
// leftover of a killed monitor is recognised and removed by the next owner.
static void write_state(const char *status, int durable) {
    if (!M.spec.state_path) return;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", M.spec.state_path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return;
    FILE *f = fdopen(fd, "w");
    if (!f) { close(fd); return; }
    fprintf(f, "{\"status\":\"%s\",\"pid\":%d,\"monitorPid\":%d,\"exitCode\":%d,\"oomKilled\":%s,"
               "\"restartCount\":%u,\"manualStop\":%s,\"startedAt\":\"%s\",\"finishedAt\":\"%s\",\"error\":",
            status, M.state == ST_RUNNING && strcmp(status, "running") == 0 ? M.proc.pid : 0, getpid(),
            M.exit_code, M.oom_killed ? "true" : "false", M.restart_count, M.manual_stop && !M.host_stop ? "true" : "false",
            M.started_at, M.finished_at);
    json_str(f, M.error);
    if (M.health.enabled) {
        fputs(",\"health\":", f);
        health_write_json(&M.health, f);
    }
    fputs("}\n", f);
    fflush(f);
    if (durable) fdatasync(fd);
    fclose(f);
    rename(tmp, M.spec.state_path);
    // The live health file is never older than the state file's health.
    if (M.health.enabled) health_store(&M.health);
}

// ---------------------------------------------------------------------------
// clients

static void client_drop(struct client *c) {
    if (c->fd < 0) return;
    close(c->fd);
    free(c->in); free(c->out);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

static void client_add(int fd, int streaming) {
    for (int i = 0; i < MAX_CLIENTS; i++) {
        struct client *c = &M.clients[i];
        if (c->fd >= 0) continue;
        memset(c, 0, sizeof *c);
        c->fd = fd;
        c->streaming = streaming;
        c->out = malloc(CLIENT_OUT_CAP);
        if (!c->out) { close(fd); c->fd = -1; return; }
        set_nonblock(fd);
        return;
    }
    close(fd);  // too many clients
}

static void client_flush(struct client *c) {
    while (c->fd >= 0 && c->out_len) {
        ssize_t w = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) return;
            client_drop(c);
            return;
        }
        memmove(c->out, c->out + w, c->out_len - (size_t)w);
        c->out_len -= (size_t)w;
    }
}

static void client_send(struct client *c, uint8_t type, const void *data, size_t n) {
    if (c->fd < 0) return;
    if (c->out_len + 5 + n > CLIENT_OUT_CAP) {
        client_flush(c);
        if (c->out_len + 5 + n > CLIENT_OUT_CAP) { client_drop(c); return; }  // too slow a reader
    }
    uint8_t h[5] = { type, (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n };
    memcpy(c->out + c->out_len, h, 5);
    memcpy(c->out + c->out_len + 5, data, n);
    c->out_len += 5 + n;
    client_flush(c);
}

static int clients_backlogged(void) {
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (M.clients[i].fd >= 0 && M.clients[i].out_len > CLIENT_OUT_CAP / 2) return 1;
    return 0;
}

static void broadcast_output(int stream, const char *data, size_t n) {
    for (int i = 0; i < MAX_CLIENTS; i++) {
        struct client *c = &M.clients[i];
        if (c->fd >= 0 && c->streaming) {
            // Frames stay below 64 KiB so a reader never has to hold much.
            for (size_t off = 0; off < n;) {
                size_t k = n - off > 32768 ? 32768 : n - off;
                client_send(c, stream ? HAKO_MON_STDERR : HAKO_MON_STDOUT, data + off, k);
                off += k;
            }
        }
    }
}

static void broadcast_exit(int code, int final) {
    uint8_t p[5] = { (uint8_t)((uint32_t)code >> 24), (uint8_t)((uint32_t)code >> 16),
                     (uint8_t)((uint32_t)code >> 8), (uint8_t)code, (uint8_t)final };
    for (int i = 0; i < MAX_CLIENTS; i++) {
        struct client *c = &M.clients[i];
        if (c->fd < 0) continue;
        client_send(c, HAKO_MON_EXIT, p, sizeof p);
        // Give a reader a moment to take the last frames, then end the session.
        for (int tries = 0; c->fd >= 0 && c->out_len && tries < 100; tries++) {
            struct pollfd pf = { .fd = c->fd, .events = POLLOUT };
            poll(&pf, 1, 10);
            client_flush(c);
        }
        client_drop(c);
    }
}

static void reply(struct client *c, int err) {
    uint8_t p[4] = { (uint8_t)((uint32_t)err >> 24), (uint8_t)((uint32_t)err >> 16), (uint8_t)((uint32_t)err >> 8), (uint8_t)err };
    client_send(c, HAKO_MON_REPLY, p, 4);
}

// ---------------------------------------------------------------------------
// the container

static int signal_container(int sig) {
    if (M.state != ST_RUNNING || M.proc.pid <= 0) return ESRCH;
    int r = M.proc.pidfd >= 0 ? hako_pidfd_send_signal(M.proc.pidfd, sig) : kill(M.proc.pid, sig);
    if (r < 0) return errno;
    if (sig == SIGKILL || sig == (int)M.spec.stop_signal) thaw_container(&M.spec);
    return 0;
}

static void arm(int tfd, long ms) {
    struct itimerspec it;
    memset(&it, 0, sizeof it);
    it.it_value.tv_sec = ms / 1000;
    it.it_value.tv_nsec = (ms % 1000) * 1000000L;
    if (ms == 0) it.it_value.tv_nsec = 1;
    timerfd_settime(tfd, 0, &it, NULL);
}

static void disarm(int tfd) {
    struct itimerspec it;
    memset(&it, 0, sizeof it);
    timerfd_settime(tfd, 0, &it, NULL);
}

static int exit_code_for_failure(const struct hako_failure *f) {
    if (f->stage == HAKO_STAGE_EXEC_NOT_FOUND) return 127;
    if (f->stage == HAKO_STAGE_EXEC || f->stage == HAKO_STAGE_CHDIR) return 126;
    return 125;
}

static void describe_failure(const struct hako_failure *f, char *out, size_t cap) {
    if (f->detail[0])
        snprintf(out, cap, "%s %s: %s", hako_stage_name(f->stage), f->detail, strerror(f->err));
    else
        snprintf(out, cap, "%s: %s", hako_stage_name(f->stage), strerror(f->err));
}

static int start_container(struct hako_failure *f) {
    M.oom_before = oom_count();
    int r = hako_spawn(&M.spec, NULL, &M.proc, f);
    // The engine's set-up is done once, for the first start: a restart's init finds it.
    if (M.spec.ready_fd >= 0) { close(M.spec.ready_fd); M.spec.ready_fd = -1; }
    if (r < 0) return -1;
    set_nonblock(M.proc.stdout_fd);
    set_nonblock(M.proc.stderr_fd);
    set_nonblock(M.proc.stdin_fd);
    M.state = ST_RUNNING;
    M.oom_killed = 0;
    M.error[0] = 0;
    M.finished_at[0] = 0;
    M.stdin_len = 0;
    M.stdin_close_pending = 0;
    format_time(M.started_at);
    clock_gettime(CLOCK_MONOTONIC, &M.started_mono);
    health_container_started(&M.health, &M.spec);
    // The state on disk may lag a crash of this process; the lock tells the truth.
    write_state("running", 0);
    return 0;
}

static void pump_output(int *fd, int stream) {
    char buf[32768];
    while (*fd >= 0) {
        ssize_t n = read(*fd, buf, sizeof buf);
        if (n > 0) {
            log_write(&M.log, stream, buf, (size_t)n);
            broadcast_output(stream, buf, (size_t)n);
            if (clients_backlogged()) return;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return;
        // EOF, or EIO on a terminal whose last holder has gone.
        close(*fd);
        *fd = -1;
    }
}

static void close_proc_fds(void) {
    if (M.proc.stdin_fd >= 0) close(M.proc.stdin_fd);
    if (M.proc.stdout_fd >= 0) close(M.proc.stdout_fd);
    if (M.proc.stderr_fd >= 0) close(M.proc.stderr_fd);
    if (M.proc.pidfd >= 0) close(M.proc.pidfd);
    M.proc.stdin_fd = M.proc.stdout_fd = M.proc.stderr_fd = M.proc.pidfd = -1;
}

// The container's mount namespace, held since its start (hako_spawn), let go
// once the clients know of the exit: only now does the kernel take its mounts
// down and wait for the RCU grace period that costs.
static void release_mount_ns(void) {
    if (M.proc.mntns_fd >= 0) close(M.proc.mntns_fd);
    M.proc.mntns_fd = -1;
}

static void release_run_dir(void) {
    if (M.listen_fd >= 0) { close(M.listen_fd); M.listen_fd = -1; }
    if (M.run_dir_fd >= 0) {
        unlinkat(M.run_dir_fd, "attach", 0);
        unlinkat(M.run_dir_fd, "monitor.lock", 0);
    }
    if (M.spec.run_dir) rmdir(M.spec.run_dir);
}

__attribute__((noreturn))
static void final_exit(void) {
    disarm(M.kill_timer);
    disarm(M.restart_timer);
    log_close(&M.log);
    // Nothing of the container runs any more when its end is reported.
    kill_leftovers(&M.spec);
    // --rm: the container disappears at once (hide_container); its bytes are
    // deleted after the clients have been told. Its cgroup directories (ten
    // v1 hierarchies here: ~0.4 ms) and the network's release go after the
    // clients are told too, but before the monitor ends: `stop`, `rm` and a
    // next `start` wait for that. A restart's stop keeps the container.
    struct hidden hidden = { NULL, 0 };
    if ((M.spec.nremove_dirs || M.spec.nremove_files) && !M.keep_container)
        hide_container(&M.spec, &hidden);
    else
        write_state("exited", 1);
    broadcast_exit(M.exit_code, 1);
    remove_cgroups(&M.spec);
    release_mount_ns();
    run_cleanup_hook(&M.spec);
    release_run_dir();
    delete_hidden(&hidden);
    exit(0);
}

static int should_restart(int code) {
    if (M.manual_stop) return 0;
    switch (M.spec.restart_policy) {
    case HAKO_RESTART_ALWAYS:
    case HAKO_RESTART_UNLESS_STOPPED: return 1;
    case HAKO_RESTART_ON_FAILURE:
        return code != 0 && (M.spec.restart_max == 0 || M.restart_count < M.spec.restart_max);
    default: return 0;
    }
}

// Backoff: 100 ms, doubling per consecutive quick failure, capped at 30 s; a run
// of 10 s or more resets it.
static void schedule_restart(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long ran_ms = (now.tv_sec - M.started_mono.tv_sec) * 1000 + (now.tv_nsec - M.started_mono.tv_nsec) / 1000000;
    if (ran_ms >= 10000) M.failures = 0;
    long delay = 100;
    for (uint32_t i = 0; i < M.failures && delay < 30000; i++) delay *= 2;
    if (delay > 30000) delay = 30000;
    M.failures++;
    M.state = ST_RESTARTING;
    write_state("restarting", 0);
    arm(M.restart_timer, delay);
}

static void on_exit_status(int status) {
    health_container_stopped(&M.health);
    pump_output(&M.proc.stdout_fd, 0);
    pump_output(&M.proc.stderr_fd, 1);
    log_flush_partial(&M.log);
    close_proc_fds();
    disarm(M.kill_timer);
    M.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 255;
    M.oom_killed = oom_count() > M.oom_before;
    format_time(M.finished_at);
    M.proc.pid = 0;
    if (should_restart(M.exit_code)) {
        schedule_restart();
        broadcast_exit(M.exit_code, 0);
        release_mount_ns();
        return;
    }
    final_exit();
}

static void on_restart_timer(void) {
    uint64_t x;
    if (read(M.restart_timer, &x, sizeof x) < 0) return;
    if (M.state != ST_RESTARTING) return;
    M.restart_count++;
    struct hako_failure f;
    if (start_container(&f) == 0) return;
    // Could not start again: record why and let the policy decide, with backoff.
    describe_failure(&f, M.error, sizeof M.error);
    M.exit_code = exit_code_for_failure(&f);
    format_time(M.finished_at);
    clock_gettime(CLOCK_MONOTONIC, &M.started_mono);
    if (should_restart(M.exit_code)) schedule_restart();
    else final_exit();
}

// A probe's result goes to the live health file, written in place; the state
// file (a new file renamed over: an inode created, the old one freed, and on
// ext4 the data written out at the rename) only when the status changes.
static void on_health(int what) {
    if (M.state != ST_RUNNING) return;
    if (what == HEALTH_CHANGED) write_state("running", 0);
    else if (what == HEALTH_RECORDED) health_store(&M.health);
}

static void on_kill_timer(void) {
    uint64_t x;
    if (read(M.kill_timer, &x, sizeof x) < 0) return;
    signal_container(SIGKILL);
}

static void request_stop(int sig, uint32_t timeout) {
    M.manual_stop = 1;
    if (M.state == ST_RESTARTING) { final_exit(); }
    if (signal_container(sig) == 0 && sig != SIGKILL) arm(M.kill_timer, (long)timeout * 1000);
}

static void handle_frame(struct client *c, uint8_t type, const uint8_t *p, uint32_t n) {
    switch (type) {
    case HAKO_MON_ATTACH: c->streaming = 1; break;
    case HAKO_MON_STDIN:
        if (M.proc.stdin_fd < 0 && !M.spec.tty) break;
        if (M.stdin_len + n <= sizeof M.stdin_buf) { memcpy(M.stdin_buf + M.stdin_len, p, n); M.stdin_len += n; }
        break;
    case HAKO_MON_STDIN_CLOSE:
        M.stdin_close_pending = 1;
        break;
    case HAKO_MON_RESIZE:
        if (n == 4 && M.spec.tty && M.proc.stdout_fd >= 0)
            hako_tty_set_size(M.proc.stdout_fd, (uint16_t)(p[0] << 8 | p[1]), (uint16_t)(p[2] << 8 | p[3]));
        break;
    case HAKO_MON_SIGNAL: {
        if (n != 4) { reply(c, EINVAL); break; }
        int sig = (int)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
        if (sig == SIGKILL || sig == SIGTERM || sig == SIGINT || sig == (int)M.spec.stop_signal) M.manual_stop = 1;
        if (M.state == ST_RESTARTING && M.manual_stop) { reply(c, 0); final_exit(); }
        reply(c, signal_container(sig));
        break;
    }
    case HAKO_MON_POLICY: {
        // `hako update --restart`: the policy applies from the next exit on.
        if (n != 8) { reply(c, EINVAL); break; }
        uint32_t policy = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        if (policy > HAKO_RESTART_UNLESS_STOPPED) { reply(c, EINVAL); break; }
        M.spec.restart_policy = policy;
        M.spec.restart_max = (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7];
        reply(c, 0);
        break;
    }
    case HAKO_MON_STOP: {
        if (n != 8 && n != 9) { reply(c, EINVAL); break; }
        int sig = (int)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
        uint32_t t = (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7];
        if (n == 9 && p[8]) M.keep_container = 1;
        reply(c, 0);
        request_stop(sig ? sig : (int)M.spec.stop_signal, t);
        break;
    }
    default: break;
    }
}

static void client_read(struct client *c) {
    if (c->in_cap - c->in_len < 65536) {
        size_t cap = c->in_cap ? c->in_cap * 2 : 65536;
        if (cap > CLIENT_IN_MAX + 65536) { client_drop(c); return; }
        uint8_t *in = realloc(c->in, cap);
        if (!in) { client_drop(c); return; }
        c->in = in; c->in_cap = cap;
    }
    ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) { client_drop(c); return; }
    if (n < 0) return;
    c->in_len += (size_t)n;
    size_t off = 0;
    while (c->fd >= 0 && c->in_len - off >= 5) {
        const uint8_t *h = c->in + off;
        uint32_t len = (uint32_t)h[1] << 24 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 8 | h[4];
        if (len > CLIENT_IN_MAX) { client_drop(c); return; }
        if (c->in_len - off < 5 + (size_t)len) break;
        // Do not take more stdin than fits: leave it in the buffer (backpressure).
        if (h[0] == HAKO_MON_STDIN && M.stdin_len + len > sizeof M.stdin_buf) break;
        handle_frame(c, h[0], h + 5, len);
        off += 5 + len;
    }
    if (c->fd >= 0) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
}

static void pump_stdin(void) {
    int fd = M.spec.tty ? M.proc.stdout_fd : M.proc.stdin_fd;
    while (fd >= 0 && M.stdin_len) {
        ssize_t w = write(fd, M.stdin_buf, M.stdin_len);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) return;
            M.stdin_len = 0;
            break;
        }
        memmove(M.stdin_buf, M.stdin_buf + w, M.stdin_len - (size_t)w);
        M.stdin_len -= (size_t)w;
    }
    if (!M.stdin_len && M.stdin_close_pending && !M.spec.tty && M.proc.stdin_fd >= 0) {
        close(M.proc.stdin_fd);
        M.proc.stdin_fd = -1;
        M.stdin_close_pending = 0;
    }
}

static int make_listener(void) {
    M.run_dir_fd = open(M.spec.run_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (M.run_dir_fd < 0) return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    // Through /proc/self/fd so that long runtime dirs do not hit the 108-byte limit.
    snprintf(a.sun_path, sizeof a.sun_path, "/proc/self/fd/%d/attach", M.run_dir_fd);
    unlinkat(M.run_dir_fd, "attach", 0);
    mode_t old = umask(077);
    int r = bind(fd, (struct sockaddr *)&a, sizeof a);
    umask(old);
    if (r < 0 || listen(fd, 16) < 0) { close(fd); return -1; }
    return fd;
}

static void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void report(const char *fmt, ...) {
    if (M.status_fd < 0) return;
    char buf[600];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0) write_all(M.status_fd, buf, (size_t)(n < (int)sizeof buf ? n : (int)sizeof buf - 1));
    close(M.status_fd);
    M.status_fd = -1;
}

static void *read_spec(int fd, size_t *len) {
    struct stat st;
    if (fstat(fd, &st) < 0) return NULL;
    size_t cap = st.st_size > 0 ? (size_t)st.st_size : 65536, n = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    lseek(fd, 0, SEEK_SET);
    for (;;) {
        if (n == cap) { char *b = realloc(buf, cap * 2); if (!b) { free(buf); return NULL; } buf = b; cap *= 2; }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0) { if (errno == EINTR) continue; free(buf); return NULL; }
        if (r == 0) break;
        n += (size_t)r;
    }
    *len = n;
    return buf;
}

int main(int argc, char **argv) {
    (void)argc; (void)argv;
    // M lives in .bss, already zero; touching it all would cost resident pages.
    M.status_fd = HAKO_MONITOR_FD_STATUS;
    // An attach stream comes as fd 5. Asked before this process opens or
    // closes anything: later, 5 may be one of its own (the run dir's fd).
    int attach_fd = fcntl(HAKO_MONITOR_FD_ATTACH, F_GETFD) >= 0 ? HAKO_MONITOR_FD_ATTACH : -1;
    int ready_fd = fcntl(HAKO_MONITOR_FD_READY, F_GETFD) >= 0 ? HAKO_MONITOR_FD_READY : -1;
    if (ready_fd >= 0) fcntl(ready_fd, F_SETFD, FD_CLOEXEC);  // the init inherits it; no exec does
    M.listen_fd = M.sig_fd = M.run_dir_fd = -1;
    for (int i = 0; i < MAX_CLIENTS; i++) M.clients[i].fd = -1;
    M.proc.stdin_fd = M.proc.stdout_fd = M.proc.stderr_fd = M.proc.pidfd = M.proc.mntns_fd = -1;
    if (fcntl(HAKO_MONITOR_FD_STATUS, F_GETFD) < 0) M.status_fd = -1;
    else fcntl(HAKO_MONITOR_FD_STATUS, F_SETFD, FD_CLOEXEC);

    size_t len = 0;
    void *blob = read_spec(HAKO_MONITOR_FD_SPEC, &len);
    if (!blob) { report("ERR 0 %d cannot read launch spec\n", errno); return 1; }
    close(3);
    char err[256];
    if (hako_spec_parse(blob, len, &M.spec, err, sizeof err) < 0) { report("ERR 0 22 %s\n", err); return 1; }
    if (!M.spec.run_dir) { report("ERR 0 22 launch spec: no run dir\n"); return 1; }
    M.spec.ready_fd = ready_fd;

    // Detach: the first child carries on; the spawner reaps the parent at once.
    pid_t p = fork();
    if (p < 0) { report("ERR 0 %d fork\n", errno); return 1; }
    if (p > 0) _exit(0);
    setsid();
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);  // /proc/<pid>/exe stays closed to containers
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGINT, SIG_IGN);

    char path[4200];
    snprintf(path, sizeof path, "%s/monitor.lock", M.spec.run_dir);
    M.lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (M.lock_fd < 0 || flock(M.lock_fd, LOCK_EX | LOCK_NB) < 0) {
        report("ERR 0 %d container is already held by a monitor\n", errno);
        return 1;
    }
    char pidbuf[24];
    int pn = snprintf(pidbuf, sizeof pidbuf, "%d\n", getpid());
    if (ftruncate(M.lock_fd, 0) == 0) write_all(M.lock_fd, pidbuf, (size_t)pn);

    M.listen_fd = make_listener();
    if (M.listen_fd < 0) {
        int e = errno;
        release_run_dir();
        report("ERR 0 %d attach socket\n", e);
        return 1;
    }
    if (attach_fd >= 0) { fcntl(attach_fd, F_SETFD, FD_CLOEXEC); client_add(attach_fd, 1); }
    if (log_open(&M.log, M.spec.log_path, M.spec.log_max_size, M.spec.log_max_files) < 0) {
        int e = errno;
        release_run_dir();
        report("ERR 0 %d open log %s\n", e, M.spec.log_path);
        return 1;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    M.sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    M.restart_timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    M.kill_timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    M.restart_count = M.spec.restart_count;
    if (health_init(&M.health, &M.spec) < 0) {
        int e = errno;
        release_run_dir();
        report("ERR 0 %d health check timer\n", e);
        return 1;
    }

    struct hako_failure f;
    if (start_container(&f) < 0) {
        // A failed start leaves nothing behind by the time it is reported.
        kill_leftovers(&M.spec);
        remove_cgroups(&M.spec);
        release_run_dir();
        describe_failure(&f, err, sizeof err);
        report("ERR %d %d %s\n", f.stage, f.err, f.detail);
        return 1;
    }
    report("OK %d %d\n", getpid(), M.proc.pid);

    for (;;) {
        struct pollfd pf[10 + MAX_CLIENTS];
        int idx_client[MAX_CLIENTS];
        int n = 0;
        pf[n++] = (struct pollfd){ .fd = M.sig_fd, .events = POLLIN };
        pf[n++] = (struct pollfd){ .fd = M.listen_fd, .events = POLLIN };
        pf[n++] = (struct pollfd){ .fd = M.restart_timer, .events = POLLIN };
        pf[n++] = (struct pollfd){ .fd = M.kill_timer, .events = POLLIN };
        int backlog = clients_backlogged();
        pf[n++] = (struct pollfd){ .fd = backlog ? -1 : M.proc.stdout_fd, .events = POLLIN };
        pf[n++] = (struct pollfd){ .fd = backlog ? -1 : M.proc.stderr_fd, .events = POLLIN };
        int in_fd = M.spec.tty ? M.proc.stdout_fd : M.proc.stdin_fd;
        pf[n++] = (struct pollfd){ .fd = M.stdin_len ? in_fd : -1, .events = POLLOUT };
        pf[n++] = (struct pollfd){ .fd = M.health.enabled ? M.health.timer : -1, .events = POLLIN };
        pf[n++] = (struct pollfd){ .fd = M.health.out_fd, .events = POLLIN };
        int first_client = n;
        for (int i = 0; i < MAX_CLIENTS; i++) {
            struct client *c = &M.clients[i];
            idx_client[i] = -1;
            if (c->fd < 0) continue;
            idx_client[i] = n;
            pf[n++] = (struct pollfd){ .fd = c->fd, .events = POLLIN | (c->out_len ? POLLOUT : 0) };
        }
        (void)first_client;
        int r = poll(pf, (nfds_t)n, -1);
        if (r < 0) { if (errno == EINTR) continue; break; }

        if (pf[0].revents) {
            // One read takes every pending signal: SIGCHLD and SIGTERM are
            // standard signals, each pending at most once.
            struct signalfd_siginfo si[4];
            ssize_t got = read(M.sig_fd, si, sizeof si);
            for (ssize_t i = 0; got > 0 && i < got / (ssize_t)sizeof si[0]; i++) {
                if (si[i].ssi_signo == SIGTERM) { M.host_stop = 1; request_stop((int)M.spec.stop_signal, 10); }
            }
            int st;
            pid_t w;
            while ((w = waitpid(-1, &st, WNOHANG)) > 0) {
                if (w == M.proc.pid && M.state == ST_RUNNING) on_exit_status(st);
                else on_health(health_on_reaped(&M.health, &M.spec, w, st));
            }
        }
        if (pf[1].revents & POLLIN) {
            int c;
            while ((c = accept4(M.listen_fd, NULL, NULL, SOCK_CLOEXEC)) >= 0) client_add(c, 0);
        }
        if (pf[2].revents & POLLIN) on_restart_timer();
        if (pf[3].revents & POLLIN) on_kill_timer();
        if (pf[4].revents) pump_output(&M.proc.stdout_fd, 0);
        if (pf[5].revents) pump_output(&M.proc.stderr_fd, 1);
        if (pf[6].revents) pump_stdin();
        if (pf[7].revents & POLLIN) on_health(health_on_timer(&M.health, &M.spec, M.proc.pid, M.state == ST_RUNNING));
        if (pf[8].revents) health_read_output(&M.health);
        for (int i = 0; i < MAX_CLIENTS; i++) {
            struct client *c = &M.clients[i];
            if (idx_client[i] < 0 || c->fd < 0) continue;
            short ev = pf[idx_client[i]].revents;
            if (ev & POLLOUT) client_flush(c);
            if (c->fd >= 0 && (ev & (POLLIN | POLLHUP | POLLERR))) client_read(c);
        }
        if (M.stdin_len || M.stdin_close_pending) pump_stdin();
    }
    return 0;
}
