/* server.c: lm serve's sockets, connections and routes (serve.h).
 *
 * One thread per connection, at most MAX_CONNS: a client gets --timeout
 * seconds in all to send each request (so trickling bytes, slow-loris, does
 * not hold a thread) and to take each write of the reply. Over the limit a
 * connection is answered 503 and closed at once. */
#include "lm/serve.h"

#include "lm/chat.h"
#include "lm/http.h"
#include "lm/json.h"
#include "serve_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 128
#define MAX_STOPS 16
#define GRACE_SECONDS 3.0 /* after SIGTERM, how long running requests may go on */
#define MAX_STATUS 24

struct server {
    const struct lm_serve_opts *o;
    struct lm_engine e;
    struct lm_sched *sched;
    char *tmpl;           /* the chat template */
    const char *model_id; /* the model file's name */
    time_t created;
    struct lm_http_limits limits;
    int listen_fd;
    pthread_mutex_t mu;   /* guards what follows */
    pthread_cond_t idle;  /* n_conns went to 0 */
    bool ready, stopping;
    double t_stop;
    int n_conns;
    uint64_t next_id;
    struct { int code; uint64_t n; } status[MAX_STATUS];
};

struct conn {
    struct server *srv;
    int fd;
    char peer[64];
};

static volatile sig_atomic_t stop_signal;
static int wake_pipe[2] = {-1, -1};

static void on_stop_signal(int sig) {
    (void)sig;
    stop_signal = 1;
    if (write(wake_pipe[1], "x", 1) < 0) {} /* the main thread polls the pipe */
}

static bool stopping(struct server *s) {
    pthread_mutex_lock(&s->mu);
    bool r = s->stopping;
    pthread_mutex_unlock(&s->mu);
    return r;
}

static bool past_grace(struct server *s) {
    pthread_mutex_lock(&s->mu);
    bool r = s->stopping && lm_time() - s->t_stop > GRACE_SECONDS;
    pthread_mutex_unlock(&s->mu);
    return r;
}

