/* Unit tests for the retry budget: retries stay within about a fifth of the
 * first attempts plus the bucket's size, a quiet origin keeps a trickle of
 * retries, and the bucket never grows past its cap. */
#include "check.h"
#include "pushgw/retrybudget.h"

static void test_storm_is_bounded(void)
{
	retry_budget b;
	int i, retries = 0, firsts = 1000;

	TEST("under a storm (every request fails, all at once) retries <= 0.2 x firsts + the cap");
	retry_budget_init(&b, 0);
	for (i = 0; i < firsts; i++) {
		retry_budget_deposit(&b, 0);
		/* every push would retry 4 times */
		retries += retry_budget_withdraw(&b, 0);
		retries += retry_budget_withdraw(&b, 0);
		retries += retry_budget_withdraw(&b, 0);
		retries += retry_budget_withdraw(&b, 0);
	}
	CHECK(retries <= (int)(firsts * RETRY_BUDGET_RATIO + RETRY_BUDGET_MAX) + 1);
	CHECK(retries >= (int)(firsts * RETRY_BUDGET_RATIO));
}

static void test_quiet_origin_keeps_retrying(void)
{
	retry_budget b;
	int i;

	TEST("a quiet origin may retry a lone failure: the bucket refills with time");
	retry_budget_init(&b, 0);
	for (i = 0; i < (int)RETRY_BUDGET_MAX; i++)
		CHECK(retry_budget_withdraw(&b, 0));
	CHECK(!retry_budget_withdraw(&b, 0));
	CHECK(!retry_budget_withdraw(&b, 100));
	CHECK(retry_budget_withdraw(&b, 1000)); /* 2 per second */
	CHECK(retry_budget_withdraw(&b, 1000));
	CHECK(!retry_budget_withdraw(&b, 1000));

	TEST("the bucket stops at its cap however long the calm");
	retry_budget_init(&b, 0);
	for (i = 0; i < 1000; i++)
		retry_budget_deposit(&b, 0);
	for (i = 0; i < (int)RETRY_BUDGET_MAX; i++)
		CHECK(retry_budget_withdraw(&b, 3600 * 1000));
	CHECK(!retry_budget_withdraw(&b, 3600 * 1000));

	TEST("a clock that goes back does not drain or fill the bucket");
	retry_budget_init(&b, 5000);
	CHECK(retry_budget_withdraw(&b, 1000));
	CHECK(b.tokens == RETRY_BUDGET_MAX - 1);
}

int main(void)
{
	test_storm_is_bounded();
	test_quiet_origin_keeps_retrying();
	return check_summary("retrybudget");
}
