/* Tokenizer tests: llama.cpp's tokenizer test vectors (../shared/vocab and
 * vocab-new), llama-tokenize's ids and end-of-generation tokens for
 * vocabularies derived from them (tests/data/tokenizer), the lm tokenize
 * command, special tokens, streaming decoding, hostile input, and
 * vocabularies that must be refused (built with the GGUF writer). */
#include "lm/tokenizer.h"

#include "test.h"

#include <dirent.h>
#include <stdlib.h>

/* ---- shared test vectors ------------------------------------------------ */

#define SEP "\n__ggml_vocab_test__\n"

struct vocab_case {
    const char *text;
    size_t len;
    struct lm_tokens ids;
};

/* Reads cases and their ids from inp_path/out_path (format in
 * ../shared/vocab/README.md; text after the last separator is one more
 * case, as llama.cpp's test-tokenizer-0 reads it). Returns the number of
 * cases, or -1. */
static int read_cases(const char *inp_path, const char *out_path, struct lm_buf *inp, struct vocab_case **cases) {
    struct lm_buf out = {0};
    struct lm_err err;
    if (lm_read_file(inp_path, inp, &err) < 0 || lm_read_file(out_path, &out, &err) < 0) {
        test_fail(__FILE__, __LINE__, "%s", err.msg);
        lm_buf_free(&out);
        return -1;
    }
    int n = 0;
    *cases = NULL;
    char *p = inp->data, *o = out.data;
    while (*p) {
        char *sep = strstr(p, SEP), *stop = sep ? sep : p + strlen(p);
        *cases = lm_xrealloc(*cases, (size_t)(n + 1) * sizeof **cases);
        struct vocab_case *c = &(*cases)[n++];
        *c = (struct vocab_case){p, (size_t)(stop - p), {0}};
        p = sep ? sep + strlen(SEP) : stop;
        char *eol = strchr(o, '\n');
        if (!eol) {
            test_fail(__FILE__, __LINE__, "%s: fewer lines than cases", out_path);
            break;
        }
        for (char *q = o; q < eol;) {
            char *end;
            long v = strtol(q, &end, 10);
            if (end == q) break;
            lm_tokens_push(&c->ids, (int32_t)v);
            q = end;
        }
        o = eol + 1;
    }
    /* Leftovers mean cases that would go unchecked. */
    if (o && *o) test_fail(__FILE__, __LINE__, "%s: more lines than cases", out_path);
    if (n == 0) test_fail(__FILE__, __LINE__, "%s: no cases", inp_path);
    lm_buf_free(&out);
    return n;
}

static void print_ids(const char *what, const struct lm_tokens *v) {
    fprintf(stderr, "    %s:", what);
    for (size_t i = 0; i < v->n; i++) fprintf(stderr, " %d", v->ids[i]);
    fputc('\n', stderr);
}

/* Encodes every case of inp_path with t (special tokens parsed when
 * special) and compares with out_path, failing the test on any difference;
 * when roundtrip, decoding must also give each input back. */
static void check_cases(const struct lm_tokenizer *t, const char *label, const char *inp_path, const char *out_path,
                        bool special, bool roundtrip) {
    struct lm_err err;
    struct lm_buf inp = {0};
    struct vocab_case *cases = NULL;
    int n = read_cases(inp_path, out_path, &inp, &cases), passed = 0;
    for (int i = 0; i < n; i++) {
        struct vocab_case *c = &cases[i];
        struct lm_tokens got = {0};
        struct lm_buf text = {0};
        EXPECT(lm_tokenizer_encode(t, c->text, c->len, false, special, &got, &err) == 0);
        bool same = got.n == c->ids.n && (got.n == 0 || memcmp(got.ids, c->ids.ids, got.n * sizeof *got.ids) == 0);
        lm_tokenizer_decode(t, got.ids, got.n, &text);
        bool back = !roundtrip || (text.len == c->len && (c->len == 0 || memcmp(text.data, c->text, c->len) == 0));
        if (same && back) {
            passed++;
        } else {
            test_fail(__FILE__, __LINE__, "%s case %d '%.*s': %s", label, i, (int)(c->len < 60 ? c->len : 60), c->text,
                      same ? "decoding does not give the input back" : "ids differ");
            if (!same) {
                print_ids("expected", &c->ids);
                print_ids("got     ", &got);
            }
        }
        lm_tokens_free(&got);
        lm_buf_free(&text);
    }
    if (test_verbose) fprintf(stderr, "  %s: %d/%d cases\n", label, passed, n);
    for (int i = 0; i < n; i++) lm_tokens_free(&cases[i].ids);
    free(cases);
    lm_buf_free(&inp);
}

/* Loads t from g, failing the test when it cannot or warns (an unknown
 * pre-tokenizer falls back to gpt-2's, which can pass by luck). */
static int load_checked(struct lm_tokenizer *t, const struct lm_gguf *g, const char *label) {
    struct lm_err err;
    if (lm_tokenizer_load(t, g, &err) < 0) {
        test_fail(__FILE__, __LINE__, "%s: vocabulary: %s", label, err.msg);
        return -1;
    }
    if (t->warning[0]) test_fail(__FILE__, __LINE__, "%s: %s", label, t->warning);
    return 0;
}

