/* One HTTP/2 client connection: TCP connect, TLS through memory BIOs (we own
 * the socket: MSG_NOSIGNAL, one send per loop iteration), nghttp2 session,
 * PING keep-alive and drain. Threading: loop thread only. */
#include "pushgw/h2conn.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pushgw/log.h"
#include "pushgw/util.h"

#define CONN_READ_CHUNK 16384
#define CONN_READ_BUDGET (1024 * 1024) /* bytes per wake-up, then let others run */
#define CONN_PLAIN_MAX 16384           /* one full TLS record of frames */
#define CONN_OUT_HIGH (256 * 1024)     /* unsent bytes before we stop pulling frames */
#define CONN_STREAM_WINDOW (1 << 20)
#define CONN_SESSION_WINDOW (1 << 24)
#define CONN_HDRS_MAX (16 * 1024)

enum conn_state {
	ST_RESOLVING,
	ST_CONNECTING,    /* TCP */
	ST_HANDSHAKING,   /* TLS */
	ST_WAIT_SETTINGS, /* h2 preface sent, server SETTINGS not seen yet */
	ST_READY,
	ST_CLOSED,
};

struct h2conn_stream {
	h2conn_stream *prev, *next;
	int32_t id;
	void *arg; /* NULL once cancelled: nothing is reported for it any more */
	h2conn_sink *sink;
	const char *body;
	size_t body_len, body_off;
	bool headers_sent;
	bool complete; /* END_STREAM received */
};

struct h2conn {
	evloop *loop;
	SSL_CTX *ctx;
	const h2conn_events *ev;
	void *owner;
	char *host;
	char *label;
	bool host_is_ip;
	int connect_timeout_ms;
	int ping_interval_ms;
	int ping_timeout_ms;

	enum conn_state state;
	int fd;
	uint32_t io_events;
	struct addrinfo *ai, *ai_next;
	int connect_errno;
	SSL *ssl;
	BIO *rbio, *wbio; /* owned by ssl */
	nghttp2_session *session;

	unsigned char plain[CONN_PLAIN_MAX]; /* frames waiting to be sealed */
	size_t plain_len;
	unsigned char *out; /* sealed bytes waiting for the socket */
	size_t out_off, out_len, out_cap;

	h2conn_stream *streams_head, *streams_tail;
	int n_streams;

	evloop_timer *connect_timer;
	evloop_timer *settle_timer;
	evloop_timer *ping_timer;
	evloop_timer *ping_timeout_timer;
	int64_t last_recv_ms;

	bool was_ready;
	bool draining;
	bool goaway_sent;
	bool in_settle; /* submits inside settle are flushed by it, no timer */
	bool peer_eof;
	bool dead;
	bool clean;
	bool cred_refused; /* the server answered our client certificate with an alert */
	bool report_ready, report_capacity, report_goaway;
	uint32_t goaway_code;
	int32_t goaway_last_id;
	char why[200];
};

static void conn_settle(h2conn *c);

/* ---- sink ---- */

void h2conn_sink_clear(h2conn_sink *s)
{
	free(s->hdrs);
	free(s->body);
	memset(s, 0, sizeof *s);
}

static bool grow(char **buf, size_t *cap, size_t need)
{
	size_t n = *cap ? *cap : 256;
	char *p;

	if (need <= *cap)
		return true;
	while (n < need)
		n *= 2;
	p = realloc(*buf, n);
	if (!p)
		return false;
	*buf = p;
	*cap = n;
	return true;
}

static void sink_add_header(h2conn_sink *s, const uint8_t *name, size_t nlen,
			    const uint8_t *value, size_t vlen)
{
	size_t need = s->hdrs_len + nlen + vlen + 2;

	if (need > CONN_HDRS_MAX || !grow(&s->hdrs, &s->hdrs_cap, need)) {
		s->truncated = true;
		return;
	}
	memcpy(s->hdrs + s->hdrs_len, name, nlen);
	s->hdrs_len += nlen;
	s->hdrs[s->hdrs_len++] = '\0';
	memcpy(s->hdrs + s->hdrs_len, value, vlen);
	s->hdrs_len += vlen;
	s->hdrs[s->hdrs_len++] = '\0';
	s->n_headers++;
}

