/* The forward pass against an independent double-precision reference written
 * plainly here (no cache, no batching, no threads), on tiny random models in
 * every weight format we compute with, for llama, qwen2 and qwen3. */
#include "test.h"

#include "lm/model.h"

#include <stdlib.h>

enum { V = 48, E = 256, FF = 512, H = 4, HKV = 2, HD = 64, L = 2, N_TOK = 7, N_LONG = 300 };

struct rng {
    uint64_t s;
};
static float frand(struct rng *r) { /* uniform in [-1, 1) */
    r->s = r->s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((r->s >> 40) / (double)(1ull << 24)) * 2 - 1;
}

/* The weights as the reference sees them: what the file holds, dequantized. */
struct ref_layer {
    double *attn_norm, *wq, *wk, *wv, *wo, *bq, *bk, *bv, *qn, *kn, *ffn_norm, *wg, *wu, *wd;
};
struct ref_model {
    int arch; /* 0 llama, 1 qwen2, 2 qwen3 */
    double *emb, *out_norm, *out;
    struct ref_layer layers[L];
};

static double *add_tensor(struct lm_gguf_writer *w, const char *name, enum lm_type type, int64_t ne0, int64_t ne1,
                          float scale, struct rng *r) {
    size_t n = (size_t)ne0 * (size_t)ne1;
    float *f = malloc(n * sizeof *f);
    for (size_t i = 0; i < n; i++) f[i] = frand(r) * scale;
    const struct lm_type_traits *t = lm_type_get(type);
    size_t bytes = (size_t)(ne0 / t->blck) * t->size * (size_t)ne1;
    void *q = malloc(bytes);
    if (type == LM_TYPE_F32) memcpy(q, f, bytes);
    else t->from_f32(f, q, (int64_t)n);
    int64_t ne[2] = {ne0, ne1};
    lm_gguf_write_tensor(w, name, type, ne1 > 1 ? 2 : 1, ne, q);
    double *d = malloc(n * sizeof *d);
    if (type == LM_TYPE_F32) {
        for (size_t i = 0; i < n; i++) d[i] = f[i];
    } else {
        t->to_f32(q, f, (int64_t)n);
        for (size_t i = 0; i < n; i++) d[i] = f[i];
    }
    free(f);
    free(q);
    return d;
}

static void build(struct lm_buf *file, struct ref_model *ref, int arch, enum lm_type wtype, bool tied) {
    static const char *const names[] = {"llama", "qwen2", "qwen3"};
    struct rng r = {42 + (uint64_t)arch * 7 + (uint64_t)wtype};
    struct lm_gguf_writer w;
    lm_gguf_writer_init(&w);
    const char *a = names[arch];
    char key[96];
    lm_gguf_write_str(&w, "general.architecture", a);
#define KEY(suffix) (snprintf(key, sizeof key, "%s.%s", a, suffix), key)
    lm_gguf_write_u32(&w, KEY("embedding_length"), E);
    lm_gguf_write_u32(&w, KEY("block_count"), L);
    lm_gguf_write_u32(&w, KEY("feed_forward_length"), FF);
    lm_gguf_write_u32(&w, KEY("attention.head_count"), H);
    lm_gguf_write_u32(&w, KEY("attention.head_count_kv"), HKV);
    lm_gguf_write_u32(&w, KEY("context_length"), 128);
    lm_gguf_write_f32(&w, KEY("rope.freq_base"), 10000.0f);
    lm_gguf_write_f32(&w, KEY("attention.layer_norm_rms_epsilon"), 1e-5f);
#undef KEY
    ref->arch = arch;
    ref->emb = add_tensor(&w, "token_embd.weight", tied ? wtype : LM_TYPE_Q8_0, E, V, 1.0f, &r);
    ref->out_norm = add_tensor(&w, "output_norm.weight", LM_TYPE_F32, E, 1, 1.0f, &r);
    ref->out = tied ? ref->emb : add_tensor(&w, "output.weight", wtype, E, V, 0.2f, &r);
    for (int l = 0; l < L; l++) {
        struct ref_layer *R = &ref->layers[l];
        char name[64];
#define W(field, suffix, type, ne0, ne1, scale)                              \
    snprintf(name, sizeof name, "blk.%d.%s", l, suffix);                    \
    R->field = add_tensor(&w, name, type, ne0, ne1, scale, &r)
        W(attn_norm, "attn_norm.weight", LM_TYPE_F32, E, 1, 1.0f);
        W(wq, "attn_q.weight", wtype, E, H * HD, 0.15f);
        W(wk, "attn_k.weight", wtype, E, HKV * HD, 0.15f);
        W(wv, "attn_v.weight", wtype, E, HKV * HD, 0.15f);
        W(wo, "attn_output.weight", wtype, H * HD, E, 0.1f);
        W(ffn_norm, "ffn_norm.weight", LM_TYPE_F32, E, 1, 1.0f);
        W(wg, "ffn_gate.weight", wtype, E, FF, 0.1f);
        W(wu, "ffn_up.weight", wtype, E, FF, 0.1f);
        W(wd, "ffn_down.weight", wtype, FF, E, 0.1f);
        R->bq = R->bk = R->bv = R->qn = R->kn = NULL;
        if (arch == 1) {
            W(bq, "attn_q.bias", LM_TYPE_F32, H * HD, 1, 0.5f);
            W(bk, "attn_k.bias", LM_TYPE_F32, HKV * HD, 1, 0.5f);
            W(bv, "attn_v.bias", LM_TYPE_F32, HKV * HD, 1, 0.5f);
        }
        if (arch == 2) {
            W(qn, "attn_q_norm.weight", LM_TYPE_F32, HD, 1, 1.0f);
            W(kn, "attn_k_norm.weight", LM_TYPE_F32, HD, 1, 1.0f);
        }
#undef W
    }
    lm_gguf_writer_finish(&w, file);
    lm_gguf_writer_free(&w);
}

