/* One client HTTP/2 connection over verified TLS, internal to h2pool:
 * non-blocking connect, TLS handshake, nghttp2 session, PING keep-alive and
 * graceful drain. It knows nothing of queues or origins: its owner submits
 * streams and hears about readiness, stream ends and closing through
 * h2conn_events. Threading: loop thread only. */
#ifndef PUSHGW_H2CONN_H
#define PUSHGW_H2CONN_H

#include <netdb.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pushgw/err.h"
#include "pushgw/evloop.h"

typedef struct h2conn h2conn;
typedef struct h2conn_stream h2conn_stream;

/* Largest response body kept; the rest is read and dropped (truncated). */
#define H2CONN_BODY_MAX (64 * 1024)

/* Where one stream's response is collected. Owned by whoever called
 * h2conn_submit(); the connection fills it until the stream ends or is
 * cancelled. Zero-initialise before use, release with h2conn_sink_clear(). */
typedef struct h2conn_sink {
	int status;
	char *hdrs;      /* n_headers "name\0value\0" pairs */
	size_t hdrs_len, hdrs_cap;
	size_t n_headers;
	char *body;      /* NUL-terminated when non-NULL */
	size_t body_len, body_cap;
	bool truncated;
} h2conn_sink;

/* Frees the sink's buffers (not the sink) and zeroes it. */
void h2conn_sink_clear(h2conn_sink *s);

typedef enum h2conn_end {
	H2CONN_END_DONE,    /* a complete response is in the sink */
	H2CONN_END_REFUSED, /* the server did not process it: safe to send again */
	H2CONN_END_LOST,    /* reset, or the connection went away after sending */
} h2conn_end;

/* Reported to the owner. Only stream_end and headers_sent run from inside
 * nghttp2 callbacks, so they must not submit streams; the others run at top
 * level and may submit. closed() is the last call: the connection frees
 * itself right after it returns. */
typedef struct h2conn_events {
	void (*ready)(void *owner, h2conn *c);    /* server SETTINGS seen */
	void (*capacity)(void *owner, h2conn *c); /* a stream closed or SETTINGS changed */
	void (*goaway)(void *owner, h2conn *c, uint32_t error_code);
	void (*headers_sent)(void *owner, h2conn *c);
	void (*stream_end)(void *owner, h2conn *c, void *stream_arg, h2conn_end end,
			   const char *why);
	void (*closed)(void *owner, h2conn *c, bool was_ready, bool clean, const char *why);
} h2conn_events;

typedef struct h2conn_opts {
	const char *host;    /* SNI and certificate name (or IP) check; copied */
	bool host_is_ip;
	const char *label;   /* "host:port" for logs; copied */
	int connect_timeout_ms; /* from h2conn_new() to ready */
	int ping_interval_ms;
	int ping_timeout_ms;
} h2conn_opts;

/* Creates a connection waiting for addresses (state: resolving) and starts
 * the connect timer. ctx is borrowed and must outlive the connection. The
 * connection frees itself after reporting closed(); h2conn_free() ends it
 * early without any events. */
pgw_err h2conn_new(evloop *loop, SSL_CTX *ctx, const h2conn_opts *opts,
		   const h2conn_events *ev, void *owner, h2conn **out);

/* Connect to the first address that answers. Takes ownership of ai
 * (freeaddrinfo). Top level only: may report closed(). */
void h2conn_connect(h2conn *c, struct addrinfo *ai);

/* Give up (resolution failed): reports closed() and frees c. Top level only. */
void h2conn_abort(h2conn *c, const char *why);

/* Silent teardown: no events; the owner deals with its own streams. Accepts NULL. */
void h2conn_free(h2conn *c);

bool h2conn_is_ready(const h2conn *c);      /* takes new streams */
bool h2conn_is_connecting(const h2conn *c); /* not ready yet, not closing */
bool h2conn_is_draining(const h2conn *c);
/* The server refused our TLS client certificate (or asked for one we did not
 * have) with a certificate alert before the connection was ready. Meaningful
 * in closed(). */
bool h2conn_credential_refused(const h2conn *c);
/* Streams the peer would accept now: its SETTINGS_MAX_CONCURRENT_STREAMS
 * minus streams open; 0 when not ready. */
int h2conn_free_streams(const h2conn *c);
int h2conn_open_streams(const h2conn *c);

/* Stop taking streams; send GOAWAY and close once open streams are done.
 * Safe anywhere: the close happens later from the loop. */
void h2conn_drain(h2conn *c);

/* Open a stream. nva is copied; body and sink are borrowed until the stream
 * ends (stream_end) or h2conn_cancel(). On failure the connection stops
 * taking streams (it drains) and the caller keeps its request. Not from
 * inside stream_end/headers_sent. */
pgw_err h2conn_submit(h2conn *c, const nghttp2_nv *nva, size_t nnv, const char *body,
		      size_t body_len, h2conn_sink *sink, void *stream_arg, h2conn_stream **out);

/* Reset the stream with CANCEL and forget its arg, body and sink: no
 * stream_end follows. */
void h2conn_cancel(h2conn *c, h2conn_stream *s);

#endif
