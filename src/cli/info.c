/* lm info: what a model file holds, for people (default) and scripts (--json). */
#include "lm/cli.h"
#include "lm/gguf.h"
#include "lm/model.h"

#include <stdio.h>
#include <string.h>

static const char usage[] =
    "usage: lm info [-m MODEL.gguf] [--tensors] [--json]\n"
    "\n"
    "Shows the model's architecture, hyperparameters, tokenizer, and the tensors\n"
    "per weight format; then whether lm runs it (if not, why) and the features\n"
    "its loader found (sliding windows, RoPE, soft-caps, ...). Works on\n"
    "vocabulary-only files too.\n"
    "\n"
    "  -m, --model PATH  model file (default: $LM_MODEL, else models/default.gguf)\n"
    "  --tensors         list every tensor: name, type, shape, offset\n"
    "  --json            print one JSON object instead of text\n";

static const char *file_type_name(int64_t ft) {
    const struct lm_gguf_file_type *t = lm_gguf_file_type(ft);
    return t ? t->name : "unknown";
}

/* A hyperparameter: one integer, or one per layer (an array; v = -1). */
struct hparam {
    int64_t v;
    const struct lm_gguf_value *per_layer;
};

struct summary {
    struct lm_gguf_str arch, name, tok_model;
    int64_t file_type, n_vocab;
    struct hparam n_ctx, n_embd, n_head, n_head_kv, n_layer;
    uint64_t n_params;
    bool has_template;
    uint64_t type_count[LM_TYPE_COUNT], type_bytes[LM_TYPE_COUNT];
};

/* ARCH.suffix: an integer, or an array of integers (one per layer); v = -1
 * when absent. */
static int arch_int(const struct lm_gguf *g, struct lm_gguf_str arch, const char *suffix, struct hparam *out,
                    struct lm_err *err) {
    char key[256];
    snprintf(key, sizeof key, "%.*s.%s", (int)(arch.len < 100 ? arch.len : 100), arch.data, suffix);
    out->v = -1;
    out->per_layer = NULL;
    const struct lm_gguf_value *v = lm_gguf_get(g, key);
    if (v && v->type == LM_GGUF_ARRAY) {
        enum lm_gguf_type t = v->arr.type;
        if (t == LM_GGUF_STRING || t == LM_GGUF_ARRAY || t == LM_GGUF_F32 || t == LM_GGUF_F64 || t == LM_GGUF_BOOL)
            return lm_errf(err, "metadata '%s': expected integers, found an array of %s", key, lm_gguf_type_name(t));
        out->per_layer = v;
        return 0;
    }
    return lm_gguf_get_int(g, key, &out->v, err) < 0 ? -1 : 0;
}

static int summarize(const struct lm_gguf *g, struct summary *s, struct lm_err *err) {
    memset(s, 0, sizeof *s);
    s->file_type = -1;
    if (lm_gguf_get_str(g, "general.architecture", &s->arch, err) < 0 ||
        lm_gguf_get_str(g, "general.name", &s->name, err) < 0 ||
        lm_gguf_get_str(g, "tokenizer.ggml.model", &s->tok_model, err) < 0 ||
        lm_gguf_get_int(g, "general.file_type", &s->file_type, err) < 0)
        return -1;
    if (arch_int(g, s->arch, "context_length", &s->n_ctx, err) < 0 ||
        arch_int(g, s->arch, "embedding_length", &s->n_embd, err) < 0 ||
        arch_int(g, s->arch, "attention.head_count", &s->n_head, err) < 0 ||
        arch_int(g, s->arch, "attention.head_count_kv", &s->n_head_kv, err) < 0 ||
        arch_int(g, s->arch, "block_count", &s->n_layer, err) < 0)
        return -1;
    const struct lm_gguf_value *tokens = NULL;
    if (lm_gguf_get_arr(g, "tokenizer.ggml.tokens", LM_GGUF_STRING, &tokens, err) < 0) return -1;
    if (tokens) s->n_vocab = (int64_t)tokens->arr.n;
    else {
        struct hparam vocab;
        if (arch_int(g, s->arch, "vocab_size", &vocab, err) < 0) return -1;
        s->n_vocab = vocab.v;
    }
    struct lm_gguf_str tmpl;
    int has = lm_gguf_get_str(g, "tokenizer.chat_template", &tmpl, err);
    if (has < 0) return -1;
    s->has_template = has == 1;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct lm_gguf_tensor *t = &g->tensors[i];
        uint64_t n = 1;
        for (int d = 0; d < 4; d++) n *= (uint64_t)t->t.ne[d]; /* cannot overflow: bytes were checked */
        s->n_params += n;
        s->type_count[t->t.type]++;
        s->type_bytes[t->t.type] += t->size;
    }
    return 0;
}

