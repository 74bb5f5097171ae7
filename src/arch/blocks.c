/* blocks.c: the pieces every family's layer is built from. See arch.h. */
#include "arch.h"

#include "lm/ops.h"

#include <math.h>
#include <string.h>

/* ---- row by row ----------------------------------------------------------------
 * The RMSNorms, the residual and the gated activation of several rows run
 * on the pool, a share of the rows a task: on one thread, while the others
 * waited, they took 5% of a step of 4 sequences (the default model, 2
 * threads). One row runs where it is. */

struct rows_job {
    float *y;
    const float *x, *w;
    int dim, n_rows, n_tasks;
    float eps, scale;
    void (*row)(const struct rows_job *j, size_t r);
    float *stream; /* block_input_row: the residual stream */
    bool residual;
};

static void rows_task(void *arg, int task, int ith) {
    const struct rows_job *j = arg;
    int r0 = (int)((int64_t)j->n_rows * task / j->n_tasks), r1 = (int)((int64_t)j->n_rows * (task + 1) / j->n_tasks);
    for (int r = r0; r < r1; r++) j->row(j, (size_t)r);
}

static void run_rows(const struct lm_fwd *f, struct rows_job *j) {
    int threads = lm_pool_size(f->c->pool);
    j->n_tasks = j->n_rows < 4 * threads ? j->n_rows : 4 * threads;
    lm_pool_run(f->c->pool, j->n_tasks, rows_task, j);
}

static void rmsnorm_row(const struct rows_job *j, size_t r) {
    size_t at = r * (size_t)j->dim;
    lm_rmsnorm(j->y + at, j->x + at, j->w, j->dim, j->eps);
}

void lm_blk_rmsnorm(const struct lm_fwd *f, float *y, const float *x, const struct lm_tensor *w, int n_rows) {
    struct rows_job j = {.y = y, .x = x, .w = w->data, .dim = (int)w->ne[0], .n_rows = n_rows,
                         .eps = f->c->model->hp.norm_eps, .row = rmsnorm_row};
    run_rows(f, &j);
}

void lm_blk_layernorm(const struct lm_fwd *f, float *y, const float *x, const struct lm_tensor *w,
                      const struct lm_tensor *b, int n_rows) {
    int dim = (int)w->ne[0];
    float eps = f->c->model->hp.norm_eps;
    for (int r = 0; r < n_rows; r++)
        lm_layernorm(y + (size_t)r * dim, x + (size_t)r * dim, w->data, b ? b->data : NULL, dim, eps);
}

static void add_residual(float *x, const float *add, int dim, float scale) {
    if (scale == 1.0f)
        for (int i = 0; i < dim; i++) x[i] += add[i];
    else
        for (int i = 0; i < dim; i++) x[i] += scale * add[i];
}

static void residual_row(const struct rows_job *j, size_t r) {
    add_residual(j->y + r * (size_t)j->dim, j->x + r * (size_t)j->dim, j->dim, j->scale);
}

void lm_blk_residual(const struct lm_fwd *f) {
    struct lm_ctx *c = f->c;
    struct rows_job j = {.y = c->x, .x = c->xn, .dim = c->model->hp.n_embd, .n_rows = f->b->n,
                         .scale = c->model->hp.res_scale, .row = residual_row};
    run_rows(f, &j);
}

/* ---- a block's input, row by row in its first product ----------------------
 * A few rows' step spent ~10% of its time in the pool jobs of the norms,
 * residuals and quantizations between the products (each a wait for the
 * slower thread, and the rows moving between the cores): the input of a
 * block is made in the tasks that quantize it for the first product. */

static void block_input_row(const struct rows_job *j, size_t r) {
    float *x = j->stream + r * (size_t)j->dim;
    if (j->residual) add_residual(x, j->y + r * (size_t)j->dim, j->dim, j->scale);
    lm_rmsnorm(j->y + r * (size_t)j->dim, x, j->w, j->dim, j->eps);
}

static void rows_op(const void *ctx, int t) {
    const struct rows_job *j = ctx;
    j->row(j, (size_t)t);
}

