/* GGUF reader and writer: a round trip of every metadata type, and one test
 * per class of malformed file, each checking the message. */
#include "test.h"

#include "hostile_files.h"
#include "lm/gguf.h"

#include <stdlib.h>

/* Parses b; returns the error message ("" on success) in a static buffer. */
static const char *parse_error(const struct lm_buf *b) {
    static struct lm_err err;
    struct lm_gguf g;
    err.msg[0] = 0;
    if (lm_gguf_parse(&g, b->data, b->len, &err) == 0) err.msg[0] = 0;
    lm_gguf_close(&g);
    return err.msg;
}

static void finish(struct lm_gguf_writer *w, struct lm_buf *b) {
    lm_gguf_writer_finish(w, b);
    lm_gguf_writer_free(w);
}

static const float f4[4] = {1.5f, -2.0f, 0.25f, 3.0f};

/* A file with one 4x2 f32 tensor. */
static void tiny_model(struct lm_buf *b) {
    struct lm_gguf_writer w;
    lm_gguf_writer_init(&w);
    lm_gguf_write_str(&w, "general.architecture", "llama");
    float data[8] = {0};
    int64_t ne[2] = {4, 2};
    lm_gguf_write_tensor(&w, "a", LM_TYPE_F32, 2, ne, data);
    finish(&w, b);
}

