/* pool.h: a persistent thread pool with one verb.
 *
 * lm_pool_run(pool, fn, ctx) calls fn(ctx, ith, nth) once on each of the nth
 * threads (the caller is thread 0) and returns when all have finished.
 * Kernels split their work by ith/nth. Workers spin briefly between jobs
 * (a token's forward pass issues hundreds of small jobs) and then sleep. */
#ifndef LM_POOL_H
#define LM_POOL_H

struct lm_pool;

typedef void (*lm_pool_fn)(void *ctx, int ith, int nth);

/* n_threads >= 1; 1 runs everything on the caller. */
struct lm_pool *lm_pool_create(int n_threads);
void lm_pool_free(struct lm_pool *p); /* NULL is fine */
int lm_pool_size(const struct lm_pool *p);
void lm_pool_run(struct lm_pool *p, lm_pool_fn fn, void *ctx);

/* Number of online CPUs (the default for -t). */
int lm_cpu_count(void);

#endif
