/* gguf_write.c: builds GGUF files in memory (tests), or their header alone
 * for a caller that streams the tensor data after it (quantize). It encodes
 * what it is given without validating, so tests can also make deliberately
 * malformed files. */
#include "lm/gguf.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

void lm_gguf_put_u32(struct lm_buf *b, uint32_t v) { lm_buf_append(b, &v, 4); }
void lm_gguf_put_u64(struct lm_buf *b, uint64_t v) { lm_buf_append(b, &v, 8); }

void lm_gguf_put_str(struct lm_buf *b, const char *s, size_t n) {
    lm_gguf_put_u64(b, n);
    lm_buf_append(b, s, n);
}

void lm_gguf_writer_init(struct lm_gguf_writer *w) {
    memset(w, 0, sizeof *w);
    w->alignment = 32;
    w->version = 3;
}

void lm_gguf_writer_free(struct lm_gguf_writer *w) {
    lm_buf_free(&w->kv);
    lm_buf_free(&w->infos);
    lm_buf_free(&w->data);
}

static void put_key(struct lm_gguf_writer *w, const char *key, enum lm_gguf_type type) {
    lm_gguf_put_str(&w->kv, key, strlen(key));
    lm_gguf_put_u32(&w->kv, type);
    w->n_kv++;
}

void lm_gguf_write_u32(struct lm_gguf_writer *w, const char *key, uint32_t v) {
    put_key(w, key, LM_GGUF_U32);
    lm_buf_append(&w->kv, &v, 4);
}

void lm_gguf_write_i32(struct lm_gguf_writer *w, const char *key, int32_t v) {
    put_key(w, key, LM_GGUF_I32);
    lm_buf_append(&w->kv, &v, 4);
}

void lm_gguf_write_u64(struct lm_gguf_writer *w, const char *key, uint64_t v) {
    put_key(w, key, LM_GGUF_U64);
    lm_buf_append(&w->kv, &v, 8);
}

void lm_gguf_write_f32(struct lm_gguf_writer *w, const char *key, float v) {
    put_key(w, key, LM_GGUF_F32);
    lm_buf_append(&w->kv, &v, 4);
}

void lm_gguf_write_bool(struct lm_gguf_writer *w, const char *key, bool v) {
    put_key(w, key, LM_GGUF_BOOL);
    lm_buf_putc(&w->kv, v ? 1 : 0);
}

void lm_gguf_write_str(struct lm_gguf_writer *w, const char *key, const char *v) {
    put_key(w, key, LM_GGUF_STRING);
    lm_gguf_put_str(&w->kv, v, strlen(v));
}

void lm_gguf_write_arr(struct lm_gguf_writer *w, const char *key, enum lm_gguf_type elem, const void *data, uint64_t n) {
    LM_ASSERT(lm_gguf_type_size(elem) > 0);
    put_key(w, key, LM_GGUF_ARRAY);
    lm_gguf_put_u32(&w->kv, elem);
    lm_gguf_put_u64(&w->kv, n);
    lm_buf_append(&w->kv, data, n * lm_gguf_type_size(elem));
}

void lm_gguf_write_arr_str(struct lm_gguf_writer *w, const char *key, const char *const *strs, uint64_t n) {
    put_key(w, key, LM_GGUF_ARRAY);
    lm_gguf_put_u32(&w->kv, LM_GGUF_STRING);
    lm_gguf_put_u64(&w->kv, n);
    for (uint64_t i = 0; i < n; i++) lm_gguf_put_str(&w->kv, strs[i], strlen(strs[i]));
}

void lm_gguf_write_raw(struct lm_gguf_writer *w, const char *key, const void *encoded, size_t n) {
    lm_gguf_put_str(&w->kv, key, strlen(key));
    lm_buf_append(&w->kv, encoded, n);
    w->n_kv++;
}

