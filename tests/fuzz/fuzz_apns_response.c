/* libFuzzer target: apns_classify() on a fuzzed HTTP status (first two bytes,
 * big-endian) and reason (the rest, NUL-terminated; NULL when empty), checking
 * every verdict is one the upstream router can act on. Single-threaded, no
 * set-up. */
#include <stdint.h>
#include <string.h>

#include "fuzzcheck.h"
#include "pushgw/apns.h"

static void check_verdict(int status, const char *reason, const apns_verdict *v)
{
	FUZZ_ASSERT(v->status == PGW_PUSH_SENT || v->status == PGW_PUSH_INVALID_TOKEN ||
		    v->status == PGW_PUSH_FAILED);
	FUZZ_ASSERT(v->action >= APNS_DONE && v->action <= APNS_TRY_OTHER_ENV);
	if (status == 200) {
		FUZZ_ASSERT(v->status == PGW_PUSH_SENT && v->action == APNS_DONE && !v->loud);
		return;
	}
	/* only Apple's 200 is a delivery; anything else names why it was not */
	FUZZ_ASSERT(v->status != PGW_PUSH_SENT);
	FUZZ_ASSERT(v->reason && *v->reason && strlen(v->reason) < 64);
	/* a dead token is final: retrying it would only fail again */
	if (v->status == PGW_PUSH_INVALID_TOKEN)
		FUZZ_ASSERT(v->action == APNS_DONE || v->action == APNS_TRY_OTHER_ENV);
	/* the verdict outlives the response it was read from */
	if (reason)
		FUZZ_ASSERT((uintptr_t)v->reason < (uintptr_t)reason ||
			    (uintptr_t)v->reason > (uintptr_t)(reason + strlen(reason)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	apns_verdict v, again;
	char *reason;
	int status;

	if (size < 2)
		return 0;
	status = data[0] << 8 | data[1];
	reason = malloc(size - 1);
	if (!reason)
		return 0;
	memcpy(reason, data + 2, size - 2);
	reason[size - 2] = '\0';
	memset(&v, 0xa5, sizeof v);
	apns_classify(status, size > 2 ? reason : NULL, &v);
	check_verdict(status, size > 2 ? reason : NULL, &v);
	/* pure: the same answer gives the same verdict */
	memset(&again, 0, sizeof again);
	apns_classify(status, size > 2 ? reason : NULL, &again);
	FUZZ_ASSERT(again.status == v.status && again.action == v.action &&
		    again.loud == v.loud && again.reason == v.reason);
	free(reason);
	return 0;
}
