/* delta_net.c: the gated delta net, the recurrent mixer of qwen35's linear
 * attention layers, as llama.cpp computes it (delta-net-base.cpp, ggml's
 * ssm_conv and gated_delta_net on the CPU). See arch.h.
 *
 * For each token: the mixed Q|K|V projection goes through a causal
 * depthwise convolution over the last d_conv inputs (the d_conv - 1 before
 * the batch are kept in the state) and SiLU; each query and key head is
 * L2-normalised. Each value head h (reading key head h % n_k_heads) keeps a
 * head_dim x head_dim matrix S, decayed by exp(g) with
 * g = softplus(alpha x + dt) * a, then corrected towards v along k with
 * strength beta = sigmoid(beta x): S += beta (v - S k) k^T; the output
 * S q / sqrt(head_dim) is RMS-normed per head, times ssm_norm and SiLU(z),
 * and projected by ssm_out. */
#include "arch.h"

#include "lm/ops.h"

#include <math.h>
#include <string.h>

int lm_delta_net_conv_dim(const struct lm_ssm *s) { return (2 * s->n_k_heads + s->n_v_heads) * s->head_dim; }
int lm_delta_net_value_dim(const struct lm_ssm *s) { return s->n_v_heads * s->head_dim; }

size_t lm_delta_net_state(const struct lm_ssm *s) {
    size_t hd = (size_t)s->head_dim;
    return (size_t)lm_delta_net_conv_dim(s) * (size_t)(s->d_conv - 1) + (size_t)s->n_v_heads * hd * hd;
}

/* qkv (conv_dim), z and the output (value_dim each), beta and g (n_v_heads each) */
size_t lm_delta_net_row(const struct lm_ssm *s) {
    return (size_t)lm_delta_net_conv_dim(s) + 2 * (size_t)lm_delta_net_value_dim(s) + 2 * (size_t)s->n_v_heads;
}

struct dn_job {
    const struct lm_fwd *f;
    const struct lm_layer *L;
    float *qkv, *o, *beta, *g; /* the batch's rows in c->ssm_x */
};

/* The batch's rows of the sequence whose first tile is `tile`: false when
 * the tile continues a sequence (its first tile's task does the rows). */
static bool seq_rows(const struct lm_fwd *f, int tile, int *t0, int *t1) {
    const struct lm_batch *b = f->b;
    *t0 = f->c->tiles[tile];
    if (*t0 > 0 && b->seq[*t0 - 1] == b->seq[*t0]) return false;
    int t = *t0;
    while (t < b->n && b->seq[t] == b->seq[*t0]) t++;
    *t1 = t;
    return true;
}

/* The layer's state of sequence seq: conv inputs (conv_dim x (d_conv-1),
 * oldest first), then a matrix per value head. */
static float *layer_state(const struct lm_ctx *c, int seq, const struct lm_layer *L) {
    const struct lm_ssm *s = &c->model->hp.ssm;
    size_t per_layer = lm_delta_net_state(s);
    return c->ssm_state + ((size_t)seq * (size_t)s->n_layer + (size_t)L->ssm.slot) * per_layer;
}

static float silu(float x) { return x / (1.0f + expf(-x)); }

/* One task per (sequence, head of the convolution's channels): the causal
 * convolution of that head's head_dim channels over the sequence's rows,
 * SiLU, and the L2 norm of a query or key head (as ggml: RMSNorm with
 * eps/n, times 1/sqrt(n)). */
static void conv_task(void *arg, int task, int ith) {
    const struct dn_job *j = arg;
    const struct lm_fwd *f = j->f;
    const struct lm_ssm *s = &f->c->model->hp.ssm;
    int n_heads = 2 * s->n_k_heads + s->n_v_heads, hd = s->head_dim, dc = s->d_conv, t0, t1;
    int head = task % n_heads;
    if (!seq_rows(f, task / n_heads, &t0, &t1)) return;
    size_t conv_dim = (size_t)lm_delta_net_conv_dim(s);
    float *hist0 = layer_state(f->c, f->b->seq[t0], j->L);
    const float *w0 = j->L->ssm.conv->data;
    for (int ch = head * hd; ch < (head + 1) * hd; ch++) {
        float *hist = hist0 + (size_t)ch * (size_t)(dc - 1);
        const float *w = w0 + (size_t)ch * (size_t)dc;
        for (int t = t0; t < t1; t++) {
            float *x = j->qkv + (size_t)t * conv_dim + ch, sum = 0;
            for (int i = 0; i < dc - 1; i++) sum += hist[i] * w[i];
            sum += *x * w[dc - 1];
            if (dc > 1) {
                memmove(hist, hist + 1, sizeof(float) * (size_t)(dc - 2));
                hist[dc - 2] = *x;
            }
            *x = silu(sum);
        }
    }
    if (head >= 2 * s->n_k_heads) return;
    float eps = f->c->model->hp.norm_eps, n = (float)hd;
    for (int t = t0; t < t1; t++) {
        float *x = j->qkv + (size_t)t * conv_dim + (size_t)head * (size_t)hd;
        double sum = 0;
        for (int i = 0; i < hd; i++) sum += (double)(x[i] * x[i]);
        float scale = 1.0f / sqrtf((float)(sum / hd) + eps / n), norm = 1.0f / sqrtf(n);
        for (int i = 0; i < hd; i++) x[i] = x[i] * scale * norm;
    }
}

