/* quants_neon.c: AArch64 NEON kernels, installed over the reference ones in
 * quants.c when the compiler targets AArch64 (where NEON is always there).
 *
 * The same plan as quants_avx2.c: weights unpacked to signed bytes, integer
 * dot products with the int8 activations (sdot with the dotprod extension,
 * else widening multiplies), one float multiply-add per block. NEON has the
 * two roundings the quantizers need (half away from zero: fcvtas, to nearest
 * even: fcvtns), so activations come out byte-identical to the reference.
 * `make neon-test` runs the kernel tests under qemu-aarch64, with and
 * without +dotprod.
 *
 * Reference: ggml-cpu/arch/arm/quants.c. */
#include "quants_simd.h"

#if LM_QUANTS_NEON

#include <arm_neon.h>
#include <string.h>

static inline float f16(uint16_t h) {
    __fp16 f;
    memcpy(&f, &h, 2);
    return (float)f;
}

static inline uint16_t to_f16(float f) {
    const __fp16 h = (__fp16)f; /* round to nearest even, as lm_f32_to_f16 */
    uint16_t r;
    memcpy(&r, &h, 2);
    return r;
}

/* acc + the 16 products a*b, summed in groups of four */
static inline int32x4_t dot16(int32x4_t acc, int8x16_t a, int8x16_t b) {
#if defined(__ARM_FEATURE_DOTPROD)
    return vdotq_s32(acc, a, b);
#else
    const int16x8_t lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
    const int16x8_t hi = vmull_high_s8(a, b);
    return vpadalq_s16(vpadalq_s16(acc, lo), hi);
#endif
}

/* 32 weights (two vectors) against 32 activations */
static inline int32x4_t dot32(int8x16_t a0, int8x16_t a1, const int8_t *y) {
    return dot16(dot16(vdupq_n_s32(0), a0, vld1q_s8(y)), a1, vld1q_s8(y + 16));
}

/* ---- f32 and f16 against f32, bf16 against bf16 ---- */

static void dot_f32(int n, float *s, const void *vx, const void *vy) {
    const float *x = vx, *y = vy;
    float32x4_t acc0 = vdupq_n_f32(0), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = vfmaq_f32(acc0, vld1q_f32(x + i), vld1q_f32(y + i));
        acc1 = vfmaq_f32(acc1, vld1q_f32(x + i + 4), vld1q_f32(y + i + 4));
        acc2 = vfmaq_f32(acc2, vld1q_f32(x + i + 8), vld1q_f32(y + i + 8));
        acc3 = vfmaq_f32(acc3, vld1q_f32(x + i + 12), vld1q_f32(y + i + 12));
    }
    float sum = vaddvq_f32(vaddq_f32(vaddq_f32(acc0, acc1), vaddq_f32(acc2, acc3)));
    for (; i < n; i++) sum += x[i] * y[i];
    *s = sum;
}

static inline float32x4_t load_f16x4(const uint16_t *x) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(x))); }

static void dot_f16(int n, float *s, const void *vx, const void *vy) {
    const uint16_t *x = vx;
    const float *y = vy;
    float32x4_t acc0 = vdupq_n_f32(0), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = vfmaq_f32(acc0, load_f16x4(x + i), vld1q_f32(y + i));
        acc1 = vfmaq_f32(acc1, load_f16x4(x + i + 4), vld1q_f32(y + i + 4));
        acc2 = vfmaq_f32(acc2, load_f16x4(x + i + 8), vld1q_f32(y + i + 8));
        acc3 = vfmaq_f32(acc3, load_f16x4(x + i + 12), vld1q_f32(y + i + 12));
    }
    float sum = vaddvq_f32(vaddq_f32(vaddq_f32(acc0, acc1), vaddq_f32(acc2, acc3)));
    for (; i < n; i++) sum += f16(x[i]) * y[i];
    *s = sum;
}

