/* Push targets: turn a device as a PBX or app names it (SPEC §3 "Targets":
 * explicit APNs/FCM token, pn-* fields, SIP Contact URI with RFC 8599 or
 * legacy Linphone parameters) into one resolved device. Pure functions,
 * thread-safe; results point into the config snapshot they were made with. */
#ifndef PUSHGW_TARGET_H
#define PUSHGW_TARGET_H

#include <jansson.h>
#include <stdbool.h>

#include "pushgw/config.h"
#include "pushgw/err.h"

typedef enum pgw_provider {
	PGW_PROVIDER_APNS = 1,
	PGW_PROVIDER_FCM = 2,
} pgw_provider;

typedef struct pgw_target {
	pgw_provider provider;
	const pgw_app_conf *app; /* into the config snapshot */
	/* APNs: the VoIP (PushKit) token, lower-case hex, or NULL when the device
	 * has only a remote token. FCM: the registration token (never NULL). */
	char *token;
	/* APNs alert ("remote") token, lower-case hex, or NULL. */
	char *remote_token;
	/* APNs environment the device stated (apns.dev, "environment", app-id
	 * suffix); UNSET means "use the app's". Always UNSET for FCM. */
	pgw_apns_env environment;
	/* Linphone Contact overrides (pn-call-str, pn-call-snd, pn-silent), NULL
	 * or false when absent. */
	char *call_str;
	char *call_snd;
	bool silent;
} pgw_target;

/* Which field was wrong and why; field is relative to the device object
 * ("token", "pn-prid", "contact" …). */
typedef struct pgw_field_error {
	char field[64];
	char message[256];
} pgw_field_error;

/* Parse one device object in any SPEC §3 form and resolve its app among the
 * apps `key` may use (key NULL = any app). `app` defaults to the key's only
 * app (or the config's only app). On PGW_EINVAL fills *err (field + message);
 * on PGW_OK fills *out, which the caller releases with target_clear(). A
 * provider the app has not configured is still a valid target (the send
 * answers failed/config_error). */
pgw_err target_from_json(const json_t *device, const pgw_config *cfg,
			 const pgw_api_key *key, pgw_target *out,
			 pgw_field_error *err);

/* Parse a SIP Contact (name-addr or bare URI, as a registrar stores it;
 * %XX-escaped parameters are unescaped) into a target, as above.
 * err->field names the RFC 8599 / legacy parameter at fault. */
pgw_err target_from_contact(const char *contact, const pgw_config *cfg,
			    const pgw_api_key *key, pgw_target *out,
			    pgw_field_error *err);

/* Frees the strings inside t (not t itself); accepts NULL. */
void target_clear(pgw_target *t);

/* Deep copy; caller releases with target_clear(). */
pgw_err target_copy(const pgw_target *src, pgw_target *dst);

/* True when both name the same provider, app and token(s). */
bool target_equal(const pgw_target *a, const pgw_target *b);

/* "apns:4f7a…c2" / "fcm:dGVz…x9" from the token the wake uses (the VoIP
 * token, else the remote token) into out (at least 32 bytes). */
void target_describe(const pgw_target *t, char *out, size_t n);

#endif
