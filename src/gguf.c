/* gguf.c: the GGUF reader. Every length, count, dimension and offset read
 * from the file is checked against the buffer before it is used, and no
 * allocation is made that the buffer's size cannot justify (see "Memory" in
 * gguf.h). The writer is in gguf_write.c. */
#include "lm/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_MAGIC 0x46554747u /* "GGUF" read as little-endian u32 */
#define MAX_ARRAY_DEPTH 4
#define MAX_ALIGNMENT 65536u
#define MAX_TENSOR_NAME 255
#define MAX_DIMS 4
/* The fewest bytes of file an entry can take: a metadata entry is a key of
 * one byte and a type before its value (of one byte or more); a tensor info
 * a name of one byte, one dimension, a type and an offset. */
#define MIN_KV_BYTES (8 + 1 + 4)
#define MIN_TENSOR_BYTES (8 + 1 + 4 + 8 + 4 + 8)

/* The sizes the memory bound of gguf.h counts on. */
_Static_assert(sizeof(struct lm_gguf_value) <= 32, "a parsed array element takes 32 bytes");
_Static_assert(sizeof(struct lm_gguf_kv) <= 48, "a parsed metadata entry takes 48 bytes");
_Static_assert(sizeof(struct lm_gguf_tensor) <= 80, "a parsed tensor info takes 80 bytes");

static const char *const type_names[LM_GGUF_TYPE_COUNT] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64",
};
static const uint8_t type_sizes[LM_GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

size_t lm_gguf_type_size(enum lm_gguf_type t) {
    LM_ASSERT((unsigned)t < LM_GGUF_TYPE_COUNT);
    return type_sizes[t];
}

const char *lm_gguf_type_name(enum lm_gguf_type t) {
    return (unsigned)t < LM_GGUF_TYPE_COUNT ? type_names[t] : "unknown";
}

bool lm_gguf_str_eq(struct lm_gguf_str s, const char *c) {
    size_t n = strlen(c);
    return s.len == n && memcmp(s.data, c, n) == 0;
}

static const struct lm_gguf_file_type file_types[] = {
    [0] = {"F32", "all F32"}, [1] = {"F16", "F16"}, [2] = {"Q4_0", "Q4_0"}, [3] = {"Q4_1", "Q4_1"},
    [7] = {"Q8_0", "Q8_0"}, [8] = {"Q5_0", "Q5_0"}, [9] = {"Q5_1", "Q5_1"}, [10] = {"Q2_K", "Q2_K - Medium"},
    [11] = {"Q3_K_S", "Q3_K - Small"}, [12] = {"Q3_K_M", "Q3_K - Medium"}, [13] = {"Q3_K_L", "Q3_K - Large"},
    [14] = {"Q4_K_S", "Q4_K - Small"}, [15] = {"Q4_K_M", "Q4_K - Medium"}, [16] = {"Q5_K_S", "Q5_K - Small"},
    [17] = {"Q5_K_M", "Q5_K - Medium"}, [18] = {"Q6_K", "Q6_K"}, [19] = {"IQ2_XXS", "IQ2_XXS - 2.0625 bpw"},
    [20] = {"IQ2_XS", "IQ2_XS - 2.3125 bpw"}, [21] = {"Q2_K_S", "Q2_K - Small"},
    [22] = {"IQ3_XS", "IQ3_XS - 3.3 bpw"}, [23] = {"IQ3_XXS", "IQ3_XXS - 3.0625 bpw"},
    [24] = {"IQ1_S", "IQ1_S - 1.5625 bpw"}, [25] = {"IQ4_NL", "IQ4_NL - 4.5 bpw"},
    [26] = {"IQ3_S", "IQ3_S - 3.4375 bpw"}, [27] = {"IQ3_M", "IQ3_S mix - 3.66 bpw"},
    [28] = {"IQ2_S", "IQ2_S - 2.5 bpw"}, [29] = {"IQ2_M", "IQ2_M - 2.7 bpw"}, [30] = {"IQ4_XS", "IQ4_XS - 4.25 bpw"},
    [31] = {"IQ1_M", "IQ1_M - 1.75 bpw"}, [32] = {"BF16", "BF16"}, [36] = {"TQ1_0", "TQ1_0 - 1.69 bpw ternary"},
    [37] = {"TQ2_0", "TQ2_0 - 2.06 bpw ternary"}, [38] = {"MXFP4_MOE", "MXFP4 MoE"}, [39] = {"NVFP4", "NVFP4"},
    [40] = {"Q1_0", "Q1_0"}, [41] = {"Q2_0", "Q2_0"},
};

const struct lm_gguf_file_type *lm_gguf_file_type(int64_t ft) {
    int64_t i = ft & ~(int64_t)LM_GGUF_FILE_TYPE_GUESSED;
    if (i < 0 || i >= (int64_t)(sizeof file_types / sizeof file_types[0]) || !file_types[i].name) return NULL;
    return &file_types[i];
}

int64_t lm_gguf_file_type_of(const struct lm_gguf *g) {
    int64_t ft;
    if (lm_gguf_get_int(g, "general.file_type", &ft, NULL) == 1) return ft;
    /* llama.cpp's llama_model_loader: the K-quants count as their _M mix,
     * types it has no file type for as all F32 */
    static const int8_t of_type[LM_TYPE_COUNT] = {
        [LM_TYPE_F16] = 1, [LM_TYPE_BF16] = 32, [LM_TYPE_Q4_0] = 2, [LM_TYPE_Q4_1] = 3, [LM_TYPE_Q5_0] = 8,
        [LM_TYPE_Q5_1] = 9, [LM_TYPE_Q8_0] = 7, [LM_TYPE_Q2_K] = 10, [LM_TYPE_Q3_K] = 12, [LM_TYPE_Q4_K] = 15,
        [LM_TYPE_Q5_K] = 17, [LM_TYPE_Q6_K] = 18, [LM_TYPE_TQ1_0] = 36, [LM_TYPE_TQ2_0] = 37,
        [LM_TYPE_IQ2_XXS] = 19, [LM_TYPE_IQ2_XS] = 20, [LM_TYPE_IQ2_S] = 28, [LM_TYPE_IQ3_XXS] = 23,
        [LM_TYPE_IQ1_S] = 24, [LM_TYPE_IQ1_M] = 31, [LM_TYPE_IQ4_NL] = 25, [LM_TYPE_IQ4_XS] = 30, [LM_TYPE_IQ3_S] = 26,
    };
    uint64_t count[LM_TYPE_COUNT] = {0}, most = 0;
    int64_t guess = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        uint32_t t = g->tensors[i].t.type; /* < LM_TYPE_COUNT: checked at parse */
        if (++count[t] > most) most = count[t], guess = of_type[t];
    }
    return guess | LM_GGUF_FILE_TYPE_GUESSED;
}

