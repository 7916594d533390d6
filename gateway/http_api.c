/* The inbound HTTP API on libmicrohttpd: routes, API-key auth, JSON errors,
 * body limits. A request that waits — for pushes on the loop thread, or for
 * a registry call on the registry queue — suspends its connection instead
 * of holding a worker. Handlers run on libmicrohttpd's worker threads and
 * never call the registry themselves; completions come from the loop thread
 * or a registry queue thread and only resume the connection. A watchdog
 * thread of its own closes connections whose request is not in on time. */
#include "pushgw/http_api.h"

#include <arpa/inet.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <ctype.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pushgw/jsonr.h"
#include "pushgw/jsonw.h"
#include "pushgw/log.h"
#include "pushgw/metrics.h"
#include "pushgw/ratelimit.h"
#include "pushgw/registry_queue.h"
#include "pushgw/regwatch.h"
#include "pushgw/util.h"
#include "pushgw/wake.h"

/* One libmicrohttpd daemon per worker thread, each with its own listening
 * socket on the same port (SO_REUSEPORT): the kernel spreads connections
 * over them. One daemon with a thread pool shares one socket, and whichever
 * worker wakes first accepts, so a burst of keep-alive connections could
 * all land on one worker while the other idled. Limits below are totals,
 * split over the daemons. */
#define WORKER_THREADS 2
#define CONNECTION_LIMIT 4096
#define IDLE_TIMEOUT_S 30
/* A request's headers and body must be in within this of its request line,
 * or the connection is closed: the idle timeout is reset by every byte, so
 * alone it lets a client that dribbles hold a connection for hours.
 * (libmicrohttpd cannot queue a 408 before the body is complete.) */
#define REQUEST_TIME_S 10
/* Before a request line (new or kept-alive connection) the bound is a little
 * over the idle timeout, counted from the connection or the previous answer:
 * a connection that is merely idle is closed by the idle timeout first, so
 * only one dribbling its request line is closed (and counted) here. */
#define WAIT_TIME_S (IDLE_TIMEOUT_S + 5)
/* How often the watchdog looks; a deadline is kept to within this. */
#define WATCHDOG_PERIOD_MS 250
/* libmicrohttpd's per-connection pool: request headers, the read buffer
 * and the answer's headers (bodies are copied out). Every open connection
 * pays all of it (it is cleared per request), so it is the largest part of
 * the memory a wake in flight holds: 16 KB made 4,000 waiting wakes ~104 MB
 * of RSS, 8 KB ~75 MB. Request headers can still take ~4 KB. */
#define HEADER_MEMORY (8 * 1024)
/* one PBX keeps a few keep-alive connections; a flood from one address must
 * not take every slot */
#define PER_IP_CONNECTION_LIMIT 256
/* calls × alert-only devices ringing at once */
#define RINGING_MAX 10000
/* Registry calls of requests run on their own threads (registry_queue.h);
 * more threads than database sessions, so that registrations waiting for a
 * commit can join one (group commit, in both backends). Past
 * REGISTRY_WAITING_MAX calls waiting for a thread, a request is answered
 * 503 at once. */
#define REGISTRY_THREADS 16
#define REGISTRY_WAITING_MAX 128
/* How long a request waits for its registry call before it is answered
 * 503 registry_unavailable (the call may still complete later). */
#define REGISTRY_DEADLINE_MS 10000
/* A wake's extension lookup waits its timeout_ms, at least this long. */
#define LOOKUP_MIN_MS 1000
/* Dropping a finished wake's dead tokens: past this the answer goes out
 * without them ("removed": false). */
#define UPDATES_DEADLINE_MS 5000

typedef enum route {
	ROUTE_UNKNOWN = 0,
	ROUTE_WAKE,
	ROUTE_CANCEL,
	ROUTE_DEVICE,    /* /v1/extensions/{ext}/devices/{device_id}: GET, PUT, DELETE */
	ROUTE_DEVICES,   /* /v1/extensions/{ext}/devices: GET */
	ROUTE_EXTENSION, /* /v1/extensions/{ext}: DELETE */
	ROUTE_HEALTHZ,
	ROUTE_READYZ,
	ROUTE_METRICS,
} route;

/* Label values for metrics: the route template, never the ids in it. */
static const char *const route_names[] = {
	"other", "/v1/wake", "/v1/cancel", "/v1/extensions/{ext}/devices/{device_id}",
	"/v1/extensions/{ext}/devices", "/v1/extensions/{ext}", "/healthz", "/readyz", "/metrics"};
static const char *const route_methods[] = {"", "POST", "POST", "GET, PUT, DELETE", "GET", "DELETE",
					    "GET", "GET", "GET"};

#define ID_MAX 128

/* units of http_api.owed */
#define OWED_REQUEST ((uint_fast64_t)1)
#define OWED_ASYNC ((uint_fast64_t)1 << 32)

#define FOREIGN_DEVICE "this device belongs to an app the key may not use"

/* One loaded config and the upstream built for it. Requests hold a reference
 * from their first byte to their answer (async wakes: until their callback
 * body is made), so a reload never pulls a config from under a request; the
 * last reference to a replaced generation frees it on the loop thread. */
typedef struct generation {
	const pgw_config *cfg;
	upstream *up;
	atomic_int refs; /* requests + 1 while current */
	struct generation *next; /* all generations, for shutdown */
	http_api *api;
} generation;

/* One open connection, for the watchdog. Lives from libmicrohttpd's
 * STARTED to its CLOSED notice, which comes before the socket is closed, so
 * the watchdog never shuts down a descriptor that was reused. */
typedef struct conn_watch {
	struct conn_watch *prev, *next;
	int fd;
	int64_t deadline_ms; /* pgw_now_ms() clock; 0 = none (request in, answer pending) */
	bool closed;         /* the watchdog shut it down */
} conn_watch; /* fields under http_api.watch_lock */

struct http_api {
	struct MHD_Daemon *daemons[WORKER_THREADS];
	pthread_mutex_t watch_lock;
	pthread_cond_t watch_cv;
	conn_watch *watched;
	bool watch_stop;
	bool watch_running;
	pthread_t watchdog;
	const pgw_config *cfg; /* the first config: listen address, TLS, limits of the daemon */
	pthread_mutex_t gen_lock;
	generation *current;
	generation *all;
	http_api_retire_fn retire;
	void *retire_arg;
	evloop *loop;
	registry *reg;
	callbacks *cbs;
	atomic_bool draining;
	/* What a drain waits for, in one word read at once: requests in
	 * progress (from their headers to the end of their answer: waiting
	 * for their body, the registry or their pushes) times OWED_REQUEST,
	 * plus async wakes whose result body is not made yet times
	 * OWED_ASYNC. An async wake is added before its request ends, so the
	 * word never reads zero in between. */
	atomic_uint_fast64_t owed;
	atomic_int wakes_in_flight; /* sync and async, for the gauge */
	registry_queue *rq; /* runs the registry calls of requests */
	regwatch *watch;    /* cached registry health for /readyz; NULL: none */
	ratelimit *limits;
	ringer *ringer;
	bool mtls; /* /v1/ calls need a client certificate from tls.client_ca_file */
	bool stopped; /* http_api_stop() ran */
	int port;
};

struct reg_call;

typedef struct request {
	http_api *api;
	generation *gen; /* config + upstream this request uses */
	struct MHD_Connection *conn;
	const pgw_api_key *key; /* once authenticated; in gen's config */
	const pgw_api_key *authed; /* the key its headers carry, checked before the body */
	struct reg_call *call;  /* while suspended for the registry, until read */
	route route;
	bool bad_path;           /* an id in the path is not valid */
	char ext[ID_MAX + 1];    /* URL-decoded path ids */
	char device_id[ID_MAX + 1];
	char *body;
	size_t len, cap;
	bool too_large;
	char retry_after[12]; /* for a 429 */
	pgw_wake *wake;
	bool wake_started; /* handed to the loop: the next call finishes it */
	atomic_int wake_done;
	int64_t started_us;
} request;

static void owed_add(http_api *api, uint_fast64_t what)
{
	atomic_fetch_add(&api->owed, what);
}

static void owed_sub(http_api *api, uint_fast64_t what)
{
	atomic_fetch_sub(&api->owed, what);
}

static uint_fast64_t requests_open(http_api *api)
{
	return atomic_load(&api->owed) % OWED_ASYNC;
}

static generation *gen_acquire(http_api *api)
{
	generation *g;

	pthread_mutex_lock(&api->gen_lock);
	g = api->current;
	atomic_fetch_add(&g->refs, 1);
	pthread_mutex_unlock(&api->gen_lock);
	return g;
}

static void gen_unlink(http_api *api, generation *g)
{
	generation **pp;

	pthread_mutex_lock(&api->gen_lock);
	for (pp = &api->all; *pp; pp = &(*pp)->next) {
		if (*pp == g) {
			*pp = g->next;
			break;
		}
	}
	pthread_mutex_unlock(&api->gen_lock);
}

