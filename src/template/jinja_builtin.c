/* What templates call: attribute and item access as jinja2's sandbox does
 * it, Python's str/dict/list methods, jinja2's filters and tests (plus
 * transformers' tojson), and the global functions. Semantics follow
 * jinja2/filters.py, tests.py, sandbox.py and CPython's str methods. */
#include "jinja_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_RANGE 100000  /* jinja2.sandbox.MAX_RANGE */

static struct value v_dict(struct dict *d) { return (struct value){.type = V_DICT, .dict = d}; }

/* ---- arguments ---------------------------------------------------------- */

int jx_bind_args(struct ctx *c, const struct node *at, const char *fname, struct args *a, const char *const *params,
              int n_required, struct value *out) {
    int n_params = 0;
    while (params[n_params]) n_params++;
    bool set[16] = {false};
    LM_ASSERT(n_params <= 16);
    if (a->n_pos > (size_t)n_params)
        return jx_fail(c, at, "%s() takes at most %d argument%s (%zu given)", fname, n_params, n_params == 1 ? "" : "s", a->n_pos);
    for (size_t i = 0; i < a->n_pos; i++) {
        out[i] = a->pos[i];
        set[i] = true;
    }
    for (size_t k = 0; k < a->n_kw; k++) {
        int i;
        for (i = 0; i < n_params; i++)
            if (strlen(params[i]) == a->kw_names[k].len && !memcmp(params[i], a->kw_names[k].s, a->kw_names[k].len)) break;
        if (i == n_params)
            return jx_fail(c, at, "%s() got an unexpected keyword argument '%.*s'", fname, (int)a->kw_names[k].len, a->kw_names[k].s);
        if (set[i]) return jx_fail(c, at, "%s() got multiple values for argument '%s'", fname, params[i]);
        out[i] = a->kw_vals[k];
        set[i] = true;
    }
    for (int i = 0; i < n_required; i++)
        if (!set[i]) return jx_fail(c, at, "%s() missing required argument '%s'", fname, params[i]);
    return 0;
}

int jx_no_args(struct ctx *c, const struct node *at, const char *fname, struct args *a) {
    static const char *const none[] = {NULL};
    return jx_bind_args(c, at, fname, a, none, 0, NULL);
}

int jx_want_int(struct ctx *c, const struct node *at, const char *what, struct value v, int64_t *out) {
    if (v.type == V_INT || v.type == V_BOOL) {
        *out = v.type == V_INT ? v.i : v.b;
        return 0;
    }
    return jx_fail(c, at, "%s must be an integer, not '%s'", what, jx_type_name(v));
}

int jx_want_str(struct ctx *c, const struct node *at, const char *what, struct value v) {
    return v.type == V_STR ? 0 : jx_fail(c, at, "%s must be a string, not '%s'", what, jx_type_name(v));
}

/* ---- dict and list methods ---------------------------------------------- */

static int m_get(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) {
    static const char *const params[] = {"key", "default", NULL};
    struct value p[2] = {v_none(), v_none()};
    if (jx_bind_args(c, at, "get", a, params, 1, p) < 0) return -1;
    long i = jx_dict_find(c, self.dict, p[0]);
    *out = i >= 0 ? self.dict->vals[i] : p[1];
    return 0;
}

static int dict_items(struct ctx *c, struct dict *d, struct value *out) {
    struct list *l = jx_list_new(c, d->n);
    if (!l) return -1;
    for (size_t i = 0; i < d->n; i++) {
        struct list *pair = jx_list_new(c, 2);
        if (!pair) return -1;
        pair->items[0] = d->keys[i];
        pair->items[1] = d->vals[i];
        l->items[i] = v_list(pair, true);
    }
    *out = v_list(l, false);
    return jx_charge(c, d->n);
}

static int m_items(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) {
    if (jx_no_args(c, at, "items", a) < 0 || dict_items(c, self.dict, out) < 0) return -1;
    out->flags = VF_ITEMS;
    return 0;
}

static int m_keys_values(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out, bool keys) {
    if (jx_no_args(c, at, keys ? "keys" : "values", a) < 0) return -1;
    struct list *l = jx_list_new(c, self.dict->n);
    if (!l) return -1;
    memcpy(l->items, keys ? self.dict->keys : self.dict->vals, self.dict->n * sizeof *l->items);
    *out = v_list(l, false);
    out->flags = keys ? VF_KEYS : VF_VALUES;
    return 0;
}
static int m_keys(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) {
    return m_keys_values(c, at, self, a, out, true);
}
static int m_values(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) {
    return m_keys_values(c, at, self, a, out, false);
}

static int m_copy(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) {
    if (jx_no_args(c, at, "copy", a) < 0) return -1;
    *out = self;  /* lists and dicts never change, so a copy can share */
    return 0;
}

static int m_list_index(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) {
    static const char *const params[] = {"value", NULL};
    struct value p[1];
    if (jx_bind_args(c, at, "index", a, params, 1, p) < 0) return -1;
    for (size_t i = 0; i < self.list->n; i++)
        if (jx_values_equal(c, self.list->items[i], p[0])) {
            *out = v_int((int64_t)i);
            return 0;
        }
    return jx_fail(c, at, "value is not in list");
}

static int m_list_count(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) {
    static const char *const params[] = {"value", NULL};
    struct value p[1];
    if (jx_bind_args(c, at, "count", a, params, 1, p) < 0) return -1;
    int64_t k = 0;
    for (size_t i = 0; i < self.list->n; i++) k += jx_values_equal(c, self.list->items[i], p[0]);
    *out = v_int(k);
    return jx_charge(c, self.list->n);
}

static const struct builtin dict_methods[] = {
    {"copy", m_copy}, {"get", m_get}, {"items", m_items}, {"keys", m_keys}, {"values", m_values}, {NULL, NULL},
};
static const struct builtin list_methods[] = {
    {"copy", m_copy}, {"count", m_list_count}, {"index", m_list_index}, {NULL, NULL},
};
/* Methods that would modify: the immutable sandbox refuses them. */
static const char *const dict_unsafe[] = {"clear", "pop", "popitem", "setdefault", "update", NULL};
static const char *const list_unsafe[] = {"append", "clear", "pop", "reverse", "insert", "sort", "extend", "remove", NULL};

static const struct builtin *find_builtin(const struct builtin *table, const char *name, size_t len) {
    for (; table->name; table++)
        if (strlen(table->name) == len && !memcmp(table->name, name, len)) return table;
    return NULL;
}

static bool in_names(const char *const *names, struct value key) {
    for (; *names; names++)
        if (strlen(*names) == key.len && !memcmp(*names, key.s, key.len)) return true;
    return false;
}

static int bound(struct ctx *c, const struct builtin *b, struct value self, struct value *out) {
    struct func *f = jx_alloc(c, sizeof *f);
    if (!f) return -1;
    memset(f, 0, sizeof *f);
    f->kind = F_BUILTIN;
    f->b = b;
    f->self = self;
    *out = (struct value){.type = V_FUNC, .fn = f};
    return 0;
}

/* ---- loop --------------------------------------------------------------- */

static int m_cycle(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) {
    if (a->n_kw || !a->n_pos) return jx_fail(c, at, "loop.cycle() needs positional arguments");
    *out = a->pos[self.loop->i % a->n_pos];
    return 0;
}
static const struct builtin loop_cycle = {"cycle", m_cycle};