/* ---- bounded reading ---------------------------------------------------- */

struct reader {
    const uint8_t *buf;
    size_t size, pos;
    struct lm_err *err;
};

static size_t remaining(const struct reader *r) { return r->size - r->pos; }

static int read_bytes(struct reader *r, void *dst, size_t n, const char *what) {
    if (remaining(r) < n)
        return lm_errf(r->err, "%s at offset %zu runs past the end of the file (%zu bytes)", what, r->pos, r->size);
    memcpy(dst, r->buf + r->pos, n);
    r->pos += n;
    return 0;
}

static int read_u32(struct reader *r, uint32_t *v, const char *what) { return read_bytes(r, v, 4, what); }
static int read_u64(struct reader *r, uint64_t *v, const char *what) { return read_bytes(r, v, 8, what); }

static int read_str(struct reader *r, struct lm_gguf_str *s, const char *what) {
    if (read_u64(r, &s->len, what) < 0) return -1;
    if (s->len > remaining(r))
        return lm_errf(r->err, "%s at offset %zu: length %llu runs past the end of the file", what, r->pos - 8,
                       (unsigned long long)s->len);
    s->data = (const char *)r->buf + r->pos;
    r->pos += s->len;
    return 0;
}

/* Printable form of a key or name for messages, cut short. */
static const char *shown(struct lm_gguf_str s, char *tmp, size_t cap) {
    size_t n = s.len < cap - 4 ? s.len : cap - 4;
    for (size_t i = 0; i < n; i++) tmp[i] = (s.data[i] >= 32 && s.data[i] < 127) ? s.data[i] : '?';
    strcpy(tmp + n, s.len > n ? "..." : "");
    return tmp;
}