static void free_ref(struct ref_model *ref) {
    if (ref->out != ref->emb) free(ref->out);
    free(ref->emb);
    free(ref->out_norm);
    for (int l = 0; l < L; l++) {
        struct ref_layer *R = &ref->layers[l];
        double *all[] = {R->attn_norm, R->wq, R->wk, R->wv, R->wo, R->bq, R->bk, R->bv, R->qn, R->kn, R->ffn_norm, R->wg, R->wu, R->wd};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
    }
}

static void ref_rmsnorm(double *y, const double *x, const double *w, int n) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    double s = 1.0 / sqrt(ss / n + 1e-5);
    for (int i = 0; i < n; i++) y[i] = x[i] * s * w[i];
}

static void ref_matvec(double *y, const double *w, const double *x, int rows, int cols) {
    for (int r = 0; r < rows; r++) {
        double s = 0;
        for (int c = 0; c < cols; c++) s += w[(size_t)r * cols + c] * x[c];
        y[r] = s;
    }
}

static void ref_rope(double *v, int pos, bool neox) {
    for (int i = 0; i < HD / 2; i++) {
        double theta = pos * pow(10000.0, -2.0 * i / HD);
        int a = neox ? i : 2 * i, b = neox ? i + HD / 2 : 2 * i + 1;
        double x0 = v[a], x1 = v[b];
        v[a] = x0 * cos(theta) - x1 * sin(theta);
        v[b] = x0 * sin(theta) + x1 * cos(theta);
    }
}

