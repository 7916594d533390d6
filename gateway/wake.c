/* Wakes and cancels: request validation, fan-out to one push per distinct
 * device, result collection and the response document. Parsing and rendering
 * run on the HTTP thread that owns the request; the fan-out runs on the loop
 * thread between wake_start() and done(). */
#include "pushgw/wake.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pushgw/apns.h"
#include "pushgw/callback.h"
#include "pushgw/jsonr.h"
#include "pushgw/jsonw.h"
#include "pushgw/log.h"
#include "pushgw/metrics.h"
#include "pushgw/payload.h"
#include "pushgw/util.h"

#define CALL_FIELD_MAX 256
#define DEFAULT_TTL_S 30
#define MAX_TTL_S 86400
#define MAX_TIMEOUT_MS 120000

struct pgw_wake {
	char id[2 + PGW_ULID_LEN + 1];
	pgw_push_kind kind;
	json_t *doc; /* the request; call strings point into it */
	pgw_call call;
	int ttl_s;
	int timeout_ms;
	const char *callback_url; /* into doc */
	const char *extension;    /* into doc; NULL when the body names none */
	bool resolved;            /* wake_resolve() made the pushes */
	pgw_target *targets; /* one per requested device, request order, then the extension's */
	size_t n_targets, cap_targets;
	size_t *push_of;     /* targets[i] is served by pushes[push_of[i]] */
	pgw_push *pushes;    /* distinct devices */
	size_t n_pushes;
	size_t pending;      /* loop thread only */
	evloop *loop;
	upstream *up;
	wake_ring ring;
	char collapse_id[APNS_COLLAPSE_ID_MAX + 1]; /* of every alert push */
	wake_done_fn done;
	void *done_arg;
};

static pgw_err fail(pgw_http_error *err, int status, const char *code, const char *fmt, ...)
{
	va_list ap;

	err->status = status;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof err->message, fmt, ap);
	va_end(ap);
	return status == 403 ? PGW_EAUTH : status == 404 ? PGW_ENOTFOUND : PGW_EINVAL;
}

static pgw_err optional_string(json_t *obj, const char *name, const char *prefix,
			       const char **out, pgw_http_error *err)
{
	json_t *v = json_object_get(obj, name);

	*out = NULL;
	if (!v || json_is_null(v))
		return PGW_OK;
	if (!json_is_string(v))
		return fail(err, 400, "invalid_request", "%s%s: expected a string", prefix, name);
	if (json_string_length(v) > CALL_FIELD_MAX)
		return fail(err, 400, "invalid_request", "%s%s: longer than %d characters", prefix,
			    name, CALL_FIELD_MAX);
	*out = json_string_value(v);
	return PGW_OK;
}

static pgw_err parse_call(pgw_wake *w, json_t *call, pgw_http_error *err)
{
	static const char *const known[] = {"id", "from", "from_name", "to", "video", "data"};
	json_t *v, *data;
	const char *key;
	pgw_err rc;
	size_t i;

	if (!call)
		return fail(err, 400, "invalid_request", "call: required (an object with at least \"id\")");
	if (!json_is_object(call))
		return fail(err, 400, "invalid_request", "call: expected an object");
	json_object_foreach(call, key, v) {
		for (i = 0; i < sizeof known / sizeof known[0]; i++)
			if (strcmp(key, known[i]) == 0)
				break;
		if (i == sizeof known / sizeof known[0])
			return fail(err, 400, "invalid_request", "call.%s: unknown field", key);
	}
	if ((rc = optional_string(call, "id", "call.", &w->call.id, err)) != PGW_OK)
		return rc;
	if (!w->call.id || !*w->call.id)
		return fail(err, 400, "invalid_request", "call.id: required (a non-empty string)");
	if ((rc = optional_string(call, "from", "call.", &w->call.from, err)) != PGW_OK ||
	    (rc = optional_string(call, "from_name", "call.", &w->call.from_name, err)) != PGW_OK ||
	    (rc = optional_string(call, "to", "call.", &w->call.to, err)) != PGW_OK)
		return rc;
	v = json_object_get(call, "video");
	if (v && !json_is_boolean(v) && !json_is_null(v))
		return fail(err, 400, "invalid_request", "call.video: expected true or false");
	w->call.video = json_is_true(v);
	data = json_object_get(call, "data");
	if (data && !json_is_null(data)) {
		if (!json_is_object(data))
			return fail(err, 400, "invalid_request", "call.data: expected an object of strings");
		json_object_foreach(data, key, v)
			if (!json_is_string(v))
				return fail(err, 400, "invalid_request",
					    "call.data.%s: expected a string value", key);
		w->call.data = data;
	}
	return PGW_OK;
}

