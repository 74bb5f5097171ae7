/* Jinja text -> tokens -> syntax tree, following jinja2 3.1's lexer.py and
 * parser.py (with trim_blocks and lstrip_blocks on, as transformers sets
 * them). Syntax errors anywhere fail the whole template, as in jinja2, even
 * in branches a render would not take. */
#include "jinja_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NESTING 200   /* jinja2 itself stops near here (Python's recursion limit) */

/* ---- tokens ------------------------------------------------------------- */

enum tok {
    T_EOF,
    T_DATA,
    T_VAR_BEGIN,
    T_VAR_END,
    T_BLOCK_BEGIN,
    T_BLOCK_END,
    T_NAME,
    T_STRING,
    T_INT,
    T_FLOAT,
    T_OP,
};

struct token {
    uint8_t type;
    size_t off;           /* byte offset in the source; line and col follow from it */
    uint32_t line, col;
    const char *s;        /* T_NAME, T_OP: the text */
    uint32_t len;
    struct value val;     /* T_DATA, T_STRING: the text; T_INT, T_FLOAT: the number */
};

struct lexer {
    struct ctx *c;
    const char *s;        /* normalized source */
    size_t n, pos;
    struct token *toks;
    size_t n_toks, cap;
    bool line_starting;
};

static void pos_of(const char *s, size_t pos, uint32_t *line, uint32_t *col) {
    uint32_t l = 1, cl = 1;
    for (size_t i = 0; i < pos; i++) {
        if (s[i] == '\n') l++, cl = 1;
        else if (((unsigned char)s[i] & 0xc0) != 0x80) cl++;  /* columns count characters */
    }
    *line = l;
    *col = cl;
}

static int lex_fail(struct lexer *lx, size_t pos, const char *msg) {
    struct node at = {0};
    pos_of(lx->s, pos, &at.line, &at.col);
    return jx_fail(lx->c, &at, "%s", msg);
}

static struct token *push(struct lexer *lx, int type, size_t pos) {
    if (lx->n_toks == lx->cap) {
        size_t cap = lx->cap ? lx->cap * 2 : 256;
        struct token *t = jx_alloc(lx->c, cap * sizeof *t);
        if (!t) return NULL;
        if (lx->n_toks) memcpy(t, lx->toks, lx->n_toks * sizeof *t);
        lx->toks = t;
        lx->cap = cap;
    }
    struct token *t = &lx->toks[lx->n_toks++];
    memset(t, 0, sizeof *t);
    t->type = (uint8_t)type;
    t->off = pos;
    return t;
}

/* Python's \s and str.isspace() on the code point at s (length in *k). */
static bool space_at(const char *s, size_t n, size_t *k) {
    uint32_t cp;
    *k = lm_utf8_decode(s, n, &cp);
    return py_isspace(cp);
}

/* Length of s[0..n) without its trailing Python whitespace. */
static size_t rstrip_len(const char *s, size_t n) {
    size_t end = 0, i = 0;
    while (i < n) {
        size_t k;
        bool sp = space_at(s + i, n - i, &k);
        i += k;
        if (!sp) end = i;
    }
    return end;
}

/* Bytes of Python whitespace at the start of s[0..n). */
static size_t lstrip_len(const char *s, size_t n) {
    size_t i = 0, k;
    while (i < n && space_at(s + i, n - i, &k)) i += k;
    return i;
}

static int push_data(struct lexer *lx, size_t start, size_t len) {
    if (!len) return 0;
    struct token *t = push(lx, T_DATA, start);
    if (!t) return -1;
    t->val = v_str(lx->s + start, len);
    return 0;
}

/* The text before a tag, with whitespace control applied: sign '-' strips
 * all whitespace before it; blocks and comments (not {{) otherwise get
 * lstrip_blocks: spaces and tabs between the line start and the tag go. */
static int data_before_tag(struct lexer *lx, size_t start, size_t end, char sign, bool is_var) {
    const char *t = lx->s + start;
    size_t n = end - start;
    if (sign == '-') n = rstrip_len(t, n);
    else if (sign != '+' && !is_var) {
        size_t l_pos = n;
        while (l_pos > 0 && t[l_pos - 1] != '\n') l_pos--;
        if ((l_pos > 0 || lx->line_starting) && l_pos < n && lstrip_len(t + l_pos, n - l_pos) == n - l_pos) n = l_pos;
    }
    return push_data(lx, start, n);
}

/* After a tag's end at lx->pos (just past %}, #} or }}): sign '-' eats all
 * whitespace; for blocks and comments trim_blocks eats one newline. */
static void after_tag_end(struct lexer *lx, char sign, bool trim) {
    if (sign == '-') lx->pos += lstrip_len(lx->s + lx->pos, lx->n - lx->pos);
    else if (sign != '+' && trim && lx->pos < lx->n && lx->s[lx->pos] == '\n') lx->pos++;
    lx->line_starting = lx->pos > 0 && lx->s[lx->pos - 1] == '\n';
}

