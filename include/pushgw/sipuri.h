/* SIP Contact tokenizer for push targets: find the URI inside a Contact value
 * (name-addr with display name and <>, or a bare URI) and walk its URI
 * parameters. Works on (pointer, length) views and never reads past them, so
 * it is safe on arbitrary bytes. Pure functions, thread-safe. */
#ifndef PUSHGW_SIPURI_H
#define PUSHGW_SIPURI_H

#include <stdbool.h>
#include <stddef.h>

#include "pushgw/err.h"

/* Views into the caller's Contact string; nothing is allocated. */
typedef struct sipuri_view {
	const char *host; /* host[:port], IPv6 references keep their [] */
	size_t host_len;
	const char *params; /* "a=b;c" after the host (no leading ';'), up to '?' or '>' */
	size_t params_len;
} sipuri_view;

typedef struct sipuri_param {
	const char *name; /* raw, still %-escaped */
	size_t name_len;
	const char *value; /* raw, still %-escaped; NULL when the parameter has no '=' */
	size_t value_len;
} sipuri_param;

/* Locate the sip:/sips: URI in contact[0..len) and its parameter run.
 * PGW_EINVAL with *why set to a static sentence when it is not a SIP URI. */
pgw_err sipuri_split(const char *contact, size_t len, sipuri_view *out,
		     const char **why);

/* Take the next parameter from the run [*cursor, end) and advance *cursor
 * past it; empty segments (";;") are skipped. False when none is left. */
bool sipuri_next_param(const char **cursor, const char *end, sipuri_param *p);

/* %XX-unescape s[0..n) into a new NUL-terminated string (caller frees with
 * free()). PGW_EINVAL on a truncated or non-hex escape or an escaped NUL,
 * PGW_ENOMEM when allocation fails. */
pgw_err sipuri_unescape(const char *s, size_t n, char **out);

/* True when the n bytes at s equal the NUL-terminated word, ignoring ASCII
 * case. */
bool sipuri_name_is(const char *s, size_t n, const char *word);

#endif