static void sink_add_body(h2conn_sink *s, const uint8_t *data, size_t len)
{
	if (s->body_len + len > H2CONN_BODY_MAX) {
		len = H2CONN_BODY_MAX - s->body_len;
		s->truncated = true;
	}
	if (len == 0 || !grow(&s->body, &s->body_cap, s->body_len + len + 1))
		return;
	memcpy(s->body + s->body_len, data, len);
	s->body_len += len;
	s->body[s->body_len] = '\0';
}

/* ---- small helpers ---- */

/* The first reason wins: later ones are consequences. */
static void conn_fail(h2conn *c, const char *fmt, ...)
{
	va_list ap;

	if (c->dead)
		return;
	c->dead = true;
	c->clean = false;
	va_start(ap, fmt);
	vsnprintf(c->why, sizeof c->why, fmt, ap);
	va_end(ap);
}

static void conn_finish_clean(h2conn *c, const char *why)
{
	if (c->dead)
		return;
	c->dead = true;
	c->clean = true;
	snprintf(c->why, sizeof c->why, "%s", why);
}

/* Alerts only the verifier of a certificate sends. Our side verifies the
 * server's, so one received from the server is about our client
 * certificate (or its absence): a credential problem, not the network. */
static bool peer_refused_our_cert(unsigned long e)
{
	if (ERR_GET_LIB(e) != ERR_LIB_SSL)
		return false;
	switch (ERR_GET_REASON(e)) {
	case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
	case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
	case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
	case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
	case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
		return true;
	}
	return false;
}

static void tls_error_text(h2conn *c, char *buf, size_t n)
{
	long vr = c->ssl ? SSL_get_verify_result(c->ssl) : X509_V_OK;
	unsigned long e = ERR_peek_last_error();

	if (vr != X509_V_OK) {
		snprintf(buf, n, "certificate verify failed: %s", X509_verify_cert_error_string(vr));
		return;
	}
	if (e) {
		/* TLS 1.3 settles the client certificate after our Finished, so
		 * the refusal can come on the first read rather than the handshake */
		if (!c->was_ready && !c->dead && peer_refused_our_cert(e))
			c->cred_refused = true;
		ERR_error_string_n(e, buf, n);
		return;
	}
	snprintf(buf, n, "TLS error");
}

static void settle_fire(void *arg)
{
	h2conn *c = arg;
	c->settle_timer = NULL;
	conn_settle(c);
}

/* Settle on the next loop iteration; used when we are not inside one of our
 * own callbacks (submit, cancel, drain from the owner's timers). */
static void conn_schedule_settle(h2conn *c)
{
	if (c->in_settle || c->settle_timer || c->state == ST_CLOSED)
		return;
	c->settle_timer = evloop_timer_add(c->loop, 0, settle_fire, c);
}

static void stream_unlink(h2conn *c, h2conn_stream *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		c->streams_head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	else
		c->streams_tail = s->prev;
	s->prev = s->next = NULL;
	c->n_streams--;
}

static void stream_link(h2conn *c, h2conn_stream *s)
{
	s->prev = c->streams_tail;
	s->next = NULL;
	if (c->streams_tail)
		c->streams_tail->next = s;
	else
		c->streams_head = s;
	c->streams_tail = s;
	c->n_streams++;
}

/* ---- socket and TLS byte pumps ---- */

static void conn_set_interest(h2conn *c)
{
	uint32_t want;

	if (c->fd < 0)
		return;
	if (c->state == ST_CONNECTING)
		want = EPOLLOUT;
	else
		want = EPOLLIN | (c->out_len > c->out_off ? EPOLLOUT : 0);
	if (want == c->io_events)
		return;
	if (evloop_io_mod(c->loop, c->fd, want) != PGW_OK) {
		conn_fail(c, "epoll: cannot watch the socket");
		return;
	}
	c->io_events = want;
}

