/* Unit tests for the event loop: cross-thread posting order, timer order and
 * cancellation at scale, fd callbacks and stale-event safety. The test thread
 * drives the loop thread through evloop_post() and waits on a semaphore. */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <semaphore.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "check.h"
#include "pushgw/evloop.h"
#include "pushgw/util.h"

typedef struct sync_call {
	void (*fn)(void *);
	void *arg;
	sem_t done;
} sync_call;

static void sync_call_run(void *arg)
{
	sync_call *sc = arg;
	sc->fn(sc->arg);
	sem_post(&sc->done);
}

/* Run fn(arg) on the loop thread and wait for it. */
static void on_loop(evloop *loop, void (*fn)(void *), void *arg)
{
	sync_call sc = {.fn = fn, .arg = arg};
	pgw_err err;

	sem_init(&sc.done, 0, 0);
	err = evloop_post(loop, sync_call_run, &sc);
	if (err == PGW_OK)
		sem_wait(&sc.done);
	sem_destroy(&sc.done);
	CHECK(err == PGW_OK); /* only now: fn may run CHECKs on the loop thread */
}

/* Wait on a semaphore at most ms; true when it was posted. */
static bool sem_wait_ms(sem_t *s, int ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return sem_timedwait(s, &ts) == 0;
}

/* ---- posting from several threads ---- */

#define POSTERS 4
#define POSTS_EACH 20000

typedef struct post_state {
	evloop *loop;
	int next_seq[POSTERS]; /* loop thread only */
	int out_of_order;
	int total;
	int not_on_loop;
} post_state;

typedef struct post_item {
	post_state *st;
	int thread;
	int seq;
} post_item;

static void post_item_run(void *arg)
{
	post_item *it = arg;
	post_state *st = it->st;

	if (!evloop_in_loop_thread(st->loop))
		st->not_on_loop++;
	if (st->next_seq[it->thread] != it->seq)
		st->out_of_order++;
	st->next_seq[it->thread] = it->seq + 1;
	st->total++;
	free(it);
}

typedef struct poster_arg {
	post_state *st;
	int thread;
} poster_arg;

static void *poster_main(void *arg)
{
	poster_arg *pa = arg;

	for (int i = 0; i < POSTS_EACH; i++) {
		post_item *it = malloc(sizeof *it);
		it->st = pa->st;
		it->thread = pa->thread;
		it->seq = i;
		if (evloop_post(pa->st->loop, post_item_run, it) != PGW_OK)
			free(it);
	}
	return NULL;
}

static void noop(void *arg)
{
}

static void test_posts_in_order(evloop *loop)
{
	post_state st = {.loop = loop};
	pthread_t th[POSTERS];
	poster_arg pa[POSTERS];

	TEST("posts from several threads run on the loop thread, each thread's in order");
	for (int i = 0; i < POSTERS; i++) {
		pa[i] = (poster_arg){&st, i};
		pthread_create(&th[i], NULL, poster_main, &pa[i]);
	}
	for (int i = 0; i < POSTERS; i++)
		pthread_join(th[i], NULL);
	on_loop(loop, noop, NULL); /* FIFO: everything posted before has run */
	CHECK(st.total == POSTERS * POSTS_EACH);
	CHECK(st.out_of_order == 0);
	CHECK(st.not_on_loop == 0);
	CHECK(!evloop_in_loop_thread(loop));
}

/* ---- timers ---- */

typedef struct order_state {
	evloop *loop;
	int fired[16];
	int n;
	sem_t done;
	int expect;
} order_state;

typedef struct order_timer {
	order_state *st;
	int id;
} order_timer;

static void order_timer_fire(void *arg)
{
	order_timer *ot = arg;
	ot->st->fired[ot->st->n++] = ot->id;
	if (ot->st->n == ot->st->expect)
		sem_post(&ot->st->done);
}

static order_timer order_timers[6];

