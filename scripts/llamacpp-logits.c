/* llamacpp-logits: llama.cpp's logits at every position of token-id
 * prompts, the reference side of tests/test_arch.c (see
 * scripts/make-arch-refs.sh). Built against a local llama.cpp build (never
 * part of lm):
 *
 *   cc -O2 scripts/llamacpp-logits.c -I$LLAMA/include -I$LLAMA/ggml/include \
 *      -L$LLAMA/build/bin -lllama -lggml -lggml-base -Wl,-rpath,$LLAMA/build/bin -o build/llamacpp-logits
 *
 * usage: llamacpp-logits MODEL PROMPTS OUT [N_CTX]
 * PROMPTS: one prompt a line, token ids separated by spaces. N_CTX: the
 * context (default: the model's training context), which also picks
 * Phi-3's long or short RoPE factors.
 *
 * Runs on the CPU with an F32 KV cache and without flash attention, so the
 * reference rounds nothing to f16 beyond what ggml's kernels do by
 * themselves (its GELU reads an f16 table). Each prompt is run twice from
 * an empty cache: as one batch, then one token per llama_decode call.
 *
 * OUT: a text header, then little-endian float32 data:
 *   lm-arch-ref 1
 *   n_vocab V
 *   n_ctx C
 *   prompts P
 *   prompt N id0 id1 ... id(N-1)      (P such lines)
 *   data
 * followed, for each prompt in order, by N x V floats (batch: the logits of
 * each position) and N x V floats (token by token). */
#include <llama.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PROMPTS 16
#define MAX_TOKENS 512

static void quiet(enum ggml_log_level level, const char *text, void *ud) {
    (void)ud;
    if (level == GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

static int read_prompts(const char *path, llama_token toks[][MAX_TOKENS], int *lens) {
    FILE *f = fopen(path, "r");
    if (!f) return perror(path), -1;
    static char line[1 << 16];
    int n = 0;
    while (n < MAX_PROMPTS && fgets(line, sizeof line, f)) {
        int len = 0, off = 0, used;
        long id;
        while (len < MAX_TOKENS && sscanf(line + off, "%ld%n", &id, &used) == 1) toks[n][len++] = (llama_token)id, off += used;
        if (len) lens[n++] = len;
    }
    fclose(f);
    return n;
}

/* Decodes toks[0..n) at positions 0.. in batches of `step` tokens, all
 * with logits, into out (n x n_vocab). */
static int run(struct llama_context *ctx, const llama_token *toks, int n, int step, int n_vocab, float *out) {
    llama_memory_clear(llama_get_memory(ctx), true);
    struct llama_batch b = llama_batch_init(step, 0, 1);
    for (int i0 = 0; i0 < n; i0 += step) {
        int m = n - i0 < step ? n - i0 : step;
        b.n_tokens = m;
        for (int i = 0; i < m; i++) {
            b.token[i] = toks[i0 + i];
            b.pos[i] = i0 + i;
            b.n_seq_id[i] = 1;
            b.seq_id[i][0] = 0;
            b.logits[i] = 1;
        }
        if (llama_decode(ctx, b)) return llama_batch_free(b), fprintf(stderr, "decode failed\n"), -1;
        for (int i = 0; i < m; i++) memcpy(out + (size_t)(i0 + i) * n_vocab, llama_get_logits_ith(ctx, i), sizeof(float) * n_vocab);
    }
    llama_batch_free(b);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: llamacpp-logits MODEL PROMPTS OUT [N_CTX]\n");
        return 1;
    }
    static llama_token toks[MAX_PROMPTS][MAX_TOKENS];
    int lens[MAX_PROMPTS];
    int n_prompts = read_prompts(argv[2], toks, lens);
    if (n_prompts <= 0) return fprintf(stderr, "%s: no prompts\n", argv[2]), 1;

    llama_backend_init();
    llama_log_set(quiet, NULL);
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    struct llama_model *model = llama_model_load_from_file(argv[1], mp);
    if (!model) return fprintf(stderr, "cannot load %s\n", argv[1]), 1;
    int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = argc > 4 ? (uint32_t)atoi(argv[4]) : (uint32_t)llama_model_n_ctx_train(model);
    cp.n_batch = cp.n_ubatch = MAX_TOKENS;
    cp.n_threads = cp.n_threads_batch = 2;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.type_k = cp.type_v = GGML_TYPE_F32;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) return fprintf(stderr, "cannot make a context\n"), 1;

    FILE *out = fopen(argv[3], "wb");
    if (!out) return perror(argv[3]), 1;
    fprintf(out, "lm-arch-ref 1\nn_vocab %d\nn_ctx %u\nprompts %d\n", n_vocab, llama_n_ctx(ctx), n_prompts);
    for (int p = 0; p < n_prompts; p++) {
        fprintf(out, "prompt %d", lens[p]);
        for (int i = 0; i < lens[p]; i++) fprintf(out, " %d", toks[p][i]);
        fprintf(out, "\n");
    }
    fprintf(out, "data\n");
    float *logits = malloc(sizeof(float) * MAX_TOKENS * n_vocab);
    if (!logits) return fprintf(stderr, "out of memory\n"), 1;
    for (int p = 0; p < n_prompts; p++) {
        for (int step = lens[p]; step >= 1; step = step > 1 ? 1 : 0) {
            if (run(ctx, toks[p], lens[p], step, n_vocab, logits)) return 1;
            size_t n = (size_t)lens[p] * n_vocab;
            if (fwrite(logits, sizeof(float), n, out) != n) return perror(argv[3]), 1;
        }
    }
    free(logits);
    if (fclose(out)) return perror(argv[3]), 1;
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
