/* quants.c: the weight-format traits table and the plain C reference kernels.
 *
 * Reference: ggml (ggml-quants.c for layouts and the quantizers' math,
 * ggml-cpu/quants.c for the dot products). The quantizers must produce the
 * same bytes as ggml's quantize_row_*_ref, so their float expressions keep
 * ggml's order of operations and must not be contracted into FMAs (gcc does
 * not contract under -std=c11; clang needs the pragma below). SIMD versions
 * live in quants_avx2.c and quants_neon.c and replace entries of the served
 * table. */
#include "lm/quants.h"
#include "quants_simd.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

/* ---- half precision ---- */

float lm_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) {
                man <<= 1;
                exp--;
            }
            bits = sign | (exp << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t lm_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t exp = (x >> 23) & 0xff, man = x & 0x7fffff;
    if (exp == 0xff) return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
    int e = (int)exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00);
    if (e <= 0) {
        if (e < -10) return (uint16_t)sign;
        man |= 0x800000;
        int shift = 14 - e;
        uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = ((uint32_t)e << 10) | (man >> 13), rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++; /* round to nearest even; may carry into exp */
    return (uint16_t)(sign | half);
}

float lm_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t lm_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

#define F16(h) lm_f16_to_f32(h)

_Static_assert(sizeof(struct lm_block_q4_0) == 18, "q4_0 block");
_Static_assert(sizeof(struct lm_block_q4_1) == 20, "q4_1 block");
_Static_assert(sizeof(struct lm_block_q5_0) == 22, "q5_0 block");
_Static_assert(sizeof(struct lm_block_q5_1) == 24, "q5_1 block");
_Static_assert(sizeof(struct lm_block_q8_0) == 34, "q8_0 block");
_Static_assert(sizeof(struct lm_block_q8_1) == 36, "q8_1 block");
_Static_assert(sizeof(struct lm_block_q2_K) == 84, "q2_K block");
_Static_assert(sizeof(struct lm_block_q3_K) == 110, "q3_K block");
_Static_assert(sizeof(struct lm_block_q4_K) == 144, "q4_K block");
_Static_assert(sizeof(struct lm_block_q5_K) == 176, "q5_K block");
_Static_assert(sizeof(struct lm_block_q6_K) == 210, "q6_K block");
_Static_assert(sizeof(struct lm_block_q8_K) == 292, "q8_K block");

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }

/* ---- f32, f16, bf16 (dot products against f32, bf16 for bf16; summed in double) ---- */

static void to_f32_f32(const void *x, float *y, int64_t n) { memcpy(y, x, (size_t)n * sizeof(float)); }
static void from_f32_f32(const float *x, void *y, int64_t n) { memcpy(y, x, (size_t)n * sizeof(float)); }

static void dot_f32_ref(int n, float *s, const void *vx, const void *vy) {
    const float *restrict x = vx, *restrict y = vy;
    double sum = 0;
    for (int i = 0; i < n; i++) sum += (double)x[i] * y[i];
    *s = (float)sum;
}

static void to_f32_f16_ref(const void *vx, float *y, int64_t n) {
    const uint16_t *restrict x = vx;
    for (int64_t i = 0; i < n; i++) y[i] = F16(x[i]);
}

static void from_f32_f16(const float *x, void *vy, int64_t n) {
    uint16_t *restrict y = vy;
    for (int64_t i = 0; i < n; i++) y[i] = lm_f32_to_f16(x[i]);
}

static void dot_f16_ref(int n, float *s, const void *vx, const void *vy) {
    const uint16_t *restrict x = vx;
    const float *restrict y = vy;
    double sum = 0;
    for (int i = 0; i < n; i++) sum += (double)F16(x[i]) * y[i];
    *s = (float)sum;
}

static void to_f32_bf16(const void *vx, float *y, int64_t n) {
    const uint16_t *restrict x = vx;
    for (int64_t i = 0; i < n; i++) y[i] = lm_bf16_to_f32(x[i]);
}

static void from_f32_bf16(const float *x, void *vy, int64_t n) {
    uint16_t *restrict y = vy;
    for (int64_t i = 0; i < n; i++) y[i] = lm_f32_to_bf16(x[i]);
}

/* bf16 weights take bf16 activations, as in ggml: the products are exact in
 * f32 and the bf16 dot-product instruction does 32 of them at once. */
static void dot_bf16_bf16_ref(int n, float *s, const void *vx, const void *vy) {
    const uint16_t *restrict x = vx, *restrict y = vy;
    double sum = 0;
    for (int i = 0; i < n; i++) sum += (double)lm_bf16_to_f32(x[i]) * lm_bf16_to_f32(y[i]);
    *s = (float)sum;
}

/* ---- 32-weight blocks: q4_0, q4_1, q5_0, q5_1, q8_0, q8_1 ---- */

/* Index of the first element with the largest magnitude (ggml keeps its sign). */
static int argmax_abs(const float *x, int n) {
    int best = 0;
    float amax = 0;
    for (int j = 0; j < n; j++)
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            best = j;
        }
    return best;
}

static void min_max(const float *x, int n, float *min, float *max) {
    *min = FLT_MAX;
    *max = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        if (x[j] < *min) *min = x[j];
        if (x[j] > *max) *max = x[j];
    }
}

