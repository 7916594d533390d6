/* pushsim: a local stand-in for Apple's push service, Google's OAuth token
 * endpoint and FCM HTTP v1 (one HTTP/2-over-TLS port) with a control port for
 * tests. main() parses the options, wires the modules
 * together on one event loop and runs it until SIGTERM/SIGINT or
 * POST /shutdown. Single-threaded. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "sim.h"
#include "sim_auth.h"
#include "sim_control.h"
#include "sim_h2.h"
#include "sim_loop.h"
#include "sim_oauth.h"
#include "sim_records.h"
#include "sim_script.h"
#include "sim_tls.h"

static const char sim_usage[] =
	"usage: pushsim --listen HOST:PORT --cert server.pem --key server.key\n"
	"               --control HOST:PORT\n"
	"               [--team-id TEAM --key-id KEY --apns-key-pub pub.pem]\n"
	"               [--client-ca ca.pem] [--bundle-id ID]...\n"
	"               [--max-streams N] [--initial-streams N] [--delay-ms N] [--record N]\n"
	"               [--service-account SA.json]... [--sa-pub [EMAIL=]PUB.pem]...\n"
	"               [--oauth-path PATH] [--token-ttl S] [--fcm-project ID]...\n"
	"               [--fcm-allow-reserved-keys]\n";

enum {
	OPT_LISTEN = 1,
	OPT_CERT,
	OPT_KEY,
	OPT_CONTROL,
	OPT_TEAM,
	OPT_KID,
	OPT_PUB,
	OPT_CA,
	OPT_BUNDLE,
	OPT_MAX_STREAMS,
	OPT_INITIAL_STREAMS,
	OPT_DELAY,
	OPT_RECORD,
	OPT_SERVICE_ACCOUNT,
	OPT_SA_PUB,
	OPT_OAUTH_PATH,
	OPT_TOKEN_TTL,
	OPT_FCM_PROJECT,
	OPT_FCM_RESERVED,
	OPT_HELP,
};

static const struct option sim_options[] = {
	{ "listen", required_argument, NULL, OPT_LISTEN },
	{ "cert", required_argument, NULL, OPT_CERT },
	{ "key", required_argument, NULL, OPT_KEY },
	{ "control", required_argument, NULL, OPT_CONTROL },
	{ "team-id", required_argument, NULL, OPT_TEAM },
	{ "key-id", required_argument, NULL, OPT_KID },
	{ "apns-key-pub", required_argument, NULL, OPT_PUB },
	{ "client-ca", required_argument, NULL, OPT_CA },
	{ "bundle-id", required_argument, NULL, OPT_BUNDLE },
	{ "max-streams", required_argument, NULL, OPT_MAX_STREAMS },
	{ "initial-streams", required_argument, NULL, OPT_INITIAL_STREAMS },
	{ "delay-ms", required_argument, NULL, OPT_DELAY },
	{ "record", required_argument, NULL, OPT_RECORD },
	{ "service-account", required_argument, NULL, OPT_SERVICE_ACCOUNT },
	{ "sa-pub", required_argument, NULL, OPT_SA_PUB },
	{ "oauth-path", required_argument, NULL, OPT_OAUTH_PATH },
	{ "token-ttl", required_argument, NULL, OPT_TOKEN_TTL },
	{ "fcm-project", required_argument, NULL, OPT_FCM_PROJECT },
	{ "fcm-allow-reserved-keys", no_argument, NULL, OPT_FCM_RESERVED },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

static int sim_opt_uint(const char *name, const char *value, unsigned long long min,
			unsigned long long max, unsigned long long *out, char *err, size_t errlen)
{
	if (!sim_parse_uint(value, max, out) || *out < min) {
		snprintf(err, errlen, "--%s: expected a number in %llu..%llu, got '%s'", name, min,
			 max, value);
		return -1;
	}
	return 0;
}

/* Numeric options; returns 0, 1 when opt is not one of them, or -1. */
static int sim_parse_number(struct sim_config *cfg, int opt, const char *arg, char *err,
			    size_t errlen)
{
	unsigned long long v;

	switch (opt) {
	case OPT_MAX_STREAMS:
		if (sim_opt_uint("max-streams", arg, 1, UINT32_MAX, &v, err, errlen) < 0)
			return -1;
		cfg->max_streams = (uint32_t)v;
		return 0;
	case OPT_INITIAL_STREAMS:
		if (sim_opt_uint("initial-streams", arg, 1, UINT32_MAX, &v, err, errlen) < 0)
			return -1;
		cfg->initial_streams = (uint32_t)v;
		return 0;
	case OPT_DELAY:
		if (sim_opt_uint("delay-ms", arg, 0, 3600000, &v, err, errlen) < 0)
			return -1;
		cfg->delay_ms = (unsigned)v;
		return 0;
	case OPT_RECORD:
		if (sim_opt_uint("record", arg, 0, 10000000, &v, err, errlen) < 0)
			return -1;
		cfg->record = (size_t)v;
		return 0;
	case OPT_TOKEN_TTL:
		if (sim_opt_uint("token-ttl", arg, 1, 86400, &v, err, errlen) < 0)
			return -1;
		cfg->token_ttl_s = (unsigned)v;
		return 0;
	}
	return 1;
}