static void gen_release(generation *g)
{
	if (!g || atomic_fetch_sub(&g->refs, 1) != 1)
		return;
	/* the last user of a replaced generation: hand it back to its owner */
	gen_unlink(g->api, g);
	g->api->retire(g->api->retire_arg, g->cfg, g->up);
	free(g);
}

static void gen_hold(void *holder, bool hold)
{
	generation *g = holder;

	if (hold)
		atomic_fetch_add(&g->refs, 1);
	else
		gen_release(g);
}

static wake_ring ring_for(http_api *api, generation *g)
{
	return (wake_ring){api->ringer, g, gen_hold};
}

/* ---- request-time watchdog ---- */

static conn_watch *watch_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci ? ci->socket_context : NULL;
}

/* Give the connection seconds from now to reach its next step; 0: no bound
 * (the request is in; the answer may wait on APNs/FCM for timeout_ms).
 * False when the watchdog already shut the connection: the request must
 * not be served (its client saw the connection close). */
static bool watch_arm(http_api *api, struct MHD_Connection *c, int seconds)
{
	conn_watch *w = watch_of(c);
	bool open = true;

	if (!w)
		return true;
	pthread_mutex_lock(&api->watch_lock);
	open = !w->closed;
	w->deadline_ms = seconds ? pgw_now_ms() + seconds * 1000 : 0;
	pthread_mutex_unlock(&api->watch_lock);
	return open;
}

/* libmicrohttpd: a connection opened (the wait for its first request line
 * starts) or is about to be closed. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	http_api *api = cls;
	conn_watch *w;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		w = ci ? calloc(1, sizeof *w) : NULL;
		if (!w)
			return; /* unwatched: the idle timeout still applies */
		w->fd = ci->connect_fd;
		w->deadline_ms = pgw_now_ms() + WAIT_TIME_S * 1000;
		pthread_mutex_lock(&api->watch_lock);
		w->next = api->watched;
		if (w->next)
			w->next->prev = w;
		api->watched = w;
		pthread_mutex_unlock(&api->watch_lock);
		*socket_context = w;
		return;
	}
	w = *socket_context;
	if (!w)
		return;
	pthread_mutex_lock(&api->watch_lock);
	if (w->prev)
		w->prev->next = w->next;
	else
		api->watched = w->next;
	if (w->next)
		w->next->prev = w->prev;
	pthread_mutex_unlock(&api->watch_lock);
	free(w);
	*socket_context = NULL;
}

/* libmicrohttpd: a request line is in; headers and body get REQUEST_TIME_S. */
static void *on_request_line(void *cls, const char *uri, struct MHD_Connection *c)
{
	watch_arm(cls, c, REQUEST_TIME_S);
	return NULL; /* on_request() makes the request record */
}

/* Closes connections past their deadline. A shutdown() makes
 * libmicrohttpd read the end of the stream and close the connection on its
 * own thread; the descriptor stays valid while it is on the list, as CLOSED
 * unlinks it under the same lock before the close. */
static void *watchdog_main(void *arg)
{
	http_api *api = arg;
	struct timespec until;
	char count[16];
	unsigned closed;
	conn_watch *w;
	int64_t now, deadline;

	pthread_mutex_lock(&api->watch_lock);
	while (!api->watch_stop) {
		now = pgw_now_ms();
		closed = 0;
		for (w = api->watched; w; w = w->next) {
			deadline = w->deadline_ms;
			if (!deadline || w->closed || now < deadline)
				continue;
			shutdown(w->fd, SHUT_RDWR);
			w->closed = true;
			closed++;
		}
		if (closed) {
			/* not under the lock: handlers take it for every request */
			pthread_mutex_unlock(&api->watch_lock);
			metrics_count("pushgw_http_slow_connections_closed_total", "", closed);
			snprintf(count, sizeof count, "%u", closed);
			pgw_log(PGW_LOG_INFO, "closed connections whose request was not in on time",
				"count", count, NULL);
			pthread_mutex_lock(&api->watch_lock);
			if (api->watch_stop)
				break;
		}
		pgw_timespec_in(&until, CLOCK_REALTIME, WATCHDOG_PERIOD_MS);
		pthread_cond_timedwait(&api->watch_cv, &api->watch_lock, &until);
	}
	pthread_mutex_unlock(&api->watch_lock);
	return NULL;
}

static bool watchdog_start(http_api *api)
{
	api->watch_running = pthread_create(&api->watchdog, NULL, watchdog_main, api) == 0;
	return api->watch_running;
}

/* After MHD_stop_daemon(): every connection is closed and unlinked. */
static void watchdog_stop(http_api *api)
{
	if (!api->watch_running)
		return;
	pthread_mutex_lock(&api->watch_lock);
	api->watch_stop = true;
	pthread_cond_signal(&api->watch_cv);
	pthread_mutex_unlock(&api->watch_lock);
	pthread_join(api->watchdog, NULL);
	api->watch_running = false;
}

static enum MHD_Result send_body(struct MHD_Connection *c, request *r, int status,
				 const char *ctype, char *body, size_t len)
{
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	enum MHD_Result ret;
	char labels[96];

	if (!resp) {
		free(body);
		return MHD_NO;
	}
	if (status != 204)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	if (status == 405)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, route_methods[r->route]);
	if (status == 401)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
	if (status == 429 && r->retry_after[0])
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, r->retry_after);
	/* draining: a kept-alive connection would only be cut at the end, with
	 * the next request maybe on the wire; the client reconnects elsewhere */
	if (atomic_load(&r->api->draining))
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	ret = MHD_queue_response(c, (unsigned)status, resp);
	MHD_destroy_response(resp);
	snprintf(labels, sizeof labels, "route=\"%s\",status=\"%d\"", route_names[r->route], status);
	metrics_count("pushgw_http_requests_total", labels, 1);
	return ret;
}

static enum MHD_Result send_text(struct MHD_Connection *c, request *r, int status, const char *text)
{
	char *body = strdup(text);

	return body ? send_body(c, r, status, "text/plain; charset=utf-8", body, strlen(body)) : MHD_NO;
}

static enum MHD_Result send_error(struct MHD_Connection *c, request *r, int status,
				  const char *code, const char *message)
{
	json_t *root = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message);
	char *body = root ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;

	json_decref(root);
	if (!body)
		return MHD_NO;
	return send_body(c, r, status, "application/json", body, strlen(body));
}

/* The drain's answer: the client should go to another instance. */
static enum MHD_Result send_shutting_down(struct MHD_Connection *c, request *r)
{
	return send_error(c, r, 503, "shutting_down",
			  "the gateway is shutting down; retry on another instance");
}

static enum MHD_Result send_json(struct MHD_Connection *c, request *r, int status, json_t *doc)
{
	char *body = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);

	json_decref(doc);
	if (!body)
		return send_error(c, r, 500, "internal_error", "out of memory");
	return send_body(c, r, status, "application/json", body, strlen(body));
}

/* Decode one %XX-escaped path segment of n bytes into out (ID_MAX + 1).
 * False on a bad escape, a NUL, or a result longer than ID_MAX. */
static bool decode_segment(const char *s, size_t n, char *out)
{
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		int c = (unsigned char)s[i];
		if (c == '%') {
			char hex[3] = {0};
			if (i + 2 >= n || !isxdigit((unsigned char)s[i + 1]) ||
			    !isxdigit((unsigned char)s[i + 2]))
				return false;
			hex[0] = s[i + 1];
			hex[1] = s[i + 2];
			c = (int)strtol(hex, NULL, 16);
			i += 2;
			if (c == 0)
				return false;
		}
		if (o == ID_MAX)
			return false;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return true;
}

/* The path arrives raw (no unescaping by libmicrohttpd), so an id may carry
 * an escaped '/' without changing the route. */
static route route_of(const char *url, request *r)
{
	static const char prefix[] = "/v1/extensions/";
	const char *p, *slash;

	if (strcmp(url, "/v1/wake") == 0)
		return ROUTE_WAKE;
	if (strcmp(url, "/v1/cancel") == 0)
		return ROUTE_CANCEL;
	if (strcmp(url, "/healthz") == 0)
		return ROUTE_HEALTHZ;
	if (strcmp(url, "/readyz") == 0)
		return ROUTE_READYZ;
	if (strcmp(url, "/metrics") == 0)
		return ROUTE_METRICS;
	if (strncmp(url, prefix, sizeof prefix - 1) != 0)
		return ROUTE_UNKNOWN;
	p = url + sizeof prefix - 1;
	slash = strchr(p, '/');
	if (!decode_segment(p, slash ? (size_t)(slash - p) : strlen(p), r->ext) ||
	    !registry_valid_extension(r->ext))
		r->bad_path = true;
	if (!slash)
		return ROUTE_EXTENSION;
	if (strcmp(slash, "/devices") == 0 || strcmp(slash, "/devices/") == 0)
		return ROUTE_DEVICES;
	if (strncmp(slash, "/devices/", 9) != 0)
		return ROUTE_UNKNOWN;
	p = slash + 9;
	if (strchr(p, '/'))
		return ROUTE_UNKNOWN;
	if (!decode_segment(p, strlen(p), r->device_id) || !registry_valid_device_id(r->device_id))
		r->bad_path = true;
	return ROUTE_DEVICE;
}