static void order_arm(void *arg)
{
	order_state *st = arg;
	/* id 3 first, then 1 and 4 (same deadline, insertion order), 2, 0; 5 is
	 * cancelled. Wide gaps keep the order even on a slow (sanitized) run. */
	static const int delays[6] = {300, 100, 200, 0, 100, 150};
	evloop_timer *t[6];

	for (int i = 0; i < 6; i++) {
		order_timers[i] = (order_timer){st, i};
		t[i] = evloop_timer_add(st->loop, delays[i], order_timer_fire, &order_timers[i]);
		CHECK(t[i] != NULL);
	}
	evloop_timer_cancel(st->loop, t[5]);
	evloop_timer_cancel(st->loop, NULL);
}

static void test_timer_order(evloop *loop)
{
	order_state st = {.loop = loop, .expect = 5};
	int64_t t0 = pgw_now_ms();

	TEST("timers fire in deadline order, ties in insertion order, cancelled never");
	sem_init(&st.done, 0, 0);
	on_loop(loop, order_arm, &st);
	CHECK(sem_wait_ms(&st.done, 3000));
	CHECK(pgw_now_ms() - t0 >= 300);
	on_loop(loop, noop, NULL); /* the cancelled 150 ms one would have fired by now */
	CHECK(st.n == 5);
	CHECK(st.fired[0] == 3);
	CHECK(st.fired[1] == 1);
	CHECK(st.fired[2] == 4);
	CHECK(st.fired[3] == 2);
	CHECK(st.fired[4] == 0);
	sem_destroy(&st.done);
}

#define MANY_TIMERS 12000

typedef struct many_state {
	evloop *loop;
	evloop_timer *t[MANY_TIMERS];
	int64_t due_lo[MANY_TIMERS]; /* the deadline lies between these two */
	int64_t due_hi[MANY_TIMERS];
	int fired_count;
	int fired_cancelled;
	int early;
	int64_t last_lo;
	int out_of_order;
	sem_t done;
} many_state;

typedef struct many_timer {
	many_state *st;
	int id;
} many_timer;

static many_timer many_args[MANY_TIMERS];

static void many_fire(void *arg)
{
	many_timer *mt = arg;
	many_state *st = mt->st;

	st->t[mt->id] = NULL;
	if (mt->id % 2)
		st->fired_cancelled++;
	if (pgw_now_ms() < st->due_lo[mt->id])
		st->early++;
	/* a later-firing timer cannot have a surely earlier deadline */
	if (st->due_hi[mt->id] < st->last_lo)
		st->out_of_order++;
	if (st->due_lo[mt->id] > st->last_lo)
		st->last_lo = st->due_lo[mt->id];
	if (++st->fired_count == MANY_TIMERS / 2)
		sem_post(&st->done);
}

static void many_arm(void *arg)
{
	many_state *st = arg;
	unsigned seed = 12345;

	for (int i = 0; i < MANY_TIMERS; i++) {
		int delay = (int)(rand_r(&seed) % 300);
		many_args[i] = (many_timer){st, i};
		st->due_lo[i] = pgw_now_ms() + delay;
		st->t[i] = evloop_timer_add(st->loop, delay, many_fire, &many_args[i]);
		st->due_hi[i] = pgw_now_ms() + delay;
	}
	/* cancel the odd ones, in an order unrelated to the heap's */
	for (int i = MANY_TIMERS - 1; i >= 0; i--)
		if (i % 2) {
			evloop_timer_cancel(st->loop, st->t[i]);
			st->t[i] = NULL;
		}
}

static void test_many_timers(evloop *loop)
{
	static many_state st;
	int64_t t0;

	TEST("12,000 timers: half cancelled, the rest fire once, in order, never early");
	memset(&st, 0, sizeof st);
	st.loop = loop;
	sem_init(&st.done, 0, 0);
	t0 = pgw_now_us();
	on_loop(loop, many_arm, &st);
	fprintf(stderr, "   add+cancel of %d timers: %lld us\n", MANY_TIMERS,
		(long long)(pgw_now_us() - t0));
	CHECK(sem_wait_ms(&st.done, 5000));
	on_loop(loop, noop, NULL);
	CHECK(st.fired_count == MANY_TIMERS / 2);
	CHECK(st.fired_cancelled == 0);
	CHECK(st.early == 0);
	CHECK(st.out_of_order == 0);
	sem_destroy(&st.done);
}

