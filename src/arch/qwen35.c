/* qwen35.c: Qwen3.5 (dense), as llama.cpp reads and computes it
 * (src/models/qwen35.cpp). A hybrid stack: most layers mix tokens with a
 * gated delta net (delta_net.c, a recurrent state per sequence), every few
 * a full-attention layer whose query projection also gives a gate on its
 * output, with Q/K norms and a partial NeoX rope. Which layers are which:
 * attention.recurrent_layers (a flag per layer), else every
 * full_attention_interval-th layer is attention. Every layer ends in a
 * SwiGLU FFN after post_attention_norm. Blocks of multi-token prediction
 * (nextn_predict_layers, after the trunk) are not loaded. */
#include "arch.h"

#include "lm/ops.h"

#include <stdio.h>
#include <stdlib.h>

#define MAX_HEAD_DIM 4096
#define MAX_HEADS 4096
#define MAX_CONV 64

static int load_ssm_hparams(struct lm_model *m, struct lm_err *err) {
    struct lm_ssm *s = &m->hp.ssm;
    int d_inner;
    if (lm_arch_int(m, "ssm.conv_kernel", -1, 1, MAX_CONV, &s->d_conv, err) < 0 ||
        lm_arch_int(m, "ssm.state_size", -1, 1, MAX_HEAD_DIM, &s->head_dim, err) < 0 ||
        lm_arch_int(m, "ssm.group_count", -1, 1, MAX_HEADS, &s->n_k_heads, err) < 0 ||
        lm_arch_int(m, "ssm.time_step_rank", -1, 1, MAX_HEADS, &s->n_v_heads, err) < 0 ||
        lm_arch_int(m, "ssm.inner_size", -1, 1, (int64_t)MAX_HEADS * MAX_HEAD_DIM, &d_inner, err) < 0)
        return -1;
    if (d_inner != s->n_v_heads * s->head_dim)
        return lm_errf(err, "ssm.inner_size %d is not %d value heads of %d (lm needs value heads as wide as key heads)",
                       d_inner, s->n_v_heads, s->head_dim);
    if (s->n_v_heads % s->n_k_heads)
        return lm_errf(err, "%d value heads cannot share %d key heads", s->n_v_heads, s->n_k_heads);
    return 0;
}

/* Whether layer l is recurrent: the flag array, else the interval. */
static int recurrent_layers(struct lm_model *m, bool *rec, struct lm_err *err) {
    int n_layer = m->hp.n_layer, interval;
    char key[128];
    snprintf(key, sizeof key, "%s.attention.recurrent_layers", m->hp.arch_name);
    const struct lm_gguf_value *v = lm_gguf_get(&m->gguf, key);
    if (v) {
        bool ints = v->type == LM_GGUF_ARRAY && (v->arr.type == LM_GGUF_BOOL || v->arr.type == LM_GGUF_U8 ||
                                                 v->arr.type == LM_GGUF_I32 || v->arr.type == LM_GGUF_U32);
        if (!ints || v->arr.n != (uint64_t)n_layer)
            return lm_errf(err, "metadata '%s' is not an array of %d flags", key, n_layer);
        for (int l = 0; l < n_layer; l++) rec[l] = lm_gguf_arr_int(v, (uint64_t)l) != 0;
        return 0;
    }
    if (lm_arch_int(m, "full_attention_interval", 4, 1, n_layer, &interval, err) < 0) return -1;
    for (int l = 0; l < n_layer; l++) rec[l] = (l + 1) % interval != 0;
    return 0;
}

/* Text positions in llama.cpp's interleaved multi-section rope: sections
 * t, h and w get the token's position, section e position 0. Pair i is in
 * section e when it falls in none of the interleaved t/h/w slots; its angle
 * is then 0, which a frequency of 0 gives. */
static int rope_sections(struct lm_model *m, struct lm_err *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.rope.dimension_sections", m->hp.arch_name);
    const struct lm_gguf_value *v = lm_gguf_get(&m->gguf, key);
    struct lm_rope *r = &m->rope[0];
    r->neox = true;
    if (!v) return 0;
    if (v->type != LM_GGUF_ARRAY || (v->arr.type != LM_GGUF_I32 && v->arr.type != LM_GGUF_U32) || v->arr.n < 3 ||
        v->arr.n > 4)
        return lm_errf(err, "metadata '%s' is not an array of 3 or 4 integers", key);
    int64_t sec[4] = {0, 0, 0, 0}, total = 0;
    for (uint64_t i = 0; i < v->arr.n; i++) {
        sec[i] = lm_gguf_arr_int(v, i);
        if (sec[i] < 0 || sec[i] > MAX_HEAD_DIM) return lm_errf(err, "metadata '%s' has a section of %lld", key, (long long)sec[i]);
        total += sec[i];
    }
    if (total == 0 || total > r->n_rot / 2)
        return lm_errf(err, "metadata '%s' has %lld pairs in all (expected 1..%d)", key, (long long)total, r->n_rot / 2);
    for (int i = 0; i < r->n_rot / 2; i++) {
        int64_t sector = i % total;
        bool positioned = (sector % 3 == 0 && sector < 3 * sec[0]) || (sector % 3 == 1 && sector < 3 * sec[1]) ||
                          (sector % 3 == 2 && sector < 3 * sec[2]);
        if (!positioned) r->freq[i] = 0;
    }
    return 0;
}

