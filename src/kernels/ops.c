/* ops.c: see ops.h. */
#include "lm/ops.h"

#include "lm/common.h"

#include <math.h>
#include <pthread.h>
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

/* Tokens per tile of a batch: a tile of weight rows stays in cache while
 * this many tokens pass over it. Float weights go through a GEMM that
 * widens and rearranges each panel of weights once per tile, which pays
 * off over more tokens: on one thread a whole 512-token batch (256 was 3%
 * slower on a Zen 4). With more threads, 256: a task's chunk of activations
 * and its sums (256 KB each) then fit a core's L2 beside the panel, where
 * at 512 they spilled; on a Zen 4 two threads ran 1.2B prompts 1-6% (F16,
 * two series of alternating runs) and 8% (BF16) faster so. */
#define TOK_TILE 64
#define TOK_TILE_FLOAT 512
#define TOK_TILE_FLOAT_SHARED 256

#define GUIDED_MAX_TASKS (64 + LM_MATMUL_MAX)

struct matmul_job {
    int n_w, n_tok, tok_tile, tok_tiles;
    int row_tile;                 /* a batch: rows per task, of tok_tile tokens */
    int32_t *guided;              /* or a few tokens: each task's first row */
    int task0[LM_MATMUL_MAX + 1]; /* first task of each weight */
    float *y[LM_MATMUL_MAX];
    const struct lm_tensor *w[LM_MATMUL_MAX];
    const struct lm_type_traits *t[LM_MATMUL_MAX];
    const uint8_t *xa[LM_MATMUL_MAX]; /* activations in each weight's vec_dot_type */
    size_t xa_row[LM_MATMUL_MAX], w_row[LM_MATMUL_MAX];
    /* quantization: one entry per distinct activation format, q_tile rows a task */
    int n_q, q_tile;
    const struct lm_type_traits *qt[LM_MATMUL_MAX];
    uint8_t *qdst[LM_MATMUL_MAX];
    size_t qrow[LM_MATMUL_MAX];
    const float *x;
    int64_t cols;
    const struct lm_row_op *pre; /* run on each row before its quantization */
};

/* y[t][r] for the rows and tokens of one task's tile. */
static void matmul_tile(void *arg, int task, int ith) {
    struct matmul_job *j = arg;
    int i = 0;
    while (task >= j->task0[i + 1]) i++;
    task -= j->task0[i];
    int64_t rows = j->w[i]->ne[1], r0, r1;
    int c0 = 0, c1 = j->n_tok;
    if (j->guided) { /* a few tokens: the task's rows, every token */
        const int32_t *first = j->guided + j->task0[i];
        r0 = first[task];
        r1 = task + 1 < j->task0[i + 1] - j->task0[i] ? first[task + 1] : rows;
    } else {
        r0 = (int64_t)(task / j->tok_tiles) * j->row_tile;
        r1 = r0 + j->row_tile < rows ? r0 + j->row_tile : rows;
        c0 = task % j->tok_tiles * j->tok_tile;
        c1 = c0 + j->tok_tile < j->n_tok ? c0 + j->tok_tile : j->n_tok;
    }
    const uint8_t *w = (const uint8_t *)j->w[i]->data + j->w_row[i] * (size_t)r0;
    const uint8_t *x = j->xa[i] + j->xa_row[i] * (size_t)c0;
    float *y = j->y[i] + (size_t)rows * (size_t)c0 + (size_t)r0;
    lm_gemm(j->t[i], (int)j->cols, (int)(r1 - r0), c1 - c0, y, (size_t)rows, w, j->w_row[i], x, j->xa_row[i]);
}

/* Rows quantized a task: 8, or where fewer a share of the threads' (a step
 * of several sequences' generation: on one thread, that took 2-3% of it
 * while the other threads waited; a row a task, each claimed and counted
 * apart, left a 4-row step on 2 threads 1-2% slower than 2 rows a task). */
#define QUANT_TILE 8
static int quant_tile(int n_tok, int threads) { return n_tok < QUANT_TILE ? (n_tok + threads - 1) / threads : QUANT_TILE; }