/* Checks one shared vocabulary (dir/NAME.gguf for NAME.gguf.inp); a missing
 * or unreadable one fails, since its cases would go unchecked. */
static void check_vocab(const char *dir, const char *inp_name) {
    char path[4096], inp_path[4096], out_path[4104];
    snprintf(path, sizeof path, "%s/%.*s", dir, (int)(strlen(inp_name) - 4), inp_name);
    snprintf(inp_path, sizeof inp_path, "%s/%s", dir, inp_name);
    snprintf(out_path, sizeof out_path, "%s.out", path);
    struct lm_gguf g = {0};
    struct lm_tokenizer t = {0};
    struct lm_err err;
    if (lm_gguf_open(&g, path, &err) < 0) test_fail(__FILE__, __LINE__, "%s: vocabulary: %s", inp_name, err.msg);
    else if (load_checked(&t, &g, inp_name) == 0) check_cases(&t, inp_name, inp_path, out_path, false, true);
    lm_tokenizer_free(&t);
    lm_gguf_close(&g);
}

static int by_strcmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Every NAME.gguf.inp in ../shared/NAME (vocab: the first ones; vocab-new:
 * gemma4's tokenizer and qwen35's pre-tokenizer), against NAME.gguf. */
static int check_shared_dir(const char *name) {
    const char *dir = test_shared_path(name);
    DIR *d = opendir(dir);
    if (!d) return test_skip("%s is absent", dir);
    static const char suffix[] = ".gguf.inp";
    const size_t n_suffix = sizeof suffix - 1;
    char **names = NULL;
    size_t n_names = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        if (n <= n_suffix || strcmp(e->d_name + n - n_suffix, suffix) != 0) continue;
        names = lm_xrealloc(names, (n_names + 1) * sizeof *names);
        names[n_names++] = lm_xstrdup(e->d_name);
    }
    closedir(d);
    if (n_names == 0) test_fail(__FILE__, __LINE__, "no *%s in %s", suffix, dir);
    if (n_names) qsort(names, n_names, sizeof *names, by_strcmp);
    for (size_t i = 0; i < n_names; i++) {
        check_vocab(dir, names[i]);
        free(names[i]);
    }
    free(names);
    return 0;
}

TEST(tokenizer_shared_vocab) {
    int rc = check_shared_dir("vocab");
    return rc ? rc : check_shared_dir("vocab-new");
}

/* ---- vocabularies derived from the shared ones -------------------------- */

/* Copies base into buf with the edits of a tests/data/tokenizer/variants.txt
 * line (pre=NAME, control=user, add=TEXT; scripts/gen-tokenizer-vectors.py
 * makes the same files with the gguf package). 0, or -1 with err set. */
static int derive_vocab(const struct lm_gguf *base, char **edits, int n_edits, struct lm_buf *buf, struct lm_err *err) {
    const char *pre = NULL, *added[32];
    int n_added = 0;
    bool control_user = false;
    for (int i = 0; i < n_edits; i++) {
        if (!strncmp(edits[i], "pre=", 4)) pre = edits[i] + 4;
        else if (!strcmp(edits[i], "control=user")) control_user = true;
        else if (!strncmp(edits[i], "add=", 4) && n_added < 32) added[n_added++] = edits[i] + 4;
        else return lm_errf(err, "unknown edit '%s'", edits[i]);
    }
    const struct lm_gguf_value *toks = lm_gguf_get(base, "tokenizer.ggml.tokens"),
                               *types = lm_gguf_get(base, "tokenizer.ggml.token_type"),
                               *scores = lm_gguf_get(base, "tokenizer.ggml.scores");
    if (!toks || !types) return lm_errf(err, "no tokens or token types to edit");
    uint64_t n = toks->arr.n, n_all = n + (uint64_t)n_added;
    struct lm_gguf_writer w;
    lm_gguf_writer_init(&w);
    for (uint64_t i = 0; i < base->n_kv; i++) {
        const struct lm_gguf_kv *kv = &base->kv[i];
        bool edited = (pre && lm_gguf_str_eq(kv->key, "tokenizer.ggml.pre")) ||
                      (n_added && (lm_gguf_str_eq(kv->key, "tokenizer.ggml.tokens") ||
                                   lm_gguf_str_eq(kv->key, "tokenizer.ggml.scores"))) ||
                      lm_gguf_str_eq(kv->key, "tokenizer.ggml.token_type");
        if (!edited) lm_gguf_write_value(&w, kv->key, &kv->value);
    }
    if (pre) lm_gguf_write_str(&w, "tokenizer.ggml.pre", pre);
    int32_t *type_v = lm_xmalloc(n_all * sizeof *type_v);
    for (uint64_t i = 0; i < n_all; i++) {
        int32_t ty = i < n ? (int32_t)lm_gguf_arr_int(types, i) : LM_TOKEN_USER_DEFINED;
        type_v[i] = control_user && ty == LM_TOKEN_CONTROL ? LM_TOKEN_USER_DEFINED : ty;
    }
    lm_gguf_write_arr(&w, "tokenizer.ggml.token_type", LM_GGUF_I32, type_v, n_all);
    free(type_v);
    if (n_added) {
        char **text = lm_xmalloc(n_all * sizeof *text);
        float *score_v = lm_xcalloc(n_all, sizeof *score_v);
        for (uint64_t i = 0; i < n_all; i++) {
            struct lm_gguf_str str = i < n ? lm_gguf_arr_str(toks, i) : (struct lm_gguf_str){strlen(added[i - n]), added[i - n]};
            text[i] = lm_xstrndup(str.data, str.len);
            if (scores && i < n) score_v[i] = (float)lm_gguf_arr_float(scores, i);
        }
        lm_gguf_write_arr_str(&w, "tokenizer.ggml.tokens", (const char *const *)text, n_all);
        if (scores) lm_gguf_write_arr(&w, "tokenizer.ggml.scores", LM_GGUF_F32, score_v, n_all);
        for (uint64_t i = 0; i < n_all; i++) free(text[i]);
        free(text);
        free(score_v);
    }
    lm_gguf_writer_finish(&w, buf);
    lm_gguf_writer_free(&w);
    return 0;
}

