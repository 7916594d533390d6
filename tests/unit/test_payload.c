/* Payload profiles (SPEC §4): for each profile and each push kind — APNs
 * VoIP, APNs alert, FCM; call and cancel — the body is exactly the golden
 * file in tests/golden/ (same fields, same types). Set PUSHGW_GOLDEN_WRITE=1
 * to rewrite the files after a deliberate change, then review the diff. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "pushgw/payload.h"

static pgw_app_conf make_app(pgw_payload_profile profile)
{
	pgw_app_conf app;

	memset(&app, 0, sizeof app);
	app.name = "phone";
	app.payload = profile;
	app.strings.call = "IC_MSG";
	app.strings.missed = "IC_MISSED";
	app.strings.answered_elsewhere = "IC_ANSWERED_ELSEWHERE";
	app.strings.declined_elsewhere = "IC_DECLINED_ELSEWHERE";
	app.strings.sound = "ring.caf";
	return app;
}

static void golden(const char *name, const char *body)
{
	char path[256];
	json_t *want, *got = json_loads(body, 0, NULL);
	json_error_t jerr;

	snprintf(path, sizeof path, "tests/golden/%s.json", name);
	if (getenv("PUSHGW_GOLDEN_WRITE")) {
		FILE *f = fopen(path, "w");
		json_dumpf(got, f, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		fputc('\n', f);
		fclose(f);
	}
	want = json_load_file(path, 0, &jerr);
	if (!want)
		fprintf(stderr, "%s: %s\n", path, jerr.text);
	CHECK(got != NULL);
	CHECK(want != NULL);
	if (want && got && !json_equal(want, got)) {
		fprintf(stderr, "FAIL %s differs:\n%s\n", name, body);
		CHECK(!"body equals its golden file");
	} else {
		CHECK(1);
	}
	json_decref(want);
	json_decref(got);
}

static void run_profile(pgw_payload_profile profile, const char *pname)
{
	pgw_app_conf app = make_app(profile);
	json_t *data = json_pack("{s:s}", "room", "blue");
	pgw_call call = {"a84b4c76e66710@pbx", "+15551234567", "Alice", "1001", false, data, NULL};
	pgw_payload_ctx ctx = {&call, "w_01JD7Z3Q9K4V2M8X6N5B1C0A9T", 1795531179, 30};
	pgw_target t = {PGW_PROVIDER_APNS, &app, "aa11", "bb22", PGW_ENV_UNSET, NULL, NULL, false};
	pgw_target f = {PGW_PROVIDER_FCM, &app, "dGVzdDpmY20tdG9rZW4", NULL, PGW_ENV_UNSET, NULL, NULL, false};
	char name[64], *b;
	int kind;

	for (kind = 0; kind < 2; kind++) {
		pgw_push_kind k = kind ? PGW_PUSH_CANCEL : PGW_PUSH_CALL;
		const char *kn = kind ? "cancel" : "call";

		call.reason = kind ? "caller_cancelled" : NULL;
		snprintf(name, sizeof name, "%s_apns_voip_%s", pname, kn);
		golden(name, b = payload_apns(&ctx, &t, k, false, NULL));
		free(b);
		snprintf(name, sizeof name, "%s_apns_alert_%s", pname, kn);
		golden(name, b = payload_apns(&ctx, &t, k, true, NULL));
		free(b);
		snprintf(name, sizeof name, "%s_fcm_%s", pname, kn);
		golden(name, b = payload_fcm(&ctx, &f, k, NULL));
		free(b);
	}
	/* a cancel that shows nothing goes at normal priority */
	call.reason = "answered_elsewhere";
	snprintf(name, sizeof name, "%s_fcm_cancel_answered_elsewhere", pname);
	golden(name, b = payload_fcm(&ctx, &f, PGW_PUSH_CANCEL, NULL));
	free(b);
	/* no display name: the names fall back to the caller's URI */
	call.reason = NULL;
	call.from_name = NULL;
	snprintf(name, sizeof name, "%s_fcm_call_no_display_name", pname);
	golden(name, b = payload_fcm(&ctx, &f, PGW_PUSH_CALL, NULL));
	free(b);
	json_decref(data);
}