/* The rows [*t0, *t1) of a quantization task; returns its format. */
static int quant_task(const struct matmul_job *j, int task, int *t0, int *t1) {
    int per = (j->n_tok + j->q_tile - 1) / j->q_tile;
    *t0 = task % per * j->q_tile;
    *t1 = *t0 + j->q_tile < j->n_tok ? *t0 + j->q_tile : j->n_tok;
    return task / per;
}

static void quantize_tile(void *arg, int task, int ith) {
    const struct matmul_job *j = arg;
    int t0, t1, q = quant_task(j, task, &t0, &t1);
    for (int t = t0; t < t1; t++) {
        if (j->pre) j->pre->fn(j->pre->ctx, t);
        j->qt[q]->act_from_f32(j->x + j->cols * t, j->qdst[q] + j->qrow[q] * (size_t)t, j->cols);
    }
}

/* pre alone, on the rows of a quantization task of one format */
static void pre_tile(void *arg, int task, int ith) {
    const struct matmul_job *j = arg;
    int t0, t1;
    quant_task(j, task, &t0, &t1);
    for (int t = t0; t < t1; t++) j->pre->fn(j->pre->ctx, t);
}

const struct lm_type_traits *lm_matmul_act(const struct lm_tensor *w) {
    const struct lm_type_traits *t = lm_type_get(w->type);
    LM_ASSERT(t && t->vec_dot);
    return t->vec_dot_type == LM_TYPE_F32 ? NULL : lm_type_get(t->vec_dot_type);
}

/* The products of lm_matmul_multi, of x as it is or, with xa, of
 * activations already in the weights' format. */
