/* lm perplexity: how well a model predicts a text, and how far its
 * predictions are from a base model's (KL divergence), in the figures
 * llama.cpp's llama-perplexity prints. Progress goes to stderr, results to
 * stdout. */
#include "lm/cli.h"
#include "lm/generate.h"
#include "lm/perplexity.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: lm perplexity [-m MODEL.gguf] -f TEXT [-c 512] [-b N] [--chunks N] [-t N] [-o json]\n"
    "       lm perplexity [-m MODEL.gguf] -f TEXT --kl-divergence-base FILE\n"
    "       lm perplexity [-m MODEL.gguf] --kl-divergence-base FILE --kl-divergence\n"
    "\n"
    "Perplexity of the model over TEXT, scored as llama.cpp's llama-perplexity\n"
    "scores it: the text's tokens are cut into windows of -c tokens, each run from\n"
    "an empty cache (BOS first when the model adds one); the first half of a window\n"
    "is context, each token of the second half is scored. The running value after\n"
    "each window goes to stderr ([1]12.3456,[2]...); stdout ends with\n"
    "  Final estimate: PPL = X +/- Y\n"
    "(Y: standard error). The text must be UTF-8 and hold at least two windows.\n"
    "\n"
    "  -m, --model PATH      model file (default: $LM_MODEL, else models/default.gguf)\n"
    "  -f, --file TEXT       the text ('-' is standard input; one trailing newline is\n"
    "                        dropped, as llama.cpp does)\n"
    "  -c, --ctx-size N      tokens per window (default 512)\n"
    "  -b, --batch-size N    tokens per forward pass (default: -c, at most 512)\n"
    "  --chunks N            score at most the first N windows (default: all)\n"
    "  -t, --threads N       threads (default: number of CPUs)\n"
    "  --kl-divergence-base FILE\n"
    "                        save the model's log-probabilities over the scored tokens to\n"
    "                        FILE in llama.cpp's format (llama-perplexity reads it), or\n"
    "                        with --kl-divergence read a base model's from it\n"
    "  --kl-divergence       compare the model with the base in FILE, over the windows\n"
    "                        and tokens FILE holds (-f and -c are not needed): KL\n"
    "                        divergence (mean, median, percentiles), how often both put\n"
    "                        the same token on top, dp = p - p(base), PPL ratio\n"
    "  -o, --output FMT      text (default) or json: one object {\"ppl\", \"ppl_error\",\n"
    "                        \"n_chunks\", \"n_ctx\"}, with --kl-divergence also \"kld_mean\",\n"
    "                        \"kld_median\", \"kld_p99\", \"same_top_p\", \"delta_p_mean\" and\n"
    "                        \"ppl_base\" (probabilities as fractions, not percents)\n"
    "\n"
    "A bad text (missing, empty, not UTF-8, shorter than two windows) or base file\n"
    "is exit code 3.\n";

struct opts {
    const char *model, *file, *base;
    long long n_ctx, n_batch, n_chunks, threads;
    bool kld, json;
};

static int parse(int argc, char **argv, struct opts *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        long long *num = NULL, lo = 1, hi = 1 << 16;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return -1;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!(o->model = lm_cli_value(argc, argv, &i))) return LM_EXIT_USAGE;
            continue;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            if (!(o->file = lm_cli_value(argc, argv, &i))) return LM_EXIT_USAGE;
            continue;
        } else if (!strcmp(a, "--kl-divergence-base")) {
            if (!(o->base = lm_cli_value(argc, argv, &i))) return LM_EXIT_USAGE;
            continue;
        } else if (!strcmp(a, "--kl-divergence")) {
            o->kld = true;
            continue;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (!(v = lm_cli_value(argc, argv, &i))) return LM_EXIT_USAGE;
            if (strcmp(v, "text") && strcmp(v, "json"))
                return lm_cli_fail(LM_EXIT_USAGE, "perplexity: -o: '%s' is not text or json", v);
            o->json = !strcmp(v, "json");
            continue;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
            num = &o->n_ctx, lo = LM_PPL_MIN_CTX, hi = 1 << 30; /* memory is checked when the context is made */
        } else if (!strcmp(a, "-b") || !strcmp(a, "--batch-size")) {
            num = &o->n_batch;
        } else if (!strcmp(a, "--chunks")) {
            num = &o->n_chunks, hi = INT32_MAX;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            num = &o->threads, hi = 256;
        } else {
            return lm_cli_fail(LM_EXIT_USAGE, "perplexity: unknown option '%s' (see lm perplexity --help)", a);
        }
        if (!(v = lm_cli_value(argc, argv, &i)) || lm_cli_int(a, v, lo, hi, num) < 0) return LM_EXIT_USAGE;
    }
    if (o->kld && !o->base)
        return lm_cli_fail(LM_EXIT_USAGE, "perplexity: --kl-divergence needs --kl-divergence-base FILE");
    if (!o->kld && !o->file) return lm_cli_fail(LM_EXIT_USAGE, "perplexity: give the text with -f FILE");
    return 0;
}