/* Every allocation of the parse is counted here, so that the bound of
 * gguf.h is checked (frees are not subtracted: the bound holds anyway). */
static void count_mem(struct lm_gguf *g, uint64_t n) {
    g->mem += n;
    LM_ASSERT(g->mem <= LM_GGUF_MEM_PER_BYTE * (uint64_t)g->size + LM_GGUF_MEM_SLACK);
}

static void *parse_calloc(struct lm_gguf *g, uint64_t n, size_t size) {
    count_mem(g, n * size); /* n was checked against the buffer, so no overflow */
    return lm_xcalloc(n, size);
}

/* Storage for n elements of an array, freed with g. */
static void *alloc_elems(struct lm_gguf *g, uint64_t n, size_t size) {
    if (g->n_allocs == g->cap_allocs) {
        size_t cap = g->cap_allocs ? g->cap_allocs * 2 : 16;
        count_mem(g, (cap - g->cap_allocs) * sizeof *g->allocs);
        g->allocs = lm_xrealloc(g->allocs, cap * sizeof *g->allocs);
        g->cap_allocs = cap;
    }
    return g->allocs[g->n_allocs++] = parse_calloc(g, n, size);
}

static int read_value(struct lm_gguf *g, struct reader *r, enum lm_gguf_type type, struct lm_gguf_value *v, int depth);

static int read_array(struct lm_gguf *g, struct reader *r, struct lm_gguf_value *v, int depth) {
    uint32_t elem = 0;
    if (read_u32(r, &elem, "array element type") < 0) return -1;
    if (elem >= LM_GGUF_TYPE_COUNT) return lm_errf(r->err, "unknown array element type %u at offset %zu", elem, r->pos - 4);
    if (elem == LM_GGUF_ARRAY && depth >= MAX_ARRAY_DEPTH)
        return lm_errf(r->err, "arrays nested deeper than %d at offset %zu", MAX_ARRAY_DEPTH, r->pos - 4);
    uint64_t n = 0;
    if (read_u64(r, &n, "array length") < 0) return -1;
    v->arr.type = (enum lm_gguf_type)elem;
    v->arr.n = n;
    /* Smallest encoding of one element: its fixed size, a string's u64
     * length, an array's type and length. */
    uint64_t min_size = elem == LM_GGUF_STRING ? 8 : elem == LM_GGUF_ARRAY ? 12 : type_sizes[elem], need;
    if (!lm_mul_ok(n, min_size, &need) || need > remaining(r))
        return lm_errf(r->err, "array of %llu %s at offset %zu runs past the end of the file", (unsigned long long)n,
                       type_names[elem], r->pos - 12);
    if (elem != LM_GGUF_STRING && elem != LM_GGUF_ARRAY) {
        v->arr.raw = r->buf + r->pos;
        if (elem == LM_GGUF_BOOL)
            for (uint64_t i = 0; i < n; i++)
                if (r->buf[r->pos + i] > 1)
                    return lm_errf(r->err, "bool array element at offset %zu is %u, not 0 or 1", (size_t)(r->pos + i),
                                   r->buf[r->pos + i]);
        r->pos += need;
        return 0;
    }
    if (n == 0) return 0;
    if (elem == LM_GGUF_STRING) {
        /* Only where each string is: as many bytes as its length field. */
        const uint8_t **strs = alloc_elems(g, n, sizeof *strs);
        v->arr.strs = strs;
        for (uint64_t i = 0; i < n; i++) {
            struct lm_gguf_str s;
            strs[i] = r->buf + r->pos;
            if (read_str(r, &s, "string") < 0) return -1;
        }
        return 0;
    }
    struct lm_gguf_value *items = alloc_elems(g, n, sizeof *items);
    v->arr.items = items;
    for (uint64_t i = 0; i < n; i++)
        if (read_value(g, r, LM_GGUF_ARRAY, &items[i], depth + 1) < 0) return -1;
    return 0;
}