/* The tokens that end generation are those of NAME.eog (llama.cpp's). */
static void check_eog(const struct lm_tokenizer *t, const char *name) {
    char path[512];
    snprintf(path, sizeof path, "tests/data/tokenizer/%s.eog", name);
    struct lm_buf want = {0}, got = {0};
    struct lm_err err;
    if (lm_read_file(path, &want, &err) < 0) {
        test_fail(__FILE__, __LINE__, "%s", err.msg);
        return;
    }
    for (int32_t id = 0; id < t->n_vocab; id++)
        if (lm_tokenizer_is_eog(t, id)) lm_buf_printf(&got, " %d", id);
    lm_buf_putc(&got, '\n');
    if (strcmp(want.data, got.data) != 0)
        test_fail(__FILE__, __LINE__, "%s: end-of-generation tokens%s differ from llama.cpp's%s", name, got.data, want.data);
    lm_buf_free(&want);
    lm_buf_free(&got);
}

/* Each vocabulary of tests/data/tokenizer/variants.txt (default
 * pre-tokenizers, qwen35's marks, control tokens a file marks user-defined,
 * gpt-oss markup) against llama.cpp's ids for cases.inp, special tokens
 * parsed and not, and its end-of-generation tokens. */
TEST(tokenizer_derived_vocab) {
    struct lm_buf list = {0};
    struct lm_err err;
    if (lm_read_file("tests/data/tokenizer/variants.txt", &list, &err) < 0) {
        test_fail(__FILE__, __LINE__, "%s", err.msg);
        return 0;
    }
    int rc = 0, n_checked = 0;
    for (char *line = list.data, *next; line && *line && rc == 0; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        if (*line == '#' || !*line) continue;
        char *word[40];
        int n_words = 0;
        for (char *tok = strtok(line, " "); tok && n_words < 40; tok = strtok(NULL, " ")) word[n_words++] = tok;
        if (n_words < 2) continue;
        const char *path = test_shared_file(word[1], &rc);
        if (!path) break;
        struct lm_gguf base = {0}, g = {0};
        struct lm_tokenizer t = {0};
        struct lm_buf buf = {0};
        if (lm_gguf_open(&base, path, &err) < 0 ||
            (n_words > 2 && (derive_vocab(&base, word + 2, n_words - 2, &buf, &err) < 0 ||
                             lm_gguf_parse(&g, buf.data, buf.len, &err) < 0))) {
            test_fail(__FILE__, __LINE__, "%s: %s", word[0], err.msg);
        } else if (load_checked(&t, n_words > 2 ? &g : &base, word[0]) == 0) {
            char out_path[512], label[128];
            for (int special = 0; special < 2; special++) {
                snprintf(out_path, sizeof out_path, "tests/data/tokenizer/%s%s.out", word[0], special ? ".special" : "");
                snprintf(label, sizeof label, "%s%s", word[0], special ? " (special)" : "");
                check_cases(&t, label, "tests/data/tokenizer/cases.inp", out_path, special, false);
            }
            check_eog(&t, word[0]);
            n_checked++;
        }
        lm_tokenizer_free(&t);
        lm_gguf_close(&g);
        lm_gguf_close(&base);
        lm_buf_free(&buf);
    }
    if (rc == 0 && n_checked == 0) test_fail(__FILE__, __LINE__, "no vocabulary in variants.txt");
    lm_buf_free(&list);
    return rc;
}

/* The command line gives the same ids, one case per vocabulary checked. */
TEST(tokenizer_cli_ids) {
    int rc;
    const char *path = test_shared_file("vocab/ggml-vocab-llama-spm.gguf", &rc);
    if (!path) return rc;
    struct lm_buf out = {0}, err = {0};
    char args[4200];
    /* Expected ids: ggml-vocab-llama-spm.gguf.out, case "Hello world". */
    snprintf(args, sizeof args, "tokenize -m '%s' --ids -p 'Hello world'", path);
    EXPECT_EQ_INT(test_run_lm(args, NULL, &out, &err), 0);
    EXPECT_EQ_STR(out.data, "15043 3186\n");
    out.len = 0;
    snprintf(args, sizeof args, "tokenize -m '%s' --ids --bos", path);
    EXPECT_EQ_INT(test_run_lm(args, " Hello world", &out, &err), 0);
    EXPECT_EQ_STR(out.data, "1 29871 15043 3186\n");
    out.len = 0;
    snprintf(args, sizeof args, "tokenize -m '%s' --count -p 'Hello world'", path);
    EXPECT_EQ_INT(test_run_lm(args, NULL, &out, &err), 0);
    EXPECT_EQ_STR(out.data, "2\n");
    out.len = 0;
    snprintf(args, sizeof args, "tokenize -m '%s' -p 'Hello world'", path);
    EXPECT_EQ_INT(test_run_lm(args, NULL, &out, &err), 0);
    EXPECT_EQ_STR(out.data, " Hello| world\n   15043  ' Hello'\n    3186  ' world'\n");
    snprintf(args, sizeof args, "tokenize -m '%s' --ids --count -p x", path);
    EXPECT_EQ_INT(test_run_lm(args, NULL, NULL, NULL), LM_EXIT_USAGE);
    EXPECT_EQ_INT(test_run_lm("tokenize -m /nonexistent.gguf -p x", NULL, NULL, NULL), LM_EXIT_MODEL);
    lm_buf_free(&out);
    lm_buf_free(&err);
    return 0;
}

