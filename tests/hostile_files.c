/* The files of hostile_files.h. Good ones are tiny but complete models (a
 * byte-level BPE or SentencePiece vocabulary that spells every byte, one or
 * two layers); each bad one is a good one with one flaw, or a hand-made
 * header where the flaw is in the GGUF structure itself. The expected
 * messages are lm's own wording, each checked to name the flaw. */
#include "hostile_files.h"

#include "lm/gguf.h"
#include "lm/tokenizer.h"
#include "lm/unicode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- vocabularies --------------------------------------------------------- */

#define G "\xC4\xA0" /* U+0120, the byte-level alphabet's space */
#define SP "\xE2\x96\x81" /* U+2581, SentencePiece's space */

static const char *const bpe_merges[] = {"h e", "l l", "he ll", "hell o", G " w", "o r", G "w or", "l d", G "wor ld"};
static const char *const bpe_more[] = {"he", "ll", "hell", "hello", G "w", "or", G "wor", "ld", G "world",
                                       "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool>"};

static const char *const spm_more[] = {SP, "a", "b", "h", "e", "l", "o", SP "a", "ab", "he", "ll", SP "he", "hell", SP "hell",
                                       SP "hello"};
enum { N_BPE = 256 + 13, BPE_EOS = 256 + 9, N_SPM = 3 + 256 + 15 };

struct vocab {
    const char *text[N_SPM > N_BPE ? N_SPM : N_BPE];
    int32_t type[N_SPM > N_BPE ? N_SPM : N_BPE];
    float score[N_SPM > N_BPE ? N_SPM : N_BPE];
    int n;
    char bytes[256][8];
};

static void bpe_vocab(struct vocab *v) {
    v->n = N_BPE;
    for (int b = 0; b < 256; b++) {
        size_t k = lm_utf8_encode(lm_unicode_byte_to_cp((uint8_t)b), v->bytes[b]);
        v->bytes[b][k] = 0;
        v->text[b] = v->bytes[b];
        v->type[b] = LM_TOKEN_NORMAL;
    }
    for (int i = 0; i < 13; i++) {
        v->text[256 + i] = bpe_more[i];
        v->type[256 + i] = i < 9 ? LM_TOKEN_NORMAL : i < 12 ? LM_TOKEN_CONTROL : LM_TOKEN_USER_DEFINED;
    }
}

static void spm_vocab(struct vocab *v) {
    v->n = N_SPM;
    const char *const head[] = {"<unk>", "<s>", "</s>"};
    const int32_t head_types[] = {LM_TOKEN_UNKNOWN, LM_TOKEN_CONTROL, LM_TOKEN_CONTROL};
    for (int i = 0; i < 3; i++) v->text[i] = head[i], v->type[i] = head_types[i], v->score[i] = 0;
    for (int b = 0; b < 256; b++) {
        snprintf(v->bytes[b], sizeof v->bytes[b], "<0x%02X>", b);
        v->text[3 + b] = v->bytes[b];
        v->type[3 + b] = LM_TOKEN_BYTE;
        v->score[3 + b] = 0;
    }
    for (int i = 0; i < 15; i++) {
        v->text[259 + i] = spm_more[i];
        v->type[259 + i] = LM_TOKEN_NORMAL;
        v->score[259 + i] = -(float)i; /* longer pieces come later but merge by score */
    }
}

/* ---- a tiny model ---------------------------------------------------------- */

struct spec {
    const char *arch;       /* llama, qwen2, qwen3 */
    bool spm;               /* SentencePiece vocabulary, else byte-level BPE */
    enum lm_type wtype;     /* matrices */
    enum lm_type etype;     /* token embedding */
    int n_embd, n_ff, n_head, n_head_kv, n_layer;
    int head_dim;           /* attention.key_length, when not 0 (else n_embd / n_head) */
    int n_ctx;              /* context_length, when not 0 (else 64) */
    int n_layer_tensors;    /* layers whose tensors are written (default n_layer) */
    int extra_rows;         /* token_embd rows beyond the vocabulary */
    uint32_t alignment;     /* general.alignment, when not 0 */
    const char *name;       /* general.name, when not NULL */
    const char *omit[3];    /* keys and tensors left out, for the case to write its own */
};

static const struct spec LLAMA = {.arch = "llama", .wtype = LM_TYPE_F32, .etype = LM_TYPE_F16,
                                  .n_embd = 8, .n_ff = 16, .n_head = 2, .n_head_kv = 1, .n_layer = 1};

static bool omitted(const struct spec *s, const char *name) {
    for (int i = 0; i < 3; i++)
        if (s->omit[i] && !strcmp(s->omit[i], name)) return true;
    return false;
}

static uint64_t rng = 1;

/* Weights near base, deterministic; ne1 == 0 makes a vector. */
static void weights(struct lm_gguf_writer *w, const struct spec *s, const char *name, enum lm_type type, int64_t ne0,
                    int64_t ne1, float base) {
    if (omitted(s, name)) return;
    int64_t rows = ne1 ? ne1 : 1, n = ne0 * rows;
    float *f = lm_xmalloc(sizeof *f * (size_t)n);
    for (int64_t i = 0; i < n; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        f[i] = base + ((float)(rng >> 40) / (float)(1 << 24) - 0.5f) * 0.5f;
    }
    const struct lm_type_traits *tt = lm_type_get(type);
    void *q = lm_xmalloc((size_t)(ne0 / tt->blck) * tt->size * (size_t)rows);
    tt->from_f32(f, q, n);
    int64_t ne[2] = {ne0, rows};
    lm_gguf_write_tensor(w, name, type, ne1 ? 2 : 1, ne, q);
    free(q);
    free(f);
}

