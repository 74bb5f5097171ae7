/* Python's str type: case mapping, methods, %-formatting. */
#include "jinja_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- characters --------------------------------------------------------- */

/* Simple case mapping for ASCII, Latin-1, Greek and Cyrillic; other
 * characters are left as they are. */
static uint32_t cp_upper(uint32_t cp) {
    if (cp >= 'a' && cp <= 'z') return cp - 32;
    if (cp < 0x80) return cp;
    if ((cp >= 0xe0 && cp <= 0xfe && cp != 0xf7)) return cp - 32;
    if (cp == 0xff) return 0x178;
    if (cp == 0xb5) return 0x39c;
    if (cp >= 0x100 && cp <= 0x17f && cp != 0x131 && cp != 0x138 && cp != 0x149) {
        bool odd_lower = (cp >= 0x100 && cp <= 0x137) || (cp >= 0x14a && cp <= 0x177);
        if (odd_lower) return cp & 1 ? cp - 1 : cp;
        if ((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17e)) return cp & 1 ? cp : cp - 1;
    }
    if (cp >= 0x3b1 && cp <= 0x3c9 && cp != 0x3c2) return cp - 32;
    if (cp == 0x3c2) return 0x3a3;
    if (cp >= 0x3ac && cp <= 0x3af) return cp == 0x3ac ? 0x386 : cp - 37;
    if (cp >= 0x430 && cp <= 0x44f) return cp - 32;
    if (cp >= 0x450 && cp <= 0x45f) return cp - 80;
    return cp;
}

static uint32_t cp_lower(uint32_t cp) {
    if (cp >= 'A' && cp <= 'Z') return cp + 32;
    if (cp < 0x80) return cp;
    if (cp >= 0xc0 && cp <= 0xde && cp != 0xd7) return cp + 32;
    if (cp == 0x178) return 0xff;
    if (cp >= 0x100 && cp <= 0x17f && cp != 0x130 && cp != 0x138 && cp != 0x149) {
        bool even_upper = (cp >= 0x100 && cp <= 0x137) || (cp >= 0x14a && cp <= 0x177);
        if (even_upper) return cp & 1 ? cp : cp + 1;
        if ((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17e)) return cp & 1 ? cp + 1 : cp;
    }
    if (cp >= 0x391 && cp <= 0x3a9 && cp != 0x3a2) return cp + 32;
    if (cp == 0x386) return 0x3ac;
    if (cp >= 0x388 && cp <= 0x38a) return cp + 37;
    if (cp >= 0x410 && cp <= 0x42f) return cp + 32;
    if (cp >= 0x400 && cp <= 0x40f) return cp + 80;
    return cp;
}

static bool cp_is_upper(uint32_t cp) { return cp_lower(cp) != cp; }
static bool cp_is_lower(uint32_t cp) { return cp_upper(cp) != cp || cp == 0xdf; }
static bool cp_cased(uint32_t cp) { return cp_is_upper(cp) || cp_is_lower(cp); }
bool jx_cp_is_alpha(uint32_t cp) {
    return (cp < 0x80 && ((cp | 32) >= 'a' && (cp | 32) <= 'z')) || cp_cased(cp) || (cp >= 0x80 && cp != 0xd7 && cp != 0xf7 && cp >= 0xc0 && cp < 0x2000);
}

/* Decodes the next code point of a valid UTF-8 string. */
uint32_t jx_next_cp(const char *s, size_t n, size_t *i) {
    uint32_t cp = 0;
    *i += lm_utf8_decode(s + *i, n - *i, &cp);
    return cp;
}

static int put_cp(struct ctx *c, struct sb *b, uint32_t cp) {
    char tmp[4];
    return jx_sb_put(c, b, tmp, lm_utf8_encode(cp, tmp));
}