static pgw_err parse_int(json_t *root, const char *name, int min, int max, int dflt, int *out,
			 pgw_http_error *err)
{
	json_t *v = json_object_get(root, name);

	*out = dflt;
	if (!v || json_is_null(v))
		return PGW_OK;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return fail(err, 400, "invalid_request", "%s: expected an integer from %d to %d",
			    name, min, max);
	*out = (int)json_integer_value(v);
	return PGW_OK;
}

static pgw_err check_top_level(json_t *root, pgw_push_kind kind, pgw_http_error *err)
{
	static const char *const known[] = {"extension", "devices", "call", "ttl",
					    "timeout_ms", "callback_url", "reason"};
	const char *key;
	json_t *v;
	size_t i, n = sizeof known / sizeof known[0];

	json_object_foreach(root, key, v) {
		for (i = 0; i < n; i++)
			if (strcmp(key, known[i]) == 0)
				break;
		if (i == n || (kind == PGW_PUSH_CALL && strcmp(key, "reason") == 0))
			return fail(err, 400, "invalid_request", "%s: unknown field", key);
	}
	return PGW_OK;
}

static pgw_err parse_reason(pgw_wake *w, json_t *root, pgw_http_error *err)
{
	json_t *v = json_object_get(root, "reason");
	const char *r;

	if (w->kind != PGW_PUSH_CANCEL)
		return PGW_OK;
	if (!v || json_is_null(v)) {
		w->call.reason = "caller_cancelled";
		return PGW_OK;
	}
	r = json_is_string(v) ? json_string_value(v) : "";
	if (strcmp(r, "answered_elsewhere") && strcmp(r, "caller_cancelled") && strcmp(r, "declined"))
		return fail(err, 400, "invalid_request",
			    "reason: expected \"answered_elsewhere\", \"caller_cancelled\" or \"declined\"");
	w->call.reason = r;
	return PGW_OK;
}

/* The registered devices of the extension (those of apps the key may use),
 * appended after the explicit ones. */
static void add_extension_devices(pgw_wake *w, const registry_device *devs, size_t n,
				  const pgw_config *cfg, const pgw_api_key *key)
{
	size_t i;

	for (i = 0; i < n && w->n_targets < w->cap_targets; i++) {
		pgw_target *t = &w->targets[w->n_targets];

		if (registry_device_target(&devs[i], cfg, t) != PGW_OK)
			continue; /* its app left the config */
		if (key && !config_key_allows_app(key, t->app)) {
			target_clear(t);
			continue;
		}
		w->n_targets++;
	}
}