static void matmul_run(struct lm_pool *pool, int n_w, float *const y[], const struct lm_tensor *const w[], const float *x,
                       const void *xa, int n_tok, void *scratch, const struct lm_row_op *pre) {
    LM_ASSERT(n_w >= 1 && n_w <= LM_MATMUL_MAX && n_tok >= 1 && (!xa || (n_w == 1 && !pre)));
    struct matmul_job j = {.n_w = n_w, .n_tok = n_tok, .x = x, .cols = w[0]->ne[0]};
    uint8_t *free_scratch = scratch;
    int64_t total_rows = 0;
    bool float_w = true; /* all weights f32, f16 or bf16 */
    for (int i = 0; i < n_w; i++) {
        const struct lm_type_traits *t = lm_type_get(w[i]->type);
        LM_ASSERT(t && t->vec_dot && w[i]->ne[0] == j.cols);
        j.y[i] = y[i];
        j.w[i] = w[i];
        j.t[i] = t;
        j.w_row[i] = row_bytes(w[i]->type, j.cols);
        total_rows += w[i]->ne[1];
        float_w &= w[i]->type == LM_TYPE_F32 || w[i]->type == LM_TYPE_F16 || w[i]->type == LM_TYPE_BF16;
        j.xa_row[i] = t->vec_dot_type == LM_TYPE_F32 ? sizeof(float) * (size_t)j.cols : row_bytes(t->vec_dot_type, j.cols);
        if (xa || t->vec_dot_type == LM_TYPE_F32) {
            j.xa[i] = xa ? xa : (const uint8_t *)x;
            continue;
        }
        int q = 0; /* weights with the same activation format share its quantization */
        while (q < j.n_q && j.qt[q] != lm_type_get(t->vec_dot_type)) q++;
        if (q == j.n_q) {
            j.qt[q] = lm_type_get(t->vec_dot_type);
            LM_ASSERT(j.qt[q]->act_from_f32);
            j.qrow[q] = j.xa_row[i];
            j.qdst[q] = free_scratch;
            free_scratch += j.qrow[q] * (size_t)n_tok;
            j.n_q++;
        }
        j.xa[i] = j.qdst[q];
    }
    /* pre in the quantization's tasks where x has one format; else a job
     * of its own first */
    j.q_tile = quant_tile(n_tok, lm_pool_size(pool));
    int per = (n_tok + j.q_tile - 1) / j.q_tile;
    j.pre = pre;
    if (pre && j.n_q != 1) {
        lm_pool_run(pool, per, pre_tile, &j);
        j.pre = NULL;
    }
    if (j.n_q) lm_pool_run(pool, j.n_q * per, quantize_tile, &j);
    /* Up to 7 tokens (generation of a few sequences): guided row tiles,
     * each 1 / threads of the rows left, so that the first are long and
     * the last short. A task's start costs (a new stream for the
     * prefetchers, the activations packed again), so equal tiles had to be
     * few (8 per thread were 10-15% slower than 4 on the 135M model's 1 to
     * 4 rows at 2 threads), and then a thread waited out the other's last
     * one: 4 rows a step, 5-7% faster than 4 equal tiles per thread. One
     * thread: a task a weight. Multiples of 16 rows suit every GEMM
     * kernel's row blocking. */
    if (n_tok < 8) {
        const int64_t share = lm_pool_size(pool);
        /* at least 1/64 of the rows, so that the tasks are at most 64 + n_w */
        const int64_t min_size = total_rows / 64 > 16 ? (total_rows / 64 + 15) / 16 * 16 : 16;
        int32_t guided[GUIDED_MAX_TASKS];
        int nt = 0;
        int64_t left = total_rows;
        for (int i = 0; i < n_w; i++) {
            j.task0[i] = nt;
            for (int64_t r = 0; r < w[i]->ne[1];) {
                int64_t size = (left / share + 15) / 16 * 16;
                size = size < min_size ? min_size : size;
                size = size < w[i]->ne[1] - r ? size : w[i]->ne[1] - r;
                LM_ASSERT(nt < GUIDED_MAX_TASKS);
                guided[nt++] = (int32_t)r;
                r += size;
                left -= size;
            }
        }
        j.task0[n_w] = nt;
        j.guided = guided;
        lm_pool_run(pool, nt, matmul_tile, &j);
        return;
    }
    /* A batch of 8 or more: 256 rows that a run of a token tile reuses from
     * L2 (and over which a kernel's rearrangement of the activations pays
     * off). */
    j.row_tile = 256;
    int64_t row_tiles = 0;
    for (int i = 0; i < n_w; i++) row_tiles += (w[i]->ne[1] + j.row_tile - 1) / j.row_tile;
    /* float weights: the longer token tile, unless it leaves fewer than 4
     * tasks per thread (a short prompt on a small matrix) */
    j.tok_tile = !float_w ? TOK_TILE : lm_pool_size(pool) > 1 ? TOK_TILE_FLOAT_SHARED : TOK_TILE_FLOAT;
    while (j.tok_tile > TOK_TILE && row_tiles * ((n_tok + j.tok_tile - 1) / j.tok_tile) < 4 * lm_pool_size(pool)) j.tok_tile /= 2;
    j.tok_tiles = (n_tok + j.tok_tile - 1) / j.tok_tile;
    for (int i = 0; i < n_w; i++)
        j.task0[i + 1] = j.task0[i] + (int)((w[i]->ne[1] + j.row_tile - 1) / j.row_tile) * j.tok_tiles;
    lm_pool_run(pool, j.task0[n_w], matmul_tile, &j);
}

void lm_matmul_multi(struct lm_pool *pool, int n_w, float *const y[], const struct lm_tensor *const w[], const float *x,
                     int n_tok, void *scratch, const struct lm_row_op *pre) {
    matmul_run(pool, n_w, y, w, x, NULL, n_tok, scratch, pre);
}

void lm_matmul_quantized(struct lm_pool *pool, float *y, const struct lm_tensor *w, const void *xa, int n_tok) {
    matmul_run(pool, 1, &y, &w, NULL, xa, n_tok, NULL, NULL);
}

void lm_matmul(struct lm_pool *pool, float *y, const struct lm_tensor *w, const float *x, int n_tok, void *scratch) {
    lm_matmul_multi(pool, 1, &y, &w, x, n_tok, scratch, NULL);
}