static int loop_attr(struct ctx *c, struct value obj, struct value name, struct value *out) {
    const struct loop *l = obj.loop;
    size_t n = l->items->n, i = l->i;
#define IS(lit) (name.len == strlen(lit) && !memcmp(name.s, lit, name.len))
    if (IS("index")) *out = v_int((int64_t)i + 1);
    else if (IS("index0")) *out = v_int((int64_t)i);
    else if (IS("revindex")) *out = v_int((int64_t)(n - i));
    else if (IS("revindex0")) *out = v_int((int64_t)(n - i - 1));
    else if (IS("first")) *out = v_bool(i == 0);
    else if (IS("last")) *out = v_bool(i + 1 == n);
    else if (IS("length")) *out = v_int((int64_t)n);
    else if (IS("depth")) *out = v_int(1);
    else if (IS("depth0")) *out = v_int(0);
    else if (IS("previtem"))
        *out = i > 0 ? l->items->items[i - 1] : (struct value){.type = V_UNDEF, .aux = U_HINT, .s = "there is no previous item", .len = 25};
    else if (IS("nextitem"))
        *out = i + 1 < n ? l->items->items[i + 1] : (struct value){.type = V_UNDEF, .aux = U_HINT, .s = "there is no next item", .len = 21};
    else if (IS("cycle")) return bound(c, &loop_cycle, obj, out);
    else *out = jx_v_undef_of(c, U_ATTR, obj, name);
#undef IS
    return 0;
}

/* ---- attribute and item access ------------------------------------------ */

/* Python attributes of the value (methods), as the sandbox exposes them:
 * 1 found (out set), 0 none. */
static int py_attr(struct ctx *c, struct value obj, struct value name, struct value *out) {
    const struct builtin *b = NULL;
    if (obj.type == V_STR) b = jx_find_str_method(name.s, name.len);
    else if (obj.type == V_DICT) {
        b = find_builtin(dict_methods, name.s, name.len);
        if (!b && in_names(dict_unsafe, name)) {
            *out = jx_v_undef_of(c, U_UNSAFE, obj, name);
            return 1;
        }
    } else if (obj.type == V_LIST && !(obj.flags & VF_OPAQUE)) {
        b = find_builtin(list_methods, name.s, name.len);
        if (!b && in_names(list_unsafe, name)) {
            *out = jx_v_undef_of(c, U_UNSAFE, obj, name);
            return 1;
        }
    } else if (obj.type == V_LOOP) {
        loop_attr(c, obj, name, out);
        return out->type != V_UNDEF || out->aux == U_HINT;
    } else if (obj.type == V_NS) {
        struct value *v = jx_ns_get(obj.ns, name.s, name.len);
        if (v) *out = *v;
        return v != NULL;
    }
    if (!b) return 0;
    return bound(c, b, obj, out) < 0 ? -1 : 1;
}

int jx_get_attr(struct ctx *c, const struct node *at, struct value obj, struct value name, struct value *out) {
    if (obj.type == V_UNDEF) return jx_fail_undefined(c, at, obj);
    int r = py_attr(c, obj, name, out);
    if (r) return r < 0 ? -1 : 0;
    if (obj.type == V_DICT) {
        long i = jx_dict_find(c, obj.dict, name);
        if (i >= 0) {
            *out = obj.dict->vals[i];
            return 0;
        }
    }
    *out = jx_v_undef_of(c, U_ATTR, obj, name);
    return 0;
}

int jx_get_item(struct ctx *c, const struct node *at, struct value obj, struct value key, struct value *out) {
    if (obj.type == V_UNDEF) return jx_fail_undefined(c, at, obj);
    if (obj.type == V_DICT) {
        long i = jx_dict_find(c, obj.dict, key);
        if (i >= 0) {
            *out = obj.dict->vals[i];
            return 0;
        }
    } else if (((obj.type == V_LIST && !(obj.flags & VF_OPAQUE)) || obj.type == V_STR) && (key.type == V_INT || key.type == V_BOOL)) {
        int64_t i = key.type == V_INT ? key.i : key.b;
        bool ascii = obj.type == V_STR && jx_utf8_len(obj.s, obj.len) == obj.len;
        int64_t n = obj.type == V_LIST ? (int64_t)obj.list->n : ascii ? (int64_t)obj.len : (int64_t)jx_utf8_len(obj.s, obj.len);
        if (i < 0) i += n;
        if (i >= 0 && i < n) {
            if (obj.type == V_LIST) *out = obj.list->items[i];
            else {
                size_t b = ascii ? (size_t)i : jx_utf8_offset(obj.s, obj.len, (size_t)i), e = b;
                jx_next_cp(obj.s, obj.len, &e);
                *out = v_substr(obj, b, e);
            }
            return 0;
        }
    }
    if (key.type == V_STR) {
        int r = py_attr(c, obj, key, out);
        if (r) return r < 0 ? -1 : 0;
    }
    *out = jx_v_undef_of(c, U_ITEM, obj, key);
    return 0;
}

/* ---- filters ------------------------------------------------------------ */

#define FILTER(name) static int f_##name(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out)

static int soft_str(struct ctx *c, struct value v, struct value *out) { return jx_str_of(c, v, out); }

FILTER(abs) {
    if (jx_no_args(c, at, "abs", a) < 0) return -1;
    if (self.type == V_FLOAT) *out = v_float(fabs(self.f));
    else if (self.type == V_INT || self.type == V_BOOL) {
        int64_t i = self.type == V_INT ? self.i : self.b;
        if (i == INT64_MIN) return jx_fail(c, at, "integer overflow");
        *out = v_int(i < 0 ? -i : i);
    } else return jx_fail(c, at, "bad operand type for abs(): '%s'", jx_type_name(self));
    return 0;
}

FILTER(attr) {
    static const char *const params[] = {"name", NULL};
    struct value p[1];
    if (jx_bind_args(c, at, "attr", a, params, 1, p) < 0 || jx_want_str(c, at, "attribute name", p[0]) < 0) return -1;
    return jx_get_attr(c, at, self, p[0], out);
}

static int str_filter(struct ctx *c, const struct node *at, const char *fname, struct value self, struct args *a, struct value *out, enum jx_case mode) {
    if (jx_no_args(c, at, fname, a) < 0 || soft_str(c, self, &self) < 0) return -1;
    return jx_map_case(c, self, mode, out);
}
FILTER(batch) {
    static const char *const params[] = {"linecount", "fill_with", NULL};
    struct value p[2] = {v_none(), v_none()};
    int64_t k = 0;
    struct list *l;
    bool fill;
    if (jx_bind_args(c, at, "batch", a, params, 1, p) < 0 || jx_want_int(c, at, "linecount", p[0], &k) < 0 ||
        jx_iterate(c, at, self, &l) < 0)
        return -1;
    if (k <= 0) return jx_fail(c, at, "batch() needs a positive line count");
    fill = p[1].type != V_NONE;
    size_t nb = (l->n + (size_t)k - 1) / (size_t)k;
    struct list *r = jx_list_new(c, nb);
    if (!r) return -1;
    for (size_t b = 0; b < nb; b++) {
        size_t start = b * (size_t)k, len = l->n - start < (size_t)k ? l->n - start : (size_t)k;
        struct list *row = jx_list_new(c, fill ? (size_t)k : len);
        if (!row) return -1;
        for (size_t i = 0; i < row->n; i++) row->items[i] = i < len ? l->items[start + i] : p[1];
        r->items[b] = v_list(row, false);
    }
    *out = v_gen(r);
    return jx_charge(c, l->n);
}

