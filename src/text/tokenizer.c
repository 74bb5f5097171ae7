/* The tokenizer: vocabulary loading and checks, special-token partition,
 * byte-level BPE and SentencePiece BPE, decoding (see tokenizer.h). */
#include "lm/tokenizer.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SPACE_MARK "\xE2\x96\x81" /* U+2581, SentencePiece's visible space */

void lm_tokens_push(struct lm_tokens *v, int32_t id) {
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 64;
        v->ids = lm_xrealloc(v->ids, v->cap * sizeof *v->ids);
    }
    v->ids[v->n++] = id;
}

void lm_tokens_free(struct lm_tokens *v) {
    free(v->ids);
    *v = (struct lm_tokens){0};
}

/* ---- hash tables -------------------------------------------------------- */

struct lm_tok_merge {
    uint64_t key;  /* left << 32 | right */
    int32_t rank;  /* -1: empty slot */
    int32_t id;    /* the merged token */
};

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
    for (; n >= 8; s += 8, n -= 8) {
        uint64_t x;
        memcpy(&x, s, 8);
        h = (h ^ x) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 31;
    }
    uint64_t x = 0;
    memcpy(&x, s, n);
    h = (h ^ x) * 0x94D049BB133111EBull;
    return h ^ (h >> 29);
}

static uint64_t hash_pair(uint64_t key) {
    key *= 0x9E3779B97F4A7C15ull;
    return key ^ (key >> 32);
}

/* A power of two at least twice n, so probes stay short. */
static uint64_t table_size(uint64_t n) {
    uint64_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    return cap;
}

static int32_t find_token(const struct lm_tokenizer *t, const char *s, size_t n) {
    for (uint64_t i = hash_bytes(s, n) & t->index_mask;; i = (i + 1) & t->index_mask) {
        int32_t v = t->index[i];
        if (v == 0) return -1;
        const struct lm_token *tk = &t->tokens[v - 1];
        if (tk->len == n && memcmp(tk->text, s, n) == 0) return v - 1;
    }
}

/* Tokens that plain text may turn into: not markup, not <0xNN> spellings. */
static bool from_text(const struct lm_token *tk) {
    return tk->type != LM_TOKEN_CONTROL && tk->type != LM_TOKEN_UNKNOWN && tk->type != LM_TOKEN_BYTE &&
           tk->type != LM_TOKEN_UNUSED;
}

static int32_t find_text_token(const struct lm_tokenizer *t, const char *s, size_t n) {
    int32_t id = find_token(t, s, n);
    return id >= 0 && from_text(&t->tokens[id]) ? id : -1;
}

static const struct lm_tok_merge *find_merge(const struct lm_tokenizer *t, int32_t left, int32_t right) {
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    for (uint64_t i = hash_pair(key) & t->merges_mask;; i = (i + 1) & t->merges_mask) {
        const struct lm_tok_merge *m = &t->merges[i];
        if (m->rank < 0) return NULL;
        if (m->key == key) return m;
    }
}

/* ---- loading ------------------------------------------------------------ */

struct pretok_name {
    const char *name;
    enum lm_pretok pre;
    bool llama3; /* llama.cpp's llama3 group: ignore_merges, BOS by default */
};

/* tokenizer.ggml.pre values and the pre-tokenizer each means (llama.cpp's
 * llama_vocab::impl::load, restricted to the expressions we implement). */
static const struct pretok_name pretok_names[] = {
    {"default", LM_PRETOK_DEFAULT, false},
    {"gpt-2", LM_PRETOK_GPT2, false},           {"mpt", LM_PRETOK_GPT2, false},
    {"phi-2", LM_PRETOK_GPT2, false},           {"olmo", LM_PRETOK_GPT2, false},
    {"jais", LM_PRETOK_GPT2, false},            {"exaone4", LM_PRETOK_GPT2, false},
    {"trillion", LM_PRETOK_GPT2, false},        {"granite-docling", LM_PRETOK_GPT2, false},
    {"llama3", LM_PRETOK_LLAMA3, true},         {"llama-v3", LM_PRETOK_LLAMA3, true},
    {"llama-bpe", LM_PRETOK_LLAMA3, true},      {"falcon3", LM_PRETOK_LLAMA3, true},
    {"falcon-h1", LM_PRETOK_LLAMA3, true},      {"pixtral", LM_PRETOK_LLAMA3, true},
    {"midm-2.0", LM_PRETOK_LLAMA3, true},       {"lfm2", LM_PRETOK_LLAMA3, true},
    {"dbrx", LM_PRETOK_LLAMA3, false},          {"smaug-bpe", LM_PRETOK_LLAMA3, false},
    {"qwen2", LM_PRETOK_QWEN2, false},          {"deepseek-r1-qwen", LM_PRETOK_QWEN2, false},
    {"stablelm2", LM_PRETOK_QWEN2, false},      {"megrez", LM_PRETOK_QWEN2, false},
    {"qwen35", LM_PRETOK_QWEN35, false},
    {"starcoder", LM_PRETOK_STARCODER, false},  {"refact", LM_PRETOK_STARCODER, false},
    {"smollm", LM_PRETOK_STARCODER, false},     {"command-r", LM_PRETOK_STARCODER, false},
    {"codeshell", LM_PRETOK_STARCODER, false},  {"exaone", LM_PRETOK_STARCODER, false},
    {"minerva-7b", LM_PRETOK_STARCODER, false},
    {"deepseek-llm", LM_PRETOK_DEEPSEEK_LLM, false}, {"deepseek-coder", LM_PRETOK_DEEPSEEK_CODER, false},
    {"falcon", LM_PRETOK_FALCON, false},
};

/* Tokens llama.cpp recognises by their text (llama_vocab::impl::load): they
 * become control tokens, so plain text never turns into them, whatever type
 * the file gives them. DeepSeek's use fullwidth bars and U+2581. */
#define DS(s) "<\xEF\xBD\x9C" s "\xEF\xBD\x9C>"

/* A role (end of turn, fill-in-the-middle parts) and the texts that play it
 * when the file names no token for it; the first present one is taken
 * (llama.cpp takes the first in its hash map's order). The first role is eot. */
