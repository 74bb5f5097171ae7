/* The chat-template interpreter.
 *
 * - language: snippets whose expected output is what Python's jinja2
 *   renders in transformers' setup (ImmutableSandboxedEnvironment,
 *   trim_blocks, lstrip_blocks, loop controls, json.dumps tojson), with the
 *   context below;
 * - errors: messages with line and column, counted by hand;
 * - bounds: recursion, nesting, output, steps and memory end in errors;
 * - goldens: every template in ../shared/templates (and the default
 *   model's, committed in tests/data/templates, and lm's built-ins, as
 *   "builtin:NAME") for the conversations in
 *   tests/data/conversations, against tests/data/templates/NAME.json as
 *   scripts/render-templates.py renders them with jinja2;
 * - random mutations of real templates never crash.
 */
#include "lm/chat.h"
#include "lm/jinja.h"
#include "test.h"

#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>

#define DATA "tests/data/"

static const char context[] =
    "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"Hi\"},"
    " {\"role\": \"assistant\", \"content\": \"Hello!\"}],"
    " \"d\": {\"a\": 1, \"b\": [1, 2, {\"c\": null}], \"items\": 5}, \"s\": \"Hello World\", \"u\": \"h\xc3\xa9llo w\xc3\xb6rld\","
    " \"n\": 3, \"f\": 2.5, \"l\": [3, 1, 2], \"e\": [], \"t\": true, \"z\": null, \"ws\": \"  a  b\\tc \\n\","
    " \"strs\": [\"b\", \"A\", \"c\", \"a\"], \"objs\": [{\"n\": \"x\", \"v\": 2}, {\"n\": \"y\", \"v\": 1}, {\"n\": \"z\"}]}";

static const struct lm_template_opts base_opts = {
    .add_generation_prompt = true, .bos_token = "<s>", .eos_token = "</s>", .date = "2025-03-14"};

/* Renders tmpl with the context; returns the output or "ERROR: message"
 * (static buffer, valid until the next call). */
static const char *render_opts(const char *tmpl, const struct lm_template_opts *opts) {
    static struct lm_buf out;
    struct lm_err err = {{0}};
    out.len = 0;
    if (lm_template_render_text(tmpl, strlen(tmpl), context, strlen(context), opts, &out, &err) < 0) {
        out.len = 0;
        lm_buf_printf(&out, "ERROR: %s", err.msg);
    }
    lm_buf_putc(&out, 0);
    return out.data;
}

static const char *render(const char *tmpl) { return render_opts(tmpl, &base_opts); }

