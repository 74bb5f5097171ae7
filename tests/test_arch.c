/* Every architecture against llama.cpp: the tiny F32 models of
 * scripts/make-arch-models.py (in llama.cpp's converter layout; the
 * Makefile makes them into LM_ARCH_MODELS) and llama.cpp's logits on them
 * in tests/data/arch/ (scripts/llamacpp-logits.c, run by
 * scripts/make-arch-refs.sh). For each supported model, lm runs the stored
 * prompts as one batch, in chunks of CHUNK tokens (a prefix in the cache, or
 * in the recurrent state) and token by token, and every position's logits
 * must be within 1e-3 of llama.cpp's (its batch run for the first two, its
 * token-by-token run for the last). Files of architectures lm does not run
 * must be refused by name (`lm run` exits 2). */
#include "test.h"

#include "lm/generate.h"
#include "lm/model.h"

#include <stdlib.h>

#define ARCH_DIR "tests/data/arch/"
#define MODEL_DIR LM_ARCH_MODELS "/" /* made by scripts/make-arch-models.py (make test) */
#define MAX_PROMPTS 8
#define TOLERANCE 1e-3
#define CHUNK 5

/* Model NAME is MODEL_DIR NAME.gguf, its reference ARCH_DIR NAME.ref. */
static const char *const checked[] = {
    "llama", "llama-rope-freqs", "llama-linear", "qwen2", "qwen3", "llama-yarn", "qwen2-yarn", "qwen3-yarn", "phi3",
    "qwen35", "qwen35-mtp", "gpt2", "olmo2", "granite", "smollm3", "gemma3", "gemma2", "gemma3-pattern",
    "gemma2-base-swa", "gemma4",
};

/* Each with what lm's refusal must name. */
static const struct {
    const char *path, *says;
} refused[] = {
    {"tests/corpus/gguf/bad-arch", "architecture 'mamba' is not supported"},
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
    snprintf(path, sizeof path, MODEL_DIR "%s.gguf", name);
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
        snprintf(args, sizeof args, "run -n 1 -p x -m %s", refused[i].path);
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
 * gives: scripts/make-arch-models.py; granite's multipliers, gpt2's
 * context), or why it cannot run it. */
