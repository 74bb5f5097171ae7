/* olmo2.c: OLMo 2. Llama's attention and SwiGLU FFN with the norms moved:
 * no norm before either branch, an RMSNorm after each (before it joins the
 * residual), and RMSNorms of the whole query and key rows (not of each
 * head) before RoPE, which rotates halves (GPT-NeoX). */
#include "arch.h"

#include <string.h>

static int load(struct lm_loader *ld) {
    struct lm_model *m = ld->m;
    const struct lm_hparams *hp = &m->hp;
    int window;
    if (lm_arch_int(m, "attention.sliding_window", 0, 0, INT32_MAX, &window, ld->err) < 0) return -1;
    if (window) return lm_errf(ld->err, "olmo2 with a sliding window (OLMo 3) is not supported");
    m->rope[0].neox = true;
    int E = hp->n_embd, q_dim = hp->n_head * hp->head_dim, kv_dim = hp->n_head_kv * hp->head_dim;
    for (int l = 0; l < hp->n_layer && !ld->failed; l++) {
        struct lm_layer *L = &m->layers[l];
        L->wq = lm_arch_tensor(ld, l, "attn_q.weight", E, q_dim, false);
        L->wk = lm_arch_tensor(ld, l, "attn_k.weight", E, kv_dim, false);
        L->wv = lm_arch_tensor(ld, l, "attn_v.weight", E, kv_dim, false);
        L->wo = lm_arch_tensor(ld, l, "attn_output.weight", q_dim, E, false);
        L->q_norm = lm_arch_tensor(ld, l, "attn_q_norm.weight", q_dim, 0, false);
        L->k_norm = lm_arch_tensor(ld, l, "attn_k_norm.weight", kv_dim, 0, false);
        L->attn_post_norm = lm_arch_tensor(ld, l, "post_attention_norm.weight", E, 0, false);
        L->w_gate = lm_arch_tensor(ld, l, "ffn_gate.weight", E, hp->n_ff, false);
        L->w_up = lm_arch_tensor(ld, l, "ffn_up.weight", E, hp->n_ff, false);
        L->w_down = lm_arch_tensor(ld, l, "ffn_down.weight", hp->n_ff, E, false);
        L->ffn_post_norm = lm_arch_tensor(ld, l, "post_ffw_norm.weight", E, 0, false);
    }
    return ld->failed ? -1 : 0;
}

static void layer(const struct lm_fwd *f, const struct lm_layer *L) {
    struct lm_ctx *c = f->c;
    int n = f->b->n;
    size_t bytes = sizeof(float) * (size_t)n * (size_t)c->model->hp.n_embd;
    memcpy(c->xn, c->x, bytes);
    lm_blk_attention(f, L, (struct lm_blk_in){0});
    lm_blk_rmsnorm(f, c->xn, c->xn, L->attn_post_norm, n);
    lm_blk_residual(f);
    memcpy(c->xn, c->x, bytes);
    lm_blk_ffn_gated(f, L, LM_ACT_SILU, (struct lm_blk_in){0});
    lm_blk_rmsnorm(f, c->xn, c->xn, L->ffn_post_norm, n);
    lm_blk_residual(f);
}

const struct lm_arch lm_arch_olmo2 = {"olmo2", load, layer};
