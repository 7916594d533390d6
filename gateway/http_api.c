/* The inbound HTTP API on libmicrohttpd: routes, API-key auth, JSON errors,
 * body limits, and wakes that suspend their connection while the loop thread
 * works. Handlers run on libmicrohttpd's worker threads; wake completions
 * come from the loop thread and only resume the connection. */
#include "pushgw/http_api.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pushgw/log.h"
#include "pushgw/metrics.h"
#include "pushgw/util.h"
#include "pushgw/wake.h"

#define WORKER_THREADS 2
#define CONNECTION_LIMIT 4096
#define IDLE_TIMEOUT_S 30
#define HEADER_MEMORY (64 * 1024)

typedef enum route {
	ROUTE_UNKNOWN = 0,
	ROUTE_WAKE,
	ROUTE_CANCEL,
	ROUTE_HEALTHZ,
	ROUTE_READYZ,
	ROUTE_METRICS,
} route;

static const char *const route_names[] = {"other", "/v1/wake", "/v1/cancel", "/healthz",
					  "/readyz", "/metrics"};

struct http_api {
	struct MHD_Daemon *daemon;
	const pgw_config *cfg;
	evloop *loop;
	upstream *up;
	atomic_bool draining;
	atomic_int in_flight; /* suspended wakes */
	int port;
};

typedef struct request {
	http_api *api;
	struct MHD_Connection *conn;
	route route;
	char *body;
	size_t len, cap;
	bool too_large;
	pgw_wake *wake;
	atomic_int wake_done;
	int64_t started_us;
} request;

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
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	if (status == 405)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
					r->route == ROUTE_WAKE || r->route == ROUTE_CANCEL ? "POST" : "GET");
	if (status == 401)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
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

