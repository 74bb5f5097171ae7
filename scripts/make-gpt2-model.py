#!/usr/bin/env python3
"""make-gpt2-model.py VOCAB.gguf OUT.gguf [--layers N] [--embd N] [--heads N] [--ctx N] [--seed N]

A GPT-2 model with random weights in the layout llama.cpp's converter writes
(matrices and embeddings F16, norms and biases F32), for speed comparisons:
by default the shape of GPT-2 124M (12 layers, n_embd 768, 12 heads, n_ff
3072, context 1024). The vocabulary (tokenizer.* keys; its size sets
n_vocab) is copied from VOCAB.gguf, e.g. llama.cpp's
models/ggml-vocab-gpt-2.gguf (50257 tokens). Weights are drawn as GPT-2's
initialisation draws them (normal, std 0.02), so activations stay finite.
For Q8_0: llama-quantize OUT.gguf OUT-q8_0.gguf Q8_0.

Needs numpy and the gguf package (llama.cpp's gguf-py). """
import argparse

import numpy as np
import gguf


def copy_vocab(src, w):
    """The tokenizer.* keys of src into the writer; returns n_vocab."""
    r = gguf.GGUFReader(src)
    n_vocab = None
    for key, field in r.fields.items():
        if not key.startswith("tokenizer."):
            continue
        vtype = field.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            values = field.contents()
            w.add_array(key, values)
            if key == "tokenizer.ggml.tokens":
                n_vocab = len(values)
        else:
            w.add_key_value(key, field.contents(), vtype)
    if n_vocab is None:
        raise SystemExit(f"{src}: no tokenizer.ggml.tokens")
    return n_vocab


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    ap.add_argument("vocab")
    ap.add_argument("out")
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--embd", type=int, default=768)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--ctx", type=int, default=1024)
    ap.add_argument("--seed", type=int, default=124)
    a = ap.parse_args()
    E, F = a.embd, 4 * a.embd
    rng = np.random.default_rng(a.seed)
    w = gguf.GGUFWriter(a.out, "gpt2")
    w.add_name("gpt2-random")
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    n_vocab = copy_vocab(a.vocab, w)
    w.add_block_count(a.layers)
    w.add_context_length(a.ctx)
    w.add_embedding_length(E)
    w.add_feed_forward_length(F)
    w.add_head_count(a.heads)
    w.add_layer_norm_eps(1e-5)

    def matrix(name, n_out, n_in):  # GGUF ne = [n_in, n_out]
        w.add_tensor(name, rng.normal(0, 0.02, (n_out, n_in)).astype(np.float16))

    def vector(name, n, mean=0.0):
        w.add_tensor(name, (mean + rng.normal(0, 0.02, n)).astype(np.float32))

    matrix("token_embd.weight", n_vocab, E)
    matrix("position_embd.weight", a.ctx, E)
    for il in range(a.layers):
        p = f"blk.{il}."
        vector(p + "attn_norm.weight", E, 1.0)
        vector(p + "attn_norm.bias", E)
        matrix(p + "attn_qkv.weight", 3 * E, E)
        vector(p + "attn_qkv.bias", 3 * E)
        matrix(p + "attn_output.weight", E, E)
        vector(p + "attn_output.bias", E)
        vector(p + "ffn_norm.weight", E, 1.0)
        vector(p + "ffn_norm.bias", E)
        matrix(p + "ffn_up.weight", F, E)
        vector(p + "ffn_up.bias", F)
        matrix(p + "ffn_down.weight", E, F)
        vector(p + "ffn_down.bias", E)
    vector("output_norm.weight", E, 1.0)
    vector("output_norm.bias", E)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