/* y = x * scale (* weight) */
static void scale_row(float *y, const float *x, const float *weight, int n, float scale) {
    if (!weight)
        for (int i = 0; i < n; i++) y[i] = x[i] * scale;
    else
        for (int i = 0; i < n; i++) y[i] = x[i] * scale * weight[i];
}

static float rms_scale(double ss, int n, float eps) { return (float)(1.0 / sqrt(ss / n + eps)); }

void lm_rmsnorm_ref(float *y, const float *x, const float *weight, int n, float eps) {
    double s[4] = {0}; /* four chains: one was bound by the adds' latency */
    int i = 0;
    for (; i + 4 <= n; i += 4)
        for (int j = 0; j < 4; j++) s[j] += (double)x[i + j] * x[i + j];
    double ss = (s[0] + s[1]) + (s[2] + s[3]);
    for (; i < n; i++) ss += (double)x[i] * x[i];
    scale_row(y, x, weight, n, rms_scale(ss, n, eps));
}

void lm_layernorm(float *y, const float *x, const float *weight, const float *bias, int n, float eps) {
    double sum = 0;
    for (int i = 0; i < n; i++) sum += x[i];
    float mean = (float)(sum / n);
    double ss = 0;
    for (int i = 0; i < n; i++) {
        float d = x[i] - mean;
        ss += (double)d * d;
    }
    float scale = (float)(1.0 / sqrt(ss / n + eps));
    for (int i = 0; i < n; i++) y[i] = (x[i] - mean) * scale * weight[i] + (bias ? bias[i] : 0.0f);
}

void lm_softmax_ref(float *x, int n, float scale) {
    float max = -INFINITY;
    for (int i = 0; i < n; i++) {
        x[i] *= scale;
        max = x[i] > max ? x[i] : max;
    }
    double sum = 0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++) x[i] *= inv;
}

void lm_swiglu_ref(float *gate, const float *up, int n) {
    for (int i = 0; i < n; i++) gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

/* GELU as ggml computes it on the CPU, so that lm matches llama.cpp (and
 * fast): the tanh approximation, read from a table of its f16 values at
 * every f16 input; 0 below -10 and x above 10. The table is made once. */
static uint16_t gelu_table[(1 << 16) + 1]; /* one more: a 4-byte gather at the last entry */
static pthread_once_t gelu_once = PTHREAD_ONCE_INIT;

static void gelu_table_init(void) {
    const float c = 0.7978845608028654f; /* sqrt(2/pi) */
    for (int i = 0; i < 1 << 16; i++) {
        float x = lm_f16_to_f32((uint16_t)i);
        gelu_table[i] = lm_f32_to_f16(0.5f * x * (1.0f + tanhf(c * x * (1.0f + 0.044715f * x * x))));
    }
}

void lm_gelu_ref(float *x, int n) {
    pthread_once(&gelu_once, gelu_table_init);
    for (int i = 0; i < n; i++)
        if (x[i] <= -10.0f) x[i] = 0.0f;
        else if (x[i] < 10.0f) x[i] = lm_f16_to_f32(gelu_table[lm_f32_to_f16(x[i])]);
}

void lm_geglu(float *gate, const float *up, int n) {
    lm_gelu(gate, n);
    for (int i = 0; i < n; i++) gate[i] *= up[i];
}

/* Pairs [i0, half) of one head. Each product rounded apart (a statement
 * each, so that no compiler fuses them), as lm_rope's vectors take them. */
static void rope_head(float *v, int i0, int half, const float *cos_t, const float *sin_t, bool neox) {
    for (int i = i0; i < half; i++) {
        int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
        const float x0c = v[a] * cos_t[i], x1s = v[b] * sin_t[i], x0s = v[a] * sin_t[i], x1c = v[b] * cos_t[i];
        v[a] = x0c - x1s;
        v[b] = x0s + x1c;
    }
}

void lm_rope_ref(float *x, int n_heads, int head_dim, int n_rot, const float *cos_t, const float *sin_t, bool neox) {
    for (int h = 0; h < n_heads; h++) rope_head(x + (size_t)h * head_dim, 0, n_rot / 2, cos_t, sin_t, neox);
}

void lm_touch(const void *p, size_t bytes) {
    uint64_t sum = 0;
    for (size_t o = 0; o < bytes; o += 64) sum += ((const unsigned char *)p)[o];
    __asm__ volatile("" : : "r"(sum)); /* the loads are the point: keep them */
}

void lm_sgemm_f16_ref(int M, int N, int K, const float *A, size_t lda, const uint16_t *B, size_t ldb, float *C,
                      size_t ldc, bool add) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            float s = 0;
            for (int k = 0; k < K; k++) s += A[(size_t)m * lda + k] * lm_f16_to_f32(B[(size_t)k * ldb + n]);
            C[(size_t)m * ldc + n] = add ? C[(size_t)m * ldc + n] + s : s;
        }
}

