/* UTF-8, the byte-level alphabet, and the pre-tokenizers (see unicode.h). */
#include "lm/unicode.h"

#include "lm/common.h"

#include <stdlib.h>

/* ---- UTF-8 ------------------------------------------------------------- */

/* Sequence length announced by a lead byte, 0 for bytes that cannot lead. */
static size_t lead_len(uint8_t c) {
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return 2;
    if (c >= 0xE0 && c <= 0xEF) return 3;
    if (c >= 0xF0 && c <= 0xF4) return 4;
    return 0;
}

/* Whether c may follow lead as the second byte of a shortest-form,
 * non-surrogate, in-range sequence (RFC 3629 section 4). */
static int second_ok(uint8_t lead, uint8_t c) {
    switch (lead) {
    case 0xE0: return c >= 0xA0 && c <= 0xBF;
    case 0xED: return c >= 0x80 && c <= 0x9F;
    case 0xF0: return c >= 0x90 && c <= 0xBF;
    case 0xF4: return c >= 0x80 && c <= 0x8F;
    default: return c >= 0x80 && c <= 0xBF;
    }
}

size_t lm_utf8_decode(const char *s, size_t n, uint32_t *cp) {
    const uint8_t *u = (const uint8_t *)s;
    uint8_t c = u[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len = lead_len(c);
    if (len == 0 || n < len || !second_ok(c, u[1])) goto bad;
    uint32_t v = c & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((u[i] & 0xC0) != 0x80) goto bad;
        v = (v << 6) | (u[i] & 0x3F);
    }
    *cp = v;
    return len;
bad:
    *cp = LM_UNICODE_BAD + c;
    return 1;
}

size_t lm_utf8_encode(uint32_t cp, char out[4]) {
    LM_ASSERT(cp < 0x110000);
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t lm_utf8_complete(const char *s, size_t n) {
    const uint8_t *u = (const uint8_t *)s;
    /* Find the last lead byte within the final three bytes. */
    for (size_t k = 1; k <= 3 && k <= n; k++) {
        uint8_t c = u[n - k];
        if ((c & 0xC0) == 0x80) continue;
        size_t len = lead_len(c);
        if (len <= k) return n;        /* complete, ASCII, or not a lead at all */
        if (k >= 2 && !second_ok(c, u[n - k + 1])) return n; /* already invalid */
        return n - k;                  /* a valid sequence still waiting for bytes */
    }
    return n;
}

/* ---- byte-level alphabet (GPT-2's bytes_to_unicode) -------------------- */

/* The 68 bytes that are not printable Latin-1 (0x00-0x20, 0x7F-0xA0, 0xAD)
 * take U+0100.. in byte order. */
uint32_t lm_unicode_byte_to_cp(uint8_t b) {
    if (b <= 0x20) return 0x100 + b;
    if (b >= 0x7F && b <= 0xA0) return 0x100 + 33 + (b - 0x7F);
    if (b == 0xAD) return 0x100 + 67;
    return b;
}

int lm_unicode_cp_to_byte(uint32_t cp) {
    if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xFF && cp != 0xAD)) return (int)cp;
    if (cp >= 0x100 && cp <= 0x100 + 32) return (int)(cp - 0x100);
    if (cp >= 0x100 + 33 && cp <= 0x100 + 66) return (int)(cp - 0x100 - 33 + 0x7F);
    if (cp == 0x100 + 67) return 0xAD;
    return -1;
}

/* ---- pre-tokenizers ----------------------------------------------------- */

/* A stage splits the code points [a, b) of one piece and appends the ends
 * of its sub-pieces, the last being b. Positions at or past b are "out of
 * range" (flags 0), as in llama.cpp: no expression looks across a piece. */
struct text {
    const uint32_t *cp;
    const uint8_t *fl;
};

struct out {
    uint32_t *ends;
    size_t n;
    uint32_t prev;
};

