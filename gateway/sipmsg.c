/* What the SIP edge reads from parsed SIP messages (docs/sip-edge.md):
 * pure functions, see include/pushgw/sipmsg.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sofia-sip/msg_header.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_protos.h>

#include "pushgw/registry.h"
#include "pushgw/sipmsg.h"

/* ---- limits ---- */

size_t sipmsg_header_count(msg_t *msg)
{
	msg_header_t **head = msg_chain_head(msg), *h;
	size_t n = 0;

	for (h = head ? *head : NULL; h; h = h->sh_succ) {
		msg_hclass_t *hc = h->sh_class;
		if (hc == sip_request_class || hc == sip_status_class || hc == sip_separator_class ||
		    hc == sip_payload_class)
			continue;
		n++;
	}
	return n;
}

static size_t count_list(const msg_header_t *h)
{
	size_t n = 0;

	for (; h; h = h->sh_next)
		n++;
	return n;
}

int sipmsg_check_limits(msg_t *msg, const sip_t *sip, const char **why)
{
	size_t size = 0;
	msg_header_t **head = msg_chain_head(msg), *h;

	*why = NULL;
	for (h = head ? *head : NULL; h; h = h->sh_succ)
		size += h->sh_len;
	if (msg_size(msg) > size)
		size = msg_size(msg);
	if (size > SIPMSG_MAX_BYTES || (sip && sip->sip_payload &&
					sip->sip_payload->pl_len > SIPMSG_MAX_BYTES)) {
		*why = "Message Too Large";
		return 413;
	}
	if (sipmsg_header_count(msg) > SIPMSG_MAX_HEADERS) {
		*why = "Too Many Headers";
		return 400;
	}
	if (sip && count_list((const msg_header_t *)sip->sip_via) > SIPMSG_MAX_VIAS) {
		*why = "Too Many Via Headers";
		return 400;
	}
	if (sip && (count_list((const msg_header_t *)sip->sip_route) > SIPMSG_MAX_ROUTES ||
		    count_list((const msg_header_t *)sip->sip_record_route) > SIPMSG_MAX_ROUTES)) {
		*why = "Too Many Route Headers";
		return 400;
	}
	return 0;
}

int sipmsg_check_request(const sip_t *sip, const char **why)
{
	const url_t *u;

	*why = NULL;
	if (!sip || !sip->sip_request || !sip->sip_from || !sip->sip_to || !sip->sip_call_id ||
	    !sip->sip_cseq || !sip->sip_via) {
		*why = "Missing Mandatory Header";
		return 400;
	}
	u = sip->sip_request->rq_url;
	if (u->url_type != url_sip && u->url_type != url_sips && u->url_type != url_tel) {
		*why = "Unsupported URI Scheme";
		return 416;
	}
	if ((u->url_type != url_tel && (!u->url_host || !u->url_host[0])) || u->url_path) {
		/* sofia cannot encode a sip: URI with a path again: it would go
		 * on changed (docs/sip-edge.md "Limits") */
		*why = "Bad Request-URI";
		return 400;
	}
	if (sip->sip_cseq->cs_method != sip->sip_request->rq_method ||
	    (sip->sip_cseq->cs_method == sip_method_unknown &&
	     (!sip->sip_cseq->cs_method_name || !sip->sip_request->rq_method_name ||
	      strcmp(sip->sip_cseq->cs_method_name, sip->sip_request->rq_method_name) != 0))) {
		*why = "CSeq Method Does Not Match";
		return 400;
	}
	return 0;
}

/* ---- numbers ---- */

bool sipmsg_delta_seconds(const char *s, unsigned *out)
{
	unsigned long long v = 0;

	if (!s || !*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		if (v <= SIPMSG_MAX_DELTA)
			v = v * 10 + (unsigned)(*s - '0');
	}
	*out = v > SIPMSG_MAX_DELTA ? SIPMSG_MAX_DELTA : (unsigned)v;
	return true;
}

/* sofia's delta is wider than 32 bits: a cast could wrap a huge value to
 * 0, which would mean removal. */
static unsigned expires_header(const sip_expires_t *ex)
{
	return ex->ex_delta > SIPMSG_MAX_DELTA ? SIPMSG_MAX_DELTA : (unsigned)ex->ex_delta;
}

