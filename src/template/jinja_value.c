/* Template values with Python's semantics: the arena they live in, str()
 * and repr() printing, equality and ordering, iteration, JSON in and out. */
#include "jinja_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena and errors --------------------------------------------------- */

struct arena_chunk {
    struct arena_chunk *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
};

void *jx_alloc(struct ctx *c, size_t n) {
    struct arena *a = &c->arena;
    n = (n + 15) & ~(size_t)15;
    if (n > a->cap - a->used) {
        jx_fail(c, NULL, "template needs more than %zu MiB of memory", a->cap >> 20);
        return NULL;
    }
    if (!a->head || a->head->size - a->head->used < n) {
        size_t size = n > 65536 ? n : 65536;
        struct arena_chunk *ch = lm_xmalloc(sizeof *ch + size);
        ch->next = a->head;
        ch->size = size;
        ch->used = 0;
        a->head = ch;
    }
    void *p = a->head->data + a->head->used;
    a->head->used += n;
    a->used += n;
    return p;
}

void jx_arena_free(struct arena *a) {
    while (a->head) {
        struct arena_chunk *next = a->head->next;
        free(a->head);
        a->head = next;
    }
    a->used = 0;
}

char *jx_strdup(struct ctx *c, const char *s, size_t n) {
    char *p = jx_alloc(c, n + 1);
    if (!p) return NULL;
    if (n) memcpy(p, s, n);
    p[n] = 0;
    return p;
}

int jx_fail(struct ctx *c, const struct node *n, const char *fmt, ...) {
    if (c->failed) return -1;
    c->failed = true;
    if (!n) n = c->at;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n) lm_errf(c->err, "line %u, column %u: %s", n->line, n->col, msg);
    else lm_errf(c->err, "%s", msg);
    return -1;
}

int jx_charge(struct ctx *c, uint64_t n) {
    c->steps += n;
    if (c->steps <= c->max_steps) return 0;
    return jx_fail(c, NULL, "template takes too long (more than %llu steps)", (unsigned long long)c->max_steps);
}

/* ---- strings ------------------------------------------------------------ */

int jx_sb_put(struct ctx *c, struct sb *b, const char *s, size_t n) {
    if (n > c->max_output || b->len > c->max_output - n)
        return jx_fail(c, NULL, "template output exceeds %zu bytes", c->max_output);
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        while (cap < b->len + n) cap *= 2;
        char *p = jx_alloc(c, cap);
        if (!p) return -1;
        if (b->len) memcpy(p, b->p, b->len);
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
    return 0;
}

int jx_sb_putc(struct ctx *c, struct sb *b, char ch) { return jx_sb_put(c, b, &ch, 1); }

int jx_sb_printf(struct ctx *c, struct sb *b, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    LM_ASSERT(k >= 0 && (size_t)k < sizeof tmp);  /* only used for short fixed formats */
    return jx_sb_put(c, b, tmp, (size_t)k);
}

size_t jx_utf8_len(const char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += ((unsigned char)s[i] & 0xc0) != 0x80;
    return k;
}

size_t jx_utf8_offset(const char *s, size_t n, size_t i) {
    size_t off = 0;
    for (; off < n; off++) {
        if (((unsigned char)s[off] & 0xc0) == 0x80) continue;
        if (i-- == 0) return off;
    }
    return n;
}

bool jx_utf8_valid(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += lm_utf8_decode(s + i, n - i, &cp);
        if (cp >= LM_UNICODE_BAD) return false;
    }
    return true;
}

/* ---- containers --------------------------------------------------------- */

struct list *jx_list_new(struct ctx *c, size_t n) {
    if (n > (SIZE_MAX - sizeof(struct list)) / sizeof(struct value)) {
        jx_fail(c, NULL, "list too large");
        return NULL;
    }
    struct list *l = jx_alloc(c, sizeof *l + n * sizeof(struct value));
    if (l) {
        l->n = n;
        l->consumed = false;
    }
    return l;
}

struct dict *jx_dict_new(struct ctx *c, size_t n) {
    struct dict *d = jx_alloc(c, sizeof *d);
    if (!d) return NULL;
    d->n = n;
    d->keys = jx_alloc(c, (n ? n : 1) * sizeof *d->keys);
    d->vals = jx_alloc(c, (n ? n : 1) * sizeof *d->vals);
    return d->keys && d->vals ? d : NULL;
}

