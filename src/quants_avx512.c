/* quants_avx512.c: AVX-512 (F, BW, VL) kernels, installed over the AVX2
 * ones when the compiler targets AVX-512 as well.
 *
 * The GEMM for float weights (f32, f16, bf16) against f32 activations, in
 * the layout of the AVX2 one (see quants_avx2.c) with vectors twice as wide
 * and twice as many registers: a panel of 32 weight rows, ZP_KC weights
 * long, is widened to f32 once and transposed so that one vector holds 16
 * rows at the same position; the micro-kernel keeps 32 rows x up to
 * ZP_TOKS activation rows of sums in registers and, per position, loads two
 * weight vectors and broadcasts one activation per row, for two FMAs each.
 * Where a core executes 512-bit FMAs at full width (Zen 5, Intel server
 * cores), this doubles the multiply-adds per cycle of the 256-bit kernel.
 * Fewer activation rows (generation): dot products along the rows, with
 * masked loads for the tail. bf16 weights are widened exactly (a shift),
 * so the sums are those of the f32 reference up to summation order; the
 * bf16 dot-product instruction would round the activations to bf16.
 *
 * The 32-weight block formats against 2 to 7 activation rows (generation
 * of a few sequences): see "2 to 7 activation rows" below. */
#include "quants_simd.h"

#if LM_QUANTS_AVX512

#include <immintrin.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

enum zkind { Z_F32, Z_F16, Z_BF16 };

/* Weights [i, i + 16) of a row as f32; m: which of them exist. Plain loads
 * where all do: masked ones, from memory, ran at half the bandwidth. */
