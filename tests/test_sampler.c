/* Sampler tests: each stage on hand-made distributions (expected values
 * computed by hand from the definitions in sampler.h), the shortcuts against
 * a literal implementation of the documented order, the generator against
 * scripts/sampler_rng_ref.py, draw frequencies, and the CLI flags. */
#include "lm/cli.h"
#include "lm/sampler.h"
#include "test.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

/* Params with every stage off and temperature 1: the draw follows the softmax. */
static struct lm_sampler_params plain(void) {
    struct lm_sampler_params p = lm_sampler_params_default();
    p.temp = 1, p.top_k = 0, p.top_p = 1, p.min_p = 0, p.repeat_penalty = 1;
    p.seed = 1, p.seed_set = true;
    return p;
}

static void log_probs(const double *probs, int n, float *logits) {
    for (int i = 0; i < n; i++) logits[i] = (float)log(probs[i]);
}

/* Runs stages 1-5 on logits; the survivors land in ids/p, their count is returned. */
static int run_filter(struct lm_sampler_params prm, float *logits, int n, int32_t *ids, float *p) {
    struct lm_sampler s;
    struct lm_err err;
    if (lm_sampler_init(&s, &prm, n, &err)) {
        test_fail(__FILE__, __LINE__, "init: %s", err.msg);
        return 0;
    }
    int k = lm_sampler_filter(&s, logits);
    for (int i = 0; i < k; i++) ids[i] = s.cand[i].id, p[i] = s.cand[i].p;
    lm_sampler_free(&s);
    return k;
}

TEST(sampler_defaults) {
    struct lm_sampler_params p = lm_sampler_params_default();
    EXPECT(p.temp == 0.8f);
    EXPECT_EQ_INT(p.top_k, 40);
    EXPECT(p.top_p == 0.95f);
    EXPECT(p.min_p == 0.05f);
    EXPECT(p.repeat_penalty == 1.0f);
    EXPECT_EQ_INT(p.repeat_last_n, 64);
    EXPECT(!p.seed_set);
    return 0;
}

TEST(sampler_greedy) {
    struct lm_sampler_params prm = plain();
    prm.temp = 0;
    prm.repeat_penalty = 2;
    prm.seed = 42;
    struct lm_sampler s;
    EXPECT_EQ_INT(lm_sampler_init(&s, &prm, 4, NULL), 0);
    float a[4] = {1, 3, 3, 2};
    EXPECT_EQ_INT(lm_sampler_sample(&s, a), 1); /* tie between 1 and 2: lowest id */
    lm_sampler_accept(&s, 1);
    float b[4] = {1, 3, 3, 2};
    EXPECT_EQ_INT(lm_sampler_sample(&s, b), 2); /* 1 penalized to 1.5 */
    lm_sampler_accept(&s, 2);
    float c[4] = {1, 3, 3, 2};
    EXPECT_EQ_INT(lm_sampler_sample(&s, c), 3); /* 1.5, 1.5, 2 */
    /* Each sample took one number: next is seed 42's fourth (sampler_rng_ref.py). */
    EXPECT(lm_sampler_uniform(&s) == 0x1.d9715a8e0766cp-1);
    lm_sampler_free(&s);
    return 0;
}

