/* ops: the SIMD kernels against their scalar references, over shapes that
 * leave remainders on every side of the SIMD tiles, and the references
 * against double-precision sums. */
#include "lm/common.h"
#include "lm/ops.h"
#include "test.h"

#include <stdlib.h>

static uint64_t rng = 99;
static float rnd(void) { /* [-1, 1) */
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng >> 11) * 0x1.0p-53 * 2 - 1);
}

TEST(ops_sgemm_f16) {
    const int shapes[][3] = {{1, 8, 1}, {4, 16, 64}, {5, 24, 64}, {3, 7, 5}, {48, 256, 64}, {13, 64, 259}, {2, 33, 17}, {17, 59, 9}, {7, 40, 3}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
        const size_t lda = (size_t)K + 3, ldb = (size_t)N + 5, ldc = (size_t)N + 2;
        float *A = lm_xmalloc(sizeof(float) * lda * M);
        uint16_t *B = lm_xmalloc(sizeof *B * ldb * K);
        float *C = lm_xmalloc(sizeof(float) * ldc * (M + 1)), *R = lm_xmalloc(sizeof(float) * ldc * M); /* C: room for 2 rows */
        for (size_t i = 0; i < lda * M; i++) A[i] = rnd();
        for (size_t i = 0; i < ldb * K; i++) B[i] = lm_f32_to_f16(rnd());
        for (int add = 0; add < 2; add++) {
            for (size_t i = 0; i < ldc * M; i++) C[i] = R[i] = rnd();
            lm_sgemm_f16(M, N, K, A, lda, B, ldb, C, ldc, add);
            lm_sgemm_f16_ref(M, N, K, A, lda, B, ldb, R, ldc, add);
            for (int m = 0; m < M; m++)
                for (size_t n = 0; n < ldc; n++) {
                    const size_t i = (size_t)m * ldc + n;
                    if (n >= (size_t)N) { /* the gap between rows of C is left alone */
                        if (C[i] != R[i]) test_fail(__FILE__, __LINE__, "sgemm %dx%dx%d wrote C[%d][%zu]", M, N, K, m, n);
                        continue;
                    }
                    double exact = 0, mag = 0;
                    for (int k = 0; k < K; k++) {
                        const double p = (double)A[(size_t)m * lda + k] * lm_f16_to_f32(B[(size_t)k * ldb + n]);
                        exact += p;
                        mag += fabs(p);
                    }
                    if (!(fabs((double)C[i] - R[i]) <= 1e-5 * (mag + 1)))
                        test_fail(__FILE__, __LINE__, "sgemm %dx%dx%d add=%d [%d][%zu]: %g vs ref %g", M, N, K, add, m, n,
                                  C[i], R[i]);
                    if (!add && !(fabs((double)R[i] - exact) <= 1e-5 * (mag + 1)))
                        test_fail(__FILE__, __LINE__, "sgemm_ref %dx%dx%d [%d][%zu]: %g vs %g", M, N, K, m, n, R[i], exact);
                }
        }
        /* an element's value is the same whatever M and N are: attention's
         * scores for a position must not depend on how many positions and
         * query rows a batch has */
        lm_sgemm_f16(M, N, K, A, lda, B, ldb, R, ldc, false);
        const int subs[] = {1, 8, 9, 16, 24, 40, N - 1};
        for (size_t j = 0; j < sizeof subs / sizeof subs[0]; j++) {
            if (subs[j] < 1 || subs[j] > N) continue;
            lm_sgemm_f16(M, subs[j], K, A, lda, B, ldb, C, ldc, false);
            for (int m = 0; m < M; m++)
                for (int n = 0; n < subs[j]; n++)
                    if (C[(size_t)m * ldc + n] != R[(size_t)m * ldc + n])
                        test_fail(__FILE__, __LINE__, "sgemm %dx%dx%d: C[%d][%d] changes with N = %d", M, N, K, m, n, subs[j]);
        }
        for (int m = 0; m < M; m++) { /* and alone: row m, and its columns from an odd offset */
            lm_sgemm_f16(1, N, K, A + (size_t)m * lda, lda, B, ldb, C, ldc, false);
            lm_sgemm_f16(1, N - 3 > 0 ? N - 3 : 0, K, A + (size_t)m * lda, lda, B + 3, ldb, C + ldc + 3, ldc, false);
            for (int n = 0; n < N; n++) {
                if (C[n] != R[(size_t)m * ldc + n])
                    test_fail(__FILE__, __LINE__, "sgemm %dx%dx%d: C[%d][%d] changes with M = 1", M, N, K, m, n);
                if (n >= 3 && C[ldc + n] != R[(size_t)m * ldc + n])
                    test_fail(__FILE__, __LINE__, "sgemm %dx%dx%d: C[%d][%d] changes from column 3 on", M, N, K, m, n);
            }
        }
        free(A);
        free(B);
        free(C);
        free(R);
    }
    return 0;
}

