/* Streaming JSON writer (see jsonw.h). Pure; the caller's thread. */
#include "pushgw/jsonw.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pushgw/util.h"

#define FIRST_CAPACITY 512

void jsonw_init(jsonw *w)
{
	memset(w, 0, sizeof *w);
}

void jsonw_discard(jsonw *w)
{
	if (!w)
		return;
	free(w->buf);
	jsonw_init(w);
}

char *jsonw_finish(jsonw *w, size_t *len)
{
	char *out = w->buf;

	if (w->oom || w->depth != 0 || !out) {
		jsonw_discard(w);
		return NULL;
	}
	out[w->len] = '\0';
	/* payloads live as long as their wake: give back a half-empty buffer */
	if (w->cap - w->len > w->len / 2 + 64) {
		char *fit = realloc(out, w->len + 1);

		if (fit)
			out = fit;
	}
	if (len)
		*len = w->len;
	jsonw_init(w);
	return out;
}

/* Room for n more bytes plus the final NUL. */
static bool reserve(jsonw *w, size_t n)
{
	size_t want, cap;
	char *nb;

	if (w->oom)
		return false;
	want = w->len + n + 1;
	if (want <= w->cap)
		return true;
	cap = w->cap ? w->cap : FIRST_CAPACITY;
	while (cap < want)
		cap *= 2;
	nb = realloc(w->buf, cap);
	if (!nb) {
		w->oom = true;
		return false;
	}
	w->buf = nb;
	w->cap = cap;
	return true;
}

static void put(jsonw *w, const char *s, size_t n)
{
	if (!reserve(w, n))
		return;
	memcpy(w->buf + w->len, s, n);
	w->len += n;
}

static void put_char(jsonw *w, char c)
{
	if (!reserve(w, 1))
		return;
	w->buf[w->len++] = c;
}

/* A comma before every item but the first of its container; none after a key. */
static void before_value(jsonw *w)
{
	if (w->after_key) {
		w->after_key = false;
		return;
	}
	if (w->depth > 0) {
		if (w->has_items[w->depth - 1])
			put_char(w, ',');
		w->has_items[w->depth - 1] = true;
	}
}

static void container_begin(jsonw *w, char c)
{
	before_value(w);
	if (w->depth >= JSONW_MAX_DEPTH) {
		w->oom = true; /* deeper than any document we make: refuse */
		return;
	}
	w->has_items[w->depth++] = false;
	put_char(w, c);
}

static void container_end(jsonw *w, char c)
{
	if (w->depth == 0) {
		w->oom = true;
		return;
	}
	w->depth--;
	put_char(w, c);
}

void jsonw_object_begin(jsonw *w)
{
	container_begin(w, '{');
}

void jsonw_object_end(jsonw *w)
{
	container_end(w, '}');
}

void jsonw_array_begin(jsonw *w)
{
	container_begin(w, '[');
}

void jsonw_array_end(jsonw *w)
{
	container_end(w, ']');
}

void jsonw_strn(jsonw *w, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, run = 0;

	before_value(w);
	put_char(w, '"');
	while (i < n) {
		unsigned char c = p[i];
		size_t ul;
		char esc[7];

		if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
			run++;
			i++;
			continue;
		}
		put(w, (const char *)p + i - run, run);
		run = 0;
		if (c >= 0x80) {
			ul = pgw_utf8_len(p + i, n - i);
			if (ul) {
				put(w, (const char *)p + i, ul);
				i += ul;
			} else {
				put(w, "\\ufffd", 6);
				i++;
			}
			continue;
		}
		switch (c) {
		case '"': put(w, "\\\"", 2); break;
		case '\\': put(w, "\\\\", 2); break;
		case '\n': put(w, "\\n", 2); break;
		case '\r': put(w, "\\r", 2); break;
		case '\t': put(w, "\\t", 2); break;
		case '\b': put(w, "\\b", 2); break;
		case '\f': put(w, "\\f", 2); break;
		default:
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			put(w, esc, 6);
		}
		i++;
	}
	put(w, (const char *)p + i - run, run);
	put_char(w, '"');
}