static void test_profiles(void)
{
	TEST("pushgw profile: every push kind matches its golden file");
	run_profile(PGW_PAYLOAD_PUSHGW, "pushgw");
	TEST("linphone profile: every push kind matches its golden file");
	run_profile(PGW_PAYLOAD_LINPHONE, "linphone");
}

static void test_fcm_values_are_strings(void)
{
	pgw_app_conf app = make_app(PGW_PAYLOAD_LINPHONE);
	json_t *data = json_pack("{s:s,s:s}", "room", "blue", "x", "y");
	pgw_call call = {"c1", "+1555", NULL, "1001", true, data, NULL};
	pgw_payload_ctx ctx = {&call, "w_X", 1795531179, 45};
	pgw_target f = {PGW_PROVIDER_FCM, &app, "tok:en", NULL, PGW_ENV_UNSET, NULL, NULL, false};
	int profile;

	TEST("FCM data values are all strings, in both profiles, for calls and cancels");
	for (profile = 0; profile < 4; profile++) {
		char *b;
		json_t *root, *d, *v;
		const char *k;
		app.payload = (pgw_payload_profile)(profile % 2);
		call.reason = profile < 2 ? NULL : "declined";
		b = payload_fcm(&ctx, &f, profile < 2 ? PGW_PUSH_CALL : PGW_PUSH_CANCEL, NULL);
		root = json_loads(b, 0, NULL);
		d = json_object_get(json_object_get(root, "message"), "data");
		if (!d)
			d = json_object_get(json_object_get(json_object_get(root, "message"), "android"), "data");
		CHECK(json_is_object(d));
		json_object_foreach(d, k, v)
			CHECK(json_is_string(v));
		json_decref(root);
		free(b);
	}
	json_decref(data);
}

static void test_device_overrides(void)
{
	pgw_app_conf app = make_app(PGW_PAYLOAD_LINPHONE);
	pgw_call call = {"c1", "+1555", "Bob", "1001", false, NULL, NULL};
	pgw_payload_ctx ctx = {&call, "w_X", 1795531179, 30};
	pgw_target plain = {PGW_PROVIDER_APNS, &app, NULL, "bb22", PGW_ENV_UNSET, NULL, NULL, false};
	pgw_target custom = {PGW_PROVIDER_APNS, &app, NULL, "bb22", PGW_ENV_UNSET, "IC_SIP_CALL", "bell.caf", false};
	pgw_target silent = {PGW_PROVIDER_APNS, &app, NULL, "bb22", PGW_ENV_UNSET, NULL, NULL, true};
	char *a = payload_apns(&ctx, &plain, PGW_PUSH_CALL, true, NULL);
	char *b = payload_apns(&ctx, &custom, PGW_PUSH_CALL, true, NULL);
	char *c = payload_apns(&ctx, &silent, PGW_PUSH_CALL, true, NULL);
	json_t *ja = json_loads(a, 0, NULL), *jb = json_loads(b, 0, NULL), *jc = json_loads(c, 0, NULL);

	TEST("pn-call-str / pn-call-snd / pn-silent change that device's alert only");
	CHECK_STR(json_string_value(json_object_get(json_object_get(json_object_get(ja, "aps"), "alert"), "loc-key")), "IC_MSG");
	CHECK_STR(json_string_value(json_object_get(json_object_get(ja, "aps"), "sound")), "ring.caf");
	CHECK_STR(json_string_value(json_object_get(json_object_get(json_object_get(jb, "aps"), "alert"), "loc-key")), "IC_SIP_CALL");
	CHECK_STR(json_string_value(json_object_get(json_object_get(jb, "aps"), "sound")), "bell.caf");
	CHECK_STR(json_string_value(json_object_get(json_object_get(jc, "aps"), "sound")), "");
	TEST("a cancel's final alert says why");
	call.reason = "answered_elsewhere";
	free(a);
	json_decref(ja);
	a = payload_apns(&ctx, &custom, PGW_PUSH_CANCEL, true, NULL);
	ja = json_loads(a, 0, NULL);
	CHECK_STR(json_string_value(json_object_get(json_object_get(json_object_get(ja, "aps"), "alert"), "loc-key")), "IC_ANSWERED_ELSEWHERE");
	json_decref(ja);
	json_decref(jb);
	json_decref(jc);
	free(a);
	free(b);
	free(c);
}