static inline float32x4_t load_bf16x4(const uint16_t *x) {
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(x), 16));
}

static void dot_bf16_bf16(int n, float *s, const void *vx, const void *vy) {
    const uint16_t *x = vx, *y = vy;
    float32x4_t acc0 = vdupq_n_f32(0), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = vfmaq_f32(acc0, load_bf16x4(x + i), load_bf16x4(y + i));
        acc1 = vfmaq_f32(acc1, load_bf16x4(x + i + 4), load_bf16x4(y + i + 4));
        acc2 = vfmaq_f32(acc2, load_bf16x4(x + i + 8), load_bf16x4(y + i + 8));
        acc3 = vfmaq_f32(acc3, load_bf16x4(x + i + 12), load_bf16x4(y + i + 12));
    }
    float sum = vaddvq_f32(vaddq_f32(vaddq_f32(acc0, acc1), vaddq_f32(acc2, acc3)));
    for (; i < n; i++) sum += lm_bf16_to_f32(x[i]) * lm_bf16_to_f32(y[i]);
    *s = sum;
}

/* ---- 32-weight blocks ---- */

/* Bits 0-15 (lo) and 16-31 (hi) of qh as bytes, 0xff where set. */
static inline void unpack_bits(const uint8_t qh[4], uint8x16_t *lo, uint8x16_t *hi) {
    static const uint8_t bit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t mask = vld1q_u8(bit);
    *lo = vtstq_u8(vcombine_u8(vdup_n_u8(qh[0]), vdup_n_u8(qh[1])), mask);
    *hi = vtstq_u8(vcombine_u8(vdup_n_u8(qh[2]), vdup_n_u8(qh[3])), mask);
}

static void dot_q4_0_q8_0(int n, float *s, const void *vx, const void *vy) {
    const struct lm_block_q4_0 *x = vx;
    const struct lm_block_q8_0 *y = vy;
    const uint8x16_t m4 = vdupq_n_u8(0x0f);
    const int8x16_t eight = vdupq_n_s8(8);
    float32x4_t acc0 = vdupq_n_f32(0), acc1 = acc0;
    for (int i = 0; i < n / 32; i++) {
        const uint8x16_t q = vld1q_u8(x[i].qs);
        const int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, m4)), eight);
        const int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), eight);
        const float32x4_t p = vcvtq_f32_s32(dot32(lo, hi, y[i].qs));
        if (i & 1) acc1 = vfmaq_n_f32(acc1, p, f16(x[i].d) * f16(y[i].d));
        else acc0 = vfmaq_n_f32(acc0, p, f16(x[i].d) * f16(y[i].d));
    }
    *s = vaddvq_f32(vaddq_f32(acc0, acc1));
}

static void dot_q4_1_q8_1(int n, float *s, const void *vx, const void *vy) {
    const struct lm_block_q4_1 *x = vx;
    const struct lm_block_q8_1 *y = vy;
    const uint8x16_t m4 = vdupq_n_u8(0x0f);
    float32x4_t acc0 = vdupq_n_f32(0), acc1 = acc0;
    float summs = 0;
    for (int i = 0; i < n / 32; i++) {
        const uint8x16_t q = vld1q_u8(x[i].qs);
        const int8x16_t lo = vreinterpretq_s8_u8(vandq_u8(q, m4));
        const int8x16_t hi = vreinterpretq_s8_u8(vshrq_n_u8(q, 4));
        const float32x4_t p = vcvtq_f32_s32(dot32(lo, hi, y[i].qs));
        summs += f16(x[i].m) * f16(y[i].s);
        if (i & 1) acc1 = vfmaq_n_f32(acc1, p, f16(x[i].d) * f16(y[i].d));
        else acc0 = vfmaq_n_f32(acc0, p, f16(x[i].d) * f16(y[i].d));
    }
    *s = vaddvq_f32(vaddq_f32(acc0, acc1)) + summs;
}

