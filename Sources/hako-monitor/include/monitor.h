// hako-monitor: one small C process per container (see docs/architecture.md).
#ifndef HAKO_MONITOR_H
#define HAKO_MONITOR_H

#include <stddef.h>
#include <stdint.h>
#include "hako_shim.h"

// The fds and frame types: HAKO_MONITOR_FD_* and HAKO_MON_* in hako_shim.h.

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

// RFC 3339 UTC with nanoseconds, e.g. 2026-11-29T02:19:34.123456789Z
void format_time(char out[40]);

#endif
