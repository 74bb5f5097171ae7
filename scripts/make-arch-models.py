#!/usr/bin/env python3
"""make-arch-models.py OUTDIR: tiny random-weight F32 GGUF models, one per
architecture (and RoPE-scaling variant), in the layout llama.cpp's
converter (convert_hf_to_gguf.py) writes: the same tensor names, metadata
keys and shapes, so that llama.cpp loads them and its logits on them are an
independent reference for lm (tests/test_arch.c, scripts/make-arch-refs.sh).

Writes OUTDIR/NAME.gguf for each model and OUTDIR/prompts.txt: three token-id
prompts, one per line, shared by every model (all have the same vocabulary).
Deterministic: every model draws from its own seeded numpy generator.

The models are small (the Makefile makes them before the suite runs) (vocabulary of 64,
n_embd 32, 4 query and 2 KV heads of 8, 2 layers unless the family needs
more to show its layer pattern); weights are scaled so that activations
stay of order 1 and logits spread about 0.07 (see Model.output_norm).
Sliding windows are 8 tokens and the longest prompt 24, so positions past
the window are checked. See docs/arch-notes.md.

Needs numpy and the gguf package (llama.cpp's gguf-py). """
import math
import os
import sys

import numpy as np
import gguf

N_VOCAB = 64
N_EMBD = 32
N_HEAD = 4
N_HEAD_KV = 2
HEAD_DIM = 8
N_FF = 32
N_CTX = 64
WINDOW = 8
OUTPUT_NORM = 0.05
PROMPT_LENGTHS = (24, 17, 9)
BOS, EOS = 1, 2


class Model:
    """One GGUF file being written: metadata through self.w, tensors drawn
    from a generator seeded by the model's name."""

    def __init__(self, outdir, name, arch, seed_name=None):
        self.path = os.path.join(outdir, name + ".gguf")
        seed_name = seed_name or name
        self.rng = np.random.default_rng(sum(seed_name.encode()) * 7919 + len(seed_name))
        self.w = gguf.GGUFWriter(self.path, arch)
        self.w.add_name(name)
        self.w.add_file_type(gguf.LlamaFileType.ALL_F32)
        add_vocab(self.w)

    def tensor(self, name, array):
        self.w.add_tensor(name, np.ascontiguousarray(array, dtype=np.float32))

    def matrix(self, name, n_out, n_in):
        """A linear map from n_in to n_out: numpy shape (n_out, n_in), which
        GGUF lists as ne = [n_in, n_out] (llama.cpp's {n_in, n_out})."""
        self.tensor(name, self.rng.normal(0, 1 / math.sqrt(n_in), (n_out, n_in)))

    def vector(self, name, n, mean=0.0, std=0.1):
        self.tensor(name, mean + self.rng.normal(0, std, n))

    def norm(self, name, n=N_EMBD):
        self.vector(name, n, 1.0, 0.1)

    def output_norm(self):
        """The final norm, scaled down so that logits spread about 0.07: an
        f16 KV cache (lm's; llama.cpp's by default) moves logits by up to
        about 1e-2 of their spread (smollm3: 1.2e-3 at a spread of
        0.14 in llama.cpp itself), and the check is an absolute 1e-3."""
        self.vector("output_norm.weight", N_EMBD, OUTPUT_NORM, OUTPUT_NORM / 10)

    def embeddings(self, std=0.25):
        self.tensor("token_embd.weight", self.rng.normal(0, std, (N_VOCAB, N_EMBD)))

    def output(self):
        self.output_norm()
        self.matrix("output.weight", N_VOCAB, N_EMBD)

    def qkvo(self, il, bias=False, n_head=N_HEAD, n_head_kv=N_HEAD_KV, head_dim=HEAD_DIM):
        p = f"blk.{il}."
        self.matrix(p + "attn_q.weight", n_head * head_dim, N_EMBD)
        self.matrix(p + "attn_k.weight", n_head_kv * head_dim, N_EMBD)
        self.matrix(p + "attn_v.weight", n_head_kv * head_dim, N_EMBD)
        if bias:
            self.vector(p + "attn_q.bias", n_head * head_dim)
            self.vector(p + "attn_k.bias", n_head_kv * head_dim)
            self.vector(p + "attn_v.bias", n_head_kv * head_dim)
        self.matrix(p + "attn_output.weight", N_EMBD, n_head * head_dim)

    def swiglu(self, il):
        p = f"blk.{il}."
        self.matrix(p + "ffn_gate.weight", N_FF, N_EMBD)
        self.matrix(p + "ffn_up.weight", N_FF, N_EMBD)
        self.matrix(p + "ffn_down.weight", N_EMBD, N_FF)

    def attention_hparams(self, n_layer, rms_eps=1e-5):
        w = self.w
        w.add_context_length(N_CTX)
        w.add_embedding_length(N_EMBD)
        w.add_block_count(n_layer)
        w.add_feed_forward_length(N_FF)
        w.add_head_count(N_HEAD)
        w.add_head_count_kv(N_HEAD_KV)
        w.add_layer_norm_rms_eps(rms_eps)

    def write(self):
        self.w.write_header_to_file()
        self.w.write_kv_data_to_file()
        self.w.write_tensors_to_file()
        self.w.close()


