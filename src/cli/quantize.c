/* lm quantize: a model's weights in another format, as llama-quantize
 * writes them (the rules and the writing are in src/quantize.c).
 *
 * The output is written to a temporary file beside OUT and renamed over it
 * only when complete and synced, so an interrupted run (Ctrl-C, a full
 * disk, a file-size limit) leaves OUT as it was. */
#include "lm/cli.h"
#include "lm/quantize.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage[] =
    "usage: lm quantize IN.gguf OUT.gguf TYPE [--threads N] [--force] [--leave-output-tensor] [--pure]\n"
    "\n"
    "Writes IN's weights in another format, choosing each tensor's format as\n"
    "llama.cpp's llama-quantize does, with the same bytes. 1-D tensors (norms,\n"
    "biases) stay as they are; metadata is copied, general.file_type set.\n"
    "A quantized IN is dequantized first: what its quantization lost does not\n"
    "come back, so quantize from the f16 or f32 model when you have it.\n"
    "\n"
    "TYPE:\n"
    "  f32, f16, bf16               every weight matrix in that format\n"
    "  q8_0, q6_k, q5_0, q5_1, q4_0, q4_1\n"
    "                               that format, the output matrix (or the tied\n"
    "                               token embedding) q6_k\n"
    "  q5_k_m, q5_k_s, q4_k_m, q4_k_s, q3_k_l, q3_k_m, q3_k_s, q2_k\n"
    "                               llama.cpp's mixes: some attn_v, ffn_down and\n"
    "                               attn_output matrices get more bits\n"
    "  q5_k, q4_k, q3_k             the _m mixes, as in llama.cpp\n"
    "Rows that do not divide into a format's blocks (256 weights for the k\n"
    "formats) fall back to a 32-weight format, or to f16.\n"
    "\n"
    "  -t, --threads N          threads (default: number of CPUs)\n"
    "  -f, --force              overwrite OUT if it exists\n"
    "  --leave-output-tensor    copy output.weight as it is\n"
    "  --pure                   TYPE for every weight matrix: no mix rules, no\n"
    "                           q6_k output (fallbacks still apply)\n"
    "\n"
    "Progress goes to stderr when it is a terminal; the sizes at the end always.\n"
    "Exit codes: 0 written, 1 usage (or OUT exists), 2 IN unreadable or not\n"
    "convertible, 3 OUT not written (I/O), 130 interrupted; OUT is then untouched.\n";

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) { stop_signal = sig; }

static const int stop_signals[] = {SIGINT, SIGTERM, SIGHUP};

static void catch_signals(struct sigaction *saved, struct sigaction *saved_xfsz) {
    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: a write returns to the loop at once */
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof stop_signals / sizeof stop_signals[0]; i++) sigaction(stop_signals[i], &sa, &saved[i]);
    /* past a file-size limit, a write then fails (EFBIG) and we clean up
     * instead of dying with the temporary file left behind */
    struct sigaction ign = {.sa_handler = SIG_IGN};
    sigemptyset(&ign.sa_mask);
    sigaction(SIGXFSZ, &ign, saved_xfsz);
}

static void restore_signals(const struct sigaction *saved, const struct sigaction *saved_xfsz) {
    for (size_t i = 0; i < sizeof stop_signals / sizeof stop_signals[0]; i++) sigaction(stop_signals[i], &saved[i], NULL);
    sigaction(SIGXFSZ, saved_xfsz, NULL);
}

struct progress {
    const struct lm_gguf *in;
    const struct lm_quantize_plan *plan;
    double last;
};

static void show_progress(void *ctx, uint64_t i, uint64_t done, uint64_t total) {
    struct progress *p = ctx;
    const double now = lm_time();
    if (now - p->last < 0.1 && done < total) return;
    p->last = now;
    const struct lm_gguf_tensor *t = &p->in->tensors[p->plan->order[i]];
    fprintf(stderr, "\rlm: quantize %3.0f%%  [%llu/%llu] %.*s -> %s\033[K", total ? 100.0 * (double)done / (double)total : 100,
            (unsigned long long)i + 1, (unsigned long long)p->plan->n, (int)t->name.len, t->name.data,
            lm_type_get(p->plan->type[i])->name);
}

struct args {
    const char *in, *out, *type;
    long long threads;
    bool force;
    struct lm_quantize_opts q;
};

static int parse_args(struct args *a, int argc, char **argv) {
    const char **pos[] = {&a->in, &a->out, &a->type};
    size_t n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i], *v;
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            fputs(usage, stdout);
            return -2;
        } else if (!strcmp(s, "-t") || !strcmp(s, "--threads")) {
            if (!(v = lm_cli_value(argc, argv, &i)) || lm_cli_int(s, v, 1, 256, &a->threads) < 0) return -1;
        } else if (!strcmp(s, "-f") || !strcmp(s, "--force")) {
            a->force = true;
        } else if (!strcmp(s, "--leave-output-tensor")) {
            a->q.leave_output = true;
        } else if (!strcmp(s, "--pure")) {
            a->q.pure = true;
        } else if (s[0] == '-' && s[1]) {
            lm_cli_fail(LM_EXIT_USAGE, "quantize: unknown option '%s' (see lm quantize --help)", s);
            return -1;
        } else if (n_pos < 3) {
            *pos[n_pos++] = s;
        } else {
            lm_cli_fail(LM_EXIT_USAGE, "quantize: unexpected argument '%s' (see lm quantize --help)", s);
            return -1;
        }
    }
    if (n_pos < 3) {
        lm_cli_fail(LM_EXIT_USAGE, "quantize: needs IN.gguf OUT.gguf TYPE (see lm quantize --help)");
        return -1;
    }
    if (!(a->q.mix = lm_quantize_mix_find(a->type))) {
        lm_cli_fail(LM_EXIT_USAGE, "quantize: unknown TYPE '%s' (see lm quantize --help for the list)", a->type);
        return -1;
    }
    return 0;
}

