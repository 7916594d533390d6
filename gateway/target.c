/* Push targets (SPEC §3 "Targets"): explicit tokens, RFC 8599 pn-* fields,
 * legacy Linphone pn-type/app-id/pn-tok, as JSON fields or as SIP Contact
 * parameters, resolved to one app of the config snapshot. Pure functions,
 * thread-safe; every input is bounds-checked (fuzzed via target_from_contact). */
#include "pushgw/target.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pushgw/sipuri.h"
#include "pushgw/util.h"

#define APNS_TOKEN_MIN 8
#define APNS_TOKEN_MAX 200
#define FCM_TOKEN_MAX 4096
/* Longer than any real Contact (an FCM token is the bulk of it). */
#define CONTACT_MAX 16384
/* Cap echoed input in messages so they stay one readable line. */
#define ECHO_MAX 80

/* The push parameters a device may carry, by their RFC 8599 / Linphone
 * names (the JSON pn-* form uses the same names). */
enum pn_field {
	PN_PROVIDER,
	PN_PARAM,
	PN_PRID,
	PN_TYPE,
	PN_APP_ID,
	PN_TOK,
	PN_CALL_STR,
	PN_CALL_SND,
	PN_SILENT,
	PN_COUNT,
};

static const char *const pn_names[PN_COUNT] = {
	"pn-provider", "pn-param", "pn-prid",	  "pn-type",   "app-id",
	"pn-tok",      "pn-call-str", "pn-call-snd", "pn-silent",
};

typedef struct pn_fields {
	const char *v[PN_COUNT]; /* borrowed; NULL when absent */
	bool silent;
} pn_fields;

enum { SVC_NONE = 0, SVC_VOIP = 1, SVC_REMOTE = 2 };

/* The APNs services a device's pn-param (or app-id) names. */
typedef struct apns_services {
	int count;     /* 1 or 2 */
	int only;      /* with count 1: SVC_VOIP or SVC_REMOTE */
	bool explicit; /* named by the device, not defaulted */
} apns_services;

typedef struct prid_token {
	const char *s;
	size_t n;
	int service; /* from its ":voip"/":remote" suffix, SVC_NONE without */
} prid_token;

/* What every resolver needs; named is the app a JSON "app" field chose. */
typedef struct resolve_ctx {
	const pgw_config *cfg;
	const pgw_api_key *key;
	const pgw_app_conf *named;
	pgw_field_error *err;
} resolve_ctx;

static int echo_len(size_t n)
{
	return (int)(n > ECHO_MAX ? ECHO_MAX : n);
}

static pgw_err fail(pgw_field_error *err, pgw_err code, const char *field,
		    const char *fmt, ...)
{
	va_list ap;

	snprintf(err->field, sizeof err->field, "%s", field);
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof err->message, fmt, ap);
	va_end(ap);
	return code;
}

static const char *service_name(int svc)
{
	return svc == SVC_VOIP ? "voip" : "remote";
}

static int service_parse(const char *s, size_t n)
{
	if (sipuri_name_is(s, n, "voip"))
		return SVC_VOIP;
	if (sipuri_name_is(s, n, "remote"))
		return SVC_REMOTE;
	return SVC_NONE;
}

static bool key_allows(const pgw_api_key *key, const pgw_app_conf *app)
{
	return !key || config_key_allows_app(key, app);
}

static char *dup_n(const char *s, size_t n)
{
	char *out = malloc(n + 1);

	if (!out)
		return NULL;
	memcpy(out, s, n);
	out[n] = '\0';
	return out;
}

/* ---- tokens ---- */

static pgw_err apns_token_dup(const char *s, size_t n, const char *field,
			      char **out, pgw_field_error *err)
{
	size_t i;
	char *t;

	if (n < APNS_TOKEN_MIN || n > APNS_TOKEN_MAX || n % 2)
		return fail(err, PGW_EINVAL, field,
			    "%s has %zu characters; an APNs token is an even number of hex digits (%d to %d)",
			    field, n, APNS_TOKEN_MIN, APNS_TOKEN_MAX);
	for (i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
		      (c >= 'A' && c <= 'F')))
			return fail(err, PGW_EINVAL, field,
				    "%s is not hex: an APNs token is hex digits only", field);
	}
	t = dup_n(s, n);
	if (!t)
		return PGW_ENOMEM;
	for (i = 0; i < n; i++)
		if (t[i] >= 'A' && t[i] <= 'F')
			t[i] = (char)(t[i] - 'A' + 'a');
	*out = t;
	return PGW_OK;
}

