/* HTTP/2 client pool: origins, request queues, dispatch by free stream
 * capacity, deadlines, re-sends, reconnect backoff; callbacks always run from
 * a 0 ms timer. Threading: loop thread only, but for the getaddrinfo thread. */
#include "pushgw/h2pool.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "pushgw/h2conn.h"
#include "pushgw/log.h"
#include "pushgw/util.h"

#define POOL_MAX_RESENDS 3
#define POOL_BACKOFF_MIN_MS 100
#define POOL_BACKOFF_MAX_MS 10000
#define POOL_NV_ON_STACK 24

typedef struct h2req h2req;
typedef struct origin_conn origin_conn;
typedef struct resolve_job resolve_job;

typedef struct req_list {
	h2req *head, *tail;
	int n;
} req_list;

enum req_state { REQ_QUEUED, REQ_SENT, REQ_DONE };

struct h2req {
	h2_origin *origin;
	h2req *prev, *next; /* in exactly one req_list */
	enum req_state state;
	origin_conn *oc;        /* REQ_SENT: where its stream is */
	uint64_t conn_id;       /* the connection it was last sent on */
	h2conn_stream *stream;
	evloop_timer *deadline_timer;
	int64_t deadline_ms;
	int resends;
	h2_result result;
	char *error;
	h2conn_sink sink;
	h2_response_fn cb;
	void *arg;
	char *method, *path;
	h2_header *headers;
	size_t n_headers;
	char *body;
	size_t body_len;
	/* headers, strings and body follow in the same allocation */
};

struct origin_conn {
	h2_origin *origin;
	h2conn *conn;
	resolve_job *job; /* while its host name is being resolved */
	uint64_t id;      /* unique within the origin, never reused */
	origin_conn *prev, *next;
};

struct h2_origin {
	h2pool *pool;
	h2_origin *next;
	char *host;
	char *port;
	char *authority;
	bool host_is_ip;
	SSL_CTX *ctx;
	int connections;
	int max_connections;
	origin_conn *conns;
	req_list queue;
	req_list inflight;
	evloop_timer *reconnect_timer;
	int failures; /* connect attempts failed since the last ready connection */
	bool cert_refused; /* the last attempt failed on our client certificate */
	uint64_t last_conn_id;
	char last_error[200];
	uint64_t handshakes, connect_failures, requests_sent, goaways;
};

/* A job is owned by the resolver while on its lists; job->oc is touched only
 * on the loop thread. */
struct resolve_job {
	resolve_job *next;
	origin_conn *oc; /* NULL once the connection stopped waiting */
	char *host;
	char *port;
	struct addrinfo *res;
	int gai_err;
};

typedef struct resolver {
	pthread_t thread;
	bool started;
	pthread_mutex_t mu; /* guards the lists and stop */
	pthread_cond_t cv;
	resolve_job *todo_head, *todo_tail;
	resolve_job *done_head, *done_tail;
	bool stop;
	int efd; /* written when done has jobs */
} resolver;

struct h2pool {
	evloop *loop;
	h2pool_opts opts;
	char *ca_file;
	X509_STORE *trust; /* shared by every origin's TLS context; made on first use */
	h2_origin *origins;
	req_list done; /* finished, waiting for their callback */
	evloop_timer *deliver_timer;
	resolver res;
	uint32_t jitter_state;
	bool closing;
	bool delivering;
	bool free_requested;
};

static const h2conn_events pool_conn_events;
static void origin_dispatch(h2_origin *o);
static void origin_maintain(h2_origin *o);
static void pool_destroy(h2pool *pool);

const char *h2_result_str(h2_result r)
{
	switch (r) {
	case H2_OK: return "ok";
	case H2_ERR_CONNECT: return "connect_error";
	case H2_ERR_REFUSED: return "refused";
	case H2_ERR_LOST: return "connection_lost";
	case H2_ERR_TIMEOUT: return "timeout";
	case H2_ERR_OVERFLOW: return "queue_full";
	case H2_ERR_SHUTDOWN: return "shutdown";
	case H2_ERR_CLIENT_CERT: return "client_cert_refused";
	}
	return "unknown";
}

/* ---- request lists ---- */

static void list_push_back(req_list *l, h2req *r)
{
	r->next = NULL;
	r->prev = l->tail;
	if (l->tail)
		l->tail->next = r;
	else
		l->head = r;
	l->tail = r;
	l->n++;
}

static void list_push_front(req_list *l, h2req *r)
{
	r->prev = NULL;
	r->next = l->head;
	if (l->head)
		l->head->prev = r;
	else
		l->tail = r;
	l->head = r;
	l->n++;
}

static void list_remove(req_list *l, h2req *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		l->head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		l->tail = r->prev;
	r->prev = r->next = NULL;
	l->n--;
}

