/* A small streaming JSON writer for the documents made once per wake or per
 * push (payloads, the wake response): one growing buffer, no tree, no key
 * sorting, so it costs a fraction of building and dumping a jansson tree.
 * Output is always valid JSON in valid UTF-8 (bad bytes become U+FFFD).
 * A writer belongs to one thread at a time. */
#ifndef PUSHGW_JSONW_H
#define PUSHGW_JSONW_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSONW_MAX_DEPTH 32

typedef struct jsonw {
	char *buf;
	size_t len, cap;
	bool oom;      /* an allocation failed: jsonw_finish() returns NULL */
	int depth;
	bool after_key;
	bool has_items[JSONW_MAX_DEPTH];
} jsonw;

/* Start an empty document; nothing is allocated until the first write. */
void jsonw_init(jsonw *w);
/* Drop the buffer without finishing (error paths). Accepts NULL. */
void jsonw_discard(jsonw *w);
/* The finished document, NUL-terminated; caller frees with free(). NULL when
 * an allocation failed or containers are left open. *len (if non-NULL) is
 * its length. The writer is empty afterwards. */
char *jsonw_finish(jsonw *w, size_t *len);

void jsonw_object_begin(jsonw *w);
void jsonw_object_end(jsonw *w);
void jsonw_array_begin(jsonw *w);
void jsonw_array_end(jsonw *w);
/* The next member's key, inside an object. */
void jsonw_key(jsonw *w, const char *key);

/* Values. jsonw_str(w, NULL) writes "" (a missing text field is empty). */
void jsonw_str(jsonw *w, const char *s);
void jsonw_strn(jsonw *w, const char *s, size_t n);
void jsonw_int(jsonw *w, int64_t v);
void jsonw_bool(jsonw *w, bool v);
void jsonw_null(jsonw *w);
/* A number with one decimal (latencies in ms). */
void jsonw_fixed1(jsonw *w, double v);
/* Any jansson value, written as json_dumps() would (objects in their own
 * iteration order). NULL writes null. */
void jsonw_value(jsonw *w, const json_t *v);
/* A JSON string holding the compact JSON text of v, keys sorted (FCM's
 * string-only data). */
void jsonw_value_as_string(jsonw *w, const json_t *v);

/* Shorthands for one member: key then value. */
void jsonw_kv_str(jsonw *w, const char *key, const char *s);
void jsonw_kv_int(jsonw *w, const char *key, int64_t v);
void jsonw_kv_bool(jsonw *w, const char *key, bool v);

#endif
