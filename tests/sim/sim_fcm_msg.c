/* FCM v1 message validation (see sim_fcm_msg.h). Checks run in two phases like
 * FCM's: first the JSON must map onto the Message schema (unknown names and
 * wrong types are "Invalid JSON payload"/"Invalid value" errors with only a
 * BadRequest detail), then the message must make sense (a recipient, a valid
 * token, no reserved data keys, the size limit), which FCM reports with an
 * FcmError detail. Pure functions. */
#include "sim_fcm_msg.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define SIM_FCM_MAX_PAYLOAD 4096
#define SIM_FCM_BAD_JSON "Invalid JSON payload received. "
#define SIM_FCM_NO_FIELD "Cannot find field."
#define SIM_FCM_TYPE_PREFIX "type.googleapis.com/google.firebase.fcm.v1."

static const char *const sim_fcm_top_fields[] = { "message", "validate_only", "validateOnly",
						  NULL };
static const char *const sim_fcm_message_fields[] = {
	"name", "data", "notification", "android", "webpush", "apns", "fcm_options",
	"fcmOptions", "token", "topic", "condition", NULL,
};
static const char *const sim_fcm_android_fields[] = {
	"collapse_key", "collapseKey", "priority", "ttl", "restricted_package_name",
	"restrictedPackageName", "data", "notification", "fcm_options", "fcmOptions",
	"direct_boot_ok", "directBootOk", NULL,
};

static void sim_fcm_problem(struct sim_fcm_problem *p, const char *fcm_code, bool bad_request,
			    const char *field, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void sim_fcm_problem(struct sim_fcm_problem *p, const char *fcm_code, bool bad_request,
			    const char *field, const char *fmt, ...)
{
	va_list ap;

	p->status = 400;
	p->fcm_code = fcm_code;
	p->bad_request = bad_request;
	snprintf(p->field, sizeof(p->field), "%s", field);
	va_start(ap, fmt);
	vsnprintf(p->message, sizeof(p->message), fmt, ap);
	va_end(ap);
}

/* A JSON value as FCM quotes it in "Invalid value" messages. */
static void sim_fcm_value_text(const json_t *v, char *out, size_t outlen)
{
	char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);

	snprintf(out, outlen, "%s", text ? text : "?");
	free(text);
}

static void sim_fcm_invalid_value(struct sim_fcm_problem *p, const char *field,
				  const char *type, const json_t *v)
{
	char text[128];

	sim_fcm_value_text(v, text, sizeof(text));
	sim_fcm_problem(p, NULL, true, field, "Invalid value at '%s' (%s), %s", field, type, text);
}

static bool sim_fcm_name_known(const char *name, const char *const *names)
{
	for (; *names; names++)
		if (strcmp(name, *names) == 0)
			return true;
	return false;
}

/* where: the field path of obj, "" for the root. */
static bool sim_fcm_names_known(struct sim_fcm_problem *p, const json_t *obj,
				const char *const *names, const char *where)
{
	const char *name;
	json_t *v;

	json_object_foreach((json_t *)obj, name, v) {
		if (sim_fcm_name_known(name, names))
			continue;
		if (*where)
			sim_fcm_problem(p, NULL, true, where,
					SIM_FCM_BAD_JSON "Unknown name \"%s\" at '%s': %s", name,
					where, SIM_FCM_NO_FIELD);
		else
			sim_fcm_problem(p, NULL, true, "",
					SIM_FCM_BAD_JSON "Unknown name \"%s\": %s", name,
					SIM_FCM_NO_FIELD);
		return false;
	}
	return true;
}

static bool sim_fcm_string_field(struct sim_fcm_problem *p, const json_t *obj, const char *name,
				 const char *where)
{
	const json_t *v = json_object_get(obj, name);
	char field[96];

	if (!v || json_is_string(v) || json_is_null(v))
		return true;
	snprintf(field, sizeof(field), "%s.%s", where, name);
	sim_fcm_invalid_value(p, field, "TYPE_STRING", v);
	return false;
}

static bool sim_fcm_object_field(struct sim_fcm_problem *p, const json_t *obj, const char *name,
				 const char *where, const char *type)
{
	const json_t *v = json_object_get(obj, name);
	char field[96];

	if (!v || json_is_object(v) || json_is_null(v))
		return true;
	snprintf(field, sizeof(field), "%s.%s", where, name);
	sim_fcm_invalid_value(p, field, type, v);
	return false;
}

/* ---- phase 1: the schema ---- */

/* map<string, string>: the field of a bad value is "<path>[index].value". */
static bool sim_fcm_data_types(struct sim_fcm_problem *p, const json_t *data, const char *path)
{
	const char *key;
	json_t *v;
	size_t i = 0;

	if (!data || json_is_null(data))
		return true;
	if (!json_is_object(data)) {
		sim_fcm_invalid_value(p, path, "Map", data);
		return false;
	}
	json_object_foreach((json_t *)data, key, v) {
		char field[96];

		if (!json_is_string(v)) {
			snprintf(field, sizeof(field), "%s[%zu].value", path, i);
			sim_fcm_invalid_value(p, field, "TYPE_STRING", v);
			return false;
		}
		i++;
	}
	return true;
}

