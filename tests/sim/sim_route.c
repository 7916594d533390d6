/* Path dispatch for the simulated services, and the request/reply helpers
 * they share (see sim_route.h). New services (FCM, OAuth) get their route in
 * sim_route_dispatch() and nowhere else. Event loop thread only. */
#include "sim_route.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_apns.h"

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

void sim_reply_clear(struct sim_reply *reply)
{
	free(reply->body);
	memset(reply, 0, sizeof(*reply));
}

static bool sim_route_prefix(const char *path, const char *prefix)
{
	return strncmp(path, prefix, strlen(prefix)) == 0;
}

void sim_route_dispatch(struct sim *sim, const struct sim_request *req, struct sim_reply *reply)
{
	reply->action = SIM_ANSWER;
	if (sim_route_prefix(req->path, SIM_APNS_PATH_PREFIX)) {
		sim_apns_handle(sim, req, reply);
		return;
	}
	/* Everything else is answered the way Apple answers a stray path. */
	sim_apns_bad_path(sim, req, reply);
}