static pgw_err fcm_token_dup(const char *s, const char *field, char **out,
			     pgw_field_error *err)
{
	size_t n = strnlen(s, FCM_TOKEN_MAX + 1), i;

	if (n == 0 || n > FCM_TOKEN_MAX)
		return fail(err, PGW_EINVAL, field,
			    "%s must be an FCM registration token of 1 to %d characters",
			    field, FCM_TOKEN_MAX);
	for (i = 0; i < n; i++)
		if (s[i] <= ' ' || s[i] > '~')
			return fail(err, PGW_EINVAL, field,
				    "%s must be printable ASCII without spaces", field);
	*out = dup_n(s, n);
	return *out ? PGW_OK : PGW_ENOMEM;
}

/* ---- app resolution ---- */

static pgw_err app_by_name(const resolve_ctx *rc, const char *name,
			   const pgw_app_conf **app)
{
	const pgw_app_conf *a = config_app_find(rc->cfg, name);

	if (!a)
		return fail(rc->err, PGW_EINVAL, "app", "unknown app \"%.*s\"",
			    echo_len(strlen(name)), name);
	if (!key_allows(rc->key, a))
		return fail(rc->err, PGW_EAUTH, "app",
			    "app \"%s\" is not allowed for this key", a->name);
	*app = a;
	return PGW_OK;
}

/* The key's only app, else the only app the key may use. */
static pgw_err app_default(const resolve_ctx *rc, const pgw_app_conf **app)
{
	const pgw_app_conf *only = NULL;
	size_t i, n = 0;

	if (rc->key && rc->key->n_apps == 1) {
		only = config_app_find(rc->cfg, rc->key->apps[0]);
		if (only) {
			*app = only;
			return PGW_OK;
		}
	}
	for (i = 0; i < rc->cfg->n_apps; i++) {
		if (key_allows(rc->key, &rc->cfg->apps[i])) {
			only = &rc->cfg->apps[i];
			n++;
		}
	}
	if (n != 1)
		return fail(rc->err, PGW_EINVAL, "app",
			    "app is required when the key may use several apps");
	*app = only;
	return PGW_OK;
}

static bool span_eq_ci(const char *a, size_t n, const char *b)
{
	return b && strlen(b) == n && strncasecmp(a, b, n) == 0;
}

/* The app whose APNs bundle id is bundle (and whose team, when both are
 * known, is team); field is the parameter that named them. */
static pgw_err match_apns_app(const resolve_ctx *rc, const char *team,
			      size_t team_len, const char *bundle,
			      size_t bundle_len, const char *field,
			      const pgw_app_conf **app)
{
	const pgw_app_conf *wrong_team = NULL;
	bool forbidden = false;
	size_t i;

	if (rc->named) {
		const pgw_apns_conf *ac = &rc->named->apns;
		if (ac->enabled && !span_eq_ci(bundle, bundle_len, ac->bundle_id))
			return fail(rc->err, PGW_EINVAL, field,
				    "bundle id \"%.*s\" in %s is not app \"%s\"'s bundle id %s",
				    echo_len(bundle_len), bundle, field,
				    rc->named->name, ac->bundle_id);
		if (ac->enabled && team && ac->team_id &&
		    !span_eq_ci(team, team_len, ac->team_id))
			return fail(rc->err, PGW_EINVAL, field,
				    "team id \"%.*s\" in %s is not app \"%s\"'s team id %s",
				    echo_len(team_len), team, field,
				    rc->named->name, ac->team_id);
		*app = rc->named;
		return PGW_OK;
	}
	for (i = 0; i < rc->cfg->n_apps; i++) {
		const pgw_app_conf *a = &rc->cfg->apps[i];

		if (!a->apns.enabled ||
		    !span_eq_ci(bundle, bundle_len, a->apns.bundle_id))
			continue;
		if (!key_allows(rc->key, a)) {
			forbidden = true;
			continue;
		}
		if (team && a->apns.team_id &&
		    !span_eq_ci(team, team_len, a->apns.team_id)) {
			wrong_team = a;
			continue;
		}
		*app = a;
		return PGW_OK;
	}
	if (wrong_team)
		return fail(rc->err, PGW_EINVAL, field,
			    "team id \"%.*s\" in %s is not app \"%s\"'s team id %s",
			    echo_len(team_len), team, field, wrong_team->name,
			    wrong_team->apns.team_id);
	if (forbidden)
		return fail(rc->err, PGW_EAUTH, field,
			    "the app with bundle id \"%.*s\" is not allowed for this key",
			    echo_len(bundle_len), bundle);
	return fail(rc->err, PGW_EINVAL, field,
		    "no configured app has the APNs bundle id \"%.*s\"",
		    echo_len(bundle_len), bundle);
}

static bool fcm_app_matches(const pgw_app_conf *a, const char *param)
{
	if (!a->fcm.enabled || !param)
		return false;
	return (a->fcm.project_id && strcmp(a->fcm.project_id, param) == 0) ||
	       (a->fcm.sender_id && strcmp(a->fcm.sender_id, param) == 0);
}

/* The app whose Firebase project id or sender id is param; when none is,
 * the only FCM app the key may use. param may be NULL. */