#ifdef LM_OPS_AVX2
static float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* The vectors of lm_sgemm_f16 and sg_exp: 16 floats with AVX-512, else 8. */
#ifdef __AVX512F__
typedef __m512 sg_vec;
#define SG_W 16
#define sg_load _mm512_loadu_ps
#define sg_store _mm512_storeu_ps
#define sg_set1 _mm512_set1_ps
#define sg_zero _mm512_setzero_ps
#define sg_fmadd _mm512_fmadd_ps
#define sg_load_f16(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))
#define sg_add _mm512_add_ps
#define sg_mul _mm512_mul_ps
#define sg_min _mm512_min_ps
#define sg_fnmadd _mm512_fnmadd_ps
#define sg_round(v) _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define sg_pow2(k) _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(k), _mm512_set1_epi32(127)), 23))
#define sg_where(a, pred, b, yes, no) _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, pred), no, yes)
#else
typedef __m256 sg_vec;
#define SG_W 8
#define sg_load _mm256_loadu_ps
#define sg_store _mm256_storeu_ps
#define sg_set1 _mm256_set1_ps
#define sg_zero _mm256_setzero_ps
#define sg_fmadd _mm256_fmadd_ps
#define sg_load_f16(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
#define sg_add _mm256_add_ps
#define sg_mul _mm256_mul_ps
#define sg_min _mm256_min_ps
#define sg_fnmadd _mm256_fnmadd_ps
#define sg_round(v) _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define sg_pow2(k) _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23))
#define sg_where(a, pred, b, yes, no) _mm256_blendv_ps(no, yes, _mm256_cmp_ps(a, b, pred))
#endif

/* An R x SG_W*V tile of C: per k, V loads of B's row widened, R
 * broadcasts of A, R*V FMAs into registers (6 x 2 sums: 12 of the 16 AVX2
 * registers). The keys and values are widened where they are used: a
 * widened copy (keys transposed) cost more than the products. */