/* softmax and SwiGLU, whose SIMD versions have their own exp, against the
 * references (expf) over lengths with remainders, values from the far
 * tails (subnormal and overflowing exponentials) and non-finite ones. */
TEST(ops_softmax_swiglu) {
    const int lens[] = {1, 7, 8, 13, 64, 259, 4099};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        const int n = lens[li];
        float *a = lm_xmalloc(sizeof(float) * n), *b = lm_xmalloc(sizeof(float) * n), *up = lm_xmalloc(sizeof(float) * n);
        for (int scale = 1; scale <= 100; scale *= 10) {
            for (int i = 0; i < n; i++) {
                a[i] = b[i] = rnd() * (float)scale * (i % 11 == 3 ? 2.0f : 1.0f);
                up[i] = rnd();
            }
            lm_softmax(a, n, 0.125f * (float)scale);
            lm_softmax_ref(b, n, 0.125f * (float)scale);
            for (int i = 0; i < n; i++)
                if (!(fabsf(a[i] - b[i]) <= 2e-5f * b[i] + 1e-37f))
                    test_fail(__FILE__, __LINE__, "softmax n=%d scale %d [%d]: %g vs ref %g", n, scale, i, a[i], b[i]);
            for (int i = 0; i < n; i++) a[i] = b[i] = rnd() * (float)scale;
            if (n > 4) a[1] = b[1] = -100.0f, a[2] = b[2] = 95.0f, a[3] = b[3] = -INFINITY, a[4] = b[4] = INFINITY;
            lm_swiglu(a, up, n);
            lm_swiglu_ref(b, up, n);
            for (int i = 0; i < n; i++)
                if (a[i] != b[i] && !(fabsf(a[i] - b[i]) <= 1e-6f * fabsf(b[i]) + 1e-37f) && !(isnan(a[i]) && isnan(b[i])))
                    test_fail(__FILE__, __LINE__, "swiglu n=%d scale %d [%d]: %g vs ref %g", n, scale, i, a[i], b[i]);
        }
        free(a);
        free(b);
        free(up);
    }
    return 0;
}

/* RoPE: the SIMD path gives the scalar one's bits, both pairings, with
 * dimensions past n_rot and pairs left over after the SIMD steps. */
TEST(ops_rope) {
    const int shapes[][2] = {{64, 64}, {128, 64}, {80, 80}, {64, 22}, {6, 6}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int neox = 0; neox < 2; neox++) {
            const int hd = shapes[si][0], n_rot = shapes[si][1], heads = 3;
            float a[3 * 128], b[3 * 128], cs[64], sn[64];
            for (int i = 0; i < heads * hd; i++) a[i] = b[i] = rnd() * 4;
            for (int i = 0; i < n_rot / 2; i++) {
                cs[i] = cosf((float)i * 0.37f + 0.1f);
                sn[i] = sinf((float)i * 0.37f + 0.1f);
            }
            lm_rope(a, heads, hd, n_rot, cs, sn, neox);
            lm_rope_ref(b, heads, hd, n_rot, cs, sn, neox);
            if (memcmp(a, b, sizeof(float) * (size_t)(heads * hd)))
                test_fail(__FILE__, __LINE__, "rope head_dim %d n_rot %d neox %d differs from the reference", hd, n_rot, neox);
        }
    return 0;
}

