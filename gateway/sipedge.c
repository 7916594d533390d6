/* The SIP edge's core (docs/sip-edge.md): start-up and shutdown, the SIP
 * thread running sofia-sip's su_root and NTA agent, the mailbox by which
 * other threads hand work to it, the registry jobs, the in-memory bindings
 * and the dispatch of every message that is not part of a transaction NTA
 * already knows. Threading: sipedge_start/stop/free on the main thread;
 * everything else in this file on the SIP thread, except the mailbox and
 * the registry job callbacks, which say so. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <sofia-sip/su_log.h>
#include <sofia-sip/su_tag.h>
#include <sofia-sip/tport_tag.h>
#include <sofia-sip/nta_tag.h>

#include "pushgw/log.h"
#include "pushgw/metrics.h"
#include "pushgw/util.h"
#include "sipedge_int.h"

/* ---- mailbox (any thread) ---- */

typedef struct edge_job {
	struct edge_job *next;
	edge_job_run_fn run;
	edge_job_drop_fn drop;
	void *arg;
} edge_job;

struct edge_mailbox {
	pthread_mutex_t lock;
	int efd;
	int refs;
	bool closed;
	edge_job *head, *tail;
};

edge_mailbox *edge_mailbox_new(void)
{
	edge_mailbox *mb = calloc(1, sizeof *mb);

	if (!mb)
		return NULL;
	mb->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (mb->efd < 0) {
		free(mb);
		return NULL;
	}
	pthread_mutex_init(&mb->lock, NULL);
	mb->refs = 1;
	return mb;
}

void edge_mailbox_ref(edge_mailbox *mb)
{
	pthread_mutex_lock(&mb->lock);
	mb->refs++;
	pthread_mutex_unlock(&mb->lock);
}

static void mailbox_drop_all(edge_job *j)
{
	edge_job *next;

	for (; j; j = next) {
		next = j->next;
		if (j->drop)
			j->drop(j->arg);
		free(j);
	}
}

void edge_mailbox_unref(edge_mailbox *mb)
{
	bool last;

	if (!mb)
		return;
	pthread_mutex_lock(&mb->lock);
	last = --mb->refs == 0;
	pthread_mutex_unlock(&mb->lock);
	if (!last)
		return;
	mailbox_drop_all(mb->head);
	close(mb->efd);
	pthread_mutex_destroy(&mb->lock);
	free(mb);
}

pgw_err edge_mailbox_post(edge_mailbox *mb, edge_job_run_fn run, edge_job_drop_fn drop, void *arg)
{
	edge_job *j = calloc(1, sizeof *j);
	uint64_t one = 1;
	ssize_t w;

	if (!j) {
		if (drop)
			drop(arg);
		return PGW_ENOMEM;
	}
	j->run = run;
	j->drop = drop;
	j->arg = arg;
	pthread_mutex_lock(&mb->lock);
	if (mb->closed) {
		pthread_mutex_unlock(&mb->lock);
		free(j);
		if (drop)
			drop(arg);
		return PGW_ESTATE;
	}
	if (mb->tail)
		mb->tail->next = j;
	else
		mb->head = j;
	mb->tail = j;
	w = write(mb->efd, &one, sizeof one); /* only fails when the counter is full: still woken */
	(void)w;
	pthread_mutex_unlock(&mb->lock);
	return PGW_OK;
}

/* No more posts; what is queued is dropped. */
static void mailbox_close(edge_mailbox *mb)
{
	edge_job *head;

	pthread_mutex_lock(&mb->lock);
	mb->closed = true;
	head = mb->head;
	mb->head = mb->tail = NULL;
	pthread_mutex_unlock(&mb->lock);
	mailbox_drop_all(head);
}

/* SIP thread: the eventfd is readable. */
static int mailbox_wakeup(su_root_magic_t *edge, su_wait_t *w, void *arg)
{
	edge_mailbox *mb = arg;
	edge_job *j, *next;
	uint64_t n;
	ssize_t r;

	r = read(mb->efd, &n, sizeof n);
	(void)r;
	pthread_mutex_lock(&mb->lock);
	j = mb->head;
	mb->head = mb->tail = NULL;
	pthread_mutex_unlock(&mb->lock);
	for (; j; j = next) {
		next = j->next;
		j->run(edge, j->arg);
		free(j);
	}
	return 0;
}

/* ---- registry jobs ---- */

char *edge_strdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

