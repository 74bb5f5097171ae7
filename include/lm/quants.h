/* quants.h: weight formats and the kernels over them.
 *
 * One traits table, indexed by the GGML type id stored in GGUF files: block
 * size, bytes per block, and for the formats we compute with, the kernels:
 * to_f32 (dequantize), from_f32 (reference quantizer), vec_dot (dot product
 * of a row of this type with a row of vec_dot_type, the format activations
 * are quantized to first), and optionally gemm (many rows against many
 * activation rows at once, for prompt batches; lm_gemm falls back to
 * vec_dot per pair). The GGUF loader uses the sizes of every known type;
 * the model refuses a tensor whose type has no vec_dot.
 *
 * Block layouts follow ggml's (ggml-common.h) byte for byte, since that is
 * what the files contain; the quantizers follow ggml's quantize_row_*_ref so
 * files we write match llama.cpp's. Pairings, as in ggml:
 *   q4_0, q5_0, q8_0 . q8_0     q4_1, q5_1 . q8_1 (carries s = d*sum(q))
 *   q2_K .. q6_K . q8_K         f32, f16 . f32 (ggml uses f16 for f16; f32
 *   activations skip one rounding and cost nothing here)   bf16 . bf16 (as
 *   ggml: products of two bf16 are exact in f32, and the bf16 dot-product
 *   instruction does twice the multiply-adds of an f32 FMA)
 *
 * Every kernel has a plain C version in quants.c (named *_ref where a SIMD
 * twin exists), kept as the reference and served by lm_type_get_ref().
 * lm_type_get() serves the same table with SIMD versions swapped in where the build has them (AVX2 + FMA +
 * F16C on x86-64, and AVX-512 over those for the float GEMMs; NEON on
 * AArch64; chosen at compile time). The SIMD
 * activation quantizers produce the same bytes as the reference ones; SIMD
 * dot products and GEMMs differ from the reference vec_dot only in float
 * summation order (the q4_0/q5_0 GEMMs also apply the -8/-16 offset as a
 * separate float term).
 *
 * Left out on purpose: the i-quants, ternary and fp4 formats (sizes only),
 * and importance-weighted quantization (quantize_*_impl with imatrix).
 */
#ifndef LM_QUANTS_H
#define LM_QUANTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* GGML type ids, as stored in GGUF tensor infos. Gaps are ids ggml retired. */
enum lm_type {
    LM_TYPE_F32 = 0,
    LM_TYPE_F16 = 1,
    LM_TYPE_Q4_0 = 2,
    LM_TYPE_Q4_1 = 3,
    LM_TYPE_Q5_0 = 6,
    LM_TYPE_Q5_1 = 7,
    LM_TYPE_Q8_0 = 8,
    LM_TYPE_Q8_1 = 9,
    LM_TYPE_Q2_K = 10,
    LM_TYPE_Q3_K = 11,
    LM_TYPE_Q4_K = 12,
    LM_TYPE_Q5_K = 13,
    LM_TYPE_Q6_K = 14,
    LM_TYPE_Q8_K = 15,
    LM_TYPE_IQ2_XXS = 16,
    LM_TYPE_IQ2_XS = 17,
    LM_TYPE_IQ3_XXS = 18,
    LM_TYPE_IQ1_S = 19,
    LM_TYPE_IQ4_NL = 20,
    LM_TYPE_IQ3_S = 21,
    LM_TYPE_IQ2_S = 22,
    LM_TYPE_IQ4_XS = 23,
    LM_TYPE_I8 = 24,
    LM_TYPE_I16 = 25,
    LM_TYPE_I32 = 26,
    LM_TYPE_I64 = 27,
    LM_TYPE_F64 = 28,
    LM_TYPE_IQ1_M = 29,
    LM_TYPE_BF16 = 30,
    LM_TYPE_TQ1_0 = 34,
    LM_TYPE_TQ2_0 = 35,
    LM_TYPE_MXFP4 = 39,
    LM_TYPE_COUNT = 40,
};

/* Weights per block of the k-quants. */
#define LM_QK_K 256

/* Block layouts; f16 fields are IEEE half bits. Weight j of a q4_0/q4_1
 * block is the low nibble of qs[j] for j < 16 and the high nibble of
 * qs[j-16] otherwise; q5_* add bit j of qh as the fifth bit. */
