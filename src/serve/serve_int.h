/* serve_int.h: what the files of src/serve share (lm serve; see
 * include/lm/serve.h for the command's view).
 *
 * Threads: one accepts connections; one per connection reads its requests,
 * renders and tokenizes prompts, and writes replies; one (the scheduler)
 * owns the model's contexts and runs every forward pass. A request becomes
 * a job: its connection submits it, then takes the text it produces as it
 * comes, and may cancel it. */
#ifndef LM_SERVE_INT_H
#define LM_SERVE_INT_H

#include "lm/generate.h"

#include <pthread.h>

struct lm_job {
    /* Set by the submitter, read-only afterwards. */
    int32_t *prompt; /* owned */
    int n_prompt;
    struct lm_sampler sampler; /* initialised by the submitter (bad parameters are its 400) */
    float presence_penalty, frequency_penalty;
    int n_predict;   /* < 0: until the end of the turn or a full context */
    bool ignore_eog; /* never sample an end-of-generation token (llama-server's ignore_eos) */
    bool streamed;   /* its connection wants text as it comes; else only the end wakes it */
    char **stops;    /* owned */
    int n_stops;
    /* Under the scheduler's lock. */
    struct lm_buf text;  /* visible text not yet taken by the connection */
    int n_gen, n_reused; /* tokens generated; prompt tokens found in the slot's cache */
    enum lm_stop_reason stop;
    bool done, cancel;
    double t_submit, t_first, t_end; /* lm_time() */
    pthread_cond_t cond; /* signalled when the job ends, and when text arrives if streamed */
    struct lm_job *next; /* in the queue */
};

struct lm_sched;

/* Contexts of n_ctx positions for n_slots, prefill batches of n_batch
 * tokens, at most queue_cap jobs waiting. The scheduler thread starts here. */
struct lm_sched *lm_sched_create(const struct lm_engine *e, int n_slots, int n_ctx, int n_batch, int queue_cap,
                                 struct lm_err *err);
/* Cancels what runs, stops the thread and frees (NULL is fine). */
void lm_sched_free(struct lm_sched *s);
int lm_sched_n_ctx(const struct lm_sched *s);

/* Prepares j (zeroed by the caller) for a prompt: takes prompt and stops. */
void lm_job_init(struct lm_job *j);
void lm_job_free(struct lm_job *j);
/* Queues j: 0, or -1 when the queue is full. */
int lm_sched_submit(struct lm_sched *s, struct lm_job *j);
/* Waits up to timeout_ms for text (streamed) or the end; moves the text into out.
 * Returns true once j is done (and all its text taken). */
bool lm_sched_take(struct lm_sched *s, struct lm_job *j, struct lm_buf *out, int timeout_ms);
/* Asks j to stop at the next step (a client went away); wait for done. */
void lm_sched_cancel(struct lm_sched *s, struct lm_job *j);

struct lm_sched_stats {
    int slots_busy, n_slots, queued;
    uint64_t tokens_in, tokens_reused, tokens_out;
    double t_prompt, t_gen; /* seconds summed over jobs */
};
void lm_sched_stats(struct lm_sched *s, struct lm_sched_stats *st);

/* The chat page served at GET / (page.c). */
extern const char lm_serve_page[];

#endif