static void to_f32_q4_0(const void *vx, float *y, int64_t n) {
    const struct lm_block_q4_0 *restrict x = vx;
    for (int64_t i = 0; i < n / 32; i++, y += 32) {
        const float d = F16(x[i].d);
        for (int j = 0; j < 16; j++) {
            y[j] = ((x[i].qs[j] & 0xf) - 8) * d;
            y[j + 16] = ((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

static void from_f32_q4_0(const float *x, void *vy, int64_t n) {
    struct lm_block_q4_0 *restrict y = vy;
    for (int64_t i = 0; i < n / 32; i++, x += 32) {
        const float max = x[argmax_abs(x, 32)];
        const float d = max / -8;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = lm_f32_to_f16(d);
        for (int j = 0; j < 16; j++) {
            const float x0 = x[j] * id, x1 = x[j + 16] * id;
            const int q0 = imin(15, (int8_t)(x0 + 8.5f)), q1 = imin(15, (int8_t)(x1 + 8.5f));
            y[i].qs[j] = (uint8_t)(q0 | q1 << 4);
        }
    }
}

static void dot_q4_0_q8_0_ref(int n, float *s, const void *vx, const void *vy) {
    const struct lm_block_q4_0 *restrict x = vx;
    const struct lm_block_q8_0 *restrict y = vy;
    float sum = 0;
    for (int i = 0; i < n / 32; i++) {
        int sumi = 0;
        for (int j = 0; j < 16; j++)
            sumi += ((x[i].qs[j] & 0xf) - 8) * y[i].qs[j] + ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + 16];
        sum += F16(x[i].d) * F16(y[i].d) * (float)sumi;
    }
    *s = sum;
}

static void to_f32_q4_1(const void *vx, float *y, int64_t n) {
    const struct lm_block_q4_1 *restrict x = vx;
    for (int64_t i = 0; i < n / 32; i++, y += 32) {
        const float d = F16(x[i].d), m = F16(x[i].m);
        for (int j = 0; j < 16; j++) {
            y[j] = (x[i].qs[j] & 0xf) * d + m;
            y[j + 16] = (x[i].qs[j] >> 4) * d + m;
        }
    }
}

static void from_f32_q4_1(const float *x, void *vy, int64_t n) {
    struct lm_block_q4_1 *restrict y = vy;
    for (int64_t i = 0; i < n / 32; i++, x += 32) {
        float min, max;
        min_max(x, 32, &min, &max);
        const float d = (max - min) / 15;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = lm_f32_to_f16(d);
        y[i].m = lm_f32_to_f16(min);
        for (int j = 0; j < 16; j++) {
            const float x0 = (x[j] - min) * id, x1 = (x[j + 16] - min) * id;
            const int q0 = imin(15, (int8_t)(x0 + 0.5f)), q1 = imin(15, (int8_t)(x1 + 0.5f));
            y[i].qs[j] = (uint8_t)(q0 | q1 << 4);
        }
    }
}

/* sum d*q*(dy*qy) + m*dy*qy = dx*dy*sum(q*qy) + m*s: the activation block carries s. */
static void dot_q4_1_q8_1_ref(int n, float *s, const void *vx, const void *vy) {
    const struct lm_block_q4_1 *restrict x = vx;
    const struct lm_block_q8_1 *restrict y = vy;
    float sum = 0;
    for (int i = 0; i < n / 32; i++) {
        int sumi = 0;
        for (int j = 0; j < 16; j++) sumi += (x[i].qs[j] & 0xf) * y[i].qs[j] + (x[i].qs[j] >> 4) * y[i].qs[j + 16];
        sum += F16(x[i].d) * F16(y[i].d) * (float)sumi + F16(x[i].m) * F16(y[i].s);
    }
    *s = sum;
}

/* q5 blocks: weight j takes bit j of qh as its fifth bit. */
static inline uint32_t load_qh(const uint8_t qh[4]) {
    return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
}

static void to_f32_q5_0(const void *vx, float *y, int64_t n) {
    const struct lm_block_q5_0 *restrict x = vx;
    for (int64_t i = 0; i < n / 32; i++, y += 32) {
        const float d = F16(x[i].d);
        const uint32_t qh = load_qh(x[i].qh);
        for (int j = 0; j < 16; j++) {
            const int q0 = (int)((x[i].qs[j] & 0xf) | ((qh >> j) & 1) << 4);
            const int q1 = (int)((x[i].qs[j] >> 4) | ((qh >> (j + 16)) & 1) << 4);
            y[j] = (q0 - 16) * d;
            y[j + 16] = (q1 - 16) * d;
        }
    }
}

static void from_f32_q5_0(const float *x, void *vy, int64_t n) {
    struct lm_block_q5_0 *restrict y = vy;
    for (int64_t i = 0; i < n / 32; i++, x += 32) {
        const float max = x[argmax_abs(x, 32)];
        const float d = max / -16;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = lm_f32_to_f16(d);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            const float x0 = x[j] * id, x1 = x[j + 16] * id;
            const int q0 = imin(31, (int8_t)(x0 + 16.5f)), q1 = imin(31, (int8_t)(x1 + 16.5f));
            y[i].qs[j] = (uint8_t)((q0 & 0xf) | (q1 & 0xf) << 4);
            qh |= (uint32_t)(q0 >> 4 & 1) << j | (uint32_t)(q1 >> 4 & 1) << (j + 16);
        }
        for (int k = 0; k < 4; k++) y[i].qh[k] = (uint8_t)(qh >> 8 * k);
    }
}

static void dot_q5_0_q8_0_ref(int n, float *s, const void *vx, const void *vy) {
    const struct lm_block_q5_0 *restrict x = vx;
    const struct lm_block_q8_0 *restrict y = vy;
    float sum = 0;
    for (int i = 0; i < n / 32; i++) {
        const uint32_t qh = load_qh(x[i].qh);
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            const int q0 = (int)((x[i].qs[j] & 0xf) | ((qh >> j) & 1) << 4) - 16;
            const int q1 = (int)((x[i].qs[j] >> 4) | ((qh >> (j + 16)) & 1) << 4) - 16;
            sumi += q0 * y[i].qs[j] + q1 * y[i].qs[j + 16];
        }
        sum += F16(x[i].d) * F16(y[i].d) * (float)sumi;
    }
    *s = sum;
}

static void to_f32_q5_1(const void *vx, float *y, int64_t n) {
    const struct lm_block_q5_1 *restrict x = vx;
    for (int64_t i = 0; i < n / 32; i++, y += 32) {
        const float d = F16(x[i].d), m = F16(x[i].m);
        const uint32_t qh = load_qh(x[i].qh);
        for (int j = 0; j < 16; j++) {
            const int q0 = (int)((x[i].qs[j] & 0xf) | ((qh >> j) & 1) << 4);
            const int q1 = (int)((x[i].qs[j] >> 4) | ((qh >> (j + 16)) & 1) << 4);
            y[j] = q0 * d + m;
            y[j + 16] = q1 * d + m;
        }
    }
}

static void from_f32_q5_1(const float *x, void *vy, int64_t n) {
    struct lm_block_q5_1 *restrict y = vy;
    for (int64_t i = 0; i < n / 32; i++, x += 32) {
        float min, max;
        min_max(x, 32, &min, &max);
        const float d = (max - min) / 31;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = lm_f32_to_f16(d);
        y[i].m = lm_f32_to_f16(min);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            const float x0 = (x[j] - min) * id, x1 = (x[j + 16] - min) * id;
            const int q0 = (uint8_t)(x0 + 0.5f), q1 = (uint8_t)(x1 + 0.5f);
            y[i].qs[j] = (uint8_t)((q0 & 0xf) | (q1 & 0xf) << 4);
            qh |= (uint32_t)(q0 >> 4 & 1) << j | (uint32_t)(q1 >> 4 & 1) << (j + 16);
        }
        for (int k = 0; k < 4; k++) y[i].qh[k] = (uint8_t)(qh >> 8 * k);
    }
}

static void dot_q5_1_q8_1_ref(int n, float *s, const void *vx, const void *vy) {
    const struct lm_block_q5_1 *restrict x = vx;
    const struct lm_block_q8_1 *restrict y = vy;
    float sum = 0;
    for (int i = 0; i < n / 32; i++) {
        const uint32_t qh = load_qh(x[i].qh);
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            const int q0 = (int)((x[i].qs[j] & 0xf) | ((qh >> j) & 1) << 4);
            const int q1 = (int)((x[i].qs[j] >> 4) | ((qh >> (j + 16)) & 1) << 4);
            sumi += q0 * y[i].qs[j] + q1 * y[i].qs[j + 16];
        }
        sum += F16(x[i].d) * F16(y[i].d) * (float)sumi + F16(x[i].m) * F16(y[i].s);
    }
    *s = sum;
}

