/* The simulator's root context: options, counters and the modules that make
 * up pushsim. One instance, created by main() and passed to every module;
 * used only from the event loop thread. */
#ifndef SIM_H
#define SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sim_util.h"

#define SIM_MAX_BUNDLES 32
#define SIM_MAX_ACCOUNTS 16
#define SIM_MAX_PROJECTS 32

struct sim_loop;
struct sim_records;
struct sim_script;
struct sim_auth;
struct sim_h2;
struct sim_control;
struct sim_oauth;

/* Command-line options; strings point into argv. */
struct sim_config {
	const char *listen;
	const char *cert;
	const char *key;
	const char *control;
	const char *team_id;
	const char *key_id;
	const char *apns_key_pub;
	const char *client_ca;
	const char *bundles[SIM_MAX_BUNDLES];
	size_t nbundles;
	uint32_t max_streams;
	uint32_t initial_streams; /* 0: advertise max_streams from the start */
	unsigned delay_ms;
	size_t record;
	/* Google: OAuth token endpoint and FCM HTTP v1. */
	const char *oauth_path;
	unsigned token_ttl_s;
	const char *service_accounts[SIM_MAX_ACCOUNTS]; /* Google's JSON files */
	size_t nservice_accounts;
	const char *sa_pubs[SIM_MAX_ACCOUNTS]; /* "[EMAIL=]FILE" */
	size_t nsa_pubs;
	const char *fcm_projects[SIM_MAX_PROJECTS]; /* none: every project is usable */
	size_t nfcm_projects;
	bool fcm_allow_reserved_keys;
};

/* What GET /stats reports; connections_open survives POST /reset. */
struct sim_stats {
	uint64_t handshakes;
	uint64_t connections_open;
	uint64_t connections_total;
	uint64_t requests;
	uint64_t answered_200;
	uint64_t max_streams_in_flight;
	uint64_t goaways_sent;
	uint64_t fcm_requests;
	uint64_t oauth_requests;
	uint64_t oauth_issued;
};

struct sim {
	struct sim_config cfg;
	struct sim_stats stats;
	/* Current values; the control port changes them at run time. */
	unsigned delay_ms;
	uint32_t max_streams;
	struct sim_rng rng;
	struct sim_loop *loop;
	struct sim_records *records;
	struct sim_script *script;
	struct sim_auth *auth;
	struct sim_h2 *h2;
	struct sim_control *control;
	struct sim_oauth *oauth;
};

#endif
