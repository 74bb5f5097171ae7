/* The evaluator: walks the syntax tree with jinja2's scoping (a for body
 * gets a fresh scope each iteration; if does not scope; macros see the
 * scope they were defined in, at call time), and the public entry points. */
#include "jinja_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { EXEC_OK = 0, EXEC_BREAK = 1, EXEC_CONTINUE = 2 };

struct var {
    struct value name, v;
};

struct scope {
    struct scope *parent;
    struct var *vars;
    size_t n, cap;
};

static struct scope *scope_new(struct ctx *c, struct scope *parent) {
    struct scope *s = jx_alloc(c, sizeof *s);
    if (!s) return NULL;
    memset(s, 0, sizeof *s);
    s->parent = parent;
    return s;
}

static struct value *scope_find(struct ctx *c, struct scope *s, struct value name) {
    for (; s; s = s->parent) {
        jx_charge(c, s->n / 16);
        for (size_t i = s->n; i-- > 0;)
            if (s->vars[i].name.len == name.len && !memcmp(s->vars[i].name.s, name.s, name.len)) return &s->vars[i].v;
    }
    return NULL;
}

static int scope_set(struct ctx *c, struct scope *s, struct value name, struct value v) {
    for (size_t i = 0; i < s->n; i++)
        if (s->vars[i].name.len == name.len && !memcmp(s->vars[i].name.s, name.s, name.len)) {
            s->vars[i].v = v;
            return 0;
        }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        struct var *nv = jx_alloc(c, cap * sizeof *nv);
        if (!nv) return -1;
        if (s->n) memcpy(nv, s->vars, s->n * sizeof *nv);
        s->vars = nv;
        s->cap = cap;
    }
    s->vars[s->n].name = name;
    s->vars[s->n++].v = v;
    return 0;
}

static int eval(struct ctx *c, struct scope *s, const struct node *n, struct value *out);
static int exec(struct ctx *c, struct scope *s, const struct node *n);

/* ---- operators ---------------------------------------------------------- */

int jx_value_in(struct ctx *c, const struct node *at, struct value x, struct value seq, bool *res) {
    switch (seq.type) {
    case V_STR:
        if (x.type != V_STR) return jx_fail(c, at, "'in <string>' requires string as left operand, not %s", jx_type_name(x));
        *res = x.len == 0 || (x.len <= seq.len && memmem(seq.s, seq.len, x.s, x.len));
        return jx_charge(c, seq.len / 64);
    case V_LIST: {
        struct list *l;
        if (jx_iterate(c, at, seq, &l) < 0) return -1;  /* consumes a generator */
        *res = false;
        for (size_t i = 0; i < l->n && !*res; i++) *res = jx_values_equal(c, x, l->items[i]);
        return jx_charge(c, l->n);
    }
    case V_DICT: *res = jx_dict_find(c, seq.dict, x) >= 0; return 0;
    case V_UNDEF: *res = false; return 0;  /* iterating an Undefined yields nothing */
    default: return jx_fail(c, at, "argument of type '%s' is not iterable", jx_type_name(seq));
    }
}

static bool int_like(struct value v) { return v.type == V_INT || v.type == V_BOOL; }
static int64_t as_int(struct value v) { return v.type == V_INT ? v.i : v.b; }

static int overflow(struct ctx *c, const struct node *at) {
    return jx_fail(c, at, "integer overflow (lm's integers are 64-bit)");
}

/* s * k for strings and lists */
static int repeat(struct ctx *c, const struct node *at, struct value seq, int64_t k, struct value *out) {
    if (k < 0) k = 0;
    if (seq.type == V_STR) {
        if (k && seq.len > c->max_output / (uint64_t)k) return jx_fail(c, at, "template output exceeds %zu bytes", c->max_output);
        struct sb b = {0};
        for (int64_t i = 0; i < k; i++)
            if (jx_sb_put(c, &b, seq.s, seq.len) < 0) return -1;
        *out = sb_value(&b);
        out->flags = seq.flags;
        return 0;
    }
    size_t n = seq.list->n;
    if (k && n > (c->arena.cap / sizeof(struct value)) / (uint64_t)k) return jx_fail(c, at, "list too large");
    struct list *l = jx_list_new(c, n * (size_t)k);
    if (!l) return -1;
    for (int64_t i = 0; i < k; i++) memcpy(l->items + (size_t)i * n, seq.list->items, n * sizeof *l->items);
    *out = v_list(l, seq.flags & VF_TUPLE);
    return jx_charge(c, l->n);
}