static inline __attribute__((always_inline)) __m512 zload(enum zkind k, const uint8_t *row, int i, __mmask16 m) {
    if (k == Z_F32) return m == 0xffff ? _mm512_loadu_ps((const float *)row + i) : _mm512_maskz_loadu_ps(m, (const float *)row + i);
    const __m256i h = m == 0xffff ? _mm256_loadu_si256((const __m256i *)((const uint16_t *)row + i))
                                  : _mm256_maskz_loadu_epi16(m, (const uint16_t *)row + i);
    if (k == Z_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

static inline __mmask16 tail_mask(int m) { return (__mmask16)(m >= 16 ? 0xffff : (1u << m) - 1); }

/* Loops over a tile's rows and columns must be unrolled completely, or the
 * sums live in memory (see quants_avx2.c). */
#ifdef __clang__
#define ZUNROLL
#else
#define ZUNROLL _Pragma("GCC unroll 16")
#endif

/* ---- a few activation rows: R weight rows x C activation rows ---- */
static inline __attribute__((always_inline)) void zdot_step(enum zkind k, const int R, const int C, int i, __mmask16 m,
                                                              const uint8_t *x, size_t bx, const uint8_t *y, size_t by,
                                                              __m512 acc[4][4]) {
    __m512 w[4];
ZUNROLL
    for (int r = 0; r < R; r++) {
        /* one activation row: the weights stream from memory once; fetch
         * the next tile's rows as well as this one's (as the AVX2 gemv does) */
        if (C == 1) _mm_prefetch((const char *)(x + bx * (size_t)(r + R)) + (k == Z_F32 ? 4 : 2) * i, _MM_HINT_T0);
        w[r] = zload(k, x + bx * (size_t)r, i, m);
    }
ZUNROLL
    for (int c = 0; c < C; c++) {
        const __m512 a = zload(Z_F32, y + by * (size_t)c, i, m);
ZUNROLL
        for (int r = 0; r < R; r++) acc[r][c] = _mm512_fmadd_ps(w[r], a, acc[r][c]);
    }
}

static inline __attribute__((always_inline)) void zdot_tile(enum zkind k, const int R, const int C, int n, const uint8_t *x,
                                                              size_t bx, const uint8_t *y, size_t by, float *s, size_t ldc) {
    __m512 acc[4][4];
ZUNROLL
    for (int r = 0; r < R; r++)
ZUNROLL
        for (int c = 0; c < C; c++) acc[r][c] = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) zdot_step(k, R, C, i, 0xffff, x, bx, y, by, acc);
    if (i < n) zdot_step(k, R, C, i, tail_mask(n - i), x, bx, y, by, acc);
ZUNROLL
    for (int r = 0; r < R; r++)
ZUNROLL
        for (int c = 0; c < C; c++) s[ldc * (size_t)c + (size_t)r] = _mm512_reduce_add_ps(acc[r][c]);
}

static inline __attribute__((always_inline)) void zdot(enum zkind k, int n, int nr, int nc, float *s, size_t ldc,
                                                         const uint8_t *x, size_t bx, const uint8_t *y, size_t by) {
    for (int c = 0; c < nc;) {
        const int C = nc - c >= 4 ? 4 : nc - c;
        const uint8_t *yc = y + by * (size_t)c;
        float *sc = s + ldc * (size_t)c;
        int r = 0;
        if (C == 4)
            for (; r + 2 <= nr; r += 2) zdot_tile(k, 2, 4, n, x + bx * (size_t)r, bx, yc, by, sc + r, ldc);
        else if (C == 1)
            for (; r + 4 <= nr; r += 4) zdot_tile(k, 4, 1, n, x + bx * (size_t)r, bx, yc, by, sc + r, ldc);
        for (; r < nr; r++) {
            if (C == 4) zdot_tile(k, 1, 4, n, x + bx * (size_t)r, bx, yc, by, sc + r, ldc);
            else if (C == 3) zdot_tile(k, 1, 3, n, x + bx * (size_t)r, bx, yc, by, sc + r, ldc);
            else if (C == 2) zdot_tile(k, 1, 2, n, x + bx * (size_t)r, bx, yc, by, sc + r, ldc);
            else zdot_tile(k, 1, 1, n, x + bx * (size_t)r, bx, yc, by, sc + r, ldc);
        }
        c += C;
    }
}

/* ---- a batch: packed panels of 32 rows ---- */
#define ZP_KC 256     /* weights per panel row: 32 KB of f32, in L1 beside the activation rows */
#define ZP_TOKS 12    /* activation rows per micro-tile at most: 24 sums + 2 weights in 32 registers */
#define ZP_MIN_TOKS 8 /* fewer, and packing a panel costs more than it saves */
/* The token split in zp_gemm gives tiles of 6..12 rows from 8 rows up. */
_Static_assert(ZP_MIN_TOKS >= 8 && ZP_TOKS == 12, "zp_tile is instantiated for 6..12 activation rows");

/* v[j] (row j, 16 positions) -> v[i] (position i, 16 rows). */
static inline __attribute__((always_inline)) void transpose_16x16(__m512 v[16]) {
    __m512 t[16];
    for (int j = 0; j < 16; j += 2) {
        t[j] = _mm512_unpacklo_ps(v[j], v[j + 1]);
        t[j + 1] = _mm512_unpackhi_ps(v[j], v[j + 1]);
    }
    for (int j = 0; j < 16; j += 4) { /* v[j + q]: rows j..j+3 at positions 4L + q of each 128-bit lane L */
        v[j] = _mm512_shuffle_ps(t[j], t[j + 2], 0x44);
        v[j + 1] = _mm512_shuffle_ps(t[j], t[j + 2], 0xee);
        v[j + 2] = _mm512_shuffle_ps(t[j + 1], t[j + 3], 0x44);
        v[j + 3] = _mm512_shuffle_ps(t[j + 1], t[j + 3], 0xee);
    }
    for (int h = 0; h < 16; h += 8)
        for (int q = 0; q < 4; q++) { /* lanes 0, 2 and 1, 3 of rows h..h+3 and h+4..h+7 */
            t[h + q] = _mm512_shuffle_f32x4(v[h + q], v[h + 4 + q], 0x88);
            t[h + 4 + q] = _mm512_shuffle_f32x4(v[h + q], v[h + 4 + q], 0xdd);
        }
    for (int q = 0; q < 8; q++) {
        v[q] = _mm512_shuffle_f32x4(t[q], t[8 + q], 0x88);
        v[8 + q] = _mm512_shuffle_f32x4(t[q], t[8 + q], 0xdd);
    }
}

/* Weights [k0, k0 + kc) of rows [0, nr) (nr <= 32) into p as f32: two
 * halves of ZP_KC x 16, p[16*ZP_KC*h + 16*i + j] = weight k0 + i of row
 * 16h + j. Rows past nr repeat row nr - 1 (never stored). */
static inline __attribute__((always_inline)) void zp_pack(enum zkind k, int nr, int kc, int k0, const uint8_t *x, size_t bx,
                                                            float *p) {
    const uint8_t *row[32];
    for (int r = 0; r < 32; r++) row[r] = x + bx * (size_t)(r < nr ? r : nr - 1);
    for (int i = 0; i < kc; i += 16) {
        const __mmask16 m = tail_mask(kc - i);
        for (int h = 0; h < 2; h++) {
            __m512 v[16];
ZUNROLL
            for (int j = 0; j < 16; j++) v[j] = zload(k, row[16 * h + j], k0 + i, m);
            transpose_16x16(v);
            const int npos = kc - i < 16 ? kc - i : 16;
            for (int j = 0; j < npos; j++) _mm512_store_ps(p + 16 * ZP_KC * h + 16 * (i + j), v[j]);
        }
    }
}

/* s[c*ldc + r] (+)= sum over the panel of p[r][i] * y[c][i], for rows
 * [0, nr) and C activation rows; add: accumulate onto the previous panels. */
static inline __attribute__((always_inline)) void zp_tile(const int C, int kc, const float *p, const uint8_t *y, size_t by,
                                                            int k0, float *s, size_t ldc, int nr, bool add) {
    __m512 acc[2][ZP_TOKS];
    const float *yc[ZP_TOKS];
ZUNROLL
    for (int c = 0; c < C; c++) {
        acc[0][c] = acc[1][c] = _mm512_setzero_ps();
        yc[c] = (const float *)(y + by * (size_t)c) + k0;
    }
    for (int i = 0; i < kc; i++) {
        __m512 w0 = _mm512_load_ps(p + 16 * i), w1 = _mm512_load_ps(p + 16 * ZP_KC + 16 * i);
        __asm__("" : "+v"(w0), "+v"(w1)); /* in registers, not folded into the FMAs (see quants_avx2.c) */
ZUNROLL
        for (int c = 0; c < C; c++) {
            const __m512 a = _mm512_set1_ps(yc[c][i]);
            acc[0][c] = _mm512_fmadd_ps(w0, a, acc[0][c]);
            acc[1][c] = _mm512_fmadd_ps(w1, a, acc[1][c]);
        }
    }
    const __mmask16 m0 = tail_mask(nr), m1 = tail_mask(nr > 16 ? nr - 16 : 0);
ZUNROLL
    for (int c = 0; c < C; c++) {
        float *o = s + ldc * (size_t)c;
        if (add) {
            acc[0][c] = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, o), acc[0][c]);
            acc[1][c] = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, o + 16), acc[1][c]);
        }
        _mm512_mask_storeu_ps(o, m0, acc[0][c]);
        _mm512_mask_storeu_ps(o + 16, m1, acc[1][c]);
    }
}

