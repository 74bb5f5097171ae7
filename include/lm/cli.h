/* cli.h: the lm subcommands and the helpers they share.
 *
 * Each src/cli/NAME.c holds its usage text, an options struct with defaults,
 * strict flag parsing, and int cmd_NAME(int argc, char **argv) returning an
 * exit code (LM_EXIT_*). argv[0] is the command name. */
#ifndef LM_CLI_H
#define LM_CLI_H

#include "lm/common.h"

int cmd_info(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_template(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_serve(int argc, char **argv);

/* Set by the CLI fuzzer (fuzz/fuzz_cli.c): each command returns LM_EXIT_OK
 * as soon as its flags are parsed and checked, before it reads a file or
 * loads a model. */
extern bool lm_cli_flags_only;

/* Prints "lm: MSG" on stderr (one line) and returns code. */
int lm_cli_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Strict number parsing of a flag's value: the whole string must be a
 * number within [lo, hi]. On failure prints "lm: FLAG: ..." and returns -1. */
int lm_cli_int(const char *flag, const char *s, long long lo, long long hi, long long *out);
int lm_cli_float(const char *flag, const char *s, double lo, double hi, double *out);

/* argv[*i] is a flag that takes a value: returns the value and advances *i,
 * or prints "lm: FLAG needs a value" and returns NULL. */
const char *lm_cli_value(int argc, char **argv, int *i);

/* The flags lm run and lm chat share (-m, -c, -t, -b, --ignore-eos and the
 * sampling flags), into struct lm_engine_opts: 1 when argv[*i] was one (its
 * value consumed), 0 when not, -1 on a bad value (message printed). */
struct lm_engine_opts;
int lm_cli_engine_flag(struct lm_engine_opts *o, int argc, char **argv, int *i);
#define LM_ENGINE_USAGE                                                                     \
    "  -m, --model PATH      model file (default: $LM_MODEL, else models/default.gguf)\n"   \
    "  -c, --ctx-size N      context size in tokens (default: the model's, at most 4096)\n" \
    "  -t, --threads N       threads (default: number of CPUs)\n"                           \
    "  -b, --batch-size N    prompt tokens per forward pass (default 512)\n"                \
    "  --ignore-eos          never end at an end-of-generation token: go on to -n or a\n"   \
    "                        full context (such tokens are never sampled)\n"

/* --template NAME (a built-in) and --template-file FILE, which lm chat and
 * lm template share: 1 when argv[*i] is one (its value consumed and
 * checked: a known built-in, not both flags), 0 when not, -1 on a bad or
 * missing value (message printed, naming the command argv[0]). */
struct lm_cli_template {
    const char *name, *file;
};
int lm_cli_template_flag(struct lm_cli_template *t, int argc, char **argv, int *i);
/* The chosen template's text appended to out: 1 when a flag chose one, 0
 * when neither was given (the model's own is for the caller to find), -1
 * when the file cannot be read (err names it). */
int lm_cli_template_text(const struct lm_cli_template *t, struct lm_buf *out, struct lm_err *err);

/* The model to use: -m PATH if given, else $LM_MODEL, else
 * models/default.gguf. Returns NULL (after printing how to get a model) when
 * none exists. */
const char *lm_cli_model_path(const char *flag_value);

/* Sampling flags shared by run and chat (src/cli/sampling.c): if argv[*i]
 * is one, reads its value into p, advances *i and returns 1; returns 0 if
 * it is not a sampling flag, -1 (message printed) on a missing or bad
 * value. LM_SAMPLER_USAGE is their help text, defaults included. */
struct lm_sampler_params;
int lm_sampler_parse_flag(struct lm_sampler_params *p, int argc, char **argv, int *i);
#define LM_SAMPLER_USAGE                                                                           \
    "sampling, applied in this order (see include/lm/sampler.h):\n"                                \
    "  --repeat-penalty X  divide positive logits of recent tokens by X, multiply negative ones\n"  \
    "                      (default 1.0 = off)\n"                                                  \
    "  --repeat-last-n N   how many recent tokens the penalty looks at (default 64, 0 = off)\n"    \
    "  --top-k N           keep the N most likely tokens (default 40, <= 0 = off)\n"               \
    "  --top-p P           keep the fewest most likely tokens whose mass reaches P\n"              \
    "                      (default 0.95, 1 = off)\n"                                              \
    "  --min-p P           drop tokens less likely than P times the top one (default 0.05, 0 = off)\n" \
    "  --temp T            divide logits by T (default 0.8, 0 = greedy: always the top token)\n"   \
    "  -s, --seed N        random seed (default: picked from time and pid and printed; -1 = that)\n"

#endif
