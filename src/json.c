/* JSON: strict recursive-descent reader, Python-compatible writers. */
#include "lm/json.h"
#include "lm/unicode.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- reader ------------------------------------------------------------- */

struct reader {
    const char *s;
    size_t n, pos;
    struct lm_err *err;
};

/* Formats "line L, column C: msg" for the current position. */
static int fail(struct reader *r, const char *msg) {
    size_t line = 1, col = 1;
    for (size_t i = 0; i < r->pos && i < r->n; i++) {
        if (r->s[i] == '\n') line++, col = 1;
        else col++;
    }
    return lm_errf(r->err, "line %zu, column %zu: %s", line, col, msg);
}

static void skip_ws(struct reader *r) {
    while (r->pos < r->n) {
        char c = r->s[r->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        r->pos++;
    }
}

static bool literal(struct reader *r, const char *word) {
    size_t k = strlen(word);
    if (r->n - r->pos < k || memcmp(r->s + r->pos, word, k) != 0) return false;
    r->pos += k;
    return true;
}

static int hex4(struct reader *r, uint32_t *out) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        if (r->pos >= r->n) return fail(r, "truncated \\u escape");
        char c = r->s[r->pos];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return fail(r, "bad hex digit in \\u escape");
        v = v << 4 | (uint32_t)d;
        r->pos++;
    }
    *out = v;
    return 0;
}

/* r->pos is at the opening quote. The decoded text is never longer than
 * the source, so one allocation of the source length suffices. */
