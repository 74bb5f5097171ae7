/* quants_avx512.c: AVX-512 (F, BW, VL) kernels, installed over the AVX2
 * ones when the compiler targets AVX-512 as well.
 *
 * The GEMM for float weights (f32, f16, bf16) against f32 activations, in
 * the layout of the AVX2 one (see quants_avx2.c) with vectors twice as wide
 * and twice as many registers: a panel of 64 weight rows, ZP_KC weights
 * long, is widened to f32 once and transposed so that one vector holds 16
 * rows at the same position; the micro-kernel keeps 64 rows x up to 6
 * activation rows of sums in registers and, per position, loads four
 * weight vectors and broadcasts one activation per row, for four FMAs each
 * (10 loads per 24 FMAs; 32 rows x 12 took 14, and its 12 row pointers
 * did not fit in the general registers: about 85% of the FMA peak on the
 * 1.2B shape's matrices against 92%).
 * Where a core executes 512-bit FMAs at full width (Zen 5, Intel server
 * cores), this doubles the multiply-adds per cycle of the 256-bit kernel.
 * Fewer activation rows (generation): dot products along the rows, with
 * masked loads for the tail, up to 4 activation rows a pass over the
 * weights, each row with the bits it gets alone.
 * bf16 weights take bf16 activations (as in ggml). Where the compiler
 * targets AVX512_BF16, vdpbf16ps multiplies pairs of them into f32 sums, 32
 * multiply-adds an instruction, in the dot products of fewer than 8
 * activation rows and, on AMD's cores, in the panels: these hold pairs of
 * adjacent weights (one 32-bit lane: 16 rows x 2 positions a vector), and
 * the micro-kernel broadcasts a pair of activations (ZP_DP). Intel's cores
 * issue vdpbf16ps at half the FMAs' rate: there (and without AVX512_BF16)
 * the panels widen bf16 exactly (a shift) and go the f32 way; holding
 * pairs, they ran 1.2B bf16 prompts at 0.83 of that speed on an Intel
 * Xeon, while on a Zen 4 the pairs run at twice the widened speed.
 *
 * One to 7 activation rows (generation) of q4_K and q6_K: see "one
 * activation row" below (up to 4 a pass); q4_0, q4_1 and q8_0, any number of activation rows: "a
 * block's products summed to one integer"; q4_K and q6_K against 8 or more
 * activation rows (prompts): "the rows in lanes"; q5_0 and q5_1 against 2
 * or more activation rows, every row with the bits it gets alone: "two or
 * more activation rows". */
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

/* Intel's cores (AVX512_FP16 marks them: Sapphire Rapids on) and AMD's
 * (Zen 4, Zen 5) want different kernels, each measured on both:
 * vdpbf16ps issues at half the FMAs' rate on Intel's (the panels below),
 * and there the one-row bf16 kernels need their software fetches, which on
 * a Zen 4 cost more than they bring (ZF_PLAIN). */
#if defined(__AVX512FP16__)
#define Z_INTEL true
#else
#define Z_INTEL false
#endif

/* bf16 x bf16 through vdpbf16ps: the kernels below step over pairs. */
#if defined(__AVX512BF16__)
#define ZDP(k) ((k) == Z_BF16)
#else
#define ZDP(k) false
#endif
/* The panels too, but for Intel's cores. */
#define ZP_DP(k) (ZDP(k) && !Z_INTEL)
/* The activations' format: bf16 for bf16 weights, else f32. */
#define ZACT(k) ((k) == Z_BF16 ? Z_BF16 : Z_F32)

#if defined(__AVX512BF16__)
static inline __mmask32 tail_mask32(int m) { return m >= 32 ? 0xffffffffu : (1u << m) - 1; }

/* bf16 elements [i, i + 32) of a row, m: which of them exist. */
static inline __attribute__((always_inline)) __m512i zload_bf16x32(const uint8_t *row, int i, __mmask32 m) {
    const uint16_t *h = (const uint16_t *)row + i;
    return m == 0xffffffffu ? _mm512_loadu_si512(h) : _mm512_maskz_loadu_epi16(m, h);
}

static inline __m512 zdpbf16(__m512 acc, __m512i a, __m512i b) { return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b); }
#endif

/* Loops over a tile's rows and columns must be unrolled completely, or the
 * sums live in memory (see quants_avx2.c). */
#ifdef __clang__
#define ZUNROLL
#else
#define ZUNROLL _Pragma("GCC unroll 16")
#endif

/* ---- a batch: packed panels of 64 rows ---- */
#define ZP_RV 4       /* weight vectors per micro-tile: panels of 16 * ZP_RV rows */
#define ZP_ROWS (16 * ZP_RV)
#define ZP_TOKS 6     /* activation rows per micro-tile at most: 24 sums + 4 weights in 32 registers */
#define ZP_KC 256     /* 32-bit units per panel row (f32 weights, or pairs of bf16) */
#define ZP_MIN_TOKS 8 /* fewer, and packing a panel costs more than it saves */
/* The token split in zp_gemm gives tiles of 4..6 rows from 8 rows up. */
_Static_assert(ZP_MIN_TOKS >= 8 && ZP_TOKS == 6, "zp_tile is instantiated for 4..6 activation rows");

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

/* Weights [k0, k0 + kc) of rows [0, nr) (nr <= ZP_ROWS) into p as f32:
 * ZP_RV parts of ZP_KC x 16, p[16*ZP_KC*h + 16*i + j] = weight k0 + i of
 * row 16h + j. vdpbf16ps: the same with pairs, weights k0 + 2i and
 * k0 + 2i + 1 (0 past kc) in the low and high half of
 * p[16*ZP_KC*h + 16*i + j]. Rows past nr repeat row nr - 1 (never stored). */
static inline __attribute__((always_inline)) void zp_pack(enum zkind k, int nr, int kc, int k0, const uint8_t *x, size_t bx,
                                                            float *p) {
    const uint8_t *row[ZP_ROWS];
    for (int r = 0; r < ZP_ROWS; r++) row[r] = x + bx * (size_t)(r < nr ? r : nr - 1);
#if defined(__AVX512BF16__)
    if (ZP_DP(k)) {
        for (int i = 0; i < kc; i += 32) {
            const __mmask32 m = tail_mask32(kc - i);
            for (int h = 0; h < ZP_RV; h++) {
                __m512 v[16];
ZUNROLL
                for (int j = 0; j < 16; j++) v[j] = _mm512_castsi512_ps(zload_bf16x32(row[16 * h + j], k0 + i, m));
                transpose_16x16(v);
                const int npairs = kc - i < 32 ? (kc - i + 1) / 2 : 16;
                for (int j = 0; j < npairs; j++) _mm512_store_ps(p + 16 * ZP_KC * h + 16 * (i / 2 + j), v[j]);
            }
        }
        return;
    }
#endif
    for (int i = 0; i < kc; i += 16) {
        const __mmask16 m = tail_mask(kc - i);
        for (int h = 0; h < ZP_RV; h++) {
            __m512 v[16];
ZUNROLL
            for (int j = 0; j < 16; j++) v[j] = zload(k, row[16 * h + j], k0 + i, m);
            transpose_16x16(v);
            const int npos = kc - i < 16 ? kc - i : 16;
            for (int j = 0; j < npos; j++) _mm512_store_ps(p + 16 * ZP_KC * h + 16 * (i + j), v[j]);
        }
    }
}

/* 32 bits of activations at element i of row y in every lane: an f32, a
 * bf16 widened (the low half of the 32 bits at i, shifted up), or for
 * vdpbf16ps the pair i, i + 1. last: i is the panel's last element, whose
 * neighbour may lie past the row: loaded alone (its pair's weight is 0). */
static inline __attribute__((always_inline)) __m512 zp_bcast(enum zkind k, const uint8_t *y, int i, bool last) {
    if (k != Z_BF16) return _mm512_set1_ps(((const float *)y)[i]);
    const uint16_t *yh = (const uint16_t *)y + i;
    int32_t v;
    if (last) v = *yh;
    else memcpy(&v, yh, 4);
    return _mm512_castsi512_ps(ZP_DP(k) ? _mm512_set1_epi32(v) : _mm512_slli_epi32(_mm512_set1_epi32(v), 16));
}

/* One 32-bit unit i of the panel (position k0 + i, or pair k0 + 2i, 2i + 1)
 * for C activation rows. */
static inline __attribute__((always_inline)) void zp_step(enum zkind k, const int C, const float *p, int i, const uint8_t *y,
                                                            size_t by, bool last, __m512 acc[ZP_RV][ZP_TOKS]) {
    __m512 w[ZP_RV];
ZUNROLL
    for (int h = 0; h < ZP_RV; h++) {
        w[h] = _mm512_load_ps(p + 16 * ZP_KC * h + 16 * i);
        __asm__("" : "+v"(w[h])); /* in registers, not folded into the FMAs (see quants_avx2.c) */
    }
ZUNROLL
    for (int c = 0; c < C; c++) {
        const __m512 a = zp_bcast(k, y + by * (size_t)c, ZP_DP(k) ? 2 * i : i, last);
ZUNROLL
        for (int h = 0; h < ZP_RV; h++) {
#if defined(__AVX512BF16__)
            if (ZP_DP(k)) {
                acc[h][c] = zdpbf16(acc[h][c], _mm512_castps_si512(w[h]), _mm512_castps_si512(a));
                continue;
            }
#endif
            acc[h][c] = _mm512_fmadd_ps(w[h], a, acc[h][c]);
        }
    }
}

/* s[c*ldc + r] (+)= sum over the panel of p[r][i] * y[c][k0 + i], for rows
 * [0, nr), C activation rows and kc weights; add: accumulate onto the
 * previous panels. */
static inline __attribute__((always_inline)) void zp_tile(enum zkind k, const int C, int kc, const float *p, const uint8_t *y,
                                                            size_t by, int k0, float *s, size_t ldc, int nr, bool add) {
    __m512 acc[ZP_RV][ZP_TOKS];
ZUNROLL
    for (int h = 0; h < ZP_RV; h++)
ZUNROLL
        for (int c = 0; c < C; c++) acc[h][c] = _mm512_setzero_ps();
    /* the sums to add onto, fetched while the tile computes: they were last
     * touched a whole chunk ago, and waiting for them cost 5% */
    if (add)
ZUNROLL
        for (int c = 0; c < C; c++)
ZUNROLL
            for (int h = 0; h < ZP_RV; h++) _mm_prefetch((const char *)(s + ldc * (size_t)c + 16 * h), _MM_HINT_T0);
    y += (k == Z_BF16 ? 2 : 4) * (size_t)k0;
    /* bf16 activations: the last unit's may end the row (see zp_bcast);
     * for vdpbf16ps only an odd one does */
    const int units = ZP_DP(k) ? kc / 2 : k == Z_BF16 ? kc - 1 : kc;
    for (int i = 0; i < units; i++) zp_step(k, C, p, i, y, by, false, acc);
    if (ZP_DP(k) ? kc % 2 : k == Z_BF16) zp_step(k, C, p, units, y, by, true, acc);
ZUNROLL
    for (int h = 0; h < ZP_RV; h++) {
        const __mmask16 m = tail_mask(nr > 16 * h ? nr - 16 * h : 0);
ZUNROLL
        for (int c = 0; c < C; c++) {
            float *o = s + ldc * (size_t)c + 16 * h;
            if (add) acc[h][c] = _mm512_add_ps(_mm512_maskz_loadu_ps(m, o), acc[h][c]);
            _mm512_mask_storeu_ps(o, m, acc[h][c]);
        }
    }
}

/* Every panel of a chunk of ZP_KC units, then the next chunk: the chunk of
 * activations (nc rows of 1 KB) stays in L2 for all of them. While a panel's
 * micro-tiles run, each fetches a share of the next panel's weights (from
 * memory, without it packing waited: 5% on f16 rows 8192 long, 8% on bf16). */
static inline __attribute__((always_inline)) void zp_gemm(enum zkind k, int n, int nr, int nc, float *s, size_t ldc,
                                                            const uint8_t *x, size_t bx, const uint8_t *y, size_t by) {
    _Alignas(64) float p[ZP_RV * 16 * ZP_KC];
    const int nt = (nc + ZP_TOKS - 1) / ZP_TOKS; /* micro-tiles per panel, of near-equal sizes */
    const int kc_max = ZP_DP(k) ? 2 * ZP_KC : ZP_KC;
    const int esz = k == Z_F32 ? 4 : 2;
    for (int k0 = 0; k0 < n; k0 += kc_max) {
        const int kc = n - k0 < kc_max ? n - k0 : kc_max;
        for (int r = 0; r < nr; r += ZP_ROWS) {
            const int R = nr - r < ZP_ROWS ? nr - r : ZP_ROWS;
            zp_pack(k, R, kc, k0, x + bx * (size_t)r, bx, p);
            /* the next panel: the next rows, or the first ones at the next chunk */
            const int r1 = r + ZP_ROWS < nr ? r + ZP_ROWS : 0, k1 = r1 ? k0 : k0 + kc_max;
            const int rows1 = k1 < n ? (nr - r1 < ZP_ROWS ? nr - r1 : ZP_ROWS) : 0;
            const int bytes1 = rows1 ? (n - k1 < kc_max ? n - k1 : kc_max) * esz : 0; /* of each row */
            const uint8_t *x1 = rows1 ? x + bx * (size_t)r1 + (size_t)esz * (size_t)k1 : x;
            for (int t = 0, c = 0; t < nt; t++) {
                for (int q = t * rows1 / nt; q < (t + 1) * rows1 / nt; q++)
                    for (int b = 0; b < bytes1; b += 64) _mm_prefetch((const char *)x1 + bx * (size_t)q + b, _MM_HINT_T0);
                const int C = (nc - c + (nt - t) - 1) / (nt - t);
                const uint8_t *yc = y + by * (size_t)c;
                float *sc = s + ldc * (size_t)c + r;
                switch (C) {
                case 6: zp_tile(k, 6, kc, p, yc, by, k0, sc, ldc, R, k0 > 0); break;
                case 5: zp_tile(k, 5, kc, p, yc, by, k0, sc, ldc, R, k0 > 0); break;
                default: zp_tile(k, 4, kc, p, yc, by, k0, sc, ldc, R, k0 > 0); break;
                }
                c += C;
            }
        }
    }
}

/* How far ahead of the reads the quantized one-row kernels fetch the
 * weights, in bytes (on a Zen 5): a tile's rows are separate streams that the hardware prefetcher
 * alone served at half the speed (q4_0, q8_0). Fetched a number of rows
 * ahead (8), the distance was a few KB on short rows and the kernels read
 * the 135M shape's matrices at 18 GB/s on one core; in address order, 16 KB
 * ahead: 28 (8 KB: 26, 32 KB: 27; q8_0 25 -> 33). */