static pgw_err parse_devices(pgw_wake *w, json_t *root, const pgw_config *cfg,
			     const pgw_api_key *key, pgw_http_error *err)
{
	json_t *devs = json_object_get(root, "devices"), *ext = json_object_get(root, "extension");
	pgw_field_error ferr;
	size_t i, n = 0;
	pgw_err rc;

	if (ext && !json_is_null(ext)) {
		if (!json_is_string(ext) || !registry_valid_extension(json_string_value(ext)))
			return fail(err, 400, "invalid_request",
				    "extension: expected 1 to 128 characters of A-Z a-z 0-9 . _ ~ + @ : = -");
	}
	if (devs && !json_is_null(devs)) {
		if (!json_is_array(devs))
			return fail(err, 400, "invalid_request", "devices: expected an array");
		n = json_array_size(devs);
	}
	if (n > (size_t)cfg->max_devices_per_wake)
		return fail(err, 400, "invalid_request", "devices: at most %d devices per request (limits.max_devices_per_wake)",
			    cfg->max_devices_per_wake);
	/* explicit devices plus at most max_devices_per_wake registered ones */
	w->cap_targets = n + (json_is_string(ext) ? (size_t)cfg->max_devices_per_wake : 0);
	w->targets = calloc(w->cap_targets ? w->cap_targets : 1, sizeof *w->targets);
	if (!w->targets)
		return fail(err, 500, "internal_error", "out of memory");
	for (i = 0; i < n; i++) {
		json_t *d = json_array_get(devs, i);
		if (!json_is_object(d))
			return fail(err, 400, "invalid_request", "devices[%zu]: expected an object", i);
		memset(&ferr, 0, sizeof ferr);
		rc = target_from_json(d, cfg, key, &w->targets[i], &ferr);
		if (rc == PGW_EAUTH)
			return fail(err, 403, "forbidden", "devices[%zu].%s: %s", i, ferr.field, ferr.message);
		if (rc != PGW_OK)
			return fail(err, 400, "invalid_request", "devices[%zu].%s: %s", i,
				    ferr.field[0] ? ferr.field : "device", ferr.message);
		w->n_targets = i + 1;
	}
	if (json_is_string(ext))
		w->extension = json_string_value(ext);
	return PGW_OK;
}

/* The token a push to t goes to for this kind, and whether that is an APNs
 * alert push: a wake rings the VoIP token (a device with only a remote token
 * gets an alert), a cancel ends the call on the alert token when there is one
 * (SPEC §3). */
static const char *push_token(const pgw_target *t, pgw_push_kind kind, bool *alert)
{
	*alert = false;
	if (t->provider != PGW_PROVIDER_APNS)
		return t->token;
	*alert = kind == PGW_PUSH_CALL ? !t->token : t->remote_token != NULL;
	return *alert ? t->remote_token : t->token;
}

/* Two targets make the same push when it would leave for the same provider,
 * app and token: a device named explicitly by its VoIP token and registered
 * with its remote token as well is still one phone to ring. */
static bool same_push(const pgw_target *a, const pgw_target *b, pgw_push_kind kind)
{
	bool alert_a, alert_b;
	const char *ta = push_token(a, kind, &alert_a), *tb = push_token(b, kind, &alert_b);

	if (a->provider != b->provider || alert_a != alert_b || !ta || !tb)
		return false;
	if (a->app != b->app && strcmp(a->app->name, b->app->name) != 0)
		return false;
	return strcmp(ta, tb) == 0;
}

/* One push per distinct upstream request: a wake that names a phone twice
 * rings it once. The first target of a group (request order) is the one
 * pushed; every target still gets its own result. */
static pgw_err plan_pushes(pgw_wake *w, pgw_http_error *err)
{
	size_t i, j;

	w->push_of = calloc(w->n_targets ? w->n_targets : 1, sizeof *w->push_of);
	w->pushes = calloc(w->n_targets ? w->n_targets : 1, sizeof *w->pushes);
	if (!w->push_of || !w->pushes)
		return fail(err, 500, "internal_error", "out of memory");
	for (i = 0; i < w->n_targets; i++) {
		for (j = 0; j < w->n_pushes; j++)
			if (same_push(&w->targets[i], w->pushes[j].target, w->kind))
				break;
		w->push_of[i] = j;
		if (j == w->n_pushes)
			w->pushes[w->n_pushes++].target = &w->targets[i];
	}
	return PGW_OK;
}