TEST(sampler_repeat_penalty) {
    struct lm_sampler_params prm = plain();
    prm.repeat_penalty = 2;
    prm.repeat_last_n = 3;
    struct lm_sampler s;
    EXPECT_EQ_INT(lm_sampler_init(&s, &prm, 5, NULL), 0);
    /* Token 0 appears twice in the window but is penalized once. */
    int32_t hist[] = {4, 0, 1, 0}; /* 4 falls out of the window of 3 */
    for (int i = 0; i < 4; i++) lm_sampler_accept(&s, hist[i]);
    float l[5] = {2, -1, 0.5f, 1, 3};
    lm_sampler_filter(&s, l);
    EXPECT(l[0] == 1.0f);  /* positive: divided */
    EXPECT(l[1] == -2.0f); /* negative: multiplied */
    EXPECT(l[2] == 0.5f);
    EXPECT(l[3] == 1.0f);
    EXPECT(l[4] == 3.0f);
    /* Probabilities follow the penalized logits: softmax of {1,-2,.5,1,3}. */
    double z = exp(1) + exp(-2) + exp(0.5) + exp(1) + exp(3);
    for (int i = 0; i < 5; i++)
        if (s.cand[i].id == 4) EXPECT_NEAR(s.cand[i].p, exp(3) / z, 1e-6);

    /* After reset the history is gone. */
    lm_sampler_reset(&s);
    float m[5] = {2, -1, 0.5f, 1, 3};
    lm_sampler_filter(&s, m);
    EXPECT(m[0] == 2.0f && m[1] == -1.0f);

    /* Penalty 1 leaves logits alone even with history. */
    lm_sampler_free(&s);
    prm.repeat_penalty = 1;
    EXPECT_EQ_INT(lm_sampler_init(&s, &prm, 5, NULL), 0);
    lm_sampler_accept(&s, 0);
    float n1[5] = {2, 0, 0, 0, 0};
    lm_sampler_filter(&s, n1);
    EXPECT(n1[0] == 2.0f);
    lm_sampler_free(&s);
    return 0;
}

TEST(sampler_top_k) {
    const double probs[4] = {0.1, 0.4, 0.2, 0.3};
    float l[4];
    int32_t ids[4];
    float p[4];
    struct lm_sampler_params prm = plain();
    prm.top_k = 2;
    log_probs(probs, 4, l);
    EXPECT_EQ_INT(run_filter(prm, l, 4, ids, p), 2);
    EXPECT_EQ_INT(ids[0], 1);
    EXPECT_EQ_INT(ids[1], 3);
    EXPECT_NEAR(p[0], 0.4 / 0.7, 1e-6);
    EXPECT_NEAR(p[1], 0.3 / 0.7, 1e-6);

    prm.top_k = 1;
    log_probs(probs, 4, l);
    EXPECT_EQ_INT(run_filter(prm, l, 4, ids, p), 1);
    EXPECT_EQ_INT(ids[0], 1);
    EXPECT_NEAR(p[0], 1.0, 1e-6);

    /* Off: k <= 0 or k >= n_vocab. */
    int off[] = {0, -5, 4, 100};
    for (int i = 0; i < 4; i++) {
        prm.top_k = off[i];
        log_probs(probs, 4, l);
        EXPECT_EQ_INT(run_filter(prm, l, 4, ids, p), 4);
    }

    /* Ties at the cut go to the lower id. */
    float t[5] = {1, 2, 2, 2, 0};
    prm.top_k = 2;
    EXPECT_EQ_INT(run_filter(prm, t, 5, ids, p), 2);
    EXPECT_EQ_INT(ids[0], 1);
    EXPECT_EQ_INT(ids[1], 2);
    return 0;
}

TEST(sampler_top_p) {
    /* Sorted: 0.5 (id 1), 0.2 (3), 0.15 (2), 0.1 (4), 0.05 (0); cumulative
     * 0.5, 0.7, 0.85, 0.95, 1. */
    const double probs[5] = {0.05, 0.5, 0.15, 0.2, 0.1};
    struct { float p; int n; } cases[] = {{0.4f, 1}, {0.69f, 2}, {0.71f, 3}, {0.9f, 4}, {0.96f, 5}, {1.0f, 5}, {0.0f, 1}};
    float l[5], p[5];
    int32_t ids[5];
    struct lm_sampler_params prm = plain();
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        prm.top_p = cases[c].p;
        log_probs(probs, 5, l);
        int n = run_filter(prm, l, 5, ids, p);
        EXPECT_EQ_INT(n, cases[c].n);
        if (n == 3) {
            EXPECT_EQ_INT(ids[0], 1);
            EXPECT_EQ_INT(ids[1], 3);
            EXPECT_EQ_INT(ids[2], 2);
            EXPECT_NEAR(p[0], 0.5 / 0.85, 1e-6);
            EXPECT_NEAR(p[2], 0.15 / 0.85, 1e-6);
        }
    }

    /* After top-k 3 the mass is renormalized over {0.5, 0.2, 0.15}:
     * 0.588, 0.824, so p = 0.75 keeps 2 (3 without top-k). */
    prm.top_p = 0.75f;
    log_probs(probs, 5, l);
    EXPECT_EQ_INT(run_filter(prm, l, 5, ids, p), 3);
    prm.top_k = 3;
    log_probs(probs, 5, l);
    EXPECT_EQ_INT(run_filter(prm, l, 5, ids, p), 2);

    /* Uniform over 1000: more than the first sorted batch is needed, and
     * ties keep the lowest ids. */
    enum { N = 1000 };
    static float u[N], up[N];
    static int32_t uid[N];
    prm = plain();
    prm.top_p = 0.5f;
    for (int i = 0; i < N; i++) u[i] = 0;
    EXPECT_EQ_INT(run_filter(prm, u, N, uid, up), 500);
    for (int i = 0; i < 500; i++)
        if (uid[i] != i) {
            EXPECT_EQ_INT(uid[i], i);
            break;
        }
    EXPECT_NEAR(up[0], 1.0 / 500, 1e-7);
    return 0;
}

