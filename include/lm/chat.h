/* chat.h: a conversation rendered through the model's chat template.
 *
 * The template (tokenizer.chat_template, a named built-in, or a file) turns
 * the messages into the exact text the model was trained on (jinja.h). That
 * text is tokenized in pieces: what the template wrote is parsed for special
 * tokens (<|im_start|>, ...), what the messages hold is not, so a user who
 * types "<|im_end|>" gets plain text. The pieces are found by rendering a
 * second time with each message's content replaced by a sentinel.
 *
 * Left out on purpose: tool calls and multimodal content parts (text parts of
 * a content array are joined; other fields are ignored). */
#ifndef LM_CHAT_H
#define LM_CHAT_H

#include "lm/generate.h"
#include "lm/jinja.h"

struct lm_chat {
    const struct lm_tokenizer *tok;
    char *tmpl;                 /* the template text */
    char *bos_text, *eos_text;  /* bos_token / eos_token for the template, or NULL */
    struct lm_chat_msg *msgs;   /* owned strings */
    size_t n_msgs, cap;
};

/* Names of the built-in templates (for --template), NULL-terminated. */
extern const char *const lm_chat_builtin_names[];
/* The Jinja text of a built-in template, or NULL. */
const char *lm_chat_builtin(const char *name);

/* tmpl: the template text to use (copied). */
void lm_chat_init(struct lm_chat *c, const struct lm_tokenizer *tok, const char *tmpl, size_t tmpl_len);
void lm_chat_free(struct lm_chat *c);

void lm_chat_add(struct lm_chat *c, const char *role, const char *content, size_t len);
/* Drops every message but a leading system message (when keep_system). */
void lm_chat_reset(struct lm_chat *c, bool keep_system);
/* Sets (or with text NULL, removes) the leading system message. */
void lm_chat_set_system(struct lm_chat *c, const char *text);
/* Drops the oldest turn after the system message: a user message and the
 * replies that follow it. false when only the last user message is left. */
bool lm_chat_drop_oldest(struct lm_chat *c);

/* Renders the conversation (with the assistant's turn opened when
 * add_generation_prompt) into text and tokenizes it into ids.
 * warn receives a one-line note when the template could only be tokenized
 * as a whole (special tokens parsed everywhere), else "". */
int lm_chat_render(const struct lm_chat *c, bool add_generation_prompt, struct lm_buf *text, struct lm_tokens *ids,
                   char warn[160], struct lm_err *err);

/* Drops the oldest turns, as lm_chat_drop_oldest does, until the rendering
 * has at most max_tokens tokens or one turn is left, and leaves that
 * rendering in text and ids (as lm_chat_render). Returns the number of turns
 * dropped, or -1. Only the newest turns are rendered, doubling them until
 * they overflow, then halving the gap: O(log turns) renderings, none much
 * longer than what fits, so a long history (lm chat --messages) costs
 * neither time nor memory in proportion to its length. */
int lm_chat_fit(struct lm_chat *c, bool add_generation_prompt, size_t max_tokens, struct lm_buf *text,
                struct lm_tokens *ids, char warn[160], struct lm_err *err);

/* The conversation as a JSON array of {"role","content"}. */
void lm_chat_to_json(const struct lm_chat *c, struct lm_buf *out);
/* Replaces the messages with those of a JSON array of {"role","content"}
 * (content a string, null, or an array of {"type":"text","text":...}). */
int lm_chat_from_json(struct lm_chat *c, const char *json, size_t len, struct lm_err *err);

/* Thinking in a streamed reply: text between <think> and </think> (the
 * tags included) is thinking, the rest is the answer. Tags cut across
 * chunks are found: a tail that may begin one is held back until the next
 * chunk or lm_think_flush. Each piece goes to out(ud, text, n, thinking):
 * the answer always, the thinking only when keep_thinking. Unless
 * keep_blank, the spaces and newlines that start the answer (what separated
 * it from the thinking) are skipped. */
struct lm_think_filter {
    bool keep_thinking, keep_blank;
    bool in_think;         /* inside <think>...</think>; set it when the prompt opened one */
    bool answer_started;
    struct lm_buf pending; /* a tail that may be the start of a tag */
    void (*out)(void *ud, const char *text, size_t n, bool thinking);
    void *ud;
};
void lm_think_feed(struct lm_think_filter *f, const char *text, size_t n);
/* Passes on what was held back (the reply ended in the middle of "<thi"). */
void lm_think_flush(struct lm_think_filter *f);
void lm_think_free(struct lm_think_filter *f);
/* Whether a rendered prompt ends with <think> (and spaces or newlines):
 * models like DeepSeek-R1 start thinking inside the generation prompt. */
bool lm_think_opened(const char *prompt, size_t len);

#endif