long sipmsg_requested_expires(const sip_t *sip)
{
	const sip_contact_t *m = sip->sip_contact;
	unsigned v;

	if (m && m->m_expires) {
		if (!sipmsg_delta_seconds(m->m_expires, &v))
			return -1;
		return (long)v;
	}
	if (sip->sip_expires)
		return (long)expires_header(sip->sip_expires);
	return 3600;
}

unsigned sipmsg_granted_expires(const sip_t *resp, const char *id, unsigned requested)
{
	const sip_contact_t *m;
	unsigned v;

	for (m = resp->sip_contact; m; m = m->m_next) {
		if (m->m_url->url_user && strcmp(m->m_url->url_user, id) == 0) {
			if (m->m_expires && sipmsg_delta_seconds(m->m_expires, &v))
				return v;
			break;
		}
	}
	if (resp->sip_expires)
		return expires_header(resp->sip_expires);
	return requested;
}

/* ---- REGISTER ---- */

int sipmsg_check_register(const sip_t *sip, const char **why)
{
	const sip_contact_t *m = sip->sip_contact;

	*why = NULL;
	if (!m || m->m_next || !m->m_url->url_host ||
	    (m->m_url->url_type != url_sip && m->m_url->url_type != url_sips)) {
		/* one Contact per REGISTER; no wildcard, no fetch */
		*why = "One Contact Per REGISTER Through Pushgw";
		return 400;
	}
	if (!sip->sip_to ||
	    (sip->sip_to->a_url->url_type != url_sip && sip->sip_to->a_url->url_type != url_sips) ||
	    !sip->sip_to->a_url->url_user ||
	    !registry_valid_extension(sip->sip_to->a_url->url_user)) {
		*why = "Bad To User";
		return 400;
	}
	if (sipmsg_requested_expires(sip) < 0) {
		*why = "Bad Expires";
		return 400;
	}
	return 0;
}

char *sipmsg_aor(const sip_t *sip)
{
	url_t u = *sip->sip_to->a_url;
	char buf[512];

	u.url_params = NULL;
	u.url_headers = NULL;
	u.url_port = NULL;
	if ((size_t)url_e(buf, sizeof buf, &u) >= sizeof buf)
		return NULL;
	return strdup(buf);
}

char *sipmsg_contact_value(su_home_t *home, const sip_contact_t *m)
{
	char *url = url_as_string(home, m->m_url), *out;
	sip_contact_t *again;
	size_t len, i;

	if (!url)
		return NULL;
	len = strlen(url) + 3 + (m->m_display ? strlen(m->m_display) + 1 : 0);
	for (i = 0; m->m_params && m->m_params[i]; i++)
		len += strlen(m->m_params[i]) + 1;
	out = malloc(len + 1);
	if (!out) {
		su_free(home, url);
		return NULL;
	}
	snprintf(out, len + 1, "%s%s<%s>", m->m_display ? m->m_display : "",
		 m->m_display ? " " : "", url);
	for (i = 0; m->m_params && m->m_params[i]; i++) {
		strcat(out, ";");
		strcat(out, m->m_params[i]);
	}
	su_free(home, url);
	/* stored, it must parse back to the same URI: the phone is called on it */
	again = sip_contact_make(home, out);
	if (!again || url_cmp(again->m_url, m->m_url) != 0) {
		free(out);
		out = NULL;
	}
	if (again)
		su_free(home, again);
	return out;
}

char *sipmsg_contact_instance(const sip_contact_t *m)
{
	const char *v = msg_header_find_param(m->m_common, "+sip.instance");
	size_t n;

	if (!v || !*v)
		return NULL;
	n = strlen(v);
	if (n >= 2 && v[0] == '"' && v[n - 1] == '"')
		return strndup(v + 1, n - 2);
	return strdup(v);
}

bool sipmsg_rewrite_contact(const sip_contact_t *m, const char *id, const char *host,
			    const char *port, const char *transport, char *buf, size_t n)
{
	size_t len;
	int w, i;

	w = snprintf(buf, n, "<sip:%s@%s:%s;transport=%s>", id, host, port, transport);
	if (w < 0 || (size_t)w >= n)
		return false;
	len = (size_t)w;
	for (i = 0; m->m_params && m->m_params[i]; i++) {
		const char *p = m->m_params[i];
		if (strncasecmp(p, "+sip.instance=", 14) != 0 && strncasecmp(p, "reg-id=", 7) != 0 &&
		    strncasecmp(p, "expires=", 8) != 0)
			continue;
		w = snprintf(buf + len, n - len, ";%s", p);
		if (w < 0 || (size_t)w >= n - len)
			return false;
		len += (size_t)w;
	}
	return true;
}