TEST(sampler_min_p) {
    const double probs[5] = {0.5, 0.2, 0.15, 0.1, 0.05};
    float l[5], p[5];
    int32_t ids[5];
    struct lm_sampler_params prm = plain();
    /* min-p 0.25: threshold 0.125 keeps 0.5, 0.2, 0.15. */
    prm.min_p = 0.25f;
    log_probs(probs, 5, l);
    EXPECT_EQ_INT(run_filter(prm, l, 5, ids, p), 3);
    EXPECT_EQ_INT(ids[0] + ids[1] + ids[2], 0 + 1 + 2);
    /* min-p 0.35: threshold 0.175 keeps 0.5, 0.2. */
    prm.min_p = 0.35f;
    log_probs(probs, 5, l);
    EXPECT_EQ_INT(run_filter(prm, l, 5, ids, p), 2);
    /* min-p 1 keeps only the top; 0 keeps all. */
    prm.min_p = 1;
    log_probs(probs, 5, l);
    EXPECT_EQ_INT(run_filter(prm, l, 5, ids, p), 1);
    EXPECT_EQ_INT(ids[0], 0);
    prm.min_p = 0;
    log_probs(probs, 5, l);
    EXPECT_EQ_INT(run_filter(prm, l, 5, ids, p), 5);
    /* With top-k 4 first (sorted path): still 3. */
    prm.min_p = 0.25f;
    prm.top_k = 4;
    log_probs(probs, 5, l);
    EXPECT_EQ_INT(run_filter(prm, l, 5, ids, p), 3);
    /* Temperature comes after min-p: 0.5 squares the kept probabilities
     * .25, .04, .0225 -> .8, .128, .072. */
    prm.temp = 0.5f;
    log_probs(probs, 5, l);
    EXPECT_EQ_INT(run_filter(prm, l, 5, ids, p), 3);
    EXPECT_NEAR(p[0], 0.8, 1e-6);
    EXPECT_NEAR(p[1], 0.128, 1e-6);
    EXPECT_NEAR(p[2], 0.072, 1e-6);
    return 0;
}

TEST(sampler_temperature) {
    const double probs[3] = {0.5, 0.3, 0.2};
    float l[3], p[3];
    int32_t ids[3];
    struct lm_sampler_params prm = plain();
    /* temp 2: proportional to sqrt(p); temp 0.5: to p^2 (numpy). */
    prm.temp = 2;
    log_probs(probs, 3, l);
    EXPECT_EQ_INT(run_filter(prm, l, 3, ids, p), 3);
    EXPECT_NEAR(p[0], 0.41544591, 1e-6);
    EXPECT_NEAR(p[1], 0.32180302, 1e-6);
    EXPECT_NEAR(p[2], 0.26275107, 1e-6);
    prm.temp = 0.5f;
    log_probs(probs, 3, l);
    run_filter(prm, l, 3, ids, p);
    EXPECT_NEAR(p[0], 0.65789474, 1e-6);
    EXPECT_NEAR(p[1], 0.23684211, 1e-6);
    EXPECT_NEAR(p[2], 0.10526316, 1e-6);
    /* A tiny temperature is still finite: all mass on the top. */
    prm.temp = 1e-20f;
    log_probs(probs, 3, l);
    run_filter(prm, l, 3, ids, p);
    EXPECT_NEAR(p[0], 1.0, 1e-9);
    EXPECT_NEAR(p[1], 0.0, 1e-9);
    return 0;
}

