/* Simulated APNs (see sim_apns.h). The checks run in the order Apple applies
 * them as far as it is observable; a token's script only replaces the answer
 * of a request that passed them, since Apple would reject that request the
 * same way whatever the device's state. Event loop thread only. */
#include "sim_apns.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "sim.h"
#include "sim_auth.h"
#include "sim_script.h"

#define SIM_APNS_MAX_PAYLOAD 4096
#define SIM_APNS_MAX_VOIP_PAYLOAD 5120
#define SIM_APNS_MAX_COLLAPSE_ID 64

/* Push types and the topic suffix Apple expects with each. */
static const struct {
	const char *type;
	const char *suffix;
} sim_apns_push_types[] = {
	{ "alert", "" },
	{ "background", "" },
	{ "voip", ".voip" },
	{ "complication", ".complication" },
	{ "fileprovider", ".pushkit.fileprovider" },
	{ "mdm", "" },
	{ "location", ".location-query" },
	{ "liveactivity", ".push-type.liveactivity" },
	{ "pushtotalk", ".voip-ptt" },
};

#define SIM_APNS_NTYPES (sizeof(sim_apns_push_types) / sizeof(sim_apns_push_types[0]))

struct sim_apns_error {
	int status;
	const char *reason;
};

static const struct sim_apns_error sim_apns_ok = { 0, NULL };

static struct sim_apns_error sim_apns_err(int status, const char *reason)
{
	struct sim_apns_error e = { status, reason };

	return e;
}

/* Index into sim_apns_push_types, or -1. Apple still infers a missing header
 * for old iOS clients; we do not, so a sender that forgets it is caught. */
static int sim_apns_push_type(const char *value)
{
	size_t i;

	if (!value)
		return -1;
	for (i = 0; i < SIM_APNS_NTYPES; i++)
		if (strcmp(value, sim_apns_push_types[i].type) == 0)
			return (int)i;
	return -1;
}

/* Which configured bundle a topic belongs to, with any known suffix. */
static bool sim_apns_topic_known(const struct sim_config *cfg, const char *topic)
{
	size_t b, t;

	for (b = 0; b < cfg->nbundles; b++) {
		size_t n = strlen(cfg->bundles[b]);

		if (strncmp(topic, cfg->bundles[b], n) != 0)
			continue;
		for (t = 0; t < SIM_APNS_NTYPES; t++)
			if (strcmp(topic + n, sim_apns_push_types[t].suffix) == 0)
				return true;
	}
	return false;
}

static bool sim_apns_topic_fits(const struct sim_config *cfg, const char *topic, int type)
{
	const char *suffix = sim_apns_push_types[type].suffix;
	size_t b;

	for (b = 0; b < cfg->nbundles; b++) {
		size_t n = strlen(cfg->bundles[b]);

		if (strncmp(topic, cfg->bundles[b], n) == 0 && strcmp(topic + n, suffix) == 0)
			return true;
	}
	return false;
}

static struct sim_apns_error sim_apns_check_topic(const struct sim_config *cfg,
						  const char *topic, int type)
{
	if (!topic || !*topic)
		return sim_apns_err(400, "MissingTopic");
	if (!cfg->nbundles || sim_apns_topic_fits(cfg, topic, type))
		return sim_apns_ok;
	if (sim_apns_topic_known(cfg, topic))
		return sim_apns_err(400, "DeviceTokenNotForTopic");
	return sim_apns_err(400, "TopicDisallowed");
}

static struct sim_apns_error sim_apns_check_auth(struct sim *sim, const struct sim_request *req)
{
	const char *authz = sim_request_header(req, "authorization");
	const char *reason;

	/* A certificate connection needs no token; one sent anyway is still
	 * checked so a wrong one shows up. */
	if (sim->cfg.client_ca && req->client_cert && !authz)
		return sim_apns_ok;
	reason = sim_auth_check(sim->auth, authz, sim_wall_ms() / 1000);
	if (!reason)
		return sim_apns_ok;
	return sim_apns_err(strcmp(reason, "InternalServerError") == 0 ? 500 : 403, reason);
}

static struct sim_apns_error sim_apns_check_headers(struct sim *sim,
						    const struct sim_request *req, int *type)
{
	const char *v;
	struct sim_apns_error e;

	*type = sim_apns_push_type(sim_request_header(req, "apns-push-type"));
	if (*type < 0)
		return sim_apns_err(400, "InvalidPushType");
	e = sim_apns_check_topic(&sim->cfg, sim_request_header(req, "apns-topic"), *type);
	if (e.reason)
		return e;
	v = sim_request_header(req, "apns-priority");
	if (v && strcmp(v, "10") != 0 && strcmp(v, "5") != 0 && strcmp(v, "1") != 0)
		return sim_apns_err(400, "BadPriority");
	v = sim_request_header(req, "apns-expiration");
	if (v && !sim_is_uint(v))
		return sim_apns_err(400, "BadExpirationDate");
	v = sim_request_header(req, "apns-id");
	if (v && !sim_is_uuid(v))
		return sim_apns_err(400, "BadMessageId");
	v = sim_request_header(req, "apns-collapse-id");
	if (v && strlen(v) > SIM_APNS_MAX_COLLAPSE_ID)
		return sim_apns_err(400, "BadCollapseId");
	return sim_apns_ok;
}

