/* quants_avx2.c: AVX2 + FMA + F16C kernels, installed over the reference
 * ones in quants.c when the compiler targets those extensions.
 *
 * The integer part of every dot product is exact: weights are unpacked to
 * bytes and multiplied with the int8 activations by vpmaddubsw (unsigned x
 * signed bytes, pairs summed to int16), then vpmaddwd sums to int32. For
 * signed weights the sign is moved onto the activation first (ggml's trick).
 * No pair sum can saturate int16: unsigned weights are at most 63, signed
 * ones at least -128, and activations stay in [-127, 127] (our quantizers,
 * like ggml's, never emit -128), so |pair| <= 2*128*127 < 32768.
 *
 * The quantizers give the same bytes as the reference: same scale
 * arithmetic, rounding done exactly (half away from zero for q8_0/q8_1, to
 * nearest even for q8_K, as ggml's reference code does; to nearest even for
 * the q8_0/q8_1 activations, as ggml-cpu's AVX code does).
 *
 * GEMM kernels (the traits' gemm) at the end: float formats, the 32-weight
 * block formats, q4_K and q6_K. For prompt batches the quantized ones put
 * eight activation rows in the lanes of a vector (see il_pack), the layout
 * of ggml's repacked "8x8" kernels, but rearranging the activations, which
 * we quantize anyway, instead of the mapped weights; for one activation row,
 * a few weight rows share each activation block. The float ones put eight
 * weight rows in the lanes instead, widened once per batch (see fp_pack).
 *
 * Reference: ggml-cpu/arch/x86/quants.c, ggml-cpu/repack.cpp; BLIS's
 * micro-kernel layout (Van Zee and van de Geijn, "BLIS: A Framework for
 * Rapidly Instantiating BLAS Functionality", 2015). */
#include "quants_simd.h"

#if LM_QUANTS_AVX2

#include <immintrin.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

static inline float f16(uint16_t h) { return _cvtsh_ss(h); }
static inline uint16_t to_f16(float f) { return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }

static inline int hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

/* 16 bytes of nibble pairs -> 32 bytes: low nibbles, then high nibbles (the
 * order of weights in q4_0/q4_1/q5_0/q5_1 blocks). */
static inline __m256i unpack_nibbles(const uint8_t *qs) {
    const __m128i b = _mm_loadu_si128((const __m128i *)qs);
    const __m256i both = _mm256_set_m128i(_mm_srli_epi16(b, 4), b);
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
}

/* 32 bits -> 32 bytes, 0xff where the bit is set. */
static inline __m256i unpack_bits(const uint8_t *qh) {
    uint32_t v;
    memcpy(&v, qh, 4);
    const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32((int)v),
        _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0));
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    return _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
}

/* Unsigned bytes u times signed bytes s, summed in groups of 4 to int32.
 * One VNNI instruction where the CPU has it; else two, whose int16 pair
 * sums cannot saturate here (every caller's u is at most 128 and |s| at
 * most 127, so 2 * 128 * 127 < 32768): the same sums either way. */
static inline __m256i dot_us8(__m256i u, __m256i s) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
#elif defined(__AVXVNNI__)
    return _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u, s);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
#endif
}

/* Signed times signed: move a's sign onto b, then as above. */
static inline __m256i dot_ss8(__m256i a, __m256i b) {
    return dot_us8(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a));
}

/* ---- f32 and f16 against f32, bf16 against bf16 ---- */

static void dot_f32(int n, float *s, const void *vx, const void *vy) {
    const float *x = vx, *y = vy;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), acc1);
        acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(y + i + 16), acc2);
        acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(y + i + 24), acc3);
    }
    for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), acc0);
    float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
    for (; i < n; i++) sum += x[i] * y[i];
    *s = sum;
}

static inline __m256 load_f16x8(const uint16_t *x) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)x)); }

static void dot_f16(int n, float *s, const void *vx, const void *vy) {
    const uint16_t *x = vx;
    const float *y = vy;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm256_fmadd_ps(load_f16x8(x + i), _mm256_loadu_ps(y + i), acc0);
        acc1 = _mm256_fmadd_ps(load_f16x8(x + i + 8), _mm256_loadu_ps(y + i + 8), acc1);
        acc2 = _mm256_fmadd_ps(load_f16x8(x + i + 16), _mm256_loadu_ps(y + i + 16), acc2);
        acc3 = _mm256_fmadd_ps(load_f16x8(x + i + 24), _mm256_loadu_ps(y + i + 24), acc3);
    }
    for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(load_f16x8(x + i), _mm256_loadu_ps(y + i), acc0);
    float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
    for (; i < n; i++) sum += f16(x[i]) * y[i];
    *s = sum;
}

static void to_f32_f16(const void *vx, float *y, int64_t n) {
    const uint16_t *x = vx;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, load_f16x8(x + i));
    for (; i < n; i++) y[i] = f16(x[i]);
}

static inline __m256 load_bf16x8(const uint16_t *x) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)x));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}

static void dot_bf16_bf16(int n, float *s, const void *vx, const void *vy) {
    const uint16_t *x = vx, *y = vy;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm256_fmadd_ps(load_bf16x8(x + i), load_bf16x8(y + i), acc0);
        acc1 = _mm256_fmadd_ps(load_bf16x8(x + i + 8), load_bf16x8(y + i + 8), acc1);
        acc2 = _mm256_fmadd_ps(load_bf16x8(x + i + 16), load_bf16x8(y + i + 16), acc2);
        acc3 = _mm256_fmadd_ps(load_bf16x8(x + i + 24), load_bf16x8(y + i + 24), acc3);
    }
    for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(load_bf16x8(x + i), load_bf16x8(y + i), acc0);
    float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
    for (; i < n; i++) sum += lm_bf16_to_f32(x[i]) * lm_bf16_to_f32(y[i]);
    *s = sum;
}

/* ---- 32-weight blocks ----
 * A per-block function gives the integer dot product as 8 float partial
 * sums; the drivers run two blocks per iteration into two accumulators, so
 * consecutive FMAs do not wait on each other (one accumulator, or one kept in
 * an array, made these kernels latency bound at half the speed). */

typedef __m256 (*block_dot_fn)(const void *x, const void *y);

static inline __m256 block_q4_0(const void *vx, const void *vy) {
    const struct lm_block_q4_0 *x = vx;
    const struct lm_block_q8_0 *y = vy;
    const __m256i qx = _mm256_sub_epi8(unpack_nibbles(x->qs), _mm256_set1_epi8(8));
    return _mm256_cvtepi32_ps(dot_ss8(qx, _mm256_loadu_si256((const __m256i *)y->qs)));
}

static inline __m256 block_q5_0(const void *vx, const void *vy) {
    const struct lm_block_q5_0 *x = vx;
    const struct lm_block_q8_0 *y = vy;
    /* q - 16 as a signed byte: the nibble, with 0xf0 on top when the fifth bit is 0 */
    const __m256i hi = _mm256_andnot_si256(unpack_bits(x->qh), _mm256_set1_epi8((char)0xf0));
    const __m256i qx = _mm256_or_si256(unpack_nibbles(x->qs), hi);
    return _mm256_cvtepi32_ps(dot_ss8(qx, _mm256_loadu_si256((const __m256i *)y->qs)));
}

static inline __m256 block_q8_0(const void *vx, const void *vy) {
    const struct lm_block_q8_0 *x = vx;
    const struct lm_block_q8_0 *y = vy;
    const __m256i qx = _mm256_loadu_si256((const __m256i *)x->qs);
    return _mm256_cvtepi32_ps(dot_ss8(qx, _mm256_loadu_si256((const __m256i *)y->qs)));
}

static inline __m256 block_q4_1(const void *vx, const void *vy) {
    const struct lm_block_q4_1 *x = vx;
    const struct lm_block_q8_1 *y = vy;
    return _mm256_cvtepi32_ps(dot_us8(unpack_nibbles(x->qs), _mm256_loadu_si256((const __m256i *)y->qs)));
}

static inline __m256 block_q5_1(const void *vx, const void *vy) {
    const struct lm_block_q5_1 *x = vx;
    const struct lm_block_q8_1 *y = vy;
    const __m256i hi = _mm256_and_si256(unpack_bits(x->qh), _mm256_set1_epi8(0x10));
    const __m256i qx = _mm256_or_si256(unpack_nibbles(x->qs), hi);
    return _mm256_cvtepi32_ps(dot_us8(qx, _mm256_loadu_si256((const __m256i *)y->qs)));
}

/* Blocks whose value is dx*dy*dot: q4_0, q5_0, q8_0 against q8_0. Both
 * blocks start with their f16 d; one conversion takes both. */
static inline __m256 d_scale(const uint8_t *x, const uint8_t *y) {
    uint16_t dx, dy;
    memcpy(&dx, x, 2);
    memcpy(&dy, y, 2);
    const __m128 f = _mm_cvtph_ps(_mm_cvtsi32_si128((int)((uint32_t)dx | (uint32_t)dy << 16))); /* dx dy */
    return _mm256_broadcastss_ps(_mm_mul_ss(f, _mm_movehdup_ps(f)));
}

