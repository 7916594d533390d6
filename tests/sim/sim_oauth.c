/* Google OAuth token endpoint (see sim_oauth.h): form decoding, the grant
 * checks Google makes before looking at the assertion, token issuing and the
 * store of issued tokens. The assertion itself is judged by sim_sa.c. Event
 * loop thread only. */
#include "sim_oauth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sim.h"
#include "sim_map.h"
#include "sim_sa.h"

#define SIM_OAUTH_GRANT "urn:ietf:params:oauth:grant-type:jwt-bearer"
#define SIM_OAUTH_FORM "application/x-www-form-urlencoded"
#define SIM_OAUTH_MISSING "Missing required parameter: "

struct sim_oauth {
	struct sim_sa *accounts;
	struct sim_map *tokens; /* access token -> int64_t expiry, wall-clock ms */
	unsigned ttl_s;
	unsigned fail_next;
	unsigned delay_ms; /* every answer of the token endpoint waits this long */
};

struct sim_oauth *sim_oauth_new(const struct sim_config *cfg, char *err, size_t errlen)
{
	struct sim_oauth *oauth = calloc(1, sizeof(*oauth));
	size_t i;

	if (!oauth) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	oauth->ttl_s = cfg->token_ttl_s;
	oauth->accounts = sim_sa_new();
	oauth->tokens = sim_map_new(free);
	if (!oauth->accounts || !oauth->tokens) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (i = 0; i < cfg->nservice_accounts; i++)
		if (sim_sa_add_json(oauth->accounts, cfg->service_accounts[i], err, errlen) < 0)
			goto fail;
	for (i = 0; i < cfg->nsa_pubs; i++)
		if (sim_sa_add_pub(oauth->accounts, cfg->sa_pubs[i], err, errlen) < 0)
			goto fail;
	return oauth;
fail:
	sim_oauth_free(oauth);
	return NULL;
}

void sim_oauth_free(struct sim_oauth *oauth)
{
	if (!oauth)
		return;
	sim_sa_free(oauth->accounts);
	sim_map_free(oauth->tokens);
	free(oauth);
}

/* ---- controls ---- */

void sim_oauth_set_ttl(struct sim_oauth *oauth, unsigned ttl_s)
{
	oauth->ttl_s = ttl_s;
}

void sim_oauth_set_delay(struct sim_oauth *oauth, unsigned delay_ms)
{
	oauth->delay_ms = delay_ms;
}

void sim_oauth_fail_next(struct sim_oauth *oauth, unsigned n)
{
	oauth->fail_next = n;
}

void sim_oauth_revoke_all(struct sim_oauth *oauth)
{
	sim_map_clear(oauth->tokens);
}

void sim_oauth_reset(struct sim_oauth *oauth)
{
	oauth->fail_next = 0;
}

bool sim_oauth_token_valid(const struct sim_oauth *oauth, const char *token, int64_t now_ms)
{
	const int64_t *expires_ms = sim_map_get(oauth->tokens, token);

	return expires_ms && *expires_ms > now_ms;
}

struct sim_oauth_count {
	int64_t now_ms;
	size_t valid;
};

static void sim_oauth_count_valid(const char *token, void *value, void *arg)
{
	struct sim_oauth_count *c = arg;

	if (*(const int64_t *)value > c->now_ms)
		c->valid++;
}

json_t *sim_oauth_state_json(const struct sim_oauth *oauth, int64_t now_ms)
{
	struct sim_oauth_count c = { now_ms, 0 };

	sim_map_each(oauth->tokens, sim_oauth_count_valid, &c);
	return json_pack("{sI sI sI sI sI}", "ttl", (json_int_t)oauth->ttl_s, "fail",
			 (json_int_t)oauth->fail_next, "delay_ms", (json_int_t)oauth->delay_ms, "tokens",
			 (json_int_t)sim_map_count(oauth->tokens), "valid_tokens",
			 (json_int_t)c.valid);
}

/* ---- the form ---- */

static int sim_oauth_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes one form-encoded name or value into a new string ('+' is a space,
 * %XX a byte). NULL on a broken escape, a NUL byte or no memory. */
static char *sim_oauth_unescape(const char *p, size_t n)
{
	char *out = malloc(n + 1);
	size_t i, o = 0;

	if (!out)
		return NULL;
	for (i = 0; i < n; i++) {
		int hi, lo;

		if (p[i] != '%') {
			out[o++] = p[i] == '+' ? ' ' : p[i];
			continue;
		}
		hi = i + 2 < n ? sim_oauth_hex(p[i + 1]) : -1;
		lo = i + 2 < n ? sim_oauth_hex(p[i + 2]) : -1;
		if (hi < 0 || lo < 0 || (hi | lo) == 0) {
			free(out);
			return NULL;
		}
		out[o++] = (char)(hi * 16 + lo);
		i += 2;
	}
	out[o] = '\0';
	return out;
}

struct sim_oauth_form {
	char *grant_type;
	char *assertion;
	const char *problem; /* NULL: well formed */
};

static void sim_oauth_form_release(struct sim_oauth_form *f)
{
	free(f->grant_type);
	free(f->assertion);
}

/* Stores one name=value pair if it is a parameter we take. */
static void sim_oauth_form_pair(struct sim_oauth_form *f, const char *p, size_t n)
{
	const char *eq = memchr(p, '=', n);
	size_t namelen = eq ? (size_t)(eq - p) : n;
	char *name = sim_oauth_unescape(p, namelen);
	char *value = eq ? sim_oauth_unescape(eq + 1, n - namelen - 1) : strdup("");
	char **slot = NULL;

	if (!name || !value)
		f->problem = "Bad Request: malformed form encoding";
	else if (strcmp(name, "grant_type") == 0)
		slot = &f->grant_type;
	else if (strcmp(name, "assertion") == 0)
		slot = &f->assertion;
	if (slot && *slot) {
		f->problem = "Bad Request: duplicate parameter";
	} else if (slot && !f->problem) {
		*slot = value;
		value = NULL;
	}
	free(name);
	free(value);
}