/* Logits after the whole sequence, recomputing every position from scratch. */
static void ref_forward(const struct ref_model *m, const int32_t *tok, int n, double *logits) {
    static double x[N_LONG][E], K[L][N_LONG][HKV * HD], Vv[L][N_LONG][HKV * HD];
    double xn[FF], att[H * HD], tmp[FF], g[FF], u[FF], sc[N_LONG];
    LM_ASSERT(n <= N_LONG);
    for (int t = 0; t < n; t++)
        for (int i = 0; i < E; i++) x[t][i] = m->emb[(size_t)tok[t] * E + i];
    for (int l = 0; l < L; l++) {
        const struct ref_layer *R = &m->layers[l];
        static double Q[N_LONG][H * HD];
        for (int t = 0; t < n; t++) {
            ref_rmsnorm(xn, x[t], R->attn_norm, E);
            ref_matvec(Q[t], R->wq, xn, H * HD, E);
            ref_matvec(K[l][t], R->wk, xn, HKV * HD, E);
            ref_matvec(Vv[l][t], R->wv, xn, HKV * HD, E);
            if (R->bq) {
                for (int i = 0; i < H * HD; i++) Q[t][i] += R->bq[i];
                for (int i = 0; i < HKV * HD; i++) K[l][t][i] += R->bk[i], Vv[l][t][i] += R->bv[i];
            }
            for (int h = 0; h < H; h++) {
                if (R->qn) ref_rmsnorm(&Q[t][h * HD], &Q[t][h * HD], R->qn, HD);
                ref_rope(&Q[t][h * HD], t, m->arch != 0);
            }
            for (int h = 0; h < HKV; h++) {
                if (R->kn) ref_rmsnorm(&K[l][t][h * HD], &K[l][t][h * HD], R->kn, HD);
                ref_rope(&K[l][t][h * HD], t, m->arch != 0);
            }
        }
        for (int t = 0; t < n; t++) {
            for (int h = 0; h < H; h++) {
                int kvh = h / (H / HKV);
                double mx = -1e300, sum = 0;
                for (int p = 0; p <= t; p++) {
                    double s = 0;
                    for (int i = 0; i < HD; i++) s += Q[t][h * HD + i] * K[l][p][kvh * HD + i];
                    sc[p] = s / sqrt((double)HD);
                    mx = sc[p] > mx ? sc[p] : mx;
                }
                for (int p = 0; p <= t; p++) sum += (sc[p] = exp(sc[p] - mx));
                for (int i = 0; i < HD; i++) {
                    double s = 0;
                    for (int p = 0; p <= t; p++) s += sc[p] / sum * Vv[l][p][kvh * HD + i];
                    att[h * HD + i] = s;
                }
            }
            ref_matvec(tmp, R->wo, att, E, H * HD);
            for (int i = 0; i < E; i++) x[t][i] += tmp[i];
            ref_rmsnorm(xn, x[t], R->ffn_norm, E);
            ref_matvec(g, R->wg, xn, FF, E);
            ref_matvec(u, R->wu, xn, FF, E);
            for (int i = 0; i < FF; i++) g[i] = g[i] / (1 + exp(-g[i])) * u[i];
            ref_matvec(tmp, R->wd, g, E, FF);
            for (int i = 0; i < E; i++) x[t][i] += tmp[i];
        }
    }
    ref_rmsnorm(xn, x[n - 1], m->out_norm, E);
    ref_matvec(logits, m->out, xn, V, E);
}

/* A NaN counts as infinitely far (fmax would drop it; gcc 12.2 for AArch64
 * also crashes vectorizing that fmax reduction). */
/* The model in a file that build() made; a failure is the test's. */
static bool load(const struct lm_buf *file, struct lm_gguf *g, struct lm_model *m, const char *what) {
    struct lm_err err;
    if (lm_gguf_parse(g, file->data, file->len, &err) == 0 && lm_model_from_gguf(m, g, &err) == 0) return true;
    test_fail(__FILE__, __LINE__, "%s: %s", what, err.msg);
    return false;
}

static double max_abs_diff(const float *a, const double *b, int n) {
    double m = 0;
    for (int i = 0; i < n; i++) {
        const double e = fabs(a[i] - b[i]);
        if (!(e <= m)) m = isnan(e) ? INFINITY : e;
    }
    return m;
}

/* Tolerance on logits of magnitude ~1: the KV cache is f16 (about 1e-3
 * relative), activations are rounded to bf16 (8 significant bits, 4e-3
 * relative) for bf16 weights and quantized to 8 bits for quantized ones. */
static double tolerance(enum lm_type t) {
    return t == LM_TYPE_F32 || t == LM_TYPE_F16 ? 5e-3 : t == LM_TYPE_BF16 ? 2e-2 : 6e-2;
}

