/* libFuzzer target: SIP Contact parsing. The raw bytes go through the sipuri
 * tokenizer (exact length, so any read past the input is caught), and a
 * NUL-terminated copy through target_from_contact() for every key of a fixed
 * config with token-auth, certificate-auth and FCM-only apps.
 * Single-threaded; the config is loaded once, before the first input. */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "fuzzcheck.h"
#include "fuzzenv.h"
#include "pushgw/sipuri.h"
#include "pushgw/target.h"

/* libFuzzer's entry points take no context: the fixed config lives here. */
static fuzzenv *env;
static pgw_config *cfg;

static const char *const param_names[] = {
	"pn-provider", "pn-param", "pn-prid", "pn-type", "app-id", "pn-tok",
	"pn-call-str", "pn-call-snd", "pn-silent", "transport", "",
};

static void cleanup(void)
{
	config_free(cfg);
	fuzzenv_free(env);
}

static void load_fixed_config(void)
{
	char all[72], phone[72], work_droid[72], droid[72], json[4096];

	fuzzenv_key_hash("key-all", all);
	fuzzenv_key_hash("key-phone", phone);
	fuzzenv_key_hash("key-work-droid", work_droid);
	fuzzenv_key_hash("key-droid", droid);
	snprintf(json, sizeof json,
		 "{\"api_keys\": ["
		 " {\"name\": \"all\", \"key\": \"%s\"},"
		 " {\"name\": \"phone\", \"key\": \"%s\", \"apps\": [\"phone\"]},"
		 " {\"name\": \"work-droid\", \"key\": \"%s\", \"apps\": [\"work\", \"droid\"]},"
		 " {\"name\": \"droid\", \"key\": \"%s\", \"apps\": [\"droid\"]}],"
		 " \"apps\": {"
		 "  \"phone\": {\"apns\": {\"team_id\": \"TEAM123456\", \"key_id\": \"KEY1234567\","
		 "    \"key_file\": \"" FUZZENV_P8 "\", \"bundle_id\": \"com.example.phone\"},"
		 "   \"fcm\": {\"service_account_file\": \"" FUZZENV_SERVICE_ACCOUNT "\","
		 "    \"sender_id\": \"123456789012\"}},"
		 "  \"work\": {\"apns\": {\"cert_file\": \"" FUZZENV_CERT "\","
		 "    \"cert_key_file\": \"" FUZZENV_CERT_KEY "\", \"bundle_id\": \"com.example.work\","
		 "    \"environment\": \"sandbox\"}},"
		 "  \"droid\": {\"fcm\": {\"service_account_file\": \"" FUZZENV_SERVICE_ACCOUNT "\","
		 "    \"sender_id\": \"987654321098\"}}}}",
		 all, phone, work_droid, droid);
	cfg = fuzzenv_load_config(env, "contact.json", json);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	env = fuzzenv_new();
	load_fixed_config();
	atexit(cleanup);
	return 0;
}

static bool within(const char *p, size_t n, const char *base, size_t size)
{
	return p >= base && p <= base + size && n <= (size_t)(base + size - p);
}

/* Unescaping never grows a value, and a value without '%' comes back as is. */
static void check_unescape(const char *s, size_t n)
{
	char *out = NULL;
	pgw_err rc = sipuri_unescape(s, n, &out);

	if (rc != PGW_OK) {
		FUZZ_ASSERT(rc == PGW_EINVAL && out == NULL);
		FUZZ_ASSERT(memchr(s, '%', n) || memchr(s, '\0', n));
		return;
	}
	FUZZ_ASSERT(out && strlen(out) <= n);
	if (!memchr(s, '%', n))
		FUZZ_ASSERT(strlen(out) == n && memcmp(out, s, n) == 0);
	free(out);
}

/* sipuri_name_is() agrees with a plain case-insensitive compare. */
static void check_names(const sipuri_param *p)
{
	size_t i;

	for (i = 0; i < sizeof param_names / sizeof param_names[0]; i++) {
		const char *w = param_names[i];
		bool same = strlen(w) == p->name_len && strncasecmp(p->name, w, p->name_len) == 0 &&
			    !memchr(p->name, '\0', p->name_len);
		FUZZ_ASSERT(sipuri_name_is(p->name, p->name_len, w) == same);
	}
}

static void walk_params(const sipuri_view *v, const char *base, size_t size)
{
	const char *cur = v->params, *end = v->params + v->params_len, *before;
	sipuri_param p;

	for (;;) {
		before = cur;
		if (!sipuri_next_param(&cur, end, &p)) {
			FUZZ_ASSERT(cur == end);
			return;
		}
		FUZZ_ASSERT(cur > before && cur <= end);
		FUZZ_ASSERT(p.name >= before && within(p.name, p.name_len, base, size));
		FUZZ_ASSERT(p.name + p.name_len <= cur);
		if (p.value) {
			FUZZ_ASSERT(p.value == p.name + p.name_len + 1);
			FUZZ_ASSERT(p.value + p.value_len <= cur);
			check_unescape(p.value, p.value_len);
		}
		check_unescape(p.name, p.name_len);
		check_names(&p);
	}
}

static void fuzz_sipuri(const char *data, size_t size)
{
	const char *why = NULL;
	sipuri_view v;

	check_unescape(data, size);
	if (sipuri_split(data, size, &v, &why) != PGW_OK) {
		FUZZ_ASSERT(why && *why);
		return;
	}
	FUZZ_ASSERT(v.host_len > 0 && within(v.host, v.host_len, data, size));
	FUZZ_ASSERT(within(v.params, v.params_len, data, size));
	FUZZ_ASSERT(v.params >= v.host + v.host_len);
	walk_params(&v, data, size);
}

static void fuzz_target(const char *contact, const pgw_api_key *key)
{
	pgw_field_error ferr;
	pgw_target t;
	pgw_err rc;

	rc = target_from_contact(contact, cfg, key, &t, &ferr);
	fuzzcheck_target_result(rc, &t, &ferr, key);
	target_clear(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *contact = malloc(size + 1);
	size_t i;

	if (!contact)
		return 0;
	fuzz_sipuri((const char *)data, size);
	memcpy(contact, data, size);
	contact[size] = '\0';
	fuzz_target(contact, NULL);
	for (i = 0; i < cfg->n_keys; i++)
		fuzz_target(contact, &cfg->keys[i]);
	free(contact);
	return 0;
}