/* A timer re-arming itself with 0 ms must not starve posted work. */
typedef struct rearm_state {
	evloop *loop;
	int count;
	bool stop;
	evloop_timer *t;
} rearm_state;

static void rearm_fire(void *arg)
{
	rearm_state *st = arg;
	st->count++;
	st->t = st->stop ? NULL : evloop_timer_add(st->loop, 0, rearm_fire, st);
}

static void rearm_start(void *arg)
{
	rearm_state *st = arg;
	st->t = evloop_timer_add(st->loop, 0, rearm_fire, st);
}

static void rearm_stop(void *arg)
{
	rearm_state *st = arg;
	st->stop = true;
	evloop_timer_cancel(st->loop, st->t);
	st->t = NULL;
}

static void test_zero_timer_rearm(evloop *loop)
{
	rearm_state st = {.loop = loop};

	TEST("a 0 ms timer that re-arms itself runs once per iteration and posts still run");
	on_loop(loop, rearm_start, &st);
	usleep(20 * 1000);
	on_loop(loop, rearm_stop, &st); /* returns at all: posts were not starved */
	CHECK(st.count > 1);
}

/* ---- fd watches ---- */

typedef struct io_state {
	evloop *loop;
	int pa[2], pb[2];
	int calls_a, calls_b, calls_new;
	int read_ok; /* callbacks run off the test thread: CHECK later */
	int first;     /* 'a' or 'b': which ran first */
	int new_fd;    /* pipe opened in place of the deleted one */
	int new_pipe[2];
	sem_t done;
} io_state;

static void io_new_cb(void *arg, uint32_t events)
{
	io_state *st = arg;
	st->calls_new++;
}

/* Whichever of a/b runs first deletes and closes the other and opens a new
 * pipe that probably reuses its fd number: the other's event, already in the
 * same epoll_wait batch, must not be delivered to anyone. */
static void io_replace_other(io_state *st, int other_fd)
{
	evloop_io_del(st->loop, other_fd);
	close(other_fd);
	if (pipe2(st->new_pipe, O_CLOEXEC | O_NONBLOCK) == 0) {
		st->new_fd = st->new_pipe[0];
		evloop_io_add(st->loop, st->new_fd, EPOLLIN, io_new_cb, st);
	}
}

static void io_a_cb(void *arg, uint32_t events)
{
	io_state *st = arg;
	char c;

	st->calls_a++;
	if (!st->first) {
		st->first = 'a';
		io_replace_other(st, st->pb[0]);
		st->pb[0] = -1;
	}
	st->read_ok += read(st->pa[0], &c, 1) == 1;
	evloop_io_del(st->loop, st->pa[0]); /* from inside its own callback */
	sem_post(&st->done);
}

static void io_b_cb(void *arg, uint32_t events)
{
	io_state *st = arg;
	char c;

	st->calls_b++;
	if (!st->first) {
		st->first = 'b';
		io_replace_other(st, st->pa[0]);
		st->pa[0] = -1;
	}
	st->read_ok += read(st->pb[0], &c, 1) == 1;
	evloop_io_del(st->loop, st->pb[0]);
	sem_post(&st->done);
}

static void io_arm(void *arg)
{
	io_state *st = arg;
	CHECK(evloop_io_add(st->loop, st->pa[0], EPOLLIN, io_a_cb, st) == PGW_OK);
	CHECK(evloop_io_add(st->loop, st->pb[0], EPOLLIN, io_b_cb, st) == PGW_OK);
	/* adding the same fd twice is refused */
	CHECK(evloop_io_add(st->loop, st->pa[0], EPOLLIN, io_a_cb, st) == PGW_EINVAL);
}

static void io_cleanup(void *arg)
{
	io_state *st = arg;
	evloop_io_del(st->loop, st->new_fd);
}