TEST(gguf_roundtrip_every_type) {
    struct lm_gguf_writer w;
    lm_gguf_writer_init(&w);
    lm_gguf_write_u32(&w, "u32", 4000000000u);
    lm_gguf_write_i32(&w, "i32", -7);
    lm_gguf_write_u64(&w, "u64", 1ull << 40);
    lm_gguf_write_f32(&w, "f32", 0.5f);
    lm_gguf_write_bool(&w, "bool", true);
    lm_gguf_write_str(&w, "str", "héllo");
    gguf_write_hand_values(&w, "");
    lm_gguf_write_arr(&w, "arr.f32", LM_GGUF_F32, f4, 4);
    int16_t i16s[3] = {-1, 2, -3};
    lm_gguf_write_arr(&w, "arr.i16", LM_GGUF_I16, i16s, 3);
    const char *strs[] = {"a", "", "ccc"};
    lm_gguf_write_arr_str(&w, "arr.str", strs, 3);
    int64_t ne[2] = {4, 2};
    float t[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    lm_gguf_write_tensor(&w, "t.f32", LM_TYPE_F32, 2, ne, t);
    uint8_t q[2 * 34] = {0};
    q[0] = 0x00, q[1] = 0x3c; /* f16 1.0 scale */
    q[2] = 5;
    int64_t ne_q[1] = {64};
    lm_gguf_write_tensor(&w, "t.q8_0", LM_TYPE_Q8_0, 1, ne_q, q);

    struct lm_buf b = {0};
    finish(&w, &b);
    struct lm_gguf g;
    struct lm_err err;
    int rc = lm_gguf_parse(&g, b.data, b.len, &err);
    EXPECT_EQ_INT(rc, 0);
    if (rc != 0) {
        fprintf(stderr, "  %s\n", err.msg);
        lm_buf_free(&b);
        return 1;
    }
    EXPECT_EQ_INT(g.version, 3);
    EXPECT_EQ_INT(g.n_kv, 16);
    int64_t iv = 0;
    uint64_t uv = 0;
    float fv = 0;
    bool bv = false;
    struct lm_gguf_str sv = {0};
    EXPECT(lm_gguf_get_uint(&g, "u32", &uv, &err) == 1 && uv == 4000000000u);
    EXPECT(lm_gguf_get_int(&g, "i32", &iv, &err) == 1 && iv == -7);
    EXPECT(lm_gguf_get_uint(&g, "u64", &uv, &err) == 1 && uv == (1ull << 40));
    EXPECT(lm_gguf_get_f32(&g, "f32", &fv, &err) == 1 && fv == 0.5f);
    EXPECT(lm_gguf_get_bool(&g, "bool", &bv, &err) == 1 && bv);
    EXPECT(lm_gguf_get_str(&g, "str", &sv, &err) == 1 && lm_gguf_str_eq(sv, "héllo"));
    EXPECT(lm_gguf_get_int(&g, "u8", &iv, &err) == 1 && iv == 200);
    EXPECT(lm_gguf_get_int(&g, "i8", &iv, &err) == 1 && iv == -128);
    EXPECT(lm_gguf_get_int(&g, "u16", &iv, &err) == 1 && iv == 65535);
    EXPECT(lm_gguf_get_int(&g, "i16", &iv, &err) == 1 && iv == -32768);
    EXPECT(lm_gguf_get_int(&g, "i64", &iv, &err) == 1 && iv == -5);
    const struct lm_gguf_value *v = lm_gguf_get(&g, "f64");
    EXPECT(v && v->type == LM_GGUF_F64 && fabs(v->f64 - 3.141592653589793) < 1e-15);
    EXPECT_EQ_INT(lm_gguf_get_int(&g, "missing", &iv, &err), 0);

    /* A type mismatch is an error, not a cast. */
    EXPECT_EQ_INT(lm_gguf_get_str(&g, "u32", &sv, &err), -1);
    EXPECT_CONTAINS(err.msg, "expected string, found u32");
    EXPECT_EQ_INT(lm_gguf_get_int(&g, "f32", &iv, &err), -1);
    EXPECT_EQ_INT(lm_gguf_get_uint(&g, "i32", &uv, &err), -1);

    const struct lm_gguf_value *a = NULL;
    EXPECT_EQ_INT(lm_gguf_get_arr(&g, "arr.f32", LM_GGUF_F32, &a, &err), 1);
    if (a) {
        EXPECT_EQ_INT(a->arr.n, 4);
        for (int i = 0; i < 4; i++) EXPECT(lm_gguf_arr_float(a, (uint64_t)i) == f4[i]);
    }
    EXPECT_EQ_INT(lm_gguf_get_arr(&g, "arr.f32", LM_GGUF_U8, &a, &err), -1);
    EXPECT_CONTAINS(err.msg, "expected an array of u8, found an array of f32");
    a = NULL;
    EXPECT_EQ_INT(lm_gguf_get_arr(&g, "arr.i16", LM_GGUF_I16, &a, &err), 1);
    if (a) EXPECT(lm_gguf_arr_int(a, 0) == -1 && lm_gguf_arr_int(a, 2) == -3);
    a = NULL;
    EXPECT_EQ_INT(lm_gguf_get_arr(&g, "arr.str", LM_GGUF_STRING, &a, &err), 1);
    if (a) {
        EXPECT(a->arr.n == 3 && lm_gguf_str_eq(lm_gguf_arr_str(a, 0), "a") && lm_gguf_str_eq(lm_gguf_arr_str(a, 1), ""));
        EXPECT(lm_gguf_str_eq(lm_gguf_arr_str(a, 2), "ccc"));
    }
    a = NULL;
    EXPECT_EQ_INT(lm_gguf_get_arr(&g, "arr.nested", LM_GGUF_ARRAY, &a, &err), 1);
    if (a && a->arr.n == 2) {
        const struct lm_gguf_value *x = &a->arr.items[0], *y = &a->arr.items[1];
        EXPECT(x->arr.type == LM_GGUF_U32 && x->arr.n == 2 && lm_gguf_arr_int(x, 1) == 2);
        EXPECT(y->arr.type == LM_GGUF_STRING && y->arr.n == 1 && lm_gguf_str_eq(lm_gguf_arr_str(y, 0), "x"));
    }

    EXPECT_EQ_INT(g.n_tensors, 2);
    const struct lm_gguf_tensor *tf = lm_gguf_find_tensor(&g, "t.f32"), *tq = lm_gguf_find_tensor(&g, "t.q8_0");
    EXPECT(tf && tq && !lm_gguf_find_tensor(&g, "t"));
    if (tf && tq) {
        EXPECT(tf->t.type == LM_TYPE_F32 && tf->t.n_dims == 2 && tf->t.ne[0] == 4 && tf->t.ne[1] == 2 && tf->size == 32);
        EXPECT(memcmp(tf->t.data, t, sizeof t) == 0);
        EXPECT((uintptr_t)((const uint8_t *)tf->t.data - (const uint8_t *)b.data) % 32 == 0);
        EXPECT(tq->t.type == LM_TYPE_Q8_0 && tq->size == 68 && tq->offset % 32 == 0);
        EXPECT(memcmp(tq->t.data, q, sizeof q) == 0);
    }
    lm_gguf_close(&g);
    lm_buf_free(&b);
    return 0;
}

/* Values copied from a parsed file encode to the bytes they were read from
 * (every type, nested arrays); a header written alone, then the data at
 * their offsets, is the file lm_gguf_writer_finish makes. */
TEST(gguf_write_value_and_streamed_header) {
    struct lm_gguf_writer w;
    lm_gguf_writer_init(&w);
    w.alignment = 64;
    lm_gguf_write_u32(&w, "general.alignment", 64);
    lm_gguf_write_u32(&w, "u32", 7);
    lm_gguf_write_i32(&w, "i32", -7);
    lm_gguf_write_u64(&w, "u64", 1ull << 40);
    lm_gguf_write_f32(&w, "f32", -0.1f);
    lm_gguf_write_bool(&w, "bool", true);
    lm_gguf_write_str(&w, "str", "h\xc3\xa9llo");
    gguf_write_hand_values(&w, "");
    lm_gguf_write_arr(&w, "arr.f32", LM_GGUF_F32, f4, 4);
    const char *strs[] = {"a", "", "ccc"};
    lm_gguf_write_arr_str(&w, "arr.str", strs, 3);
    float a[6] = {1, 2, 3, 4, 5, 6};
    const int64_t ne_a[2] = {3, 2}, ne_b[1] = {5};
    lm_gguf_write_tensor(&w, "a", LM_TYPE_F32, 2, ne_a, a);
    lm_gguf_write_tensor(&w, "b", LM_TYPE_F32, 1, ne_b, a);
    struct lm_buf b = {0};
    lm_gguf_writer_finish(&w, &b);
    struct lm_gguf g;
    struct lm_err err;
    EXPECT_EQ_INT(lm_gguf_parse(&g, b.data, b.len, &err), 0);

    struct lm_gguf_writer c;
    lm_gguf_writer_init(&c);
    c.alignment = 64;
    for (uint64_t i = 0; i < g.n_kv; i++) lm_gguf_write_value(&c, g.kv[i].key, &g.kv[i].value);
    EXPECT(c.n_kv == w.n_kv && c.kv.len == w.kv.len && memcmp(c.kv.data, w.kv.data, w.kv.len) == 0);
    uint64_t size_a, size_b;
    EXPECT_EQ_INT(lm_gguf_write_tensor_info(&c, "a", LM_TYPE_F32, 2, ne_a, &size_a), 0);
    EXPECT_EQ_INT(lm_gguf_write_tensor_info(&c, "b", LM_TYPE_F32, 1, ne_b, &size_b), 64);
    EXPECT(size_a == 24 && size_b == 20 && c.data_size == 84);
    struct lm_buf h = {0};
    lm_gguf_writer_header(&c, &h);
    EXPECT(h.len % 64 == 0 && h.len + 84 == b.len && memcmp(h.data, b.data, h.len) == 0);
    EXPECT(memcmp(b.data + h.len, a, 24) == 0 && memcmp(b.data + h.len + 64, a, 20) == 0);
    const struct lm_gguf_tensor *tb = lm_gguf_find_tensor(&g, "b");
    EXPECT(tb && tb->offset == 64 && memcmp(tb->t.data, a, 20) == 0);
    lm_buf_free(&h);
    lm_gguf_writer_free(&c);
    lm_gguf_close(&g);
    lm_gguf_writer_free(&w);
    lm_buf_free(&b);
    return 0;
}

/* Released pages of a mapped file read back the same; a parsed buffer is
 * left alone. */
TEST(gguf_release_rereads) {
    struct lm_gguf_writer w;
    lm_gguf_writer_init(&w);
    w.alignment = 4096;
    lm_gguf_write_u32(&w, "general.alignment", 4096);
    float *x = lm_xmalloc(3 * 4096 * sizeof(float));
    for (int i = 0; i < 3 * 4096; i++) x[i] = (float)i;
    const int64_t ne[2] = {4096, 3};
    lm_gguf_write_tensor(&w, "x", LM_TYPE_F32, 2, ne, x);
    const char *path = test_tmp_path(".gguf");
    struct lm_err err;
    EXPECT_EQ_INT(lm_gguf_writer_save(&w, path, &err), 0);
    struct lm_gguf g;
    EXPECT_EQ_INT(lm_gguf_open(&g, path, &err), 0);
    const struct lm_gguf_tensor *t = lm_gguf_find_tensor(&g, "x");
    EXPECT(t && memcmp(t->t.data, x, t->size) == 0);
    if (t) {
        lm_gguf_release(&g, t->t.data, t->size);
        EXPECT(memcmp(t->t.data, x, t->size) == 0);
    }
    lm_gguf_close(&g);
    struct lm_buf b = {0};
    lm_gguf_writer_finish(&w, &b);
    EXPECT_EQ_INT(lm_gguf_parse(&g, b.data, b.len, &err), 0);
    t = lm_gguf_find_tensor(&g, "x");
    if (t) {
        lm_gguf_release(&g, t->t.data, t->size);
        EXPECT(memcmp(t->t.data, x, t->size) == 0);
    }
    lm_gguf_close(&g);
    lm_buf_free(&b);
    lm_gguf_writer_free(&w);
    free(x);
    return 0;
}

TEST(gguf_version2_and_alignment) {
    struct lm_gguf_writer w;
    lm_gguf_writer_init(&w);
    w.version = 2;
    w.alignment = 64;
    lm_gguf_write_u32(&w, "general.alignment", 64);
    float d[16] = {0};
    int64_t ne[1] = {3};
    lm_gguf_write_tensor(&w, "a", LM_TYPE_F32, 1, ne, d);
    lm_gguf_write_tensor(&w, "b", LM_TYPE_F32, 1, ne, d);
    struct lm_buf b = {0};
    finish(&w, &b);
    struct lm_gguf g;
    struct lm_err err;
    EXPECT_EQ_INT(lm_gguf_parse(&g, b.data, b.len, &err), 0);
    EXPECT_EQ_INT(g.alignment, 64);
    const struct lm_gguf_tensor *t = lm_gguf_find_tensor(&g, "b");
    EXPECT(t && t->offset == 64);
    lm_gguf_close(&g);
    lm_buf_free(&b);
    return 0;
}

/* general.file_type when the file says, else llama.cpp's guess from the
 * tensors (two q8_0, one f32: Q8_0, flagged as guessed). */
TEST(gguf_file_type) {
    for (int has_key = 0; has_key < 2; has_key++) {
        struct lm_gguf_writer w;
        lm_gguf_writer_init(&w);
        if (has_key) lm_gguf_write_u32(&w, "general.file_type", 15);
        uint8_t q[3 * 34] = {0};
        float d[4] = {0};
        int64_t ne_q[1] = {32}, ne_f[1] = {4};
        lm_gguf_write_tensor(&w, "a", LM_TYPE_F32, 1, ne_f, d);
        lm_gguf_write_tensor(&w, "b", LM_TYPE_Q8_0, 1, ne_q, q);
        lm_gguf_write_tensor(&w, "c", LM_TYPE_Q8_0, 1, ne_q, q + 34);
        struct lm_buf b = {0};
        finish(&w, &b);
        struct lm_gguf g;
        struct lm_err err;
        EXPECT_EQ_INT(lm_gguf_parse(&g, b.data, b.len, &err), 0);
        int64_t ft = lm_gguf_file_type_of(&g);
        EXPECT_EQ_INT(ft, has_key ? 15 : 7 | LM_GGUF_FILE_TYPE_GUESSED);
        EXPECT_EQ_STR(lm_gguf_file_type(ft)->name, has_key ? "Q4_K_M" : "Q8_0");
        EXPECT_EQ_STR(lm_gguf_file_type(ft)->desc, has_key ? "Q4_K - Medium" : "Q8_0");
        lm_gguf_close(&g);
        lm_buf_free(&b);
    }
    EXPECT(lm_gguf_file_type(4) == NULL && lm_gguf_file_type(-1) == NULL && lm_gguf_file_type(1 << 20) == NULL);
    return 0;
}

/* ---- malformed files ------------------------------------------------------ */

TEST(gguf_bad_magic_version_truncated) {
    struct lm_buf b = {0};
    lm_buf_append(&b, "GGML", 4);
    EXPECT_CONTAINS(parse_error(&b), "not a GGUF file");
    gguf_header(&b, 1, 0, 0);
    EXPECT_CONTAINS(parse_error(&b), "version 1 is not supported");
    gguf_header(&b, 7, 0, 0);
    EXPECT_CONTAINS(parse_error(&b), "unsupported GGUF version 7");
    gguf_header(&b, 3 << 24, 0, 0);
    EXPECT_CONTAINS(parse_error(&b), "big-endian");
    gguf_header(&b, 3, 0, 0);
    b.len = 12;
    EXPECT_CONTAINS(parse_error(&b), "tensor count at offset 8 runs past the end");
    tiny_model(&b);
    for (size_t cut = 0; cut < b.len; cut++) { /* every truncation is refused, never read past */
        struct lm_buf t = {0};
        lm_buf_append(&t, b.data, cut);
        if (!parse_error(&t)[0]) test_fail(__FILE__, __LINE__, "file cut at %zu bytes was accepted", cut);
        lm_buf_free(&t);
    }
    lm_buf_free(&b);
    return 0;
}

TEST(gguf_string_and_array_lengths_past_end) {
    struct lm_buf b = {0};
    gguf_header(&b, 3, 0, 1);
    lm_gguf_put_u64(&b, 1000); /* key length */
    lm_buf_append(&b, "abc", 3);
    for (int i = 0; i < 20; i++) lm_buf_putc(&b, 'x');
    EXPECT_CONTAINS(parse_error(&b), "metadata key at offset 24: length 1000 runs past the end");
    gguf_header(&b, 3, 0, 1);
    lm_gguf_put_str(&b, "k", 1);
    lm_gguf_put_u32(&b, LM_GGUF_STRING);
    lm_gguf_put_u64(&b, UINT64_MAX);
    EXPECT_CONTAINS(parse_error(&b), "length 18446744073709551615 runs past the end");
    gguf_header(&b, 3, 0, 1);
    lm_gguf_put_str(&b, "k", 1);
    lm_gguf_put_u32(&b, LM_GGUF_ARRAY);
    lm_gguf_put_u32(&b, LM_GGUF_U32);
    lm_gguf_put_u64(&b, 1ull << 62); /* count * 4 overflows */
    EXPECT_CONTAINS(parse_error(&b), "array of 4611686018427387904 u32");
    gguf_header(&b, 3, 0, 1);
    lm_gguf_put_str(&b, "k", 1);
    lm_gguf_put_u32(&b, LM_GGUF_ARRAY);
    lm_gguf_put_u32(&b, LM_GGUF_STRING);
    lm_gguf_put_u64(&b, 1000000); /* a million strings cannot fit in a few bytes */
    lm_gguf_put_u64(&b, 0);
    EXPECT_CONTAINS(parse_error(&b), "array of 1000000 string");
    lm_buf_free(&b);
    return 0;
}

/* Parses b and returns the bytes the parse allocated per byte of file. */
static double parse_mem_ratio(const struct lm_buf *b, bool *ok) {
    struct lm_gguf g;
    struct lm_err err;
    *ok = lm_gguf_parse(&g, b->data, b->len, &err) == 0;
    double r = ((double)g.mem - LM_GGUF_MEM_SLACK) / (double)b->len;
    if (test_verbose) fprintf(stderr, "  %zu bytes: %.2f bytes of memory per byte\n", b->len, r);
    lm_gguf_close(&g);
    return r;
}

/* The memory bound of gguf.h on the layouts that cost the most per byte:
 * long arrays of empty strings (8 bytes each in the file, stored as one
 * pointer), of empty arrays, arrays nested to the limit, many one-byte
 * values, many tensors, and a claimed metadata count that the file cannot
 * back up after a large array. */
TEST(gguf_parse_memory_bound) {
    enum { N = 20000 };
    struct lm_buf b = {0};
    bool ok;
    gguf_header(&b, 3, 0, 1);
    lm_gguf_put_str(&b, "k", 1);
    lm_gguf_put_u32(&b, LM_GGUF_ARRAY);
    lm_gguf_put_u32(&b, LM_GGUF_STRING);
    lm_gguf_put_u64(&b, N);
    for (int i = 0; i < N; i++) lm_gguf_put_u64(&b, 0);
    EXPECT(parse_mem_ratio(&b, &ok) <= 1.0 && ok); /* was 5: a 40-byte value per string */

    for (int depth = 0; depth < 4; depth++) { /* N arrays, each holding one array, depth levels down */
        gguf_header(&b, 3, 0, 1);
        lm_gguf_put_str(&b, "k", 1);
        lm_gguf_put_u32(&b, LM_GGUF_ARRAY);
        lm_gguf_put_u32(&b, LM_GGUF_ARRAY);
        lm_gguf_put_u64(&b, N);
        for (int i = 0; i < N; i++) {
            for (int d = 0; d < depth; d++) {
                lm_gguf_put_u32(&b, LM_GGUF_ARRAY);
                lm_gguf_put_u64(&b, 1);
            }
            lm_gguf_put_u32(&b, LM_GGUF_U8);
            lm_gguf_put_u64(&b, 0);
        }
        double r = parse_mem_ratio(&b, &ok);
        EXPECT(ok);
        if (r > 4.0) test_fail(__FILE__, __LINE__, "arrays nested %d deep: %.2f bytes per byte", depth + 1, r);
    }

    gguf_header(&b, 3, 0, N);
    for (int i = 0; i < N; i++) {
        char key[16];
        lm_gguf_put_str(&b, key, (size_t)snprintf(key, sizeof key, "%x", i));
        lm_gguf_put_u32(&b, LM_GGUF_U8);
        lm_buf_putc(&b, 1);
    }
    double r = parse_mem_ratio(&b, &ok);
    EXPECT(ok);
    if (r > LM_GGUF_MEM_PER_BYTE) test_fail(__FILE__, __LINE__, "one-byte values: %.2f bytes per byte", r);

    gguf_header(&b, 3, N, 0);
    for (int i = 0; i < N; i++) {
        char name[16];
        uint64_t ne[1] = {1};
        snprintf(name, sizeof name, "%x", i);
        gguf_put_info(&b, name, 1, ne, LM_TYPE_F32, 0);
    }
    gguf_pad_and_data(&b, 4);
    r = parse_mem_ratio(&b, &ok); /* refused (the tensors overlap) after every table was made */
    EXPECT(!ok);
    if (r > LM_GGUF_MEM_PER_BYTE) test_fail(__FILE__, __LINE__, "tensor infos: %.2f bytes per byte", r);

    /* As many metadata entries as the bytes allow, the first of them an
     * array of arrays that takes all the bytes. */
    gguf_header(&b, 3, 0, 0);
    size_t body = 14 + 12 * (size_t)N;
    uint64_t n_kv = body / 13;
    memcpy(b.data + 16, &n_kv, 8);
    lm_gguf_put_str(&b, "k", 1);
    lm_gguf_put_u32(&b, LM_GGUF_ARRAY);
    lm_gguf_put_u32(&b, LM_GGUF_ARRAY);
    lm_gguf_put_u64(&b, N);
    for (int i = 0; i < N; i++) {
        lm_gguf_put_u32(&b, LM_GGUF_U8);
        lm_gguf_put_u64(&b, 0);
    }
    r = parse_mem_ratio(&b, &ok);
    EXPECT(!ok);
    if (r > LM_GGUF_MEM_PER_BYTE) test_fail(__FILE__, __LINE__, "claimed entries: %.2f bytes per byte", r);
    lm_buf_free(&b);
    return 0;
}

TEST(gguf_huge_counts) {
    struct lm_buf b = {0};
    gguf_header(&b, 3, 0, 1ull << 60);
    EXPECT_CONTAINS(parse_error(&b), "metadata count 1152921504606846976 is more than the file can hold");
    gguf_header(&b, 3, UINT64_MAX, 0);
    EXPECT_CONTAINS(parse_error(&b), "tensor count 18446744073709551615 is more than the file can hold");
    /* Ten tensor infos fit in the bytes after the header, not in what the metadata leaves. */
    gguf_header(&b, 3, 10, 1);
    lm_gguf_put_str(&b, "k", 1);
    lm_gguf_put_u32(&b, LM_GGUF_STRING);
    char text[400];
    memset(text, 'x', sizeof text);
    lm_gguf_put_str(&b, text, sizeof text);
    for (int i = 0; i < 50; i++) lm_buf_putc(&b, 0);
    EXPECT_CONTAINS(parse_error(&b), "tensor count 10 is more than the file can hold after its metadata");
    lm_buf_free(&b);
    return 0;
}

TEST(gguf_bad_value_types) {
    struct lm_buf b = {0};
    gguf_header(&b, 3, 0, 1);
    lm_gguf_put_str(&b, "k", 1);
    lm_gguf_put_u32(&b, 13);
    EXPECT_CONTAINS(parse_error(&b), "metadata 'k': unknown value type 13");
    gguf_header(&b, 3, 0, 1);
    lm_gguf_put_str(&b, "k", 1);
    lm_gguf_put_u32(&b, LM_GGUF_ARRAY);
    lm_gguf_put_u32(&b, 99);
    lm_gguf_put_u64(&b, 0);
    EXPECT_CONTAINS(parse_error(&b), "unknown array element type 99");
    gguf_header(&b, 3, 0, 1);
    lm_gguf_put_str(&b, "k", 1);
    lm_gguf_put_u32(&b, LM_GGUF_BOOL);
    lm_buf_putc(&b, 2);
    EXPECT_CONTAINS(parse_error(&b), "bool value at offset 37 is 2");
    gguf_header(&b, 3, 0, 1); /* arrays nested 6 deep */
    lm_gguf_put_str(&b, "k", 1);
    lm_gguf_put_u32(&b, LM_GGUF_ARRAY);
    for (int i = 0; i < 6; i++) {
        lm_gguf_put_u32(&b, LM_GGUF_ARRAY);
        lm_gguf_put_u64(&b, 1);
    }
    for (int i = 0; i < 64; i++) lm_buf_putc(&b, 0);
    EXPECT_CONTAINS(parse_error(&b), "arrays nested deeper than 4");
    gguf_header(&b, 3, 0, 1);
    lm_gguf_put_str(&b, "", 0);
    lm_gguf_put_u32(&b, LM_GGUF_U8);
    lm_buf_putc(&b, 1);
    EXPECT_CONTAINS(parse_error(&b), "metadata key 0 is empty");
    lm_buf_free(&b);
    return 0;
}

TEST(gguf_duplicates) {
    struct lm_gguf_writer w;
    lm_gguf_writer_init(&w);
    lm_gguf_write_u32(&w, "a.b", 1);
    lm_gguf_write_str(&w, "a.b", "again");
    struct lm_buf b = {0};
    finish(&w, &b);
    EXPECT_CONTAINS(parse_error(&b), "metadata key 'a.b' appears twice");
    lm_gguf_writer_init(&w);
    float d[4] = {0};
    int64_t ne[1] = {4};
    lm_gguf_write_tensor(&w, "x", LM_TYPE_F32, 1, ne, d);
    lm_gguf_write_tensor(&w, "x", LM_TYPE_F32, 1, ne, d);
    finish(&w, &b);
    EXPECT_CONTAINS(parse_error(&b), "tensor name 'x' appears twice");
    lm_buf_free(&b);
    return 0;
}

TEST(gguf_bad_tensor_shapes_and_types) {
    struct lm_buf b = {0};
    uint64_t ne[5] = {4, 1, 1, 1, 1};
    gguf_header(&b, 3, 1, 0);
    gguf_put_info(&b, "t", 5, ne, LM_TYPE_F32, 0);
    gguf_pad_and_data(&b, 64);
    EXPECT_CONTAINS(parse_error(&b), "tensor 't' has 5 dimensions");
    gguf_header(&b, 3, 1, 0);
    gguf_put_info(&b, "t", 0, ne, LM_TYPE_F32, 0);
    gguf_pad_and_data(&b, 64);
    EXPECT_CONTAINS(parse_error(&b), "tensor 't' has 0 dimensions");
    uint64_t zero[2] = {4, 0};
    gguf_header(&b, 3, 1, 0);
    gguf_put_info(&b, "t", 2, zero, LM_TYPE_F32, 0);
    gguf_pad_and_data(&b, 64);
    EXPECT_CONTAINS(parse_error(&b), "tensor 't': dimension 1 is 0");
    uint64_t big[4] = {1ull << 32, 1ull << 32, 1ull << 32, 1};
    gguf_header(&b, 3, 1, 0);
    gguf_put_info(&b, "t", 4, big, LM_TYPE_F32, 0);
    gguf_pad_and_data(&b, 64);
    EXPECT_CONTAINS(parse_error(&b), "overflows");
    uint64_t neg[1] = {1ull << 63};
    gguf_header(&b, 3, 1, 0);
    gguf_put_info(&b, "t", 1, neg, LM_TYPE_F32, 0);
    gguf_pad_and_data(&b, 64);
    EXPECT_CONTAINS(parse_error(&b), "dimension 0 is 9223372036854775808");
    gguf_header(&b, 3, 1, 0);
    gguf_put_info(&b, "t", 1, ne, 4, 0); /* a retired type id */
    gguf_pad_and_data(&b, 64);
    EXPECT_CONTAINS(parse_error(&b), "tensor 't' has unknown type 4");
    gguf_header(&b, 3, 1, 0);
    gguf_put_info(&b, "t", 1, ne, 1000, 0);
    gguf_pad_and_data(&b, 64);
    EXPECT_CONTAINS(parse_error(&b), "unknown type 1000");
    gguf_header(&b, 3, 1, 0);
    gguf_put_info(&b, "t", 1, ne, LM_TYPE_Q8_0, 0); /* 4 is not a multiple of 32 */
    gguf_pad_and_data(&b, 64);
    EXPECT_CONTAINS(parse_error(&b), "row length 4 is not a multiple of the q8_0 block size 32");
    gguf_header(&b, 3, 1, 0);
    gguf_put_info(&b, "", 1, ne, LM_TYPE_F32, 0);
    gguf_pad_and_data(&b, 64);
    EXPECT_CONTAINS(parse_error(&b), "has length 0");
    lm_buf_free(&b);
    return 0;
}

TEST(gguf_bad_offsets) {
    struct lm_buf b = {0};
    uint64_t ne[1] = {8}; /* 32 bytes of f32 */
    gguf_header(&b, 3, 1, 0);
    gguf_put_info(&b, "t", 1, ne, LM_TYPE_F32, 4);
    gguf_pad_and_data(&b, 64);
    EXPECT_CONTAINS(parse_error(&b), "tensor 't': offset 4 is not a multiple of the alignment 32");
    gguf_header(&b, 3, 1, 0);
    gguf_put_info(&b, "t", 1, ne, LM_TYPE_F32, 64);
    gguf_pad_and_data(&b, 64);
    EXPECT_CONTAINS(parse_error(&b), "tensor 't': data (offset 64, 32 bytes) runs past the end of the file");
    gguf_header(&b, 3, 1, 0);
    gguf_put_info(&b, "t", 1, ne, LM_TYPE_F32, UINT64_MAX - 31); /* offset + size wraps */
    gguf_pad_and_data(&b, 64);
    EXPECT_CONTAINS(parse_error(&b), "runs past the end of the file");
    uint64_t ne2[1] = {16}; /* 64 bytes at 0 overlaps 32 bytes at 32 */
    gguf_header(&b, 3, 2, 0);
    gguf_put_info(&b, "big", 1, ne2, LM_TYPE_F32, 0);
    gguf_put_info(&b, "small", 1, ne, LM_TYPE_F32, 32);
    gguf_pad_and_data(&b, 128);
    EXPECT_CONTAINS(parse_error(&b), "tensors 'big' and 'small' overlap");
    gguf_header(&b, 3, 1, 0);
    gguf_put_info(&b, "t", 1, ne, LM_TYPE_F32, 0);
    EXPECT_CONTAINS(parse_error(&b), "data section is missing");
    lm_buf_free(&b);
    return 0;
}

TEST(gguf_bad_alignment) {
    const struct { uint32_t value; const char *msg; } cases[] = {
        {0, "0 is not a power of two"}, {48, "48 is not a power of two"}, {1u << 30, "1073741824 is not a power of two"},
    };
    struct lm_buf b = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct lm_gguf_writer w;
        lm_gguf_writer_init(&w);
        lm_gguf_write_u32(&w, "general.alignment", cases[i].value);
        finish(&w, &b);
        EXPECT_CONTAINS(parse_error(&b), cases[i].msg);
    }
    struct lm_gguf_writer w;
    lm_gguf_writer_init(&w);
    lm_gguf_write_str(&w, "general.alignment", "32");
    finish(&w, &b);
    EXPECT_CONTAINS(parse_error(&b), "general.alignment: expected u32, found string");
    lm_buf_free(&b);
    return 0;
}