static void dot_q5_0_q8_0(int n, float *s, const void *vx, const void *vy) {
    const struct lm_block_q5_0 *x = vx;
    const struct lm_block_q8_0 *y = vy;
    const uint8x16_t m4 = vdupq_n_u8(0x0f), b4 = vdupq_n_u8(0x10);
    const int8x16_t sixteen = vdupq_n_s8(16);
    float32x4_t acc0 = vdupq_n_f32(0), acc1 = acc0;
    for (int i = 0; i < n / 32; i++) {
        uint8x16_t hlo, hhi;
        unpack_bits(x[i].qh, &hlo, &hhi);
        const uint8x16_t q = vld1q_u8(x[i].qs);
        const int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(vandq_u8(q, m4), vandq_u8(hlo, b4))), sixteen);
        const int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(q, 4), vandq_u8(hhi, b4))), sixteen);
        const float32x4_t p = vcvtq_f32_s32(dot32(lo, hi, y[i].qs));
        if (i & 1) acc1 = vfmaq_n_f32(acc1, p, f16(x[i].d) * f16(y[i].d));
        else acc0 = vfmaq_n_f32(acc0, p, f16(x[i].d) * f16(y[i].d));
    }
    *s = vaddvq_f32(vaddq_f32(acc0, acc1));
}

static void dot_q5_1_q8_1(int n, float *s, const void *vx, const void *vy) {
    const struct lm_block_q5_1 *x = vx;
    const struct lm_block_q8_1 *y = vy;
    const uint8x16_t m4 = vdupq_n_u8(0x0f), b4 = vdupq_n_u8(0x10);
    float32x4_t acc0 = vdupq_n_f32(0), acc1 = acc0;
    float summs = 0;
    for (int i = 0; i < n / 32; i++) {
        uint8x16_t hlo, hhi;
        unpack_bits(x[i].qh, &hlo, &hhi);
        const uint8x16_t q = vld1q_u8(x[i].qs);
        const int8x16_t lo = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(q, m4), vandq_u8(hlo, b4)));
        const int8x16_t hi = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(q, 4), vandq_u8(hhi, b4)));
        const float32x4_t p = vcvtq_f32_s32(dot32(lo, hi, y[i].qs));
        summs += f16(x[i].m) * f16(y[i].s);
        if (i & 1) acc1 = vfmaq_n_f32(acc1, p, f16(x[i].d) * f16(y[i].d));
        else acc0 = vfmaq_n_f32(acc0, p, f16(x[i].d) * f16(y[i].d));
    }
    *s = vaddvq_f32(vaddq_f32(acc0, acc1)) + summs;
}

static void dot_q8_0_q8_0(int n, float *s, const void *vx, const void *vy) {
    const struct lm_block_q8_0 *x = vx;
    const struct lm_block_q8_0 *y = vy;
    float32x4_t acc0 = vdupq_n_f32(0), acc1 = acc0;
    for (int i = 0; i < n / 32; i++) {
        const float32x4_t p = vcvtq_f32_s32(dot32(vld1q_s8(x[i].qs), vld1q_s8(x[i].qs + 16), y[i].qs));
        if (i & 1) acc1 = vfmaq_n_f32(acc1, p, f16(x[i].d) * f16(y[i].d));
        else acc0 = vfmaq_n_f32(acc0, p, f16(x[i].d) * f16(y[i].d));
    }
    *s = vaddvq_f32(vaddq_f32(acc0, acc1));
}

/* ---- activation quantizers ---- */

/* Four vectors of int32 in [-128, 127] -> 16 bytes */
static inline int8x16_t narrow_i32x16(int32x4_t a, int32x4_t b, int32x4_t c, int32x4_t d) {
    const int16x8_t ab = vcombine_s16(vqmovn_s32(a), vqmovn_s32(b));
    const int16x8_t cd = vcombine_s16(vqmovn_s32(c), vqmovn_s32(d));
    return vcombine_s8(vqmovn_s16(ab), vqmovn_s16(cd));
}