#define Z_FETCH_AHEAD 16384
/* The float rows' distance: on an Intel Xeon (2 cores, 15 GB/s a core),
 * 16 KB into L1 left 1.2B f16 generation at 5.2 t/s on one core, 0.93 of
 * llama.cpp's; 3 KB gave 7.0 (f16) and 7.0 for 6.1 (bf16), two threads
 * alike (the quantized kernels: no better at 1-8 KB). On a Zen 4 the f16
 * rows (and f32 with them, not measured apart) go as the quantized ones,
 * 16 KB ahead into L2: 1.2B f16 generation 8.3 -> 9.1-11.2 t/s on one
 * core in four runs (llama.cpp 8.1; 8, 12 and 24 KB alike), on two 14-15
 * -> 13-20 as the machine's shared bandwidth swings (llama.cpp 12-14);
 * bf16 rows ran faster left to the hardware prefetcher (1.2B bf16 tg 8.7
 * -> 10.4 t/s on one core, 13.3 -> 14.7 on two, 135M +3-12%; fetched 16 KB
 * ahead into L2, still 7% slower). 0: no fetch. ZF_PLAIN: the rows read as llama.cpp's loop reads
 * them (no fetch, two sums). */
#define ZF_PLAIN(k) ((k) == Z_BF16 && !Z_INTEL)
#define ZF_FETCH_AHEAD(k) (ZF_PLAIN(k) ? 0 : Z_INTEL ? 3072 : Z_FETCH_AHEAD)
/* Sums a row: those bf16 rows also ran faster with two (64 weights a
 * step, llama.cpp's loop) than with four: 1.2B tg 9.6 -> 10.3 t/s on one
 * core, 13.6 -> 14.0 on two (8 alternating pairs). */
#define ZF_SUMS(k) (ZF_PLAIN(k) ? 2 : 4)

/* The cache lines of the next `used` bytes at *pf, which moves past them:
 * the weights read a fixed distance ahead, as one stream in the order of
 * their addresses, into L1 or (to_l2) only L2. Lines a step leaves partly
 * ahead are fetched again by the next. */
static inline __attribute__((always_inline)) void z_fetch(const char **pf, size_t used, bool to_l2) {
    for (size_t o = 0; o < used; o += 64) {
        if (to_l2) _mm_prefetch(*pf + o, _MM_HINT_T1);
        else _mm_prefetch(*pf + o, _MM_HINT_T0);
    }
    *pf += used;
}

/* f16 weights in generation: the activation row rounded to f16 first, as
 * llama.cpp's f16 dot product does. Half the bytes loaded beside each
 * weight: on a Zen 4, f32 activations left 1.2B f16 generation at 0.5-0.7
 * of llama.cpp's speed (6.4 t/s on one core, 9.7 with f16). Not for rows
 * longer than the buffer or with a value beyond f16's range (it would be
 * infinite): those keep f32. */
#define ZF16_ACT_MAX 16384
static bool zf16_acts(int n, const float *y, uint16_t *yh, float *yr) {
    if (n > ZF16_ACT_MAX) return false;
    __m512 mx = _mm512_setzero_ps();
    for (int i = 0; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i);
        const __m512 v = _mm512_maskz_loadu_ps(m, y + i);
        mx = _mm512_max_ps(mx, _mm512_abs_ps(v));
        const __m256i h = _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        if (yh) _mm256_mask_storeu_epi16(yh + i, m, h);
        if (yr) _mm512_mask_storeu_ps(yr + i, m, _mm512_cvtph_ps(h));
    }
    return _mm512_reduce_max_ps(mx) <= 65504.0f;
}

/* 1 to 4 activation rows (generation of one or a few sequences), ys[c]
 * in format ka: weight row after weight row, the weights one stream
 * fetched ahead in address order (z_fetch) and read once for all the
 * rows, four sums a pair of rows. Four weight rows at a time, each its own
 * stream, left 1.2B bf16 generation at 0.92-1.00 of llama.cpp's row-by-row
 * loop; this reads as fast as it (1.00-1.04, f16 and bf16, 1 and 2
 * threads). Each activation row takes the operations, in the order, it
 * takes alone, so that the sequences of a step of lm serve get their bits
 * whatever the others. */
static inline __attribute__((always_inline)) void zrows_float(enum zkind k, enum zkind ka, const int C, int n, int nr,
                                                                float *s, size_t ldc, const uint8_t *x, size_t bx,
                                                                const uint8_t *const ys[]) {
    const int per = ZDP(k) ? 32 : 16, esz = k == Z_F32 ? 4 : 2;
    const int U = ZF_SUMS(k);
    const char *end = (const char *)x + bx * (size_t)nr; /* the rows past it are another task's: no fetch */
    for (int r = 0; r < nr; r++) {
        const uint8_t *row = x + bx * (size_t)r;
        const char *pf = (const char *)row + ZF_FETCH_AHEAD(k);
        __m512 acc[4][4];
ZUNROLL
        for (int c = 0; c < C; c++)
ZUNROLL
            for (int v = 0; v < 4; v++) acc[c][v] = _mm512_setzero_ps();
        int i = 0;
        for (; i + U * per <= n; i += U * per) {
            if (ZF_FETCH_AHEAD(k) && pf < end) z_fetch(&pf, (size_t)(U * per * esz), !Z_INTEL);
ZUNROLL
            for (int v = 0; v < U; v++) {
#if defined(__AVX512BF16__)
                if (ZDP(k)) {
                    const __m512i w = zload_bf16x32(row, i + v * per, 0xffffffffu);
ZUNROLL
                    for (int c = 0; c < C; c++) acc[c][v] = zdpbf16(acc[c][v], w, zload_bf16x32(ys[c], i + v * per, 0xffffffffu));
                    continue;
                }
#endif
                const __m512 w = zload(k, row, i + v * per, 0xffff);
ZUNROLL
                for (int c = 0; c < C; c++) acc[c][v] = _mm512_fmadd_ps(w, zload(ka, ys[c], i + v * per, 0xffff), acc[c][v]);
            }
        }
        for (; i < n; i += per) {
#if defined(__AVX512BF16__)
            if (ZDP(k)) {
                const __mmask32 m = tail_mask32(n - i);
                const __m512i w = zload_bf16x32(row, i, m);
ZUNROLL
                for (int c = 0; c < C; c++) acc[c][0] = zdpbf16(acc[c][0], w, zload_bf16x32(ys[c], i, m));
                continue;
            }
#endif
            const __mmask16 m = tail_mask(n - i);
            const __m512 w = zload(k, row, i, m);
ZUNROLL
            for (int c = 0; c < C; c++) acc[c][0] = _mm512_fmadd_ps(w, zload(ka, ys[c], i, m), acc[c][0]);
        }
ZUNROLL
        for (int c = 0; c < C; c++)
            s[ldc * (size_t)c + (size_t)r] =
                _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[c][0], acc[c][1]), _mm512_add_ps(acc[c][2], acc[c][3])));
    }
}

/* 1 to ZP_MIN_TOKS - 1 activation rows through zrows_float, 4 at a time.
 * For f16 weights each row is rounded to f16 first where it can be
 * (zf16_acts), as alone: one row is read as f16 (half the bytes beside the
 * weights), the rows of a pass as floats up to ZF16_F32_MAX weights (4 rows
 * of f16 weights in L2 on an Intel Xeon: 62 GMAC/s against 30 as f16,
 * each converted where used), longer ones as f16, as many as agree. */
#define ZF16_F32_MAX 4096

/* zrows_float for C (1-4) rows, C a constant within */
static inline __attribute__((always_inline)) void zrows_float_c(enum zkind k, enum zkind ka, int C, int n, int nr,
                                                                  float *s, size_t ldc, const uint8_t *x, size_t bx,
                                                                  const uint8_t *const ys[]) {
    switch (C) {
    case 1: zrows_float(k, ka, 1, n, nr, s, ldc, x, bx, ys); break;
    case 2: zrows_float(k, ka, 2, n, nr, s, ldc, x, bx, ys); break;
    case 3: zrows_float(k, ka, 3, n, nr, s, ldc, x, bx, ys); break;
    default: zrows_float(k, ka, 4, n, nr, s, ldc, x, bx, ys); break;
    }
}

static inline __attribute__((always_inline)) void zgemv_float(enum zkind k, int n, int nr, int nc, float *s, size_t ldc,
                                                                const uint8_t *x, size_t bx, const uint8_t *y, size_t by) {
    union {
        _Alignas(64) uint16_t h[4][ZF16_ACT_MAX];
        float f[4][ZF16_F32_MAX];
    } rounded;
    for (int c = 0; c < nc;) {
        const uint8_t *ys[4];
        enum zkind ka = ZACT(k);
        int C = nc - c < 4 ? nc - c : 4;
        const bool as_f32 = C > 1 && n <= ZF16_F32_MAX;
        for (int j = 0; j < C; j++) {
            const uint8_t *yc = y + by * (size_t)(c + j);
            ys[j] = yc;
            if (k != Z_F16) continue;
            const bool r16 = zf16_acts(n, (const float *)yc, as_f32 ? NULL : rounded.h[j], as_f32 ? rounded.f[j] : NULL);
            const enum zkind kj = r16 && !as_f32 ? Z_F16 : Z_F32;
            if (j && kj != ka) {
                C = j;
                break;
            }
            ka = kj;
            if (r16) ys[j] = as_f32 ? (const uint8_t *)rounded.f[j] : (const uint8_t *)rounded.h[j];
        }
        float *sc = s + ldc * (size_t)c;
        if (ka == Z_F16) zrows_float_c(k, Z_F16, C, n, nr, sc, ldc, x, bx, ys);
        else zrows_float_c(k, ZACT(k), C, n, nr, sc, ldc, x, bx, ys);
        c += C;
    }
}

static inline __attribute__((always_inline)) void zgemm(enum zkind k, int n, int nr, int nc, float *s, size_t ldc,
                                                          const void *x, size_t bx, const void *y, size_t by) {
    if (nc >= ZP_MIN_TOKS) zp_gemm(k, n, nr, nc, s, ldc, x, bx, y, by);
    else zgemv_float(k, n, nr, nc, s, ldc, x, bx, y, by);
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

/* Activations for bf16 weights: lm_f32_to_bf16, 16 at a time (round to
 * nearest even; NaN stays a quiet NaN). */
static void act_from_f32_bf16(const float *x, void *vy, int64_t n) {
    uint16_t *y = vy;
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i > 16 ? 16 : (int)(n - i));
        const __m512i u = _mm512_castps_si512(_mm512_maskz_loadu_ps(m, x + i));
        const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
        const __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff))), 16);
        const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
        const __m512i quiet = _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
        _mm256_mask_storeu_epi16(y + i, m, _mm512_cvtepi32_epi16(_mm512_mask_mov_epi32(rounded, nan, quiet)));
    }
}

/* ---- one activation row (generation) for q4_K and q6_K ----
 * Generation streams every weight once, and two cores together read less
 * than the 256-bit kernels could compute, yet those spent about half of
 * each core's time on instructions: the 4-bit formats reached 60-70% of
 * the read bandwidth where f16 reached over 90%. Here the integer dot
 * products of 64 weights take one 512-bit step (four sub-blocks of q4_K's
 * in two steps, four of q6_K's in one), and vpdpwssd multiplies each
 * step's int32 sums (below 2^15) by their sub-blocks' scales into one
 * integer sum a super-block, converted once: on a Zen 4, where
 * conversions, shuffles and multiplies share few ports, the float scales
 * per step left 1.2B q4_K_M generation 4% slower. */

/* acc + the products of unsigned bytes u and signed bytes s (activations:
 * |s| <= 127), in groups of 4. Without VNNI, vpmaddubsw's int16 pair sums
 * would saturate for u > 128 (wide: q8_0's w + 128), so those go in two
 * parts, u's top bit and the rest. */
static inline __m512i zdpbusd(__m512i acc, __m512i u, __m512i s, bool wide) {
#if defined(__AVX512VNNI__)
    (void)wide;
    return _mm512_dpbusd_epi32(acc, u, s);
#else
    const __m512i ones = _mm512_set1_epi16(1), top = _mm512_set1_epi8((char)0x80);
    if (!wide) return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), ones));
    return _mm512_add_epi32(acc, _mm512_add_epi32(_mm512_madd_epi16(_mm512_maddubs_epi16(_mm512_andnot_si512(top, u), s), ones),
                                                  _mm512_madd_epi16(_mm512_maddubs_epi16(_mm512_and_si512(top, u), s), ones)));
#endif
}

/* zdpbusd in 256 bits */
static inline __m256i zdpbusd256(__m256i acc, __m256i u, __m256i s, bool wide) {
#if defined(__AVX512VNNI__)
    (void)wide;
    return _mm256_dpbusd_epi32(acc, u, s);
#else
    const __m256i ones = _mm256_set1_epi16(1), top = _mm256_set1_epi8((char)0x80);
    if (!wide) return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), ones));
    return _mm256_add_epi32(acc, _mm256_add_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_andnot_si256(top, u), s), ones),
                                                  _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_and_si256(top, u), s), ones)));
#endif
}

/* Unsigned bytes u times signed bytes s, summed in groups of 4 to int32
 * (the AVX2 kernels' dot_us8, twice as wide). */
static inline __m512i zdot_us8(__m512i u, __m512i s) { return zdpbusd(_mm512_setzero_si512(), u, s, false); }

/* acc + the products of the int16 pairs of a and b, summed in pairs. */
static inline __m512i zdpwssd(__m512i acc, __m512i a, __m512i b) {
#if defined(__AVX512VNNI__)
    return _mm512_dpwssd_epi32(acc, a, b);
#else
    return _mm512_add_epi32(acc, _mm512_madd_epi16(a, b));
#endif
}

/* zdot_us8's sums as floats, exactly. With VNNI the products accumulate
 * onto ZMAGIC, the bits of 1.5 * 2^23, and zsum_ps's subtraction leaves
 * each sum (|sum| < 2^22) as the float vcvtdq2ps gives. In place of the
 * conversion it sped small q4_1 batches up 6-20% on an Intel Xeon. */
#define ZMAGIC 0x4B400000
static inline __m512 zsum_ps(__m512i magic_sum) {
    return _mm512_sub_ps(_mm512_castsi512_ps(magic_sum), _mm512_set1_ps(12582912.0f));
}
static inline __m512 zdot_us8_ps(__m512i u, __m512i s) {
#if defined(__AVX512VNNI__)
    return zsum_ps(_mm512_dpbusd_epi32(_mm512_set1_epi32(ZMAGIC), u, s));
#else
    return _mm512_cvtepi32_ps(zdot_us8(u, s));
#endif
}

static inline float zf16(uint16_t h) { return _cvtsh_ss(h); }

#if defined(__GFNI__)
/* The bits of each byte rearranged by one affine bit operation: a bit
 * matrix per 64-bit lane, a in the lanes not set in hi, b in those set.
 * Bit i of a result byte is the matrix's byte 7 - i ANDed with the input
 * byte (its parity), so a byte 1 << j there moves bit j to bit i and a 0
 * clears it; the rest of a byte's bits are cleared. */
static inline __m512i zbits(__m512i v, __mmask8 hi, long long a, long long b) {
    return _mm512_gf2p8affine_epi64_epi8(v, _mm512_mask_blend_epi64(hi, _mm512_set1_epi64(a), _mm512_set1_epi64(b)), 0);
}
#endif

