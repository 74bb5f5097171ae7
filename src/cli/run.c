/* lm run: plain completion for scripts. stdout carries only the generated
 * text (or JSON lines with --jsonl); everything else goes to stderr. */
#include "lm/cli.h"
#include "lm/generate.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: lm run [-m MODEL.gguf] [-p TEXT | -f FILE] [options]\n"
    "\n"
    "Continues the prompt (from -p, -f, or standard input) with the model, as a\n"
    "base model would: \"A zebra is\" goes on as text. Only the generated text goes\n"
    "to stdout, streamed token by token; statistics go to stderr.\n"
    "\n"
    LM_ENGINE_USAGE
    "  -p, --prompt TEXT     the prompt\n"
    "  -f, --file FILE       read the prompt from FILE ('-' is stdin; the default)\n"
    "  -n, --n-predict N     generate at most N tokens (default -1: until the model stops\n"
    "                        or the context is full)\n"
    "  --stop STRING         stop when STRING appears (not printed); may repeat\n"
    "  --echo                print the prompt before the generated text\n"
    "  --special             parse special tokens (<|im_start|>, ...) in the prompt\n"
    "  --truncate            drop the start of a prompt too long for the context\n"
    "                        (default: that is an error)\n"
    "  --jsonl               stdout: one JSON object per token {\"id\",\"text\"}, then\n"
    "                        {\"stop\",\"prompt_tokens\",\"generated_tokens\",...}\n"
    "  --dump-logits FILE    write the logits after the prompt as float32 (for comparisons)\n"
    "  -q, --quiet           no statistics on stderr\n"
    "\n" LM_SAMPLER_USAGE
    "\n"
    "Ctrl-C stops generation cleanly (exit code 130).\n";

struct run_opts {
    struct lm_engine_opts engine;
    const char *prompt, *file, *dump_logits;
    long long n_predict;
    const char **stops;
    int n_stops;
    bool echo, special, truncate, jsonl, quiet;
};

static void on_sigint(int sig) {
    (void)sig;
    lm_interrupted = 1;
    signal(SIGINT, SIG_DFL); /* a second Ctrl-C ends the program at once */
}

static void print_text(void *ud, const char *text, size_t n) {
    (void)ud;
    fwrite(text, 1, n, stdout);
    fflush(stdout);
}

static void print_token_json(void *ud, int32_t id, const char *piece, size_t n) {
    struct lm_buf *b = ud;
    b->len = 0;
    lm_buf_printf(b, "{\"id\":%d,\"text\":", id);
    lm_buf_json_str(b, piece, n);
    lm_buf_puts(b, "}\n");
    fwrite(b->data, 1, b->len, stdout);
    fflush(stdout);
}

static int parse(int argc, char **argv, struct run_opts *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int r = lm_cli_engine_flag(&o->engine, argc, argv, &i);
        if (r < 0) return LM_EXIT_USAGE;
        if (r > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return -1;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            if (!(o->prompt = lm_cli_value(argc, argv, &i))) return LM_EXIT_USAGE;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            if (!(o->file = lm_cli_value(argc, argv, &i))) return LM_EXIT_USAGE;
        } else if (!strcmp(a, "--dump-logits")) {
            if (!(o->dump_logits = lm_cli_value(argc, argv, &i))) return LM_EXIT_USAGE;
        } else if (!strcmp(a, "--stop")) {
            if (!(v = lm_cli_value(argc, argv, &i))) return LM_EXIT_USAGE;
            if (!*v) return lm_cli_fail(LM_EXIT_USAGE, "--stop: the string is empty");
            o->stops = lm_xrealloc(o->stops, sizeof *o->stops * (size_t)(o->n_stops + 1));
            o->stops[o->n_stops++] = v;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            if (!(v = lm_cli_value(argc, argv, &i)) || lm_cli_int(a, v, -1, 1 << 24, &o->n_predict) < 0) return LM_EXIT_USAGE;
        } else if (!strcmp(a, "--echo")) {
            o->echo = true;
        } else if (!strcmp(a, "--special")) {
            o->special = true;
        } else if (!strcmp(a, "--truncate")) {
            o->truncate = true;
        } else if (!strcmp(a, "--jsonl")) {
            o->jsonl = true;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            o->quiet = true;
        } else {
            return lm_cli_fail(LM_EXIT_USAGE, "run: unknown option '%s' (see lm run --help)", a);
        }
    }
    if (o->prompt && o->file) return lm_cli_fail(LM_EXIT_USAGE, "run: give -p or -f, not both");
    return 0;
}

static int write_logits(const char *path, const float *logits, int n) {
    FILE *f = fopen(path, "wb");
    bool ok = f && fwrite(logits, sizeof *logits, (size_t)n, f) == (size_t)n;
    if (f && fclose(f) != 0) ok = false;
    return ok ? 0 : lm_cli_fail(LM_EXIT_RUNTIME, "%s: cannot write the logits", path);
}

/* Fits the prompt (ids) into the context: an error, or with --truncate the
 * oldest tokens go (BOS stays). */
