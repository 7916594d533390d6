/* Support shared by the libFuzzer targets: a private temporary folder holding
 * credentials generated at start-up (APNs .p8, service-account JSON, a TLS
 * certificate and key) so config_load() meets real, valid files.
 * Single-threaded: libFuzzer runs one input at a time, and each target keeps
 * its environment for the whole process. */
#ifndef PUSHGW_FUZZENV_H
#define PUSHGW_FUZZENV_H

#include <stddef.h>

#include "pushgw/config.h"

typedef struct fuzzenv fuzzenv;

/* Names of the files every environment holds, relative to its folder. The
 * .p8, the keys and the service account are mode 0600 as config_load()
 * demands; FUZZENV_OPEN_P8 is the same .p8 left readable by others. The
 * certificate is self-signed and also serves as a CA file. */
#define FUZZENV_P8 "AuthKey_KEY1234567.p8"
#define FUZZENV_OPEN_P8 "AuthKey_OPEN.p8"
#define FUZZENV_SERVICE_ACCOUNT "service-account.json"
#define FUZZENV_CERT "server.pem"
#define FUZZENV_CERT_KEY "server.key"
/* An RSA key that belongs to no certificate and is no APNs key. */
#define FUZZENV_RSA_KEY "other.key"
/* The service account's project id and the environment variable that an
 * "env:" API key may name. */
#define FUZZENV_PROJECT "example-droid"
#define FUZZENV_KEY_VAR "PUSHGW_FUZZ_KEY"

/* Generate the keys and write the folder. Never fails: a harness that cannot
 * set up must not fuzz, so it aborts instead. Also silences pushgw's logs and
 * fixes jansson's hash seed so runs are reproducible. Free with
 * fuzzenv_free(), which removes the folder. */
fuzzenv *fuzzenv_new(void);
/* Accepts NULL. */
void fuzzenv_free(fuzzenv *env);

/* Absolute path of the folder. */
const char *fuzzenv_dir(const fuzzenv *env);
/* PEM of the generated RSA key (the service account's private_key). */
const char *fuzzenv_rsa_pem(const fuzzenv *env);

/* Write len bytes to name inside the folder (mode 0600); aborts on failure. */
void fuzzenv_write(const fuzzenv *env, const char *name, const void *data, size_t len);

/* Write json as name in the folder and load it; aborts when it does not load
 * (the targets' fixed configs must be valid). Caller frees with config_free(). */
pgw_config *fuzzenv_load_config(const fuzzenv *env, const char *name, const char *json);

/* "sha256:<hex>" of key, for the api_keys of a fixed config (out: 72 bytes). */
void fuzzenv_key_hash(const char *key, char out[72]);

#endif
