/* Configuration (SPEC §2): parse the JSON file, check every field and the
 * credentials files it names, apply environment overrides, and build one
 * immutable snapshot. Runs on whichever thread loads or reloads; a finished
 * snapshot is read-only and may be shared by all threads. */
#include "pushgw/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "pushgw/log.h"
#include "pushgw/util.h"

#define DEFAULT_FCM_URL "https://fcm.googleapis.com"
#define DEFAULT_TOKEN_URI "https://oauth2.googleapis.com/token"
#define FIELD_MAX 256

/* One load: where problems go and the snapshot being built. Every problem is
 * recorded; config_load() reports the first, config_check() all of them. */
typedef struct loader {
	const char *file; /* the path as the user gave it */
	pgw_config *cfg;
	char *first;
	char *report;
	size_t report_len;
	int problems;
	bool oom;
} loader;

/* ---- problems ---- */

static void report_append(loader *ld, const char *line)
{
	size_t n = strlen(line);
	char *r = realloc(ld->report, ld->report_len + n + 2);

	if (!r) {
		ld->oom = true;
		return;
	}
	memcpy(r + ld->report_len, line, n);
	r[ld->report_len + n] = '\n';
	r[ld->report_len + n + 1] = '\0';
	ld->report = r;
	ld->report_len += n + 1;
}

/* "<file>: <field>: <message>"; field NULL for the file as a whole. */
static void problem(loader *ld, const char *field, const char *fmt, ...)
{
	char msg[768], line[1280], *p;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (field)
		snprintf(line, sizeof line, "%s: %s: %s", ld->file, field, msg);
	else
		snprintf(line, sizeof line, "%s: %s", ld->file, msg);
	/* one problem, one line: names from the file may hold control bytes */
	for (p = line; *p; p++)
		if ((unsigned char)*p < ' ')
			*p = '?';
	ld->problems++;
	if (!ld->first && !(ld->first = strdup(line)))
		ld->oom = true;
	report_append(ld, line);
}

static char *ld_strdup(loader *ld, const char *s)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		ld->oom = true;
	return d;
}

/* Absolute path of a config value: relative ones are relative to the
 * config file's folder. */
static char *ld_path(loader *ld, const char *value)
{
	char *p = pgw_path_join(ld->cfg->dir, value);

	if (!p)
		ld->oom = true;
	return p;
}

static void path_of(char *buf, const char *parent, const char *name)
{
	int n;

	if (parent && *parent)
		n = snprintf(buf, FIELD_MAX, "%s.%s", parent, name);
	else
		n = snprintf(buf, FIELD_MAX, "%s", name);
	/* Only an absurdly long app name gets here: a cut path still reads. */
	if (n >= FIELD_MAX)
		buf[FIELD_MAX - 1] = '\0';
}

/* ---- typed getters: report their own problem, return false on one ---- */

static void check_known_fields(loader *ld, const json_t *obj,
			       const char *parent, const char *const *allowed,
			       const char *expected)
{
	const char *name;
	const char *const *a;
	json_t *v;
	char field[FIELD_MAX];

	json_object_foreach((json_t *)obj, name, v) {
		for (a = allowed; *a; a++)
			if (strcmp(*a, name) == 0)
				break;
		if (*a)
			continue;
		path_of(field, parent, name);
		problem(ld, field, "unknown field (expected one of: %s)", expected);
	}
}

/* An optional object member; *out NULL when absent or null. */
static bool get_object(loader *ld, const json_t *obj, const char *parent,
		       const char *name, const json_t **out)
{
	const json_t *v = json_object_get(obj, name);
	char field[FIELD_MAX];

	*out = NULL;
	if (!v || json_is_null(v))
		return true;
	if (!json_is_object(v)) {
		path_of(field, parent, name);
		problem(ld, field, "expected an object");
		return false;
	}
	*out = v;
	return true;
}

/* An optional string member; *out NULL when absent or null. Empty strings
 * and embedded NULs are refused: neither is ever a meaningful value here. */
static bool get_string(loader *ld, const json_t *obj, const char *parent,
		       const char *name, const char **out)
{
	const json_t *v = json_object_get(obj, name);
	char field[FIELD_MAX];

	*out = NULL;
	if (!v || json_is_null(v))
		return true;
	if (!json_is_string(v) || json_string_length(v) == 0 ||
	    strlen(json_string_value(v)) != json_string_length(v)) {
		path_of(field, parent, name);
		problem(ld, field, "expected a non-empty string");
		return false;
	}
	*out = json_string_value(v);
	return true;
}

static bool get_int(loader *ld, const json_t *obj, const char *parent,
		    const char *name, long long min, long long max,
		    long long *out)
{
	const json_t *v = json_object_get(obj, name);
	char field[FIELD_MAX];

	if (!v || json_is_null(v))
		return true;
	if (!json_is_integer(v) || json_integer_value(v) < min ||
	    json_integer_value(v) > max) {
		path_of(field, parent, name);
		problem(ld, field, "expected an integer from %lld to %lld", min, max);
		return false;
	}
	*out = json_integer_value(v);
	return true;
}

/* An optional boolean member; *out keeps its default when absent or null.
 * Only JSON true/false: "true" or 1 are refused, not guessed at. */
static void get_bool(loader *ld, const json_t *obj, const char *parent,
		     const char *name, bool *out)
{
	const json_t *v = json_object_get(obj, name);
	char field[FIELD_MAX];

	if (!v || json_is_null(v))
		return;
	if (!json_is_boolean(v)) {
		path_of(field, parent, name);
		problem(ld, field, "expected true or false");
		return;
	}
	*out = json_is_true(v);
}

static void get_int_field(loader *ld, const json_t *obj, const char *parent,
			  const char *name, int min, int max, int *out)
{
	long long v = *out;

	if (get_int(ld, obj, parent, name, min, max, &v))
		*out = (int)v;
}

/* ---- small validators ---- */

static bool is_url(const char *s, bool allow_http)
{
	const char *host;

	if (strncmp(s, "https://", 8) == 0)
		host = s + 8;
	else if (allow_http && strncmp(s, "http://", 7) == 0)
		host = s + 7;
	else
		return false;
	if (*host == '\0' || *host == '/' || *host == ':')
		return false;
	for (; *s; s++)
		if (*s <= ' ' || *s > '~')
			return false;
	return true;
}

static bool is_upper_alnum(const char *s, size_t len)
{
	size_t i;

	if (strlen(s) != len)
		return false;
	for (i = 0; i < len; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9')))
			return false;
	return true;
}

static bool chars_in(const char *s, size_t max, const char *extra)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > max)
		return false;
	for (i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || strchr(extra, c)))
			return false;
	}
	return true;
}

