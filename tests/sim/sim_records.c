/* Ring buffer of recorded requests (see sim_records.h). The header and body
 * blocks come straight from the stream that received them, so recording costs
 * no copying on the request path. Event loop thread only. */
#include "sim_records.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sim_record {
	uint64_t seq; /* 0: empty slot */
	uint64_t conn;
	int32_t stream;
	char *hdrs;
	size_t hdrs_len;
	char *body;
	size_t body_len;
	const char *kind; /* a string literal */
	char *token;
	char push_id[192];
	bool json_ok;
	int status;
	char reason[64];
	enum sim_outcome outcome;
	int64_t ts_ms;
};

struct sim_records {
	struct sim_record *ring;
	size_t capacity;
	uint64_t next_seq;
	uint64_t oldest_seq; /* first seq still listed after a clear */
};

struct sim_records *sim_records_new(size_t capacity)
{
	struct sim_records *rec = calloc(1, sizeof(*rec));

	if (!rec)
		return NULL;
	rec->capacity = capacity;
	rec->next_seq = 1;
	rec->oldest_seq = 1;
	if (capacity) {
		rec->ring = calloc(capacity, sizeof(*rec->ring));
		if (!rec->ring) {
			free(rec);
			return NULL;
		}
	}
	return rec;
}

static void sim_record_release(struct sim_record *r)
{
	free(r->hdrs);
	free(r->body);
	free(r->token);
	memset(r, 0, sizeof(*r));
}

void sim_records_clear(struct sim_records *rec)
{
	size_t i;

	for (i = 0; i < rec->capacity; i++)
		sim_record_release(&rec->ring[i]);
	rec->oldest_seq = rec->next_seq;
}

void sim_records_free(struct sim_records *rec)
{
	if (!rec)
		return;
	sim_records_clear(rec);
	free(rec->ring);
	free(rec);
}

static struct sim_record *sim_records_find(const struct sim_records *rec, uint64_t seq)
{
	struct sim_record *r;

	if (!seq || !rec->capacity)
		return NULL;
	r = &rec->ring[(seq - 1) % rec->capacity];
	return r->seq == seq ? r : NULL;
}

uint64_t sim_records_add(struct sim_records *rec, struct sim_record_in *in)
{
	struct sim_record *r;
	uint64_t seq = rec->next_seq++;

	if (!rec->capacity) {
		free(in->hdrs);
		free(in->body);
		return 0;
	}
	r = &rec->ring[(seq - 1) % rec->capacity];
	sim_record_release(r);
	r->seq = seq;
	r->conn = in->conn;
	r->stream = in->stream;
	r->hdrs = in->hdrs;
	r->hdrs_len = in->hdrs_len;
	r->body = in->body;
	r->body_len = in->body_len;
	r->kind = in->kind ? in->kind : "";
	r->token = strdup(in->token ? in->token : "");
	snprintf(r->push_id, sizeof(r->push_id), "%s", in->push_id ? in->push_id : "");
	r->json_ok = in->json_ok;
	r->outcome = SIM_OUTCOME_PENDING;
	r->ts_ms = in->ts_ms;
	in->hdrs = NULL;
	in->body = NULL;
	return seq;
}

void sim_records_answered(struct sim_records *rec, uint64_t seq, int status, const char *reason)
{
	struct sim_record *r = sim_records_find(rec, seq);

	if (!r)
		return;
	r->status = status;
	snprintf(r->reason, sizeof(r->reason), "%s", reason ? reason : "");
	r->outcome = SIM_OUTCOME_ANSWERED;
}

void sim_records_outcome(struct sim_records *rec, uint64_t seq, enum sim_outcome outcome)
{
	struct sim_record *r = sim_records_find(rec, seq);

	if (r)
		r->outcome = outcome;
}

/* Request bytes are not always UTF-8; JSON strings must be. */
static json_t *sim_json_bytes(const char *p, size_t n)
{
	json_t *s = json_stringn(p ? p : "", p ? n : 0);
	char *copy;
	size_t i;

	if (s)
		return s;
	copy = malloc(n + 1);
	if (!copy)
		return json_string("");
	for (i = 0; i < n; i++)
		copy[i] = (unsigned char)p[i] < 0x80 && p[i] ? p[i] : '?';
	s = json_stringn(copy, n);
	free(copy);
	return s;
}

static const char *sim_outcome_name(enum sim_outcome o)
{
	switch (o) {
	case SIM_OUTCOME_ANSWERED:
		return "answered";
	case SIM_OUTCOME_REFUSED:
		return "refused";
	case SIM_OUTCOME_DROPPED:
		return "dropped";
	case SIM_OUTCOME_CANCELLED:
		return "cancelled";
	case SIM_OUTCOME_PENDING:
		break;
	}
	return "pending";
}

/* Splits the header block into the pseudo-headers the log lists on their own
 * and an object of regular headers (first value wins, like the services). */
static json_t *sim_record_headers(const struct sim_record *r, const char **method,
				  const char **path)
{
	json_t *h = json_object();
	const char *p = r->hdrs, *end = r->hdrs + r->hdrs_len;

	*method = "";
	*path = "";
	while (p && p < end) {
		const char *value = p + strlen(p) + 1;

		if (strcmp(p, ":method") == 0)
			*method = value;
		else if (strcmp(p, ":path") == 0)
			*path = value;
		else if (p[0] != ':' && !json_object_get(h, p))
			json_object_set_new(h, p, sim_json_bytes(value, strlen(value)));
		p = value + strlen(value) + 1;
	}
	return h;
}

/* "id" is the apns-id, the FCM message name or the issued access token;
 * "apns_id" repeats it for APNs records only. */
static json_t *sim_record_json(const struct sim_record *r)
{
	const char *method, *path;
	json_t *headers = sim_record_headers(r, &method, &path);
	bool apns = strcmp(r->kind, "apns") == 0;

	return json_pack("{sI ss sI si so so so so so sb si ss so ss ss sI}", "seq",
			 (json_int_t)r->seq, "kind", r->kind, "conn", (json_int_t)r->conn,
			 "stream", (int)r->stream, "method", sim_json_bytes(method, strlen(method)),
			 "path", sim_json_bytes(path, strlen(path)), "token",
			 sim_json_bytes(r->token, strlen(r->token)), "headers", headers, "body",
			 sim_json_bytes(r->body, r->body_len), "json_ok", (int)r->json_ok, "status",
			 r->status, "reason", r->reason, "id",
			 sim_json_bytes(r->push_id, strlen(r->push_id)), "apns_id",
			 apns ? r->push_id : "", "outcome", sim_outcome_name(r->outcome), "ts_ms",
			 (json_int_t)r->ts_ms);
}

json_t *sim_records_json(const struct sim_records *rec)
{
	json_t *arr = json_array();
	uint64_t first = rec->next_seq > rec->capacity ? rec->next_seq - rec->capacity : 1;
	uint64_t seq;

	if (first < rec->oldest_seq)
		first = rec->oldest_seq;
	for (seq = first; seq < rec->next_seq; seq++) {
		struct sim_record *r = sim_records_find(rec, seq);

		if (r)
			json_array_append_new(arr, sim_record_json(r));
	}
	return arr;
}
