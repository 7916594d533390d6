/* Strict JSON reader (see jsonr.h): recursive descent over the bytes, strings
 * decoded into one scratch buffer, values built with jansson. Pure; the
 * caller's thread. */
#include "pushgw/jsonr.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pushgw/util.h"

/* Numbers longer than this are read from a heap copy. */
#define NUMBER_STACK 64
/* Keys longer than this are copied to the heap while their value parses. */
#define KEY_STACK 128

typedef struct reader {
	const unsigned char *start, *p, *end;
	json_error_t *err;
	int depth;
	char *scratch; /* the last decoded string, NUL-terminated */
	size_t cap;
} reader;

static json_t *read_value(reader *r);

/* Record the first error at the current position; always NULL. */
static json_t *fail(reader *r, const char *fmt, ...)
{
	const unsigned char *q, *line_start = r->start;
	va_list ap;
	int line = 1;

	if (!r->err)
		return NULL;
	for (q = r->start; q < r->p; q++)
		if (*q == '\n') {
			line++;
			line_start = q + 1;
		}
	va_start(ap, fmt);
	vsnprintf(r->err->text, sizeof r->err->text, fmt, ap);
	va_end(ap);
	snprintf(r->err->source, sizeof r->err->source, "<buffer>");
	r->err->line = line;
	r->err->column = (int)(r->p - line_start) + 1;
	r->err->position = (int)(r->p - r->start);
	r->err = NULL; /* keep the first */
	return NULL;
}

static void skip_space(reader *r)
{
	while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t'))
		r->p++;
}

static bool scratch_put(reader *r, size_t *n, const void *src, size_t len)
{
	if (*n + len + 1 > r->cap) {
		size_t cap = r->cap ? r->cap : 256;
		char *nb;

		while (cap < *n + len + 1)
			cap *= 2;
		nb = realloc(r->scratch, cap);
		if (!nb)
			return false;
		r->scratch = nb;
		r->cap = cap;
	}
	memcpy(r->scratch + *n, src, len);
	*n += len;
	r->scratch[*n] = '\0';
	return true;
}

static int hex4(const unsigned char *s)
{
	int v = 0, i;

	for (i = 0; i < 4; i++) {
		int c = s[i], d;

		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return -1;
		v = v << 4 | d;
	}
	return v;
}

static size_t utf8_encode(unsigned cp, char out[4])
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | cp >> 12);
		out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | cp >> 18);
	out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* \uXXXX at r->p (after the backslash and 'u'), with its low surrogate. */
static bool read_unicode_escape(reader *r, size_t *n)
{
	char utf8[4];
	int hi, lo;
	unsigned cp;

	if (r->end - r->p < 4 || (hi = hex4(r->p)) < 0)
		return fail(r, "invalid escape"), false;
	r->p += 4;
	cp = (unsigned)hi;
	if (hi >= 0xdc00 && hi <= 0xdfff)
		return fail(r, "invalid Unicode '\\u%04X'", hi), false;
	if (hi >= 0xd800 && hi <= 0xdbff) {
		if (r->end - r->p < 6 || r->p[0] != '\\' || r->p[1] != 'u' ||
		    (lo = hex4(r->p + 2)) < 0xdc00 || lo > 0xdfff)
			return fail(r, "invalid Unicode '\\u%04X'", hi), false;
		r->p += 6;
		cp = 0x10000 + (((unsigned)hi - 0xd800) << 10) + ((unsigned)lo - 0xdc00);
	}
	if (cp == 0)
		return fail(r, "\\u0000 is not allowed without JSON_ALLOW_NUL"), false;
	return scratch_put(r, n, utf8, utf8_encode(cp, utf8)) || (fail(r, "out of memory"), false);
}

/* The string at r->p (its opening quote) into r->scratch; its length. */
static bool read_string(reader *r, size_t *len)
{
	static const char simple[] = "\"\\/\b\f\n\r\t";
	static const char escaped[] = "\"\\/bfnrt";
	size_t n = 0;

	r->p++;
	if (!scratch_put(r, &n, "", 0))
		return fail(r, "out of memory"), false;
	for (;;) {
		const unsigned char *run = r->p;
		const char *e;
		size_t ul;

		while (r->p < r->end && *r->p >= 0x20 && *r->p < 0x80 && *r->p != '"' && *r->p != '\\')
			r->p++;
		if (r->p > run && !scratch_put(r, &n, run, (size_t)(r->p - run)))
			return fail(r, "out of memory"), false;
		if (r->p >= r->end)
			return fail(r, "premature end of input"), false;
		if (*r->p == '"') {
			r->p++;
			*len = n;
			return true;
		}
		if (*r->p < 0x20)
			return fail(r, "control character 0x%x", *r->p), false;
		if (*r->p >= 0x80) {
			ul = pgw_utf8_len(r->p, (size_t)(r->end - r->p));
			if (!ul)
				return fail(r, "unable to decode byte 0x%x", *r->p), false;
			if (!scratch_put(r, &n, r->p, ul))
				return fail(r, "out of memory"), false;
			r->p += ul;
			continue;
		}
		/* a backslash */
		if (r->end - r->p < 2)
			return fail(r, "premature end of input"), false;
		r->p += 2;
		if (r->p[-1] == 'u') {
			if (!read_unicode_escape(r, &n))
				return false;
			continue;
		}
		e = strchr(escaped, r->p[-1]);
		if (!e || !r->p[-1])
			return fail(r, "invalid escape"), false;
		if (!scratch_put(r, &n, &simple[e - escaped], 1))
			return fail(r, "out of memory"), false;
	}
}

static bool is_digit(const reader *r)
{
	return r->p < r->end && *r->p >= '0' && *r->p <= '9';
}