static void to_f32_q8_0(const void *vx, float *y, int64_t n) {
    const struct lm_block_q8_0 *restrict x = vx;
    for (int64_t i = 0; i < n / 32; i++, y += 32) {
        const float d = F16(x[i].d);
        for (int j = 0; j < 32; j++) y[j] = x[i].qs[j] * d;
    }
}

/* roundf() for |v| < 2^31 without the libm call: v - trunc(v) is exact. */
static inline int round_half_away(float v) {
    const int t = (int)v;
    const float frac = v - (float)t;
    return t + (frac >= 0.5f) - (frac <= -0.5f);
}

/* q8_0 and q8_1 share the scale and rounding (half away from zero). */
static float quant_q8_block(const float *restrict x, int8_t *restrict qs) {
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = amax > fabsf(x[j]) ? amax : fabsf(x[j]);
    const float d = amax / 127;
    const float id = d ? 1.0f / d : 0.0f;
    for (int j = 0; j < 32; j++) qs[j] = (int8_t)round_half_away(x[j] * id);
    return d;
}

static void from_f32_q8_0_ref(const float *x, void *vy, int64_t n) {
    struct lm_block_q8_0 *restrict y = vy;
    for (int64_t i = 0; i < n / 32; i++, x += 32) y[i].d = lm_f32_to_f16(quant_q8_block(x, y[i].qs));
}

static void dot_q8_0_q8_0_ref(int n, float *s, const void *vx, const void *vy) {
    const struct lm_block_q8_0 *restrict x = vx;
    const struct lm_block_q8_0 *restrict y = vy;
    float sum = 0;
    for (int i = 0; i < n / 32; i++) {
        int sumi = 0;
        for (int j = 0; j < 32; j++) sumi += x[i].qs[j] * y[i].qs[j];
        sum += F16(x[i].d) * F16(y[i].d) * (float)sumi;
    }
    *s = sum;
}

static void to_f32_q8_1(const void *vx, float *y, int64_t n) {
    const struct lm_block_q8_1 *restrict x = vx;
    for (int64_t i = 0; i < n / 32; i++, y += 32) {
        const float d = F16(x[i].d);
        for (int j = 0; j < 32; j++) y[j] = x[i].qs[j] * d;
    }
}

static void from_f32_q8_1_ref(const float *x, void *vy, int64_t n) {
    struct lm_block_q8_1 *restrict y = vy;
    for (int64_t i = 0; i < n / 32; i++, x += 32) {
        const float d = quant_q8_block(x, y[i].qs);
        int sum = 0;
        for (int j = 0; j < 32; j++) sum += y[i].qs[j];
        y[i].d = lm_f32_to_f16(d);
        y[i].s = lm_f32_to_f16((float)sum * d);
    }
}

/* Round to nearest, ties to even, for |f| < 2^22: adding 1.5*2^23 leaves the
 * integer in the low mantissa bits. */