static void put_u32(struct lm_gguf_writer *w, const struct spec *s, const char *suffix, uint32_t v) {
    char key[96];
    snprintf(key, sizeof key, "%s.%s", s->arch, suffix);
    if (!omitted(s, key)) lm_gguf_write_u32(w, key, v);
}

static void put_f32(struct lm_gguf_writer *w, const struct spec *s, const char *suffix, float v) {
    char key[96];
    snprintf(key, sizeof key, "%s.%s", s->arch, suffix);
    if (!omitted(s, key)) lm_gguf_write_f32(w, key, v);
}

/* Writes the model of s into w (not finished: a case may add more). */
static void model(struct lm_gguf_writer *w, const struct spec *s) {
    static struct vocab v;
    rng = 1;
    lm_gguf_writer_init(w);
    if (s->alignment) {
        w->alignment = s->alignment;
        lm_gguf_write_u32(w, "general.alignment", s->alignment);
    }
    if (s->name) lm_gguf_write_str(w, "general.name", s->name);
    if (!omitted(s, "general.architecture")) lm_gguf_write_str(w, "general.architecture", s->arch);
    put_u32(w, s, "embedding_length", (uint32_t)s->n_embd);
    put_u32(w, s, "block_count", (uint32_t)s->n_layer);
    put_u32(w, s, "feed_forward_length", (uint32_t)s->n_ff);
    put_u32(w, s, "attention.head_count", (uint32_t)s->n_head);
    put_u32(w, s, "attention.head_count_kv", (uint32_t)s->n_head_kv);
    put_u32(w, s, "context_length", (uint32_t)(s->n_ctx ? s->n_ctx : 64));
    if (s->head_dim) put_u32(w, s, "attention.key_length", (uint32_t)s->head_dim);
    put_f32(w, s, "rope.freq_base", 10000.0f);
    put_f32(w, s, "attention.layer_norm_rms_epsilon", 1e-5f);

    if (s->spm) spm_vocab(&v);
    else bpe_vocab(&v);
    if (!omitted(s, "tokenizer.ggml.model")) lm_gguf_write_str(w, "tokenizer.ggml.model", s->spm ? "llama" : "gpt2");
    if (!s->spm) lm_gguf_write_str(w, "tokenizer.ggml.pre", "smollm");
    if (!omitted(s, "tokenizer.ggml.tokens")) lm_gguf_write_arr_str(w, "tokenizer.ggml.tokens", v.text, (uint64_t)v.n);
    if (!omitted(s, "tokenizer.ggml.token_type"))
        lm_gguf_write_arr(w, "tokenizer.ggml.token_type", LM_GGUF_I32, v.type, (uint64_t)v.n);
    if (s->spm && !omitted(s, "tokenizer.ggml.scores"))
        lm_gguf_write_arr(w, "tokenizer.ggml.scores", LM_GGUF_F32, v.score, (uint64_t)v.n);
    if (!s->spm && !omitted(s, "tokenizer.ggml.merges"))
        lm_gguf_write_arr_str(w, "tokenizer.ggml.merges", bpe_merges, sizeof bpe_merges / sizeof bpe_merges[0]);
    if (!omitted(s, "tokenizer.ggml.bos_token_id")) lm_gguf_write_u32(w, "tokenizer.ggml.bos_token_id", s->spm ? 1 : BPE_EOS);
    if (!omitted(s, "tokenizer.ggml.eos_token_id")) lm_gguf_write_u32(w, "tokenizer.ggml.eos_token_id", s->spm ? 2 : BPE_EOS);
    lm_gguf_write_str(w, "tokenizer.chat_template",
                      "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
                      "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}");

    int E = s->n_embd, hd = s->head_dim ? s->head_dim : E / s->n_head, q_dim = s->n_head * hd, kv_dim = s->n_head_kv * hd;
    weights(w, s, "token_embd.weight", s->etype, E, v.n + s->extra_rows, 0.0f);
    weights(w, s, "output_norm.weight", LM_TYPE_F32, E, 0, 1.0f);
    int n_layer_tensors = s->n_layer_tensors ? s->n_layer_tensors : s->n_layer;
    for (int l = 0; l < n_layer_tensors; l++) {
        char name[64];
#define W(suffix, type, ne0, ne1, base) \
    snprintf(name, sizeof name, "blk.%d.%s", l, suffix); \
    weights(w, s, name, type, ne0, ne1, base)
        W("attn_norm.weight", LM_TYPE_F32, E, 0, 1.0f);
        W("attn_q.weight", s->wtype, E, q_dim, 0.0f);
        W("attn_k.weight", s->wtype, E, kv_dim, 0.0f);
        W("attn_v.weight", s->wtype, E, kv_dim, 0.0f);
        W("attn_output.weight", s->wtype, q_dim, E, 0.0f);
        W("ffn_norm.weight", LM_TYPE_F32, E, 0, 1.0f);
        W("ffn_gate.weight", s->wtype, E, s->n_ff, 0.0f);
        W("ffn_up.weight", s->wtype, E, s->n_ff, 0.0f);
        W("ffn_down.weight", s->wtype, s->n_ff, E, 0.0f);
        if (!strcmp(s->arch, "qwen2")) {
            W("attn_q.bias", LM_TYPE_F32, q_dim, 0, 0.0f);
            W("attn_k.bias", LM_TYPE_F32, kv_dim, 0, 0.0f);
            W("attn_v.bias", LM_TYPE_F32, kv_dim, 0, 0.0f);
        }
        if (!strcmp(s->arch, "qwen3")) {
            W("attn_q_norm.weight", LM_TYPE_F32, hd, 0, 1.0f);
            W("attn_k_norm.weight", LM_TYPE_F32, hd, 0, 1.0f);
        }
#undef W
    }
}