static inline __attribute__((always_inline)) float dot_d_blocks(int nb, const uint8_t *x, size_t xsize, const uint8_t *y,
                                                                block_dot_fn block) {
    const size_t ysize = sizeof(struct lm_block_q8_0);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 1 < nb; i += 2, x += 2 * xsize, y += 2 * ysize) {
        acc0 = _mm256_fmadd_ps(d_scale(x, y), block(x, y), acc0);
        acc1 = _mm256_fmadd_ps(d_scale(x + xsize, y + ysize), block(x + xsize, y + ysize), acc1);
    }
    if (i < nb) acc0 = _mm256_fmadd_ps(d_scale(x, y), block(x, y), acc0);
    return hsum_ps(_mm256_add_ps(acc0, acc1));
}

/* q4_1, q5_1 against q8_1: dx*dy*dot + m*s, where both blocks start with
 * two f16 ({d, m} and {d, s}): one conversion gives all four, and lane 1 of
 * the product accumulates m*s apart from the main sums. */
static inline __m128 dm_scales(const uint8_t *x, const uint8_t *y) {
    uint32_t a, b;
    memcpy(&a, x, 4);
    memcpy(&b, y, 4);
    const __m128 f = _mm_cvtph_ps(_mm_setr_epi32((int)a, (int)b, 0, 0)); /* dx m dy s */
    return _mm_mul_ps(f, _mm_movehl_ps(f, f));                           /* dx*dy m*s */
}

static inline __attribute__((always_inline)) float dot_dm_blocks(int nb, const uint8_t *x, size_t xsize, const uint8_t *y,
                                                                 block_dot_fn block) {
    const size_t ysize = sizeof(struct lm_block_q8_1);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    __m128 accm0 = _mm_setzero_ps(), accm1 = _mm_setzero_ps();
    int i = 0;
    for (; i + 1 < nb; i += 2, x += 2 * xsize, y += 2 * ysize) {
        const __m128 s0 = dm_scales(x, y), s1 = dm_scales(x + xsize, y + ysize);
        acc0 = _mm256_fmadd_ps(_mm256_broadcastss_ps(s0), block(x, y), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_broadcastss_ps(s1), block(x + xsize, y + ysize), acc1);
        accm0 = _mm_add_ps(accm0, s0);
        accm1 = _mm_add_ps(accm1, s1);
    }
    if (i < nb) {
        const __m128 s0 = dm_scales(x, y);
        acc0 = _mm256_fmadd_ps(_mm256_broadcastss_ps(s0), block(x, y), acc0);
        accm0 = _mm_add_ps(accm0, s0);
    }
    const __m128 accm = _mm_add_ps(accm0, accm1);
    return hsum_ps(_mm256_add_ps(acc0, acc1)) + _mm_cvtss_f32(_mm_movehdup_ps(accm));
}

static void dot_q4_0_q8_0(int n, float *s, const void *x, const void *y) {
    *s = dot_d_blocks(n / 32, x, sizeof(struct lm_block_q4_0), y, block_q4_0);
}

static void dot_q5_0_q8_0(int n, float *s, const void *x, const void *y) {
    *s = dot_d_blocks(n / 32, x, sizeof(struct lm_block_q5_0), y, block_q5_0);
}

static void dot_q8_0_q8_0(int n, float *s, const void *x, const void *y) {
    *s = dot_d_blocks(n / 32, x, sizeof(struct lm_block_q8_0), y, block_q8_0);
}

static void dot_q4_1_q8_1(int n, float *s, const void *x, const void *y) {
    *s = dot_dm_blocks(n / 32, x, sizeof(struct lm_block_q4_1), y, block_q4_1);
}

static void dot_q5_1_q8_1(int n, float *s, const void *x, const void *y) {
    *s = dot_dm_blocks(n / 32, x, sizeof(struct lm_block_q5_1), y, block_q5_1);
}

/* ---- activation quantizers ---- */

/* Four vectors of 8 int32 (in [-128, 127]) -> 32 int8 in order. */
static inline __m256i pack_i32_to_i8(__m256i a, __m256i b, __m256i c, __m256i d) {
    const __m256i ab = _mm256_packs_epi32(a, b); /* a0-3 b0-3 | a4-7 b4-7 */
    const __m256i cd = _mm256_packs_epi32(c, d);
    const __m256i abcd = _mm256_packs_epi16(ab, cd); /* a0-3 b0-3 c0-3 d0-3 | a4-7 b4-7 c4-7 d4-7 */
    return _mm256_permutevar8x32_epi32(abcd, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* roundf(): half away from zero, exactly (v - trunc(v) is exact). */
static inline __m256 round_away(__m256 v) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 frac = _mm256_andnot_ps(sign, _mm256_sub_ps(v, t));
    const __m256 up = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    const __m256 one = _mm256_or_ps(_mm256_set1_ps(1.0f), _mm256_and_ps(v, sign));
    return _mm256_add_ps(t, _mm256_and_ps(up, one));
}

static inline float hmax_ps(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

static inline float amax_32(const float *x) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 a = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x)), _mm256_andnot_ps(sign, _mm256_loadu_ps(x + 8)));
    const __m256 b = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + 16)), _mm256_andnot_ps(sign, _mm256_loadu_ps(x + 24)));
    return hmax_ps(_mm256_max_ps(a, b));
}

/* v rounded to an integer: half away from zero (the _ref quantizers) or to
 * nearest even (the activations', as ggml-cpu's AVX code rounds). */
static inline __m256i round_epi32(__m256 v, bool even) {
    return even ? _mm256_cvtps_epi32(_mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC))
                : _mm256_cvttps_epi32(round_away(v));
}

/* 32 weights times id, rounded, stored as bytes; returns their sum. */
static inline int quant_32(const float *x, float id, int8_t *qs, bool even) {
    const __m256 vid = _mm256_set1_ps(id);
    const __m256i q0 = round_epi32(_mm256_mul_ps(_mm256_loadu_ps(x), vid), even);
    const __m256i q1 = round_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8), vid), even);
    const __m256i q2 = round_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 16), vid), even);
    const __m256i q3 = round_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 24), vid), even);
    _mm256_storeu_si256((__m256i *)qs, pack_i32_to_i8(q0, q1, q2, q3));
    return hsum_epi32(_mm256_add_epi32(_mm256_add_epi32(q0, q1), _mm256_add_epi32(q2, q3)));
}

/* q8_0 and q8_1 take blocks eight at a time and find all eight scales first:
 * each block's max -> d -> 1/d chain is long but independent of the others,
 * and block by block the CPU sat waiting on it (3x slower on Zen 1). The
 * activations' quantizers (act) take 1/d as 127/amax, as ggml-cpu does. */
static inline int q8_scales(const float *x, int64_t nb, float d[8], float id[8], bool act) {
    const int m = nb < 8 ? (int)nb : 8;
    float amax[8];
    for (int j = 0; j < m; j++) amax[j] = amax_32(x + 32 * j);
    for (int j = 0; j < m; j++) d[j] = amax[j] / 127;
    for (int j = 0; j < m; j++) id[j] = act ? (amax[j] ? 127.f / amax[j] : 0.0f) : (d[j] ? 1.0f / d[j] : 0.0f);
    return m;
}

static inline void quant_q8_0(const float *x, void *vy, int64_t n, bool act) {
    struct lm_block_q8_0 *y = vy;
    float d[8], id[8];
    for (int64_t i = 0; i < n / 32;) {
        const int m = q8_scales(x + 32 * i, n / 32 - i, d, id, act);
        for (int j = 0; j < m; j++, i++) {
            quant_32(x + 32 * i, id[j], y[i].qs, act);
            y[i].d = to_f16(d[j]);
        }
    }
}

static inline void quant_q8_1(const float *x, void *vy, int64_t n, bool act) {
    struct lm_block_q8_1 *y = vy;
    float d[8], id[8];
    for (int64_t i = 0; i < n / 32;) {
        const int m = q8_scales(x + 32 * i, n / 32 - i, d, id, act);
        for (int j = 0; j < m; j++, i++) {
            const int sum = quant_32(x + 32 * i, id[j], y[i].qs, act);
            y[i].d = to_f16(d[j]);
            y[i].s = to_f16((float)sum * d[j]);
        }
    }
}

static void from_f32_q8_0(const float *x, void *y, int64_t n) { quant_q8_0(x, y, n, false); }
static void from_f32_q8_1(const float *x, void *y, int64_t n) { quant_q8_1(x, y, n, false); }
static void act_from_f32_q8_0(const float *x, void *y, int64_t n) { quant_q8_0(x, y, n, true); }
static void act_from_f32_q8_1(const float *x, void *y, int64_t n) { quant_q8_1(x, y, n, true); }

static void from_f32_q8_K(const float *x, void *vy, int64_t n) {
    struct lm_block_q8_K *y = vy;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t i = 0; i < n / LM_QK_K; i++, x += LM_QK_K) {
        __m256 amax = _mm256_setzero_ps();
        for (int k = 0; k < 32; k++) amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + 8 * k)));
        const float m = hmax_ps(amax);
        if (m == 0) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        /* the reference keeps the sign of the first element of largest magnitude */
        const __m256 vm = _mm256_set1_ps(m);
        int first = 0;
        for (int k = 0; k < 32; k++) {
            const int hit = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + 8 * k)), vm, _CMP_EQ_OQ));
            if (hit) {
                first = 8 * k + __builtin_ctz((unsigned)hit);
                break;
            }
        }
        const float iscale = -127.f / x[first];
        const __m256 vs = _mm256_set1_ps(iscale);
        for (int g = 0; g < 8; g++) { /* 32 weights: bsums of two groups of 16 */
            const float *xg = x + 32 * g;
            const __m256i q0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xg), vs));
            const __m256i q1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xg + 8), vs));
            const __m256i q2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xg + 16), vs));
            const __m256i q3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xg + 24), vs));
            _mm256_storeu_si256((__m256i *)(y[i].qs + 32 * g), pack_i32_to_i8(q0, q1, q2, q3));
            y[i].bsums[2 * g] = (int16_t)hsum_epi32(_mm256_add_epi32(q0, q1));
            y[i].bsums[2 * g + 1] = (int16_t)hsum_epi32(_mm256_add_epi32(q2, q3));
        }
        y[i].d = 1 / iscale;
    }
}