static void count_status(struct server *s, int code) {
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < MAX_STATUS; i++) {
        if (s->status[i].code == code || !s->status[i].code) {
            s->status[i].code = code;
            s->status[i].n++;
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
}

/* ---- writing ---------------------------------------------------------------- */

static bool send_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false; /* gone, or stalled past SO_SNDTIMEO */
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* What a request did, for its log line. */
struct req_log {
    int status;
    int n_prompt, n_reused, n_gen;
    const char *stop;
};

static bool respond(struct conn *c, struct req_log *lg, int status, const char *type, const char *body, size_t n,
                    bool keep_alive, const char *extra) {
    struct lm_buf b = {0};
    lm_http_head(&b, status, type, (long long)n, keep_alive, extra);
    lm_buf_append(&b, body, n);
    bool ok = send_all(c->fd, b.data, b.len);
    lm_buf_free(&b);
    lg->status = status;
    return ok;
}

static const char *error_type(int status) {
    switch (status) {
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 429:
    case 503: return "unavailable_error";
    case 500: return "server_error";
    default: return "invalid_request_error";
    }
}

/* OpenAI's error object. */
static bool respond_error(struct conn *c, struct req_log *lg, int status, const char *msg, bool keep_alive,
                          const char *extra) {
    struct lm_buf b = {0};
    lm_buf_puts(&b, "{\"error\":{\"message\":");
    lm_buf_json_str(&b, msg, strlen(msg));
    lm_buf_printf(&b, ",\"type\":\"%s\",\"param\":null,\"code\":%d}}", error_type(status), status);
    bool ok = respond(c, lg, status, "application/json", b.data, b.len, keep_alive, extra);
    lm_buf_free(&b);
    return ok;
}

static bool respond_json(struct conn *c, struct req_log *lg, struct lm_buf *b, bool keep_alive) {
    return respond(c, lg, 200, "application/json", b->data, b->len, keep_alive, NULL);
}

/* ---- request fields ----------------------------------------------------------- */

/* A number field within [lo, hi]: 1 when present, 0 when absent or null, -1 (err set) when bad. */
static int get_num(const struct lm_json *body, const char *key, double lo, double hi, double *out, struct lm_err *err) {
    const struct lm_json *v = lm_json_get(body, key);
    if (!v || v->type == LM_JSON_NULL) return 0;
    if (v->type != LM_JSON_NUMBER) return lm_errf(err, "'%s' must be a number", key);
    if (!(v->num.f >= lo && v->num.f <= hi)) return lm_errf(err, "'%s' must be within [%g, %g]", key, lo, hi);
    *out = v->num.f;
    return 1;
}

static int get_bool(const struct lm_json *body, const char *key, bool *out, struct lm_err *err) {
    const struct lm_json *v = lm_json_get(body, key);
    if (!v || v->type == LM_JSON_NULL) return 0;
    if (v->type != LM_JSON_BOOL) return lm_errf(err, "'%s' must be true or false", key);
    *out = v->boolean;
    return 1;
}

struct gen_request {
    bool stream, include_usage;
};

/* Sampling, length and stop fields common to both completion routes, into j. */
static int gen_params(struct server *s, const struct lm_json *body, struct lm_job *j, struct gen_request *g,
                      struct lm_err *err) {
    struct lm_sampler_params sp = s->o->engine.sampling;
    double d;
    int r;
    if ((r = get_num(body, "temperature", 0, 100, &d, err)) < 0) return -1;
    if (r) sp.temp = (float)d;
    if ((r = get_num(body, "top_p", 0, 1, &d, err)) < 0) return -1;
    if (r) sp.top_p = (float)d;
    if ((r = get_num(body, "min_p", 0, 1, &d, err)) < 0) return -1;
    if (r) sp.min_p = (float)d;
    if ((r = get_num(body, "top_k", -1e9, 1e9, &d, err)) < 0) return -1;
    if (r) sp.top_k = (int)d;
    if ((r = get_num(body, "repeat_penalty", 0.01, 100, &d, err)) < 0) return -1;
    if (r) sp.repeat_penalty = (float)d;
    if ((r = get_num(body, "seed", -1, 9007199254740992.0, &d, err)) < 0) return -1;
    if (r && d >= 0) sp.seed = (uint64_t)d, sp.seed_set = true;
    if ((r = get_num(body, "presence_penalty", -2, 2, &d, err)) < 0) return -1;
    if (r) j->presence_penalty = (float)d;
    if ((r = get_num(body, "frequency_penalty", -2, 2, &d, err)) < 0) return -1;
    if (r) j->frequency_penalty = (float)d;
    j->n_predict = s->o->n_predict;
    if ((r = get_num(body, "max_tokens", -1, 1 << 30, &d, err)) < 0) return -1;
    if (r) j->n_predict = (int)d;
    if ((r = get_num(body, "max_completion_tokens", -1, 1 << 30, &d, err)) < 0) return -1;
    if (r) j->n_predict = (int)d;
    if ((r = get_num(body, "n", 1, 1, &d, err)) < 0) return lm_errf(err, "'n' must be 1 (one choice per request)");
    if (get_bool(body, "stream", &g->stream, err) < 0 || get_bool(body, "ignore_eos", &j->ignore_eog, err) < 0) return -1;
    const struct lm_json *so = lm_json_get(body, "stream_options");
    if (so && so->type != LM_JSON_NULL && so->type != LM_JSON_OBJECT) return lm_errf(err, "'stream_options' must be an object");
    if (get_bool(so, "include_usage", &g->include_usage, err) < 0) return -1;
    const struct lm_json *stop = lm_json_get(body, "stop");
    if (stop && stop->type != LM_JSON_NULL) {
        size_t n = stop->type == LM_JSON_ARRAY ? stop->arr.n : 1;
        if (stop->type != LM_JSON_STRING && stop->type != LM_JSON_ARRAY) return lm_errf(err, "'stop' must be a string or an array of strings");
        if (n > MAX_STOPS) return lm_errf(err, "'stop' has more than %d strings", MAX_STOPS);
        j->stops = lm_xcalloc(n, sizeof *j->stops);
        for (size_t i = 0; i < n; i++) {
            const struct lm_json *v = stop->type == LM_JSON_ARRAY ? &stop->arr.items[i] : stop;
            if (v->type != LM_JSON_STRING || !v->str.len || memchr(v->str.s, 0, v->str.len))
                return lm_errf(err, "'stop' strings must be non-empty strings without NUL characters");
            j->stops[j->n_stops++] = lm_xstrndup(v->str.s, v->str.len);
        }
    }
    if (lm_sampler_init(&j->sampler, &sp, s->e.model.hp.n_vocab, err) < 0) return -1;
    return 0;
}

/* ---- generation ---------------------------------------------------------------- */

/* Whether the peer closed its end (a client that gave up). */
static bool peer_gone(int fd) {
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return false;
    if (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) return true;
    char ch;
    return recv(fd, &ch, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

/* A streamed reply's text split into answer and thinking (<think>...</think>). */
struct split {
    struct lm_think_filter think;
    struct lm_buf content, reasoning;
};

static void split_out(void *ud, const char *text, size_t n, bool thinking) {
    struct split *sp = ud;
    lm_buf_append(thinking ? &sp->reasoning : &sp->content, text, n);
}

static const char *finish_reason(enum lm_stop_reason r) {
    return r == LM_STOP_LENGTH || r == LM_STOP_CONTEXT ? "length" : "stop";
}

struct completion {
    bool chat;
    const char *id;
    bool think_opened; /* the prompt ended inside <think> */
};

static void usage_json(struct lm_buf *b, const struct lm_job *j) {
    lm_buf_printf(b, "\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,\"total_tokens\":%d}", j->n_prompt,
                  j->n_gen, j->n_prompt + j->n_gen);
}

/* The start of a response object or a streamed chunk. */
static void object_head(struct server *s, struct lm_buf *b, const struct completion *cp, bool chunk) {
    const char *obj = cp->chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion";
    lm_buf_printf(b, "{\"id\":\"%s\",\"object\":\"%s\",\"created\":%lld,\"model\":", cp->id, obj, (long long)s->created);
    lm_buf_json_str(b, s->model_id, strlen(s->model_id));
    lm_buf_puts(b, ",\"choices\":[");
}

static bool send_event(struct conn *c, struct lm_buf *b) {
    lm_buf_puts(b, "\n\n");
    bool ok = send_all(c->fd, b->data, b->len);
    b->len = 0;
    return ok;
}

/* One streamed chunk with the new answer and thinking text, and the finish reason when done. */
static bool stream_chunk(struct conn *c, const struct completion *cp, struct split *sp, const char *finish, bool first) {
    struct lm_buf b = {0};
    lm_buf_puts(&b, "data: ");
    object_head(c->srv, &b, cp, true);
    if (cp->chat) {
        lm_buf_puts(&b, "{\"index\":0,\"delta\":{");
        const char *sep = "";
        if (first) lm_buf_puts(&b, "\"role\":\"assistant\""), sep = ",";
        if (sp->content.len || (!finish && !sp->reasoning.len && !first)) {
            lm_buf_printf(&b, "%s\"content\":", sep);
            lm_buf_json_str(&b, sp->content.data ? sp->content.data : "", sp->content.len);
            sep = ",";
        }
        if (sp->reasoning.len) {
            lm_buf_printf(&b, "%s\"reasoning_content\":", sep);
            lm_buf_json_str(&b, sp->reasoning.data, sp->reasoning.len);
        }
        lm_buf_puts(&b, "}");
    } else {
        lm_buf_puts(&b, "{\"index\":0,\"text\":");
        lm_buf_json_str(&b, sp->content.data ? sp->content.data : "", sp->content.len);
        lm_buf_puts(&b, ",\"logprobs\":null");
    }
    if (finish) lm_buf_printf(&b, ",\"finish_reason\":\"%s\"}]", finish);
    else lm_buf_puts(&b, ",\"finish_reason\":null}]");
    lm_buf_puts(&b, "}");
    bool ok = send_event(c, &b);
    lm_buf_free(&b);
    sp->content.len = sp->reasoning.len = 0;
    return ok;
}

/* Submits j and answers with what it generates, streamed or whole. Returns
 * whether the connection may stay open. */
static bool generate(struct conn *c, struct req_log *lg, struct lm_job *j, const struct completion *cp,
                     const struct gen_request *g, bool keep_alive) {
    struct server *s = c->srv;
    lg->n_prompt = j->n_prompt;
    j->streamed = g->stream;
    if (lm_sched_submit(s->sched, j) < 0)
        return respond_error(c, lg, stopping(s) ? 503 : 429, stopping(s) ? "the server is shutting down" :
                             "too many requests are waiting: try again later", keep_alive, "Retry-After: 1\r\n") && keep_alive;
    struct split sp = {0};
    sp.think = (struct lm_think_filter){.keep_thinking = true, .in_think = cp->think_opened, .out = split_out, .ud = &sp};
    struct lm_buf piece = {0};
    bool ok = true, done = false, first = true;
    if (g->stream) {
        struct lm_buf h = {0};
        lm_http_head(&h, 200, "text/event-stream", -1, false, NULL);
        ok = send_all(c->fd, h.data, h.len);
        lm_buf_free(&h);
        lg->status = 200;
    }
    while (!done) {
        piece.len = 0;
        done = lm_sched_take(s->sched, j, &piece, 100);
        if (ok && cp->chat) lm_think_feed(&sp.think, piece.data ? piece.data : "", piece.len);
        else if (ok) lm_buf_append(&sp.content, piece.data ? piece.data : "", piece.len); /* a completion is raw text */
        if (done && cp->chat) lm_think_flush(&sp.think);
        if (ok && g->stream && (sp.content.len || sp.reasoning.len || first) && !done) {
            ok = stream_chunk(c, cp, &sp, NULL, first);
            first = false;
        }
        if (!done && (!ok || peer_gone(c->fd) || past_grace(s))) {
            lm_sched_cancel(s->sched, j);
            ok = ok && !peer_gone(c->fd);
        }
    }
    lg->n_gen = j->n_gen;
    lg->n_reused = j->n_reused;
    lg->stop = lm_stop_reason_name(j->stop);
    if (ok && g->stream) {
        ok = stream_chunk(c, cp, &sp, finish_reason(j->stop), first);
        struct lm_buf b = {0};
        if (ok && g->include_usage) {
            lm_buf_puts(&b, "data: ");
            object_head(s, &b, cp, true);
            lm_buf_puts(&b, "],");
            usage_json(&b, j);
            lm_buf_puts(&b, "}");
            ok = send_event(c, &b);
        }
        lm_buf_puts(&b, "data: [DONE]");
        if (ok) ok = send_event(c, &b);
        lm_buf_free(&b);
        keep_alive = false; /* an event stream ends with its connection */
    } else if (ok) {
        struct lm_buf b = {0};
        object_head(s, &b, cp, false);
        if (cp->chat) {
            lm_buf_puts(&b, "{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
            lm_buf_json_str(&b, sp.content.data ? sp.content.data : "", sp.content.len);
            if (sp.reasoning.len) {
                lm_buf_puts(&b, ",\"reasoning_content\":");
                lm_buf_json_str(&b, sp.reasoning.data, sp.reasoning.len);
            }
            lm_buf_puts(&b, "}");
        } else {
            lm_buf_puts(&b, "{\"index\":0,\"text\":");
            lm_buf_json_str(&b, sp.content.data ? sp.content.data : "", sp.content.len);
            lm_buf_puts(&b, ",\"logprobs\":null");
        }
        lm_buf_printf(&b, ",\"finish_reason\":\"%s\"}],", finish_reason(j->stop));
        usage_json(&b, j);
        lm_buf_puts(&b, "}");
        ok = respond_json(c, lg, &b, keep_alive);
        lm_buf_free(&b);
    }
    lm_think_free(&sp.think);
    lm_buf_free(&sp.content);
    lm_buf_free(&sp.reasoning);
    lm_buf_free(&piece);
    return ok && keep_alive;
}

/* ---- routes ------------------------------------------------------------------- */

static void next_id(struct server *s, const char *prefix, char out[48]) {
    pthread_mutex_lock(&s->mu);
    uint64_t n = ++s->next_id;
    pthread_mutex_unlock(&s->mu);
    snprintf(out, 48, "%s-%llu-%llu", prefix, (unsigned long long)s->created, (unsigned long long)n);
}

/* The job's prompt must leave room for at least one token. */
static int check_prompt(struct server *s, struct lm_job *j, struct lm_err *err) {
    if (j->n_prompt == 0) return lm_errf(err, "the prompt is empty");
    int n_ctx = lm_sched_n_ctx(s->sched);
    if (j->n_prompt >= n_ctx)
        return lm_errf(err, "the prompt has %d tokens; the context of a slot holds %d (see -c)", j->n_prompt, n_ctx);
    return 0;
}

static bool chat_completions(struct conn *c, struct req_log *lg, const struct lm_json *body, bool keep_alive) {
    struct server *s = c->srv;
    struct lm_err err;
    struct lm_job j = {0};
    lm_job_init(&j);
    struct gen_request g = {0};
    struct lm_chat chat;
    lm_chat_init(&chat, &s->e.tok, s->tmpl, strlen(s->tmpl));
    struct lm_buf msgs = {0}, text = {0};
    struct lm_tokens ids = {0};
    char warn[160];
    bool ok;
    const struct lm_json *m = lm_json_get(body, "messages");
    int rc = -1;
    if (!m || m->type != LM_JSON_ARRAY || !m->arr.n) lm_errf(&err, "'messages' must be a non-empty array");
    else if (gen_params(s, body, &j, &g, &err) == 0) {
        lm_json_write(&msgs, m, -1);
        if (lm_chat_from_json(&chat, msgs.data, msgs.len, &err) == 0 &&
            lm_chat_render(&chat, true, &text, &ids, warn, &err) == 0) {
            j.prompt = ids.ids;
            j.n_prompt = (int)ids.n;
            ids.ids = NULL;
            rc = check_prompt(s, &j, &err);
        }
    }
    if (rc < 0) {
        ok = respond_error(c, lg, 400, err.msg, keep_alive, NULL) && keep_alive;
    } else {
        char id[48];
        next_id(s, "chatcmpl", id);
        struct completion cp = {.chat = true, .id = id, .think_opened = lm_think_opened(text.data ? text.data : "", text.len)};
        ok = generate(c, lg, &j, &cp, &g, keep_alive);
    }
    lm_job_free(&j);
    lm_chat_free(&chat);
    lm_buf_free(&msgs);
    lm_buf_free(&text);
    lm_tokens_free(&ids);
    return ok;
}

/* A prompt: a string, an array of token ids, or an array of one string. */
static int completion_prompt(struct server *s, const struct lm_json *p, struct lm_job *j, struct lm_err *err) {
    if (p && p->type == LM_JSON_ARRAY && p->arr.n == 1 && p->arr.items[0].type == LM_JSON_STRING) p = &p->arr.items[0];
    if (p && p->type == LM_JSON_STRING) {
        struct lm_tokens ids = {0};
        if (lm_tokenizer_encode(&s->e.tok, p->str.s, p->str.len, s->e.tok.add_bos, true, &ids, err) < 0) {
            lm_tokens_free(&ids);
            return -1;
        }
        j->prompt = ids.ids;
        j->n_prompt = (int)ids.n;
        return 0;
    }
    if (!p || p->type != LM_JSON_ARRAY) return lm_errf(err, "'prompt' must be a string or an array of token ids");
    j->prompt = lm_xmalloc(sizeof *j->prompt * (p->arr.n + 1));
    for (size_t i = 0; i < p->arr.n; i++) {
        const struct lm_json *v = &p->arr.items[i];
        if (v->type != LM_JSON_NUMBER || !v->num.is_int || v->num.i < 0 || v->num.i >= s->e.tok.n_vocab)
            return lm_errf(err, "'prompt': item %zu is not a token id of this model (0..%d)", i, s->e.tok.n_vocab - 1);
        j->prompt[j->n_prompt++] = (int32_t)v->num.i;
    }
    return 0;
}

static bool completions(struct conn *c, struct req_log *lg, const struct lm_json *body, bool keep_alive) {
    struct server *s = c->srv;
    struct lm_err err;
    struct lm_job j = {0};
    lm_job_init(&j);
    struct gen_request g = {0};
    bool ok;
    if (gen_params(s, body, &j, &g, &err) < 0 || completion_prompt(s, lm_json_get(body, "prompt"), &j, &err) < 0 ||
        check_prompt(s, &j, &err) < 0) {
        ok = respond_error(c, lg, 400, err.msg, keep_alive, NULL) && keep_alive;
    } else {
        char id[48];
        next_id(s, "cmpl", id);
        struct completion cp = {.id = id};
        ok = generate(c, lg, &j, &cp, &g, keep_alive);
    }
    lm_job_free(&j);
    return ok;
}

static bool models(struct conn *c, struct req_log *lg, bool keep_alive) {
    struct server *s = c->srv;
    struct lm_buf b = {0};
    lm_buf_puts(&b, "{\"object\":\"list\",\"data\":[{\"id\":");
    lm_buf_json_str(&b, s->model_id, strlen(s->model_id));
    lm_buf_printf(&b, ",\"object\":\"model\",\"created\":%lld,\"owned_by\":\"lm\",\"meta\":{\"n_ctx_slot\":%d,\"n_slots\":%d,"
                      "\"n_vocab\":%d}}]}", (long long)s->created, lm_sched_n_ctx(s->sched), s->o->n_slots,
                  s->e.model.hp.n_vocab);
    bool ok = respond_json(c, lg, &b, keep_alive) && keep_alive;
    lm_buf_free(&b);
    return ok;
}

static bool tokenize(struct conn *c, struct req_log *lg, const struct lm_json *body, bool keep_alive) {
    struct server *s = c->srv;
    struct lm_err err;
    const struct lm_json *content = lm_json_get(body, "content");
    bool add_special = false, parse_special = true;
    struct lm_tokens ids = {0};
    bool ok;
    if (!content || content->type != LM_JSON_STRING) lm_errf(&err, "'content' must be a string");
    if (!content || content->type != LM_JSON_STRING || get_bool(body, "add_special", &add_special, &err) < 0 ||
        get_bool(body, "parse_special", &parse_special, &err) < 0 ||
        lm_tokenizer_encode(&s->e.tok, content->str.s, content->str.len, add_special && s->e.tok.add_bos, parse_special,
                            &ids, &err) < 0) {
        ok = respond_error(c, lg, 400, err.msg, keep_alive, NULL) && keep_alive;
    } else {
        struct lm_buf b = {0};
        lm_buf_puts(&b, "{\"tokens\":[");
        for (size_t i = 0; i < ids.n; i++) lm_buf_printf(&b, "%s%d", i ? "," : "", ids.ids[i]);
        lm_buf_puts(&b, "]}");
        ok = respond_json(c, lg, &b, keep_alive) && keep_alive;
        lm_buf_free(&b);
    }
    lm_tokens_free(&ids);
    return ok;
}

static bool detokenize(struct conn *c, struct req_log *lg, const struct lm_json *body, bool keep_alive) {
    struct server *s = c->srv;
    const struct lm_json *t = lm_json_get(body, "tokens");
    if (!t || t->type != LM_JSON_ARRAY) return respond_error(c, lg, 400, "'tokens' must be an array of token ids", keep_alive, NULL) && keep_alive;
    int32_t *ids = lm_xmalloc(sizeof *ids * (t->arr.n + 1));
    for (size_t i = 0; i < t->arr.n; i++) {
        const struct lm_json *v = &t->arr.items[i];
        if (v->type != LM_JSON_NUMBER || !v->num.is_int || v->num.i < 0 || v->num.i >= s->e.tok.n_vocab) {
            free(ids);
            char msg[128];
            snprintf(msg, sizeof msg, "'tokens': item %zu is not a token id of this model (0..%d)", i, s->e.tok.n_vocab - 1);
            return respond_error(c, lg, 400, msg, keep_alive, NULL) && keep_alive;
        }
        ids[i] = (int32_t)v->num.i;
    }
    struct lm_buf text = {0}, b = {0};
    lm_tokenizer_decode(&s->e.tok, ids, t->arr.n, &text);
    lm_buf_puts(&b, "{\"content\":");
    lm_buf_json_str(&b, text.data ? text.data : "", text.len);
    lm_buf_puts(&b, "}");
    bool ok = respond_json(c, lg, &b, keep_alive) && keep_alive;
    free(ids);
    lm_buf_free(&text);
    lm_buf_free(&b);
    return ok;
}

static bool metrics(struct conn *c, struct req_log *lg, bool keep_alive) {
    struct server *s = c->srv;
    struct lm_sched_stats st;
    lm_sched_stats(s->sched, &st);
    struct lm_buf b = {0};
    lm_buf_puts(&b, "# HELP lm_requests_total Requests answered, by HTTP status.\n# TYPE lm_requests_total counter\n");
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < MAX_STATUS && s->status[i].code; i++)
        lm_buf_printf(&b, "lm_requests_total{status=\"%d\"} %llu\n", s->status[i].code, (unsigned long long)s->status[i].n);
    pthread_mutex_unlock(&s->mu);
    lm_buf_printf(&b,
                  "# HELP lm_prompt_tokens_total Prompt tokens computed (not found in a slot's cache).\n"
                  "# TYPE lm_prompt_tokens_total counter\nlm_prompt_tokens_total %llu\n"
                  "# HELP lm_prompt_tokens_reused_total Prompt tokens found in a slot's cache.\n"
                  "# TYPE lm_prompt_tokens_reused_total counter\nlm_prompt_tokens_reused_total %llu\n"
                  "# HELP lm_tokens_predicted_total Tokens generated.\n"
                  "# TYPE lm_tokens_predicted_total counter\nlm_tokens_predicted_total %llu\n"
                  "# HELP lm_prompt_tokens_seconds Prompt tokens per second of a request, on average.\n"
                  "# TYPE lm_prompt_tokens_seconds gauge\nlm_prompt_tokens_seconds %.2f\n"
                  "# HELP lm_predicted_tokens_seconds Generated tokens per second of a request, on average.\n"
                  "# TYPE lm_predicted_tokens_seconds gauge\nlm_predicted_tokens_seconds %.2f\n"
                  "# HELP lm_slots_busy Slots generating.\n# TYPE lm_slots_busy gauge\nlm_slots_busy %d\n"
                  "# HELP lm_slots_total Slots.\n# TYPE lm_slots_total gauge\nlm_slots_total %d\n"
                  "# HELP lm_queue_depth Requests waiting for a slot.\n# TYPE lm_queue_depth gauge\nlm_queue_depth %d\n",
                  (unsigned long long)st.tokens_in, (unsigned long long)st.tokens_reused, (unsigned long long)st.tokens_out,
                  st.t_prompt > 0 ? (double)st.tokens_in / st.t_prompt : 0.0,
                  st.t_gen > 0 ? (double)st.tokens_out / st.t_gen : 0.0, st.slots_busy, st.n_slots, st.queued);
    bool ok = respond(c, lg, 200, "text/plain; version=0.0.4", b.data, b.len, keep_alive, NULL) && keep_alive;
    lm_buf_free(&b);
    return ok;
}

/* Constant-time comparison of the Authorization header with "Bearer KEY":
 * the time taken depends on the lengths, never on where they differ. */
static bool authorized(const struct lm_http_request *r, const char *key) {
    const struct lm_http_str *h = lm_http_header(r, "authorization");
    if (!h || h->n < 7 || !lm_http_str_eq((struct lm_http_str){h->s, 7}, "bearer ")) return false;
    const char *got = h->s + 7;
    size_t n_got = h->n - 7, n_key = strlen(key);
    unsigned diff = n_got != n_key;
    for (size_t i = 0; i < n_key; i++) diff |= (unsigned char)key[i] ^ (unsigned char)(i < n_got ? got[i] : 0);
    return diff == 0;
}

enum route_kind { R_PAGE, R_HEALTH, R_MODELS, R_METRICS, R_CHAT, R_COMPLETIONS, R_TOKENIZE, R_DETOKENIZE };

static const struct {
    const char *path, *method;
    enum route_kind kind;
    bool open; /* served without the API key */
} routes[] = {
    {"/", "GET", R_PAGE, true},
    {"/health", "GET", R_HEALTH, true},
    {"/v1/models", "GET", R_MODELS, false},
    {"/metrics", "GET", R_METRICS, false},
    {"/v1/chat/completions", "POST", R_CHAT, false},
    {"/v1/completions", "POST", R_COMPLETIONS, false},
    {"/tokenize", "POST", R_TOKENIZE, false},
    {"/detokenize", "POST", R_DETOKENIZE, false},
};

/* Answers one request; returns whether to keep the connection. */
static bool handle(struct conn *c, const struct lm_http_request *r, struct req_log *lg) {
    struct server *s = c->srv;
    bool keep = r->keep_alive && !stopping(s);
    int found = -1;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (lm_http_str_eq(r->path, routes[i].path)) found = (int)i;
    if (found < 0) return respond_error(c, lg, 404, "no such route", keep, NULL) && keep;
    bool head = lm_http_str_eq(r->method, "HEAD") && !strcmp(routes[found].method, "GET");
    if (!lm_http_str_eq(r->method, routes[found].method) && !head) {
        char allow[64];
        snprintf(allow, sizeof allow, "Allow: %s\r\n", routes[found].method);
        return respond_error(c, lg, 405, "method not allowed on this route", keep, allow) && keep;
    }
    if (!routes[found].open && s->o->api_key && !authorized(r, s->o->api_key))
        return respond_error(c, lg, 401, "missing or wrong API key (Authorization: Bearer KEY)", keep,
                             "WWW-Authenticate: Bearer\r\n") && keep;
    enum route_kind kind = routes[found].kind;
    pthread_mutex_lock(&s->mu);
    bool ready = s->ready;
    pthread_mutex_unlock(&s->mu);
    if (kind == R_PAGE) return respond(c, lg, 200, "text/html; charset=utf-8", lm_serve_page, strlen(lm_serve_page), keep, NULL) && keep;
    if (kind == R_HEALTH) {
        if (!ready) return respond_error(c, lg, 503, "loading the model", keep, NULL) && keep;
        return respond(c, lg, 200, "application/json", "{\"status\":\"ok\"}", 15, keep, NULL) && keep;
    }
    if (!ready) return respond_error(c, lg, 503, "loading the model", keep, "Retry-After: 1\r\n") && keep;
    if (kind == R_MODELS) return models(c, lg, keep);
    if (kind == R_METRICS) return metrics(c, lg, keep);
    struct lm_json body;
    struct lm_err err;
    if (lm_json_parse(&body, r->body ? r->body : "", r->body_len, &err) < 0) {
        char msg[600];
        snprintf(msg, sizeof msg, "the body is not valid JSON: %s", err.msg);
        return respond_error(c, lg, 400, msg, keep, NULL) && keep;
    }
    bool ok;
    if (body.type != LM_JSON_OBJECT) ok = respond_error(c, lg, 400, "the body must be a JSON object", keep, NULL) && keep;
    else if (kind == R_CHAT) ok = chat_completions(c, lg, &body, keep);
    else if (kind == R_COMPLETIONS) ok = completions(c, lg, &body, keep);
    else if (kind == R_TOKENIZE) ok = tokenize(c, lg, &body, keep);
    else ok = detokenize(c, lg, &body, keep);
    lm_json_free(&body);
    return ok;
}

/* ---- connections -------------------------------------------------------------- */

/* Waits until fd is readable or the deadline passes (or the server stops
 * while the connection is idle): 1 readable, 0 not. */
static int wait_readable(struct server *s, int fd, double deadline, bool idle) {
    for (;;) {
        double left = deadline - lm_time();
        if (left <= 0 || (idle && stopping(s))) return 0;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, left > 0.2 ? 200 : (int)(left * 1000) + 1);
        if (r > 0) return 1;
        if (r < 0 && errno != EINTR) return 0;
    }
}

static void log_request(struct conn *c, const struct lm_http_request *r, const struct req_log *lg, double t0) {
    char extra[128] = "";
    if (lg->stop)
        snprintf(extra, sizeof extra, " prompt %d (reused %d) generated %d stop %s", lg->n_prompt, lg->n_reused, lg->n_gen, lg->stop);
    fprintf(stderr, "lm: %s \"%.*s %.*s\" %d %.0f ms%s\n", c->peer, (int)(r ? r->method.n : 1), r ? r->method.s : "-",
            (int)(r ? (r->path.n > 200 ? 200 : r->path.n) : 1), r ? r->path.s : "-", lg->status, (lm_time() - t0) * 1e3, extra);
}

static void *serve_conn(void *arg) {
    struct conn *c = arg;
    struct server *s = c->srv;
    struct timeval tv = {.tv_sec = s->o->timeout};
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct lm_buf in = {0};
    size_t cap = s->limits.max_head + s->limits.max_body + 1;
    for (bool keep = true; keep;) {
        double t0 = lm_time(), deadline = t0 + s->o->timeout;
        struct lm_http_request r;
        struct req_log lg = {0};
        int status = 0;
        struct lm_err err;
        long long n;
        while ((n = lm_http_parse(&r, in.data ? in.data : "", in.len, &s->limits, &status, &err)) == LM_HTTP_INCOMPLETE) {
            if (!wait_readable(s, c->fd, deadline, in.len == 0)) {
                if (in.len) respond_error(c, &lg, 408, "the request took too long to arrive", false, NULL);
                n = LM_HTTP_INCOMPLETE;
                break;
            }
            lm_buf_reserve(&in, 16384);
            size_t room = cap - in.len < 16384 ? cap - in.len : 16384;
            ssize_t got = recv(c->fd, in.data + in.len, room, 0);
            if (got <= 0) break;
            in.len += (size_t)got;
            in.data[in.len] = 0;
        }
        if (n == LM_HTTP_BAD) {
            respond_error(c, &lg, status, err.msg, false, NULL);
            log_request(c, NULL, &lg, t0);
            count_status(s, lg.status);
            break;
        }
        if (n <= 0) {
            if (lg.status) {
                log_request(c, NULL, &lg, t0);
                count_status(s, lg.status);
            }
            break;
        }
        keep = handle(c, &r, &lg);
        log_request(c, &r, &lg, t0);
        count_status(s, lg.status);
        memmove(in.data, in.data + n, in.len - (size_t)n);
        in.len -= (size_t)n;
    }
    lm_buf_free(&in);
    close(c->fd);
    pthread_mutex_lock(&s->mu);
    if (--s->n_conns == 0) pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->mu);
    free(c);
    return NULL;
}

static void *accept_loop(void *arg) {
    struct server *s = arg;
    while (!stopping(s)) {
        struct pollfd p = {.fd = s->listen_fd, .events = POLLIN};
        if (poll(&p, 1, 200) <= 0) continue;
        struct sockaddr_storage addr;
        socklen_t len = sizeof addr;
        int fd = accept4(s->listen_fd, (struct sockaddr *)&addr, &len, SOCK_CLOEXEC);
        if (fd < 0) continue;
        struct conn *c = lm_xcalloc(1, sizeof *c);
        c->srv = s;
        c->fd = fd;
        char host[INET6_ADDRSTRLEN] = "?";
        if (addr.ss_family == AF_INET) inet_ntop(AF_INET, &((struct sockaddr_in *)&addr)->sin_addr, host, sizeof host);
        else if (addr.ss_family == AF_INET6) inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&addr)->sin6_addr, host, sizeof host);
        snprintf(c->peer, sizeof c->peer, "%s", host);
        pthread_mutex_lock(&s->mu);
        bool room = s->n_conns < MAX_CONNS;
        if (room) s->n_conns++;
        pthread_mutex_unlock(&s->mu);
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 1 << 20);
        if (room && pthread_create(&t, &attr, serve_conn, c) == 0) {
            pthread_attr_destroy(&attr);
            continue;
        }
        pthread_attr_destroy(&attr);
        if (room) {
            pthread_mutex_lock(&s->mu);
            if (--s->n_conns == 0) pthread_cond_broadcast(&s->idle);
            pthread_mutex_unlock(&s->mu);
        }
        static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
                                   "Content-Length: 96\r\nRetry-After: 1\r\n\r\n{\"error\":{\"message\":\"too many connections\","
                                   "\"type\":\"unavailable_error\",\"param\":null,\"code\":503}}";
        if (send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {}
        fprintf(stderr, "lm: %s: too many connections (%d): answered 503\n", c->peer, MAX_CONNS);
        close(fd);
        free(c);
    }
    return NULL;
}