/* ---- tiny vocabularies built with the GGUF writer ----------------------- */

/* A byte-level vocabulary: ids 0..255 spell the bytes (GPT-2 alphabet, in
 * byte order), then merged words and special tokens. */
enum {
    ID_AB = 256,     /* "ab" = a + b, rank 0 */
    ID_ABC,          /* "abc" = ab + c, rank 1 */
    ID_SPACE_A,      /* "Ġa" = Ġ + a, rank 2 */
    ID_IM_END,       /* "<|im_end|>", control */
    ID_USER,         /* "<user>", user-defined */
    ID_EOT,          /* "<|endoftext|>", control, BOS */
    N_BPE,
};

/* Keys a test leaves out, to put a broken version in their place. */
enum {
    OMIT_TOKENS = 1,
    OMIT_TYPES = 2,
    OMIT_MERGES = 4,
    OMIT_BOS = 8,
    OMIT_MODEL = 16,
    OMIT_PRE = 32,
};

static char bpe_text[N_BPE][16];
static const char *bpe_tokens[N_BPE];
static int32_t bpe_types[N_BPE];

static void build_bpe(struct lm_gguf_writer *w, unsigned omit) {
    for (int b = 0; b < 256; b++) {
        uint32_t cp = lm_unicode_byte_to_cp((uint8_t)b);
        bpe_text[b][lm_utf8_encode(cp, bpe_text[b])] = 0;
    }
    const char *extra[] = {"ab", "abc", ("\xC4\xA0" "a"), "<|im_end|>", "<user>", "<|endoftext|>"};
    int32_t extra_types[] = {LM_TOKEN_NORMAL, LM_TOKEN_NORMAL, LM_TOKEN_NORMAL, LM_TOKEN_CONTROL, LM_TOKEN_USER_DEFINED,
                             LM_TOKEN_CONTROL};
    for (int i = 0; i < N_BPE; i++) {
        bpe_tokens[i] = i < 256 ? bpe_text[i] : extra[i - 256];
        bpe_types[i] = i < 256 ? LM_TOKEN_NORMAL : extra_types[i - 256];
    }
    static const char *const merges[] = {"a b", "ab c", "\xC4\xA0 a"};
    lm_gguf_writer_init(w);
    lm_gguf_write_str(w, "general.architecture", "llama");
    if (!(omit & OMIT_MODEL)) lm_gguf_write_str(w, "tokenizer.ggml.model", "gpt2");
    if (!(omit & OMIT_PRE)) lm_gguf_write_str(w, "tokenizer.ggml.pre", "gpt-2");
    if (!(omit & OMIT_TOKENS)) lm_gguf_write_arr_str(w, "tokenizer.ggml.tokens", bpe_tokens, N_BPE);
    if (!(omit & OMIT_TYPES)) lm_gguf_write_arr(w, "tokenizer.ggml.token_type", LM_GGUF_I32, bpe_types, N_BPE);
    if (!(omit & OMIT_MERGES)) lm_gguf_write_arr_str(w, "tokenizer.ggml.merges", merges, 3);
    if (!(omit & OMIT_BOS)) lm_gguf_write_u32(w, "tokenizer.ggml.bos_token_id", ID_EOT);
}

/* Finishes w, parses it into g (file bytes in buf) and loads t from it. */
static int load_built(struct lm_gguf_writer *w, struct lm_buf *buf, struct lm_gguf *g, struct lm_tokenizer *t,
                      struct lm_err *err) {
    lm_gguf_writer_finish(w, buf);
    lm_gguf_writer_free(w);
    if (lm_gguf_parse(g, buf->data, buf->len, err) < 0) return -2;
    return lm_tokenizer_load(t, g, err);
}

struct built {
    struct lm_buf buf;
    struct lm_gguf g;
    struct lm_tokenizer t;
};

static void built_free(struct built *b) {
    lm_tokenizer_free(&b->t);
    lm_gguf_close(&b->g);
    lm_buf_free(&b->buf);
}