static h2req *list_pop_front(req_list *l)
{
	h2req *r = l->head;
	if (r)
		list_remove(l, r);
	return r;
}

/* ---- requests ---- */

static void lower_copy(char *dst, const char *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = (char)tolower((unsigned char)src[i]);
	dst[n] = '\0';
}

/* One allocation holds the request, its header array, strings and body. */
static h2req *req_new(h2_origin *o, const h2_request *in)
{
	size_t mlen = strlen(in->method), plen = strlen(in->path);
	size_t size = sizeof(h2req) + in->n_headers * sizeof(h2_header) + mlen + plen + 2 +
		      in->body_len + 1;
	h2req *r;
	char *p;

	for (size_t i = 0; i < in->n_headers; i++)
		size += strlen(in->headers[i].name) + strlen(in->headers[i].value) + 2;
	r = calloc(1, size);
	if (!r)
		return NULL;
	r->origin = o;
	r->cb = in->cb;
	r->arg = in->arg;
	r->deadline_ms = in->deadline_ms;
	r->headers = (h2_header *)(r + 1);
	r->n_headers = in->n_headers;
	p = (char *)(r->headers + in->n_headers);
	r->method = p;
	memcpy(p, in->method, mlen + 1);
	p += mlen + 1;
	r->path = p;
	memcpy(p, in->path, plen + 1);
	p += plen + 1;
	for (size_t i = 0; i < in->n_headers; i++) {
		size_t nl = strlen(in->headers[i].name), vl = strlen(in->headers[i].value);
		lower_copy(p, in->headers[i].name, nl);
		r->headers[i].name = p;
		p += nl + 1;
		memcpy(p, in->headers[i].value, vl + 1);
		r->headers[i].value = p;
		p += vl + 1;
	}
	r->body = p;
	if (in->body_len)
		memcpy(p, in->body, in->body_len);
	r->body_len = in->body_len;
	return r;
}

static void req_free(h2req *r)
{
	h2conn_sink_clear(&r->sink);
	free(r->error);
	free(r);
}

static void deliver_fire(void *arg);

static void pool_schedule_deliver(h2pool *pool)
{
	if (pool->deliver_timer || pool->delivering || pool->closing)
		return;
	pool->deliver_timer = evloop_timer_add(pool->loop, 0, deliver_fire, pool);
	if (!pool->deliver_timer)
		pgw_log(PGW_LOG_ERROR, "h2pool: cannot schedule callbacks (out of memory)", NULL);
}

/* The request leaves its queue or stream before this; the callback runs
 * later from the deliver timer. */
static void req_finish(h2req *r, h2_result result, const char *error)
{
	h2pool *pool = r->origin->pool;

	r->state = REQ_DONE;
	r->result = result;
	if (error && !r->error)
		r->error = strdup(error);
	evloop_timer_cancel(pool->loop, r->deadline_timer);
	r->deadline_timer = NULL;
	list_push_back(&pool->done, r);
	pool_schedule_deliver(pool);
}

static void req_deliver(h2req *r)
{
	h2_header stack_hdrs[16];
	h2_header *hdrs = stack_hdrs;
	h2_response resp = {.result = r->result, .body = ""};
	const char *p = r->sink.hdrs;

	if (r->result == H2_OK) {
		resp.status = r->sink.status;
		resp.conn_id = r->conn_id;
		if (r->sink.n_headers > sizeof stack_hdrs / sizeof stack_hdrs[0])
			hdrs = malloc(r->sink.n_headers * sizeof *hdrs);
		for (size_t i = 0; hdrs && i < r->sink.n_headers; i++) {
			hdrs[i].name = p;
			p += strlen(p) + 1;
			hdrs[i].value = p;
			p += strlen(p) + 1;
		}
		resp.headers = hdrs;
		resp.n_headers = hdrs ? r->sink.n_headers : 0;
		if (r->sink.body) {
			resp.body = r->sink.body;
			resp.body_len = r->sink.body_len;
		}
	} else {
		resp.error = r->error ? r->error : h2_result_str(r->result);
	}
	r->cb(r->arg, &resp);
	if (hdrs != stack_hdrs)
		free(hdrs);
	req_free(r);
}

/* Callbacks may send again (those land in a fresh list and a fresh timer)
 * or even free the pool, which then happens after this batch. */
static void pool_deliver(h2pool *pool)
{
	req_list batch = pool->done;
	h2req *r;

	pool->done = (req_list){0};
	pool->delivering = true;
	while ((r = list_pop_front(&batch)))
		req_deliver(r);
	pool->delivering = false;
	if (pool->free_requested) {
		pool_destroy(pool);
		return;
	}
	if (pool->done.head)
		pool_schedule_deliver(pool);
}

