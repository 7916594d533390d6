/* pushgw entry point: command line (SPEC §1), start-up in dependency order,
 * and the signal loop. Signals are blocked in every thread and taken here
 * with sigwait(), so handlers never run inside library code. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pushgw/callback.h"
#include "pushgw/config.h"
#include "pushgw/evloop.h"
#include "pushgw/http_api.h"
#include "pushgw/log.h"
#include "pushgw/metrics.h"
#include "pushgw/registry.h"
#include "pushgw/upstream.h"
#include "pushgw/util.h"

#ifndef PUSHGW_VERSION
#define PUSHGW_VERSION "0.1.0"
#endif

static const char usage[] =
	"usage: pushgw [-c FILE]            run the gateway\n"
	"       pushgw -c FILE --check      validate the config and credentials, exit 0/1\n"
	"       pushgw hash-key KEY         print \"sha256:<hex>\" for api_keys[].key\n"
	"       pushgw --version | --help\n"
	"\n"
	"The config defaults to $PUSHGW_CONFIG, then ./pushgw.json, then /etc/pushgw/pushgw.json.\n";

typedef struct cli {
	const char *config;
	bool check;
} cli;

static int parse_cli(int argc, char **argv, cli *out)
{
	int i;

	memset(out, 0, sizeof *out);
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
			if (++i >= argc) {
				fprintf(stderr, "pushgw: %s needs a file\n%s", a, usage);
				return 2;
			}
			out->config = argv[i];
		} else if (strcmp(a, "--check") == 0) {
			out->check = true;
		} else {
			fprintf(stderr, "pushgw: unknown argument \"%s\"\n%s", a, usage);
			return 2;
		}
	}
	return 0;
}

static const char *default_config(void)
{
	const char *env = getenv("PUSHGW_CONFIG");

	if (env && *env)
		return env;
	if (access("pushgw.json", F_OK) == 0)
		return "pushgw.json";
	return "/etc/pushgw/pushgw.json";
}

static int run_check(const char *path)
{
	char *report = NULL;
	pgw_err rc = config_check(path, &report);

	if (rc == PGW_OK) {
		printf("%s: ok\n", path);
		free(report);
		return 0;
	}
	fprintf(stderr, "%s", report ? report : "out of memory\n");
	if (report && report[0] && report[strlen(report) - 1] != '\n')
		fputc('\n', stderr);
	free(report);
	return 1;
}

static void describe_metrics(void)
{
	metrics_describe("pushgw_http_requests_total", "counter", "HTTP requests by route and status.");
	metrics_describe("pushgw_wakes_total", "counter", "Wakes and cancels answered.");
	metrics_describe("pushgw_pushes_total", "counter", "Per-device push results by provider, app and status.");
	metrics_describe("pushgw_wake_duration_seconds", "histogram", "Time from request to answer of a wake.");
}

static void log_startup(const pgw_config *cfg, int port)
{
	char addr[300], napps[16], nkeys[16];

	snprintf(addr, sizeof addr, "%s:%d", cfg->listen_host, port);
	snprintf(napps, sizeof napps, "%zu", cfg->n_apps);
	snprintf(nkeys, sizeof nkeys, "%zu", cfg->n_keys);
	pgw_log(PGW_LOG_INFO, "pushgw listening", "addr", addr, "tls", cfg->tls_enabled ? "on" : "off",
		"config", cfg->path, "apps", napps, "api_keys", nkeys, "version", PUSHGW_VERSION, NULL);
}

/* Returns the signal that ended the wait. */
static int wait_for_stop(const sigset_t *set)
{
	int sig;

	for (;;) {
		if (sigwait(set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			pgw_log(PGW_LOG_WARN, "SIGHUP: reload is not supported by this version; restart to apply config changes", NULL);
			continue;
		}
		return sig;
	}
}

static int run(const char *path)
{
	pgw_config *cfg = NULL;
	evloop *loop = NULL;
	upstream *up = NULL;
	registry *reg = NULL;
	callbacks *cbs = NULL;
	http_api *api = NULL;
	http_api_deps deps;
	char err[512];
	sigset_t set;
	int status = 1, sig;

	if (config_load(path, &cfg, err, sizeof err) != PGW_OK) {
		fprintf(stderr, "pushgw: %s\n", err);
		return 1;
	}
	pgw_log_set_level((pgw_log_level)cfg->log_level);
	pgw_log_set_text(cfg->log_text);
	describe_metrics();

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (registry_open(cfg, &reg, err, sizeof err) != PGW_OK) {
		fprintf(stderr, "pushgw: %s\n", err);
		goto out;
	}
	if (evloop_new(&loop) != PGW_OK) {
		fprintf(stderr, "pushgw: cannot create the event loop\n");
		goto out;
	}
	if (upstream_new(cfg, loop, &up, err, sizeof err) != PGW_OK) {
		fprintf(stderr, "pushgw: %s: %s\n", cfg->path, err);
		goto out;
	}
	if (evloop_start(loop) != PGW_OK) {
		fprintf(stderr, "pushgw: cannot start the event loop\n");
		goto out;
	}
	if (callbacks_new(cfg->upstream_ca_file, &cbs) != PGW_OK) {
		fprintf(stderr, "pushgw: cannot start the callback sender\n");
		goto out;
	}
	deps = (http_api_deps){cfg, loop, up, reg, cbs};
	if (http_api_start(&deps, &api, err, sizeof err) != PGW_OK) {
		fprintf(stderr, "pushgw: %s\n", err);
		goto out;
	}
	log_startup(cfg, http_api_port(api));

	sig = wait_for_stop(&set);
	pgw_log(PGW_LOG_INFO, "stopping: draining in-flight wakes", "signal", strsignal(sig), NULL);
	if (!http_api_drain(api, cfg->shutdown_grace_s * 1000))
		pgw_log(PGW_LOG_WARN, "grace period over with wakes still in flight", NULL);
	status = 0;
out:
	/* Stop the loop, then end what is still in flight (failed/shutting_down)
	 * so every suspended request gets its answer before the server stops. */
	if (loop)
		evloop_stop(loop);
	upstream_free(up);
	if (api)
		http_api_drain(api, 2000);
	http_api_free(api);
	callbacks_free(cbs);
	registry_close(reg);
	evloop_free(loop);
	if (status == 0)
		pgw_log(PGW_LOG_INFO, "stopped", NULL);
	config_free(cfg);
	metrics_reset();
	return status;
}

int main(int argc, char **argv)
{
	cli c;
	int rc;

	if (argc >= 2 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)) {
		printf("pushgw %s\n", PUSHGW_VERSION);
		return 0;
	}
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		fputs(usage, stdout);
		return 0;
	}
	if (argc >= 2 && strcmp(argv[1], "hash-key") == 0) {
		char out[80];
		if (argc != 3 || !argv[2][0]) {
			fprintf(stderr, "pushgw: hash-key needs exactly one non-empty KEY\n%s", usage);
			return 2;
		}
		config_hash_key(argv[2], out, sizeof out);
		printf("%s\n", out);
		return 0;
	}
	if ((rc = parse_cli(argc, argv, &c)) != 0)
		return rc;
	if (!c.config)
		c.config = default_config();
	if (c.check)
		return run_check(c.config);
	return run(c.config);
}