/* "1..4 (per layer)" for an array, the value, or "-" when absent. */
static void print_hparam(const char *label, const struct hparam *h) {
    if (h->per_layer) {
        const struct lm_gguf_value *a = h->per_layer;
        int64_t lo = INT64_MAX, hi = INT64_MIN;
        for (uint64_t i = 0; i < a->arr.n; i++) {
            int64_t x = lm_gguf_arr_int(a, i);
            lo = x < lo ? x : lo;
            hi = x > hi ? x : hi;
        }
        if (!a->arr.n) printf("%s none (an empty array)\n", label);
        else if (lo == hi) printf("%s %lld (each of %llu layers)\n", label, (long long)lo, (unsigned long long)a->arr.n);
        else printf("%s %lld..%lld (per layer)\n", label, (long long)lo, (long long)hi);
    } else if (h->v >= 0) {
        printf("%s %lld\n", label, (long long)h->v);
    } else {
        printf("%s -\n", label);
    }
}

/* What lm's loader makes of the file: runs (features) or not (why). */
struct verdict {
    bool runs;
    struct lm_err err;
    struct lm_model m; /* when it runs */
    struct lm_buf features; /* phrases ending in '\n' */
};

static void judge(const char *path, struct verdict *v) {
    memset(v, 0, sizeof *v);
    if (lm_model_load(&v->m, path, &v->err) < 0) {
        /* the message starts with the path, which info already shows */
        size_t n = strlen(path);
        if (!strncmp(v->err.msg, path, n) && !strncmp(v->err.msg + n, ": ", 2))
            memmove(v->err.msg, v->err.msg + n + 2, strlen(v->err.msg + n + 2) + 1);
        return;
    }
    v->runs = true;
    lm_model_features(&v->m, &v->features);
}

/* What the model's layers are, when lm can load it (m NULL otherwise):
 * the recurrent ones, the attention layers between them, and blocks after
 * the trunk that lm does not run (multi-token prediction). */
static void print_layers(const struct lm_model *m, int64_t n_blocks) {
    if (!m || !m->hp.ssm.n_layer) return;
    printf("recurrent:     %d of %d layers (gated delta net); attention:", m->hp.ssm.n_layer, m->hp.n_layer);
    for (int l = 0; l < m->hp.n_layer; l++)
        if (!m->layers[l].ssm.out) printf(" %d", l);
    if (n_blocks > m->hp.n_layer) printf("; not run: %lld (multi-token prediction)", (long long)(n_blocks - m->hp.n_layer));
    printf("\n");
}