/* A cancel to an iPhone reachable only through PushKit is not pushed: Apple
 * allows VoIP pushes only to start calls (iOS terminates an app that does
 * not report one to CallKit, and stops delivering VoIP pushes to an app
 * that keeps doing it), and the app learns of the end over SIP once it is
 * awake. An app whose code ends such a call at once may opt in with
 * voip_cancel. */
static bool skipped_voip_cancel(const pgw_target *t, pgw_push_kind kind)
{
	return kind == PGW_PUSH_CANCEL && t->provider == PGW_PROVIDER_APNS && !t->remote_token &&
	       !t->app->voip_cancel;
}

/* The request field to blame for a payload that does not fit: call.data
 * when there is any (the other fields are at most CALL_FIELD_MAX each),
 * else the longest of the call's strings. */
static const char *oversized_field(const pgw_call *c)
{
	const struct {
		const char *name, *value;
	} fields[] = {{"call.id", c->id}, {"call.from", c->from}, {"call.from_name", c->from_name},
		      {"call.to", c->to}};
	const char *name = "call.data";
	size_t i, longest = 0;

	if (c->data && json_object_size(c->data) > 0)
		return name;
	for (i = 0; i < sizeof fields / sizeof fields[0]; i++)
		if (fields[i].value && strlen(fields[i].value) > longest) {
			longest = strlen(fields[i].value);
			name = fields[i].name;
		}
	return name;
}

/* A body its service would refuse is the request's fault, and no retry can
 * cure it: refuse the whole wake before anything goes. */
static pgw_err check_size(const pgw_wake *w, const pgw_push *p, pgw_http_error *err)
{
	const pgw_target *t = p->target;
	size_t measured, limit;
	char desc[64];

	if (payload_fits(t->provider, p->alert, p->body, p->body_len, &measured, &limit))
		return PGW_OK;
	target_describe(t, desc, sizeof desc);
	if (t->provider == PGW_PROVIDER_FCM)
		return fail(err, 400, "invalid_request",
			    "%s: too long: the FCM message to %s would carry %zu bytes of data, over Google's limit of %zu",
			    oversized_field(&w->call), desc, measured, limit);
	return fail(err, 400, "invalid_request",
		    "%s: too long: the APNs %s push to %s would be %zu bytes, over Apple's limit of %zu",
		    oversized_field(&w->call), p->alert ? "alert" : "VoIP", desc, measured, limit);
}

static pgw_err build_bodies(pgw_wake *w, pgw_http_error *err)
{
	pgw_payload_ctx ctx = {&w->call, w->id, pgw_wall_ms() / 1000, w->ttl_s};
	int64_t deadline = pgw_now_ms() + w->timeout_ms;
	pgw_err rc;
	size_t i;

	if (deadline > pgw_now_ms() + (int64_t)w->ttl_s * 1000 && w->ttl_s > 0)
		deadline = pgw_now_ms() + (int64_t)w->ttl_s * 1000;
	for (i = 0; i < w->n_pushes; i++) {
		pgw_push *p = &w->pushes[i];
		const pgw_target *t = p->target;

		p->kind = w->kind;
		p->owner = w;
		p->ttl_s = w->ttl_s;
		/* ttl 0 is "now or never": Apple reads apns-expiration 0 as one
		 * delivery attempt and no storing, while now+0 is a time that
		 * has passed by the time it arrives */
		p->expiration_s = w->ttl_s == 0 ? 0 : ctx.sent_at_s + w->ttl_s;
		p->deadline_ms = deadline;
		if (skipped_voip_cancel(t, w->kind)) {
			p->result.status = PGW_PUSH_SKIPPED;
			snprintf(p->result.reason, sizeof p->result.reason, "voip_only");
			continue;
		}
		if (t->provider == PGW_PROVIDER_APNS) {
			push_token(t, w->kind, &p->alert);
			p->body = payload_apns(&ctx, t, w->kind, p->alert, &p->body_len);
		} else {
			p->body = payload_fcm(&ctx, t, w->kind, &p->body_len);
		}
		if (!p->body)
			return fail(err, 500, "internal_error", "out of memory");
		if ((rc = check_size(w, p, err)) != PGW_OK)
			return rc;
	}
	return PGW_OK;
}

