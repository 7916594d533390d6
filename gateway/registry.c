/* Device registry front (SPEC §3 "Registry"): checks arguments, logs moves
 * (callers log prunes: they know why), and hands storage to the backend the config names — SQLite
 * (registry.path) or PostgreSQL shared by replicas (registry.url). Any
 * thread but the event loop's may call any function. */
#include "pushgw/registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pushgw/log.h"
#include "pushgw/registry_backend.h"
#include "pushgw/util.h"

#define ID_MAX 128
/* SIP-edge bindings: the id is pushgw's own (random); the strings come from
 * a REGISTER the SIP parser has already bounded. */
#define BINDING_ID_MAX 64
#define BINDING_TEXT_MAX 2048
#define EDGE_MAX 255

struct registry {
	const registry_backend *ops;
	registry_store *store;
};

/* ---- open / close ---- */

/* "<config file>: registry.path: <db file>: <why>" or
 * "<config file>: registry.url: <why>", as config errors read. The URL is
 * never repeated: it may carry a password. */
static pgw_err open_error(const pgw_config *cfg, pgw_err err, const char *why,
			  char *errbuf, size_t errlen)
{
	const char *file = cfg && cfg->path ? cfg->path : "config";

	if (!errbuf || !errlen)
		return err;
	if (cfg && cfg->registry_url)
		snprintf(errbuf, errlen, "%s: registry.url: %s", file, why);
	else if (cfg && cfg->registry_path)
		snprintf(errbuf, errlen, "%s: registry.path: %s: %s", file,
			 cfg->registry_path, why);
	else
		snprintf(errbuf, errlen, "%s: registry.path: %s", file, why);
	return err;
}

pgw_err registry_open(const pgw_config *cfg, registry **out, char *errbuf, size_t errlen)
{
	char why[512] = "";
	const registry_backend *ops;
	registry *reg;
	pgw_err err;

	*out = NULL;
	if (cfg && cfg->registry_path && cfg->registry_url)
		return open_error(cfg, PGW_ECONFIG, "set registry.path or registry.url, not both",
				  errbuf, errlen);
	if (!cfg || (!cfg->registry_path && !cfg->registry_url))
		return open_error(cfg, PGW_EINVAL, "no registry configured", errbuf, errlen);
	ops = cfg->registry_url ? &registry_pg_backend : &registry_sqlite_backend;
	reg = calloc(1, sizeof *reg);
	if (!reg)
		return open_error(cfg, PGW_ENOMEM, "out of memory", errbuf, errlen);
	reg->ops = ops;
	err = ops->open(cfg, &reg->store, why, sizeof why);
	if (err != PGW_OK) {
		free(reg);
		return open_error(cfg, err, why, errbuf, errlen);
	}
	*out = reg;
	return PGW_OK;
}

void registry_close(registry *reg)
{
	if (!reg)
		return;
	reg->ops->close(reg->store);
	free(reg);
}

void registry_shutdown(registry *reg)
{
	if (reg && reg->ops->shutdown)
		reg->ops->shutdown(reg->store);
}

bool registry_healthy(registry *reg)
{
	return reg && reg->ops->healthy(reg->store);
}

/* ---- validation ---- */

static bool id_char_ok(unsigned char ch)
{
	if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
	    (ch >= '0' && ch <= '9'))
		return true;
	return ch && strchr("._~+@:=-", ch) != NULL;
}

static bool valid_id(const char *s)
{
	size_t i;

	if (!s || !*s)
		return false;
	for (i = 0; s[i]; i++) {
		if (i >= ID_MAX || !id_char_ok((unsigned char)s[i]))
			return false;
	}
	return true;
}

bool registry_valid_extension(const char *ext)
{
	return valid_id(ext);
}

bool registry_valid_device_id(const char *id)
{
	return valid_id(id);
}

const char *registry_identity_token(const pgw_target *t)
{
	return t->token ? t->token : t->remote_token;
}

static bool target_storable(const pgw_target *t)
{
	if (!t || !t->app || !t->app->name)
		return false;
	if (t->provider == PGW_PROVIDER_FCM)
		return t->token && !t->remote_token;
	return t->provider == PGW_PROVIDER_APNS && registry_identity_token(t);
}

/* ---- writes ---- */

bool registry_apps_allow(const registry_apps *apps, const char *app_name)
{
	size_t i;

	if (!apps || apps->n == 0)
		return true;
	for (i = 0; app_name && i < apps->n; i++)
		if (apps->names[i] && strcmp(apps->names[i], app_name) == 0)
			return true;
	return false;
}

