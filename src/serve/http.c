/* http.c: see http.h. */
#include "lm/http.h"

#include <string.h>

static bool is_tchar(unsigned char c) { /* RFC 9110 token characters */
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

bool lm_http_str_eq(struct lm_http_str s, const char *c) {
    size_t n = strlen(c);
    if (s.n != n) return false;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)s.s[i]) != lower((unsigned char)c[i])) return false;
    return true;
}

const struct lm_http_str *lm_http_header(const struct lm_http_request *r, const char *name) {
    for (int i = 0; i < r->n_headers; i++)
        if (lm_http_str_eq(r->names[i], name)) return &r->values[i];
    return NULL;
}

/* Whether a comma-separated list (Connection: keep-alive, Upgrade) holds word. */
static bool list_has(struct lm_http_str v, const char *word) {
    size_t i = 0;
    while (i < v.n) {
        while (i < v.n && (v.s[i] == ' ' || v.s[i] == '\t' || v.s[i] == ',')) i++;
        size_t start = i;
        while (i < v.n && v.s[i] != ',') i++;
        size_t end = i;
        while (end > start && (v.s[end - 1] == ' ' || v.s[end - 1] == '\t')) end--;
        if (lm_http_str_eq((struct lm_http_str){v.s + start, end - start}, word)) return true;
    }
    return false;
}

/* The end of the line starting at p (at its LF), or NULL when not yet received. */
static const char *line_end(const char *p, const char *end) { return memchr(p, '\n', (size_t)(end - p)); }

static long long bad(int *status, int code, struct lm_err *err, const char *why) {
    *status = code;
    lm_errf(err, "%s", why);
    return LM_HTTP_BAD;
}

/* The request line: METHOD SP TARGET SP HTTP/1.x */
static long long request_line(struct lm_http_request *r, const char *p, const char *eol, int *status, struct lm_err *err) {
    const char *q = p;
    while (q < eol && is_tchar((unsigned char)*q)) q++;
    if (q == p || q >= eol || *q != ' ' || q - p > 16) return bad(status, 400, err, "malformed request line (method)");
    r->method = (struct lm_http_str){p, (size_t)(q - p)};
    p = ++q;
    while (q < eol && (unsigned char)*q > ' ' && *q != 0x7f) q++;
    if (q == p || q >= eol || *q != ' ' || *p != '/') return bad(status, 400, err, "malformed request line (target)");
    r->target = (struct lm_http_str){p, (size_t)(q - p)};
    const char *qm = memchr(p, '?', (size_t)(q - p));
    r->path = (struct lm_http_str){p, (size_t)((qm ? qm : q) - p)};
    p = q + 1;
    if (eol - p != 8 || memcmp(p, "HTTP/1.", 7) != 0 || p[7] < '0' || p[7] > '9')
        return bad(status, (eol - p == 8 && !memcmp(p, "HTTP/", 5)) ? 505 : 400, err, "malformed request line (version)");
    if (p[7] > '1') return bad(status, 505, err, "HTTP version not supported");
    r->minor = p[7] - '0';
    return 0;
}

/* One header field "name: value" into slot r->n_headers. */
static long long field(struct lm_http_request *r, const char *p, const char *eol, int *status, struct lm_err *err) {
    if (*p == ' ' || *p == '\t') return bad(status, 400, err, "obsolete line folding in the header");
    const char *q = p;
    while (q < eol && is_tchar((unsigned char)*q)) q++;
    if (q == p || q >= eol || *q != ':') return bad(status, 400, err, "malformed header field");
    if (r->n_headers == LM_HTTP_MAX_HEADERS) return bad(status, 431, err, "too many header fields");
    r->names[r->n_headers] = (struct lm_http_str){p, (size_t)(q - p)};
    q++;
    while (q < eol && (*q == ' ' || *q == '\t')) q++;
    const char *v = q, *vend = eol;
    for (const char *c = v; c < eol; c++)
        if (((unsigned char)*c < ' ' && *c != '\t') || *c == 0x7f) return bad(status, 400, err, "control character in a header value");
    while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t')) vend--;
    r->values[r->n_headers++] = (struct lm_http_str){v, (size_t)(vend - v)};
    return 0;
}

