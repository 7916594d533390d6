/* Scripted answers: per device token, a list of steps that successive
 * requests consume (the last one repeats). Filled by POST /script on the
 * control port, read by the services. Event loop thread only. */
#ifndef SIM_SCRIPT_H
#define SIM_SCRIPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct sim_script;

/* The script of this "token" answers every token that has none. */
#define SIM_SCRIPT_ANY_TOKEN "*"

struct sim_step {
	int status;        /* 0: not given (the service's normal answer status) */
	char reason[64];   /* empty: none */
	bool has_timestamp;
	int64_t timestamp; /* ms, for 410 */
	bool has_delay;
	unsigned delay_ms;
	char retry_after[32]; /* empty: no header */
	char fcm[48];          /* FCM: FcmError errorCode; empty: none */
	char bad_request[128]; /* FCM: field of a BadRequest detail; empty: none */
	bool goaway;
	bool drop;
	bool rst;
	bool no_answer;
};

/* Caller frees with sim_script_free(). */
struct sim_script *sim_script_new(void);
void sim_script_free(struct sim_script *script);

/* Merges {"<token>": [step, ...], ...}: each token named gets its new steps
 * from the first one on; an empty list removes the token's script. All or
 * nothing: on error returns -1 with a message naming the token and field. */
int sim_script_merge(struct sim_script *script, const json_t *doc, char *err, size_t errlen);

/* Consumes and returns the token's next step (else the next step of the "*"
 * script), or NULL when neither has one.
 * The step belongs to the script and is valid until the next script call. */
const struct sim_step *sim_script_next(struct sim_script *script, const char *token);

void sim_script_clear(struct sim_script *script);

#endif
