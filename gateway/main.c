/* pushgw entry point: command line (SPEC §1), start-up in dependency order,
 * and the signal loop. Signals are blocked in every thread and taken here
 * with sigwait(), so handlers never run inside library code. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pushgw/callback.h"
#include "pushgw/config.h"
#include "pushgw/evloop.h"
#include "pushgw/h2pool.h"
#include "pushgw/http_api.h"
#include "pushgw/log.h"
#include "pushgw/metrics.h"
#include "pushgw/registry.h"
#include "pushgw/sipedge.h"
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
	metrics_describe("pushgw_build_info", "gauge", "Always 1; the version is in the label.");
	metrics_gauge("pushgw_build_info", "version=\"" PUSHGW_VERSION "\"", 1);
	metrics_describe("pushgw_http_requests_total", "counter", "HTTP requests by route and status.");
	metrics_describe("pushgw_wakes_total", "counter", "Wakes and cancels answered.");
	metrics_describe("pushgw_pushes_total", "counter", "Per-device push results by provider, app and status.");
	metrics_describe("pushgw_wake_duration_seconds", "histogram", "Time from request to answer of a wake.");
	metrics_describe("pushgw_upstream_latency_seconds", "histogram", "Time from first send to APNs/FCM to its final answer, per push.");
	metrics_describe("pushgw_upstream_connections", "gauge", "Open, ready HTTP/2 connections to APNs, FCM and OAuth.");
	metrics_describe("pushgw_upstream_streams_active", "gauge", "HTTP/2 streams in flight upstream.");
	metrics_describe("pushgw_upstream_queued", "gauge", "Upstream requests waiting for a free stream.");
	metrics_describe("pushgw_upstream_tls_handshakes_total", "counter", "TLS handshakes completed with APNs, FCM and OAuth.");
	metrics_describe("pushgw_token_refreshes_total", "counter", "APNs provider tokens signed and FCM OAuth tokens fetched.");
	metrics_describe("pushgw_registry_devices", "gauge", "Devices in the registry.");
	metrics_describe("pushgw_registry_pruned_total", "counter", "Dead tokens dropped from the registry: the whole device (pruned=\"device\"), or only an iOS alert token of a device that keeps its VoIP token (pruned=\"remote_token\").");
	metrics_describe("pushgw_registrations_total", "counter", "Device registrations by result (created, replaced).");
	metrics_describe("pushgw_wakes_in_flight", "gauge", "Wakes waiting for upstream answers.");
	metrics_describe("pushgw_callbacks_total", "counter", "Result callbacks by outcome (delivered, failed).");
	metrics_describe("pushgw_callback_retries_total", "counter", "Result callback attempts that will be retried.");
	metrics_describe("pushgw_ringing", "gauge", "Alert-only devices whose call alert is being repeated (ring_repeat_s).");
	metrics_describe("pushgw_ring_repeats_total", "counter", "Repeated call alerts sent to alert-only devices.");
	metrics_describe("pushgw_http_slow_connections_closed_total", "counter", "Connections closed because a request was not in within 10 s of its first line, or its first line within 35 s.");
	metrics_describe("pushgw_callbacks_pending", "gauge", "Async wakes whose result callback is not yet delivered or given up (the callback queue).");
	metrics_describe("pushgw_upstream_retries_total", "counter", "Upstream retries of a push after a 5xx, 429, lost connection or timeout: result=\"retried\", or \"budget_exhausted\" when the origin's retry budget (about a fifth of its recent requests) was spent and the push kept its last answer.");
	metrics_describe("pushgw_sip_registrations_total", "counter", "REGISTERs through the SIP edge by result (created, refreshed, removed, challenged, rejected, error).");
	metrics_describe("pushgw_sip_bindings", "gauge", "Phones registered through the SIP edge.");
	metrics_describe("pushgw_sip_invites_total", "counter", "INVITEs to SIP-edge bindings by outcome (answered, no_answer, cancelled, woke_late, not_woken, rejected).");
	metrics_describe("pushgw_sip_held_invites", "gauge", "INVITEs the SIP edge holds or rings now.");
	metrics_describe("pushgw_wake_to_register_seconds", "histogram", "Time from a call's wake push to the phone's new REGISTER through the SIP edge.");
	metrics_describe("pushgw_upstream_config_mistakes_total", "counter", "Tokens refused because of a configuration mistake, not a dead token (FCM SENDER_ID_MISMATCH, APNs DeviceTokenNotForTopic, BadDeviceToken for a stated environment): the device is kept; check the app's settings.");
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

/* The running gateway's parts; main's own, passed by pointer. */
typedef struct gateway {
	const char *path;
	evloop *loop;
	h2pool *pool;
	registry *reg;
	regwatch *watch;
	callbacks *cbs;
	http_api *api;
	sipedge *sip;          /* NULL without a sip section */
	const pgw_config *cfg; /* the current one */
	upstream *up;          /* built for cfg */
	atomic_bool loop_running;
	pthread_mutex_t retired_lock;
	struct retired *retired; /* under retired_lock: left for teardown to free */
} gateway;