static bool is_digits(const char *s, size_t max)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > max)
		return false;
	for (i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* "host:port" or "[v6]:port"; returns why it is not, or NULL. */
static const char *parse_listen(const char *s, char **host, int *port)
{
	const char *colon, *h = s, *he;
	char *end;
	long p;

	if (s[0] == '[') {
		he = strchr(s, ']');
		if (!he || he == s + 1 || he[1] != ':')
			return "expected \"[address]:port\" for IPv6, e.g. [::1]:8080";
		h = s + 1;
		colon = he + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || colon == s)
			return "expected \"host:port\", e.g. 127.0.0.1:8080";
		if (memchr(s, ':', (size_t)(colon - s)))
			return "an IPv6 address needs brackets, e.g. [::1]:8080";
		he = colon;
	}
	for (const char *c = h; c < he; c++)
		if (*c <= ' ' || *c > '~' || *c == '/')
			return "expected \"host:port\", e.g. 127.0.0.1:8080";
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (colon[1] < '0' || colon[1] > '9' || *end || errno || p < 0 || p > 65535)
		return "expected a port from 0 (any free port) to 65535 after ':'";
	*host = strndup(h, (size_t)(he - h));
	*port = (int)p;
	return NULL;
}

/* ---- credentials files ---- */

/* Never prompt on a terminal for an encrypted key's passphrase. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return 0;
}

/* Read a file the config names; field is where it was named. */
static char *read_named_file(loader *ld, const char *field, const char *path)
{
	char *text = NULL;

	if (access(path, R_OK) != 0 ||
	    pgw_read_file(path, &text, NULL) != PGW_OK) {
		problem(ld, field, "cannot read %s: %s", path,
			strerror(errno ? errno : EIO));
		return NULL;
	}
	return text;
}

static bool file_exists(loader *ld, const char *field, const char *path)
{
	if (access(path, R_OK) != 0) {
		problem(ld, field, "cannot read %s: %s", path, strerror(errno));
		return false;
	}
	return true;
}

/* A secret must exist and be closed to other users and, unless root hands
 * it to the service through the file's group, to the group too. */
static char *read_secret(loader *ld, const char *field, const char *path)
{
	char *text = read_named_file(ld, field, path);
	char why[1024];

	if (!text)
		return NULL;
	if (pgw_check_secret_perms(path, why, sizeof why) == PGW_ECONFIG) {
		problem(ld, field, "%s", why);
		free(text);
		return NULL;
	}
	return text;
}

static EVP_PKEY *pem_private_key(const char *pem)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *pkey = NULL;

	if (bio)
		pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	ERR_clear_error();
	return pkey;
}

static bool is_p256(EVP_PKEY *pkey)
{
	char group[64];
	size_t len = 0;

	if (!EVP_PKEY_is_a(pkey, "EC"))
		return false;
	if (!EVP_PKEY_get_group_name(pkey, group, sizeof group, &len))
		return false;
	return strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0;
}

/* Apple's .p8 provider key: kept as PEM text for the signer. */
static char *load_p8(loader *ld, const char *field, const char *path)
{
	char *pem = read_secret(ld, field, path);
	EVP_PKEY *pkey;
	bool ok;

	if (!pem)
		return NULL;
	pkey = pem_private_key(pem);
	if (!pkey) {
		problem(ld, field, "%s is not a PEM private key (expected Apple's .p8, \"-----BEGIN PRIVATE KEY-----\")",
			path);
		free(pem);
		return NULL;
	}
	ok = is_p256(pkey);
	EVP_PKEY_free(pkey);
	if (!ok) {
		problem(ld, field, "%s is not an EC P-256 key (expected Apple's .p8 APNs key)",
			path);
		free(pem);
		return NULL;
	}
	return pem;
}

static X509 *load_cert(loader *ld, const char *field, const char *path)
{
	char *pem = read_named_file(ld, field, path);
	BIO *bio;
	X509 *x = NULL;

	if (!pem)
		return NULL;
	bio = BIO_new_mem_buf(pem, -1);
	if (bio)
		x = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	ERR_clear_error();
	free(pem);
	if (!x)
		problem(ld, field, "%s is not a PEM certificate (\"-----BEGIN CERTIFICATE-----\")",
			path);
	return x;
}

/* A certificate and its private key: both parse and belong together. The
 * key must be closed to others when secret is set. */
static void check_cert_pair(loader *ld, const char *cert_field,
			    const char *cert_path, const char *key_field,
			    const char *key_path, bool secret)
{
	X509 *x = load_cert(ld, cert_field, cert_path);
	char *pem = secret ? read_secret(ld, key_field, key_path)
			   : read_named_file(ld, key_field, key_path);
	EVP_PKEY *pkey = NULL;

	if (!pem)
		goto out;
	pkey = pem_private_key(pem);
	if (!pkey) {
		problem(ld, key_field, "%s is not an unencrypted PEM private key",
			key_path);
		goto out;
	}
	if (x && X509_check_private_key(x, pkey) != 1)
		problem(ld, key_field, "%s is not the private key of %s", key_path,
			cert_path);
	ERR_clear_error();
out:
	EVP_PKEY_free(pkey);
	free(pem);
	X509_free(x);
}

/* ---- listen, tls ---- */

static void parse_listen_field(loader *ld, const json_t *root)
{
	const char *s, *why;
	char *host = NULL;
	int port = 0;

	if (!get_string(ld, root, NULL, "listen", &s) || !s)
		return;
	why = parse_listen(s, &host, &port);
	if (why) {
		problem(ld, "listen", "%s", why);
		return;
	}
	if (!host) {
		ld->oom = true;
		return;
	}
	free(ld->cfg->listen_host);
	ld->cfg->listen_host = host;
	ld->cfg->listen_port = port;
}

static void parse_tls(loader *ld, const json_t *root)
{
	static const char *const fields[] = { "cert_file", "key_file",
					      "client_ca_file", NULL };
	pgw_config *cfg = ld->cfg;
	const char *cert, *key, *ca;
	const json_t *tls;
	X509 *x;

	if (!get_object(ld, root, NULL, "tls", &tls) || !tls)
		return;
	check_known_fields(ld, tls, "tls", fields,
			   "cert_file, key_file, client_ca_file");
	if (!get_string(ld, tls, "tls", "cert_file", &cert) ||
	    !get_string(ld, tls, "tls", "key_file", &key) ||
	    !get_string(ld, tls, "tls", "client_ca_file", &ca))
		return;
	if (!cert || !key) {
		problem(ld, cert ? "tls.key_file" : "tls.cert_file",
			"expected a path: tls needs both cert_file and key_file");
		return;
	}
	cfg->tls_enabled = true;
	cfg->tls_cert_file = ld_path(ld, cert);
	cfg->tls_key_file = ld_path(ld, key);
	if (ca)
		cfg->tls_client_ca_file = ld_path(ld, ca);
	if (ld->oom)
		return;
	check_cert_pair(ld, "tls.cert_file", cfg->tls_cert_file, "tls.key_file",
			cfg->tls_key_file, true);
	if (ca && (x = load_cert(ld, "tls.client_ca_file", cfg->tls_client_ca_file)))
		X509_free(x);
}

/* ---- apps ---- */

