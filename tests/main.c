/* The test runner: runs every registered TEST (or those whose name contains
 * any of the arguments) and ends with "N passed, N failed, N skipped". -v
 * names each test. LM_TEST_STRICT=1 (any value but empty or 0) fails the
 * tests that skip, except opt-in ones (test.h). */
#include "test.h"

#include "lm/common.h"

#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>

#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

static struct lm_test *tests;
static int current_failures;
static char skip_reason[256]; /* the current test's, repeated when strict mode fails it */
int test_verbose;

void lm_test_register(struct lm_test *t) {
    t->next = tests;
    tests = t;
}

void test_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "  %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    current_failures++;
}

static int vskip(int rc, const char *fmt, va_list ap) {
    vsnprintf(skip_reason, sizeof skip_reason, fmt, ap);
    fprintf(stderr, "  skipped: %s\n", skip_reason);
    return rc;
}

int test_skip(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = vskip(LM_TEST_SKIP, fmt, ap);
    va_end(ap);
    return rc;
}

int test_skip_optin(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = vskip(LM_TEST_SKIP_OPTIN, fmt, ap);
    va_end(ap);
    return rc;
}

const char *test_shared_path(const char *rel) {
    static char buf[4096];
    const char *root = getenv("LM_SHARED");
    snprintf(buf, sizeof buf, "%s/%s", root && *root ? root : "../shared", rel);
    return buf;
}

const char *test_shared_file_at(const char *file, int line, const char *rel, int *rc) {
    static char path[4096];
    snprintf(path, sizeof path, "%s", test_shared_path(rel));
    if (access(path, R_OK) == 0) return path;
    int e = errno;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        *rc = test_skip("%s is absent", dir);
    } else {
        test_fail(file, line, "%s: %s (its folder is there: the data is incomplete)", path, strerror(e));
        *rc = 1;
    }
    return NULL;
}

static char tmp_dir[256];

static void remove_tmp_dir(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", tmp_dir);
}

const char *test_tmp_path(const char *suffix) {
    static char buf[512];
    static int counter;
    if (!tmp_dir[0]) {
        snprintf(tmp_dir, sizeof tmp_dir, "/tmp/lm-test-XXXXXX");
        if (!mkdtemp(tmp_dir)) {
            perror("mkdtemp");
            exit(3);
        }
        atexit(remove_tmp_dir);
    }
    snprintf(buf, sizeof buf, "%s/%d%s", tmp_dir, counter++, suffix);
    return buf;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
        perror(path);
        exit(3);
    }
}

int test_run_lm(const char *args, const char *in, struct lm_buf *out, struct lm_buf *err) {
    const char *bin = getenv("LM_BIN");
    char in_path[512], out_path[512], err_path[512];
    snprintf(in_path, sizeof in_path, "%s", test_tmp_path(".in"));
    snprintf(out_path, sizeof out_path, "%s", test_tmp_path(".out"));
    snprintf(err_path, sizeof err_path, "%s", test_tmp_path(".err"));
    write_file(in_path, in ? in : "");
    struct lm_buf cmd = {0};
    lm_buf_printf(&cmd, "%s %s < '%s' > '%s' 2> '%s'", bin && *bin ? bin : "./lm", args, in_path, out_path, err_path);
    int status = system(cmd.data);
    lm_buf_free(&cmd);
    struct lm_err e;
    if (out) {
        out->len = 0;
        if (lm_read_file(out_path, out, &e) < 0) test_fail(__FILE__, __LINE__, "%s", e.msg);
    }
    if (err) {
        err->len = 0;
        if (lm_read_file(err_path, err, &e) < 0) test_fail(__FILE__, __LINE__, "%s", e.msg);
    }
    if (status == -1) return -1;
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

const char *test_model_path(void) {
    const char *env = getenv("LM_MODEL");
    const char *path = env && *env ? env : "models/default.gguf";
    return access(path, R_OK) == 0 ? path : NULL;
}

static int by_name(const void *a, const void *b) {
    return strcmp((*(struct lm_test *const *)a)->name, (*(struct lm_test *const *)b)->name);
}

static bool selected(const char *name, char **filters, int n_filters) {
    for (int i = 0; i < n_filters; i++)
        if (strstr(name, filters[i])) return true;
    return n_filters == 0;
}

int main(int argc, char **argv) {
    char **filters = lm_xmalloc(sizeof *filters * (size_t)argc);
    int n_filters = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-v") == 0) test_verbose = 1;
        else filters[n_filters++] = argv[i];
    }
    int n = 0;
    for (struct lm_test *t = tests; t; t = t->next) n++;
    struct lm_test **list = malloc(sizeof *list * (size_t)(n ? n : 1));
    n = 0;
    for (struct lm_test *t = tests; t; t = t->next) list[n++] = t;
    qsort(list, (size_t)n, sizeof *list, by_name);

    const char *strict_env = getenv("LM_TEST_STRICT");
    bool strict = strict_env && *strict_env && strcmp(strict_env, "0") != 0;
    int passed = 0, failed = 0, skipped = 0;
    for (int i = 0; i < n; i++) {
        struct lm_test *t = list[i];
        if (!selected(t->name, filters, n_filters)) continue;
        if (test_verbose) fprintf(stderr, "%s\n", t->name);
        current_failures = 0;
        skip_reason[0] = 0;
        int r = t->fn();
        bool skip = (r == LM_TEST_SKIP || r == LM_TEST_SKIP_OPTIN) && current_failures == 0;
        if (skip && strict && r == LM_TEST_SKIP) {
            failed++;
            fprintf(stderr, "FAIL %s: a skip, which LM_TEST_STRICT=1 counts as a failure: %s\n", t->name,
                    skip_reason[0] ? skip_reason : "no reason given");
        } else if (skip) {
            skipped++;
            fprintf(stderr, "SKIP %s\n", t->name);
        } else if (current_failures || r > 0) {
            failed++;
            fprintf(stderr, "FAIL %s\n", t->name);
        } else {
            passed++;
        }
    }
    free(list);
    free(filters);
    fflush(stderr);
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}