/* Each byte's low nibble, or in the 64-bit lanes set in hi its high one,
 * as a byte 0..15. With GFNI one operation where a shift and a mask took
 * two. */
static inline __m512i znibbles(__m512i v, __mmask8 hi) {
#if defined(__GFNI__)
    return zbits(v, hi, 0x0102040800000000LL, 0x1020408000000000LL);
#else
    return _mm512_and_si512(_mm512_mask_srli_epi64(v, hi, v, 4), _mm512_set1_epi8(0x0f));
#endif
}

/* The 32-weight block formats */
enum qkind { Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, QKINDS };

static inline size_t q_xsize(enum qkind k) {
    return k == Q4_0 ? sizeof(struct lm_block_q4_0) : k == Q4_1 ? sizeof(struct lm_block_q4_1)
         : k == Q5_0 ? sizeof(struct lm_block_q5_0) : k == Q5_1 ? sizeof(struct lm_block_q5_1)
                     : sizeof(struct lm_block_q8_0);
}
static inline bool q_y_q8_1(enum qkind k) { return k == Q4_1 || k == Q5_1; }
static inline size_t q_ysize(enum qkind k) { return q_y_q8_1(k) ? sizeof(struct lm_block_q8_1) : sizeof(struct lm_block_q8_0); }
/* The formats whose block products sum to one integer (below), and what
 * comes off that sum per unit of sum(y) */
static inline bool q_int_sums(enum qkind k) { return k == Q4_0 || k == Q4_1 || k == Q8_0; }
static inline int q_int_offset(enum qkind k) { return k == Q4_0 ? 8 : k == Q8_0 ? 128 : 0; }

/* ---- q4_0, q4_1 and q8_0, any number of activation rows: a block's
 * products summed to one integer ----
 * What every q4_0, q4_1 and q8_0 kernel below gives, for a weight row and
 * an activation row: per block, T = sum(q * y) in int32 (exact; q4_0:
 * sum((q - 8) * y)) and S = dx*dy (rounded); within a chunk of LM_GEMM_CHUNK
 * blocks, sum k (k = 0..3) gathers S*T of the chunk's blocks 4i + k, one
 * FMA each, in order, from +0, each followed for q4_1 by its block's m
 * term mx*sy (exact: a product of two f16 values, so fused or not alike),
 * one FMA (in sums of their own, the 4 more vectors and their additions
 * left 4 activation rows 4-7% slower); the chunk adds (sum 0 + sum 1) +
 * (sum 2 + sum 3) to the row's result. So a row gets the same bits
 * whatever rows share its call (lm serve's batches). Before, these formats kept the AVX2 one-row kernel's 8
 * int32 sums a block, each converted, scaled and FMA'd: on a Zen 4 core the
 * FMA, the multiply and vpdpbusd share one issue slot, and 1.2B q4_0
 * generation on one thread was bound by them at 0.86-0.95 of llama.cpp's
 * speed (17-19 GB/s from L2; now 25). Here two vectors hold 4 blocks of
 * one weight row, weights 0-15 of each block in one and 16-31 in the
 * other, whose products vpdpbusd sums into the same 4 lanes a block; the
 * lane sums of each block are added as integers for 4 rows at once (packs
 * to int16 for 4-bit weights, unpacks for q8_0's, and adds), so one
 * conversion, one multiply and one FMA serve 16 blocks. The weights meet
 * the activations as unsigned bytes: q4_0's nibbles are q + 8 and q8_0's
 * bytes w + 128 (their top bit flipped), so 8 * sum(y) or 128 * sum(y)
 * comes off each integer sum, rather than a float term of its own. */

/* Blocks 4g..4g + 3 of an activation row (group g), laid out as the
 * weights' vectors (z0_weights): lo, hi: y[0..15] and y[16..31] of block k
 * at bytes 16k..16k + 15 (they meet the weights' low and high nibbles,
 * q8_0's first and second 16 bytes); or in pairs, y[s]: bytes 8s..8s + 7
 * of block k twice, there (they meet those weights of two weight rows);
 * off: what comes off block k's integer sum (8 or 128 * sum(y); q4_1: 0),
 * dy, sy: its d and (q8_1) s, in lanes 4k..4k + 3. Blocks past the row's
 * end are zero. */
struct z0_acts {
    union {
        struct {
            __m512i lo, hi;
        };
        __m512i y[4];
    };
    __m512i off;
    __m512 dy, sy;
};

/* Each block's parts go to its 128-bit lane by masked broadcasts (where
 * building the vectors in memory took 3% of a step of 4 sequences). */
static void z0_pack(enum qkind k, int nb, const uint8_t *y, bool pairs, struct z0_acts *a) {
    const size_t ys = q_ysize(k), yqs = q_y_q8_1(k) ? offsetof(struct lm_block_q8_1, qs) : offsetof(struct lm_block_q8_0, qs);
    for (int g = 0; g < (nb + 3) / 4; g++) {
        __m512i lo = _mm512_setzero_si512(), hi = lo, off = lo;
        __m512 dy = _mm512_setzero_ps(), sy = dy;
        for (int i = 0; i < 4 && 4 * g + i < nb; i++) {
            const uint8_t *blk = y + ys * (size_t)(4 * g + i);
            const __mmask16 lane = (__mmask16)(0xf << 4 * i);
            const __m128i q0 = _mm_loadu_si128((const __m128i *)(blk + yqs)), q1 = _mm_loadu_si128((const __m128i *)(blk + yqs + 16));
            lo = _mm512_mask_broadcast_i32x4(lo, lane, q0);
            hi = _mm512_mask_broadcast_i32x4(hi, lane, q1);
            uint16_t h[2];
            memcpy(h, blk, sizeof h);
            dy = _mm512_mask_broadcastss_ps(dy, lane, _mm_set_ss(zf16(h[0])));
            if (k == Q4_1) sy = _mm512_mask_broadcastss_ps(sy, lane, _mm_set_ss(zf16(h[1])));
            if (q_int_offset(k)) { /* sum(y): the bytes' sums plus 128 each, less 32 * 128 */
                const __m128i top = _mm_set1_epi8((char)0x80);
                const __m128i s8 = _mm_add_epi64(_mm_sad_epu8(_mm_xor_si128(q0, top), _mm_setzero_si128()),
                                                 _mm_sad_epu8(_mm_xor_si128(q1, top), _mm_setzero_si128()));
                const int sum = _mm_cvtsi128_si32(_mm_add_epi64(s8, _mm_unpackhi_epi64(s8, s8))) - 32 * 128;
                off = _mm512_mask_set1_epi32(off, lane, q_int_offset(k) * sum);
            }
        }
        a[g] = (struct z0_acts){.off = off, .dy = dy, .sy = sy};
        if (pairs) {
            a[g].y[0] = _mm512_unpacklo_epi64(lo, lo);
            a[g].y[1] = _mm512_unpackhi_epi64(lo, lo);
            a[g].y[2] = _mm512_unpacklo_epi64(hi, hi);
            a[g].y[3] = _mm512_unpackhi_epi64(hi, hi);
        } else {
            a[g].lo = lo;
            a[g].hi = hi;
        }
    }
}

/* A mask of the first n (<= 64) bytes; none for n <= 0 */
static inline __mmask64 zbytes(int n) { return n >= 64 ? ~0ull : n <= 0 ? 0 : (1ull << n) - 1; }

/* Blocks b..b + K - 1 (K <= 4) of 4 weight rows as unsigned bytes (the low
 * and high nibbles; q8_0's bytes plus 128): row j's in w[j] and w[4 + j],
 * block i's weights 0-15 at bytes 16i..16i + 15 of the first, 16-31 of the
 * second; or in pairs, two rows a vector: w[4a + s] holds weights
 * 8s..8s + 7 of block i of rows 2a and 2a + 1 there. Returns
 * dx of row j, block i in lane 4i + j, and q4_1's mx so in *mx. A block's
 * weight bytes start at an even offset (18i + 2, 34i + 2), so word
 * permutations of two 64-byte loads pick them; q8_0's weights 16-31 the
 * same permutation of two loads 16 bytes further (K < 4, a row's last
 * blocks: loads masked, nothing read past them). q4_1's start at 20i + 4,
 * so dword permutations pick them: one operation where a word one took
 * two on an Intel Xeon. */
static inline __attribute__((always_inline)) __m512 z0_weights(enum qkind k, const int K, const uint8_t *const x[4], int b,
                                                               const bool pairs, __m512i w[8], __m512 *mx) {
    /* the second load starts 8 (q4_0) or 16 bytes (q4_1) in: words 32.. of
     * the first's span are its words 28.. (q4_1: dwords 16.. are its 12..);
     * q8_0's at 64 */
    static const uint16_t pick_q[2][32] = {
        {1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17, 19, 20, 21, 22, 23, 24, 25, 26, 28, 29, 30, 31, 60, 61, 62, 63},
        {1, 2, 3, 4, 5, 6, 7, 8, 18, 19, 20, 21, 22, 23, 24, 25, 35, 36, 37, 38, 39, 40, 41, 42, 52, 53, 54, 55, 56, 57, 58, 59}};
    static const uint32_t pick_q4_1[16] = {1, 2, 3, 4, 6, 7, 8, 9, 11, 12, 13, 14, 28, 29, 30, 31};
    /* d of rows a and b (then c and d) in words 4i + 0 and 4i + 1 (+ 2, + 3);
     * q4_1's m 16 words on; q8_0: blocks 0 and 1 from the first loads,
     * 2 and 3 from the second */
    static const uint16_t pick_d[3][32] = {
        {0, 32, 0, 32, 9, 41, 9, 41, 18, 50, 18, 50, 27, 59, 27, 59},
        {0, 32, 0, 32, 10, 42, 10, 42, 20, 52, 20, 52, 30, 62, 30, 62, 1, 33, 1, 33, 11, 43, 11, 43, 21, 53, 21, 53, 31, 63, 31, 63},
        {0, 32, 0, 32, 17, 49, 17, 49, 2, 34, 2, 34, 19, 51, 19, 51}};
    const int f = k == Q4_0 ? 0 : k == Q4_1 ? 1 : 2;
    const int xs = (int)q_xsize(k), next = k == Q4_0 ? 8 : 16;
    const __m512i pq = _mm512_loadu_si512(k == Q4_1 ? (const void *)pick_q4_1 : pick_q[k == Q8_0]);
    const __m512i pd = _mm512_loadu_si512(pick_d[f]);
    __m512i first[4], second[4], lo[4], hi[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        const uint8_t *p = x[j] + (size_t)xs * (size_t)b;
        if (k == Q8_0) { /* bytes 0-63 and 64-127, 16-79 and 80-143 */
            const __m512i top = _mm512_set1_epi8((char)0x80);
            first[j] = K == 4 ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi8(zbytes(xs * K), p);
            second[j] = K == 4 ? _mm512_loadu_si512(p + 64) : _mm512_maskz_loadu_epi8(zbytes(xs * K - 64), p + 64);
            const __m512i third = K == 4 ? _mm512_loadu_si512(p + 16) : _mm512_maskz_loadu_epi8(zbytes(xs * K - 16), p + 16);
            const __m512i fourth = K == 4 ? _mm512_loadu_si512(p + 80) : _mm512_maskz_loadu_epi8(zbytes(xs * K - 80), p + 80);
            lo[j] = _mm512_xor_si512(_mm512_permutex2var_epi16(first[j], pq, second[j]), top);
            hi[j] = _mm512_xor_si512(_mm512_permutex2var_epi16(third, pq, fourth), top);
            continue;
        }
        first[j] = K == 4 ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi8(zbytes(xs * K), p);
        if (k == Q4_1) /* K < 4: dwords below 16, from the first load */
            lo[j] = K == 4 ? _mm512_permutex2var_epi32(first[j], pq, _mm512_loadu_si512(p + next))
                       : _mm512_maskz_permutexvar_epi32((__mmask16)((1u << (4 * K)) - 1), pq, first[j]);
        else
            lo[j] = K == 4 ? _mm512_permutex2var_epi16(first[j], pq, _mm512_loadu_si512(p + next))
                       : _mm512_maskz_permutexvar_epi16((__mmask32)((1ull << (8 * K)) - 1), pq, first[j]);
    }
    /* lo[j]: q4's packed bytes (weights 0-15 and 16-31); in pairs, paired
     * by qwords before the nibbles are split */
    const __m512i m4 = _mm512_set1_epi8(0x0f);
#pragma GCC unroll 4
    for (int j = 0; j < 4 && !pairs; j++) {
        w[j] = k == Q8_0 ? lo[j] : _mm512_and_si512(lo[j], m4);
        w[4 + j] = k == Q8_0 ? hi[j] : znibbles(lo[j], 0xff);
    }
#pragma GCC unroll 2
    for (int a = 0; a < 2 && pairs; a++) {
        if (k == Q8_0) {
            w[4 * a] = _mm512_unpacklo_epi64(lo[2 * a], lo[2 * a + 1]);
            w[4 * a + 1] = _mm512_unpackhi_epi64(lo[2 * a], lo[2 * a + 1]);
            w[4 * a + 2] = _mm512_unpacklo_epi64(hi[2 * a], hi[2 * a + 1]);
            w[4 * a + 3] = _mm512_unpackhi_epi64(hi[2 * a], hi[2 * a + 1]);
            continue;
        }
        const __m512i u = _mm512_unpacklo_epi64(lo[2 * a], lo[2 * a + 1]), v = _mm512_unpackhi_epi64(lo[2 * a], lo[2 * a + 1]);
        w[4 * a] = _mm512_and_si512(u, m4);
        w[4 * a + 1] = _mm512_and_si512(v, m4);
        w[4 * a + 2] = znibbles(u, 0xff);
        w[4 * a + 3] = znibbles(v, 0xff);
    }
    __m512i d01 = _mm512_permutex2var_epi16(first[0], pd, first[1]), d23 = _mm512_permutex2var_epi16(first[2], pd, first[3]);
    if (k == Q8_0) {
        d01 = _mm512_mask_blend_epi16(0xff00, d01, _mm512_permutex2var_epi16(second[0], pd, second[1]));
        d23 = _mm512_mask_blend_epi16(0xff00, d23, _mm512_permutex2var_epi16(second[2], pd, second[3]));
    }
    const __m512i dm = _mm512_mask_blend_epi16(0xcccccccc, d01, d23);
    if (k == Q4_1) *mx = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(dm, 1));
    return _mm512_cvtph_ps(_mm512_castsi512_si256(dm));
}

/* Lanes 4q..4q + 3 of p[j] (a 128-bit lane q) summed into lane 4q + j */
static inline __m512i z0_lanes(const __m512i p[4]) {
    const __m512i s01 = _mm512_add_epi32(_mm512_unpacklo_epi32(p[0], p[1]), _mm512_unpackhi_epi32(p[0], p[1]));
    const __m512i s23 = _mm512_add_epi32(_mm512_unpacklo_epi32(p[2], p[3]), _mm512_unpackhi_epi32(p[2], p[3]));
    return _mm512_add_epi32(_mm512_unpacklo_epi64(s01, s23), _mm512_unpackhi_epi64(s01, s23));
}