static void deliver_fire(void *arg)
{
	h2pool *pool = arg;

	pool->deliver_timer = NULL;
	pool_deliver(pool);
}

static void req_deadline_fire(void *arg)
{
	h2req *r = arg;
	h2_origin *o = r->origin;

	r->deadline_timer = NULL;
	if (r->state == REQ_QUEUED) {
		list_remove(&o->queue, r);
		/* it was refused before and found no connection in time */
		if (r->resends > 0)
			req_finish(r, H2_ERR_REFUSED, "not processed by the server; no time left to re-send");
		else
			req_finish(r, H2_ERR_TIMEOUT, "deadline passed while queued");
		return;
	}
	if (r->state == REQ_SENT) {
		h2conn_cancel(r->oc->conn, r->stream);
		list_remove(&o->inflight, r);
		r->oc = NULL;
		r->stream = NULL;
		req_finish(r, H2_ERR_TIMEOUT, "deadline passed before the response");
	}
}

/* nghttp2 copies names and values at submit: no lifetime ties to r. */
static nghttp2_nv nv_of(const char *name, const char *value)
{
	return (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value),
			    NGHTTP2_NV_FLAG_NONE};
}

static pgw_err req_submit(h2req *r, origin_conn *oc)
{
	h2_origin *o = r->origin;
	nghttp2_nv stack_nv[POOL_NV_ON_STACK];
	nghttp2_nv *nv = stack_nv;
	size_t n = 4 + r->n_headers;
	pgw_err err;

	if (n > POOL_NV_ON_STACK) {
		nv = malloc(n * sizeof *nv);
		if (!nv)
			return PGW_ENOMEM;
	}
	nv[0] = nv_of(":method", r->method);
	nv[1] = nv_of(":scheme", "https");
	nv[2] = nv_of(":authority", o->authority);
	nv[3] = nv_of(":path", r->path);
	for (size_t i = 0; i < r->n_headers; i++)
		nv[4 + i] = nv_of(r->headers[i].name, r->headers[i].value);
	h2conn_sink_clear(&r->sink);
	err = h2conn_submit(oc->conn, nv, n, r->body, r->body_len, &r->sink, r, &r->stream);
	if (nv != stack_nv)
		free(nv);
	if (err != PGW_OK)
		return err;
	r->state = REQ_SENT;
	r->oc = oc;
	r->conn_id = oc->id;
	list_push_back(&o->inflight, r);
	return PGW_OK;
}

/* ---- resolver thread ---- */

static void resolve_job_free(resolve_job *job)
{
	if (job->res)
		freeaddrinfo(job->res);
	free(job->host);
	free(job->port);
	free(job);
}

static void *resolver_main(void *arg)
{
	resolver *rs = arg;
	uint64_t one = 1;

	pthread_mutex_lock(&rs->mu);
	for (;;) {
		struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
		resolve_job *job;

		while (!rs->todo_head && !rs->stop)
			pthread_cond_wait(&rs->cv, &rs->mu);
		if (rs->stop)
			break;
		job = rs->todo_head;
		rs->todo_head = job->next;
		if (!rs->todo_head)
			rs->todo_tail = NULL;
		pthread_mutex_unlock(&rs->mu);

		job->gai_err = getaddrinfo(job->host, job->port, &hints, &job->res);

		pthread_mutex_lock(&rs->mu);
		job->next = NULL;
		if (rs->done_tail)
			rs->done_tail->next = job;
		else
			rs->done_head = job;
		rs->done_tail = job;
		if (write(rs->efd, &one, sizeof one) < 0) {
			/* counter saturated: the loop is being woken anyway */
		}
	}
	pthread_mutex_unlock(&rs->mu);
	return NULL;
}

static void resolver_on_done(void *arg, uint32_t events)
{
	h2pool *pool = arg;
	resolver *rs = &pool->res;
	resolve_job *job;
	uint64_t count;

	if (read(rs->efd, &count, sizeof count) < 0 && errno != EAGAIN)
		return;
	pthread_mutex_lock(&rs->mu);
	job = rs->done_head;
	rs->done_head = rs->done_tail = NULL;
	pthread_mutex_unlock(&rs->mu);

	while (job) {
		resolve_job *next = job->next;
		origin_conn *oc = job->oc;

		if (oc) {
			oc->job = NULL;
			if (job->gai_err != 0) {
				char why[160];
				snprintf(why, sizeof why, "resolve %s: %s", job->host,
					 gai_strerror(job->gai_err));
				h2conn_abort(oc->conn, why);
			} else {
				h2conn_connect(oc->conn, job->res);
				job->res = NULL;
			}
		}
		resolve_job_free(job);
		job = next;
	}
}

