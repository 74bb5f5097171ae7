/* model.c: loading a transformer from GGUF and running it: what every
 * family shares (see model.h and arch/arch.h). */
#include "lm/model.h"

#include "arch/arch.h"
#include "lm/ops.h"
#include "lm/tokenizer.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static const struct lm_arch *const archs[] = {
    &lm_arch_llama, &lm_arch_qwen2, &lm_arch_qwen3,   &lm_arch_phi3,    &lm_arch_qwen35,
    &lm_arch_gpt2,  &lm_arch_olmo2, &lm_arch_granite, &lm_arch_smollm3, &lm_arch_gemma2, &lm_arch_gemma3,
    &lm_arch_gemma4};

/* Sanity bounds on hyperparameters, far above any real model, so products
 * of them cannot overflow before the tensor shapes are checked. */
#define MAX_DIM (1 << 20)
#define MAX_LAYERS 4096

int lm_arch_int(const struct lm_model *m, const char *suffix, int64_t def, int64_t lo, int64_t hi, int *out,
                struct lm_err *err) {
    const struct lm_gguf *g = &m->gguf;
    char key[128];
    snprintf(key, sizeof key, "%s.%s", m->hp.arch_name, suffix);
    int64_t v = def;
    int rc = lm_gguf_get_int(g, key, &v, err);
    if (rc < 0) return -1;
    if (rc == 0 && def < 0) return lm_errf(err, "metadata '%s' is missing", key);
    if (v < lo || v > hi) return lm_errf(err, "metadata '%s' is %lld (expected %lld..%lld)", key, (long long)v, (long long)lo, (long long)hi);
    *out = (int)v;
    return 0;
}

int lm_arch_float(const struct lm_model *m, const char *suffix, float def, float lo, float hi, float *out,
                  struct lm_err *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", m->hp.arch_name, suffix);
    float v = def;
    if (lm_gguf_get_f32(&m->gguf, key, &v, err) < 0) return -1;
    if (!(v >= lo && v <= hi)) return lm_errf(err, "metadata '%s' is %g (expected %g..%g)", key, v, lo, hi);
    *out = v;
    return 0;
}

int lm_arch_layer_ints(const struct lm_model *m, const char *suffix, int64_t def, int64_t lo, int64_t hi, int *each,
                       struct lm_err *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", m->hp.arch_name, suffix);
    const struct lm_gguf_value *v = lm_gguf_get(&m->gguf, key);
    int n_layer = m->hp.n_layer;
    if (!v || v->type != LM_GGUF_ARRAY) {
        int x;
        if (lm_arch_int(m, suffix, def, lo, hi, &x, err) < 0) return -1;
        for (int l = 0; l < n_layer; l++) each[l] = x;
        return 0;
    }
    enum lm_gguf_type t = v->arr.type;
    if (t == LM_GGUF_STRING || t == LM_GGUF_ARRAY || t == LM_GGUF_F32 || t == LM_GGUF_F64 || t == LM_GGUF_BOOL)
        return lm_errf(err, "metadata '%s': expected integers, found an array of %s", key, lm_gguf_type_name(t));
    if (v->arr.n != (uint64_t)n_layer)
        return lm_errf(err, "metadata '%s' has %llu entries for %d layers", key, (unsigned long long)v->arr.n, n_layer);
    for (int l = 0; l < n_layer; l++) {
        int64_t x = lm_gguf_arr_int(v, (uint64_t)l);
        if (x < lo || x > hi)
            return lm_errf(err, "metadata '%s' is %lld for layer %d (expected %lld..%lld)", key, (long long)x, l,
                           (long long)lo, (long long)hi);
        each[l] = (int)x;
    }
    return 0;
}

/* n_ff and n_head_kv: one value, or one per layer (then the widest FFN and
 * the fewest KV heads; each layer's are set with the layers). */
static int load_layer_dims(struct lm_model *m, int *n_ff, int *n_head_kv, struct lm_err *err) {
    struct lm_hparams *hp = &m->hp;
    if (lm_arch_layer_ints(m, "feed_forward_length", -1, 1, MAX_DIM, n_ff, err) < 0 ||
        lm_arch_layer_ints(m, "attention.head_count_kv", hp->n_head, 1, hp->n_head, n_head_kv, err) < 0)
        return -1;
    hp->n_ff = n_ff[0];
    hp->n_head_kv = n_head_kv[0];
    for (int l = 0; l < hp->n_layer; l++) {
        if (hp->n_head % n_head_kv[l])
            return lm_errf(err, "%d attention heads cannot be shared by %d KV heads", hp->n_head, n_head_kv[l]);
        hp->n_ff = n_ff[l] > hp->n_ff ? n_ff[l] : hp->n_ff;
        hp->n_head_kv = n_head_kv[l] < hp->n_head_kv ? n_head_kv[l] : hp->n_head_kv;
    }
    return 0;
}

