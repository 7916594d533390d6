/* Repeated call alerts for alert-only iPhones, one entry per (call, device)
 * in a short list on the loop thread. An entry is reserved before the call's
 * first alert goes, starts repeating once APNs accepted that alert, and
 * re-sends it through the upstream on a timer until a cancel, its ttl, or an
 * answer that says the device cannot take it. */
#include "pushgw/ringer.h"

#include <stdlib.h>
#include <string.h>

#include "pushgw/apns.h"
#include "pushgw/log.h"
#include "pushgw/metrics.h"
#include "pushgw/util.h"

#define REPEAT_TIMEOUT_MS 5000

typedef struct ring {
	struct ring *prev, *next;
	ringer *rg;
	upstream *up;
	void *holder;
	ringer_hold_fn hold;
	pgw_target target;
	char *call_id;
	char collapse_id[APNS_COLLAPSE_ID_MAX + 1];
	char *body;
	size_t body_len;
	int interval_ms;
	int64_t until_ms;
	int64_t until_wall_s;
	evloop_timer *timer;
	/* the wake's first alert while it is in flight (compared, never read):
	 * nothing repeats before APNs has accepted it */
	const pgw_push *first;
	pgw_push push;   /* the repeat in flight */
	bool in_flight;
	bool stopped;    /* free when the push in flight comes back */
} ring;

struct ringer {
	evloop *loop;
	size_t max;
	size_t n;        /* entries, the table's fill */
	size_t ringing;  /* entries past their first alert: pushgw_ringing */
	ring *rings;
	bool warned_full;
};

pgw_err ringer_new(evloop *loop, size_t max, ringer **out)
{
	ringer *rg = calloc(1, sizeof *rg);

	if (!rg)
		return PGW_ENOMEM;
	rg->loop = loop;
	rg->max = max;
	*out = rg;
	/* scrapes see the gauge at 0 before any call rings, and the counter
	 * before the first repeat */
	metrics_gauge("pushgw_ringing", "", 0);
	metrics_count("pushgw_ring_repeats_total", "", 0);
	return PGW_OK;
}

static void publish(ringer *rg)
{
	metrics_gauge("pushgw_ringing", "", (double)rg->ringing);
}

static void ring_free(ring *r)
{
	ringer *rg = r->rg;

	if (r->prev)
		r->prev->next = r->next;
	else
		rg->rings = r->next;
	if (r->next)
		r->next->prev = r->prev;
	rg->n--;
	if (!r->first)
		rg->ringing--;
	evloop_timer_cancel(rg->loop, r->timer);
	r->hold(r->holder, false);
	target_clear(&r->target);
	free(r->call_id);
	free(r->body);
	free(r);
	publish(rg);
}

static void ring_fire(void *arg);

/* An answer that will not change by asking again: the token is dead, or our
 * credentials or request are wrong. Repeating would only hammer APNs (and,
 * for a dead token, keep a phone that no longer exists "ringing"). */
static bool ring_hopeless(const pgw_push_result *res)
{
	if (res->status == PGW_PUSH_INVALID_TOKEN)
		return true;
	return res->status == PGW_PUSH_FAILED &&
	       (strcmp(res->reason, "auth_error") == 0 || strcmp(res->reason, "config_error") == 0);
}

static void log_ring_end(const ring *r, const pgw_push_result *res)
{
	char red[32];

	pgw_log(PGW_LOG_INFO, "ring repetition stopped", "call_id", r->call_id, "app",
		r->target.app->name, "target", pgw_redact(r->target.remote_token, red, sizeof red),
		"status", pgw_push_status_str(res->status), "reason", res->reason, NULL);
}

static void repeat_done(pgw_push *p)
{
	ring *r = p->owner;
	int64_t next;

	r->in_flight = false;
	if (r->stopped) {
		ring_free(r);
		return;
	}
	if (ring_hopeless(&p->result)) {
		log_ring_end(r, &p->result);
		ring_free(r);
		return;
	}
	next = pgw_now_ms() + r->interval_ms;
	if (next >= r->until_ms) {
		ring_free(r);
		return;
	}
	r->timer = evloop_timer_add(r->rg->loop, r->interval_ms, ring_fire, r);
	if (!r->timer)
		ring_free(r);
}