/* Encodes text and compares with the expected ids (-1 ends the list). */
static void expect_ids(const struct lm_tokenizer *t, const char *text, size_t len, bool bos, bool special,
                       const int32_t *want, int line) {
    struct lm_tokens got = {0};
    struct lm_err err = {{0}};
    if (lm_tokenizer_encode(t, text, len, bos, special, &got, &err) < 0) {
        test_fail(__FILE__, line, "encode failed: %s", err.msg);
        return;
    }
    size_t n = 0;
    while (want[n] >= 0) n++;
    if (got.n != n || (n && memcmp(got.ids, want, n * sizeof *want) != 0)) {
        test_fail(__FILE__, line, "ids for '%.*s' differ", (int)len, text);
        print_ids("got", &got);
    }
    lm_tokens_free(&got);
}

#define EXPECT_IDS(t, text, bos, special, ...)                                                    \
    do {                                                                                          \
        static const int32_t want_[] = {__VA_ARGS__, -1};                                        \
        expect_ids(t, text, sizeof text - 1, bos, special, want_, __LINE__);                     \
    } while (0)

TEST(tokenizer_bpe_merges_and_specials) {
    struct built b = {0};
    struct lm_gguf_writer w;
    struct lm_err err = {{0}};
    build_bpe(&w, 0);
    if (load_built(&w, &b.buf, &b.g, &b.t, &err) != 0) {
        test_fail(__FILE__, __LINE__, "load: %s", err.msg);
        built_free(&b);
        return 0;
    }
    struct lm_tokenizer *t = &b.t;
    EXPECT_EQ_INT(t->n_vocab, N_BPE);
    EXPECT_EQ_INT(t->bos, ID_EOT);
    EXPECT_EQ_STR(t->warning, "");
    /* Lowest rank first: a+b, then ab+c; the second "ab" merges too. */
    EXPECT_IDS(t, "abc", false, false, ID_ABC);
    EXPECT_IDS(t, "abcab", false, false, ID_ABC, ID_AB);
    EXPECT_IDS(t, "cab a", false, false, 'c', ID_AB, ID_SPACE_A);
    EXPECT_IDS(t, "", false, false, -1);
    EXPECT_IDS(t, "", true, false, ID_EOT);
    /* Control tokens are text unless asked for; user-defined ones always match. */
    EXPECT_IDS(t, "x<|im_end|>y", false, false, 'x', '<', '|', 'i', 'm', '_', 'e', 'n', 'd', '|', '>', 'y');
    EXPECT_IDS(t, "x<|im_end|>y", false, true, 'x', ID_IM_END, 'y');
    EXPECT_IDS(t, "ab<user>ab", false, false, ID_AB, ID_USER, ID_AB);
    EXPECT_IDS(t, "<|im_end|><|im_end|>", true, true, ID_EOT, ID_IM_END, ID_IM_END);
    /* Invalid UTF-8 and NUL are bytes like any other. */
    EXPECT_IDS(t, "\xFF\x00" "ab\xC3", false, false, 0xFF, 0x00, ID_AB, 0xC3);

    EXPECT(lm_tokenizer_is_eog(t, ID_IM_END) && lm_tokenizer_is_eog(t, ID_EOT) && !lm_tokenizer_is_eog(t, ID_USER));
    EXPECT(lm_tokenizer_is_special(t, ID_IM_END) && !lm_tokenizer_is_special(t, ID_USER) && !lm_tokenizer_is_special(t, 'a'));
    EXPECT(!lm_tokenizer_is_eog(t, -1) && !lm_tokenizer_is_eog(t, N_BPE) && !lm_tokenizer_is_special(t, N_BPE));
    EXPECT_EQ_INT(t->eot, ID_IM_END);
    EXPECT_EQ_INT(lm_tokenizer_find(t, "<|im_end|>", 10), ID_IM_END);
    EXPECT_EQ_INT(lm_tokenizer_find(t, "abd", 3), -1);
    size_t len;
    const char *s = lm_tokenizer_token_text(t, ID_SPACE_A, &len);
    EXPECT(len == 3 && memcmp(s, "\xC4\xA0" "a", 3) == 0);

    /* Pieces: the byte alphabet decoded; markup as written; bad ids empty. */
    struct lm_buf out = {0};
    lm_tokenizer_decode_piece(t, ID_SPACE_A, &out);
    lm_tokenizer_decode_piece(t, '\n', &out);
    lm_tokenizer_decode_piece(t, ID_IM_END, &out);
    lm_tokenizer_decode_piece(t, -5, &out);
    lm_tokenizer_decode_piece(t, N_BPE + 7, &out);
    EXPECT_EQ_STR(out.data, " a\n<|im_end|>");
    lm_buf_free(&out);
    built_free(&b);
    return 0;
}

