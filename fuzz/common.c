/* Helpers of the fuzz harnesses (fuzz.h). */
#include "fuzz.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void fuzz_fail(const char *expr, const char *file, int line) {
    dprintf(2, "%s:%d: fuzz check failed: %s\n", file, line, expr);
    abort();
}

void fuzz_quiet(void) {
    FILE *null = fopen("/dev/null", "w");
    if (!null) return;
    stdout = null; /* glibc's standard streams are plain variables */
    stderr = null;
}

const char *fuzz_shared_path(const char *rel) {
    static char buf[4096];
    const char *root = getenv("LM_SHARED");
    snprintf(buf, sizeof buf, "%s/%s", root && *root ? root : "../shared", rel);
    return buf;
}

const char *fuzz_model_path(void) {
    const char *env = getenv("LM_MODEL");
    const char *path = env && *env ? env : "models/default.gguf";
    return access(path, R_OK) == 0 ? path : NULL;
}

static int by_strcmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

char **fuzz_list_dir(const char *dir, const char *suffix, size_t *n) {
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return NULL;
    char **list = NULL;
    size_t cap = 0, ls = strlen(suffix);
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len < ls || strcmp(e->d_name + len - ls, suffix)) continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            list = lm_xrealloc(list, cap * sizeof *list);
        }
        struct lm_buf path = {0};
        lm_buf_printf(&path, "%s/%s", dir, e->d_name);
        list[(*n)++] = path.data;
    }
    closedir(d);
    if (*n) qsort(list, *n, sizeof *list, by_strcmp);
    return list;
}

void fuzz_free_list(char **list, size_t n) {
    for (size_t i = 0; i < n; i++) free(list[i]);
    free(list);
}