pgw_err edge_binding_rec_copy(registry_binding *dst, const registry_binding *src)
{
	memset(dst, 0, sizeof *dst);
	dst->id = edge_strdup(src->id);
	dst->edge = edge_strdup(src->edge);
	dst->aor = edge_strdup(src->aor);
	dst->extension = edge_strdup(src->extension);
	dst->contact = edge_strdup(src->contact);
	dst->instance = edge_strdup(src->instance);
	dst->app = edge_strdup(src->app);
	dst->expires_at_ms = src->expires_at_ms;
	dst->updated_at_ms = src->updated_at_ms;
	if ((src->id && !dst->id) || (src->edge && !dst->edge) || (src->aor && !dst->aor) ||
	    (src->extension && !dst->extension) || (src->contact && !dst->contact) ||
	    (src->instance && !dst->instance) || (src->app && !dst->app)) {
		registry_binding_clear(dst);
		return PGW_ENOMEM;
	}
	return PGW_OK;
}

edge_rjob *edge_rjob_new(sipedge *edge, edge_rjob_work_fn work, edge_rjob_done_fn done, void *ctx)
{
	edge_rjob *j = calloc(1, sizeof *j);

	if (!j)
		return NULL;
	atomic_init(&j->refs, 1);
	j->reg = edge->reg;
	j->work = work;
	j->done = done;
	j->ctx = ctx;
	j->mb = edge->mb;
	return j;
}

static void rjob_unref(void *arg)
{
	edge_rjob *j = arg;

	if (atomic_fetch_sub(&j->refs, 1) != 1)
		return;
	registry_binding_clear(&j->in);
	if (j->has_target)
		target_clear(&j->target);
	registry_binding_free(j->found);
	free(j);
}

static void rjob_work(void *arg)
{
	edge_rjob *j = arg;

	j->work(j);
}

/* SIP thread: the job's outcome, then the queue's or the mailbox's ref goes. */
static void rjob_run(sipedge *edge, void *arg)
{
	edge_rjob *j = arg;

	if (j->timed_out)
		j->rc = PGW_ETIMEOUT;
	j->done(edge, j);
	rjob_unref(j);
}

/* Queue thread or deadline thread: hand the outcome to the SIP thread. */
static void rjob_finish(void *arg, bool timed_out)
{
	edge_rjob *j = arg;

	j->timed_out = timed_out;
	atomic_fetch_add(&j->refs, 1);
	edge_mailbox_post(j->mb, rjob_run, rjob_unref, j);
}

void edge_rjob_submit(sipedge *edge, edge_rjob *j)
{
	pgw_err rc = j->rc; /* set before: the inputs could not be built */

	if (rc == PGW_OK)
		rc = registry_queue_submit(edge->rq, rjob_work, rjob_finish, rjob_unref, j,
					   pgw_now_ms() + EDGE_REGISTRY_DEADLINE_MS);
	if (rc == PGW_OK)
		return;
	j->rc = rc;
	j->done(edge, j);
	rjob_unref(j);
}

/* ---- bindings in memory ---- */

/* FNV-1a over the id: ids are random, any spread will do. */
static size_t binding_bucket(const char *id)
{
	uint32_t h = 2166136261u;

	for (; *id; id++)
		h = (h ^ (unsigned char)*id) * 16777619u;
	return h & (EDGE_BINDING_BUCKETS - 1);
}

edge_binding *edge_binding_find(sipedge *edge, const char *id)
{
	edge_binding *b;

	for (b = edge->by_id[binding_bucket(id)]; b; b = b->hnext)
		if (strcmp(b->rec.id, id) == 0)
			return b;
	return NULL;
}

void edge_binding_add(sipedge *edge, edge_binding *b)
{
	size_t k = binding_bucket(b->rec.id);

	b->prev = NULL;
	b->next = edge->bindings;
	if (b->next)
		b->next->prev = b;
	edge->bindings = b;
	b->hnext = edge->by_id[k];
	edge->by_id[k] = b;
	edge->n_bindings++;
}

void edge_binding_set_flow(edge_binding *b, tport_t *tp, const char *route)
{
	if (b->tp)
		tport_unref(b->tp);
	b->tp = tp ? tport_ref(tp) : NULL;
	snprintf(b->route, sizeof b->route, "%s", route ? route : "");
	b->flow_open = route && *route;
}