static void finish(struct lm_gguf_writer *w, struct lm_buf *out) {
    lm_gguf_writer_finish(w, out);
    lm_gguf_writer_free(w);
}

/* The model of s as it is. */
static void plain(const struct spec *s, struct lm_buf *out) {
    struct lm_gguf_writer w;
    model(&w, s);
    finish(&w, out);
}

/* ---- good files ---------------------------------------------------------- */

static void good_llama_bpe(struct lm_buf *out) { plain(&LLAMA, out); }

static void good_qwen2_spm(struct lm_buf *out) {
    struct spec s = LLAMA;
    s.arch = "qwen2", s.spm = true, s.wtype = LM_TYPE_F16, s.n_layer = 2;
    plain(&s, out);
}

static void good_qwen3_q8(struct lm_buf *out) {
    struct spec s = LLAMA;
    s.arch = "qwen3", s.wtype = LM_TYPE_Q8_0, s.etype = LM_TYPE_Q4_0, s.n_embd = 32, s.n_ff = 32, s.n_head = 2;
    plain(&s, out);
}

/* ---- the GGUF structure -------------------------------------------------- */

void gguf_header(struct lm_buf *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    b->len = 0;
    lm_buf_append(b, "GGUF", 4);
    lm_gguf_put_u32(b, version);
    lm_gguf_put_u64(b, n_tensors);
    lm_gguf_put_u64(b, n_kv);
}

void gguf_put_info(struct lm_buf *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t off) {
    lm_gguf_put_str(b, name, strlen(name));
    lm_gguf_put_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) lm_gguf_put_u64(b, ne[d]);
    lm_gguf_put_u32(b, type);
    lm_gguf_put_u64(b, off);
}

void gguf_pad_and_data(struct lm_buf *b, size_t n_data) {
    while (b->len % 32) lm_buf_putc(b, 0);
    for (size_t i = 0; i < n_data; i++) lm_buf_putc(b, 0);
}

void gguf_write_hand_values(struct lm_gguf_writer *w, const char *prefix) {
    static const struct { const char *key; enum lm_gguf_type t; uint64_t bits; int size; } scalars[] = {
        {"u8", LM_GGUF_U8, 200, 1},      {"i8", LM_GGUF_I8, 0x80, 1},           {"u16", LM_GGUF_U16, 65535, 2},
        {"i16", LM_GGUF_I16, 0x8000, 2}, {"i64", LM_GGUF_I64, (uint64_t)-5, 8}, {"f64", LM_GGUF_F64, 0x400921fb54442d18ull, 8},
    };
    char key[128];
    struct lm_buf raw = {0};
    for (size_t i = 0; i < sizeof scalars / sizeof scalars[0]; i++) {
        raw.len = 0;
        lm_gguf_put_u32(&raw, scalars[i].t);
        lm_buf_append(&raw, &scalars[i].bits, (size_t)scalars[i].size);
        snprintf(key, sizeof key, "%s%s", prefix, scalars[i].key);
        lm_gguf_write_raw(w, key, raw.data, raw.len);
    }
    raw.len = 0;
    lm_gguf_put_u32(&raw, LM_GGUF_ARRAY);
    lm_gguf_put_u32(&raw, LM_GGUF_ARRAY);
    lm_gguf_put_u64(&raw, 2);
    lm_gguf_put_u32(&raw, LM_GGUF_U32);
    lm_gguf_put_u64(&raw, 2);
    lm_gguf_put_u32(&raw, 1);
    lm_gguf_put_u32(&raw, 2);
    lm_gguf_put_u32(&raw, LM_GGUF_STRING);
    lm_gguf_put_u64(&raw, 1);
    lm_gguf_put_str(&raw, "x", 1);
    snprintf(key, sizeof key, "%sarr.nested", prefix);
    lm_gguf_write_raw(w, key, raw.data, raw.len);
    lm_buf_free(&raw);
}

/* Replaces the offset of the named tensor in a finished file. */
static void patch_offset(struct lm_buf *b, const char *name, uint64_t off) {
    struct lm_buf key = {0};
    lm_gguf_put_str(&key, name, strlen(name));
    char *at = memmem(b->data, b->len, key.data, key.len);
    LM_ASSERT(at);
    at += key.len;
    uint32_t n_dims;
    memcpy(&n_dims, at, 4);
    memcpy(at + 4 + 8 * n_dims + 4, &off, 8);
    lm_buf_free(&key);
}

static void bad_magic(struct lm_buf *out) {
    good_llama_bpe(out);
    memcpy(out->data, "GGML", 4);
}

static void bad_version_1(struct lm_buf *out) {
    good_llama_bpe(out);
    uint32_t v = 1;
    memcpy(out->data + 4, &v, 4);
}