def add_vocab(w):
    """A SentencePiece-style ("llama") vocabulary llama.cpp and lm load:
    <unk> <s> </s> <|endoftext|> (llama.cpp looks that one up in models
    named phi3), then plain pieces. The prompts are token ids, so what the
    pieces spell does not matter."""
    specials = ["<unk>", "<s>", "</s>", "<|endoftext|>"]
    tokens = specials + [f"\u2581t{i}" for i in range(len(specials), N_VOCAB)]
    types = [gguf.TokenType.UNKNOWN] + [gguf.TokenType.CONTROL] * (len(specials) - 1)
    types += [gguf.TokenType.NORMAL] * (N_VOCAB - len(specials))
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * len(specials) + [-float(i) for i in range(len(specials), N_VOCAB)])
    w.add_token_types(types)
    w.add_bos_token_id(BOS)
    w.add_eos_token_id(EOS)
    w.add_unk_token_id(0)


def llama_like(outdir, name, arch, n_layer=2, bias=False, qk_norm=False, tied=False, rope_base=10000.0):
    """llama, qwen2 (Q/K/V biases), qwen3 (Q/K RMSNorm), smollm3, granite:
    pre-norm blocks with SwiGLU. Returns the model for extra metadata."""
    m = Model(outdir, name, arch)
    m.attention_hparams(n_layer)
    m.w.add_rope_freq_base(rope_base)
    if qk_norm:
        m.w.add_key_length(HEAD_DIM)
        m.w.add_value_length(HEAD_DIM)
    m.embeddings()
    for il in range(n_layer):
        m.norm(f"blk.{il}.attn_norm.weight")
        m.qkvo(il, bias=bias)
        if qk_norm:
            m.norm(f"blk.{il}.attn_q_norm.weight", HEAD_DIM)
            m.norm(f"blk.{il}.attn_k_norm.weight", HEAD_DIM)
        m.norm(f"blk.{il}.ffn_norm.weight")
        m.swiglu(il)
    if tied:
        m.output_norm()
    else:
        m.output()
    return m


def llama3_rope_factors(base, dim, factor, low_freq_factor, high_freq_factor, old_context_len):
    """rope_freqs.weight as convert_hf_to_gguf.py computes it for Llama 3.1
    ("rope_type": "llama3"): a divisor per frequency."""
    out = []
    for i in range(0, dim, 2):
        freq = 1.0 / base ** (i / dim)
        wavelen = 2 * math.pi / freq
        if wavelen < old_context_len / high_freq_factor:
            out.append(1.0)
        elif wavelen > old_context_len / low_freq_factor:
            out.append(factor)
        else:
            smooth = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def yarn(m, factor=4.0, orig_ctx=16):
    m.w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
    m.w.add_rope_scaling_factor(factor)
    m.w.add_rope_scaling_orig_ctx_len(orig_ctx)


def gemma_like(outdir, name, arch, n_layer, qk_norm):
    """gemma2 / gemma3: embeddings scaled by sqrt(n_embd), RMSNorm before
    and after attention and FFN (weights stored as 1 + w), GeGLU, tied
    output. gemma3 adds Q/K norms and its own RoPE base for window layers."""
    m = Model(outdir, name, arch)
    w = m.w
    m.attention_hparams(n_layer, rms_eps=1e-6)
    w.add_key_length(HEAD_DIM)
    w.add_value_length(HEAD_DIM)
    w.add_sliding_window(WINDOW)
    m.embeddings()
    for il in range(n_layer):
        p = f"blk.{il}."
        m.norm(p + "attn_norm.weight")
        m.qkvo(il)
        if qk_norm:
            m.norm(p + "attn_q_norm.weight", HEAD_DIM)
            m.norm(p + "attn_k_norm.weight", HEAD_DIM)
        m.norm(p + "post_attention_norm.weight")
        m.norm(p + "ffn_norm.weight")
        m.swiglu(il)
        m.norm(p + "post_ffw_norm.weight")
    m.output_norm()
    return m