bool edge_binding_flow_usable(edge_binding *b)
{
	if (!b->flow_open || !b->route[0])
		return false;
	if (b->tp && tport_is_reliable(b->tp) &&
	    (tport_is_closed(b->tp) || tport_is_shutdown(b->tp))) {
		b->flow_open = false; /* the connection closed: the binding stays */
		return false;
	}
	return true;
}

void edge_binding_drop(sipedge *edge, edge_binding *b)
{
	edge_binding **p;

	if (b->rec.id) {
		for (p = &edge->by_id[binding_bucket(b->rec.id)]; *p; p = &(*p)->hnext) {
			if (*p == b) {
				*p = b->hnext;
				if (b->prev)
					b->prev->next = b->next;
				else
					edge->bindings = b->next;
				if (b->next)
					b->next->prev = b->prev;
				edge->n_bindings--;
				break;
			}
		}
	}
	if (b->tp)
		tport_unref(b->tp);
	registry_binding_clear(&b->rec);
	free(b);
}

void edge_update_gauges(sipedge *edge)
{
	metrics_gauge("pushgw_sip_bindings", "", (double)edge->n_bindings);
	metrics_gauge("pushgw_sip_held_invites", "", (double)edge->n_calls);
}

void edge_new_binding_id(char out[64])
{
	unsigned char r[12];

	if (pgw_random_bytes(r, sizeof r) != PGW_OK) {
		/* never a guessable id: fall back on the clock only with a loud log */
		int64_t t = pgw_now_us();
		pgw_log(PGW_LOG_ERROR, "sip: no random bytes for a binding id", NULL);
		memcpy(r, &t, sizeof t);
	}
	memcpy(out, EDGE_ID_PREFIX, sizeof EDGE_ID_PREFIX - 1);
	pgw_hex(r, sizeof r, out + sizeof EDGE_ID_PREFIX - 1);
}

/* ---- small SIP helpers ---- */

void edge_pop_via(msg_t *msg, sip_t *sip)
{
	if (sip->sip_via)
		msg_header_remove(msg, (msg_pub_t *)sip, (msg_header_t *)sip->sip_via);
}

static bool sockaddr_ip(const su_sockaddr_t *sa, int *family, const void **addr)
{
	if (sa->su_family == AF_INET) {
		*family = AF_INET;
		*addr = &sa->su_sin.sin_addr;
		return true;
	}
	if (sa->su_family == AF_INET6) {
		*family = AF_INET6;
		*addr = &sa->su_sin6.sin6_addr;
		return true;
	}
	return false;
}

/* Over UDP the PBX sends from the port it listens on, so its address and
 * port must match (phones on the PBX's own host are not the PBX); over
 * TCP/TLS its source port is any: the address alone. */
static bool backend_addr_matches(sipedge *edge, const struct sockaddr_storage *b,
				 const su_sockaddr_t *sa)
{
	bool udp = strcasecmp(edge->backend_transport, "udp") == 0;

	if (b->ss_family == AF_INET && sa->su_family == AF_INET)
		return memcmp(&((const struct sockaddr_in *)b)->sin_addr, &sa->su_sin.sin_addr, 4) == 0 &&
		       (!udp || ((const struct sockaddr_in *)b)->sin_port == sa->su_sin.sin_port);
	if (b->ss_family == AF_INET6 && sa->su_family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)b)->sin6_addr, &sa->su_sin6.sin6_addr,
			      16) == 0 &&
		       (!udp || ((const struct sockaddr_in6 *)b)->sin6_port == sa->su_sin6.sin6_port);
	return false;
}

bool edge_from_backend(sipedge *edge, msg_t *msg)
{
	su_addrinfo_t *ai = msg_addrinfo(msg);
	const void *addr;
	int family;
	size_t i;

	if (!ai || !ai->ai_addr || !sockaddr_ip((su_sockaddr_t *)ai->ai_addr, &family, &addr))
		return false;
	for (i = 0; i < edge->n_backend_addrs; i++)
		if (backend_addr_matches(edge, &edge->backend_addrs[i], (su_sockaddr_t *)ai->ai_addr))
			return true;
	for (i = 0; i < edge->cfg->sip.n_backend_sources; i++)
		if (config_cidr_contains(&edge->cfg->sip.backend_sources[i], family, addr))
			return true;
	return false;
}