/* Move what TLS produced into the outgoing buffer. */
static void conn_take_tls_output(h2conn *c)
{
	size_t pending = BIO_ctrl_pending(c->wbio);
	size_t unsent;
	int n;

	if (pending == 0)
		return;
	unsent = c->out_len - c->out_off;
	if (c->out_off > 0) {
		memmove(c->out, c->out + c->out_off, unsent);
		c->out_off = 0;
		c->out_len = unsent;
	}
	if (!grow((char **)&c->out, &c->out_cap, c->out_len + pending)) {
		conn_fail(c, "out of memory");
		return;
	}
	n = BIO_read(c->wbio, c->out + c->out_len, (int)pending);
	if (n > 0)
		c->out_len += (size_t)n;
}

static void conn_send(h2conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL);
		if (n > 0) {
			c->out_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		conn_fail(c, "send: %s", strerror(errno));
		return;
	}
	c->out_off = c->out_len = 0;
}

static void conn_recv(h2conn *c)
{
	unsigned char buf[CONN_READ_CHUNK];
	size_t budget = CONN_READ_BUDGET;

	while (budget > 0) {
		ssize_t n = recv(c->fd, buf, sizeof buf, 0);
		if (n > 0) {
			if (BIO_write(c->rbio, buf, (int)n) != (int)n) {
				conn_fail(c, "out of memory");
				return;
			}
			c->last_recv_ms = pgw_now_ms();
			/* A short read drained the socket: skip the recv that would
			 * only say EAGAIN (epoll is level-triggered and reports
			 * whatever arrives after this). */
			if ((size_t)n < sizeof buf)
				return;
			budget -= (size_t)n < budget ? (size_t)n : budget;
			continue;
		}
		if (n == 0) {
			c->peer_eof = true;
			return;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			conn_fail(c, "recv: %s", strerror(errno));
		return;
	}
}

static void conn_seal(h2conn *c)
{
	int n;

	if (c->plain_len == 0)
		return;
	ERR_clear_error();
	n = SSL_write(c->ssl, c->plain, (int)c->plain_len);
	c->plain_len = 0;
	if (n <= 0) {
		char e[160];
		tls_error_text(c, e, sizeof e);
		conn_fail(c, "tls write: %s", e);
		return;
	}
	conn_take_tls_output(c);
}

/* Gather frames into full TLS records: hundreds of small HEADERS frames
 * become a few records and one send(). True when it stopped only because
 * enough bytes were waiting for the socket. */
static bool conn_pull_frames(h2conn *c)
{
	bool full = false;

	while (!c->dead) {
		const uint8_t *data;
		ssize_t n;

		if (c->out_len - c->out_off >= CONN_OUT_HIGH) {
			full = true;
			break;
		}
		n = nghttp2_session_mem_send(c->session, &data);
		if (n < 0) {
			conn_fail(c, "http2: %s", nghttp2_strerror((int)n));
			return false;
		}
		if (n == 0)
			break;
		while (n > 0 && !c->dead) {
			size_t room = CONN_PLAIN_MAX - c->plain_len;
			size_t take = (size_t)n < room ? (size_t)n : room;
			memcpy(c->plain + c->plain_len, data, take);
			c->plain_len += take;
			data += take;
			n -= (ssize_t)take;
			if (c->plain_len == CONN_PLAIN_MAX)
				conn_seal(c);
		}
	}
	conn_seal(c);
	return full;
}

static void conn_flush(h2conn *c)
{
	bool more;

	do {
		more = c->session && conn_pull_frames(c);
		if (c->dead)
			return;
		conn_take_tls_output(c);
		conn_send(c);
	} while (more && !c->dead && c->out_len == 0);
	conn_set_interest(c);
}

/* ---- nghttp2 callbacks (no owner call here may submit streams) ---- */

static h2conn_stream *stream_of(nghttp2_session *session, int32_t id)
{
	return nghttp2_session_get_stream_user_data(session, id);
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
	h2conn *c = user_data;
	h2conn_stream *s;

	switch (frame->hd.type) {
	case NGHTTP2_SETTINGS:
		if (frame->hd.flags & NGHTTP2_FLAG_ACK)
			break;
		if (c->state == ST_WAIT_SETTINGS) {
			c->state = ST_READY;
			c->report_ready = true;
		}
		c->report_capacity = true;
		break;
	case NGHTTP2_GOAWAY:
		c->draining = true;
		c->report_goaway = true;
		c->goaway_code = frame->goaway.error_code;
		c->goaway_last_id = frame->goaway.last_stream_id;
		break;
	case NGHTTP2_PING:
		if ((frame->hd.flags & NGHTTP2_FLAG_ACK) && c->ping_timeout_timer) {
			evloop_timer_cancel(c->loop, c->ping_timeout_timer);
			c->ping_timeout_timer = NULL;
		}
		break;
	case NGHTTP2_HEADERS:
	case NGHTTP2_DATA:
		s = stream_of(session, frame->hd.stream_id);
		if (s && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
			s->complete = true;
		break;
	default:
		break;
	}
	return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
		     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
		     void *user_data)
{
	h2conn_stream *s;

	if (frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	s = stream_of(session, frame->hd.stream_id);
	if (!s || !s->sink)
		return 0;
	if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
		int status = 0;
		for (size_t i = 0; i < valuelen && i < 3; i++)
			status = status * 10 + (value[i] - '0');
		s->sink->status = status;
		return 0;
	}
	if (namelen > 0 && name[0] == ':')
		return 0;
	sink_add_header(s->sink, name, namelen, value, valuelen);
	return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
			 const uint8_t *data, size_t len, void *user_data)
{
	h2conn_stream *s = stream_of(session, stream_id);

	if (s && s->sink)
		sink_add_body(s->sink, data, len);
	return 0;
}

static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
	h2conn *c = user_data;
	h2conn_stream *s;

	if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	s = stream_of(session, frame->hd.stream_id);
	if (!s)
		return 0;
	s->headers_sent = true;
	if (s->arg)
		c->ev->headers_sent(c->owner, c);
	return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
			   void *user_data)
{
	h2conn *c = user_data;
	h2conn_stream *s = stream_of(session, stream_id);
	char why[96];

	if (!s)
		return 0;
	stream_unlink(c, s);
	c->report_capacity = true;
	if (s->arg) {
		h2conn_end end = H2CONN_END_LOST;
		if (error_code == NGHTTP2_NO_ERROR && s->complete && s->sink->status > 0)
			end = H2CONN_END_DONE;
		else if (error_code == NGHTTP2_REFUSED_STREAM)
			end = H2CONN_END_REFUSED;
		/* text only for failures: this runs once per push */
		if (end != H2CONN_END_DONE)
			snprintf(why, sizeof why, "stream closed: %s",
				 nghttp2_http2_strerror(error_code));
		c->ev->stream_end(c->owner, c, s->arg, end, end == H2CONN_END_DONE ? NULL : why);
	}
	free(s);
	return 0;
}

static ssize_t body_read(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
			 size_t length, uint32_t *data_flags, nghttp2_data_source *source,
			 void *user_data)
{
	h2conn_stream *s = source->ptr;
	size_t n;

	/* cancelled: its RST_STREAM is queued and will close it */
	if (!s->body)
		return NGHTTP2_ERR_DEFERRED;
	n = s->body_len - s->body_off;
	if (n > length)
		n = length;
	memcpy(buf, s->body + s->body_off, n);
	s->body_off += n;
	if (s->body_off == s->body_len)
		*data_flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

/* ---- session set-up ---- */

static pgw_err conn_session_new(h2conn *c)
{
	nghttp2_session_callbacks *cbs;
	nghttp2_settings_entry iv[] = {
		{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
		{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, CONN_STREAM_WINDOW},
		{NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 64 * 1024},
	};
	int rv;

	if (nghttp2_session_callbacks_new(&cbs) != 0)
		return PGW_ENOMEM;
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
	nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
	nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
	rv = nghttp2_session_client_new(&c->session, cbs, c);
	nghttp2_session_callbacks_del(cbs);
	if (rv != 0)
		return PGW_ENOMEM;
	if (nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]) != 0 ||
	    nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0,
						  CONN_SESSION_WINDOW) != 0)
		return PGW_ENOMEM;
	return PGW_OK;
}

