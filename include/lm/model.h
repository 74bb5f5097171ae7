/* model.h: a transformer over mmapped GGUF weights, and its forward pass.
 *
 * Each family of architectures is one file under src/arch/ and one row of
 * the table there (src/arch/arch.h): it reads its own hyperparameters and
 * tensors and builds its layer from the shared blocks (norms, attention
 * with its options, FFN variants, RoPE). This header holds what every
 * family fills in. Hyperparameters come from the GGUF metadata; the shape
 * and format of every tensor are checked against them at load. Weights are
 * never copied: each struct lm_tensor points into the map.
 *
 * Families: llama, qwen2, qwen3, qwen35, phi3, gemma2, gemma3, gemma4, gpt2,
 * olmo2, granite, smollm3. A layer attends (with RoPE or without, over the
 * whole context or a sliding window) or, in qwen35, runs a recurrent mixer
 * (a gated delta net) instead. Layers may differ in KV heads, head size and
 * FFN width, and may read the KV cache of an earlier layer (gemma4).
 *
 * A context (struct lm_ctx) owns, for each of one or more sequences, the
 * KV cache (f16) of the layers that attend and the recurrent state of the
 * layers that do not, and the scratch of a batch. lm_forward() runs a batch of tokens
 * of one sequence at consecutive positions (prefill in one batch, then one
 * token at a time) and computes logits only for the last token of the
 * batch; lm_forward_logits computes them for any run of the batch's tokens
 * (perplexity scores every position), into the caller's buffer, so a
 * context holds one row of logits whatever its batch. lm_forward_batch runs
 * rows of several sequences in one pass (a server's continuous batching):
 * the weights are read once for all of them, and each row's arithmetic is
 * the same whichever rows share its batch.
 *
 * Memory: every dimension is checked against a tensor's shape at load, but
 * a narrow model (n_embd 1) can still have rows that need gigabytes per
 * batch, or a KV cache thousands of times its weights. So at load the
 * context lm would make by default (lm_model_default_ctx positions, batches
 * of LM_BATCH_DEFAULT tokens, one thread) must fit in LM_MODEL_MEM_PER_BYTE
 * bytes per byte of the file, or LM_MODEL_MEM_FLOOR for small files
 * (SmolLM2-135M needs 1.1: a KV cache of 90 MiB for 94 MiB of weights). A
 * larger context asked for by the caller is refused by lm_ctx_init when it
 * exceeds the machine's physical memory or an allocation fails, never by an
 * abort.
 *
 * Left out on purpose: mixture-of-experts (refused at load by name, gemma4's
 * too), architectures not in the list above (refused by name), and qwen35's
 * multi-token-prediction layers (not run, as in llama.cpp). */
#ifndef LM_MODEL_H
#define LM_MODEL_H

#include "lm/common.h"
#include "lm/gguf.h"
#include "lm/pool.h"

struct lm_arch; /* a family of architectures: src/arch/arch.h */
struct lm_row_view;

#define LM_CTX_DEFAULT_MAX 4096 /* the default context: the model's, at most this */
#define LM_BATCH_DEFAULT 512    /* the default batch in prefill */
#define LM_MODEL_MEM_PER_BYTE 8
#define LM_MODEL_MEM_FLOOR ((uint64_t)64 << 20)
#define LM_MAX_ROPES 2          /* distinct rotary embeddings in one model (gemma3: global and window layers) */

struct lm_hparams {
    const char *arch_name; /* general.architecture, as lm knows it */
    int n_vocab, n_embd, n_layer, n_ff;
    int n_kv_layer;     /* KV cache slots: n_layer unless the family has layers without one (qwen35) or
                         * layers that read another's (gemma4) */
    int n_head, n_head_kv, head_dim; /* head_dim: key/value length per head */
    /* When feed_forward_length or head_count_kv are arrays (one value per
     * layer), n_ff is the widest and n_head_kv the fewest, and each layer
     * has its own (struct lm_layer). The largest head of any layer, and
     * the values one position takes in the cache (every slot's K, or V): */
    int max_head_dim;
    int64_t kv_values;
    int n_embd_per_layer; /* width of each layer's slice of the per-layer token embeddings (gemma4); 0: none */
    int n_ctx_train;
    float rope_base;    /* rope.freq_base */
    float norm_eps;
    float att_scale;    /* multiplies q.k before the softmax: 1/sqrt(head_dim) unless the family says */
    float att_softcap;  /* scores become c*tanh(s/c) (gemma2); 0: none */
    float logit_softcap;/* the same on the final logits; 0: none */
    float emb_scale;    /* token embeddings are multiplied by it (gemma: sqrt(n_embd)); 1 */
    /* The recurrent mixer (gated delta net: qwen35); all 0 when the model has none. */
    struct lm_ssm {
        int n_layer;           /* recurrent layers: each has a state per sequence */
        int d_conv;            /* width of the causal convolution over the mixed Q|K|V */
        int n_k_heads, n_v_heads, head_dim; /* query/key heads, value heads, both of head_dim */
    } ssm;
    float res_scale;    /* each layer's branches are multiplied by it before they join the residual (granite); 1 */
    float logit_scale;  /* the final logits are multiplied by it (granite: 1/logit_scale); 1 */
    bool layer_norm;    /* the final norm is a LayerNorm with bias (gpt2); else RMSNorm */
};