static inline void emit(struct out *o, uint32_t end) {
    if (end > o->prev) {
        o->ends[o->n++] = end;
        o->prev = end;
    }
}

static inline unsigned fl_at(const struct text *t, uint32_t i, uint32_t b) { return i < b ? t->fl[i] : 0; }
static inline uint32_t cp_at(const struct text *t, uint32_t i, uint32_t b) { return i < b ? t->cp[i] : UINT32_MAX; }
static inline uint32_t ascii_lower(uint32_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* 's 't 're 've 'm 'll 'd at i: the match length, or 0. */
static uint32_t contraction(const struct text *t, uint32_t i, uint32_t b, int any_case) {
    if (t->cp[i] != '\'' || i + 1 >= b) return 0;
    uint32_t c1 = cp_at(t, i + 1, b), c2 = cp_at(t, i + 2, b);
    if (any_case) {
        c1 = ascii_lower(c1);
        c2 = ascii_lower(c2);
    }
    if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return 2;
    if (i + 2 < b && ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l'))) return 3;
    return 0;
}

/* Whitespace run at i; sets *nl_end to one past its last \r or \n (0: none). */
static uint32_t space_run(const struct text *t, uint32_t i, uint32_t b, uint32_t *nl_end) {
    uint32_t n = 0;
    *nl_end = 0;
    while (fl_at(t, i + n, b) & LM_UC_SPACE) {
        uint32_t c = t->cp[i + n];
        if (c == '\r' || c == '\n') *nl_end = i + n + 1;
        n++;
    }
    return n;
}

#define LNS (LM_UC_LETTER | LM_UC_NUMBER | LM_UC_SPACE)

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static void stage_gpt2(const struct text *t, uint32_t a, uint32_t b, struct out *o) {
    uint32_t pos = a;
    while (pos < b) {
        uint32_t c = t->cp[pos];
        uint32_t n = contraction(t, pos, b, 0);
        if (n) {
            pos += n;
            emit(o, pos);
            continue;
        }
        unsigned f2 = c == ' ' ? fl_at(t, pos + 1, b) : t->fl[pos];
        unsigned cls = f2 & LM_UC_LETTER ? LM_UC_LETTER : f2 & LM_UC_NUMBER ? LM_UC_NUMBER : 0;
        if (cls) {
            pos += c == ' ';
            while (fl_at(t, pos, b) & cls) pos++;
            emit(o, pos);
            continue;
        }
        if (f2 && !(f2 & LNS)) {
            pos += c == ' ';
            for (unsigned f = fl_at(t, pos, b); f && !(f & LNS); f = fl_at(t, pos, b)) pos++;
            emit(o, pos);
            continue;
        }
        uint32_t nl_end;
        uint32_t ns = space_run(t, pos, b, &nl_end);
        if (ns > 1 && pos + ns < b) pos += ns - 1; /* \s+(?!\S): leave one for the next word */
        else pos += ns ? ns : 1;
        emit(o, pos);
    }
    emit(o, b);
}

/* llama3 (digits_max 3, letters \p{L}):
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *   ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * qwen2 is the same with \p{N} (digits_max 1); qwen35 also takes marks for
 * letters ([\p{L}\p{M}]+, and [^\s\p{L}\p{M}\p{N}]+ for the rest). */
static void stage_llama3_like(const struct text *t, uint32_t a, uint32_t b, struct out *o, uint32_t digits_max,
                              unsigned letters) {
    const unsigned words = letters | LM_UC_NUMBER | LM_UC_SPACE;
    uint32_t pos = a;
    while (pos < b) {
        uint32_t c = t->cp[pos];
        unsigned f = t->fl[pos];
        uint32_t n = contraction(t, pos, b, 1);
        if (n) {
            pos += n;
            emit(o, pos);
            continue;
        }
        if (!(c == '\r' || c == '\n' || (f & LM_UC_NUMBER)) && ((f & letters) || (fl_at(t, pos + 1, b) & letters))) {
            pos++;
            while (fl_at(t, pos, b) & letters) pos++;
            emit(o, pos);
            continue;
        }
        if (f & LM_UC_NUMBER) {
            uint32_t start = pos;
            while (fl_at(t, pos, b) & LM_UC_NUMBER) {
                pos++;
                if (pos - start == digits_max) {
                    emit(o, pos);
                    start = pos;
                }
            }
            emit(o, pos);
            continue;
        }
        unsigned f2 = c == ' ' ? fl_at(t, pos + 1, b) : f;
        if (!(f2 & words)) { /* f is never 0 in range, as llama.cpp's test of it */
            pos += c == ' ';
            for (unsigned g = fl_at(t, pos, b); g && !(g & words); g = fl_at(t, pos, b)) pos++;
            for (uint32_t d = cp_at(t, pos, b); d == '\r' || d == '\n'; d = cp_at(t, pos, b)) pos++;
            emit(o, pos);
            continue;
        }
        uint32_t nl_end;
        uint32_t ns = space_run(t, pos, b, &nl_end);
        if (nl_end) pos = nl_end;                        /* \s*[\r\n]+ */
        else if (ns > 1 && pos + ns < b) pos += ns - 1;  /* \s+(?!\S) */
        else pos += ns ? ns : 1;                         /* \s+ */
        emit(o, pos);
    }
    emit(o, b);
}

static void stage_llama3(const struct text *t, uint32_t a, uint32_t b, struct out *o) {
    stage_llama3_like(t, a, b, o, 3, LM_UC_LETTER);
}

static void stage_qwen2(const struct text *t, uint32_t a, uint32_t b, struct out *o) {
    stage_llama3_like(t, a, b, o, 1, LM_UC_LETTER);
}

static void stage_qwen35(const struct text *t, uint32_t a, uint32_t b, struct out *o) {
    stage_llama3_like(t, a, b, o, 1, LM_UC_LETTER | LM_UC_MARK);
}

/* Character classes of the generic expressions below. */
typedef int (*class_fn)(const struct text *t, uint32_t i);

static int is_newline(const struct text *t, uint32_t i) { return t->cp[i] == '\r' || t->cp[i] == '\n'; }
static int is_number(const struct text *t, uint32_t i) { return t->fl[i] & LM_UC_NUMBER; }
static int is_letter(const struct text *t, uint32_t i) { return t->fl[i] & LM_UC_LETTER; }
static int is_punct(const struct text *t, uint32_t i) { return t->fl[i] & LM_UC_PUNCT; }

/* [\p{P}\$\+<=>\^~\|] */
static int is_default_punct(const struct text *t, uint32_t i) {
    uint32_t c = t->cp[i];
    return (t->fl[i] & LM_UC_PUNCT) || c == '$' || c == '+' || c == '<' || c == '=' || c == '>' || c == '^' ||
           c == '~' || c == '|';
}

/* [\p{P}\$\+<=>\^~\|`] */
static int is_falcon_punct(const struct text *t, uint32_t i) { return is_default_punct(t, i) || t->cp[i] == '`'; }

/* llama.cpp matches expressions without \p classes against the text with
 * every non-ASCII whitespace replaced by \v, so no such space is inside an
 * explicit range (U+2029 and U+3000 are within the ones below). */
static int is_nonascii_space(const struct text *t, uint32_t i) { return t->cp[i] >= 0x80 && (t->fl[i] & LM_UC_SPACE); }

/* [一-龥ࠀ-一가-퟿] */
static int is_cjk(const struct text *t, uint32_t i) {
    uint32_t c = t->cp[i];
    return ((c >= 0x0800 && c <= 0x9FA5) || (c >= 0xAC00 && c <= 0xD7FF)) && !is_nonascii_space(t, i);
}

struct range {
    uint32_t lo, hi;
};

static int in_ranges(uint32_t c, const struct range *r, size_t n) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < r[mid].lo) hi = mid;
        else if (c > r[mid].hi) lo = mid + 1;
        else return 1;
    }
    return 0;
}

