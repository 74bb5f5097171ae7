/* sched.c: the slots and the scheduler thread of lm serve (serve_int.h).
 *
 * Each slot is one sequence of a shared context (lm_ctx_init_seqs): its
 * KV cache and the tokens in it. A job goes to the free slot whose cache
 * shares the longest prefix with its prompt; that prefix is kept when it
 * is at least half the prompt (as llama-server's slot similarity), so a
 * chat that continues recomputes only its new turn. A model's recurrent
 * state (qwen35) cannot be cut back: a slot goes on from its end, or from
 * the copy of its state taken after its last prompt, or starts over. Every step is one
 * lm_forward_batch, then sampling for the slots whose logits came out: the
 * weights are read once a step for all slots.
 *
 * What a step holds: the next token of every generating slot and a chunk
 * of each waiting prompt (n_batch tokens from its first uncached one, as
 * lm chat and lm run cut it) while the step's n_batch + n_slots rows hold
 * them whole (prompts that arrive together are read in one pass of the
 * weights), when the model's kernels give each row its bits whatever the
 * batch (lm_model_rows_independent). Otherwise the two kinds take turns
 * while both wait, one prompt at a time, because a prompt sharing its
 * batch would get other logits than alone (test_serve checks that a
 * request's tokens do not depend on the others); rows of generating slots
 * then stay within the 1-7 rows whose kernels keep each row's bits. */
#include "serve_int.h"

#include "lm/tokenizer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct slot {
    int32_t *cached; /* (n_ctx) tokens whose keys and values the cache holds */
    int n_cached;
    struct lm_job *job;
    uint64_t last_used; /* when it was last given a job */
    int prompt_pos;  /* the next prompt token to read */
    int32_t last;    /* the token sampled last, read at the next step */
    bool has_last;
    int n_gen;
    bool finished;
    enum lm_stop_reason stop;
    double t_first;
    struct lm_detok dt;
    struct lm_stop_stream stops;
    struct lm_buf out, piece; /* text of this step; scratch */
    int32_t *counts;          /* (n_vocab) times each token was generated, for the penalties */
    struct lm_tokens distinct;/* the tokens with a count */
    void *saved;     /* models with a recurrent state: the state after the last prompt (else NULL) */
    int n_saved;     /* its position; -1: none */
    /* this step */
    const int32_t *feed;
    int n_feed;
    float *logits;
};

struct lm_sched {
    const struct lm_engine *e;
    int n_slots, n_ctx, n_batch, queue_cap;
    struct lm_ctx ctx;  /* one sequence per slot */
    struct slot *slots;
    /* the rows of a step */
    int32_t *tokens, *pos, *seq;
    bool *want;
    float *logits;      /* (n_slots, n_vocab) */
    int *to_sample;     /* the slots whose logits came out of this step */
    struct lm_tokens eog; /* the vocabulary's end-of-generation tokens */
    bool mix;           /* a step may hold generation and a prompt chunk */
    bool last_was_generation;
    uint64_t n_assigned;
    int next_prompt;    /* the slot whose prompt goes first next time */
    pthread_mutex_t mu;
    pthread_cond_t work;
    struct lm_job *q_head, *q_tail;
    int n_queued;
    bool stopping, started;
    pthread_t thread;
    struct lm_sched_stats stats;
};

int lm_sched_n_ctx(const struct lm_sched *s) { return s->n_ctx; }

void lm_job_init(struct lm_job *j) { pthread_cond_init(&j->cond, NULL); }

void lm_job_free(struct lm_job *j) {
    free(j->prompt);
    for (int i = 0; i < j->n_stops; i++) free(j->stops[i]);
    free(j->stops);
    lm_sampler_free(&j->sampler);
    lm_buf_free(&j->text);
    pthread_cond_destroy(&j->cond);
}

/* ---- one slot's generation ------------------------------------------------ */

static void on_text(void *ud, const char *text, size_t n) { lm_buf_append(&((struct slot *)ud)->out, text, n); }

static void finish(struct slot *sl, enum lm_stop_reason stop) {
    sl->piece.len = 0;
    lm_detok_flush(&sl->dt, &sl->piece);
    lm_stop_feed(&sl->stops, sl->piece.data ? sl->piece.data : "", sl->piece.len);
    lm_stop_finish(&sl->stops);
    sl->finished = true;
    sl->stop = stop;
    sl->has_last = false;
}

