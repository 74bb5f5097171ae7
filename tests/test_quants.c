/* Kernel tests, looping over the traits table. Expected values come from
 * tests/data/quants/ (made by scripts/gen-quant-vectors.py from gguf-py,
 * numpy and ggml's own reference quantizers), from double-precision dot
 * products of dequantized rows, and from the IEEE formats' definitions.
 * Every kernel is checked in both tables: the served one (SIMD where built)
 * and the reference one. $LM_TEST_SIMD, when set, is the kernel set the
 * served table must have (lm_quants_simd()). */
#include "lm/common.h"
#include "lm/quants.h"
#include "test.h"

#include <stdlib.h>

#define DATA "tests/data/quants/"

static const char *table_name(int ref) { return ref ? "ref" : lm_quants_simd(); }
static const struct lm_type_traits *get(int ref, uint32_t t) { return ref ? lm_type_get_ref(t) : lm_type_get(t); }

/* Reads a committed vector; a missing file is a failure, not a skip. */
static bool read_vec(const char *name, struct lm_buf *b) {
    char path[256];
    struct lm_err err;
    snprintf(path, sizeof path, DATA "%s", name);
    if (lm_read_file(path, b, &err) < 0) {
        test_fail(__FILE__, __LINE__, "%s", err.msg);
        return false;
    }
    return true;
}