struct text_role {
    const char *key, *old_key; /* old_key: a deprecated name, which wins when present */
    const char *texts[11];
    bool eog; /* ends generation */
};

static const struct text_role text_roles[] = {
    {"tokenizer.ggml.eot_token_id", NULL,
     {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>", "_<EOT>",
      "[EOT]", DS("end" SPACE_MARK "of" SPACE_MARK "sentence"), "<end_of_utterance>"},
     true},
    {"tokenizer.ggml.eom_token_id", NULL, {"<|eom_id|>"}, true},
    {"tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.prefix_token_id",
     {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", DS("fim" SPACE_MARK "begin"), "<PRE>", SPACE_MARK "<PRE>",
      "<|code_prefix|>", "<|prefix|>"},
     false},
    {"tokenizer.ggml.fim_suf_token_id", "tokenizer.ggml.suffix_token_id",
     {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", DS("fim" SPACE_MARK "hole"), "<SUF>", SPACE_MARK "<SUF>",
      "<|code_suffix|>", "<|suffix|>"},
     false},
    {"tokenizer.ggml.fim_mid_token_id", "tokenizer.ggml.middle_token_id",
     {"<|fim_middle|>", "<fim-middle>", "<fim_middle>", DS("fim" SPACE_MARK "end"), "<MID>", SPACE_MARK "<MID>",
      "<|code_middle|>", "<|middle|>"},
     false},
    {"tokenizer.ggml.fim_pad_token_id", NULL, {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"}, true},
    {"tokenizer.ggml.fim_rep_token_id", NULL, {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"}, true},
    {"tokenizer.ggml.fim_sep_token_id", NULL, {"<|file_sep|>"}, true},
};

/* Texts that end generation wherever they are (llama.cpp's EOG list). */
static const char *const eog_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>", "<end_of_turn>",
    "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>",
    "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>", DS("end" SPACE_MARK "of" SPACE_MARK "sentence"), "[e~[",
};

/* gpt-oss markup llama.cpp always cuts out of text (user-defined). */
static const char *const always_cut_texts[] = {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"};

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* The byte of a "<0xNN>" text, or -1. */
static int byte_token_value(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int hi = hex_digit(s[3]), lo = hex_digit(s[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

/* An optional array of n numbers: F32 (or I32, as llama.cpp allows) for
 * scores, I32 for token types. */
static int get_numbers(const struct lm_gguf *g, const char *key, bool allow_f32, uint64_t n,
                       const struct lm_gguf_value **out, struct lm_err *err) {
    const struct lm_gguf_value *v = lm_gguf_get(g, key);
    *out = NULL;
    if (!v) return 0;
    bool ok = v->type == LM_GGUF_ARRAY && (v->arr.type == LM_GGUF_I32 || (allow_f32 && v->arr.type == LM_GGUF_F32));
    if (!ok) {
        if (v->type != LM_GGUF_ARRAY) return lm_errf(err, "%s: expected an array, found %s", key, lm_gguf_type_name(v->type));
        return lm_errf(err, "%s: expected an array of %s, found an array of %s", key, allow_f32 ? "f32" : "i32",
                       lm_gguf_type_name(v->arr.type));
    }
    if (v->arr.n != n)
        return lm_errf(err, "%s has %llu entries but there are %llu tokens", key, (unsigned long long)v->arr.n,
                       (unsigned long long)n);
    *out = v;
    return 0;
}

/* A token id under key: *id is left alone when the key is absent; an id
 * outside the vocabulary is an error when strict, else ignored (llama.cpp
 * warns and keeps the default). */
static int get_id(struct lm_tokenizer *t, const struct lm_gguf *g, const char *key, bool strict, int32_t *id,
                  struct lm_err *err) {
    int64_t v;
    int r = lm_gguf_get_int(g, key, &v, err);
    if (r < 0) return -1;
    if (r == 0) return 0;
    if (v < 0 || v >= t->n_vocab) {
        if (strict) return lm_errf(err, "%s = %lld is outside the vocabulary (%d tokens)", key, (long long)v, t->n_vocab);
        return 0;
    }
    *id = (int32_t)v;
    return 0;
}

static int load_tokens(struct lm_tokenizer *t, const struct lm_gguf *g, struct lm_err *err) {
    const struct lm_gguf_value *toks;
    int r = lm_gguf_get_arr(g, "tokenizer.ggml.tokens", LM_GGUF_STRING, &toks, err);
    if (r < 0) return -1;
    if (r == 0) return lm_errf(err, "no vocabulary (tokenizer.ggml.tokens)");
    if (toks->arr.n == 0) return lm_errf(err, "the vocabulary (tokenizer.ggml.tokens) is empty");
    if (toks->arr.n > LM_MAX_VOCAB)
        return lm_errf(err, "the vocabulary has too many tokens (%llu; at most %d)", (unsigned long long)toks->arr.n,
                       LM_MAX_VOCAB);
    uint64_t n = toks->arr.n;
    const struct lm_gguf_value *scores, *types;
    if (get_numbers(g, "tokenizer.ggml.scores", true, n, &scores, err) < 0 ||
        get_numbers(g, "tokenizer.ggml.token_type", false, n, &types, err) < 0)
        return -1;

    t->n_vocab = (int32_t)n;
    t->tokens = lm_xcalloc(n, sizeof *t->tokens);
    t->index_mask = table_size(n) - 1;
    t->index = lm_xcalloc(t->index_mask + 1, sizeof *t->index);
    for (uint64_t i = 0; i < n; i++) {
        struct lm_token *tk = &t->tokens[i];
        struct lm_gguf_str s = lm_gguf_arr_str(toks, i);
        if (s.len >= UINT32_MAX) return lm_errf(err, "token %llu is too long", (unsigned long long)i);
        tk->text = s.data;
        tk->len = (uint32_t)s.len;
        tk->type = types ? (int32_t)lm_gguf_arr_int(types, i) : LM_TOKEN_NORMAL;
        tk->score = scores ? (float)(scores->arr.type == LM_GGUF_F32 ? lm_gguf_arr_float(scores, i)
                                                                     : (double)lm_gguf_arr_int(scores, i))
                           : 0.0f;
        if (tk->type == LM_TOKEN_BYTE && byte_token_value(tk->text, tk->len) < 0)
            return lm_errf(err, "byte token %llu '%.*s' is not of the form <0xNN>", (unsigned long long)i,
                           (int)(tk->len < 32 ? tk->len : 32), tk->text);
        uint64_t slot = hash_bytes(tk->text, tk->len) & t->index_mask;
        for (; t->index[slot]; slot = (slot + 1) & t->index_mask) {
            const struct lm_token *o = &t->tokens[t->index[slot] - 1];
            if (o->len == tk->len && memcmp(o->text, tk->text, tk->len) == 0)
                return lm_errf(err, "tokens %d and %llu are both '%.*s'", t->index[slot] - 1, (unsigned long long)i,
                               (int)(tk->len < 32 ? tk->len : 32), tk->text);
        }
        t->index[slot] = (int32_t)i + 1;
    }
    return 0;
}

static int load_merges(struct lm_tokenizer *t, const struct lm_gguf *g, struct lm_err *err) {
    const struct lm_gguf_value *m;
    int r = lm_gguf_get_arr(g, "tokenizer.ggml.merges", LM_GGUF_STRING, &m, err);
    if (r < 0) return -1;
    if (r == 0) return lm_errf(err, "no merges (tokenizer.ggml.merges) for a gpt2 vocabulary");
    if (m->arr.n > LM_MAX_VOCAB)
        return lm_errf(err, "the vocabulary has too many merges (%llu; at most %d)", (unsigned long long)m->arr.n,
                       LM_MAX_VOCAB);
    t->merges_mask = table_size(m->arr.n) - 1;
    t->merges = lm_xmalloc((t->merges_mask + 1) * sizeof *t->merges);
    for (uint64_t i = 0; i <= t->merges_mask; i++) t->merges[i].rank = -1;
    struct lm_buf joined = {0};
    for (uint64_t i = 0; i < m->arr.n; i++) {
        struct lm_gguf_str s = lm_gguf_arr_str(m, i);
        /* "left right"; the split is at the first space after the first
         * byte, as in llama.cpp, since a left part may itself be a space. */
        const char *sp = s.len > 1 ? memchr(s.data + 1, ' ', s.len - 1) : NULL;
        int shown = (int)(s.len < 64 ? s.len : 64);
        if (!sp) {
            lm_buf_free(&joined);
            return lm_errf(err, "merge %llu '%.*s' is not two tokens separated by a space", (unsigned long long)i, shown, s.data);
        }
        size_t nl = (size_t)(sp - s.data), nr = s.len - nl - 1;
        int32_t left = find_token(t, s.data, nl), right = find_token(t, sp + 1, nr);
        if (left < 0 || right < 0) {
            lm_buf_free(&joined);
            return lm_errf(err, "merge %llu '%.*s' names a token that is not in the vocabulary", (unsigned long long)i, shown, s.data);
        }
        joined.len = 0;
        lm_buf_append(&joined, s.data, nl);
        lm_buf_append(&joined, sp + 1, nr);
        int32_t id = find_token(t, joined.data, joined.len);
        if (id < 0) {
            lm_buf_free(&joined);
            return lm_errf(err, "merge %llu '%.*s' makes a token that is not in the vocabulary", (unsigned long long)i, shown, s.data);
        }
        /* Merges never make markup; the first (lowest) rank of a pair wins. */
        if (!from_text(&t->tokens[id])) continue;
        uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
        uint64_t slot = hash_pair(key) & t->merges_mask;
        while (t->merges[slot].rank >= 0 && t->merges[slot].key != key) slot = (slot + 1) & t->merges_mask;
        if (t->merges[slot].rank >= 0) continue;
        t->merges[slot] = (struct lm_tok_merge){key, (int32_t)i, id};
    }
    lm_buf_free(&joined);
    return 0;
}

static int load_config(struct lm_tokenizer *t, const struct lm_gguf *g, struct lm_err *err) {
    struct lm_gguf_str model, pre = {0, NULL};
    int r = lm_gguf_get_str(g, "tokenizer.ggml.model", &model, err);
    if (r < 0) return -1;
    if (r == 0) return lm_errf(err, "no tokenizer.ggml.model");
    bool llama3 = false;
    if (lm_gguf_str_eq(model, "gpt2")) {
        t->type = LM_VOCAB_BPE;
        t->byte_level = true;
        if (lm_gguf_get_str(g, "tokenizer.ggml.pre", &pre, err) < 0) return -1;
        t->pre = LM_PRETOK_DEFAULT; /* when absent, as llama.cpp */
        if (pre.data) {
            size_t i = 0, n = sizeof pretok_names / sizeof pretok_names[0];
            while (i < n && !lm_gguf_str_eq(pre, pretok_names[i].name)) i++;
            if (i < n) {
                t->pre = pretok_names[i].pre;
                llama3 = pretok_names[i].llama3;
            } else {
                t->pre = LM_PRETOK_GPT2; /* llama.cpp refuses the file */
                snprintf(t->warning, sizeof t->warning, "unknown pre-tokenizer '%.*s', using gpt-2's",
                         (int)(pre.len < 64 ? pre.len : 64), pre.data);
            }
        }
        t->add_bos = llama3;
        t->ignore_merges = llama3;
    } else if (lm_gguf_str_eq(model, "gemma4")) {
        t->type = LM_VOCAB_BPE; /* its pre-tokenizer whatever the file says, as llama.cpp */
        t->pre = LM_PRETOK_GEMMA4;
    } else if (lm_gguf_str_eq(model, "llama")) {
        t->type = LM_VOCAB_SPM;
        t->add_bos = true;
        t->add_space_prefix = true;
    } else {
        return lm_errf(err, "unsupported tokenizer model '%.*s' (lm knows gpt2, llama and gemma4)",
                       (int)(model.len < 64 ? model.len : 64), model.data);
    }
    if (lm_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &t->add_bos, err) < 0 ||
        lm_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &t->add_eos, err) < 0 ||
        lm_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix, err) < 0)
        return -1;
    if (t->pre == LM_PRETOK_GEMMA4) t->add_bos = true; /* llama.cpp overrides the file here */
    return 0;
}

/* Whether the token whose text is s exists and ends generation. */
static bool eog_text(const struct lm_tokenizer *t, const char *s) {
    int32_t id = find_token(t, s, strlen(s));
    return id >= 0 && t->tokens[id].eog;
}

static int load_ids(struct lm_tokenizer *t, const struct lm_gguf *g, struct lm_err *err) {
    t->bos = t->eos = t->eot = t->unk = t->pad = -1;
    if (t->type == LM_VOCAB_SPM) { /* SentencePiece's defaults, when they exist */
        t->unk = 0;
        t->bos = t->n_vocab > 1 ? 1 : -1;
        t->eos = t->n_vocab > 2 ? 2 : -1;
    }
    if (get_id(t, g, "tokenizer.ggml.bos_token_id", true, &t->bos, err) < 0 ||
        get_id(t, g, "tokenizer.ggml.eos_token_id", true, &t->eos, err) < 0 ||
        get_id(t, g, "tokenizer.ggml.eot_token_id", true, &t->eot, err) < 0 ||
        get_id(t, g, "tokenizer.ggml.unknown_token_id", true, &t->unk, err) < 0 ||
        get_id(t, g, "tokenizer.ggml.padding_token_id", false, &t->pad, err) < 0)
        return -1;
    if (t->eos >= 0) t->tokens[t->eos].eog = true;

    /* Roles the file leaves out are found by text. */
    for (size_t r = 0; r < sizeof text_roles / sizeof text_roles[0]; r++) {
        const struct text_role *role = &text_roles[r];
        int32_t id = r == 0 ? t->eot : -1;
        if (r > 0 && (get_id(t, g, role->key, false, &id, err) < 0 ||
                      (role->old_key && get_id(t, g, role->old_key, false, &id, err) < 0)))
            return -1;
        if (id < 0) {
            for (size_t k = 0; k < sizeof role->texts / sizeof role->texts[0] && role->texts[k] && id < 0; k++)
                id = find_token(t, role->texts[k], strlen(role->texts[k]));
            if (id >= 0) t->tokens[id].type = LM_TOKEN_CONTROL;
        }
        if (r == 0) t->eot = id;
        if (id >= 0 && role->eog) t->tokens[id].eog = true;
    }
    for (size_t i = 0; i < sizeof eog_texts / sizeof eog_texts[0]; i++) {
        int32_t id = find_token(t, eog_texts[i], strlen(eog_texts[i]));
        if (id < 0) continue;
        t->tokens[id].eog = true;
        t->tokens[id].type = LM_TOKEN_CONTROL;
    }
    for (size_t i = 0; i < sizeof always_cut_texts / sizeof always_cut_texts[0]; i++) {
        int32_t id = find_token(t, always_cut_texts[i], strlen(always_cut_texts[i]));
        if (id >= 0) t->tokens[id].type = LM_TOKEN_USER_DEFINED;
    }
    /* llama.cpp's exceptions: with gpt-oss's <|return|> and <|call|> (or
     * solar-open's <|calls|> and <|flush|>), <|end|> ends a message, not
     * generation, and is cut out of any text; beside gemma4's
     * <|tool_response>, </s> is a plain token. */
    bool has_return = eog_text(t, "<|return|>"), has_call = eog_text(t, "<|call|>") || eog_text(t, "<|calls|>");
    int32_t end = find_token(t, "<|end|>", 7);
    if (end >= 0 && t->tokens[end].eog && has_call && (has_return || eog_text(t, "<|flush|>"))) {
        t->tokens[end].eog = false;
        t->tokens[end].type = LM_TOKEN_USER_DEFINED;
    }
    int32_t s_end = find_token(t, "</s>", 4);
    if (s_end >= 0 && t->tokens[s_end].eog && (eog_text(t, "<|tool_response>") || eog_text(t, "<|plamo:eos|>"))) {
        t->tokens[s_end].eog = false;
        t->tokens[s_end].type = LM_TOKEN_NORMAL;
    }
    return 0;
}

static int by_length_desc(const void *a, const void *b, void *ctx) {
    const struct lm_token *tokens = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (tokens[x].len != tokens[y].len) return tokens[x].len > tokens[y].len ? -1 : 1;
    return x < y ? -1 : x > y;
}

static uint64_t *join_slot(uint64_t *joins, uint64_t mask, uint64_t key) {
    uint64_t slot = hash_pair(key) & mask;
    while (joins[slot] != UINT64_MAX && joins[slot] != key) slot = (slot + 1) & mask;
    return &joins[slot];
}

static uint64_t *new_joins(uint64_t cap) {
    uint64_t *j = lm_xmalloc(cap * sizeof *j);
    memset(j, 0xFF, cap * sizeof *j); /* UINT64_MAX: empty */
    return j;
}

/* SPM: the pairs of characters found side by side in tokens text can make.
 * The set grows with the pairs found (a few thousand in real vocabularies,
 * however long their text); past LM_TOK_MAX_JOINS it is dropped. */
static void build_joins(struct lm_tokenizer *t) {
    uint64_t n = 0;
    t->joins_mask = 1023;
    t->joins = new_joins(t->joins_mask + 1);
    for (int32_t i = 0; i < t->n_vocab; i++) {
        const struct lm_token *tk = &t->tokens[i];
        if (!from_text(tk)) continue;
        uint32_t prev = 0;
        for (uint32_t k = 0; k < tk->len;) {
            uint32_t cp;
            size_t len = lm_utf8_decode(tk->text + k, tk->len - k, &cp);
            uint64_t key = (uint64_t)prev << 32 | cp, *slot;
            if (k > 0 && *(slot = join_slot(t->joins, t->joins_mask, key)) != key) {
                *slot = key;
                if (++n > LM_TOK_MAX_JOINS) {
                    free(t->joins);
                    t->joins = NULL;
                    t->joins_mask = 0;
                    return;
                }
                if (2 * n > t->joins_mask + 1) { /* at most half full, so probes stay short */
                    uint64_t cap = 2 * (t->joins_mask + 1), *grown = new_joins(cap);
                    for (uint64_t s = 0; s <= t->joins_mask; s++)
                        if (t->joins[s] != UINT64_MAX) *join_slot(grown, cap - 1, t->joins[s]) = t->joins[s];
                    free(t->joins);
                    t->joins = grown;
                    t->joins_mask = cap - 1;
                }
            }
            prev = cp;
            k += (uint32_t)len;
        }
    }
}

/* Tokens that partition() may cut out of a text. */
static bool cut_out(const struct lm_token *tk) {
    return tk->len > 0 && (tk->type == LM_TOKEN_CONTROL || tk->type == LM_TOKEN_USER_DEFINED || tk->type == LM_TOKEN_UNKNOWN);
}

static void build_tables(struct lm_tokenizer *t) {
    /* The token of each byte: its GPT-2 character, or <0xNN> (SPM falling
     * back to the byte itself, as llama.cpp does). */
    for (int b = 0; b < 256; b++) {
        char s[8];
        int32_t id;
        if (t->byte_level) {
            id = find_token(t, s, lm_utf8_encode(lm_unicode_byte_to_cp((uint8_t)b), s));
        } else {
            snprintf(s, sizeof s, "<0x%02X>", b);
            id = find_token(t, s, 6);
            if (id < 0 && t->type == LM_VOCAB_SPM) {
                s[0] = (char)b;
                id = find_token(t, s, 1);
            }
        }
        t->byte_id[b] = id;
    }
    size_t n_specials = 0; /* counted first: real vocabularies have few */
    for (int32_t i = 0; i < t->n_vocab; i++) n_specials += cut_out(&t->tokens[i]);
    t->specials = lm_xmalloc(n_specials * sizeof *t->specials);
    t->n_specials = 0;
    for (int32_t i = 0; i < t->n_vocab; i++)
        if (cut_out(&t->tokens[i])) t->specials[t->n_specials++] = i;
    qsort_r(t->specials, (size_t)t->n_specials, sizeof *t->specials, by_length_desc, t->tokens);
    if (t->type == LM_VOCAB_SPM) build_joins(t);
}

/* llama.cpp strips the whitespace after special tokens of models named
 * phi-3 or phi3 (Phi-3's tokenizer config says rstrip), except after <unk>,
 * <s> and <|endoftext|>. */
static int set_rstrip(struct lm_tokenizer *t, const struct lm_gguf *g, struct lm_err *err) {
    struct lm_gguf_str name = {0, NULL};
    if (lm_gguf_get_str(g, "general.name", &name, err) < 0) return -1;
    bool phi3 = false;
    for (size_t i = 0; i + 4 <= name.len && !phi3; i++)
        phi3 = (i + 5 <= name.len && !strncasecmp(name.data + i, "phi-3", 5)) || !strncasecmp(name.data + i, "phi3", 4);
    if (!phi3) return 0;
    for (int32_t k = 0; k < t->n_specials; k++) t->tokens[t->specials[k]].rstrip = true;
    static const char *const strip[] = {"</s>"}, *const keep[] = {"<unk>", "<s>", "<|endoftext|>"};
    int32_t id = find_token(t, strip[0], strlen(strip[0]));
    if (id >= 0) t->tokens[id].rstrip = true;
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
        if ((id = find_token(t, keep[i], strlen(keep[i]))) >= 0) t->tokens[id].rstrip = false;
    return 0;
}

int lm_tokenizer_load(struct lm_tokenizer *t, const struct lm_gguf *g, struct lm_err *err) {
    *t = (struct lm_tokenizer){0};
    if (load_config(t, g, err) < 0 || load_tokens(t, g, err) < 0 || load_ids(t, g, err) < 0 ||
        (t->type == LM_VOCAB_BPE && load_merges(t, g, err) < 0)) {
        lm_tokenizer_free(t);
        return -1;
    }
    build_tables(t);
    if (set_rstrip(t, g, err) < 0) {
        lm_tokenizer_free(t);
        return -1;
    }
    return 0;
}

void lm_tokenizer_free(struct lm_tokenizer *t) {
    free(t->tokens);
    free(t->index);
    free(t->merges);
    free(t->specials);
    free(t->joins);
    *t = (struct lm_tokenizer){0};
}

/* ---- encoding ----------------------------------------------------------- */

/* A symbol of a word being merged: bytes [start, start + len) of the word,
 * linked to its neighbours; len 0 once merged into its left neighbour. */
struct sym {
    int32_t prev, next;
    uint32_t start, len;
    int32_t id; /* -1: not a token (then spelled with byte tokens) */
};

/* A candidate merge of symbols left and right into token id. key orders the
 * heap: priority (BPE rank, or SPM score made descending) then left. len is
 * the pair's length when queued: if it changed, one side merged meanwhile. */
struct pair {
    uint64_t key;
    int32_t left, right, id;
    uint32_t len;
};

/* Words repeat (half the words of English prose are among the 100 most
 * common), so each encode call remembers the tokens of short words, in a
 * table sized to the text: up to 2^16 slots, at most half of them used. */
#define CACHE_MAX_SLOTS (1u << 16)
#define CACHE_MAX_WORD 32

struct cached_word {
    uint32_t text, len; /* the word: cache_text[text .. text + len); len 0: empty slot */
    uint32_t first, n;  /* its ids: cache_ids[first .. first + n) */
};

struct session {
    const struct lm_tokenizer *t;
    struct lm_tokens *out;
    struct sym *sym;
    size_t sym_cap;
    struct pair *heap;
    size_t n_heap, heap_cap;
    struct lm_buf buf;
    struct lm_pretok_buf pb;
    struct cached_word *cache; /* [cache_mask + 1] */
    size_t n_cached, text_len;
    uint64_t cache_mask;
    struct lm_buf cache_text;
    struct lm_tokens cache_ids;
};

static void heap_push(struct session *s, struct pair p) {
    if (s->n_heap == s->heap_cap) {
        s->heap_cap = s->heap_cap ? s->heap_cap * 2 : 64;
        s->heap = lm_xrealloc(s->heap, s->heap_cap * sizeof *s->heap);
    }
    size_t i = s->n_heap++;
    while (i > 0 && s->heap[(i - 1) / 2].key > p.key) {
        s->heap[i] = s->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->heap[i] = p;
}

static struct pair heap_pop(struct session *s) {
    struct pair top = s->heap[0], last = s->heap[--s->n_heap];
    size_t i = 0, n = s->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && s->heap[c + 1].key < s->heap[c].key) c++;
        if (s->heap[c].key >= last.key) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n > 0) s->heap[i] = last;
    return top;
}

static void reserve_syms(struct session *s, size_t n) {
    if (n <= s->sym_cap) return;
    s->sym_cap = n < 64 ? 64 : n;
    s->sym = lm_xrealloc(s->sym, s->sym_cap * sizeof *s->sym);
}

/* Scores sort descending as unsigned keys: flip the float's order bits. */
static uint32_t score_key(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u = u & 0x80000000u ? ~u : u | 0x80000000u; /* ascending order of f */
    return ~u;
}

static void try_pair(struct session *s, const char *word, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const struct sym *l = &s->sym[left], *r = &s->sym[right];
    uint32_t len = l->len + r->len;
    uint32_t prio;
    int32_t id;
    if (s->t->type == LM_VOCAB_BPE) {
        if (l->id < 0 || r->id < 0) return;
        const struct lm_tok_merge *m = find_merge(s->t, l->id, r->id);
        if (!m) return;
        prio = (uint32_t)m->rank;
        id = m->id;
    } else {
        id = find_text_token(s->t, word + l->start, len);
        if (id < 0) return;
        prio = score_key(s->t->tokens[id].score);
    }
    heap_push(s, (struct pair){(uint64_t)prio << 32 | (uint32_t)left, left, right, id, len});
}

/* Merges the n symbols of word (already in s->sym) and emits their tokens;
 * a symbol without one is spelled with byte tokens. A byte the vocabulary
 * cannot spell becomes unk (SPM) or is dropped (BPE). */
static void merge_word(struct session *s, const char *word, size_t n) {
    struct sym *sym = s->sym;
    s->n_heap = 0;
    for (size_t i = 1; i < n; i++) try_pair(s, word, (int32_t)i - 1, (int32_t)i);
    while (s->n_heap) {
        struct pair p = heap_pop(s);
        struct sym *l = &sym[p.left], *r = &sym[p.right];
        if (l->len == 0 || r->len == 0 || l->next != p.right || l->len + r->len != p.len) continue; /* stale */
        l->len += r->len;
        l->id = p.id;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = p.left;
        try_pair(s, word, l->prev, p.left);
        try_pair(s, word, p.left, l->next);
    }
    const struct lm_tokenizer *t = s->t;
    for (int32_t i = 0; i >= 0; i = sym[i].next) {
        if (sym[i].id >= 0) {
            lm_tokens_push(s->out, sym[i].id);
            continue;
        }
        for (uint32_t k = 0; k < sym[i].len; k++) {
            int32_t b = t->byte_id[(uint8_t)word[sym[i].start + k]];
            if (b < 0 && t->type == LM_VOCAB_SPM) b = t->unk; /* BPE drops it, as llama.cpp: unk is often markup there */
            if (b >= 0) lm_tokens_push(s->out, b);
        }
    }
}

static void bpe_word_uncached(struct session *s, const char *w, size_t n) {
    const struct lm_tokenizer *t = s->t;
    if (t->ignore_merges) { /* the whole word, spelled in the byte alphabet */
        s->buf.len = 0;
        lm_buf_reserve(&s->buf, 2 * n);
        for (size_t i = 0; i < n; i++) s->buf.len += lm_utf8_encode(lm_unicode_byte_to_cp((uint8_t)w[i]), s->buf.data + s->buf.len);
        int32_t id = find_text_token(t, s->buf.data, s->buf.len);
        if (id >= 0) {
            lm_tokens_push(s->out, id);
            return;
        }
    }
    reserve_syms(s, n);
    for (size_t i = 0; i < n; i++)
        s->sym[i] = (struct sym){(int32_t)i - 1, i + 1 < n ? (int32_t)i + 1 : -1, (uint32_t)i, 1, t->byte_id[(uint8_t)w[i]]};
    merge_word(s, w, n);
}

typedef void (*word_fn)(struct session *s, const char *w, size_t n);

/* Emits the tokens of word w, from the cache or by calling uncached. */
static void encode_word(struct session *s, const char *w, size_t n, word_fn uncached) {
    if (n > CACHE_MAX_WORD) {
        uncached(s, w, n);
        return;
    }
    if (!s->cache) {
        uint64_t slots = 64;
        while (slots < CACHE_MAX_SLOTS && slots < s->text_len / 4) slots *= 2;
        s->cache = lm_xcalloc(slots, sizeof *s->cache);
        s->cache_mask = slots - 1;
    }
    const uint64_t mask = s->cache_mask;
    uint64_t slot = hash_bytes(w, n) & mask;
    for (; s->cache[slot].len; slot = (slot + 1) & mask) {
        const struct cached_word *c = &s->cache[slot];
        if (c->len == n && memcmp(s->cache_text.data + c->text, w, n) == 0) {
            for (uint32_t i = 0; i < c->n; i++) lm_tokens_push(s->out, s->cache_ids.ids[c->first + i]);
            return;
        }
    }
    size_t first = s->out->n;
    uncached(s, w, n);
    if (n == 0 || s->n_cached >= mask / 2) return; /* full enough: keep probes short */
    s->cache[slot] = (struct cached_word){(uint32_t)s->cache_text.len, (uint32_t)n, (uint32_t)s->cache_ids.n,
                                          (uint32_t)(s->out->n - first)};
    s->n_cached++;
    lm_buf_append(&s->cache_text, w, n);
    for (size_t i = first; i < s->out->n; i++) lm_tokens_push(&s->cache_ids, s->out->ids[i]);
}

static void bpe_word(struct session *s, const char *w, size_t n) {
    if (n == 1) {
        int32_t id = s->t->byte_id[(uint8_t)w[0]];
        if (id >= 0) lm_tokens_push(s->out, id);
        return;
    }
    encode_word(s, w, n, bpe_word_uncached);
}

/* A word of characters (SentencePiece, gemma4): one symbol per character,
 * merged by score (SPM) or rank (BPE). */
static void char_word(struct session *s, const char *w, size_t n) {
    reserve_syms(s, n);
    size_t k = 0;
    for (size_t i = 0; i < n; k++) {
        uint32_t cp;
        size_t len = lm_utf8_decode(w + i, n - i, &cp);
        s->sym[k] = (struct sym){(int32_t)k - 1, (int32_t)k + 1, (uint32_t)i, (uint32_t)len, find_text_token(s->t, w + i, len)};
        i += len;
    }
    s->sym[k - 1].next = -1;
    merge_word(s, w, k);
}

/* gemma4: a run of newlines that is a token stays whole (the pre-tokenizer
 * keeps newlines apart), as llama.cpp does. */
static void gemma4_word(struct session *s, const char *w, size_t n) {
    int32_t id = w[0] == '\n' ? find_text_token(s->t, w, n) : -1;
    if (id >= 0) lm_tokens_push(s->out, id);
    else char_word(s, w, n);
}

/* Copies text into s->buf with each space written U+2581, after one more
 * in front when prefix_space. */
static void escape_spaces(struct session *s, const char *text, size_t len, bool prefix_space) {
    struct lm_buf *b = &s->buf;
    b->len = 0;
    lm_buf_reserve(b, 3 * (len + 1));
    if (prefix_space) lm_buf_append(b, SPACE_MARK, 3);
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') lm_buf_append(b, SPACE_MARK, 3);
        else b->data[b->len++] = text[i];
    }
}

static void bpe_fragment(struct session *s, const char *text, size_t len) {
    if (!s->t->byte_level) {
        escape_spaces(s, text, len, false);
        text = s->buf.data;
        len = s->buf.len;
    }
    lm_pretok_split(s->t->pre, text, len, &s->pb);
    size_t start = 0;
    for (size_t i = 0; i < s->pb.n; i++) {
        if (s->t->byte_level) bpe_word(s, text + start, s->pb.ends[i] - start);
        else encode_word(s, text + start, s->pb.ends[i] - start, gemma4_word);
        start = s->pb.ends[i];
    }
}

static bool spm_joinable(const struct lm_tokenizer *t, uint32_t a, uint32_t b) {
    if (!t->joins) return true;
    uint64_t key = (uint64_t)a << 32 | b;
    for (uint64_t i = hash_pair(key) & t->joins_mask;; i = (i + 1) & t->joins_mask) {
        if (t->joins[i] == key) return true;
        if (t->joins[i] == UINT64_MAX) return false;
    }
}

/* SentencePiece: spaces made visible, then the text is one word, except
 * that it is cut between two characters no token has side by side: no
 * merge can cross such a cut, so the pieces merge alone, each as fast as a
 * short word (and cached), with the same result. */
static void spm_fragment(struct session *s, const char *text, size_t len, bool prefix_space) {
    escape_spaces(s, text, len, prefix_space);
    const struct lm_buf *b = &s->buf;
    size_t start = 0;
    uint32_t prev = 0;
    for (size_t i = 0; i < b->len;) {
        uint32_t cp;
        size_t k = lm_utf8_decode(b->data + i, b->len - i, &cp);
        if (i > start && !spm_joinable(s->t, prev, cp)) {
            encode_word(s, b->data + start, i - start, char_word);
            start = i;
        }
        prev = cp;
        i += k;
    }
    if (b->len > start) encode_word(s, b->data + start, b->len - start, char_word);
}

struct frag {
    size_t start, len;
    int32_t id; /* a special token, or -1 for text */
};

struct frags {
    struct frag *v;
    size_t n, cap;
};

static void frag_push(struct frags *f, size_t start, size_t len, int32_t id) {
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 16;
        f->v = lm_xrealloc(f->v, f->cap * sizeof *f->v);
    }
    f->v[f->n++] = (struct frag){start, len, id};
}

/* Which short byte strings a text holds: its bytes, its pairs of adjacent
 * bytes, and (hashed into 2^20 bits) its 4-byte windows. Most special tokens
 * are not in a given text, and this tells it without searching for each. */
struct ngrams {
    uint8_t bytes[256];
    uint8_t pairs[65536 / 8];
    uint8_t quads[(1u << 20) / 8];
};

static inline uint32_t quad_hash(const char *s) {
    uint32_t x;
    memcpy(&x, s, 4);
    return (x * 0x9E3779B1u) >> 12;
}

#define BIT_SET(a, i) ((a)[(i) >> 3] |= (uint8_t)(1u << ((i) & 7)))
#define BIT_GET(a, i) (((a)[(i) >> 3] >> ((i) & 7)) & 1u)

static void ngrams_scan(struct ngrams *g, const char *text, size_t len) {
    const uint8_t *u = (const uint8_t *)text;
    for (size_t i = 0; i < len; i++) {
        g->bytes[u[i]] = 1;
        if (i + 1 < len) BIT_SET(g->pairs, (unsigned)u[i] << 8 | u[i + 1]);
        if (i + 3 < len) BIT_SET(g->quads, quad_hash(text + i));
    }
}

/* False when s cannot be in the text. */
static bool may_occur(const struct ngrams *g, const char *s, size_t n) {
    const uint8_t *u = (const uint8_t *)s;
    if (n == 1) return g->bytes[u[0]];
    for (size_t i = 0; i + 1 < n; i++)
        if (!BIT_GET(g->pairs, (unsigned)u[i] << 8 | u[i + 1])) return false;
    for (size_t i = 0; i + 3 < n; i++)
        if (!BIT_GET(g->quads, quad_hash(s + i))) return false;
    return true;
}

/* Cuts special tokens out of the text, longest first, each at its leftmost
 * non-overlapping occurrences (llama.cpp's tokenizer_st_partition). */
static void partition(const struct lm_tokenizer *t, const char *text, size_t len, bool parse_special, struct frags *cur) {
    struct frags next = {0};
    frag_push(cur, 0, len, -1);
    struct ngrams *seen = NULL;
    for (int32_t k = 0; k < t->n_specials; k++) {
        int32_t id = t->specials[k];
        const struct lm_token *tk = &t->tokens[id];
        if (!parse_special && tk->type != LM_TOKEN_USER_DEFINED) continue;
        if (!seen) {
            seen = lm_xcalloc(1, sizeof *seen);
            ngrams_scan(seen, text, len);
        }
        if (!may_occur(seen, tk->text, tk->len)) continue;
        next.n = 0;
        for (size_t i = 0; i < cur->n; i++) {
            struct frag f = cur->v[i];
            if (f.id >= 0 || f.len < tk->len) {
                frag_push(&next, f.start, f.len, f.id);
                continue;
            }
            size_t pos = f.start, end = f.start + f.len;
            const char *m;
            while (end - pos >= tk->len && (m = memmem(text + pos, end - pos, tk->text, tk->len))) {
                size_t at = (size_t)(m - text);
                if (at > pos) frag_push(&next, pos, at - pos, -1);
                frag_push(&next, at, tk->len, id);
                pos = at + tk->len;
                if (tk->rstrip)
                    while (pos < end && isspace((unsigned char)text[pos])) pos++;
            }
            if (pos < end) frag_push(&next, pos, end - pos, -1);
        }
        struct frags swap = *cur;
        *cur = next;
        next = swap;
    }
    free(next.v);
    free(seen);
}

int lm_tokenizer_encode(const struct lm_tokenizer *t, const char *text, size_t len, bool add_bos,
                        bool parse_special, struct lm_tokens *out, struct lm_err *err) {
    if (add_bos && t->bos < 0) return lm_errf(err, "the vocabulary has no BOS token");
    if (len >= UINT32_MAX / 4) return lm_errf(err, "text too long to tokenize (%zu bytes)", len);
    if (add_bos) lm_tokens_push(out, t->bos);
    if (len == 0) return 0;

    struct frags frags = {0};
    partition(t, text, len, parse_special, &frags);
    struct session s = {.t = t, .out = out, .text_len = len};
    bool after_special = true; /* SPM puts a space before text that starts the input or follows a special token */
    for (size_t i = 0; i < frags.n; i++) {
        struct frag f = frags.v[i];
        if (f.id >= 0) lm_tokens_push(out, f.id);
        else if (t->type == LM_VOCAB_BPE) bpe_fragment(&s, text + f.start, f.len);
        else spm_fragment(&s, text + f.start, f.len, t->add_space_prefix && after_special);
        after_special = f.id >= 0;
    }
    free(frags.v);
    free(s.cache);
    lm_buf_free(&s.cache_text);
    lm_tokens_free(&s.cache_ids);
    free(s.sym);
    free(s.heap);
    lm_buf_free(&s.buf);
    lm_pretok_free(&s.pb);
    return 0;
}

int32_t lm_tokenizer_find(const struct lm_tokenizer *t, const char *s, size_t len) { return find_token(t, s, len); }

const char *lm_tokenizer_token_text(const struct lm_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_vocab) {
        *len = 0;
        return "";
    }
    *len = t->tokens[id].len;
    return t->tokens[id].text;
}