/* ---- reading ---- */

static void conn_tls_read(h2conn *c)
{
	unsigned char buf[CONN_READ_CHUNK];

	while (!c->dead) {
		char e[160];
		int n, err;

		ERR_clear_error();
		n = SSL_read(c->ssl, buf, sizeof buf);
		if (n > 0) {
			ssize_t used = nghttp2_session_mem_recv(c->session, buf, (size_t)n);
			if (used < 0)
				conn_fail(c, "http2: %s", nghttp2_strerror((int)used));
			continue;
		}
		err = SSL_get_error(c->ssl, n);
		if (err == SSL_ERROR_WANT_READ)
			break;
		if (err == SSL_ERROR_ZERO_RETURN) {
			c->peer_eof = true;
			break;
		}
		tls_error_text(c, e, sizeof e);
		conn_fail(c, "tls read: %s", e);
	}
	/* TLS may answer on its own (key updates) */
	conn_take_tls_output(c);
}

static void conn_tls_established(h2conn *c)
{
	const unsigned char *alpn = NULL;
	unsigned int alpn_len = 0;

	SSL_get0_alpn_selected(c->ssl, &alpn, &alpn_len);
	if (alpn_len != 2 || memcmp(alpn, "h2", 2) != 0) {
		conn_fail(c, "server did not negotiate HTTP/2 (ALPN h2)");
		return;
	}
	if (conn_session_new(c) != PGW_OK) {
		conn_fail(c, "out of memory");
		return;
	}
	c->state = ST_WAIT_SETTINGS;
	conn_tls_read(c); /* the server's SETTINGS may have come with the handshake */
}