/* ---- k-quants against q8_K ---- */

/* The scales of two consecutive 16-weight sub-blocks, widened to int16 on
 * the 8 low lanes (first sub-block) and the 8 high lanes (second): the low
 * lanes of a vpmaddubsw result come from bytes 0-15. sc8 holds 16 signed
 * byte scales; pick holds {2c x 8, 2c+1 x 8} and moves on by 2 per call. */
static inline __m256i next_scale_pair(__m128i sc8, __m128i *pick) {
    const __m256i r = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc8, *pick));
    *pick = _mm_add_epi8(*pick, _mm_set1_epi8(2));
    return r;
}

static inline __m128i first_scale_pair(void) { return _mm_set_epi64x(0x0101010101010101, 0); }

/* q2_K: levels 0..3 in bit pairs, 4-bit scales and mins per 16 weights. */
static void dot_q2_K_q8_K(int n, float *s, const void *vx, const void *vy) {
    const struct lm_block_q2_K *x = vx;
    const struct lm_block_q8_K *y = vy;
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m128i m4 = _mm_set1_epi8(0x0f);
    __m256 acc = _mm256_setzero_ps();
    float summs = 0;
    for (int i = 0; i < n / LM_QK_K; i++) {
        const __m128i sc8 = _mm_loadu_si128((const __m128i *)x[i].scales);
        /* mins: sum over sub-blocks of (scale >> 4) * bsum */
        const __m256i mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc8, 4), m4));
        const __m256i bsums = _mm256_loadu_si256((const __m256i *)y[i].bsums);
        summs += y[i].d * f16(x[i].dmin) * (float)hsum_epi32(_mm256_madd_epi16(mins, bsums));

        const __m128i scales = _mm_and_si128(sc8, m4);
        __m128i pick = first_scale_pair();
        const int8_t *q8 = y[i].qs;
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * h));
            for (int k = 0; k < 4; k++, q8 += 32) {
                const __m256i q = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * k), m3);
                const __m256i p = _mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *)q8));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(next_scale_pair(scales, &pick), p));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(y[i].d * f16(x[i].d)), _mm256_cvtepi32_ps(sumi), acc);
    }
    *s = hsum_ps(acc) - summs;
}

/* q3_K: level = lo + 4*hbit - 4; the -4 is taken out through bsums. */
static void dot_q3_K_q8_K(int n, float *s, const void *vx, const void *vy) {
    const struct lm_block_q3_K *x = vx;
    const struct lm_block_q8_K *y = vy;
    const __m256i m3 = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4);
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < n / LM_QK_K; i++) {
        int8_t sc[16];
        unpack_q3_K_scales(x[i].scales, sc);
        const __m128i scales = _mm_loadu_si128((const __m128i *)sc);
        const __m256i bsums = _mm256_loadu_si256((const __m256i *)y[i].bsums);
        __m256i sumi = _mm256_slli_epi32(_mm256_madd_epi16(_mm256_cvtepi8_epi16(scales), bsums), 2);
        sumi = _mm256_sub_epi32(_mm256_setzero_si256(), sumi);

        const __m256i hbits = _mm256_loadu_si256((const __m256i *)x[i].hmask);
        __m256i hmask = _mm256_set1_epi8(1);
        __m128i pick = first_scale_pair();
        const int8_t *q8 = y[i].qs;
        for (int h = 0; h < 2; h++) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * h));
            for (int k = 0; k < 4; k++, q8 += 32) {
                const __m256i hb = _mm256_cmpeq_epi8(_mm256_and_si256(hbits, hmask), hmask);
                hmask = _mm256_add_epi8(hmask, hmask);
                const __m256i q = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits, 2 * k), m3), _mm256_and_si256(hb, four));
                const __m256i p = _mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *)q8));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(next_scale_pair(scales, &pick), p));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(y[i].d * f16(x[i].d)), _mm256_cvtepi32_ps(sumi), acc);
    }
    *s = hsum_ps(acc);
}

/* sum over sub-blocks j of m[j] * (bsums[2j] + bsums[2j+1]) */
static inline int mins_dot(const uint8_t m[8], const int16_t *bsums) {
    uint64_t m8;
    memcpy(&m8, m, 8);
    const __m128i m16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)m8));
    const __m256i b = _mm256_loadu_si256((const __m256i *)bsums);
    const __m128i pairs = _mm_hadd_epi16(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
    __m128i p = _mm_madd_epi16(m16, pairs);
    p = _mm_add_epi32(p, _mm_unpackhi_epi64(p, p));
    p = _mm_add_epi32(p, _mm_shuffle_epi32(p, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(p);
}

static void dot_q4_K_q8_K(int n, float *s, const void *vx, const void *vy) {
    const struct lm_block_q4_K *x = vx;
    const struct lm_block_q8_K *y = vy;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    __m256 acc = _mm256_setzero_ps();
    float summs = 0;
    for (int i = 0; i < n / LM_QK_K; i++) {
        uint8_t sc[8], m[8];
        unpack_k4_scales(x[i].scales, sc, m);
        summs += y[i].d * f16(x[i].dmin) * (float)mins_dot(m, y[i].bsums);
        const int8_t *q8 = y[i].qs;
        __m256i sumi = _mm256_setzero_si256();
        for (int k = 0; k < 4; k++, q8 += 64) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * k));
            const __m256i lo = _mm256_and_si256(bits, m4);
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
            const __m256i plo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)q8));
            const __m256i phi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(q8 + 32)));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_set1_epi16(sc[2 * k]), plo));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_set1_epi16(sc[2 * k + 1]), phi));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(y[i].d * f16(x[i].d)), _mm256_cvtepi32_ps(sumi), acc);
    }
    *s = hsum_ps(acc) - summs;
}

static void dot_q5_K_q8_K(int n, float *s, const void *vx, const void *vy) {
    const struct lm_block_q5_K *x = vx;
    const struct lm_block_q8_K *y = vy;
    const __m256i m4 = _mm256_set1_epi8(0x0f), b4 = _mm256_set1_epi8(0x10);
    __m256 acc = _mm256_setzero_ps();
    float summs = 0;
    for (int i = 0; i < n / LM_QK_K; i++) {
        uint8_t sc[8], m[8];
        unpack_k4_scales(x[i].scales, sc, m);
        summs += y[i].d * f16(x[i].dmin) * (float)mins_dot(m, y[i].bsums);
        const __m256i hbits = _mm256_loadu_si256((const __m256i *)x[i].qh);
        __m256i hmask = _mm256_set1_epi8(1);
        const int8_t *q8 = y[i].qs;
        __m256i sumi = _mm256_setzero_si256();
        for (int k = 0; k < 4; k++, q8 += 64) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * k));
            const __m256i h0 = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hbits, hmask), hmask), b4);
            hmask = _mm256_add_epi8(hmask, hmask);
            const __m256i h1 = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hbits, hmask), hmask), b4);
            hmask = _mm256_add_epi8(hmask, hmask);
            const __m256i lo = _mm256_or_si256(_mm256_and_si256(bits, m4), h0);
            const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m4), h1);
            const __m256i plo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)q8));
            const __m256i phi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(q8 + 32)));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_set1_epi16(sc[2 * k]), plo));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_set1_epi16(sc[2 * k + 1]), phi));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(y[i].d * f16(x[i].d)), _mm256_cvtepi32_ps(sumi), acc);
    }
    *s = hsum_ps(acc) - summs;
}

/* q6_K: levels 0..63 times q8 unsigned, minus 32 * sum(scale * bsum). */
static void dot_q6_K_q8_K(int n, float *s, const void *vx, const void *vy) {
    const struct lm_block_q6_K *x = vx;
    const struct lm_block_q8_K *y = vy;
    const __m256i m4 = _mm256_set1_epi8(0x0f), m3 = _mm256_set1_epi8(3);
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < n / LM_QK_K; i++) {
        const __m128i scales = _mm_loadu_si128((const __m128i *)x[i].scales);
        const __m256i bsums = _mm256_loadu_si256((const __m256i *)y[i].bsums);
        const __m256i offset = _mm256_slli_epi32(_mm256_madd_epi16(_mm256_cvtepi8_epi16(scales), bsums), 5);
        __m256i sumi = _mm256_sub_epi32(_mm256_setzero_si256(), offset);
        __m128i pick = first_scale_pair();
        const int8_t *q8 = y[i].qs;
        for (int h = 0; h < 2; h++) {
            const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(x[i].ql + 64 * h));
            const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(x[i].ql + 64 * h + 32));
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(x[i].qh + 32 * h));
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4));
            q[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m3), 4));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m3), 4));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m3), 4));
            for (int k = 0; k < 4; k++, q8 += 32) {
                const __m256i p = _mm256_maddubs_epi16(q[k], _mm256_loadu_si256((const __m256i *)q8));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(next_scale_pair(scales, &pick), p));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(y[i].d * f16(x[i].d)), _mm256_cvtepi32_ps(sumi), acc);
    }
    *s = hsum_ps(acc);
}

