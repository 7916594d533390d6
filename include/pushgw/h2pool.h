/* Pooled, pre-warmed HTTP/2 client connections over verified TLS (nghttp2 +
 * OpenSSL) on one evloop. An origin is one (https host:port, TLS client
 * credential); each keeps `connections` connections open from start-up,
 * multiplexes requests up to the peer's SETTINGS_MAX_CONCURRENT_STREAMS
 * (following every SETTINGS frame), grows to `max_connections` when every
 * stream is busy, queues beyond that, keeps connections alive with PING and
 * re-opens them on GOAWAY or loss, re-sending streams the server did not
 * process.
 * Threading: every function runs on the loop thread only (or from one thread
 * before evloop_start()); callbacks run on the loop thread. */
#ifndef PUSHGW_H2POOL_H
#define PUSHGW_H2POOL_H

#include <stddef.h>
#include <stdint.h>

#include "pushgw/err.h"
#include "pushgw/evloop.h"

typedef struct h2pool h2pool;
typedef struct h2_origin h2_origin;

typedef struct h2pool_opts {
	const char *ca_file;    /* extra trust anchors (PEM) or NULL; the system
	                           store is always used, host names always checked */
	int ping_interval_ms;   /* keep-alive PING period; 0 = 60000 */
	int ping_timeout_ms;    /* no PING ACK by then: connection replaced; 0 = 10000 */
	int connect_timeout_ms; /* TCP + TLS handshake bound; 0 = 10000 */
	int max_queue;          /* requests waiting per origin; 0 = 100000 */
} h2pool_opts;

typedef struct h2_origin_opts {
	const char *url;              /* "https://host[:port]" (path ignored) */
	const char *client_cert_file; /* PEM TLS client certificate or NULL */
	const char *client_key_file;  /* its key (PEM) or NULL */
	int connections;              /* opened at once and kept; >= 1 */
	int max_connections;          /* upper bound when all are busy; >= connections */
} h2_origin_opts;

typedef enum h2_result {
	H2_OK = 0,        /* a complete response (any :status) */
	H2_ERR_CONNECT,   /* no connection could be made (DNS, TCP, TLS, verify) */
	H2_ERR_REFUSED,   /* the server did not process it (GOAWAY above
	                     last-stream-id, REFUSED_STREAM) and it could not be
	                     re-sent before its deadline */
	H2_ERR_LOST,      /* connection lost or stream reset after the request
	                     was sent: the server may have processed it */
	H2_ERR_TIMEOUT,   /* deadline passed before a response */
	H2_ERR_OVERFLOW,  /* origin queue full */
	H2_ERR_SHUTDOWN,  /* pool freed */
	H2_ERR_CLIENT_CERT, /* no connection: the server refused our TLS client
	                       certificate (a certificate alert in the handshake) */
} h2_result;

const char *h2_result_str(h2_result r);

typedef struct h2_header {
	const char *name; /* lower-case */
	const char *value;
} h2_header;

typedef struct h2_response {
	h2_result result;
	int status; /* HTTP :status, 0 when result != H2_OK */
	uint64_t conn_id; /* the connection that answered (H2_OK), for
	                     h2pool_conn_recycle(); 0 when none */
	/* valid only during the callback */
	const h2_header *headers;
	size_t n_headers;
	const char *body; /* NUL-terminated (body_len excludes it); "" when none */
	size_t body_len;
	const char *error; /* human text when result != H2_OK, else NULL */
} h2_response;

/* Called exactly once per h2pool_send() that returned PGW_OK, on the loop
 * thread, never from inside h2pool_send() itself. */
typedef void (*h2_response_fn)(void *arg, const h2_response *resp);

typedef struct h2_request {
	const char *method; /* "POST" */
	const char *path;   /* "/3/device/…" */
	const h2_header *headers; /* extra headers (lower-case names) */
	size_t n_headers;
	const char *body;
	size_t body_len;
	int64_t deadline_ms; /* pgw_now_ms() clock; the callback comes no later
	                        than this (H2_ERR_TIMEOUT); 0 = none */
	h2_response_fn cb;
	void *arg;
} h2_request;

typedef struct h2_origin_stats {
	int connections_open;   /* ready connections */
	int streams_active;     /* streams in flight over all connections */
	int queued;             /* requests waiting for a stream */
	uint64_t handshakes;    /* TLS handshakes completed since start */
	uint64_t connect_failures;
	uint64_t requests_sent; /* HEADERS frames sent, re-sends included */
	uint64_t goaways;
} h2_origin_stats;

/* Caller frees with h2pool_free(). */
pgw_err h2pool_new(evloop *loop, const h2pool_opts *opts, h2pool **out);
/* Closes every connection; pending requests get H2_ERR_SHUTDOWN. Accepts NULL.
 * On the loop thread, or after the loop stopped. */
void h2pool_free(h2pool *pool);

/* Create an origin and start opening its connections (asynchronously: this
 * does not wait). PGW_EINVAL for a bad URL, PGW_ETLS when the client
 * certificate/key or CA file cannot be loaded. The origin belongs to the pool. */
pgw_err h2pool_origin_open(h2pool *pool, const h2_origin_opts *opts, h2_origin **out);

/* Queue one request; strings, headers and body are copied. PGW_OK means the
 * callback will come exactly once. */
pgw_err h2pool_send(h2_origin *origin, const h2_request *req);

void h2pool_origin_stats(const h2_origin *origin, h2_origin_stats *out);

/* Close the connection conn_id (h2_response.conn_id) with GOAWAY once its
 * streams are done and open a fresh one in its place; the origin's other
 * connections stay (APNs "Shutdown" and TooManyProviderTokenUpdates are about
 * the connection that answered). Nothing happens when that connection is
 * already closed or closing. */
void h2pool_conn_recycle(h2_origin *origin, uint64_t conn_id);

#endif
