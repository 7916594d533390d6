/* FCM HTTP v1: OAuth access tokens from a service account and the map from
 * FCM's answers to pushgw statuses. An fcm_auth lives on the loop thread;
 * fcm_classify() and fcm_assertion() are pure. */
#include "pushgw/fcm.h"

#include <jansson.h>
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pushgw/log.h"
#include "pushgw/util.h"

#define FETCH_TIMEOUT_MS 10000
#define RETRY_MIN_MS 1000
#define RETRY_MAX_MS 60000
/* A push waits for the fetch already scheduled after a failure only when
 * that fetch has at least this long to answer before the push's deadline;
 * otherwise it ends auth_error at once (with the last failure's reason)
 * rather than timing out a moment after the fetch went out. */
#define RETRY_ANSWER_MARGIN_MS 500
/* Google grants an hour; a longer claim is cut so the clock maths cannot overflow. */
#define TOKEN_LIFETIME_MAX_S 86400

typedef struct waiter {
	struct waiter *next;
	fcm_token_fn cb;
	void *arg;
} waiter;

struct fcm_auth {
	const pgw_fcm_conf *conf;
	evloop *loop;
	h2_origin *origin;
	char *path;       /* token_uri path */
	char *header;     /* "Bearer …" or NULL */
	int64_t expires_ms; /* pgw_now_ms() clock */
	uint64_t generation;
	uint64_t fetches;
	bool fetching;
	bool freed;   /* freed while a fetch was in flight: its answer frees */
	int64_t retry_ms;
	int64_t retry_at_ms; /* after a failed fetch: when the next one starts; else 0 */
	waiter *waiters, **waiters_tail;
	evloop_timer *refresh_timer;
	evloop_timer *notify_timer;
	char last_error[160];
};

char *fcm_assertion(const pgw_fcm_conf *conf, int64_t now_s)
{
	jwt_t *jwt = NULL;
	char *out = NULL;

	if (jwt_new(&jwt) != 0)
		return NULL;
	if (jwt_add_grant(jwt, "iss", conf->client_email) == 0 &&
	    jwt_add_grant(jwt, "scope", FCM_SCOPE) == 0 &&
	    jwt_add_grant(jwt, "aud", conf->token_uri) == 0 &&
	    jwt_add_grant_int(jwt, "iat", (long)now_s) == 0 &&
	    jwt_add_grant_int(jwt, "exp", (long)(now_s + 3600)) == 0 &&
	    jwt_set_alg(jwt, JWT_ALG_RS256, (const unsigned char *)conf->private_key,
			(int)strlen(conf->private_key)) == 0)
		out = jwt_encode_str(jwt);
	jwt_free(jwt);
	return out;
}

static void start_fetch(fcm_auth *auth);

static void refresh_fire(void *arg)
{
	fcm_auth *auth = arg;

	auth->refresh_timer = NULL;
	start_fetch(auth);
}

static void schedule_refresh(fcm_auth *auth, int64_t delay_ms)
{
	evloop_timer_cancel(auth->loop, auth->refresh_timer);
	auth->refresh_timer = evloop_timer_add(auth->loop, delay_ms, refresh_fire, auth);
}

/* Deliver the outcome to everyone waiting; runs from a 0 ms timer so a
 * waiter's callback never nests inside fcm_auth_wait(). */
static void notify_fire(void *arg)
{
	fcm_auth *auth = arg;
	waiter *w = auth->waiters, *next;

	auth->notify_timer = NULL;
	auth->waiters = NULL;
	auth->waiters_tail = &auth->waiters;
	for (; w; w = next) {
		next = w->next;
		w->cb(w->arg, auth->header, auth->header ? NULL : auth->last_error);
		free(w);
	}
}

static void notify_soon(fcm_auth *auth)
{
	if (!auth->notify_timer && auth->waiters)
		auth->notify_timer = evloop_timer_add(auth->loop, 0, notify_fire, auth);
}