def gemma3(outdir):
    # 6 layers: llama.cpp's default pattern makes layers 0-4 sliding, 5 global.
    m = gemma_like(outdir, "gemma3", "gemma3", 6, qk_norm=True)
    m.w.add_rope_freq_base(1000000.0)  # global layers; window layers use 10000
    m.write()


def gemma2(outdir):
    # llama.cpp's pattern 2 makes layer 0 sliding, layer 1 global.
    m = gemma_like(outdir, "gemma2", "gemma2", 2, qk_norm=False)
    m.w.add_attn_logit_softcapping(1.5)  # small, so that tanh bends the scores
    m.w.add_final_logit_softcapping(0.5)
    m.write()


def gemma_variants(outdir):
    # gemma3 with the pattern as a bool per layer (Gemma 3n/EmbeddingGemma
    # style: layers 2 and 5 global), its own window base, linear scaling of
    # the global layers only, and a final soft-cap.
    m = gemma_like(outdir, "gemma3-pattern", "gemma3", 6, qk_norm=True)
    m.w.add_rope_freq_base(1000000.0)
    m.w.add_key_value("gemma3.rope.freq_base_swa", 5000.0, gguf.GGUFValueType.FLOAT32)
    m.w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
    m.w.add_rope_scaling_factor(4.0)
    m.w.add_sliding_window_pattern([True, True, False, True, True, False])
    m.w.add_final_logit_softcapping(0.5)
    m.write()

    # gemma2 whose window layers have their own RoPE base (scaled like the
    # global ones) and the window every 3 layers out of 4 (a period).
    m = gemma_like(outdir, "gemma2-base-swa", "gemma2", 4, qk_norm=False)
    m.w.add_rope_freq_base(100000.0)
    m.w.add_key_value("gemma2.rope.freq_base_swa", 2000.0, gguf.GGUFValueType.FLOAT32)
    m.w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
    m.w.add_rope_scaling_factor(2.0)
    m.w.add_key_value("gemma2.attention.sliding_window_pattern", 4, gguf.GGUFValueType.UINT32)
    m.w.add_attn_logit_softcapping(1.5)
    m.w.add_final_logit_softcapping(0.5)
    m.write()


def gpt2(outdir):
    n_layer, n_ff = 2, 4 * N_EMBD
    m = Model(outdir, "gpt2", "gpt2")
    w = m.w
    w.add_block_count(n_layer)
    w.add_context_length(N_CTX)
    w.add_embedding_length(N_EMBD)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(N_HEAD)
    w.add_layer_norm_eps(1e-5)
    m.embeddings()
    m.tensor("position_embd.weight", m.rng.normal(0, 0.1, (N_CTX, N_EMBD)))
    for il in range(n_layer):
        p = f"blk.{il}."
        m.norm(p + "attn_norm.weight")
        m.vector(p + "attn_norm.bias", N_EMBD)
        m.matrix(p + "attn_qkv.weight", 3 * N_EMBD, N_EMBD)
        m.vector(p + "attn_qkv.bias", 3 * N_EMBD)
        m.matrix(p + "attn_output.weight", N_EMBD, N_EMBD)
        m.vector(p + "attn_output.bias", N_EMBD)
        m.norm(p + "ffn_norm.weight")
        m.vector(p + "ffn_norm.bias", N_EMBD)
        m.matrix(p + "ffn_up.weight", n_ff, N_EMBD)
        m.vector(p + "ffn_up.bias", n_ff)
        m.matrix(p + "ffn_down.weight", N_EMBD, n_ff)
        m.vector(p + "ffn_down.bias", N_EMBD)
    m.output_norm()
    m.vector("output_norm.bias", N_EMBD, 0.0, OUTPUT_NORM / 10)
    m.write()