static pgw_err resolver_submit(h2pool *pool, resolve_job *job)
{
	resolver *rs = &pool->res;

	if (!rs->started) {
		if (pthread_create(&rs->thread, NULL, resolver_main, rs) != 0)
			return PGW_ENOMEM;
		rs->started = true;
	}
	pthread_mutex_lock(&rs->mu);
	job->next = NULL;
	if (rs->todo_tail)
		rs->todo_tail->next = job;
	else
		rs->todo_head = job;
	rs->todo_tail = job;
	pthread_cond_signal(&rs->cv);
	pthread_mutex_unlock(&rs->mu);
	return PGW_OK;
}

/* Joins the thread: waits for a lookup in progress to return. */
static void resolver_stop(h2pool *pool)
{
	resolver *rs = &pool->res;
	resolve_job *lists[2];

	if (rs->started) {
		pthread_mutex_lock(&rs->mu);
		rs->stop = true;
		pthread_cond_signal(&rs->cv);
		pthread_mutex_unlock(&rs->mu);
		pthread_join(rs->thread, NULL);
		rs->started = false;
	}
	lists[0] = rs->todo_head;
	lists[1] = rs->done_head;
	rs->todo_head = rs->todo_tail = rs->done_head = rs->done_tail = NULL;
	for (int i = 0; i < 2; i++) {
		while (lists[i]) {
			resolve_job *next = lists[i]->next;
			resolve_job_free(lists[i]);
			lists[i] = next;
		}
	}
	if (rs->efd >= 0) {
		evloop_io_del(pool->loop, rs->efd);
		close(rs->efd);
		rs->efd = -1;
	}
}

/* ---- connections of an origin ---- */

static void oc_unlink(h2_origin *o, origin_conn *oc)
{
	if (oc->prev)
		oc->prev->next = oc->next;
	else
		o->conns = oc->next;
	if (oc->next)
		oc->next->prev = oc->prev;
}

static pgw_err origin_open_conn(h2_origin *o)
{
	h2pool *pool = o->pool;
	h2conn_opts co = {
		.host = o->host,
		.host_is_ip = o->host_is_ip,
		.label = o->authority,
		.connect_timeout_ms = pool->opts.connect_timeout_ms,
		.ping_interval_ms = pool->opts.ping_interval_ms,
		.ping_timeout_ms = pool->opts.ping_timeout_ms,
	};
	origin_conn *oc = calloc(1, sizeof *oc);
	resolve_job *job = NULL;

	if (!oc)
		return PGW_ENOMEM;
	oc->origin = o;
	oc->id = ++o->last_conn_id;
	if (h2conn_new(pool->loop, o->ctx, &co, &pool_conn_events, oc, &oc->conn) != PGW_OK)
		goto fail;
	if (o->host_is_ip) {
		struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
					 .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
		struct addrinfo *ai = NULL;
		if (getaddrinfo(o->host, o->port, &hints, &ai) != 0)
			goto fail;
		h2conn_connect(oc->conn, ai);
	} else {
		job = calloc(1, sizeof *job);
		if (!job)
			goto fail;
		job->oc = oc;
		job->host = strdup(o->host);
		job->port = strdup(o->port);
		if (!job->host || !job->port || resolver_submit(pool, job) != PGW_OK)
			goto fail;
		oc->job = job;
	}
	oc->next = o->conns;
	if (o->conns)
		o->conns->prev = oc;
	o->conns = oc;
	return PGW_OK;
fail:
	if (job)
		resolve_job_free(job);
	h2conn_free(oc->conn);
	free(oc);
	return PGW_ENOMEM;
}

static int origin_count(const h2_origin *o, bool (*pred)(const h2conn *))
{
	int n = 0;
	for (const origin_conn *oc = o->conns; oc; oc = oc->next)
		n += pred(oc->conn);
	return n;
}

static bool conn_is_live(const h2conn *c)
{
	return !h2conn_is_draining(c);
}

/* No ready connection, none on its way, and the last attempt failed: a
 * request now would only wait for the next backoff round. */
static bool origin_is_down(const h2_origin *o)
{
	return o->failures > 0 && origin_count(o, h2conn_is_ready) == 0 &&
	       origin_count(o, h2conn_is_connecting) == 0;
}

static uint32_t pool_jitter(h2pool *pool)
{
	uint32_t x = pool->jitter_state;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	pool->jitter_state = x;
	return x;
}

static void reconnect_fire(void *arg)
{
	h2_origin *o = arg;

	o->reconnect_timer = NULL;
	origin_maintain(o);
}