bool edge_names_backend(sipedge *edge, const char *host, const char *port)
{
	char ip[INET6_ADDRSTRLEN + 2];
	unsigned char addr[16];
	size_t len, i;
	unsigned long p;
	char *end;

	if (!host || !*host)
		return false;
	p = port && *port ? strtoul(port, &end, 10) : 5060;
	if (port && *port && (*end || p > 65535))
		return false;
	if (strcasecmp(host, edge->backend->url_host) == 0 &&
	    p == (edge->backend->url_port ? strtoul(edge->backend->url_port, NULL, 10) : 5060))
		return true;
	len = strlen(host);
	if (host[0] == '[' && len > 2 && len - 2 < sizeof ip) {
		memcpy(ip, host + 1, len - 2);
		ip[len - 2] = '\0';
	} else if (len < sizeof ip) {
		memcpy(ip, host, len + 1);
	} else {
		return false;
	}
	for (i = 0; i < edge->n_backend_addrs; i++) {
		const struct sockaddr_storage *b = &edge->backend_addrs[i];
		if (b->ss_family == AF_INET && inet_pton(AF_INET, ip, addr) == 1 &&
		    memcmp(&((const struct sockaddr_in *)b)->sin_addr, addr, 4) == 0 &&
		    ntohs(((const struct sockaddr_in *)b)->sin_port) == p)
			return true;
		if (b->ss_family == AF_INET6 && inet_pton(AF_INET6, ip, addr) == 1 &&
		    memcmp(&((const struct sockaddr_in6 *)b)->sin6_addr, addr, 16) == 0 &&
		    ntohs(((const struct sockaddr_in6 *)b)->sin6_port) == p)
			return true;
	}
	return false;
}

bool edge_source_route(msg_t *msg, tport_t *tp, char *out, size_t n)
{
	su_addrinfo_t *ai = msg_addrinfo(msg);
	su_sockaddr_t *sa;
	char ip[INET6_ADDRSTRLEN];
	const char *proto = tp ? tport_name(tp)->tpn_proto : "udp";
	int port;

	if (!ai || !ai->ai_addr)
		return false;
	sa = (su_sockaddr_t *)ai->ai_addr;
	if (sa->su_family == AF_INET) {
		inet_ntop(AF_INET, &sa->su_sin.sin_addr, ip, sizeof ip);
		port = ntohs(sa->su_sin.sin_port);
		snprintf(out, n, "sip:%s:%d;transport=%s", ip, port, proto);
	} else if (sa->su_family == AF_INET6) {
		inet_ntop(AF_INET6, &sa->su_sin6.sin6_addr, ip, sizeof ip);
		port = ntohs(sa->su_sin6.sin6_port);
		snprintf(out, n, "sip:[%s]:%d;transport=%s", ip, port, proto);
	} else {
		return false;
	}
	return true;
}

static int transport_index(const char *t)
{
	if (!t || strcasecmp(t, "udp") == 0)
		return 0;
	if (strcasecmp(t, "tcp") == 0)
		return 1;
	if (strcasecmp(t, "tls") == 0)
		return 2;
	return 0;
}

const char *edge_port_for(sipedge *edge, const char *transport)
{
	int i = transport_index(transport);

	if (edge->listen_port[i][0])
		return edge->listen_port[i];
	for (i = 0; i < 3; i++)
		if (edge->listen_port[i][0])
			return edge->listen_port[i];
	return "5060";
}

/* ---- dispatch ---- */

/* Requests NTA matched to no transaction, and responses to none. */
static int agent_message(sipedge *edge, nta_agent_t *agent, msg_t *msg, sip_t *sip)
{
	bool from_backend;
	edge_binding *b;
	const char *why;
	int status;

	if (!sip || (!sip->sip_request && !sip->sip_status)) {
		msg_destroy(msg);
		return 0;
	}
	if (sip->sip_status) {
		if (sipmsg_check_limits(msg, sip, &why) != 0)
			msg_destroy(msg);
		else
			edge_proxy_response(edge, msg, sip, edge_from_backend(edge, msg));
		return 0;
	}
	/* bounds and mandatory headers (docs/sip-edge.md "Limits"): 400 or
	 * 413, or dropped when unanswerable (an ACK) */
	if ((status = sipmsg_check_limits(msg, sip, &why)) != 0 ||
	    (status = sipmsg_check_request(sip, &why)) != 0) {
		if (sip->sip_request->rq_method != sip_method_ack && sip->sip_via)
			nta_msg_treply(agent, msg, status, why, TAG_END());
		else
			msg_destroy(msg);
		return 0;
	}
	from_backend = edge_from_backend(edge, msg);
	if (sip->sip_request->rq_method == sip_method_register) {
		if (from_backend)
			nta_msg_treply(agent, msg, SIP_403_FORBIDDEN, TAG_END());
		else
			edge_register_request(edge, msg, sip);
		return 0;
	}
	if (sip->sip_request->rq_method == sip_method_invite && !sip->sip_to->a_tag &&
	    !sip->sip_route &&
	    sipmsg_binding_id(sip->sip_request->rq_url, edge->cfg->sip.public_host)) {
		if (!from_backend) {
			nta_msg_treply(agent, msg, SIP_403_FORBIDDEN, TAG_END());
			return 0;
		}
		b = edge_binding_find(edge, sip->sip_request->rq_url->url_user);
		if (!b || b->rec.expires_at_ms <= pgw_wall_ms()) {
			nta_msg_treply(agent, msg, SIP_404_NOT_FOUND, TAG_END());
			return 0;
		}
		edge_invite_to_binding(edge, msg, sip, b);
		return 0;
	}
	edge_proxy_request(edge, msg, sip, from_backend);
	return 0;
}

