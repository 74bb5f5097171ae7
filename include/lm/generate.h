/* generate.h: what lm run and lm chat share: a loaded model with its
 * tokenizer, thread pool, KV cache and sampler (an engine), the tokens its
 * cache holds, and the generation loop (sample, stream text, stop).
 *
 * Text is streamed through a callback in whole UTF-8 characters; control
 * tokens never reach it. Output that could be the start of a stop string is
 * held back until it is known not to be one, so a stop string never leaks. */
#ifndef LM_GENERATE_H
#define LM_GENERATE_H

#include <signal.h>

#include "lm/model.h"
#include "lm/sampler.h"
#include "lm/tokenizer.h"

/* Set by the CLI's SIGINT handler; generation stops at the next token. */
extern volatile sig_atomic_t lm_interrupted;

struct lm_engine_opts {
    const char *model_path;
    int n_ctx;     /* 0: min(model's training context, 4096) */
    int n_threads; /* 0: number of CPUs */
    int n_batch;   /* tokens per forward call in prefill; 0: 512 */
    bool ignore_eos; /* --ignore-eos: the commands pass it on as lm_gen_params.ignore_eog */
    struct lm_sampler_params sampling;
};

struct lm_engine {
    struct lm_model model;
    struct lm_tokenizer tok;
    struct lm_pool *pool;
    struct lm_ctx ctx;
    struct lm_sampler sampler;
    int32_t *cached;   /* (n_ctx) the tokens whose keys/values the cache holds, in order */
    int n_cached;
    /* Models with a recurrent state (which cannot be cut back like the KV
     * cache): the state after the last prompt, to go back to, and its
     * position (-1: none); else NULL. */
    void *saved;
    int n_saved;
    double t_load;     /* seconds to load the model */
};

/* Loads everything; errors: exit code LM_EXIT_MODEL for a bad model file,
 * LM_EXIT_RUNTIME otherwise, in *code. */
int lm_engine_open(struct lm_engine *e, const struct lm_engine_opts *o, int *code, struct lm_err *err);
void lm_engine_close(struct lm_engine *e); /* safe on zeroed */

/* Keeps the first n cached tokens and forgets the rest (n <= n_cached);
 * returns how many it kept: n, except for a model with a recurrent state
 * cut back below n_cached, which goes back to its state after the last
 * prompt when that is at most n, else to the start (0). */
int lm_engine_truncate(struct lm_engine *e, int n);
/* Number of leading tokens that ids shares with the cache. */
int lm_engine_common_prefix(const struct lm_engine *e, const int32_t *ids, int n);

enum lm_stop_reason {
    LM_STOP_EOG,        /* the model ended its turn */
    LM_STOP_LENGTH,     /* -n tokens generated */
    LM_STOP_STRING,     /* a --stop string appeared */
    LM_STOP_INTERRUPT,  /* Ctrl-C */
    LM_STOP_CONTEXT,    /* the context is full */
};
const char *lm_stop_reason_name(enum lm_stop_reason r);

struct lm_gen_params {
    int n_predict;              /* < 0: until end of generation or a full context */
    const char *const *stops;   /* stop strings */
    int n_stops;
    /* Called with each piece of visible text (may be NULL). */
    void (*on_text)(void *ud, const char *text, size_t n);
    /* Called with each generated token and its decoded piece (may be NULL). */
    void (*on_token)(void *ud, int32_t id, const char *piece, size_t n);
    void *ud;
    bool show_special;          /* pass control tokens' text to on_text */
    bool ignore_eog;            /* never sample an end-of-generation token (their logits
                                   become -inf), as llama.cpp's --ignore-eos */
};

struct lm_gen_stats {
    int n_prompt, n_gen;
    double t_prompt, t_gen;     /* seconds */
    double t_first;             /* seconds from the start to the first sampled token */
    enum lm_stop_reason stop;
};

/* Visible text on its way out, held back while it could still be the start
 * of a stop string (lm_generate's, and lm serve's per request). Set stops,
 * n_stops, on_text and ud; feed text as it comes; finish passes on what is
 * held (unless a stop string was found) and frees. Once stopped, feeding
 * does nothing. */
struct lm_stop_stream {
    const char *const *stops;
    int n_stops;
    void (*on_text)(void *ud, const char *text, size_t n);
    void *ud;
    struct lm_buf held;
    bool stopped; /* a stop string appeared: nothing after it is passed on */
};
void lm_stop_feed(struct lm_stop_stream *s, const char *text, size_t n);
void lm_stop_finish(struct lm_stop_stream *s);

/* Feeds prompt[0..n_prompt) after what the cache holds (n_prompt may be 0
 * when the cache already ends with the prompt: then it must be non-empty),
 * then samples up to p->n_predict tokens. The sampled end-of-generation
 * token is not fed into the cache. */
int lm_generate(struct lm_engine *e, const int32_t *prompt, int n_prompt, const struct lm_gen_params *p,
                struct lm_gen_stats *st, struct lm_err *err);

/* "load 80 ms, first token 4 ms, prompt 12 tokens 3.2 ms (3750.0 t/s), generated 64 tokens 0.51 s (125.5 t/s), stop: eog" */
void lm_gen_stats_line(const struct lm_engine *e, const struct lm_gen_stats *st, struct lm_buf *out);

#endif