void jsonw_str(jsonw *w, const char *s)
{
	jsonw_strn(w, s ? s : "", s ? strlen(s) : 0);
}

void jsonw_key(jsonw *w, const char *key)
{
	jsonw_str(w, key);
	put_char(w, ':');
	w->after_key = true;
}

void jsonw_int(jsonw *w, int64_t v)
{
	char buf[24], *p = buf + sizeof buf;
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		*--p = '-';
	before_value(w);
	put(w, p, (size_t)(buf + sizeof buf - p));
}

void jsonw_bool(jsonw *w, bool v)
{
	before_value(w);
	put(w, v ? "true" : "false", v ? 4 : 5);
}

void jsonw_null(jsonw *w)
{
	before_value(w);
	put(w, "null", 4);
}

void jsonw_fixed1(jsonw *w, double v)
{
	int64_t tenths;
	char digit;

	if (!isfinite(v)) {
		jsonw_null(w);
		return;
	}
	/* truncated to one decimal, as the response has always shown them */
	tenths = (int64_t)(v * 10);
	if (tenths < 0 && tenths > -10) {
		before_value(w);
		put(w, "-0", 2);
	} else {
		jsonw_int(w, tenths / 10);
	}
	digit = (char)('0' + (tenths < 0 ? -(tenths % 10) : tenths % 10));
	put_char(w, '.');
	put_char(w, digit);
}

static void write_real(jsonw *w, double v)
{
	char buf[32];
	int n;

	if (!isfinite(v)) {
		jsonw_null(w);
		return;
	}
	n = snprintf(buf, sizeof buf, "%.17g", v);
	before_value(w);
	put(w, buf, (size_t)n);
	/* keep it a real for readers that care: 1.0, not 1 */
	if (!strpbrk(buf, ".eEn"))
		put(w, ".0", 2);
}

void jsonw_value(jsonw *w, const json_t *v)
{
	const char *key;
	json_t *item;
	size_t i;

	switch (v ? json_typeof(v) : JSON_NULL) {
	case JSON_OBJECT:
		jsonw_object_begin(w);
		json_object_foreach((json_t *)v, key, item) {
			jsonw_key(w, key);
			jsonw_value(w, item);
		}
		jsonw_object_end(w);
		break;
	case JSON_ARRAY:
		jsonw_array_begin(w);
		json_array_foreach(v, i, item)
			jsonw_value(w, item);
		jsonw_array_end(w);
		break;
	case JSON_STRING:
		jsonw_strn(w, json_string_value(v), json_string_length(v));
		break;
	case JSON_INTEGER:
		jsonw_int(w, (int64_t)json_integer_value(v));
		break;
	case JSON_REAL:
		write_real(w, json_real_value(v));
		break;
	case JSON_TRUE:
		jsonw_bool(w, true);
		break;
	case JSON_FALSE:
		jsonw_bool(w, false);
		break;
	default:
		jsonw_null(w);
	}
}

void jsonw_value_as_string(jsonw *w, const json_t *v)
{
	/* sorted keys: the same data always makes the same string */
	char *text = v ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;

	if (v && !text) {
		w->oom = true;
		return;
	}
	jsonw_str(w, text ? text : "null");
	free(text);
}

void jsonw_kv_str(jsonw *w, const char *key, const char *s)
{
	jsonw_key(w, key);
	jsonw_str(w, s);
}

void jsonw_kv_int(jsonw *w, const char *key, int64_t v)
{
	jsonw_key(w, key);
	jsonw_int(w, v);
}

void jsonw_kv_bool(jsonw *w, const char *key, bool v)
{
	jsonw_key(w, key);
	jsonw_bool(w, v);
}
