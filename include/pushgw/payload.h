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

#endif
