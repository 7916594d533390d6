/* Unit tests for target.c: every SPEC §3 device form and the Linphone
 * dialects real phones send, each error naming its field, and a seeded
 * mutation loop that must never crash the Contact parser. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "pushgw/config.h"
#include "pushgw/target.h"

/* 64-hex tokens; VU is V in upper case (must be stored lower-case). */
#define V "4f7a0123456789abcdef0123456789abcdef0123456789abcdef0123456789c2"
#define VU "4F7A0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789C2"
#define R "9c00aaaabbbbccccddddeeeeffff000011112222333344445555666677778801"
#define FCMTOK "dGVzdA:APA91bH-x_y9Zz"

#define SIP "sip:1001@203.0.113.5:5060"
#define APNS_PHONE ";pn-provider=apns;pn-param=TEAM123456.com.example.phone"

enum { KEY_NONE, KEY_ALL, KEY_PHONE, KEY_WORK_DROID, KEY_DROID };

static pgw_app_conf apps[3];
static pgw_config cfg;
static pgw_api_key keys[5];
static char *phone_only[] = { "phone" };
static char *work_droid[] = { "work", "droid" };
static char *droid_only[] = { "droid" };

/* phone: APNs token auth (team TEAM123456) + FCM with a sender id;
 * work: APNs certificate auth (no team) + FCM; droid: FCM only. */
static void setup_config(void)
{
	apps[0] = (pgw_app_conf){
		.name = "phone",
		.apns = { .enabled = true, .team_id = "TEAM123456",
			  .bundle_id = "com.example.phone",
			  .environment = PGW_ENV_PRODUCTION },
		.fcm = { .enabled = true, .project_id = "example-phone",
			 .sender_id = "123456789012" },
	};
	apps[1] = (pgw_app_conf){
		.name = "work",
		.apns = { .enabled = true, .bundle_id = "com.example.work",
			  .environment = PGW_ENV_PRODUCTION },
		.fcm = { .enabled = true, .project_id = "example-work" },
	};
	apps[2] = (pgw_app_conf){
		.name = "droid",
		.fcm = { .enabled = true, .project_id = "droid-proj" },
	};
	cfg.apps = apps;
	cfg.n_apps = 3;
	keys[KEY_ALL] = (pgw_api_key){ .name = "all" };
	keys[KEY_PHONE] = (pgw_api_key){ .name = "phone", .apps = phone_only, .n_apps = 1 };
	keys[KEY_WORK_DROID] = (pgw_api_key){ .name = "wd", .apps = work_droid, .n_apps = 2 };
	keys[KEY_DROID] = (pgw_api_key){ .name = "droid", .apps = droid_only, .n_apps = 1 };
	cfg.keys = keys + 1;
	cfg.n_keys = 4;
}

typedef struct tcase {
	const char *name;
	bool json; /* input is a device object, else a Contact */
	const char *input;
	int key;
	pgw_err rc;
	/* on success */
	pgw_provider provider;
	const char *app;
	const char *token, *remote;
	pgw_apns_env env;
	const char *call_str, *call_snd;
	bool silent;
	/* on failure */
	const char *field;
	const char *msg; /* a part the message must contain, or NULL */
} tcase;

#define OK_APNS(app_, tok_, rem_, env_) \
	.rc = PGW_OK, .provider = PGW_PROVIDER_APNS, .app = app_, .token = tok_, \
	.remote = rem_, .env = env_
#define OK_FCM(app_, tok_) \
	.rc = PGW_OK, .provider = PGW_PROVIDER_FCM, .app = app_, .token = tok_
#define BAD(field_, msg_) .rc = PGW_EINVAL, .field = field_, .msg = msg_