/* Python hashes 1, 1.0 and True alike, so they are one key. */
long jx_dict_find(struct ctx *c, const struct dict *d, struct value key) {
    jx_charge(c, d->n / 8);
    for (size_t i = 0; i < d->n; i++) {
        struct value k = d->keys[i];
        if (k.type == V_STR && key.type == V_STR) {
            if (k.len == key.len && !memcmp(k.s, key.s, k.len)) return (long)i;
        } else if (jx_values_equal(c, k, key)) return (long)i;
    }
    return -1;
}

struct value *jx_ns_get(struct ns *ns, const char *name, size_t len) {
    for (size_t i = 0; i < ns->n; i++)
        if (ns->keys[i].len == len && !memcmp(ns->keys[i].s, name, len)) return &ns->vals[i];
    return NULL;
}

int jx_ns_set(struct ctx *c, struct ns *ns, struct value key, struct value v) {
    struct value *slot = jx_ns_get(ns, key.s, key.len);
    if (slot) {
        *slot = v;
        return 0;
    }
    if (ns->n == ns->cap) {
        size_t cap = ns->cap ? ns->cap * 2 : 4;
        struct value *k = jx_alloc(c, cap * sizeof *k), *vv = jx_alloc(c, cap * sizeof *vv);
        if (!k || !vv) return -1;
        if (ns->n) {
            memcpy(k, ns->keys, ns->n * sizeof *k);
            memcpy(vv, ns->vals, ns->n * sizeof *vv);
        }
        ns->keys = k;
        ns->vals = vv;
        ns->cap = cap;
    }
    ns->keys[ns->n] = key;
    ns->vals[ns->n++] = v;
    return 0;
}

int jx_lvec_push(struct ctx *c, struct lvec *l, struct value x) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        struct value *nv = jx_alloc(c, cap * sizeof *nv);
        if (!nv) return -1;
        if (l->n) memcpy(nv, l->v, l->n * sizeof *nv);
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = x;
    return jx_charge(c, 1);
}

int jx_lvec_value(struct ctx *c, struct lvec *l, bool tuple, struct value *out) {
    struct list *r = jx_list_new(c, l->n);
    if (!r) return -1;
    if (l->n) memcpy(r->items, l->v, l->n * sizeof *l->v);
    *out = v_list(r, tuple);
    return 0;
}

int jx_empty_gen(struct ctx *c, struct value *out) {
    struct list *l = jx_list_new(c, 0);
    *out = v_gen(l);
    return l ? 0 : -1;
}

/* ---- types -------------------------------------------------------------- */

static const char *vtype_name(int type, int flags) {
    switch (type) {
    case V_UNDEF: return "Undefined";
    case V_NONE: return "NoneType";
    case V_BOOL: return "bool";
    case V_INT: return "int";
    case V_FLOAT: return "float";
    case V_STR: return "str";
    case V_LIST:
        return flags & VF_TUPLE ? "tuple" : flags & VF_GEN ? "generator" : flags & VF_KEYS ? "dict_keys"
             : flags & VF_VALUES ? "dict_values" : flags & VF_ITEMS ? "dict_items" : "list";
    case V_DICT: return "dict";
    case V_NS: return "Namespace";
    case V_FUNC: return "function";
    case V_LOOP: return "LoopContext";
    }
    return "?";
}

const char *jx_type_name(struct value v) { return vtype_name(v.type, v.type == V_LIST ? v.flags : 0); }

bool jx_truthy(struct value v) {
    switch (v.type) {
    case V_UNDEF:
    case V_NONE: return false;
    case V_BOOL: return v.b;
    case V_INT: return v.i != 0;
    case V_FLOAT: return v.f != 0;
    case V_STR: return v.len > 0;
    case V_LIST: return v.list->n > 0 || (v.flags & VF_GEN);
    case V_DICT: return v.dict->n > 0;
    default: return true;
    }
}

bool jx_is_number(struct value v) { return v.type == V_BOOL || v.type == V_INT || v.type == V_FLOAT; }
double jx_num_as_double(struct value v) { return v.type == V_FLOAT ? v.f : v.type == V_BOOL ? (double)v.b : (double)v.i; }
static int64_t num_as_int(struct value v) { return v.type == V_BOOL ? v.b : v.i; }

