/* Unit tests for the SIP Contact tokenizer: where the host and the
 * parameters are found in the forms registrars store, including a user part
 * holding '?' and ';' (RFC 3261 user-unreserved), and that truncated input
 * is refused without reading past its end (each case runs on an exact-size
 * heap copy, so ASan sees any over-read). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "pushgw/sipuri.h"

/* Split an exact-size copy of s; the host and parameter run as strings. */
static pgw_err split(const char *s, char *host, char *params, const char **why)
{
	size_t n = strlen(s);
	char *copy = malloc(n ? n : 1);
	sipuri_view v;
	pgw_err err;

	memcpy(copy, s, n);
	*why = NULL;
	err = sipuri_split(copy, n, &v, why);
	host[0] = params[0] = '\0';
	if (err == PGW_OK) {
		memcpy(host, v.host, v.host_len);
		host[v.host_len] = '\0';
		memcpy(params, v.params, v.params_len);
		params[v.params_len] = '\0';
	}
	free(copy);
	return err;
}

static void test_forms(void)
{
	char host[256], params[256];
	const char *why;

	TEST("bare URI, name-addr, quoted display name: host and parameters");
	CHECK(split("sip:1001@203.0.113.5:5060;pn-provider=apns;pn-prid=ab", host, params, &why) == PGW_OK);
	CHECK_STR(host, "203.0.113.5:5060");
	CHECK_STR(params, "pn-provider=apns;pn-prid=ab");
	CHECK(split("\"Alice \\\"A\\\"\" <sips:a@[2001:db8::1]:5061;transport=tls>;expires=60", host, params, &why) == PGW_OK);
	CHECK_STR(host, "[2001:db8::1]:5061");
	CHECK_STR(params, "transport=tls");

	TEST("headers after the parameters are not parameters");
	CHECK(split("sip:1001@h;pn-prid=x?Subject=hi", host, params, &why) == PGW_OK);
	CHECK_STR(host, "h");
	CHECK_STR(params, "pn-prid=x");

	TEST("a user part with an unescaped '?' or ';' does not hide the parameters");
	CHECK(split("sip:10?01@pbx.example;pn-provider=fcm;pn-prid=t", host, params, &why) == PGW_OK);
	CHECK_STR(host, "pbx.example");
	CHECK_STR(params, "pn-provider=fcm;pn-prid=t");
	CHECK(split("<sip:a;b?c@h:5060;pn-param=p?X=y>", host, params, &why) == PGW_OK);
	CHECK_STR(host, "h:5060");
	CHECK_STR(params, "pn-param=p");
}

static void test_truncated(void)
{
	char host[256], params[256];
	const char *why;

	TEST("a display name ending in a backslash is refused, no byte past the end is read");
	CHECK(split("\"abc\\", host, params, &why) == PGW_EINVAL);
	CHECK(why != NULL);
	CHECK(split("\"\\", host, params, &why) == PGW_EINVAL);
	CHECK(split("\"", host, params, &why) == PGW_EINVAL);

	TEST("other truncations are refused with a reason");
	CHECK(split("<sip:a@h", host, params, &why) == PGW_EINVAL && why);
	CHECK(split("sip:a@[::1", host, params, &why) == PGW_EINVAL && why);
	CHECK(split("sip:a@", host, params, &why) == PGW_EINVAL && why);
	CHECK(split("", host, params, &why) == PGW_EINVAL && why);
}

int main(void)
{
	test_forms();
	test_truncated();
	return check_summary("sipuri");
}
