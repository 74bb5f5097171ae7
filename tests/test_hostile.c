/* Hostile inputs (issue 6): each malformed file of hostile_files.c is
 * refused at load with its message and the good ones load and run; the
 * committed fuzz corpus is what the builder makes; lm run refuses bad files
 * in one line and gives prompts with NUL bytes, invalid UTF-8 or more tokens
 * than the context a defined outcome. Memory (issue 10): files that ask for
 * more than they justify are refused before anything large is allocated,
 * and a context the machine cannot hold is an error, not an abort. */
#include "test.h"

#include "hostile_files.h"
#include "lm/model.h"
#include "lm/tokenizer.h"

#include <math.h>
#include <stdlib.h>

/* Runs lm as test_run_lm does, under `ulimit -v` of 4 GB (kilobytes here),
 * so that an allocation the file asks for fails instead of paging: except
 * when LM_BIN names a sanitizer build, which reserves terabytes of address
 * space for itself and cannot start under the limit. */
static int run_lm_limited(const char *args, struct lm_buf *out, struct lm_buf *err) {
    const char *bin = getenv("LM_BIN");
    if (bin && *bin) return test_run_lm(args, NULL, out, err);
    setenv("LM_BIN", "ulimit -v 4000000; ./lm", 1); /* test_run_lm puts LM_BIN first in a shell command */
    int rc = test_run_lm(args, NULL, out, err);
    unsetenv("LM_BIN");
    return rc;
}

/* Loads b as lm run does (GGUF, vocabulary, model, a context) and runs the
 * prompt "hello world" through it. 0, or -1 with err set. */
static int load_and_run(const struct lm_buf *b, struct lm_err *err) {
    struct lm_gguf g;
    struct lm_tokenizer t = {0};
    struct lm_model m = {0};
    struct lm_ctx c = {0};
    struct lm_tokens ids = {0};
    struct lm_pool *pool = NULL;
    int rc = -1;
    if (lm_gguf_parse(&g, b->data, b->len, err) < 0 || lm_tokenizer_load(&t, &g, err) < 0) {
        lm_gguf_close(&g);
        goto done;
    }
    if (lm_model_from_gguf(&m, &g, err) < 0) goto done;
    if (t.n_vocab != m.hp.n_vocab) {
        lm_errf(err, "vocabulary of %d tokens, model of %d", t.n_vocab, m.hp.n_vocab);
        goto done;
    }
    pool = lm_pool_create(1);
    if (lm_ctx_init(&c, &m, pool, 16, 16, err) < 0 ||
        lm_tokenizer_encode(&t, "hello world", 11, t.bos >= 0, false, &ids, err) < 0 ||
        lm_forward(&c, ids.ids, (int)ids.n, 0, err) < 0)
        goto done;
    rc = 0;
    for (int i = 0; i < m.hp.n_vocab; i++)
        if (!isfinite(c.logits[i])) rc = lm_errf(err, "logit %d is %g", i, c.logits[i]);
done:
    lm_tokens_free(&ids);
    lm_ctx_free(&c);
    lm_pool_free(pool);
    lm_model_free(&m);
    lm_tokenizer_free(&t);
    return rc;
}

TEST(hostile_files_refused_at_load) {
    for (size_t i = 0; i < n_hostile_files; i++) {
        const struct hostile_file *f = &hostile_files[i];
        struct lm_buf b = {0};
        struct lm_err err = {{0}};
        f->build(&b);
        int rc = load_and_run(&b, &err);
        if (!f->refusal && rc != 0) test_fail(__FILE__, __LINE__, "%s: %s", f->name, err.msg);
        if (f->refusal && rc == 0) test_fail(__FILE__, __LINE__, "%s was accepted", f->name);
        if (f->refusal && rc != 0 && !strstr(err.msg, f->refusal))
            test_fail(__FILE__, __LINE__, "%s: \"%s\" does not contain \"%s\"", f->name, err.msg, f->refusal);
        if (test_verbose) fprintf(stderr, "  %s: %s\n", f->name, rc ? err.msg : "loads and runs");
        lm_buf_free(&b);
    }
    return 0;
}