/* The text as llama.cpp reads it: one trailing newline dropped; refused
 * when empty or not UTF-8 (the tokenizer would silently drop such bytes). */
static int read_text(const char *path, struct lm_buf *text) {
    struct lm_err err;
    if (lm_read_file(path, text, &err) < 0) return lm_cli_fail(LM_EXIT_RUNTIME, "%s", err.msg);
    if (text->len && text->data[text->len - 1] == '\n') text->data[--text->len] = 0;
    if (text->len == 0) return lm_cli_fail(LM_EXIT_RUNTIME, "%s: the text is empty", path);
    for (size_t i = 0; i < text->len;) {
        uint32_t cp;
        size_t k = lm_utf8_decode(text->data + i, text->len - i, &cp);
        if (cp >= LM_UNICODE_BAD)
            return lm_cli_fail(LM_EXIT_RUNTIME, "%s: not UTF-8 text (byte 0x%02X at offset %zu)", path,
                               (unsigned char)text->data[i], i);
        i += k;
    }
    return 0;
}

static void on_ppl_chunk(void *ud, int n_done) {
    const struct lm_ppl_result *r = ud;
    fprintf(stderr, "[%d]%.4f,", n_done, exp(r->nll / (double)r->count));
    fflush(stderr);
}

static void on_kld_chunk(void *ud, int n_done) {
    const struct lm_kld_result *r = ud;
    struct lm_kld_stats st;
    lm_kld_stats(&r->sums, &st);
    if (n_done == 1)
        fprintf(stderr, "chunk             PPL               ln(PPL(Q)/PPL(base))          KL Divergence              "
                        "Δp RMS            Same top p\n");
    fprintf(stderr, "%4d    %9.4f ± %9.4f    %10.5f ± %10.5f    %10.5f ± %10.5f    %6.3f ± %6.3f %%    %6.3f ± %6.3f %%\n",
            n_done, st.ppl, st.ppl_unc, st.log_ratio, st.log_ratio_unc, st.kld, st.kld_unc, 100 * st.rms_p_diff,
            100 * st.rms_p_diff_unc, 100 * st.same_top, 100 * st.same_top_unc);
}

/* JSON has no NaN or infinity (a hostile base file can make them). */
static void json_num(const char *key, double v, bool last) {
    if (isfinite(v)) printf("\"%s\":%.10g%s", key, v, last ? "" : ",");
    else printf("\"%s\":null%s", key, last ? "" : ",");
}