/* 100 ms doubling to 10 s, each delay drawn from its upper half. */
static void origin_schedule_reconnect(h2_origin *o)
{
	h2pool *pool = o->pool;
	int64_t base = POOL_BACKOFF_MIN_MS;
	int64_t delay;

	if (o->reconnect_timer || pool->closing)
		return;
	for (int i = 1; i < o->failures && base < POOL_BACKOFF_MAX_MS; i++)
		base *= 2;
	if (base > POOL_BACKOFF_MAX_MS)
		base = POOL_BACKOFF_MAX_MS;
	delay = base / 2 + pool_jitter(pool) % (uint32_t)(base / 2 + 1);
	o->reconnect_timer = evloop_timer_add(pool->loop, delay, reconnect_fire, o);
}

/* Keep `connections` live (ready or coming up) connections, unless a
 * backoff delay is running. */
static void origin_maintain(h2_origin *o)
{
	int live;

	if (o->reconnect_timer || o->pool->closing)
		return;
	live = origin_count(o, conn_is_live);
	while (live < o->connections) {
		if (origin_open_conn(o) != PGW_OK) {
			origin_schedule_reconnect(o);
			return;
		}
		live++;
	}
}

/* Every ready connection is full: one more, up to max_connections, one at a
 * time. */
static void origin_grow(h2_origin *o)
{
	if (o->reconnect_timer || o->pool->closing)
		return;
	if (origin_count(o, h2conn_is_connecting) > 0)
		return;
	if (origin_count(o, conn_is_live) >= o->max_connections)
		return;
	if (origin_open_conn(o) != PGW_OK)
		origin_schedule_reconnect(o);
}

static origin_conn *origin_pick(h2_origin *o)
{
	origin_conn *best = NULL;
	int best_free = 0;

	for (origin_conn *oc = o->conns; oc; oc = oc->next) {
		int room = h2conn_free_streams(oc->conn);
		if (room > best_free) {
			best = oc;
			best_free = room;
		}
	}
	return best;
}

static void origin_dispatch(h2_origin *o)
{
	while (o->queue.head && !o->pool->closing) {
		origin_conn *oc = origin_pick(o);
		h2req *r;

		if (!oc) {
			origin_grow(o);
			return;
		}
		r = list_pop_front(&o->queue);
		if (req_submit(r, oc) != PGW_OK) {
			/* that connection now drains; a replacement is opened */
			list_push_front(&o->queue, r);
			origin_maintain(o);
		}
	}
}

static void origin_fail_queue(h2_origin *o, h2_result result, const char *why)
{
	h2req *r;

	while ((r = list_pop_front(&o->queue)))
		req_finish(r, result, why);
}

/* ---- connection events ---- */

static void on_conn_ready(void *owner, h2conn *c)
{
	origin_conn *oc = owner;
	h2_origin *o = oc->origin;

	o->handshakes++;
	o->failures = 0;
	origin_dispatch(o);
}

static void on_conn_capacity(void *owner, h2conn *c)
{
	origin_conn *oc = owner;
	origin_dispatch(oc->origin);
}

static void on_conn_goaway(void *owner, h2conn *c, uint32_t error_code)
{
	origin_conn *oc = owner;
	h2_origin *o = oc->origin;

	o->goaways++;
	origin_maintain(o);
	origin_dispatch(o);
}

static void on_conn_headers_sent(void *owner, h2conn *c)
{
	origin_conn *oc = owner;
	oc->origin->requests_sent++;
}

/* Refused streams were not processed: back to the front of the queue, a few
 * times at most. */
static void req_requeue(h2req *r, const char *why)
{
	h2_origin *o = r->origin;

	if (r->resends >= POOL_MAX_RESENDS) {
		req_finish(r, H2_ERR_REFUSED, why);
		return;
	}
	r->resends++;
	r->state = REQ_QUEUED;
	list_push_front(&o->queue, r);
}

static void on_conn_stream_end(void *owner, h2conn *c, void *stream_arg, h2conn_end end,
			       const char *why)
{
	h2req *r = stream_arg;
	h2_origin *o = r->origin;

	list_remove(&o->inflight, r);
	r->oc = NULL;
	r->stream = NULL;
	switch (end) {
	case H2CONN_END_DONE:
		req_finish(r, H2_OK, NULL);
		break;
	case H2CONN_END_REFUSED:
		req_requeue(r, why);
		break;
	case H2CONN_END_LOST:
		req_finish(r, H2_ERR_LOST, why);
		break;
	}
}

static void origin_connect_failed(h2_origin *o, const char *why, bool cert_refused)
{
	o->connect_failures++;
	o->failures++;
	o->cert_refused = cert_refused;
	snprintf(o->last_error, sizeof o->last_error, "%s", why);
	/* a dead upstream answers at once rather than at every deadline */
	if (origin_count(o, h2conn_is_ready) == 0 && origin_count(o, h2conn_is_connecting) == 0)
		origin_fail_queue(o, cert_refused ? H2_ERR_CLIENT_CERT : H2_ERR_CONNECT, why);
	origin_schedule_reconnect(o);
}

