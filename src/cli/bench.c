/* lm bench: prompt-processing and generation speed, measured and reported
 * as llama.cpp's llama-bench does (tools/llama-bench/llama-bench.cpp), so
 * that a user of one can switch to the other: the same flags and lists, the
 * same tests in the same order, the same timing, and the same markdown,
 * JSON, JSONL and CSV, field names and types included, so that scripts
 * written for llama-bench's output read ours unchanged.
 *
 * A row is one test (ppN, tgN or ppN+tgM, at a depth) for one combination
 * of model, batch, threads and depth. It runs once to warm up (the whole
 * prompt; one generated token), then -r times; each repetition is one
 * sample of nanoseconds, and its t/s is (n_prompt + n_gen) / time. A test at
 * depth D first fills the KV cache with D tokens, untimed. The tests write
 * only at positions >= D, so the first fill of a row serves all its
 * repetitions (llama-bench saves and restores the cache for the same end).
 *
 * The records carry every field of llama-bench's. Knobs of llama.cpp that
 * lm does not have (GPU layers, split mode, CPU mask, polling, flash
 * attention, repacking, ...) are written with the value that says "off",
 * so that the record keeps its shape without claiming what lm does not do.
 * model_type is llama.cpp's "ARCH SIZE FTYPE", SIZE from the file's
 * general.size_label (llama.cpp guesses it from the layer count; "?B" when
 * unknown).
 *
 * Left out: llama-bench's GPU, RPC, NUMA and tensor-override flags, -ub
 * (lm's forward pass takes a whole -b batch at once, so n_ubatch = n_batch),
 * -ctk/-ctv (the KV cache is f16), -o sql, -oe, --delay, --prio. */
#include "lm/cli.h"
#include "lm/model.h"

#include "build-info.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char usage[] =
    "usage: lm bench [options]\n"
    "\n"
    "Measures tokens per second as llama-bench does, with its flags and output\n"
    "formats. ppN processes an N-token prompt in batches of -b; tgN generates N\n"
    "tokens one at a time; ppN+tgM does both; \" @ dD\" runs after D tokens of\n"
    "context. Each test runs once to warm up, then -r times; t/s is the mean and\n"
    "standard deviation over the runs.\n"
    "\n"
    "  -m, --model PATH      model file; a comma list or repeated for several\n"
    "                        (default: $LM_MODEL, else models/default.gguf)\n"
    "  -p, --n-prompt N      prompt tokens of the pp tests (default 512; 0: none)\n"
    "  -n, --n-gen N         tokens of the tg tests (default 128; 0: none)\n"
    "  -pg PP,TG             a test of a PP-token prompt then TG generated tokens\n"
    "  -d, --n-depth N       tokens already in the KV cache before each test (default 0)\n"
    "  -b, --batch-size N    tokens per forward pass in prompts (default 512)\n"
    "  -t, --threads N       threads (default: number of CPUs)\n"
    "  -r, --repetitions N   timed runs of each test (default 5)\n"
    "  -o, --output FMT      md (default), json, jsonl or csv\n"
    "  --no-warmup           skip the warm-up run\n"
    "  --progress            say on stderr what runs\n"
    "  --bandwidth           after each tg test, measure this machine's memory read\n"
    "                        bandwidth with as many threads and say on stderr which\n"
    "                        fraction of it the test read (weights a token touches\n"
    "                        x t/s)\n"
    "\n"
    "-p, -n, -d, -b and -t take several values, comma-separated or by repeating\n"
    "the flag, and ranges FIRST-LAST, FIRST-LAST+STEP or FIRST-LAST*FACTOR;\n"
    "-pg may be repeated. Every combination is a row, in llama-bench's order:\n"
    "model, batch, threads, depth, then the pp, tg and pg tests.\n";

#define MAX_VALUES 1024 /* per list flag; a typo like 1-1000000 is an error, not a million rows */

struct ints {
    int *v;
    int n;
};

enum format { FMT_MD, FMT_JSON, FMT_JSONL, FMT_CSV };

struct opts {
    char **models;
    int n_models;
    struct ints prompt, gen, pg, depth, batch, threads; /* pg: pairs (pp, tg) */
    int reps;
    enum format fmt;
    bool no_warmup, progress, bandwidth;
};

static int push(const char *flag, struct ints *l, int v) {
    if (l->n == MAX_VALUES) return lm_cli_fail(LM_EXIT_USAGE, "%s: more than %d values", flag, MAX_VALUES), -1;
    l->v = lm_xrealloc(l->v, sizeof *l->v * (size_t)(l->n + 1));
    l->v[l->n++] = v;
    return 0;
}

/* One number of a list item, s[0..n), within [lo, hi]. */
static int item_int(const char *flag, const char *s, size_t n, long long lo, long long hi, long long *out) {
    char buf[64];
    snprintf(buf, sizeof buf, "%.*s", (int)(n < sizeof buf - 1 ? n : sizeof buf - 1), s);
    if (n >= sizeof buf) return lm_cli_fail(LM_EXIT_USAGE, "%s: '%s...' is not an integer", flag, buf), -1;
    return lm_cli_int(flag, buf, lo, hi, out);
}