pgw_err wake_parse(const char *body, size_t len, const pgw_config *cfg, const pgw_api_key *key,
		   pgw_push_kind kind, pgw_wake **out, pgw_http_error *err)
{
	json_error_t jerr;
	pgw_wake *w;
	json_t *cb;
	pgw_err rc;

	*out = NULL;
	w = calloc(1, sizeof *w);
	if (!w)
		return fail(err, 500, "internal_error", "out of memory");
	w->kind = kind;
	w->doc = jsonr_load(body, len, &jerr);
	if (!w->doc) {
		rc = fail(err, 400, "invalid_request", "body: not valid JSON (%s at line %d, column %d)",
			  jerr.text, jerr.line, jerr.column);
		goto out;
	}
	if (!json_is_object(w->doc)) {
		rc = fail(err, 400, "invalid_request", "body: expected a JSON object");
		goto out;
	}
	if ((rc = check_top_level(w->doc, kind, err)) != PGW_OK ||
	    (rc = parse_call(w, json_object_get(w->doc, "call"), err)) != PGW_OK ||
	    (rc = parse_reason(w, w->doc, err)) != PGW_OK ||
	    (rc = parse_int(w->doc, "ttl", 0, MAX_TTL_S, DEFAULT_TTL_S, &w->ttl_s, err)) != PGW_OK ||
	    (rc = parse_int(w->doc, "timeout_ms", 1, MAX_TIMEOUT_MS, cfg->upstream_request_timeout_ms,
			    &w->timeout_ms, err)) != PGW_OK)
		goto out;
	cb = json_object_get(w->doc, "callback_url");
	if (cb && !json_is_null(cb)) {
		char why[128];
		if (!json_is_string(cb) || !callback_url_valid(json_string_value(cb), why, sizeof why)) {
			rc = fail(err, 400, "invalid_request", "callback_url: %s",
				  json_is_string(cb) ? why : "expected a string");
			goto out;
		}
		if (!key || !key->callback_secret) {
			rc = fail(err, 400, "invalid_request",
				  "callback_url: key \"%s\" has no callback_secret to sign callbacks with (api_keys[].callback_secret)",
				  key ? key->name : "");
			goto out;
		}
		w->callback_url = json_string_value(cb);
	}
	if ((rc = parse_devices(w, w->doc, cfg, key, err)) != PGW_OK)
		goto out;
	memcpy(w->id, "w_", 2);
	pgw_ulid(w->id + 2);
	*out = w;
	return PGW_OK;
out:
	wake_free(w);
	return rc;
}

const char *wake_extension(const pgw_wake *w)
{
	return w->extension;
}

int64_t wake_lookup_budget_ms(const pgw_wake *w)
{
	return w->timeout_ms;
}

pgw_err wake_resolve(pgw_wake *w, const registry_device *devs, size_t n, const pgw_config *cfg,
		     const pgw_api_key *key, pgw_http_error *err)
{
	pgw_err rc;

	if (w->resolved)
		return fail(err, 500, "internal_error", "the wake was resolved already");
	if (w->extension)
		add_extension_devices(w, devs, n, cfg, key);
	if (w->n_targets == 0)
		return fail(err, 404, "no_devices", "the targets resolve to no device");
	if (plan_pushes(w, err) != PGW_OK)
		return PGW_ENOMEM;
	if ((rc = build_bodies(w, err)) != PGW_OK)
		return rc;
	w->resolved = true;
	return PGW_OK;
}

static bool rings_again(const pgw_wake *w, const pgw_push *p)
{
	return w->ring.rg && w->kind == PGW_PUSH_CALL && p->alert && p->target->app->ring_repeat_s > 0;
}

static void push_done(pgw_push *p)
{
	pgw_wake *w = p->owner;

	if (rings_again(w, p))
		ringer_first_result(w->ring.rg, p);
	if (--w->pending == 0)
		w->done(w->done_arg);
}