/* A parsed value without its type field (array elements carry none). */
static void put_payload(struct lm_buf *b, const struct lm_gguf_value *v) {
    switch (v->type) {
    case LM_GGUF_U8: case LM_GGUF_BOOL: lm_buf_putc(b, (char)(uint8_t)v->u64); break;
    case LM_GGUF_I8: lm_buf_putc(b, (char)(int8_t)v->i64); break;
    case LM_GGUF_U16: { uint16_t x = (uint16_t)v->u64; lm_buf_append(b, &x, 2); break; }
    case LM_GGUF_I16: { int16_t x = (int16_t)v->i64; lm_buf_append(b, &x, 2); break; }
    case LM_GGUF_U32: lm_gguf_put_u32(b, (uint32_t)v->u64); break;
    case LM_GGUF_I32: { int32_t x = (int32_t)v->i64; lm_buf_append(b, &x, 4); break; }
    case LM_GGUF_U64: lm_gguf_put_u64(b, v->u64); break;
    case LM_GGUF_I64: lm_buf_append(b, &v->i64, 8); break;
    case LM_GGUF_F32: { float x = (float)v->f64; lm_buf_append(b, &x, 4); break; } /* exact: it was a float */
    case LM_GGUF_F64: lm_buf_append(b, &v->f64, 8); break;
    case LM_GGUF_STRING: lm_gguf_put_str(b, v->str.data, v->str.len); break;
    case LM_GGUF_ARRAY:
        lm_gguf_put_u32(b, v->arr.type);
        lm_gguf_put_u64(b, v->arr.n);
        if (v->arr.type == LM_GGUF_STRING) {
            for (uint64_t i = 0; i < v->arr.n; i++) {
                struct lm_gguf_str s = lm_gguf_arr_str(v, i);
                lm_gguf_put_str(b, s.data, s.len);
            }
        } else if (v->arr.type == LM_GGUF_ARRAY) {
            for (uint64_t i = 0; i < v->arr.n; i++) put_payload(b, &v->arr.items[i]);
        } else {
            lm_buf_append(b, v->arr.raw, v->arr.n * lm_gguf_type_size(v->arr.type));
        }
        break;
    default: LM_ASSERT(!"unknown value type");
    }
}

void lm_gguf_write_value(struct lm_gguf_writer *w, struct lm_gguf_str key, const struct lm_gguf_value *v) {
    lm_gguf_put_str(&w->kv, key.data, key.len);
    lm_gguf_put_u32(&w->kv, v->type);
    put_payload(&w->kv, v);
    w->n_kv++;
}

static void pad_to(struct lm_buf *b, uint64_t alignment) {
    static const char zeros[64];
    while (b->len % alignment) {
        size_t n = alignment - b->len % alignment;
        lm_buf_append(b, zeros, n < sizeof zeros ? n : sizeof zeros);
    }
}

uint64_t lm_gguf_write_tensor_info(struct lm_gguf_writer *w, const char *name, enum lm_type type, int n_dims,
                                   const int64_t *ne, uint64_t *size_out) {
    const struct lm_type_traits *tt = lm_type_get(type);
    LM_ASSERT(tt && n_dims >= 1 && n_dims <= 4 && ne[0] % tt->blck == 0);
    uint64_t size = (uint64_t)ne[0] / (uint64_t)tt->blck * tt->size;
    for (int d = 1; d < n_dims; d++) size *= (uint64_t)ne[d];
    const uint64_t offset = (w->data_size + w->alignment - 1) / w->alignment * w->alignment;
    lm_gguf_put_str(&w->infos, name, strlen(name));
    lm_gguf_put_u32(&w->infos, (uint32_t)n_dims);
    for (int d = 0; d < n_dims; d++) lm_gguf_put_u64(&w->infos, (uint64_t)ne[d]);
    lm_gguf_put_u32(&w->infos, type);
    lm_gguf_put_u64(&w->infos, offset);
    w->data_size = offset + size;
    w->n_tensors++;
    if (size_out) *size_out = size;
    return offset;
}

void lm_gguf_write_tensor(struct lm_gguf_writer *w, const char *name, enum lm_type type, int n_dims, const int64_t *ne,
                          const void *data) {
    uint64_t size;
    lm_gguf_write_tensor_info(w, name, type, n_dims, ne, &size);
    pad_to(&w->data, w->alignment);
    lm_buf_append(&w->data, data, size);
}

void lm_gguf_writer_header(struct lm_gguf_writer *w, struct lm_buf *out) {
    out->len = 0;
    lm_buf_append(out, "GGUF", 4);
    lm_gguf_put_u32(out, w->version);
    lm_gguf_put_u64(out, w->n_tensors);
    lm_gguf_put_u64(out, w->n_kv);
    lm_buf_append(out, w->kv.data, w->kv.len);
    lm_buf_append(out, w->infos.data, w->infos.len);
    if (w->n_tensors) pad_to(out, w->alignment);
}

void lm_gguf_writer_finish(struct lm_gguf_writer *w, struct lm_buf *out) {
    lm_gguf_writer_header(w, out);
    if (w->n_tensors) lm_buf_append(out, w->data.data, w->data.len);
}

int lm_gguf_writer_save(struct lm_gguf_writer *w, const char *path, struct lm_err *err) {
    struct lm_buf b = {0};
    lm_gguf_writer_finish(w, &b);
    FILE *f = fopen(path, "wb");
    int rc = 0;
    if (!f) rc = lm_errf(err, "%s: %s", path, strerror(errno));
    else if (fwrite(b.data, 1, b.len, f) != b.len) rc = lm_errf(err, "%s: write failed", path);
    if (f && fclose(f) != 0 && rc == 0) rc = lm_errf(err, "%s: write failed", path);
    lm_buf_free(&b);
    return rc;
}
