/* What reaches the phone (SPEC §4), one encoder per payload profile in one
 * table: "pushgw" (our own shape) and "linphone" (what apps on the Linphone
 * SDK already parse, as the Flexisip proxy sends it). Pure; any thread.
 * Bodies are streamed with jsonw (escaped, valid UTF-8), so call data can
 * never break the JSON; no tree is built per push. */
#include "pushgw/payload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pushgw/jsonw.h"

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
	void (*apns_voip)(jsonw *w, const enc *e);
	void (*apns_alert)(jsonw *w, const enc *e);
	void (*fcm_message)(jsonw *w, const enc *e);
} profile;

/* Run one encoder into a fresh writer; the finished body or NULL (ENOMEM). */
static char *encode(void (*fn)(jsonw *w, const enc *e), const enc *e, size_t *len)
{
	jsonw w;

	jsonw_init(&w);
	fn(&w, e);
	return jsonw_finish(&w, len);
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

static void loc_alert(jsonw *w, const enc *e)
{
	jsonw_object_begin(w);
	jsonw_kv_str(w, "loc-key", e->loc_key);
	jsonw_key(w, "loc-args");
	jsonw_array_begin(w);
	jsonw_str(w, e->who);
	jsonw_array_end(w);
	jsonw_object_end(w);
}

/* call.data as an object ({} when the call has none). */
static void call_data(jsonw *w, const enc *e)
{
	if (e->call->data) {
		jsonw_value(w, e->call->data);
		return;
	}
	jsonw_object_begin(w);
	jsonw_object_end(w);
}

/* ---- profile "pushgw" ---- */

/* caller_key: "from" on APNs; FCM reserves "from", so there it is "caller". */
static void pushgw_call_fields(jsonw *w, const enc *e, const char *caller_key)
{
	jsonw_kv_str(w, "type", e->kind == PGW_PUSH_CANCEL ? "cancel" : "call");
	jsonw_kv_str(w, "call_id", e->call->id);
	if (e->kind == PGW_PUSH_CANCEL)
		jsonw_kv_str(w, "reason", e->call->reason);
	jsonw_kv_str(w, caller_key, e->call->from);
	jsonw_kv_str(w, "from_name", e->call->from_name);
	jsonw_kv_str(w, "to", e->call->to);
}

/* Everything after "aps", and the closing brace. */
static void pushgw_apns_rest(jsonw *w, const enc *e)
{
	pushgw_call_fields(w, e, "from");
	jsonw_kv_bool(w, "video", e->call->video);
	jsonw_kv_str(w, "wake_id", e->ctx->wake_id);
	jsonw_kv_int(w, "sent_at", e->ctx->sent_at_s);
	jsonw_key(w, "data");
	call_data(w, e);
	jsonw_object_end(w);
}

static void pushgw_apns_voip(jsonw *w, const enc *e)
{
	jsonw_object_begin(w);
	jsonw_key(w, "aps");
	jsonw_object_begin(w);
	jsonw_object_end(w);
	pushgw_apns_rest(w, e);
}

static void pushgw_apns_alert(jsonw *w, const enc *e)
{
	jsonw_object_begin(w);
	jsonw_key(w, "aps");
	jsonw_object_begin(w);
	jsonw_key(w, "alert");
	loc_alert(w, e);
	if (*e->sound)
		jsonw_kv_str(w, "sound", e->sound);
	jsonw_object_end(w);
	pushgw_apns_rest(w, e);
}

/* FCM refuses these data keys ("from", "message_type", "google…", "gcm…"):
 * a call.data key among them is left out of the FCM message. */
static bool fcm_reserved_key(const char *key)
{
	return strcmp(key, "from") == 0 || strcmp(key, "message_type") == 0 ||
	       strncmp(key, "google", 6) == 0 || strncmp(key, "gcm", 3) == 0;
}

/* Keys pushgw_fcm writes itself: they win over call.data's. */
static bool pushgw_fcm_own_key(const char *key, const enc *e)
{
	static const char *const own[] = {"type", "call_id", "caller", "from_name", "to",
					  "video", "wake_id", "sent_at", NULL};
	size_t i;

	for (i = 0; own[i]; i++)
		if (strcmp(key, own[i]) == 0)
			return true;
	return e->kind == PGW_PUSH_CANCEL && strcmp(key, "reason") == 0;
}

/* FCM data values are strings: call.data's strings (not ours, not FCM's
 * reserved keys), then ours. */
static void pushgw_fcm_data(jsonw *w, const enc *e)
{
	const char *key;
	json_t *val;
	char sent[24];

	jsonw_object_begin(w);
	if (e->call->data)
		json_object_foreach((json_t *)e->call->data, key, val)
			if (json_is_string(val) && !fcm_reserved_key(key) && !pushgw_fcm_own_key(key, e))
			{
				jsonw_key(w, key);
				jsonw_strn(w, json_string_value(val), json_string_length(val));
			}
	pushgw_call_fields(w, e, "caller");
	jsonw_kv_str(w, "video", e->call->video ? "true" : "false");
	jsonw_kv_str(w, "wake_id", e->ctx->wake_id);
	snprintf(sent, sizeof sent, "%lld", (long long)e->ctx->sent_at_s);
	jsonw_kv_str(w, "sent_at", sent);
	jsonw_object_end(w);
}

/* {"message": {"token": …, "android": {"priority": …, "ttl": "<ttl>s" — the
 * android object left open: one profile puts its data beside it, the other
 * inside it. fcm_message_end() closes what is still open. */
static void fcm_message_begin(jsonw *w, const enc *e, const char *priority)
{
	char ttl[32];

	snprintf(ttl, sizeof ttl, "%ds", e->ctx->ttl_s);
	jsonw_object_begin(w);
	jsonw_key(w, "message");
	jsonw_object_begin(w);
	jsonw_kv_str(w, "token", e->t->token);
	jsonw_key(w, "android");
	jsonw_object_begin(w);
	jsonw_kv_str(w, "priority", priority);
	jsonw_kv_str(w, "ttl", ttl);
}

/* Only objects are open in an FCM message. */
static void fcm_message_end(jsonw *w)
{
	while (w->depth > 0)
		jsonw_object_end(w);
}

/* A cancel of a call answered or declined elsewhere shows nothing on the
 * phone: Google demotes apps whose high-priority messages show nothing
 * (and the next call's wake is then held back by Doze), so it goes at
 * normal priority. A caller's hang-up shows a missed call: high. */
static bool fcm_high_priority(const enc *e)
{
	return e->kind == PGW_PUSH_CALL || !e->call->reason ||
	       strcmp(e->call->reason, "caller_cancelled") == 0;
}

static void pushgw_fcm(jsonw *w, const enc *e)
{
	fcm_message_begin(w, e, fcm_high_priority(e) ? "HIGH" : "NORMAL");
	jsonw_object_end(w); /* android */
	jsonw_key(w, "data");
	pushgw_fcm_data(w, e);
	fcm_message_end(w);
}

/* ---- profile "linphone" (Flexisip's shape) ---- */

/* Flexisip has no cancel push: ours are its call shape plus "type":"cancel"
 * and the reason, so an app that knows them ends the call it matches by
 * call-id/uuid. */
static void linphone_cancel_fields(jsonw *w, const enc *e)
{
	if (e->kind != PGW_PUSH_CANCEL)
		return;
	jsonw_kv_str(w, "type", "cancel");
	jsonw_kv_str(w, "reason", e->call->reason);
}

/* pn_ttl, customPayload and the closing brace. */
static void linphone_apns_tail(jsonw *w, const enc *e)
{
	jsonw_kv_int(w, "pn_ttl", e->ctx->ttl_s);
	jsonw_key(w, "customPayload");
	call_data(w, e);
	jsonw_object_end(w);
}

static void linphone_apns_voip(jsonw *w, const enc *e)
{
	jsonw_object_begin(w);
	jsonw_key(w, "aps");
	jsonw_object_begin(w);
	/* loc-key/loc-args are what make a VoIP push an incoming call to a
	 * Linphone app: a cancel leaves them (and the sound) out */
	if (e->kind == PGW_PUSH_CALL) {
		jsonw_kv_str(w, "sound", "");
		jsonw_kv_str(w, "loc-key", e->loc_key);
		jsonw_key(w, "loc-args");
		jsonw_array_begin(w);
		jsonw_str(w, e->who);
		jsonw_array_end(w);
	}
	jsonw_kv_str(w, "call-id", e->call->id);
	jsonw_kv_str(w, "uuid", e->ctx->wake_id);
	jsonw_kv_str(w, "send-time", e->send_time);
	jsonw_object_end(w);
	linphone_cancel_fields(w, e);
	jsonw_kv_str(w, "from-uri", e->call->from);
	jsonw_kv_str(w, "display-name", e->call->from_name);
	linphone_apns_tail(w, e);
}

static void linphone_apns_alert(jsonw *w, const enc *e)
{
	jsonw_object_begin(w);
	jsonw_key(w, "aps");
	jsonw_object_begin(w);
	jsonw_key(w, "alert");
	loc_alert(w, e);
	jsonw_kv_str(w, "sound", e->sound);
	jsonw_kv_int(w, "badge", 1);
	jsonw_object_end(w);
	linphone_cancel_fields(w, e);
	jsonw_kv_str(w, "from-uri", e->call->from);
	jsonw_kv_str(w, "display-name", e->call->from_name);
	jsonw_kv_str(w, "call-id", e->call->id);
	jsonw_kv_str(w, "uuid", e->ctx->wake_id);
	jsonw_kv_str(w, "send-time", e->send_time);
	linphone_apns_tail(w, e);
}

static void linphone_fcm(jsonw *w, const enc *e)
{
	fcm_message_begin(w, e, fcm_high_priority(e) ? "high" : "normal");
	jsonw_key(w, "data");
	jsonw_object_begin(w);
	linphone_cancel_fields(w, e);
	jsonw_kv_str(w, "uuid", e->ctx->wake_id);
	jsonw_kv_str(w, "from-uri", e->call->from);
	jsonw_kv_str(w, "display-name", e->call->from_name);
	jsonw_kv_str(w, "call-id", e->call->id);
	/* as Flexisip sends it: the display name when there is one */
	jsonw_kv_str(w, "sip-from", e->call->from_name && *e->call->from_name ? e->call->from_name
									    : e->call->from);
	jsonw_kv_str(w, "loc-key", e->loc_key);
	jsonw_kv_str(w, "loc-args", e->who);
	jsonw_kv_str(w, "send-time", e->send_time);
	jsonw_key(w, "custom-payload");
	if (e->call->data)
		jsonw_value_as_string(w, e->call->data);
	else
		jsonw_str(w, "{}");
	fcm_message_end(w);
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
	return encode(alert ? p->apns_alert : p->apns_voip, &e, len);
}

char *payload_fcm(const pgw_payload_ctx *ctx, const pgw_target *t, pgw_push_kind kind,
		  size_t *len)
{
	enc e;

	enc_init(&e, ctx, t, kind);
	return encode(profile_of(t)->fcm_message, &e, len);
}

/* FCM counts the keys and values of the data map (message.data, or
 * android.data), not the JSON around them, the token or the android
 * options: Google's limit is "4096 bytes of data payload". Measuring the
 * whole body instead would count a few hundred bytes FCM does not (the
 * token alone is ~160) and refuse wakes FCM takes. */
static size_t fcm_data_bytes(const char *body, size_t len)
{
	json_t *root = json_loadb(body, len, 0, NULL), *msg, *maps[2], *v;
	const char *key;
	size_t bytes = 0, i;

	if (!root)
		return len; /* cannot happen for our own bodies: count it all */
	msg = json_object_get(root, "message");
	maps[0] = json_object_get(msg, "data");
	maps[1] = json_object_get(json_object_get(msg, "android"), "data");
	for (i = 0; i < 2; i++)
		json_object_foreach(maps[i], key, v)
			bytes += strlen(key) + (json_is_string(v) ? json_string_length(v) : 0);
	json_decref(root);
	return bytes;
}

bool payload_fits(pgw_provider provider, bool alert, const char *body, size_t len,
		  size_t *measured, size_t *limit)
{
	if (provider == PGW_PROVIDER_APNS) {
		*limit = alert ? PAYLOAD_APNS_ALERT_MAX : PAYLOAD_APNS_VOIP_MAX;
		*measured = len;
		return len <= *limit;
	}
	*limit = PAYLOAD_FCM_DATA_MAX;
	*measured = len; /* the data is part of the body: at most this */
	if (len <= *limit)
		return true; /* the common case pays no parse */
	*measured = fcm_data_bytes(body, len);
	return *measured <= *limit;
}
