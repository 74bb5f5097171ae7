/* lm serve: the OpenAI-compatible HTTP server (include/lm/serve.h). */
#include "lm/cli.h"
#include "lm/serve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: lm serve [-m MODEL.gguf] [options]\n"
    "\n"
    "Serves the model over HTTP with OpenAI's API: POST /v1/chat/completions,\n"
    "POST /v1/completions, GET /v1/models, GET /health, GET /metrics, POST /tokenize,\n"
    "POST /detokenize, and a chat page at GET /. Several requests are generated at\n"
    "once, one per slot. One line per request on stderr; SIGINT or SIGTERM stops it\n"
    "(running requests get a few seconds to finish).\n"
    "\n"
    "  -m, --model PATH      model file (default: $LM_MODEL, else models/default.gguf)\n"
    "  --host ADDR           address to listen on (default 127.0.0.1: this machine only)\n"
    "  --port N              port (default 8080; 0: any free one, printed on stdout)\n"
    "  -np, --parallel N     slots: requests generated at once (default 4)\n"
    "  -c, --ctx-size N      context of each slot in tokens (default: the model's, at most 4096)\n"
    "  -t, --threads N       threads (default: number of CPUs)\n"
    "  -b, --batch-size N    most tokens per forward pass (default 512)\n"
    "  -n, --n-predict N     most tokens a reply may have when its request sets no\n"
    "                        max_tokens (default -1: to the end of its turn or context)\n"
    "  --queue N             requests that may wait for a slot before 429 (default 64)\n"
    "  --api-key KEY         require \"Authorization: Bearer KEY\" on the API routes\n"
    "                        (default: $LM_API_KEY if set, else none)\n"
    "  --max-body BYTES      largest request body (default 1048576)\n"
    "  --timeout S           seconds a client may take to send a request or to take\n"
    "                        a piece of the reply (default 60)\n"
    "\n"
    "Requests choose their own sampling (temperature, top_p, ...); the defaults are\n"
    "llama.cpp's, or these flags:\n" LM_SAMPLER_USAGE;

int cmd_serve(int argc, char **argv) {
    struct lm_serve_opts o = {.host = "127.0.0.1", .port = 8080, .n_slots = 4, .queue = 64, .max_body = 1 << 20,
                              .timeout = 60, .n_predict = -1};
    o.engine.sampling = lm_sampler_params_default();
    o.api_key = getenv("LM_API_KEY");
    if (o.api_key && !*o.api_key) o.api_key = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        long long n;
        int r = lm_cli_engine_flag(&o.engine, argc, argv, &i);
        if (r < 0) return LM_EXIT_USAGE;
        if (r > 0) {
            if (!strcmp(a, "--ignore-eos")) return lm_cli_fail(LM_EXIT_USAGE, "serve: --ignore-eos is not a serve option");
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return LM_EXIT_OK;
        }
        int *num = NULL;
        long long lo = 1, hi = 1 << 16;
        if (!strcmp(a, "--host")) {
            if (!(o.host = lm_cli_value(argc, argv, &i))) return LM_EXIT_USAGE;
        } else if (!strcmp(a, "--api-key")) {
            if (!(o.api_key = lm_cli_value(argc, argv, &i))) return LM_EXIT_USAGE;
            if (!*o.api_key) return lm_cli_fail(LM_EXIT_USAGE, "serve: --api-key is empty");
        } else if (!strcmp(a, "--port")) num = &o.port, lo = 0, hi = 65535;
        else if (!strcmp(a, "-np") || !strcmp(a, "--parallel")) num = &o.n_slots, hi = 256;
        else if (!strcmp(a, "--queue")) num = &o.queue, lo = 0, hi = 1 << 20;
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) num = &o.n_predict, lo = -1, hi = 1 << 30;
        else if (!strcmp(a, "--timeout")) num = &o.timeout, hi = 86400;
        else if (!strcmp(a, "--max-body")) {
            if (!(v = lm_cli_value(argc, argv, &i)) || lm_cli_int(a, v, 1, 1 << 30, &n) < 0) return LM_EXIT_USAGE;
            o.max_body = (size_t)n;
        } else {
            return lm_cli_fail(LM_EXIT_USAGE, "serve: unknown option '%s' (see lm serve --help)", a);
        }
        if (num) {
            if (!(v = lm_cli_value(argc, argv, &i)) || lm_cli_int(a, v, lo, hi, &n) < 0) return LM_EXIT_USAGE;
            *num = (int)n;
        }
    }
    if (lm_cli_flags_only) return LM_EXIT_OK;
    if (!(o.engine.model_path = lm_cli_model_path(o.engine.model_path))) return LM_EXIT_MODEL;
    return lm_serve(&o);
}