static void print_kld(const struct lm_kld_result *r, int n_ctx, bool json) {
    struct lm_kld_stats st;
    lm_kld_stats(&r->sums, &st);
    const float *kld = r->kld, *dp = r->p_diff;
    size_t n = r->sums.count;
    if (json) {
        printf("{");
        json_num("ppl", st.ppl, false);
        json_num("ppl_error", st.ppl_unc, false);
        printf("\"n_chunks\":%d,\"n_ctx\":%d,", r->n_chunk, n_ctx);
        json_num("kld_mean", st.kld, false);
        json_num("kld_median", lm_median(kld, n), false);
        json_num("kld_p99", lm_percentile(kld, n, 0.99f), false);
        json_num("same_top_p", st.same_top, false);
        json_num("delta_p_mean", st.p_diff, false);
        json_num("ppl_base", st.ppl_base, true);
        printf("}\n");
        return;
    }
    printf("====== Perplexity statistics ======\n");
    printf("Mean PPL(Q)                   : %10.6f ± %10.6f\n", st.ppl, st.ppl_unc);
    printf("Mean PPL(base)                : %10.6f ± %10.6f\n", st.ppl_base, st.ppl_base_unc);
    printf("Cor(ln(PPL(Q)), ln(PPL(base))): %6.2f%%\n", 100 * st.log_ppl_cor);
    printf("Mean ln(PPL(Q)/PPL(base))     : %10.6f ± %10.6f\n", st.log_ratio, st.log_ratio_unc);
    printf("Mean PPL(Q)/PPL(base)         : %10.6f ± %10.6f\n", st.ratio, st.ratio_unc);
    printf("Mean PPL(Q)-PPL(base)         : %10.6f ± %10.6f\n", st.diff, st.diff_unc);
    printf("\n====== KL divergence statistics ======\n");
    printf("Mean    KLD: %10.6f ± %10.6f\n", st.kld, st.kld_unc);
    printf("Maximum KLD: %10.6f\n", kld[n - 1]);
    static const float kld_pct[] = {0.999f, 0.99f, 0.95f, 0.90f, 0.5f, 0.10f, 0.05f, 0.01f, 0.001f};
    for (size_t i = 0; i < sizeof kld_pct / sizeof *kld_pct; i++) {
        if (kld_pct[i] == 0.5f) printf("Median  KLD: %10.6f\n", lm_median(kld, n));
        else printf("%4.1f%%   KLD: %10.6f\n", 100 * kld_pct[i], lm_percentile(kld, n, kld_pct[i]));
    }
    printf("Minimum KLD: %10.6f\n", kld[0]);
    printf("\n====== Token probability statistics ======\n");
    printf("Mean    Δp: %6.3f ± %5.3f %%\n", 100 * st.p_diff, 100 * st.p_diff_unc);
    printf("Maximum Δp: %6.3f%%\n", 100.0 * dp[n - 1]);
    static const float dp_pct[] = {0.999f, 0.99f, 0.95f, 0.90f, 0.75f, 0.5f, 0.25f, 0.10f, 0.05f, 0.01f, 0.001f};
    for (size_t i = 0; i < sizeof dp_pct / sizeof *dp_pct; i++) {
        if (dp_pct[i] == 0.5f) printf("Median  Δp: %6.3f%%\n", 100.0 * lm_median(dp, n));
        else printf("%4.1f%%   Δp: %6.3f%%\n", 100 * dp_pct[i], 100.0 * lm_percentile(dp, n, dp_pct[i]));
    }
    printf("Minimum Δp: %6.3f%%\n", 100.0 * dp[0]);
    printf("RMS Δp    : %6.3f ± %5.3f %%\n", 100 * st.rms_p_diff, 100 * st.rms_p_diff_unc);
    printf("Same top p: %6.3f ± %5.3f %%\n", 100 * st.same_top, 100 * st.same_top_unc);
}

