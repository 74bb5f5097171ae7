/* lm template: render a chat template for a conversation, as the model sees it. */
#include "lm/cli.h"
#include "lm/gguf.h"
#include "lm/jinja.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: lm template [-m MODEL.gguf | --template NAME | --template-file FILE.jinja] --messages FILE.json\n"
    "                   [--no-generation-prompt] [--bos-token S] [--eos-token S] [--date YYYY-MM-DD]\n"
    "\n"
    "Renders the model's chat template (tokenizer.chat_template) for the\n"
    "conversation in FILE.json and prints the text, exactly as the model would\n"
    "get it, and nothing else. The template is interpreted the way Hugging Face\n"
    "transformers renders it with Python's jinja2.\n"
    "\n"
    "FILE.json ('-' is standard input) is a list of messages,\n"
    "  [{\"role\": \"user\", \"content\": \"Hi\"}, ...]\n"
    "or an object with \"messages\" and further template variables:\n"
    "  {\"messages\": [...], \"tools\": [...], \"enable_thinking\": false}\n"
    "\n"
    "  -m, --model PATH        take the template and the BOS/EOS token texts from\n"
    "                          this model (default: $LM_MODEL, else models/default.gguf)\n"
    "  --template NAME         take a built-in template instead, as lm chat does:\n"
    "                          chatml, llama3, llama2, gemma, phi3, deepseek-r1\n"
    "  --template-file FILE    take the template from FILE instead\n"
    "  --messages FILE         the conversation (required)\n"
    "  --no-generation-prompt  do not open an assistant turn at the end\n"
    "                          (add_generation_prompt is true by default)\n"
    "  --bos-token S           the text of bos_token (default: the model's, else undefined)\n"
    "  --eos-token S           the text of eos_token (default: the model's, else undefined)\n"
    "  --date YYYY-MM-DD       the date strftime_now() reports (default: today)\n";

struct options {
    const char *model, *messages, *bos, *eos, *date;
    struct lm_cli_template tmpl;
    bool no_generation_prompt;
};

static int parse(int argc, char **argv, struct options *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **value = NULL;
        int r = lm_cli_template_flag(&o->tmpl, argc, argv, &i);
        if (r < 0) return -1;
        if (r > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 1;
        }
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) value = &o->model;
        else if (!strcmp(a, "--messages")) value = &o->messages;
        else if (!strcmp(a, "--bos-token")) value = &o->bos;
        else if (!strcmp(a, "--eos-token")) value = &o->eos;
        else if (!strcmp(a, "--date")) value = &o->date;
        else if (!strcmp(a, "--no-generation-prompt")) {
            o->no_generation_prompt = true;
            continue;
        } else {
            lm_cli_fail(LM_EXIT_USAGE, "template: unknown argument '%s' (see lm template --help)", a);
            return -1;
        }
        if (!(*value = lm_cli_value(argc, argv, &i))) return -1;
    }
    if (o->model && (o->tmpl.name || o->tmpl.file)) {
        lm_cli_fail(LM_EXIT_USAGE, "template: give -m or --template/--template-file, not both");
        return -1;
    }
    if (!o->messages) {
        lm_cli_fail(LM_EXIT_USAGE, "template: --messages FILE.json is required (see lm template --help)");
        return -1;
    }
    int y, m, d;
    char extra;
    if (o->date && (sscanf(o->date, "%4d-%2d-%2d%c", &y, &m, &d, &extra) != 3 || m < 1 || m > 12 || d < 1 || d > 31)) {
        lm_cli_fail(LM_EXIT_USAGE, "template: --date: '%s' is not YYYY-MM-DD", o->date);
        return -1;
    }
    return 0;
}

/* The text of the token whose id is in key, or NULL when the model has none. */
static char *token_text(const struct lm_gguf *g, const char *key) {
    struct lm_err err;
    int64_t id;
    const struct lm_gguf_value *tokens;
    if (lm_gguf_get_int(g, key, &id, &err) != 1) return NULL;
    if (lm_gguf_get_arr(g, "tokenizer.ggml.tokens", LM_GGUF_STRING, &tokens, &err) != 1) return NULL;
    if (id < 0 || (uint64_t)id >= tokens->arr.n) return NULL;
    struct lm_gguf_str s = lm_gguf_arr_str(tokens, (uint64_t)id);
    return lm_xstrndup(s.data, s.len);
}

int cmd_template(int argc, char **argv) {
    struct options o = {0};
    int r = parse(argc, argv, &o);
    if (r) return r > 0 ? LM_EXIT_OK : LM_EXIT_USAGE;
    if (lm_cli_flags_only) return LM_EXIT_OK;

    struct lm_err err = {{0}};
    struct lm_buf tmpl = {0}, messages = {0}, out = {0};
    struct lm_json conv = {0};
    struct lm_gguf g = {0};
    char *bos = NULL, *eos = NULL;
    const char *source = o.tmpl.file ? o.tmpl.file : o.tmpl.name;
    int code = LM_EXIT_OK;
    if (lm_read_file(o.messages, &messages, &err) < 0) {
        code = lm_cli_fail(LM_EXIT_USAGE, "%s", err.msg);
        goto done;
    }
    if (lm_json_parse(&conv, messages.data ? messages.data : "", messages.len, &err) < 0) {
        code = lm_cli_fail(LM_EXIT_USAGE, "%s: %s", o.messages, err.msg);
        goto done;
    }
    int chosen = lm_cli_template_text(&o.tmpl, &tmpl, &err);
    if (chosen < 0) {
        code = lm_cli_fail(LM_EXIT_USAGE, "%s", err.msg);
        goto done;
    }
    if (!chosen) {
        if (!(source = lm_cli_model_path(o.model))) {
            code = LM_EXIT_MODEL;
            goto done;
        }
        struct lm_gguf_str s;
        if (lm_gguf_open(&g, source, &err) < 0) {
            code = lm_cli_fail(LM_EXIT_MODEL, "%s", err.msg);
            goto done;
        }
        int found = lm_gguf_get_str(&g, "tokenizer.chat_template", &s, &err);
        if (found != 1) {
            code = lm_cli_fail(LM_EXIT_MODEL, "%s: %s", source, found < 0 ? err.msg : "the model has no chat template (tokenizer.chat_template)");
            goto done;
        }
        lm_buf_append(&tmpl, s.data, s.len);
        bos = token_text(&g, "tokenizer.ggml.bos_token_id");
        eos = token_text(&g, "tokenizer.ggml.eos_token_id");
    }
    struct lm_template_opts opts = {
        .add_generation_prompt = !o.no_generation_prompt,
        .bos_token = o.bos ? o.bos : bos,
        .eos_token = o.eos ? o.eos : eos,
        .date = o.date,
    };
    if (lm_template_render_json(tmpl.data ? tmpl.data : "", tmpl.len, &conv, &opts, &out, &err) < 0) {
        code = lm_cli_fail(LM_EXIT_RUNTIME, "%s: %s", source, err.msg);
        goto done;
    }
    if (fwrite(out.data ? out.data : "", 1, out.len, stdout) != out.len || fflush(stdout) != 0)
        code = lm_cli_fail(LM_EXIT_RUNTIME, "cannot write the output");
done:
    free(bos);
    free(eos);
    lm_gguf_close(&g);
    lm_json_free(&conv);
    lm_buf_free(&tmpl);
    lm_buf_free(&messages);
    lm_buf_free(&out);
    return code;
}