static void test_io_stale_events(evloop *loop)
{
	io_state st = {.loop = loop, .new_fd = -1};

	TEST("io callbacks fire; a watch deleted in the same batch never fires, even with its fd reused");
	sem_init(&st.done, 0, 0);
	CHECK(pipe2(st.pa, O_CLOEXEC | O_NONBLOCK) == 0);
	CHECK(pipe2(st.pb, O_CLOEXEC | O_NONBLOCK) == 0);
	/* both readable before they are watched: one epoll_wait returns both */
	CHECK(write(st.pa[1], "x", 1) == 1);
	CHECK(write(st.pb[1], "y", 1) == 1);
	on_loop(loop, io_arm, &st);
	CHECK(sem_wait_ms(&st.done, 2000));
	usleep(30 * 1000);
	on_loop(loop, io_cleanup, &st);
	CHECK(st.first == 'a' || st.first == 'b');
	CHECK(st.calls_a + st.calls_b == 1);
	CHECK(st.read_ok == 1);
	CHECK(st.calls_new == 0);
	CHECK(st.new_fd >= 0);

	close(st.pa[1]);
	close(st.pb[1]);
	if (st.pa[0] >= 0)
		close(st.pa[0]);
	if (st.pb[0] >= 0)
		close(st.pb[0]);
	if (st.new_fd >= 0) {
		close(st.new_pipe[0]);
		close(st.new_pipe[1]);
	}
	sem_destroy(&st.done);
}

/* Level-triggered reads, then EPOLLOUT via io_mod. */
typedef struct rw_state {
	evloop *loop;
	int p[2];
	int reads;
	int writes;
	int write_failures;
	sem_t done;
} rw_state;

static void rw_read_cb(void *arg, uint32_t events)
{
	rw_state *st = arg;
	char buf[64];
	ssize_t n;

	if (!(events & EPOLLIN))
		return;
	while ((n = read(st->p[0], buf, sizeof buf)) > 0)
		st->reads += (int)n;
	if (st->reads >= 3) {
		evloop_io_del(st->loop, st->p[0]);
		sem_post(&st->done);
	}
}

static void rw_write_cb(void *arg, uint32_t events)
{
	rw_state *st = arg;

	if (!(events & EPOLLOUT))
		return;
	st->writes++;
	st->write_failures += write(st->p[1], "z", 1) != 1;
	if (st->writes == 3)
		evloop_io_mod(st->loop, st->p[1], 0); /* stop asking for EPOLLOUT */
}

static void rw_arm(void *arg)
{
	rw_state *st = arg;
	CHECK(evloop_io_add(st->loop, st->p[0], EPOLLIN, rw_read_cb, st) == PGW_OK);
	CHECK(evloop_io_add(st->loop, st->p[1], 0, rw_write_cb, st) == PGW_OK);
	CHECK(evloop_io_mod(st->loop, st->p[1], EPOLLOUT) == PGW_OK);
	CHECK(evloop_io_mod(st->loop, 99999, EPOLLOUT) == PGW_EINVAL);
}

static void rw_cleanup(void *arg)
{
	rw_state *st = arg;
	evloop_io_del(st->loop, st->p[1]);
	evloop_io_del(st->loop, st->p[1]); /* twice is harmless */
}

static void test_io_read_write(evloop *loop)
{
	rw_state st = {.loop = loop};

	TEST("EPOLLOUT enabled with io_mod drives writes that the read watch sees");
	sem_init(&st.done, 0, 0);
	CHECK(pipe2(st.p, O_CLOEXEC | O_NONBLOCK) == 0);
	on_loop(loop, rw_arm, &st);
	CHECK(sem_wait_ms(&st.done, 2000));
	on_loop(loop, rw_cleanup, &st);
	CHECK(st.writes == 3);
	CHECK(st.write_failures == 0);
	CHECK(st.reads == 3);
	close(st.p[0]);
	close(st.p[1]);
	sem_destroy(&st.done);
}

/* ---- lifecycle ---- */

static int never_ran;

static void must_not_run(void *arg)
{
	never_ran++;
}