/* The job that makes c->xn as `in` says, or none (NULL: c->xn is ready). */
static const struct lm_row_op *block_input(const struct lm_fwd *f, struct lm_blk_in in, struct rows_job *j,
                                           struct lm_row_op *op) {
    struct lm_ctx *c = f->c;
    LM_ASSERT(in.norm || !in.residual);
    if (!in.norm) return NULL;
    *j = (struct rows_job){.y = c->xn, .w = in.norm->data, .dim = (int)in.norm->ne[0], .n_rows = f->b->n,
                           .eps = c->model->hp.norm_eps, .scale = c->model->hp.res_scale, .row = block_input_row,
                           .stream = c->x, .residual = in.residual};
    *op = (struct lm_row_op){rows_op, j};
    return op;
}

static void add_bias(float *y, const struct lm_tensor *b, int n_tok, int dim) {
    if (!b) return;
    const float *bias = b->data;
    for (int t = 0; t < n_tok; t++)
        for (int i = 0; i < dim; i++) y[(size_t)t * dim + i] += bias[i];
}

/* ---- attention ----------------------------------------------------------------
 * Attention works on tiles of query rows: the heads of one KV group times
 * a run of one sequence's tokens (lm_att_tokens of them), so that each key
 * and value meets them all in lm_sgemm_f16. The cache holds each KV head's
 * values by position and its keys transposed, in blocks of LM_KV_BLOCK
 * positions: a block is a row of LM_KV_BLOCK positions per dimension (see
 * kv_head); a head's keys, and its values, are one run of memory.
 * These are the products' operand layouts, so keys and values are widened
 * in registers and never copied, and a block of scores reads one
 * contiguous run of keys (rows a whole context apart were a quarter
 * slower at 1024 positions). Whole blocks are multiplied, so no product
 * has a ragged edge. Scores for every position are kept until the softmax
 * (exact, as one pass over the row), then multiply the values. */

int lm_att_tokens(const struct lm_hparams *hp) {
    int group = hp->n_head / hp->n_head_kv;
    return group >= LM_ATT_ROWS ? 1 : LM_ATT_ROWS / group;
}

size_t lm_att_scratch_size(const struct lm_hparams *hp, int n_ctx) {
    size_t rows = (size_t)lm_att_tokens(hp) * (size_t)(hp->n_head / hp->n_head_kv), hd = (size_t)hp->max_head_dim;
    return 2 * rows * hd + rows * (size_t)lm_kv_positions(n_ctx) + hd;
}

/* Positions whose keys (or values) are read ahead in one pass, then used:
 * 32 KB of keys of a 64-wide head, at home in L1 and L2. */
#define ATT_RUN 256

int lm_kv_positions(int n_ctx) { return (n_ctx + LM_KV_BLOCK - 1) / LM_KV_BLOCK * LM_KV_BLOCK; }

struct attn_job {
    const struct lm_fwd *f;
    const struct lm_layer *L;
    /* or NULL: each task quantizes its heads' output for the output
     * projection, rows oq_row bytes apart at oq_dst */
    const struct lm_type_traits *oq;
    uint8_t *oq_dst;
    size_t oq_row;
};

/* Where KV head h of layer L of sequence `seq` starts in the cache: the
 * layer's keys and values of the sequence (see lm_layer.kv_base) have room
 * for lm_kv_positions(n_ctx) of each, head after head. Value d of position
 * pos is at pos*head_dim + d from there; key d at key_index(head_dim, d,
 * pos). With the heads side by side in a position's row, a task's reads
 * of one head took 2 lines of every 6 (values) and 4 KB of every 12
 * (keys) of the default model's cache: steps of 4 sequences at 1,500
 * positions ran 1-3% slower. */
static size_t kv_head(const struct lm_ctx *c, const struct lm_layer *L, int seq, int h) {
    size_t positions = (size_t)lm_kv_positions(c->n_ctx);
    return ((size_t)seq * (size_t)c->model->hp.kv_values + (size_t)L->kv_base + (size_t)h * (size_t)L->head_dim) *
           positions;
}

static size_t key_index(size_t hd, size_t d, size_t pos) {
    return (pos / LM_KV_BLOCK * hd + d) * LM_KV_BLOCK + pos % LM_KV_BLOCK;
}

