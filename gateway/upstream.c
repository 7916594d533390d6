/* Routes pushes to APNs and FCM over the HTTP/2 pool and applies SPEC §5's
 * retry rules inside each push's deadline, within a retry budget per origin;
 * a project-wide FCM quota answer pauses that project. Built before the loop
 * starts (opening the pre-warmed connections); afterwards used on the loop
 * thread only. */
#include "pushgw/upstream.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pushgw/apns.h"
#include "pushgw/fcm.h"
#include "pushgw/log.h"
#include "pushgw/metrics.h"
#include "pushgw/retrybudget.h"
#include "pushgw/util.h"

#define APNS_PRODUCTION_URL "https://api.push.apple.com"
#define APNS_SANDBOX_URL "https://api.sandbox.push.apple.com"
#define MAX_ORIGINS_PER_CRED 2
#define MAX_ATTEMPTS 5
#define BACKOFF_BASE_MS 100
#define BACKOFF_MAX_MS 2000
#define JWT_CHECK_PERIOD_MS 60000
#define STATS_PERIOD_MS 1000
#define MAX_SHARED_ORIGINS 32
/* Longest Retry-After honoured from an FCM quota answer. */
#define FCM_PAUSE_MAX_S 3600
/* Pushes held by a quota pause leave spread over this much after it ends. */
#define FCM_PAUSE_SPREAD_MS 200

/* One APNs credential (a team's provider key, or a client certificate) and
 * its connections: Apple ties a connection to one credential. */
typedef struct apns_endpoint {
	char *cred_key;
	apns_cred *cred; /* NULL for certificate auth */
	const pgw_apns_conf *conf;
	struct {
		char *url;
		h2_origin *origin;
		retry_budget budget;
	} origins[MAX_ORIGINS_PER_CRED];
	int n_origins;
} apns_endpoint;

/* One service account's OAuth token and the FCM origin its apps send to. */
typedef struct fcm_endpoint {
	const pgw_fcm_conf *conf;
	fcm_auth *auth;
	h2_origin *origin;
	retry_budget *budget; /* the origin's, in upstream's shared[] */
	char *path; /* /v1/projects/<project>/messages:send */
	/* FCM's quota is per project: after a 429 with Retry-After no push
	 * goes to the project before this (pgw_now_ms() clock), 0 = none */
	int64_t paused_until_ms;
} fcm_endpoint;

struct upstream {
	const pgw_config *cfg;
	evloop *loop;
	h2pool *pool;
	apns_endpoint *eps;
	size_t n_eps;
	apns_endpoint **app_ep; /* per cfg->apps index; NULL when no APNs */
	fcm_endpoint *feps;
	size_t n_feps;
	fcm_endpoint **app_fep; /* per cfg->apps index; NULL when no FCM */
	/* origins without a client certificate are shared by URL (FCM, OAuth) */
	struct {
		char *url;
		h2_origin *origin;
		retry_budget budget;
	} shared[MAX_SHARED_ORIGINS];
	size_t n_shared;
	evloop_timer *jwt_timer;
	evloop_timer *stats_timer;
	struct attempt *live; /* every push not yet final */
	bool stopping;
};

/* Per-push state while it is in flight. */
typedef struct attempt {
	upstream *up;
	pgw_push *push;
	apns_endpoint *ep;  /* APNs pushes */
	fcm_endpoint *fep;  /* FCM pushes */
	h2_origin *origin;
	retry_budget *budget; /* origin's */
	pgw_apns_env env;
	uint64_t jwt_gen;   /* APNs JWT or FCM OAuth token generation used */
	evloop_timer *timer; /* first send, retry backoff, or the deadline of a token wait */
	bool waiting_token;  /* registered with fcm_auth_wait() */
	bool lost_before;    /* a connection was lost under this push once already */
	struct attempt *prev, *next; /* upstream's live attempts */
} attempt;

const char *pgw_push_status_str(pgw_push_status s)
{
	switch (s) {
	case PGW_PUSH_PENDING: return "pending";
	case PGW_PUSH_SENT: return "sent";
	case PGW_PUSH_INVALID_TOKEN: return "invalid_token";
	case PGW_PUSH_FAILED: return "failed";
	case PGW_PUSH_TIMEOUT: return "timeout";
	case PGW_PUSH_SKIPPED: return "skipped";
	}
	return "failed";
}

static const char *env_url(const pgw_apns_conf *conf, pgw_apns_env env)
{
	if (env == PGW_ENV_SANDBOX && conf->sandbox_url)
		return conf->sandbox_url;
	if (conf->url)
		return conf->url;
	return env == PGW_ENV_SANDBOX ? APNS_SANDBOX_URL : APNS_PRODUCTION_URL;
}

/* scheme://host[:port] of a URL, the key of a shared origin. */
static char *origin_of(const char *url)
{
	const char *p = strstr(url, "://");
	const char *end = p ? strchr(p + 3, '/') : NULL;

	return end ? strndup(url, (size_t)(end - url)) : strdup(url);
}

static h2_origin *shared_origin(upstream *up, const char *url, int connections,
				retry_budget **budget)
{
	h2_origin_opts o = {0};
	char *key = origin_of(url);
	h2_origin *origin = NULL;
	size_t i;

	if (!key)
		return NULL;
	for (i = 0; i < up->n_shared; i++) {
		if (strcmp(up->shared[i].url, key) == 0) {
			free(key);
			if (budget)
				*budget = &up->shared[i].budget;
			return up->shared[i].origin;
		}
	}
	o.url = key;
	o.connections = connections;
	o.max_connections = connections * 4 > 64 ? 64 : connections * 4;
	if (up->n_shared == MAX_SHARED_ORIGINS || h2pool_origin_open(up->pool, &o, &origin) != PGW_OK) {
		free(key);
		return NULL;
	}
	up->shared[up->n_shared].url = key;
	retry_budget_init(&up->shared[up->n_shared].budget, pgw_now_ms());
	if (budget)
		*budget = &up->shared[up->n_shared].budget;
	up->shared[up->n_shared++].origin = origin;
	return origin;
}

