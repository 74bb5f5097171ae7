/* lm bench as llama-bench's users read it. tests/data/llama-bench.{jsonl,md,csv}
 * are what the real llama-bench printed for the default model
 * (`llama-bench -m models/default.gguf -p 16 -n 4 -r 1 -o FMT`); ours, for
 * the same tests, must carry the same fields with the same JSON types (read
 * by one reader, lm's JSON parser), the same markdown columns and the same
 * CSV header. Then what llama-bench does that its output shows: the order
 * of the rows, the test names, and the statistics. */
#include "test.h"

#include "lm/json.h"

#include <stdlib.h>

static struct lm_buf out, err;

static int bench(const char *args) {
    char cmd[512];
    setenv("LM_MODEL", test_model_path(), 1);
    snprintf(cmd, sizeof cmd, "bench %s", args);
    return test_run_lm(cmd, NULL, &out, &err);
}

/* Parses each line of text as one JSON value into v[0..*n) (at most max). */
static int parse_lines(const char *text, struct lm_json *v, int max, int *n) {
    *n = 0;
    for (const char *p = text; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        struct lm_err e;
        if (*n == max || lm_json_parse(&v[*n], p, len, &e) < 0) {
            test_fail(__FILE__, __LINE__, "line %d: %s", *n + 1, *n == max ? "too many lines" : e.msg);
            return -1;
        }
        ++*n;
        p = nl ? nl + 1 : NULL;
    }
    return 0;
}

static const char *json_type_name(const struct lm_json *v) {
    static const char *const names[] = {"null", "a boolean", "a fraction", "a string", "an array", "an object"};
    return v->type == LM_JSON_NUMBER && v->num.is_int ? "an integer" : names[v->type];
}

/* Every member of theirs is in ours, in the same place, with the same type
 * (integers and fractions told apart); ours has no others. */
static void expect_same_fields(const struct lm_json *theirs, const struct lm_json *ours, int record) {
    if (theirs->type != LM_JSON_OBJECT || ours->type != LM_JSON_OBJECT) {
        test_fail(__FILE__, __LINE__, "record %d: not an object", record);
        return;
    }
    for (size_t i = 0; i < theirs->obj.n; i++) {
        const struct lm_json_member *m = &theirs->obj.members[i];
        const struct lm_json *o = lm_json_get(ours, m->key);
        if (!o) {
            test_fail(__FILE__, __LINE__, "record %d: no field \"%s\"", record, m->key);
            continue;
        }
        if (strcmp(json_type_name(o), json_type_name(&m->value)))
            test_fail(__FILE__, __LINE__, "record %d: \"%s\" is %s, llama-bench's %s", record, m->key,
                      json_type_name(o), json_type_name(&m->value));
        if (i < ours->obj.n && strcmp(ours->obj.members[i].key, m->key))
            test_fail(__FILE__, __LINE__, "record %d: field %zu is \"%s\", llama-bench's \"%s\"", record, i,
                      ours->obj.members[i].key, m->key);
    }
    EXPECT_EQ_INT(ours->obj.n, theirs->obj.n);
}

static int64_t int_field(const struct lm_json *rec, const char *key) {
    const struct lm_json *v = lm_json_get(rec, key);
    return v && v->type == LM_JSON_NUMBER ? (int64_t)v->num.f : -1;
}

static int read_sample(const char *name, struct lm_buf *b) {
    char path[128];
    struct lm_err e;
    snprintf(path, sizeof path, "tests/data/llama-bench.%s", name);
    if (lm_read_file(path, b, &e) < 0) {
        test_fail(__FILE__, __LINE__, "%s", e.msg);
        return -1;
    }
    return 0;
}

TEST(bench_jsonl_fields_as_llamabench) {
    if (!test_model_path()) return test_skip("no default model (scripts/get-model.sh)");
    struct lm_buf sample = {0};
    struct lm_json theirs[4], ours[4], arr = {0};
    int n_theirs = 0, n_ours = 0;
    struct lm_err e;
    if (read_sample("jsonl", &sample) < 0 || parse_lines(sample.data, theirs, 4, &n_theirs) < 0) goto done;
    EXPECT_EQ_INT(n_theirs, 2);
    EXPECT_EQ_INT(bench("-p 16 -n 4 -r 1 -t 1 -o jsonl"), 0);
    if (parse_lines(out.data, ours, 4, &n_ours) < 0) goto done;
    EXPECT_EQ_INT(n_ours, n_theirs);
    for (int i = 0; i < n_ours && i < n_theirs; i++) {
        expect_same_fields(&theirs[i], &ours[i], i);
        /* the same tests of the same file */
        static const char *const same[] = {"n_prompt", "n_gen", "n_depth", "model_size", "model_n_params"};
        for (size_t k = 0; k < sizeof same / sizeof same[0]; k++)
            if (int_field(&ours[i], same[k]) != int_field(&theirs[i], same[k]))
                test_fail(__FILE__, __LINE__, "record %d: %s is %lld, llama-bench's %lld", i, same[k],
                          (long long)int_field(&ours[i], same[k]), (long long)int_field(&theirs[i], same[k]));
    }
    /* -o json: the same records, in one array */
    EXPECT_EQ_INT(bench("-p 16 -n 4 -r 1 -t 1 -o json"), 0);
    EXPECT_EQ_INT(lm_json_parse(&arr, out.data, out.len, &e), 0);
    EXPECT(arr.type == LM_JSON_ARRAY && (int)arr.arr.n == n_theirs);
    for (int i = 0; arr.type == LM_JSON_ARRAY && i < (int)arr.arr.n && i < n_theirs; i++)
        expect_same_fields(&theirs[i], &arr.arr.items[i], i);
done:
    lm_json_free(&arr);
    for (int i = 0; i < n_theirs; i++) lm_json_free(&theirs[i]);
    for (int i = 0; i < n_ours; i++) lm_json_free(&ours[i]);
    lm_buf_free(&sample);
    return 0;
}