static inline __attribute__((always_inline)) void zp_gemm(enum zkind k, int n, int nr, int nc, float *s, size_t ldc,
                                                            const uint8_t *x, size_t bx, const uint8_t *y, size_t by) {
    _Alignas(64) float p[2 * 16 * ZP_KC];
    const int nt = (nc + ZP_TOKS - 1) / ZP_TOKS; /* micro-tiles per panel, of near-equal sizes */
    for (int r = 0; r < nr; r += 32) {
        const int R = nr - r < 32 ? nr - r : 32;
        for (int k0 = 0; k0 < n; k0 += ZP_KC) {
            const int kc = n - k0 < ZP_KC ? n - k0 : ZP_KC;
            zp_pack(k, R, kc, k0, x + bx * (size_t)r, bx, p);
            for (int t = 0, c = 0; t < nt; t++) {
                const int C = (nc - c + (nt - t) - 1) / (nt - t);
                const uint8_t *yc = y + by * (size_t)c;
                float *sc = s + ldc * (size_t)c + r;
                switch (C) {
                case 12: zp_tile(12, kc, p, yc, by, k0, sc, ldc, R, k0 > 0); break;
                case 11: zp_tile(11, kc, p, yc, by, k0, sc, ldc, R, k0 > 0); break;
                case 10: zp_tile(10, kc, p, yc, by, k0, sc, ldc, R, k0 > 0); break;
                case 9: zp_tile(9, kc, p, yc, by, k0, sc, ldc, R, k0 > 0); break;
                case 8: zp_tile(8, kc, p, yc, by, k0, sc, ldc, R, k0 > 0); break;
                case 7: zp_tile(7, kc, p, yc, by, k0, sc, ldc, R, k0 > 0); break;
                default: zp_tile(6, kc, p, yc, by, k0, sc, ldc, R, k0 > 0); break;
                }
                c += C;
            }
        }
    }
}

