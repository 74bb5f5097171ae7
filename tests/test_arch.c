/* Every architecture against llama.cpp: the tiny F32 models in
 * tests/data/arch/ (scripts/make-arch-models.py, in llama.cpp's converter
 * layout) and llama.cpp's logits on them (scripts/llamacpp-logits.c, run by
 * scripts/make-arch-refs.sh). For each supported model, lm runs the stored
 * prompts as one batch, in chunks of CHUNK tokens (a prefix in the cache, or
 * in the recurrent state) and token by token, and every position's logits
 * must be within 1e-3 of llama.cpp's (its batch run for the first two, its
 * token-by-token run for the last). Models of architectures lm does not run
 * yet must be refused by name (`lm run` exits 2): moving a row from
 * `refused` to `checked` is how a new family is tested. */
#include "test.h"

#include "lm/model.h"

#include <stdlib.h>

#define ARCH_DIR "tests/data/arch/"
#define MAX_PROMPTS 8
#define TOLERANCE 1e-3
#define CHUNK 5

/* Model NAME is ARCH_DIR NAME.gguf, its reference NAME.ref. */
static const char *const checked[] = {
    "llama", "llama-rope-freqs", "llama-linear", "qwen2", "qwen3", "llama-yarn", "qwen2-yarn", "qwen3-yarn", "phi3",
    "gemma3", "gemma2", "gemma3-pattern", "gemma2-base-swa",
};

/* Each with what lm's refusal must name. */
static const struct {
    const char *name, *says;
} refused[] = {
    {"gpt2", "gpt2"},
    {"olmo2", "olmo2"},
    {"granite", "granite"},
    {"smollm3", "smollm3"},
    {"gemma4", "gemma4"},
    {"qwen35", "qwen35"},
};

/* A reference file (format in scripts/llamacpp-logits.c): the prompts, and
 * for each, n x n_vocab logits from one batch, then from one token at a time. */
struct arch_ref {
    struct lm_buf file;
    int n_vocab, n_ctx, n_prompts;
    int len[MAX_PROMPTS];
    int32_t *tokens[MAX_PROMPTS];
    const char *batch[MAX_PROMPTS], *single[MAX_PROMPTS]; /* float32 rows, unaligned */
};

static void ref_free(struct arch_ref *r) {
    for (int p = 0; p < MAX_PROMPTS; p++) free(r->tokens[p]);
    lm_buf_free(&r->file);
}

/* Next header line of the form "KEY N ..." starting at *at: N, or -1. */
static long header_int(const char **at, const char *key) {
    size_t n = strlen(key);
    if (strncmp(*at, key, n) || (*at)[n] != ' ') return -1;
    char *end;
    long v = strtol(*at + n + 1, &end, 10);
    *at = end;
    return v;
}

static bool next_line(const char **at) {
    const char *nl = strchr(*at, '\n');
    if (!nl) return false;
    *at = nl + 1;
    return true;
}

static bool ref_load(struct arch_ref *r, const char *path) {
    memset(r, 0, sizeof *r);
    struct lm_err err;
    if (lm_read_file(path, &r->file, &err) < 0) return test_fail(__FILE__, __LINE__, "%s", err.msg), false;
    const char *at = r->file.data, *end = r->file.data + r->file.len;
    if (strncmp(at, "lm-arch-ref 1\n", 14)) return test_fail(__FILE__, __LINE__, "%s: not a reference file", path), false;
    at += 14;
    r->n_vocab = (int)header_int(&at, "n_vocab");
    if (!next_line(&at)) return false;
    r->n_ctx = (int)header_int(&at, "n_ctx");
    if (!next_line(&at)) return false;
    r->n_prompts = (int)header_int(&at, "prompts");
    if (r->n_vocab <= 0 || r->n_ctx <= 0 || r->n_prompts <= 0 || r->n_prompts > MAX_PROMPTS || !next_line(&at))
        return test_fail(__FILE__, __LINE__, "%s: bad header", path), false;
    for (int p = 0; p < r->n_prompts; p++) {
        long n = header_int(&at, "prompt");
        if (n <= 0 || n > r->n_ctx) return test_fail(__FILE__, __LINE__, "%s: bad prompt %d", path, p), false;
        r->len[p] = (int)n;
        r->tokens[p] = malloc(sizeof(int32_t) * (size_t)n);
        for (int i = 0; i < n; i++) r->tokens[p][i] = (int32_t)strtol(at, (char **)&at, 10);
        if (!next_line(&at)) return false;
    }
    if (strncmp(at, "data\n", 5)) return test_fail(__FILE__, __LINE__, "%s: no data line", path), false;
    at += 5;
    for (int p = 0; p < r->n_prompts; p++) {
        size_t bytes = sizeof(float) * (size_t)r->len[p] * (size_t)r->n_vocab;
        r->batch[p] = at;
        r->single[p] = at + bytes;
        at += 2 * bytes;
    }
    if (at != end) return test_fail(__FILE__, __LINE__, "%s: %td bytes of data, expected %td", path,
                                    end - r->file.data, at - r->file.data), false;
    return true;
}