struct value jx_v_undef_of(struct ctx *c, enum undef_kind kind, struct value obj, struct value key) {
    struct value u = {.type = V_UNDEF, .aux = (uint8_t)kind, .aux2 = obj.type};
    if (key.type == V_STR) {
        /* jinja2 words a missing string key like a missing attribute */
        if (kind == U_ITEM) u.aux = U_ATTR;
        u.s = key.s;
        u.len = key.len;
        return u;
    }
    struct sb b = {0};
    jx_to_repr(c, key, &b);
    u.aux = U_ITEM;
    u.s = b.p ? b.p : "";
    u.len = (uint32_t)b.len;
    return u;
}

void jx_undef_message(struct ctx *c, struct value u, struct sb *out) {
    const char *tn = vtype_name(u.aux2, 0);
    switch (u.aux) {
    case U_NAME: jx_sb_printf(c, out, "'%.*s' is undefined", (int)(u.len > 100 ? 100 : u.len), u.s); return;
    case U_ATTR:
        if (u.aux2 == V_NONE) jx_sb_printf(c, out, "'None' has no attribute '%.*s'", (int)(u.len > 100 ? 100 : u.len), u.s);
        else jx_sb_printf(c, out, "'%s object' has no attribute '%.*s'", tn, (int)(u.len > 100 ? 100 : u.len), u.s);
        return;
    case U_ITEM: jx_sb_printf(c, out, "'%s object' has no element %.*s", tn, (int)(u.len > 100 ? 100 : u.len), u.s); return;
    case U_UNSAFE: jx_sb_printf(c, out, "access to attribute '%.*s' of '%s' object is unsafe", (int)(u.len > 100 ? 100 : u.len), u.s, tn); return;
    default: jx_sb_put(c, out, u.s, u.len); return;
    }
}

int jx_fail_undefined(struct ctx *c, const struct node *at, struct value u) {
    struct sb b = {0};
    jx_undef_message(c, u, &b);
    return jx_fail(c, at, "%.*s", (int)b.len, b.p ? b.p : "");
}

/* ---- equality and order ------------------------------------------------- */

static bool enter(struct ctx *c) {
    if (++c->depth <= LM_TEMPLATE_MAX_DEPTH) return true;
    jx_fail(c, NULL, "values nested too deeply");
    return false;
}

bool jx_values_equal(struct ctx *c, struct value a, struct value b) {
    if (jx_is_number(a) && jx_is_number(b)) {
        if (a.type == V_FLOAT || b.type == V_FLOAT) return jx_num_as_double(a) == jx_num_as_double(b);
        return num_as_int(a) == num_as_int(b);
    }
    if (a.type != b.type) return false;
    switch (a.type) {
    case V_UNDEF:
    case V_NONE: return true;
    case V_STR: return a.len == b.len && !memcmp(a.s, b.s, a.len);
    case V_LIST: {
        if ((a.flags | b.flags) & (VF_GEN | VF_VALUES)) return a.list == b.list;  /* compared by identity */
        if (a.flags != b.flags || a.list->n != b.list->n) return false;
        if (!enter(c)) return false;
        bool eq = true;
        for (size_t i = 0; i < a.list->n && eq && !c->failed; i++) eq = jx_values_equal(c, a.list->items[i], b.list->items[i]);
        c->depth--;
        return eq;
    }
    case V_DICT: {
        if (a.dict->n != b.dict->n) return false;
        if (!enter(c)) return false;
        bool eq = true;
        for (size_t i = 0; i < a.dict->n && eq && !c->failed; i++) {
            long j = jx_dict_find(c, b.dict, a.dict->keys[i]);
            eq = j >= 0 && jx_values_equal(c, a.dict->vals[i], b.dict->vals[j]);
        }
        c->depth--;
        return eq;
    }
    case V_NS: return a.ns == b.ns;
    case V_FUNC: return a.fn == b.fn;
    case V_LOOP: return a.loop == b.loop;
    }
    return false;
}

static int memcmp_len(const char *a, size_t na, const char *b, size_t nb) {
    int r = memcmp(a, b, na < nb ? na : nb);
    if (r) return r < 0 ? -1 : 1;
    return na == nb ? 0 : na < nb ? -1 : 1;
}

