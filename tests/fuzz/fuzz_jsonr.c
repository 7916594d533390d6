/* libFuzzer target: the request-body JSON reader against jansson. The bytes
 * go to jsonr_load() and to json_loadb(JSON_REJECT_DUPLICATES): both must
 * accept or both refuse, and what both accept must be the same value. The
 * allowed differences, where jsonr refuses what jansson takes: nesting
 * deeper than JSONR_MAX_DEPTH (jansson's limit is higher), and a NUL byte
 * in the input (jansson's lexer lets one through after a number, as in
 * "[1\0]"; RFC 8259 has no place for it). */
#include <stdint.h>
#include <string.h>

#include "fuzzcheck.h"
#include "pushgw/jsonr.h"

static int depth_of(const json_t *v)
{
	const char *key;
	json_t *item;
	size_t i;
	int d = 0, sub;

	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, key, item)
			if ((sub = depth_of(item)) > d)
				d = sub;
		return d + 1;
	}
	if (json_is_array(v)) {
		json_array_foreach(v, i, item)
			if ((sub = depth_of(item)) > d)
				d = sub;
		return d + 1;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t ours, theirs;
	json_t *a = jsonr_load((const char *)data, size, &ours);
	json_t *b = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &theirs);

	if (a && b)
		FUZZ_ASSERT(json_equal(a, b));
	else if (b)
		FUZZ_ASSERT(depth_of(b) > JSONR_MAX_DEPTH || memchr(data, 0, size));
	else
		FUZZ_ASSERT(!a);
	if (!a)
		FUZZ_ASSERT(ours.text[0] && ours.line >= 1 && ours.column >= 1 &&
			    ours.position >= 0 && (size_t)ours.position <= size);
	json_decref(a);
	json_decref(b);
	return 0;
}