static const struct {
    const char *tmpl, *want;
} language[] = {
    /* literals and printing */
    {"{{ 1 }}|{{ -2 }}|{{ 1.5 }}|{{ 3.0 }}|{{ 1e16 }}|{{ 1e-5 }}|{{ 0.1 + 0.2 }}|{{ 1_000 }}|{{ 0x1F }}|{{ 0b101 }}|{{ 0o17 }}",
     "1|-2|1.5|3.0|1e+16|1e-05|0.30000000000000004|1000|31|5|15"},
    {"{{ true }}|{{ false }}|{{ none }}|{{ True }}|{{ None }}|[{{ undefined_var }}]",
     "True|False|None|True|None|[]"},
    {"{{ 'single' }}|{{ \"double\" }}|{{ \"a\" 'b' }}|{{ 'tab\\there' }}|{{ '\\x41\\u00e9\\101' }}|{{ 'keep \\d' }}",
     "single|double|ab|tab\there|AéA|keep \\d"},
    {"{{ [1, 'a', none, true, 1.5] }}|{{ (1,) }}|{{ (1, 2) }}|{{ () }}|{{ {'k': 'v', 'n': [1]} }}",
     "[1, 'a', None, True, 1.5]|(1,)|(1, 2)|()|{'k': 'v', 'n': [1]}"},
    {"{{ [\"it's\", 'say \"hi\"', 'both \\' \"', 'nl\n', 'é', '\\x01'] }}",
     "[\"it's\", 'say \"hi\"', 'both \\' \"', 'nl\\n', 'é', '\\x01']"},
    /* arithmetic */
    {"{{ 1 + 2 * 3 - 4 / 2 }}|{{ 7 // 2 }}|{{ -7 // 2 }}|{{ -7 % 3 }}|{{ 7 % -3 }}|{{ 7 / 2 }}|{{ 2 ** 10 }}|{{ 2 ** -1 }}|{{ 2 ** 3 ** 2 }}|{{ 7.5 // 2 }}|{{ -7.5 % 2 }}",
     "5.0|3|-4|2|-2|3.5|1024|0.5|64|3.0|0.5"},
    {"{{ 'ab' * 3 }}|{{ [0] * 3 }}|{{ 2 * 'x' }}|{{ [1, 2] + [3] }}|{{ (1,) + (2,) }}|{{ 'a' + 'b' }}|{{ true + 1 }}",
     "ababab|[0, 0, 0]|xx|[1, 2, 3]|(1, 2)|ab|2"},
    {"{{ 'a' ~ 1 ~ none ~ true ~ undefined_var ~ [1] ~ 2.0 }}|{{ 2 * 3 ~ 4 }}",
     "a1NoneTrue[1]2.0|64"},
    {"{{ \"%s and %r\" % ('x', 'y') }}|{{ \"%05.1f|%-4d|%x\" % (3.14159, 7, 255) }}|{{ \"%(a)s\" % {'a': 1} }}|{{ \"%s\" | format(5) }}",
     "x and 'y'|003.1|7   |ff|1|5"},
    /* comparisons and logic */
    {"{{ 1 == 1.0 }}|{{ true == 1 }}|{{ (1, 2) == [1, 2] }}|{{ {'a': 1} == {'a': 1} }}|{{ undefined_var == other_undefined }}|{{ 1 != 2 }}",
     "True|True|False|True|True|True"},
    {"{{ 1 < 2 < 3 }}|{{ 3 > 2 > 2 }}|{{ 'a' < 'b' }}|{{ [1, 2] < [1, 3] }}|{{ 2 >= 2.0 }}",
     "True|False|True|True|True"},
    {"{{ 'a' in 'cat' }}|{{ 2 in l }}|{{ 'a' in d }}|{{ 'x' not in 'abc' }}|{{ 'x' in undefined_var }}|{{ '' in 'a' }}",
     "True|True|True|True|False|True"},
    {"{{ 0 or 'x' }}|{{ 1 and 'y' }}|{{ '' or [] }}|{{ none and 1 }}|{{ not 0 }}|{{ not 'a' }}|{{ not true == false }}",
     "x|y|[]|None|True|False|True"},
    {"{{ 'yes' if t else 'no' }}|{{ 'yes' if z else 'no' }}|[{{ 'yes' if z }}]|{{ 'a' if false else 'b' if false else 'c' }}",
     "yes|no|[]|c"},
    /* attribute and item access */
    {"{{ d.a }}|{{ d['a'] }}|{{ d['items'] }}|{{ d.get('a') }}|{{ d.get('zz', 'dflt') }}|{{ d.get('zz') }}|{{ d.b[2].c }}|{{ d.b.0 }}|[{{ d.missing }}]|[{{ z.anything }}]|[{{ l[10] }}]",
     "1|1|5|1|dflt|None|None|1|[]|[]|[]"},
    {"{{ messages[0].role }}|{{ messages[-1]['content'] }}|{{ messages | length }}|{{ messages[1:] | map(attribute='role') | join(',') }}",
     "system|Hello!|3|user,assistant"},
    {"{{ s[0] }}|{{ s[-1] }}|{{ s[1:4] }}|{{ s[::-1] }}|{{ s[::2] }}|{{ u[1:3] }}|{{ u[::-1] }}|{{ l[1:] }}|{{ l[::-1] }}|{{ l[-10:10] }}|{{ 'abc'[5:] }}|{{ (1, 2, 3)[1:] }}",
     "H|d|ell|dlroW olleH|HloWrd|él|dlröw olléh|[1, 2]|[2, 1, 3]|[3, 1, 2]||(2, 3)"},
    {"{{ d.keys() }}|{{ d.values() | list }}|{{ d.items() | list }}|{{ d.keys() | length }}",
     "dict_keys(['a', 'b', 'items'])|[1, [1, 2, {'c': None}], 5]|[('a', 1), ('b', [1, 2, {'c': None}]), ('items', 5)]|3"},
    /* str methods */
    {"{{ s.upper() }}|{{ s.lower() }}|{{ 'hello wORLD'.title() }}|{{ 'hELLO'.capitalize() }}|{{ s.swapcase() }}|{{ u.upper() }}|{{ 'ÀÉÎ Straße'.lower() }}|{{ 'straße'.upper() }}",
     "HELLO WORLD|hello world|Hello World|Hello|hELLO wORLD|HÉLLO WÖRLD|àéî straße|STRASSE"},
    {"{{ ws.strip() }}|{{ ws.lstrip() }}|{{ ws.rstrip() }}|{{ 'xxaxx'.strip('x') }}|{{ '\n\nx\n'.strip('\n') }}|{{ '\\u3000 x\\u00a0'.strip() }}",
     "a  b\tc|a  b\tc \n|  a  b\tc|a|x|x"},
    {"{{ ws.split() }}|{{ 'a,b,,c'.split(',') }}|{{ 'a,b,c'.split(',', 1) }}|{{ 'a,b,c'.rsplit(',', 1) }}|{{ '  a b  c '.split(None, 1) }}|{{ 'a</think>b</think>c'.split('</think>')[-1] }}",
     "['a', 'b', 'c']|['a', 'b', '', 'c']|['a', 'b,c']|['a,b', 'c']|['a', 'b  c ']|c"},
    {"{{ 'a\nb\r\nc\n'.splitlines() }}|{{ 'a\nb'.splitlines(true) }}",
     "['a', 'b', 'c']|['a\\n', 'b']"},
    {"{{ s.startswith('He') }}|{{ s.endswith('ld') }}|{{ s.startswith(('x', 'H')) }}|{{ s.startswith('W', 6) }}|{{ s.find('o') }}|{{ s.rfind('o') }}|{{ u.find('w') }}|{{ s.count('l') }}|{{ s.index('W') }}",
     "True|True|True|True|4|7|6|3|6"},
    {"{{ s.replace('l', 'L') }}|{{ s.replace('l', 'L', 1) }}|{{ 'abc'.replace('', '-') }}|{{ '-'.join(['a', 'b']) }}|{{ s.center(15, '*') }}|{{ s.ljust(13) }}|{{ s.rjust(13, '.') }}|{{ '-42'.zfill(5) }}",
     "HeLLo WorLd|HeLlo World|-a-b-c-|a-b|**Hello World**|Hello World  |..Hello World|-0042"},
    {"{{ s.partition(' ') }}|{{ s.rpartition('o') }}|{{ s.removeprefix('He') }}|{{ s.removesuffix('x') }}|{{ '123'.isdigit() }}|{{ 'abc'.isalpha() }}|{{ ' \\t'.isspace() }}|{{ 'AB'.isupper() }}|{{ ''.islower() }}",
     "('Hello', ' ', 'World')|('Hello W', 'o', 'rld')|llo World|Hello World|True|True|True|True|False"},
    /* tests */
    {"{{ n is odd }}|{{ n is even }}|{{ n is divisibleby 3 }}|{{ undefined_var is defined }}|{{ undefined_var is undefined }}|{{ z is none }}|{{ z is not none }}|{{ n is number }}|{{ t is number }}|{{ t is integer }}|{{ f is float }}|{{ t is boolean }}",
     "True|False|True|False|True|True|False|True|True|False|True|True"},
    {"{{ s is string }}|{{ d is mapping }}|{{ l is sequence }}|{{ s is iterable }}|{{ n is iterable }}|{{ undefined_var is sequence }}|{{ t is true }}|{{ 0 is false }}|{{ n is in [3] }}|{{ n is eq 3 }}|{{ n is gt 2 }}|{{ n is ne 3 }}|{{ 'ab' is lower }}|{{ range is callable }}|{{ z is sameas none }}|{{ 'upper' is filter }}|{{ 'odd' is test }}",
     "True|True|True|True|False|True|True|False|True|True|True|False|True|True|True|True|True"},
    /* filters */
    {"{{ l | length }}|{{ u | length }}|{{ d | count }}|{{ undefined_var | length }}|{{ l | first }}|{{ l | last }}|{{ l | sort }}|{{ l | sort(reverse=true) }}|{{ strs | sort }}|{{ strs | sort(case_sensitive=true) }}|{{ l | max }}|{{ l | min }}|{{ l | sum }}",
     "3|11|3|0|3|2|[1, 2, 3]|[3, 2, 1]|['A', 'a', 'b', 'c']|['A', 'a', 'b', 'c']|3|1|6"},
    {"{{ strs | unique | list }}|{{ l | reverse | list }}|{{ s | reverse }}|{{ s | list }}|{{ d | list }}|{{ l | join('-') }}|{{ [none, true, 1] | join(',') }}|{{ objs | join(',', attribute='n') }}",
     "['b', 'A', 'c']|[2, 1, 3]|dlroW olleH|['H', 'e', 'l', 'l', 'o', ' ', 'W', 'o', 'r', 'l', 'd']|['a', 'b', 'items']|3-1-2|None,True,1|x,y,z"},
    {"{{ objs | map(attribute='n') | join(',') }}|{{ objs | map(attribute='v', default=0) | list }}|{{ strs | map('upper') | list }}|{{ objs | selectattr('v') | map(attribute='n') | list }}|{{ objs | rejectattr('v') | list }}|{{ objs | selectattr('v', 'equalto', 2) | list }}|{{ l | select('odd') | list }}|{{ l | reject('odd') | list }}",
     "x,y,z|[2, 1, 0]|['B', 'A', 'C', 'A']|['x', 'y']|[{'n': 'z'}]|[{'n': 'x', 'v': 2}]|[3, 1]|[2]"},
    {"{{ [0, 1, '', 2] | reject | list }}|{{ [0, 1, '', 2] | select | list }}|{{ {'a': 0} | reject | list }}", /* no test: truthiness */
     "[0, '']|[1, 2]|[]"},
    {"{{ objs | sort(attribute='n', reverse=true) | map(attribute='n') | join }}|{{ objs | max(attribute='n') }}|{{ [1, 2, 3] | batch(2) | list }}|{{ none | selectattr('x') | list }}",
     "zyx|{'n': 'z'}|[[1, 2], [3]]|[]"},
    {"{{ d | tojson }}|{{ l | tojson(separators=(',', ':')) }}|{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}|{{ u | tojson }}|{{ u | tojson(ensure_ascii=true) }}|{{ {1: 2, none: 3, true: 4} | tojson }}|{{ \"q\\\"b\\\\s\n\\u0001\" | tojson }}|{{ [1.0, 1e20, 0.5, -0.0] | tojson }}",
     "{\"a\": 1, \"b\": [1, 2, {\"c\": null}], \"items\": 5}|[3,1,2]|{\"a\": 2, \"b\": 1}|\"héllo wörld\"|\"h\\u00e9llo w\\u00f6rld\"|{\"1\": 4, \"null\": 3}|\"q\\\"b\\\\s\\n\\u0001\"|[1.0, 1e+20, 0.5, -0.0]"},
    {"{{ d | tojson(indent=2) }}|{{ [] | tojson(indent=2) }}|{{ {'a': []} | tojson(indent='\\t') }}",
     "{\n  \"a\": 1,\n  \"b\": [\n    1,\n    2,\n    {\n      \"c\": null\n    }\n  ],\n  \"items\": 5\n}|[]|{\n\t\"a\": []\n}"},
    {"{{ d | dictsort }}|{{ {'b': 1, 'A': 2, 'a': 0} | dictsort }}|{{ {'b': 1, 'a': 2} | dictsort(by='value') }}|{{ d | items | list }}|{{ undefined_var | items | list }}",
     "[('a', 1), ('b', [1, 2, {'c': None}]), ('items', 5)]|[('A', 2), ('a', 0), ('b', 1)]|[('b', 1), ('a', 2)]|[('a', 1), ('b', [1, 2, {'c': None}]), ('items', 5)]|[]"},
    {"{{ undefined_var | default('dflt') }}|{{ z | default('dflt') }}|{{ '' | default('dflt', true) }}|{{ undefined_var | d('d') }}|{{ '  x  ' | trim }}|{{ 'xxyxx' | trim('x') }}|{{ s | upper }}|{{ s | lower }}",
     "dflt|None|dflt|d|x|y|HELLO WORLD|hello world"},
    {"{{ 'hello world-foo(bar' | title }}|{{ \"they're bill's\" | title }}|{{ 'hELLO' | capitalize }}|{{ s | replace('o', '0') }}|{{ 'aaa' | replace('a', 'b', 2) }}|{{ 3 | string }}|{{ l | string }}|{{ 'abc def' | wordcount }}|{{ 'hi' | center(6) }}",
     "Hello World-Foo(Bar|They're Bill's|Hello|Hell0 W0rld|bba|3|[3, 1, 2]|2|  hi  "},
    {"{{ 'a\nb\n\nc' | indent }}|{{ 'a\nb' | indent(2, true) }}|{{ 'a\n\nb\n' | indent(2, blank=true) }}|{{ 'x\ny' | indent('> ') }}",
     "a\n    b\n\n    c|  a\n  b|a\n  \n  b\n  |x\n> y"},
    {"{{ '12' | int }}|{{ ' 12 ' | int }}|{{ '1.9' | int }}|{{ 'x' | int }}|{{ 'x' | int(7) }}|{{ 2.7 | int }}|{{ '1A' | int(0, 16) }}|{{ '3.5' | float }}|{{ 'x' | float }}|{{ 3 | float }}|{{ -3 | abs }}|{{ 2.567 | round(2) }}|{{ 2.5 | round }}|{{ 2.1 | round(0, 'ceil') }}",
     "12|12|1|0|7|2|26|3.5|0.0|3.0|3|2.57|2.0|3.0"},
    {"{{ '<a href=\"x\">&\\'' | e }}|{{ '<b>' | safe }}|{{ ('<b>' | safe) + '<i>' }}|{{ '<i>' + ('<b>' | safe) }}|{{ ('<b>' | safe) ~ '<i>' }}|{{ '<' | forceescape }}",
     "&lt;a href=&#34;x&#34;&gt;&amp;&#39;|<b>|<b>&lt;i&gt;|&lt;i&gt;<b>|<b><i>|&lt;"},
    /* globals */
    {"{{ range(3) | list }}|{{ range(1, 10, 3) | list }}|{{ range(5, 0, -2) | list }}|{{ dict(a=1, b=2) }}|{{ namespace(a=1).a }}|{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%A %B %j') }}|{{ bos_token }}{{ eos_token }}|{{ add_generation_prompt }}",
     "[0, 1, 2]|[1, 4, 7]|[5, 3, 1]|{'a': 1, 'b': 2}|1|14 Mar 2025|Friday March 073|<s></s>|True"},
    /* statements */
    {"{% if n > 5 %}big{% elif n > 2 %}mid{% else %}small{% endif %}|{% if undefined_var %}x{% else %}undefined is false{% endif %}",
     "mid|undefined is false"},
    {"{% set ns = namespace(x=0) %}{% for i in range(5) %}{% set ns.x = ns.x + i %}{% endfor %}{{ ns.x }}",
     "10"},
    {"{% set x = 1 %}{% for i in [1, 2] %}{{ x }}{% set x = x + 10 %}{{ x }};{% endfor %}{{ x }}",
     "111;111;1"},
    {"{% for i in [1, 2] %}{% if i == 2 %}[{{ y }}]{% endif %}{% set y = i %}{% endfor %}[{{ y }}]",
     "[][]"},
    {"{% if true %}{% set y = 3 %}{% endif %}{{ y }}",
     "3"},
    {"{% for a, b in [(1, 2), (3, 4)] %}{{ a }}{{ b }}{% endfor %}|{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}",
     "1234|a=1;b=[1, 2, {'c': None}];items=5;"},
    {"{% for i in l %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}[{{ loop.previtem }}|{{ loop.nextitem }}]{{ loop.cycle('a', 'b') }};{% endfor %}",
     "1032TrueFalse3[|1]a;2121FalseFalse3[3|2]b;3210FalseTrue3[1|]a;"},
    {"{% for i in l if i > 1 %}{{ i }}/{{ loop.length }} {% else %}empty{% endfor %}|{% for i in e %}x{% else %}empty{% endfor %}",
     "3/2 2/2 |empty"},
    {"{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}",
     "0134"},
    {"{% for c in 'ab' %}{{ c }},{% endfor %}{% for k in d %}{{ k }},{% endfor %}{% for x in undefined_var %}no{% endfor %}",
     "a,b,a,b,items,"},
    {"{% for x in [[1, 2], [3]] %}{% for y in x %}{{ loop.index }}{% endfor %}{{ loop.index }};{% endfor %}",
     "121;12;"},
    {"{% macro m(a, b='B', c=none) %}[{{ a }}{{ b }}{{ c }}]{% endmacro %}{{ m(1) }}{{ m(1, 2) }}{{ m(1, c=3) }}{{ m() }}",
     "[1BNone][12None][1B3][BNone]"},
    {"{% set g = 1 %}{% macro m() %}{{ g }}{{ h }}{% endmacro %}{% set h = 2 %}{{ m() }}{% set g = 5 %}{{ m() }}",
     "1252"},
    {"{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n * fact(n - 1) | int }}{% endif %}{% endmacro %}{{ fact(5) }}",
     "120"},
    {"{% set y %}a {{ n }} b{% endset %}[{{ y }}]{% set y2 | upper %}xy{% endset %}{{ y2 }}",
     "[a 3 b]XY"},
    {"{% filter upper %}abc{{ s }}{% endfilter %}|{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}[{{ a }}]",
     "ABCHELLO WORLD|3[]"},
    {"{% set a, b = [1, 2] %}{{ a }}{{ b }}|{% set c = 1, 2 %}{{ c }}",
     "12|(1, 2)"},
    {"{% raw %}{{ not rendered }}{% endraw %}",
     "{{ not rendered }}"},
    /* whitespace control */
    {"a\n  {% if true %}\n  b\n  {% endif %}\nc",
     "a\n  b\nc"},
    {"a\n  {%+ if true %}\n  b\n  {% endif +%}\nc",
     "a\n    b\n\nc"},
    {"a\n  {%- if true -%}\n  b\n  {%- endif -%}\nc",
     "abc"},
    {"{# comment #}\n  {# indented comment #}\nx\n",
     "x"},
    {"  {{ 'v' }}  \n  {{- 'w' -}}  \n  x",
     "  vwx"},
    {"{% if true %}a{% endif %}\n\nb",
     "a\nb"},
    {"line\n\\t {% if true %}\\tx{% endif %}",
     "line\n\\t \\tx"},
    {"{{- 'a' -}}   {#- c -#}   b",
     "ab"},
    {"x {%- raw -%} {{ y }} {%- endraw -%} z",
     "x{{ y }}z"},
    {"a\r\nb\rc\n{% if true %}\r\nd{% endif %}\r\n",
     "a\nb\nc\nd"},
    {"{%- for m in messages %}\n    {{- m.role }}\n{%- endfor %}\n",
     "systemuserassistant"},
};

