/* Unit tests for the streaming JSON writer: what it writes parses back (with
 * jansson) to exactly what was written, strings of any bytes stay valid
 * UTF-8, and misuse or huge documents fail cleanly instead of emitting
 * broken JSON. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "pushgw/jsonw.h"

/* Finish w and parse the result; NULL when either fails. */
static json_t *finish_parse(jsonw *w, char **text)
{
	size_t len = 0;
	json_t *v;

	*text = jsonw_finish(w, &len);
	if (!*text)
		return NULL;
	if (strlen(*text) != len)
		return NULL;
	v = json_loadb(*text, len, JSON_DECODE_ANY, NULL);
	return v;
}

static void test_shapes(void)
{
	jsonw w;
	char *text;
	json_t *got, *want;

	TEST("objects, arrays, every scalar and nesting round-trip through a parser");
	jsonw_init(&w);
	jsonw_object_begin(&w);
	jsonw_kv_str(&w, "type", "call");
	jsonw_kv_int(&w, "sent_at", 1795531179);
	jsonw_kv_int(&w, "neg", -42);
	jsonw_kv_int(&w, "min", INT64_MIN);
	jsonw_kv_bool(&w, "video", false);
	jsonw_kv_bool(&w, "yes", true);
	jsonw_key(&w, "nothing");
	jsonw_null(&w);
	jsonw_key(&w, "aps");
	jsonw_object_begin(&w);
	jsonw_object_end(&w);
	jsonw_key(&w, "args");
	jsonw_array_begin(&w);
	jsonw_str(&w, "Alice");
	jsonw_str(&w, NULL);
	jsonw_array_begin(&w);
	jsonw_array_end(&w);
	jsonw_int(&w, 0);
	jsonw_array_end(&w);
	jsonw_key(&w, "latency_ms");
	jsonw_fixed1(&w, 3.14159);
	jsonw_object_end(&w);
	got = finish_parse(&w, &text);
	want = json_pack("{s:s,s:I,s:I,s:I,s:b,s:b,s:n,s:{},s:[s,s,[],i],s:f}", "type", "call",
			 "sent_at", (json_int_t)1795531179, "neg", (json_int_t)-42, "min",
			 (json_int_t)INT64_MIN, "video", 0, "yes", 1, "nothing", "aps", "args",
			 "Alice", "", 0, "latency_ms", 3.1);
	CHECK(got != NULL);
	CHECK(json_equal(got, want));
	CHECK(text && text[0] == '{' && !strchr(text, ' '));
	json_decref(got);
	json_decref(want);
	free(text);

	TEST("fixed1 truncates to one decimal and stays a number");
	{
		static const struct {
			double v;
			const char *s;
		} cases[] = {{0, "0.0"}, {12, "12.0"}, {3.19, "3.1"}, {-0.5, "-0.5"}, {-2.25, "-2.2"}};
		size_t i;

		for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
			jsonw_init(&w);
			jsonw_fixed1(&w, cases[i].v);
			text = jsonw_finish(&w, NULL);
			CHECK_STR(text, cases[i].s);
			free(text);
		}
	}
}

static void test_strings(void)
{
	static const char nasty[] = "quote\" back\\ nl\n tab\t cr\r bell\a nul-free \x01\x1f é ☎ 😀 /";
	jsonw w;
	char *text;
	json_t *got;

	TEST("control characters, quotes and backslashes are escaped; UTF-8 passes");
	jsonw_init(&w);
	jsonw_str(&w, nasty);
	got = finish_parse(&w, &text);
	CHECK(got && json_is_string(got));
	CHECK_STR(got ? json_string_value(got) : NULL, nasty);
	CHECK(text && strstr(text, "\\u0001") && strstr(text, "\\u001f") && strstr(text, "\\\""));
	json_decref(got);
	free(text);

	TEST("invalid UTF-8 (stray, truncated, overlong, surrogate) becomes U+FFFD");
	{
		static const char *bad[] = {"a\x80z", "a\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf5\x80\x80\x80",
					    "ok\xe2\x98"};
		size_t i;

		for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
			jsonw_init(&w);
			jsonw_str(&w, bad[i]);
			got = finish_parse(&w, &text);
			CHECK(got && json_is_string(got));
			CHECK(got && strstr(json_string_value(got), "\xef\xbf\xbd"));
			json_decref(got);
			free(text);
		}
	}

	TEST("strn writes exactly n bytes, embedded NUL escaped");
	jsonw_init(&w);
	jsonw_strn(&w, "ab\0cd", 5);
	text = jsonw_finish(&w, NULL);
	CHECK_STR(text, "\"ab\\u0000cd\"");
	free(text);
}

static void test_values(void)
{
	jsonw w;
	char *text;
	json_t *in, *got;

	TEST("any jansson value is written as it parses back");
	in = json_loads("{\"room\":\"blue\",\"n\":7,\"r\":1.5,\"whole\":2.0,\"t\":true,\"f\":false,"
			"\"z\":null,\"list\":[1,\"two\",{\"deep\":[]}],\"uni\":\"\\u260e\"}", 0, NULL);
	CHECK(in != NULL);
	jsonw_init(&w);
	jsonw_object_begin(&w);
	jsonw_key(&w, "data");
	jsonw_value(&w, in);
	jsonw_key(&w, "none");
	jsonw_value(&w, NULL);
	jsonw_object_end(&w);
	got = finish_parse(&w, &text);
	CHECK(got && json_equal(json_object_get(got, "data"), in));
	CHECK(got && json_is_null(json_object_get(got, "none")));
	CHECK(got && json_is_real(json_object_get(json_object_get(got, "data"), "whole")));
	json_decref(got);
	free(text);

	TEST("a value as a string: compact JSON text with sorted keys");
	jsonw_init(&w);
	jsonw_value_as_string(&w, json_object_get(in, "list"));
	got = finish_parse(&w, &text);
	CHECK_STR(got ? json_string_value(got) : NULL, "[1,\"two\",{\"deep\":[]}]");
	json_decref(got);
	free(text);
	json_decref(in);
}

static void test_failures(void)
{
	jsonw w;
	char *text;
	int i;

	TEST("an unclosed or over-closed document is refused, not emitted");
	jsonw_init(&w);
	jsonw_object_begin(&w);
	CHECK(jsonw_finish(&w, NULL) == NULL);
	jsonw_init(&w);
	jsonw_array_end(&w);
	CHECK(jsonw_finish(&w, NULL) == NULL);
	jsonw_init(&w);
	CHECK(jsonw_finish(&w, NULL) == NULL);

	TEST("nesting deeper than the limit is refused");
	jsonw_init(&w);
	for (i = 0; i < JSONW_MAX_DEPTH + 1; i++)
		jsonw_array_begin(&w);
	for (i = 0; i < JSONW_MAX_DEPTH + 1; i++)
		jsonw_array_end(&w);
	CHECK(jsonw_finish(&w, NULL) == NULL);

	TEST("a large document grows its buffer and stays valid");
	jsonw_init(&w);
	jsonw_array_begin(&w);
	for (i = 0; i < 20000; i++)
		jsonw_str(&w, "0123456789abcdef0123456789abcdef");
	jsonw_array_end(&w);
	{
		json_t *got = finish_parse(&w, &text);

		CHECK(got && json_array_size(got) == 20000);
		json_decref(got);
		free(text);
	}
	jsonw_discard(NULL);
}

int main(void)
{
	test_shapes();
	test_strings();
	test_values();
	test_failures();
	return check_summary("jsonw");
}
