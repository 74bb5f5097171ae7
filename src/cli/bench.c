/* lm bench: prompt-processing and generation speed, in the shape of
 * llama-bench's table so the two can be read side by side. */
#include "lm/cli.h"
#include "lm/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: lm bench [-m MODEL.gguf] [-p N] [-n N] [-r N] [-t N] [-b N] [-o md|json]\n"
    "\n"
    "Measures tokens per second like llama-bench: ppN processes an N-token\n"
    "prompt in batches; tgN generates N tokens one at a time. Each test runs\n"
    "once to warm up, then -r times; the table shows mean and standard deviation.\n"
    "\n"
    "  -m, --model PATH  model file (default: $LM_MODEL, else models/default.gguf)\n"
    "  -p, --n-prompt N  prompt tokens for the pp test (default 512; 0 skips it)\n"
    "  -n, --n-gen N     generated tokens for the tg test (default 128; 0 skips it)\n"
    "  -r, --repetitions N  runs of each test (default 5)\n"
    "  -t, --threads N   threads (default: number of CPUs)\n"
    "  -b, --batch-size N  tokens per forward call in the pp test (default 512)\n"
    "  -o, --output FMT  md (default) or json\n";

struct opts {
    const char *model;
    long long n_prompt, n_gen, reps, threads, batch;
    bool json;
};

/* Seconds for one run: n tokens at positions 0.., in batches of `batch`. */
static int run_once(struct lm_ctx *c, const int32_t *tokens, int n, int batch, double *secs, struct lm_err *err) {
    double t0 = lm_time();
    for (int i = 0; i < n; i += batch) {
        int k = n - i < batch ? n - i : batch;
        if (lm_forward(c, tokens + i, k, i, err) < 0) return -1;
    }
    *secs = lm_time() - t0;
    return 0;
}

struct result {
    char test[32];
    double mean, sd;
};

static int measure(struct lm_ctx *c, const int32_t *tokens, int n, int batch, int reps, struct result *r,
                   struct lm_err *err) {
    double secs, sum = 0, sum2 = 0;
    if (run_once(c, tokens, n, batch, &secs, err) < 0) return -1; /* warm-up: page in the weights */
    for (int i = 0; i < reps; i++) {
        if (run_once(c, tokens, n, batch, &secs, err) < 0) return -1;
        double tps = n / secs;
        sum += tps;
        sum2 += tps * tps;
    }
    r->mean = sum / reps;
    r->sd = reps > 1 ? sqrt(fmax(0, (sum2 - sum * sum / reps) / (reps - 1))) : 0;
    return 0;
}