/* llama-bench's lists: comma-separated items, each N, FIRST-LAST,
 * FIRST-LAST+STEP or FIRST-LAST*FACTOR, appended to l. */
static int parse_list(const char *flag, const char *s, long long lo, long long hi, struct ints *l) {
    for (;;) {
        size_t n = strcspn(s, ",");
        const char *dash = memchr(s + 1, '-', n > 0 ? n - 1 : 0); /* not a leading minus */
        long long first, last, step = 1;
        char op = '+';
        if (!dash) {
            if (item_int(flag, s, n, lo, hi, &first) < 0) return -1;
            last = first;
        } else {
            size_t k = (size_t)(dash - s);
            size_t m = strcspn(dash + 1, "+*,");
            if (item_int(flag, s, k, lo, hi, &first) < 0 || item_int(flag, dash + 1, m, lo, hi, &last) < 0) return -1;
            if (k + 1 + m < n) {
                op = dash[1 + m];
                if (item_int(flag, dash + 2 + m, n - k - 2 - m, 1, hi, &step) < 0) return -1;
            }
            if (last < first || (op == '*' && (first == 0 || step == 1)))
                return lm_cli_fail(LM_EXIT_USAGE, "%s: '%.*s' is not a range from low to high", flag, (int)n, s), -1;
        }
        for (long long v = first; v <= last; v = op == '+' ? v + step : v * step)
            if (push(flag, l, (int)v) < 0) return -1;
        if (!s[n]) return 0;
        s += n + 1;
    }
}

/* -pg PP,TG: exactly two numbers. */
static int parse_pair(const char *flag, const char *s, struct ints *pg) {
    const char *comma = strchr(s, ',');
    long long pp, tg;
    if (!comma || strchr(comma + 1, ','))
        return lm_cli_fail(LM_EXIT_USAGE, "%s: '%s' is not PP,TG (two numbers)", flag, s), -1;
    if (item_int(flag, s, (size_t)(comma - s), 0, 1 << 20, &pp) < 0 || item_int(flag, comma + 1, strlen(comma + 1), 0, 1 << 20, &tg) < 0)
        return -1;
    return push(flag, pg, (int)pp) < 0 || push(flag, pg, (int)tg) < 0 ? -1 : 0;
}

static void add_models(struct opts *o, const char *s) {
    for (;;) {
        size_t n = strcspn(s, ",");
        o->models = lm_xrealloc(o->models, sizeof *o->models * (size_t)(o->n_models + 1));
        o->models[o->n_models++] = lm_xstrndup(s, n);
        if (!s[n]) return;
        s += n + 1;
    }
}

enum flag { F_MODEL, F_PROMPT, F_GEN, F_PG, F_DEPTH, F_BATCH, F_THREADS, F_REPS, F_OUTPUT, N_FLAGS };
static const char *const flag_names[N_FLAGS][2] = {
    [F_MODEL] = {"-m", "--model"},     [F_PROMPT] = {"-p", "--n-prompt"},     [F_GEN] = {"-n", "--n-gen"},
    [F_PG] = {"-pg", "-pg"},           [F_DEPTH] = {"-d", "--n-depth"},       [F_BATCH] = {"-b", "--batch-size"},
    [F_THREADS] = {"-t", "--threads"}, [F_REPS] = {"-r", "--repetitions"},    [F_OUTPUT] = {"-o", "--output"},
};

/* 0, 1 after --help, -1 on a bad flag (message printed). */
static int parse_flags(struct opts *o, int argc, char **argv) {
    static const char *const formats[] = {[FMT_MD] = "md", [FMT_JSON] = "json", [FMT_JSONL] = "jsonl", [FMT_CSV] = "csv"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 1;
        }
        if (!strcmp(a, "--no-warmup")) {
            o->no_warmup = true;
            continue;
        }
        if (!strcmp(a, "--progress")) {
            o->progress = true;
            continue;
        }
        if (!strcmp(a, "--bandwidth")) {
            o->bandwidth = true;
            continue;
        }
        int f = 0;
        while (f < N_FLAGS && strcmp(a, flag_names[f][0]) && strcmp(a, flag_names[f][1])) f++;
        if (f == N_FLAGS) return lm_cli_fail(LM_EXIT_USAGE, "bench: unknown option '%s' (see lm bench --help)", a), -1;
        if (!(v = lm_cli_value(argc, argv, &i))) return -1;
        long long n;
        int rc = 0;
        switch ((enum flag)f) {
        case F_MODEL: add_models(o, v); break;
        case F_PROMPT: rc = parse_list(a, v, 0, 1 << 20, &o->prompt); break;
        case F_GEN: rc = parse_list(a, v, 0, 1 << 20, &o->gen); break;
        case F_DEPTH: rc = parse_list(a, v, 0, 1 << 20, &o->depth); break;
        case F_BATCH: rc = parse_list(a, v, 1, 1 << 16, &o->batch); break;
        case F_THREADS: rc = parse_list(a, v, 1, 256, &o->threads); break;
        case F_PG: rc = parse_pair(a, v, &o->pg); break;
        case F_REPS:
            if ((rc = lm_cli_int(a, v, 1, 10000, &n)) == 0) o->reps = (int)n;
            break;
        case F_OUTPUT:
            for (n = 0; n < 4 && strcmp(v, formats[n]);) n++;
            if (n == 4) return lm_cli_fail(LM_EXIT_USAGE, "bench: %s: '%s' is not md, json, jsonl or csv", a, v), -1;
            o->fmt = (enum format)n;
            break;
        case N_FLAGS: break;
        }
        if (rc < 0) return -1;
    }
    return 0;
}