static void on_conn_closed(void *owner, h2conn *c, bool was_ready, bool clean, const char *why)
{
	origin_conn *oc = owner;
	h2_origin *o = oc->origin;

	if (oc->job)
		oc->job->oc = NULL;
	oc_unlink(o, oc);
	free(oc);
	if (!was_ready)
		origin_connect_failed(o, why, h2conn_credential_refused(c));
	else if (!clean)
		origin_schedule_reconnect(o);
	origin_maintain(o);
	origin_dispatch(o);
}

static const h2conn_events pool_conn_events = {
	.ready = on_conn_ready,
	.capacity = on_conn_capacity,
	.goaway = on_conn_goaway,
	.headers_sent = on_conn_headers_sent,
	.stream_end = on_conn_stream_end,
	.closed = on_conn_closed,
};

/* ---- origins ---- */

/* "https://host[:port][/path]" with host a name, IPv4 or [IPv6]. */
static pgw_err origin_parse_url(h2_origin *o, const char *url)
{
	const char *p, *end, *host_end, *port_str = NULL;
	char host[256];
	size_t hlen;
	long port = 443;
	unsigned char addr[16];

	if (!url || strncasecmp(url, "https://", 8) != 0)
		return PGW_EINVAL;
	p = url + 8;
	end = p + strcspn(p, "/?#");
	if (memchr(p, '@', (size_t)(end - p)))
		return PGW_EINVAL;
	if (*p == '[') {
		host_end = memchr(p, ']', (size_t)(end - p));
		if (!host_end)
			return PGW_EINVAL;
		p++;
		if (host_end + 1 < end) {
			if (host_end[1] != ':')
				return PGW_EINVAL;
			port_str = host_end + 2;
		}
	} else {
		host_end = memchr(p, ':', (size_t)(end - p));
		if (host_end)
			port_str = host_end + 1;
		else
			host_end = end;
	}
	hlen = (size_t)(host_end - p);
	if (hlen == 0 || hlen >= sizeof host)
		return PGW_EINVAL;
	memcpy(host, p, hlen);
	host[hlen] = '\0';
	if (port_str) {
		char *stop;
		if (port_str == end)
			return PGW_EINVAL;
		port = strtol(port_str, &stop, 10);
		if (stop != end || port < 1 || port > 65535)
			return PGW_EINVAL;
	}
	o->host_is_ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
	o->host = strdup(host);
	o->port = malloc(8);
	o->authority = malloc(hlen + 10);
	if (!o->host || !o->port || !o->authority)
		return PGW_ENOMEM;
	snprintf(o->port, 8, "%ld", port);
	if (strchr(host, ':'))
		snprintf(o->authority, hlen + 10, port == 443 ? "[%s]" : "[%s]:%ld", host, port);
	else
		snprintf(o->authority, hlen + 10, port == 443 ? "%s" : "%s:%ld", host, port);
	return PGW_OK;
}

static void log_tls_setup_error(const char *what, const char *file)
{
	char e[160] = "unknown error";
	unsigned long code = ERR_peek_last_error();

	if (code)
		ERR_error_string_n(code, e, sizeof e);
	ERR_clear_error();
	pgw_log(PGW_LOG_ERROR, "upstream TLS set-up failed", "what", what, "file",
		file ? file : "", "reason", e, NULL);
}

/* True when dir holds OpenSSL's hashed names (<8 hex>.<n>), as Debian's
 * update-ca-certificates makes them. */
static bool dir_is_hashed(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	bool hashed = false;

	if (!d)
		return false;
	while (!hashed && (e = readdir(d))) {
		const char *n = e->d_name;
		size_t i;

		for (i = 0; i < 8 && isxdigit((unsigned char)n[i]); i++)
			;
		hashed = i == 8 && n[8] == '.' && isdigit((unsigned char)n[9]);
	}
	closedir(d);
	return hashed;
}

/* The system trust store plus ca_file, made once for every origin. The
 * system part is read by its hashed directory when there is one, so a
 * certificate is loaded when a chain needs it: parsing the whole bundle
 * (~140 certificates) per TLS context cost ~1 MB of heap each and most of
 * start-up's CPU. The bundle file is read when the directory is not hashed
 * or SSL_CERT_FILE names one. A missing system store is no error (a
 * ca_file may be all there is); a ca_file that does not load is. */