static int parse_string(struct reader *r, char **out, size_t *out_len) {
    size_t start = ++r->pos, end = start;
    while (end < r->n && r->s[end] != '"') end += r->s[end] == '\\' ? 2 : 1;
    if (end >= r->n) {
        r->pos = start - 1;
        return fail(r, "unterminated string");
    }
    char *buf = lm_xmalloc(end - start + 1);
    size_t len = 0;
    while (r->s[r->pos] != '"') {
        unsigned char c = (unsigned char)r->s[r->pos];
        if (c < 0x20) {
            free(buf);
            return fail(r, "control character in string (escape it)");
        }
        if (c >= 0x80) {
            uint32_t cp;
            size_t k = lm_utf8_decode(r->s + r->pos, r->n - r->pos, &cp);
            if (cp >= LM_UNICODE_BAD) {
                free(buf);
                return fail(r, "invalid UTF-8 in string");
            }
            memcpy(buf + len, r->s + r->pos, k);
            len += k;
            r->pos += k;
            continue;
        }
        r->pos++;
        if (c != '\\') {
            buf[len++] = (char)c;
            continue;
        }
        char e = r->s[r->pos++];
        const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
        const char *hit = e ? strchr(from, e) : NULL;
        if (hit) {
            buf[len++] = to[hit - from];
            continue;
        }
        if (e != 'u') {
            r->pos--;
            free(buf);
            return fail(r, "invalid escape in string");
        }
        uint32_t cp;
        if (hex4(r, &cp) < 0) {
            free(buf);
            return -1;
        }
        if (cp >= 0xd800 && cp <= 0xdbff) {
            uint32_t lo;
            if (!literal(r, "\\u") || hex4(r, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff) {
                free(buf);
                return fail(r, "lone surrogate in \\u escape");
            }
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        } else if (cp >= 0xdc00 && cp <= 0xdfff) {
            free(buf);
            return fail(r, "lone surrogate in \\u escape");
        }
        len += lm_utf8_encode(cp, buf + len);
    }
    r->pos++;
    buf[len] = 0;
    *out = buf;
    *out_len = len;
    return 0;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static int parse_number(struct reader *r, struct lm_json *v) {
    size_t start = r->pos;
    bool is_int = true;
    if (r->pos < r->n && r->s[r->pos] == '-') r->pos++;
    if (r->pos >= r->n || !is_digit(r->s[r->pos])) return fail(r, "expected a digit");
    if (r->s[r->pos] == '0') r->pos++;
    else
        while (r->pos < r->n && is_digit(r->s[r->pos])) r->pos++;
    if (r->pos < r->n && r->s[r->pos] == '.') {
        is_int = false;
        r->pos++;
        if (r->pos >= r->n || !is_digit(r->s[r->pos])) return fail(r, "expected a digit after '.'");
        while (r->pos < r->n && is_digit(r->s[r->pos])) r->pos++;
    }
    if (r->pos < r->n && (r->s[r->pos] == 'e' || r->s[r->pos] == 'E')) {
        is_int = false;
        r->pos++;
        if (r->pos < r->n && (r->s[r->pos] == '+' || r->s[r->pos] == '-')) r->pos++;
        if (r->pos >= r->n || !is_digit(r->s[r->pos])) return fail(r, "expected a digit in exponent");
        while (r->pos < r->n && is_digit(r->s[r->pos])) r->pos++;
    }
    /* strtod/strtoll need a terminated copy; numbers are short, or refused. */
    char tmp[400];
    size_t k = r->pos - start;
    if (k >= sizeof tmp) return fail(r, "number too long");
    memcpy(tmp, r->s + start, k);
    tmp[k] = 0;
    v->type = LM_JSON_NUMBER;
    v->num.f = strtod(tmp, NULL);
    v->num.is_int = false;
    if (is_int) {
        errno = 0;
        v->num.i = strtoll(tmp, NULL, 10);
        v->num.is_int = errno != ERANGE;  /* beyond int64: kept as a double */
    }
    return 0;
}

static int key_cmp(const void *a, const void *b) {
    const struct lm_json_member *x = *(const struct lm_json_member *const *)a, *y = *(const struct lm_json_member *const *)b;
    if (x->key_len != y->key_len) return x->key_len < y->key_len ? -1 : 1;
    return memcmp(x->key, y->key, x->key_len);
}

static bool has_duplicate_key(const struct lm_json *v) {
    size_t n = v->obj.n;
    const struct lm_json_member *m = v->obj.members;
    if (n <= 16) {
        for (size_t i = 0; i < n; i++)
            for (size_t j = i + 1; j < n; j++)
                if (m[i].key_len == m[j].key_len && !memcmp(m[i].key, m[j].key, m[i].key_len)) return true;
        return false;
    }
    const struct lm_json_member **p = lm_xmalloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = &m[i];
    qsort(p, n, sizeof *p, key_cmp);
    bool dup = false;
    for (size_t i = 1; i < n && !dup; i++) dup = key_cmp(&p[i - 1], &p[i]) == 0;
    free(p);
    return dup;
}

static int parse_value(struct reader *r, struct lm_json *v, int depth);

static int parse_array(struct reader *r, struct lm_json *v, int depth) {
    size_t cap = 0;
    v->type = LM_JSON_ARRAY;
    v->arr.items = NULL;
    v->arr.n = 0;
    r->pos++;
    skip_ws(r);
    if (r->pos < r->n && r->s[r->pos] == ']') {
        r->pos++;
        return 0;
    }
    for (;;) {
        if (v->arr.n == cap) {
            cap = cap ? cap * 2 : 4;
            v->arr.items = lm_xrealloc(v->arr.items, cap * sizeof *v->arr.items);
        }
        struct lm_json *item = &v->arr.items[v->arr.n];
        if (parse_value(r, item, depth + 1) < 0) {
            lm_json_free(item);  /* not counted in n yet */
            return -1;
        }
        v->arr.n++;
        skip_ws(r);
        if (r->pos < r->n && r->s[r->pos] == ',') {
            r->pos++;
            continue;
        }
        if (r->pos < r->n && r->s[r->pos] == ']') {
            r->pos++;
            return 0;
        }
        return fail(r, "expected ',' or ']'");
    }
}

static int parse_object(struct reader *r, struct lm_json *v, int depth) {
    size_t cap = 0;
    v->type = LM_JSON_OBJECT;
    v->obj.members = NULL;
    v->obj.n = 0;
    r->pos++;
    skip_ws(r);
    if (r->pos < r->n && r->s[r->pos] == '}') {
        r->pos++;
        return 0;
    }
    for (;;) {
        skip_ws(r);
        if (r->pos >= r->n || r->s[r->pos] != '"') return fail(r, "expected a string key");
        if (v->obj.n == cap) {
            cap = cap ? cap * 2 : 4;
            v->obj.members = lm_xrealloc(v->obj.members, cap * sizeof *v->obj.members);
        }
        struct lm_json_member *m = &v->obj.members[v->obj.n];
        size_t key_pos = r->pos;
        if (parse_string(r, &m->key, &m->key_len) < 0) return -1;
        m->value.type = LM_JSON_NULL;
        v->obj.n++;  /* counted now so that a failure below frees the key */
        skip_ws(r);
        if (r->pos >= r->n || r->s[r->pos] != ':') return fail(r, "expected ':'");
        r->pos++;
        if (parse_value(r, &m->value, depth + 1) < 0) return -1;
        skip_ws(r);
        if (r->pos < r->n && r->s[r->pos] == ',') {
            r->pos++;
            continue;
        }
        if (r->pos < r->n && r->s[r->pos] == '}') {
            r->pos++;
            if (has_duplicate_key(v)) {
                r->pos = key_pos;
                return fail(r, "object has a repeated key");
            }
            return 0;
        }
        return fail(r, "expected ',' or '}'");
    }
}

static int parse_value(struct reader *r, struct lm_json *v, int depth) {
    v->type = LM_JSON_NULL;
    if (depth >= LM_JSON_MAX_DEPTH) return fail(r, "nested too deeply");
    skip_ws(r);
    if (r->pos >= r->n) return fail(r, "unexpected end of input");
    char c = r->s[r->pos];
    switch (c) {
    case '{': return parse_object(r, v, depth);
    case '[': return parse_array(r, v, depth);
    case '"':
        if (parse_string(r, &v->str.s, &v->str.len) < 0) return -1;
        v->type = LM_JSON_STRING;
        return 0;
    case 't':
    case 'f':
        if (literal(r, c == 't' ? "true" : "false")) {
            v->type = LM_JSON_BOOL;
            v->boolean = c == 't';
            return 0;
        }
        break;
    case 'n':
        if (literal(r, "null")) return 0;
        break;
    default:
        if (c == '-' || is_digit(c)) return parse_number(r, v);
    }
    return fail(r, "unexpected character");
}

int lm_json_parse(struct lm_json *v, const char *text, size_t len, struct lm_err *err) {
    struct reader r = {text, len, 0, err};
    if (parse_value(&r, v, 0) < 0) {
        lm_json_free(v);
        return -1;
    }
    skip_ws(&r);
    if (r.pos < r.n) {
        lm_json_free(v);
        return fail(&r, "unexpected text after the value");
    }
    return 0;
}

void lm_json_free(struct lm_json *v) {
    switch (v->type) {
    case LM_JSON_STRING: free(v->str.s); break;
    case LM_JSON_ARRAY:
        for (size_t i = 0; i < v->arr.n; i++) lm_json_free(&v->arr.items[i]);
        free(v->arr.items);
        break;
    case LM_JSON_OBJECT:
        for (size_t i = 0; i < v->obj.n; i++) {
            free(v->obj.members[i].key);
            lm_json_free(&v->obj.members[i].value);
        }
        free(v->obj.members);
        break;
    default: break;
    }
    v->type = LM_JSON_NULL;
}

const struct lm_json *lm_json_get(const struct lm_json *v, const char *key) {
    if (!v || v->type != LM_JSON_OBJECT) return NULL;
    size_t k = strlen(key);
    for (size_t i = 0; i < v->obj.n; i++)
        if (v->obj.members[i].key_len == k && !memcmp(v->obj.members[i].key, key, k)) return &v->obj.members[i].value;
    return NULL;
}

/* ---- writers ------------------------------------------------------------ */

void lm_json_write_str(struct lm_buf *b, const char *s, size_t n, bool ensure_ascii) {
    lm_buf_putc(b, '"');
    size_t run = 0;  /* start of the pending run of bytes copied as they are */
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        }
        uint32_t cp = c;
        size_t k = 1;
        if (c >= 0x80 && ensure_ascii) {
            k = lm_utf8_decode(s + i, n - i, &cp);
            if (cp >= LM_UNICODE_BAD) cp = 0xfffd;  /* not UTF-8: callers validate */
        }
        if (!esc && c >= 0x20 && (c < 0x7f || !ensure_ascii)) {
            i++;
            continue;
        }
        lm_buf_append(b, s + run, i - run);
        if (esc) lm_buf_puts(b, esc);
        else if (cp >= 0x10000)
            lm_buf_printf(b, "\\u%04x\\u%04x", 0xd800 + ((cp - 0x10000) >> 10), 0xdc00 + ((cp - 0x10000) & 0x3ff));
        else lm_buf_printf(b, "\\u%04x", cp);
        i += k;
        run = i;
    }
    lm_buf_append(b, s + run, n - run);
    lm_buf_putc(b, '"');
}

