/* Retry budget of one upstream origin: a token bucket that keeps retries to
 * about a fifth of the origin's recent first attempts, so a failing service
 * is not sent several times its normal load while it tries to recover (the
 * "retry budget" of Google's SRE book and of gRPC's retry throttling). A
 * trickle of retries per second stays allowed, so a quiet origin can still
 * retry a lone failure. Pure: the caller passes the clock.
 * Threading: one budget belongs to one thread (upstream: the loop thread). */
#ifndef PUSHGW_RETRYBUDGET_H
#define PUSHGW_RETRYBUDGET_H

#include <stdbool.h>
#include <stdint.h>

/* Each first attempt deposits this much; each retry withdraws 1. */
#define RETRY_BUDGET_RATIO 0.2
/* The bucket never holds more: a burst of failures after a calm hour gets
 * this many retries beyond the ratio. */
#define RETRY_BUDGET_MAX 10.0
/* Refill by time, whatever the traffic: retries per second a quiet origin
 * keeps. */
#define RETRY_BUDGET_MIN_PER_S 2.0

typedef struct retry_budget {
	double tokens;
	int64_t refilled_ms; /* when the time refill was last applied */
} retry_budget;

/* A full bucket as of now_ms. */
void retry_budget_init(retry_budget *b, int64_t now_ms);
/* A first attempt went out. */
void retry_budget_deposit(retry_budget *b, int64_t now_ms);
/* A retry wants to go out: true (and one token spent) when the budget
 * allows it, false when the push must settle for its last answer. */
bool retry_budget_withdraw(retry_budget *b, int64_t now_ms);

#endif
