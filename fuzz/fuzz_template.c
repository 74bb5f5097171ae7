/* fuzz_template: chat templates rendered for arbitrary conversations, and
 * arbitrary templates.
 *
 * First byte b: when b < 0x80, real template (b & 0x3F) % n renders the
 * rest of the input as the messages JSON, with add_generation_prompt from
 * bit 0x40; the real ones are lm's built-ins, every .jinja of
 * ../shared/templates and the default model's tokenizer.chat_template. The
 * same JSON then goes through lm chat's path (lm_chat_from_json,
 * lm_chat_render with the default model's vocabulary). When b >= 0x80, the
 * rest is a template, a NUL byte, then the messages JSON. The interpreter's
 * bounds are lowered so that each input ends quickly.
 *
 * Checked: a refusal has a message and leaves the output untouched; chat's
 * ids are inside the vocabulary; a conversation written as JSON reads back
 * as the same conversation. */
#include "fuzz.h"
#include "lm/chat.h"
#include "lm/gguf.h"
#include "lm/jinja.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct lm_buf *templates;
static size_t n_templates;
static struct lm_gguf model;
static struct lm_tokenizer tok;
static bool have_tok;

static void add(const char *text, size_t len) {
    templates = lm_xrealloc(templates, (n_templates + 1) * sizeof *templates);
    templates[n_templates] = (struct lm_buf){0};
    lm_buf_append(&templates[n_templates++], text, len);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    for (const char *const *name = lm_chat_builtin_names; *name; name++)
        add(lm_chat_builtin(*name), strlen(lm_chat_builtin(*name)));
    size_t n;
    char **files = fuzz_list_dir(fuzz_shared_path("templates"), ".jinja", &n);
    for (size_t i = 0; i < n; i++) {
        struct lm_buf b = {0};
        struct lm_err err;
        if (lm_read_file(files[i], &b, &err) == 0) add(b.data ? b.data : "", b.len);
        lm_buf_free(&b);
    }
    fuzz_free_list(files, n);
    struct lm_err err;
    struct lm_gguf_str s;
    if (fuzz_model_path() && lm_gguf_open(&model, fuzz_model_path(), &err) == 0) {
        if (lm_gguf_get_str(&model, "tokenizer.chat_template", &s, &err) == 1) add(s.data, s.len);
        have_tok = lm_tokenizer_load(&tok, &model, &err) == 0;
    }
    dprintf(2, "fuzz_template: %zu templates, %s\n", n_templates, have_tok ? "chat with the default model's vocabulary" : "no vocabulary for chat");
    return 0;
}

/* What lm chat --messages does with the JSON, short of generating. */
static void chat(const struct lm_buf *tmpl, const char *json, size_t json_len, bool add_generation_prompt) {
    struct lm_chat c, again;
    struct lm_err err = {{0}};
    lm_chat_init(&c, &tok, tmpl->data, tmpl->len);
    lm_chat_init(&again, &tok, tmpl->data, tmpl->len);
    if (lm_chat_from_json(&c, json, json_len, &err) < 0) {
        FUZZ_CHECK(err.msg[0]);
    } else {
        struct lm_buf text = {0}, j1 = {0}, j2 = {0};
        struct lm_tokens ids = {0};
        char warn[160];
        if (lm_chat_render(&c, add_generation_prompt, &text, &ids, warn, &err) == 0) {
            for (size_t i = 0; i < ids.n; i++) FUZZ_CHECK(ids.ids[i] >= 0 && ids.ids[i] < tok.n_vocab);
        } else {
            FUZZ_CHECK(err.msg[0]);
        }
        lm_chat_to_json(&c, &j1);
        FUZZ_CHECK(lm_chat_from_json(&again, j1.data, j1.len, &err) == 0);
        lm_chat_to_json(&again, &j2);
        FUZZ_CHECK(j1.len == j2.len && !memcmp(j1.data, j2.data, j1.len));
        lm_buf_free(&text);
        lm_buf_free(&j1);
        lm_buf_free(&j2);
        lm_tokens_free(&ids);
    }
    lm_chat_free(&c);
    lm_chat_free(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const char *in = (const char *)data + 1, *tmpl, *json;
    size_t len = size - 1, tmpl_len, json_len;
    struct lm_template_opts opts = {
        .bos_token = "<s>", .eos_token = "</s>", .date = "2025-01-31",
        .max_output = 1 << 20, .max_memory = 64 << 20, .max_steps = 1000000,
    };
    const struct lm_buf *real = NULL;
    if (data[0] < 0x80) {
        real = &templates[(data[0] & 0x3F) % n_templates];
        tmpl = real->data, tmpl_len = real->len;
        json = in, json_len = len;
        opts.add_generation_prompt = data[0] & 0x40;
    } else {
        const char *nul = memchr(in, 0, len);
        tmpl = in, tmpl_len = nul ? (size_t)(nul - in) : len;
        json = nul ? nul + 1 : "[]", json_len = nul ? len - tmpl_len - 1 : 2;
        opts.add_generation_prompt = true;
    }
    struct lm_buf out = {0};
    struct lm_err err = {{0}};
    lm_buf_puts(&out, "kept");
    if (lm_template_render_text(tmpl, tmpl_len, json, json_len, &opts, &out, &err) < 0)
        FUZZ_CHECK(err.msg[0] && out.len == 4 && !memcmp(out.data, "kept", 4));
    lm_buf_free(&out);
    if (real && have_tok) chat(real, json, json_len, opts.add_generation_prompt);
    return 0;
}
