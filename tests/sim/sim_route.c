/* Path dispatch for the simulated services, and the request/reply helpers
 * they share (see sim_route.h). Every service gets its route in
 * sim_route_dispatch() and nowhere else. Event loop thread only. */
#include "sim_route.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"
#include "sim_apns.h"
#include "sim_fcm.h"
#include "sim_oauth.h"
#include "sim_script.h"

const char *sim_request_header(const struct sim_request *req, const char *name)
{
	const char *p = req->hdrs, *end = req->hdrs + req->hdrs_len;

	while (p < end) {
		const char *value = p + strlen(p) + 1;

		if (strcmp(p, name) == 0)
			return value;
		p = value + strlen(value) + 1;
	}
	return NULL;
}

void sim_reply_header(struct sim_reply *reply, const char *name, const char *value)
{
	if (reply->nhdr == SIM_REPLY_HEADERS)
		return;
	snprintf(reply->hdr[reply->nhdr].name, sizeof(reply->hdr[0].name), "%s", name);
	snprintf(reply->hdr[reply->nhdr].value, sizeof(reply->hdr[0].value), "%s", value);
	reply->nhdr++;
}

int sim_reply_body(struct sim_reply *reply, const char *fmt, ...)
{
	va_list ap;
	char *body = NULL;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&body, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	free(reply->body);
	reply->body = body;
	reply->body_len = (size_t)n;
	return 0;
}

int sim_reply_json(struct sim_reply *reply, json_t *doc)
{
	char *text = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
	int rv;

	json_decref(doc);
	if (!text)
		return -1;
	rv = sim_reply_body(reply, "%s\n", text);
	free(text);
	return rv;
}

void sim_reply_clear(struct sim_reply *reply)
{
	free(reply->body);
	memset(reply, 0, sizeof(*reply));
}

bool sim_reply_transport_step(struct sim_reply *reply, const struct sim_step *step)
{
	if (step->has_delay) {
		reply->has_delay = true;
		reply->delay_ms = step->delay_ms;
	}
	if (step->drop)
		reply->action = SIM_DROP;
	else if (step->rst)
		reply->action = SIM_RST;
	else if (step->no_answer)
		reply->action = SIM_NO_ANSWER;
	if (reply->action != SIM_ANSWER)
		return true;
	if (step->retry_after[0])
		sim_reply_header(reply, "retry-after", step->retry_after);
	reply->goaway_after = step->goaway;
	return false;
}

static bool sim_route_prefix(const char *path, const char *prefix)
{
	return strncmp(path, prefix, strlen(prefix)) == 0;
}

/* The path without its query string equals want. */
static bool sim_route_exact(const char *path, const char *want)
{
	size_t n = strlen(want);

	return strncmp(path, want, n) == 0 && (path[n] == '\0' || path[n] == '?');
}

void sim_route_dispatch(struct sim *sim, const struct sim_request *req, struct sim_reply *reply)
{
	reply->action = SIM_ANSWER;
	if (sim_route_exact(req->path, sim->cfg.oauth_path)) {
		reply->kind = "oauth";
		sim_oauth_handle(sim, req, reply);
		return;
	}
	if (sim_route_prefix(req->path, SIM_APNS_PATH_PREFIX)) {
		reply->kind = "apns";
		sim_apns_handle(sim, req, reply);
		return;
	}
	if (sim_route_prefix(req->path, SIM_FCM_PATH_PREFIX)) {
		reply->kind = "fcm";
		sim_fcm_handle(sim, req, reply);
		return;
	}
	/* Everything else is answered the way Apple answers a stray path. */
	reply->kind = "apns";
	sim_apns_bad_path(sim, req, reply);
}