TEST(jinja_language) {
    for (size_t i = 0; i < sizeof language / sizeof language[0]; i++) EXPECT_EQ_STR(render(language[i].tmpl), language[i].want);
    return 0;
}

/* Inputs other than the context: the simple API, options, variables. */
TEST(jinja_inputs) {
    const char *tmpl = "{{ bos_token }}{% for m in messages %}[{{ m.role }}:{{ m.content }}]{% endfor %}"
                       "{% if add_generation_prompt %}>{% endif %}{{ eos_token }}";
    struct lm_chat_msg msgs[] = {{"system", "S"}, {"user", "U \xc3\xa9"}};
    struct lm_buf out = {0};
    struct lm_err err = {{0}};
    EXPECT_EQ_INT(lm_template_render(tmpl, strlen(tmpl), msgs, 2, true, "<s>", "</s>", &out, &err), 0);
    lm_buf_putc(&out, 0);
    EXPECT_EQ_STR(out.data, "<s>[system:S][user:U \xc3\xa9]></s>");
    /* appends; NULL tokens are undefined (print nothing); no messages */
    out.len--;
    EXPECT_EQ_INT(lm_template_render(tmpl, strlen(tmpl), NULL, 0, false, NULL, NULL, &out, &err), 0);
    lm_buf_putc(&out, 0);
    EXPECT_EQ_STR(out.data, "<s>[system:S][user:U \xc3\xa9]></s>");
    /* invalid UTF-8 in a message is refused */
    struct lm_chat_msg bad[] = {{"user", "\xff"}};
    out.len = 0;
    EXPECT_EQ_INT(lm_template_render(tmpl, strlen(tmpl), bad, 1, true, NULL, NULL, &out, &err), -1);
    EXPECT_CONTAINS(err.msg, "UTF-8");
    EXPECT_EQ_INT(out.len, 0);
    /* variables: opts->vars, overridden by the conversation object's */
    struct lm_json vars;
    const char *vtext = "{\"enable_thinking\": true, \"x\": \"from opts\"}";
    EXPECT_EQ_INT(lm_json_parse(&vars, vtext, strlen(vtext), &err), 0);
    struct lm_template_opts o = base_opts;
    o.vars = &vars;
    const char *t2 = "{{ enable_thinking }} {{ x }} {{ messages | length }}";
    const char *conv = "{\"messages\": [], \"enable_thinking\": false}";
    out.len = 0;
    EXPECT_EQ_INT(lm_template_render_text(t2, strlen(t2), conv, strlen(conv), &o, &out, &err), 0);
    lm_buf_putc(&out, 0);
    EXPECT_EQ_STR(out.data, "False from opts 0");
    out.len = 0;
    EXPECT_EQ_INT(lm_template_render_text(t2, strlen(t2), "[{", 2, &o, &out, &err), -1);
    EXPECT_EQ_STR(err.msg, "messages: line 1, column 3: expected a string key");
    EXPECT_EQ_INT(lm_template_render_text(t2, strlen(t2), "{\"x\": 1}", 8, &o, &out, &err), -1);
    EXPECT_CONTAINS(err.msg, "no \"messages\"");
    EXPECT_EQ_INT(lm_template_render_text(t2, strlen(t2), "{\"messages\": 5}", 15, &o, &out, &err), -1);
    EXPECT_CONTAINS(err.msg, "messages must be a JSON array");
    lm_json_free(&vars);
    lm_buf_free(&out);
    /* strftime_now without a pinned date gives today's year */
    struct lm_template_opts today = base_opts;
    today.date = NULL;
    const char *year = render_opts("{{ strftime_now('%Y') }}", &today);
    EXPECT(strlen(year) == 4 && year[0] == '2');
    return 0;
}