/* The string at path (keys, NULL-terminated) of body, or NULL. */
static const char *str_at(json_t *root, ...)
{
	va_list ap;
	const char *key;
	json_t *v = root;

	va_start(ap, root);
	while ((key = va_arg(ap, const char *)) && v)
		v = json_object_get(v, key);
	va_end(ap);
	return json_string_value(v);
}

static void test_cancel_reasons(void)
{
	static const struct {
		const char *reason, *loc_key;
	} cases[] = {
		{"caller_cancelled", "IC_MISSED"},
		{"answered_elsewhere", "IC_ANSWERED_ELSEWHERE"},
		{"declined", "IC_DECLINED_ELSEWHERE"},
	};
	pgw_app_conf app = make_app(PGW_PAYLOAD_PUSHGW);
	pgw_call call = {"c1", "+1555", "Bob", "1001", false, NULL, NULL};
	pgw_payload_ctx ctx = {&call, "w_X", 1795531179, 30};
	pgw_target t = {PGW_PROVIDER_APNS, &app, "aa11", "bb22", PGW_ENV_UNSET, NULL, NULL, false};
	pgw_target f = {PGW_PROVIDER_FCM, &app, "tok", NULL, PGW_ENV_UNSET, NULL, NULL, false};
	size_t i;
	int profile;

	TEST("every cancel says type=cancel and its reason; the final alert's string follows the reason (both profiles)");
	for (profile = 0; profile < 2; profile++) {
		app.payload = (pgw_payload_profile)profile;
		for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
			char *a, *v, *m;
			json_t *ja, *jv, *jm, *fd;

			call.reason = cases[i].reason;
			a = payload_apns(&ctx, &t, PGW_PUSH_CANCEL, true, NULL);
			v = payload_apns(&ctx, &t, PGW_PUSH_CANCEL, false, NULL);
			m = payload_fcm(&ctx, &f, PGW_PUSH_CANCEL, NULL);
			ja = json_loads(a, 0, NULL);
			jv = json_loads(v, 0, NULL);
			jm = json_loads(m, 0, NULL);
			fd = json_object_get(json_object_get(jm, "message"), "data");
			if (!fd)
				fd = json_object_get(json_object_get(json_object_get(jm, "message"), "android"), "data");
			CHECK_STR(str_at(ja, "aps", "alert", "loc-key", NULL), cases[i].loc_key);
			CHECK_STR(str_at(ja, "type", NULL), "cancel");
			CHECK_STR(str_at(ja, "reason", NULL), cases[i].reason);
			CHECK_STR(str_at(jv, "type", NULL), "cancel");
			CHECK_STR(str_at(jv, "reason", NULL), cases[i].reason);
			CHECK_STR(str_at(fd, "type", NULL), "cancel");
			CHECK_STR(str_at(fd, "reason", NULL), cases[i].reason);
			if (profile == PGW_PAYLOAD_LINPHONE)
				CHECK_STR(str_at(fd, "loc-key", NULL), cases[i].loc_key);
			json_decref(ja);
			json_decref(jv);
			json_decref(jm);
			free(a);
			free(v);
			free(m);
		}
	}
}