static h2_origin *endpoint_origin(upstream *up, apns_endpoint *ep, const char *url,
				  retry_budget **budget)
{
	const pgw_config *cfg = up->cfg;
	h2_origin_opts o = {0};
	int i;

	for (i = 0; i < ep->n_origins; i++) {
		if (strcmp(ep->origins[i].url, url) == 0) {
			if (budget)
				*budget = &ep->origins[i].budget;
			return ep->origins[i].origin;
		}
	}
	if (ep->n_origins == MAX_ORIGINS_PER_CRED)
		return NULL;
	o.url = url;
	o.client_cert_file = ep->cred ? NULL : ep->conf->cert_file;
	o.client_key_file = ep->cred ? NULL : ep->conf->cert_key_file;
	o.connections = cfg->upstream_connections;
	o.max_connections = cfg->upstream_connections * 4 > 64 ? 64 : cfg->upstream_connections * 4;
	if (h2pool_origin_open(up->pool, &o, &ep->origins[ep->n_origins].origin) != PGW_OK)
		return NULL;
	ep->origins[ep->n_origins].url = strdup(url);
	if (!ep->origins[ep->n_origins].url)
		return NULL;
	retry_budget_init(&ep->origins[ep->n_origins].budget, pgw_now_ms());
	if (budget)
		*budget = &ep->origins[ep->n_origins].budget;
	return ep->origins[ep->n_origins++].origin;
}

static char *cred_key_of(const pgw_apns_conf *conf)
{
	char *key = NULL;
	int n;

	if (conf->team_id)
		n = asprintf(&key, "jwt:%s:%s", conf->team_id, conf->key_id);
	else
		n = asprintf(&key, "cert:%s", conf->cert_file);
	return n < 0 ? NULL : key;
}

/* The same credential in the upstream this one replaces, if any. */
static const apns_endpoint *prev_endpoint(const upstream *prev, const char *key,
					  const pgw_apns_conf *conf)
{
	size_t i;

	for (i = 0; prev && i < prev->n_eps; i++) {
		const apns_endpoint *ep = &prev->eps[i];
		if (strcmp(ep->cred_key, key) != 0)
			continue;
		if (ep->cred ? apns_cred_matches(ep->cred, conf) : !conf->team_id)
			return ep;
	}
	return NULL;
}

static apns_endpoint *endpoint_for(upstream *up, const upstream *prev, const pgw_apns_conf *conf,
				   char *err, size_t n)
{
	char *key = cred_key_of(conf);
	const apns_endpoint *old;
	apns_endpoint *ep;
	size_t i;
	int j;

	if (!key)
		return NULL;
	for (i = 0; i < up->n_eps; i++) {
		if (strcmp(up->eps[i].cred_key, key) == 0) {
			free(key);
			return &up->eps[i];
		}
	}
	ep = &up->eps[up->n_eps];
	memset(ep, 0, sizeof *ep);
	ep->cred_key = key;
	ep->conf = conf;
	up->n_eps++;
	old = prev_endpoint(prev, key, conf);
	if (old) {
		/* a reload keeps the provider token and the open connections:
		 * Apple must not see the token change, nor new handshakes */
		ep->cred = old->cred ? apns_cred_ref(old->cred) : NULL;
		for (j = 0; j < old->n_origins; j++) {
			ep->origins[j].url = strdup(old->origins[j].url);
			ep->origins[j].origin = old->origins[j].origin;
			ep->origins[j].budget = old->origins[j].budget;
			if (ep->origins[j].url)
				ep->n_origins = j + 1;
		}
		return ep;
	}
	if (conf->team_id && apns_cred_new(conf, &ep->cred) != PGW_OK) {
		snprintf(err, n, "apns key %s cannot sign an ES256 token", conf->key_id);
		return NULL;
	}
	return ep;
}

/* Two FCM sections that send as the same account to the same project. */
static bool fcm_same_sender(const pgw_fcm_conf *a, const pgw_fcm_conf *b)
{
	return strcmp(a->client_email, b->client_email) == 0 &&
	       strcmp(a->project_id, b->project_id) == 0 && strcmp(a->url, b->url) == 0;
}

static fcm_endpoint *fcm_endpoint_for(upstream *up, const pgw_app_conf *app, char *err, size_t n)
{
	const pgw_fcm_conf *conf = &app->fcm;
	h2_origin *token_origin;
	fcm_endpoint *ep;
	size_t i;

	for (i = 0; i < up->n_feps; i++)
		if (fcm_same_sender(up->feps[i].conf, conf))
			return &up->feps[i];
	ep = &up->feps[up->n_feps];
	memset(ep, 0, sizeof *ep);
	ep->conf = conf;
	ep->origin = shared_origin(up, conf->url, up->cfg->upstream_connections, &ep->budget);
	token_origin = shared_origin(up, conf->token_uri, 1, NULL);
	if (!ep->origin || !token_origin) {
		snprintf(err, n, "apps.%s.fcm: cannot set up connections to %s", app->name,
			 ep->origin ? conf->token_uri : conf->url);
		return NULL;
	}
	if (asprintf(&ep->path, "/v1/projects/%s/messages:send", conf->project_id) < 0) {
		ep->path = NULL;
		return NULL;
	}
	up->n_feps++;
	if (fcm_auth_new(conf, up->loop, token_origin, &ep->auth) != PGW_OK) {
		snprintf(err, n, "apps.%s.fcm: out of memory", app->name);
		return NULL;
	}
	return ep;
}

