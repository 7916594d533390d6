/* Upstream router: owns the provider state built from one config (APNs
 * provider tokens and HTTP/2 origins per (host, credential)), sends a pgw_push
 * to the right one, retries per SPEC §5 inside the push's deadline, and
 * reports the final result through push->done.
 * Threading: upstream_new() before the loop starts (it opens the pre-warmed
 * connections); everything else on the loop thread. */
#ifndef PUSHGW_UPSTREAM_H
#define PUSHGW_UPSTREAM_H

#include <stdint.h>

#include "pushgw/config.h"
#include "pushgw/err.h"
#include "pushgw/evloop.h"
#include "pushgw/h2pool.h"
#include "pushgw/push.h"

typedef struct upstream upstream;

/* Build the provider state for cfg on pool's connections. With prev (the
 * upstream a reload replaces), APNs provider tokens and open connections of
 * unchanged credentials are taken over, so Apple sees neither a new token nor
 * a new handshake. Caller frees with upstream_free(). errbuf gets a one-line
 * reason on failure. Before the loop starts, or on the loop thread. */
pgw_err upstream_new(const pgw_config *cfg, evloop *loop, h2pool *pool, const upstream *prev,
		     upstream **out, char *errbuf, size_t errlen);

/* Stop: timers end, pushes waiting for a retry or an OAuth token end
 * failed/"shutting_down"; pushes in flight end so when the pool is freed.
 * Call on every upstream before h2pool_free() at shutdown. Idempotent. */
void upstream_shutdown(upstream *up);

/* Shuts down if not yet, then frees; the pool's connections stay (they
 * belong to the pool). On the loop thread or after it stopped. NULL ok. */
void upstream_free(upstream *up);

/* Send one push; push->done(push) comes exactly once, on the loop thread,
 * never from inside this call. */
void upstream_send(upstream *up, pgw_push *push);

typedef struct upstream_stats {
	uint64_t jwt_signatures;
	uint64_t oauth_fetches;
	uint64_t handshakes;
	int connections_open;
	int streams_active;
	int queued;
} upstream_stats;

void upstream_get_stats(upstream *up, upstream_stats *out);

#endif
