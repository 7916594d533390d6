/* Durable device registry (SPEC §3 "Registry"): extension → devices, stored in
 * a SQLite file (registry.path) or in PostgreSQL shared by several replicas
 * (registry.url), with the same semantics. A write returns only once it is
 * durable. Threading: every function may be called from any thread that may
 * wait (the HTTP API's registry queue, the callback thread); the handle
 * serialises or pools its connections internally. Never call it on the
 * event-loop thread or a libmicrohttpd worker: it does disk or network I/O
 * (see registry_queue.h). A database that cannot be reached makes calls fail with PGW_ECONNECT
 * (or PGW_ETIMEOUT) until it is back; the handle reconnects by itself. */
#ifndef PUSHGW_REGISTRY_H
#define PUSHGW_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pushgw/config.h"
#include "pushgw/err.h"
#include "pushgw/target.h"

typedef struct registry registry;

/* One stored device. Strings are owned by the record. */
typedef struct registry_device {
	char *extension;
	char *device_id;
	pgw_provider provider;
	char *app;          /* app name */
	char *token;        /* APNs VoIP / FCM token, or NULL */
	char *remote_token; /* APNs alert token, or NULL */
	pgw_apns_env environment;
	char *call_str, *call_snd;
	bool silent;
	int64_t created_at_ms; /* wall clock */
	int64_t updated_at_ms;
} registry_device;

/* The apps a call may touch: an API key's apps list (SPEC §2: apps limits
 * which apps a key may use). NULL, or n == 0, means every app. Names are
 * borrowed from the caller. */
typedef struct registry_apps {
	char *const *names;
	size_t n;
} registry_apps;

/* True when apps lets a call touch a device of app_name. */
bool registry_apps_allow(const registry_apps *apps, const char *app_name);

/* Open (creating and migrating the schema) the registry the config names.
 * errbuf gets "<file>: registry.path: <db file>: <why>" or
 * "<file>: registry.url: <why>" on failure (never the URL: it may hold a
 * password). PostgreSQL must be reachable here. Caller closes with
 * registry_close(). */
pgw_err registry_open(const pgw_config *cfg, registry **out, char *errbuf, size_t errlen);
/* Accepts NULL. */
void registry_close(registry *reg);

/* True when the registry can serve calls now (for /readyz). PostgreSQL: one
 * quick round trip, or false at once while the database is known to be down.
 * SQLite: always true once open. False for NULL. */
bool registry_healthy(registry *reg);

/* Shutdown: registry calls still waiting on the database end now with
 * PGW_ESTATE, and later ones fail at once, so that no thread stays blocked
 * on a PostgreSQL server that stopped answering (SQLite: nothing to do).
 * Before registry_close(), once nothing needs the registry any more.
 * Accepts NULL. */
void registry_shutdown(registry *reg);

/* Validity of ids used in paths: extension and device_id are 1..128 chars of
 * [A-Za-z0-9._~+@:=-] (after URL-decoding). */
bool registry_valid_extension(const char *ext);
bool registry_valid_device_id(const char *id);

/* Store t as (ext, device_id), replacing what was there. The same device
 * (provider, app and token — the VoIP token, else the remote token)
 * registered under another extension or device id moves here: that old row is
 * deleted in the same transaction, so a re-installed app never rings two
 * extensions. *created is true when (ext, device_id) did not exist. */
pgw_err registry_put(registry *reg, const char *ext, const char *device_id, const pgw_target *t,
		     bool *created);

/* registry_put() for a caller limited to apps (t's own app must be one of
 * them), that also hands back the record exactly as this call stored it, so
 * that a concurrent move (another request or replica taking the token a
 * moment later) cannot make it vanish before the caller reads it.
 * PGW_EAUTH, with nothing changed, when (ext, device_id) holds a device of
 * an app outside apps: the check is part of the write, so no concurrent
 * call can slip in between. *stored is freed with
 * registry_devices_free(*stored, 1). */
pgw_err registry_put_stored(registry *reg, const char *ext, const char *device_id,
			    const pgw_target *t, const registry_apps *apps, bool *created,
			    registry_device **stored);

/* The devices of ext, oldest first. *out is an array of *n records (NULL
 * when 0); free with registry_devices_free(). An unknown ext is PGW_OK, 0. */
pgw_err registry_list(registry *reg, const char *ext, registry_device **out, size_t *n);
void registry_devices_free(registry_device *devs, size_t n);

/* One device of ext, or PGW_ENOTFOUND. Free with registry_devices_free(d, 1). */
pgw_err registry_get(registry *reg, const char *ext, const char *device_id, registry_device **out);

/* Remove one device, if its app is one of apps: PGW_ENOTFOUND when there
 * is no such device, PGW_EAUTH (nothing removed) when it belongs to another
 * app. Checked and removed in one atomic step. */
pgw_err registry_delete_device(registry *reg, const char *ext, const char *device_id,
			       const registry_apps *apps);
/* Remove the devices of ext whose app is one of apps, in one atomic step;
 * devices of other apps stay (a key limited to some apps sees and clears
 * only those). PGW_ENOTFOUND when there was none to remove. */
pgw_err registry_delete_extension(registry *reg, const char *ext, const registry_apps *apps);

