/* SIP Contact tokenizer: finds the URI in a Contact value and walks its URI
 * parameters with explicit (pointer, length) bounds, so arbitrary bytes from
 * a registrar or a fuzzer are safe. Pure functions, thread-safe. */
#include "pushgw/sipuri.h"

#include <stdlib.h>
#include <string.h>

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static char ascii_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

bool sipuri_name_is(const char *s, size_t n, const char *word)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (word[i] == '\0' || ascii_lower(s[i]) != ascii_lower(word[i]))
			return false;
	return word[n] == '\0';
}

static const char *find_byte(const char *p, const char *end, char c)
{
	for (; p < end; p++)
		if (*p == c)
			return p;
	return NULL;
}

/* Skip a quoted display name; returns the byte after the closing quote or
 * NULL when it never closes. A backslash escapes the next byte. */
static const char *skip_quoted(const char *p, const char *end)
{
	for (p++; p < end; p++) {
		if (*p == '\\') {
			if (end - p < 2)
				return NULL; /* a trailing backslash escapes nothing */
			p++;
			continue;
		}
		if (*p == '"')
			return p + 1;
	}
	return NULL;
}

/* Narrow [*start, *end) to the addr-spec: the part inside <> for a
 * name-addr, else the whole trimmed value. */
static pgw_err unwrap_name_addr(const char **start, const char **end,
				const char **why)
{
	const char *p = *start, *e = *end, *lt, *gt;

	while (p < e && is_space(*p))
		p++;
	while (e > p && is_space(e[-1]))
		e--;
	if (p < e && *p == '"') {
		p = skip_quoted(p, e);
		if (!p) {
			*why = "the display name's quote is not closed";
			return PGW_EINVAL;
		}
		lt = find_byte(p, e, '<');
		if (!lt) {
			*why = "a quoted display name must be followed by <URI>";
			return PGW_EINVAL;
		}
	} else {
		lt = find_byte(p, e, '<');
	}
	if (!lt) {
		*start = p;
		*end = e;
		return PGW_OK;
	}
	gt = find_byte(lt + 1, e, '>');
	if (!gt) {
		*why = "the '<' is not closed by '>'";
		return PGW_EINVAL;
	}
	*start = lt + 1;
	*end = gt;
	return PGW_OK;
}

/* Skip the scheme ("sip:" or "sips:"), returning the byte after ':'. */
static const char *skip_scheme(const char *p, const char *end)
{
	size_t n = (size_t)(end - p);

	if (n >= 4 && sipuri_name_is(p, 4, "sip:"))
		return p + 4;
	if (n >= 5 && sipuri_name_is(p, 5, "sips:"))
		return p + 5;
	return NULL;
}

/* End of host[:port] starting at p: an IPv6 reference runs to its ']'. */
static const char *host_end(const char *p, const char *end)
{
	if (p < end && *p == '[') {
		const char *rb = find_byte(p, end, ']');
		if (!rb)
			return NULL;
		p = rb + 1;
	}
	for (; p < end; p++)
		if (*p == ';' || *p == '?' || *p == '>')
			break;
	return p;
}

pgw_err sipuri_split(const char *contact, size_t len, sipuri_view *out,
		     const char **why)
{
	const char *p = contact, *end = contact + len, *at, *hend, *qm;
	pgw_err err;

	memset(out, 0, sizeof *out);
	err = unwrap_name_addr(&p, &end, why);
	if (err != PGW_OK)
		return err;
	p = skip_scheme(p, end);
	if (!p) {
		*why = "expected a sip: or sips: URI";
		return PGW_EINVAL;
	}
	/* A bare URI that a registrar left a stray '>' on ends there. */
	qm = find_byte(p, end, '>');
	if (qm)
		end = qm;
	/* Neither userinfo nor URI parameters hold an unescaped '@', so the
	 * first '@' ends the user part — which may itself hold '?' and ';'
	 * (RFC 3261 user-unreserved): only after it do they start headers
	 * and parameters. */
	at = find_byte(p, end, '@');
	if (at)
		p = at + 1;
	/* Headers ("?...") are never parameters. */
	qm = find_byte(p, end, '?');
	if (qm)
		end = qm;
	hend = host_end(p, end);
	if (!hend) {
		*why = "the IPv6 host's '[' is not closed by ']'";
		return PGW_EINVAL;
	}
	if (hend == p) {
		*why = "the SIP URI has no host";
		return PGW_EINVAL;
	}
	out->host = p;
	out->host_len = (size_t)(hend - p);
	if (hend < end && *hend == ';') {
		out->params = hend + 1;
		out->params_len = (size_t)(end - hend - 1);
	} else {
		out->params = hend;
		out->params_len = 0;
	}
	return PGW_OK;
}

bool sipuri_next_param(const char **cursor, const char *end, sipuri_param *p)
{
	const char *s = *cursor, *semi, *eq;

	while (s < end && *s == ';')
		s++;
	if (s >= end) {
		*cursor = end;
		return false;
	}
	semi = find_byte(s, end, ';');
	if (!semi)
		semi = end;
	eq = find_byte(s, semi, '=');
	p->name = s;
	p->name_len = (size_t)((eq ? eq : semi) - s);
	p->value = eq ? eq + 1 : NULL;
	p->value_len = eq ? (size_t)(semi - eq - 1) : 0;
	*cursor = semi;
	return true;
}

pgw_err sipuri_unescape(const char *s, size_t n, char **out)
{
	char *buf = malloc(n + 1), *w = buf;
	size_t i;

	*out = NULL;
	if (!buf)
		return PGW_ENOMEM;
	for (i = 0; i < n; i++) {
		int hi, lo;

		if (s[i] != '%') {
			if (s[i] == '\0')
				goto bad;
			*w++ = s[i];
			continue;
		}
		if (n - i < 3)
			goto bad;
		hi = hex_value(s[i + 1]);
		lo = hex_value(s[i + 2]);
		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
			goto bad;
		*w++ = (char)(hi * 16 + lo);
		i += 2;
	}
	*w = '\0';
	*out = buf;
	return PGW_OK;
bad:
	free(buf);
	return PGW_EINVAL;
}
