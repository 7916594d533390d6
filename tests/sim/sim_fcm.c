/* Simulated FCM HTTP v1 (see sim_fcm.h). Checks run in the order Google's
 * front end applies them: the method and path, the bearer token, the
 * caller's right to the project, then the message; a token's script only
 * replaces the answer to a request that passed them all. Event loop thread
 * only. */
#include "sim_fcm.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "sim.h"
#include "sim_fcm_msg.h"
#include "sim_oauth.h"
#include "sim_script.h"

#define SIM_FCM_SEND_SUFFIX "/messages:send"
#define SIM_FCM_TYPE_FCM_ERROR "type.googleapis.com/google.firebase.fcm.v1.FcmError"
#define SIM_FCM_TYPE_BAD_REQUEST "type.googleapis.com/google.rpc.BadRequest"
#define SIM_FCM_TYPE_ERROR_INFO "type.googleapis.com/google.rpc.ErrorInfo"
#define SIM_FCM_WWW_AUTHENTICATE                                                        \
	"Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\""
#define SIM_FCM_AUTH_HINT                                                                   \
	" Expected OAuth 2 access token, login cookie or other valid authentication "      \
	"credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."

/* google.rpc status codes by HTTP status, with Google's generic messages. */
static const struct {
	int http;
	const char *status;
	const char *message;
} sim_fcm_rpc[] = {
	{ 400, "INVALID_ARGUMENT", "Request contains an invalid argument." },
	{ 401, "UNAUTHENTICATED", "Request had invalid authentication credentials." },
	{ 403, "PERMISSION_DENIED", "The caller does not have permission" },
	{ 404, "NOT_FOUND", "Requested entity was not found." },
	{ 409, "ABORTED", "The operation was aborted." },
	{ 429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)." },
	{ 499, "CANCELLED", "The operation was cancelled." },
	{ 500, "INTERNAL", "Internal error encountered." },
	{ 501, "UNIMPLEMENTED", "Operation is not implemented, or supported, or enabled." },
	{ 503, "UNAVAILABLE", "The service is currently unavailable." },
	{ 504, "DEADLINE_EXCEEDED", "The request deadline was exceeded." },
};

/* FcmError codes with the status and message FCM sends them with. */
static const struct {
	const char *code;
	int http;
	const char *status;
	const char *message;
} sim_fcm_codes[] = {
	{ "UNREGISTERED", 404, "NOT_FOUND", "Requested entity was not found." },
	{ "INVALID_ARGUMENT", 400, "INVALID_ARGUMENT",
	  "The registration token is not a valid FCM registration token" },
	{ "SENDER_ID_MISMATCH", 403, "PERMISSION_DENIED", "SenderId mismatch" },
	{ "QUOTA_EXCEEDED", 429, "RESOURCE_EXHAUSTED",
	  "Quota exceeded for quota metric 'Send messages' of service 'fcm.googleapis.com'." },
	{ "UNAVAILABLE", 503, "UNAVAILABLE", "The service is currently unavailable." },
	{ "INTERNAL", 500, "INTERNAL", "Internal error encountered." },
	{ "THIRD_PARTY_AUTH_ERROR", 401, "UNAUTHENTICATED",
	  "Auth error from APNS or Web Push Service" },
	{ "UNSPECIFIED_ERROR", 500, "INTERNAL", "Internal error encountered." },
};

#define SIM_FCM_NRPC (sizeof(sim_fcm_rpc) / sizeof(sim_fcm_rpc[0]))
#define SIM_FCM_NCODES (sizeof(sim_fcm_codes) / sizeof(sim_fcm_codes[0]))

static size_t sim_fcm_rpc_index(int http)
{
	size_t i;

	for (i = 0; i < SIM_FCM_NRPC; i++)
		if (sim_fcm_rpc[i].http == http)
			return i;
	return SIM_FCM_NRPC;
}

static const char *sim_fcm_rpc_status(int http)
{
	size_t i = sim_fcm_rpc_index(http);

	return i < SIM_FCM_NRPC ? sim_fcm_rpc[i].status : "UNKNOWN";
}

static const char *sim_fcm_rpc_message(int http)
{
	size_t i = sim_fcm_rpc_index(http);

	return i < SIM_FCM_NRPC ? sim_fcm_rpc[i].message : "Unknown error.";
}

/* One error document: {"error": {"code", "message", "status", "details"}}. */
struct sim_fcm_error {
	int http;
	const char *status; /* NULL: from http */
	const char *message;
	const char *fcm_code;   /* an FcmError detail, or NULL */
	bool bad_request;       /* a BadRequest detail, */
	const char *field;      /* its violation's field (NULL/"": none) */
	json_t *extra_detail;   /* borrowed; NULL: none */
};