/* One q8_0/q8_1 block: returns d, stores the quants and their sum. The
 * activations' quantizer (act) takes 1/d as 127/amax and rounds to nearest
 * even, as ggml-cpu's x86 code (quants.c says why). */
static inline float quant_q8_block(const float *x, int8_t *qs, int *sum, bool act) {
    float32x4_t v[8];
    float32x4_t vmax = vdupq_n_f32(0);
    for (int k = 0; k < 8; k++) {
        v[k] = vld1q_f32(x + 4 * k);
        vmax = vmaxq_f32(vmax, vabsq_f32(v[k]));
    }
    const float amax = vmaxvq_f32(vmax), d = amax / 127;
    const float id = act ? (amax ? 127.f / amax : 0.0f) : (d ? 1.0f / d : 0.0f);
    int32x4_t q[8], total = vdupq_n_s32(0);
    for (int k = 0; k < 8; k++) {
        const float32x4_t s = vmulq_n_f32(v[k], id);
        q[k] = act ? vcvtnq_s32_f32(s) : vcvtaq_s32_f32(s); /* nearest even, or roundf */
        total = vaddq_s32(total, q[k]);
    }
    vst1q_s8(qs, narrow_i32x16(q[0], q[1], q[2], q[3]));
    vst1q_s8(qs + 16, narrow_i32x16(q[4], q[5], q[6], q[7]));
    *sum = vaddvq_s32(total);
    return d;
}

static inline void quant_q8_0(const float *x, void *vy, int64_t n, bool act) {
    struct lm_block_q8_0 *y = vy;
    int sum;
    for (int64_t i = 0; i < n / 32; i++) y[i].d = to_f16(quant_q8_block(x + 32 * i, y[i].qs, &sum, act));
}

static inline void quant_q8_1(const float *x, void *vy, int64_t n, bool act) {
    struct lm_block_q8_1 *y = vy;
    for (int64_t i = 0; i < n / 32; i++) {
        int sum;
        const float d = quant_q8_block(x + 32 * i, y[i].qs, &sum, act);
        y[i].d = to_f16(d);
        y[i].s = to_f16((float)sum * d);
    }
}

static void from_f32_q8_0(const float *x, void *y, int64_t n) { quant_q8_0(x, y, n, false); }
static void from_f32_q8_1(const float *x, void *y, int64_t n) { quant_q8_1(x, y, n, false); }
static void act_from_f32_q8_0(const float *x, void *y, int64_t n) { quant_q8_0(x, y, n, true); }
static void act_from_f32_q8_1(const float *x, void *y, int64_t n) { quant_q8_1(x, y, n, true); }

static void from_f32_q8_K(const float *x, void *vy, int64_t n) {
    struct lm_block_q8_K *y = vy;
    for (int64_t i = 0; i < n / LM_QK_K; i++, x += LM_QK_K) {
        float32x4_t amax = vdupq_n_f32(0);
        for (int k = 0; k < LM_QK_K; k += 4) amax = vmaxq_f32(amax, vabsq_f32(vld1q_f32(x + k)));
        const float m = vmaxvq_f32(amax);
        if (m == 0) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        int first = 0; /* the reference keeps the sign of the first element of largest magnitude */
        while (first < LM_QK_K - 1 && x[first] != m && x[first] != -m) first++;
        const float iscale = -127.f / x[first];
        for (int g = 0; g < 16; g++) {
            const float *xg = x + 16 * g;
            const int32x4_t q0 = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(xg), iscale));
            const int32x4_t q1 = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(xg + 4), iscale));
            const int32x4_t q2 = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(xg + 8), iscale));
            const int32x4_t q3 = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(xg + 12), iscale));
            const int8x16_t q = narrow_i32x16(q0, q1, q2, q3);
            vst1q_s8(y[i].qs + 16 * g, q);
            y[i].bsums[g] = (int16_t)vaddlvq_s8(q);
        }
        y[i].d = 1 / iscale;
    }
}