static void test_free_with_pending(void)
{
	evloop *loop = NULL;

	TEST("after stop, posts are refused; free releases unrun timers without running them");
	CHECK(evloop_new(&loop) == PGW_OK);
	CHECK(evloop_start(loop) == PGW_OK);
	CHECK(evloop_start(loop) == PGW_ESTATE);
	evloop_stop(loop);
	CHECK(evloop_post(loop, must_not_run, NULL) == PGW_ESTATE);
	CHECK(evloop_timer_add(loop, 100000, must_not_run, NULL) != NULL);
	CHECK(evloop_timer_add(loop, 0, must_not_run, NULL) != NULL);
	usleep(10 * 1000);
	evloop_free(loop);
	CHECK(never_ran == 0);
	evloop_free(NULL);

	TEST("a loop started again takes posts again");
	CHECK(evloop_new(&loop) == PGW_OK);
	CHECK(evloop_start(loop) == PGW_OK);
	evloop_stop(loop);
	CHECK(evloop_start(loop) == PGW_OK);
	CHECK(evloop_post(loop, must_not_run, NULL) == PGW_OK);
	evloop_stop(loop);
	CHECK(never_ran == 1);
	evloop_free(loop);
	never_ran = 0;
}

/* Work posted before the stop that the loop did not reach runs on the
 * stopping thread, exactly once: a request waiting for it is never
 * stranded. */
typedef struct stop_race {
	evloop *loop;
	sem_t started, release;
	atomic_int runs;
	atomic_int runs_on_stopper;
	pthread_t stopper;
	atomic_bool stopper_set;
} stop_race;

static void blocker(void *arg)
{
	stop_race *sr = arg;

	sem_post(&sr->started);
	sem_wait(&sr->release);
}

static void counted(void *arg)
{
	stop_race *sr = arg;

	atomic_fetch_add(&sr->runs, 1);
	if (atomic_load(&sr->stopper_set) && pthread_equal(pthread_self(), sr->stopper))
		atomic_fetch_add(&sr->runs_on_stopper, 1);
}

static void *stopper_main(void *arg)
{
	stop_race *sr = arg;

	evloop_stop(sr->loop);
	return NULL;
}

static void test_stop_runs_leftover_posts(void)
{
	stop_race sr;
	int accepted = 1;

	TEST("work posted before stop but not reached by the loop runs once, on the stopping thread");
	memset(&sr, 0, sizeof sr);
	sem_init(&sr.started, 0, 0);
	sem_init(&sr.release, 0, 0);
	CHECK(evloop_new(&sr.loop) == PGW_OK);
	CHECK(evloop_start(sr.loop) == PGW_OK);
	CHECK(evloop_post(sr.loop, blocker, &sr) == PGW_OK);
	CHECK(sem_wait_ms(&sr.started, 5000));
	/* the loop is busy in blocker: this one waits in the list */
	CHECK(evloop_post(sr.loop, counted, &sr) == PGW_OK);
	CHECK(pthread_create(&sr.stopper, NULL, stopper_main, &sr) == 0);
	atomic_store(&sr.stopper_set, true);
	/* until the stop closes the queue, posts are still taken (and so owed) */
	for (int i = 0; i < 5000; i++) {
		pgw_err e = evloop_post(sr.loop, counted, &sr);
		if (e == PGW_ESTATE)
			break;
		CHECK(e == PGW_OK);
		accepted++;
		usleep(1000);
	}
	CHECK(evloop_post(sr.loop, counted, &sr) == PGW_ESTATE);
	sem_post(&sr.release);
	pthread_join(sr.stopper, NULL);
	CHECK(atomic_load(&sr.runs) == accepted);
	CHECK(atomic_load(&sr.runs_on_stopper) >= 1);
	evloop_free(sr.loop);
	sem_destroy(&sr.started);
	sem_destroy(&sr.release);
}

int main(void)
{
	evloop *loop = NULL;

	CHECK(evloop_new(&loop) == PGW_OK);
	CHECK(evloop_start(loop) == PGW_OK);
	test_posts_in_order(loop);
	test_timer_order(loop);
	test_many_timers(loop);
	test_zero_timer_rearm(loop);
	test_io_stale_events(loop);
	test_io_read_write(loop);
	evloop_stop(loop);
	evloop_free(loop);
	test_free_with_pending();
	test_stop_runs_leftover_posts();
	return check_summary("evloop");
}