static int arith(struct ctx *c, const struct node *at, int op, struct value a, struct value b, struct value *out) {
    if (a.type == V_UNDEF) return jx_fail_undefined(c, at, a);
    if (b.type == V_UNDEF) return jx_fail_undefined(c, at, b);
    static const char *const sym[] = {"+", "-", "*", "/", "//", "%", "**"};
    if (jx_is_number(a) && jx_is_number(b)) {
        if (int_like(a) && int_like(b) && op != OP_DIV) {
            int64_t x = as_int(a), y = as_int(b), r = 0;
            switch (op) {
            case OP_ADD: if (__builtin_add_overflow(x, y, &r)) return overflow(c, at); break;
            case OP_SUB: if (__builtin_sub_overflow(x, y, &r)) return overflow(c, at); break;
            case OP_MUL: if (__builtin_mul_overflow(x, y, &r)) return overflow(c, at); break;
            case OP_FLOORDIV:
            case OP_MOD:
                if (y == 0) return jx_fail(c, at, "integer division or modulo by zero");
                if (x == INT64_MIN && y == -1) return overflow(c, at);
                r = op == OP_MOD ? x % y : x / y;
                if (op == OP_MOD && r != 0 && ((r < 0) != (y < 0))) r += y;           /* Python's modulo follows the divisor */
                if (op == OP_FLOORDIV && (x % y != 0) && ((x < 0) != (y < 0))) r--;  /* and division floors */
                break;
            case OP_POW:
                if (y < 0) {
                    if (x == 0) return jx_fail(c, at, "0.0 cannot be raised to a negative power");
                    *out = v_float(pow((double)x, (double)y));
                    return 0;
                }
                r = 1;
                for (int64_t i = 0; i < y; i++) {
                    if (__builtin_mul_overflow(r, x, &r)) return overflow(c, at);
                    if (r == 0 || r == 1 || (r == -1 && i > 64)) break;  /* 0, 1 and -1 stop changing */
                }
                if (r == -1 && (y % 2 == 0)) r = 1;
                break;
            }
            *out = v_int(r);
            return 0;
        }
        double x = jx_num_as_double(a), y = jx_num_as_double(b), r;
        switch (op) {
        case OP_ADD: r = x + y; break;
        case OP_SUB: r = x - y; break;
        case OP_MUL: r = x * y; break;
        case OP_DIV:
            if (y == 0) return jx_fail(c, at, "division by zero");
            r = x / y;
            break;
        case OP_FLOORDIV:
            if (y == 0) return jx_fail(c, at, "float floor division by zero");
            r = floor(x / y);
            break;
        case OP_MOD:
            if (y == 0) return jx_fail(c, at, "float modulo");
            r = fmod(x, y);
            if (r != 0 && ((r < 0) != (y < 0))) r += y;
            break;
        default:
            if (x == 0 && y < 0) return jx_fail(c, at, "0.0 cannot be raised to a negative power");
            r = pow(x, y);
        }
        *out = v_float(r);
        return 0;
    }
    if (op == OP_ADD && a.type == V_STR && b.type == V_STR) {
        /* Markup + str escapes the str (markupsafe), whichever side it is on */
        bool markup = (a.flags | b.flags) & VF_MARKUP;
        if (markup && (jx_html_escape(c, a, &a) < 0 || jx_html_escape(c, b, &b) < 0)) return -1;
        struct sb s = {0};
        if (jx_sb_put(c, &s, a.s, a.len) < 0 || jx_sb_put(c, &s, b.s, b.len) < 0) return -1;
        *out = sb_value(&s);
        out->flags = markup ? VF_MARKUP : 0;
        return jx_charge(c, s.len / 64);
    }
    if (op == OP_ADD && a.type == V_LIST && b.type == V_LIST && a.flags == b.flags && !(a.flags & VF_OPAQUE)) {
        struct list *l = jx_list_new(c, a.list->n + b.list->n);
        if (!l) return -1;
        memcpy(l->items, a.list->items, a.list->n * sizeof *l->items);
        memcpy(l->items + a.list->n, b.list->items, b.list->n * sizeof *l->items);
        *out = v_list(l, a.flags & VF_TUPLE);
        return jx_charge(c, l->n);
    }
    bool seq_a = a.type == V_STR || (a.type == V_LIST && !(a.flags & VF_OPAQUE));
    bool seq_b = b.type == V_STR || (b.type == V_LIST && !(b.flags & VF_OPAQUE));
    if (op == OP_MUL && seq_a && int_like(b)) return repeat(c, at, a, as_int(b), out);
    if (op == OP_MUL && seq_b && int_like(a)) return repeat(c, at, b, as_int(a), out);
    if (op == OP_MOD && a.type == V_STR) return jx_py_percent_format(c, at, a, b, out);
    return jx_fail(c, at, "unsupported operand type(s) for %s: '%s' and '%s'", sym[op], jx_type_name(a), jx_type_name(b));
}