/* Line i (from 0) of text, without its newline, into a static buffer. */
static const char *line_of(const char *text, int i) {
    static char buf[1024];
    const char *p = text;
    for (; p && i > 0; i--) p = (p = strchr(p, '\n')) ? p + 1 : NULL;
    if (!p) return "";
    size_t n = strcspn(p, "\n");
    snprintf(buf, sizeof buf, "%.*s", (int)(n < sizeof buf - 1 ? n : sizeof buf - 1), p);
    return buf;
}

/* The markdown cells of a row: the text between bars, spaces kept. */
static int md_cells(const char *line, char cells[][64], int max) {
    int n = 0;
    for (const char *p = strchr(line, '|'); p && p[1] && n < max; n++) {
        const char *q = strchr(p + 1, '|');
        if (!q) break;
        snprintf(cells[n], 64, "%.*s", (int)(q - p - 1), p + 1);
        p = q;
    }
    return n;
}

static const char *trim(char *s) {
    while (*s == ' ') s++;
    size_t n = strlen(s);
    while (n && s[n - 1] == ' ') s[--n] = 0;
    return s;
}

/* The header and its rule byte for byte, and per row the same cells where
 * the two tools describe the same thing: size, params, backend, test. */
TEST(bench_md_columns_as_llamabench) {
    if (!test_model_path()) return test_skip("no default model (scripts/get-model.sh)");
    struct lm_buf sample = {0};
    if (read_sample("md", &sample) < 0) return 0;
    EXPECT_EQ_INT(bench("-p 16 -n 4 -r 1 -t 1"), 0);
    char head[2][1024];
    for (int i = 0; i < 2; i++) {
        snprintf(head[i], sizeof head[i], "%s", line_of(sample.data, i));
        EXPECT_EQ_STR(line_of(out.data, i), head[i]);
    }
    char titles[16][64], theirs[16][64], ours[16][64];
    int n = md_cells(head[0], titles, 16);
    EXPECT_EQ_INT(n, 7);
    for (int row = 2; row < 4; row++) {
        char line[1024];
        snprintf(line, sizeof line, "%s", line_of(sample.data, row));
        EXPECT_EQ_INT(md_cells(line, theirs, 16), n);
        EXPECT_EQ_INT(md_cells(line_of(out.data, row), ours, 16), n);
        for (int c = 0; c < n; c++) {
            EXPECT_EQ_INT(strlen(ours[c]), strlen(theirs[c])); /* aligned alike */
            const char *t = trim(titles[c]);
            if (!strcmp(t, "size") || !strcmp(t, "params") || !strcmp(t, "backend") || !strcmp(t, "test"))
                EXPECT_EQ_STR(trim(ours[c]), trim(theirs[c]));
        }
    }
    EXPECT_EQ_STR(line_of(out.data, 4), "");
    EXPECT(!strncmp(line_of(out.data, 5), "build: ", 7));
    lm_buf_free(&sample);
    return 0;
}

TEST(bench_csv_header_as_llamabench) {
    if (!test_model_path()) return test_skip("no default model (scripts/get-model.sh)");
    struct lm_buf sample = {0};
    if (read_sample("csv", &sample) < 0) return 0;
    char head[2048];
    snprintf(head, sizeof head, "%s", line_of(sample.data, 0));
    EXPECT_EQ_INT(bench("-p 16 -n 0 -r 1 -t 1 -o csv"), 0);
    EXPECT_EQ_STR(line_of(out.data, 0), head);
    /* one quoted value per column */
    int cols = 1, quotes = 0;
    for (const char *p = head; *p; p++) cols += *p == ',';
    for (const char *p = line_of(out.data, 1); *p; p++) quotes += *p == '"';
    EXPECT_EQ_INT(quotes, 2 * cols);
    lm_buf_free(&sample);
    return 0;
}

/* Every combination is a row, in llama-bench's order: batch, threads,
 * depth, then the pp, tg and pg tests; the md test names say which. */