static void conn_handshake(h2conn *c)
{
	int rc, err;
	char e[160];

	ERR_clear_error();
	rc = SSL_do_handshake(c->ssl);
	conn_take_tls_output(c);
	if (rc == 1) {
		conn_tls_established(c);
		return;
	}
	err = SSL_get_error(c->ssl, rc);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
		return;
	tls_error_text(c, e, sizeof e);
	conn_fail(c, "tls handshake: %s", e);
}

static void conn_tls_start(h2conn *c)
{
	c->ssl = SSL_new(c->ctx);
	c->rbio = BIO_new(BIO_s_mem());
	c->wbio = BIO_new(BIO_s_mem());
	if (!c->ssl || !c->rbio || !c->wbio) {
		BIO_free(c->rbio);
		BIO_free(c->wbio);
		c->rbio = c->wbio = NULL;
		conn_fail(c, "out of memory");
		return;
	}
	BIO_set_mem_eof_return(c->rbio, -1); /* empty means "wait", not EOF */
	SSL_set_bio(c->ssl, c->rbio, c->wbio);
	if (c->host_is_ip) {
		if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), c->host) != 1) {
			conn_fail(c, "bad IP address %s", c->host);
			return;
		}
	} else {
		SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (SSL_set_tlsext_host_name(c->ssl, c->host) != 1 || SSL_set1_host(c->ssl, c->host) != 1) {
			conn_fail(c, "bad host name %s", c->host);
			return;
		}
	}
	SSL_set_connect_state(c->ssl);
	c->state = ST_HANDSHAKING;
	conn_handshake(c);
}

/* ---- connecting ---- */

static void conn_on_io(void *arg, uint32_t events);

static void conn_close_socket(h2conn *c)
{
	if (c->fd < 0)
		return;
	evloop_io_del(c->loop, c->fd);
	close(c->fd);
	c->fd = -1;
	c->io_events = 0;
}