/* Every configured key is compared, each in constant time, so neither a
 * match's position nor a near-miss shows in the timing. */
static const pgw_api_key *authenticate(const pgw_config *cfg, struct MHD_Connection *c)
{
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	const pgw_api_key *found = NULL;
	unsigned char digest[32];
	size_t i;

	if (!h || strncasecmp(h, "Bearer ", 7) != 0)
		return NULL;
	h += 7;
	while (*h == ' ')
		h++;
	if (!*h)
		return NULL;
	pgw_sha256(h, strlen(h), digest);
	for (i = 0; i < cfg->n_keys; i++)
		if (CRYPTO_memcmp(digest, cfg->keys[i].hash, sizeof digest) == 0)
			found = &cfg->keys[i];
	return found;
}

/* ---- registry calls, off the request threads ---- */

/* What a request asks of the registry. */
typedef enum reg_op {
	REG_PUT,
	REG_GET,
	REG_LIST,
	REG_DELETE_DEVICE,
	REG_DELETE_EXTENSION,
	REG_LOOKUP,  /* a wake's extension */
	REG_UPDATES, /* a finished wake's dead tokens and APNs hosts */
} reg_op;

/* One request's registry call. The request stays suspended while a registry
 * queue thread runs it, and reads the outcome on resume only if the call
 * finished in time (neither refused nor timed out). Shared by the request
 * and the queue, whichever lets go last frees it; it holds a reference on
 * its generation of its own, as the work may outlive the request. */
typedef struct reg_call {
	atomic_int refs;
	reg_op op;
	http_api *api;
	generation *gen;
	struct MHD_Connection *conn;
	/* inputs, the call's own */
	char ext[ID_MAX + 1], device_id[ID_MAX + 1];
	pgw_target target;  /* REG_PUT */
	registry_apps apps; /* the key's, in gen's config */
	wake_updates *updates;
	/* how it ended */
	pgw_err refused; /* the queue did not take it: PGW_EFULL, PGW_ESTATE, … */
	bool timed_out;
	/* the outcome, when neither */
	pgw_err rc;
	bool created;
	registry_device *devs;
	size_t n;
} reg_call;

/* The apps a key's registry calls may touch (none listed: every app). */
static registry_apps key_apps(const pgw_api_key *key)
{
	return (registry_apps){key->apps, key->n_apps};
}

/* A call for r (the request's reference), or NULL on ENOMEM. */
static reg_call *call_new(request *r, reg_op op)
{
	reg_call *k = calloc(1, sizeof *k);

	if (!k)
		return NULL;
	atomic_init(&k->refs, 1);
	k->op = op;
	k->api = r->api;
	k->gen = r->gen;
	atomic_fetch_add(&r->gen->refs, 1);
	k->conn = r->conn;
	memcpy(k->ext, r->ext, sizeof k->ext);
	memcpy(k->device_id, r->device_id, sizeof k->device_id);
	if (r->key)
		k->apps = key_apps(r->key);
	return k;
}

static void call_unref(reg_call *k)
{
	if (!k || atomic_fetch_sub(&k->refs, 1) != 1)
		return;
	target_clear(&k->target);
	registry_devices_free(k->devs, k->n);
	wake_updates_free(k->updates);
	gen_release(k->gen);
	free(k);
}

/* A registry queue thread: the call itself. */
static void call_work(void *arg)
{
	reg_call *k = arg;
	registry *reg = k->api->reg;

	switch (k->op) {
	case REG_PUT:
		k->rc = registry_put_stored(reg, k->ext, k->device_id, &k->target, &k->apps,
					    &k->created, &k->devs);
		k->n = k->devs ? 1 : 0;
		break;
	case REG_GET:
		k->rc = registry_get(reg, k->ext, k->device_id, &k->devs);
		k->n = k->devs ? 1 : 0;
		break;
	case REG_LIST:
	case REG_LOOKUP:
		k->rc = registry_list(reg, k->ext, &k->devs, &k->n);
		break;
	case REG_DELETE_DEVICE:
		k->rc = registry_delete_device(reg, k->ext, k->device_id, &k->apps);
		break;
	case REG_DELETE_EXTENSION:
		k->rc = registry_delete_extension(reg, k->ext, &k->apps);
		break;
	case REG_UPDATES:
		wake_updates_apply(k->updates, reg);
		break;
	}
}

/* A queue thread, or the queue's deadline thread: hand the request back to
 * libmicrohttpd, which calls on_request() again. */
static void call_finish(void *arg, bool timed_out)
{
	reg_call *k = arg;

	k->timed_out = timed_out;
	MHD_resume_connection(k->conn);
}

static void call_release(void *arg)
{
	call_unref(arg);
}

/* Suspend the request and queue k, which r owns from now on. A queue that
 * refuses it (full, shutting down) answers through the same resume, so
 * there is one way back. Suspending first: the call may finish before
 * the submit returns. */
static enum MHD_Result call_start(struct MHD_Connection *c, request *r, reg_call *k,
				  int64_t budget_ms)
{
	http_api *api = r->api;
	pgw_err err;

	r->call = k;
	atomic_fetch_add(&k->refs, 1); /* the queue's */
	MHD_suspend_connection(c);
	err = registry_queue_submit(api->rq, call_work, call_finish, call_release, k,
				    pgw_now_ms() + budget_ms);
	if (err != PGW_OK) {
		atomic_fetch_sub(&k->refs, 1);
		k->refused = err;
		MHD_resume_connection(c);
	}
	return MHD_YES;
}

/* A call whose outcome may be read. */
static bool call_answered(const reg_call *k)
{
	return k->refused == PGW_OK && !k->timed_out;
}

/* The 503 for a call that did not run in time or failed; field prefixes
 * the message ("extension: "). */
static enum MHD_Result call_failed(struct MHD_Connection *c, request *r, const reg_call *k,
				   const char *field)
{
	char msg[200];

	if (k->refused == PGW_ESTATE)
		return send_shutting_down(c, r);
	if (k->refused == PGW_EFULL)
		snprintf(msg, sizeof msg, "%stoo many registry calls are waiting; retry shortly", field);
	else if (k->timed_out || k->rc == PGW_ETIMEOUT) /* the queue's deadline, or the backend's */
		snprintf(msg, sizeof msg, "%sthe registry did not answer in time", field);
	else
		snprintf(msg, sizeof msg, "%sthe registry cannot serve this now (%s)", field,
			 pgw_strerror(k->refused ? k->refused : k->rc));
	return send_error(c, r, 503, "registry_unavailable", msg);
}

/* ---- probes ---- */

static enum MHD_Result serve_metrics(struct MHD_Connection *c, request *r)
{
	size_t len = 0;
	char *text;

	metrics_gauge("pushgw_wakes_in_flight", "", atomic_load(&r->api->wakes_in_flight));
	if (r->api->cbs)
		metrics_gauge("pushgw_callbacks_pending", "",
			      (double)callbacks_pending(r->api->cbs));
	text = metrics_render(&len);
	if (!text)
		return MHD_NO;
	return send_body(c, r, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
}

/* Unauthenticated, so cached figures only: nothing here queues registry
 * work that wakes need (regwatch.h keeps the registry's health and size). */
static enum MHD_Result serve_probe(struct MHD_Connection *c, request *r)
{
	http_api *api = r->api;