static int read_value(struct lm_gguf *g, struct reader *r, enum lm_gguf_type type, struct lm_gguf_value *v, int depth) {
    v->type = type;
    uint8_t b[8] = {0};
    switch (type) {
    case LM_GGUF_STRING: return read_str(r, &v->str, "string");
    case LM_GGUF_ARRAY: return read_array(g, r, v, depth);
    default: break;
    }
    if (read_bytes(r, b, type_sizes[type], type_names[type]) < 0) return -1;
    switch (type) {
    case LM_GGUF_U8: v->u64 = b[0]; break;
    case LM_GGUF_I8: v->i64 = (int8_t)b[0]; break;
    case LM_GGUF_U16: { uint16_t x; memcpy(&x, b, 2); v->u64 = x; break; }
    case LM_GGUF_I16: { int16_t x; memcpy(&x, b, 2); v->i64 = x; break; }
    case LM_GGUF_U32: { uint32_t x; memcpy(&x, b, 4); v->u64 = x; break; }
    case LM_GGUF_I32: { int32_t x; memcpy(&x, b, 4); v->i64 = x; break; }
    case LM_GGUF_U64: memcpy(&v->u64, b, 8); break;
    case LM_GGUF_I64: memcpy(&v->i64, b, 8); break;
    case LM_GGUF_F32: { float x; memcpy(&x, b, 4); v->f64 = x; break; }
    case LM_GGUF_F64: memcpy(&v->f64, b, 8); break;
    case LM_GGUF_BOOL:
        if (b[0] > 1) return lm_errf(r->err, "bool value at offset %zu is %u, not 0 or 1", r->pos - 1, b[0]);
        v->u64 = b[0];
        break;
    default: LM_ASSERT(0);
    }
    return 0;
}

/* ---- name indexes ------------------------------------------------------- */

