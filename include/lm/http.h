/* http.h: a small, strict HTTP/1.1 request parser and response writers, for
 * lm serve.
 *
 * The parser works on memory (so the fuzzer calls it directly): give it the
 * bytes received so far and it says "incomplete", "bad" (with the status to
 * answer) or "complete" (with the request's length, so what follows is the
 * next request of a keep-alive connection). It never reads past len and
 * copies nothing: the request points into the buffer. Accepted (RFC 9112):
 * a request line "METHOD SP TARGET SP HTTP/1.x", header fields "name:
 * value", lines ending in CRLF or a bare LF, a body of Content-Length
 * bytes. Refused: a head over max_head bytes or with over LM_HTTP_MAX_HEADERS
 * fields (431), a body over max_body (413, known as soon as the head is
 * complete, before any of the body is read), Transfer-Encoding (chunked
 * request bodies: 501), conflicting Content-Lengths, obsolete line folding,
 * control characters, whitespace before a colon (400), versions other than
 * 1.0 and 1.1 (505).
 *
 * Left out on purpose: chunked request bodies, Expect: 100-continue,
 * pipelining beyond what keep-alive needs, absolute-form targets. */
#ifndef LM_HTTP_H
#define LM_HTTP_H

#include "lm/common.h"

#define LM_HTTP_MAX_HEADERS 64

struct lm_http_limits {
    size_t max_head; /* request line and header fields, bytes */
    size_t max_body; /* Content-Length, bytes */
};

struct lm_http_str {
    const char *s; /* into the parsed buffer; not NUL-terminated */
    size_t n;
};

struct lm_http_request {
    struct lm_http_str method, target, path; /* path: target without its ?query */
    int minor;                               /* HTTP/1.minor */
    struct lm_http_str names[LM_HTTP_MAX_HEADERS], values[LM_HTTP_MAX_HEADERS];
    int n_headers;
    bool keep_alive; /* 1.1 without "Connection: close", or 1.0 with keep-alive */
    size_t head_len; /* bytes up to the body */
    const char *body;
    size_t body_len;
};

enum { LM_HTTP_INCOMPLETE = 0, LM_HTTP_BAD = -1 };

/* Parses buf[0..len). Returns the length of the complete request (head and
 * body), LM_HTTP_INCOMPLETE when more bytes are needed, or LM_HTTP_BAD with
 * *status (400, 413, 431, 501, 505) and a one-line reason in err. */
long long lm_http_parse(struct lm_http_request *r, const char *buf, size_t len, const struct lm_http_limits *lim,
                        int *status, struct lm_err *err);

/* The value of header name (case-insensitive), or NULL. */
const struct lm_http_str *lm_http_header(const struct lm_http_request *r, const char *name);
/* Whether s equals the NUL-terminated c, ignoring ASCII case. */
bool lm_http_str_eq(struct lm_http_str s, const char *c);

/* "OK", "Not Found", ... ("Unknown" for codes lm never sends). */
const char *lm_http_reason(int status);
/* Appends a response head: status line, Content-Type, Content-Length (or,
 * when content_length < 0, an event stream without length that ends with
 * the connection), Connection, and extra (lines ending in \r\n, or NULL). */
void lm_http_head(struct lm_buf *b, int status, const char *content_type, long long content_length, bool keep_alive,
                  const char *extra);

#endif
