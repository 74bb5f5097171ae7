/* jinja_int.h: what the parts of the Jinja interpreter share (not public).
 *
 *   jinja_parse.c   text -> tokens (whitespace control) -> syntax tree
 *   jinja_value.c   values with Python semantics: printing, comparison,
 *                   strings, JSON in and out
 *   jinja_str.c     Python's str: case mapping, methods, %-formatting
 *   jinja_builtin.c attribute access, filters, tests, dict/list methods and
 *                   global functions
 *   jinja.c         the evaluator and the public entry points
 *
 * Everything a render allocates lives in one arena freed at the end, so
 * values are plain structs that share freely and nothing is freed early.
 * Lists, tuples and dicts never change once built (the sandbox forbids
 * mutating them); namespaces are the only mutable values. Strings are
 * (pointer, length) views of valid UTF-8, without a terminating NUL.
 */
#ifndef LM_JINJA_INT_H
#define LM_JINJA_INT_H

#include "lm/jinja.h"
#include "lm/unicode.h"

#include <string.h>

/* ---- arena -------------------------------------------------------------- */

struct arena_chunk;
struct arena {
    struct arena_chunk *head;
    size_t used, cap;   /* bytes handed out so far, and the limit */
};

/* ---- values ------------------------------------------------------------- */

enum vtype {
    V_UNDEF,   /* jinja2's Undefined: falsy, prints empty, fails in arithmetic */
    V_NONE,
    V_BOOL,
    V_INT,
    V_FLOAT,
    V_STR,
    V_LIST,    /* also tuples (VF_TUPLE) */
    V_DICT,
    V_NS,      /* namespace(): the one mutable value */
    V_FUNC,    /* macro, builtin function or bound method */
    V_LOOP,    /* the loop variable of a for */
};

enum {
    VF_MARKUP = 1,  /* V_STR: markupsafe.Markup (from |safe), whose + escapes the other side */
    VF_TUPLE = 1,   /* V_LIST */
    VF_GEN = 2,     /* V_LIST: a generator (what map, select, ... return): always
                       true, no len(), not JSON, one pass (then empty) */
    VF_KEYS = 4,    /* V_LIST: dict.keys(), .values(), .items() views: */
    VF_VALUES = 8,  /* no indexing, not JSON, printed as dict_keys([...]) */
    VF_ITEMS = 16,
    VF_OPAQUE = VF_GEN | VF_KEYS | VF_VALUES | VF_ITEMS,  /* iterable, but not a list or tuple */
};

/* Why a value is undefined, for the message when it is used. */
enum undef_kind {
    U_NAME,       /* 'x' is undefined */
    U_ATTR,       /* 'T object' has no attribute 'x' (aux: the object's vtype) */
    U_ITEM,       /* 'T object' has no element ... */
    U_UNSAFE,     /* access to attribute 'x' of 'T' object is unsafe */
    U_HINT,       /* s holds the whole message */
};

struct list;
struct dict;
struct ns;
struct func;
struct loop;

struct value {
    uint8_t type;    /* enum vtype */
    uint8_t flags;   /* VF_* */
    uint8_t aux;     /* V_UNDEF: enum undef_kind, V_FUNC: unused */
    uint8_t aux2;    /* V_UNDEF: vtype of the object looked into */
    uint32_t len;    /* V_STR, V_UNDEF: bytes at s */
    union {
        bool b;
        int64_t i;
        double f;
        const char *s;
        struct list *list;
        struct dict *dict;
        struct ns *ns;
        struct func *fn;
        struct loop *loop;
    };
};

struct list {
    size_t n;
    bool consumed;     /* a generator that has been iterated */
    struct value items[];
};

struct dict {
    size_t n;
    struct value *keys, *vals;
};

struct ns {
    size_t n, cap;
    struct value *keys, *vals;  /* keys are strings */
};

/* ---- syntax tree -------------------------------------------------------- */