static void jwt_timer_fire(void *arg)
{
	upstream *up = arg;
	int64_t now_s = pgw_wall_ms() / 1000;
	size_t i;

	for (i = 0; i < up->n_eps; i++)
		if (up->eps[i].cred)
			apns_cred_renew_if_due(up->eps[i].cred, now_s);
	up->jwt_timer = evloop_timer_add(up->loop, JWT_CHECK_PERIOD_MS, jwt_timer_fire, up);
}

static const char *shared_provider(const upstream *up, const h2_origin *origin)
{
	size_t i;

	for (i = 0; i < up->n_feps; i++)
		if (up->feps[i].origin == origin)
			return "fcm";
	return "oauth";
}

static void publish_origin(const char *provider, const h2_origin *origin, double sums[3][2])
{
	int p = strcmp(provider, "apns") == 0 ? 0 : strcmp(provider, "fcm") == 0 ? 1 : 2;
	h2_origin_stats st;

	h2pool_origin_stats(origin, &st);
	sums[p][0] += st.connections_open;
	sums[p][1] += st.streams_active;
}

/* Publish pool state as gauges (and running totals) for /metrics. */
static void stats_timer_fire(void *arg)
{
	static const char *const providers[3] = {"apns", "fcm", "oauth"};
	upstream *up = arg;
	double sums[3][2] = {{0}};
	upstream_stats st;
	char labels[32];
	size_t i;
	int j;

	for (i = 0; i < up->n_eps; i++)
		for (j = 0; j < up->eps[i].n_origins; j++)
			publish_origin("apns", up->eps[i].origins[j].origin, sums);
	for (i = 0; i < up->n_shared; i++)
		publish_origin(shared_provider(up, up->shared[i].origin), up->shared[i].origin, sums);
	for (j = 0; j < 3; j++) {
		snprintf(labels, sizeof labels, "provider=\"%s\"", providers[j]);
		metrics_gauge("pushgw_upstream_connections", labels, sums[j][0]);
		metrics_gauge("pushgw_upstream_streams_active", labels, sums[j][1]);
	}
	upstream_get_stats(up, &st);
	metrics_gauge("pushgw_upstream_queued", "", st.queued);
	metrics_gauge("pushgw_upstream_tls_handshakes_total", "", (double)st.handshakes);
	metrics_gauge("pushgw_token_refreshes_total", "provider=\"apns\"", (double)st.jwt_signatures);
	metrics_gauge("pushgw_token_refreshes_total", "provider=\"fcm\"", (double)st.oauth_fetches);
	up->stats_timer = evloop_timer_add(up->loop, STATS_PERIOD_MS, stats_timer_fire, up);
}

pgw_err upstream_new(const pgw_config *cfg, evloop *loop, h2pool *pool, const upstream *prev,
		     upstream **out, char *err, size_t n)
{
	upstream *up;
	size_t i;

	up = calloc(1, sizeof *up);
	if (!up)
		return PGW_ENOMEM;
	up->cfg = cfg;
	up->loop = loop;
	up->eps = calloc(cfg->n_apps ? cfg->n_apps : 1, sizeof *up->eps);
	up->app_ep = calloc(cfg->n_apps ? cfg->n_apps : 1, sizeof *up->app_ep);
	up->feps = calloc(cfg->n_apps ? cfg->n_apps : 1, sizeof *up->feps);
	up->app_fep = calloc(cfg->n_apps ? cfg->n_apps : 1, sizeof *up->app_fep);
	if (!up->eps || !up->app_ep || !up->feps || !up->app_fep)
		goto nomem;
	up->pool = pool;
	/* connections without a client certificate (FCM, OAuth) carry on too */
	for (i = 0; prev && i < prev->n_shared && i < MAX_SHARED_ORIGINS; i++) {
		up->shared[i].url = strdup(prev->shared[i].url);
		if (!up->shared[i].url)
			goto nomem;
		up->shared[i].origin = prev->shared[i].origin;
		up->shared[i].budget = prev->shared[i].budget;
		up->n_shared = i + 1;
	}
	for (i = 0; i < cfg->n_apps; i++) {
		const pgw_apns_conf *conf = &cfg->apps[i].apns;
		apns_endpoint *ep;
		const char *url;

		if (cfg->apps[i].fcm.enabled) {
			up->app_fep[i] = fcm_endpoint_for(up, &cfg->apps[i], err, n);
			if (!up->app_fep[i])
				goto fail;
		}
		if (!conf->enabled)
			continue;
		ep = endpoint_for(up, prev, conf, err, n);
		if (!ep)
			goto fail;
		up->app_ep[i] = ep;
		/* pre-warm the app's own environment; the other opens on first use */
		url = env_url(conf, conf->environment);
		if (!endpoint_origin(up, ep, url, NULL)) {
			snprintf(err, n, "apps.%s.apns: cannot set up connections to %s",
				 cfg->apps[i].name, url);
			goto fail;
		}
	}
	/* a reload does not lift a quota pause Google asked for */
	for (i = 0; prev && i < up->n_feps; i++) {
		size_t j;

		for (j = 0; j < prev->n_feps; j++)
			if (fcm_same_sender(up->feps[i].conf, prev->feps[j].conf))
				up->feps[i].paused_until_ms = prev->feps[j].paused_until_ms;
	}
	up->jwt_timer = evloop_timer_add(loop, JWT_CHECK_PERIOD_MS, jwt_timer_fire, up);
	up->stats_timer = evloop_timer_add(loop, 0, stats_timer_fire, up);
	*out = up;
	return PGW_OK;
nomem:
	snprintf(err, n, "out of memory");
fail:
	upstream_free(up);
	return PGW_ECONFIG;
}