/* One rotary embedding: the angle of pair i at position p is p * freq[i],
 * and its cosine and sine are multiplied by mscale; every kind of scaling
 * (linear, YaRN, Llama 3's rope_freqs, LongRoPE) is folded into freq and
 * mscale at load. */
struct lm_rope {
    int n_rot;   /* dimensions rotated (<= head_dim), even */
    bool neox;   /* rotate halves (i, i + n_rot/2) instead of adjacent pairs */
    float base;  /* the base frequency freq was made from, before scaling */
    float *freq; /* (n_rot/2) */
    float mscale;     /* YaRN's magnitude correction, LongRoPE's attention factor; 1 */
    float *freq_long; /* (n_rot/2) used instead of freq in contexts of more than long_ctx positions
                       * (LongRoPE's long factors), else NULL */
    int long_ctx;
    char scaling[128]; /* the scaling, for people ("yarn x4, original context 32768"); "": none */
};

struct lm_layer {
    const struct lm_tensor *attn_norm;         /* (n_embd) f32 */
    const struct lm_tensor *wq, *wk, *wv;      /* (n_embd) -> (n_head*head_dim), (n_head_kv*head_dim) x2 */
    const struct lm_tensor *bq, *bk, *bv;      /* biases (qwen2), else NULL; f32 */
    const struct lm_tensor *q_norm, *k_norm;   /* RMSNorm of each head (qwen3): (head_dim) f32, or of the whole
                                                * row (olmo2): (n_head*head_dim), (n_head_kv*head_dim); else NULL */
    const struct lm_tensor *wo;                /* (n_head*head_dim) -> (n_embd) */
    const struct lm_tensor *ffn_norm;          /* (n_embd) f32 */
    const struct lm_tensor *w_gate, *w_up;     /* (n_embd) -> (n_ff) */
    const struct lm_tensor *w_down;            /* (n_ff) -> (n_embd) */
    const struct lm_tensor *attn_post_norm;    /* RMSNorm of the attention's output (gemma, olmo2): (n_embd) f32, else NULL */
    const struct lm_tensor *ffn_post_norm;     /* the same for the FFN's output */
    bool att_gated; /* wq gives, per head, head_dim query rows then head_dim gate rows; the attention
                       output is multiplied by sigmoid(gate) before wo (qwen35) */
    struct lm_ssm_layer { /* a recurrent layer (gated delta net), in place of attention; else all NULL */
        const struct lm_tensor *qkv;    /* (n_embd) -> (conv_dim): all Q heads, all K heads, all V heads */
        const struct lm_tensor *z;      /* (n_embd) -> (value_dim): the output gate */
        const struct lm_tensor *conv;   /* (d_conv, conv_dim) f32: depthwise causal convolution */
        const struct lm_tensor *dt;     /* (n_v_heads) f32: bias of the decay's time step */
        const struct lm_tensor *a;      /* (n_v_heads) f32: -exp(A_log) */
        const struct lm_tensor *beta, *alpha; /* (n_embd) -> (n_v_heads): write strength, time step */
        const struct lm_tensor *norm;   /* (head_dim) f32: RMSNorm of each value head's output */
        const struct lm_tensor *out;    /* (value_dim) -> (n_embd) */
        int slot;                       /* index of its state among the recurrent layers */
    } ssm;
    int kv_slot; /* its layer in the KV cache (< n_kv_layer): l unless the family says */
    const struct lm_tensor *attn_norm_b, *ffn_norm_b; /* LayerNorm biases (gpt2), else NULL; f32 */
    const struct lm_tensor *bo, *b_gate, *b_up, *b_down; /* biases of wo and the FFN (gpt2), else NULL; f32 */
    int rope;   /* index into lm_model.rope; -1: no rotation */
    int window; /* attends to the last `window` positions (sliding window); 0: all */
    /* Its own dimensions (the hyperparameters' unless the file gives one per layer, or the family one per
     * kind of layer: gemma4's window layers have smaller heads): */
    int n_head_kv, head_dim, n_ff;
    int64_t kv_base;  /* where its slot starts in a position's row of the cache (values) */
    bool kv_reused;   /* computes no K and V: attends to the cache of slot kv_slot, written by an earlier
                       * layer of the same pass (gemma4's last layers); wk, wv, k_norm NULL */
    bool v_norm;      /* RMSNorm of each value head, without a weight (gemma4) */
    /* Per-layer token embeddings (gemma4), else NULL: x += post_norm(pl_proj(gelu(pl_gate x) *
     * this layer's per-layer input)); see lm_model.pl_tok_embd. */
    const struct lm_tensor *pl_gate;      /* (n_embd) -> (n_embd_per_layer) */
    const struct lm_tensor *pl_proj;      /* (n_embd_per_layer) -> (n_embd) */
    const struct lm_tensor *pl_post_norm; /* (n_embd) f32 */
    const struct lm_tensor *out_scale;    /* (1) f32: the layer's output (the residual stream) is multiplied
                                           * by it (gemma4), else NULL */
};