TEST(jinja_errors) {
    static const struct {
        const char *tmpl, *err;
    } cases[] = {
        {"{{ 1 +}}", "ERROR: line 1, column 7: expected an expression, got '}}'"},
        {"Hello\n{% if x %}\n{% endfor %}", "ERROR: line 3, column 4: unknown tag 'endfor'"},
        {"{{ 'abc }}", "ERROR: line 1, column 4: unterminated string"},
        {"{% if x %}abc", "ERROR: line 1, column 14: missing '{% endif %}', got end of template"},
        {"{{ x | nope }}", "ERROR: line 1, column 8: no filter named 'nope'"},
        {"{{ x is nope }}", "ERROR: line 1, column 9: no test named 'nope'"},
        {"a\n  {{ 1 // 0 }}", "ERROR: line 2, column 8: integer division or modulo by zero"},
        {"{{ messages[0].content.foo.bar }}", "ERROR: line 1, column 27: 'str object' has no attribute 'foo'"},
        {"{% if true %}\n  {{ raise_exception('no system role') }}\n{% endif %}", "ERROR: line 2, column 6: no system role"},
        {"{{ 'a' + 1 }}", "ERROR: line 1, column 8: unsupported operand type(s) for +: 'str' and 'int'"},
        {"{{ 1 ~ 2 + 3 }}", "ERROR: line 1, column 10: unsupported operand type(s) for +: 'str' and 'int'"},
        {"{{ undefined_var + 1 }}", "ERROR: line 1, column 18: 'undefined_var' is undefined"},
        {"{% for x in none %}{% endfor %}", "ERROR: line 1, column 13: 'NoneType' object is not iterable"},
        {"{% set ns = 1 %}{% set ns.x = 2 %}", "ERROR: line 1, column 20: cannot assign attribute on non-namespace object"},
        {"{{ l.append(1) }}", "ERROR: line 1, column 5: access to attribute 'append' of 'list' object is unsafe"},
        {"ok\n  \xff", "ERROR: line 2, column 3: template is not valid UTF-8"},
        {"{% break %}", "ERROR: line 1, column 4: 'break' outside a loop"},
        {"{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}", "ERROR: line 1, column 34: macro 'm' takes not more than 1 argument(s)"},
        {"{# abc", "ERROR: line 1, column 1: missing end of comment tag '#}'"},
        {"\xc3\xa9{{ x.y.z }}", "ERROR: line 1, column 6: 'x' is undefined"},  /* columns count characters */
        {"{% include 'x' %}", "ERROR: line 1, column 4: the 'include' tag is not supported"},
        {"{% do x %}", "ERROR: line 1, column 4: unknown tag 'do'"},
        {"{{ s['a':] }}", "ERROR: line 1, column 5: slice indices must be integers or None or have an __index__ method"},
        {"{{ d | tojson }}{{ undefined_var | tojson }}", "ERROR: line 1, column 36: Object of type Undefined is not JSON serializable"},
        {"{{ l | map('upper') | tojson }}", "ERROR: line 1, column 23: Object of type generator is not JSON serializable"},
        {"{{ \"%d\" % 'x' }}", "ERROR: line 1, column 9: %d format: a real number is required, not str"},
        {"{{ '\\N{DASH}' }}", "ERROR: line 1, column 5: \\N{...} escapes are not supported"},        /* found by fuzz_template: a slice inside a tuple subscript was evaluated without its object */
        {"{{ x[1, :2] }}", "ERROR: line 1, column 9: a slice cannot be part of a tuple subscript"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) EXPECT_EQ_STR(render(cases[i].tmpl), cases[i].err);
    /* an unknown filter inside an if fails only when reached, as in jinja2 */
    EXPECT_EQ_STR(render("{% if false %}{{ x | nope }}{% endif %}ok"), "ok");
    EXPECT_EQ_STR(render("{% for i in [] %}{{ x | nope }}{% endfor %}ok"), "ERROR: line 1, column 25: no filter named 'nope'");
    return 0;
}

static struct lm_buf repeat(const char *a, int n, const char *mid, const char *b) {
    struct lm_buf s = {0};
    for (int i = 0; i < n; i++) lm_buf_puts(&s, a);
    lm_buf_puts(&s, mid);
    for (int i = 0; i < n; i++) lm_buf_puts(&s, b);
    return s;
}

TEST(jinja_bounds) {
    EXPECT_CONTAINS(render("{% macro r(n) %}{{ r(n) }}{% endmacro %}{{ r(1) }}"), "nested too deeply");
    static const struct {
        const char *open, *mid, *close;
    } deep[] = {
        {"(", "1", ")"}, {"[", "1", "]"}, {"not ", "1", ""}, {"-", "1", ""},
        {"{% if true %}", "x", "{% endif %}"}, {"{% for i in [1] %}", "x", "{% endfor %}"},
    };
    for (size_t i = 0; i < sizeof deep / sizeof deep[0]; i++) {
        struct lm_buf s = repeat(deep[i].open, 100000, deep[i].mid, deep[i].close);
        struct lm_buf t = {0};
        if (i < 4) lm_buf_printf(&t, "{{ %s }}", s.data);
        else lm_buf_puts(&t, s.data);
        EXPECT_CONTAINS(render(t.data), "too deeply");
        lm_buf_free(&s);
        lm_buf_free(&t);
    }
    /* long chains build deep trees without parser recursion */
    static const char *const chains[] = {" + 1", "|trim", ".a", " and 1", "[0]", "(1)"};
    for (size_t i = 0; i < sizeof chains / sizeof chains[0]; i++) {
        struct lm_buf s = repeat(chains[i], 100000, "", "");
        struct lm_buf t = {0};
        lm_buf_printf(&t, "{{ 1%s }}", s.data);
        EXPECT_CONTAINS(render(t.data), "too deeply");
        lm_buf_free(&s);
        lm_buf_free(&t);
    }
    struct lm_template_opts o = base_opts;
    o.max_output = 1000;
    EXPECT_EQ_STR(render_opts("{% for i in range(1000) %}xx{% endfor %}", &o), "ERROR: line 1, column 27: template output exceeds 1000 bytes");
    EXPECT_CONTAINS(render_opts("{{ 'x' * 1000000000000 }}", &o), "exceeds");
    EXPECT_CONTAINS(render_opts("{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", &o), "exceeds");
    o = base_opts;
    o.max_steps = 100000;
    EXPECT_CONTAINS(render_opts("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", &o), "takes too long");
    o = base_opts;
    o.max_memory = 4 << 20;
    EXPECT_CONTAINS(render_opts("{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}", &o),
                    "memory");
    EXPECT_CONTAINS(render("{{ range(100001) | length }}"), "Range too big");
    EXPECT_CONTAINS(render("{{ [0] * 1000000000000 }}"), "too large");
    /* a namespace holding itself prints as an error, not a stack overflow */
    EXPECT_CONTAINS(render("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}"), "too deeply");
    return 0;
}

/* ---- goldens ------------------------------------------------------------ */

/* Templates that jinja2 renders and lm does not (yet), with why. */
static const struct {
    const char *name, *reason;
} known_gaps[] = {
    {NULL, NULL},
};

static bool file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static int read_json(const char *path, struct lm_json *v, struct lm_buf *text) {
    struct lm_err err = {{0}};
    text->len = 0;
    if (lm_read_file(path, text, &err) < 0 || lm_json_parse(v, text->data, text->len, &err) < 0) {
        test_fail(__FILE__, __LINE__, "%s: %s", path, err.msg);
        return -1;
    }
    return 0;
}

/* The output jinja2 rendered for case i into want (false when it raised):
 * "output", or the previous case's output and "output_after_previous". */
static bool expected_output(const struct lm_json *cases, size_t i, struct lm_buf *want) {
    const struct lm_json *c = &cases->arr.items[i], *full = lm_json_get(c, "output"), *tail = lm_json_get(c, "output_after_previous");
    if (full) {
        want->len = 0;
        lm_buf_append(want, full->str.s, full->str.len);
        return true;
    }
    if (!tail || i == 0 || !expected_output(cases, i - 1, want)) return false;
    lm_buf_append(want, tail->str.s, tail->str.len);
    return true;
}

static bool is_known_gap(const char *name) {
    for (size_t i = 0; known_gaps[i].name; i++)
        if (!strcmp(known_gaps[i].name, name)) return true;
    return false;
}

/* Checks one expectation file; returns 1 when every case matched, -1 when
 * the template is not found (a failure when the shared folder is there). */
static int check_template(const char *json_path, bool have_shared, int *n_cases, int *n_missing) {
    struct lm_buf text = {0}, tmpl = {0}, conv_text = {0}, out = {0}, want = {0};
    struct lm_json exp = {0};
    struct lm_err err = {{0}};
    int ok = 0;
    if (read_json(json_path, &exp, &text) < 0) goto done;
    const struct lm_json *name = lm_json_get(&exp, "template"), *cases = lm_json_get(&exp, "cases");
    if (!name || name->type != LM_JSON_STRING || !cases || cases->type != LM_JSON_ARRAY) {
        test_fail(__FILE__, __LINE__, "%s: not an expectations file", json_path);
        goto done;
    }
    char shared_rel[512], local[512];
    snprintf(shared_rel, sizeof shared_rel, "templates/%s", name->str.s);
    snprintf(local, sizeof local, DATA "templates/%s", name->str.s);
    const char *path = file_exists(local) ? local : test_shared_path(shared_rel);
    if (!strncmp(name->str.s, "builtin:", 8)) { /* one of lm's own (--template NAME) */
        const char *builtin = lm_chat_builtin(name->str.s + 8);
        if (!builtin) {
            test_fail(__FILE__, __LINE__, "%s: lm has no built-in template %s", json_path, name->str.s + 8);
            goto done;
        }
        lm_buf_puts(&tmpl, builtin);
    } else if (!file_exists(path)) {
        if (have_shared) test_fail(__FILE__, __LINE__, "%s: %s not found", json_path, path);
        (*n_missing)++;
        ok = -1;
        goto done;
    } else if (lm_read_file(path, &tmpl, &err) < 0) {
        test_fail(__FILE__, __LINE__, "%s", err.msg);
        goto done;
    }
    bool gap = is_known_gap(name->str.s), all = true;
    for (size_t i = 0; i < cases->arr.n; i++) {
        const struct lm_json *c = &cases->arr.items[i];
        const struct lm_json *cv = lm_json_get(c, "conversation"), *gen = lm_json_get(c, "add_generation_prompt");
        const struct lm_json *jerr = lm_json_get(c, "error");
        bool renders = expected_output(cases, i, &want);
        char conv_path[512];
        snprintf(conv_path, sizeof conv_path, DATA "conversations/%s.json", cv ? cv->str.s : "?");
        conv_text.len = 0;
        if (lm_read_file(conv_path, &conv_text, &err) < 0) {
            test_fail(__FILE__, __LINE__, "%s", err.msg);
            all = false;
            continue;
        }
        struct lm_template_opts o = base_opts;
        o.add_generation_prompt = gen && gen->boolean;
        out.len = 0;
        int r = lm_template_render_text(tmpl.data, tmpl.len, conv_text.data, conv_text.len, &o, &out, &err);
        (*n_cases)++;
        bool match = renders ? r == 0 && out.len == want.len && !memcmp(out.data ? out.data : "", want.data ? want.data : "", out.len) : r < 0;
        if (!match && !gap) {
            if (!renders) test_fail(__FILE__, __LINE__, "%s/%s/gen=%d: jinja2 raised (%s), lm rendered", name->str.s, cv->str.s, o.add_generation_prompt,
                                 jerr ? jerr->str.s : "?");
            else if (r < 0) test_fail(__FILE__, __LINE__, "%s/%s/gen=%d: %s", name->str.s, cv->str.s, o.add_generation_prompt, err.msg);
            else {
                size_t k = 0;
                while (k < out.len && k < want.len && out.data[k] == want.data[k]) k++;
                test_fail(__FILE__, __LINE__, "%s/%s/gen=%d: output differs from byte %zu: \"%.40s\" vs jinja2 \"%.40s\"", name->str.s,
                          cv->str.s, o.add_generation_prompt, k, out.data + k, want.data + k);
            }
        }
        all &= match;
    }
    ok = all;
    if (gap && all) test_fail(__FILE__, __LINE__, "%s matches now: take it off known_gaps", name->str.s);
done:
    lm_json_free(&exp);
    lm_buf_free(&text);
    lm_buf_free(&tmpl);
    lm_buf_free(&conv_text);
    lm_buf_free(&out);
    lm_buf_free(&want);
    return ok;
}

static int by_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

TEST(jinja_templates_match_jinja2) {
    DIR *d = opendir(DATA "templates");
    if (!d) {
        test_fail(__FILE__, __LINE__, "no " DATA "templates");
        return 0;
    }
    char *names[1024];
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d)) && n < 1024;) {
        size_t len = strlen(e->d_name);
        if (len > 5 && !strcmp(e->d_name + len - 5, ".json")) names[n++] = lm_xstrdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, by_str);
    if (n == 0) test_fail(__FILE__, __LINE__, "no expectations in " DATA "templates");
    char shared[512]; /* test_shared_path's buffer is reused below */
    snprintf(shared, sizeof shared, "%s", test_shared_path("templates"));
    DIR *sd = opendir(shared);
    int passed = 0, checked = 0, n_cases = 0, n_missing = 0;
    for (size_t i = 0; i < n; i++) {
        char path[600];
        snprintf(path, sizeof path, DATA "templates/%s", names[i]);
        int r = check_template(path, sd != NULL, &n_cases, &n_missing);
        if (r >= 0) checked++, passed += r;
        free(names[i]);
    }
    /* templates in shared/ that have no expectations yet */
    int unexpected = 0;
    for (struct dirent *e; sd && (e = readdir(sd));) {
        size_t len = strlen(e->d_name);
        if (len < 7 || strcmp(e->d_name + len - 6, ".jinja")) continue;
        char path[600];
        snprintf(path, sizeof path, DATA "templates/%.*s.json", (int)(len - 6), e->d_name);
        if (!file_exists(path)) {
            fprintf(stderr, "  note: %s has no expectations (run scripts/render-templates.py)\n", e->d_name);
            unexpected++;
        }
    }
    if (test_verbose || n_missing)
        fprintf(stderr, "  %d of %d templates render byte for byte as jinja2 does (%d cases); %d not found, %d without expectations\n",
                passed, checked, n_cases, n_missing, unexpected);
    /* Without the shared folder only the templates kept here are checked. */
    if (!sd) return test_skip("%s is absent: %d of %zu templates checked", shared, checked, n);
    closedir(sd);
    return 0;
}