static pgw_err pool_trust(h2pool *pool, X509_STORE **out)
{
	const char *dir = getenv(X509_get_default_cert_dir_env());
	const char *file = getenv(X509_get_default_cert_file_env());
	X509_STORE *st;
	bool hashed;

	if (pool->trust) {
		*out = pool->trust;
		return PGW_OK;
	}
	st = X509_STORE_new();
	if (!st)
		return PGW_ENOMEM;
	if (!dir)
		dir = X509_get_default_cert_dir();
	hashed = dir_is_hashed(dir);
	if (hashed)
		X509_STORE_load_path(st, dir);
	if (file || !hashed)
		X509_STORE_load_file(st, file ? file : X509_get_default_cert_file());
	ERR_clear_error();
	if (pool->ca_file && X509_STORE_load_file(st, pool->ca_file) != 1) {
		log_tls_setup_error("ca_file", pool->ca_file);
		X509_STORE_free(st);
		return PGW_ETLS;
	}
	pool->trust = st;
	*out = st;
	return PGW_OK;
}

static pgw_err tls_ctx_new(h2pool *pool, const h2_origin_opts *oo, SSL_CTX **out)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	const char *key = oo->client_key_file ? oo->client_key_file : oo->client_cert_file;
	X509_STORE *trust;
	pgw_err err;

	*out = NULL;
	if (!ctx)
		return PGW_ENOMEM;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	err = pool_trust(pool, &trust);
	if (err != PGW_OK) {
		SSL_CTX_free(ctx);
		return err;
	}
	SSL_CTX_set1_cert_store(ctx, trust);
	if (SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)"\x02h2", 3) != 0)
		goto fail;
	if (oo->client_cert_file) {
		if (SSL_CTX_use_certificate_chain_file(ctx, oo->client_cert_file) != 1) {
			log_tls_setup_error("client certificate", oo->client_cert_file);
			goto fail;
		}
		if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_check_private_key(ctx) != 1) {
			log_tls_setup_error("client key", key);
			goto fail;
		}
	}
	*out = ctx;
	return PGW_OK;
fail:
	SSL_CTX_free(ctx);
	return PGW_ETLS;
}

static void origin_free(h2_origin *o)
{
	if (!o)
		return;
	SSL_CTX_free(o->ctx);
	free(o->host);
	free(o->port);
	free(o->authority);
	free(o);
}

pgw_err h2pool_origin_open(h2pool *pool, const h2_origin_opts *opts, h2_origin **out)
{
	h2_origin *o;
	pgw_err err;

	*out = NULL;
	if (!pool || !opts || opts->connections < 1)
		return PGW_EINVAL;
	if (pool->closing)
		return PGW_ESTATE;
	if (opts->client_key_file && !opts->client_cert_file)
		return PGW_EINVAL;
	o = calloc(1, sizeof *o);
	if (!o)
		return PGW_ENOMEM;
	o->pool = pool;
	o->connections = opts->connections;
	o->max_connections = opts->max_connections > opts->connections ? opts->max_connections
									: opts->connections;
	err = origin_parse_url(o, opts->url);
	if (err == PGW_OK)
		err = tls_ctx_new(pool, opts, &o->ctx);
	if (err != PGW_OK) {
		origin_free(o);
		return err;
	}
	o->next = pool->origins;
	pool->origins = o;
	origin_maintain(o);
	*out = o;
	return PGW_OK;
}

pgw_err h2pool_send(h2_origin *o, const h2_request *req)
{
	h2pool *pool;
	h2req *r;
	int64_t now;

	if (!o || !req || !req->cb || !req->method || !req->path ||
	    (req->n_headers && !req->headers) || (req->body_len && !req->body))
		return PGW_EINVAL;
	pool = o->pool;
	if (pool->closing)
		return PGW_ESTATE;
	r = req_new(o, req);
	if (!r)
		return PGW_ENOMEM;
	now = pgw_now_ms();
	if (req->deadline_ms && req->deadline_ms <= now) {
		req_finish(r, H2_ERR_TIMEOUT, "deadline passed before sending");
		return PGW_OK;
	}
	if (origin_is_down(o)) {
		req_finish(r, o->cert_refused ? H2_ERR_CLIENT_CERT : H2_ERR_CONNECT, o->last_error);
		return PGW_OK;
	}
	if (o->queue.n >= pool->opts.max_queue) {
		req_finish(r, H2_ERR_OVERFLOW, "origin queue full");
		return PGW_OK;
	}
	if (req->deadline_ms) {
		r->deadline_timer = evloop_timer_add(pool->loop, req->deadline_ms - now,
						     req_deadline_fire, r);
		if (!r->deadline_timer) {
			req_free(r);
			return PGW_ENOMEM;
		}
	}
	r->state = REQ_QUEUED;
	list_push_back(&o->queue, r);
	origin_dispatch(o);
	return PGW_OK;
}

