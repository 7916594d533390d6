/* The SIP edge's REGISTER relay (docs/sip-edge.md "REGISTER"): phone →
 * pushgw → PBX, statefully, with the Contact rewritten to a binding id at
 * pushgw; challenges pass back untouched; on the PBX's 2xx the binding is
 * stored durably before the 2xx goes back with the phone's own Contact.
 * Threading: SIP thread; the registry calls run as edge registry jobs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pushgw/log.h"
#include "pushgw/metrics.h"
#include "pushgw/util.h"
#include "sipedge_int.h"

/* One REGISTER in flight. */
typedef struct edge_reg {
	struct edge_reg *next, *prev;
	bool linked;
	sipedge *edge;
	nta_incoming_t *irq;
	nta_outgoing_t *orq;
	msg_t *response; /* the PBX's 2xx, held until the binding is stored */
	tport_t *tp;     /* the phone's flow (referenced) */
	char route[200];
	char id[64];
	bool refresh; /* id is that of a stored binding */
	char *aor, *extension, *contact, *instance;
	sip_contact_t *phone_contact; /* in home */
	su_home_t home[1];
	pgw_target target;
	bool has_target;
	bool removing; /* Expires: 0 */
	pgw_field_error no_push; /* why the Contact has no push target */
	unsigned expires_req;
	unsigned expires_granted;
	int64_t received_ms;
} edge_reg;

static void reg_free(edge_reg *r)
{
	sipedge *edge = r->edge;

	if (r->linked) {
		if (r->prev)
			r->prev->next = r->next;
		else
			edge->registers = r->next;
		if (r->next)
			r->next->prev = r->prev;
		edge->n_pending_registers--;
	}
	if (r->orq)
		nta_outgoing_destroy(r->orq);
	if (r->irq)
		nta_incoming_destroy(r->irq);
	if (r->response)
		msg_destroy(r->response);
	if (r->tp)
		tport_unref(r->tp);
	if (r->has_target)
		target_clear(&r->target);
	free(r->aor);
	free(r->extension);
	free(r->contact);
	free(r->instance);
	su_home_deinit(r->home);
	free(r);
}

static void count_registration(const char *result)
{
	char labels[64];

	snprintf(labels, sizeof labels, "result=\"%s\"", result);
	metrics_count("pushgw_sip_registrations_total", labels, 1);
}

/* Answer the phone's REGISTER ourselves and forget it. */
static void reg_reply(edge_reg *r, int status, const char *phrase, const char *result)
{
	if (r->irq)
		nta_incoming_treply(r->irq, status, phrase, TAG_END());
	count_registration(result);
	reg_free(r);
}

/* The Contact's value with every URI and header parameter the phone sent
 * (sofia's own encoding of a parsed Contact can drop one), or NULL. */
static char *contact_value(su_home_t *home, const sip_contact_t *m)
{
	char *url = url_as_string(home, m->m_url), *out;
	size_t len, i;

	if (!url)
		return NULL;
	len = strlen(url) + 3 + (m->m_display ? strlen(m->m_display) + 1 : 0);
	for (i = 0; m->m_params && m->m_params[i]; i++)
		len += strlen(m->m_params[i]) + 1;
	out = malloc(len + 1);
	if (!out)
		return NULL;
	snprintf(out, len + 1, "%s%s<%s>", m->m_display ? m->m_display : "",
		 m->m_display ? " " : "", url);
	for (i = 0; m->m_params && m->m_params[i]; i++) {
		strcat(out, ";");
		strcat(out, m->m_params[i]);
	}
	return out;
}

/* "value" of +sip.instance without quotes, or NULL. */
static char *contact_instance(const sip_contact_t *m)
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

static unsigned requested_expires(const sip_t *sip)
{
	const sip_contact_t *m = sip->sip_contact;

	if (m->m_expires)
		return (unsigned)strtoul(m->m_expires, NULL, 10);
	if (sip->sip_expires)
		return (unsigned)sip->sip_expires->ex_delta;
	return 3600;
}

/* The Contact pushgw registers for the phone: its binding at pushgw, on
 * the transport the PBX is reached by. The phone's URI parameters (pn-*
 * included) stay here; only +sip.instance, reg-id and expires go on. */
static bool edge_contact(sipedge *edge, const edge_reg *r, const sip_contact_t *m, char *buf,
			 size_t n)
{
	size_t len;
	int i;

	len = (size_t)snprintf(buf, n, "<sip:%s@%s:%s;transport=%s>", r->id,
			       edge->cfg->sip.public_host,
			       edge_port_for(edge, edge->backend_transport), edge->backend_transport);
	for (i = 0; m->m_params && m->m_params[i] && len < n; i++) {
		const char *p = m->m_params[i];
		if (strncasecmp(p, "+sip.instance=", 14) == 0 || strncasecmp(p, "reg-id=", 7) == 0 ||
		    strncasecmp(p, "expires=", 8) == 0)
			len += (size_t)snprintf(buf + len, n - len, ";%s", p);
	}
	return len < n;
}

