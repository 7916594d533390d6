/* Unit tests for the APNs provider: Apple's reasons map to the statuses SPEC
 * §5 names, and the provider token is a verifiable ES256 JWT made once and
 * renewed only when due or after ExpiredProviderToken, never more than once
 * early in 20 minutes. */
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "pushgw/apns.h"

static void expect_verdict(int status, const char *reason, pgw_push_status want,
			   const char *want_reason, apns_action want_action)
{
	apns_verdict v;

	apns_classify(status, reason, &v);
	CHECK(v.status == want);
	CHECK(v.action == want_action);
	if (want_reason)
		CHECK_STR(v.reason, want_reason);
}

static void test_classify(void)
{
	TEST("every APNs reason class maps to its status");
	expect_verdict(200, NULL, PGW_PUSH_SENT, NULL, APNS_DONE);
	expect_verdict(400, "BadDeviceToken", PGW_PUSH_INVALID_TOKEN, "BadDeviceToken", APNS_TRY_OTHER_ENV);
	expect_verdict(400, "DeviceTokenNotForTopic", PGW_PUSH_INVALID_TOKEN, "DeviceTokenNotForTopic", APNS_DONE);
	expect_verdict(410, "Unregistered", PGW_PUSH_INVALID_TOKEN, "Unregistered", APNS_DONE);
	expect_verdict(410, "ExpiredToken", PGW_PUSH_INVALID_TOKEN, "ExpiredToken", APNS_DONE);
	expect_verdict(403, "InvalidProviderToken", PGW_PUSH_FAILED, "auth_error", APNS_DONE);
	expect_verdict(403, "ExpiredProviderToken", PGW_PUSH_FAILED, "auth_error", APNS_RETRY_NEW_JWT);
	expect_verdict(403, "MissingProviderToken", PGW_PUSH_FAILED, "auth_error", APNS_DONE);
	expect_verdict(403, "BadCertificate", PGW_PUSH_FAILED, "auth_error", APNS_DONE);
	expect_verdict(400, "TopicDisallowed", PGW_PUSH_FAILED, "config_error", APNS_DONE);
	expect_verdict(400, "BadTopic", PGW_PUSH_FAILED, "config_error", APNS_DONE);
	expect_verdict(400, "InvalidPushType", PGW_PUSH_FAILED, "config_error", APNS_DONE);
	expect_verdict(413, "PayloadTooLarge", PGW_PUSH_FAILED, "config_error", APNS_DONE);
	expect_verdict(429, "TooManyRequests", PGW_PUSH_FAILED, "TooManyRequests", APNS_RETRY_AFTER_1S);
	expect_verdict(429, "TooManyProviderTokenUpdates", PGW_PUSH_FAILED, "TooManyProviderTokenUpdates", APNS_RETRY_RECYCLE);
	expect_verdict(500, "InternalServerError", PGW_PUSH_FAILED, "InternalServerError", APNS_RETRY);
	expect_verdict(503, "ServiceUnavailable", PGW_PUSH_FAILED, "ServiceUnavailable", APNS_RETRY);
	expect_verdict(503, "Shutdown", PGW_PUSH_FAILED, "Shutdown", APNS_RETRY_RECYCLE);

	TEST("an unknown reason is judged by the HTTP status");
	expect_verdict(410, NULL, PGW_PUSH_INVALID_TOKEN, "Unregistered", APNS_DONE);
	expect_verdict(503, "SomethingNew", PGW_PUSH_FAILED, "ServiceUnavailable", APNS_RETRY);
	expect_verdict(403, "SomethingNew", PGW_PUSH_FAILED, "auth_error", APNS_DONE);
	expect_verdict(400, "SomethingNew", PGW_PUSH_FAILED, "config_error", APNS_DONE);
	expect_verdict(429, NULL, PGW_PUSH_FAILED, "TooManyRequests", APNS_RETRY_AFTER_1S);
}

/* dead: the device may be removed; mistake: kept, with a hint. */
static void expect_token_meaning(int status, const char *reason, bool dead, bool mistake)
{
	apns_verdict v;

	apns_classify(status, reason, &v);
	CHECK(v.dead == dead);
	CHECK(v.mistake == mistake);
	CHECK((v.hint != NULL) == mistake);
}