/* ---- k-quants against q8_K ---- */

/* q2_K: levels 0..3 in bit pairs, 4-bit scales and mins per 16 weights */
static void dot_q2_K_q8_K(int n, float *s, const void *vx, const void *vy) {
    const struct lm_block_q2_K *x = vx;
    const struct lm_block_q8_K *y = vy;
    const uint8x16_t m3 = vdupq_n_u8(3);
    float sum = 0;
    for (int i = 0; i < n / LM_QK_K; i++) {
        int summs = 0;
        for (int j = 0; j < 16; j++) summs += (x[i].scales[j] >> 4) * y[i].bsums[j];
        const int8_t *q8 = y[i].qs;
        int32x4_t sumi = vdupq_n_s32(0);
        for (int h = 0; h < 2; h++) {
            uint8x16_t b0 = vld1q_u8(x[i].qs + 32 * h), b1 = vld1q_u8(x[i].qs + 32 * h + 16);
            for (int k = 0; k < 4; k++, q8 += 32) {
                const int sub = 8 * h + 2 * k;
                const int8x16_t l0 = vreinterpretq_s8_u8(vandq_u8(b0, m3)), l1 = vreinterpretq_s8_u8(vandq_u8(b1, m3));
                sumi = vmlaq_n_s32(sumi, dot16(vdupq_n_s32(0), l0, vld1q_s8(q8)), x[i].scales[sub] & 0xf);
                sumi = vmlaq_n_s32(sumi, dot16(vdupq_n_s32(0), l1, vld1q_s8(q8 + 16)), x[i].scales[sub + 1] & 0xf);
                b0 = vshrq_n_u8(b0, 2);
                b1 = vshrq_n_u8(b1, 2);
            }
        }
        sum += y[i].d * f16(x[i].d) * (float)vaddvq_s32(sumi) - y[i].d * f16(x[i].dmin) * (float)summs;
    }
    *s = sum;
}

/* q3_K: level = lo + 4*hbit - 4 */
static void dot_q3_K_q8_K(int n, float *s, const void *vx, const void *vy) {
    const struct lm_block_q3_K *x = vx;
    const struct lm_block_q8_K *y = vy;
    const uint8x16_t m3 = vdupq_n_u8(3), one = vdupq_n_u8(1);
    const int8x16_t four = vdupq_n_s8(4);
    float sum = 0;
    for (int i = 0; i < n / LM_QK_K; i++) {
        int8_t sc[16];
        unpack_q3_K_scales(x[i].scales, sc);
        uint8x16_t h0 = vld1q_u8(x[i].hmask), h1 = vld1q_u8(x[i].hmask + 16);
        const int8_t *q8 = y[i].qs;
        int32x4_t sumi = vdupq_n_s32(0);
        for (int h = 0; h < 2; h++) {
            uint8x16_t b0 = vld1q_u8(x[i].qs + 32 * h), b1 = vld1q_u8(x[i].qs + 32 * h + 16);
            for (int k = 0; k < 4; k++, q8 += 32) {
                const int sub = 8 * h + 2 * k;
                const uint8x16_t u0 = vorrq_u8(vandq_u8(b0, m3), vshlq_n_u8(vandq_u8(h0, one), 2));
                const uint8x16_t u1 = vorrq_u8(vandq_u8(b1, m3), vshlq_n_u8(vandq_u8(h1, one), 2));
                const int8x16_t l0 = vsubq_s8(vreinterpretq_s8_u8(u0), four), l1 = vsubq_s8(vreinterpretq_s8_u8(u1), four);
                sumi = vmlaq_n_s32(sumi, dot16(vdupq_n_s32(0), l0, vld1q_s8(q8)), sc[sub]);
                sumi = vmlaq_n_s32(sumi, dot16(vdupq_n_s32(0), l1, vld1q_s8(q8 + 16)), sc[sub + 1]);
                b0 = vshrq_n_u8(b0, 2);
                b1 = vshrq_n_u8(b1, 2);
                h0 = vshrq_n_u8(h0, 1);
                h1 = vshrq_n_u8(h1, 1);
            }
        }
        sum += y[i].d * f16(x[i].d) * (float)vaddvq_s32(sumi);
    }
    *s = sum;
}