static void bad_truncated_header(struct lm_buf *out) {
    gguf_header(out, 3, 0, 0);
    out->len = 12;
}

static void bad_truncated_model(struct lm_buf *out) {
    good_llama_bpe(out);
    out->len -= 100;
}

static void bad_key_past_end(struct lm_buf *out) {
    gguf_header(out, 3, 0, 1);
    lm_gguf_put_u64(out, 1000);
    lm_buf_append(out, "general.architecture", 20);
}

static void bad_string_past_end(struct lm_buf *out) {
    gguf_header(out, 3, 0, 1);
    lm_gguf_put_str(out, "general.name", 12);
    lm_gguf_put_u32(out, LM_GGUF_STRING);
    lm_gguf_put_u64(out, UINT64_MAX);
    lm_buf_append(out, "tiny", 4);
}

static void bad_array_past_end(struct lm_buf *out) {
    gguf_header(out, 3, 0, 1);
    lm_gguf_put_str(out, "tokenizer.ggml.scores", 21);
    lm_gguf_put_u32(out, LM_GGUF_ARRAY);
    lm_gguf_put_u32(out, LM_GGUF_F32);
    lm_gguf_put_u64(out, 1000000);
    lm_gguf_put_u64(out, 0);
}

static void bad_array_count_overflow(struct lm_buf *out) {
    gguf_header(out, 3, 0, 1);
    lm_gguf_put_str(out, "tokenizer.ggml.token_type", 25);
    lm_gguf_put_u32(out, LM_GGUF_ARRAY);
    lm_gguf_put_u32(out, LM_GGUF_I32);
    lm_gguf_put_u64(out, 1ull << 62); /* times 4 wraps to 0 */
    lm_gguf_put_u64(out, 0);
}

static void bad_string_array_past_end(struct lm_buf *out) {
    gguf_header(out, 3, 0, 1);
    lm_gguf_put_str(out, "tokenizer.ggml.tokens", 21);
    lm_gguf_put_u32(out, LM_GGUF_ARRAY);
    lm_gguf_put_u32(out, LM_GGUF_STRING);
    lm_gguf_put_u64(out, 1000000); /* each needs at least 8 bytes */
    lm_gguf_put_str(out, "a", 1);
}

static void bad_huge_kv_count(struct lm_buf *out) { gguf_header(out, 3, 0, 1ull << 60); }
static void bad_huge_tensor_count(struct lm_buf *out) { gguf_header(out, 3, UINT64_MAX, 0); }

static void bad_nested_arrays(struct lm_buf *out) {
    gguf_header(out, 3, 0, 1);
    lm_gguf_put_str(out, "k", 1);
    lm_gguf_put_u32(out, LM_GGUF_ARRAY);
    for (int i = 0; i < 6; i++) {
        lm_gguf_put_u32(out, LM_GGUF_ARRAY);
        lm_gguf_put_u64(out, 1);
    }
    for (int i = 0; i < 64; i++) lm_buf_putc(out, 0);
}

static void bad_value_type(struct lm_buf *out) {
    gguf_header(out, 3, 0, 1);
    lm_gguf_put_str(out, "k", 1);
    lm_gguf_put_u32(out, 13);
    lm_gguf_put_u32(out, 0);
}

static void bad_bool(struct lm_buf *out) {
    gguf_header(out, 3, 0, 1);
    lm_gguf_put_str(out, "tokenizer.ggml.add_bos_token", 28);
    lm_gguf_put_u32(out, LM_GGUF_BOOL);
    lm_buf_putc(out, 2);
}

static void bad_duplicate_key(struct lm_buf *out) {
    struct lm_gguf_writer w;
    model(&w, &LLAMA);
    lm_gguf_write_u32(&w, "llama.block_count", 1);
    finish(&w, out);
}

static void bad_duplicate_tensor(struct lm_buf *out) {
    struct lm_gguf_writer w;
    model(&w, &LLAMA);
    weights(&w, &LLAMA, "output_norm.weight", LM_TYPE_F32, 8, 0, 1.0f);
    finish(&w, out);
}

static void bad_dims_overflow(struct lm_buf *out) {
    uint64_t ne[4] = {1ull << 32, 1ull << 32, 1ull << 32, 1};
    gguf_header(out, 3, 1, 0);
    gguf_put_info(out, "token_embd.weight", 4, ne, LM_TYPE_F32, 0);
    gguf_pad_and_data(out, 64);
}

static void bad_dim_zero(struct lm_buf *out) {
    uint64_t ne[2] = {8, 0};
    gguf_header(out, 3, 1, 0);
    gguf_put_info(out, "token_embd.weight", 2, ne, LM_TYPE_F32, 0);
    gguf_pad_and_data(out, 64);
}

static void bad_n_dims(struct lm_buf *out) {
    uint64_t ne[5] = {8, 1, 1, 1, 1};
    gguf_header(out, 3, 1, 0);
    gguf_put_info(out, "output_norm.weight", 5, ne, LM_TYPE_F32, 0);
    gguf_pad_and_data(out, 64);
}

static void bad_tensor_type(struct lm_buf *out) {
    uint64_t ne[1] = {8};
    gguf_header(out, 3, 1, 0);
    gguf_put_info(out, "output_norm.weight", 1, ne, 1000, 0);
    gguf_pad_and_data(out, 64);
}

