/* Service accounts and their assertions (see sim_sa.h). Verifying costs one
 * RSA signature check per token request, which is cheap next to the TLS
 * handshake a client makes to reach us, so nothing is cached. Event loop
 * thread only once started. */
#include "sim_sa.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "sim_util.h"

#define SIM_SA_MAX 32
#define SIM_SA_MAX_PART 4096
#define SIM_SA_MAX_SIG 1024
#define SIM_SA_SKEW_S 300
#define SIM_SA_MAX_LIFETIME_S 3600

/* Google's own words where they are known. */
#define SIM_SA_BAD_SIGNATURE "Invalid JWT Signature."
#define SIM_SA_BAD_TIME                                                                   \
	"Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable " \
	"timeframe. Check your iat and exp values in the JWT claim."

struct sim_sa_account {
	char *email; /* NULL: any issuer */
	EVP_PKEY *key;
};

struct sim_sa {
	struct sim_sa_account accounts[SIM_SA_MAX];
	size_t count;
};

struct sim_sa *sim_sa_new(void)
{
	return calloc(1, sizeof(struct sim_sa));
}

void sim_sa_free(struct sim_sa *sa)
{
	size_t i;

	if (!sa)
		return;
	for (i = 0; i < sa->count; i++) {
		free(sa->accounts[i].email);
		EVP_PKEY_free(sa->accounts[i].key);
	}
	free(sa);
}

size_t sim_sa_count(const struct sim_sa *sa)
{
	return sa->count;
}

/* Takes key (freed on failure too). */
static int sim_sa_add(struct sim_sa *sa, const char *email, EVP_PKEY *key, char *err,
		      size_t errlen)
{
	struct sim_sa_account *a;

	if (sa->count == SIM_SA_MAX) {
		snprintf(err, errlen, "at most %d service accounts", SIM_SA_MAX);
		EVP_PKEY_free(key);
		return -1;
	}
	a = &sa->accounts[sa->count];
	a->email = email ? strdup(email) : NULL;
	if (email && !a->email) {
		snprintf(err, errlen, "out of memory");
		EVP_PKEY_free(key);
		return -1;
	}
	a->key = key;
	sa->count++;
	return 0;
}

static const char *sim_sa_json_string(const json_t *o, const char *name)
{
	const json_t *v = json_object_get(o, name);

	return json_is_string(v) && json_string_length(v) ? json_string_value(v) : NULL;
}

static EVP_PKEY *sim_sa_private_key(const char *pem)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;

	BIO_free(bio);
	ERR_clear_error();
	if (key && !EVP_PKEY_is_a(key, "RSA")) {
		EVP_PKEY_free(key);
		return NULL;
	}
	return key;
}

int sim_sa_add_json(struct sim_sa *sa, const char *path, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *doc = json_load_file(path, 0, &jerr);
	const char *type, *email, *pem;
	EVP_PKEY *key;
	int rv = -1;

	if (!doc) {
		snprintf(err, errlen, "--service-account %s: %s", path, jerr.text);
		return -1;
	}
	type = sim_sa_json_string(doc, "type");
	email = sim_sa_json_string(doc, "client_email");
	pem = sim_sa_json_string(doc, "private_key");
	if (!type || strcmp(type, "service_account") != 0)
		snprintf(err, errlen, "--service-account %s: type: expected \"service_account\"",
			 path);
	else if (!email)
		snprintf(err, errlen, "--service-account %s: client_email: expected a string",
			 path);
	else if (!pem || !(key = sim_sa_private_key(pem)))
		snprintf(err, errlen,
			 "--service-account %s: private_key: expected an RSA key in PEM", path);
	else
		rv = sim_sa_add(sa, email, key, err, errlen);
	json_decref(doc);
	return rv;
}

int sim_sa_add_pub(struct sim_sa *sa, const char *spec, char *err, size_t errlen)
{
	const char *eq = strchr(spec, '=');
	const char *file = spec;
	char email[256] = "";
	EVP_PKEY *key;
	FILE *f;

	/* Only an e-mail address before the '=' makes it a prefix: a file
	 * name may hold an '=' too. */
	if (eq && memchr(spec, '@', (size_t)(eq - spec))) {
		if ((size_t)(eq - spec) >= sizeof(email)) {
			snprintf(err, errlen, "--sa-pub: e-mail address too long");
			return -1;
		}
		memcpy(email, spec, (size_t)(eq - spec));
		file = eq + 1;
	}
	f = fopen(file, "r");
	if (!f) {
		snprintf(err, errlen, "--sa-pub: cannot open '%s'", file);
		return -1;
	}
	key = PEM_read_PUBKEY(f, NULL, NULL, NULL);
	fclose(f);
	ERR_clear_error();
	if (!key || !EVP_PKEY_is_a(key, "RSA")) {
		snprintf(err, errlen, "--sa-pub: '%s' is not an RSA public key in PEM", file);
		EVP_PKEY_free(key);
		return -1;
	}
	return sim_sa_add(sa, email[0] ? email : NULL, key, err, errlen);
}

/* ---- assertions ---- */

struct sim_sa_jws {
	const char *input; /* "header.claims", what the signature covers */
	size_t input_len;
	json_t *header;
	json_t *claims;
	unsigned char sig[SIM_SA_MAX_SIG];
	size_t sig_len;
};

static json_t *sim_sa_part(const char *p, size_t n)
{
	unsigned char raw[SIM_SA_MAX_PART];
	ssize_t len = sim_b64url_decode(p, n, raw, sizeof(raw));

	if (len < 0)
		return NULL;
	return json_loadb((const char *)raw, (size_t)len, 0, NULL);
}

