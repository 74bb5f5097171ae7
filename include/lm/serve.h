/* serve.h: lm serve, an OpenAI-compatible HTTP server (src/serve/).
 *
 * Routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models,
 * GET /health, GET /metrics (Prometheus text), POST /tokenize,
 * POST /detokenize, and GET / (a chat page). Errors are OpenAI's error JSON.
 * Requests share the model through slots (serve_int.h); see docs/deploy.md
 * for serving beyond one machine.
 *
 * Left out on purpose: TLS (put a proxy in front), tool calls, logprobs,
 * n > 1, embeddings, chunked request bodies. */
#ifndef LM_SERVE_H
#define LM_SERVE_H

#include "lm/generate.h"

struct lm_serve_opts {
    struct lm_engine_opts engine; /* n_ctx: positions per slot */
    const char *host;     /* address to bind (default 127.0.0.1) */
    int port;             /* 0: any free port (the one taken is printed) */
    int n_slots;          /* conversations generated at once */
    int queue;            /* requests waiting for a slot before 429 */
    const char *api_key;  /* NULL: no authentication */
    size_t max_body;      /* bytes */
    int timeout;          /* seconds a client may take to send a request, or stall a reply */
    int n_predict;        /* tokens a request without max_tokens may generate; -1: no limit */
};

/* Runs until SIGINT or SIGTERM; returns an exit code (LM_EXIT_*), printing
 * why on stderr when it is not 0. */
int lm_serve(const struct lm_serve_opts *o);

#endif
