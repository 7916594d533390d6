/* The registry watch: one thread that checks the registry's health every
 * HEALTH_PERIOD_MS and counts its devices at most every COUNT_MIN_PERIOD_MS
 * (less often when a count is slow, so a large PostgreSQL table is not
 * scanned back to back). Readers only load atomics. Threading: the watch
 * thread makes every registry call; new/free on the controlling thread. */
#include "pushgw/regwatch.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "pushgw/metrics.h"
#include "pushgw/util.h"

#define HEALTH_PERIOD_MS 500
/* A check (or count) still running after this makes the registry not
 * ready: it is stuck, whatever it will say in the end. */
#define STALL_MS 1500
#define COUNT_MIN_PERIOD_MS 1000
/* A count may take at most 1/COUNT_DUTY of the watch's time. */
#define COUNT_DUTY 20

struct regwatch {
	registry *reg;
	pthread_t thread;
	bool running;
	pthread_mutex_t lock; /* stop and the wait */
	pthread_cond_t cv;
	bool stop;
	atomic_bool healthy;
	atomic_llong busy_since_ms; /* a health check is running since; 0 = none */
	int64_t next_count_ms;      /* watch thread only */
};

/* One round: health, then the size when it is due. Only the health check
 * counts towards a stall: a count of a large table may take a while, and
 * that says nothing about whether the registry serves. */
static void watch_once(regwatch *w)
{
	int64_t t0 = pgw_now_ms(), took;
	uint64_t n = 0;
	bool ok;

	atomic_store(&w->busy_since_ms, t0);
	ok = registry_healthy(w->reg);
	atomic_store(&w->healthy, ok);
	atomic_store(&w->busy_since_ms, 0);
	if (ok && t0 >= w->next_count_ms) {
		int64_t c0 = pgw_now_ms();
		if (registry_count(w->reg, &n) == PGW_OK)
			metrics_gauge("pushgw_registry_devices", "", (double)n);
		took = pgw_now_ms() - c0;
		w->next_count_ms = c0 + (took * COUNT_DUTY > COUNT_MIN_PERIOD_MS ? took * COUNT_DUTY
									: COUNT_MIN_PERIOD_MS);
	}
}

static void *watch_main(void *arg)
{
	regwatch *w = arg;
	struct timespec until;

	pthread_mutex_lock(&w->lock);
	while (!w->stop) {
		pthread_mutex_unlock(&w->lock);
		watch_once(w);
		pthread_mutex_lock(&w->lock);
		if (w->stop)
			break;
		pgw_timespec_in(&until, CLOCK_REALTIME, HEALTH_PERIOD_MS);
		pthread_cond_timedwait(&w->cv, &w->lock, &until);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

pgw_err regwatch_new(registry *reg, regwatch **out)
{
	regwatch *w = calloc(1, sizeof *w);

	*out = NULL;
	if (!w)
		return PGW_ENOMEM;
	w->reg = reg;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cv, NULL);
	watch_once(w);
	if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
		regwatch_free(w);
		return PGW_ENOMEM;
	}
	w->running = true;
	*out = w;
	return PGW_OK;
}

void regwatch_free(regwatch *w)
{
	if (!w)
		return;
	if (w->running) {
		pthread_mutex_lock(&w->lock);
		w->stop = true;
		pthread_cond_signal(&w->cv);
		pthread_mutex_unlock(&w->lock);
		pthread_join(w->thread, NULL);
	}
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

bool regwatch_ready(regwatch *w)
{
	int64_t busy = atomic_load(&w->busy_since_ms);

	if (busy && pgw_now_ms() - busy > STALL_MS)
		return false;
	return atomic_load(&w->healthy);
}
