/* Tokenizer tests: llama.cpp's tokenizer test vectors (../shared/vocab), the
 * lm tokenize command, special tokens, streaming decoding, hostile input, and
 * vocabularies that must be refused (built with the GGUF writer). */
#include "lm/tokenizer.h"

#include "test.h"

#include <dirent.h>
#include <unistd.h>
#include <stdlib.h>

/* ---- shared test vectors ------------------------------------------------ */

#define SEP "\n__ggml_vocab_test__\n"

struct vocab_case {
    const char *text;
    size_t len;
    struct lm_tokens ids;
};

/* Reads NAME.inp/.out (format in ../shared/vocab/README.md). Returns the
 * number of cases, or -1. */
static int read_cases(const char *inp_path, struct lm_buf *inp, struct vocab_case **cases) {
    char out_path[4096];
    snprintf(out_path, sizeof out_path, "%.*s.out", (int)(strlen(inp_path) - 4), inp_path);
    struct lm_buf out = {0};
    struct lm_err err;
    if (lm_read_file(inp_path, inp, &err) < 0 || lm_read_file(out_path, &out, &err) < 0) {
        test_fail(__FILE__, __LINE__, "%s", err.msg);
        lm_buf_free(&out);
        return -1;
    }
    int n = 0;
    *cases = NULL;
    char *p = inp->data, *o = out.data;
    for (char *sep; (sep = strstr(p, SEP)); p = sep + strlen(SEP)) {
        *cases = lm_xrealloc(*cases, (size_t)(n + 1) * sizeof **cases);
        struct vocab_case *c = &(*cases)[n++];
        *c = (struct vocab_case){p, (size_t)(sep - p), {0}};
        char *eol = strchr(o, '\n');
        if (!eol) {
            test_fail(__FILE__, __LINE__, "%s: fewer lines than cases", out_path);
            break;
        }
        for (char *q = o; q < eol;) {
            char *end;
            long v = strtol(q, &end, 10);
            if (end == q) break;
            lm_tokens_push(&c->ids, (int32_t)v);
            q = end;
        }
        o = eol + 1;
    }
    lm_buf_free(&out);
    return n;
}

static void print_ids(const char *what, const struct lm_tokens *v) {
    fprintf(stderr, "    %s:", what);
    for (size_t i = 0; i < v->n; i++) fprintf(stderr, " %d", v->ids[i]);
    fputc('\n', stderr);
}

/* Encodes every case of one vocabulary; returns the cases that passed. */
static int check_vocab(const char *dir, const char *inp_name, int *n_cases) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%.*s", dir, (int)(strlen(inp_name) - 4), inp_name);
    struct lm_gguf g = {0};
    struct lm_tokenizer t = {0};
    struct lm_err err;
    struct lm_buf inp = {0};
    struct vocab_case *cases = NULL;
    int n = 0, passed = 0;
    if (access(path, R_OK) != 0) {
        if (test_verbose) fprintf(stderr, "  %s: no vocabulary file, skipped\n", inp_name);
        *n_cases = 0;
        return 0;
    }
    if (lm_gguf_open(&g, path, &err) < 0 || lm_tokenizer_load(&t, &g, &err) < 0) {
        test_fail(__FILE__, __LINE__, "%s: %s", path, err.msg);
        goto done;
    }
    snprintf(path, sizeof path, "%s/%s", dir, inp_name);
    n = read_cases(path, &inp, &cases);
    for (int i = 0; i < n; i++) {
        struct vocab_case *c = &cases[i];
        struct lm_tokens got = {0};
        struct lm_buf text = {0};
        EXPECT(lm_tokenizer_encode(&t, c->text, c->len, false, false, &got, &err) == 0);
        bool same = got.n == c->ids.n && (got.n == 0 || memcmp(got.ids, c->ids.ids, got.n * sizeof *got.ids) == 0);
        lm_tokenizer_decode(&t, got.ids, got.n, &text);
        bool back = text.len == c->len && (c->len == 0 || memcmp(text.data, c->text, c->len) == 0);
        if (same && back) {
            passed++;
        } else {
            test_fail(__FILE__, __LINE__, "%s case %d '%.*s': %s", inp_name, i, (int)(c->len < 60 ? c->len : 60), c->text,
                      same ? "decoding does not give the input back" : "ids differ");
            if (!same) {
                print_ids("expected", &c->ids);
                print_ids("got     ", &got);
            }
        }
        lm_tokens_free(&got);
        lm_buf_free(&text);
    }
    if (test_verbose) fprintf(stderr, "  %s: %d/%d cases\n", inp_name, passed, n);
