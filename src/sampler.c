/* sampler.c: repetition penalty, top-k, top-p, min-p, temperature, draw.
 * The order and the meaning of each stage are documented in sampler.h. */
#include "lm/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Top-p without top-k histograms the mass by distance below the top logit:
 * BINS bins of 1/BIN_PER_NAT nat each, the last one open-ended. */
#define BINS 128
#define BIN_PER_NAT 8
/* Tokens whose maximum the first pass keeps, for top-k to skip by. */
#define SCAN_BLOCK 64

struct lm_sampler_params lm_sampler_params_default(void) {
    return (struct lm_sampler_params){
        .temp = 0.8f,
        .top_p = 0.95f,
        .min_p = 0.05f,
        .repeat_penalty = 1.0f,
        .top_k = 40,
        .repeat_last_n = 64,
    };
}

/* ---- generator: splitmix64 seeds xoshiro256** (prng.di.unimi.it) ---- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xoshiro_next(uint64_t s[4]) {
    uint64_t r = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

static void seed_rng(struct lm_sampler *s) {
    uint64_t x = s->seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&x);
}

double lm_sampler_uniform(struct lm_sampler *s) { return (double)(xoshiro_next(s->rng) >> 11) * 0x1.0p-53; }

/* ---- lifecycle ---- */