static void sim_oauth_form_parse(const struct sim_request *req, struct sim_oauth_form *f)
{
	const char *p = req->body ? req->body : "", *end = p + req->body_len;

	memset(f, 0, sizeof(*f));
	if (req->body_len < req->body_total) {
		f->problem = "Bad Request: body too large";
		return;
	}
	while (p && p < end && !f->problem) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		size_t n = amp ? (size_t)(amp - p) : (size_t)(end - p);

		if (n)
			sim_oauth_form_pair(f, p, n);
		p = amp ? amp + 1 : NULL;
	}
}

/* ---- answers ---- */

static void sim_oauth_error(struct sim_reply *reply, int status, const char *error,
			    const char *description)
{
	reply->status = status;
	snprintf(reply->reason, sizeof(reply->reason), "%s", error);
	sim_reply_header(reply, "content-type", "application/json; charset=utf-8");
	sim_reply_header(reply, "cache-control", "no-cache, no-store, max-age=0, must-revalidate");
	sim_reply_json(reply, json_pack("{ss ss}", "error", error, "error_description",
					description));
}

static void sim_oauth_issue(struct sim *sim, struct sim_reply *reply)
{
	struct sim_oauth *oauth = sim->oauth;
	int64_t *expires_ms = malloc(sizeof(*expires_ms));
	char token[64];

	snprintf(token, sizeof(token), "ya29.sim-%016llx%016llx",
		 (unsigned long long)sim_rng_next(&sim->rng),
		 (unsigned long long)sim_rng_next(&sim->rng));
	if (!expires_ms) {
		sim_oauth_error(reply, 500, "internal_failure", "out of memory");
		return;
	}
	*expires_ms = sim_wall_ms() + (int64_t)oauth->ttl_s * 1000;
	if (sim_map_put(oauth->tokens, token, expires_ms) < 0) {
		free(expires_ms);
		sim_oauth_error(reply, 500, "internal_failure", "out of memory");
		return;
	}
	sim->stats.oauth_issued++;
	reply->status = 200;
	snprintf(reply->push_id, sizeof(reply->push_id), "%s", token);
	sim_reply_header(reply, "content-type", "application/json; charset=utf-8");
	sim_reply_header(reply, "cache-control", "no-cache, no-store, max-age=0, must-revalidate");
	sim_reply_json(reply, json_pack("{ss sI ss}", "access_token", token, "expires_in",
					(json_int_t)oauth->ttl_s, "token_type", "Bearer"));
}

static bool sim_oauth_is_form(const struct sim_request *req)
{
	const char *ct = sim_request_header(req, "content-type");
	size_t n = strlen(SIM_OAUTH_FORM);

	return ct && strncasecmp(ct, SIM_OAUTH_FORM, n) == 0 && (ct[n] == '\0' || ct[n] == ';');
}

/* Judges a POST; leaves reply alone (status 0) when a token may be issued. */
static void sim_oauth_judge(struct sim *sim, const struct sim_request *req,
			    struct sim_reply *reply)
{
	struct sim_oauth_form form;
	struct sim_sa_verdict v;

	if (!sim_oauth_is_form(req)) {
		sim_oauth_error(reply, 400, "invalid_request",
				"Bad Request: expected Content-Type " SIM_OAUTH_FORM);
		return;
	}
	sim_oauth_form_parse(req, &form);
	if (form.problem)
		sim_oauth_error(reply, 400, "invalid_request", form.problem);
	else if (!form.grant_type)
		sim_oauth_error(reply, 400, "invalid_request", SIM_OAUTH_MISSING "grant_type");
	else if (strcmp(form.grant_type, SIM_OAUTH_GRANT) != 0)
		sim_oauth_error(reply, 400, "unsupported_grant_type", "Invalid grant_type");
	else if (!form.assertion || !*form.assertion)
		sim_oauth_error(reply, 400, "invalid_request", SIM_OAUTH_MISSING "assertion");
	if (reply->status || !form.assertion) {
		sim_oauth_form_release(&form);
		return;
	}
	sim_sa_check(sim->oauth->accounts, form.assertion, sim->cfg.oauth_path,
		     sim_wall_ms() / 1000, &v);
	snprintf(reply->token, sizeof(reply->token), "%s", v.iss);
	if (v.error)
		sim_oauth_error(reply, 400, v.error, v.description);
	sim_oauth_form_release(&form);
}

void sim_oauth_handle(struct sim *sim, const struct sim_request *req, struct sim_reply *reply)
{
	struct sim_oauth *oauth = sim->oauth;

	sim->stats.oauth_requests++;
	if (oauth->delay_ms) {
		reply->has_delay = true;
		reply->delay_ms = oauth->delay_ms;
	}
	if (strcmp(req->method, "POST") != 0) {
		sim_oauth_error(reply, 405, "invalid_request", "The token endpoint takes POST");
		sim_reply_header(reply, "allow", "POST");
		return;
	}
	sim_oauth_judge(sim, req, reply);
	/* Every token request counts against forced failures; one that fails
	 * anyway keeps its own error. Judging first lets the log show which
	 * account asked. */
	if (oauth->fail_next) {
		oauth->fail_next--;
		if (!reply->status) {
			sim_oauth_error(reply, 400, "invalid_grant", "Invalid JWT Signature.");
			return;
		}
	}
	if (!reply->status)
		sim_oauth_issue(sim, reply);
}