void upstream_free(upstream *up)
{
	size_t i;
	int j;

	if (!up)
		return;
	upstream_shutdown(up);
	for (i = 0; i < up->n_feps; i++)
		free(up->feps[i].path);
	for (i = 0; i < up->n_shared; i++)
		free(up->shared[i].url);
	free(up->feps);
	free(up->app_fep);
	for (i = 0; i < up->n_eps; i++) {
		apns_cred_free(up->eps[i].cred);
		free(up->eps[i].cred_key);
		for (j = 0; j < up->eps[i].n_origins; j++)
			free(up->eps[i].origins[j].url);
	}
	free(up->eps);
	free(up->app_ep);
	free(up);
}

static void live_remove(attempt *a)
{
	if (a->prev)
		a->prev->next = a->next;
	else
		a->up->live = a->next;
	if (a->next)
		a->next->prev = a->prev;
	a->prev = a->next = NULL;
}

static void attempt_finish(attempt *a, pgw_push_status status, const char *reason,
			   const char *detail)
{
	pgw_push *push = a->push;
	pgw_push_result *r = &push->result;

	r->status = status;
	snprintf(r->reason, sizeof r->reason, "%s", reason ? reason : "");
	snprintf(r->detail, sizeof r->detail, "%s", detail ? detail : "");
	r->latency_ms = (double)(pgw_now_us() - push->started_us) / 1000.0;
	push->upstream_ctx = NULL;
	live_remove(a);
	free(a);
	push->done(push);
}

static void finish_later_fire(void *arg)
{
	attempt *a = arg;
	pgw_push_result *r = &a->push->result;
	char reason[sizeof r->reason], detail[sizeof r->detail];

	a->timer = NULL;
	memcpy(reason, r->reason, sizeof reason);
	memcpy(detail, r->detail, sizeof detail);
	attempt_finish(a, r->status, reason, detail);
}

/* Finish from a context where done() must not run yet (inside upstream_send). */
static void finish_later(attempt *a, pgw_push_status status, const char *reason, const char *detail)
{
	pgw_push_result *r = &a->push->result;

	r->status = status;
	snprintf(r->reason, sizeof r->reason, "%s", reason ? reason : "");
	snprintf(r->detail, sizeof r->detail, "%s", detail ? detail : "");
	a->timer = evloop_timer_add(a->up->loop, 0, finish_later_fire, a);
	if (!a->timer) /* out of memory: nothing else can deliver it */
		finish_later_fire(a);
}

static void attempt_send(attempt *a);
static void upstream_submit(attempt *a, h2_request *req);

static void retry_fire(void *arg)
{
	attempt *a = arg;

	a->timer = NULL;
	attempt_send(a);
}

static int64_t backoff_ms(int attempts)
{
	int64_t d = BACKOFF_BASE_MS << (attempts > 5 ? 5 : attempts < 1 ? 0 : attempts - 1);
	unsigned short r = 0;

	if (d > BACKOFF_MAX_MS)
		d = BACKOFF_MAX_MS;
	pgw_random_bytes(&r, sizeof r);
	return d * 3 / 4 + (int64_t)(r % (unsigned)(d / 2 + 1)); /* ±25% jitter */
}

/* A retry after delay_ms still fits: not stopping, attempts left, and it
 * would go out before the push's deadline. */
static bool retry_fits(const attempt *a, int64_t delay_ms)
{
	const pgw_push *push = a->push;

	return !a->up->stopping && push->result.attempts < MAX_ATTEMPTS &&
	       pgw_now_ms() + delay_ms < push->deadline_ms;
}

/* Retry after delay_ms when the deadline and the attempt budget allow;
 * otherwise the last answer is final. */
static void retry_or_finish(attempt *a, int64_t delay_ms, pgw_push_status status,
			    const char *reason, const char *detail)
{
	if (!retry_fits(a, delay_ms)) {
		attempt_finish(a, status, reason, detail);
		return;
	}
	a->timer = evloop_timer_add(a->up->loop, delay_ms, retry_fire, a);
	if (!a->timer)
		attempt_finish(a, status, reason, detail);
}

static const char *provider_name(const attempt *a)
{
	return a->push->target->provider == PGW_PROVIDER_APNS ? "apns" : "fcm";
}

static void count_retry(const attempt *a, const char *result)
{
	char labels[64];

	snprintf(labels, sizeof labels, "provider=\"%s\",result=\"%s\"", provider_name(a), result);
	metrics_count("pushgw_upstream_retries_total", labels, 1);
}

/* A retry of an answer that may mean the service is struggling (5xx, 429,
 * a lost connection, a timeout): as retry_or_finish(), and only while the
 * origin's retry budget allows, so an outage is not met with several times
 * the normal load; past it the last answer is final. */
static void retry_budgeted(attempt *a, int64_t delay_ms, pgw_push_status status,
			   const char *reason, const char *detail)
{
	if (!retry_fits(a, delay_ms)) {
		attempt_finish(a, status, reason, detail);
		return;
	}
	if (a->budget && !retry_budget_withdraw(a->budget, pgw_now_ms())) {
		count_retry(a, "budget_exhausted");
		attempt_finish(a, status, reason, detail);
		return;
	}
	count_retry(a, "retried");
	retry_or_finish(a, delay_ms, status, reason, detail);
}

/* A configuration mistake (ours, or the app's, not the token's): the
 * device stays registered; the result says what to check, and the operator
 * sees a warning and a counter, without the token. */
static void note_config_mistake(attempt *a, const char *reason, const char *hint)
{
	const pgw_target *t = a->push->target;
	const char *token = a->push->alert ? t->remote_token : t->token;
	char labels[160], red[32];

	snprintf(a->push->result.hint, sizeof a->push->result.hint, "%s", hint ? hint : "");
	snprintf(labels, sizeof labels, "provider=\"%s\",app=\"%s\",reason=\"%s\"", provider_name(a),
		 t->app->name, reason);
	metrics_count("pushgw_upstream_config_mistakes_total", labels, 1);
	pgw_log(PGW_LOG_WARN, "upstream: the token was refused for a configuration reason; the device is kept",
		"provider", provider_name(a), "app", t->app->name, "reason", reason, "token",
		token ? pgw_redact(token, red, sizeof red) : "-", "hint", hint ? hint : "-", NULL);
}