TEST(sampler_nan_and_inf_logits) {
    float p[3];
    int32_t ids[3];
    struct lm_sampler_params prm = plain();
    float a[3] = {NAN, 1, 1};
    EXPECT_EQ_INT(run_filter(prm, a, 3, ids, p), 3);
    for (int i = 0; i < 3; i++) EXPECT_NEAR(p[i], ids[i] == 0 ? 0.0 : 0.5, 1e-6);
    /* Nothing finite: the lowest id, without crashing. */
    float b[3] = {NAN, -INFINITY, NAN};
    EXPECT_EQ_INT(run_filter(prm, b, 3, ids, p), 1);
    EXPECT_EQ_INT(ids[0], 0);
    prm.temp = 0;
    float c[3] = {NAN, -1, NAN};
    EXPECT_EQ_INT(run_filter(prm, c, 3, ids, p), 1);
    EXPECT_EQ_INT(ids[0], 1);
    return 0;
}

/* ---- the shortcuts against the documented order, done literally ---- */

static int cmp_ref(const void *a, const void *b) {
    const struct lm_candidate *x = a, *y = b;
    if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Sort everything, then each stage in turn over what the previous left. */
static int ref_filter(const float *logits, int n_vocab, struct lm_sampler_params prm, struct lm_candidate *c) {
    for (int i = 0; i < n_vocab; i++) c[i] = (struct lm_candidate){i, logits[i], 0};
    qsort(c, (size_t)n_vocab, sizeof *c, cmp_ref);
    int n = n_vocab;
    if (prm.top_k > 0 && prm.top_k < n) n = prm.top_k;
    if (prm.top_p < 1) {
        double z = 0, cum = 0;
        for (int i = 0; i < n; i++) z += exp(c[i].logit - c[0].logit);
        for (int i = 0; i < n; i++) {
            cum += exp(c[i].logit - c[0].logit) / z;
            if (cum >= prm.top_p) {
                n = i + 1;
                break;
            }
        }
    }
    if (prm.min_p > 0) {
        int k = 1;
        while (k < n && c[k].logit >= c[0].logit + logf(prm.min_p)) k++;
        n = k;
    }
    double z = 0;
    for (int i = 0; i < n; i++) z += exp((c[i].logit - c[0].logit) / prm.temp);
    for (int i = 0; i < n; i++) c[i].p = (float)(exp((c[i].logit - c[0].logit) / prm.temp) / z);
    return n;
}

/* Every combination of top-k, top-p and min-p on one set of logits. */
static void check_literal(const float *logits, float *work, struct lm_candidate *ref, int n_vocab) {
    const int ks[] = {0, 40, 700};
    const float ps[] = {1, 0.9f, 0.5f, 0.9999999f};
    const float mins[] = {0, 0.05f, 0.001f};
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 4; b++)
            for (int c = 0; c < 3; c++) {
                struct lm_sampler_params prm = plain();
                prm.top_k = ks[a], prm.top_p = ps[b], prm.min_p = mins[c], prm.temp = 0.7f;
                int n_ref = ref_filter(logits, n_vocab, prm, ref);
                struct lm_sampler s;
                EXPECT_EQ_INT(lm_sampler_init(&s, &prm, n_vocab, NULL), 0);
                memcpy(work, logits, (size_t)n_vocab * sizeof *work);
                int n = lm_sampler_filter(&s, work);
                if (n != n_ref)
                    test_fail(__FILE__, __LINE__, "k %d p %g min-p %g: %d survivors, literal %d", ks[a], ps[b],
                              mins[c], n, n_ref);
                /* Same order when sorted; min-p alone leaves them in id order. */
                bool sorted = ks[a] > 0 || ps[b] < 1;
                for (int i = 0; i < n && i < n_ref; i++) {
                    int j = i;
                    if (!sorted)
                        for (j = 0; j < n_ref && ref[j].id != s.cand[i].id; j++) {}
                    if (j == n_ref || ref[j].id != s.cand[i].id || fabs(ref[j].p - s.cand[i].p) > 1e-6) {
                        test_fail(__FILE__, __LINE__, "k %d p %g min-p %g: survivor %d differs", ks[a], ps[b],
                                  mins[c], i);
                        break;
                    }
                }
                lm_sampler_free(&s);
            }
}