/* ---- GEMM: several weight rows against several activation rows ----
 * A micro-kernel keeps an R x C tile of dot products in registers and walks
 * the blocks once: each weight block is decoded once for C activation rows,
 * each activation block loaded once for R weight rows (the per-pair
 * vec_dot redid both for every pair). Activation scales are converted to
 * float once per group of C rows, for a chunk of blocks at a time.
 *
 * Weights of the 32-blocks formats become unsigned bytes u with
 * w = dx*u + mx: q4_1/q5_1 carry m; for q4_0/q5_0, mx = -8dx or -16dx, and
 * the activation side supplies sy = dy*sum(qy) itself (q8_1 stores it as s).
 * Then a block pair is dx*dy*sum(u*qy) + mx*sy. q8_0 weights are signed and
 * take the sign trick per pair instead. */

enum gemm_kind { G_Q4_0, G_Q4_1, G_Q5_0, G_Q5_1, G_Q8_0 };

#define GEMM_MAX_C 4

static inline size_t gemm_xsize(enum gemm_kind k) {
    return k == G_Q4_0 ? sizeof(struct lm_block_q4_0) : k == G_Q4_1 ? sizeof(struct lm_block_q4_1)
         : k == G_Q5_0 ? sizeof(struct lm_block_q5_0) : k == G_Q5_1 ? sizeof(struct lm_block_q5_1)
                       : sizeof(struct lm_block_q8_0);
}

static inline bool gemm_y_q8_1(enum gemm_kind k) { return k == G_Q4_1 || k == G_Q5_1; }

/* Weight block -> bytes (unsigned, or signed for q8_0) and its d and m. */
static inline __attribute__((always_inline)) __m256i gemm_decode(enum gemm_kind k, const uint8_t *b, float *d, float *m) {
    switch (k) {
    case G_Q4_0: {
        const struct lm_block_q4_0 *x = (const void *)b;
        *d = f16(x->d);
        *m = -8.0f * *d;
        return unpack_nibbles(x->qs);
    }
    case G_Q4_1: {
        const struct lm_block_q4_1 *x = (const void *)b;
        *d = f16(x->d);
        *m = f16(x->m);
        return unpack_nibbles(x->qs);
    }
    case G_Q5_0: {
        const struct lm_block_q5_0 *x = (const void *)b;
        *d = f16(x->d);
        *m = -16.0f * *d;
        return _mm256_or_si256(unpack_nibbles(x->qs), _mm256_and_si256(unpack_bits(x->qh), _mm256_set1_epi8(0x10)));
    }
    case G_Q5_1: {
        const struct lm_block_q5_1 *x = (const void *)b;
        *d = f16(x->d);
        *m = f16(x->m);
        return _mm256_or_si256(unpack_nibbles(x->qs), _mm256_and_si256(unpack_bits(x->qh), _mm256_set1_epi8(0x10)));
    }
    default: {
        const struct lm_block_q8_0 *x = (const void *)b;
        *d = f16(x->d);
        *m = 0;
        return _mm256_loadu_si256((const __m256i *)x->qs);
    }
    }
}

/* A weight block's (dx, mx) in lanes 0 and 1, from one conversion. */
static inline __attribute__((always_inline)) __m128 gemv_dm(enum gemm_kind k, const uint8_t *b) {
    if (k == G_Q4_1 || k == G_Q5_1) {
        uint32_t dm;
        memcpy(&dm, b, 4);
        return _mm_cvtph_ps(_mm_cvtsi32_si128((int)dm));
    }
    uint16_t d;
    memcpy(&d, b, 2);
    const __m128 dd = _mm_cvtph_ps(_mm_set1_epi16((short)d));
    return k == G_Q4_0 ? _mm_mul_ps(dd, _mm_setr_ps(1, -8, 0, 0)) : k == G_Q5_0 ? _mm_mul_ps(dd, _mm_setr_ps(1, -16, 0, 0)) : dd;
}

/* dy[b][c] and sy[b][c] (c < GEMM_MAX_C) for nb blocks of nc activation rows. */
static void gemm_y_scales(enum gemm_kind k, int nb, int nc, const uint8_t *y, size_t by, float *dy, float *sy) {
    for (int c = 0; c < nc; c++, y += by)
        for (int b = 0; b < nb; b++) {
            if (gemm_y_q8_1(k)) {
                const struct lm_block_q8_1 *q = (const struct lm_block_q8_1 *)y + b;
                dy[b * GEMM_MAX_C + c] = f16(q->d);
                sy[b * GEMM_MAX_C + c] = f16(q->s);
            } else {
                const struct lm_block_q8_0 *q = (const struct lm_block_q8_0 *)y + b;
                dy[b * GEMM_MAX_C + c] = f16(q->d);
                if (k != G_Q8_0) {
                    const __m256i ones = _mm256_set1_epi8(1);
                    const int sum = hsum_epi32(dot_us8(ones, _mm256_loadu_si256((const __m256i *)q->qs)));
                    sy[b * GEMM_MAX_C + c] = dy[b * GEMM_MAX_C + c] * (float)sum;
                }
            }
        }
}

static inline __attribute__((always_inline)) void gemm_tile(enum gemm_kind k, const int R, const int C, int nb,
                                                              const uint8_t *x, size_t bx, const uint8_t *y, size_t by,
                                                              const float *dy, const float *sy, float *s, size_t ldc,
                                                              bool add) {
    const size_t xsize = gemm_xsize(k);
    const size_t ysize = gemm_y_q8_1(k) ? sizeof(struct lm_block_q8_1) : sizeof(struct lm_block_q8_0);
    const size_t yqs = gemm_y_q8_1(k) ? offsetof(struct lm_block_q8_1, qs) : offsetof(struct lm_block_q8_0, qs);
    __m256 acc[4][GEMM_MAX_C];
    __m128 accm[4];
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        accm[r] = _mm_setzero_ps();
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) acc[r][c] = _mm256_setzero_ps();
    }
    for (int b = 0; b < nb; b++) {
        __m256i u[4], w[4];
        __m256 dx[4];
        const __m128 s4 = _mm_loadu_ps(sy + b * GEMM_MAX_C);
        #pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const uint8_t *blk = x + bx * (size_t)r + xsize * (size_t)b;
            float d_unused, m_unused;
            w[r] = gemm_decode(k, blk, &d_unused, &m_unused);
            u[r] = k == G_Q8_0 ? _mm256_sign_epi8(w[r], w[r]) : w[r];
            const __m128 dm = gemv_dm(k, blk); /* dx mx, as the one-row kernel has them */
            dx[r] = _mm256_broadcastss_ps(dm);
            /* not fused: gemv_tile rounds the product, and a row's result
             * must not depend on how many rows share its batch */
            if (k != G_Q8_0) accm[r] = _mm_add_ps(accm[r], _mm_mul_ps(_mm_broadcastss_ps(_mm_movehdup_ps(dm)), s4));
        }
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            const __m256i qy = _mm256_loadu_si256((const __m256i *)(y + by * (size_t)c + ysize * (size_t)b + yqs));
            const __m256 d = _mm256_broadcast_ss(dy + b * GEMM_MAX_C + c);
            #pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                const __m256i p = dot_us8(u[r], k == G_Q8_0 ? _mm256_sign_epi8(qy, w[r]) : qy);
                acc[r][c] = _mm256_fmadd_ps(_mm256_mul_ps(dx[r], d), _mm256_cvtepi32_ps(p), acc[r][c]);
            }
        }
    }
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        float m[4];
        _mm_storeu_ps(m, accm[r]);
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            const float v = hsum_ps(acc[r][c]) + m[c];
            s[ldc * (size_t)c + (size_t)r] = add ? s[ldc * (size_t)c + (size_t)r] + v : v;
        }
    }
}

/* One activation row (generation): R weight rows share each activation
 * block. A block's d and m come out of one conversion as (dx, mx), and one
 * multiply by the activation's (dy, sy) gives both the scale of the integer
 * sum and the m*s term, which accumulates in lane 1 apart. Weights stream
 * from memory once here, and the hardware prefetcher alone leaves most of
 * a core's bandwidth unused: each block fetches the weights GEMV_PREFETCH
 * bytes ahead (the rows of a matrix are contiguous). One tile ahead (4
 * rows, 2.7 KB of a 640-wide q8_0 matrix) read Gemma 3's 262144 x 640
 * output at 17 GB/s on one core (Zen 5), 8 KB ahead at 26-29 GB/s; none
 * at 6.5. */
