/* quantize.c: see quantize.h. The rules follow llama.cpp's
 * src/llama-quant.cpp (tensor_allows_quantization, llama_tensor_get_type_impl,
 * tensor_type_fallback) branch for branch, in its order, so that the two
 * read side by side. */
#include "lm/quantize.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* llama.cpp's enum llama_ftype: the values of general.file_type we write. */
enum {
    FT_F32 = 0, FT_F16 = 1, FT_Q4_0 = 2, FT_Q4_1 = 3, FT_Q8_0 = 7, FT_Q5_0 = 8, FT_Q5_1 = 9,
    FT_Q2_K = 10, FT_Q3_K_S = 11, FT_Q3_K_M = 12, FT_Q3_K_L = 13, FT_Q4_K_S = 14, FT_Q4_K_M = 15,
    FT_Q5_K_S = 16, FT_Q5_K_M = 17, FT_Q6_K = 18, FT_BF16 = 32,
};

#define QUANTIZATION_VERSION 2 /* ggml's GGML_QNT_VERSION */
#define SLAB_BYTES_DEFAULT ((size_t)32 << 20)
#define TASK_WEIGHTS 16384 /* weights per pool task at least, as llama.cpp's chunks */
#define MAX_TASKS 65536    /* per slab, well below the pool's limit */

static const struct lm_quantize_mix mixes[] = {
    {"f32", FT_F32, LM_TYPE_F32},       {"f16", FT_F16, LM_TYPE_F16},       {"bf16", FT_BF16, LM_TYPE_BF16},
    {"q8_0", FT_Q8_0, LM_TYPE_Q8_0},    {"q6_k", FT_Q6_K, LM_TYPE_Q6_K},    {"q5_0", FT_Q5_0, LM_TYPE_Q5_0},
    {"q5_1", FT_Q5_1, LM_TYPE_Q5_1},    {"q4_0", FT_Q4_0, LM_TYPE_Q4_0},    {"q4_1", FT_Q4_1, LM_TYPE_Q4_1},
    {"q5_k_m", FT_Q5_K_M, LM_TYPE_Q5_K}, {"q5_k_s", FT_Q5_K_S, LM_TYPE_Q5_K}, {"q5_k", FT_Q5_K_M, LM_TYPE_Q5_K},
    {"q4_k_m", FT_Q4_K_M, LM_TYPE_Q4_K}, {"q4_k_s", FT_Q4_K_S, LM_TYPE_Q4_K}, {"q4_k", FT_Q4_K_M, LM_TYPE_Q4_K},
    {"q3_k_l", FT_Q3_K_L, LM_TYPE_Q3_K}, {"q3_k_m", FT_Q3_K_M, LM_TYPE_Q3_K}, {"q3_k_s", FT_Q3_K_S, LM_TYPE_Q3_K},
    {"q3_k", FT_Q3_K_M, LM_TYPE_Q3_K},   {"q2_k", FT_Q2_K, LM_TYPE_Q2_K},
};

const struct lm_quantize_mix *lm_quantize_mix_find(const char *name) {
    for (size_t i = 0; i < sizeof mixes / sizeof mixes[0]; i++)
        if (!strcasecmp(mixes[i].name, name)) return &mixes[i];
    return NULL;
}

const struct lm_quantize_mix *lm_quantize_mix_at(size_t i) {
    return i < sizeof mixes / sizeof mixes[0] ? &mixes[i] : NULL;
}

/* ---- which tensors, and in which order ---------------------------------- */

enum category {
    CAT_OTHER, CAT_TOKEN_EMBD, CAT_OUTPUT, CAT_ATTN_QKV, CAT_ATTN_KV_B, CAT_ATTN_V, CAT_ATTN_K, CAT_ATTN_Q,
    CAT_ATTN_OUTPUT, CAT_FFN_UP, CAT_FFN_GATE, CAT_FFN_DOWN,
};