TEST(tokenizer_streaming_decoder) {
    struct built b = {0};
    struct lm_gguf_writer w;
    struct lm_err err = {{0}};
    build_bpe(&w, 0);
    if (load_built(&w, &b.buf, &b.g, &b.t, &err) != 0) {
        test_fail(__FILE__, __LINE__, "load: %s", err.msg);
        built_free(&b);
        return 0;
    }
    /* "é€😀" one byte token at a time: output only grows by whole characters. */
    const char text[] = "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80";
    const size_t after[] = {0, 2, 2, 2, 5, 5, 5, 5, 9};
    struct lm_detok d;
    struct lm_buf out = {0};
    lm_detok_init(&d, &b.t, false);
    for (size_t i = 0; i < sizeof text - 1; i++) {
        lm_detok_feed(&d, (uint8_t)text[i], &out);
        EXPECT_EQ_INT(out.len, after[i]);
        if (i == 4) lm_detok_feed(&d, ID_IM_END, &out); /* control: skipped */
    }
    lm_detok_flush(&d, &out);
    EXPECT_EQ_STR(out.data, text);
    /* A character cut short: held back, then given as is at the end. */
    out.len = 0;
    lm_detok_init(&d, &b.t, true);
    lm_detok_feed(&d, 'a', &out);
    lm_detok_feed(&d, 0xE2, &out);
    lm_detok_feed(&d, 0x82, &out);
    EXPECT_EQ_STR(out.data, "a");
    lm_detok_feed(&d, ID_IM_END, &out); /* shown when asked for; invalidates the pending bytes */
    EXPECT_EQ_STR(out.data, "a\xE2\x82<|im_end|>");
    lm_detok_feed(&d, 0xF0, &out);
    lm_detok_flush(&d, &out);
    EXPECT_EQ_STR(out.data, "a\xE2\x82<|im_end|>\xF0");
    lm_buf_free(&out);
    built_free(&b);
    return 0;
}

/* Every malformed vocabulary is refused with a message saying why. */
TEST(tokenizer_refuses_bad_vocab) {
    struct lm_err err;
    struct built b;
    struct lm_gguf_writer w;
#define EXPECT_REFUSED(omit, extra, want)                                                   \
    do {                                                                                 \
        b = (struct built){0};                                                           \
        err = (struct lm_err){{0}};                                                      \
        build_bpe(&w, omit);                                                             \
        extra;                                                                           \
        EXPECT_EQ_INT(load_built(&w, &b.buf, &b.g, &b.t, &err), -1);                     \
        EXPECT_CONTAINS(err.msg, want);                                                  \
        built_free(&b);                                                                  \
    } while (0)

    uint8_t u8s[N_BPE] = {0};
    float scores[N_BPE] = {0};
    EXPECT_REFUSED(0, lm_gguf_write_arr(&w, "tokenizer.ggml.scores", LM_GGUF_U8, u8s, N_BPE),
                   "tokenizer.ggml.scores: expected an array of f32, found an array of u8");
    EXPECT_REFUSED(0, lm_gguf_write_arr(&w, "tokenizer.ggml.scores", LM_GGUF_F32, scores, N_BPE - 1),
                   "tokenizer.ggml.scores has 261 entries but there are 262 tokens");
    int32_t types_long[N_BPE + 1] = {0};
    EXPECT_REFUSED(OMIT_TYPES, lm_gguf_write_arr(&w, "tokenizer.ggml.token_type", LM_GGUF_I32, types_long, N_BPE + 1),
                   "tokenizer.ggml.token_type has 263 entries");
    EXPECT_REFUSED(OMIT_TYPES, lm_gguf_write_arr(&w, "tokenizer.ggml.token_type", LM_GGUF_F32, scores, N_BPE),
                   "expected an array of i32");
    EXPECT_REFUSED(OMIT_TOKENS, lm_gguf_write_arr(&w, "tokenizer.ggml.tokens", LM_GGUF_I32, bpe_types, N_BPE),
                   "tokenizer.ggml.tokens");
    EXPECT_REFUSED(OMIT_TOKENS | OMIT_TYPES | OMIT_MERGES | OMIT_BOS,
                   lm_gguf_write_arr_str(&w, "tokenizer.ggml.tokens", bpe_tokens, 0), "is empty");
    EXPECT_REFUSED(OMIT_TOKENS, , "no vocabulary");
    EXPECT_REFUSED(OMIT_BOS, lm_gguf_write_u32(&w, "tokenizer.ggml.bos_token_id", N_BPE),
                   "bos_token_id = 262 is outside the vocabulary");
    EXPECT_REFUSED(0, lm_gguf_write_i32(&w, "tokenizer.ggml.eos_token_id", -1), "eos_token_id = -1 is outside");
    EXPECT_REFUSED(0, lm_gguf_write_u32(&w, "tokenizer.ggml.unknown_token_id", 100000), "unknown_token_id = 100000");
    EXPECT_REFUSED(0, lm_gguf_write_str(&w, "tokenizer.ggml.eos_token_id", "2"), "eos_token_id");
    EXPECT_REFUSED(OMIT_MERGES, lm_gguf_write_arr_str(&w, "tokenizer.ggml.merges", (const char *[]){"a zz"}, 1),
                   "merge 0 'a zz' names a token that is not in the vocabulary");
    EXPECT_REFUSED(OMIT_MERGES, lm_gguf_write_arr_str(&w, "tokenizer.ggml.merges", (const char *[]){"b c"}, 1),
                   "merge 0 'b c' makes a token that is not in the vocabulary");
    EXPECT_REFUSED(OMIT_MERGES, lm_gguf_write_arr_str(&w, "tokenizer.ggml.merges", (const char *[]){"a b", "abc"}, 2),
                   "merge 1 'abc' is not two tokens");
    EXPECT_REFUSED(OMIT_MERGES, , "no merges");
    EXPECT_REFUSED(OMIT_MODEL, , "no tokenizer.ggml.model");
    EXPECT_REFUSED(OMIT_MODEL, lm_gguf_write_str(&w, "tokenizer.ggml.model", "bert"), "unsupported tokenizer model 'bert'");
    EXPECT_REFUSED(0, lm_gguf_write_u32(&w, "tokenizer.ggml.add_bos_token", 1), "add_bos_token");

    /* Byte tokens must say which byte they are. */
    const char *bad_bytes[] = {"<0x-1>", "<0xZZ>", "<0x4>", "<0x041>"};
    for (size_t i = 0; i < sizeof bad_bytes / sizeof bad_bytes[0]; i++) {
        const char *toks[] = {"<unk>", "a", bad_bytes[i]};
        int32_t types[] = {LM_TOKEN_UNKNOWN, LM_TOKEN_NORMAL, LM_TOKEN_BYTE};
        b = (struct built){0};
        lm_gguf_writer_init(&w);
        lm_gguf_write_str(&w, "tokenizer.ggml.model", "llama");
        lm_gguf_write_arr_str(&w, "tokenizer.ggml.tokens", toks, 3);
        lm_gguf_write_arr(&w, "tokenizer.ggml.token_type", LM_GGUF_I32, types, 3);
        EXPECT_EQ_INT(load_built(&w, &b.buf, &b.g, &b.t, &err), -1);
        EXPECT_CONTAINS(err.msg, "is not of the form <0xNN>");
        EXPECT_CONTAINS(err.msg, bad_bytes[i]);
        built_free(&b);
    }
    /* Two tokens with one text. */
    {
        const char *toks[] = {"a", "b", "a"};
        b = (struct built){0};
        lm_gguf_writer_init(&w);
        lm_gguf_write_str(&w, "tokenizer.ggml.model", "llama");
        lm_gguf_write_arr_str(&w, "tokenizer.ggml.tokens", toks, 3);
        EXPECT_EQ_INT(load_built(&w, &b.buf, &b.g, &b.t, &err), -1);
        EXPECT_CONTAINS(err.msg, "tokens 0 and 2 are both 'a'");
        built_free(&b);
    }
    /* An unknown pre-tokenizer is a warning, and gpt-2's is used. */
    b = (struct built){0};
    build_bpe(&w, OMIT_PRE);
    lm_gguf_write_str(&w, "tokenizer.ggml.pre", "martian");
    EXPECT_EQ_INT(load_built(&w, &b.buf, &b.g, &b.t, &err), 0);
    EXPECT_CONTAINS(b.t.warning, "unknown pre-tokenizer 'martian'");
    EXPECT_EQ_INT(b.t.pre, LM_PRETOK_GPT2);
    built_free(&b);
    /* A missing one is llama.cpp's default, silently. */
    b = (struct built){0};
    build_bpe(&w, OMIT_PRE);
    EXPECT_EQ_INT(load_built(&w, &b.buf, &b.g, &b.t, &err), 0);
    EXPECT_EQ_STR(b.t.warning, "");
    EXPECT_EQ_INT(b.t.pre, LM_PRETOK_DEFAULT);
    built_free(&b);
    /* Freeing twice, or a zeroed tokenizer, is harmless. */
    lm_tokenizer_free(&b.t);
    return 0;
#undef EXPECT_REFUSED
}