/* ---- start-up on the SIP thread ---- */

static const char *const transport_names[3] = { "udp", "tcp", "tls" };

/* Sofia's own log lines go nowhere unless PUSHGW_SIP_DEBUG asks for them
 * (they are not JSON and would break the one-object-per-line log). */
static void sofia_logger(void *stream, char const *fmt, va_list ap)
{
	if (getenv("PUSHGW_SIP_DEBUG"))
		vfprintf(stderr, fmt, ap);
}

extern su_log_t tport_log[];
extern su_log_t nta_log[];

static void quiet_sofia_logs(void)
{
	const char *dbg = getenv("PUSHGW_SIP_DEBUG");
	unsigned level = dbg ? (unsigned)atoi(dbg) : 0;

	su_log_redirect(su_log_default, sofia_logger, NULL);
	su_log_redirect(tport_log, sofia_logger, NULL);
	su_log_redirect(nta_log, sofia_logger, NULL);
	su_log_set_level(su_log_default, level);
	su_log_set_level(tport_log, level);
	su_log_set_level(nta_log, level);
}

static void start_failed(sipedge *edge, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(edge->start_err, sizeof edge->start_err, fmt, ap);
	va_end(ap);
}

/* sofia's TLS reads its key and certificate from "agent.pem" in a folder:
 * a private one, written here and removed once the listeners are bound.
 * Returns false (with the reason) when it cannot be written. */
static bool write_tls_dir(sipedge *edge, char *dir, size_t n)
{
	const pgw_sip_conf *sc = &edge->cfg->sip;
	char path[300], *key = NULL, *cert = NULL;
	size_t klen = 0, clen = 0;
	const char *tmp = getenv("TMPDIR");
	FILE *f;
	bool ok = false;
	int fd;

	snprintf(dir, n, "%s/pushgw-sip-tls.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		start_failed(edge, "sip: cannot create a private folder for the TLS key: %s",
			     strerror(errno));
		dir[0] = '\0';
		return false;
	}
	if (pgw_read_file(sc->tls_key_file, &key, &klen) != PGW_OK ||
	    pgw_read_file(sc->tls_cert_file, &cert, &clen) != PGW_OK) {
		start_failed(edge, "%s: sip.tls: cannot read %s or %s", edge->cfg->path,
			     sc->tls_key_file, sc->tls_cert_file);
		goto out;
	}
	snprintf(path, sizeof path, "%s/agent.pem", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f) {
		if (fd >= 0)
			close(fd);
		start_failed(edge, "sip: cannot write the TLS key for sofia-sip: %s", strerror(errno));
		goto out;
	}
	ok = fwrite(key, 1, klen, f) == klen && fputc('\n', f) != EOF &&
	     fwrite(cert, 1, clen, f) == clen;
	ok = fclose(f) == 0 && ok;
	if (!ok)
		start_failed(edge, "sip: cannot write the TLS key for sofia-sip");
out:
	if (key)
		{
		OPENSSL_cleanse(key, klen);
		free(key);
	}
	free(cert);
	return ok;
}

static void remove_tls_dir(const char *dir)
{
	char path[300];

	if (!dir[0])
		return;
	snprintf(path, sizeof path, "%s/agent.pem", dir);
	unlink(path);
	rmdir(dir);
}