static enum category category_of(const char *name) {
    static const struct { const char *part; enum category cat; } parts[] = {
        {"attn_qkv.weight", CAT_ATTN_QKV}, {"attn_kv_b.weight", CAT_ATTN_KV_B}, {"attn_v.weight", CAT_ATTN_V},
        {"attn_k.weight", CAT_ATTN_K},     {"attn_q.weight", CAT_ATTN_Q},       {"attn_output.weight", CAT_ATTN_OUTPUT},
        {"ffn_up", CAT_FFN_UP},            {"ffn_gate", CAT_FFN_GATE},          {"ffn_down", CAT_FFN_DOWN},
    };
    if (!strcmp(name, "output.weight")) return CAT_OUTPUT;
    if (!strcmp(name, "token_embd.weight") || !strcmp(name, "per_layer_token_embd.weight")) return CAT_TOKEN_EMBD;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        if (strstr(name, parts[i].part)) return parts[i].cat;
    return CAT_OTHER;
}

/* attn_v and the fused matrices that hold it: the most sensitive to bits */
static bool is_attn_v(enum category c) { return c == CAT_ATTN_V || c == CAT_ATTN_QKV || c == CAT_ATTN_KV_B; }

/* Parts of names llama.cpp never converts: small tensors, integer tables,
 * convolutions and embeddings other models index by position. */
static const char *const keep_parts[] = {
    "_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel", "per_layer_model_proj",
    "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight", "indexer.q_proj.weight",
    "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight", "time_mix_w2.weight",
    "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight", "time_mix_a0.weight", "time_mix_a1.weight",
    "time_mix_a2.weight", "time_mix_g1.weight", "time_mix_g2.weight", "time_mix_decay_w1.weight",
    "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight", "attn_rel_b.weight", ".position_embd",
    "sam.pos_embd", "sam.neck.", "sam.net_", ".rel_pos", ".patch_embd", ".patch_merger", "a.rvq.codebook",
    "mm.a.code_embd",
};

/* ggml_n_dims: trailing dimensions of 1 do not count (llama.cpp also
 * writes a tensor's dimensions so). */
static int dims_of(const struct lm_tensor *t) {
    int n_dims = 4;
    while (n_dims > 1 && t->ne[n_dims - 1] == 1) n_dims--;
    return n_dims;
}

static bool may_convert(const char *name, const struct lm_tensor *t, bool leave_output) {
    const size_t len = strlen(name);
    if (dims_of(t) < 2 || len < 6 || strcmp(name + len - 6, "weight") != 0) return false;
    if (leave_output && !strcmp(name, "output.weight")) return false;
    if (!strcmp(name, "position_embd.weight") || !strcmp(name, "token_types.weight")) return false;
    for (size_t i = 0; i < sizeof keep_parts / sizeof keep_parts[0]; i++)
        if (strstr(name, keep_parts[i])) return false;
    return true;
}

/* The N of a name "blk.N...", or -1. */
static int64_t name_layer(const char *name, size_t len) {
    if (len < 5 || memcmp(name, "blk.", 4) != 0 || !isdigit((unsigned char)name[4])) return -1;
    int64_t n = 0;
    for (size_t i = 4; i < len && isdigit((unsigned char)name[i]) && n < INT32_MAX; i++) n = n * 10 + (name[i] - '0');
    return n;
}

struct sort_key {
    int64_t layer;
    struct lm_gguf_str name;
    uint64_t index;
};

/* llama.cpp's weight_name_comparer: tensors outside layers first, then by
 * layer number, then by name (bytes compared unsigned, as std::string). */
static int by_layer_then_name(const void *a, const void *b) {
    const struct sort_key *x = a, *y = b;
    if (x->layer != y->layer) return x->layer < y->layer ? -1 : 1;
    const size_t n = x->name.len < y->name.len ? x->name.len : y->name.len;
    const int c = memcmp(x->name.data, y->name.data, n);
    if (c) return c;
    return (x->name.len > y->name.len) - (x->name.len < y->name.len);
}

/* A tensor's name as a C string (names are at most 255 bytes: gguf.c). */
static int name_of(const struct lm_gguf_tensor *t, char buf[256], struct lm_err *err) {
    if (memchr(t->name.data, 0, t->name.len))
        return lm_errf(err, "tensor name '%.*s...' holds a NUL byte", (int)strlen(t->name.data), t->name.data);
    memcpy(buf, t->name.data, t->name.len);
    buf[t->name.len] = 0;
    return 0;
}

/* ---- llama.cpp's rules -------------------------------------------------- */

struct rules {
    uint32_t ftype;
    int64_t n_layer, n_expert, n_gqa;
    bool is_70b;  /* llama.cpp's LLM_TYPE_70B */
    bool tied;    /* no output.weight: the token embedding is also the output */
    int64_t n_attn_v, i_attn_v, i_ffn_down, i_ffn_gate, i_ffn_up;
};

