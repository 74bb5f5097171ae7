/* gemma.c: the Gemma family. gemma2 and gemma3: embeddings scaled by
 * sqrt(n_embd), RMSNorm before and after both attention and the GeGLU FFN
 * (the converter stores the norms with Gemma's +1 added), NEOX RoPE, output
 * tied to the embeddings, and layers that alternate between a sliding
 * window and the whole context, each kind with its own RoPE base.
 * gemma2 soft-caps the attention scores and the final logits; gemma3 norms
 * each query and key head instead, and soft-caps the logits only where the
 * file says. Hyperparameters are read as llama.cpp reads them
 * (src/models/gemma2.cpp, gemma3.cpp). */
#include "arch.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int lm_arch_window_layers(struct lm_loader *ld, int window, int def_period) {
    struct lm_model *m = ld->m;
    char key[128];
    snprintf(key, sizeof key, "%s.attention.sliding_window_pattern", m->hp.arch_name);
    const struct lm_gguf_value *v = lm_gguf_get(&m->gguf, key);
    if (v && v->type == LM_GGUF_ARRAY) {
        const struct lm_gguf_value *arr;
        if (lm_gguf_get_arr(&m->gguf, key, LM_GGUF_BOOL, &arr, ld->err) < 0) return -1;
        if (arr->arr.n != (uint64_t)m->hp.n_layer)
            return lm_errf(ld->err, "metadata '%s' has %llu entries for %d layers", key, (unsigned long long)arr->arr.n,
                           m->hp.n_layer);
        for (int l = 0; l < m->hp.n_layer; l++) m->layers[l].window = lm_gguf_arr_int(arr, (uint64_t)l) ? window : 0;
        return 0;
    }
    int period;
    if (lm_arch_int(m, "attention.sliding_window_pattern", def_period, 0, INT32_MAX, &period, ld->err) < 0) return -1;
    for (int l = 0; l < m->hp.n_layer; l++) m->layers[l].window = period == 0 || l % period < period - 1 ? window : 0;
    return 0;
}

/* Gives the window layers rope `r`. */
static void window_layers_rope(struct lm_model *m, int r) {
    for (int l = 0; l < m->hp.n_layer; l++)
        if (m->layers[l].window) m->layers[l].rope = r;
}

/* llama.cpp scales queries by 1/sqrt(n_embd / n_head) for the 27B models
 * (recognised by their layer count), by 1/sqrt(head_dim) otherwise. */
static int set_att_scale(struct lm_hparams *hp, int n_layer_27b, struct lm_err *err) {
    if (hp->n_layer != n_layer_27b) return 0;
    if (hp->n_embd < hp->n_head) /* the integer quotient would be 0, the scale infinite */
        return lm_errf(err, "embedding length %d is less than %d heads (a %d-layer %s scales attention by "
                            "1/sqrt(n_embd / n_head))", hp->n_embd, hp->n_head, n_layer_27b, hp->arch_name);
    hp->att_scale = 1.0f / sqrtf((float)(hp->n_embd / hp->n_head));
    return 0;
}

static int load_tensors(struct lm_loader *ld, bool qk_norm) {
    struct lm_model *m = ld->m;
    for (int l = 0; l < m->hp.n_layer && !ld->failed; l++) {
        struct lm_layer *L = &m->layers[l];
        lm_arch_llama_tensors(ld, L, l, false, qk_norm);
        L->attn_post_norm = lm_arch_tensor(ld, l, "post_attention_norm.weight", m->hp.n_embd, 0, false);
        L->ffn_post_norm = lm_arch_tensor(ld, l, "post_ffw_norm.weight", m->hp.n_embd, 0, false);
    }
    return ld->failed ? -1 : 0;
}

static int load_gemma3(struct lm_loader *ld) {
    struct lm_model *m = ld->m;
    struct lm_hparams *hp = &m->hp;
    m->rope[0].neox = true;
    hp->emb_scale = sqrtf((float)hp->n_embd);
    if (set_att_scale(hp, 62, ld->err) < 0) return -1;
    int window;
    float base_swa;
    if (lm_arch_float(m, "final_logit_softcapping", 0.0f, 0.0f, 1e6f, &hp->logit_softcap, ld->err) < 0 ||
        lm_arch_int(m, "attention.sliding_window", 0, 0, INT32_MAX, &window, ld->err) < 0)
        return -1;
    if (window > 0) {
        /* window layers never take the global layers' RoPE scaling */
        if (lm_arch_window_layers(ld, window, 6) < 0 ||
            lm_arch_float(m, "rope.freq_base_swa", 10000.0f, 1.0f, 1e12f, &base_swa, ld->err) < 0)
            return -1;
        int r = lm_arch_add_rope(m, base_swa, m->rope[0].n_rot, true, ld->err);
        if (r < 0) return -1;
        window_layers_rope(m, r);
    }
    return load_tensors(ld, true);
}

static int load_gemma2(struct lm_loader *ld) {
    struct lm_model *m = ld->m;
    struct lm_hparams *hp = &m->hp;
    m->rope[0].neox = true;
    hp->emb_scale = sqrtf((float)hp->n_embd);
    if (set_att_scale(hp, 46, ld->err) < 0) return -1;
    int window;
    float base_swa;
    if (lm_arch_float(m, "attn_logit_softcapping", 50.0f, 1e-6f, 1e6f, &hp->att_softcap, ld->err) < 0 ||
        lm_arch_float(m, "final_logit_softcapping", 30.0f, 1e-6f, 1e6f, &hp->logit_softcap, ld->err) < 0 ||
        lm_arch_int(m, "attention.sliding_window", 4096, 1, INT32_MAX, &window, ld->err) < 0 ||
        lm_arch_window_layers(ld, window, 2) < 0 ||
        lm_arch_float(m, "rope.freq_base_swa", hp->rope_base, 1.0f, 1e12f, &base_swa, ld->err) < 0)
        return -1;
    if (base_swa != hp->rope_base) {
        /* window layers keep the global layers' scaling, with their own base */
        int n_rot = m->rope[0].n_rot, r = lm_arch_add_rope(m, base_swa, n_rot, true, ld->err);
        if (r < 0) return -1;
        for (int i = 0; i < n_rot / 2; i++)
            m->rope[r].freq[i] = (float)(m->rope[0].freq[i] * pow(base_swa / hp->rope_base, -2.0 * i / n_rot));
        m->rope[r].mscale = m->rope[0].mscale;
        memcpy(m->rope[r].scaling, m->rope[0].scaling, sizeof m->rope[r].scaling);
        window_layers_rope(m, r);
    }
    return load_tensors(ld, false);
}

void lm_arch_gemma_layer(const struct lm_fwd *f, const struct lm_layer *L) {
    struct lm_ctx *c = f->c;
    int n = f->b->n;
    lm_blk_attention(f, L, (struct lm_blk_in){L->attn_norm, false});
    lm_blk_rmsnorm(f, c->xn, c->xn, L->attn_post_norm, n);
    lm_blk_ffn_gated(f, L, LM_ACT_GELU_TANH, (struct lm_blk_in){L->ffn_norm, true});
    lm_blk_rmsnorm(f, c->xn, c->xn, L->ffn_post_norm, n);
    lm_blk_residual(f);
}

const struct lm_arch lm_arch_gemma2 = {"gemma2", load_gemma2, lm_arch_gemma_layer};
const struct lm_arch lm_arch_gemma3 = {"gemma3", load_gemma3, lm_arch_gemma_layer};
