/* Provider-token verification (see sim_auth.h): JWS compact form, header
 * {"alg":"ES256","kid":<key id>}, claims {"iss":<team id>,"iat":<seconds>},
 * signature = raw 32-byte R || 32-byte S over "header.claims". Event loop
 * thread only. */
#include "sim_auth.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "sim_map.h"
#include "sim_util.h"

#define SIM_AUTH_MAX_AGE_S 3600
#define SIM_AUTH_MAX_PART 2048

struct sim_auth_verdict {
	const char *reason; /* NULL: good signature and claims */
	int64_t iat;
};

struct sim_auth {
	char *team_id;
	char *key_id;
	EVP_PKEY *pub; /* NULL: accept all */
	struct sim_map *seen; /* token -> struct sim_auth_verdict */
};

static EVP_PKEY *sim_auth_load_key(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	EVP_PKEY *pub;

	if (!f) {
		snprintf(err, errlen, "cannot open APNs public key '%s'", path);
		return NULL;
	}
	pub = PEM_read_PUBKEY(f, NULL, NULL, NULL);
	fclose(f);
	if (!pub || !EVP_PKEY_is_a(pub, "EC")) {
		snprintf(err, errlen, "APNs public key '%s' is not an EC public key in PEM", path);
		EVP_PKEY_free(pub);
		ERR_clear_error();
		return NULL;
	}
	return pub;
}

struct sim_auth *sim_auth_new(const char *team_id, const char *key_id, const char *pub_pem,
			      char *err, size_t errlen)
{
	struct sim_auth *auth = calloc(1, sizeof(*auth));

	if (!auth) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	auth->seen = sim_map_new(free);
	if (!auth->seen) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (!pub_pem)
		return auth;
	if (!team_id || !key_id) {
		snprintf(err, errlen, "--apns-key-pub needs --team-id and --key-id");
		goto fail;
	}
	auth->team_id = strdup(team_id);
	auth->key_id = strdup(key_id);
	auth->pub = sim_auth_load_key(pub_pem, err, errlen);
	if (!auth->team_id || !auth->key_id || !auth->pub)
		goto fail;
	return auth;
fail:
	sim_auth_free(auth);
	return NULL;
}

void sim_auth_free(struct sim_auth *auth)
{
	if (!auth)
		return;
	sim_map_free(auth->seen);
	EVP_PKEY_free(auth->pub);
	free(auth->team_id);
	free(auth->key_id);
	free(auth);
}

static json_t *sim_auth_part_json(const char *p, size_t n)
{
	unsigned char raw[SIM_AUTH_MAX_PART];
	ssize_t len = sim_b64url_decode(p, n, raw, sizeof(raw));

	if (len < 0)
		return NULL;
	return json_loadb((const char *)raw, (size_t)len, 0, NULL);
}

static bool sim_auth_string_is(const json_t *o, const char *name, const char *want)
{
	const json_t *v = json_object_get(o, name);

	return json_is_string(v) && strcmp(json_string_value(v), want) == 0;
}

static bool sim_auth_claims_ok(struct sim_auth *auth, const char *tok, const char *dot1,
			       const char *dot2, int64_t *iat)
{
	json_t *hdr = sim_auth_part_json(tok, (size_t)(dot1 - tok));
	json_t *claims = sim_auth_part_json(dot1 + 1, (size_t)(dot2 - dot1 - 1));
	bool ok = json_is_object(hdr) && json_is_object(claims) &&
		  sim_auth_string_is(hdr, "alg", "ES256") &&
		  sim_auth_string_is(hdr, "kid", auth->key_id) &&
		  sim_auth_string_is(claims, "iss", auth->team_id) &&
		  json_is_integer(json_object_get(claims, "iat"));

	if (ok)
		*iat = json_integer_value(json_object_get(claims, "iat"));
	json_decref(hdr);
	json_decref(claims);
	return ok;
}

/* JWS carries R || S; OpenSSL verifies the DER form. */
static bool sim_auth_signature_ok(struct sim_auth *auth, const char *tok, const char *dot2)
{
	unsigned char raw[64], *der = NULL;
	ECDSA_SIG *sig = NULL;
	BIGNUM *r = NULL, *s = NULL;
	EVP_MD_CTX *md = NULL;
	int derlen;
	bool ok = false;

	if (sim_b64url_decode(dot2 + 1, strlen(dot2 + 1), raw, sizeof(raw)) != 64)
		return false;
	sig = ECDSA_SIG_new();
	r = BN_bin2bn(raw, 32, NULL);
	s = BN_bin2bn(raw + 32, 32, NULL);
	if (!sig || !r || !s || ECDSA_SIG_set0(sig, r, s) != 1)
		goto fail;
	r = s = NULL; /* owned by sig now */
	derlen = i2d_ECDSA_SIG(sig, &der);
	md = EVP_MD_CTX_new();
	if (derlen <= 0 || !md ||
	    EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, auth->pub) != 1)
		goto fail;
	ok = EVP_DigestVerify(md, der, (size_t)derlen, (const unsigned char *)tok,
			      (size_t)(dot2 - tok)) == 1;
fail:
	EVP_MD_CTX_free(md);
	OPENSSL_free(der);
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(sig);
	ERR_clear_error();
	return ok;
}

static void sim_auth_verify(struct sim_auth *auth, const char *tok, struct sim_auth_verdict *v)
{
	const char *dot1 = strchr(tok, '.');
	const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;

	v->reason = "InvalidProviderToken";
	if (!dot2 || strchr(dot2 + 1, '.'))
		return;
	if (!sim_auth_claims_ok(auth, tok, dot1, dot2, &v->iat))
		return;
	if (!sim_auth_signature_ok(auth, tok, dot2))
		return;
	v->reason = NULL;
}

static const struct sim_auth_verdict *sim_auth_lookup(struct sim_auth *auth, const char *tok)
{
	struct sim_auth_verdict *v = sim_map_get(auth->seen, tok);

	if (v)
		return v;
	v = calloc(1, sizeof(*v));
	if (!v)
		return NULL;
	if (auth->pub)
		sim_auth_verify(auth, tok, v);
	if (sim_map_put(auth->seen, tok, v) < 0) {
		free(v);
		return NULL;
	}
	return v;
}

const char *sim_auth_check(struct sim_auth *auth, const char *authorization, int64_t now_s)
{
	const struct sim_auth_verdict *v;
	const char *tok;

	if (!authorization || !*authorization)
		return auth->pub ? "MissingProviderToken" : NULL;
	if (strncasecmp(authorization, "bearer ", 7) != 0)
		return auth->pub ? "InvalidProviderToken" : NULL;
	tok = authorization + 7;
	while (*tok == ' ')
		tok++;
	if (!*tok)
		return auth->pub ? "MissingProviderToken" : NULL;
	v = sim_auth_lookup(auth, tok);
	if (!v)
		return "InternalServerError";
	if (!auth->pub)
		return NULL;
	if (v->reason)
		return v->reason;
	if (now_s - v->iat > SIM_AUTH_MAX_AGE_S)
		return "ExpiredProviderToken";
	return NULL;
}

size_t sim_auth_distinct(const struct sim_auth *auth)
{
	return sim_map_count(auth->seen);
}

void sim_auth_reset(struct sim_auth *auth)
{
	sim_map_clear(auth->seen);
}