FILTER(capitalize) { return str_filter(c, at, "capitalize", self, a, out, CASE_CAPITALIZE); }
FILTER(lower) { return str_filter(c, at, "lower", self, a, out, CASE_LOWER); }
FILTER(upper) { return str_filter(c, at, "upper", self, a, out, CASE_UPPER); }
FILTER(title) { return str_filter(c, at, "title", self, a, out, CASE_TITLE_FILTER); }

FILTER(center) {
    static const char *const params[] = {"width", NULL};
    struct value p[1] = {v_int(80)};
    if (jx_bind_args(c, at, "center", a, params, 0, p) < 0 || soft_str(c, self, &self) < 0) return -1;
    struct args pa = {.pos = p, .n_pos = 1};
    return jx_str_center(c, at, self, &pa, out);
}

static int length_of(struct ctx *c, const struct node *at, struct value v, int64_t *n) {
    switch (v.type) {
    case V_UNDEF: *n = 0; return 0;
    case V_STR: *n = (int64_t)jx_utf8_len(v.s, v.len); return 0;
    case V_LIST:
        if (v.flags & VF_GEN) break;
        *n = (int64_t)v.list->n;
        return 0;
    case V_DICT: *n = (int64_t)v.dict->n; return 0;
    case V_LOOP: *n = (int64_t)v.loop->items->n; return 0;
    default: break;
    }
    return jx_fail(c, at, "object of type '%s' has no len()", jx_type_name(v));
}

FILTER(length) {
    int64_t n = 0;
    if (jx_no_args(c, at, "length", a) < 0 || length_of(c, at, self, &n) < 0) return -1;
    *out = v_int(n);
    return 0;
}

FILTER(default) {
    static const char *const params[] = {"default_value", "boolean", NULL};
    struct value p[2] = {v_str("", 0), v_bool(false)};
    if (jx_bind_args(c, at, "default", a, params, 0, p) < 0) return -1;
    *out = self.type == V_UNDEF || (jx_truthy(p[1]) && !jx_truthy(self)) ? p[0] : self;
    return 0;
}

FILTER(escape) {
    if (jx_no_args(c, at, "escape", a) < 0 || soft_str(c, self, &self) < 0) return -1;
    return jx_html_escape(c, self, out);
}

FILTER(format) {
    if (a->n_pos && a->n_kw) return jx_fail(c, at, "can't handle positional and keyword arguments at the same time");
    if (soft_str(c, self, &self) < 0) return -1;
    struct value args;
    if (a->n_kw) {
        struct dict *d = jx_dict_new(c, a->n_kw);
        if (!d) return -1;
        memcpy(d->keys, a->kw_names, a->n_kw * sizeof *d->keys);
        memcpy(d->vals, a->kw_vals, a->n_kw * sizeof *d->vals);
        args = v_dict(d);
    } else {
        struct list *l = jx_list_new(c, a->n_pos);
        if (!l) return -1;
        if (a->n_pos) memcpy(l->items, a->pos, a->n_pos * sizeof *l->items);
        args = v_list(l, true);
    }
    return jx_py_percent_format(c, at, self, args, out);
}

FILTER(forceescape) {
    if (jx_no_args(c, at, "forceescape", a) < 0 || soft_str(c, self, &self) < 0) return -1;
    self.flags = 0;
    return jx_html_escape(c, self, out);
}

FILTER(first) {
    struct list *l;
    if (jx_no_args(c, at, "first", a) < 0 || jx_iterate(c, at, self, &l) < 0) return -1;
    *out = l->n ? l->items[0] : (struct value){.type = V_UNDEF, .aux = U_HINT, .s = "No first item, sequence was empty.", .len = 34};
    return 0;
}

FILTER(last) {
    struct list *l;
    if (jx_no_args(c, at, "last", a) < 0 || jx_iterate(c, at, self, &l) < 0) return -1;
    *out = l->n ? l->items[l->n - 1] : (struct value){.type = V_UNDEF, .aux = U_HINT, .s = "No last item, sequence was empty.", .len = 33};
    return 0;
}

/* Python's float() of a string: optional whitespace, sign, digits with
 * single underscores, inf/nan. */
static bool parse_py_float(struct value s, double *out) {
    char tmp[128];
    size_t n = 0;
    struct value t = jx_strip(s, NULL, 3);
    if (!t.len || t.len >= sizeof tmp) return false;
    for (size_t i = 0; i < t.len; i++) {
        if (t.s[i] == '_') {
            if (!i || i + 1 >= t.len || !jx_cp_is_digit((unsigned char)t.s[i - 1]) || !jx_cp_is_digit((unsigned char)t.s[i + 1])) return false;
            continue;
        }
        tmp[n++] = t.s[i];
    }
    tmp[n] = 0;
    const char *p = tmp + (tmp[0] == '+' || tmp[0] == '-');
    if (!strcasecmp(p, "inf") || !strcasecmp(p, "infinity") || !strcasecmp(p, "nan")) {
        *out = strtod(tmp, NULL);
        return true;
    }
    if (strpbrk(tmp, "xXpP") || !strpbrk(tmp, "0123456789")) return false;  /* no hex floats */
    char *end;
    *out = strtod(tmp, &end);
    return *end == 0;
}

FILTER(float) {
    static const char *const params[] = {"default", NULL};
    struct value p[1] = {v_float(0.0)};
    if (jx_bind_args(c, at, "float", a, params, 0, p) < 0) return -1;
    double f;
    if (jx_is_number(self)) *out = v_float(jx_num_as_double(self));
    else if (self.type == V_STR && parse_py_float(self, &f)) *out = v_float(f);
    else *out = p[0];
    return 0;
}

static bool hex_digit_or_letter(char ch) { return (ch | 32) >= 'a' && (ch | 32) <= 'z'; }

/* Python's int(str, base) (base 10 or as given). */
static bool parse_py_int(struct value s, int64_t base, int64_t *out) {
    struct value t = jx_strip(s, NULL, 3);
    char tmp[96];
    size_t n = 0;
    if (!t.len || t.len >= sizeof tmp) return false;
    for (size_t i = 0; i < t.len; i++) {
        if (t.s[i] == '_') {
            if (!i || i + 1 >= t.len || t.s[i + 1] == '_') return false;
            continue;
        }
        tmp[n++] = t.s[i];
    }
    tmp[n] = 0;
    const char *p = tmp + (tmp[0] == '+' || tmp[0] == '-');
    if (!*p || !(jx_cp_is_digit((unsigned char)*p) || (base > 10 && hex_digit_or_letter(*p)))) return false;
    char *end;
    errno = 0;
    long long v = strtoll(tmp, &end, (int)base);
    if (*end || errno) return false;
    *out = v;
    return true;
}

FILTER(int) {
    static const char *const params[] = {"default", "base", NULL};
    struct value p[2] = {v_int(0), v_int(10)};
    int64_t base = 10, i = 0;
    double f;
    if (jx_bind_args(c, at, "int", a, params, 0, p) < 0 || jx_want_int(c, at, "base", p[1], &base) < 0) return -1;
    if (base < 2 || base > 36) return jx_fail(c, at, "int() base must be >= 2 and <= 36");
    if (self.type == V_INT || self.type == V_BOOL) *out = v_int(self.type == V_INT ? self.i : self.b);
    else if (self.type == V_FLOAT && isfinite(self.f) && fabs(self.f) < 9.2e18) *out = v_int((int64_t)self.f);
    else if (self.type == V_STR && parse_py_int(self, base, &i)) *out = v_int(i);
    else if (self.type == V_STR && parse_py_float(self, &f) && isfinite(f) && fabs(f) < 9.2e18) *out = v_int((int64_t)f);
    else *out = p[0];
    return 0;
}

