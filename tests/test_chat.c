/* The chat module without a model: the <think> filter of streamed replies,
 * fed whole, byte by byte and split at every position, against outputs
 * worked out by hand from the rule (thinking is <think>...</think>, tags
 * included; the answer is the rest, less the blank start). */
#include "lm/chat.h"
#include "test.h"

#include <stdlib.h>

struct seen {
    struct lm_buf all, thinking;
};

static void collect(void *ud, const char *text, size_t n, bool thinking) {
    struct seen *s = ud;
    EXPECT(n > 0);
    lm_buf_append(&s->all, text, n);
    if (thinking) lm_buf_append(&s->thinking, text, n);
}

/* Feeds text in chunks that end at the offsets in cuts (then the rest);
 * s gets everything that came out, and the thinking part of it. */
static void filter(bool keep_thinking, bool keep_blank, bool in_think, const char *text, const size_t *cuts, int n_cuts,
                   struct seen *s) {
    s->all.len = s->thinking.len = 0;
    lm_buf_reserve(&s->all, 0);
    lm_buf_reserve(&s->thinking, 0);
    s->all.data[0] = s->thinking.data[0] = 0;
    struct lm_think_filter f = {.keep_thinking = keep_thinking, .keep_blank = keep_blank, .in_think = in_think,
                                .out = collect, .ud = s};
    size_t at = 0, len = strlen(text);
    for (int i = 0; i <= n_cuts; i++) {
        size_t end = i < n_cuts ? cuts[i] : len;
        lm_think_feed(&f, text + at, end - at);
        at = end;
    }
    lm_think_flush(&f);
    lm_think_free(&f);
}

TEST(chat_think_filter) {
    static const struct {
        bool in_think; /* the prompt opened <think> */
        const char *text, *answer, *thinking;
    } cases[] = {
        {false, "Hello", "Hello", ""},
        {false, "<think>\nplan\n</think>\n\nHi there", "Hi there", "<think>\nplan\n</think>"},
        {true, "plan</think>\n\nAnswer", "Answer", "plan</think>"},
        {true, "never closed", "", "never closed"},
        {false, "a<think>b</think>c<think>d</think>e", "ace", "<think>b</think><think>d</think>"},
        {false, "x <thin", "x <thin", ""},                 /* a tag's start at the very end is text */
        {false, "1 < 2 <thinking>", "1 < 2 <thinking>", ""}, /* not the tag */
        {false, "a</think>b", "a</think>b", ""},           /* a closing tag outside thinking is text */
        {false, " \n Hi \n", "Hi \n", ""},                 /* only the start of the answer is trimmed */
        {false, "<think>x</think>", "", "<think>x</think>"},
        {false, "<<think>>\xc3\xa9</think><", "<<", "<think>>\xc3\xa9</think>"},
    };
    struct seen s = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *text = cases[i].text;
        size_t len = strlen(text);
        size_t *bytes = lm_xmalloc(sizeof *bytes * (len + 1));
        for (size_t k = 0; k < len; k++) bytes[k] = k + 1;
        /* variant 0: whole; 1: byte by byte; 2 + k: cut in two at offset k */
        for (size_t v = 0; v < len + 3; v++) {
            size_t at = v - 2;
            const size_t *cuts = v == 0 ? NULL : v == 1 ? bytes : &at;
            int n_cuts = v == 0 ? 0 : v == 1 ? (int)len : 1;
            /* A pipe: the answer only. */
            filter(false, false, cases[i].in_think, text, cuts, n_cuts, &s);
            if (strcmp(s.all.data, cases[i].answer) || s.thinking.len)
                test_fail(__FILE__, __LINE__, "case %zu, variant %zu: \"%s\" gave \"%s\" (thinking \"%s\"), want \"%s\"", i,
                          v, text, s.all.data, s.thinking.data, cases[i].answer);
            /* --show-thinking in a pipe: everything, in order, as it came. */
            filter(true, true, cases[i].in_think, text, cuts, n_cuts, &s);
            if (strcmp(s.all.data, text) || strcmp(s.thinking.data, cases[i].thinking))
                test_fail(__FILE__, __LINE__, "case %zu, variant %zu: kept \"%s\" (thinking \"%s\"), want thinking \"%s\"", i,
                          v, s.all.data, s.thinking.data, cases[i].thinking);
        }
        free(bytes);
    }
    /* A terminal: thinking shown (dimmed by the caller), the answer trimmed. */
    filter(true, false, false, "<think>\nplan\n</think>\n\nHi", NULL, 0, &s);
    EXPECT_EQ_STR(s.all.data, "<think>\nplan\n</think>Hi");
    lm_buf_free(&s.all);
    lm_buf_free(&s.thinking);
    return 0;
}

static bool opened(const char *prompt) { return lm_think_opened(prompt, strlen(prompt)); }

TEST(chat_think_opened) {
    EXPECT(opened("<\xef\xbd\x9c" "Assistant\xef\xbd\x9c><think>\n")); /* DeepSeek-R1's generation prompt */
    EXPECT(opened("<think> \n\n"));
    EXPECT(opened("<think>"));
    EXPECT(!opened("<|im_start|>assistant\n"));
    EXPECT(!opened("<think>x</think>\n"));
    EXPECT(!opened("think>"));
    EXPECT(!opened(""));
    return 0;
}