typedef struct retired {
	const pgw_config *cfg;
	upstream *up;
	struct retired *next;
} retired;

static void retired_free(void *arg)
{
	retired *r = arg;

	upstream_free(r->up);
	config_free((pgw_config *)r->cfg);
	free(r);
}

/* A config and upstream no request uses any more: free them on the loop
 * thread (the upstream's timers live there). Once the loop is stopping,
 * whatever thread lets go of one (a request finishing, a registry or
 * callback thread, teardown walking the upstreams) must not free it: the
 * loop thread may still be running its timers, or the caller may be
 * inside that very upstream. It is left for teardown to free at the end. */
static void retire(void *arg, const pgw_config *cfg, upstream *up)
{
	gateway *gw = arg;
	retired *r = calloc(1, sizeof *r);

	if (!r)
		return; /* leak rather than free under the loop's feet */
	r->cfg = cfg;
	r->up = up;
	if (atomic_load(&gw->loop_running) && evloop_post(gw->loop, retired_free, r) == PGW_OK)
		return;
	pthread_mutex_lock(&gw->retired_lock);
	r->next = gw->retired;
	gw->retired = r;
	pthread_mutex_unlock(&gw->retired_lock);
}

/* The end of teardown: every thread that could retire something is gone. */
static void retired_free_all(gateway *gw)
{
	retired *r, *next;

	pthread_mutex_lock(&gw->retired_lock);
	r = gw->retired;
	gw->retired = NULL;
	pthread_mutex_unlock(&gw->retired_lock);
	for (; r; r = next) {
		next = r->next;
		retired_free(r);
	}
}

/* A reload builds the new upstream on the loop thread (it shares the pool
 * and takes over the running provider tokens); main waits for it. */
typedef struct rebuild {
	gateway *gw;
	const pgw_config *cfg;
	upstream *up;
	pgw_err rc;
	char err[512];
	pthread_mutex_t lock;
	pthread_cond_t done_cv;
	bool done;
} rebuild;

static void rebuild_on_loop(void *arg)
{
	rebuild *rb = arg;

	rb->rc = upstream_new(rb->cfg, rb->gw->loop, rb->gw->pool, rb->gw->up, &rb->up, rb->err,
			      sizeof rb->err);
	pthread_mutex_lock(&rb->lock);
	rb->done = true;
	pthread_cond_signal(&rb->done_cv);
	pthread_mutex_unlock(&rb->lock);
}

static void warn_unapplied(const pgw_config *old, const pgw_config *now)
{
	static const char restart[] = "changed in the config but applied only at restart";

	if (strcmp(old->listen_host, now->listen_host) != 0 || old->listen_port != now->listen_port ||
	    old->tls_enabled != now->tls_enabled)
		pgw_log(PGW_LOG_WARN, restart, "field", "listen/tls", NULL);
	if ((old->registry_path == NULL) != (now->registry_path == NULL) ||
	    (old->registry_path && strcmp(old->registry_path, now->registry_path) != 0))
		pgw_log(PGW_LOG_WARN, restart, "field", "registry", NULL);
	if ((old->upstream_ca_file == NULL) != (now->upstream_ca_file == NULL) ||
	    (old->upstream_ca_file && strcmp(old->upstream_ca_file, now->upstream_ca_file) != 0) ||
	    old->upstream_ping_interval_s != now->upstream_ping_interval_s)
		pgw_log(PGW_LOG_WARN, restart, "field", "upstream.ca_file/ping_interval_s", NULL);
	/* the SIP edge keeps the config it started with (docs/sip-edge.md) */
	if (old->sip.enabled != now->sip.enabled ||
	    (old->sip.enabled && (strcmp(old->sip.public_host, now->sip.public_host) != 0 ||
				  strcmp(old->sip.backend, now->sip.backend) != 0 ||
				  old->sip.ring_timeout_s != now->sip.ring_timeout_s ||
				  old->sip.n_listen != now->sip.n_listen)))
		pgw_log(PGW_LOG_WARN, restart, "field", "sip", NULL);
}

