/* Perplexity and KL divergence (lm perplexity): the scores against
 * computations written plainly here on tiny models (hostile_files.h's good
 * ones), the logits file written and read back, that file refused in every
 * hostile shape without reading out of bounds, and the command's exit codes
 * and JSON. */
#include "test.h"

#include "hostile_files.h"
#include "lm/json.h"
#include "lm/perplexity.h"
#include "lm/tokenizer.h"

#include <stdlib.h>
#include <sys/stat.h>

/* A good model of hostile_files.h, loaded from memory (file must outlive m). */
static bool load_good(const char *name, struct lm_buf *file, struct lm_model *m, struct lm_tokenizer *tok) {
    struct lm_err err;
    for (size_t i = 0; i < n_hostile_files; i++)
        if (!strcmp(hostile_files[i].name, name)) hostile_files[i].build(file);
    struct lm_gguf g;
    if (lm_gguf_parse(&g, file->data, file->len, &err) < 0 || lm_model_from_gguf(m, &g, &err) < 0 ||
        (tok && lm_tokenizer_load(tok, &m->gguf, &err) < 0)) {
        test_fail(__FILE__, __LINE__, "%s: %s", name, err.msg);
        return false;
    }
    return true;
}

static void fill_tokens(int32_t *t, int n, int n_vocab, uint64_t seed) {
    for (int i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        t[i] = (int32_t)((seed >> 33) % (uint64_t)n_vocab);
    }
}

