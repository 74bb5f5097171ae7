/* ops.h: the activation-side kernels of the forward pass: matrix products
 * over any weight format (through the traits table), RMSNorm and LayerNorm,
 * rotary embedding, softmax, SwiGLU, GELU and GeGLU, and the attention's
 * products against the f16 KV cache (a GEMM with f16 B). Scalar code is the
 * reference; AVX2/FMA/F16C paths (and AVX-512 for the GEMM tile) are chosen
 * at compile time and tested against it. */
#ifndef LM_OPS_H
#define LM_OPS_H

#include "lm/pool.h"
#include "lm/quants.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes of scratch lm_matmul needs for n_tok rows of activations against W
 * (lm_matmul_multi: the sum over its weights). */
size_t lm_matmul_scratch_size(const struct lm_tensor *w, int n_tok);

/* y[t][r] = sum_c W[r][c] * x[t][c] for t < n_tok, r < W->ne[1], with
 * c < W->ne[0]. x is quantized once to W's activation format in scratch;
 * the work is split in tiles of rows and tokens over the pool. */
void lm_matmul(struct lm_pool *pool, float *y, const struct lm_tensor *w, const float *x, int n_tok, void *scratch);

/* Work on row t of the activations, fn(ctx, t), that must be done before
 * a product reads the row (a norm, a residual, a gated activation), and
 * touches nothing of any other row. */
struct lm_row_op {
    void (*fn)(const void *ctx, int t);
    const void *ctx;
};

/* Several products of the same x in one pool job (Q, K and V; gate and
 * up): y[i] = W[i] x, all W[i] with the same ne[0]; x is quantized once
 * per distinct activation format. pre (or NULL) is run on every row of x
 * first: where x has one activation format, in the task that quantizes
 * the row, so that a few rows' step waits on one pool job less. */
#define LM_MATMUL_MAX 3
void lm_matmul_multi(struct lm_pool *pool, int n_w, float *const y[], const struct lm_tensor *const w[], const float *x,
                     int n_tok, void *scratch, const struct lm_row_op *pre);

/* The format W's products take their activations in (NULL: f32, x as it is). */
const struct lm_type_traits *lm_matmul_act(const struct lm_tensor *w);

/* lm_matmul of activations the caller made in W's format (lm_matmul_act;
 * f32 where that is NULL): xa holds n_tok rows of W->ne[0] values. */
void lm_matmul_quantized(struct lm_pool *pool, float *y, const struct lm_tensor *w, const void *xa, int n_tok);

/* y = x / sqrt(mean(x^2) + eps) * weight, over n elements (y may be x;
 * weight NULL: no weight, as 1). */
void lm_rmsnorm(float *y, const float *x, const float *weight, int n, float eps);
void lm_rmsnorm_ref(float *y, const float *x, const float *weight, int n, float eps);

/* y = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias (bias may be NULL; y may be x). */
void lm_layernorm(float *y, const float *x, const float *weight, const float *bias, int n, float eps);

/* In place, over n elements: softmax(scale * x). */
void lm_softmax(float *x, int n, float scale);
void lm_softmax_ref(float *x, int n, float scale);

/* gate[i] = silu(gate[i]) * up[i]. */
void lm_swiglu(float *gate, const float *up, int n);
void lm_swiglu_ref(float *gate, const float *up, int n);
/* gate[i] = gelu(gate[i]) * up[i], GELU in its tanh approximation. */
/* x[i] = gelu(x[i]): GELU's tanh approximation as llama.cpp computes it on
 * the CPU (its value at x rounded to f16, rounded to f16). */
void lm_gelu(float *x, int n);
void lm_gelu_ref(float *x, int n);
/* gate[i] = gelu(gate[i]) * up[i], the same GELU. */
void lm_geglu(float *gate, const float *up, int n);

/* Rotates each of n_heads heads of x (head_dim apart) by the angles whose
 * cos/sin are given for i < n_rot/2: pairs (2i, 2i+1) when !neox, (i, i +
 * n_rot/2) when neox. Dimensions past n_rot are left alone. */
void lm_rope(float *x, int n_heads, int head_dim, int n_rot, const float *cos_t, const float *sin_t, bool neox);
void lm_rope_ref(float *x, int n_heads, int head_dim, int n_rot, const float *cos_t, const float *sin_t, bool neox);

/* C[m][n] = (add ? C[m][n] : 0) + sum_k A[m][k] * B[k][n] for m < M, n < N,
 * k < K, B in f16 (widened exactly); rows lda, ldb, ldc elements apart.
 * The attention's products against the f16 cache (queries x keys, scores x
 * values). Each element is one chain of FMAs over k in order, whatever M
 * and N: a position's score must not depend on the batch around it. */
void lm_sgemm_f16(int M, int N, int K, const float *A, size_t lda, const uint16_t *B, size_t ldb, float *C, size_t ldc,
                  bool add);
void lm_sgemm_f16_ref(int M, int N, int K, const float *A, size_t lda, const uint16_t *B, size_t ldb, float *C,
                      size_t ldc, bool add);

/* Reads a byte of every 64-byte line of `bytes` at p, so that they are
 * in cache before their use: these loads, independent of each other, keep
 * more misses in flight than the products' loads, which wait behind FMAs
 * (attention over a KV cache that the weights evicted since the last
 * token: a third faster). */
void lm_touch(const void *p, size_t bytes);

/* Rows into the f16 KV cache. */
void lm_f32_to_f16_row(const float *x, uint16_t *y, int n);

#endif
