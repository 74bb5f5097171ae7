/* phi3.c: Phi-3, Phi-3.5 and Phi-4-mini. Llama's pre-norm layers with
 * fused tensors: attn_qkv holds the Q, K and V rows (in that order, with
 * an optional fused bias), ffn_up the gate rows and then the up rows of a
 * SwiGLU FFN; lm splits them into views at load. GPT-NeoX RoPE over
 * rope.dimension_count dimensions (3/4 of the head in Phi-4-mini) with
 * LongRoPE's factors and attention factor (model.c reads those for every
 * family). attention.sliding_window is ignored, as llama.cpp ignores it
 * (it disables Phi's windows: the converters' metadata is wrong for them). */
#include "arch.h"

/* Q, K and V from attn_qkv (with attn_qkv.bias, else attn_q/k/v.bias), or
 * from separate attn_q/k/v as in llama. */
static void qkv_tensors(struct lm_loader *ld, struct lm_layer *L, int l) {
    const struct lm_hparams *hp = &ld->m->hp;
    int q_dim = hp->n_head * hp->head_dim, kv_dim = hp->n_head_kv * hp->head_dim;
    const struct lm_tensor *qkv = lm_arch_tensor(ld, l, "attn_qkv.weight", hp->n_embd, q_dim + 2 * kv_dim, true);
    if (!qkv) {
        L->wq = lm_arch_tensor(ld, l, "attn_q.weight", hp->n_embd, q_dim, false);
        L->wk = lm_arch_tensor(ld, l, "attn_k.weight", hp->n_embd, kv_dim, false);
        L->wv = lm_arch_tensor(ld, l, "attn_v.weight", hp->n_embd, kv_dim, false);
    } else {
        L->wq = lm_arch_rows(ld, qkv, 0, q_dim);
        L->wk = lm_arch_rows(ld, qkv, q_dim, kv_dim);
        L->wv = lm_arch_rows(ld, qkv, q_dim + kv_dim, kv_dim);
    }
    const struct lm_tensor *bias = qkv ? lm_arch_tensor(ld, l, "attn_qkv.bias", q_dim + 2 * kv_dim, 0, true) : NULL;
    if (bias) {
        L->bq = lm_arch_rows(ld, bias, 0, q_dim);
        L->bk = lm_arch_rows(ld, bias, q_dim, kv_dim);
        L->bv = lm_arch_rows(ld, bias, q_dim + kv_dim, kv_dim);
    } else {
        L->bq = lm_arch_tensor(ld, l, "attn_q.bias", q_dim, 0, true);
        L->bk = lm_arch_tensor(ld, l, "attn_k.bias", kv_dim, 0, true);
        L->bv = lm_arch_tensor(ld, l, "attn_v.bias", kv_dim, 0, true);
    }
}

static int load(struct lm_loader *ld) {
    struct lm_model *m = ld->m;
    const struct lm_hparams *hp = &m->hp;
    m->rope[0].neox = true;
    for (int l = 0; l < hp->n_layer && !ld->failed; l++) {
        struct lm_layer *L = &m->layers[l];
        L->attn_norm = lm_arch_tensor(ld, l, "attn_norm.weight", hp->n_embd, 0, false);
        qkv_tensors(ld, L, l);
        L->wo = lm_arch_tensor(ld, l, "attn_output.weight", hp->n_head * hp->head_dim, hp->n_embd, false);
        L->ffn_norm = lm_arch_tensor(ld, l, "ffn_norm.weight", hp->n_embd, 0, false);
        const struct lm_tensor *gate_up = lm_arch_tensor(ld, l, "ffn_up.weight", hp->n_embd, 2 * (int64_t)hp->n_ff, false);
        L->w_gate = lm_arch_rows(ld, gate_up, 0, hp->n_ff);
        L->w_up = lm_arch_rows(ld, gate_up, hp->n_ff, hp->n_ff);
        L->w_down = lm_arch_tensor(ld, l, "ffn_down.weight", hp->n_ff, hp->n_embd, false);
    }
    return ld->failed ? -1 : 0;
}

const struct lm_arch lm_arch_phi3 = {"phi3", load, lm_arch_llama_layer};
