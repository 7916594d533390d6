/* HTTP/2 over TLS server for the simulated services (see sim_h2.h). Each
 * connection runs non-blocking OpenSSL under one nghttp2 server session; the
 * session's output is gathered into one buffer per connection so many small
 * responses share a TLS record. Event loop thread only. */
#include "sim_h2.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>
#include <openssl/err.h>

#include "sim.h"
#include "sim_loop.h"
#include "sim_net.h"
#include "sim_records.h"
#include "sim_route.h"

#define SIM_H2_READ_BUF 32768
#define SIM_H2_WRITE_CHUNK 65536
#define SIM_H2_MAX_BODY 65536 /* kept per request; the rest is only counted */
#define SIM_H2_MAX_HEADERS 65536

struct sim_conn;

struct sim_stream {
	struct sim_conn *conn;
	struct sim_stream *prev;
	struct sim_stream *next;
	int32_t id;
	struct sim_buf hdrs; /* "name\0value\0" pairs */
	struct sim_buf body;
	size_t body_total;
	bool duplicate;
	bool dispatched;
	bool finished; /* answered or refused: the log entry is final */
	uint64_t seq;
	struct sim_reply reply;
	size_t body_sent;
	struct sim_timer timer;
};

enum sim_conn_state {
	SIM_CONN_HANDSHAKE,
	SIM_CONN_OPEN,
};

struct sim_conn {
	struct sim_io io;
	int fd;
	struct sim_h2 *h2;
	struct sim_loop *loop; /* all that sim_conn_free() may touch besides the conn */
	struct sim_conn *prev;
	struct sim_conn *next;
	uint64_t id;
	SSL *ssl;
	nghttp2_session *session;
	enum sim_conn_state state;
	bool dead;
	bool client_cert;
	bool full_streams; /* the --initial-streams phase is over */
	struct sim_buf out;
	size_t out_off;
	struct sim_stream *streams;
	size_t open_streams;
	int32_t last_answered;
	struct sim_defer defer;
};

struct sim_h2 {
	struct sim *sim;
	SSL_CTX *ctx;
	struct sim_io listen_io;
	int port;
	nghttp2_session_callbacks *callbacks;
	struct sim_conn *conns;
	uint64_t next_conn_id;
	unsigned char rbuf[SIM_H2_READ_BUF];
};

static void sim_conn_flush(struct sim_conn *conn);

/* ---- streams ---- */

static struct sim_stream *sim_stream_new(struct sim_conn *conn, int32_t id)
{
	struct sim_stream *st = calloc(1, sizeof(*st));

	if (!st)
		return NULL;
	st->conn = conn;
	st->id = id;
	st->next = conn->streams;
	if (conn->streams)
		conn->streams->prev = st;
	conn->streams = st;
	conn->open_streams++;
	return st;
}

static void sim_stream_free(struct sim_stream *st)
{
	struct sim_conn *conn = st->conn;

	sim_timer_stop(conn->loop, &st->timer);
	if (st->prev)
		st->prev->next = st->next;
	else
		conn->streams = st->next;
	if (st->next)
		st->next->prev = st->prev;
	conn->open_streams--;
	sim_buf_release(&st->hdrs);
	sim_buf_release(&st->body);
	sim_reply_clear(&st->reply);
	free(st);
}

static bool sim_stream_has_header(const struct sim_stream *st, const char *name)
{
	const char *p = st->hdrs.data, *end = st->hdrs.data + st->hdrs.len;

	while (p && p < end) {
		const char *value = p + strlen(p) + 1;

		if (strcmp(p, name) == 0)
			return true;
		p = value + strlen(value) + 1;
	}
	return false;
}

/* ---- connections ---- */

static void sim_conn_free(void *arg)
{
	struct sim_conn *conn = arg;

	while (conn->streams)
		sim_stream_free(conn->streams);
	nghttp2_session_del(conn->session);
	SSL_free(conn->ssl);
	sim_buf_release(&conn->out);
	free(conn);
}

/* Ends a connection at once; the memory goes after the current batch, since
 * nghttp2 or the loop may still be holding it. */