static void bad_block_size(struct lm_buf *out) {
    uint64_t ne[2] = {8, 8}; /* 8 is not a multiple of 32 */
    gguf_header(out, 3, 1, 0);
    gguf_put_info(out, "blk.0.attn_q.weight", 2, ne, LM_TYPE_Q8_0, 0);
    gguf_pad_and_data(out, 64);
}

static void bad_offset_past_end(struct lm_buf *out) {
    good_llama_bpe(out);
    patch_offset(out, "blk.0.ffn_down.weight", 1u << 20);
}

static void bad_offset_misaligned(struct lm_buf *out) {
    good_llama_bpe(out);
    patch_offset(out, "output_norm.weight", 4);
}

static void bad_offset_wraps(struct lm_buf *out) {
    good_llama_bpe(out);
    patch_offset(out, "output_norm.weight", UINT64_MAX - 31); /* offset + size wraps around */
}

static void bad_tensors_overlap(struct lm_buf *out) {
    good_llama_bpe(out);
    patch_offset(out, "output_norm.weight", 0); /* inside token_embd.weight */
}

static void bad_data_missing(struct lm_buf *out) {
    uint64_t ne[1] = {8};
    gguf_header(out, 3, 1, 0);
    gguf_put_info(out, "output_norm.weight", 1, ne, LM_TYPE_F32, 0);
}

static void with_alignment_str(struct lm_buf *out) {
    struct lm_gguf_writer w;
    model(&w, &LLAMA);
    lm_gguf_write_str(&w, "general.alignment", "32");
    finish(&w, out);
}

static void with_alignment_u64(struct lm_buf *out) {
    struct lm_gguf_writer w;
    model(&w, &LLAMA);
    lm_gguf_write_u64(&w, "general.alignment", 32);
    finish(&w, out);
}

static void with_alignment(struct lm_buf *out, uint32_t a) {
    struct lm_gguf_writer w;
    model(&w, &LLAMA);
    lm_gguf_write_u32(&w, "general.alignment", a);
    finish(&w, out);
}
static void bad_alignment_zero(struct lm_buf *out) { with_alignment(out, 0); }
static void bad_alignment_48(struct lm_buf *out) { with_alignment(out, 48); }
static void bad_alignment_huge(struct lm_buf *out) { with_alignment(out, 1u << 30); }

/* general.alignment 1 is valid GGUF, but a data section at an odd offset
 * leaves the weights where kernels cannot read them: a name of the right
 * length puts it there. */
static void bad_tensor_misaligned(struct lm_buf *out) {
    static const char *const names[] = {"a", "ab", "abc", "abcd"};
    for (int i = 0; i < 4; i++) {
        struct spec s = LLAMA;
        s.alignment = 1, s.name = names[i];
        plain(&s, out);
        struct lm_gguf g;
        struct lm_err err;
        bool odd = lm_gguf_parse(&g, out->data, out->len, &err) == 0 && g.data_offset % 4 != 0;
        lm_gguf_close(&g);
        if (odd) return;
    }
    LM_ASSERT(!"no name misaligns the data");
}

/* ---- the vocabulary ------------------------------------------------------ */

/* The model of s with key omitted and written again by fn. */
#define REPLACED(fname, base, key, ...)             \
    static void fname(struct lm_buf *out) {        \
        struct spec s = base;                      \
        s.omit[0] = key;                           \
        struct lm_gguf_writer w;                   \
        model(&w, &s);                             \
        __VA_ARGS__;                               \
        finish(&w, out);                           \
    }

static const struct spec SPM = {.arch = "llama", .spm = true, .wtype = LM_TYPE_F32, .etype = LM_TYPE_F16,
                                .n_embd = 8, .n_ff = 16, .n_head = 2, .n_head_kv = 1, .n_layer = 1};
static const uint8_t u8s[N_SPM];
static const float f32s[N_SPM];
static const int32_t i32s[N_SPM + 1];

REPLACED(bad_scores_u8, SPM, "tokenizer.ggml.scores", lm_gguf_write_arr(&w, "tokenizer.ggml.scores", LM_GGUF_U8, u8s, N_SPM))
REPLACED(bad_scores_short, SPM, "tokenizer.ggml.scores",
         lm_gguf_write_arr(&w, "tokenizer.ggml.scores", LM_GGUF_F32, f32s, N_SPM - 1))
REPLACED(bad_types_f32, SPM, "tokenizer.ggml.token_type",
         lm_gguf_write_arr(&w, "tokenizer.ggml.token_type", LM_GGUF_F32, f32s, N_SPM))
REPLACED(bad_types_long, LLAMA, "tokenizer.ggml.token_type",
         lm_gguf_write_arr(&w, "tokenizer.ggml.token_type", LM_GGUF_I32, i32s, N_BPE + 1))
REPLACED(bad_tokens_not_strings, LLAMA, "tokenizer.ggml.tokens",
         lm_gguf_write_arr(&w, "tokenizer.ggml.tokens", LM_GGUF_I32, i32s, N_BPE))