	if (r->route == ROUTE_METRICS)
		return serve_metrics(c, r);
	if (atomic_load(&api->draining))
		return send_text(c, r, 503, "draining\n");
	if (api->watch && !regwatch_ready(api->watch))
		return send_text(c, r, 503, "registry unavailable\n");
	return send_text(c, r, 200, "ready\n");
}

static void on_wake_done(void *arg)
{
	request *r = arg;

	/* loop thread: hand the finished wake back to libmicrohttpd */
	atomic_store(&r->wake_done, 1);
	MHD_resume_connection(r->conn);
}

/* An async wake: owned by this record from 202 until its callback body is made. */
typedef struct async_wake {
	http_api *api;
	generation *gen;
	pgw_wake *wake;
	route route;
	int64_t started_us;
	int64_t deadline_ms;
	const char *secret;
	callback_slot *slot; /* reserved at 202, used up by the submit */
} async_wake;

static void count_results(route rt, const pgw_wake *w);
static void record_wake(route rt, int64_t started_us);

/* How an async wake ends. */
typedef enum async_end {
	ASYNC_NEVER_RAN, /* wake_start() failed: nothing was sent, nothing to count */
	ASYNC_RAN,       /* every push is final; not pruned (loop thread) */
	ASYNC_RAN_PRUNE, /* … and its dead tokens are dropped first (callback thread) */
} async_end;

/* Render, count and free an async wake; its result document (or NULL).
 * Pruning only on a thread that may wait for the registry, never on the
 * loop. */
static char *async_finish(async_wake *aw, async_end how, size_t *len)
{
	char *doc = NULL;

	if (how == ASYNC_RAN_PRUNE)
		wake_apply_results(aw->wake, aw->api->reg);
	if (how != ASYNC_NEVER_RAN)
		doc = wake_response_json(aw->wake, len);
	if (doc) {
		wake_log(aw->wake);
		count_results(aw->route, aw->wake);
		record_wake(aw->route, aw->started_us);
	}
	owed_sub(aw->api, OWED_ASYNC);
	atomic_fetch_sub(&aw->api->wakes_in_flight, 1);
	wake_free(aw->wake);
	gen_release(aw->gen);
	free(aw);
	return doc;
}

/* Callback thread: prune, render, count, then hand the body to the sender. */
static bool async_prepare(void *arg, char **body, size_t *len)
{
	*body = async_finish(arg, ASYNC_RAN_PRUNE, len);
	return *body != NULL;
}

/* Loop thread (or the thread stopping it): every device is final; queue
 * the callback. Without the callback thread the wake is only counted: the
 * loop does not prune. */
static void on_async_wake_done(void *arg)
{
	async_wake *aw = arg;
	size_t len = 0;

	if (callbacks_submit(aw->api->cbs, aw->slot, wake_callback_url(aw->wake), aw->secret,
			     async_prepare, aw, aw->deadline_ms, wake_id(aw->wake)) != PGW_OK)
		free(async_finish(aw, ASYNC_RAN, &len)); /* the submit released the slot */
}

/* The answer to a wake that could not be handed to the loop: the loop is
 * stopping (SIGTERM) or out of memory. */
static enum MHD_Result wake_not_started(struct MHD_Connection *c, request *r, pgw_err why)
{
	if (why == PGW_ESTATE || atomic_load(&r->api->draining))
		return send_shutting_down(c, r);
	return send_error(c, r, 500, "internal_error", "could not start the wake");
}

static enum MHD_Result start_async_wake(struct MHD_Connection *c, request *r, const pgw_api_key *key)
{
	http_api *api = r->api;
	async_wake *aw;
	json_t *doc;

	callback_slot *slot;
	char msg[200];

	if (!api->cbs)
		return send_error(c, r, 400, "invalid_request", "callback_url: callbacks are not available");
	/* A full share means this key's receiver is down or far behind: a 202
	 * would promise a result that could not be kept, so say so now and
	 * let the PBX wake without callback_url (the answer then carries the
	 * result) or try another instance. */
	if (!callbacks_reserve(api->cbs, key->name,
			       (unsigned)r->gen->cfg->max_pending_callbacks_per_key, &slot)) {
		snprintf(msg, sizeof msg,
			 "key \"%s\" has %d callbacks not yet delivered (limits.max_pending_callbacks_per_key); "
			 "wake without callback_url or retry later",
			 key->name, r->gen->cfg->max_pending_callbacks_per_key);
		return send_error(c, r, 503, "callback_queue_full", msg);
	}
	aw = calloc(1, sizeof *aw);
	if (!aw) {
		callbacks_release(api->cbs, slot);
		return send_error(c, r, 500, "internal_error", "out of memory");
	}
	aw->slot = slot;
	aw->api = api;
	aw->gen = r->gen;
	atomic_fetch_add(&aw->gen->refs, 1);
	aw->wake = r->wake;
	aw->route = r->route;
	aw->started_us = r->started_us;
	aw->secret = key->callback_secret;
	aw->deadline_ms = pgw_now_ms() + wake_result_ttl_ms(r->wake);
	doc = json_pack("{s:s}", "id", wake_id(r->wake));
	r->wake = NULL; /* the async record owns it now */
	owed_add(api, OWED_ASYNC);
	atomic_fetch_add(&api->wakes_in_flight, 1);
	wake_ring ring = ring_for(api, aw->gen);
	pgw_err rc = wake_start(aw->wake, api->loop, aw->gen->up, &ring, on_async_wake_done, aw);

	if (rc != PGW_OK) {
		size_t len = 0;
		json_decref(doc);
		callbacks_release(api->cbs, slot);
		free(async_finish(aw, ASYNC_NEVER_RAN, &len));
		return wake_not_started(c, r, rc);
	}
	return send_json(c, r, 202, doc);
}

static void count_one(void *arg, const wake_result_view *v)
{
	const char *kind = *(const route *)arg == ROUTE_WAKE ? "wake" : "cancel";
	char labels[256];

	if (v->reason)
		snprintf(labels, sizeof labels,
			 "kind=\"%s\",provider=\"%s\",app=\"%s\",status=\"%s\",reason=\"%s\"", kind,
			 v->provider, v->app, v->status, v->reason);
	else
		snprintf(labels, sizeof labels, "kind=\"%s\",provider=\"%s\",app=\"%s\",status=\"%s\"",
			 kind, v->provider, v->app, v->status);
	metrics_count("pushgw_pushes_total", labels, 1);
	if (v->attempts == 0) /* never went upstream: no upstream latency to tell */
		return;
	snprintf(labels, sizeof labels, "provider=\"%s\",app=\"%s\"", v->provider, v->app);
	metrics_observe("pushgw_upstream_latency_seconds", labels, v->latency_ms / 1000.0);
}

/* From the wake itself: parsing the rendered response again cost ~7 % of
 * the gateway's CPU at saturation. */
static void count_results(route rt, const pgw_wake *w)
{
	wake_each_result(w, count_one, &rt);
}

/* Render, log, count and answer a finished wake. */
static enum MHD_Result answer_wake(struct MHD_Connection *c, request *r)
{
	size_t len = 0;
	char *doc = wake_response_json(r->wake, &len);

	if (!doc)
		return send_error(c, r, 500, "internal_error", "out of memory");
	wake_log(r->wake);
	count_results(r->route, r->wake);
	record_wake(r->route, r->started_us);
	return send_body(c, r, 200, "application/json", doc, len);
}

/* Every push is final. Dead tokens and learnt APNs hosts go to the registry
 * first, on the registry queue; the answer waits for that (so "removed"
 * says what happened), at most UPDATES_DEADLINE_MS. */
static enum MHD_Result finish_wake(struct MHD_Connection *c, request *r)
{
	wake_updates *u = r->api->reg ? wake_updates_new(r->wake) : NULL;
	enum MHD_Result ret;
	reg_call *k;