TEST(sampler_matches_literal_order) {
    enum { N = 5000 };
    static float logits[N], work[N];
    static struct lm_candidate ref[N];
    /* Logits spread over 8 nats (the usual), then 40 (past the histogram). */
    for (int scale = 8; scale <= 40; scale += 32) {
        uint64_t x = 12345;
        for (int i = 0; i < N; i++) {
            x = x * 6364136223846793005u + 1442695040888963407u;
            logits[i] = (float)((x >> 40) * 0x1.0p-24 * scale);
        }
        check_literal(logits, work, ref, N);
    }
    /* Few distinct values, -0 beside +0: ties everywhere, also among the
     * blocks top-k keeps or skips by their maxima. */
    uint64_t x = 777;
    for (int i = 0; i < N; i++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        int v = (int)(x >> 61) - 4;
        logits[i] = v == 0 && (x >> 40 & 1) ? -0.0f : (float)v * 0.5f;
    }
    check_literal(logits, work, ref, N);
    return 0;
}

/* ---- the generator and the draw ---- */

TEST(sampler_rng_reference) {
    /* From scripts/sampler_rng_ref.py. */
    struct { uint64_t seed; double u[4]; } ref[] = {
        {0, {0x1.33d8be6d96ebep-1, 0x1.7edc3ef092ac8p-1, 0x1.a5f849d4933e0p-4, 0x1.aa9653c498b4ap-2}},
        {42, {0x1.5780b2e0c2ec0p-4, 0x1.84136619b444ep-2, 0x1.5c2ea66473c93p-1, 0x1.d9715a8e0766cp-1}},
        {UINT64_MAX, {0x1.1eaa41aa54fd5p-1, 0x1.88ed403195430p-1, 0x1.03bc6381a4c08p-1, 0x1.7ecb1afc0cbe7p-1}},
    };
    for (int r = 0; r < 3; r++) {
        struct lm_sampler_params prm = plain();
        prm.seed = ref[r].seed;
        struct lm_sampler s;
        EXPECT_EQ_INT(lm_sampler_init(&s, &prm, 1, NULL), 0);
        for (int i = 0; i < 4; i++) EXPECT(lm_sampler_uniform(&s) == ref[r].u[i]);
        lm_sampler_free(&s);
    }
    return 0;
}

enum { SEQ = 200, SEQ_VOCAB = 100 };

static void draw_sequence(struct lm_sampler *s, int32_t *out) {
    float l[SEQ_VOCAB];
    for (int t = 0; t < SEQ; t++) {
        for (int i = 0; i < SEQ_VOCAB; i++) l[i] = (float)(i % 7) * 0.3f;
        out[t] = lm_sampler_sample(s, l);
        lm_sampler_accept(s, out[t]);
    }
}

TEST(sampler_seed_reproducible) {
    struct lm_sampler_params prm = lm_sampler_params_default();
    prm.top_k = 0; /* leave many tokens in play */
    prm.repeat_penalty = 1.1f;
    int32_t a[SEQ], b[SEQ], c[SEQ], d[SEQ];
    struct lm_sampler s;
    prm.seed = 7, prm.seed_set = true;
    EXPECT_EQ_INT(lm_sampler_init(&s, &prm, SEQ_VOCAB, NULL), 0);
    draw_sequence(&s, a);
    lm_sampler_reset(&s);
    draw_sequence(&s, d); /* reset = fresh sampler */
    lm_sampler_free(&s);
    EXPECT_EQ_INT(lm_sampler_init(&s, &prm, SEQ_VOCAB, NULL), 0);
    draw_sequence(&s, b);
    lm_sampler_free(&s);
    prm.seed = 8;
    EXPECT_EQ_INT(lm_sampler_init(&s, &prm, SEQ_VOCAB, NULL), 0);
    draw_sequence(&s, c);
    lm_sampler_free(&s);
    EXPECT(memcmp(a, b, sizeof a) == 0);
    EXPECT(memcmp(a, d, sizeof a) == 0);
    int same = 0;
    for (int i = 0; i < SEQ; i++) same += a[i] == c[i];
    EXPECT(same < SEQ / 2);

    /* A seed picked at random is reported, short, and reproduces the run. */
    prm.seed_set = false;
    EXPECT_EQ_INT(lm_sampler_init(&s, &prm, SEQ_VOCAB, NULL), 0);
    EXPECT(s.seed <= UINT32_MAX);
    draw_sequence(&s, a);
    prm.seed = s.seed, prm.seed_set = true;
    lm_sampler_free(&s);
    EXPECT_EQ_INT(lm_sampler_init(&s, &prm, SEQ_VOCAB, NULL), 0);
    draw_sequence(&s, b);
    lm_sampler_free(&s);
    EXPECT(memcmp(a, b, sizeof a) == 0);
    return 0;
}