static bool sim_sa_split(const char *tok, struct sim_sa_jws *jws)
{
	const char *dot1 = strchr(tok, '.');
	const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
	ssize_t n;

	if (!dot2 || strchr(dot2 + 1, '.'))
		return false;
	jws->input = tok;
	jws->input_len = (size_t)(dot2 - tok);
	jws->header = sim_sa_part(tok, (size_t)(dot1 - tok));
	jws->claims = sim_sa_part(dot1 + 1, (size_t)(dot2 - dot1 - 1));
	n = sim_b64url_decode(dot2 + 1, strlen(dot2 + 1), jws->sig, sizeof(jws->sig));
	if (n <= 0)
		return false;
	jws->sig_len = (size_t)n;
	return json_is_object(jws->header) && json_is_object(jws->claims);
}

static bool sim_sa_signed_by(EVP_PKEY *key, const struct sim_sa_jws *jws)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	bool ok = md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
		  EVP_DigestVerify(md, jws->sig, jws->sig_len, (const unsigned char *)jws->input,
				   jws->input_len) == 1;

	EVP_MD_CTX_free(md);
	ERR_clear_error();
	return ok;
}

/* NULL when an account named iss (or an any-issuer key) signed it. */
static const char *sim_sa_check_signature(const struct sim_sa *sa, const char *iss,
					  const struct sim_sa_jws *jws)
{
	bool known = false;
	size_t i;

	if (!sa->count)
		return NULL;
	for (i = 0; i < sa->count; i++) {
		const struct sim_sa_account *a = &sa->accounts[i];

		if (a->email && strcmp(a->email, iss) != 0)
			continue;
		known = true;
		if (sim_sa_signed_by(a->key, jws))
			return NULL;
	}
	return known ? SIM_SA_BAD_SIGNATURE : "Invalid grant: account not found";
}

/* aud is "https://HOST[:PORT]PATH" with PATH the token endpoint's. */
static bool sim_sa_aud_ok(const char *aud, const char *token_path)
{
	const char *path;

	if (!aud || strncmp(aud, "https://", 8) != 0)
		return false;
	path = strchr(aud + 8, '/');
	return path && path > aud + 8 && strcmp(path, token_path) == 0;
}

static bool sim_sa_scope_ok(const char *scope)
{
	const char *p = scope;

	while (p && *p) {
		size_t n = strcspn(p, " ");

		if ((n == strlen(SIM_SA_SCOPE_FCM) && strncmp(p, SIM_SA_SCOPE_FCM, n) == 0) ||
		    (n == strlen(SIM_SA_SCOPE_CLOUD) && strncmp(p, SIM_SA_SCOPE_CLOUD, n) == 0))
			return true;
		p += n;
		p += strspn(p, " ");
	}
	return false;
}

static bool sim_sa_times_ok(const json_t *claims, int64_t now_s)
{
	const json_t *iat_v = json_object_get(claims, "iat");
	const json_t *exp_v = json_object_get(claims, "exp");
	int64_t iat, exp;

	if (!json_is_number(iat_v) || !json_is_number(exp_v))
		return false;
	iat = (int64_t)json_number_value(iat_v);
	exp = (int64_t)json_number_value(exp_v);
	return iat >= now_s - SIM_SA_SKEW_S && iat <= now_s + SIM_SA_SKEW_S && exp > now_s &&
	       exp > iat && exp - iat <= SIM_SA_MAX_LIFETIME_S;
}

static void sim_sa_fail(struct sim_sa_verdict *v, const char *error, const char *description)
{
	v->error = error;
	v->description = description;
}

static void sim_sa_check_claims(const struct sim_sa *sa, const struct sim_sa_jws *jws,
				const char *token_path, int64_t now_s, struct sim_sa_verdict *v)
{
	const char *alg = json_string_value(json_object_get(jws->header, "alg"));
	const char *iss = json_string_value(json_object_get(jws->claims, "iss"));
	const char *bad;

	if (!alg || strcmp(alg, "RS256") != 0) {
		sim_sa_fail(v, "invalid_grant", SIM_SA_BAD_SIGNATURE);
		return;
	}
	if (!iss || !*iss) {
		sim_sa_fail(v, "invalid_grant", "Invalid JWT: no iss (the account's e-mail).");
		return;
	}
	snprintf(v->iss, sizeof(v->iss), "%s", iss);
	bad = sim_sa_check_signature(sa, iss, jws);
	if (bad) {
		sim_sa_fail(v, "invalid_grant", bad);
		return;
	}
	if (!sim_sa_aud_ok(json_string_value(json_object_get(jws->claims, "aud")), token_path)) {
		sim_sa_fail(v, "invalid_grant",
			    "Invalid JWT: Failed audience check. The expected value is the "
			    "account's token_uri (this server's token endpoint).");
		return;
	}
	if (!sim_sa_scope_ok(json_string_value(json_object_get(jws->claims, "scope")))) {
		sim_sa_fail(v, "invalid_scope",
			    "Invalid OAuth scope or ID token audience provided.");
		return;
	}
	if (!sim_sa_times_ok(jws->claims, now_s))
		sim_sa_fail(v, "invalid_grant", SIM_SA_BAD_TIME);
}

void sim_sa_check(const struct sim_sa *sa, const char *assertion, const char *token_path,
		  int64_t now_s, struct sim_sa_verdict *v)
{
	struct sim_sa_jws jws = { 0 };

	memset(v, 0, sizeof(*v));
	if (!sim_sa_split(assertion, &jws))
		sim_sa_fail(v, "invalid_grant", "Invalid JWT: not a signed JWT in compact form.");
	else
		sim_sa_check_claims(sa, &jws, token_path, now_s, v);
	json_decref(jws.header);
	json_decref(jws.claims);
}