REPLACED(bad_vocab_empty, LLAMA, "tokenizer.ggml.tokens", lm_gguf_write_arr_str(&w, "tokenizer.ggml.tokens", NULL, 0))
REPLACED(bad_bos_outside, LLAMA, "tokenizer.ggml.bos_token_id", lm_gguf_write_u32(&w, "tokenizer.ggml.bos_token_id", N_BPE))
REPLACED(bad_eos_negative, SPM, "tokenizer.ggml.eos_token_id", lm_gguf_write_i32(&w, "tokenizer.ggml.eos_token_id", -1))
REPLACED(bad_unk_outside, SPM, NULL, lm_gguf_write_u32(&w, "tokenizer.ggml.unknown_token_id", 100000))
REPLACED(bad_tokenizer_model, LLAMA, "tokenizer.ggml.model", lm_gguf_write_str(&w, "tokenizer.ggml.model", "bert"))
REPLACED(bad_merge_unknown, LLAMA, "tokenizer.ggml.merges",
         lm_gguf_write_arr_str(&w, "tokenizer.ggml.merges", (const char *[]){"h e", "x zz"}, 2))
REPLACED(bad_merge_result, LLAMA, "tokenizer.ggml.merges",
         lm_gguf_write_arr_str(&w, "tokenizer.ggml.merges", (const char *[]){"h e", "e h"}, 2))
REPLACED(bad_merge_no_space, LLAMA, "tokenizer.ggml.merges",
         lm_gguf_write_arr_str(&w, "tokenizer.ggml.merges", (const char *[]){"he"}, 1))

/* The SentencePiece vocabulary with token 3 (<0x00>) spelled text. */
static void spm_byte_token(struct lm_buf *out, const char *text) {
    struct spec s = SPM;
    s.omit[0] = "tokenizer.ggml.tokens";
    struct lm_gguf_writer w;
    model(&w, &s);
    struct vocab v;
    spm_vocab(&v);
    v.text[3] = text;
    lm_gguf_write_arr_str(&w, "tokenizer.ggml.tokens", v.text, N_SPM);
    finish(&w, out);
}
static void bad_byte_token_minus(struct lm_buf *out) { spm_byte_token(out, "<0x-1>"); }
static void bad_byte_token_zz(struct lm_buf *out) { spm_byte_token(out, "<0xZZ>"); }

static void bad_duplicate_token(struct lm_buf *out) { spm_byte_token(out, "<0x01>"); }

/* ---- hyperparameters and shapes ------------------------------------------ */

static void with_spec(struct lm_buf *out, struct spec s) { plain(&s, out); }

static void bad_heads_divide(struct lm_buf *out) {
    struct spec s = LLAMA;
    s.n_head = 3, s.n_head_kv = 1;
    with_spec(out, s);
}

static void bad_kv_heads_divide(struct lm_buf *out) {
    struct spec s = LLAMA;
    s.n_embd = 16, s.n_head = 4, s.n_head_kv = 3;
    with_spec(out, s);
}

static void bad_embedding_rows(struct lm_buf *out) {
    struct spec s = LLAMA;
    s.extra_rows = 1;
    with_spec(out, s);
}

static void bad_missing_layer(struct lm_buf *out) {
    struct spec s = LLAMA;
    s.n_layer = 2, s.n_layer_tensors = 1;
    with_spec(out, s);
}

REPLACED(bad_shape, LLAMA, "blk.0.attn_k.weight",
         weights(&w, &LLAMA, "blk.0.attn_k.weight", LM_TYPE_F32, 4, 8, 0.0f)) /* transposed: [kv_dim, n_embd] */
REPLACED(bad_norm_format, LLAMA, "blk.0.ffn_norm.weight",
         weights(&w, &LLAMA, "blk.0.ffn_norm.weight", LM_TYPE_F16, 8, 0, 1.0f))
REPLACED(bad_missing_hparam, LLAMA, "llama.embedding_length", (void)0)
REPLACED(bad_hparam_type, LLAMA, "llama.block_count", lm_gguf_write_str(&w, "llama.block_count", "1"))
REPLACED(bad_hparam_zero, LLAMA, "llama.context_length", lm_gguf_write_u32(&w, "llama.context_length", 0))
REPLACED(bad_arch, LLAMA, "general.architecture", lm_gguf_write_str(&w, "general.architecture", "mamba"))
REPLACED(bad_eps_nan, LLAMA, "llama.attention.layer_norm_rms_epsilon",
         lm_gguf_write_f32(&w, "llama.attention.layer_norm_rms_epsilon", __builtin_nanf("")))
REPLACED(bad_rope_scaling, LLAMA, NULL, lm_gguf_write_str(&w, "llama.rope.scaling.type", "dynamic"))
REPLACED(bad_head_dim_odd, LLAMA, NULL, lm_gguf_write_u32(&w, "llama.attention.key_length", 3))
/* 2^16 heads of 2^16 dimensions: their product must not overflow before the
 * tensors' shapes are checked. */
REPLACED(bad_heads_too_large, LLAMA, "llama.attention.head_count",
         lm_gguf_write_u32(&w, "llama.attention.head_count", 1u << 16);
         lm_gguf_write_u32(&w, "llama.attention.key_length", 1u << 16))
REPLACED(bad_rope_freqs, LLAMA, NULL, weights(&w, &LLAMA, "rope_freqs.weight", LM_TYPE_F32, 2, 0, -1.0f))
REPLACED(bad_experts, LLAMA, NULL, lm_gguf_write_u32(&w, "llama.expert_count", 8))
REPLACED(bad_rope_factors_long, LLAMA, NULL, weights(&w, &LLAMA, "rope_factors_long.weight", LM_TYPE_F32, 2, 0, -1.0f))

