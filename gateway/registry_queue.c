/* The registry queue: a bounded FIFO of registry jobs, a few threads that
 * run them, and one thread that finishes the jobs whose deadline passes
 * first. Any thread may submit; one lock guards the queue and every job's
 * state; callbacks run without it. */
#include "pushgw/registry_queue.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "pushgw/util.h"

/* The deadline thread wakes at least this often even with nothing due
 * (a job submitted later always signals it anyway). */
#define IDLE_WAIT_MS 60000

typedef struct rq_job {
	registry_queue_work_fn work;
	registry_queue_finish_fn finish;
	registry_queue_release_fn release;
	void *arg;
	int64_t deadline_ms;
	/* Under the queue's lock. */
	bool started;  /* a queue thread took it */
	bool finished; /* finish was called (or is being called) */
	struct rq_job *prev, *next;           /* waiting: the FIFO */
	struct rq_job *prev_live, *next_live; /* not finished: the deadline list */
	/* Two holds, the work's and the finish's: the last one let go
	 * releases arg. */
	atomic_int holds;
} rq_job;

struct registry_queue {
	pthread_mutex_t lock;
	pthread_cond_t work_ready; /* queue threads */
	pthread_cond_t due;        /* the deadline thread; CLOCK_MONOTONIC */
	rq_job *head, *tail;       /* waiting jobs, oldest first */
	size_t waiting, max_waiting;
	rq_job *live; /* jobs not finished yet */
	size_t n_live;
	bool stopping;
	pthread_t *threads;
	int n_threads;
	pthread_t deadline_thread;
	bool deadline_started;
};

/* ---- lists (lock held) ---- */

static void fifo_push(registry_queue *q, rq_job *j)
{
	j->next = NULL;
	j->prev = q->tail;
	if (q->tail)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
	q->waiting++;
}

static void fifo_unlink(registry_queue *q, rq_job *j)
{
	if (j->prev)
		j->prev->next = j->next;
	else
		q->head = j->next;
	if (j->next)
		j->next->prev = j->prev;
	else
		q->tail = j->prev;
	j->prev = j->next = NULL;
	q->waiting--;
}

static void live_push(registry_queue *q, rq_job *j)
{
	j->prev_live = NULL;
	j->next_live = q->live;
	if (q->live)
		q->live->prev_live = j;
	q->live = j;
	q->n_live++;
}

static void live_unlink(registry_queue *q, rq_job *j)
{
	if (j->prev_live)
		j->prev_live->next_live = j->next_live;
	else
		q->live = j->next_live;
	if (j->next_live)
		j->next_live->prev_live = j->prev_live;
	j->prev_live = j->next_live = NULL;
	q->n_live--;
}

/* Mark j finished and take it off the lists; a job no thread took yet
 * will never run. Returns how many holds the caller now drops: the
 * finish's, plus the work's for a job that never ran. */
static int job_end(registry_queue *q, rq_job *j)
{
	j->finished = true;
	live_unlink(q, j);
	if (j->started)
		return 1;
	fifo_unlink(q, j);
	return 2;
}

/* ---- holds (lock not held) ---- */

static void job_drop(rq_job *j, int n)
{
	if (atomic_fetch_sub(&j->holds, n) != n)
		return;
	j->release(j->arg);
	free(j);
}

/* A job ended by job_end(), to finish as timed out outside the lock, with
 * the holds to drop after. */
typedef struct ended {
	rq_job *job;
	int holds;
} ended;

static void finish_timed_out(ended *list, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		list[i].job->finish(list[i].job->arg, true);
		job_drop(list[i].job, list[i].holds);
	}
}

/* ---- queue threads ---- */