static inline int nearest_int(float f) {
    float v = f + 12582912.f;
    int i;
    memcpy(&i, &v, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

/* ---- q8_0 and q8_1 activations, as ggml-cpu quantizes them on x86 ----
 * Its AVX quantize_row_q8_0/q8_1 (ggml-cpu/arch/x86/quants.c) differ from
 * the _ref math above: the inverse scale is 127/amax, not 1/(amax/127)
 * (they can differ in the last bit), and rounding is to nearest even, not
 * half away. Each differing level moves a product, and Gemma 3 270M's top
 * two logits can be 0.03 apart; quantizing activations as llama.cpp does
 * keeps lm's products its. Weights keep the _ref math (llama-quantize's). */
static float quant_q8_act_block(const float *restrict x, int8_t *restrict qs) {
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = amax > fabsf(x[j]) ? amax : fabsf(x[j]);
    const float id = amax ? 127.f / amax : 0.0f;
    for (int j = 0; j < 32; j++) qs[j] = (int8_t)nearest_int(x[j] * id);
    return amax / 127;
}

static void act_from_f32_q8_0_ref(const float *x, void *vy, int64_t n) {
    struct lm_block_q8_0 *restrict y = vy;
    for (int64_t i = 0; i < n / 32; i++, x += 32) y[i].d = lm_f32_to_f16(quant_q8_act_block(x, y[i].qs));
}

static void act_from_f32_q8_1_ref(const float *x, void *vy, int64_t n) {
    struct lm_block_q8_1 *restrict y = vy;
    for (int64_t i = 0; i < n / 32; i++, x += 32) {
        const float d = quant_q8_act_block(x, y[i].qs);
        int sum = 0;
        for (int j = 0; j < 32; j++) sum += y[i].qs[j];
        y[i].d = lm_f32_to_f16(d);
        y[i].s = lm_f32_to_f16((float)sum * d);
    }
}

/* ---- k-quant helpers (ggml-quants.c) ---- */

#define GROUP_MAX_EPS 1e-15f

/* Symmetric levels in [-nmax, nmax-1] for n weights; returns the scale and
 * stores levels + nmax in L. rmse_type 1 weighs the error by x^2 and searches
 * 18 nearby scales (the only mode q6_K uses). */
static float make_qx_quants(int n, int nmax, const float *x, int8_t *L) {
    const float max = x[argmax_abs(x, n)];
    if (fabsf(max) < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = nearest_int(iscale * x[i]);
        l = imax(-nmax, imin(nmax - 1, l));
        L[i] = (int8_t)(l + nmax);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = nearest_int(iscale * x[i]);
            l = imax(-nmax, imin(nmax - 1, l));
            const float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) {
                int l = nearest_int(iscale * x[i]);
                L[i] = (int8_t)(nmax + imax(-nmax, imin(nmax - 1, l)));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* q3_K's symmetric levels in [-nmax, nmax-1], refined by coordinate descent
 * on the x^2-weighted error; stores levels + nmax in L. */
static float make_q3_quants(int n, int nmax, const float *x, int8_t *L) {
    const float max = x[argmax_abs(x, n)];
    if (fabsf(max) < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    const float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = nearest_int(iscale * x[i]);
        l = imax(-nmax, imin(nmax - 1, l));
        L[i] = (int8_t)l;
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int n_changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * L[i] * L[i];
                int new_l = nearest_int(x[i] * sl2 / slx);
                new_l = imax(-nmax, imin(nmax - 1, new_l));
                if (new_l != L[i]) {
                    slx += w * x[i] * new_l;
                    sl2 += w * new_l * new_l;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed++;
                    }
                }
            }
        }
        if (!n_changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* Asymmetric levels in [0, nmax]: x ~ scale*L - the_min, minimising the
 * weighted error (absolute when use_mad) over nstep+1 candidate scales. */
static float make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L, float *the_min,
                              uint8_t *Laux, float rmin, float rdelta, int nstep, bool use_mad) {
    float min = x[0], max = x[0];
    float sum_w = weights[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        const float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; i++) {
        const int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)imax(0, imin(nmax, l));
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_error += weights[i] * diff;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = nearest_int(iscale * (x[i] - min));
            l = imax(0, imin(nmax, l));
            Laux[i] = (uint8_t)l;
            const float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = use_mad ? fabsf(diff) : diff * diff;
                cur_error += weights[i] * diff;
            }
            if (cur_error < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* The k-quant reference kernels first decode a block's 256 levels into
 * bytes (in weight order), then scale (to_f32) or multiply with the q8_K
 * quants per sub-block (vec_dot): plain loops the compiler can vectorize. */

/* sum over sub-blocks j (of len weights, 16 or 32) of sc[j] * sum(q*q8);
 * inlined with a constant len, the inner loop vectorizes */
static inline int scaled_dot(const int8_t q[LM_QK_K], const int8_t q8[LM_QK_K], const int *sc, int len) {
    int sum = 0;
    for (int j = 0; j < LM_QK_K / len; j++) {
        int s = 0;
        for (int l = 0; l < len; l++) s += q[len * j + l] * q8[len * j + l];
        sum += sc[j] * s;
    }
    return sum;
}

/* ---- q2_K: x = d*sc*q - dmin*m, 16 sub-blocks of 16, q in 0..3 ----
 * qs byte 32*h + l holds weights 128*h + 32*k + l in bits 2k..2k+1. */

static void levels_2bit(const uint8_t *restrict qs, int8_t *restrict q) {
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l++) q[128 * h + 32 * k + l] = (int8_t)((qs[32 * h + l] >> (2 * k)) & 3);
}

static void to_f32_q2_K(const void *vx, float *y, int64_t n) {
    const struct lm_block_q2_K *restrict x = vx;
    int8_t q[LM_QK_K];
    for (int64_t i = 0; i < n / LM_QK_K; i++) {
        const float d = F16(x[i].d), dmin = F16(x[i].dmin);
        levels_2bit(x[i].qs, q);
        for (int j = 0; j < 16; j++) {
            const float dl = d * (x[i].scales[j] & 0xf), ml = dmin * (x[i].scales[j] >> 4);
            for (int l = 0; l < 16; l++) *y++ = dl * q[16 * j + l] - ml;
        }
    }
}

static void from_f32_q2_K(const float *x, void *vy, int64_t n) {
    struct lm_block_q2_K *restrict y = vy;
    uint8_t L[LM_QK_K], Laux[16];
    float weights[16], mins[16], scales[16];
    const float q4scale = 15.f;
    for (int64_t i = 0; i < n / LM_QK_K; i++, x += LM_QK_K) {
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 16; j++) {
            for (int l = 0; l < 16; l++) weights[l] = fabsf(x[16 * j + l]);
            scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, true);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        if (max_scale > 0) {
            const float iscale = q4scale / max_scale;
            for (int j = 0; j < 16; j++) y[i].scales[j] = (uint8_t)nearest_int(iscale * scales[j]);
            y[i].d = lm_f32_to_f16(max_scale / q4scale);
        } else {
            memset(y[i].scales, 0, 16);
            y[i].d = lm_f32_to_f16(0.f);
        }
        if (max_min > 0) {
            const float iscale = q4scale / max_min;
            for (int j = 0; j < 16; j++) y[i].scales[j] |= (uint8_t)(nearest_int(iscale * mins[j]) << 4);
            y[i].dmin = lm_f32_to_f16(max_min / q4scale);
        } else {
            y[i].dmin = lm_f32_to_f16(0.f);
        }
        for (int j = 0; j < 16; j++) {
            const float d = F16(y[i].d) * (y[i].scales[j] & 0xf);
            if (!d) continue;
            const float dm = F16(y[i].dmin) * (y[i].scales[j] >> 4);
            for (int ii = 0; ii < 16; ii++) {
                const int l = nearest_int((x[16 * j + ii] + dm) / d);
                L[16 * j + ii] = (uint8_t)imax(0, imin(3, l));
            }
        }
        for (int j = 0; j < LM_QK_K; j += 128)
            for (int l = 0; l < 32; l++)
                y[i].qs[j / 4 + l] = (uint8_t)(L[j + l] | L[j + l + 32] << 2 | L[j + l + 64] << 4 | L[j + l + 96] << 6);
    }
}

static void dot_q2_K_q8_K_ref(int n, float *s, const void *vx, const void *vy) {
    const struct lm_block_q2_K *restrict x = vx;
    const struct lm_block_q8_K *restrict y = vy;
    int8_t q[LM_QK_K];
    int sc[16];
    float sum = 0;
    for (int i = 0; i < n / LM_QK_K; i++) {
        levels_2bit(x[i].qs, q);
        int summs = 0;
        for (int j = 0; j < 16; j++) {
            sc[j] = x[i].scales[j] & 0xf;
            summs += (x[i].scales[j] >> 4) * y[i].bsums[j];
        }
        const int isum = scaled_dot(q, y[i].qs, sc, 16);
        sum += y[i].d * F16(x[i].d) * (float)isum - y[i].d * F16(x[i].dmin) * (float)summs;
    }
    *s = sum;
}

/* ---- q3_K: x = d*sc*(q - 4*!hbit), 16 sub-blocks of 16, 2 low bits as in q2_K ---- */

/* the high bit of weight j is bit j/32 of hmask[j%32] */
static void levels_q3_K(const struct lm_block_q3_K *restrict b, int8_t *restrict q) {
    levels_2bit(b->qs, q);
    for (int j = 0; j < 8; j++)
        for (int l = 0; l < 32; l++) q[32 * j + l] = (int8_t)(q[32 * j + l] - 4 + 4 * ((b->hmask[l] >> j) & 1));
}

static void to_f32_q3_K(const void *vx, float *y, int64_t n) {
    const struct lm_block_q3_K *restrict x = vx;
    int8_t q[LM_QK_K];
    int8_t sc[16];
    for (int64_t i = 0; i < n / LM_QK_K; i++) {
        const float d = F16(x[i].d);
        unpack_q3_K_scales(x[i].scales, sc);
        levels_q3_K(&x[i], q);
        for (int j = 0; j < 256; j++) *y++ = d * (float)sc[j / 16] * (float)q[j];
    }
}

static void from_f32_q3_K(const float *x, void *vy, int64_t n) {
    struct lm_block_q3_K *restrict y = vy;
    int8_t L[LM_QK_K];
    float scales[16];
    for (int64_t i = 0; i < n / LM_QK_K; i++, x += LM_QK_K) {
        float max_scale = 0, amax = 0;
        for (int j = 0; j < 16; j++) {
            scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
            if (fabsf(scales[j]) > amax) {
                amax = fabsf(scales[j]);
                max_scale = scales[j];
            }
        }
        memset(y[i].scales, 0, 12);
        if (max_scale) {
            const float iscale = -32.f / max_scale;
            for (int j = 0; j < 16; j++) {
                const int l = imax(-32, imin(31, (int8_t)nearest_int(iscale * scales[j]))) + 32;
                if (j < 8) y[i].scales[j] = (uint8_t)(l & 0xf);
                else y[i].scales[j - 8] |= (uint8_t)((l & 0xf) << 4);
                y[i].scales[j % 4 + 8] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
            }
            y[i].d = lm_f32_to_f16(1 / iscale);
        } else {
            y[i].d = lm_f32_to_f16(0.f);
        }
        int8_t sc[16];
        unpack_q3_K_scales(y[i].scales, sc);
        for (int j = 0; j < 16; j++) {
            const float d = F16(y[i].d) * (float)sc[j];
            if (!d) continue;
            for (int ii = 0; ii < 16; ii++) {
                const int l = nearest_int(x[16 * j + ii] / d);
                L[16 * j + ii] = (int8_t)(imax(-4, imin(3, l)) + 4);
            }
        }
        /* high bit of weight j goes to bit j/32 of hmask[j%32] */
        memset(y[i].hmask, 0, 32);
        for (int j = 0; j < LM_QK_K; j++)
            if (L[j] > 3) {
                y[i].hmask[j % 32] |= (uint8_t)(1 << (j / 32));
                L[j] = (int8_t)(L[j] - 4);
            }
        for (int j = 0; j < LM_QK_K; j += 128)
            for (int l = 0; l < 32; l++)
                y[i].qs[j / 4 + l] = (uint8_t)(L[j + l] | L[j + l + 32] << 2 | L[j + l + 64] << 4 | L[j + l + 96] << 6);
    }
}

static void dot_q3_K_q8_K_ref(int n, float *s, const void *vx, const void *vy) {
    const struct lm_block_q3_K *restrict x = vx;
    const struct lm_block_q8_K *restrict y = vy;
    int8_t q[LM_QK_K];
    int8_t sc8[16];
    int sc[16];
    float sum = 0;
    for (int i = 0; i < n / LM_QK_K; i++) {
        unpack_q3_K_scales(x[i].scales, sc8);
        for (int j = 0; j < 16; j++) sc[j] = sc8[j];
        levels_q3_K(&x[i], q);
        sum += F16(x[i].d) * y[i].d * (float)scaled_dot(q, y[i].qs, sc, 16);
    }
    *s = sum;
}

/* ---- q4_K, q5_K: x = d*sc*q - dmin*m, 8 sub-blocks of 32 ----
 * qs byte 32*k + l holds weight 64*k + l (low nibble) and 64*k + 32 + l (high). */

/* ggml's q4_K/q5_K search: per sub-block scale and min, weighted by
 * av_x + |x|, then both quantized to 6 bits against the largest. */
static void quant_k4_scales(const float *x, int nmax, float rmin, int nstep, struct lm_block_q4_K *hdr_q4,
                            struct lm_block_q5_K *hdr_q5, uint8_t L[LM_QK_K]) {
    float mins[8], scales[8], weights[32];
    uint8_t Laux[32];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += x[32 * j + l] * x[32 * j + l];
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep, false);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    uint8_t *packed = hdr_q4 ? hdr_q4->scales : hdr_q5->scales;
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < 8; j++) {
        uint8_t ls = (uint8_t)nearest_int(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)nearest_int(inv_min * mins[j]);
        ls = (uint8_t)imin(63, ls);
        lm = (uint8_t)imin(63, lm);
        if (j < 4) {
            packed[j] = ls;
            packed[j + 4] = lm;
        } else {
            packed[j + 4] = (uint8_t)((ls & 0xf) | (lm & 0xf) << 4);
            packed[j - 4] |= (uint8_t)((ls >> 4) << 6);
            packed[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    const uint16_t d = lm_f32_to_f16(max_scale / 63.f), dmin = lm_f32_to_f16(max_min / 63.f);
    if (hdr_q4) {
        hdr_q4->d = d;
        hdr_q4->dmin = dmin;
    } else {
        hdr_q5->d = d;
        hdr_q5->dmin = dmin;
    }
    /* final levels against the rounded scales */
    uint8_t sc[8], m[8];
    unpack_k4_scales(packed, sc, m);
    for (int j = 0; j < 8; j++) {
        const float dl = F16(d) * sc[j];
        if (!dl) continue;
        const float dm = F16(dmin) * m[j];
        for (int ii = 0; ii < 32; ii++) {
            const int l = nearest_int((x[32 * j + ii] + dm) / dl);
            L[32 * j + ii] = (uint8_t)imax(0, imin(nmax, l));
        }
    }
}

static void levels_q4_K(const uint8_t *restrict qs, int8_t *restrict q) {
    for (int k = 0; k < 4; k++)
        for (int l = 0; l < 32; l++) {
            q[64 * k + l] = (int8_t)(qs[32 * k + l] & 0xf);
            q[64 * k + 32 + l] = (int8_t)(qs[32 * k + l] >> 4);
        }
}

/* weight 32*j + l of q5_K takes bit j of qh[l] as its fifth bit */
static void levels_q5_K(const struct lm_block_q5_K *restrict b, int8_t *restrict q) {
    levels_q4_K(b->qs, q);
    for (int j = 0; j < 8; j++)
        for (int l = 0; l < 32; l++) q[32 * j + l] = (int8_t)(q[32 * j + l] | ((b->qh[l] >> j) & 1) << 4);
}

/* x = d*sc*q - dmin*m over 8 sub-blocks of 32 */
static void scale_k4(const uint8_t *packed, uint16_t d16, uint16_t dmin16, const int8_t *restrict q, float *restrict y) {
    const float d = F16(d16), dmin = F16(dmin16);
    uint8_t sc[8], m[8];
    unpack_k4_scales(packed, sc, m);
    for (int j = 0; j < 8; j++) {
        const float dl = d * sc[j], ml = dmin * m[j];
        for (int l = 0; l < 32; l++) y[32 * j + l] = dl * q[32 * j + l] - ml;
    }
}

static void to_f32_q4_K(const void *vx, float *y, int64_t n) {
    const struct lm_block_q4_K *restrict x = vx;
    int8_t q[LM_QK_K];
    for (int64_t i = 0; i < n / LM_QK_K; i++, y += LM_QK_K) {
        levels_q4_K(x[i].qs, q);
        scale_k4(x[i].scales, x[i].d, x[i].dmin, q, y);
    }
}

static void from_f32_q4_K(const float *x, void *vy, int64_t n) {
    struct lm_block_q4_K *restrict y = vy;
    uint8_t L[LM_QK_K];
    for (int64_t i = 0; i < n / LM_QK_K; i++, x += LM_QK_K) {
        quant_k4_scales(x, 15, -1.f, 20, &y[i], NULL, L);
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l++) y[i].qs[32 * k + l] = (uint8_t)(L[64 * k + l] | L[64 * k + 32 + l] << 4);
    }
}

/* The dot of one q4_K/q5_K block's levels with a q8_K block. */
static float dot_k4_block(const uint8_t *packed, uint16_t d, uint16_t dmin, const int8_t q[LM_QK_K],
                          const struct lm_block_q8_K *y) {
    uint8_t sc[8], m[8];
    int sc32[8], summ = 0;
    unpack_k4_scales(packed, sc, m);
    for (int j = 0; j < 8; j++) {
        sc32[j] = sc[j];
        summ += m[j] * (y->bsums[2 * j] + y->bsums[2 * j + 1]);
    }
    const int sumi = scaled_dot(q, y->qs, sc32, 32);
    return F16(d) * y->d * (float)sumi - F16(dmin) * y->d * (float)summ;
}

static void dot_q4_K_q8_K_ref(int n, float *s, const void *vx, const void *vy) {
    const struct lm_block_q4_K *restrict x = vx;
    const struct lm_block_q8_K *restrict y = vy;
    int8_t q[LM_QK_K];
    float sum = 0;
    for (int i = 0; i < n / LM_QK_K; i++) {
        levels_q4_K(x[i].qs, q);
        sum += dot_k4_block(x[i].scales, x[i].d, x[i].dmin, q, &y[i]);
    }
    *s = sum;
}

static void to_f32_q5_K(const void *vx, float *y, int64_t n) {
    const struct lm_block_q5_K *restrict x = vx;
    int8_t q[LM_QK_K];
    for (int64_t i = 0; i < n / LM_QK_K; i++, y += LM_QK_K) {
        levels_q5_K(&x[i], q);
        scale_k4(x[i].scales, x[i].d, x[i].dmin, q, y);
    }
}

static void from_f32_q5_K(const float *x, void *vy, int64_t n) {
    struct lm_block_q5_K *restrict y = vy;
    uint8_t L[LM_QK_K];
    for (int64_t i = 0; i < n / LM_QK_K; i++, x += LM_QK_K) {
        quant_k4_scales(x, 31, -0.5f, 15, NULL, &y[i], L);
        memset(y[i].qh, 0, 32);
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l++) {
                const int l1 = L[64 * k + l], l2 = L[64 * k + 32 + l];
                y[i].qh[l] |= (uint8_t)((l1 >> 4) << (2 * k) | (l2 >> 4) << (2 * k + 1));
                y[i].qs[32 * k + l] = (uint8_t)((l1 & 0xf) | (l2 & 0xf) << 4);
            }
    }
}

static void dot_q5_K_q8_K_ref(int n, float *s, const void *vx, const void *vy) {
    const struct lm_block_q5_K *restrict x = vx;
    const struct lm_block_q8_K *restrict y = vy;
    int8_t q[LM_QK_K];
    float sum = 0;
    for (int i = 0; i < n / LM_QK_K; i++) {
        levels_q5_K(&x[i], q);
        sum += dot_k4_block(x[i].scales, x[i].d, x[i].dmin, q, &y[i]);
    }
    *s = sum;
}

/* ---- q6_K: x = d*sc*(q - 32), 16 sub-blocks of 16, q in 0..63 ----
 * For half h (128 weights) and l < 32: weights l, l+32, l+64, l+96 take the
 * low/high nibbles of ql[64h + l] and ql[64h + 32 + l] and bit pairs
 * 0-1, 2-3, 4-5, 6-7 of qh[32h + l]. */

static void levels_q6_K(const struct lm_block_q6_K *restrict b, int8_t *restrict q) {
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const uint8_t *ql = b->ql + 64 * h, qh = b->qh[32 * h + l];
            int8_t *qq = q + 128 * h;
            qq[l] = (int8_t)(((ql[l] & 0xf) | (qh & 3) << 4) - 32);
            qq[l + 32] = (int8_t)(((ql[l + 32] & 0xf) | (qh >> 2 & 3) << 4) - 32);
            qq[l + 64] = (int8_t)(((ql[l] >> 4) | (qh >> 4 & 3) << 4) - 32);
            qq[l + 96] = (int8_t)(((ql[l + 32] >> 4) | (qh >> 6) << 4) - 32);
        }
}