static void sim_conn_kill(struct sim_conn *conn, bool graceful)
{
	struct sim *sim = conn->h2->sim;
	struct sim_stream *st;

	if (conn->dead)
		return;
	conn->dead = true;
	for (st = conn->streams; st; st = st->next) {
		sim_timer_stop(conn->loop, &st->timer);
		if (st->dispatched && !st->finished)
			sim_records_outcome(sim->records, st->seq, SIM_OUTCOME_DROPPED);
		st->finished = true;
	}
	if (graceful && conn->state == SIM_CONN_OPEN) {
		SSL_shutdown(conn->ssl);
		ERR_clear_error();
	}
	sim_loop_unwatch(conn->loop, &conn->io);
	close(conn->fd);
	if (conn->prev)
		conn->prev->next = conn->next;
	else
		conn->h2->conns = conn->next;
	if (conn->next)
		conn->next->prev = conn->prev;
	sim->stats.connections_open--;
	sim_loop_defer(conn->loop, &conn->defer, sim_conn_free, conn);
}

static void sim_conn_submit_max_streams(struct sim_conn *conn, uint32_t n)
{
	nghttp2_settings_entry iv = { NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, n };

	nghttp2_submit_settings(conn->session, NGHTTP2_FLAG_NONE, &iv, 1);
}

/* ---- answering ---- */

static ssize_t sim_stream_body_read(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
				    size_t length, uint32_t *data_flags,
				    nghttp2_data_source *source, void *user_data)
{
	struct sim_stream *st = source->ptr;
	size_t left = st->reply.body_len - st->body_sent;
	size_t n = left < length ? left : length;

	memcpy(buf, st->reply.body + st->body_sent, n);
	st->body_sent += n;
	if (st->body_sent == st->reply.body_len)
		*data_flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

static nghttp2_nv sim_nv(const char *name, const char *value)
{
	nghttp2_nv nv = { (uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value),
			  NGHTTP2_NV_FLAG_NONE };

	return nv;
}

static void sim_stream_answer(struct sim_stream *st)
{
	struct sim_conn *conn = st->conn;
	struct sim *sim = conn->h2->sim;
	struct sim_reply *r = &st->reply;
	nghttp2_data_provider prd = { .source.ptr = st, .read_callback = sim_stream_body_read };
	nghttp2_nv nva[SIM_REPLY_HEADERS + 2];
	char status[8], clen[24];
	size_t n = 0, i;

	snprintf(status, sizeof(status), "%d", r->status);
	nva[n++] = sim_nv(":status", status);
	for (i = 0; i < r->nhdr; i++)
		nva[n++] = sim_nv(r->hdr[i].name, r->hdr[i].value);
	if (r->body_len) {
		snprintf(clen, sizeof(clen), "%zu", r->body_len);
		nva[n++] = sim_nv("content-length", clen);
	}
	if (nghttp2_submit_response(conn->session, st->id, nva, n, r->body_len ? &prd : NULL))
		return;
	st->finished = true;
	if (st->id > conn->last_answered)
		conn->last_answered = st->id;
	sim_records_answered(sim->records, st->seq, r->status, r->reason);
	if (r->status == 200) {
		sim->stats.answered_200++;
		/* Apple widens a connection once a request on it was accepted. */
		if (!conn->full_streams)
			sim_conn_submit_max_streams(conn, sim->max_streams);
		conn->full_streams = true;
	}
	if (r->goaway_after) {
		nghttp2_submit_goaway(conn->session, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR,
				      NULL, 0);
		sim->stats.goaways_sent++;
	}
}

static void sim_stream_execute(struct sim_stream *st)
{
	struct sim_conn *conn = st->conn;

	switch (st->reply.action) {
	case SIM_ANSWER:
		sim_stream_answer(st);
		break;
	case SIM_RST:
		nghttp2_submit_rst_stream(conn->session, NGHTTP2_FLAG_NONE, st->id,
					  NGHTTP2_REFUSED_STREAM);
		st->finished = true;
		sim_records_outcome(conn->h2->sim->records, st->seq, SIM_OUTCOME_REFUSED);
		break;
	case SIM_DROP:
		sim_conn_kill(conn, false);
		break;
	case SIM_NO_ANSWER:
		break;
	}
}

static void sim_stream_timer_fired(void *arg)
{
	struct sim_stream *st = arg;
	struct sim_conn *conn = st->conn;

	sim_stream_execute(st);
	sim_conn_flush(conn);
}

static void sim_stream_dispatch(struct sim_stream *st)
{
	struct sim_conn *conn = st->conn;
	struct sim *sim = conn->h2->sim;
	struct sim_request req = { 0 };
	struct sim_record_in in = { 0 };
	const char *v;
	unsigned delay;

	st->dispatched = true;
	req.hdrs = st->hdrs.data ? st->hdrs.data : "";
	req.hdrs_len = st->hdrs.len;
	req.method = (v = sim_request_header(&req, ":method")) ? v : "";
	req.path = (v = sim_request_header(&req, ":path")) ? v : "";
	req.body = st->body.data;
	req.body_len = st->body.len;
	req.body_total = st->body_total;
	req.duplicate_header = st->duplicate;
	req.client_cert = conn->client_cert;
	req.conn_id = conn->id;
	req.stream_id = st->id;
	sim_route_dispatch(sim, &req, &st->reply);
	sim->stats.requests++;

	in.conn = conn->id;
	in.stream = st->id;
	in.hdrs_len = st->hdrs.len;
	in.hdrs = sim_buf_steal(&st->hdrs);
	in.body_len = st->body.len;
	in.body = sim_buf_steal(&st->body);
	in.kind = st->reply.kind;
	in.token = st->reply.token;
	in.push_id = st->reply.push_id;
	in.json_ok = st->reply.json_ok;
	in.ts_ms = sim_wall_ms();
	st->seq = sim_records_add(sim->records, &in);

	delay = st->reply.has_delay ? st->reply.delay_ms : sim->delay_ms;
	if (delay == 0 ||
	    sim_timer_start(conn->loop, &st->timer, delay, sim_stream_timer_fired, st) < 0)
		sim_stream_execute(st);
}

/* ---- nghttp2 callbacks ---- */

static bool sim_is_request_headers(const nghttp2_frame *frame)
{
	return frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST;
}

static int sim_h2_on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame,
				   void *user_data)
{
	struct sim_conn *conn = user_data;
	struct sim_stats *stats = &conn->h2->sim->stats;
	struct sim_stream *st;

	if (!sim_is_request_headers(frame))
		return 0;
	st = sim_stream_new(conn, frame->hd.stream_id);
	if (!st)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, st);
	if (conn->open_streams > stats->max_streams_in_flight)
		stats->max_streams_in_flight = conn->open_streams;
	return 0;
}