/* -log softmax(x)[k] in double, the plain way. */
static double ref_nll(const float *x, int n, int k) {
    double mx = x[0], s = 0;
    for (int i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    for (int i = 0; i < n; i++) s += exp((double)x[i] - mx);
    return -((double)x[k] - mx - log(s));
}

static double ref_ppl(const double *nll, int n, double *se) {
    double sum = 0, sum2 = 0;
    for (int i = 0; i < n; i++) sum += nll[i], sum2 += nll[i] * nll[i];
    double mean = sum / n, var = sum2 / n - mean * mean;
    *se = exp(mean) * sqrt(var / (n - 1));
    return exp(mean);
}

/* With every layer's matrices zeroed, attention and FFN add nothing: the
 * logits at a position depend only on its token, rmsnorm(emb[t]) * norm
 * against the (tied) embedding rows, which the test computes by hand. */
TEST(perplexity_bigram_by_hand) {
    enum { N_CTX = 12, N_TOK = 40 }; /* three windows and 4 tokens left over */
    struct lm_buf file = {0};
    struct lm_model m;
    if (!load_good("good-llama-bpe", &file, &m, NULL)) return 0;
    for (uint64_t i = 0; i < m.gguf.n_tensors; i++) {
        struct lm_gguf_tensor *t = &m.gguf.tensors[i];
        if (t->t.n_dims == 2 && lm_gguf_str_eq(t->name, "token_embd.weight") == 0) memset((void *)t->t.data, 0, t->size);
    }
    const struct lm_hparams *hp = &m.hp;
    int V = hp->n_vocab, E = hp->n_embd;
    float *emb = malloc(sizeof *emb * (size_t)V * (size_t)E);
    lm_type_get(m.tok_embd->type)->to_f32(m.tok_embd->data, emb, (int64_t)V * E);
    const float *norm = m.output_norm->data;
    int32_t tok[N_TOK];
    fill_tokens(tok, N_TOK, V, 7);
    double nll[3 * (N_CTX - 1 - N_CTX / 2)];
    int n = 0;
    float *logits = malloc(sizeof *logits * (size_t)V);
    for (int c = 0; c < 3; c++)
        for (int p = N_CTX / 2; p < N_CTX - 1; p++) {
            const float *x = emb + (size_t)tok[c * N_CTX + p] * E;
            double ss = 0;
            for (int i = 0; i < E; i++) ss += (double)x[i] * x[i];
            double s = 1 / sqrt(ss / E + hp->norm_eps);
            for (int v = 0; v < V; v++) {
                double d = 0;
                for (int i = 0; i < E; i++) d += x[i] * s * norm[i] * emb[(size_t)v * E + i];
                logits[v] = (float)d;
            }
            nll[n++] = ref_nll(logits, V, tok[c * N_CTX + p + 1]);
        }
    double se, want = ref_ppl(nll, n, &se);
    struct lm_pool *pool = lm_pool_create(2);
    struct lm_ctx c;
    struct lm_err err;
    struct lm_ppl_result r;
    struct lm_ppl_opts o = {.n_ctx = N_CTX, .bos = -1};
    EXPECT_EQ_INT(lm_ctx_init(&c, &m, pool, N_CTX, N_CTX, &err), 0);
    EXPECT_EQ_INT(lm_ppl_n_chunks(&o, N_TOK), 3);
    EXPECT_EQ_INT(lm_perplexity(&c, tok, N_TOK, &o, NULL, &r, &err), 0);
    double ppl, ppl_err;
    lm_ppl_estimate(&r, &ppl, &ppl_err);
    EXPECT_EQ_INT(r.n_chunk, 3);
    EXPECT_EQ_INT(r.count, n);
    EXPECT_NEAR(ppl, want, want * 1e-3); /* f16 activations against the f16 embedding */
    EXPECT_NEAR(ppl_err, se, se * 1e-2);
    if (test_verbose) fprintf(stderr, "  bigram: PPL %.6f +/- %.6f, by hand %.6f +/- %.6f\n", ppl, ppl_err, want, se);
    /* --chunks, and a text shorter than two windows */
    o.n_chunks = 2;
    EXPECT_EQ_INT(lm_perplexity(&c, tok, N_TOK, &o, NULL, &r, &err), 0);
    EXPECT_EQ_INT(r.n_chunk, 2);
    EXPECT_EQ_INT(lm_perplexity(&c, tok, 2 * N_CTX - 1, &o, NULL, &r, &err), -1);
    EXPECT_CONTAINS(err.msg, "needs at least 24");
    lm_ctx_free(&c);
    lm_pool_free(pool);
    free(logits);
    free(emb);
    lm_model_free(&m);
    lm_buf_free(&file);
    return 0;
}

/* A model whose attention matters (two layers), with BOS: the windows
 * against lm_forward run one token at a time from position 0 of each, the
 * first token replaced by BOS, scored in double here. The same figures in
 * batches smaller than the window, and with any number of threads. */
TEST(perplexity_windows_bos_batches) {
    enum { N_CTX = 16, N_TOK = 53, N_CHUNK = 3, N_SCORED = N_CTX - 1 - N_CTX / 2 };
    struct lm_buf file = {0};
    struct lm_model m;
    struct lm_tokenizer tok;
    if (!load_good("good-qwen2-spm", &file, &m, &tok)) return 0;
    EXPECT(tok.add_bos && tok.bos >= 0);
    int V = m.hp.n_vocab;
    int32_t ids[N_TOK];
    fill_tokens(ids, N_TOK, V, 11);
    for (int k = 0; k < N_CHUNK; k++) /* windows that do not start with BOS already */
        if (ids[k * N_CTX] == tok.bos) ids[k * N_CTX] = tok.bos + 1;
    struct lm_pool *pool1 = lm_pool_create(1), *pool3 = lm_pool_create(3);
    struct lm_ctx c;
    struct lm_err err;
    double nll[N_CHUNK * N_SCORED];
    int n = 0;
    EXPECT_EQ_INT(lm_ctx_init(&c, &m, pool1, N_CTX, 1, &err), 0);
    for (int k = 0; k < N_CHUNK; k++)
        for (int p = 0; p < N_CTX - 1; p++) {
            int32_t t = p == 0 ? tok.bos : ids[k * N_CTX + p];
            EXPECT_EQ_INT(lm_forward(&c, &t, 1, p, &err), 0);
            if (p >= N_CTX / 2) nll[n++] = ref_nll(c.logits, V, ids[k * N_CTX + p + 1]);
        }
    lm_ctx_free(&c);
    double se, want = ref_ppl(nll, n, &se);
    struct { int batch; struct lm_pool *pool; } runs[] = {{N_CTX, pool1}, {5, pool1}, {3, pool3}, {N_CTX, pool3}};
    double first_nll = 0;
    for (size_t i = 0; i < sizeof runs / sizeof *runs; i++) {
        struct lm_ppl_result r;
        struct lm_ppl_opts o = {.n_ctx = N_CTX, .bos = tok.bos};
        EXPECT_EQ_INT(lm_ctx_init(&c, &m, runs[i].pool, N_CTX, runs[i].batch, &err), 0);
        EXPECT_EQ_INT(lm_perplexity(&c, ids, N_TOK, &o, NULL, &r, &err), 0);
        lm_ctx_free(&c);
        double ppl, ppl_err;
        lm_ppl_estimate(&r, &ppl, &ppl_err);
        EXPECT_EQ_INT(r.count, N_CHUNK * N_SCORED);
        EXPECT_NEAR(ppl, want, want * 1e-4);
        EXPECT_NEAR(ppl_err, se, se * 1e-3);
        if (runs[i].batch == N_CTX) { /* the same batches: the same sums, whatever the threads */
            if (i == 0) first_nll = r.nll;
            else EXPECT(r.nll == first_nll);
        }
        if (test_verbose) fprintf(stderr, "  batch %2d: PPL %.6f +/- %.6f, reference %.6f\n", runs[i].batch, ppl, ppl_err, want);
    }
    lm_pool_free(pool1);
    lm_pool_free(pool3);
    lm_tokenizer_free(&tok);
    lm_model_free(&m);
    lm_buf_free(&file);
    return 0;
}

/* The packed record of a hand-computable row (llama.cpp's formula). */
TEST(perplexity_pack_by_hand) {
    const float logits[5] = {0, 1, 2, -20, 2};
    uint16_t rec[10];
    EXPECT_EQ_INT(lm_ppl_record_len(5), 10); /* 4 + 5 + 1 of padding */
    memset(rec, 0xAB, sizeof rec);
    double nll = lm_ppl_pack(5, logits, 1, rec);
    double lse = 2 + log(exp(-2.0) + exp(-1.0) + 1 + exp(-22.0) + 1); /* log sum exp */
    EXPECT_NEAR(nll, lse - 1, 1e-6);
    float scale, min_lp;
    memcpy(&scale, rec, 4);
    memcpy(&min_lp, rec + 2, 4);
    EXPECT_NEAR(scale, 16.0 / 65535, 1e-9); /* the floor is 16 below the top: -14 */
    EXPECT_NEAR(min_lp, -14 - lse, 1e-5);
    EXPECT_EQ_INT(rec[4], 57343); /* 14/16 * 65535 = 57343.1 */
    EXPECT_EQ_INT(rec[5], 61439); /* 15/16 * 65535 = 61439.1 */
    EXPECT_EQ_INT(rec[6], 65535);
    EXPECT_EQ_INT(rec[7], 0);     /* below the floor */
    EXPECT_EQ_INT(rec[8], 65535);
    EXPECT_EQ_INT(rec[9], 0);     /* padding */
    for (int i = 0; i < 5; i++)   /* what a reader recovers: within half a step, or the floor */
        if (i != 3) EXPECT_NEAR(min_lp + scale * rec[4 + i], logits[i] - lse, scale);
    EXPECT_NEAR(lm_ppl_nll(5, logits, 1), lse - 1, 1e-6);
    const float flat[4] = {3, 3, 3, 3}; /* all equal: no range to spread */
    EXPECT_NEAR(lm_ppl_pack(4, flat, 0, rec), log(4.0), 1e-6);
    memcpy(&scale, rec, 4);
    EXPECT(scale == 0 && rec[4] == 0 && rec[7] == 0);

    /* Against itself the divergence is the packing's error only, and a
     * record that puts another token on top is counted. */
    struct lm_kld_token t;
    lm_ppl_pack(5, logits, 1, rec);
    lm_kld_score(5, logits, rec, 1, &t);
    EXPECT(fabs(t.kld) < 1e-5 && t.same_top && fabs(t.p_diff) < 1e-5);
    EXPECT_NEAR(t.nll, t.nll_base, 1e-4);
    const float other[5] = {0, 3, 2, -20, 2};
    lm_kld_score(5, other, rec, 1, &t);
    EXPECT(!t.same_top && t.kld > 0.1 && t.p_diff > 0.3);
    return 0;
}

TEST(perplexity_statistics) {
    const float v[5] = {1, 2, 3, 4, 5}, w[4] = {1, 2, 4, 8};
    EXPECT_NEAR(lm_percentile(v, 5, 0.5f), 3, 1e-6);
    EXPECT_NEAR(lm_percentile(v, 5, 0.9f), 4.6, 1e-6);
    EXPECT_NEAR(lm_percentile(v, 5, 0.0f), 1, 0);
    EXPECT_NEAR(lm_percentile(v, 5, 1.0f), 5, 0);
    EXPECT_NEAR(lm_median(v, 5), 3, 0);
    EXPECT_NEAR(lm_median(w, 4), 3, 0);
    EXPECT_NEAR(lm_percentile(w, 1, 0.99f), 1, 0);
    /* 20 positions: nll 1 and 2 alternately, base 1.5 throughout, KLD i/100 */
    struct lm_kld_sums s = {0};
    for (int i = 0; i < 20; i++) {
        double a = i % 2 ? 2 : 1, k = i / 100.0;
        s.nll += a, s.nll2 += a * a, s.nll_base += 1.5, s.nll_base2 += 2.25, s.nll_nll_base += a * 1.5;
        s.kld += k, s.kld2 += k * k, s.count++, s.n_same_top += i < 15;
    }
    struct lm_kld_stats st;
    lm_kld_stats(&s, &st);
    EXPECT_NEAR(st.ppl, exp(1.5), 1e-9);
    EXPECT_NEAR(st.ppl_unc, exp(1.5) * sqrt(0.25 / 19), 1e-9);
    EXPECT_NEAR(st.ppl_base, exp(1.5), 1e-9);
    EXPECT_NEAR(st.ratio, 1, 1e-9);
    EXPECT_NEAR(st.kld, 0.095, 1e-12);
    EXPECT_NEAR(st.same_top, 0.75, 1e-12);
    EXPECT_NEAR(st.same_top_unc, sqrt(0.75 * 0.25 / 19), 1e-12);
    return 0;
}

/* Writes a logits file of n_chunk windows of the model over ids and checks
 * what comes back: header, tokens, records, and KL against itself. */
TEST(perplexity_logits_file_round_trip) {
    enum { N_CTX = 10, N_TOK = 35 };
    struct lm_buf file = {0};
    struct lm_model m;
    if (!load_good("good-llama-bpe", &file, &m, NULL)) return 0;
    int V = m.hp.n_vocab;
    int32_t ids[N_TOK];
    fill_tokens(ids, N_TOK, V, 3);
    struct lm_pool *pool = lm_pool_create(2);
    struct lm_ctx c;
    struct lm_err err;
    struct lm_ppl_opts o = {.n_ctx = N_CTX, .bos = -1};
    EXPECT_EQ_INT(lm_ctx_init(&c, &m, pool, N_CTX, 4, &err), 0);
    const char *path = test_tmp_path(".logits");
    char saved[512];
    snprintf(saved, sizeof saved, "%s", path);
    struct lm_logits_file lf;
    struct lm_ppl_result r, plain;
    int n_chunk = lm_ppl_n_chunks(&o, N_TOK);
    EXPECT_EQ_INT(lm_logits_create(&lf, saved, N_CTX, V, n_chunk, ids, &err), 0);
    EXPECT_EQ_INT(lm_perplexity(&c, ids, N_TOK, &o, &lf, &r, &err), 0);
    EXPECT_EQ_INT(lm_logits_close(&lf, &err), 0);
    EXPECT_EQ_INT(lm_perplexity(&c, ids, N_TOK, &o, NULL, &plain, &err), 0);
    EXPECT_NEAR(r.nll, plain.nll, 1e-4); /* float against double steps of llama.cpp's two paths */
    struct stat st;
    size_t nv = lm_ppl_record_len(V), n_scored = N_CTX - 1 - N_CTX / 2;
    EXPECT(stat(saved, &st) == 0 && (size_t)st.st_size == 20 + 4 * (size_t)(3 * N_CTX) + 3 * n_scored * nv * 2);

    EXPECT_EQ_INT(lm_logits_open(&lf, saved, &err), 0);
    EXPECT(lf.n_ctx == N_CTX && lf.n_vocab == V && lf.n_chunk == 3 && lf.n_scored == (int)n_scored && lf.nv == nv);
    EXPECT(memcmp(lf.tokens, ids, sizeof(int32_t) * 3 * N_CTX) == 0);
    /* The first record is the pack of the logits at position n_ctx/2 of window 0. */
    uint16_t *rec = malloc(sizeof *rec * nv), *want = malloc(sizeof *want * nv);
    float *logits = malloc(sizeof *logits * 3 * (size_t)V);
    EXPECT_EQ_INT(lm_logits_read(&lf, rec, 1, &err), 0);
    /* the run's batches: 0..3, then 4..7 with the logits of 5..7 (the
     * float formats' rows need not come out alike in other batches) */
    EXPECT_EQ_INT(lm_forward(&c, ids, 4, 0, &err), 0);
    EXPECT_EQ_INT(lm_forward_logits(&c, ids + 4, 4, 4, N_CTX / 2 - 4, 3, logits, &err), 0);
    lm_ppl_pack(V, logits, ids[N_CTX / 2 + 1], want);
    EXPECT(memcmp(rec, want, sizeof *rec * nv) == 0);
    lm_logits_close(&lf, NULL);

    /* The model against its own saved log-probabilities. */
    struct lm_kld_result kr;
    EXPECT_EQ_INT(lm_logits_open(&lf, saved, &err), 0);
    EXPECT_EQ_INT(lm_kl_divergence(&c, &lf, &o, &kr, &err), 0);
    struct lm_kld_stats ks;
    lm_kld_stats(&kr.sums, &ks);
    EXPECT_EQ_INT(kr.n_chunk, 3);
    EXPECT_EQ_INT(kr.sums.count, 3 * n_scored);
    EXPECT(fabs(ks.kld) < 1e-5);
    EXPECT(ks.same_top >= 11 / 12.0); /* a near tie can round both to the top value (here 1 of 12) */
    EXPECT_NEAR(ks.ppl, ks.ppl_base, ks.ppl * 1e-4);
    EXPECT_NEAR(ks.ppl, exp(plain.nll / (double)plain.count), ks.ppl * 1e-5);
    lm_kld_sort(&kr);
    EXPECT(kr.kld[0] <= kr.kld[kr.sums.count - 1]);
    lm_kld_result_free(&kr);
    lm_logits_close(&lf, NULL);

    /* --chunks 1 over the file reads only its first window. */
    o.n_chunks = 1;
    EXPECT_EQ_INT(lm_logits_open(&lf, saved, &err), 0);
    EXPECT_EQ_INT(lm_kl_divergence(&c, &lf, &o, &kr, &err), 0);
    EXPECT_EQ_INT(kr.sums.count, n_scored);
    lm_kld_result_free(&kr);
    lm_logits_close(&lf, NULL);
    free(rec);
    free(want);
    free(logits);
    lm_ctx_free(&c);
    lm_pool_free(pool);
    lm_model_free(&m);
    lm_buf_free(&file);
    return 0;
}

/* A valid file of 2 windows of 4 tokens over a vocabulary of 3: 20 bytes
 * of header, 32 of tokens, 2 records of 8 uint16. */
static void small_file(struct lm_buf *b) {
    b->len = 0;
    int32_t head[3] = {4, 3, 2}, toks[8] = {0, 1, 2, 1, 0, 0, 2, 2};
    lm_buf_append(b, "_logits_", 8);
    lm_buf_append(b, head, sizeof head);
    lm_buf_append(b, toks, sizeof toks);
    const float logits[3] = {0.5f, -1, 2};
    uint16_t rec[8];
    for (int i = 0; i < 2; i++) {
        lm_ppl_pack(3, logits, 1, rec);
        lm_buf_append(b, rec, sizeof rec);
    }
}

static const char *write_tmp(const void *data, size_t n) {
    const char *path = test_tmp_path(".bin");
    FILE *f = fopen(path, "wb");
    EXPECT(f && fwrite(data, 1, n, f) == n);
    if (f) fclose(f);
    return path;
}

static void patch_i32(struct lm_buf *b, size_t off, int32_t v) { memcpy(b->data + off, &v, 4); }

/* The reader treats its file as hostile: each flaw is one line naming it,
 * never a read past the data (make asan runs this too). */
TEST(perplexity_logits_file_hostile) {
    struct lm_buf b = {0};
    struct lm_logits_file lf;
    struct lm_err err;
    small_file(&b);
    EXPECT_EQ_INT(b.len, 84);
    EXPECT_EQ_INT(lm_logits_open(&lf, write_tmp(b.data, b.len), &err), 0);
    lm_logits_close(&lf, NULL);
    for (size_t n = 0; n < b.len; n++) { /* every truncation */
        if (lm_logits_open(&lf, write_tmp(b.data, n), &err) == 0) {
            test_fail(__FILE__, __LINE__, "truncated to %zu bytes: accepted", n);
            lm_logits_close(&lf, NULL);
        } else if (strchr(err.msg, '\n')) {
            test_fail(__FILE__, __LINE__, "message of more than one line: %s", err.msg);
        }
    }
    EXPECT_EQ_INT(lm_logits_open(&lf, write_tmp(b.data, 50), &err), -1);
    EXPECT_CONTAINS(err.msg, "50 bytes, but its header (n_ctx 4, n_vocab 3, n_chunk 2) says 84 (truncated?)");
    EXPECT_EQ_INT(lm_logits_open(&lf, write_tmp(b.data, 10), &err), -1);
    EXPECT_CONTAINS(err.msg, "too short for a logits file");
    lm_buf_putc(&b, 0); /* one byte too many */
    EXPECT_EQ_INT(lm_logits_open(&lf, write_tmp(b.data, b.len), &err), -1);
    EXPECT_CONTAINS(err.msg, "85 bytes, but its header");
    struct {
        size_t off;
        int32_t v;
        const char *msg;
    } cases[] = {
        {0, 0x58585858, "not a logits file"},                    /* "_log" -> "XXXX" */
        {8, 3, "bad header: n_ctx 3"},                            /* no scored position */
        {8, -4, "bad header: n_ctx -4"},
        {8, INT32_MAX, "bytes, but its header (n_ctx 2147483647"},/* far more than the file */
        {12, 0, "bad header: n_ctx 4, n_vocab 0"},
        {12, (1 << 24) + 1, "bad header"},                        /* past LM_MAX_VOCAB */
        {16, 0, "n_chunk 0"},
        {16, -1, "n_chunk -1"},
        {16, INT32_MAX, "n_chunk 2147483647) says"},              /* refused before allocating */
        {20, -1, "token 0 is -1"},
        {20 + 7 * 4, 3, "token 7 is 3, outside its vocabulary of 3"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        small_file(&b);
        patch_i32(&b, cases[i].off, cases[i].v);
        EXPECT_EQ_INT(lm_logits_open(&lf, write_tmp(b.data, b.len), &err), -1);
        EXPECT_CONTAINS(err.msg, cases[i].msg);
    }
    EXPECT_EQ_INT(lm_logits_open(&lf, "/nonexistent/base.logits", &err), -1);
    EXPECT_CONTAINS(err.msg, "cannot open it");
    EXPECT_EQ_INT(lm_logits_open(&lf, "tests", &err), -1);
    EXPECT_CONTAINS(err.msg, "not a regular file");

    /* A base over another vocabulary than the model's; then records whose
     * scale is NaN or infinite: figures turn NaN, nothing is read astray. */
    struct lm_buf model = {0};
    struct lm_model m;
    if (load_good("good-llama-bpe", &model, &m, NULL)) {
        struct lm_pool *pool = lm_pool_create(2);
        struct lm_ctx c;
        struct lm_kld_result kr;
        struct lm_ppl_opts o = {.n_ctx = 4, .bos = -1};
        EXPECT_EQ_INT(lm_ctx_init(&c, &m, pool, 8, 8, &err), 0);
        small_file(&b);
        EXPECT_EQ_INT(lm_logits_open(&lf, write_tmp(b.data, b.len), &err), 0);
        EXPECT_EQ_INT(lm_kl_divergence(&c, &lf, &o, &kr, &err), -1);
        EXPECT_CONTAINS(err.msg, "log-probabilities over 3 tokens, but the model's vocabulary has 269");
        lm_logits_close(&lf, NULL);
        int V = m.hp.n_vocab;
        size_t nv = lm_ppl_record_len(V);
        int32_t toks[8] = {1, 2, 3, 4, 5, 6, 7, 8};
        uint16_t *recs = calloc(2 * nv, sizeof *recs);
        const float bad[2] = {NAN, INFINITY};
        for (int k = 0; k < 2; k++) memcpy(recs + (size_t)k * nv, &bad[k], 4);
        const char *path = test_tmp_path(".logits");
        EXPECT_EQ_INT(lm_logits_create(&lf, path, 4, V, 2, toks, &err), 0);
        EXPECT_EQ_INT(lm_logits_write(&lf, recs, 2, &err), 0);
        EXPECT_EQ_INT(lm_logits_close(&lf, &err), 0);
        EXPECT_EQ_INT(lm_logits_open(&lf, path, &err), 0);
        EXPECT_EQ_INT(lm_kl_divergence(&c, &lf, &o, &kr, &err), 0);
        EXPECT_EQ_INT(kr.sums.count, 2);
        lm_kld_result_free(&kr);
        lm_logits_close(&lf, NULL);
        free(recs);
        lm_ctx_free(&c);
        lm_pool_free(pool);
        lm_model_free(&m);
    }
    lm_buf_free(&model);
    lm_buf_free(&b);
    return 0;
}

/* ---- the command ------------------------------------------------------------ */

static struct lm_buf out, errout;

/* A tiny model file for the command (byte-level BPE: any text tokenizes). */
static const char *model_file(void) {
    static char path[512];
    if (!path[0]) {
        struct lm_buf b = {0};
        for (size_t i = 0; i < n_hostile_files; i++)
            if (!strcmp(hostile_files[i].name, "good-llama-bpe")) hostile_files[i].build(&b);
        snprintf(path, sizeof path, "%s", write_tmp(b.data, b.len));
        lm_buf_free(&b);
    }
    return path;
}

static int ppl(const char *args) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "perplexity -m '%s' -t 2 %s", model_file(), args);
    return test_run_lm(cmd, NULL, &out, &errout);
}