/* tests/corpus/gguf holds exactly what the builder makes (make corpus). */
TEST(hostile_corpus_up_to_date) {
    int checked = 0;
    for (size_t i = 0; i < n_hostile_files; i++) {
        char path[256];
        snprintf(path, sizeof path, "tests/corpus/gguf/%s", hostile_files[i].name);
        struct lm_buf want = {0}, have = {0};
        struct lm_err err;
        hostile_files[i].build(&want);
        if (lm_read_file(path, &have, &err) < 0) {
            test_fail(__FILE__, __LINE__, "%s (run make corpus)", err.msg);
        } else if (have.len != want.len || memcmp(have.data, want.data, want.len) != 0) {
            test_fail(__FILE__, __LINE__, "%s differs from what the builder makes (run make corpus)", path);
        }
        checked++;
        lm_buf_free(&want);
        lm_buf_free(&have);
    }
    EXPECT(checked > 60);
    return 0;
}

static const char *write_tmp(const char *suffix, const void *data, size_t n) {
    const char *path = test_tmp_path(suffix);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) test_fail(__FILE__, __LINE__, "cannot write %s", path);
    return path;
}

static const char *write_model(const char *name) {
    for (size_t i = 0; i < n_hostile_files; i++) {
        if (strcmp(hostile_files[i].name, name)) continue;
        struct lm_buf b = {0};
        hostile_files[i].build(&b);
        static char path[512];
        snprintf(path, sizeof path, "%s", write_tmp("", b.data, b.len));
        lm_buf_free(&b);
        return path;
    }
    LM_ASSERT(!"no such hostile file");
    return NULL;
}

/* A bad file through the program: exit 2 and one line naming the file and the flaw. */
TEST(hostile_cli_refuses_bad_files) {
    const char *names[] = {"bad-heads-divide", "bad-byte-token-zz", "bad-offset-wraps", "bad-embedding-rows"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char model[512], args[700];
        snprintf(model, sizeof model, "%s", write_model(names[i]));
        snprintf(args, sizeof args, "run -m '%s' -p hello -n 1", model);
        struct lm_buf out = {0}, err = {0};
        EXPECT_EQ_INT(test_run_lm(args, NULL, &out, &err), LM_EXIT_MODEL);
        EXPECT_EQ_INT(out.len, 0);
        EXPECT_CONTAINS(err.data, model);
        const char *nl = err.data ? strchr(err.data, '\n') : NULL;
        EXPECT(nl && nl[1] == '\0');
        lm_buf_free(&out);
        lm_buf_free(&err);
    }
    return 0;
}

/* Prompt bytes are tokenized as they are: NUL, invalid UTF-8 and all. The
 * tiny BPE vocabulary gives byte b the id b, and its merges need "he", "ll",
 * "wor", "ld", so each byte here is one token. */
TEST(hostile_prompt_bytes) {
    static const char prompt[] = {'a', 0, 'b', (char)0xFF, (char)0xC3, '(', 0, 0};
    char model[512], file[512], args[1200];
    snprintf(model, sizeof model, "%s", write_model("good-llama-bpe"));
    snprintf(file, sizeof file, "%s", write_tmp(".txt", prompt, sizeof prompt));
    struct lm_buf out = {0}, err = {0};
    snprintf(args, sizeof args, "tokenize -m '%s' --ids -f '%s'", model, file);
    EXPECT_EQ_INT(test_run_lm(args, NULL, &out, &err), 0);
    EXPECT_EQ_STR(out.data, "97 0 98 255 195 40 0 0\n");
    snprintf(args, sizeof args, "run -m '%s' -f '%s' -n 4 --temp 0 -q", model, file);
    EXPECT_EQ_INT(test_run_lm(args, NULL, &out, &err), 0);
    snprintf(args, sizeof args, "run -m '%s' -f '%s' -n 4 --temp 0 -q --jsonl", model, file);
    EXPECT_EQ_INT(test_run_lm(args, NULL, &out, &err), 0);
    EXPECT_CONTAINS(out.data, "\"prompt_tokens\":8"); /* no BOS: add_bos is off for this pre-tokenizer */
    lm_buf_free(&out);
    lm_buf_free(&err);
    return 0;
}

