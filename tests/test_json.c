/* JSON reader and writers. Expected texts come from Python's json module
 * (json.dumps, repr) and from hand-counted line/column positions. */
#include "lm/json.h"
#include "test.h"

#include <stdlib.h>

static int parse_ok(const char *text, struct lm_json *v) {
    struct lm_err err = {{0}};
    int r = lm_json_parse(v, text, strlen(text), &err);
    if (r < 0) test_fail(__FILE__, __LINE__, "parse of %s failed: %s", text, err.msg);
    return r;
}

/* The error message for text, in a static buffer. */
static const char *parse_err(const char *text, size_t len) {
    static struct lm_err err;
    struct lm_json v;
    memset(&err, 0, sizeof err);
    if (lm_json_parse(&v, text, len, &err) == 0) {
        lm_json_free(&v);
        return "(parsed)";
    }
    return err.msg;
}

TEST(json_parse_values) {
    struct lm_json v;
    const char *text = " {\"s\": \"a\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83c\\udf89\\u0000z\", \"i\": -42, \"big\": 12345678901234567890,"
                       " \"f\": 2.5e-3, \"z\": -0, \"t\": true, \"n\": null, \"a\": [1, [], {}], \"u\": \"h\xc3\xa9\" } ";
    if (parse_ok(text, &v) < 0) return 0;
    EXPECT_EQ_INT(v.type, LM_JSON_OBJECT);
    EXPECT_EQ_INT(v.obj.n, 9);
    const struct lm_json *s = lm_json_get(&v, "s");
    EXPECT(s && s->type == LM_JSON_STRING);
    if (s) {
        static const char want[] = "a\"\\/\b\f\n\r\t\xc3\xa9\xf0\x9f\x8e\x89\0z";
        EXPECT_EQ_INT(s->str.len, sizeof want - 1);
        EXPECT(memcmp(s->str.s, want, sizeof want - 1) == 0);
    }
    const struct lm_json *i = lm_json_get(&v, "i"), *big = lm_json_get(&v, "big"), *f = lm_json_get(&v, "f");
    EXPECT(i && i->type == LM_JSON_NUMBER && i->num.is_int && i->num.i == -42);
    EXPECT(big && big->type == LM_JSON_NUMBER && !big->num.is_int);
    if (big) EXPECT_NEAR(big->num.f, 1.2345678901234567e19, 1e4);
    EXPECT(f && !f->num.is_int);
    if (f) EXPECT_NEAR(f->num.f, 0.0025, 1e-15);
    EXPECT(lm_json_get(&v, "z")->num.is_int);
    EXPECT(lm_json_get(&v, "t")->type == LM_JSON_BOOL && lm_json_get(&v, "t")->boolean);
    EXPECT(lm_json_get(&v, "n")->type == LM_JSON_NULL);
    const struct lm_json *a = lm_json_get(&v, "a");
    EXPECT(a && a->type == LM_JSON_ARRAY && a->arr.n == 3);
    if (a) {
        EXPECT(a->arr.items[1].type == LM_JSON_ARRAY && a->arr.items[1].arr.n == 0);
        EXPECT(a->arr.items[2].type == LM_JSON_OBJECT && a->arr.items[2].obj.n == 0);
    }
    EXPECT(lm_json_get(&v, "missing") == NULL);
    EXPECT(lm_json_get(a, "x") == NULL);  /* not an object */
    lm_json_free(&v);
    EXPECT_EQ_INT(v.type, LM_JSON_NULL);
    /* int64 limits stay exact */
    if (parse_ok("[9223372036854775807, -9223372036854775808, 9223372036854775808]", &v) == 0) {
        EXPECT(v.arr.items[0].num.is_int && v.arr.items[0].num.i == INT64_MAX);
        EXPECT(v.arr.items[1].num.is_int && v.arr.items[1].num.i == INT64_MIN);
        EXPECT(!v.arr.items[2].num.is_int);
        lm_json_free(&v);
    }
    return 0;
}

TEST(json_parse_errors) {
    /* positions counted by hand: line, then byte column from 1 */
    EXPECT_EQ_STR(parse_err("{\n  \"a\": tru\n}", 14), "line 2, column 8: unexpected character");
    EXPECT_EQ_STR(parse_err("[1, 2,]", 7), "line 1, column 7: unexpected character");
    EXPECT_EQ_STR(parse_err("{\"a\": 1,}", 9), "line 1, column 9: expected a string key");
    EXPECT_EQ_STR(parse_err("[1 2]", 5), "line 1, column 4: expected ',' or ']'");
    EXPECT_EQ_STR(parse_err("01", 2), "line 1, column 2: unexpected text after the value");
    EXPECT_EQ_STR(parse_err("", 0), "line 1, column 1: unexpected end of input");
    EXPECT_EQ_STR(parse_err("  \n ", 4), "line 2, column 2: unexpected end of input");
    EXPECT_EQ_STR(parse_err("\"abc", 4), "line 1, column 1: unterminated string");
    EXPECT_EQ_STR(parse_err("\"a\nb\"", 5), "line 1, column 3: control character in string (escape it)");
    EXPECT_EQ_STR(parse_err("\"\\x\"", 4), "line 1, column 3: invalid escape in string");
    EXPECT_EQ_STR(parse_err("\"\\ud800\"", 8), "line 1, column 8: lone surrogate in \\u escape");
    EXPECT_EQ_STR(parse_err("\"\\udc00\"", 8), "line 1, column 8: lone surrogate in \\u escape");
    EXPECT_EQ_STR(parse_err("\"\\u12g4\"", 8), "line 1, column 6: bad hex digit in \\u escape");
    EXPECT_EQ_STR(parse_err("\"\xc3\"", 3), "line 1, column 2: invalid UTF-8 in string");
    EXPECT_EQ_STR(parse_err("\"\xed\xa0\x80\"", 5), "line 1, column 2: invalid UTF-8 in string");  /* encoded surrogate */
    EXPECT_EQ_STR(parse_err("{\"a\": 1, \"a\": 2}", 16), "line 1, column 10: object has a repeated key");
    EXPECT_EQ_STR(parse_err("[1.]", 4), "line 1, column 4: expected a digit after '.'");
    EXPECT_EQ_STR(parse_err("-", 1), "line 1, column 2: expected a digit");
    EXPECT_EQ_STR(parse_err("1e", 2), "line 1, column 3: expected a digit in exponent");
    EXPECT_EQ_STR(parse_err("NaN", 3), "line 1, column 1: unexpected character");
    EXPECT_EQ_STR(parse_err("// c\n1", 6), "line 1, column 1: unexpected character");
    EXPECT_EQ_STR(parse_err("[1] x", 5), "line 1, column 5: unexpected text after the value");
    EXPECT_EQ_STR(parse_err("[1]\0", 4), "line 1, column 4: unexpected text after the value");
    /* a repeated key among many (the sorted check) */
    struct lm_buf b = {0};
    lm_buf_putc(&b, '{');
    for (int i = 0; i < 100; i++) lm_buf_printf(&b, "\"k%d\": %d, ", i, i);
    lm_buf_puts(&b, "\"k42\": 0}");
    EXPECT_CONTAINS(parse_err(b.data, b.len), "repeated key");
    lm_buf_free(&b);
    return 0;
}