FILTER(indent) {
    static const char *const params[] = {"width", "first", "blank", NULL};
    struct value p[3] = {v_int(4), v_bool(false), v_bool(false)};
    if (jx_bind_args(c, at, "indent", a, params, 0, p) < 0 || soft_str(c, self, &self) < 0) return -1;
    struct value ind;
    struct sb ib = {0};
    if (p[0].type == V_STR) ind = p[0];
    else {
        int64_t w = 0;
        if (jx_want_int(c, at, "width", p[0], &w) < 0) return -1;
        for (int64_t i = 0; i < w; i++)
            if (jx_sb_putc(c, &ib, ' ') < 0) return -1;
        ind = sb_value(&ib);
    }
    /* s += "\n", then split into lines (the extra newline makes a trailing
     * newline produce an empty last line, as jinja2 intends) */
    struct sb sb = {0};
    if (jx_sb_put(c, &sb, self.s, self.len) < 0 || jx_sb_putc(c, &sb, '\n') < 0) return -1;
    struct lvec lines = {0};
    if (jx_splitlines(c, sb_value(&sb), false, &lines) < 0) return -1;
    struct sb b = {0};
    if (jx_truthy(p[1]) && jx_sb_put(c, &b, ind.s, ind.len) < 0) return -1;
    for (size_t i = 0; i < lines.n; i++) {
        struct value ln = lines.v[i];
        if (i && jx_sb_putc(c, &b, '\n') < 0) return -1;
        if (i && (jx_truthy(p[2]) || ln.len) && jx_sb_put(c, &b, ind.s, ind.len) < 0) return -1;
        if (jx_sb_put(c, &b, ln.s, ln.len) < 0) return -1;
    }
    *out = v_markup(sb_value(&b), self.flags & VF_MARKUP);
    return 0;
}

FILTER(items) {
    if (jx_no_args(c, at, "items", a) < 0) return -1;
    if (self.type == V_UNDEF) return jx_empty_gen(c, out);
    if (self.type != V_DICT) return jx_fail(c, at, "Can only get item pairs from a mapping.");
    if (dict_items(c, self.dict, out) < 0) return -1;
    *out = v_gen(out->list);
    return 0;
}

/* make_attrgetter: "a.b.0" looked up item by item (digits as integers). */
static int attr_path(struct ctx *c, const struct node *at, struct value item, struct value path, struct value *out) {
    if (path.type != V_STR) return jx_get_item(c, at, item, path, out);
    size_t b = 0;
    for (;;) {
        size_t e = b;
        while (e < path.len && path.s[e] != '.') e++;
        struct value key = v_str(path.s + b, e - b);
        bool digits = e > b;
        for (size_t i = b; i < e; i++) digits &= jx_cp_is_digit((unsigned char)path.s[i]);
        if (digits && e - b < 18) key = v_int(strtoll(jx_strdup(c, path.s + b, e - b), NULL, 10));
        if (jx_get_item(c, at, item, key, &item) < 0) return -1;
        if (e >= path.len) break;
        b = e + 1;
    }
    *out = item;
    return 0;
}

FILTER(join) {
    static const char *const params[] = {"d", "attribute", NULL};
    struct value p[2] = {v_str("", 0), v_none()};
    struct list *l;
    if (jx_bind_args(c, at, "join", a, params, 0, p) < 0 || jx_iterate(c, at, self, &l) < 0) return -1;
    struct value sep;
    if (jx_str_of(c, p[0], &sep) < 0) return -1;
    struct sb b = {0};
    for (size_t i = 0; i < l->n; i++) {
        struct value x = l->items[i];
        if (p[1].type != V_NONE && attr_path(c, at, x, p[1], &x) < 0) return -1;
        if (jx_str_of(c, x, &x) < 0) return -1;
        if ((i && jx_sb_put(c, &b, sep.s, sep.len) < 0) || jx_sb_put(c, &b, x.s, x.len) < 0) return -1;
    }
    *out = sb_value(&b);
    return jx_charge(c, l->n);
}

FILTER(list) {
    struct list *l;
    if (jx_no_args(c, at, "list", a) < 0 || jx_iterate(c, at, self, &l) < 0) return -1;
    *out = v_list(l, false);
    return 0;
}

FILTER(replace) {
    static const char *const params[] = {"old", "new", "count", NULL};
    struct value p[3] = {v_none(), v_none(), v_none()};
    int64_t count = -1;
    if (jx_bind_args(c, at, "replace", a, params, 2, p) < 0 || soft_str(c, self, &self) < 0 || jx_str_of(c, p[0], &p[0]) < 0 ||
        jx_str_of(c, p[1], &p[1]) < 0)
        return -1;
    if (p[2].type != V_NONE && jx_want_int(c, at, "count", p[2], &count) < 0) return -1;
    return jx_str_replace(c, self, p[0], p[1], count, out);
}

FILTER(reverse) {
    if (jx_no_args(c, at, "reverse", a) < 0) return -1;
    if (self.type == V_STR) {
        struct sb b = {0};
        for (size_t i = self.len; i > 0;) {
            size_t k = i - 1;
            while (k > 0 && ((unsigned char)self.s[k] & 0xc0) == 0x80) k--;
            if (jx_sb_put(c, &b, self.s + k, i - k) < 0) return -1;
            i = k;
        }
        *out = v_markup(sb_value(&b), self.flags & VF_MARKUP);
        return 0;
    }
    struct list *l;
    if (jx_iterate(c, at, self, &l) < 0) return -1;
    struct list *r = jx_list_new(c, l->n);
    if (!r) return -1;
    for (size_t i = 0; i < l->n; i++) r->items[i] = l->items[l->n - 1 - i];
    *out = v_gen(r);  /* reversed() is an iterator */
    return 0;
}

FILTER(round) {
    static const char *const params[] = {"precision", "method", NULL};
    struct value p[2] = {v_int(0), v_str("common", 6)};
    int64_t prec = 0;
    if (jx_bind_args(c, at, "round", a, params, 0, p) < 0 || jx_want_int(c, at, "precision", p[0], &prec) < 0 ||
        jx_want_str(c, at, "method", p[1]) < 0)
        return -1;
    if (!jx_is_number(self)) return jx_fail(c, at, "type %s doesn't define __round__ method", jx_type_name(self));
    double x = jx_num_as_double(self), m = pow(10.0, (double)prec), r;
    if (p[1].len == 4 && !memcmp(p[1].s, "ceil", 4)) r = ceil(x * m) / m;
    else if (p[1].len == 5 && !memcmp(p[1].s, "floor", 5)) r = floor(x * m) / m;
    else if (p[1].len == 6 && !memcmp(p[1].s, "common", 6)) r = rint(x * m) / m;  /* Python rounds half to even */
    else return jx_fail(c, at, "method must be common, ceil or floor");
    *out = v_float(r);
    return 0;
}