sip_contact_t *sipmsg_phone_contact(su_home_t *home, const sip_contact_t *phone, unsigned granted)
{
	sip_contact_t *m = sip_contact_dup(home, phone);
	char *exp;

	if (!m)
		return NULL;
	/* the header keeps a pointer to the parameter: it lives in home */
	exp = su_sprintf(home, "expires=%u", granted);
	if (!exp || msg_header_replace_param(home, m->m_common, exp) < 0)
		return NULL;
	return m;
}

/* ---- requests to bindings ---- */

const char *sipmsg_binding_id(const url_t *u, const char *public_host)
{
	if (!u || !u->url_user || !u->url_host || !public_host)
		return NULL;
	if (strncmp(u->url_user, SIPMSG_ID_PREFIX, sizeof SIPMSG_ID_PREFIX - 1) != 0 ||
	    strcasecmp(u->url_host, public_host) != 0)
		return NULL;
	return u->url_user;
}

/* ---- calls ---- */

char *sipmsg_display_name(const char *d)
{
	size_t n, i, o;
	char *out;

	if (!d || !*d)
		return NULL;
	n = strlen(d);
	if (n < 2 || d[0] != '"' || d[n - 1] != '"')
		return strdup(d);
	out = malloc(n);
	if (!out)
		return NULL;
	for (i = 1, o = 0; i < n - 1; i++) {
		if (d[i] == '\\' && i + 1 < n - 1)
			i++;
		out[o++] = d[i];
	}
	out[o] = '\0';
	return out;
}

void sipmsg_call_facts_clear(sipmsg_call_facts *f)
{
	free(f->call_id);
	free(f->from);
	free(f->from_name);
	free(f->to);
	memset(f, 0, sizeof *f);
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

bool sipmsg_call_facts_get(const sip_t *sip, const char *fallback_to, sipmsg_call_facts *out)
{
	const char *to;

	memset(out, 0, sizeof *out);
	if (!sip->sip_call_id || !sip->sip_call_id->i_id || !sip->sip_from || !sip->sip_to)
		return false;
	to = sip->sip_to->a_url->url_user ? sip->sip_to->a_url->url_user : fallback_to;
	out->call_id = strdup(sip->sip_call_id->i_id);
	out->from = dup_or_null(sip->sip_from->a_url->url_user);
	out->from_name = sipmsg_display_name(sip->sip_from->a_display);
	out->to = dup_or_null(to);
	if (!out->call_id || (sip->sip_from->a_url->url_user && !out->from) ||
	    (sip->sip_from->a_display && sip->sip_from->a_display[0] && !out->from_name) ||
	    (to && !out->to)) {
		sipmsg_call_facts_clear(out);
		return false;
	}
	return true;
}

const char *sipmsg_cancel_reason(const sip_t *sip)
{
	const sip_reason_t *re;

	for (re = sip ? sip->sip_reason : NULL; re; re = re->re_next) {
		if (!re->re_protocol || strcasecmp(re->re_protocol, "SIP") != 0 || !re->re_cause)
			continue;
		if (strcmp(re->re_cause, "200") == 0)
			return "answered_elsewhere";
		if (strcmp(re->re_cause, "603") == 0)
			return "declined";
	}
	return "caller_cancelled";
}

const char *sipmsg_route_transport(const char *route, char *buf, size_t n)
{
	const char *t = route ? strstr(route, "transport=") : NULL;
	size_t len;

	if (!t) {
		snprintf(buf, n, "udp");
		return buf;
	}
	t += 10;
	len = strcspn(t, ";>?");
	snprintf(buf, n, "%.*s", (int)len, t);
	return buf;
}

/* ---- forwarding ---- */

bool sipmsg_decrement_max_forwards(msg_t *msg, sip_t *sip)
{
	if (!sip->sip_max_forwards) {
		sip_add_make(msg, sip, sip_max_forwards_class, "70");
		return true;
	}
	if (sip->sip_max_forwards->mf_count == 0)
		return false;
	sip->sip_max_forwards->mf_count--;
	msg_fragment_clear(sip->sip_max_forwards->mf_common);
	return true;
}
