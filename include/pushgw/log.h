/* Structured logging: one JSON object per line on stderr
 * ({"ts":"…","level":"info","msg":"…", fields…}). Thread-safe: a line is
 * written with a single write(2). Never pass full tokens or secrets: use
 * pgw_redact(). */
#ifndef PUSHGW_LOG_H
#define PUSHGW_LOG_H

#include <jansson.h>
#include <stdbool.h>

#include "pushgw/jsonw.h"

typedef enum pgw_log_level {
	PGW_LOG_DEBUG = 0,
	PGW_LOG_INFO,
	PGW_LOG_WARN,
	PGW_LOG_ERROR,
} pgw_log_level;

/* Parse "debug|info|warn|error"; returns -1 when unknown. */
int pgw_log_level_parse(const char *s);
void pgw_log_set_level(pgw_log_level level);
/* "json" (default) or "text" (human one-liners for a terminal). */
void pgw_log_set_text(int text);
int pgw_log_enabled(pgw_log_level level);

/* Fields are const char* key/value pairs ending with NULL:
 *   pgw_log(PGW_LOG_INFO, "listening", "addr", "127.0.0.1:8080", NULL); */
void pgw_log(pgw_log_level level, const char *msg, ...);

/* Fields from a JSON object, which this call steals (decrefs); may be NULL. */
void pgw_log_json(pgw_log_level level, const char *msg, json_t *fields);

/* A line whose fields the caller streams with jsonw (hot paths: no tree).
 * begin: false when the level is off (then nothing else is to be done);
 * else w is initialised and holds the open line object, and the caller
 * writes its fields (jsonw_key/values) and calls end, which closes the
 * line, writes it and frees w. */
bool pgw_log_stream_begin(jsonw *w, pgw_log_level level, const char *msg);
void pgw_log_stream_end(jsonw *w, pgw_log_level level);

#endif