static void parse_apns_token_auth(loader *ld, const json_t *o, const char *path,
				  pgw_apns_conf *ac)
{
	char field[FIELD_MAX];
	const char *team, *kid, *file;

	get_string(ld, o, path, "team_id", &team);
	get_string(ld, o, path, "key_id", &kid);
	get_string(ld, o, path, "key_file", &file);
	if (!team || !kid || !file) {
		path_of(field, path, !team ? "team_id" : !kid ? "key_id" : "key_file");
		if (!json_object_get(o, field + strlen(path) + 1))
			problem(ld, field, "required for token auth (team_id, key_id and key_file)");
		return;
	}
	if (!is_upper_alnum(team, 10)) {
		path_of(field, path, "team_id");
		problem(ld, field, "expected a 10-character Apple team id (A-Z, 0-9)");
	}
	if (!is_upper_alnum(kid, 10)) {
		path_of(field, path, "key_id");
		problem(ld, field, "expected a 10-character APNs key id (A-Z, 0-9)");
	}
	ac->team_id = ld_strdup(ld, team);
	ac->key_id = ld_strdup(ld, kid);
	ac->key_file = ld_path(ld, file);
	if (!ac->key_file)
		return;
	path_of(field, path, "key_file");
	ac->key_pem = load_p8(ld, field, ac->key_file);
}

static void parse_apns_cert_auth(loader *ld, const json_t *o, const char *path,
				 pgw_apns_conf *ac)
{
	char cert_field[FIELD_MAX], key_field[FIELD_MAX];
	const char *cert, *key, *team;

	path_of(cert_field, path, "cert_file");
	path_of(key_field, path, "cert_key_file");
	get_string(ld, o, path, "cert_file", &cert);
	get_string(ld, o, path, "cert_key_file", &key);
	if (!cert || !key) {
		const char *missing = cert ? key_field : cert_field;
		if (!json_object_get(o, missing + strlen(path) + 1))
			problem(ld, missing, "required for certificate auth (cert_file and cert_key_file)");
		return;
	}
	/* team_id is optional here; it lets pn-param's team be checked. */
	if (get_string(ld, o, path, "team_id", &team) && team) {
		char field[FIELD_MAX];
		path_of(field, path, "team_id");
		if (!is_upper_alnum(team, 10))
			problem(ld, field, "expected a 10-character Apple team id (A-Z, 0-9)");
		ac->team_id = ld_strdup(ld, team);
	}
	ac->cert_file = ld_path(ld, cert);
	ac->cert_key_file = ld_path(ld, key);
	if (!ac->cert_file || !ac->cert_key_file)
		return;
	check_cert_pair(ld, cert_field, ac->cert_file, key_field,
			ac->cert_key_file, true);
}

static void parse_apns_common(loader *ld, const json_t *o, const char *path,
			      pgw_apns_conf *ac)
{
	char field[FIELD_MAX];
	const char *bundle, *env, *url;
	size_t n;

	path_of(field, path, "bundle_id");
	if (get_string(ld, o, path, "bundle_id", &bundle) && !bundle)
		problem(ld, field, "required: the app's bundle id, e.g. com.example.phone");
	if (bundle && !chars_in(bundle, 155, ".-"))
		problem(ld, field, "expected a bundle id (letters, digits, '.', '-')");
	n = bundle ? strlen(bundle) : 0;
	if (bundle && n > 5 && strcasecmp(bundle + n - 5, ".voip") == 0)
		problem(ld, field, "expected the bundle id without .voip (pushgw adds it for VoIP pushes)");
	ac->bundle_id = ld_strdup(ld, bundle);

	ac->environment = PGW_ENV_PRODUCTION;
	path_of(field, path, "environment");
	if (get_string(ld, o, path, "environment", &env) && env) {
		if (strcmp(env, "sandbox") == 0)
			ac->environment = PGW_ENV_SANDBOX;
		else if (strcmp(env, "production") != 0)
			problem(ld, field, "expected \"production\" or \"sandbox\"");
	}
	path_of(field, path, "url");
	if (get_string(ld, o, path, "url", &url) && url) {
		if (!is_url(url, false))
			problem(ld, field, "expected an https:// URL");
		ac->url = ld_strdup(ld, url);
	}
	path_of(field, path, "sandbox_url");
	if (get_string(ld, o, path, "sandbox_url", &url) && url) {
		if (!is_url(url, false))
			problem(ld, field, "expected an https:// URL");
		ac->sandbox_url = ld_strdup(ld, url);
	}
}

static void parse_apns(loader *ld, const json_t *o, const char *path,
		       pgw_apns_conf *ac)
{
	static const char *const fields[] = { "team_id",   "key_id",
					      "key_file",  "cert_file",
					      "cert_key_file", "bundle_id",
					      "environment", "url", "sandbox_url", NULL };
	bool token, cert;

	ac->enabled = true;
	check_known_fields(ld, o, path, fields,
			   "team_id, key_id, key_file, cert_file, cert_key_file, bundle_id, environment, url, sandbox_url");
	parse_apns_common(ld, o, path, ac);
	token = json_object_get(o, "key_id") || json_object_get(o, "key_file");
	cert = json_object_get(o, "cert_file") || json_object_get(o, "cert_key_file");
	if (token && cert) {
		problem(ld, path, "use token auth (team_id, key_id, key_file) or certificate auth (cert_file, cert_key_file), not both");
		return;
	}
	if (token)
		parse_apns_token_auth(ld, o, path, ac);
	else if (cert)
		parse_apns_cert_auth(ld, o, path, ac);
	else
		problem(ld, path, "expected team_id, key_id and key_file (token auth) or cert_file and cert_key_file (certificate auth)");
}

/* A required string of the service-account JSON. */
static char *sa_string(loader *ld, const char *field, const char *file,
		       const json_t *sa, const char *name)
{
	const json_t *v = json_object_get(sa, name);

	if (!json_is_string(v) || json_string_length(v) == 0) {
		problem(ld, field, "%s: %s: expected a non-empty string", file, name);
		return NULL;
	}
	return ld_strdup(ld, json_string_value(v));
}

static void check_rsa_key(loader *ld, const char *field, const char *file,
			  const char *pem)
{
	EVP_PKEY *pkey = pem_private_key(pem);

	if (!pkey || !EVP_PKEY_is_a(pkey, "RSA"))
		problem(ld, field, "%s: private_key: expected an RSA private key in PEM",
			file);
	EVP_PKEY_free(pkey);
}

static void parse_service_account(loader *ld, const char *field,
				  pgw_fcm_conf *fc)
{
	const char *file = fc->service_account_file;
	char *text = read_secret(ld, field, file);
	const json_t *type;
	json_error_t jerr;
	json_t *sa;

	if (!text)
		return;
	sa = json_loads(text, 0, &jerr);
	free(text);
	if (!json_is_object(sa)) {
		problem(ld, field, "%s: not a service-account JSON object (line %d: %s)",
			file, jerr.line, sa ? "expected an object" : jerr.text);
		json_decref(sa);
		return;
	}
	type = json_object_get(sa, "type");
	if (type && (!json_is_string(type) ||
		     strcmp(json_string_value(type), "service_account") != 0))
		problem(ld, field, "%s: type: expected \"service_account\"", file);
	fc->project_id = sa_string(ld, field, file, sa, "project_id");
	fc->client_email = sa_string(ld, field, file, sa, "client_email");
	fc->private_key = sa_string(ld, field, file, sa, "private_key");
	if (fc->private_key)
		check_rsa_key(ld, field, file, fc->private_key);
	if (json_object_get(sa, "token_uri")) {
		fc->token_uri = sa_string(ld, field, file, sa, "token_uri");
		if (fc->token_uri && !is_url(fc->token_uri, true))
			problem(ld, field, "%s: token_uri: expected an http(s):// URL", file);
	} else {
		fc->token_uri = ld_strdup(ld, DEFAULT_TOKEN_URI);
	}
	json_decref(sa);
}