static void test_what_removes_a_device(void)
{
	TEST("only a 410 proves a token dead; a topic mismatch is our mistake and keeps the device");
	expect_token_meaning(410, "Unregistered", true, false);
	expect_token_meaning(410, "ExpiredToken", true, false);
	expect_token_meaning(410, NULL, true, false);
	expect_token_meaning(410, "SomethingNew", true, false);
	expect_token_meaning(400, "DeviceTokenNotForTopic", false, true);
	/* decided by the caller: the other host first, and a stated environment */
	expect_token_meaning(400, "BadDeviceToken", false, false);
	expect_token_meaning(400, "TopicDisallowed", false, false);
	expect_token_meaning(403, "InvalidProviderToken", false, false);
	expect_token_meaning(503, "ServiceUnavailable", false, false);
	expect_token_meaning(200, NULL, false, false);
	{
		apns_verdict v;
		apns_classify(400, "DeviceTokenNotForTopic", &v);
		CHECK(v.status == PGW_PUSH_INVALID_TOKEN);
		CHECK(v.hint && strstr(v.hint, "bundle id") != NULL);
	}
}

static EVP_PKEY *make_key(char **pem)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	BIO *bio = BIO_new(BIO_s_mem());
	char *data;
	long n;

	PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL);
	n = BIO_get_mem_data(bio, &data);
	*pem = strndup(data, (size_t)n);
	BIO_free(bio);
	return key;
}

static size_t b64url_decode(const char *in, size_t n, unsigned char *out)
{
	char buf[512] = {0};
	size_t i, len = 0;
	int got;

	for (i = 0; i < n && len < sizeof buf - 4; i++)
		buf[len++] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
	while (len % 4)
		buf[len++] = '=';
	got = EVP_DecodeBlock(out, (unsigned char *)buf, (int)len);
	if (got < 0)
		return 0;
	while (len > 0 && buf[len - 1] == '=') {
		got--;
		len--;
	}
	return (size_t)got;
}

/* Verify an ES256 JWS (raw R||S) with OpenSSL, independently of libjwt. */
static int jwt_verifies(const char *jwt, EVP_PKEY *key)
{
	const char *dot2 = strrchr(jwt, '.');
	unsigned char sig[128], der[160], *p = der;
	ECDSA_SIG *es = ECDSA_SIG_new();
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	size_t siglen = b64url_decode(dot2 + 1, strlen(dot2 + 1), sig);
	int derlen, ok;

	if (siglen != 64)
		return 0;
	ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
	derlen = i2d_ECDSA_SIG(es, &p);
	ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
	     EVP_DigestVerify(md, der, (size_t)derlen, (const unsigned char *)jwt,
			      (size_t)(dot2 - jwt)) == 1;
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(md);
	return ok;
}

static json_t *jwt_part(const char *jwt, int which)
{
	const char *start = jwt, *end;
	unsigned char buf[512];
	size_t n;

	if (which == 1)
		start = strchr(jwt, '.') + 1;
	end = strchr(start, '.');
	n = b64url_decode(start, (size_t)(end - start), buf);
	return json_loadb((char *)buf, n, 0, NULL);
}