static bool sim_fcm_priority_ok(const json_t *v)
{
	static const char *const names[] = { "NORMAL", "HIGH", "normal", "high", NULL };

	if (!v || json_is_null(v))
		return true;
	if (json_is_integer(v))
		return json_integer_value(v) == 0 || json_integer_value(v) == 1;
	return json_is_string(v) && sim_fcm_name_known(json_string_value(v), names);
}

/* google.protobuf.Duration in JSON: "<seconds>[.<1-9 digits>]s". */
static const char *sim_fcm_duration_problem(const json_t *v)
{
	const char *s = json_string_value(v);
	size_t n, digits;

	if (!s)
		return "Illegal duration format";
	n = strlen(s);
	if (!n || s[n - 1] != 's')
		return "Illegal duration format; duration must end with 's'";
	/* Protobuf allows a negative Duration; a message cannot live less than
	 * no time. */
	if (*s == '-')
		return "a time to live must not be negative";
	digits = strspn(s, "0123456789");
	if (!digits || digits > 12)
		return "Illegal duration format";
	s += digits;
	if (*s == '.') {
		digits = strspn(s + 1, "0123456789");
		if (!digits || digits > 9)
			return "Illegal duration format";
		s += 1 + digits;
	}
	return strcmp(s, "s") == 0 ? NULL : "Illegal duration format";
}

static bool sim_fcm_android_types(struct sim_fcm_problem *p, const json_t *android)
{
	const json_t *v;
	const char *bad;

	if (!android || json_is_null(android))
		return true;
	if (!json_is_object(android)) {
		sim_fcm_invalid_value(p, "message.android", SIM_FCM_TYPE_PREFIX "AndroidConfig",
				      android);
		return false;
	}
	if (!sim_fcm_names_known(p, android, sim_fcm_android_fields, "message.android") ||
	    !sim_fcm_string_field(p, android, "collapse_key", "message.android") ||
	    !sim_fcm_string_field(p, android, "restricted_package_name", "message.android"))
		return false;
	v = json_object_get(android, "priority");
	if (!sim_fcm_priority_ok(v)) {
		sim_fcm_invalid_value(p, "message.android.priority",
				      SIM_FCM_TYPE_PREFIX "AndroidMessagePriority", v);
		return false;
	}
	v = json_object_get(android, "ttl");
	if (v && !json_is_null(v) && (bad = sim_fcm_duration_problem(v))) {
		sim_fcm_problem(p, NULL, true, "message.android.ttl",
				"Invalid value at 'message.android.ttl' "
				"(type.googleapis.com/google.protobuf.Duration), Field 'ttl', %s",
				bad);
		return false;
	}
	return sim_fcm_data_types(p, json_object_get(android, "data"), "message.android.data");
}

static bool sim_fcm_message_types(struct sim_fcm_problem *p, const json_t *msg)
{
	return sim_fcm_names_known(p, msg, sim_fcm_message_fields, "message") &&
	       sim_fcm_string_field(p, msg, "name", "message") &&
	       sim_fcm_string_field(p, msg, "token", "message") &&
	       sim_fcm_string_field(p, msg, "topic", "message") &&
	       sim_fcm_string_field(p, msg, "condition", "message") &&
	       sim_fcm_object_field(p, msg, "notification", "message",
				    SIM_FCM_TYPE_PREFIX "Notification") &&
	       sim_fcm_object_field(p, msg, "webpush", "message",
				    SIM_FCM_TYPE_PREFIX "WebpushConfig") &&
	       sim_fcm_object_field(p, msg, "apns", "message", SIM_FCM_TYPE_PREFIX "ApnsConfig") &&
	       sim_fcm_data_types(p, json_object_get(msg, "data"), "message.data") &&
	       sim_fcm_android_types(p, json_object_get(msg, "android"));
}

/* ---- phase 2: the meaning ---- */

static bool sim_fcm_has(const json_t *o, const char *name)
{
	const json_t *v = json_object_get(o, name);

	return v && !json_is_null(v);
}

static bool sim_fcm_target_ok(struct sim_fcm_problem *p, const json_t *msg)
{
	static const char *const targets[] = { "token", "topic", "condition" };
	const char *first = NULL;
	size_t i;

	for (i = 0; i < 3; i++) {
		if (!sim_fcm_has(msg, targets[i]))
			continue;
		if (first) {
			sim_fcm_problem(p, NULL, true, "message",
					SIM_FCM_BAD_JSON
					"Oneof field 'target' is already set. Cannot set '%s'",
					targets[i]);
			return false;
		}
		first = targets[i];
	}
	if (!first) {
		sim_fcm_problem(p, "INVALID_ARGUMENT", true, "message",
				"Recipient of the message is not set.");
		return false;
	}
	return true;
}