static pgw_err put_outcome(registry *reg, const char *ext, const char *device_id,
			   const pgw_target *t, const registry_apps *apps,
			   registry_put_outcome *res)
{
	char red[32];
	pgw_err err;

	if (!reg || !valid_id(ext) || !valid_id(device_id) || !target_storable(t))
		return PGW_EINVAL;
	if (!registry_apps_allow(apps, t->app->name))
		return PGW_EAUTH;
	if (apps && apps->n == 0)
		apps = NULL;
	err = reg->ops->put(reg->store, ext, device_id, t, apps, pgw_wall_ms(), res);
	if (err != PGW_OK)
		return err;
	if (res->moved)
		pgw_log(PGW_LOG_INFO, "registry: device moved", "extension", ext,
			"device_id", device_id, "token",
			pgw_redact(registry_identity_token(t), red, sizeof red), NULL);
	return PGW_OK;
}

pgw_err registry_put(registry *reg, const char *ext, const char *device_id, const pgw_target *t,
		     bool *created)
{
	registry_put_outcome res = { 0 };
	pgw_err err = put_outcome(reg, ext, device_id, t, NULL, &res);

	if (err == PGW_OK && created)
		*created = res.created;
	return err;
}

static pgw_err dup_opt(const char *s, char **out)
{
	*out = NULL;
	if (!s)
		return PGW_OK;
	*out = strdup(s);
	return *out ? PGW_OK : PGW_ENOMEM;
}

/* The record a put stored: the target as given, the backend's times. */
static pgw_err record_of(const char *ext, const char *device_id, const pgw_target *t,
			 const registry_put_outcome *res, registry_device **out)
{
	registry_device *d = calloc(1, sizeof *d);

	*out = NULL;
	if (!d)
		return PGW_ENOMEM;
	d->provider = t->provider;
	d->environment = t->environment;
	d->silent = t->silent;
	d->created_at_ms = res->created_at_ms;
	d->updated_at_ms = res->updated_at_ms;
	if (dup_opt(ext, &d->extension) != PGW_OK || dup_opt(device_id, &d->device_id) != PGW_OK ||
	    dup_opt(t->app->name, &d->app) != PGW_OK || dup_opt(t->token, &d->token) != PGW_OK ||
	    dup_opt(t->remote_token, &d->remote_token) != PGW_OK ||
	    dup_opt(t->call_str, &d->call_str) != PGW_OK ||
	    dup_opt(t->call_snd, &d->call_snd) != PGW_OK) {
		registry_devices_free(d, 1);
		return PGW_ENOMEM;
	}
	*out = d;
	return PGW_OK;
}

pgw_err registry_put_stored(registry *reg, const char *ext, const char *device_id,
			    const pgw_target *t, const registry_apps *apps, bool *created,
			    registry_device **stored)
{
	registry_put_outcome res = { 0 };
	pgw_err err;

	*stored = NULL;
	err = put_outcome(reg, ext, device_id, t, apps, &res);
	if (err != PGW_OK)
		return err;
	if (created)
		*created = res.created;
	return record_of(ext, device_id, t, &res, stored);
}

static pgw_err delete_rows(registry *reg, const char *ext, const char *device_id,
			   const registry_apps *apps)
{
	int deleted = 0;
	pgw_err err;

	if (apps && apps->n == 0)
		apps = NULL;
	err = reg->ops->remove(reg->store, ext, device_id, apps, &deleted);
	if (err != PGW_OK)
		return err;
	return deleted ? PGW_OK : PGW_ENOTFOUND;
}

pgw_err registry_delete_device(registry *reg, const char *ext, const char *device_id,
			       const registry_apps *apps)
{
	if (!reg || !valid_id(ext) || !valid_id(device_id))
		return PGW_EINVAL;
	return delete_rows(reg, ext, device_id, apps);
}

pgw_err registry_delete_extension(registry *reg, const char *ext, const registry_apps *apps)
{
	if (!reg || !valid_id(ext))
		return PGW_EINVAL;
	return delete_rows(reg, ext, NULL, apps);
}