/* z0_lanes where every lane is below 2^14 in magnitude (4-bit weights: 8
 * products of at most 15 * 127), with half the shuffles: int16 packs of
 * two vectors, their pairs summed by vpmaddwd (sums of two lanes below
 * 2^15, so the packs never saturate), twice. */
static inline __m512i z0_lanes_small(const __m512i p[4]) {
    const __m512i ones = _mm512_set1_epi16(1);
    const __m512i p01 = _mm512_madd_epi16(_mm512_packs_epi32(p[0], p[1]), ones);
    const __m512i p23 = _mm512_madd_epi16(_mm512_packs_epi32(p[2], p[3]), ones);
    return _mm512_madd_epi16(_mm512_packs_epi32(p01, p23), ones);
}

/* Lanes 4q + 2i and 4q + 2i + 1 of p0 (i = 0, 1), then of p1, summed into
 * lanes 4q..4q + 3: vpmaddwd of int16 packs for 4-bit weights (sums of 16
 * products of at most 15 * 127: below 2^15), a dword shuffle of the even
 * and the odd lanes and an add for q8_0's. */
static inline __m512i z0_pair_sums(enum qkind k, __m512i p0, __m512i p1) {
    if (k != Q8_0) return _mm512_madd_epi16(_mm512_packs_epi32(p0, p1), _mm512_set1_epi16(1));
    const __m512 a = _mm512_castsi512_ps(p0), b = _mm512_castsi512_ps(p1);
    return _mm512_add_epi32(_mm512_castps_si512(_mm512_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0))),
                            _mm512_castps_si512(_mm512_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1))));
}
static inline __m256i z0_pair_sums256(enum qkind k, __m256i p0, __m256i p1) {
    if (k != Q8_0) return _mm256_madd_epi16(_mm256_packs_epi32(p0, p1), _mm256_set1_epi16(1));
    const __m256 a = _mm256_castsi256_ps(p0), b = _mm256_castsi256_ps(p1);
    return _mm256_add_epi32(_mm256_castps_si256(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0))),
                            _mm256_castps_si256(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1))));
}

/* T (as floats) of 4 weight rows (w of z0_weights) against a group of one
 * activation row: row j, block i in lane 4i + j. A row's block sums into
 * lanes 4i..4i + 3 of p[j], added by z0_lanes. In pairs, rows 2a and
 * 2a + 1 of block i sum into lanes 4i..4i + 3 of p[a], two a row (16
 * products a lane), and z0_pair_sums adds each pair. Rows of 576 weights in
 * L2 on an Intel Xeon, best of 5-7 alternating runs: 3 and 4 activation
 * rows 2-6% faster for q4_1, 2-10% for q8_0; 2 rows no faster, one row
 * 5-10% slower (the weights' extra unpacks). The activations are held in
 * registers: as memory operands of the rows' vpdpbusd, each was loaded 4
 * times, and the loads bound the step (q8_0 ran 10% slower). */
static inline __attribute__((always_inline)) __m512 z0_dot(enum qkind k, const bool pairs, const __m512i w[8],
                                                           const struct z0_acts *y) {
    if (!pairs) {
        __m512i ylo = y->lo, yhi = y->hi, p[4];
        __asm__("" : "+v"(ylo), "+v"(yhi));
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) p[j] = zdpbusd(zdpbusd(_mm512_setzero_si512(), w[j], ylo, k == Q8_0), w[4 + j], yhi, k == Q8_0);
        const __m512i t = k == Q8_0 ? z0_lanes(p) : z0_lanes_small(p);
        return _mm512_cvtepi32_ps(k == Q4_1 ? t : _mm512_sub_epi32(t, y->off));
    }
    __m512i ys[4] = {y->y[0], y->y[1], y->y[2], y->y[3]}, p[2];
    __asm__("" : "+v"(ys[0]), "+v"(ys[1]), "+v"(ys[2]), "+v"(ys[3]));
#pragma GCC unroll 2
    for (int a = 0; a < 2; a++) {
        p[a] = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) p[a] = zdpbusd(p[a], w[4 * a + i], ys[i], k == Q8_0);
    }
    const __m512i t = z0_pair_sums(k, p[0], p[1]);
    return _mm512_cvtepi32_ps(k == Q4_1 ? t : _mm512_sub_epi32(t, y->off));
}

/* z0_dot of a step of 1 or 2 blocks (a row's last), in 256-bit halves at
 * half the cost: its lanes 8-15, blocks past the row, are 0 as z0_dot's. */
static inline __attribute__((always_inline)) __m512 z0_dot_half(enum qkind k, const bool pairs, const __m512i w[8],
                                                                const struct z0_acts *y) {
    if (!pairs) {
        const __m256i ylo = _mm512_castsi512_si256(y->lo), yhi = _mm512_castsi512_si256(y->hi);
        __m256i p[4], t;
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++)
            p[j] = zdpbusd256(zdpbusd256(_mm256_setzero_si256(), _mm512_castsi512_si256(w[j]), ylo, k == Q8_0),
                              _mm512_castsi512_si256(w[4 + j]), yhi, k == Q8_0);
        if (k == Q8_0) {
            const __m256i s01 = _mm256_add_epi32(_mm256_unpacklo_epi32(p[0], p[1]), _mm256_unpackhi_epi32(p[0], p[1]));
            const __m256i s23 = _mm256_add_epi32(_mm256_unpacklo_epi32(p[2], p[3]), _mm256_unpackhi_epi32(p[2], p[3]));
            t = _mm256_add_epi32(_mm256_unpacklo_epi64(s01, s23), _mm256_unpackhi_epi64(s01, s23));
        } else {
            const __m256i ones = _mm256_set1_epi16(1);
            const __m256i p01 = _mm256_madd_epi16(_mm256_packs_epi32(p[0], p[1]), ones);
            const __m256i p23 = _mm256_madd_epi16(_mm256_packs_epi32(p[2], p[3]), ones);
            t = _mm256_madd_epi16(_mm256_packs_epi32(p01, p23), ones);
        }
        if (k != Q4_1) t = _mm256_sub_epi32(t, _mm512_castsi512_si256(y->off));
        return _mm512_zextps256_ps512(_mm256_cvtepi32_ps(t));
    }
    __m256i p[2];
#pragma GCC unroll 2
    for (int a = 0; a < 2; a++) {
        p[a] = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++)
            p[a] = zdpbusd256(p[a], _mm512_castsi512_si256(w[4 * a + i]), _mm512_castsi512_si256(y->y[i]), k == Q8_0);
    }
    __m256i t = z0_pair_sums256(k, p[0], p[1]);
    if (k != Q4_1) t = _mm256_sub_epi32(t, _mm512_castsi512_si256(y->off));
    return _mm512_zextps256_ps512(_mm256_cvtepi32_ps(t));
}

#define Z0_PAIRS 3 /* activation rows from which a tile takes the weights in pairs (z0_dot) */

/* Blocks b..b + K - 1 of 4 weight rows against C activation rows (group
 * b / 4 of each, ga groups apart in a) into acc[c]. */
static inline __attribute__((always_inline)) void z0_step(enum qkind k, const int K, const int C, const uint8_t *const x[4],
                                                          int b, const struct z0_acts *a, size_t ga, __m512 *acc) {
    __m512i w[8];
    __m512 mx;
    const bool pairs = C >= Z0_PAIRS;
    const __m512 dx = z0_weights(k, K, x, b, pairs, w, &mx);
#pragma GCC unroll 8
    for (int c = 0; c < C; c++) {
        const struct z0_acts *y = a + ga * (size_t)c + (size_t)(b / 4);
        const __m512 t = K <= 2 ? z0_dot_half(k, pairs, w, y) : z0_dot(k, pairs, w, y);
        acc[c] = _mm512_fmadd_ps(_mm512_mul_ps(dx, y->dy), t, acc[c]);
        if (k == Q4_1) acc[c] = _mm512_fmadd_ps(mx, y->sy, acc[c]); /* one FMA: 1-3% faster than a multiply and an add */
    }
}

/* Lanes 4i + j of v: (i = 0 + i = 1) + (i = 2 + i = 3) of each j, in lane j */
static inline __m512 z0_sums(__m512 v) {
    const __m512 t = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm512_add_ps(t, _mm512_shuffle_f32x4(t, t, _MM_SHUFFLE(1, 0, 3, 2)));
}

/* z0_sums of 4 vectors at once, v[c]'s in lanes 4c..4c + 3: the same
 * additions in the same order, with 6 shuffles and 3 adds where 4 times
 * z0_sums took 8 and 8. */
static inline __m512 z0_sums4(const __m512 v[4]) {
    const __m512 v01 = _mm512_add_ps(_mm512_shuffle_f32x4(v[0], v[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                     _mm512_shuffle_f32x4(v[0], v[1], _MM_SHUFFLE(3, 1, 3, 1)));
    const __m512 v23 = _mm512_add_ps(_mm512_shuffle_f32x4(v[2], v[3], _MM_SHUFFLE(2, 0, 2, 0)),
                                     _mm512_shuffle_f32x4(v[2], v[3], _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm512_add_ps(_mm512_shuffle_f32x4(v01, v23, _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(v01, v23, _MM_SHUFFLE(3, 1, 3, 1)));
}

/* The weights of a step of K blocks fetched ahead into L2 only (into L1,
 * 1.2B q8_0 and q4_0 rows streamed from memory at 12-13 GB/s on a Zen 4
 * core, into L2 at 18-22): the bytes the step reads, at *pf (see z0_tile),
 * or 8 rows ahead: the step's first byte and every 64 after it in its span
 * (steps' spans follow on, so no line is left out), all 4 rows (copies of
 * the last past nx: the same lines), no loop (4 rows of 576 weights in
 * L2: q8_0 +11%, q4_1 +2% on an Intel Xeon, where the step is bound by
 * its instruction count). */
static inline __attribute__((always_inline)) void z0_fetch(enum qkind k, const char **pf, const uint8_t *const x[4], int b, int K,
                                                           int nx, size_t bx) {
    const size_t xs = q_xsize(k);
    if (pf) {
        z_fetch(pf, (size_t)K * xs * (size_t)nx, true);
        return;
    }
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++)
#pragma GCC unroll 3
        for (size_t o = 0; o < 4 * xs; o += 64) _mm_prefetch((const char *)x[j] + xs * (size_t)b + 8 * bx + o, _MM_HINT_T1);
}

/* s[ldc*c + j] (+)= row j's result (j < nx) for activation row c, from a
 * tile's sums (z0_step's acc). */
static inline __attribute__((always_inline)) void z0_store(const int C, const __m512 *acc, int nx, float *s, size_t ldc, bool add) {
    const __mmask16 m = (__mmask16)((1u << nx) - 1);
    if (C == 1) {
        const __m512 r = z0_sums(acc[0]);
        _mm_mask_storeu_ps(s, m, add ? _mm_add_ps(_mm_maskz_loadu_ps(m, s), _mm512_castps512_ps128(r)) : _mm512_castps512_ps128(r));
        return;
    }
    /* activation rows 4 at a time (the last group padded with zeros) */
#pragma GCC unroll 2
    for (int g0 = 0; g0 < C; g0 += 4) {
        __m512 g[4];
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) g[i] = g0 + i < C ? acc[g0 + i] : _mm512_setzero_ps();
        _Alignas(64) float r[16];
        _mm512_store_ps(r, z0_sums4(g));
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            if (g0 + i == C) break;
            float *o = s + ldc * (size_t)(g0 + i);
            const __m128 v = _mm_load_ps(r + 4 * i);
            _mm_mask_storeu_ps(o, m, add ? _mm_add_ps(_mm_maskz_loadu_ps(m, o), v) : v);
        }
    }
}

#define Z0_PASS 8 /* activation rows a tile takes at once: a vector of sums each */

/* 4 weight rows x[] (the first nx of them real, the rest copies) against C
 * (<= Z0_PASS) activation rows over nb packed blocks: s[ldc*c + j] (+)=
 * row j's result for activation row c. The weights are fetched ahead into
 * L2, at *pf (one activation row: the rows are read whole, one stream), or
 * without pf 8 rows ahead (a chunk of each of a few rows): 16 rows ahead
 * into L1, generation of 2 and 4 sequences of the default model ran 7-20%
 * slower on a Zen 4 (the fetched rows evicted the activations). */
static inline __attribute__((always_inline)) void z0_tile(enum qkind k, const int C, int nb, const uint8_t *const x[4],
                                                          int nx, size_t bx, const char **pf, const struct z0_acts *a,
                                                          size_t ga, float *s, size_t ldc, bool add) {
    for (int c0 = 0; c0 < nb; c0 += LM_GEMM_CHUNK, add = true) {
        const int c1 = nb - c0 < LM_GEMM_CHUNK ? nb : c0 + LM_GEMM_CHUNK;
        __m512 acc[Z0_PASS];
#pragma GCC unroll 8
        for (int c = 0; c < C; c++) acc[c] = _mm512_setzero_ps();
        if (C == 1) {
            for (int b = c0; b < c1; b += 4) {
                z0_fetch(k, pf, x, b, c1 - b < 4 ? c1 - b : 4, nx, bx);
                if (c1 - b >= 4) z0_step(k, 4, C, x, b, a, ga, acc);
                else if (c1 - b == 3) z0_step(k, 3, C, x, b, a, ga, acc);
                else if (c1 - b == 2) z0_step(k, 2, C, x, b, a, ga, acc);
                else z0_step(k, 1, C, x, b, a, ga, acc);
            }
        } else {
            /* Whole steps two a loop, the chunk's last 1-3 blocks after it:
             * with the short step's choice in the loop (and one step a
             * loop), 4 rows of 576 weights ran 8-16% slower (2-8 activation
             * rows, q4_0, q4_1 and q8_0, an Intel Xeon). One row keeps the
             * loop it had: so, 5-7% slower. */
            int b = c0;
#pragma GCC unroll 2
            for (; b + 4 <= c1; b += 4) {
                z0_fetch(k, pf, x, b, 4, nx, bx);
                z0_step(k, 4, C, x, b, a, ga, acc);
            }
            if (b < c1) z0_fetch(k, pf, x, b, c1 - b, nx, bx);
            if (c1 - b == 3) z0_step(k, 3, C, x, b, a, ga, acc);
            else if (c1 - b == 2) z0_step(k, 2, C, x, b, a, ga, acc);
            else if (c1 - b == 1) z0_step(k, 1, C, x, b, a, ga, acc);
        }
        z0_store(C, acc, nx, s, ldc, add);
    }
}

/* The 4-row tile at row r of nr: its rows, the last repeated past nr; returns how many are real. */
static inline int z0_rows_at(const uint8_t *x, size_t bx, int r, int nr, const uint8_t *rows[4]) {
    const int nx = nr - r < 4 ? nr - r : 4;
    for (int j = 0; j < 4; j++) rows[j] = x + bx * (size_t)(r + (j < nx ? j : nx - 1));
    return nx;
}

/* Lanes 0-7 of v in lanes 8-15 as well */
static inline __m512i z0_dup(__m512i v) { return _mm512_shuffle_i32x4(v, v, _MM_SHUFFLE(1, 0, 1, 0)); }
static inline __m512 z0_dup_ps(__m512 v) { return _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(1, 0, 1, 0)); }
/* Lanes 8-15 of v in lanes 0-7 */
static inline __m512 z0_high(__m512 v) { return _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(3, 2, 3, 2)); }

