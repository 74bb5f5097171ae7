/* json.h: a small, strict JSON reader and the writers lm's outputs need.
 *
 * Parsing (RFC 8259): the whole input must be one value, optionally
 * surrounded by whitespace. Strings must be valid UTF-8 without raw control
 * characters; \u escapes are decoded (surrogate pairs joined, lone surrogates
 * refused) and strings may contain NUL. Numbers without a fraction or
 * exponent that fit in int64 are kept exact (is_int). Nesting is bounded by
 * LM_JSON_MAX_DEPTH and objects with a repeated key are refused. Errors are
 * one line, "line L, column C: what", columns counted in bytes from 1.
 *
 * Writing follows Python's json.dumps, because chat templates were written
 * against it: ", " and ": " separators (or "," when indenting), floats as
 * Python's repr writes them, non-ASCII kept as UTF-8 unless ensure_ascii.
 *
 * Left out on purpose: comments, trailing commas, NaN/Infinity literals on
 * input (all non-standard), integers beyond int64 (read as doubles).
 */
#ifndef LM_JSON_H
#define LM_JSON_H

#include "lm/common.h"

#define LM_JSON_MAX_DEPTH 256

enum lm_json_type {
    LM_JSON_NULL,
    LM_JSON_BOOL,
    LM_JSON_NUMBER,
    LM_JSON_STRING,
    LM_JSON_ARRAY,
    LM_JSON_OBJECT,
};

struct lm_json_member;

struct lm_json {
    enum lm_json_type type;
    union {
        bool boolean;
        struct {
            double f;      /* always set */
            int64_t i;     /* exact value when is_int */
            bool is_int;
        } num;
        struct {
            char *s;       /* NUL-terminated (may also contain NULs) */
            size_t len;
        } str;
        struct {
            struct lm_json *items;
            size_t n;
        } arr;
        struct {
            struct lm_json_member *members;  /* in input order */
            size_t n;
        } obj;
    };
};

struct lm_json_member {
    char *key;
    size_t key_len;
    struct lm_json value;
};

/* Parses text[0..len) into v (which the caller frees with lm_json_free).
 * 0, or -1 with err set and v left NULL-typed. */
int lm_json_parse(struct lm_json *v, const char *text, size_t len, struct lm_err *err);
/* Frees what parse allocated; v becomes null. Safe on a null value. */
void lm_json_free(struct lm_json *v);

/* The member named key of an object, or NULL (absent, or v not an object). */
const struct lm_json *lm_json_get(const struct lm_json *v, const char *key);

/* Appends s[0..n) (UTF-8) as a quoted JSON string: escapes ", \ and control
 * characters (\n \r \t \b \f, else \u00XX); with ensure_ascii also every
 * non-ASCII character as \uXXXX (surrogate pairs above U+FFFF). */
void lm_json_write_str(struct lm_buf *b, const char *s, size_t n, bool ensure_ascii);
/* Appends v as Python's json.dumps(v, ensure_ascii=False, indent=indent)
 * would (indent < 0: one line). */
void lm_json_write(struct lm_buf *b, const struct lm_json *v, int indent);
/* Python's repr(float): shortest round-trip digits, "1.0", "1e-05",
 * "1e+16", "inf", "nan". out must hold 32 bytes. */
void lm_json_format_double(double f, char *out);


#endif