pgw_err registry_prune(registry *reg, pgw_provider provider, const char *app, const char *token,
		       int64_t not_after_ms, registry_pruned *what)
{
	registry_prune_outcome res = { 0 };
	pgw_err err;

	if (what)
		*what = REGISTRY_PRUNED_NOTHING;
	if (!reg || !app || !token || !*token ||
	    (provider != PGW_PROVIDER_APNS && provider != PGW_PROVIDER_FCM))
		return PGW_EINVAL;
	err = reg->ops->prune(reg->store, provider, app, token, not_after_ms, &res);
	if (err != PGW_OK || !what)
		return err;
	if (res.removed)
		*what = REGISTRY_PRUNED_DEVICE;
	else if (res.changed)
		*what = REGISTRY_PRUNED_REMOTE_TOKEN;
	return PGW_OK;
}

pgw_err registry_set_environment(registry *reg, const char *app, const char *token,
				 pgw_apns_env env)
{
	if (!reg || !app || !token || !*token ||
	    (env != PGW_ENV_UNSET && env != PGW_ENV_PRODUCTION && env != PGW_ENV_SANDBOX))
		return PGW_EINVAL;
	return reg->ops->set_environment(reg->store, app, token, env);
}

/* ---- reads ---- */

pgw_err registry_list(registry *reg, const char *ext, registry_device **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (!reg || !valid_id(ext))
		return PGW_EINVAL;
	return reg->ops->list(reg->store, ext, out, n);
}

pgw_err registry_get(registry *reg, const char *ext, const char *device_id, registry_device **out)
{
	*out = NULL;
	if (!reg || !valid_id(ext) || !valid_id(device_id))
		return PGW_EINVAL;
	return reg->ops->get(reg->store, ext, device_id, out);
}

pgw_err registry_count(registry *reg, uint64_t *n)
{
	*n = 0;
	if (!reg)
		return PGW_EINVAL;
	return reg->ops->count(reg->store, n);
}

/* ---- SIP-edge bindings ---- */

static bool binding_id_ok(const char *s)
{
	size_t i;

	if (!s || !*s)
		return false;
	for (i = 0; s[i]; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (i >= BINDING_ID_MAX)
			return false;
		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		      (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'))
			return false;
	}
	return true;
}

/* 1..max bytes of UTF-8 without control characters (a tab aside): what a
 * header value may hold, and what both stores keep byte for byte
 * (PostgreSQL text refuses bad UTF-8; refusing it here keeps them alike). */
static bool text_ok(const char *s, size_t max)
{
	size_t i = 0, len, step;

	if (!s || !*s)
		return false;
	len = strlen(s);
	if (len > max)
		return false;
	while (i < len) {
		unsigned char ch = (unsigned char)s[i];

		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return false;
		step = pgw_utf8_len((const unsigned char *)s + i, len - i);
		if (!step)
			return false;
		i += step;
	}
	return true;
}

/* b->app, when set, must name t's app: the store keeps t's app (or none). */
bool registry_binding_storable(const registry_binding *b, const pgw_target *t)
{
	if (!b || !binding_id_ok(b->id) || !text_ok(b->edge, EDGE_MAX) ||
	    !text_ok(b->aor, BINDING_TEXT_MAX) || !registry_valid_extension(b->extension) ||
	    !text_ok(b->contact, BINDING_TEXT_MAX) ||
	    (b->instance && !text_ok(b->instance, BINDING_TEXT_MAX)) || b->expires_at_ms <= 0)
		return false;
	if (t && !target_storable(t))
		return false;
	return !b->app || (t && strcmp(b->app, t->app->name) == 0);
}

pgw_err registry_binding_put(registry *reg, const registry_binding *b, const pgw_target *t,
			     bool *created)
{
	registry_binding_outcome res = { 0 };
	char red_token[32], red_id[32];
	pgw_err err;

	if (created)
		*created = false;
	if (!reg || !registry_binding_storable(b, t))
		return PGW_EINVAL;
	err = reg->ops->binding_put(reg->store, b, t, pgw_wall_ms(), &res);
	if (err != PGW_OK)
		return err;
	/* The binding id is the key to the phone's calls at the PBX: redacted. */
	if (res.moved)
		pgw_log(PGW_LOG_INFO, "registry: device moved", "extension", b->extension,
			"binding", pgw_redact(b->id, red_id, sizeof red_id), "token",
			pgw_redact(registry_identity_token(t), red_token, sizeof red_token), NULL);
	if (created)
		*created = res.created;
	return PGW_OK;
}

pgw_err registry_binding_get(registry *reg, const char *id, registry_binding **out)
{
	*out = NULL;
	if (!reg || !binding_id_ok(id))
		return PGW_EINVAL;
	return reg->ops->binding_get(reg->store, id, out);
}

pgw_err registry_binding_find(registry *reg, const char *edge, const char *aor,
			      const char *instance, const pgw_target *t, registry_binding **out)
{
	*out = NULL;
	if (!reg || !text_ok(edge, EDGE_MAX) || !text_ok(aor, BINDING_TEXT_MAX) ||
	    (instance && !text_ok(instance, BINDING_TEXT_MAX)) || (t && !target_storable(t)))
		return PGW_EINVAL;
	if (!instance && !t)
		return PGW_ENOTFOUND;
	return reg->ops->binding_find(reg->store, edge, aor, instance, t, out);
}

pgw_err registry_binding_list(registry *reg, const char *edge, int64_t now_ms,
			      registry_binding **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (!reg || !text_ok(edge, EDGE_MAX))
		return PGW_EINVAL;
	return reg->ops->binding_list(reg->store, edge, now_ms, out, n);
}

pgw_err registry_binding_delete(registry *reg, const char *id)
{
	int removed = 0;
	pgw_err err;

	if (!reg || !binding_id_ok(id))
		return PGW_EINVAL;
	err = reg->ops->binding_remove(reg->store, id, &removed);
	if (err != PGW_OK)
		return err;
	return removed ? PGW_OK : PGW_ENOTFOUND;
}

pgw_err registry_binding_expire(registry *reg, const char *edge, int64_t now_ms, int *removed)
{
	int n = 0;
	pgw_err err;

	if (removed)
		*removed = 0;
	if (!reg || !text_ok(edge, EDGE_MAX))
		return PGW_EINVAL;
	err = reg->ops->binding_expire(reg->store, edge, now_ms, &n);
	if (err == PGW_OK && removed)
		*removed = n;
	return err;
}

/* ---- records ---- */

static void device_clear(registry_device *d)
{
	free(d->extension);
	free(d->device_id);
	free(d->app);
	free(d->token);
	free(d->remote_token);
	free(d->call_str);
	free(d->call_snd);
	memset(d, 0, sizeof *d);
}

void registry_devices_free(registry_device *devs, size_t n)
{
	size_t i;

	if (!devs)
		return;
	for (i = 0; i < n; i++)
		device_clear(&devs[i]);
	free(devs);
}

registry_device *registry_devices_push(registry_device **arr, size_t *n, size_t *cap)
{
	registry_device *slot;

	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 4;
		registry_device *grown = realloc(*arr, ncap * sizeof **arr);

		if (!grown)
			return NULL;
		*arr = grown;
		*cap = ncap;
	}
	slot = &(*arr)[(*n)++];
	memset(slot, 0, sizeof *slot);
	return slot;
}

