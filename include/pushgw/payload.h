/* What reaches the phone (SPEC §4): the JSON bodies of APNs and FCM pushes for
 * a call or its cancel, per payload profile. Pure; any thread. */
#ifndef PUSHGW_PAYLOAD_H
#define PUSHGW_PAYLOAD_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "pushgw/push.h"
#include "pushgw/target.h"

typedef struct pgw_call {
	const char *id;        /* call.id, required */
	const char *from;      /* may be NULL */
	const char *from_name; /* may be NULL */
	const char *to;        /* may be NULL */
	bool video;
	const json_t *data;    /* object of string values, or NULL */
	const char *reason;    /* cancel reason, or NULL for a call */
} pgw_call;

typedef struct pgw_payload_ctx {
	const pgw_call *call;
	const char *wake_id;
	int64_t sent_at_s; /* wall clock */
	int ttl_s;
} pgw_payload_ctx;

/* APNs body for this device (VoIP or alert per `alert`). Caller frees the
 * returned string with free(); NULL on ENOMEM. *len gets its length. */
char *payload_apns(const pgw_payload_ctx *ctx, const pgw_target *t, pgw_push_kind kind,
		   bool alert, size_t *len);

/* FCM HTTP v1 request body {"message": …}. Caller frees; NULL on ENOMEM. */
char *payload_fcm(const pgw_payload_ctx *ctx, const pgw_target *t, pgw_push_kind kind,
		  size_t *len);

/* What the services accept: Apple takes at most 5120 bytes of payload for a
 * VoIP push and 4096 for any other; Google at most 4096 bytes of FCM data
 * (keys and values of the data map). */
#define PAYLOAD_APNS_VOIP_MAX 5120
#define PAYLOAD_APNS_ALERT_MAX 4096
#define PAYLOAD_FCM_DATA_MAX 4096

/* Whether a body made above fits its service's limit. *measured gets the
 * size the service counts (for FCM, when it fits, possibly just the body's
 * length, an upper bound) and *limit the limit that applies. */
bool payload_fits(pgw_provider provider, bool alert, const char *body, size_t len,
		  size_t *measured, size_t *limit);

#endif