/* SentencePiece: scores decide the order of merges, unknown characters are
 * spelled in byte tokens, and a space is put in front. The second time the
 * vocabulary also holds long tokens with every pair of 1025 characters side
 * by side, more pairs than the join set keeps: without it encoding gives
 * the same ids. */
TEST(tokenizer_spm) {
    enum { UNK, BOS, EOS, BYTE0, SPACE = BYTE0 + 256, A, B, AB, SPACE_A, N_SPM };
    enum { K = 1025 }; /* K * K > LM_TOK_MAX_JOINS */
    _Static_assert((uint64_t)K * K > LM_TOK_MAX_JOINS, "enough pairs");
    static char byte_text[256][8];
    static const char *toks[N_SPM + K];
    static int32_t types[N_SPM + K];
    static float scores[N_SPM + K];
    toks[UNK] = "<unk>", toks[BOS] = "<s>", toks[EOS] = "</s>";
    types[UNK] = LM_TOKEN_UNKNOWN, types[BOS] = types[EOS] = LM_TOKEN_CONTROL;
    for (int i = 0; i < 256; i++) {
        snprintf(byte_text[i], sizeof byte_text[i], "<0x%02X>", i);
        toks[BYTE0 + i] = byte_text[i];
        types[BYTE0 + i] = LM_TOKEN_BYTE;
    }
    toks[SPACE] = "\xE2\x96\x81", toks[A] = "a", toks[B] = "b", toks[AB] = "ab", toks[SPACE_A] = "\xE2\x96\x81" "a";
    for (int i = SPACE; i < N_SPM + K; i++) types[i] = LM_TOKEN_NORMAL;
    scores[AB] = -2.0f, scores[SPACE_A] = -1.0f; /* ▁a before ab */
    struct lm_buf wide[K] = {{0}}; /* token a: a c0 a c1 ... a c(K-1), characters from U+0100 */
    for (int a = 0; a < K; a++) {
        for (int c = 0; c < K; c++) {
            char u[8];
            lm_buf_append(&wide[a], u, lm_utf8_encode(0x100u + (uint32_t)a, u));
            lm_buf_append(&wide[a], u, lm_utf8_encode(0x100u + (uint32_t)c, u));
        }
        toks[N_SPM + a] = wide[a].data;
    }

    for (int with_wide = 0; with_wide < 2; with_wide++) {
        int n = N_SPM + (with_wide ? K : 0);
        struct built b = {0};
        struct lm_gguf_writer w;
        struct lm_err err = {{0}};
        lm_gguf_writer_init(&w);
        lm_gguf_write_str(&w, "tokenizer.ggml.model", "llama");
        lm_gguf_write_arr_str(&w, "tokenizer.ggml.tokens", toks, (uint64_t)n);
        lm_gguf_write_arr(&w, "tokenizer.ggml.token_type", LM_GGUF_I32, types, (uint64_t)n);
        lm_gguf_write_arr(&w, "tokenizer.ggml.scores", LM_GGUF_F32, scores, (uint64_t)n);
        if (load_built(&w, &b.buf, &b.g, &b.t, &err) != 0) {
            test_fail(__FILE__, __LINE__, "load: %s", err.msg);
            built_free(&b);
            continue;
        }
        struct lm_tokenizer *t = &b.t;
        EXPECT(t->type == LM_VOCAB_SPM && t->add_bos && t->add_space_prefix && t->bos == BOS && t->eos == EOS && t->unk == UNK);
        EXPECT(with_wide ? !t->joins : t->joins && t->joins_mask < 1024);
        EXPECT_IDS(t, "ab", false, false, SPACE_A, B);
        EXPECT_IDS(t, "b a", true, false, BOS, SPACE, B, SPACE_A);
        EXPECT_IDS(t, "\xC3\xA9", false, false, SPACE, BYTE0 + 0xC3, BYTE0 + 0xA9);
        EXPECT_IDS(t, "<s>a", false, false, SPACE, BYTE0 + '<', BYTE0 + 's', BYTE0 + '>', A);
        EXPECT_IDS(t, "<s>a", false, true, BOS, SPACE_A);
        struct lm_buf out = {0};
        const int32_t ids[] = {SPACE, BYTE0 + 0xC3, BYTE0 + 0xA9, SPACE_A};
        lm_tokenizer_decode(t, ids, 4, &out);
        EXPECT_EQ_STR(out.data, "\xC3\xA9 a");
        lm_buf_free(&out);
        built_free(&b);
    }
    for (int a = 0; a < K; a++) lm_buf_free(&wide[a]);
    return 0;
}