/* Two tiles of 4 weight rows, xa and xb (nxa and nxb of them real), against
 * C (2-8) activation rows over a chunk of nb blocks, nb % 4 == 2: each
 * tile's whole steps as z0_tile's, then the last two blocks of both in one
 * step of four, tile xa's in lanes 0-7 and xb's in 8-15 (alone, the two
 * blocks took about as long as a step of four: 4 rows of 576 weights ran
 * 7-9% slower than of 640). Each tile's sums take the operations z0_tile
 * gives them, so the same bits. */
static inline __attribute__((always_inline)) void z0_tile2(enum qkind k, const int C, int nb, const uint8_t *const xa[4], int nxa,
                                                           const uint8_t *const xb[4], int nxb, size_t bx,
                                                           const struct z0_acts *a, size_t ga, float *sa, float *sb,
                                                           size_t ldc, bool add) {
    const size_t xs = q_xsize(k);
    const int tail = nb - 2;
    __m512 acc[2][Z0_PASS];
    for (int t = 0; t < 2; t++) {
        const uint8_t *const *x = t ? xb : xa;
#pragma GCC unroll 8
        for (int c = 0; c < C; c++) acc[t][c] = _mm512_setzero_ps();
#pragma GCC unroll 2
        for (int b = 0; b < tail; b += 4) {
            z0_fetch(k, NULL, x, b, 4, 4, bx);
            z0_step(k, 4, C, x, b, a, ga, acc[t]);
        }
        z0_fetch(k, NULL, x, tail, 2, 4, bx);
    }
    /* the last two blocks of each row of xa, then of xb's, as one row of
     * four blocks (q8_0's step reads 8 bytes past them) */
    _Alignas(64) uint8_t v[4][4 * sizeof(struct lm_block_q8_0) + 16];
    const uint8_t *vr[4];
    for (int j = 0; j < 4; j++) {
        memcpy(v[j], xa[j] + xs * (size_t)tail, 2 * xs);
        memcpy(v[j] + 2 * xs, xb[j] + xs * (size_t)tail, 2 * xs);
        vr[j] = v[j];
    }
    __m512i w[8];
    __m512 mx;
    const bool pairs = C >= Z0_PAIRS;
    const __m512 dx = z0_weights(k, 4, vr, 0, pairs, w, &mx);
#pragma GCC unroll 8
    for (int c = 0; c < C; c++) {
        const struct z0_acts *y = a + ga * (size_t)c + (size_t)(tail / 4);
        struct z0_acts d = {.off = z0_dup(y->off), .dy = z0_dup_ps(y->dy), .sy = z0_dup_ps(y->sy)};
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) d.y[i] = z0_dup(y->y[i]);
        const __m512 t = z0_dot(k, pairs, w, &d), p = _mm512_mul_ps(dx, d.dy);
        acc[0][c] = _mm512_mask3_fmadd_ps(p, t, acc[0][c], 0x00ff);
        acc[1][c] = _mm512_mask3_fmadd_ps(z0_high(p), z0_high(t), acc[1][c], 0x00ff);
        if (k == Q4_1) {
            acc[0][c] = _mm512_mask3_fmadd_ps(mx, d.sy, acc[0][c], 0x00ff);
            acc[1][c] = _mm512_mask3_fmadd_ps(z0_high(mx), d.sy, acc[1][c], 0x00ff);
        }
    }
    z0_store(C, acc[0], nxa, sa, ldc, add);
    z0_store(C, acc[1], nxb, sb, ldc, add);
}

/* Blocks packed at once for one activation row: a tile of rows runs through
 * whole rows up to this length (n = 16384), so that it reads one span of
 * memory. */
#define ZQ_MAX_BLOCKS (8 * LM_GEMM_CHUNK)

static inline __attribute__((always_inline)) void z0_gemv(enum qkind k, int n, int nr, float *s, const uint8_t *x,
                                                          size_t bx, const uint8_t *y) {
    struct z0_acts a[ZQ_MAX_BLOCKS / 4];
    for (int b0 = 0; b0 < n / 32; b0 += ZQ_MAX_BLOCKS) {
        const int nb = n / 32 - b0 < ZQ_MAX_BLOCKS ? n / 32 - b0 : ZQ_MAX_BLOCKS;
        z0_pack(k, nb, y + q_ysize(k) * (size_t)b0, false, a);
        const uint8_t *xb = x + q_xsize(k) * (size_t)b0;
        const char *pf = (const char *)xb + Z_FETCH_AHEAD;
        for (int r = 0; r < nr; r += 4) {
            const uint8_t *rows[4];
            const int nx = z0_rows_at(xb, bx, r, nr, rows);
            z0_tile(k, 1, nb, rows, nx, bx, &pf, a, 0, s + r, 0, b0 > 0);
        }
    }
}

/* The activation rows z0_rows packed last on this thread, and the bytes it
 * packed them from (nc = 0: none kept): a product's tasks on one thread
 * (3-4 guided tiles of lm_matmul_multi) take the same rows, and packing
 * them anew for each took 3% of a step of 4 sequences. Found again by
 * their bytes, so another product's rows in the same buffer are not. Only
 * rows of one chunk (n <= 32 * LM_GEMM_CHUNK) are kept. */
static _Thread_local struct {
    int k, n, nc;
    uint8_t y[15 * LM_GEMM_CHUNK * sizeof(struct lm_block_q8_1)];
    struct z0_acts a[15][LM_GEMM_CHUNK / 4];
} z0_last;

/* Whether z0_last.a holds these rows packed; if not, z0_last takes them
 * as the rows about to be packed there (or, longer than a chunk, none). */
static bool z0_last_find(enum qkind k, int n, int nc, const uint8_t *y, size_t by) {
    const size_t used = q_ysize(k) * (size_t)(n / 32);
    bool same = z0_last.nc == nc && z0_last.k == (int)k && z0_last.n == n;
    for (int c = 0; c < nc && same; c++) same = !memcmp(z0_last.y + used * (size_t)c, y + by * (size_t)c, used);
    if (same) return true;
    z0_last.nc = 0;
    if (n / 32 > LM_GEMM_CHUNK) return false;
    for (int c = 0; c < nc; c++) memcpy(z0_last.y + used * (size_t)c, y + by * (size_t)c, used);
    z0_last.k = (int)k;
    z0_last.n = n;
    z0_last.nc = nc;
    return false;
}

/* 2 to 15 activation rows (generation of a few sequences, a batch's rest):
 * a chunk of each at once, tiles of 4 weight rows, Z0_PASS activation rows
 * a pass over a tile's chunk (in L1 after the first). Rows of one chunk
 * stay packed for the next call (z0_last). */
static inline __attribute__((always_inline)) void z0_rows(enum qkind k, int n, int nr, int nc, float *s, size_t ldc,
                                                          const uint8_t *x, size_t bx, const uint8_t *y, size_t by) {
    const bool packed = z0_last_find(k, n, nc, y, by);
    struct z0_acts(*a)[LM_GEMM_CHUNK / 4] = z0_last.a;
    for (int b0 = 0; b0 < n / 32; b0 += LM_GEMM_CHUNK) {
        const int nb = n / 32 - b0 < LM_GEMM_CHUNK ? n / 32 - b0 : LM_GEMM_CHUNK;
        for (int c = 0; c < nc && !packed; c++) { /* laid out for the pass that takes row c */
            const int c0 = c / Z0_PASS * Z0_PASS, pass = nc - c0 < Z0_PASS ? nc - c0 : Z0_PASS;
            z0_pack(k, nb, y + by * (size_t)c + q_ysize(k) * (size_t)b0, pass >= Z0_PAIRS, a[c]);
        }
        const uint8_t *xb = x + q_xsize(k) * (size_t)b0;
        const size_t ga = LM_GEMM_CHUNK / 4;
        for (int r = 0; r < nr; r += 4) {
            const uint8_t *rows[4];
            const int nx = z0_rows_at(xb, bx, r, nr, rows);
            /* 2-4 activation rows of a chunk that ends in half a step: two
             * tiles share it */
            if (nb % 4 == 2 && r + 4 < nr && nc >= 2 && nc <= 4) {
                const uint8_t *rows2[4];
                const int nx2 = z0_rows_at(xb, bx, r + 4, nr, rows2);
                float *sa = s + (size_t)r, *sb = sa + 4;
                switch (nc) {
                case 2: z0_tile2(k, 2, nb, rows, nx, rows2, nx2, bx, a[0], ga, sa, sb, ldc, b0 > 0); break;
                case 3: z0_tile2(k, 3, nb, rows, nx, rows2, nx2, bx, a[0], ga, sa, sb, ldc, b0 > 0); break;
                default: z0_tile2(k, 4, nb, rows, nx, rows2, nx2, bx, a[0], ga, sa, sb, ldc, b0 > 0); break;
                }
                r += 4;
                continue;
            }
            for (int c = 0; c < nc; c += Z0_PASS) {
                float *sc = s + ldc * (size_t)c + (size_t)r;
                switch (nc - c < Z0_PASS ? nc - c : Z0_PASS) {
                case 1: z0_tile(k, 1, nb, rows, nx, bx, NULL, a[c], ga, sc, ldc, b0 > 0); break;
                case 2: z0_tile(k, 2, nb, rows, nx, bx, NULL, a[c], ga, sc, ldc, b0 > 0); break;
                case 3: z0_tile(k, 3, nb, rows, nx, bx, NULL, a[c], ga, sc, ldc, b0 > 0); break;
                case 4: z0_tile(k, 4, nb, rows, nx, bx, NULL, a[c], ga, sc, ldc, b0 > 0); break;
                case 5: z0_tile(k, 5, nb, rows, nx, bx, NULL, a[c], ga, sc, ldc, b0 > 0); break;
                case 6: z0_tile(k, 6, nb, rows, nx, bx, NULL, a[c], ga, sc, ldc, b0 > 0); break;
                case 7: z0_tile(k, 7, nb, rows, nx, bx, NULL, a[c], ga, sc, ldc, b0 > 0); break;
                default: z0_tile(k, 8, nb, rows, nx, bx, NULL, a[c], ga, sc, ldc, b0 > 0); break;
                }
            }
        }
    }
}

/* unpack_k4_scales (quants_simd.h) in one vector: bytes 0-7 the scales,
 * 8-15 the mins. Reads 16 bytes: in a q4_K block, qs follows. */
static inline __m128i zk4_scales(const uint8_t packed[12]) {
    const __m128i u = _mm_loadu_si128((const __m128i *)packed); /* words u0 u1 u2 */
    const __m128i low4 = _mm_and_si128(_mm_srlv_epi32(_mm_shuffle_epi32(u, _MM_SHUFFLE(3, 3, 2, 2)), _mm_setr_epi32(0, 4, 0, 0)),
                                       _mm_set1_epi8(0x0f));
    const __m128i top2 = _mm_slli_epi32(_mm_and_si128(_mm_srli_epi32(u, 6), _mm_set1_epi8(3)), 4);
    const __m128i lo = _mm_and_si128(u, _mm_set1_epi8(0x3f));     /* scales 0-3, mins 0-3 */
    return _mm_unpacklo_epi32(lo, _mm_or_si128(low4, top2)); /* with scales 4-7, mins 4-7 */
}

#define ZK_ROWS 4 /* activation rows a pass of zgemv_k takes at once */

/* q4_K: each 64 bytes of qs hold sub-blocks 4g and 4g + 2 (low nibbles),
 * 4g + 1 and 4g + 3 (high nibbles), and the activations come rearranged to
 * match (zk4_acts): each step's 64 weights meet their activation bytes
 * without a shuffle (the 32-byte broadcast of qs cost one a step). Lanes
 * 0-7 of a step take the first sub-block's scale, 8-15 the second's. The
 * mins go through the activations' bsums, in a separate sum. A weight row
 * against C activation rows (y[c], yq[c]) into out[c]: the weights are
 * unpacked once for all, and each row's sums take the operations, in the
 * order, that they take alone. pf: where the fetch of the weights ahead
 * stands (z_fetch). */
static inline __attribute__((always_inline)) void zk4_dot(const int C, int n, const void *vx,
                                                          const struct lm_block_q8_K *const y[], const int8_t *const yq[],
                                                          const char **pf, float out[]) {
    const struct lm_block_q4_K *x = vx;
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    __m512 acc[ZK_ROWS];
    __m256 accm[ZK_ROWS];
#pragma GCC unroll 4
    for (int c = 0; c < C; c++) acc[c] = _mm512_setzero_ps(), accm[c] = _mm256_setzero_ps();
    for (int i = 0; i < n / LM_QK_K; i++) {
        z_fetch(pf, sizeof *x, true);
        const __m128i sm = zk4_scales(x[i].scales);
        const __m512i sc = _mm512_cvtepu8_epi32(sm); /* lanes 0-7: int16 pairs (scale, 0); 8-15 (the mins) unused */
        const __m256i mins8 = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(sm, sm));
        const float xd = zf16(x[i].d), xdmin = zf16(x[i].dmin);
        __m512i t[ZK_ROWS][2];
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            /* m[j] * (bsums[2j] + bsums[2j + 1]) in lane j */
            const __m256i mins = _mm256_madd_epi16(mins8, _mm256_loadu_si256((const __m256i *)y[c][i].bsums));
            accm[c] = _mm256_fmadd_ps(_mm256_set1_ps(y[c][i].d * xdmin), _mm256_cvtepi32_ps(mins), accm[c]);
            t[c][0] = t[c][1] = _mm512_setzero_si512();
        }
#pragma GCC unroll 2
        for (int g = 0; g < 2; g++) {
            const __m512i v = _mm512_loadu_si512(x[i].qs + 64 * g);
            const __m512i lo = _mm512_and_si512(v, m4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
            const __m512i pick = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2);
            const __m512i slo = _mm512_permutexvar_epi32(_mm512_add_epi32(pick, _mm512_set1_epi32(4 * g)), sc);
            const __m512i shi = _mm512_permutexvar_epi32(_mm512_add_epi32(pick, _mm512_set1_epi32(4 * g + 1)), sc);
#pragma GCC unroll 4
            for (int c = 0; c < C; c++) {
                t[c][0] = zdpwssd(t[c][0], zdot_us8(lo, _mm512_loadu_si512(yq[c] + LM_QK_K * i + 128 * g)), slo);
                t[c][1] = zdpwssd(t[c][1], zdot_us8(hi, _mm512_loadu_si512(yq[c] + LM_QK_K * i + 128 * g + 64)), shi);
            }
        }
#pragma GCC unroll 4
        for (int c = 0; c < C; c++)
            acc[c] = _mm512_fmadd_ps(_mm512_set1_ps(y[c][i].d * xd), _mm512_cvtepi32_ps(_mm512_add_epi32(t[c][0], t[c][1])),
                                     acc[c]);
    }