static bool title_filter_sep(uint32_t cp) { return py_isspace(cp) || cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<'; }

int jx_map_case(struct ctx *c, struct value s, enum jx_case mode, struct value *out) {
    struct sb b = {0};
    bool prev_cased = false, first = true;
    for (size_t i = 0; i < s.len;) {
        uint32_t cp = jx_next_cp(s.s, s.len, &i), m;
        switch (mode) {
        case CASE_UPPER: m = cp_upper(cp); break;
        case CASE_LOWER: m = cp_lower(cp); break;
        case CASE_SWAP: m = cp_is_upper(cp) ? cp_lower(cp) : cp_upper(cp); break;
        case CASE_CAPITALIZE: m = first ? cp_upper(cp) : cp_lower(cp); break;
        case CASE_TITLE: m = prev_cased ? cp_lower(cp) : cp_upper(cp); break;
        default: m = prev_cased ? cp_lower(cp) : cp_upper(cp); break;  /* jinja's title filter */
        }
        if (mode == CASE_TITLE_FILTER) prev_cased = !title_filter_sep(cp);
        else prev_cased = cp_cased(cp);
        first = false;
        if (cp == 0xdf && (mode == CASE_UPPER || ((mode == CASE_CAPITALIZE || mode == CASE_TITLE) && m == 0xdf && !prev_cased))) {
            if (jx_sb_put(c, &b, "SS", 2) < 0) return -1;  /* Python: 'ß'.upper() == 'SS' */
            continue;
        }
        if (put_cp(c, &b, m) < 0) return -1;
    }
    *out = v_markup(sb_value(&b), s.flags & VF_MARKUP);
    return jx_charge(c, s.len / 16);
}

/* ---- Python str methods ------------------------------------------------- */

/* Python's start/end arguments (code point indices, negative from the end)
 * as a byte range of s. */
static int sub_range(struct ctx *c, const struct node *at, struct value s, struct value start, struct value end, size_t *b0, size_t *b1) {
    size_t n = jx_utf8_len(s.s, s.len);
    int64_t lo = 0, hi = (int64_t)n;
    if (start.type != V_UNDEF && start.type != V_NONE) {
        if (jx_want_int(c, at, "start", start, &lo) < 0) return -1;
        if (lo < 0) lo += (int64_t)n;
        if (lo < 0) lo = 0;
    }
    if (end.type != V_UNDEF && end.type != V_NONE) {
        if (jx_want_int(c, at, "end", end, &hi) < 0) return -1;
        if (hi < 0) hi += (int64_t)n;
        if (hi < 0) hi = 0;
    }
    if (lo > (int64_t)n) lo = (int64_t)n;
    if (hi > (int64_t)n) hi = (int64_t)n;
    if (hi < lo) hi = lo;
    bool ascii = n == s.len;
    *b0 = ascii ? (size_t)lo : jx_utf8_offset(s.s, s.len, (size_t)lo);
    *b1 = ascii ? (size_t)hi : jx_utf8_offset(s.s, s.len, (size_t)hi);
    return 0;
}

static const char *memfind(const char *h, size_t nh, const char *n, size_t nn) {
    if (nn == 0) return h;
    if (nn > nh) return NULL;
    return memmem(h, nh, n, nn);
}

static const char *memrfind(const char *h, size_t nh, const char *n, size_t nn) {
    if (nn > nh) return NULL;
    for (size_t i = nh - nn + 1; i-- > 0;)
        if (!memcmp(h + i, n, nn)) return h + i;
    return NULL;
}

static int m_startswith_endswith(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out, bool ends) {
    static const char *const params[] = {"prefix", "start", "end", NULL};
    struct value p[3] = {v_none(), v_none(), v_none()};
    if (jx_bind_args(c, at, ends ? "endswith" : "startswith", a, params, 1, p) < 0) return -1;
    size_t b0, b1;
    if (sub_range(c, at, self, p[1], p[2], &b0, &b1) < 0) return -1;
    const char *s = self.s + b0;
    size_t n = b1 - b0;
    struct value one[1] = {p[0]};
    const struct value *cands = one;
    size_t nc = 1;
    if (p[0].type == V_LIST && (p[0].flags & VF_TUPLE)) cands = p[0].list->items, nc = p[0].list->n;
    for (size_t i = 0; i < nc; i++) {
        struct value x = cands[i];
        if (x.type != V_STR)
            return jx_fail(c, at, "%s first arg must be str or a tuple of str, not %s", ends ? "endswith" : "startswith", jx_type_name(x));
        if (x.len <= n && !memcmp(ends ? s + n - x.len : s, x.s, x.len)) {
            *out = v_bool(true);
            return 0;
        }
    }
    *out = v_bool(false);
    return 0;
}
static int m_startswith(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) {
    return m_startswith_endswith(c, at, self, a, out, false);
}
static int m_endswith(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) {
    return m_startswith_endswith(c, at, self, a, out, true);
}

/* Is cp in the strip set (NULL chars: whitespace)? */
static bool in_chars(uint32_t cp, const struct value *chars) {
    if (!chars) return py_isspace(cp);
    for (size_t i = 0; i < chars->len;) {
        if (jx_next_cp(chars->s, chars->len, &i) == cp) return true;
    }
    return false;
}

/* Python's strip/lstrip/rstrip: which = 1 left, 2 right, 3 both. */
struct value jx_strip(struct value s, const struct value *chars, int which) {
    size_t b = 0, e = s.len;
    if (which & 1)
        while (b < e) {
            size_t i = b;
            if (!in_chars(jx_next_cp(s.s, s.len, &i), chars)) break;
            b = i;
        }
    if (which & 2)
        while (e > b) {
            size_t i = e - 1;
            while (i > b && ((unsigned char)s.s[i] & 0xc0) == 0x80) i--;
            size_t j = i;
            if (!in_chars(jx_next_cp(s.s, s.len, &j), chars)) break;
            e = i;
        }
    struct value r = v_str(s.s + b, e - b);
    r.flags = s.flags;
    return r;
}

static int do_strip(struct ctx *c, const struct node *at, const char *fname, struct value self, struct args *a, struct value *out, int which) {
    static const char *const params[] = {"chars", NULL};
    struct value p[1] = {v_none()};
    if (jx_bind_args(c, at, fname, a, params, 0, p) < 0) return -1;
    if (p[0].type != V_NONE && jx_want_str(c, at, "strip chars", p[0]) < 0) return -1;
    *out = jx_strip(self, p[0].type == V_NONE ? NULL : &p[0], which);
    return jx_charge(c, self.len / 32);
}
static int m_strip(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) {
    return do_strip(c, at, "strip", self, a, out, 3);
}
static int m_lstrip(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) {
    return do_strip(c, at, "lstrip", self, a, out, 1);
}
static int m_rstrip(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) {
    return do_strip(c, at, "rstrip", self, a, out, 2);
}

static int do_split(struct ctx *c, const struct node *at, const char *fname, struct value self, struct args *a, struct value *out, bool right) {
    static const char *const params[] = {"sep", "maxsplit", NULL};
    struct value p[2] = {v_none(), v_int(-1)};
    if (jx_bind_args(c, at, fname, a, params, 0, p) < 0) return -1;
    int64_t max = 0;
    if (jx_want_int(c, at, "maxsplit", p[1], &max) < 0) return -1;
    struct lvec parts = {0};
    const char *s = self.s;
    size_t n = self.len;
    if (p[0].type == V_NONE) {
        /* runs of whitespace separate; none at the ends */
        struct value rest = jx_strip(self, NULL, right ? 2 : 1);
        size_t b = (size_t)(rest.s - s), e = b + rest.len;
        if (!right) {
            while (b < e) {
                if (max >= 0 && (int64_t)parts.n == max) {
                    if (jx_lvec_push(c, &parts, v_substr(self, b, e)) < 0) return -1;
                    b = e;
                    break;
                }
                size_t i = b, w = b;
                while (i < e) {
                    size_t j = i;
                    if (py_isspace(jx_next_cp(s, n, &j))) break;
                    i = j;
                }
                w = i;
                if (jx_lvec_push(c, &parts, v_substr(self, b, w)) < 0) return -1;
                while (i < e) {
                    size_t j = i;
                    if (!py_isspace(jx_next_cp(s, n, &j))) break;
                    i = j;
                }
                b = i;
            }
        } else {
            /* collect from the right, then reverse */
            while (e > b) {
                if (max >= 0 && (int64_t)parts.n == max) {
                    if (jx_lvec_push(c, &parts, v_substr(self, b, e)) < 0) return -1;
                    break;
                }
                size_t i = e;
                while (i > b) {
                    size_t k = i - 1;
                    while (k > b && ((unsigned char)s[k] & 0xc0) == 0x80) k--;
                    size_t j = k;
                    if (py_isspace(jx_next_cp(s, n, &j))) break;
                    i = k;
                }
                if (jx_lvec_push(c, &parts, v_substr(self, i, e)) < 0) return -1;
                while (i > b) {
                    size_t k = i - 1;
                    while (k > b && ((unsigned char)s[k] & 0xc0) == 0x80) k--;
                    size_t j = k;
                    if (!py_isspace(jx_next_cp(s, n, &j))) break;
                    i = k;
                }
                e = i;
            }
            for (size_t i = 0; i < parts.n / 2; i++) {
                struct value t = parts.v[i];
                parts.v[i] = parts.v[parts.n - 1 - i];
                parts.v[parts.n - 1 - i] = t;
            }
        }
        return jx_lvec_value(c, &parts, false, out);
    }
    if (jx_want_str(c, at, "separator", p[0]) < 0) return -1;
    if (p[0].len == 0) return jx_fail(c, at, "empty separator");
    const char *sep = p[0].s;
    size_t ns = p[0].len;
    if (!right) {
        size_t b = 0;
        for (;;) {
            const char *hit = max >= 0 && (int64_t)parts.n == max ? NULL : memfind(s + b, n - b, sep, ns);
            if (!hit) break;
            if (jx_lvec_push(c, &parts, v_substr(self, b, (size_t)(hit - s))) < 0) return -1;
            b = (size_t)(hit - s) + ns;
        }
        if (jx_lvec_push(c, &parts, v_substr(self, b, n)) < 0) return -1;
    } else {
        size_t e = n;
        for (;;) {
            const char *hit = max >= 0 && (int64_t)parts.n == max ? NULL : memrfind(s, e, sep, ns);
            if (!hit) break;
            if (jx_lvec_push(c, &parts, v_substr(self, (size_t)(hit - s) + ns, e)) < 0) return -1;
            e = (size_t)(hit - s);
        }
        if (jx_lvec_push(c, &parts, v_substr(self, 0, e)) < 0) return -1;
        for (size_t i = 0; i < parts.n / 2; i++) {
            struct value t = parts.v[i];
            parts.v[i] = parts.v[parts.n - 1 - i];
            parts.v[parts.n - 1 - i] = t;
        }
    }
    return jx_lvec_value(c, &parts, false, out);
}
static int m_split(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) {
    return do_split(c, at, "split", self, a, out, false);
}
static int m_rsplit(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) {
    return do_split(c, at, "rsplit", self, a, out, true);
}

/* Line boundaries of str.splitlines(): length of the one at s[i], or 0. */
static size_t line_break_at(const char *s, size_t n, size_t i) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '\r') return i + 1 < n && s[i + 1] == '\n' ? 2 : 1;
    if (ch == '\n' || ch == 0x0b || ch == 0x0c || ch == 0x1c || ch == 0x1d || ch == 0x1e) return 1;
    if (ch >= 0x80) {
        size_t j = i;
        uint32_t cp = jx_next_cp(s, n, &j);
        if (cp == 0x85 || cp == 0x2028 || cp == 0x2029) return j - i;
    }
    return 0;
}