static bool file_exists(const char *name) {
    char path[256];
    snprintf(path, sizeof path, DATA "%s", name);
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

/* splitmix64: a small reproducible generator */
static uint64_t rng_state;
static uint64_t rng_next(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static float rng_uniform(void) { return (float)((double)(rng_next() >> 11) * 0x1.0p-53 * 2 - 1); } /* [-1, 1) */

/* The formats the engine computes with: each must have all three kernels. */
static const enum lm_type computed[] = {LM_TYPE_F32,  LM_TYPE_F16,  LM_TYPE_BF16, LM_TYPE_Q4_0, LM_TYPE_Q4_1,
                                        LM_TYPE_Q5_0, LM_TYPE_Q5_1, LM_TYPE_Q8_0, LM_TYPE_Q2_K, LM_TYPE_Q3_K,
                                        LM_TYPE_Q4_K, LM_TYPE_Q5_K, LM_TYPE_Q6_K};

TEST(quants_traits) {
    /* make neon-test names the kernels it built for, so a build that fell
     * back to the scalar ones fails instead of testing ref against ref */
    const char *want_simd = getenv("LM_TEST_SIMD");
    if (want_simd && *want_simd) EXPECT_EQ_STR(lm_quants_simd(), want_simd);
    for (size_t k = 0; k < sizeof computed / sizeof computed[0]; k++)
        for (int ref = 0; ref < 2; ref++) {
            const struct lm_type_traits *t = get(ref, computed[k]);
            EXPECT(t && t->to_f32 && t->from_f32 && t->vec_dot);
            if (!t || !t->vec_dot) continue;
            const struct lm_type_traits *a = get(ref, t->vec_dot_type);
            EXPECT(a && a->to_f32 && a->from_f32);
            if (a) EXPECT_EQ_INT(t->blck % a->blck, 0); /* a row of x covers whole blocks of y */
        }
    /* the pairings ggml uses, and ours for the float formats */
    EXPECT_EQ_INT(lm_type_get(LM_TYPE_Q4_0)->vec_dot_type, LM_TYPE_Q8_0);
    EXPECT_EQ_INT(lm_type_get(LM_TYPE_Q5_0)->vec_dot_type, LM_TYPE_Q8_0);
    EXPECT_EQ_INT(lm_type_get(LM_TYPE_Q8_0)->vec_dot_type, LM_TYPE_Q8_0);
    EXPECT_EQ_INT(lm_type_get(LM_TYPE_Q4_1)->vec_dot_type, LM_TYPE_Q8_1);
    EXPECT_EQ_INT(lm_type_get(LM_TYPE_Q5_1)->vec_dot_type, LM_TYPE_Q8_1);
    EXPECT_EQ_INT(lm_type_get(LM_TYPE_Q4_K)->vec_dot_type, LM_TYPE_Q8_K);
    EXPECT_EQ_INT(lm_type_get(LM_TYPE_Q6_K)->vec_dot_type, LM_TYPE_Q8_K);
    EXPECT_EQ_INT(lm_type_get(LM_TYPE_F16)->vec_dot_type, LM_TYPE_F32);
    /* sizes as in gguf-py's GGML_QUANT_SIZES */
    EXPECT_EQ_INT(lm_type_get(LM_TYPE_Q4_1)->size, 20);
    EXPECT_EQ_INT(lm_type_get(LM_TYPE_Q8_1)->size, 36);
    EXPECT_EQ_INT(lm_type_get(LM_TYPE_Q5_K)->size, 176);
    EXPECT_EQ_INT(lm_type_get(LM_TYPE_Q8_K)->size, 292);
    EXPECT(lm_type_get(4) == NULL && lm_type_get(LM_TYPE_COUNT) == NULL && lm_type_get_ref(31) == NULL);
    return 0;
}

/* to_f32 of random raw blocks equals gguf-py's dequantization exactly. */
TEST(quants_to_f32) {
    int n_checked = 0;
    for (uint32_t type = 0; type < LM_TYPE_COUNT; type++) {
        const struct lm_type_traits *t = lm_type_get_ref(type);
        if (!t || !t->to_f32 || type == LM_TYPE_F32) continue;
        char name[64];
        struct lm_buf blocks = {0}, deq = {0};
        snprintf(name, sizeof name, "%s.blocks", t->name);
        bool ok = read_vec(name, &blocks);
        snprintf(name, sizeof name, "%s.deq", t->name);
        ok = read_vec(name, &deq) && ok;
        if (ok) {
            const int64_t n = (int64_t)(blocks.len / t->size) * t->blck;
            EXPECT(blocks.len % t->size == 0 && deq.len == (size_t)n * sizeof(float));
            float *y = lm_xmalloc(deq.len);
            for (int ref = 0; ref < 2 && deq.len == (size_t)n * sizeof(float); ref++) {
                memset(y, 0xff, deq.len);
                get(ref, type)->to_f32(blocks.data, y, n);
                const float *want = (const float *)deq.data;
                for (int64_t i = 0; i < n; i++)
                    if (memcmp(&y[i], &want[i], sizeof(float)) != 0) {
                        test_fail(__FILE__, __LINE__, "%s to_f32 (%s) [%lld]: %.9g, gguf-py %.9g", t->name,
                                  table_name(ref), (long long)i, y[i], want[i]);
                        break;
                    }
            }
            free(y);
            n_checked++;
        }
        lm_buf_free(&blocks);
        lm_buf_free(&deq);
    }
    EXPECT_EQ_INT(n_checked, 14); /* f16, bf16, q4_0 .. q8_1, q2_K .. q8_K */
    return 0;
}

/* from_f32 matches the quantizers of gguf-py (q4_0 .. q8_0, f16, bf16) and
 * ggml (q8_1, q8_K, q2_K .. q6_K) byte for byte, on inputs with ties, zero
 * and constant blocks, tiny and huge values. */
TEST(quants_from_f32) {
    struct lm_buf in = {0};
    if (!read_vec("quant.f32", &in)) return 1;
    const int64_t n = (int64_t)(in.len / sizeof(float));
    float *x = lm_xmalloc(in.len);
    memcpy(x, in.data, in.len);
    int n_checked = 0;
    for (uint32_t type = 0; type < LM_TYPE_COUNT; type++) {
        const struct lm_type_traits *t = lm_type_get_ref(type);
        char name[64];
        if (!t || !t->from_f32) continue;
        snprintf(name, sizeof name, "%s.quant", t->name);
        if (!file_exists(name)) {
            EXPECT(type == LM_TYPE_F32); /* every other format has a vector */
            continue;
        }
        struct lm_buf want = {0};
        if (read_vec(name, &want) && n % t->blck == 0) {
            const size_t size = (size_t)(n / t->blck) * t->size;
            EXPECT_EQ_INT(want.len, size);
            uint8_t *y = lm_xmalloc(size);
            for (int ref = 0; ref < 2 && want.len == size; ref++) {
                memset(y, 0xa5, size);
                get(ref, type)->from_f32(x, y, n);
                for (size_t i = 0; i < size; i++)
                    if (y[i] != (uint8_t)want.data[i]) {
                        test_fail(__FILE__, __LINE__, "%s from_f32 (%s): byte %zu of block %zu: %d, expected %d", t->name,
                                  table_name(ref), i % t->size, i / t->size, y[i], (uint8_t)want.data[i]);
                        break;
                    }
            }
            free(y);
            n_checked++;
        }
        lm_buf_free(&want);
    }
    EXPECT_EQ_INT(n_checked, 14);
    free(x);
    lm_buf_free(&in);
    return 0;
}

/* Activations quantized to q8_0/q8_1 as ggml-cpu's x86 quantize_row_q8_0/
 * q8_1 do: with amax 127 the inverse scale 127/amax is 1 and each x*id is
 * x, rounded to nearest even (_mm256_round_ps), while the weights'
 * quantizer (roundf, as quantize_row_q8_0_ref) rounds halves away. Both
 * builds' tables. */
TEST(quants_activation_rounding) {
    float x[32] = {127, 2.5f, 3.5f, -2.5f, -3.5f, 0.5f, -0.5f, 1.5f, 126.5f, -0.25f};
    static const int8_t act[10] = {127, 2, 4, -2, -4, 0, 0, 2, 126, 0}, weight[10] = {127, 3, 4, -3, -4, 1, -1, 2, 127, 0};
    for (int ref = 0; ref < 2; ref++) {
        const struct lm_type_traits *q80 = ref ? lm_type_get_ref(LM_TYPE_Q8_0) : lm_type_get(LM_TYPE_Q8_0);
        const struct lm_type_traits *q81 = ref ? lm_type_get_ref(LM_TYPE_Q8_1) : lm_type_get(LM_TYPE_Q8_1);
        struct lm_block_q8_0 a, w;
        struct lm_block_q8_1 a1;
        q80->act_from_f32(x, &a, 32);
        q80->from_f32(x, &w, 32);
        q81->act_from_f32(x, &a1, 32);
        for (int i = 0; i < 10; i++) {
            EXPECT_EQ_INT(a.qs[i], act[i]);
            EXPECT_EQ_INT(a1.qs[i], act[i]);
            EXPECT_EQ_INT(w.qs[i], weight[i]);
        }
        EXPECT(lm_f16_to_f32(a.d) == 1.0f);
        EXPECT(lm_f16_to_f32(a1.s) == 255.0f); /* the sum of the levels times d */
    }
    return 0;
}

/* The SIMD activation quantizers give the reference bytes on many random
 * blocks, including exact rounding ties and +a/-a maxima. */
TEST(quants_activation_bytes) {
    static const enum lm_type acts[] = {LM_TYPE_Q8_0, LM_TYPE_Q8_1, LM_TYPE_Q8_K};
    const int64_t n = 64 * LM_QK_K;
    float *x = lm_xmalloc((size_t)n * sizeof(float));
    rng_state = 7;
    for (int64_t i = 0; i < n; i++) {
        const int64_t blk = i / 32;
        if (blk % 3 == 0) x[i] = (float)((int)(rng_uniform() * 126) + 0.5); /* ties once d = 1 */
        else x[i] = rng_uniform() * (float)(1 << (blk % 20)) * 1e-3f;
        if (blk % 3 == 0 && i % 32 == 5) x[i] = 127;
        if (blk % 4 == 1 && i % 32 == 7) x[i] = -x[i - 1]; /* equal magnitudes: the first decides */
    }
    const int64_t lens[] = {n, LM_QK_K, 32 * 13}; /* the SIMD q8_0/q8_1 take blocks in groups of 8 */
    for (size_t k = 0; k < sizeof acts / sizeof acts[0]; k++)
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
            const struct lm_type_traits *t = lm_type_get(acts[k]), *r = lm_type_get_ref(acts[k]);
            const int64_t len = lens[li] - lens[li] % t->blck;
            const size_t size = (size_t)(len / t->blck) * t->size;
            uint8_t *a = lm_xmalloc(size), *b = lm_xmalloc(size);
            for (int act = 0; act < 2; act++) { /* the weights' quantizer, then the activations' */
                (act ? t->act_from_f32 : t->from_f32)(x + (n - len), a, len);
                (act ? r->act_from_f32 : r->from_f32)(x + (n - len), b, len);
                for (size_t i = 0; i < size; i++)
                    if (a[i] != b[i]) {
                        test_fail(__FILE__, __LINE__, "%s%s n=%lld: %s and ref differ at byte %zu of block %zu", t->name,
                                  act ? " activations" : "", (long long)len, lm_quants_simd(), i % t->size, i / t->size);
                        break;
                    }
            }
            free(a);
            free(b);
        }
    /* bf16 (the activations of bf16 weights): exact ties both ways, NaNs,
     * infinities, subnormals, carries into the exponent, and every tail */
    uint32_t bits[1000];
    for (int i = 0; i < 1000; i++) {
        static const uint32_t special[] = {0x7fc00000, 0xffc00001, 0x7f800001, 0x7f800000, 0xff800000, 0x80000000,
                                           0x00000001, 0x00008000, 0x80018000, 0x7f7fffff, 0x3f7fffff, 0x3f808000,
                                           0x3f818000, 0x3f817fff, 0x40008001};
        bits[i] = i < (int)(sizeof special / sizeof special[0]) ? special[i] : (uint32_t)rng_next();
        if (i % 7 == 3) bits[i] = (bits[i] & 0xffff0000u) | 0x8000; /* a tie */
    }
    float *xb = lm_xmalloc(sizeof bits);
    memcpy(xb, bits, sizeof bits);
    uint16_t a[1000], b[1000];
    for (int len = 1; len <= 1000; len += len < 40 ? 1 : 480) {
        lm_type_get(LM_TYPE_BF16)->act_from_f32(xb + 1000 - len, a, len);
        for (int i = 0; i < len; i++) b[i] = lm_f32_to_bf16(xb[1000 - len + i]);
        if (memcmp(a, b, sizeof a[0] * (size_t)len))
            test_fail(__FILE__, __LINE__, "bf16 activations n=%d: %s and ref differ", len, lm_quants_simd());
    }
    free(xb);
    free(x);
    return 0;
}

/* Fills n weights of a type: from the committed random raw blocks (every
 * bit pattern, tiled to length) or by quantizing random floats. */
static void *make_x(const struct lm_type_traits *t, uint32_t type, int n, bool raw) {
    const size_t size = (size_t)(n / t->blck) * t->size;
    uint8_t *x = lm_xmalloc(size);
    if (raw && type != LM_TYPE_F32) {
        char name[64];
        struct lm_buf b = {0};
        snprintf(name, sizeof name, "%s.blocks", t->name);
        if (read_vec(name, &b) && b.len >= t->size)
            for (size_t off = 0; off < size; off += t->size) memcpy(x + off, b.data + off % (b.len - b.len % t->size), t->size);
        lm_buf_free(&b);
    } else {
        float *f = lm_xmalloc((size_t)n * sizeof(float));
        for (int i = 0; i < n; i++) f[i] = rng_uniform() * (1 + (i % 7));
        lm_type_get_ref(type)->from_f32(f, x, n);
        free(f);
    }
    return x;
}

/* vec_dot against the reference kernel (tight: only summation order may
 * differ) and against a double-precision dot of the dequantized rows. */
TEST(quants_vec_dot) {
    rng_state = 42;
    for (size_t k = 0; k < sizeof computed / sizeof computed[0]; k++) {
        const uint32_t type = computed[k];
        const struct lm_type_traits *t = lm_type_get(type), *r = lm_type_get_ref(type);
        const struct lm_type_traits *at = lm_type_get_ref(t->vec_dot_type);
        const int blck = t->blck == 1 ? 8 : t->blck;
        /* 80 blocks: k-quant rows longer than the AVX-512 kernels take at once (64) */
        const int ns[] = {t->blck, 3 * blck + (t->blck == 1), 4096 + blck, 17 * blck + (t->blck == 1) * 5, 80 * blck};
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
            for (int raw = 0; raw < 2; raw++) {
                const int n = ns[ni];
                void *x = make_x(t, type, n, raw);
                float *yf = lm_xmalloc((size_t)n * sizeof(float)), *xd = lm_xmalloc((size_t)n * sizeof(float));
                float *yd = lm_xmalloc((size_t)n * sizeof(float));
                for (int i = 0; i < n; i++) yf[i] = rng_uniform() * (i % 5 == 0 ? 4.0f : 1.0f);
                void *y = lm_xmalloc((size_t)(n / at->blck) * at->size);
                lm_type_get(t->vec_dot_type)->from_f32(yf, y, n);
                r->to_f32(x, xd, n);
                at->to_f32(y, yd, n);
                double exact = 0, mag = 0;
                for (int i = 0; i < n; i++) {
                    exact += (double)xd[i] * yd[i];
                    mag += fabs((double)xd[i] * yd[i]);
                }
                float fast = NAN, ref = NAN;
                t->vec_dot(n, &fast, x, y);
                r->vec_dot(n, &ref, x, y);
                /* q8_1's s = d*sum(q) is rounded to f16, which the dequantized dot does not see */
                const double tol = (t->vec_dot_type == LM_TYPE_Q8_1 ? 1e-3 : 1e-6) * mag + 1e-30;
                if (!(fabs((double)fast - ref) <= 1e-6 * mag + 1e-30) || !(fabs(ref - exact) <= tol))
                    test_fail(__FILE__, __LINE__, "%s n=%d %s: %s %.9g, ref %.9g, exact %.9g (sum |xy| %g)", t->name, n,
                              raw ? "raw blocks" : "quantized", lm_quants_simd(), fast, ref, exact, mag);
                else if (test_verbose)
                    fprintf(stderr, "  %-5s n=%-5d %s: simd-ref %.2g, ref-exact %.2g (relative to sum |xy|)\n", t->name, n,
                            raw ? "raw" : "quantized", fabs((double)fast - ref) / mag, fabs(ref - exact) / mag);
                free(x);
                free(y);
                free(yf);
                free(xd);
                free(yd);
            }
    }
    return 0;
}

/* lm_gemm (the served table's gemm kernel where there is one) against the
 * reference vec_dot of every pair, over tile edges (rows and activation
 * rows not multiples of the kernels' blocking), padded row strides, rows
 * long enough to be split in chunks, and an output with a wider stride
 * whose gaps must stay untouched. The float formats' batch kernels (8 or
 * more activation rows) work on panels of 16 (AVX2) or 64 rows (AVX-512)
 * and tiles of 4 to 6 activation rows: the last shapes give them full and
 * partial panels (5, 8 and 11 rows left; 59 rows, a last vector of 11)
 * and every tile width. The odd row lengths leave the bf16 kernels' pairs
 * (vdpbf16ps) a lone last weight. */
TEST(quants_gemm) {
    rng_state = 7;
    for (size_t k = 0; k < sizeof computed / sizeof computed[0]; k++) {
        const uint32_t type = computed[k];
        const struct lm_type_traits *t = lm_type_get(type), *r = lm_type_get_ref(type);
        const struct lm_type_traits *at = lm_type_get(t->vec_dot_type);
        const int blck = t->blck == 1 ? 32 : t->blck;
        const int ns[] = {blck, 5 * blck + (t->blck == 1 ? 3 : 0), 4096 + 3 * blck + (t->blck == 1 ? 5 : 0)};
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
            for (int raw = 0; raw < 2; raw++) {
                const int n = ns[ni], max_r = 75, max_c = 19;
                const size_t xrow = (size_t)(n / t->blck) * t->size, bx = xrow + t->size;
                const size_t yrow = (size_t)(n / at->blck) * at->size, by = yrow + 2 * at->size;
                uint8_t *x = lm_xmalloc(bx * max_r), *y = lm_xmalloc(by * max_c);
                float *xd = lm_xmalloc(sizeof(float) * (size_t)n * max_r), *yd = lm_xmalloc(sizeof(float) * (size_t)n * max_c);
                float *yf = lm_xmalloc(sizeof(float) * (size_t)n);
                for (int i = 0; i < max_r; i++) {
                    void *row = make_x(t, type, n, raw);
                    memcpy(x + bx * i, row, xrow);
                    free(row);
                    r->to_f32(x + bx * i, xd + (size_t)n * i, n);
                }
                for (int c = 0; c < max_c; c++) {
                    for (int i = 0; i < n; i++) yf[i] = rng_uniform() * (i % 5 == 0 ? 4.0f : 1.0f);
                    at->from_f32(yf, y + by * c, n);
                    lm_type_get_ref(t->vec_dot_type)->to_f32(y + by * c, yd + (size_t)n * c, n);
                }
                /* f16 weights against fewer than 8 activation rows (generation):
                 * the AVX-512 kernel rounds the activations to f16 first, as
                 * llama.cpp does; yh: the rows so */
                float *yh = lm_xmalloc(sizeof(float) * (size_t)n * max_c);
                for (int j = 0; j < n * max_c; j++) yh[j] = lm_f16_to_f32(lm_f32_to_f16(yd[j]));
                const int shapes[][2] = {{1, 1}, {4, 1}, {7, 1}, {2, 4},  {3, 3},  {5, 2},
                                         {11, 9}, {1, 6}, {16, 8}, {27, 12}, {24, 19}, {59, 8}, {max_r, 13}, {max_r, 1}};
                float out[(75 + 3) * 19];
                for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
                    const int nr = shapes[si][0], nc = shapes[si][1];
                    const size_t ldc = (size_t)nr + 3;
                    for (size_t i = 0; i < sizeof out / sizeof out[0]; i++) out[i] = -12345.0f;
                    lm_gemm(t, n, nr, nc, out, ldc, x, bx, y, by);
                    for (int c = 0; c < nc; c++)
                        for (int i = 0; i < (int)ldc; i++) {
                            const float got = out[ldc * c + i];
                            if (i >= nr) {
                                if (got != -12345.0f) test_fail(__FILE__, __LINE__, "%s gemm wrote outside its tile", t->name);
                                continue;
                            }
                            float ref, ref16 = 0;
                            r->vec_dot(n, &ref, x + bx * i, y + by * c);
                            const bool few = type == LM_TYPE_F16 && nc < 8;
                            if (few) r->vec_dot(n, &ref16, x + bx * i, yh + (size_t)n * c);
                            /* magnitude: the products, plus for q4_0/q5_0 the offset (8 or 16)*d
                             * that a kernel may apply as a separate term */
                            double mag = 0;
                            const float *xr = xd + (size_t)n * i, *yr = yd + (size_t)n * c;
                            for (int j = 0; j < n; j++) {
                                double off = 0;
                                if (type == LM_TYPE_Q4_0 || type == LM_TYPE_Q5_0) {
                                    uint16_t d;
                                    memcpy(&d, x + bx * i + (size_t)(j / 32) * t->size, 2);
                                    off = 16 * fabs(lm_f16_to_f32(d));
                                }
                                mag += (fabs(xr[j]) + off) * fabs(yr[j]);
                            }
                            if (!(fabs((double)got - ref) <= 2e-6 * mag + 1e-30) &&
                                !(few && fabs((double)got - ref16) <= 2e-6 * mag + 1e-30))
                                test_fail(__FILE__, __LINE__, "%s n=%d %s gemm %dx%d [%d][%d]: %.9g, ref %.9g (sum |xy| %g)",
                                          t->name, n, raw ? "raw" : "quantized", nr, nc, c, i, got, ref, mag);
                        }
                }
                free(x);
                free(y);
                free(xd);
                free(yd);
                free(yf);
                free(yh);
            }
    }
    return 0;
}