/* ---- what a row reports ------------------------------------------------- */

struct model_info {
    const char *path;
    char type[128];          /* llama_model_desc: "llama 135M Q4_1" */
    uint64_t size, n_params; /* bytes and values of all tensors */
    uint64_t token_bytes;    /* bytes of weights a generated token reads: all but the unused embedding rows */
};

struct row {
    const struct model_info *model;
    int n_prompt, n_gen, n_depth, n_batch, n_threads;
    char test_time[32]; /* when the row started, RFC 3339 */
    uint64_t *samples_ns;
    int n_samples;
};

static void model_info(const struct lm_model *m, const char *path, struct model_info *mi) {
    const struct lm_gguf *g = &m->gguf;
    struct lm_gguf_str arch = {0}, label = {0};
    lm_gguf_get_str(g, "general.architecture", &arch, NULL); /* checked at load */
    if (lm_gguf_get_str(g, "general.size_label", &label, NULL) != 1 || !label.len || label.len > 32)
        label = (struct lm_gguf_str){2, "?B"};
    int64_t ft = lm_gguf_file_type_of(g);
    const struct lm_gguf_file_type *t = lm_gguf_file_type(ft);
    snprintf(mi->type, sizeof mi->type, "%.*s %.*s %s%s", (int)(arch.len < 32 ? arch.len : 32), arch.data,
             (int)label.len, label.data, ft & LM_GGUF_FILE_TYPE_GUESSED ? "(guessed) " : "",
             t ? t->desc : "unknown, may not work");
    mi->path = path;
    mi->size = mi->n_params = mi->token_bytes = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct lm_tensor *x = &g->tensors[i].t;
        mi->size += g->tensors[i].size;
        mi->n_params += (uint64_t)(x->ne[0] * x->ne[1] * x->ne[2] * x->ne[3]); /* bounded by the size, checked at parse */
        /* the embedding: one row per token, unless it is the output matrix too */
        const bool rows_only = x->data == m->tok_embd->data && m->output->data != m->tok_embd->data;
        mi->token_bytes += rows_only ? g->tensors[i].size / (uint64_t)x->ne[1] : g->tensors[i].size;
    }
}

/* The CPU's name as ggml's CPU backend gives it: /proc/cpuinfo's first
 * "model name", else "CPU". */
static void cpu_name(char *out, size_t n) {
    snprintf(out, n, "CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        char *p = strchr(line, ':');
        if (strncmp(line, "model name", 10) || !p) continue;
        for (p++; *p == ' ' || *p == '\t'; p++) {}
        size_t len = strlen(p);
        while (len && (p[len - 1] == '\n' || p[len - 1] == ' ' || p[len - 1] == '\t')) len--;
        snprintf(out, n, "%.*s", (int)len, p);
        break;
    }
    fclose(f);
}

/* llama-bench's statistics: the mean of the samples, and the sample
 * standard deviation as sqrt(sum x^2 / (n-1) - mean^2 n / (n-1)). For
 * nanoseconds both are integers, the mean truncated as its uint64_t
 * arithmetic does (the deviation is computed in double here: in uint64_t
 * the squares overflow past samples of about two seconds). */
static uint64_t avg_ns(const struct row *r) {
    uint64_t sum = 0;
    for (int i = 0; i < r->n_samples; i++) sum += r->samples_ns[i];
    return sum / (uint64_t)r->n_samples;
}

static double sample_ts(const struct row *r, int i) { return 1e9 * (r->n_prompt + r->n_gen) / (double)r->samples_ns[i]; }

static double stdev(double sum, double sum2, double mean, int n) {
    if (n <= 1) return 0;
    return sqrt(fmax(0, sum2 / (n - 1) - mean * mean * n / (n - 1)));
}

static uint64_t stdev_ns(const struct row *r) {
    double sum = 0, sum2 = 0;
    for (int i = 0; i < r->n_samples; i++) {
        double x = (double)r->samples_ns[i];
        sum += x;
        sum2 += x * x;
    }
    return (uint64_t)stdev(sum, sum2, (double)avg_ns(r), r->n_samples);
}

static double avg_ts(const struct row *r) {
    double sum = 0;
    for (int i = 0; i < r->n_samples; i++) sum += sample_ts(r, i);
    return sum / r->n_samples;
}