/* Appends to one of the repeatable options' lists. */
static int sim_opt_append(const char *name, const char **list, size_t *n, size_t max,
			  const char *arg, char *err, size_t errlen)
{
	if (*n == max) {
		snprintf(err, errlen, "--%s: at most %zu", name, max);
		return -1;
	}
	list[(*n)++] = arg;
	return 0;
}

/* Google's options; returns 0, 1 when opt is not one of them, or -1. */
static int sim_parse_google(struct sim_config *cfg, int opt, const char *arg, char *err,
			    size_t errlen)
{
	switch (opt) {
	case OPT_SERVICE_ACCOUNT:
		return sim_opt_append("service-account", cfg->service_accounts,
				      &cfg->nservice_accounts, SIM_MAX_ACCOUNTS, arg, err, errlen);
	case OPT_SA_PUB:
		return sim_opt_append("sa-pub", cfg->sa_pubs, &cfg->nsa_pubs, SIM_MAX_ACCOUNTS,
				      arg, err, errlen);
	case OPT_FCM_PROJECT:
		return sim_opt_append("fcm-project", cfg->fcm_projects, &cfg->nfcm_projects,
				      SIM_MAX_PROJECTS, arg, err, errlen);
	case OPT_OAUTH_PATH:
		if (arg[0] != '/' || strchr(arg, '?')) {
			snprintf(err, errlen,
				 "--oauth-path: expected a path such as /token, got '%s'", arg);
			return -1;
		}
		cfg->oauth_path = arg;
		return 0;
	case OPT_FCM_RESERVED:
		cfg->fcm_allow_reserved_keys = true;
		return 0;
	}
	return 1;
}

static int sim_parse_string(struct sim_config *cfg, int opt, const char *arg, char *err,
			    size_t errlen)
{
	switch (opt) {
	case OPT_LISTEN:
		cfg->listen = arg;
		break;
	case OPT_CERT:
		cfg->cert = arg;
		break;
	case OPT_KEY:
		cfg->key = arg;
		break;
	case OPT_CONTROL:
		cfg->control = arg;
		break;
	case OPT_TEAM:
		cfg->team_id = arg;
		break;
	case OPT_KID:
		cfg->key_id = arg;
		break;
	case OPT_PUB:
		cfg->apns_key_pub = arg;
		break;
	case OPT_CA:
		cfg->client_ca = arg;
		break;
	case OPT_BUNDLE:
		if (cfg->nbundles == SIM_MAX_BUNDLES) {
			snprintf(err, errlen, "--bundle-id: at most %d bundles", SIM_MAX_BUNDLES);
			return -1;
		}
		cfg->bundles[cfg->nbundles++] = arg;
		break;
	default:
		snprintf(err, errlen, "unknown option (try --help)");
		return -1;
	}
	return 0;
}

static int sim_check_config(const struct sim_config *cfg, char *err, size_t errlen)
{
	if (!cfg->listen || !cfg->cert || !cfg->key || !cfg->control) {
		snprintf(err, errlen, "--listen, --cert, --key and --control are required");
		return -1;
	}
	if ((cfg->team_id || cfg->key_id || cfg->apns_key_pub) &&
	    !(cfg->team_id && cfg->key_id && cfg->apns_key_pub)) {
		snprintf(err, errlen, "--team-id, --key-id and --apns-key-pub go together");
		return -1;
	}
	return 0;
}