/* SIGHUP: a broken new config is refused with a log line and the old one
 * keeps serving; a good one takes effect for new requests. */
static void reload(gateway *gw)
{
	pgw_config *cfg = NULL;
	rebuild rb = {.gw = gw};
	char err[512];

	if (config_load(gw->path, &cfg, err, sizeof err) != PGW_OK) {
		pgw_log(PGW_LOG_ERROR, "reload refused: the running config keeps serving", "error", err, NULL);
		return;
	}
	rb.cfg = cfg;
	pthread_mutex_init(&rb.lock, NULL);
	pthread_cond_init(&rb.done_cv, NULL);
	if (evloop_post(gw->loop, rebuild_on_loop, &rb) == PGW_OK) {
		pthread_mutex_lock(&rb.lock);
		while (!rb.done)
			pthread_cond_wait(&rb.done_cv, &rb.lock);
		pthread_mutex_unlock(&rb.lock);
	} else {
		rb.rc = PGW_ENOMEM;
		snprintf(rb.err, sizeof rb.err, "cannot reach the event loop");
	}
	pthread_cond_destroy(&rb.done_cv);
	pthread_mutex_destroy(&rb.lock);
	if (rb.rc != PGW_OK) {
		pgw_log(PGW_LOG_ERROR, "reload refused: the running config keeps serving", "error", rb.err, NULL);
		config_free(cfg);
		return;
	}
	warn_unapplied(gw->cfg, cfg);
	pgw_log_set_level((pgw_log_level)cfg->log_level);
	pgw_log_set_text(cfg->log_text);
	gw->cfg = cfg;
	gw->up = rb.up;
	http_api_swap(gw->api, cfg, rb.up);
	pgw_log(PGW_LOG_INFO, "config reloaded", "config", cfg->path, NULL);
}