/* Every built-in template has expectations, so the golden test covers it. */
TEST(jinja_builtins_have_expectations) {
    int n = 0;
    for (const char *const *name = lm_chat_builtin_names; *name; name++, n++) {
        char path[256];
        snprintf(path, sizeof path, DATA "templates/builtin-%s.json", *name);
        if (!file_exists(path)) test_fail(__FILE__, __LINE__, "no %s (run scripts/render-templates.py)", path);
    }
    EXPECT(n >= 6);
    return 0;
}

/* ---- robustness --------------------------------------------------------- */

TEST(jinja_mutations) {
    /* Random edits of a real template and of the language snippets, from a
     * fixed seed: every render must end with output or an error message
     * (ASan/UBSan builds check the rest). */
    struct lm_buf src = {0}, t = {0}, out = {0};
    struct lm_err err;
    if (lm_read_file(DATA "templates/SmolLM2-135M-Instruct.jinja", &src, &err) < 0) {
        test_fail(__FILE__, __LINE__, "%s", err.msg);
        return 0;
    }
    static const char *const pieces[] = {"{{", "}}", "{%", "%}", "{#", "#}", "-", "+", "(", ")", "[", "]", "'", "\"", "|",
                                         " if ", " for x in ", "endif", "endfor", "else", "loop.", "~", "*", "\\", "\n",
                                         "{% set ns = namespace(a=1) %}", "ns.a", "messages", " is ", "defined", "[::-1]",
                                         "|tojson", "|length", "\xc3", "\xe2\x82\xac", "0", "999999999999", ".split('a')"};
    struct lm_template_opts o = base_opts;
    o.max_steps = 20000;
    o.max_output = 1 << 16;
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    int ok = 0, failed = 0;
    size_t n_lang = sizeof language / sizeof language[0];
    for (int iter = 0; iter < 4000; iter++) {
        lm_buf_free(&t);
        if (iter % 2) lm_buf_append(&t, src.data, src.len);
        else lm_buf_puts(&t, language[(size_t)iter / 2 % n_lang].tmpl);
        int edits = 1 + (int)(seed % 2);
        for (int k = 0; k < edits; k++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            size_t pos = (size_t)(seed >> 33) % (t.len + 1);
            int what = (int)((seed >> 20) % 3);
            struct lm_buf nt = {0};
            lm_buf_append(&nt, t.data, pos);
            if (what != 1) lm_buf_puts(&nt, pieces[(seed >> 40) % (sizeof pieces / sizeof pieces[0])]);
            size_t skip = what == 0 ? 0 : (size_t)((seed >> 8) % 3);
            if (pos + skip > t.len) skip = t.len - pos;
            lm_buf_append(&nt, t.data + pos + skip, t.len - pos - skip);
            lm_buf_free(&t);
            t = nt;
        }
        out.len = 0;
        memset(&err, 0, sizeof err);
        if (lm_template_render_text(t.data, t.len, context, strlen(context), &o, &out, &err) == 0) ok++;
        else {
            failed++;
            if (!err.msg[0]) test_fail(__FILE__, __LINE__, "error without a message for: %s", t.data);
        }
    }
    if (test_verbose) fprintf(stderr, "  mutations: %d rendered, %d refused\n", ok, failed);
    lm_buf_free(&src);
    lm_buf_free(&t);
    lm_buf_free(&out);
    return 0;
}

