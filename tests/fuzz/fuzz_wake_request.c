/* libFuzzer target: the /v1/wake and /v1/cancel body parser (wake_parse) for
 * every API key of a fixed two-app config, and the same bytes as one registry
 * device (target_from_json, as PUT /v1/extensions/…/devices/… reads it).
 * Single-threaded; the config is loaded once, before the first input. */
#include <jansson.h>
#include <stdint.h>
#include <string.h>

#include "fuzzcheck.h"
#include "fuzzenv.h"
#include "pushgw/target.h"
#include "pushgw/wake.h"

/* libFuzzer's entry points take no context: the fixed config lives here. */
static fuzzenv *env;
static pgw_config *cfg;

static void cleanup(void)
{
	config_free(cfg);
	fuzzenv_free(env);
}

static void load_fixed_config(void)
{
	char all[72], ios[72], android[72], both[72], json[4096];

	fuzzenv_key_hash("key-all", all);
	fuzzenv_key_hash("key-ios", ios);
	fuzzenv_key_hash("key-android", android);
	fuzzenv_key_hash("key-both", both);
	snprintf(json, sizeof json,
		 "{\"api_keys\": ["
		 " {\"name\": \"all\", \"key\": \"%s\"},"
		 " {\"name\": \"ios\", \"key\": \"%s\", \"apps\": [\"phone\"]},"
		 " {\"name\": \"android\", \"key\": \"%s\", \"apps\": [\"droid\"], \"scopes\": [\"wake\"]},"
		 " {\"name\": \"both\", \"key\": \"%s\", \"apps\": [\"phone\", \"droid\"]}],"
		 " \"apps\": {"
		 "  \"phone\": {\"apns\": {\"team_id\": \"TEAM123456\", \"key_id\": \"KEY1234567\","
		 "   \"key_file\": \"" FUZZENV_P8 "\", \"bundle_id\": \"com.example.phone\","
		 "   \"environment\": \"production\"}, \"ring_repeat_s\": 5},"
		 "  \"droid\": {\"fcm\": {\"service_account_file\": \"" FUZZENV_SERVICE_ACCOUNT "\","
		 "   \"sender_id\": \"123456789012\"}, \"payload\": \"linphone\","
		 "   \"strings\": {\"call\": \"IC_CALL\", \"sound\": \"ring.caf\"}}},"
		 " \"limits\": {\"max_devices_per_wake\": 8}}",
		 all, ios, android, both);
	cfg = fuzzenv_load_config(env, "wake.json", json);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	env = fuzzenv_new();
	load_fixed_config();
	atexit(cleanup);
	return 0;
}

/* The response document renders and reads back as {"id": "w_…", "results": [≥1]}. */
static void check_response(const pgw_wake *w)
{
	size_t len = 0;
	char *text = wake_response_json(w, &len);
	json_t *doc, *results;

	FUZZ_ASSERT(text && len == strlen(text));
	doc = json_loads(text, 0, NULL);
	FUZZ_ASSERT(json_is_object(doc));
	FUZZ_ASSERT(strncmp(json_string_value(json_object_get(doc, "id")), "w_", 2) == 0);
	FUZZ_ASSERT(strcmp(json_string_value(json_object_get(doc, "id")), wake_id(w)) == 0);
	results = json_object_get(doc, "results");
	FUZZ_ASSERT(json_is_array(results) && json_array_size(results) >= 1);
	json_decref(doc);
	free(text);
}

static void parse_wake(const uint8_t *data, size_t size, const pgw_api_key *key,
		       pgw_push_kind kind)
{
	pgw_http_error err;
	pgw_wake *w = NULL;
	pgw_err rc;

	memset(&err, 0, sizeof err);
	rc = wake_parse((const char *)data, size, cfg, key, kind, &w, &err);
	if (rc == PGW_OK) {
		/* no registry: an extension resolves to no device */
		rc = wake_resolve(w, NULL, 0, cfg, key, &err);
		if (rc != PGW_OK) {
			wake_free(w);
			w = NULL;
		}
	}
	if (rc == PGW_OK) {
		FUZZ_ASSERT(w != NULL);
		check_response(w);
		wake_free(w);
		return;
	}
	/* without a registry and with memory to spare, only the client's fault */
	FUZZ_ASSERT(w == NULL);
	FUZZ_ASSERT(err.status == 400 || err.status == 403 || err.status == 404);
	FUZZ_ASSERT(err.code && *err.code && err.message[0]);
	FUZZ_ASSERT((err.status == 404) == (strcmp(err.code, "no_devices") == 0));
}

static void parse_device(const uint8_t *data, size_t size, const pgw_api_key *key)
{
	json_t *doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	pgw_field_error ferr;
	pgw_target t;
	pgw_err rc;

	if (!doc)
		return;
	rc = target_from_json(doc, cfg, key, &t, &ferr);
	fuzzcheck_target_result(rc, &t, &ferr, key);
	target_clear(&t);
	json_decref(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t i;

	for (i = 0; i < cfg->n_keys; i++) {
		parse_wake(data, size, &cfg->keys[i], PGW_PUSH_CALL);
		parse_wake(data, size, &cfg->keys[i], PGW_PUSH_CANCEL);
		parse_device(data, size, &cfg->keys[i]);
	}
	parse_device(data, size, NULL);
	return 0;
}