/* Random bytes (invalid UTF-8, NULs, lone spaces) tokenize and decode back
 * with vocabularies that can spell every byte (gpt-2's, SPM and gemma4 byte
 * fallback).
 * Many cannot: falcon, starcoder, SmolLM lack tokens for some control bytes
 * and for bytes never found in UTF-8, which are then dropped as llama.cpp
 * does; deepseek's make those tokens user-defined, so they decode as the
 * characters. There only the ids are checked. */
TEST(tokenizer_hostile_roundtrip) {
    const char *names[] = {"vocab/ggml-vocab-gpt-2.gguf", "vocab/ggml-vocab-llama-spm.gguf", "vocab-new/ggml-vocab-gemma-4.gguf",
                           "vocab/ggml-vocab-falcon.gguf", "vocab/ggml-vocab-deepseek-llm.gguf"};
    for (size_t v = 0; v < sizeof names / sizeof names[0]; v++) {
        int rc;
        const char *path = test_shared_file(names[v], &rc);
        if (!path && rc == LM_TEST_SKIP) return rc;
        if (!path) continue;
        struct lm_gguf g = {0};
        struct lm_tokenizer t = {0};
        struct lm_err err;
        if (lm_gguf_open(&g, path, &err) < 0 || lm_tokenizer_load(&t, &g, &err) < 0) {
            test_fail(__FILE__, __LINE__, "%s", err.msg);
            lm_gguf_close(&g);
            continue;
        }
        bool every_byte = true;
        for (int b = 0; b < 256; b++)
            if (t.byte_id[b] < 0 || t.tokens[t.byte_id[b]].type == LM_TOKEN_USER_DEFINED) every_byte = false;
        EXPECT(every_byte == (v < 3));
        uint32_t seed = 12345;
        for (int round = 0; round < 200; round++) {
            char text[64];
            size_t n = (size_t)(round % 64);
            for (size_t i = 0; i < n; i++) {
                seed = seed * 1103515245u + 12345u;
                uint32_t r = seed >> 16;
                /* mostly bytes that break UTF-8, some spaces and letters */
                text[i] = r % 4 == 0 ? ' ' : r % 4 == 1 ? (char)('a' + r % 26) : (char)(r >> 3);
            }
            struct lm_tokens ids = {0};
            struct lm_buf back = {0};
            EXPECT(lm_tokenizer_encode(&t, text, n, false, false, &ids, &err) == 0);
            lm_tokenizer_decode(&t, ids.ids, ids.n, &back);
            for (size_t i = 0; i < ids.n; i++) EXPECT(ids.ids[i] >= 0 && ids.ids[i] < t.n_vocab);
            if (every_byte && (back.len != n || (n && memcmp(back.data, text, n) != 0)))
                test_fail(__FILE__, __LINE__, "%s: round %d does not decode back", names[v], round);
            lm_tokens_free(&ids);
            lm_buf_free(&back);
        }
        lm_tokenizer_free(&t);
        lm_gguf_close(&g);
    }
    return 0;
}
