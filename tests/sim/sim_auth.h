/* APNs provider-token (JWT, ES256) checks, with every distinct token's
 * verdict cached the way Apple caches them, so verifying costs one signature
 * check per token, not per request. Event loop thread only. */
#ifndef SIM_AUTH_H
#define SIM_AUTH_H

#include <stddef.h>
#include <stdint.h>

struct sim_auth;

/* With pub_pem NULL every token is accepted (but still counted). Otherwise
 * team_id and key_id must be set. Caller frees with sim_auth_free(); NULL on
 * error with a message in err. */
struct sim_auth *sim_auth_new(const char *team_id, const char *key_id, const char *pub_pem,
			      char *err, size_t errlen);
void sim_auth_free(struct sim_auth *auth);

/* authorization is the request's header value or NULL. Returns NULL when the
 * token is good, else Apple's reason: MissingProviderToken,
 * InvalidProviderToken or ExpiredProviderToken. */
const char *sim_auth_check(struct sim_auth *auth, const char *authorization, int64_t now_s);

/* Distinct bearer tokens seen since start or the last reset. */
size_t sim_auth_distinct(const struct sim_auth *auth);
void sim_auth_reset(struct sim_auth *auth);

#endif
