/* Control port (see sim_control.h): a deliberately tiny HTTP/1.1 server. It
 * reads one request (head plus Content-Length body), answers with
 * "Connection: close" and closes. Event loop thread only. */
#include "sim_control.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "sim.h"
#include "sim_auth.h"
#include "sim_h2.h"
#include "sim_loop.h"
#include "sim_net.h"
#include "sim_oauth.h"
#include "sim_records.h"
#include "sim_script.h"

#define SIM_CTL_MAX_REQUEST (16u << 20)

struct sim_ctl_conn {
	struct sim_io io;
	int fd;
	struct sim_control *ctl;
	struct sim_ctl_conn *prev;
	struct sim_ctl_conn *next;
	struct sim_buf in;
	struct sim_buf out;
	size_t out_off;
	bool answered;
	bool continued; /* sent "100 Continue" */
	bool stop_after;
	bool dead;
	struct sim_defer defer;
};

struct sim_control {
	struct sim *sim;
	struct sim_io listen_io;
	int port;
	struct sim_ctl_conn *conns;
};

/* A parsed request; pointers into the connection's input buffer. */
struct sim_ctl_request {
	char method[16];
	char path[256];
	char query[256];
	const char *body;
	size_t body_len;
};

struct sim_ctl_response {
	int status;
	json_t *doc; /* owned */
};

/* ---- connections ---- */

static void sim_ctl_conn_free(void *arg)
{
	struct sim_ctl_conn *c = arg;

	sim_buf_release(&c->in);
	sim_buf_release(&c->out);
	free(c);
}

static void sim_ctl_conn_close(struct sim_ctl_conn *c)
{
	struct sim_loop *loop = c->ctl->sim->loop;

	if (c->dead)
		return;
	c->dead = true;
	sim_loop_unwatch(loop, &c->io);
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		c->ctl->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	sim_loop_defer(loop, &c->defer, sim_ctl_conn_free, c);
}

/* ---- actions ---- */

static json_t *sim_ctl_stats(struct sim *sim)
{
	const struct sim_stats *s = &sim->stats;

	return json_pack("{sI sI sI sI sI sI sI sI sI sI sI}", "handshakes",
			 (json_int_t)s->handshakes, "connections_open",
			 (json_int_t)s->connections_open, "connections_total",
			 (json_int_t)s->connections_total, "requests", (json_int_t)s->requests,
			 "answered_200", (json_int_t)s->answered_200, "distinct_jwts",
			 (json_int_t)sim_auth_distinct(sim->auth), "max_streams_in_flight",
			 (json_int_t)s->max_streams_in_flight, "goaways_sent",
			 (json_int_t)s->goaways_sent, "fcm_requests", (json_int_t)s->fcm_requests,
			 "oauth_requests", (json_int_t)s->oauth_requests, "oauth_issued",
			 (json_int_t)s->oauth_issued);
}

static void sim_ctl_reset(struct sim *sim)
{
	uint64_t open = sim->stats.connections_open;

	memset(&sim->stats, 0, sizeof(sim->stats));
	sim->stats.connections_open = open;
	sim_records_clear(sim->records);
	sim_script_clear(sim->script);
	sim_auth_reset(sim->auth);
	sim_oauth_reset(sim->oauth);
}

static json_t *sim_ctl_error(struct sim_ctl_response *res, int status, const char *msg)
{
	res->status = status;
	return json_pack("{ss}", "error", msg);
}

/* Finds NAME=VALUE in a query string and parses VALUE as an unsigned number:
 * 1 when found and good, 0 when absent, -1 when not a number up to max. */
static int sim_ctl_query_find(const char *query, const char *name, unsigned long long max,
			      unsigned long long *out)
{
	size_t n = strlen(name);
	const char *p = query;

	while (p && *p) {
		if (strncmp(p, name, n) == 0 && p[n] == '=') {
			char value[32];
			size_t len = strcspn(p + n + 1, "&");

			if (len >= sizeof(value))
				return -1;
			memcpy(value, p + n + 1, len);
			value[len] = '\0';
			return sim_parse_uint(value, max, out) ? 1 : -1;
		}
		p = strchr(p, '&');
		if (p)
			p++;
	}
	return 0;
}

