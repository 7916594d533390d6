/* epoll loop with a timer heap and deferred frees (see sim_loop.h). One
 * thread; callbacks may watch, unwatch, start and stop timers freely. */
#include "sim_loop.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "sim_util.h"

#define SIM_LOOP_BATCH 256

struct sim_loop {
	int epfd;
	bool stop;
	struct sim_timer **heap;
	size_t nheap;
	size_t capheap;
	uint64_t timers_started;
	struct sim_defer *deferred;
};

struct sim_loop *sim_loop_new(void)
{
	struct sim_loop *loop = calloc(1, sizeof(*loop));

	if (!loop)
		return NULL;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0) {
		free(loop);
		return NULL;
	}
	return loop;
}

static void sim_loop_run_deferred(struct sim_loop *loop)
{
	while (loop->deferred) {
		struct sim_defer *d = loop->deferred;

		loop->deferred = d->next;
		d->fn(d->arg);
	}
}

void sim_loop_free(struct sim_loop *loop)
{
	if (!loop)
		return;
	sim_loop_run_deferred(loop);
	close(loop->epfd);
	free(loop->heap);
	free(loop);
}

int sim_loop_watch(struct sim_loop *loop, struct sim_io *io, int fd, uint32_t events,
		   sim_io_fn fn, void *arg)
{
	struct epoll_event ev = { .events = events, .data.ptr = io };

	io->fd = fd;
	io->events = events;
	io->fn = fn;
	io->arg = arg;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		io->fd = -1;
		return -1;
	}
	return 0;
}

int sim_loop_modify(struct sim_loop *loop, struct sim_io *io, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = io };

	if (io->fd < 0 || io->events == events)
		return 0;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, io->fd, &ev) < 0)
		return -1;
	io->events = events;
	return 0;
}

void sim_loop_unwatch(struct sim_loop *loop, struct sim_io *io)
{
	if (io->fd < 0)
		return;
	epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
	io->fd = -1;
}

static bool sim_timer_before(const struct sim_timer *a, const struct sim_timer *b)
{
	return a->due_ms < b->due_ms || (a->due_ms == b->due_ms && a->order < b->order);
}

static void sim_heap_set(struct sim_loop *loop, size_t i, struct sim_timer *t)
{
	loop->heap[i] = t;
	t->slot = i + 1;
}

static void sim_heap_up(struct sim_loop *loop, size_t i)
{
	struct sim_timer *t = loop->heap[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (!sim_timer_before(t, loop->heap[parent]))
			break;
		sim_heap_set(loop, i, loop->heap[parent]);
		i = parent;
	}
	sim_heap_set(loop, i, t);
}

static void sim_heap_down(struct sim_loop *loop, size_t i)
{
	struct sim_timer *t = loop->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= loop->nheap)
			break;
		if (c + 1 < loop->nheap && sim_timer_before(loop->heap[c + 1], loop->heap[c]))
			c++;
		if (!sim_timer_before(loop->heap[c], t))
			break;
		sim_heap_set(loop, i, loop->heap[c]);
		i = c;
	}
	sim_heap_set(loop, i, t);
}

void sim_timer_stop(struct sim_loop *loop, struct sim_timer *t)
{
	size_t i;
	struct sim_timer *last;

	if (!t->slot)
		return;
	i = t->slot - 1;
	t->slot = 0;
	last = loop->heap[--loop->nheap];
	if (last == t)
		return;
	sim_heap_set(loop, i, last);
	sim_heap_up(loop, i);
	sim_heap_down(loop, last->slot - 1);
}

int sim_timer_start(struct sim_loop *loop, struct sim_timer *t, unsigned delay_ms, sim_fn fn,
		    void *arg)
{
	sim_timer_stop(loop, t);
	if (loop->nheap == loop->capheap) {
		size_t cap = loop->capheap ? loop->capheap * 2 : 64;
		struct sim_timer **h = realloc(loop->heap, cap * sizeof(*h));

		if (!h)
			return -1;
		loop->heap = h;
		loop->capheap = cap;
	}
	t->due_ms = sim_mono_ms() + delay_ms;
	t->order = loop->timers_started++;
	t->fn = fn;
	t->arg = arg;
	loop->nheap++;
	sim_heap_set(loop, loop->nheap - 1, t);
	sim_heap_up(loop, loop->nheap - 1);
	return 0;
}

void sim_loop_defer(struct sim_loop *loop, struct sim_defer *d, sim_fn fn, void *arg)
{
	d->fn = fn;
	d->arg = arg;
	d->next = loop->deferred;
	loop->deferred = d;
}

static void sim_loop_run_timers(struct sim_loop *loop)
{
	uint64_t now = sim_mono_ms();

	while (loop->nheap && loop->heap[0]->due_ms <= now) {
		struct sim_timer *t = loop->heap[0];

		sim_timer_stop(loop, t);
		t->fn(t->arg);
	}
}

static int sim_loop_timeout(const struct sim_loop *loop)
{
	uint64_t now;

	if (!loop->nheap)
		return -1;
	now = sim_mono_ms();
	if (loop->heap[0]->due_ms <= now)
		return 0;
	return (int)(loop->heap[0]->due_ms - now);
}

int sim_loop_run(struct sim_loop *loop)
{
	struct epoll_event evs[SIM_LOOP_BATCH];

	loop->stop = false;
	while (!loop->stop) {
		int n = epoll_wait(loop->epfd, evs, SIM_LOOP_BATCH, sim_loop_timeout(loop));
		int i;

		if (n < 0 && errno != EINTR)
			return -1;
		for (i = 0; i < n; i++) {
			struct sim_io *io = evs[i].data.ptr;

			if (io->fd >= 0)
				io->fn(io->arg, evs[i].events);
		}
		sim_loop_run_timers(loop);
		sim_loop_run_deferred(loop);
	}
	return 0;
}

void sim_loop_stop(struct sim_loop *loop)
{
	loop->stop = true;
}