/* Real tokens are long runs of [A-Za-z0-9_:-]; we only refuse what can
 * never be one, so tests may use short readable tokens. */
static bool sim_fcm_token_ok(const char *token)
{
	if (!*token)
		return false;
	for (; *token; token++)
		if ((unsigned char)*token <= ' ' || (unsigned char)*token >= 0x7f)
			return false;
	return true;
}

static bool sim_fcm_key_reserved(const char *key)
{
	return strcmp(key, "from") == 0 || strcmp(key, "message_type") == 0 ||
	       strncmp(key, "google.", 7) == 0 || strncmp(key, "gcm.notification.", 17) == 0;
}

/* Adds the map's bytes to *bytes; false on a reserved key. */
static bool sim_fcm_data_ok(struct sim_fcm_problem *p, const json_t *data, const char *path,
			    bool allow_reserved, size_t *bytes)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)data, key, v) {
		if (!allow_reserved && sim_fcm_key_reserved(key)) {
			sim_fcm_problem(p, "INVALID_ARGUMENT", true, path,
					"Invalid data payload key: \"%s\" is a reserved word "
					"(\"from\", \"message_type\", or starting with \"google.\" "
					"or \"gcm.notification.\")",
					key);
			return false;
		}
		*bytes += strlen(key) + json_string_length(v);
	}
	return true;
}

static bool sim_fcm_meaning_ok(struct sim_fcm_problem *p, const json_t *msg, bool allow_reserved)
{
	const json_t *android = json_object_get(msg, "android");
	const char *token = json_string_value(json_object_get(msg, "token"));
	size_t bytes = 0;

	if (!sim_fcm_target_ok(p, msg))
		return false;
	if (token && !sim_fcm_token_ok(token)) {
		sim_fcm_problem(p, "INVALID_ARGUMENT", false, "",
				"The registration token is not a valid FCM registration token");
		return false;
	}
	if (!sim_fcm_data_ok(p, json_object_get(msg, "data"), "message.data", allow_reserved,
			     &bytes) ||
	    !sim_fcm_data_ok(p, json_object_get(android, "data"), "message.android.data",
			     allow_reserved, &bytes))
		return false;
	if (bytes > SIM_FCM_MAX_PAYLOAD) {
		/* FCM says so with an FcmError alone, like a bad token. */
		sim_fcm_problem(p, "INVALID_ARGUMENT", false, "", "Android message is too big");
		return false;
	}
	return true;
}

/* ---- entry ---- */

static void sim_fcm_read_msg(const json_t *root, struct sim_fcm_msg *msg)
{
	const json_t *m = json_object_get(root, "message");
	const char *token = json_string_value(json_object_get(m, "token"));
	const json_t *vo = json_object_get(root, "validate_only");

	if (!vo)
		vo = json_object_get(root, "validateOnly");
	msg->json_ok = json_is_object(m);
	msg->validate_only = json_is_true(vo);
	snprintf(msg->token, sizeof(msg->token), "%s", token ? token : "");
}

static void sim_fcm_check_root(const json_t *root, bool allow_reserved,
			       struct sim_fcm_problem *p)
{
	const json_t *m = json_object_get(root, "message");
	const json_t *vo;

	if (!json_is_object(root)) {
		sim_fcm_problem(p, NULL, true, "", SIM_FCM_BAD_JSON "Unknown name \"\": %s",
				"Root element must be a message.");
		return;
	}
	if (!sim_fcm_names_known(p, root, sim_fcm_top_fields, ""))
		return;
	vo = json_object_get(root, "validate_only");
	if (vo && !json_is_boolean(vo)) {
		sim_fcm_invalid_value(p, "validate_only", "TYPE_BOOL", vo);
		return;
	}
	if (m && !json_is_object(m)) {
		sim_fcm_invalid_value(p, "message", SIM_FCM_TYPE_PREFIX "Message", m);
		return;
	}
	if (!m) {
		sim_fcm_problem(p, "INVALID_ARGUMENT", true, "message",
				"Recipient of the message is not set.");
		return;
	}
	if (sim_fcm_message_types(p, m))
		sim_fcm_meaning_ok(p, m, allow_reserved);
}

void sim_fcm_msg_check(const char *body, size_t len, size_t total, bool allow_reserved,
		       struct sim_fcm_problem *p, struct sim_fcm_msg *msg)
{
	json_error_t jerr;
	json_t *root;

	memset(p, 0, sizeof(*p));
	memset(msg, 0, sizeof(*msg));
	if (len < total) {
		sim_fcm_problem(p, "INVALID_ARGUMENT", false, "", "Android message is too big");
		return;
	}
	root = json_loadb(body ? body : "", len, 0, &jerr);
	if (!root) {
		sim_fcm_problem(p, NULL, true, "", SIM_FCM_BAD_JSON "%s", jerr.text);
		return;
	}
	sim_fcm_read_msg(root, msg);
	sim_fcm_check_root(root, allow_reserved, p);
	json_decref(root);
}