static struct sim_apns_error sim_apns_check(struct sim *sim, const struct sim_request *req,
					    const char *token)
{
	struct sim_apns_error e;
	size_t limit;
	int type;

	if (strcmp(req->method, "POST") != 0)
		return sim_apns_err(405, "MethodNotAllowed");
	if (!sim_is_hex(token))
		return sim_apns_err(400, "BadDeviceToken");
	if (req->duplicate_header)
		return sim_apns_err(400, "DuplicateHeaders");
	e = sim_apns_check_auth(sim, req);
	if (e.reason)
		return e;
	e = sim_apns_check_headers(sim, req, &type);
	if (e.reason)
		return e;
	if (req->body_total == 0)
		return sim_apns_err(400, "PayloadEmpty");
	limit = strcmp(sim_apns_push_types[type].type, "voip") == 0 ? SIM_APNS_MAX_VOIP_PAYLOAD
								    : SIM_APNS_MAX_PAYLOAD;
	if (req->body_total > limit)
		return sim_apns_err(413, "PayloadTooLarge");
	return sim_apns_ok;
}

/* Apple does not judge the JSON; the log says whether it was a JSON object
 * with an "aps" object so tests can. */
static bool sim_apns_payload_ok(const struct sim_request *req)
{
	json_t *doc;
	bool ok;

	if (!req->body_len || req->body_len < req->body_total)
		return false;
	doc = json_loadb(req->body, req->body_len, 0, NULL);
	ok = json_is_object(doc) && json_is_object(json_object_get(doc, "aps"));
	json_decref(doc);
	return ok;
}

static void sim_apns_answer_error(struct sim_reply *reply, int status, const char *reason,
				  int64_t timestamp_ms)
{
	reply->action = SIM_ANSWER;
	reply->status = status;
	snprintf(reply->reason, sizeof(reply->reason), "%s", reason);
	sim_reply_header(reply, "content-type", "application/json");
	if (status == 410)
		sim_reply_body(reply, "{\"reason\":\"%s\",\"timestamp\":%lld}", reason,
			       (long long)timestamp_ms);
	else
		sim_reply_body(reply, "{\"reason\":\"%s\"}", reason);
}

static void sim_apns_answer_ok(struct sim *sim, struct sim_reply *reply)
{
	char unique[37];

	reply->action = SIM_ANSWER;
	reply->status = 200;
	sim_uuid(&sim->rng, unique);
	sim_reply_header(reply, "apns-unique-id", unique);
}

static void sim_apns_answer_step(struct sim *sim, struct sim_reply *reply,
				 const struct sim_step *step)
{
	int status = step->status ? step->status : 200;

	if (sim_reply_transport_step(reply, step))
		return;
	if (status == 200)
		sim_apns_answer_ok(sim, reply);
	else if (step->reason[0] || status == 410)
		sim_apns_answer_error(reply, status, step->reason[0] ? step->reason : "Unregistered",
				      step->has_timestamp ? step->timestamp : sim_wall_ms());
	else
		reply->status = status;
}

static void sim_apns_set_id(struct sim *sim, const struct sim_request *req,
			    struct sim_reply *reply)
{
	const char *id = sim_request_header(req, "apns-id");

	if (id && sim_is_uuid(id))
		snprintf(reply->push_id, sizeof(reply->push_id), "%s", id);
	else
		sim_uuid(&sim->rng, reply->push_id);
	sim_reply_header(reply, "apns-id", reply->push_id);
}

void sim_apns_handle(struct sim *sim, const struct sim_request *req, struct sim_reply *reply)
{
	const char *token = req->path + strlen(SIM_APNS_PATH_PREFIX);
	const struct sim_step *step;
	struct sim_apns_error e;

	snprintf(reply->token, sizeof(reply->token), "%s", token);
	reply->json_ok = sim_apns_payload_ok(req);
	sim_apns_set_id(sim, req, reply);
	e = sim_apns_check(sim, req, token);
	if (e.reason) {
		sim_apns_answer_error(reply, e.status, e.reason, 0);
		return;
	}
	step = sim_script_next(sim->script, token);
	if (step)
		sim_apns_answer_step(sim, reply, step);
	else
		sim_apns_answer_ok(sim, reply);
}

void sim_apns_bad_path(struct sim *sim, const struct sim_request *req, struct sim_reply *reply)
{
	reply->json_ok = sim_apns_payload_ok(req);
	sim_apns_set_id(sim, req, reply);
	if (strcmp(req->method, "POST") != 0)
		sim_apns_answer_error(reply, 405, "MethodNotAllowed", 0);
	else
		sim_apns_answer_error(reply, 404, "BadPath", 0);
}
