/* Gateway configuration (SPEC §2): load, validate and hold one immutable
 * snapshot. A snapshot is never changed after config_load(); a reload makes
 * a new one. Threading: a loaded snapshot may be read from any thread. */
#ifndef PUSHGW_CONFIG_H
#define PUSHGW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "pushgw/err.h"

typedef enum pgw_apns_env {
	PGW_ENV_UNSET = 0, /* not stated (a device then uses its app's) */
	PGW_ENV_PRODUCTION,
	PGW_ENV_SANDBOX,
} pgw_apns_env;

typedef enum pgw_payload_profile {
	PGW_PAYLOAD_PUSHGW = 0,
	PGW_PAYLOAD_LINPHONE,
} pgw_payload_profile;

enum {
	PGW_SCOPE_WAKE = 1u << 0,
	PGW_SCOPE_REGISTER = 1u << 1,
};

typedef struct pgw_apns_conf {
	bool enabled;
	/* token auth (all three set) … */
	char *team_id;
	char *key_id;
	char *key_file; /* absolute path */
	char *key_pem;  /* contents of key_file (PKCS#8 EC P-256 PEM) */
	/* … or certificate auth (both set; absolute paths) */
	char *cert_file;
	char *cert_key_file;
	char *bundle_id;
	pgw_apns_env environment; /* PRODUCTION or SANDBOX, never UNSET */
	char *url;                /* override for both environments, or NULL */
	char *sandbox_url;        /* override for the sandbox only (wins over url), or NULL */
} pgw_apns_conf;

typedef struct pgw_fcm_conf {
	bool enabled;
	char *service_account_file; /* absolute path */
	char *url;                  /* default "https://fcm.googleapis.com" */
	char *sender_id;            /* optional, NULL when unset */
	/* from the service-account JSON, used as they are */
	char *project_id;
	char *client_email;
	char *private_key; /* PEM */
	char *token_uri;
} pgw_fcm_conf;

typedef struct pgw_app_strings {
	char *call;               /* default "IC_MSG" */
	char *missed;             /* default "IC_MISSED" */
	char *answered_elsewhere; /* default "IC_ANSWERED_ELSEWHERE" */
	char *declined_elsewhere; /* default "IC_DECLINED_ELSEWHERE" */
	char *sound;              /* ring sound for alerts, default "" */
} pgw_app_strings;

typedef struct pgw_app_conf {
	char *name;
	pgw_apns_conf apns;
	pgw_fcm_conf fcm;
	pgw_payload_profile payload;
	pgw_app_strings strings;
	int ring_repeat_s; /* 0 = off */
	/* cancels to VoIP-only iPhones go as VoIP pushes (the app opted in);
	 * otherwise they are skipped */
	bool voip_cancel;
} pgw_app_conf;

typedef struct pgw_api_key {
	char *name;
	unsigned char hash[32]; /* SHA-256 of the key */
	unsigned scopes;        /* PGW_SCOPE_* bits */
	char **apps;            /* app names this key may use; n_apps == 0 = all */
	size_t n_apps;
	char *callback_secret; /* NULL when unset */
} pgw_api_key;

/* The SIP edge (docs/sip-edge.md); enabled only by a "sip" section. */
typedef enum pgw_sip_transport {
	PGW_SIP_UDP = 0,
	PGW_SIP_TCP,
	PGW_SIP_TLS,
} pgw_sip_transport;

typedef struct pgw_sip_listen {
	pgw_sip_transport transport;
	char *host; /* as written, brackets removed for IPv6 */
	int port;   /* 0: any free port */
} pgw_sip_listen;

/* A backend source network: address family, address bytes and prefix. */
typedef struct pgw_cidr {
	int family; /* AF_INET | AF_INET6 */
	unsigned char addr[16];
	int prefix;
} pgw_cidr;

typedef struct pgw_sip_conf {
	bool enabled;
	pgw_sip_listen *listen;
	size_t n_listen;
	char *tls_cert_file, *tls_key_file; /* absolute; set when a tls: listener is */
	char *public_host;                  /* host put in the Contacts pushgw registers */
	char *backend;                      /* SIP URI of the PBX */
	pgw_cidr *backend_sources;          /* besides backend's resolved addresses */
	size_t n_backend_sources;
	char *app;          /* app that pn-* Contacts resolve to, or NULL (the only app) */
	int ring_timeout_s; /* default 30 */
} pgw_sip_conf;

/* True when addr (family, 4 or 16 bytes) is inside c. */
bool config_cidr_contains(const pgw_cidr *c, int family, const void *addr);

typedef struct pgw_config {
	char *path; /* absolute path of the file loaded */
	char *dir;  /* its folder: relative paths are relative to it */

	char *listen_host; /* "127.0.0.1" */
	int listen_port;   /* 8080 */

	bool tls_enabled;
	char *tls_cert_file, *tls_key_file, *tls_client_ca_file; /* CA may be NULL */

	pgw_api_key *keys;
	size_t n_keys;
	pgw_app_conf *apps;
	size_t n_apps;

	char *upstream_ca_file; /* NULL = system store only */
	int upstream_connections;   /* default 2, 1..64 */
	int upstream_ping_interval_s;   /* default 60 */
	int upstream_request_timeout_ms; /* default 5000 */

	char *registry_path; /* default "<dir>/pushgw.db"; NULL when registry_url */
	char *registry_url;  /* NULL unless set */

	size_t max_body_bytes;       /* default 65536 */
	int max_devices_per_wake;    /* default 100 */
	int wakes_per_second_per_key; /* default 200, 0 = unlimited */
	/* async wakes of one key whose callback is not delivered or given up
	 * yet; beyond it callback_url wakes get 503 (default 1000) */
	int max_pending_callbacks_per_key;

	int shutdown_grace_s; /* default 10 */
	int log_level;        /* pgw_log_level, default info */
	bool log_text;        /* log.format == "text" */

	pgw_sip_conf sip;

	bool demo; /* set by main when it runs the bundled simulator demo */
} pgw_config;

/* Load and validate a config file, then apply the environment overrides
 * PUSHGW_LISTEN, PUSHGW_LOG_LEVEL and PUSHGW_REGISTRY_PATH. Reads the
 * credentials files it names (APNs .p8, service-account JSON) and checks that
 * they parse and are not readable by others.
 * On failure returns PGW_ECONFIG (or PGW_ENOMEM) and writes one line to errbuf
 * naming the file, the field and what was expected, e.g.
 *   "pushgw.json: apps.phone.apns.team_id: expected a 10-character string".
 * On success *out is a new snapshot; caller frees with config_free(). */
pgw_err config_load(const char *path, pgw_config **out, char *errbuf, size_t errlen);

/* Like config_load() but collects every problem it can find (one per line)
 * instead of stopping at the first; used by `pushgw --check`. Returns PGW_OK
 * when there are none. The text goes to *report (caller frees; may be NULL on
 * ENOMEM). */
pgw_err config_check(const char *path, char **report);

/* Accepts NULL. */
void config_free(pgw_config *cfg);

/* The app by name, or NULL. */
const pgw_app_conf *config_app_find(const pgw_config *cfg, const char *name);

/* True when key may use app (its apps list is empty or names it). */
bool config_key_allows_app(const pgw_api_key *key, const pgw_app_conf *app);

/* "sha256:<64 hex>" for key into out (at least 72 bytes). */
void config_hash_key(const char *key, char *out, size_t n);

#endif