static inline __attribute__((always_inline)) void zgemm(enum zkind k, int n, int nr, int nc, float *s, size_t ldc,
                                                          const void *x, size_t bx, const void *y, size_t by) {
    if (nc >= ZP_MIN_TOKS) zp_gemm(k, n, nr, nc, s, ldc, x, bx, y, by);
    else zdot(k, n, nr, nc, s, ldc, x, bx, y, by);
}

static void gemm_f32(int n, int nr, int nc, float *s, size_t ldc, const void *x, size_t bx, const void *y, size_t by) {
    zgemm(Z_F32, n, nr, nc, s, ldc, x, bx, y, by);
}
static void gemm_f16(int n, int nr, int nc, float *s, size_t ldc, const void *x, size_t bx, const void *y, size_t by) {
    zgemm(Z_F16, n, nr, nc, s, ldc, x, bx, y, by);
}
static void gemm_bf16(int n, int nr, int nc, float *s, size_t ldc, const void *x, size_t bx, const void *y, size_t by) {
    zgemm(Z_BF16, n, nr, nc, s, ldc, x, bx, y, by);
}

/* ---- 32-weight blocks, 2 to 7 activation rows (generation of a few
 * sequences at once) ----
 * The one-row kernel of quants_avx2.c (gemv_tile) fixes each dot product's
 * arithmetic, which a row must keep whatever rows share its batch: per
 * block, 8 int32 sums of 4 byte products p, acc += (dx*dy) * p in 8 float
 * lanes, mx*sy rounded and summed apart; then hsum(acc) + that sum, per
 * chunk of LM_GEMM_CHUNK blocks. Here two activation rows share a 512-bit
 * vector, one per half: a weight block is decoded once, into both halves,
 * and meets each pair of activation rows in one vpdpbusd, one conversion,
 * one scale multiply and one FMA, lane for lane the one-row kernel's
 * operations. The mx*sy terms of up to 8 activation rows take one multiply
 * and one add. Other row counts go to the AVX2 kernels. */
enum qkind { Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, QKINDS };
#define Q_MAX_PAIRS 4 /* activation rows 2..7 in pairs (an odd last one twice, its copy not stored) */

static void (*avx2_gemm[QKINDS])(int n, int nr, int nc, float *s, size_t ldc, const void *x, size_t bx, const void *y,
                                 size_t by);

static inline size_t q_xsize(enum qkind k) {
    return k == Q4_0 ? sizeof(struct lm_block_q4_0) : k == Q4_1 ? sizeof(struct lm_block_q4_1)
         : k == Q5_0 ? sizeof(struct lm_block_q5_0) : k == Q5_1 ? sizeof(struct lm_block_q5_1)
                     : sizeof(struct lm_block_q8_0);
}
static inline bool q_y_q8_1(enum qkind k) { return k == Q4_1 || k == Q5_1; }
static inline size_t q_ysize(enum qkind k) { return q_y_q8_1(k) ? sizeof(struct lm_block_q8_1) : sizeof(struct lm_block_q8_0); }

/* Unsigned bytes u times signed bytes s, summed in groups of 4 to int32,
 * exactly (as dot_us8 of quants_avx2.c, whose bounds hold here too). */