/* Batch invariance (lm serve): a weight row against an activation row must
 * give the same bits whatever other activation rows share the call, as the
 * model's batch of sequences needs. Every type whose traits say so
 * (lm_gemm_rows_independent: the AVX-512 build's q4_0-q8_0, the scalar
 * build's every type) is checked on every row; q4_0-q8_0 elsewhere on the
 * rows past the last full group of 8 (1 to 7 rows; a full group takes a
 * kernel with its own summation order); every other type on calls of 2 to
 * 7 rows (lm serve's generation steps where the model's kernels are not
 * rows-independent: the AVX-512 build's few-row q4_K and q6_K kernels read
 * the weights once for 4 rows). Against the call with that row
 * alone, for every row count up to 40 (passes of 16 rows and the rest), 37
 * weight rows (tiles of 4 or 2 and the rest) and rows of 1, 5, 18 (the
 * default model's 576 weights: a last step of 2 blocks) and 131 blocks
 * (more than one chunk of a kernel's sums), and of the 32-weight formats
 * 521. */
TEST(quants_gemm_rows_invariant) {
    rng_state = 11;
    for (size_t k = 0; k < sizeof computed / sizeof computed[0]; k++)
        for (int raw = 0; raw < 2; raw++) {
            const enum lm_type type = computed[k];
            const struct lm_type_traits *t = lm_type_get(type), *at = lm_type_get(t->vec_dot_type);
            const bool every_row = lm_gemm_rows_independent(t);
            const bool past_groups = type >= LM_TYPE_Q4_0 && type <= LM_TYPE_Q8_0;
            /* 521 blocks of 32: past the 512 blocks a one-row kernel packs at once */
            const int blocks[] = {1, 5, 18, 131, 521};
            for (size_t ni = 0; ni < sizeof blocks / sizeof blocks[0] - (t->blck == 32 ? 0 : 1); ni++) {
                const int n = blocks[ni] * t->blck, nr = 37, max_c = 40;
                const size_t bx = (size_t)(n / t->blck) * t->size, by = (size_t)(n / at->blck) * at->size;
                uint8_t *x = make_x(t, type, n * nr, raw), *y = lm_xmalloc(by * max_c);
                float *yf = lm_xmalloc(sizeof(float) * (size_t)n);
                for (int c = 0; c < max_c; c++) {
                    for (int i = 0; i < n; i++) yf[i] = rng_uniform() * (i % 3 == 0 ? 8.0f : 1.0f);
                    at->from_f32(yf, y + by * c, n);
                }
                float out[37 * 40], one[37];
                for (int nc = 2; nc <= (every_row || past_groups ? max_c : 7); nc++) {
                    lm_gemm(t, n, nr, nc, out, nr, x, bx, y, by);
                    for (int c = every_row || !past_groups ? 0 : nc / 8 * 8; c < nc; c++) {
                        lm_gemm(t, n, nr, 1, one, nr, x, bx, y + by * c, by);
                        if (memcmp(one, out + nr * c, sizeof one))
                            test_fail(__FILE__, __LINE__, "%s n=%d %s: activation row %d of %d differs from the row alone",
                                      t->name, n, raw ? "raw" : "quantized", c, nc);
                    }
                }
                free(x);
                free(y);
                free(yf);
            }
        }
    return 0;
}

