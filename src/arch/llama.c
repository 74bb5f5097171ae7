/* llama.c: the llama family. llama (Llama 2/3.x, SmolLM/SmolLM2,
 * TinyLlama, Mistral), qwen2 (biases on Q, K and V) and qwen3 (RMSNorm of
 * each query and key head): pre-norm layers of attention and a SwiGLU FFN.
 * Llama rotates adjacent pairs; the Qwens rotate halves (GPT-NeoX). */
#include "arch.h"

void lm_arch_llama_tensors(struct lm_loader *ld, struct lm_layer *L, int l, bool biases, bool qk_norm) {
    const struct lm_hparams *hp = &ld->m->hp;
    int q_dim = hp->n_head * L->head_dim, kv_dim = L->n_head_kv * L->head_dim;
    L->attn_norm = lm_arch_tensor(ld, l, "attn_norm.weight", hp->n_embd, 0, false);
    L->wq = lm_arch_tensor(ld, l, "attn_q.weight", hp->n_embd, q_dim, false);
    L->wk = lm_arch_tensor(ld, l, "attn_k.weight", hp->n_embd, kv_dim, false);
    L->wv = lm_arch_tensor(ld, l, "attn_v.weight", hp->n_embd, kv_dim, false);
    L->wo = lm_arch_tensor(ld, l, "attn_output.weight", q_dim, hp->n_embd, false);
    L->ffn_norm = lm_arch_tensor(ld, l, "ffn_norm.weight", hp->n_embd, 0, false);
    L->w_gate = lm_arch_tensor(ld, l, "ffn_gate.weight", hp->n_embd, L->n_ff, false);
    L->w_up = lm_arch_tensor(ld, l, "ffn_up.weight", hp->n_embd, L->n_ff, false);
    L->w_down = lm_arch_tensor(ld, l, "ffn_down.weight", L->n_ff, hp->n_embd, false);
    L->bq = lm_arch_tensor(ld, l, "attn_q.bias", q_dim, 0, !biases);
    L->bk = lm_arch_tensor(ld, l, "attn_k.bias", kv_dim, 0, !biases);
    L->bv = lm_arch_tensor(ld, l, "attn_v.bias", kv_dim, 0, !biases);
    L->q_norm = lm_arch_tensor(ld, l, "attn_q_norm.weight", L->head_dim, 0, !qk_norm);
    L->k_norm = lm_arch_tensor(ld, l, "attn_k_norm.weight", L->head_dim, 0, !qk_norm);
}

static int load(struct lm_loader *ld, bool biases, bool qk_norm) {
    struct lm_model *m = ld->m;
    for (int l = 0; l < m->hp.n_layer && !ld->failed; l++) lm_arch_llama_tensors(ld, &m->layers[l], l, biases, qk_norm);
    return ld->failed ? -1 : 0;
}

static int load_llama(struct lm_loader *ld) { return load(ld, false, false); }
static int load_qwen2(struct lm_loader *ld) {
    ld->m->rope[0].neox = true;
    return load(ld, true, false);
}
static int load_qwen3(struct lm_loader *ld) {
    ld->m->rope[0].neox = true;
    return load(ld, false, true);
}

void lm_arch_llama_layer(const struct lm_fwd *f, const struct lm_layer *L) {
    const struct lm_model *m = f->c->model;
    /* the FFN's residual is added as the next layer makes its input (one
     * pool job less a layer), the last layer's here */
    lm_blk_attention(f, L, (struct lm_blk_in){L->attn_norm, L != m->layers});
    lm_blk_ffn_gated(f, L, LM_ACT_SILU, (struct lm_blk_in){L->ffn_norm, true});
    if (L == m->layers + m->hp.n_layer - 1) lm_blk_residual(f);
}

const struct lm_arch lm_arch_llama = {"llama", load_llama, lm_arch_llama_layer};
const struct lm_arch lm_arch_qwen2 = {"qwen2", load_qwen2, lm_arch_llama_layer};
const struct lm_arch lm_arch_qwen3 = {"qwen3", load_qwen3, lm_arch_llama_layer};
