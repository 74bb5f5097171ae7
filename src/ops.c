/* ops.c: see ops.h. */
#include "lm/ops.h"

#include "lm/common.h"

#include <math.h>
#include <string.h>

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#define LM_OPS_AVX2 1
#endif

static size_t row_bytes(enum lm_type type, int64_t n) {
    const struct lm_type_traits *t = lm_type_get(type);
    return (size_t)(n / t->blck) * t->size;
}

size_t lm_matmul_scratch_size(const struct lm_tensor *w, int n_tok) {
    const struct lm_type_traits *t = lm_type_get(w->type);
    LM_ASSERT(t && t->vec_dot);
    return t->vec_dot_type == LM_TYPE_F32 ? 0 : row_bytes(t->vec_dot_type, w->ne[0]) * (size_t)n_tok;
}

struct matmul_job {
    float *y;
    const struct lm_tensor *w;
    const float *x;
    const uint8_t *xq; /* activations in the weight's vec_dot_type */
    size_t xq_row, w_row;
    int n_tok;
    const struct lm_type_traits *t, *at;
};

#define ROW_TILE 16

static void matmul_rows(void *arg, int ith, int nth) {
    struct matmul_job *j = arg;
    int64_t rows = j->w->ne[1], cols = j->w->ne[0];
    /* Contiguous row ranges in tiles, so a tile of weights stays in cache
     * while every token of the batch passes over it. */
    int64_t n_tiles = (rows + ROW_TILE - 1) / ROW_TILE;
    int64_t t0 = n_tiles * ith / nth, t1 = n_tiles * (ith + 1) / nth;
    const uint8_t *wdata = j->w->data;
    for (int64_t tile = t0; tile < t1; tile++) {
        int64_t r0 = tile * ROW_TILE, r1 = r0 + ROW_TILE < rows ? r0 + ROW_TILE : rows;
        for (int t = 0; t < j->n_tok; t++) {
            const void *x = j->xq ? (const void *)(j->xq + j->xq_row * (size_t)t) : (const void *)(j->x + cols * t);
            float *y = j->y + rows * t;
            for (int64_t r = r0; r < r1; r++) j->t->vec_dot((int)cols, &y[r], wdata + j->w_row * (size_t)r, x);
        }
    }
}

static void quantize_rows(void *arg, int ith, int nth) {
    struct matmul_job *j = arg;
    int64_t cols = j->w->ne[0];
    for (int t = ith; t < j->n_tok; t += nth)
        j->at->from_f32(j->x + cols * t, (uint8_t *)j->xq + j->xq_row * (size_t)t, cols);
}

void lm_matmul(struct lm_pool *pool, float *y, const struct lm_tensor *w, const float *x, int n_tok, void *scratch) {
    const struct lm_type_traits *t = lm_type_get(w->type);
    LM_ASSERT(t && t->vec_dot);
    struct matmul_job j = {.y = y, .w = w, .x = x, .n_tok = n_tok, .t = t, .w_row = row_bytes(w->type, w->ne[0])};
    if (t->vec_dot_type != LM_TYPE_F32) {
        j.at = lm_type_get(t->vec_dot_type);
        j.xq = scratch;
        j.xq_row = row_bytes(t->vec_dot_type, w->ne[0]);
        if (n_tok == 1) quantize_rows(&j, 0, 1); /* not worth waking the pool */
        else lm_pool_run(pool, quantize_rows, &j);
    }
    lm_pool_run(pool, matmul_rows, &j);
}

void lm_rmsnorm(float *y, const float *x, const float *weight, int n, float eps) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float scale = (float)(1.0 / sqrt(ss / n + eps));
    for (int i = 0; i < n; i++) y[i] = x[i] * scale * weight[i];
}

void lm_softmax(float *x, int n) {
    float max = -INFINITY;
    for (int i = 0; i < n; i++) max = x[i] > max ? x[i] : max;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++) x[i] *= inv;
}

void lm_swiglu(float *gate, const float *up, int n) {
    for (int i = 0; i < n; i++) gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

void lm_rope(float *x, int n_heads, int head_dim, int n_rot, const float *cos_t, const float *sin_t, bool neox) {
    int half = n_rot / 2;
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * head_dim;
        for (int i = 0; i < half; i++) {
            int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
            float x0 = v[a], x1 = v[b];
            v[a] = x0 * cos_t[i] - x1 * sin_t[i];
            v[b] = x0 * sin_t[i] + x1 * cos_t[i];
        }
    }
}

float lm_dot_f16_f32_ref(int n, const uint16_t *a, const float *b) {
    float s = 0;
    for (int i = 0; i < n; i++) s += lm_f16_to_f32(a[i]) * b[i];
    return s;
}

void lm_axpy_f16_ref(int n, float alpha, const uint16_t *x, float *y) {
    for (int i = 0; i < n; i++) y[i] += alpha * lm_f16_to_f32(x[i]);
}

#ifdef LM_OPS_AVX2
static float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

float lm_dot_f16_f32(int n, const uint16_t *a, const float *b) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i))), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i + 8))), _mm256_loadu_ps(b + i + 8), acc1);
    }
    float s = hsum256(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++) s += lm_f16_to_f32(a[i]) * b[i];
    return s;
}

void lm_axpy_f16(int n, float alpha, const uint16_t *x, float *y) {
    __m256 va = _mm256_set1_ps(alpha);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 xv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i)));
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, xv, _mm256_loadu_ps(y + i)));
    }
    for (; i < n; i++) y[i] += alpha * lm_f16_to_f32(x[i]);
}

void lm_f32_to_f16_row(const float *x, uint16_t *y, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) y[i] = lm_f32_to_f16(x[i]);
}
#else
float lm_dot_f16_f32(int n, const uint16_t *a, const float *b) { return lm_dot_f16_f32_ref(n, a, b); }
void lm_axpy_f16(int n, float alpha, const uint16_t *x, float *y) { lm_axpy_f16_ref(n, alpha, x, y); }
void lm_f32_to_f16_row(const float *x, uint16_t *y, int n) {
    for (int i = 0; i < n; i++) y[i] = lm_f32_to_f16(x[i]);
}
#endif
