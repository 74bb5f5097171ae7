/* model_features.c: what the loader made of a model, in words (lm info).
 * Read from the loaded model, not from the metadata, so it says what lm
 * will compute; see model.h. */
#include "lm/model.h"

#include <math.h>
#include <stdio.h>

/* "0, 5, 11" for the layers where pick(layer) holds, at most `max` listed. */
static void list_layers(const struct lm_model *m, struct lm_buf *out, bool (*pick)(const struct lm_layer *, int), int arg) {
    int listed = 0, max = 8;
    for (int l = 0; l < m->hp.n_layer; l++) {
        if (!pick(&m->layers[l], arg)) continue;
        if (listed == max) {
            lm_buf_puts(out, ", ...");
            return;
        }
        lm_buf_printf(out, "%s%d", listed++ ? ", " : "", l);
    }
}

static int count_layers(const struct lm_model *m, bool (*pick)(const struct lm_layer *, int), int arg) {
    int n = 0;
    for (int l = 0; l < m->hp.n_layer; l++) n += pick(&m->layers[l], arg);
    return n;
}

static bool has_window(const struct lm_layer *L, int window) { return L->window == window; }
static bool no_window(const struct lm_layer *L, int unused) { return L->window == 0; }
static bool uses_rope(const struct lm_layer *L, int r) { return L->rope == r; }
static bool attends_without_rope(const struct lm_layer *L, int unused) { return L->rope < 0 && !L->ssm.out; }
static bool reuses_kv(const struct lm_layer *L, int unused) { return L->kv_reused; }

/* The layer that writes KV slot `slot`. */
static int slot_writer(const struct lm_model *m, int slot) {
    for (int l = 0; l < m->hp.n_layer; l++)
        if (m->layers[l].wq && !m->layers[l].kv_reused && m->layers[l].kv_slot == slot) return l;
    return -1;
}

/* Heads, and the FFN width where layers differ in it. */
static void dimensions(const struct lm_model *m, struct lm_buf *out) {
    const struct lm_hparams *hp = &m->hp;
    int kv_lo = INT32_MAX, kv_hi = 0, hd_lo = INT32_MAX, hd_hi = 0, ff_lo = INT32_MAX, ff_hi = 0;
    for (int l = 0; l < hp->n_layer; l++) {
        const struct lm_layer *L = &m->layers[l];
        ff_lo = L->n_ff < ff_lo ? L->n_ff : ff_lo, ff_hi = L->n_ff > ff_hi ? L->n_ff : ff_hi;
        if (!L->wq) continue;
        kv_lo = L->n_head_kv < kv_lo ? L->n_head_kv : kv_lo, kv_hi = L->n_head_kv > kv_hi ? L->n_head_kv : kv_hi;
        hd_lo = L->head_dim < hd_lo ? L->head_dim : hd_lo, hd_hi = L->head_dim > hd_hi ? L->head_dim : hd_hi;
    }
    if (kv_lo == kv_hi && hd_lo == hd_hi)
        lm_buf_printf(out, "%d query head%s and %d KV head%s of %d\n", hp->n_head, hp->n_head > 1 ? "s" : "", kv_lo,
                      kv_lo > 1 ? "s" : "", hd_lo);
    else
        lm_buf_printf(out, "%d query heads and %d..%d KV heads of %d..%d, by layer\n", hp->n_head, kv_lo, kv_hi, hd_lo,
                      hd_hi);
    if (ff_lo != ff_hi) lm_buf_printf(out, "FFN of %d..%d, by layer\n", ff_lo, ff_hi);
}

/* Layers that attend to another layer's KV cache, and whose. */
static void shared_kv(const struct lm_model *m, struct lm_buf *out) {
    if (!count_layers(m, reuses_kv, 0)) return;
    lm_buf_puts(out, "layers ");
    list_layers(m, out, reuses_kv, 0);
    lm_buf_puts(out, " reuse the KV cache of layers ");
    for (int l = 0, n = 0; l < m->hp.n_layer; l++)
        if (m->layers[l].kv_reused) lm_buf_printf(out, "%s%d", n++ ? ", " : "", slot_writer(m, m->layers[l].kv_slot));
    lm_buf_putc(out, '\n');
}

