/* Unit tests for the request-body JSON reader: what it accepts equals what
 * jansson makes of the same bytes; what RFC 8259 (and jansson with
 * JSON_REJECT_DUPLICATES) refuses it refuses, saying what and where. The
 * libFuzzer target tests/fuzz/fuzz_jsonr.c compares the two on any bytes. */
#include <jansson.h>
#include <string.h>

#include "check.h"
#include "pushgw/jsonr.h"

static void same_as_jansson(const char *text)
{
	json_error_t e;
	json_t *ours = jsonr_load(text, strlen(text), &e);
	json_t *theirs = json_loads(text, JSON_REJECT_DUPLICATES, NULL);

	CHECK(ours != NULL);
	CHECK(theirs != NULL);
	CHECK(ours && theirs && json_equal(ours, theirs));
	if (!ours)
		fprintf(stderr, "  refused %s: %s\n", text, e.text);
	json_decref(ours);
	json_decref(theirs);
}

static void refused(const char *text, size_t len, const char *why, int line, int column)
{
	json_error_t e;
	json_t *ours = jsonr_load(text, len, &e);

	CHECK(ours == NULL);
	json_decref(ours);
	if (!ours) {
		CHECK_STR(e.text, why);
		CHECK(e.line == line);
		CHECK(e.column == column);
	}
}

int main(void)
{
	TEST("documents a PBX sends read as jansson reads them");
	same_as_jansson("{\"devices\":[{\"provider\":\"apns\",\"token\":\"4f7a\",\"app\":\"phone\"}],"
			"\"call\":{\"id\":\"a84b@pbx\",\"from\":\"+1555\",\"video\":false,"
			"\"data\":{\"room\":\"blue\"}},\"ttl\":30,\"timeout_ms\":5000}");
	same_as_jansson("  [ 1 , -0 , 0.5 , -2.5e-3 , 1E+2 , 9223372036854775807 , -9223372036854775808 ] \n");
	same_as_jansson("{\"s\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\u260e\\ud83d\\ude00\",\"u\":\"caf\xc3\xa9 \xe2\x98\x8e\"}");
	same_as_jansson("{\"t\":true,\"f\":false,\"n\":null,\"o\":{},\"a\":[],\"deep\":[[[{\"x\":[1]}]]]}");
	same_as_jansson("{\"tiny\":1e-400}");

	TEST("what RFC 8259 refuses is refused, with what and where");
	refused("", 0, "'[' or '{' expected", 1, 1);
	refused("\"just a string\"", 15, "'[' or '{' expected", 1, 1);
	refused("{\"a\":1,\"a\":2}", 13, "duplicate object key", 1, 11);
	refused("{\"a\":1,}", 8, "string or '}' expected", 1, 8);
	refused("[1,]", 4, "invalid token", 1, 4);
	refused("{\"a\":01}", 8, "'}' expected", 1, 7);
	refused("{\"a\":1.}", 8, "invalid token", 1, 8);
	refused("{\"a\":-}", 7, "invalid token", 1, 7);
	refused("{\"a\":tru}", 9, "invalid token", 1, 6);
	refused("{\n \"a\": 1\n} x", 13, "end of file expected", 3, 3);
	refused("{\"a\":\"\x01\"}", 9, "control character 0x1", 1, 7);
	refused("{\"a\":\"\xc3\"}", 9, "unable to decode byte 0xc3", 1, 7);
	refused("{\"a\":\"\\x\"}", 10, "invalid escape", 1, 9);
	refused("{\"a\":\"\\u0000\"}", 14, "\\u0000 is not allowed without JSON_ALLOW_NUL", 1, 13);
	refused("{\"a\":\"\\udc00\"}", 14, "invalid Unicode '\\uDC00'", 1, 13);
	refused("{\"a\":\"\\ud800x\"}", 15, "invalid Unicode '\\uD800'", 1, 13);
	refused("{\"a\":\"open", 10, "premature end of input", 1, 11);
	refused("[1\0]", 4, "']' expected", 1, 3);
	refused("[99999999999999999999]", 22, "too big integer", 1, 22);
	refused("[-99999999999999999999]", 23, "too big negative integer", 1, 23);
	refused("[1e999]", 7, "real number overflow", 1, 7);

	TEST("nesting deeper than the limit is refused, at the limit it is read");
	{
		char deep[2 * JSONR_MAX_DEPTH + 3];
		json_t *v;
		int i;

		for (i = 0; i < JSONR_MAX_DEPTH; i++) {
			deep[i] = '[';
			deep[2 * JSONR_MAX_DEPTH - 1 - i] = ']';
		}
		v = jsonr_load(deep, 2 * JSONR_MAX_DEPTH, NULL);
		CHECK(v != NULL);
		json_decref(v);
		memmove(deep + 1, deep, 2 * JSONR_MAX_DEPTH);
		deep[0] = '[';
		deep[2 * JSONR_MAX_DEPTH + 1] = ']';
		refused(deep, 2 * JSONR_MAX_DEPTH + 2, "maximum parsing depth reached", 1,
			JSONR_MAX_DEPTH + 1);
	}

	TEST("long keys and numbers and a NULL error pointer are fine");
	{
		char doc[600], key[300];
		json_t *v;

		memset(key, 'k', sizeof key - 1);
		key[sizeof key - 1] = '\0';
		snprintf(doc, sizeof doc, "{\"%s\":1.%0200d}", key, 0);
		v = jsonr_load(doc, strlen(doc), NULL);
		CHECK(v && json_real_value(json_object_get(v, key)) == 1.0);
		json_decref(v);
		CHECK(jsonr_load("[", 1, NULL) == NULL);
	}
	return check_summary("jsonr");
}