/* Returns 0, 1 for --help, or -1 with a message in err. */
static int sim_parse_args(int argc, char **argv, struct sim_config *cfg, char *err,
			  size_t errlen)
{
	int opt;

	cfg->max_streams = 1000;
	cfg->record = 10000;
	cfg->oauth_path = "/token";
	cfg->token_ttl_s = 3600;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", sim_options, NULL)) != -1) {
		int rv;

		if (opt == OPT_HELP)
			return 1;
		if (opt == '?' || opt == ':') {
			snprintf(err, errlen, "bad option '%s' (try --help)", argv[optind - 1]);
			return -1;
		}
		rv = sim_parse_number(cfg, opt, optarg, err, errlen);
		if (rv == 1)
			rv = sim_parse_google(cfg, opt, optarg, err, errlen);
		if (rv == 1)
			rv = sim_parse_string(cfg, opt, optarg, err, errlen);
		if (rv < 0)
			return -1;
	}
	if (optind < argc) {
		snprintf(err, errlen, "unexpected argument '%s'", argv[optind]);
		return -1;
	}
	return sim_check_config(cfg, err, errlen);
}

struct sim_signals {
	struct sim_io io;
	int fd;
	struct sim_loop *loop;
};

static void sim_on_signal(void *arg, uint32_t events)
{
	struct sim_signals *sig = arg;
	struct signalfd_siginfo si;

	if (read(sig->fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		sim_loop_stop(sig->loop);
}

static int sim_signals_watch(struct sim_signals *sig, struct sim_loop *loop)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -1;
	sig->fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	sig->loop = loop;
	if (sig->fd < 0)
		return -1;
	return sim_loop_watch(loop, &sig->io, sig->fd, EPOLLIN, sim_on_signal, sig);
}

static int sim_start(struct sim *sim, SSL_CTX **ctx, char *err, size_t errlen)
{
	sim->delay_ms = sim->cfg.delay_ms;
	sim->max_streams = sim->cfg.max_streams;
	sim_rng_seed(&sim->rng);
	sim->loop = sim_loop_new();
	sim->records = sim_records_new(sim->cfg.record);
	sim->script = sim_script_new();
	if (!sim->loop || !sim->records || !sim->script) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	sim->auth = sim_auth_new(sim->cfg.team_id, sim->cfg.key_id, sim->cfg.apns_key_pub, err,
				 errlen);
	if (!sim->auth)
		return -1;
	sim->oauth = sim_oauth_new(&sim->cfg, err, errlen);
	if (!sim->oauth)
		return -1;
	*ctx = sim_tls_server_ctx(sim->cfg.cert, sim->cfg.key, sim->cfg.client_ca, err, errlen);
	if (!*ctx)
		return -1;
	sim->h2 = sim_h2_new(sim, *ctx, sim->cfg.listen, err, errlen);
	if (!sim->h2)
		return -1;
	sim->control = sim_control_new(sim, sim->cfg.control, err, errlen);
	if (!sim->control)
		return -1;
	return 0;
}

static void sim_stop(struct sim *sim, SSL_CTX *ctx)
{
	sim_h2_free(sim->h2);
	sim_control_free(sim->control);
	sim_loop_free(sim->loop); /* runs the deferred frees of closed connections */
	sim_records_free(sim->records);
	sim_script_free(sim->script);
	sim_auth_free(sim->auth);
	sim_oauth_free(sim->oauth);
	SSL_CTX_free(ctx);
}

int main(int argc, char **argv)
{
	struct sim sim = { 0 };
	struct sim_signals sig = { .fd = -1 };
	SSL_CTX *ctx = NULL;
	char err[512];
	int rv, status = 1;

	rv = sim_parse_args(argc, argv, &sim.cfg, err, sizeof(err));
	if (rv != 0) {
		if (rv > 0) {
			fputs(sim_usage, stdout);
			return 0;
		}
		fprintf(stderr, "pushsim: %s\n", err);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	if (sim_start(&sim, &ctx, err, sizeof(err)) < 0)
		goto out;
	if (sim_signals_watch(&sig, sim.loop) < 0) {
		snprintf(err, sizeof(err), "cannot watch signals");
		goto out;
	}
	printf("{\"listen\":%d,\"control\":%d}\n", sim_h2_port(sim.h2),
	       sim_control_port(sim.control));
	fflush(stdout);
	if (sim_loop_run(sim.loop) < 0) {
		snprintf(err, sizeof(err), "event loop failed");
		goto out;
	}
	status = 0;
out:
	if (status)
		fprintf(stderr, "pushsim: %s\n", err);
	if (sig.fd >= 0)
		close(sig.fd);
	sim_stop(&sim, ctx);
	return status;
}