/* An integer hyperparameter "ARCH.suffix"; a per-layer array gives layer
 * 0's, as llama.cpp's n_gqa() reads it. 1 found, 0 absent, -1 bad. */
static int hparam(const struct lm_gguf *g, const char *arch, const char *suffix, int64_t *out, struct lm_err *err) {
    char key[192];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    const struct lm_gguf_value *v = lm_gguf_get(g, key);
    if (v && v->type == LM_GGUF_ARRAY) {
        const enum lm_gguf_type e = v->arr.type;
        if (v->arr.n == 0 || e == LM_GGUF_F32 || e == LM_GGUF_F64 || e == LM_GGUF_BOOL || lm_gguf_type_size(e) == 0)
            return lm_errf(err, "metadata '%s': expected an integer or an array of them", key);
        *out = lm_gguf_arr_int(v, 0);
        return 1;
    }
    return lm_gguf_get_int(g, key, out, err);
}

static int read_rules(struct rules *r, const struct lm_gguf *in, uint64_t n_ffn_down, struct lm_err *err) {
    struct lm_gguf_str a = {0, ""};
    if (lm_gguf_get_str(in, "general.architecture", &a, err) < 0) return -1;
    char arch[128];
    snprintf(arch, sizeof arch, "%.*s", (int)(a.len < 100 ? a.len : 100), a.data);
    int64_t n_head = 0, n_head_kv = -1;
    int found = hparam(in, arch, "block_count", &r->n_layer, err);
    if (found < 0 || hparam(in, arch, "expert_count", &r->n_expert, err) < 0 ||
        hparam(in, arch, "attention.head_count", &n_head, err) < 0 ||
        hparam(in, arch, "attention.head_count_kv", &n_head_kv, err) < 0)
        return -1;
    if (!found) r->n_layer = (int64_t)n_ffn_down; /* llama.cpp needs block_count; a file without one has as many ffn_down */
    if (n_head_kv < 0) n_head_kv = n_head;        /* llama.cpp's default: no grouping */
    r->n_gqa = n_head_kv > 0 ? n_head / n_head_kv : 0;
    /* the model types llama.cpp's rules single out, as its loader names them */
    r->is_70b = (!strcmp(arch, "llama") && r->n_expert != 8 && r->n_layer == 80 && n_head != n_head_kv) ||
                (!strcmp(arch, "qwen2") && r->n_layer == 80);
    return 0;
}