	if (u) {
		k = call_new(r, REG_UPDATES);
		if (k) {
			k->updates = u;
			ret = call_start(c, r, k, UPDATES_DEADLINE_MS);
			atomic_fetch_sub(&r->api->wakes_in_flight, 1);
			return ret;
		}
		wake_updates_free(u);
	}
	atomic_fetch_sub(&r->api->wakes_in_flight, 1);
	return answer_wake(c, r);
}

static enum MHD_Result answer_updates(struct MHD_Connection *c, request *r, const reg_call *k)
{
	if (call_answered(k))
		wake_updates_report(k->updates, r->wake);
	return answer_wake(c, r);
}

static void record_wake(route rt, int64_t started_us)
{
	const char *labels = rt == ROUTE_WAKE ? "kind=\"wake\"" : "kind=\"cancel\"";

	metrics_count("pushgw_wakes_total", labels, 1);
	metrics_observe("pushgw_wake_duration_seconds", labels, (double)(pgw_now_us() - started_us) / 1e6);
}

static bool is_json_type(struct MHD_Connection *c)
{
	const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	size_t n = strlen("application/json");

	return ct && strncasecmp(ct, "application/json", n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* Auth and scope for a /v1/ call. NULL means an error was queued (*ret). */
static const pgw_api_key *require_key(struct MHD_Connection *c, request *r, unsigned scope,
				      enum MHD_Result *ret)
{
	/* once per request: on_first_call() checked it before the body */
	const pgw_api_key *key = r->authed ? r->authed : authenticate(r->gen->cfg, c);
	char msg[160];

	if (!key) {
		*ret = send_error(c, r, 401, "unauthorized", "missing or unknown API key (Authorization: Bearer <key>)");
		return NULL;
	}
	if (!(key->scopes & scope)) {
		snprintf(msg, sizeof msg, "key \"%s\" does not have the \"%s\" scope", key->name,
			 scope == PGW_SCOPE_WAKE ? "wake" : "register");
		*ret = send_error(c, r, 403, "forbidden", msg);
		return NULL;
	}
	return key;
}

/* Body checks shared by every call that takes JSON. */
static bool body_acceptable(struct MHD_Connection *c, request *r, enum MHD_Result *ret)
{
	char msg[128];

	if (r->too_large) {
		snprintf(msg, sizeof msg, "body: larger than %zu bytes (limits.max_body_bytes)",
			 r->gen->cfg->max_body_bytes);
		*ret = send_error(c, r, 413, "body_too_large", msg);
		return false;
	}
	if (!is_json_type(c)) {
		*ret = send_error(c, r, 415, "unsupported_media_type", "Content-Type: expected application/json");
		return false;
	}
	return true;
}

/* The wake's devices are all known: make its pushes and hand it to the
 * loop (or to the callback path), the request suspended meanwhile. */
static enum MHD_Result launch_wake(struct MHD_Connection *c, request *r,
				   const registry_device *devs, size_t n)
{
	http_api *api = r->api;
	pgw_http_error err = {0};
	wake_ring ring;
	pgw_err rc;

	if (wake_resolve(r->wake, devs, n, r->gen->cfg, r->key, &err) != PGW_OK)
		return send_error(c, r, err.status, err.code, err.message);
	if (wake_callback_url(r->wake))
		return start_async_wake(c, r, r->key);
	atomic_fetch_add(&api->wakes_in_flight, 1);
	r->wake_started = true;
	MHD_suspend_connection(c);
	ring = ring_for(api, r->gen);
	rc = wake_start(r->wake, api->loop, r->gen->up, &ring, on_wake_done, r);
	if (rc != PGW_OK) {
		/* could not reach the loop: answer now instead of hanging */
		atomic_store(&r->wake_done, rc == PGW_ESTATE ? -2 : -1);
		MHD_resume_connection(c);
	}
	return MHD_YES;
}

static enum MHD_Result start_wake(struct MHD_Connection *c, request *r)
{
	http_api *api = r->api;
	pgw_http_error err = {0};
	enum MHD_Result ret = MHD_NO;
	const pgw_api_key *key = require_key(c, r, PGW_SCOPE_WAKE, &ret);
	int64_t budget;
	reg_call *k;
	int wait_s = 1;
	char msg[160];

	if (!key)
		return ret;
	if (!ratelimit_take(api->limits, key->name, r->gen->cfg->wakes_per_second_per_key, pgw_now_ms(),
			    &wait_s)) {
		snprintf(r->retry_after, sizeof r->retry_after, "%d", wait_s);
		snprintf(msg, sizeof msg, "key \"%s\" is over %d wakes per second (limits.wakes_per_second_per_key); retry after %d s",
			 key->name, r->gen->cfg->wakes_per_second_per_key, wait_s);
		return send_error(c, r, 429, "rate_limited", msg);
	}
	if (!body_acceptable(c, r, &ret))
		return ret;
	if (wake_parse(r->body ? r->body : "", r->len, r->gen->cfg, key,
		       r->route == ROUTE_WAKE ? PGW_PUSH_CALL : PGW_PUSH_CANCEL, &r->wake, &err) != PGW_OK)
		return send_error(c, r, err.status, err.code, err.message);
	r->key = key;
	if (!wake_extension(r->wake) || !api->reg)
		return launch_wake(c, r, NULL, 0);
	/* the extension's devices: a registry read, on the registry queue */
	k = call_new(r, REG_LOOKUP);
	if (!k)
		return send_error(c, r, 500, "internal_error", "out of memory");
	snprintf(k->ext, sizeof k->ext, "%s", wake_extension(r->wake));
	budget = wake_lookup_budget_ms(r->wake);
	return call_start(c, r, k, budget > LOOKUP_MIN_MS ? budget : LOOKUP_MIN_MS);
}

static enum MHD_Result answer_lookup(struct MHD_Connection *c, request *r, const reg_call *k)
{
	if (!call_answered(k) || k->rc != PGW_OK)
		return call_failed(c, r, k, "extension: ");
	return launch_wake(c, r, k->devs, k->n);
}

static void format_time(int64_t ms, char *out, size_t n)
{
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&secs, &tm);
	strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static json_t *device_json(const registry_device *d, const pgw_config *cfg)
{
	char desc[64], when[32];
	pgw_target t;
	json_t *o = json_object();

	if (registry_device_target(d, cfg, &t) == PGW_OK) {
		target_describe(&t, desc, sizeof desc);
		target_clear(&t);
	} else {
		snprintf(desc, sizeof desc, "%s:…", d->provider == PGW_PROVIDER_APNS ? "apns" : "fcm");
	}
	format_time(d->updated_at_ms, when, sizeof when);
	json_object_set_new(o, "device_id", json_string(d->device_id));
	json_object_set_new(o, "extension", json_string(d->extension));
	json_object_set_new(o, "provider", json_string(d->provider == PGW_PROVIDER_APNS ? "apns" : "fcm"));
	json_object_set_new(o, "app", json_string(d->app));
	json_object_set_new(o, "target", json_string(desc));
	if (d->provider == PGW_PROVIDER_APNS) {
		json_object_set_new(o, "voip", json_boolean(d->token != NULL));
		json_object_set_new(o, "remote", json_boolean(d->remote_token != NULL));
		if (d->environment != PGW_ENV_UNSET)
			json_object_set_new(o, "environment",
					    json_string(d->environment == PGW_ENV_SANDBOX ? "sandbox" : "production"));
	}
	json_object_set_new(o, "updated_at", json_string(when));
	return o;
}


/* ---- registry routes: checked here, stored on the registry queue ---- */

static enum MHD_Result serve_device_put(struct MHD_Connection *c, request *r)
{
	const pgw_config *cfg = r->gen->cfg;
	enum MHD_Result ret = MHD_NO;
	const pgw_api_key *key = require_key(c, r, PGW_SCOPE_REGISTER, &ret);
	pgw_field_error ferr = {{0}, {0}};
	json_error_t jerr;
	json_t *doc;
	pgw_target t;
	reg_call *k;
	char msg[400];
	pgw_err rc;

	if (!key || !body_acceptable(c, r, &ret))
		return ret;
	doc = jsonr_load(r->body ? r->body : "", r->len, &jerr);
	if (!doc) {
		snprintf(msg, sizeof msg, "body: not valid JSON (%s at line %d, column %d)", jerr.text,
			 jerr.line, jerr.column);
		return send_error(c, r, 400, "invalid_request", msg);
	}
	if (!json_is_object(doc)) {
		json_decref(doc);
		return send_error(c, r, 400, "invalid_request", "body: expected one device object");
	}
	rc = target_from_json(doc, cfg, key, &t, &ferr);
	json_decref(doc);
	if (rc != PGW_OK) {
		snprintf(msg, sizeof msg, "%s: %s", ferr.field[0] ? ferr.field : "device", ferr.message);
		return send_error(c, r, rc == PGW_EAUTH ? 403 : 400,
				  rc == PGW_EAUTH ? "forbidden" : "invalid_request", msg);
	}
	r->key = key;
	k = call_new(r, REG_PUT);
	if (!k) {
		target_clear(&t);
		return send_error(c, r, 500, "internal_error", "out of memory");
	}
	k->target = t; /* the call's now */
	return call_start(c, r, k, REGISTRY_DEADLINE_MS);
}

/* The stored row comes back from the write itself: a read after it could
 * already miss the row if another request or replica moved the token away
 * in between. */
static enum MHD_Result answer_put(struct MHD_Connection *c, request *r, const reg_call *k)
{
	if (call_answered(k) && k->rc == PGW_EAUTH)
		return send_error(c, r, 403, "forbidden", FOREIGN_DEVICE);
	if (!call_answered(k) || k->rc != PGW_OK || !k->devs)
		return call_failed(c, r, k, "");
	metrics_count("pushgw_registrations_total", k->created ? "result=\"created\"" : "result=\"replaced\"", 1);
	return send_json(c, r, k->created ? 201 : 200, device_json(k->devs, r->gen->cfg));
}

/* GET and DELETE on the registry: no body. */
static enum MHD_Result serve_registry(struct MHD_Connection *c, request *r, const char *method)
{
	enum MHD_Result ret = MHD_NO;
	const pgw_api_key *key = require_key(c, r, PGW_SCOPE_REGISTER, &ret);
	bool delete = strcmp(method, "DELETE") == 0;
	reg_op op;
	reg_call *k;

	if (!key)
		return ret;
	if (r->route == ROUTE_DEVICES)
		op = REG_LIST;
	else if (r->route == ROUTE_DEVICE)
		op = delete ? REG_DELETE_DEVICE : REG_GET;
	else
		op = REG_DELETE_EXTENSION;
	r->key = key;
	k = call_new(r, op);
	if (!k)
		return send_error(c, r, 500, "internal_error", "out of memory");
	return call_start(c, r, k, REGISTRY_DEADLINE_MS);
}

/* The list, only the devices of apps the key may use. */
static enum MHD_Result answer_list(struct MHD_Connection *c, request *r, const reg_call *k)
{
	json_t *list = json_array();
	size_t i;

	for (i = 0; i < k->n; i++)
		if (registry_apps_allow(&k->apps, k->devs[i].app))
			json_array_append_new(list, device_json(&k->devs[i], r->gen->cfg));
	return send_json(c, r, 200, json_pack("{s:s,s:o}", "extension", r->ext, "devices", list));
}

/* One device, as its list entry shows it; a device of an app the key may
 * not use is not found, as the list leaves it out. The deletes check the
 * app inside the write (no check-then-act); a key limited to some apps
 * deleting an extension removes that extension's devices of those apps,
 * the ones its list shows, and leaves the others. */
static enum MHD_Result answer_registry(struct MHD_Connection *c, request *r, const reg_call *k)
{
	pgw_err rc = k->rc;

	if (!call_answered(k))
		return call_failed(c, r, k, "");
	if (k->op == REG_GET && rc == PGW_OK && !registry_apps_allow(&k->apps, k->devs->app))
		rc = PGW_ENOTFOUND;
	if (rc == PGW_ENOTFOUND)
		return send_error(c, r, 404, "not_found",
				  k->op == REG_DELETE_EXTENSION ? "no devices under this extension"
								: "no such device under this extension");
	if (rc == PGW_EAUTH)
		return send_error(c, r, 403, "forbidden", FOREIGN_DEVICE);
	if (rc != PGW_OK)
		return call_failed(c, r, k, "");
	switch (k->op) {
	case REG_LIST:
		return answer_list(c, r, k);
	case REG_GET:
		return send_json(c, r, 200, device_json(k->devs, r->gen->cfg));
	default:
		return send_body(c, r, 204, "application/json", strdup(""), 0);
	}
}

/* Resumed after a registry call: answer (or go on to the next step) by
 * what the call was for; the call is let go after. */
static enum MHD_Result on_call_done(struct MHD_Connection *c, request *r)
{
	reg_call *k = r->call;
	enum MHD_Result ret;

	r->call = NULL;
	switch (k->op) {
	case REG_PUT:
		ret = answer_put(c, r, k);
		break;
	case REG_LOOKUP:
		ret = answer_lookup(c, r, k);
		break;
	case REG_UPDATES:
		ret = answer_updates(c, r, k);
		break;
	default:
		ret = answer_registry(c, r, k);
	}
	/* after: a lookup's wake counts as in flight by now, so a drain
	 * never sees neither */
	call_unref(k);
	return ret;
}

static bool append_body(request *r, const char *data, size_t n, size_t max)
{
	if (r->too_large || r->len + n > max) {
		r->too_large = true;
		return true;
	}
	if (r->len + n + 1 > r->cap) {
		size_t cap = r->cap ? r->cap : 1024;
		while (cap < r->len + n + 1)
			cap *= 2;
		char *b = realloc(r->body, cap);
		if (!b)
			return false;
		r->body = b;
		r->cap = cap;
	}
	memcpy(r->body + r->len, data, n);
	r->len += n;
	r->body[r->len] = '\0';
	return true;
}

static bool method_fits(route rt, const char *method)
{
	const char *allowed = route_methods[rt];
	size_t n = strlen(method);
	const char *p;

	if (strcmp(method, "HEAD") == 0 && strstr(allowed, "GET"))
		return true;
	for (p = strstr(allowed, method); p; p = strstr(p + 1, method))
		if ((p == allowed || p[-1] == ' ') && (p[n] == '\0' || p[n] == ','))
			return true;
	return false;
}

static bool takes_body(route rt, const char *method)
{
	return rt == ROUTE_WAKE || rt == ROUTE_CANCEL || (rt == ROUTE_DEVICE && strcmp(method, "PUT") == 0);
}

/* mTLS: the peer sent a certificate that chains to tls.client_ca_file. */
static bool client_cert_valid(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	unsigned int status = 0, n = 0;
	gnutls_session_t session;

	if (!ci || !ci->tls_session)
		return false;
	session = (gnutls_session_t)ci->tls_session;
	if (!gnutls_certificate_get_peers(session, &n) || n == 0)
		return false;
	return gnutls_certificate_verify_peers2(session, &status) == 0 && status == 0;
}

/* First call for a request: route it; answer at once what needs nothing
 * more. What needs the registry is answered once the request is in. */
static enum MHD_Result on_first_call(struct MHD_Connection *c, request *r, const char *method)
{
	http_api *api = r->api;
	const char *cl;

	if (r->route == ROUTE_UNKNOWN)
		return send_error(c, r, 404, "not_found", "no such route");
	if (!method_fits(r->route, method)) {
		char msg[64];
		snprintf(msg, sizeof msg, "use %s", route_methods[r->route]);
		return send_error(c, r, 405, "method_not_allowed", msg);
	}
	/* probes and scrapes need no client cert */
	if (r->route == ROUTE_HEALTHZ)
		return send_text(c, r, 200, "ok\n");
	if (r->route > ROUTE_HEALTHZ)
		return MHD_YES;
	if (api->mtls && !client_cert_valid(c)) {
		pgw_log(PGW_LOG_WARN, "refused a client without a valid certificate", NULL);
		return MHD_NO; /* close: no answer for an unauthenticated peer */
	}
	if (atomic_load(&api->draining))
		return send_shutting_down(c, r);
	/* Key and scope before the body: a client without a key must not make
	 * the gateway buffer bodies (up to limits.max_body_bytes each). */
	{
		enum MHD_Result ret = MHD_NO;
		unsigned scope = r->route == ROUTE_WAKE || r->route == ROUTE_CANCEL ? PGW_SCOPE_WAKE
										   : PGW_SCOPE_REGISTER;
		if (!(r->authed = require_key(c, r, scope, &ret)))
			return ret;
	}
	if (r->bad_path)
		return send_error(c, r, 400, "invalid_request",
				  "path: extension and device_id are 1 to 128 characters of A-Z a-z 0-9 . _ ~ + @ : = - (URL-encoded)");
	if (r->route != ROUTE_WAKE && r->route != ROUTE_CANCEL && !api->reg)
		return send_error(c, r, 503, "registry_unavailable", "no registry is configured");
	if (!takes_body(r->route, method))
		return MHD_YES;
	cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl && strtoull(cl, NULL, 10) > r->gen->cfg->max_body_bytes)
		r->too_large = true; /* answered once the body is drained */
	return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **ctx)
{
	http_api *api = cls;
	request *r = *ctx;

	if (!r) {
		r = calloc(1, sizeof *r);
		if (!r)
			return MHD_NO;
		owed_add(api, OWED_REQUEST);
		r->api = api;
		r->gen = gen_acquire(api);
		r->conn = c;
		r->started_us = pgw_now_us();
		r->route = route_of(url, r);
		*ctx = r;
		if (!takes_body(r->route, method) && !watch_arm(api, c, 0))
			return MHD_NO; /* timed out as it came in */
		return on_first_call(c, r, method);
	}
	if (r->call)
		return on_call_done(c, r);
	if (r->wake_started) {
		int done = atomic_load(&r->wake_done);
		r->wake_started = false;
		if (done < 0) {
			atomic_fetch_sub(&api->wakes_in_flight, 1);
			return wake_not_started(c, r, done == -2 ? PGW_ESTATE : PGW_ENOMEM);
		}
		return finish_wake(c, r);
	}
	if (*upload_size > 0) {
		if (!append_body(r, upload, *upload_size, r->gen->cfg->max_body_bytes))
			return MHD_NO;
		*upload_size = 0;
		return MHD_YES;
	}
	if (!watch_arm(api, c, 0)) /* the request is in, unless too late */
		return MHD_NO;
	/* The body completed after SIGTERM: the loop may be gone by the time
	 * the work would reach it, so the answer is the drain's. */
	if (atomic_load(&api->draining) && r->route < ROUTE_HEALTHZ)
		return send_shutting_down(c, r);
	switch (r->route) {
	case ROUTE_READYZ:
	case ROUTE_METRICS:
		return serve_probe(c, r);
	case ROUTE_WAKE:
	case ROUTE_CANCEL:
		return start_wake(c, r);
	default:
		if (takes_body(r->route, method))
			return serve_device_put(c, r);
		return serve_registry(c, r, method);
	}
}

static void on_completed(void *cls, struct MHD_Connection *c, void **ctx,
			 enum MHD_RequestTerminationCode toe)
{
	request *r = *ctx;

	/* kept alive: the next request line must come within the wait */
	watch_arm(cls, c, WAIT_TIME_S);
	if (!r)
		return;
	if (r->call) /* answered already, but never read: closed meanwhile */
		call_unref(r->call);
	wake_free(r->wake);
	gen_release(r->gen);
	free(r->body);
	free(r);
	*ctx = NULL;
	owed_sub(cls, OWED_REQUEST);
}

static void on_mhd_error(void *cls, const char *fmt, va_list ap)
{
	char msg[256];

	vsnprintf(msg, sizeof msg, fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	pgw_log(PGW_LOG_WARN, "http server", "detail", msg, NULL);
}

static pgw_err make_addr(const pgw_config *cfg, struct sockaddr_storage *ss, bool *v6)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	const char *host = cfg->listen_host;

	memset(ss, 0, sizeof *ss);
	if (!host || !*host || strcmp(host, "*") == 0)
		host = "0.0.0.0";
	if (strcmp(host, "localhost") == 0)
		host = "127.0.0.1";
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)cfg->listen_port);
		*v6 = false;
		return PGW_OK;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)cfg->listen_port);
		*v6 = true;
		return PGW_OK;
	}
	return PGW_EINVAL;
}