static route route_of(const char *url)
{
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
	return ROUTE_UNKNOWN;
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

static enum MHD_Result serve_metrics(struct MHD_Connection *c, request *r)
{
	size_t len = 0;
	char *text = metrics_render(&len);

	if (!text)
		return MHD_NO;
	return send_body(c, r, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
}

static enum MHD_Result serve_get(struct MHD_Connection *c, request *r, const char *method)
{
	http_api *api = r->api;

	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return send_error(c, r, 405, "method_not_allowed", "use GET");
	switch (r->route) {
	case ROUTE_HEALTHZ:
		return send_text(c, r, 200, "ok\n");
	case ROUTE_READYZ:
		if (atomic_load(&api->draining))
			return send_text(c, r, 503, "draining\n");
		return send_text(c, r, 200, "ready\n");
	case ROUTE_METRICS:
		return serve_metrics(c, r);
	default:
		return send_error(c, r, 404, "not_found", "no such route");
	}
}

static void on_wake_done(void *arg)
{
	request *r = arg;

	/* loop thread: hand the finished wake back to libmicrohttpd */
	atomic_store(&r->wake_done, 1);
	MHD_resume_connection(r->conn);
}

static void count_results(const request *r, const char *doc)
{
	json_t *root = json_loads(doc, 0, NULL), *res;
	size_t i;
	char labels[160];
	const char *kind = r->route == ROUTE_WAKE ? "wake" : "cancel";

	json_array_foreach(json_object_get(root, "results"), i, res) {
		snprintf(labels, sizeof labels, "kind=\"%s\",provider=\"%s\",app=\"%s\",status=\"%s\"", kind,
			 json_string_value(json_object_get(res, "provider")),
			 json_string_value(json_object_get(res, "app")),
			 json_string_value(json_object_get(res, "status")));
		metrics_count("pushgw_pushes_total", labels, 1);
	}
	json_decref(root);
}

static enum MHD_Result finish_wake(struct MHD_Connection *c, request *r)
{
	size_t len = 0;
	char *doc = wake_response_json(r->wake, &len);
	char labels[64];

	atomic_fetch_sub(&r->api->in_flight, 1);
	if (!doc)
		return send_error(c, r, 500, "internal_error", "out of memory");
	wake_log(r->wake);
	count_results(r, doc);
	snprintf(labels, sizeof labels, "kind=\"%s\"", r->route == ROUTE_WAKE ? "wake" : "cancel");
	metrics_count("pushgw_wakes_total", labels, 1);
	metrics_observe("pushgw_wake_duration_seconds", labels,
			(double)(pgw_now_us() - r->started_us) / 1e6);
	return send_body(c, r, 200, "application/json", doc, len);
}

static bool is_json_type(struct MHD_Connection *c)
{
	const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	size_t n = strlen("application/json");

	return ct && strncasecmp(ct, "application/json", n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

static enum MHD_Result start_wake(struct MHD_Connection *c, request *r)
{
	http_api *api = r->api;
	const pgw_config *cfg = api->cfg;
	const pgw_api_key *key = authenticate(cfg, c);
	pgw_http_error err = {0};
	char msg[128];

	if (!key)
		return send_error(c, r, 401, "unauthorized", "missing or unknown API key (Authorization: Bearer <key>)");
	if (!(key->scopes & PGW_SCOPE_WAKE)) {
		snprintf(msg, sizeof msg, "key \"%s\" does not have the \"wake\" scope", key->name);
		return send_error(c, r, 403, "forbidden", msg);
	}
	if (r->too_large) {
		snprintf(msg, sizeof msg, "body: larger than %zu bytes (limits.max_body_bytes)", cfg->max_body_bytes);
		return send_error(c, r, 413, "body_too_large", msg);
	}
	if (!is_json_type(c))
		return send_error(c, r, 415, "unsupported_media_type", "Content-Type: expected application/json");
	if (wake_parse(r->body ? r->body : "", r->len, cfg, key,
		       r->route == ROUTE_WAKE ? PGW_PUSH_CALL : PGW_PUSH_CANCEL, &r->wake, &err) != PGW_OK)
		return send_error(c, r, err.status, err.code, err.message);
	atomic_fetch_add(&api->in_flight, 1);
	MHD_suspend_connection(c);
	if (wake_start(r->wake, api->loop, api->up, on_wake_done, r) != PGW_OK) {
		/* could not reach the loop: answer now instead of hanging */
		atomic_store(&r->wake_done, -1);
		MHD_resume_connection(c);
	}
	return MHD_YES;
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
		r->api = api;
		r->conn = c;
		r->route = route_of(url);
		r->started_us = pgw_now_us();
		*ctx = r;
		if (r->route != ROUTE_WAKE && r->route != ROUTE_CANCEL)
			return serve_get(c, r, method);
		if (strcmp(method, "POST") != 0)
			return send_error(c, r, 405, "method_not_allowed", "use POST");
		if (atomic_load(&api->draining))
			return send_error(c, r, 503, "shutting_down", "the gateway is shutting down; retry on another instance");
		const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl && strtoull(cl, NULL, 10) > api->cfg->max_body_bytes)
			r->too_large = true; /* answered once the body is drained */
		return MHD_YES;
	}
	if (r->wake) {
		if (atomic_load(&r->wake_done) < 0)
			return send_error(c, r, 500, "internal_error", "could not start the wake");
		return finish_wake(c, r);
	}
	if (*upload_size > 0) {
		if (!append_body(r, upload, *upload_size, api->cfg->max_body_bytes))
			return MHD_NO;
		*upload_size = 0;
		return MHD_YES;
	}
	return start_wake(c, r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **ctx,
			 enum MHD_RequestTerminationCode toe)
{
	request *r = *ctx;

	if (!r)
		return;
	wake_free(r->wake);
	free(r->body);
	free(r);
	*ctx = NULL;
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

pgw_err http_api_start(const pgw_config *cfg, evloop *loop, upstream *up, http_api **out,
		       char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
			 MHD_USE_ERROR_LOG;
	char *cert = NULL, *key = NULL;
	const union MHD_DaemonInfo *info;
	http_api *api;
	bool v6;

	if (make_addr(cfg, &ss, &v6) != PGW_OK) {
		snprintf(err, errlen, "%s: listen: expected an IP address, got \"%s\"", cfg->path,
			 cfg->listen_host);
		return PGW_ECONFIG;
	}
	if (v6)
		flags |= MHD_USE_IPv6;
	if (cfg->tls_enabled) {
		if (pgw_read_file(cfg->tls_cert_file, &cert, NULL) != PGW_OK ||
		    pgw_read_file(cfg->tls_key_file, &key, NULL) != PGW_OK) {
			snprintf(err, errlen, "%s: tls: cannot read cert_file/key_file", cfg->path);
			free(cert);
			free(key);
			return PGW_ECONFIG;
		}
		flags |= MHD_USE_TLS;
	}
	api = calloc(1, sizeof *api);
	if (!api) {
		free(cert);
		free(key);
		return PGW_ENOMEM;
	}
	api->cfg = cfg;
	api->loop = loop;
	api->up = up;
	api->daemon = MHD_start_daemon(
		flags, 0, NULL, NULL, on_request, api,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
		MHD_OPTION_THREAD_POOL_SIZE, (unsigned)WORKER_THREADS,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONNECTION_LIMIT,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT_S,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HEADER_MEMORY,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, api,
		MHD_OPTION_EXTERNAL_LOGGER, on_mhd_error, api,
		MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
		cfg->tls_enabled ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, cert,
		MHD_OPTION_HTTPS_MEM_KEY, key,
		MHD_OPTION_END);
	if (key) {
		memset(key, 0, strlen(key));
		free(key);
	}
	free(cert);
	if (!api->daemon) {
		snprintf(err, errlen, "%s: listen: cannot listen on %s:%d", cfg->path, cfg->listen_host,
			 cfg->listen_port);
		free(api);
		return PGW_ECONFIG;
	}
	info = MHD_get_daemon_info(api->daemon, MHD_DAEMON_INFO_BIND_PORT);
	api->port = info ? info->port : cfg->listen_port;
	*out = api;
	return PGW_OK;
}

bool http_api_drain(http_api *api, int grace_ms)
{
	int64_t until = pgw_now_ms() + grace_ms;

	atomic_store(&api->draining, true);
	while (atomic_load(&api->in_flight) > 0 && pgw_now_ms() < until)
		usleep(10000);
	/* let the resumed connections write their answers */
	usleep(50000);
	return atomic_load(&api->in_flight) == 0;
}

void http_api_free(http_api *api)
{
	if (!api)
		return;
	MHD_stop_daemon(api->daemon);
	free(api);
}

int http_api_port(const http_api *api)
{
	return api->port;
}