#define GEMV_PREFETCH 8192
static inline __attribute__((always_inline)) void gemv_tile(enum gemm_kind k, const int R, int nb, const uint8_t *x, size_t bx,
                                                              const uint8_t *y, const float *ds, float *s, bool add) {
    const size_t xsize = gemm_xsize(k);
    const size_t ysize = gemm_y_q8_1(k) ? sizeof(struct lm_block_q8_1) : sizeof(struct lm_block_q8_0);
    const size_t yqs = gemm_y_q8_1(k) ? offsetof(struct lm_block_q8_1, qs) : offsetof(struct lm_block_q8_0, qs);
    __m256 acc[4];
    __m128 accm[4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps(), accm[r] = _mm_setzero_ps();
    for (int b = 0; b < nb; b++) {
        const __m256i qy = _mm256_loadu_si256((const __m256i *)(y + ysize * (size_t)b + yqs));
        const __m128 dys = _mm_castpd_ps(_mm_load_sd((const double *)(ds + 2 * b))); /* dy sy */
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const uint8_t *blk = x + bx * (size_t)r + xsize * (size_t)b;
            _mm_prefetch((const char *)(blk + GEMV_PREFETCH), _MM_HINT_T0); /* never faults, even past the end */
            float dx_unused, mx_unused;
            const __m256i w = gemm_decode(k, blk, &dx_unused, &mx_unused);
            const __m256i p = k == G_Q8_0 ? dot_ss8(w, qy) : dot_us8(w, qy);
            const __m128 sc = _mm_mul_ps(gemv_dm(k, blk), dys); /* dx*dy mx*sy */
            acc[r] = _mm256_fmadd_ps(_mm256_broadcastss_ps(sc), _mm256_cvtepi32_ps(p), acc[r]);
            if (k != G_Q8_0) accm[r] = _mm_add_ps(accm[r], sc);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        const float v = hsum_ps(acc[r]) + (k != G_Q8_0 ? _mm_cvtss_f32(_mm_movehdup_ps(accm[r])) : 0.0f);
        s[r] = add ? s[r] + v : v;
    }
}

/* Eight activation rows at once, tokens in lanes: the activation blocks are
 * transposed in 4-byte steps, so step k of a block holds bytes 4k..4k+3 of
 * each of the 8 rows. A weight row's 4 bytes for step k, broadcast, then
 * meet all 8 rows in one vpmaddubsw, whose int16 sums add up across steps
 * (4-bit weights: 8 steps of |pair| <= 2*15*127, 5-bit: 4 steps of
 * 2*31*127, both < 32768) before one vpmaddwd; q8_0 takes the sign trick
 * and widens every step. One scale multiply per weight block then serves
 * 8 dot products, which end in their lanes without horizontal sums. */
#define IL_CHUNK 32 /* activation blocks transposed at once (8 KB) */

/* o[k] = element k of each of v[0..7]: an 8x8 transpose of 32-bit elements. */
static inline void transpose_8x8_epi32(const __m256i v[8], __m256i *o) {
    const __m256i t0 = _mm256_unpacklo_epi32(v[0], v[1]), t1 = _mm256_unpackhi_epi32(v[0], v[1]);
    const __m256i t2 = _mm256_unpacklo_epi32(v[2], v[3]), t3 = _mm256_unpackhi_epi32(v[2], v[3]);
    const __m256i t4 = _mm256_unpacklo_epi32(v[4], v[5]), t5 = _mm256_unpackhi_epi32(v[4], v[5]);
    const __m256i t6 = _mm256_unpacklo_epi32(v[6], v[7]), t7 = _mm256_unpackhi_epi32(v[6], v[7]);
    const __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);
    const __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);
    const __m256i u4 = _mm256_unpacklo_epi64(t4, t6), u5 = _mm256_unpackhi_epi64(t4, t6);
    const __m256i u6 = _mm256_unpacklo_epi64(t5, t7), u7 = _mm256_unpackhi_epi64(t5, t7);
    o[0] = _mm256_permute2x128_si256(u0, u4, 0x20);
    o[1] = _mm256_permute2x128_si256(u1, u5, 0x20);
    o[2] = _mm256_permute2x128_si256(u2, u6, 0x20);
    o[3] = _mm256_permute2x128_si256(u3, u7, 0x20);
    o[4] = _mm256_permute2x128_si256(u0, u4, 0x31);
    o[5] = _mm256_permute2x128_si256(u1, u5, 0x31);
    o[6] = _mm256_permute2x128_si256(u2, u6, 0x31);
    o[7] = _mm256_permute2x128_si256(u3, u7, 0x31);
}

/* Transposes blocks [0, nb) of 8 activation rows into q (8 steps per
 * block), with their d and s (or d*sum(qy)) in d8/s8 per block. */
static void il_pack(enum gemm_kind k, int nb, const uint8_t *y, size_t by, __m256i *q, float *d8, float *s8) {
    const size_t ysize = gemm_y_q8_1(k) ? sizeof(struct lm_block_q8_1) : sizeof(struct lm_block_q8_0);
    const size_t yqs = gemm_y_q8_1(k) ? offsetof(struct lm_block_q8_1, qs) : offsetof(struct lm_block_q8_0, qs);
    for (int b = 0; b < nb; b++) {
        __m256i v[8];
        for (int c = 0; c < 8; c++) {
            const uint8_t *blk = y + by * (size_t)c + ysize * (size_t)b;
            v[c] = _mm256_loadu_si256((const __m256i *)(blk + yqs));
            uint16_t h[2];
            memcpy(h, blk, sizeof h);
            d8[b * 8 + c] = f16(h[0]);
            if (gemm_y_q8_1(k)) s8[b * 8 + c] = f16(h[1]);
            else if (k != G_Q8_0) s8[b * 8 + c] = d8[b * 8 + c] * (float)hsum_epi32(dot_us8(_mm256_set1_epi8(1), v[c]));
        }
        transpose_8x8_epi32(v, q + 8 * b);
    }
}

static inline __attribute__((always_inline)) void il_tile(enum gemm_kind k, const int R, int nb, const uint8_t *x, size_t bx,
                                                            const __m256i *q, const float *d8, const float *s8, float *s,
                                                            size_t ldc, bool add) {
    const size_t xsize = gemm_xsize(k);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        const __m256 dy = _mm256_loadu_ps(d8 + 8 * b);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            float dx, mx;
            _Alignas(32) uint8_t w[32];
            const __m256i wv = gemm_decode(k, x + bx * (size_t)r + xsize * (size_t)b, &dx, &mx);
            _mm256_store_si256((__m256i *)w, wv);
            __m256i sum;
            if (k == G_Q8_0) {
                sum = _mm256_setzero_si256();
#pragma GCC unroll 8
                for (int j = 0; j < 8; j++) {
                    int32_t w4;
                    memcpy(&w4, w + 4 * j, 4);
                    const __m256i wb = _mm256_set1_epi32(w4);
                    sum = _mm256_add_epi32(sum, dot_us8(_mm256_sign_epi8(wb, wb), _mm256_sign_epi8(q[8 * b + j], wb)));
                }
            } else {
                const int per = k == G_Q4_0 || k == G_Q4_1 ? 8 : 4; /* steps whose int16 sums cannot overflow */
                sum = _mm256_setzero_si256();
#pragma GCC unroll 2
                for (int j0 = 0; j0 < 8; j0 += per) {
                    __m256i s16 = _mm256_setzero_si256();
#pragma GCC unroll 8
                    for (int j = j0; j < j0 + per; j++) {
                        int32_t w4;
                        memcpy(&w4, w + 4 * j, 4);
                        s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(_mm256_set1_epi32(w4), q[8 * b + j]));
                    }
                    sum = _mm256_add_epi32(sum, _mm256_madd_epi16(s16, ones));
                }
                acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(mx), _mm256_loadu_ps(s8 + 8 * b), acc[r]);
            }
            acc[r] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(dx), dy), _mm256_cvtepi32_ps(sum), acc[r]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        float v[8];
        _mm256_storeu_ps(v, acc[r]);
        for (int c = 0; c < 8; c++) s[ldc * (size_t)c + (size_t)r] = add ? s[ldc * (size_t)c + (size_t)r] + v[c] : v[c];
    }
}

/* Activation rows [0, 8*groups) of gemm_blocks, eight at a time. */
static inline __attribute__((always_inline)) void il_gemm(enum gemm_kind k, int n, int nr, int groups, float *s, size_t ldc,
                                                            const uint8_t *x, size_t bx, const uint8_t *y, size_t by) {
    const size_t xsize = gemm_xsize(k);
    const size_t ysize = gemm_y_q8_1(k) ? sizeof(struct lm_block_q8_1) : sizeof(struct lm_block_q8_0);
    __m256i q[IL_CHUNK * 8];
    _Alignas(32) float d8[IL_CHUNK * 8], s8[IL_CHUNK * 8];
    for (int g = 0; g < groups; g++)
        for (int b0 = 0; b0 < n / 32; b0 += IL_CHUNK) {
            const int nb = n / 32 - b0 < IL_CHUNK ? n / 32 - b0 : IL_CHUNK;
            il_pack(k, nb, y + by * (size_t)(8 * g) + ysize * (size_t)b0, by, q, d8, s8);
            float *sg = s + ldc * (size_t)(8 * g);
            const uint8_t *xb = x + xsize * (size_t)b0;
            int r = 0;
            for (; r + 4 <= nr; r += 4) il_tile(k, 4, nb, xb + bx * (size_t)r, bx, q, d8, s8, sg + r, ldc, b0 > 0);
            for (; r < nr; r++) il_tile(k, 1, nb, xb + bx * (size_t)r, bx, q, d8, s8, sg + r, ldc, b0 > 0);
        }
}

