/* A wake or cancel: parse and validate the request body (SPEC §3), fan out one
 * push per distinct device, collect every result, and render the response
 * document. Nothing here waits on the registry: the caller looks the
 * extension up and hands the devices in, and takes the registry changes a
 * finished wake calls for out to run elsewhere. Threading: wake_parse(),
 * wake_resolve(), wake_response_json() and wake_free() on the thread that
 * owns the request; wake_start() posts the fan-out to the loop thread, which
 * calls done(arg) once every device has a final result and never touches the
 * wake after that. */
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
 * and its explicit devices. On PGW_OK *out is a new wake (caller frees with
 * wake_free()) that wake_resolve() makes ready; otherwise *err says what to
 * answer and nothing was changed anywhere. No registry access. */
pgw_err wake_parse(const char *body, size_t len, const pgw_config *cfg, const pgw_api_key *key,
		   pgw_push_kind kind, pgw_wake **out, pgw_http_error *err);

/* The extension the body names (to look up in the registry), or NULL. */
const char *wake_extension(const pgw_wake *w);

/* The wake's timeout_ms: how long the caller lets the extension lookup take
 * before answering that the registry did not answer. */
int64_t wake_lookup_budget_ms(const pgw_wake *w);

/* Add the extension's registered devices devs[0..n) (those of apps the key
 * may use, at most limits.max_devices_per_wake; ignored without an
 * extension) after the explicit ones, and make one push per distinct
 * device, rendering each body now. Once per wake, before wake_start(); devs
 * stay the caller's. On failure *err says what to answer (404 no_devices
 * when the targets resolve to nothing; 400 naming call.data when a body
 * would exceed its service's payload limit) and the caller frees the wake;
 * nothing was sent. A cancel's push to a VoIP-only iPhone (unless its app
 * has voip_cancel) is final at once: skipped, never handed to the upstream. */
pgw_err wake_resolve(pgw_wake *w, const registry_device *devs, size_t n, const pgw_config *cfg,
		     const pgw_api_key *key, pgw_http_error *err);

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

/* The registry changes a finished wake calls for: drop tokens that came back
 * invalid_token (APNs 410 only when registered before its timestamp) and
 * remember the APNs host that worked for a device whose environment was not
 * stated. Copied out of the wake, so they can run on another thread and
 * outlive it.
 * wake_updates_new(): after done(); NULL when there are none (or on ENOMEM).
 * wake_updates_apply(): the registry writes, on any thread but the loop's;
 *   counts and logs each dropped token. reg may be NULL.
 * wake_updates_report(): on the wake's owner thread, after apply returned:
 *   marks the results whose token went ("removed", "pruned").
 * wake_updates_free(): accepts NULL. */
typedef struct wake_updates wake_updates;
wake_updates *wake_updates_new(const pgw_wake *w);
void wake_updates_apply(wake_updates *u, registry *reg);
void wake_updates_report(const wake_updates *u, pgw_wake *w);
void wake_updates_free(wake_updates *u);

/* All four in a row, on a thread that may wait for the registry (the
 * callback thread). reg may be NULL. */
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
	int attempts;         /* requests sent upstream; 0: it never left (skipped, refused locally) */
} wake_result_view;
typedef void (*wake_result_fn)(void *arg, const wake_result_view *r);

/* fn(arg, result) once per requested device, in request order, once every
 * push is final: counting outcomes without re-parsing the response. */
void wake_each_result(const pgw_wake *w, wake_result_fn fn, void *arg);

/* Accepts NULL. Not while the loop still owns it (between start and done). */
void wake_free(pgw_wake *w);

#endif