/* A kernel may keep the activations it packed for its next call (the
 * AVX-512 build's few-row q4_0-q8_0 kernels do): new rows in the same
 * buffer, of the same size and count, must be packed anew. Each row of the
 * second call against the call with that row alone. */
TEST(quants_gemm_new_rows_same_buffer) {
    rng_state = 12;
    const enum lm_type types[] = {LM_TYPE_Q4_0, LM_TYPE_Q4_1, LM_TYPE_Q8_0};
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        const struct lm_type_traits *t = lm_type_get(types[k]), *at = lm_type_get(t->vec_dot_type);
        const int n = 576, nr = 8, nc = 4;
        const size_t bx = (size_t)(n / t->blck) * t->size, by = (size_t)(n / at->blck) * at->size;
        uint8_t *x = make_x(t, types[k], n * nr, false), *y = lm_xmalloc(by * nc);
        float yf[576], out[8 * 4], one[8];
        for (int round = 0; round < 2; round++) {
            for (int c = 0; c < nc; c++) {
                for (int i = 0; i < n; i++) yf[i] = rng_uniform();
                at->from_f32(yf, y + by * c, n);
            }
            lm_gemm(t, n, nr, nc, out, nr, x, bx, y, by);
        }
        for (int c = 0; c < nc; c++) {
            lm_gemm(t, n, nr, 1, one, nr, x, bx, y + by * c, by);
            if (memcmp(one, out + nr * c, sizeof one))
                test_fail(__FILE__, __LINE__, "%s: activation row %d of the second call differs from the row alone", t->name, c);
        }
        free(x);
        free(y);
    }
    return 0;
}