static bool use_more_bits(int64_t i, int64_t n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

/* The layer of an ffn tensor: its index among the tensors of its kind,
 * except in expert models, whose tensors llama.cpp takes the layer of from
 * the name. */
static int ffn_layer(const struct rules *r, int64_t counter, const char *name, int64_t *il, struct lm_err *err) {
    if (r->n_expert <= 1) {
        *il = counter;
        return 0;
    }
    *il = name_layer(name, strlen(name));
    if (*il < 0) return lm_errf(err, "tensor '%s': no layer number in its name (blk.N.)", name);
    if (*il >= r->n_layer)
        return lm_errf(err, "tensor '%s': layer %lld of a model of %lld layers", name, (long long)*il, (long long)r->n_layer);
    return 0;
}

/* llama_tensor_get_type_impl for the mixes we make: t comes in as the mix's
 * format and leaves as the tensor's. */
static int mix_type(struct rules *r, const char *name, enum category cat, int64_t ne0, enum lm_type *type,
                    struct lm_err *err) {
    const uint32_t ft = r->ftype;
    enum lm_type t = *type;
    int64_t il;
    if (cat == CAT_OUTPUT || (r->tied && cat == CAT_TOKEN_EMBD)) {
        if (ne0 % lm_type_get(t)->blck) t = LM_TYPE_Q8_0;
        else if (t != LM_TYPE_Q8_0) t = LM_TYPE_Q6_K;
    } else if (cat == CAT_TOKEN_EMBD) {
        /* llama.cpp's rules here concern the i-quant and ternary mixes only */
    } else if (is_attn_v(cat)) {
        if (ft == FT_Q2_K) t = r->n_gqa >= 4 ? LM_TYPE_Q4_K : LM_TYPE_Q3_K;
        else if (ft == FT_Q3_K_M) t = r->i_attn_v < 2 ? LM_TYPE_Q5_K : LM_TYPE_Q4_K;
        else if (ft == FT_Q3_K_L) t = LM_TYPE_Q5_K;
        else if ((ft == FT_Q4_K_M || ft == FT_Q5_K_M) && use_more_bits(r->i_attn_v, r->n_attn_v)) t = LM_TYPE_Q6_K;
        else if (ft == FT_Q4_K_S && r->i_attn_v < 4) t = LM_TYPE_Q5_K;
        /* a 70B's attn_v is 8 times smaller than attn_q: more bits cost little */
        if (r->is_70b && (t == LM_TYPE_Q3_K || t == LM_TYPE_Q4_K)) t = LM_TYPE_Q5_K;
        if (r->n_expert == 8) t = LM_TYPE_Q8_0;
        r->i_attn_v++;
    } else if (cat == CAT_ATTN_K) {
        if (r->n_expert == 8) t = LM_TYPE_Q8_0;
    } else if (cat == CAT_FFN_DOWN) {
        if (ffn_layer(r, r->i_ffn_down, name, &il, err) < 0) return -1;
        const int64_t n = r->n_layer;
        if (ft == FT_Q2_K) t = LM_TYPE_Q3_K;
        else if (ft == FT_Q3_K_M) t = il < n / 16 ? LM_TYPE_Q5_K : LM_TYPE_Q4_K;
        else if (ft == FT_Q3_K_L) t = LM_TYPE_Q5_K;
        else if (ft == FT_Q4_K_M) t = use_more_bits(il, n) ? LM_TYPE_Q6_K : t;
        else if (ft == FT_Q5_K_M && use_more_bits(il, n)) t = LM_TYPE_Q6_K;
        else if (ft == FT_Q4_K_S && il < n / 8) t = LM_TYPE_Q5_K;
        r->i_ffn_down++;
    } else if (cat == CAT_ATTN_OUTPUT) {
        if (r->n_expert == 8) {
            if (ft == FT_Q2_K || ft == FT_Q3_K_S || ft == FT_Q3_K_M || ft == FT_Q4_K_S || ft == FT_Q4_K_M)
                t = LM_TYPE_Q5_K;
        } else {
            if (ft == FT_Q2_K) t = LM_TYPE_Q3_K;
            else if (ft == FT_Q3_K_M) t = LM_TYPE_Q4_K;
            else if (ft == FT_Q3_K_L) t = LM_TYPE_Q5_K;
        }
    } else if (cat == CAT_FFN_GATE || cat == CAT_FFN_UP) {
        /* no rule for our mixes, but llama.cpp still wants an expert's layer */
        int64_t *i = cat == CAT_FFN_GATE ? &r->i_ffn_gate : &r->i_ffn_up;
        if (ffn_layer(r, *i, name, &il, err) < 0) return -1;
        ++*i;
    }
    *type = t;
    return 0;
}

/* tensor_type_fallback: a format whose blocks divide the rows. */
static enum lm_type fallback(enum lm_type t, int64_t ne0) {
    if (ne0 % lm_type_get(t)->blck == 0) return t;
    enum lm_type f;
    switch (t) {
    case LM_TYPE_Q2_K: case LM_TYPE_Q3_K: f = LM_TYPE_Q4_0; break;
    case LM_TYPE_Q4_K: f = LM_TYPE_Q5_0; break;
    case LM_TYPE_Q5_K: f = LM_TYPE_Q5_1; break;
    case LM_TYPE_Q6_K: f = LM_TYPE_Q8_0; break;
    default: LM_ASSERT(lm_type_get(t)->blck <= 32); f = t; break;
    }
    return ne0 % lm_type_get(f)->blck ? LM_TYPE_F16 : f;
}

static bool is_float_type(enum lm_type t) { return t == LM_TYPE_F32 || t == LM_TYPE_F16 || t == LM_TYPE_BF16; }

int lm_quantize_plan(struct lm_quantize_plan *p, const struct lm_gguf *in, const struct lm_quantize_opts *o,
                     struct lm_err *err) {
    memset(p, 0, sizeof *p);
    p->requant = LM_TYPE_COUNT;
    p->n = in->n_tensors;
    p->order = lm_xcalloc(p->n, sizeof *p->order);
    p->type = lm_xcalloc(p->n, sizeof *p->type);
    struct sort_key *keys = lm_xcalloc(p->n, sizeof *keys);
    struct rules r = {.ftype = o->mix->ftype, .tied = true};
    char name[256];
    uint64_t n_ffn_down = 0;
    int rc = -1;
    for (uint64_t i = 0; i < p->n; i++) {
        const struct lm_gguf_tensor *t = &in->tensors[i];
        if (name_of(t, name, err) < 0) goto done;
        const enum category cat = category_of(name);
        r.n_attn_v += is_attn_v(cat);
        n_ffn_down += cat == CAT_FFN_DOWN;
        if (cat == CAT_OUTPUT) r.tied = false;
        keys[i] = (struct sort_key){name_layer(name, t->name.len), t->name, i};
    }
    uint64_t n_split = 1;
    if (lm_gguf_get_uint(in, "split.count", &n_split, err) < 0) goto done;
    if (n_split > 1) {
        lm_errf(err, "part of a model split in %llu files: merge them first (llama-gguf-split --merge)",
                (unsigned long long)n_split);
        goto done;
    }
    if (read_rules(&r, in, n_ffn_down, err) < 0) goto done;
    qsort(keys, p->n, sizeof *keys, by_layer_then_name);
    const bool quantized = !is_float_type(o->mix->type);
    for (uint64_t i = 0; i < p->n; i++) {
        const struct lm_gguf_tensor *t = &in->tensors[keys[i].index];
        const int64_t ne0 = t->t.ne[0];
        enum lm_type type = t->t.type;
        name_of(t, name, err);
        p->order[i] = keys[i].index;
        if (may_convert(name, &t->t, o->leave_output)) {
            type = o->mix->type;
            if (quantized && !o->pure && mix_type(&r, name, category_of(name), ne0, &type, err) < 0) goto done;
            if (quantized) {
                const enum lm_type f = fallback(type, ne0);
                p->n_fallback += f != type;
                type = f;
            }
        }
        p->type[i] = type;
        if (type == t->t.type) continue;
        if (!lm_type_get(t->t.type)->to_f32) {
            lm_errf(err, "tensor '%s': cannot convert from %s (no dequantizer)", name, lm_type_get(t->t.type)->name);
            goto done;
        }
        if (!is_float_type(t->t.type)) p->requant = t->t.type;
    }
    rc = 0;
done:
    free(keys);
    return rc;
}

void lm_quantize_plan_free(struct lm_quantize_plan *p) {
    free(p->order);
    free(p->type);
    memset(p, 0, sizeof *p);
}

/* ---- writing ------------------------------------------------------------ */

struct out {
    int fd;
    uint64_t pos;
};

static int put(struct out *o, const void *data, size_t n, struct lm_err *err) {
    const uint8_t *p = data;
    while (n) {
        const ssize_t w = write(o->fd, p, n < ((size_t)1 << 30) ? n : (size_t)1 << 30);
        if (w < 0 && errno == EINTR) continue; /* a signal: the slab loop looks at the stop flag */
        if (w <= 0) return lm_errf(err, "cannot write: %s", w < 0 ? strerror(errno) : "no progress");
        p += w;
        n -= (size_t)w;
        o->pos += (uint64_t)w;
    }
    return 0;
}

static int pad_to(struct out *o, uint64_t pos, struct lm_err *err) {
    static const uint8_t zeros[4096];
    while (o->pos < pos) {
        const uint64_t n = pos - o->pos < sizeof zeros ? pos - o->pos : sizeof zeros;
        if (put(o, zeros, (size_t)n, err) < 0) return -1;
    }
    return 0;
}

enum { ROW_OK, ROW_BAD_INPUT, ROW_BAD_OUTPUT };

/* One slab of rows of a tensor, converted by the pool's tasks. */
struct slab {
    const struct lm_type_traits *from, *to;
    const uint8_t *src;
    size_t src_row, dst_row;
    int64_t n, n_rows, rows_per_task;
    float *f32;
    uint8_t *dst, *row_state;
};

static bool all_finite(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, &x[i], 4);
        if ((b & 0x7f800000u) == 0x7f800000u) return false;
    }
    return true;
}