static void test_cred(void)
{
	pgw_apns_conf conf = {0};
	apns_cred *cred = NULL;
	char *pem = NULL;
	EVP_PKEY *key = make_key(&pem);
	const char *auth;
	int64_t now = pgw_wall_ms() / 1000;
	uint64_t gen;

	conf.team_id = "TEAM123456";
	conf.key_id = "KEY1234567";
	conf.key_pem = pem;
	TEST("the provider token is an ES256 JWT with kid, iss and iat that verifies");
	CHECK(apns_cred_new(&conf, &cred) == PGW_OK);
	auth = apns_cred_authorization(cred, now);
	CHECK(strncmp(auth, "bearer ", 7) == 0);
	CHECK(jwt_verifies(auth + 7, key));
	json_t *hdr = jwt_part(auth + 7, 0), *claims = jwt_part(auth + 7, 1);
	CHECK_STR(json_string_value(json_object_get(hdr, "alg")), "ES256");
	CHECK_STR(json_string_value(json_object_get(hdr, "kid")), "KEY1234567");
	CHECK_STR(json_string_value(json_object_get(claims, "iss")), "TEAM123456");
	CHECK(llabs(json_integer_value(json_object_get(claims, "iat")) - now) <= 2);
	json_decref(hdr);
	json_decref(claims);
	CHECK(apns_cred_signatures(cred) == 1);

	TEST("the token is reused until it is 50 minutes old");
	apns_cred_authorization(cred, now + 49 * 60);
	CHECK(apns_cred_signatures(cred) == 1);
	apns_cred_renew_if_due(cred, now + 10 * 60);
	CHECK(apns_cred_signatures(cred) == 1);
	apns_cred_renew_if_due(cred, now + 50 * 60);
	CHECK(apns_cred_signatures(cred) == 2);

	TEST("ExpiredProviderToken renews once per rejected token");
	gen = apns_cred_generation(cred);
	CHECK(apns_cred_expired(cred, gen, now + 52 * 60)); /* 2 min old: the one early renewal */
	CHECK(apns_cred_signatures(cred) == 3);
	CHECK(apns_cred_expired(cred, gen, now + 52 * 60)); /* same rejected token again */
	CHECK(apns_cred_signatures(cred) == 3);
	TEST("an early renewal called expired again is kept until 20 minutes old (clock problem)");
	CHECK(!apns_cred_expired(cred, apns_cred_generation(cred), now + 52 * 60 + 5));
	CHECK(!apns_cred_expired(cred, apns_cred_generation(cred), now + 71 * 60));
	CHECK(apns_cred_signatures(cred) == 3);
	TEST("a token 20 minutes old called expired is renewed at once");
	CHECK(apns_cred_expired(cred, apns_cred_generation(cred), now + 72 * 60));
	CHECK(apns_cred_signatures(cred) == 4);
	TEST("a young token that was a regular renewal may be replaced once");
	CHECK(apns_cred_expired(cred, apns_cred_generation(cred), now + 73 * 60));
	CHECK(apns_cred_signatures(cred) == 5);
	CHECK(!apns_cred_expired(cred, apns_cred_generation(cred), now + 74 * 60));
	CHECK(apns_cred_signatures(cred) == 5);
	TEST("the 50-minute renewal still happens after an early one");
	apns_cred_renew_if_due(cred, now + 73 * 60 + APNS_JWT_RENEW_S);
	CHECK(apns_cred_signatures(cred) == 6);

	TEST("two hours of ExpiredProviderToken every 10 s: never 3 signatures within 20 minutes");
	{
		int64_t at[64];
		int n = 0, i;
		uint64_t sigs = apns_cred_signatures(cred);
		int64_t t0 = now + 4 * 3600;
		bool spaced = true;

		apns_cred_renew_if_due(cred, t0); /* a regular renewal starts the run */
		at[n++] = t0;
		sigs = apns_cred_signatures(cred);
		for (int64_t t = t0 + 10; t < t0 + 7200; t += 10) {
			apns_cred_expired(cred, apns_cred_generation(cred), t);
			apns_cred_renew_if_due(cred, t);
			if (apns_cred_signatures(cred) != sigs && n < 64) {
				sigs = apns_cred_signatures(cred);
				at[n++] = t;
			}
		}
		for (i = 2; i < n; i++)
			if (at[i] - at[i - 2] < APNS_JWT_MIN_AGE_S)
				spaced = false;
		CHECK(spaced);
		CHECK(n >= 6);  /* it still renews: every 20 minutes */
		CHECK(n <= 13);
	}

	TEST("a key that is not EC P-256 is refused");
	apns_cred *bad = NULL;
	conf.key_pem = "-----BEGIN PRIVATE KEY-----\nnotakey\n-----END PRIVATE KEY-----\n";
	CHECK(apns_cred_new(&conf, &bad) != PGW_OK);
	CHECK(bad == NULL);
	apns_cred_free(cred);
	apns_cred_free(NULL);
	EVP_PKEY_free(key);
	free(pem);
}

static void test_collapse_id(void)
{
	char fits[APNS_COLLAPSE_ID_MAX + 1], at_limit[APNS_COLLAPSE_ID_MAX + 1];
	char long_id[300], a[APNS_COLLAPSE_ID_MAX + 1], b[APNS_COLLAPSE_ID_MAX + 1];

	TEST("a call id of at most 64 bytes is the collapse id itself");
	apns_collapse_id("a84b4c76e66710@pbx", a);
	CHECK_STR(a, "a84b4c76e66710@pbx");
	memset(fits, 'c', APNS_COLLAPSE_ID_MAX);
	fits[APNS_COLLAPSE_ID_MAX] = '\0';
	apns_collapse_id(fits, at_limit);
	CHECK_STR(at_limit, fits);

	TEST("a longer call id becomes a stable 64-character digest Apple accepts");
	memset(long_id, 'x', sizeof long_id - 1);
	long_id[sizeof long_id - 1] = '\0';
	apns_collapse_id(long_id, a);
	apns_collapse_id(long_id, b);
	CHECK(strlen(a) == APNS_COLLAPSE_ID_MAX);
	CHECK_STR(a, b);
	long_id[10] = 'y';
	apns_collapse_id(long_id, b);
	CHECK(strcmp(a, b) != 0);
}

int main(void)
{
	test_classify();
	test_what_removes_a_device();
	test_cred();
	test_collapse_id();
	return check_summary("apns");
}