/* f16: numpy's conversions of edge values, and every one of the 65536 bit
 * patterns against the format's definition and back. */
TEST(quants_f16) {
    struct lm_buf in = {0}, bits = {0};
    if (read_vec("f16.f32", &in) && read_vec("f16.bits", &bits)) {
        const size_t n = in.len / sizeof(float);
        EXPECT_EQ_INT(bits.len, n * 2);
        for (size_t i = 0; i < n && bits.len == n * 2; i++) {
            float f;
            uint16_t want;
            memcpy(&f, in.data + 4 * i, 4);
            memcpy(&want, bits.data + 2 * i, 2);
            const uint16_t got = lm_f32_to_f16(f);
            if (got != want) {
                test_fail(__FILE__, __LINE__, "f32_to_f16(%a) = 0x%04x, numpy 0x%04x", (double)f, got, want);
                break;
            }
        }
    }
    lm_buf_free(&in);
    lm_buf_free(&bits);

    int bad = 0;
    for (uint32_t h = 0; h < 65536 && bad < 3; h++) {
        const int sign = h >> 15, exp = (h >> 10) & 31, man = h & 0x3ff;
        const float f = lm_f16_to_f32((uint16_t)h);
        if (exp == 31 && man) {
            if (!isnan(f) || (lm_f32_to_f16(f) & 0x7e00) != 0x7e00) bad++, test_fail(__FILE__, __LINE__, "NaN 0x%04x", h);
            continue;
        }
        const double v = exp == 31 ? INFINITY : exp == 0 ? ldexp(man, -24) : ldexp(1024 + man, exp - 25);
        if (f != (sign ? -v : v) || !!signbit(f) != sign || lm_f32_to_f16(f) != h) {
            bad++;
            test_fail(__FILE__, __LINE__, "f16 0x%04x -> %a -> 0x%04x", h, (double)f, lm_f32_to_f16(f));
        }
    }
    EXPECT(isnan(lm_f16_to_f32(lm_f32_to_f16(NAN))));
    EXPECT_EQ_INT(lm_f32_to_f16(0x1.ffcp15f), 0x7bff);   /* 65504, the largest half */
    EXPECT_EQ_INT(lm_f32_to_f16(0x1.ffep15f), 0x7c00);   /* 65520: the tie rounds to even, i.e. inf */
    EXPECT_EQ_INT(lm_f32_to_f16(0x1.0p-25f), 0x0000);    /* half the smallest subnormal: tie to even 0 */
    EXPECT_EQ_INT(lm_f32_to_f16(0x1.8p-24f), 0x0002);    /* 1.5 subnormal units: tie to even 2 */
    EXPECT_EQ_INT(lm_f32_to_f16(-0x1.ff4p-15f), 0x83fe); /* 1022.5 units: tie to even 1022 */
    EXPECT_EQ_INT(lm_f32_to_f16(0x1.ffcp-15f), 0x0400);  /* 1023.5 units: carries into the smallest normal */
    return 0;
}

