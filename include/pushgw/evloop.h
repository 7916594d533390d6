/* Single-threaded epoll event loop: fd readiness, one-shot timers and one
 * cross-thread work queue (an eventfd wakes the loop). All outbound network
 * I/O runs here. Threading: evloop_post() and evloop_stop() may be called from
 * any thread; every other function only on the loop thread (or from any one
 * thread before evloop_start()). */
#ifndef PUSHGW_EVLOOP_H
#define PUSHGW_EVLOOP_H

#include <stdbool.h>
#include <stdint.h>

#include "pushgw/err.h"

typedef struct evloop evloop;
typedef struct evloop_timer evloop_timer;

typedef void (*evloop_fn)(void *arg);
/* events: EPOLLIN/EPOLLOUT/EPOLLERR/EPOLLHUP bits */
typedef void (*evloop_io_fn)(void *arg, uint32_t events);

/* Caller frees with evloop_free(). */
pgw_err evloop_new(evloop **out);
/* Stops and joins the thread if running, frees pending timers and posted work
 * without running them. Accepts NULL. */
void evloop_free(evloop *loop);

/* Start the loop thread. */
pgw_err evloop_start(evloop *loop);
/* Ask the loop to stop and join it. Not from the loop thread. From the
 * moment it is called evloop_post() refuses work (PGW_ESTATE); work posted
 * before that the loop did not run yet runs here, on the caller, after the
 * join. Timers and fd watches stay, unrun, for the caller (now the loop's
 * only user) to cancel or evloop_free() to drop. */
void evloop_stop(evloop *loop);
bool evloop_in_loop_thread(const evloop *loop);

/* Run fn(arg) on the loop thread, FIFO. Thread-safe. After PGW_OK fn runs
 * exactly once: on the loop thread, or on the thread that stops the loop
 * (evloop_stop()). PGW_ESTATE once the loop is stopping or stopped (not
 * before its first start): fn will not run, the caller finishes the work. */
pgw_err evloop_post(evloop *loop, evloop_fn fn, void *arg);

pgw_err evloop_io_add(evloop *loop, int fd, uint32_t events, evloop_io_fn fn, void *arg);
pgw_err evloop_io_mod(evloop *loop, int fd, uint32_t events);
/* Safe to call from inside that fd's own callback. */
void evloop_io_del(evloop *loop, int fd);

/* One-shot timer after delay_ms (0 = next iteration). The handle is valid until
 * the callback starts or evloop_timer_cancel() returns. NULL on ENOMEM. */
evloop_timer *evloop_timer_add(evloop *loop, int64_t delay_ms, evloop_fn fn, void *arg);
/* Accepts NULL. */
void evloop_timer_cancel(evloop *loop, evloop_timer *t);

#endif