static bool bind_listeners(sipedge *edge)
{
	const pgw_sip_conf *sc = &edge->cfg->sip;
	char url[300], tls_dir[256] = "";
	size_t i;
	tport_t *tp;
	int rc;

	for (i = 0; i < sc->n_listen; i++) {
		const pgw_sip_listen *l = &sc->listen[i];
		bool v6 = strchr(l->host, ':') != NULL;
		char port[12];

		if (l->port == 0)
			snprintf(port, sizeof port, "*");
		else
			snprintf(port, sizeof port, "%d", l->port);
		/* sofia binds TLS for a sips: URI */
		if (l->transport == PGW_SIP_TLS)
			snprintf(url, sizeof url, "sips:%s%s%s:%s", v6 ? "[" : "", l->host, v6 ? "]" : "",
				 port);
		else
			snprintf(url, sizeof url, "sip:%s%s%s:%s;transport=%s", v6 ? "[" : "", l->host,
				 v6 ? "]" : "", port, transport_names[l->transport]);
		if (l->transport == PGW_SIP_TLS && !tls_dir[0] &&
		    !write_tls_dir(edge, tls_dir, sizeof tls_dir)) {
			remove_tls_dir(tls_dir);
			return false;
		}
		if (!edge->agent) {
			edge->agent = nta_agent_create(
				edge->root, (url_string_t *)url, agent_message, edge,
				NTATAG_MAXSIZE(EDGE_MAX_MESSAGE_BYTES), NTATAG_CLIENT_RPORT(1),
				NTATAG_SERVER_RPORT(1), NTATAG_CANCEL_487(0), NTATAG_UDP_MTU(65535),
				NTATAG_USE_NAPTR(0), NTATAG_USE_SRV(0), TPTAG_PONG2PING(1),
				TAG_IF(tls_dir[0], TPTAG_CERTIFICATE(tls_dir)), TAG_END());
			rc = edge->agent ? 0 : -1;
		} else {
			rc = nta_agent_add_tport(edge->agent, (url_string_t *)url, TPTAG_PONG2PING(1),
						 TAG_IF(tls_dir[0], TPTAG_CERTIFICATE(tls_dir)),
						 TAG_END());
		}
		if (rc < 0) {
			start_failed(edge, "%s: sip.listen[%zu]: cannot listen on %s:%d (%s): %s",
				     edge->cfg->path, i, l->host, l->port, transport_names[l->transport],
				     strerror(errno));
			remove_tls_dir(tls_dir);
			return false;
		}
	}
	remove_tls_dir(tls_dir); /* read at bind time */
	for (tp = tport_primaries(nta_agent_tports(edge->agent)); tp; tp = tport_next(tp)) {
		const tp_name_t *n = tport_name(tp);
		int k = transport_index(n->tpn_proto);
		if (!edge->listen_port[k][0]) {
			snprintf(edge->listen_port[k], sizeof edge->listen_port[k], "%s", n->tpn_port);
			snprintf(edge->listen_host[k], sizeof edge->listen_host[k], "%s", n->tpn_host);
		}
	}
	return true;
}

static void log_listening(sipedge *edge)
{
	char addr[3][96];
	const char *kv[8];
	int k, n = 0;

	for (k = 0; k < 3; k++) {
		if (!edge->listen_port[k][0])
			continue;
		snprintf(addr[k], sizeof addr[k], "%s:%s", edge->listen_host[k], edge->listen_port[k]);
		kv[n++] = transport_names[k];
		kv[n++] = addr[k];
	}
	while (n < 6)
		kv[n++] = NULL;
	pgw_log(PGW_LOG_INFO, "sip listening", "public_host", edge->cfg->sip.public_host, "backend",
		edge->cfg->sip.backend, kv[0], kv[1], kv[2], kv[3], kv[4], kv[5], NULL);
}