/* bf16: the upper half of a float, rounded to nearest even; NaN stays NaN. */
TEST(quants_bf16) {
    static const struct { uint32_t f; uint16_t b; } cases[] = {
        {0x3f800000, 0x3f80}, {0x3f808000, 0x3f80}, {0x3f818000, 0x3f82}, {0x3f808001, 0x3f81},
        {0x7f800000, 0x7f80}, {0xff800000, 0xff80}, {0x7f7fffff, 0x7f80}, {0x00000001, 0x0000},
        {0x80008000, 0x8000}, {0x00018000, 0x0002},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        float f;
        memcpy(&f, &cases[i].f, 4);
        EXPECT_EQ_INT(lm_f32_to_bf16(f), cases[i].b);
    }
    EXPECT(isnan(lm_bf16_to_f32(lm_f32_to_bf16(NAN))));
    const uint32_t snan_bits = 0x7f800001; /* signalling NaN whose payload would truncate to inf */
    float snan;
    memcpy(&snan, &snan_bits, 4);
    EXPECT(isnan(lm_bf16_to_f32(lm_f32_to_bf16(snan))));
    for (uint32_t h = 0; h < 65536; h += 7) {
        if ((h & 0x7f80) == 0x7f80 && (h & 0x7f)) continue;
        EXPECT_EQ_INT(lm_f32_to_bf16(lm_bf16_to_f32((uint16_t)h)), h);
    }
    return 0;
}