static bool sim_ctl_query_uint(const char *query, const char *name, unsigned long long max,
			       unsigned long long *out)
{
	return sim_ctl_query_find(query, name, max, out) == 1;
}

/* POST /oauth?ttl=N&fail=N&revoke=1&delay_ms=N, any of them; answers the new
 * state. */
static json_t *sim_ctl_oauth(struct sim *sim, const struct sim_ctl_request *req,
			     struct sim_ctl_response *res)
{
	unsigned long long ttl = 0, fail = 0, revoke = 0, delay = 0;
	int has_ttl = sim_ctl_query_find(req->query, "ttl", 86400, &ttl);
	int has_fail = sim_ctl_query_find(req->query, "fail", 1000000, &fail);
	int has_revoke = sim_ctl_query_find(req->query, "revoke", 1, &revoke);
	int has_delay = sim_ctl_query_find(req->query, "delay_ms", 600000, &delay);

	if (has_ttl < 0 || (has_ttl && ttl == 0) || has_fail < 0 || has_revoke < 0 ||
	    has_delay < 0 || has_ttl + has_fail + has_revoke + has_delay == 0)
		return sim_ctl_error(res, 400,
				     "expected ?ttl=N (1..86400), ?fail=N, ?revoke=1 and/or ?delay_ms=N (0..600000)");
	if (has_ttl)
		sim_oauth_set_ttl(sim->oauth, (unsigned)ttl);
	if (has_fail)
		sim_oauth_fail_next(sim->oauth, (unsigned)fail);
	if (revoke)
		sim_oauth_revoke_all(sim->oauth);
	if (has_delay)
		sim_oauth_set_delay(sim->oauth, (unsigned)delay);
	return sim_oauth_state_json(sim->oauth, sim_wall_ms());
}

static json_t *sim_ctl_script(struct sim *sim, const struct sim_ctl_request *req,
			      struct sim_ctl_response *res)
{
	json_error_t jerr;
	json_t *doc = json_loadb(req->body, req->body_len, 0, &jerr);
	char err[256];
	int rv;

	if (!doc)
		return sim_ctl_error(res, 400, jerr.text);
	rv = sim_script_merge(sim->script, doc, err, sizeof(err));
	json_decref(doc);
	if (rv < 0)
		return sim_ctl_error(res, 400, err);
	return json_pack("{sb}", "ok", 1);
}

static json_t *sim_ctl_post(struct sim *sim, const struct sim_ctl_request *req,
			    struct sim_ctl_response *res, bool *stop)
{
	unsigned long long n;

	if (strcmp(req->path, "/script") == 0)
		return sim_ctl_script(sim, req, res);
	if (strcmp(req->path, "/reset") == 0) {
		sim_ctl_reset(sim);
		return json_pack("{sb}", "ok", 1);
	}
	if (strcmp(req->path, "/goaway") == 0)
		return json_pack("{sI}", "connections", (json_int_t)sim_h2_goaway_all(sim->h2));
	if (strcmp(req->path, "/drop") == 0)
		return json_pack("{sI}", "connections", (json_int_t)sim_h2_drop_all(sim->h2));
	if (strcmp(req->path, "/settings") == 0) {
		if (!sim_ctl_query_uint(req->query, "max_streams", UINT32_MAX, &n))
			return sim_ctl_error(res, 400, "expected ?max_streams=N");
		sim->max_streams = (uint32_t)n;
		return json_pack("{sI sI}", "max_streams", (json_int_t)n, "connections",
				 (json_int_t)sim_h2_set_max_streams(sim->h2, (uint32_t)n));
	}
	if (strcmp(req->path, "/delay") == 0) {
		if (!sim_ctl_query_uint(req->query, "ms", 3600000, &n))
			return sim_ctl_error(res, 400, "expected ?ms=N (0..3600000)");
		sim->delay_ms = (unsigned)n;
		return json_pack("{sI}", "delay_ms", (json_int_t)n);
	}
	if (strcmp(req->path, "/oauth") == 0)
		return sim_ctl_oauth(sim, req, res);
	if (strcmp(req->path, "/shutdown") == 0) {
		*stop = true;
		return json_pack("{sb}", "ok", 1);
	}
	return NULL;
}

