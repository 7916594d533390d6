/* Unit tests for fcm_classify(): FCM's error documents map to the statuses
 * and actions Google's documentation calls for, and only a dead token (an
 * UNREGISTERED, or an INVALID_ARGUMENT whose FcmError blames the token) may
 * remove a device; SENDER_ID_MISMATCH and faults of our own message never do. */
#include <stdbool.h>
#include <string.h>

#include "check.h"
#include "pushgw/fcm.h"

#define FCM_ERROR_TYPE "type.googleapis.com/google.firebase.fcm.v1.FcmError"
#define BAD_REQUEST_TYPE "type.googleapis.com/google.rpc.BadRequest"

static void classify(int status, const char *body, fcm_verdict *v)
{
	fcm_classify(status, body, body ? strlen(body) : 0, v);
}

static void test_dead_tokens(void)
{
	fcm_verdict v;

	TEST("UNREGISTERED is a dead token");
	classify(404, "{\"error\":{\"code\":404,\"message\":\"Requested entity was not found.\","
		      "\"status\":\"NOT_FOUND\",\"details\":[{\"@type\":\"" FCM_ERROR_TYPE "\","
		      "\"errorCode\":\"UNREGISTERED\"}]}}", &v);
	CHECK(v.status == PGW_PUSH_INVALID_TOKEN);
	CHECK_STR(v.reason, "UNREGISTERED");
	CHECK(v.dead && !v.mistake && v.action == FCM_DONE);

	TEST("INVALID_ARGUMENT with an FcmError about the token is a dead token");
	classify(400, "{\"error\":{\"code\":400,\"message\":\"The registration token is not a valid FCM registration token\","
		      "\"status\":\"INVALID_ARGUMENT\",\"details\":[{\"@type\":\"" FCM_ERROR_TYPE "\","
		      "\"errorCode\":\"INVALID_ARGUMENT\"}]}}", &v);
	CHECK(v.status == PGW_PUSH_INVALID_TOKEN);
	CHECK_STR(v.reason, "INVALID_ARGUMENT");
	CHECK(v.dead);
}

static void test_our_faults_keep_the_device(void)
{
	fcm_verdict v;

	TEST("INVALID_ARGUMENT with a BadRequest detail is our message's fault: config_error, kept");
	classify(400, "{\"error\":{\"code\":400,\"message\":\"Invalid value at 'message.android.ttl'\","
		      "\"status\":\"INVALID_ARGUMENT\",\"details\":[{\"@type\":\"" FCM_ERROR_TYPE "\","
		      "\"errorCode\":\"INVALID_ARGUMENT\"},{\"@type\":\"" BAD_REQUEST_TYPE "\","
		      "\"fieldViolations\":[{\"field\":\"message.android.ttl\"}]}]}}", &v);
	CHECK(v.status == PGW_PUSH_FAILED);
	CHECK_STR(v.reason, "config_error");
	CHECK(!v.dead && v.loud);

	TEST("a BadRequest naming message.token is still a BadRequest: kept");
	classify(400, "{\"error\":{\"code\":400,\"message\":\"Invalid value at 'message.token'\","
		      "\"status\":\"INVALID_ARGUMENT\",\"details\":[{\"@type\":\"" BAD_REQUEST_TYPE "\","
		      "\"fieldViolations\":[{\"field\":\"message.token\"}]}]}}", &v);
	CHECK(v.status == PGW_PUSH_FAILED && !v.dead);

	TEST("a bare FcmError INVALID_ARGUMENT not about the token (message too big): kept");
	classify(400, "{\"error\":{\"code\":400,\"message\":\"Android message is too big\","
		      "\"status\":\"INVALID_ARGUMENT\",\"details\":[{\"@type\":\"" FCM_ERROR_TYPE "\","
		      "\"errorCode\":\"INVALID_ARGUMENT\"}]}}", &v);
	CHECK(v.status == PGW_PUSH_FAILED && !v.dead);

	TEST("INVALID_ARGUMENT without any detail: kept");
	classify(400, "{\"error\":{\"code\":400,\"message\":\"The registration token is bad\","
		      "\"status\":\"INVALID_ARGUMENT\"}}", &v);
	CHECK(v.status == PGW_PUSH_FAILED && !v.dead);

	TEST("SENDER_ID_MISMATCH is a configuration mistake: failed, kept, with a hint");
	classify(403, "{\"error\":{\"code\":403,\"message\":\"SenderId mismatch\",\"status\":\"PERMISSION_DENIED\","
		      "\"details\":[{\"@type\":\"" FCM_ERROR_TYPE "\",\"errorCode\":\"SENDER_ID_MISMATCH\"}]}}", &v);
	CHECK(v.status == PGW_PUSH_FAILED);
	CHECK_STR(v.reason, "SENDER_ID_MISMATCH");
	CHECK(!v.dead && v.mistake && v.action == FCM_DONE);
	CHECK(v.hint && strstr(v.hint, "service_account_file") != NULL);

	TEST("a 404 without UNREGISTERED is the wrong project, not a dead token");
	classify(404, "{\"error\":{\"code\":404,\"message\":\"Requested entity was not found.\",\"status\":\"NOT_FOUND\"}}", &v);
	CHECK(v.status == PGW_PUSH_FAILED && !v.dead);
}

static void test_retries(void)
{
	fcm_verdict v;

	TEST("quota, unavailability, 401 and success");
	classify(429, "{\"error\":{\"code\":429,\"status\":\"RESOURCE_EXHAUSTED\",\"details\":[{\"@type\":\"" FCM_ERROR_TYPE "\","
		      "\"errorCode\":\"QUOTA_EXCEEDED\"}]}}", &v);
	CHECK(v.status == PGW_PUSH_FAILED && v.action == FCM_RETRY_AFTER && !v.dead);
	CHECK_STR(v.reason, "QUOTA_EXCEEDED");
	classify(429, NULL, &v);
	CHECK(v.action == FCM_RETRY_AFTER);
	classify(503, "{\"error\":{\"code\":503,\"status\":\"UNAVAILABLE\"}}", &v);
	CHECK(v.action == FCM_RETRY && !v.dead);
	classify(500, "not json", &v);
	CHECK(v.action == FCM_RETRY);
	classify(401, "{\"error\":{\"code\":401,\"status\":\"UNAUTHENTICATED\"}}", &v);
	CHECK(v.action == FCM_RETRY_NEW_TOKEN && !v.dead);
	classify(200, "{\"name\":\"projects/p/messages/1\"}", &v);
	CHECK(v.status == PGW_PUSH_SENT && !v.dead && !v.mistake && !v.hint);
}

int main(void)
{
	test_dead_tokens();
	test_our_faults_keep_the_device();
	test_retries();
	return check_summary("fcm");
}
