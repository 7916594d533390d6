/* Signed result callbacks (SPEC §3 callback_url): a finished async wake's
 * result document is POSTed to its URL with
 * `X-Pushgw-Signature: sha256=<hex HMAC-SHA256 of the body>` (key: the API
 * key's callback_secret), retried with backoff until a 2xx or the deadline.
 * Webhook receivers are plain HTTP/1.1 or HTTPS servers of any kind, so this
 * uses libcurl on one thread of its own; nothing here runs on the event loop
 * or on a request thread. callbacks_submit() is thread-safe. */
#ifndef PUSHGW_CALLBACK_H
#define PUSHGW_CALLBACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pushgw/err.h"

typedef struct callbacks callbacks;

/* Runs on the callback thread before the first attempt: makes the body (and
 * may do disk work such as registry pruning). Sets *body (malloc'd; the
 * module frees it) and *len; returns false to drop the job. Owns arg. */
typedef bool (*callback_prepare_fn)(void *arg, char **body, size_t *len);

/* ca_file: extra trust anchors for https receivers (NULL: system store).
 * Caller frees with callbacks_free(). */
pgw_err callbacks_new(const char *ca_file, callbacks **out);
/* Stops the thread; undelivered callbacks are logged and dropped. NULL ok. */
void callbacks_free(callbacks *cbs);

/* Queue one callback. url and secret are copied. deadline_ms on the
 * pgw_now_ms() clock. */
pgw_err callbacks_submit(callbacks *cbs, const char *url, const char *secret,
			 callback_prepare_fn prepare, void *arg, int64_t deadline_ms,
			 const char *wake_id);

/* Only http:// and https:// URLs with a host, at most 2048 bytes and no
 * spaces or control characters. On false, why says what is wrong. */
bool callback_url_valid(const char *url, char *why, size_t n);

/* "sha256=<hex>" of HMAC-SHA256(secret, body) into out (at least 72 bytes). */
void callback_sign(const char *secret, const char *body, size_t len, char *out, size_t n);

/* Delivered / given-up counts, for metrics and tests. */
void callbacks_counts(callbacks *cbs, uint64_t *delivered, uint64_t *failed);

#endif