static inline __attribute__((always_inline)) void gemm_blocks(enum gemm_kind k, int n, int nr, int nc, float *s, size_t ldc,
                                                                const void *vx, size_t bx, const void *vy, size_t by) {
    const uint8_t *x = vx, *y = vy;
    const size_t xsize = gemm_xsize(k);
    const size_t ysize = gemm_y_q8_1(k) ? sizeof(struct lm_block_q8_1) : sizeof(struct lm_block_q8_0);
    float dy[LM_GEMM_CHUNK * GEMM_MAX_C] = {0}, sy[LM_GEMM_CHUNK * GEMM_MAX_C] = {0};
    const int groups = nc / 8;
    il_gemm(k, n, nr, groups, s, ldc, x, bx, y, by);
    for (int c0 = 8 * groups; c0 < nc; c0 += GEMM_MAX_C) {
        const int C = nc - c0 < GEMM_MAX_C ? nc - c0 : GEMM_MAX_C;
        for (int b0 = 0; b0 < n / 32; b0 += LM_GEMM_CHUNK) {
            const int nb = n / 32 - b0 < LM_GEMM_CHUNK ? n / 32 - b0 : LM_GEMM_CHUNK;
            const uint8_t *yb = y + by * (size_t)c0 + ysize * (size_t)b0;
            gemm_y_scales(k, nb, C, yb, by, dy, sy);
            const bool add = b0 > 0;
            int r = 0;
            if (C == 1) {
                float ds[2 * LM_GEMM_CHUNK];
                for (int b = 0; b < nb; b++) ds[2 * b] = dy[b * GEMM_MAX_C], ds[2 * b + 1] = sy[b * GEMM_MAX_C];
                for (; r + 4 <= nr; r += 4)
                    gemv_tile(k, 4, nb, x + bx * (size_t)r + xsize * (size_t)b0, bx, yb, ds, s + ldc * (size_t)c0 + r, add);
                for (; r < nr; r++)
                    gemv_tile(k, 1, nb, x + bx * (size_t)r + xsize * (size_t)b0, bx, yb, ds, s + ldc * (size_t)c0 + r, add);
                continue;
            }
            for (; r + 2 <= nr; r += 2) {
                const uint8_t *xr = x + bx * (size_t)r + xsize * (size_t)b0;
                float *sr = s + ldc * (size_t)c0 + r;
                if (C == 4) gemm_tile(k, 2, 4, nb, xr, bx, yb, by, dy, sy, sr, ldc, add);
                else if (C == 3) gemm_tile(k, 2, 3, nb, xr, bx, yb, by, dy, sy, sr, ldc, add);
                else gemm_tile(k, 2, 2, nb, xr, bx, yb, by, dy, sy, sr, ldc, add);
            }
            for (; r < nr; r++) {
                const uint8_t *xr = x + bx * (size_t)r + xsize * (size_t)b0;
                float *sr = s + ldc * (size_t)c0 + r;
                if (C == 4) gemm_tile(k, 1, 4, nb, xr, bx, yb, by, dy, sy, sr, ldc, add);
                else if (C == 3) gemm_tile(k, 1, 3, nb, xr, bx, yb, by, dy, sy, sr, ldc, add);
                else gemm_tile(k, 1, 2, nb, xr, bx, yb, by, dy, sy, sr, ldc, add);
            }
        }
    }
}

static void gemm_q4_0(int n, int nr, int nc, float *s, size_t ldc, const void *x, size_t bx, const void *y, size_t by) {
    gemm_blocks(G_Q4_0, n, nr, nc, s, ldc, x, bx, y, by);
}
static void gemm_q4_1(int n, int nr, int nc, float *s, size_t ldc, const void *x, size_t bx, const void *y, size_t by) {
    gemm_blocks(G_Q4_1, n, nr, nc, s, ldc, x, bx, y, by);
}
static void gemm_q5_0(int n, int nr, int nc, float *s, size_t ldc, const void *x, size_t bx, const void *y, size_t by) {
    gemm_blocks(G_Q5_0, n, nr, nc, s, ldc, x, bx, y, by);
}
static void gemm_q5_1(int n, int nr, int nc, float *s, size_t ldc, const void *x, size_t bx, const void *y, size_t by) {
    gemm_blocks(G_Q5_1, n, nr, nc, s, ldc, x, bx, y, by);
}
static void gemm_q8_0(int n, int nr, int nc, float *s, size_t ldc, const void *x, size_t bx, const void *y, size_t by) {
    gemm_blocks(G_Q8_0, n, nr, nc, s, ldc, x, bx, y, by);
}

/* ---- GEMM for float weights (f32, f16, bf16) against f32 activations ----
 * (bf16 weights: against bf16 activations, widened as they are loaded)
 * A few activation rows: dot products along the row, R weight rows x C
 * activation rows, each weight vector widened once for C activation rows
 * (fgemm_tile). A batch (FP_MIN_TOKS or more): BLIS's layout instead.
 * A panel of 16 weight rows, FP_KC weights long, is widened to f32 once and
 * transposed so that one vector holds 8 rows at the same position; the
 * micro-kernel (fp_tile) then keeps 16 rows x 6 activation rows of sums in
 * 12 registers, and per position loads 2 weight vectors and broadcasts 6
 * activations for 12 FMAs, with no conversion and no horizontal sum. The
 * dot form needs R + C loads and R conversions for R x C FMAs, and with 16
 * registers could not keep its activations in them (2 x 4 ran at 75% of
 * the FMA peak, this one at over 90%, on Zen 5). */

enum fgemm_kind { F_F32, F_F16, F_BF16 };

/* Loops over a tile's rows and columns must be unrolled completely, or the
 * sums live in memory. gcc must be told; clang does it unasked, but takes
 * "GCC unroll N" as a factor and left loops of fewer than N trips rolled. */
#ifdef __clang__
#define UNROLL_TILE
#else
#define UNROLL_TILE _Pragma("GCC unroll 8")
#endif

static inline __attribute__((always_inline)) __m256 fgemm_load(enum fgemm_kind k, const uint8_t *row, int i) {
    if (k == F_F32) return _mm256_loadu_ps((const float *)row + i);
    if (k == F_F16) return load_f16x8((const uint16_t *)row + i);
    return load_bf16x8((const uint16_t *)row + i);
}

static inline __attribute__((always_inline)) float fgemm_scalar(enum fgemm_kind k, const uint8_t *row, int i) {
    if (k == F_F32) return ((const float *)row)[i];
    if (k == F_F16) return f16(((const uint16_t *)row)[i]);
    return lm_bf16_to_f32(((const uint16_t *)row)[i]);
}

static inline __attribute__((always_inline)) void fgemm_tile(enum fgemm_kind k, const int R, const int C, int n,
                                                               const uint8_t *x, size_t bx, const uint8_t *y, size_t by,
                                                               float *s, size_t ldc) {
    __m256 acc[4][4];
UNROLL_TILE
    for (int r = 0; r < R; r++)
UNROLL_TILE
        for (int c = 0; c < C; c++) acc[r][c] = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 w[4];
UNROLL_TILE
        for (int r = 0; r < R; r++) {
            /* one activation row: the weights stream from memory once;
             * fetch the next tile's rows too (as gemv_tile does) */
            if (C == 1) _mm_prefetch((const char *)(x + bx * (size_t)(r + R)) + (k == F_F32 ? 4 : 2) * i, _MM_HINT_T0);
            w[r] = fgemm_load(k, x + bx * (size_t)r, i);
        }
UNROLL_TILE
        for (int c = 0; c < C; c++) {
            const __m256 a = fgemm_load(k == F_BF16 ? F_BF16 : F_F32, y + by * (size_t)c, i);
UNROLL_TILE
            for (int r = 0; r < R; r++) acc[r][c] = _mm256_fmadd_ps(w[r], a, acc[r][c]);
        }
    }
UNROLL_TILE
    for (int r = 0; r < R; r++)
UNROLL_TILE
        for (int c = 0; c < C; c++) {
            float v = hsum_ps(acc[r][c]);
            for (int j = i; j < n; j++)
                v += fgemm_scalar(k, x + bx * (size_t)r, j) * fgemm_scalar(k == F_BF16 ? F_BF16 : F_F32, y + by * (size_t)c, j);
            s[ldc * (size_t)c + (size_t)r] = v;
        }
}

static inline __attribute__((always_inline)) void fgemm(enum fgemm_kind k, int n, int nr, int nc, float *s, size_t ldc,
                                                          const void *vx, size_t bx, const void *vy, size_t by) {
    const uint8_t *x = vx, *y = vy;
    for (int c = 0; c < nc;) {
        const int C = nc - c >= 4 ? 4 : nc - c;
        const uint8_t *yc = y + by * (size_t)c;
        float *sc = s + ldc * (size_t)c;
        int r = 0;
        if (C == 4)
            for (; r + 2 <= nr; r += 2) fgemm_tile(k, 2, 4, n, x + bx * (size_t)r, bx, yc, by, sc + r, ldc);
        else if (C == 1)
            for (; r + 4 <= nr; r += 4) fgemm_tile(k, 4, 1, n, x + bx * (size_t)r, bx, yc, by, sc + r, ldc);
        for (; r < nr; r++) {
            if (C == 4) fgemm_tile(k, 1, 4, n, x + bx * (size_t)r, bx, yc, by, sc + r, ldc);
            else if (C == 3) fgemm_tile(k, 1, 3, n, x + bx * (size_t)r, bx, yc, by, sc + r, ldc);
            else if (C == 2) fgemm_tile(k, 1, 2, n, x + bx * (size_t)r, bx, yc, by, sc + r, ldc);
            else fgemm_tile(k, 1, 1, n, x + bx * (size_t)r, bx, yc, by, sc + r, ldc);
        }
        c += C;
    }
}

#define FP_KC 256      /* weights per panel row: two 8 KB halves, in L1 beside 6 activation rows */
#define FP_TOKS 6      /* activation rows per micro-tile */
#define FP_MIN_TOKS 8  /* fewer, and packing a panel costs more than it saves */
/* The token split in fgemm_packed gives tiles of 4..6 rows from 8 rows up. */
_Static_assert(FP_MIN_TOKS >= 8 && FP_TOKS == 6, "fp_tile is instantiated for 4..6 activation rows");