static int sim_h2_on_header(nghttp2_session *session, const nghttp2_frame *frame,
			    const uint8_t *name, size_t namelen, const uint8_t *value,
			    size_t valuelen, uint8_t flags, void *user_data)
{
	struct sim_stream *st;

	if (!sim_is_request_headers(frame))
		return 0;
	st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	if (!st || st->hdrs.len + namelen + valuelen + 2 > SIM_H2_MAX_HEADERS)
		return 0;
	if (name[0] != ':' && sim_stream_has_header(st, (const char *)name))
		st->duplicate = true;
	/* nghttp2 hands over NUL-terminated names and values. */
	if (sim_buf_append(&st->hdrs, name, namelen + 1) < 0 ||
	    sim_buf_append(&st->hdrs, value, valuelen + 1) < 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	return 0;
}

static int sim_h2_on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
				const uint8_t *data, size_t len, void *user_data)
{
	struct sim_stream *st = nghttp2_session_get_stream_user_data(session, stream_id);
	size_t room;

	if (!st)
		return 0;
	st->body_total += len;
	room = SIM_H2_MAX_BODY - st->body.len;
	if (st->body.len < SIM_H2_MAX_BODY &&
	    sim_buf_append(&st->body, data, len < room ? len : room) < 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	return 0;
}

static int sim_h2_on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame,
				void *user_data)
{
	struct sim_conn *conn = user_data;
	struct sim_stream *st;

	if (frame->hd.type != NGHTTP2_DATA && frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	if (st && !st->dispatched)
		sim_stream_dispatch(st);
	/* A "drop" step ended the connection: stop nghttp2 from going on. */
	return conn->dead ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
}

static int sim_h2_on_stream_close(nghttp2_session *session, int32_t stream_id,
				  uint32_t error_code, void *user_data)
{
	struct sim_conn *conn = user_data;
	struct sim_stream *st = nghttp2_session_get_stream_user_data(session, stream_id);

	if (!st)
		return 0;
	/* Closed unanswered: by our GOAWAY (refused) or by the client. */
	if (st->dispatched && !st->finished)
		sim_records_outcome(conn->h2->sim->records, st->seq,
				    error_code == NGHTTP2_REFUSED_STREAM ? SIM_OUTCOME_REFUSED
									 : SIM_OUTCOME_CANCELLED);
	nghttp2_session_set_stream_user_data(session, stream_id, NULL);
	sim_stream_free(st);
	return 0;
}

static nghttp2_session_callbacks *sim_h2_callbacks(void)
{
	nghttp2_session_callbacks *cbs;

	if (nghttp2_session_callbacks_new(&cbs) != 0)
		return NULL;
	nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, sim_h2_on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cbs, sim_h2_on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, sim_h2_on_data_chunk);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, sim_h2_on_frame_recv);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, sim_h2_on_stream_close);
	return cbs;
}

