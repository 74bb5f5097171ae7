/* The test runner: runs every registered TEST (or those whose name contains
 * any of the arguments) and ends with "N passed, N failed, N skipped". -v
 * names each test. LM_TEST_STRICT=1 (any value but empty or 0) fails the
 * tests that skip, except opt-in ones (test.h). */
#include "test.h"

#include "lm/common.h"

#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
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

static const char *lm_bin(void) {
    const char *bin = getenv("LM_BIN");
    return bin && *bin ? bin : "./lm";
}

int test_run_lm(const char *args, const char *in, struct lm_buf *out, struct lm_buf *err) {
    char in_path[512], out_path[512], err_path[512];
    snprintf(in_path, sizeof in_path, "%s", test_tmp_path(".in"));
    snprintf(out_path, sizeof out_path, "%s", test_tmp_path(".out"));
    snprintf(err_path, sizeof err_path, "%s", test_tmp_path(".err"));
    write_file(in_path, in ? in : "");
    struct lm_buf cmd = {0};
    lm_buf_printf(&cmd, "%s %s < '%s' > '%s' 2> '%s'", lm_bin(), args, in_path, out_path, err_path);
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

/* A minute without output is a hang, not a slow machine. */
enum { SILENCE_MS = 60000 };

/* One read into seen: 1 with data, 0 at end of input, -1 after a minute
 * of silence or on an error. */
static int read_some(int fd, struct lm_buf *seen) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    if (poll(&pfd, 1, SILENCE_MS) <= 0) return -1;
    char tmp[4096];
    ssize_t r = read(fd, tmp, sizeof tmp);
    if (r > 0) lm_buf_append(seen, tmp, (size_t)r);
    return r > 0 ? 1 : r == 0 ? 0 : -1;
}

bool test_read_until(int fd, struct lm_buf *seen, size_t from, const char *want) {
    while (seen->len < from || !seen->data || !strstr(seen->data + from, want))
        if (read_some(fd, seen) <= 0) return false;
    return true;
}

int test_pty_open(struct test_pty *p, int cols) {
    p->master = posix_openpt(O_RDWR | O_NOCTTY);
    p->slave = -1;
    if (p->master < 0 || grantpt(p->master) < 0 || unlockpt(p->master) < 0) return -1;
    p->slave = open(ptsname(p->master), O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (p->slave < 0) return -1;
    fcntl(p->master, F_SETFD, FD_CLOEXEC); /* a child must not keep the terminal from hanging up */
    struct winsize ws = {.ws_row = 24, .ws_col = (unsigned short)cols};
    return ioctl(p->slave, TIOCSWINSZ, &ws);
}

void test_pty_close(struct test_pty *p) {
    if (p->master >= 0) close(p->master);
    if (p->slave >= 0) close(p->slave);
}

bool test_proc_start(struct test_proc *p, const char *args, int in_fd) {
    memset(p, 0, sizeof *p);
    p->pid = -1;
    p->out = -1;
    snprintf(p->err_path, sizeof p->err_path, "%s", test_tmp_path(".err"));
    struct lm_buf cmd = {0};
    lm_buf_printf(&cmd, "exec %s %s", lm_bin(), args);
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) {
        lm_buf_free(&cmd);
        return false;
    }
    fflush(NULL); /* or the child flushes our buffers a second time */
    p->pid = fork();
    if (p->pid == 0) {
        int in = in_fd >= 0 ? in_fd : open("/dev/null", O_RDONLY);
        int err = open(p->err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (in < 0 || err < 0 || dup2(in, 0) < 0 || dup2(fds[1], 1) < 0 || dup2(err, 2) < 0) _exit(127);
        signal(SIGINT, SIG_DFL); /* a background shell may have left it ignored */
        execl("/bin/sh", "sh", "-c", cmd.data, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    lm_buf_free(&cmd);
    if (p->pid < 0) {
        close(fds[0]);
        return false;
    }
    p->out = fds[0];
    return true;
}

bool test_proc_wait(struct test_proc *p, size_t from, const char *want) {
    return test_read_until(p->out, &p->seen, from, want);
}

int test_proc_end(struct test_proc *p, struct lm_buf *err) {
    int status = 0;
    if (p->pid > 0) {
        int r;
        while ((r = read_some(p->out, &p->seen)) > 0) {} /* its stdout ends when it exits */
        if (r < 0) {
            test_fail(__FILE__, __LINE__, "lm did not exit; killed it");
            kill(p->pid, SIGKILL);
        }
        waitpid(p->pid, &status, 0);
    }
    if (p->out >= 0) close(p->out);
    if (err) {
        struct lm_err e;
        err->len = 0;
        if (lm_read_file(p->err_path, err, &e) < 0) test_fail(__FILE__, __LINE__, "%s", e.msg);
    }
    p->pid = -1;
    p->out = -1;
    return WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status);
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
