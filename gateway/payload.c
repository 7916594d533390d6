/* Push bodies per SPEC §4, "pushgw" profile. Pure functions; any thread.
 * Every body is built with jansson so call data can never break the JSON. */
#include "pushgw/payload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void set_str(json_t *obj, const char *key, const char *val)
{
	json_object_set_new(obj, key, json_string(val ? val : ""));
}

static const char *type_of(pgw_push_kind kind)
{
	return kind == PGW_PUSH_CANCEL ? "cancel" : "call";
}

static char *dump(json_t *root, size_t *len)
{
	char *out = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(root);
	if (out && len)
		*len = strlen(out);
	return out;
}

/* The alert an iPhone with only a remote token shows. */
static json_t *apns_alert(const pgw_payload_ctx *ctx, const pgw_target *t, pgw_push_kind kind)
{
	const pgw_app_strings *s = &t->app->strings;
	const pgw_call *call = ctx->call;
	const char *who = call->from_name && *call->from_name ? call->from_name : call->from;
	const char *key = t->call_str ? t->call_str : s->call;
	const char *sound = t->call_snd ? t->call_snd : s->sound;
	json_t *aps = json_object(), *alert = json_object(), *args = json_array();

	if (kind == PGW_PUSH_CANCEL) {
		const char *r = call->reason ? call->reason : "";
		key = strcmp(r, "answered_elsewhere") == 0 ? s->answered_elsewhere
		      : strcmp(r, "declined") == 0	   ? s->declined_elsewhere
							   : s->missed;
		sound = "";
	}
	json_array_append_new(args, json_string(who ? who : ""));
	json_object_set_new(alert, "loc-key", json_string(key));
	json_object_set_new(alert, "loc-args", args);
	json_object_set_new(aps, "alert", alert);
	if (!t->silent && sound && *sound)
		json_object_set_new(aps, "sound", json_string(sound));
	return aps;
}

char *payload_apns(const pgw_payload_ctx *ctx, const pgw_target *t, pgw_push_kind kind,
		   bool alert, size_t *len)
{
	const pgw_call *call = ctx->call;
	json_t *root = json_object();

	json_object_set_new(root, "aps", alert ? apns_alert(ctx, t, kind) : json_object());
	set_str(root, "type", type_of(kind));
	set_str(root, "call_id", call->id);
	if (kind == PGW_PUSH_CANCEL)
		set_str(root, "reason", call->reason);
	set_str(root, "from", call->from);
	set_str(root, "from_name", call->from_name);
	set_str(root, "to", call->to);
	json_object_set_new(root, "video", json_boolean(call->video));
	set_str(root, "wake_id", ctx->wake_id);
	json_object_set_new(root, "sent_at", json_integer(ctx->sent_at_s));
	json_object_set_new(root, "data", call->data ? json_deep_copy(call->data) : json_object());
	return dump(root, len);
}

char *payload_fcm(const pgw_payload_ctx *ctx, const pgw_target *t, pgw_push_kind kind,
		  size_t *len)
{
	const pgw_call *call = ctx->call;
	json_t *root = json_object(), *msg = json_object(), *android = json_object();
	json_t *data = json_object();
	char buf[32];
	const char *key;
	json_t *val;

	set_str(msg, "token", t->token);
	json_object_set_new(android, "priority", json_string("HIGH"));
	snprintf(buf, sizeof buf, "%ds", ctx->ttl_s);
	json_object_set_new(android, "ttl", json_string(buf));
	json_object_set_new(msg, "android", android);
	/* call.data first, so our own keys win on a clash */
	if (call->data)
		json_object_foreach((json_t *)call->data, key, val)
			if (json_is_string(val))
				json_object_set(data, key, val);
	set_str(data, "type", type_of(kind));
	set_str(data, "call_id", call->id);
	if (kind == PGW_PUSH_CANCEL)
		set_str(data, "reason", call->reason);
	set_str(data, "from", call->from);
	set_str(data, "from_name", call->from_name);
	set_str(data, "to", call->to);
	set_str(data, "video", call->video ? "true" : "false");
	set_str(data, "wake_id", ctx->wake_id);
	snprintf(buf, sizeof buf, "%lld", (long long)ctx->sent_at_s);
	set_str(data, "sent_at", buf);
	json_object_set_new(msg, "data", data);
	json_object_set_new(root, "message", msg);
	return dump(root, len);
}
