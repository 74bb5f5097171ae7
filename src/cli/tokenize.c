/* lm tokenize: how a model's vocabulary splits a text into tokens. */
#include "lm/cli.h"
#include "lm/gguf.h"
#include "lm/tokenizer.h"

#include <stdio.h>
#include <string.h>

static const char usage[] =
    "usage: lm tokenize [-m MODEL.gguf] [-p TEXT | -f FILE] [--ids | --count] [--bos] [--special]\n"
    "\n"
    "Tokenizes TEXT (or FILE, or standard input) with the model's vocabulary and\n"
    "shows the pieces joined by '|', then each token's id and text. Bytes that\n"
    "are not printable UTF-8 show as \\n, \\t, \\xNN.\n"
    "\n"
    "  -m, --model PATH  model or vocabulary file (default: $LM_MODEL, else models/default.gguf)\n"
    "  -p, --prompt TEXT the text to tokenize\n"
    "  -f, --file FILE   read the text from FILE ('-' is standard input)\n"
    "  --ids             print only the ids, separated by spaces, on one line\n"
    "  --count           print only the number of tokens\n"
    "  --bos             put the BOS token first (default: nothing is added)\n"
    "  --special         parse special tokens such as <|im_start|> in the text\n"
    "                    (default: they are plain text)\n";

struct options {
    const char *model, *prompt, *file;
    bool ids, count, bos, special;
};

/* Appends s[0..n) readably: valid UTF-8 as is, other bytes escaped. */
static void put_escaped(struct lm_buf *b, const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        uint32_t cp;
        size_t k = lm_utf8_decode(s + i, n - i, &cp);
        if (c == '\n') lm_buf_puts(b, "\\n");
        else if (c == '\t') lm_buf_puts(b, "\\t");
        else if (c == '\r') lm_buf_puts(b, "\\r");
        else if (c == '\\') lm_buf_puts(b, "\\\\");
        else if (c < 0x20 || c == 0x7F || cp >= LM_UNICODE_BAD) lm_buf_printf(b, "\\x%02X", c);
        else lm_buf_append(b, s + i, k);
        i += k;
    }
}

static int parse(int argc, char **argv, struct options *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 1;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!(o->model = lm_cli_value(argc, argv, &i))) return -1;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            if (!(o->prompt = lm_cli_value(argc, argv, &i))) return -1;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            if (!(o->file = lm_cli_value(argc, argv, &i))) return -1;
        } else if (!strcmp(a, "--ids")) {
            o->ids = true;
        } else if (!strcmp(a, "--count")) {
            o->count = true;
        } else if (!strcmp(a, "--bos")) {
            o->bos = true;
        } else if (!strcmp(a, "--special")) {
            o->special = true;
        } else {
            lm_cli_fail(LM_EXIT_USAGE, "tokenize: unknown argument '%s' (see lm tokenize --help)", a);
            return -1;
        }
    }
    if (o->prompt && o->file) {
        lm_cli_fail(LM_EXIT_USAGE, "tokenize: give -p or -f, not both");
        return -1;
    }
    if (o->ids && o->count) {
        lm_cli_fail(LM_EXIT_USAGE, "tokenize: give --ids or --count, not both");
        return -1;
    }
    return 0;
}

static void print_tokens(const struct lm_tokenizer *t, const struct lm_tokens *ids, const struct options *o,
                         struct lm_buf *out) {
    if (o->count) {
        lm_buf_printf(out, "%zu\n", ids->n);
        return;
    }
    if (o->ids) { /* by hand: printf would take more time than tokenizing */
        lm_buf_reserve(out, ids->n * 12 + 1);
        for (size_t i = 0; i < ids->n; i++) {
            char digits[12];
            int n = 0;
            for (uint32_t v = (uint32_t)ids->ids[i]; n == 0 || v; v /= 10) digits[n++] = (char)('0' + v % 10);
            if (i) out->data[out->len++] = ' ';
            while (n) out->data[out->len++] = digits[--n];
        }
        lm_buf_putc(out, '\n');
        return;
    }
    struct lm_buf piece = {0};
    for (size_t i = 0; i < ids->n; i++) {
        piece.len = 0;
        lm_tokenizer_decode_piece(t, ids->ids[i], &piece);
        if (i) lm_buf_putc(out, '|');
        put_escaped(out, piece.data, piece.len);
    }
    lm_buf_putc(out, '\n');
    for (size_t i = 0; i < ids->n; i++) {
        piece.len = 0;
        lm_tokenizer_decode_piece(t, ids->ids[i], &piece);
        lm_buf_printf(out, "%8d  '", ids->ids[i]);
        put_escaped(out, piece.data, piece.len);
        lm_buf_puts(out, "'\n");
    }
    lm_buf_free(&piece);
}

int cmd_tokenize(int argc, char **argv) {
    struct options o = {0};
    int r = parse(argc, argv, &o);
    if (r) return r > 0 ? LM_EXIT_OK : LM_EXIT_USAGE;
    if (lm_cli_flags_only) return LM_EXIT_OK;
    const char *path = lm_cli_model_path(o.model);
    if (!path) return LM_EXIT_MODEL;

    struct lm_err err = {{0}};
    struct lm_buf text = {0}, out = {0};
    struct lm_gguf g = {0};
    struct lm_tokenizer t = {0};
    struct lm_tokens ids = {0};
    int code = LM_EXIT_OK;
    if (o.prompt) {
        lm_buf_puts(&text, o.prompt);
    } else if (lm_read_file(o.file ? o.file : "-", &text, &err) < 0) {
        code = lm_cli_fail(LM_EXIT_USAGE, "%s", err.msg);
        goto done;
    }
    if (lm_gguf_open(&g, path, &err) < 0) { /* the message names the file */
        code = lm_cli_fail(LM_EXIT_MODEL, "%s", err.msg);
        goto done;
    }
    if (lm_tokenizer_load(&t, &g, &err) < 0) {
        code = lm_cli_fail(LM_EXIT_MODEL, "%s: %s", path, err.msg);
        goto done;
    }
    if (t.warning[0]) fprintf(stderr, "lm: warning: %s: %s\n", path, t.warning);
    if (lm_tokenizer_encode(&t, text.data ? text.data : "", text.len, o.bos, o.special, &ids, &err) < 0) {
        code = lm_cli_fail(LM_EXIT_RUNTIME, "%s", err.msg);
        goto done;
    }
    print_tokens(&t, &ids, &o, &out);
    if (fwrite(out.data, 1, out.len, stdout) != out.len || fflush(stdout) != 0)
        code = lm_cli_fail(LM_EXIT_RUNTIME, "cannot write the output");
done:
    lm_tokens_free(&ids);
    lm_tokenizer_free(&t);
    lm_gguf_close(&g);
    lm_buf_free(&text);
    lm_buf_free(&out);
    return code;
}