static void conn_try_next_address(h2conn *c)
{
	while (c->ai_next) {
		struct addrinfo *a = c->ai_next;
		int one = 1;
		int fd;

		c->ai_next = a->ai_next;
		fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			c->connect_errno = errno;
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0 || errno == EINPROGRESS) {
			if (evloop_io_add(c->loop, fd, EPOLLOUT, conn_on_io, c) != PGW_OK) {
				close(fd);
				conn_fail(c, "epoll: cannot watch the socket");
				return;
			}
			c->fd = fd;
			c->io_events = EPOLLOUT;
			c->state = ST_CONNECTING;
			return;
		}
		c->connect_errno = errno;
		close(fd);
	}
	conn_fail(c, "connect: %s", strerror(c->connect_errno ? c->connect_errno : EHOSTUNREACH));
}

static void conn_on_connected(h2conn *c)
{
	int err = 0;
	socklen_t len = sizeof err;

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err != 0) {
		c->connect_errno = err;
		conn_close_socket(c);
		conn_try_next_address(c);
		return;
	}
	conn_tls_start(c);
}

/* ---- keep-alive ---- */

static void ping_timeout_fire(void *arg)
{
	h2conn *c = arg;

	c->ping_timeout_timer = NULL;
	conn_fail(c, "no PING ACK within %d ms", c->ping_timeout_ms);
	conn_settle(c);
}

static void ping_fire(void *arg)
{
	h2conn *c = arg;
	int64_t now = pgw_now_ms();

	c->ping_timer = evloop_timer_add(c->loop, c->ping_interval_ms, ping_fire, c);
	/* only an idle connection needs proof of life */
	if (c->ping_timeout_timer || now - c->last_recv_ms < c->ping_interval_ms)
		return;
	if (nghttp2_submit_ping(c->session, NGHTTP2_FLAG_NONE, NULL) != 0)
		return;
	c->ping_timeout_timer = evloop_timer_add(c->loop, c->ping_timeout_ms, ping_timeout_fire, c);
	conn_settle(c);
}

static void connect_timeout_fire(void *arg)
{
	h2conn *c = arg;

	c->connect_timer = NULL;
	conn_fail(c, "connect timeout after %d ms", c->connect_timeout_ms);
	conn_settle(c);
}

/* ---- settling: report, flush, maybe close ---- */

static void conn_report_ready(h2conn *c)
{
	char streams[16];

	c->was_ready = true;
	evloop_timer_cancel(c->loop, c->connect_timer);
	c->connect_timer = NULL;
	c->ping_timer = evloop_timer_add(c->loop, c->ping_interval_ms, ping_fire, c);
	snprintf(streams, sizeof streams, "%u",
		 nghttp2_session_get_remote_settings(c->session,
						     NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS));
	pgw_log(PGW_LOG_INFO, "upstream connected", "origin", c->label, "tls",
		SSL_get_version(c->ssl), "max_streams", streams, NULL);
	c->ev->ready(c->owner, c);
}

static void conn_report(h2conn *c)
{
	if (c->report_ready && !c->dead) {
		c->report_ready = false;
		conn_report_ready(c);
	}
	if (c->report_goaway && !c->dead) {
		char last[16];
		c->report_goaway = false;
		snprintf(last, sizeof last, "%d", c->goaway_last_id);
		pgw_log(c->goaway_code ? PGW_LOG_WARN : PGW_LOG_INFO, "upstream goaway", "origin",
			c->label, "error", nghttp2_http2_strerror(c->goaway_code),
			"last_stream_id", last, NULL);
		c->ev->goaway(c->owner, c, c->goaway_code);
	}
	if (c->report_capacity && !c->dead && c->was_ready) {
		c->report_capacity = false;
		c->ev->capacity(c->owner, c);
	}
}