static const tcase cases[] = {
	/* ---- form 1: explicit tokens ---- */
	{ "explicit apns with remote token and sandbox, hex lower-cased", true,
	  "{\"provider\":\"apns\",\"token\":\"" VU "\",\"remote_token\":\"" R
	  "\",\"app\":\"phone\",\"environment\":\"sandbox\"}",
	  KEY_ALL, OK_APNS("phone", V, R, PGW_ENV_SANDBOX) },
	{ "explicit apns alert-only device (remote_token alone)", true,
	  "{\"provider\":\"apns\",\"remote_token\":\"" R "\",\"app\":\"work\"}",
	  KEY_ALL, OK_APNS("work", NULL, R, PGW_ENV_UNSET) },
	{ "explicit fcm, app defaults to the key's only app", true,
	  "{\"provider\":\"fcm\",\"token\":\"" FCMTOK "\"}",
	  KEY_PHONE, OK_FCM("phone", FCMTOK) },
	{ "explicit apns, app defaults to the key's only app", true,
	  "{\"provider\":\"apns\",\"token\":\"" V "\"}",
	  KEY_PHONE, OK_APNS("phone", V, NULL, PGW_ENV_UNSET) },

	/* ---- form 2: Contact with RFC 8599 parameters ---- */
	{ "SPEC contact: apns, .voip, one token", false,
	  SIP APNS_PHONE ".voip;pn-prid=" V,
	  KEY_ALL, OK_APNS("phone", V, NULL, PGW_ENV_PRODUCTION) },
	{ "apns.dev means sandbox", false,
	  SIP ";pn-provider=apns.dev;pn-param=TEAM123456.com.example.phone.voip;pn-prid=" V,
	  KEY_ALL, OK_APNS("phone", V, NULL, PGW_ENV_SANDBOX) },
	{ ".remote puts the token in remote_token", false,
	  SIP APNS_PHONE ".remote;pn-prid=" R,
	  KEY_ALL, OK_APNS("phone", NULL, R, PGW_ENV_PRODUCTION) },
	{ "remote&voip with <A>:remote&<B>:voip", false,
	  SIP APNS_PHONE ".remote&voip;pn-prid=" R ":remote&" V ":voip",
	  KEY_ALL, OK_APNS("phone", V, R, PGW_ENV_PRODUCTION) },
	{ "voip&remote with <B>:voip&<A>:remote (other order)", false,
	  SIP APNS_PHONE ".voip&remote;pn-prid=" V ":voip&" R ":remote",
	  KEY_ALL, OK_APNS("phone", V, R, PGW_ENV_PRODUCTION) },
	{ "voip&remote with the tokens in the other order", false,
	  SIP APNS_PHONE ".voip&remote;pn-prid=" R ":remote&" V ":voip",
	  KEY_ALL, OK_APNS("phone", V, R, PGW_ENV_PRODUCTION) },
	{ "no services suffix means remote", false,
	  SIP APNS_PHONE ";pn-prid=" R,
	  KEY_ALL, OK_APNS("phone", NULL, R, PGW_ENV_PRODUCTION) },
	{ "single token with a matching :voip suffix", false,
	  SIP APNS_PHONE ".voip;pn-prid=" V ":voip",
	  KEY_ALL, OK_APNS("phone", V, NULL, PGW_ENV_PRODUCTION) },
	{ "%26 and %3A escapes are undone before splitting", false,
	  SIP ";pn-provider=apns;pn-param=TEAM123456.com.example.phone.remote%26voip;pn-prid="
	  R "%3Aremote%26" V "%3avoip",
	  KEY_ALL, OK_APNS("phone", V, R, PGW_ENV_PRODUCTION) },
	{ "display name, <>, transport=tls, ?headers and header params", false,
	  "\"Alice \\\"A\\\" <x>\" <sips:1001@example.com;transport=tls" APNS_PHONE
	  ".voip;pn-prid=" V "?X-Pn=1&pn-prid=bogus>;expires=3600;+sip.instance=\"<urn:uuid:1>\"",
	  KEY_ALL, OK_APNS("phone", V, NULL, PGW_ENV_PRODUCTION) },
	{ "unquoted display name and IPv6 host", false,
	  "Bob <sip:[2001:db8::1]:5061;pn-provider=apns;pn-param=TEAM123456.com.example.phone.voip;pn-prid="
	  V ">",
	  KEY_ALL, OK_APNS("phone", V, NULL, PGW_ENV_PRODUCTION) },
	{ "parameter names are case-insensitive", false,
	  SIP ";PN-Provider=APNS;Pn-Param=TEAM123456.com.example.phone.VOIP;PN-PRID=" V,
	  KEY_ALL, OK_APNS("phone", V, NULL, PGW_ENV_PRODUCTION) },
	{ "certificate-auth app (no team id) matches any team", false,
	  SIP ";pn-provider=apns;pn-param=ZZZZZ99999.com.example.work.voip;pn-prid=" V,
	  KEY_ALL, OK_APNS("work", V, NULL, PGW_ENV_PRODUCTION) },
	{ "FCM token with ':' is kept whole", false,
	  SIP ";pn-provider=fcm;pn-param=example-work;pn-prid=" FCMTOK,
	  KEY_ALL, OK_FCM("work", FCMTOK) },
	{ "pn-provider android is fcm", false,
	  SIP ";pn-provider=android;pn-param=droid-proj;pn-prid=" FCMTOK,
	  KEY_ALL, OK_FCM("droid", FCMTOK) },
	{ "pn-provider firebase is fcm", false,
	  SIP ";pn-provider=firebase;pn-param=droid-proj;pn-prid=" FCMTOK,
	  KEY_ALL, OK_FCM("droid", FCMTOK) },
	{ "pn-provider google is fcm", false,
	  SIP ";pn-provider=google;pn-param=example-phone;pn-prid=" FCMTOK,
	  KEY_ALL, OK_FCM("phone", FCMTOK) },
	{ "FCM pn-param matches a sender id", false,
	  SIP ";pn-provider=fcm;pn-param=123456789012;pn-prid=" FCMTOK,
	  KEY_ALL, OK_FCM("phone", FCMTOK) },
	{ "unknown FCM project falls back to the key's single FCM app", false,
	  SIP ";pn-provider=fcm;pn-param=some-other-project;pn-prid=" FCMTOK,
	  KEY_DROID, OK_FCM("droid", FCMTOK) },
	{ "pn-call-str, pn-call-snd and a bare pn-silent", false,
	  SIP APNS_PHONE ".voip;pn-prid=" V ";pn-call-str=IC_CALL;pn-call-snd=ring%2Ecaf;pn-silent",
	  KEY_ALL, OK_APNS("phone", V, NULL, PGW_ENV_PRODUCTION),
	  .call_str = "IC_CALL", .call_snd = "ring.caf", .silent = true },

	/* ---- legacy Linphone parameters ---- */
	{ "legacy apple, app-id .voip.dev", false,
	  SIP ";pn-type=apple;app-id=com.example.phone.voip.dev;pn-tok=" V,
	  KEY_ALL, OK_APNS("phone", V, NULL, PGW_ENV_SANDBOX) },
	{ "legacy apple, app-id .prod is a remote token in production", false,
	  SIP ";pn-type=apple;app-id=com.example.phone.prod;pn-tok=" R,
	  KEY_ALL, OK_APNS("phone", NULL, R, PGW_ENV_PRODUCTION) },
	{ "legacy apple, two suffixed tokens in pn-tok", false,
	  SIP ";pn-type=apple;app-id=com.example.phone.prod;pn-tok=" V ":voip&" R ":remote",
	  KEY_ALL, OK_APNS("phone", V, R, PGW_ENV_PRODUCTION) },
	{ "legacy android, app-id is the Firebase project", false,
	  SIP ";pn-type=android;app-id=example-work;pn-tok=" FCMTOK,
	  KEY_ALL, OK_FCM("work", FCMTOK) },
	{ "legacy firebase, app-id is the sender id", false,
	  SIP ";pn-type=firebase;app-id=123456789012;pn-tok=" FCMTOK,
	  KEY_ALL, OK_FCM("phone", FCMTOK) },

	/* ---- form 3: pn-* as JSON fields ---- */
	{ "JSON pn-* fields for FCM", true,
	  "{\"pn-provider\":\"fcm\",\"pn-param\":\"droid-proj\",\"pn-prid\":\"" FCMTOK "\"}",
	  KEY_ALL, OK_FCM("droid", FCMTOK) },
	{ "JSON pn-* fields with app, pn-call-str and pn-silent true", true,
	  "{\"pn-provider\":\"apns\",\"pn-param\":\"TEAM123456.com.example.phone.voip\","
	  "\"pn-prid\":\"" V "\",\"app\":\"phone\",\"pn-call-str\":\"IC_X\",\"pn-silent\":true}",
	  KEY_ALL, OK_APNS("phone", V, NULL, PGW_ENV_PRODUCTION), .call_str = "IC_X",
	  .silent = true },
	{ "JSON legacy pn-type/app-id/pn-tok", true,
	  "{\"pn-type\":\"apple\",\"app-id\":\"com.example.phone.voip.prod\",\"pn-tok\":\"" V "\"}",
	  KEY_ALL, OK_APNS("phone", V, NULL, PGW_ENV_PRODUCTION) },
	{ "JSON contact form with app", true,
	  "{\"contact\":\"<" SIP APNS_PHONE ".voip;pn-prid=" V ">\",\"app\":\"phone\"}",
	  KEY_PHONE, OK_APNS("phone", V, NULL, PGW_ENV_PRODUCTION) },

	/* ---- errors, each naming its field ---- */
	{ "unknown pn-provider", false,
	  SIP ";pn-provider=huawei;pn-param=x;pn-prid=y", KEY_ALL,
	  BAD("pn-provider", "huawei") },
	{ "no app with that bundle id", false,
	  SIP ";pn-provider=apns;pn-param=TEAM123456.com.other.app.voip;pn-prid=" V,
	  KEY_ALL, BAD("pn-param", "com.other.app") },
	{ "team id differs from the app's", false,
	  SIP ";pn-provider=apns;pn-param=OTHER12345.com.example.phone.voip;pn-prid=" V,
	  KEY_ALL, BAD("pn-param", "team") },
	{ "one token for two services", false,
	  SIP APNS_PHONE ".voip&remote;pn-prid=" V, KEY_ALL,
	  BAD("pn-prid", "pn-prid has 1 token but pn-param names 2 services (voip&remote)") },
	{ "two tokens for one service", false,
	  SIP APNS_PHONE ".voip;pn-prid=" V ":voip&" R ":remote", KEY_ALL,
	  BAD("pn-prid", "2 tokens") },
	{ "unknown token suffix", false,
	  SIP APNS_PHONE ".voip;pn-prid=" V ":pushkit", KEY_ALL,
	  BAD("pn-prid", ":pushkit") },
	{ "suffix that contradicts the single service", false,
	  SIP APNS_PHONE ".voip;pn-prid=" V ":remote", KEY_ALL,
	  BAD("pn-prid", "voip") },
	{ "two :voip tokens", false,
	  SIP APNS_PHONE ".voip&remote;pn-prid=" V ":voip&" R ":voip", KEY_ALL,
	  BAD("pn-prid", "two :voip") },
	{ "two tokens without suffixes", false,
	  SIP APNS_PHONE ".voip&remote;pn-prid=" V "&" R, KEY_ALL,
	  BAD("pn-prid", "suffix") },
	{ "non-hex APNs token in a contact", false,
	  SIP APNS_PHONE ".voip;pn-prid=zz7a0123456789abcdef", KEY_ALL,
	  BAD("pn-prid", "hex") },
	{ "odd-length APNs token", true,
	  "{\"provider\":\"apns\",\"token\":\"abc\",\"app\":\"phone\"}", KEY_ALL,
	  BAD("token", "even") },
	{ "non-hex explicit remote_token", true,
	  "{\"provider\":\"apns\",\"remote_token\":\"not-hex-at-all!!\",\"app\":\"phone\"}",
	  KEY_ALL, BAD("remote_token", "hex") },
	{ "bad %-escape", false,
	  SIP APNS_PHONE ".voip;pn-prid=" V "%zz", KEY_ALL,
	  BAD("pn-prid", "escape") },
	{ "truncated %-escape at the end", false,
	  SIP APNS_PHONE ".voip;pn-prid=" V "%4", KEY_ALL,
	  BAD("pn-prid", "escape") },
	{ "escaped NUL", false,
	  SIP APNS_PHONE ".voip;pn-prid=" V "%00", KEY_ALL,
	  BAD("pn-prid", "escape") },
	{ "duplicate parameter", false,
	  SIP APNS_PHONE ".voip;pn-prid=" V ";pn-prid=" R, KEY_ALL,
	  BAD("pn-prid", "more than once") },
	{ "key not allowed for the named app", true,
	  "{\"provider\":\"apns\",\"token\":\"" V "\",\"app\":\"work\"}", KEY_PHONE,
	  .rc = PGW_EAUTH, .field = "app", .msg = "not allowed for this key" },
	{ "key not allowed for the app the bundle names", false,
	  SIP ";pn-provider=apns;pn-param=TEAM123456.com.example.work.voip;pn-prid=" V,
	  KEY_PHONE, .rc = PGW_EAUTH, .field = "pn-param", .msg = "not allowed" },
	{ "key not allowed for the FCM project's app (no fallback)", false,
	  SIP ";pn-provider=fcm;pn-param=example-work;pn-prid=" FCMTOK,
	  KEY_PHONE, .rc = PGW_EAUTH, .field = "pn-param", .msg = "not allowed" },
	{ "unknown app", true,
	  "{\"provider\":\"fcm\",\"token\":\"" FCMTOK "\",\"app\":\"nope\"}", KEY_ALL,
	  BAD("app", "unknown app") },
	{ "app required when the key may use several", true,
	  "{\"provider\":\"fcm\",\"token\":\"" FCMTOK "\"}", KEY_WORK_DROID,
	  BAD("app", "several apps") },
	{ "FCM project matching nothing with several FCM apps", false,
	  SIP ";pn-provider=fcm;pn-param=nobody;pn-prid=" FCMTOK, KEY_ALL,
	  BAD("pn-param", "nobody") },
	{ "unknown legacy pn-type", false,
	  SIP ";pn-type=blackberry;app-id=x;pn-tok=y", KEY_ALL,
	  BAD("pn-type", "blackberry") },
	{ "not a SIP URI", false, "tel:+15551234567;pn-provider=apns", KEY_ALL,
	  BAD("contact", "sip:") },
	{ "unclosed angle bracket", false, "<" SIP APNS_PHONE, KEY_ALL,
	  BAD("contact", ">") },
	{ "contact without push parameters", false, SIP ";transport=tls", KEY_ALL,
	  BAD("contact", "pn-provider") },
	{ "pn-param without pn-provider", false, SIP ";pn-param=x;pn-prid=y", KEY_ALL,
	  BAD("pn-provider", "required") },
	{ "pn-* parameters in ?headers are not parameters", false,
	  SIP "?pn-provider=apns", KEY_ALL, BAD("contact", "pn-provider") },
	{ "unknown JSON field", true,
	  "{\"provider\":\"fcm\",\"token\":\"" FCMTOK "\",\"app\":\"droid\",\"tokn\":\"x\"}",
	  KEY_ALL, BAD("tokn", "unexpected") },
	{ "environment on an FCM device", true,
	  "{\"provider\":\"fcm\",\"token\":\"" FCMTOK "\",\"app\":\"droid\",\"environment\":\"sandbox\"}",
	  KEY_ALL, BAD("environment", "apns") },
	{ "bad environment", true,
	  "{\"provider\":\"apns\",\"token\":\"" V "\",\"app\":\"phone\",\"environment\":\"dev\"}",
	  KEY_ALL, BAD("environment", "sandbox") },
	{ "FCM token with a space", true,
	  "{\"provider\":\"fcm\",\"token\":\"a b\",\"app\":\"droid\"}", KEY_ALL,
	  BAD("token", "printable") },
	{ "unknown explicit provider", true,
	  "{\"provider\":\"hms\",\"token\":\"x\"}", KEY_ALL, BAD("provider", "apns") },
	{ "token is not a string", true,
	  "{\"provider\":\"apns\",\"token\":42,\"app\":\"phone\"}", KEY_ALL,
	  BAD("token", "string") },
	{ "empty device object", true, "{}", KEY_ALL, BAD("provider", "contact") },
	{ "bundle id not the named app's", true,
	  "{\"pn-provider\":\"apns\",\"pn-param\":\"TEAM123456.com.example.work.voip\","
	  "\"pn-prid\":\"" V "\",\"app\":\"phone\"}",
	  KEY_ALL, BAD("pn-param", "bundle id") },
	{ "legacy app-id .voip with a :remote token", false,
	  SIP ";pn-type=apple;app-id=com.example.phone.voip;pn-tok=" V ":remote", KEY_ALL,
	  BAD("pn-tok", "app-id") },
};

