/* common.h: what every module shares.
 *
 * Two kinds of failure (see README, "Errors"):
 *  - bad input (files, flags, prompts): a function returns -1 (or NULL) and
 *    fills a caller-owned struct lm_err with one line of text; only main()
 *    turns that into an exit code.
 *  - our own bugs: LM_ASSERT, always on (never compiled out), prints
 *    file:line and aborts.
 */
#ifndef LM_COMMON_H
#define LM_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Exit codes of the lm program. */
enum {
    LM_EXIT_OK = 0,
    LM_EXIT_USAGE = 1,     /* bad flags or arguments */
    LM_EXIT_MODEL = 2,     /* model file missing, malformed or unsupported */
    LM_EXIT_RUNTIME = 3,   /* anything else that failed while running */
    LM_EXIT_INTERRUPT = 130, /* stopped by Ctrl-C (SIGINT) */
};

struct lm_err {
    char msg[512];
};

/* Formats msg into e (when e is not NULL) and returns -1, so error paths
 * read `return lm_errf(err, "...", ...);`. */
int lm_errf(struct lm_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prepends "prefix: " to an error already set (e.g. the file name). */
void lm_err_prefix(struct lm_err *e, const char *prefix);

_Noreturn void lm_assert_fail(const char *expr, const char *file, int line);
#define LM_ASSERT(c) ((c) ? (void)0 : lm_assert_fail(#c, __FILE__, __LINE__))

/* Allocation that cannot fail: out of memory is not something a caller can
 * recover from, so these print and abort. Use them only for sizes that are
 * already validated against what the input can justify. */
void *lm_xmalloc(size_t n);
void *lm_xcalloc(size_t n, size_t size);
void *lm_xrealloc(void *p, size_t n);
char *lm_xstrdup(const char *s);
char *lm_xstrndup(const char *s, size_t n);

/* Growable byte buffer, always NUL-terminated when data != NULL. */
struct lm_buf {
    char *data;
    size_t len, cap;
};
void lm_buf_reserve(struct lm_buf *b, size_t extra);
void lm_buf_append(struct lm_buf *b, const void *data, size_t n);
void lm_buf_puts(struct lm_buf *b, const char *s);
void lm_buf_putc(struct lm_buf *b, char c);
void lm_buf_printf(struct lm_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void lm_buf_free(struct lm_buf *b);
/* Appends s[0..n) as a JSON string literal (quoted, escaped; bytes that are
 * not valid UTF-8 become U+FFFD so the output is always valid JSON). */
void lm_buf_json_str(struct lm_buf *b, const char *s, size_t n);

/* Reads a whole file ("-" is stdin) into a NUL-terminated buffer. */
int lm_read_file(const char *path, struct lm_buf *out, struct lm_err *err);

/* Checked arithmetic on sizes taken from untrusted input: return false on
 * overflow. */
static inline bool lm_mul_ok(uint64_t a, uint64_t b, uint64_t *r) { return !__builtin_mul_overflow(a, b, r); }
static inline bool lm_add_ok(uint64_t a, uint64_t b, uint64_t *r) { return !__builtin_add_overflow(a, b, r); }
/* The same, saturating at UINT64_MAX: for sizes that are compared with a
 * limit before anything is allocated. */
static inline uint64_t lm_mul_sat(uint64_t a, uint64_t b) { uint64_t r; return lm_mul_ok(a, b, &r) ? r : UINT64_MAX; }
static inline uint64_t lm_add_sat(uint64_t a, uint64_t b) { uint64_t r; return lm_add_ok(a, b, &r) ? r : UINT64_MAX; }

/* A size for messages: "512 bytes", "80.0 MiB", "2.3 TiB". */
struct lm_size_str {
    char s[24];
};
struct lm_size_str lm_size_str(uint64_t bytes);

/* Bytes of physical memory, or UINT64_MAX when the system does not say. */
uint64_t lm_physical_memory(void);

/* Monotonic clock in seconds, and in nanoseconds. */
double lm_time(void);
uint64_t lm_time_ns(void);

#endif