/* Keep the path as it came: route_of() decodes each id on its own. */
static size_t keep_escapes(void *cls, struct MHD_Connection *c, char *s)
{
	return strlen(s);
}

/* TLS material for the daemon, read once at start. */
typedef struct tls_files {
	char *cert, *key, *ca;
} tls_files;

static void tls_files_clear(tls_files *t)
{
	if (t->key)
		memset(t->key, 0, strlen(t->key));
	free(t->key);
	free(t->cert);
	free(t->ca);
	memset(t, 0, sizeof *t);
}

static pgw_err tls_files_read(const pgw_config *cfg, tls_files *t, char *err, size_t errlen)
{
	memset(t, 0, sizeof *t);
	if (!cfg->tls_enabled)
		return PGW_OK;
	if (pgw_read_file(cfg->tls_cert_file, &t->cert, NULL) != PGW_OK ||
	    pgw_read_file(cfg->tls_key_file, &t->key, NULL) != PGW_OK ||
	    (cfg->tls_client_ca_file && pgw_read_file(cfg->tls_client_ca_file, &t->ca, NULL) != PGW_OK)) {
		snprintf(err, errlen, "%s: tls: cannot read cert_file, key_file or client_ca_file", cfg->path);
		tls_files_clear(t);
		return PGW_ECONFIG;
	}
	return PGW_OK;
}

