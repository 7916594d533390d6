/* The one place where HTTP/2 requests are dispatched to a simulated service
 * by path, plus the request/reply types the services share with the
 * connection layer (sim_h2.c). Event loop thread only. */
#ifndef SIM_ROUTE_H
#define SIM_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct sim;
struct sim_step;

/* A complete request. Every pointer is owned by the connection layer and
 * valid during sim_route_dispatch() only. */
struct sim_request {
	const char *method;
	const char *path;
	const char *hdrs; /* "name\0value\0" pairs in arrival order, pseudo-headers too */
	size_t hdrs_len;
	const char *body; /* the first body_len bytes of a body_total-byte body */
	size_t body_len;
	size_t body_total;
	bool duplicate_header; /* a regular header name was sent twice */
	bool client_cert;      /* the TLS client certificate verified */
	uint64_t conn_id;
	int32_t stream_id;
};

/* First value of a header (lower-case name), or NULL. */
const char *sim_request_header(const struct sim_request *req, const char *name);

enum sim_action {
	SIM_ANSWER,    /* send status, headers and body */
	SIM_RST,       /* RST_STREAM(REFUSED_STREAM): "not processed" */
	SIM_DROP,      /* close the connection without a word */
	SIM_NO_ANSWER, /* leave the stream open forever */
};

#define SIM_REPLY_HEADERS 6

/* What a service decided. Zero-initialise; release with sim_reply_clear(). */
struct sim_reply {
	enum sim_action action;
	int status;
	bool goaway_after; /* GOAWAY(last-stream-id = this stream) after answering */
	bool has_delay;    /* delay_ms overrides the simulator's default delay */
	unsigned delay_ms;
	struct {
		char name[32];
		char value[96];
	} hdr[SIM_REPLY_HEADERS];
	size_t nhdr;
	char *body; /* heap */
	size_t body_len;
	/* For the request log. */
	const char *kind; /* "apns", "fcm" or "oauth"; a string literal */
	char reason[64];
	char push_id[192]; /* apns-id, FCM message name or issued access token */
	char token[256];
	bool json_ok;
};

/* Adds a response header (silently dropped beyond SIM_REPLY_HEADERS). */
void sim_reply_header(struct sim_reply *reply, const char *name, const char *value);
/* Replaces the body; returns 0 or -1 (no memory). */
int sim_reply_body(struct sim_reply *reply, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Replaces the body with doc serialised the way Google's front ends do
 * (two-space indent). Takes the reference to doc; returns 0 or -1. */
int sim_reply_json(struct sim_reply *reply, json_t *doc);
void sim_reply_clear(struct sim_reply *reply);

/* Applies what a scripted step says about the transport whatever the service:
 * its delay, drop/rst/no_answer, GOAWAY after answering and Retry-After.
 * Returns true when the step leaves nothing to answer (drop, rst, no_answer). */
bool sim_reply_transport_step(struct sim_reply *reply, const struct sim_step *step);

/* Fills reply for req. Never fails: a service that cannot decide answers 500. */
void sim_route_dispatch(struct sim *sim, const struct sim_request *req, struct sim_reply *reply);

#endif
