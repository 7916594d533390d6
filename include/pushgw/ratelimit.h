/* Per-key token buckets (limits.wakes_per_second_per_key): a key may make
 * `rate` wakes a second with bursts of up to `rate`. Buckets are found by the
 * key's name, so they survive a config reload. Thread-safe (one mutex). */
#ifndef PUSHGW_RATELIMIT_H
#define PUSHGW_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

#include "pushgw/err.h"

typedef struct ratelimit ratelimit;

/* Caller frees with ratelimit_free(). */
pgw_err ratelimit_new(ratelimit **out);
void ratelimit_free(ratelimit *rl);

/* Take one token from name's bucket at `rate` per second (0 = unlimited).
 * False when empty; then *retry_after_s is the whole seconds until a token. */
bool ratelimit_take(ratelimit *rl, const char *name, int rate, int64_t now_ms, int *retry_after_s);

#endif