/* Sliding windows: each size and how many layers have it, then the global layers. */
static void windows(const struct lm_model *m, struct lm_buf *out) {
    int n_global = count_layers(m, no_window, 0);
    if (n_global == m->hp.n_layer) return;
    for (int l = 0; l < m->hp.n_layer; l++) {
        int w = m->layers[l].window, seen = 0;
        for (int k = 0; k < l; k++) seen += m->layers[k].window == w;
        if (w && !seen)
            lm_buf_printf(out, "sliding window of %d positions on %d of %d layers\n", w, count_layers(m, has_window, w),
                          m->hp.n_layer);
    }
    if (n_global) {
        lm_buf_puts(out, "global attention on layers ");
        list_layers(m, out, no_window, 0);
        lm_buf_putc(out, '\n');
    }
}

/* Each rotary embedding: its kind, dimensions, base, scaling, and the
 * layers that use it. */
static void ropes(const struct lm_model *m, struct lm_buf *out) {
    for (int r = 0; r < m->n_rope; r++) {
        const struct lm_rope *rope = &m->rope[r];
        int n = count_layers(m, uses_rope, r), head_dim = 0;
        if (!n) continue;
        for (int l = m->hp.n_layer - 1; l >= 0; l--)
            if (m->layers[l].rope == r) head_dim = m->layers[l].head_dim;
        lm_buf_printf(out, "RoPE (%s) over %d of %d dimensions, base %.6g", rope->neox ? "halves" : "adjacent pairs",
                      rope->n_rot, head_dim, rope->base);
        if (rope->scaling[0]) lm_buf_printf(out, ", %s", rope->scaling);
        if (n == m->hp.n_layer) lm_buf_puts(out, ", all layers\n");
        else lm_buf_printf(out, ", %d layer%s\n", n, n > 1 ? "s" : "");
    }
    if (count_layers(m, attends_without_rope, 0)) {
        lm_buf_puts(out, "attention without RoPE on layers ");
        list_layers(m, out, attends_without_rope, 0);
        lm_buf_putc(out, '\n');
    }
}

void lm_model_features(const struct lm_model *m, struct lm_buf *out) {
    const struct lm_hparams *hp = &m->hp;
    const struct lm_layer *L0 = &m->layers[0];
    dimensions(m, out);
    windows(m, out);
    ropes(m, out);
    shared_kv(m, out);
    if (L0->bq) lm_buf_puts(out, "biases on Q, K, V\n");
    if (L0->q_norm)
        lm_buf_puts(out, L0->q_norm->ne[0] == L0->head_dim ? "RMSNorm of each query and key head\n"
                                                           : "RMSNorm of the whole query and key rows\n");
    if (L0->v_norm) lm_buf_puts(out, "RMSNorm of each value head, without a weight\n");
    if (!L0->attn_norm && !L0->ssm.out) lm_buf_puts(out, "no norm before attention and FFN\n");
    if (L0->attn_post_norm) lm_buf_puts(out, "RMSNorm after attention and FFN\n");
    if (hp->layer_norm) lm_buf_puts(out, "LayerNorm with biases instead of RMSNorm\n");
    if (m->pos_embd) lm_buf_printf(out, "learned positions (%lld) instead of RoPE\n", (long long)m->pos_embd->ne[1]);
    if (!L0->w_gate && !L0->ssm.out) lm_buf_puts(out, "GELU MLP without a gate\n");
    if (L0->bo || L0->b_down) lm_buf_puts(out, "biases on the attention output and the FFN\n");
    if (fabsf(hp->att_scale * sqrtf((float)hp->head_dim) - 1.0f) > 1e-6f)
        lm_buf_printf(out, "attention scale %.6g (not 1/sqrt(%d))\n", hp->att_scale, hp->head_dim);
    if (hp->att_softcap > 0) lm_buf_printf(out, "attention soft-cap %g\n", hp->att_softcap);
    if (hp->logit_softcap > 0) lm_buf_printf(out, "final logit soft-cap %g\n", hp->logit_softcap);
    if (hp->emb_scale != 1.0f) lm_buf_printf(out, "embeddings scaled by %.6g\n", hp->emb_scale);
    if (hp->res_scale != 1.0f) lm_buf_printf(out, "residual branches scaled by %.6g\n", hp->res_scale);
    if (hp->logit_scale != 1.0f) lm_buf_printf(out, "final logits scaled by %.6g\n", hp->logit_scale);
    if (m->pl_tok_embd)
        lm_buf_printf(out, "per-layer token embeddings of %d, gated into each layer\n", hp->n_embd_per_layer);
    if (L0->out_scale) lm_buf_puts(out, "layer outputs scaled (layer_output_scale)\n");
    if (m->output == m->tok_embd) lm_buf_puts(out, "output tied to the embeddings\n");
}
