/* model.c: loading a transformer from GGUF and running it. See model.h. */
#include "lm/model.h"

#include "lm/ops.h"
#include "lm/tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const arch_names[] = {[LM_ARCH_LLAMA] = "llama", [LM_ARCH_QWEN2] = "qwen2", [LM_ARCH_QWEN3] = "qwen3"};

/* Sanity bounds on hyperparameters, far above any real model, so products
 * of them cannot overflow before the tensor shapes are checked. */
#define MAX_DIM (1 << 20)
#define MAX_LAYERS 4096

/* ARCH.suffix as an integer in [lo, hi]; def when absent (def < 0: required). */
static int hp_int(const struct lm_gguf *g, const char *arch, const char *suffix, int64_t def, int64_t lo, int64_t hi,
                  int *out, struct lm_err *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int64_t v = def;
    int rc = lm_gguf_get_int(g, key, &v, err);
    if (rc < 0) return -1;
    if (rc == 0 && def < 0) return lm_errf(err, "metadata '%s' is missing", key);
    if (v < lo || v > hi) return lm_errf(err, "metadata '%s' is %lld (expected %lld..%lld)", key, (long long)v, (long long)lo, (long long)hi);
    *out = (int)v;
    return 0;
}

static int hp_float(const struct lm_gguf *g, const char *arch, const char *suffix, float def, float lo, float hi,
                    float *out, struct lm_err *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    float v = def;
    if (lm_gguf_get_f32(g, key, &v, err) < 0) return -1;
    if (!(v >= lo && v <= hi)) return lm_errf(err, "metadata '%s' is %g (expected %g..%g)", key, v, lo, hi);
    *out = v;
    return 0;
}

