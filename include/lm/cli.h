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

/* Prints "lm: MSG" on stderr (one line) and returns code. */
int lm_cli_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Strict number parsing of a flag's value: the whole string must be a
 * number within [lo, hi]. On failure prints "lm: FLAG: ..." and returns -1. */
int lm_cli_int(const char *flag, const char *s, long long lo, long long hi, long long *out);
int lm_cli_float(const char *flag, const char *s, double lo, double hi, double *out);

/* argv[*i] is a flag that takes a value: returns the value and advances *i,
 * or prints "lm: FLAG needs a value" and returns NULL. */
const char *lm_cli_value(int argc, char **argv, int *i);

/* The model to use: -m PATH if given, else $LM_MODEL, else
 * models/default.gguf. Returns NULL (after printing how to get a model) when
 * none exists. */
const char *lm_cli_model_path(const char *flag_value);

#endif