int cmd_perplexity(int argc, char **argv) {
    struct opts o = {.n_ctx = 0};
    int rc = parse(argc, argv, &o);
    if (rc || lm_cli_flags_only) return rc < 0 ? LM_EXIT_OK : rc;
    struct lm_buf text = {0};
    struct lm_tokens ids = {0};
    struct lm_engine e = {0};
    struct lm_logits_file lf = {0};
    struct lm_ppl_result pr = {0};
    struct lm_kld_result kr = {0};
    struct lm_err err;
    const char *model = lm_cli_model_path(o.model);
    if (!model) return LM_EXIT_MODEL;
    int n_ctx = o.n_ctx ? (int)o.n_ctx : 512;
    if (o.kld) {
        if (o.file) fprintf(stderr, "lm: perplexity: -f is not read with --kl-divergence: the tokens come from %s\n", o.base);
        if (lm_logits_open(&lf, o.base, &err) < 0) {
            rc = lm_cli_fail(LM_EXIT_RUNTIME, "%s", err.msg);
            goto done;
        }
        if (o.n_ctx && o.n_ctx != lf.n_ctx) {
            rc = lm_cli_fail(LM_EXIT_USAGE, "perplexity: -c %lld, but %s holds windows of %d tokens", o.n_ctx, o.base,
                             lf.n_ctx);
            goto done;
        }
        n_ctx = lf.n_ctx;
    } else if ((rc = read_text(o.file, &text))) {
        goto done;
    }
    struct lm_engine_opts eo = {.model_path = model, .n_ctx = n_ctx, .n_threads = (int)o.threads,
                                .n_batch = o.n_batch ? (int)o.n_batch : n_ctx < LM_BATCH_DEFAULT ? n_ctx : LM_BATCH_DEFAULT,
                                .sampling = lm_sampler_params_default()};
    int code;
    if (lm_engine_open(&e, &eo, &code, &err) < 0) {
        rc = lm_cli_fail(code, "%s", err.msg);
        goto done;
    }
    struct lm_ppl_opts po = {.n_ctx = n_ctx, .n_chunks = (int)o.n_chunks, .bos = e.tok.add_bos ? e.tok.bos : -1};
    if (e.tok.add_bos && e.tok.bos < 0) {
        rc = lm_cli_fail(LM_EXIT_MODEL, "%s: the vocabulary asks for a BOS token but has none", model);
        goto done;
    }
    if (e.tok.add_eos) { /* llama.cpp refuses these too: an EOS would end the text */
        rc = lm_cli_fail(LM_EXIT_RUNTIME, "%s: the vocabulary adds EOS to a text, which perplexity cannot score", model);
        goto done;
    }
    double t0 = lm_time();
    if (o.kld) {
        int n_chunk = o.n_chunks > 0 && o.n_chunks < lf.n_chunk ? (int)o.n_chunks : lf.n_chunk;
        fprintf(stderr, "lm: KL divergence over %d windows of %d tokens from %s, batch %d, %d threads\n", n_chunk,
                n_ctx, o.base, e.ctx.n_batch, lm_pool_size(e.pool));
        po.on_chunk = on_kld_chunk;
        po.ud = &kr;
        if (lm_kl_divergence(&e.ctx, &lf, &po, &kr, &err) < 0) {
            rc = lm_cli_fail(LM_EXIT_RUNTIME, "%s", err.msg);
            goto done;
        }
    } else {
        if (lm_tokenizer_encode(&e.tok, text.data, text.len, e.tok.add_bos, false, &ids, &err) < 0) {
            rc = lm_cli_fail(LM_EXIT_RUNTIME, "%s", err.msg);
            goto done;
        }
        if (ids.n < 2 * (size_t)n_ctx) {
            rc = lm_cli_fail(LM_EXIT_RUNTIME, "%s: the text is %zu tokens; two windows of %d (-c) need at least %zu",
                             o.file, ids.n, n_ctx, 2 * (size_t)n_ctx);
            goto done;
        }
        int n_chunk = lm_ppl_n_chunks(&po, ids.n);
        fprintf(stderr, "lm: perplexity over %d windows of %d tokens (the text is %zu tokens), batch %d, %d threads\n",
                n_chunk, n_ctx, ids.n, e.ctx.n_batch, lm_pool_size(e.pool));
        if (o.base && lm_logits_create(&lf, o.base, n_ctx, e.model.hp.n_vocab, n_chunk, ids.ids, &err) < 0) {
            rc = lm_cli_fail(LM_EXIT_RUNTIME, "%s", err.msg);
            goto done;
        }
        po.on_chunk = on_ppl_chunk;
        po.ud = &pr;
        if (lm_perplexity(&e.ctx, ids.ids, ids.n, &po, o.base ? &lf : NULL, &pr, &err) < 0 ||
            (o.base && lm_logits_close(&lf, &err) < 0)) {
            fputc('\n', stderr);
            rc = lm_cli_fail(LM_EXIT_RUNTIME, "%s", err.msg);
            if (o.base) { /* a partial file would pass for a whole one in fewer chunks */
                lm_logits_close(&lf, NULL);
                remove(o.base);
            }
            goto done;
        }
        fputc('\n', stderr);
    }
    double secs = lm_time() - t0;
    int done_chunks = o.kld ? kr.n_chunk : pr.n_chunk;
    fprintf(stderr, "lm: %d windows in %.2f s (%.2f s per window)%s%s\n", done_chunks, secs, secs / done_chunks,
            o.base && !o.kld ? ", log-probabilities saved to " : "", o.base && !o.kld ? o.base : "");
    if (o.kld) {
        lm_kld_sort(&kr);
        print_kld(&kr, n_ctx, o.json);
    } else {
        double ppl, ppl_err;
        lm_ppl_estimate(&pr, &ppl, &ppl_err);
        if (o.json) {
            printf("{");
            json_num("ppl", ppl, false);
            json_num("ppl_error", ppl_err, false);
            printf("\"n_chunks\":%d,\"n_ctx\":%d}\n", pr.n_chunk, n_ctx);
        } else {
            printf("Final estimate: PPL = %.4f +/- %.5f\n", ppl, ppl_err);
        }
    }
    if (fflush(stdout) != 0) rc = lm_cli_fail(LM_EXIT_RUNTIME, "cannot write to stdout");
done:
    lm_logits_close(&lf, NULL);
    lm_kld_result_free(&kr);
    lm_engine_close(&e);
    lm_tokens_free(&ids);
    lm_buf_free(&text);
    return rc;
}