/* Largest |got - want| over n floats, want read from unaligned bytes. */
static double max_diff(const float *got, const char *want, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) {
        float w;
        memcpy(&w, want + i * sizeof w, sizeof w);
        double e = fabs((double)got[i] - w);
        if (!(e <= d)) d = e; /* NaN sticks */
    }
    return d;
}

static void check_model(const char *name, struct lm_pool *pool) {
    char path[256];
    struct arch_ref ref;
    snprintf(path, sizeof path, ARCH_DIR "%s.ref", name);
    if (!ref_load(&ref, path)) return ref_free(&ref);
    snprintf(path, sizeof path, ARCH_DIR "%s.gguf", name);
    struct lm_model m;
    struct lm_ctx c;
    struct lm_err err;
    memset(&c, 0, sizeof c);
    if (lm_model_load(&m, path, &err) < 0) {
        test_fail(__FILE__, __LINE__, "%s", err.msg);
        return ref_free(&ref);
    }
    int max_len = 0;
    for (int p = 0; p < ref.n_prompts; p++) max_len = ref.len[p] > max_len ? ref.len[p] : max_len;
    if (m.hp.n_vocab != ref.n_vocab) {
        test_fail(__FILE__, __LINE__, "%s: %d tokens, the reference has %d", name, m.hp.n_vocab, ref.n_vocab);
    } else if (lm_ctx_init(&c, &m, pool, ref.n_ctx, max_len, &err) < 0) {
        test_fail(__FILE__, __LINE__, "%s", err.msg);
    } else {
        float *rows = malloc(sizeof(float) * (size_t)max_len * (size_t)ref.n_vocab);
        for (int p = 0; p < ref.n_prompts; p++) {
            int n = ref.len[p];
            size_t count = (size_t)n * (size_t)ref.n_vocab;
            EXPECT_EQ_INT(lm_forward_logits(&c, ref.tokens[p], n, 0, 0, n, rows, &err), 0);
            double d_batch = max_diff(rows, ref.batch[p], count);
            for (int i = 0; i < n; i += CHUNK) {
                int m_tok = n - i < CHUNK ? n - i : CHUNK;
                EXPECT_EQ_INT(lm_forward_logits(&c, ref.tokens[p] + i, m_tok, i, 0, m_tok, rows + (size_t)i * ref.n_vocab, &err), 0);
            }
            double d_chunks = max_diff(rows, ref.batch[p], count);
            for (int i = 0; i < n; i++)
                EXPECT_EQ_INT(lm_forward_logits(&c, ref.tokens[p] + i, 1, i, 0, 1, rows + (size_t)i * ref.n_vocab, &err), 0);
            double d_single = max_diff(rows, ref.single[p], count);
            if (test_verbose)
                printf("  %-18s prompt %d (%2d tokens): max |diff| batch %.2e, chunks %.2e, token by token %.2e\n", name, p, n,
                       d_batch, d_chunks, d_single);
            if (!(d_batch <= TOLERANCE && d_chunks <= TOLERANCE && d_single <= TOLERANCE))
                test_fail(__FILE__, __LINE__,
                          "%s prompt %d: max |logit - llama.cpp's| %g (batch), %g (chunks of %d), %g (token by token), tolerance %g",
                          name, p, d_batch, d_chunks, CHUNK, d_single, TOLERANCE);
        }
        free(rows);
    }
    lm_ctx_free(&c);
    lm_model_free(&m);
    ref_free(&ref);
}