/* Python's slice of a str, list or tuple. jinja2 compiles slices to plain
 * Python subscripts (not its forgiving getitem), so other types fail. */
static int slice_value(struct ctx *c, const struct node *at, struct value obj, const struct value *bounds, struct value *out) {
    if (obj.type == V_UNDEF) return jx_fail_undefined(c, at, obj);
    int64_t v[3];
    bool given[3];
    for (int i = 0; i < 3; i++) {
        given[i] = bounds[i].type != V_NONE;
        if (given[i] && !int_like(bounds[i]))
            return jx_fail(c, at, "slice indices must be integers or None or have an __index__ method");
        v[i] = given[i] ? as_int(bounds[i]) : 0;
    }
    if (obj.type == V_DICT) return jx_fail(c, at, "unhashable type: 'slice'");
    if (obj.type != V_STR && (obj.type != V_LIST || (obj.flags & VF_OPAQUE)))
        return jx_fail(c, at, "'%s' object is not subscriptable", jx_type_name(obj));
    int64_t step = given[2] ? v[2] : 1;
    if (step == 0) return jx_fail(c, at, "slice step cannot be zero");
    if (step == INT64_MIN) step = -INT64_MAX;
    bool ascii = obj.type == V_STR && jx_utf8_len(obj.s, obj.len) == obj.len;
    int64_t len = obj.type == V_LIST ? (int64_t)obj.list->n : ascii ? (int64_t)obj.len : (int64_t)jx_utf8_len(obj.s, obj.len);
    int64_t lower = step > 0 ? 0 : -1, upper = step > 0 ? len : len - 1;
    int64_t idx[2];
    for (int i = 0; i < 2; i++) {
        if (!given[i]) idx[i] = (i == 0) == (step < 0) ? upper : lower;
        else {
            int64_t x = v[i];
            if (x < 0) {
                x = x < -len ? lower : x + len;
                if (x < lower) x = lower;
            } else if (x > upper) x = upper;
            idx[i] = x;
        }
    }
    int64_t start = idx[0], stop = idx[1], count;
    if (step > 0) count = start < stop ? (stop - start - 1) / step + 1 : 0;
    else count = stop < start ? (start - stop - 1) / (-step) + 1 : 0;
    if (jx_charge(c, (uint64_t)count) < 0) return -1;
    if (obj.type == V_LIST) {
        struct list *l = jx_list_new(c, (size_t)count);
        if (!l) return -1;
        for (int64_t i = 0; i < count; i++) l->items[i] = obj.list->items[start + i * step];
        *out = v_list(l, obj.flags & VF_TUPLE);
        return 0;
    }
    /* strings: byte offsets of every code point (one more for the end) */
    size_t *off = NULL;
    if (!ascii) {
        if (!(off = jx_alloc(c, ((size_t)len + 1) * sizeof *off))) return -1;
        size_t k = 0;
        for (size_t i = 0; i < obj.len; i++)
            if (((unsigned char)obj.s[i] & 0xc0) != 0x80) off[k++] = i;
        off[k] = obj.len;
    }
#define OFF(i) (ascii ? (size_t)(i) : off[i])
    if (step == 1) {
        *out = v_str(obj.s + OFF(start), count ? OFF(start + count) - OFF(start) : 0);
        out->flags = obj.flags;
        return 0;
    }
    struct sb b = {0};
    for (int64_t i = 0; i < count; i++) {
        int64_t k = start + i * step;
        if (jx_sb_put(c, &b, obj.s + OFF(k), OFF(k + 1) - OFF(k)) < 0) return -1;
    }
#undef OFF
    *out = sb_value(&b);
    out->flags = obj.flags;
    return 0;
}

/* ---- expressions -------------------------------------------------------- */