def olmo2(outdir):
    n_layer = 2
    m = Model(outdir, "olmo2", "olmo2")
    m.attention_hparams(n_layer, rms_eps=1e-6)
    m.w.add_rope_freq_base(500000.0)
    m.embeddings()
    for il in range(n_layer):
        p = f"blk.{il}."
        m.qkvo(il)
        m.norm(p + "attn_q_norm.weight", N_HEAD * HEAD_DIM)  # over the whole Q row, not per head
        m.norm(p + "attn_k_norm.weight", N_HEAD_KV * HEAD_DIM)
        m.norm(p + "post_attention_norm.weight")
        m.swiglu(il)
        m.norm(p + "post_ffw_norm.weight")
    m.output()
    m.write()


def granite(outdir):
    m = llama_like(outdir, "granite", "granite", tied=True)
    m.w.add_embedding_scale(4.0)
    m.w.add_residual_scale(0.5)
    m.w.add_attention_scale(0.25)  # replaces 1/sqrt(head_dim) = 0.354
    m.w.add_logit_scale(2.0)       # logits are divided by it
    m.write()


def smollm3(outdir):
    # 4 layers: llama.cpp skips RoPE on every 4th layer (il = 3).
    m = llama_like(outdir, "smollm3", "smollm3", n_layer=4, tied=True, rope_base=5000000.0)
    m.write()