static json_t *sim_fcm_details(const struct sim_fcm_error *e)
{
	json_t *details = json_array();
	json_t *violation;

	if (e->fcm_code)
		json_array_append_new(details, json_pack("{ss ss}", "@type", SIM_FCM_TYPE_FCM_ERROR,
							 "errorCode", e->fcm_code));
	if (e->bad_request) {
		violation = e->field && *e->field
				    ? json_pack("{ss ss}", "field", e->field, "description",
						e->message)
				    : json_pack("{ss}", "description", e->message);
		json_array_append_new(details,
				      json_pack("{ss s[o]}", "@type", SIM_FCM_TYPE_BAD_REQUEST,
						"fieldViolations", violation));
	}
	if (e->extra_detail)
		json_array_append(details, e->extra_detail);
	return details;
}

static void sim_fcm_answer_error(struct sim_reply *reply, const struct sim_fcm_error *e)
{
	const char *status = e->status ? e->status : sim_fcm_rpc_status(e->http);
	json_t *details = sim_fcm_details(e);
	json_t *error = json_pack("{si ss ss}", "code", e->http, "message", e->message, "status",
				  status);

	if (json_array_size(details))
		json_object_set(error, "details", details);
	json_decref(details);
	reply->action = SIM_ANSWER;
	reply->status = e->http;
	snprintf(reply->reason, sizeof(reply->reason), "%s", e->fcm_code ? e->fcm_code : status);
	sim_reply_header(reply, "content-type", "application/json; charset=UTF-8");
	sim_reply_json(reply, json_pack("{so}", "error", error));
}

static void sim_fcm_answer_ok(struct sim *sim, struct sim_reply *reply, const char *project,
			      bool validate_only)
{
	unsigned long long digits = (unsigned long long)sim_wall_ms() * 1000 +
				    sim_rng_next(&sim->rng) % 1000;

	reply->action = SIM_ANSWER;
	reply->status = 200;
	if (validate_only)
		snprintf(reply->push_id, sizeof(reply->push_id),
			 "projects/%s/messages/fake_message_id", project);
	else
		snprintf(reply->push_id, sizeof(reply->push_id),
			 "projects/%s/messages/0:%016llu%%%016llx", project, digits,
			 (unsigned long long)sim_rng_next(&sim->rng));
	sim_reply_header(reply, "content-type", "application/json; charset=UTF-8");
	sim_reply_json(reply, json_pack("{ss}", "name", reply->push_id));
}

/* ---- checks ---- */

/* Copies the project of "/v1/projects/<project>/messages:send[?query]". */
static bool sim_fcm_project(const char *path, char *project, size_t n)
{
	const char *p = path + strlen(SIM_FCM_PATH_PREFIX);
	size_t len = strcspn(p, "/?");
	const char *rest = p + len;
	size_t suffix = strlen(SIM_FCM_SEND_SUFFIX);

	if (!len || len >= n || strncmp(rest, SIM_FCM_SEND_SUFFIX, suffix) != 0 ||
	    (rest[suffix] != '\0' && rest[suffix] != '?'))
		return false;
	memcpy(project, p, len);
	project[len] = '\0';
	return true;
}

/* NULL when the bearer token was issued here and is still good, else the
 * 401 message. */
static const char *sim_fcm_auth_problem(struct sim *sim, const struct sim_request *req)
{
	const char *authz = sim_request_header(req, "authorization");
	const char *tok;

	if (!authz || !*authz)
		return "Request is missing required authentication credential." SIM_FCM_AUTH_HINT;
	if (strncasecmp(authz, "bearer ", 7) != 0)
		return "Request had invalid authentication credentials." SIM_FCM_AUTH_HINT;
	tok = authz + 7;
	while (*tok == ' ')
		tok++;
	if (!sim_oauth_token_valid(sim->oauth, tok, sim_wall_ms()))
		return "Request had invalid authentication credentials." SIM_FCM_AUTH_HINT;
	return NULL;
}

static bool sim_fcm_project_known(const struct sim_config *cfg, const char *project)
{
	size_t i;

	if (!cfg->nfcm_projects)
		return true;
	for (i = 0; i < cfg->nfcm_projects; i++)
		if (strcmp(cfg->fcm_projects[i], project) == 0)
			return true;
	return false;
}

