/* lm: the command table. Each command lives in src/cli/NAME.c. */
#include "lm/cli.h"

#include <stdio.h>
#include <string.h>

struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
};

static const struct command commands[] = {
    {"chat", cmd_chat, "talk with the model through its chat template"},
    {"run", cmd_run, "continue a prompt (plain completion, for scripts)"},
    {"serve", cmd_serve, "serve the model over HTTP (OpenAI API, chat page)"},
    {"info", cmd_info, "show a model's metadata and tensors, and whether lm runs it"},
    {"bench", cmd_bench, "measure prompt and generation speed, as llama-bench"},
    {"quantize", cmd_quantize, "write a model's weights in another format (q4_k_m, q8_0, ...)"},
    {"perplexity", cmd_perplexity, "perplexity over a text, KL divergence against a base model"},
    {"tokenize", cmd_tokenize, "show how the model's vocabulary splits a text into tokens"},
    {"template", cmd_template, "render a chat template"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: lm COMMAND [options]   (lm help COMMAND, or lm COMMAND --help)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\nmodel: -m PATH, else $LM_MODEL, else models/default.gguf (scripts/get-model.sh fetches it)\n"
               "\nenvironment:\n"
               "  LM_MODEL    model file used when -m is not given\n"
               "  LM_API_KEY  the key lm serve requires when --api-key is not given\n"
               "\nexit codes:\n"
               "  0 ok, 1 usage error, 2 bad or missing model file, 3 runtime failure, 130 interrupted\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return LM_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (!strcmp(name, "-h") || !strcmp(name, "--help")) {
        usage(stdout);
        return LM_EXIT_OK;
    }
    if (!strcmp(name, "help")) {
        if (argc < 3) {
            usage(stdout);
            return LM_EXIT_OK;
        }
        name = argv[2];
        char *help_argv[] = {argv[2], "--help", NULL};
        for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
            if (!strcmp(commands[i].name, name)) return commands[i].fn(2, help_argv);
        return lm_cli_fail(LM_EXIT_USAGE, "no such command: %s (see lm --help)", name);
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(commands[i].name, name)) return commands[i].fn(argc - 1, argv + 1);
    return lm_cli_fail(LM_EXIT_USAGE, "no such command: %s (see lm --help)", name);
}