/* A draining connection says GOAWAY once its streams are done, then leaves. */
static void conn_check_finished(h2conn *c)
{
	if (!c->session)
		return;
	if (c->draining && c->n_streams == 0) {
		if (!c->goaway_sent) {
			c->goaway_sent = true;
			nghttp2_session_terminate_session(c->session, NGHTTP2_NO_ERROR);
			conn_flush(c);
		}
		if (!c->dead && c->out_len == c->out_off && !nghttp2_session_want_write(c->session))
			conn_finish_clean(c, "drained");
		return;
	}
	if (!nghttp2_session_want_read(c->session) && !nghttp2_session_want_write(c->session))
		conn_fail(c, "session ended");
}

static void conn_log_close(h2conn *c)
{
	if (!c->was_ready)
		pgw_log(PGW_LOG_WARN, "upstream connect failed", "origin", c->label, "reason",
			c->why, NULL);
	else if (c->clean)
		pgw_log(PGW_LOG_INFO, "upstream connection closed", "origin", c->label, "reason",
			c->why, NULL);
	else
		pgw_log(PGW_LOG_WARN, "upstream connection lost", "origin", c->label, "reason",
			c->why, NULL);
}

static void conn_stop_timers(h2conn *c)
{
	evloop_timer_cancel(c->loop, c->connect_timer);
	evloop_timer_cancel(c->loop, c->settle_timer);
	evloop_timer_cancel(c->loop, c->ping_timer);
	evloop_timer_cancel(c->loop, c->ping_timeout_timer);
	c->connect_timer = c->settle_timer = c->ping_timer = c->ping_timeout_timer = NULL;
}

static void conn_destroy(h2conn *c)
{
	h2conn_stream *s;

	conn_stop_timers(c);
	conn_close_socket(c);
	while ((s = c->streams_head)) {
		stream_unlink(c, s);
		free(s);
	}
	nghttp2_session_del(c->session);
	SSL_free(c->ssl);
	if (c->ai)
		freeaddrinfo(c->ai);
	free(c->out);
	free(c->host);
	free(c->label);
	free(c);
}

/* Report every stream, newest first (so an owner pushing refused ones to the
 * front of its queue keeps their order), then closed(), then free. */
static void conn_close(h2conn *c)
{
	h2conn_stream *s;

	conn_log_close(c);
	if (c->clean && c->ssl && c->fd >= 0) {
		SSL_shutdown(c->ssl);
		conn_take_tls_output(c);
		conn_send(c);
	}
	conn_stop_timers(c);
	conn_close_socket(c);
	c->state = ST_CLOSED;
	while ((s = c->streams_tail)) {
		stream_unlink(c, s);
		if (s->arg)
			c->ev->stream_end(c->owner, c, s->arg,
					  s->headers_sent ? H2CONN_END_LOST : H2CONN_END_REFUSED,
					  c->why);
		free(s);
	}
	c->ev->closed(c->owner, c, c->was_ready, c->clean, c->why);
	conn_destroy(c);
}

/* Every entry from the loop ends here; c may be freed when it returns. */
static void conn_settle(h2conn *c)
{
	c->in_settle = true;
	if (c->peer_eof && !c->dead) {
		if (c->draining && c->n_streams == 0)
			conn_finish_clean(c, "closed by the server after GOAWAY");
		else
			conn_fail(c, "connection closed by the server");
	}
	if (!c->dead && c->session)
		conn_report(c);
	if (!c->dead && c->fd >= 0 && c->state != ST_CONNECTING)
		conn_flush(c);
	if (!c->dead)
		conn_check_finished(c);
	c->in_settle = false;
	if (c->dead)
		conn_close(c);
}

static void conn_on_io(void *arg, uint32_t events)
{
	h2conn *c = arg;

	if (c->state == ST_CONNECTING) {
		conn_on_connected(c);
		conn_settle(c);
		return;
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
		conn_recv(c);
		if (!c->dead && c->state == ST_HANDSHAKING)
			conn_handshake(c);
		else if (!c->dead && c->session)
			conn_tls_read(c);
	}
	conn_settle(c);
}

/* ---- public ---- */

