/* gemma4.c: Gemma 4 (E2B/E4B), as llama.cpp runs it (src/models/gemma4.cpp,
 * llama-model.cpp): Gemma 3's layer (embeddings scaled by sqrt(n_embd),
 * RMSNorm before and after attention and the GeGLU FFN, Q/K head norms,
 * NEOX RoPE, tied output) with
 * - window and global layers from a bool per layer, each kind with its own
 *   head size (key_length_swa / key_length), RoPE base and dimensions; the
 *   global layers' RoPE is "proportional": rope_freqs divides the
 *   frequencies (1 for the rotated pairs, 1e30 for the others);
 * - KV heads and FFN width per layer (metadata arrays);
 * - the last shared_kv_layers layers compute no K and V and attend to the
 *   cache of the last window or global layer before them (their kind);
 * - V normed per head without a weight, scores not scaled (1, not
 *   1/sqrt(head_dim));
 * - per-layer token embeddings: after the FFN each layer adds a projection
 *   of its own slice of them, gated by its state; then its output is
 *   multiplied by layer_output_scale;
 * - the final logits soft-capped where the file says.
 * Norms are stored as they are applied (no +1). The mixture-of-experts
 * variant (26B-A4B) is refused by the common loader (expert_count). */
#include "arch.h"

#include <math.h>
#include <stdio.h>

#define MAX_PER_LAYER_WIDTH (1 << 20) /* n_embd_per_layer x n_layer: one row of the per-layer embeddings */

/* Window layers: head size, RoPE (their own base, no scaling, no factors), window. */
static int load_window_layers(struct lm_loader *ld) {
    struct lm_model *m = ld->m;
    struct lm_hparams *hp = &m->hp;
    char key[128];
    snprintf(key, sizeof key, "%s.attention.sliding_window_pattern", hp->arch_name);
    const struct lm_gguf_value *pattern = lm_gguf_get(&m->gguf, key);
    if (!pattern || pattern->type != LM_GGUF_ARRAY)
        return lm_errf(ld->err, "metadata '%s' is missing (expected a bool per layer)", key);
    int window, hd, v_len, n_rot;
    float base;
    if (lm_arch_int(m, "attention.sliding_window", -1, 1, INT32_MAX, &window, ld->err) < 0 ||
        lm_arch_window_layers(ld, window, 0) < 0 ||
        lm_arch_int(m, "attention.key_length_swa", -1, 2, hp->head_dim, &hd, ld->err) < 0 ||
        lm_arch_int(m, "attention.value_length_swa", -1, 1, hp->head_dim, &v_len, ld->err) < 0 ||
        lm_arch_float(m, "rope.freq_base_swa", 10000.0f, 1.0f, 1e12f, &base, ld->err) < 0 ||
        lm_arch_int(m, "rope.dimension_count_swa", m->rope[0].n_rot, 2, hd, &n_rot, ld->err) < 0)
        return -1;
    if (v_len != hd) return lm_errf(ld->err, "window layers' key length %d differs from their value length %d", hd, v_len);
    if (hd % 2 || n_rot % 2) return lm_errf(ld->err, "window layers' head %d or rotary dimensions %d are odd", hd, n_rot);
    int r = lm_arch_add_rope(m, base, n_rot, true, ld->err);
    if (r < 0) return -1;
    for (int l = 0; l < hp->n_layer; l++)
        if (m->layers[l].window) m->layers[l].head_dim = hd, m->layers[l].rope = r;
    return 0;
}

/* The last n_shared layers read the cache of layer n_kv - 2 (window) or
 * n_kv - 1 (global), n_kv = n_layer - n_shared, as llama.cpp's reuse rule
 * says; that layer must be of the same kind. */
static int share_kv(struct lm_loader *ld) {
    struct lm_model *m = ld->m;
    struct lm_hparams *hp = &m->hp;
    int n_shared;
    if (lm_arch_int(m, "attention.shared_kv_layers", 0, 0, hp->n_layer - 1, &n_shared, ld->err) < 0) return -1;
    int n_kv = hp->n_layer - n_shared;
    if (n_shared && n_kv < 2)
        return lm_errf(ld->err, "%d of %d layers share the KV cache of earlier ones (at least 2 must have their own)",
                       n_shared, hp->n_layer);
    hp->n_kv_layer = n_kv;
    for (int l = n_kv; l < hp->n_layer; l++) {
        struct lm_layer *L = &m->layers[l];
        int from = n_kv - (L->window ? 2 : 1);
        if (!m->layers[from].window != !L->window)
            return lm_errf(ld->err, "layer %d (%s) would read the KV cache of layer %d, a %s layer", l,
                           L->window ? "window" : "global", from, L->window ? "global" : "window");
        L->kv_slot = from;
        L->kv_reused = true;
    }
    return 0;
}