static int load_hparams(struct lm_model *m, struct lm_err *err) {
    const struct lm_gguf *g = &m->gguf;
    struct lm_hparams *hp = &m->hp;
    struct lm_gguf_str arch;
    int rc = lm_gguf_get_str(g, "general.architecture", &arch, err);
    if (rc < 0) return -1;
    if (rc == 0) return lm_errf(err, "metadata 'general.architecture' is missing");
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (lm_gguf_str_eq(arch, archs[i]->name)) m->arch = archs[i];
    if (!m->arch) {
        char names[256];
        int len = 0;
        for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
            len += snprintf(names + len, sizeof names - (size_t)len, "%s%s", i ? ", " : "", archs[i]->name);
        return lm_errf(err, "architecture '%.*s' is not supported (supported: %s)", (int)(arch.len < 64 ? arch.len : 64),
                       arch.data, names);
    }
    hp->arch_name = m->arch->name;
    int n_expert; /* llama.cpp runs llama and phi3 files with experts too; lm does not */
    if (lm_arch_int(m, "expert_count", 0, 0, INT32_MAX, &n_expert, err) < 0) return -1;
    if (n_expert > 0)
        return lm_errf(err, "%s with mixture-of-experts layers (expert_count %d) is not supported", hp->arch_name, n_expert);
    if (lm_arch_int(m, "embedding_length", -1, 1, MAX_DIM, &hp->n_embd, err) < 0 ||
        lm_arch_int(m, "block_count", -1, 1, MAX_LAYERS, &hp->n_layer, err) < 0 ||
        lm_arch_int(m, "attention.head_count", -1, 1, MAX_DIM, &hp->n_head, err) < 0 ||
        lm_arch_int(m, "context_length", 2048, 1, 1 << 24, &hp->n_ctx_train, err) < 0)
        return -1;
    /* The per-layer table is made before the layers' tensors are looked up:
     * a tensor info per layer at least pays for it (the family's loader
     * finds which one is missing). */
    if ((uint64_t)hp->n_layer > m->gguf.n_tensors)
        return lm_errf(err, "block_count %d is more than the file's %llu tensors", hp->n_layer,
                       (unsigned long long)m->gguf.n_tensors);
    m->layers = lm_xcalloc((size_t)hp->n_layer, sizeof *m->layers);
    int *n_ff = lm_xmalloc(sizeof(int) * 2 * (size_t)hp->n_layer), *n_head_kv = n_ff + hp->n_layer;
    rc = load_layer_dims(m, n_ff, n_head_kv, err);
    for (int l = 0; l < hp->n_layer; l++) m->layers[l].n_ff = n_ff[l], m->layers[l].n_head_kv = n_head_kv[l];
    free(n_ff);
    if (rc < 0) return -1;
    int def_head_dim = hp->n_embd / hp->n_head;
    if (lm_arch_int(m, "attention.key_length", def_head_dim, 1, MAX_DIM, &hp->head_dim, err) < 0) return -1;
    int v_len;
    if (lm_arch_int(m, "attention.value_length", hp->head_dim, 1, MAX_DIM, &v_len, err) < 0) return -1;
    if (v_len != hp->head_dim)
        return lm_errf(err, "key length %d differs from value length %d (not supported)", hp->head_dim, v_len);
    if ((int64_t)hp->n_head * hp->head_dim > MAX_DIM) /* so products of dimensions fit in an int */
        return lm_errf(err, "%d heads of dimension %d are more than %d values", hp->n_head, hp->head_dim, MAX_DIM);
    if (hp->head_dim == def_head_dim && hp->n_embd % hp->n_head)
        return lm_errf(err, "embedding length %d is not divisible by %d heads", hp->n_embd, hp->n_head);
    if (hp->head_dim % 2) return lm_errf(err, "head dimension %d is odd", hp->head_dim);
    if (lm_arch_float(m, "rope.freq_base", 10000.0f, 1.0f, 1e12f, &hp->rope_base, err) < 0 ||
        lm_arch_float(m, "attention.layer_norm_rms_epsilon", 1e-5f, 0.0f, 1.0f, &hp->norm_eps, err) < 0)
        return -1;
    for (int l = 0; l < hp->n_layer; l++) m->layers[l].head_dim = hp->head_dim;
    hp->att_scale = 1.0f / sqrtf((float)hp->head_dim);
    hp->emb_scale = 1.0f;
    hp->res_scale = 1.0f;
    hp->logit_scale = 1.0f;
    return 0;
}

/* Kernels read weights as floats and halves, so the data must be aligned
 * for them: 4 bytes is enough for every format (files use 32). */
static bool aligned(const struct lm_model *m, const struct lm_gguf_tensor *t, struct lm_err *err) {
    if ((uintptr_t)t->t.data % 4 == 0) return true;
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)(t->name.len < 48 ? t->name.len : 48), t->name.data);
    lm_errf(err, "tensor '%s' is not aligned to 4 bytes in the file (general.alignment is %llu)", name,
            (unsigned long long)m->gguf.alignment);
    return false;
}

/* A tensor that must have exactly the shape [ne0, ne1] (ne1 = 0: a vector)
 * and a format we can use: f32 for vectors, one with a dot product for
 * matrices. Optional tensors may be absent (NULL, no error). */
const struct lm_tensor *lm_arch_tensor(struct lm_loader *ld, int layer, const char *suffix, int64_t ne0, int64_t ne1,
                                       bool optional) {
    const struct lm_model *m = ld->m;
    struct lm_err *err = ld->err;
    int *failed = &ld->failed;
    if (*failed) return NULL;
    char name[96];
    if (layer >= 0) snprintf(name, sizeof name, "blk.%d.%s", layer, suffix);
    else snprintf(name, sizeof name, "%s", suffix);
    const struct lm_gguf_tensor *t = lm_gguf_find_tensor(&m->gguf, name);
    if (!t) {
        if (!optional) *failed = lm_errf(err, "tensor '%s' is missing", name);
        return NULL;
    }
    int want_dims = ne1 ? 2 : 1;
    bool shape_ok = t->t.ne[0] == ne0 && t->t.ne[1] == (ne1 ? ne1 : 1) && t->t.ne[2] == 1 && t->t.ne[3] == 1;
    if (!shape_ok || t->t.n_dims > want_dims) {
        *failed = lm_errf(err, "tensor '%s' has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld]", name,
                          (long long)t->t.ne[0], (long long)t->t.ne[1], (long long)t->t.ne[2], (long long)t->t.ne[3],
                          (long long)ne0, (long long)(ne1 ? ne1 : 1));
        return NULL;
    }
    const struct lm_type_traits *tt = lm_type_get(t->t.type);
    if (ne1 ? !tt->vec_dot : t->t.type != LM_TYPE_F32) {
        *failed = lm_errf(err, "tensor '%s' has format %s, which lm does not support here%s", name, tt->name,
                          ne1 ? "" : " (expected f32)");
        return NULL;
    }
    if (!aligned(m, t, err)) {
        *failed = -1;
        return NULL;
    }
    return &t->t;
}

struct lm_row_view {
    struct lm_tensor t;
    struct lm_row_view *next;
};

const struct lm_tensor *lm_arch_rows(struct lm_loader *ld, const struct lm_tensor *t, int64_t first, int64_t count) {
    if (!t || ld->failed) return NULL;
    bool matrix = t->n_dims > 1;
    int64_t n = matrix ? t->ne[1] : t->ne[0];
    LM_ASSERT(first >= 0 && count >= 1 && first + count <= n);
    const struct lm_type_traits *tt = lm_type_get(t->type);
    size_t unit = matrix ? (size_t)(t->ne[0] / tt->blck) * tt->size : sizeof(float);
    const uint8_t *data = (const uint8_t *)t->data + (size_t)first * unit;
    if ((uintptr_t)data % 4) {
        ld->failed = lm_errf(ld->err, "a part of a fused %s tensor is not aligned to 4 bytes", tt->name);
        return NULL;
    }
    struct lm_row_view *v = lm_xcalloc(1, sizeof *v);
    v->t = *t;
    v->t.data = data;
    v->t.ne[matrix ? 1 : 0] = count;
    v->next = ld->m->views;
    ld->m->views = v;
    return &v->t;
}