static const char *header_value(const h2_response *resp, const char *name)
{
	size_t i;

	for (i = 0; i < resp->n_headers; i++)
		if (strcmp(resp->headers[i].name, name) == 0)
			return resp->headers[i].value;
	return NULL;
}

/* ---- APNs ---- */

static void parse_apns_body(const h2_response *resp, char *reason, size_t n, int64_t *ts)
{
	json_t *root = resp->body_len ? json_loadb(resp->body, resp->body_len, 0, NULL) : NULL;
	json_t *r = json_object_get(root, "reason"), *t = json_object_get(root, "timestamp");

	reason[0] = '\0';
	if (json_is_string(r))
		snprintf(reason, n, "%s", json_string_value(r));
	if (json_is_integer(t))
		*ts = json_integer_value(t);
	json_decref(root);
}

static void log_loud(attempt *a, const char *provider, const char *reason, int status)
{
	char st[8];

	snprintf(st, sizeof st, "%d", status);
	pgw_log(PGW_LOG_ERROR, "upstream refused our credentials or request: check the config",
		"provider", provider, "app", a->push->target->app->name, "status", st, "reason",
		reason, NULL);
}

/* BadDeviceToken also means "a token of the other APNs environment" (a
 * development build's token sent to the production host, or the reverse).
 * For a device whose environment was not stated the other host is tried
 * once, and the token counts as dead only when both refuse it. A device
 * whose environment was stated keeps its registration: the statement, not
 * the token, is what is wrong. */
static void on_apns_bad_device_token(attempt *a, const apns_verdict *v, const char *detail)
{
	pgw_push *push = a->push;
	const pgw_apns_conf *conf = &push->target->app->apns;
	pgw_apns_env other = a->env == PGW_ENV_SANDBOX ? PGW_ENV_PRODUCTION : PGW_ENV_SANDBOX;
	bool two_hosts = strcmp(env_url(conf, a->env), env_url(conf, other)) != 0;

	if (push->target->environment != PGW_ENV_UNSET) {
		note_config_mistake(a, v->reason,
				    "token is from the other APNs environment: check the device's environment "
				    "(pn-provider apns or apns.dev, \"environment\", a .dev/.prod app-id)");
	} else if (push->other_env_tried) {
		push->result.token_dead = true; /* refused by both hosts */
	} else if (two_hosts) {
		push->other_env_tried = true;
		a->env = other;
		retry_or_finish(a, 0, v->status, v->reason, detail);
		return;
	} else {
		note_config_mistake(a, v->reason,
				    "APNs refused the token and the other APNs environment could not be tried "
				    "(apns.url serves both; set apns.sandbox_url): check the device's environment");
	}
	attempt_finish(a, v->status, v->reason, detail);
}

static void on_apns_answer(attempt *a, const h2_response *resp)
{
	pgw_push *push = a->push;
	const char *apns_id, *detail;
	char reason[64];
	apns_verdict v;
	int64_t ts = 0;

	parse_apns_body(resp, reason, sizeof reason, &ts);
	apns_classify(resp->status, reason[0] ? reason : NULL, &v);
	if (v.loud)
		log_loud(a, "apns", reason[0] ? reason : "-", resp->status);
	if (v.status == PGW_PUSH_SENT) {
		push->result.environment = a->env;
		apns_id = header_value(resp, "apns-id");
		snprintf(push->result.push_id, sizeof push->result.push_id, "%s",
			 apns_id ? apns_id : push->apns_id);
		attempt_finish(a, PGW_PUSH_SENT, NULL, NULL);
		return;
	}
	push->result.unregistered_ms = ts;
	detail = (v.reason && strcmp(v.reason, reason) != 0) ? reason : NULL;
	switch (v.action) {
	case APNS_DONE:
		push->result.token_dead = v.dead;
		if (v.mistake)
			note_config_mistake(a, v.reason, v.hint);
		attempt_finish(a, v.status, v.reason, detail);
		return;
	case APNS_RETRY:
		retry_budgeted(a, backoff_ms(push->result.attempts), v.status, v.reason, detail);
		return;
	case APNS_RETRY_RECYCLE:
		h2pool_conn_recycle(a->origin, resp->conn_id);
		retry_budgeted(a, backoff_ms(push->result.attempts), v.status, v.reason, detail);
		return;
	case APNS_RETRY_AFTER_1S:
		if (push->had_429) {
			attempt_finish(a, v.status, v.reason, detail);
			return;
		}
		push->had_429 = true;
		retry_budgeted(a, 1000 + backoff_ms(1) / 4, v.status, v.reason, detail);
		return;
	case APNS_RETRY_NEW_JWT:
		if (push->jwt_renewed || !a->ep->cred) {
			attempt_finish(a, v.status, v.reason, detail);
			return;
		}
		push->jwt_renewed = true;
		/* no newer token: the same one would only be refused again */
		if (!apns_cred_expired(a->ep->cred, a->jwt_gen, pgw_wall_ms() / 1000)) {
			attempt_finish(a, v.status, v.reason, detail);
			return;
		}
		retry_or_finish(a, 0, v.status, v.reason, detail);
		return;
	case APNS_TRY_OTHER_ENV:
		on_apns_bad_device_token(a, &v, detail);
		return;
	}
}