static void convert_rows(void *ctx, int task, int ith) {
    const struct slab *s = ctx;
    const int64_t r0 = (int64_t)task * s->rows_per_task;
    const int64_t r1 = r0 + s->rows_per_task < s->n_rows ? r0 + s->rows_per_task : s->n_rows;
    for (int64_t r = r0; r < r1; r++) {
        float *x = s->f32 + r * s->n;
        uint8_t *y = s->dst + (size_t)r * s->dst_row;
        s->from->to_f32(s->src + (size_t)r * s->src_row, x, s->n);
        if (!all_finite(x, s->n)) {
            s->row_state[r] = ROW_BAD_INPUT;
            continue;
        }
        s->to->from_f32(x, y, s->n);
        /* What readers will get back: llama.cpp validates its output too,
         * and refuses scales that overflowed f16. */
        s->to->to_f32(y, x, s->n);
        s->row_state[r] = all_finite(x, s->n) ? ROW_OK : ROW_BAD_OUTPUT;
    }
}

static bool stopped(const struct lm_quantize_run *r, int *code, struct lm_err *err) {
    if (!r->stop || !*r->stop) return false;
    *code = LM_EXIT_INTERRUPT;
    lm_errf(err, "interrupted");
    return true;
}

/* Scratch reused from tensor to tensor. */
struct scratch {
    float *f32;
    uint8_t *dst, *row_state;
    size_t cap_rows, cap_f32, cap_dst;
};