FILTER(safe) {
    if (jx_no_args(c, at, "safe", a) < 0 || soft_str(c, self, &self) < 0) return -1;
    *out = v_markup(self, true);
    return 0;
}

FILTER(string) {
    if (jx_no_args(c, at, "string", a) < 0) return -1;
    return soft_str(c, self, out);
}

FILTER(trim) {
    static const char *const params[] = {"chars", NULL};
    struct value p[1] = {v_none()};
    if (jx_bind_args(c, at, "trim", a, params, 0, p) < 0 || soft_str(c, self, &self) < 0) return -1;
    if (p[0].type != V_NONE && jx_want_str(c, at, "trim chars", p[0]) < 0) return -1;
    *out = jx_strip(self, p[0].type == V_NONE ? NULL : &p[0], 3);
    return 0;
}

FILTER(wordcount) {
    if (jx_no_args(c, at, "wordcount", a) < 0 || soft_str(c, self, &self) < 0) return -1;
    int64_t n = 0;
    bool in_word = false;
    for (size_t i = 0; i < self.len;) {
        uint32_t cp = jx_next_cp(self.s, self.len, &i);
        bool w = cp == '_' || jx_cp_is_digit(cp) || jx_cp_is_alpha(cp) || (cp >= 0x80 && !py_isspace(cp));
        n += w && !in_word;
        in_word = w;
    }
    *out = v_int(n);
    return 0;
}

/* transformers: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False) */
FILTER(tojson) {
    static const char *const params[] = {"ensure_ascii", "indent", "separators", "sort_keys", NULL};
    struct value p[4] = {v_bool(false), v_none(), v_none(), v_bool(false)};
    if (jx_bind_args(c, at, "tojson", a, params, 0, p) < 0) return -1;
    const char *indent = NULL;
    size_t indent_len = 0;
    struct sb ib = {0};
    if (p[1].type == V_STR) indent = p[1].s, indent_len = p[1].len;
    else if (p[1].type != V_NONE) {
        int64_t w = 0;
        if (jx_want_int(c, at, "indent", p[1], &w) < 0) return -1;
        for (int64_t i = 0; i < w; i++)
            if (jx_sb_putc(c, &ib, ' ') < 0) return -1;
        indent = ib.p ? ib.p : "";
        indent_len = ib.len;
    }
    struct value item_sep = indent ? v_str(",", 1) : v_str(", ", 2), key_sep = v_str(": ", 2);
    if (p[2].type != V_NONE) {
        if (p[2].type != V_LIST || p[2].list->n != 2 || p[2].list->items[0].type != V_STR || p[2].list->items[1].type != V_STR)
            return jx_fail(c, at, "separators must be a pair of strings");
        item_sep = p[2].list->items[0];
        key_sep = p[2].list->items[1];
    }
    struct sb b = {0};
    if (jx_to_json(c, at, self, indent, indent_len, jx_truthy(p[0]), item_sep, key_sep, jx_truthy(p[3]), &b) < 0) return -1;
    *out = sb_value(&b);
    return 0;
}

/* ---- sorting ------------------------------------------------------------ */

struct sort_item {
    struct value key, item;
};

/* Stable merge sort (Python's sort is stable, reverse included). */
static int merge_sort(struct ctx *c, const struct node *at, struct sort_item *v, struct sort_item *tmp, size_t n, bool reverse) {
    if (n < 2) return 0;
    size_t h = n / 2;
    if (merge_sort(c, at, v, tmp, h, reverse) < 0 || merge_sort(c, at, v + h, tmp, n - h, reverse) < 0) return -1;
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) {
        int r;
        if (jx_values_compare(c, at, v[j].key, v[i].key, &r) < 0) return -1;
        bool take_right = reverse ? r > 0 : r < 0;
        tmp[k++] = take_right ? v[j++] : v[i++];
    }
    while (i < h) tmp[k++] = v[i++];
    while (j < n) tmp[k++] = v[j++];
    memcpy(v, tmp, n * sizeof *v);
    return jx_charge(c, n);
}

/* The sort key of jinja2's filters: the attribute if given, strings
 * lowercased unless case_sensitive. */
static int sort_key(struct ctx *c, const struct node *at, struct value item, struct value attribute, bool case_sensitive, struct value *key) {
    if (attribute.type != V_NONE) {
        if (attr_path(c, at, item, attribute, &item) < 0) return -1;
    }
    if (!case_sensitive && item.type == V_STR) return jx_map_case(c, item, CASE_LOWER, key);
    *key = item;
    return 0;
}

static int sorted_items(struct ctx *c, const struct node *at, struct list *l, struct value attribute, bool case_sensitive, bool reverse,
                        struct sort_item **out) {
    struct sort_item *v = jx_alloc(c, (l->n ? l->n : 1) * sizeof *v), *tmp = jx_alloc(c, (l->n ? l->n : 1) * sizeof *tmp);
    if (!v || !tmp) return -1;
    for (size_t i = 0; i < l->n; i++) {
        v[i].item = l->items[i];
        if (sort_key(c, at, l->items[i], attribute, case_sensitive, &v[i].key) < 0) return -1;
    }
    *out = v;
    return merge_sort(c, at, v, tmp, l->n, reverse);
}

FILTER(sort) {
    static const char *const params[] = {"reverse", "case_sensitive", "attribute", NULL};
    struct value p[3] = {v_bool(false), v_bool(false), v_none()};
    struct list *l;
    struct sort_item *v;
    if (jx_bind_args(c, at, "sort", a, params, 0, p) < 0 || jx_iterate(c, at, self, &l) < 0 ||
        sorted_items(c, at, l, p[2], jx_truthy(p[1]), jx_truthy(p[0]), &v) < 0)
        return -1;
    struct list *r = jx_list_new(c, l->n);
    if (!r) return -1;
    for (size_t i = 0; i < l->n; i++) r->items[i] = v[i].item;
    *out = v_list(r, false);
    return 0;
}

FILTER(dictsort) {
    static const char *const params[] = {"case_sensitive", "by", "reverse", NULL};
    struct value p[3] = {v_bool(false), v_str("key", 3), v_bool(false)};
    if (jx_bind_args(c, at, "dictsort", a, params, 0, p) < 0) return -1;
    if (self.type != V_DICT) return jx_fail(c, at, "dictsort needs a mapping, not '%s'", jx_type_name(self));
    struct value items;
    if (dict_items(c, self.dict, &items) < 0 || jx_want_str(c, at, "by", p[1]) < 0) return -1;
    int pos;
    if (p[1].len == 3 && !memcmp(p[1].s, "key", 3)) pos = 0;
    else if (p[1].len == 5 && !memcmp(p[1].s, "value", 5)) pos = 1;
    else return jx_fail(c, at, "You can only sort by either \"key\" or \"value\"");
    struct sort_item *v;
    if (sorted_items(c, at, items.list, v_int(pos), jx_truthy(p[0]), jx_truthy(p[2]), &v) < 0) return -1;
    for (size_t i = 0; i < items.list->n; i++) items.list->items[i] = v[i].item;
    *out = items;
    return 0;
}

