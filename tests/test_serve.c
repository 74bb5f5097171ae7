/* lm serve: the HTTP parser on memory, then the server as clients see it,
 * started on a free loopback port with the default model: the routes and
 * their errors, greedy replies equal to lm chat's and lm run's (alone and
 * with other requests running), hostile traffic, cancelation, and a clean
 * exit on SIGTERM. All traffic stays on 127.0.0.1 and every wait is bounded. */
#include "test.h"

#include "lm/http.h"
#include "lm/json.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- the parser ------------------------------------------------------------- */

static const struct lm_http_limits limits = {.max_head = 1024, .max_body = 100};

static long long parse(const char *s, struct lm_http_request *r, int *status) {
    struct lm_err err;
    return lm_http_parse(r, s, strlen(s), &limits, status, &err);
}

TEST(serve_http_parse) {
    struct lm_http_request r;
    int status;
    const char *get = "GET /v1/models?x=1 HTTP/1.1\r\nHost: a\r\nX-Two:  b c \r\n\r\n";
    EXPECT_EQ_INT(parse(get, &r, &status), (long long)strlen(get));
    EXPECT(lm_http_str_eq(r.method, "GET") && lm_http_str_eq(r.path, "/v1/models") && lm_http_str_eq(r.target, "/v1/models?x=1"));
    EXPECT(r.keep_alive && r.n_headers == 2 && lm_http_str_eq(*lm_http_header(&r, "x-two"), "b c"));
    /* Every proper prefix is incomplete, never an error. */
    char buf[256];
    for (size_t n = 0; n < strlen(get); n++) {
        memcpy(buf, get, n);
        struct lm_err err;
        EXPECT_EQ_INT(lm_http_parse(&r, buf, n, &limits, &status, &err), LM_HTTP_INCOMPLETE);
    }
    const char *post = "POST /x HTTP/1.0\nContent-Length: 5\nConnection: keep-alive\n\nhelloGET";
    EXPECT_EQ_INT(parse(post, &r, &status), (long long)strlen(post) - 3); /* what follows is the next request */
    EXPECT(r.body_len == 5 && !memcmp(r.body, "hello", 5) && r.keep_alive && r.minor == 0);
    EXPECT(parse("POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhel", &r, &status) == LM_HTTP_INCOMPLETE);
    EXPECT(parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", &r, &status) > 0 && !r.keep_alive);
    static const struct {
        const char *req;
        int status;
    } bad[] = {
        {"GET /\r\n\r\n", 400},
        {"GET  / HTTP/1.1\r\n\r\n", 400},
        {"G(T / HTTP/1.1\r\n\r\n", 400},
        {"GET x HTTP/1.1\r\n\r\n", 400},
        {"GET / HTTP/2.0\r\n\r\n", 505},
        {"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nName : x\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nA: x\r\n folded\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nA: x\x01y\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nA: x\ry\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n", 413},
        {"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", 413},
        {"POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        status = 0;
        if (parse(bad[i].req, &r, &status) != LM_HTTP_BAD || status != bad[i].status)
            test_fail(__FILE__, __LINE__, "case %zu: status %d, want %d", i, status, bad[i].status);
    }
    /* A head over the limit is refused before it ends; so are too many fields. */
    struct lm_buf big = {0};
    lm_buf_puts(&big, "GET / HTTP/1.1\r\nA: ");
    while (big.len < 2000) lm_buf_putc(&big, 'x');
    EXPECT(parse(big.data, &r, &status) == LM_HTTP_BAD && status == 431);
    big.len = 0;
    lm_buf_puts(&big, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < LM_HTTP_MAX_HEADERS + 1; i++) lm_buf_puts(&big, "A:1\r\n");
    lm_buf_puts(&big, "\r\n");
    struct lm_http_limits wide = {.max_head = 1 << 20, .max_body = 0};
    struct lm_err err;
    EXPECT(lm_http_parse(&r, big.data, big.len, &wide, &status, &err) == LM_HTTP_BAD && status == 431);
    lm_buf_free(&big);
    return 0;
}

/* ---- a server and a client ----------------------------------------------------- */

struct server {
    struct test_proc p;
    int port;
};

static struct lm_buf out, err_buf;

/* Connects to 127.0.0.1:port; reads time out after a minute. */
static int dial(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 60};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool send_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* Reads until the server closes (or a minute of silence). */
static void read_all(int fd, struct lm_buf *b) {
    char tmp[4096];
    ssize_t r;
    while ((r = recv(fd, tmp, sizeof tmp, 0)) > 0) lm_buf_append(b, tmp, (size_t)r);
}

/* Sends raw bytes, reads the whole answer (the request asks the server to
 * close); returns the status, 0 when the server closed without one. body
 * gets what follows the head. */
static int exchange(int port, const char *raw, size_t n, struct lm_buf *body) {
    int fd = dial(port);
    if (fd < 0) return -1;
    struct lm_buf resp = {0};
    if (send_all(fd, raw, n)) read_all(fd, &resp);
    close(fd);
    int status = 0;
    if (resp.len > 12 && !strncmp(resp.data, "HTTP/1.1 ", 9)) status = atoi(resp.data + 9);
    if (body) {
        body->len = 0;
        const char *h = resp.data ? strstr(resp.data, "\r\n\r\n") : NULL;
        if (h) lm_buf_append(body, h + 4, resp.len - (size_t)(h + 4 - resp.data));
        else lm_buf_append(body, "", 0);
    }
    lm_buf_free(&resp);
    return status;
}

static int request(int port, const char *method, const char *path, const char *json, const char *extra, struct lm_buf *body) {
    struct lm_buf req = {0};
    lm_buf_printf(&req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s", method, path, extra ? extra : "");
    if (json) lm_buf_printf(&req, "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s", strlen(json), json);
    else lm_buf_puts(&req, "\r\n");
    int status = exchange(port, req.data, req.len, body);
    lm_buf_free(&req);
    return status;
}

static bool server_start(struct server *s, const char *flags) {
    setenv("LM_MODEL", test_model_path(), 1);
    char args[512];
    snprintf(args, sizeof args, "serve --port 0 %s", flags);
    if (!test_proc_start(&s->p, args, -1)) return false;
    const char *key = "listening on http://127.0.0.1:";
    if (!test_proc_wait(&s->p, 0, key)) return false;
    s->port = atoi(strstr(s->p.seen.data, key) + strlen(key));
    struct lm_buf b = {0};
    int status = 0;
    for (int i = 0; i < 600 && status != 200; i++) { /* a minute for the model to load */
        status = request(s->port, "GET", "/health", NULL, NULL, &b);
        if (status != 200) usleep(100000);
    }
    lm_buf_free(&b);
    return status == 200;
}

static void server_stop(struct server *s);

/* server_start, or a failure (the server stopped) when it does not come up. */
static bool server_up(struct server *s, const char *flags) {
    if (server_start(s, flags)) return true;
    test_fail(__FILE__, __LINE__, "lm serve %s did not start", flags);
    server_stop(s);
    return false;
}

/* SIGTERM: the server must exit 0. */
static void server_stop(struct server *s) {
    if (s->p.pid > 0) kill(s->p.pid, SIGTERM);
    int rc = test_proc_end(&s->p, &err_buf);
    if (rc != 0) test_fail(__FILE__, __LINE__, "lm serve exited with %d; stderr:\n%s", rc, err_buf.data ? err_buf.data : "");
    lm_buf_free(&s->p.seen);
}

/* The string at key of a parsed JSON object, or "". */
static const char *str_at(const struct lm_json *v, const char *key) {
    const struct lm_json *s = lm_json_get(v, key);
    return s && s->type == LM_JSON_STRING ? s->str.s : "";
}

/* The content of a chat completion or the text of a completion. */
static char *reply_text(const char *body, int *completion_tokens) {
    struct lm_json v;
    struct lm_err e;
    if (lm_json_parse(&v, body, strlen(body), &e) < 0) return lm_xstrdup("(not JSON)");
    const struct lm_json *ch = lm_json_get(&v, "choices");
    const struct lm_json *c0 = ch && ch->type == LM_JSON_ARRAY && ch->arr.n ? &ch->arr.items[0] : NULL;
    const struct lm_json *msg = lm_json_get(c0, "message");
    char *r = lm_xstrdup(msg ? str_at(msg, "content") : str_at(c0, "text"));
    const struct lm_json *u = lm_json_get(lm_json_get(&v, "usage"), "completion_tokens");
    if (completion_tokens) *completion_tokens = u && u->type == LM_JSON_NUMBER ? (int)u->num.i : -1;
    lm_json_free(&v);
    return r;
}

/* Prompt tokens per forward pass on both sides of a comparison: batches of
 * up to 7 rows give each row the logits it gets alone (8-row blocks round
 * differently, see sched.c), so a conversation whose history the server
 * computed in other chunks (a prompt, then a reply token by token) still
 * gets lm chat's logits, whatever a near tie there is. */
#define CHUNK "7"

/* The reply lm chat --messages gives (greedy, n tokens at most). */

static char *chat_reference(const char *messages, int n, int *n_gen) {
    const char *path = test_tmp_path(".json");
    FILE *f = fopen(path, "wb");
    fputs(messages, f);
    fclose(f);
    char args[600];
    snprintf(args, sizeof args, "chat --messages '%s' --temp 0 -n %d -b " CHUNK " --json -q", path, n);
    if (test_run_lm(args, NULL, &out, &err_buf) != 0) return lm_xstrdup("(lm chat failed)");
    struct lm_json v;
    struct lm_err e;
    if (lm_json_parse(&v, out.data, out.len, &e) < 0) return lm_xstrdup("(not JSON)");
    char *r = lm_xstrdup(str_at(&v, "content"));
    const struct lm_json *u = lm_json_get(lm_json_get(&v, "usage"), "completion_tokens");
    if (n_gen) *n_gen = u ? (int)u->num.i : -1;
    lm_json_free(&v);
    return r;
}

/* Each with its own system prompt: conversations that share less than half
 * their prompt do not reuse each other's cache (see sched.c). */
static const char *const conversations[] = {
    "[{\"role\":\"system\",\"content\":\"Geography teacher.\"},{\"role\":\"user\",\"content\":\"What is the capital of France?\"}]",
    "[{\"role\":\"system\",\"content\":\"You are a pirate.\"},{\"role\":\"user\",\"content\":\"Say hello.\"}]",
    "[{\"role\":\"system\",\"content\":\"Poet\"},{\"role\":\"user\",\"content\":\"Write a haiku about the sea.\"}]",
    ("[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\",\"content\":\"Hi\"},"
     "{\"role\":\"assistant\",\"content\":\"Hello! How can I help?\"},{\"role\":\"user\",\"content\":\"Count from one to ten in words.\"}]"),
    "[{\"role\":\"system\",\"content\":\"Artist\"},{\"role\":\"user\",\"content\":\"Name three colours.\"}]",
};
#define N_CONV 5
#define N_TOKENS 32

static double metric_of(int port, const char *name);

struct call {
    int port, status, n_gen;
    const char *messages;
    char *text;
};

static void *call_chat(void *arg) {
    struct call *c = arg;
    struct lm_buf body = {0}, json = {0};
    lm_buf_printf(&json, "{\"model\":\"x\",\"messages\":%s,\"temperature\":0,\"max_tokens\":%d}", c->messages, N_TOKENS);
    c->status = request(c->port, "POST", "/v1/chat/completions", json.data, NULL, &body);
    c->text = reply_text(body.data ? body.data : "", &c->n_gen);
    lm_buf_free(&body);
    lm_buf_free(&json);
    return NULL;
}

/* Greedy replies through the server equal lm chat's, token for token (the
 * text and the count): one request alone, then five at once (on the five
 * slots not used yet: the first keeps its conversation). Then a conversation continues: its history comes from the
 * slot's cache (the reused count grows), and the reply is still lm chat's
 * for the whole conversation. */
TEST(serve_chat_equals_lm_chat) {
    if (!test_model_path()) return test_skip("no default model (scripts/get-model.sh)");
    char *want[N_CONV + 2];
    int want_n[N_CONV + 2];
    const char *first = "[{\"role\":\"system\",\"content\":\"Chemist\"},{\"role\":\"user\",\"content\":\"What is water made of?\"}]";
    for (int i = 0; i < N_CONV; i++) want[i] = chat_reference(conversations[i], N_TOKENS, &want_n[i]);
    want[N_CONV] = chat_reference(first, N_TOKENS, &want_n[N_CONV]);
    struct server s;
    if (!server_up(&s, "-np 6 -c 1024 -b " CHUNK)) return 1;
    struct call alone = {.port = s.port, .messages = first};
    call_chat(&alone);
    EXPECT_EQ_INT(alone.status, 200);
    EXPECT_EQ_STR(alone.text, want[N_CONV]);
    EXPECT_EQ_INT(alone.n_gen, want_n[N_CONV]);
    struct call calls[N_CONV];
    pthread_t t[N_CONV];
    for (int i = 0; i < N_CONV; i++) {
        calls[i] = (struct call){.port = s.port, .messages = conversations[i]};
        pthread_create(&t[i], NULL, call_chat, &calls[i]);
    }
    for (int i = 0; i < N_CONV; i++) {
        pthread_join(t[i], NULL);
        EXPECT_EQ_INT(calls[i].status, 200);
        if (strcmp(calls[i].text, want[i]) || calls[i].n_gen != want_n[i])
            test_fail(__FILE__, __LINE__, "conversation %d: \"%s\" (%d tokens), lm chat: \"%s\" (%d)", i, calls[i].text,
                      calls[i].n_gen, want[i], want_n[i]);
        free(calls[i].text);
    }
    /* The first conversation goes on: reply and a new question. */
    struct lm_buf more = {0};
    lm_buf_append(&more, first, strlen(first) - 1);
    lm_buf_puts(&more, ",{\"role\":\"assistant\",\"content\":");
    lm_buf_json_str(&more, alone.text, strlen(alone.text));
    lm_buf_puts(&more, "},{\"role\":\"user\",\"content\":\"And salt?\"}]");
    double reused = metric_of(s.port, "lm_prompt_tokens_reused_total");
    struct call next = {.port = s.port, .messages = more.data};
    call_chat(&next);
    EXPECT_EQ_INT(next.status, 200);
    EXPECT(metric_of(s.port, "lm_prompt_tokens_reused_total") - reused > 20);
    want[N_CONV + 1] = chat_reference(more.data, N_TOKENS, &want_n[N_CONV + 1]);
    if (strcmp(next.text, want[N_CONV + 1]))
        test_fail(__FILE__, __LINE__, "continued: \"%s\", lm chat: \"%s\"", next.text, want[N_CONV + 1]);
    free(alone.text);
    free(next.text);
    lm_buf_free(&more);
    server_stop(&s);
    for (int i = 0; i < N_CONV + 2; i++) free(want[i]);
    return 0;
}

/* Streams: the deltas of a stream add up to the whole reply, the stream
 * ends with data: [DONE], usage comes when asked for. Completions equal lm
 * run's continuation. */
TEST(serve_stream_and_completions) {
    if (!test_model_path()) return test_skip("no default model (scripts/get-model.sh)");
    struct server s;
    if (!server_up(&s, "-np 2 -c 512 -n 5")) return 1;
    struct lm_buf body = {0};
    /* -n: the length of a reply whose request sets no max_tokens */
    EXPECT_EQ_INT(request(s.port, "POST", "/v1/chat/completions",
                          "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"ignore_eos\":true}", NULL, &body),
                  200);
    int n_default;
    free(reply_text(body.data, &n_default));
    EXPECT_EQ_INT(n_default, 5);
    const char *chat = "{\"messages\":[{\"role\":\"user\",\"content\":\"What is the capital of France?\"}],\"temperature\":0,"
                       "\"max_tokens\":16";
    char json[512];
    snprintf(json, sizeof json, "%s}", chat);
    EXPECT_EQ_INT(request(s.port, "POST", "/v1/chat/completions", json, NULL, &body), 200);
    int n_whole;
    char *whole = reply_text(body.data, &n_whole);
    EXPECT(strlen(whole) > 0);
    snprintf(json, sizeof json, "%s,\"stream\":true,\"stream_options\":{\"include_usage\":true}}", chat);
    EXPECT_EQ_INT(request(s.port, "POST", "/v1/chat/completions", json, NULL, &body), 200);
    struct lm_buf joined = {0};
    int events = 0, usage_n = -1;
    bool done = false, finish = false;
    for (char *line = strtok(body.data, "\n"); line; line = strtok(NULL, "\n")) {
        EXPECT(!strncmp(line, "data: ", 6));
        if (!strcmp(line, "data: [DONE]")) {
            done = true;
            continue;
        }
        struct lm_json v;
        struct lm_err e;
        if (lm_json_parse(&v, line + 6, strlen(line + 6), &e) < 0) {
            test_fail(__FILE__, __LINE__, "event %d is not JSON: %s", events, e.msg);
            continue;
        }
        events++;
        EXPECT_EQ_STR(str_at(&v, "object"), "chat.completion.chunk");
        const struct lm_json *ch = lm_json_get(&v, "choices");
        if (ch && ch->arr.n) {
            const struct lm_json *d = lm_json_get(&ch->arr.items[0], "delta");
            lm_buf_puts(&joined, str_at(d, "content"));
            if (lm_json_get(&ch->arr.items[0], "finish_reason")->type == LM_JSON_STRING) finish = true;
        }
        const struct lm_json *u = lm_json_get(lm_json_get(&v, "usage"), "completion_tokens");
        if (u) usage_n = (int)u->num.i;
        lm_json_free(&v);
    }
    EXPECT(done && finish && events > 2);
    EXPECT_EQ_STR(joined.data, whole);
    EXPECT_EQ_INT(usage_n, n_whole);
    /* /v1/completions, a string prompt and the same as token ids, against lm run. */
    EXPECT_EQ_INT(test_run_lm("run --temp 0 -n 12 -q -p 'The capital of France is'", NULL, &out, &err_buf), 0);
    char *run_text = lm_xstrdup(out.data ? out.data : "");
    EXPECT_EQ_INT(request(s.port, "POST", "/v1/completions",
                          "{\"prompt\":\"The capital of France is\",\"temperature\":0,\"max_tokens\":12}", NULL, &body), 200);
    int n;
    char *text = reply_text(body.data, &n);
    EXPECT_EQ_STR(text, run_text);
    EXPECT_EQ_INT(n, 12);
    EXPECT_EQ_INT(request(s.port, "POST", "/tokenize", "{\"content\":\"The capital of France is\"}", NULL, &body), 200);
    struct lm_buf ids_req = {0};
    const char *toks = strchr(body.data, '[');
    lm_buf_printf(&ids_req, "{\"prompt\":%.*s,\"temperature\":0,\"max_tokens\":12}", (int)(strchr(toks, ']') + 1 - toks), toks);
    EXPECT_EQ_INT(request(s.port, "POST", "/v1/completions", ids_req.data, NULL, &body), 200);
    char *text2 = reply_text(body.data, &n);
    EXPECT_EQ_STR(text2, run_text);
    lm_buf_free(&ids_req);
    /* A stop string ends the text before it. */
    EXPECT_EQ_INT(request(s.port, "POST", "/v1/completions",
                          "{\"prompt\":\"The capital of France is\",\"temperature\":0,\"max_tokens\":12,\"stop\":[\"The\"]}",
                          NULL, &body), 200);
    char *text3 = reply_text(body.data, &n);
    EXPECT(!strstr(text3, "The") && !strncmp(run_text, text3, strlen(text3)));
    EXPECT_CONTAINS(body.data, "\"finish_reason\":\"stop\"");
    free(whole);
    free(text);
    free(text2);
    free(text3);
    free(run_text);
    lm_buf_free(&joined);
    lm_buf_free(&body);
    server_stop(&s);
    return 0;
}

/* Statuses and OpenAI's error object for each kind of bad request. */
TEST(serve_errors) {
    if (!test_model_path()) return test_skip("no default model (scripts/get-model.sh)");
    struct server s;
    if (!server_up(&s, "-np 1 -c 256 --api-key sekrit --max-body 2000")) return 1;
    const char *auth = "Authorization: Bearer sekrit\r\n";
    struct lm_buf body = {0};
    EXPECT_EQ_INT(request(s.port, "GET", "/health", NULL, NULL, &body), 200);          /* open */
    EXPECT_EQ_INT(request(s.port, "GET", "/v1/models", NULL, NULL, &body), 401);
    EXPECT_CONTAINS(body.data, "\"error\":{\"message\":");
    EXPECT_EQ_INT(request(s.port, "GET", "/v1/models", NULL, "Authorization: Bearer sekriT\r\n", &body), 401);
    EXPECT_EQ_INT(request(s.port, "GET", "/v1/models", NULL, "Authorization: Bearer sekrit2\r\n", &body), 401);
    EXPECT_EQ_INT(request(s.port, "GET", "/v1/models", NULL, auth, &body), 200);
    EXPECT_CONTAINS(body.data, "\"object\":\"list\"");
    EXPECT_EQ_INT(request(s.port, "GET", "/v1/nothing", NULL, auth, &body), 404);
    EXPECT_EQ_INT(request(s.port, "GET", "/v1/chat/completions", NULL, auth, &body), 405);
    EXPECT_EQ_INT(request(s.port, "POST", "/v1/chat/completions", "{\"messages\":[", auth, &body), 400);
    EXPECT_CONTAINS(body.data, "not valid JSON");
    EXPECT_EQ_INT(request(s.port, "POST", "/v1/chat/completions", "[]", auth, &body), 400);
    EXPECT_EQ_INT(request(s.port, "POST", "/v1/chat/completions", "{\"messages\":[]}", auth, &body), 400);
    EXPECT_EQ_INT(request(s.port, "POST", "/v1/chat/completions",
                          "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":\"hot\"}", auth, &body), 400);
    EXPECT_CONTAINS(body.data, "temperature");
    EXPECT_EQ_INT(request(s.port, "POST", "/v1/completions", "{\"prompt\":[1,2,99999999]}", auth, &body), 400);
    EXPECT_EQ_INT(request(s.port, "POST", "/v1/completions", "{\"prompt\":\"\"}", auth, &body), 400);
    EXPECT_EQ_INT(request(s.port, "POST", "/detokenize", "{\"tokens\":[-1]}", auth, &body), 400);
    struct lm_buf big = {0};
    lm_buf_puts(&big, "{\"prompt\":\"");
    while (big.len < 3000) lm_buf_puts(&big, "word ");
    lm_buf_puts(&big, "\"}");
    EXPECT_EQ_INT(request(s.port, "POST", "/v1/completions", big.data, auth, &body), 413);
    /* A prompt longer than a slot's context. */
    big.len = 0;
    lm_buf_puts(&big, "{\"prompt\":\"");
    while (big.len < 1900) lm_buf_puts(&big, "a b ");
    lm_buf_puts(&big, "\"}");
    EXPECT_EQ_INT(request(s.port, "POST", "/v1/completions", big.data, auth, &body), 400);
    EXPECT_CONTAINS(body.data, "context");
    EXPECT_EQ_INT(request(s.port, "GET", "/metrics", NULL, auth, &body), 200);
    EXPECT_CONTAINS(body.data, "lm_requests_total{status=\"401\"} 3");
    EXPECT_CONTAINS(body.data, "lm_queue_depth 0");
    lm_buf_free(&big);
    lm_buf_free(&body);
    server_stop(&s);
    return 0;
}

/* Waits until the server closes fd (true) or a limit passes (false); the
 * answer, if any, is appended to b. */
static bool closed_within(int fd, double seconds, struct lm_buf *b) {
    struct timeval tv = {.tv_sec = (time_t)seconds, .tv_usec = (suseconds_t)((seconds - (time_t)seconds) * 1e6)};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char tmp[4096];
    ssize_t r;
    while ((r = recv(fd, tmp, sizeof tmp, 0)) > 0) lm_buf_append(b, tmp, (size_t)r);
    return r == 0 || (r < 0 && errno == ECONNRESET);
}

static int status_of(const struct lm_buf *b) {
    return b->len > 12 && !strncmp(b->data, "HTTP/1.1 ", 9) ? atoi(b->data + 9) : 0;
}

struct loris {
    int port;
    bool closed;
    int status;
};

/* A slow-loris client: a head that never ends, a byte every 200 ms for at
 * most 10 s. The server (--timeout 2) must close it. */
static void *slow_loris(void *arg) {
    struct loris *l = arg;
    int fd = dial(l->port);
    if (fd < 0) return NULL;
    send_all(fd, "GET /health HTTP/1.1\r\nHost: x\r\n", 31);
    struct lm_buf b = {0};
    for (int i = 0; i < 50 && !l->closed; i++) {
        usleep(200000);
        if (!send_all(fd, "X", 1)) l->closed = true;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 0) > 0) l->closed = closed_within(fd, 1, &b);
    }
    l->status = status_of(&b);
    lm_buf_free(&b);
    close(fd);
    return NULL;
}

/* Hostile traffic gets its 4xx or a closed socket, and a good request made
 * at the same time (while slow clients hold connections) still succeeds. */
TEST(serve_hostile_traffic) {
    if (!test_model_path()) return test_skip("no default model (scripts/get-model.sh)");
    struct server s;
    if (!server_up(&s, "-np 2 -c 512 --timeout 2 --max-body 100000")) return 1;
    struct loris loris[3];
    pthread_t lt[3];
    for (int i = 0; i < 3; i++) {
        loris[i] = (struct loris){.port = s.port};
        pthread_create(&lt[i], NULL, slow_loris, &loris[i]);
    }
    struct lm_buf body = {0}, raw = {0};
    static const struct {
        const char *req;
        int status;
    } bad[] = {
        {"GARBAGE\r\n\r\n", 400},
        {"GET /health HTTP/9.9\r\n\r\n", 505},
        {"GET /health HTTP/1.1\r\nHost: x\r\n\x01\x02\x03: y\r\n\r\n", 400},
        {"POST /v1/completions HTTP/1.1\r\nContent-Length: 200000\r\n\r\n", 413},
        {"POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 501},
        {"POST /v1/chat/completions HTTP/1.1\r\nConnection: close\r\nContent-Length: 42\r\n\r\n"
         "{\"messages\":[{\"role\":\"user\",\"content\":\"\xff\"}]}", 400},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int st = exchange(s.port, bad[i].req, strlen(bad[i].req), &body);
        if (st != bad[i].status) test_fail(__FILE__, __LINE__, "case %zu: status %d, want %d", i, st, bad[i].status);
    }
    /* Huge headers: 431, refused before the head ends. */
    lm_buf_puts(&raw, "GET /health HTTP/1.1\r\nX-Big: ");
    while (raw.len < 40000) lm_buf_puts(&raw, "aaaaaaaaaa");
    EXPECT_EQ_INT(exchange(s.port, raw.data, raw.len, &body), 431);
    /* JSON nested 10,000 deep. */
    raw.len = 0;
    lm_buf_puts(&raw, "{\"messages\":");
    for (int i = 0; i < 10000; i++) lm_buf_putc(&raw, '[');
    for (int i = 0; i < 10000; i++) lm_buf_putc(&raw, ']');
    lm_buf_puts(&raw, "}");
    EXPECT_EQ_INT(request(s.port, "POST", "/v1/chat/completions", raw.data, NULL, &body), 400);
    EXPECT_CONTAINS(body.data, "nested too deeply");
    /* Random bytes. */
    raw.len = 0;
    uint32_t x = 12345;
    for (int i = 0; i < 4096; i++) x = x * 1103515245 + 12345, lm_buf_putc(&raw, (char)(x >> 16));
    int st = exchange(s.port, raw.data, raw.len, &body);
    EXPECT(st == 400 || st == 0);
    /* A truncated body: the server waits --timeout for the rest, answers 408 and closes. */
    int fd = dial(s.port);
    const char *trunc = "POST /v1/completions HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"prompt\":";
    send_all(fd, trunc, strlen(trunc));
    raw.len = 0;
    EXPECT(closed_within(fd, 10, &raw));
    EXPECT_EQ_INT(status_of(&raw), 408);
    close(fd);
    /* Meanwhile, a good request. */
    EXPECT_EQ_INT(request(s.port, "POST", "/v1/chat/completions",
                          "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":8}", NULL, &body), 200);
    EXPECT_CONTAINS(body.data, "\"completion_tokens\":");
    for (int i = 0; i < 3; i++) {
        pthread_join(lt[i], NULL);
        if (!loris[i].closed) test_fail(__FILE__, __LINE__, "slow client %d was not closed", i);
        EXPECT(loris[i].status == 408 || loris[i].status == 0);
    }
    EXPECT_EQ_INT(request(s.port, "GET", "/health", NULL, NULL, &body), 200);
    lm_buf_free(&raw);
    lm_buf_free(&body);
    server_stop(&s);
    return 0;
}

/* The value of a metric in the server's /metrics, or -1. */
static double metric_of(int port, const char *name) {
    struct lm_buf b = {0};
    double v = -1;
    if (request(port, "GET", "/metrics", NULL, NULL, &b) == 200) {
        char key[128];
        snprintf(key, sizeof key, "\n%s ", name);
        const char *p = strstr(b.data, key);
        if (p) v = atof(p + strlen(key));
    }
    lm_buf_free(&b);
    return v;
}

static const char long_stream[] = "POST /v1/completions HTTP/1.1\r\nContent-Length: %zu\r\n\r\n%s";
static const char long_json[] = "{\"prompt\":\"1, 2, 3, 4, 5,\",\"temperature\":0,\"max_tokens\":400,\"stream\":true}";

/* Starts a long streamed completion and reads its first event. */
static int start_long_stream(int port) {
    int fd = dial(port);
    char req[512];
    snprintf(req, sizeof req, long_stream, strlen(long_json), long_json);
    send_all(fd, req, strlen(req));
    struct lm_buf seen = {0};
    bool ok = test_read_until(fd, &seen, 0, "data: ");
    lm_buf_free(&seen);
    return ok ? fd : -1;
}

static void *call_long(void *arg) {
    int *port_status = arg;
    struct lm_buf b = {0};
    port_status[1] = request(port_status[0], "POST", "/v1/completions",
                             "{\"prompt\":\"Hello\",\"temperature\":0,\"max_tokens\":4}", NULL, &b);
    lm_buf_free(&b);
    return NULL;
}

/* A client that disconnects frees its slot at once; a full queue answers
 * 429; SIGTERM during a generation still exits 0. */
TEST(serve_cancel_queue_shutdown) {
    if (!test_model_path()) return test_skip("no default model (scripts/get-model.sh)");
    struct server s;
    if (!server_up(&s, "-np 1 -c 512 --queue 1")) return 1;
    int fd = start_long_stream(s.port);
    EXPECT(fd >= 0);
    EXPECT_EQ_INT((int)metric_of(s.port, "lm_slots_busy"), 1);
    /* One request waits in the queue; the next finds it full. */
    int waiting[2] = {s.port, 0};
    pthread_t t;
    pthread_create(&t, NULL, call_long, waiting);
    for (int i = 0; i < 100 && metric_of(s.port, "lm_queue_depth") != 1; i++) usleep(50000);
    struct lm_buf body = {0};
    EXPECT_EQ_INT(request(s.port, "POST", "/v1/completions", "{\"prompt\":\"Hi\",\"max_tokens\":2}", NULL, &body), 429);
    /* The slot is freed long before the 400 tokens: counted in tokens,
     * not seconds, which sanitizers stretch tenfold. Uncanceled, the two
     * requests would generate 404. */
    close(fd);
    pthread_join(t, NULL);
    EXPECT_EQ_INT(waiting[1], 200);
    for (int i = 0; i < 100 && metric_of(s.port, "lm_slots_busy") != 0; i++) usleep(20000);
    EXPECT_EQ_INT((int)metric_of(s.port, "lm_slots_busy"), 0);
    double generated = metric_of(s.port, "lm_tokens_predicted_total");
    if (!(generated >= 1 && generated < 300))
        test_fail(__FILE__, __LINE__, "%g tokens generated: the closed stream was not canceled early", generated);
    /* SIGTERM while a stream runs: the stream ends, the server exits 0. */
    fd = start_long_stream(s.port);
    EXPECT(fd >= 0);
    kill(s.p.pid, SIGTERM);
    struct lm_buf rest = {0};
    EXPECT(closed_within(fd, 20, &rest));
    close(fd);
    server_stop(&s);
    EXPECT_CONTAINS(err_buf.data, "stop interrupt");
    EXPECT_CONTAINS(err_buf.data, "lm serve: stopped");
    lm_buf_free(&rest);
    lm_buf_free(&body);
    return 0;
}

/* Runs a shell command; its output (stdout and what the command sends to
 * stderr) goes to output. Returns pclose's status (0: exited 0). */
static int run_command(const char *cmd, struct lm_buf *output) {
    output->len = 0;
    FILE *f = popen(cmd, "r");
    if (!f) return -1;
    char tmp[1024];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) lm_buf_append(output, tmp, n);
    lm_buf_append(output, "", 0);
    return pclose(f);
}

/* The official openai Python client and curl, as the README shows them. */
TEST(serve_openai_client_and_curl) {
    if (!test_model_path()) return test_skip("no default model (scripts/get-model.sh)");
    if (system("python3 -c 'import openai' 2>/dev/null") != 0)
        return test_skip("the openai Python package is absent (pip install openai)");
    if (system("curl --version >/dev/null 2>&1") != 0) return test_skip("curl is absent");
    struct server s;
    if (!server_up(&s, "-np 2 -c 512 --api-key sekrit")) return 1;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "python3 tests/serve_openai.py http://127.0.0.1:%d/v1 2>&1", s.port);
    struct lm_buf got = {0};
    if (run_command(cmd, &got) != 0 || strcmp(got.data, "ok\n")) test_fail(__FILE__, __LINE__, "openai client:\n%s", got.data ? got.data : "");
    snprintf(cmd, sizeof cmd,
             "curl -sS http://127.0.0.1:%d/v1/chat/completions -H 'Authorization: Bearer sekrit' "
             "-H 'Content-Type: application/json' -d '{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],"
             "\"max_tokens\":8,\"stream\":true}' 2>&1", s.port);
    EXPECT_EQ_INT(run_command(cmd, &got), 0);
    EXPECT_CONTAINS(got.data, "\"delta\":{\"role\":\"assistant\"");
    EXPECT_CONTAINS(got.data, "data: [DONE]");
    lm_buf_free(&got);
    server_stop(&s);
    return 0;
}

/* The chat page in a real browser (headless Chromium, $LM_CHROMIUM or
 * chromium on the PATH): a message typed and sent streams back, and the
 * reply in the DOM is lm chat's (the server's default sampling is greedy
 * here). The screenshot goes to $LM_SERVE_SCREENSHOT, else the test's temporary
 * folder. */
TEST(serve_page_in_browser) {
    if (!test_model_path()) return test_skip("no default model (scripts/get-model.sh)");
    const char *chromium = getenv("LM_CHROMIUM");
    if (!chromium || !*chromium) chromium = "chromium";
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "command -v '%s' >/dev/null 2>&1", chromium);
    if (system(cmd) != 0) return test_skip("no Chromium (apt-get install chromium, or set LM_CHROMIUM)");
    const char *message = "What is the capital of France?";
    char *want = chat_reference("[{\"role\":\"user\",\"content\":\"What is the capital of France?\"}]", 200, NULL);
    struct server s;
    if (!server_up(&s, "-np 2 -c 1024 --temp 0 -n 200 -b " CHUNK)) return 1;
    struct lm_buf page = {0};
    EXPECT_EQ_INT(request(s.port, "GET", "/", NULL, NULL, &page), 200);
    EXPECT(!strstr(page.data, "http://") && !strstr(page.data, "https://")); /* nothing fetched from elsewhere */
    const char *shot = getenv("LM_SERVE_SCREENSHOT") ? getenv("LM_SERVE_SCREENSHOT") : test_tmp_path(".png");
    snprintf(cmd, sizeof cmd, "python3 tests/serve_page.py '%s' http://127.0.0.1:%d/ '%s' '%s' 2>&1", chromium, s.port,
             message, shot);
    struct lm_buf got = {0};
    int rc = run_command(cmd, &got);
    struct lm_json v;
    struct lm_err e;
    const char *last = got.data ? strstr(got.data, "{\"reply\": ") : NULL; /* the JSON line the script prints */
    if (rc != 0 || !last || lm_json_parse(&v, last, strlen(last), &e) < 0) {
        test_fail(__FILE__, __LINE__, "the browser script failed:\n%s", got.data ? got.data : "");
    } else {
        /* the page sets no max_tokens: the server's -n 200 is lm chat's -n */
        EXPECT_EQ_STR(str_at(&v, "reply"), want);
        EXPECT_CONTAINS(str_at(&v, "speed"), "t/s");
        lm_json_free(&v);
    }
    EXPECT(access(shot, R_OK) == 0);
    free(want);
    lm_buf_free(&got);
    lm_buf_free(&page);
    server_stop(&s);
    return 0;
}