long long lm_http_parse(struct lm_http_request *r, const char *buf, size_t len, const struct lm_http_limits *lim,
                        int *status, struct lm_err *err) {
    memset(r, 0, sizeof *r);
    *status = 0;
    const char *p = buf, *end = buf + len;
    /* RFC 9112 2.2: ignore at least one empty line before the request line. */
    while (p < end && (*p == '\r' || *p == '\n') && p - buf < 4) p++;
    size_t head_limit = lim->max_head;
    const char *limit_end = len - (size_t)(p - buf) > head_limit ? p + head_limit : end;
    bool first = true;
    for (;;) {
        const char *eol = line_end(p, limit_end);
        if (!eol) {
            if (limit_end < end) return bad(status, 431, err, "request head too large");
            return LM_HTTP_INCOMPLETE;
        }
        const char *content_end = eol > p && eol[-1] == '\r' ? eol - 1 : eol;
        for (const char *c = p; c < content_end; c++)
            if (*c == '\r' || *c == 0) return bad(status, 400, err, "stray CR or NUL in the request head");
        if (first) {
            if (request_line(r, p, content_end, status, err) < 0) return LM_HTTP_BAD;
            first = false;
        } else if (content_end == p) {
            p = eol + 1;
            break;
        } else if (field(r, p, content_end, status, err) < 0) {
            return LM_HTTP_BAD;
        }
        p = eol + 1;
    }
    r->head_len = (size_t)(p - buf);
    if (lm_http_header(r, "transfer-encoding")) return bad(status, 501, err, "Transfer-Encoding is not supported (send Content-Length)");
    uint64_t body = 0;
    bool have_length = false;
    for (int i = 0; i < r->n_headers; i++) {
        if (!lm_http_str_eq(r->names[i], "content-length")) continue;
        struct lm_http_str v = r->values[i];
        uint64_t n = 0;
        if (!v.n) return bad(status, 400, err, "empty Content-Length");
        for (size_t k = 0; k < v.n; k++) {
            if (v.s[k] < '0' || v.s[k] > '9') return bad(status, 400, err, "Content-Length is not a number");
            if (!lm_mul_ok(n, 10, &n) || !lm_add_ok(n, (uint64_t)(v.s[k] - '0'), &n))
                return bad(status, 413, err, "request body too large");
        }
        if (have_length && n != body) return bad(status, 400, err, "conflicting Content-Length fields");
        body = n;
        have_length = true;
    }
    if (body > lim->max_body) return bad(status, 413, err, "request body too large");
    const struct lm_http_str *conn = lm_http_header(r, "connection");
    r->keep_alive = r->minor >= 1 ? !(conn && list_has(*conn, "close")) : (conn && list_has(*conn, "keep-alive"));
    if (len - r->head_len < body) return LM_HTTP_INCOMPLETE;
    r->body = buf + r->head_len;
    r->body_len = (size_t)body;
    return (long long)(r->head_len + body);
}

const char *lm_http_reason(int status) {
    switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

void lm_http_head(struct lm_buf *b, int status, const char *content_type, long long content_length, bool keep_alive,
                  const char *extra) {
    lm_buf_printf(b, "HTTP/1.1 %d %s\r\nServer: lm\r\nContent-Type: %s\r\n", status, lm_http_reason(status), content_type);
    if (content_length >= 0) lm_buf_printf(b, "Content-Length: %lld\r\n", content_length);
    else lm_buf_puts(b, "Cache-Control: no-cache\r\n");
    lm_buf_puts(b, keep_alive && content_length >= 0 ? "Connection: keep-alive\r\n" : "Connection: close\r\n");
    if (extra) lm_buf_puts(b, extra);
    lm_buf_puts(b, "\r\n");
}