FILTER(unique) {
    static const char *const params[] = {"case_sensitive", "attribute", NULL};
    struct value p[2] = {v_bool(false), v_none()};
    struct list *l;
    if (jx_bind_args(c, at, "unique", a, params, 0, p) < 0 || jx_iterate(c, at, self, &l) < 0) return -1;
    struct lvec seen = {0}, res = {0};
    for (size_t i = 0; i < l->n; i++) {
        struct value key;
        if (sort_key(c, at, l->items[i], p[1], jx_truthy(p[0]), &key) < 0) return -1;
        bool dup = false;
        for (size_t j = 0; j < seen.n && !dup; j++) dup = jx_values_equal(c, seen.v[j], key);
        if (jx_charge(c, seen.n) < 0) return -1;
        if (!dup && (jx_lvec_push(c, &seen, key) < 0 || jx_lvec_push(c, &res, l->items[i]) < 0)) return -1;
    }
    if (jx_lvec_value(c, &res, false, out) < 0) return -1;
    *out = v_gen(out->list);
    return 0;
}

static int min_max(struct ctx *c, const struct node *at, const char *fname, struct value self, struct args *a, struct value *out, bool max) {
    static const char *const params[] = {"case_sensitive", "attribute", NULL};
    struct value p[2] = {v_bool(false), v_none()};
    struct list *l;
    if (jx_bind_args(c, at, fname, a, params, 0, p) < 0 || jx_iterate(c, at, self, &l) < 0) return -1;
    if (!l->n) {
        *out = (struct value){.type = V_UNDEF, .aux = U_HINT, .s = "No aggregated item, sequence was empty.", .len = 39};
        return 0;
    }
    size_t best = 0;
    struct value best_key;
    if (sort_key(c, at, l->items[0], p[1], jx_truthy(p[0]), &best_key) < 0) return -1;
    for (size_t i = 1; i < l->n; i++) {
        struct value key;
        int r;
        if (sort_key(c, at, l->items[i], p[1], jx_truthy(p[0]), &key) < 0 || jx_values_compare(c, at, key, best_key, &r) < 0) return -1;
        if (max ? r > 0 : r < 0) best = i, best_key = key;
    }
    *out = l->items[best];
    return 0;
}
FILTER(max) { return min_max(c, at, "max", self, a, out, true); }
FILTER(min) { return min_max(c, at, "min", self, a, out, false); }

FILTER(sum) {
    static const char *const params[] = {"attribute", "start", NULL};
    struct value p[2] = {v_none(), v_int(0)};
    struct list *l;
    if (jx_bind_args(c, at, "sum", a, params, 0, p) < 0 || jx_iterate(c, at, self, &l) < 0) return -1;
    struct value acc = p[1];
    for (size_t i = 0; i < l->n; i++) {
        struct value x = l->items[i];
        if (p[0].type != V_NONE && attr_path(c, at, x, p[0], &x) < 0) return -1;
        if (!jx_is_number(acc) || !jx_is_number(x)) return jx_fail(c, at, "unsupported operand type(s) for +: '%s' and '%s'", jx_type_name(acc), jx_type_name(x));
        if (acc.type == V_FLOAT || x.type == V_FLOAT) acc = v_float(jx_num_as_double(acc) + jx_num_as_double(x));
        else {
            int64_t r;
            if (__builtin_add_overflow(acc.type == V_BOOL ? acc.b : acc.i, x.type == V_BOOL ? x.b : x.i, &r)) return jx_fail(c, at, "integer overflow");
            acc = v_int(r);
        }
    }
    *out = acc;
    return 0;
}

/* map(attribute=...) or map('filter', args...) */
/* map, select and friends yield nothing for a falsy value (even None),
 * before looking at their arguments: jinja2 checks `if value:` first. */
FILTER(map) {
    struct list *l;
    if (!jx_truthy(self)) return jx_empty_gen(c, out);
    if (jx_iterate(c, at, self, &l) < 0) return -1;
    struct list *r = jx_list_new(c, l->n);
    if (!r) return -1;
    struct value attribute = {0}, deflt = {0};
    bool by_attr = false, has_default = false;
    for (size_t k = 0; k < a->n_kw; k++) {
        struct value nm = a->kw_names[k];
        if (nm.len == 9 && !memcmp(nm.s, "attribute", 9)) attribute = a->kw_vals[k], by_attr = true;
        else if (nm.len == 7 && !memcmp(nm.s, "default", 7)) deflt = a->kw_vals[k], has_default = true;
        else if (!a->n_pos) return jx_fail(c, at, "map() got an unexpected keyword argument '%.*s'", (int)nm.len, nm.s);
    }
    if (by_attr) {
        if (a->n_pos) return jx_fail(c, at, "map() with attribute takes no positional arguments");
        for (size_t i = 0; i < l->n; i++) {
            if (attr_path(c, at, l->items[i], attribute, &r->items[i]) < 0) return -1;
            if (has_default && r->items[i].type == V_UNDEF) r->items[i] = deflt;
        }
    } else {
        if (!a->n_pos || a->pos[0].type != V_STR) return jx_fail(c, at, "map() needs a filter name or attribute=");
        const struct builtin *f = jx_find_filter(a->pos[0].s, a->pos[0].len);
        if (!f) return jx_fail(c, at, "no filter named '%.*s'", (int)a->pos[0].len, a->pos[0].s);
        struct args rest = {a->pos + 1, a->n_pos - 1, a->kw_names, a->kw_vals, a->n_kw};
        for (size_t i = 0; i < l->n; i++)
            if (f->fn(c, at, l->items[i], &rest, &r->items[i]) < 0) return -1;
    }
    *out = v_gen(r);
    return jx_charge(c, l->n);
}

/* select/reject(test, args...) and selectattr/rejectattr(attr, test, args...) */
static int select_common(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out, bool keep, bool by_attr) {
    struct list *l;
    if (!jx_truthy(self)) return jx_empty_gen(c, out);
    if (jx_iterate(c, at, self, &l) < 0) return -1;
    size_t skip = by_attr ? 1 : 0;
    if (by_attr && !a->n_pos) return jx_fail(c, at, "selectattr/rejectattr need an attribute");
    const struct builtin *test = NULL;
    if (a->n_pos > skip) {
        if (a->pos[skip].type != V_STR) return jx_fail(c, at, "the test name must be a string");
        test = jx_find_test(a->pos[skip].s, a->pos[skip].len);
        if (!test) return jx_fail(c, at, "no test named '%.*s'", (int)a->pos[skip].len, a->pos[skip].s);
        skip++;
    }
    struct args rest = {a->n_pos > skip ? a->pos + skip : NULL, a->n_pos > skip ? a->n_pos - skip : 0, a->kw_names,
                        a->kw_vals, a->n_kw}; /* pos may be NULL: no arithmetic on it */
    struct lvec res = {0};
    for (size_t i = 0; i < l->n; i++) {
        struct value x = l->items[i];
        if (by_attr && attr_path(c, at, x, a->pos[0], &x) < 0) return -1;
        bool ok;
        if (test) {
            if (jx_run_test(c, at, test, x, &rest, &ok) < 0) return -1;
        } else ok = jx_truthy(x);
        if (ok == keep && jx_lvec_push(c, &res, l->items[i]) < 0) return -1;
    }
    if (jx_lvec_value(c, &res, false, out) < 0) return -1;
    *out = v_gen(out->list);
    return 0;
}
FILTER(select) { return select_common(c, at, self, a, out, true, false); }
FILTER(reject) { return select_common(c, at, self, a, out, false, false); }
FILTER(selectattr) { return select_common(c, at, self, a, out, true, true); }
FILTER(rejectattr) { return select_common(c, at, self, a, out, false, true); }

