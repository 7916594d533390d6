/* The epoll event loop: fd watches, one-shot timers in a binary min-heap and
 * an eventfd-woken FIFO of posted work. Threading: evloop_post() and
 * evloop_stop() from any thread; everything else on the loop thread only. */
#include "pushgw/evloop.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "pushgw/util.h"

#define EVLOOP_MAX_EVENTS 256
/* epoll data of the wake-up eventfd; real watches carry (gen << 32 | fd) */
#define EVLOOP_WAKE_TAG UINT64_MAX

struct evloop_timer {
	int64_t when;
	uint64_t seq; /* equal deadlines fire in the order they were added */
	size_t slot;  /* index in loop->heap, kept current by every move */
	evloop_fn fn;
	void *arg;
};

/* Watches live in an array indexed by fd. A watch's generation goes up every
 * time the fd is added, so an event already fetched by epoll_wait for an fd
 * that was deleted (and maybe reused) in the same batch is recognised as
 * stale and dropped instead of reaching a freed object. */
struct io_watch {
	evloop_io_fn fn;
	void *arg;
	uint32_t gen;
	uint32_t events;
	bool active;
};

struct posted {
	evloop_fn fn;
	void *arg;
	struct posted *next;
};

struct evloop {
	int epfd;
	int wakefd;

	struct io_watch *watches;
	size_t n_watches;

	evloop_timer **heap;
	size_t heap_len, heap_cap;
	uint64_t timer_seq;

	pthread_mutex_t mu; /* guards the posted list, wake_pending and closed */
	struct posted *post_head, *post_tail;
	bool wake_pending; /* eventfd written and not yet drained */
	bool closed;       /* evloop_stop() began: posts are refused */

	pthread_t thread;
	bool running; /* touched only by the controlling thread */
	atomic_bool stop;
	atomic_bool tid_set;
	pthread_t tid;
};

/* ---- timers: binary min-heap on (when, seq) ---- */

static bool timer_before(const evloop_timer *a, const evloop_timer *b)
{
	if (a->when != b->when)
		return a->when < b->when;
	return a->seq < b->seq;
}

static void heap_place(evloop *loop, size_t i, evloop_timer *t)
{
	loop->heap[i] = t;
	t->slot = i;
}

static void heap_sift_up(evloop *loop, size_t i)
{
	evloop_timer *t = loop->heap[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!timer_before(t, loop->heap[parent]))
			break;
		heap_place(loop, i, loop->heap[parent]);
		i = parent;
	}
	heap_place(loop, i, t);
}

static void heap_sift_down(evloop *loop, size_t i)
{
	evloop_timer *t = loop->heap[i];

	for (;;) {
		size_t child = 2 * i + 1;
		if (child >= loop->heap_len)
			break;
		if (child + 1 < loop->heap_len &&
		    timer_before(loop->heap[child + 1], loop->heap[child]))
			child++;
		if (!timer_before(loop->heap[child], t))
			break;
		heap_place(loop, i, loop->heap[child]);
		i = child;
	}
	heap_place(loop, i, t);
}

static void heap_remove(evloop *loop, evloop_timer *t)
{
	size_t i = t->slot;
	evloop_timer *last = loop->heap[--loop->heap_len];

	if (last == t)
		return;
	heap_place(loop, i, last);
	if (i > 0 && timer_before(last, loop->heap[(i - 1) / 2]))
		heap_sift_up(loop, i);
	else
		heap_sift_down(loop, i);
}

evloop_timer *evloop_timer_add(evloop *loop, int64_t delay_ms, evloop_fn fn, void *arg)
{
	evloop_timer *t;

	if (loop->heap_len == loop->heap_cap) {
		size_t cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
		evloop_timer **heap = realloc(loop->heap, cap * sizeof *heap);
		if (!heap)
			return NULL;
		loop->heap = heap;
		loop->heap_cap = cap;
	}
	t = malloc(sizeof *t);
	if (!t)
		return NULL;
	t->when = pgw_now_ms() + (delay_ms > 0 ? delay_ms : 0);
	t->seq = loop->timer_seq++;
	t->fn = fn;
	t->arg = arg;
	loop->heap[loop->heap_len++] = t;
	heap_sift_up(loop, loop->heap_len - 1);
	return t;
}

void evloop_timer_cancel(evloop *loop, evloop_timer *t)
{
	if (!t)
		return;
	heap_remove(loop, t);
	free(t);
}