/* deepseek-llm's letter class, [A-Za-zµÀ-ÖØ-ö...𞤀-𞥃] in its tokenizer.json as
 * quoted in llama.cpp (cased letters, mostly), as code point ranges. */
static const struct range deepseek_letters[] = {
    {0x41, 0x5A}, {0x61, 0x7A}, {0xB5, 0xB5}, {0xC0, 0xD6}, {0xD8, 0xF6}, {0xF8, 0x1BA},
    {0x1BC, 0x1BF}, {0x1C4, 0x293}, {0x295, 0x2AF}, {0x370, 0x373}, {0x376, 0x377}, {0x37B, 0x37D},
    {0x37F, 0x37F}, {0x386, 0x386}, {0x388, 0x38A}, {0x38C, 0x38C}, {0x38E, 0x3A1}, {0x3A3, 0x3F5},
    {0x3F7, 0x481}, {0x48A, 0x52F}, {0x531, 0x556}, {0x10A0, 0x10C5}, {0x13A0, 0x13F5}, {0x13F8, 0x13FD},
    {0x1C90, 0x1CBA}, {0x1CBD, 0x1CBF}, {0x1D00, 0x1D2B}, {0x1D6B, 0x1D77}, {0x1D79, 0x1D9A},
    {0x1E00, 0x1F15}, {0x1F18, 0x1F1D}, {0x1F20, 0x1F45}, {0x1F48, 0x1F4D}, {0x1F50, 0x1F57},
    {0x1F59, 0x1F59}, {0x1F5B, 0x1F5B}, {0x1F5D, 0x1F5D}, {0x1F5F, 0x1F7D}, {0x1F80, 0x1FB4},
    {0x1FB6, 0x1FBC}, {0x1FBE, 0x1FBE}, {0x1FC2, 0x1FC4}, {0x1FC6, 0x1FCC}, {0x1FD0, 0x1FD3},
    {0x1FD6, 0x1FDB}, {0x1FE0, 0x1FEC}, {0x1FF2, 0x1FF4}, {0x1FF6, 0x1FFC}, {0x2102, 0x2102},
    {0x2107, 0x2107}, {0x210A, 0x2113}, {0x2115, 0x2115}, {0x2119, 0x211D}, {0x2124, 0x2124},
    {0x2126, 0x2126}, {0x2128, 0x2128}, {0x212A, 0x212D}, {0x212F, 0x2134}, {0x2139, 0x2139},
    {0x213C, 0x213F}, {0x2145, 0x2149}, {0x214E, 0x214E}, {0x2183, 0x2184}, {0x2C00, 0x2C7B},
    {0x2C7E, 0x2CE4}, {0x2CEB, 0x2CEE}, {0x2CF2, 0x2CF3}, {0xA640, 0xA66D}, {0xA680, 0xA69B},
    {0xA722, 0xA76F}, {0xA771, 0xA787}, {0xA78B, 0xA78E}, {0xAB70, 0xABBF}, {0xFB00, 0xFB06},
    {0xFB13, 0xFB17}, {0xFF21, 0xFF3A}, {0xFF41, 0xFF5A}, {0x10400, 0x1044F}, {0x104B0, 0x104D3},
    {0x104D8, 0x104FB}, {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x118A0, 0x118DF}, {0x1E900, 0x1E943},
};