static bool take_token(fcm_auth *auth, const h2_response *resp)
{
	json_t *root = json_loadb(resp->body, resp->body_len, 0, NULL);
	json_t *tok = json_object_get(root, "access_token"), *exp = json_object_get(root, "expires_in");
	int64_t lifetime_ms, refresh_in;
	char *header = NULL;

	if (!json_is_string(tok) || !json_is_integer(exp) || json_integer_value(exp) <= 0) {
		json_decref(root);
		return false;
	}
	if (asprintf(&header, "Bearer %s", json_string_value(tok)) < 0) {
		json_decref(root);
		return false;
	}
	lifetime_ms = (json_integer_value(exp) < TOKEN_LIFETIME_MAX_S ? json_integer_value(exp)
								      : TOKEN_LIFETIME_MAX_S) * 1000;
	json_decref(root);
	free(auth->header);
	auth->header = header;
	auth->expires_ms = pgw_now_ms() + lifetime_ms;
	auth->generation++;
	auth->fetches++;
	/* renew at 80% of the lifetime (and at least 5 min early for long ones) */
	refresh_in = lifetime_ms * 4 / 5;
	if (lifetime_ms - refresh_in < 300000 && lifetime_ms > 600000)
		refresh_in = lifetime_ms - 300000;
	schedule_refresh(auth, refresh_in);
	return true;
}

static void describe_failure(fcm_auth *auth, const h2_response *resp)
{
	json_t *root = NULL;
	const char *what = NULL;

	if (resp->result != H2_OK) {
		snprintf(auth->last_error, sizeof auth->last_error, "token_uri: %s",
			 resp->error ? resp->error : h2_result_str(resp->result));
		return;
	}
	root = json_loadb(resp->body, resp->body_len, 0, NULL);
	what = json_string_value(json_object_get(root, "error"));
	snprintf(auth->last_error, sizeof auth->last_error, "token_uri answered %d%s%s", resp->status,
		 what ? " " : "", what ? what : "");
	json_decref(root);
}

static void on_token_response(void *arg, const h2_response *resp)
{
	fcm_auth *auth = arg;

	auth->fetching = false;
	if (auth->freed) {
		free(auth);
		return;
	}
	if (resp->result == H2_OK && resp->status == 200 && take_token(auth, resp)) {
		auth->retry_ms = 0;
		pgw_log(PGW_LOG_INFO, "fcm access token fetched", "client_email", auth->conf->client_email, NULL);
		notify_soon(auth);
		return;
	}
	describe_failure(auth, resp);
	pgw_log(PGW_LOG_ERROR, "fcm access token fetch failed", "client_email", auth->conf->client_email,
		"error", auth->last_error, NULL);
	/* waiters fail now (a wake must not hang on a broken credential); the
	 * token is fetched again with backoff */
	notify_soon(auth);
	auth->retry_ms = auth->retry_ms ? auth->retry_ms * 2 : RETRY_MIN_MS;
	if (auth->retry_ms > RETRY_MAX_MS)
		auth->retry_ms = RETRY_MAX_MS;
	schedule_refresh(auth, auth->retry_ms);
	if (auth->refresh_timer)
		auth->retry_at_ms = pgw_now_ms() + auth->retry_ms;
}

static char *form_body(const char *assertion, size_t *len)
{
	static const char prefix[] =
		"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=";
	char *body = NULL;
	int n = asprintf(&body, "%s%s", prefix, assertion); /* a JWT is URL-safe */

	if (n < 0)
		return NULL;
	*len = (size_t)n;
	return body;
}

static void start_fetch(fcm_auth *auth)
{
	h2_header hdrs[1] = {{"content-type", "application/x-www-form-urlencoded"}};
	h2_request req = {0};
	char *assertion, *body;
	size_t len = 0;

	if (auth->fetching)
		return;
	assertion = fcm_assertion(auth->conf, pgw_wall_ms() / 1000);
	body = assertion ? form_body(assertion, &len) : NULL;
	free(assertion);
	if (!body) {
		snprintf(auth->last_error, sizeof auth->last_error, "cannot sign the RS256 assertion");
		notify_soon(auth);
		return;
	}
	req.method = "POST";
	req.path = auth->path;
	req.headers = hdrs;
	req.n_headers = 1;
	req.body = body;
	req.body_len = len;
	req.deadline_ms = pgw_now_ms() + FETCH_TIMEOUT_MS;
	req.cb = on_token_response;
	req.arg = auth;
	if (h2pool_send(auth->origin, &req) == PGW_OK) {
		auth->fetching = true;
		auth->retry_at_ms = 0;
	} else {
		snprintf(auth->last_error, sizeof auth->last_error, "token_uri: request queue full");
		notify_soon(auth);
	}
	free(body);
}

static char *path_of(const char *uri)
{
	const char *p = strstr(uri, "://");

	p = p ? strchr(p + 3, '/') : NULL;
	return strdup(p ? p : "/");
}