/* sum over sub-blocks j of m[j] * (bsums[2j] + bsums[2j+1]) */
static inline int mins_dot(const uint8_t m[8], const int16_t *bsums) {
    const int16x8_t pairs = vpaddq_s16(vld1q_s16(bsums), vld1q_s16(bsums + 8));
    const int16x8_t m16 = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(m)));
    return vaddvq_s32(vmlal_s16(vmull_s16(vget_low_s16(pairs), vget_low_s16(m16)), vget_high_s16(pairs), vget_high_s16(m16)));
}

static void dot_q4_K_q8_K(int n, float *s, const void *vx, const void *vy) {
    const struct lm_block_q4_K *x = vx;
    const struct lm_block_q8_K *y = vy;
    const uint8x16_t m4 = vdupq_n_u8(0x0f);
    float sum = 0;
    for (int i = 0; i < n / LM_QK_K; i++) {
        uint8_t sc[8], m[8];
        unpack_k4_scales(x[i].scales, sc, m);
        const int8_t *q8 = y[i].qs;
        int32x4_t sumi = vdupq_n_s32(0);
        for (int k = 0; k < 4; k++, q8 += 64) {
            const uint8x16_t b0 = vld1q_u8(x[i].qs + 32 * k), b1 = vld1q_u8(x[i].qs + 32 * k + 16);
            const int8x16_t lo0 = vreinterpretq_s8_u8(vandq_u8(b0, m4)), lo1 = vreinterpretq_s8_u8(vandq_u8(b1, m4));
            const int8x16_t hi0 = vreinterpretq_s8_u8(vshrq_n_u8(b0, 4)), hi1 = vreinterpretq_s8_u8(vshrq_n_u8(b1, 4));
            sumi = vmlaq_n_s32(sumi, dot32(lo0, lo1, q8), sc[2 * k]);
            sumi = vmlaq_n_s32(sumi, dot32(hi0, hi1, q8 + 32), sc[2 * k + 1]);
        }
        sum += y[i].d * f16(x[i].d) * (float)vaddvq_s32(sumi) - y[i].d * f16(x[i].dmin) * (float)mins_dot(m, y[i].bsums);
    }
    *s = sum;
}