static uint64_t hash_bytes(const char *s, uint64_t n) {
    uint64_t h = 1469598103934665603ull;
    for (uint64_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

static uint64_t index_capacity(uint64_t n) {
    uint64_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    return cap;
}

/* Inserts entry i named s; returns the index of an existing entry with the
 * same name instead, or -1 when inserted. */
typedef struct lm_gguf_str (*name_of_fn)(const struct lm_gguf *g, uint64_t i);

static int64_t index_insert(const struct lm_gguf *g, uint32_t *table, uint64_t cap, name_of_fn name_of, uint64_t i) {
    struct lm_gguf_str s = name_of(g, i);
    for (uint64_t h = hash_bytes(s.data, s.len) & (cap - 1);; h = (h + 1) & (cap - 1)) {
        if (!table[h]) {
            table[h] = (uint32_t)(i + 1);
            return -1;
        }
        struct lm_gguf_str o = name_of(g, table[h] - 1);
        if (o.len == s.len && memcmp(o.data, s.data, s.len) == 0) return table[h] - 1;
    }
}

static int64_t index_find(const struct lm_gguf *g, const uint32_t *table, uint64_t cap, name_of_fn name_of,
                          const char *name) {
    if (!table) return -1;
    uint64_t n = strlen(name);
    for (uint64_t h = hash_bytes(name, n) & (cap - 1); table[h]; h = (h + 1) & (cap - 1)) {
        struct lm_gguf_str o = name_of(g, table[h] - 1);
        if (o.len == n && memcmp(o.data, name, n) == 0) return table[h] - 1;
    }
    return -1;
}

static struct lm_gguf_str kv_name(const struct lm_gguf *g, uint64_t i) { return g->kv[i].key; }
static struct lm_gguf_str tensor_name(const struct lm_gguf *g, uint64_t i) { return g->tensors[i].name; }

/* ---- parse -------------------------------------------------------------- */

static int parse_kvs(struct lm_gguf *g, struct reader *r) {
    char tmp[80];
    g->kv = parse_calloc(g, g->n_kv, sizeof *g->kv);
    for (uint64_t i = 0; i < g->n_kv; i++) {
        struct lm_gguf_kv *kv = &g->kv[i];
        if (read_str(r, &kv->key, "metadata key") < 0) return -1;
        if (kv->key.len == 0) return lm_errf(r->err, "metadata key %llu is empty", (unsigned long long)i);
        uint32_t type = 0;
        if (read_u32(r, &type, "metadata value type") < 0) return -1;
        if (type >= LM_GGUF_TYPE_COUNT)
            return lm_errf(r->err, "metadata '%s': unknown value type %u", shown(kv->key, tmp, sizeof tmp), type);
        if (read_value(g, r, (enum lm_gguf_type)type, &kv->value, 0) < 0) {
            lm_err_prefix(r->err, "metadata");
            return -1;
        }
    }
    /* Indexed once all are read, so the index is paid for by entries the
     * file holds, not by the count it claims. */
    g->kv_index_cap = index_capacity(g->n_kv);
    g->kv_index = parse_calloc(g, g->kv_index_cap, sizeof *g->kv_index);
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (index_insert(g, g->kv_index, g->kv_index_cap, kv_name, i) >= 0)
            return lm_errf(r->err, "metadata key '%s' appears twice", shown(g->kv[i].key, tmp, sizeof tmp));
    return 0;
}

static int parse_alignment(struct lm_gguf *g, struct lm_err *err) {
    g->alignment = 32;
    const struct lm_gguf_value *v = lm_gguf_get(g, "general.alignment");
    if (!v) return 0;
    if (v->type != LM_GGUF_U32)
        return lm_errf(err, "general.alignment: expected u32, found %s", lm_gguf_type_name(v->type));
    if (v->u64 == 0 || (v->u64 & (v->u64 - 1)) || v->u64 > MAX_ALIGNMENT)
        return lm_errf(err, "general.alignment: %llu is not a power of two between 1 and %u", (unsigned long long)v->u64,
                       MAX_ALIGNMENT);
    g->alignment = v->u64;
    return 0;
}

static int parse_tensor_info(struct lm_gguf *g, struct reader *r, struct lm_gguf_tensor *t) {
    char tmp[80];
    if (read_str(r, &t->name, "tensor name") < 0) return -1;
    const char *name = shown(t->name, tmp, sizeof tmp);
    if (t->name.len == 0 || t->name.len > MAX_TENSOR_NAME)
        return lm_errf(r->err, "tensor name '%s' has length %llu (must be 1..%d)", name, (unsigned long long)t->name.len,
                       MAX_TENSOR_NAME);
    uint32_t n_dims = 0, type = 0;
    if (read_u32(r, &n_dims, "tensor dimension count") < 0) return -1;
    if (n_dims < 1 || n_dims > MAX_DIMS)
        return lm_errf(r->err, "tensor '%s' has %u dimensions (at most %d supported)", name, n_dims, MAX_DIMS);
    t->t.n_dims = (int)n_dims;
    for (int d = 0; d < MAX_DIMS; d++) t->t.ne[d] = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        uint64_t ne = 0;
        if (read_u64(r, &ne, "tensor dimension") < 0) return -1;
        if (ne == 0 || ne > (uint64_t)INT64_MAX)
            return lm_errf(r->err, "tensor '%s': dimension %u is %llu", name, d, (unsigned long long)ne);
        t->t.ne[d] = (int64_t)ne;
    }
    if (read_u32(r, &type, "tensor type") < 0 || read_u64(r, &t->offset, "tensor offset") < 0) return -1;
    const struct lm_type_traits *tt = lm_type_get(type);
    if (!tt) return lm_errf(r->err, "tensor '%s' has unknown type %u", name, type);
    t->t.type = (enum lm_type)type;
    if (t->t.ne[0] % tt->blck)
        return lm_errf(r->err, "tensor '%s': row length %lld is not a multiple of the %s block size %d", name,
                       (long long)t->t.ne[0], tt->name, tt->blck);
    uint64_t size = (uint64_t)t->t.ne[0] / (uint64_t)tt->blck;
    bool ok = lm_mul_ok(size, tt->size, &size);
    for (int d = 1; d < MAX_DIMS; d++) ok = ok && lm_mul_ok(size, (uint64_t)t->t.ne[d], &size);
    if (!ok || size > (uint64_t)INT64_MAX)
        return lm_errf(r->err, "tensor '%s': size of shape [%lld, %lld, %lld, %lld] overflows", name,
                       (long long)t->t.ne[0], (long long)t->t.ne[1], (long long)t->t.ne[2], (long long)t->t.ne[3]);
    t->size = size;
    return 0;
}

static int cmp_by_offset(const void *a, const void *b) {
    const struct lm_gguf_tensor *x = *(const struct lm_gguf_tensor *const *)a, *y = *(const struct lm_gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int place_tensors(struct lm_gguf *g, struct lm_err *err) {
    char tmp[80], tmp2[80];
    uint64_t data_size = g->size - g->data_offset;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        struct lm_gguf_tensor *t = &g->tensors[i];
        uint64_t end;
        if (t->offset % g->alignment)
            return lm_errf(err, "tensor '%s': offset %llu is not a multiple of the alignment %llu",
                           shown(t->name, tmp, sizeof tmp), (unsigned long long)t->offset,
                           (unsigned long long)g->alignment);
        if (!lm_add_ok(t->offset, t->size, &end) || end > data_size)
            return lm_errf(err, "tensor '%s': data (offset %llu, %llu bytes) runs past the end of the file",
                           shown(t->name, tmp, sizeof tmp), (unsigned long long)t->offset, (unsigned long long)t->size);
        t->t.data = g->buf + g->data_offset + t->offset;
    }
    if (g->n_tensors < 2) return 0;
    struct lm_gguf_tensor **sorted = parse_calloc(g, g->n_tensors, sizeof *sorted);
    for (uint64_t i = 0; i < g->n_tensors; i++) sorted[i] = &g->tensors[i];
    qsort(sorted, g->n_tensors, sizeof *sorted, cmp_by_offset);
    int rc = 0;
    for (uint64_t i = 1; i < g->n_tensors && rc == 0; i++)
        if (sorted[i - 1]->offset + sorted[i - 1]->size > sorted[i]->offset)
            rc = lm_errf(err, "tensors '%s' and '%s' overlap in the file", shown(sorted[i - 1]->name, tmp, sizeof tmp),
                         shown(sorted[i]->name, tmp2, sizeof tmp2));
    free(sorted);
    return rc;
}

int lm_gguf_parse(struct lm_gguf *g, const void *buf, size_t size, struct lm_err *err) {
    memset(g, 0, sizeof *g);
    g->buf = buf;
    g->size = size;
    struct reader r = {buf, size, 0, err};
    uint32_t magic;
    if (size < 4 || (memcpy(&magic, buf, 4), magic != GGUF_MAGIC)) return lm_errf(err, "not a GGUF file (bad magic)");
    r.pos = 4;
    if (read_u32(&r, &g->version, "version") < 0) return -1;
    if (g->version == 1) return lm_errf(err, "GGUF version 1 is not supported (only 2 and 3)");
    if (g->version != 2 && g->version != 3)
        return lm_errf(err, "unsupported GGUF version %u%s", g->version,
                       (g->version & 0xffff) == 0 ? " (a big-endian file?)" : "");
    if (read_u64(&r, &g->n_tensors, "tensor count") < 0 || read_u64(&r, &g->n_kv, "metadata count") < 0) return -1;
    if (g->n_kv > remaining(&r) / MIN_KV_BYTES || g->n_kv >= UINT32_MAX)
        return lm_errf(err, "metadata count %llu is more than the file can hold", (unsigned long long)g->n_kv);
    if (g->n_tensors > remaining(&r) / MIN_TENSOR_BYTES || g->n_tensors >= UINT32_MAX)
        return lm_errf(err, "tensor count %llu is more than the file can hold", (unsigned long long)g->n_tensors);
    if (parse_kvs(g, &r) < 0 || parse_alignment(g, err) < 0) return -1;
    /* Again against what the metadata left, so that the tensor tables are
     * paid for by bytes the metadata did not use. */
    if (g->n_tensors > remaining(&r) / MIN_TENSOR_BYTES)
        return lm_errf(err, "tensor count %llu is more than the file can hold after its metadata",
                       (unsigned long long)g->n_tensors);

    g->tensors = parse_calloc(g, g->n_tensors, sizeof *g->tensors);
    g->tensor_index_cap = index_capacity(g->n_tensors);
    g->tensor_index = parse_calloc(g, g->tensor_index_cap, sizeof *g->tensor_index);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        char tmp[80];
        if (parse_tensor_info(g, &r, &g->tensors[i]) < 0) return -1;
        if (index_insert(g, g->tensor_index, g->tensor_index_cap, tensor_name, i) >= 0)
            return lm_errf(err, "tensor name '%s' appears twice", shown(g->tensors[i].name, tmp, sizeof tmp));
    }
    g->data_offset = (r.pos + g->alignment - 1) / g->alignment * g->alignment;
    if (g->data_offset > size) {
        if (g->n_tensors) return lm_errf(err, "data section is missing (file ends at %zu)", size);
        g->data_offset = size; /* vocabulary-only files may end without padding */
    }
    return place_tensors(g, err);
}

int lm_gguf_open(struct lm_gguf *g, const char *path, struct lm_err *err) {
    memset(g, 0, sizeof *g);
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        lm_errf(err, "%s", strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        lm_errf(err, "%s", strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        lm_errf(err, "not a regular file");
        goto fail;
    }
    if (st.st_size < 24) {
        lm_errf(err, "not a GGUF file (only %lld bytes)", (long long)st.st_size);
        goto fail;
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        lm_errf(err, "cannot map the file's %s: %s", lm_size_str((uint64_t)st.st_size).s, strerror(errno));
        goto fail;
    }
    close(fd);
    fd = -1;
    if (lm_gguf_parse(g, map, (size_t)st.st_size, err) < 0) {
        g->map = map;
        g->map_size = (size_t)st.st_size;
        goto fail;
    }
    g->map = map;
    g->map_size = (size_t)st.st_size;
    return 0;
fail:
    if (fd >= 0) close(fd);
    lm_gguf_close(g);
    lm_err_prefix(err, path);
    return -1;
}

void lm_gguf_close(struct lm_gguf *g) {
    for (size_t i = 0; i < g->n_allocs; i++) free(g->allocs[i]);
    free(g->allocs);
    free(g->kv);
    free(g->tensors);
    free(g->kv_index);
    free(g->tensor_index);
    if (g->map) munmap(g->map, g->map_size);
    memset(g, 0, sizeof *g);
}

void lm_gguf_release(const struct lm_gguf *g, const void *data, size_t size) {
    if (!g->map) return;
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), p = (uintptr_t)data;
    const uintptr_t a = (p + page - 1) & ~(page - 1), b = (p + size) & ~(page - 1); /* whole pages only */
    LM_ASSERT(p >= (uintptr_t)g->map && p + size <= (uintptr_t)g->map + g->map_size);
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED); /* a private read-only map: refaults from the file */
}

