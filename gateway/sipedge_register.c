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

/* ---- step 3: the binding is stored; the 2xx goes back ---- */

/* The PBX's 2xx with the phone's own Contact (and the granted expiry). */
static void relay_ok(edge_reg *r)
{
	msg_t *resp = r->response;
	sip_t *sip = sip_object(resp);
	sip_contact_t *m;

	r->response = NULL;
	edge_pop_via(resp, sip);
	while (sip->sip_contact)
		msg_header_remove(resp, (msg_pub_t *)sip, (msg_header_t *)sip->sip_contact);
	if (!r->removing) {
		m = sipmsg_phone_contact(msg_home(resp), r->phone_contact, r->expires_granted);
		if (m)
			msg_header_insert(resp, (msg_pub_t *)sip, (msg_header_t *)m);
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
			registry_binding_clear(&copy);
			return NULL;
		}
		b->rec = copy;
		edge_binding_add(edge, b);
	} else {
		registry_binding_clear(&b->rec);
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
		r->expires_granted = sipmsg_granted_expires(sip_object(resp), r->id, r->expires_req);
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
	if (!sipmsg_decrement_max_forwards(fwd, sip)) {
		msg_destroy(fwd);
		reg_reply(r, SIP_483_TOO_MANY_HOPS, "rejected");
		return;
	}
	while (sip->sip_route)
		msg_header_remove(fwd, (msg_pub_t *)sip, (msg_header_t *)sip->sip_route);
	if (!sipmsg_rewrite_contact(sip->sip_contact, r->id, edge->cfg->sip.public_host,
				    edge_port_for(edge, edge->backend_transport),
				    edge->backend_transport, contact, sizeof contact)) {
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

/* What binding_stored() would write passes the registry's rules (any id
 * of ours, any expiry): checked before the REGISTER goes on. */
static bool register_storable(sipedge *edge, const edge_reg *r)
{
	registry_binding b = {
		.id = EDGE_ID_PREFIX "000000000000000000000000", .edge = edge->cfg->sip.public_host,
		.aor = r->aor, .extension = r->extension, .contact = r->contact,
		.instance = r->instance, .app = r->has_target ? (char *)r->target.app->name : NULL,
		.expires_at_ms = 1, .updated_at_ms = 1,
	};

	return registry_binding_storable(&b, r->has_target ? &r->target : NULL);
}

void edge_register_request(sipedge *edge, msg_t *msg, sip_t *sip)
{
	const sip_contact_t *m = sip->sip_contact;
	const char *why;
	edge_reg *r;

	if (sipmsg_check_register(sip, &why) != 0) {
		/* one Contact per REGISTER; no wildcard, no fetch; a valid
		 * extension and expiry */
		nta_msg_treply(edge->agent, msg, 400, why, TAG_END());
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
	r->aor = sipmsg_aor(sip);
	r->extension = strdup(sip->sip_to->a_url->url_user);
	r->contact = sipmsg_contact_value(r->home, m);
	r->phone_contact = sip_contact_dup(r->home, m);
	r->instance = sipmsg_contact_instance(m);
	r->expires_req = (unsigned)sipmsg_requested_expires(sip);
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
	if (!register_storable(edge, r)) {
		/* the PBX must not keep a binding pushgw cannot store */
		reg_reply(r, 400, "Contact Not Storable", "rejected");
		return;
	}
	find_binding(edge, r);
}

void edge_register_teardown(sipedge *edge)
{
	while (edge->registers)
		reg_free(edge->registers);
}