void lm_json_format_double(double f, char *out) {
    if (isnan(f)) {
        strcpy(out, "nan");
        return;
    }
    if (isinf(f)) {
        strcpy(out, f < 0 ? "-inf" : "inf");
        return;
    }
    /* Shortest precision that reads back as the same double. */
    char digits[40];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(digits, sizeof digits, "%.*e", prec - 1, f);
        if (strtod(digits, NULL) == f) break;
    }
    /* digits is "-d.ddde[+-]XX": take the mantissa digits and the exponent. */
    char mant[24];
    size_t nm = 0;
    const char *p = digits;
    bool neg = *p == '-';
    if (neg) p++;
    for (; *p && *p != 'e'; p++)
        if (*p != '.') mant[nm++] = *p;
    while (nm > 1 && mant[nm - 1] == '0') nm--;
    int exp = atoi(p + 1);
    char *o = out;
    if (neg) *o++ = '-';
    if (exp >= -4 && exp < 16) {  /* Python's repr switches to exponents outside this range */
        if (exp < 0) {
            *o++ = '0';
            *o++ = '.';
            for (int i = 0; i < -exp - 1; i++) *o++ = '0';
            for (size_t i = 0; i < nm; i++) *o++ = mant[i];
        } else {
            for (int i = 0; i <= exp; i++) *o++ = (size_t)i < nm ? mant[i] : '0';
            *o++ = '.';
            if ((size_t)exp + 1 < nm)
                for (size_t i = (size_t)exp + 1; i < nm; i++) *o++ = mant[i];
            else *o++ = '0';
        }
        *o = 0;
        return;
    }
    *o++ = mant[0];
    if (nm > 1) {
        *o++ = '.';
        for (size_t i = 1; i < nm; i++) *o++ = mant[i];
    }
    sprintf(o, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
}

