/* Per-token scripted answers (see sim_script.h). Steps are parsed and checked
 * when posted, so a request never meets a malformed step. Event loop thread
 * only. */
#include "sim_script.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_map.h"

struct sim_script_entry {
	size_t nsteps; /* 0: no script (an emptied token) */
	size_t next;
	struct sim_step steps[];
};

struct sim_script {
	struct sim_map *tokens; /* token -> struct sim_script_entry */
};

struct sim_script *sim_script_new(void)
{
	struct sim_script *script = calloc(1, sizeof(*script));

	if (!script)
		return NULL;
	script->tokens = sim_map_new(free);
	if (!script->tokens) {
		free(script);
		return NULL;
	}
	return script;
}

void sim_script_free(struct sim_script *script)
{
	if (!script)
		return;
	sim_map_free(script->tokens);
	free(script);
}

void sim_script_clear(struct sim_script *script)
{
	sim_map_clear(script->tokens);
}

static int sim_step_flag(const json_t *o, const char *name, bool *out)
{
	const json_t *v = json_object_get(o, name);

	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return -1;
	*out = json_is_true(v);
	return 0;
}

static int sim_step_string(const json_t *o, const char *name, char *out, size_t outlen)
{
	const json_t *v = json_object_get(o, name);

	if (!v)
		return 0;
	if (json_is_integer(v)) {
		snprintf(out, outlen, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return 0;
	}
	if (!json_is_string(v) || json_string_length(v) >= outlen)
		return -1;
	memcpy(out, json_string_value(v), json_string_length(v) + 1);
	return 0;
}

static const char *const sim_step_fields[] = {
	"status", "reason", "timestamp", "delay_ms", "retry_after", "fcm", "bad_request",
	"goaway", "drop", "rst", "no_answer",
};

/* A misspelt field would otherwise be a step that silently does nothing. */
static bool sim_step_fields_known(const json_t *o)
{
	const char *name;
	json_t *v;
	size_t i;

	json_object_foreach((json_t *)o, name, v) {
		bool known = false;

		for (i = 0; i < sizeof(sim_step_fields) / sizeof(sim_step_fields[0]); i++)
			known = known || strcmp(name, sim_step_fields[i]) == 0;
		if (!known)
			return false;
	}
	return true;
}

/* Returns NULL or the name of the field that is wrong. */
static const char *sim_step_parse(const json_t *o, struct sim_step *step)
{
	const json_t *v;

	if (!json_is_object(o))
		return "step (expected an object)";
	if (!sim_step_fields_known(o))
		return "step (unknown field; see tests/sim/README.md)";
	if ((v = json_object_get(o, "status"))) {
		if (!json_is_integer(v) || json_integer_value(v) < 100 ||
		    json_integer_value(v) > 599)
			return "status (expected 100..599)";
		step->status = (int)json_integer_value(v);
	}
	if ((v = json_object_get(o, "timestamp"))) {
		if (!json_is_integer(v))
			return "timestamp (expected milliseconds)";
		step->has_timestamp = true;
		step->timestamp = json_integer_value(v);
	}
	if ((v = json_object_get(o, "delay_ms"))) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > 3600000)
			return "delay_ms (expected 0..3600000)";
		step->has_delay = true;
		step->delay_ms = (unsigned)json_integer_value(v);
	}
	if (sim_step_string(o, "reason", step->reason, sizeof(step->reason)) < 0)
		return "reason (expected a short string)";
	if (sim_step_string(o, "retry_after", step->retry_after, sizeof(step->retry_after)) < 0)
		return "retry_after (expected a short string)";
	if (sim_step_string(o, "fcm", step->fcm, sizeof(step->fcm)) < 0)
		return "fcm (expected an FCM errorCode such as UNREGISTERED)";
	if (sim_step_string(o, "bad_request", step->bad_request, sizeof(step->bad_request)) < 0)
		return "bad_request (expected a field name such as message.android.ttl)";
	if (sim_step_flag(o, "goaway", &step->goaway) < 0)
		return "goaway (expected a boolean)";
	if (sim_step_flag(o, "drop", &step->drop) < 0)
		return "drop (expected a boolean)";
	if (sim_step_flag(o, "rst", &step->rst) < 0)
		return "rst (expected a boolean)";
	if (sim_step_flag(o, "no_answer", &step->no_answer) < 0)
		return "no_answer (expected a boolean)";
	return NULL;
}

static struct sim_script_entry *sim_script_entry_parse(const char *token, const json_t *steps,
						       char *err, size_t errlen)
{
	struct sim_script_entry *e;
	size_t i;

	if (!json_is_array(steps)) {
		snprintf(err, errlen, "script for token '%s': expected an array of steps", token);
		return NULL;
	}
	e = calloc(1, sizeof(*e) + json_array_size(steps) * sizeof(e->steps[0]));
	if (!e) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	e->nsteps = json_array_size(steps);
	for (i = 0; i < e->nsteps; i++) {
		const char *bad = sim_step_parse(json_array_get(steps, i), &e->steps[i]);

		if (bad) {
			snprintf(err, errlen, "script for token '%s', step %zu: bad %s", token, i,
				 bad);
			free(e);
			return NULL;
		}
	}
	return e;
}

int sim_script_merge(struct sim_script *script, const json_t *doc, char *err, size_t errlen)
{
	const char *token;
	json_t *steps;
	struct sim_script_entry *e;

	if (!json_is_object(doc)) {
		snprintf(err, errlen, "script: expected an object of token -> steps");
		return -1;
	}
	/* Check everything before changing anything. */
	json_object_foreach((json_t *)doc, token, steps) {
		e = sim_script_entry_parse(token, steps, err, errlen);
		if (!e)
			return -1;
		free(e);
	}
	json_object_foreach((json_t *)doc, token, steps) {
		e = sim_script_entry_parse(token, steps, err, errlen);
		if (!e || sim_map_put(script->tokens, token, e) < 0) {
			free(e);
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	return 0;
}

const struct sim_step *sim_script_next(struct sim_script *script, const char *token)
{
	struct sim_script_entry *e = sim_map_get(script->tokens, token);
	const struct sim_step *step;

	/* "*" answers for every token without a script of its own (an outage
	 * of the whole service); its steps are shared by all such tokens */
	if (!e || !e->nsteps)
		e = sim_map_get(script->tokens, SIM_SCRIPT_ANY_TOKEN);
	if (!e || !e->nsteps)
		return NULL;
	step = &e->steps[e->next];
	if (e->next + 1 < e->nsteps)
		e->next++;
	return step;
}