static const pgw_api_key *key_of(int k)
{
	return k == KEY_NONE ? NULL : &keys[k];
}

static void run_case(const tcase *c)
{
	pgw_field_error err;
	pgw_target t;
	pgw_err rc;

	TEST(c->name);
	if (c->json) {
		json_error_t jerr;
		json_t *dev = json_loads(c->input, 0, &jerr);
		CHECK(dev != NULL);
		if (!dev) {
			fprintf(stderr, "   bad test JSON: %s\n", jerr.text);
			return;
		}
		rc = target_from_json(dev, &cfg, key_of(c->key), &t, &err);
		json_decref(dev);
	} else {
		rc = target_from_contact(c->input, &cfg, key_of(c->key), &t, &err);
	}
	CHECK(rc == c->rc);
	if (rc != c->rc)
		fprintf(stderr, "   got %d: %s: %s\n", rc, err.field, err.message);
	if (c->rc != PGW_OK) {
		CHECK_STR(err.field, c->field);
		if (c->msg && !strstr(err.message, c->msg)) {
			CHECK(!"message names what was expected");
			fprintf(stderr, "   message: %s (want \"%s\")\n", err.message, c->msg);
		}
		CHECK(t.token == NULL && t.remote_token == NULL && t.app == NULL);
		return;
	}
	if (rc != PGW_OK)
		return;
	CHECK(t.provider == c->provider);
	CHECK(t.app != NULL);
	if (t.app)
		CHECK_STR(t.app->name, c->app);
	if (c->token)
		CHECK_STR(t.token, c->token);
	else
		CHECK(t.token == NULL);
	if (c->remote)
		CHECK_STR(t.remote_token, c->remote);
	else
		CHECK(t.remote_token == NULL);
	CHECK(t.environment == c->env);
	if (c->call_str)
		CHECK_STR(t.call_str, c->call_str);
	else
		CHECK(t.call_str == NULL);
	if (c->call_snd)
		CHECK_STR(t.call_snd, c->call_snd);
	else
		CHECK(t.call_snd == NULL);
	CHECK(t.silent == c->silent);
	target_clear(&t);
}