static void to_f32_q6_K(const void *vx, float *y, int64_t n) {
    const struct lm_block_q6_K *restrict x = vx;
    int8_t q[LM_QK_K];
    for (int64_t i = 0; i < n / LM_QK_K; i++) {
        const float d = F16(x[i].d);
        levels_q6_K(&x[i], q);
        for (int j = 0; j < 256; j++) *y++ = d * x[i].scales[j / 16] * q[j];
    }
}

static void from_f32_q6_K(const float *x, void *vy, int64_t n) {
    struct lm_block_q6_K *restrict y = vy;
    int8_t L[LM_QK_K];
    float scales[16];
    for (int64_t i = 0; i < n / LM_QK_K; i++, x += LM_QK_K) {
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < 16; ib++) {
            scales[ib] = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
            if (fabsf(scales[ib]) > max_abs_scale) {
                max_abs_scale = fabsf(scales[ib]);
                max_scale = scales[ib];
            }
        }
        if (max_abs_scale < GROUP_MAX_EPS) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        const float iscale = -128.f / max_scale;
        y[i].d = lm_f32_to_f16(1 / iscale);
        for (int ib = 0; ib < 16; ib++) y[i].scales[ib] = (int8_t)imin(127, nearest_int(iscale * scales[ib]));
        for (int j = 0; j < 16; j++) {
            const float d = F16(y[i].d) * y[i].scales[j];
            if (!d) continue;
            for (int ii = 0; ii < 16; ii++) {
                const int l = nearest_int(x[16 * j + ii] / d);
                L[16 * j + ii] = (int8_t)(imax(-32, imin(31, l)) + 32);
            }
        }
        for (int h = 0; h < 2; h++) {
            const int8_t *Lh = L + 128 * h;
            for (int l = 0; l < 32; l++) {
                y[i].ql[64 * h + l] = (uint8_t)((Lh[l] & 0xf) | (Lh[l + 64] & 0xf) << 4);
                y[i].ql[64 * h + 32 + l] = (uint8_t)((Lh[l + 32] & 0xf) | (Lh[l + 96] & 0xf) << 4);
                y[i].qh[32 * h + l] = (uint8_t)(Lh[l] >> 4 | (Lh[l + 32] >> 4) << 2 | (Lh[l + 64] >> 4) << 4 | (Lh[l + 96] >> 4) << 6);
            }
        }
    }
}