/* ---- lookups ------------------------------------------------------------ */

int64_t lm_gguf_find_key(const struct lm_gguf *g, const char *key) {
    return index_find(g, g->kv_index, g->kv_index_cap, kv_name, key);
}

const struct lm_gguf_value *lm_gguf_get(const struct lm_gguf *g, const char *key) {
    int64_t i = lm_gguf_find_key(g, key);
    return i < 0 ? NULL : &g->kv[i].value;
}

const struct lm_gguf_tensor *lm_gguf_find_tensor(const struct lm_gguf *g, const char *name) {
    int64_t i = index_find(g, g->tensor_index, g->tensor_index_cap, tensor_name, name);
    return i < 0 ? NULL : &g->tensors[i];
}

static bool is_unsigned(enum lm_gguf_type t) {
    return t == LM_GGUF_U8 || t == LM_GGUF_U16 || t == LM_GGUF_U32 || t == LM_GGUF_U64;
}
static bool is_signed(enum lm_gguf_type t) {
    return t == LM_GGUF_I8 || t == LM_GGUF_I16 || t == LM_GGUF_I32 || t == LM_GGUF_I64;
}

static int mismatch(struct lm_err *err, const char *key, const char *want, enum lm_gguf_type found) {
    return lm_errf(err, "metadata '%s': expected %s, found %s", key, want, lm_gguf_type_name(found));
}

