/* test.h: the test runner's tiny framework.
 *
 *   TEST(name) { EXPECT(x == 1); EXPECT_EQ_INT(a, b); return 0; }
 *
 * Each TEST registers itself at startup (constructor), so a new test file
 * needs no edit elsewhere. A test returns 0, or what test_skip("why")
 * returns; every failed EXPECT prints file:line and what differed, and
 * counts as a failure of the test.
 *
 * With LM_TEST_STRICT=1 the runner counts a skip as a failure, since a
 * missing model or data folder would otherwise hide every check that needs
 * it. Only test_skip_optin (work nobody asked for, like benchmarks without
 * LM_BENCH) stays a skip. */
#ifndef LM_TEST_H
#define LM_TEST_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include "lm/common.h"

/* The tiny architecture models (scripts/make-arch-models.py), made by the
 * Makefile before the suite runs: generated, never committed. */
#define LM_ARCH_MODELS "build/arch-models"

#define LM_TEST_SKIP (-1)
#define LM_TEST_SKIP_OPTIN (-2)

struct lm_test {
    const char *name;
    int (*fn)(void);
    struct lm_test *next;
};

void lm_test_register(struct lm_test *t);
void test_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prints why and returns LM_TEST_SKIP: something the test needs is missing. */
int test_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints why and returns LM_TEST_SKIP_OPTIN: the test runs only when asked. */
int test_skip_optin(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern int test_verbose;

/* Path of the shared test data (../shared by default, $LM_SHARED overrides);
 * returns path joined with rel in a static buffer. */
const char *test_shared_path(const char *rel);
/* The path of shared file rel when it is readable. Otherwise NULL, and *rc
 * is what the test returns: a skip when rel's folder is absent (the data is
 * not installed), a failure when the folder is there (the data is incomplete). */
#define test_shared_file(rel, rc) test_shared_file_at(__FILE__, __LINE__, rel, rc)
const char *test_shared_file_at(const char *file, int line, const char *rel, int *rc);
/* A fresh temporary file path (removed at exit). */
const char *test_tmp_path(const char *suffix);

/* Runs `lm ARGS` through the shell (lm = $LM_BIN, default ./lm) with stdin
 * from the string `in` (NULL: /dev/null); captures stdout and stderr into
 * the buffers (either may be NULL) and returns the exit code (128+signal
 * when killed). */
int test_run_lm(const char *args, const char *in, struct lm_buf *out, struct lm_buf *err);
/* The default model, or NULL (tests then skip): $LM_MODEL, else models/default.gguf. */
const char *test_model_path(void);

/* Reads fd into seen until seen, from offset `from` on, contains want;
 * false at end of input or after a minute without output (machines under
 * load are slow; the tests wait on output, never on the clock). */
bool test_read_until(int fd, struct lm_buf *seen, size_t from, const char *want);

/* A pseudo-terminal of cols columns: the slave is a terminal to whoever
 * reads it; the test types on the master. Returns -1 when there is none. */
struct test_pty {
    int master, slave;
};
int test_pty_open(struct test_pty *p, int cols);
void test_pty_close(struct test_pty *p);

/* `lm ARGS` running while the test talks to it: started through the shell
 * as test_run_lm does, but the shell execs lm, so that signals reach lm. */
struct test_proc {
    pid_t pid;
    int out;            /* read end of its stdout, a pipe */
    struct lm_buf seen; /* its stdout so far (test_proc_wait) */
    char err_path[512]; /* its stderr, a file */
};
/* Starts it with stdin from in_fd (-1: /dev/null); false when it cannot. */
bool test_proc_start(struct test_proc *p, const char *args, int in_fd);
/* Reads its stdout until what came after offset from contains want. */
bool test_proc_wait(struct test_proc *p, size_t from, const char *want);
/* Waits for it to end (killing it after a minute of silence), reads the rest
 * of stdout into seen (the caller frees seen) and stderr into err (may be NULL).
 * Returns the exit code, or minus the signal that ended it: a process
 * killed by SIGINT must not pass for one that exited with 130. */
int test_proc_end(struct test_proc *p, struct lm_buf *err);

#define TEST(name)                                                                  \
    static int test_##name(void);                                                   \
    static struct lm_test test_reg_##name = {#name, test_##name, 0};                \
    __attribute__((constructor)) static void test_ctor_##name(void) {               \
        lm_test_register(&test_reg_##name);                                         \
    }                                                                               \
    static int test_##name(void)

#define EXPECT(c) ((c) ? (void)0 : test_fail(__FILE__, __LINE__, "expected %s", #c))
#define EXPECT_EQ_INT(a, b)                                                                          \
    do {                                                                                             \
        long long a_ = (long long)(a), b_ = (long long)(b);                                          \
        if (a_ != b_) test_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, a_, b_);      \
    } while (0)
#define EXPECT_EQ_STR(a, b)                                                                          \
    do {                                                                                             \
        const char *a_ = (a), *b_ = (b);                                                             \
        if (!a_ || !b_ || strcmp(a_, b_) != 0)                                                       \
            test_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b, a_ ? a_ : "(null)",   \
                      b_ ? b_ : "(null)");                                                           \
    } while (0)
#define EXPECT_NEAR(a, b, tol)                                                                       \
    do {                                                                                             \
        double a_ = (a), b_ = (b);                                                                   \
        if (!(fabs(a_ - b_) <= (tol)))                                                               \
            test_fail(__FILE__, __LINE__, "%s ~ %s: %g vs %g (tol %g)", #a, #b, a_, b_, (double)(tol)); \
    } while (0)
/* Error message contains the substring. */
#define EXPECT_CONTAINS(hay, needle)                                                                 \
    do {                                                                                             \
        const char *h_ = (hay), *n_ = (needle);                                                      \
        if (!h_ || !strstr(h_, n_)) test_fail(__FILE__, __LINE__, "\"%s\" does not contain \"%s\"", h_ ? h_ : "(null)", n_); \
    } while (0)

#endif
