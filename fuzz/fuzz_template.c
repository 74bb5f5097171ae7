/* fuzz_template: chat templates rendered for arbitrary conversations, and
 * arbitrary templates.
 *
 * First byte b: when b < 0x80 and real templates are at hand (every .jinja
 * of ../shared/templates and the default model's tokenizer.chat_template),
 * template (b & 0x3F) % n renders the rest of the input as the messages
 * JSON; bit 0x40 is add_generation_prompt. When b >= 0x80, the rest is a
 * template, a NUL byte, then the messages JSON. The interpreter's bounds
 * are lowered so that each input ends quickly. Checked: a refusal has a
 * message and leaves the output untouched. */
#include "fuzz.h"
#include "lm/gguf.h"
#include "lm/jinja.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct lm_buf *templates;
static size_t n_templates;

static void add(const char *text, size_t len) {
    templates = lm_xrealloc(templates, (n_templates + 1) * sizeof *templates);
    templates[n_templates] = (struct lm_buf){0};
    lm_buf_append(&templates[n_templates++], text, len);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    size_t n;
    char **files = fuzz_list_dir(fuzz_shared_path("templates"), ".jinja", &n);
    for (size_t i = 0; i < n; i++) {
        struct lm_buf b = {0};
        struct lm_err err;
        if (lm_read_file(files[i], &b, &err) == 0) add(b.data ? b.data : "", b.len);
        lm_buf_free(&b);
    }
    fuzz_free_list(files, n);
    struct lm_gguf g;
    struct lm_err err;
    struct lm_gguf_str s;
    if (fuzz_model_path() && lm_gguf_open(&g, fuzz_model_path(), &err) == 0) {
        if (lm_gguf_get_str(&g, "tokenizer.chat_template", &s, &err) == 1) add(s.data, s.len);
        lm_gguf_close(&g);
    }
    dprintf(2, "fuzz_template: %zu templates\n", n_templates);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const char *in = (const char *)data + 1, *tmpl, *json;
    size_t len = size - 1, tmpl_len, json_len;
    struct lm_template_opts opts = {
        .bos_token = "<s>", .eos_token = "</s>", .date = "2025-01-31",
        .max_output = 1 << 20, .max_memory = 64 << 20, .max_steps = 1000000,
    };
    if (data[0] < 0x80 && n_templates) {
        const struct lm_buf *t = &templates[(data[0] & 0x3F) % n_templates];
        tmpl = t->data, tmpl_len = t->len;
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
    return 0;
}