TEST(bench_rows_in_llamabench_order) {
    if (!test_model_path()) return test_skip("no default model (scripts/get-model.sh)");
    struct lm_json rec[16];
    int n = 0;
    EXPECT_EQ_INT(bench("-p 8 -n 2 -pg 4,1 -d 0,4 -t 1-2 -r 1 --no-warmup -o jsonl"), 0);
    if (parse_lines(out.data, rec, 16, &n) < 0) return 0;
    EXPECT_EQ_INT(n, 12);
    for (int i = 0; i < n; i++) {
        static const int tests[3][2] = {{8, 0}, {0, 2}, {4, 1}};
        EXPECT_EQ_INT(int_field(&rec[i], "n_threads"), 1 + i / 6);
        EXPECT_EQ_INT(int_field(&rec[i], "n_depth"), i / 3 % 2 * 4);
        EXPECT_EQ_INT(int_field(&rec[i], "n_prompt"), tests[i % 3][0]);
        EXPECT_EQ_INT(int_field(&rec[i], "n_gen"), tests[i % 3][1]);
        lm_json_free(&rec[i]);
    }
    EXPECT_EQ_INT(bench("-p 8 -n 2 -pg 4,1 -d 4 -b 4 -t 1 -r 1"), 0);
    static const char *const names[] = {"pp8 @ d4", "tg2 @ d4", "pp4+tg1 @ d4"};
    EXPECT_CONTAINS(line_of(out.data, 0), "| n_batch |"); /* -b other than the default: a column */
    for (int i = 0; i < 3; i++) EXPECT_CONTAINS(line_of(out.data, 2 + i), names[i]);
    return 0;
}

/* llama-bench's statistics from the samples: integer mean of the
 * nanoseconds, t/s per sample = tokens / time, their mean, and the sample
 * standard deviation of each. */
TEST(bench_statistics_as_llamabench) {
    if (!test_model_path()) return test_skip("no default model (scripts/get-model.sh)");
    struct lm_json rec[2];
    int n = 0;
    EXPECT_EQ_INT(bench("-p 0 -n 3 -pg 2,1 -r 3 -t 1 -o jsonl"), 0);
    if (parse_lines(out.data, rec, 2, &n) < 0) return 0;
    EXPECT_EQ_INT(n, 2);
    for (int i = 0; i < n; i++) {
        const struct lm_json *ns = lm_json_get(&rec[i], "samples_ns"), *ts = lm_json_get(&rec[i], "samples_ts");
        if (!ns || !ts || ns->type != LM_JSON_ARRAY || ts->type != LM_JSON_ARRAY || ns->arr.n != 3 || ts->arr.n != 3) {
            test_fail(__FILE__, __LINE__, "record %d: samples are not 3 numbers", i);
            continue;
        }
        double tokens = (double)(int_field(&rec[i], "n_prompt") + int_field(&rec[i], "n_gen"));
        double sum = 0, sum2 = 0, tsum = 0, tsum2 = 0;
        for (int k = 0; k < 3; k++) {
            double x = ns->arr.items[k].num.f, t = 1e9 * tokens / x;
            EXPECT_NEAR(ts->arr.items[k].num.f, t, t * 1e-5); /* %g: 6 digits */
            sum += x, sum2 += x * x, tsum += t, tsum2 += t * t;
        }
        double mean = floor(sum / 3), tmean = tsum / 3;
        EXPECT_EQ_INT(int_field(&rec[i], "avg_ns"), (int64_t)mean);
        EXPECT_NEAR((double)int_field(&rec[i], "stddev_ns"), sqrt(fmax(0, sum2 / 2 - mean * mean * 3 / 2)), 2);
        EXPECT_NEAR(lm_json_get(&rec[i], "avg_ts")->num.f, tmean, 1e-6 + tmean * 1e-9);
        EXPECT_NEAR(lm_json_get(&rec[i], "stddev_ts")->num.f, sqrt(fmax(0, tsum2 / 2 - tmean * tmean * 3 / 2)), 1e-5);
        lm_json_free(&rec[i]);
    }
    return 0;
}

/* Bad flags: one line on stderr, exit 1, before any model is read. */
TEST(bench_bad_flags) {
    static const char *const bad[] = {
        "-t 0", "-t 4-2", "-t 1-4*1", "-t 1,,2", "-p 1-", "-p x", "-p 1-100000", "-pg 1", "-pg 1,2,3", "-pg 1,-2",
        "-o sql", "-r 0", "-b 0", "--bogus", "-d", "-m",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char args[64];
        snprintf(args, sizeof args, "bench -m /nonexistent.gguf %s", bad[i]);
        int rc = test_run_lm(args, NULL, &out, &err);
        if (rc != 1 || out.len || !err.data || strncmp(err.data, "lm: ", 4) || strchr(err.data, '\n') != err.data + err.len - 1)
            test_fail(__FILE__, __LINE__, "lm bench %s: exit %d, stderr \"%s\"", bad[i], rc, err.data ? err.data : "");
    }
    return 0;
}
