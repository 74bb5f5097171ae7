/* Thread pool: every task runs exactly once per job, on a thread index in
 * range, whatever the number of threads and tasks, over many back-to-back
 * jobs (the pattern of a forward pass), with more threads than cores, and
 * after workers went to sleep. */
#include "lm/common.h"
#include "lm/pool.h"
#include "test.h"

#include <stdatomic.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

struct count_job {
    atomic_int *hits;
    atomic_int bad_ith;
    int nth;
};

static void count_task(void *arg, int task, int ith) {
    struct count_job *j = arg;
    if (ith < 0 || ith >= j->nth) atomic_fetch_add(&j->bad_ith, 1);
    atomic_fetch_add(&j->hits[task], 1);
}

static int run_jobs(struct lm_pool *p, int n_jobs, int max_tasks) {
    atomic_int *hits = lm_xcalloc((size_t)max_tasks + 1, sizeof *hits);
    int failures = 0;
    for (int job = 0; job < n_jobs; job++) {
        int n_tasks = (job * 7) % (max_tasks + 1); /* 0, 1, and a spread of sizes */
        for (int i = 0; i < n_tasks; i++) atomic_store(&hits[i], 0);
        struct count_job j = {.hits = hits, .nth = lm_pool_size(p)};
        lm_pool_run(p, n_tasks, count_task, &j);
        for (int i = 0; i < n_tasks; i++)
            if (atomic_load(&hits[i]) != 1) failures++;
        if (atomic_load(&j.bad_ith)) failures++;
    }
    free(hits);
    return failures;
}

TEST(pool_runs_each_task_once) {
    for (int n = 1; n <= 4; n++) {
        struct lm_pool *p = lm_pool_create(n);
        EXPECT_EQ_INT(lm_pool_size(p), n);
        EXPECT_EQ_INT(run_jobs(p, 2000, 40), 0);
        lm_pool_free(p);
    }
    return 0;
}

/* More threads than cores, random job sizes back to back, and now and then
 * a pause long enough that the workers go to sleep on the condition
 * variable: every task of every job runs exactly once. */
TEST(pool_stress_oversubscribed) {
    enum { N_JOBS = 100000, MAX_TASKS = 97 };
    struct lm_pool *p = lm_pool_create(8);
    atomic_int *hits = lm_xcalloc(MAX_TASKS, sizeof *hits);
    uint64_t rng = 0x9e3779b97f4a7c15u;
    int failures = 0;
    for (int job = 0; job < N_JOBS; job++) {
        rng = rng * 6364136223846793005u + 1442695040888963407u;
        int n_tasks = (int)((rng >> 33) % (MAX_TASKS + 1));
        for (int i = 0; i < n_tasks; i++) atomic_store_explicit(&hits[i], 0, memory_order_relaxed);
        struct count_job j = {.hits = hits, .nth = lm_pool_size(p)};
        lm_pool_run(p, n_tasks, count_task, &j);
        for (int i = 0; i < n_tasks; i++)
            if (atomic_load(&hits[i]) != 1) failures++;
        if (atomic_load(&j.bad_ith)) failures++;
        if ((rng >> 20) % 2000 == 0) {
            struct timespec ts = {0, 5 * 1000 * 1000}; /* past the spin and yield phases */
            nanosleep(&ts, NULL);
        }
    }
    EXPECT_EQ_INT(failures, 0);
    free(hits);
    lm_pool_free(p);
    return 0;
}

/* Each task of a job waits until every thread of the pool holds a task, so
 * the job completes only if the sleeping workers were woken; a lost wake-up
 * shows as a timeout rather than a hang. */
struct rendezvous_job {
    atomic_int arrived;
    atomic_int timed_out;
    int nth;
};

static void rendezvous_task(void *arg, int task, int ith) {
    struct rendezvous_job *j = arg;
    atomic_fetch_add(&j->arrived, 1);
    double t0 = lm_time();
    while (atomic_load(&j->arrived) < j->nth) {
        if (lm_time() - t0 > 30) {
            atomic_store(&j->timed_out, 1);
            return;
        }
        sched_yield();
    }
}

TEST(pool_wakes_sleeping_workers) {
    enum { NTH = 3 };
    struct lm_pool *p = lm_pool_create(NTH);
    for (int round = 0; round < 5; round++) {
        struct timespec ts = {0, 20 * 1000 * 1000}; /* past the spin and yield phases */
        nanosleep(&ts, NULL);
        struct rendezvous_job j = {.nth = NTH};
        lm_pool_run(p, NTH, rendezvous_task, &j);
        EXPECT_EQ_INT(atomic_load(&j.timed_out), 0);
        EXPECT_EQ_INT(atomic_load(&j.arrived), NTH);
    }
    lm_pool_free(p);
    lm_pool_free(NULL);
    return 0;
}

struct sum_job {
    const int *v;
    long long partial[64];
};

/* Results gathered per task do not depend on which thread ran it. */
static void sum_task(void *arg, int task, int ith) {
    struct sum_job *j = arg;
    long long s = 0;
    for (int i = task * 1000; i < (task + 1) * 1000; i++) s += j->v[i];
    j->partial[task] = s;
}

TEST(pool_tasks_see_the_callers_data) {
    int *v = lm_xmalloc(sizeof *v * 64000);
    long long want = 0;
    for (int i = 0; i < 64000; i++) want += v[i] = i % 1013 - 500;
    struct lm_pool *p = lm_pool_create(2);
    for (int rep = 0; rep < 50; rep++) {
        struct sum_job j = {.v = v};
        lm_pool_run(p, 64, sum_task, &j);
        long long got = 0;
        for (int t = 0; t < 64; t++) got += j.partial[t];
        EXPECT_EQ_INT(got, want);
    }
    lm_pool_free(p);
    free(v);
    return 0;
}