static void attention_tensors(struct lm_loader *ld, struct lm_layer *L, int l) {
    const struct lm_hparams *hp = &ld->m->hp;
    int q_dim = hp->n_head * hp->head_dim, kv_dim = hp->n_head_kv * hp->head_dim;
    L->att_gated = true;
    L->wq = lm_arch_tensor(ld, l, "attn_q.weight", hp->n_embd, 2 * q_dim, false);
    L->wk = lm_arch_tensor(ld, l, "attn_k.weight", hp->n_embd, kv_dim, false);
    L->wv = lm_arch_tensor(ld, l, "attn_v.weight", hp->n_embd, kv_dim, false);
    L->wo = lm_arch_tensor(ld, l, "attn_output.weight", q_dim, hp->n_embd, false);
    L->q_norm = lm_arch_tensor(ld, l, "attn_q_norm.weight", hp->head_dim, 0, false);
    L->k_norm = lm_arch_tensor(ld, l, "attn_k_norm.weight", hp->head_dim, 0, false);
}

static void recurrent_tensors(struct lm_loader *ld, struct lm_layer *L, int l) {
    const struct lm_hparams *hp = &ld->m->hp;
    const struct lm_ssm *s = &hp->ssm;
    int conv_dim = lm_delta_net_conv_dim(s), value_dim = lm_delta_net_value_dim(s), E = hp->n_embd;
    struct lm_ssm_layer *r = &L->ssm;
    r->qkv = lm_arch_tensor(ld, l, "attn_qkv.weight", E, conv_dim, false);
    r->z = lm_arch_tensor(ld, l, "attn_gate.weight", E, value_dim, false);
    r->conv = lm_arch_tensor(ld, l, "ssm_conv1d.weight", s->d_conv, conv_dim, false);
    r->dt = lm_arch_tensor(ld, l, "ssm_dt.bias", s->n_v_heads, 0, false);
    r->a = lm_arch_tensor(ld, l, "ssm_a", s->n_v_heads, 0, false);
    r->beta = lm_arch_tensor(ld, l, "ssm_beta.weight", E, s->n_v_heads, false);
    r->alpha = lm_arch_tensor(ld, l, "ssm_alpha.weight", E, s->n_v_heads, false);
    r->norm = lm_arch_tensor(ld, l, "ssm_norm.weight", s->head_dim, 0, false);
    r->out = lm_arch_tensor(ld, l, "ssm_out.weight", value_dim, E, false);
    if (r->conv && r->conv->type != LM_TYPE_F32 && !ld->failed)
        ld->failed = lm_errf(ld->err, "tensor 'blk.%d.ssm_conv1d.weight' has format %s (expected f32)", l,
                             lm_type_get(r->conv->type)->name);
}

static int load(struct lm_loader *ld) {
    struct lm_model *m = ld->m;
    struct lm_hparams *hp = &m->hp;
    if (load_ssm_hparams(m, ld->err) < 0 || rope_sections(m, ld->err) < 0) return -1;
    bool *rec = lm_xcalloc((size_t)hp->n_layer, sizeof *rec);
    int rc = recurrent_layers(m, rec, ld->err), n_mtp = 0;
    /* the converter appends the multi-token-prediction blocks to
     * block_count; the main pass (llama.cpp's too) runs the trunk only */
    if (rc == 0) rc = lm_arch_int(m, "nextn_predict_layers", 0, 0, hp->n_layer - 1, &n_mtp, ld->err);
    hp->n_layer -= n_mtp;
    hp->n_kv_layer = 0; /* only attention layers keep keys and values */
    for (int l = 0; l < hp->n_layer && rc == 0 && !ld->failed; l++) {
        struct lm_layer *L = &m->layers[l];
        L->attn_norm = lm_arch_tensor(ld, l, "attn_norm.weight", hp->n_embd, 0, false);
        L->ffn_norm = lm_arch_tensor(ld, l, "post_attention_norm.weight", hp->n_embd, 0, false);
        L->w_gate = lm_arch_tensor(ld, l, "ffn_gate.weight", hp->n_embd, hp->n_ff, false);
        L->w_up = lm_arch_tensor(ld, l, "ffn_up.weight", hp->n_embd, hp->n_ff, false);
        L->w_down = lm_arch_tensor(ld, l, "ffn_down.weight", hp->n_ff, hp->n_embd, false);
        if (rec[l]) {
            L->ssm.slot = hp->ssm.n_layer++;
            L->rope = -1;
            recurrent_tensors(ld, L, l);
        } else {
            L->kv_slot = hp->n_kv_layer++;
            attention_tensors(ld, L, l);
        }
    }
    free(rec);
    if (rc == 0 && !ld->failed && hp->ssm.n_layer == 0) hp->ssm = (struct lm_ssm){0};
    return rc < 0 || ld->failed ? -1 : 0;
}

static void layer(const struct lm_fwd *f, const struct lm_layer *L) {
    struct lm_ctx *c = f->c;
    if (L->ssm.out) {
        lm_blk_rmsnorm(f, c->xn, c->x, L->attn_norm, f->b->n);
        lm_blk_delta_net(f, L);
    } else {
        lm_blk_attention(f, L, (struct lm_blk_in){L->attn_norm, false});
    }
    lm_blk_ffn_gated(f, L, LM_ACT_SILU, (struct lm_blk_in){L->ffn_norm, true});
    lm_blk_residual(f);
}

const struct lm_arch lm_arch_qwen35 = {"qwen35", load, layer};
