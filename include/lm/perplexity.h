/* perplexity.h: perplexity and KL divergence of a model over a text, scored
 * as llama.cpp's llama-perplexity scores them (tools/perplexity/
 * perplexity.cpp), and the logits file it reads and writes.
 *
 * Windows: the text's tokens are cut into consecutive chunks of n_ctx
 * tokens. Each runs from an empty cache, its first token replaced by BOS
 * when the vocabulary adds one (the saved tokens stay the text's). The
 * first half is context only: each position p from n_ctx/2 to n_ctx-2 is
 * scored on the token at p+1, nll = -log softmax(logits_p)[token]. Over all
 * count = n_chunk * (n_ctx - 1 - n_ctx/2) scores, PPL = exp(mean nll) and
 * its standard error PPL * sqrt((mean nll^2 - mean^2) / (count - 1)).
 *
 * KL divergence compares the model with a base whose log-probabilities a
 * logits file holds: per scored position, KL(base || model) summed over the
 * tokens the base gives a log-probability above -16, whether both put the
 * same token on top, and dp = p(token) - p_base(token); the statistics are
 * llama.cpp's (means with their standard errors, median, percentiles, the
 * ratio of the two perplexities with its error from their covariance).
 *
 * The logits file (llama.cpp's --kl-divergence-base), in the machine's byte
 * order (little-endian wherever lm runs):
 *   char    magic[8] = "_logits_"
 *   int32   n_ctx, n_vocab, n_chunk
 *   int32   tokens[n_chunk * n_ctx]     the text's tokens, chunk after chunk
 *   then for each chunk, for each scored position in order, a record of
 *   nv = 2 * ((n_vocab + 1) / 2) + 4 uint16 (rows stay 4-byte aligned):
 *   float32 scale, min_log_prob         (the record's first 8 bytes)
 *   uint16  q[n_vocab]                  log p[i] ~ min_log_prob + scale * q[i]
 *   uint16  0                           when n_vocab is odd
 * min_log_prob is the smallest log-probability but no less than 16 below
 * the largest, scale spreads that range over 0..65535 (q rounded to
 * nearest, ties to even; 0 at or below the floor; all 0 when the logits are
 * all equal). Nothing in the file says which model or text it came from.
 *
 * Every function here computes what llama.cpp computes in the same float
 * and double steps, so equal logits give equal bytes and equal figures. */
#ifndef LM_PERPLEXITY_H
#define LM_PERPLEXITY_H

#include "lm/model.h"

#include <stdio.h>

#define LM_PPL_MIN_CTX 4 /* the smallest window with a scored position */

/* ---- one position ----------------------------------------------------------- */

/* -log softmax(logits)[next], in double. */
double lm_ppl_nll(int n_vocab, const float *logits, int32_t next);

/* Uint16 in one record of the logits file. */
size_t lm_ppl_record_len(int n_vocab);
/* Packs log softmax(logits) into rec (lm_ppl_record_len values) and returns
 * -log p(next), as llama.cpp computes it when it saves (in float). */
double lm_ppl_pack(int n_vocab, const float *logits, int32_t next, uint16_t *rec);

/* A position scored against a base record. */
struct lm_kld_token {
    double kld;          /* KL(base || model) */
    float nll, nll_base; /* -log p(next) under the model and under the base */
    float p_diff;        /* p(next) - p_base(next) */
    bool same_top;       /* both put the same token first (lowest id on ties) */
};
void lm_kld_score(int n_vocab, const float *logits, const uint16_t *rec, int32_t next, struct lm_kld_token *t);

/* ---- the logits file -------------------------------------------------------- */

struct lm_logits_file {
    FILE *f;
    const char *path;  /* borrowed, for messages */
    int n_ctx, n_vocab, n_chunk;
    int n_scored;      /* records per chunk: n_ctx - 1 - n_ctx/2 */
    size_t nv;         /* uint16 per record */
    int32_t *tokens;   /* (n_chunk * n_ctx), when opened for reading */
    bool writing;
};

/* Creates path and writes the header and tokens[0..n_chunk*n_ctx). */
int lm_logits_create(struct lm_logits_file *lf, const char *path, int n_ctx, int n_vocab, int n_chunk,
                     const int32_t *tokens, struct lm_err *err);
