/* granite.c: IBM Granite (3.x dense). Llama's layer with four multipliers
 * from the metadata: token embeddings times embedding_scale, attention
 * scores times attention.scale (instead of 1/sqrt(head_dim)), each
 * branch times residual_scale before it joins the residual, and the
 * logits divided by logit_scale. rope.scaling.finetuned false turns RoPE
 * off in every layer. Optional biases on the attention output and FFN. */
#include "arch.h"

#include <stdio.h>

static int load(struct lm_loader *ld) {
    struct lm_model *m = ld->m;
    struct lm_hparams *hp = &m->hp;
    float logit_scale, emb_scale, att_scale, res_scale;
    /* 0 (or absent) means "no multiplier" for all but logit_scale, as in llama.cpp */
    if (lm_arch_float(m, "logit_scale", 0.0f, 0.0f, 1e6f, &logit_scale, ld->err) < 0 ||
        lm_arch_float(m, "embedding_scale", 0.0f, 0.0f, 1e6f, &emb_scale, ld->err) < 0 ||
        lm_arch_float(m, "attention.scale", 0.0f, 0.0f, 1e6f, &att_scale, ld->err) < 0 ||
        lm_arch_float(m, "residual_scale", 0.0f, 0.0f, 1e6f, &res_scale, ld->err) < 0)
        return -1;
    if (logit_scale < 1e-6f) /* it divides the logits */
        return lm_errf(ld->err, "metadata '%s.logit_scale' is missing or below 1e-6", hp->arch_name);
    hp->logit_scale = 1.0f / logit_scale;
    if (emb_scale != 0.0f) hp->emb_scale = emb_scale;
    if (att_scale != 0.0f) hp->att_scale = att_scale;
    if (res_scale != 0.0f) hp->res_scale = res_scale;
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.finetuned", hp->arch_name);
    bool rope = true;
    if (lm_gguf_get_bool(&m->gguf, key, &rope, ld->err) < 0) return -1;
    int E = hp->n_embd;
    for (int l = 0; l < hp->n_layer && !ld->failed; l++) {
        struct lm_layer *L = &m->layers[l];
        lm_arch_llama_tensors(ld, L, l, false, false);
        L->bo = lm_arch_tensor(ld, l, "attn_output.bias", E, 0, true);
        L->b_gate = lm_arch_tensor(ld, l, "ffn_gate.bias", hp->n_ff, 0, true);
        L->b_up = lm_arch_tensor(ld, l, "ffn_up.bias", hp->n_ff, 0, true);
        L->b_down = lm_arch_tensor(ld, l, "ffn_down.bias", E, 0, true);
        if (!rope) L->rope = -1;
    }
    return ld->failed ? -1 : 0;
}

const struct lm_arch lm_arch_granite = {"granite", load, lm_arch_llama_layer};