/* ---- the command's body ---------------------------------------------------------- */

static int listen_on(struct server *s, struct lm_err *err) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res;
    char port[16];
    snprintf(port, sizeof port, "%d", s->o->port);
    int rc = getaddrinfo(s->o->host, port, &hints, &res);
    if (rc != 0) return lm_errf(err, "--host %s: %s", s->o->host, gai_strerror(rc));
    int fd = -1, e = 0;
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) < 0 || listen(fd, 128) < 0) {
            e = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) return lm_errf(err, "cannot listen on %s port %d: %s", s->o->host, s->o->port, strerror(e));
    s->listen_fd = fd;
    return 0;
}

static int bound_port(int fd) {
    struct sockaddr_storage a;
    socklen_t len = sizeof a;
    if (getsockname(fd, (struct sockaddr *)&a, &len) < 0) return -1;
    return ntohs(a.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&a)->sin6_port : ((struct sockaddr_in *)&a)->sin_port);
}

/* The model's chat template, or chatml when it has none. */
static void find_template(struct server *s) {
    struct lm_gguf_str t;
    struct lm_err err;
    if (lm_gguf_get_str(&s->e.model.gguf, "tokenizer.chat_template", &t, &err) > 0) {
        s->tmpl = lm_xstrndup(t.data, t.len);
        return;
    }
    fprintf(stderr, "lm: warning: %s has no chat template; using chatml\n", s->o->engine.model_path);
    s->tmpl = lm_xstrdup(lm_chat_builtin("chatml"));
}

