/* fuzz_gguf: arbitrary bytes as a model file, through everything lm does
 * with a file before and at inference: lm_gguf_parse, lm info (text and
 * JSON), lm_tokenizer_load with an encode/decode of a fixed text and of the
 * file's last bytes, lm_model_from_gguf, and for a model that loads a
 * context, one forward pass and a sample.
 *
 * Checked: every refusal has a message; ids are inside the vocabulary; the
 * streaming decoder gives what decoding gives. Contexts that would need more
 * than MAX_CTX_BYTES are skipped (a real run would refuse or use less). */
#include "fuzz.h"
#include "lm/cli.h"
#include "lm/model.h"
#include "lm/sampler.h"
#include "lm/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_CTX_BYTES ((uint64_t)64 << 20)

static struct lm_pool *pool;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    pool = lm_pool_create(1);
    fuzz_quiet();
    return 0;
}

/* lm info on the bytes, through a memory file. */
static void info(const uint8_t *data, size_t size) {
    int fd = memfd_create("fuzz.gguf", 0);
    if (fd < 0) return;
    bool ok = true;
    for (size_t off = 0; ok && off < size;) {
        ssize_t n = write(fd, data + off, size - off);
        ok = n > 0;
        off += ok ? (size_t)n : 0;
    }
    if (ok) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        char *text[] = {"info", "-m", path, "--tensors", NULL};
        char *json[] = {"info", "-m", path, "--tensors", "--json", NULL};
        int rc = cmd_info(4, text);
        FUZZ_CHECK(rc == LM_EXIT_OK || rc == LM_EXIT_MODEL);
        FUZZ_CHECK(cmd_info(5, json) == rc);
    }
    close(fd);
}

/* Encodes text both ways and decodes the ids again. */
static void tokenize(const struct lm_tokenizer *t, const char *text, size_t len, struct lm_tokens *ids) {
    struct lm_err err = {{0}};
    for (int special = 0; special < 2; special++) {
        ids->n = 0;
        bool bos = special && t->bos >= 0;
        FUZZ_CHECK(lm_tokenizer_encode(t, text, len, bos, special, ids, &err) == 0);
        for (size_t i = 0; i < ids->n; i++) FUZZ_CHECK(ids->ids[i] >= 0 && ids->ids[i] < t->n_vocab);
        struct lm_buf whole = {0}, pieces = {0}, stream = {0};
        lm_tokenizer_decode(t, ids->ids, ids->n, &whole);
        struct lm_detok d;
        lm_detok_init(&d, t, true);
        for (size_t i = 0; i < ids->n; i++) {
            lm_tokenizer_decode_piece(t, ids->ids[i], &pieces);
            lm_detok_feed(&d, ids->ids[i], &stream);
        }
        lm_detok_flush(&d, &stream);
        FUZZ_CHECK(stream.len == pieces.len && (!pieces.len || !memcmp(stream.data, pieces.data, pieces.len)));
        lm_buf_free(&whole);
        lm_buf_free(&pieces);
        lm_buf_free(&stream);
    }
}

/* What lm_ctx_init(n_ctx, n_batch) allocates with the one-thread pool. */
static uint64_t ctx_bytes(const struct lm_model *m, int n_ctx, int n_batch) {
    struct lm_ctx_size s;
    lm_ctx_size(m, n_ctx, n_batch, &s);
    return lm_add_sat(lm_add_sat(s.kv, s.att), s.batch);
}

static void run(const struct lm_model *m, const struct lm_tokens *ids) {
    struct lm_err err = {{0}};
    enum { N_CTX = 4 };
    if (ctx_bytes(m, N_CTX, 2) > MAX_CTX_BYTES) return;
    struct lm_ctx c;
    FUZZ_CHECK(lm_ctx_init(&c, m, pool, N_CTX, 2, &err) == 0);
    int32_t toks[2] = {0, 0};
    int n = ids->n >= 2 ? 2 : 1;
    for (int i = 0; i < n && (size_t)i < ids->n; i++) toks[i] = ids->ids[i];
    FUZZ_CHECK(lm_forward(&c, toks, n, 0, &err) == 0);
    FUZZ_CHECK(lm_forward(&c, toks, 1, n, &err) == 0);
    FUZZ_CHECK(lm_forward(&c, toks, 1, N_CTX, &err) < 0 && err.msg[0]); /* past the context */
    struct lm_sampler s;
    struct lm_sampler_params p = lm_sampler_params_default();
    p.seed = 1, p.seed_set = true;
    FUZZ_CHECK(lm_sampler_init(&s, &p, m->hp.n_vocab, &err) == 0);
    int32_t id = lm_sampler_sample(&s, c.logits);
    FUZZ_CHECK(id >= 0 && id < m->hp.n_vocab);
    lm_sampler_free(&s);
    lm_ctx_free(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char text[] = "Hello world! <|im_start|>user\n\xE2\x96\x81x\t 123 <s></s><0x0A>\xFF\xC3(\0end";
    struct lm_err err = {{0}};
    struct lm_gguf g;
    if (lm_gguf_parse(&g, data, size, &err) < 0) {
        FUZZ_CHECK(err.msg[0]);
        lm_gguf_close(&g);
        return 0;
    }
    info(data, size);
    struct lm_tokenizer t;
    struct lm_tokens ids = {0};
    bool have_tok = lm_tokenizer_load(&t, &g, &err) == 0;
    FUZZ_CHECK(have_tok || err.msg[0]);
    if (have_tok) {
        size_t tail = size < 64 ? size : 64;
        tokenize(&t, (const char *)data + size - tail, tail, &ids);
        tokenize(&t, text, sizeof text - 1, &ids);
    }
    err.msg[0] = 0;
    struct lm_model m;
    if (lm_model_from_gguf(&m, &g, &err) == 0) {
        if (!have_tok || t.n_vocab == m.hp.n_vocab) run(&m, &ids);
        lm_model_free(&m);
    } else {
        FUZZ_CHECK(err.msg[0]);
    }
    lm_tokens_free(&ids);
    if (have_tok) lm_tokenizer_free(&t);
    return 0;
}