static int eval_args(struct ctx *c, struct scope *s, const struct node *n, struct args *a) {
    memset(a, 0, sizeof *a);
    if (!n->n_kids) return 0;
    a->pos = jx_alloc(c, n->n_kids * sizeof *a->pos);
    a->kw_names = jx_alloc(c, n->n_kids * sizeof *a->kw_names);
    a->kw_vals = jx_alloc(c, n->n_kids * sizeof *a->kw_vals);
    if (!a->pos || !a->kw_names || !a->kw_vals) return -1;
    for (uint32_t i = 0; i < n->n_kids; i++) {
        const struct node *k = n->kids[i];
        if (k->kind == N_KWARG) {
            for (size_t j = 0; j < a->n_kw; j++)
                if (a->kw_names[j].len == k->name.len && !memcmp(a->kw_names[j].s, k->name.s, k->name.len))
                    return jx_fail(c, k, "keyword argument repeated: %.*s", (int)k->name.len, k->name.s);
            a->kw_names[a->n_kw] = k->name;
            if (eval(c, s, k->a, &a->kw_vals[a->n_kw++]) < 0) return -1;
        } else if (eval(c, s, k, &a->pos[a->n_pos++]) < 0) return -1;
    }
    return 0;
}

/* A filter node applied to its operand (or to input, in filter blocks and
 * set blocks, where the innermost operand is NULL). */
static int eval_filter(struct ctx *c, struct scope *s, const struct node *n, const struct value *input, struct value *out) {
    struct value v;
    if (!n->a) v = *input;
    else if (n->a->kind == N_FILTER && !n->a->a && input) {
        if (eval_filter(c, s, n->a, input, &v) < 0) return -1;
    } else if (eval(c, s, n->a, &v) < 0) return -1;
    if (!n->fn) return jx_fail(c, n, "no filter named '%.*s'", (int)n->name.len, n->name.s);
    struct args a;
    if (eval_args(c, s, n, &a) < 0) return -1;
    c->at = n;
    return n->fn->fn(c, n, v, &a, out);
}

static int eval_compare(struct ctx *c, struct scope *s, const struct node *n, struct value *out) {
    struct value left;
    if (eval(c, s, n->a, &left) < 0) return -1;
    for (uint32_t i = 0; i < n->n_kids; i++) {
        const struct node *o = n->kids[i];
        struct value right;
        if (eval(c, s, o->a, &right) < 0) return -1;
        bool ok;
        int r;
        switch (o->op) {
        case OP_EQ: ok = jx_values_equal(c, left, right); break;
        case OP_NE: ok = !jx_values_equal(c, left, right); break;
        case OP_IN:
        case OP_NOTIN:
            if (jx_value_in(c, o, left, right, &ok) < 0) return -1;
            if (o->op == OP_NOTIN) ok = !ok;
            break;
        default:
            if (jx_values_compare(c, o, left, right, &r) < 0) return -1;
            ok = o->op == OP_LT ? r < 0 : o->op == OP_LE ? r <= 0 : o->op == OP_GT ? r > 0 : r >= 0;
        }
        if (!ok) {
            *out = v_bool(false);
            return 0;
        }
        left = right;
    }
    *out = v_bool(true);
    return 0;
}

