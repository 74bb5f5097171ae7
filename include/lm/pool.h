/* pool.h: a persistent thread pool with one verb.
 *
 * lm_pool_run(pool, n_tasks, fn, ctx) calls fn(ctx, task, ith) once for
 * each task < n_tasks and returns when all have finished. Threads claim
 * tasks one at a time from a shared counter, the caller (ith 0) among them,
 * so a worker that the OS has not scheduled yet (a busy, shared machine)
 * holds nobody up: whoever is running takes the next task. ith < nth
 * names the thread running the task, for per-thread scratch; which tasks a
 * thread gets is not fixed, so results must not depend on it.
 *
 * Workers spin briefly between jobs (a token's forward pass issues a few
 * hundred small jobs), then yield, then sleep. */
#ifndef LM_POOL_H
#define LM_POOL_H

struct lm_pool;

typedef void (*lm_pool_fn)(void *ctx, int task, int ith);

/* n_threads >= 1; 1 runs everything on the caller. A job has at most
 * 2^21 - 1 tasks. */
struct lm_pool *lm_pool_create(int n_threads);
void lm_pool_free(struct lm_pool *p); /* NULL is fine */
int lm_pool_size(const struct lm_pool *p);
void lm_pool_run(struct lm_pool *p, int n_tasks, lm_pool_fn fn, void *ctx);

/* Number of online CPUs (the default for -t). */
int lm_cpu_count(void);

#endif