static int check(int arch, enum lm_type wtype, bool tied, int n_threads) {
    struct lm_buf file = {0};
    struct ref_model ref;
    build(&file, &ref, arch, wtype, tied);
    struct lm_gguf g;
    struct lm_model m;
    struct lm_ctx c;
    struct lm_err err;
    struct lm_pool *pool = lm_pool_create(n_threads);
    int32_t tok[N_TOK] = {3, 17, 0, 47, 9, 9, 30};
    double want[V];
    ref_forward(&ref, tok, N_TOK, want);
    const char *tname = lm_type_get(wtype)->name;
    char what[32];
    snprintf(what, sizeof what, "arch %d %s", arch, tname);
    if (load(&file, &g, &m, what)) {
        /* The whole prompt as one batch. */
        EXPECT_EQ_INT(lm_ctx_init(&c, &m, pool, 32, 16, &err), 0);
        EXPECT_EQ_INT(lm_forward(&c, tok, N_TOK, 0, &err), 0);
        double d = max_abs_diff(c.logits, want, V);
        if (d > tolerance(wtype))
            test_fail(__FILE__, __LINE__, "arch %d %s batch: max |logit diff| %g > %g", arch, tname, d, tolerance(wtype));
        /* The same tokens one at a time through the cache. */
        for (int t = 0; t < N_TOK; t++) EXPECT_EQ_INT(lm_forward(&c, &tok[t], 1, t, &err), 0);
        d = max_abs_diff(c.logits, want, V);
        if (d > tolerance(wtype))
            test_fail(__FILE__, __LINE__, "arch %d %s one by one: max |logit diff| %g > %g", arch, tname, d, tolerance(wtype));
        if (test_verbose) fprintf(stderr, "  arch %d %-5s max |diff| %.2e\n", arch, tname, d);
        /* Out-of-range requests are errors, not crashes. */
        EXPECT_EQ_INT(lm_forward(&c, tok, 1, 32, &err), -1);
        EXPECT_CONTAINS(err.msg, "do not fit in the context of 32");
        int32_t bad = V;
        EXPECT_EQ_INT(lm_forward(&c, &bad, 1, 0, &err), -1);
        EXPECT_CONTAINS(err.msg, "outside the vocabulary");
        lm_ctx_free(&c);
        lm_model_free(&m);
    }
    lm_pool_free(pool);
    free_ref(&ref);
    lm_buf_free(&file);
    return 0;
}

static const enum lm_type formats[] = {LM_TYPE_F32, LM_TYPE_F16, LM_TYPE_BF16, LM_TYPE_Q8_0, LM_TYPE_Q4_0, LM_TYPE_Q4_1,
                                       LM_TYPE_Q5_0, LM_TYPE_Q5_1, LM_TYPE_Q4_K, LM_TYPE_Q5_K, LM_TYPE_Q6_K, LM_TYPE_Q2_K,
                                       LM_TYPE_Q3_K};

TEST(model_matches_reference_every_format) {
    int n_checked = 0;
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
        const struct lm_type_traits *t = lm_type_get(formats[i]);
        if (!t->vec_dot) continue;
        LM_ASSERT(formats[i] == LM_TYPE_F32 || t->from_f32);
        check(0, formats[i], false, 2);
        n_checked++;
    }
    EXPECT(n_checked >= 11); /* F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K Q5_K Q6_K */
    return 0;
}

TEST(model_matches_reference_archs) {
    check(0, LM_TYPE_F32, true, 1); /* tied output, single thread */
    check(1, LM_TYPE_F32, false, 2);
    check(2, LM_TYPE_F32, false, 2);
    check(1, LM_TYPE_Q8_0, false, 3);
    check(2, LM_TYPE_Q4_K, false, 2);
    return 0;
}

