/* chat.c: see chat.h. */
#include "lm/chat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Built-in templates, for models whose file has none or for --template.
 * Each is the format's published Jinja text, reduced to messages with
 * role and content. */
static const struct {
    const char *name, *text;
} builtins[] = {
    {"chatml", "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
               "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"},
    {"llama3", "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
               "'<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
               "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"},
    {"llama2", "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = "
               "'<<SYS>>\\n' + messages[0]['content'] | trim + '\\n<</SYS>>\\n\\n' %}{% else %}{% set loop_messages = "
               "messages %}{% set system_message = '' %}{% endif %}{% for message in loop_messages %}{% if loop.index0 == 0 "
               "%}{% set content = system_message + message['content'] %}{% else %}{% set content = message['content'] %}"
               "{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content | trim + ' [/INST]' }}"
               "{% elif message['role'] == 'assistant' %}{{ ' ' + content | trim + ' ' + eos_token }}{% endif %}{% endfor %}"},
    {"gemma", "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set first_user_prefix = messages[0]['content'] "
              "+ '\\n\\n' %}{% set loop_messages = messages[1:] %}{% else %}{% set first_user_prefix = '' %}{% set "
              "loop_messages = messages %}{% endif %}{% for message in loop_messages %}{% set role = 'model' if "
              "message['role'] == 'assistant' else message['role'] %}{{ '<start_of_turn>' + role + '\\n' + "
              "(first_user_prefix if loop.first else '') + message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}"
              "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"},
    {"phi3", "{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' }}"
             "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}{% endif %}"},
    {"deepseek-r1", "{{ bos_token }}{% set ns = namespace(system='') %}{% for message in messages %}{% if message['role'] "
                    "== 'system' %}{% set ns.system = message['content'] %}{% endif %}{% endfor %}{{ ns.system }}{% for "
                    "message in messages %}{% if message['role'] == 'user' %}{{ '<｜User｜>' + message['content'] }}{% elif "
                    "message['role'] == 'assistant' %}{% set content = message['content'] %}{% if '</think>' in content %}"
                    "{% set content = content.split('</think>')[-1] %}{% endif %}{{ '<｜Assistant｜>' + content + "
                    "'<｜end▁of▁sentence｜>' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<｜Assistant｜><think>\\n' }}"
                    "{% endif %}"},
};

const char *const lm_chat_builtin_names[] = {"chatml", "llama3", "llama2", "gemma", "phi3", "deepseek-r1", NULL};

const char *lm_chat_builtin(const char *name) {
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++)
        if (!strcmp(builtins[i].name, name)) return builtins[i].text;
    return NULL;
}

static char *token_text(const struct lm_tokenizer *tok, int32_t id) {
    if (id < 0) return NULL;
    size_t len;
    const char *s = lm_tokenizer_token_text(tok, id, &len);
    return lm_xstrndup(s, len);
}

void lm_chat_init(struct lm_chat *c, const struct lm_tokenizer *tok, const char *tmpl, size_t tmpl_len) {
    memset(c, 0, sizeof *c);
    c->tok = tok;
    c->tmpl = lm_xstrndup(tmpl, tmpl_len);
    c->bos_text = token_text(tok, tok->bos);
    c->eos_text = token_text(tok, tok->eos);
}

static void free_msg(struct lm_chat_msg *m) {
    free((char *)m->role);
    free((char *)m->content);
}

void lm_chat_free(struct lm_chat *c) {
    lm_chat_reset(c, false);
    free(c->msgs);
    free(c->tmpl);
    free(c->bos_text);
    free(c->eos_text);
    memset(c, 0, sizeof *c);
}

void lm_chat_add(struct lm_chat *c, const char *role, const char *content, size_t len) {
    if (c->n_msgs == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 8;
        c->msgs = lm_xrealloc(c->msgs, c->cap * sizeof *c->msgs);
    }
    c->msgs[c->n_msgs++] = (struct lm_chat_msg){lm_xstrdup(role), lm_xstrndup(content, len)};
}

static bool has_system(const struct lm_chat *c) { return c->n_msgs && !strcmp(c->msgs[0].role, "system"); }

void lm_chat_reset(struct lm_chat *c, bool keep_system) {
    size_t keep = keep_system && has_system(c) ? 1 : 0;
    for (size_t i = keep; i < c->n_msgs; i++) free_msg(&c->msgs[i]);
    c->n_msgs = keep;
}

static void remove_msgs(struct lm_chat *c, size_t at, size_t n) {
    for (size_t i = at; i < at + n; i++) free_msg(&c->msgs[i]);
    memmove(c->msgs + at, c->msgs + at + n, (c->n_msgs - at - n) * sizeof *c->msgs);
    c->n_msgs -= n;
}