static void ring_fire(void *arg)
{
	ring *r = arg;
	pgw_push *p = &r->push;
	int64_t now = pgw_now_ms();

	r->timer = NULL;
	if (now >= r->until_ms) {
		ring_free(r);
		return;
	}
	memset(p, 0, sizeof *p);
	p->target = &r->target;
	p->kind = PGW_PUSH_CALL;
	p->alert = true;
	p->body = r->body; /* borrowed: the ring owns it */
	p->body_len = r->body_len;
	p->ttl_s = (int)((r->until_ms - now) / 1000);
	p->expiration_s = r->until_wall_s;
	p->deadline_ms = now + REPEAT_TIMEOUT_MS < r->until_ms ? now + REPEAT_TIMEOUT_MS : r->until_ms;
	p->collapse_id = r->collapse_id;
	p->done = repeat_done;
	p->owner = r;
	pgw_uuid4(p->apns_id);
	r->in_flight = true;
	metrics_count("pushgw_ring_repeats_total", "", 1);
	upstream_send(r->up, p);
}

static ring *ring_find(ringer *rg, const char *app, const char *token, const char *call_id)
{
	ring *r;

	for (r = rg->rings; r; r = r->next)
		if (!r->stopped && strcmp(r->call_id, call_id) == 0 && strcmp(r->target.app->name, app) == 0 &&
		    r->target.remote_token && strcmp(r->target.remote_token, token) == 0)
			return r;
	return NULL;
}

bool ringer_start(ringer *rg, upstream *up, void *holder, ringer_hold_fn hold,
		  const pgw_push *first, const char *call_id, int interval_s, int64_t until_ms)
{
	const pgw_target *t = first->target;
	ring *r;

	if (!t->remote_token || interval_s <= 0 || ring_find(rg, t->app->name, t->remote_token, call_id))
		return false;
	if (rg->n >= rg->max) {
		if (!rg->warned_full)
			pgw_log(PGW_LOG_WARN, "ring repetition table full: further calls ring once", NULL);
		rg->warned_full = true;
		return false;
	}
	r = calloc(1, sizeof *r);
	if (!r)
		return false;
	r->call_id = strdup(call_id);
	r->body = malloc(first->body_len + 1);
	if (!r->call_id || !r->body || target_copy(t, &r->target) != PGW_OK) {
		free(r->call_id);
		free(r->body);
		free(r);
		return false;
	}
	apns_collapse_id(call_id, r->collapse_id);
	memcpy(r->body, first->body, first->body_len + 1);
	r->body_len = first->body_len;
	r->rg = rg;
	r->up = up;
	r->holder = holder;
	r->hold = hold;
	r->interval_ms = interval_s * 1000;
	r->until_ms = until_ms;
	r->until_wall_s = first->expiration_s;
	r->first = first;
	hold(holder, true);
	r->next = rg->rings;
	if (rg->rings)
		rg->rings->prev = r;
	rg->rings = r;
	rg->n++;
	rg->warned_full = false;
	return true;
}

void ringer_first_result(ringer *rg, const pgw_push *first)
{
	ring *r;

	for (r = rg->rings; r; r = r->next)
		if (r->first == first)
			break;
	if (!r)
		return; /* never reserved (table full, already ringing), or cancelled */
	/* a dead token, a refusal or no answer: nothing shows on the phone that
	 * a repeat would keep alive */
	if (first->result.status != PGW_PUSH_SENT) {
		ring_free(r);
		return;
	}
	r->timer = evloop_timer_add(rg->loop, r->interval_ms, ring_fire, r);
	if (!r->timer) {
		ring_free(r);
		return;
	}
	r->first = NULL;
	rg->ringing++;
	publish(rg);
}

void ringer_stop(ringer *rg, const char *app, const char *token, const char *call_id)
{
	ring *r = ring_find(rg, app, token, call_id);

	if (!r)
		return;
	/* before the first alert came back, or between repeats: nothing of the
	 * entry is in flight, it can go now */
	if (r->in_flight) {
		r->stopped = true; /* its push comes back, then it goes */
		evloop_timer_cancel(rg->loop, r->timer);
		r->timer = NULL;
		return;
	}
	ring_free(r);
}

size_t ringer_active(const ringer *rg)
{
	return rg->ringing;
}

void ringer_free(ringer *rg)
{
	if (!rg)
		return;
	while (rg->rings)
		ring_free(rg->rings);
	free(rg);
}
