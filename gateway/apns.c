/* APNs provider tokens and the map from Apple's answers to pushgw statuses.
 * An apns_cred lives on the loop thread; apns_classify() is pure. */
#include "pushgw/apns.h"

#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pushgw/log.h"
#include "pushgw/util.h"

struct apns_cred {
	char *team_id;
	char *key_id;
	char *key_pem;
	size_t key_len;
	char *authorization; /* "bearer <jwt>" */
	int64_t signed_at_s;
	/* the current token replaced one younger than APNS_JWT_MIN_AGE_S */
	bool early;
	uint64_t warned_gen; /* generation the clock warning was logged for */
	uint64_t generation;
	uint64_t signatures;
	int refs;
};

static pgw_err cred_sign(apns_cred *cred, int64_t now_s)
{
	jwt_t *jwt = NULL;
	char *token = NULL, *auth = NULL;
	pgw_err rc = PGW_ECRYPTO;

	if (jwt_new(&jwt) != 0)
		return PGW_ENOMEM;
	if (jwt_add_header(jwt, "kid", cred->key_id) != 0 ||
	    jwt_add_grant(jwt, "iss", cred->team_id) != 0 ||
	    jwt_add_grant_int(jwt, "iat", (long)now_s) != 0 ||
	    jwt_set_alg(jwt, JWT_ALG_ES256, (const unsigned char *)cred->key_pem,
			(int)cred->key_len) != 0)
		goto fail;
	token = jwt_encode_str(jwt);
	if (!token)
		goto fail;
	if (asprintf(&auth, "bearer %s", token) < 0) {
		auth = NULL;
		rc = PGW_ENOMEM;
		goto fail;
	}
	free(cred->authorization);
	cred->authorization = auth;
	cred->signed_at_s = now_s;
	cred->early = false;
	cred->generation++;
	cred->signatures++;
	rc = PGW_OK;
	pgw_log(PGW_LOG_INFO, "apns provider token signed", "team_id", cred->team_id,
		"key_id", cred->key_id, NULL);
fail:
	free(token);
	jwt_free(jwt);
	return rc;
}

pgw_err apns_cred_new(const pgw_apns_conf *conf, apns_cred **out)
{
	apns_cred *cred;
	pgw_err rc;

	if (!conf->team_id || !conf->key_id || !conf->key_pem)
		return PGW_EINVAL;
	cred = calloc(1, sizeof *cred);
	if (!cred)
		return PGW_ENOMEM;
	cred->team_id = strdup(conf->team_id);
	cred->key_id = strdup(conf->key_id);
	cred->key_pem = strdup(conf->key_pem);
	if (!cred->team_id || !cred->key_id || !cred->key_pem) {
		apns_cred_free(cred);
		return PGW_ENOMEM;
	}
	cred->key_len = strlen(cred->key_pem);
	cred->refs = 1;
	rc = cred_sign(cred, pgw_wall_ms() / 1000);
	if (rc != PGW_OK) {
		apns_cred_free(cred);
		return rc;
	}
	*out = cred;
	return PGW_OK;
}

apns_cred *apns_cred_ref(apns_cred *cred)
{
	cred->refs++;
	return cred;
}

bool apns_cred_matches(const apns_cred *cred, const pgw_apns_conf *conf)
{
	return conf->team_id && conf->key_id && conf->key_pem && strcmp(cred->team_id, conf->team_id) == 0 &&
	       strcmp(cred->key_id, conf->key_id) == 0 && strcmp(cred->key_pem, conf->key_pem) == 0;
}

void apns_cred_free(apns_cred *cred)
{
	if (!cred || --cred->refs > 0)
		return;
	free(cred->team_id);
	free(cred->key_id);
	if (cred->key_pem) {
		memset(cred->key_pem, 0, cred->key_len);
		free(cred->key_pem);
	}
	free(cred->authorization);
	free(cred);
}

void apns_cred_renew_if_due(apns_cred *cred, int64_t now_s)
{
	if (now_s - cred->signed_at_s >= APNS_JWT_RENEW_S)
		cred_sign(cred, now_s);
}

const char *apns_cred_authorization(apns_cred *cred, int64_t now_s)
{
	apns_cred_renew_if_due(cred, now_s);
	return cred->authorization;
}