/* Before the pushes go. Every alert push of the call carries the same
 * apns-collapse-id, so repeats replace each other and a cancel's final alert
 * replaces the ringing banner instead of piling up under it. A cancel stops
 * the device's repetition first; a call reserves it, to begin once its first
 * alert was accepted (the ringer copies what it needs now: the wake may be
 * gone once the last push is done). */
static void ring_before(pgw_wake *w)
{
	int64_t until = pgw_now_ms() + (int64_t)w->ttl_s * 1000;
	size_t i;

	apns_collapse_id(w->call.id, w->collapse_id);
	for (i = 0; i < w->n_pushes; i++) {
		pgw_push *p = &w->pushes[i];
		const pgw_target *t = p->target;

		if (p->alert)
			p->collapse_id = w->collapse_id;
		if (!w->ring.rg)
			continue;
		if (w->kind == PGW_PUSH_CANCEL && t->provider == PGW_PROVIDER_APNS && t->remote_token)
			ringer_stop(w->ring.rg, t->app->name, t->remote_token, w->call.id);
		else if (rings_again(w, p))
			ringer_start(w->ring.rg, w->up, w->ring.holder, w->ring.hold, p, w->call.id,
				     t->app->ring_repeat_s, until);
	}
}

/* Skipped pushes never reach the upstream: they are final already. The
 * loop stops at the last push it hands over, without reading the wake
 * again (done() may have freed it by then); a wake with nothing to send is
 * done at once. */
static void wake_run(void *arg)
{
	pgw_wake *w = arg;
	size_t i, sent = 0, n = 0;

	for (i = 0; i < w->n_pushes; i++)
		n += w->pushes[i].result.status != PGW_PUSH_SKIPPED;
	w->pending = n;
	ring_before(w);
	if (n == 0) {
		w->done(w->done_arg);
		return;
	}
	for (i = 0; sent < n; i++) {
		if (w->pushes[i].result.status == PGW_PUSH_SKIPPED)
			continue;
		sent++;
		w->pushes[i].done = push_done;
		upstream_send(w->up, &w->pushes[i]);
	}
}

pgw_err wake_start(pgw_wake *w, evloop *loop, upstream *up, const wake_ring *ring,
		   wake_done_fn done, void *arg)
{
	w->loop = loop;
	w->up = up;
	if (ring)
		w->ring = *ring;
	w->done = done;
	w->done_arg = arg;
	return evloop_post(loop, wake_run, w);
}

/* One requested device's result object, as the answer and the log show it. */
static void write_result(jsonw *jw, const pgw_target *t, const pgw_push *p)
{
	const pgw_push_result *r = &p->result;
	char desc[64];

	target_describe(t, desc, sizeof desc);
	jsonw_object_begin(jw);
	jsonw_kv_str(jw, "target", desc);
	jsonw_kv_str(jw, "provider", t->provider == PGW_PROVIDER_APNS ? "apns" : "fcm");
	jsonw_kv_str(jw, "app", t->app->name);
	jsonw_kv_str(jw, "status", pgw_push_status_str(r->status));
	if (t->provider == PGW_PROVIDER_APNS && r->status != PGW_PUSH_SKIPPED)
		jsonw_kv_str(jw, "push_type", p->alert ? "alert" : "voip");
	if (r->status == PGW_PUSH_SENT && r->push_id[0])
		jsonw_kv_str(jw, "push_id", r->push_id);
	if (r->reason[0])
		jsonw_kv_str(jw, "reason", r->reason);
	if (r->detail[0])
		jsonw_kv_str(jw, "detail", r->detail);
	if (r->hint[0])
		jsonw_kv_str(jw, "hint", r->hint);
	if (r->status == PGW_PUSH_INVALID_TOKEN)
		jsonw_kv_bool(jw, "removed", r->removed);
	if (r->status == PGW_PUSH_INVALID_TOKEN && r->removed)
		jsonw_kv_str(jw, "pruned", r->removed_remote_only ? "remote_token" : "device");
	if (r->attempts > 1 || r->status == PGW_PUSH_FAILED)
		jsonw_kv_int(jw, "attempts", r->attempts);
	jsonw_key(jw, "latency_ms");
	jsonw_fixed1(jw, r->latency_ms);
	jsonw_object_end(jw);
}

