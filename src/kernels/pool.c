/* pool.c: see pool.h.
 *
 * One 64-bit ticket describes the job in progress: its generation, its
 * number of tasks and the index of the next unclaimed task. A thread claims
 * task i by a compare-and-swap of the ticket from (g, n, i) to (g, n, i + 1)
 * with i < n, and only then reads the job's fn and ctx. Why that is enough:
 * - The claim decides from the ticket alone. The task count travels in the
 *   ticket, so no claim can pair one job's ticket with another job's count
 *   (the race of the earlier design, which read n_tasks beside the ticket).
 * - A successful claim of task i of job g means job g has an unfinished task
 *   (ours), so the caller cannot have returned from it nor written the next
 *   job's fields; the acquire of the CAS pairs with the caller's release
 *   store of the ticket, made after it wrote fn and ctx, so we read job g's.
 *   This holds even if the generation wrapped while a thread was preempted:
 *   a ticket equal to (g, n, i) is a job in progress with i unclaimed.
 * - `done` counts finished tasks of the current job; the caller waits for
 *   done == n, and resets it before publishing the next ticket, when every
 *   task of the job before has already added to it.
 * The caller thus returns only when every task has returned, so ctx on its
 * stack outlives every use. */
#include "lm/pool.h"

#include "lm/common.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

/* ticket = generation << GEN_SHIFT | n_tasks << TASK_BITS | next task */
#define TASK_BITS 21
#define TASK_MASK ((UINT64_C(1) << TASK_BITS) - 1)
#define GEN_SHIFT (2 * TASK_BITS)
#define MAX_TASKS ((int)TASK_MASK)
/* Idle workers spin this long (seconds), then yield the CPU between looks
 * until IDLE_SLEEP, then sleep on the condition variable. */
#define IDLE_SPIN 100e-6
#define IDLE_SLEEP 2e-3

struct lm_pool {
    int n;
    pthread_t *threads;
    /* the current job's function and argument: written by the caller before
     * it publishes the job's ticket, read by a thread only after it claimed a
     * task of that job */
    lm_pool_fn fn;
    void *ctx;
    _Alignas(64) atomic_uint_least64_t ticket;
    _Alignas(64) atomic_int done; /* tasks of the current job finished */
    _Alignas(64) pthread_mutex_t mu;
    pthread_cond_t wake;
    atomic_int n_sleeping;
    atomic_bool quit;
};

struct worker_arg {
    struct lm_pool *p;
    int ith;
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static inline uint64_t generation(uint64_t ticket) { return ticket >> GEN_SHIFT; }

/* Claims and runs tasks of the job the ticket shows until none are left.
 * Returns the generation it last saw. */
static uint64_t run_tasks(struct lm_pool *p, int ith) {
    uint64_t t = atomic_load_explicit(&p->ticket, memory_order_acquire);
    for (;;) {
        uint64_t next = t & TASK_MASK, n_tasks = (t >> TASK_BITS) & TASK_MASK;
        if (next >= n_tasks) return generation(t);
        /* On failure t is reloaded with acquire: a new job's fields are
         * visible once its ticket is seen, though we read them only after
         * a claim (see the header). */
        if (!atomic_compare_exchange_weak_explicit(&p->ticket, &t, t + 1, memory_order_acq_rel, memory_order_acquire))
            continue;
        p->fn(p->ctx, (int)next, ith);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
        t = atomic_load_explicit(&p->ticket, memory_order_acquire);
    }
}

static void *worker(void *arg) {
    struct worker_arg *w = arg;
    struct lm_pool *p = w->p;
    int ith = w->ith;
    free(w);
    uint64_t seen = 0;
    while (!atomic_load_explicit(&p->quit, memory_order_relaxed)) {
        if (generation(atomic_load_explicit(&p->ticket, memory_order_acquire)) != seen) {
            seen = run_tasks(p, ith);
            continue;
        }
        /* Idle: spin, then yield, then sleep, looking for a new generation. */
        double t0 = lm_time();
        for (unsigned spins = 1;; spins++) {
            if (generation(atomic_load_explicit(&p->ticket, memory_order_acquire)) != seen ||
                atomic_load_explicit(&p->quit, memory_order_relaxed))
                break;
            if (spins % 256) {
                cpu_relax();
                continue;
            }
            double idle = lm_time() - t0;
            if (idle < IDLE_SPIN) continue;
            if (idle < IDLE_SLEEP) {
                sched_yield();
                continue;
            }
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->n_sleeping, 1); /* seq_cst: pairs with the caller's store of the ticket */
            while (generation(atomic_load(&p->ticket)) == seen && !atomic_load(&p->quit))
                pthread_cond_wait(&p->wake, &p->mu);
            atomic_fetch_sub(&p->n_sleeping, 1);
            pthread_mutex_unlock(&p->mu);
            break;
        }
    }
    return NULL;
}

struct lm_pool *lm_pool_create(int n_threads) {
    LM_ASSERT(n_threads >= 1);
    struct lm_pool *p = lm_xcalloc(1, sizeof *p);
    p->n = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    p->threads = lm_xcalloc((size_t)n_threads, sizeof *p->threads);
    for (int i = 1; i < n_threads; i++) {
        struct worker_arg *w = lm_xmalloc(sizeof *w);
        w->p = p;
        w->ith = i;
        if (pthread_create(&p->threads[i], NULL, worker, w) != 0) {
            free(w);
            p->n = i; /* run with the threads we have */
            break;
        }
    }
    return p;
}

void lm_pool_free(struct lm_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->quit, true);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    free(p->threads);
    free(p);
}

int lm_pool_size(const struct lm_pool *p) { return p->n; }

void lm_pool_run(struct lm_pool *p, int n_tasks, lm_pool_fn fn, void *ctx) {
    LM_ASSERT(n_tasks >= 0 && n_tasks <= MAX_TASKS);
    if (p->n == 1 || n_tasks <= 1) {
        for (int i = 0; i < n_tasks; i++) fn(ctx, i, 0);
        return;
    }
    /* Every task of the previous job has finished (we waited for them), so
     * no thread reads these fields until it claims a task of the new job. */
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    uint64_t gen = generation(atomic_load_explicit(&p->ticket, memory_order_relaxed)) + 1;
    uint64_t ticket = gen << GEN_SHIFT | (uint64_t)n_tasks << TASK_BITS;
    atomic_store(&p->ticket, ticket); /* seq_cst: release for the fields, and pairs with the sleepers' count */
    if (atomic_load(&p->n_sleeping) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
    run_tasks(p, 0);
    /* Only tasks already claimed remain; a worker that was preempted while
     * running one gets the CPU back sooner if we yield now and then. */
    for (unsigned spins = 1; atomic_load_explicit(&p->done, memory_order_acquire) < n_tasks; spins++) {
        if (spins % 1024) cpu_relax();
        else sched_yield();
    }
}

int lm_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 256 ? 256 : (int)n;
}