static bool is_digit(char ch) { return ch >= '0' && ch <= '9'; }
static bool is_name_start(char ch) { return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_'; }
static bool is_name_char(char ch) { return is_name_start(ch) || is_digit(ch); }
static int hex_val(char ch) {
    return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
}

/* A quoted string at lx->pos with Python's escapes (jinja2 decodes string
 * literals with the unicode-escape codec). */
static int lex_string(struct lexer *lx) {
    size_t start = lx->pos;
    char q = lx->s[lx->pos++];
    size_t end = lx->pos;
    while (end < lx->n && lx->s[end] != q) end += lx->s[end] == '\\' ? 2 : 1;
    if (end >= lx->n) return lex_fail(lx, start, "unterminated string");
    char *buf = jx_alloc(lx->c, end - lx->pos + 1);
    if (!buf) return -1;
    size_t len = 0;
    const char *s = lx->s;
    size_t i = lx->pos;
    while (i < end) {
        if (s[i] != '\\') {
            buf[len++] = s[i++];
            continue;
        }
        char e = s[i + 1];
        i += 2;
        const char *from = "\\'\"abfnrtv", *to = "\\'\"\a\b\f\n\r\t\v";
        const char *hit = strchr(from, e);
        if (e == '\n') continue;  /* backslash-newline joins lines */
        if (hit && e) {
            buf[len++] = to[hit - from];
            continue;
        }
        if (e >= '0' && e <= '7') {
            uint32_t cp = (uint32_t)(e - '0');
            for (int k = 0; k < 2 && i < end && s[i] >= '0' && s[i] <= '7'; k++) cp = cp * 8 + (uint32_t)(s[i++] - '0');
            len += lm_utf8_encode(cp, buf + len);
            continue;
        }
        if (e == 'N') return lex_fail(lx, i - 2, "\\N{...} escapes are not supported");
        int digits = e == 'x' ? 2 : e == 'u' ? 4 : e == 'U' ? 8 : 0;
        if (!digits) {  /* unknown escapes stay as written */
            buf[len++] = '\\';
            i--;
            continue;
        }
        uint32_t cp = 0;
        for (int k = 0; k < digits; k++) {
            int h = i < end ? hex_val(s[i]) : -1;
            if (h < 0) return lex_fail(lx, i - 2 - (size_t)k, "truncated \\x, \\u or \\U escape in string");
            cp = cp << 4 | (uint32_t)h;
            i++;
        }
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return lex_fail(lx, start, "string escape is not a valid character");
        /* 4 bytes of UTF-8 never exceed the 6+ bytes of escape they replace */
        len += lm_utf8_encode(cp, buf + len);
    }
    lx->pos = end + 1;
    struct token *t = push(lx, T_STRING, start);
    if (!t) return -1;
    t->val = v_str(buf, len);
    return 0;
}

/* Digits with single underscores between them, from lx->pos; returns count. */
static size_t digits_at(const char *s, size_t n, size_t i, int (*ok)(char)) {
    size_t k = i;
    while (k < n && ok(s[k])) {
        k++;
        if (k + 1 < n && s[k] == '_' && ok(s[k + 1])) k++;
    }
    return k - i;
}
static int dec_ok(char ch) { return is_digit(ch); }
static int hex_ok(char ch) { return hex_val(ch) >= 0; }
static int oct_ok(char ch) { return ch >= '0' && ch <= '7'; }
static int bin_ok(char ch) { return ch == '0' || ch == '1'; }

static int lex_number(struct lexer *lx) {
    const char *s = lx->s;
    size_t n = lx->n, start = lx->pos, i = start;
    /* float: digits ('.' digits)? exponent | digits '.' digits (no leading '.') */
    size_t d = digits_at(s, n, i, dec_ok);
    size_t j = i + d;
    bool is_float = false;
    if (j + 1 < n && s[j] == '.' && is_digit(s[j + 1]) && !(start > 0 && s[start - 1] == '.')) {
        j += 1 + digits_at(s, n, j + 1, dec_ok);
        is_float = true;
    }
    if (j < n && (s[j] == 'e' || s[j] == 'E') && !(start > 0 && s[start - 1] == '.')) {
        size_t k = j + 1;
        if (k < n && (s[k] == '+' || s[k] == '-')) k++;
        size_t e = digits_at(s, n, k, dec_ok);
        if (e) {
            j = k + e;
            is_float = true;
        }
    }
    char tmp[128];
    size_t m = 0;
    if (is_float) {
        for (size_t k = i; k < j && m < sizeof tmp - 1; k++)
            if (s[k] != '_') tmp[m++] = s[k];
        tmp[m] = 0;
        struct token *t = push(lx, T_FLOAT, start);
        if (!t) return -1;
        t->val = v_float(strtod(tmp, NULL));
        lx->pos = j;
        return 0;
    }
    int base = 10;
    int (*ok)(char) = dec_ok;
    if (s[i] == '0' && i + 1 < n && strchr("xXoObB", s[i + 1]) && s[i + 1]) {
        char b = (char)(s[i + 1] | 0x20);
        base = b == 'x' ? 16 : b == 'o' ? 8 : 2;
        ok = b == 'x' ? hex_ok : b == 'o' ? oct_ok : bin_ok;
        i += 2;
        if (i < n && s[i] == '_') i++;
        d = digits_at(s, n, i, ok);
        if (!d) return lex_fail(lx, start, "invalid number");
    } else if (s[i] == '0') {
        d = 1;  /* "0" (and "0_0"); "01" lexes as 0 then 1, a syntax error later */
        while (i + d + 1 < n && s[i + d] == '_' && s[i + d + 1] == '0') d += 2;
    }
    j = i + d;
    for (size_t k = i; k < j && m < sizeof tmp - 1; k++)
        if (s[k] != '_') tmp[m++] = s[k];
    tmp[m] = 0;
    if (m >= 20 && base == 10) return lex_fail(lx, start, "integer literal too large");
    char *endp;
    unsigned long long u = strtoull(tmp, &endp, base);
    if (u > INT64_MAX || m >= sizeof tmp - 1) return lex_fail(lx, start, "integer literal too large");
    struct token *t = push(lx, T_INT, start);
    if (!t) return -1;
    t->val = v_int((int64_t)u);
    lx->pos = j;
    return 0;
}

static const char *const operators[] = {
    "//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[", "]", "(",
    ")", "{", "}", ">", "<", "=", ".", ":", "|", ",", ";",
};

/* Tokens inside {{ }} or {% %} up to and including the end tag. */
static int lex_tag(struct lexer *lx, bool is_block, size_t tag_start) {
    char stack[MAX_NESTING];
    int depth = 0;
    const char *s = lx->s;
    for (;;) {
        size_t p = lx->pos;
        if (p >= lx->n) return lex_fail(lx, tag_start, is_block ? "missing end of block tag '%}'" : "missing end of variable tag '}}'");
        char close = is_block ? '%' : '}';
        if (depth == 0) {
            char sign = 0;
            size_t q = p;
            if ((s[q] == '-' || (s[q] == '+' && is_block)) && q + 1 < lx->n && s[q + 1] == close) sign = s[q++];
            if (q + 1 < lx->n && s[q] == close && s[q + 1] == '}') {
                if (!push(lx, is_block ? T_BLOCK_END : T_VAR_END, p)) return -1;
                lx->pos = q + 2;
                after_tag_end(lx, sign, is_block);
                return 0;
            }
        }
        size_t k;
        if (space_at(s + p, lx->n - p, &k)) {
            lx->pos += k;
            continue;
        }
        char ch = s[p];
        if (is_digit(ch)) {
            if (lex_number(lx) < 0) return -1;
            continue;
        }
        if (is_name_start(ch)) {
            size_t e = p;
            while (e < lx->n && is_name_char(s[e])) e++;
            struct token *t = push(lx, T_NAME, p);
            if (!t) return -1;
            t->s = s + p;
            t->len = (uint32_t)(e - p);
            lx->pos = e;
            continue;
        }
        if (ch == '\'' || ch == '"') {
            if (lex_string(lx) < 0) return -1;
            continue;
        }
        size_t oi;
        for (oi = 0; oi < sizeof operators / sizeof operators[0]; oi++) {
            size_t ol = strlen(operators[oi]);
            if (p + ol <= lx->n && !memcmp(s + p, operators[oi], ol)) break;
        }
        if (oi == sizeof operators / sizeof operators[0]) return lex_fail(lx, p, "unexpected character");
        const char *op = operators[oi];
        if (strchr("([{", op[0])) {
            if (depth == MAX_NESTING) return lex_fail(lx, p, "brackets nested too deeply");
            stack[depth++] = op[0] == '(' ? ')' : op[0] == '[' ? ']' : '}';
        } else if (strchr(")]}", op[0])) {
            if (!depth) return lex_fail(lx, p, "unexpected closing bracket");
            if (stack[--depth] != op[0]) return lex_fail(lx, p, "mismatched closing bracket");
        }
        struct token *t = push(lx, T_OP, p);
        if (!t) return -1;
        t->s = op;
        t->len = (uint32_t)strlen(op);
        lx->pos = p + t->len;
    }
}

/* {% raw %}...{% endraw %}: p is at "{%"; returns 1 when it is a raw block
 * (handled), 0 when not. */
static int lex_raw(struct lexer *lx, size_t p, size_t data_start) {
    const char *s = lx->s;
    size_t q = p + 2;
    char sign = 0;
    if (q < lx->n && (s[q] == '-' || s[q] == '+')) sign = s[q++];
    q += lstrip_len(s + q, lx->n - q);
    if (lx->n - q < 3 || memcmp(s + q, "raw", 3) != 0 || (q + 3 < lx->n && is_name_char(s[q + 3]))) return 0;
    q += 3;
    q += lstrip_len(s + q, lx->n - q);
    bool strip_after = false;
    if (q + 2 < lx->n && s[q] == '-' && s[q + 1] == '%' && s[q + 2] == '}') strip_after = true, q++;
    if (q + 1 >= lx->n || s[q] != '%' || s[q + 1] != '}') return 0;
    q += 2;
    if (data_before_tag(lx, data_start, p, sign, false) < 0) return -1;
    if (strip_after) q += lstrip_len(s + q, lx->n - q);
    /* the body runs to the first {% endraw %} */
    for (size_t e = q; e + 1 < lx->n; e++) {
        if (s[e] != '{' || s[e + 1] != '%') continue;
        size_t r = e + 2;
        char esign = 0;
        if (r < lx->n && (s[r] == '-' || s[r] == '+')) esign = s[r++];
        r += lstrip_len(s + r, lx->n - r);
        if (lx->n - r < 6 || memcmp(s + r, "endraw", 6) != 0) continue;
        r += 6;
        r += lstrip_len(s + r, lx->n - r);
        char tsign = 0;
        if (r < lx->n && (s[r] == '-' || s[r] == '+')) tsign = s[r++];
        if (r + 1 >= lx->n || s[r] != '%' || s[r + 1] != '}') continue;
        bool saved = lx->line_starting;
        lx->line_starting = false;
        if (data_before_tag(lx, q, e, esign, false) < 0) return -1;
        lx->line_starting = saved;
        lx->pos = r + 2;
        after_tag_end(lx, tsign, true);
        return 1;
    }
    return lex_fail(lx, p, "missing {% endraw %}");
}

static int lex(struct lexer *lx) {
    const char *s = lx->s;
    lx->line_starting = true;
    while (lx->pos < lx->n) {
        size_t start = lx->pos, p = start;
        for (; p + 1 < lx->n; p++)
            if (s[p] == '{' && (s[p + 1] == '{' || s[p + 1] == '%' || s[p + 1] == '#')) break;
        if (p + 1 >= lx->n) {
            if (push_data(lx, start, lx->n - start) < 0) return -1;
            break;
        }
        char kind = s[p + 1];
        char sign = p + 2 < lx->n && (s[p + 2] == '-' || s[p + 2] == '+') ? s[p + 2] : 0;
        if (kind == '%') {
            int r = lex_raw(lx, p, start);
            if (r < 0) return -1;
            if (r) continue;
        }
        if (data_before_tag(lx, start, p, sign, kind == '{') < 0) return -1;
        size_t body = p + 2 + (sign ? 1 : 0);
        if (kind == '#') {
            size_t e = body;
            while (e + 1 < lx->n && !(s[e] == '#' && s[e + 1] == '}')) e++;
            if (e + 1 >= lx->n) return lex_fail(lx, p, "missing end of comment tag '#}'");
            char esign = e > body && (s[e - 1] == '-' || s[e - 1] == '+') ? s[e - 1] : 0;
            lx->pos = e + 2;
            after_tag_end(lx, esign, true);
            continue;
        }
        if (!push(lx, kind == '{' ? T_VAR_BEGIN : T_BLOCK_BEGIN, p)) return -1;
        lx->pos = body;
        if (lex_tag(lx, kind == '%', p) < 0) return -1;
    }
    return push(lx, T_EOF, lx->n) ? 0 : -1;
}

/* One pass over the source turns the tokens' offsets (increasing) into
 * lines and columns. */
static void fill_positions(struct lexer *lx) {
    uint32_t line = 1, col = 1;
    size_t at = 0;
    for (size_t i = 0; i < lx->n_toks; i++) {
        size_t off = lx->toks[i].off;
        for (; at < off; at++) {
            if (lx->s[at] == '\n') line++, col = 1;
            else if (((unsigned char)lx->s[at] & 0xc0) != 0x80) col++;
        }
        lx->toks[i].line = line;
        lx->toks[i].col = col;
    }
}

/* ---- parser ------------------------------------------------------------- */

struct parser {
    struct ctx *c;
    struct token *t;      /* current */
    struct token *end;    /* the T_EOF token */
    int depth;
    int loop_depth;       /* for break/continue */
    bool soft;            /* inside if/condexpr: unknown filters fail only when run */
};

struct nvec {
    struct node **v;
    uint32_t n, cap;
};

static int nvec_push(struct parser *p, struct nvec *v, struct node *x) {
    if (v->n == v->cap) {
        uint32_t cap = v->cap ? v->cap * 2 : 4;
        struct node **nv = jx_alloc(p->c, cap * sizeof *nv);
        if (!nv) return -1;
        if (v->n) memcpy(nv, v->v, v->n * sizeof *nv);
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = x;
    return 0;
}

static struct node *node_at(struct parser *p, int kind, const struct token *t) {
    struct node *n = jx_alloc(p->c, sizeof *n);
    if (!n) return NULL;
    memset(n, 0, sizeof *n);
    n->kind = (uint8_t)kind;
    n->line = t->line;
    n->col = t->col;
    return n;
}

static const char *describe(const struct token *t) {
    switch (t->type) {
    case T_EOF: return "end of template";
    case T_DATA: return "template data";
    case T_VAR_BEGIN: return "'{{'";
    case T_VAR_END: return "'}}'";
    case T_BLOCK_BEGIN: return "'{%'";
    case T_BLOCK_END: return "'%}'";
    case T_STRING: return "string";
    case T_INT: return "integer";
    case T_FLOAT: return "float";
    default: return NULL;
    }
}

static struct node *perr(struct parser *p, const struct token *t, const char *what) {
    struct node at = {.line = t->line, .col = t->col};
    const char *d = describe(t);
    if (d) jx_fail(p->c, &at, "%s, got %s", what, d);
    else jx_fail(p->c, &at, "%s, got '%.*s'", what, (int)t->len, t->s);
    return NULL;
}

static bool is_op(const struct token *t, const char *op) {
    return t->type == T_OP && t->len == strlen(op) && !memcmp(t->s, op, t->len);
}
static bool is_name(const struct token *t, const char *name) {
    return t->type == T_NAME && t->len == strlen(name) && !memcmp(t->s, name, t->len);
}
static void next(struct parser *p) {
    if (p->t < p->end) p->t++;
}
static bool skip_op(struct parser *p, const char *op) {
    if (!is_op(p->t, op)) return false;
    next(p);
    return true;
}
static bool skip_name(struct parser *p, const char *name) {
    if (!is_name(p->t, name)) return false;
    next(p);
    return true;
}
static int expect_op(struct parser *p, const char *op) {
    if (skip_op(p, op)) return 0;
    char what[32];
    snprintf(what, sizeof what, "expected '%s'", op);
    perr(p, p->t, what);
    return -1;
}
static int expect_type(struct parser *p, int type, const char *what) {
    if (p->t->type == type) {
        next(p);
        return 0;
    }
    perr(p, p->t, what);
    return -1;
}

static struct node *parse_expression(struct parser *p, bool with_condexpr);
static struct node *parse_tuple(struct parser *p, bool simplified, bool with_condexpr, const char *extra_end, bool explicit_parens);
static struct node *parse_unary(struct parser *p, bool with_filter);
static struct node *parse_primary(struct parser *p);
static struct node *parse_postfix(struct parser *p, struct node *n);

static struct node *binop(struct parser *p, int kind, int op, const struct token *t, struct node *a, struct node *b) {
    if (!b) return NULL;
    struct node *n = node_at(p, kind, t);
    if (!n) return NULL;
    n->op = (uint8_t)op;
    n->a = a;
    n->b = b;
    return n;
}

/* (args, name=value, ...) after the '(' */
static int parse_call_args(struct parser *p, struct node *call) {
    struct nvec args = {0};
    bool kw_seen = false;
    if (expect_op(p, "(") < 0) return -1;
    while (!is_op(p->t, ")")) {
        if (args.n && expect_op(p, ",") < 0) return -1;
        if (is_op(p->t, ")")) break;
        if (is_op(p->t, "*") || is_op(p->t, "**")) {
            perr(p, p->t, "*args and **kwargs in calls are not supported");
            return -1;
        }
        struct node *arg;
        if (p->t->type == T_NAME && is_op(p->t + 1, "=")) {
            const struct token *nt = p->t;
            next(p);
            next(p);
            arg = node_at(p, N_KWARG, nt);
            if (!arg) return -1;
            arg->name = v_str(nt->s, nt->len);
            if (!(arg->a = parse_expression(p, true))) return -1;
            kw_seen = true;
        } else {
            if (kw_seen) {
                perr(p, p->t, "positional argument after keyword argument");
                return -1;
            }
            if (!(arg = parse_expression(p, true))) return -1;
        }
        if (nvec_push(p, &args, arg) < 0) return -1;
    }
    next(p);
    call->kids = args.v;
    call->n_kids = args.n;
    return 0;
}

static struct node *resolve_builtin(struct parser *p, struct node *n, const struct token *nt, bool filter) {
    n->fn = filter ? jx_find_filter(nt->s, nt->len) : jx_find_test(nt->s, nt->len);
    if (!n->fn && !p->soft) {
        struct node at = {.line = nt->line, .col = nt->col};
        jx_fail(p->c, &at, "no %s named '%.*s'", filter ? "filter" : "test", (int)nt->len, nt->s);
        return NULL;
    }
    return n;
}

/* |name or |name(args), repeated; node NULL in filter blocks. */
static struct node *parse_filter(struct parser *p, struct node *node, bool start_inline) {
    while (is_op(p->t, "|") || start_inline) {
        if (!start_inline) next(p);
        start_inline = false;
        const struct token *nt = p->t;
        if (expect_type(p, T_NAME, "expected a filter name") < 0) return NULL;
        if (is_op(p->t, ".")) return perr(p, p->t, "dotted filter names are not supported");
        struct node *f = node_at(p, N_FILTER, nt);
        if (!f) return NULL;
        f->a = node;
        f->name = v_str(nt->s, nt->len);
        if (is_op(p->t, "(") && parse_call_args(p, f) < 0) return NULL;
        if (!resolve_builtin(p, f, nt, true)) return NULL;
        node = f;
    }
    return node;
}

static struct node *parse_test(struct parser *p, struct node *node) {
    const struct token *is_tok = p->t;
    next(p);  /* 'is' */
    bool negated = skip_name(p, "not");
    const struct token *nt = p->t;
    if (expect_type(p, T_NAME, "expected a test name") < 0) return NULL;
    struct node *t = node_at(p, N_TEST, is_tok);
    if (!t) return NULL;
    t->a = node;
    t->op = negated;
    t->name = v_str(nt->s, nt->len);
    int ty = p->t->type;
    if (is_op(p->t, "(")) {
        if (parse_call_args(p, t) < 0) return NULL;
    } else if ((ty == T_NAME || ty == T_STRING || ty == T_INT || ty == T_FLOAT || is_op(p->t, "[") || is_op(p->t, "{")) &&
               !is_name(p->t, "else") && !is_name(p->t, "or") && !is_name(p->t, "and")) {
        /* one argument without parentheses: "x is divisibleby 3" */
        if (is_name(p->t, "is")) return perr(p, p->t, "tests cannot be chained with 'is'");
        struct node *arg = parse_primary(p);
        if (!arg || !(arg = parse_postfix(p, arg))) return NULL;
        t->kids = jx_alloc(p->c, sizeof *t->kids);
        if (!t->kids) return NULL;
        t->kids[0] = arg;
        t->n_kids = 1;
    }
    return resolve_builtin(p, t, nt, false);
}

static struct node *parse_filter_expr(struct parser *p, struct node *n) {
    while (n) {
        if (is_op(p->t, "|")) n = parse_filter(p, n, false);
        else if (is_name(p->t, "is")) n = parse_test(p, n);
        else if (is_op(p->t, "(")) {
            struct node *call = node_at(p, N_CALL, p->t);
            if (!call) return NULL;
            call->a = n;
            call->line = n->line;  /* errors point at what is called */
            call->col = n->col;
            if (parse_call_args(p, call) < 0) return NULL;
            n = call;
        } else break;
    }
    return n;
}

/* x[...] contents: an expression or a slice a:b:c */
static struct node *parse_subscribed(struct parser *p) {
    const struct token *t = p->t;
    struct node *parts[3] = {NULL, NULL, NULL};
    if (!is_op(p->t, ":")) {
        if (!(parts[0] = parse_expression(p, true))) return NULL;
        if (!is_op(p->t, ":")) return parts[0];
    }
    next(p);  /* ':' */
    if (!is_op(p->t, "]") && !is_op(p->t, ",") && !is_op(p->t, ":"))
        if (!(parts[1] = parse_expression(p, true))) return NULL;
    if (skip_op(p, ":") && !is_op(p->t, "]") && !is_op(p->t, ","))
        if (!(parts[2] = parse_expression(p, true))) return NULL;
    struct node *s = node_at(p, N_SLICE, t);
    if (!s) return NULL;
    s->b = parts[0];
    s->c = parts[1];
    s->d = parts[2];
    return s;
}

static struct node *parse_postfix(struct parser *p, struct node *n) {
    while (n) {
        const struct token *t = p->t;
        if (is_op(t, ".")) {
            next(p);
            const struct token *at = p->t;
            if (at->type == T_NAME) {
                struct node *g = node_at(p, N_ATTR, t);
                if (!g) return NULL;
                g->a = n;
                g->name = v_str(at->s, at->len);
                next(p);
                n = g;
            } else if (at->type == T_INT) {
                struct node *k = node_at(p, N_CONST, at);
                struct node *g = node_at(p, N_ITEM, t);
                if (!k || !g) return NULL;
                k->val = at->val;
                g->a = n;
                g->b = k;
                next(p);
                n = g;
            } else return perr(p, at, "expected a name or number after '.'");
        } else if (is_op(t, "[")) {
            next(p);
            struct nvec args = {0};
            while (!is_op(p->t, "]")) {
                if (args.n && expect_op(p, ",") < 0) return NULL;
                struct node *a = parse_subscribed(p);
                if (!a || nvec_push(p, &args, a) < 0) return NULL;
            }
            next(p);
            if (args.n == 0) return perr(p, t, "expected a subscript");
            struct node *key = args.v[0];
            if (args.n > 1) {
                /* x[a, b:c] would index with a tuple holding a slice, which
                 * no value supports; a slice node also evaluates only as the
                 * subscript itself */
                for (uint32_t i = 0; i < args.n; i++)
                    if (args.v[i]->kind == N_SLICE) {
                        jx_fail(p->c, args.v[i], "a slice cannot be part of a tuple subscript");
                        return NULL;
                    }
                key = node_at(p, N_TUPLE, t);
                if (!key) return NULL;
                key->kids = args.v;
                key->n_kids = args.n;
            }
            if (key->kind == N_SLICE) {
                key->a = n;
                key->line = t->line;
                key->col = t->col;
                n = key;
            } else {
                struct node *g = node_at(p, N_ITEM, t);
                if (!g) return NULL;
                g->a = n;
                g->b = key;
                n = g;
            }
        } else if (is_op(t, "(")) {
            struct node *call = node_at(p, N_CALL, t);
            if (!call) return NULL;
            call->a = n;
            call->line = n->line;
            call->col = n->col;
            if (parse_call_args(p, call) < 0) return NULL;
            n = call;
        } else break;
    }
    return n;
}

static struct node *parse_list_or_dict(struct parser *p, bool dict) {
    const struct token *t = p->t;
    next(p);
    struct nvec items = {0};
    const char *close = dict ? "}" : "]";
    while (!is_op(p->t, close)) {
        if (items.n && expect_op(p, ",") < 0) return NULL;
        if (is_op(p->t, close)) break;
        struct node *item;
        if (dict) {
            const struct token *kt = p->t;
            struct node *k = parse_expression(p, true);
            if (!k || expect_op(p, ":") < 0) return NULL;
            struct node *v = parse_expression(p, true);
            if (!v) return NULL;
            if (!(item = node_at(p, N_PAIR, kt))) return NULL;
            item->a = k;
            item->b = v;
        } else if (!(item = parse_expression(p, true))) return NULL;
        if (nvec_push(p, &items, item) < 0) return NULL;
    }
    next(p);
    struct node *n = node_at(p, dict ? N_DICT : N_LIST, t);
    if (!n) return NULL;
    n->kids = items.v;
    n->n_kids = items.n;
    return n;
}

static struct node *parse_primary(struct parser *p) {
    const struct token *t = p->t;
    struct node *n;
    if (t->type == T_NAME) {
        n = node_at(p, N_CONST, t);
        if (!n) return NULL;
        if (is_name(t, "true") || is_name(t, "True")) n->val = v_bool(true);
        else if (is_name(t, "false") || is_name(t, "False")) n->val = v_bool(false);
        else if (is_name(t, "none") || is_name(t, "None")) n->val = v_none();
        else {
            n->kind = N_NAME;
            n->name = v_str(t->s, t->len);
        }
        next(p);
        return n;
    }
    if (t->type == T_STRING) {
        /* adjacent literals concatenate: "a" "b" */
        struct value s = t->val;
        next(p);
        if (p->t->type == T_STRING) {
            struct sb b = {0};
            if (jx_sb_put(p->c, &b, s.s, s.len) < 0) return NULL;
            for (; p->t->type == T_STRING; next(p))
                if (jx_sb_put(p->c, &b, p->t->val.s, p->t->val.len) < 0) return NULL;
            s = sb_value(&b);
        }
        if (!(n = node_at(p, N_CONST, t))) return NULL;
        n->val = s;
        return n;
    }
    if (t->type == T_INT || t->type == T_FLOAT) {
        if (!(n = node_at(p, N_CONST, t))) return NULL;
        n->val = t->val;
        next(p);
        return n;
    }
    if (is_op(t, "(")) {
        next(p);
        n = parse_tuple(p, false, true, NULL, true);
        if (!n || expect_op(p, ")") < 0) return NULL;
        return n;
    }
    if (is_op(t, "[")) return parse_list_or_dict(p, false);
    if (is_op(t, "{")) return parse_list_or_dict(p, true);
    return perr(p, t, "expected an expression");
}

static struct node *parse_unary(struct parser *p, bool with_filter) {
    const struct token *t = p->t;
    if (++p->depth > MAX_NESTING) return perr(p, t, "expression nested too deeply");
    struct node *n;
    if (is_op(t, "-") || is_op(t, "+")) {
        next(p);
        struct node *a = parse_unary(p, false);
        if (!a || !(n = node_at(p, N_UNARY, t))) return NULL;
        n->op = is_op(t, "-") ? OP_NEG : OP_POS;
        n->a = a;
    } else n = parse_primary(p);
    n = parse_postfix(p, n);
    if (with_filter) n = parse_filter_expr(p, n);
    p->depth--;
    return n;
}

static struct node *parse_pow(struct parser *p) {
    struct node *n = parse_unary(p, true);
    while (n && is_op(p->t, "**")) {
        const struct token *t = p->t;
        next(p);
        n = binop(p, N_BINOP, OP_POW, t, n, parse_unary(p, true));
    }
    return n;
}

static struct node *parse_math2(struct parser *p) {
    struct node *n = parse_pow(p);
    for (;;) {
        const struct token *t = p->t;
        int op = is_op(t, "*") ? OP_MUL : is_op(t, "/") ? OP_DIV : is_op(t, "//") ? OP_FLOORDIV : is_op(t, "%") ? OP_MOD : -1;
        if (!n || op < 0) return n;
        next(p);
        n = binop(p, N_BINOP, op, t, n, parse_pow(p));
    }
}

static struct node *parse_concat(struct parser *p) {
    const struct token *t = p->t;
    struct node *first = parse_math2(p);
    if (!first || !is_op(p->t, "~")) return first;
    struct nvec parts = {0};
    if (nvec_push(p, &parts, first) < 0) return NULL;
    while (skip_op(p, "~")) {
        struct node *x = parse_math2(p);
        if (!x || nvec_push(p, &parts, x) < 0) return NULL;
    }
    struct node *n = node_at(p, N_CONCAT, t);
    if (!n) return NULL;
    n->kids = parts.v;
    n->n_kids = parts.n;
    return n;
}

static struct node *parse_math1(struct parser *p) {
    struct node *n = parse_concat(p);
    for (;;) {
        const struct token *t = p->t;
        int op = is_op(t, "+") ? OP_ADD : is_op(t, "-") ? OP_SUB : -1;
        if (!n || op < 0) return n;
        next(p);
        n = binop(p, N_BINOP, op, t, n, parse_concat(p));
    }
}

static struct node *parse_compare(struct parser *p) {
    const struct token *t0 = p->t;
    struct node *first = parse_math1(p);
    if (!first) return NULL;
    struct nvec ops = {0};
    for (;;) {
        const struct token *t = p->t;
        int op = is_op(t, "==") ? OP_EQ : is_op(t, "!=") ? OP_NE : is_op(t, "<") ? OP_LT : is_op(t, "<=") ? OP_LE
               : is_op(t, ">") ? OP_GT : is_op(t, ">=") ? OP_GE : -1;
        if (op >= 0) next(p);
        else if (is_name(t, "in")) op = OP_IN, next(p);
        else if (is_name(t, "not") && is_name(t + 1, "in")) op = OP_NOTIN, next(p), next(p);
        else break;
        struct node *rhs = parse_math1(p);
        struct node *o = rhs ? node_at(p, N_OPERAND, t) : NULL;
        if (!o) return NULL;
        o->op = (uint8_t)op;
        o->a = rhs;
        if (nvec_push(p, &ops, o) < 0) return NULL;
    }
    if (!ops.n) return first;
    struct node *n = node_at(p, N_COMPARE, t0);
    if (!n) return NULL;
    n->a = first;
    n->kids = ops.v;
    n->n_kids = ops.n;
    return n;
}

static struct node *parse_not(struct parser *p) {
    const struct token *t = p->t;
    if (!is_name(t, "not")) return parse_compare(p);
    next(p);
    if (++p->depth > MAX_NESTING) return perr(p, t, "expression nested too deeply");
    struct node *a = parse_not(p);
    p->depth--;
    struct node *n = a ? node_at(p, N_NOT, t) : NULL;
    if (n) n->a = a;
    return n;
}

static struct node *parse_and(struct parser *p) {
    struct node *n = parse_not(p);
    while (n && is_name(p->t, "and")) {
        const struct token *t = p->t;
        next(p);
        n = binop(p, N_AND, 0, t, n, parse_not(p));
    }
    return n;
}

static struct node *parse_or(struct parser *p) {
    struct node *n = parse_and(p);
    while (n && is_name(p->t, "or")) {
        const struct token *t = p->t;
        next(p);
        n = binop(p, N_OR, 0, t, n, parse_and(p));
    }
    return n;
}

/* a if cond else b (jinja evaluates these branches in a "soft" frame) */
static struct node *parse_condexpr(struct parser *p) {
    struct node *n = parse_or(p);
    while (n && is_name(p->t, "if")) {
        const struct token *t = p->t;
        next(p);
        bool soft = p->soft;
        p->soft = true;
        struct node *cond = parse_or(p), *other = NULL;
        bool ok = cond != NULL;
        if (ok && skip_name(p, "else")) ok = (other = parse_condexpr(p)) != NULL;
        p->soft = soft;
        if (!ok) return NULL;
        struct node *c = node_at(p, N_COND, t);
        if (!c) return NULL;
        c->a = cond;
        c->b = n;
        c->c = other;
        n = c;
    }
    return n;
}

static struct node *parse_expression(struct parser *p, bool with_condexpr) {
    return with_condexpr ? parse_condexpr(p) : parse_or(p);
}

static bool tuple_end(struct parser *p, const char *extra_end) {
    int ty = p->t->type;
    return ty == T_VAR_END || ty == T_BLOCK_END || is_op(p->t, ")") || (extra_end && is_name(p->t, extra_end));
}

static struct node *parse_tuple(struct parser *p, bool simplified, bool with_condexpr, const char *extra_end, bool explicit_parens) {
    const struct token *t = p->t;
    struct nvec items = {0};
    bool is_tuple = false;
    for (;;) {
        if (items.n && expect_op(p, ",") < 0) return NULL;
        if (tuple_end(p, extra_end)) break;
        struct node *x = simplified ? parse_primary(p) : parse_expression(p, with_condexpr);
        if (!x || nvec_push(p, &items, x) < 0) return NULL;
        if (is_op(p->t, ",")) is_tuple = true;
        else break;
    }
    if (!is_tuple) {
        if (items.n) return items.v[0];
        if (!explicit_parens) return perr(p, p->t, "expected an expression");
    }
    struct node *n = node_at(p, N_TUPLE, t);
    if (!n) return NULL;
    n->kids = items.v;
    n->n_kids = items.n;
    return n;
}

/* ---- statements --------------------------------------------------------- */

static struct node *subparse(struct parser *p, const char *const *ends);

/* Assignment targets: a name, or names separated by commas. */
static int parse_targets(struct parser *p, struct node *n, const char *extra_end) {
    struct node *t = parse_tuple(p, true, false, extra_end, false);
    if (!t) return -1;
    struct node *one[1] = {t};
    struct node **list = t->kind == N_TUPLE ? t->kids : one;
    uint32_t cnt = t->kind == N_TUPLE ? t->n_kids : 1;
    n->names = jx_alloc(p->c, (cnt ? cnt : 1) * sizeof *n->names);
    if (!n->names) return -1;
    for (uint32_t i = 0; i < cnt; i++) {
        if (list[i]->kind != N_NAME) {
            struct node at = {.line = list[i]->line, .col = list[i]->col};
            return jx_fail(p->c, &at, "can only assign to names");
        }
        n->names[i] = list[i]->name;
    }
    n->n_names = cnt;
    return 0;
}

/* "%}" then the body up to one of ends; with drop, the end name is consumed. */
static struct node *parse_statements(struct parser *p, const char *const *ends, bool drop) {
    if (expect_type(p, T_BLOCK_END, "expected '%}'") < 0) return NULL;
    struct node *body = subparse(p, ends);
    if (body && drop) next(p);
    return body;
}

static struct node *parse_if(struct parser *p, const struct token *t) {
    struct node *n = node_at(p, N_IF, t);
    if (!n) return NULL;
    bool soft = p->soft;
    p->soft = true;
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    static const char *const ends_else[] = {"endif", NULL};
    struct node *cur = n;
    for (;;) {
        if (!(cur->a = parse_tuple(p, false, false, NULL, false))) return NULL;
        if (!(cur->b = parse_statements(p, ends, false))) return NULL;
        const struct token *e = p->t;
        next(p);
        if (is_name(e, "elif")) {
            if (!(cur->c = node_at(p, N_IF, e))) return NULL;
            cur = cur->c;
            continue;
        }
        if (is_name(e, "else") && !(cur->c = parse_statements(p, ends_else, true))) return NULL;
        break;
    }
    p->soft = soft;
    return n;
}

static struct node *parse_for(struct parser *p, const struct token *t) {
    struct node *n = node_at(p, N_FOR, t);
    if (!n || parse_targets(p, n, "in") < 0) return NULL;
    if (!skip_name(p, "in")) return perr(p, p->t, "expected 'in'");
    if (!(n->a = parse_tuple(p, false, false, "recursive", false))) return NULL;
    if (skip_name(p, "if") && !(n->b = parse_expression(p, true))) return NULL;
    if (is_name(p->t, "recursive")) return perr(p, p->t, "recursive loops are not supported");
    static const char *const ends[] = {"endfor", "else", NULL};
    static const char *const ends_else[] = {"endfor", NULL};
    bool soft = p->soft;
    p->soft = false;
    p->loop_depth++;
    n->c = parse_statements(p, ends, false);
    p->loop_depth--;
    if (!n->c) return NULL;
    const struct token *e = p->t;
    next(p);
    if (is_name(e, "else") && !(n->d = parse_statements(p, ends_else, true))) return NULL;
    p->soft = soft;
    return n;
}

static struct node *parse_set(struct parser *p, const struct token *t) {
    struct node *n;
    if (p->t->type == T_NAME && is_op(p->t + 1, ".")) {
        /* namespace attribute: set ns.attr = value */
        if (!(n = node_at(p, N_SET_NS, t))) return NULL;
        n->name = v_str(p->t->s, p->t->len);
        next(p);
        next(p);
        if (p->t->type != T_NAME) return perr(p, p->t, "expected an attribute name");
        n->val = v_str(p->t->s, p->t->len);
        next(p);
        if (expect_op(p, "=") < 0) return NULL;
        return (n->a = parse_tuple(p, false, true, NULL, false)) ? n : NULL;
    }
    if (!(n = node_at(p, N_SET, t)) || parse_targets(p, n, NULL) < 0) return NULL;
    if (skip_op(p, "=")) return (n->a = parse_tuple(p, false, true, NULL, false)) ? n : NULL;
    n->kind = N_SET_BLOCK;
    if (is_op(p->t, "|") && !(n->b = parse_filter(p, NULL, false))) return NULL;
    static const char *const ends[] = {"endset", NULL};
    bool soft = p->soft;
    p->soft = false;
    n->c = parse_statements(p, ends, true);
    p->soft = soft;
    return n->c ? n : NULL;
}

static struct node *parse_macro(struct parser *p, const struct token *t) {
    struct node *n = node_at(p, N_MACRO, t);
    if (!n) return NULL;
    if (p->t->type != T_NAME) return perr(p, p->t, "expected a macro name");
    n->name = v_str(p->t->s, p->t->len);
    next(p);
    if (expect_op(p, "(") < 0) return NULL;
    struct nvec defaults = {0};
    struct value *names = NULL;
    uint32_t cnt = 0;
    bool any_default = false;
    while (!is_op(p->t, ")")) {
        if (cnt && expect_op(p, ",") < 0) return NULL;
        if (p->t->type != T_NAME) return perr(p, p->t, "expected a parameter name");
        struct value *nn = jx_alloc(p->c, (cnt + 1) * sizeof *nn);
        if (!nn) return NULL;
        if (cnt) memcpy(nn, names, cnt * sizeof *nn);
        names = nn;
        names[cnt++] = v_str(p->t->s, p->t->len);
        next(p);
        struct node *def = NULL;
        if (skip_op(p, "=")) {
            if (!(def = parse_expression(p, true))) return NULL;
            any_default = true;
        } else if (any_default) return perr(p, p->t - 1, "parameter without default follows one with a default");
        if (nvec_push(p, &defaults, def) < 0) return NULL;
    }
    next(p);
    n->names = names;
    n->n_names = cnt;
    n->kids = defaults.v;
    n->n_kids = defaults.n;
    static const char *const ends[] = {"endmacro", NULL};
    int loops = p->loop_depth;
    bool soft = p->soft;
    p->loop_depth = 0;
    p->soft = false;
    n->c = parse_statements(p, ends, true);
    p->loop_depth = loops;
    p->soft = soft;
    return n->c ? n : NULL;
}

static struct node *parse_with(struct parser *p, const struct token *t) {
    struct node *n = node_at(p, N_WITH, t);
    if (!n) return NULL;
    struct nvec values = {0};
    struct value *names = NULL;
    uint32_t cnt = 0;
    while (p->t->type != T_BLOCK_END) {
        if (cnt && expect_op(p, ",") < 0) return NULL;
        if (p->t->type != T_NAME) return perr(p, p->t, "expected a name");
        struct value *nn = jx_alloc(p->c, (cnt + 1) * sizeof *nn);
        if (!nn) return NULL;
        if (cnt) memcpy(nn, names, cnt * sizeof *nn);
        names = nn;
        names[cnt++] = v_str(p->t->s, p->t->len);
        next(p);
        if (expect_op(p, "=") < 0) return NULL;
        struct node *v = parse_expression(p, true);
        if (!v || nvec_push(p, &values, v) < 0) return NULL;
    }
    n->names = names;
    n->n_names = cnt;
    n->kids = values.v;
    n->n_kids = values.n;
    static const char *const ends[] = {"endwith", NULL};
    return (n->c = parse_statements(p, ends, true)) ? n : NULL;
}

static struct node *parse_statement(struct parser *p) {
    const struct token *t = p->t;
    if (t->type != T_NAME) return perr(p, t, "expected a tag name");
    next(p);
    if (is_name(t, "if")) return parse_if(p, t);
    if (is_name(t, "for")) return parse_for(p, t);
    if (is_name(t, "set")) return parse_set(p, t);
    if (is_name(t, "macro")) return parse_macro(p, t);
    if (is_name(t, "with")) return parse_with(p, t);
    if (is_name(t, "filter")) {
        struct node *n = node_at(p, N_FILTER_BLOCK, t);
        static const char *const ends[] = {"endfilter", NULL};
        if (!n || !(n->b = parse_filter(p, NULL, true))) return NULL;
        bool soft = p->soft;
        p->soft = false;
        n->c = parse_statements(p, ends, true);
        p->soft = soft;
        return n->c ? n : NULL;
    }
    struct node at = {.line = t->line, .col = t->col};
    if (is_name(t, "break") || is_name(t, "continue")) {
        if (!p->loop_depth) {
            jx_fail(p->c, &at, "'%.*s' outside a loop", (int)t->len, t->s);
            return NULL;
        }
        return node_at(p, is_name(t, "break") ? N_BREAK : N_CONTINUE, t);
    }
    static const char *const unsupported[] = {"extends", "block", "include", "import", "from", "call", "autoescape", NULL};
    for (int i = 0; unsupported[i]; i++)
        if (is_name(t, unsupported[i])) {
            jx_fail(p->c, &at, "the '%s' tag is not supported", unsupported[i]);
            return NULL;
        }
    jx_fail(p->c, &at, "unknown tag '%.*s'", (int)t->len, t->s);
    return NULL;
}

static struct node *subparse(struct parser *p, const char *const *ends) {
    const struct token *start = p->t;
    struct node *body = node_at(p, N_BODY, start);
    struct nvec kids = {0};
    if (!body) return NULL;
    if (++p->depth > MAX_NESTING) return perr(p, start, "blocks nested too deeply");
    for (;;) {
        const struct token *t = p->t;
        struct node *n = NULL;
        if (t->type == T_EOF) {
            if (ends) {
                const char *const *e = ends;
                while (e[1] && strncmp(*e, "end", 3)) e++;  /* name the closing tag */
                char what[64];
                snprintf(what, sizeof what, "missing '{%% %s %%}'", *e);
                return perr(p, t, what);
            }
            break;
        }
        if (t->type == T_DATA) {
            if (!(n = node_at(p, N_TEXT, t))) return NULL;
            n->val = t->val;
            next(p);
        } else if (t->type == T_VAR_BEGIN) {
            next(p);
            if (!(n = node_at(p, N_OUTPUT, t))) return NULL;
            if (!(n->a = parse_tuple(p, false, true, NULL, false))) return NULL;
            if (expect_type(p, T_VAR_END, "expected '}}'") < 0) return NULL;
        } else if (t->type == T_BLOCK_BEGIN) {
            next(p);
            if (ends)
                for (int i = 0; ends[i]; i++)
                    if (is_name(p->t, ends[i])) goto done;
            if (!(n = parse_statement(p))) return NULL;
            if (expect_type(p, T_BLOCK_END, "expected '%}'") < 0) return NULL;
        } else return perr(p, t, "unexpected token");
        if (nvec_push(p, &kids, n) < 0) return NULL;
    }
done:
    p->depth--;
    body->kids = kids.v;
    body->n_kids = kids.n;
    return body;
}

struct node *jx_parse(struct ctx *c, const char *src, size_t len) {
    /* Validate UTF-8 first: everything downstream relies on it. */
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t k = lm_utf8_decode(src + i, len - i, &cp);
        if (cp >= LM_UNICODE_BAD) {
            struct node at = {0};
            pos_of(src, i, &at.line, &at.col);
            jx_fail(c, &at, "template is not valid UTF-8");
            return NULL;
        }
        i += k;
    }
    /* Newlines normalized to \n and one trailing newline dropped, as
     * jinja2 does with keep_trailing_newline off. */
    char *s = jx_alloc(c, len + 1);
    if (!s) return NULL;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            s[n++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n') i++;
        } else s[n++] = src[i];
    }
    if (n && s[n - 1] == '\n') n--;
    struct lexer lx = {.c = c, .s = s, .n = n};
    if (lex(&lx) < 0) return NULL;
    fill_positions(&lx);
    struct parser p = {.c = c, .t = lx.toks, .end = lx.toks + lx.n_toks - 1};
    return subparse(&p, NULL);
}
