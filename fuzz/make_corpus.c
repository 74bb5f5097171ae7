/* make-corpus DIR: writes the fuzzers' seed corpus (make corpus writes it to
 * tests/corpus, where it is committed):
 *   DIR/gguf/       every file of tests/hostile_files.c: tiny models that
 *                   load and run, and one per class of malformed file
 *   DIR/tokenizer/  texts (first byte: which vocabulary)
 *   DIR/cli/        command lines (first byte: which command; NUL between
 *                   arguments)
 *   DIR/http/       HTTP requests, good and malformed, with JSON bodies
 *   DIR/template/   the conversations of tests/data/conversations for the
 *                   real templates (first byte: which one), and small
 *                   templates of our own after a 0x80 byte
 * The layout of each input is described in the harness, fuzz/fuzz_NAME.c. */
#include "../tests/hostile_files.h"
#include "fuzz.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *root;

static void write_seed(const char *dir, const char *name, const void *data, size_t n) {
    struct lm_buf path = {0};
    lm_buf_printf(&path, "%s/%s", root, dir);
    if (mkdir(path.data, 0755) < 0 && errno != EEXIST) {
        perror(path.data);
        exit(1);
    }
    lm_buf_printf(&path, "/%s", name);
    FILE *f = fopen(path.data, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) {
        perror(path.data);
        exit(1);
    }
    lm_buf_free(&path);
}

/* A seed made of a selector byte and text[0..n). */
static void write_selected(const char *dir, const char *name, uint8_t selector, const char *text, size_t n) {
    struct lm_buf b = {0};
    lm_buf_putc(&b, (char)selector);
    lm_buf_append(&b, text, n);
    write_seed(dir, name, b.data, b.len);
    lm_buf_free(&b);
}

#define TEXT(s) {s, sizeof s - 1}