static void parse_fcm(loader *ld, const json_t *o, const char *path,
		      pgw_fcm_conf *fc)
{
	static const char *const fields[] = { "service_account_file", "url",
					      "sender_id", NULL };
	char field[FIELD_MAX];
	const char *sa, *url, *sender;

	fc->enabled = true;
	check_known_fields(ld, o, path, fields,
			   "service_account_file, url, sender_id");
	path_of(field, path, "url");
	if (get_string(ld, o, path, "url", &url) && url && !is_url(url, false))
		problem(ld, field, "expected an https:// URL");
	fc->url = ld_strdup(ld, url ? url : DEFAULT_FCM_URL);
	path_of(field, path, "sender_id");
	if (get_string(ld, o, path, "sender_id", &sender) && sender) {
		if (!is_digits(sender, 32))
			problem(ld, field, "expected the Firebase sender id (digits only)");
		fc->sender_id = ld_strdup(ld, sender);
	}
	path_of(field, path, "service_account_file");
	if (!get_string(ld, o, path, "service_account_file", &sa))
		return;
	if (!sa) {
		problem(ld, field, "required: the path of the Google service-account JSON");
		return;
	}
	fc->service_account_file = ld_path(ld, sa);
	if (fc->service_account_file)
		parse_service_account(ld, field, fc);
}

static bool set_string(loader *ld, const json_t *o, const char *path,
		       const char *name, char **slot)
{
	const json_t *v = json_object_get(o, name);
	char field[FIELD_MAX];
	char *d;

	if (!v || json_is_null(v))
		return true;
	/* "" is a meaningful sound (none), so empty strings are fine here. */
	if (!json_is_string(v) ||
	    strlen(json_string_value(v)) != json_string_length(v)) {
		path_of(field, path, name);
		problem(ld, field, "expected a string");
		return false;
	}
	d = ld_strdup(ld, json_string_value(v));
	if (!d)
		return false;
	free(*slot);
	*slot = d;
	return true;
}

static void parse_strings(loader *ld, const json_t *app_obj, const char *app_path,
			  pgw_app_strings *st)
{
	static const char *const fields[] = { "call", "missed",
					      "answered_elsewhere",
					      "declined_elsewhere", "sound", NULL };
	char path[FIELD_MAX];
	const json_t *o;

	st->call = ld_strdup(ld, "IC_MSG");
	st->missed = ld_strdup(ld, "IC_MISSED");
	st->answered_elsewhere = ld_strdup(ld, "IC_ANSWERED_ELSEWHERE");
	st->declined_elsewhere = ld_strdup(ld, "IC_DECLINED_ELSEWHERE");
	st->sound = ld_strdup(ld, "");
	if (!get_object(ld, app_obj, app_path, "strings", &o) || !o)
		return;
	path_of(path, app_path, "strings");
	check_known_fields(ld, o, path, fields,
			   "call, missed, answered_elsewhere, declined_elsewhere, sound");
	set_string(ld, o, path, "call", &st->call);
	set_string(ld, o, path, "missed", &st->missed);
	set_string(ld, o, path, "answered_elsewhere", &st->answered_elsewhere);
	set_string(ld, o, path, "declined_elsewhere", &st->declined_elsewhere);
	set_string(ld, o, path, "sound", &st->sound);
}

static void parse_app(loader *ld, const char *name, const json_t *o,
		      pgw_app_conf *app)
{
	static const char *const fields[] = { "apns", "fcm", "payload", "strings",
					      "ring_repeat_s", "voip_cancel", NULL };
	char path[FIELD_MAX], field[FIELD_MAX];
	const json_t *apns, *fcm;
	const char *payload;

	snprintf(path, sizeof path, "apps.%s", name);
	app->name = ld_strdup(ld, name);
	parse_strings(ld, o, path, &app->strings);
	if (!chars_in(name, 64, "_.-"))
		problem(ld, path, "expected an app name of 1 to 64 letters, digits, '_', '.', '-'");
	check_known_fields(ld, o, path, fields,
			   "apns, fcm, payload, strings, ring_repeat_s, voip_cancel");
	path_of(field, path, "payload");
	if (get_string(ld, o, path, "payload", &payload) && payload) {
		if (strcmp(payload, "linphone") == 0)
			app->payload = PGW_PAYLOAD_LINPHONE;
		else if (strcmp(payload, "pushgw") != 0)
			problem(ld, field, "expected \"pushgw\" or \"linphone\"");
	}
	get_int_field(ld, o, path, "ring_repeat_s", 0, 60, &app->ring_repeat_s);
	get_bool(ld, o, path, "voip_cancel", &app->voip_cancel);
	get_object(ld, o, path, "apns", &apns);
	get_object(ld, o, path, "fcm", &fcm);
	if (apns) {
		path_of(field, path, "apns");
		parse_apns(ld, apns, field, &app->apns);
	}
	if (fcm) {
		path_of(field, path, "fcm");
		parse_fcm(ld, fcm, field, &app->fcm);
	}
	if (!json_object_get(o, "apns") && !json_object_get(o, "fcm"))
		problem(ld, path, "expected an apns or fcm section (or both)");
}

static void parse_apps(loader *ld, const json_t *root)
{
	pgw_config *cfg = ld->cfg;
	const json_t *apps, *v;
	const char *name;
	size_t n;

	if (!get_object(ld, root, NULL, "apps", &apps))
		return;
	n = apps ? json_object_size(apps) : 0;
	if (n == 0) {
		problem(ld, "apps", "expected at least one app, e.g. \"apps\": {\"phone\": {\"apns\": {…}}}");
		return;
	}
	cfg->apps = calloc(n, sizeof *cfg->apps);
	if (!cfg->apps) {
		ld->oom = true;
		return;
	}
	json_object_foreach((json_t *)apps, name, v) {
		pgw_app_conf *app = &cfg->apps[cfg->n_apps++];
		char path[FIELD_MAX];

		snprintf(path, sizeof path, "apps.%s", name);
		if (!json_is_object(v)) {
			app->name = ld_strdup(ld, name);
			parse_strings(ld, v, path, &app->strings);
			problem(ld, path, "expected an object");
			continue;
		}
		parse_app(ld, name, v, app);
	}
}

/* ---- api_keys ---- */

static bool hex_decode(const char *hex, unsigned char *out, size_t n)
{
	size_t i;

	if (strlen(hex) != 2 * n || !pgw_is_hex(hex))
		return false;
	for (i = 0; i < n; i++) {
		unsigned v;
		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return false;
		out[i] = (unsigned char)v;
	}
	return true;
}

