/* libFuzzer target: FCM's answers. fcm_classify() on a fuzzed status and
 * body, and the OAuth token response: an fcm_auth is built on an in-process
 * stand-in for the HTTP/2 pool (this file defines h2pool_send(), so the real
 * pool is not linked), which keeps the response callback of the token fetch;
 * each input is then delivered through it as the token endpoint's answer
 * (to the fetch in flight, or again to the latest one: fcm.c keeps no
 * per-fetch state, so that is the same code path).
 * Input: byte 0 = h2_result (low 3 bits) and "invalidate after" (bit 3),
 * bytes 1-2 = HTTP status (big-endian), the rest = body.
 * Single-threaded; the loop is never started, so timers only queue. */
#include <jansson.h>
#include <stdint.h>
#include <string.h>

#include "fuzzcheck.h"
#include "fuzzenv.h"
#include "pushgw/fcm.h"

#define TOKEN_URI "https://oauth2.example.test/token"
#define FORM_PREFIX "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion="

/* The stand-in pool's only origin: the token endpoint. */
struct h2_origin {
	h2_response_fn cb; /* of the latest request */
	void *arg;
	int sent;
	bool pending; /* a request the callback has not answered yet */
};

/* libFuzzer's entry points take no context: the credential lives here. */
static fuzzenv *env;
static pgw_fcm_conf conf;
static evloop *loop;
static struct h2_origin token_origin;
static fcm_auth *auth;

pgw_err h2pool_send(h2_origin *origin, const h2_request *req)
{
	FUZZ_ASSERT(origin == &token_origin);
	FUZZ_ASSERT(strcmp(req->method, "POST") == 0 && strcmp(req->path, "/token") == 0);
	FUZZ_ASSERT(req->body_len > strlen(FORM_PREFIX) &&
		    strncmp(req->body, FORM_PREFIX, strlen(FORM_PREFIX)) == 0);
	FUZZ_ASSERT(req->cb != NULL);
	origin->cb = req->cb;
	origin->arg = req->arg;
	origin->sent++;
	origin->pending = true;
	return PGW_OK;
}

const char *h2_result_str(h2_result r)
{
	return r == H2_OK ? "ok" : "fuzzed transport failure";
}

static void cleanup(void)
{
	h2_response shutdown = {.result = H2_ERR_SHUTDOWN, .body = "", .error = "pool freed"};

	fcm_auth_free(auth);
	/* as the real pool does when freed: a fetch in flight is answered */
	if (token_origin.pending)
		token_origin.cb(token_origin.arg, &shutdown);
	evloop_free(loop);
	fuzzenv_free(env);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	env = fuzzenv_new();
	conf.enabled = true;
	conf.url = "https://fcm.example.test";
	conf.project_id = FUZZENV_PROJECT;
	conf.client_email = "pushgw@" FUZZENV_PROJECT ".iam.gserviceaccount.com";
	conf.private_key = (char *)fuzzenv_rsa_pem(env);
	conf.token_uri = TOKEN_URI;
	if (evloop_new(&loop) != PGW_OK || fcm_auth_new(&conf, loop, &token_origin, &auth) != PGW_OK)
		abort();
	/* the first fetch starts at once */
	FUZZ_ASSERT(token_origin.sent == 1);
	atexit(cleanup);
	return 0;
}

static void check_classify(int status, const char *body, size_t len)
{
	fcm_verdict v, again;

	memset(&v, 0xa5, sizeof v);
	fcm_classify(status, body, len, &v);
	FUZZ_ASSERT(v.status == PGW_PUSH_SENT || v.status == PGW_PUSH_INVALID_TOKEN ||
		    v.status == PGW_PUSH_FAILED);
	FUZZ_ASSERT(v.action >= FCM_DONE && v.action <= FCM_RETRY_NEW_TOKEN);
	FUZZ_ASSERT(memchr(v.reason, '\0', sizeof v.reason) && memchr(v.detail, '\0', sizeof v.detail));
	/* only 200 is a delivery, and a dead token is never retried */
	FUZZ_ASSERT((v.status == PGW_PUSH_SENT) == (status == 200));
	if (v.status == PGW_PUSH_INVALID_TOKEN)
		FUZZ_ASSERT(v.action == FCM_DONE);
	if (v.status == PGW_PUSH_FAILED)
		FUZZ_ASSERT(v.reason[0] != '\0');
	/* pure: the same answer gives the same verdict */
	fcm_classify(status, body, len, &again);
	FUZZ_ASSERT(again.status == v.status && again.action == v.action && again.loud == v.loud &&
		    strcmp(again.reason, v.reason) == 0 && strcmp(again.detail, v.detail) == 0);
}

/* The token the answer carries when it is a usable one, else NULL. */
static char *expected_header(const h2_response *resp)
{
	json_t *root, *tok, *exp;
	char *header = NULL;

	if (resp->result != H2_OK || resp->status != 200)
		return NULL;
	root = json_loadb(resp->body, resp->body_len, 0, NULL);
	tok = json_object_get(root, "access_token");
	exp = json_object_get(root, "expires_in");
	if (json_is_string(tok) && json_is_integer(exp) && json_integer_value(exp) > 0 &&
	    asprintf(&header, "Bearer %s", json_string_value(tok)) < 0)
		header = NULL;
	json_decref(root);
	return header;
}

static void deliver_token_response(h2_result result, int status, const char *body, size_t len)
{
	h2_response resp = {0};
	uint64_t gen = fcm_auth_generation(auth);
	char *want;
	const char *got;

	resp.result = result;
	resp.status = result == H2_OK ? status : 0;
	resp.body = body;
	resp.body_len = len;
	resp.error = result == H2_OK ? NULL : "fuzzed transport failure";
	want = expected_header(&resp);
	token_origin.pending = false;
	token_origin.cb(token_origin.arg, &resp);
	got = fcm_auth_header(auth);
	if (want) {
		FUZZ_ASSERT(fcm_auth_generation(auth) == gen + 1);
		FUZZ_ASSERT(got && strcmp(got, want) == 0);
	} else {
		FUZZ_ASSERT(fcm_auth_generation(auth) == gen);
	}
	free(want);
}

/* A copy of bytes of exactly len (so a read past them is caught), or with a
 * NUL after them as the pool delivers bodies. */
static char *copy_bytes(const uint8_t *data, size_t len, bool nul)
{
	char *out = malloc(len + (nul || len == 0));

	if (!out)
		return NULL;
	memcpy(out, data, len);
	if (nul)
		out[len] = '\0';
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	h2_result result;
	char *body;
	size_t len;
	int status;

	if (size < 3)
		return 0;
	result = (h2_result)((data[0] & 7) % (H2_ERR_CLIENT_CERT + 1));
	status = data[1] << 8 | data[2];
	len = size - 3;
	if (!(body = copy_bytes(data + 3, len, false)))
		return 0;
	check_classify(status, body, len);
	free(body);
	if (!(body = copy_bytes(data + 3, len, true)))
		return 0;
	deliver_token_response(result, status, body, len);
	free(body);
	if (data[0] & 8) {
		/* a 401 on the current token: dropped once, fetched again */
		fcm_auth_invalidate(auth, fcm_auth_generation(auth));
		FUZZ_ASSERT(fcm_auth_header(auth) == NULL);
	}
	return 0;
}