static int eval_inner(struct ctx *c, struct scope *s, const struct node *n, struct value *out) {
    struct value a, b;
    switch (n->kind) {
    case N_CONST: *out = n->val; return 0;
    case N_NAME: {
        struct value *v = scope_find(c, s, n->name);
        if (v) {
            *out = *v;
            return 0;
        }
        const struct builtin *g = jx_find_global(n->name.s, n->name.len);
        if (g) {
            struct func *f = jx_alloc(c, sizeof *f);
            if (!f) return -1;
            memset(f, 0, sizeof *f);
            f->kind = F_BUILTIN;
            f->b = g;
            *out = (struct value){.type = V_FUNC, .fn = f};
            return 0;
        }
        *out = v_undef_name(n->name.s, n->name.len);
        return 0;
    }
    case N_ATTR:
        if (eval(c, s, n->a, &a) < 0) return -1;
        return jx_get_attr(c, n, a, n->name, out);
    case N_ITEM:
        if (eval(c, s, n->a, &a) < 0 || eval(c, s, n->b, &b) < 0) return -1;
        return jx_get_item(c, n, a, b, out);
    case N_SLICE: {
        struct value bounds[3] = {v_none(), v_none(), v_none()};
        const struct node *bn[3] = {n->b, n->c, n->d};
        if (eval(c, s, n->a, &a) < 0) return -1;
        for (int i = 0; i < 3; i++)
            if (bn[i] && eval(c, s, bn[i], &bounds[i]) < 0) return -1;
        return slice_value(c, n, a, bounds, out);
    }
    case N_CALL: {
        struct args args;
        if (eval(c, s, n->a, &a) < 0 || eval_args(c, s, n, &args) < 0) return -1;
        c->at = n;
        return jx_call_value(c, n, a, &args, out);
    }
    case N_FILTER: return eval_filter(c, s, n, NULL, out);
    case N_TEST: {
        struct args args;
        if (eval(c, s, n->a, &a) < 0) return -1;
        if (!n->fn) return jx_fail(c, n, "no test named '%.*s'", (int)n->name.len, n->name.s);
        if (eval_args(c, s, n, &args) < 0) return -1;
        bool r;
        if (jx_run_test(c, n, n->fn, a, &args, &r) < 0) return -1;
        *out = v_bool(r != (n->op != 0));
        return 0;
    }
    case N_BINOP:
        if (eval(c, s, n->a, &a) < 0 || eval(c, s, n->b, &b) < 0) return -1;
        return arith(c, n, n->op, a, b, out);
    case N_UNARY:
        if (eval(c, s, n->a, &a) < 0) return -1;
        if (a.type == V_UNDEF) return jx_fail_undefined(c, n, a);
        if (a.type == V_FLOAT) *out = v_float(n->op == OP_NEG ? -a.f : a.f);
        else if (int_like(a)) {
            if (n->op == OP_NEG && as_int(a) == INT64_MIN) return overflow(c, n);
            *out = v_int(n->op == OP_NEG ? -as_int(a) : as_int(a));
        } else return jx_fail(c, n, "bad operand type for unary %s: '%s'", n->op == OP_NEG ? "-" : "+", jx_type_name(a));
        return 0;
    case N_AND:
    case N_OR:
        if (eval(c, s, n->a, &a) < 0) return -1;
        if (jx_truthy(a) == (n->kind == N_OR)) {
            *out = a;
            return 0;
        }
        return eval(c, s, n->b, out);
    case N_NOT:
        if (eval(c, s, n->a, &a) < 0) return -1;
        *out = v_bool(!jx_truthy(a));
        return 0;
    case N_CONCAT: {
        struct sb sb = {0};
        for (uint32_t i = 0; i < n->n_kids; i++)
            if (eval(c, s, n->kids[i], &a) < 0 || jx_to_str(c, a, &sb) < 0) return -1;
        *out = sb_value(&sb);
        return 0;
    }
    case N_COMPARE: return eval_compare(c, s, n, out);
    case N_COND:
        if (eval(c, s, n->a, &a) < 0) return -1;
        if (jx_truthy(a)) return eval(c, s, n->b, out);
        if (n->c) return eval(c, s, n->c, out);
        *out = (struct value){.type = V_UNDEF, .aux = U_HINT, .s = "the inline if-expression evaluated to false and no else section was defined.", .len = 76};
        return 0;
    case N_LIST:
    case N_TUPLE: {
        struct list *l = jx_list_new(c, n->n_kids);
        if (!l) return -1;
        for (uint32_t i = 0; i < n->n_kids; i++)
            if (eval(c, s, n->kids[i], &l->items[i]) < 0) return -1;
        *out = v_list(l, n->kind == N_TUPLE);
        return 0;
    }
    case N_DICT: {
        struct dict *d = jx_dict_new(c, n->n_kids);
        if (!d) return -1;
        d->n = 0;
        for (uint32_t i = 0; i < n->n_kids; i++) {
            if (eval(c, s, n->kids[i]->a, &a) < 0 || eval(c, s, n->kids[i]->b, &b) < 0) return -1;
            if (a.type == V_LIST || a.type == V_DICT || a.type == V_NS || a.type == V_UNDEF)
                return jx_fail(c, n->kids[i], "unhashable type: '%s'", jx_type_name(a));
            long j = jx_dict_find(c, d, a);
            if (j >= 0) d->vals[j] = b;
            else {
                d->keys[d->n] = a;
                d->vals[d->n++] = b;
            }
        }
        *out = (struct value){.type = V_DICT, .dict = d};
        return 0;
    }
    default: LM_ASSERT(!"not an expression");
    }
    return -1;
}

static int eval(struct ctx *c, struct scope *s, const struct node *n, struct value *out) {
    if (++c->depth > LM_TEMPLATE_MAX_DEPTH) return jx_fail(c, n, "template nested too deeply (recursion?)");
    if (jx_charge(c, 1) < 0) return -1;
    c->at = n;
    int r = eval_inner(c, s, n, out);
    c->depth--;
    return r < 0 || c->failed ? -1 : 0;
}

/* ---- statements --------------------------------------------------------- */