#pragma GCC unroll 4
    for (int c = 0; c < C; c++) out[c] = _mm512_reduce_add_ps(acc[c]) - hsum_ps(accm[c]);
}

/* Activation super-blocks rearranged at once for zk4_dot (16 KB a row). */
#define ZK4_CHUNK 64

/* The qs of nb activation super-blocks in zk4_dot's order: of each 128,
 * the 32-byte groups 0, 2, 1, 3. */
static void zk4_acts(int nb, const struct lm_block_q8_K *y, int8_t *q) {
    for (int b = 0; b < nb; b++)
        for (int h = 0; h < 2; h++)
            for (int k = 0; k < 4; k++) memcpy(q + LM_QK_K * b + 128 * h + 32 * k, y[b].qs + 128 * h + 32 * (k >> 1 | (k & 1) << 1), 32);
}

/* q6_K: levels 0..63 (4 low bits in ql, 2 high in qh) against 64
 * activation bytes per step, four 16-weight sub-blocks with a scale each;
 * the -32 offset through the bsums. Of each half (128 weights), weights
 * 0-31 take the low nibbles of ql[0, 32) and bits 0-1 of qh, 32-63 the low
 * nibbles of ql[32, 64) and bits 2-3, 64-95 and 96-127 the high nibbles
 * with bits 4-5 and 6-7. The high bits are moved to bits 4-5 by zbits, or
 * without GFNI by 16-bit shifts, by a different count in each 256-bit
 * half: what crosses from the neighbouring byte is masked away. C
 * activation rows as zk4_dot's. */
static inline __attribute__((always_inline)) void zk6_dot(const int C, int n, const void *vx,
                                                          const struct lm_block_q8_K *const y[], const char **pf, float out[]) {
    const struct lm_block_q6_K *x = vx;
    __m512 acc[ZK_ROWS];
    __m256 acco[ZK_ROWS];
#pragma GCC unroll 4
    for (int c = 0; c < C; c++) acc[c] = _mm512_setzero_ps(), acco[c] = _mm256_setzero_ps();
    for (int i = 0; i < n / LM_QK_K; i++) {
        z_fetch(pf, sizeof *x, true);
        const __m128i sc8 = _mm_loadu_si128((const __m128i *)x[i].scales);
        const __m512i sc = _mm512_and_si512(_mm512_cvtepi8_epi32(sc8), _mm512_set1_epi32(0xffff)); /* int16 pairs (scale, 0) */
        const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
        const float xd = zf16(x[i].d);
        float d[ZK_ROWS];
        __m512i t[ZK_ROWS][2];
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            d[c] = y[c][i].d * xd;
            t[c][0] = t[c][1] = _mm512_setzero_si512();
            const __m256i off = _mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)y[c][i].bsums));
            acco[c] = _mm256_fmadd_ps(_mm256_set1_ps(32 * d[c]), _mm256_cvtepi32_ps(off), acco[c]);
        }
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const __m512i ql = _mm512_loadu_si512(x[i].ql + 64 * h);
            const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x[i].qh + 32 * h)));
#if defined(__GFNI__)
            /* qh's bits 0-1 and 2-3 (lo's halves), 4-5 and 6-7 (hi's) to bits 4-5 */
            const __m512i lo = _mm512_ternarylogic_epi32(ql, _mm512_set1_epi8(0x0f), zbits(qh, 0xf0, 0x01020000, 0x04080000),
                                                         0xea); /* (ql & 0x0f) | bits */
            const __m512i hi = _mm512_or_si512(znibbles(ql, 0xff), zbits(qh, 0xf0, 0x10200000, 0x40800000));
#else
            const __m512i m4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
            const __m512i shl_lo = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1); /* bits 0-1, 2-3 to 4-5 */
            const __m512i shr_hi = _mm512_inserti64x4(_mm512_set1_epi16(0), _mm256_set1_epi16(2), 1); /* bits 4-5, 6-7 to 4-5 */
            const __m512i lo = _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_and_si512(_mm512_sllv_epi16(qh, shl_lo), m30));
            const __m512i hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                                               _mm512_and_si512(_mm512_srlv_epi16(qh, shr_hi), m30));
#endif
            /* lane j of a step: weights 4j..4j+3 of its 64, sub-block j/4 of its 4 */
            const __m512i sub = _mm512_srli_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), 2);
            const __m512i slo = _mm512_permutexvar_epi32(_mm512_add_epi32(sub, _mm512_set1_epi32(8 * h)), sc);
            const __m512i shi = _mm512_permutexvar_epi32(_mm512_add_epi32(sub, _mm512_set1_epi32(8 * h + 4)), sc);
#pragma GCC unroll 4
            for (int c = 0; c < C; c++) {
                t[c][0] = zdpwssd(t[c][0], zdot_us8(lo, _mm512_loadu_si512(y[c][i].qs + 128 * h)), slo);
                t[c][1] = zdpwssd(t[c][1], zdot_us8(hi, _mm512_loadu_si512(y[c][i].qs + 128 * h + 64)), shi);
            }
        }
#pragma GCC unroll 4
        for (int c = 0; c < C; c++)
            acc[c] = _mm512_fmadd_ps(_mm512_set1_ps(d[c]), _mm512_cvtepi32_ps(_mm512_add_epi32(t[c][0], t[c][1])), acc[c]);
    }
#pragma GCC unroll 4
    for (int c = 0; c < C; c++) out[c] = _mm512_reduce_add_ps(acc[c]) - hsum_ps(acco[c]);
}

/* C activation rows (by bytes apart) against nr weight rows into
 * s[ldc*c + r], row after row, the weights one stream fetched ahead into L2
 * in address order, as z0_gemv's, and read once for all C rows: left to
 * the hardware prefetcher, 1.2B q4_K_M generation ran at 0.68-0.73 of
 * llama.cpp's on an Intel Xeon (1 and 2 threads); on a Zen 4, with
 * these kernels, one core read q4_K rows from memory at 13.7 GB/s without
 * the fetches and 16.2 with them (q6_K 16.8 and 18.4). Rows longer than
 * ZK4_CHUNK super-blocks (q4_K) go a chunk of activations at a time, each
 * row's part in turn. Each activation row gets the bits it gets alone. */
static inline __attribute__((always_inline)) void zgemv_k(bool q6, const int C, int n, int nr, float *s, size_t ldc,
                                                          const uint8_t *x, size_t bx, const uint8_t *y, size_t by) {
    const struct lm_block_q8_K *ya[ZK_ROWS];
    float v[ZK_ROWS];
#pragma GCC unroll 4
    for (int c = 0; c < C; c++) ya[c] = (const struct lm_block_q8_K *)(y + by * (size_t)c);
    if (q6) {
        const char *pf = (const char *)x + Z_FETCH_AHEAD;
        for (int r = 0; r < nr; r++) {
            zk6_dot(C, n, x + bx * (size_t)r, ya, &pf, v);
#pragma GCC unroll 4
            for (int c = 0; c < C; c++) s[ldc * (size_t)c + (size_t)r] = v[c];
        }
        return;
    }
    _Alignas(64) int8_t yq[ZK_ROWS][ZK4_CHUNK * LM_QK_K];
    for (int b0 = 0; b0 < n / LM_QK_K; b0 += ZK4_CHUNK) {
        const int nb = n / LM_QK_K - b0 < ZK4_CHUNK ? n / LM_QK_K - b0 : ZK4_CHUNK;
        const uint8_t *xb = x + sizeof(struct lm_block_q4_K) * (size_t)b0;
        const struct lm_block_q8_K *yb[ZK_ROWS];
        const int8_t *yqc[ZK_ROWS];
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            yb[c] = ya[c] + b0;
            yqc[c] = yq[c];
            zk4_acts(nb, yb[c], yq[c]);
        }
        const char *pf = (const char *)xb + Z_FETCH_AHEAD;
        for (int r = 0; r < nr; r++) {
            zk4_dot(C, nb * LM_QK_K, xb + bx * (size_t)r, yb, yqc, &pf, v);
#pragma GCC unroll 4
            for (int c = 0; c < C; c++) {
                float *o = s + ldc * (size_t)c + (size_t)r;
                *o = b0 ? *o + v[c] : v[c];
            }
        }
    }
}
static void zdot_q4_K_q8_K(int n, float *s, const void *vx, const void *vy) { zgemv_k(false, 1, n, 1, s, 0, vx, 0, vy, 0); }
static void zdot_q6_K_q8_K(int n, float *s, const void *vx, const void *vy) { zgemv_k(true, 1, n, 1, s, 0, vx, 0, vy, 0); }

/* The AVX2 gemm of q4_K and q6_K, for what is not one activation row. */
static void (*avx2_gemm_q4_K)(int, int, int, float *, size_t, const void *, size_t, const void *, size_t);
static void (*avx2_gemm_q6_K)(int, int, int, float *, size_t, const void *, size_t, const void *, size_t);

#if defined(__AVX512VNNI__)
/* ---- q4_K and q6_K against 8 to 16 activation rows, the rows in lanes ----
 * As the AVX2 tiles (k_tile_* in quants_avx2.c), twice as many rows a
 * vector, and vpdpbusd sums 4 byte products into each row's int32 lane in
 * one step, where they took vpmaddubsw, an int16 add and, per sub-block,
 * vpmaddwd: per step of 4 weights, the weight bytes broadcast from a
 * decoded copy of the super-block meet the step's bytes of 16 rows. A
 * sub-block's int32 sum is multiplied by its scale (vpmulld); the mins
 * (q4_K) and the -32 offset (q6_K) come from the rows' bsums by vpdpwssd.
 * Sums as the AVX2 tiles' (exact integers, then the same float steps per
 * super-block), so the results are theirs; not those of one row alone. */
#define KZ_CHUNK 8 /* activation super-blocks rearranged at once (34 KB) */
#define KZ_ROWS 4  /* weight rows a tile: each step's activation bytes serve them all */

/* Super-blocks [0, nb) of up to 16 activation rows (rows past nc repeat
 * the last): q[64*b + st] lane c = bytes 4st..4st+3 of row c's qs; bq[8*b +
 * i] lane c = its (bsums[2i], bsums[2i+1]); d[16*b + c] its d. */
struct kz_acts {
    __m512i q[KZ_CHUNK * 64];
    __m512i bq[KZ_CHUNK * 8];
    __m512 d[KZ_CHUNK];
};

static void kz_pack(int nb, int nc, const uint8_t *y, size_t by, struct kz_acts *a) {
    for (int b = 0; b < nb; b++) {
        const struct lm_block_q8_K *blk[16];
        _Alignas(64) float d[16];
        _Alignas(64) int32_t bq[8][16];
        for (int c = 0; c < 16; c++) {
            blk[c] = (const struct lm_block_q8_K *)(y + by * (size_t)(c < nc ? c : nc - 1)) + b;
            d[c] = blk[c]->d;
            for (int i = 0; i < 8; i++) memcpy(&bq[i][c], &blk[c]->bsums[2 * i], 4);
        }
        a->d[b] = _mm512_load_ps(d);
        for (int i = 0; i < 8; i++) a->bq[8 * b + i] = _mm512_load_si512(bq[i]);
        for (int g = 0; g < 4; g++) { /* steps 16g..16g+15: a 16x16 transpose of 4-byte elements */
            __m512 v[16];
            for (int c = 0; c < 16; c++) v[c] = _mm512_castsi512_ps(_mm512_loadu_si512(blk[c]->qs + 64 * g));
            transpose_16x16(v);
            for (int st = 0; st < 16; st++) a->q[64 * b + 16 * g + st] = _mm512_castps_si512(v[st]);
        }
    }
}

/* A super-block's 256 weights as unsigned bytes, in order: q4_K's nibbles,
 * q6_K's 6-bit levels (0..63, the -32 applied through the bsums). */
static inline void kz_decode_q4_K(const struct lm_block_q4_K *x, uint8_t w[256]) {
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    for (int h = 0; h < 2; h++) {
        const __m512i bits = _mm512_loadu_si512(x->qs + 64 * h); /* weights 128h + 64k + (0..31 low, 32..63 high), k = 0, 1 */
        const __m512i lo = _mm512_and_si512(bits, m4), hi = _mm512_and_si512(_mm512_srli_epi16(bits, 4), m4);
        _mm512_store_si512(w + 128 * h, _mm512_shuffle_i64x2(lo, hi, _MM_SHUFFLE(1, 0, 1, 0)));
        _mm512_store_si512(w + 128 * h + 64, _mm512_shuffle_i64x2(lo, hi, _MM_SHUFFLE(3, 2, 3, 2)));
    }
}

static inline void kz_decode_q6_K(const struct lm_block_q6_K *x, uint8_t w[256]) {
    const __m512i m4 = _mm512_set1_epi8(0x0f), m3 = _mm512_set1_epi8(3);
    /* per 256-bit half: the qh bits of weights 0..31 and 32..63 of a 128 */
    const __m512i sh_lo = _mm512_setr_epi64(0, 0, 0, 0, 2, 2, 2, 2), sh_hi = _mm512_setr_epi64(4, 4, 4, 4, 6, 6, 6, 6);
    for (int h = 0; h < 2; h++) {
        const __m512i ql = _mm512_loadu_si512(x->ql + 64 * h);
        const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x->qh + 32 * h)));
        const __m512i top_lo = _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi64(qh, sh_lo), m3), 4);
        const __m512i top_hi = _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi64(qh, sh_hi), m3), 4);
        _mm512_store_si512(w + 128 * h, _mm512_or_si512(_mm512_and_si512(ql, m4), top_lo));
        _mm512_store_si512(w + 128 * h + 64, _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4), top_hi));
    }
}

static inline __m512i kz_bcast(const uint8_t *w) {
    int32_t w4;
    memcpy(&w4, w, 4);
    return _mm512_set1_epi32(w4);
}

