/* What reaches the phone (SPEC §4), one encoder per payload profile in one
 * table: "pushgw" (our own shape) and "linphone" (what apps on the Linphone
 * SDK already parse, as the Flexisip proxy sends it). Pure; any thread.
 * Every body is built with jansson, so call data can never break the JSON. */
#include "pushgw/payload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* What every encoder needs, resolved once: strings and sound after the app's
 * defaults and the device's own Contact overrides. */
typedef struct enc {
	const pgw_payload_ctx *ctx;
	const pgw_call *call;
	const pgw_target *t;
	pgw_push_kind kind;
	const char *who;      /* from_name, else from */
	const char *loc_key;  /* call string, or the cancel reason's string */
	const char *sound;    /* "" when silent or for a cancel */
	char send_time[24];   /* "YYYY-MM-DD HH:MM:SS" UTC */
} enc;

typedef struct profile {
	pgw_payload_profile id;
	json_t *(*apns_voip)(const enc *e);
	json_t *(*apns_alert)(const enc *e);
	json_t *(*fcm_message)(const enc *e);
} profile;

static void set_str(json_t *obj, const char *key, const char *val)
{
	json_object_set_new(obj, key, json_string(val ? val : ""));
}

static char *dump(json_t *root, size_t *len)
{
	char *out = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);

	json_decref(root);
	if (out && len)
		*len = strlen(out);
	return out;
}

static const char *cancel_string(const pgw_app_strings *s, const char *reason)
{
	if (reason && strcmp(reason, "answered_elsewhere") == 0)
		return s->answered_elsewhere;
	if (reason && strcmp(reason, "declined") == 0)
		return s->declined_elsewhere;
	return s->missed;
}

static void enc_init(enc *e, const pgw_payload_ctx *ctx, const pgw_target *t, pgw_push_kind kind)
{
	const pgw_app_strings *s = &t->app->strings;
	time_t now = (time_t)ctx->sent_at_s;
	struct tm tm;

	memset(e, 0, sizeof *e);
	e->ctx = ctx;
	e->call = ctx->call;
	e->t = t;
	e->kind = kind;
	e->who = e->call->from_name && *e->call->from_name ? e->call->from_name
							    : e->call->from ? e->call->from : "";
	if (kind == PGW_PUSH_CANCEL) {
		e->loc_key = cancel_string(s, e->call->reason);
		e->sound = "";
	} else {
		e->loc_key = t->call_str ? t->call_str : s->call;
		e->sound = t->silent ? "" : t->call_snd ? t->call_snd : s->sound;
	}
	gmtime_r(&now, &tm);
	strftime(e->send_time, sizeof e->send_time, "%Y-%m-%d %H:%M:%S", &tm);
}

static json_t *loc_alert(const enc *e)
{
	return json_pack("{s:s,s:[s]}", "loc-key", e->loc_key, "loc-args", e->who);
}

/* ---- profile "pushgw" ---- */

static void pushgw_call_fields(json_t *o, const enc *e)
{
	set_str(o, "type", e->kind == PGW_PUSH_CANCEL ? "cancel" : "call");
	set_str(o, "call_id", e->call->id);
	if (e->kind == PGW_PUSH_CANCEL)
		set_str(o, "reason", e->call->reason);
	set_str(o, "from", e->call->from);
	set_str(o, "from_name", e->call->from_name);
	set_str(o, "to", e->call->to);
}

static json_t *pushgw_apns(const enc *e, json_t *aps)
{
	json_t *root = json_object();

	json_object_set_new(root, "aps", aps);
	pushgw_call_fields(root, e);
	json_object_set_new(root, "video", json_boolean(e->call->video));
	set_str(root, "wake_id", e->ctx->wake_id);
	json_object_set_new(root, "sent_at", json_integer(e->ctx->sent_at_s));
	json_object_set_new(root, "data", e->call->data ? json_deep_copy(e->call->data) : json_object());
	return root;
}

static json_t *pushgw_apns_voip(const enc *e)
{
	return pushgw_apns(e, json_object());
}

static json_t *pushgw_apns_alert(const enc *e)
{
	json_t *aps = json_object();

	json_object_set_new(aps, "alert", loc_alert(e));
	if (*e->sound)
		set_str(aps, "sound", e->sound);
	return pushgw_apns(e, aps);
}

/* FCM refuses these data keys ("from", "message_type", "google…", "gcm…"):
 * a call.data key among them is left out of the FCM message. */
static bool fcm_reserved_key(const char *key)
{
	return strcmp(key, "from") == 0 || strcmp(key, "message_type") == 0 ||
	       strncmp(key, "google", 6) == 0 || strncmp(key, "gcm", 3) == 0;
}

static json_t *pushgw_fcm(const enc *e)
{
	json_t *msg = json_object(), *data = json_object();
	const char *key;
	json_t *val;
	char buf[32];

	set_str(msg, "token", e->t->token);
	snprintf(buf, sizeof buf, "%ds", e->ctx->ttl_s);
	json_object_set_new(msg, "android", json_pack("{s:s,s:s}", "priority", "HIGH", "ttl", buf));
	/* call.data first, so our own keys win on a clash */
	if (e->call->data)
		json_object_foreach((json_t *)e->call->data, key, val)
			if (json_is_string(val) && !fcm_reserved_key(key))
				json_object_set(data, key, val);
	pushgw_call_fields(data, e);
	/* FCM reserves "from" as a data key: the caller goes as "caller" */
	json_object_set(data, "caller", json_object_get(data, "from"));
	json_object_del(data, "from");
	set_str(data, "video", e->call->video ? "true" : "false");
	set_str(data, "wake_id", e->ctx->wake_id);
	snprintf(buf, sizeof buf, "%lld", (long long)e->ctx->sent_at_s);
	set_str(data, "sent_at", buf);
	json_object_set_new(msg, "data", data);
	return json_pack("{s:o}", "message", msg);
}