static pgw_err match_fcm_app(const resolve_ctx *rc, const char *param,
			     const char *field, const pgw_app_conf **app)
{
	const pgw_app_conf *single = NULL;
	bool forbidden = false;
	size_t i, n_fcm = 0;

	if (rc->named) {
		*app = rc->named;
		return PGW_OK;
	}
	for (i = 0; i < rc->cfg->n_apps; i++) {
		const pgw_app_conf *a = &rc->cfg->apps[i];
		bool allowed = key_allows(rc->key, a);

		if (fcm_app_matches(a, param)) {
			if (allowed) {
				*app = a;
				return PGW_OK;
			}
			forbidden = true;
		}
		if (allowed && a->fcm.enabled) {
			single = a;
			n_fcm++;
		}
	}
	/* A token of an app the key may not use must not go out through
	 * another project (FCM would call it dead and it would be pruned). */
	if (forbidden)
		return fail(rc->err, PGW_EAUTH, field,
			    "the app with Firebase project \"%.*s\" is not allowed for this key",
			    echo_len(strlen(param)), param);
	if (n_fcm == 1) {
		*app = single;
		return PGW_OK;
	}
	if (!param)
		return fail(rc->err, PGW_EINVAL, field,
			    "%s is required: it names the Firebase project id or sender id of the app",
			    field);
	return fail(rc->err, PGW_EINVAL, field,
		    "no configured app has the Firebase project id or sender id \"%.*s\"",
		    echo_len(strlen(param)), param);
}

/* ---- APNs tokens and services ---- */

/* Split "<A>[:svc]" or "<A>:svc&<B>:svc" into at most two tokens. */
static pgw_err split_apns_tokens(const char *prid, const char *field,
				 prid_token tok[2], int *count,
				 pgw_field_error *err)
{
	const char *p = prid, *end = prid + strlen(prid);
	int n = 0;

	for (;;) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *seg_end = amp ? amp : end, *colon = NULL, *q;

		if (n == 2)
			return fail(err, PGW_EINVAL, field,
				    "%s has more than 2 tokens; expected 1, or 2 joined by '&'",
				    field);
		for (q = p; q < seg_end; q++)
			if (*q == ':')
				colon = q;
		tok[n].s = p;
		tok[n].n = (size_t)((colon ? colon : seg_end) - p);
		tok[n].service = SVC_NONE;
		if (colon) {
			size_t sl = (size_t)(seg_end - colon - 1);
			tok[n].service = service_parse(colon + 1, sl);
			if (tok[n].service == SVC_NONE)
				return fail(err, PGW_EINVAL, field,
					    "%s has an unknown token suffix \":%.*s\"; expected :voip or :remote",
					    field, echo_len(sl), colon + 1);
		}
		if (tok[n].n == 0)
			return fail(err, PGW_EINVAL, field,
				    "%s has an empty token", field);
		n++;
		if (!amp)
			break;
		p = amp + 1;
	}
	*count = n;
	return PGW_OK;
}

static const char *services_text(const apns_services *svc)
{
	if (svc->count == 2)
		return "voip&remote";
	return service_name(svc->only);
}

/* Pair the tokens of tok_field with the services param_field names and
 * store them as the VoIP and remote tokens of out. */
static pgw_err assign_apns_tokens(const apns_services *svc, prid_token tok[2],
				  int count, const char *tok_field,
				  const char *param_field, pgw_target *out,
				  pgw_field_error *err)
{
	char **slot;
	pgw_err rc;
	int i;

	if (count != svc->count)
		return fail(err, PGW_EINVAL, tok_field,
			    "%s has %d token%s but %s names %d service%s (%s)",
			    tok_field, count, count == 1 ? "" : "s", param_field,
			    svc->count, svc->count == 1 ? "" : "s",
			    services_text(svc));
	if (count == 1) {
		if (tok[0].service == SVC_NONE) {
			tok[0].service = svc->only;
		} else if (tok[0].service != svc->only && svc->explicit) {
			return fail(err, PGW_EINVAL, tok_field,
				    "%s's token is suffixed :%s but %s names the %s service",
				    tok_field, service_name(tok[0].service),
				    param_field, service_name(svc->only));
		}
	} else {
		if (tok[0].service == SVC_NONE || tok[1].service == SVC_NONE)
			return fail(err, PGW_EINVAL, tok_field,
				    "%s needs a :voip or :remote suffix on each of its 2 tokens",
				    tok_field);
		if (tok[0].service == tok[1].service)
			return fail(err, PGW_EINVAL, tok_field,
				    "%s has two :%s tokens; expected one :voip and one :remote",
				    tok_field, service_name(tok[0].service));
	}
	for (i = 0; i < count; i++) {
		slot = tok[i].service == SVC_VOIP ? &out->token : &out->remote_token;
		rc = apns_token_dup(tok[i].s, tok[i].n, tok_field, slot, err);
		if (rc != PGW_OK)
			return rc;
	}
	return PGW_OK;
}

