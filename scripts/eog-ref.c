/* eog-ref: the tokens llama.cpp ends generation on, for
 * scripts/gen-tokenizer-vectors.py. Built against a local llama.cpp build
 * (never part of lm):
 *
 *   cc -O2 scripts/eog-ref.c -I$LLAMA/include -I$LLAMA/ggml/include \
 *      -L$LLAMA/build/bin -lllama -lggml -lggml-base -Wl,-rpath,$LLAMA/build/bin -o build/eog-ref
 *
 * usage: eog-ref VOCAB.gguf
 * stdout: the ids llama_vocab_is_eog accepts, in order, on one line. */
#include <llama.h>
#include <stdio.h>

static void quiet(enum ggml_log_level level, const char *text, void *ud) {
    (void)level, (void)text, (void)ud;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: eog-ref VOCAB.gguf\n");
        return 1;
    }
    llama_log_set(quiet, NULL);
    struct llama_model_params mp = llama_model_default_params();
    mp.vocab_only = true;
    struct llama_model *model = llama_model_load_from_file(argv[1], mp);
    if (!model) {
        fprintf(stderr, "eog-ref: cannot load %s\n", argv[1]);
        return 1;
    }
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    for (llama_token id = 0; id < llama_vocab_n_tokens(vocab); id++)
        if (llama_vocab_is_eog(vocab, id)) printf(" %d", id);
    printf("\n");
    llama_model_free(model);
    return 0;
}
