/* A wake or cancel: parse and validate the request body (SPEC §3), fan out one
 * push per distinct device, collect every result, and render the response
 * document. Threading: wake_parse()/wake_response_json()/wake_free() on the
 * HTTP thread that owns the request; wake_start() posts the fan-out to the
 * loop thread, which calls done(arg) once every device has a final result and
 * never touches the wake after that. */
#ifndef PUSHGW_WAKE_H
#define PUSHGW_WAKE_H

#include <stddef.h>

#include "pushgw/config.h"
#include "pushgw/err.h"
#include "pushgw/evloop.h"
#include "pushgw/push.h"
#include "pushgw/registry.h"
#include "pushgw/ringer.h"
#include "pushgw/upstream.h"

typedef struct pgw_wake pgw_wake;

/* An API error: HTTP status, snake_case code, readable message naming the
 * field at fault. */
typedef struct pgw_http_error {
	int status;
	const char *code;
	char message[400];
} pgw_http_error;

/* Validate a /v1/wake (kind CALL) or /v1/cancel (kind CANCEL) body for `key`
 * and resolve its "extension" in reg (NULL: no registry). Registered devices
 * of apps the key may not use are left out. On PGW_OK *out is a new wake
 * (caller frees with wake_free()); otherwise *err says what to answer and
 * nothing was changed anywhere. Does registry reads: not on the loop. */
pgw_err wake_parse(const char *body, size_t len, const pgw_config *cfg, const pgw_api_key *key,
		   registry *reg, pgw_push_kind kind, pgw_wake **out, pgw_http_error *err);

typedef void (*wake_done_fn)(void *arg);

/* Ring repetition for the wake's alert-only devices (NULL rg: none). */
typedef struct wake_ring {
	ringer *rg;
	void *holder;
	ringer_hold_fn hold;
} wake_ring;

/* Hand the wake to the loop thread. After PGW_OK, done(arg) comes exactly
 * once (on the loop thread). A call starts ring repetition for its alert-only
 * devices of apps with ring_repeat_s; a cancel stops it for its devices. */
pgw_err wake_start(pgw_wake *w, evloop *loop, upstream *up, const wake_ring *ring,
		   wake_done_fn done, void *arg);

/* After done(): remove registrations whose token came back invalid_token
 * (APNs 410 only when registered before its timestamp) and remember the APNs
 * host that worked for a device whose environment was not stated. Registry
 * writes: not on the loop. reg may be NULL. */
void wake_apply_results(pgw_wake *w, registry *reg);

/* {"id": …, "results": [ … ]} in request order. Only after done(). Caller
 * frees with free(); NULL on ENOMEM. */
char *wake_response_json(const pgw_wake *w, size_t *len);

/* "w_<ULID>" */
const char *wake_id(const pgw_wake *w);

/* The request's callback_url (already validated), or NULL. */
const char *wake_callback_url(const pgw_wake *w);

/* How long the result is worth delivering: the wake's ttl (ms), at least its
 * timeout_ms plus a second so a callback gets one attempt. */
int64_t wake_result_ttl_ms(const pgw_wake *w);

/* Log one line for the finished wake (id, call id, per-device outcomes). */
void wake_log(const pgw_wake *w);

/* One requested device's outcome. Strings live as long as the wake. */
typedef struct wake_result_view {
	const char *provider; /* "apns" | "fcm" */
	const char *app;
	const char *status;   /* pgw_push_status_str() */
	const char *reason;   /* NULL when there is none */
	double latency_ms;
} wake_result_view;
typedef void (*wake_result_fn)(void *arg, const wake_result_view *r);

/* fn(arg, result) once per requested device, in request order, once every
 * push is final: counting outcomes without re-parsing the response. */
void wake_each_result(const pgw_wake *w, wake_result_fn fn, void *arg);

/* Accepts NULL. Not while the loop still owns it (between start and done). */
void wake_free(pgw_wake *w);

#endif