static void send_apns(attempt *a)
{
	pgw_push *push = a->push;
	const pgw_target *t = push->target;
	const pgw_apns_conf *conf = &t->app->apns;
	char path[300], topic[300], expiration[24];
	h2_header hdrs[7];
	size_t nh = 0;
	h2_request req = {0};
	const char *token = push->alert ? t->remote_token : t->token;

	a->origin = endpoint_origin(a->up, a->ep, env_url(conf, a->env), &a->budget);
	if (!a->origin) {
		attempt_finish(a, PGW_PUSH_FAILED, "config_error", "no upstream origin");
		return;
	}
	snprintf(path, sizeof path, "/3/device/%s", token);
	snprintf(topic, sizeof topic, push->alert ? "%s" : "%s.voip", conf->bundle_id);
	snprintf(expiration, sizeof expiration, "%lld", (long long)push->expiration_s);
	hdrs[nh++] = (h2_header){"apns-push-type", push->alert ? "alert" : "voip"};
	hdrs[nh++] = (h2_header){"apns-topic", topic};
	hdrs[nh++] = (h2_header){"apns-priority", "10"};
	hdrs[nh++] = (h2_header){"apns-expiration", expiration};
	hdrs[nh++] = (h2_header){"apns-id", push->apns_id};
	if (push->collapse_id)
		hdrs[nh++] = (h2_header){"apns-collapse-id", push->collapse_id};
	if (a->ep->cred) {
		a->jwt_gen = apns_cred_generation(a->ep->cred);
		hdrs[nh++] = (h2_header){"authorization",
					 apns_cred_authorization(a->ep->cred, pgw_wall_ms() / 1000)};
	}
	req.path = path;
	req.headers = hdrs;
	req.n_headers = nh;
	upstream_submit(a, &req);
}

/* ---- FCM ---- */

static void take_fcm_name(pgw_push *push, const h2_response *resp)
{
	json_t *root = json_loadb(resp->body, resp->body_len, 0, NULL);
	const char *name = json_string_value(json_object_get(root, "name"));
	const char *id = name ? strrchr(name, '/') : NULL;

	snprintf(push->result.push_id, sizeof push->result.push_id, "%s",
		 id ? id + 1 : name ? name : "");
	json_decref(root);
}

/* Google's quota is per project: once FCM says QUOTA_EXCEEDED with a
 * Retry-After, every push to the project would be refused the same way
 * until then, and each refused request only prolongs the overload. */
static void fcm_pause(fcm_endpoint *fep, int64_t secs)
{
	int64_t now = pgw_now_ms(), until = now + secs * 1000;
	char s[24];

	if (until <= fep->paused_until_ms)
		return;
	if (fep->paused_until_ms <= now) {
		snprintf(s, sizeof s, "%lld", (long long)secs);
		pgw_log(PGW_LOG_WARN, "fcm: project over its quota (QUOTA_EXCEEDED): sends to it paused for its Retry-After",
			"project", fep->conf->project_id, "retry_after_s", s, NULL);
	}
	fep->paused_until_ms = until;
}

/* Before an FCM send: false when the project is paused, and the push then
 * either waits for the pause to end (a timer sends it then) or, when the
 * pause outlasts its deadline, is finished. */
static bool fcm_not_paused(attempt *a)
{
	pgw_push *push = a->push;
	int64_t now = pgw_now_ms(), until = a->fep->paused_until_ms;
	unsigned short r = 0;
	char hint[sizeof push->result.hint];

	if (until <= now)
		return true;
	pgw_random_bytes(&r, sizeof r);
	until += r % FCM_PAUSE_SPREAD_MS; /* not all at once when it ends */
	if (until >= push->deadline_ms || a->up->stopping) {
		snprintf(hint, sizeof hint,
			 "FCM answered QUOTA_EXCEEDED for project %s: sends to it are paused for %lld ms more "
			 "(its Retry-After), past this push's deadline",
			 a->fep->conf->project_id, (long long)(until - now));
		snprintf(push->result.hint, sizeof push->result.hint, "%s", hint);
		attempt_finish(a, PGW_PUSH_FAILED, "QUOTA_EXCEEDED", "project paused (Retry-After)");
		return false;
	}
	a->timer = evloop_timer_add(a->up->loop, until - now, retry_fire, a);
	if (!a->timer)
		attempt_finish(a, PGW_PUSH_FAILED, "QUOTA_EXCEEDED", "project paused (Retry-After)");
	return false;
}

static void on_fcm_answer(attempt *a, const h2_response *resp)
{
	pgw_push *push = a->push;
	const char *ra;
	fcm_verdict v;
	int64_t secs;

	fcm_classify(resp->status, resp->body, resp->body_len, &v);
	if (v.loud)
		log_loud(a, "fcm", v.detail[0] ? v.detail : v.reason, resp->status);
	if (v.status == PGW_PUSH_SENT) {
		take_fcm_name(push, resp);
		attempt_finish(a, PGW_PUSH_SENT, NULL, NULL);
		return;
	}
	switch (v.action) {
	case FCM_DONE:
		push->result.token_dead = v.dead;
		if (v.mistake) {
			char hint[sizeof push->result.hint];

			snprintf(hint, sizeof hint, "%s (project %s)", v.hint, a->fep->conf->project_id);
			note_config_mistake(a, v.reason, hint);
		}
		attempt_finish(a, v.status, v.reason, v.detail);
		return;
	case FCM_RETRY: {
		/* Google asks for its Retry-After to be honoured on 5xx too */
		int64_t wait = backoff_ms(push->result.attempts);

		ra = header_value(resp, "retry-after");
		if (ra && pgw_retry_after_s(ra, pgw_wall_ms() / 1000, &secs) == PGW_OK &&
		    secs * 1000 > wait)
			wait = secs * 1000;
		retry_budgeted(a, wait, v.status, v.reason, v.detail);
		return;
	}
	case FCM_RETRY_AFTER:
		/* project-wide quota: the whole project waits, and this push
		 * retries only when the wait fits its deadline */
		ra = header_value(resp, "retry-after");
		if (!ra || pgw_retry_after_s(ra, pgw_wall_ms() / 1000, &secs) != PGW_OK ||
		    secs > FCM_PAUSE_MAX_S) {
			attempt_finish(a, v.status, v.reason, v.detail);
			return;
		}
		fcm_pause(a->fep, secs);
		retry_budgeted(a, secs * 1000 + 50, v.status, v.reason, v.detail);
		return;
	case FCM_RETRY_NEW_TOKEN:
		if (push->jwt_renewed) {
			attempt_finish(a, v.status, v.reason, v.detail);
			return;
		}
		push->jwt_renewed = true;
		fcm_auth_invalidate(a->fep->auth, a->jwt_gen);
		retry_or_finish(a, 0, v.status, v.reason, v.detail);
		return;
	}
}