/* names = v, unpacking when there are several names. */
static int assign(struct ctx *c, struct scope *s, const struct node *n, struct value v) {
    if (n->n_names == 1) return scope_set(c, s, n->names[0], v);
    struct list *l;
    if (jx_iterate(c, n, v, &l) < 0) return -1;
    if (l->n != n->n_names)
        return jx_fail(c, n, "%s values to unpack (expected %u, got %zu)", l->n < n->n_names ? "not enough" : "too many", n->n_names, l->n);
    for (uint32_t i = 0; i < n->n_names; i++)
        if (scope_set(c, s, n->names[i], l->items[i]) < 0) return -1;
    return 0;
}

/* Runs body with output going to a fresh string. */
static int capture(struct ctx *c, struct scope *s, const struct node *body, struct value *out) {
    struct sb b = {0}, *saved = c->out;
    c->out = &b;
    int r = exec(c, s, body);
    c->out = saved;
    *out = sb_value(&b);
    return r;
}

int jx_call_macro(struct ctx *c, const struct node *at, struct func *f, struct args *a, struct value *out) {
    const struct node *m = f->macro;
    struct scope *s = scope_new(c, f->closure);
    if (!s) return -1;
    if (a->n_pos > m->n_names)
        return jx_fail(c, at, "macro '%.*s' takes not more than %u argument(s)", (int)m->name.len, m->name.s, m->n_names);
    bool set[64] = {false};
    if (m->n_names > 64) return jx_fail(c, at, "macro '%.*s' has too many parameters", (int)m->name.len, m->name.s);
    for (size_t i = 0; i < a->n_pos; i++) {
        if (scope_set(c, s, m->names[i], a->pos[i]) < 0) return -1;
        set[i] = true;
    }
    for (size_t k = 0; k < a->n_kw; k++) {
        uint32_t i;
        for (i = 0; i < m->n_names; i++)
            if (m->names[i].len == a->kw_names[k].len && !memcmp(m->names[i].s, a->kw_names[k].s, a->kw_names[k].len)) break;
        if (i == m->n_names)
            return jx_fail(c, at, "macro '%.*s' takes no keyword argument '%.*s'", (int)m->name.len, m->name.s, (int)a->kw_names[k].len,
                           a->kw_names[k].s);
        if (set[i]) return jx_fail(c, at, "macro '%.*s' got multiple values for argument '%.*s'", (int)m->name.len, m->name.s,
                                   (int)m->names[i].len, m->names[i].s);
        if (scope_set(c, s, m->names[i], a->kw_vals[k]) < 0) return -1;
        set[i] = true;
    }
    for (uint32_t i = 0; i < m->n_names; i++) {
        if (set[i]) continue;
        struct value v = {.type = V_UNDEF, .aux = U_NAME, .s = m->names[i].s, .len = m->names[i].len};
        if (m->kids[i] && eval(c, s, m->kids[i], &v) < 0) return -1;
        if (scope_set(c, s, m->names[i], v) < 0) return -1;
    }
    if (++c->depth > LM_TEMPLATE_MAX_DEPTH) return jx_fail(c, at, "template nested too deeply (recursion?)");
    int r = capture(c, s, m->c, out);
    c->depth--;
    return r < 0 ? -1 : 0;
}

static int exec_for(struct ctx *c, struct scope *s, const struct node *n) {
    struct value it;
    struct list *items;
    if (eval(c, s, n->a, &it) < 0 || jx_iterate(c, n->a, it, &items) < 0) return -1;
    struct scope *body = scope_new(c, s);
    if (!body) return -1;
    if (n->b) {
        /* the loop's if filters first, so loop.length counts what remains */
        struct list *kept = jx_list_new(c, items->n);
        if (!kept) return -1;
        kept->n = 0;
        for (size_t i = 0; i < items->n; i++) {
            struct value ok;
            body->n = 0;
            if (assign(c, body, n, items->items[i]) < 0 || eval(c, body, n->b, &ok) < 0) return -1;
            if (jx_truthy(ok)) kept->items[kept->n++] = items->items[i];
        }
        items = kept;
    }
    struct loop *lp = jx_alloc(c, sizeof *lp);
    if (!lp) return -1;
    lp->items = items;
    static const struct value loop_name = {.type = V_STR, .len = 4, .s = "loop"};
    for (lp->i = 0; lp->i < items->n; lp->i++) {
        body->n = 0;  /* a fresh scope each iteration, as in jinja2 */
        if (scope_set(c, body, loop_name, (struct value){.type = V_LOOP, .loop = lp}) < 0) return -1;
        if (assign(c, body, n, items->items[lp->i]) < 0) return -1;
        int r = exec(c, body, n->c);
        if (r < 0) return -1;
        if (r == EXEC_BREAK) break;
    }
    if (!items->n && n->d) return exec(c, s, n->d);
    return EXEC_OK;
}