/* "voip", "remote", "voip&remote" or "remote&voip". */
static bool parse_services(const char *s, size_t n, apns_services *svc)
{
	const char *amp = memchr(s, '&', n);
	int a, b;

	svc->explicit = true;
	if (!amp) {
		svc->count = 1;
		svc->only = service_parse(s, n);
		return svc->only != SVC_NONE;
	}
	a = service_parse(s, (size_t)(amp - s));
	b = service_parse(amp + 1, n - (size_t)(amp - s) - 1);
	svc->count = 2;
	return a != SVC_NONE && b != SVC_NONE && a != b;
}

/* ---- RFC 8599 ---- */

static pgw_err rfc8599_apns(const resolve_ctx *rc, const pn_fields *f,
			    pgw_target *out)
{
	const char *param = f->v[PN_PARAM], *prid = f->v[PN_PRID];
	const char *dot, *last, *bundle, *end;
	apns_services svc = { .count = 1, .only = SVC_REMOTE };
	prid_token tok[2];
	int count;
	pgw_err err;

	if (!param || !*param)
		return fail(rc->err, PGW_EINVAL, "pn-param",
			    "pn-param is required: <team id>.<bundle id>[.<services>]");
	end = param + strlen(param);
	dot = strchr(param, '.');
	if (!dot || dot == param)
		return fail(rc->err, PGW_EINVAL, "pn-param",
			    "pn-param \"%.*s\" is not <team id>.<bundle id>[.<services>]",
			    echo_len((size_t)(end - param)), param);
	bundle = dot + 1;
	last = strrchr(param, '.');
	if (last > dot && parse_services(last + 1, (size_t)(end - last - 1), &svc))
		end = last;
	else if (last > dot && memchr(last + 1, '&', strlen(last + 1)))
		return fail(rc->err, PGW_EINVAL, "pn-param",
			    "pn-param services \"%.*s\" must be voip, remote, voip&remote or remote&voip",
			    echo_len(strlen(last + 1)), last + 1);
	else
		svc = (apns_services){ .count = 1, .only = SVC_REMOTE };
	if (end == bundle)
		return fail(rc->err, PGW_EINVAL, "pn-param",
			    "pn-param has no bundle id: expected <team id>.<bundle id>[.<services>]");
	err = match_apns_app(rc, param, (size_t)(dot - param), bundle,
			     (size_t)(end - bundle), "pn-param", &out->app);
	if (err != PGW_OK)
		return err;
	if (!prid || !*prid)
		return fail(rc->err, PGW_EINVAL, "pn-prid",
			    "pn-prid is required: the device's APNs token");
	err = split_apns_tokens(prid, "pn-prid", tok, &count, rc->err);
	if (err != PGW_OK)
		return err;
	return assign_apns_tokens(&svc, tok, count, "pn-prid", "pn-param", out,
				  rc->err);
}

static pgw_err rfc8599_fcm(const resolve_ctx *rc, const pn_fields *f,
			   pgw_target *out)
{
	const char *param = f->v[PN_PARAM];
	pgw_err err;

	err = match_fcm_app(rc, param && *param ? param : NULL, "pn-param",
			    &out->app);
	if (err != PGW_OK)
		return err;
	if (!f->v[PN_PRID] || !*f->v[PN_PRID])
		return fail(rc->err, PGW_EINVAL, "pn-prid",
			    "pn-prid is required: the device's FCM registration token");
	/* FCM tokens contain ':' themselves: the whole value is the token. */
	return fcm_token_dup(f->v[PN_PRID], "pn-prid", &out->token, rc->err);
}

static pgw_err resolve_rfc8599(const resolve_ctx *rc, const pn_fields *f,
			       pgw_target *out)
{
	const char *p = f->v[PN_PROVIDER];
	size_t n = strlen(p);

	if (sipuri_name_is(p, n, "apns") || sipuri_name_is(p, n, "apns.dev")) {
		out->provider = PGW_PROVIDER_APNS;
		out->environment = n == 4 ? PGW_ENV_PRODUCTION : PGW_ENV_SANDBOX;
		return rfc8599_apns(rc, f, out);
	}
	if (sipuri_name_is(p, n, "fcm") || sipuri_name_is(p, n, "android") ||
	    sipuri_name_is(p, n, "firebase") || sipuri_name_is(p, n, "google")) {
		out->provider = PGW_PROVIDER_FCM;
		return rfc8599_fcm(rc, f, out);
	}
	return fail(rc->err, PGW_EINVAL, "pn-provider",
		    "unknown pn-provider \"%.*s\": expected apns, apns.dev or fcm",
		    echo_len(n), p);
}

/* ---- legacy Linphone: pn-type, app-id, pn-tok ---- */