bool apns_cred_expired(apns_cred *cred, uint64_t gen, int64_t now_s)
{
	int64_t age = now_s - cred->signed_at_s;
	bool young = age < APNS_JWT_MIN_AGE_S;
	char age_s[24];

	/* Many in-flight requests carry the same rejected token: renew once. */
	if (gen != cred->generation)
		return true;
	/* Apple calls a token expired once its iat is an hour old by Apple's
	 * clock. One younger than 20 minutes by ours means the clocks disagree,
	 * which a new signature does not cure, while every extra one risks
	 * TooManyProviderTokenUpdates on each connection. So a young token is
	 * replaced once (a glitch, a clock step just before signing) and then
	 * kept until it is 20 minutes old. */
	snprintf(age_s, sizeof age_s, "%lld", (long long)age);
	if (young && cred->early) {
		if (cred->warned_gen != cred->generation) {
			cred->warned_gen = cred->generation;
			pgw_log(PGW_LOG_ERROR,
				"apns calls fresh provider tokens expired: check the clock; the token is kept until it is 20 minutes old",
				"team_id", cred->team_id, "key_id", cred->key_id, "age_s", age_s, NULL);
		}
		return false;
	}
	if (cred_sign(cred, now_s) != PGW_OK)
		return false;
	cred->early = young;
	if (young)
		pgw_log(PGW_LOG_WARN, "apns called a provider token younger than 20 minutes expired: renewed once",
			"team_id", cred->team_id, "key_id", cred->key_id, "age_s", age_s, NULL);
	return true;
}

uint64_t apns_cred_generation(const apns_cred *cred)
{
	return cred->generation;
}

uint64_t apns_cred_signatures(const apns_cred *cred)
{
	return cred->signatures;
}

/* Apple's reasons, by what they mean for us. */
static const struct {
	const char *reason;
	pgw_push_status status;
	const char *ours; /* reported reason; NULL = Apple's own */
	apns_action action;
	bool loud;
} reason_table[] = {
	{"BadDeviceToken", PGW_PUSH_INVALID_TOKEN, NULL, APNS_TRY_OTHER_ENV, false},
	{"DeviceTokenNotForTopic", PGW_PUSH_INVALID_TOKEN, NULL, APNS_DONE, false},
	{"Unregistered", PGW_PUSH_INVALID_TOKEN, NULL, APNS_DONE, false},
	{"ExpiredToken", PGW_PUSH_INVALID_TOKEN, NULL, APNS_DONE, false},
	{"ExpiredProviderToken", PGW_PUSH_FAILED, "auth_error", APNS_RETRY_NEW_JWT, true},
	{"InvalidProviderToken", PGW_PUSH_FAILED, "auth_error", APNS_DONE, true},
	{"MissingProviderToken", PGW_PUSH_FAILED, "auth_error", APNS_DONE, true},
	{"BadCertificate", PGW_PUSH_FAILED, "auth_error", APNS_DONE, true},
	{"BadCertificateEnvironment", PGW_PUSH_FAILED, "auth_error", APNS_DONE, true},
	{"Forbidden", PGW_PUSH_FAILED, "auth_error", APNS_DONE, true},
	{"UnrelatedKeyIdInToken", PGW_PUSH_FAILED, "auth_error", APNS_DONE, true},
	{"BadTopic", PGW_PUSH_FAILED, "config_error", APNS_DONE, true},
	{"MissingTopic", PGW_PUSH_FAILED, "config_error", APNS_DONE, true},
	{"TopicDisallowed", PGW_PUSH_FAILED, "config_error", APNS_DONE, true},
	{"InvalidPushType", PGW_PUSH_FAILED, "config_error", APNS_DONE, true},
	{"BadCollapseId", PGW_PUSH_FAILED, "config_error", APNS_DONE, true},
	{"BadExpirationDate", PGW_PUSH_FAILED, "config_error", APNS_DONE, true},
	{"BadMessageId", PGW_PUSH_FAILED, "config_error", APNS_DONE, true},
	{"BadPriority", PGW_PUSH_FAILED, "config_error", APNS_DONE, true},
	{"BadPath", PGW_PUSH_FAILED, "config_error", APNS_DONE, true},
	{"MethodNotAllowed", PGW_PUSH_FAILED, "config_error", APNS_DONE, true},
	{"PayloadEmpty", PGW_PUSH_FAILED, "config_error", APNS_DONE, true},
	{"PayloadTooLarge", PGW_PUSH_FAILED, "config_error", APNS_DONE, true},
	{"DuplicateHeaders", PGW_PUSH_FAILED, "config_error", APNS_DONE, true},
	{"MissingDeviceToken", PGW_PUSH_FAILED, "config_error", APNS_DONE, true},
	{"IdleTimeout", PGW_PUSH_FAILED, "IdleTimeout", APNS_RETRY, false},
	{"TooManyProviderTokenUpdates", PGW_PUSH_FAILED, NULL, APNS_RETRY_RECYCLE, true},
	{"TooManyRequests", PGW_PUSH_FAILED, NULL, APNS_RETRY_AFTER_1S, false},
	{"InternalServerError", PGW_PUSH_FAILED, NULL, APNS_RETRY, false},
	{"ServiceUnavailable", PGW_PUSH_FAILED, NULL, APNS_RETRY, false},
	{"Shutdown", PGW_PUSH_FAILED, NULL, APNS_RETRY_RECYCLE, false},
};