/* Models we cannot run are refused by name, before any inference. */
TEST(model_refuses_unsupported) {
    struct lm_err err;
    struct lm_gguf g;
    struct lm_model m;
    struct lm_buf file = {0};
    struct lm_gguf_writer w;
    lm_gguf_writer_init(&w);
    lm_gguf_write_str(&w, "general.architecture", "mamba");
    lm_gguf_writer_finish(&w, &file);
    lm_gguf_writer_free(&w);
    EXPECT_EQ_INT(lm_gguf_parse(&g, file.data, file.len, &err), 0);
    EXPECT_EQ_INT(lm_model_from_gguf(&m, &g, &err), -1);
    EXPECT_CONTAINS(err.msg, "architecture 'mamba' is not supported");

    /* A weight in a format without kernels (iq2_xxs: sizes only). */
    struct ref_model ref;
    build(&file, &ref, 0, LM_TYPE_F32, false);
    free_ref(&ref);
    EXPECT_EQ_INT(lm_gguf_parse(&g, file.data, file.len, &err), 0);
    for (uint64_t i = 0; i < g.n_tensors; i++) /* retag blk.0.attn_q.weight: 256x256 f32 bytes hold enough */
        if (lm_gguf_str_eq(g.tensors[i].name, "blk.0.attn_q.weight")) g.tensors[i].t.type = LM_TYPE_IQ2_XXS;
    EXPECT_EQ_INT(lm_model_from_gguf(&m, &g, &err), -1);
    EXPECT_CONTAINS(err.msg, "tensor 'blk.0.attn_q.weight' has format iq2_xxs, which lm does not support");

    /* Hyperparameters that do not match the tensors. */
    const char *bad[][2] = {{"llama.attention.head_count", "6"}, {"llama.block_count", "3"}, {"llama.embedding_length", "128"}};
    const char *msgs[] = {"embedding length 256 is not divisible by 6 heads", "tensor 'blk.2.attn_norm.weight' is missing",
                          "tensor 'token_embd.weight' has shape [256, 48] and format q8_0; expected [128, n_vocab]"};
    for (int k = 0; k < 3; k++) {
        build(&file, &ref, 0, LM_TYPE_F32, false);
        free_ref(&ref);
        EXPECT_EQ_INT(lm_gguf_parse(&g, file.data, file.len, &err), 0);
        /* Patch the u32 value in place: the writer put it right after the key. */
        int64_t idx = lm_gguf_find_key(&g, bad[k][0]);
        EXPECT(idx >= 0);
        struct lm_gguf_value *v = &g.kv[idx].value;
        v->u64 = (uint64_t)atoi(bad[k][1]);
        EXPECT_EQ_INT(lm_model_from_gguf(&m, &g, &err), -1);
        EXPECT_CONTAINS(err.msg, msgs[k]);
    }
    lm_buf_free(&file);
    return 0;
}

/* A prompt longer than one attention tile of queries and one chunk of
 * positions, as one batch and in uneven batches after a cached prefix. */
TEST(model_long_prompt) {
    struct lm_buf file = {0};
    struct ref_model ref;
    build(&file, &ref, 0, LM_TYPE_F32, false);
    int32_t tok[N_LONG];
    for (int t = 0; t < N_LONG; t++) tok[t] = (t * 31 + 7) % V;
    static double want[V];
    ref_forward(&ref, tok, N_LONG, want);
    struct lm_gguf g;
    struct lm_model m;
    struct lm_ctx c;
    struct lm_err err;
    struct lm_pool *pool = lm_pool_create(2);
    if (load(&file, &g, &m, "tiny model")) {
        EXPECT_EQ_INT(lm_ctx_init(&c, &m, pool, N_LONG + 5, N_LONG, &err), 0);
        EXPECT_EQ_INT(lm_forward(&c, tok, N_LONG, 0, &err), 0);
        double d = max_abs_diff(c.logits, want, V);
        if (d > tolerance(LM_TYPE_F32)) test_fail(__FILE__, __LINE__, "one batch: max |logit diff| %g", d);
        for (int t = 0; t < N_LONG; t += 37)
            EXPECT_EQ_INT(lm_forward(&c, tok + t, N_LONG - t < 37 ? N_LONG - t : 37, t, &err), 0);
        d = max_abs_diff(c.logits, want, V);
        if (d > tolerance(LM_TYPE_F32)) test_fail(__FILE__, __LINE__, "batches of 37: max |logit diff| %g", d);
        lm_ctx_free(&c);
        lm_model_free(&m);
    }
    lm_pool_free(pool);
    free_ref(&ref);
    lm_buf_free(&file);
    return 0;
}

/* The logits do not depend on the number of threads, nor change from run to
 * run: each output element is computed by one task whose arithmetic does not
 * depend on how the work was split. A prompt of two batches, then tokens one
 * at a time, 50 runs for each of 1-4 threads (5 under the sanitizers,
 * LM_TEST_QUICK), compared bit for bit. */