enum node_kind {
    /* expressions */
    N_CONST,     /* val */
    N_NAME,      /* name */
    N_ATTR,      /* a.name */
    N_ITEM,      /* a[b] */
    N_SLICE,     /* a[b:c:d], any of b c d may be NULL */
    N_CALL,      /* a(kids...), keyword args as N_KWARG */
    N_KWARG,     /* name=a */
    N_FILTER,    /* a|name(kids...); a is NULL in filter blocks */
    N_TEST,      /* a is [not] name(kids...); op: negated */
    N_BINOP,     /* a op b */
    N_UNARY,     /* op a */
    N_AND,
    N_OR,
    N_NOT,
    N_CONCAT,    /* kids joined with ~ */
    N_COMPARE,   /* a, then kids of N_OPERAND (op, a) */
    N_OPERAND,
    N_COND,      /* b if a else c (c may be NULL) */
    N_LIST,
    N_TUPLE,
    N_DICT,      /* kids of N_PAIR (a: b) */
    N_PAIR,
    /* statements */
    N_BODY,      /* kids */
    N_TEXT,      /* val (a string) */
    N_OUTPUT,    /* {{ a }} */
    N_IF,        /* if a: b else c (c: an N_IF for elif, an N_BODY, or NULL) */
    N_FOR,       /* for names in a [if b]: c else d */
    N_SET,       /* names = a */
    N_SET_NS,    /* name.attr = a (attr in val) */
    N_SET_BLOCK, /* names = capture of c, through the filter chain b */
    N_MACRO,     /* name(names = kids defaults): c */
    N_FILTER_BLOCK, /* output c through the filter chain b */
    N_WITH,      /* with names = kids: c */
    N_BREAK,
    N_CONTINUE,
};

enum {
    OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW,          /* N_BINOP */
    OP_NEG, OP_POS,                                                      /* N_UNARY */
    OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_IN, OP_NOTIN,           /* N_OPERAND */
};

struct builtin;
struct args;

struct node {
    uint8_t kind;
    uint8_t op;
    uint32_t line, col;
    struct node *a, *b, *c, *d;
    struct node **kids;
    uint32_t n_kids;
    uint32_t n_names;
    struct value name;        /* a string: name, attribute, filter or test */
    struct value *names;      /* assignment targets, macro parameters */
    struct value val;         /* N_CONST, N_TEXT, N_SET_NS attribute */
    const struct builtin *fn; /* N_FILTER, N_TEST: resolved at parse time (NULL: unknown, fails if run) */
};

/* ---- the interpreter's state -------------------------------------------- */

struct scope;

/* A growable string in the arena. */
struct sb {
    char *p;
    size_t len, cap;
};

struct ctx {
    struct arena arena;
    struct lm_err *err;
    bool failed;              /* err holds the first error; later ones are not recorded */
    const struct node *at;    /* node being evaluated, for errors raised without one */
    uint64_t steps, max_steps;
    size_t max_output;
    int depth;
    struct sb *out;           /* where output goes now (captures swap it) */
    const char *date;         /* strftime_now's pinned date, or NULL */
};

/* Arena allocation; NULL (with the error set) past the memory limit. */
void *jx_alloc(struct ctx *c, size_t n);
/* Frees every chunk. */
void jx_arena_free(struct arena *a);
/* Copies n bytes into the arena. */
char *jx_strdup(struct ctx *c, const char *s, size_t n);

/* Records "line L, column C: msg" at node n (or c->at) unless an error is
 * already recorded; returns -1. */