static void dot_q6_K_q8_K_ref(int n, float *s, const void *vx, const void *vy) {
    const struct lm_block_q6_K *restrict x = vx;
    const struct lm_block_q8_K *restrict y = vy;
    int8_t q[LM_QK_K];
    int sc[16];
    float sum = 0;
    for (int i = 0; i < n / LM_QK_K; i++) {
        levels_q6_K(&x[i], q);
        for (int j = 0; j < 16; j++) sc[j] = x[i].scales[j];
        sum += F16(x[i].d) * y[i].d * (float)scaled_dot(q, y[i].qs, sc, 16);
    }
    *s = sum;
}

/* ---- q8_K: the k-quants' activation format, x = d*q with float d ---- */

static void to_f32_q8_K(const void *vx, float *y, int64_t n) {
    const struct lm_block_q8_K *restrict x = vx;
    for (int64_t i = 0; i < n / LM_QK_K; i++)
        for (int j = 0; j < LM_QK_K; j++) *y++ = x[i].d * x[i].qs[j];
}

static void from_f32_q8_K_ref(const float *x, void *vy, int64_t n) {
    struct lm_block_q8_K *restrict y = vy;
    for (int64_t i = 0; i < n / LM_QK_K; i++, x += LM_QK_K) {
        const float max = x[argmax_abs(x, LM_QK_K)];
        if (!max) { /* ggml leaves bsums unset here; we zero them */
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        /* -127 rather than -128: ggml's AVX code needs |q| <= 127 */
        const float iscale = -127.f / max;
        for (int j = 0; j < LM_QK_K; j++) y[i].qs[j] = (int8_t)imin(127, nearest_int(iscale * x[j]));
        for (int j = 0; j < 16; j++) {
            int sum = 0;
            for (int l = 0; l < 16; l++) sum += y[i].qs[16 * j + l];
            y[i].bsums[j] = (int16_t)sum;
        }
        y[i].d = 1 / iscale;
    }
}

/* ---- the tables ---- */

static const struct lm_type_traits traits_ref[LM_TYPE_COUNT] = {
    [LM_TYPE_F32] = {.name = "f32", .blck = 1, .size = 4, .to_f32 = to_f32_f32, .from_f32 = from_f32_f32,
                     .vec_dot = dot_f32_ref, .vec_dot_type = LM_TYPE_F32},
    [LM_TYPE_F16] = {.name = "f16", .blck = 1, .size = 2, .to_f32 = to_f32_f16_ref, .from_f32 = from_f32_f16,
                     .vec_dot = dot_f16_ref, .vec_dot_type = LM_TYPE_F32},
    [LM_TYPE_Q4_0] = {.name = "q4_0", .blck = 32, .size = sizeof(struct lm_block_q4_0), .to_f32 = to_f32_q4_0,
                      .from_f32 = from_f32_q4_0, .vec_dot = dot_q4_0_q8_0_ref, .vec_dot_type = LM_TYPE_Q8_0},
    [LM_TYPE_Q4_1] = {.name = "q4_1", .blck = 32, .size = sizeof(struct lm_block_q4_1), .to_f32 = to_f32_q4_1,
                      .from_f32 = from_f32_q4_1, .vec_dot = dot_q4_1_q8_1_ref, .vec_dot_type = LM_TYPE_Q8_1},
    [LM_TYPE_Q5_0] = {.name = "q5_0", .blck = 32, .size = sizeof(struct lm_block_q5_0), .to_f32 = to_f32_q5_0,
                      .from_f32 = from_f32_q5_0, .vec_dot = dot_q5_0_q8_0_ref, .vec_dot_type = LM_TYPE_Q8_0},
    [LM_TYPE_Q5_1] = {.name = "q5_1", .blck = 32, .size = sizeof(struct lm_block_q5_1), .to_f32 = to_f32_q5_1,
                      .from_f32 = from_f32_q5_1, .vec_dot = dot_q5_1_q8_1_ref, .vec_dot_type = LM_TYPE_Q8_1},
    [LM_TYPE_Q8_0] = {.name = "q8_0", .blck = 32, .size = sizeof(struct lm_block_q8_0), .to_f32 = to_f32_q8_0,
                      .from_f32 = from_f32_q8_0_ref, .act_from_f32 = act_from_f32_q8_0_ref, .vec_dot = dot_q8_0_q8_0_ref,
                      .vec_dot_type = LM_TYPE_Q8_0},
    [LM_TYPE_Q8_1] = {.name = "q8_1", .blck = 32, .size = sizeof(struct lm_block_q8_1), .to_f32 = to_f32_q8_1,
                      .from_f32 = from_f32_q8_1_ref, .act_from_f32 = act_from_f32_q8_1_ref},
    [LM_TYPE_Q2_K] = {.name = "q2_K", .blck = 256, .size = sizeof(struct lm_block_q2_K), .to_f32 = to_f32_q2_K,
                      .from_f32 = from_f32_q2_K, .vec_dot = dot_q2_K_q8_K_ref, .vec_dot_type = LM_TYPE_Q8_K},
    [LM_TYPE_Q3_K] = {.name = "q3_K", .blck = 256, .size = sizeof(struct lm_block_q3_K), .to_f32 = to_f32_q3_K,
                      .from_f32 = from_f32_q3_K, .vec_dot = dot_q3_K_q8_K_ref, .vec_dot_type = LM_TYPE_Q8_K},
    [LM_TYPE_Q4_K] = {.name = "q4_K", .blck = 256, .size = sizeof(struct lm_block_q4_K), .to_f32 = to_f32_q4_K,
                      .from_f32 = from_f32_q4_K, .vec_dot = dot_q4_K_q8_K_ref, .vec_dot_type = LM_TYPE_Q8_K},
    [LM_TYPE_Q5_K] = {.name = "q5_K", .blck = 256, .size = sizeof(struct lm_block_q5_K), .to_f32 = to_f32_q5_K,
                      .from_f32 = from_f32_q5_K, .vec_dot = dot_q5_K_q8_K_ref, .vec_dot_type = LM_TYPE_Q8_K},
    [LM_TYPE_Q6_K] = {.name = "q6_K", .blck = 256, .size = sizeof(struct lm_block_q6_K), .to_f32 = to_f32_q6_K,
                      .from_f32 = from_f32_q6_K, .vec_dot = dot_q6_K_q8_K_ref, .vec_dot_type = LM_TYPE_Q8_K},
    [LM_TYPE_Q8_K] = {.name = "q8_K", .blck = 256, .size = sizeof(struct lm_block_q8_K), .to_f32 = to_f32_q8_K,
                      .from_f32 = from_f32_q8_K_ref, .act_from_f32 = from_f32_q8_K_ref},
    [LM_TYPE_IQ2_XXS] = {.name = "iq2_xxs", .blck = 256, .size = 66},
    [LM_TYPE_IQ2_XS] = {.name = "iq2_xs", .blck = 256, .size = 74},
    [LM_TYPE_IQ3_XXS] = {.name = "iq3_xxs", .blck = 256, .size = 98},
    [LM_TYPE_IQ1_S] = {.name = "iq1_s", .blck = 256, .size = 50},
    [LM_TYPE_IQ4_NL] = {.name = "iq4_nl", .blck = 32, .size = 18},
    [LM_TYPE_IQ3_S] = {.name = "iq3_s", .blck = 256, .size = 110},
    [LM_TYPE_IQ2_S] = {.name = "iq2_s", .blck = 256, .size = 82},
    [LM_TYPE_IQ4_XS] = {.name = "iq4_xs", .blck = 256, .size = 136},
    [LM_TYPE_I8] = {.name = "i8", .blck = 1, .size = 1},
    [LM_TYPE_I16] = {.name = "i16", .blck = 1, .size = 2},
    [LM_TYPE_I32] = {.name = "i32", .blck = 1, .size = 4},
    [LM_TYPE_I64] = {.name = "i64", .blck = 1, .size = 8},
    [LM_TYPE_F64] = {.name = "f64", .blck = 1, .size = 8},
    [LM_TYPE_IQ1_M] = {.name = "iq1_m", .blck = 256, .size = 56},
    [LM_TYPE_BF16] = {.name = "bf16", .blck = 1, .size = 2, .to_f32 = to_f32_bf16, .from_f32 = from_f32_bf16,
                      .act_from_f32 = from_f32_bf16, .vec_dot = dot_bf16_bf16_ref, .vec_dot_type = LM_TYPE_BF16},
    [LM_TYPE_TQ1_0] = {.name = "tq1_0", .blck = 256, .size = 54},
    [LM_TYPE_TQ2_0] = {.name = "tq2_0", .blck = 256, .size = 66},
    [LM_TYPE_MXFP4] = {.name = "mxfp4", .blck = 32, .size = 17},
};

/* The served table: the reference one with this build's SIMD kernels swapped
 * in, built once on first use. */
static struct lm_type_traits traits[LM_TYPE_COUNT];
static pthread_once_t traits_once = PTHREAD_ONCE_INIT;

static void init_traits(void) {
    memcpy(traits, traits_ref, sizeof traits);
#if LM_QUANTS_AVX2
    lm_quants_avx2_install(traits);
#if LM_QUANTS_AVX512
    lm_quants_avx512_install(traits);
#endif
#elif LM_QUANTS_NEON
    lm_quants_neon_install(traits);
#endif
#ifdef LM_OPENBLAS
    lm_quants_openblas_install(traits);
#endif
}

const struct lm_type_traits *lm_type_get(uint32_t type) {
    if (type >= LM_TYPE_COUNT || !traits_ref[type].name) return NULL;
    pthread_once(&traits_once, init_traits);
    return &traits[type];
}

const struct lm_type_traits *lm_type_get_ref(uint32_t type) {
    if (type >= LM_TYPE_COUNT || !traits_ref[type].name) return NULL;
    return &traits_ref[type];
}

const char *lm_quants_simd(void) { return LM_QUANTS_SIMD_NAME; }

bool lm_gemm_rows_independent(const struct lm_type_traits *t) { return !t->gemm || t->gemm_rows_independent; }

void lm_gemm(const struct lm_type_traits *t, int n, int nr, int nc, float *s, size_t ldc, const void *x, size_t bx,
             const void *y, size_t by) {
    if (t->gemm) {
        t->gemm(n, nr, nc, s, ldc, x, bx, y, by);
        return;
    }
    for (int c = 0; c < nc; c++)
        for (int r = 0; r < nr; r++)
            t->vec_dot(n, &s[(size_t)c * ldc + (size_t)r], (const uint8_t *)x + bx * (size_t)r, (const uint8_t *)y + by * (size_t)c);
}