/* Returns the signal that ended the wait. */
static int wait_for_stop(gateway *gw, const sigset_t *set)
{
	int sig;

	for (;;) {
		if (sigwait(set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			reload(gw);
			continue;
		}
		return sig;
	}
}

static void shutdown_upstream(upstream *up)
{
	upstream_shutdown(up);
}

/* Stop the loop, end what is still in flight (failed/shutting_down) so every
 * suspended request gets its answer, then take everything down, each part
 * after the last one that may still call into it:
 * - the loop first: from then on a wake that starts is refused and answered
 *   503 at once, and work posted before the stop runs here (evloop.h);
 * - the upstreams and the pool end every push, which resumes its request
 *   or hands its async result to the callbacks;
 * - the SIP edge stops: it answers the INVITEs it holds and asks the API
 *   for no more pushes (those in flight ended with the upstreams);
 * - the API stops: no request runs after it;
 * - the callbacks: their thread may be rendering an async result out of an
 *   API generation, and results never prepared are rendered here;
 * - only then the API's generations, and the registry every part used. */
static void teardown(gateway *gw, pgw_config *first_cfg, upstream *first_up)
{
	/* Past the grace period nothing waits on the database any longer: a
	 * PostgreSQL server that stopped answering would otherwise hold every
	 * thread that joins below. */
	registry_shutdown(gw->reg);
	if (gw->loop) {
		evloop_stop(gw->loop);
		atomic_store(&gw->loop_running, false);
	}
	if (gw->api)
		http_api_each_upstream(gw->api, shutdown_upstream);
	else if (first_up)
		upstream_shutdown(first_up);
	h2pool_free(gw->pool);
	sipedge_free(gw->sip);
	gw->sip = NULL;
	http_api_stop(gw->api, 2000);
	callbacks_free(gw->cbs);
	if (gw->api) {
		http_api_free(gw->api); /* retires every generation */
	} else {
		upstream_free(first_up);
		config_free(first_cfg);
	}
	regwatch_free(gw->watch);
	retired_free_all(gw);
	registry_close(gw->reg);
	evloop_free(gw->loop);
}

/* SIGTERM: one shutdown_grace_s for both the wakes still in flight and the
 * result callbacks still owed (a 202 promised the PBX its result). What is
 * left after it is dropped by teardown, which logs how many. */
static void drain(gateway *gw)
{
	int64_t until = pgw_now_ms() + (int64_t)gw->cfg->shutdown_grace_s * 1000;
	char count[24];
	size_t left;

	if (!http_api_drain(gw->api, gw->cfg->shutdown_grace_s * 1000))
		pgw_log(PGW_LOG_WARN, "grace period over with wakes still in flight", NULL);
	left = callbacks_drain(gw->cbs, (int)(until - pgw_now_ms()));
	if (left > 0) {
		snprintf(count, sizeof count, "%zu", left);
		pgw_log(PGW_LOG_WARN, "grace period over with callbacks undelivered", "count", count,
			NULL);
	}
}

static int run(const char *path)
{
	gateway gw = {.path = path, .retired_lock = PTHREAD_MUTEX_INITIALIZER};
	pgw_config *cfg = NULL;
	upstream *up = NULL;
	h2pool_opts po = {0};
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

	if (registry_open(cfg, &gw.reg, err, sizeof err) != PGW_OK) {
		fprintf(stderr, "pushgw: %s\n", err);
		goto out;
	}
	if (evloop_new(&gw.loop) != PGW_OK) {
		fprintf(stderr, "pushgw: cannot create the event loop\n");
		goto out;
	}
	po.ca_file = cfg->upstream_ca_file;
	po.ping_interval_ms = cfg->upstream_ping_interval_s * 1000;
	if (h2pool_new(gw.loop, &po, &gw.pool) != PGW_OK) {
		fprintf(stderr, "pushgw: %s: upstream.ca_file: cannot load trust anchors\n", cfg->path);
		goto out;
	}
	if (upstream_new(cfg, gw.loop, gw.pool, NULL, &up, err, sizeof err) != PGW_OK) {
		fprintf(stderr, "pushgw: %s: %s\n", cfg->path, err);
		goto out;
	}
	if (evloop_start(gw.loop) != PGW_OK) {
		fprintf(stderr, "pushgw: cannot start the event loop\n");
		goto out;
	}
	atomic_store(&gw.loop_running, true);
	if (callbacks_new(cfg->upstream_ca_file, &gw.cbs) != PGW_OK) {
		fprintf(stderr, "pushgw: cannot start the callback sender\n");
		goto out;
	}
	if (regwatch_new(gw.reg, &gw.watch) != PGW_OK) {
		fprintf(stderr, "pushgw: cannot start the registry watch\n");
		goto out;
	}
	deps = (http_api_deps){.cfg = cfg, .loop = gw.loop, .up = up, .retire = retire,
			       .retire_arg = &gw, .reg = gw.reg, .cbs = gw.cbs, .watch = gw.watch};
	if (http_api_start(&deps, &gw.api, err, sizeof err) != PGW_OK) {
		fprintf(stderr, "pushgw: %s\n", err);
		goto out;
	}
	gw.cfg = cfg;
	gw.up = up;
	log_startup(cfg, http_api_port(gw.api));
	/* the SIP edge needs the API (its pushes) and the registry */
	if (cfg->sip.enabled) {
		sipedge_deps sd = {.cfg = cfg, .api = gw.api, .reg = gw.reg};
		if (sipedge_start(&sd, &gw.sip, err, sizeof err) != PGW_OK) {
			fprintf(stderr, "pushgw: %s\n", err);
			goto out;
		}
	}

	sig = wait_for_stop(&gw, &set);
	pgw_log(PGW_LOG_INFO, "stopping: draining in-flight wakes and callbacks", "signal",
		strsignal(sig), NULL);
	drain(&gw);
	status = 0;
out:
	teardown(&gw, cfg, up);
	pthread_mutex_destroy(&gw.retired_lock);
	if (status == 0)
		pgw_log(PGW_LOG_INFO, "stopped", NULL);
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