static void test_describe_copy_equal(void)
{
	pgw_target a, b, c;
	pgw_field_error err;
	char desc[32];
	json_t *dev;

	TEST("describe redacts the VoIP token, else the remote token");
	CHECK(target_from_contact(SIP APNS_PHONE ".remote&voip;pn-prid=" R ":remote&" V ":voip",
				  &cfg, NULL, &a, &err) == PGW_OK);
	target_describe(&a, desc, sizeof desc);
	CHECK_STR(desc, "apns:4f7a…89c2");
	CHECK(strstr(desc, V) == NULL);
	free(a.token);
	a.token = NULL;
	target_describe(&a, desc, sizeof desc);
	CHECK_STR(desc, "apns:9c00…8801");

	TEST("copy is deep and equal; a different token is not equal");
	CHECK(target_copy(&a, &b) == PGW_OK);
	CHECK(b.remote_token != a.remote_token);
	CHECK(target_equal(&a, &b));
	dev = json_pack("{s:s, s:s, s:s}", "provider", "fcm", "token", FCMTOK,
			"app", "phone");
	CHECK(target_from_json(dev, &cfg, NULL, &c, &err) == PGW_OK);
	json_decref(dev);
	target_describe(&c, desc, sizeof desc);
	CHECK_STR(desc, "fcm:dGVz…y9Zz");
	CHECK(!target_equal(&a, &c));
	target_clear(&a);
	target_clear(&b);
	target_clear(&c);
	target_clear(NULL);
}