/* ---- connection I/O ---- */

static int sim_conn_fill(struct sim_conn *conn)
{
	conn->out.len = 0;
	conn->out_off = 0;
	while (conn->out.len < SIM_H2_WRITE_CHUNK) {
		const uint8_t *p;
		ssize_t n = nghttp2_session_mem_send(conn->session, &p);

		if (n < 0)
			return -1;
		if (n == 0)
			break;
		if (sim_buf_append(&conn->out, p, (size_t)n) < 0)
			return -1;
	}
	return 0;
}

static void sim_conn_flush(struct sim_conn *conn)
{
	if (conn->dead || conn->state != SIM_CONN_OPEN)
		return;
	for (;;) {
		int n;

		if (conn->out_off == conn->out.len) {
			if (sim_conn_fill(conn) < 0) {
				sim_conn_kill(conn, false);
				return;
			}
			if (!conn->out.len)
				break;
		}
		ERR_clear_error();
		n = SSL_write(conn->ssl, conn->out.data + conn->out_off,
			      (int)(conn->out.len - conn->out_off));
		if (n <= 0) {
			int e = SSL_get_error(conn->ssl, n);

			if (e == SSL_ERROR_WANT_WRITE)
				sim_loop_modify(conn->loop, &conn->io, EPOLLIN | EPOLLOUT);
			else if (e != SSL_ERROR_WANT_READ)
				sim_conn_kill(conn, false);
			return;
		}
		conn->out_off += (size_t)n;
	}
	sim_loop_modify(conn->loop, &conn->io, EPOLLIN);
	/* After a GOAWAY, nghttp2 wants nothing more once its streams are done. */
	if (!nghttp2_session_want_read(conn->session) && !nghttp2_session_want_write(conn->session))
		sim_conn_kill(conn, true);
}

static void sim_conn_read(struct sim_conn *conn)
{
	struct sim_h2 *h2 = conn->h2;

	for (;;) {
		ssize_t rv;
		int n;

		ERR_clear_error();
		n = SSL_read(conn->ssl, h2->rbuf, sizeof(h2->rbuf));
		if (n <= 0) {
			int e = SSL_get_error(conn->ssl, n);

			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
				break;
			sim_conn_kill(conn, false);
			return;
		}
		rv = nghttp2_session_mem_recv(conn->session, h2->rbuf, (size_t)n);
		if (conn->dead)
			return;
		if (rv < 0) {
			sim_conn_kill(conn, false);
			return;
		}
	}
	sim_conn_flush(conn);
}

static int sim_conn_session_start(struct sim_conn *conn)
{
	struct sim *sim = conn->h2->sim;

	if (nghttp2_session_server_new(&conn->session, conn->h2->callbacks, conn) != 0)
		return -1;
	conn->full_streams = sim->cfg.initial_streams == 0;
	sim_conn_submit_max_streams(conn, conn->full_streams ? sim->max_streams
							     : sim->cfg.initial_streams);
	return 0;
}

static void sim_conn_handshake(struct sim_conn *conn)
{
	const unsigned char *alpn = NULL;
	unsigned int alpnlen = 0;
	int rv;

	ERR_clear_error();
	rv = SSL_do_handshake(conn->ssl);
	if (rv != 1) {
		int e = SSL_get_error(conn->ssl, rv);

		if (e == SSL_ERROR_WANT_READ)
			sim_loop_modify(conn->loop, &conn->io, EPOLLIN);
		else if (e == SSL_ERROR_WANT_WRITE)
			sim_loop_modify(conn->loop, &conn->io, EPOLLOUT);
		else
			sim_conn_kill(conn, false);
		ERR_clear_error();
		return;
	}
	SSL_get0_alpn_selected(conn->ssl, &alpn, &alpnlen);
	if (alpnlen != 2 || memcmp(alpn, "h2", 2) != 0 || sim_conn_session_start(conn) < 0) {
		sim_conn_kill(conn, false);
		return;
	}
	conn->client_cert = SSL_get0_peer_certificate(conn->ssl) &&
			    SSL_get_verify_result(conn->ssl) == X509_V_OK;
	conn->state = SIM_CONN_OPEN;
	conn->h2->sim->stats.handshakes++;
	sim_loop_modify(conn->loop, &conn->io, EPOLLIN);
	sim_conn_read(conn);
}