static bool strip_suffix(const char *s, size_t *n, const char *suffix)
{
	size_t sl = strlen(suffix);

	if (*n <= sl || !sipuri_name_is(s + *n - sl, sl, suffix))
		return false;
	*n -= sl;
	return true;
}

static pgw_err legacy_apple(const resolve_ctx *rc, const pn_fields *f,
			    pgw_target *out)
{
	const char *app_id = f->v[PN_APP_ID], *tok_s = f->v[PN_TOK];
	apns_services svc = { .count = 1, .only = SVC_REMOTE };
	prid_token tok[2];
	size_t n;
	int count;
	pgw_err err;

	if (!app_id || !*app_id)
		return fail(rc->err, PGW_EINVAL, "app-id",
			    "app-id is required: the bundle id (plus .voip, .dev or .prod)");
	n = strlen(app_id);
	if (strip_suffix(app_id, &n, ".dev"))
		out->environment = PGW_ENV_SANDBOX;
	else if (strip_suffix(app_id, &n, ".prod"))
		out->environment = PGW_ENV_PRODUCTION;
	if (strip_suffix(app_id, &n, ".voip")) {
		svc.only = SVC_VOIP;
		svc.explicit = true;
	}
	err = match_apns_app(rc, NULL, 0, app_id, n, "app-id", &out->app);
	if (err != PGW_OK)
		return err;
	if (!tok_s || !*tok_s)
		return fail(rc->err, PGW_EINVAL, "pn-tok",
			    "pn-tok is required: the device's APNs token");
	err = split_apns_tokens(tok_s, "pn-tok", tok, &count, rc->err);
	if (err != PGW_OK)
		return err;
	/* Old apps named their services in pn-tok's suffixes, not app-id. */
	if (count == 2)
		svc.count = 2;
	else if (!svc.explicit && tok[0].service != SVC_NONE)
		svc.only = tok[0].service;
	return assign_apns_tokens(&svc, tok, count, "pn-tok", "app-id", out,
				  rc->err);
}

static pgw_err legacy_fcm(const resolve_ctx *rc, const pn_fields *f,
			  pgw_target *out)
{
	const char *app_id = f->v[PN_APP_ID];
	pgw_err err;

	err = match_fcm_app(rc, app_id && *app_id ? app_id : NULL, "app-id",
			    &out->app);
	if (err != PGW_OK)
		return err;
	if (!f->v[PN_TOK] || !*f->v[PN_TOK])
		return fail(rc->err, PGW_EINVAL, "pn-tok",
			    "pn-tok is required: the device's FCM registration token");
	return fcm_token_dup(f->v[PN_TOK], "pn-tok", &out->token, rc->err);
}

static pgw_err resolve_legacy(const resolve_ctx *rc, const pn_fields *f,
			      pgw_target *out)
{
	const char *t = f->v[PN_TYPE];
	size_t n;

	if (!t || !*t)
		return fail(rc->err, PGW_EINVAL, "pn-type",
			    "pn-type is required with app-id and pn-tok (or use pn-provider, pn-param, pn-prid)");
	n = strlen(t);
	if (sipuri_name_is(t, n, "apple")) {
		out->provider = PGW_PROVIDER_APNS;
		return legacy_apple(rc, f, out);
	}
	if (sipuri_name_is(t, n, "android") || sipuri_name_is(t, n, "firebase") ||
	    sipuri_name_is(t, n, "google") || sipuri_name_is(t, n, "fcm")) {
		out->provider = PGW_PROVIDER_FCM;
		return legacy_fcm(rc, f, out);
	}
	return fail(rc->err, PGW_EINVAL, "pn-type",
		    "unknown pn-type \"%.*s\": expected apple, android, firebase or google",
		    echo_len(n), t);
}

/* Resolve pn-* fields (from JSON or a Contact) into out. */
static pgw_err resolve_pn(const resolve_ctx *rc, const pn_fields *f,
			  const char *missing_field, pgw_target *out)
{
	pgw_err err;

	if (f->v[PN_PROVIDER])
		err = resolve_rfc8599(rc, f, out);
	else if (f->v[PN_TYPE] || f->v[PN_APP_ID] || f->v[PN_TOK])
		err = resolve_legacy(rc, f, out);
	else if (f->v[PN_PARAM] || f->v[PN_PRID])
		return fail(rc->err, PGW_EINVAL, "pn-provider",
			    "pn-provider is required with pn-param and pn-prid");
	else
		return fail(rc->err, PGW_EINVAL, missing_field,
			    "no push parameters: expected pn-provider, pn-param and pn-prid");
	if (err != PGW_OK)
		return err;
	if (f->v[PN_CALL_STR] && !(out->call_str = strdup(f->v[PN_CALL_STR])))
		return PGW_ENOMEM;
	if (f->v[PN_CALL_SND] && !(out->call_snd = strdup(f->v[PN_CALL_SND])))
		return PGW_ENOMEM;
	out->silent = f->silent;
	return PGW_OK;
}

