/* The registry watch: one thread checks the registry's health every
 * HEALTH_PERIOD_MS, another counts its devices at most every
 * COUNT_MIN_PERIOD_MS (less often when a count is slow, so a large
 * PostgreSQL table is not scanned back to back). Readers only load atomics.
 * Threading: the two watch threads make every registry call; new/free on
 * the controlling thread. */
#include "pushgw/regwatch.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "pushgw/metrics.h"
#include "pushgw/util.h"

#define HEALTH_PERIOD_MS 500
/* A health check still running after this makes the registry not ready:
 * it is stuck, whatever it will say in the end. */
#define STALL_MS 1500
#define COUNT_MIN_PERIOD_MS 1000
/* A count may take at most 1/COUNT_DUTY of its thread's time. */
#define COUNT_DUTY 20

struct regwatch {
	registry *reg;
	pthread_t health_thread, count_thread;
	bool health_running, count_running;
	pthread_mutex_t lock; /* stop and the waits */
	pthread_cond_t cv;
	bool stop;
	atomic_bool healthy;
	atomic_llong busy_since_ms; /* a health check is running since; 0 = none */
};

static void check_health(regwatch *w)
{
	atomic_store(&w->busy_since_ms, pgw_now_ms());
	atomic_store(&w->healthy, registry_healthy(w->reg));
	atomic_store(&w->busy_since_ms, 0);
}

/* Count, and say how long to wait before the next count: a slow count of a
 * large table is spread out. */
static int64_t count_devices(regwatch *w)
{
	int64_t t0 = pgw_now_ms(), took;
	uint64_t n = 0;

	if (registry_count(w->reg, &n) == PGW_OK)
		metrics_gauge("pushgw_registry_devices", "", (double)n);
	took = pgw_now_ms() - t0;
	return took * COUNT_DUTY > COUNT_MIN_PERIOD_MS ? took * COUNT_DUTY : COUNT_MIN_PERIOD_MS;
}

/* Sleep ms or until the watch stops; false when it stops. */
static bool pause_ms(regwatch *w, int64_t ms)
{
	struct timespec until;
	bool go;

	pgw_timespec_in(&until, CLOCK_REALTIME, ms);
	pthread_mutex_lock(&w->lock);
	if (!w->stop)
		pthread_cond_timedwait(&w->cv, &w->lock, &until);
	go = !w->stop;
	pthread_mutex_unlock(&w->lock);
	return go;
}

/* Two threads, so that a long count never delays the health check that
 * readiness depends on. */
static void *health_main(void *arg)
{
	regwatch *w = arg;

	while (pause_ms(w, HEALTH_PERIOD_MS))
		check_health(w);
	return NULL;
}

static void *count_main(void *arg)
{
	regwatch *w = arg;
	int64_t wait = count_devices(w);

	while (pause_ms(w, wait))
		wait = count_devices(w);
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
	check_health(w);
	w->health_running = pthread_create(&w->health_thread, NULL, health_main, w) == 0;
	w->count_running = w->health_running &&
			   pthread_create(&w->count_thread, NULL, count_main, w) == 0;
	if (!w->count_running) {
		regwatch_free(w);
		return PGW_ENOMEM;
	}
	*out = w;
	return PGW_OK;
}

void regwatch_free(regwatch *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->lock);
	if (w->health_running)
		pthread_join(w->health_thread, NULL);
	if (w->count_running)
		pthread_join(w->count_thread, NULL);
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
