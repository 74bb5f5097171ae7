#!/usr/bin/env python3
"""Expected token ids from llama.cpp for vocabularies derived from the shared
ones (tests/test_tokenizer.c checks lm against them):

    scripts/gen-tokenizer-vectors.py [--llama-tokenize PATH] [--eog-ref PATH] [--shared DIR] [NAME...]

llama-tokenize is --llama-tokenize, else $LLAMA_TOKENIZE; eog-ref is
scripts/eog-ref.c built against the same llama.cpp (its header says how),
--eog-ref, else $EOG_REF. DIR is the shared folder holding vocab/ and
vocab-new/ (default ../shared, or $LM_SHARED). NAMEs limit the work to
those vocabularies.

tests/data/tokenizer/variants.txt lists the vocabularies, one a line:
NAME BASE [EDIT...], BASE relative to DIR, each EDIT one of
  pre=NAME          tokenizer.ggml.pre set to NAME (added when absent)
  control=user      every control token made user-defined (as some
                    converters write them)
  add=TEXT          a user-defined token TEXT appended to the vocabulary
Each one is written with the gguf package to a temporary file, and every
case of tests/data/tokenizer/cases.inp (format of ../shared/vocab/README.md)
is tokenized by llama-tokenize without BOS, into NAME.out (special tokens
not parsed, --no-parse-special) and NAME.special.out (parsed); NAME.eog
gets the ids llama.cpp ends generation on.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import gguf

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "tests", "data", "tokenizer")
SEP = "\n__ggml_vocab_test__\n"
CONTROL, USER_DEFINED = 3, 4


def read_variants():
    out = []
    with open(os.path.join(DATA, "variants.txt"), encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                name, base, *edits = line.split()
                out.append((name, base, edits))
    return out


def field_value(field):
    """A field's value as GGUFWriter.add_key_value takes it."""
    vtype = field.types[0]
    if vtype == gguf.GGUFValueType.ARRAY:
        sub = field.types[1]
        if sub == gguf.GGUFValueType.STRING:
            return [bytes(field.parts[i]) for i in field.data], vtype, sub
        return [field.parts[i][0].item() for i in field.data], vtype, sub
    if vtype == gguf.GGUFValueType.STRING:
        return bytes(field.parts[field.data[0]]), vtype, None
    return field.parts[field.data[0]][0].item(), vtype, None


def derive(base_path, edits, out_path):
    r = gguf.GGUFReader(base_path)
    arch = r.fields["general.architecture"].contents()
    w = gguf.GGUFWriter(out_path, arch)
    values = {}
    for key, field in r.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        values[key] = list(field_value(field))
    tokens = values["tokenizer.ggml.tokens"][0]
    types = values["tokenizer.ggml.token_type"][0]
    for e in edits:
        what, arg = e.split("=", 1)
        if what == "pre":
            values["tokenizer.ggml.pre"] = [arg.encode(), gguf.GGUFValueType.STRING, None]
        elif what == "control" and arg == "user":
            for i, t in enumerate(types):
                if t == CONTROL:
                    types[i] = USER_DEFINED
        elif what == "add":
            tokens.append(arg.encode())
            types.append(USER_DEFINED)
            if "tokenizer.ggml.scores" in values:
                values["tokenizer.ggml.scores"][0].append(0.0)
        else:
            sys.exit(f"unknown edit {e}")
    for key, (v, vtype, sub) in values.items():
        w.add_key_value(key, v, vtype, sub_type=sub)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def tokenize(tool, vocab, text, special):
    with tempfile.NamedTemporaryFile("wb", suffix=".txt", delete=False) as f:
        f.write(text.encode())
        path = f.name
    try:
        args = [tool, "-m", vocab, "-f", path, "--ids", "--no-escape", "--no-bos", "--log-disable"]
        if not special:
            args.append("--no-parse-special")
        out = subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip()
    finally:
        os.unlink(path)
    if not (out.startswith("[") and out.endswith("]")):
        sys.exit(f"unexpected llama-tokenize output: {out!r}")
    return [int(x) for x in out[1:-1].split(",") if x.strip()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-tokenize", default=os.environ.get("LLAMA_TOKENIZE"))
    ap.add_argument("--eog-ref", default=os.environ.get("EOG_REF"))
    ap.add_argument("--shared", default=os.environ.get("LM_SHARED") or os.path.join(HERE, "..", "..", "shared"))
    ap.add_argument("names", nargs="*")
    a = ap.parse_args()
    if not a.llama_tokenize or not a.eog_ref:
        sys.exit("give --llama-tokenize PATH and --eog-ref PATH (or set LLAMA_TOKENIZE and EOG_REF)")
    with open(os.path.join(DATA, "cases.inp"), encoding="utf-8", newline="") as f:
        raw = f.read()
    assert raw.endswith(SEP), "cases.inp must end with a separator"
    cases = raw[: -len(SEP)].split(SEP)
    with tempfile.TemporaryDirectory() as tmp:
        for name, base, edits in read_variants():
            if a.names and name not in a.names:
                continue
            path = os.path.join(a.shared, base)
            if edits:
                path = os.path.join(tmp, name + ".gguf")
                derive(os.path.join(a.shared, base), edits, path)
            for special, suffix in ((False, ".out"), (True, ".special.out")):
                with open(os.path.join(DATA, name + suffix), "w") as out:
                    for c in cases:
                        ids = tokenize(a.llama_tokenize, path, c, special)
                        out.write("".join(f" {i}" for i in ids) + "\n")
            eog = subprocess.run([a.eog_ref, path], check=True, capture_output=True, text=True).stdout
            with open(os.path.join(DATA, name + ".eog"), "w") as out:
                out.write(eog)
            print(f"{name}: {len(cases)} cases")


if __name__ == "__main__":
    main()
