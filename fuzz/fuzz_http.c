/* fuzz_http: bytes from a client through lm serve's request parser, and a
 * complete request's body through the JSON reader the routes use.
 *
 * Checked: a refusal has a 4xx/5xx status and a message; a complete
 * request lies inside the input (head, body, method, path), its length is
 * the head's plus Content-Length, and no prefix of it is complete already;
 * a body that parses as JSON writes out as JSON that parses again. */
#include "fuzz.h"
#include "lm/http.h"
#include "lm/json.h"

#include <string.h>

static bool inside(const char *p, size_t n, const uint8_t *data, size_t size) {
    return (const uint8_t *)p >= data && (const uint8_t *)p + n <= data + size;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) { return 0; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const struct lm_http_limits lim = {.max_head = 4096, .max_body = 16384};
    struct lm_http_request r;
    struct lm_err err = {{0}};
    int status;
    long long n = lm_http_parse(&r, (const char *)data, size, &lim, &status, &err);
    if (n == LM_HTTP_BAD) {
        FUZZ_CHECK(status >= 400 && status < 600 && err.msg[0]);
        return 0;
    }
    if (n == LM_HTTP_INCOMPLETE) return 0;
    FUZZ_CHECK(n > 0 && (size_t)n <= size && (size_t)n == r.head_len + r.body_len && r.body_len <= lim.max_body);
    FUZZ_CHECK(inside(r.method.s, r.method.n, data, size) && inside(r.path.s, r.path.n, data, size));
    FUZZ_CHECK(r.path.n >= 1 && r.path.s[0] == '/' && r.n_headers <= LM_HTTP_MAX_HEADERS);
    for (int i = 0; i < r.n_headers; i++)
        FUZZ_CHECK(inside(r.names[i].s, r.names[i].n, data, size) && inside(r.values[i].s, r.values[i].n, data, size));
    if (r.body_len) FUZZ_CHECK(inside(r.body, r.body_len, data, size));
    struct lm_http_request shorter;
    FUZZ_CHECK(lm_http_parse(&shorter, (const char *)data, (size_t)n - 1, &lim, &status, &err) == LM_HTTP_INCOMPLETE);
    struct lm_json v;
    if (lm_json_parse(&v, r.body ? r.body : "", r.body_len, &err) == 0) {
        struct lm_buf b = {0};
        lm_json_write(&b, &v, -1);
        struct lm_json again;
        bool finite = !strstr(b.data, "NaN") && !strstr(b.data, "Infinity"); /* overflowing numbers become inf */
        if (finite) {
            FUZZ_CHECK(lm_json_parse(&again, b.data, b.len, &err) == 0);
            lm_json_free(&again);
        }
        lm_buf_free(&b);
        lm_json_free(&v);
    }
    return 0;
}