/* RMSNorm: the SIMD path within float rounding of the scalar one (its
 * double sums run in another order), with and without a weight. */
TEST(ops_rmsnorm) {
    const int lens[] = {1, 15, 16, 17, 576, 1000};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        const int n = lens[li];
        float x[1000], w[1000], a[1000], b[1000];
        for (int i = 0; i < n; i++) {
            x[i] = rnd() * 3;
            w[i] = rnd();
        }
        for (int weighted = 0; weighted < 2; weighted++) {
            lm_rmsnorm(a, x, weighted ? w : NULL, n, 1e-5f);
            lm_rmsnorm_ref(b, x, weighted ? w : NULL, n, 1e-5f);
            double ss = 0;
            for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
            const double scale = 1 / sqrt(ss / n + 1e-5);
            for (int i = 0; i < n; i++) {
                const double exact = x[i] * scale * (weighted ? w[i] : 1);
                if (!(fabsf(a[i] - b[i]) <= 2e-7f * fabsf(b[i])) || !(fabs(b[i] - exact) <= 1e-6 * fabs(exact)))
                    test_fail(__FILE__, __LINE__, "rmsnorm n=%d [%d]: %g, ref %g, exact %g", n, i, a[i], b[i], exact);
            }
        }
    }
    return 0;
}

/* GELU: the SIMD path gives the scalar one's bits, over every f16 input,
 * values between them, the cut-offs at +-10 and non-finite inputs; the
 * scalar one is the tanh formula in double within its two f16 roundings. */
TEST(ops_gelu) {
    enum { N = (1 << 16) + 1003 };
    float *x = lm_xmalloc(sizeof(float) * N), *y = lm_xmalloc(sizeof(float) * N);
    for (int i = 0; i < 1 << 16; i++) x[i] = lm_f16_to_f32((uint16_t)i);
    for (int i = 1 << 16; i < N; i++) x[i] = rnd() * 12;
    const float edges[] = {-10.0f, 10.0f, -10.001f, 9.999f, 1e30f, -1e30f, INFINITY, -INFINITY, NAN, 0.0f, -0.0f};
    memcpy(x + N - 11, edges, sizeof edges);
    memcpy(y, x, sizeof(float) * N);
    lm_gelu(y, N - 3); /* a remainder after the SIMD blocks */
    lm_gelu(y + N - 3, 3);
    lm_gelu_ref(x, N);
    int bad = 0;
    for (int i = 0; i < N && bad < 5; i++) /* NaNs may differ in their payload */
        if (memcmp(&x[i], &y[i], sizeof(float)) && !(isnan(x[i]) && isnan(y[i])))
            bad++, test_fail(__FILE__, __LINE__, "gelu at input %d: %g (SIMD) vs %g (scalar)", i, y[i], x[i]);
    for (int i = 0; i < N; i++) {
        double v = i < 1 << 16 ? lm_f16_to_f32((uint16_t)i) : i < N - 11 ? 0 : edges[i - (N - 11)];
        if (i >= 1 << 16 && i < N - 11) continue; /* random inputs: checked against SIMD only */
        if (isnan(v)) {
            if (!isnan(x[i])) test_fail(__FILE__, __LINE__, "gelu(NaN) = %g", x[i]);
            continue;
        }
        double want = v <= -10 ? 0 : v >= 10 ? v : 0.5 * v * (1 + tanh(sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
        /* f16 steps are 1e-3 relative; near 0 the float formula cancels (1 + tanh) */
        if (x[i] != want && !(fabs(x[i] - want) <= 1e-3 * fabs(want) + 2e-7) && bad < 5)
            bad++, test_fail(__FILE__, __LINE__, "gelu(%g) = %g, want %g", v, x[i], want);
    }
    free(x);
    free(y);
    return 0;
}