/* Weights [k0, k0 + kc) of rows [0, nr) (nr <= 16) into p as f32: two
 * halves of FP_KC x 8, p[8*FP_KC*h + 8*i + j] = weight k0 + i of row 8h + j.
 * Rows past nr repeat row nr - 1 (never stored). */
static inline __attribute__((always_inline)) void fp_pack(enum fgemm_kind k, int nr, int kc, int k0, const uint8_t *x,
                                                            size_t bx, float *p) {
    const uint8_t *row[16];
    for (int r = 0; r < 16; r++) row[r] = x + bx * (size_t)(r < nr ? r : nr - 1);
    int i = 0;
    for (; i + 8 <= kc; i += 8)
        for (int h = 0; h < 2; h++) {
            __m256i v[8];
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++) v[j] = _mm256_castps_si256(fgemm_load(k, row[8 * h + j], k0 + i));
            transpose_8x8_epi32(v, (__m256i *)(p + 8 * FP_KC * h + 8 * i));
        }
    for (; i < kc; i++)
        for (int r = 0; r < 16; r++) p[8 * FP_KC * (r / 8) + 8 * i + r % 8] = fgemm_scalar(k, row[r], k0 + i);
}

/* Activation i of row y (f32, or bf16 for bf16 weights) in every lane. A
 * bf16 one is the low half of the 32 bits loaded at i, shifted up; the
 * high half is the next activation, or bytes past the row if i is its last
 * (last: loaded alone instead). */
static inline __attribute__((always_inline)) __m256 fp_bcast(enum fgemm_kind k, const uint8_t *y, int i, bool last) {
    if (k != F_BF16) return _mm256_broadcast_ss((const float *)y + i);
    const uint16_t *yh = (const uint16_t *)y + i;
    if (last) return _mm256_castsi256_ps(_mm256_set1_epi32((int)((uint32_t)*yh << 16)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(_mm256_broadcast_ss((const float *)yh)), 16));
}

static inline __attribute__((always_inline)) void fp_step(enum fgemm_kind k, const int C, const float *p, int i,
                                                            const uint8_t *const yc[], bool last, __m256 acc[2][FP_TOKS]) {
    __m256 w0 = _mm256_load_ps(p + 8 * i), w1 = _mm256_load_ps(p + 8 * FP_KC + 8 * i);
    /* in registers: for 4 activation rows gcc would fold the loads into
     * the FMAs, loading each twice, and the load ports became the limit
     * (8 rows: 37 -> 48 GMAC/s) */
    __asm__("" : "+x"(w0), "+x"(w1));
UNROLL_TILE
    for (int c = 0; c < C; c++) {
        const __m256 a = fp_bcast(k, yc[c], i, last);
        acc[0][c] = _mm256_fmadd_ps(w0, a, acc[0][c]);
        acc[1][c] = _mm256_fmadd_ps(w1, a, acc[1][c]);
    }
}

/* s[c*ldc + r] (+)= sum over the panel of p[r][i] * y[c][i], for rows
 * [0, nr) and C activation rows; add: accumulate onto the previous panels. */
static inline __attribute__((always_inline)) void fp_tile(enum fgemm_kind k, const int C, int kc, const float *p,
                                                            const uint8_t *y, size_t by, int k0, float *s, size_t ldc,
                                                            int nr, bool add) {
    __m256 acc[2][FP_TOKS];
    const uint8_t *yc[FP_TOKS];
UNROLL_TILE
    for (int c = 0; c < C; c++) {
        acc[0][c] = acc[1][c] = _mm256_setzero_ps();
        yc[c] = y + by * (size_t)c + (k == F_BF16 ? 2 : 4) * (size_t)k0;
    }
    for (int i = 0; i < kc - 1; i++) fp_step(k, C, p, i, yc, false, acc);
    fp_step(k, C, p, kc - 1, yc, true, acc);
UNROLL_TILE
    for (int c = 0; c < C; c++)
UNROLL_TILE
        for (int h = 0; h < 2; h++) {
            float *o = s + ldc * (size_t)c + 8 * h;
            const int m = nr - 8 * h;
            if (m >= 8) {
                _mm256_storeu_ps(o, add ? _mm256_add_ps(_mm256_loadu_ps(o), acc[h][c]) : acc[h][c]);
            } else if (m > 0) { /* the last panel of a matrix whose rows are not a multiple of 16 */
                float v[8];
                _mm256_storeu_ps(v, acc[h][c]);
                for (int j = 0; j < m; j++) o[j] = add ? o[j] + v[j] : v[j];
            }
        }
}

static inline __attribute__((always_inline)) void fgemm_packed(enum fgemm_kind k, int n, int nr, int nc, float *s,
                                                                 size_t ldc, const uint8_t *x, size_t bx, const uint8_t *y,
                                                                 size_t by) {
    _Alignas(32) float p[2 * 8 * FP_KC];
    const int nt = (nc + FP_TOKS - 1) / FP_TOKS; /* micro-tiles per panel, of near-equal sizes */
    for (int r = 0; r < nr; r += 16) {
        const int R = nr - r < 16 ? nr - r : 16;
        for (int k0 = 0; k0 < n; k0 += FP_KC) {
            const int kc = n - k0 < FP_KC ? n - k0 : FP_KC;
            fp_pack(k, R, kc, k0, x + bx * (size_t)r, bx, p);
            for (int t = 0, c = 0; t < nt; t++) {
                const int C = (nc - c + (nt - t) - 1) / (nt - t);
                const uint8_t *yc = y + by * (size_t)c;
                float *sc = s + ldc * (size_t)c + r;
                if (C == 6) fp_tile(k, 6, kc, p, yc, by, k0, sc, ldc, R, k0 > 0);
                else if (C == 5) fp_tile(k, 5, kc, p, yc, by, k0, sc, ldc, R, k0 > 0);
                else fp_tile(k, 4, kc, p, yc, by, k0, sc, ldc, R, k0 > 0);
                c += C;
            }
        }
    }
}

static inline __attribute__((always_inline)) void fgemm_any(enum fgemm_kind k, int n, int nr, int nc, float *s, size_t ldc,
                                                              const void *x, size_t bx, const void *y, size_t by) {
    if (nc >= FP_MIN_TOKS) fgemm_packed(k, n, nr, nc, s, ldc, x, bx, y, by);
    else fgemm(k, n, nr, nc, s, ldc, x, bx, y, by);
}

static void gemm_f32(int n, int nr, int nc, float *s, size_t ldc, const void *x, size_t bx, const void *y, size_t by) {
    fgemm_any(F_F32, n, nr, nc, s, ldc, x, bx, y, by);
}
static void gemm_f16(int n, int nr, int nc, float *s, size_t ldc, const void *x, size_t bx, const void *y, size_t by) {
    fgemm_any(F_F16, n, nr, nc, s, ldc, x, bx, y, by);
}
static void gemm_bf16(int n, int nr, int nc, float *s, size_t ldc, const void *x, size_t bx, const void *y, size_t by) {
    fgemm_any(F_BF16, n, nr, nc, s, ldc, x, bx, y, by);
}

/* ---- GEMM for q4_K and q6_K, eight q8_K activation rows in lanes ----
 * As il_tile, per 32-weight sub-block: int16 sums over the steps that
 * cannot overflow (q4_K: 8 steps of |pair| <= 2*15*127; q6_K, levels 0..63:
 * 2 steps of 2*63*127), then vpmaddwd by the sub-block's integer scale
 * instead of by ones. The mins (q4_K) and the -32 offset (q6_K) come from
 * the activations' bsums, kept as int16 pairs per token. */
#define K_CHUNK 8 /* activation super-blocks transposed at once (16 KB) */

/* q: 64 steps per super-block; d8: the rows' d; bq: 8 vectors per
 * super-block, vector i holding (bsums[2i], bsums[2i+1]) of each row. */
static void k_pack(int nb, const uint8_t *y, size_t by, __m256i *q, float *d8, __m256i *bq) {
    for (int b = 0; b < nb; b++) {
        const struct lm_block_q8_K *blk[8];
        for (int c = 0; c < 8; c++) {
            blk[c] = (const struct lm_block_q8_K *)(y + by * (size_t)c) + b;
            d8[b * 8 + c] = blk[c]->d;
        }
        for (int i = 0; i < 8; i++) {
            int32_t v[8];
            for (int c = 0; c < 8; c++) memcpy(&v[c], &blk[c]->bsums[2 * i], 4);
            bq[b * 8 + i] = _mm256_loadu_si256((const __m256i *)v);
        }
        for (int sb = 0; sb < 8; sb++) {
            __m256i v[8];
            for (int c = 0; c < 8; c++) v[c] = _mm256_loadu_si256((const __m256i *)(blk[c]->qs + 32 * sb));
            transpose_8x8_epi32(v, q + 64 * b + 8 * sb);
        }
    }
}

static inline __attribute__((always_inline)) __m256i k_bcast(const uint8_t *w, int step) {
    int32_t w4;
    memcpy(&w4, w + 4 * step, 4);
    return _mm256_set1_epi32(w4);
}