int lm_gguf_get_int(const struct lm_gguf *g, const char *key, int64_t *out, struct lm_err *err) {
    const struct lm_gguf_value *v = lm_gguf_get(g, key);
    if (!v) return 0;
    if (is_signed(v->type)) *out = v->i64;
    else if (is_unsigned(v->type) && v->u64 <= (uint64_t)INT64_MAX) *out = (int64_t)v->u64;
    else if (is_unsigned(v->type)) return lm_errf(err, "metadata '%s': %llu is too large", key, (unsigned long long)v->u64);
    else return mismatch(err, key, "an integer", v->type);
    return 1;
}

int lm_gguf_get_uint(const struct lm_gguf *g, const char *key, uint64_t *out, struct lm_err *err) {
    const struct lm_gguf_value *v = lm_gguf_get(g, key);
    if (!v) return 0;
    if (is_unsigned(v->type)) *out = v->u64;
    else if (is_signed(v->type) && v->i64 >= 0) *out = (uint64_t)v->i64;
    else if (is_signed(v->type)) return lm_errf(err, "metadata '%s': %lld is negative", key, (long long)v->i64);
    else return mismatch(err, key, "an unsigned integer", v->type);
    return 1;
}

int lm_gguf_get_f32(const struct lm_gguf *g, const char *key, float *out, struct lm_err *err) {
    const struct lm_gguf_value *v = lm_gguf_get(g, key);
    if (!v) return 0;
    if (v->type != LM_GGUF_F32 && v->type != LM_GGUF_F64) return mismatch(err, key, "f32", v->type);
    *out = (float)v->f64;
    return 1;
}

