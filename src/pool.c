/* pool.c: see pool.h.
 *
 * One 64-bit ticket holds the job's generation (high bits) and the index of
 * the next unclaimed task (low bits). A thread claims a task by a CAS from
 * the value it read to that value + 1, having read the job's fields in
 * between: the caller rewrites the fields for the next job only after every
 * task of this one has finished, so after every claim, so a claim that
 * succeeds proves the fields it was made with belong to its generation. A
 * worker that wakes late finds the ticket moved on and never touches a job
 * that is over; the caller waits only for tasks that were claimed. */
#include "lm/pool.h"

#include "lm/common.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define TASK_BITS 24
#define TASK_MASK ((UINT64_C(1) << TASK_BITS) - 1)
/* Idle workers spin this long (seconds), then yield the CPU between looks
 * until IDLE_SLEEP, then sleep on the condition variable. */
#define IDLE_SPIN 100e-6
#define IDLE_SLEEP 2e-3

struct lm_pool {
    int n;
    pthread_t *threads;
    /* the current job; written by the caller only while no task is claimable */
    _Alignas(64) _Atomic(lm_pool_fn) fn;
    _Atomic(void *) ctx;
    atomic_int n_tasks;
    atomic_uint_least64_t ticket; /* generation << TASK_BITS | next task */
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

/* Claims and runs tasks of the job the ticket shows until none are left.
 * Returns the generation it last saw. */
static uint64_t run_tasks(struct lm_pool *p, int ith) {
    for (;;) {
        uint64_t t = atomic_load_explicit(&p->ticket, memory_order_acquire);
        lm_pool_fn fn = atomic_load_explicit(&p->fn, memory_order_acquire);
        void *ctx = atomic_load_explicit(&p->ctx, memory_order_acquire);
        int n_tasks = atomic_load_explicit(&p->n_tasks, memory_order_acquire);
        if ((t & TASK_MASK) >= (uint64_t)n_tasks) return t >> TASK_BITS;
        if (!atomic_compare_exchange_weak_explicit(&p->ticket, &t, t + 1, memory_order_acq_rel, memory_order_relaxed))
            continue;
        fn(ctx, (int)(t & TASK_MASK), ith);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
    }
}

static void *worker(void *arg) {
    struct worker_arg *w = arg;
    struct lm_pool *p = w->p;
    int ith = w->ith;
    free(w);
    uint64_t seen = 0;
    while (!atomic_load_explicit(&p->quit, memory_order_relaxed)) {
        if ((atomic_load_explicit(&p->ticket, memory_order_acquire) >> TASK_BITS) != seen) {
            seen = run_tasks(p, ith);
            continue;
        }
        /* Idle: spin, then yield, then sleep, looking for a new generation. */
        double t0 = lm_time();
        for (unsigned spins = 1;; spins++) {
            if ((atomic_load_explicit(&p->ticket, memory_order_acquire) >> TASK_BITS) != seen ||
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
            while ((atomic_load(&p->ticket) >> TASK_BITS) == seen && !atomic_load(&p->quit))
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
    LM_ASSERT(n_tasks >= 0 && (uint64_t)n_tasks < (TASK_MASK >> 1));
    if (p->n == 1 || n_tasks <= 1) {
        for (int i = 0; i < n_tasks; i++) fn(ctx, i, 0);
        return;
    }
    /* No task of the previous job is claimable (all were claimed), so no
     * thread can be using these fields. */
    atomic_store_explicit(&p->fn, fn, memory_order_release);
    atomic_store_explicit(&p->ctx, ctx, memory_order_release);
    atomic_store_explicit(&p->n_tasks, n_tasks, memory_order_release);
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    uint64_t gen = (atomic_load_explicit(&p->ticket, memory_order_relaxed) >> TASK_BITS) + 1;
    atomic_store(&p->ticket, gen << TASK_BITS); /* seq_cst: pairs with the sleepers' count */
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