TEST(json_depth_bound) {
    /* LM_JSON_MAX_DEPTH nested arrays parse; one more is refused, and a
     * huge nesting fails fast instead of overflowing the stack */
    struct lm_buf b = {0};
    for (int depth = LM_JSON_MAX_DEPTH; depth <= LM_JSON_MAX_DEPTH + 1; depth++) {
        b.len = 0;
        for (int i = 0; i < depth; i++) lm_buf_putc(&b, '[');
        for (int i = 0; i < depth; i++) lm_buf_putc(&b, ']');
        const char *e = parse_err(b.data, b.len);
        if (depth == LM_JSON_MAX_DEPTH) EXPECT_EQ_STR(e, "(parsed)");
        else EXPECT_CONTAINS(e, "nested too deeply");
    }
    b.len = 0;
    for (int i = 0; i < 1000000; i++) lm_buf_putc(&b, '[');
    EXPECT_CONTAINS(parse_err(b.data, b.len), "nested too deeply");
    lm_buf_free(&b);
    return 0;
}

TEST(json_write_str) {
    /* json.dumps('a"b\\c\n\t\x01\x7fé🎉', ensure_ascii=...) */
    static const char s[] = "a\"b\\c\n\t\x01\x7f\xc3\xa9\xf0\x9f\x8e\x89";
    struct lm_buf b = {0};
    lm_json_write_str(&b, s, sizeof s - 1, false);
    EXPECT_EQ_STR(b.data, "\"a\\\"b\\\\c\\n\\t\\u0001\x7f\xc3\xa9\xf0\x9f\x8e\x89\"");
    b.len = 0;
    lm_json_write_str(&b, s, sizeof s - 1, true);
    EXPECT_EQ_STR(b.data, "\"a\\\"b\\\\c\\n\\t\\u0001\\u007f\\u00e9\\ud83c\\udf89\"");
    b.len = 0;
    lm_json_write_str(&b, "a\0b", 3, false);
    EXPECT_EQ_STR(b.data, "\"a\\u0000b\"");
    lm_buf_free(&b);
    return 0;
}

TEST(json_write_value) {
    struct lm_json v;
    if (parse_ok("{\"a\": [1, 2.5, \"x\", null, true, {}], \"b\": {\"c\": []}}", &v) < 0) return 0;
    struct lm_buf b = {0};
    lm_json_write(&b, &v, -1);
    EXPECT_EQ_STR(b.data, "{\"a\": [1, 2.5, \"x\", null, true, {}], \"b\": {\"c\": []}}");
    b.len = 0;
    lm_json_write(&b, &v, 2);
    EXPECT_EQ_STR(b.data, "{\n  \"a\": [\n    1,\n    2.5,\n    \"x\",\n    null,\n    true,\n    {}\n  ],\n  \"b\": {\n    \"c\": []\n  }\n}");
    lm_buf_free(&b);
    lm_json_free(&v);
    return 0;
}

TEST(json_format_double) {
    /* Python's repr() of each */
    static const struct {
        double f;
        const char *repr;
    } cases[] = {
        {1.0, "1.0"}, {0.1, "0.1"}, {1e16, "1e+16"}, {1e15, "1000000000000000.0"}, {1e-5, "1e-05"},
        {0.0001, "0.0001"}, {1.5e300, "1.5e+300"}, {-0.0, "-0.0"}, {123456789.123, "123456789.123"},
        {2.5e-7, "2.5e-07"}, {1.0 / 3, "0.3333333333333333"}, {5e-324, "5e-324"},
        {1.7976931348623157e308, "1.7976931348623157e+308"}, {100.0, "100.0"},
        {12345678901234567.0, "1.2345678901234568e+16"}, {0.5, "0.5"}, {1e22, "1e+22"},
        {INFINITY, "inf"}, {-INFINITY, "-inf"}, {NAN, "nan"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[32];
        lm_json_format_double(cases[i].f, out);
        EXPECT_EQ_STR(out, cases[i].repr);
    }
    return 0;
}