static void test_linphone_voip_cancel_is_no_call(void)
{
	pgw_app_conf app = make_app(PGW_PAYLOAD_LINPHONE);
	pgw_call call = {"c1", "+1555", "Bob", "1001", false, NULL, NULL};
	pgw_payload_ctx ctx = {&call, "w_X", 1795531179, 30};
	pgw_target t = {PGW_PROVIDER_APNS, &app, "aa11", NULL, PGW_ENV_UNSET, NULL, NULL, false};
	char *c = payload_apns(&ctx, &t, PGW_PUSH_CALL, false, NULL), *x;
	json_t *jc = json_loads(c, 0, NULL), *jx;

	TEST("linphone: a call has no type; a VoIP cancel has no incoming-call fields but keeps call-id and uuid");
	CHECK(json_object_get(jc, "type") == NULL);
	CHECK(json_object_get(jc, "reason") == NULL);
	CHECK_STR(str_at(jc, "aps", "loc-key", NULL), "IC_MSG");
	call.reason = "caller_cancelled";
	x = payload_apns(&ctx, &t, PGW_PUSH_CANCEL, false, NULL);
	jx = json_loads(x, 0, NULL);
	CHECK(json_object_get(json_object_get(jx, "aps"), "loc-key") == NULL);
	CHECK(json_object_get(json_object_get(jx, "aps"), "loc-args") == NULL);
	CHECK(json_object_get(json_object_get(jx, "aps"), "sound") == NULL);
	CHECK(json_object_get(json_object_get(jx, "aps"), "alert") == NULL);
	CHECK_STR(str_at(jx, "aps", "call-id", NULL), "c1");
	CHECK_STR(str_at(jx, "aps", "uuid", NULL), "w_X");
	CHECK_STR(str_at(jx, "type", NULL), "cancel");
	json_decref(jc);
	json_decref(jx);
	free(c);
	free(x);
}

static void test_fcm_data_keys(void)
{
	pgw_app_conf app = make_app(PGW_PAYLOAD_PUSHGW);
	json_t *data = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:i}", "room", "blue", "type",
				 "evil", "caller", "spoof", "from", "x", "google.sent", "x",
				 "gcm.n", "x", "message_type", "x", "reason", "theirs", "n", 7);
	pgw_call call = {"c1", "+1555", "Alice", "1001", false, data, NULL};
	pgw_payload_ctx ctx = {&call, "w_X", 1795531179, 30};
	pgw_target f = {PGW_PROVIDER_FCM, &app, "tok:en", NULL, PGW_ENV_UNSET, NULL, NULL, false};
	json_t *root, *d;
	char *b;

	TEST("pushgw FCM data: our keys win over call.data, FCM's reserved keys and non-strings are left out");
	b = payload_fcm(&ctx, &f, PGW_PUSH_CALL, NULL);
	root = json_loads(b ? b : "", JSON_REJECT_DUPLICATES, NULL);
	d = json_object_get(json_object_get(root, "message"), "data");
	CHECK(d != NULL);
	CHECK_STR(json_string_value(json_object_get(d, "type")), "call");
	CHECK_STR(json_string_value(json_object_get(d, "caller")), "+1555");
	CHECK_STR(json_string_value(json_object_get(d, "room")), "blue");
	CHECK_STR(json_string_value(json_object_get(d, "reason")), "theirs");
	CHECK(!json_object_get(d, "from") && !json_object_get(d, "google.sent") &&
	      !json_object_get(d, "gcm.n") && !json_object_get(d, "message_type") &&
	      !json_object_get(d, "n"));
	json_decref(root);
	free(b);
	call.reason = "declined";
	b = payload_fcm(&ctx, &f, PGW_PUSH_CANCEL, NULL);
	root = json_loads(b ? b : "", JSON_REJECT_DUPLICATES, NULL);
	d = json_object_get(json_object_get(root, "message"), "data");
	CHECK_STR(json_string_value(json_object_get(d, "type")), "cancel");
	CHECK_STR(json_string_value(json_object_get(d, "reason")), "declined");
	json_decref(root);
	free(b);
	json_decref(data);
}