int lm_arch_add_rope(struct lm_model *m, float base, int n_rot, bool neox, struct lm_err *err) {
    LM_ASSERT(m->n_rope < LM_MAX_ROPES);
    if (n_rot < 2 || n_rot % 2 || n_rot > m->hp.head_dim)
        return lm_errf(err, "rotary dimensions %d (expected an even number up to the head's %d)", n_rot, m->hp.head_dim);
    struct lm_rope *r = &m->rope[m->n_rope];
    r->n_rot = n_rot;
    r->neox = neox;
    r->base = base;
    r->mscale = 1.0f;
    r->freq = lm_xmalloc(sizeof *r->freq * (size_t)(n_rot / 2));
    for (int i = 0; i < n_rot / 2; i++) r->freq[i] = (float)pow(base, -2.0 * i / n_rot);
    return m->n_rope++;
}

/* Per-pair divisors of the frequencies from tensor `name` ({n_rot/2}, all
 * positive); NULL when absent or after a failure (recorded in ld). */
static const float *freq_factors(struct lm_loader *ld, const char *name, int n_rot) {
    const struct lm_tensor *t = lm_arch_tensor(ld, -1, name, n_rot / 2, 0, true);
    if (!t) return NULL;
    const float *ff = t->data;
    for (int i = 0; i < n_rot / 2; i++)
        if (!(ff[i] > 0 && isfinite(ff[i]))) {
            ld->failed =
                lm_errf(ld->err, "%s[%d] is %g (RoPE frequency factors must be positive and finite)", name, i, ff[i]);
            return NULL;
        }
    return ff;
}

/* YaRN's first and last corrected pair (ggml_rope_yarn_corr_dims, in
 * float as ggml computes them): pairs below dims[0] keep their unscaled
 * frequency, pairs above dims[1] take the interpolated one, a linear ramp
 * between. beta: rotations over the original context. */
static float yarn_corr_dim(int n_rot, int n_ctx_orig, float beta, float base) {
    return (float)n_rot * logf((float)n_ctx_orig / (beta * 2 * (float)M_PI)) / (2 * logf(base));
}

/* Adds a part to r->scaling (", " between parts; cut short if too long). */
__attribute__((format(printf, 2, 3))) static void describe(struct lm_rope *r, const char *fmt, ...) {
    size_t len = strlen(r->scaling);
    if (len && len + 2 < sizeof r->scaling) len += (size_t)snprintf(r->scaling + len, sizeof r->scaling - len, ", ");
    va_list ap;
    va_start(ap, fmt);
    if (len < sizeof r->scaling) vsnprintf(r->scaling + len, sizeof r->scaling - len, fmt, ap);
    va_end(ap);
}

/* rope[0] as llama.cpp computes it (ggml_rope_ext with the parameters
 * llama_context derives from the metadata), from rope.dimension_count,
 * rope.freq_base and:
 * - rope.scaling.type: none, linear (the default; freq / factor), yarn
 *   (freq / factor blended with freq by pair, and a magnitude correction;
 *   beta_fast 32, beta_slow 1, ext_factor 1: llama.cpp reads no keys for
 *   them in these families), longrope (the factor tensors below);
 *   rope.scaling.factor, rope.scaling.original_context_length;
 * - rope.scaling.attn_factor: multiplies cos and sin (LongRoPE's
 *   attention factor);
 * - per-pair divisors: rope_freqs (Llama 3), else rope_factors_short, or
 *   rope_factors_long in contexts beyond the original length (LongRoPE). */
static int load_rope(struct lm_loader *ld) {
    struct lm_model *m = ld->m;
    const struct lm_hparams *hp = &m->hp;
    int n_rot, n_ctx_orig;
    if (lm_arch_int(m, "rope.dimension_count", hp->head_dim, 2, hp->head_dim, &n_rot, ld->err) < 0) return -1;
    if (n_rot % 2) return lm_errf(ld->err, "rope.dimension_count %d is odd", n_rot);
    if (lm_arch_add_rope(m, hp->rope_base, n_rot, false, ld->err) < 0) return -1;
    struct lm_rope *r = &m->rope[0];
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", hp->arch_name);
    struct lm_gguf_str stype = {.data = "linear", .len = 6};
    if (lm_gguf_get_str(&m->gguf, key, &stype, ld->err) < 0) return -1;
    bool none = lm_gguf_str_eq(stype, "none"), yarn = lm_gguf_str_eq(stype, "yarn");
    if (!none && !yarn && !lm_gguf_str_eq(stype, "linear") && !lm_gguf_str_eq(stype, "longrope"))
        return lm_errf(ld->err, "rope scaling '%.*s' is not supported (supported: none, linear, yarn, longrope)",
                       (int)(stype.len < 32 ? stype.len : 32), stype.data);
    float factor, attn_factor;
    if (lm_arch_float(m, "rope.scale_linear", 0.0f, 0.0f, 1e6f, &factor, ld->err) < 0 || /* its older name */
        lm_arch_float(m, "rope.scaling.factor", factor, 0.0f, 1e6f, &factor, ld->err) < 0 ||
        lm_arch_int(m, "rope.scaling.original_context_length", hp->n_ctx_train, 1, 1 << 24, &n_ctx_orig, ld->err) < 0 ||
        lm_arch_float(m, "rope.scaling.attn_factor", 1.0f, 1e-3f, 1e3f, &attn_factor, ld->err) < 0)
        return -1;
    if (factor > 0 && factor < 1e-3f) return lm_errf(ld->err, "rope.scaling.factor %g is too small", factor);
    float freq_scale = none || factor == 0 ? 1.0f : 1.0f / factor;
    if (freq_scale != 1.0f && yarn) describe(r, "yarn x%g, original context %d", 1.0f / freq_scale, n_ctx_orig);
    else if (freq_scale != 1.0f) describe(r, "linear x%g", 1.0f / freq_scale);
    r->mscale = attn_factor;
    if (yarn) {
        float beta_fast = 32.0f, beta_slow = 1.0f, ext_factor = 1.0f, scale = 1.0f / freq_scale;
        float lo = fmaxf(0.0f, floorf(yarn_corr_dim(n_rot, n_ctx_orig, beta_fast, hp->rope_base)));
        float hi = fminf((float)(n_rot - 1), ceilf(yarn_corr_dim(n_rot, n_ctx_orig, beta_slow, hp->rope_base)));
        for (int i = 0; i < n_rot / 2; i++) {
            float ramp = (1 - fminf(1.0f, fmaxf(0.0f, ((float)i - lo) / fmaxf(0.001f, hi - lo)))) * ext_factor;
            r->freq[i] *= freq_scale * (1 - ramp) + ramp;
        }
        /* llama.cpp's attention factor (get_mscale, then divided by ggml's
         * own correction) times ggml's correction: both in float */
        float mscale = scale <= 1.0f ? 1.0f : 0.1f * logf(scale) + 1.0f;
        mscale *= 1.0f / (1.0f + 0.1f * logf(scale));
        r->mscale = mscale * attn_factor * (1.0f + 0.1f * logf(1.0f / freq_scale));
    } else {
        for (int i = 0; i < n_rot / 2; i++) r->freq[i] *= freq_scale;
    }
    const float *ff = freq_factors(ld, "rope_freqs.weight", n_rot), *ff_long = NULL;
    if (!ff && !ld->failed) {
        ff = freq_factors(ld, "rope_factors_short.weight", n_rot);
        ff_long = freq_factors(ld, "rope_factors_long.weight", n_rot);
    }
    if (ld->failed) return -1;
    if (ff && !ff_long) describe(r, "frequency factors");
    if (ff_long) {
        describe(r, "LongRoPE beyond %d positions", n_ctx_orig);
        r->long_ctx = n_ctx_orig;
        r->freq_long = lm_xmalloc(sizeof *r->freq_long * (size_t)(n_rot / 2));
        for (int i = 0; i < n_rot / 2; i++) r->freq_long[i] = r->freq[i] / ff_long[i];
    }
    for (int i = 0; ff && i < n_rot / 2; i++) r->freq[i] /= ff[i];
    if (r->mscale != 1.0f) describe(r, "cos/sin x%.4g", r->mscale);
    return 0;
}