void lm_chat_set_system(struct lm_chat *c, const char *text) {
    if (has_system(c)) remove_msgs(c, 0, 1);
    if (!text) return;
    lm_chat_add(c, "system", text, strlen(text));
    struct lm_chat_msg sys = c->msgs[c->n_msgs - 1];
    memmove(c->msgs + 1, c->msgs, (c->n_msgs - 1) * sizeof *c->msgs);
    c->msgs[0] = sys;
}

bool lm_chat_drop_oldest(struct lm_chat *c) {
    size_t first = has_system(c) ? 1 : 0, end = first + 1;
    while (end < c->n_msgs && strcmp(c->msgs[end].role, "user") != 0) end++;
    if (end >= c->n_msgs) return false; /* that turn is the last one */
    remove_msgs(c, first, end - first);
    return true;
}

/* ---- rendering -------------------------------------------------------------- */

#define SENTINEL_OPEN '\x02'
#define SENTINEL_CLOSE '\x03'

static int render(const struct lm_chat *c, const struct lm_chat_msg *msgs, bool add_gen, struct lm_buf *out,
                  struct lm_err *err) {
    out->len = 0;
    return lm_template_render(c->tmpl, strlen(c->tmpl), msgs, c->n_msgs, add_gen, c->bos_text, c->eos_text, out, err);
}

static int encode(const struct lm_chat *c, const char *s, size_t n, bool special, struct lm_tokens *ids,
                  struct lm_err *err) {
    return n ? lm_tokenizer_encode(c->tok, s, n, false, special, ids, err) : 0;
}

/* Tokenizes real (rendered with the true contents) using marked (rendered
 * with sentinels): the template's own text between sentinels is parsed for
 * special tokens; the rest of real, the contents, is not. Returns 1 when the
 * two renderings do not line up. */
static int encode_pieces(const struct lm_chat *c, const struct lm_buf *real, const struct lm_buf *marked,
                         struct lm_tokens *ids, struct lm_err *err) {
    size_t rpos = 0, mpos = 0;
    while (mpos <= marked->len) {
        const char *open = memchr(marked->data + mpos, SENTINEL_OPEN, marked->len - mpos);
        size_t piece_end = open ? (size_t)(open - marked->data) : marked->len;
        size_t piece_len = piece_end - mpos;
        if (rpos + piece_len > real->len || memcmp(real->data + rpos, marked->data + mpos, piece_len) != 0) return 1;
        if (encode(c, real->data + rpos, piece_len, true, ids, err) < 0) return -1;
        rpos += piece_len;
        if (!open) return rpos == real->len ? 0 : 1;
        const char *close = memchr(open, SENTINEL_CLOSE, marked->len - piece_end);
        if (!close) return 1;
        unsigned long idx = strtoul(open + 1, NULL, 10);
        mpos = (size_t)(close - marked->data) + 1;
        /* The content itself, or what the template made of it: up to the
         * next template piece. */
        const char *content = idx < c->n_msgs ? c->msgs[idx].content : "";
        size_t clen = strlen(content), end;
        const char *next_open = memchr(marked->data + mpos, SENTINEL_OPEN, marked->len - mpos);
        size_t next_len = (next_open ? (size_t)(next_open - marked->data) : marked->len) - mpos;
        if (rpos + clen <= real->len && memcmp(real->data + rpos, content, clen) == 0 &&
            rpos + clen + next_len <= real->len && memcmp(real->data + rpos + clen, marked->data + mpos, next_len) == 0) {
            end = rpos + clen;
        } else if (next_len == 0) {
            if (next_open) return 1; /* back-to-back contents cannot be told apart */
            end = real->len;
        } else {
            const char *hit = memmem(real->data + rpos, real->len - rpos, marked->data + mpos, next_len);
            if (!hit) return 1;
            end = (size_t)(hit - real->data);
        }
        if (encode(c, real->data + rpos, end - rpos, false, ids, err) < 0) return -1;
        rpos = end;
    }
    return 0;
}

