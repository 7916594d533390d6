/* One push to one device, as a wake or cancel fans out: what to send, its
 * deadline, and the per-device result the API reports. Owned by the wake that
 * made it; handed to upstream_send() on the loop thread, which calls done()
 * exactly once (on the loop thread) when the result is final. */
#ifndef PUSHGW_PUSH_H
#define PUSHGW_PUSH_H

#include <stdbool.h>
#include <stdint.h>

#include "pushgw/target.h"
#include "pushgw/util.h"

typedef enum pgw_push_status {
	PGW_PUSH_PENDING = 0,
	PGW_PUSH_SENT,
	PGW_PUSH_INVALID_TOKEN,
	PGW_PUSH_FAILED,
	PGW_PUSH_TIMEOUT,
	PGW_PUSH_SKIPPED, /* nothing to send by rule; never handed to upstream */
} pgw_push_status;

/* "sent", "invalid_token", "failed", "timeout", "skipped" ("pending" before). */
const char *pgw_push_status_str(pgw_push_status s);

typedef enum pgw_push_kind {
	PGW_PUSH_CALL,   /* wake: ring */
	PGW_PUSH_CANCEL, /* stop ringing */
} pgw_push_kind;

typedef struct pgw_push_result {
	pgw_push_status status;
	char reason[64];  /* service reason, or connect_error/auth_error/config_error */
	char detail[64];  /* the service's own reason when `reason` is our class */
	char push_id[PGW_UUID_LEN + 1]; /* apns-id / FCM message id (may be longer: cut) */
	int attempts;
	double latency_ms; /* first send to final answer */
	int64_t unregistered_ms; /* APNs 410 timestamp, 0 when none */
	pgw_apns_env environment; /* APNs host that answered (after any other-host retry) */
	/* The service says this token is gone for good (APNs 410, BadDeviceToken
	 * from both hosts, FCM UNREGISTERED or a token INVALID_ARGUMENT): the
	 * only results the registry may drop a device for. */
	bool token_dead;
	char hint[200]; /* what the operator should check, or "" */
	bool removed;             /* the registry dropped the dead token … */
	bool removed_remote_only; /* … only it: the device keeps its VoIP token */
} pgw_push_result;

typedef struct pgw_push pgw_push;
typedef void (*pgw_push_done_fn)(pgw_push *push);

struct pgw_push {
	const pgw_target *target; /* owned by the wake */
	pgw_push_kind kind;
	bool alert;          /* APNs: alert push to the remote token, not VoIP */
	char *body;          /* provider payload (JSON), owned by the push */
	size_t body_len;
	int ttl_s;
	int64_t expiration_s; /* wall clock seconds: now + ttl; 0 with ttl 0 (now or never) */
	int64_t deadline_ms;  /* pgw_now_ms() clock */
	char apns_id[PGW_UUID_LEN + 1]; /* reused by every retry */
	const char *collapse_id;        /* or NULL */
	pgw_push_result result;
	pgw_push_done_fn done;
	void *owner;

	/* upstream's own bookkeeping */
	int64_t started_us;
	bool other_env_tried;
	bool jwt_renewed;
	bool had_429;
	void *upstream_ctx;
};

#endif
