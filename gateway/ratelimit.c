/* Token buckets by key name. A short list under one mutex: there are few API
 * keys, and a take is a lookup and a little arithmetic. */
#include "pushgw/ratelimit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct bucket {
	struct bucket *next;
	char *name;
	double tokens;
	int64_t last_ms;
} bucket;

struct ratelimit {
	pthread_mutex_t lock;
	bucket *buckets;
};

pgw_err ratelimit_new(ratelimit **out)
{
	ratelimit *rl = calloc(1, sizeof *rl);

	if (!rl)
		return PGW_ENOMEM;
	pthread_mutex_init(&rl->lock, NULL);
	*out = rl;
	return PGW_OK;
}

void ratelimit_free(ratelimit *rl)
{
	bucket *b, *next;

	if (!rl)
		return;
	for (b = rl->buckets; b; b = next) {
		next = b->next;
		free(b->name);
		free(b);
	}
	pthread_mutex_destroy(&rl->lock);
	free(rl);
}

static bucket *bucket_get(ratelimit *rl, const char *name, int rate, int64_t now_ms)
{
	bucket *b;

	for (b = rl->buckets; b; b = b->next)
		if (strcmp(b->name, name) == 0)
			return b;
	b = calloc(1, sizeof *b);
	if (!b)
		return NULL;
	b->name = strdup(name);
	if (!b->name) {
		free(b);
		return NULL;
	}
	b->tokens = rate; /* a new key starts with a full burst */
	b->last_ms = now_ms;
	b->next = rl->buckets;
	rl->buckets = b;
	return b;
}

bool ratelimit_take(ratelimit *rl, const char *name, int rate, int64_t now_ms, int *retry_after_s)
{
	bucket *b;
	bool ok = true;

	if (rate <= 0)
		return true;
	pthread_mutex_lock(&rl->lock);
	b = bucket_get(rl, name, rate, now_ms);
	if (b) {
		b->tokens += (double)(now_ms - b->last_ms) * rate / 1000.0;
		if (b->tokens > rate)
			b->tokens = rate;
		b->last_ms = now_ms;
		if (b->tokens >= 1.0) {
			b->tokens -= 1.0;
		} else {
			ok = false;
			/* whole seconds, rounded up, as Retry-After wants */
			*retry_after_s = (int)((1.0 - b->tokens) / rate) + 1;
		}
	}
	pthread_mutex_unlock(&rl->lock);
	return ok;
}