static void test_bytes_from_contacts(void)
{
	pgw_app_conf app = make_app(PGW_PAYLOAD_LINPHONE);
	pgw_call call = {"c\"1\n", "+1555", "Al\x01ice", "1001", false, NULL, NULL};
	pgw_payload_ctx ctx = {&call, "w_X", 1795531179, 30};
	/* pn-call-str / pn-call-snd come from a SIP Contact: any bytes */
	pgw_target t = {PGW_PROVIDER_APNS, &app, NULL, "9c00aa", PGW_ENV_UNSET, "IC_\xffMSG",
			"ring\xc3.caf", false};
	json_t *root, *aps;
	char *b;

	TEST("bytes that are not UTF-8 in a device's strings still give a valid body that keeps the field");
	b = payload_apns(&ctx, &t, PGW_PUSH_CALL, true, NULL);
	root = json_loads(b ? b : "", JSON_REJECT_DUPLICATES, NULL);
	aps = json_object_get(root, "aps");
	CHECK(root != NULL);
	CHECK_STR(json_string_value(json_object_get(json_object_get(aps, "alert"), "loc-key")),
		  "IC_\xef\xbf\xbdMSG");
	CHECK_STR(json_string_value(json_object_get(aps, "sound")), "ring\xef\xbf\xbd.caf");
	CHECK_STR(json_string_value(json_object_get(root, "call-id")), "c\"1\n");
	CHECK_STR(json_string_value(json_array_get(
			  json_object_get(json_object_get(aps, "alert"), "loc-args"), 0)),
		  "Al\x01ice");
	json_decref(root);
	free(b);
}

/* android.priority of an FCM body. */
static char *fcm_priority(const pgw_payload_ctx *ctx, const pgw_target *f, pgw_push_kind k)
{
	char *b = payload_fcm(ctx, f, k, NULL), *out;
	json_t *root = json_loads(b ? b : "", 0, NULL);
	const char *v = str_at(root, "message", "android", "priority", NULL);

	out = strdup(v ? v : "(none)");
	json_decref(root);
	free(b);
	return out;
}

static void test_fcm_cancel_priority(void)
{
	static const struct {
		pgw_push_kind kind;
		const char *reason, *pushgw, *linphone;
	} cases[] = {
		{PGW_PUSH_CALL, NULL, "HIGH", "high"},
		{PGW_PUSH_CANCEL, "caller_cancelled", "HIGH", "high"},
		{PGW_PUSH_CANCEL, "answered_elsewhere", "NORMAL", "normal"},
		{PGW_PUSH_CANCEL, "declined", "NORMAL", "normal"},
	};
	pgw_app_conf app = make_app(PGW_PAYLOAD_PUSHGW);
	pgw_call call = {"c1", "+1555", "Bob", "1001", false, NULL, NULL};
	pgw_payload_ctx ctx = {&call, "w_X", 1795531179, 30};
	pgw_target f = {PGW_PROVIDER_FCM, &app, "tok", NULL, PGW_ENV_UNSET, NULL, NULL, false};
	size_t i;
	char *got;

	TEST("FCM: a call and a missed-call cancel go at high priority, a cancel that shows nothing at normal (each profile's spelling)");
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		call.reason = cases[i].reason;
		app.payload = PGW_PAYLOAD_PUSHGW;
		CHECK_STR(got = fcm_priority(&ctx, &f, cases[i].kind), cases[i].pushgw);
		free(got);
		app.payload = PGW_PAYLOAD_LINPHONE;
		CHECK_STR(got = fcm_priority(&ctx, &f, cases[i].kind), cases[i].linphone);
		free(got);
	}
}

static void test_linphone_sip_from(void)
{
	static const struct {
		const char *from, *from_name, *want;
	} cases[] = {
		{"sip:alice@pbx", "Alice", "Alice"},
		{"sip:alice@pbx", NULL, "sip:alice@pbx"},
		{"sip:alice@pbx", "", "sip:alice@pbx"},
		{NULL, NULL, ""},
	};
	pgw_app_conf app = make_app(PGW_PAYLOAD_LINPHONE);
	pgw_call call = {"c1", NULL, NULL, "1001", false, NULL, NULL};
	pgw_payload_ctx ctx = {&call, "w_X", 1795531179, 30};
	pgw_target f = {PGW_PROVIDER_FCM, &app, "tok", NULL, PGW_ENV_UNSET, NULL, NULL, false};
	size_t i;

	TEST("linphone FCM sip-from: the display name when there is one, else the URI (as Flexisip)");
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *b;
		json_t *root;

		call.from = cases[i].from;
		call.from_name = cases[i].from_name;
		b = payload_fcm(&ctx, &f, PGW_PUSH_CALL, NULL);
		root = json_loads(b ? b : "", 0, NULL);
		CHECK_STR(str_at(root, "message", "android", "data", "sip-from", NULL), cases[i].want);
		json_decref(root);
		free(b);
	}
}

