/* Unit tests for the shared helpers whose input comes from the network:
 * Retry-After in both forms RFC 9110 allows (delta-seconds and the three
 * HTTP-date formats), relative to a given clock. */
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "check.h"
#include "pushgw/util.h"

/* 1994-11-06 08:49:37 UTC, RFC 9110's example date */
#define EXAMPLE_S 784111777

static int64_t retry_after(const char *value, int64_t now_s)
{
	int64_t s = -1;

	if (pgw_retry_after_s(value, now_s, &s) != PGW_OK)
		return -1;
	return s;
}

static void test_delta_seconds(void)
{
	int64_t s = 0;

	TEST("Retry-After delta-seconds: the number itself, spaces around allowed");
	CHECK(retry_after("120", EXAMPLE_S) == 120);
	CHECK(retry_after("0", EXAMPLE_S) == 0);
	CHECK(retry_after(" 5\t", EXAMPLE_S) == 5);
	CHECK(retry_after("007", EXAMPLE_S) == 7);
	TEST("Retry-After delta-seconds: huge values are capped, never overflow");
	CHECK(retry_after("99999999999999999999999999", EXAMPLE_S) == 366 * 86400);
	TEST("Retry-After: neither a number nor a date is refused");
	CHECK(pgw_retry_after_s(NULL, EXAMPLE_S, &s) == PGW_EINVAL);
	CHECK(retry_after("", EXAMPLE_S) == -1);
	CHECK(retry_after("   ", EXAMPLE_S) == -1);
	CHECK(retry_after("-5", EXAMPLE_S) == -1);
	CHECK(retry_after("1.5", EXAMPLE_S) == -1);
	CHECK(retry_after("5s", EXAMPLE_S) == -1);
	CHECK(retry_after("soon", EXAMPLE_S) == -1);
}

static void test_http_dates(void)
{
	char buf[64];
	time_t later = (time_t)1795531179 + 30;
	struct tm tm;

	TEST("Retry-After IMF-fixdate: seconds from now until then");
	CHECK(retry_after("Sun, 06 Nov 1994 08:49:37 GMT", EXAMPLE_S - 10) == 10);
	CHECK(retry_after("Sun, 06 Nov 1994 08:49:37 GMT", EXAMPLE_S) == 0);
	gmtime_r(&later, &tm);
	strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	CHECK(retry_after(buf, 1795531179) == 30);
	TEST("Retry-After: a date already past means no wait, not a refusal");
	CHECK(retry_after("Sun, 06 Nov 1994 08:49:37 GMT", EXAMPLE_S + 3600) == 0);
	TEST("Retry-After obsolete RFC 850 and asctime dates are accepted too");
	CHECK(retry_after("Sunday, 06-Nov-94 08:49:37 GMT", EXAMPLE_S - 10) == 10);
	CHECK(retry_after("Sun Nov  6 08:49:37 1994", EXAMPLE_S - 10) == 10);
	CHECK(retry_after("Thu Nov 10 08:49:37 1994", EXAMPLE_S) == 4 * 86400);
	TEST("RFC 850 two-digit years: more than 50 years ahead means the last century");
	/* now: 2026-11-24; 2070 is 44 years ahead, 2099 would be 73 */
	CHECK(retry_after("Wednesday, 25-Nov-26 08:00:00 GMT", 1795531179) > 0);
	CHECK(retry_after("Friday, 01-Jan-99 00:00:00 GMT", 1795531179) == 0);
	/* 2070, not 1970 (which would be past: 0); far ahead, so the cap */
	CHECK(retry_after("Wednesday, 01-Jan-70 00:00:01 GMT", 1795531179) == 366 * 86400);
	TEST("Retry-After: malformed dates are refused");
	CHECK(retry_after("Sun, 06 Nov 1994 08:49:37 UTC", EXAMPLE_S) == -1);
	CHECK(retry_after("Sun, 6 Nov 1994 08:49:37 GMT", EXAMPLE_S) == -1);
	CHECK(retry_after("Sun, 32 Nov 1994 08:49:37 GMT", EXAMPLE_S) == -1);
	CHECK(retry_after("Sun, 00 Nov 1994 08:49:37 GMT", EXAMPLE_S) == -1);
	CHECK(retry_after("Sun, 06 Nov 1994 24:49:37 GMT", EXAMPLE_S) == -1);
	CHECK(retry_after("Sun, 06 Foo 1994 08:49:37 GMT", EXAMPLE_S) == -1);
	CHECK(retry_after("sun, 06 nov 1994 08:49:37 gmt", EXAMPLE_S) == -1);
	CHECK(retry_after("Sun, 06 Nov 1994 08:49:37 GMT trailing", EXAMPLE_S) == -1);
	CHECK(retry_after("Sun, 06 Nov 1994 08:49", EXAMPLE_S) == -1);
}

int main(void)
{
	test_delta_seconds();
	test_http_dates();
	return check_summary("util");
}
