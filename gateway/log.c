/* One JSON object per log line on stderr. The level is process-wide (set at
 * start-up and on reload); each line goes out in one write(2), so lines from
 * different threads never interleave. */
#include "pushgw/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_level = PGW_LOG_INFO;
static atomic_int log_text;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int pgw_log_level_parse(const char *s)
{
	int i;

	if (!s)
		return -1;
	for (i = 0; i < 4; i++)
		if (strcmp(s, level_names[i]) == 0)
			return i;
	if (strcmp(s, "warning") == 0)
		return PGW_LOG_WARN;
	return -1;
}

void pgw_log_set_level(pgw_log_level level)
{
	atomic_store(&log_level, (int)level);
}

void pgw_log_set_text(int text)
{
	atomic_store(&log_text, text);
}

int pgw_log_enabled(pgw_log_level level)
{
	return (int)level >= atomic_load(&log_level);
}

static void format_ts(char *buf, size_t n)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(buf, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 ts.tv_nsec / 1000000);
}

static void write_line(const char *s, size_t len)
{
	while (len > 0) {
		ssize_t w = write(STDERR_FILENO, s, len);
		if (w <= 0)
			return;
		s += w;
		len -= (size_t)w;
	}
}

static void emit_text(pgw_log_level level, const char *ts, const char *msg, json_t *fields)
{
	char *line = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&line, &len);
	const char *key;
	json_t *val;

	if (!mem)
		return;
	fprintf(mem, "%s %-5s %s", ts, level_names[level], msg);
	json_object_foreach(fields, key, val) {
		if (json_is_string(val)) {
			fprintf(mem, " %s=%s", key, json_string_value(val));
		} else {
			char *v = json_dumps(val, JSON_COMPACT | JSON_ENCODE_ANY);
			fprintf(mem, " %s=%s", key, v ? v : "?");
			free(v);
		}
	}
	fputc('\n', mem);
	fclose(mem);
	write_line(line, len);
	free(line);
}

void pgw_log_json(pgw_log_level level, const char *msg, json_t *fields)
{
	char ts[64];
	json_t *obj;
	char *line;

	if (!pgw_log_enabled(level)) {
		json_decref(fields);
		return;
	}
	if (!fields)
		fields = json_object();
	format_ts(ts, sizeof ts);
	if (atomic_load(&log_text)) {
		emit_text(level, ts, msg, fields);
		json_decref(fields);
		return;
	}
	obj = json_object();
	json_object_set_new(obj, "ts", json_string(ts));
	json_object_set_new(obj, "level", json_string(level_names[level]));
	json_object_set_new(obj, "msg", json_string(msg));
	json_object_update_missing(obj, fields);
	json_decref(fields);
	line = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
	json_decref(obj);
	if (!line)
		return;
	size_t len = strlen(line);
	line[len] = '\n'; /* json_dumps leaves room: we replace the NUL */
	write_line(line, len + 1);
	free(line);
}

bool pgw_log_stream_begin(jsonw *w, pgw_log_level level, const char *msg)
{
	char ts[64];

	if (!pgw_log_enabled(level))
		return false;
	format_ts(ts, sizeof ts);
	jsonw_init(w);
	jsonw_object_begin(w);
	jsonw_kv_str(w, "ts", ts);
	jsonw_kv_str(w, "level", level_names[level]);
	jsonw_kv_str(w, "msg", msg);
	return true;
}

void pgw_log_stream_end(jsonw *w, pgw_log_level level)
{
	size_t len = 0;
	char *line;

	jsonw_object_end(w);
	line = jsonw_finish(w, &len);
	if (!line)
		return;
	if (atomic_load(&log_text)) {
		/* the terminal format is rare: parse the line back into fields */
		json_t *obj = json_loadb(line, len, 0, NULL);
		const char *ts = json_string_value(json_object_get(obj, "ts"));
		const char *msg = json_string_value(json_object_get(obj, "msg"));
		json_t *fields = json_deep_copy(obj);

		json_object_del(fields, "ts");
		json_object_del(fields, "level");
		json_object_del(fields, "msg");
		if (obj && fields)
			emit_text(level, ts ? ts : "", msg ? msg : "", fields);
		json_decref(fields);
		json_decref(obj);
		free(line);
		return;
	}
	line[len] = '\n'; /* jsonw leaves room for the NUL: replace it */
	write_line(line, len + 1);
	free(line);
}

void pgw_log(pgw_log_level level, const char *msg, ...)
{
	va_list ap;
	json_t *fields;
	const char *key;

	if (!pgw_log_enabled(level))
		return;
	fields = json_object();
	va_start(ap, msg);
	while ((key = va_arg(ap, const char *)) != NULL) {
		const char *val = va_arg(ap, const char *);
		json_object_set_new(fields, key, val ? json_string(val) : json_null());
	}
	va_end(ap);
	pgw_log_json(level, msg, fields);
}