/* Milliseconds epoll_wait may sleep: -1 without timers. */
static int timers_wait_ms(const evloop *loop)
{
	int64_t left;

	if (loop->heap_len == 0)
		return -1;
	left = loop->heap[0]->when - pgw_now_ms();
	if (left <= 0)
		return 0;
	return left > INT_MAX ? INT_MAX : (int)left;
}

/* Timers added while this runs (seq >= cutoff) wait for the next iteration,
 * so a callback that re-arms itself with 0 ms cannot starve the loop. */
static void timers_run(evloop *loop)
{
	int64_t now = pgw_now_ms();
	uint64_t cutoff = loop->timer_seq;

	while (loop->heap_len > 0) {
		evloop_timer *t = loop->heap[0];
		evloop_fn fn;
		void *arg;

		if (t->when > now || t->seq >= cutoff)
			break;
		heap_remove(loop, t);
		fn = t->fn;
		arg = t->arg;
		free(t);
		fn(arg);
	}
}

/* ---- posted work ---- */

static void wake(evloop *loop)
{
	uint64_t one = 1;
	ssize_t n;

	do {
		n = write(loop->wakefd, &one, sizeof one);
	} while (n < 0 && errno == EINTR);
	/* EAGAIN means the counter is saturated: the loop is awake anyway */
}

pgw_err evloop_post(evloop *loop, evloop_fn fn, void *arg)
{
	struct posted *p = malloc(sizeof *p);
	bool need_wake;

	if (!p)
		return PGW_ENOMEM;
	p->fn = fn;
	p->arg = arg;
	p->next = NULL;

	pthread_mutex_lock(&loop->mu);
	if (loop->closed) {
		/* nothing would run it: the caller must finish its work itself
		 * (a request suspended for it answers now instead of never) */
		pthread_mutex_unlock(&loop->mu);
		free(p);
		return PGW_ESTATE;
	}
	if (loop->post_tail)
		loop->post_tail->next = p;
	else
		loop->post_head = p;
	loop->post_tail = p;
	need_wake = !loop->wake_pending;
	loop->wake_pending = true;
	pthread_mutex_unlock(&loop->mu);

	if (need_wake)
		wake(loop);
	return PGW_OK;
}

/* Take the whole list under the lock, then run it unlocked: posting stays a
 * malloc plus a few instructions under the mutex. */
static void posted_take_and_run(evloop *loop)
{
	struct posted *p;

	pthread_mutex_lock(&loop->mu);
	p = loop->post_head;
	loop->post_head = loop->post_tail = NULL;
	loop->wake_pending = false;
	pthread_mutex_unlock(&loop->mu);

	while (p) {
		struct posted *next = p->next;
		p->fn(p->arg);
		free(p);
		p = next;
	}
}

static void posted_run(evloop *loop)
{
	uint64_t count;

	while (read(loop->wakefd, &count, sizeof count) < 0 && errno == EINTR)
		;
	posted_take_and_run(loop);
}

/* ---- fd watches ---- */

static pgw_err watches_reserve(evloop *loop, int fd)
{
	size_t n = loop->n_watches ? loop->n_watches : 64;
	struct io_watch *w;

	if ((size_t)fd < loop->n_watches)
		return PGW_OK;
	while (n <= (size_t)fd)
		n *= 2;
	w = realloc(loop->watches, n * sizeof *w);
	if (!w)
		return PGW_ENOMEM;
	memset(w + loop->n_watches, 0, (n - loop->n_watches) * sizeof *w);
	loop->watches = w;
	loop->n_watches = n;
	return PGW_OK;
}

static uint64_t watch_tag(const struct io_watch *w, int fd)
{
	return (uint64_t)w->gen << 32 | (uint32_t)fd;
}

pgw_err evloop_io_add(evloop *loop, int fd, uint32_t events, evloop_io_fn fn, void *arg)
{
	struct epoll_event ev = {0};
	struct io_watch *w;

	if (fd < 0 || !fn)
		return PGW_EINVAL;
	if (watches_reserve(loop, fd) != PGW_OK)
		return PGW_ENOMEM;
	w = &loop->watches[fd];
	if (w->active)
		return PGW_EINVAL;
	w->gen++;
	ev.events = events;
	ev.data.u64 = watch_tag(w, fd);
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return PGW_EIO;
	w->fn = fn;
	w->arg = arg;
	w->events = events;
	w->active = true;
	return PGW_OK;
}

pgw_err evloop_io_mod(evloop *loop, int fd, uint32_t events)
{
	struct epoll_event ev = {0};
	struct io_watch *w;

	if (fd < 0 || (size_t)fd >= loop->n_watches || !loop->watches[fd].active)
		return PGW_EINVAL;
	w = &loop->watches[fd];
	if (w->events == events)
		return PGW_OK;
	ev.events = events;
	ev.data.u64 = watch_tag(w, fd);
	if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
		return PGW_EIO;
	w->events = events;
	return PGW_OK;
}