/* OpenAI's penalties, over the tokens generated so far: presence once per
 * token that appeared, frequency per appearance. */
static void penalize(struct slot *sl, float *logits) {
    const struct lm_job *j = sl->job;
    if (j->presence_penalty == 0 && j->frequency_penalty == 0) return;
    for (size_t i = 0; i < sl->distinct.n; i++) {
        int32_t t = sl->distinct.ids[i];
        logits[t] -= j->presence_penalty + j->frequency_penalty * (float)sl->counts[t];
    }
}

/* After the logits of the slot's last token: the next token, or the end. */
static void sample(struct lm_sched *s, struct slot *sl, float *logits) {
    struct lm_job *j = sl->job;
    const struct lm_tokenizer *tok = &s->e->tok;
    if (j->n_predict >= 0 && sl->n_gen >= j->n_predict) {
        finish(sl, LM_STOP_LENGTH);
        return;
    }
    penalize(sl, logits);
    if (j->ignore_eog)
        for (size_t i = 0; i < s->eog.n; i++) logits[s->eog.ids[i]] = -INFINITY;
    int32_t id = lm_sampler_sample(&j->sampler, logits);
    lm_sampler_accept(&j->sampler, id);
    if (!sl->counts[id]++) lm_tokens_push(&sl->distinct, id);
    if (sl->n_gen++ == 0) sl->t_first = lm_time();
    if (lm_tokenizer_is_eog(tok, id)) {
        finish(sl, LM_STOP_EOG);
        return;
    }
    sl->piece.len = 0;
    lm_detok_feed(&sl->dt, id, &sl->piece);
    lm_stop_feed(&sl->stops, sl->piece.data ? sl->piece.data : "", sl->piece.len);
    if (sl->stops.stopped) finish(sl, LM_STOP_STRING);
    else if (j->n_predict >= 0 && sl->n_gen >= j->n_predict) finish(sl, LM_STOP_LENGTH);
    else if (sl->n_cached >= s->n_ctx) finish(sl, LM_STOP_CONTEXT);
    else {
        sl->last = id;
        sl->has_last = true;
    }
}

static void sample_task(void *arg, int task, int ith) {
    struct lm_sched *s = arg;
    struct slot *sl = &s->slots[s->to_sample[task]];
    sample(s, sl, sl->logits);
}

/* How much of a slot's cache a prompt sharing its first `keep` tokens can
 * keep: all of them, except that a recurrent state goes on only from its
 * end or from its saved copy. */
static int reusable(const struct slot *sl, int keep) {
    if (!sl->saved || keep == sl->n_cached) return keep;
    return sl->n_saved >= 0 && sl->n_saved <= keep ? sl->n_saved : 0;
}

/* Puts j in slot sl, keeping the part of the cache its prompt starts with. */
static void assign(struct lm_sched *s, struct slot *sl, struct lm_job *j, int keep) {
    if (keep == j->n_prompt) keep--; /* the last prompt token must run again for its logits */
    keep = reusable(sl, keep);
    int seq = (int)(sl - s->slots);
    if (sl->saved && keep < sl->n_cached) {
        if (keep && keep == sl->n_saved) lm_ctx_seq_restore(&s->ctx, seq, sl->saved);
        else lm_ctx_seq_clear(&s->ctx, seq);
    }
    if (keep < sl->n_saved) sl->n_saved = -1;
    sl->n_cached = keep;
    sl->prompt_pos = keep;
    sl->job = j;
    sl->n_gen = 0;
    sl->finished = false;
    sl->has_last = false;
    sl->t_first = 0;
    j->n_reused = keep;
    lm_detok_init(&sl->dt, &s->e->tok, false);
    sl->stops = (struct lm_stop_stream){.stops = (const char *const *)j->stops, .n_stops = j->n_stops,
                                        .on_text = on_text, .ud = sl};
    for (size_t i = 0; i < sl->distinct.n; i++) sl->counts[sl->distinct.ids[i]] = 0;
    sl->distinct.n = 0;
    for (int i = 0; i < j->n_prompt; i++) lm_sampler_accept(&j->sampler, j->prompt[i]);
}