/* ---- decoding ----------------------------------------------------------- */

void lm_tokenizer_decode_piece(const struct lm_tokenizer *t, int32_t id, struct lm_buf *out) {
    if (id < 0 || id >= t->n_vocab) return; /* e.g. a padded output row of the model */
    const struct lm_token *tk = &t->tokens[id];
    switch (tk->type) {
    case LM_TOKEN_BYTE: lm_buf_putc(out, (char)byte_token_value(tk->text, tk->len)); return;
    case LM_TOKEN_CONTROL:
    case LM_TOKEN_UNKNOWN:
    case LM_TOKEN_USER_DEFINED: lm_buf_append(out, tk->text, tk->len); return;
    default: break;
    }
    lm_buf_reserve(out, tk->len);
    if (!t->byte_level) {
        for (uint32_t i = 0; i < tk->len;) {
            if (tk->len - i >= 3 && memcmp(tk->text + i, SPACE_MARK, 3) == 0) {
                lm_buf_putc(out, ' ');
                i += 3;
            } else {
                lm_buf_putc(out, tk->text[i++]);
            }
        }
        return;
    }
    for (uint32_t i = 0; i < tk->len;) {
        uint32_t cp;
        size_t k = lm_utf8_decode(tk->text + i, tk->len - i, &cp);
        int b = lm_unicode_cp_to_byte(cp);
        if (b >= 0) lm_buf_putc(out, (char)b);
        else lm_buf_append(out, tk->text + i, k); /* not in the alphabet: keep as written */
        i += (uint32_t)k;
    }
}

