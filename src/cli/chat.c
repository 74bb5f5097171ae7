/* lm chat: conversations through the model's chat template, in a terminal
 * (line editing, commands, streamed replies) or in a pipe (stdin is one user
 * message; stdout gets only the reply). */
#include "lm/chat.h"
#include "lm/cli.h"
#include "lm/lineedit.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: lm chat [-m MODEL.gguf] [options]\n"
    "\n"
    "Talks with the model through its own chat template. In a terminal: type a\n"
    "message and press Enter (a line ending in \\ continues on the next line);\n"
    "replies stream as they are generated; /help lists the commands. In a pipe:\n"
    "all of standard input is one user message and stdout gets only the reply.\n"
    "\n"
    LM_ENGINE_USAGE
    "  -sys, --system TEXT   the system prompt\n"
    "  --system-file FILE    the system prompt, from FILE\n"
    "  --messages FILE.json  continue this conversation (a JSON array of\n"
    "                        {\"role\", \"content\"}) and print the next reply\n"
    "  --json                print {\"role\":\"assistant\",\"content\":...,\"usage\":{...}}\n"
    "                        instead of the bare reply (pipes)\n"
    "  --template NAME       use a built-in template instead of the model's:\n"
    "                        chatml, llama3, llama2, gemma, phi3, deepseek-r1\n"
    "  --template-file FILE  use the Jinja template in FILE\n"
    "  --show-prompt         print the rendered prompt to stderr before each reply\n"
    "  --show-thinking       keep <think>...</think> text in piped output\n"
    "  -n, --n-predict N     at most N tokens per reply (default -1: until the model\n"
    "                        ends its turn); when the context is full, the oldest\n"
    "                        turns are dropped\n"
    "  -q, --quiet           no statistics or notes on stderr\n"
    "\n" LM_SAMPLER_USAGE;

static const char help_text[] =
    "commands:\n"
    "  /system TEXT   set the system prompt (/system alone removes it)\n"
    "  /reset         start the conversation over (the system prompt stays)\n"
    "  /save FILE     save the conversation as JSON\n"
    "  /load FILE     load a conversation saved with /save\n"
    "  /stats         speed of the last reply and context use\n"
    "  /help          this list\n"
    "  /exit          quit (so does Ctrl-D); Ctrl-C stops a reply\n";

struct chat_opts {
    struct lm_engine_opts engine;
    const char *system, *system_file, *messages;
    struct lm_cli_template tmpl;
    long long n_predict;
    bool json, show_prompt, show_thinking, quiet;
};

static void on_sigint(int sig) {
    (void)sig;
    lm_interrupted = 1;
}

static int parse(int argc, char **argv, struct chat_opts *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int r = lm_cli_engine_flag(&o->engine, argc, argv, &i);
        if (!r) r = lm_cli_template_flag(&o->tmpl, argc, argv, &i);
        if (r < 0) return LM_EXIT_USAGE;
        if (r > 0) continue;
        const char **value = NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return -1;
        } else if (!strcmp(a, "-sys") || !strcmp(a, "--system")) value = &o->system;
        else if (!strcmp(a, "--system-file")) value = &o->system_file;
        else if (!strcmp(a, "--messages")) value = &o->messages;
        else if (!strcmp(a, "--json")) o->json = true;
        else if (!strcmp(a, "--show-prompt")) o->show_prompt = true;
        else if (!strcmp(a, "--show-thinking")) o->show_thinking = true;
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) o->quiet = true;
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            if (!(v = lm_cli_value(argc, argv, &i)) || lm_cli_int(a, v, -1, 1 << 24, &o->n_predict) < 0) return LM_EXIT_USAGE;
        } else {
            return lm_cli_fail(LM_EXIT_USAGE, "chat: unknown option '%s' (see lm chat --help)", a);
        }
        if (value && !(*value = lm_cli_value(argc, argv, &i))) return LM_EXIT_USAGE;
    }
    if (o->system && o->system_file) return lm_cli_fail(LM_EXIT_USAGE, "chat: give --system or --system-file, not both");
    return 0;
}