static const struct builtin filters[] = {
    {"abs", f_abs},         {"attr", f_attr},       {"batch", f_batch},       {"capitalize", f_capitalize}, {"center", f_center},
    {"count", f_length},    {"d", f_default},       {"default", f_default},       {"dictsort", f_dictsort},
    {"e", f_escape},        {"escape", f_escape},   {"first", f_first},           {"float", f_float},
    {"forceescape", f_forceescape}, {"format", f_format}, {"indent", f_indent}, {"int", f_int},         {"items", f_items},
    {"join", f_join},       {"last", f_last},       {"length", f_length},         {"list", f_list},
    {"lower", f_lower},     {"map", f_map},         {"max", f_max},               {"min", f_min},
    {"reject", f_reject},   {"rejectattr", f_rejectattr}, {"replace", f_replace}, {"reverse", f_reverse},
    {"round", f_round},     {"safe", f_safe},       {"select", f_select},         {"selectattr", f_selectattr},
    {"sort", f_sort},       {"string", f_string},   {"sum", f_sum},               {"title", f_title},
    {"tojson", f_tojson},   {"trim", f_trim},       {"unique", f_unique},         {"upper", f_upper},
    {"wordcount", f_wordcount}, {NULL, NULL},
};

const struct builtin *jx_find_filter(const char *name, size_t len) { return find_builtin(filters, name, len); }

/* ---- tests -------------------------------------------------------------- */