/* Value of "env:VARNAME", or NULL with a problem reported. */
static const char *env_reference(loader *ld, const char *field, const char *ref)
{
	const char *var = ref + 4, *val;

	if (!chars_in(var, 128, "_")) {
		problem(ld, field, "expected env:VARNAME with a variable name after env:");
		return NULL;
	}
	val = getenv(var);
	if (!val || !*val) {
		problem(ld, field, "environment variable %s is not set or empty", var);
		return NULL;
	}
	return val;
}

static void parse_key_secret(loader *ld, const json_t *o, const char *path,
			     pgw_api_key *key)
{
	char field[FIELD_MAX];
	const char *s, *val;

	path_of(field, path, "key");
	if (!get_string(ld, o, path, "key", &s))
		return;
	if (!s) {
		problem(ld, field, "required: \"sha256:<hex>\" from `pushgw hash-key KEY`, or \"env:VARNAME\"");
		return;
	}
	if (strncmp(s, "sha256:", 7) == 0) {
		if (!hex_decode(s + 7, key->hash, sizeof key->hash))
			problem(ld, field, "expected sha256: followed by 64 hex digits");
		return;
	}
	if (strncmp(s, "env:", 4) == 0) {
		if ((val = env_reference(ld, field, s)))
			pgw_sha256(val, strlen(val), key->hash);
		return;
	}
	/* Never echo the value: it is probably the secret itself. */
	problem(ld, field, "a plaintext key is not accepted: run `pushgw hash-key KEY` and use the \"sha256:…\" it prints (or \"env:VARNAME\")");
}

static void parse_key_scopes(loader *ld, const json_t *o, const char *path,
			     pgw_api_key *key)
{
	const json_t *arr = json_object_get(o, "scopes"), *v;
	char field[FIELD_MAX];
	size_t i;

	key->scopes = PGW_SCOPE_WAKE | PGW_SCOPE_REGISTER;
	if (!arr || json_is_null(arr))
		return;
	path_of(field, path, "scopes");
	if (!json_is_array(arr) || json_array_size(arr) == 0) {
		problem(ld, field, "expected a non-empty array of \"wake\" and/or \"register\"");
		return;
	}
	key->scopes = 0;
	json_array_foreach(arr, i, v) {
		const char *s = json_string_value(v);
		char item[FIELD_MAX + 32];

		if (s && strcmp(s, "wake") == 0) {
			key->scopes |= PGW_SCOPE_WAKE;
			continue;
		}
		if (s && strcmp(s, "register") == 0) {
			key->scopes |= PGW_SCOPE_REGISTER;
			continue;
		}
		snprintf(item, sizeof item, "%s[%zu]", field, i);
		problem(ld, item, "expected \"wake\" or \"register\"");
	}
}

static void parse_key_apps(loader *ld, const json_t *o, const char *path,
			   pgw_api_key *key)
{
	const json_t *arr = json_object_get(o, "apps"), *v;
	char field[FIELD_MAX];
	size_t i;

	if (!arr || json_is_null(arr))
		return;
	path_of(field, path, "apps");
	if (!json_is_array(arr) || json_array_size(arr) == 0) {
		problem(ld, field, "expected a non-empty array of app names (leave apps out to allow every app)");
		return;
	}
	key->apps = calloc(json_array_size(arr), sizeof *key->apps);
	if (!key->apps) {
		ld->oom = true;
		return;
	}
	json_array_foreach(arr, i, v) {
		const char *s = json_string_value(v);
		char item[FIELD_MAX + 32];

		snprintf(item, sizeof item, "%s[%zu]", field, i);
		if (!s || !config_app_find(ld->cfg, s)) {
			problem(ld, item, "expected the name of an app configured under \"apps\"");
			continue;
		}
		key->apps[key->n_apps++] = ld_strdup(ld, s);
	}
}

static void parse_key_callback_secret(loader *ld, const json_t *o,
				      const char *path, pgw_api_key *key)
{
	char field[FIELD_MAX];
	const char *s;

	if (!get_string(ld, o, path, "callback_secret", &s) || !s)
		return;
	path_of(field, path, "callback_secret");
	if (strncmp(s, "env:", 4) == 0)
		s = env_reference(ld, field, s);
	key->callback_secret = ld_strdup(ld, s);
}

static void parse_key(loader *ld, const json_t *o, size_t idx, pgw_api_key *key)
{
	static const char *const fields[] = { "name", "key", "scopes", "apps",
					      "callback_secret", NULL };
	char path[FIELD_MAX], field[FIELD_MAX];
	const char *name;

	snprintf(path, sizeof path, "api_keys[%zu]", idx);
	if (!json_is_object(o)) {
		problem(ld, path, "expected an object with name and key");
		return;
	}
	check_known_fields(ld, o, path, fields,
			   "name, key, scopes, apps, callback_secret");
	path_of(field, path, "name");
	if (get_string(ld, o, path, "name", &name)) {
		if (!name)
			problem(ld, field, "required: a name for the key, e.g. \"pbx-east\"");
		else if (strlen(name) > 64)
			problem(ld, field, "expected at most 64 characters");
		key->name = ld_strdup(ld, name);
	}
	parse_key_secret(ld, o, path, key);
	parse_key_scopes(ld, o, path, key);
	parse_key_apps(ld, o, path, key);
	parse_key_callback_secret(ld, o, path, key);
}

static void check_key_duplicates(loader *ld)
{
	static const unsigned char zero[32];
	const pgw_config *cfg = ld->cfg;
	size_t i, j;
	char field[FIELD_MAX];

	for (i = 0; i < cfg->n_keys; i++) {
		for (j = 0; j < i; j++) {
			const pgw_api_key *a = &cfg->keys[j], *b = &cfg->keys[i];
			if (a->name && b->name && strcmp(a->name, b->name) == 0) {
				snprintf(field, sizeof field, "api_keys[%zu].name", i);
				problem(ld, field, "duplicate key name \"%s\" (also api_keys[%zu])",
					b->name, j);
			}
			if (memcmp(a->hash, zero, 32) != 0 &&
			    memcmp(a->hash, b->hash, 32) == 0) {
				snprintf(field, sizeof field, "api_keys[%zu].key", i);
				problem(ld, field, "same key as api_keys[%zu]: every key must be different",
					j);
			}
		}
	}
}

static void parse_api_keys(loader *ld, const json_t *root)
{
	pgw_config *cfg = ld->cfg;
	const json_t *arr = json_object_get(root, "api_keys"), *v;
	size_t i;

	if (!arr || json_is_null(arr))
		return;
	if (!json_is_array(arr)) {
		problem(ld, "api_keys", "expected an array of {\"name\", \"key\", …}");
		return;
	}
	if (json_array_size(arr) == 0)
		return;
	cfg->keys = calloc(json_array_size(arr), sizeof *cfg->keys);
	if (!cfg->keys) {
		ld->oom = true;
		return;
	}
	json_array_foreach(arr, i, v)
		parse_key(ld, v, cfg->n_keys++, &cfg->keys[i]);
	check_key_duplicates(ld);
}

/* ---- upstream, registry, limits, log ---- */