static void *grow(void *p, size_t *cap, size_t n) {
    if (n <= *cap) return p;
    *cap = n;
    return lm_xrealloc(p, n);
}

static int convert_tensor(const struct lm_gguf_tensor *t, const char *name, enum lm_type type, struct out *o,
                          const struct lm_quantize_run *r, struct scratch *sc, uint64_t i, uint64_t *done,
                          uint64_t total, int *code, struct lm_err *err) {
    struct slab s = {.from = lm_type_get(t->t.type), .to = lm_type_get(type), .src = t->t.data, .n = t->t.ne[0]};
    s.src_row = (size_t)(s.n / s.from->blck) * s.from->size;
    s.dst_row = (size_t)(s.n / s.to->blck) * s.to->size;
    const int64_t n_rows = (int64_t)(t->size / s.src_row);
    const size_t slab_bytes = r->slab_bytes ? r->slab_bytes : SLAB_BYTES_DEFAULT;
    int64_t slab_rows = (int64_t)(slab_bytes / ((size_t)s.n * sizeof(float)));
    s.rows_per_task = (TASK_WEIGHTS + s.n - 1) / s.n;
    if (slab_rows > MAX_TASKS * s.rows_per_task) slab_rows = MAX_TASKS * s.rows_per_task; /* a pool job's limit */
    slab_rows = slab_rows < 1 ? 1 : slab_rows > n_rows ? n_rows : slab_rows;
    sc->f32 = grow(sc->f32, &sc->cap_f32, (size_t)slab_rows * (size_t)s.n * sizeof(float));
    sc->dst = grow(sc->dst, &sc->cap_dst, (size_t)slab_rows * s.dst_row);
    sc->row_state = grow(sc->row_state, &sc->cap_rows, (size_t)slab_rows);
    s.f32 = sc->f32;
    s.dst = sc->dst;
    s.row_state = sc->row_state;
    for (int64_t row = 0; row < n_rows; row += slab_rows) {
        if (stopped(r, code, err)) return -1;
        s.n_rows = n_rows - row < slab_rows ? n_rows - row : slab_rows;
        s.src = (const uint8_t *)t->t.data + (size_t)row * s.src_row;
        const int n_tasks = (int)((s.n_rows + s.rows_per_task - 1) / s.rows_per_task);
        if (r->pool) lm_pool_run(r->pool, n_tasks, convert_rows, &s);
        else
            for (int k = 0; k < n_tasks; k++) convert_rows(&s, k, 0);
        for (int64_t k = 0; k < s.n_rows; k++) {
            if (s.row_state[k] == ROW_OK) continue;
            *code = LM_EXIT_MODEL;
            if (s.row_state[k] == ROW_BAD_INPUT)
                return lm_errf(err, "tensor '%s': row %lld holds NaN or infinity", name, (long long)(row + k));
            return lm_errf(err, "tensor '%s': row %lld has values too large for %s", name, (long long)(row + k),
                           s.to->name);
        }
        if (put(o, s.dst, (size_t)s.n_rows * s.dst_row, err) < 0) return -1;
        *done += (uint64_t)s.n_rows * s.src_row;
        if (r->progress) r->progress(r->progress_ctx, i, *done, total);
    }
    return 0;
}