static int fit_prompt(struct lm_tokens *ids, const struct lm_engine *e, const struct run_opts *o) {
    int n_ctx = e->ctx.n_ctx;
    int room = o->n_predict >= 0 ? n_ctx - (int)o->n_predict : n_ctx - 1;
    if (o->n_predict >= n_ctx) return lm_cli_fail(LM_EXIT_RUNTIME, "-n %lld does not fit in the context of %d tokens (see -c)", o->n_predict, n_ctx);
    if ((int)ids->n <= room) return 0;
    if (!o->truncate)
        return lm_cli_fail(LM_EXIT_RUNTIME, "the prompt (%zu tokens) plus -n %lld does not fit in the context of %d tokens "
                                            "(use a larger -c, a smaller -n, or --truncate)", ids->n, o->n_predict, n_ctx);
    size_t keep_front = ids->n && ids->ids[0] == e->tok.bos && e->tok.add_bos ? 1 : 0;
    size_t drop = ids->n - (size_t)room;
    memmove(ids->ids + keep_front, ids->ids + keep_front + drop, sizeof *ids->ids * (ids->n - keep_front - drop));
    ids->n -= drop;
    if (!o->quiet) fprintf(stderr, "lm: prompt truncated: dropped its first %zu tokens\n", drop);
    return 0;
}

int cmd_run(int argc, char **argv) {
    struct run_opts o = {.n_predict = -1};
    o.engine.sampling = lm_sampler_params_default();
    int rc = parse(argc, argv, &o);
    if (rc || lm_cli_flags_only) {
        free(o.stops);
        return rc < 0 ? LM_EXIT_OK : rc;
    }
    struct lm_buf prompt = {0}, line = {0};
    struct lm_tokens ids = {0};
    struct lm_engine e = {0};
    struct lm_err err;
    if (!(o.engine.model_path = lm_cli_model_path(o.engine.model_path))) {
        rc = LM_EXIT_MODEL;
        goto done;
    }
    if (o.prompt) {
        lm_buf_puts(&prompt, o.prompt);
    } else {
        if (!o.file && isatty(STDIN_FILENO)) fprintf(stderr, "lm: reading the prompt from standard input (Ctrl-D ends it)\n");
        if (lm_read_file(o.file ? o.file : "-", &prompt, &err) < 0) {
            rc = lm_cli_fail(LM_EXIT_USAGE, "%s", err.msg);
            goto done;
        }
    }
    int code;
    if (lm_engine_open(&e, &o.engine, &code, &err) < 0) {
        rc = lm_cli_fail(code, "%s", err.msg);
        goto done;
    }
    if (lm_tokenizer_encode(&e.tok, prompt.data ? prompt.data : "", prompt.len, e.tok.add_bos, o.special, &ids, &err) < 0) {
        rc = lm_cli_fail(LM_EXIT_RUNTIME, "%s", err.msg);
        goto done;
    }
    if (ids.n == 0) {
        rc = lm_cli_fail(LM_EXIT_USAGE, "run: the prompt is empty");
        goto done;
    }
    if ((rc = fit_prompt(&ids, &e, &o))) goto done;
    if (!o.quiet && !o.engine.sampling.seed_set && o.engine.sampling.temp > 0)
        fprintf(stderr, "lm: seed %llu\n", (unsigned long long)e.sampler.seed);
    if (o.echo && !o.jsonl) print_text(NULL, prompt.data ? prompt.data : "", prompt.len);

    struct lm_gen_params gp = {.n_predict = (int)o.n_predict, .stops = o.stops, .n_stops = o.n_stops,
                               .ignore_eog = o.engine.ignore_eos};
    if (o.jsonl) {
        gp.on_token = print_token_json;
        gp.ud = &line;
    } else {
        gp.on_text = print_text;
    }
    struct lm_gen_stats st;
    signal(SIGINT, on_sigint);
    if (o.dump_logits) { /* run the prompt alone first, to see its logits */
        struct lm_gen_params none = {.n_predict = 0};
        if (lm_generate(&e, ids.ids, (int)ids.n, &none, &st, &err) < 0 ||
            (rc = write_logits(o.dump_logits, e.ctx.logits, e.model.hp.n_vocab)) != 0) {
            if (!rc) rc = lm_cli_fail(LM_EXIT_RUNTIME, "%s", err.msg);
            goto done;
        }
        rc = lm_generate(&e, NULL, 0, &gp, &st, &err);
        st.n_prompt = (int)ids.n;
    } else {
        rc = lm_generate(&e, ids.ids, (int)ids.n, &gp, &st, &err);
    }
    signal(SIGINT, SIG_DFL);
    if (rc < 0) {
        rc = lm_cli_fail(LM_EXIT_RUNTIME, "%s", err.msg);
        goto done;
    }
    if (o.jsonl) {
        line.len = 0;
        lm_buf_printf(&line, "{\"stop\":\"%s\",\"prompt_tokens\":%d,\"generated_tokens\":%d,\"load_ms\":%.2f,"
                             "\"prompt_ms\":%.2f,\"generation_ms\":%.2f,\"first_token_ms\":%.2f}\n",
                      lm_stop_reason_name(st.stop), st.n_prompt, st.n_gen, e.t_load * 1e3, st.t_prompt * 1e3,
                      st.t_gen * 1e3, st.t_first * 1e3);
        fwrite(line.data, 1, line.len, stdout);
    }
    if (fflush(stdout) != 0) rc = lm_cli_fail(LM_EXIT_RUNTIME, "cannot write to stdout");
    if (!o.quiet) {
        line.len = 0;
        lm_gen_stats_line(&e, &st, &line);
        fprintf(stderr, "\nlm: %s\n", line.data);
    }
    if (st.stop == LM_STOP_CONTEXT && !o.quiet) fprintf(stderr, "lm: stopped: the context of %d tokens is full (see -c)\n", e.ctx.n_ctx);
    if (!rc && st.stop == LM_STOP_INTERRUPT) rc = LM_EXIT_INTERRUPT;
done:
    lm_engine_close(&e);
    lm_tokens_free(&ids);
    lm_buf_free(&prompt);
    lm_buf_free(&line);
    free(o.stops);
    return rc;
}
