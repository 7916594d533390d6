/* APNs provider: the ES256 provider token of one credential (made once, shared
 * by every connection of that credential, renewed on a timer, never on the
 * request path) and the mapping of Apple's answers to pushgw statuses.
 * Threading: apns_classify() is pure (any thread); an apns_cred is used on the
 * loop thread only. */
#ifndef PUSHGW_APNS_H
#define PUSHGW_APNS_H

#include <stdbool.h>
#include <stdint.h>

#include "pushgw/config.h"
#include "pushgw/err.h"
#include "pushgw/push.h"

/* A provider token older than this is renewed (Apple refuses after 60 min). */
#define APNS_JWT_RENEW_S (50 * 60)
/* Apple answers TooManyProviderTokenUpdates when a token changes more often. */
#define APNS_JWT_MIN_AGE_S (20 * 60)

typedef struct apns_cred apns_cred;

/* Token auth credential from conf (team_id, key_id, key_pem); signs the first
 * token now. Caller frees with apns_cred_free(). PGW_ECRYPTO when the key does
 * not sign. */
pgw_err apns_cred_new(const pgw_apns_conf *conf, apns_cred **out);
/* Drops one reference; the last frees. Accepts NULL. */
void apns_cred_free(apns_cred *cred);
/* Another reference (a reload keeps the token, so Apple sees no change). */
apns_cred *apns_cred_ref(apns_cred *cred);
/* True when conf names this very credential (team, key id and key). */
bool apns_cred_matches(const apns_cred *cred, const pgw_apns_conf *conf);

/* "bearer <jwt>", renewed first when older than APNS_JWT_RENEW_S (which the
 * renewal timer makes rare). Valid until the next call. */
const char *apns_cred_authorization(apns_cred *cred, int64_t now_s);
/* Renew when due (APNS_JWT_RENEW_S); for a periodic timer. */
void apns_cred_renew_if_due(apns_cred *cred, int64_t now_s);
/* Apple said ExpiredProviderToken for a request sent with generation gen:
 * renew at once unless that was already done (one renewal per rejected
 * token, however many requests carried it). A token younger than
 * APNS_JWT_MIN_AGE_S is renewed only when it was not itself such an early
 * renewal: at most one early signature per 20 minutes. True when a newer
 * token than gen is there to retry with. */
bool apns_cred_expired(apns_cred *cred, uint64_t gen, int64_t now_s);
/* Generation of the current token (bumped on every signature). */
uint64_t apns_cred_generation(const apns_cred *cred);
/* Signatures made so far. */
uint64_t apns_cred_signatures(const apns_cred *cred);

/* What to do with Apple's answer. */
typedef enum apns_action {
	APNS_DONE,          /* result is final */
	APNS_RETRY,         /* retry with backoff while the deadline allows */
	APNS_RETRY_AFTER_1S,/* TooManyRequests: one retry after >= 1 s */
	APNS_RETRY_NEW_JWT, /* ExpiredProviderToken: renew, retry once */
	APNS_RETRY_RECYCLE, /* Shutdown / TooManyProviderTokenUpdates: new connection, retry */
	APNS_TRY_OTHER_ENV, /* BadDeviceToken: try the other host when the env was not stated */
} apns_action;

typedef struct apns_verdict {
	pgw_push_status status; /* the status if no retry happens */
	const char *reason;     /* what the result reports */
	bool loud;              /* a configuration problem worth an error log */
	apns_action action;
	bool dead;        /* the token is gone for good (410): the device may be removed */
	bool mistake;     /* our settings, not the token, are wrong: keep the device, warn */
	const char *hint; /* what to check, or NULL */
} apns_verdict;

/* Map an HTTP status and Apple's "reason" (may be NULL) to a verdict. Pure. */
void apns_classify(int http_status, const char *reason, apns_verdict *out);

/* Apple refuses an apns-collapse-id over 64 bytes (BadCollapseId). */
#define APNS_COLLAPSE_ID_MAX 64

/* The apns-collapse-id of every alert of one call: the call id itself when it
 * fits, else the hex SHA-256 of it (64 characters), so a long SIP Call-ID
 * still gives one stable id instead of a refused push. Pure. */
void apns_collapse_id(const char *call_id, char out[APNS_COLLAPSE_ID_MAX + 1]);

#endif
