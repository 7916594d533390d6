/* Unit tests for the log: a line streamed with jsonw comes out as one JSON
 * object per line (ts, level, msg first, then the fields), or as the
 * terminal one-liner with the same fields; a level that is off writes
 * nothing. stderr is captured in a temp file. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "pushgw/log.h"

static char path[] = "/tmp/pgw-log-XXXXXX";
static int saved_stderr;

static void capture_begin(void)
{
	int fd = mkstemp(path);

	fflush(stderr);
	saved_stderr = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	close(fd);
}

/* Everything written since capture_begin(); caller frees. */
static char *capture_end(void)
{
	FILE *f;
	char *text = NULL;
	long n;

	fflush(stderr);
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	text = calloc(1, (size_t)n + 1);
	if (text && fread(text, 1, (size_t)n, f) != (size_t)n) {
		free(text);
		text = NULL;
	}
	fclose(f);
	unlink(path);
	strcpy(path, "/tmp/pgw-log-XXXXXX");
	return text;
}

static void stream_one(void)
{
	jsonw w;

	if (!pgw_log_stream_begin(&w, PGW_LOG_INFO, "wake"))
		return;
	jsonw_kv_str(&w, "wake_id", "w_1");
	jsonw_key(&w, "devices");
	jsonw_array_begin(&w);
	jsonw_object_begin(&w);
	jsonw_kv_str(&w, "status", "sent");
	jsonw_object_end(&w);
	jsonw_array_end(&w);
	pgw_log_stream_end(&w, PGW_LOG_INFO);
}

int main(void)
{
	char *out;
	json_t *line;
	const char *key;
	json_t *val;
	int i = 0;
	static const char *const order[] = {"ts", "level", "msg", "wake_id", "devices"};

	TEST("a streamed line is one JSON object: ts, level, msg, then the fields");
	pgw_log_set_level(PGW_LOG_INFO);
	capture_begin();
	stream_one();
	out = capture_end();
	CHECK(out && strchr(out, '\n') == out + strlen(out) - 1);
	line = out ? json_loads(out, 0, NULL) : NULL;
	CHECK(line != NULL);
	CHECK_STR(json_string_value(json_object_get(line, "level")), "info");
	CHECK_STR(json_string_value(json_object_get(line, "msg")), "wake");
	CHECK_STR(json_string_value(json_object_get(json_array_get(json_object_get(line, "devices"), 0),
						    "status")),
		  "sent");
	json_object_foreach(line, key, val)
		CHECK(i < 5 && strcmp(key, order[i++]) == 0);
	json_decref(line);
	free(out);

	TEST("the terminal format carries the same fields");
	pgw_log_set_text(1);
	capture_begin();
	stream_one();
	out = capture_end();
	CHECK(out && strstr(out, " info  wake wake_id=w_1 devices=[{\"status\":\"sent\"}]\n"));
	CHECK(out && out[0] >= '0' && out[0] <= '9' && !strstr(out, "\"ts\""));
	free(out);
	pgw_log_set_text(0);

	TEST("a level that is off writes nothing");
	pgw_log_set_level(PGW_LOG_WARN);
	capture_begin();
	stream_one();
	out = capture_end();
	CHECK_STR(out, "");
	free(out);
	return check_summary("log");
}
