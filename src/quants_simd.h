/* quants_simd.h: the private link between quants.c and the SIMD kernels.
 * Each SIMD file installs its kernels over the reference ones in the table
 * lm_type_get() serves; which file is used is decided at compile time. */
#ifndef LM_QUANTS_SIMD_H
#define LM_QUANTS_SIMD_H

#include "lm/quants.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define LM_QUANTS_AVX2 1
#else
#define LM_QUANTS_AVX2 0
#endif

/* quants_avx2.c: replaces kernels of t with AVX2 versions. */
void lm_quants_avx2_install(struct lm_type_traits *t);

#endif