def phi3(outdir):
    """Phi-3.5/Phi-4-mini shape: fused QKV and gate|up, partial rotary
    (3/4 of the head), LongRoPE factors. context_length 64 over an original
    16, so a context of 64 uses the long factors."""
    n_layer, orig_ctx = 2, 16
    n_rot = int(0.75 * N_EMBD) // N_HEAD
    m = Model(outdir, "phi3", "phi3")
    w = m.w
    w.add_context_length(N_CTX)
    w.add_rope_scaling_orig_ctx_len(orig_ctx)
    w.add_embedding_length(N_EMBD)
    w.add_feed_forward_length(N_FF)
    w.add_block_count(n_layer)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD_KV)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(n_rot)
    w.add_rope_freq_base(10000.0)
    w.add_sliding_window(0)
    scale = N_CTX / orig_ctx
    w.add_rope_scaling_attn_factors(math.sqrt(1 + math.log(scale) / math.log(orig_ctx)))
    m.embeddings()
    m.tensor("rope_factors_long.weight", 1.0 + m.rng.uniform(0, 6, n_rot // 2))
    m.tensor("rope_factors_short.weight", 1.0 + m.rng.uniform(0, 0.5, n_rot // 2))
    q, kv = N_HEAD * HEAD_DIM, N_HEAD_KV * HEAD_DIM
    for il in range(n_layer):
        p = f"blk.{il}."
        m.norm(p + "attn_norm.weight")
        m.matrix(p + "attn_qkv.weight", q + 2 * kv, N_EMBD)  # rows: Q, then K, then V
        m.matrix(p + "attn_output.weight", N_EMBD, q)
        m.norm(p + "ffn_norm.weight")
        m.matrix(p + "ffn_up.weight", 2 * N_FF, N_EMBD)  # rows: gate, then up
        m.matrix(p + "ffn_down.weight", N_EMBD, N_FF)
    m.output()
    m.write()


def gemma4(outdir):
    """Gemma 4 E2B/E4B shape: window and global layers alternate (a bool
    array) with their own head sizes, KV head counts and RoPE (global:
    "proportional", rope_freqs of 1 then 1e30), the last 2 layers reuse the
    KV of layers 2 (window) and 3 (global), per-layer token embeddings,
    wider FFN on the shared layers, a layer output scale, final soft-cap.
    Norms are stored as is (no +1)."""
    n_layer, n_shared, d_swa, d_full, n_pl = 6, 2, HEAD_DIM, 2 * HEAD_DIM, 8
    swa = [il % 2 == 0 for il in range(n_layer)]
    n_kv = [N_HEAD_KV if s else 1 for s in swa]
    n_ff = [N_FF if il < n_layer - n_shared else 2 * N_FF for il in range(n_layer)]
    m = Model(outdir, "gemma4", "gemma4")
    w = m.w
    w.add_context_length(N_CTX)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(n_kv)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(1000000.0)
    w.add_rope_freq_base_swa(10000.0)
    w.add_final_logit_softcapping(0.3)
    w.add_sliding_window(WINDOW)
    w.add_shared_kv_layers(n_shared)
    w.add_embedding_length_per_layer_input(n_pl)
    w.add_sliding_window_pattern(swa)
    w.add_key_length(d_full)
    w.add_value_length(d_full)
    w.add_key_length_swa(d_swa)
    w.add_value_length_swa(d_swa)
    w.add_rope_dimension_count(d_full)
    w.add_rope_dimension_count_swa(d_swa)
    m.embeddings()
    m.tensor("per_layer_token_embd.weight", m.rng.normal(0, 0.25, (N_VOCAB, n_pl * n_layer)))
    m.matrix("per_layer_model_proj.weight", n_pl * n_layer, N_EMBD)
    m.norm("per_layer_proj_norm.weight", n_pl)
    n_rotated = int(d_full * 0.25 / 2)  # partial_rotary_factor 0.25 of the global head
    m.tensor("rope_freqs.weight", [1.0] * n_rotated + [1e30] * (d_full // 2 - n_rotated))
    for il in range(n_layer):
        p, d = f"blk.{il}.", d_swa if swa[il] else d_full
        m.norm(p + "attn_norm.weight")
        m.qkvo(il, n_head_kv=n_kv[il], head_dim=d)
        # Gemma 4 does not scale Q.K by 1/sqrt(d): Q/K norms of 0.5 keep
        # the softmax from turning one-hot (which made llama.cpp's batch and
        # token-by-token runs differ by 4e-4).
        m.vector(p + "attn_q_norm.weight", d, 0.5, 0.05)
        m.vector(p + "attn_k_norm.weight", d, 0.5, 0.05)
        m.norm(p + "post_attention_norm.weight")
        m.norm(p + "ffn_norm.weight")
        m.matrix(p + "ffn_gate.weight", n_ff[il], N_EMBD)
        m.matrix(p + "ffn_up.weight", n_ff[il], N_EMBD)
        m.matrix(p + "ffn_down.weight", N_EMBD, n_ff[il])
        m.norm(p + "post_ffw_norm.weight")
        m.matrix(p + "inp_gate.weight", n_pl, N_EMBD)
        m.matrix(p + "proj.weight", N_EMBD, n_pl)
        m.norm(p + "post_norm.weight")
        m.vector(p + "layer_output_scale.weight", 1, 0.8, 0.1)
    m.output_norm()
    m.write()


def qwen35(outdir, name="qwen35", mtp=False):
    """Qwen3.5 (dense) shape: layers 0-2 gated delta-net linear attention,
    layer 3 full attention with a gated output and sectioned (imrope) RoPE
    over half the head. Linear layers: 2 key heads and 4 value heads of 8
    (value head j uses key head j % 2), causal conv of 4 over Q|K|V.
    With mtp, as the converter writes it by default: the same trunk (same
    seed, same draws) and a multi-token-prediction block 4 after it
    (block_count 5, nextn_predict_layers 1), which the main pass skips."""
    n_layer, d, n_rot = 4, 2 * HEAD_DIM, HEAD_DIM
    d_state, n_group, n_v_heads, d_conv = 8, 2, 4, 4
    key_dim, value_dim = d_state * n_group, d_state * n_v_heads
    recurrent = [(il + 1) % 4 != 0 for il in range(n_layer)] + [False] * mtp
    m = Model(outdir, name, "qwen35", seed_name="qwen35")
    w = m.w
    m.attention_hparams(n_layer + mtp, rms_eps=1e-6)
    if mtp:
        w.add_nextn_predict_layers(1)
    w.add_rope_freq_base(10000000.0)
    w.add_key_length(d)
    w.add_value_length(d)
    w.add_ssm_conv_kernel(d_conv)
    w.add_ssm_state_size(d_state)
    w.add_ssm_group_count(n_group)
    w.add_ssm_time_step_rank(n_v_heads)
    w.add_ssm_inner_size(value_dim)
    w.add_array("qwen35.attention.recurrent_layers", recurrent)
    w.add_full_attention_interval(4)
    w.add_rope_dimension_count(n_rot)
    w.add_rope_dimension_sections([2, 1, 1, 0])

    def gated_attention(p):
        m.matrix(p + "attn_q.weight", 2 * N_HEAD * d, N_EMBD)  # per head: query, then gate
        m.matrix(p + "attn_k.weight", N_HEAD_KV * d, N_EMBD)
        m.matrix(p + "attn_v.weight", N_HEAD_KV * d, N_EMBD)
        m.matrix(p + "attn_output.weight", N_EMBD, N_HEAD * d)
        m.norm(p + "attn_q_norm.weight", d)
        m.norm(p + "attn_k_norm.weight", d)

    m.embeddings()
    for il in range(n_layer):
        p = f"blk.{il}."
        m.norm(p + "attn_norm.weight")
        if recurrent[il]:
            m.matrix(p + "attn_qkv.weight", 2 * key_dim + value_dim, N_EMBD)  # rows: Q, K, V
            m.matrix(p + "attn_gate.weight", value_dim, N_EMBD)  # z
            m.tensor(p + "ssm_conv1d.weight", m.rng.normal(0, 0.5, (2 * key_dim + value_dim, d_conv)))
            m.vector(p + "ssm_dt.bias", n_v_heads, 1.0, 0.1)
            m.tensor(p + "ssm_a", -np.exp(m.rng.normal(0, 0.5, n_v_heads)))  # -exp(A_log)
            m.matrix(p + "ssm_beta.weight", n_v_heads, N_EMBD)
            m.matrix(p + "ssm_alpha.weight", n_v_heads, N_EMBD)
            m.norm(p + "ssm_norm.weight", d_state)
            m.matrix(p + "ssm_out.weight", N_EMBD, value_dim)
        else:
            gated_attention(p)
        m.norm(p + "post_attention_norm.weight")
        m.swiglu(il)
    m.output_norm()
    if mtp:
        p = f"blk.{n_layer}."
        m.norm(p + "attn_norm.weight")
        gated_attention(p)
        m.norm(p + "post_attention_norm.weight")
        m.swiglu(n_layer)
        m.matrix(p + "nextn.eh_proj.weight", N_EMBD, 2 * N_EMBD)
        m.norm(p + "nextn.enorm.weight")
        m.norm(p + "nextn.hnorm.weight")
        m.norm(p + "nextn.shared_head_norm.weight")
    m.write()


def qwen35_variants(outdir):
    qwen35(outdir)
    qwen35(outdir, "qwen35-mtp", mtp=True)


def llama_variants(outdir):
    llama_like(outdir, "llama", "llama").write()

    m = llama_like(outdir, "llama-rope-freqs", "llama", rope_base=500000.0)
    m.tensor("rope_freqs.weight", llama3_rope_factors(500000.0, HEAD_DIM, 8.0, 1.0, 4.0, 256))
    m.write()

    m = llama_like(outdir, "llama-linear", "llama")
    m.w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
    m.w.add_rope_scaling_factor(4.0)
    m.write()

    m = llama_like(outdir, "llama-yarn", "llama")
    yarn(m)
    m.write()


def qwen_variants(outdir):
    llama_like(outdir, "qwen2", "qwen2", bias=True, tied=True, rope_base=1000000.0).write()
    m = llama_like(outdir, "qwen2-yarn", "qwen2", bias=True, tied=True, rope_base=1000000.0)
    yarn(m)
    m.write()
    llama_like(outdir, "qwen3", "qwen3", qk_norm=True, tied=True, rope_base=1000000.0).write()
    # base 100 and an original context of 64: YaRN's ramp is fractional
    # (pair 0 unscaled, pairs 1 and 2 blended 2/3 and 1/3, pair 3 scaled) on
    # pairs that turn by radians within the prompts (the yarn files above
    # only have whole ramps; a real base and context put the blended pairs
    # where short prompts hardly turn them)
    m = llama_like(outdir, "qwen3-yarn", "qwen3", qk_norm=True, tied=True, rope_base=100.0)
    yarn(m, orig_ctx=64)
    m.write()


def write_prompts(outdir):
    rng = np.random.default_rng(12345)
    with open(os.path.join(outdir, "prompts.txt"), "w") as f:
        for n in PROMPT_LENGTHS:
            ids = [BOS] + [int(t) for t in rng.integers(4, N_VOCAB, n - 1)]
            f.write(" ".join(map(str, ids)) + "\n")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make-arch-models.py OUTDIR")
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    for make in (gemma3, gemma2, gemma_variants, gpt2, olmo2, granite, smollm3, phi3, gemma4, qwen35_variants, llama_variants, qwen_variants):
        make(outdir)
    write_prompts(outdir)


if __name__ == "__main__":
    main()
