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
#include "pushgw/registry.h"
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
} http_api_deps;

/* Start listening on cfg->listen_host:listen_port. Caller frees with
 * http_api_free(). */
pgw_err http_api_start(const http_api_deps *deps, http_api **out, char *errbuf, size_t errlen);

/* Stop taking new requests (they get 503 shutting_down, /readyz 503) and wait
 * up to grace_ms for in-flight wakes (async ones until their result is
 * handed to the callback queue). Returns true when none is left. */
bool http_api_drain(http_api *api, int grace_ms);

/* SIGHUP: new requests use cfg and up from now on; requests already running
 * finish with what they started with. */
void http_api_swap(http_api *api, const pgw_config *cfg, upstream *up);

/* Call fn for the upstream of every generation still alive (shutdown). */
void http_api_each_upstream(http_api *api, void (*fn)(upstream *up));

/* Stops the daemon (in-flight requests are cut) and retires every
 * generation. Accepts NULL. */
void http_api_free(http_api *api);

/* The bound port (useful with port 0). */
int http_api_port(const http_api *api);

#endif