static int fail(int code, const char *msg) {
    fprintf(stderr, "lm: %s\n", msg);
    return code;
}

/* Loads the model and starts the slots: 0, or an exit code. */
static int load(struct server *s) {
    struct lm_engine_opts eo = s->o->engine;
    eo.n_ctx = 1; /* the engine's own context is unused: the slots have theirs */
    eo.n_batch = 1;
    struct lm_err err;
    int code;
    if (lm_engine_open(&s->e, &eo, &code, &err) < 0) return fail(code, err.msg);
    int n_ctx = s->o->engine.n_ctx > 0 ? s->o->engine.n_ctx : lm_model_default_ctx(&s->e.model);
    int n_batch = s->o->engine.n_batch > 0 ? s->o->engine.n_batch : LM_BATCH_DEFAULT;
    if (!(s->sched = lm_sched_create(&s->e, s->o->n_slots, n_ctx, n_batch, s->o->queue, &err)))
        return fail(LM_EXIT_RUNTIME, err.msg);
    find_template(s);
    const char *slash = strrchr(s->o->engine.model_path, '/');
    s->model_id = slash ? slash + 1 : s->o->engine.model_path;
    fprintf(stderr, "lm serve: %s ready: %d slots of %d tokens\n", s->o->engine.model_path, s->o->n_slots, n_ctx);
    return 0;
}

