/* Internal to the registry: the storage behind registry.h. registry.c checks
 * arguments, logs and picks a backend by config (registry.path → SQLite,
 * registry.url → PostgreSQL); a backend only stores and reads. Every backend
 * function may be called from several threads at once (the backend pools or
 * serialises its connections), never on the event-loop thread. */
#ifndef PUSHGW_REGISTRY_BACKEND_H
#define PUSHGW_REGISTRY_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pushgw/config.h"
#include "pushgw/err.h"
#include "pushgw/registry.h"
#include "pushgw/target.h"

/* A backend's own state; each backend defines it in its own file. */
typedef struct registry_store registry_store;

/* What a put did: whether (ext, device_id) was new, how many rows the
 * device's tokens were taken from (another extension or device id), and the
 * stored row's times. */
typedef struct registry_put_outcome {
	bool created;
	int moved;
	int64_t created_at_ms, updated_at_ms;
} registry_put_outcome;

/* What a prune did: rows removed, rows that only lost their alert token. */
typedef struct registry_prune_outcome {
	int removed;
	int changed;
} registry_prune_outcome;

/* What a binding put did: whether no binding had its id, and how many
 * rows the device's tokens were taken from (as a put's moved). */
typedef struct registry_binding_outcome {
	bool created;
	int moved;
} registry_binding_outcome;

/* Arguments reach a backend already validated (ids, target, tokens). */
typedef struct registry_backend {
	const char *name; /* "sqlite", "postgresql" */
	/* Connect, create or migrate the schema. On failure why gets the reason
	 * (without the config field, which registry.c adds). Caller closes. */
	pgw_err (*open)(const pgw_config *cfg, registry_store **out, char *why, size_t whylen);
	/* Accepts NULL. */
	void (*close)(registry_store *s);
	/* now_ms is the caller's wall clock; a backend shared by several
	 * processes may use its own single clock instead. */
	/* PGW_EAUTH, changing nothing, when (ext, device_id) holds a device of
	 * an app apps does not allow (checked inside the write). */
	pgw_err (*put)(registry_store *s, const char *ext, const char *device_id,
		       const pgw_target *t, const registry_apps *apps, int64_t now_ms,
		       registry_put_outcome *out);
	/* Oldest first; *out from registry_devices_push(), NULL when none. */
	pgw_err (*list)(registry_store *s, const char *ext, registry_device **out, size_t *n);
	/* PGW_ENOTFOUND when absent. */
	pgw_err (*get)(registry_store *s, const char *ext, const char *device_id,
		       registry_device **out);
	/* device_id NULL = the extension's devices of apps; otherwise that
	 * device, or PGW_EAUTH (nothing removed) when its app is not allowed.
	 * Atomic. *deleted = rows removed. */
	pgw_err (*remove)(registry_store *s, const char *ext, const char *device_id,
			  const registry_apps *apps, int *deleted);
	pgw_err (*prune)(registry_store *s, pgw_provider provider, const char *app,
			 const char *token, int64_t not_after_ms, registry_prune_outcome *out);
	pgw_err (*set_environment)(registry_store *s, const char *app, const char *token,
				   pgw_apns_env env);
	pgw_err (*count)(registry_store *s, uint64_t *n);
	/* Can the store serve calls now? May do one quick round trip. */
	bool (*healthy)(registry_store *s);

	/* SIP-edge bindings. A binding's device row is (b->extension, b->id).
	 * binding_put writes, in one transaction: the binding row (stored app:
	 * t's, or NULL without t; updated_at: now_ms or the store's clock), its
	 * device row as put() with every app allowed would (t), or no device
	 * row (t NULL), and removes the device row it had under a previous
	 * extension. */
	pgw_err (*binding_put)(registry_store *s, const registry_binding *b, const pgw_target *t,
			       int64_t now_ms, registry_binding_outcome *out);
	/* PGW_ENOTFOUND when absent. *out from registry_bindings_push(). */
	pgw_err (*binding_get)(registry_store *s, const char *id, registry_binding **out);
	/* By instance when it is not NULL, else by t's tokens (t not NULL):
	 * the most recently updated match, or PGW_ENOTFOUND. */
	pgw_err (*binding_find)(registry_store *s, const char *edge, const char *aor,
				const char *instance, const pgw_target *t, registry_binding **out);
	/* edge's bindings with expires_at > now_ms; *out NULL when none. */
	pgw_err (*binding_list)(registry_store *s, const char *edge, int64_t now_ms,
				registry_binding **out, size_t *n);
	/* The binding and its device row, in one transaction; *removed = 0 or 1. */
	pgw_err (*binding_remove)(registry_store *s, const char *id, int *removed);
	/* edge's bindings with expires_at <= now_ms and their device rows, in
	 * one transaction; *removed = bindings removed. */
	pgw_err (*binding_expire)(registry_store *s, const char *edge, int64_t now_ms,
				  int *removed);
} registry_backend;

extern const registry_backend registry_sqlite_backend;
extern const registry_backend registry_pg_backend;

/* ---- helpers the backends share (registry.c) ---- */

/* Grow *arr (capacity *cap) by one zeroed record and return it, or NULL on
 * ENOMEM (the array is then unchanged). *n counts the new record: on a
 * later failure free the lot with registry_devices_free(*arr, *n). */
registry_device *registry_devices_push(registry_device **arr, size_t *n, size_t *cap);

/* registry_devices_push() for bindings: free with registry_bindings_free(). */
registry_binding *registry_bindings_push(registry_binding **arr, size_t *n, size_t *cap);

/* The token that identifies a device: the VoIP token, else the alert one. */
const char *registry_identity_token(const pgw_target *t);

#endif