TEST(model_logits_independent_of_threads) {
    enum { N_PROMPT = 100, N_GEN = 3 };
    const int runs = getenv("LM_TEST_QUICK") ? 5 : 50;
    static const enum lm_type fmts[] = {LM_TYPE_F32, LM_TYPE_F16, LM_TYPE_Q8_0, LM_TYPE_Q4_1, LM_TYPE_Q4_K};
    int32_t tok[N_PROMPT + N_GEN];
    for (int t = 0; t < N_PROMPT + N_GEN; t++) tok[t] = (t * 13 + 5) % V;
    for (size_t f = 0; f < sizeof fmts / sizeof *fmts; f++) {
        struct lm_buf file = {0};
        struct ref_model ref;
        build(&file, &ref, 2, fmts[f], false);
        struct lm_gguf g;
        struct lm_model m;
        struct lm_err err;
        if (!load(&file, &g, &m, lm_type_get(fmts[f])->name)) {
            free_ref(&ref);
            lm_buf_free(&file);
            continue;
        }
        static float want[1 + N_GEN][V], got[1 + N_GEN][V];
        int mismatches = 0;
        for (int nth = 1; nth <= 4; nth++) {
            struct lm_pool *pool = lm_pool_create(nth);
            for (int run = 0; run < runs; run++) {
                struct lm_ctx c;
                if (lm_ctx_init(&c, &m, pool, N_PROMPT + N_GEN, 64, &err) < 0) {
                    test_fail(__FILE__, __LINE__, "%s", err.msg);
                    break;
                }
                int ok = lm_forward(&c, tok, 64, 0, &err) == 0 && lm_forward(&c, tok + 64, N_PROMPT - 64, 64, &err) == 0;
                memcpy(got[0], c.logits, sizeof got[0]);
                for (int t = 0; ok && t < N_GEN; t++) {
                    ok = lm_forward(&c, tok + N_PROMPT + t, 1, N_PROMPT + t, &err) == 0;
                    memcpy(got[1 + t], c.logits, sizeof got[0]);
                }
                lm_ctx_free(&c);
                if (!ok) {
                    test_fail(__FILE__, __LINE__, "%s", err.msg);
                    break;
                }
                if (nth == 1 && run == 0) memcpy(want, got, sizeof want);
                else if (memcmp(want, got, sizeof want) != 0 && mismatches++ == 0)
                    test_fail(__FILE__, __LINE__, "%s: logits with %d threads (run %d) differ from 1 thread",
                              lm_type_get(fmts[f])->name, nth, run);
            }
            lm_pool_free(pool);
        }
        lm_model_free(&m);
        free_ref(&ref);
        lm_buf_free(&file);
    }
    return 0;
}

/* Logits for every position of a batch (perplexity), each against the
 * reference run over the prefix that ends there, and a run of rows in the
 * middle of a later batch: the same values lm_forward gives for the last. */