/* ---- the command -------------------------------------------------------- */

TEST(jinja_cli) {
    char tfile[512], mfile[512];  /* test_tmp_path reuses its buffer */
    snprintf(tfile, sizeof tfile, "%s", test_tmp_path(".jinja"));
    snprintf(mfile, sizeof mfile, "%s", test_tmp_path(".json"));
    FILE *f = fopen(tfile, "w");
    if (!f) {
        /* our own temporary folder: not a missing resource but a broken run */
        test_fail(__FILE__, __LINE__, "cannot write %s", tfile);
        return 0;
    }
    fputs("{% for m in messages %}<{{ m.role }}>{{ m.content }}\n{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"
          "{{ bos_token }}|{{ strftime_now('%Y-%m-%d') }}", f);
    fclose(f);
    f = fopen(mfile, "w");
    fputs("[{\"role\": \"user\", \"content\": \"Hi \\u00e9\"}]", f);
    fclose(f);
    struct lm_buf out = {0}, errb = {0};
    char args[2048];
    snprintf(args, sizeof args, "template --template-file %s --messages %s --bos-token '<s>' --date 2024-02-29", tfile, mfile);
    EXPECT_EQ_INT(test_run_lm(args, NULL, &out, &errb), 0);
    lm_buf_putc(&out, 0);
    EXPECT_EQ_STR(out.data, "<user>Hi \xc3\xa9\n<assistant><s>|2024-02-29");
    EXPECT_EQ_INT(errb.len, 0);
    /* messages from stdin, no generation prompt */
    out.len = errb.len = 0;
    snprintf(args, sizeof args, "template --template-file %s --messages - --no-generation-prompt", tfile);
    EXPECT_EQ_INT(test_run_lm(args, "{\"messages\": [], \"bos_token\": \"B\"}", &out, &errb), 0);
    lm_buf_putc(&out, 0);
    EXPECT(strncmp(out.data, "B|2", 3) == 0);
    /* errors: the template's (3), the messages file's (1), flags (1) */
    out.len = errb.len = 0;
    EXPECT_EQ_INT(test_run_lm(args, "[{\"role\": 1}, ]", &out, &errb), 1);
    lm_buf_putc(&errb, 0);
    EXPECT_CONTAINS(errb.data, "-: line 1, column 15: unexpected character");
    f = fopen(tfile, "w");
    fputs("ok\n{{ raise_exception('bad conversation') }}", f);
    fclose(f);
    out.len = errb.len = 0;
    snprintf(args, sizeof args, "template --template-file %s --messages %s", tfile, mfile);
    EXPECT_EQ_INT(test_run_lm(args, NULL, &out, &errb), 3);
    lm_buf_putc(&errb, 0);
    EXPECT_CONTAINS(errb.data, ": line 2, column 4: bad conversation");
    EXPECT_EQ_INT(out.len, 0);
    EXPECT_EQ_INT(test_run_lm("template --template-file x.jinja", NULL, NULL, NULL), 1);
    EXPECT_EQ_INT(test_run_lm("template --messages x.json --date 2024-13-01", NULL, NULL, NULL), 1);
    EXPECT_EQ_INT(test_run_lm("template --bogus", NULL, NULL, NULL), 1);
    lm_buf_free(&out);
    lm_buf_free(&errb);
    return 0;
}