static double stdev_ts(const struct row *r) {
    double sum = 0, sum2 = 0;
    for (int i = 0; i < r->n_samples; i++) {
        double x = sample_ts(r, i);
        sum += x;
        sum2 += x * x;
    }
    return stdev(sum, sum2, sum / r->n_samples, r->n_samples);
}

/* llama-bench's record, in its order, with its types: a JSON string, true
 * or false (written 0 or 1 in CSV), or a number. */
enum kind { K_STR, K_BOOL, K_INT, K_FLOAT };
static const struct {
    const char *name;
    enum kind kind;
} fields[] = {
    {"build_commit", K_STR},  {"build_number", K_INT},    {"cpu_info", K_STR},      {"gpu_info", K_STR},
    {"backends", K_STR},      {"model_filename", K_STR},  {"model_type", K_STR},    {"model_size", K_INT},
    {"model_n_params", K_INT}, {"n_batch", K_INT},        {"n_ubatch", K_INT},      {"n_threads", K_INT},
    {"cpu_mask", K_STR},      {"cpu_strict", K_BOOL},     {"poll", K_INT},          {"type_k", K_STR},
    {"type_v", K_STR},        {"n_gpu_layers", K_INT},    {"n_cpu_moe", K_INT},     {"split_mode", K_STR},
    {"main_gpu", K_INT},      {"no_kv_offload", K_BOOL},  {"flash_attn", K_INT},    {"devices", K_STR},
    {"tensor_split", K_STR},  {"tensor_buft_overrides", K_STR}, {"load_mode", K_STR}, {"lazy_mode", K_STR},
    {"embeddings", K_BOOL},   {"no_op_offload", K_INT},   {"no_host", K_BOOL},      {"repack", K_BOOL},
    {"fit_target", K_INT},    {"fit_min_ctx", K_INT},     {"n_prompt", K_INT},      {"n_gen", K_INT},
    {"n_depth", K_INT},       {"test_time", K_STR},       {"avg_ns", K_INT},        {"stddev_ns", K_INT},
    {"avg_ts", K_FLOAT},      {"stddev_ts", K_FLOAT},
};
#define N_FIELDS ((int)(sizeof fields / sizeof fields[0]))

struct values {
    const char *v[N_FIELDS];
    char num[N_FIELDS][32];
};

static int field_index(const char *name) {
    int i = 0;
    while (i < N_FIELDS && strcmp(fields[i].name, name)) i++;
    LM_ASSERT(i < N_FIELDS);
    return i;
}

static void set_str(struct values *vs, const char *name, const char *s) { vs->v[field_index(name)] = s; }