TEST(model_logits_every_position) {
    enum { N = 20 };
    struct lm_buf file = {0};
    struct ref_model ref;
    build(&file, &ref, 0, LM_TYPE_Q8_0, false);
    int32_t tok[N];
    for (int t = 0; t < N; t++) tok[t] = (t * 17 + 3) % V;
    struct lm_gguf g;
    struct lm_model m;
    struct lm_ctx c;
    struct lm_err err;
    struct lm_pool *pool = lm_pool_create(2);
    if (load(&file, &g, &m, "tiny model")) {
        static float rows[N][V];
        static double want[V];
        EXPECT_EQ_INT(lm_ctx_init(&c, &m, pool, 32, N, &err), 0);
        EXPECT_EQ_INT(lm_forward_logits(&c, tok, N, 0, 0, N, rows[0], &err), 0);
        for (int t = 0; t < N; t++) {
            ref_forward(&ref, tok, t + 1, want);
            double d = max_abs_diff(rows[t], want, V);
            if (d > tolerance(LM_TYPE_Q8_0)) test_fail(__FILE__, __LINE__, "position %d: max |logit diff| %g", t, d);
        }
        /* Tokens 8..N in one batch after a cached prefix, rows 3..6 of it. */
        EXPECT_EQ_INT(lm_forward(&c, tok, 8, 0, &err), 0);
        EXPECT_EQ_INT(lm_forward_logits(&c, tok + 8, N - 8, 8, 3, 4, rows[0], &err), 0);
        for (int t = 0; t < 4; t++) {
            ref_forward(&ref, tok, 8 + 3 + t + 1, want);
            double d = max_abs_diff(rows[t], want, V);
            if (d > tolerance(LM_TYPE_Q8_0)) test_fail(__FILE__, __LINE__, "row %d after a prefix: max |logit diff| %g", t, d);
        }
        /* lm_forward's last row is lm_forward_logits's, bit for bit. */
        EXPECT_EQ_INT(lm_forward(&c, tok, N, 0, &err), 0);
        EXPECT_EQ_INT(lm_forward_logits(&c, tok, N, 0, N - 1, 1, rows[0], &err), 0);
        EXPECT(memcmp(rows[0], c.logits, sizeof rows[0]) == 0);
        EXPECT_EQ_INT(lm_forward_logits(&c, tok, 4, 0, 2, 3, rows[0], &err), -1);
        EXPECT_CONTAINS(err.msg, "asked of a batch of 4");
        EXPECT_EQ_INT(lm_forward_logits(&c, tok, 4, 0, 0, 0, NULL, &err), 0); /* no rows: the cache only */
        lm_ctx_free(&c);
        lm_model_free(&m);
    }
    lm_pool_free(pool);
    free_ref(&ref);
    lm_buf_free(&file);
    return 0;
}

/* Several sequences in one batch (a server's continuous batching): each
 * sequence's logits agree with the reference, and for the formats whose
 * kernels are batch-invariant they are bit for bit those of the same
 * sequence run alone in the same chunks, whatever rows share its batches.
 * (Not yet f32/f16/bf16, whose batches of 8 rows or more take another
 * summation order, nor the k-quants.) Malformed batches are errors. */
enum { N_SEQ = 3, SEQ_LEN = 12 };

static void seq_tokens(int s, int32_t *tok) {
    for (int t = 0; t < SEQ_LEN; t++) tok[t] = (t * (5 + 2 * s) + 11 * s + 1) % V;
}

/* The batches: sequence s starts at step s with a prompt (4, 9, 6 tokens),
 * then gets one token a step; the rest of a step is other sequences' rows.
 * So a row meets batches of 1 to 10 rows, at different places in them:
 * every kernel path (one row, a few rows, tiles of 8). */
static int seq_chunk(int s, int step, int done) {
    static const int prompt[N_SEQ] = {4, 9, 6};
    if (step < s || done >= SEQ_LEN) return 0;
    return step == s ? prompt[s] : 1;
}