/* ---- step 3: the binding is stored; the 2xx goes back ---- */

/* The PBX's 2xx with the phone's own Contact (and the granted expiry). */
static void relay_ok(edge_reg *r)
{
	msg_t *resp = r->response;
	sip_t *sip = sip_object(resp);
	sip_contact_t *m;
	char exp[32];

	r->response = NULL;
	edge_pop_via(resp, sip);
	while (sip->sip_contact)
		msg_header_remove(resp, (msg_pub_t *)sip, (msg_header_t *)sip->sip_contact);
	if (!r->removing) {
		m = sip_contact_dup(msg_home(resp), r->phone_contact);
		if (m) {
			snprintf(exp, sizeof exp, "expires=%u", r->expires_granted);
			msg_header_replace_param(msg_home(resp), m->m_common, exp);
			msg_header_insert(resp, (msg_pub_t *)sip, (msg_header_t *)m);
		}
	}
	nta_incoming_mreply(r->irq, resp);
	nta_incoming_destroy(r->irq);
	r->irq = NULL;
}

/* The binding in memory follows what the registry now holds. */
static edge_binding *remember_binding(sipedge *edge, edge_reg *r, const registry_binding *rec)
{
	edge_binding *b = edge_binding_find(edge, r->id);
	registry_binding copy;

	if (edge_binding_rec_copy(&copy, rec) != PGW_OK) {
		if (b)
			edge_binding_drop(edge, b);
		return NULL;
	}
	if (!b) {
		if (edge->n_bindings >= EDGE_MAX_BINDINGS || !(b = calloc(1, sizeof *b))) {
			edge_binding_rec_clear(&copy);
			return NULL;
		}
		b->rec = copy;
		edge_binding_add(edge, b);
	} else {
		edge_binding_rec_clear(&b->rec);
		b->rec = copy; /* the same id: its hash chain stays */
	}
	b->has_push = r->has_target;
	b->provider = r->has_target ? r->target.provider : 0;
	edge_binding_set_flow(b, r->tp, r->route);
	b->registered_ms = r->received_ms;
	return b;
}

/* Note a Contact whose push parameters do not resolve: once per binding,
 * when it is first registered (a refresh repeats nothing). */
static void log_no_push(const edge_reg *r, const pgw_field_error *fe)
{
	pgw_log(PGW_LOG_WARN, "sip: registered without push: the Contact's push parameters do not resolve",
		"aor", r->aor, "field", fe->field, "why", fe->message, NULL);
}

static void binding_stored(sipedge *edge, edge_rjob *j)
{
	edge_reg *r = j->ctx;
	edge_binding *b;

	if (j->rc != PGW_OK) {
		char why[64];
		snprintf(why, sizeof why, "%s", pgw_strerror(j->rc));
		pgw_log(PGW_LOG_ERROR, "sip: registration not stored; the phone gets 500 and retries",
			"binding", r->id, "error", why, NULL);
		if (r->response) {
			msg_destroy(r->response);
			r->response = NULL;
		}
		reg_reply(r, 500, "Registration Not Stored", "error");
		return;
	}
	if (r->removing) {
		b = edge_binding_find(edge, r->id);
		if (b)
			edge_binding_drop(edge, b);
		relay_ok(r);
		count_registration("removed");
		pgw_log(PGW_LOG_INFO, "sip registration removed", "binding", r->id, "aor", r->aor, NULL);
		reg_free(r);
		edge_update_gauges(edge);
		return;
	}
	if (!r->refresh && !r->has_target)
		log_no_push(r, &r->no_push);
	b = remember_binding(edge, r, &j->in);
	relay_ok(r);
	count_registration(r->refresh ? "refreshed" : "created");
	{
		char exp[16];
		snprintf(exp, sizeof exp, "%u", r->expires_granted);
		pgw_log(PGW_LOG_INFO, "sip registered", "binding", r->id, "aor", r->aor, "result",
			r->refresh ? "refreshed" : "created", "push", r->has_target ? "yes" : "no",
			"flow", r->tp ? tport_name(r->tp)->tpn_proto : "udp", "expires", exp, NULL);
	}
	reg_free(r);
	edge_update_gauges(edge);
	if (b)
		edge_binding_reachable(edge, b);
}

static void put_work(edge_rjob *j)
{
	j->rc = registry_binding_put(j->reg, &j->in, j->has_target ? &j->target : NULL,
				     &j->created);
}

static void delete_work(edge_rjob *j)
{
	j->rc = registry_binding_delete(j->reg, j->in.id);
	if (j->rc == PGW_ENOTFOUND)
		j->rc = PGW_OK;
}