/* The same refusals through the program: one line on stderr naming the file, exit 2. */
TEST(cli_info_refuses_malformed_files) {
    struct lm_buf b = {0}, out = {0}, err = {0};
    tiny_model(&b);
    struct { const char *name; struct lm_buf bytes; } files[3];
    files[0].name = "truncated";
    files[0].bytes = (struct lm_buf){0};
    lm_buf_append(&files[0].bytes, b.data, 30);
    files[1].bytes = (struct lm_buf){0};
    gguf_header(&files[1].bytes, 3, 1ull << 40, 0);
    files[1].name = "huge-count";
    files[2].name = "not-gguf";
    files[2].bytes = (struct lm_buf){0};
    lm_buf_puts(&files[2].bytes, "hello, this is not a model file at all");
    for (int i = 0; i < 3; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s", test_tmp_path(".gguf"));
        FILE *f = fopen(path, "wb");
        EXPECT(f && fwrite(files[i].bytes.data, 1, files[i].bytes.len, f) == files[i].bytes.len);
        if (f) fclose(f);
        char args[600];
        snprintf(args, sizeof args, "info -m '%s'", path);
        int rc = test_run_lm(args, NULL, &out, &err);
        EXPECT_EQ_INT(rc, 2);
        EXPECT(out.len == 0);
        char prefix[600];
        snprintf(prefix, sizeof prefix, "lm: %s: ", path);
        EXPECT(err.data && strncmp(err.data, prefix, strlen(prefix)) == 0);
        EXPECT(err.data && strchr(err.data, '\n') == err.data + err.len - 1); /* one line */
        lm_buf_free(&files[i].bytes);
    }
    int rc = test_run_lm("info -m /nonexistent/model.gguf", NULL, &out, &err);
    EXPECT_EQ_INT(rc, 2);
    EXPECT_CONTAINS(err.data, "lm: /nonexistent/model.gguf: No such file or directory");
    rc = test_run_lm("info --bogus", NULL, &out, &err);
    EXPECT_EQ_INT(rc, 1);
    EXPECT_CONTAINS(err.data, "unknown option '--bogus'");
    lm_buf_free(&b);
    lm_buf_free(&out);
    lm_buf_free(&err);
    return 0;
}

/* lm info agrees with what the gguf Python package reads (an independent
 * reader) on the file at path. */
static int check_info(const char *path) {
    if (system("python3 -c 'import gguf' 2>/dev/null") != 0) return test_skip("python3 gguf package not installed");
    const char *lm = getenv("LM_BIN");
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "python3 scripts/check-info.py '%s' %s", path, lm && *lm ? lm : "./lm");
    EXPECT_EQ_INT(system(cmd), 0);
    return 0;
}

TEST(cli_info_matches_gguf_py) {
    const char *model = test_model_path();
    if (!model) return test_skip("no default model (scripts/get-model.sh)");
    return check_info(model);
}

/* Hyperparameters that are arrays, one value per layer (gemma4's head_count_kv). */
TEST(cli_info_matches_gguf_py_per_layer) { return check_info(LM_ARCH_MODELS "/gemma4.gguf"); }

/* A vocabulary-only file: metadata, no tensors. */
TEST(cli_info_matches_gguf_py_vocab) {
    int rc;
    const char *vocab = test_shared_file("vocab/ggml-vocab-gpt-2.gguf", &rc);
    return vocab ? check_info(vocab) : rc;
}
