/* generate.c: see generate.h. */
#include "lm/generate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

volatile sig_atomic_t lm_interrupted;

int lm_engine_open(struct lm_engine *e, const struct lm_engine_opts *o, int *code, struct lm_err *err) {
    memset(e, 0, sizeof *e);
    double t0 = lm_time();
    *code = LM_EXIT_MODEL;
    if (lm_model_load(&e->model, o->model_path, err) < 0) goto fail;
    if (lm_tokenizer_load(&e->tok, &e->model.gguf, err) < 0) {
        lm_err_prefix(err, o->model_path);
        goto fail;
    }
    if (e->tok.n_vocab != e->model.hp.n_vocab) {
        lm_errf(err, "%s: the vocabulary has %d tokens but the model %d", o->model_path, e->tok.n_vocab,
                e->model.hp.n_vocab);
        goto fail;
    }
    *code = LM_EXIT_RUNTIME;
    int n_ctx = o->n_ctx > 0 ? o->n_ctx : lm_model_default_ctx(&e->model);
    e->pool = lm_pool_create(o->n_threads > 0 ? o->n_threads : lm_cpu_count());
    if (lm_ctx_init(&e->ctx, &e->model, e->pool, n_ctx, o->n_batch > 0 ? o->n_batch : LM_BATCH_DEFAULT, err) < 0) goto fail;
    if (lm_sampler_init(&e->sampler, &o->sampling, e->model.hp.n_vocab, err) < 0) goto fail;
    e->cached = malloc(sizeof *e->cached * (size_t)n_ctx); /* n_ctx comes from -c: no abort */
    if (!e->cached) {
        lm_errf(err, "cannot allocate the token list of a context of %d positions (try a smaller -c)", n_ctx);
        goto fail;
    }
    e->n_saved = -1;
    size_t state = lm_ctx_seq_state_size(&e->ctx);
    if (state && !(e->saved = malloc(state))) {
        lm_errf(err, "cannot allocate a copy of the recurrent state (%s)", lm_size_str(state).s);
        goto fail;
    }
    e->t_load = lm_time() - t0;
    return 0;
fail:
    lm_engine_close(e);
    return -1;
}

void lm_engine_close(struct lm_engine *e) {
    lm_sampler_free(&e->sampler);
    lm_ctx_free(&e->ctx);
    lm_pool_free(e->pool);
    lm_tokenizer_free(&e->tok);
    lm_model_free(&e->model);
    free(e->cached);
    free(e->saved);
    memset(e, 0, sizeof *e);
}

int lm_engine_truncate(struct lm_engine *e, int n) {
    LM_ASSERT(n >= 0 && n <= e->n_cached);
    if (e->saved && n < e->n_cached) {
        if (e->n_saved >= 0 && e->n_saved <= n) {
            lm_ctx_seq_restore(&e->ctx, 0, e->saved);
            n = e->n_saved;
        } else {
            lm_ctx_seq_clear(&e->ctx, 0);
            n = 0;
            e->n_saved = -1;
        }
    }
    e->n_cached = n;
    return n;
}

int lm_engine_common_prefix(const struct lm_engine *e, const int32_t *ids, int n) {
    int i = 0;
    while (i < n && i < e->n_cached && e->cached[i] == ids[i]) i++;
    return i;
}

const char *lm_stop_reason_name(enum lm_stop_reason r) {
    static const char *const names[] = {"eog", "length", "stop", "interrupt", "context"};
    return names[r];
}

/* Runs ids after the cache, in batches. */
static int feed(struct lm_engine *e, const int32_t *ids, int n, struct lm_err *err) {
    if (e->n_cached + n > e->ctx.n_ctx)
        return lm_errf(err, "%d tokens do not fit in the context (%d of %d used; see -c)", n, e->n_cached, e->ctx.n_ctx);
    for (int i = 0; i < n; i += e->ctx.n_batch) {
        int k = n - i < e->ctx.n_batch ? n - i : e->ctx.n_batch;
        if (lm_forward(&e->ctx, ids + i, k, e->n_cached, err) < 0) return -1;
        memcpy(e->cached + e->n_cached, ids + i, sizeof *ids * (size_t)k);
        e->n_cached += k;
    }
    return 0;
}

/* Length of the longest suffix of s that is a proper prefix of some stop. */
static size_t partial_stop(const struct lm_stop_stream *st, const char *s, size_t n) {
    size_t best = 0;
    for (int i = 0; i < st->n_stops; i++) {
        size_t len = strlen(st->stops[i]);
        for (size_t k = len - 1 < n ? len - 1 : n; k > best; k--)
            if (memcmp(s + n - k, st->stops[i], k) == 0) {
                best = k;
                break;
            }
    }
    return best;
}

static void emit(struct lm_stop_stream *s, const char *text, size_t n) {
    if (n && s->on_text) s->on_text(s->ud, text, n);
}

