// The container log: one line per output line,
//   <RFC3339Nano> <stdout|stderr> <F|P> <text>
// F ends a line, P is a piece of a line that continues (or ended without a
// newline). Size-capped: container.log rotates to container.log.1 … .N-1.
#include "monitor.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void format_time(char out[40]) {
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(out, 40, "%04d-%02d-%02dT%02d:%02d:%02d.%09uZ", (tm.tm_year + 1900) % 10000, (tm.tm_mon + 1) % 100,
             tm.tm_mday % 100, tm.tm_hour % 100, tm.tm_min % 100, tm.tm_sec % 100, (unsigned)(ts.tv_nsec % 1000000000L));
}

int log_open(struct logger *l, const char *path, uint64_t max_size, uint32_t max_files) {
    memset(l, 0, sizeof *l);
    l->path = path;
    l->max_size = max_size;
    l->max_files = max_files ? max_files : 1;
    l->fd = -1;
    if (!path) return 0;
    l->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (l->fd < 0) return -1;
    struct stat st;
    if (fstat(l->fd, &st) == 0) l->size = (uint64_t)st.st_size;
    return 0;
}

static void rotate(struct logger *l) {
    char from[4096], to[4096];
    close(l->fd);
    if (l->max_files <= 1) {
        unlink(l->path);
    } else {
        for (uint32_t i = l->max_files - 1; i >= 1; i--) {
            if (i == 1) snprintf(from, sizeof from, "%s", l->path);
            else snprintf(from, sizeof from, "%s.%u", l->path, i - 1);
            snprintf(to, sizeof to, "%s.%u", l->path, i);
            rename(from, to);
        }
    }
    l->fd = open(l->path, O_WRONLY | O_CREAT | O_APPEND | O_TRUNC | O_CLOEXEC, 0640);
    l->size = 0;
}

static void emit(struct logger *l, int stream, char tag, const char *a, size_t an, const char *b, size_t bn) {
    if (l->fd < 0) return;
    char ts[40];
    format_time(ts);
    const char *name = stream ? "stderr" : "stdout";
    char head[64];
    int hn = snprintf(head, sizeof head, "%s %s %c ", ts, name, tag);
    uint64_t total = (uint64_t)hn + an + bn + 1;
    if (l->max_size && l->size > 0 && l->size + total > l->max_size) rotate(l);
    if (l->fd < 0) return;
    // One write per line keeps lines whole in the file even if we are killed.
    char buf[65536];
    if (total <= sizeof buf) {
        memcpy(buf, head, (size_t)hn);
        memcpy(buf + hn, a, an);
        memcpy(buf + hn + an, b, bn);
        buf[total - 1] = '\n';
        ssize_t w;
        do { w = write(l->fd, buf, (size_t)total); } while (w < 0 && errno == EINTR);
    } else {
        ssize_t w;
        do { w = write(l->fd, head, (size_t)hn); } while (w < 0 && errno == EINTR);
        do { w = write(l->fd, a, an); } while (w < 0 && errno == EINTR);
        do { w = write(l->fd, b, bn); } while (w < 0 && errno == EINTR);
        do { w = write(l->fd, "\n", 1); } while (w < 0 && errno == EINTR);
    }
    l->size += total;
}

void log_write(struct logger *l, int stream, const char *data, size_t n) {
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        if (data[i] != '\n') continue;
        emit(l, stream, 'F', l->partial[stream], l->partial_len[stream], data + start, i - start);
        l->partial_len[stream] = 0;
        start = i + 1;
    }
    size_t rest = n - start;
    while (rest) {
        size_t room = sizeof l->partial[stream] - l->partial_len[stream];
        size_t take = rest < room ? rest : room;
        memcpy(l->partial[stream] + l->partial_len[stream], data + start, take);
        l->partial_len[stream] += take;
        start += take;
        rest -= take;
        if (l->partial_len[stream] == sizeof l->partial[stream]) {
            emit(l, stream, 'P', l->partial[stream], l->partial_len[stream], "", 0);
            l->partial_len[stream] = 0;
        }
    }
}

void log_flush_partial(struct logger *l) {
    for (int s = 0; s < 2; s++) {
        if (!l->partial_len[s]) continue;
        emit(l, s, 'P', l->partial[s], l->partial_len[s], "", 0);
        l->partial_len[s] = 0;
    }
}

void log_close(struct logger *l) {
    log_flush_partial(l);
    if (l->fd >= 0) close(l->fd);
    l->fd = -1;
}