/* What a prune dropped. */
typedef enum registry_pruned {
	REGISTRY_PRUNED_NOTHING = 0,
	REGISTRY_PRUNED_DEVICE,       /* the registration that token identifies */
	REGISTRY_PRUNED_REMOTE_TOKEN, /* only a dead APNs alert token: the device
				       * keeps ringing through its VoIP token */
} registry_pruned;

/* Drop the dead token for (provider, app) if its registration was last
 * updated before not_after_ms (APNs 410 carries the time the token stopped
 * being valid; 0 = regardless): the registration it identifies goes — and
 * only that one — or, when it is the alert token of a device that also has
 * a VoIP token, just that token. *what (may be NULL) says which. The caller
 * logs it: it knows why the token is dead. */
pgw_err registry_prune(registry *reg, pgw_provider provider, const char *app, const char *token,
		       int64_t not_after_ms, registry_pruned *what);

/* Remember the APNs environment a device's token works in (after the
 * BadDeviceToken other-host retry); no-op when no row holds the token. */
pgw_err registry_set_environment(registry *reg, const char *app, const char *token,
				 pgw_apns_env env);

/* Total registered devices. */
pgw_err registry_count(registry *reg, uint64_t *n);

/* Rebuild a target from a record against the current config: the app must
 * still exist (PGW_ENOTFOUND otherwise). Caller releases with target_clear(). */
pgw_err registry_device_target(const registry_device *d, const pgw_config *cfg, pgw_target *out);


/* ---- SIP-edge bindings (docs: the SIP edge) ----
 * A phone registered through pushgw's SIP edge. Its push target, when its
 * Contact had one, is an ordinary device row (extension = the AOR's user
 * part, device_id = the binding id) written in the same transaction, so
 * /v1/wake by extension finds SIP phones too; a binding without a push
 * target has no device row. Bindings belong to the edge that registered
 * them (its sip.public_host): replicas sharing a PostgreSQL registry each
 * load only their own. */
typedef struct registry_binding {
	char *id;        /* random, unguessable: the user part of the Contact pushgw registers at the PBX */
	char *edge;      /* sip.public_host of the edge that holds it */
	char *aor;       /* the To URI of the REGISTER, e.g. "sip:1001@pbx.example.com" */
	char *extension; /* the AOR's user part */
	char *contact;   /* the phone's own Contact header value, as it sent it */
	char *instance;  /* its +sip.instance, or NULL */
	char *app;       /* the app its push target resolved to, or NULL (no push) */
	int64_t expires_at_ms; /* wall clock: the expiry the PBX granted */
	int64_t updated_at_ms;
} registry_binding;

/* Store b, replacing a binding of the same id, and its device row: with t,
 * (b->extension, b->id) holds t (a device of the same token elsewhere moves
 * here, as registry_put() does); with t NULL any device row of the binding
 * goes. One transaction. *created (may be NULL): no binding had that id.
 * The stored app is t's (b->app may be NULL, or must name it); the stored
 * updated_at_ms is the store's clock. PGW_EINVAL, nothing stored, unless:
 * id is 1..64 chars of [A-Za-z0-9_-]; edge (up to 255 bytes), aor,
 * contact and instance (up to 2048 bytes each) are non-empty UTF-8
 * without control characters; extension is registry_valid_extension();
 * expires_at_ms > 0. */
pgw_err registry_binding_put(registry *reg, const registry_binding *b, const pgw_target *t,
			     bool *created);

/* True when registry_binding_put() would take b and t (the rules above):
 * the SIP edge checks a REGISTER with it before the PBX sees it. */
bool registry_binding_storable(const registry_binding *b, const pgw_target *t);

/* The binding with id (expired or not: the caller checks expires_at_ms),
 * or PGW_ENOTFOUND. Free with registry_binding_free(). */
pgw_err registry_binding_get(registry *reg, const char *id, registry_binding **out);

/* The binding a new REGISTER of this phone refreshes, so the binding id
 * stays: same edge and aor and, when instance is not NULL, same instance;
 * otherwise same edge and aor and a device row with t's token (t NULL and
 * no instance: PGW_ENOTFOUND). The most recently updated, when several
 * match. */
pgw_err registry_binding_find(registry *reg, const char *edge, const char *aor,
			      const char *instance, const pgw_target *t, registry_binding **out);

/* Every binding of edge not expired at now_ms (expires_at_ms > now_ms),
 * soonest expiry first, for the edge's start-up (after a crash or
 * restart). *out is an array of *n; free with registry_bindings_free(). */
pgw_err registry_binding_list(registry *reg, const char *edge, int64_t now_ms,
			      registry_binding **out, size_t *n);

/* Remove a binding and its device row; PGW_ENOTFOUND when absent. */
pgw_err registry_binding_delete(registry *reg, const char *id);

/* Remove edge's bindings (and device rows) that expired by now_ms
 * (expires_at_ms <= now_ms: every one registry_binding_list() leaves out),
 * in one transaction; *removed (may be NULL) says how many. */
pgw_err registry_binding_expire(registry *reg, const char *edge, int64_t now_ms, int *removed);

/* Frees the strings inside b (not b itself) and zeroes it. Accepts NULL. */
void registry_binding_clear(registry_binding *b);
/* Accept NULL. */
void registry_binding_free(registry_binding *b);
void registry_bindings_free(registry_binding *b, size_t n);

#endif