static void write_value(struct lm_buf *b, const struct lm_json *v, int indent, int level) {
    switch (v->type) {
    case LM_JSON_NULL: lm_buf_puts(b, "null"); return;
    case LM_JSON_BOOL: lm_buf_puts(b, v->boolean ? "true" : "false"); return;
    case LM_JSON_NUMBER:
        if (v->num.is_int) lm_buf_printf(b, "%lld", (long long)v->num.i);
        else if (isnan(v->num.f)) lm_buf_puts(b, "NaN");
        else if (isinf(v->num.f)) lm_buf_puts(b, v->num.f < 0 ? "-Infinity" : "Infinity");
        else {
            char tmp[32];
            lm_json_format_double(v->num.f, tmp);
            lm_buf_puts(b, tmp);
        }
        return;
    case LM_JSON_STRING: lm_json_write_str(b, v->str.s, v->str.len, false); return;
    case LM_JSON_ARRAY:
    case LM_JSON_OBJECT: break;
    }
    bool arr = v->type == LM_JSON_ARRAY;
    size_t n = arr ? v->arr.n : v->obj.n;
    lm_buf_putc(b, arr ? '[' : '{');
    for (size_t i = 0; i < n; i++) {
        if (i) lm_buf_puts(b, indent < 0 ? ", " : ",");
        if (indent >= 0) lm_buf_printf(b, "\n%*s", indent * (level + 1), "");
        if (arr) write_value(b, &v->arr.items[i], indent, level + 1);
        else {
            lm_json_write_str(b, v->obj.members[i].key, v->obj.members[i].key_len, false);
            lm_buf_puts(b, ": ");
            write_value(b, &v->obj.members[i].value, indent, level + 1);
        }
    }
    if (indent >= 0 && n) lm_buf_printf(b, "\n%*s", indent * level, "");
    lm_buf_putc(b, arr ? ']' : '}');
}

void lm_json_write(struct lm_buf *b, const struct lm_json *v, int indent) {
    write_value(b, v, indent, 0);
}
