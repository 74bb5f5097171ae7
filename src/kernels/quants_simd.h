/* quants_simd.h: the private link between quants.c and the SIMD kernels.
 * Each SIMD file installs its kernels over the reference ones in the table
 * lm_type_get() serves; which file is used is decided at compile time. */
#ifndef LM_QUANTS_SIMD_H
#define LM_QUANTS_SIMD_H

#include "lm/quants.h"

#include <stdbool.h>
#include <string.h>

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define LM_QUANTS_AVX2 1
#else
#define LM_QUANTS_AVX2 0
#endif

/* AVX-512 kernels go over the AVX2 ones, for the formats they cover. */
#if LM_QUANTS_AVX2 && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define LM_QUANTS_AVX512 1
#define LM_QUANTS_SIMD_NAME "avx512"
#else
#define LM_QUANTS_AVX512 0
#if LM_QUANTS_AVX2
#define LM_QUANTS_SIMD_NAME "avx2"
#endif
#endif

#if defined(__aarch64__) && defined(__ARM_NEON)
#define LM_QUANTS_NEON 1
#if defined(__ARM_FEATURE_DOTPROD)
#define LM_QUANTS_SIMD_NAME "neon+dotprod"
#else
#define LM_QUANTS_SIMD_NAME "neon"
#endif
#else
#define LM_QUANTS_NEON 0
#endif

#ifndef LM_QUANTS_SIMD_NAME
#define LM_QUANTS_SIMD_NAME "scalar"
#endif

#if LM_QUANTS_AVX2
#include <immintrin.h>

/* The sum of v's lanes, in the order every AVX2 and AVX-512 kernel that
 * must match another's results uses. */
static inline float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#endif

/* GEMM of the 32-weight block formats: blocks summed apart, then added up
 * (activation scales are converted this many at once); a kernel that must
 * give another's results bit for bit sums in the same chunks. */
#define LM_GEMM_CHUNK 64

/* quants_avx2.c, quants_avx512.c, quants_neon.c: replace kernels of t with
 * SIMD versions; quants_openblas.c (make OPENBLAS=1): f32 batches with
 * OpenBLAS's sgemm, after those. */
void lm_quants_avx2_install(struct lm_type_traits *t);
void lm_quants_avx512_install(struct lm_type_traits *t);
void lm_quants_neon_install(struct lm_type_traits *t);
void lm_quants_openblas_install(struct lm_type_traits *t);

/* Scale unpacking shared by all kernels, four bytes at a time in 32-bit
 * words (little-endian, as GGUF files are). */

/* q4_K/q5_K pack 8 six-bit scales and 8 six-bit mins into 12 bytes:
 *   bytes 0-3   scales 0-3, with the top 2 bits of scales 4-7 in bits 6-7
 *   bytes 4-7   mins 0-3, with the top 2 bits of mins 4-7 in bits 6-7
 *   bytes 8-11  low nibble: low 4 bits of scales 4-7; high nibble: of mins 4-7 */
static inline void unpack_k4_scales(const uint8_t packed[12], uint8_t sc[8], uint8_t m[8]) {
    uint32_t u[3], w[4];
    memcpy(u, packed, 12);
    w[0] = u[0] & 0x3f3f3f3f;
    w[1] = (u[2] & 0x0f0f0f0f) | ((u[0] >> 6) & 0x03030303) << 4;
    w[2] = u[1] & 0x3f3f3f3f;
    w[3] = ((u[2] >> 4) & 0x0f0f0f0f) | ((u[1] >> 6) & 0x03030303) << 4;
    memcpy(sc, w, 8);
    memcpy(m, w + 2, 8);
}

/* q3_K packs 16 six-bit scales, stored plus 32, into 12 bytes: the low 4 bits
 * of scale j in byte j%8 (low nibble for j < 8, high for j >= 8), the top 2
 * bits at bits 2*(j/4) of byte 8 + j%4. */
static inline void unpack_q3_K_scales(const uint8_t packed[12], int8_t sc[16]) {
    uint32_t a[3], w[4];
    memcpy(a, packed, 12);
    w[0] = (a[0] & 0x0f0f0f0f) | (a[2] & 0x03030303) << 4;
    w[1] = (a[1] & 0x0f0f0f0f) | ((a[2] >> 2) & 0x03030303) << 4;
    w[2] = ((a[0] >> 4) & 0x0f0f0f0f) | ((a[2] >> 4) & 0x03030303) << 4;
    w[3] = ((a[1] >> 4) & 0x0f0f0f0f) | ((a[2] >> 6) & 0x03030303) << 4;
    uint8_t b[16];
    memcpy(b, w, 16);
    for (int j = 0; j < 16; j++) sc[j] = (int8_t)(b[j] - 32);
}

#endif