/* What a token error says about the device. Apple's 410 (Unregistered,
 * ExpiredToken) is the only answer that proves a token dead by itself.
 * DeviceTokenNotForTopic says the token belongs to another app than the
 * topic we sent: a wrong bundle id in our config would say it for every
 * device of the app, so it never removes one. BadDeviceToken is decided by
 * the caller (it may only mean the other APNs environment). */
static void token_meaning(int http_status, apns_verdict *out)
{
	if (out->status == PGW_PUSH_INVALID_TOKEN &&
	    (http_status == 410 || strcmp(out->reason, "Unregistered") == 0 ||
	     strcmp(out->reason, "ExpiredToken") == 0)) {
		out->dead = true;
	} else if (strcmp(out->reason, "DeviceTokenNotForTopic") == 0) {
		out->mistake = true;
		out->hint = "the token belongs to another app than this app's bundle id (apns-topic): "
			    "check the app's apns.bundle_id and which app the device registered from";
	}
}

void apns_classify(int http_status, const char *reason, apns_verdict *out)
{
	size_t i;

	out->loud = false;
	out->dead = false;
	out->mistake = false;
	out->hint = NULL;
	if (http_status == 200) {
		out->status = PGW_PUSH_SENT;
		out->reason = NULL;
		out->action = APNS_DONE;
		return;
	}
	for (i = 0; reason && i < sizeof reason_table / sizeof reason_table[0]; i++) {
		if (strcmp(reason, reason_table[i].reason) != 0)
			continue;
		out->status = reason_table[i].status;
		out->reason = reason_table[i].ours ? reason_table[i].ours : reason_table[i].reason;
		out->action = reason_table[i].action;
		out->loud = reason_table[i].loud;
		token_meaning(http_status, out);
		return;
	}
	/* An unknown reason: judge by the status alone. */
	out->status = PGW_PUSH_FAILED;
	out->action = APNS_DONE;
	switch (http_status) {
	case 410:
		out->status = PGW_PUSH_INVALID_TOKEN;
		out->reason = "Unregistered";
		out->dead = true;
		break;
	case 403:
		out->reason = "auth_error";
		out->loud = true;
		break;
	case 429:
		out->reason = "TooManyRequests";
		out->action = APNS_RETRY_AFTER_1S;
		break;
	case 500:
	case 502:
	case 503:
	case 504:
		out->reason = http_status == 500 ? "InternalServerError" : "ServiceUnavailable";
		out->action = APNS_RETRY;
		break;
	default:
		out->reason = "config_error";
		out->loud = true;
		break;
	}
}

void apns_collapse_id(const char *call_id, char out[APNS_COLLAPSE_ID_MAX + 1])
{
	size_t n = strlen(call_id);
	unsigned char digest[32];

	if (n <= APNS_COLLAPSE_ID_MAX) {
		memcpy(out, call_id, n + 1);
		return;
	}
	pgw_sha256(call_id, n, digest);
	pgw_hex(digest, sizeof digest, out);
}