static void store_binding(sipedge *edge, edge_reg *r)
{
	edge_rjob *j = edge_rjob_new(edge, r->removing ? delete_work : put_work, binding_stored, r);
	int64_t now = pgw_wall_ms();

	if (!j) {
		reg_reply(r, SIP_500_INTERNAL_SERVER_ERROR, "error");
		return;
	}
	j->in.id = strdup(r->id);
	j->in.edge = strdup(edge->cfg->sip.public_host);
	j->in.aor = strdup(r->aor);
	j->in.extension = strdup(r->extension);
	j->in.contact = strdup(r->contact);
	j->in.instance = edge_strdup(r->instance);
	j->in.app = r->has_target ? strdup(r->target.app->name) : NULL;
	j->in.expires_at_ms = now + (int64_t)r->expires_granted * 1000;
	j->in.updated_at_ms = now;
	if (r->has_target && target_copy(&r->target, &j->target) == PGW_OK)
		j->has_target = true;
	if (!j->in.id || !j->in.edge || !j->in.aor || !j->in.extension || !j->in.contact ||
	    (r->has_target && (!j->has_target || !j->in.app)) || (r->instance && !j->in.instance))
		j->rc = PGW_ENOMEM;
	edge_rjob_submit(edge, j);
}

/* ---- step 2: the PBX answers ---- */

static unsigned granted_expires(const edge_reg *r, const sip_t *sip)
{
	const sip_contact_t *m;

	for (m = sip->sip_contact; m; m = m->m_next) {
		if (m->m_url->url_user && strcmp(m->m_url->url_user, r->id) == 0) {
			if (m->m_expires)
				return (unsigned)strtoul(m->m_expires, NULL, 10);
			break;
		}
	}
	if (sip->sip_expires)
		return (unsigned)sip->sip_expires->ex_delta;
	return r->expires_req;
}

static int reg_response(void *magic, nta_outgoing_t *orq, sip_t const *sip)
{
	edge_reg *r = magic;
	int status = nta_outgoing_status(orq);
	msg_t *resp;

	if (status < 200)
		return 0;
	resp = nta_outgoing_getresponse(orq);
	nta_outgoing_destroy(orq);
	r->orq = NULL;
	if (status >= 300 || !resp) {
		/* 401/407 and every failure go back as the PBX sent them */
		if (resp && sip_object(resp)->sip_via && sip_object(resp)->sip_via->v_next) {
			edge_pop_via(resp, sip_object(resp));
			nta_incoming_mreply(r->irq, resp);
		} else {
			if (resp)
				msg_destroy(resp);
			nta_incoming_treply(r->irq, status >= 300 ? status : 500,
					    sip && sip->sip_status ? sip->sip_status->st_phrase : "Error",
					    TAG_END());
		}
		nta_incoming_destroy(r->irq);
		r->irq = NULL;
		count_registration(status == 401 || status == 407 ? "challenged" : "rejected");
		reg_free(r);
		return 0;
	}
	r->response = resp;
	if (!r->removing)
		r->expires_granted = granted_expires(r, sip_object(resp));
	if (r->expires_granted == 0)
		r->removing = true;
	store_binding(r->edge, r);
	return 0;
}

/* ---- step 1: the id, then the REGISTER goes on to the PBX ---- */

static void forward_register(sipedge *edge, edge_reg *r)
{
	msg_t *fwd, *req = nta_incoming_getrequest(r->irq);
	sip_t *sip;
	char contact[1100];

	fwd = req ? msg_dup(req) : NULL;
	if (req)
		msg_destroy(req); /* getrequest gave a reference */
	if (!fwd) {
		reg_reply(r, SIP_500_INTERNAL_SERVER_ERROR, "error");
		return;
	}
	sip = sip_object(fwd);
	if (!edge_decrement_max_forwards(fwd, sip)) {
		msg_destroy(fwd);
		reg_reply(r, SIP_483_TOO_MANY_HOPS, "rejected");
		return;
	}
	while (sip->sip_route)
		msg_header_remove(fwd, (msg_pub_t *)sip, (msg_header_t *)sip->sip_route);
	if (!edge_contact(edge, r, sip->sip_contact, contact, sizeof contact)) {
		msg_destroy(fwd);
		reg_reply(r, SIP_400_BAD_REQUEST, "rejected");
		return;
	}
	while (sip->sip_contact)
		msg_header_remove(fwd, (msg_pub_t *)sip, (msg_header_t *)sip->sip_contact);
	if (sip_add_make(fwd, sip, sip_contact_class, contact) < 0) {
		msg_destroy(fwd);
		reg_reply(r, SIP_500_INTERNAL_SERVER_ERROR, "error");
		return;
	}
	r->orq = nta_outgoing_mcreate(edge->agent, reg_response, r,
				      (url_string_t *)edge->backend, fwd, TAG_END());
	if (!r->orq) {
		msg_destroy(fwd);
		reg_reply(r, SIP_503_SERVICE_UNAVAILABLE, "error");
	}
}

