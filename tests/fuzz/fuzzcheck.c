/* Invariant checks shared by the libFuzzer targets (see fuzzcheck.h). Pure;
 * single-threaded like the targets. */
#include "fuzzcheck.h"

#include <string.h>

static void check_hex_lower(const char *s)
{
	for (; s && *s; s++)
		FUZZ_ASSERT(strchr("0123456789abcdef", *s));
}

static void check_resolved(const pgw_target *t, const pgw_api_key *key)
{
	FUZZ_ASSERT(t->app != NULL);
	FUZZ_ASSERT(!key || config_key_allows_app(key, t->app));
	if (t->provider == PGW_PROVIDER_FCM) {
		FUZZ_ASSERT(t->token && *t->token && !t->remote_token);
		FUZZ_ASSERT(t->environment == PGW_ENV_UNSET);
		return;
	}
	FUZZ_ASSERT(t->provider == PGW_PROVIDER_APNS);
	FUZZ_ASSERT(t->token || t->remote_token);
	check_hex_lower(t->token);
	check_hex_lower(t->remote_token);
}

static void check_copy_and_describe(const pgw_target *t)
{
	const char *shown = t->token ? t->token : t->remote_token;
	pgw_target copy;
	char desc[64];
	const char *colon;

	FUZZ_ASSERT(target_copy(t, &copy) == PGW_OK);
	FUZZ_ASSERT(target_equal(t, &copy) && target_equal(&copy, t));
	target_clear(&copy);
	target_describe(t, desc, sizeof desc);
	colon = strchr(desc, ':');
	/* a description never carries the whole token */
	FUZZ_ASSERT(colon && !strstr(colon + 1, shown));
}

void fuzzcheck_target_result(pgw_err rc, const pgw_target *t, const pgw_field_error *err,
			     const pgw_api_key *key)
{
	if (rc == PGW_OK) {
		check_resolved(t, key);
		check_copy_and_describe(t);
		return;
	}
	FUZZ_ASSERT(rc == PGW_EINVAL || rc == PGW_EAUTH);
	/* field may be "": a JSON device can carry a key named "" (callers
	 * then say "device") */
	FUZZ_ASSERT(err->message[0]);
	FUZZ_ASSERT(!t->app && !t->token && !t->remote_token && !t->call_str && !t->call_snd);
}