/* --template NAME in lm template (the flag lm chat takes too): each
 * built-in renders what jinja2 rendered from it (builtin-NAME.json). */
TEST(jinja_cli_builtin) {
    struct lm_buf exp_text = {0}, out = {0}, errb = {0}, want = {0};
    char path[256], args[1024];
    for (const char *const *name = lm_chat_builtin_names; *name; name++) {
        struct lm_json exp = {0};
        snprintf(path, sizeof path, DATA "templates/builtin-%s.json", *name);
        if (!file_exists(path) || read_json(path, &exp, &exp_text) < 0) continue; /* jinja_builtins_have_expectations fails */
        const struct lm_json *cases = lm_json_get(&exp, "cases");
        int checked = 0;
        for (size_t i = 0; cases && i < cases->arr.n; i++) {
            const struct lm_json *c = &cases->arr.items[i];
            if (strcmp(lm_json_get(c, "conversation")->str.s, "multi_turn") || !expected_output(cases, i, &want)) continue;
            bool gen = lm_json_get(c, "add_generation_prompt")->boolean;
            snprintf(args, sizeof args, "template --template %s --messages " DATA "conversations/multi_turn.json "
                     "--bos-token '<s>' --eos-token '</s>'%s", *name, gen ? "" : " --no-generation-prompt");
            EXPECT_EQ_INT(test_run_lm(args, NULL, &out, &errb), 0);
            if (out.len != want.len || memcmp(out.data, want.data, out.len))
                test_fail(__FILE__, __LINE__, "lm %s:\n%.*s\njinja2:\n%s", args, (int)out.len, out.data, want.data);
            checked++;
        }
        EXPECT_EQ_INT(checked, 2);
        lm_json_free(&exp);
    }
    /* Both commands refuse an unknown name, and both flags at once. */
    static const char *const bad[] = {
        "template --template nonesuch --messages x.json", "chat --template nonesuch",
        "template --template chatml --template-file x.jinja --messages x.json", "chat --template-file x --template chatml",
        "template -m x.gguf --template chatml --messages x.json"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        EXPECT_EQ_INT(test_run_lm(bad[i], NULL, &out, &errb), 1);
        EXPECT_EQ_INT(out.len, 0);
        lm_buf_putc(&errb, 0);
        EXPECT_CONTAINS(errb.data, i < 2 ? "no built-in template 'nonesuch' (chatml, llama3, llama2, gemma, phi3, deepseek-r1)"
                                         : "not both");
    }
    lm_buf_free(&exp_text);
    lm_buf_free(&out);
    lm_buf_free(&errb);
    lm_buf_free(&want);
    return 0;
}