/* Writes the whole output to tmp; 0 or an exit code (message printed). */
static int write_output(const struct args *a, const struct lm_gguf *in, const struct lm_quantize_plan *plan,
                        const char *tmp, int fd, struct lm_quantize_stats *st) {
    struct lm_pool *pool = lm_pool_create(a->threads ? (int)a->threads : lm_cpu_count());
    struct progress pr = {in, plan, 0};
    const struct lm_quantize_run run = {.pool = pool, .stop = &stop_signal,
                                        .progress = isatty(STDERR_FILENO) ? show_progress : NULL, .progress_ctx = &pr};
    struct lm_err err;
    int code;
    int rc = lm_quantize_write(in, plan, &a->q, fd, &run, st, &code, &err);
    lm_pool_free(pool);
    if (run.progress) fputs("\r\033[K", stderr);
    if (rc == 0 && fsync(fd) < 0) rc = lm_errf(&err, "cannot write: %s", strerror(errno)), code = LM_EXIT_RUNTIME;
    if (rc < 0) {
        if (code == LM_EXIT_INTERRUPT) {
            const int sig = stop_signal;
            lm_cli_fail(code, "interrupted: %s was not written", a->out);
            return sig == SIGINT ? LM_EXIT_INTERRUPT : 128 + sig;
        }
        if (code == LM_EXIT_MODEL) return lm_cli_fail(code, "%s: %s", a->in, err.msg);
        return lm_cli_fail(code, "%s: %s; the file is left as it was", a->out, err.msg);
    }
    /* mkstemp made it 0600: give it the mode a new file gets */
    const mode_t mask = umask(0);
    umask(mask);
    if (fchmod(fd, 0666 & ~mask) < 0) return lm_cli_fail(LM_EXIT_RUNTIME, "%s: %s", tmp, strerror(errno));
    return 0;
}

int cmd_quantize(int argc, char **argv) {
    struct args a = {0};
    int rc = parse_args(&a, argc, argv);
    if (rc) return rc == -2 ? LM_EXIT_OK : LM_EXIT_USAGE;
    if (lm_cli_flags_only) return LM_EXIT_OK;
    struct stat sto;
    if (stat(a.out, &sto) == 0) {
        if (S_ISDIR(sto.st_mode)) return lm_cli_fail(LM_EXIT_USAGE, "%s is a folder; OUT names the file to write", a.out);
        if (!a.force) return lm_cli_fail(LM_EXIT_USAGE, "%s exists (--force overwrites it)", a.out);
    }
    const double t0 = lm_time();
    struct lm_gguf in;
    struct lm_err err;
    if (lm_gguf_open(&in, a.in, &err) < 0) return lm_cli_fail(LM_EXIT_MODEL, "%s", err.msg);
    struct lm_quantize_plan plan;
    if (lm_quantize_plan(&plan, &in, &a.q, &err) < 0) {
        lm_quantize_plan_free(&plan);
        lm_gguf_close(&in);
        return lm_cli_fail(LM_EXIT_MODEL, "%s: %s", a.in, err.msg);
    }
    if (plan.requant != LM_TYPE_COUNT)
        fprintf(stderr, "lm: warning: %s holds %s weights: they are dequantized first, and what their quantization "
                        "lost does not come back (quantize from the f16 or f32 model when you have it)\n",
                a.in, lm_type_get(plan.requant)->name);
    if (plan.n_fallback)
        fprintf(stderr, "lm: note: %llu of %llu tensors have rows that do not divide into their format's blocks: "
                        "they use a smaller format, as in llama.cpp\n",
                (unsigned long long)plan.n_fallback, (unsigned long long)plan.n);

    struct sigaction saved[sizeof stop_signals / sizeof stop_signals[0]], saved_xfsz;
    stop_signal = 0;
    catch_signals(saved, &saved_xfsz); /* before the temporary file exists, so it never outlives us */
    struct lm_buf tmp = {0};
    lm_buf_printf(&tmp, "%s.tmp-XXXXXX", a.out);
    const int fd = mkstemp(tmp.data);
    struct lm_quantize_stats st;
    if (fd < 0) {
        rc = lm_cli_fail(LM_EXIT_RUNTIME, "%s: cannot create a temporary file beside it: %s", a.out, strerror(errno));
    } else {
        rc = write_output(&a, &in, &plan, tmp.data, fd, &st);
        if (close(fd) < 0 && !rc)
            rc = lm_cli_fail(LM_EXIT_RUNTIME, "%s: cannot write: %s; the file is left as it was", a.out, strerror(errno));
        if (!rc && rename(tmp.data, a.out) < 0)
            rc = lm_cli_fail(LM_EXIT_RUNTIME, "%s: cannot rename the finished file to it: %s", a.out, strerror(errno));
        if (rc) unlink(tmp.data);
    }
    restore_signals(saved, &saved_xfsz);
    if (!rc)
        fprintf(stderr, "lm: wrote %s (%s, %llu tensors): %s -> %s, %.2f -> %.2f bits per weight, in %.1f s\n", a.out,
                a.q.mix->name, (unsigned long long)plan.n, lm_size_str(in.size).s, lm_size_str(st.file_bytes).s,
                st.n_weights ? 8.0 * (double)st.in_bytes / (double)st.n_weights : 0,
                st.n_weights ? 8.0 * (double)st.out_bytes / (double)st.n_weights : 0, lm_time() - t0);
    lm_buf_free(&tmp);
    lm_quantize_plan_free(&plan);
    lm_gguf_close(&in);
    return rc;
}