/* ---- showing a reply ------------------------------------------------------- */

/* Shows the reply as it streams: thinking (<think>...</think>) dimmed in a
 * terminal, dropped in a pipe unless --show-thinking (lm_think_filter). All
 * text is also kept raw in `reply` for the conversation. */
struct reply_sink {
    bool tty, to_stdout;
    struct lm_think_filter think;
    struct lm_buf reply; /* everything the model said */
    struct lm_buf shown; /* the visible answer, for --json */
};

static void show(void *ud, const char *text, size_t n, bool thinking) {
    struct reply_sink *s = ud;
    if (!s->to_stdout) {
        lm_buf_append(&s->shown, text, n);
        return;
    }
    if (thinking && s->tty) fputs("\x1b[2m", stdout);
    fwrite(text, 1, n, stdout);
    if (thinking && s->tty) fputs("\x1b[0m", stdout);
    fflush(stdout);
}

static void sink_init(struct reply_sink *s, bool tty, bool show_thinking, bool to_stdout) {
    *s = (struct reply_sink){.tty = tty, .to_stdout = to_stdout};
    s->think = (struct lm_think_filter){.keep_thinking = tty || show_thinking, .keep_blank = show_thinking,
                                        .out = show, .ud = s};
}

static void sink_text(void *ud, const char *text, size_t n) {
    struct reply_sink *s = ud;
    lm_buf_append(&s->reply, text, n);
    lm_think_feed(&s->think, text, n);
}

/* ---- one turn -------------------------------------------------------------- */

struct chat_session {
    struct chat_opts *o;
    struct lm_engine e;
    struct lm_chat chat;
    struct lm_gen_stats last;
    int last_prompt_tokens; /* the whole rendered prompt; last.n_prompt counts only those not already cached */
    bool have_last;
};

/* Renders the conversation, dropping the oldest turns while it does not
 * leave room for a reply, and tokenizes it. */
static int fit(struct chat_session *cs, struct lm_buf *text, struct lm_tokens *ids, struct lm_err *err) {
    int n_ctx = cs->e.ctx.n_ctx;
    int reserve = cs->o->n_predict >= 0 ? (int)cs->o->n_predict : n_ctx / 4 < 512 ? n_ctx / 4 : 512;
    size_t room = reserve < n_ctx ? (size_t)(n_ctx - reserve) : 0;
    char warn[160];
    int dropped = lm_chat_fit(&cs->chat, true, room, text, ids, warn, err);
    if (dropped < 0) return -1;
    if (ids->n > room && (int)ids->n >= n_ctx) /* the last turn alone need not leave room, only fit */
        return lm_errf(err, "the message (%zu tokens with the template) does not fit in the context of %d tokens "
                            "(see -c)", ids->n, n_ctx);
    if (!cs->o->quiet && dropped)
        fprintf(stderr, "lm: context full: dropped the %d oldest turn%s\n", dropped, dropped > 1 ? "s" : "");
    if (!cs->o->quiet && warn[0]) fprintf(stderr, "lm: note: %s\n", warn);
    return 0;
}

/* Adds the user's message, generates the reply into sink and keeps it. */
static int turn(struct chat_session *cs, const char *message, size_t len, struct reply_sink *sink, struct lm_err *err) {
    if (message) lm_chat_add(&cs->chat, "user", message, len);
    struct lm_buf text = {0};
    struct lm_tokens ids = {0};
    int rc = fit(cs, &text, &ids, err);
    if (rc == 0) {
        if (cs->o->show_prompt) fprintf(stderr, "%s", text.data ? text.data : "");
        sink->think.in_think = lm_think_opened(text.data ? text.data : "", text.len);
        int keep = lm_engine_common_prefix(&cs->e, ids.ids, (int)ids.n);
        if (keep == (int)ids.n) keep--; /* the last token must run again for its logits */
        keep = lm_engine_truncate(&cs->e, keep);
        struct lm_gen_params gp = {.n_predict = (int)cs->o->n_predict, .on_text = sink_text, .ud = sink,
                                   .ignore_eog = cs->o->engine.ignore_eos};
        rc = lm_generate(&cs->e, ids.ids + keep, (int)ids.n - keep, &gp, &cs->last, err);
        lm_think_flush(&sink->think);
        if (rc == 0) {
            cs->have_last = true;
            cs->last_prompt_tokens = (int)ids.n;
            lm_chat_add(&cs->chat, "assistant", sink->reply.data ? sink->reply.data : "", sink->reply.len);
            if (cs->last.stop == LM_STOP_CONTEXT && !cs->o->quiet)
                fprintf(stderr, "\nlm: the reply filled the context (%d tokens) and was cut\n", cs->e.ctx.n_ctx);
        }
    }
    lm_buf_free(&text);
    lm_tokens_free(&ids);
    return rc;
}

