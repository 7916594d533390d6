/* The simulated Google OAuth 2.0 token endpoint (JWT bearer grant, as service
 * accounts use it): checks the form and the assertion, issues access tokens
 * and remembers them with their expiry so the FCM endpoint can check its
 * bearer tokens. Tests steer it through the control port: token lifetime,
 * forced failures, answer delay, revocation. Event loop thread only. */
#ifndef SIM_OAUTH_H
#define SIM_OAUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "sim_route.h"

struct sim;
struct sim_config;
struct sim_oauth;

/* Loads the accounts cfg names (--service-account, --sa-pub). Caller frees
 * with sim_oauth_free(); NULL on error with a message in err. */
struct sim_oauth *sim_oauth_new(const struct sim_config *cfg, char *err, size_t errlen);
/* Accepts NULL. */
void sim_oauth_free(struct sim_oauth *oauth);

/* A request to the token path. */
void sim_oauth_handle(struct sim *sim, const struct sim_request *req, struct sim_reply *reply);

/* True when token was issued here, has not been revoked and has not expired. */
bool sim_oauth_token_valid(const struct sim_oauth *oauth, const char *token, int64_t now_ms);

/* Lifetime (expires_in) of the tokens issued from now on. */
void sim_oauth_set_ttl(struct sim_oauth *oauth, unsigned ttl_s);
/* Every answer of the token endpoint (token or error) waits delay_ms (0 = the
 * simulator's default delay); the token is issued when the request arrives. */
void sim_oauth_set_delay(struct sim_oauth *oauth, unsigned delay_ms);
/* The next n token requests fail with 400 invalid_grant, whatever they hold. */
void sim_oauth_fail_next(struct sim_oauth *oauth, unsigned n);
/* Every token issued so far stops working. */
void sim_oauth_revoke_all(struct sim_oauth *oauth);
/* POST /reset: forgets pending forced failures; issued tokens stay good. */
void sim_oauth_reset(struct sim_oauth *oauth);

/* {"ttl", "fail", "delay_ms", "tokens", "valid_tokens"}; caller json_decref()s. */
json_t *sim_oauth_state_json(const struct sim_oauth *oauth, int64_t now_ms);

#endif