/* ---- a step ----------------------------------------------------------------- */

/* Runs every slot's feed through the model in one batch and points the
 * logits of each slot that needs them at its last fed token's. */
static int forward(struct lm_sched *s, struct lm_err *err) {
    int n = 0, n_out = 0;
    for (int i = 0; i < s->n_slots; i++) {
        struct slot *sl = &s->slots[i];
        for (int k = 0; k < sl->n_feed; k++, n++) {
            s->tokens[n] = sl->feed[k];
            s->pos[n] = sl->n_cached + k;
            s->seq[n] = i;
            s->want[n] = false;
        }
        bool last_of_prompt = sl->n_feed && sl->feed != &sl->last && sl->prompt_pos + sl->n_feed == sl->job->n_prompt;
        if (sl->n_feed && (sl->feed == &sl->last || last_of_prompt)) {
            s->want[n - 1] = true;
            sl->logits = s->logits + (size_t)n_out++ * (size_t)s->e->model.hp.n_vocab;
        }
    }
    struct lm_batch b = {.n = n, .tokens = s->tokens, .pos = s->pos, .seq = s->seq, .logits = s->want};
    return n ? lm_forward_batch(&s->ctx, &b, s->logits, err) : 0;
}

static void step(struct lm_sched *s) {
    int rows = 0; /* of the step */
    for (int i = 0; i < s->n_slots; i++) { /* generating slots: one token each */
        struct slot *sl = &s->slots[i];
        sl->n_feed = 0;
        sl->logits = NULL;
        if (sl->job && sl->has_last) {
            sl->feed = &sl->last;
            sl->n_feed = 1;
            rows++;
        }
    }
    bool generating = rows > 0;
    if (s->mix || !generating || !s->last_was_generation) { /* the prompts' turn, if any wait */
        const int first = s->next_prompt;
        for (int i = 0; i < s->n_slots; i++) {
            struct slot *sl = &s->slots[(first + i) % s->n_slots];
            if (!sl->job || sl->finished || sl->has_last || sl->prompt_pos >= sl->job->n_prompt) continue;
            int n = sl->job->n_prompt - sl->prompt_pos;
            n = n < s->n_batch ? n : s->n_batch;
            if (!s->mix) {
                for (int k = 0; k < s->n_slots; k++) s->slots[k].n_feed = 0;
                generating = false;
            } else if (rows + n > s->n_batch + s->n_slots) {
                break; /* the step is full: this chunk whole in a later one */
            }
            sl->feed = sl->job->prompt + sl->prompt_pos;
            sl->n_feed = n;
            rows += n;
            s->next_prompt = (int)(sl - s->slots + 1) % s->n_slots; /* prompts take turns too */
            if (!s->mix) break;
        }
    }
    s->last_was_generation = generating;
    struct lm_err err;
    if (forward(s, &err) < 0) { /* only a bug of ours (positions and ids were checked) */
        lm_assert_fail(err.msg, __FILE__, __LINE__);
    }
    int n_sample = 0;
    for (int i = 0; i < s->n_slots; i++) {
        struct slot *sl = &s->slots[i];
        if (!sl->n_feed) continue;
        bool from_prompt = sl->feed != &sl->last;
        memcpy(sl->cached + sl->n_cached, sl->feed, sizeof *sl->feed * (size_t)sl->n_feed);
        sl->n_cached += sl->n_feed;
        sl->has_last = false;
        if (from_prompt) sl->prompt_pos += sl->n_feed;
        if (from_prompt && sl->saved && sl->prompt_pos == sl->job->n_prompt) {
            lm_ctx_seq_save(&s->ctx, i, sl->saved);
            sl->n_saved = sl->n_cached;
        }
        if (sl->logits) s->to_sample[n_sample++] = i;
    }
    /* each slot's sampling touches only its own state: in parallel */
    lm_pool_run(s->e->pool, n_sample, sample_task, s);
}

/* ---- the thread ----------------------------------------------------------- */

