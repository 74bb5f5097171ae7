/* sampler.h: picks the next token from a vector of logits.
 *
 * Stages, in this fixed order (llama.cpp's default chain, common/sampling.cpp
 * and src/llama-sampler.cpp), each one optional:
 *
 *  1. repetition penalty: each distinct token among the last repeat_last_n
 *     accepted ones has its logit divided by repeat_penalty when positive,
 *     multiplied when zero or negative (CTRL, Keskar et al. 2019, with
 *     llama.cpp's fix for negative logits). Off when repeat_penalty == 1 or
 *     repeat_last_n == 0.
 *  2. top-k: keeps the k highest logits. Off when k <= 0 (or k >= n_vocab).
 *  3. top-p (nucleus, Holtzman et al. 2019): softmax over the survivors,
 *     keeps the smallest prefix (by probability) whose mass reaches p.
 *     Off when p >= 1.
 *  4. min-p: keeps tokens whose probability is at least min_p times the top
 *     one's (logit >= max_logit + log(min_p)). Off when min_p <= 0.
 *  5. temperature: divides the surviving logits by temp; the probabilities
 *     of the draw are their softmax.
 *  6. draw from a seeded xoshiro256** generator (Blackman & Vigna), seeded
 *     through splitmix64; uniforms in [0,1) carry 53 bits.
 *
 * temp == 0 is greedy: the argmax of the logits after the repetition
 * penalty, the lowest id on ties; stages 2-5 are skipped (none of them can
 * drop the top token). Every sample, greedy or not, takes exactly one number
 * from the generator, so the stream does not depend on the logits.
 *
 * Ordering among equal logits is by id (lower first), so the result depends
 * only on the logits, the history and the seed: the same seed gives the same
 * tokens for the same build on the same machine.
 *
 * Cost per token is O(n_vocab) plus a sort of the few survivors: top-k is a
 * heap selection of k among the few blocks of logits whose maxima can hold
 * them, min-p prunes before anything is sorted, and top-p without top-k
 * sorts only the tokens a histogram of the mass shows it may keep. These shortcuts give exactly the sets the order above defines. No
 * allocation after lm_sampler_init.
 *
 * Left out on purpose: frequency/presence penalties, DRY, typical-p, XTC,
 * mirostat, grammars, logit bias.
 */
#ifndef LM_SAMPLER_H
#define LM_SAMPLER_H

#include "lm/common.h"

struct lm_sampler_params {
    float temp;           /* 0 = greedy */
    float top_p;          /* >= 1 = off */
    float min_p;          /* <= 0 = off; at most 1 */
    float repeat_penalty; /* 1 = off; > 0 */
    int top_k;            /* <= 0 = off */
    int repeat_last_n;    /* tokens of history the penalty looks at, 0..2^20; 0 = off */
    uint64_t seed;        /* used when seed_set */
    bool seed_set;        /* false: lm_sampler_init picks a seed from time and pid */
};

/* llama.cpp's defaults: temp 0.8, top-k 40, top-p 0.95, min-p 0.05, repeat
 * penalty 1.0 (off) over the last 64 tokens, random seed. */
struct lm_sampler_params lm_sampler_params_default(void);

/* A token that survived the filters, with its probability in the draw. */
struct lm_candidate {
    int32_t id;
    float logit; /* after the penalty, before temperature */
    float p;
};

struct lm_sampler {
    struct lm_sampler_params params;
    int n_vocab;
    uint64_t seed;          /* the seed in use (chosen or given): print it so a run can be repeated */
    uint64_t rng[4];        /* xoshiro256** state */
    struct lm_candidate *cand; /* [n_vocab] scratch; after lm_sampler_filter, the survivors */
    uint8_t *seen;          /* [n_vocab] scratch for the penalty, all zero between calls */
    float *block_max;       /* scratch: the maximum of each block of logits */
    int32_t *hist;          /* [repeat_last_n] ring of accepted tokens */
    int n_hist, hist_pos;
};

/* Validates params and allocates the scratch arrays. On error returns -1
 * with a message in err; lm_sampler_free is safe either way. */
int lm_sampler_init(struct lm_sampler *s, const struct lm_sampler_params *p, int n_vocab, struct lm_err *err);
void lm_sampler_free(struct lm_sampler *s);

/* Records a token in the penalty's history: call it for the prompt's tokens
 * and for each generated one. */
void lm_sampler_accept(struct lm_sampler *s, int32_t id);

/* Forgets the history and restarts the generator from s->seed, so what
 * follows is what a fresh sampler would produce. */
void lm_sampler_reset(struct lm_sampler *s);

/* Stages 1-5: leaves the survivors in s->cand[0..n) with their
 * probabilities (summing to 1) and returns n >= 1. Logits (n_vocab of them)
 * may be modified in place; NaN counts as -inf. */
int lm_sampler_filter(struct lm_sampler *s, float *logits);

/* All stages: returns the chosen token id. Does not record it (see
 * lm_sampler_accept). */
int32_t lm_sampler_sample(struct lm_sampler *s, float *logits);

/* A uniform double in [0,1) from the sampler's generator (53 bits). */
double lm_sampler_uniform(struct lm_sampler *s);

#endif