int lm_sampler_init(struct lm_sampler *s, const struct lm_sampler_params *p, int n_vocab, struct lm_err *err) {
    memset(s, 0, sizeof *s);
    /* Written so that NaN fails each check. */
    if (n_vocab < 1) return lm_errf(err, "sampler: vocabulary size %d", n_vocab);
    if (!(p->temp >= 0 && p->temp <= 1e6f)) return lm_errf(err, "sampler: temperature %g out of range", p->temp);
    if (!(p->repeat_penalty > 0 && p->repeat_penalty <= 1e6f))
        return lm_errf(err, "sampler: repeat penalty %g out of range", p->repeat_penalty);
    if (isnan(p->top_p)) return lm_errf(err, "sampler: top-p is NaN");
    /* Above 1, min-p would drop the top token too. */
    if (!(p->min_p <= 1)) return lm_errf(err, "sampler: min-p %g out of range", p->min_p);
    if (p->repeat_last_n < 0 || p->repeat_last_n > (1 << 20))
        return lm_errf(err, "sampler: repeat-last-n %d out of range", p->repeat_last_n);
    s->params = *p;
    s->n_vocab = n_vocab;
    if (p->seed_set) {
        s->seed = p->seed;
    } else {
        /* 32 bits keep the reported seed short to type back with -s. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^ ((uint64_t)getpid() << 40);
        s->seed = splitmix64(&x) >> 32;
    }
    seed_rng(s);
    s->cand = lm_xmalloc((size_t)n_vocab * sizeof *s->cand);
    s->seen = lm_xcalloc((size_t)n_vocab, 1);
    s->block_max = lm_xmalloc(((size_t)n_vocab + SCAN_BLOCK - 1) / SCAN_BLOCK * sizeof *s->block_max);
    if (p->repeat_last_n > 0) s->hist = lm_xmalloc((size_t)p->repeat_last_n * sizeof *s->hist);
    return 0;
}

void lm_sampler_free(struct lm_sampler *s) {
    free(s->cand);
    free(s->seen);
    free(s->block_max);
    free(s->hist);
    memset(s, 0, sizeof *s);
}

void lm_sampler_accept(struct lm_sampler *s, int32_t id) {
    LM_ASSERT(id >= 0 && id < s->n_vocab);
    int n = s->params.repeat_last_n;
    if (n == 0) return;
    s->hist[s->hist_pos] = id;
    s->hist_pos = (s->hist_pos + 1) % n;
    if (s->n_hist < n) s->n_hist++;
}

void lm_sampler_reset(struct lm_sampler *s) {
    s->n_hist = s->hist_pos = 0;
    seed_rng(s);
}

/* ---- stages ---- */

/* The order of candidates: higher logit first, then lower id. Total as long
 * as no logit is NaN (lm_sampler_filter turns NaN into -inf). */
static bool better(const struct lm_candidate *a, const struct lm_candidate *b) {
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static int cmp_cand(const void *a, const void *b) { return better(a, b) ? -1 : better(b, a) ? 1 : 0; }

static void swap_cand(struct lm_candidate *a, struct lm_candidate *b) {
    struct lm_candidate t = *a;
    *a = *b;
    *b = t;
}

/* Offers (id, logit) to a min-heap of the k best so far (worst at the root),
 * of *size entries. Offered in increasing id order, a candidate that does
 * not beat the root, nearly every one, costs a comparison (a later id loses
 * a tie, so its logit must be greater). */
static inline void heap_offer(struct lm_candidate *c, int *size, int k, int32_t id, float logit) {
    if (*size == k && !(logit > c[0].logit)) return;
    int j;
    if (*size < k) { /* grow the heap: sift the new one up */
        j = (*size)++;
        c[j] = (struct lm_candidate){id, logit, 0};
        while (j > 0 && better(&c[(j - 1) / 2], &c[j])) {
            swap_cand(&c[(j - 1) / 2], &c[j]);
            j = (j - 1) / 2;
        }
        return;
    }
    c[0] = (struct lm_candidate){id, logit, 0}; /* replace the worst, sift it down */
    for (j = 0;;) {
        int w = j, l = 2 * j + 1, r = l + 1;
        if (l < k && better(&c[w], &c[l])) w = l;
        if (r < k && better(&c[w], &c[r])) w = r;
        if (w == j) break;
        swap_cand(&c[j], &c[w]);
        j = w;
    }
}

/* The k best tokens into c[0..k), sorted. The k best block maxima, each a
 * token, show that the k-th best token is at least the least of them, T;
 * so a block whose maximum is below T holds none of the k best, and only
 * the blocks at or above T, nearly always k of them, are looked at token
 * by token: 110 us a token became 16 for a 49k vocabulary. */
static void select_best(struct lm_sampler *s, const float *logits, int k) {
    struct lm_candidate *c = s->cand;
    int n = s->n_vocab, n_blocks = (n + SCAN_BLOCK - 1) / SCAN_BLOCK, size = 0;
    float threshold = -INFINITY;
    if (n_blocks > k) {
        for (int b = 0; b < n_blocks; b++) heap_offer(c, &size, k, b, s->block_max[b]);
        threshold = c[0].logit;
        size = 0;
    }
    for (int b = 0; b < n_blocks; b++) {
        if (s->block_max[b] < threshold) continue;
        int end = (b + 1) * SCAN_BLOCK < n ? (b + 1) * SCAN_BLOCK : n;
        for (int i = b * SCAN_BLOCK; i < end; i++) heap_offer(c, &size, k, i, logits[i]);
    }
    qsort(c, (size_t)k, sizeof *c, cmp_cand);
}

/* Flips the magnitude bits of negative values, so that a float's bits as
 * an int32 order as the float does (-0 below +0); its own inverse. */
static int32_t order_flip(int32_t k) { return k ^ (int32_t)((uint32_t)(k >> 31) >> 1); }

/* NaN becomes -inf; returns the maximum. On integer keys, and a fixed count
 * for whole blocks, so that the compiler vectorizes it. */
static float sanitize_max(float *x, int n) {
    int32_t m = INT32_MIN;
    for (int i = 0; i < n; i++) {
        float v = x[i] != x[i] ? -INFINITY : x[i];
        x[i] = v;
        int32_t k;
        memcpy(&k, &v, sizeof k);
        k = order_flip(k);
        m = k > m ? k : m;
    }
    m = order_flip(m);
    float max;
    memcpy(&max, &m, sizeof max);
    return max;
}

/* NaN becomes -inf; the maximum of each block into s->block_max. Returns
 * the first token with the largest logit. */
static int scan_blocks(struct lm_sampler *s, float *logits) {
    int n = s->n_vocab, best_block = 0;
    for (int b = 0, i0 = 0; i0 < n; b++, i0 += SCAN_BLOCK) {
        s->block_max[b] = n - i0 >= SCAN_BLOCK ? sanitize_max(logits + i0, SCAN_BLOCK) : sanitize_max(logits + i0, n - i0);
        if (s->block_max[b] > s->block_max[best_block]) best_block = b;
    }
    int i = best_block * SCAN_BLOCK;
    while (logits[i] != s->block_max[best_block]) i++;
    return i;
}

static int bin_of(float m, float logit) {
    float d = (m - logit) * BIN_PER_NAT; /* >= 0, maybe +inf */
    return d < BINS - 1 ? (int)d : BINS - 1;
}

static void apply_penalty(struct lm_sampler *s, float *logits) {
    float pen = s->params.repeat_penalty;
    if (pen == 1.0f) return;
    /* seen[] makes a token repeated in the window count once, as in llama.cpp. */
    for (int i = 0; i < s->n_hist; i++) {
        int32_t id = s->hist[i];
        if (s->seen[id]) continue;
        s->seen[id] = 1;
        logits[id] = logits[id] <= 0 ? logits[id] * pen : logits[id] / pen;
    }
    for (int i = 0; i < s->n_hist; i++) s->seen[s->hist[i]] = 0;
}

int lm_sampler_filter(struct lm_sampler *s, float *logits) {
    const struct lm_sampler_params *p = &s->params;
    struct lm_candidate *c = s->cand;
    int n_vocab = s->n_vocab;

    apply_penalty(s, logits);

    /* The top token survives every filter, so its logit m is the max of
     * every stage's candidates: min-p's threshold and the softmax offset. */
    int best = scan_blocks(s, logits);
    float m = logits[best];
    if (p->temp == 0 || !isfinite(m)) {
        c[0] = (struct lm_candidate){best, m, 1.0f};
        return 1;
    }
    bool top_k = p->top_k > 0 && p->top_k < n_vocab, top_p = p->top_p < 1, min_p = p->min_p > 0;
    float min_logit = min_p ? m + logf(p->min_p) : -INFINITY;

    /* Top-k, and z = the softmax denominator top-p normalizes by: over the
     * top-k survivors, or over the whole vocabulary. */
    int n = 0;
    double z = 0;
    if (top_k) {
        select_best(s, logits, p->top_k);
        n = p->top_k;
        for (int i = 0; i < n; i++) z += exp(c[i].logit - m);
        while (n > 1 && c[n - 1].logit < min_logit) n--; /* min-p, on the sorted survivors */
    } else {
        /* Top-p and min-p each keep a prefix of the sorted order, so only
         * tokens in both prefixes are collected and sorted: min-p's are those
         * at or above its threshold, top-p's lie within the first bins of the
         * mass histogram that reach p (plus one, against rounding). */
        double mass[BINS] = {0};
        int last = BINS - 1;
        if (top_p) {
            for (int i = 0; i < n_vocab; i++) {
                double e = exp(logits[i] - m);
                z += e;
                mass[bin_of(m, logits[i])] += e;
            }
            double acc = 0;
            for (last = 0; last < BINS - 1 && (acc += mass[last]) < p->top_p * z; last++) {}
            if (last < BINS - 1) last++;
        }
        for (int i = 0; i < n_vocab; i++)
            if (logits[i] >= min_logit && bin_of(m, logits[i]) <= last) c[n++] = (struct lm_candidate){i, logits[i], 0};
        if (top_p) qsort(c, (size_t)n, sizeof *c, cmp_cand);
    }

    if (top_p) {
        double cum = 0, target = p->top_p * z;
        for (int i = 0; i < n; i++) {
            cum += exp(c[i].logit - m);
            if (cum >= target) {
                n = i + 1;
                break;
            }
        }
    }

    /* Temperature, then the draw's probabilities. */
    double sum = 0;
    for (int i = 0; i < n; i++) sum += exp((c[i].logit - m) / p->temp);
    for (int i = 0; i < n; i++) c[i].p = (float)(exp((c[i].logit - m) / p->temp) / sum);
    return n;
}

int32_t lm_sampler_sample(struct lm_sampler *s, float *logits) {
    int n = lm_sampler_filter(s, logits);
    double u = lm_sampler_uniform(s), cum = 0;
    for (int i = 0; i < n - 1; i++) {
        cum += s->cand[i].p;
        if (u < cum) return s->cand[i].id;
    }
    return s->cand[n - 1].id; /* u beyond the rounded sum of the others */
}
