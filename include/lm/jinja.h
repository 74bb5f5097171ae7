/* jinja.h: chat templates, interpreted from the model's own Jinja text.
 *
 * A model's chat format ships as a Jinja template (tokenizer.chat_template).
 * Rather than recognising a list of known formats, lm interprets that
 * template the way Hugging Face transformers renders it with Python's jinja2
 * (jinja2.sandbox.ImmutableSandboxedEnvironment with trim_blocks,
 * lstrip_blocks and the loop-controls extension; a tojson filter that is
 * json.dumps(ensure_ascii=False); raise_exception and strftime_now
 * globals), so the prompt is byte for byte the one the model was trained on.
 * References: jinja2 3.1 (lexer.py, parser.py, filters.py, tests.py,
 * sandbox.py), transformers' chat_template_utils.py.
 *
 * The language: text, {{ }}, {# #}, whitespace control (-, +, trim_blocks,
 * lstrip_blocks, newlines normalized, one trailing newline dropped), raw;
 * if/elif/else, for (with else, an if filter, tuple unpacking, loop.index/
 * index0/revindex/revindex0/first/last/length/previtem/nextitem/cycle,
 * break, continue), set (names, tuples, namespace attributes, blocks with
 * filters), macro (defaults, keyword arguments, recursion), filter blocks,
 * with. Values are None, bool, int, float, str, list, tuple, dict,
 * namespace, with Python's semantics: and/or return an operand; str() and
 * repr() printing ({{ [1, 'a'] }} prints "[1, 'a']", {{ none }} "None");
 * str methods; dict get/items/keys/values (as views); slicing; in, ~, //,
 * %, ** and %-formatting; markupsafe's Markup from |safe. Tests: all of
 * jinja2's. Filters: abs attr batch capitalize center count d default
 * dictsort e escape first float forceescape format indent int items join
 * last length list lower map max min reject rejectattr replace reverse
 * round safe select selectattr sort string sum title tojson trim unique
 * upper wordcount; map, select, items, ... return generators (always true,
 * no length, not JSON, one pass) as in jinja2. Globals: range, dict,
 * namespace, raise_exception, strftime_now. Undefined names are falsy,
 * print as nothing and fail in arithmetic or attribute access (jinja2's
 * default Undefined); the sandbox's refusals (list.append, dict.pop, ...)
 * fail too. Unknown filters fail when parsed, or when reached inside an if,
 * as in jinja2.
 *
 * Errors (syntax, runtime, raise_exception) are one line,
 * "line L, column C: what". Work is bounded: nesting depth, a step budget,
 * output size and memory (lm_template_opts), so any input ends with a result
 * or an error.
 *
 * Left out on purpose: template inheritance and includes (extends, block,
 * include, import), call blocks, recursive loops, loop.changed, async,
 * autoescaping, the cycler/joiner/lipsum globals and the groupby, slice,
 * truncate, urlize, wordwrap, xmlattr, filesizeformat, pprint, random
 * filters, str.format, attributes of numbers (n.real), \N{name} escapes,
 * integers beyond int64 (overflow is an error), case mapping beyond
 * Latin-1, Latin Extended-A, Greek and Cyrillic, and printing functions or
 * generators the way Python does (with memory addresses).
 */
#ifndef LM_JINJA_H
#define LM_JINJA_H

#include "lm/common.h"
#include "lm/json.h"

/* One chat message, for the simple entry point. */
struct lm_chat_msg {
    const char *role;
    const char *content;
};

struct lm_template_opts {
    bool add_generation_prompt;
    const char *bos_token;       /* NULL: undefined in the template */
    const char *eos_token;       /* NULL: undefined */
    const struct lm_json *vars;  /* an object of further variables (tools, enable_thinking, ...), or NULL */
    const char *date;            /* "YYYY-MM-DD" pins strftime_now's date (tests); NULL: today */
    /* Bounds; 0 means the default. */
    size_t max_output;           /* bytes of any rendered text (default LM_TEMPLATE_MAX_OUTPUT) */
    size_t max_memory;           /* bytes of interpreter memory (default LM_TEMPLATE_MAX_MEMORY) */
    uint64_t max_steps;          /* evaluation steps (default LM_TEMPLATE_MAX_STEPS) */
};

#define LM_TEMPLATE_MAX_OUTPUT ((size_t)16 << 20)
#define LM_TEMPLATE_MAX_MEMORY ((size_t)256 << 20)
#define LM_TEMPLATE_MAX_STEPS ((uint64_t)50000000)
#define LM_TEMPLATE_MAX_DEPTH 500  /* nested expressions, statements and macro calls */

/* Renders tmpl[0..tmpl_len) with messages = [{role, content}, ...],
 * add_generation_prompt, bos_token and eos_token. The text is appended to
 * out. 0, or -1 with err set (out then holds nothing new). */
int lm_template_render(const char *tmpl, size_t tmpl_len, const struct lm_chat_msg *msgs, size_t n_msgs,
                       bool add_generation_prompt, const char *bos_token, const char *eos_token,
                       struct lm_buf *out, struct lm_err *err);

/* The same with the conversation as JSON, with the options above: either
 * an array of messages (extra fields such as tool_calls or
 * reasoning_content reach the template), or an object with "messages" and
 * further variables ("tools", ...) that are added to (and override)
 * opts->vars. This is what `lm template --messages` reads. */
int lm_template_render_json(const char *tmpl, size_t tmpl_len, const struct lm_json *input,
                            const struct lm_template_opts *opts, struct lm_buf *out, struct lm_err *err);

/* The same from JSON text (errors in it start with "messages: "): the
 * entry point for fuzzing. */
int lm_template_render_text(const char *tmpl, size_t tmpl_len, const char *json, size_t json_len,
                            const struct lm_template_opts *opts, struct lm_buf *out, struct lm_err *err);

#endif