struct lm_model {
    struct lm_gguf gguf;                /* the mapped file; tensors point into it */
    const struct lm_arch *arch;         /* the family: its loader and layer */
    struct lm_hparams hp;
    const struct lm_tensor *tok_embd;   /* (n_vocab rows of n_embd), any format with to_f32 */
    const struct lm_tensor *output_norm;/* (n_embd) f32 */
    const struct lm_tensor *output;     /* (n_embd) -> (n_vocab); tok_embd when tied */
    const struct lm_tensor *output_norm_b; /* (n_embd) f32: the final LayerNorm's bias (gpt2), else NULL */
    const struct lm_tensor *pos_embd;   /* (n_pos rows of n_embd) learned position embeddings (gpt2), else NULL */
    /* Per-layer token embeddings (gemma4), else NULL. Each layer's input of
     * n_embd_per_layer (P) is (rmsnorm(pl_model_proj x / sqrt(n_embd)) *
     * pl_proj_norm + pl_tok_embd[token] * sqrt(P)) / sqrt(2), x the scaled
     * token embedding; layer l takes slice l. */
    const struct lm_tensor *pl_tok_embd;   /* (n_vocab rows of P * n_layer), any format with to_f32 */
    const struct lm_tensor *pl_model_proj; /* (n_embd) -> (P * n_layer) */
    const struct lm_tensor *pl_proj_norm;  /* (P) f32 */
    struct lm_layer *layers;            /* n_layer */
    struct lm_rope rope[LM_MAX_ROPES];  /* n_rope of them */
    int n_rope;
    struct lm_row_view *views;          /* row ranges of fused tensors (phi3's attn_qkv), see arch.h lm_arch_rows */
};

/* Opens and maps path, checks every tensor. Errors are prefixed with the path. */
int lm_model_load(struct lm_model *m, const char *path, struct lm_err *err);
/* Same, over an already parsed GGUF (ownership moves into m, even on failure). */
int lm_model_from_gguf(struct lm_model *m, struct lm_gguf *g, struct lm_err *err);
void lm_model_free(struct lm_model *m); /* safe on zeroed or half-built */
/* What the loader made of m, for people (lm info): what its layers do
 * beyond a plain llama's (dimensions by layer, sliding windows and their
 * layers, each RoPE or none, shared KV caches, learned positions, per-layer
 * embeddings, soft-caps, norms, biases, scales and multipliers, tied
 * output), read from the loaded model, one short phrase
 * each, every phrase ending in '\n', appended to out. */
void lm_model_features(const struct lm_model *m, struct lm_buf *out);

struct lm_ctx {
    const struct lm_model *model;
    struct lm_pool *pool;  /* borrowed */
    int n_seq, n_ctx, n_batch;   /* n_ctx: positions of each sequence */
    uint16_t *k_cache, *v_cache; /* per sequence, per KV slot: n_ctx x its layer's n_head_kv*head_dim f16, values
                                  * by position, keys by dimension; see lm_layer.kv_base */
    void *kv_map;                /* several sequences: the mapping both caches are in, else NULL */
    size_t kv_map_size;
    /* scratch, sized for n_batch tokens */
    float *x, *xn, *q, *k, *v, *att, *ffn_g, *ffn_u;
    float *pl_inp; /* (n_batch + 1, n_embd_per_layer * n_layer): the per-layer inputs, and a row of scratch */
    float *rope_cos[LM_MAX_ROPES], *rope_sin[LM_MAX_ROPES]; /* (n_batch, n_rot/2) of each rope */
    float *att_scratch;       /* per pool thread: att_scratch_size floats */
    size_t att_scratch_size;
    void *qscratch;
    int32_t *row_pos, *row_seq; /* (n_batch): the rows of lm_forward's batch */
    bool *row_logits;
    int *tiles;                 /* (n_batch) first row of each attention tile */
    float *logits; /* (n_vocab) of the last token of the last batch */
    /* Recurrent state (models with hp.ssm.n_layer > 0; else NULL), per
     * sequence and recurrent layer. Unlike the KV cache it cannot be
     * rewound: a sequence's batch starts at 0 (a fresh state) or where its
     * state is (seq_pos); lm_ctx_seq_save/restore keep a copy to go back to. */
    float *ssm_state;   /* (n_seq, lm_ctx_seq_state_size bytes): per layer its conv inputs, then the delta net's */
    int32_t *seq_pos;   /* (n_seq) position each sequence's state has reached */
    float *ssm_x;       /* scratch of the recurrent mixer: (n_batch) rows of lm_delta_net_row floats */
};