/* A 62-layer gemma3 (27B) scales attention by 1/sqrt(n_embd / n_head), in
 * integers: fewer dimensions than heads would make it infinite. */
static void bad_gemma3_27b_scale(struct lm_buf *out) {
    struct spec s = LLAMA;
    s.arch = "gemma3", s.n_head = 16, s.head_dim = 2, s.n_layer = 62;
    s.n_layer_tensors = 7; /* as many tensors as layers, so the layer count passes */
    with_spec(out, s);
}

/* ---- memory the file asks for (issue 10) ---------------------------------- */

/* Each of these is consistent, tensor by tensor, but asks for far more
 * memory than its bytes justify: an embedding of one value makes every
 * other dimension cost 2 bytes per row of weights and 4 per token of a
 * batch or per position of the KV cache. */
static const struct spec NARROW = {.arch = "llama", .wtype = LM_TYPE_F16, .etype = LM_TYPE_F16, .n_embd = 1, .n_ff = 2,
                                   .n_head = 1, .n_head_kv = 1, .head_dim = 2, .n_layer = 1, .n_ctx = 4096};

static void bad_ffn_scratch(struct lm_buf *out) {
    struct spec s = NARROW;
    s.n_ff = 20000; /* 80 KiB per row of ffn_gate, ffn_up, ffn_down x batch 512 */
    with_spec(out, s);
}

static void bad_kv_cache(struct lm_buf *out) {
    struct spec s = NARROW;
    s.head_dim = 4096; /* 16 KiB per position, 32 KiB of weights */
    with_spec(out, s);
}

/* The per-layer table would be made before the layers' tensors are looked up. */
static void bad_block_count(struct lm_buf *out) {
    struct spec s = LLAMA;
    s.n_layer = 4096, s.n_layer_tensors = 1;
    with_spec(out, s);
}

/* 8 bytes of file per merge, which the parser keeps as one pointer and the
 * merge table as 16 bytes or so: bounded, then refused. */
static void bad_merges_empty(struct lm_buf *out) {
    static const char *empty[4096];
    for (size_t i = 0; i < 4096; i++) empty[i] = "";
    struct spec s = LLAMA;
    s.omit[0] = "tokenizer.ggml.merges";
    struct lm_gguf_writer w;
    model(&w, &s);
    lm_gguf_write_arr_str(&w, "tokenizer.ggml.merges", empty, 4096);
    finish(&w, out);
}