TEST(arch_logits_match_llamacpp) {
    struct lm_pool *pool = lm_pool_create(2);
    for (size_t i = 0; i < sizeof checked / sizeof checked[0]; i++) check_model(checked[i], pool);
    lm_pool_free(pool);
    return 0;
}

TEST(arch_unsupported_refused_by_name) {
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        char args[256];
        snprintf(args, sizeof args, "run -n 1 -p x -m " ARCH_DIR "%s.gguf", refused[i].name);
        struct lm_buf out = {0}, err = {0};
        int rc = test_run_lm(args, NULL, &out, &err);
        if (rc != 2) test_fail(__FILE__, __LINE__, "lm %s: exit %d, expected 2 (stderr: %s)", args, rc, err.data ? err.data : "");
        EXPECT_CONTAINS(err.data, refused[i].says);
        lm_buf_free(&out);
        lm_buf_free(&err);
    }
    return 0;
}

/* lm info says what the loader made of a model (the features its metadata
 * gives: scripts/make-arch-models.py), or why it cannot run it. */
TEST(arch_info_names_features) {
    static const struct {
        const char *name, *says[4];
    } cases[] = {
        {"gemma3", {"yes, as gemma3", "sliding window of 8 positions on 5 of 6 layers", "base 10000, 5 layers",
                    "base 1e+06, 1 layer"}},
        {"gemma2", {"yes, as gemma2", "global attention on layers 1", "attention soft-cap 1.5", "final logit soft-cap 0.5"}},
        {"gemma4", {"kv heads:      1..2 (per layer)", "lm runs it:    no: architecture 'gemma4' is not supported"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[256];
        snprintf(args, sizeof args, "info -m " ARCH_DIR "%s.gguf", cases[i].name);
        struct lm_buf out = {0}, err = {0};
        EXPECT_EQ_INT(test_run_lm(args, NULL, &out, &err), 0);
        for (int k = 0; k < 4 && cases[i].says[k]; k++) EXPECT_CONTAINS(out.data, cases[i].says[k]);
        lm_buf_free(&out);
        lm_buf_free(&err);
    }
    return 0;
}

/* lm info names the RoPE scaling lm computes for each file (its metadata:
 * scripts/make-arch-models.py; the cos/sin factors: docs/arch-notes.md's
 * formulas, 1 + 0.1 ln 4 for YaRN x4, sqrt(1 + ln 4 / ln 16) for phi3), and
 * "-" for a file lm does not run (a scaling it does not know). */
TEST(arch_info_shows_rope_scaling) {
    static const struct {
        const char *path, *says;
    } files[] = {
        {ARCH_DIR "llama.gguf", "rope scaling:  none\n"},
        {ARCH_DIR "llama-linear.gguf", "rope scaling:  linear x4\n"},
        {ARCH_DIR "llama-rope-freqs.gguf", "rope scaling:  frequency factors\n"},
        {ARCH_DIR "qwen2-yarn.gguf", "rope scaling:  yarn x4, original context 16, cos/sin x1.139\n"},
        {ARCH_DIR "phi3.gguf", "rope scaling:  LongRoPE beyond 16 positions, cos/sin x1.225\n"},
        {"tests/corpus/gguf/bad-rope-scaling", "rope scaling:  -\n"},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char args[256];
        snprintf(args, sizeof args, "info -m %s", files[i].path);
        struct lm_buf out = {0}, err = {0};
        EXPECT_EQ_INT(test_run_lm(args, NULL, &out, &err), 0);
        EXPECT_CONTAINS(out.data, files[i].says);
        lm_buf_free(&out);
        lm_buf_free(&err);
    }
    return 0;
}