static int is_deepseek_letter(const struct text *t, uint32_t i) {
    return !is_nonascii_space(t, i) && in_ranges(t->cp[i], deepseek_letters, sizeof deepseek_letters / sizeof deepseek_letters[0]);
}

/* deepseek-llm's punctuation class: [!-/:-~！-／：-～‘-‟　-。]; its first
 * member U+3000 is whitespace, so never in it (see above). */
static int is_deepseek_punct(const struct text *t, uint32_t i) {
    uint32_t c = t->cp[i];
    return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x7E) || (c >= 0xFF01 && c <= 0xFF0F) ||
           (c >= 0xFF1A && c <= 0xFF5E) || (c >= 0x2018 && c <= 0x201F) || (c >= 0x3001 && c <= 0x3002);
}

/* X: every matching code point alone. */
static void split_single(const struct text *t, uint32_t a, uint32_t b, struct out *o, class_fn x) {
    for (uint32_t i = a; i < b; i++) {
        if (x(t, i)) {
            emit(o, i);
            emit(o, i + 1);
        }
    }
    emit(o, b);
}

/* X+ */
static void split_runs(const struct text *t, uint32_t a, uint32_t b, struct out *o, class_fn x) {
    uint32_t i = a;
    while (i < b) {
        if (!x(t, i)) {
            i++;
            continue;
        }
        emit(o, i);
        while (i < b && x(t, i)) i++;
        emit(o, i);
    }
    emit(o, b);
}