TEST(arch_info_names_features) {
    static const struct {
        const char *name, *says[6];
    } cases[] = {
        {"gemma3", {"yes, as gemma3", "sliding window of 8 positions on 5 of 6 layers", "base 10000, 5 layers",
                    "base 1e+06, 1 layer"}},
        {"gemma2", {"yes, as gemma2", "global attention on layers 1", "attention soft-cap 1.5", "final logit soft-cap 0.5"}},
        {"gemma4", {"kv heads:      1..2 (per layer)", "yes, as gemma4", "sliding window of 8 positions on 3 of 6 layers",
                    "layers 4, 5 reuse the KV cache of layers 2, 3", "per-layer token embeddings of 8",
                    "final logit soft-cap 0.3"}},
        {"gpt2", {"yes, as gpt2", "learned positions (64)", "LayerNorm with biases", "GELU MLP without a gate"}},
        {"olmo2", {"yes, as olmo2", "no norm before attention and FFN", "RMSNorm after attention and FFN",
                   "RMSNorm of the whole query and key rows"}},
        {"granite", {"embeddings scaled by 4\n", "attention scale 0.25 (", "residual branches scaled by 0.5\n",
                     "final logits scaled by 0.5\n"}},
        {"smollm3", {"yes, as smollm3", "attention without RoPE on layers 3\n"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[256];
        snprintf(args, sizeof args, "info -m " MODEL_DIR "%s.gguf", cases[i].name);
        struct lm_buf out = {0}, err = {0};
        EXPECT_EQ_INT(test_run_lm(args, NULL, &out, &err), 0);
        for (int k = 0; k < 6 && cases[i].says[k]; k++) EXPECT_CONTAINS(out.data, cases[i].says[k]);
        lm_buf_free(&out);
        lm_buf_free(&err);
    }
    return 0;
}

/* ---- qwen35's recurrent state -------------------------------------------------
 * Against the same llama.cpp logits: two sequences sharing batches, a state
 * saved and restored, a position that would rewind the state refused, and
 * the engine going back to its saved state or to the start. */

#define RECURRENT "qwen35"

static bool load_recurrent(struct arch_ref *ref, struct lm_model *m) {
    struct lm_err err;
    if (!ref_load(ref, ARCH_DIR RECURRENT ".ref")) return ref_free(ref), false;
    if (lm_model_load(m, MODEL_DIR RECURRENT ".gguf", &err) < 0) {
        test_fail(__FILE__, __LINE__, "%s", err.msg);
        return ref_free(ref), false;
    }
    return true;
}

/* Rows [from, to) of prompt p in out (rows of n_vocab from row 0) against its batch reference. */
static void expect_rows(const struct arch_ref *ref, int p, int from, int to, const float *out, const char *what) {
    size_t row = (size_t)ref->n_vocab * sizeof(float);
    double d = max_diff(out, ref->batch[p] + (size_t)from * row, (size_t)(to - from) * (size_t)ref->n_vocab);
    if (!(d <= TOLERANCE)) test_fail(__FILE__, __LINE__, "%s: prompt %d rows %d..%d: max |diff| %g", what, p, from, to - 1, d);
}

/* A batch of up to 64 rows of reference prompts, every row's logits wanted. */
struct ref_batch {
    int32_t tokens[64], pos[64], seq[64];
    bool want[64];
    struct lm_batch b;
};

/* Appends tokens from..to of prompt p to the batch, as sequence seq. */
static void ref_batch_add(struct ref_batch *rb, const struct arch_ref *ref, int p, int from, int to, int seq) {
    if (!rb->b.tokens) rb->b = (struct lm_batch){0, rb->tokens, rb->pos, rb->seq, rb->want};
    for (int i = from; i < to && rb->b.n < 64; i++, rb->b.n++) {
        rb->tokens[rb->b.n] = ref->tokens[p][i], rb->pos[rb->b.n] = i;
        rb->seq[rb->b.n] = seq, rb->want[rb->b.n] = true;
    }
}

TEST(arch_recurrent_sequences_and_state) {
    struct arch_ref ref;
    struct lm_model m;
    if (!load_recurrent(&ref, &m)) return 0;
    struct lm_pool *pool = lm_pool_create(2);
    struct lm_ctx c;
    struct lm_err err;
    int n0 = ref.len[0], n1 = ref.len[1], split = 10;
    EXPECT(n0 + n1 <= 64 && split < n0 && split < n1);
    if (lm_ctx_init_seqs(&c, &m, pool, 2, ref.n_ctx, 64, &err) < 0) {
        test_fail(__FILE__, __LINE__, "%s", err.msg);
    } else {
        float *out = malloc(sizeof(float) * 64 * (size_t)ref.n_vocab);
        /* one batch: all of prompt 0 (sequence 1), the start of prompt 1 (sequence 0) */
        struct ref_batch rb = {0};
        ref_batch_add(&rb, &ref, 0, 0, n0, 1);
        ref_batch_add(&rb, &ref, 1, 0, split, 0);
        EXPECT_EQ_INT(lm_forward_batch(&c, &rb.b, out, &err), 0);
        expect_rows(&ref, 0, 0, n0, out, "shared batch");
        expect_rows(&ref, 1, 0, split, out + (size_t)n0 * ref.n_vocab, "shared batch");
        EXPECT_EQ_INT(lm_ctx_seq_pos(&c, 1), n0);
        EXPECT_EQ_INT(lm_ctx_seq_pos(&c, 0), split);
        /* the rest of prompt 1 continues its state; a copy of it is kept */
        void *saved = malloc(lm_ctx_seq_state_size(&c));
        EXPECT(lm_ctx_seq_state_size(&c) > 0);
        lm_ctx_seq_save(&c, 0, saved);
        rb.b.n = 0;
        ref_batch_add(&rb, &ref, 1, split, n1, 0);
        int n = rb.b.n;
        EXPECT_EQ_INT(lm_forward_batch(&c, &rb.b, out, &err), 0);
        expect_rows(&ref, 1, split, n1, out, "continued");
        /* going back is refused, and leaves the state as it was */
        rb.pos[0] = split;
        rb.b.n = 1;
        EXPECT_EQ_INT(lm_forward_batch(&c, &rb.b, out, &err), -1);
        EXPECT_CONTAINS(err.msg, "recurrent state");
        EXPECT_EQ_INT(lm_ctx_seq_pos(&c, 0), n1);
        /* unless the saved state comes back */
        lm_ctx_seq_restore(&c, 0, saved);
        EXPECT_EQ_INT(lm_ctx_seq_pos(&c, 0), split);
        rb.b.n = n;
        EXPECT_EQ_INT(lm_forward_batch(&c, &rb.b, out, &err), 0);
        expect_rows(&ref, 1, split, n1, out, "restored");
        /* position 0 starts over: prompt 2 in sequence 1 */
        EXPECT_EQ_INT(lm_forward_logits(&c, ref.tokens[2], ref.len[2], 0, 0, ref.len[2], out, &err), 0);
        expect_rows(&ref, 2, 0, ref.len[2], out, "restart");
        lm_ctx_seq_clear(&c, 1);
        EXPECT_EQ_INT(lm_ctx_seq_pos(&c, 1), 0);
        free(saved);
        free(out);
    }
    lm_ctx_free(&c);
    lm_pool_free(pool);
    lm_model_free(&m);
    ref_free(&ref);
    return 0;
}

TEST(arch_recurrent_engine_rewinds) {
    struct arch_ref ref;
    struct lm_model m;
    if (!load_recurrent(&ref, &m)) return 0;
    lm_model_free(&m);
    struct lm_engine e;
    struct lm_err err;
    int code;
    struct lm_engine_opts o = {.model_path = MODEL_DIR RECURRENT ".gguf", .n_ctx = ref.n_ctx, .n_threads = 1,
                               .sampling = lm_sampler_params_default()};
    o.sampling.seed = 7, o.sampling.seed_set = true; /* a random seed drew an end of generation one run in ~30 */
    if (lm_engine_open(&e, &o, &code, &err) < 0) {
        test_fail(__FILE__, __LINE__, "%s", err.msg);
        return ref_free(&ref), 0;
    }
    const int32_t *p = ref.tokens[0];
    int n = ref.len[0], split = 12;
    struct lm_gen_params gp = {.n_predict = 3};
    struct lm_gen_stats st;
    EXPECT_EQ_INT(lm_generate(&e, p, split, &gp, &st, &err), 0);
    EXPECT_EQ_INT(e.n_cached, split + 2); /* the third sampled token is not run */
    /* back into the reply: to the state after the prompt */
    EXPECT_EQ_INT(lm_engine_truncate(&e, split + 1), split);
    gp.n_predict = 0;
    EXPECT_EQ_INT(lm_generate(&e, p + split, n - split, &gp, &st, &err), 0);
    expect_rows(&ref, 0, n - 1, n, e.ctx.logits, "after the saved prompt");
    /* before the saved state: from the start */
    EXPECT_EQ_INT(lm_engine_truncate(&e, 5), 0);
    EXPECT_EQ_INT(lm_generate(&e, p, n, &gp, &st, &err), 0);
    expect_rows(&ref, 0, n - 1, n, e.ctx.logits, "from the start");
    EXPECT_EQ_INT(lm_engine_truncate(&e, n), n); /* nothing cut: nothing lost */
    lm_engine_close(&e);
    /* an attention-only model keeps what it is asked to */
    o.model_path = MODEL_DIR "qwen3.gguf";
    if (lm_engine_open(&e, &o, &code, &err) < 0) {
        test_fail(__FILE__, __LINE__, "%s", err.msg);
    } else {
        EXPECT_EQ_INT(lm_generate(&e, p, n, &gp, &st, &err), 0);
        EXPECT_EQ_INT(lm_engine_truncate(&e, 5), 5);
        EXPECT(!e.saved);
        lm_engine_close(&e);
    }
    ref_free(&ref);
    return 0;
}

/* The bytes of the value of metadata key in a GGUF file in memory: after
 * the key's length and name and the u32 type (arrays: element type and u64
 * count follow). NULL when absent. */
static uint8_t *gguf_value_at(struct lm_buf *file, const char *key) {
    size_t n = strlen(key);
    for (size_t i = 8; i + n + 4 <= file->len; i++) {
        uint64_t len;
        memcpy(&len, file->data + i - 8, 8);
        if (len == n && !memcmp(file->data + i, key, n)) return (uint8_t *)file->data + i + n + 4;
    }
    return NULL;
}

/* Metadata a loader must refuse with a message naming it, each patched
 * into a model in place (same sizes, so the file still parses). */
struct patch {
    const char *key;
    size_t at;      /* byte offset in the value */
    uint32_t value; /* written as u32 (or the byte, for 1-byte fields) */
    int bytes;
    const char *says;
};

static void expect_refused(const char *path, const struct patch *cases, size_t n_cases) {
    struct lm_buf orig = {0};
    struct lm_err err;
    if (lm_read_file(path, &orig, &err) < 0) return (void)test_fail(__FILE__, __LINE__, "%s", err.msg);
    for (size_t i = 0; i < n_cases; i++) {
        struct lm_buf file = {0};
        lm_buf_append(&file, orig.data, orig.len);
        uint8_t *v = gguf_value_at(&file, cases[i].key);
        if (!v) {
            test_fail(__FILE__, __LINE__, "%s: no such key", cases[i].key);
        } else {
            memcpy(v + cases[i].at, &cases[i].value, (size_t)cases[i].bytes);
            struct lm_gguf g;
            struct lm_model m;
            int rc = lm_gguf_parse(&g, file.data, file.len, &err);
            EXPECT_EQ_INT(rc, 0);
            if (rc == 0) {
                EXPECT_EQ_INT(lm_model_from_gguf(&m, &g, &err), -1);
                EXPECT_CONTAINS(err.msg, cases[i].says);
            }
        }
        lm_buf_free(&file);
    }
    lm_buf_free(&orig);
}

TEST(arch_recurrent_refuses_bad_metadata) {
    static const struct patch cases[] = {
        {"qwen35.ssm.inner_size", 0, 33, 4, "inner_size 33 is not 4 value heads of 8"},
        {"qwen35.ssm.group_count", 0, 3, 4, "4 value heads cannot share 3 key heads"},
        {"qwen35.ssm.conv_kernel", 0, 0, 4, "conv_kernel' is 0"},
        {"qwen35.ssm.state_size", 0, 100000, 4, "state_size' is 100000"},
        {"qwen35.attention.recurrent_layers", 0, LM_GGUF_I8, 4, "not an array of 4 flags"},
        {"qwen35.rope.dimension_sections", 12, 9, 4, "has 11 pairs in all"}, /* after type and count: [9,1,1,0] */
    };
    expect_refused(MODEL_DIR RECURRENT ".gguf", cases, sizeof cases / sizeof cases[0]);
    return 0;
}

/* gemma4's per-layer metadata (arrays: 12 bytes of type and count before
 * the elements) and its KV sharing, as llama.cpp reads them. */
TEST(arch_gemma4_refuses_bad_metadata) {
    static const struct patch cases[] = {
        {"gemma4.attention.shared_kv_layers", 0, 5, 4, "5 of 6 layers share the KV cache"},
        {"gemma4.attention.shared_kv_layers", 0, 3, 4, "layer 3 (global) would read the KV cache of layer 2, a window"},
        {"gemma4.attention.key_length_swa", 0, 32, 4, "key_length_swa' is 32 (expected 2..16)"},
        {"gemma4.attention.value_length_swa", 0, 4, 4, "key length 8 differs from their value length 4"},
        {"gemma4.feed_forward_length", 12 + 4 * 2, 0, 4, "feed_forward_length' is 0 for layer 2"},
        {"gemma4.attention.head_count_kv", 12 + 4 * 1, 3, 4, "4 attention heads cannot be shared by 3 KV heads"},
        {"gemma4.attention.sliding_window_pattern", 0, LM_GGUF_U8, 4, "expected an array of bool"},
        {"gemma4.rope.dimension_count_swa", 0, 10, 4, "dimension_count_swa' is 10 (expected 2..8)"},
    };
    expect_refused(MODEL_DIR "gemma4.gguf", cases, sizeof cases / sizeof cases[0]);
    return 0;
}

/* gemma4's cache (slots of their own widths, layers reading another's
 * slot) with two sequences in one batch, then each continued alone. */
TEST(arch_gemma4_sequences) {
    struct arch_ref ref;
    struct lm_model m;
    struct lm_err err;
    if (!ref_load(&ref, ARCH_DIR "gemma4.ref")) return ref_free(&ref), 0;
    if (lm_model_load(&m, MODEL_DIR "gemma4.gguf", &err) < 0) {
        test_fail(__FILE__, __LINE__, "%s", err.msg);
        return ref_free(&ref), 0;
    }
    struct lm_pool *pool = lm_pool_create(2);
    struct lm_ctx c;
    int n0 = ref.len[0], n1 = ref.len[1], split = 12;
    EXPECT(n0 + split <= 64 && split < n1);
    if (lm_ctx_init_seqs(&c, &m, pool, 2, ref.n_ctx, 64, &err) < 0) {
        test_fail(__FILE__, __LINE__, "%s", err.msg);
    } else {
        float *out = malloc(sizeof(float) * 64 * (size_t)ref.n_vocab);
        struct ref_batch rb = {0};
        ref_batch_add(&rb, &ref, 1, 0, split, 0);
        ref_batch_add(&rb, &ref, 0, 0, n0, 1);
        EXPECT_EQ_INT(lm_forward_batch(&c, &rb.b, out, &err), 0);
        expect_rows(&ref, 1, 0, split, out, "gemma4 shared batch");
        expect_rows(&ref, 0, 0, n0, out + (size_t)split * ref.n_vocab, "gemma4 shared batch");
        rb.b.n = 0;
        ref_batch_add(&rb, &ref, 1, split, n1, 0);
        EXPECT_EQ_INT(lm_forward_batch(&c, &rb.b, out, &err), 0);
        expect_rows(&ref, 1, split, n1, out, "gemma4 continued");
        free(out);
    }
    lm_ctx_free(&c);
    lm_pool_free(pool);
    lm_model_free(&m);
    ref_free(&ref);
    return 0;
}

/* A family that reads its tensors' shapes from the common hyperparameters
 * (olmo2: n_ff, the widest when feed_forward_length is one per layer)
 * still runs its layers with each layer's own dimensions, so a file whose
 * per-layer FFN widths disagree with its tensors is refused. */
TEST(arch_per_layer_dims_match_tensors) {
    struct lm_gguf orig;
    struct lm_err err;
    if (lm_gguf_open(&orig, MODEL_DIR "olmo2.gguf", &err) < 0) return test_fail(__FILE__, __LINE__, "%s", err.msg), 0;
    struct lm_gguf_writer w;
    lm_gguf_writer_init(&w);
    for (uint64_t i = 0; i < orig.n_kv; i++) {
        const struct lm_gguf_kv *kv = &orig.kv[i];
        if (!lm_gguf_str_eq(kv->key, "olmo2.feed_forward_length")) {
            lm_gguf_write_value(&w, kv->key, &kv->value);
        } else {
            uint32_t n_ff[2] = {(uint32_t)kv->value.u64 / 2, (uint32_t)kv->value.u64}; /* 2 layers */
            lm_gguf_write_arr(&w, "olmo2.feed_forward_length", LM_GGUF_U32, n_ff, 2);
        }
    }
    for (uint64_t i = 0; i < orig.n_tensors; i++) {
        const struct lm_gguf_tensor *t = &orig.tensors[i];
        char name[96];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.data);
        lm_gguf_write_tensor(&w, name, t->t.type, t->t.n_dims, t->t.ne, t->t.data);
    }
    struct lm_buf file = {0};
    lm_gguf_writer_finish(&w, &file);
    lm_gguf_writer_free(&w);
    lm_gguf_close(&orig);
    struct lm_gguf g;
    struct lm_model m;
    int rc = lm_gguf_parse(&g, file.data, file.len, &err);
    EXPECT_EQ_INT(rc, 0);
    if (rc == 0) {
        EXPECT_EQ_INT(lm_model_from_gguf(&m, &g, &err), -1);
        EXPECT_CONTAINS(err.msg, "layer 0: its tensors are not those of 2 KV heads of 8 and an FFN of 16");
    }
    lm_buf_free(&file);
    return 0;
}

/* lm run on each model: the whole path from the command line (the default
 * context, sampling, detokenizing) runs to its end. */
TEST(arch_run_each_model) {
    for (size_t i = 0; i < sizeof checked / sizeof checked[0]; i++) {
        char args[256];
        snprintf(args, sizeof args, "run -n 8 -p x --seed 1 -m " MODEL_DIR "%s.gguf", checked[i]);
        struct lm_buf out = {0}, err = {0};
        int rc = test_run_lm(args, NULL, &out, &err);
        if (rc != 0) test_fail(__FILE__, __LINE__, "lm %s: exit %d (stderr: %s)", args, rc, err.data ? err.data : "");
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
        {MODEL_DIR "llama.gguf", "rope scaling:  none\n"},
        {MODEL_DIR "llama-linear.gguf", "rope scaling:  linear x4\n"},
        {MODEL_DIR "llama-rope-freqs.gguf", "rope scaling:  frequency factors\n"},
        {MODEL_DIR "qwen2-yarn.gguf", "rope scaling:  yarn x4, original context 16, cos/sin x1.139\n"},
        {MODEL_DIR "phi3.gguf", "rope scaling:  LongRoPE beyond 16 positions, cos/sin x1.225\n"},
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