int jx_fail(struct ctx *c, const struct node *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Charges n units of work against the step budget: -1 when exhausted. */
int jx_charge(struct ctx *c, uint64_t n);

/* Parses the template into a tree (N_BODY). NULL with the error set. */
struct node *jx_parse(struct ctx *c, const char *src, size_t len);
/* The builtin filter or test called name (NULL if none). */
const struct builtin *jx_find_filter(const char *name, size_t len);
const struct builtin *jx_find_test(const char *name, size_t len);

/* ---- values (jinja_value.c) --------------------------------------------- */

static inline struct value v_none(void) { return (struct value){.type = V_NONE}; }
static inline struct value v_bool(bool b) { return (struct value){.type = V_BOOL, .b = b}; }
static inline struct value v_int(int64_t i) { return (struct value){.type = V_INT, .i = i}; }
static inline struct value v_float(double f) { return (struct value){.type = V_FLOAT, .f = f}; }
static inline struct value v_str(const char *s, size_t n) { return (struct value){.type = V_STR, .len = (uint32_t)n, .s = s}; }
static inline struct value v_cstr(const char *s) { return v_str(s, strlen(s)); }
static inline struct value v_undef_name(const char *s, size_t n) {
    return (struct value){.type = V_UNDEF, .aux = U_NAME, .len = (uint32_t)n, .s = s};
}
/* An undefined value explaining that obj has no attribute/element key. */
struct value jx_v_undef_of(struct ctx *c, enum undef_kind kind, struct value obj, struct value key);
/* The message an undefined value carries. */
void jx_undef_message(struct ctx *c, struct value u, struct sb *out);

int jx_sb_put(struct ctx *c, struct sb *b, const char *s, size_t n);
int jx_sb_putc(struct ctx *c, struct sb *b, char ch);
int jx_sb_printf(struct ctx *c, struct sb *b, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static inline struct value sb_value(struct sb *b) { return v_str(b->p ? b->p : "", b->len); }

struct list *jx_list_new(struct ctx *c, size_t n);  /* n items to fill in */
static inline struct value v_list(struct list *l, bool tuple) {
    return (struct value){.type = V_LIST, .flags = tuple ? VF_TUPLE : 0, .list = l};
}
/* A generator over the items of l (l must not be shared). */
static inline struct value v_gen(struct list *l) { return (struct value){.type = V_LIST, .flags = VF_GEN, .list = l}; }
struct dict *jx_dict_new(struct ctx *c, size_t n);   /* n pairs to fill in */
/* Index of key in d, or -1 (Python equality of keys). */
long jx_dict_find(struct ctx *c, const struct dict *d, struct value key);
/* The namespace's attribute (NULL if absent); set adds or replaces. */
struct value *jx_ns_get(struct ns *ns, const char *name, size_t len);
int jx_ns_set(struct ctx *c, struct ns *ns, struct value key, struct value v);

const char *jx_type_name(struct value v);   /* Python's type name: 'str', 'NoneType', ... */
bool jx_truthy(struct value v);
bool jx_is_number(struct value v);          /* bool, int or float */
double jx_num_as_double(struct value v);
bool jx_values_equal(struct ctx *c, struct value a, struct value b);
/* Python's a < b etc.: sets *res to -1/0/1; -1 (TypeError) when unordered. */
int jx_values_compare(struct ctx *c, const struct node *at, struct value a, struct value b, int *res);

/* str(v) and repr(v) appended to out. -1 on error (undefined in strict
 * contexts never happens here: str(Undefined) is ""). */
int jx_to_str(struct ctx *c, struct value v, struct sb *out);
int jx_to_repr(struct ctx *c, struct value v, struct sb *out);
/* str(v) as a value (strings are returned as they are). */
int jx_str_of(struct ctx *c, struct value v, struct value *out);
/* json.dumps(v, ...) as transformers' tojson filter calls it. */
int jx_to_json(struct ctx *c, const struct node *at, struct value v, const char *indent, size_t indent_len,
            bool ensure_ascii, struct value item_sep, struct value key_sep, bool sort_keys, struct sb *out);
/* A JSON document as template values (strings point into it). */
int jx_from_json(struct ctx *c, const struct lm_json *j, struct value *out);
/* HTML escape as markupsafe does (& < > " '). */
int jx_html_escape(struct ctx *c, struct value s, struct value *out);

/* UTF-8 helpers over valid text. */
size_t jx_utf8_len(const char *s, size_t n);   /* code points */
/* Byte offset of code point i (i <= length). */
size_t jx_utf8_offset(const char *s, size_t n, size_t i);
/* Python's str.isspace() of one code point (White_Space and \x1c-\x1f). */
static inline bool py_isspace(uint32_t cp) { return (cp >= 0x1c && cp <= 0x1f) || (lm_unicode_flags(cp) & LM_UC_SPACE); }
/* Valid UTF-8 throughout? */
bool jx_utf8_valid(const char *s, size_t n);

/* A list under construction (arena memory). */
struct lvec {
    struct value *v;
    size_t n, cap;
};
int jx_lvec_push(struct ctx *c, struct lvec *l, struct value x);
int jx_lvec_value(struct ctx *c, struct lvec *l, bool tuple, struct value *out);
/* An empty generator. */
int jx_empty_gen(struct ctx *c, struct value *out);

/* Turns a Python-style iterable into a list: list/tuple as is, dict keys,
 * string characters, undefined as empty; others fail (TypeError). */
int jx_iterate(struct ctx *c, const struct node *at, struct value v, struct list **out);

/* Fails with the message of an undefined value used where jinja2 raises. */
int jx_fail_undefined(struct ctx *c, const struct node *at, struct value u);

/* ---- Python's str (jinja_str.c) ---------------------------------------- */

static inline struct value v_markup(struct value s, bool markup) {
    s.flags = markup ? VF_MARKUP : 0;
    return s;
}
/* s[b..e) in bytes, keeping s's Markup flag. */
static inline struct value v_substr(struct value s, size_t b, size_t e) {
    struct value r = v_str(s.s + b, e - b);
    r.flags = s.flags;
    return r;
}
static inline bool jx_cp_is_digit(uint32_t cp) { return cp >= '0' && cp <= '9'; }
bool jx_cp_is_alpha(uint32_t cp);
/* The code point at s[*i] (valid UTF-8), advancing *i. */
uint32_t jx_next_cp(const char *s, size_t n, size_t *i);

enum jx_case { CASE_UPPER, CASE_LOWER, CASE_SWAP, CASE_CAPITALIZE, CASE_TITLE, CASE_TITLE_FILTER };
int jx_map_case(struct ctx *c, struct value s, enum jx_case mode, struct value *out);
/* str.isupper() (upper) or str.islower(). */
bool jx_str_case_is(struct value s, bool upper);
/* str.strip(chars) (chars NULL: whitespace); which: 1 left, 2 right, 3 both. */
struct value jx_strip(struct value s, const struct value *chars, int which);
int jx_splitlines(struct ctx *c, struct value s, bool keepends, struct lvec *parts);
int jx_str_replace(struct ctx *c, struct value s, struct value old, struct value new_, int64_t count, struct value *out);
/* str.center(width, fillchar) with its arguments in a. */
int jx_str_center(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out);
/* The str method called name, or NULL. */
const struct builtin *jx_find_str_method(const char *name, size_t len);
/* Python's fmt % args. */
int jx_py_percent_format(struct ctx *c, const struct node *at, struct value fmt, struct value args, struct value *out);

/* ---- builtins (jinja_builtin.c) ----------------------------------------- */

/* Arguments of a call: positional values, then keyword names and values. */
struct args {
    struct value *pos;
    size_t n_pos;
    struct value *kw_names, *kw_vals;
    size_t n_kw;
};

typedef int (*builtin_fn)(struct ctx *c, const struct node *at, struct value self, struct args *a, struct value *out);

struct builtin {
    const char *name;
    builtin_fn fn;
};

struct func {
    enum { F_MACRO, F_BUILTIN } kind;
    const struct node *macro;   /* F_MACRO */
    struct scope *closure;      /* F_MACRO: the scope it was defined in */
    const struct builtin *b;    /* F_BUILTIN */
    struct value self;          /* F_BUILTIN: receiver of a bound method */
};

struct loop {
    struct list *items;
    size_t i;
};

/* attribute (obj.name) and item (obj[key]) access, as the sandbox does it. */
int jx_get_attr(struct ctx *c, const struct node *at, struct value obj, struct value name, struct value *out);
int jx_get_item(struct ctx *c, const struct node *at, struct value obj, struct value key, struct value *out);
/* The global functions (range, namespace, ...), by name. */
const struct builtin *jx_find_global(const char *name, size_t len);
/* Binds a's arguments to params (NULL-terminated names; the first
 * n_required must be given) into out, which the caller has filled with the
 * defaults. Fails on unknown, repeated or missing arguments. */
int jx_bind_args(struct ctx *c, const struct node *at, const char *fname, struct args *a, const char *const *params,
              int n_required, struct value *out);
/* bind_args without parameters; integer (bool too) and string checks. */
int jx_no_args(struct ctx *c, const struct node *at, const char *fname, struct args *a);
int jx_want_int(struct ctx *c, const struct node *at, const char *what, struct value v, int64_t *out);
int jx_want_str(struct ctx *c, const struct node *at, const char *what, struct value v);
/* Calls a callable value (macro, builtin, method). */
int jx_call_value(struct ctx *c, const struct node *at, struct value fn, struct args *a, struct value *out);
/* Calls a macro (in jinja.c). */
int jx_call_macro(struct ctx *c, const struct node *at, struct func *f, struct args *a, struct value *out);

/* Python's `x in seq` (the in operator and test). */
int jx_value_in(struct ctx *c, const struct node *at, struct value x, struct value seq, bool *res);
/* Runs a test by name on v (select/reject use it). */
int jx_run_test(struct ctx *c, const struct node *at, const struct builtin *t, struct value v, struct args *a, bool *res);

#endif