static int copy_tensor(const struct lm_gguf_tensor *t, struct out *o, const struct lm_quantize_run *r, uint64_t i,
                       uint64_t *done, uint64_t total, int *code, struct lm_err *err) {
    const size_t chunk = r->slab_bytes ? r->slab_bytes : SLAB_BYTES_DEFAULT;
    for (uint64_t off = 0; off < t->size; off += chunk) {
        if (stopped(r, code, err)) return -1;
        const size_t n = t->size - off < chunk ? (size_t)(t->size - off) : chunk;
        if (put(o, (const uint8_t *)t->t.data + off, n, err) < 0) return -1;
        *done += n;
        if (r->progress) r->progress(r->progress_ctx, i, *done, total);
    }
    return 0;
}

int lm_quantize_write(const struct lm_gguf *in, const struct lm_quantize_plan *p, const struct lm_quantize_opts *o,
                      int fd, const struct lm_quantize_run *r, struct lm_quantize_stats *st, int *code,
                      struct lm_err *err) {
    memset(st, 0, sizeof *st);
    *code = LM_EXIT_RUNTIME;
    struct lm_gguf_writer w;
    lm_gguf_writer_init(&w);
    w.alignment = in->alignment;
    for (uint64_t i = 0; i < in->n_kv; i++) {
        const struct lm_gguf_kv *kv = &in->kv[i];
        /* set below, or (the split keys) no longer true, as llama.cpp drops them */
        if (lm_gguf_str_eq(kv->key, "general.file_type") || lm_gguf_str_eq(kv->key, "general.quantization_version") ||
            lm_gguf_str_eq(kv->key, "split.no") || lm_gguf_str_eq(kv->key, "split.count") ||
            lm_gguf_str_eq(kv->key, "split.tensors.count"))
            continue;
        lm_gguf_write_value(&w, kv->key, &kv->value);
    }
    lm_gguf_write_u32(&w, "general.quantization_version", QUANTIZATION_VERSION);
    lm_gguf_write_u32(&w, "general.file_type", o->mix->ftype);
    uint64_t *offsets = lm_xcalloc(p->n, sizeof *offsets), total = 0, done = 0;
    char name[256];
    for (uint64_t i = 0; i < p->n; i++) {
        const struct lm_gguf_tensor *t = &in->tensors[p->order[i]];
        name_of(t, name, NULL); /* checked by the plan */
        uint64_t size;
        offsets[i] = lm_gguf_write_tensor_info(&w, name, p->type[i], dims_of(&t->t), t->t.ne, &size);
        total += t->size;
        st->in_bytes += t->size;
        st->out_bytes += size;
        st->n_weights += (uint64_t)(t->t.ne[0] * t->t.ne[1] * t->t.ne[2] * t->t.ne[3]);
    }
    struct lm_buf head = {0};
    lm_gguf_writer_header(&w, &head);
    lm_gguf_writer_free(&w);
    struct out out = {fd, 0};
    struct scratch sc = {0};
    int rc = put(&out, head.data, head.len, err);
    const uint64_t data_start = head.len;
    lm_buf_free(&head);
    for (uint64_t i = 0; i < p->n && rc == 0; i++) {
        const struct lm_gguf_tensor *t = &in->tensors[p->order[i]];
        name_of(t, name, NULL);
        if (pad_to(&out, data_start + offsets[i], err) < 0) rc = -1;
        else if (p->type[i] == t->t.type) rc = copy_tensor(t, &out, r, i, &done, total, code, err);
        else rc = convert_tensor(t, name, p->type[i], &out, r, &sc, i, &done, total, code, err);
        lm_gguf_release(in, t->t.data, t->size); /* llama.cpp unmaps each weight too */
    }
    /* the file ends padded, as llama.cpp's do */
    if (rc == 0 && p->n) rc = pad_to(&out, (out.pos + in->alignment - 1) / in->alignment * in->alignment, err);
    free(offsets);
    free(sc.f32);
    free(sc.dst);
    free(sc.row_state);
    st->file_bytes = out.pos;
    if (rc == 0) *code = LM_EXIT_OK;
    return rc;
}