static void send_fcm_with(attempt *a, const char *authorization)
{
	h2_header hdrs[2] = {{"authorization", authorization}, {"content-type", "application/json"}};
	h2_request req = {0};

	a->origin = a->fep->origin;
	a->budget = a->fep->budget;
	a->jwt_gen = fcm_auth_generation(a->fep->auth);
	req.path = a->fep->path;
	req.headers = hdrs;
	req.n_headers = 2;
	upstream_submit(a, &req);
}

static void on_fcm_token(void *arg, const char *header, const char *error)
{
	attempt *a = arg;

	a->waiting_token = false;
	evloop_timer_cancel(a->up->loop, a->timer);
	a->timer = NULL;
	if (a->up->stopping) {
		attempt_finish(a, PGW_PUSH_FAILED, "shutting_down", NULL);
		return;
	}
	/* the token may come in the same loop turn as the deadline */
	if (pgw_now_ms() >= a->push->deadline_ms) {
		attempt_finish(a, PGW_PUSH_TIMEOUT, NULL, "waiting for the OAuth token");
		return;
	}
	if (!header) {
		attempt_finish(a, PGW_PUSH_FAILED, "auth_error", error ? error : "no OAuth token");
		return;
	}
	/* a quota answer to another push may have paused the project meanwhile */
	if (!fcm_not_paused(a))
		return;
	send_fcm_with(a, header);
}

/* The wake's deadline came while the token fetch was still out. */
static void token_deadline_fire(void *arg)
{
	attempt *a = arg;

	a->timer = NULL;
	a->waiting_token = false;
	fcm_auth_unwait(a->fep->auth, a);
	attempt_finish(a, PGW_PUSH_TIMEOUT, NULL, "waiting for the OAuth token");
}

static void send_fcm(attempt *a)
{
	fcm_auth *auth = a->fep->auth;
	const char *header = fcm_auth_header(auth);
	pgw_err rc;

	if (!fcm_not_paused(a))
		return;
	if (header) {
		send_fcm_with(a, header);
		return;
	}
	/* no token yet (start-up, or after a 401): wait for the one fetch, no
	 * longer than the wake may take */
	rc = fcm_auth_wait(auth, a->push->deadline_ms, on_fcm_token, a);
	if (rc == PGW_EAUTH) {
		attempt_finish(a, PGW_PUSH_FAILED, "auth_error", fcm_auth_last_error(auth));
		return;
	}
	if (rc != PGW_OK) {
		attempt_finish(a, PGW_PUSH_FAILED, "overloaded", "out of memory");
		return;
	}
	a->waiting_token = true;
	/* without the timer (out of memory) the fetch's own timeout still ends it */
	a->timer = evloop_timer_add(a->up->loop, a->push->deadline_ms - pgw_now_ms(),
				    token_deadline_fire, a);
}

/* ---- common ---- */

static void on_h2_response(void *arg, const h2_response *resp)
{
	attempt *a = arg;
	pgw_push *push = a->push;

	switch (resp->result) {
	case H2_OK:
		if (push->target->provider == PGW_PROVIDER_APNS)
			on_apns_answer(a, resp);
		else
			on_fcm_answer(a, resp);
		return;
	case H2_ERR_CONNECT:
		attempt_finish(a, PGW_PUSH_FAILED, "connect_error", resp->error);
		return;
	case H2_ERR_CLIENT_CERT:
		/* the credential is refused, not the network down: say so */
		pgw_log(PGW_LOG_ERROR, "upstream refused our TLS client certificate: check the app's cert_file",
			"provider", push->target->provider == PGW_PROVIDER_APNS ? "apns" : "fcm",
			"app", push->target->app->name, "reason", resp->error ? resp->error : "-", NULL);
		attempt_finish(a, PGW_PUSH_FAILED, "auth_error", resp->error);
		return;
	case H2_ERR_REFUSED:
		/* not processed by the server: no load added, outside the budget */
		retry_or_finish(a, backoff_ms(push->result.attempts), PGW_PUSH_FAILED,
				"connection_lost", resp->error);
		return;
	case H2_ERR_LOST:
		/* a dropped connection takes all its streams at once, a burst the
		 * budget (sized for a share of failing requests) would mostly
		 * refuse: each push's first loss is retried outside it, a second
		 * one (connections that keep dropping) draws on it */
		if (!a->lost_before) {
			a->lost_before = true;
			retry_or_finish(a, backoff_ms(push->result.attempts), PGW_PUSH_FAILED,
					"connection_lost", resp->error);
			return;
		}
		retry_budgeted(a, backoff_ms(push->result.attempts), PGW_PUSH_FAILED,
			       "connection_lost", resp->error);
		return;
	case H2_ERR_TIMEOUT:
		if (pgw_now_ms() >= push->deadline_ms) {
			attempt_finish(a, PGW_PUSH_TIMEOUT, NULL, NULL);
			return;
		}
		/* one attempt hit upstream.request_timeout_ms; the wake has time left */
		retry_budgeted(a, backoff_ms(push->result.attempts), PGW_PUSH_TIMEOUT, NULL, NULL);
		return;
	case H2_ERR_OVERFLOW:
		attempt_finish(a, PGW_PUSH_FAILED, "overloaded", resp->error);
		return;
	case H2_ERR_SHUTDOWN:
		attempt_finish(a, PGW_PUSH_FAILED, "shutting_down", resp->error);
		return;
	}
}