/* ---- profile "linphone" (Flexisip's shape) ---- */

static json_t *custom_payload(const enc *e)
{
	return e->call->data ? json_deep_copy(e->call->data) : json_object();
}

/* Flexisip has no cancel push: ours are its call shape plus "type":"cancel"
 * and the reason, so an app that knows them ends the call it matches by
 * call-id/uuid. */
static void linphone_cancel_fields(json_t *o, const enc *e)
{
	if (e->kind != PGW_PUSH_CANCEL)
		return;
	set_str(o, "type", "cancel");
	set_str(o, "reason", e->call->reason);
}

static json_t *linphone_apns_voip(const enc *e)
{
	json_t *aps = json_object(), *root = json_object();

	/* loc-key/loc-args are what make a VoIP push an incoming call to a
	 * Linphone app: a cancel leaves them (and the sound) out */
	if (e->kind == PGW_PUSH_CALL) {
		set_str(aps, "sound", "");
		set_str(aps, "loc-key", e->loc_key);
		json_object_set_new(aps, "loc-args", json_pack("[s]", e->who));
	}
	set_str(aps, "call-id", e->call->id);
	set_str(aps, "uuid", e->ctx->wake_id);
	set_str(aps, "send-time", e->send_time);
	json_object_set_new(root, "aps", aps);
	linphone_cancel_fields(root, e);
	set_str(root, "from-uri", e->call->from);
	set_str(root, "display-name", e->call->from_name);
	json_object_set_new(root, "pn_ttl", json_integer(e->ctx->ttl_s));
	json_object_set_new(root, "customPayload", custom_payload(e));
	return root;
}

static json_t *linphone_apns_alert(const enc *e)
{
	json_t *aps = json_object(), *root = json_object();

	json_object_set_new(aps, "alert", loc_alert(e));
	set_str(aps, "sound", e->sound);
	json_object_set_new(aps, "badge", json_integer(1));
	json_object_set_new(root, "aps", aps);
	linphone_cancel_fields(root, e);
	set_str(root, "from-uri", e->call->from);
	set_str(root, "display-name", e->call->from_name);
	set_str(root, "call-id", e->call->id);
	set_str(root, "uuid", e->ctx->wake_id);
	set_str(root, "send-time", e->send_time);
	json_object_set_new(root, "pn_ttl", json_integer(e->ctx->ttl_s));
	json_object_set_new(root, "customPayload", custom_payload(e));
	return root;
}

static json_t *linphone_fcm(const enc *e)
{
	json_t *data = json_object(), *custom = custom_payload(e);
	char ttl[32];
	char *custom_str = json_dumps(custom, JSON_COMPACT | JSON_SORT_KEYS);

	json_decref(custom);
	linphone_cancel_fields(data, e);
	set_str(data, "uuid", e->ctx->wake_id);
	set_str(data, "from-uri", e->call->from);
	set_str(data, "display-name", e->call->from_name);
	set_str(data, "call-id", e->call->id);
	set_str(data, "sip-from", e->call->from);
	set_str(data, "loc-key", e->loc_key);
	set_str(data, "loc-args", e->who);
	set_str(data, "send-time", e->send_time);
	set_str(data, "custom-payload", custom_str ? custom_str : "{}");
	free(custom_str);
	snprintf(ttl, sizeof ttl, "%ds", e->ctx->ttl_s);
	return json_pack("{s:{s:s,s:{s:s,s:s,s:o}}}", "message", "token", e->t->token, "android",
			 "priority", "high", "ttl", ttl, "data", data);
}

static const profile profiles[] = {
	{PGW_PAYLOAD_PUSHGW, pushgw_apns_voip, pushgw_apns_alert, pushgw_fcm},
	{PGW_PAYLOAD_LINPHONE, linphone_apns_voip, linphone_apns_alert, linphone_fcm},
};

static const profile *profile_of(const pgw_target *t)
{
	size_t i;

	for (i = 0; i < sizeof profiles / sizeof profiles[0]; i++)
		if (profiles[i].id == t->app->payload)
			return &profiles[i];
	return &profiles[0];
}

char *payload_apns(const pgw_payload_ctx *ctx, const pgw_target *t, pgw_push_kind kind,
		   bool alert, size_t *len)
{
	const profile *p = profile_of(t);
	enc e;

	enc_init(&e, ctx, t, kind);
	return dump(alert ? p->apns_alert(&e) : p->apns_voip(&e), len);
}

char *payload_fcm(const pgw_payload_ctx *ctx, const pgw_target *t, pgw_push_kind kind,
		  size_t *len)
{
	enc e;

	enc_init(&e, ctx, t, kind);
	return dump(profile_of(t)->fcm_message(&e), len);
}