static http_api *api_new(const http_api_deps *deps)
{
	http_api *api = calloc(1, sizeof *api);

	if (!api)
		return NULL;
	api->cfg = deps->cfg;
	api->loop = deps->loop;
	api->retire = deps->retire;
	api->retire_arg = deps->retire_arg;
	api->reg = deps->reg;
	api->cbs = deps->cbs;
	api->watch = deps->watch;
	api->current = calloc(1, sizeof *api->current);
	if (!api->current || ratelimit_new(&api->limits) != PGW_OK ||
	    ringer_new(deps->loop, RINGING_MAX, &api->ringer) != PGW_OK ||
	    registry_queue_new(REGISTRY_THREADS, REGISTRY_WAITING_MAX, &api->rq) != PGW_OK) {
		ratelimit_free(api->limits);
		ringer_free(api->ringer);
		free(api->current);
		free(api);
		return NULL;
	}
	pthread_mutex_init(&api->gen_lock, NULL);
	pthread_mutex_init(&api->watch_lock, NULL);
	pthread_cond_init(&api->watch_cv, NULL);
	api->current->cfg = deps->cfg;
	api->current->up = deps->up;
	api->current->api = api;
	atomic_store(&api->current->refs, 1);
	api->all = api->current;
	return api;
}

static void set_port(struct sockaddr_storage *ss, int port)
{
	if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
	else
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
}

/* The daemons share their port with SO_REUSEPORT, which would also let a
 * second gateway (same user) join it and take half the traffic unnoticed.
 * A plain bind first makes "address in use" an error as it should be, and
 * gives the port to use when the config says 0 (tests). */
static bool port_free(const struct sockaddr_storage *ss, bool v6, int *port)
{
	struct sockaddr_storage bound;
	socklen_t len = sizeof bound;
	int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	bool ok;

	if (fd < 0)
		return false;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one); /* TIME_WAIT is fine */
	ok = bind(fd, (const struct sockaddr *)ss,
		  v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in)) == 0 &&
	     getsockname(fd, (struct sockaddr *)&bound, &len) == 0;
	if (ok)
		*port = ntohs(v6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
				 : ((struct sockaddr_in *)&bound)->sin_port);
	close(fd);
	return ok;
}

static struct MHD_Daemon *start_daemon(http_api *api, unsigned flags, struct sockaddr_storage *ss,
				       struct MHD_OptionItem *tls)
{
	return MHD_start_daemon(
		flags, 0, NULL, NULL, on_request, api,
		MHD_OPTION_EXTERNAL_LOGGER, on_mhd_error, api,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)ss,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)(CONNECTION_LIMIT / WORKER_THREADS),
		MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)(PER_IP_CONNECTION_LIMIT / WORKER_THREADS),
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT_S,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HEADER_MEMORY,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, api,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, api,
		MHD_OPTION_URI_LOG_CALLBACK, on_request_line, api,
		MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
		MHD_OPTION_UNESCAPE_CALLBACK, keep_escapes, NULL,
		MHD_OPTION_ARRAY, tls,
		MHD_OPTION_END);
}

pgw_err http_api_start(const http_api_deps *deps, http_api **out, char *err, size_t errlen)
{
	const pgw_config *cfg = deps->cfg;
	struct sockaddr_storage ss;
	/* ITC: what MHD_quiesce_daemon() needs at shutdown */
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
			 MHD_USE_ERROR_LOG | MHD_USE_ITC;
	struct MHD_OptionItem tls[4] = {{MHD_OPTION_END, 0, NULL}};
	tls_files files;
	http_api *api;
	int nt = 0, i;
	bool v6, ok;

	if (make_addr(cfg, &ss, &v6) != PGW_OK) {
		snprintf(err, errlen, "%s: listen: expected an IP address, got \"%s\"", cfg->path,
			 cfg->listen_host);
		return PGW_ECONFIG;
	}
	if (v6)
		flags |= MHD_USE_IPv6;
	if (tls_files_read(cfg, &files, err, errlen) != PGW_OK)
		return PGW_ECONFIG;
	if (cfg->tls_enabled) {
		flags |= MHD_USE_TLS;
		tls[nt++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, files.cert};
		tls[nt++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, files.key};
		/* with a client CA, clients are asked for a certificate; the
		 * handler lets no /v1/ request through without a valid one */
		if (files.ca)
			tls[nt++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, files.ca};
	}
	api = api_new(deps);
	if (!api) {
		tls_files_clear(&files);
		return PGW_ENOMEM;
	}
	api->mtls = files.ca != NULL;
	ok = watchdog_start(api) && port_free(&ss, v6, &api->port);
	for (i = 0; ok && i < WORKER_THREADS; i++) {
		set_port(&ss, api->port); /* port 0: the one the probe was given */
		api->daemons[i] = start_daemon(api, flags, &ss, tls);
		ok = api->daemons[i] != NULL;
	}
	tls_files_clear(&files);
	if (!ok) {
		snprintf(err, errlen, "%s: listen: cannot listen on %s:%d%s", cfg->path, cfg->listen_host,
			 cfg->listen_port, cfg->tls_enabled ? " (address in use, or the tls files are not a usable PEM cert and key)" : " (address in use?)");
		for (i = 0; i < WORKER_THREADS; i++)
			if (api->daemons[i])
				MHD_stop_daemon(api->daemons[i]);
		watchdog_stop(api);
		registry_queue_free(api->rq);
		ratelimit_free(api->limits);
		ringer_free(api->ringer);
		pthread_cond_destroy(&api->watch_cv);
		pthread_mutex_destroy(&api->watch_lock);
		pthread_mutex_destroy(&api->gen_lock);
		free(api->current);
		free(api);
		return PGW_ECONFIG;
	}
	*out = api;
	return PGW_OK;
}

/* ---- call pushes that do not come over HTTP (the SIP edge) ---- */

/* One http_api_push_call(): owned by the loop from wake_start() to its
 * end, counted in owed (as an async wake) so a drain waits for it. */
typedef struct call_push {
	http_api *api;
	generation *gen;
	pgw_wake *wake;
	route route;
	int64_t started_us;
	http_api_push_done_fn done;
	void *arg;
} call_push;

static void call_push_free(call_push *cp)
{
	owed_sub(cp->api, OWED_ASYNC);
	atomic_fetch_sub(&cp->api->wakes_in_flight, 1);
	wake_free(cp->wake);
	gen_release(cp->gen);
	free(cp);
}

static void take_outcome(void *arg, const wake_result_view *v)
{
	http_api_push_outcome *o = arg;

	o->status = v->status;
	o->reason = v->reason;
	o->provider = v->provider;
}

/* A finished call push's dead tokens and learnt APNs hosts, for a registry
 * queue thread (the loop never waits for the registry). */
typedef struct call_updates {
	wake_updates *u;
	registry *reg;
} call_updates;

