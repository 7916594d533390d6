/* Signed result callbacks (SPEC §3 callback_url): a finished async wake's
 * result document is POSTed to its URL with
 * `X-Pushgw-Signature: sha256=<hex HMAC-SHA256 of the body>` (key: the API
 * key's callback_secret), retried with backoff until a 2xx or the deadline.
 * Webhook receivers are plain HTTP/1.1 or HTTPS servers of any kind, so this
 * uses libcurl on one thread of its own; nothing here runs on the event loop
 * or on a request thread. Every function but callbacks_new/free is
 * thread-safe.
 * Each async wake first reserves a slot for its owner (the API key): a dead
 * receiver with a day-long ttl can so hold at most its key's share of
 * memory, and shutdown knows how many results are still owed. */
#ifndef PUSHGW_CALLBACK_H
#define PUSHGW_CALLBACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pushgw/err.h"

typedef struct callbacks callbacks;
/* One owner's share of the queue; owned by the module. */
typedef struct callback_slot callback_slot;

/* Runs on the callback thread before the first attempt: makes the body (and
 * may do disk work such as registry pruning). Sets *body (malloc'd; the
 * module frees it) and *len; returns false to drop the job. Owns arg. */
typedef bool (*callback_prepare_fn)(void *arg, char **body, size_t *len);

/* ca_file: extra trust anchors for https receivers (NULL: system store).
 * Caller frees with callbacks_free(). */
pgw_err callbacks_new(const char *ca_file, callbacks **out);
/* Stops the thread; undelivered callbacks are logged (each, and their count)
 * and dropped. Call callbacks_drain() first to give them a chance. NULL ok. */
void callbacks_free(callbacks *cbs);

/* Reserve room for one callback of owner (an API key name) before its wake
 * starts. False (and *slot NULL) when owner already has max_pending
 * callbacks reserved and neither delivered nor given up. A reserved slot is
 * handed to callbacks_submit() or given back with callbacks_release(). */
bool callbacks_reserve(callbacks *cbs, const char *owner, unsigned max_pending,
		       callback_slot **slot);
void callbacks_release(callbacks *cbs, callback_slot *slot);

/* Queue one callback in a reserved slot (used up whatever the result). url
 * and secret are copied. deadline_ms on the pgw_now_ms() clock. */
pgw_err callbacks_submit(callbacks *cbs, callback_slot *slot, const char *url,
			 const char *secret, callback_prepare_fn prepare, void *arg,
			 int64_t deadline_ms, const char *wake_id);

/* Reserved slots whose callback is not finished: wakes still running, jobs
 * waiting for their next attempt, attempts in flight. For /metrics. */
size_t callbacks_pending(callbacks *cbs);

/* Shutdown: keep sending (retries included) until nothing is pending or
 * timeout_ms ran out; returns how many are still pending. */
size_t callbacks_drain(callbacks *cbs, int timeout_ms);

/* Only http:// and https:// URLs with a host, at most 2048 bytes and no
 * spaces or control characters. On false, why says what is wrong. */
bool callback_url_valid(const char *url, char *why, size_t n);

/* "sha256=<hex>" of HMAC-SHA256(secret, body) into out (at least 72 bytes). */
void callback_sign(const char *secret, const char *body, size_t len, char *out, size_t n);

/* Delivered / given-up counts, for metrics and tests. */
void callbacks_counts(callbacks *cbs, uint64_t *delivered, uint64_t *failed);

#endif