static void dot_q5_K_q8_K(int n, float *s, const void *vx, const void *vy) {
    const struct lm_block_q5_K *x = vx;
    const struct lm_block_q8_K *y = vy;
    const uint8x16_t m4 = vdupq_n_u8(0x0f), one = vdupq_n_u8(1);
    float sum = 0;
    for (int i = 0; i < n / LM_QK_K; i++) {
        uint8_t sc[8], m[8];
        unpack_k4_scales(x[i].scales, sc, m);
        uint8x16_t h0 = vld1q_u8(x[i].qh), h1 = vld1q_u8(x[i].qh + 16);
        const int8_t *q8 = y[i].qs;
        int32x4_t sumi = vdupq_n_s32(0);
        for (int k = 0; k < 4; k++, q8 += 64) {
            const uint8x16_t b0 = vld1q_u8(x[i].qs + 32 * k), b1 = vld1q_u8(x[i].qs + 32 * k + 16);
            const uint8x16_t lo0 = vorrq_u8(vandq_u8(b0, m4), vshlq_n_u8(vandq_u8(h0, one), 4));
            const uint8x16_t lo1 = vorrq_u8(vandq_u8(b1, m4), vshlq_n_u8(vandq_u8(h1, one), 4));
            h0 = vshrq_n_u8(h0, 1);
            h1 = vshrq_n_u8(h1, 1);
            const uint8x16_t hi0 = vorrq_u8(vshrq_n_u8(b0, 4), vshlq_n_u8(vandq_u8(h0, one), 4));
            const uint8x16_t hi1 = vorrq_u8(vshrq_n_u8(b1, 4), vshlq_n_u8(vandq_u8(h1, one), 4));
            h0 = vshrq_n_u8(h0, 1);
            h1 = vshrq_n_u8(h1, 1);
            sumi = vmlaq_n_s32(sumi, dot32(vreinterpretq_s8_u8(lo0), vreinterpretq_s8_u8(lo1), q8), sc[2 * k]);
            sumi = vmlaq_n_s32(sumi, dot32(vreinterpretq_s8_u8(hi0), vreinterpretq_s8_u8(hi1), q8 + 32), sc[2 * k + 1]);
        }
        sum += y[i].d * f16(x[i].d) * (float)vaddvq_s32(sumi) - y[i].d * f16(x[i].dmin) * (float)mins_dot(m, y[i].bsums);
    }
    *s = sum;
}

/* q6_K: four 32-weight groups per half; see levels_q6_K in quants.c */
static void dot_q6_K_q8_K(int n, float *s, const void *vx, const void *vy) {
    const struct lm_block_q6_K *x = vx;
    const struct lm_block_q8_K *y = vy;
    const uint8x16_t m4 = vdupq_n_u8(0x0f), m3 = vdupq_n_u8(3);
    const int8x16_t off = vdupq_n_s8(32);
    float sum = 0;
    for (int i = 0; i < n / LM_QK_K; i++) {
        const int8_t *q8 = y[i].qs, *sc = x[i].scales;
        int32x4_t sumi = vdupq_n_s32(0);
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = x[i].ql + 64 * h, *qh = x[i].qh + 32 * h;
            const uint8x16_t a0 = vld1q_u8(ql), a1 = vld1q_u8(ql + 16), c0 = vld1q_u8(ql + 32), c1 = vld1q_u8(ql + 48);
            uint8x16_t h0 = vld1q_u8(qh), h1 = vld1q_u8(qh + 16);
            const uint8x16_t lo[4][2] = {{vandq_u8(a0, m4), vandq_u8(a1, m4)},
                                         {vandq_u8(c0, m4), vandq_u8(c1, m4)},
                                         {vshrq_n_u8(a0, 4), vshrq_n_u8(a1, 4)},
                                         {vshrq_n_u8(c0, 4), vshrq_n_u8(c1, 4)}};
            for (int k = 0; k < 4; k++, q8 += 32) {
                const int sub = 8 * h + 2 * k;
                const int8x16_t l0 = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(lo[k][0], vshlq_n_u8(vandq_u8(h0, m3), 4))), off);
                const int8x16_t l1 = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(lo[k][1], vshlq_n_u8(vandq_u8(h1, m3), 4))), off);
                sumi = vmlaq_n_s32(sumi, dot16(vdupq_n_s32(0), l0, vld1q_s8(q8)), sc[sub]);
                sumi = vmlaq_n_s32(sumi, dot16(vdupq_n_s32(0), l1, vld1q_s8(q8 + 16)), sc[sub + 1]);
                h0 = vshrq_n_u8(h0, 2);
                h1 = vshrq_n_u8(h1, 2);
            }
        }
        sum += y[i].d * f16(x[i].d) * (float)vaddvq_s32(sumi);
    }
    *s = sum;
}

void lm_quants_neon_install(struct lm_type_traits *t) {
    t[LM_TYPE_F32].vec_dot = dot_f32;
    t[LM_TYPE_F16].vec_dot = dot_f16;
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
}

#endif