/* Fill in what every provider request shares and hand it to the pool. */
static void upstream_submit(attempt *a, h2_request *req)
{
	pgw_push *push = a->push;
	int64_t now = pgw_now_ms();

	req->method = "POST";
	req->body = push->body;
	req->body_len = push->body_len;
	req->deadline_ms = push->deadline_ms;
	if (now + a->up->cfg->upstream_request_timeout_ms < req->deadline_ms)
		req->deadline_ms = now + a->up->cfg->upstream_request_timeout_ms;
	req->cb = on_h2_response;
	req->arg = a;
	push->result.attempts++;
	if (push->result.attempts == 1 && a->budget)
		retry_budget_deposit(a->budget, now);
	if (h2pool_send(a->origin, req) != PGW_OK)
		finish_later(a, PGW_PUSH_FAILED, "overloaded", "upstream queue full");
}

static void attempt_send(attempt *a)
{
	if (a->up->stopping) {
		attempt_finish(a, PGW_PUSH_FAILED, "shutting_down", NULL);
		return;
	}
	if (pgw_now_ms() >= a->push->deadline_ms) {
		attempt_finish(a, PGW_PUSH_TIMEOUT, NULL, NULL);
		return;
	}
	if (a->push->target->provider == PGW_PROVIDER_APNS)
		send_apns(a);
	else
		send_fcm(a);
}

void upstream_send(upstream *up, pgw_push *push)
{
	const pgw_target *t = push->target;
	attempt *a = calloc(1, sizeof *a);
	size_t idx = (size_t)(t->app - up->cfg->apps);

	if (!a) {
		/* nowhere to keep state: answer at once rather than never */
		push->result.status = PGW_PUSH_FAILED;
		snprintf(push->result.reason, sizeof push->result.reason, "overloaded");
		push->done(push);
		return;
	}
	a->up = up;
	a->push = push;
	a->next = up->live;
	if (up->live)
		up->live->prev = a;
	up->live = a;
	push->upstream_ctx = a;
	push->started_us = pgw_now_us();
	if (idx >= up->cfg->n_apps) {
		finish_later(a, PGW_PUSH_FAILED, "config_error", "unknown app");
		return;
	}
	if (t->provider == PGW_PROVIDER_FCM) {
		a->fep = up->app_fep[idx];
		if (!a->fep) {
			finish_later(a, PGW_PUSH_FAILED, "config_error", "app has no fcm section");
			return;
		}
	} else {
		a->ep = up->app_ep[idx];
		if (!a->ep) {
			finish_later(a, PGW_PUSH_FAILED, "config_error", "app has no apns section");
			return;
		}
		if (!(push->alert ? t->remote_token : t->token)) {
			finish_later(a, PGW_PUSH_FAILED, "config_error", "device has no token for this push");
			return;
		}
		a->env = t->environment != PGW_ENV_UNSET ? t->environment : t->app->apns.environment;
		if (!push->apns_id[0])
			pgw_uuid4(push->apns_id);
	}
	/* the first send runs from a 0 ms timer so done() never nests in here */
	a->timer = evloop_timer_add(up->loop, 0, retry_fire, a);
	if (!a->timer)
		attempt_finish(a, PGW_PUSH_FAILED, "overloaded", NULL);
}

void upstream_shutdown(upstream *up)
{
	attempt *a, *next;
	size_t i;

	if (up->stopping)
		return;
	up->stopping = true;
	evloop_timer_cancel(up->loop, up->jwt_timer);
	up->jwt_timer = NULL;
	evloop_timer_cancel(up->loop, up->stats_timer);
	up->stats_timer = NULL;
	/* pushes waiting on a timer (retry backoff, first send) end now; those
	 * in flight end when the pool is freed (H2_ERR_SHUTDOWN is final now) */
	for (a = up->live; a; a = next) {
		next = a->next;
		if (a->timer) {
			evloop_timer_cancel(up->loop, a->timer);
			a->timer = NULL;
			if (a->waiting_token) {
				a->waiting_token = false;
				fcm_auth_unwait(a->fep->auth, a);
			}
			attempt_finish(a, PGW_PUSH_FAILED, "shutting_down", NULL);
		}
	}
	/* pushes waiting for an OAuth token */
	for (i = 0; i < up->n_feps; i++) {
		fcm_auth_free(up->feps[i].auth);
		up->feps[i].auth = NULL;
	}
}

void upstream_get_stats(upstream *up, upstream_stats *out)
{
	size_t i;
	int j;

	memset(out, 0, sizeof *out);
	for (i = 0; i < up->n_eps; i++) {
		if (up->eps[i].cred)
			out->jwt_signatures += apns_cred_signatures(up->eps[i].cred);
		for (j = 0; j < up->eps[i].n_origins; j++) {
			h2_origin_stats st;
			h2pool_origin_stats(up->eps[i].origins[j].origin, &st);
			out->handshakes += st.handshakes;
			out->connections_open += st.connections_open;
			out->streams_active += st.streams_active;
			out->queued += st.queued;
		}
	}
	for (i = 0; i < up->n_feps && !up->stopping; i++)
		out->oauth_fetches += fcm_auth_fetches(up->feps[i].auth);
	for (i = 0; i < up->n_shared; i++) {
		h2_origin_stats st;
		h2pool_origin_stats(up->shared[i].origin, &st);
		out->handshakes += st.handshakes;
		out->connections_open += st.connections_open;
		out->streams_active += st.streams_active;
		out->queued += st.queued;
	}
}