int jx_values_compare(struct ctx *c, const struct node *at, struct value a, struct value b, int *res) {
    if (a.type == V_UNDEF) return jx_fail_undefined(c, at, a);
    if (b.type == V_UNDEF) return jx_fail_undefined(c, at, b);
    if (jx_is_number(a) && jx_is_number(b)) {
        if (a.type == V_FLOAT || b.type == V_FLOAT) {
            double x = jx_num_as_double(a), y = jx_num_as_double(b);
            *res = x < y ? -1 : x > y ? 1 : 0;  /* NaN compares as equal here, as a sort key */
        } else {
            int64_t x = num_as_int(a), y = num_as_int(b);
            *res = x < y ? -1 : x > y ? 1 : 0;
        }
        return 0;
    }
    if (a.type == V_STR && b.type == V_STR) {
        /* UTF-8 byte order is code point order */
        *res = memcmp_len(a.s, a.len, b.s, b.len);
        return 0;
    }
    if (a.type == V_LIST && b.type == V_LIST && a.flags == b.flags && !(a.flags & VF_OPAQUE)) {
        if (!enter(c)) return -1;
        for (size_t i = 0; i < a.list->n && i < b.list->n; i++) {
            if (jx_values_equal(c, a.list->items[i], b.list->items[i])) continue;
            int r = jx_values_compare(c, at, a.list->items[i], b.list->items[i], res);
            c->depth--;
            return r;
        }
        c->depth--;
        *res = a.list->n < b.list->n ? -1 : a.list->n > b.list->n ? 1 : 0;
        return c->failed ? -1 : 0;
    }
    return jx_fail(c, at, "'<' not supported between instances of '%s' and '%s'", jx_type_name(a), jx_type_name(b));
}

/* ---- printing ----------------------------------------------------------- */

/* Python's str.isprintable(): not Other (C*) nor a separator (Z*) but space. */
static bool py_printable(uint32_t cp) { return cp == ' ' || !(lm_unicode_flags(cp) & (LM_UC_OTHER | LM_UC_SEPARATOR)); }

static int repr_str(struct ctx *c, struct value v, struct sb *out) {
    bool has_sq = memchr(v.s, '\'', v.len) != NULL, has_dq = memchr(v.s, '"', v.len) != NULL;
    char q = has_sq && !has_dq ? '"' : '\'';
    if (v.flags & VF_MARKUP && jx_sb_put(c, out, "Markup(", 7) < 0) return -1;
    if (jx_sb_putc(c, out, q) < 0) return -1;
    for (size_t i = 0; i < v.len;) {
        uint32_t cp;
        size_t k = lm_utf8_decode(v.s + i, v.len - i, &cp);
        int r;
        if (cp == (uint32_t)q || cp == '\\') r = jx_sb_putc(c, out, '\\') < 0 ? -1 : jx_sb_putc(c, out, (char)cp);
        else if (cp == '\n') r = jx_sb_put(c, out, "\\n", 2);
        else if (cp == '\r') r = jx_sb_put(c, out, "\\r", 2);
        else if (cp == '\t') r = jx_sb_put(c, out, "\\t", 2);
        else if (py_printable(cp)) r = jx_sb_put(c, out, v.s + i, k);
        else if (cp < 0x100) r = jx_sb_printf(c, out, "\\x%02x", cp);
        else if (cp < 0x10000) r = jx_sb_printf(c, out, "\\u%04x", cp);
        else r = jx_sb_printf(c, out, "\\U%08x", cp);
        if (r < 0) return -1;
        i += k;
    }
    if (jx_sb_putc(c, out, q) < 0) return -1;
    return v.flags & VF_MARKUP ? jx_sb_putc(c, out, ')') : 0;
}

static int print_value(struct ctx *c, struct value v, struct sb *out, bool repr);

static int print_dict_items(struct ctx *c, const struct value *keys, const struct value *vals, size_t n, struct sb *out) {
    for (size_t i = 0; i < n; i++) {
        if (i && jx_sb_put(c, out, ", ", 2) < 0) return -1;
        if (print_value(c, keys[i], out, true) < 0 || jx_sb_put(c, out, ": ", 2) < 0) return -1;
        if (print_value(c, vals[i], out, true) < 0) return -1;
    }
    return 0;
}

