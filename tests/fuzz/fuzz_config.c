/* libFuzzer target: config_load() and config_check() on arbitrary bytes
 * written as the config file, run from a folder holding valid credentials
 * files (so a fuzzed config that names them goes all the way through key and
 * certificate checks). Single-threaded; the folder is made once at start-up. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fuzzcheck.h"
#include "fuzzenv.h"

#define CONFIG_NAME "pushgw.json"

/* libFuzzer's entry points take no context: the folder lives here. */
static fuzzenv *env;

static void cleanup(void)
{
	fuzzenv_free(env);
}

/* prefix + cwd + "/" + s, kept for the whole process (it becomes argv). */
static char *absolute(const char *cwd, const char *prefix, const char *s)
{
	char *out = NULL;

	if (asprintf(&out, "%s%s/%s", prefix, cwd, s) < 0)
		abort();
	return out;
}

/* libFuzzer reads its arguments after this returns, from the folder we move
 * to: make the paths in them absolute first, and send crash reproducers to
 * where the fuzzer was started rather than into the temporary folder. */
static void absolutize_args(int *argc, char ***argv, const char *cwd)
{
	static const char *const path_flags[] = {"-artifact_prefix=", "-dict=",
						 "-exact_artifact_path=", NULL};
	char **args = calloc((size_t)*argc + 2, sizeof *args);
	bool has_prefix = false;
	int i, j;

	if (!args)
		abort();
	for (i = 0; i < *argc; i++) {
		const char *a = (*argv)[i];
		args[i] = (*argv)[i];
		if (i > 0 && a[0] != '-' && a[0] != '/') {
			args[i] = absolute(cwd, "", a);
			continue;
		}
		for (j = 0; path_flags[j]; j++) {
			size_t n = strlen(path_flags[j]);
			if (strncmp(a, path_flags[j], n) != 0)
				continue;
			has_prefix |= j == 0;
			if (a[n] != '/') {
				char flag[32];
				snprintf(flag, sizeof flag, "%.*s", (int)n, a);
				args[i] = absolute(cwd, flag, a + n);
			}
		}
	}
	if (!has_prefix)
		args[(*argc)++] = absolute(cwd, "-artifact_prefix=", "");
	*argv = args;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char cwd[4096];

	if (!getcwd(cwd, sizeof cwd))
		abort();
	absolutize_args(argc, argv, cwd);
	env = fuzzenv_new();
	/* relative names in fuzzed configs resolve against the config's folder */
	if (chdir(fuzzenv_dir(env)) != 0)
		abort();
	atexit(cleanup);
	return 0;
}

static void check_apps(const pgw_config *cfg)
{
	size_t i;

	FUZZ_ASSERT(cfg->n_apps >= 1);
	for (i = 0; i < cfg->n_apps; i++) {
		const pgw_app_conf *a = &cfg->apps[i];
		const pgw_apns_conf *ac = &a->apns;
		const pgw_fcm_conf *fc = &a->fcm;

		FUZZ_ASSERT(a->name && config_app_find(cfg, a->name) != NULL);
		FUZZ_ASSERT(ac->enabled || fc->enabled);
		FUZZ_ASSERT(a->strings.call && a->strings.missed && a->strings.answered_elsewhere &&
			    a->strings.declined_elsewhere && a->strings.sound);
		if (ac->enabled) {
			FUZZ_ASSERT(ac->bundle_id && ac->environment != PGW_ENV_UNSET);
			FUZZ_ASSERT((ac->team_id && ac->key_id && ac->key_file && ac->key_pem) ||
				    (ac->cert_file && ac->cert_key_file));
		}
		if (fc->enabled)
			FUZZ_ASSERT(fc->service_account_file && fc->url && fc->project_id &&
				    fc->client_email && fc->private_key && fc->token_uri);
	}
}

static void check_keys(const pgw_config *cfg)
{
	size_t i, j;

	for (i = 0; i < cfg->n_keys; i++) {
		const pgw_api_key *k = &cfg->keys[i];

		FUZZ_ASSERT(k->name && k->scopes != 0);
		for (j = 0; j < k->n_apps; j++)
			FUZZ_ASSERT(config_app_find(cfg, k->apps[j]) != NULL);
		for (j = 0; j < cfg->n_apps; j++)
			config_key_allows_app(k, &cfg->apps[j]);
	}
}

/* What config.h promises of a snapshot that loaded. */
static void check_snapshot(const pgw_config *cfg)
{
	FUZZ_ASSERT(cfg->path && cfg->dir && cfg->listen_host);
	FUZZ_ASSERT(cfg->listen_port >= 0 && cfg->listen_port <= 65535);
	FUZZ_ASSERT(!cfg->tls_enabled || (cfg->tls_cert_file && cfg->tls_key_file));
	FUZZ_ASSERT(cfg->upstream_connections >= 1 && cfg->upstream_connections <= 64);
	FUZZ_ASSERT(!(cfg->registry_path && cfg->registry_url));
	FUZZ_ASSERT(cfg->max_devices_per_wake >= 1 && cfg->max_body_bytes >= 1);
	check_apps(cfg);
	check_keys(cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char errbuf[2048], *report = NULL, *nl;
	pgw_config *cfg = NULL;
	pgw_err load_rc, check_rc;

	fuzzenv_write(env, CONFIG_NAME, data, size);
	load_rc = config_load(CONFIG_NAME, &cfg, errbuf, sizeof errbuf);
	if (load_rc == PGW_OK) {
		FUZZ_ASSERT(cfg != NULL);
		check_snapshot(cfg);
		config_free(cfg);
	} else {
		FUZZ_ASSERT(load_rc == PGW_ECONFIG && cfg == NULL);
		FUZZ_ASSERT(strncmp(errbuf, CONFIG_NAME ": ", strlen(CONFIG_NAME) + 2) == 0);
	}
	/* --check reads the same file: it must agree, and its first line is the
	 * one problem config_load() reports */
	check_rc = config_check(CONFIG_NAME, &report);
	FUZZ_ASSERT((check_rc == PGW_OK) == (load_rc == PGW_OK));
	if (load_rc != PGW_OK) {
		FUZZ_ASSERT(report && (nl = strchr(report, '\n')) != NULL);
		FUZZ_ASSERT((size_t)(nl - report) == strlen(errbuf) &&
			    strncmp(report, errbuf, strlen(errbuf)) == 0);
	}
	free(report);
	return 0;
}