static void sink_free(struct reply_sink *s) {
    lm_think_free(&s->think);
    lm_buf_free(&s->reply);
    lm_buf_free(&s->shown);
}

/* ---- piped ----------------------------------------------------------------- */

static int run_piped(struct chat_session *cs) {
    struct chat_opts *o = cs->o;
    struct lm_err err;
    struct lm_buf input = {0};
    int rc = LM_EXIT_OK;
    if (!o->messages) {
        if (lm_read_file("-", &input, &err) < 0) return lm_cli_fail(LM_EXIT_RUNTIME, "%s", err.msg);
        while (input.len && (input.data[input.len - 1] == '\n' || input.data[input.len - 1] == '\r')) input.len--;
        if (!input.len) {
            lm_buf_free(&input);
            return lm_cli_fail(LM_EXIT_USAGE, "chat: no message on standard input");
        }
    }
    struct reply_sink sink;
    sink_init(&sink, false, o->show_thinking, !o->json);
    signal(SIGINT, on_sigint);
    if (turn(cs, o->messages ? NULL : input.data, input.len, &sink, &err) < 0) {
        rc = lm_cli_fail(LM_EXIT_RUNTIME, "%s", err.msg);
    } else if (o->json) {
        struct lm_buf out = {0};
        lm_buf_puts(&out, "{\"role\":\"assistant\",\"content\":");
        lm_json_write_str(&out, sink.shown.data ? sink.shown.data : "", sink.shown.len, false);
        lm_buf_printf(&out, ",\"finish_reason\":\"%s\",\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,"
                            "\"total_tokens\":%d}}\n",
                      lm_stop_reason_name(cs->last.stop), cs->last_prompt_tokens, cs->last.n_gen,
                      cs->last_prompt_tokens + cs->last.n_gen);
        fwrite(out.data, 1, out.len, stdout);
        lm_buf_free(&out);
    } else {
        fputc('\n', stdout);
    }
    signal(SIGINT, SIG_DFL);
    if (fflush(stdout) != 0) rc = lm_cli_fail(LM_EXIT_RUNTIME, "cannot write to stdout");
    if (rc == LM_EXIT_OK && !o->quiet) {
        struct lm_buf line = {0};
        lm_gen_stats_line(&cs->e, &cs->last, &line);
        fprintf(stderr, "lm: %s\n", line.data);
        lm_buf_free(&line);
    }
    if (rc == LM_EXIT_OK && cs->last.stop == LM_STOP_INTERRUPT) rc = LM_EXIT_INTERRUPT;
    sink_free(&sink);
    lm_buf_free(&input);
    return rc;
}

/* ---- interactive ----------------------------------------------------------- */

static void show_stats(struct chat_session *cs) {
    if (cs->have_last) {
        struct lm_buf line = {0};
        lm_gen_stats_line(&cs->e, &cs->last, &line);
        printf("last reply: %s\n", line.data);
        lm_buf_free(&line);
    }
    printf("context: %d of %d tokens in use, %zu messages\n", cs->e.n_cached, cs->e.ctx.n_ctx, cs->chat.n_msgs);
}

/* Replaces the conversation with the one in the JSON file at path; an
 * error names the file once. */