/* Where the rows of a tile end: the next tile's first row, or the batch's end. */
static int tile_end(const struct lm_fwd *f, int tile) { return tile + 1 < f->n_tiles ? f->c->tiles[tile + 1] : f->b->n; }

/* Row t's queries of the KV heads [h0, h1) and its keys of those heads
 * rotated, and its keys and values of them into the cache. */
static void rope_and_cache(const struct lm_fwd *f, const struct lm_layer *L, int t, int h0, int h1) {
    struct lm_ctx *c = f->c;
    const struct lm_hparams *hp = &c->model->hp;
    int hd = L->head_dim, group = hp->n_head / L->n_head_kv, kv_dim = L->n_head_kv * hd;
    float *q = c->q + (size_t)t * (size_t)(hp->n_head * hd) + (size_t)(h0 * group * hd);
    float *k = c->k + (size_t)t * (size_t)kv_dim + (size_t)(h0 * hd);
    const struct lm_rope *r = L->rope >= 0 ? &c->model->rope[L->rope] : NULL;
    int half = r ? r->n_rot / 2 : 0;
    const float *cos_t = r ? c->rope_cos[L->rope] + (size_t)t * half : NULL;
    const float *sin_t = r ? c->rope_sin[L->rope] + (size_t)t * half : NULL;
    if (r) lm_rope(q, (h1 - h0) * group, hd, r->n_rot, cos_t, sin_t, r->neox);
    if (L->kv_reused) return;
    if (r) lm_rope(k, h1 - h0, hd, r->n_rot, cos_t, sin_t, r->neox);
    size_t pos = (size_t)f->b->pos[t];
    for (int h = h0; h < h1; h++) {
        size_t at = kv_head(c, L, f->b->seq[t], h);
        const float *kh = c->k + (size_t)t * (size_t)kv_dim + (size_t)(h * hd);
        lm_f32_to_f16_row(c->v + (size_t)t * (size_t)kv_dim + (size_t)(h * hd), c->v_cache + at + pos * (size_t)hd, hd);
        uint16_t k16[64];
        for (int d0 = 0; d0 < hd; d0 += 64) {
            int nd = hd - d0 < 64 ? hd - d0 : 64;
            lm_f32_to_f16_row(kh + d0, k16, nd);
            for (int d = 0; d < nd; d++) c->k_cache[at + key_index((size_t)hd, (size_t)(d0 + d), pos)] = k16[d];
        }
    }
}

/* One task per (KV head, tile of rows): causal softmax attention over the
 * cache of the tile's sequence, within the layer's window. When no other
 * tile holds rows of the sequence (f->tiles_alone), the task first rotates
 * and caches its own rows' heads: nobody else reads or writes them, and
 * the cache's lines of the new position, missing in every layer, are
 * fetched in parallel rather than on one thread while the others wait. */