/* A model with a recurrent state (qwen35, scripts/make-arch-models.py): a slot's state
 * goes on from its end, or from its copy saved after the last prompt, or
 * starts over. On one slot: a longer prompt, a prefix of it (starts over),
 * the longer one again (resumes from the prefix's saved state): the two
 * greedy replies to the longer prompt must agree, and tokens were reused. */
TEST(serve_recurrent_model) {
    struct server s;
    if (!server_up(&s, "-np 1 -c 64 -m " LM_ARCH_MODELS "/qwen35.gguf")) return 1;
    static const char *const prompts[] = {"t5 t6 t7 t8 t9 t10 t11 t12", "t5 t6 t7 t8 t9 t10", "t5 t6 t7 t8 t9 t10 t11 t12"};
    char *replies[3];
    struct lm_buf body = {0};
    for (int i = 0; i < 3; i++) {
        char json[256];
        snprintf(json, sizeof json, "{\"prompt\":\"%s\",\"temperature\":0,\"max_tokens\":6}", prompts[i]);
        EXPECT_EQ_INT(request(s.port, "POST", "/v1/completions", json, NULL, &body), 200);
        replies[i] = reply_text(body.data ? body.data : "", NULL);
    }
    EXPECT(strlen(replies[0]) > 0);
    EXPECT_EQ_STR(replies[2], replies[0]);
    EXPECT(metric_of(s.port, "lm_prompt_tokens_reused_total") > 0);
    for (int i = 0; i < 3; i++) free(replies[i]);
    lm_buf_free(&body);
    server_stop(&s);
    return 0;
}