/* The results array, in request order. */
static void write_results(jsonw *jw, const pgw_wake *w)
{
	size_t i;

	jsonw_array_begin(jw);
	for (i = 0; i < w->n_targets; i++)
		write_result(jw, &w->targets[i], &w->pushes[w->push_of[i]]);
	jsonw_array_end(jw);
}

char *wake_response_json(const pgw_wake *w, size_t *len)
{
	jsonw jw;

	jsonw_init(&jw);
	jsonw_object_begin(&jw);
	jsonw_kv_str(&jw, "id", w->id);
	jsonw_key(&jw, "results");
	write_results(&jw, w);
	jsonw_object_end(&jw);
	return jsonw_finish(&jw, len);
}

/* The token a push went to: the alert token for alert pushes. */
static const char *pushed_token(const pgw_push *p)
{
	return p->alert ? p->target->remote_token : p->target->token;
}

/* One registry change a finished wake calls for, with its own copies of
 * what it needs: it may run on another thread, and outlive the wake. */
typedef struct wake_update {
	size_t push; /* index into the wake's pushes */
	bool prune;  /* drop a dead token; else remember the APNs host */
	pgw_provider provider;
	char *app, *token;
	int64_t not_after_ms;
	pgw_apns_env env;
	char reason[64];
	registry_pruned what; /* what the prune dropped */
} wake_update;

struct wake_updates {
	size_t n;
	wake_update u[];
};

void wake_updates_free(wake_updates *u)
{
	size_t i;

	if (!u)
		return;
	for (i = 0; i < u->n; i++) {
		free(u->u[i].app);
		free(u->u[i].token);
	}
	free(u);
}

static bool needs_update(const pgw_push *p)
{
	const pgw_push_status st = p->result.status;

	if (!pushed_token(p))
		return false;
	/* only a token the service calls dead is dropped: an invalid_token
	 * that comes from our settings (topic, environment) keeps the device */
	return (st == PGW_PUSH_INVALID_TOKEN && p->result.token_dead) ||
	       (st == PGW_PUSH_SENT && p->other_env_tried);
}

wake_updates *wake_updates_new(const pgw_wake *w)
{
	wake_updates *u;
	size_t i, n = 0;

	for (i = 0; i < w->n_pushes; i++)
		n += needs_update(&w->pushes[i]);
	if (n == 0)
		return NULL;
	u = calloc(1, sizeof *u + n * sizeof u->u[0]);
	if (!u)
		return NULL;
	for (i = 0; i < w->n_pushes; i++) {
		const pgw_push *p = &w->pushes[i];
		wake_update *d = &u->u[u->n];

		if (!needs_update(p))
			continue;
		u->n++;
		d->push = i;
		d->prune = p->result.status == PGW_PUSH_INVALID_TOKEN;
		d->provider = p->target->provider;
		d->not_after_ms = p->result.unregistered_ms;
		d->env = p->result.environment;
		snprintf(d->reason, sizeof d->reason, "%s", p->result.reason);
		d->app = strdup(p->target->app->name);
		d->token = strdup(pushed_token(p));
		if (!d->app || !d->token) {
			wake_updates_free(u);
			return NULL;
		}
	}
	return u;
}

/* Count and log one dead token the registry dropped (the only log line
 * for it). */