static void k_tile_q4_K(int nb, const uint8_t *x, const __m256i *q, const float *d8, const __m256i *bq, float *s, size_t ldc,
                        bool add) {
    const struct lm_block_q4_K *xb = (const void *)x;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    __m256 acc = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        uint8_t sc[8], m[8];
        unpack_k4_scales(xb[b].scales, sc, m);
        _Alignas(32) uint8_t w[256];
        for (int k = 0; k < 4; k++) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)(xb[b].qs + 32 * k));
            _mm256_store_si256((__m256i *)(w + 64 * k), _mm256_and_si256(bits, m4));
            _mm256_store_si256((__m256i *)(w + 64 * k + 32), _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4));
        }
        const __m256i *qb = q + 64 * b;
        __m256i sum = _mm256_setzero_si256(), mins = _mm256_setzero_si256();
        for (int sb = 0; sb < 8; sb++) {
            __m256i s16 = _mm256_setzero_si256();
#pragma GCC unroll 8
            for (int st = 0; st < 8; st++) s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(k_bcast(w + 32 * sb, st), qb[8 * sb + st]));
            sum = _mm256_add_epi32(sum, _mm256_madd_epi16(s16, _mm256_set1_epi16(sc[sb])));
            mins = _mm256_add_epi32(mins, _mm256_madd_epi16(_mm256_set1_epi16(m[sb]), bq[8 * b + sb]));
        }
        const __m256 dy = _mm256_loadu_ps(d8 + 8 * b);
        acc = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(f16(xb[b].d)), dy), _mm256_cvtepi32_ps(sum), acc);
        acc = _mm256_fnmadd_ps(_mm256_mul_ps(_mm256_set1_ps(f16(xb[b].dmin)), dy), _mm256_cvtepi32_ps(mins), acc);
    }
    float v[8];
    _mm256_storeu_ps(v, acc);
    for (int c = 0; c < 8; c++) s[ldc * (size_t)c] = add ? s[ldc * (size_t)c] + v[c] : v[c];
}

static void k_tile_q6_K(int nb, const uint8_t *x, const __m256i *q, const float *d8, const __m256i *bq, float *s, size_t ldc,
                        bool add) {
    const struct lm_block_q6_K *xb = (const void *)x;
    const __m256i m4 = _mm256_set1_epi8(0x0f), m3 = _mm256_set1_epi8(3);
    __m256 acc = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        _Alignas(32) uint8_t w[256];
        for (int h = 0; h < 2; h++) {
            const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(xb[b].ql + 64 * h));
            const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(xb[b].ql + 64 * h + 32));
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(xb[b].qh + 32 * h));
            __m256i *o = (__m256i *)(w + 128 * h);
            _mm256_store_si256(o, _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4)));
            _mm256_store_si256(o + 1, _mm256_or_si256(_mm256_and_si256(ql1, m4),
                                                       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m3), 4)));
            _mm256_store_si256(o + 2, _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                                                       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m3), 4)));
            _mm256_store_si256(o + 3, _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                                       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m3), 4)));
        }
        const int8_t *sc = xb[b].scales;
        const __m256i *qb = q + 64 * b;
        __m256i sum = _mm256_setzero_si256(), off = _mm256_setzero_si256();
        for (int j = 0; j < 16; j++) { /* sub-blocks of 16 weights: 4 steps */
            const __m256i scale = _mm256_set1_epi16(sc[j]);
            const __m256i a = _mm256_add_epi16(_mm256_maddubs_epi16(k_bcast(w + 16 * j, 0), qb[4 * j]),
                                               _mm256_maddubs_epi16(k_bcast(w + 16 * j, 1), qb[4 * j + 1]));
            const __m256i c = _mm256_add_epi16(_mm256_maddubs_epi16(k_bcast(w + 16 * j, 2), qb[4 * j + 2]),
                                               _mm256_maddubs_epi16(k_bcast(w + 16 * j, 3), qb[4 * j + 3]));
            sum = _mm256_add_epi32(sum, _mm256_add_epi32(_mm256_madd_epi16(a, scale), _mm256_madd_epi16(c, scale)));
        }
        for (int i = 0; i < 8; i++) {
            const int pair = (int)(uint16_t)sc[2 * i] | (int)((uint32_t)(uint16_t)sc[2 * i + 1] << 16);
            off = _mm256_add_epi32(off, _mm256_madd_epi16(_mm256_set1_epi32(pair), bq[8 * b + i]));
        }
        sum = _mm256_sub_epi32(sum, _mm256_slli_epi32(off, 5));
        acc = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(f16(xb[b].d)), _mm256_loadu_ps(d8 + 8 * b)), _mm256_cvtepi32_ps(sum),
                              acc);
    }
    float v[8];
    _mm256_storeu_ps(v, acc);
    for (int c = 0; c < 8; c++) s[ldc * (size_t)c] = add ? s[ldc * (size_t)c] + v[c] : v[c];
}

typedef void (*k_tile_fn)(int nb, const uint8_t *x, const __m256i *q, const float *d8, const __m256i *bq, float *s,
                          size_t ldc, bool add);

/* Groups of eight activation rows through the tile; the rest by vec_dot. */
static void k_gemm(k_tile_fn tile, void (*dot)(int, float *, const void *, const void *), size_t xsize, int n, int nr,
                   int nc, float *s, size_t ldc, const uint8_t *x, size_t bx, const uint8_t *y, size_t by) {
    __m256i q[K_CHUNK * 64], bq[K_CHUNK * 8];
    _Alignas(32) float d8[K_CHUNK * 8];
    const int nbt = n / LM_QK_K;
    int c = 0;
    for (; c + 8 <= nc; c += 8)
        for (int b0 = 0; b0 < nbt; b0 += K_CHUNK) {
            const int nb = nbt - b0 < K_CHUNK ? nbt - b0 : K_CHUNK;
            k_pack(nb, y + by * (size_t)c + sizeof(struct lm_block_q8_K) * (size_t)b0, by, q, d8, bq);
            for (int r = 0; r < nr; r++)
                tile(nb, x + bx * (size_t)r + xsize * (size_t)b0, q, d8, bq, s + ldc * (size_t)c + r, ldc, b0 > 0);
        }
    for (; c < nc; c++)
        for (int r = 0; r < nr; r++) {
            if (nc == 1) /* generation: the weights GEMV_PREFETCH bytes ahead of this row, as gemv_tile */
                for (size_t o = 0; o < bx; o += 64) _mm_prefetch((const char *)(x + bx * (size_t)r + GEMV_PREFETCH + o), _MM_HINT_T0);
            dot(n, &s[ldc * (size_t)c + (size_t)r], x + bx * (size_t)r, y + by * (size_t)c);
        }
}

static void gemm_q4_K(int n, int nr, int nc, float *s, size_t ldc, const void *x, size_t bx, const void *y, size_t by) {
    k_gemm(k_tile_q4_K, dot_q4_K_q8_K, sizeof(struct lm_block_q4_K), n, nr, nc, s, ldc, x, bx, y, by);
}
static void gemm_q6_K(int n, int nr, int nc, float *s, size_t ldc, const void *x, size_t bx, const void *y, size_t by) {
    k_gemm(k_tile_q6_K, dot_q6_K_q8_K, sizeof(struct lm_block_q6_K), n, nr, nc, s, ldc, x, bx, y, by);
}

void lm_quants_avx2_install(struct lm_type_traits *t) {
    t[LM_TYPE_F32].vec_dot = dot_f32;
    t[LM_TYPE_F16].vec_dot = dot_f16;
    t[LM_TYPE_F16].to_f32 = to_f32_f16;
    t[LM_TYPE_BF16].vec_dot = dot_bf16_bf16;
    t[LM_TYPE_Q4_0].vec_dot = dot_q4_0_q8_0;
    t[LM_TYPE_Q4_1].vec_dot = dot_q4_1_q8_1;
    t[LM_TYPE_Q5_0].vec_dot = dot_q5_0_q8_0;
    t[LM_TYPE_Q5_1].vec_dot = dot_q5_1_q8_1;
    t[LM_TYPE_Q8_0].vec_dot = dot_q8_0_q8_0;
    t[LM_TYPE_Q8_0].from_f32 = from_f32_q8_0;
    t[LM_TYPE_Q8_1].from_f32 = from_f32_q8_1;
    t[LM_TYPE_Q8_K].from_f32 = from_f32_q8_K;
    t[LM_TYPE_Q8_0].act_from_f32 = act_from_f32_q8_0;
    t[LM_TYPE_Q8_1].act_from_f32 = act_from_f32_q8_1;
    t[LM_TYPE_Q8_K].act_from_f32 = from_f32_q8_K;
    t[LM_TYPE_Q2_K].vec_dot = dot_q2_K_q8_K;
    t[LM_TYPE_Q3_K].vec_dot = dot_q3_K_q8_K;
    t[LM_TYPE_Q4_K].vec_dot = dot_q4_K_q8_K;
    t[LM_TYPE_Q5_K].vec_dot = dot_q5_K_q8_K;
    t[LM_TYPE_Q6_K].vec_dot = dot_q6_K_q8_K;
    t[LM_TYPE_Q4_0].gemm = gemm_q4_0;
    t[LM_TYPE_Q4_1].gemm = gemm_q4_1;
    t[LM_TYPE_Q5_0].gemm = gemm_q5_0;
    t[LM_TYPE_Q5_1].gemm = gemm_q5_1;
    t[LM_TYPE_Q8_0].gemm = gemm_q8_0;
    t[LM_TYPE_F32].gemm = gemm_f32;
    t[LM_TYPE_F16].gemm = gemm_f16;
    t[LM_TYPE_BF16].gemm = gemm_bf16;
    t[LM_TYPE_Q4_K].gemm = gemm_q4_K;
    t[LM_TYPE_Q6_K].gemm = gemm_q6_K;
}

#endif