static int exec_inner(struct ctx *c, struct scope *s, const struct node *n) {
    struct value v;
    switch (n->kind) {
    case N_BODY:
        for (uint32_t i = 0; i < n->n_kids; i++) {
            int r = exec(c, s, n->kids[i]);
            if (r) return r;
        }
        return EXEC_OK;
    case N_TEXT: return jx_sb_put(c, c->out, n->val.s, n->val.len);
    case N_OUTPUT:
        if (eval(c, s, n->a, &v) < 0) return -1;
        return jx_to_str(c, v, c->out);
    case N_IF:
        if (eval(c, s, n->a, &v) < 0) return -1;
        if (jx_truthy(v)) return exec(c, s, n->b);
        return n->c ? exec(c, s, n->c) : EXEC_OK;
    case N_FOR: return exec_for(c, s, n);
    case N_SET:
        if (eval(c, s, n->a, &v) < 0) return -1;
        return assign(c, s, n, v);
    case N_SET_NS: {
        if (eval(c, s, n->a, &v) < 0) return -1;
        struct value *ns = scope_find(c, s, n->name);
        if (!ns || ns->type != V_NS) return jx_fail(c, n, "cannot assign attribute on non-namespace object");
        return jx_ns_set(c, ns->ns, n->val, v);
    }
    case N_SET_BLOCK:
    case N_FILTER_BLOCK: {
        struct scope *inner = scope_new(c, s);
        if (!inner) return -1;
        int r = capture(c, inner, n->c, &v);
        if (r) return r;
        if (n->b && eval_filter(c, s, n->b, &v, &v) < 0) return -1;
        if (n->kind == N_SET_BLOCK) return assign(c, s, n, v);
        return jx_to_str(c, v, c->out);
    }
    case N_MACRO: {
        struct func *f = jx_alloc(c, sizeof *f);
        if (!f) return -1;
        memset(f, 0, sizeof *f);
        f->kind = F_MACRO;
        f->macro = n;
        f->closure = s;
        return scope_set(c, s, n->name, (struct value){.type = V_FUNC, .fn = f});
    }
    case N_WITH: {
        struct scope *inner = scope_new(c, s);
        if (!inner) return -1;
        for (uint32_t i = 0; i < n->n_names; i++)
            if (eval(c, s, n->kids[i], &v) < 0 || scope_set(c, inner, n->names[i], v) < 0) return -1;
        return exec(c, inner, n->c);
    }
    case N_BREAK: return EXEC_BREAK;
    case N_CONTINUE: return EXEC_CONTINUE;
    default: LM_ASSERT(!"not a statement");
    }
    return -1;
}

static int exec(struct ctx *c, struct scope *s, const struct node *n) {
    if (++c->depth > LM_TEMPLATE_MAX_DEPTH) return jx_fail(c, n, "template nested too deeply (recursion?)");
    if (jx_charge(c, 1) < 0) return -1;
    c->at = n;
    int r = exec_inner(c, s, n);
    c->depth--;
    return r < 0 || c->failed ? -1 : r;
}

/* ---- entry points ------------------------------------------------------- */

static int set_json_var(struct ctx *c, struct scope *s, const char *key, size_t key_len, const struct lm_json *j) {
    struct value v;
    char *name = jx_strdup(c, key, key_len);
    if (!name || jx_from_json(c, j, &v) < 0) return -1;
    return scope_set(c, s, v_str(name, key_len), v);
}

static int set_str_var(struct ctx *c, struct scope *s, const char *name, const char *text) {
    if (!text) return 0;
    size_t n = strlen(text);
    if (!jx_utf8_valid(text, n)) return jx_fail(c, NULL, "%s is not valid UTF-8", name);
    return scope_set(c, s, v_cstr(name), v_str(text, n));
}

/* Renders with the variables of each object in var_objs (in order, later
 * ones winning; a "messages" key there is skipped), then messages and the
 * options' own variables. */
