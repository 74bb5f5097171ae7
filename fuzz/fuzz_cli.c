/* fuzz_cli: arbitrary command lines through each command's flag parsing.
 *
 * The first byte picks the command; the rest, split at NUL bytes, is its
 * arguments (each one its own allocation, so a read past an argument is
 * caught). lm_cli_flags_only stops every command once its flags are
 * checked, so no model is loaded and no file is read or written. Checked:
 * the exit code is LM_EXIT_OK (valid flags, or --help) or LM_EXIT_USAGE. */
#include "fuzz.h"
#include "lm/cli.h"

#include <stdlib.h>
#include <string.h>

#define MAX_ARGS 64

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
} commands[] = {
    {"run", cmd_run}, {"info", cmd_info}, {"bench", cmd_bench}, {"tokenize", cmd_tokenize}, {"template", cmd_template},
    {"chat", cmd_chat}, {"quantize", cmd_quantize}, {"perplexity", cmd_perplexity}, {"serve", cmd_serve},
};

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    lm_cli_flags_only = true;
    fuzz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    size_t n_commands = sizeof commands / sizeof commands[0];
    const char *name = commands[data[0] % n_commands].name;
    char *argv[MAX_ARGS + 1];
    int argc = 0;
    argv[argc++] = lm_xstrdup(name);
    for (size_t i = 1; i < size && argc < MAX_ARGS;) {
        const uint8_t *end = memchr(data + i, 0, size - i);
        size_t n = end ? (size_t)(end - (data + i)) : size - i;
        argv[argc++] = lm_xstrndup((const char *)data + i, n);
        i += n + 1;
    }
    argv[argc] = NULL;
    int rc = commands[data[0] % n_commands].fn(argc, argv);
    FUZZ_CHECK(rc == LM_EXIT_OK || rc == LM_EXIT_USAGE);
    for (int i = 0; i < argc; i++) free(argv[i]);
    return 0;
}