static void attention(void *arg, int task, int ith) {
    const struct attn_job *j = arg;
    const struct lm_fwd *f = j->f;
    struct lm_ctx *c = f->c;
    const struct lm_hparams *hp = &c->model->hp;
    int hd = j->L->head_dim, group = hp->n_head / j->L->n_head_kv, window = j->L->window;
    size_t q_dim = (size_t)hp->n_head * (size_t)hd;
    int kvh = task / f->n_tiles, tile = task % f->n_tiles;
    int t0 = c->tiles[tile], nt = tile_end(f, tile) - t0, rows = nt * group;
    int seq = f->b->seq[t0], pos0 = f->b->pos[t0];
    size_t lds = (size_t)lm_kv_positions(c->n_ctx);
    if (f->tiles_alone)
        for (int t = t0; t < t0 + nt; t++) rope_and_cache(f, j->L, t, kvh, kvh + 1);
    float *qt = c->att_scratch + (size_t)ith * c->att_scratch_size; /* (rows, hd): row t*group + g */
    float *out = qt + (size_t)rows * hd;                             /* (rows, hd) */
    float *sc = out + (size_t)rows * hd;                             /* (rows, lds) scores */
    uint16_t *q16 = (uint16_t *)(sc + (size_t)rows * lds);           /* (hd) */
    /* the queries rounded to f16, as llama.cpp's attention takes them (with
     * or without flash attention, its K.Q converts Q to the f16 keys' type) */
    const struct lm_type_traits *f16 = lm_type_get(LM_TYPE_F16);
    for (int t = 0; t < nt; t++)
        for (int g = 0; g < group; g++) {
            lm_f32_to_f16_row(c->q + (size_t)(t0 + t) * q_dim + (size_t)(kvh * group + g) * hd, q16, hd);
            f16->to_f32(q16, qt + (size_t)(t * group + g) * hd, hd);
        }
    const size_t head = kv_head(c, j->L, seq, kvh);
    const uint16_t *v = c->v_cache + head, *k = c->k_cache + head;
    /* positions the tile sees: the blocks from the first row's window
     * start to the last row (scores past either end are computed, from
     * keys of other positions or none, and not used) */
    int n_pos = pos0 + nt, lo = window && pos0 - window + 1 > 0 ? (pos0 - window + 1) / LM_KV_BLOCK * LM_KV_BLOCK : 0;
    const size_t k_block = LM_KV_BLOCK * (size_t)hd; /* from one block of keys to the next */
    for (int p0 = lo; p0 < n_pos; p0 += ATT_RUN) {
        int p1 = p0 + ATT_RUN < n_pos ? p0 + ATT_RUN : n_pos;
        lm_touch(k + (size_t)(p0 / LM_KV_BLOCK) * k_block,
                 sizeof(uint16_t) * k_block * (size_t)((p1 - p0 + LM_KV_BLOCK - 1) / LM_KV_BLOCK));
        for (int p = p0; p < p1; p += LM_KV_BLOCK)
            lm_sgemm_f16(rows, LM_KV_BLOCK, hd, qt, (size_t)hd, k + (size_t)(p / LM_KV_BLOCK) * k_block, LM_KV_BLOCK,
                         sc + p, lds, false);
    }
    float scale = hp->att_scale, cap = hp->att_softcap;
    for (int r = 0; r < rows; r++) {
        float *row = sc + (size_t)r * lds;
        int last = pos0 + r / group + 1, first = window && last - window > lo ? last - window : lo;
        if (cap > 0)
            for (int p = first; p < last; p++) row[p] = cap * tanhf(row[p] * scale / cap);
        lm_softmax(row + first, last - first, cap > 0 ? 1.0f : scale);
        memset(row + lo, 0, sizeof(float) * (size_t)(first - lo));
        memset(row + last, 0, sizeof(float) * (size_t)(n_pos - last));
    }
    for (int p0 = lo; p0 < n_pos; p0 += ATT_RUN) { /* one chain of FMAs over all positions, run by run */
        int np = n_pos - p0 < ATT_RUN ? n_pos - p0 : ATT_RUN;
        lm_touch(v + (size_t)p0 * (size_t)hd, sizeof(uint16_t) * (size_t)hd * (size_t)np);
        lm_sgemm_f16(rows, hd, np, sc + p0, lds, v + (size_t)p0 * (size_t)hd, (size_t)hd, out, (size_t)hd, p0 > lo);
    }
    const size_t span = (size_t)group * (size_t)hd, first = (size_t)kvh * span; /* the task's values of a row */
    for (size_t t = 0; t < (size_t)nt; t++) {
        const float *o = out + t * span;
        if (j->oq) j->oq->act_from_f32(o, j->oq_dst + (t0 + t) * j->oq_row + first / j->oq->blck * j->oq->size, (int64_t)span);
        else memcpy(c->att + (t0 + t) * q_dim + first, o, sizeof(float) * span);
    }
}

/* A gated query projection (n rows of n_head x (head_dim query, head_dim
 * gate)): the gates go to gate (n rows of n_head x head_dim, as the
 * attention's output), the queries are packed in place as an ungated
 * projection's. In order, no query overwrites a row not yet moved. */
static void split_gate(float *q, float *gate, int n, int n_head, int hd) {
    size_t q_dim = (size_t)n_head * (size_t)hd;
    for (size_t t = 0; t < (size_t)n; t++)
        for (size_t h = 0; h < (size_t)n_head; h++) {
            const float *src = q + 2 * t * q_dim + 2 * h * (size_t)hd;
            memcpy(gate + t * q_dim + h * (size_t)hd, src + hd, sizeof(float) * (size_t)hd);
            memmove(q + t * q_dim + h * (size_t)hd, src, sizeof(float) * (size_t)hd);
        }
}