/* Arbitrary bytes must never crash or leak: mutate real contacts with a
 * fixed seed (ASan/UBSan builds turn any overrun into a failure). */
static void test_contact_mutations(void)
{
	static const char *const seeds[] = {
		SIP APNS_PHONE ".remote&voip;pn-prid=" R ":remote&" V ":voip",
		"\"A\" <sips:[::1]:5061;pn-type=apple;app-id=com.example.phone.voip.dev;pn-tok=" V "?h=1>",
		SIP ";pn-provider=fcm;pn-param=example-work;pn-prid=" FCMTOK "%3A%26",
	};
	static const char alphabet[] = "<>\";:&%?@[]=.\\ aF0";
	char buf[512];
	unsigned seed = 12345;
	int i, ok = 0, handled = 0;

	TEST("mutated contacts never crash the parser");
	for (i = 0; i < 30000; i++) {
		const char *s = seeds[i % 3];
		size_t n = strlen(s), pos, j, edits;
		pgw_field_error err;
		pgw_target t;
		pgw_err rc;

		memcpy(buf, s, n + 1);
		seed = seed * 1103515245u + 12345u;
		edits = 1 + (seed >> 16) % 4;
		for (j = 0; j < edits && n > 0; j++) {
			seed = seed * 1103515245u + 12345u;
			pos = (seed >> 8) % n;
			seed = seed * 1103515245u + 12345u;
			if ((seed >> 16) % 5 == 0) {
				buf[pos] = '\0'; /* truncate */
				n = pos;
			} else {
				buf[pos] = (seed >> 20) % 3 ? alphabet[(seed >> 8) % (sizeof alphabet - 1)]
							    : (char)((seed >> 8) & 0xff);
				if (buf[pos] == '\0')
					n = pos;
			}
		}
		rc = target_from_contact(buf, &cfg, &keys[i % 2 ? KEY_ALL : KEY_PHONE], &t, &err);
		if (rc == PGW_OK)
			ok++;
		if (rc == PGW_OK || ((rc == PGW_EINVAL || rc == PGW_EAUTH) && err.field[0]))
			handled++;
		target_clear(&t);
	}
	CHECK(handled == 30000);
	CHECK(ok > 0 && ok < 30000);
}

int main(void)
{
	size_t i;

	setup_config();
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++)
		run_case(&cases[i]);
	test_describe_copy_equal();
	test_contact_mutations();
	return check_summary("target");
}