int cmd_bench(int argc, char **argv) {
    struct opts o = {.n_prompt = 512, .n_gen = 128, .reps = 5, .threads = lm_cpu_count(), .batch = 512};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        long long *num = NULL, lo = 0, hi = 1 << 20;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return LM_EXIT_OK;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!(o.model = lm_cli_value(argc, argv, &i))) return LM_EXIT_USAGE;
            continue;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (!(v = lm_cli_value(argc, argv, &i))) return LM_EXIT_USAGE;
            if (strcmp(v, "md") && strcmp(v, "json"))
                return lm_cli_fail(LM_EXIT_USAGE, "bench: -o: '%s' is not md or json", v);
            o.json = !strcmp(v, "json");
            continue;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--n-prompt")) num = &o.n_prompt;
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-gen")) num = &o.n_gen;
        else if (!strcmp(a, "-r") || !strcmp(a, "--repetitions")) num = &o.reps, lo = 1, hi = 1000;
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) num = &o.threads, lo = 1, hi = 256;
        else if (!strcmp(a, "-b") || !strcmp(a, "--batch-size")) num = &o.batch, lo = 1;
        else return lm_cli_fail(LM_EXIT_USAGE, "bench: unknown option '%s' (see lm bench --help)", a);
        if (!(v = lm_cli_value(argc, argv, &i)) || lm_cli_int(a, v, lo, hi, num) < 0) return LM_EXIT_USAGE;
    }
    const char *path = lm_cli_model_path(o.model);
    if (!path) return LM_EXIT_MODEL;
    struct lm_model m;
    struct lm_err err;
    if (lm_model_load(&m, path, &err) < 0) return lm_cli_fail(LM_EXIT_MODEL, "%s", err.msg);
    int n_ctx = (int)(o.n_prompt > o.n_gen ? o.n_prompt : o.n_gen);
    if (n_ctx < 1) n_ctx = 1;
    struct lm_pool *pool = lm_pool_create((int)o.threads);
    struct lm_ctx c;
    int rc = LM_EXIT_OK;
    if (lm_ctx_init(&c, &m, pool, n_ctx, (int)o.batch, &err) < 0) {
        lm_pool_free(pool);
        lm_model_free(&m);
        return lm_cli_fail(LM_EXIT_RUNTIME, "%s", err.msg);
    }
    int32_t *tokens = lm_xmalloc(sizeof *tokens * (size_t)n_ctx);
    uint64_t s = 12345;
    for (int i = 0; i < n_ctx; i++) { /* random ids, as llama-bench uses */
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        tokens[i] = (int32_t)((s >> 33) % (uint64_t)m.hp.n_vocab);
    }
    struct result res[2];
    int n_res = 0;
    if (o.n_prompt > 0) {
        snprintf(res[n_res].test, sizeof res[n_res].test, "pp%lld", o.n_prompt);
        if (measure(&c, tokens, (int)o.n_prompt, (int)o.batch, (int)o.reps, &res[n_res], &err) < 0) rc = LM_EXIT_RUNTIME;
        else n_res++;
    }
    if (rc == LM_EXIT_OK && o.n_gen > 0) {
        snprintf(res[n_res].test, sizeof res[n_res].test, "tg%lld", o.n_gen);
        if (measure(&c, tokens, (int)o.n_gen, 1, (int)o.reps, &res[n_res], &err) < 0) rc = LM_EXIT_RUNTIME;
        else n_res++;
    }
    if (rc != LM_EXIT_OK) {
        lm_cli_fail(rc, "%s", err.msg);
    } else {
        uint64_t bytes = 0, params = 0;
        for (uint64_t i = 0; i < m.gguf.n_tensors; i++) {
            const struct lm_gguf_tensor *t = &m.gguf.tensors[i];
            bytes += t->size;
            params += (uint64_t)(t->t.ne[0] * t->t.ne[1] * t->t.ne[2] * t->t.ne[3]);
        }
        const char *arch = m.hp.arch == LM_ARCH_LLAMA ? "llama" : m.hp.arch == LM_ARCH_QWEN2 ? "qwen2" : "qwen3";
        if (o.json) {
            printf("[");
            for (int i = 0; i < n_res; i++)
                printf("%s{\"model\":\"%s\",\"size\":%llu,\"params\":%llu,\"threads\":%lld,\"test\":\"%s\",\"t/s\":%.2f,\"stddev\":%.2f}",
                       i ? "," : "", arch, (unsigned long long)bytes, (unsigned long long)params, o.threads, res[i].test,
                       res[i].mean, res[i].sd);
            printf("]\n");
        } else {
            printf("| model | size | params | backend | threads | test | t/s |\n");
            printf("| ----- | ---: | -----: | ------- | ------: | ---: | --: |\n");
            for (int i = 0; i < n_res; i++)
                printf("| %s | %.2f MiB | %.2f M | CPU (lm) | %lld | %s | %.2f ± %.2f |\n", arch, (double)bytes / 1048576.0,
                       (double)params / 1e6, o.threads, res[i].test, res[i].mean, res[i].sd);
        }
    }
    free(tokens);
    lm_ctx_free(&c);
    lm_pool_free(pool);
    lm_model_free(&m);
    return rc;
}