/* s[c*ldc + r] (+)= R weight rows against the nc (<= 16) rows of a. */
static inline __attribute__((always_inline)) void kz_tile(bool q6, const int R, int nb, int nc, const uint8_t *x, size_t bx,
                                                            const struct kz_acts *a, float *s, size_t ldc, bool add) {
    __m512 acc[KZ_ROWS];
ZUNROLL
    for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps();
    for (int b = 0; b < nb; b++) {
        _Alignas(64) uint8_t w[KZ_ROWS][256];
        int32_t sc[KZ_ROWS][16], pair[KZ_ROWS][8]; /* sub-block scales; int16 pairs for the bsums */
        __m512i sum[KZ_ROWS], off[KZ_ROWS];
ZUNROLL
        for (int r = 0; r < R; r++) {
            sum[r] = off[r] = _mm512_setzero_si512();
            if (q6) {
                const struct lm_block_q6_K *xb = (const struct lm_block_q6_K *)(x + bx * (size_t)r) + b;
                kz_decode_q6_K(xb, w[r]);
                for (int j = 0; j < 16; j++) sc[r][j] = xb->scales[j];
                for (int i = 0; i < 8; i++) pair[r][i] = (int32_t)((uint32_t)(uint16_t)xb->scales[2 * i] | (uint32_t)(uint16_t)xb->scales[2 * i + 1] << 16);
            } else {
                const struct lm_block_q4_K *xb = (const struct lm_block_q4_K *)(x + bx * (size_t)r) + b;
                kz_decode_q4_K(xb, w[r]);
                uint8_t s8[8], m8[8];
                unpack_k4_scales(xb->scales, s8, m8);
                for (int j = 0; j < 8; j++) sc[r][j] = s8[j], pair[r][j] = (int32_t)((uint32_t)m8[j] * 0x10001u);
            }
        }
        const __m512i *q = a->q + 64 * b;
        const int steps = q6 ? 4 : 8; /* per sub-block: 16 or 32 weights */
        for (int j = 0; j < 64 / steps; j++) {
            __m512i t[KZ_ROWS];
ZUNROLL
            for (int r = 0; r < R; r++) t[r] = _mm512_setzero_si512();
ZUNROLL
            for (int st = 0; st < steps; st++) {
                __m512i qy = q[steps * j + st];
                __asm__("" : "+v"(qy)); /* loaded once for the R rows */
ZUNROLL
                for (int r = 0; r < R; r++) t[r] = _mm512_dpbusd_epi32(t[r], kz_bcast(w[r] + 4 * (steps * j + st)), qy);
            }
ZUNROLL
            for (int r = 0; r < R; r++) sum[r] = _mm512_add_epi32(sum[r], _mm512_mullo_epi32(t[r], _mm512_set1_epi32(sc[r][j])));
        }
ZUNROLL
        for (int r = 0; r < R; r++) {
            for (int i = 0; i < 8; i++) off[r] = _mm512_dpwssd_epi32(off[r], a->bq[8 * b + i], _mm512_set1_epi32(pair[r][i]));
            if (q6) {
                const struct lm_block_q6_K *xb = (const struct lm_block_q6_K *)(x + bx * (size_t)r) + b;
                const __m512i v = _mm512_sub_epi32(sum[r], _mm512_slli_epi32(off[r], 5));
                acc[r] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(zf16(xb->d)), a->d[b]), _mm512_cvtepi32_ps(v), acc[r]);
            } else {
                const struct lm_block_q4_K *xb = (const struct lm_block_q4_K *)(x + bx * (size_t)r) + b;
                acc[r] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(zf16(xb->d)), a->d[b]), _mm512_cvtepi32_ps(sum[r]), acc[r]);
                acc[r] = _mm512_fnmadd_ps(_mm512_mul_ps(_mm512_set1_ps(zf16(xb->dmin)), a->d[b]), _mm512_cvtepi32_ps(off[r]), acc[r]);
            }
        }
    }
ZUNROLL
    for (int r = 0; r < R; r++) {
        float v[16];
        _mm512_storeu_ps(v, acc[r]);
        for (int c = 0; c < nc; c++) {
            float *o = s + ldc * (size_t)c + (size_t)r;
            *o = add ? *o + v[c] : v[c];
        }
    }
}

/* 8 to 16 activation rows against nr weight rows. */
static void kz_gemm(bool q6, int n, int nr, int nc, float *s, size_t ldc, const uint8_t *x, size_t bx, const uint8_t *y,
                    size_t by) {
    struct kz_acts a;
    const size_t xsize = q6 ? sizeof(struct lm_block_q6_K) : sizeof(struct lm_block_q4_K);
    for (int b0 = 0; b0 < n / LM_QK_K; b0 += KZ_CHUNK) {
        const int nb = n / LM_QK_K - b0 < KZ_CHUNK ? n / LM_QK_K - b0 : KZ_CHUNK;
        kz_pack(nb, nc, y + sizeof(struct lm_block_q8_K) * (size_t)b0, by, &a);
        const uint8_t *xb = x + xsize * (size_t)b0;
        int r = 0;
        if (q6) {
            for (; r + KZ_ROWS <= nr; r += KZ_ROWS) kz_tile(true, KZ_ROWS, nb, nc, xb + bx * (size_t)r, bx, &a, s + r, ldc, b0 > 0);
            for (; r < nr; r++) kz_tile(true, 1, nb, nc, xb + bx * (size_t)r, bx, &a, s + r, ldc, b0 > 0);
        } else {
            for (; r + KZ_ROWS <= nr; r += KZ_ROWS) kz_tile(false, KZ_ROWS, nb, nc, xb + bx * (size_t)r, bx, &a, s + r, ldc, b0 > 0);
            for (; r < nr; r++) kz_tile(false, 1, nb, nc, xb + bx * (size_t)r, bx, &a, s + r, ldc, b0 > 0);
        }
    }
}
#endif

/* The activation rows [c, nc) through zgemv_k, ZK_ROWS at a time */
static void k_rest(bool q6, int c, int n, int nr, int nc, float *s, size_t ldc, const uint8_t *x, size_t bx, const uint8_t *y,
                   size_t by) {
    for (int k; c < nc; c += k) {
        k = nc - c < ZK_ROWS ? nc - c : ZK_ROWS;
        float *sc = s + ldc * (size_t)c;
        const uint8_t *yc = y + by * (size_t)c;
        switch (k) {
        case 1: zgemv_k(q6, 1, n, nr, sc, ldc, x, bx, yc, by); break;
        case 2: zgemv_k(q6, 2, n, nr, sc, ldc, x, bx, yc, by); break;
        case 3: zgemv_k(q6, 3, n, nr, sc, ldc, x, bx, yc, by); break;
        default: zgemv_k(q6, 4, n, nr, sc, ldc, x, bx, yc, by); break;
        }
    }
}

/* k-quants: groups of 8 to 16 activation rows through the tiles (AVX2's of
 * 8 rows without VNNI); the rest, generation of one or a few sequences,
 * through zgemv_k (each row's bits as alone). */
static void k_rows(bool q6, int n, int nr, int nc, float *s, size_t ldc, const uint8_t *x, size_t bx, const uint8_t *y,
                   size_t by) {
    int c = 0;
#if defined(__AVX512VNNI__)
    for (; nc - c >= 8; c += nc - c < 16 ? nc - c : 16)
        kz_gemm(q6, n, nr, nc - c < 16 ? nc - c : 16, s + ldc * (size_t)c, ldc, x, bx, y + by * (size_t)c, by);
#else
    c = nc / 8 * 8;
    if (c) (q6 ? avx2_gemm_q6_K : avx2_gemm_q4_K)(n, nr, c, s, ldc, x, bx, y, by);
#endif
    k_rest(q6, c, n, nr, nc, s, ldc, x, bx, y, by);
}

static void gemm_q4_K(int n, int nr, int nc, float *s, size_t ldc, const void *x, size_t bx, const void *y, size_t by) {
    k_rows(false, n, nr, nc, s, ldc, x, bx, y, by);
}
static void gemm_q6_K(int n, int nr, int nc, float *s, size_t ldc, const void *x, size_t bx, const void *y, size_t by) {
    k_rows(true, n, nr, nc, s, ldc, x, bx, y, by);
}

/* ---- 32-weight blocks, two or more activation rows (generation of a few
 * sequences, and prompt batches) ----
 * The one-row kernel of quants_avx2.c (gemv_tile) fixes each dot product's
 * arithmetic for q5_0 and q5_1 (q4_0, q4_1 and q8_0 have theirs, above),
 * which a row must keep whatever rows share its batch: per block, 8 int32
 * sums of 4 byte products p, acc += (dx*dy) * p in 8 float lanes, mx*sy
 * rounded and summed apart; then hsum(acc) + that sum, per chunk of
 * LM_GEMM_CHUNK blocks. Here two activation rows share a 512-bit
 * vector, one per half: a weight block is decoded once, into both halves,
 * and meets each pair of activation rows in one vpdpbusd, one conversion,
 * one scale multiply and one FMA, lane for lane the one-row kernel's
 * operations. The mx*sy terms of up to 16 activation rows take one
 * multiply and one add. So every row of every batch gets the bits it gets
 * alone; a lone row goes to the one-row kernel itself.
 *
 * Rows are copied pair by pair into one 64-byte vector each, with the
 * pair's scales beside them, once per chunk. 2 to 7 rows (generation of a
 * few sequences) take tiles of 4 weight rows. Batches go through "the
 * rows in lanes" below, 16 rows at a time, with the same arithmetic for
 * fewer instructions; fewer than 16 leave its lanes empty, and 8 to 15 ran
 * there at 0.6-0.9 of the pairs' speed (1.2B q4_0 on an Intel Xeon), so
 * they take the pairs (q4_0, q4_1 and q8_0: z0_rows). The 8-rows-in-lanes
 * kernel of quants_avx2.c (il_tile) sums a block's products into one int32
 * per row and so rounds differently; it also ran at less than half the
 * speed of either. */
#define Q_MAX_PAIRS 8 /* activation rows per pass: pairs (an odd last one twice, its copy not stored) */

static void (*avx2_gemm[QKINDS])(int n, int nr, int nc, float *s, size_t ldc, const void *x, size_t bx, const void *y,
                                 size_t by);

/* A weight block's 32 weights as bytes in both 256-bit halves (unsigned,
 * w = dx*u + mx; q8_0: signed), and (dx, mx) in lanes 0 and 1 of *dm, from
 * one conversion, as the one-row kernel computes them. */
static inline __attribute__((always_inline)) __m512i q_decode(enum qkind k, const uint8_t *b, __m128 *dm) {
    uint32_t h;
    memcpy(&h, b, 4);
    if (k == Q4_1 || k == Q5_1) *dm = _mm_cvtph_ps(_mm_cvtsi32_si128((int)h));
    else {
        const __m128 d = _mm_cvtph_ps(_mm_set1_epi16((short)(h & 0xffff)));
        *dm = k == Q5_0 ? _mm_mul_ps(d, _mm_setr_ps(1, -16, 0, 0)) : d; /* q4_0's -8 is in its integer sums */
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

/* A chunk of up to 2 * Q_MAX_PAIRS activation rows, rearranged: qy[P*b + p]
 * the bytes of block b of rows 2p and 2p + 1 (or 2p again), dyp[P*b + p]
 * their d, 8 times each; sy[16*b + c] row c's s, or d*sum(q) for q8_0 rows
 * (q5_0), as gemm_y_scales of quants_avx2.c computes them. */
struct q_acts {
    __m512i qy[LM_GEMM_CHUNK * Q_MAX_PAIRS];
    __m512 dyp[LM_GEMM_CHUNK * Q_MAX_PAIRS];
    _Alignas(64) float sy[LM_GEMM_CHUNK * 16];
};

static void q_pack(enum qkind k, const int P, int nb, int nc, const uint8_t *y, size_t by, struct q_acts *a) {
    const size_t yqs = q_y_q8_1(k) ? offsetof(struct lm_block_q8_1, qs) : offsetof(struct lm_block_q8_0, qs);
    for (int b = 0; b < nb; b++) {
        float d[2 * Q_MAX_PAIRS];
        for (int c = 0; c < 2 * P; c++) {
            const uint8_t *blk = y + by * (size_t)(c < nc ? c : nc - 1) + q_ysize(k) * (size_t)b;
            const __m256i qy = _mm256_loadu_si256((const __m256i *)(blk + yqs));
            _mm256_store_si256((__m256i *)&a->qy[P * b + c / 2] + c % 2, qy);
            uint16_t h[2];
            memcpy(h, blk, sizeof h);
            d[c] = _cvtsh_ss(h[0]);
            float *sy = &a->sy[16 * b + c];
            if (q_y_q8_1(k)) *sy = _cvtsh_ss(h[1]);
            else *sy = d[c] * (float)_mm512_reduce_add_epi32(zdot_us8(_mm512_set1_epi8(1), _mm512_castsi256_si512(qy)));
        }
        for (int c = 2 * P; c < 16; c++) a->sy[16 * b + c] = 0; /* unused lanes: garbage could be subnormal, and slow */
        for (int p = 0; p < P; p++) {
            const __m256d hi = _mm256_castps_pd(_mm256_set1_ps(d[2 * p + 1])); /* (F only: no insertf32x8) */
            a->dyp[P * b + p] = _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_set1_ps(d[2 * p])), hi, 1));
        }
    }
}

/* s[c*ldc + r] (+)= the dot products of R weight rows with the P pairs of
 * activation rows in a (nc of them) over nb blocks; add: onto the previous
 * chunks. */
static inline __attribute__((always_inline)) void q_tile(enum qkind k, const int R, const int P, int nc, int nb,
                                                           const uint8_t *x, size_t bx, const struct q_acts *a, float *s,
                                                           size_t ldc, bool add) {
    const size_t xsize = q_xsize(k);
    /* 4 rows against up to 4 activation rows: the m terms of all 16 pairs
     * in one vector, lane 4r + c (the same product and sum in each lane as
     * a vector a row: a row's m and c's s), by one multiply and one add a
     * block instead of four of each and the broadcasts */
    const bool joint_m = R == 4 && P <= 2;
    __m512 acc[4][Q_MAX_PAIRS], accm[4], accm4 = _mm512_setzero_ps();
ZUNROLL
    for (int r = 0; r < R; r++) {
        accm[r] = _mm512_setzero_ps();
ZUNROLL
        for (int p = 0; p < P; p++) acc[r][p] = _mm512_setzero_ps();
    }
    for (int b = 0; b < nb; b++) {
        __m512i u[4];
        __m512 dx[4];
        __m128 dms[4];
ZUNROLL
        for (int r = 0; r < R; r++) {
            const uint8_t *blk = x + bx * (size_t)r + xsize * (size_t)b;
            _mm_prefetch((const char *)(blk + 16 * bx), _MM_HINT_T0); /* 16 rows ahead: the next tile's (as the one-row kernel) was slower */
            __m128 dm;
            u[r] = q_decode(k, blk, &dm);
            dx[r] = _mm512_broadcastss_ps(dm);
            dms[r] = dm;
            /* not fused, as in the one-row kernel */
            if (!joint_m)
                accm[r] = _mm512_add_ps(accm[r], _mm512_mul_ps(_mm512_broadcastss_ps(_mm_movehdup_ps(dm)), _mm512_load_ps(a->sy + 16 * b)));
        }
        if (joint_m) {
            const __m128 m0011 = _mm_shuffle_ps(dms[0], dms[1], _MM_SHUFFLE(1, 1, 1, 1));
            const __m128 m2233 = _mm_shuffle_ps(dms[2], dms[3], _MM_SHUFFLE(1, 1, 1, 1));
            const __m128 m0123 = _mm_shuffle_ps(m0011, m2233, _MM_SHUFFLE(2, 0, 2, 0));
            const __m512 mx = _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3),
                                                    _mm512_castps128_ps512(m0123));
            accm4 = _mm512_add_ps(accm4, _mm512_mul_ps(mx, _mm512_broadcast_f32x4(_mm_load_ps(a->sy + 16 * b))));
        }
ZUNROLL
        for (int p = 0; p < P; p++) {
            const __m512i qy = a->qy[P * b + p];
            const __m512 dy = a->dyp[P * b + p];
ZUNROLL
            for (int r = 0; r < R; r++) {
                acc[r][p] = _mm512_fmadd_ps(_mm512_mul_ps(dx[r], dy), zdot_us8_ps(u[r], qy), acc[r][p]);
            }
        }
    }
    float m4[16];
    if (joint_m) _mm512_storeu_ps(m4, accm4);