/* call.data of one key "pad" whose value is n bytes. */
static json_t *pad_data(size_t n)
{
	char *v = malloc(n + 1);
	json_t *d;

	memset(v, 'x', n);
	v[n] = '\0';
	d = json_pack("{s:s}", "pad", v);
	free(v);
	return d;
}

static void test_payload_limits(void)
{
	pgw_app_conf app = make_app(PGW_PAYLOAD_PUSHGW);
	pgw_call call = {"c1", "+1555", "Bob", "1001", false, NULL, NULL};
	pgw_payload_ctx ctx = {&call, "w_X", 1795531179, 30};
	pgw_target f = {PGW_PROVIDER_FCM, &app, "tok", NULL, PGW_ENV_UNSET, NULL, NULL, false};
	size_t measured, limit, len, base;
	char *b;
	int profile;

	TEST("APNs limits: 5120 bytes for a VoIP push, 4096 for an alert, counted on the whole body");
	CHECK(payload_fits(PGW_PROVIDER_APNS, false, "", 5120, &measured, &limit));
	CHECK(limit == 5120 && measured == 5120);
	CHECK(!payload_fits(PGW_PROVIDER_APNS, false, "", 5121, &measured, &limit));
	CHECK(payload_fits(PGW_PROVIDER_APNS, true, "", 4096, &measured, &limit));
	CHECK(!payload_fits(PGW_PROVIDER_APNS, true, "", 4097, &measured, &limit));
	CHECK(limit == 4096 && measured == 4097);

	TEST("FCM limit: 4096 bytes of data keys and values, not the token and JSON around them (both profiles)");
	for (profile = 0; profile < 2; profile++) {
		json_t *data = pad_data(1);

		app.payload = (pgw_payload_profile)profile;
		call.data = data;
		/* the data bytes of a body with one byte of pad */
		b = payload_fcm(&ctx, &f, PGW_PUSH_CALL, &len);
		CHECK(payload_fits(PGW_PROVIDER_FCM, false, b, len, &measured, &limit));
		free(b);
		json_decref(data);
		data = pad_data(5000);
		call.data = data;
		b = payload_fcm(&ctx, &f, PGW_PUSH_CALL, &len);
		CHECK(!payload_fits(PGW_PROVIDER_FCM, false, b, len, &measured, &limit));
		CHECK(limit == 4096 && measured < len && measured > 5000);
		base = measured - 5000; /* the data bytes besides the pad */
		free(b);
		json_decref(data);
		/* exactly at the limit: fits, though the body is longer */
		data = pad_data(4096 - base);
		call.data = data;
		b = payload_fcm(&ctx, &f, PGW_PUSH_CALL, &len);
		CHECK(len > 4096);
		CHECK(payload_fits(PGW_PROVIDER_FCM, false, b, len, &measured, &limit));
		free(b);
		json_decref(data);
		data = pad_data(4097 - base);
		call.data = data;
		b = payload_fcm(&ctx, &f, PGW_PUSH_CALL, &len);
		CHECK(!payload_fits(PGW_PROVIDER_FCM, false, b, len, &measured, &limit));
		CHECK(measured == 4097);
		free(b);
		json_decref(data);
		call.data = NULL;
	}
}

int main(void)
{
	test_profiles();
	test_fcm_values_are_strings();
	test_fcm_data_keys();
	test_bytes_from_contacts();
	test_device_overrides();
	test_cancel_reasons();
	test_linphone_voip_cancel_is_no_call();
	test_fcm_cancel_priority();
	test_linphone_sip_from();
	test_payload_limits();
	return check_summary("payload");
}
