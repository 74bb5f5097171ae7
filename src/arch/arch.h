/* arch.h: what a family of architectures gives the model loader, and the
 * shared blocks its layer is built from. Internal to src/ (model.c and
 * src/arch/); callers of lm see include/lm/model.h only.
 *
 * A family is a struct lm_arch: its name as general.architecture spells it,
 * a loader that reads what differs from the common hyperparameters and the
 * tensors of each layer, and the layer of the forward pass. Adding one is a
 * new file beside llama.c and a row in lm_archs (model.c).
 *
 * The common part, read by model.c before the family's loader runs: the
 * dimensions (embedding_length, block_count, feed_forward_length, heads,
 * key/value lengths, context_length; feed_forward_length and
 * head_count_kv may be one per layer, into each layer's n_ff and
 * n_head_kv), rope.freq_base and rope.scaling,
 * the RMSNorm epsilon; token_embd, output_norm and output (tied when
 * absent); one rotary embedding (rope[0]) that every layer uses unless the
 * family says otherwise. After it, model.c lays out the KV cache from the
 * layers' slots (kv_slot, kv_reused) and dimensions.
 *
 * The blocks (blocks.c) work on all rows of a batch, whichever sequences
 * they belong to: RMSNorm and LayerNorm, self-attention over each
 * sequence's KV cache, gated and plain FFNs, the residual, per-layer token
 * embeddings; delta_net.c adds
 * the recurrent mixer, whose state each sequence keeps in the context. */
#ifndef LM_ARCH_H
#define LM_ARCH_H

#include "lm/model.h"

/* Reading a model: the loader's state and its helpers. */
struct lm_loader {
    struct lm_model *m;
    struct lm_err *err;
    int failed; /* set by the first failing tensor(); later calls return NULL */
};

/* ARCH.suffix as an integer in [lo, hi]; def when absent (def < 0: required). */
int lm_arch_int(const struct lm_model *m, const char *suffix, int64_t def, int64_t lo, int64_t hi, int *out,
                struct lm_err *err);
int lm_arch_float(const struct lm_model *m, const char *suffix, float def, float lo, float hi, float *out,
                  struct lm_err *err);

/* ARCH.suffix as one integer in [lo, hi] per layer, into each (n_layer):
 * the metadata's array of one per layer, or its single value for every
 * layer; def when absent (def < 0: required). */
int lm_arch_layer_ints(const struct lm_model *m, const char *suffix, int64_t def, int64_t lo, int64_t hi, int *each,
                       struct lm_err *err);

/* Row `row` of an embedding table (t->ne[0] wide, any format with to_f32) as floats. */
void lm_arch_embedding_row(const struct lm_tensor *t, int row, float *out);

/* Tensor blk.LAYER.SUFFIX (layer < 0: SUFFIX itself) of shape [ne0, ne1]
 * (ne1 0: a vector, f32) in a format lm computes with; NULL when absent and
 * optional, or after a failure (recorded in ld). */
const struct lm_tensor *lm_arch_tensor(struct lm_loader *ld, int layer, const char *suffix, int64_t ne0, int64_t ne1,
                                       bool optional);

/* Rows [first, first + count) of matrix t (elements, of a vector) as a
 * tensor of their own, pointing into t: the parts of a fused tensor
 * (phi3's attn_qkv and ffn_up). NULL when t is, or after a failure. */
const struct lm_tensor *lm_arch_rows(struct lm_loader *ld, const struct lm_tensor *t, int64_t first, int64_t count);

/* Adds a rotary embedding of base `base` over n_rot dimensions, returns its
 * index in m->rope. */
int lm_arch_add_rope(struct lm_model *m, float base, int n_rot, bool neox, struct lm_err *err);

/* The tensors of a llama-style layer (attn_q/k/v/output, ffn_gate/up/down,
 * their norms; biases and Q/K norms where `biases`, `qk_norm`). */
void lm_arch_llama_tensors(struct lm_loader *ld, struct lm_layer *L, int l, bool biases, bool qk_norm);

/* The forward pass of one batch, as the blocks see it. */
struct lm_fwd {
    struct lm_ctx *c;
    const struct lm_batch *b;
    int n_tiles; /* attention tiles: runs of one sequence's rows, c->tiles */
    bool tiles_alone; /* no sequence has two tiles (generation): each attention task rotates and caches its rows */
};

struct lm_arch {
    const char *name;
    /* After the common part: the family's hyperparameters, its ropes, the
     * tensors of every layer (into m->layers). */
    int (*load)(struct lm_loader *ld);
    /* One layer over the batch: c->x (n rows of n_embd) updated in place. */
    void (*layer)(const struct lm_fwd *f, const struct lm_layer *L);
};

extern const struct lm_arch lm_arch_llama, lm_arch_qwen2, lm_arch_qwen3;
extern const struct lm_arch lm_arch_gemma2, lm_arch_gemma3, lm_arch_gemma4;
extern const struct lm_arch lm_arch_qwen35;
extern const struct lm_arch lm_arch_phi3;
extern const struct lm_arch lm_arch_gpt2, lm_arch_olmo2, lm_arch_granite, lm_arch_smollm3;