static bool sim_ctl_is_get_path(const char *path)
{
	return strcmp(path, "/stats") == 0 || strcmp(path, "/requests") == 0;
}

static json_t *sim_ctl_handle(struct sim *sim, const struct sim_ctl_request *req,
			      struct sim_ctl_response *res, bool *stop)
{
	json_t *doc;

	res->status = 200;
	if (strcmp(req->method, "GET") == 0) {
		if (strcmp(req->path, "/stats") == 0)
			return sim_ctl_stats(sim);
		if (strcmp(req->path, "/requests") == 0)
			return sim_records_json(sim->records);
		if (strcmp(req->path, "/oauth") == 0)
			return sim_oauth_state_json(sim->oauth, sim_wall_ms());
		return sim_ctl_error(res, 404, "no such control endpoint");
	}
	if (strcmp(req->method, "POST") != 0)
		return sim_ctl_error(res, 405, "use GET or POST");
	doc = sim_ctl_post(sim, req, res, stop);
	if (doc)
		return doc;
	if (sim_ctl_is_get_path(req->path))
		return sim_ctl_error(res, 405, "use GET");
	return sim_ctl_error(res, 404, "no such control endpoint");
}

/* ---- HTTP/1.1 ---- */

static const char *sim_ctl_status_text(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 413:
		return "Payload Too Large";
	}
	return "Internal Server Error";
}

static void sim_ctl_write(struct sim_ctl_conn *c)
{
	while (c->out_off < c->out.len) {
		ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off,
				 MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				sim_loop_modify(c->ctl->sim->loop, &c->io, EPOLLOUT);
				return;
			}
			break;
		}
		c->out_off += (size_t)n;
	}
	if (!c->answered)
		return;
	if (c->stop_after)
		sim_loop_stop(c->ctl->sim->loop);
	sim_ctl_conn_close(c);
}

static void sim_ctl_respond(struct sim_ctl_conn *c, int status, json_t *doc)
{
	char *body = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	const char *text = body ? body : "{\"error\":\"out of memory\"}";

	c->out.len = 0;
	c->out_off = 0;
	sim_buf_printf(&c->out,
		       "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
		       "Content-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
		       status, sim_ctl_status_text(status), strlen(text) + 1, text);
	free(body);
	json_decref(doc);
	c->answered = true;
	sim_ctl_write(c);
}

/* Copies the value of header name into out: 1 when found, 0 when absent, -1
 * when too long. */
static long long sim_ctl_head_value(const char *head, size_t headlen, const char *name,
				    char *out, size_t outlen)
{
	const char *p = memchr(head, '\n', headlen);
	size_t n = strlen(name);

	while (p && (size_t)(p - head) < headlen) {
		p++;
		if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
			const char *v = p + n + 1;
			size_t len;

			while (*v == ' ' || *v == '\t')
				v++;
			len = strcspn(v, "\r\n");
			if (len >= outlen)
				return -1;
			memcpy(out, v, len);
			out[len] = '\0';
			return 1;
		}
		p = memchr(p, '\n', headlen - (size_t)(p - head));
	}
	return 0;
}

static int sim_ctl_parse_line(const char *head, struct sim_ctl_request *req)
{
	char target[512];
	char *q;

	if (sscanf(head, "%15s %511s HTTP/1.", req->method, target) != 2)
		return -1;
	q = strchr(target, '?');
	if (q)
		*q++ = '\0';
	if (strlen(target) >= sizeof(req->path) || (q && strlen(q) >= sizeof(req->query)))
		return -1;
	strcpy(req->path, target);
	strcpy(req->query, q ? q : "");
	return 0;
}

/* Returns 1 when a whole request is in, 0 when more is needed, -1 when bad. */
static int sim_ctl_parse(struct sim_ctl_conn *c, struct sim_ctl_request *req)
{
	const char *end = c->in.data ? strstr(c->in.data, "\r\n\r\n") : NULL;
	size_t headlen, total;
	unsigned long long clen = 0;
	char value[64];

	if (!end)
		return c->in.len > 65536 ? -1 : 0;
	headlen = (size_t)(end - c->in.data) + 4;
	memset(req, 0, sizeof(*req));
	if (sim_ctl_parse_line(c->in.data, req) < 0)
		return -1;
	if (sim_ctl_head_value(c->in.data, headlen, "Content-Length", value, sizeof(value)) &&
	    !sim_parse_uint(value, SIM_CTL_MAX_REQUEST, &clen))
		return -1;
	if (!c->continued && clen &&
	    sim_ctl_head_value(c->in.data, headlen, "Expect", value, sizeof(value)) > 0 &&
	    strcasecmp(value, "100-continue") == 0) {
		c->continued = true;
		send(c->fd, "HTTP/1.1 100 Continue\r\n\r\n", 25, MSG_NOSIGNAL);
	}
	total = headlen + (size_t)clen;
	if (c->in.len < total)
		return 0;
	req->body = c->in.data + headlen;
	req->body_len = (size_t)clen;
	return 1;
}