TEST(sampler_draw_frequencies) {
    /* 20000 draws from a known distribution (temp 1, no filters): Pearson's
     * chi-square with 7 degrees of freedom is below 24.3 with probability
     * 0.999; the seed is fixed, so this cannot flake. */
    enum { K = 8, DRAWS = 20000 };
    const double probs[K] = {0.3, 0.2, 0.15, 0.1, 0.1, 0.08, 0.05, 0.02};
    int count[K] = {0};
    struct lm_sampler_params prm = plain();
    prm.seed = 2024;
    struct lm_sampler s;
    EXPECT_EQ_INT(lm_sampler_init(&s, &prm, K, NULL), 0);
    for (int t = 0; t < DRAWS; t++) {
        float l[K];
        log_probs(probs, K, l);
        int32_t id = lm_sampler_sample(&s, l);
        if (id < 0 || id >= K) {
            EXPECT(id >= 0 && id < K);
            break;
        }
        count[id]++;
    }
    lm_sampler_free(&s);
    double chi2 = 0;
    for (int i = 0; i < K; i++) {
        double e = probs[i] * DRAWS;
        chi2 += (count[i] - e) * (count[i] - e) / e;
    }
    if (!(chi2 < 24.3)) test_fail(__FILE__, __LINE__, "chi-square %g >= 24.3", chi2);
    return 0;
}

TEST(sampler_init_errors) {
    struct lm_sampler s;
    struct lm_err err = {{0}};
    struct lm_sampler_params ok = plain(), p;
    EXPECT_EQ_INT(lm_sampler_init(&s, &ok, 0, &err), -1);
    EXPECT_CONTAINS(err.msg, "vocabulary");
    lm_sampler_free(&s);
    p = ok, p.temp = -1;
    EXPECT_EQ_INT(lm_sampler_init(&s, &p, 10, &err), -1);
    EXPECT_CONTAINS(err.msg, "temperature");
    p = ok, p.temp = NAN;
    EXPECT_EQ_INT(lm_sampler_init(&s, &p, 10, &err), -1);
    p = ok, p.repeat_penalty = 0;
    EXPECT_EQ_INT(lm_sampler_init(&s, &p, 10, &err), -1);
    EXPECT_CONTAINS(err.msg, "repeat penalty");
    p = ok, p.min_p = 2;
    EXPECT_EQ_INT(lm_sampler_init(&s, &p, 10, &err), -1);
    p = ok, p.top_p = NAN;
    EXPECT_EQ_INT(lm_sampler_init(&s, &p, 10, &err), -1);
    p = ok, p.repeat_last_n = -1;
    EXPECT_EQ_INT(lm_sampler_init(&s, &p, 10, &err), -1);
    lm_sampler_free(&s);
    return 0;
}

/* ---- CLI flags ---- */

/* Parses argv[0..argc) from index 0 with stderr captured into msg. */
static int parse_quiet(struct lm_sampler_params *p, int argc, char **argv, int *i, char *msg, size_t cap) {
    const char *path = test_tmp_path(".err");
    fflush(stderr);
    int saved = dup(2), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    close(fd);
    int r = lm_sampler_parse_flag(p, argc, argv, i);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    msg[0] = 0;
    FILE *f = fopen(path, "r");
    if (f) {
        size_t n = fread(msg, 1, cap - 1, f);
        msg[n] = 0;
        fclose(f);
    }
    return r;
}