void evloop_io_del(evloop *loop, int fd)
{
	if (fd < 0 || (size_t)fd >= loop->n_watches || !loop->watches[fd].active)
		return;
	/* fails harmlessly when the fd was closed first */
	epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
	loop->watches[fd].active = false;
	loop->watches[fd].fn = NULL;
	loop->watches[fd].arg = NULL;
}

static void io_dispatch(evloop *loop, const struct epoll_event *ev)
{
	uint64_t tag = ev->data.u64;
	int fd = (int)(uint32_t)tag;
	struct io_watch *w;

	if (tag == EVLOOP_WAKE_TAG) {
		posted_run(loop);
		return;
	}
	if ((size_t)fd >= loop->n_watches)
		return;
	w = &loop->watches[fd];
	if (!w->active || w->gen != (uint32_t)(tag >> 32))
		return;
	w->fn(w->arg, ev->events);
}

/* ---- the loop ---- */

static void *loop_main(void *arg)
{
	evloop *loop = arg;
	struct epoll_event evs[EVLOOP_MAX_EVENTS];

	loop->tid = pthread_self();
	atomic_store(&loop->tid_set, true);
	while (!atomic_load(&loop->stop)) {
		int n = epoll_wait(loop->epfd, evs, EVLOOP_MAX_EVENTS, timers_wait_ms(loop));
		if (n < 0 && errno != EINTR)
			break;
		for (int i = 0; i < n && !atomic_load(&loop->stop); i++)
			io_dispatch(loop, &evs[i]);
		if (!atomic_load(&loop->stop))
			timers_run(loop);
	}
	atomic_store(&loop->tid_set, false);
	return NULL;
}

pgw_err evloop_new(evloop **out)
{
	struct epoll_event ev = {0};
	evloop *loop = calloc(1, sizeof *loop);

	*out = NULL;
	if (!loop)
		return PGW_ENOMEM;
	loop->epfd = -1;
	loop->wakefd = -1;
	pthread_mutex_init(&loop->mu, NULL);
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	loop->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (loop->epfd < 0 || loop->wakefd < 0)
		goto fail;
	ev.events = EPOLLIN;
	ev.data.u64 = EVLOOP_WAKE_TAG;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->wakefd, &ev) < 0)
		goto fail;
	*out = loop;
	return PGW_OK;
fail:
	evloop_free(loop);
	return PGW_EIO;
}

pgw_err evloop_start(evloop *loop)
{
	if (loop->running)
		return PGW_ESTATE;
	atomic_store(&loop->stop, false);
	pthread_mutex_lock(&loop->mu);
	loop->closed = false;
	pthread_mutex_unlock(&loop->mu);
	if (pthread_create(&loop->thread, NULL, loop_main, loop) != 0)
		return PGW_ENOMEM;
	loop->running = true;
	return PGW_OK;
}

void evloop_stop(evloop *loop)
{
	if (!loop->running)
		return;
	/* Refuse new posts first, under the lock that orders them: every post
	 * that returned PGW_OK is then in the list, and runs below if the
	 * loop thread did not get to it. Dropping it instead would strand
	 * whoever waits for it (a suspended request never answered). */
	pthread_mutex_lock(&loop->mu);
	loop->closed = true;
	pthread_mutex_unlock(&loop->mu);
	atomic_store(&loop->stop, true);
	wake(loop);
	pthread_join(loop->thread, NULL);
	loop->running = false;
	/* the caller owns the loop now; work posted meanwhile may post more,
	 * which is refused */
	posted_take_and_run(loop);
}

bool evloop_in_loop_thread(const evloop *loop)
{
	return atomic_load(&loop->tid_set) && pthread_equal(loop->tid, pthread_self());
}

void evloop_free(evloop *loop)
{
	struct posted *p;

	if (!loop)
		return;
	evloop_stop(loop);
	for (size_t i = 0; i < loop->heap_len; i++)
		free(loop->heap[i]);
	free(loop->heap);
	p = loop->post_head;
	while (p) {
		struct posted *next = p->next;
		free(p);
		p = next;
	}
	free(loop->watches);
	if (loop->wakefd >= 0)
		close(loop->wakefd);
	if (loop->epfd >= 0)
		close(loop->epfd);
	pthread_mutex_destroy(&loop->mu);
	free(loop);
}