void lm_blk_attention(const struct lm_fwd *f, const struct lm_layer *L, struct lm_blk_in in) {
    struct lm_ctx *c = f->c;
    const struct lm_model *m = c->model;
    const struct lm_hparams *hp = &m->hp;
    const struct lm_batch *b = f->b;
    int n = b->n, hd = L->head_dim, q_dim = hp->n_head * hd, kv_dim = L->n_head_kv * hd;
    struct rows_job input;
    struct lm_row_op op;
    const struct lm_row_op *pre = block_input(f, in, &input, &op);
    if (L->kv_reused)
        lm_matmul_multi(c->pool, 1, &c->q, &L->wq, c->xn, n, c->qscratch, pre);
    else
        lm_matmul_multi(c->pool, 3, (float *const[]){c->q, c->k, c->v},
                        (const struct lm_tensor *const[]){L->wq, L->wk, L->wv}, c->xn, n, c->qscratch, pre);
    if (L->att_gated) split_gate(c->q, c->xn, n, hp->n_head, hd);
    add_bias(c->q, L->bq, n, q_dim);
    add_bias(c->k, L->bk, n, kv_dim);
    add_bias(c->v, L->bv, n, kv_dim);
    /* head norms: over each head, or the whole row: as long as the weight */
    if (L->q_norm) lm_blk_rmsnorm(f, c->q, c->q, L->q_norm, (int)((int64_t)n * q_dim / L->q_norm->ne[0]));
    if (L->k_norm) lm_blk_rmsnorm(f, c->k, c->k, L->k_norm, (int)((int64_t)n * kv_dim / L->k_norm->ne[0]));
    if (L->v_norm && !L->kv_reused)
        for (size_t h = 0; h < (size_t)n * (size_t)L->n_head_kv; h++)
            lm_rmsnorm(c->v + h * (size_t)hd, c->v + h * (size_t)hd, NULL, hd, hp->norm_eps);
    if (!f->tiles_alone)
        for (int t = 0; t < n; t++) rope_and_cache(f, L, t, 0, L->n_head_kv);
    /* The output projection's quantization in the attention's tasks,
     * where a task's heads are whole blocks of its activation format. */
    const struct lm_type_traits *oq = L->att_gated ? NULL : lm_matmul_act(L->wo);
    if (oq && (size_t)(hp->n_head / L->n_head_kv * hd) % oq->blck) oq = NULL;
    struct attn_job job = {f, L, oq, c->qscratch, lm_matmul_scratch_size(L->wo, 1)};
    lm_pool_run(c->pool, L->n_head_kv * f->n_tiles, attention, &job);
    if (L->att_gated)
        for (size_t i = 0; i < (size_t)n * (size_t)q_dim; i++) c->att[i] *= 1.0f / (1.0f + expf(-c->xn[i]));
    if (oq) lm_matmul_quantized(c->pool, c->xn, L->wo, c->qscratch, n);
    else lm_matmul(c->pool, c->xn, L->wo, c->att, n, c->qscratch);
    add_bias(c->xn, L->bo, n, hp->n_embd);
}

static void swiglu_row(const struct rows_job *j, size_t r) {
    lm_swiglu(j->y + r * (size_t)j->dim, j->x + r * (size_t)j->dim, j->dim);
}
static void geglu_row(const struct rows_job *j, size_t r) {
    lm_geglu(j->y + r * (size_t)j->dim, j->x + r * (size_t)j->dim, j->dim);
}