static inline __m512i zdot_us8(__m512i u, __m512i s) {
#ifdef __AVX512VNNI__
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, s);
#else
    return _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), _mm512_set1_epi16(1));
#endif
}

/* A weight block's 32 weights as bytes in both 256-bit halves (unsigned,
 * w = dx*u + mx; q8_0: signed), and (dx, mx) in lanes 0 and 1 of *dm, from
 * one conversion, as the one-row kernel computes them. */
static inline __attribute__((always_inline)) __m512i q_decode(enum qkind k, const uint8_t *b, __m128 *dm) {
    uint32_t h;
    memcpy(&h, b, 4);
    if (k == Q4_1 || k == Q5_1) *dm = _mm_cvtph_ps(_mm_cvtsi32_si128((int)h));
    else {
        const __m128 d = _mm_cvtph_ps(_mm_set1_epi16((short)(h & 0xffff)));
        *dm = k == Q4_0 ? _mm_mul_ps(d, _mm_setr_ps(1, -8, 0, 0)) : k == Q5_0 ? _mm_mul_ps(d, _mm_setr_ps(1, -16, 0, 0)) : d;
    }
    if (k == Q8_0) return _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(b + offsetof(struct lm_block_q8_0, qs))));
    const size_t qs = k == Q4_0 ? offsetof(struct lm_block_q4_0, qs) : k == Q4_1 ? offsetof(struct lm_block_q4_1, qs)
                    : k == Q5_0 ? offsetof(struct lm_block_q5_0, qs) : offsetof(struct lm_block_q5_1, qs);
    /* 128-bit lanes: low nibbles, high nibbles, low, high */
    __m512i q = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(b + qs)));
    q = _mm512_and_si512(_mm512_mask_srli_epi16(q, 0xff00ff00u, q, 4), _mm512_set1_epi8(0x0f));
    if (k == Q5_0 || k == Q5_1) { /* the fifth bits: bit j for weight j */
        uint32_t qh;
        memcpy(&qh, b + (k == Q5_0 ? offsetof(struct lm_block_q5_0, qh) : offsetof(struct lm_block_q5_1, qh)), 4);
        q = _mm512_mask_add_epi8(q, (__mmask64)qh | (__mmask64)qh << 32, q, _mm512_set1_epi8(0x10));
    }
    return q;
}

/* dyp[16*(P*b + p)]: the d of activation rows 2p and 2p + 1 (or 2p again),
 * 8 times each; sy[8*b + c]: their s, or d*sum(q) for q8_0 rows (q4_0,
 * q5_0), as gemm_y_scales of quants_avx2.c computes them. */
static void q_y_scales(enum qkind k, int nb, int nc, const uint8_t *y, size_t by, float *dyp, float *sy) {
    const int P = (nc + 1) / 2;
    for (int b = 0; b < nb; b++) {
        float d[8];
        for (int c = 0; c < nc; c++) {
            const uint8_t *blk = y + by * (size_t)c + q_ysize(k) * (size_t)b;
            uint16_t h[2];
            memcpy(h, blk, sizeof h);
            d[c] = _cvtsh_ss(h[0]);
            if (q_y_q8_1(k)) sy[8 * b + c] = _cvtsh_ss(h[1]);
            else if (k != Q8_0) {
                const __m256i qy = _mm256_loadu_si256((const __m256i *)(blk + offsetof(struct lm_block_q8_0, qs)));
                const __m512i sum = zdot_us8(_mm512_set1_epi8(1), _mm512_castsi256_si512(qy));
                sy[8 * b + c] = d[c] * (float)_mm512_reduce_add_epi32(sum);
            }
        }
        for (int p = 0; p < P; p++) {
            const float d1 = d[2 * p + 1 < nc ? 2 * p + 1 : 2 * p];
            const __m256d hi = _mm256_castps_pd(_mm256_set1_ps(d1)); /* (F only: no insertf32x8) */
            _mm512_store_ps(dyp + 16 * (P * b + p), _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_set1_ps(d[2 * p])), hi, 1)));
        }
    }
}