static int load_hparams(struct lm_model *m, struct lm_err *err) {
    const struct lm_gguf *g = &m->gguf;
    struct lm_hparams *hp = &m->hp;
    struct lm_gguf_str arch;
    int rc = lm_gguf_get_str(g, "general.architecture", &arch, err);
    if (rc < 0) return -1;
    if (rc == 0) return lm_errf(err, "metadata 'general.architecture' is missing");
    int found = -1;
    for (int i = 0; i < (int)(sizeof arch_names / sizeof arch_names[0]); i++)
        if (lm_gguf_str_eq(arch, arch_names[i])) found = i;
    if (found < 0)
        return lm_errf(err, "architecture '%.*s' is not supported (supported: llama, qwen2, qwen3)",
                       (int)(arch.len < 64 ? arch.len : 64), arch.data);
    hp->arch = (enum lm_arch)found;
    const char *a = arch_names[found];
    if (hp_int(g, a, "embedding_length", -1, 1, MAX_DIM, &hp->n_embd, err) < 0 ||
        hp_int(g, a, "block_count", -1, 1, MAX_LAYERS, &hp->n_layer, err) < 0 ||
        hp_int(g, a, "feed_forward_length", -1, 1, MAX_DIM, &hp->n_ff, err) < 0 ||
        hp_int(g, a, "attention.head_count", -1, 1, MAX_DIM, &hp->n_head, err) < 0 ||
        hp_int(g, a, "attention.head_count_kv", hp->n_head, 1, hp->n_head, &hp->n_head_kv, err) < 0 ||
        hp_int(g, a, "context_length", 2048, 1, 1 << 24, &hp->n_ctx_train, err) < 0)
        return -1;
    if (hp->n_head % hp->n_head_kv)
        return lm_errf(err, "%d attention heads cannot be shared by %d KV heads", hp->n_head, hp->n_head_kv);
    int def_head_dim = hp->n_embd / hp->n_head;
    if (hp_int(g, a, "attention.key_length", def_head_dim, 1, MAX_DIM, &hp->head_dim, err) < 0) return -1;
    int v_len;
    if (hp_int(g, a, "attention.value_length", hp->head_dim, 1, MAX_DIM, &v_len, err) < 0) return -1;
    if (v_len != hp->head_dim)
        return lm_errf(err, "key length %d differs from value length %d (not supported)", hp->head_dim, v_len);
    if ((int64_t)hp->n_head * hp->head_dim > MAX_DIM) /* so products of dimensions fit in an int */
        return lm_errf(err, "%d heads of dimension %d are more than %d values", hp->n_head, hp->head_dim, MAX_DIM);
    if (hp->head_dim == def_head_dim && hp->n_embd % hp->n_head)
        return lm_errf(err, "embedding length %d is not divisible by %d heads", hp->n_embd, hp->n_head);
    if (hp->head_dim % 2) return lm_errf(err, "head dimension %d is odd", hp->head_dim);
    if (hp_int(g, a, "rope.dimension_count", hp->head_dim, 2, hp->head_dim, &hp->n_rot, err) < 0) return -1;
    if (hp->n_rot % 2) return lm_errf(err, "rope.dimension_count %d is odd", hp->n_rot);
    if (hp_float(g, a, "rope.freq_base", 10000.0f, 1.0f, 1e12f, &hp->rope_base, err) < 0 ||
        hp_float(g, a, "attention.layer_norm_rms_epsilon", 1e-5f, 0.0f, 1.0f, &hp->norm_eps, err) < 0)
        return -1;
    hp->rope_neox = hp->arch != LM_ARCH_LLAMA;
    hp->rope_scale = 1.0f;
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", a);
    struct lm_gguf_str stype;
    rc = lm_gguf_get_str(g, key, &stype, err);
    if (rc < 0) return -1;
    if (rc == 1 && lm_gguf_str_eq(stype, "linear")) {
        float factor;
        if (hp_float(g, a, "rope.scaling.factor", 1.0f, 1e-3f, 1e6f, &factor, err) < 0) return -1;
        hp->rope_scale = 1.0f / factor;
    } else if (rc == 1 && !lm_gguf_str_eq(stype, "none")) {
        return lm_errf(err, "rope scaling '%.*s' is not supported (only linear)", (int)(stype.len < 32 ? stype.len : 32),
                       stype.data);
    }
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
static const struct lm_tensor *tensor(const struct lm_model *m, const char *name, int64_t ne0, int64_t ne1, bool optional,
                                      struct lm_err *err, int *failed) {
    if (*failed) return NULL;
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

static int load_tensors(struct lm_model *m, struct lm_err *err) {
    const struct lm_hparams *hp = &m->hp;
    int failed = 0;
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
    m->output_norm = tensor(m, "output_norm.weight", hp->n_embd, 0, false, err, &failed);
    m->output = tensor(m, "output.weight", hp->n_embd, n_vocab, true, err, &failed);
    if (!failed && !m->output) m->output = tensor(m, "token_embd.weight", hp->n_embd, n_vocab, false, err, &failed);
    m->rope_freqs = tensor(m, "rope_freqs.weight", hp->n_rot / 2, 0, true, err, &failed);
    int q_dim = hp->n_head * hp->head_dim, kv_dim = hp->n_head_kv * hp->head_dim;
    /* The per-layer table is made before the layers' tensors are looked up:
     * a tensor info per layer at least pays for it (the loop finds which
     * one is missing). */
    if ((uint64_t)hp->n_layer > m->gguf.n_tensors)
        return lm_errf(err, "block_count %d is more than the file's %llu tensors", hp->n_layer,
                       (unsigned long long)m->gguf.n_tensors);
    m->layers = lm_xcalloc((size_t)hp->n_layer, sizeof *m->layers);
    for (int l = 0; l < hp->n_layer && !failed; l++) {
        struct lm_layer *L = &m->layers[l];
        char name[96];
#define T(field, suffix, ne0, ne1, optional)                                       \
    snprintf(name, sizeof name, "blk.%d.%s", l, suffix);                          \
    L->field = tensor(m, name, ne0, ne1, optional, err, &failed)
        T(attn_norm, "attn_norm.weight", hp->n_embd, 0, false);
        T(wq, "attn_q.weight", hp->n_embd, q_dim, false);
        T(wk, "attn_k.weight", hp->n_embd, kv_dim, false);
        T(wv, "attn_v.weight", hp->n_embd, kv_dim, false);
        T(wo, "attn_output.weight", q_dim, hp->n_embd, false);
        T(ffn_norm, "ffn_norm.weight", hp->n_embd, 0, false);
        T(w_gate, "ffn_gate.weight", hp->n_embd, hp->n_ff, false);
        T(w_up, "ffn_up.weight", hp->n_embd, hp->n_ff, false);
        T(w_down, "ffn_down.weight", hp->n_ff, hp->n_embd, false);
        bool qwen2 = hp->arch == LM_ARCH_QWEN2, qwen3 = hp->arch == LM_ARCH_QWEN3;
        T(bq, "attn_q.bias", q_dim, 0, !qwen2);
        T(bk, "attn_k.bias", kv_dim, 0, !qwen2);
        T(bv, "attn_v.bias", kv_dim, 0, !qwen2);
        T(q_norm, "attn_q_norm.weight", hp->head_dim, 0, !qwen3);
        T(k_norm, "attn_k_norm.weight", hp->head_dim, 0, !qwen3);
#undef T
    }
    if (failed) return -1;
    int half = hp->n_rot / 2;
    m->inv_freq = lm_xmalloc(sizeof *m->inv_freq * (size_t)half);
    for (int i = 0; i < half; i++) {
        double f = pow(hp->rope_base, -2.0 * i / hp->n_rot);
        if (m->rope_freqs) {
            float div = ((const float *)m->rope_freqs->data)[i];
            if (!(div > 0 && isfinite(div))) return lm_errf(err, "rope_freqs.weight[%d] is %g", i, div);
            f /= div;
        }
        m->inv_freq[i] = (float)f;
    }
    return 0;
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
    free(m->inv_freq);
    memset(m, 0, sizeof *m);
}

/* Attention works on tiles of query rows: the heads of one KV group times
 * a run of tokens, so that each key and value, widened to f32 once, meets
 * them all in lm_sgemm. Scores for every position are kept until the
 * softmax (exact, as one pass over the row), then multiply the values. */
#define ATT_ROWS 48   /* query rows per tile, when the group allows */
#define ATT_CHUNK 256 /* positions widened at a time */

static int att_tokens(const struct lm_hparams *hp) {
    int group = hp->n_head / hp->n_head_kv;
    return group >= ATT_ROWS ? 1 : ATT_ROWS / group;
}

static size_t round8(size_t n) { return (n + 7) / 8 * 8; }

/* floats of per-thread attention scratch */
static size_t att_scratch_size(const struct lm_hparams *hp, int n_ctx) {
    size_t rows = (size_t)att_tokens(hp) * (size_t)(hp->n_head / hp->n_head_kv), hd = (size_t)hp->head_dim;
    return 2 * rows * hd + rows * round8((size_t)n_ctx) + hd * ATT_CHUNK;
}

/* ---- context ---------------------------------------------------------------- */

static uint64_t max_u64(uint64_t a, uint64_t b) { return a > b ? a : b; }

/* The bytes of each buffer of a context: lm_ctx_size sums them for the
 * checks and lm_ctx_init allocates them, so the two cannot disagree. */
struct ctx_plan {
    uint64_t cache;                 /* each of k_cache and v_cache */
    uint64_t x, xn, q, kv, att, ffn; /* kv: each of k and v; ffn: each of ffn_g and ffn_u */
    uint64_t rope;                  /* each of rope_cos and rope_sin */
    uint64_t logits, qscratch;
    uint64_t rows;                  /* each of row_pos, row_seq, tiles; row_logits a quarter */
    uint64_t att_scratch;           /* per pool thread */
};

static void ctx_plan(const struct lm_model *m, int n_seq, int n_ctx, int n_batch, struct ctx_plan *p) {
    const struct lm_hparams *hp = &m->hp;
    uint64_t nb = (uint64_t)n_batch, f = sizeof(float);
    uint64_t E = (uint64_t)hp->n_embd, q_dim = (uint64_t)hp->n_head * (uint64_t)hp->head_dim;
    uint64_t kv_dim = (uint64_t)hp->n_head_kv * (uint64_t)hp->head_dim;
    p->cache = lm_mul_sat(lm_mul_sat(lm_mul_sat((uint64_t)n_seq, (uint64_t)hp->n_layer), (uint64_t)n_ctx),
                          kv_dim * sizeof(uint16_t));
    p->x = f * nb * E; /* products of checked dimensions and a batch of at most INT32_MAX: no overflow */
    p->xn = f * nb * max_u64(E, q_dim);
    p->q = p->att = f * nb * q_dim;
    p->kv = f * nb * kv_dim;
    p->ffn = f * nb * (uint64_t)hp->n_ff;
    p->rope = f * nb * (uint64_t)(hp->n_rot / 2);
    p->logits = f * (uint64_t)hp->n_vocab;
    p->rows = sizeof(int32_t) * nb;
    p->att_scratch = f * att_scratch_size(hp, n_ctx);
    /* the output takes up to a batch of rows (lm_forward_logits) */
    uint64_t qs = lm_matmul_scratch_size(m->output, n_batch);
    for (int l = 0; l < hp->n_layer; l++) {
        const struct lm_layer *L = &m->layers[l];
        /* the products that share one lm_matmul_multi call need their sum */
        qs = max_u64(qs, lm_matmul_scratch_size(L->wq, n_batch) + lm_matmul_scratch_size(L->wk, n_batch) +
                             lm_matmul_scratch_size(L->wv, n_batch));
        qs = max_u64(qs, lm_matmul_scratch_size(L->w_gate, n_batch) + lm_matmul_scratch_size(L->w_up, n_batch));
        qs = max_u64(qs, lm_matmul_scratch_size(L->wo, n_batch));
        qs = max_u64(qs, lm_matmul_scratch_size(L->w_down, n_batch));
    }
    p->qscratch = qs;
}

void lm_ctx_size(const struct lm_model *m, int n_ctx, int n_batch, struct lm_ctx_size *s) {
    struct ctx_plan p;
    ctx_plan(m, 1, n_ctx, n_batch, &p);
    s->kv = lm_mul_sat(p.cache, 2);
    s->att = p.att_scratch;
    s->batch = p.x + p.xn + p.q + 2 * p.kv + p.att + 2 * p.ffn + 2 * p.rope + p.logits + p.qscratch + 4 * p.rows;
}

int lm_model_default_ctx(const struct lm_model *m) {
    return m->hp.n_ctx_train < LM_CTX_DEFAULT_MAX ? m->hp.n_ctx_train : LM_CTX_DEFAULT_MAX;
}

/* Refuses a file whose default context needs more memory than the file can
 * justify (see model.h), naming the largest part. */
static int check_memory(const struct lm_model *m, struct lm_err *err) {
    const struct lm_hparams *hp = &m->hp;
    int n_ctx = lm_model_default_ctx(m), n_batch = n_ctx < LM_BATCH_DEFAULT ? n_ctx : LM_BATCH_DEFAULT;
    struct lm_ctx_size s;
    lm_ctx_size(m, n_ctx, n_batch, &s);
    uint64_t total = lm_add_sat(lm_add_sat(s.kv, s.att), s.batch);
    uint64_t limit = max_u64(LM_MODEL_MEM_FLOOR, lm_mul_sat(LM_MODEL_MEM_PER_BYTE, m->gguf.size));
    if (total <= limit) return 0;
    char part[160];
    int q_dim = hp->n_head * hp->head_dim;
    if (s.kv >= s.batch && s.kv >= s.att)
        snprintf(part, sizeof part, "a KV cache of %d layers x %d positions x %d values needs %s", hp->n_layer, n_ctx,
                 hp->n_head_kv * hp->head_dim, lm_size_str(s.kv).s);
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
    if ((int64_t)hp->n_head * hp->head_dim > widest) widest = (int64_t)hp->n_head * hp->head_dim;
    if ((int64_t)n_batch * widest > INT32_MAX)
        return lm_errf(err, "a batch of %d tokens is too large for this model (rows of %lld values; try a smaller -b)",
                       n_batch, (long long)widest);
    struct ctx_plan p;
    struct lm_ctx_size s;
    ctx_plan(m, n_seq, n_ctx, n_batch, &p);
    lm_ctx_size(m, n_ctx, n_batch, &s);
    s.kv = lm_mul_sat(p.cache, 2);
    int n_threads = lm_pool_size(pool);
    uint64_t total = lm_add_sat(lm_add_sat(s.kv, s.batch), lm_mul_sat(s.att, (uint64_t)n_threads));
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
    c->att_scratch_size = att_scratch_size(hp, n_ctx);
    bool failed = false;
    c->k_cache = try_alloc(p.cache, true, &failed);
    c->v_cache = try_alloc(p.cache, true, &failed);
    c->x = try_alloc(p.x, false, &failed);
    c->xn = try_alloc(p.xn, false, &failed);
    c->q = try_alloc(p.q, false, &failed);
    c->k = try_alloc(p.kv, false, &failed);
    c->v = try_alloc(p.kv, false, &failed);
    c->att = try_alloc(p.att, false, &failed);
    c->ffn_g = try_alloc(p.ffn, false, &failed);
    c->ffn_u = try_alloc(p.ffn, false, &failed);
    c->att_scratch = try_alloc(lm_mul_sat(p.att_scratch, (uint64_t)n_threads), false, &failed);
    c->rope_cos = try_alloc(p.rope, false, &failed);
    c->rope_sin = try_alloc(p.rope, false, &failed);
    c->logits = try_alloc(p.logits, false, &failed);
    c->qscratch = try_alloc(p.qscratch, false, &failed);
    c->row_pos = try_alloc(p.rows, false, &failed);
    c->row_seq = try_alloc(p.rows, false, &failed);
    c->row_logits = try_alloc(p.rows, false, &failed);
    c->tiles = try_alloc(p.rows, false, &failed);
    if (failed) {
        lm_ctx_free(c);
        return lm_errf(err, "cannot allocate the %s a context of %s positions needs (KV cache %s; try a smaller -c)",
                       lm_size_str(total).s, ctx_str(n_seq, n_ctx).s, lm_size_str(s.kv).s);
    }
    return 0;
}

void lm_ctx_free(struct lm_ctx *c) {
    void *bufs[] = {c->k_cache, c->v_cache, c->x, c->xn, c->q, c->k, c->v, c->att, c->ffn_g, c->ffn_u,
                    c->att_scratch, c->rope_cos, c->rope_sin, c->logits, c->qscratch,
                    c->row_pos, c->row_seq, c->row_logits, c->tiles};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    memset(c, 0, sizeof *c);
}

/* ---- forward ----------------------------------------------------------------- */

struct attn_job {
    struct lm_ctx *c;
    const struct lm_batch *b;
    int layer, n_tiles;
};

/* Where the rows of a tile end: the next tile's first row, or the batch's end. */
static int tile_end(const struct attn_job *j, int tile) { return tile + 1 < j->n_tiles ? j->c->tiles[tile + 1] : j->b->n; }

/* One task per (KV head, tile of rows): causal softmax attention over the
 * cache of the tile's sequence. */
static void attention(void *arg, int task, int ith) {
    struct attn_job *j = arg;
    struct lm_ctx *c = j->c;
    const struct lm_hparams *hp = &c->model->hp;
    int hd = hp->head_dim, group = hp->n_head / hp->n_head_kv;
    size_t kv_dim = (size_t)hp->n_head_kv * (size_t)hd, q_dim = (size_t)hp->n_head * (size_t)hd;
    int kvh = task / j->n_tiles, tile = task % j->n_tiles;
    int t0 = c->tiles[tile], nt = tile_end(j, tile) - t0, rows = nt * group;
    int seq = j->b->seq[t0], pos0 = j->b->pos[t0];
    size_t lds = round8((size_t)c->n_ctx);
    float *qt = c->att_scratch + (size_t)ith * c->att_scratch_size; /* (rows, hd): row t*group + g */
    float *out = qt + (size_t)rows * hd;                             /* (rows, hd) */
    float *sc = out + (size_t)rows * hd;                             /* (rows, lds) scores */
    float *kv = sc + (size_t)rows * lds;                             /* (hd, ATT_CHUNK) keys or (ATT_CHUNK, hd) values */
    for (int t = 0; t < nt; t++)
        for (int g = 0; g < group; g++)
            memcpy(qt + (size_t)(t * group + g) * hd, c->q + (size_t)(t0 + t) * q_dim + (size_t)(kvh * group + g) * hd,
                   sizeof(float) * (size_t)hd);
    size_t layer_off = ((size_t)seq * (size_t)hp->n_layer + (size_t)j->layer) * (size_t)c->n_ctx * kv_dim +
                       (size_t)kvh * (size_t)hd;
    const uint16_t *k = c->k_cache + layer_off, *v = c->v_cache + layer_off;
    int n_pos = pos0 + nt; /* positions the last row sees */
    for (int p0 = 0; p0 < n_pos; p0 += ATT_CHUNK) {
        int np = n_pos - p0 < ATT_CHUNK ? n_pos - p0 : ATT_CHUNK, npad = (int)round8((size_t)np);
        lm_f16_transpose(np, hd, k + (size_t)p0 * kv_dim, kv_dim, kv, (size_t)npad);
        for (int d = 0; d < hd; d++) memset(kv + (size_t)d * npad + np, 0, sizeof(float) * (size_t)(npad - np));
        lm_sgemm(rows, npad, hd, qt, (size_t)hd, kv, (size_t)npad, sc + p0, lds, false);
    }
    float scale = 1.0f / sqrtf((float)hd);
    size_t end = round8((size_t)n_pos);
    for (int r = 0; r < rows; r++) {
        float *row = sc + (size_t)r * lds;
        int valid = pos0 + r / group + 1;
        for (int p = 0; p < valid; p++) row[p] *= scale;
        lm_softmax(row, valid);
        memset(row + valid, 0, sizeof(float) * (end - (size_t)valid));
    }
    const struct lm_type_traits *f16 = lm_type_get(LM_TYPE_F16);
    for (int p0 = 0; p0 < n_pos; p0 += ATT_CHUNK) {
        int np = n_pos - p0 < ATT_CHUNK ? n_pos - p0 : ATT_CHUNK, npad = (int)round8((size_t)np);
        for (int p = 0; p < np; p++) f16->to_f32(v + (size_t)(p0 + p) * kv_dim, kv + (size_t)p * hd, hd);
        memset(kv + (size_t)np * hd, 0, sizeof(float) * (size_t)(npad - np) * (size_t)hd);
        lm_sgemm(rows, hd, npad, sc + p0, lds, kv, (size_t)hd, out, (size_t)hd, p0 > 0);
    }
    for (int t = 0; t < nt; t++)
        for (int g = 0; g < group; g++)
            memcpy(c->att + (size_t)(t0 + t) * q_dim + (size_t)(kvh * group + g) * hd, out + (size_t)(t * group + g) * hd,
                   sizeof(float) * (size_t)hd);
}

static void add_bias(float *y, const struct lm_tensor *b, int n_tok, int dim) {
    if (!b) return;
    const float *bias = b->data;
    for (int t = 0; t < n_tok; t++)
        for (int i = 0; i < dim; i++) y[(size_t)t * dim + i] += bias[i];
}

static void add(float *x, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

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
    int n_tiles = 0, run = 0, tile_rows = att_tokens(hp);
    for (int i = 0; i < b->n; i++) {
        if (b->tokens[i] < 0 || b->tokens[i] >= hp->n_vocab)
            return lm_errf(err, "token id %d is outside the vocabulary (%d)", b->tokens[i], hp->n_vocab);
        if (b->seq[i] < 0 || b->seq[i] >= c->n_seq)
            return lm_errf(err, "row %d: sequence %d of a context of %d", i, b->seq[i], c->n_seq);
        if (b->pos[i] < 0 || b->pos[i] >= c->n_ctx)
            return lm_errf(err, "row %d: position %d does not fit in the context of %d", i, b->pos[i], c->n_ctx);
        bool continues = i > 0 && b->seq[i] == b->seq[i - 1];
        if (continues && b->pos[i] != b->pos[i - 1] + 1)
            return lm_errf(err, "row %d: position %d after %d in sequence %d", i, b->pos[i], b->pos[i - 1], b->seq[i]);
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

int lm_forward_batch(struct lm_ctx *c, const struct lm_batch *b, float *out, struct lm_err *err) {
    const struct lm_model *m = c->model;
    const struct lm_hparams *hp = &m->hp;
    int n_tiles = plan_batch(c, b, err);
    if (n_tiles < 0) return -1;
    int n = b->n, E = hp->n_embd, hd = hp->head_dim, half = hp->n_rot / 2;
    int q_dim = hp->n_head * hd, kv_dim = hp->n_head_kv * hd;
    const struct lm_type_traits *et = lm_type_get(m->tok_embd->type);
    size_t emb_row = (size_t)(E / et->blck) * et->size;
    for (int t = 0; t < n; t++) {
        et->to_f32((const uint8_t *)m->tok_embd->data + emb_row * (size_t)b->tokens[t], c->x + (size_t)t * E, E);
        for (int i = 0; i < half; i++) {
            float angle = (float)b->pos[t] * hp->rope_scale * m->inv_freq[i];
            c->rope_cos[t * half + i] = cosf(angle);
            c->rope_sin[t * half + i] = sinf(angle);
        }
    }
    for (int l = 0; l < hp->n_layer; l++) {
        const struct lm_layer *L = &m->layers[l];
        for (int t = 0; t < n; t++) lm_rmsnorm(c->xn + (size_t)t * E, c->x + (size_t)t * E, L->attn_norm->data, E, hp->norm_eps);
        lm_matmul_multi(c->pool, 3, (float *const[]){c->q, c->k, c->v}, (const struct lm_tensor *const[]){L->wq, L->wk, L->wv},
                        c->xn, n, c->qscratch);
        add_bias(c->q, L->bq, n, q_dim);
        add_bias(c->k, L->bk, n, kv_dim);
        add_bias(c->v, L->bv, n, kv_dim);
        for (int t = 0; t < n; t++) {
            float *q = c->q + (size_t)t * q_dim, *k = c->k + (size_t)t * kv_dim;
            if (L->q_norm) {
                for (int h = 0; h < hp->n_head; h++) lm_rmsnorm(q + h * hd, q + h * hd, L->q_norm->data, hd, hp->norm_eps);
                for (int h = 0; h < hp->n_head_kv; h++) lm_rmsnorm(k + h * hd, k + h * hd, L->k_norm->data, hd, hp->norm_eps);
            }
            lm_rope(q, hp->n_head, hd, hp->n_rot, c->rope_cos + t * half, c->rope_sin + t * half, hp->rope_neox);
            lm_rope(k, hp->n_head_kv, hd, hp->n_rot, c->rope_cos + t * half, c->rope_sin + t * half, hp->rope_neox);
            size_t cache_off = (((size_t)b->seq[t] * (size_t)hp->n_layer + (size_t)l) * (size_t)c->n_ctx + (size_t)b->pos[t]) *
                               (size_t)kv_dim;
            lm_f32_to_f16_row(k, c->k_cache + cache_off, kv_dim);
            lm_f32_to_f16_row(c->v + (size_t)t * kv_dim, c->v_cache + cache_off, kv_dim);
        }
        struct attn_job job = {c, b, l, n_tiles};
        lm_pool_run(c->pool, hp->n_head_kv * n_tiles, attention, &job);
        lm_matmul(c->pool, c->xn, L->wo, c->att, n, c->qscratch);
        add(c->x, c->xn, (size_t)n * E);
        for (int t = 0; t < n; t++) lm_rmsnorm(c->xn + (size_t)t * E, c->x + (size_t)t * E, L->ffn_norm->data, E, hp->norm_eps);
        lm_matmul_multi(c->pool, 2, (float *const[]){c->ffn_g, c->ffn_u}, (const struct lm_tensor *const[]){L->w_gate, L->w_up},
                        c->xn, n, c->qscratch);
        lm_swiglu(c->ffn_g, c->ffn_u, n * hp->n_ff);
        lm_matmul(c->pool, c->xn, L->w_down, c->ffn_g, n, c->qscratch);
        add(c->x, c->xn, (size_t)n * E);
    }
    int n_out = 0;
    for (int t = 0; t < n; t++)
        if (b->logits[t]) lm_rmsnorm(c->xn + (size_t)n_out++ * E, c->x + (size_t)t * E, m->output_norm->data, E, hp->norm_eps);
    if (n_out) lm_matmul(c->pool, out, m->output, c->xn, n_out, c->qscratch);
    return 0;
}
