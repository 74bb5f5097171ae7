/* quantize.h: rewriting a model's weights in another format, as llama.cpp's
 * llama-quantize does.
 *
 * A mix (llama.cpp's "file type": Q8_0, Q4_K_M, ...) names a default weight
 * format and rules that give some tensors other formats; they follow
 * llama_tensor_get_type() in llama.cpp's src/llama-quant.cpp as it applies
 * to the llama family (llama, qwen2, qwen3, Mixtral's experts):
 *  - only tensors of two dimensions or more whose names end in "weight" are
 *    converted, and not norms, positional embeddings or expert routers; the
 *    rest (biases, norms: the 1-D tensors) are copied as they are;
 *  - the output matrix, or the token embedding when the model ties the two,
 *    becomes q6_K (q8_0 where its rows do not divide into the mix's blocks);
 *  - the _S, _M and _L mixes and q2_k give attn_v, ffn_down and attn_output
 *    more bits in some layers (which ones depends on the layer's index among
 *    all layers, so tensors are visited in llama.cpp's order: by layer, then
 *    by name; the output file keeps that order);
 *  - a tensor whose rows do not divide into its format's blocks falls back
 *    to a 32-weight format, or to f16 when 32 does not divide them either.
 * The quantizers are the reference ones of quants.c, equal to ggml's
 * quantize_row_*_ref, so the tensor data are llama-quantize's byte for byte
 * (without an importance matrix).
 *
 * lm_quantize_plan() decides every tensor's format from the input alone;
 * lm_quantize_write() then writes the header and streams the tensors to a
 * file descriptor, one slab of rows at a time, converting each row through
 * f32 (so a quantized input is dequantized first) on a thread pool.
 * Metadata is copied as it is, except general.file_type (the mix's value of
 * llama.cpp's enum llama_ftype) and general.quantization_version (2), which
 * go last, as llama.cpp writes them, and the split.* keys, which it drops
 * (one part of a split model is refused). The alignment is the input's.
 *
 * Left out on purpose: importance matrices (so the i-quant mixes and Q2_K_S,
 * which need one), per-tensor type overrides, layer pruning, split files,
 * and other architectures' rules (Falcon's, MXFP4 MoE, GLM5, BailingMoE3).
 */
#ifndef LM_QUANTIZE_H
#define LM_QUANTIZE_H

#include <signal.h>

#include "lm/common.h"
#include "lm/gguf.h"
#include "lm/pool.h"

struct lm_quantize_mix {
    const char *name;   /* as lm quantize takes it: "q4_k_m" */
    uint32_t ftype;     /* llama.cpp's enum llama_ftype, for general.file_type */
    enum lm_type type;  /* the format of the tensors no rule picks out */
};

/* The mix named name, any case ("Q4_K_M" as llama-quantize spells it), or
 * NULL. q3_k, q4_k and q5_k are the _M mixes, as in llama.cpp. */
const struct lm_quantize_mix *lm_quantize_mix_find(const char *name);
/* The mixes in order, NULL past the last (for usage texts and tests). */
const struct lm_quantize_mix *lm_quantize_mix_at(size_t i);

struct lm_quantize_opts {
    const struct lm_quantize_mix *mix;
    bool pure;          /* no rules: mix->type for every tensor converted (fallbacks still apply) */
    bool leave_output;  /* copy output.weight as it is */
};

/* What the output holds, tensor by tensor in output order. */
struct lm_quantize_plan {
    uint64_t n;
    uint64_t *order;       /* output tensor i is input tensor order[i] */
    enum lm_type *type;    /* and has this format */
    uint64_t n_fallback;   /* tensors whose rows did not divide into their format's blocks */
    enum lm_type requant;  /* a quantized input format that gets converted, else LM_TYPE_COUNT */
};

/* 0, or -1 with err set when the input cannot be converted (a tensor needs
 * a format we cannot read or write, metadata of the wrong type). */
int lm_quantize_plan(struct lm_quantize_plan *p, const struct lm_gguf *in, const struct lm_quantize_opts *o,
                     struct lm_err *err);
void lm_quantize_plan_free(struct lm_quantize_plan *p); /* safe on a zeroed plan */

struct lm_quantize_run {
    struct lm_pool *pool;
    /* Checked before every slab: when it becomes nonzero (a signal
     * handler), the write stops with LM_EXIT_INTERRUPT. May be NULL. */
    volatile sig_atomic_t *stop;
    /* Called on the calling thread after every slab: output tensor i, and
     * the input bytes done of all. May be NULL. */
    void (*progress)(void *ctx, uint64_t i, uint64_t done, uint64_t total);
    void *progress_ctx;
    size_t slab_bytes;  /* f32 working set of a slab; 0: 32 MiB */
};

struct lm_quantize_stats {
    uint64_t n_weights;             /* elements of all tensors */
    uint64_t in_bytes, out_bytes;   /* tensor data, before and after */
    uint64_t file_bytes;            /* what was written */
};

/* Writes the output of plan p to fd, from its current position. 0, or -1
 * with err set and *code: LM_EXIT_MODEL when the input holds values the
 * output format cannot (NaN, infinity, or too large for it), LM_EXIT_RUNTIME
 * when a write fails, LM_EXIT_INTERRUPT when *r->stop was set. */
int lm_quantize_write(const struct lm_gguf *in, const struct lm_quantize_plan *p, const struct lm_quantize_opts *o,
                      int fd, const struct lm_quantize_run *r, struct lm_quantize_stats *st, int *code,
                      struct lm_err *err);

#endif
