/* Unit tests for the registry queue: FIFO order, finish exactly once then
 * release, deadlines that end a job stuck in its work (and a waiting job
 * that never gets a thread), the bound on waiting jobs, shutdown with work
 * still running, and many submitters at once. Waits are bounded
 * generously; nothing asserts how long a step took. */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "pushgw/registry_queue.h"
#include "pushgw/util.h"

#define LONG_WAIT_S 20

typedef struct job {
	int id;
	sem_t *gate;            /* work waits here when set */
	atomic_int worked;      /* work ran (1) and returned (2) */
	atomic_int finishes;
	atomic_int timed_out;
	atomic_int releases;
	atomic_int order_bad;   /* released before finish, or before work returned */
	sem_t finished, released;
	int *log;               /* ids in the order work ran */
	atomic_int *log_n;
} job;

static void job_init(job *j, int id)
{
	memset(j, 0, sizeof *j);
	j->id = id;
	sem_init(&j->finished, 0, 0);
	sem_init(&j->released, 0, 0);
}

static void job_destroy(job *j)
{
	sem_destroy(&j->finished);
	sem_destroy(&j->released);
}

static void work(void *arg)
{
	job *j = arg;

	atomic_store(&j->worked, 1);
	if (j->log)
		j->log[atomic_fetch_add(j->log_n, 1)] = j->id;
	if (j->gate)
		sem_wait(j->gate);
	atomic_store(&j->worked, 2);
}

static void finish(void *arg, bool timed_out)
{
	job *j = arg;

	atomic_fetch_add(&j->finishes, 1);
	if (timed_out)
		atomic_fetch_add(&j->timed_out, 1);
	sem_post(&j->finished);
}

static void release(void *arg)
{
	job *j = arg;

	if (atomic_load(&j->finishes) != 1 || atomic_load(&j->worked) == 1)
		atomic_fetch_add(&j->order_bad, 1);
	atomic_fetch_add(&j->releases, 1);
	sem_post(&j->released);
}

/* Wait for a semaphore at most LONG_WAIT_S; false when it never came. */
static bool wait_for(sem_t *s)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += LONG_WAIT_S;
	while (sem_timedwait(s, &until) != 0)
		if (errno != EINTR)
			return false;
	return true;
}

static pgw_err submit(registry_queue *q, job *j, int64_t deadline_in_ms)
{
	return registry_queue_submit(q, work, finish, release, j, pgw_now_ms() + deadline_in_ms);
}

static bool once_each(job *j)
{
	return atomic_load(&j->finishes) == 1 && atomic_load(&j->releases) == 1 &&
	       atomic_load(&j->order_bad) == 0;
}

static void test_fifo(void)
{
	registry_queue *q = NULL;
	job jobs[5];
	int log[5], i, ok = 0;
	atomic_int log_n = 0;
	sem_t gate;

	TEST("one thread runs jobs in submission order; each finishes once, then is released");
	sem_init(&gate, 0, 0);
	CHECK(registry_queue_new(1, 16, &q) == PGW_OK);
	for (i = 0; i < 5; i++) {
		job_init(&jobs[i], i);
		jobs[i].log = log;
		jobs[i].log_n = &log_n;
	}
	jobs[0].gate = &gate; /* hold the thread until all five are queued */
	for (i = 0; i < 5; i++)
		CHECK(submit(q, &jobs[i], 60000) == PGW_OK);
	sem_post(&gate);
	for (i = 0; i < 5; i++)
		ok += wait_for(&jobs[i].released);
	CHECK(ok == 5);
	CHECK(atomic_load(&log_n) == 5);
	for (i = 0; i < 5; i++) {
		CHECK(log[i] == i);
		CHECK(once_each(&jobs[i]));
		CHECK(atomic_load(&jobs[i].timed_out) == 0);
		CHECK(atomic_load(&jobs[i].worked) == 2);
	}
	CHECK(registry_queue_pending(q) == 0);
	registry_queue_free(q);
	for (i = 0; i < 5; i++)
		job_destroy(&jobs[i]);
	sem_destroy(&gate);
}

static void test_deadlines(void)
{
	registry_queue *q = NULL;
	job stuck, waiting, later;
	sem_t gate;

	TEST("deadline: a job stuck in its work is finished as timed out; released only once "
	     "its work returns");
	sem_init(&gate, 0, 0);
	CHECK(registry_queue_new(1, 16, &q) == PGW_OK);
	job_init(&stuck, 1);
	stuck.gate = &gate;
	job_init(&waiting, 2);
	job_init(&later, 3);
	CHECK(submit(q, &stuck, 100) == PGW_OK);
	CHECK(wait_for(&stuck.finished));
	CHECK(atomic_load(&stuck.timed_out) == 1);
	CHECK(atomic_load(&stuck.worked) == 1); /* still inside its work */
	CHECK(atomic_load(&stuck.releases) == 0);

	TEST("deadline: a waiting job that never gets a thread is finished and dropped unrun");
	CHECK(submit(q, &waiting, 100) == PGW_OK);
	CHECK(wait_for(&waiting.released));
	CHECK(atomic_load(&waiting.timed_out) == 1);
	CHECK(atomic_load(&waiting.worked) == 0);
	CHECK(once_each(&waiting));
	CHECK(registry_queue_pending(q) == 0);

	TEST("deadline: once the stuck work returns it is released, and the thread serves again");
	sem_post(&gate);
	CHECK(wait_for(&stuck.released));
	CHECK(once_each(&stuck));
	CHECK(atomic_load(&stuck.worked) == 2);
	CHECK(submit(q, &later, 60000) == PGW_OK);
	CHECK(wait_for(&later.released));
	CHECK(atomic_load(&later.timed_out) == 0 && atomic_load(&later.worked) == 2);
	CHECK(once_each(&later));
	registry_queue_free(q);
	job_destroy(&stuck);
	job_destroy(&waiting);
	job_destroy(&later);
	sem_destroy(&gate);
}