static int load_conversation(struct lm_chat *chat, const char *path, struct lm_err *err) {
    struct lm_buf json = {0};
    int rc = lm_read_file(path, &json, err);
    if (rc == 0 && (rc = lm_chat_from_json(chat, json.data ? json.data : "", json.len, err)) < 0) lm_err_prefix(err, path);
    lm_buf_free(&json);
    return rc;
}

/* Handles a /command; returns 1 to quit. */
static int command(struct chat_session *cs, char *line) {
    char *arg = line + strcspn(line, " \t");
    if (*arg) *arg++ = 0;
    arg += strspn(arg, " \t");
    struct lm_err err;
    if (!strcmp(line, "/exit") || !strcmp(line, "/quit")) return 1;
    if (!strcmp(line, "/help")) {
        fputs(help_text, stdout);
    } else if (!strcmp(line, "/reset")) {
        lm_chat_reset(&cs->chat, true);
        printf("(conversation cleared)\n");
    } else if (!strcmp(line, "/system")) {
        lm_chat_set_system(&cs->chat, *arg ? arg : NULL);
        printf(*arg ? "(system prompt set)\n" : "(system prompt removed)\n");
    } else if (!strcmp(line, "/stats")) {
        show_stats(cs);
    } else if (!strcmp(line, "/save") && *arg) {
        struct lm_buf json = {0};
        lm_chat_to_json(&cs->chat, &json);
        FILE *f = fopen(arg, "wb");
        bool ok = f && fwrite(json.data, 1, json.len, f) == json.len;
        if (f && fclose(f) != 0) ok = false;
        if (ok) printf("(saved %zu messages to %s)\n", cs->chat.n_msgs, arg);
        else fprintf(stderr, "lm: %s: %s\n", arg, strerror(errno));
        lm_buf_free(&json);
    } else if (!strcmp(line, "/load") && *arg) {
        if (load_conversation(&cs->chat, arg, &err) < 0) fprintf(stderr, "lm: %s\n", err.msg);
        else printf("(loaded %zu messages from %s)\n", cs->chat.n_msgs, arg);
    } else {
        printf("unknown command %s (or missing argument); /help lists them\n", line);
    }
    return 0;
}

static int run_interactive(struct chat_session *cs) {
    struct lm_buf msg = {0};
    struct lm_err err;
    struct lm_lineedit le;
    lm_lineedit_init(&le, 500);
    struct sigaction sa = {.sa_handler = on_sigint}; /* no SA_RESTART: Ctrl-C ends a read */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    fprintf(stderr, "lm chat: %s, context %d tokens. /help for commands, Ctrl-D to quit.\n", cs->o->engine.model_path,
            cs->e.ctx.n_ctx);
    for (;;) {
        int r = lm_lineedit_read_message(&le, "> ", "... ", &msg);
        if (r == LM_LINEEDIT_EOF) break;
        if (r == LM_LINEEDIT_ERROR) {
            fprintf(stderr, "lm: cannot read the terminal: %s\n", strerror(errno));
            break;
        }
        if (r == LM_LINEEDIT_INTERRUPT) {
            lm_interrupted = 0;
            printf("(Ctrl-D or /exit quits)\n");
            continue;
        }
        if (!msg.len) continue;
        if (msg.data[0] == '/') {
            if (command(cs, msg.data)) break;
            continue;
        }
        struct reply_sink sink;
        sink_init(&sink, true, false, true); /* a terminal shows the thinking anyway, dimmed */
        lm_interrupted = 0;
        if (turn(cs, msg.data, msg.len, &sink, &err) < 0) fprintf(stderr, "lm: %s\n", err.msg);
        else if (cs->last.stop == LM_STOP_INTERRUPT) printf(" (interrupted)");
        lm_interrupted = 0;
        printf("\n");
        sink_free(&sink);
    }
    lm_lineedit_free(&le);
    lm_buf_free(&msg);
    signal(SIGINT, SIG_DFL);
    return LM_EXIT_OK;
}

/* ---- setup ----------------------------------------------------------------- */

/* The template: a file, a built-in, or the model's own (chatml, loudly, when
 * the model has none). */