/* \s?X+ (a leading whitespace joins the run when one follows it) */
static void split_space_runs(const struct text *t, uint32_t a, uint32_t b, struct out *o, class_fn x) {
    uint32_t i = a;
    while (i < b) {
        uint32_t start = i;
        if ((t->fl[i] & LM_UC_SPACE) && i + 1 < b && x(t, i + 1)) i++;
        if (!x(t, i)) {
            i = start + 1;
            continue;
        }
        emit(o, start);
        while (i < b && x(t, i)) i++;
        emit(o, i);
    }
    emit(o, b);
}

static void stage_each_number(const struct text *t, uint32_t a, uint32_t b, struct out *o) {
    split_single(t, a, b, o, is_number);
}
static void stage_each_newline(const struct text *t, uint32_t a, uint32_t b, struct out *o) {
    split_single(t, a, b, o, is_newline);
}
static void stage_numbers(const struct text *t, uint32_t a, uint32_t b, struct out *o) {
    split_runs(t, a, b, o, is_number);
}
static void stage_cjk(const struct text *t, uint32_t a, uint32_t b, struct out *o) {
    split_runs(t, a, b, o, is_cjk);
}
static void stage_default_punct(const struct text *t, uint32_t a, uint32_t b, struct out *o) {
    split_runs(t, a, b, o, is_default_punct);
}
static void stage_falcon_punct(const struct text *t, uint32_t a, uint32_t b, struct out *o) {
    split_runs(t, a, b, o, is_falcon_punct);
}
static void stage_space_letters(const struct text *t, uint32_t a, uint32_t b, struct out *o) {
    split_space_runs(t, a, b, o, is_letter);
}
static void stage_space_punct(const struct text *t, uint32_t a, uint32_t b, struct out *o) {
    split_space_runs(t, a, b, o, is_punct);
}
static void stage_deepseek_letters(const struct text *t, uint32_t a, uint32_t b, struct out *o) {
    split_space_runs(t, a, b, o, is_deepseek_letter);
}
static void stage_deepseek_punct(const struct text *t, uint32_t a, uint32_t b, struct out *o) {
    split_space_runs(t, a, b, o, is_deepseek_punct);
}

/* [^\n]+|[\n]+ */
static void stage_newline_runs(const struct text *t, uint32_t a, uint32_t b, struct out *o) {
    for (uint32_t i = a + 1; i < b; i++)
        if ((t->cp[i] == '\n') != (t->cp[i - 1] == '\n')) emit(o, i);
    emit(o, b);
}

/* \s+$ */
static void stage_trailing_space(const struct text *t, uint32_t a, uint32_t b, struct out *o) {
    uint32_t s = b;
    while (s > a && (t->fl[s - 1] & LM_UC_SPACE)) s--;
    emit(o, s);
    emit(o, b);
}