static void *worker_main(void *arg)
{
	registry_queue *q = arg;
	rq_job *j;
	bool mine;

	pthread_mutex_lock(&q->lock);
	for (;;) {
		while (!q->head && !q->stopping)
			pthread_cond_wait(&q->work_ready, &q->lock);
		if (!q->head)
			break;
		j = q->head;
		fifo_unlink(q, j);
		j->started = true;
		pthread_mutex_unlock(&q->lock);
		j->work(j->arg);
		pthread_mutex_lock(&q->lock);
		mine = !j->finished;
		if (mine) {
			j->finished = true;
			live_unlink(q, j);
		}
		pthread_mutex_unlock(&q->lock);
		if (mine) {
			j->finish(j->arg, false);
			job_drop(j, 2);
		} else {
			job_drop(j, 1);
		}
		pthread_mutex_lock(&q->lock);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

/* End the jobs that are due (lock held) into *out (malloc'd, caller
 * frees); *next_ms gets the next deadline still ahead. */
static size_t collect_due(registry_queue *q, int64_t now, ended **out, int64_t *next_ms)
{
	rq_job *j, *next;
	size_t n = 0;
	ended *list;

	*out = NULL;
	*next_ms = now + IDLE_WAIT_MS;
	for (j = q->live; j; j = j->next_live)
		if (j->deadline_ms <= now)
			n++;
		else if (j->deadline_ms < *next_ms)
			*next_ms = j->deadline_ms;
	if (n == 0)
		return 0;
	list = malloc(n * sizeof *list);
	if (!list) {
		*next_ms = now + 10; /* try again shortly */
		return 0;
	}
	n = 0;
	for (j = q->live; j; j = next) {
		next = j->next_live;
		if (j->deadline_ms <= now) {
			list[n].job = j;
			list[n++].holds = job_end(q, j);
		}
	}
	*out = list;
	return n;
}

static void *deadline_main(void *arg)
{
	registry_queue *q = arg;
	struct timespec until;
	int64_t next_ms;
	ended *list;
	size_t n;

	pthread_mutex_lock(&q->lock);
	while (!q->stopping) {
		n = collect_due(q, pgw_now_ms(), &list, &next_ms);
		if (n) {
			pthread_mutex_unlock(&q->lock);
			finish_timed_out(list, n);
			free(list);
			pthread_mutex_lock(&q->lock);
			continue;
		}
		pgw_timespec_in(&until, CLOCK_MONOTONIC, next_ms - pgw_now_ms());
		pthread_cond_timedwait(&q->due, &q->lock, &until);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

/* ---- API ---- */

pgw_err registry_queue_new(int threads, size_t max_waiting, registry_queue **out)
{
	registry_queue *q;
	pthread_condattr_t attr;
	int i;

	*out = NULL;
	if (threads < 1)
		return PGW_EINVAL;
	q = calloc(1, sizeof *q);
	if (!q)
		return PGW_ENOMEM;
	q->threads = calloc((size_t)threads, sizeof *q->threads);
	if (!q->threads) {
		free(q);
		return PGW_ENOMEM;
	}
	q->max_waiting = max_waiting;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->work_ready, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&q->due, &attr);
	pthread_condattr_destroy(&attr);
	for (i = 0; i < threads; i++) {
		if (pthread_create(&q->threads[i], NULL, worker_main, q) != 0)
			break;
		q->n_threads++;
	}
	if (q->n_threads == threads &&
	    pthread_create(&q->deadline_thread, NULL, deadline_main, q) == 0)
		q->deadline_started = true;
	if (!q->deadline_started) {
		registry_queue_free(q);
		return PGW_ENOMEM;
	}
	*out = q;
	return PGW_OK;
}

pgw_err registry_queue_submit(registry_queue *q, registry_queue_work_fn work,
			      registry_queue_finish_fn finish, registry_queue_release_fn release,
			      void *arg, int64_t deadline_ms)
{
	rq_job *j = calloc(1, sizeof *j);
	pgw_err err = PGW_OK;

	if (!j)
		return PGW_ENOMEM;
	*j = (rq_job){.work = work, .finish = finish, .release = release, .arg = arg,
		      .deadline_ms = deadline_ms};
	atomic_init(&j->holds, 2);
	pthread_mutex_lock(&q->lock);
	if (q->stopping)
		err = PGW_ESTATE;
	else if (q->waiting >= q->max_waiting)
		err = PGW_EFULL;
	if (err == PGW_OK) {
		fifo_push(q, j);
		live_push(q, j);
		pthread_cond_signal(&q->work_ready);
		pthread_cond_signal(&q->due);
	}
	pthread_mutex_unlock(&q->lock);
	if (err != PGW_OK)
		free(j);
	return err;
}

size_t registry_queue_pending(registry_queue *q)
{
	size_t n;

	pthread_mutex_lock(&q->lock);
	n = q->n_live;
	pthread_mutex_unlock(&q->lock);
	return n;
}

void registry_queue_shutdown(registry_queue *q)
{
	ended *list = NULL;
	size_t n = 0;

	pthread_mutex_lock(&q->lock);
	q->stopping = true;
	if (q->n_live)
		list = malloc(q->n_live * sizeof *list);
	while (list && q->live) {
		list[n].job = q->live;
		list[n].holds = job_end(q, q->live);
		n++;
	}
	pthread_cond_broadcast(&q->work_ready);
	pthread_cond_broadcast(&q->due);
	pthread_mutex_unlock(&q->lock);
	finish_timed_out(list, n);
	free(list);
}

void registry_queue_free(registry_queue *q)
{
	int i;

	if (!q)
		return;
	registry_queue_shutdown(q);
	for (i = 0; i < q->n_threads; i++)
		pthread_join(q->threads[i], NULL);
	if (q->deadline_started)
		pthread_join(q->deadline_thread, NULL);
	/* Only jobs a failed allocation at shutdown left behind remain. */
	while (q->live) {
		rq_job *j = q->live;
		int holds = job_end(q, j);

		j->finish(j->arg, true);
		job_drop(j, holds);
	}
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->work_ready);
	pthread_cond_destroy(&q->due);
	free(q->threads);
	free(q);
}