static void set(struct values *vs, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set(struct values *vs, const char *name, const char *fmt, ...) {
    int i = field_index(name);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(vs->num[i], sizeof vs->num[i], fmt, ap);
    va_end(ap);
    vs->v[i] = vs->num[i];
}

static const char *cpu_info(void) {
    static char name[256];
    if (!name[0]) cpu_name(name, sizeof name);
    return name;
}

/* Each value as llama-bench's test::get_values() writes it: integers in
 * decimal, booleans 0 or 1, t/s as std::to_string (%f). */
static void row_values(const struct row *r, struct values *vs) {
    memset(vs->v, 0, sizeof vs->v);
    set_str(vs, "build_commit", LM_BUILD_COMMIT);
    set(vs, "build_number", "%d", LM_BUILD_NUMBER);
    set_str(vs, "cpu_info", cpu_info());
    set_str(vs, "gpu_info", "");
    set_str(vs, "backends", "CPU");
    set_str(vs, "model_filename", r->model->path);
    set_str(vs, "model_type", r->model->type);
    set(vs, "model_size", "%llu", (unsigned long long)r->model->size);
    set(vs, "model_n_params", "%llu", (unsigned long long)r->model->n_params);
    set(vs, "n_batch", "%d", r->n_batch);
    set(vs, "n_ubatch", "%d", r->n_batch);
    set(vs, "n_threads", "%d", r->n_threads);
    set_str(vs, "type_k", "f16"); /* lm's KV cache */
    set_str(vs, "type_v", "f16");
    set_str(vs, "load_mode", "mmap"); /* lm maps the file */
    /* what llama.cpp can do and lm cannot: off */
    static const char *const off[][2] = {
        {"cpu_mask", "0x0"},  {"cpu_strict", "0"}, {"poll", "0"},          {"n_gpu_layers", "0"},
        {"n_cpu_moe", "0"},   {"split_mode", "none"}, {"main_gpu", "0"},   {"no_kv_offload", "0"},
        {"flash_attn", "0"},  {"devices", "none"}, {"tensor_split", "0.00"}, {"tensor_buft_overrides", "none"},
        {"lazy_mode", "off"}, {"embeddings", "0"}, {"no_op_offload", "0"}, {"no_host", "0"},
        {"repack", "0"},      {"fit_target", "0"}, {"fit_min_ctx", "0"},
    };
    for (size_t i = 0; i < sizeof off / sizeof off[0]; i++) set_str(vs, off[i][0], off[i][1]);
    set(vs, "n_prompt", "%d", r->n_prompt);
    set(vs, "n_gen", "%d", r->n_gen);
    set(vs, "n_depth", "%d", r->n_depth);
    set_str(vs, "test_time", r->test_time);
    set(vs, "avg_ns", "%llu", (unsigned long long)avg_ns(r));
    set(vs, "stddev_ns", "%llu", (unsigned long long)stdev_ns(r));
    set(vs, "avg_ts", "%f", avg_ts(r));
    set(vs, "stddev_ts", "%f", stdev_ts(r));
    for (int i = 0; i < N_FIELDS; i++) LM_ASSERT(vs->v[i]);
}

/* ---- the four formats, as llama-bench prints them ------------------------ */

/* The markdown columns for a CPU backend: threads always, n_batch when -b
 * is not the default; a negative width aligns left. */
static const struct {
    const char *field, *title;
    int width;
} md_columns[] = {
    {"model", "model", -30},     {"size", "size", 10},       {"params", "params", 10}, {"backend", "backend", -10},
    {"n_threads", "threads", 7}, {"n_batch", "n_batch", 7},  {"test", "test", 15},     {"t/s", "t/s", 20},
};
#define N_MD_COLUMNS ((int)(sizeof md_columns / sizeof md_columns[0]))

struct printer {
    enum format fmt;
    bool batch_column; /* md */
    int n_rows;
};

static void print_header(struct printer *p) {
    if (p->fmt == FMT_JSON) {
        printf("[\n");
    } else if (p->fmt == FMT_CSV) {
        for (int i = 0; i < N_FIELDS; i++) printf("%s%s", fields[i].name, i + 1 < N_FIELDS ? "," : "\n");
    } else if (p->fmt == FMT_MD) {
        for (int line = 0; line < 2; line++) {
            printf("|");
            for (int i = 0; i < N_MD_COLUMNS; i++) {
                int w = md_columns[i].width;
                if (!strcmp(md_columns[i].field, "n_batch") && !p->batch_column) continue;
                if (line == 0) {
                    printf(" %*s |", w, md_columns[i].title);
                } else {
                    printf(" ");
                    for (int k = 1; k < abs(w); k++) putchar('-');
                    printf("%c |", w > 0 ? ':' : '-');
                }
            }
            printf("\n");
        }
    }
    fflush(stdout);
}

static void put_json_value(struct lm_buf *b, int i, const char *v) {
    if (fields[i].kind == K_STR) lm_buf_json_str(b, v, strlen(v));
    else if (fields[i].kind == K_BOOL) lm_buf_puts(b, strcmp(v, "0") ? "true" : "false");
    else lm_buf_puts(b, v);
}

/* samples_ns and samples_ts as llama-bench joins them: ", " between
 * values, t/s as a C++ stream writes a double (%g). */
static void put_samples(struct lm_buf *b, const struct row *r, const char *sep) {
    lm_buf_puts(b, "\"samples_ns\": [ ");
    for (int i = 0; i < r->n_samples; i++)
        lm_buf_printf(b, "%s%llu", i ? ", " : "", (unsigned long long)r->samples_ns[i]);
    lm_buf_printf(b, " ],%s\"samples_ts\": [ ", sep);
    for (int i = 0; i < r->n_samples; i++) lm_buf_printf(b, "%s%g", i ? ", " : "", sample_ts(r, i));
    lm_buf_puts(b, " ]");
}

static void md_cell(struct lm_buf *b, const struct row *r, const struct values *vs, const char *field) {
    const struct model_info *m = r->model;
    if (!strcmp(field, "model")) {
        lm_buf_puts(b, m->type);
    } else if (!strcmp(field, "size")) {
        if (m->size < 1024u * 1024 * 1024) lm_buf_printf(b, "%.2f MiB", (double)m->size / 1024.0 / 1024.0);
        else lm_buf_printf(b, "%.2f GiB", (double)m->size / 1024.0 / 1024.0 / 1024.0);
    } else if (!strcmp(field, "params")) {
        if (m->n_params < 1000u * 1000 * 1000) lm_buf_printf(b, "%.2f M", (double)m->n_params / 1e6);
        else lm_buf_printf(b, "%.2f B", (double)m->n_params / 1e9);
    } else if (!strcmp(field, "backend")) {
        lm_buf_puts(b, "CPU");
    } else if (!strcmp(field, "test")) {
        if (r->n_gen == 0) lm_buf_printf(b, "pp%d", r->n_prompt);
        else if (r->n_prompt == 0) lm_buf_printf(b, "tg%d", r->n_gen);
        else lm_buf_printf(b, "pp%d+tg%d", r->n_prompt, r->n_gen);
        if (r->n_depth > 0) lm_buf_printf(b, " @ d%d", r->n_depth);
    } else if (!strcmp(field, "t/s")) {
        lm_buf_printf(b, "%.2f ± %.2f", avg_ts(r), stdev_ts(r));
    } else {
        lm_buf_puts(b, vs->v[field_index(field)]);
    }
}

static void print_row(struct printer *p, const struct row *r) {
    struct values vs;
    row_values(r, &vs);
    struct lm_buf b = {0}, cell = {0};
    if (p->fmt == FMT_JSON) {
        lm_buf_puts(&b, p->n_rows ? ",\n  {\n" : "  {\n");
        for (int i = 0; i < N_FIELDS; i++) {
            lm_buf_printf(&b, "    \"%s\": ", fields[i].name);
            put_json_value(&b, i, vs.v[i]);
            lm_buf_puts(&b, ",\n");
        }
        lm_buf_puts(&b, "    ");
        put_samples(&b, r, "\n    ");
        lm_buf_puts(&b, "\n  }");
    } else if (p->fmt == FMT_JSONL) {
        lm_buf_putc(&b, '{');
        for (int i = 0; i < N_FIELDS; i++) {
            lm_buf_printf(&b, "\"%s\": ", fields[i].name);
            put_json_value(&b, i, vs.v[i]);
            lm_buf_puts(&b, ", ");
        }
        put_samples(&b, r, "");
        lm_buf_puts(&b, "}\n");
    } else if (p->fmt == FMT_CSV) {
        for (int i = 0; i < N_FIELDS; i++) {
            lm_buf_putc(&b, '"');
            for (const char *c = vs.v[i]; *c; c++) {
                if (*c == '"') lm_buf_putc(&b, '"');
                lm_buf_putc(&b, *c);
            }
            lm_buf_puts(&b, i + 1 < N_FIELDS ? "\"," : "\"\n");
        }
    } else {
        lm_buf_putc(&b, '|');
        for (int i = 0; i < N_MD_COLUMNS; i++) {
            if (!strcmp(md_columns[i].field, "n_batch") && !p->batch_column) continue;
            cell.len = 0;
            md_cell(&cell, r, &vs, md_columns[i].field);
            /* "±" is two bytes, so its column is one wider in bytes */
            int w = md_columns[i].width + !strcmp(md_columns[i].field, "t/s");
            lm_buf_printf(&b, " %*s |", w, cell.data);
        }
        lm_buf_putc(&b, '\n');
    }
    if (b.data) fwrite(b.data, 1, b.len, stdout);
    fflush(stdout);
    lm_buf_free(&b);
    lm_buf_free(&cell);
    p->n_rows++;
}

static void print_footer(const struct printer *p) {
    if (p->fmt == FMT_JSON) printf("\n]\n");
    else if (p->fmt == FMT_MD) printf("\nbuild: %s (%d)\n", LM_BUILD_COMMIT, LM_BUILD_NUMBER);
}

/* ---- running the tests -------------------------------------------------- */

struct runner {
    const struct opts *o;
    struct lm_ctx c;
    uint64_t rng;
    int32_t *tokens; /* c.n_batch */
    long long index, count; /* the row's, from 1, and how many: for --progress */
};

static void progress(const struct runner *ru, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void progress(const struct runner *ru, const char *fmt, ...) {
    if (!ru->o->progress) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "lm bench: benchmark %lld/%lld: ", ru->index, ru->count);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- memory read bandwidth (--bandwidth) ------------------------------
 * Threads of the pool sum disjoint chunks of a buffer far larger than the
 * caches, as a generated token streams the weights; the median of a few
 * passes. A sum the compiler cannot drop, in 8 independent lanes so that
 * the loop vectorizes and a core keeps many loads in flight. The fetch
 * runs 16 KB ahead, as the one-row kernels' does: a line fetched only a few
 * lines ahead arrives late and halves what one core reads. */
#define BW_BYTES ((size_t)512 << 20)
#define BW_CHUNK ((size_t)1 << 20)

struct bw_job {
    const uint64_t *buf;
    uint64_t sums[256]; /* per thread */
};

static void bw_task(void *arg, int task, int ith) {
    struct bw_job *j = arg;
    const uint64_t *p = j->buf + BW_CHUNK / 8 * (size_t)task;
    uint64_t s[8] = {0};
    for (size_t i = 0; i < BW_CHUNK / 8; i += 8) {
        __builtin_prefetch(p + i + 16384 / 8);
        for (int k = 0; k < 8; k++) s[k] += p[i + k];
    }
    for (int k = 0; k < 8; k++) j->sums[ith] += s[k];
}

/* GB/s (1e9 bytes) read by n_threads, or 0 if the buffer cannot be had.
 * The median pass: on a shared machine the best one can catch a moment when
 * the neighbours are idle and the worst one a moment when they are busy. */
#define BW_PASSES 9
static double read_bandwidth(int n_threads) {
    struct bw_job j = {0};
    uint64_t *buf = malloc(BW_BYTES);
    if (!buf) return 0;
    memset(buf, 1, BW_BYTES); /* pages mapped before the timing */
    j.buf = buf;
    struct lm_pool *pool = lm_pool_create(n_threads);
    uint64_t dt[BW_PASSES];
    for (int pass = 0; pass < BW_PASSES; pass++) {
        const uint64_t t0 = lm_time_ns();
        lm_pool_run(pool, (int)(BW_BYTES / BW_CHUNK), bw_task, &j);
        uint64_t d = lm_time_ns() - t0;
        int k = pass;
        for (; k > 0 && dt[k - 1] > d; k--) dt[k] = dt[k - 1];
        dt[k] = d;
    }
    lm_pool_free(pool);
    free(buf);
    uint64_t sum = 0;
    for (int i = 0; i < 256; i++) sum += j.sums[i];
    /* every byte is 1: the passes of 0x0101... words, a check that the reads happened */
    LM_ASSERT(sum == BW_PASSES * (BW_BYTES / 8) * 0x0101010101010101ull);
    const uint64_t median = dt[BW_PASSES / 2];
    return (double)BW_BYTES / (double)(median ? median : 1);
}

/* Random ids, as llama-bench's: what the tokens say does not change the work. */
static int32_t random_token(struct runner *ru) {
    ru->rng = ru->rng * 6364136223846793005ull + 1442695040888963407ull;
    return (int32_t)((ru->rng >> 33) % (uint64_t)ru->c.model->hp.n_vocab);
}

/* n tokens at positions pos.., in batches (llama-bench's test_prompt). */
static int run_prompt(struct runner *ru, int pos, int n, struct lm_err *err) {
    for (int i = 0; i < n; i += ru->c.n_batch) {
        int k = n - i < ru->c.n_batch ? n - i : ru->c.n_batch;
        for (int j = 0; j < k; j++) ru->tokens[j] = random_token(ru);
        if (lm_forward(&ru->c, ru->tokens, k, pos + i, err) < 0) return -1;
    }
    return 0;
}

/* n tokens one at a time from pos (test_gen). */
static int run_gen(struct runner *ru, int pos, int n, struct lm_err *err) {
    for (int i = 0; i < n; i++) {
        int32_t t = random_token(ru);
        if (lm_forward(&ru->c, &t, 1, pos + i, err) < 0) return -1;
    }
    return 0;
}

/* Warm-up, then the timed repetitions into r->samples_ns. The caller owns
 * ru->c and ru->tokens, made for this row. */
static int run_row(struct runner *ru, struct row *r, struct lm_err *err) {
    const int p = r->n_prompt, n = r->n_gen, d = r->n_depth, reps = ru->o->reps;
    if (!ru->o->no_warmup) {
        if (p > 0) progress(ru, "warmup prompt run");
        if (p > 0 && run_prompt(ru, 0, p, err) < 0) return -1;
        if (n > 0) progress(ru, "warmup generation run");
        if (n > 0 && run_gen(ru, p, 1, err) < 0) return -1;
    }
    r->samples_ns = lm_xcalloc((size_t)reps, sizeof *r->samples_ns);
    /* a recurrent state cannot be cut back to the depth: a copy is restored */
    void *depth_state = d > 0 && lm_ctx_seq_state_size(&ru->c) ? lm_xmalloc(lm_ctx_seq_state_size(&ru->c)) : NULL;
    int rc = 0;
    for (int i = 0; i < reps; i++) {
        if (d > 0) {
            progress(ru, "depth run %d/%d%s", i + 1, reps, i ? " (cached)" : "");
            if (i == 0 && (rc = run_prompt(ru, 0, d, err)) < 0) break;
            if (depth_state && i == 0) lm_ctx_seq_save(&ru->c, 0, depth_state);
            else if (depth_state) lm_ctx_seq_restore(&ru->c, 0, depth_state);
        }
        uint64_t t0 = lm_time_ns();
        if (p > 0) progress(ru, "prompt run %d/%d", i + 1, reps);
        if (p > 0 && (rc = run_prompt(ru, d, p, err)) < 0) break;
        if (n > 0) progress(ru, "generation run %d/%d", i + 1, reps);
        if (n > 0 && (rc = run_gen(ru, d + p, n, err)) < 0) break;
        r->samples_ns[r->n_samples++] = lm_time_ns() - t0;
    }
    free(depth_state);
    return rc;
}

/* --bandwidth, after a tg row: the bytes its tokens read per second against
 * what the machine can read with as many threads, measured right after the
 * row, as a shared machine's bandwidth varies with its neighbours' load. */
static void report_bandwidth(const struct row *r) {
    const double bw = read_bandwidth(r->n_threads);
    fprintf(stderr, "lm bench: read bandwidth with %d thread%s: %.1f GB/s\n", r->n_threads, r->n_threads > 1 ? "s" : "", bw);
    const double ts = avg_ts(r), gbs = (double)r->model->token_bytes * ts * 1e-9;
    fprintf(stderr, "lm bench: %s tg%d -t %d: %.1f MB of weights per token x %.2f t/s = %.2f GB/s, %.0f%% of %.1f GB/s\n",
            r->model->type, r->n_gen, r->n_threads, (double)r->model->token_bytes * 1e-6, ts, gbs,
            bw > 0 ? 100 * gbs / bw : 0.0, bw);
}

/* The rows of one model, in llama-bench's order; an exit code. */
static int bench_model(struct runner *ru, struct printer *pr, const struct lm_model *m, const struct model_info *mi,
                       const struct ints *tests) {
    const struct opts *o = ru->o;
    struct lm_err err;
    for (int ib = 0; ib < o->batch.n; ib++)
        for (int it = 0; it < o->threads.n; it++)
            for (int id = 0; id < o->depth.n; id++)
                for (int k = 0; k < tests->n; k += 2) {
                    struct row r = {.model = mi, .n_prompt = tests->v[k], .n_gen = tests->v[k + 1],
                                    .n_depth = o->depth.v[id], .n_batch = o->batch.v[ib], .n_threads = o->threads.v[it]};
                    ru->index++;
                    progress(ru, "starting");
                    struct lm_pool *pool = lm_pool_create(r.n_threads);
                    int rc = LM_EXIT_OK;
                    if (lm_ctx_init(&ru->c, m, pool, r.n_prompt + r.n_gen + r.n_depth, r.n_batch, &err) < 0) {
                        rc = lm_cli_fail(LM_EXIT_RUNTIME, "%s", err.msg);
                    } else {
                        time_t now = time(NULL);
                        strftime(r.test_time, sizeof r.test_time, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
                        ru->tokens = lm_xmalloc(sizeof *ru->tokens * (size_t)ru->c.n_batch);
                        if (run_row(ru, &r, &err) < 0) rc = lm_cli_fail(LM_EXIT_RUNTIME, "%s", err.msg);
                        else print_row(pr, &r);
                        if (rc == LM_EXIT_OK && o->bandwidth && r.n_prompt == 0 && r.n_gen > 0)
                            report_bandwidth(&r);
                        free(ru->tokens);
                    }
                    free(r.samples_ns);
                    lm_ctx_free(&ru->c);
                    lm_pool_free(pool);
                    if (rc != LM_EXIT_OK) return rc;
                }
    return LM_EXIT_OK;
}

static void free_opts(struct opts *o) {
    for (int i = 0; i < o->n_models; i++) free(o->models[i]);
    free(o->models);
    struct ints *lists[] = {&o->prompt, &o->gen, &o->pg, &o->depth, &o->batch, &o->threads};
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) free(lists[i]->v);
}

int cmd_bench(int argc, char **argv) {
    struct opts o = {.reps = 5};
    int rc = parse_flags(&o, argc, argv);
    if (rc != 0 || lm_cli_flags_only) {
        free_opts(&o);
        return rc < 0 ? LM_EXIT_USAGE : LM_EXIT_OK;
    }
    /* llama-bench's defaults, but for -b (lm's one batch size is llama.cpp's
     * -ub, whose default it takes) and -t (all CPUs, as lm run) */
    if (!o.prompt.n) push("-p", &o.prompt, 512);
    if (!o.gen.n) push("-n", &o.gen, 128);
    if (!o.depth.n) push("-d", &o.depth, 0);
    if (!o.batch.n) push("-b", &o.batch, LM_BATCH_DEFAULT);
    if (!o.threads.n) push("-t", &o.threads, lm_cpu_count());
    if (!o.n_models) {
        const char *path = lm_cli_model_path(NULL);
        if (!path) {
            free_opts(&o);
            return LM_EXIT_MODEL;
        }
        o.models = lm_xmalloc(sizeof *o.models);
        o.models[o.n_models++] = lm_xstrdup(path);
    }
    /* the tests of each combination, as (n_prompt, n_gen) pairs: pp, tg, pg */
    struct ints tests = {lm_xmalloc(sizeof *tests.v * 2 * (size_t)(o.prompt.n + o.gen.n + o.pg.n)), 0};
    for (int i = 0; i < o.prompt.n; i++)
        if (o.prompt.v[i] > 0) tests.v[tests.n++] = o.prompt.v[i], tests.v[tests.n++] = 0;
    for (int i = 0; i < o.gen.n; i++)
        if (o.gen.v[i] > 0) tests.v[tests.n++] = 0, tests.v[tests.n++] = o.gen.v[i];
    for (int i = 0; i < o.pg.n; i += 2)
        if (o.pg.v[i] > 0 || o.pg.v[i + 1] > 0) tests.v[tests.n++] = o.pg.v[i], tests.v[tests.n++] = o.pg.v[i + 1];

    struct printer pr = {.fmt = o.fmt, .batch_column = o.batch.n != 1 || o.batch.v[0] != LM_BATCH_DEFAULT};
    struct runner ru = {.o = &o, .rng = 12345};
    ru.count = (long long)o.n_models * o.batch.n * o.threads.n * o.depth.n * (tests.n / 2);
    print_header(&pr);
    for (int i = 0; i < o.n_models && rc == LM_EXIT_OK; i++) {
        struct lm_model m;
        struct lm_err err;
        struct model_info mi;
        if (lm_model_load(&m, o.models[i], &err) < 0) {
            rc = lm_cli_fail(LM_EXIT_MODEL, "%s", err.msg);
            break;
        }
        model_info(&m, o.models[i], &mi);
        rc = bench_model(&ru, &pr, &m, &mi, &tests);
        lm_model_free(&m);
    }
    if (rc == LM_EXIT_OK) print_footer(&pr);
    free(tests.v);
    free_opts(&o);
    return rc;
}
