#!/usr/bin/env python3
"""A llama-architecture GGUF with random weights, for speed measurements.

usage: make-random-model.py --vocab VOCAB.gguf --shape 135m|1.2b|gpt2-124m [--type f16|bf16|f32] [--seed N] OUT.gguf

The tensors are named and laid out as llama.cpp's converter writes them;
the tokenizer is copied from VOCAB (e.g. llama.cpp's
models/ggml-vocab-gpt-2.gguf, the GPT-2 vocabulary). Shapes:
  135m       llama, SmolLM2-135M's: n_embd 576, 30 layers, 9 heads, 3 KV heads, n_ff 1536
  1.2b       llama, n_embd 2048, 16 layers, 32 heads, 8 KV heads, n_ff 8192
  gpt2-124m  gpt2, GPT-2 124M's: n_embd 768, 12 layers, 12 heads, n_ff 3072, context 1024
llama: token_embd, blk.N.attn_{norm,q,k,v,output}, blk.N.ffn_{norm,gate,up,down},
output_norm, an untied output. gpt2: learned positions, LayerNorm with
biases, fused QKV, biased plain GELU FFN, tied output.
Weights are normal with std 0.02 (norm weights 1), as GPT-2's
initialisation draws them, so activations stay in range and every kernel
does its usual work; the output is noise. Other formats: llama-quantize
OUT.gguf OUT-q4_0.gguf q4_0 (or lm quantize)."""
import argparse
import sys

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter, LlamaFileType

SHAPES = {
    "135m": dict(n_embd=576, n_layer=30, n_head=9, n_head_kv=3, n_ff=1536, label="135M"),
    "1.2b": dict(n_embd=2048, n_layer=16, n_head=32, n_head_kv=8, n_ff=8192, label="1.2B"),
    "gpt2-124m": dict(arch="gpt2", n_embd=768, n_layer=12, n_head=12, n_head_kv=12, n_ff=3072, n_ctx=1024, label="124M"),
}
TYPES = {
    "f32": (np.float32, None, LlamaFileType.ALL_F32),
    "f16": (np.float16, None, LlamaFileType.MOSTLY_F16),
    "bf16": (np.uint16, GGMLQuantizationType.BF16, LlamaFileType.MOSTLY_BF16),
}


def copy_tokenizer(vocab_path, w):
    r = GGUFReader(vocab_path)
    n = 0
    for key, field in r.fields.items():
        if not key.startswith("tokenizer."):
            continue
        t = field.types[0]
        if t == GGUFValueType.ARRAY:
            sub = field.types[1]
            if sub == GGUFValueType.STRING:
                val = [bytes(field.parts[i]).decode("utf-8", "surrogateescape") for i in field.data]
            else:
                val = [field.parts[i][0].item() for i in field.data]
            w.add_key_value(key, val, t, sub)
        elif t == GGUFValueType.STRING:
            w.add_key_value(key, bytes(field.parts[field.data[0]]).decode("utf-8"), t)
        else:
            w.add_key_value(key, field.parts[field.data[0]][0].item(), t)
        if key == "tokenizer.ggml.tokens":
            n = len(field.data)
    if not n:
        sys.exit(f"make-random-model: {vocab_path}: no tokenizer.ggml.tokens")
    return n


def to_bf16_bits(a):
    """float32 -> bfloat16 bits, rounding to nearest even (as gguf-py does)."""
    u = a.astype(np.float32).view(np.uint32)
    return ((u + (0x7FFF + ((u >> 16) & 1))) >> 16).astype(np.uint16)


def llama_tensors(s, n_vocab, matrix, vector):
    e, hd = s["n_embd"], s["n_embd"] // s["n_head"]
    matrix("token_embd.weight", n_vocab, e)
    for i in range(s["n_layer"]):
        p = f"blk.{i}."
        vector(p + "attn_norm.weight", e, 1.0)
        matrix(p + "attn_q.weight", e, e)
        matrix(p + "attn_k.weight", hd * s["n_head_kv"], e)
        matrix(p + "attn_v.weight", hd * s["n_head_kv"], e)
        matrix(p + "attn_output.weight", e, e)
        vector(p + "ffn_norm.weight", e, 1.0)
        matrix(p + "ffn_gate.weight", s["n_ff"], e)
        matrix(p + "ffn_up.weight", s["n_ff"], e)
        matrix(p + "ffn_down.weight", e, s["n_ff"])
    vector("output_norm.weight", e, 1.0)
    matrix("output.weight", n_vocab, e)


def gpt2_tensors(s, n_vocab, matrix, vector):
    e, f = s["n_embd"], s["n_ff"]
    matrix("token_embd.weight", n_vocab, e)
    matrix("position_embd.weight", s["n_ctx"], e)
    for i in range(s["n_layer"]):
        p = f"blk.{i}."
        for norm in ("attn_norm", "ffn_norm"):
            vector(p + norm + ".weight", e, 1.0)
            vector(p + norm + ".bias", e)
        for name, rows, cols in (("attn_qkv", 3 * e, e), ("attn_output", e, e), ("ffn_up", f, e), ("ffn_down", e, f)):
            matrix(p + name + ".weight", rows, cols)
            vector(p + name + ".bias", rows)
    vector("output_norm.weight", e, 1.0)
    vector("output_norm.bias", e)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab", required=True)
    ap.add_argument("--shape", required=True, choices=sorted(SHAPES))
    ap.add_argument("--type", default="f16", choices=sorted(TYPES))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("out")
    a = ap.parse_args()
    s = SHAPES[a.shape]
    arch = s.get("arch", "llama")
    dtype, raw, ftype = TYPES[a.type]
    rng = np.random.default_rng(a.seed)

    w = GGUFWriter(a.out, arch)
    w.add_name(f"random {arch} {s['label']}")
    w.add_string("general.size_label", s["label"])
    w.add_context_length(s.get("n_ctx", 8192))
    w.add_embedding_length(s["n_embd"])
    w.add_block_count(s["n_layer"])
    w.add_feed_forward_length(s["n_ff"])
    w.add_head_count(s["n_head"])
    w.add_head_count_kv(s["n_head_kv"])
    if arch == "gpt2":
        w.add_layer_norm_eps(1e-5)
    else:
        w.add_layer_norm_rms_eps(1e-5)
        w.add_rope_freq_base(10000.0)
        w.add_rope_dimension_count(s["n_embd"] // s["n_head"])
    w.add_file_type(ftype)
    n_vocab = copy_tokenizer(a.vocab, w)
    w.add_vocab_size(n_vocab)

    def matrix(name, rows, cols):
        x = rng.standard_normal((rows, cols), dtype=np.float32) * np.float32(0.02)
        if raw is not None:
            w.add_tensor(name, to_bf16_bits(x), raw_shape=(rows, cols), raw_dtype=raw)
        else:
            w.add_tensor(name, x.astype(dtype))

    def vector(name, n, mean=0.0):  # norm weights are 1 and norm biases 0; other biases get noise
        v = np.full(n, mean, dtype=np.float32)
        if not name.endswith("norm.weight") and not name.endswith("norm.bias"):
            v += rng.standard_normal(n, dtype=np.float32) * np.float32(0.02)
        w.add_tensor(name, v)

    (gpt2_tensors if arch == "gpt2" else llama_tensors)(s, n_vocab, matrix, vector)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