/* llama's layer: x += attention(rmsnorm(x)); x += SwiGLU FFN(rmsnorm(x)). */
void lm_arch_llama_layer(const struct lm_fwd *f, const struct lm_layer *L);

/* gemma's (gemma.c): x += rmsnorm(attention(rmsnorm(x))); x += rmsnorm(GeGLU FFN(rmsnorm(x))). */
void lm_arch_gemma_layer(const struct lm_fwd *f, const struct lm_layer *L);
/* Which layers use the window (gemma.c): attention.sliding_window_pattern
 * is either a bool per layer (true: window) or a period n, where the last
 * layer of each n is global (0: every layer is a window layer); def_period
 * when absent. Sets each layer's window to `window` or 0. */
int lm_arch_window_layers(struct lm_loader *ld, int window, int def_period);

/* ---- blocks: each works on the n rows of the batch ---- */

/* Attention's tiles and scratch (model.c sizes the context with them). */
#define LM_ATT_ROWS 48 /* query rows per tile, when the KV group allows */
int lm_att_tokens(const struct lm_hparams *hp);                /* rows of one sequence per tile */
size_t lm_att_scratch_size(const struct lm_hparams *hp, int n_ctx); /* floats per pool thread */
/* Positions each sequence's cache holds room for: n_ctx rounded up to
 * whole blocks of keys (see kv_offset in blocks.c). */
#define LM_KV_BLOCK 32
int lm_kv_positions(int n_ctx);

/* y = RMSNorm(x) * w over rows of `dim` (w->ne[0]) floats, n_rows of them. */
void lm_blk_rmsnorm(const struct lm_fwd *f, float *y, const float *x, const struct lm_tensor *w, int n_rows);
/* The same with LayerNorm: y = LayerNorm(x) * w + b (b may be NULL). */
void lm_blk_layernorm(const struct lm_fwd *f, float *y, const float *x, const struct lm_tensor *w,
                      const struct lm_tensor *b, int n_rows);

/* How a block (attention, gated FFN) makes its input c->xn from the
 * residual stream c->x, row by row in the tasks of its first product:
 * norm NULL: not at all, c->xn is ready; else first, with residual,
 * c->x += c->xn (times hp.res_scale), then c->xn = RMSNorm(c->x) * norm. */
struct lm_blk_in {
    const struct lm_tensor *norm;
    bool residual;
};

/* Self-attention of layer L from c->xn (normed input, or as in says): Q,
 * K, V with their biases and head norms, RoPE, the cache, softmax
 * attention with the layer's window and the model's scale and soft-cap,
 * the output projection and its bias. With the layer's own KV heads and
 * head size; a layer that reuses an earlier layer's cache computes Q only.
 * Result in c->xn. */
void lm_blk_attention(const struct lm_fwd *f, const struct lm_layer *L, struct lm_blk_in in);

enum lm_act { LM_ACT_SILU, LM_ACT_GELU_TANH };
/* Gated FFN from c->xn (or as in says): down(act(gate x) * up x), result
 * in c->xn; with the layer's FFN biases where it has them. */
void lm_blk_ffn_gated(const struct lm_fwd *f, const struct lm_layer *L, enum lm_act act, struct lm_blk_in in);

/* FFN without a gate from c->xn: down(gelu(up x + b_up)) + b_down, result
 * in c->xn (gpt2). */
void lm_blk_ffn(const struct lm_fwd *f, const struct lm_layer *L);

/* c->x += c->xn over the batch (times hp.res_scale). */
void lm_blk_residual(const struct lm_fwd *f);

/* Per-layer token embeddings (gemma4; model.h, lm_model.pl_tok_embd): the
 * inputs of every layer for the batch into c->pl_inp, from the tokens and
 * the scaled embeddings in c->x (the driver runs it before the layers). */
void lm_blk_per_layer_inputs(const struct lm_fwd *f);
/* c->x += RMSNorm(pl_proj(gelu(pl_gate c->x) * L's per-layer input)) * pl_post_norm. */
void lm_blk_per_layer_embd(const struct lm_fwd *f, const struct lm_layer *L);
/* c->x *= L->out_scale: the layer's output scaled (gemma4). */
void lm_blk_out_scale(const struct lm_fwd *f, const struct lm_layer *L);

/* ---- the recurrent mixer: gated delta net (delta_net.c) ---- */

/* Q|K|V width of the convolution, and the values of one layer's output. */
int lm_delta_net_conv_dim(const struct lm_ssm *s);
int lm_delta_net_value_dim(const struct lm_ssm *s);
/* Floats of one recurrent layer's state for one sequence, and of the
 * mixer's scratch per batch row (c->ssm_x). */
size_t lm_delta_net_state(const struct lm_ssm *s);
size_t lm_delta_net_row(const struct lm_ssm *s);
/* Recurrent layer L from c->xn (normed input): each sequence's rows
 * continue its state in c->ssm_state (model.c checks the positions and
 * clears the states of sequences starting at 0). Result in c->xn. */
void lm_blk_delta_net(const struct lm_fwd *f, const struct lm_layer *L);

#endif