TEST(jinja_cli_model) {
    /* The default model's own template, read from its GGUF: the output is
     * what jinja2 rendered from the same template (extracted with gguf-py). */
    const char *model = test_model_path();
    if (!model) return test_skip("no model (scripts/get-model.sh)");
    struct lm_buf exp_text = {0}, out = {0}, want = {0};
    struct lm_json exp = {0};
    if (read_json(DATA "templates/SmolLM2-135M-Instruct.json", &exp, &exp_text) < 0) return 0;
    const struct lm_json *cases = lm_json_get(&exp, "cases");
    bool found = false;
    for (size_t i = 0; cases && i < cases->arr.n && !found; i++) {
        const struct lm_json *c = &cases->arr.items[i];
        if (!strcmp(lm_json_get(c, "conversation")->str.s, "multi_turn") && lm_json_get(c, "add_generation_prompt")->boolean)
            found = expected_output(cases, i, &want);
    }
    EXPECT(found);
    char args[2048];
    snprintf(args, sizeof args, "template -m '%s' --messages " DATA "conversations/multi_turn.json", model);
    EXPECT_EQ_INT(test_run_lm(args, NULL, &out, NULL), 0);
    if (found) EXPECT(out.len == want.len && !memcmp(out.data, want.data, out.len));
    lm_json_free(&exp);
    lm_buf_free(&exp_text);
    lm_buf_free(&out);
    lm_buf_free(&want);
    return 0;
}
