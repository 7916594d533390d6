/* Fuzzing environment: generates an EC P-256 key (APNs .p8), an RSA key
 * (service account) and a self-signed certificate with OpenSSL, writes them
 * to a private temporary folder and loads the targets' fixed configs from it.
 * Runs once per fuzzer process, before the first input; single-threaded. */
#include "fuzzenv.h"

#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pushgw/log.h"

struct fuzzenv {
	char dir[256];
	char *ec_pem;
	char *rsa_pem;
	char *cert_pem;
};

static _Noreturn void die(const char *what)
{
	fprintf(stderr, "fuzzenv: %s\n", what);
	abort();
}

/* PEM text of whatever write_fn puts into a memory BIO. */
static char *bio_text(BIO *bio)
{
	char *data = NULL, *copy;
	long n = BIO_get_mem_data(bio, &data);

	if (n <= 0 || !(copy = malloc((size_t)n + 1)))
		die("cannot read a PEM back from memory");
	memcpy(copy, data, (size_t)n);
	copy[n] = '\0';
	return copy;
}

static char *private_key_pem(EVP_PKEY *pkey)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *pem;

	/* PKCS#8 ("BEGIN PRIVATE KEY"), the form of Apple's .p8 files */
	if (!bio || !PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL))
		die("cannot write a private key");
	pem = bio_text(bio);
	BIO_free(bio);
	return pem;
}

static char *self_signed_cert_pem(EVP_PKEY *pkey)
{
	X509 *x = X509_new();
	X509_NAME *name;
	BIO *bio;
	char *pem;

	if (!x || !X509_set_version(x, 2) || !ASN1_INTEGER_set(X509_get_serialNumber(x), 1) ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), 0) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), 365L * 86400) || !X509_set_pubkey(x, pkey))
		die("cannot build a certificate");
	name = X509_get_subject_name(x);
	if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost",
					-1, -1, 0) ||
	    !X509_set_issuer_name(x, name) || !X509_sign(x, pkey, EVP_sha256()))
		die("cannot sign a certificate");
	bio = BIO_new(BIO_s_mem());
	if (!bio || !PEM_write_bio_X509(bio, x))
		die("cannot write a certificate");
	pem = bio_text(bio);
	BIO_free(bio);
	X509_free(x);
	return pem;
}

static void make_keys(fuzzenv *env)
{
	EVP_PKEY *ec = EVP_EC_gen("P-256");
	EVP_PKEY *rsa = EVP_RSA_gen(2048);

	if (!ec || !rsa)
		die("cannot generate keys");
	env->ec_pem = private_key_pem(ec);
	env->rsa_pem = private_key_pem(rsa);
	env->cert_pem = self_signed_cert_pem(ec);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(rsa);
}

static void write_mode(const fuzzenv *env, const char *name, const void *data, size_t len,
		       mode_t mode)
{
	char path[512];
	const char *p = data;
	int fd;

	snprintf(path, sizeof path, "%s/%s", env->dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		die("cannot create a file in the temporary folder");
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w <= 0)
			die("cannot write a file in the temporary folder");
		p += w;
		len -= (size_t)w;
	}
	/* the umask may have kept bits we asked for; be exact either way */
	if (fchmod(fd, mode) != 0)
		die("cannot set a file's mode");
	close(fd);
}

void fuzzenv_write(const fuzzenv *env, const char *name, const void *data, size_t len)
{
	write_mode(env, name, data, len, 0600);
}

static void write_service_account(const fuzzenv *env)
{
	json_t *sa = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", "service_account",
			       "project_id", FUZZENV_PROJECT, "private_key_id", "0123456789abcdef",
			       "private_key", env->rsa_pem, "client_email",
			       "pushgw@" FUZZENV_PROJECT ".iam.gserviceaccount.com", "token_uri",
			       "https://oauth2.example.test/token");
	char *text = sa ? json_dumps(sa, JSON_INDENT(2)) : NULL;

	if (!text)
		die("cannot build the service-account JSON");
	fuzzenv_write(env, FUZZENV_SERVICE_ACCOUNT, text, strlen(text));
	free(text);
	json_decref(sa);
}

static void write_files(const fuzzenv *env)
{
	fuzzenv_write(env, FUZZENV_P8, env->ec_pem, strlen(env->ec_pem));
	write_mode(env, FUZZENV_OPEN_P8, env->ec_pem, strlen(env->ec_pem), 0644);
	write_mode(env, FUZZENV_CERT, env->cert_pem, strlen(env->cert_pem), 0644);
	fuzzenv_write(env, FUZZENV_CERT_KEY, env->ec_pem, strlen(env->ec_pem));
	fuzzenv_write(env, FUZZENV_RSA_KEY, env->rsa_pem, strlen(env->rsa_pem));
	write_service_account(env);
}

fuzzenv *fuzzenv_new(void)
{
	fuzzenv *env = calloc(1, sizeof *env);
	const char *tmp = getenv("TMPDIR");

	if (!env)
		die("out of memory");
	/* above every level: parsers log on the error paths the fuzzer loves */
	pgw_log_set_level((pgw_log_level)(PGW_LOG_ERROR + 1));
	json_object_seed(1);
	/* the config's environment overrides would make runs depend on the shell */
	unsetenv("PUSHGW_LISTEN");
	unsetenv("PUSHGW_LOG_LEVEL");
	unsetenv("PUSHGW_REGISTRY_PATH");
	setenv(FUZZENV_KEY_VAR, "fuzz-env-key", 1);
	snprintf(env->dir, sizeof env->dir, "%s/pushgw-fuzz-XXXXXX",
		 tmp && *tmp ? tmp : P_tmpdir);
	if (!mkdtemp(env->dir))
		die("cannot create a temporary folder");
	make_keys(env);
	write_files(env);
	return env;
}

void fuzzenv_free(fuzzenv *env)
{
	DIR *d;
	struct dirent *e;
	char path[512];

	if (!env)
		return;
	d = opendir(env->dir);
	while (d && (e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof path, "%s/%s", env->dir, e->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
	rmdir(env->dir);
	free(env->ec_pem);
	free(env->rsa_pem);
	free(env->cert_pem);
	free(env);
}

const char *fuzzenv_dir(const fuzzenv *env)
{
	return env->dir;
}

const char *fuzzenv_rsa_pem(const fuzzenv *env)
{
	return env->rsa_pem;
}

pgw_config *fuzzenv_load_config(const fuzzenv *env, const char *name, const char *json)
{
	char path[512], errbuf[1024];
	pgw_config *cfg = NULL;

	fuzzenv_write(env, name, json, strlen(json));
	snprintf(path, sizeof path, "%s/%s", env->dir, name);
	if (config_load(path, &cfg, errbuf, sizeof errbuf) != PGW_OK) {
		fprintf(stderr, "fuzzenv: fixed config does not load: %s\n", errbuf);
		abort();
	}
	return cfg;
}

void fuzzenv_key_hash(const char *key, char out[72])
{
	config_hash_key(key, out, 72);
}