void registry_binding_clear(registry_binding *b)
{
	if (!b)
		return;
	free(b->id);
	free(b->edge);
	free(b->aor);
	free(b->extension);
	free(b->contact);
	free(b->instance);
	free(b->app);
	memset(b, 0, sizeof *b);
}

void registry_bindings_free(registry_binding *b, size_t n)
{
	size_t i;

	if (!b)
		return;
	for (i = 0; i < n; i++)
		registry_binding_clear(&b[i]);
	free(b);
}

void registry_binding_free(registry_binding *b)
{
	registry_bindings_free(b, 1);
}

registry_binding *registry_bindings_push(registry_binding **arr, size_t *n, size_t *cap)
{
	registry_binding *slot;

	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 4;
		registry_binding *grown = realloc(*arr, ncap * sizeof **arr);

		if (!grown)
			return NULL;
		*arr = grown;
		*cap = ncap;
	}
	slot = &(*arr)[(*n)++];
	memset(slot, 0, sizeof *slot);
	return slot;
}

pgw_err registry_device_target(const registry_device *d, const pgw_config *cfg, pgw_target *out)
{
	const pgw_app_conf *app;

	memset(out, 0, sizeof *out);
	if (!d || !cfg || !d->app)
		return PGW_EINVAL;
	app = config_app_find(cfg, d->app);
	if (!app)
		return PGW_ENOTFOUND;
	out->provider = d->provider;
	out->app = app;
	out->environment = d->environment;
	out->silent = d->silent;
	if (dup_opt(d->token, &out->token) != PGW_OK ||
	    dup_opt(d->remote_token, &out->remote_token) != PGW_OK ||
	    dup_opt(d->call_str, &out->call_str) != PGW_OK ||
	    dup_opt(d->call_snd, &out->call_snd) != PGW_OK) {
		target_clear(out);
		return PGW_ENOMEM;
	}
	return PGW_OK;
}