static void print_text(const char *path, const struct lm_gguf *g, const struct summary *s, const struct verdict *v,
                       bool tensors) {
    printf("file:          %s (%.1f MB, GGUF v%u)\n", path, (double)g->size / 1e6, g->version);
    printf("architecture:  %.*s\n", (int)s->arch.len, s->arch.data ? s->arch.data : "");
    printf("name:          %.*s\n", (int)s->name.len, s->name.data ? s->name.data : "");
    printf("parameters:    %.2f M (%llu)\n", (double)s->n_params / 1e6, (unsigned long long)s->n_params);
    if (s->file_type >= 0) printf("file type:     %s (%lld)\n", file_type_name(s->file_type), (long long)s->file_type);
    else printf("file type:     -\n");
    print_hparam("context:      ", &s->n_ctx);
    print_hparam("embedding:    ", &s->n_embd);
    print_hparam("heads:        ", &s->n_head);
    print_hparam("kv heads:     ", &s->n_head_kv);
    print_hparam("layers:       ", &s->n_layer);
    printf("rope scaling:  %s\n", !v->runs ? "-" : v->m.rope[0].scaling[0] ? v->m.rope[0].scaling : "none");
    print_layers(v->runs ? &v->m : NULL, s->n_layer.v);
    printf("vocabulary:    %lld (%.*s)\n", (long long)s->n_vocab, (int)s->tok_model.len,
           s->tok_model.data ? s->tok_model.data : "none");
    printf("chat template: %s\n", s->has_template ? "yes" : "no");
    if (v->runs) {
        printf("lm runs it:    yes, as %.*s\n", (int)s->arch.len, s->arch.data);
        for (const char *p = v->features.data, *end = p + v->features.len; p < end;) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            printf("  %.*s\n", (int)(nl - p), p);
            p = nl + 1;
        }
    } else {
        printf("lm runs it:    no: %s\n", v->err.msg);
    }
    printf("tensors:       %llu\n", (unsigned long long)g->n_tensors);
    for (int t = 0; t < LM_TYPE_COUNT; t++)
        if (s->type_count[t])
            printf("  %-8s %5llu tensors %12llu bytes\n", lm_type_get((uint32_t)t)->name,
                   (unsigned long long)s->type_count[t], (unsigned long long)s->type_bytes[t]);
    if (!tensors) return;
    printf("\n%-40s %-8s %-28s %s\n", "name", "type", "shape", "offset");
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct lm_gguf_tensor *t = &g->tensors[i];
        char shape[96];
        int n = snprintf(shape, sizeof shape, "[%lld", (long long)t->t.ne[0]);
        for (int d = 1; d < t->t.n_dims; d++) n += snprintf(shape + n, sizeof shape - (size_t)n, ", %lld", (long long)t->t.ne[d]);
        snprintf(shape + n, sizeof shape - (size_t)n, "]");
        printf("%-40.*s %-8s %-28s %llu\n", (int)t->name.len, t->name.data, lm_type_get(t->t.type)->name, shape,
               (unsigned long long)t->offset);
    }
}

static void json_field_str(struct lm_buf *b, const char *key, struct lm_gguf_str v) {
    lm_buf_printf(b, "\"%s\":", key);
    if (v.data) lm_buf_json_str(b, v.data, v.len);
    else lm_buf_puts(b, "null");
    lm_buf_putc(b, ',');
}

static void json_field_int(struct lm_buf *b, const char *key, int64_t v) {
    if (v >= 0) lm_buf_printf(b, "\"%s\":%lld,", key, (long long)v);
    else lm_buf_printf(b, "\"%s\":null,", key);
}

/* An integer, or an array of them (one per layer). */
static void json_field_hparam(struct lm_buf *b, const char *key, const struct hparam *h) {
    if (!h->per_layer) return json_field_int(b, key, h->v);
    lm_buf_printf(b, "\"%s\":[", key);
    for (uint64_t i = 0; i < h->per_layer->arr.n; i++)
        lm_buf_printf(b, "%s%lld", i ? "," : "", (long long)lm_gguf_arr_int(h->per_layer, i));
    lm_buf_puts(b, "],");
}

/* "lm":{"runs":true,"features":[...]} or {"runs":false,"error":"..."} */
static void json_verdict(struct lm_buf *b, const struct verdict *v) {
    lm_buf_printf(b, "\"lm\":{\"runs\":%s,", v->runs ? "true" : "false");
    if (!v->runs) {
        lm_buf_puts(b, "\"error\":");
        lm_buf_json_str(b, v->err.msg, strlen(v->err.msg));
        lm_buf_puts(b, "},");
        return;
    }
    lm_buf_puts(b, "\"features\":[");
    for (const char *p = v->features.data, *end = p + v->features.len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (p != v->features.data) lm_buf_putc(b, ',');
        lm_buf_json_str(b, p, (size_t)(nl - p));
        p = nl + 1;
    }
    lm_buf_puts(b, "]},");
}