/* The context lm makes when not told: the model's training context, at
 * most LM_CTX_DEFAULT_MAX. */
int lm_model_default_ctx(const struct lm_model *m);

/* Whether a batch gives each sequence's rows the bits they get without the
 * other sequences' rows: true when every matrix's kernels give each row
 * its bits whatever the batch (lm_gemm_rows_independent); attention, norms
 * and the rest work row by row or per sequence. */
bool lm_model_rows_independent(const struct lm_model *m);

/* Bytes a context takes, by what they grow with (saturating at UINT64_MAX). */
struct lm_ctx_size {
    uint64_t kv;    /* KV cache: n_ctx x 2 x kv_values f16 */
    uint64_t att;   /* attention scratch of one pool thread: grows with n_ctx */
    uint64_t batch; /* activations of n_batch tokens, their quantized copies, logits */
    uint64_t state; /* recurrent state of one sequence (0 for attention-only models) */
};
void lm_ctx_size(const struct lm_model *m, int n_ctx, int n_batch, struct lm_ctx_size *s);

/* n_ctx: KV cache positions (>= 1); n_batch: most tokens per lm_forward call.
 * A context larger than the machine's memory, or one that cannot be
 * allocated, is an error saying how much it needed. */
int lm_ctx_init(struct lm_ctx *c, const struct lm_model *m, struct lm_pool *pool, int n_ctx, int n_batch,
                struct lm_err *err);
/* The same with n_seq sequences of n_ctx positions each (lm_ctx_init: 1). */
int lm_ctx_init_seqs(struct lm_ctx *c, const struct lm_model *m, struct lm_pool *pool, int n_seq, int n_ctx,
                     int n_batch, struct lm_err *err);
void lm_ctx_free(struct lm_ctx *c); /* safe on zeroed */

/* Runs tokens[0..n) at positions pos..pos+n-1 (n <= n_batch, pos+n <= n_ctx;
 * ids < n_vocab) and leaves the last token's logits in c->logits. Earlier
 * cache entries at positions >= pos are overwritten. */
int lm_forward(struct lm_ctx *c, const int32_t *tokens, int n, int pos, struct lm_err *err);
/* The same, with the logits of tokens[out0..out0+n_out) of the batch in
 * out: n_out rows of n_vocab floats (0 <= out0, out0 + n_out <= n; n_out 0
 * computes none). c->logits is left as it was. lm_forward is this with the
 * last token into c->logits. */
int lm_forward_logits(struct lm_ctx *c, const int32_t *tokens, int n, int pos, int out0, int n_out, float *out,
                      struct lm_err *err);

/* Row i of a batch: token tokens[i] at position pos[i] of sequence seq[i].
 * The rows of one sequence are contiguous in the batch, at consecutive
 * positions; a row attends to positions 0..pos[i] of its sequence (those
 * before the sequence's first row come from earlier batches). */
struct lm_batch {
    int n; /* 1..n_batch rows */
    const int32_t *tokens, *pos, *seq;
    const bool *logits; /* rows whose logits are wanted */
};
/* Runs the batch; the logits of the rows with logits[i] set go to out, in
 * row order, n_vocab floats each. Cache entries of a sequence at positions
 * it runs are overwritten. */
int lm_forward_batch(struct lm_ctx *c, const struct lm_batch *b, float *out, struct lm_err *err);

/* A sequence's recurrent state (models with recurrent layers): its size in
 * bytes (0 for attention-only models: then the calls below do nothing and
 * lm_ctx_seq_pos is -1, any position may be rerun), the position it has
 * reached, a copy of it into buf (lm_ctx_seq_state_size bytes) and back,
 * and a fresh start at position 0. */
size_t lm_ctx_seq_state_size(const struct lm_ctx *c);
int lm_ctx_seq_pos(const struct lm_ctx *c, int seq);
void lm_ctx_seq_save(const struct lm_ctx *c, int seq, void *buf);
void lm_ctx_seq_restore(struct lm_ctx *c, int seq, const void *buf);
void lm_ctx_seq_clear(struct lm_ctx *c, int seq);

#endif
