// The health check's live state file (HAKO_HEALTH_* in hako_shim.h): the
// monitor writes it, the engine reads it; the format is here only.
#include "hako_shim.h"

#include <stdint.h>
#include <string.h>

#define MAGIC "hako-health-v1 "

static uint64_t fnv1a64(const unsigned char *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) { h ^= p[i]; h *= 0x100000001b3ULL; }
    return h;
}

static void put_hex(char *out, uint64_t v, int digits) {
    for (int i = digits - 1; i >= 0; i--, v >>= 4) out[i] = "0123456789abcdef"[v & 15];
}

static int get_hex(const char *in, int digits, uint64_t *v) {
    *v = 0;
    for (int i = 0; i < digits; i++) {
        char c = in[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        *v = *v << 4 | (uint64_t)d;
    }
    return 0;
}

void hako_health_header(char out[HAKO_HEALTH_HEADER_LEN + 1], const void *body, size_t n) {
    memcpy(out, MAGIC, sizeof MAGIC - 1);
    put_hex(out + 15, (uint64_t)n & 0xffffffffULL, 8);
    out[23] = ' ';
    put_hex(out + 24, fnv1a64(body, n), 16);
    out[40] = '\n';
    out[41] = 0;
}

long hako_health_body(const void *file, size_t n) {
    const char *p = file;
    uint64_t len, sum;
    if (n < HAKO_HEALTH_HEADER_LEN || memcmp(p, MAGIC, sizeof MAGIC - 1) != 0) return -1;
    if (get_hex(p + 15, 8, &len) < 0 || p[23] != ' ' || get_hex(p + 24, 16, &sum) < 0 || p[40] != '\n') return -1;
    if (len > n - HAKO_HEALTH_HEADER_LEN) return -1;
    if (fnv1a64((const unsigned char *)p + HAKO_HEALTH_HEADER_LEN, (size_t)len) != sum) return -1;
    return (long)len;
}
