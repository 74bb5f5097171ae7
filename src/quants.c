/* quants.c: the weight-format traits table and the scalar reference kernels.
 * SIMD versions live beside the scalar ones and are chosen at compile time. */
#include "lm/quants.h"

#include <math.h>
#include <string.h>

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

static const struct lm_type_traits traits[LM_TYPE_COUNT] = {
    [LM_TYPE_F32] = {.name = "f32", .blck = 1, .size = 4},
    [LM_TYPE_F16] = {.name = "f16", .blck = 1, .size = 2},
    [LM_TYPE_Q4_0] = {.name = "q4_0", .blck = 32, .size = 18},
    [LM_TYPE_Q4_1] = {.name = "q4_1", .blck = 32, .size = 20},
    [LM_TYPE_Q5_0] = {.name = "q5_0", .blck = 32, .size = 22},
    [LM_TYPE_Q5_1] = {.name = "q5_1", .blck = 32, .size = 24},
    [LM_TYPE_Q8_0] = {.name = "q8_0", .blck = 32, .size = 34},
    [LM_TYPE_Q8_1] = {.name = "q8_1", .blck = 32, .size = 36},
    [LM_TYPE_Q2_K] = {.name = "q2_K", .blck = 256, .size = 84},
    [LM_TYPE_Q3_K] = {.name = "q3_K", .blck = 256, .size = 110},
    [LM_TYPE_Q4_K] = {.name = "q4_K", .blck = 256, .size = 144},
    [LM_TYPE_Q5_K] = {.name = "q5_K", .blck = 256, .size = 176},
    [LM_TYPE_Q6_K] = {.name = "q6_K", .blck = 256, .size = 210},
    [LM_TYPE_Q8_K] = {.name = "q8_K", .blck = 256, .size = 292},
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
    [LM_TYPE_BF16] = {.name = "bf16", .blck = 1, .size = 2},
    [LM_TYPE_TQ1_0] = {.name = "tq1_0", .blck = 256, .size = 54},
    [LM_TYPE_TQ2_0] = {.name = "tq2_0", .blck = 256, .size = 66},
    [LM_TYPE_MXFP4] = {.name = "mxfp4", .blck = 32, .size = 17},
};

const struct lm_type_traits *lm_type_get(uint32_t type) {
    if (type >= LM_TYPE_COUNT || !traits[type].name) return NULL;
    return &traits[type];
}