/* Under the lock: hands a slot's text and end to its job. */
static void publish(struct lm_sched *s, struct slot *sl) {
    struct lm_job *j = sl->job;
    bool new_text = sl->out.len > 0;
    if (new_text) {
        lm_buf_append(&j->text, sl->out.data, sl->out.len);
        sl->out.len = 0;
    }
    j->n_gen = sl->n_gen;
    if (sl->t_first && !j->t_first) j->t_first = sl->t_first;
    if (sl->finished) {
        j->done = true;
        j->stop = sl->stop;
        j->t_end = lm_time();
        s->stats.tokens_in += (uint64_t)(j->n_prompt - j->n_reused);
        s->stats.tokens_reused += (uint64_t)j->n_reused;
        s->stats.tokens_out += (uint64_t)sl->n_gen;
        if (j->t_first) {
            s->stats.t_prompt += j->t_first - j->t_submit;
            s->stats.t_gen += j->t_end - j->t_first;
        }
        sl->job = NULL;
    }
    /* A whole reply's connection sleeps until the end: a wake-up per token
     * and slot took CPU time from the step's threads. */
    if (j->done || (j->streamed && new_text)) pthread_cond_broadcast(&j->cond);
}

static void end_queued(struct lm_job *j) {
    j->done = true;
    j->stop = LM_STOP_INTERRUPT;
    j->t_end = lm_time();
    pthread_cond_broadcast(&j->cond);
}

static void *run(void *arg) {
    struct lm_sched *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        for (struct lm_job **p = &s->q_head; *p;) { /* canceled while waiting */
            struct lm_job *j = *p;
            if (!j->cancel && !s->stopping) {
                p = &j->next;
                continue;
            }
            *p = j->next;
            if (s->q_tail == j) s->q_tail = NULL;
            s->n_queued--;
            end_queued(j);
        }
        if (!s->q_head) s->q_tail = NULL;
        else
            for (struct lm_job *t = s->q_head; t; t = t->next) s->q_tail = t;
        int active = 0;
        for (int i = 0; i < s->n_slots; i++) {
            struct slot *sl = &s->slots[i];
            if (sl->job && (sl->job->cancel || s->stopping)) {
                finish(sl, LM_STOP_INTERRUPT);
                publish(s, sl);
            }
            active += sl->job != NULL;
        }
        while (s->q_head && active < s->n_slots) { /* FIFO, each to the free slot that shares most */
            struct lm_job *j = s->q_head;
            s->q_head = j->next;
            if (!s->q_head) s->q_tail = NULL;
            s->n_queued--;
            struct slot *best = NULL;
            int best_keep = -1;
            for (int i = 0; i < s->n_slots; i++) {
                struct slot *sl = &s->slots[i];
                if (sl->job) continue;
                int keep = 0;
                while (keep < j->n_prompt && keep < sl->n_cached && sl->cached[keep] == j->prompt[keep]) keep++;
                keep = reusable(sl, keep);
                if (keep < (j->n_prompt + 1) / 2) keep = 0; /* not worth keeping: take the slot used longest ago */
                if (keep > best_keep || (keep == best_keep && sl->last_used < best->last_used)) best = sl, best_keep = keep;
            }
            best->last_used = ++s->n_assigned;
            assign(s, best, j, best_keep);
            active++;
        }
        s->stats.slots_busy = active;
        s->stats.queued = s->n_queued;
        if (s->stopping && !active) break;
        if (!active) {
            pthread_cond_wait(&s->work, &s->mu);
            continue;
        }
        pthread_mutex_unlock(&s->mu);
        step(s);
        pthread_mutex_lock(&s->mu);
        for (int i = 0; i < s->n_slots; i++)
            if (s->slots[i].job) publish(s, &s->slots[i]);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- the interface ----------------------------------------------------------- */

struct lm_sched *lm_sched_create(const struct lm_engine *e, int n_slots, int n_ctx, int n_batch, int queue_cap,
                                 struct lm_err *err) {
    struct lm_sched *s = lm_xcalloc(1, sizeof *s);
    *s = (struct lm_sched){.e = e, .n_slots = n_slots, .n_ctx = n_ctx, .n_batch = n_batch, .queue_cap = queue_cap};
    s->stats.n_slots = n_slots;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->work, NULL);
    s->slots = lm_xcalloc((size_t)n_slots, sizeof *s->slots);
    s->mix = lm_model_rows_independent(&e->model);
    int rows = s->mix ? n_batch + n_slots : n_batch > n_slots ? n_batch : n_slots;
    if (lm_ctx_init_seqs(&s->ctx, &e->model, e->pool, n_slots, n_ctx, rows, err) < 0) goto fail;
    for (int32_t id = 0; id < e->tok.n_vocab; id++)
        if (lm_tokenizer_is_eog(&e->tok, id)) lm_tokens_push(&s->eog, id);
    s->tokens = lm_xmalloc(sizeof *s->tokens * (size_t)rows);
    s->pos = lm_xmalloc(sizeof *s->pos * (size_t)rows);
    s->seq = lm_xmalloc(sizeof *s->seq * (size_t)rows);
    s->want = lm_xmalloc(sizeof *s->want * (size_t)rows);
    s->logits = lm_xmalloc(sizeof *s->logits * (size_t)n_slots * (size_t)e->model.hp.n_vocab);
    s->to_sample = lm_xmalloc(sizeof *s->to_sample * (size_t)n_slots);
    for (int i = 0; i < n_slots; i++) {
        struct slot *sl = &s->slots[i];
        sl->cached = lm_xmalloc(sizeof *sl->cached * (size_t)n_ctx);
        sl->counts = lm_xcalloc((size_t)e->model.hp.n_vocab, sizeof *sl->counts);
        size_t state = lm_ctx_seq_state_size(&s->ctx);
        sl->saved = state ? lm_xmalloc(state) : NULL;
        sl->n_saved = -1;
    }
    if (pthread_create(&s->thread, NULL, run, s) != 0) {
        lm_errf(err, "cannot start the scheduler thread");
        goto fail;
    }
    s->started = true;
    return s;
fail:
    lm_sched_free(s);
    return NULL;
}