static bool resolve_backend(sipedge *edge)
{
	struct addrinfo hints = { .ai_socktype = SOCK_DGRAM }, *res = NULL, *ai;
	const char *transport = NULL;
	char params[64];

	edge->backend = url_make(edge->home, edge->cfg->sip.backend);
	if (!edge->backend || !edge->backend->url_host) {
		start_failed(edge, "%s: sip.backend: not a SIP URI", edge->cfg->path);
		return false;
	}
	if (edge->backend->url_params &&
	    url_param(edge->backend->url_params, "transport", params, sizeof params) > 0)
		transport = params;
	if (!transport || (strcasecmp(transport, "udp") != 0 && strcasecmp(transport, "tcp") != 0 &&
			   strcasecmp(transport, "tls") != 0))
		transport = "udp";
	snprintf(edge->backend_transport, sizeof edge->backend_transport, "%.3s", transport);
	/* The backend's addresses, resolved once: requests to bindings are taken
	 * only from them (or backend_sources). */
	if (getaddrinfo(edge->backend->url_host,
			edge->backend->url_port ? edge->backend->url_port : "5060", &hints, &res) != 0) {
		pgw_log(PGW_LOG_WARN, "sip: sip.backend does not resolve now; only backend_sources may send to bindings",
			"host", edge->backend->url_host, NULL);
		return true;
	}
	for (ai = res; ai && edge->n_backend_addrs < 8; ai = ai->ai_next)
		memcpy(&edge->backend_addrs[edge->n_backend_addrs++], ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(res);
	return true;
}

/* Load the edge's bindings (a restart or crash loses none; their flows are
 * gone, so their phones are woken by push). Runs on the SIP thread before
 * it serves: a blocking call is fine here, nothing waits on the loop yet. */
static bool load_bindings(sipedge *edge)
{
	registry_binding *list = NULL;
	size_t n = 0, i;
	pgw_err rc;
	char count[24];

	rc = registry_binding_list(edge->reg, edge->cfg->sip.public_host, pgw_wall_ms(), &list, &n);
	if (rc != PGW_OK) {
		start_failed(edge, "sip: cannot load the bindings from the registry: %s",
			     pgw_strerror(rc));
		return false;
	}
	for (i = 0; i < n && edge->n_bindings < EDGE_MAX_BINDINGS; i++) {
		edge_binding *b = calloc(1, sizeof *b);
		pgw_target t;
		pgw_field_error fe;

		if (!b || edge_binding_rec_copy(&b->rec, &list[i]) != PGW_OK) {
			free(b);
			break;
		}
		if (b->rec.contact &&
		    target_from_contact(b->rec.contact, edge->cfg, NULL, &t, &fe) == PGW_OK) {
			b->has_push = true;
			b->provider = t.provider;
			target_clear(&t);
		}
		edge_binding_add(edge, b);
	}
	registry_bindings_free(list, n);
	snprintf(count, sizeof count, "%zu", edge->n_bindings);
	pgw_log(PGW_LOG_INFO, "sip bindings loaded", "count", count, NULL);
	return true;
}

/* ---- expiry: bindings the PBX's expiry ran out on ---- */

static void expire_work(edge_rjob *j)
{
	int removed = 0;

	j->rc = registry_binding_expire(j->reg, j->in.edge, j->in.expires_at_ms, &removed);
}

static void expire_done(sipedge *edge, edge_rjob *j)
{
	if (j->rc != PGW_OK)
		pgw_log(PGW_LOG_WARN, "sip: expired bindings not removed from the registry", "error",
			pgw_strerror(j->rc), NULL);
}

static void sweep(su_root_magic_t *magic, su_timer_t *t, void *arg)
{
	sipedge *edge = arg;
	int64_t now = pgw_wall_ms();
	edge_binding *b, *next;
	edge_rjob *j;

	for (b = edge->bindings; b; b = next) {
		next = b->next;
		if (b->rec.expires_at_ms <= now)
			edge_binding_drop(edge, b);
	}
	edge_update_gauges(edge);
	j = edge_rjob_new(edge, expire_work, expire_done, NULL);
	if (!j)
		return;
	j->in.edge = strdup(edge->cfg->sip.public_host);
	j->in.expires_at_ms = now;
	if (!j->in.edge)
		j->rc = PGW_ENOMEM;
	edge_rjob_submit(edge, j);
}

static void sip_thread_teardown(sipedge *edge)
{
	if (edge->sweep_timer)
		su_timer_destroy(edge->sweep_timer);
	edge->sweep_timer = NULL;
	edge_calls_teardown(edge);
	edge_register_teardown(edge);
	edge_proxy_teardown(edge);
	while (edge->bindings)
		edge_binding_drop(edge, edge->bindings);
	if (edge->agent)
		nta_agent_destroy(edge->agent);
	edge->agent = NULL;
	if (edge->root) {
		if (edge->mb_index > 0)
			su_root_deregister(edge->root, edge->mb_index);
		su_root_destroy(edge->root);
	}
	edge->root = NULL;
	su_home_deinit(edge->home);
	su_deinit();
}

static bool sip_thread_setup(sipedge *edge)
{
	su_wait_t w[1];

	quiet_sofia_logs();
	if (su_init() != 0 || su_home_init(edge->home) != 0) {
		start_failed(edge, "sip: cannot initialise sofia-sip");
		return false;
	}
	edge->root = su_root_create(edge);
	if (!edge->root) {
		start_failed(edge, "sip: cannot create the SIP event loop");
		return false;
	}
	if (su_wait_create(w, edge->mb->efd, SU_WAIT_IN) != 0 ||
	    (edge->mb_index = su_root_register(edge->root, w, mailbox_wakeup, edge->mb, 0)) <= 0) {
		start_failed(edge, "sip: cannot watch the SIP thread's mailbox");
		return false;
	}
	return resolve_backend(edge) && bind_listeners(edge) && load_bindings(edge);
}

static void *sip_thread(void *arg)
{
	sipedge *edge = arg;
	bool ok = sip_thread_setup(edge);

	pthread_mutex_lock(&edge->start_lock);
	edge->start_state = ok ? 1 : -1;
	pthread_cond_signal(&edge->start_cv);
	pthread_mutex_unlock(&edge->start_lock);
	if (ok) {
		edge->sweep_timer = su_timer_create(su_root_task(edge->root), EDGE_SWEEP_INTERVAL_MS);
		if (edge->sweep_timer)
			su_timer_set_for_ever(edge->sweep_timer, sweep, edge);
		edge_update_gauges(edge);
		log_listening(edge);
		su_root_run(edge->root);
	}
	sip_thread_teardown(edge);
	return NULL;
}

/* ---- the main thread's API ---- */

pgw_err sipedge_start(const sipedge_deps *deps, sipedge **out, char *errbuf, size_t errlen)
{
	sipedge *edge;
	sigset_t all, old;
	pgw_err rc;

	*out = NULL;
	edge = calloc(1, sizeof *edge);
	if (!edge)
		return PGW_ENOMEM;
	edge->api = deps->api;
	edge->reg = deps->reg;
	pthread_mutex_init(&edge->start_lock, NULL);
	pthread_cond_init(&edge->start_cv, NULL);
	rc = config_load(deps->cfg->path, &edge->cfg, errbuf, errlen);
	if (rc != PGW_OK)
		goto fail;
	rc = PGW_ENOMEM;
	if (!(edge->by_id = calloc(EDGE_BINDING_BUCKETS, sizeof *edge->by_id)) ||
	    !(edge->mb = edge_mailbox_new()) || registry_queue_new(EDGE_REGISTRY_THREADS, EDGE_REGISTRY_WAITING_MAX, &edge->rq) != PGW_OK) {
		snprintf(errbuf, errlen, "sip: cannot create the SIP edge's queues");
		goto fail;
	}
	/* signals stay with main's sigwait() */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	if (pthread_create(&edge->thread, NULL, sip_thread, edge) != 0) {
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		snprintf(errbuf, errlen, "sip: cannot start the SIP thread");
		goto fail;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	edge->thread_started = true;
	pthread_mutex_lock(&edge->start_lock);
	while (edge->start_state == 0)
		pthread_cond_wait(&edge->start_cv, &edge->start_lock);
	pthread_mutex_unlock(&edge->start_lock);
	if (edge->start_state < 0) {
		snprintf(errbuf, errlen, "%s", edge->start_err);
		rc = PGW_ECONFIG;
		goto fail;
	}
	*out = edge;
	return PGW_OK;
fail:
	sipedge_free(edge);
	return rc;
}

static void stop_on_sip_thread(sipedge *edge, void *arg)
{
	edge_calls_fail_all(edge, SIP_503_SERVICE_UNAVAILABLE);
	su_root_break(edge->root);
}

void sipedge_stop(sipedge *edge)
{
	if (!edge || edge->stopped)
		return;
	edge->stopped = true;
	if (edge->thread_started) {
		if (edge->start_state > 0)
			edge_mailbox_post(edge->mb, stop_on_sip_thread, NULL, NULL);
		pthread_join(edge->thread, NULL);
		edge->thread_started = false;
	}
	if (edge->mb)
		mailbox_close(edge->mb);
	registry_queue_free(edge->rq); /* jobs still queued finish into the closed mailbox */
	edge->rq = NULL;
}

void sipedge_free(sipedge *edge)
{
	if (!edge)
		return;
	sipedge_stop(edge);
	edge_mailbox_unref(edge->mb);
	free(edge->by_id);
	config_free(edge->cfg);
	pthread_cond_destroy(&edge->start_cv);
	pthread_mutex_destroy(&edge->start_lock);
	free(edge);
}