void lm_blk_ffn_gated(const struct lm_fwd *f, const struct lm_layer *L, enum lm_act act, struct lm_blk_in in) {
    struct lm_ctx *c = f->c;
    int n = f->b->n, n_ff = L->n_ff;
    struct rows_job input;
    struct lm_row_op op;
    lm_matmul_multi(c->pool, 2, (float *const[]){c->ffn_g, c->ffn_u},
                    (const struct lm_tensor *const[]){L->w_gate, L->w_up}, c->xn, n, c->qscratch,
                    block_input(f, in, &input, &op));
    add_bias(c->ffn_g, L->b_gate, n, n_ff);
    add_bias(c->ffn_u, L->b_up, n, n_ff);
    /* the gated activation of a row in the task that quantizes it for down */
    struct rows_job j = {.y = c->ffn_g, .x = c->ffn_u, .dim = n_ff, .n_rows = n,
                         .row = act == LM_ACT_SILU ? swiglu_row : geglu_row};
    const struct lm_row_op gate = {rows_op, &j};
    lm_matmul_multi(c->pool, 1, &c->xn, &L->w_down, c->ffn_g, n, c->qscratch, &gate);
    add_bias(c->xn, L->b_down, n, c->model->hp.n_embd);
}

void lm_blk_ffn(const struct lm_fwd *f, const struct lm_layer *L) {
    struct lm_ctx *c = f->c;
    int n = f->b->n, n_ff = L->n_ff;
    lm_matmul(c->pool, c->ffn_u, L->w_up, c->xn, n, c->qscratch);
    add_bias(c->ffn_u, L->b_up, n, n_ff);
    lm_gelu(c->ffn_u, n * n_ff);
    lm_matmul(c->pool, c->xn, L->w_down, c->ffn_u, n, c->qscratch);
    add_bias(c->xn, L->b_down, n, c->model->hp.n_embd);
}

/* ---- per-layer token embeddings (gemma4) ---------------------------------------
 * As llama.cpp's gemma4 graph (project_per_layer_inputs, the per-layer
 * block): the factors are floats computed as it computes them. */

void lm_blk_per_layer_inputs(const struct lm_fwd *f) {
    struct lm_ctx *c = f->c;
    const struct lm_model *m = c->model;
    const struct lm_hparams *hp = &m->hp;
    int n = f->b->n, P = hp->n_embd_per_layer;
    size_t width = (size_t)P * (size_t)hp->n_layer;
    float proj_scale = 1.0f / sqrtf((float)hp->n_embd), tok_scale = sqrtf((float)P), sum_scale = 1.0f / sqrtf(2.0f);
    float *tok = c->pl_inp + (size_t)n * width; /* the row of scratch after the batch's */
    lm_matmul(c->pool, c->pl_inp, m->pl_model_proj, c->x, n, c->qscratch);
    for (int t = 0; t < n; t++) {
        float *row = c->pl_inp + (size_t)t * width;
        for (size_t i = 0; i < width; i++) row[i] *= proj_scale;
        for (int l = 0; l < hp->n_layer; l++)
            lm_rmsnorm(row + (size_t)l * P, row + (size_t)l * P, m->pl_proj_norm->data, P, hp->norm_eps);
        lm_arch_embedding_row(m->pl_tok_embd, f->b->tokens[t], tok);
        for (size_t i = 0; i < width; i++) row[i] = (row[i] + tok[i] * tok_scale) * sum_scale;
    }
}

void lm_blk_per_layer_embd(const struct lm_fwd *f, const struct lm_layer *L) {
    struct lm_ctx *c = f->c;
    const struct lm_model *m = c->model;
    int n = f->b->n, P = m->hp.n_embd_per_layer, l = (int)(L - m->layers);
    size_t width = (size_t)P * (size_t)m->hp.n_layer;
    float *g = c->ffn_g; /* (n, P) */
    lm_matmul(c->pool, g, L->pl_gate, c->x, n, c->qscratch);
    lm_gelu(g, n * P);
    for (int t = 0; t < n; t++) {
        const float *in = c->pl_inp + (size_t)t * width + (size_t)l * P;
        for (int i = 0; i < P; i++) g[(size_t)t * P + i] *= in[i];
    }
    lm_matmul(c->pool, c->xn, L->pl_proj, g, n, c->qscratch);
    lm_blk_rmsnorm(f, c->xn, c->xn, L->pl_post_norm, n);
    lm_blk_residual(f);
}

void lm_blk_out_scale(const struct lm_fwd *f, const struct lm_layer *L) {
    struct lm_ctx *c = f->c;
    float s = *(const float *)L->out_scale->data;
    size_t count = (size_t)f->b->n * (size_t)c->model->hp.n_embd;
    for (size_t i = 0; i < count; i++) c->x[i] *= s;
}