pgw_err fcm_auth_new(const pgw_fcm_conf *conf, evloop *loop, h2_origin *token_origin,
		     fcm_auth **out)
{
	fcm_auth *auth = calloc(1, sizeof *auth);

	if (!auth)
		return PGW_ENOMEM;
	auth->conf = conf;
	auth->loop = loop;
	auth->origin = token_origin;
	auth->path = path_of(conf->token_uri);
	auth->waiters_tail = &auth->waiters;
	if (!auth->path) {
		free(auth);
		return PGW_ENOMEM;
	}
	start_fetch(auth);
	*out = auth;
	return PGW_OK;
}

void fcm_auth_free(fcm_auth *auth)
{
	if (!auth)
		return;
	evloop_timer_cancel(auth->loop, auth->refresh_timer);
	evloop_timer_cancel(auth->loop, auth->notify_timer);
	free(auth->header);
	auth->header = NULL;
	snprintf(auth->last_error, sizeof auth->last_error, "shutting down");
	notify_fire(auth);
	free(auth->path);
	/* the pool still holds a fetch pointing here: its answer frees us */
	if (auth->fetching) {
		auth->freed = true;
		return;
	}
	free(auth);
}

const char *fcm_auth_header(const fcm_auth *auth)
{
	if (!auth->header || pgw_now_ms() >= auth->expires_ms)
		return NULL;
	return auth->header;
}

uint64_t fcm_auth_generation(const fcm_auth *auth)
{
	return auth->generation;
}

uint64_t fcm_auth_fetches(const fcm_auth *auth)
{
	return auth->fetches;
}

pgw_err fcm_auth_wait(fcm_auth *auth, int64_t deadline_ms, fcm_token_fn cb, void *arg)
{
	bool fetch = false;
	waiter *w;

	if (!fcm_auth_header(auth) && !auth->fetching) {
		/* after a failure the next fetch is already scheduled: a burst of
		 * wakes must not turn the backoff into one fetch per wake */
		if (auth->retry_at_ms && auth->refresh_timer) {
			if (auth->retry_at_ms + RETRY_ANSWER_MARGIN_MS >= deadline_ms)
				return PGW_EAUTH;
		} else {
			fetch = true;
		}
	}
	w = calloc(1, sizeof *w);
	if (!w)
		return PGW_ENOMEM;
	w->cb = cb;
	w->arg = arg;
	*auth->waiters_tail = w;
	auth->waiters_tail = &w->next;
	if (fcm_auth_header(auth))
		notify_soon(auth);
	else if (fetch)
		start_fetch(auth);
	return PGW_OK;
}

void fcm_auth_unwait(fcm_auth *auth, void *arg)
{
	waiter **pp, *w;

	for (pp = &auth->waiters; (w = *pp); pp = &w->next) {
		if (w->arg != arg)
			continue;
		*pp = w->next;
		if (auth->waiters_tail == &w->next)
			auth->waiters_tail = pp;
		free(w);
		return;
	}
}

const char *fcm_auth_last_error(const fcm_auth *auth)
{
	return auth->last_error[0] ? auth->last_error : "no OAuth token";
}

void fcm_auth_invalidate(fcm_auth *auth, uint64_t gen)
{
	if (gen != auth->generation || !auth->header)
		return;
	free(auth->header);
	auth->header = NULL;
	start_fetch(auth);
}

/* FCM error documents: {"error": {"code", "message", "status", "details": [
 *   {"@type": "…FcmError", "errorCode": "UNREGISTERED"},
 *   {"@type": "…google.rpc.BadRequest", "fieldViolations": [{"field": …}]}]}} */
typedef struct fcm_error_doc {
	const char *status;     /* google.rpc status, e.g. "INVALID_ARGUMENT" */
	const char *error_code; /* FcmError errorCode, or NULL */
	bool bad_request;       /* a BadRequest detail: our message is at fault */
	bool message_names_token; /* "The registration token is not a valid …" */
} fcm_error_doc;