/* s[c*ldc + r] (+)= the dot products of R weight rows with the P pairs of
 * activation rows (nc of them) over nb blocks; add: onto the previous chunks. */
static inline __attribute__((always_inline)) void q_tile(enum qkind k, const int R, const int P, int nc, int nb,
                                                           const uint8_t *x, size_t bx, const uint8_t *y, size_t by,
                                                           const float *dyp, const float *sy, float *s, size_t ldc,
                                                           bool add) {
    const size_t xsize = q_xsize(k), ysize = q_ysize(k);
    const size_t yqs = q_y_q8_1(k) ? offsetof(struct lm_block_q8_1, qs) : offsetof(struct lm_block_q8_0, qs);
    const uint8_t *yc[2 * Q_MAX_PAIRS];
    for (int c = 0; c < 2 * P; c++) yc[c] = y + by * (size_t)(c < nc ? c : nc - 1) + yqs;
    __m512 acc[4][Q_MAX_PAIRS];
    __m256 accm[4];
ZUNROLL
    for (int r = 0; r < R; r++) {
        accm[r] = _mm256_setzero_ps();
ZUNROLL
        for (int p = 0; p < P; p++) acc[r][p] = _mm512_setzero_ps();
    }
    for (int b = 0; b < nb; b++) {
        __m512i u[4];
        __mmask64 neg[4];
        __m512 dx[4];
ZUNROLL
        for (int r = 0; r < R; r++) {
            const uint8_t *blk = x + bx * (size_t)r + xsize * (size_t)b;
            _mm_prefetch((const char *)(blk + 16 * bx), _MM_HINT_T0); /* 4 tiles ahead: 1 tile ahead (as the one-row kernel) was slower */
            __m128 dm;
            const __m512i w = q_decode(k, blk, &dm);
            dx[r] = _mm512_broadcastss_ps(dm);
            if (k == Q8_0) { /* the sign moves onto the activations */
                u[r] = _mm512_abs_epi8(w);
                neg[r] = _mm512_movepi8_mask(w);
            } else {
                u[r] = w;
                /* not fused, as in the one-row kernel */
                accm[r] = _mm256_add_ps(accm[r], _mm256_mul_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(dm)), _mm256_load_ps(sy + 8 * b)));
            }
        }
ZUNROLL
        for (int p = 0; p < P; p++) {
            const size_t off = ysize * (size_t)b;
            const __m512i qy = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(yc[2 * p] + off))),
                                                  _mm256_loadu_si256((const __m256i *)(yc[2 * p + 1] + off)), 1);
            const __m512 dy = _mm512_load_ps(dyp + 16 * (P * b + p));
ZUNROLL
            for (int r = 0; r < R; r++) {
                const __m512i sq = k == Q8_0 ? _mm512_mask_sub_epi8(qy, neg[r], _mm512_setzero_si512(), qy) : qy;
                const __m512 pf = _mm512_cvtepi32_ps(zdot_us8(u[r], sq));
                acc[r][p] = _mm512_fmadd_ps(_mm512_mul_ps(dx[r], dy), pf, acc[r][p]);
            }
        }
    }
ZUNROLL
    for (int r = 0; r < R; r++) {
        float m[8];
        _mm256_storeu_ps(m, accm[r]);
ZUNROLL
        for (int c = 0; c < 2 * P; c++) {
            if (c >= nc) break;
            const __m512 a = acc[r][c / 2];
            const float v = hsum_ps(c % 2 ? _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)) : _mm512_castps512_ps256(a)) + (k != Q8_0 ? m[c] : 0.0f);
            float *o = s + ldc * (size_t)c + (size_t)r;
            *o = add ? *o + v : v;
        }
    }
}