static int print_value(struct ctx *c, struct value v, struct sb *out, bool repr) {
    char tmp[32];
    switch (v.type) {
    case V_UNDEF: return repr ? jx_sb_put(c, out, "Undefined", 9) : 0;
    case V_NONE: return jx_sb_put(c, out, "None", 4);
    case V_BOOL: return jx_sb_put(c, out, v.b ? "True" : "False", v.b ? 4 : 5);
    case V_INT: return jx_sb_printf(c, out, "%lld", (long long)v.i);
    case V_FLOAT: lm_json_format_double(v.f, tmp); return jx_sb_put(c, out, tmp, strlen(tmp));
    case V_STR: return repr ? repr_str(c, v, out) : jx_sb_put(c, out, v.s, v.len);
    case V_FUNC:
        if (v.fn->kind == F_MACRO)
            return jx_sb_printf(c, out, "<Macro '%.*s'>", (int)(v.fn->macro->name.len > 100 ? 100 : v.fn->macro->name.len),
                             v.fn->macro->name.s);
        return jx_sb_printf(c, out, "<built-in function %s>", v.fn->b->name);
    case V_LOOP: return jx_sb_printf(c, out, "<LoopContext %zu/%zu>", v.loop->i + 1, v.loop->items->n);
    default: break;
    }
    if (jx_charge(c, 1) < 0 || !enter(c)) return -1;
    int r = 0;
    if (v.type == V_LIST && (v.flags & VF_GEN)) r = jx_sb_put(c, out, "<generator object>", 18);
    else if (v.type == V_LIST) {
        bool tuple = v.flags & VF_TUPLE, view = v.flags & VF_OPAQUE;
        if (view) r = jx_sb_printf(c, out, "%s(", jx_type_name(v));
        if (r == 0) r = jx_sb_putc(c, out, tuple ? '(' : '[');
        for (size_t i = 0; i < v.list->n && r == 0; i++) {
            if (i) r = jx_sb_put(c, out, ", ", 2);
            if (r == 0) r = print_value(c, v.list->items[i], out, true);
        }
        if (r == 0 && tuple && v.list->n == 1) r = jx_sb_putc(c, out, ',');
        if (r == 0) r = jx_sb_putc(c, out, tuple ? ')' : ']');
        if (r == 0 && view) r = jx_sb_putc(c, out, ')');
    } else if (v.type == V_DICT) {
        r = jx_sb_putc(c, out, '{');
        if (r == 0) r = print_dict_items(c, v.dict->keys, v.dict->vals, v.dict->n, out);
        if (r == 0) r = jx_sb_putc(c, out, '}');
    } else if (v.type == V_NS) {
        r = jx_sb_put(c, out, "<Namespace {", 12);
        if (r == 0) r = print_dict_items(c, v.ns->keys, v.ns->vals, v.ns->n, out);
        if (r == 0) r = jx_sb_put(c, out, "}>", 2);
    }
    c->depth--;
    return r;
}

int jx_to_str(struct ctx *c, struct value v, struct sb *out) { return print_value(c, v, out, false); }
int jx_to_repr(struct ctx *c, struct value v, struct sb *out) { return print_value(c, v, out, true); }

int jx_str_of(struct ctx *c, struct value v, struct value *out) {
    if (v.type == V_STR) {
        *out = v;
        return 0;
    }
    struct sb b = {0};
    if (jx_to_str(c, v, &b) < 0) return -1;
    *out = sb_value(&b);
    return 0;
}

int jx_html_escape(struct ctx *c, struct value s, struct value *out) {
    if (s.flags & VF_MARKUP) {
        *out = s;
        return 0;
    }
    struct sb b = {0};
    for (size_t i = 0; i < s.len; i++) {
        const char *e = NULL;
        switch (s.s[i]) {
        case '&': e = "&amp;"; break;
        case '<': e = "&lt;"; break;
        case '>': e = "&gt;"; break;
        case '"': e = "&#34;"; break;
        case '\'': e = "&#39;"; break;
        }
        if (e ? jx_sb_put(c, &b, e, strlen(e)) : jx_sb_putc(c, &b, s.s[i])) return -1;
    }
    *out = sb_value(&b);
    out->flags = VF_MARKUP;
    return 0;
}

/* ---- iteration ---------------------------------------------------------- */