done:
    for (int i = 0; i < n; i++) lm_tokens_free(&cases[i].ids);
    free(cases);
    lm_buf_free(&inp);
    lm_tokenizer_free(&t);
    lm_gguf_close(&g);
    *n_cases = n;
    return passed;
}

static int by_strcmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

TEST(tokenizer_shared_vocab) {
    const char *dir = test_shared_path("vocab");
    DIR *d = opendir(dir);
    if (!d) return test_skip("%s is absent", dir);
    char *names[64];
    int n_names = 0;
    for (struct dirent *e; (e = readdir(d)) && n_names < 64;) {
        size_t n = strlen(e->d_name);
        if (n > 4 && !strcmp(e->d_name + n - 4, ".inp")) names[n_names++] = lm_xstrdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n_names, sizeof *names, by_strcmp);
    int files = 0;
    for (int i = 0; i < n_names; i++) {
        int n_cases, passed = check_vocab(dir, names[i], &n_cases);
        if (n_cases > 0) files++;
        EXPECT_EQ_INT(passed, n_cases);
        free(names[i]);
    }
    if (files == 0) return test_skip("no vocabulary with test vectors in %s", dir);
    return 0;
}

/* The command line gives the same ids, one case per vocabulary checked. */
TEST(tokenizer_cli_ids) {
    const char *path = test_shared_path("vocab/ggml-vocab-llama-spm.gguf");
    if (access(path, R_OK) != 0) return test_skip("%s is absent", path);
    struct lm_buf out = {0}, err = {0};
    char args[4200];
    /* Expected ids: ggml-vocab-llama-spm.gguf.out, case "Hello world". */
    snprintf(args, sizeof args, "tokenize -m '%s' --ids -p 'Hello world'", path);
    EXPECT_EQ_INT(test_run_lm(args, NULL, &out, &err), 0);
    EXPECT_EQ_STR(out.data, "15043 3186\n");
    out.len = 0;
    snprintf(args, sizeof args, "tokenize -m '%s' --ids --bos", path);
    EXPECT_EQ_INT(test_run_lm(args, " Hello world", &out, &err), 0);
    EXPECT_EQ_STR(out.data, "1 29871 15043 3186\n");
    out.len = 0;
    snprintf(args, sizeof args, "tokenize -m '%s' --count -p 'Hello world'", path);
    EXPECT_EQ_INT(test_run_lm(args, NULL, &out, &err), 0);
    EXPECT_EQ_STR(out.data, "2\n");
    out.len = 0;
    snprintf(args, sizeof args, "tokenize -m '%s' -p 'Hello world'", path);
    EXPECT_EQ_INT(test_run_lm(args, NULL, &out, &err), 0);
    EXPECT_EQ_STR(out.data, " Hello| world\n   15043  ' Hello'\n    3186  ' world'\n");
    snprintf(args, sizeof args, "tokenize -m '%s' --ids --count -p x", path);
    EXPECT_EQ_INT(test_run_lm(args, NULL, NULL, NULL), LM_EXIT_USAGE);
    EXPECT_EQ_INT(test_run_lm("tokenize -m /nonexistent.gguf -p x", NULL, NULL, NULL), LM_EXIT_MODEL);
    lm_buf_free(&out);
    lm_buf_free(&err);
    return 0;
}
