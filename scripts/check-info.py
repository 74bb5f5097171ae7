#!/usr/bin/env python3
"""Checks `lm info --json --tensors` against the gguf Python package's reading
of the same file, number for number. Usage: check-info.py MODEL.gguf [LM_BIN]"""
import json
import subprocess
import sys

import gguf
import numpy as np

path = sys.argv[1]
lm = sys.argv[2] if len(sys.argv) > 2 else "./lm"
ours = json.loads(subprocess.run([lm, "info", "--json", "--tensors", "-m", path], check=True,
                                 capture_output=True, text=True).stdout)
r = gguf.GGUFReader(path)


def field(key):
    f = r.fields.get(key)
    if f is None:
        return None
    if f.types[0] == gguf.GGUFValueType.STRING:
        return bytes(f.parts[f.data[0]]).decode("utf-8")
    if f.types[0] == gguf.GGUFValueType.ARRAY:
        return len(f.data)
    return int(f.parts[f.data[0]][0])


def hparam(key):
    """An integer, or a list of them (one per layer) where the file has an array."""
    f = r.fields.get(key)
    if f is not None and f.types[0] == gguf.GGUFValueType.ARRAY:
        return [int(f.parts[i][0]) for i in f.data]
    return field(key)


arch = field("general.architecture")
want = {
    "gguf_version": field("GGUF.version"),
    "architecture": arch,
    "name": field("general.name"),
    "file_type": field("general.file_type"),
    "context_length": hparam(f"{arch}.context_length"),
    "embedding_length": hparam(f"{arch}.embedding_length"),
    "head_count": hparam(f"{arch}.attention.head_count"),
    "head_count_kv": hparam(f"{arch}.attention.head_count_kv"),
    "block_count": hparam(f"{arch}.block_count"),
    "vocab_size": field("tokenizer.ggml.tokens"),
    "tokenizer_model": field("tokenizer.ggml.model"),
    "chat_template": "tokenizer.chat_template" in r.fields,
    "tensor_count": len(r.tensors),
    "metadata_count": len([k for k in r.fields if not k.startswith("GGUF.")]),
    "parameters": int(sum(int(np.prod(t.shape)) for t in r.tensors)),
}
types = {}
for t in r.tensors:
    name = t.tensor_type.name.lower().replace("_k", "_K")
    e = types.setdefault(name, {"count": 0, "bytes": 0})
    e["count"] += 1
    e["bytes"] += int(t.n_bytes)
want["types"] = types

bad = []
for k, v in want.items():
    if ours.get(k) != v:
        bad.append(f"{k}: lm says {ours.get(k)!r}, gguf-py says {v!r}")
tensors = {t["name"]: t for t in ours.get("tensors", [])}
data_offset = r.data_offset
for t in r.tensors:
    o = tensors.get(t.name)
    if o is None:
        bad.append(f"tensor {t.name}: missing")
        continue
    if o["shape"] != [int(x) for x in t.shape] or o["offset"] != int(t.data_offset) - data_offset \
            or o["bytes"] != int(t.n_bytes) or o["type"].upper() != t.tensor_type.name.upper():
        bad.append(f"tensor {t.name}: lm {o}, gguf-py shape {list(t.shape)} offset "
                   f"{int(t.data_offset) - data_offset} bytes {int(t.n_bytes)} type {t.tensor_type.name}")
for b in bad[:20]:
    print(f"check-info: {path}: {b}", file=sys.stderr)
sys.exit(1 if bad else 0)