void h2pool_origin_stats(const h2_origin *o, h2_origin_stats *out)
{
	memset(out, 0, sizeof *out);
	for (const origin_conn *oc = o->conns; oc; oc = oc->next) {
		out->connections_open += h2conn_is_ready(oc->conn);
		out->streams_active += h2conn_open_streams(oc->conn);
	}
	out->queued = o->queue.n;
	out->handshakes = o->handshakes;
	out->connect_failures = o->connect_failures;
	out->requests_sent = o->requests_sent;
	out->goaways = o->goaways;
}

void h2pool_conn_recycle(h2_origin *o, uint64_t conn_id)
{
	origin_conn *oc;

	for (oc = o->conns; oc; oc = oc->next)
		if (oc->id == conn_id)
			break;
	/* already gone or going: its replacement is on its way */
	if (!oc || h2conn_is_draining(oc->conn))
		return;
	h2conn_drain(oc->conn);
	pgw_log(PGW_LOG_INFO, "upstream connection recycled", "origin", o->authority, NULL);
	origin_maintain(o);
}

/* ---- pool ---- */

pgw_err h2pool_new(evloop *loop, const h2pool_opts *opts, h2pool **out)
{
	h2pool *pool;
	h2pool_opts defaults = {0};

	*out = NULL;
	if (!loop)
		return PGW_EINVAL;
	pool = calloc(1, sizeof *pool);
	if (!pool)
		return PGW_ENOMEM;
	pool->loop = loop;
	pool->opts = opts ? *opts : defaults;
	if (pool->opts.ping_interval_ms <= 0)
		pool->opts.ping_interval_ms = 60000;
	if (pool->opts.ping_timeout_ms <= 0)
		pool->opts.ping_timeout_ms = 10000;
	if (pool->opts.connect_timeout_ms <= 0)
		pool->opts.connect_timeout_ms = 10000;
	if (pool->opts.max_queue <= 0)
		pool->opts.max_queue = 100000;
	pool->res.efd = -1;
	pthread_mutex_init(&pool->res.mu, NULL);
	pthread_cond_init(&pool->res.cv, NULL);
	if (pgw_random_bytes(&pool->jitter_state, sizeof pool->jitter_state) != PGW_OK ||
	    pool->jitter_state == 0)
		pool->jitter_state = (uint32_t)pgw_now_us() | 1;
	if (opts && opts->ca_file) {
		pool->ca_file = strdup(opts->ca_file);
		if (!pool->ca_file)
			goto fail;
	}
	pool->opts.ca_file = pool->ca_file;
	pool->res.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (pool->res.efd < 0 ||
	    evloop_io_add(loop, pool->res.efd, EPOLLIN, resolver_on_done, pool) != PGW_OK)
		goto fail;
	*out = pool;
	return PGW_OK;
fail:
	pool_destroy(pool);
	return PGW_ENOMEM;
}

/* Every request still owned by an origin gets H2_ERR_SHUTDOWN. */
static void origin_shutdown(h2_origin *o)
{
	h2pool *pool = o->pool;
	origin_conn *oc;
	h2req *r;

	evloop_timer_cancel(pool->loop, o->reconnect_timer);
	o->reconnect_timer = NULL;
	while ((oc = o->conns)) {
		o->conns = oc->next;
		if (oc->job)
			oc->job->oc = NULL;
		h2conn_free(oc->conn);
		free(oc);
	}
	while ((r = list_pop_front(&o->inflight)))
		req_finish(r, H2_ERR_SHUTDOWN, "pool shut down");
	while ((r = list_pop_front(&o->queue)))
		req_finish(r, H2_ERR_SHUTDOWN, "pool shut down");
}

static void pool_destroy(h2pool *pool)
{
	h2_origin *o;

	pool->closing = true;
	evloop_timer_cancel(pool->loop, pool->deliver_timer);
	pool->deliver_timer = NULL;
	for (o = pool->origins; o; o = o->next)
		origin_shutdown(o);
	resolver_stop(pool);
	/* callbacks may try to send again: closing makes that PGW_ESTATE */
	pool->delivering = true;
	while (pool->done.head) {
		h2req *r = list_pop_front(&pool->done);
		req_deliver(r);
	}
	while ((o = pool->origins)) {
		pool->origins = o->next;
		origin_free(o);
	}
	pthread_mutex_destroy(&pool->res.mu);
	pthread_cond_destroy(&pool->res.cv);
	X509_STORE_free(pool->trust);
	free(pool->ca_file);
	free(pool);
}

void h2pool_free(h2pool *pool)
{
	if (!pool)
		return;
	if (pool->delivering) {
		/* called from a response callback: finish the batch first */
		pool->free_requested = true;
		pool->closing = true;
		return;
	}
	pool_destroy(pool);
}
