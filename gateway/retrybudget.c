/* Token bucket of retries per upstream origin (see retrybudget.h). Pure; the
 * owner's thread only. */
#include "pushgw/retrybudget.h"

static void refill(retry_budget *b, int64_t now_ms)
{
	if (now_ms > b->refilled_ms) {
		b->tokens += (double)(now_ms - b->refilled_ms) / 1000.0 * RETRY_BUDGET_MIN_PER_S;
		b->refilled_ms = now_ms;
	}
	if (b->tokens > RETRY_BUDGET_MAX)
		b->tokens = RETRY_BUDGET_MAX;
}

void retry_budget_init(retry_budget *b, int64_t now_ms)
{
	b->tokens = RETRY_BUDGET_MAX;
	b->refilled_ms = now_ms;
}

void retry_budget_deposit(retry_budget *b, int64_t now_ms)
{
	b->tokens += RETRY_BUDGET_RATIO;
	refill(b, now_ms);
}

bool retry_budget_withdraw(retry_budget *b, int64_t now_ms)
{
	refill(b, now_ms);
	if (b->tokens < 1.0)
		return false;
	b->tokens -= 1.0;
	return true;
}
