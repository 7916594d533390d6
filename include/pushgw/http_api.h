/* Inbound HTTP API on libmicrohttpd (SPEC §3): routing, API-key auth in
 * constant time, JSON errors, body limits, and requests that suspend their
 * connection while pushes are in flight or the registry works (no worker
 * waits on the network or the disk). Threading: http_api_* from the main
 * thread; request handlers run on libmicrohttpd's worker threads; registry
 * calls on the API's registry queue (registry_queue.h); wake completions
 * arrive from the loop. */
#ifndef PUSHGW_HTTP_API_H
#define PUSHGW_HTTP_API_H

#include <stdbool.h>

#include "pushgw/callback.h"
#include "pushgw/config.h"
#include "pushgw/err.h"
#include "pushgw/evloop.h"
#include "pushgw/push.h"
#include "pushgw/registry.h"
#include "pushgw/regwatch.h"
#include "pushgw/upstream.h"

typedef struct http_api http_api;

/* Called with a config and upstream the API no longer uses (replaced by a
 * reload and released by its last request, or left at http_api_free()); the
 * callee frees them. Any thread. */
typedef void (*http_api_retire_fn)(void *arg, const pgw_config *cfg, upstream *up);

/* What the API works with; loop, registry and callbacks must outlive the API.
 * cfg and up become the API's first generation, handed back through retire. */
typedef struct http_api_deps {
	const pgw_config *cfg;
	evloop *loop;
	upstream *up;
	http_api_retire_fn retire;
	void *retire_arg;
	registry *reg;   /* NULL: registry routes answer 503 */
	callbacks *cbs;  /* NULL: callback_url is refused */
	regwatch *watch; /* the registry's cached health for /readyz; NULL: always ready */
} http_api_deps;

/* Start listening on cfg->listen_host:listen_port. Caller frees with
 * http_api_free(). */
pgw_err http_api_start(const http_api_deps *deps, http_api **out, char *errbuf, size_t errlen);

/* Stop taking new requests (they get 503 shutting_down, /readyz 503; so
 * does a request whose body completes from now on) and wait up to grace_ms
 * for the requests in progress to be answered and for async wakes to
 * hand their result to the callback queue. Returns true when none is left. */
bool http_api_drain(http_api *api, int grace_ms);

/* SIGHUP: new requests use cfg and up from now on; requests already running
 * finish with what they started with. */
void http_api_swap(http_api *api, const pgw_config *cfg, upstream *up);

/* Call fn for the upstream of every generation still alive (shutdown). */
void http_api_each_upstream(http_api *api, void (*fn)(upstream *up));

/* Shutdown, after the loop stopped and the upstreams ended what was in
 * flight: answers every request still waiting (503 shutting_down), gives
 * the answers up to settle_ms to go out, then stops the daemons (closing
 * every connection) and the registry threads. No request runs after it;
 * async wakes already handed to the callbacks still point into the API's
 * generations, so free the callbacks before http_api_free(). Idempotent;
 * accepts NULL. */
void http_api_stop(http_api *api, int settle_ms);

/* http_api_stop() if not yet, then retires every generation and frees.
 * Accepts NULL. */
void http_api_free(http_api *api);

/* The bound port (useful with port 0). */
int http_api_port(const http_api *api);


/* ---- pushes for calls that do not come over HTTP (the SIP edge) ---- */

/* How one call push ended: the device's result, as /v1/wake reports it. */
typedef struct http_api_push_outcome {
	const char *status;   /* "sent", "invalid_token", "failed", "timeout", "skipped" */
	const char *reason;   /* or NULL */
	const char *provider; /* "apns" | "fcm" */
} http_api_push_outcome;
typedef void (*http_api_push_done_fn)(void *arg, const http_api_push_outcome *o);

/* Wake (kind PGW_PUSH_CALL) or cancel (PGW_PUSH_CANCEL) the one device a SIP
 * Contact names, exactly as POST /v1/wake or /v1/cancel with body
 * {"devices": [{"contact": contact, "app": app}], "call": {"id": call_id,
 * "from": from, "from_name": from_name, "to": to}, "reason": reason,
 * "ttl": ttl_s} would (payload profile, ring repetition, cancel rules,
 * metrics, the wake log line, dead-token pruning): every string is copied
 * before this returns; NULL ones are left out. done(arg, outcome) comes
 * exactly once after PGW_OK, on another thread (the loop's or a registry
 * thread's), and must not block. PGW_EINVAL (with why) when the Contact
 * has no usable push target; PGW_ESTATE while shutting down. Any thread. */
typedef struct http_api_push {
	pgw_push_kind kind;
	const char *contact, *app;
	const char *call_id, *from, *from_name, *to;
	const char *reason; /* cancels: "answered_elsewhere" | "caller_cancelled" | "declined" */
	int ttl_s;          /* 0: the default (30) */
} http_api_push;
pgw_err http_api_push_call(http_api *api, const http_api_push *p, http_api_push_done_fn done,
			   void *arg, char *why, size_t whylen);

#endif