int jx_iterate(struct ctx *c, const struct node *at, struct value v, struct list **out) {
    switch (v.type) {
    case V_LIST:
        if (v.flags & VF_GEN) {
            if (v.list->consumed) return (*out = jx_list_new(c, 0)) ? 0 : -1;
            v.list->consumed = true;
        }
        *out = v.list;
        return 0;
    case V_UNDEF: return (*out = jx_list_new(c, 0)) ? 0 : -1;
    case V_DICT: {
        struct list *l = jx_list_new(c, v.dict->n);
        if (!l) return -1;
        memcpy(l->items, v.dict->keys, v.dict->n * sizeof *l->items);
        *out = l;
        return 0;
    }
    case V_STR: {
        struct list *l = jx_list_new(c, jx_utf8_len(v.s, v.len));
        if (!l) return -1;
        size_t k = 0;
        for (size_t i = 0; i < v.len; k++) {
            uint32_t cp;
            size_t len = lm_utf8_decode(v.s + i, v.len - i, &cp);
            l->items[k] = v_str(v.s + i, len);
            l->items[k].flags = v.flags;
            i += len;
        }
        *out = l;
        return jx_charge(c, l->n / 16);
    }
    default: return jx_fail(c, at, "'%s' object is not iterable", jx_type_name(v));
    }
}

/* ---- JSON --------------------------------------------------------------- */

/* Inputs built by hand (not parsed) may hold anything: check. */
static int check_utf8(struct ctx *c, const char *s, size_t n) {
    if (n > UINT32_MAX) return jx_fail(c, NULL, "input string too long");
    if (!jx_utf8_valid(s, n)) return jx_fail(c, NULL, "input text is not valid UTF-8");
    return jx_charge(c, n / 64);
}

int jx_from_json(struct ctx *c, const struct lm_json *j, struct value *out) {
    switch (j->type) {
    case LM_JSON_NULL: *out = v_none(); return 0;
    case LM_JSON_BOOL: *out = v_bool(j->boolean); return 0;
    case LM_JSON_NUMBER: *out = j->num.is_int ? v_int(j->num.i) : v_float(j->num.f); return 0;
    case LM_JSON_STRING:
        if (check_utf8(c, j->str.s, j->str.len) < 0) return -1;
        *out = v_str(j->str.s, j->str.len);
        return 0;
    case LM_JSON_ARRAY: {
        struct list *l = jx_list_new(c, j->arr.n);
        if (!l) return -1;
        for (size_t i = 0; i < j->arr.n; i++)
            if (jx_from_json(c, &j->arr.items[i], &l->items[i]) < 0) return -1;
        *out = v_list(l, false);
        return 0;
    }
    case LM_JSON_OBJECT: {
        struct dict *d = jx_dict_new(c, j->obj.n);
        if (!d) return -1;
        for (size_t i = 0; i < j->obj.n; i++) {
            if (check_utf8(c, j->obj.members[i].key, j->obj.members[i].key_len) < 0) return -1;
            d->keys[i] = v_str(j->obj.members[i].key, j->obj.members[i].key_len);
            if (jx_from_json(c, &j->obj.members[i].value, &d->vals[i]) < 0) return -1;
        }
        *out = (struct value){.type = V_DICT, .dict = d};
        return 0;
    }
    }
    return -1;
}

struct json_style {
    const char *indent;
    size_t indent_len;
    bool ensure_ascii, sort_keys;
    struct value item_sep, key_sep;
};

static int json_newline(struct ctx *c, const struct json_style *st, int level, struct sb *out) {
    if (jx_sb_putc(c, out, '\n') < 0) return -1;
    for (int i = 0; i < level; i++)
        if (jx_sb_put(c, out, st->indent, st->indent_len) < 0) return -1;
    return 0;
}

static int json_string(struct ctx *c, const char *s, size_t n, bool ensure_ascii, struct sb *out) {
    struct lm_buf tmp = {0};
    lm_json_write_str(&tmp, s, n, ensure_ascii);
    int r = jx_sb_put(c, out, tmp.data, tmp.len);
    lm_buf_free(&tmp);
    return r;
}

/* A dict key as json.dumps converts it: str as is, numbers, bools and None
 * to their JSON text. */