int lm_serve(const struct lm_serve_opts *o) {
    struct server s = {.o = o, .listen_fd = -1, .created = time(NULL)};
    s.limits = (struct lm_http_limits){.max_head = 16384, .max_body = o->max_body};
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.idle, NULL);
    struct lm_err err;
    if (pipe2(wake_pipe, O_CLOEXEC) < 0) return fail(LM_EXIT_RUNTIME, "cannot make a pipe");
    struct sigaction sa = {.sa_handler = on_stop_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    int rc = LM_EXIT_OK;
    pthread_t acceptor;
    bool accepting = false;
    if (listen_on(&s, &err) < 0) {
        rc = fail(LM_EXIT_USAGE, err.msg);
        goto done;
    }
    /* Listening before the model loads, so that /health can say 503 meanwhile. */
    printf("lm serve: listening on http://%s%s%s:%d\n", strchr(o->host, ':') ? "[" : "", o->host,
           strchr(o->host, ':') ? "]" : "", bound_port(s.listen_fd));
    fflush(stdout);
    if (pthread_create(&acceptor, NULL, accept_loop, &s) != 0) {
        rc = fail(LM_EXIT_RUNTIME, "cannot start the accepting thread");
        goto done;
    }
    accepting = true;
    if ((rc = load(&s)) != 0) goto done;
    pthread_mutex_lock(&s.mu);
    s.ready = true;
    pthread_mutex_unlock(&s.mu);
    while (!stop_signal) {
        struct pollfd p = {.fd = wake_pipe[0], .events = POLLIN};
        poll(&p, 1, 1000);
    }
    fprintf(stderr, "lm serve: stopping: no new connections; running requests get %.0f s\n", GRACE_SECONDS);
done:
    pthread_mutex_lock(&s.mu);
    s.stopping = true;
    s.t_stop = lm_time();
    pthread_mutex_unlock(&s.mu);
    if (accepting) pthread_join(acceptor, NULL);
    if (s.listen_fd >= 0) close(s.listen_fd);
    /* Connections end: idle ones at once, generating ones after the grace
     * (their jobs are canceled), stalled writers after --timeout. */
    pthread_mutex_lock(&s.mu);
    while (s.n_conns > 0) pthread_cond_wait(&s.idle, &s.mu);
    pthread_mutex_unlock(&s.mu);
    lm_sched_free(s.sched);
    lm_engine_close(&s.e);
    free(s.tmpl);
    close(wake_pipe[0]);
    close(wake_pipe[1]);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (rc == LM_EXIT_OK) fprintf(stderr, "lm serve: stopped\n");
    return rc;
}