/* A prompt longer than the context is an error, or loses its start with --truncate. */
TEST(hostile_prompt_too_long) {
    char model[512], args[1200];
    snprintf(model, sizeof model, "%s", write_model("good-llama-bpe"));
    struct lm_buf out = {0}, err = {0};
    const char *long_prompt = "abcdefghijklmnopqrstuvwxyz"; /* 26 tokens */
    snprintf(args, sizeof args, "run -m '%s' -c 16 -n 2 --temp 0 -p %s", model, long_prompt);
    EXPECT_EQ_INT(test_run_lm(args, NULL, &out, &err), LM_EXIT_RUNTIME);
    EXPECT_CONTAINS(err.data, "the prompt (26 tokens) plus -n 2 does not fit in the context of 16 tokens");
    EXPECT_EQ_INT(out.len, 0);
    snprintf(args, sizeof args, "run -m '%s' -c 16 -n 2 --temp 0 --truncate --jsonl -p %s", model, long_prompt);
    EXPECT_EQ_INT(test_run_lm(args, NULL, &out, &err), 0);
    EXPECT_CONTAINS(err.data, "prompt truncated: dropped its first 12 tokens");
    EXPECT_CONTAINS(out.data, "\"prompt_tokens\":14");
    snprintf(args, sizeof args, "run -m '%s' -c 16 -n 16 -p a", model);
    EXPECT_EQ_INT(test_run_lm(args, NULL, &out, &err), LM_EXIT_RUNTIME);
    EXPECT_CONTAINS(err.data, "-n 16 does not fit in the context of 16 tokens");
    lm_buf_free(&out);
    lm_buf_free(&err);
    return 0;
}

/* The files of issue 10 (each consistent, but asking for far more memory
 * than its bytes justify) through the program: lm info reads them, lm run
 * refuses them with exit 2 and one line naming the file and the number. */
TEST(hostile_memory_refused) {
    static const struct {
        const char *name, *msg;
    } files[] = {
        {"bad-ffn-scratch", "n_ff 20000 x batch 512 needs"},
        {"bad-kv-cache", "a KV cache of 1 layers x 4096 positions x 4096 values needs"},
        {"bad-block-count", "block_count 4096 is more than the file's 11 tensors"},
        {"bad-merges-empty-strings", "merge 0 '' is not two tokens"},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char model[512], args[700];
        snprintf(model, sizeof model, "%s", write_model(files[i].name));
        struct lm_buf out = {0}, err = {0};
        snprintf(args, sizeof args, "info -m '%s'", model);
        EXPECT_EQ_INT(run_lm_limited(args, &out, &err), 0);
        snprintf(args, sizeof args, "run -m '%s' -p hi -n 1", model);
        EXPECT_EQ_INT(run_lm_limited(args, &out, &err), LM_EXIT_MODEL);
        EXPECT_EQ_INT(out.len, 0);
        EXPECT_CONTAINS(err.data, model);
        EXPECT_CONTAINS(err.data, files[i].msg);
        const char *nl = err.data ? strchr(err.data, '\n') : NULL;
        EXPECT(nl && nl[1] == '\0');
        lm_buf_free(&out);
        lm_buf_free(&err);
    }
    return 0;
}

/* A context larger than the machine (or the address-space limit) is exit 3
 * with the size it needed. 10^9 positions need hundreds of GiB of attention
 * scratch; 2 x 10^7 with one thread about 4.2 GiB, more than the 4 GB limit
 * of run_lm_limited, so that allocation itself fails (when there is no
 * limit, the machine's memory refuses it only if smaller). */
TEST(hostile_context_too_large) {
    char model[512], args[700];
    snprintf(model, sizeof model, "%s", write_model("good-llama-bpe"));
    struct lm_buf out = {0}, err = {0};
    snprintf(args, sizeof args, "run -m '%s' -c 1000000000 -p hi -n 1", model);
    EXPECT_EQ_INT(run_lm_limited(args, &out, &err), LM_EXIT_RUNTIME);
    EXPECT_CONTAINS(err.data, "a context of 1000000000 positions needs");
    EXPECT_CONTAINS(err.data, "try a smaller -c");
    EXPECT_EQ_INT(out.len, 0);
    const char *bin = getenv("LM_BIN");
    if (!bin || !*bin) {
        snprintf(args, sizeof args, "run -m '%s' -c 20000000 -t 1 -p hi -n 1", model);
        EXPECT_EQ_INT(run_lm_limited(args, &out, &err), LM_EXIT_RUNTIME);
        EXPECT_CONTAINS(err.data, "a context of 20000000 positions needs");
        if (lm_physical_memory() > ((uint64_t)5 << 30)) EXPECT_CONTAINS(err.data, "cannot allocate");
    }
    lm_buf_free(&out);
    lm_buf_free(&err);
    return 0;
}
