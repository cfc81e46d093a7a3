// hako-monitor: one small C process per container (see docs/architecture.md).
#ifndef HAKO_MONITOR_H
#define HAKO_MONITOR_H

#include <stddef.h>
#include <stdint.h>
#include "hako_shim.h"

// Frame types on the attach socket: [u8 type][u32 big-endian length][payload].
enum {
    MON_STDIN = 'i',      // client → monitor: bytes for the container's stdin
    MON_STDIN_CLOSE = 'c',// client → monitor: close the container's stdin
    MON_RESIZE = 'r',     // client → monitor: u16 rows, u16 cols (big-endian)
    MON_SIGNAL = 'k',     // client → monitor: u32 signal; the exit that follows is final
    MON_STOP = 's',       // client → monitor: u32 signal, u32 timeout seconds
    MON_ATTACH = 'a',     // client → monitor: stream output to me
    MON_STDOUT = 'o',     // monitor → client
    MON_STDERR = 'e',     // monitor → client
    MON_EXIT = 'x',       // monitor → client: i32 exit code, u8 final (1: the monitor is ending)
    MON_REPLY = 'K',      // monitor → client: i32 errno of the last request (0 = done)
};

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