/* Not a test: kernel throughput, run with LM_BENCH=1 ./build/test-runner bench_quants.
 * A matrix-vector product per type, one thread: weights from a cache-sized
 * matrix (compute bound) and from a 64 MB one (memory bound). */
static double bench_matvec(void (*dot)(int, float *, const void *, const void *), const void *w, size_t row_size,
                           int n, int rows, const void *act, int reps) {
    float s, sink = 0;
    double best = 1e30;
    for (int r = 0; r < reps; r++) { /* the best of reps passes: the machine may be shared */
        const double t0 = lm_time();
        for (int i = 0; i < rows; i++) {
            dot(n, &s, (const char *)w + (size_t)i * row_size, act);
            sink += s;
        }
        const double dt = lm_time() - t0;
        if (dt < best) best = dt;
    }
    if (sink == 12345.678f) fprintf(stderr, " ");
    return (double)row_size * rows / best * 1e-9;
}

TEST(bench_quants) {
    const char *env = getenv("LM_BENCH");
    if (!env || !*env) return test_skip_optin("set LM_BENCH=1 to run");
    rng_state = 1;
    fprintf(stderr, "  %-5s %5s  %18s  %18s   (GB/s of weights; %s vs ref)\n", "type", "n", "cache-resident",
            "from memory", lm_quants_simd());
    for (size_t k = 0; k < sizeof computed / sizeof computed[0]; k++) {
        const uint32_t type = computed[k];
        const struct lm_type_traits *t = lm_type_get(type), *r = lm_type_get_ref(type);
        const struct lm_type_traits *a = lm_type_get(t->vec_dot_type);
        const int sizes[] = {576, 4096};
        for (int si = 0; si < 2; si++) {
            const int n = sizes[si];
            const size_t row = (size_t)(n / t->blck) * t->size;
            const int big_rows = (int)((64u << 20) / row), small_rows = (int)((512u << 10) / row);
            float *f = lm_xmalloc((size_t)n * sizeof(float));
            for (int i = 0; i < n; i++) f[i] = rng_uniform();
            void *act = lm_xmalloc((size_t)(n / a->blck) * a->size);
            a->from_f32(f, act, n);
            uint8_t *w = lm_xmalloc(row * (size_t)big_rows);
            t->from_f32(f, w, n);
            for (int i = 1; i < big_rows; i++) memcpy(w + row * (size_t)i, w, row);
            const double c_fast = bench_matvec(t->vec_dot, w, row, n, small_rows, act, 50);
            const double c_ref = bench_matvec(r->vec_dot, w, row, n, small_rows, act, 5);
            const double m_fast = bench_matvec(t->vec_dot, w, row, n, big_rows, act, 4);
            const double m_ref = bench_matvec(r->vec_dot, w, row, n, big_rows, act, 2);
            fprintf(stderr, "  %-5s %5d  %7.2f vs %7.2f  %7.2f vs %7.2f\n", t->name, n, c_fast, c_ref, m_fast, m_ref);
            free(w);
            free(act);
            free(f);
        }
    }
    /* matrix products as the forward pass runs them: 1536 rows of 576
     * against 1 activation row (generation) and 64 (a prompt), best of
     * several runs, in G multiply-adds per second */
    const uint32_t gemm_types[] = {LM_TYPE_Q4_1, LM_TYPE_Q8_0, LM_TYPE_Q4_0, LM_TYPE_F16,
                                   LM_TYPE_BF16, LM_TYPE_F32,  LM_TYPE_Q4_K, LM_TYPE_Q6_K};
    for (size_t k = 0; k < sizeof gemm_types / sizeof gemm_types[0]; k++) {
        const struct lm_type_traits *t = lm_type_get(gemm_types[k]), *a = lm_type_get(t->vec_dot_type);
        const int n = t->blck == 256 ? 512 : 576, rows = 1536, toks = 64;
        const size_t xrow = (size_t)(n / t->blck) * t->size, yrow = (size_t)(n / a->blck) * a->size;
        float *f = lm_xmalloc(sizeof(float) * (size_t)n), *out = lm_xmalloc(sizeof(float) * rows * toks);
        uint8_t *w = lm_xmalloc(xrow * rows), *y = lm_xmalloc(yrow * toks);
        for (int i = 0; i < rows + toks; i++) {
            for (int j = 0; j < n; j++) f[j] = rng_uniform();
            if (i < rows) t->from_f32(f, w + xrow * i, n);
            else a->from_f32(f, y + yrow * (i - rows), n);
        }
        struct lm_type_traits plain = *t;
        plain.gemm = NULL;
        for (int nc = 1; nc <= toks; nc += toks - 1) {
            double best[2] = {1e30, 1e30};
            for (int rep = 0; rep < (nc == 1 ? 200 : 10); rep++)
                for (int g = 0; g < 2; g++) {
                    const double t0 = lm_time();
                    lm_gemm(g ? t : &plain, n, rows, nc, out, rows, w, xrow, y, yrow);
                    const double dt = lm_time() - t0;
                    if (dt < best[g]) best[g] = dt;
                }
            const double macs = (double)n * rows * nc * 1e-9;
            fprintf(stderr, "  %-5s %4d x %4d x %2d: gemm %6.2f, vec_dot per pair %6.2f GMAC/s\n", t->name, rows, n, nc,
                    macs / best[1], macs / best[0]);
        }
        free(f);
        free(out);
        free(w);
        free(y);
    }
    /* activation quantization, elements per ns */
    for (int q = 0; q < 3; q++) {
        const enum lm_type at = q == 0 ? LM_TYPE_Q8_0 : q == 1 ? LM_TYPE_Q8_1 : LM_TYPE_Q8_K;
        const int n = 4096, reps = 2000;
        float *f = lm_xmalloc(n * sizeof(float));
        for (int i = 0; i < n; i++) f[i] = rng_uniform();
        void *out = lm_xmalloc((size_t)(n / lm_type_get(at)->blck) * lm_type_get(at)->size);
        double t0 = lm_time();
        for (int r = 0; r < reps; r++) lm_type_get(at)->from_f32(f, out, n);
        const double fast = (double)n * reps / (lm_time() - t0) * 1e-9;
        t0 = lm_time();
        for (int r = 0; r < reps / 10; r++) lm_type_get_ref(at)->from_f32(f, out, n);
        const double ref = (double)n * reps / 10 / (lm_time() - t0) * 1e-9;
        fprintf(stderr, "  quantize to %s: %.2f vs %.2f G elements/s\n", lm_type_get(at)->name, fast, ref);
        free(f);
        free(out);
    }
    return 0;
}