static void print_json(const char *path, const struct lm_gguf *g, const struct summary *s, const struct verdict *v,
                       bool tensors) {
    struct lm_buf b = {0};
    lm_buf_puts(&b, "{\"file\":");
    lm_buf_json_str(&b, path, strlen(path));
    lm_buf_printf(&b, ",\"file_size\":%zu,\"gguf_version\":%u,", g->size, g->version);
    json_field_str(&b, "architecture", s->arch);
    json_field_str(&b, "name", s->name);
    lm_buf_printf(&b, "\"parameters\":%llu,", (unsigned long long)s->n_params);
    json_field_int(&b, "file_type", s->file_type);
    if (s->file_type >= 0) lm_buf_printf(&b, "\"file_type_name\":\"%s\",", file_type_name(s->file_type));
    json_field_hparam(&b, "context_length", &s->n_ctx);
    json_field_hparam(&b, "embedding_length", &s->n_embd);
    json_field_hparam(&b, "head_count", &s->n_head);
    json_field_hparam(&b, "head_count_kv", &s->n_head_kv);
    json_field_hparam(&b, "block_count", &s->n_layer);
    json_field_int(&b, "vocab_size", s->n_vocab);
    if (v->runs) {
        lm_buf_puts(&b, "\"recurrent_layers\":[");
        for (int l = 0, n = 0; l < v->m.hp.n_layer; l++)
            if (v->m.layers[l].ssm.out) lm_buf_printf(&b, "%s%d", n++ ? "," : "", l);
        lm_buf_puts(&b, "],");
    }
    json_field_str(&b, "tokenizer_model", s->tok_model);
    json_verdict(&b, v);
    lm_buf_printf(&b, "\"chat_template\":%s,\"tensor_count\":%llu,\"metadata_count\":%llu,\"types\":{",
                  s->has_template ? "true" : "false", (unsigned long long)g->n_tensors, (unsigned long long)g->n_kv);
    bool first = true;
    for (int t = 0; t < LM_TYPE_COUNT; t++) {
        if (!s->type_count[t]) continue;
        lm_buf_printf(&b, "%s\"%s\":{\"count\":%llu,\"bytes\":%llu}", first ? "" : ",", lm_type_get((uint32_t)t)->name,
                      (unsigned long long)s->type_count[t], (unsigned long long)s->type_bytes[t]);
        first = false;
    }
    lm_buf_putc(&b, '}');
    if (tensors) {
        lm_buf_puts(&b, ",\"tensors\":[");
        for (uint64_t i = 0; i < g->n_tensors; i++) {
            const struct lm_gguf_tensor *t = &g->tensors[i];
            lm_buf_puts(&b, i ? ",{\"name\":" : "{\"name\":");
            lm_buf_json_str(&b, t->name.data, t->name.len);
            lm_buf_printf(&b, ",\"type\":\"%s\",\"shape\":[", lm_type_get(t->t.type)->name);
            for (int d = 0; d < t->t.n_dims; d++) lm_buf_printf(&b, "%s%lld", d ? "," : "", (long long)t->t.ne[d]);
            lm_buf_printf(&b, "],\"offset\":%llu,\"bytes\":%llu}", (unsigned long long)t->offset,
                          (unsigned long long)t->size);
        }
        lm_buf_putc(&b, ']');
    }
    lm_buf_puts(&b, "}\n");
    fwrite(b.data, 1, b.len, stdout);
    lm_buf_free(&b);
}

int cmd_info(int argc, char **argv) {
    const char *model = NULL;
    bool tensors = false, json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return LM_EXIT_OK;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!(model = lm_cli_value(argc, argv, &i))) return LM_EXIT_USAGE;
        } else if (!strcmp(a, "--tensors")) {
            tensors = true;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else {
            return lm_cli_fail(LM_EXIT_USAGE, "info: unknown option '%s' (see lm info --help)", a);
        }
    }
    if (lm_cli_flags_only) return LM_EXIT_OK;
    const char *path = lm_cli_model_path(model);
    if (!path) return LM_EXIT_MODEL;
    struct lm_gguf g;
    struct lm_err err;
    if (lm_gguf_open(&g, path, &err) < 0) return lm_cli_fail(LM_EXIT_MODEL, "%s", err.msg);
    struct summary s;
    if (summarize(&g, &s, &err) < 0) {
        lm_gguf_close(&g);
        return lm_cli_fail(LM_EXIT_MODEL, "%s: %s", path, err.msg);
    }
    struct verdict v;
    judge(path, &v);
    if (json) print_json(path, &g, &s, &v, tensors);
    else print_text(path, &g, &s, &v, tensors);
    lm_buf_free(&v.features);
    if (v.runs) lm_model_free(&v.m);
    lm_gguf_close(&g);
    return fflush(stdout) == 0 ? LM_EXIT_OK : LM_EXIT_RUNTIME;
}
