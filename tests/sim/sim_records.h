/* The request log behind GET /requests: a ring of the last N requests with
 * what was answered. Event loop thread only. */
#ifndef SIM_RECORDS_H
#define SIM_RECORDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct sim_records;

enum sim_outcome {
	SIM_OUTCOME_PENDING,   /* not answered (yet) */
	SIM_OUTCOME_ANSWERED,  /* a response was sent */
	SIM_OUTCOME_REFUSED,   /* RST_STREAM(REFUSED_STREAM) or above a GOAWAY's last-stream-id */
	SIM_OUTCOME_DROPPED,   /* the connection closed before an answer */
	SIM_OUTCOME_CANCELLED, /* the client reset the stream before an answer */
};

/* The fields of a new record. hdrs and body are heap blocks the log takes
 * over (always, even when it keeps nothing). */
struct sim_record_in {
	uint64_t conn;
	int32_t stream;
	char *hdrs; /* "name\0value\0" pairs, pseudo-headers included */
	size_t hdrs_len;
	char *body;
	size_t body_len;
	const char *kind; /* "apns", "fcm" or "oauth"; a string literal or NULL */
	const char *token;
	const char *push_id;
	bool json_ok;
	int64_t ts_ms;
};

/* capacity 0 keeps nothing. Caller frees with sim_records_free(). */
struct sim_records *sim_records_new(size_t capacity);
void sim_records_free(struct sim_records *rec);

/* Returns the record's sequence number (never reused, never 0), or 0 when
 * nothing was kept. */
uint64_t sim_records_add(struct sim_records *rec, struct sim_record_in *in);
/* Both are no-ops for a sequence number that has left the ring. */
void sim_records_answered(struct sim_records *rec, uint64_t seq, int status, const char *reason);
void sim_records_outcome(struct sim_records *rec, uint64_t seq, enum sim_outcome outcome);

/* The log as a JSON array in arrival order; caller json_decref()s. */
json_t *sim_records_json(const struct sim_records *rec);
void sim_records_clear(struct sim_records *rec);

#endif