static void check_batched(enum lm_type wtype, bool invariant) {
    struct lm_buf file = {0};
    struct ref_model ref;
    build(&file, &ref, 2, wtype, false);
    struct lm_gguf g;
    struct lm_model m;
    struct lm_ctx c, alone;
    struct lm_err err;
    struct lm_pool *pool = lm_pool_create(2);
    static int32_t tok[N_SEQ][SEQ_LEN];
    static float batched[N_SEQ][SEQ_LEN][V], single[N_SEQ][SEQ_LEN][V];
    static double want[V];
    for (int s = 0; s < N_SEQ; s++) seq_tokens(s, tok[s]);
    const char *tname = lm_type_get(wtype)->name;
    if (!load(&file, &g, &m, tname)) goto out;
    EXPECT_EQ_INT(lm_ctx_init_seqs(&c, &m, pool, N_SEQ, 16, 16, &err), 0);
    EXPECT_EQ_INT(lm_ctx_init(&alone, &m, pool, 16, 16, &err), 0);
    int done[N_SEQ] = {0};
    for (int step = 0; step < SEQ_LEN + N_SEQ; step++) {
        int32_t rt[16], rp[16], rs[16];
        bool rl[16];
        int n = 0;
        /* last sequence first, so rows are not ordered by sequence */
        for (int s = N_SEQ - 1; s >= 0; s--) {
            int k = seq_chunk(s, step, done[s]);
            for (int i = 0; i < k; i++, n++) {
                rt[n] = tok[s][done[s] + i], rp[n] = done[s] + i, rs[n] = s;
                rl[n] = i == k - 1;
            }
        }
        if (!n) continue;
        static float out[N_SEQ][V];
        struct lm_batch b = {n, rt, rp, rs, rl};
        EXPECT_EQ_INT(lm_forward_batch(&c, &b, out[0], &err), 0);
        int o = 0;
        for (int s = N_SEQ - 1; s >= 0; s--) {
            int k = seq_chunk(s, step, done[s]);
            if (!k) continue;
            done[s] += k;
            memcpy(batched[s][done[s] - 1], out[o++], sizeof out[0]);
        }
    }
    for (int s = 0; s < N_SEQ; s++) {
        EXPECT_EQ_INT(done[s], SEQ_LEN);
        for (int step = 0, pos = 0; pos < SEQ_LEN; step++) {
            int k = seq_chunk(s, step, pos);
            if (!k) continue;
            EXPECT_EQ_INT(lm_forward(&alone, tok[s] + pos, k, pos, &err), 0);
            pos += k;
            memcpy(single[s][pos - 1], alone.logits, sizeof single[s][0]);
            if (invariant && memcmp(single[s][pos - 1], batched[s][pos - 1], sizeof single[s][0]))
                test_fail(__FILE__, __LINE__, "%s: sequence %d position %d differs from the sequence alone", tname, s,
                          pos - 1);
            ref_forward(&ref, tok[s], pos, want);
            double d = max_abs_diff(batched[s][pos - 1], want, V);
            if (d > tolerance(wtype))
                test_fail(__FILE__, __LINE__, "%s: sequence %d position %d: max |logit diff| %g", tname, s, pos - 1, d);
        }
        /* Where the kernels say each row's bits do not depend on the batch,
         * token by token gives what the chunks gave (lm chat at any -b). */
        for (int pos = 0; lm_model_rows_independent(&m) && pos < SEQ_LEN; pos++) {
            EXPECT_EQ_INT(lm_forward(&alone, tok[s] + pos, 1, pos, &err), 0);
            if (pos == SEQ_LEN - 1 && memcmp(single[s][pos], alone.logits, sizeof single[s][0]))
                test_fail(__FILE__, __LINE__, "%s: sequence %d token by token differs from its chunks", tname, s);
        }
    }
    /* malformed batches */
    int32_t bt[3] = {1, 2, 3}, bp[3] = {0, 1, 2}, bs[3] = {0, 1, 0};
    bool bl[3] = {false, false, true};
    struct lm_batch bad = {3, bt, bp, bs, bl};
    EXPECT_EQ_INT(lm_forward_batch(&c, &bad, batched[0][0], &err), -1);
    EXPECT_CONTAINS(err.msg, "not contiguous");
    bs[1] = 0, bp[2] = 3;
    EXPECT_EQ_INT(lm_forward_batch(&c, &bad, batched[0][0], &err), -1);
    EXPECT_CONTAINS(err.msg, "position 3 after 1");
    bp[2] = 2, bs[0] = bs[1] = bs[2] = N_SEQ;
    EXPECT_EQ_INT(lm_forward_batch(&c, &bad, batched[0][0], &err), -1);
    EXPECT_CONTAINS(err.msg, "sequence 3 of a context of 3");
    bs[0] = bs[1] = bs[2] = 0, bp[0] = 14, bp[1] = 15, bp[2] = 16;
    EXPECT_EQ_INT(lm_forward_batch(&c, &bad, batched[0][0], &err), -1);
    EXPECT_CONTAINS(err.msg, "does not fit in the context of 16");
    lm_ctx_free(&c);
    lm_ctx_free(&alone);
    lm_model_free(&m);
out:
    lm_pool_free(pool);
    free_ref(&ref);
    lm_buf_free(&file);
}

TEST(model_batch_of_sequences) {
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
        enum lm_type t = formats[i];
        bool invariant = t == LM_TYPE_Q8_0 || t == LM_TYPE_Q4_0 || t == LM_TYPE_Q4_1 || t == LM_TYPE_Q5_0 || t == LM_TYPE_Q5_1;
        if (lm_type_get(t)->vec_dot) check_batched(t, invariant);
    }
    return 0;
}