/* The two passes over a row of the state, each with LANES independent
 * sums so that the compiler keeps them in one vector register: the row
 * decayed and read along k, then corrected along k and read along q. */
#define LANES 8

static float decay_dot(float *restrict m, float decay, const float *restrict k, int n) {
    float acc[LANES] = {0}, s = 0;
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) {
            m[i + l] *= decay;
            acc[l] += m[i + l] * k[i + l];
        }
    for (; i < n; i++) {
        m[i] *= decay;
        s += m[i] * k[i];
    }
    for (int l = 0; l < LANES; l++) s += acc[l];
    return s;
}

static float update_dot(float *restrict m, float d, const float *restrict k, const float *restrict q, int n) {
    float acc[LANES] = {0}, s = 0;
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) {
            m[i + l] += d * k[i + l];
            acc[l] += m[i + l] * q[i + l];
        }
    for (; i < n; i++) {
        m[i] += d * k[i];
        s += m[i] * q[i];
    }
    for (int l = 0; l < LANES; l++) s += acc[l];
    return s;
}

/* One task per (sequence, value head): the delta rule over the sequence's
 * rows. Row r of the head's matrix holds S[.][r] (ggml's layout), so each
 * row is decayed, corrected and read on its own. */
static void delta_task(void *arg, int task, int ith) {
    const struct dn_job *j = arg;
    const struct lm_fwd *f = j->f;
    const struct lm_ssm *s = &f->c->model->hp.ssm;
    int h = task % s->n_v_heads, hd = s->head_dim, kh = h % s->n_k_heads, t0, t1;
    if (!seq_rows(f, task / s->n_v_heads, &t0, &t1)) return;
    size_t conv_dim = (size_t)lm_delta_net_conv_dim(s), value_dim = (size_t)lm_delta_net_value_dim(s);
    size_t key_dim = (size_t)s->n_k_heads * (size_t)hd;
    float *S = layer_state(f->c, f->b->seq[t0], j->L) + conv_dim * (size_t)(s->d_conv - 1) + (size_t)h * hd * hd;
    float scale = 1.0f / sqrtf((float)hd);
    for (int t = t0; t < t1; t++) {
        const float *row = j->qkv + (size_t)t * conv_dim;
        const float *q = row + (size_t)kh * hd, *k = row + key_dim + (size_t)kh * hd, *v = row + 2 * key_dim + (size_t)h * hd;
        float decay = expf(j->g[(size_t)t * s->n_v_heads + h]), beta = j->beta[(size_t)t * s->n_v_heads + h];
        float *o = j->o + (size_t)t * value_dim + (size_t)h * hd;
        for (int r = 0; r < hd; r++) {
            float *m = S + (size_t)r * hd;
            float d = (v[r] - decay_dot(m, decay, k, hd)) * beta;
            o[r] = update_dot(m, d, k, q, hd) * scale;
        }
    }
}

void lm_blk_delta_net(const struct lm_fwd *f, const struct lm_layer *L) {
    struct lm_ctx *c = f->c;
    const struct lm_hparams *hp = &c->model->hp;
    const struct lm_ssm *s = &hp->ssm;
    int n = f->b->n, hd = s->head_dim, n_v = s->n_v_heads;
    size_t nb = (size_t)c->n_batch, conv_dim = (size_t)lm_delta_net_conv_dim(s);
    size_t value_dim = (size_t)lm_delta_net_value_dim(s);
    float *qkv = c->ssm_x, *z = qkv + nb * conv_dim, *o = z + nb * value_dim, *beta = o + nb * value_dim;
    float *g = beta + nb * (size_t)n_v;
    lm_matmul_multi(c->pool, 2, (float *const[]){qkv, z}, (const struct lm_tensor *const[]){L->ssm.qkv, L->ssm.z}, c->xn,
                    n, c->qscratch, NULL);
    lm_matmul_multi(c->pool, 2, (float *const[]){beta, g}, (const struct lm_tensor *const[]){L->ssm.beta, L->ssm.alpha},
                    c->xn, n, c->qscratch, NULL);
    const float *dt = L->ssm.dt->data, *a = L->ssm.a->data;
    for (int t = 0; t < n; t++)
        for (int h = 0; h < n_v; h++) {
            size_t i = (size_t)t * (size_t)n_v + (size_t)h;
            beta[i] = 1.0f / (1.0f + expf(-beta[i]));
            float x = g[i] + dt[h];
            g[i] = (x > 20.0f ? x : logf(1.0f + expf(x))) * a[h];
        }
    struct dn_job job = {f, L, qkv, o, beta, g};
    lm_pool_run(c->pool, f->n_tiles * (2 * s->n_k_heads + n_v), conv_task, &job);
    lm_pool_run(c->pool, f->n_tiles * n_v, delta_task, &job);
    for (int t = 0; t < n; t++)
        for (int h = 0; h < n_v; h++) {
            float *y = o + (size_t)t * value_dim + (size_t)h * hd;
            const float *gate = z + (size_t)t * value_dim + (size_t)h * hd;
            lm_rmsnorm(y, y, L->ssm.norm->data, hd, hp->norm_eps);
            for (int i = 0; i < hd; i++) y[i] *= silu(gate[i]);
        }
    lm_matmul(c->pool, c->xn, L->ssm.out, o, n, c->qscratch);
}