static int json_key(struct ctx *c, const struct node *at, struct value k, const struct json_style *st, struct sb *out) {
    char tmp[32];
    switch (k.type) {
    case V_STR: return json_string(c, k.s, k.len, st->ensure_ascii, out);
    case V_NONE: return json_string(c, "null", 4, false, out);
    case V_BOOL: return json_string(c, k.b ? "true" : "false", k.b ? 4 : 5, false, out);
    case V_INT: snprintf(tmp, sizeof tmp, "%lld", (long long)k.i); return json_string(c, tmp, strlen(tmp), false, out);
    case V_FLOAT:
        if (isnan(k.f)) strcpy(tmp, "NaN");
        else if (isinf(k.f)) strcpy(tmp, k.f < 0 ? "-Infinity" : "Infinity");
        else lm_json_format_double(k.f, tmp);
        return json_string(c, tmp, strlen(tmp), false, out);
    default: return jx_fail(c, at, "keys must be str, int, float, bool or None, not %s", jx_type_name(k));
    }
}

static int json_value(struct ctx *c, const struct node *at, struct value v, const struct json_style *st, int level, struct sb *out) {
    char tmp[32];
    switch (v.type) {
    case V_NONE: return jx_sb_put(c, out, "null", 4);
    case V_BOOL: return jx_sb_put(c, out, v.b ? "true" : "false", v.b ? 4 : 5);
    case V_INT: return jx_sb_printf(c, out, "%lld", (long long)v.i);
    case V_FLOAT:
        if (isnan(v.f)) return jx_sb_put(c, out, "NaN", 3);
        if (isinf(v.f)) return v.f < 0 ? jx_sb_put(c, out, "-Infinity", 9) : jx_sb_put(c, out, "Infinity", 8);
        lm_json_format_double(v.f, tmp);
        return jx_sb_put(c, out, tmp, strlen(tmp));
    case V_STR: return json_string(c, v.s, v.len, st->ensure_ascii, out);
    case V_LIST:
        if (v.flags & VF_OPAQUE) return jx_fail(c, at, "Object of type %s is not JSON serializable", jx_type_name(v));
        break;
    case V_DICT: break;
    default: return jx_fail(c, at, "Object of type %s is not JSON serializable", jx_type_name(v));
    }
    bool is_list = v.type == V_LIST;
    size_t n = is_list ? v.list->n : v.dict->n;
    if (n == 0) return jx_sb_put(c, out, is_list ? "[]" : "{}", 2);
    if (jx_charge(c, n) < 0 || !enter(c)) return -1;
    /* sort_keys: visit the pairs in key order (stable insertion sort is
     * enough for the few keys JSON objects in templates have; the step
     * budget bounds the rest). */
    size_t *order = NULL;
    if (!is_list && st->sort_keys) {
        if (!(order = jx_alloc(c, n * sizeof *order))) return -1;
        for (size_t i = 0; i < n; i++) {
            size_t j = i;
            for (; j > 0; j--) {
                int r;
                if (jx_values_compare(c, at, v.dict->keys[order[j - 1]], v.dict->keys[i], &r) < 0) return -1;
                if (r <= 0) break;
                order[j] = order[j - 1];
            }
            order[j] = i;
            if (jx_charge(c, i) < 0) return -1;
        }
    }
    int r = jx_sb_putc(c, out, is_list ? '[' : '{');
    for (size_t i = 0; i < n && r == 0; i++) {
        if (i) r = jx_sb_put(c, out, st->item_sep.s, st->item_sep.len);
        if (r == 0 && st->indent) r = json_newline(c, st, level + 1, out);
        if (r < 0) break;
        if (is_list) r = json_value(c, at, v.list->items[i], st, level + 1, out);
        else {
            size_t k = order ? order[i] : i;
            r = json_key(c, at, v.dict->keys[k], st, out);
            if (r == 0) r = jx_sb_put(c, out, st->key_sep.s, st->key_sep.len);
            if (r == 0) r = json_value(c, at, v.dict->vals[k], st, level + 1, out);
        }
    }
    if (r == 0 && st->indent) r = json_newline(c, st, level, out);
    if (r == 0) r = jx_sb_putc(c, out, is_list ? ']' : '}');
    c->depth--;
    return r;
}

int jx_to_json(struct ctx *c, const struct node *at, struct value v, const char *indent, size_t indent_len,
            bool ensure_ascii, struct value item_sep, struct value key_sep, bool sort_keys, struct sb *out) {
    struct json_style st = {indent, indent_len, ensure_ascii, sort_keys, item_sep, key_sep};
    return json_value(c, at, v, &st, 0, out);
}