static int pn_field_lookup(const char *name, size_t n)
{
	int i;

	for (i = 0; i < PN_COUNT; i++)
		if (sipuri_name_is(name, n, pn_names[i]))
			return i;
	return -1;
}

static pgw_err parse_silent(const char *v, bool *silent, pgw_field_error *err)
{
	if (!v || strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0 ||
	    strcasecmp(v, "yes") == 0) {
		*silent = true;
		return PGW_OK;
	}
	if (strcmp(v, "0") == 0 || strcasecmp(v, "false") == 0 ||
	    strcasecmp(v, "no") == 0) {
		*silent = false;
		return PGW_OK;
	}
	return fail(err, PGW_EINVAL, "pn-silent", "pn-silent must be 1 or 0");
}

/* ---- SIP Contact ---- */

typedef struct contact_params {
	char *owned[PN_COUNT];
	pn_fields f;
} contact_params;

static void contact_params_clear(contact_params *cp)
{
	int i;

	for (i = 0; i < PN_COUNT; i++)
		free(cp->owned[i]);
}

static pgw_err contact_take_param(contact_params *cp, const sipuri_param *p,
				  pgw_field_error *err)
{
	int id = pn_field_lookup(p->name, p->name_len);
	pgw_err rc;

	/* Parameters we do not read are the registrar's business. */
	if (id < 0)
		return PGW_OK;
	if (cp->f.v[id])
		return fail(err, PGW_EINVAL, pn_names[id],
			    "%s appears more than once in the contact", pn_names[id]);
	rc = sipuri_unescape(p->value ? p->value : "", p->value_len,
			     &cp->owned[id]);
	if (rc == PGW_EINVAL)
		return fail(err, PGW_EINVAL, pn_names[id],
			    "%s has a bad %%-escape: expected %%XX with two hex digits",
			    pn_names[id]);
	if (rc != PGW_OK)
		return rc;
	cp->f.v[id] = cp->owned[id];
	if (id == PN_SILENT)
		return parse_silent(p->value ? cp->owned[id] : NULL,
				    &cp->f.silent, err);
	return PGW_OK;
}

static pgw_err contact_collect(const char *contact, size_t len,
			       contact_params *cp, pgw_field_error *err)
{
	const char *why = NULL, *cur, *end;
	sipuri_view view;
	sipuri_param p;
	pgw_err rc;

	if (sipuri_split(contact, len, &view, &why) != PGW_OK)
		return fail(err, PGW_EINVAL, "contact", "%s", why);
	cur = view.params;
	end = view.params + view.params_len;
	while (sipuri_next_param(&cur, end, &p)) {
		rc = contact_take_param(cp, &p, err);
		if (rc != PGW_OK)
			return rc;
	}
	return PGW_OK;
}

static pgw_err contact_resolve(const char *contact, const resolve_ctx *rc,
			       pgw_target *out)
{
	contact_params cp;
	size_t len;
	pgw_err err;

	memset(&cp, 0, sizeof cp);
	if (!contact)
		return fail(rc->err, PGW_EINVAL, "contact", "contact is required");
	len = strnlen(contact, CONTACT_MAX + 1);
	if (len > CONTACT_MAX)
		return fail(rc->err, PGW_EINVAL, "contact",
			    "contact is longer than %d bytes", CONTACT_MAX);
	err = contact_collect(contact, len, &cp, rc->err);
	if (err == PGW_OK)
		err = resolve_pn(rc, &cp.f, "contact", out);
	contact_params_clear(&cp);
	return err;
}

/* ---- JSON forms ---- */

static pgw_err json_opt_string(const json_t *obj, const char *name,
			       const char **out, pgw_field_error *err)
{
	const json_t *v = json_object_get(obj, name);

	*out = NULL;
	if (!v || json_is_null(v))
		return PGW_OK;
	if (!json_is_string(v))
		return fail(err, PGW_EINVAL, name, "%s must be a string", name);
	/* An embedded NUL would make the C string a different value. */
	if (strlen(json_string_value(v)) != json_string_length(v))
		return fail(err, PGW_EINVAL, name, "%s contains a NUL byte", name);
	*out = json_string_value(v);
	return PGW_OK;
}

static bool name_in(const char *name, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(name, *list) == 0)
			return true;
	return false;
}

static pgw_err json_check_fields(const json_t *dev, const char *const *allowed,
				 const char *form, pgw_field_error *err)
{
	const char *name;
	const json_t *v;

	json_object_foreach((json_t *)dev, name, v) {
		if (!name_in(name, allowed))
			return fail(err, PGW_EINVAL, name,
				    "unexpected field \"%.*s\" in a %s device",
				    echo_len(strlen(name)), name, form);
	}
	return PGW_OK;
}