static inline __attribute__((always_inline)) void sgemm_tile(const int R, const int V, int K, const float *A, size_t lda,
                                                               const uint16_t *B, size_t ldb, float *C, size_t ldc,
                                                               bool add) {
    sg_vec acc[6][2];
#pragma GCC unroll 6
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int v = 0; v < V; v++) acc[r][v] = add ? sg_load(C + (size_t)r * ldc + SG_W * v) : sg_zero();
    for (int k = 0; k < K; k++) {
        sg_vec b[2];
#pragma GCC unroll 2
        for (int v = 0; v < V; v++) b[v] = sg_load_f16(B + (size_t)k * ldb + SG_W * v);
#pragma GCC unroll 6
        for (int r = 0; r < R; r++) {
            const sg_vec a = sg_set1(A[(size_t)r * lda + k]);
#pragma GCC unroll 2
            for (int v = 0; v < V; v++) acc[r][v] = sg_fmadd(a, b[v], acc[r][v]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int v = 0; v < V; v++) sg_store(C + (size_t)r * ldc + SG_W * v, acc[r][v]);
}

/* Columns [n, n + SG_W*V) of C, all rows. */
static inline __attribute__((always_inline)) void sgemm_cols(const int V, int M, int n, int K, const float *A, size_t lda,
                                                               const uint16_t *B, size_t ldb, float *C, size_t ldc,
                                                               bool add) {
    int m = 0;
    for (; m + 6 <= M; m += 6) sgemm_tile(6, V, K, A + lda * m, lda, B + n, ldb, C + ldc * m + n, ldc, add);
    const float *a = A + lda * m;
    const uint16_t *b = B + n;
    float *c = C + ldc * m + n;
    switch (M - m) { /* the rest in one tile: a row alone would wait on FMA latency */
    case 5: sgemm_tile(5, V, K, a, lda, b, ldb, c, ldc, add); break;
    case 4: sgemm_tile(4, V, K, a, lda, b, ldb, c, ldc, add); break;
    case 3: sgemm_tile(3, V, K, a, lda, b, ldb, c, ldc, add); break;
    case 2: sgemm_tile(2, V, K, a, lda, b, ldb, c, ldc, add); break;
    case 1: sgemm_tile(1, V, K, a, lda, b, ldb, c, ldc, add); break;
    }
}

void lm_sgemm_f16(int M, int N, int K, const float *A, size_t lda, const uint16_t *B, size_t ldb, float *C, size_t ldc,
                  bool add) {
    int n = 0;
    for (; n + 2 * SG_W <= N; n += 2 * SG_W) sgemm_cols(2, M, n, K, A, lda, B, ldb, C, ldc, add);
    if (n + SG_W <= N) {
        sgemm_cols(1, M, n, K, A, lda, B, ldb, C, ldc, add);
        n += SG_W;
    }
    /* The last columns (rare: attention multiplies whole blocks of keys,
     * and heads are mostly multiples of 16 wide): each element by the tiles' own
     * chain of FMAs, so that a column's value does not depend on where N
     * ends. */
    for (int m = 0; m < M; m++)
        for (int c = n; c < N; c++) {
            float s = add ? C[(size_t)m * ldc + c] : 0.0f;
            for (int k = 0; k < K; k++) s = fmaf(A[(size_t)m * lda + k], lm_f16_to_f32(B[(size_t)k * ldb + c]), s);
            C[(size_t)m * ldc + c] = s;
        }
}

/* e^x, a vector at a time: x = k ln 2 + r with |r| <= ln 2 / 2, e^r by
 * Cephes' expf polynomial (within 2 ulp of expf), then the exponent added
 * to 2^k's bits. Below -87.3 (where e^x would be subnormal) the result is
 * 0, above 88.7 it is +inf, as for expf; NaN stays NaN. The same
 * operations at either width, so the same bits. */
static inline sg_vec sg_exp(sg_vec x) {
    const sg_vec k = sg_round(sg_mul(x, sg_set1(1.44269504088896341f)));
    sg_vec r = sg_fnmadd(k, sg_set1(0.693359375f), x); /* ln 2 in two parts, the first exact in k */
    r = sg_fnmadd(k, sg_set1(-2.12194440e-4f), r);
    sg_vec p = sg_set1(1.9875691500e-4f);
    p = sg_fmadd(p, r, sg_set1(1.3981999507e-3f));
    p = sg_fmadd(p, r, sg_set1(8.3334519073e-3f));
    p = sg_fmadd(p, r, sg_set1(4.1665795894e-2f));
    p = sg_fmadd(p, r, sg_set1(1.6666665459e-1f));
    p = sg_fmadd(p, r, sg_set1(5.0000001201e-1f));
    p = sg_fmadd(sg_mul(p, r), r, sg_add(r, sg_set1(1.0f)));
    /* 2^k for k in [-126, 128): k = 128 (x near the top) as 2 * 2^127 */
    const sg_vec kc = sg_min(k, sg_set1(127.0f));
    p = sg_mul(p, sg_pow2(kc));
    p = sg_where(k, _CMP_GT_OQ, kc, sg_add(p, p), p);
    p = sg_where(x, _CMP_LT_OQ, sg_set1(-87.3365f), sg_zero(), p);
    p = sg_where(x, _CMP_GT_OQ, sg_set1(88.7228f), sg_set1(INFINITY), p);
    return sg_where(x, _CMP_UNORD_Q, x, x, p);
}

/* sg_exp of 8 values (with AVX-512, in the low half of a vector) */
static inline __m256 exp256(__m256 x) {
#ifdef __AVX512F__
    return _mm512_castps512_ps256(sg_exp(_mm512_zextps256_ps512(x)));
#else
    return sg_exp(x);
#endif
}

static float hmax256(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/* The sum keeps 8 lanes, each adding every 8th element in order, however
 * wide the exponentials are taken: the same bits with AVX2 and AVX-512. */
void lm_softmax(float *x, int n, float scale) {
    int i = 0;
    __m256 m = _mm256_set1_ps(-INFINITY);
    for (; i + 8 <= n; i += 8) { /* scaled in place: the same products as the exponentials' pass would take */
        const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i), _mm256_set1_ps(scale));
        _mm256_storeu_ps(x + i, v);
        m = _mm256_max_ps(m, v);
    }
    float max = hmax256(m);
    for (; i < n; i++) {
        x[i] *= scale;
        max = x[i] > max ? x[i] : max;
    }
    __m256 acc = _mm256_setzero_ps();
    i = 0;
#ifdef __AVX512F__
    const __m512 vmax16 = _mm512_set1_ps(max);
    for (; i + 16 <= n; i += 16) {
        const __m512 e = sg_exp(_mm512_sub_ps(_mm512_loadu_ps(x + i), vmax16));
        _mm512_storeu_ps(x + i, e);
        acc = _mm256_add_ps(_mm256_add_ps(acc, _mm512_castps512_ps256(e)), _mm512_extractf32x8_ps(e, 1));
    }
#endif
    const __m256 vmax = _mm256_set1_ps(max);
    for (; i + 8 <= n; i += 8) {
        const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), vmax));
        _mm256_storeu_ps(x + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    double sum = hsum256(acc);
    for (; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    const float inv = (float)(1.0 / sum);
    const __m256 vinv = _mm256_set1_ps(inv);
    for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), vinv));
    for (; i < n; i++) x[i] *= inv;
}

