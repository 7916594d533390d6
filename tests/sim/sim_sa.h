/* The Google service accounts the simulated OAuth server knows, and the check
 * of the RS256 assertions (RFC 7523 JWT bearer grants) their keys sign.
 * Accounts are added at start-up; checks run on the event loop thread. */
#ifndef SIM_SA_H
#define SIM_SA_H

#include <stddef.h>
#include <stdint.h>

#define SIM_SA_SCOPE_FCM "https://www.googleapis.com/auth/firebase.messaging"
#define SIM_SA_SCOPE_CLOUD "https://www.googleapis.com/auth/cloud-platform"

struct sim_sa;

/* NULL when out of memory. Caller frees with sim_sa_free(). */
struct sim_sa *sim_sa_new(void);
/* Accepts NULL. */
void sim_sa_free(struct sim_sa *sa);

/* Adds the account of a service-account JSON file in Google's format: its
 * client_email, and the public half of its private_key. Returns 0, or -1 with
 * a message naming the file and field in err. */
int sim_sa_add_json(struct sim_sa *sa, const char *path, char *err, size_t errlen);
/* Adds "[EMAIL=]FILE", an RSA public key in PEM. With EMAIL the key only
 * vouches for assertions whose iss is EMAIL; without it, for any issuer.
 * Returns 0, or -1 with a message in err. */
int sim_sa_add_pub(struct sim_sa *sa, const char *spec, char *err, size_t errlen);
size_t sim_sa_count(const struct sim_sa *sa);

/* The verdict on one assertion, in the terms of Google's token endpoint. */
struct sim_sa_verdict {
	const char *error;       /* NULL when the assertion is good, else e.g. "invalid_grant" */
	const char *description; /* the error_description; a string literal */
	char iss[256];           /* the issuer, when it could be read */
};

/* Checks the assertion: compact JWS, alg RS256, signed by a key of the
 * account named by iss (any issuer, unsigned, when no account was added),
 * aud an https URL whose path is token_path, scope including the FCM or
 * cloud-platform scope, iat within 300 s of now_s, now_s < exp <= iat + 3600. */
void sim_sa_check(const struct sim_sa *sa, const char *assertion, const char *token_path,
		  int64_t now_s, struct sim_sa_verdict *v);

#endif