static void sim_fcm_answer_denied(struct sim_reply *reply, const char *project)
{
	char message[320], resource[160];
	struct sim_fcm_error e = { .http = 403, .message = message };

	snprintf(message, sizeof(message),
		 "Permission 'cloudmessaging.messages.create' denied on resource "
		 "'//cloudresourcemanager.googleapis.com/projects/%.100s' (or it may not exist).",
		 project);
	snprintf(resource, sizeof(resource), "projects/%.100s", project);
	/* Google explains with an ErrorInfo, never an FcmError: clients must
	 * look at the detail's type. */
	e.extra_detail = json_pack("{ss ss ss s{ss ss}}", "@type", SIM_FCM_TYPE_ERROR_INFO,
				   "reason", "IAM_PERMISSION_DENIED", "domain",
				   "iam.googleapis.com", "metadata", "permission",
				   "cloudmessaging.messages.create", "resource", resource);
	sim_fcm_answer_error(reply, &e);
	json_decref(e.extra_detail);
}

/* ---- scripted answers ---- */

static size_t sim_fcm_code_index(const char *code)
{
	size_t i;

	for (i = 0; i < SIM_FCM_NCODES; i++)
		if (strcmp(sim_fcm_codes[i].code, code) == 0)
			return i;
	return SIM_FCM_NCODES;
}

static void sim_fcm_answer_step(struct sim *sim, struct sim_reply *reply,
				const struct sim_step *step, const char *project,
				bool validate_only)
{
	char message[320];
	struct sim_fcm_error e = { 0 };
	size_t c;

	if (sim_reply_transport_step(reply, step))
		return;
	if (step->status == 200 || (!step->status && !step->fcm[0])) {
		sim_fcm_answer_ok(sim, reply, project, validate_only);
		return;
	}
	c = step->fcm[0] ? sim_fcm_code_index(step->fcm) : SIM_FCM_NCODES;
	e.http = step->status ? step->status : c < SIM_FCM_NCODES ? sim_fcm_codes[c].http : 400;
	/* An explicit status wins, and google.rpc's status follows it. */
	e.status = c < SIM_FCM_NCODES && !step->status ? sim_fcm_codes[c].status : NULL;
	e.message = c < SIM_FCM_NCODES ? sim_fcm_codes[c].message : sim_fcm_rpc_message(e.http);
	e.fcm_code = step->fcm[0] ? step->fcm : NULL;
	if (step->bad_request[0]) {
		snprintf(message, sizeof(message), "Invalid value at '%s'", step->bad_request);
		e.message = message;
		e.bad_request = true;
		e.field = step->bad_request;
	}
	sim_fcm_answer_error(reply, &e);
}

/* ---- entry ---- */

void sim_fcm_handle(struct sim *sim, const struct sim_request *req, struct sim_reply *reply)
{
	struct sim_fcm_problem problem;
	struct sim_fcm_msg msg;
	const struct sim_step *step;
	const char *auth;
	char project[128];

	sim->stats.fcm_requests++;
	sim_fcm_msg_check(req->body, req->body_len, req->body_total,
			  sim->cfg.fcm_allow_reserved_keys, &problem, &msg);
	snprintf(reply->token, sizeof(reply->token), "%s", msg.token);
	reply->json_ok = msg.json_ok;
	if (strcmp(req->method, "POST") != 0 ||
	    !sim_fcm_project(req->path, project, sizeof(project))) {
		struct sim_fcm_error e = { .http = 404,
					   .message = "Requested entity was not found." };

		sim_fcm_answer_error(reply, &e);
		return;
	}
	auth = sim_fcm_auth_problem(sim, req);
	if (auth) {
		struct sim_fcm_error e = { .http = 401, .message = auth };

		sim_fcm_answer_error(reply, &e);
		sim_reply_header(reply, "www-authenticate", SIM_FCM_WWW_AUTHENTICATE);
		return;
	}
	if (!sim_fcm_project_known(&sim->cfg, project)) {
		sim_fcm_answer_denied(reply, project);
		return;
	}
	if (problem.status) {
		struct sim_fcm_error e = { .http = problem.status, .message = problem.message,
					   .fcm_code = problem.fcm_code,
					   .bad_request = problem.bad_request,
					   .field = problem.field };

		sim_fcm_answer_error(reply, &e);
		return;
	}
	step = msg.token[0] ? sim_script_next(sim->script, msg.token) : NULL;
	if (step)
		sim_fcm_answer_step(sim, reply, step, project, msg.validate_only);
	else
		sim_fcm_answer_ok(sim, reply, project, msg.validate_only);
}