/* The cache's layout, once the family has said which layers attend and
 * which slot each uses: the slots in order, each as wide as the KV heads of
 * the layer that writes it; a layer reading another's slot must have its
 * dimensions. Also the largest head, which the attention scratch is sized
 * for. The blocks compute with each layer's dimensions, so its tensors
 * must have them (whatever the family checked them against). */
static int kv_layout(struct lm_model *m, struct lm_err *err) {
    struct lm_hparams *hp = &m->hp;
    for (int l = 0; l < hp->n_layer; l++) {
        const struct lm_layer *L = &m->layers[l];
        if ((L->wk && L->wk->ne[1] != (int64_t)L->n_head_kv * L->head_dim) || (L->w_down && L->w_down->ne[0] != L->n_ff))
            return lm_errf(err, "layer %d: its tensors are not those of %d KV heads of %d and an FFN of %d", l,
                           L->n_head_kv, L->head_dim, L->n_ff);
    }
    int64_t *width = lm_xcalloc((size_t)hp->n_kv_layer + 1, sizeof *width);
    hp->max_head_dim = hp->head_dim;
    for (int l = 0; l < hp->n_layer; l++) {
        const struct lm_layer *L = &m->layers[l];
        if (!L->wq) continue; /* a recurrent layer */
        LM_ASSERT(L->kv_slot >= 0 && L->kv_slot < hp->n_kv_layer);
        if (!L->kv_reused) width[L->kv_slot + 1] = (int64_t)L->n_head_kv * L->head_dim;
        hp->max_head_dim = L->head_dim > hp->max_head_dim ? L->head_dim : hp->max_head_dim;
    }
    for (int s = 0; s < hp->n_kv_layer; s++) width[s + 1] += width[s];
    hp->kv_values = width[hp->n_kv_layer];
    int rc = 0;
    for (int l = 0; l < hp->n_layer && !rc; l++) {
        struct lm_layer *L = &m->layers[l];
        if (!L->wq) continue;
        L->kv_base = width[L->kv_slot];
        if (width[L->kv_slot + 1] - width[L->kv_slot] != (int64_t)L->n_head_kv * L->head_dim)
            rc = lm_errf(err, "layer %d reads a KV cache of %lld values per position, but has %d KV heads of %d", l,
                         (long long)(width[L->kv_slot + 1] - width[L->kv_slot]), L->n_head_kv, L->head_dim);
    }
    free(width);
    return rc;
}

static int load_tensors(struct lm_model *m, struct lm_err *err) {
    const struct lm_hparams *hp = &m->hp;
    struct lm_loader ld = {m, err, 0};
    const struct lm_gguf_tensor *emb = lm_gguf_find_tensor(&m->gguf, "token_embd.weight");
    if (!emb) return lm_errf(err, "tensor 'token_embd.weight' is missing");
    int64_t n_vocab = emb->t.ne[1];
    if (n_vocab < 1 || n_vocab > LM_MAX_VOCAB) return lm_errf(err, "token_embd.weight has %lld rows", (long long)n_vocab);
    m->hp.n_vocab = (int)n_vocab;
    const struct lm_gguf_value *tokens = NULL;
    if (lm_gguf_get_arr(&m->gguf, "tokenizer.ggml.tokens", LM_GGUF_STRING, &tokens, err) < 0) return -1;
    if (tokens && tokens->arr.n != (uint64_t)n_vocab)
        return lm_errf(err, "the vocabulary has %llu tokens but token_embd.weight has %lld rows",
                       (unsigned long long)tokens->arr.n, (long long)n_vocab);
    m->tok_embd = &emb->t;
    if (emb->t.ne[0] != hp->n_embd || emb->t.ne[2] != 1 || emb->t.ne[3] != 1 || !lm_type_get(emb->t.type)->to_f32)
        return lm_errf(err, "tensor 'token_embd.weight' has shape [%lld, %lld] and format %s; expected [%d, n_vocab] "
                            "in a supported format", (long long)emb->t.ne[0], (long long)emb->t.ne[1],
                       lm_type_get(emb->t.type)->name, hp->n_embd);
    if (!aligned(m, emb, err)) return -1;
    m->output_norm = lm_arch_tensor(&ld, -1, "output_norm.weight", hp->n_embd, 0, false);
    m->output = lm_arch_tensor(&ld, -1, "output.weight", hp->n_embd, n_vocab, true);
    if (!ld.failed && !m->output) m->output = lm_arch_tensor(&ld, -1, "token_embd.weight", hp->n_embd, n_vocab, false);
    if (ld.failed || load_rope(&ld) < 0) return -1;
    for (int l = 0; l < hp->n_layer; l++) m->layers[l].rope = 0, m->layers[l].kv_slot = l;
    m->hp.n_kv_layer = hp->n_layer;
    if (m->arch->load(&ld) < 0 || ld.failed) return -1;
    return kv_layout(m, err);
}

static int check_memory(const struct lm_model *m, struct lm_err *err);

int lm_model_from_gguf(struct lm_model *m, struct lm_gguf *g, struct lm_err *err) {
    memset(m, 0, sizeof *m);
    m->gguf = *g;
    memset(g, 0, sizeof *g);
    if (load_hparams(m, err) < 0 || load_tensors(m, err) < 0 || check_memory(m, err) < 0) {
        lm_model_free(m);
        return -1;
    }
    return 0;
}

int lm_model_load(struct lm_model *m, const char *path, struct lm_err *err) {
    struct lm_gguf g;
    memset(m, 0, sizeof *m);
    if (lm_gguf_open(&g, path, err) < 0) return -1;
    if (lm_model_from_gguf(m, &g, err) < 0) {
        lm_err_prefix(err, path);
        return -1;
    }
    return 0;
}