int lm_chat_render(const struct lm_chat *c, bool add_generation_prompt, struct lm_buf *text, struct lm_tokens *ids,
                   char warn[160], struct lm_err *err) {
    warn[0] = 0;
    ids->n = 0;
    if (render(c, c->msgs, add_generation_prompt, text, err) < 0) return -1;
    struct lm_chat_msg *marked_msgs = lm_xcalloc(c->n_msgs ? c->n_msgs : 1, sizeof *marked_msgs);
    char(*marks)[24] = lm_xcalloc(c->n_msgs ? c->n_msgs : 1, sizeof *marks);
    for (size_t i = 0; i < c->n_msgs; i++) {
        snprintf(marks[i], sizeof marks[i], "%c%zu%c", SENTINEL_OPEN, i, SENTINEL_CLOSE);
        marked_msgs[i] = (struct lm_chat_msg){c->msgs[i].role, marks[i]};
    }
    struct lm_buf marked = {0};
    struct lm_err ignored;
    int rc = render(c, marked_msgs, add_generation_prompt, &marked, &ignored) < 0 ? 1 : 0;
    if (rc == 0) rc = encode_pieces(c, text, &marked, ids, err);
    if (rc == 1) {
        snprintf(warn, 160, "the template changes message text in ways lm cannot trace; special tokens are "
                            "parsed in the whole prompt");
        ids->n = 0;
        rc = encode(c, text->data, text->len, true, ids, err);
    }
    lm_buf_free(&marked);
    free(marks);
    free(marked_msgs);
    return rc;
}

/* ---- fitting a context ---------------------------------------------------------- */

/* Turns after the system message, as lm_chat_drop_oldest cuts them: the
 * first starts at the first message, each other one at a user message. */
static size_t n_turns(const struct lm_chat *c) {
    size_t first = has_system(c) ? 1 : 0, n = first < c->n_msgs ? 1 : 0;
    for (size_t i = first + 1; i < c->n_msgs; i++) n += !strcmp(c->msgs[i].role, "user");
    return n;
}

/* Index of the first message of turn k (k = n_turns: c->n_msgs). */
static size_t turn_start(const struct lm_chat *c, size_t k) {
    size_t i = has_system(c) ? 1 : 0;
    for (size_t t = 0; t < k; t++)
        for (i++; i < c->n_msgs && strcmp(c->msgs[i].role, "user") != 0; i++) {}
    return i < c->n_msgs ? i : c->n_msgs;
}

/* Renders the system message and the newest `keep` turns, leaving c alone. */
static int render_newest(const struct lm_chat *c, size_t keep, bool add_gen, struct lm_buf *text,
                         struct lm_tokens *ids, char warn[160], struct lm_err *err) {
    size_t first = has_system(c) ? 1 : 0, from = turn_start(c, n_turns(c) - keep);
    struct lm_chat view = *c;
    view.n_msgs = first + c->n_msgs - from;
    view.msgs = lm_xmalloc((view.n_msgs ? view.n_msgs : 1) * sizeof *view.msgs);
    memcpy(view.msgs, c->msgs, first * sizeof *view.msgs);
    memcpy(view.msgs + first, c->msgs + from, (c->n_msgs - from) * sizeof *view.msgs);
    int rc = lm_chat_render(&view, add_gen, text, ids, warn, err);
    free(view.msgs);
    return rc;
}

int lm_chat_fit(struct lm_chat *c, bool add_generation_prompt, size_t max_tokens, struct lm_buf *text,
                struct lm_tokens *ids, char warn[160], struct lm_err *err) {
    size_t m = n_turns(c);
    if (m <= 1) return lm_chat_render(c, add_generation_prompt, text, ids, warn, err) < 0 ? -1 : 0;
    /* The newest lo turns fit (0: none known to), the newest hi do not
     * (m + 1: all may). Double k from 1, then halve the gap. */
    size_t lo = 0, hi = m + 1, k = 1, last = 0;
    while (hi - lo > 1) {
        if (render_newest(c, k, add_generation_prompt, text, ids, warn, err) < 0) return -1;
        last = k;
        if (ids->n <= max_tokens) lo = k;
        else hi = k;
        k = hi == m + 1 ? (2 * k < m ? 2 * k : m) : lo + (hi - lo) / 2;
    }
    size_t keep = lo ? lo : 1, first = has_system(c) ? 1 : 0;
    remove_msgs(c, first, turn_start(c, m - keep) - first);
    if (last != keep && lm_chat_render(c, add_generation_prompt, text, ids, warn, err) < 0) return -1;
    return (int)(m - keep);
}

/* ---- JSON ------------------------------------------------------------------- */

void lm_chat_to_json(const struct lm_chat *c, struct lm_buf *out) {
    lm_buf_putc(out, '[');
    for (size_t i = 0; i < c->n_msgs; i++) {
        lm_buf_puts(out, i ? ",\n {\"role\": " : "{\"role\": ");
        lm_json_write_str(out, c->msgs[i].role, strlen(c->msgs[i].role), false);
        lm_buf_puts(out, ", \"content\": ");
        lm_json_write_str(out, c->msgs[i].content, strlen(c->msgs[i].content), false);
        lm_buf_putc(out, '}');
    }
    lm_buf_puts(out, "]\n");
}

