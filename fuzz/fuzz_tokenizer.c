/* fuzz_tokenizer: arbitrary bytes as text, encoded with real vocabularies
 * (every .gguf of ../shared/vocab and the default model's), with and without
 * special-token parsing, then decoded.
 *
 * The first byte picks the vocabulary, the rest is the text. Checked: ids
 * are inside the vocabulary; decoding gives the text back byte for byte
 * where tokenizer.h promises it (a vocabulary that spells every byte, no
 * special-token parsing; SentencePiece's own U+2581 comes back as a space,
 * and it puts a space after a user-defined token cut out of the text, as
 * llama.cpp does, so there the check is skipped);
 * the streaming decoder gives what the pieces give. */
#include "fuzz.h"
#include "lm/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_VOCABS 32
#define SPACE_MARK "\xE2\x96\x81"

static struct vocab {
    struct lm_gguf g;
    struct lm_tokenizer t;
    bool exact; /* every byte has a token of its own, so decoding is exact */
} vocabs[MAX_VOCABS];
static size_t n_vocabs;

static void load(const char *path) {
    struct vocab *v = &vocabs[n_vocabs];
    struct lm_err err;
    if (n_vocabs == MAX_VOCABS) return;
    if (lm_gguf_open(&v->g, path, &err) < 0 || lm_tokenizer_load(&v->t, &v->g, &err) < 0) {
        dprintf(2, "fuzz_tokenizer: skipping %s: %s\n", path, err.msg);
        lm_gguf_close(&v->g);
        return;
    }
    v->exact = true;
    for (int b = 0; b < 256; b++)
        if (v->t.byte_id[b] < 0 || v->t.tokens[v->t.byte_id[b]].type == LM_TOKEN_USER_DEFINED) v->exact = false;
    n_vocabs++;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    size_t n;
    char **files = fuzz_list_dir(fuzz_shared_path("vocab"), ".gguf", &n);
    for (size_t i = 0; i < n; i++) load(files[i]);
    fuzz_free_list(files, n);
    if (fuzz_model_path()) load(fuzz_model_path());
    if (!n_vocabs) {
        dprintf(2, "fuzz_tokenizer: no vocabulary: neither %s nor models/default.gguf\n", fuzz_shared_path("vocab"));
        exit(1);
    }
    dprintf(2, "fuzz_tokenizer: %zu vocabularies\n", n_vocabs);
    return 0;
}

/* text as SentencePiece decodes it: its own space marks become spaces. */
static void spm_expected(const char *text, size_t len, struct lm_buf *out) {
    for (size_t i = 0; i < len;) {
        if (len - i >= 3 && !memcmp(text + i, SPACE_MARK, 3)) {
            lm_buf_putc(out, ' ');
            i += 3;
        } else {
            lm_buf_putc(out, text[i++]);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const struct vocab *v = &vocabs[data[0] % n_vocabs];
    const struct lm_tokenizer *t = &v->t;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    struct lm_tokens ids = {0};
    struct lm_buf back = {0}, want = {0}, pieces = {0}, stream = {0};
    struct lm_err err = {{0}};
    for (int special = 0; special < 2; special++) {
        ids.n = 0;
        back.len = pieces.len = stream.len = 0;
        FUZZ_CHECK(lm_tokenizer_encode(t, text, len, false, special, &ids, &err) == 0);
        for (size_t i = 0; i < ids.n; i++) FUZZ_CHECK(ids.ids[i] >= 0 && ids.ids[i] < t->n_vocab);
        lm_tokenizer_decode(t, ids.ids, ids.n, &back);
        bool cut = false; /* SentencePiece put a space after a token cut out of the text */
        for (size_t i = 0; i < ids.n && t->type == LM_VOCAB_SPM && t->add_space_prefix; i++)
            cut = cut || t->tokens[ids.ids[i]].type == LM_TOKEN_USER_DEFINED;
        if (v->exact && !special && !cut) {
            want.len = 0;
            if (t->type == LM_VOCAB_SPM) spm_expected(text, len, &want);
            else lm_buf_append(&want, text, len);
            FUZZ_CHECK(back.len == want.len && (!len || !memcmp(back.data, want.data, want.len)));
        }
        struct lm_detok d;
        lm_detok_init(&d, t, true);
        for (size_t i = 0; i < ids.n; i++) {
            lm_tokenizer_decode_piece(t, ids.ids[i], &pieces);
            lm_detok_feed(&d, ids.ids[i], &stream);
        }
        lm_detok_flush(&d, &stream);
        FUZZ_CHECK(stream.len == pieces.len && (!pieces.len || !memcmp(stream.data, pieces.data, pieces.len)));
    }
    lm_tokens_free(&ids);
    lm_buf_free(&back);
    lm_buf_free(&want);
    lm_buf_free(&pieces);
    lm_buf_free(&stream);
    return 0;
}