static bool params_equal(const struct lm_sampler_params *a, const struct lm_sampler_params *b) {
    return a->temp == b->temp && a->top_p == b->top_p && a->min_p == b->min_p &&
           a->repeat_penalty == b->repeat_penalty && a->top_k == b->top_k && a->repeat_last_n == b->repeat_last_n &&
           a->seed == b->seed && a->seed_set == b->seed_set;
}

TEST(sampler_cli_flags) {
    char *good[] = {"--temp", "0.5", "--top-k", "7", "--top-p", "0.9", "--min-p", "0.1",
                    "--repeat-penalty", "1.3", "--repeat-last-n", "32", "-s", "123"};
    int argc = (int)(sizeof good / sizeof good[0]);
    struct lm_sampler_params p = lm_sampler_params_default();
    char msg[512];
    for (int i = 0; i < argc; i++) {
        int before = i;
        EXPECT_EQ_INT(parse_quiet(&p, argc, good, &i, msg, sizeof msg), 1);
        EXPECT_EQ_INT(i, before + 1);
    }
    EXPECT(p.temp == 0.5f && p.top_k == 7 && p.top_p == 0.9f && p.min_p == 0.1f);
    EXPECT(p.repeat_penalty == 1.3f && p.repeat_last_n == 32);
    EXPECT(p.seed_set && p.seed == 123);

    char *more[] = {"--seed", "-1", "--top-k", "-5", "--temp", "0", "lm", "--top-p"};
    int i = 0;
    EXPECT_EQ_INT(parse_quiet(&p, 8, more, &i, msg, sizeof msg), 1);
    EXPECT(!p.seed_set); /* -1: pick one */
    i = 2;
    EXPECT_EQ_INT(parse_quiet(&p, 8, more, &i, msg, sizeof msg), 1);
    EXPECT_EQ_INT(p.top_k, -5); /* negative = off */
    i = 4;
    EXPECT_EQ_INT(parse_quiet(&p, 8, more, &i, msg, sizeof msg), 1);
    EXPECT(p.temp == 0);
    i = 6; /* not ours: untouched */
    EXPECT_EQ_INT(parse_quiet(&p, 8, more, &i, msg, sizeof msg), 0);
    EXPECT_EQ_INT(i, 6);
    i = 7; /* missing value */
    EXPECT_EQ_INT(parse_quiet(&p, 8, more, &i, msg, sizeof msg), -1);
    EXPECT_CONTAINS(msg, "--top-p needs a value");

    struct { const char *flag, *value, *msg; } bad[] = {
        {"--temp", "abc", "not a number"},        {"--temp", "-1", "out of range"},
        {"--temp", "nan", "not a number"},        {"--top-p", "1.5", "out of range"},
        {"--min-p", "-0.1", "out of range"},      {"--repeat-penalty", "0", "out of range"},
        {"--top-k", "4.5", "not an integer"},     {"--repeat-last-n", "-1", "out of range"},
        {"-s", "-2", "out of range"},             {"--seed", "12x", "not an integer"},
        {"--top-k", "", "not an integer"},
    };
    for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
        struct lm_sampler_params q = lm_sampler_params_default(), d = q;
        char *argv[] = {(char *)bad[b].flag, (char *)bad[b].value};
        i = 0;
        EXPECT_EQ_INT(parse_quiet(&q, 2, argv, &i, msg, sizeof msg), -1);
        EXPECT_CONTAINS(msg, bad[b].flag);
        EXPECT_CONTAINS(msg, bad[b].msg);
        EXPECT(params_equal(&q, &d)); /* left as it was */
    }
    return 0;
}

TEST(sampler_cli_usage) {
    const char *flags[] = {"--temp", "--top-k", "--top-p", "--min-p", "--repeat-penalty", "--repeat-last-n",
                           "-s, --seed", "default 0.8", "default 40", "default 0.95", "default 0.05",
                           "default 1.0", "default 64"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) EXPECT_CONTAINS(LM_SAMPLER_USAGE, flags[i]);
    return 0;
}