void lm_swiglu(float *gate, const float *up, int n) {
    int i = 0;
#ifdef __AVX512F__
    for (; i + 16 <= n; i += 16) {
        const __m512 g = _mm512_loadu_ps(gate + i);
        const __m512 e = sg_exp(_mm512_sub_ps(_mm512_setzero_ps(), g));
        _mm512_storeu_ps(gate + i, _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e)), _mm512_loadu_ps(up + i)));
    }
#endif
    for (; i + 8 <= n; i += 8) {
        const __m256 g = _mm256_loadu_ps(gate + i);
        const __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), g));
        _mm256_storeu_ps(gate + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), _mm256_loadu_ps(up + i)));
    }
    lm_swiglu_ref(gate + i, up + i, n - i);
}

/* Four chains of four doubles (lm_rmsnorm_ref: four of one). */
void lm_rmsnorm(float *y, const float *x, const float *weight, int n, float eps) {
    __m256d s[4] = {_mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd()};
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 4; j++) {
            const __m256d v = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4 * j));
            s[j] = _mm256_add_pd(s[j], _mm256_mul_pd(v, v));
        }
    const __m256d s4 = _mm256_add_pd(_mm256_add_pd(s[0], s[1]), _mm256_add_pd(s[2], s[3]));
    const __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(s4), _mm256_extractf128_pd(s4, 1));
    double ss = _mm_cvtsd_f64(_mm_add_sd(s2, _mm_unpackhi_pd(s2, s2)));
    for (; i < n; i++) ss += (double)x[i] * x[i];
    const float scale = rms_scale(ss, n, eps);
    const __m256 vs = _mm256_set1_ps(scale);
    for (i = 0; i + 8 <= n; i += 8) { /* y may be x: whole vectors read before written */
        const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i), vs);
        _mm256_storeu_ps(y + i, weight ? _mm256_mul_ps(v, _mm256_loadu_ps(weight + i)) : v);
    }
    scale_row(y + i, x + i, weight ? weight + i : NULL, n - i, scale);
}