void lm_model_free(struct lm_model *m) {
    lm_gguf_close(&m->gguf);
    free(m->layers);
    while (m->views) {
        struct lm_row_view *next = m->views->next;
        free(m->views);
        m->views = next;
    }
    for (int r = 0; r < m->n_rope; r++) {
        free(m->rope[r].freq);
        free(m->rope[r].freq_long);
    }
    memset(m, 0, sizeof *m);
}

/* ---- context ---------------------------------------------------------------- */

static uint64_t max_u64(uint64_t a, uint64_t b) { return a > b ? a : b; }

/* The bytes of each buffer of a context: lm_ctx_size sums them for the
 * checks and lm_ctx_init allocates them, so the two cannot disagree. */
struct ctx_plan {
    uint64_t cache;                 /* each of k_cache and v_cache */
    uint64_t x, xn, q, kv, att, ffn; /* kv: each of k and v; ffn: each of ffn_g and ffn_u */
    uint64_t rope[LM_MAX_ROPES];    /* each of rope_cos[r] and rope_sin[r] */
    uint64_t logits, qscratch;
    uint64_t rows;                  /* each of row_pos, row_seq, tiles; row_logits a quarter */
    uint64_t att_scratch;           /* per pool thread */
    uint64_t state, ssm_x;          /* recurrent state of all sequences, the mixer's scratch */
    uint64_t pl;                    /* per-layer inputs */
};

/* Values of a row of the query projection: two per query when gated. */
static uint64_t q_rows(const struct lm_model *m) {
    bool gated = false;
    for (int l = 0; l < m->hp.n_layer; l++) gated |= m->layers[l].att_gated;
    return (uint64_t)m->hp.n_head * (uint64_t)m->hp.max_head_dim * (gated ? 2 : 1);
}

/* The widest K (or V) row of a layer, and the widest per-layer input row. */
static uint64_t max_kv_dim(const struct lm_model *m) {
    uint64_t w = 0;
    for (int l = 0; l < m->hp.n_layer; l++)
        w = max_u64(w, (uint64_t)m->layers[l].n_head_kv * (uint64_t)m->layers[l].head_dim);
    return w;
}

static uint64_t pl_width(const struct lm_model *m) {
    return m->pl_tok_embd ? (uint64_t)m->hp.n_embd_per_layer * (uint64_t)m->hp.n_layer : 0;
}

static void ctx_plan(const struct lm_model *m, int n_seq, int n_ctx, int n_batch, struct ctx_plan *p) {
    const struct lm_hparams *hp = &m->hp;
    uint64_t nb = (uint64_t)n_batch, f = sizeof(float);
    uint64_t E = (uint64_t)hp->n_embd, q_dim = (uint64_t)hp->n_head * (uint64_t)hp->max_head_dim;
    uint64_t kv_dim = max_kv_dim(m);
    p->cache = lm_mul_sat(lm_mul_sat(lm_mul_sat((uint64_t)n_seq, (uint64_t)hp->kv_values), (uint64_t)lm_kv_positions(n_ctx)),
                          sizeof(uint16_t));
    p->x = f * nb * E; /* products of checked dimensions and a batch of at most INT32_MAX: no overflow */
    p->xn = f * nb * max_u64(E, q_dim);
    p->att = f * nb * q_dim;
    p->q = f * nb * q_rows(m);
    p->state = lm_mul_sat((uint64_t)n_seq, f * (uint64_t)hp->ssm.n_layer * lm_delta_net_state(&hp->ssm));
    p->ssm_x = hp->ssm.n_layer ? f * nb * lm_delta_net_row(&hp->ssm) : 0;
    p->kv = f * nb * kv_dim;
    p->ffn = f * nb * max_u64((uint64_t)hp->n_ff, (uint64_t)hp->n_embd_per_layer);
    p->pl = m->pl_tok_embd ? f * (nb + 1) * pl_width(m) : 0;
    for (int r = 0; r < LM_MAX_ROPES; r++) p->rope[r] = r < m->n_rope ? f * nb * (uint64_t)(m->rope[r].n_rot / 2) : 0;
    p->logits = f * (uint64_t)hp->n_vocab;
    p->rows = sizeof(int32_t) * nb;
    p->att_scratch = f * lm_att_scratch_size(hp, n_ctx);
    /* the output takes up to a batch of rows (lm_forward_logits); in a
     * layer, the products that share one lm_matmul_multi call need their
     * sum, bounded here by the sum over all of the layer's matrices */
    uint64_t qs = lm_matmul_scratch_size(m->output, n_batch);
    if (m->pl_model_proj) qs = max_u64(qs, lm_matmul_scratch_size(m->pl_model_proj, n_batch));
    for (int l = 0; l < hp->n_layer; l++) {
        const struct lm_layer *L = &m->layers[l];
        const struct lm_tensor *const w[] = {L->wq,        L->wk,        L->wv,          L->wo,          L->w_gate,
                                             L->w_up,      L->w_down,    L->ssm.qkv,     L->ssm.z,       L->ssm.beta,
                                             L->ssm.alpha, L->ssm.out,   L->pl_gate,     L->pl_proj};
        uint64_t sum = 0;
        for (size_t i = 0; i < sizeof w / sizeof w[0]; i++)
            if (w[i]) sum += lm_matmul_scratch_size(w[i], n_batch);
        qs = max_u64(qs, sum);
    }
    p->qscratch = qs;
}

void lm_ctx_size(const struct lm_model *m, int n_ctx, int n_batch, struct lm_ctx_size *s) {
    struct ctx_plan p;
    ctx_plan(m, 1, n_ctx, n_batch, &p);
    s->kv = lm_mul_sat(p.cache, 2);
    s->att = p.att_scratch;
    s->batch = p.x + p.xn + p.q + 2 * p.kv + p.att + 2 * p.ffn + 2 * (p.rope[0] + p.rope[1]) + p.logits + p.qscratch +
               4 * p.rows + p.ssm_x + p.pl;
    s->state = p.state;
}

int lm_model_default_ctx(const struct lm_model *m) {
    return m->hp.n_ctx_train < LM_CTX_DEFAULT_MAX ? m->hp.n_ctx_train : LM_CTX_DEFAULT_MAX;
}

bool lm_model_rows_independent(const struct lm_model *m) {
    for (uint64_t i = 0; i < m->gguf.n_tensors; i++) {
        const struct lm_tensor *t = &m->gguf.tensors[i].t;
        if (t->n_dims >= 2 && !lm_gemm_rows_independent(lm_type_get(t->type))) return false;
    }
    return true;
}

