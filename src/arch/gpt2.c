/* gpt2.c: GPT-2. Learned position embeddings instead of RoPE, LayerNorm
 * with biases, one fused QKV projection with its bias, biases on the
 * attention output and a GELU MLP without a gate; output tied to the
 * token embeddings unless the file has its own. */
#include "arch.h"


static int load(struct lm_loader *ld) {
    struct lm_model *m = ld->m;
    struct lm_hparams *hp = &m->hp;
    if (lm_arch_float(m, "attention.layer_norm_epsilon", 1e-5f, 0.0f, 1.0f, &hp->norm_eps, ld->err) < 0) return -1;
    hp->layer_norm = true;
    int E = hp->n_embd, q_dim = hp->n_head * hp->head_dim, kv_dim = hp->n_head_kv * hp->head_dim;
    m->output_norm_b = lm_arch_tensor(ld, -1, "output_norm.bias", E, 0, false);
    m->pos_embd = lm_arch_tensor(ld, -1, "position_embd.weight", E, hp->n_ctx_train, false);
    if (m->pos_embd && !lm_type_get(m->pos_embd->type)->to_f32) {
        ld->failed = lm_errf(ld->err, "tensor 'position_embd.weight' has format %s, which lm cannot read",
                             lm_type_get(m->pos_embd->type)->name);
        return -1;
    }
    for (int l = 0; l < hp->n_layer && !ld->failed; l++) {
        struct lm_layer *L = &m->layers[l];
        L->rope = -1;
        L->attn_norm = lm_arch_tensor(ld, l, "attn_norm.weight", E, 0, false);
        L->attn_norm_b = lm_arch_tensor(ld, l, "attn_norm.bias", E, 0, false);
        const struct lm_tensor *qkv = lm_arch_tensor(ld, l, "attn_qkv.weight", E, q_dim + 2 * kv_dim, false);
        const struct lm_tensor *qkv_b = lm_arch_tensor(ld, l, "attn_qkv.bias", q_dim + 2 * kv_dim, 0, false);
        L->wq = lm_arch_rows(ld, qkv, 0, q_dim);
        L->wk = lm_arch_rows(ld, qkv, q_dim, kv_dim);
        L->wv = lm_arch_rows(ld, qkv, q_dim + kv_dim, kv_dim);
        L->bq = lm_arch_rows(ld, qkv_b, 0, q_dim);
        L->bk = lm_arch_rows(ld, qkv_b, q_dim, kv_dim);
        L->bv = lm_arch_rows(ld, qkv_b, q_dim + kv_dim, kv_dim);
        L->wo = lm_arch_tensor(ld, l, "attn_output.weight", q_dim, E, false);
        L->bo = lm_arch_tensor(ld, l, "attn_output.bias", E, 0, false);
        L->ffn_norm = lm_arch_tensor(ld, l, "ffn_norm.weight", E, 0, false);
        L->ffn_norm_b = lm_arch_tensor(ld, l, "ffn_norm.bias", E, 0, false);
        L->w_up = lm_arch_tensor(ld, l, "ffn_up.weight", E, hp->n_ff, false);
        L->b_up = lm_arch_tensor(ld, l, "ffn_up.bias", hp->n_ff, 0, false);
        L->w_down = lm_arch_tensor(ld, l, "ffn_down.weight", hp->n_ff, E, false);
        L->b_down = lm_arch_tensor(ld, l, "ffn_down.bias", E, 0, false);
    }
    return ld->failed ? -1 : 0;
}

static void layer(const struct lm_fwd *f, const struct lm_layer *L) {
    struct lm_ctx *c = f->c;
    lm_blk_layernorm(f, c->xn, c->x, L->attn_norm, L->attn_norm_b, f->b->n);
    lm_blk_attention(f, L, (struct lm_blk_in){0});
    lm_blk_residual(f);
    lm_blk_layernorm(f, c->xn, c->x, L->ffn_norm, L->ffn_norm_b, f->b->n);
    lm_blk_ffn(f, L);
    lm_blk_residual(f);
}

const struct lm_arch lm_arch_gpt2 = {"gpt2", load, layer};
