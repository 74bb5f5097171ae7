#!/usr/bin/env python3
"""Renders the expected outputs of the chat-template tests with Python's jinja2.

For every template (../shared/templates/*.jinja, the ones committed in
tests/data/templates/*.jinja, which come from model files, and lm's built-in
templates, read from the C string literals in src/template/chat.c) and every
conversation in tests/data/conversations/*.json, renders with and without the
generation prompt, set up the way transformers' chat templating does it:
ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks and loop
controls; a tojson filter that is json.dumps(ensure_ascii=False); the
raise_exception and strftime_now globals. strftime_now formats a fixed date
(FIXED_DATE) so the expectations are reproducible; tests pin lm to the same
date.

Writes tests/data/templates/NAME.json (builtin-NAME.json for a built-in,
whose "template" is "builtin:NAME"):
  {"template": "NAME.jinja", "cases": [
     {"conversation": "user", "add_generation_prompt": false, "output": "..."},
     {"conversation": "user", "add_generation_prompt": true, "output_after_previous": "..."},
     {"conversation": "...", "add_generation_prompt": false, "error": "UndefinedError: ..."}, ...]}
"output_after_previous" keeps the files small: the output is the previous
case's output followed by this text (the generation prompt usually just
appends to the same conversation).

Usage: scripts/render-templates.py [--shared DIR] [--extract-gguf MODEL.gguf NAME]
"""
import argparse
import datetime
import glob
import json
import os
import re
import sys

import jinja2
import jinja2.ext
import jinja2.sandbox

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data")
FIXED_DATE = datetime.datetime(2025, 3, 14)
BOS, EOS = "<s>", "</s>"


def make_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return FIXED_DATE.strftime(fmt)

    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def extract_gguf(path, name):
    from gguf import GGUFReader
    r = GGUFReader(path)
    f = r.fields["tokenizer.chat_template"]
    text = bytes(f.parts[f.data[0]]).decode("utf-8")
    out = os.path.join(DATA, "templates", name + ".jinja")
    with open(out, "w", encoding="utf-8", newline="") as fp:
        fp.write(text)
    print("wrote", out)


def c_string(body):
    """The value of a C string literal's body (the escapes src/template/chat.c uses)."""
    escapes = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t"}
    return re.sub(r"\\(.)", lambda m: escapes[m.group(1)], body)


def builtin_templates():
    """(name, text) of each entry of the builtins[] table in src/template/chat.c."""
    with open(os.path.join(ROOT, "src", "chat.c"), encoding="utf-8") as fp:
        src = fp.read()
    table = re.search(r"\} builtins\[\] = \{(.*?)\n\};", src, re.S).group(1)
    literal = r'"((?:[^"\\]|\\.)*)"'
    out = []
    for entry in re.finditer(r"\{\s*%s,\s*((?:%s\s*)+)\}" % (literal, literal), table):
        text = "".join(c_string(m.group(1)) for m in re.finditer(literal, entry.group(2)))
        out.append((c_string(entry.group(1)), text))
    if not out:
        sys.exit("no built-in templates found in src/template/chat.c")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    ap.add_argument("--extract-gguf", nargs=2, metavar=("MODEL", "NAME"))
    args = ap.parse_args()
    if args.extract_gguf:
        extract_gguf(*args.extract_gguf)

    convs = {}
    for p in sorted(glob.glob(os.path.join(DATA, "conversations", "*.json"))):
        with open(p, encoding="utf-8") as fp:
            convs[os.path.splitext(os.path.basename(p))[0]] = json.load(fp)

    paths = sorted(glob.glob(os.path.join(args.shared, "templates", "*.jinja")))
    paths += sorted(glob.glob(os.path.join(DATA, "templates", "*.jinja")))
    if not paths:
        sys.exit("no templates found under %s/templates" % args.shared)
    # (name in the expectations, expectations file, template text)
    templates = []
    for path in paths:
        with open(path, encoding="utf-8", newline="") as fp:
            name = os.path.basename(path)
            templates.append((name, os.path.splitext(name)[0] + ".json", fp.read()))
    for name, text in builtin_templates():
        templates.append(("builtin:" + name, "builtin-%s.json" % name, text))

    env = make_env()
    total = 0
    for name, json_name, src in templates:
        cases = []
        try:
            tmpl = env.from_string(src)
        except jinja2.TemplateError as e:
            tmpl, compile_error = None, "%s: %s" % (type(e).__name__, e)
        for cname, msgs in convs.items():
            prev = None
            for gen in (False, True):
                case = {"conversation": cname, "add_generation_prompt": gen}
                if tmpl is None:
                    case["error"] = compile_error
                else:
                    # a conversation file is a list of messages, or an object
                    # with "messages" and more variables (as lm template reads it)
                    kw = dict(msgs) if isinstance(msgs, dict) else {"messages": msgs}
                    kw.update(add_generation_prompt=gen, bos_token=BOS, eos_token=EOS)
                    try:
                        case["output"] = tmpl.render(**kw)
                    except Exception as e:  # jinja2 raises TypeError & co. too
                        case["error"] = "%s: %s" % (type(e).__name__, e)
                out = case.get("output")
                if out is not None and prev is not None and out.startswith(prev):
                    del case["output"]
                    case["output_after_previous"] = out[len(prev):]
                prev = out
                cases.append(case)
        out = os.path.join(DATA, "templates", json_name)
        with open(out, "w", encoding="utf-8") as fp:
            json.dump({"template": name, "cases": cases}, fp, ensure_ascii=False, indent=1)
            fp.write("\n")
        n_err = sum("error" in c for c in cases)
        total += os.path.getsize(out)
        print("%-60s %2d cases, %2d errors" % (name, len(cases), n_err))
    print("total %d bytes" % total)


if __name__ == "__main__":
    main()