static pgw_err json_named_app(const json_t *dev, resolve_ctx *rc)
{
	const char *name;
	pgw_err err = json_opt_string(dev, "app", &name, rc->err);

	if (err != PGW_OK || !name)
		return err;
	return app_by_name(rc, name, &rc->named);
}

static pgw_err explicit_environment(const json_t *dev, pgw_target *out,
				    pgw_field_error *err)
{
	const char *env;
	pgw_err rc = json_opt_string(dev, "environment", &env, err);

	if (rc != PGW_OK || !env)
		return rc;
	if (out->provider != PGW_PROVIDER_APNS)
		return fail(err, PGW_EINVAL, "environment",
			    "environment applies to apns devices only");
	if (strcmp(env, "production") == 0)
		out->environment = PGW_ENV_PRODUCTION;
	else if (strcmp(env, "sandbox") == 0)
		out->environment = PGW_ENV_SANDBOX;
	else
		return fail(err, PGW_EINVAL, "environment",
			    "environment must be \"production\" or \"sandbox\"");
	return PGW_OK;
}

static pgw_err explicit_tokens(const json_t *dev, pgw_target *out,
			       pgw_field_error *err)
{
	const char *token, *remote;
	pgw_err rc;

	rc = json_opt_string(dev, "token", &token, err);
	if (rc == PGW_OK)
		rc = json_opt_string(dev, "remote_token", &remote, err);
	if (rc != PGW_OK)
		return rc;
	if (out->provider == PGW_PROVIDER_FCM) {
		if (remote)
			return fail(err, PGW_EINVAL, "remote_token",
				    "remote_token applies to apns devices only");
		if (!token)
			return fail(err, PGW_EINVAL, "token",
				    "token is required: the FCM registration token");
		return fcm_token_dup(token, "token", &out->token, err);
	}
	if (!token && !remote)
		return fail(err, PGW_EINVAL, "token",
			    "token is required (or remote_token alone for an alert-only device)");
	if (token) {
		rc = apns_token_dup(token, strlen(token), "token", &out->token, err);
		if (rc != PGW_OK)
			return rc;
	}
	if (remote)
		return apns_token_dup(remote, strlen(remote), "remote_token",
				      &out->remote_token, err);
	return PGW_OK;
}

static pgw_err from_explicit(const json_t *dev, resolve_ctx *rc,
			     pgw_target *out)
{
	static const char *const allowed[] = { "provider", "token", "remote_token",
					       "app", "environment", NULL };
	const char *provider;
	pgw_err err;

	err = json_check_fields(dev, allowed, "provider/token", rc->err);
	if (err == PGW_OK)
		err = json_opt_string(dev, "provider", &provider, rc->err);
	if (err != PGW_OK)
		return err;
	if (provider && strcmp(provider, "apns") == 0)
		out->provider = PGW_PROVIDER_APNS;
	else if (provider && strcmp(provider, "fcm") == 0)
		out->provider = PGW_PROVIDER_FCM;
	else
		return fail(rc->err, PGW_EINVAL, "provider",
			    "provider must be \"apns\" or \"fcm\"");
	err = explicit_tokens(dev, out, rc->err);
	if (err == PGW_OK)
		err = explicit_environment(dev, out, rc->err);
	if (err == PGW_OK)
		err = json_named_app(dev, rc);
	if (err != PGW_OK)
		return err;
	if (rc->named) {
		out->app = rc->named;
		return PGW_OK;
	}
	return app_default(rc, &out->app);
}

static pgw_err from_contact_json(const json_t *dev, resolve_ctx *rc,
				 pgw_target *out)
{
	static const char *const allowed[] = { "contact", "app", NULL };
	const char *contact;
	pgw_err err;

	err = json_check_fields(dev, allowed, "contact", rc->err);
	if (err == PGW_OK)
		err = json_opt_string(dev, "contact", &contact, rc->err);
	if (err == PGW_OK)
		err = json_named_app(dev, rc);
	if (err != PGW_OK)
		return err;
	return contact_resolve(contact, rc, out);
}

static pgw_err json_pn_silent(const json_t *dev, pn_fields *f,
			      pgw_field_error *err)
{
	const json_t *v = json_object_get(dev, "pn-silent");

	if (!v || json_is_null(v))
		return PGW_OK;
	if (json_is_boolean(v)) {
		f->silent = json_is_true(v);
		return PGW_OK;
	}
	if (json_is_integer(v) &&
	    (json_integer_value(v) == 0 || json_integer_value(v) == 1)) {
		f->silent = json_integer_value(v) == 1;
		return PGW_OK;
	}
	if (json_is_string(v))
		return parse_silent(json_string_value(v), &f->silent, err);
	return fail(err, PGW_EINVAL, "pn-silent", "pn-silent must be true or false");
}