static void test_bound_and_shutdown(void)
{
	registry_queue *q = NULL;
	job running, w1, w2, refused, after;
	sem_t gate;

	TEST("bound: with the thread busy, at most max_waiting jobs wait; the next is refused");
	sem_init(&gate, 0, 0);
	CHECK(registry_queue_new(1, 2, &q) == PGW_OK);
	job_init(&running, 1);
	running.gate = &gate;
	job_init(&w1, 2);
	job_init(&w2, 3);
	job_init(&refused, 4);
	job_init(&after, 5);
	CHECK(submit(q, &running, 60000) == PGW_OK);
	while (atomic_load(&running.worked) == 0)
		usleep(1000);
	CHECK(submit(q, &w1, 60000) == PGW_OK);
	CHECK(submit(q, &w2, 60000) == PGW_OK);
	CHECK(submit(q, &refused, 60000) == PGW_EFULL);
	CHECK(registry_queue_pending(q) == 3);

	TEST("shutdown: every unfinished job finishes at once as timed out; waiting ones never run");
	registry_queue_shutdown(q);
	CHECK(atomic_load(&running.finishes) == 1 && atomic_load(&running.timed_out) == 1);
	CHECK(once_each(&w1) && once_each(&w2));
	CHECK(atomic_load(&w1.worked) == 0 && atomic_load(&w2.worked) == 0);
	CHECK(atomic_load(&running.releases) == 0);
	CHECK(submit(q, &after, 60000) == PGW_ESTATE);
	registry_queue_shutdown(q); /* idempotent */

	TEST("free: waits for the running work, then releases it");
	sem_post(&gate);
	registry_queue_free(q);
	CHECK(once_each(&running));
	CHECK(atomic_load(&refused.finishes) == 0 && atomic_load(&refused.releases) == 0);
	CHECK(atomic_load(&after.finishes) == 0 && atomic_load(&after.releases) == 0);
	job_destroy(&running);
	job_destroy(&w1);
	job_destroy(&w2);
	job_destroy(&refused);
	job_destroy(&after);
	sem_destroy(&gate);
	registry_queue_free(NULL);
}

#define STRESS_SUBMITTERS 4
#define STRESS_JOBS 5000

typedef struct submitter {
	registry_queue *q;
	job *jobs;
	int accepted[STRESS_JOBS];
	unsigned seed;
} submitter;

static void *submitter_main(void *arg)
{
	submitter *s = arg;
	int i;

	for (i = 0; i < STRESS_JOBS; i++) {
		/* a mix of deadlines already past, due any moment, and far off */
		int pick = (int)(rand_r(&s->seed) % 3);
		int64_t in = pick == 0 ? -1 : pick == 1 ? 1 : 60000;

		job_init(&s->jobs[i], i);
		s->accepted[i] = submit(s->q, &s->jobs[i], in) == PGW_OK;
	}
	return NULL;
}

static void test_stress(void)
{
	submitter s[STRESS_SUBMITTERS];
	pthread_t th[STRESS_SUBMITTERS];
	registry_queue *q = NULL;
	int i, k, accepted = 0, released = 0, bad = 0;

	TEST("stress: 4 submitters x 5000 jobs on 4 threads, mixed deadlines: every accepted job "
	     "finishes once and is released once, after its work");
	CHECK(registry_queue_new(4, 256, &q) == PGW_OK);
	for (i = 0; i < STRESS_SUBMITTERS; i++) {
		s[i].q = q;
		s[i].seed = 17u * (unsigned)i + 3;
		s[i].jobs = calloc(STRESS_JOBS, sizeof *s[i].jobs);
		pthread_create(&th[i], NULL, submitter_main, &s[i]);
	}
	for (i = 0; i < STRESS_SUBMITTERS; i++)
		pthread_join(th[i], NULL);
	for (i = 0; i < STRESS_SUBMITTERS; i++) {
		for (k = 0; k < STRESS_JOBS; k++) {
			if (!s[i].accepted[k])
				continue;
			accepted++;
			released += wait_for(&s[i].jobs[k].released);
		}
	}
	registry_queue_free(q);
	for (i = 0; i < STRESS_SUBMITTERS; i++) {
		for (k = 0; k < STRESS_JOBS; k++) {
			job *j = &s[i].jobs[k];

			if (s[i].accepted[k])
				bad += !once_each(j) || atomic_load(&j->worked) == 1;
			else
				bad += atomic_load(&j->finishes) != 0 || atomic_load(&j->releases) != 0;
			job_destroy(j);
		}
		free(s[i].jobs);
	}
	CHECK(accepted > 0);
	CHECK(released == accepted);
	CHECK(bad == 0);
}

int main(void)
{
	test_fifo();
	test_deadlines();
	test_bound_and_shutdown();
	test_stress();
	return check_summary("registry_queue");
}