static void note_pruned(const wake_update *d)
{
	const char *provider = d->provider == PGW_PROVIDER_APNS ? "apns" : "fcm";
	const char *part = d->what == REGISTRY_PRUNED_DEVICE ? "device" : "remote_token";
	char labels[64], red[32];

	snprintf(labels, sizeof labels, "provider=\"%s\",pruned=\"%s\"", provider, part);
	metrics_count("pushgw_registry_pruned_total", labels, 1);
	pgw_log(PGW_LOG_INFO, "registry: removed a dead token", "app", d->app, "provider", provider,
		"token", pgw_redact(d->token, red, sizeof red), "pruned", part, "reason", d->reason,
		NULL);
}

void wake_updates_apply(wake_updates *u, registry *reg)
{
	size_t i;

	for (i = 0; u && reg && i < u->n; i++) {
		wake_update *d = &u->u[i];

		if (!d->prune) {
			registry_set_environment(reg, d->app, d->token, d->env);
			continue;
		}
		/* APNs 410 says since when the token is dead: a device that
		 * registered again after that keeps its registration */
		if (registry_prune(reg, d->provider, d->app, d->token, d->not_after_ms, &d->what) !=
		    PGW_OK)
			d->what = REGISTRY_PRUNED_NOTHING;
		if (d->what != REGISTRY_PRUNED_NOTHING)
			note_pruned(d);
	}
}

void wake_updates_report(const wake_updates *u, pgw_wake *w)
{
	size_t i;

	for (i = 0; u && i < u->n; i++) {
		const wake_update *d = &u->u[i];
		pgw_push_result *r;

		if (!d->prune || d->what == REGISTRY_PRUNED_NOTHING || d->push >= w->n_pushes)
			continue;
		r = &w->pushes[d->push].result;
		r->removed = true;
		r->removed_remote_only = d->what == REGISTRY_PRUNED_REMOTE_TOKEN;
	}
}

void wake_apply_results(pgw_wake *w, registry *reg)
{
	wake_updates *u;

	if (!reg)
		return;
	u = wake_updates_new(w);
	wake_updates_apply(u, reg);
	wake_updates_report(u, w);
	wake_updates_free(u);
}

const char *wake_id(const pgw_wake *w)
{
	return w->id;
}

const char *wake_callback_url(const pgw_wake *w)
{
	return w->callback_url;
}

int64_t wake_result_ttl_ms(const pgw_wake *w)
{
	int64_t ttl = (int64_t)w->ttl_s * 1000, floor = (int64_t)w->timeout_ms + 1000;

	return ttl > floor ? ttl : floor;
}

void wake_log(const pgw_wake *w)
{
	const char *kind = w->kind == PGW_PUSH_CALL ? "wake" : "cancel";
	jsonw jw;

	if (!pgw_log_stream_begin(&jw, PGW_LOG_INFO, kind))
		return;
	jsonw_kv_str(&jw, "wake_id", w->id);
	jsonw_kv_str(&jw, "kind", kind);
	jsonw_kv_str(&jw, "call_id", w->call.id);
	jsonw_key(&jw, "devices");
	write_results(&jw, w);
	pgw_log_stream_end(&jw, PGW_LOG_INFO);
}

void wake_each_result(const pgw_wake *w, wake_result_fn fn, void *arg)
{
	size_t i;

	for (i = 0; i < w->n_targets; i++) {
		const pgw_target *t = &w->targets[i];
		const pgw_push_result *r = &w->pushes[w->push_of[i]].result;
		wake_result_view v = {
			.provider = t->provider == PGW_PROVIDER_APNS ? "apns" : "fcm",
			.app = t->app->name,
			.status = pgw_push_status_str(r->status),
			.reason = r->reason[0] ? r->reason : NULL,
			.latency_ms = r->latency_ms,
			.attempts = r->attempts,
		};
		fn(arg, &v);
	}
}

void wake_free(pgw_wake *w)
{
	size_t i;

	if (!w)
		return;
	for (i = 0; i < w->n_pushes; i++)
		free(w->pushes[i].body);
	for (i = 0; i < w->n_targets; i++)
		target_clear(&w->targets[i]);
	free(w->targets);
	free(w->pushes);
	free(w->push_of);
	json_decref(w->doc);
	free(w);
}