static pgw_err from_pn_json(const json_t *dev, resolve_ctx *rc, pgw_target *out)
{
	static const char *const allowed[] = {
		"pn-provider", "pn-param",    "pn-prid",     "pn-type",	  "app-id",
		"pn-tok",      "pn-call-str", "pn-call-snd", "pn-silent", "app",
		NULL,
	};
	pn_fields f;
	pgw_err err;
	int i;

	memset(&f, 0, sizeof f);
	err = json_check_fields(dev, allowed, "pn-*", rc->err);
	for (i = 0; err == PGW_OK && i < PN_COUNT; i++)
		if (i != PN_SILENT)
			err = json_opt_string(dev, pn_names[i], &f.v[i], rc->err);
	if (err == PGW_OK)
		err = json_pn_silent(dev, &f, rc->err);
	if (err == PGW_OK)
		err = json_named_app(dev, rc);
	if (err != PGW_OK)
		return err;
	return resolve_pn(rc, &f, "pn-provider", out);
}

static bool json_has_pn_field(const json_t *dev)
{
	int i;

	for (i = 0; i < PN_COUNT; i++)
		if (json_object_get(dev, pn_names[i]))
			return true;
	return false;
}

/* ---- public ---- */

static pgw_err finish(pgw_err err, pgw_target *out)
{
	if (err != PGW_OK)
		target_clear(out);
	return err;
}

pgw_err target_from_json(const json_t *device, const pgw_config *cfg,
			 const pgw_api_key *key, pgw_target *out,
			 pgw_field_error *err)
{
	pgw_field_error scratch;
	resolve_ctx rc = { .cfg = cfg, .key = key, .err = err ? err : &scratch };

	memset(out, 0, sizeof *out);
	memset(rc.err, 0, sizeof *rc.err);
	if (!cfg)
		return fail(rc.err, PGW_EINVAL, "device", "no configuration loaded");
	if (!json_is_object(device))
		return fail(rc.err, PGW_EINVAL, "device",
			    "a device must be a JSON object");
	if (json_object_get(device, "contact"))
		return finish(from_contact_json(device, &rc, out), out);
	if (json_object_get(device, "provider"))
		return finish(from_explicit(device, &rc, out), out);
	if (json_has_pn_field(device))
		return finish(from_pn_json(device, &rc, out), out);
	return fail(rc.err, PGW_EINVAL, "provider",
		    "a device needs provider and token, contact, or pn-provider, pn-param and pn-prid");
}

pgw_err target_from_contact(const char *contact, const pgw_config *cfg,
			    const pgw_api_key *key, pgw_target *out,
			    pgw_field_error *err)
{
	pgw_field_error scratch;
	resolve_ctx rc = { .cfg = cfg, .key = key, .err = err ? err : &scratch };

	memset(out, 0, sizeof *out);
	memset(rc.err, 0, sizeof *rc.err);
	if (!cfg)
		return fail(rc.err, PGW_EINVAL, "contact", "no configuration loaded");
	return finish(contact_resolve(contact, &rc, out), out);
}

void target_clear(pgw_target *t)
{
	if (!t)
		return;
	free(t->token);
	free(t->remote_token);
	free(t->call_str);
	free(t->call_snd);
	memset(t, 0, sizeof *t);
}

static pgw_err dup_opt(const char *s, char **out)
{
	*out = NULL;
	if (!s)
		return PGW_OK;
	*out = strdup(s);
	return *out ? PGW_OK : PGW_ENOMEM;
}

pgw_err target_copy(const pgw_target *src, pgw_target *dst)
{
	memset(dst, 0, sizeof *dst);
	dst->provider = src->provider;
	dst->app = src->app;
	dst->environment = src->environment;
	dst->silent = src->silent;
	if (dup_opt(src->token, &dst->token) != PGW_OK ||
	    dup_opt(src->remote_token, &dst->remote_token) != PGW_OK ||
	    dup_opt(src->call_str, &dst->call_str) != PGW_OK ||
	    dup_opt(src->call_snd, &dst->call_snd) != PGW_OK) {
		target_clear(dst);
		return PGW_ENOMEM;
	}
	return PGW_OK;
}

static bool opt_eq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

static bool app_eq(const pgw_app_conf *a, const pgw_app_conf *b)
{
	if (!a || !b)
		return a == b;
	return a == b || opt_eq(a->name, b->name);
}

bool target_equal(const pgw_target *a, const pgw_target *b)
{
	return a->provider == b->provider && app_eq(a->app, b->app) &&
	       opt_eq(a->token, b->token) &&
	       opt_eq(a->remote_token, b->remote_token);
}

void target_describe(const pgw_target *t, char *out, size_t n)
{
	char red[32];
	const char *tok = t->token ? t->token : t->remote_token;

	if (n == 0)
		return;
	pgw_redact(tok, red, sizeof red);
	snprintf(out, n, "%s:%s",
		 t->provider == PGW_PROVIDER_FCM ? "fcm" : "apns", red);
}
