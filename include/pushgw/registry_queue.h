/* Registry calls of HTTP requests, off libmicrohttpd's worker threads: a few
 * threads take jobs from one bounded FIFO queue, so a registry that is slow
 * or hangs (a PostgreSQL server that stopped answering) holds a queue
 * thread, never a request thread, while the request waits suspended. Every
 * job finishes exactly once: when its work returns, or at its deadline if
 * that comes first, so a suspended request always gets its answer in
 * bounded time.
 * Threading: registry_queue_submit() from any thread (it only locks and
 * signals, so the event loop may call it); work runs on a queue thread;
 * finish on a queue thread or on the queue's deadline thread; new,
 * shutdown and free from one owner thread. */
#ifndef PUSHGW_REGISTRY_QUEUE_H
#define PUSHGW_REGISTRY_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pushgw/err.h"

typedef struct registry_queue registry_queue;

/* The registry calls themselves; on a queue thread. */
typedef void (*registry_queue_work_fn)(void *arg);
/* Exactly once per accepted job. timed_out: the deadline (or shutdown)
 * came first; work has not run and never will, or is still running and
 * its outcome is not to be read. Must not block. */
typedef void (*registry_queue_finish_fn)(void *arg, bool timed_out);
/* Exactly once per accepted job, when the queue is done with arg: after
 * finish has returned and work has returned (or was dropped unstarted). */
typedef void (*registry_queue_release_fn)(void *arg);

/* threads >= 1 queue threads; at most max_waiting jobs wait for one.
 * Caller frees with registry_queue_free(). */
pgw_err registry_queue_new(int threads, size_t max_waiting, registry_queue **out);

/* Queue work(arg); deadline_ms on the pgw_now_ms() clock. PGW_EFULL when
 * max_waiting jobs wait already, PGW_ESTATE after shutdown: then nothing
 * is called and arg stays the caller's. */
pgw_err registry_queue_submit(registry_queue *q, registry_queue_work_fn work,
			      registry_queue_finish_fn finish, registry_queue_release_fn release,
			      void *arg, int64_t deadline_ms);

/* Jobs accepted and not finished yet (waiting or running). */
size_t registry_queue_pending(registry_queue *q);

/* Accept no more jobs; every job not finished yet finishes now as timed
 * out (waiting ones are dropped). Work already running keeps its thread.
 * Idempotent. */
void registry_queue_shutdown(registry_queue *q);

/* Shutdown, then wait for running work and stop the threads. Accepts
 * NULL. */
void registry_queue_free(registry_queue *q);

#endif
