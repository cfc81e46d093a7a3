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

static void put_digits(char *out, unsigned v, int n) {
    for (int i = n - 1; i >= 0; i--, v /= 10) out[i] = (char)('0' + v % 10);
}

// Written digit by digit (the calendar from the day count, Gregorian): it runs
// for every log line and twice per health probe, and gmtime_r and snprintf
// cost more than the rest of a probe's bookkeeping (the time zone lock, stdio).
void format_time(char out[40]) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long secs = ts.tv_sec < 0 ? 0 : (long long)ts.tv_sec;
    long long days = secs / 86400, rem = secs % 86400;
    // Days since 1970-01-01 to year, month, day (the era-based algorithm: eras of 400 years from 0000-03-01).
    long long z = days + 719468, era = z / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
    unsigned day = doy - (153 * mp + 2) / 5 + 1, month = mp < 10 ? mp + 3 : mp - 9;
    long long year = (long long)yoe + era * 400 + (month <= 2);
    put_digits(out, (unsigned)(year % 10000), 4);
    out[4] = '-'; put_digits(out + 5, month, 2);
    out[7] = '-'; put_digits(out + 8, day, 2);
    out[10] = 'T'; put_digits(out + 11, (unsigned)(rem / 3600), 2);
    out[13] = ':'; put_digits(out + 14, (unsigned)(rem / 60 % 60), 2);
    out[16] = ':'; put_digits(out + 17, (unsigned)(rem % 60), 2);
    out[19] = '.'; put_digits(out + 20, (unsigned)(ts.tv_nsec % 1000000000L), 9);
    out[29] = 'Z'; out[30] = 0;
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