static const char *text_file(const char *text, size_t n) { return write_tmp(text, n); }

static bool one_line(const struct lm_buf *b) { return b->len > 0 && strchr(b->data, '\n') == b->data + b->len - 1; }

TEST(perplexity_cli_bad_texts) {
    char args[1024];
    static const struct {
        const char *text;
        size_t n;
        const char *msg;
    } bad[] = {
        {"", 0, "the text is empty"},
        {"\n", 1, "the text is empty"},
        {"good text, then \xff bad", 21, "not UTF-8 text (byte 0xFF at offset 16)"},
        {"caf\xc3", 4, "not UTF-8"}, /* cut inside a character */
        {"short text", 10, "tokens; two windows of 8 (-c) need at least 16"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(args, sizeof args, "-c 8 -f '%s'", text_file(bad[i].text, bad[i].n));
        EXPECT_EQ_INT(ppl(args), 3);
        EXPECT_CONTAINS(errout.data, bad[i].msg);
        EXPECT(one_line(&errout));
        EXPECT_EQ_INT(out.len, 0);
    }
    EXPECT_EQ_INT(ppl("-f /nonexistent/text.txt"), 3);
    EXPECT_CONTAINS(errout.data, "/nonexistent/text.txt");
    EXPECT_EQ_INT(ppl("-c 8"), 1); /* no text */
    EXPECT_EQ_INT(ppl("-f x --kl-divergence"), 1);
    EXPECT_CONTAINS(errout.data, "--kl-divergence needs --kl-divergence-base");
    EXPECT_EQ_INT(ppl("-f x -c 3"), 1);
    EXPECT_EQ_INT(ppl("-f x -o xml"), 1);
    /* a hostile base file: exit 3, one line */
    snprintf(args, sizeof args, "--kl-divergence-base '%s' --kl-divergence", text_file("_logits_\x04", 9));
    EXPECT_EQ_INT(ppl(args), 3);
    EXPECT_CONTAINS(errout.data, "too short for a logits file");
    EXPECT(one_line(&errout));
    return 0;
}

static double num(const struct lm_json *j, const char *key) {
    const struct lm_json *v = lm_json_get(j, key);
    if (!v || v->type != LM_JSON_NUMBER) {
        test_fail(__FILE__, __LINE__, "JSON: no number \"%s\"", key);
        return NAN;
    }
    return v->num.f;
}

TEST(perplexity_cli_output) {
    /* 240 words: about 5 windows of 32 tokens; the last newline is dropped */
    struct lm_buf text = {0};
    for (int i = 0; i < 240; i++) lm_buf_printf(&text, "%s%s", i % 7 ? "hello" : "world", i % 11 ? " " : ".\n");
    lm_buf_putc(&text, '\n');
    char tf[512]; /* test_tmp_path's buffer is reused */
    snprintf(tf, sizeof tf, "%s", text_file(text.data, text.len));
    char args[2048];
    snprintf(args, sizeof args, "-c 32 -b 8 -f '%s'", tf);
    EXPECT_EQ_INT(ppl(args), 0);
    const char *last = out.data ? strstr(out.data, "Final estimate: PPL = ") : NULL;
    EXPECT(last && strchr(last, '\n') == out.data + out.len - 1 && strstr(last, " +/- "));
    EXPECT_CONTAINS(errout.data, "[1]");
    EXPECT_CONTAINS(errout.data, "[2]");
    double text_ppl = last ? atof(last + 22) : 0;

    snprintf(args, sizeof args, "-c 32 -f '%s' --chunks 3 -o json", tf);
    EXPECT_EQ_INT(ppl(args), 0);
    struct lm_json j;
    struct lm_err e;
    EXPECT_EQ_INT(lm_json_parse(&j, out.data, out.len, &e), 0);
    EXPECT(j.type == LM_JSON_OBJECT && j.obj.n == 4);
    EXPECT(num(&j, "ppl") > 1 && num(&j, "ppl_error") > 0);
    EXPECT_NEAR(num(&j, "n_chunks"), 3, 0);
    EXPECT_NEAR(num(&j, "n_ctx"), 32, 0);
    lm_json_free(&j);

    /* Save the log-probabilities, then compare the model with itself. */
    const char *base = test_tmp_path(".logits");
    char base_path[512];
    snprintf(base_path, sizeof base_path, "%s", base);
    snprintf(args, sizeof args, "-c 32 -b 8 -f '%s' --kl-divergence-base '%s'", tf, base_path);
    EXPECT_EQ_INT(ppl(args), 0);
    last = out.data ? strstr(out.data, "Final estimate: PPL = ") : NULL;
    EXPECT(last && fabs(atof(last + 22) - text_ppl) <= text_ppl * 1e-4);
    snprintf(args, sizeof args, "--kl-divergence-base '%s' --kl-divergence", base_path);
    EXPECT_EQ_INT(ppl(args), 0);
    EXPECT_CONTAINS(out.data, "Mean    KLD:");
    EXPECT_CONTAINS(out.data, "99.0%   KLD:");
    EXPECT_CONTAINS(out.data, "Same top p:");
    EXPECT_CONTAINS(errout.data, "KL Divergence");
    snprintf(args, sizeof args, "--kl-divergence-base '%s' --kl-divergence -o json", base_path);
    EXPECT_EQ_INT(ppl(args), 0);
    EXPECT_EQ_INT(lm_json_parse(&j, out.data, out.len, &e), 0);
    EXPECT(j.type == LM_JSON_OBJECT && j.obj.n == 10);
    EXPECT_NEAR(num(&j, "ppl"), text_ppl, text_ppl * 1e-3);
    EXPECT_NEAR(num(&j, "ppl_base"), text_ppl, text_ppl * 1e-3);
    EXPECT(num(&j, "ppl_error") > 0);
    EXPECT_NEAR(num(&j, "n_ctx"), 32, 0);
    EXPECT(num(&j, "n_chunks") >= 4);
    EXPECT(fabs(num(&j, "kld_mean")) < 1e-5 && fabs(num(&j, "kld_median")) < 1e-5 && fabs(num(&j, "kld_p99")) < 1e-5);
    EXPECT(num(&j, "same_top_p") >= 0.95); /* near ties may round to the same top value */
    EXPECT(fabs(num(&j, "delta_p_mean")) < 1e-4);
    lm_json_free(&j);
    snprintf(args, sizeof args, "--kl-divergence-base '%s' --kl-divergence -c 64", base_path);
    EXPECT_EQ_INT(ppl(args), 1);
    EXPECT_CONTAINS(errout.data, "holds windows of 32 tokens");
    lm_buf_free(&text);
    return 0;
}

/* A logits file written by llama.cpp's llama-perplexity, for the tiny model
 * of tests/corpus/gguf/good-llama-bpe (hostile_files.h) over
 * tests/data/perplexity/tiny.txt:
 *   llama-perplexity -m tests/corpus/gguf/good-llama-bpe -f tests/data/perplexity/tiny.txt \
 *       -c 16 --kl-divergence-base tests/data/perplexity/llamacpp-tiny.logits
 * which printed "Final estimate: PPL = 256.1741 +/- 20.76695". lm reads it,
 * writes the same header and tokens, and agrees on the scores. */
TEST(perplexity_llamacpp_logits_file) {
    const char *model = "tests/corpus/gguf/good-llama-bpe", *text = "tests/data/perplexity/tiny.txt",
               *golden = "tests/data/perplexity/llamacpp-tiny.logits";
    struct lm_buf want = {0}, got = {0};
    struct lm_err e;
    if (lm_read_file(golden, &want, &e) < 0) {
        test_fail(__FILE__, __LINE__, "%s", e.msg);
        return 0;
    }
    char saved[512], args[2048];
    snprintf(saved, sizeof saved, "%s", test_tmp_path(".logits"));
    snprintf(args, sizeof args, "perplexity -m %s -f %s -c 16 -t 2 --kl-divergence-base '%s'", model, text, saved);
    EXPECT_EQ_INT(test_run_lm(args, NULL, &out, &errout), 0);
    const char *last = out.data ? strstr(out.data, "Final estimate: PPL = ") : NULL;
    EXPECT(last && fabs(atof(last + 22) - 256.1741) < 256.1741 * 1e-4);
    EXPECT_EQ_INT(lm_read_file(saved, &got, &e), 0);
    size_t head = 20 + 3 * 16 * 4; /* 3 windows of 16 tokens */
    EXPECT(got.len == want.len && want.len > head && memcmp(got.data, want.data, head) == 0);
    snprintf(args, sizeof args, "perplexity -m %s -t 2 --kl-divergence-base %s --kl-divergence -o json", model, golden);
    EXPECT_EQ_INT(test_run_lm(args, NULL, &out, &errout), 0);
    struct lm_json j;
    EXPECT_EQ_INT(lm_json_parse(&j, out.data, out.len, &e), 0);
    EXPECT_NEAR(num(&j, "ppl_base"), 256.1741, 256.1741 * 1e-4); /* llama.cpp's, from its saved log-probabilities */
    EXPECT_NEAR(num(&j, "ppl"), 256.1741, 256.1741 * 1e-4);
    EXPECT(fabs(num(&j, "kld_mean")) < 1e-5 && num(&j, "kld_p99") < 1e-4);
    EXPECT(num(&j, "same_top_p") >= 0.95);
    EXPECT_NEAR(num(&j, "n_chunks"), 3, 0);
    lm_json_free(&j);
    lm_buf_free(&want);
    lm_buf_free(&got);
    return 0;
}