int lm_gguf_get_bool(const struct lm_gguf *g, const char *key, bool *out, struct lm_err *err) {
    const struct lm_gguf_value *v = lm_gguf_get(g, key);
    if (!v) return 0;
    if (v->type != LM_GGUF_BOOL) return mismatch(err, key, "bool", v->type);
    *out = v->u64 != 0;
    return 1;
}

int lm_gguf_get_str(const struct lm_gguf *g, const char *key, struct lm_gguf_str *out, struct lm_err *err) {
    const struct lm_gguf_value *v = lm_gguf_get(g, key);
    if (!v) return 0;
    if (v->type != LM_GGUF_STRING) return mismatch(err, key, "string", v->type);
    *out = v->str;
    return 1;
}

int lm_gguf_get_arr(const struct lm_gguf *g, const char *key, enum lm_gguf_type elem, const struct lm_gguf_value **out,
                    struct lm_err *err) {
    const struct lm_gguf_value *v = lm_gguf_get(g, key);
    if (!v) return 0;
    if (v->type != LM_GGUF_ARRAY) return mismatch(err, key, "array", v->type);
    if (v->arr.type != elem)
        return lm_errf(err, "metadata '%s': expected an array of %s, found an array of %s", key, lm_gguf_type_name(elem),
                       lm_gguf_type_name(v->arr.type));
    *out = v;
    return 1;
}

int64_t lm_gguf_arr_int(const struct lm_gguf_value *a, uint64_t i) {
    LM_ASSERT(a->type == LM_GGUF_ARRAY && i < a->arr.n);
    const uint8_t *p = (const uint8_t *)a->arr.raw + i * type_sizes[a->arr.type];
    switch (a->arr.type) {
    case LM_GGUF_U8: case LM_GGUF_BOOL: return p[0];
    case LM_GGUF_I8: return (int8_t)p[0];
    case LM_GGUF_U16: { uint16_t x; memcpy(&x, p, 2); return x; }
    case LM_GGUF_I16: { int16_t x; memcpy(&x, p, 2); return x; }
    case LM_GGUF_U32: { uint32_t x; memcpy(&x, p, 4); return x; }
    case LM_GGUF_I32: { int32_t x; memcpy(&x, p, 4); return x; }
    case LM_GGUF_U64: case LM_GGUF_I64: { int64_t x; memcpy(&x, p, 8); return x; }
    default: LM_ASSERT(!"not an integer array"); return 0;
    }
}

struct lm_gguf_str lm_gguf_arr_str(const struct lm_gguf_value *a, uint64_t i) {
    LM_ASSERT(a->type == LM_GGUF_ARRAY && a->arr.type == LM_GGUF_STRING && i < a->arr.n);
    struct lm_gguf_str s;
    memcpy(&s.len, a->arr.strs[i], 8); /* checked against the buffer when parsed */
    s.data = (const char *)a->arr.strs[i] + 8;
    return s;
}

double lm_gguf_arr_float(const struct lm_gguf_value *a, uint64_t i) {
    LM_ASSERT(a->type == LM_GGUF_ARRAY && i < a->arr.n);
    const uint8_t *p = (const uint8_t *)a->arr.raw + i * type_sizes[a->arr.type];
    if (a->arr.type == LM_GGUF_F32) {
        float x;
        memcpy(&x, p, 4);
        return x;
    }
    if (a->arr.type == LM_GGUF_F64) {
        double x;
        memcpy(&x, p, 8);
        return x;
    }
    return (double)lm_gguf_arr_int(a, i);
}