static void parse_upstream(loader *ld, const json_t *root)
{
	static const char *const fields[] = { "ca_file", "connections",
					      "ping_interval_s",
					      "request_timeout_ms", NULL };
	pgw_config *cfg = ld->cfg;
	const json_t *o;
	const char *ca;

	if (!get_object(ld, root, NULL, "upstream", &o) || !o)
		return;
	check_known_fields(ld, o, "upstream", fields,
			   "ca_file, connections, ping_interval_s, request_timeout_ms");
	if (get_string(ld, o, "upstream", "ca_file", &ca) && ca) {
		cfg->upstream_ca_file = ld_path(ld, ca);
		if (cfg->upstream_ca_file)
			file_exists(ld, "upstream.ca_file", cfg->upstream_ca_file);
	}
	get_int_field(ld, o, "upstream", "connections", 1, 64,
		      &cfg->upstream_connections);
	get_int_field(ld, o, "upstream", "ping_interval_s", 5, 3600,
		      &cfg->upstream_ping_interval_s);
	get_int_field(ld, o, "upstream", "request_timeout_ms", 100, 60000,
		      &cfg->upstream_request_timeout_ms);
}

static bool is_postgres_url(const char *s)
{
	return strncmp(s, "postgresql://", 13) == 0 ||
	       strncmp(s, "postgres://", 11) == 0;
}

static void parse_registry(loader *ld, const json_t *root)
{
	static const char *const fields[] = { "path", "url", NULL };
	pgw_config *cfg = ld->cfg;
	const char *path, *url;
	const json_t *o;

	if (!get_object(ld, root, NULL, "registry", &o) || !o)
		return;
	check_known_fields(ld, o, "registry", fields, "path, url");
	if (!get_string(ld, o, "registry", "path", &path) ||
	    !get_string(ld, o, "registry", "url", &url))
		return;
	if (path && url) {
		problem(ld, "registry", "set registry.path or registry.url, not both");
		return;
	}
	if (url) {
		if (!is_postgres_url(url))
			problem(ld, "registry.url", "expected a postgresql:// or postgres:// URL");
		free(cfg->registry_path);
		cfg->registry_path = NULL;
		cfg->registry_url = ld_strdup(ld, url);
	} else if (path) {
		free(cfg->registry_path);
		cfg->registry_path = ld_path(ld, path);
	}
}

static void parse_limits(loader *ld, const json_t *root)
{
	static const char *const fields[] = { "max_body_bytes",
					      "max_devices_per_wake",
					      "wakes_per_second_per_key",
					      "max_pending_callbacks_per_key", NULL };
	pgw_config *cfg = ld->cfg;
	long long body = (long long)cfg->max_body_bytes;
	const json_t *o;

	if (!get_object(ld, root, NULL, "limits", &o) || !o)
		return;
	check_known_fields(ld, o, "limits", fields,
			   "max_body_bytes, max_devices_per_wake, wakes_per_second_per_key, "
			   "max_pending_callbacks_per_key");
	if (get_int(ld, o, "limits", "max_body_bytes", 1024, 16 * 1024 * 1024, &body))
		cfg->max_body_bytes = (size_t)body;
	get_int_field(ld, o, "limits", "max_devices_per_wake", 1, 10000,
		      &cfg->max_devices_per_wake);
	get_int_field(ld, o, "limits", "wakes_per_second_per_key", 0, 1000000,
		      &cfg->wakes_per_second_per_key);
	get_int_field(ld, o, "limits", "max_pending_callbacks_per_key", 1, 1000000,
		      &cfg->max_pending_callbacks_per_key);
}

static void parse_log(loader *ld, const json_t *root)
{
	static const char *const fields[] = { "level", "format", NULL };
	const char *level, *format;
	const json_t *o;
	int lv;

	if (!get_object(ld, root, NULL, "log", &o) || !o)
		return;
	check_known_fields(ld, o, "log", fields, "level, format");
	if (get_string(ld, o, "log", "level", &level) && level) {
		lv = pgw_log_level_parse(level);
		if (lv < 0)
			problem(ld, "log.level", "expected debug, info, warn or error");
		else
			ld->cfg->log_level = lv;
	}
	if (get_string(ld, o, "log", "format", &format) && format) {
		if (strcmp(format, "text") == 0)
			ld->cfg->log_text = true;
		else if (strcmp(format, "json") != 0)
			problem(ld, "log.format", "expected \"json\" or \"text\"");
	}
}

/* ---- sip (the SIP edge, docs/sip-edge.md) ---- */

/* "udp:HOST:PORT", "tcp:…" or "tls:…"; returns why it is not, or NULL. */
static const char *parse_sip_listen(const char *s, pgw_sip_listen *out)
{
	static const char *const names[] = { "udp:", "tcp:", "tls:" };
	size_t i;

	for (i = 0; i < 3; i++)
		if (strncmp(s, names[i], 4) == 0)
			break;
	if (i == 3)
		return "expected \"udp:HOST:PORT\", \"tcp:HOST:PORT\" or \"tls:HOST:PORT\"";
	out->transport = (pgw_sip_transport)i;
	return parse_listen(s + 4, &out->host, &out->port);
}

static bool parse_cidr(const char *s, pgw_cidr *out)
{
	char addr[64], *slash, *end;
	long prefix;
	size_t n = strlen(s);

	if (n == 0 || n >= sizeof addr)
		return false;
	memcpy(addr, s, n + 1);
	slash = strchr(addr, '/');
	if (slash)
		*slash = '\0';
	memset(out, 0, sizeof *out);
	if (inet_pton(AF_INET, addr, out->addr) == 1)
		out->family = AF_INET;
	else if (inet_pton(AF_INET6, addr, out->addr) == 1)
		out->family = AF_INET6;
	else
		return false;
	out->prefix = out->family == AF_INET ? 32 : 128;
	if (slash) {
		errno = 0;
		prefix = strtol(slash + 1, &end, 10);
		if (slash[1] < '0' || slash[1] > '9' || *end || errno || prefix < 0 ||
		    prefix > out->prefix)
			return false;
		out->prefix = (int)prefix;
	}
	return true;
}

bool config_cidr_contains(const pgw_cidr *c, int family, const void *addr)
{
	const unsigned char *a = addr;
	int full = c->prefix / 8, rest = c->prefix % 8;

	if (c->family != family)
		return false;
	if (memcmp(c->addr, a, (size_t)full) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((c->addr[full] ^ a[full]) & (0xff << (8 - rest))) == 0;
}

/* A SIP or SIPS URI without blanks; the SIP edge parses it fully. */
static bool is_sip_uri(const char *s)
{
	if (strncasecmp(s, "sip:", 4) != 0 && strncasecmp(s, "sips:", 5) != 0)
		return false;
	s += s[3] == ':' ? 4 : 5;
	if (*s == '\0' || *s == ';' || *s == ':')
		return false;
	for (; *s; s++)
		if (*s <= ' ' || *s > '~' || *s == '<' || *s == '>')
			return false;
	return true;
}

static void parse_sip_listeners(loader *ld, const json_t *o)
{
	pgw_sip_conf *sc = &ld->cfg->sip;
	const json_t *arr = json_object_get(o, "listen"), *v;
	char field[FIELD_MAX];
	const char *why;
	size_t i;

	if (!arr || !json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) > 16) {
		problem(ld, "sip.listen",
			"expected an array of 1 to 16 strings like \"udp:0.0.0.0:5060\"");
		return;
	}
	sc->listen = calloc(json_array_size(arr), sizeof *sc->listen);
	if (!sc->listen) {
		ld->oom = true;
		return;
	}
	json_array_foreach(arr, i, v) {
		snprintf(field, sizeof field, "sip.listen[%zu]", i);
		if (!json_is_string(v)) {
			problem(ld, field, "expected a string like \"udp:0.0.0.0:5060\"");
			continue;
		}
		why = parse_sip_listen(json_string_value(v), &sc->listen[sc->n_listen]);
		if (why) {
			problem(ld, field, "%s", why);
			continue;
		}
		if (!sc->listen[sc->n_listen].host) {
			ld->oom = true;
			return;
		}
		sc->n_listen++;
	}
}