/* [0-9][0-9][0-9] */
static void stage_three_digits(const struct text *t, uint32_t a, uint32_t b, struct out *o) {
    uint32_t i = a;
    while (i + 3 <= b) {
        const uint32_t *c = t->cp + i;
        if (c[0] - '0' < 10 && c[1] - '0' < 10 && c[2] - '0' < 10) {
            emit(o, i);
            emit(o, i + 3);
            i += 3;
        } else {
            i++;
        }
    }
    emit(o, b);
}

typedef void (*stage_fn)(const struct text *t, uint32_t a, uint32_t b, struct out *o);

#define MAX_STAGES 6
static const stage_fn pretok_stages[LM_PRETOK_COUNT][MAX_STAGES] = {
    [LM_PRETOK_GPT2] = {stage_gpt2},
    [LM_PRETOK_LLAMA3] = {stage_llama3},
    [LM_PRETOK_QWEN2] = {stage_qwen2},
    [LM_PRETOK_QWEN35] = {stage_qwen35},
    [LM_PRETOK_STARCODER] = {stage_each_number, stage_gpt2},
    [LM_PRETOK_DEEPSEEK_LLM] = {stage_each_newline, stage_deepseek_letters, stage_deepseek_punct,
                                stage_trailing_space, stage_cjk, stage_numbers},
    [LM_PRETOK_DEEPSEEK_CODER] = {stage_each_newline, stage_space_letters, stage_space_punct, stage_cjk,
                                  stage_each_number},
    [LM_PRETOK_FALCON] = {stage_falcon_punct, stage_gpt2, stage_three_digits},
    [LM_PRETOK_DEFAULT] = {stage_default_punct, stage_gpt2, stage_numbers, stage_three_digits},
    [LM_PRETOK_GEMMA4] = {stage_newline_runs},
};

static void reserve(struct lm_pretok_buf *b, size_t n) {
    if (n <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < n) cap *= 2;
    b->cps = lm_xrealloc(b->cps, cap * sizeof *b->cps);
    b->offs = lm_xrealloc(b->offs, (cap + 1) * sizeof *b->offs);
    b->ends = lm_xrealloc(b->ends, cap * sizeof *b->ends);
    b->tmp = lm_xrealloc(b->tmp, cap * sizeof *b->tmp);
    b->flags = lm_xrealloc(b->flags, cap);
    b->cap = cap;
}

void lm_pretok_split(enum lm_pretok p, const char *text, size_t len, struct lm_pretok_buf *b) {
    LM_ASSERT((unsigned)p < LM_PRETOK_COUNT && len < UINT32_MAX);
    b->n = 0;
    if (len == 0) return;
    reserve(b, len);

    /* Decode once; the stages then work on code point indices. */
    uint32_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t k = (uint8_t)text[i] < 0x80 ? (cp = (uint8_t)text[i], 1) : lm_utf8_decode(text + i, len - i, &cp);
        b->cps[n] = cp;
        b->flags[n] = (uint8_t)lm_unicode_flags(cp);
        b->offs[n++] = (uint32_t)i;
        i += k;
    }
    b->offs[n] = (uint32_t)len;

    struct text t = {b->cps, b->flags};
    uint32_t *in = b->ends, *out = b->tmp;
    size_t n_in = 1;
    in[0] = n;
    for (int s = 0; s < MAX_STAGES && pretok_stages[p][s]; s++) {
        struct out o = {out, 0, 0};
        uint32_t start = 0;
        for (size_t i = 0; i < n_in; i++) {
            o.prev = start;
            pretok_stages[p][s](&t, start, in[i], &o);
            start = in[i];
        }
        uint32_t *swap = in;
        in = out;
        out = swap;
        n_in = o.n;
    }
    /* Code point indices to byte offsets, into b->ends. */
    for (size_t i = 0; i < n_in; i++) b->ends[i] = b->offs[in[i]];
    b->n = n_in;
}

void lm_pretok_free(struct lm_pretok_buf *b) {
    free(b->cps);
    free(b->offs);
    free(b->ends);
    free(b->tmp);
    free(b->flags);
    *b = (struct lm_pretok_buf){0};
}