pgw_err h2conn_new(evloop *loop, SSL_CTX *ctx, const h2conn_opts *opts,
		   const h2conn_events *ev, void *owner, h2conn **out)
{
	h2conn *c = calloc(1, sizeof *c);

	*out = NULL;
	if (!c)
		return PGW_ENOMEM;
	c->loop = loop;
	c->ctx = ctx;
	c->ev = ev;
	c->owner = owner;
	c->fd = -1;
	c->host_is_ip = opts->host_is_ip;
	c->connect_timeout_ms = opts->connect_timeout_ms;
	c->ping_interval_ms = opts->ping_interval_ms;
	c->ping_timeout_ms = opts->ping_timeout_ms;
	c->host = strdup(opts->host);
	c->label = strdup(opts->label ? opts->label : opts->host);
	c->state = ST_RESOLVING;
	c->last_recv_ms = pgw_now_ms();
	c->connect_timer = evloop_timer_add(loop, c->connect_timeout_ms, connect_timeout_fire, c);
	if (!c->host || !c->label || !c->connect_timer) {
		conn_destroy(c);
		return PGW_ENOMEM;
	}
	*out = c;
	return PGW_OK;
}

void h2conn_connect(h2conn *c, struct addrinfo *ai)
{
	c->ai = ai;
	c->ai_next = ai;
	conn_try_next_address(c);
	if (c->dead)
		conn_schedule_settle(c);
}

void h2conn_abort(h2conn *c, const char *why)
{
	conn_fail(c, "%s", why);
	conn_schedule_settle(c);
}

void h2conn_free(h2conn *c)
{
	if (c)
		conn_destroy(c);
}

bool h2conn_is_ready(const h2conn *c)
{
	return c->state == ST_READY && c->was_ready && !c->draining && !c->dead;
}

bool h2conn_is_connecting(const h2conn *c)
{
	return !c->dead && !c->was_ready && c->state != ST_CLOSED;
}

bool h2conn_credential_refused(const h2conn *c)
{
	return c->cred_refused;
}

bool h2conn_is_draining(const h2conn *c)
{
	return c->draining || c->dead;
}

int h2conn_free_streams(const h2conn *c)
{
	int64_t room;

	if (!h2conn_is_ready(c))
		return 0;
	room = (int64_t)nghttp2_session_get_remote_settings(
		       c->session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS) -
	       c->n_streams;
	if (room <= 0)
		return 0;
	return room > INT_MAX ? INT_MAX : (int)room;
}

int h2conn_open_streams(const h2conn *c)
{
	return c->n_streams;
}

void h2conn_drain(h2conn *c)
{
	if (c->draining)
		return;
	c->draining = true;
	conn_schedule_settle(c);
}

pgw_err h2conn_submit(h2conn *c, const nghttp2_nv *nva, size_t nnv, const char *body,
		      size_t body_len, h2conn_sink *sink, void *stream_arg, h2conn_stream **out)
{
	nghttp2_data_provider dp;
	h2conn_stream *s;
	int32_t id;

	if (!h2conn_is_ready(c))
		return PGW_ESTATE;
	s = calloc(1, sizeof *s);
	if (!s)
		return PGW_ENOMEM;
	s->arg = stream_arg;
	s->sink = sink;
	s->body = body ? body : "";
	s->body_len = body_len;
	dp.source.ptr = s;
	dp.read_callback = body_read;
	id = nghttp2_submit_request(c->session, NULL, nva, nnv, body_len ? &dp : NULL, s);
	if (id < 0) {
		free(s);
		/* stream ids used up (or no memory): let a fresh connection take over */
		pgw_log(PGW_LOG_WARN, "upstream connection retired", "origin", c->label, "reason",
			nghttp2_strerror(id), NULL);
		h2conn_drain(c);
		return PGW_ESTATE;
	}
	s->id = id;
	stream_link(c, s);
	conn_schedule_settle(c);
	*out = s;
	return PGW_OK;
}

void h2conn_cancel(h2conn *c, h2conn_stream *s)
{
	s->arg = NULL;
	s->sink = NULL;
	s->body = NULL;
	nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
	conn_schedule_settle(c);
}