void lm_stop_feed(struct lm_stop_stream *s, const char *text, size_t n) {
    if (s->stopped) return;
    if (!s->n_stops) {
        emit(s, text, n);
        return;
    }
    lm_buf_append(&s->held, text, n);
    for (int i = 0; i < s->n_stops; i++) {
        const char *hit = memmem(s->held.data, s->held.len, s->stops[i], strlen(s->stops[i]));
        if (hit) {
            emit(s, s->held.data, (size_t)(hit - s->held.data));
            s->held.len = 0;
            s->stopped = true;
            return;
        }
    }
    size_t keep = partial_stop(s, s->held.data, s->held.len);
    emit(s, s->held.data, s->held.len - keep);
    memmove(s->held.data, s->held.data + s->held.len - keep, keep);
    s->held.len = keep;
}

void lm_stop_finish(struct lm_stop_stream *s) {
    if (!s->stopped) emit(s, s->held.data, s->held.len);
    lm_buf_free(&s->held);
}

int lm_generate(struct lm_engine *e, const int32_t *prompt, int n_prompt, const struct lm_gen_params *p,
                struct lm_gen_stats *st, struct lm_err *err) {
    memset(st, 0, sizeof *st);
    for (int i = 0; i < p->n_stops; i++)
        if (!p->stops[i][0]) return lm_errf(err, "a stop string is empty");
    double t0 = lm_time();
    if (n_prompt == 0 && e->n_cached == 0) return lm_errf(err, "the prompt is empty");
    if (n_prompt > 0 && feed(e, prompt, n_prompt, err) < 0) return -1;
    if (n_prompt > 0 && e->saved) {
        lm_ctx_seq_save(&e->ctx, 0, e->saved);
        e->n_saved = e->n_cached;
    }
    for (int i = 0; i < n_prompt; i++) lm_sampler_accept(&e->sampler, prompt[i]);
    st->n_prompt = n_prompt;
    st->t_prompt = lm_time() - t0;
    t0 = lm_time();
    struct lm_stop_stream s = {.stops = p->stops, .n_stops = p->n_stops, .on_text = p->on_text, .ud = p->ud};
    struct lm_detok dt;
    lm_detok_init(&dt, &e->tok, p->show_special);
    struct lm_buf piece = {0}, text = {0};
    struct lm_tokens eog = {0}; /* with ignore_eog: the tokens never to sample */
    if (p->ignore_eog)
        for (int32_t id = 0; id < e->tok.n_vocab; id++)
            if (lm_tokenizer_is_eog(&e->tok, id)) lm_tokens_push(&eog, id);
    st->stop = LM_STOP_LENGTH;
    int rc = 0;
    for (;;) {
        if (p->n_predict >= 0 && st->n_gen >= p->n_predict) break;
        if (lm_interrupted) {
            st->stop = LM_STOP_INTERRUPT;
            break;
        }
        for (size_t i = 0; i < eog.n; i++) e->ctx.logits[eog.ids[i]] = -INFINITY;
        int32_t id = lm_sampler_sample(&e->sampler, e->ctx.logits);
        lm_sampler_accept(&e->sampler, id);
        if (st->n_gen++ == 0) st->t_first = lm_time() - t0 + st->t_prompt;
        if (p->on_token) {
            piece.len = 0;
            lm_tokenizer_decode_piece(&e->tok, id, &piece);
            p->on_token(p->ud, id, piece.data ? piece.data : "", piece.len);
        }
        if (lm_tokenizer_is_eog(&e->tok, id)) {
            st->stop = LM_STOP_EOG;
            break;
        }
        text.len = 0;
        lm_detok_feed(&dt, id, &text);
        lm_stop_feed(&s, text.data, text.len);
        if (s.stopped) {
            st->stop = LM_STOP_STRING;
            break;
        }
        if (p->n_predict >= 0 && st->n_gen >= p->n_predict) break; /* no need to run the last token */
        if (e->n_cached >= e->ctx.n_ctx) {
            st->stop = LM_STOP_CONTEXT;
            break;
        }
        if (feed(e, &id, 1, err) < 0) {
            rc = -1;
            break;
        }
    }
    text.len = 0;
    lm_detok_flush(&dt, &text);
    lm_stop_feed(&s, text.data ? text.data : "", text.len);
    lm_stop_finish(&s);
    st->t_gen = lm_time() - t0;
    lm_buf_free(&piece);
    lm_buf_free(&text);
    lm_tokens_free(&eog);
    return rc;
}

void lm_gen_stats_line(const struct lm_engine *e, const struct lm_gen_stats *st, struct lm_buf *out) {
    lm_buf_printf(out, "load %.0f ms, first token %.1f ms, prompt %d tokens %.1f ms (%.1f t/s), generated %d tokens %.2f s (%.1f t/s), stop: %s",
                  e->t_load * 1e3, st->t_first * 1e3, st->n_prompt, st->t_prompt * 1e3, st->t_prompt > 0 ? st->n_prompt / st->t_prompt : 0.0,
                  st->n_gen, st->t_gen, st->t_gen > 0 ? st->n_gen / st->t_gen : 0.0, lm_stop_reason_name(st->stop));
}