/* Opens path for reading. The file is hostile: its magic, n_ctx (>=
 * LM_PPL_MIN_CTX), n_vocab (1..LM_MAX_VOCAB), n_chunk (>= 1) and every
 * token are checked, and its size must be exactly what they imply, before
 * anything is allocated. The vocabulary is the caller's to compare. */
int lm_logits_open(struct lm_logits_file *lf, const char *path, struct lm_err *err);
/* The next n records (reading or writing, in the file's order). */
int lm_logits_read(struct lm_logits_file *lf, uint16_t *recs, int n, struct lm_err *err);
int lm_logits_write(struct lm_logits_file *lf, const uint16_t *recs, int n, struct lm_err *err);
/* Closes; a writer reports a failed flush. Safe on a zeroed struct. */
int lm_logits_close(struct lm_logits_file *lf, struct lm_err *err);

/* ---- whole runs --------------------------------------------------------------- */

struct lm_ppl_opts {
    int n_ctx;      /* window, >= LM_PPL_MIN_CTX and <= the context's n_ctx */
    int n_chunks;   /* most windows to score; <= 0: all */
    int32_t bos;    /* replaces each window's first token; -1: none */
    /* Called after each chunk with the number done (may be NULL). */
    void (*on_chunk)(void *ud, int n_done);
    void *ud;
};

/* Running sums of a perplexity run. */
struct lm_ppl_result {
    int n_chunk;     /* windows scored (so far) */
    size_t count;    /* positions scored */
    double nll, nll2;
};
/* PPL and its standard error (0 when the variance is not positive). */
void lm_ppl_estimate(const struct lm_ppl_result *r, double *ppl, double *ppl_err);

/* Windows a run over n_tokens scores: as many whole ones as fit, at most
 * o->n_chunks. */
int lm_ppl_n_chunks(const struct lm_ppl_opts *o, size_t n_tokens);

/* Perplexity over windows of tokens[0..n_tokens), which must hold at least
 * two windows (2 * o->n_ctx tokens). With save, its records are written
 * there (after lm_logits_create with lm_ppl_n_chunks windows). */
int lm_perplexity(struct lm_ctx *c, const int32_t *tokens, size_t n_tokens, const struct lm_ppl_opts *o,
                  struct lm_logits_file *save, struct lm_ppl_result *r, struct lm_err *err);

/* Sums over the scored positions of a KL-divergence run, as llama.cpp keeps them. */
struct lm_kld_sums {
    double nll, nll2, nll_base, nll_base2, nll_nll_base, kld, kld2, p_diff, p_diff2, p_diff4;
    float max_p_diff;
    size_t n_same_top, count;
};
struct lm_kld_result {
    int n_chunk;
    struct lm_kld_sums sums;
    float *kld, *p_diff; /* (sums.count) per position, in order until lm_kld_sort */
};
void lm_kld_result_free(struct lm_kld_result *r); /* safe on zeroed */

/* KL divergence of the model against base (open for reading): the file's
 * windows (o->n_ctx must be base->n_ctx), their first o->n_chunks. */
int lm_kl_divergence(struct lm_ctx *c, struct lm_logits_file *base, const struct lm_ppl_opts *o,
                     struct lm_kld_result *r, struct lm_err *err);

/* The figures llama.cpp derives from the sums (each *_unc a standard error). */
struct lm_kld_stats {
    double ppl, ppl_unc, ppl_base, ppl_base_unc;
    double log_ppl_cor;                   /* correlation of ln PPL and ln PPL(base) */
    double log_ratio, log_ratio_unc;      /* ln(PPL / PPL(base)) */
    double ratio, ratio_unc, diff, diff_unc;
    double kld, kld_unc;
    double p_diff, p_diff_unc, rms_p_diff, rms_p_diff_unc;
    double same_top, same_top_unc;        /* fraction of positions */
};
void lm_kld_stats(const struct lm_kld_sums *s, struct lm_kld_stats *st);

/* Sorts r->kld and r->p_diff for the order statistics below. */
void lm_kld_sort(struct lm_kld_result *r);
/* Of sorted values (n >= 1): linear interpolation at fraction * (n - 1),
 * in float as llama.cpp does; the median as the middle value or the mean
 * of the two middle ones. */
float lm_percentile(const float *sorted, size_t n, float fraction);
float lm_median(const float *sorted, size_t n);

#endif
