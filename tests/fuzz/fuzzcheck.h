/* Invariants the libFuzzer targets assert on what the parsers hand back: a
 * broken one aborts, so libFuzzer saves the input as a crash. Pure checks,
 * single-threaded like the targets that call them. */
#ifndef PUSHGW_FUZZCHECK_H
#define PUSHGW_FUZZCHECK_H

#include <stdio.h>
#include <stdlib.h>

#include "pushgw/config.h"
#include "pushgw/err.h"
#include "pushgw/target.h"

#define FUZZ_ASSERT(cond)                                                        \
	do {                                                                     \
		if (!(cond)) {                                                   \
			fprintf(stderr, "invariant failed at %s:%d: %s\n", __FILE__, \
				__LINE__, #cond);                                \
			abort();                                                 \
		}                                                                \
	} while (0)

/* What target.h promises of the outcome of target_from_json() or
 * target_from_contact() called with key: on PGW_OK a resolved target the key
 * may use (checked, then also copied, compared and described); otherwise a
 * message (naming the field, which is empty only when it is a JSON key "")
 * and an untouched (all-NULL) target. */
void fuzzcheck_target_result(pgw_err rc, const pgw_target *t, const pgw_field_error *err,
			     const pgw_api_key *key);

#endif