void lm_sched_free(struct lm_sched *s) {
    if (!s) return;
    if (s->started) {
        pthread_mutex_lock(&s->mu);
        s->stopping = true;
        pthread_cond_signal(&s->work);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    for (int i = 0; i < s->n_slots; i++) {
        struct slot *sl = &s->slots[i];
        free(sl->cached);
        free(sl->counts);
        free(sl->saved);
        lm_tokens_free(&sl->distinct);
        lm_buf_free(&sl->out);
        lm_buf_free(&sl->piece);
    }
    free(s->slots);
    lm_ctx_free(&s->ctx);
    free(s->tokens);
    free(s->pos);
    free(s->seq);
    free(s->want);
    free(s->logits);
    free(s->to_sample);
    lm_tokens_free(&s->eog);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->work);
    free(s);
}

int lm_sched_submit(struct lm_sched *s, struct lm_job *j) {
    LM_ASSERT(j->n_prompt > 0 && j->n_prompt < s->n_ctx);
    pthread_mutex_lock(&s->mu);
    bool full = s->n_queued >= s->queue_cap || s->stopping;
    if (!full) {
        j->t_submit = lm_time();
        j->next = NULL;
        if (s->q_tail) s->q_tail->next = j;
        else s->q_head = j;
        s->q_tail = j;
        s->n_queued++;
        s->stats.queued = s->n_queued;
        pthread_cond_signal(&s->work);
    }
    pthread_mutex_unlock(&s->mu);
    return full ? -1 : 0;
}

bool lm_sched_take(struct lm_sched *s, struct lm_job *j, struct lm_buf *out, int timeout_ms) {
    pthread_mutex_lock(&s->mu);
    if (!(j->streamed && j->text.len) && !j->done) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += timeout_ms / 1000;
        ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&j->cond, &s->mu, &ts);
    }
    lm_buf_append(out, j->text.data ? j->text.data : "", j->text.len);
    j->text.len = 0;
    bool done = j->done;
    pthread_mutex_unlock(&s->mu);
    return done;
}

void lm_sched_cancel(struct lm_sched *s, struct lm_job *j) {
    pthread_mutex_lock(&s->mu);
    j->cancel = true;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->mu);
}

void lm_sched_stats(struct lm_sched *s, struct lm_sched_stats *st) {
    pthread_mutex_lock(&s->mu);
    *st = s->stats;
    pthread_mutex_unlock(&s->mu);
}