static void sim_conn_on_io(void *arg, uint32_t events)
{
	struct sim_conn *conn = arg;

	if (conn->state == SIM_CONN_HANDSHAKE) {
		sim_conn_handshake(conn);
		return;
	}
	if (events & EPOLLOUT)
		sim_conn_flush(conn);
	if (!conn->dead && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		sim_conn_read(conn);
}

static int sim_conn_new(struct sim_h2 *h2, int fd)
{
	struct sim_conn *conn = calloc(1, sizeof(*conn));

	if (!conn)
		return -1;
	conn->fd = fd;
	conn->h2 = h2;
	conn->loop = h2->sim->loop;
	conn->id = ++h2->next_conn_id;
	conn->ssl = SSL_new(h2->ctx);
	if (!conn->ssl || SSL_set_fd(conn->ssl, fd) != 1)
		goto fail;
	SSL_set_accept_state(conn->ssl);
	sim_net_nodelay(fd);
	if (sim_loop_watch(conn->loop, &conn->io, fd, EPOLLIN, sim_conn_on_io, conn) < 0)
		goto fail;
	conn->next = h2->conns;
	if (h2->conns)
		h2->conns->prev = conn;
	h2->conns = conn;
	h2->sim->stats.connections_open++;
	h2->sim->stats.connections_total++;
	return 0;
fail:
	SSL_free(conn->ssl);
	free(conn);
	return -1;
}

static void sim_h2_on_accept(void *arg, uint32_t events)
{
	struct sim_h2 *h2 = arg;

	for (;;) {
		int fd = accept4(h2->listen_io.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return;
		}
		if (sim_conn_new(h2, fd) < 0)
			close(fd);
	}
}

/* ---- public ---- */

struct sim_h2 *sim_h2_new(struct sim *sim, SSL_CTX *ctx, const char *addr, char *err,
			  size_t errlen)
{
	struct sim_h2 *h2 = calloc(1, sizeof(*h2));
	int fd;

	if (!h2) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h2->sim = sim;
	h2->ctx = ctx;
	h2->listen_io.fd = -1;
	h2->callbacks = sim_h2_callbacks();
	if (!h2->callbacks) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	fd = sim_net_listen(addr, err, errlen);
	if (fd < 0)
		goto fail;
	h2->port = sim_net_local_port(fd);
	if (sim_loop_watch(sim->loop, &h2->listen_io, fd, EPOLLIN, sim_h2_on_accept, h2) < 0) {
		snprintf(err, errlen, "cannot watch %s: %s", addr, strerror(errno));
		close(fd);
		goto fail;
	}
	return h2;
fail:
	sim_h2_free(h2);
	return NULL;
}

void sim_h2_free(struct sim_h2 *h2)
{
	int fd;

	if (!h2)
		return;
	while (h2->conns)
		sim_conn_kill(h2->conns, false);
	fd = h2->listen_io.fd;
	if (fd >= 0) {
		sim_loop_unwatch(h2->sim->loop, &h2->listen_io);
		close(fd);
	}
	nghttp2_session_callbacks_del(h2->callbacks);
	free(h2);
}

int sim_h2_port(const struct sim_h2 *h2)
{
	return h2->port;
}

size_t sim_h2_goaway_all(struct sim_h2 *h2)
{
	struct sim_conn *conn, *next;
	size_t n = 0;

	for (conn = h2->conns; conn; conn = next) {
		next = conn->next;
		if (conn->state != SIM_CONN_OPEN)
			continue;
		nghttp2_submit_goaway(conn->session, NGHTTP2_FLAG_NONE, conn->last_answered,
				      NGHTTP2_NO_ERROR, NULL, 0);
		h2->sim->stats.goaways_sent++;
		sim_conn_flush(conn);
		n++;
	}
	return n;
}

size_t sim_h2_drop_all(struct sim_h2 *h2)
{
	size_t n = 0;

	while (h2->conns) {
		sim_conn_kill(h2->conns, false);
		n++;
	}
	return n;
}

size_t sim_h2_set_max_streams(struct sim_h2 *h2, uint32_t max)
{
	struct sim_conn *conn, *next;
	size_t n = 0;

	for (conn = h2->conns; conn; conn = next) {
		next = conn->next;
		if (conn->state != SIM_CONN_OPEN)
			continue;
		sim_conn_submit_max_streams(conn, max);
		conn->full_streams = true;
		sim_conn_flush(conn);
		n++;
	}
	return n;
}
