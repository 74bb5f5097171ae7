/* perplexity.c: see perplexity.h. */
#include "lm/perplexity.h"

#include "lm/tokenizer.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- one position ----------------------------------------------------------- */

static float max_of(int n, const float *x) {
    float m = x[0];
    for (int i = 1; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

/* Sum of exp(x - max) in double over floats' exponentials, llama.cpp's order. */
static double sum_exp(int n, const float *x, float max) {
    double s = 0;
    for (int i = 0; i < n; i++) s += expf(x[i] - max);
    return s;
}

double lm_ppl_nll(int n_vocab, const float *logits, int32_t next) {
    float max = max_of(n_vocab, logits);
    return -(logits[next] - max - log(sum_exp(n_vocab, logits, max)));
}

size_t lm_ppl_record_len(int n_vocab) { return 2 * (((size_t)n_vocab + 1) / 2) + 4; }

double lm_ppl_pack(int n_vocab, const float *logits, int32_t next, uint16_t *rec) {
    float max = logits[0], min = logits[0];
    for (int i = 1; i < n_vocab; i++) {
        max = logits[i] > max ? logits[i] : max;
        min = logits[i] < min ? logits[i] : min;
    }
    min = min > max - 16 ? min : max - 16; /* what lies further below is too unlikely to matter */
    const float log_sum = (float)log(sum_exp(n_vocab, logits, max));
    const float min_log_prob = min - max - log_sum;
    const float scale = (max - min) / 65535.f;
    memcpy(rec, &scale, sizeof scale);
    memcpy(rec + 2, &min_log_prob, sizeof min_log_prob);
    uint16_t *q = rec + 4;
    if (scale != 0) {
        const float inv = 1 / scale;
        /* lrintf rounds to nearest, ties to even, as llama.cpp's nearest_int;
         * the values are at most 65535 (plus rounding), so uint16 holds them */
        for (int i = 0; i < n_vocab; i++) q[i] = logits[i] > min ? (uint16_t)lrintf(inv * (logits[i] - min)) : 0;
    } else {
        memset(q, 0, sizeof *q * (size_t)n_vocab);
    }
    if (n_vocab % 2) q[n_vocab] = 0;
    return max + log_sum - logits[next];
}

void lm_kld_score(int n_vocab, const float *logits, const uint16_t *rec, int32_t next, struct lm_kld_token *t) {
    float max = logits[0];
    int imax = 0;
    for (int i = 1; i < n_vocab; i++)
        if (logits[i] > max) max = logits[i], imax = i;
    const float log_sum = (float)log(sum_exp(n_vocab, logits, max));
    float scale, min_log_prob;
    memcpy(&scale, rec, sizeof scale);
    memcpy(&min_log_prob, rec + 2, sizeof min_log_prob);
    const uint16_t *q = rec + 4;
    t->nll = max + log_sum - logits[next];
    t->nll_base = -(scale * q[next] + min_log_prob);
    const float log_norm = max + log_sum; /* log p[i] = logits[i] - log_norm */
    double kld = 0;
    int imax_base = 0;
    float top_base = 0;
    for (int i = 0; i < n_vocab; i++) {
        const float lp_base = scale * q[i] + min_log_prob;
        if (i == 0 || lp_base > top_base) top_base = lp_base, imax_base = i;
        if (lp_base > -16.f) kld += expf(lp_base) * (lp_base - logits[i] + log_norm);
    }
    t->kld = kld;
    t->same_top = imax == imax_base;
    t->p_diff = expf(-t->nll) - expf(-t->nll_base);
}

static void kld_add(struct lm_kld_sums *s, const struct lm_kld_token *t) {
    /* products in float where llama.cpp takes them in float */
    s->nll += t->nll;
    s->nll2 += t->nll * t->nll;
    s->nll_base += t->nll_base;
    s->nll_base2 += t->nll_base * t->nll_base;
    s->nll_nll_base += t->nll * t->nll_base;
    s->kld += t->kld;
    s->kld2 += t->kld * t->kld;
    s->count++;
    s->n_same_top += t->same_top;
    s->p_diff += t->p_diff;
    const double p_diff2 = t->p_diff * t->p_diff;
    s->p_diff2 += p_diff2;
    s->p_diff4 += p_diff2 * p_diff2;
    s->max_p_diff = fmaxf(s->max_p_diff, fabsf(t->p_diff));
}

/* ---- statistics -------------------------------------------------------------- */

void lm_ppl_estimate(const struct lm_ppl_result *r, double *ppl, double *ppl_err) {
    double mean = r->nll / (double)r->count, var = r->nll2 / (double)r->count - mean * mean;
    *ppl = exp(mean);
    *ppl_err = var > 0 && r->count > 1 ? sqrt(var / (double)(r->count - 1)) * *ppl : 0;
}

/* Mean and its standard error (0 with ten values or fewer, as llama.cpp). */
static void mean_unc(double sum, double sum2, size_t count, double *mean, double *unc) {
    *mean = *unc = 0;
    if (count < 1) return;
    double f = sum / (double)count, df = sum2 / (double)count - f * f;
    *mean = f;
    *unc = df > 0 && count > 10 ? sqrt(df / (double)(count - 1)) : 0;
}

/* Covariance of the two means (0 under ten values). */
static double mean_cov(double suma, double sumb, double sumab, size_t count) {
    if (count < 10) return 0;
    double n = (double)count;
    return (sumab / n - (suma / n) * (sumb / n)) / (n - 1);
}

void lm_kld_stats(const struct lm_kld_sums *s, struct lm_kld_stats *st) {
    memset(st, 0, sizeof *st);
    double lp, lp_unc, lb, lb_unc;
    mean_unc(s->nll, s->nll2, s->count, &lp, &lp_unc);
    mean_unc(s->nll_base, s->nll_base2, s->count, &lb, &lb_unc);
    st->ppl = exp(lp);
    st->ppl_unc = st->ppl * lp_unc; /* d exp(x) = exp(x) dx */
    st->ppl_base = exp(lb);
    st->ppl_base_unc = st->ppl_base * lb_unc;
    double cov = mean_cov(s->nll, s->nll_base, s->nll_nll_base, s->count);
    st->log_ppl_cor = cov / (lp_unc * lb_unc);
    st->log_ratio = lp - lb;
    st->log_ratio_unc = sqrt(lp_unc * lp_unc + lb_unc * lb_unc - 2 * cov);
    st->ratio = exp(st->log_ratio);
    st->ratio_unc = st->ratio * st->log_ratio_unc;
    st->diff = st->ppl - st->ppl_base;
    st->diff_unc = sqrt(st->ppl_unc * st->ppl_unc + st->ppl_base_unc * st->ppl_base_unc -
                        2 * st->ppl * st->ppl_base * cov);
    mean_unc(s->kld, s->kld2, s->count, &st->kld, &st->kld_unc);
    mean_unc(s->p_diff, s->p_diff2, s->count, &st->p_diff, &st->p_diff_unc);
    double mse, mse_unc;
    mean_unc(s->p_diff2, s->p_diff4, s->count, &mse, &mse_unc);
    st->rms_p_diff = sqrt(mse);
    st->rms_p_diff_unc = 0.5 / st->rms_p_diff * mse_unc;
    st->same_top = s->count ? (double)s->n_same_top / (double)s->count : 0;
    st->same_top_unc = s->count > 1 ? sqrt(st->same_top * (1 - st->same_top) / (double)(s->count - 1)) : 0;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

void lm_kld_sort(struct lm_kld_result *r) {
    qsort(r->kld, r->sums.count, sizeof *r->kld, cmp_float);
    qsort(r->p_diff, r->sums.count, sizeof *r->p_diff, cmp_float);
}

float lm_percentile(const float *sorted, size_t n, float fraction) {
    LM_ASSERT(n >= 1);
    if (fraction <= 0) return sorted[0];
    if (fraction >= 1) return sorted[n - 1];
    float p = fraction * (float)(n - 1);
    size_t ip = (size_t)p;
    p -= (float)ip;
    return (1 - p) * sorted[ip] + p * sorted[ip + 1 < n ? ip + 1 : n - 1];
}

float lm_median(const float *sorted, size_t n) {
    LM_ASSERT(n >= 1);
    return n % 2 ? sorted[n / 2] : 0.5f * (sorted[n / 2] + sorted[n / 2 - 1]);
}

void lm_kld_result_free(struct lm_kld_result *r) {
    free(r->kld);
    free(r->p_diff);
    memset(r, 0, sizeof *r);
}

/* ---- the logits file -------------------------------------------------------- */

#define HEADER_BYTES 20 /* magic, n_ctx, n_vocab, n_chunk */

static int io_fail(struct lm_logits_file *lf, const char *what, struct lm_err *err) {
    const char *why = errno ? strerror(errno) : lf->writing ? "short write" : "unexpected end of file";
    return lm_errf(err, "%s: cannot %s (%s)", lf->path, what, why);
}

static void set_shape(struct lm_logits_file *lf, int n_ctx, int n_vocab, int n_chunk) {
    lf->n_ctx = n_ctx;
    lf->n_vocab = n_vocab;
    lf->n_chunk = n_chunk;
    lf->n_scored = n_ctx - 1 - n_ctx / 2;
    lf->nv = lm_ppl_record_len(n_vocab);
}

int lm_logits_create(struct lm_logits_file *lf, const char *path, int n_ctx, int n_vocab, int n_chunk,
                     const int32_t *tokens, struct lm_err *err) {
    memset(lf, 0, sizeof *lf);
    LM_ASSERT(n_ctx >= LM_PPL_MIN_CTX && n_vocab >= 1 && n_chunk >= 1);
    lf->path = path;
    lf->writing = true;
    set_shape(lf, n_ctx, n_vocab, n_chunk);
    errno = 0;
    if (!(lf->f = fopen(path, "wb"))) return io_fail(lf, "create it", err);
    int32_t head[3] = {n_ctx, n_vocab, n_chunk};
    size_t n_tok = (size_t)n_chunk * (size_t)n_ctx;
    if (fwrite("_logits_", 1, 8, lf->f) != 8 || fwrite(head, sizeof head, 1, lf->f) != 1 ||
        fwrite(tokens, sizeof *tokens, n_tok, lf->f) != n_tok) {
        io_fail(lf, "write it", err);
        lm_logits_close(lf, NULL);
        return -1;
    }
    return 0;
}

int lm_logits_open(struct lm_logits_file *lf, const char *path, struct lm_err *err) {
    memset(lf, 0, sizeof *lf);
    lf->path = path;
    errno = 0;
    if (!(lf->f = fopen(path, "rb"))) return io_fail(lf, "open it", err);
    struct stat st;
    unsigned char head[HEADER_BYTES];
    int32_t v[3];
    if (fstat(fileno(lf->f), &st) != 0 || !S_ISREG(st.st_mode)) {
        lm_errf(err, "%s: not a regular file", path);
        goto fail;
    }
    if (fread(head, 1, sizeof head, lf->f) != sizeof head) {
        lm_errf(err, "%s: too short for a logits file (%lld bytes)", path, (long long)st.st_size);
        goto fail;
    }
    if (memcmp(head, "_logits_", 8) != 0) {
        lm_errf(err, "%s: not a logits file (it does not start with _logits_)", path);
        goto fail;
    }
    memcpy(v, head + 8, sizeof v);
    if (v[0] < LM_PPL_MIN_CTX || v[1] < 1 || v[1] > LM_MAX_VOCAB || v[2] < 1) {
        lm_errf(err, "%s: bad header: n_ctx %d, n_vocab %d, n_chunk %d", path, v[0], v[1], v[2]);
        goto fail;
    }
    set_shape(lf, v[0], v[1], v[2]);
    /* The size the header implies, in checked arithmetic: a header that
     * promises more than the file holds is refused before any allocation. */
    uint64_t n_tok = (uint64_t)v[2] * (uint64_t)v[0], n_rec = (uint64_t)v[2] * (uint64_t)lf->n_scored;
    uint64_t want = lm_add_sat(lm_add_sat(HEADER_BYTES, lm_mul_sat(n_tok, 4)), lm_mul_sat(n_rec, lm_mul_sat(lf->nv, 2)));
    if ((uint64_t)st.st_size != want) {
        lm_errf(err, "%s: %lld bytes, but its header (n_ctx %d, n_vocab %d, n_chunk %d) says %llu%s", path,
                (long long)st.st_size, v[0], v[1], v[2], (unsigned long long)want,
                (uint64_t)st.st_size < want ? " (truncated?)" : "");
        goto fail;
    }
    if (!(lf->tokens = malloc(sizeof *lf->tokens * (size_t)n_tok))) {
        lm_errf(err, "%s: cannot allocate %llu tokens", path, (unsigned long long)n_tok);
        goto fail;
    }
    errno = 0;
    if (fread(lf->tokens, sizeof *lf->tokens, (size_t)n_tok, lf->f) != (size_t)n_tok) {
        io_fail(lf, "read its tokens", err);
        goto fail;
    }
    for (uint64_t i = 0; i < n_tok; i++)
        if (lf->tokens[i] < 0 || lf->tokens[i] >= lf->n_vocab) {
            lm_errf(err, "%s: token %llu is %d, outside its vocabulary of %d", path, (unsigned long long)i,
                    lf->tokens[i], lf->n_vocab);
            goto fail;
        }
    return 0;
fail:
    lm_logits_close(lf, NULL);
    return -1;
}

int lm_logits_read(struct lm_logits_file *lf, uint16_t *recs, int n, struct lm_err *err) {
    LM_ASSERT(!lf->writing && n >= 0);
    errno = 0;
    size_t want = (size_t)n * lf->nv;
    if (fread(recs, sizeof *recs, want, lf->f) != want) return io_fail(lf, "read its log-probabilities", err);
    return 0;
}

int lm_logits_write(struct lm_logits_file *lf, const uint16_t *recs, int n, struct lm_err *err) {
    LM_ASSERT(lf->writing && n >= 0);
    errno = 0;
    size_t want = (size_t)n * lf->nv;
    if (fwrite(recs, sizeof *recs, want, lf->f) != want) return io_fail(lf, "write it", err);
    return 0;
}

int lm_logits_close(struct lm_logits_file *lf, struct lm_err *err) {
    int rc = 0;
    if (lf->f) {
        errno = 0;
        bool bad = lf->writing && (fflush(lf->f) != 0 || ferror(lf->f));
        if (fclose(lf->f) != 0) bad = lf->writing;
        if (bad) rc = io_fail(lf, "write it", err);
    }
    free(lf->tokens);
    memset(lf, 0, sizeof *lf);
    return rc;
}

/* ---- whole runs --------------------------------------------------------------- */

/* The rows of one batch to score, the scorer's job over the pool. */
struct score_job {
    int n_vocab;
    const float *logits;  /* (n, n_vocab) */
    const int32_t *next;  /* (n) the token each row is scored on */
    uint16_t *recs;       /* (n, nv) records to fill (saving) or compare with (KL) */
    size_t nv;
    double *nll;          /* (n) perplexity runs */
    struct lm_kld_token *kld; /* (n) KL runs */
};

static void score_row(void *arg, int row, int ith) {
    (void)ith;
    struct score_job *j = arg;
    const float *logits = j->logits + (size_t)row * (size_t)j->n_vocab;
    uint16_t *rec = j->recs ? j->recs + (size_t)row * j->nv : NULL;
    if (j->kld) lm_kld_score(j->n_vocab, logits, rec, j->next[row], &j->kld[row]);
    else if (rec) j->nll[row] = lm_ppl_pack(j->n_vocab, logits, j->next[row], rec);
    else j->nll[row] = lm_ppl_nll(j->n_vocab, logits, j->next[row]);
}

/* What a run keeps: the window's tokens, a batch of logits and records. */
struct run {
    struct lm_ctx *c;
    const struct lm_ppl_opts *o;
    int n_vocab, first, max_rows;
    int32_t *win;         /* (n_ctx) */
    float *logits;        /* (max_rows, n_vocab) */
    uint16_t *recs;       /* (max_rows, nv) when saving or comparing */
    double *nll;          /* (max_rows) */
    struct lm_kld_token *kld; /* (max_rows) */
};

static void run_free(struct run *r) {
    free(r->win);
    free(r->logits);
    free(r->recs);
    free(r->nll);
    free(r->kld);
}

/* Buffers for a run; their sizes come from -c and -b, so no aborts. */
static int run_init(struct run *r, struct lm_ctx *c, const struct lm_ppl_opts *o, size_t nv, bool kld, struct lm_err *err) {
    memset(r, 0, sizeof *r);
    r->c = c;
    r->o = o;
    r->n_vocab = c->model->hp.n_vocab;
    if (o->n_ctx < LM_PPL_MIN_CTX || o->n_ctx > c->n_ctx)
        return lm_errf(err, "a window of %d tokens (at least %d, at most the context's %d)", o->n_ctx, LM_PPL_MIN_CTX,
                       c->n_ctx);
    r->first = o->n_ctx / 2;
    int n_scored = o->n_ctx - 1 - r->first;
    r->max_rows = c->n_batch < n_scored ? c->n_batch : n_scored;
    size_t rows = (size_t)r->max_rows;
    r->win = malloc(sizeof *r->win * (size_t)o->n_ctx);
    r->logits = malloc(sizeof *r->logits * rows * (size_t)r->n_vocab);
    r->recs = nv ? malloc(sizeof *r->recs * rows * nv) : NULL;
    r->nll = malloc(sizeof *r->nll * rows);
    r->kld = kld ? malloc(sizeof *r->kld * rows) : NULL;
    if (!r->win || !r->logits || (nv && !r->recs) || !r->nll || (kld && !r->kld)) {
        run_free(r);
        return lm_errf(err, "cannot allocate the logits of %zu positions (%s; try a smaller -b)", rows,
                       lm_size_str((uint64_t)rows * (uint64_t)r->n_vocab * sizeof(float)).s);
    }
    return 0;
}

/* Runs the window tokens[0..n_ctx) from an empty cache in batches; after
 * each batch that holds scored positions, calls score(ud, row0, n) with
 * their logits in r->logits (row 0 = position first). */
static int run_window(struct run *r, const int32_t *tokens, int (*score)(struct run *, void *, int, int, struct lm_err *),
                      void *ud, struct lm_err *err) {
    int n_ctx = r->o->n_ctx, nb = r->c->n_batch;
    memcpy(r->win, tokens, sizeof *r->win * (size_t)n_ctx);
    if (r->o->bos >= 0) r->win[0] = r->o->bos;
    for (int b0 = 0; b0 < n_ctx; b0 += nb) {
        int k = n_ctx - b0 < nb ? n_ctx - b0 : nb;
        /* positions first .. n_ctx-2 have a next token to score */
        int o0 = b0 > r->first ? b0 : r->first, o1 = b0 + k < n_ctx - 1 ? b0 + k : n_ctx - 1;
        int n_out = o1 > o0 ? o1 - o0 : 0;
        if (lm_forward_logits(r->c, r->win + b0, k, b0, n_out ? o0 - b0 : 0, n_out, r->logits, err) < 0) return -1;
        if (n_out && score(r, ud, o0 - r->first, n_out, err) < 0) return -1;
    }
    return 0;
}

struct ppl_state {
    const int32_t *chunk; /* the window's tokens */
    struct lm_logits_file *save;
    struct lm_ppl_result *res;
};

static int ppl_score(struct run *r, void *ud, int row0, int n, struct lm_err *err) {
    struct ppl_state *s = ud;
    struct score_job j = {r->n_vocab, r->logits, s->chunk + r->first + row0 + 1, s->save ? r->recs : NULL,
                          s->save ? s->save->nv : 0, r->nll, NULL};
    lm_pool_run(r->c->pool, n, score_row, &j);
    for (int i = 0; i < n; i++) { /* in order, so the sums do not depend on the threads */
        s->res->nll += r->nll[i];
        s->res->nll2 += r->nll[i] * r->nll[i];
    }
    s->res->count += (size_t)n;
    return s->save ? lm_logits_write(s->save, r->recs, n, err) : 0;
}

static int n_chunks(const struct lm_ppl_opts *o, int n_max) {
    return o->n_chunks > 0 && o->n_chunks < n_max ? o->n_chunks : n_max;
}

int lm_ppl_n_chunks(const struct lm_ppl_opts *o, size_t n_tokens) {
    size_t n_max = o->n_ctx > 0 ? n_tokens / (size_t)o->n_ctx : 0;
    return n_chunks(o, n_max > INT32_MAX ? INT32_MAX : (int)n_max);
}

int lm_perplexity(struct lm_ctx *c, const int32_t *tokens, size_t n_tokens, const struct lm_ppl_opts *o,
                  struct lm_logits_file *save, struct lm_ppl_result *r, struct lm_err *err) {
    memset(r, 0, sizeof *r);
    if (o->n_ctx < 1 || n_tokens < 2 * (size_t)o->n_ctx)
        return lm_errf(err, "%zu tokens: a window of %d needs at least %zu", n_tokens, o->n_ctx, 2 * (size_t)o->n_ctx);
    int n_chunk = lm_ppl_n_chunks(o, n_tokens);
    if (save) LM_ASSERT(save->n_ctx == o->n_ctx && save->n_chunk == n_chunk && save->n_vocab == c->model->hp.n_vocab);
    struct run run;
    if (run_init(&run, c, o, save ? save->nv : 0, false, err) < 0) return -1;
    struct ppl_state s = {.save = save, .res = r};
    int rc = 0;
    for (int i = 0; i < n_chunk && rc == 0; i++) {
        s.chunk = tokens + (size_t)i * (size_t)o->n_ctx;
        rc = run_window(&run, s.chunk, ppl_score, &s, err);
        if (rc == 0) {
            r->n_chunk++;
            if (o->on_chunk) o->on_chunk(o->ud, r->n_chunk);
        }
    }
    run_free(&run);
    return rc;
}

struct kld_state {
    const int32_t *chunk;
    struct lm_logits_file *base;
    struct lm_kld_result *res;
};

static int kld_score(struct run *r, void *ud, int row0, int n, struct lm_err *err) {
    struct kld_state *s = ud;
    if (lm_logits_read(s->base, r->recs, n, err) < 0) return -1;
    struct score_job j = {r->n_vocab, r->logits, s->chunk + r->first + row0 + 1, r->recs, s->base->nv, NULL, r->kld};
    lm_pool_run(r->c->pool, n, score_row, &j);
    for (int i = 0; i < n; i++) {
        size_t k = s->res->sums.count;
        s->res->kld[k] = (float)r->kld[i].kld;
        s->res->p_diff[k] = r->kld[i].p_diff;
        kld_add(&s->res->sums, &r->kld[i]);
    }
    return 0;
}

int lm_kl_divergence(struct lm_ctx *c, struct lm_logits_file *base, const struct lm_ppl_opts *o,
                     struct lm_kld_result *r, struct lm_err *err) {
    memset(r, 0, sizeof *r);
    LM_ASSERT(!base->writing && o->n_ctx == base->n_ctx);
    if (base->n_vocab != c->model->hp.n_vocab)
        return lm_errf(err, "%s: log-probabilities over %d tokens, but the model's vocabulary has %d", base->path,
                       base->n_vocab, c->model->hp.n_vocab);
    int n_chunk = n_chunks(o, base->n_chunk);
    size_t n = (size_t)n_chunk * (size_t)base->n_scored; /* bounded by the file's size, checked at open */
    r->kld = malloc(sizeof *r->kld * n);
    r->p_diff = malloc(sizeof *r->p_diff * n);
    if (!r->kld || !r->p_diff) {
        lm_kld_result_free(r);
        return lm_errf(err, "cannot allocate the statistics of %zu positions", n);
    }
    struct run run;
    if (run_init(&run, c, o, base->nv, true, err) < 0) {
        lm_kld_result_free(r);
        return -1;
    }
    struct kld_state s = {.base = base, .res = r};
    int rc = 0;
    for (int i = 0; i < n_chunk && rc == 0; i++) {
        s.chunk = base->tokens + (size_t)i * (size_t)base->n_ctx;
        rc = run_window(&run, s.chunk, kld_score, &s, err);
        if (rc == 0) {
            r->n_chunk++;
            if (o->on_chunk) o->on_chunk(o->ud, r->n_chunk);
        }
    }
    run_free(&run);
    return rc;
}