static void parse_sip_tls(loader *ld, const json_t *o)
{
	static const char *const fields[] = { "cert_file", "key_file", NULL };
	pgw_sip_conf *sc = &ld->cfg->sip;
	const char *cert, *key;
	const json_t *tls;
	bool wanted = false;
	size_t i;

	for (i = 0; i < sc->n_listen; i++)
		wanted |= sc->listen[i].transport == PGW_SIP_TLS;
	if (!get_object(ld, o, "sip", "tls", &tls))
		return;
	if (!tls) {
		if (wanted)
			problem(ld, "sip.tls", "expected {\"cert_file\", \"key_file\"}: a tls: listener needs them");
		return;
	}
	check_known_fields(ld, tls, "sip.tls", fields, "cert_file, key_file");
	if (!get_string(ld, tls, "sip.tls", "cert_file", &cert) ||
	    !get_string(ld, tls, "sip.tls", "key_file", &key))
		return;
	if (!cert || !key) {
		problem(ld, cert ? "sip.tls.key_file" : "sip.tls.cert_file",
			"expected a path: sip.tls needs both cert_file and key_file");
		return;
	}
	sc->tls_cert_file = ld_path(ld, cert);
	sc->tls_key_file = ld_path(ld, key);
	if (ld->oom)
		return;
	check_cert_pair(ld, "sip.tls.cert_file", sc->tls_cert_file, "sip.tls.key_file",
			sc->tls_key_file, true);
}

static void parse_sip_sources(loader *ld, const json_t *o)
{
	pgw_sip_conf *sc = &ld->cfg->sip;
	const json_t *arr = json_object_get(o, "backend_sources"), *v;
	char field[FIELD_MAX];
	size_t i;

	if (!arr || json_is_null(arr))
		return;
	if (!json_is_array(arr) || json_array_size(arr) > 256) {
		problem(ld, "sip.backend_sources",
			"expected an array of at most 256 CIDRs like \"203.0.113.10/32\"");
		return;
	}
	sc->backend_sources = calloc(json_array_size(arr) + 1, sizeof *sc->backend_sources);
	if (!sc->backend_sources) {
		ld->oom = true;
		return;
	}
	json_array_foreach(arr, i, v) {
		snprintf(field, sizeof field, "sip.backend_sources[%zu]", i);
		if (!json_is_string(v) ||
		    !parse_cidr(json_string_value(v), &sc->backend_sources[sc->n_backend_sources])) {
			problem(ld, field, "expected an address or CIDR like \"203.0.113.10/32\" or \"2001:db8::/64\"");
			continue;
		}
		sc->n_backend_sources++;
	}
}

static void parse_sip(loader *ld, const json_t *root)
{
	static const char *const fields[] = { "listen", "tls", "public_host", "backend",
					      "backend_sources", "app", "ring_timeout_s", NULL };
	pgw_sip_conf *sc = &ld->cfg->sip;
	const char *host, *backend, *app;
	const json_t *o;

	if (!get_object(ld, root, NULL, "sip", &o) || !o)
		return;
	sc->enabled = true;
	sc->ring_timeout_s = 30;
	check_known_fields(ld, o, "sip", fields,
			   "listen, tls, public_host, backend, backend_sources, app, ring_timeout_s");
	parse_sip_listeners(ld, o);
	parse_sip_tls(ld, o);
	if (get_string(ld, o, "sip", "public_host", &host)) {
		if (!host || !chars_in(host, 253, ".-:[]"))
			problem(ld, "sip.public_host",
				"expected the host name or address phones and the PBX reach pushgw at, e.g. \"push.example.com\"");
		else
			sc->public_host = ld_strdup(ld, host);
	}
	if (get_string(ld, o, "sip", "backend", &backend)) {
		if (!backend || !is_sip_uri(backend))
			problem(ld, "sip.backend",
				"expected the PBX's SIP URI, e.g. \"sip:pbx.example.com:5060;transport=udp\"");
		else
			sc->backend = ld_strdup(ld, backend);
	}
	parse_sip_sources(ld, o);
	if (get_string(ld, o, "sip", "app", &app) && app) {
		if (!config_app_find(ld->cfg, app))
			problem(ld, "sip.app", "expected the name of an app in apps (\"%s\" is not one)", app);
		else
			sc->app = ld_strdup(ld, app);
	}
	get_int_field(ld, o, "sip", "ring_timeout_s", 1, 600, &sc->ring_timeout_s);
}

/* ---- environment overrides ---- */