int jx_splitlines(struct ctx *c, struct value s, bool keepends, struct lvec *parts) {
    size_t b = 0;
    for (size_t i = 0; i < s.len;) {
        size_t k = line_break_at(s.s, s.len, i);
        if (!k) {
            i++;
            continue;
        }
        if (jx_lvec_push(c, parts, v_substr(s, b, keepends ? i + k : i)) < 0) return -1;
        i += k;
        b = i;
    }
    if (b < s.len && jx_lvec_push(c, parts, v_substr(s, b, s.len)) < 0) return -1;
    return 0;
}

static int m_splitlines(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) {
    static const char *const params[] = {"keepends", NULL};
    struct value p[1] = {v_bool(false)};
    if (jx_bind_args(c, at, "splitlines", a, params, 0, p) < 0) return -1;
    struct lvec parts = {0};
    if (jx_splitlines(c, self, jx_truthy(p[0]), &parts) < 0) return -1;
    return jx_lvec_value(c, &parts, false, out);
}

#define CASE_METHOD(fname, mode)                                                                          \
    static int m_##fname(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) { \
        if (jx_no_args(c, at, #fname, a) < 0) return -1;                                                      \
        return jx_map_case(c, self, mode, out);                                                               \
    }
CASE_METHOD(upper, CASE_UPPER)
CASE_METHOD(lower, CASE_LOWER)
CASE_METHOD(casefold, CASE_LOWER)
CASE_METHOD(swapcase, CASE_SWAP)
CASE_METHOD(capitalize, CASE_CAPITALIZE)
CASE_METHOD(title, CASE_TITLE)

int jx_str_replace(struct ctx *c, struct value s, struct value old, struct value new_, int64_t count, struct value *out) {
    struct sb b = {0};
    size_t i = 0;
    int64_t done = 0;
    if (old.len == 0) {
        /* Python inserts new before every character and at the end */
        while (count < 0 || done < count) {
            if (jx_sb_put(c, &b, new_.s, new_.len) < 0) return -1;
            done++;
            if (i >= s.len) break;
            size_t j = i;
            jx_next_cp(s.s, s.len, &j);
            if (jx_sb_put(c, &b, s.s + i, j - i) < 0) return -1;
            i = j;
        }
    } else {
        while (count < 0 || done < count) {
            const char *hit = memfind(s.s + i, s.len - i, old.s, old.len);
            if (!hit) break;
            if (jx_sb_put(c, &b, s.s + i, (size_t)(hit - s.s) - i) < 0 || jx_sb_put(c, &b, new_.s, new_.len) < 0) return -1;
            i = (size_t)(hit - s.s) + old.len;
            done++;
        }
    }
    if (jx_sb_put(c, &b, s.s + i, s.len - i) < 0) return -1;
    *out = sb_value(&b);
    return jx_charge(c, s.len / 16);
}

static int m_replace(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) {
    static const char *const params[] = {"old", "new", "count", NULL};
    struct value p[3] = {v_none(), v_none(), v_int(-1)};
    int64_t count = 0;
    if (jx_bind_args(c, at, "replace", a, params, 2, p) < 0 || jx_want_str(c, at, "replace old", p[0]) < 0 ||
        jx_want_str(c, at, "replace new", p[1]) < 0 || jx_want_int(c, at, "count", p[2], &count) < 0)
        return -1;
    if (self.flags & VF_MARKUP) {  /* Markup.replace escapes what it inserts */
        if (jx_html_escape(c, p[0], &p[0]) < 0 || jx_html_escape(c, p[1], &p[1]) < 0) return -1;
    }
    if (jx_str_replace(c, self, p[0], p[1], count, out) < 0) return -1;
    out->flags = self.flags & VF_MARKUP;
    return 0;
}

static int do_find(struct ctx *c, const struct node *at, const char *fname, struct value self, struct args *a, struct value *out,
                   bool right, bool raise) {
    static const char *const params[] = {"sub", "start", "end", NULL};
    struct value p[3] = {v_none(), v_none(), v_none()};
    size_t b0, b1;
    if (jx_bind_args(c, at, fname, a, params, 1, p) < 0 || jx_want_str(c, at, "substring", p[0]) < 0 ||
        sub_range(c, at, self, p[1], p[2], &b0, &b1) < 0)
        return -1;
    const char *hit = right ? memrfind(self.s + b0, b1 - b0, p[0].s, p[0].len) : memfind(self.s + b0, b1 - b0, p[0].s, p[0].len);
    if (!hit && raise) return jx_fail(c, at, "substring not found");
    *out = v_int(hit ? (int64_t)jx_utf8_len(self.s, (size_t)(hit - self.s)) : -1);
    return jx_charge(c, self.len / 16);
}
static int m_find(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) {
    return do_find(c, at, "find", self, a, out, false, false);
}
static int m_rfind(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) {
    return do_find(c, at, "rfind", self, a, out, true, false);
}
static int m_index(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) {
    return do_find(c, at, "index", self, a, out, false, true);
}
static int m_rindex(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) {
    return do_find(c, at, "rindex", self, a, out, true, true);
}

static int m_count(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) {
    static const char *const params[] = {"sub", "start", "end", NULL};
    struct value p[3] = {v_none(), v_none(), v_none()};
    size_t b0, b1;
    if (jx_bind_args(c, at, "count", a, params, 1, p) < 0 || jx_want_str(c, at, "substring", p[0]) < 0 ||
        sub_range(c, at, self, p[1], p[2], &b0, &b1) < 0)
        return -1;
    int64_t k = 0;
    if (p[0].len == 0) k = (int64_t)jx_utf8_len(self.s + b0, b1 - b0) + 1;
    else
        for (size_t i = b0;;) {
            const char *hit = memfind(self.s + i, b1 - i, p[0].s, p[0].len);
            if (!hit) break;
            k++;
            i = (size_t)(hit - self.s) + p[0].len;
        }
    *out = v_int(k);
    return jx_charge(c, self.len / 16);
}

static int m_join(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) {
    static const char *const params[] = {"iterable", NULL};
    struct value p[1];
    struct list *items;
    if (jx_bind_args(c, at, "join", a, params, 1, p) < 0 || jx_iterate(c, at, p[0], &items) < 0) return -1;
    struct sb b = {0};
    for (size_t i = 0; i < items->n; i++) {
        struct value x = items->items[i];
        if (x.type != V_STR) return jx_fail(c, at, "sequence item %zu: expected str instance, %s found", i, jx_type_name(x));
        if (self.flags & VF_MARKUP && jx_html_escape(c, x, &x) < 0) return -1;
        if ((i && jx_sb_put(c, &b, self.s, self.len) < 0) || jx_sb_put(c, &b, x.s, x.len) < 0) return -1;
    }
    *out = v_markup(sb_value(&b), self.flags & VF_MARKUP);
    return 0;
}

static int do_pad(struct ctx *c, const struct node *at, const char *fname, struct value self, struct args *a, struct value *out, int where) {
    static const char *const params[] = {"width", "fillchar", NULL};
    struct value p[2] = {v_none(), v_str(" ", 1)};
    int64_t width = 0;
    if (jx_bind_args(c, at, fname, a, params, 1, p) < 0 || jx_want_int(c, at, "width", p[0], &width) < 0 ||
        jx_want_str(c, at, "fillchar", p[1]) < 0)
        return -1;
    if (jx_utf8_len(p[1].s, p[1].len) != 1) return jx_fail(c, at, "the fill character must be exactly one character long");
    int64_t n = (int64_t)jx_utf8_len(self.s, self.len);
    if (width <= n) {
        *out = self;
        return 0;
    }
    if (width - n > (int64_t)c->max_output) return jx_fail(c, at, "template output exceeds %zu bytes", c->max_output);
    int64_t marg = width - n, left;
    if (where < 0) left = 0;
    else if (where > 0) left = marg;
    else left = marg / 2 + (marg & width & 1);
    struct sb b = {0};
    for (int64_t i = 0; i < left; i++)
        if (jx_sb_put(c, &b, p[1].s, p[1].len) < 0) return -1;
    if (jx_sb_put(c, &b, self.s, self.len) < 0) return -1;
    for (int64_t i = left; i < marg; i++)
        if (jx_sb_put(c, &b, p[1].s, p[1].len) < 0) return -1;
    *out = v_markup(sb_value(&b), self.flags & VF_MARKUP);
    return jx_charge(c, (uint64_t)marg / 16);
}
int jx_str_center(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) {
    return do_pad(c, at, "center", self, a, out, 0);
}
static int m_ljust(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) {
    return do_pad(c, at, "ljust", self, a, out, -1);
}
static int m_rjust(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) {
    return do_pad(c, at, "rjust", self, a, out, 1);
}

static int do_partition(struct ctx *c, const struct node *at, const char *fname, struct value self, struct args *a, struct value *out, bool right) {
    static const char *const params[] = {"sep", NULL};
    struct value p[1];
    if (jx_bind_args(c, at, fname, a, params, 1, p) < 0 || jx_want_str(c, at, "separator", p[0]) < 0) return -1;
    if (!p[0].len) return jx_fail(c, at, "empty separator");
    struct list *l = jx_list_new(c, 3);
    if (!l) return -1;
    const char *hit = right ? memrfind(self.s, self.len, p[0].s, p[0].len) : memfind(self.s, self.len, p[0].s, p[0].len);
    struct value empty = v_substr(self, 0, 0);
    if (!hit) {
        l->items[0] = right ? empty : self;
        l->items[1] = empty;
        l->items[2] = right ? self : empty;
    } else {
        size_t h = (size_t)(hit - self.s);
        l->items[0] = v_substr(self, 0, h);
        l->items[1] = p[0];
        l->items[2] = v_substr(self, h + p[0].len, self.len);
    }
    *out = v_list(l, true);
    return 0;
}
static int m_partition(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) {
    return do_partition(c, at, "partition", self, a, out, false);
}
static int m_rpartition(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) {
    return do_partition(c, at, "rpartition", self, a, out, true);
}

static int do_remove_affix(struct ctx *c, const struct node *at, const char *fname, struct value self, struct args *a, struct value *out, bool suffix) {
    static const char *const params[] = {"affix", NULL};
    struct value p[1];
    if (jx_bind_args(c, at, fname, a, params, 1, p) < 0 || jx_want_str(c, at, "argument", p[0]) < 0) return -1;
    *out = self;
    if (p[0].len <= self.len && !memcmp(suffix ? self.s + self.len - p[0].len : self.s, p[0].s, p[0].len))
        *out = suffix ? v_substr(self, 0, self.len - p[0].len) : v_substr(self, p[0].len, self.len);
    return 0;
}
static int m_removeprefix(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) {
    return do_remove_affix(c, at, "removeprefix", self, a, out, false);
}
static int m_removesuffix(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) {
    return do_remove_affix(c, at, "removesuffix", self, a, out, true);
}

static int m_zfill(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) {
    static const char *const params[] = {"width", NULL};
    struct value p[1];
    int64_t width = 0;
    if (jx_bind_args(c, at, "zfill", a, params, 1, p) < 0 || jx_want_int(c, at, "width", p[0], &width) < 0) return -1;
    int64_t n = (int64_t)jx_utf8_len(self.s, self.len);
    if (width <= n) {
        *out = self;
        return 0;
    }
    if (width - n > (int64_t)c->max_output) return jx_fail(c, at, "template output exceeds %zu bytes", c->max_output);
    struct sb b = {0};
    size_t sign = self.len && (self.s[0] == '+' || self.s[0] == '-');
    if (jx_sb_put(c, &b, self.s, sign) < 0) return -1;
    for (int64_t i = n; i < width; i++)
        if (jx_sb_putc(c, &b, '0') < 0) return -1;
    if (jx_sb_put(c, &b, self.s + sign, self.len - sign) < 0) return -1;
    *out = sb_value(&b);
    return 0;
}

/* isdigit, isalpha, ...: every character passes and there is at least one. */
enum charclass { CC_DIGIT, CC_ALPHA, CC_ALNUM, CC_SPACE };
static int char_test(struct ctx *c, const struct node *at, const char *fname, struct value self, struct args *a, struct value *out, enum charclass cc) {
    if (jx_no_args(c, at, fname, a) < 0) return -1;
    bool ok = self.len > 0;
    for (size_t i = 0; i < self.len && ok;) {
        uint32_t cp = jx_next_cp(self.s, self.len, &i);
        switch (cc) {
        case CC_DIGIT: ok = jx_cp_is_digit(cp); break;
        case CC_ALPHA: ok = jx_cp_is_alpha(cp); break;
        case CC_ALNUM: ok = jx_cp_is_alpha(cp) || jx_cp_is_digit(cp); break;
        case CC_SPACE: ok = py_isspace(cp); break;
        }
    }
    *out = v_bool(ok);
    return 0;
}
static int m_isdigit(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) {
    return char_test(c, at, "isdigit", self, a, out, CC_DIGIT);
}
static int m_isalpha(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) {
    return char_test(c, at, "isalpha", self, a, out, CC_ALPHA);
}
static int m_isalnum(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) {
    return char_test(c, at, "isalnum", self, a, out, CC_ALNUM);
}
static int m_isspace(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) {
    return char_test(c, at, "isspace", self, a, out, CC_SPACE);
}

/* isupper/islower: some cased character, and none of the other case. */
bool jx_str_case_is(struct value s, bool upper) {
    bool cased = false;
    for (size_t i = 0; i < s.len;) {
        uint32_t cp = jx_next_cp(s.s, s.len, &i);
        if (upper ? cp_is_lower(cp) : cp_is_upper(cp)) return false;
        cased |= cp_cased(cp);
    }
    return cased;
}
static int m_isupper(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) {
    if (jx_no_args(c, at, "isupper", a) < 0) return -1;
    *out = v_bool(jx_str_case_is(self, true));
    return 0;
}
static int m_islower(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) {
    if (jx_no_args(c, at, "islower", a) < 0) return -1;
    *out = v_bool(jx_str_case_is(self, false));
    return 0;
}

static int m_unsupported(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) {
    return jx_fail(c, at, "str.format is not supported");
}

static const struct builtin str_methods[] = {
    {"capitalize", m_capitalize}, {"casefold", m_casefold}, {"center", jx_str_center},       {"count", m_count},
    {"endswith", m_endswith},     {"find", m_find},         {"format", m_unsupported},  {"index", m_index},
    {"isalnum", m_isalnum},       {"isalpha", m_isalpha},   {"isdigit", m_isdigit},     {"islower", m_islower},
    {"isspace", m_isspace},       {"isupper", m_isupper},   {"join", m_join},           {"ljust", m_ljust},
    {"lower", m_lower},           {"lstrip", m_lstrip},     {"partition", m_partition}, {"removeprefix", m_removeprefix},
    {"removesuffix", m_removesuffix}, {"replace", m_replace}, {"rfind", m_rfind},       {"rindex", m_rindex},
    {"rjust", m_rjust},           {"rpartition", m_rpartition}, {"rsplit", m_rsplit},   {"rstrip", m_rstrip},
    {"split", m_split},           {"splitlines", m_splitlines}, {"startswith", m_startswith}, {"strip", m_strip},
    {"swapcase", m_swapcase},     {"title", m_title},       {"upper", m_upper},         {"zfill", m_zfill},
    {NULL, NULL},
};

const struct builtin *jx_find_str_method(const char *name, size_t len) {
    for (const struct builtin *b = str_methods; b->name; b++)
        if (strlen(b->name) == len && !memcmp(b->name, name, len)) return b;
    return NULL;
}

/* Python's fmt % args (printf-style): flags -+ 0#, width, precision (or
 * *), conversions s r a d i u f F e E g G x X o c %, and %(key)s with a
 * dict. */
int jx_py_percent_format(struct ctx *c, const struct node *at, struct value fmt, struct value args, struct value *out) {
    struct value one[1] = {args};
    const struct value *argv = one;
    size_t argc = 1, next = 0;
    bool by_key = args.type == V_DICT;
    if (args.type == V_LIST && (args.flags & VF_TUPLE)) argv = args.list->items, argc = args.list->n;
    struct sb b = {0};
    const char *s = fmt.s;
    size_t n = fmt.len;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            if (jx_sb_putc(c, &b, s[i]) < 0) return -1;
            continue;
        }
        if (++i >= n) return jx_fail(c, at, "incomplete format");
        struct value arg = {0};
        bool have_arg = false;
        if (s[i] == '(') {
            size_t e = i + 1;
            while (e < n && s[e] != ')') e++;
            if (e >= n) return jx_fail(c, at, "incomplete format key");
            if (!by_key) return jx_fail(c, at, "format requires a mapping");
            long k = jx_dict_find(c, args.dict, v_str(s + i + 1, e - i - 1));
            if (k < 0) return jx_fail(c, at, "format key '%.*s' not found", (int)(e - i - 1), s + i + 1);
            arg = args.dict->vals[k];
            have_arg = true;
            i = e + 1;
        }
        char spec[32] = "%";
        size_t sl = 1;
        while (i < n && strchr("-+ 0#", s[i]) && sl < 8) spec[sl++] = s[i++];
        for (int part = 0; part < 2; part++) {  /* width, then .precision */
            if (part == 1) {
                if (i >= n || s[i] != '.') break;
                spec[sl++] = s[i++];
            }
            if (i < n && s[i] == '*') {
                int64_t w = 0;
                if (next >= argc || jx_want_int(c, at, "* width", argv[next++], &w) < 0) return jx_fail(c, at, "not enough arguments for format string");
                if (w > 10000 || w < -10000) return jx_fail(c, at, "format width too large");
                sl += (size_t)snprintf(spec + sl, sizeof spec - sl, "%d", (int)w);
                i++;
            } else {
                size_t d0 = i;
                while (i < n && s[i] >= '0' && s[i] <= '9') i++;
                if (i - d0 > 4) return jx_fail(c, at, "format width too large");
                memcpy(spec + sl, s + d0, i - d0);
                sl += i - d0;
            }
        }
        while (i < n && (s[i] == 'l' || s[i] == 'h' || s[i] == 'L')) i++;  /* Python ignores length modifiers */
        if (i >= n) return jx_fail(c, at, "incomplete format");
        char conv = s[i];
        if (conv == '%') {
            if (jx_sb_putc(c, &b, '%') < 0) return -1;
            continue;
        }
        if (!have_arg) {
            if (by_key) return jx_fail(c, at, "format requires a mapping key");
            if (next >= argc) return jx_fail(c, at, "not enough arguments for format string");
            arg = argv[next++];
        }
        char tmp[512];
        if (strchr("sra", conv)) {
            struct sb sv = {0};
            if ((conv == 's' ? jx_to_str(c, arg, &sv) : jx_to_repr(c, arg, &sv)) < 0) return -1;
            /* width and precision count characters; pad by hand */
            int width = 0, prec = -1;
            bool left = strchr(spec, '-') != NULL;
            const char *w = spec + 1;
            while (*w && strchr("-+ 0#", *w)) w++;
            width = atoi(w);
            const char *dot = strchr(spec, '.');
            if (dot) prec = atoi(dot + 1);
            size_t len = sv.len, chars = jx_utf8_len(sv.p ? sv.p : "", sv.len);
            if (prec >= 0 && (size_t)prec < chars) len = jx_utf8_offset(sv.p, sv.len, (size_t)prec), chars = (size_t)prec;
            for (size_t k = chars; !left && (int)k < width; k++)
                if (jx_sb_putc(c, &b, ' ') < 0) return -1;
            if (jx_sb_put(c, &b, sv.p ? sv.p : "", len) < 0) return -1;
            for (size_t k = chars; left && (int)k < width; k++)
                if (jx_sb_putc(c, &b, ' ') < 0) return -1;
            continue;
        }
        if (strchr("diuxXoc", conv)) {
            int64_t v;
            if (conv == 'c' && arg.type == V_STR) {
                if (jx_utf8_len(arg.s, arg.len) != 1) return jx_fail(c, at, "%%c requires an int or a single character");
                if (jx_sb_put(c, &b, arg.s, arg.len) < 0) return -1;
                continue;
            }
            if (arg.type == V_FLOAT && strchr("diu", conv) && isfinite(arg.f) && fabs(arg.f) < 9.2e18) v = (int64_t)arg.f;
            else if (arg.type == V_INT || arg.type == V_BOOL) v = arg.type == V_INT ? arg.i : arg.b;
            else return jx_fail(c, at, "%%%c format: a real number is required, not %s", conv, jx_type_name(arg));
            if (conv == 'c') {
                if (v < 0 || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return jx_fail(c, at, "%%c arg not in range(0x110000)");
                if (put_cp(c, &b, (uint32_t)v) < 0) return -1;
                continue;
            }
            if (conv == 'd' || conv == 'i' || conv == 'u') {
                snprintf(spec + sl, sizeof spec - sl, "lld");
                snprintf(tmp, sizeof tmp, spec, (long long)v);
            } else {
                /* Python writes a negative hex/octal number as '-' and the magnitude */
                snprintf(spec + sl, sizeof spec - sl, "ll%c", conv);
                char digits[128];
                snprintf(digits, sizeof digits, spec, (unsigned long long)(v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v));
                snprintf(tmp, sizeof tmp, "%s%s", v < 0 ? "-" : "", digits);
            }
            if (jx_sb_put(c, &b, tmp, strlen(tmp)) < 0) return -1;
            continue;
        }
        if (strchr("fFeEgG", conv)) {
            if (!jx_is_number(arg)) return jx_fail(c, at, "must be real number, not %s", jx_type_name(arg));
            spec[sl++] = conv;
            spec[sl] = 0;
            snprintf(tmp, sizeof tmp, spec, jx_num_as_double(arg));
            if (jx_sb_put(c, &b, tmp, strlen(tmp)) < 0) return -1;
            continue;
        }
        return jx_fail(c, at, "unsupported format character '%c'", conv);
    }
    if (!by_key && next < argc) return jx_fail(c, at, "not all arguments converted during string formatting");
    *out = sb_value(&b);
    return 0;
}