ZUNROLL
    for (int r = 0; r < R; r++) {
        float mr[16];
        if (!joint_m) _mm512_storeu_ps(mr, accm[r]);
        const float *m = joint_m ? m4 + 4 * r : mr;
ZUNROLL
        for (int c = 0; c < 2 * P; c++) {
            if (c >= nc) break;
            const __m512 v2 = acc[r][c / 2];
            const float v = hsum_ps(c % 2 ? _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v2), 1)) : _mm512_castps512_ps256(v2)) + m[c];
            float *o = s + ldc * (size_t)c + (size_t)r;
            *o = add ? *o + v : v;
        }
    }
}

/* nc (<= 2P) activation rows against nr weight rows, in tiles of R. */
static inline __attribute__((always_inline)) void q_rows(enum qkind k, const int R, const int P, int n, int nr, int nc,
                                                           float *s, size_t ldc, const uint8_t *x, size_t bx,
                                                           const uint8_t *y, size_t by) {
    struct q_acts a;
    for (int b0 = 0; b0 < n / 32; b0 += LM_GEMM_CHUNK) {
        const int nb = n / 32 - b0 < LM_GEMM_CHUNK ? n / 32 - b0 : LM_GEMM_CHUNK;
        const uint8_t *xb = x + q_xsize(k) * (size_t)b0;
        q_pack(k, P, nb, nc, y + q_ysize(k) * (size_t)b0, by, &a);
        int r = 0;
        for (; r + R <= nr; r += R) q_tile(k, R, P, nc, nb, xb + bx * (size_t)r, bx, &a, s + r, ldc, b0 > 0);
        for (; r < nr; r++) q_tile(k, 1, P, nc, nb, xb + bx * (size_t)r, bx, &a, s + r, ldc, b0 > 0);
    }
}

/* 16 activation rows of the 32-weight formats, the rows in lanes
 * (prompt batches): the one-row kernel's 8 float lanes of a dot product are
 * the sums of its 8 steps of 4 bytes, so here step st of a block gives, by
 * one vpdpbusd of the step's 4 weight bytes (broadcast) with the step's
 * bytes of 16 activation rows, lane st's integer sum for each of the 16
 * rows, and an FMA adds it, times dx*dy of each row, into the rows' sums of
 * lane st: per block 8 vpdpbusd, 8 conversions, 8 FMAs and one multiply
 * for 16 dot products, where the pairs took 8 of each of the four. The 8
 * lane sums are added up in hsum_ps's order at the end, so every row still
 * gets its one-row bits. q4_0, q4_1 and q8_0 take theirs (above): the 8
 * steps' vpdpbusd add up a block's integer sum, and one conversion and one
 * FMA a block follow (q8_0's weights plus 128: unsigned bytes). */
#define QL_ROWS 2 /* weight rows a tile: 8 sums each, in registers */

/* A chunk of 16 activation rows: q[8*b + st] lane c = bytes 4st..4st+3
 * of block b of row c; dy[b], sy[b] lane c: its d and s (or d*sum(q)), as
 * q_pack has them. */
struct ql_acts {
    __m512i q[LM_GEMM_CHUNK * 8];
    __m512 dy[LM_GEMM_CHUNK], sy[LM_GEMM_CHUNK];
    __m512i init[LM_GEMM_CHUNK]; /* -q_int_offset * sum(q): where a block's integer sum starts */
};

static void ql_pack(enum qkind k, int nb, const uint8_t *y, size_t by, struct ql_acts *a) {
    const size_t yqs = q_y_q8_1(k) ? offsetof(struct lm_block_q8_1, qs) : offsetof(struct lm_block_q8_0, qs);
    for (int b = 0; b < nb; b++) {
        _Alignas(64) uint16_t h[2][16]; /* d, and s (q8_1) */
        __m512 v[16];
        for (int c = 0; c < 16; c++) {
            const uint8_t *blk = y + by * (size_t)c + q_ysize(k) * (size_t)b;
            _mm_prefetch((const char *)(blk + 4 * q_ysize(k)), _MM_HINT_T0); /* 16 rows' streams: the hardware alone left them waiting */
            v[c] = _mm512_castsi512_ps(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(blk + yqs)))); /* upper half unused */
            memcpy(&h[0][c], blk, 2);
            memcpy(&h[1][c], blk + 2, 2);
        }
        transpose_16x16(v);
        __m512i sum = _mm512_setzero_si512(); /* of each row's bytes, for d*sum(q) */
        for (int st = 0; st < 8; st++) {
            a->q[8 * b + st] = _mm512_castps_si512(v[st]);
            if (!q_y_q8_1(k)) sum = _mm512_add_epi32(sum, zdot_us8(_mm512_set1_epi8(1), a->q[8 * b + st]));
        }
        a->dy[b] = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)h[0]));
        a->init[b] = _mm512_mullo_epi32(sum, _mm512_set1_epi32(-q_int_offset(k)));
        a->sy[b] = q_y_q8_1(k) ? _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)h[1])) : _mm512_mul_ps(a->dy[b], _mm512_cvtepi32_ps(sum));
    }
}

/* s[c*ldc + r] (+)= R weight rows against the 16 rows of a, over
 * nb blocks; add: onto the previous chunks. */
static inline __attribute__((always_inline)) void ql_tile(enum qkind k, const int R, int nb, const uint8_t *x,
                                                            size_t bx, const struct ql_acts *a, float *s, size_t ldc,
                                                            bool add) {
    __m512 acc[QL_ROWS][8], accm[QL_ROWS];
ZUNROLL
    for (int r = 0; r < R; r++) {
        accm[r] = _mm512_setzero_ps();
ZUNROLL
        for (int st = 0; st < 8; st++) acc[r][st] = _mm512_setzero_ps();
    }
    for (int b4 = 0; b4 < nb; b4 += 4) {
ZUNROLL
    for (int kb = 0; kb < 4; kb++) {
        const int b = b4 + kb;
        if (b >= nb) break;
        _Alignas(64) uint8_t w[QL_ROWS][64];
        __m512 dxy[QL_ROWS];
ZUNROLL
        for (int r = 0; r < R; r++) {
            const uint8_t *blk = x + bx * (size_t)r + q_xsize(k) * (size_t)b;
            __m128 dm;
            const __m512i wr = q_decode(k, blk, &dm);
            _mm512_store_si512(w[r], k == Q8_0 ? _mm512_xor_si512(wr, _mm512_set1_epi8((char)0x80)) : wr); /* q8_0: w + 128 */
            /* dx and mx in every lane: for q5_0, mx = -16dx (exact, the
             * one-row kernel's value) from dx widened at once, fewer steps
             * than broadcasting both */
            uint16_t d;
            memcpy(&d, blk, 2);
            const bool own_m = k == Q4_1 || k == Q5_1;
            const __m512 dx = own_m ? _mm512_broadcastss_ps(dm) : _mm512_cvtph_ps(_mm256_set1_epi16((short)d));
            const __m512 mx = own_m ? _mm512_broadcastss_ps(_mm_movehdup_ps(dm)) : _mm512_mul_ps(dx, _mm512_set1_ps(-16.0f));
            dxy[r] = _mm512_mul_ps(dx, a->dy[b]);
            /* q4_1's m term, exact (two f16 values), added after the block's product, as z0_step fuses it */
            if (k == Q4_1) acc[r][4 + kb] = _mm512_mul_ps(mx, a->sy[b]);
            else if (!q_int_sums(k)) /* q5_0, q5_1: not fused, as in the one-row kernel */
                accm[r] = _mm512_add_ps(accm[r], _mm512_mul_ps(mx, a->sy[b]));
        }
        /* the steps' bytes broadcast from memory (a load); taken from the
         * register, each took two shuffles */
        __asm__("" : "+m"(w));
        if (q_int_sums(k)) { /* the block's integer sum, in two chains of 4 steps, into sum b % 4 (kb) */
            __m512i p[QL_ROWS][2];
ZUNROLL
            for (int r = 0; r < R; r++) p[r][0] = a->init[b], p[r][1] = _mm512_setzero_si512();
ZUNROLL
            for (int st = 0; st < 8; st++) {
                __m512i qy = a->q[8 * b + st];
                __asm__("" : "+v"(qy));
ZUNROLL
                for (int r = 0; r < R; r++) {
                    int32_t w4;
                    memcpy(&w4, w[r] + 4 * st, 4);
                    p[r][st / 4] = zdpbusd(p[r][st / 4], _mm512_set1_epi32(w4), qy, k == Q8_0);
                }
            }
ZUNROLL
            for (int r = 0; r < R; r++) {
                acc[r][kb] = _mm512_fmadd_ps(dxy[r], _mm512_cvtepi32_ps(_mm512_add_epi32(p[r][0], p[r][1])), acc[r][kb]);
                if (k == Q4_1) acc[r][kb] = _mm512_add_ps(acc[r][kb], acc[r][4 + kb]);
            }
            continue;
        }
ZUNROLL
        for (int st = 0; st < 8; st++) {
            __m512i qy = a->q[8 * b + st];
            __asm__("" : "+v"(qy)); /* loaded once for the R rows */
ZUNROLL
            for (int r = 0; r < R; r++) {
                int32_t w4;
                memcpy(&w4, w[r] + 4 * st, 4);
                const __m512 p = zdot_us8_ps(_mm512_set1_epi32(w4), qy);
                acc[r][st] = _mm512_fmadd_ps(dxy[r], p, acc[r][st]);
            }
        }
    }
    }
ZUNROLL
    for (int r = 0; r < R; r++) {
        const __m512 *l = acc[r];
        float v[16];
        if (q_int_sums(k)) { /* (sum 0 + sum 1) + (sum 2 + sum 3), as z0_store */
            _mm512_storeu_ps(v, _mm512_add_ps(_mm512_add_ps(l[0], l[1]), _mm512_add_ps(l[2], l[3])));
            for (int c = 0; c < 16; c++) {
                float *o = s + ldc * (size_t)c + (size_t)r;
                *o = add ? *o + v[c] : v[c];
            }
            continue;
        }
        /* hsum_ps: (lanes 0+4, 2+6) and (1+5, 3+7) */
        const __m512 sum = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(l[0], l[4]), _mm512_add_ps(l[2], l[6])),
                                         _mm512_add_ps(_mm512_add_ps(l[1], l[5]), _mm512_add_ps(l[3], l[7])));
        _mm512_storeu_ps(v, _mm512_add_ps(sum, accm[r]));
        for (int c = 0; c < 16; c++) {
            float *o = s + ldc * (size_t)c + (size_t)r;
            *o = add ? *o + v[c] : v[c];
        }
    }
}

static inline __attribute__((always_inline)) void ql_gemm(enum qkind k, int n, int nr, float *s, size_t ldc,
                                                            const uint8_t *x, size_t bx, const uint8_t *y, size_t by) {
    struct ql_acts a;
    for (int b0 = 0; b0 < n / 32; b0 += LM_GEMM_CHUNK) {
        const int nb = n / 32 - b0 < LM_GEMM_CHUNK ? n / 32 - b0 : LM_GEMM_CHUNK;
        const uint8_t *xb = x + q_xsize(k) * (size_t)b0;
        ql_pack(k, nb, y + q_ysize(k) * (size_t)b0, by, &a);
        int r = 0;
        for (; r + QL_ROWS <= nr; r += QL_ROWS) ql_tile(k, QL_ROWS, nb, xb + bx * (size_t)r, bx, &a, s + r, ldc, b0 > 0);
        for (; r < nr; r++) ql_tile(k, 1, nb, xb + bx * (size_t)r, bx, &a, s + r, ldc, b0 > 0);
    }
}

static inline __attribute__((always_inline)) void q_gemm(enum qkind k, int n, int nr, int nc, float *s, size_t ldc,
                                                           const void *vx, size_t bx, const void *vy, size_t by) {
    const uint8_t *x = vx, *y = vy;
    /* 4 weight rows a tile where the weights stream from memory once (a
     * few rows), 2 where 16 activation rows reuse them from L2 */
    for (int c = 0; c < nc;) {
        const int C = nc - c >= 2 * Q_MAX_PAIRS ? 2 * Q_MAX_PAIRS : nc - c;
        const uint8_t *yc = y + by * (size_t)c;
        float *sc = s + ldc * (size_t)c;
        if (C == 2 * Q_MAX_PAIRS) {
            ql_gemm(k, n, nr, sc, ldc, x, bx, yc, by);
            c += C;
            continue;
        }
        if (q_int_sums(k)) {
            if (C == 1) z0_gemv(k, n, nr, sc, x, bx, yc);
            else z0_rows(k, n, nr, C, sc, ldc, x, bx, yc, by);
            c += C;
            continue;
        }
        switch ((C + 1) / 2) {
        case 1:
            if (C == 1) avx2_gemm[k](n, nr, 1, sc, ldc, x, bx, yc, by); /* the one-row kernel */
            else q_rows(k, 4, 1, n, nr, C, sc, ldc, x, bx, yc, by);
            break;
        case 2: q_rows(k, 4, 2, n, nr, C, sc, ldc, x, bx, yc, by); break;
        case 3: q_rows(k, 4, 3, n, nr, C, sc, ldc, x, bx, yc, by); break;
        case 4: q_rows(k, 4, 4, n, nr, C, sc, ldc, x, bx, yc, by); break;
        case 5: q_rows(k, 2, 5, n, nr, C, sc, ldc, x, bx, yc, by); break;
        case 6: q_rows(k, 2, 6, n, nr, C, sc, ldc, x, bx, yc, by); break;
        case 7: q_rows(k, 2, 7, n, nr, C, sc, ldc, x, bx, yc, by); break;
        default: q_rows(k, 2, Q_MAX_PAIRS, n, nr, C, sc, ldc, x, bx, yc, by); break;
        }
        c += C;
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
    t[LM_TYPE_BF16].act_from_f32 = act_from_f32_bf16;
    static const enum lm_type types[QKINDS] = {LM_TYPE_Q4_0, LM_TYPE_Q4_1, LM_TYPE_Q5_0, LM_TYPE_Q5_1, LM_TYPE_Q8_0};
    static void (*const gemm[QKINDS])(int, int, int, float *, size_t, const void *, size_t, const void *, size_t) = {
        gemm_q4_0, gemm_q4_1, gemm_q5_0, gemm_q5_1, gemm_q8_0};
    for (int k = 0; k < QKINDS; k++) {
        avx2_gemm[k] = t[types[k]].gemm;
        t[types[k]].gemm = gemm[k];
        t[types[k]].gemm_rows_independent = true;
    }
    avx2_gemm_q4_K = t[LM_TYPE_Q4_K].gemm;
    avx2_gemm_q6_K = t[LM_TYPE_Q6_K].gemm;
    t[LM_TYPE_Q4_K].vec_dot = zdot_q4_K_q8_K;
    t[LM_TYPE_Q4_K].gemm = gemm_q4_K;
    t[LM_TYPE_Q6_K].vec_dot = zdot_q6_K_q8_K;
    t[LM_TYPE_Q6_K].gemm = gemm_q6_K;
}

#endif
