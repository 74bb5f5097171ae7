/* quants.h: weight formats and the kernels over them.
 *
 * One traits table, indexed by the GGML type id stored in GGUF files: block
 * size, bytes per block, and for the formats we compute with, the kernels
 * (to-float, reference quantizer from float, dot product against the
 * activation format vec_dot_type). The GGUF loader uses the sizes of every
 * known type; the model refuses a tensor whose type has no vec_dot.
 *
 * Block layouts follow ggml's (ggml-common.h) byte for byte, since that is
 * what the files contain.
 */
#ifndef LM_QUANTS_H
#define LM_QUANTS_H

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

struct lm_type_traits {
    const char *name;  /* NULL: not a known type id */
    int blck;          /* weights per block */
    size_t size;       /* bytes per block */
    /* Kernels; NULL where we don't compute with the format. n is a multiple of blck. */
    void (*to_f32)(const void *x, float *y, int64_t n);
    void (*from_f32)(const float *x, void *y, int64_t n);          /* reference quantizer */
    void (*vec_dot)(int n, float *s, const void *x, const void *y);  /* x: this type, y: vec_dot_type */
    enum lm_type vec_dot_type;
};

/* Traits of a type id read from a file; NULL when the id is unknown. */
const struct lm_type_traits *lm_type_get(uint32_t type);

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
