/* FCM HTTP v1 provider: the OAuth access token of one service account (an
 * RS256 assertion exchanged at token_uri over the same HTTP/2 pool, fetched at
 * start-up, cached, refreshed ahead of expiry, one fetch at a time while
 * requests wait) and the mapping of FCM's answers to pushgw statuses.
 * Threading: fcm_classify() is pure (any thread); an fcm_auth lives on the
 * loop thread (created before the loop starts, or on it). */
#ifndef PUSHGW_FCM_H
#define PUSHGW_FCM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pushgw/config.h"
#include "pushgw/err.h"
#include "pushgw/evloop.h"
#include "pushgw/h2pool.h"
#include "pushgw/push.h"

#define FCM_SCOPE "https://www.googleapis.com/auth/firebase.messaging"

typedef struct fcm_auth fcm_auth;

/* token_origin: the pool origin of conf->token_uri. The first fetch starts at
 * once (asynchronously). Caller frees with fcm_auth_free(). */
pgw_err fcm_auth_new(const pgw_fcm_conf *conf, evloop *loop, h2_origin *token_origin,
		     fcm_auth **out);
/* Pending waiters get (NULL, "shutting down"). Accepts NULL. */
void fcm_auth_free(fcm_auth *auth);

/* "Bearer <access token>" while a valid one is cached, else NULL. */
const char *fcm_auth_header(const fcm_auth *auth);
/* Generation of the cached token (bumped on each successful fetch). */
uint64_t fcm_auth_generation(const fcm_auth *auth);

/* Called with the header once a token is there, or NULL and a reason when
 * the fetch failed. Never called from inside fcm_auth_wait(). */
typedef void (*fcm_token_fn)(void *arg, const char *header, const char *error);
/* Wait for a token, starting a fetch when none is in flight or scheduled.
 * deadline_ms (pgw_now_ms() clock) only decides whether waiting is worth it:
 * after a failed fetch the next one waits for its backoff, and when that
 * comes at or after deadline_ms this answers PGW_EAUTH at once (no callback;
 * fcm_auth_last_error() says why). Bounding the wait itself is the caller's
 * job (fcm_auth_unwait()). PGW_OK: cb comes exactly once unless unwaited. */
pgw_err fcm_auth_wait(fcm_auth *auth, int64_t deadline_ms, fcm_token_fn cb, void *arg);
/* Stop waiting: the waiter registered with arg is dropped and its callback
 * never comes. Nothing happens when there is none. */
void fcm_auth_unwait(fcm_auth *auth, void *arg);
/* Why the last fetch failed ("token_uri answered 400 invalid_grant" …). */
const char *fcm_auth_last_error(const fcm_auth *auth);

/* FCM said 401 for a request sent with generation gen: drop that token (once)
 * so the next request waits for a fresh one. */
void fcm_auth_invalidate(fcm_auth *auth, uint64_t gen);

/* Assertions signed / token fetches completed, for metrics and tests. */
uint64_t fcm_auth_fetches(const fcm_auth *auth);

/* The RS256 assertion (iss, scope, aud = token_uri, iat, exp = iat + 3600).
 * Caller frees with free(). NULL when the key cannot sign. */
char *fcm_assertion(const pgw_fcm_conf *conf, int64_t now_s);

typedef enum fcm_action {
	FCM_DONE,
	FCM_RETRY,             /* UNAVAILABLE / INTERNAL / 5xx: backoff */
	FCM_RETRY_AFTER,       /* QUOTA_EXCEEDED: only if Retry-After fits */
	FCM_RETRY_NEW_TOKEN,   /* 401: refresh the OAuth token once, retry */
} fcm_action;

typedef struct fcm_verdict {
	pgw_push_status status;
	char reason[48];   /* what the result reports */
	char detail[48];   /* FCM's errorCode/status when reason is our class */
	bool loud;
	fcm_action action;
	bool dead;        /* the token is gone for good: the device may be removed */
	bool mistake;     /* our settings, not the token, are wrong: keep the device, warn */
	const char *hint; /* what to check, or NULL */
} fcm_verdict;

/* Map an FCM HTTP v1 answer (status + JSON body) to a verdict. Pure. */
void fcm_classify(int http_status, const char *body, size_t len, fcm_verdict *out);

#endif