static void find_work(edge_rjob *j)
{
	j->rc = registry_binding_find(j->reg, j->in.edge, j->in.aor, j->in.instance,
				      j->has_target ? &j->target : NULL, &j->found);
}

static void binding_found(sipedge *edge, edge_rjob *j)
{
	edge_reg *r = j->ctx;

	if (j->rc == PGW_OK && j->found && j->found->id) {
		snprintf(r->id, sizeof r->id, "%s", j->found->id);
		r->refresh = true;
	} else if (j->rc == PGW_OK || j->rc == PGW_ENOTFOUND) {
		if (edge->n_bindings >= EDGE_MAX_BINDINGS && !r->removing) {
			pgw_log(PGW_LOG_WARN, "sip: binding limit reached; REGISTER refused", "aor",
				r->aor, NULL);
			reg_reply(r, SIP_503_SERVICE_UNAVAILABLE, "error");
			return;
		}
		edge_new_binding_id(r->id);
	} else {
		reg_reply(r, SIP_503_SERVICE_UNAVAILABLE, "error");
		return;
	}
	forward_register(edge, r);
}

static void find_binding(sipedge *edge, edge_reg *r)
{
	edge_rjob *j = edge_rjob_new(edge, find_work, binding_found, r);

	if (!j) {
		reg_reply(r, SIP_500_INTERNAL_SERVER_ERROR, "error");
		return;
	}
	j->in.edge = strdup(edge->cfg->sip.public_host);
	j->in.aor = strdup(r->aor);
	j->in.instance = edge_strdup(r->instance);
	if (r->has_target && target_copy(&r->target, &j->target) == PGW_OK)
		j->has_target = true;
	if (!j->in.edge || !j->in.aor || (r->instance && !j->in.instance))
		j->rc = PGW_ENOMEM;
	edge_rjob_submit(edge, j);
}

/* The AOR: the To URI without parameters or headers. */
static char *aor_of(const sip_t *sip)
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

void edge_register_request(sipedge *edge, msg_t *msg, sip_t *sip)
{
	const sip_contact_t *m = sip->sip_contact;
	edge_reg *r;

	if (!m || m->m_next || !m->m_url->url_host || m->m_url->url_type == url_any ||
	    !sip->sip_to->a_url->url_user || !sip->sip_to->a_url->url_user[0]) {
		/* one Contact per REGISTER; no wildcard, no fetch */
		nta_msg_treply(edge->agent, msg, 400, "One Contact Per REGISTER Through Pushgw",
			       TAG_END());
		count_registration("rejected");
		return;
	}
	if (edge->n_pending_registers >= EDGE_MAX_PENDING_REGISTERS) {
		nta_msg_treply(edge->agent, msg, SIP_503_SERVICE_UNAVAILABLE, TAG_END());
		count_registration("error");
		return;
	}
	r = calloc(1, sizeof *r);
	if (!r) {
		nta_msg_treply(edge->agent, msg, SIP_500_INTERNAL_SERVER_ERROR, TAG_END());
		return;
	}
	su_home_init(r->home);
	r->edge = edge;
	r->received_ms = pgw_now_ms();
	r->next = edge->registers;
	if (r->next)
		r->next->prev = r;
	edge->registers = r;
	r->linked = true;
	edge->n_pending_registers++;
	r->aor = aor_of(sip);
	r->extension = strdup(sip->sip_to->a_url->url_user);
	r->contact = contact_value(r->home, m);
	r->phone_contact = sip_contact_dup(r->home, m);
	r->instance = contact_instance(m);
	r->expires_req = requested_expires(sip);
	r->removing = r->expires_req == 0;
	r->irq = nta_incoming_create(edge->agent, NULL, msg, sip, TAG_END());
	if (!r->irq) {
		msg_destroy(msg);
		count_registration("error");
		reg_free(r);
		return;
	}
	if (!r->aor || !r->extension || !r->contact || !r->phone_contact ||
	    !registry_valid_extension(r->extension)) {
		reg_reply(r, SIP_400_BAD_REQUEST, "rejected");
		return;
	}
	r->tp = nta_incoming_transport(edge->agent, r->irq, NULL);
	if (!edge_source_route(msg, r->tp, r->route, sizeof r->route))
		r->route[0] = '\0';
	if (target_from_contact(r->contact, edge->cfg, NULL, &r->target, &r->no_push) == PGW_OK)
		r->has_target = true;
	find_binding(edge, r);
}

void edge_register_teardown(sipedge *edge)
{
	while (edge->registers)
		reg_free(edge->registers);
}