static int load_template(struct chat_session *cs, struct lm_buf *tmpl, struct lm_err *err) {
    const struct chat_opts *o = cs->o;
    int chosen = lm_cli_template_text(&o->tmpl, tmpl, err);
    if (chosen) return chosen < 0 ? -1 : 0;
    struct lm_gguf_str s;
    int found = lm_gguf_get_str(&cs->e.model.gguf, "tokenizer.chat_template", &s, err);
    if (found < 0) return -1;
    if (found) {
        lm_buf_append(tmpl, s.data, s.len);
        return 0;
    }
    fprintf(stderr, "lm: warning: %s has no chat template; using chatml (choose one with --template)\n",
            o->engine.model_path);
    lm_buf_puts(tmpl, lm_chat_builtin("chatml"));
    return 0;
}

int cmd_chat(int argc, char **argv) {
    struct chat_opts o = {.n_predict = -1};
    o.engine.sampling = lm_sampler_params_default();
    int rc = parse(argc, argv, &o);
    if (rc || lm_cli_flags_only) return rc < 0 ? LM_EXIT_OK : rc;
    if (!(o.engine.model_path = lm_cli_model_path(o.engine.model_path))) return LM_EXIT_MODEL;
    struct chat_session cs = {.o = &o};
    struct lm_err err;
    struct lm_buf tmpl = {0}, text = {0};
    bool interactive = isatty(STDIN_FILENO) && !o.messages;
    if (o.system_file && lm_read_file(o.system_file, &text, &err) < 0) return lm_cli_fail(LM_EXIT_USAGE, "%s", err.msg);
    int code;
    if (lm_engine_open(&cs.e, &o.engine, &code, &err) < 0) {
        lm_buf_free(&text);
        return lm_cli_fail(code, "%s", err.msg);
    }
    if (load_template(&cs, &tmpl, &err) < 0) {
        rc = lm_cli_fail(LM_EXIT_USAGE, "%s", err.msg);
        goto done;
    }
    lm_chat_init(&cs.chat, &cs.e.tok, tmpl.data, tmpl.len);
    if (o.messages) {
        if (load_conversation(&cs.chat, o.messages, &err) < 0) {
            rc = lm_cli_fail(LM_EXIT_USAGE, "%s", err.msg);
            goto done;
        }
    }
    if (o.system) lm_chat_set_system(&cs.chat, o.system);
    if (o.system_file) lm_chat_set_system(&cs.chat, text.data ? text.data : "");
    /* A template that cannot render a conversation fails loudly, before any
     * input: the system prompt and a greeting. Not a --messages history,
     * which may be long: lm_chat_fit renders its newest turns at the first
     * turn, in memory and time that do not grow with it. */
    struct lm_chat probe_chat;
    struct lm_tokens ids = {0};
    char warn[160];
    lm_chat_init(&probe_chat, &cs.e.tok, tmpl.data, tmpl.len);
    if (cs.chat.n_msgs && !strcmp(cs.chat.msgs[0].role, "system")) lm_chat_set_system(&probe_chat, cs.chat.msgs[0].content);
    lm_chat_add(&probe_chat, "user", "hello", 5);
    int probe = lm_chat_render(&probe_chat, true, &text, &ids, warn, &err);
    lm_chat_free(&probe_chat);
    lm_tokens_free(&ids);
    if (probe < 0) {
        rc = lm_cli_fail(LM_EXIT_MODEL, "%s: chat template: %s (try --template chatml)", o.engine.model_path, err.msg);
        goto done;
    }
    if (!o.quiet && !o.engine.sampling.seed_set && o.engine.sampling.temp > 0 && !interactive)
        fprintf(stderr, "lm: seed %llu\n", (unsigned long long)cs.e.sampler.seed);
    rc = interactive ? run_interactive(&cs) : run_piped(&cs);
done:
    lm_chat_free(&cs.chat);
    lm_engine_close(&cs.e);
    lm_buf_free(&tmpl);
    lm_buf_free(&text);
    return rc;
}