static int render(const char *tmpl, size_t tmpl_len, const struct lm_json *messages, const struct lm_json *const *var_objs,
                  size_t n_var_objs, const struct lm_template_opts *opts, struct lm_buf *out, struct lm_err *err) {
    static const struct lm_template_opts none = {0};
    if (!opts) opts = &none;
    struct ctx c = {
        .err = err,
        .max_steps = opts->max_steps ? opts->max_steps : LM_TEMPLATE_MAX_STEPS,
        .max_output = opts->max_output ? opts->max_output : LM_TEMPLATE_MAX_OUTPUT,
        .date = opts->date,
    };
    c.arena.cap = opts->max_memory ? opts->max_memory : LM_TEMPLATE_MAX_MEMORY;
    struct sb main_out = {0};
    int rc = -1;
    struct node *root = jx_parse(&c, tmpl, tmpl_len);
    struct scope *globals = root ? scope_new(&c, NULL) : NULL;
    if (!globals) goto done;
    for (size_t k = 0; k < n_var_objs; k++) {
        const struct lm_json *o = var_objs[k];
        if (!o) continue;
        if (o->type != LM_JSON_OBJECT) {
            jx_fail(&c, NULL, "template variables must be a JSON object");
            goto done;
        }
        for (size_t i = 0; i < o->obj.n; i++) {
            const struct lm_json_member *m = &o->obj.members[i];
            if (m->key_len == 8 && !memcmp(m->key, "messages", 8)) continue;
            if (set_json_var(&c, globals, m->key, m->key_len, &m->value) < 0) goto done;
        }
    }
    if (messages->type != LM_JSON_ARRAY) {
        jx_fail(&c, NULL, "messages must be a JSON array");
        goto done;
    }
    if (set_json_var(&c, globals, "messages", 8, messages) < 0 ||
        scope_set(&c, globals, v_cstr("add_generation_prompt"), v_bool(opts->add_generation_prompt)) < 0 ||
        set_str_var(&c, globals, "bos_token", opts->bos_token) < 0 || set_str_var(&c, globals, "eos_token", opts->eos_token) < 0)
        goto done;
    c.out = &main_out;
    /* The template's top level has its own scope above the inputs. */
    struct scope *top = scope_new(&c, globals);
    if (!top || exec(&c, top, root) < 0) goto done;
    lm_buf_append(out, main_out.p ? main_out.p : "", main_out.len);
    rc = 0;
done:
    jx_arena_free(&c.arena);
    return rc;
}

int lm_template_render_json(const char *tmpl, size_t tmpl_len, const struct lm_json *input, const struct lm_template_opts *opts,
                            struct lm_buf *out, struct lm_err *err) {
    const struct lm_json *messages = input, *vars[2] = {opts ? opts->vars : NULL, NULL};
    if (input->type == LM_JSON_OBJECT) {
        messages = lm_json_get(input, "messages");
        vars[1] = input;
        if (!messages) return lm_errf(err, "the conversation object has no \"messages\"");
    }
    return render(tmpl, tmpl_len, messages, vars, 2, opts, out, err);
}

int lm_template_render(const char *tmpl, size_t tmpl_len, const struct lm_chat_msg *msgs, size_t n_msgs, bool add_generation_prompt,
                       const char *bos_token, const char *eos_token, struct lm_buf *out, struct lm_err *err) {
    /* Build [{"role": ..., "content": ...}, ...] as a JSON value that points
     * at the caller's strings (it is only read). */
    struct lm_json *items = lm_xcalloc(n_msgs ? n_msgs : 1, sizeof *items);
    struct lm_json_member *members = lm_xcalloc(n_msgs ? 2 * n_msgs : 1, sizeof *members);
    for (size_t i = 0; i < n_msgs; i++) {
        const char *text[2] = {msgs[i].role, msgs[i].content};
        for (int k = 0; k < 2; k++) {
            struct lm_json_member *m = &members[2 * i + (size_t)k];
            m->key = (char *)(k ? "content" : "role");
            m->key_len = k ? 7 : 4;
            if (text[k]) {
                m->value.type = LM_JSON_STRING;
                m->value.str.s = (char *)text[k];
                m->value.str.len = strlen(text[k]);
            }
        }
        items[i].type = LM_JSON_OBJECT;
        items[i].obj.members = &members[2 * i];
        items[i].obj.n = 2;
    }
    struct lm_json arr = {.type = LM_JSON_ARRAY, .arr = {items, n_msgs}};
    struct lm_template_opts opts = {.add_generation_prompt = add_generation_prompt, .bos_token = bos_token, .eos_token = eos_token};
    int r = render(tmpl, tmpl_len, &arr, NULL, 0, &opts, out, err);
    free(members);
    free(items);
    return r;
}

int lm_template_render_text(const char *tmpl, size_t tmpl_len, const char *json, size_t json_len, const struct lm_template_opts *opts,
                            struct lm_buf *out, struct lm_err *err) {
    struct lm_json doc;
    if (lm_json_parse(&doc, json, json_len, err) < 0) {
        lm_err_prefix(err, "messages");
        return -1;
    }
    int r = lm_template_render_json(tmpl, tmpl_len, &doc, opts, out, err);
    lm_json_free(&doc);
    return r;
}
