/* common.c: errors, checked allocation, growable buffers, whole-file reads, sizes for messages. */
#include "lm/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int lm_errf(struct lm_err *e, const char *fmt, ...) {
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void lm_err_prefix(struct lm_err *e, const char *prefix) {
    if (!e) return;
    size_t cap = sizeof e->msg, np = strlen(prefix), nm = strlen(e->msg);
    if (np + 2 >= cap) np = cap - 3;
    if (np + 2 + nm >= cap) nm = cap - 1 - np - 2;
    memmove(e->msg + np + 2, e->msg, nm);
    memcpy(e->msg, prefix, np);
    memcpy(e->msg + np, ": ", 2);
    e->msg[np + 2 + nm] = 0;
}

_Noreturn void lm_assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "lm: internal error: %s:%d: assertion failed: %s\n", file, line, expr);
    abort();
}

static void *check_alloc(void *p, size_t n) {
    if (!p && n) {
        fprintf(stderr, "lm: out of memory (%zu bytes)\n", n);
        abort();
    }
    return p;
}

void *lm_xmalloc(size_t n) { return check_alloc(malloc(n ? n : 1), n); }
void *lm_xcalloc(size_t n, size_t size) { return check_alloc(calloc(n ? n : 1, size ? size : 1), n * size); }
void *lm_xrealloc(void *p, size_t n) { return check_alloc(realloc(p, n ? n : 1), n); }
char *lm_xstrdup(const char *s) { return lm_xstrndup(s, strlen(s)); }

char *lm_xstrndup(const char *s, size_t n) {
    char *r = lm_xmalloc(n + 1);
    memcpy(r, s, n);
    r[n] = 0;
    return r;
}

void lm_buf_reserve(struct lm_buf *b, size_t extra) {
    if (b->data && b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) cap *= 2;
    b->data = lm_xrealloc(b->data, cap);
    b->cap = cap;
}

void lm_buf_append(struct lm_buf *b, const void *data, size_t n) {
    lm_buf_reserve(b, n);
    if (n) memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = 0;
}

void lm_buf_puts(struct lm_buf *b, const char *s) { lm_buf_append(b, s, strlen(s)); }
void lm_buf_putc(struct lm_buf *b, char c) { lm_buf_append(b, &c, 1); }

void lm_buf_printf(struct lm_buf *b, const char *fmt, ...) {
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    LM_ASSERT(n >= 0);
    lm_buf_reserve(b, (size_t)n);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    b->len += (size_t)n;
}

void lm_buf_free(struct lm_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when invalid. */
static size_t utf8_seq_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || len > n) return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    uint32_t cp = len == 1 ? c : len == 2 ? c & 0x1f : len == 3 ? c & 0x0f : c & 0x07;
    for (size_t i = 1; i < len; i++) cp = (cp << 6) | (s[i] & 0x3f);
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

void lm_buf_json_str(struct lm_buf *b, const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    lm_buf_putc(b, '"');
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        if (c == '"' || c == '\\') {
            lm_buf_putc(b, '\\');
            lm_buf_putc(b, (char)c);
        } else if (c == '\n') {
            lm_buf_puts(b, "\\n");
        } else if (c == '\r') {
            lm_buf_puts(b, "\\r");
        } else if (c == '\t') {
            lm_buf_puts(b, "\\t");
        } else if (c < 0x20 || c == 0x7f) {
            lm_buf_printf(b, "\\u%04x", c);
        } else if (c >= 0x80) {
            size_t len = utf8_seq_len(p + i, n - i);
            if (len == 0) {
                lm_buf_puts(b, "\xef\xbf\xbd");
                i++;
                continue;
            }
            lm_buf_append(b, p + i, len);
            i += len;
            continue;
        } else {
            lm_buf_putc(b, (char)c);
        }
        i++;
    }
    lm_buf_putc(b, '"');
}

int lm_read_file(const char *path, struct lm_buf *out, struct lm_err *err) {
    bool is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (!f) return lm_errf(err, "%s: %s", path, strerror(errno));
    lm_buf_reserve(out, 4096);
    for (;;) {
        lm_buf_reserve(out, 65536);
        size_t n = fread(out->data + out->len, 1, out->cap - out->len - 1, f);
        out->len += n;
        out->data[out->len] = 0;
        if (n == 0) break;
    }
    int bad = ferror(f);
    if (!is_stdin) fclose(f);
    if (bad) return lm_errf(err, "%s: read error", path);
    return 0;
}

struct lm_size_str lm_size_str(uint64_t bytes) {
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    struct lm_size_str r;
    if (bytes < 1024) {
        snprintf(r.s, sizeof r.s, "%llu bytes", (unsigned long long)bytes);
        return r;
    }
    double v = (double)bytes / 1024;
    int u = 0;
    while (v >= 1024 && u < 5) v /= 1024, u++;
    snprintf(r.s, sizeof r.s, "%.1f %s", v, units[u]);
    return r;
}

uint64_t lm_physical_memory(void) {
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? lm_mul_sat((uint64_t)pages, (uint64_t)page) : UINT64_MAX;
}

uint64_t lm_time_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double lm_time(void) { return (double)lm_time_ns() * 1e-9; }