/* Refuses a file whose default context needs more memory than the file can
 * justify (see model.h), naming the largest part. */
static int check_memory(const struct lm_model *m, struct lm_err *err) {
    const struct lm_hparams *hp = &m->hp;
    int n_ctx = lm_model_default_ctx(m), n_batch = n_ctx < LM_BATCH_DEFAULT ? n_ctx : LM_BATCH_DEFAULT;
    struct lm_ctx_size s;
    lm_ctx_size(m, n_ctx, n_batch, &s);
    uint64_t total = lm_add_sat(lm_add_sat(lm_add_sat(s.kv, s.att), s.batch), s.state);
    uint64_t limit = max_u64(LM_MODEL_MEM_FLOOR, lm_mul_sat(LM_MODEL_MEM_PER_BYTE, m->gguf.size));
    if (total <= limit) return 0;
    char part[160];
    int q_dim = hp->n_head * hp->head_dim;
    if (s.kv >= s.batch && s.kv >= s.att && hp->kv_values == (int64_t)hp->n_kv_layer * hp->n_head_kv * hp->head_dim)
        snprintf(part, sizeof part, "a KV cache of %d layers x %d positions x %d values needs %s", hp->n_kv_layer, n_ctx,
                 hp->n_head_kv * hp->head_dim, lm_size_str(s.kv).s);
    else if (s.kv >= s.batch && s.kv >= s.att)
        snprintf(part, sizeof part, "a KV cache of %d layers x %d positions (%lld values per position) needs %s",
                 hp->n_kv_layer, n_ctx, (long long)hp->kv_values, lm_size_str(s.kv).s);
    else if (s.att > s.batch)
        snprintf(part, sizeof part, "attention over %d positions with heads of %d needs %s of scratch", n_ctx,
                 hp->head_dim, lm_size_str(s.att).s);
    else if (hp->n_ff >= q_dim && hp->n_ff >= hp->n_embd)
        snprintf(part, sizeof part, "n_ff %d x batch %d needs %s of scratch", hp->n_ff, n_batch, lm_size_str(s.batch).s);
    else if (q_dim >= hp->n_embd)
        snprintf(part, sizeof part, "n_head x head_dim %d x batch %d needs %s of scratch", q_dim, n_batch,
                 lm_size_str(s.batch).s);
    else
        snprintf(part, sizeof part, "n_embd %d x batch %d needs %s of scratch", hp->n_embd, n_batch,
                 lm_size_str(s.batch).s);
    return lm_errf(err, "%s (%s in all for its default context of %d), more than a file of %s justifies (%s)", part,
                   lm_size_str(total).s, n_ctx, lm_size_str(m->gguf.size).s, lm_size_str(limit).s);
}

/* malloc (or calloc) that records a failure instead of aborting. */
static void *try_alloc(uint64_t bytes, bool zero, bool *failed) {
    void *p = NULL;
    if (bytes <= SIZE_MAX) p = zero ? calloc(bytes ? (size_t)bytes : 1, 1) : malloc(bytes ? (size_t)bytes : 1);
    if (!p) *failed = true;
    return p;
}

/* The KV caches of several sequences (lm serve's slots), in one anonymous
 * mapping (zeroed, as calloc's) of transparent huge pages where the system
 * offers them: every step reads each sequence's cache, and with them a
 * step of 4 sequences ran 4-8% faster (the default model on a Zen 4; fewer
 * TLB misses, presumably: that VM has no counters to show it). The price
 * is that a 2 MB page becomes resident at its first use, so one sequence
 * (lm run, lm chat), whose resident memory should grow with the context it
 * uses, keeps calloc. */