void lm_tokenizer_decode(const struct lm_tokenizer *t, const int32_t *ids, size_t n, struct lm_buf *out) {
    for (size_t i = 0; i < n; i++) {
        size_t at = out->len;
        lm_tokenizer_decode_piece(t, ids[i], out);
        if (i == 0 && t->type == LM_VOCAB_SPM && t->add_space_prefix && out->len > at && out->data[at] == ' ') {
            memmove(out->data + at, out->data + at + 1, out->len - at); /* NUL included */
            out->len--;
        }
    }
}

bool lm_tokenizer_is_eog(const struct lm_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab && t->tokens[id].eog;
}

bool lm_tokenizer_is_special(const struct lm_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab && (t->tokens[id].type == LM_TOKEN_CONTROL || t->tokens[id].type == LM_TOKEN_UNKNOWN);
}

void lm_detok_init(struct lm_detok *d, const struct lm_tokenizer *t, bool special) {
    *d = (struct lm_detok){.t = t, .special = special};
}

void lm_detok_feed(struct lm_detok *d, int32_t id, struct lm_buf *out) {
    if (!d->special && lm_tokenizer_is_special(d->t, id)) return;
    size_t at = out->len;
    lm_buf_append(out, d->pending, d->n_pending);
    lm_tokenizer_decode_piece(d->t, id, out);
    size_t keep = at + lm_utf8_complete(out->data + at, out->len - at);
    d->n_pending = (uint8_t)(out->len - keep);
    memcpy(d->pending, out->data + keep, d->n_pending);
    out->len = keep;
    out->data[keep] = '\0';
}

void lm_detok_flush(struct lm_detok *d, struct lm_buf *out) {
    lm_buf_append(out, d->pending, d->n_pending);
    d->n_pending = 0;
}