/* A message's content as text: a string, null, or text parts joined. */
static int content_text(const struct lm_json *v, struct lm_buf *out, size_t i, struct lm_err *err) {
    out->len = 0;
    lm_buf_reserve(out, 0);
    if (!v || v->type == LM_JSON_NULL) return 0;
    if (v->type == LM_JSON_STRING) {
        lm_buf_append(out, v->str.s, v->str.len);
        return 0;
    }
    if (v->type == LM_JSON_ARRAY) {
        for (size_t k = 0; k < v->arr.n; k++) {
            const struct lm_json *t = lm_json_get(&v->arr.items[k], "text");
            if (t && t->type == LM_JSON_STRING) lm_buf_append(out, t->str.s, t->str.len);
        }
        return 0;
    }
    return lm_errf(err, "message %zu: content must be a string, null or an array of parts", i);
}

int lm_chat_from_json(struct lm_chat *c, const char *json, size_t len, struct lm_err *err) {
    struct lm_json v;
    if (lm_json_parse(&v, json, len, err) < 0) return -1;
    const struct lm_json *arr = v.type == LM_JSON_OBJECT ? lm_json_get(&v, "messages") : &v;
    int rc = 0;
    struct lm_buf content = {0};
    if (!arr || arr->type != LM_JSON_ARRAY) {
        rc = lm_errf(err, "expected an array of messages (or an object with \"messages\")");
        goto done;
    }
    for (size_t i = 0; i < arr->arr.n && rc == 0; i++) {
        const struct lm_json *role = lm_json_get(&arr->arr.items[i], "role");
        if (!role || role->type != LM_JSON_STRING || memchr(role->str.s, 0, role->str.len))
            rc = lm_errf(err, "message %zu: \"role\" must be a string", i);
        else
            rc = content_text(lm_json_get(&arr->arr.items[i], "content"), &content, i, err);
    }
    if (rc == 0) {
        lm_chat_reset(c, false);
        for (size_t i = 0; i < arr->arr.n; i++) {
            content_text(lm_json_get(&arr->arr.items[i], "content"), &content, i, err);
            lm_chat_add(c, lm_json_get(&arr->arr.items[i], "role")->str.s, content.data, content.len);
        }
    }
done:
    lm_buf_free(&content);
    lm_json_free(&v);
    return rc;
}

/* ---- thinking --------------------------------------------------------------- */

static void think_out(struct lm_think_filter *f, const char *text, size_t n, bool thinking) {
    if (!n || (thinking && !f->keep_thinking)) return;
    if (!thinking && !f->answer_started && !f->keep_blank) {
        while (n && (*text == '\n' || *text == ' ')) text++, n--;
        if (!n) return;
    }
    if (!thinking) f->answer_started = true;
    f->out(f->ud, text, n, thinking);
}

void lm_think_feed(struct lm_think_filter *f, const char *text, size_t n) {
    struct lm_buf *p = &f->pending;
    lm_buf_append(p, text, n);
    for (;;) {
        const char *tag = f->in_think ? "</think>" : "<think>";
        size_t tlen = strlen(tag);
        const char *hit = memmem(p->data, p->len, tag, tlen);
        if (hit) {
            size_t before = (size_t)(hit - p->data);
            think_out(f, p->data, before, f->in_think);
            think_out(f, tag, tlen, true);
            f->in_think = !f->in_think;
            memmove(p->data, hit + tlen, p->len - before - tlen);
            p->len -= before + tlen;
            p->data[p->len] = 0;
            continue;
        }
        size_t keep = 0; /* the longest tail that could begin the tag */
        for (size_t k = tlen - 1; k > 0; k--)
            if (k <= p->len && !memcmp(p->data + p->len - k, tag, k)) {
                keep = k;
                break;
            }
        think_out(f, p->data, p->len - keep, f->in_think);
        memmove(p->data, p->data + p->len - keep, keep);
        p->len = keep;
        p->data[p->len] = 0;
        return;
    }
}

void lm_think_flush(struct lm_think_filter *f) {
    think_out(f, f->pending.data, f->pending.len, f->in_think);
    f->pending.len = 0;
}

void lm_think_free(struct lm_think_filter *f) { lm_buf_free(&f->pending); }

bool lm_think_opened(const char *prompt, size_t len) {
    while (len && (prompt[len - 1] == '\n' || prompt[len - 1] == ' ')) len--;
    return len >= 7 && !memcmp(prompt + len - 7, "<think>", 7);
}