static void read_error_doc(json_t *root, fcm_error_doc *d)
{
	json_t *err = json_object_get(root, "error"), *det;
	size_t i;

	memset(d, 0, sizeof *d);
	d->status = json_string_value(json_object_get(err, "status"));
	d->message_names_token = json_is_string(json_object_get(err, "message")) &&
				 strcasestr(json_string_value(json_object_get(err, "message")), "token") != NULL;
	json_array_foreach(json_object_get(err, "details"), i, det) {
		const char *type = json_string_value(json_object_get(det, "@type"));
		if (!type)
			continue;
		if (strstr(type, "FcmError")) {
			d->error_code = json_string_value(json_object_get(det, "errorCode"));
		} else if (strstr(type, "BadRequest")) {
			d->bad_request = true;
		}
	}
}

static void verdict(fcm_verdict *v, pgw_push_status status, const char *reason, const char *detail,
		    fcm_action action, bool loud)
{
	v->status = status;
	snprintf(v->reason, sizeof v->reason, "%s", reason);
	snprintf(v->detail, sizeof v->detail, "%s", detail ? detail : "");
	v->action = action;
	v->loud = loud;
	v->dead = false;
	v->mistake = false;
	v->hint = NULL;
}

void fcm_classify(int http_status, const char *body, size_t len, fcm_verdict *v)
{
	json_t *root = len ? json_loadb(body, len, 0, NULL) : NULL;
	fcm_error_doc d;
	const char *code;

	if (http_status == 200) {
		verdict(v, PGW_PUSH_SENT, "", NULL, FCM_DONE, false);
		json_decref(root);
		return;
	}
	read_error_doc(root, &d);
	code = d.error_code ? d.error_code : d.status;
	if (!code)
		code = "";
	if (strcmp(code, "UNREGISTERED") == 0) {
		verdict(v, PGW_PUSH_INVALID_TOKEN, code, NULL, FCM_DONE, false);
		v->dead = true;
	} else if (strcmp(code, "SENDER_ID_MISMATCH") == 0) {
		/* the token was made for another Firebase project than the one our
		 * service account sends to: a wrong service-account file says this
		 * for every device of the app, so it never removes one */
		verdict(v, PGW_PUSH_FAILED, code, NULL, FCM_DONE, false);
		v->mistake = true;
		v->hint = "the token belongs to another Firebase project (sender id) than the app's "
			  "service account sends to: check the app's fcm.service_account_file";
	} else if (strcmp(code, "INVALID_ARGUMENT") == 0) {
		/* a dead token only when an FcmError blames the token; a BadRequest
		 * detail (or none) means our message is at fault, and an oversized
		 * message comes back as a bare FcmError too, so its text decides */
		if (d.error_code && !d.bad_request && d.message_names_token) {
			verdict(v, PGW_PUSH_INVALID_TOKEN, "INVALID_ARGUMENT", NULL, FCM_DONE, false);
			v->dead = true;
		} else {
			verdict(v, PGW_PUSH_FAILED, "config_error", code, FCM_DONE, true);
		}
	} else if (strcmp(code, "QUOTA_EXCEEDED") == 0 || strcmp(code, "RESOURCE_EXHAUSTED") == 0 ||
		   http_status == 429) {
		verdict(v, PGW_PUSH_FAILED, "QUOTA_EXCEEDED", NULL, FCM_RETRY_AFTER, false);
	} else if (strcmp(code, "UNAVAILABLE") == 0 || strcmp(code, "INTERNAL") == 0 ||
		   http_status >= 500) {
		verdict(v, PGW_PUSH_FAILED, *code ? code : "UNAVAILABLE", NULL, FCM_RETRY, false);
	} else if (strcmp(code, "THIRD_PARTY_AUTH_ERROR") == 0) {
		verdict(v, PGW_PUSH_FAILED, "auth_error", code, FCM_DONE, true);
	} else if (http_status == 401 || strcmp(code, "UNAUTHENTICATED") == 0) {
		verdict(v, PGW_PUSH_FAILED, "auth_error", *code ? code : "UNAUTHENTICATED",
			FCM_RETRY_NEW_TOKEN, true);
	} else if (http_status == 403) {
		verdict(v, PGW_PUSH_FAILED, "auth_error", *code ? code : "PERMISSION_DENIED", FCM_DONE, true);
	} else if (http_status == 404) {
		/* NOT_FOUND without an UNREGISTERED detail: wrong project, not a dead token */
		verdict(v, PGW_PUSH_FAILED, "config_error", *code ? code : "NOT_FOUND", FCM_DONE, true);
	} else {
		verdict(v, PGW_PUSH_FAILED, "config_error", *code ? code : "BAD_REQUEST", FCM_DONE, true);
	}
	json_decref(root);
}
