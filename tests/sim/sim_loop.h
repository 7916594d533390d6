/* The simulator's single-threaded epoll loop: fd watchers, one-shot
 * millisecond timers (a binary heap; never sleep) and deferred frees that run
 * after the current batch of events. Everything in pushsim runs on it. */
#ifndef SIM_LOOP_H
#define SIM_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sim_loop;

typedef void (*sim_io_fn)(void *arg, uint32_t events);
typedef void (*sim_fn)(void *arg);

/* Embedded in its owner; the owner must stay alive until after the batch in
 * which it was unwatched (use sim_loop_defer() to free it). */
struct sim_io {
	int fd;
	uint32_t events;
	sim_io_fn fn;
	void *arg;
};

/* Embedded in its owner; zero-initialised means "not running". */
struct sim_timer {
	uint64_t due_ms;
	uint64_t order; /* timers due at the same ms fire in start order */
	size_t slot; /* heap index + 1; 0 when not running */
	sim_fn fn;
	void *arg;
};

/* Embedded in an object whose release must wait for the end of the batch. */
struct sim_defer {
	struct sim_defer *next;
	sim_fn fn;
	void *arg;
};

/* Caller frees with sim_loop_free(), which runs pending deferred calls. */
struct sim_loop *sim_loop_new(void);
void sim_loop_free(struct sim_loop *loop);

/* Returns 0 or -1 (errno set). */
int sim_loop_watch(struct sim_loop *loop, struct sim_io *io, int fd, uint32_t events,
		   sim_io_fn fn, void *arg);
int sim_loop_modify(struct sim_loop *loop, struct sim_io *io, uint32_t events);
/* Stops watching (does not close the fd); events already collected for it in
 * this batch are skipped. */
void sim_loop_unwatch(struct sim_loop *loop, struct sim_io *io);

/* (Re)arms timer to call fn(arg) after delay_ms. Returns 0 or -1 (no memory). */
int sim_timer_start(struct sim_loop *loop, struct sim_timer *t, unsigned delay_ms, sim_fn fn,
		    void *arg);
/* Safe on a timer that is not running. */
void sim_timer_stop(struct sim_loop *loop, struct sim_timer *t);

/* Calls fn(arg) once the current batch of events and timers is done. */
void sim_loop_defer(struct sim_loop *loop, struct sim_defer *d, sim_fn fn, void *arg);

/* Runs until sim_loop_stop(); returns 0, or -1 if epoll fails. */
int sim_loop_run(struct sim_loop *loop);
void sim_loop_stop(struct sim_loop *loop);

#endif