const struct hostile_file hostile_files[] = {
    {"good-llama-bpe", NULL, good_llama_bpe},
    {"good-qwen2-spm", NULL, good_qwen2_spm},
    {"good-qwen3-q8_0", NULL, good_qwen3_q8},

    {"bad-magic", "not a GGUF file (bad magic)", bad_magic},
    {"bad-version-1", "GGUF version 1 is not supported", bad_version_1},
    {"bad-truncated-header", "tensor count at offset 8 runs past the end", bad_truncated_header},
    {"bad-truncated-model", "runs past the end of the file", bad_truncated_model},
    {"bad-key-length-past-end", "metadata key at offset 24: length 1000 runs past the end", bad_key_past_end},
    {"bad-string-length-past-end", "length 18446744073709551615 runs past the end", bad_string_past_end},
    {"bad-array-count-past-end", "array of 1000000 f32", bad_array_past_end},
    {"bad-array-count-overflow", "array of 4611686018427387904 i32", bad_array_count_overflow},
    {"bad-string-array-count-past-end", "array of 1000000 string", bad_string_array_past_end},
    {"bad-huge-kv-count", "metadata count 1152921504606846976 is more than the file can hold", bad_huge_kv_count},
    {"bad-huge-tensor-count", "tensor count 18446744073709551615 is more than the file can hold", bad_huge_tensor_count},
    {"bad-nested-arrays", "arrays nested deeper than 4", bad_nested_arrays},
    {"bad-value-type", "metadata 'k': unknown value type 13", bad_value_type},
    {"bad-bool", "bool value at offset", bad_bool},
    {"bad-duplicate-key", "metadata key 'llama.block_count' appears twice", bad_duplicate_key},
    {"bad-duplicate-tensor", "tensor name 'output_norm.weight' appears twice", bad_duplicate_tensor},
    {"bad-dims-overflow", "size of shape [4294967296, 4294967296, 4294967296, 1] overflows", bad_dims_overflow},
    {"bad-dim-zero", "dimension 1 is 0", bad_dim_zero},
    {"bad-n-dims", "has 5 dimensions", bad_n_dims},
    {"bad-tensor-type", "has unknown type 1000", bad_tensor_type},
    {"bad-block-size", "row length 8 is not a multiple of the q8_0 block size 32", bad_block_size},
    {"bad-offset-past-end", "tensor 'blk.0.ffn_down.weight': data (offset 1048576, 512 bytes) runs past the end",
     bad_offset_past_end},
    {"bad-offset-misaligned", "tensor 'output_norm.weight': offset 4 is not a multiple of the alignment 32",
     bad_offset_misaligned},
    {"bad-offset-wraps", "tensor 'output_norm.weight': data (offset 18446744073709551584, 32 bytes) runs past the end",
     bad_offset_wraps},
    {"bad-tensors-overlap", "overlap in the file", bad_tensors_overlap},
    {"bad-data-missing", "data section is missing", bad_data_missing},
    {"bad-alignment-string", "general.alignment: expected u32, found string", with_alignment_str},
    {"bad-alignment-u64", "general.alignment: expected u32, found u64", with_alignment_u64},
    {"bad-alignment-zero", "general.alignment: 0 is not a power of two", bad_alignment_zero},
    {"bad-alignment-48", "general.alignment: 48 is not a power of two", bad_alignment_48},
    {"bad-tensor-misaligned", "tensor 'token_embd.weight' is not aligned to 4 bytes in the file (general.alignment is 1)",
     bad_tensor_misaligned},
    {"bad-alignment-huge", "general.alignment: 1073741824 is not a power of two between 1 and 65536", bad_alignment_huge},

    {"bad-scores-u8", "tokenizer.ggml.scores: expected an array of f32, found an array of u8", bad_scores_u8},
    {"bad-scores-short", "tokenizer.ggml.scores has 273 entries but there are 274 tokens", bad_scores_short},
    {"bad-token-type-f32", "tokenizer.ggml.token_type: expected an array of i32, found an array of f32", bad_types_f32},
    {"bad-token-type-long", "tokenizer.ggml.token_type has 270 entries but there are 269 tokens", bad_types_long},
    {"bad-tokens-not-strings", "'tokenizer.ggml.tokens': expected an array of string, found an array of i32",
     bad_tokens_not_strings},
    {"bad-vocab-empty", "the vocabulary (tokenizer.ggml.tokens) is empty", bad_vocab_empty},
    {"bad-bos-outside", "tokenizer.ggml.bos_token_id = 269 is outside the vocabulary", bad_bos_outside},
    {"bad-eos-negative", "tokenizer.ggml.eos_token_id = -1 is outside the vocabulary", bad_eos_negative},
    {"bad-unk-outside", "tokenizer.ggml.unknown_token_id = 100000 is outside the vocabulary", bad_unk_outside},
    {"bad-tokenizer-model", "unsupported tokenizer model 'bert'", bad_tokenizer_model},
    {"bad-byte-token-minus", "byte token 3 '<0x-1>' is not of the form <0xNN>", bad_byte_token_minus},
    {"bad-byte-token-zz", "byte token 3 '<0xZZ>' is not of the form <0xNN>", bad_byte_token_zz},
    {"bad-duplicate-token", "tokens 3 and 4 are both '<0x01>'", bad_duplicate_token},
    {"bad-merge-unknown-token", "merge 1 'x zz' names a token that is not in the vocabulary", bad_merge_unknown},
    {"bad-merge-unknown-result", "merge 1 'e h' makes a token that is not in the vocabulary", bad_merge_result},
    {"bad-merge-no-space", "merge 0 'he' is not two tokens separated by a space", bad_merge_no_space},

    {"bad-heads-divide", "embedding length 8 is not divisible by 3 heads", bad_heads_divide},
    {"bad-kv-heads-divide", "4 attention heads cannot be shared by 3 KV heads", bad_kv_heads_divide},
    {"bad-embedding-rows", "the vocabulary has 269 tokens but token_embd.weight has 270 rows", bad_embedding_rows},
    {"bad-missing-layer", "tensor 'blk.1.attn_norm.weight' is missing", bad_missing_layer},
    {"bad-shape", "tensor 'blk.0.attn_k.weight' has shape [4, 8, 1, 1], expected [8, 4]", bad_shape},
    {"bad-norm-format", "tensor 'blk.0.ffn_norm.weight' has format f16, which lm does not support here (expected f32)",
     bad_norm_format},
    {"bad-missing-hparam", "metadata 'llama.embedding_length' is missing", bad_missing_hparam},
    {"bad-hparam-type", "metadata 'llama.block_count': expected an integer, found string", bad_hparam_type},
    {"bad-hparam-zero", "metadata 'llama.context_length' is 0 (expected 1..16777216)", bad_hparam_zero},
    {"bad-arch", "architecture 'mamba' is not supported", bad_arch},
    {"bad-eps-nan", "metadata 'llama.attention.layer_norm_rms_epsilon' is nan", bad_eps_nan},
    {"bad-rope-scaling", "rope scaling 'dynamic' is not supported", bad_rope_scaling},
    {"bad-head-dim-odd", "head dimension 3 is odd", bad_head_dim_odd},
    {"bad-heads-too-large", "65536 heads of dimension 65536 are more than 1048576 values", bad_heads_too_large},
    {"bad-rope-freqs", "rope_freqs.weight[0] is", bad_rope_freqs},
    {"bad-gemma3-27b-scale", "embedding length 8 is less than 16 heads", bad_gemma3_27b_scale},
    {"bad-experts", "llama with mixture-of-experts layers (expert_count 8) is not supported", bad_experts},
    {"bad-rope-factors-long", "rope_factors_long.weight[0] is -", bad_rope_factors_long},

    {"bad-ffn-scratch", "n_ff 20000 x batch 512 needs 78.2 MiB of scratch", bad_ffn_scratch},
    {"bad-kv-cache", "a KV cache of 1 layers x 4096 positions x 4096 values needs 64.0 MiB", bad_kv_cache},
    {"bad-block-count", "block_count 4096 is more than the file's 11 tensors", bad_block_count},
    {"bad-merges-empty-strings", "merge 0 '' is not two tokens separated by a space", bad_merges_empty},
};

const size_t n_hostile_files = sizeof hostile_files / sizeof hostile_files[0];
