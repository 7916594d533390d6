/* Ring repetition for alert-only iPhones (SPEC §4): an iOS device reachable
 * only by alert pushes shows one silent banner and no ringing screen, so with
 * apps.<name>.ring_repeat_s set the call alert is repeated (same
 * apns-collapse-id, the call id, so each replaces the last) until a cancel for
 * the call or the wake's ttl. Timers live on the event loop; a restart
 * forgets them. Threading: loop thread only, except ringer_new()/ringer_free()
 * (before the loop starts / after it stopped). */
#ifndef PUSHGW_RINGER_H
#define PUSHGW_RINGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pushgw/err.h"
#include "pushgw/evloop.h"
#include "pushgw/push.h"
#include "pushgw/upstream.h"

typedef struct ringer ringer;

/* Keeps what `up` and the target's app belong to alive while a call rings:
 * hold(holder, true) when a repetition starts, hold(holder, false) when it
 * ends. */
typedef void (*ringer_hold_fn)(void *holder, bool hold);

/* At most max calls×devices ring at once (more are not repeated). */
pgw_err ringer_new(evloop *loop, size_t max, ringer **out);
/* Ends every repetition (releasing its hold). Accepts NULL. */
void ringer_free(ringer *rg);

/* Reserve repetition of `first` (an alert push of a call, about to be sent;
 * copies what it needs) every interval_s until until_ms or ringer_stop(). The
 * repeats begin with ringer_first_result(). False when the device already
 * rings for this call or the table is full. */
bool ringer_start(ringer *rg, upstream *up, void *holder, ringer_hold_fn hold,
		  const pgw_push *first, const char *call_id, int interval_s, int64_t until_ms);

/* `first`'s final result is in (from its done callback, while it is still
 * alive): repetition begins when APNs accepted it (sent) and is forgotten
 * otherwise. Nothing happens for a push ringer_start() did not take or whose
 * call was stopped meanwhile. A repeat that ends invalid_token, auth_error or
 * config_error ends the repetition too. */
void ringer_first_result(ringer *rg, const pgw_push *first);

/* A cancel for call_id reached this device (app, alert token): stop. */
void ringer_stop(ringer *rg, const char *app, const char *token, const char *call_id);

/* Devices ringing now (first alert accepted, repetition running). */
size_t ringer_active(const ringer *rg);

#endif
