/* Validation of an FCM HTTP v1 send request's body ({"message": {...}}) the way
 * FCM's front end judges it: JSON shape and known field names, exactly one
 * target, data maps of strings without reserved keys, AndroidConfig priority
 * and ttl, the 4096-byte payload limit. Pure; event loop thread in pushsim. */
#ifndef SIM_FCM_MSG_H
#define SIM_FCM_MSG_H

#include <stdbool.h>
#include <stddef.h>

/* What is wrong with a body, in the terms of FCM's error document. */
struct sim_fcm_problem {
	int status;           /* HTTP status; 0 when the message is acceptable */
	const char *fcm_code; /* errorCode of an FcmError detail, or NULL */
	bool bad_request;     /* with a google.rpc.BadRequest detail, */
	char field[96];       /* naming this field ("": a description only) */
	char message[320];    /* error.message, and the violation's description */
};

struct sim_fcm_msg {
	bool json_ok;        /* a JSON object holding a "message" object */
	bool validate_only;  /* the request asked for a dry run */
	char token[256];     /* message.token, "" when absent or not a string */
};

/* Judges the first len bytes of a total-byte body (len < total: cut short
 * by the connection layer). allow_reserved lets data keys such as "from"
 * through, which FCM refuses. */
void sim_fcm_msg_check(const char *body, size_t len, size_t total, bool allow_reserved,
		       struct sim_fcm_problem *p, struct sim_fcm_msg *msg);

#endif
