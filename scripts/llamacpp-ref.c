/* llamacpp-ref: the reference side of scripts/compare-llamacpp.py. Built
 * against a local llama.cpp build (never part of lm):
 *
 *   cc -O2 scripts/llamacpp-ref.c -I$LLAMA/include -I$LLAMA/ggml/include \
 *      -L$LLAMA/build/bin -lllama -lggml -lggml-base -Wl,-rpath,$LLAMA/build/bin -o build/llamacpp-ref
 *
 * usage: llamacpp-ref MODEL PROMPT_FILE N_GEN LOGITS_OUT [special] [nofa]
 * Tokenizes the prompt (adding BOS as the model says; parsing special tokens
 * when "special" is given), runs it (without flash attention when "nofa"
 * is given: the two paths differ numerically, which measures the noise), writes the last position's logits as
 * float32 to LOGITS_OUT, then generates greedily up to N_GEN tokens.
 * stdout: line 1 the prompt ids; then one line per generated token:
 * "id top1_logit top2_id top2_logit". */
#include <llama.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void top2(const float *l, int n, int *i1, int *i2) {
    *i1 = 0;
    *i2 = 1;
    if (l[1] > l[0]) *i1 = 1, *i2 = 0;
    for (int i = 2; i < n; i++) {
        if (l[i] > l[*i1]) *i2 = *i1, *i1 = i;
        else if (l[i] > l[*i2]) *i2 = i;
    }
}

static void quiet(enum ggml_log_level level, const char *text, void *ud) {
    (void)level, (void)text, (void)ud;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: llamacpp-ref MODEL PROMPT_FILE N_GEN LOGITS_OUT [special] [nofa]\n");
        return 1;
    }
    bool special = false, nofa = false;
    for (int i = 5; i < argc; i++) {
        special |= !strcmp(argv[i], "special");
        nofa |= !strcmp(argv[i], "nofa");
    }
    FILE *f = fopen(argv[2], "rb");
    if (!f) return perror(argv[2]), 1;
    static char text[1 << 20];
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    int n_gen = atoi(argv[3]);

    llama_backend_init();
    llama_log_set(quiet, NULL);
    struct llama_model_params mp = llama_model_default_params();
    struct llama_model *model = llama_model_load_from_file(argv[1], mp);
    if (!model) return fprintf(stderr, "cannot load %s\n", argv[1]), 1;
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 4096;
    cp.n_batch = 512;
    cp.n_threads = cp.n_threads_batch = 2;
    if (nofa) cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    int n_vocab = llama_vocab_n_tokens(vocab);
    static llama_token toks[8192];
    int n = llama_tokenize(vocab, text, (int32_t)len, toks, 8192, true, special);
    if (n < 0) return fprintf(stderr, "prompt too long\n"), 1;
    for (int i = 0; i < n; i++) printf("%s%d", i ? " " : "", toks[i]);
    printf("\n");
    if (llama_decode(ctx, llama_batch_get_one(toks, n))) return fprintf(stderr, "decode failed\n"), 1;
    const float *logits = llama_get_logits_ith(ctx, -1);
    FILE *out = fopen(argv[4], "wb");
    if (!out || fwrite(logits, sizeof(float), (size_t)n_vocab, out) != (size_t)n_vocab) return perror(argv[4]), 1;
    fclose(out);
    for (int g = 0; g < n_gen; g++) {
        int i1, i2;
        top2(logits, n_vocab, &i1, &i2);
        printf("%d %.6f %d %.6f\n", i1, logits[i1], i2, logits[i2]);
        if (llama_vocab_is_eog(vocab, i1)) break;
        llama_token t = i1;
        if (llama_decode(ctx, llama_batch_get_one(&t, 1))) return fprintf(stderr, "decode failed\n"), 1;
        logits = llama_get_logits_ith(ctx, -1);
    }
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
