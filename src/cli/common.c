/* Helpers shared by the subcommands: errors, strict numbers, model path,
 * template flags. */
#include "lm/chat.h"
#include "lm/cli.h"
#include "lm/generate.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool lm_cli_flags_only;

int lm_cli_fail(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("lm: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

int lm_cli_int(const char *flag, const char *s, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end) {
        lm_cli_fail(LM_EXIT_USAGE, "%s: '%s' is not an integer", flag, s);
        return -1;
    }
    if (v < lo || v > hi) {
        lm_cli_fail(LM_EXIT_USAGE, "%s: %lld is out of range [%lld, %lld]", flag, v, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int lm_cli_float(const char *flag, const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || isnan(v)) {
        lm_cli_fail(LM_EXIT_USAGE, "%s: '%s' is not a number", flag, s);
        return -1;
    }
    if (v < lo || v > hi) {
        lm_cli_fail(LM_EXIT_USAGE, "%s: %g is out of range [%g, %g]", flag, v, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

const char *lm_cli_value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        lm_cli_fail(LM_EXIT_USAGE, "%s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

int lm_cli_engine_flag(struct lm_engine_opts *o, int argc, char **argv, int *i) {
    int r = lm_sampler_parse_flag(&o->sampling, argc, argv, i);
    if (r) return r;
    const char *a = argv[*i], *v;
    int *num;
    long long n, lo = 1, hi = 1 << 16;
    if (!strcmp(a, "-m") || !strcmp(a, "--model")) return (o->model_path = lm_cli_value(argc, argv, i)) ? 1 : -1;
    if (!strcmp(a, "--ignore-eos")) {
        o->ignore_eos = true;
        return 1;
    }
    /* -c is limited by the memory it needs (lm_ctx_init), not here */
    if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) num = &o->n_ctx, lo = 0, hi = 1 << 30;
    else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) num = &o->n_threads, hi = 256;
    else if (!strcmp(a, "-b") || !strcmp(a, "--batch-size")) num = &o->n_batch;
    else return 0;
    if (!(v = lm_cli_value(argc, argv, i)) || lm_cli_int(a, v, lo, hi, &n) < 0) return -1;
    *num = (int)n;
    return 1;
}

const char *lm_cli_model_path(const char *flag_value) {
    if (flag_value) return flag_value;
    const char *env = getenv("LM_MODEL");
    if (env && *env) return env;
    const char *def = "models/default.gguf";
    if (access(def, F_OK) == 0) return def;
    lm_cli_fail(LM_EXIT_MODEL, "no model: pass -m MODEL.gguf, set LM_MODEL, or run scripts/get-model.sh "
                               "to fetch the default model into %s", def);
    return NULL;
}

int lm_cli_template_flag(struct lm_cli_template *t, int argc, char **argv, int *i) {
    const char *a = argv[*i];
    bool builtin = !strcmp(a, "--template");
    if (!builtin && strcmp(a, "--template-file") != 0) return 0;
    const char *v = lm_cli_value(argc, argv, i);
    if (!v) return -1;
    if (builtin ? t->file != NULL : t->name != NULL) {
        lm_cli_fail(LM_EXIT_USAGE, "%s: give --template or --template-file, not both", argv[0]);
        return -1;
    }
    if (!builtin) {
        t->file = v;
        return 1;
    }
    if (!lm_chat_builtin(v)) {
        struct lm_buf names = {0};
        for (const char *const *n = lm_chat_builtin_names; *n; n++)
            lm_buf_printf(&names, "%s%s", n == lm_chat_builtin_names ? "" : ", ", *n);
        lm_cli_fail(LM_EXIT_USAGE, "%s: --template: no built-in template '%s' (%s)", argv[0], v, names.data);
        lm_buf_free(&names);
        return -1;
    }
    t->name = v;
    return 1;
}

int lm_cli_template_text(const struct lm_cli_template *t, struct lm_buf *out, struct lm_err *err) {
    if (t->file) return lm_read_file(t->file, out, err) < 0 ? -1 : 1;
    if (t->name) {
        lm_buf_puts(out, lm_chat_builtin(t->name));
        return 1;
    }
    return 0;
}
