/* The sampling flags shared by lm run and lm chat (LM_SAMPLER_USAGE in cli.h). */
#include "lm/cli.h"
#include "lm/sampler.h"

#include <limits.h>
#include <string.h>

int lm_sampler_parse_flag(struct lm_sampler_params *p, int argc, char **argv, int *i) {
    const char *f = argv[*i], *v;
    double d;
    long long n;
    bool is_float = !strcmp(f, "--temp") || !strcmp(f, "--top-p") || !strcmp(f, "--min-p") ||
                    !strcmp(f, "--repeat-penalty");
    bool is_int = !strcmp(f, "--top-k") || !strcmp(f, "--repeat-last-n") || !strcmp(f, "-s") || !strcmp(f, "--seed");
    if (!is_float && !is_int) return 0;
    if (!(v = lm_cli_value(argc, argv, i))) return -1;

    if (!strcmp(f, "--temp")) {
        if (lm_cli_float(f, v, 0, 1000, &d)) return -1;
        p->temp = (float)d;
    } else if (!strcmp(f, "--top-p")) {
        if (lm_cli_float(f, v, 0, 1, &d)) return -1;
        p->top_p = (float)d;
    } else if (!strcmp(f, "--min-p")) {
        if (lm_cli_float(f, v, 0, 1, &d)) return -1;
        p->min_p = (float)d;
    } else if (!strcmp(f, "--repeat-penalty")) {
        if (lm_cli_float(f, v, 0.01, 100, &d)) return -1;
        p->repeat_penalty = (float)d;
    } else if (!strcmp(f, "--top-k")) {
        /* Negative means off, as in llama.cpp. */
        if (lm_cli_int(f, v, INT_MIN, INT_MAX, &n)) return -1;
        p->top_k = (int)n;
    } else if (!strcmp(f, "--repeat-last-n")) {
        if (lm_cli_int(f, v, 0, 1 << 20, &n)) return -1;
        p->repeat_last_n = (int)n;
    } else { /* -s, --seed; -1 asks for a fresh one, as llama.cpp's */
        if (lm_cli_int(f, v, -1, LLONG_MAX, &n)) return -1;
        p->seed = n < 0 ? 0 : (uint64_t)n;
        p->seed_set = n >= 0;
    }
    return 1;
}
