/* smollm3.c: SmolLM3. Llama's layer, but every fourth layer (the 4th, 8th,
 * ...) attends without RoPE ("NoPE"): llama.cpp fixes the interval at 4
 * and the converter writes no key for it. */
#include "arch.h"


#define NO_ROPE_INTERVAL 4

static int load(struct lm_loader *ld) {
    struct lm_model *m = ld->m;
    for (int l = 0; l < m->hp.n_layer && !ld->failed; l++) {
        lm_arch_llama_tensors(ld, &m->layers[l], l, false, false);
        if ((l + 1) % NO_ROPE_INTERVAL == 0) m->layers[l].rope = -1;
    }
    return ld->failed ? -1 : 0;
}

const struct lm_arch lm_arch_smollm3 = {"smollm3", load, lm_arch_llama_layer};