static json_t *read_number(reader *r)
{
	const unsigned char *begin = r->p;
	char stack[NUMBER_STACK], *text = stack, *stop;
	bool real = false;
	json_t *v = NULL;
	size_t n;

	if (*r->p == '-')
		r->p++;
	if (!is_digit(r))
		return fail(r, "invalid token");
	if (*r->p == '0')
		r->p++;
	else
		while (is_digit(r))
			r->p++;
	if (r->p < r->end && *r->p == '.') {
		real = true;
		r->p++;
		if (!is_digit(r))
			return fail(r, "invalid token");
		while (is_digit(r))
			r->p++;
	}
	if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
		real = true;
		r->p++;
		if (r->p < r->end && (*r->p == '+' || *r->p == '-'))
			r->p++;
		if (!is_digit(r))
			return fail(r, "invalid token");
		while (is_digit(r))
			r->p++;
	}
	n = (size_t)(r->p - begin);
	if (n >= sizeof stack && !(text = malloc(n + 1)))
		return fail(r, "out of memory");
	memcpy(text, begin, n);
	text[n] = '\0';
	errno = 0;
	if (real) {
		double d = strtod(text, &stop);

		if (errno == ERANGE && (d > 1.0 || d < -1.0))
			fail(r, "real number overflow");
		else
			v = json_real(d);
	} else {
		long long i = strtoll(text, &stop, 10);

		if (errno == ERANGE)
			fail(r, i < 0 ? "too big negative integer" : "too big integer");
		else
			v = json_integer((json_int_t)i);
	}
	if (text != stack)
		free(text);
	return v;
}

static json_t *read_literal(reader *r, const char *word, json_t *value)
{
	size_t n = strlen(word);

	if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
		return fail(r, "invalid token");
	r->p += n;
	return value;
}

static json_t *read_array(reader *r)
{
	json_t *a = json_array();

	if (!a)
		return fail(r, "out of memory");
	r->p++;
	skip_space(r);
	if (r->p < r->end && *r->p == ']') {
		r->p++;
		return a;
	}
	for (;;) {
		json_t *v = read_value(r);

		if (!v || json_array_append_new(a, v) != 0)
			goto fail;
		skip_space(r);
		if (r->p < r->end && *r->p == ',') {
			r->p++;
			continue;
		}
		if (r->p < r->end && *r->p == ']') {
			r->p++;
			return a;
		}
		fail(r, "']' expected");
		goto fail;
	}
fail:
	json_decref(a);
	return NULL;
}

static json_t *read_object(reader *r)
{
	json_t *o = json_object();
	char stack[KEY_STACK], *key = NULL;

	if (!o)
		return fail(r, "out of memory");
	r->p++;
	skip_space(r);
	if (r->p < r->end && *r->p == '}') {
		r->p++;
		return o;
	}
	for (;;) {
		json_t *v;
		size_t klen;

		skip_space(r);
		if (r->p >= r->end || *r->p != '"') {
			fail(r, "string or '}' expected");
			goto fail;
		}
		if (!read_string(r, &klen))
			goto fail;
		if (json_object_get(o, r->scratch)) {
			fail(r, "duplicate object key");
			goto fail;
		}
		/* the value's own strings reuse the scratch buffer */
		key = klen < sizeof stack ? stack : malloc(klen + 1);
		if (!key) {
			fail(r, "out of memory");
			goto fail;
		}
		memcpy(key, r->scratch, klen + 1);
		skip_space(r);
		if (r->p >= r->end || *r->p != ':') {
			fail(r, "':' expected");
			goto fail;
		}
		r->p++;
		v = read_value(r);
		if (!v || json_object_set_new_nocheck(o, key, v) != 0)
			goto fail;
		if (key != stack)
			free(key);
		key = NULL;
		skip_space(r);
		if (r->p < r->end && *r->p == ',') {
			r->p++;
			continue;
		}
		if (r->p < r->end && *r->p == '}') {
			r->p++;
			return o;
		}
		fail(r, "'}' expected");
		goto fail;
	}
fail:
	if (key != stack)
		free(key);
	json_decref(o);
	return NULL;
}

static json_t *read_value(reader *r)
{
	json_t *v;
	size_t n;

	skip_space(r);
	if (r->p >= r->end)
		return fail(r, "premature end of input");
	switch (*r->p) {
	case '{':
	case '[':
		if (++r->depth > JSONR_MAX_DEPTH)
			return fail(r, "maximum parsing depth reached");
		v = *r->p == '{' ? read_object(r) : read_array(r);
		r->depth--;
		return v;
	case '"':
		if (!read_string(r, &n))
			return NULL;
		v = json_stringn_nocheck(r->scratch, n);
		return v ? v : fail(r, "out of memory");
	case 't':
		return read_literal(r, "true", json_true());
	case 'f':
		return read_literal(r, "false", json_false());
	case 'n':
		return read_literal(r, "null", json_null());
	default:
		if (*r->p == '-' || (*r->p >= '0' && *r->p <= '9'))
			return read_number(r);
		return fail(r, "invalid token");
	}
}

json_t *jsonr_load(const char *buf, size_t len, json_error_t *err)
{
	reader r = {(const unsigned char *)buf, (const unsigned char *)buf,
		    (const unsigned char *)buf + len, err, 0, NULL, 0};
	json_t *doc = NULL;

	if (!buf) {
		fail(&r, "wrong arguments");
		return NULL;
	}
	skip_space(&r);
	if (r.p >= r.end || (*r.p != '{' && *r.p != '['))
		fail(&r, "'[' or '{' expected");
	else
		doc = read_value(&r);
	if (doc) {
		skip_space(&r);
		if (r.p != r.end) {
			fail(&r, "end of file expected");
			json_decref(doc);
			doc = NULL;
		}
	}
	free(r.scratch);
	return doc;
}