static const char *env_set(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

static void apply_env(loader *ld)
{
	pgw_config *cfg = ld->cfg;
	const char *v, *why;
	char *host = NULL;
	int port, lv;

	if ((v = env_set("PUSHGW_LISTEN"))) {
		why = parse_listen(v, &host, &port);
		if (why) {
			problem(ld, "environment variable PUSHGW_LISTEN", "%s", why);
		} else if (host) {
			free(cfg->listen_host);
			cfg->listen_host = host;
			cfg->listen_port = port;
		} else {
			ld->oom = true;
		}
	}
	if ((v = env_set("PUSHGW_LOG_LEVEL"))) {
		lv = pgw_log_level_parse(v);
		if (lv < 0)
			problem(ld, "environment variable PUSHGW_LOG_LEVEL",
				"expected debug, info, warn or error");
		else
			cfg->log_level = lv;
	}
	/* A shared database is a deliberate choice: PUSHGW_REGISTRY_URL sets
	 * it, and the file path (which the container image sets by default)
	 * moves only a file registry, never replaces a configured URL. */
	if ((v = env_set("PUSHGW_REGISTRY_URL"))) {
		if (!is_postgres_url(v)) {
			problem(ld, "environment variable PUSHGW_REGISTRY_URL",
				"expected a postgresql:// or postgres:// URL");
		} else {
			free(cfg->registry_path);
			free(cfg->registry_url);
			cfg->registry_path = NULL;
			cfg->registry_url = ld_strdup(ld, v);
		}
	}
	if ((v = env_set("PUSHGW_REGISTRY_PATH")) && !cfg->registry_url) {
		free(cfg->registry_path);
		cfg->registry_path = ld_path(ld, v);
	}
}

/* ---- load ---- */

static bool set_defaults(loader *ld)
{
	pgw_config *cfg = ld->cfg;

	cfg->listen_host = ld_strdup(ld, "127.0.0.1");
	cfg->listen_port = 8080;
	cfg->upstream_connections = 2;
	cfg->upstream_ping_interval_s = 60;
	cfg->upstream_request_timeout_ms = 5000;
	cfg->registry_path = ld_path(ld, "pushgw.db");
	cfg->max_body_bytes = 65536;
	cfg->max_devices_per_wake = 100;
	cfg->wakes_per_second_per_key = 200;
	cfg->max_pending_callbacks_per_key = 1000;
	cfg->shutdown_grace_s = 10;
	cfg->log_level = PGW_LOG_INFO;
	return !ld->oom;
}

static bool locate_file(loader *ld, const char *path)
{
	pgw_config *cfg = ld->cfg;
	char *slash;

	cfg->path = realpath(path, NULL);
	if (!cfg->path) {
		if (errno == ENOMEM)
			ld->oom = true;
		else
			problem(ld, NULL, "cannot read the config file: %s", strerror(errno));
		return false;
	}
	cfg->dir = ld_strdup(ld, cfg->path);
	if (!cfg->dir)
		return false;
	slash = strrchr(cfg->dir, '/');
	if (slash)
		slash[slash == cfg->dir ? 1 : 0] = '\0';
	return true;
}

static void parse_root(loader *ld, const json_t *root)
{
	static const char *const fields[] = {
		"listen",   "tls",    "api_keys",	  "apps", "upstream",
		"registry", "limits", "shutdown_grace_s", "log",  "sip", NULL,
	};

	check_known_fields(ld, root, NULL, fields,
			   "listen, tls, api_keys, apps, upstream, registry, limits, shutdown_grace_s, log, sip");
	parse_listen_field(ld, root);
	parse_tls(ld, root);
	/* apps first: api_keys[].apps refer to them */
	parse_apps(ld, root);
	parse_api_keys(ld, root);
	parse_upstream(ld, root);
	parse_registry(ld, root);
	parse_limits(ld, root);
	get_int_field(ld, root, NULL, "shutdown_grace_s", 0, 300,
		      &ld->cfg->shutdown_grace_s);
	parse_log(ld, root);
	parse_sip(ld, root); /* after apps: sip.app names one */
}

/* Build ld->cfg from path, recording every problem in ld. */
static void load(loader *ld, const char *path)
{
	json_error_t jerr;
	json_t *root;

	ld->cfg = calloc(1, sizeof *ld->cfg);
	if (!ld->cfg) {
		ld->oom = true;
		return;
	}
	if (!locate_file(ld, path) || !set_defaults(ld))
		return;
	root = json_load_file(ld->cfg->path, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		problem(ld, NULL, "line %d, column %d: %s", jerr.line, jerr.column,
			jerr.text);
		return;
	}
	if (!json_is_object(root))
		problem(ld, NULL, "expected a JSON object at the top level");
	else
		parse_root(ld, root);
	json_decref(root);
	apply_env(ld);
}

pgw_err config_load(const char *path, pgw_config **out, char *errbuf, size_t errlen)
{
	loader ld = { .file = path };
	pgw_err err = PGW_OK;

	*out = NULL;
	if (errlen)
		errbuf[0] = '\0';
	load(&ld, path);
	if (ld.oom)
		err = PGW_ENOMEM;
	else if (ld.problems)
		err = PGW_ECONFIG;
	if (err == PGW_OK) {
		*out = ld.cfg;
		ld.cfg = NULL;
	} else if (errlen) {
		snprintf(errbuf, errlen, "%s",
			 ld.first ? ld.first : "out of memory while loading the config");
	}
	config_free(ld.cfg);
	free(ld.first);
	free(ld.report);
	return err;
}

pgw_err config_check(const char *path, char **report)
{
	loader ld = { .file = path };
	pgw_err err;

	load(&ld, path);
	err = ld.oom ? PGW_ENOMEM : ld.problems ? PGW_ECONFIG : PGW_OK;
	*report = ld.report ? ld.report : strdup("");
	config_free(ld.cfg);
	free(ld.first);
	return err;
}

/* ---- snapshot ---- */

static void app_free(pgw_app_conf *app)
{
	free(app->name);
	free(app->apns.team_id);
	free(app->apns.key_id);
	free(app->apns.key_file);
	free(app->apns.key_pem);
	free(app->apns.cert_file);
	free(app->apns.cert_key_file);
	free(app->apns.bundle_id);
	free(app->apns.url);
	free(app->apns.sandbox_url);
	free(app->fcm.service_account_file);
	free(app->fcm.url);
	free(app->fcm.sender_id);
	free(app->fcm.project_id);
	free(app->fcm.client_email);
	free(app->fcm.private_key);
	free(app->fcm.token_uri);
	free(app->strings.call);
	free(app->strings.missed);
	free(app->strings.answered_elsewhere);
	free(app->strings.declined_elsewhere);
	free(app->strings.sound);
}

static void key_free(pgw_api_key *key)
{
	size_t i;

	free(key->name);
	for (i = 0; i < key->n_apps; i++)
		free(key->apps[i]);
	free(key->apps);
	free(key->callback_secret);
}

void config_free(pgw_config *cfg)
{
	size_t i;

	if (!cfg)
		return;
	for (i = 0; i < cfg->n_apps; i++)
		app_free(&cfg->apps[i]);
	free(cfg->apps);
	for (i = 0; i < cfg->n_keys; i++)
		key_free(&cfg->keys[i]);
	free(cfg->keys);
	free(cfg->path);
	free(cfg->dir);
	free(cfg->listen_host);
	free(cfg->tls_cert_file);
	free(cfg->tls_key_file);
	free(cfg->tls_client_ca_file);
	free(cfg->upstream_ca_file);
	free(cfg->registry_path);
	free(cfg->registry_url);
	for (i = 0; i < cfg->sip.n_listen; i++)
		free(cfg->sip.listen[i].host);
	free(cfg->sip.listen);
	free(cfg->sip.tls_cert_file);
	free(cfg->sip.tls_key_file);
	free(cfg->sip.public_host);
	free(cfg->sip.backend);
	free(cfg->sip.backend_sources);
	free(cfg->sip.app);
	free(cfg);
}

const pgw_app_conf *config_app_find(const pgw_config *cfg, const char *name)
{
	size_t i;

	if (!cfg || !name)
		return NULL;
	for (i = 0; i < cfg->n_apps; i++)
		if (cfg->apps[i].name && strcmp(cfg->apps[i].name, name) == 0)
			return &cfg->apps[i];
	return NULL;
}

bool config_key_allows_app(const pgw_api_key *key, const pgw_app_conf *app)
{
	size_t i;

	if (!key || !app || !app->name)
		return false;
	if (key->n_apps == 0)
		return true;
	for (i = 0; i < key->n_apps; i++)
		if (key->apps[i] && strcmp(key->apps[i], app->name) == 0)
			return true;
	return false;
}

void config_hash_key(const char *key, char *out, size_t n)
{
	unsigned char digest[32];
	char hex[65];

	pgw_sha256(key, strlen(key), digest);
	pgw_hex(digest, sizeof digest, hex);
	snprintf(out, n, "sha256:%s", hex);
}