static void load_layer(struct lm_loader *ld, struct lm_layer *L, int l) {
    const struct lm_hparams *hp = &ld->m->hp;
    int E = hp->n_embd, hd = L->head_dim, q_dim = hp->n_head * hd, kv_dim = L->n_head_kv * hd, P = hp->n_embd_per_layer;
    L->attn_norm = lm_arch_tensor(ld, l, "attn_norm.weight", E, 0, false);
    L->wq = lm_arch_tensor(ld, l, "attn_q.weight", E, q_dim, false);
    L->q_norm = lm_arch_tensor(ld, l, "attn_q_norm.weight", hd, 0, false);
    if (!L->kv_reused) {
        L->wk = lm_arch_tensor(ld, l, "attn_k.weight", E, kv_dim, false);
        L->wv = lm_arch_tensor(ld, l, "attn_v.weight", E, kv_dim, false);
        L->k_norm = lm_arch_tensor(ld, l, "attn_k_norm.weight", hd, 0, false);
    }
    L->v_norm = true;
    L->wo = lm_arch_tensor(ld, l, "attn_output.weight", q_dim, E, false);
    L->attn_post_norm = lm_arch_tensor(ld, l, "post_attention_norm.weight", E, 0, false);
    L->ffn_norm = lm_arch_tensor(ld, l, "ffn_norm.weight", E, 0, false);
    L->w_gate = lm_arch_tensor(ld, l, "ffn_gate.weight", E, L->n_ff, false);
    L->w_up = lm_arch_tensor(ld, l, "ffn_up.weight", E, L->n_ff, false);
    L->w_down = lm_arch_tensor(ld, l, "ffn_down.weight", L->n_ff, E, false);
    L->ffn_post_norm = lm_arch_tensor(ld, l, "post_ffw_norm.weight", E, 0, false);
    L->out_scale = lm_arch_tensor(ld, l, "layer_output_scale.weight", 1, 0, true);
    if (P) {
        L->pl_gate = lm_arch_tensor(ld, l, "inp_gate.weight", E, P, false);
        L->pl_proj = lm_arch_tensor(ld, l, "proj.weight", P, E, false);
        L->pl_post_norm = lm_arch_tensor(ld, l, "post_norm.weight", E, 0, false);
    }
}

static int load(struct lm_loader *ld) {
    struct lm_model *m = ld->m;
    struct lm_hparams *hp = &m->hp;
    m->rope[0].neox = true;
    hp->emb_scale = sqrtf((float)hp->n_embd);
    hp->att_scale = 1.0f;
    if (lm_arch_float(m, "final_logit_softcapping", 0.0f, 0.0f, 1e6f, &hp->logit_softcap, ld->err) < 0 ||
        lm_arch_int(m, "embedding_length_per_layer_input", -1, 0, MAX_PER_LAYER_WIDTH / hp->n_layer,
                    &hp->n_embd_per_layer, ld->err) < 0 ||
        load_window_layers(ld) < 0 || share_kv(ld) < 0)
        return -1;
    bool any_global = false;
    for (int l = 0; l < hp->n_layer; l++) any_global |= !m->layers[l].window;
    if (any_global) /* llama.cpp requires the proportional RoPE's factors (load_rope applied them) */
        lm_arch_tensor(ld, -1, "rope_freqs.weight", m->rope[0].n_rot / 2, 0, false);
    int P = hp->n_embd_per_layer;
    if (P) {
        int64_t width = (int64_t)P * hp->n_layer;
        m->pl_tok_embd = lm_arch_tensor(ld, -1, "per_layer_token_embd.weight", width, hp->n_vocab, false);
        m->pl_model_proj = lm_arch_tensor(ld, -1, "per_layer_model_proj.weight", hp->n_embd, width, false);
        m->pl_proj_norm = lm_arch_tensor(ld, -1, "per_layer_proj_norm.weight", P, 0, false);
    }
    for (int l = 0; l < hp->n_layer && !ld->failed; l++) load_layer(ld, &m->layers[l], l);
    return ld->failed ? -1 : 0;
}

static void layer(const struct lm_fwd *f, const struct lm_layer *L) {
    lm_arch_gemma_layer(f, L);
    if (L->pl_gate) lm_blk_per_layer_embd(f, L);
    if (L->out_scale) lm_blk_out_scale(f, L);
}

const struct lm_arch lm_arch_gemma4 = {"gemma4", load, layer};
