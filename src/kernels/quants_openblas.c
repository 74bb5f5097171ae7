/* quants_openblas.c: with `make OPENBLAS=1`, f32 weights' batches (8 or
 * more activation rows, as ops.c splits prompts from generation) go to
 * OpenBLAS's sgemm, installed over this build's own f32 kernel, which
 * keeps generation's few rows (a sgemm call for them was not measured).
 * lm's pool splits a matrix into tiles and each thread calls sgemm on its
 * own, so OpenBLAS runs single-threaded. OpenBLAS has no f16 GEMM; f16 and
 * bf16 weights keep lm's kernels. */
#include "lm/quants.h"
#include "quants_simd.h"

#ifdef LM_OPENBLAS
#include <cblas.h>

/* Activation rows from which a call goes to sgemm */
#define BLAS_MIN_ROWS 8

/* the f32 traits as they were before OpenBLAS came in */
static struct lm_type_traits own_f32;

static void gemm_f32_blas(int n, int nr, int nc, float *s, size_t ldc, const void *x, size_t bx, const void *y,
                          size_t by) {
    if (nc < BLAS_MIN_ROWS) {
        lm_gemm(&own_f32, n, nr, nc, s, ldc, x, bx, y, by);
        return;
    }
    /* s (nc x nr, ldc) = y (nc x n) times x (nr x n) transposed */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nc, nr, n, 1.0f, y, (int)(by / sizeof(float)), x,
                (int)(bx / sizeof(float)), 0.0f, s, (int)ldc);
}

void lm_quants_openblas_install(struct lm_type_traits *t) {
    openblas_set_num_threads(1);
    own_f32 = t[LM_TYPE_F32];
    t[LM_TYPE_F32].gemm = gemm_f32_blas;
    t[LM_TYPE_F32].gemm_rows_independent = false; /* sgemm sums in its own order */
}
#endif