static inline __attribute__((always_inline)) void q_few_rows(enum qkind k, const int P, int n, int nr, int nc, float *s,
                                                               size_t ldc, const uint8_t *x, size_t bx, const uint8_t *y,
                                                               size_t by) {
    _Alignas(64) float dyp[LM_GEMM_CHUNK * Q_MAX_PAIRS * 16];
    _Alignas(32) float sy[LM_GEMM_CHUNK * 8] = {0};
    for (int b0 = 0; b0 < n / 32; b0 += LM_GEMM_CHUNK) {
        const int nb = n / 32 - b0 < LM_GEMM_CHUNK ? n / 32 - b0 : LM_GEMM_CHUNK;
        const uint8_t *yb = y + q_ysize(k) * (size_t)b0, *xb = x + q_xsize(k) * (size_t)b0;
        q_y_scales(k, nb, nc, yb, by, dyp, sy);
        int r = 0;
        for (; r + 4 <= nr; r += 4) q_tile(k, 4, P, nc, nb, xb + bx * (size_t)r, bx, yb, by, dyp, sy, s + r, ldc, b0 > 0);
        for (; r < nr; r++) q_tile(k, 1, P, nc, nb, xb + bx * (size_t)r, bx, yb, by, dyp, sy, s + r, ldc, b0 > 0);
    }
}

static inline __attribute__((always_inline)) void q_gemm(enum qkind k, int n, int nr, int nc, float *s, size_t ldc,
                                                           const void *vx, size_t bx, const void *vy, size_t by) {
    const int few = nc % 8 == 1 ? 0 : nc % 8; /* one row: the one-row kernel itself */
    if (nc > few) avx2_gemm[k](n, nr, nc - few, s, ldc, vx, bx, vy, by);
    if (!few) return;
    const uint8_t *x = vx, *y = (const uint8_t *)vy + by * (size_t)(nc - few);
    s += ldc * (size_t)(nc - few);
    switch ((few + 1) / 2) {
    case 1: q_few_rows(k, 1, n, nr, few, s, ldc, x, bx, y, by); break;
    case 2: q_few_rows(k, 2, n, nr, few, s, ldc, x, bx, y, by); break;
    case 3: q_few_rows(k, 3, n, nr, few, s, ldc, x, bx, y, by); break;
    default: q_few_rows(k, 4, n, nr, few, s, ldc, x, bx, y, by); break;
    }
}

static void gemm_q4_0(int n, int nr, int nc, float *s, size_t ldc, const void *x, size_t bx, const void *y, size_t by) {
    q_gemm(Q4_0, n, nr, nc, s, ldc, x, bx, y, by);
}
static void gemm_q4_1(int n, int nr, int nc, float *s, size_t ldc, const void *x, size_t bx, const void *y, size_t by) {
    q_gemm(Q4_1, n, nr, nc, s, ldc, x, bx, y, by);
}
static void gemm_q5_0(int n, int nr, int nc, float *s, size_t ldc, const void *x, size_t bx, const void *y, size_t by) {
    q_gemm(Q5_0, n, nr, nc, s, ldc, x, bx, y, by);
}
static void gemm_q5_1(int n, int nr, int nc, float *s, size_t ldc, const void *x, size_t bx, const void *y, size_t by) {
    q_gemm(Q5_1, n, nr, nc, s, ldc, x, bx, y, by);
}
static void gemm_q8_0(int n, int nr, int nc, float *s, size_t ldc, const void *x, size_t bx, const void *y, size_t by) {
    q_gemm(Q8_0, n, nr, nc, s, ldc, x, bx, y, by);
}

void lm_quants_avx512_install(struct lm_type_traits *t) {
    t[LM_TYPE_F32].gemm = gemm_f32;
    t[LM_TYPE_F16].gemm = gemm_f16;
    t[LM_TYPE_BF16].gemm = gemm_bf16;
    static const enum lm_type types[QKINDS] = {LM_TYPE_Q4_0, LM_TYPE_Q4_1, LM_TYPE_Q5_0, LM_TYPE_Q5_1, LM_TYPE_Q8_0};
    static void (*const gemm[QKINDS])(int, int, int, float *, size_t, const void *, size_t, const void *, size_t) = {
        gemm_q4_0, gemm_q4_1, gemm_q5_0, gemm_q5_1, gemm_q8_0};
    for (int k = 0; k < QKINDS; k++) {
        avx2_gemm[k] = t[types[k]].gemm;
        t[types[k]].gemm = gemm[k];
    }
}

#endif