static void sim_ctl_on_request(struct sim_ctl_conn *c)
{
	struct sim_ctl_request req;
	struct sim_ctl_response res = { 200, NULL };
	bool stop = false;
	int rv = sim_ctl_parse(c, &req);

	if (rv == 0)
		return;
	if (rv < 0) {
		sim_ctl_respond(c, 400, json_pack("{ss}", "error", "bad HTTP request"));
		return;
	}
	res.doc = sim_ctl_handle(c->ctl->sim, &req, &res, &stop);
	c->stop_after = stop;
	sim_ctl_respond(c, res.status, res.doc);
}

static void sim_ctl_read(struct sim_ctl_conn *c)
{
	char buf[16384];

	for (;;) {
		ssize_t n = recv(c->fd, buf, sizeof(buf), 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			/* A client may half-close after sending its request. */
			if (n == 0)
				sim_ctl_on_request(c);
			if (!c->answered)
				sim_ctl_conn_close(c);
			return;
		}
		if (c->in.len + (size_t)n > SIM_CTL_MAX_REQUEST ||
		    sim_buf_append(&c->in, buf, (size_t)n) < 0) {
			sim_ctl_respond(c, 413, json_pack("{ss}", "error", "request too large"));
			return;
		}
	}
	sim_ctl_on_request(c);
}

static void sim_ctl_on_io(void *arg, uint32_t events)
{
	struct sim_ctl_conn *c = arg;

	if (c->answered) {
		sim_ctl_write(c);
		return;
	}
	sim_ctl_read(c);
}

static void sim_ctl_on_accept(void *arg, uint32_t events)
{
	struct sim_control *ctl = arg;

	for (;;) {
		int fd = accept4(ctl->listen_io.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct sim_ctl_conn *c;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return;
		}
		c = calloc(1, sizeof(*c));
		if (!c || sim_loop_watch(ctl->sim->loop, &c->io, fd, EPOLLIN, sim_ctl_on_io, c) < 0) {
			free(c);
			close(fd);
			continue;
		}
		sim_net_nodelay(fd);
		c->fd = fd;
		c->ctl = ctl;
		c->next = ctl->conns;
		if (ctl->conns)
			ctl->conns->prev = c;
		ctl->conns = c;
	}
}

/* ---- public ---- */

struct sim_control *sim_control_new(struct sim *sim, const char *addr, char *err, size_t errlen)
{
	struct sim_control *ctl = calloc(1, sizeof(*ctl));
	int fd;

	if (!ctl) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	ctl->sim = sim;
	ctl->listen_io.fd = -1;
	fd = sim_net_listen(addr, err, errlen);
	if (fd < 0)
		goto fail;
	ctl->port = sim_net_local_port(fd);
	if (sim_loop_watch(sim->loop, &ctl->listen_io, fd, EPOLLIN, sim_ctl_on_accept, ctl) < 0) {
		snprintf(err, errlen, "cannot watch %s: %s", addr, strerror(errno));
		close(fd);
		goto fail;
	}
	return ctl;
fail:
	free(ctl);
	return NULL;
}

void sim_control_free(struct sim_control *ctl)
{
	int fd;

	if (!ctl)
		return;
	while (ctl->conns)
		sim_ctl_conn_close(ctl->conns);
	fd = ctl->listen_io.fd;
	if (fd >= 0) {
		sim_loop_unwatch(ctl->sim->loop, &ctl->listen_io);
		close(fd);
	}
	free(ctl);
}

int sim_control_port(const struct sim_control *ctl)
{
	return ctl->port;
}