static void updates_work(void *arg)
{
	call_updates *cu = arg;

	wake_updates_apply(cu->u, cu->reg);
}

static void updates_finish(void *arg, bool timed_out)
{
}

static void updates_release(void *arg)
{
	call_updates *cu = arg;

	wake_updates_free(cu->u);
	free(cu);
}

/* Loop thread (or the thread stopping it): the push is final. */
static void on_call_push_done(void *arg)
{
	call_push *cp = arg;
	http_api_push_outcome o = {"failed", NULL, "apns"};
	wake_updates *u;

	wake_log(cp->wake);
	count_results(cp->route, cp->wake);
	record_wake(cp->route, cp->started_us);
	wake_each_result(cp->wake, take_outcome, &o);
	cp->done(cp->arg, &o);
	u = cp->api->reg && cp->api->rq ? wake_updates_new(cp->wake) : NULL;
	if (u) {
		call_updates *cu = malloc(sizeof *cu);
		if (cu) {
			cu->u = u;
			cu->reg = cp->api->reg;
		}
		if (!cu || registry_queue_submit(cp->api->rq, updates_work, updates_finish,
						 updates_release, cu,
						 pgw_now_ms() + UPDATES_DEADLINE_MS) != PGW_OK) {
			/* shutting down, full or out of memory: the token stays */
			wake_updates_free(u);
			free(cu);
		}
	}
	call_push_free(cp);
}

/* The /v1/wake (or /v1/cancel) body that names one Contact. */
static char *call_push_body(const http_api_push *p, size_t *len)
{
	jsonw w;

	jsonw_init(&w);
	jsonw_object_begin(&w);
	jsonw_key(&w, "devices");
	jsonw_array_begin(&w);
	jsonw_object_begin(&w);
	jsonw_kv_str(&w, "contact", p->contact);
	if (p->app)
		jsonw_kv_str(&w, "app", p->app);
	jsonw_object_end(&w);
	jsonw_array_end(&w);
	jsonw_key(&w, "call");
	jsonw_object_begin(&w);
	jsonw_kv_str(&w, "id", p->call_id);
	if (p->from)
		jsonw_kv_str(&w, "from", p->from);
	if (p->from_name)
		jsonw_kv_str(&w, "from_name", p->from_name);
	if (p->to)
		jsonw_kv_str(&w, "to", p->to);
	jsonw_object_end(&w);
	if (p->kind == PGW_PUSH_CANCEL && p->reason)
		jsonw_kv_str(&w, "reason", p->reason);
	if (p->ttl_s > 0)
		jsonw_kv_int(&w, "ttl", p->ttl_s);
	jsonw_object_end(&w);
	return jsonw_finish(&w, len);
}

pgw_err http_api_push_call(http_api *api, const http_api_push *p, http_api_push_done_fn done,
			   void *arg, char *why, size_t whylen)
{
	pgw_http_error err = {0};
	call_push *cp;
	wake_ring ring;
	size_t len = 0;
	char *body;
	pgw_err rc;

	if (!p->contact || !p->call_id || !*p->call_id) {
		snprintf(why, whylen, "a call push needs a contact and a call id");
		return PGW_EINVAL;
	}
	if (atomic_load(&api->draining)) {
		snprintf(why, whylen, "shutting down");
		return PGW_ESTATE;
	}
	cp = calloc(1, sizeof *cp);
	body = cp ? call_push_body(p, &len) : NULL;
	if (!body) {
		free(cp);
		snprintf(why, whylen, "out of memory");
		return PGW_ENOMEM;
	}
	cp->api = api;
	cp->gen = gen_acquire(api);
	cp->route = p->kind == PGW_PUSH_CANCEL ? ROUTE_CANCEL : ROUTE_WAKE;
	cp->started_us = pgw_now_us();
	cp->done = done;
	cp->arg = arg;
	owed_add(api, OWED_ASYNC);
	atomic_fetch_add(&api->wakes_in_flight, 1);
	rc = wake_parse(body, len, cp->gen->cfg, NULL, p->kind, &cp->wake, &err);
	free(body);
	if (rc == PGW_OK)
		rc = wake_resolve(cp->wake, NULL, 0, cp->gen->cfg, NULL, &err);
	if (rc != PGW_OK) {
		snprintf(why, whylen, "%s", err.message);
		call_push_free(cp);
		return rc == PGW_ENOMEM ? PGW_ENOMEM : PGW_EINVAL;
	}
	ring = ring_for(api, cp->gen);
	rc = wake_start(cp->wake, api->loop, cp->gen->up, &ring, on_call_push_done, cp);
	if (rc != PGW_OK) {
		snprintf(why, whylen, "%s", rc == PGW_ESTATE ? "shutting down" : "cannot reach the event loop");
		call_push_free(cp);
		return rc == PGW_ESTATE ? PGW_ESTATE : PGW_ENOMEM;
	}
	return PGW_OK;
}

bool http_api_drain(http_api *api, int grace_ms)
{
	int64_t until = pgw_now_ms() + grace_ms;

	atomic_store(&api->draining, true);
	while (atomic_load(&api->owed) > 0 && pgw_now_ms() < until)
		usleep(10000);
	return atomic_load(&api->owed) == 0;
}

void http_api_swap(http_api *api, const pgw_config *cfg, upstream *up)
{
	generation *g = calloc(1, sizeof *g), *old;

	if (!g) {
		api->retire(api->retire_arg, cfg, up);
		return;
	}
	g->cfg = cfg;
	g->up = up;
	g->api = api;
	atomic_store(&g->refs, 1);
	pthread_mutex_lock(&api->gen_lock);
	old = api->current;
	api->current = g;
	g->next = api->all;
	api->all = g;
	pthread_mutex_unlock(&api->gen_lock);
	gen_release(old);
}

void http_api_each_upstream(http_api *api, void (*fn)(upstream *up))
{
	generation *few[64], **held = few, *g;
	size_t n = 0, i;

	/* fn runs without the lock, each generation held meanwhile: shutting
	 * an upstream down ends pushes, which may release a generation (a
	 * ringing call's hold), and that takes the lock */
	pthread_mutex_lock(&api->gen_lock);
	for (g = api->all; g; g = g->next)
		n++;
	if (n > sizeof few / sizeof few[0] && !(held = calloc(n, sizeof *held))) {
		held = few; /* out of memory: the newest ones; the pool's end stops the rest */
		n = sizeof few / sizeof few[0];
	}
	for (g = api->all, i = 0; g && i < n; g = g->next, i++) {
		atomic_fetch_add(&g->refs, 1);
		held[i] = g;
	}
	pthread_mutex_unlock(&api->gen_lock);
	for (i = 0; i < n; i++)
		fn(held[i]->up);
	for (i = 0; i < n; i++)
		gen_release(held[i]);
	if (held != few)
		free(held);
}

void http_api_stop(http_api *api, int settle_ms)
{
	int64_t until = pgw_now_ms() + settle_ms;
	int i;

	if (!api || api->stopped)
		return;
	api->stopped = true;
	atomic_store(&api->draining, true);
	/* No new connections from here on: a client is refused at once (and
	 * tries another instance) rather than accepted and cut below. */
	for (i = 0; i < WORKER_THREADS; i++) {
		MHD_socket fd = api->daemons[i] ? MHD_quiesce_daemon(api->daemons[i]) : MHD_INVALID_SOCKET;
		if (fd != MHD_INVALID_SOCKET)
			close(fd);
	}
	/* Every request still waiting for the registry is answered now
	 * (libmicrohttpd must not be stopped with a connection suspended,
	 * and a client is owed an answer). Wakes cannot be left suspended
	 * either: the loop is stopped, so a wake that starts now is refused
	 * and answered at once. Stopping the daemons closes every
	 * connection, so first give those answers a moment to go out. */
	registry_queue_shutdown(api->rq);
	while (requests_open(api) > 0 && pgw_now_ms() < until)
		usleep(5000);
	for (i = 0; i < WORKER_THREADS; i++) {
		MHD_stop_daemon(api->daemons[i]);
		api->daemons[i] = NULL;
	}
	watchdog_stop(api);
	/* waits for a registry call still running; its generation goes back */
	registry_queue_free(api->rq);
	api->rq = NULL;
}

void http_api_free(http_api *api)
{
	generation *g, *next;

	if (!api)
		return;
	http_api_stop(api, 0);
	ratelimit_free(api->limits);
	ringer_free(api->ringer); /* releases the generations ringing calls held */
	/* every request is gone: hand back whatever generations remain */
	for (g = api->all; g; g = next) {
		next = g->next;
		api->retire(api->retire_arg, g->cfg, g->up);
		free(g);
	}
	pthread_cond_destroy(&api->watch_cv);
	pthread_mutex_destroy(&api->watch_lock);
	pthread_mutex_destroy(&api->gen_lock);
	free(api);
}

int http_api_port(const http_api *api)
{
	return api->port;
}