/* Interleaved pairs (2i, 2i + 1), four a step: x0 * cos - x1 * sin in the
 * even lanes, x1 * cos + x0 * sin in the odd ones, each product rounded as
 * in rope_head (so the same bits); neox pairs (i, i + half) are two
 * contiguous runs, which the compiler vectorizes in rope_head. */
void lm_rope(float *x, int n_heads, int head_dim, int n_rot, const float *cos_t, const float *sin_t, bool neox) {
    const int half = n_rot / 2;
    const __m256i dup = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * head_dim;
        int i = 0;
        for (; !neox && i + 4 <= half; i += 4) {
            const __m256 c = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(cos_t + i)), dup);
            const __m256 sn = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(sin_t + i)), dup);
            const __m256 p = _mm256_loadu_ps(v + 2 * i), swapped = _mm256_permute_ps(p, _MM_SHUFFLE(2, 3, 0, 1));
            const __m256 pc = _mm256_mul_ps(p, c), qs = _mm256_mul_ps(swapped, sn);
            _mm256_storeu_ps(v + 2 * i, _mm256_blend_ps(_mm256_sub_ps(pc, qs), _mm256_add_ps(pc, qs), 0xaa));
        }
        rope_head(v, i, half, cos_t, sin_t, neox);
    }
}

void lm_f32_to_f16_row(const float *x, uint16_t *y, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) y[i] = lm_f32_to_f16(x[i]);
}

/* Eight at a time: the f16 inputs index the table through a gather of 4
 * bytes (the low 2 kept). */
void lm_gelu(float *x, int n) {
    pthread_once(&gelu_once, gelu_table_init);
    const __m256 lo = _mm256_set1_ps(-10.0f), hi = _mm256_set1_ps(10.0f);
    const __m256i low16 = _mm256_set1_epi32(0xffff);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256i idx = _mm256_cvtepu16_epi32(_mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
        __m256i g = _mm256_and_si256(_mm256_i32gather_epi32((const int *)gelu_table, idx, 2), low16);
        __m128i g16 = _mm_packus_epi32(_mm256_castsi256_si128(g), _mm256_extracti128_si256(g, 1));
        __m256 y = _mm256_cvtph_ps(g16);
        y = _mm256_blendv_ps(y, v, _mm256_cmp_ps(v, hi, _CMP_GE_OQ));
        y = _mm256_andnot_ps(_mm256_cmp_ps(v, lo, _CMP_LE_OQ), y);
        _mm256_storeu_ps(x + i, y);
    }
    lm_gelu_ref(x + i, n - i);
}
#else
void lm_softmax(float *x, int n, float scale) { lm_softmax_ref(x, n, scale); }
void lm_swiglu(float *gate, const float *up, int n) { lm_swiglu_ref(gate, up, n); }
void lm_sgemm_f16(int M, int N, int K, const float *A, size_t lda, const uint16_t *B, size_t ldb, float *C, size_t ldc,
                  bool add) {
    lm_sgemm_f16_ref(M, N, K, A, lda, B, ldb, C, ldc, add);
}
void lm_f32_to_f16_row(const float *x, uint16_t *y, int n) {
    for (int i = 0; i < n; i++) y[i] = lm_f32_to_f16(x[i]);
}
void lm_gelu(float *x, int n) { lm_gelu_ref(x, n); }
void lm_rmsnorm(float *y, const float *x, const float *weight, int n, float eps) { lm_rmsnorm_ref(y, x, weight, n, eps); }
void lm_rope(float *x, int n_heads, int head_dim, int n_rot, const float *cos_t, const float *sin_t, bool neox) {
    lm_rope_ref(x, n_heads, head_dim, n_rot, cos_t, sin_t, neox);
}
#endif