static int map_kv(struct lm_ctx *c, uint64_t each) {
#if defined(MAP_ANONYMOUS) && defined(MADV_HUGEPAGE)
    const size_t huge = (size_t)2 << 20;
    if (each > (SIZE_MAX - 2 * huge) / 2) return -1;
    size_t half = ((size_t)each + huge - 1) / huge * huge;
    void *p = mmap(NULL, 2 * half + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return -1;
    char *start = (char *)(((uintptr_t)p + huge - 1) / huge * huge);
    madvise(start, 2 * half, MADV_HUGEPAGE); /* a hint: without it, 4 KB pages */
    c->kv_map = p;
    c->kv_map_size = 2 * half + huge;
    c->k_cache = (uint16_t *)start;
    c->v_cache = (uint16_t *)(start + half);
    return 0;
#else
    (void)c, (void)each;
    return -1;
#endif
}

/* "4096", or "4 x 4096" for several sequences */
struct ctx_str { char s[32]; };
static struct ctx_str ctx_str(int n_seq, int n_ctx) {
    struct ctx_str r;
    if (n_seq == 1) snprintf(r.s, sizeof r.s, "%d", n_ctx);
    else snprintf(r.s, sizeof r.s, "%d x %d", n_seq, n_ctx);
    return r;
}

int lm_ctx_init(struct lm_ctx *c, const struct lm_model *m, struct lm_pool *pool, int n_ctx, int n_batch,
                struct lm_err *err) {
    return lm_ctx_init_seqs(c, m, pool, 1, n_ctx, n_batch, err);
}

int lm_ctx_init_seqs(struct lm_ctx *c, const struct lm_model *m, struct lm_pool *pool, int n_seq, int n_ctx,
                     int n_batch, struct lm_err *err) {
    memset(c, 0, sizeof *c);
    const struct lm_hparams *hp = &m->hp;
    LM_ASSERT(n_seq >= 1 && n_ctx >= 1 && n_batch >= 1);
    /* one sequence's batch cannot outgrow its context; several can */
    if (n_seq == 1 && n_batch > n_ctx) n_batch = n_ctx;
    /* The forward pass indexes a batch's rows (n_batch x the widest of them) with ints. */
    int64_t widest = hp->n_embd > hp->n_ff ? hp->n_embd : hp->n_ff;
    if ((int64_t)pl_width(m) > widest) widest = (int64_t)pl_width(m);
    if ((int64_t)q_rows(m) > widest) widest = (int64_t)q_rows(m);
    if (hp->ssm.n_layer && (int64_t)lm_delta_net_row(&hp->ssm) > widest) widest = (int64_t)lm_delta_net_row(&hp->ssm);
    if ((int64_t)n_batch * widest > INT32_MAX)
        return lm_errf(err, "a batch of %d tokens is too large for this model (rows of %lld values; try a smaller -b)",
                       n_batch, (long long)widest);
    struct ctx_plan p;
    struct lm_ctx_size s;
    ctx_plan(m, n_seq, n_ctx, n_batch, &p);
    lm_ctx_size(m, n_ctx, n_batch, &s);
    s.kv = lm_mul_sat(p.cache, 2);
    int n_threads = lm_pool_size(pool);
    uint64_t total = lm_add_sat(lm_add_sat(lm_add_sat(s.kv, s.batch), lm_mul_sat(s.att, (uint64_t)n_threads)), p.state);
    uint64_t ram = lm_physical_memory();
    /* Beyond physical memory the allocation may still succeed (pages come
     * on first use), and the run ends in swap or the OOM killer instead. */
    if (total > ram)
        return lm_errf(err, "a context of %s positions needs %s (KV cache %s; batches of %d, %d threads), more than "
                            "the %s of memory this machine has (try a smaller -c)",
                       ctx_str(n_seq, n_ctx).s, lm_size_str(total).s, lm_size_str(s.kv).s, n_batch, n_threads,
                       lm_size_str(ram).s);
    c->model = m;
    c->pool = pool;
    c->n_seq = n_seq;
    c->n_ctx = n_ctx;
    c->n_batch = n_batch;
    c->att_scratch_size = lm_att_scratch_size(hp, n_ctx);
    bool failed = false;
    if (n_seq == 1 || map_kv(c, p.cache) < 0) {
        c->k_cache = try_alloc(p.cache, true, &failed);
        c->v_cache = try_alloc(p.cache, true, &failed);
    }
    c->x = try_alloc(p.x, false, &failed);
    c->xn = try_alloc(p.xn, false, &failed);
    c->q = try_alloc(p.q, false, &failed);
    c->k = try_alloc(p.kv, false, &failed);
    c->v = try_alloc(p.kv, false, &failed);
    c->att = try_alloc(p.att, false, &failed);
    c->ffn_g = try_alloc(p.ffn, false, &failed);
    c->ffn_u = try_alloc(p.ffn, false, &failed);
    if (m->pl_tok_embd) c->pl_inp = try_alloc(p.pl, false, &failed);
    c->att_scratch = try_alloc(lm_mul_sat(p.att_scratch, (uint64_t)n_threads), false, &failed);
    for (int r = 0; r < m->n_rope; r++) {
        c->rope_cos[r] = try_alloc(p.rope[r], false, &failed);
        c->rope_sin[r] = try_alloc(p.rope[r], false, &failed);
    }
    c->logits = try_alloc(p.logits, false, &failed);
    c->qscratch = try_alloc(p.qscratch, false, &failed);
    c->row_pos = try_alloc(p.rows, false, &failed);
    c->row_seq = try_alloc(p.rows, false, &failed);
    c->row_logits = try_alloc(p.rows, false, &failed);
    c->tiles = try_alloc(p.rows, false, &failed);
    if (hp->ssm.n_layer) {
        c->ssm_state = try_alloc(p.state, true, &failed);
        c->seq_pos = try_alloc(sizeof(int32_t) * (uint64_t)n_seq, true, &failed);
        c->ssm_x = try_alloc(p.ssm_x, false, &failed);
    }
    if (failed) {
        lm_ctx_free(c);
        return lm_errf(err, "cannot allocate the %s a context of %s positions needs (KV cache %s; try a smaller -c)",
                       lm_size_str(total).s, ctx_str(n_seq, n_ctx).s, lm_size_str(s.kv).s);
    }
    return 0;
}

void lm_ctx_free(struct lm_ctx *c) {
    if (c->kv_map) {
        munmap(c->kv_map, c->kv_map_size);
        c->k_cache = c->v_cache = NULL;
    }
    void *bufs[] = {c->k_cache, c->v_cache, c->x, c->xn, c->q, c->k, c->v, c->att, c->ffn_g, c->ffn_u,
                    c->att_scratch, c->rope_cos[0], c->rope_sin[0], c->rope_cos[1], c->rope_sin[1], c->logits,
                    c->qscratch, c->row_pos, c->row_seq, c->row_logits, c->tiles, c->ssm_state, c->seq_pos, c->ssm_x,
                    c->pl_inp};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    memset(c, 0, sizeof *c);
}

/* ---- forward ----------------------------------------------------------------- */

int lm_forward(struct lm_ctx *c, const int32_t *tokens, int n, int pos, struct lm_err *err) {
    return lm_forward_logits(c, tokens, n, pos, n - 1, 1, c->logits, err);
}

int lm_forward_logits(struct lm_ctx *c, const int32_t *tokens, int n, int pos, int out0, int n_out, float *out,
                      struct lm_err *err) {
    if (n < 1 || n > c->n_batch) return lm_errf(err, "batch of %d tokens (1..%d allowed)", n, c->n_batch);
    if (out0 < 0 || n_out < 0 || out0 > n - n_out)
        return lm_errf(err, "logits of tokens %d..%d asked of a batch of %d", out0, out0 + n_out - 1, n);
    if (pos < 0 || pos > c->n_ctx - n)
        return lm_errf(err, "positions %d..%d do not fit in the context of %d", pos, pos + n - 1, c->n_ctx);
    for (int t = 0; t < n; t++) {
        c->row_pos[t] = pos + t;
        c->row_seq[t] = 0;
        c->row_logits[t] = t >= out0 && t < out0 + n_out;
    }
    struct lm_batch b = {n, tokens, c->row_pos, c->row_seq, c->row_logits};
    return lm_forward_batch(c, &b, out, err);
}

/* Checks a batch against the context and splits it into attention tiles:
 * runs of at most att_tokens rows of one sequence. Returns the tile count. */
static int plan_batch(struct lm_ctx *c, const struct lm_batch *b, struct lm_err *err) {
    const struct lm_hparams *hp = &c->model->hp;
    if (b->n < 1 || b->n > c->n_batch) return lm_errf(err, "batch of %d tokens (1..%d allowed)", b->n, c->n_batch);
    int n_tiles = 0, run = 0, tile_rows = lm_att_tokens(hp);
    for (int i = 0; i < b->n; i++) {
        if (b->tokens[i] < 0 || b->tokens[i] >= hp->n_vocab)
            return lm_errf(err, "token id %d is outside the vocabulary (%d)", b->tokens[i], hp->n_vocab);
        if (b->seq[i] < 0 || b->seq[i] >= c->n_seq)
            return lm_errf(err, "row %d: sequence %d of a context of %d", i, b->seq[i], c->n_seq);
        if (b->pos[i] < 0 || b->pos[i] >= c->n_ctx)
            return lm_errf(err, "row %d: position %d does not fit in the context of %d", i, b->pos[i], c->n_ctx);
        if (c->model->pos_embd && b->pos[i] >= c->model->pos_embd->ne[1])
            return lm_errf(err, "row %d: position %d is past the model's %lld learned positions", i, b->pos[i],
                           (long long)c->model->pos_embd->ne[1]);
        bool continues = i > 0 && b->seq[i] == b->seq[i - 1];
        if (continues && b->pos[i] != b->pos[i - 1] + 1)
            return lm_errf(err, "row %d: position %d after %d in sequence %d", i, b->pos[i], b->pos[i - 1], b->seq[i]);
        if (!continues && c->seq_pos && b->pos[i] != 0 && b->pos[i] != c->seq_pos[b->seq[i]])
            return lm_errf(err, "row %d: position %d, but the recurrent state of sequence %d is at %d (it cannot be "
                                "rewound: start at 0 or restore a saved state)", i, b->pos[i], b->seq[i],
                           c->seq_pos[b->seq[i]]);
        if (!continues) {
            for (int t = 0; t < n_tiles; t++)
                if (b->seq[c->tiles[t]] == b->seq[i])
                    return lm_errf(err, "row %d: the rows of sequence %d are not contiguous", i, b->seq[i]);
            run = 0;
        }
        if (run++ % tile_rows == 0) c->tiles[n_tiles++] = i;
    }
    return n_tiles;
}

void lm_arch_embedding_row(const struct lm_tensor *t, int row, float *out) {
    const struct lm_type_traits *tt = lm_type_get(t->type);
    size_t row_bytes = (size_t)(t->ne[0] / tt->blck) * tt->size;
    tt->to_f32((const uint8_t *)t->data + row_bytes * (size_t)row, out, (int)t->ne[0]);
}

int lm_forward_batch(struct lm_ctx *c, const struct lm_batch *b, float *out, struct lm_err *err) {
    const struct lm_model *m = c->model;
    const struct lm_hparams *hp = &m->hp;
    int n_tiles = plan_batch(c, b, err);
    if (n_tiles < 0) return -1;
    for (int i = 0; c->seq_pos && i < b->n; i++) {
        if (i == 0 || b->seq[i] != b->seq[i - 1]) {
            if (b->pos[i] == 0) lm_ctx_seq_clear(c, b->seq[i]);
        }
        c->seq_pos[b->seq[i]] = b->pos[i] + 1;
    }
    int n = b->n, E = hp->n_embd;
    for (int t = 0; t < n; t++) {
        float *x = c->x + (size_t)t * E;
        lm_arch_embedding_row(m->tok_embd, b->tokens[t], x);
        if (hp->emb_scale != 1.0f)
            for (int i = 0; i < E; i++) x[i] *= hp->emb_scale;
        if (m->pos_embd) {
            float *pe = c->xn; /* free until the first layer */
            lm_arch_embedding_row(m->pos_embd, b->pos[t], pe);
            for (int i = 0; i < E; i++) x[i] += pe[i];
        }
        for (int r = 0; r < m->n_rope; r++) {
            const struct lm_rope *rope = &m->rope[r];
            const float *freq = rope->freq_long && c->n_ctx > rope->long_ctx ? rope->freq_long : rope->freq;
            int half = rope->n_rot / 2;
            for (int i = 0; i < half; i++) {
                float angle = (float)b->pos[t] * freq[i];
                c->rope_cos[r][(size_t)t * half + i] = cosf(angle) * rope->mscale;
                c->rope_sin[r][(size_t)t * half + i] = sinf(angle) * rope->mscale;
            }
        }
    }
    struct lm_fwd f = {c, b, n_tiles, true};
    for (int t = 1; t < n_tiles; t++) f.tiles_alone &= b->seq[c->tiles[t]] != b->seq[c->tiles[t - 1]];
    if (m->pl_tok_embd) lm_blk_per_layer_inputs(&f);
    for (int l = 0; l < hp->n_layer; l++) m->arch->layer(&f, &m->layers[l]);
    int n_out = 0;
    for (int t = 0; t < n; t++) {
        if (!b->logits[t]) continue;
        float *y = c->xn + (size_t)n_out++ * E, *x = c->x + (size_t)t * E;
        if (hp->layer_norm)
            lm_layernorm(y, x, m->output_norm->data, m->output_norm_b ? m->output_norm_b->data : NULL, E, hp->norm_eps);
        else
            lm_rmsnorm(y, x, m->output_norm->data, E, hp->norm_eps);
    }
    if (!n_out) return 0;
    lm_matmul(c->pool, out, m->output, c->xn, n_out, c->qscratch);
    if (hp->logit_scale != 1.0f)
        for (size_t i = 0; i < (size_t)n_out * (size_t)hp->n_vocab; i++) out[i] *= hp->logit_scale;
    if (hp->logit_softcap > 0) {
        float cap = hp->logit_softcap;
        for (size_t i = 0; i < (size_t)n_out * (size_t)hp->n_vocab; i++) out[i] = cap * tanhf(out[i] / cap);
    }
    return 0;
}

/* ---- recurrent state ----------------------------------------------------------
 * A saved state is the position, then the sequence's floats as they are. */
#define STATE_HEADER 8

size_t lm_ctx_seq_state_size(const struct lm_ctx *c) {
    const struct lm_ssm *s = &c->model->hp.ssm;
    if (!c->seq_pos) return 0;
    return STATE_HEADER + sizeof(float) * (size_t)s->n_layer * lm_delta_net_state(s);
}

static float *seq_state(const struct lm_ctx *c, int seq) {
    LM_ASSERT(seq >= 0 && seq < c->n_seq);
    return c->ssm_state + (size_t)seq * ((lm_ctx_seq_state_size(c) - STATE_HEADER) / sizeof(float));
}

int lm_ctx_seq_pos(const struct lm_ctx *c, int seq) {
    LM_ASSERT(seq >= 0 && seq < c->n_seq);
    return c->seq_pos ? c->seq_pos[seq] : -1;
}

void lm_ctx_seq_save(const struct lm_ctx *c, int seq, void *buf) {
    if (!c->seq_pos) return;
    const float *state = seq_state(c, seq); /* checks seq before seq_pos[seq] is read */
    memcpy(buf, &c->seq_pos[seq], sizeof c->seq_pos[seq]);
    memcpy((char *)buf + STATE_HEADER, state, lm_ctx_seq_state_size(c) - STATE_HEADER);
}

void lm_ctx_seq_restore(struct lm_ctx *c, int seq, const void *buf) {
    if (!c->seq_pos) return;
    float *state = seq_state(c, seq); /* checks seq before seq_pos[seq] is written */
    memcpy(&c->seq_pos[seq], buf, sizeof c->seq_pos[seq]);
    memcpy(state, (const char *)buf + STATE_HEADER, lm_ctx_seq_state_size(c) - STATE_HEADER);
}

void lm_ctx_seq_clear(struct lm_ctx *c, int seq) {
    if (!c->seq_pos) return;
    memset(seq_state(c, seq), 0, lm_ctx_seq_state_size(c) - STATE_HEADER);
    c->seq_pos[seq] = 0;
}