static const struct {
    const char *text;
    size_t len;
} texts[] = {
    TEXT("Hello world"),
    TEXT(" Hello World!  How are you?\n\nI'm fine, thanks. 3.14159 + 2,000,000 = ?"),
    TEXT("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"),
    TEXT("<s>[INST] <<SYS>>x<</SYS>> y [/INST]</s><unk><|endoftext|><|eot_id|>"),
    TEXT("\xE2\x96\x81\xE2\x96\x81 \xE2\x96\x81x <0x0A> <0xZZ>"),
    TEXT("h\xC3\xA9llo w\xC3\xB6rld \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \xF0\x9F\x8E\x89 \xD0\x9F\xD1\x80\xD0\xB8"),
    TEXT("invalid \xFF\xFE \xC3( \xE2\x82 \xF0\x9F\x8E \xED\xA0\x80 \xC0\xAF \xF8\x88\x80\x80\x80"),
    TEXT("nul\0in\0the\0middle\0"),
    TEXT("\t\t  \r\n\r\n   \v\f \xC2\xA0\xE3\x80\x80 end"),
    TEXT("int main(void) { return printf(\"%d\\n\", 42) ? 0 : 1; } // don't"),
    TEXT("1234567890 12345 1 22 333 4444 55555 666666"),
    TEXT("I'M YOU'RE she's we'll they'd it's 's 't 're 've 'm 'll 'd"),
    TEXT("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
    TEXT("          "),
    TEXT(""),
};

static const char *const command_lines[][16] = {
    {"run", "-p", "Hello", "-n", "8", "--temp", "0"},
    {"run", "-m", "x.gguf", "-f", "-", "-c", "128", "-b", "32", "-t", "2", "--truncate"},
    {"run", "--stop", "\n", "--stop", "User:", "--jsonl", "--echo", "--special", "-q"},
    {"run", "--top-k", "40", "--top-p", "0.95", "--min-p", "0.05", "--repeat-penalty", "1.1", "--repeat-last-n", "64"},
    {"run", "-s", "-1", "--seed", "18446744073709551615", "--temp", "1e308", "-n", "-2"},
    {"run", "--dump-logits", "out.bin", "-p", "", "--stop", ""},
    {"run", "--help"},
    {"info", "-m", "model.gguf", "--tensors", "--json"},
    {"info", "--bogus"},
    {"bench", "-p", "512", "-n", "128", "-r", "5", "-t", "4", "-b", "512", "-o", "json"},
    {"bench", "-o", "csv", "-r", "0"},
    {"tokenize", "-p", "Hello world", "--ids", "--bos", "--special"},
    {"tokenize", "-f", "file.txt", "--count", "--ids"},
    {"template", "--messages", "m.json", "--template-file", "t.jinja", "--no-generation-prompt", "--date", "2025-02-30"},
    {"template", "-m", "x.gguf", "--bos-token", "<s>", "--eos-token", "</s>", "--messages", "-"},
    {"template", "--date", "20250101", "--messages"},
    {"chat", "-sys", "Be brief.", "-n", "64", "--temp", "0.7", "--show-thinking", "--json", "-q", "-c", "2048"},
    {"chat", "--messages", "m.json", "--template", "chatml", "--show-prompt", "--system-file", "s.txt"},
    {"chat", "--template", "nonesuch", "--template-file", "t.jinja", "-t", "0"},
    {"bench", "-m", "a.gguf,b.gguf", "-p", "16,64", "-n", "4", "-pg", "8,2", "-d", "0-32+16", "-t", "1-4*2", "-o", "jsonl"},
    {"bench", "-b", "1-", "-t", "4-2", "-pg", "1,2,3", "--progress", "--no-warmup", "-o", "md"},
    {"quantize", "in.gguf", "out.gguf", "q4_k_m", "--threads", "2", "--force", "--leave-output-tensor", "--pure"},
    {"quantize", "in.gguf", "out.gguf", "Q9_9", "-t", "0", "extra"},
    {"perplexity", "-m", "x.gguf", "-f", "t.txt", "-c", "512", "-b", "128", "--chunks", "4", "-t", "2", "-o", "json"},
    {"perplexity", "--kl-divergence-base", "b.logits", "--kl-divergence", "-c", "3", "-o", "md"},
    {"serve", "--host", "::1", "--port", "0", "-np", "8", "-c", "2048", "--api-key", "k", "--max-body", "100", "--timeout", "5"},
    {"serve", "--port", "65536", "-np", "0", "--queue", "-1", "--api-key", ""},
};
static const char *const command_names[] = {"run", "info", "bench", "tokenize", "template", "chat", "quantize",
                                            "perplexity", "serve"}; /* fuzz_cli.c's order */

/* Templates of our own, each using a few features of the language. */
static const char *const inline_templates[] = {
    "{% for m in messages %}<|{{ m.role }}|>{{ m.content | trim }}{% if not loop.last %}\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}",
    "{{ bos_token }}{% set ns = namespace(sys='') %}{% for m in messages %}{% if m.role == 'system' %}"
    "{% set ns.sys = m.content %}{% else %}[{{ m.role | upper }}] {{ ns.sys ~ m.content }}{{ eos_token }}{% endif %}"
    "{% endfor %}",
    "{% macro render(m, i) -%}{{ i }}:{{ m['role'] }}={{ m.content | tojson }}{%- endmacro %}"
    "{% for m in messages | selectattr('role', 'equalto', 'user') %}{{ render(m, loop.index0) }}{% endfor %}"
    "{{ messages | length }} {{ (messages | map(attribute='role') | list)[1:] | join(',') }}",
    "{%- if messages[0].role != 'system' -%}{{ raise_exception('no system message') }}{%- endif -%}"
    "{% for m in messages[::-1] %}{{ m.content[:5] }}|{% else %}empty{% endfor %}",
    "{% set d = {'a': [1, 2.5, none, true], 'b': 'x' * 3} %}{{ d | tojson }} {{ d.items() | list }} "
    "{{ 7 // 2 }} {{ 7 % 3 }} {{ 2 ** 10 }} {{ '%s-%d' % ('a', 3) }} {{ 'A b C' | lower | title }} "
    "{{ range(5) | sum }} {{ [3, 1, 2] | sort | first }} {{ strftime_now('%Y-%m-%d') }}",
    "{% raw %}{{ not a tag }}{% endraw %}{# comment #}{%- for m in messages if m.content -%}"
    "{{ m.content | replace('\\n', ' ') | wordcount }}{% break %}{% endfor %}{{ tools | default('no tools') }}",
    "{{ messages | reject | list | length }} {{ messages | select | list | length }}", /* a fuzz_template finding */
};

static const char *const http_requests[] = {
    "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 95\r\n\r\n"
    "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"stream\":true,\"max_tokens\":8,\"stop\":[\"\\n\"]}",
    "POST /v1/completions HTTP/1.0\nContent-Length: 40\nConnection: keep-alive\n\n{\"prompt\":[1,2,3],\"temperature\":0.5e0}\n",
    "POST /tokenize HTTP/1.1\r\nAuthorization: Bearer k\r\nContent-Length: 31\r\n\r\n{\"content\":\"h\\u00e9\\ud83d\\ude00\"}GET / HTTP/1.1\r\n\r\n",
    "POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    "GET / HTTP/1.1\r\nA: x\r\n folded\r\n\r\n",
    "GET /v1/models HTTP/2.0\r\n\r\n",
    "POST /detokenize HTTP/1.1\r\nContent-Length: 30\r\n\r\n[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]",
};

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make-corpus DIR\n");
        return 1;
    }
    root = argv[1];
    mkdir(root, 0755);
    for (size_t i = 0; i < n_hostile_files; i++) {
        struct lm_buf b = {0};
        hostile_files[i].build(&b);
        write_seed("gguf", hostile_files[i].name, b.data, b.len);
        lm_buf_free(&b);
    }

    char name[64];
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        snprintf(name, sizeof name, "text-%02zu", i);
        write_selected("tokenizer", name, (uint8_t)i, texts[i].text, texts[i].len);
    }

    for (size_t i = 0; i < sizeof command_lines / sizeof command_lines[0]; i++) {
        struct lm_buf b = {0};
        uint8_t cmd = 0;
        while (strcmp(command_names[cmd], command_lines[i][0])) cmd++;
        lm_buf_putc(&b, (char)cmd);
        for (size_t k = 1; k < 16 && command_lines[i][k]; k++) {
            if (k > 1) lm_buf_putc(&b, 0);
            lm_buf_puts(&b, command_lines[i][k]);
        }
        snprintf(name, sizeof name, "%s-%02zu", command_lines[i][0], i);
        write_seed("cli", name, b.data, b.len);
        lm_buf_free(&b);
    }

    for (size_t i = 0; i < sizeof http_requests / sizeof http_requests[0]; i++) {
        snprintf(name, sizeof name, "request-%02zu", i);
        write_seed("http", name, http_requests[i], strlen(http_requests[i]));
    }

    size_t n;
    char **convs = fuzz_list_dir("tests/data/conversations", ".json", &n);
    if (!n) fprintf(stderr, "make-corpus: no conversations in tests/data/conversations\n");
    for (size_t i = 0; i < n; i++) {
        struct lm_buf b = {0};
        struct lm_err err;
        if (lm_read_file(convs[i], &b, &err) < 0) {
            fprintf(stderr, "make-corpus: %s\n", err.msg);
            return 1;
        }
        for (int k = 0; k < 3; k++) { /* three templates each, with and without the generation prompt */
            snprintf(name, sizeof name, "conversation-%zu-%d", i, k);
            write_selected("template", name, (uint8_t)((i * 3 + (size_t)k) % 64 | (k == 1 ? 0x40 : 0)), b.data, b.len);
        }
        lm_buf_free(&b);
    }
    fuzz_free_list(convs, n);
    static const char conversation[] =
        "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"Hi\\nthere\"}, "
        "{\"role\": \"assistant\", \"content\": \"Hello!\"}, {\"role\": \"user\", \"content\": \"\"}], \"tools\": [1, \"two\"]}";
    for (size_t i = 0; i < sizeof inline_templates / sizeof inline_templates[0]; i++) {
        struct lm_buf b = {0};
        lm_buf_puts(&b, inline_templates[i]);
        lm_buf_putc(&b, 0);
        lm_buf_puts(&b, conversation);
        snprintf(name, sizeof name, "inline-%02zu", i);
        write_selected("template", name, 0x80, b.data, b.len);
        lm_buf_free(&b);
    }
    return 0;
}