struct lm_block_q4_0 { uint16_t d; uint8_t qs[16]; };                     /* x = d*(q-8) */
struct lm_block_q4_1 { uint16_t d, m; uint8_t qs[16]; };                  /* x = d*q + m */
struct lm_block_q5_0 { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; };      /* x = d*(q-16) */
struct lm_block_q5_1 { uint16_t d, m; uint8_t qh[4]; uint8_t qs[16]; };   /* x = d*q + m */
struct lm_block_q8_0 { uint16_t d; int8_t qs[32]; };                      /* x = d*q */
struct lm_block_q8_1 { uint16_t d, s; int8_t qs[32]; };                   /* x = d*q, s = d*sum(q) */
/* k-quants: 256 weights in 16 or 8 sub-blocks, each with its own scale
 * (and min), quantized against the super-block's d (and dmin). */
struct lm_block_q2_K { uint8_t scales[16]; uint8_t qs[64]; uint16_t d, dmin; };
struct lm_block_q3_K { uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; uint16_t d; };
struct lm_block_q4_K { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; };
struct lm_block_q5_K { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; };
struct lm_block_q6_K { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; };
struct lm_block_q8_K { float d; int8_t qs[256]; int16_t bsums[16]; };     /* bsums: sums of 16 qs */

struct lm_type_traits {
    const char *name;  /* NULL: not a known type id */
    int blck;          /* weights per block */
    size_t size;       /* bytes per block */
    /* Kernels; NULL where we don't compute with the format. n is a multiple
     * of blck; block pointers need only the alignment of their struct. */
    void (*to_f32)(const void *x, float *y, int64_t n);
    void (*from_f32)(const float *x, void *y, int64_t n);          /* quantizer, ggml's _ref math */
    /* Where this is a vec_dot_type: the activations' quantizer, ggml-cpu's
     * math on x86 (for q8_0 and q8_1 not the _ref one; see quants.c). */
    void (*act_from_f32)(const float *x, void *y, int64_t n);
    void (*vec_dot)(int n, float *s, const void *x, const void *y);  /* x: this type, y: vec_dot_type */
    enum lm_type vec_dot_type;
    /* Optional: nr rows of x (bx bytes apart) against nc rows of y (by
     * bytes apart), s[c*ldc + r] = vec_dot(row r of x, row c of y). A SIMD
     * kernel decodes each weight block once for several activation rows and
     * keeps the sums in registers. NULL: lm_gemm loops over vec_dot. */
    void (*gemm)(int n, int nr, int nc, float *s, size_t ldc, const void *x, size_t bx, const void *y, size_t by);
    /* gemm gives each activation row the bits it gets in a call of its own,
     * whatever nc (true of the vec_dot loop without gemm). */
    bool gemm_rows_independent;
};

/* Traits of a type id read from a file; NULL when the id is unknown. */
const struct lm_type_traits *lm_type_get(uint32_t type);
/* The same table with only the plain C kernels (for tests and comparison). */
const struct lm_type_traits *lm_type_get_ref(uint32_t type);
/* The products of gemm above with t's kernels: t->gemm, or vec_dot per pair. */
void lm_gemm(const struct lm_type_traits *t, int n, int nr, int nc, float *s, size_t ldc, const void *x, size_t bx,
             const void *y, size_t by);
/* Whether lm_gemm with t gives each activation row the bits it gets alone. */
bool lm_gemm_rows_independent(const struct lm_type_traits *t);
/* Which SIMD kernels this build uses: "avx512" (the AVX2 ones with AVX-512
 * ones over some), "avx2", "neon", "neon+dotprod" or "scalar". */
const char *lm_quants_simd(void);

/* A typed view of a weight (a tensor in the mapped file, or a test buffer).
 * ne[0] is the row length (contiguous), ne[1] the number of rows, as in ggml. */
struct lm_tensor {
    enum lm_type type;
    int n_dims;
    int64_t ne[4];
    const void *data;
};

/* Half-precision conversions (IEEE binary16 and bfloat16). */
float lm_f16_to_f32(uint16_t h);
uint16_t lm_f32_to_f16(float f);
float lm_bf16_to_f32(uint16_t h);
uint16_t lm_f32_to_bf16(float f);

#endif