#define TEST(name) static int t_##name(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out)
#define TEST0(name, expr)                                   \
    TEST(name) {                                            \
        if (jx_no_args(c, at, #name, a) < 0) return -1;        \
        *out = v_bool(expr);                                \
        return 0;                                           \
    }

TEST0(defined, self.type != V_UNDEF)
TEST0(undefined, self.type == V_UNDEF)
TEST0(none, self.type == V_NONE)
TEST0(boolean, self.type == V_BOOL)
/* not TEST0: false and true are macros of stdbool.h */
TEST(is_false) {
    if (jx_no_args(c, at, "false", a) < 0) return -1;
    *out = v_bool(self.type == V_BOOL && !self.b);
    return 0;
}
TEST(is_true) {
    if (jx_no_args(c, at, "true", a) < 0) return -1;
    *out = v_bool(self.type == V_BOOL && self.b);
    return 0;
}
TEST0(integer, self.type == V_INT)
TEST0(float, self.type == V_FLOAT)
TEST0(number, jx_is_number(self))
TEST0(string, self.type == V_STR)
TEST0(mapping, self.type == V_DICT)
/* Undefined has __len__, __getitem__ and __iter__, so jinja2 says yes */
TEST0(sequence, self.type == V_STR || self.type == V_LIST || self.type == V_DICT || self.type == V_UNDEF)
TEST0(iterable, self.type == V_STR || self.type == V_LIST || self.type == V_DICT || self.type == V_UNDEF)
TEST0(callable, self.type == V_FUNC || self.type == V_UNDEF)
TEST0(escaped, self.type == V_STR && (self.flags & VF_MARKUP))
TEST0(lower, self.type == V_STR ? jx_str_case_is(self, false) : false)
TEST0(upper, self.type == V_STR ? jx_str_case_is(self, true) : false)

static int int_arg(struct ctx *c, const struct node *at, const char *fname, struct value v, int64_t *out) {
    if (v.type == V_INT || v.type == V_BOOL) {
        *out = v.type == V_INT ? v.i : v.b;
        return 0;
    }
    return jx_fail(c, at, "%s needs an integer, not '%s'", fname, jx_type_name(v));
}

TEST(odd) {
    int64_t i = 0;
    if (jx_no_args(c, at, "odd", a) < 0 || int_arg(c, at, "odd", self, &i) < 0) return -1;
    *out = v_bool(i % 2 != 0);
    return 0;
}
TEST(even) {
    int64_t i = 0;
    if (jx_no_args(c, at, "even", a) < 0 || int_arg(c, at, "even", self, &i) < 0) return -1;
    *out = v_bool(i % 2 == 0);
    return 0;
}
TEST(divisibleby) {
    static const char *const params[] = {"num", NULL};
    struct value p[1];
    int64_t i = 0, d = 0;
    if (jx_bind_args(c, at, "divisibleby", a, params, 1, p) < 0 || int_arg(c, at, "divisibleby", self, &i) < 0 ||
        int_arg(c, at, "divisibleby", p[0], &d) < 0)
        return -1;
    if (d == 0) return jx_fail(c, at, "integer division or modulo by zero");
    *out = v_bool(d == -1 || i % d == 0);
    return 0;
}

TEST(sameas) {
    static const char *const params[] = {"other", NULL};
    struct value p[1];
    if (jx_bind_args(c, at, "sameas", a, params, 1, p) < 0) return -1;
    struct value o = p[0];
    bool same = self.type == o.type;
    if (same) switch (self.type) {
        case V_BOOL: same = self.b == o.b; break;
        case V_INT: same = self.i == o.i && self.i >= -5 && self.i <= 256; break;  /* CPython's cached ints */
        case V_LIST: same = self.list == o.list; break;
        case V_DICT: same = self.dict == o.dict; break;
        case V_NS: same = self.ns == o.ns; break;
        case V_FUNC: same = self.fn == o.fn; break;
        case V_NONE: break;
        default: same = false;
        }
    *out = v_bool(same);
    return 0;
}

static int one_arg(struct ctx *c, const struct node *at, const char *fname, struct args *a, struct value *p) {
    static const char *const params[] = {"other", NULL};
    return jx_bind_args(c, at, fname, a, params, 1, p);
}

TEST(eq) {
    struct value o;
    if (one_arg(c, at, "eq", a, &o) < 0) return -1;
    *out = v_bool(jx_values_equal(c, self, o));
    return 0;
}
TEST(ne) {
    struct value o;
    if (one_arg(c, at, "ne", a, &o) < 0) return -1;
    *out = v_bool(!jx_values_equal(c, self, o));
    return 0;
}

static int order_test(struct ctx *c, const struct node *at, const char *fname, struct value self, struct args *a, struct value *out, int op) {
    struct value o;
    int r;
    if (one_arg(c, at, fname, a, &o) < 0 || jx_values_compare(c, at, self, o, &r) < 0) return -1;
    *out = v_bool(op == OP_LT ? r < 0 : op == OP_LE ? r <= 0 : op == OP_GT ? r > 0 : r >= 0);
    return 0;
}
TEST(lt) { return order_test(c, at, "lt", self, a, out, OP_LT); }
TEST(le) { return order_test(c, at, "le", self, a, out, OP_LE); }
TEST(gt) { return order_test(c, at, "gt", self, a, out, OP_GT); }
TEST(ge) { return order_test(c, at, "ge", self, a, out, OP_GE); }

TEST(in) {
    struct value o;
    bool r;
    if (one_arg(c, at, "in", a, &o) < 0 || jx_value_in(c, at, self, o, &r) < 0) return -1;
    *out = v_bool(r);
    return 0;
}

TEST(filter) {
    if (jx_no_args(c, at, "filter", a) < 0) return -1;
    *out = v_bool(self.type == V_STR && jx_find_filter(self.s, self.len));
    return 0;
}
TEST(test) {
    if (jx_no_args(c, at, "test", a) < 0) return -1;
    *out = v_bool(self.type == V_STR && jx_find_test(self.s, self.len));
    return 0;
}

static const struct builtin tests[] = {
    {"!=", t_ne},           {"<", t_lt},                {"<=", t_le},           {"==", t_eq},
    {">", t_gt},            {">=", t_ge},               {"boolean", t_boolean}, {"callable", t_callable},
    {"defined", t_defined}, {"divisibleby", t_divisibleby}, {"eq", t_eq},       {"equalto", t_eq},
    {"escaped", t_escaped}, {"even", t_even},           {"false", t_is_false},     {"filter", t_filter},
    {"float", t_float},     {"ge", t_ge},               {"greaterthan", t_gt},  {"gt", t_gt},
    {"in", t_in},           {"integer", t_integer},     {"iterable", t_iterable}, {"le", t_le},
    {"lessthan", t_lt},     {"lower", t_lower},         {"lt", t_lt},           {"mapping", t_mapping},
    {"ne", t_ne},           {"none", t_none},           {"number", t_number},   {"odd", t_odd},
    {"sameas", t_sameas},   {"sequence", t_sequence},   {"string", t_string},   {"test", t_test},
    {"true", t_is_true},       {"undefined", t_undefined}, {"upper", t_upper},     {NULL, NULL},
};

const struct builtin *jx_find_test(const char *name, size_t len) { return find_builtin(tests, name, len); }

int jx_run_test(struct ctx *c, const struct node *at, const struct builtin *t, struct value v, struct args *a, bool *res) {
    struct value r;
    if (t->fn(c, at, v, a, &r) < 0) return -1;
    *res = jx_truthy(r);
    return 0;
}

/* ---- globals ------------------------------------------------------------ */

static int g_range(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) {
    if (a->n_kw || a->n_pos < 1 || a->n_pos > 3) return jx_fail(c, at, "range() takes 1 to 3 positional arguments");
    int64_t v[3] = {0, 0, 1};
    for (size_t i = 0; i < a->n_pos; i++)
        if (jx_want_int(c, at, "range() argument", a->pos[i], &v[a->n_pos == 1 ? 1 : i]) < 0) return -1;
    int64_t start = v[0], stop = v[1], step = v[2];
    if (step == 0) return jx_fail(c, at, "range() arg 3 must not be zero");
    /* the count, computed without overflow */
    double span = step > 0 ? (double)stop - (double)start : (double)start - (double)stop;
    double cnt = span <= 0 ? 0 : ceil(span / fabs((double)step));
    if (cnt > MAX_RANGE) return jx_fail(c, at, "Range too big. The sandbox blocks ranges larger than MAX_RANGE (%d).", MAX_RANGE);
    struct list *l = jx_list_new(c, (size_t)cnt);
    if (!l) return -1;
    for (size_t i = 0; i < l->n; i++) l->items[i] = v_int(start + (int64_t)i * step);
    *out = v_list(l, false);
    return jx_charge(c, l->n);
}

/* dict(mapping?, **kwargs) and the attributes of namespace(...) */
static int dict_from_args(struct ctx *c, const struct node *at, const char *fname, struct args *a, struct dict **out) {
    if (a->n_pos > 1) return jx_fail(c, at, "%s() takes at most 1 positional argument", fname);
    struct dict *base = NULL;
    if (a->n_pos) {
        if (a->pos[0].type != V_DICT) return jx_fail(c, at, "%s() argument must be a mapping, not '%s'", fname, jx_type_name(a->pos[0]));
        base = a->pos[0].dict;
    }
    size_t nb = base ? base->n : 0;
    struct dict *d = jx_dict_new(c, nb + a->n_kw);
    if (!d) return -1;
    d->n = 0;
    for (size_t i = 0; i < nb + a->n_kw; i++) {
        struct value k = i < nb ? base->keys[i] : a->kw_names[i - nb], v = i < nb ? base->vals[i] : a->kw_vals[i - nb];
        long j = jx_dict_find(c, d, k);
        if (j >= 0) d->vals[j] = v;
        else {
            d->keys[d->n] = k;
            d->vals[d->n++] = v;
        }
    }
    *out = d;
    return 0;
}

static int g_dict(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) {
    struct dict *d;
    if (dict_from_args(c, at, "dict", a, &d) < 0) return -1;
    *out = v_dict(d);
    return 0;
}

static int g_namespace(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) {
    struct dict *d;
    if (dict_from_args(c, at, "namespace", a, &d) < 0) return -1;
    struct ns *ns = jx_alloc(c, sizeof *ns);
    if (!ns) return -1;
    memset(ns, 0, sizeof *ns);
    for (size_t i = 0; i < d->n; i++) {
        if (d->keys[i].type != V_STR) return jx_fail(c, at, "namespace() keywords must be strings");
        if (jx_ns_set(c, ns, d->keys[i], d->vals[i]) < 0) return -1;
    }
    *out = (struct value){.type = V_NS, .ns = ns};
    return 0;
}

static int g_raise_exception(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) {
    static const char *const params[] = {"message", NULL};
    struct value p[1];
    if (jx_bind_args(c, at, "raise_exception", a, params, 1, p) < 0 || jx_str_of(c, p[0], &p[0]) < 0) return -1;
    return jx_fail(c, at, "%.*s", (int)(p[0].len > 300 ? 300 : p[0].len), p[0].s);
}

static int g_strftime_now(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out) {
    static const char *const params[] = {"format", NULL};
    struct value p[1];
    if (jx_bind_args(c, at, "strftime_now", a, params, 1, p) < 0 || jx_want_str(c, at, "format", p[0]) < 0) return -1;
    struct tm tm = {0};
    if (c->date) {
        int y, m, d;
        if (sscanf(c->date, "%d-%d-%d", &y, &m, &d) != 3) return jx_fail(c, at, "bad date '%s' (want YYYY-MM-DD)", c->date);
        tm.tm_year = y - 1900;
        tm.tm_mon = m - 1;
        tm.tm_mday = d;
        tm.tm_hour = 12;     /* mktime normalizes and fills the weekday */
        time_t t = mktime(&tm);
        localtime_r(&t, &tm);
        tm.tm_hour = 0;
    } else {
        time_t t = time(NULL);
        localtime_r(&t, &tm);
    }
    char *fmt = jx_strdup(c, p[0].s, p[0].len), buf[512];
    if (!fmt) return -1;
    size_t n = p[0].len ? strftime(buf, sizeof buf, fmt, &tm) : 0;
    if (p[0].len && !n) return jx_fail(c, at, "strftime_now: format produces nothing or too much");
    char *s = jx_strdup(c, buf, n);
    if (!s) return -1;
    *out = v_str(s, n);
    return 0;
}

static const struct builtin globals[] = {
    {"dict", g_dict},
    {"namespace", g_namespace},
    {"raise_exception", g_raise_exception},
    {"range", g_range},
    {"strftime_now", g_strftime_now},
    {NULL, NULL},
};

const struct builtin *jx_find_global(const char *name, size_t len) { return find_builtin(globals, name, len); }

int jx_call_value(struct ctx *c, const struct node *at, struct value fn, struct args *a, struct value *out) {
    if (fn.type == V_UNDEF) return jx_fail_undefined(c, at, fn);
    if (fn.type != V_FUNC) return jx_fail(c, at, "'%s' object is not callable", jx_type_name(fn));
    if (fn.fn->kind == F_MACRO) return jx_call_macro(c, at, fn.fn, a, out);
    return fn.fn->b->fn(c, at, fn.fn->self, a, out);
}
