/* The SIP edge's calls (docs/sip-edge.md "INVITE to a binding"): an INVITE
 * from the PBX to a binding gets 100 at once, a wake push, and goes to the
 * phone on its flow now or when it registers again; responses go back; no
 * flow within ring_timeout_s is a 480 and a missed-call push; the PBX's
 * CANCEL is a 487 and a cancel push. Threading: SIP thread; push results
 * arrive from the HTTP API's threads through the edge's mailbox. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pushgw/jsonw.h"
#include "pushgw/log.h"
#include "pushgw/metrics.h"
#include "pushgw/util.h"
#include "sipedge_int.h"

static const char *provider_name(pgw_provider p)
{
	return p == PGW_PROVIDER_APNS ? "apns" : p == PGW_PROVIDER_FCM ? "fcm" : "none";
}

static edge_call *call_by_serial(sipedge *edge, uint64_t serial)
{
	edge_call *c;

	for (c = edge->calls; c; c = c->next)
		if (c->serial == serial)
			return c;
	return NULL;
}

/* ---- pushes: results come back on another thread ---- */

typedef struct push_ctx {
	edge_mailbox *mb;
	uint64_t serial;
	bool cancel;
	char status[24], reason[96], provider[8];
	char call_id[128];
} push_ctx;

static void push_ctx_free(void *arg)
{
	push_ctx *p = arg;

	edge_mailbox_unref(p->mb);
	free(p);
}

static void push_result_on_sip_thread(sipedge *edge, void *arg)
{
	push_ctx *p = arg;

	/* the wake log line of the push path has the details; this ties it to the call */
	if (strcmp(p->status, "sent") != 0 && strcmp(p->status, "skipped") != 0)
		pgw_log(PGW_LOG_WARN, p->cancel ? "sip: cancel push not sent" : "sip: wake push not sent",
			"call_id", p->call_id, "status", p->status, "reason", p->reason,
			"provider", p->provider, "still_ringing",
			call_by_serial(edge, p->serial) ? "yes" : "no", NULL);
	push_ctx_free(p);
}

/* Any thread: must not block. */
static void push_done(void *arg, const http_api_push_outcome *o)
{
	push_ctx *p = arg;

	snprintf(p->status, sizeof p->status, "%s", o->status ? o->status : "");
	snprintf(p->reason, sizeof p->reason, "%s", o->reason ? o->reason : "");
	snprintf(p->provider, sizeof p->provider, "%s", o->provider ? o->provider : "");
	edge_mailbox_post(p->mb, push_result_on_sip_thread, push_ctx_free, p);
}

static bool send_push(sipedge *edge, edge_call *c, pgw_push_kind kind, const char *reason)
{
	push_ctx *p = calloc(1, sizeof *p);
	http_api_push req = {
		.kind = kind, .contact = c->contact, .app = c->app, .call_id = c->call_id,
		.from = c->from, .from_name = c->from_name, .to = c->to, .reason = reason,
		.ttl_s = edge->cfg->sip.ring_timeout_s,
	};
	char why[256];
	pgw_err rc;

	if (!p)
		return false;
	p->mb = edge->mb;
	p->serial = c->serial;
	p->cancel = kind == PGW_PUSH_CANCEL;
	snprintf(p->call_id, sizeof p->call_id, "%s", c->call_id);
	edge_mailbox_ref(edge->mb);
	rc = http_api_push_call(edge->api, &req, push_done, p, why, sizeof why);
	if (rc != PGW_OK) {
		pgw_log(PGW_LOG_WARN, "sip: push not started", "call_id", c->call_id, "error", why, NULL);
		push_ctx_free(p);
		return false;
	}
	return true;
}

/* ---- the end of a call ---- */

static void count_outcome(const char *outcome)
{
	char labels[64];

	snprintf(labels, sizeof labels, "outcome=\"%s\"", outcome);
	metrics_count("pushgw_sip_invites_total", labels, 1);
}

static void log_call(const edge_call *c, const char *outcome, int status)
{
	jsonw w;
	int64_t now = pgw_now_ms();

	if (!pgw_log_stream_begin(&w, PGW_LOG_INFO, "sip call"))
		return;
	jsonw_kv_str(&w, "call_id", c->call_id);
	jsonw_kv_str(&w, "binding", c->binding_id);
	jsonw_kv_str(&w, "outcome", outcome);
	jsonw_kv_int(&w, "status", status);
	jsonw_kv_bool(&w, "pushed", c->pushed);
	jsonw_kv_str(&w, "provider", provider_name(c->provider));
	jsonw_kv_bool(&w, "woke", c->woke);
	if (c->woke)
		jsonw_kv_int(&w, "wake_ms", c->woke_ms - c->started_ms);
	jsonw_kv_int(&w, "duration_ms", now - c->started_ms);
	pgw_log_stream_end(&w, PGW_LOG_INFO);
}

static void call_free(sipedge *edge, edge_call *c)
{
	edge_call **p;

	for (p = &edge->calls; *p; p = &(*p)->next) {
		if (*p == c) {
			*p = c->next;
			edge->n_calls--;
			break;
		}
	}
	if (c->ring_timer)
		su_timer_destroy(c->ring_timer);
	if (c->orq)
		nta_outgoing_destroy(c->orq);
	if (c->irq) {
		nta_incoming_bind(c->irq, NULL, NULL);
		nta_incoming_destroy(c->irq);
	}
	if (c->invite)
		msg_destroy(c->invite);
	free(c->call_id);
	free(c->from);
	free(c->from_name);
	free(c->to);
	free(c->contact);
	free(c->app);
	free(c);
}

/* The call is over for the PBX: count it, log it, send the cancel push
 * (cancel_reason NULL: none), forget it. */
static void call_end(sipedge *edge, edge_call *c, const char *outcome, int status,
		     const char *cancel_reason)
{
	edge_binding *b;

	c->state = CALL_DONE;
	count_outcome(outcome);
	log_call(c, outcome, status);
	if (cancel_reason && c->pushed)
		send_push(edge, c, PGW_PUSH_CANCEL, cancel_reason);
	if (strcmp(outcome, "not_woken") == 0 && (b = edge_binding_find(edge, c->binding_id)))
		b->missed_at_ms = pgw_now_ms();
	call_free(edge, c);
	edge_update_gauges(edge);
}

/* ---- responses from the phone ---- */

static void relay_response(edge_call *c, nta_outgoing_t *orq)
{
	msg_t *resp = nta_outgoing_getresponse(orq);
	const char *why;

	if (!resp)
		return;
	if (sipmsg_check_limits(resp, sip_object(resp), &why) != 0) {
		/* out of bounds (docs/sip-edge.md "Limits"): not relayed; a
		 * final answer becomes ours */
		msg_destroy(resp);
		if (nta_outgoing_status(orq) >= 200)
			nta_incoming_treply(c->irq, SIP_502_BAD_GATEWAY, TAG_END());
		return;
	}
	edge_pop_via(resp, sip_object(resp));
	nta_incoming_mreply(c->irq, resp);
}

static int call_response(void *magic, nta_outgoing_t *orq, sip_t const *sip)
{
	edge_call *c = magic;
	sipedge *edge = c->edge;
	int status = nta_outgoing_status(orq);

	if (status <= 100)
		return 0;
	if (status < 200) {
		c->phone_answered_1xx = true;
		relay_response(c, orq);
		return 0;
	}
	if (status >= 300 && !c->phone_answered_1xx && (status == 408 || status == 503)) {
		/* the flow is gone (no answer, or a transport error): keep the
		 * INVITE held until the phone registers again */
		edge_binding *b = edge_binding_find(edge, c->binding_id);
		if (b)
			b->flow_open = false;
		nta_outgoing_destroy(orq);
		c->orq = NULL;
		c->state = CALL_WAITING;
		return 0;
	}
	relay_response(c, orq);
	nta_outgoing_destroy(orq);
	c->orq = NULL;
	if (status < 300)
		call_end(edge, c, "answered", status, NULL);
	else if (status == 408 || status == 480 || status == 487)
		call_end(edge, c, "no_answer", status, "caller_cancelled");
	else
		call_end(edge, c, "rejected", status, status == 603 ? "declined" : NULL);
	return 0;
}

/* ---- sending the INVITE to the phone ---- */

static void send_invite(sipedge *edge, edge_call *c, edge_binding *b)
{
	msg_t *fwd = msg_dup(c->invite);
	sip_t *sip;
	sip_contact_t *m;
	sip_request_t *rq;
	char transport[16];

	if (!fwd)
		return;
	sip = sip_object(fwd);
	m = sip_contact_make(msg_home(fwd), b->rec.contact);
	if (!m) {
		pgw_log(PGW_LOG_ERROR, "sip: the stored Contact does not parse", "binding", b->rec.id, "contact", b->rec.contact, NULL);
		msg_destroy(fwd);
		return;
	}
	/* the phone is called on its own Contact URI, on its current flow */
	rq = sip_request_create(msg_home(fwd), sip->sip_request->rq_method,
				sip->sip_request->rq_method_name, (url_string_t *)m->m_url, NULL);
	if (!rq || msg_header_replace(fwd, (msg_pub_t *)sip, (msg_header_t *)sip->sip_request,
				      (msg_header_t *)rq) < 0 ||
	    !sipmsg_decrement_max_forwards(fwd, sip)) {
		pgw_log(PGW_LOG_ERROR, "sip: cannot build the INVITE for the phone", "binding", b->rec.id, NULL);
		msg_destroy(fwd);
		return;
	}
	edge_add_record_route(edge, fwd, sip, b->rec.id, edge->backend_transport,
			      sipmsg_route_transport(b->route, transport, sizeof transport));
	c->orq = nta_outgoing_mcreate(edge->agent, call_response, c, (url_string_t *)b->route, fwd,
				      TAG_IF(b->tp && tport_is_reliable(b->tp), NTATAG_TPORT(b->tp)),
				      TAG_END());
	if (!c->orq) {
		pgw_log(PGW_LOG_WARN, "sip: cannot send the INVITE on the phone's flow", "binding",
			b->rec.id, "route", b->route, NULL);
		msg_destroy(fwd);
		b->flow_open = false;
		return;
	}
	c->state = CALL_SENT;
}

/* ---- timers and cancels ---- */

/* An INVITE to the phone the call no longer needs: cancelled, and left to
 * NTA until its final response (which NTA ACKs), then destroyed. */
static int orphan_response(void *magic, nta_outgoing_t *orq, sip_t const *sip)
{
	if (nta_outgoing_status(orq) >= 200)
		nta_outgoing_destroy(orq);
	return 0;
}

static void cancel_phone_invite(edge_call *c)
{
	if (!c->orq)
		return;
	if (nta_outgoing_status(c->orq) < 200) {
		/* destroyed by orphan_response on its final answer (or timeout) */
		nta_outgoing_bind(c->orq, orphan_response, NULL);
		nta_outgoing_tcancel(c->orq, NULL, NULL, TAG_END());
	} else {
		nta_outgoing_destroy(c->orq);
	}
	c->orq = NULL;
}

static void ring_timeout(su_root_magic_t *magic, su_timer_t *t, void *arg)
{
	edge_call *c = arg;
	sipedge *edge = c->edge;

	if (c->state == CALL_DONE || c->phone_answered_1xx)
		return; /* the phone rings: the PBX decides how long */
	cancel_phone_invite(c);
	nta_incoming_treply(c->irq, SIP_480_TEMPORARILY_UNAVAILABLE, TAG_END());
	call_end(edge, c, c->woke || !c->pushed ? "no_answer" : "not_woken", 480, "caller_cancelled");
}

/* NTA matched a CANCEL (it answers the CANCEL itself) or an ACK to our
 * final response. */
static int call_cancel(void *magic, nta_incoming_t *irq, sip_t const *sip)
{
	edge_call *c = magic;

	if (!sip || !sip->sip_request || sip->sip_request->rq_method != sip_method_cancel ||
	    c->state == CALL_DONE)
		return 0;
	cancel_phone_invite(c);
	nta_incoming_treply(c->irq, SIP_487_REQUEST_TERMINATED, TAG_END());
	call_end(c->edge, c, "cancelled", 487, sipmsg_cancel_reason(sip));
	return 0;
}

/* ---- entry points ---- */

void edge_invite_to_binding(sipedge *edge, msg_t *msg, sip_t *sip, edge_binding *b)
{
	edge_call *c;
	sipmsg_call_facts facts;

	if (edge->n_calls >= EDGE_MAX_CALLS) {
		nta_msg_treply(edge->agent, msg, SIP_503_SERVICE_UNAVAILABLE, TAG_END());
		count_outcome("rejected");
		return;
	}
	c = calloc(1, sizeof *c);
	if (!c) {
		nta_msg_treply(edge->agent, msg, SIP_500_INTERNAL_SERVER_ERROR, TAG_END());
		return;
	}
	c->edge = edge;
	c->serial = ++edge->next_serial;
	c->started_ms = pgw_now_ms();
	snprintf(c->binding_id, sizeof c->binding_id, "%s", b->rec.id);
	if (sipmsg_call_facts_get(sip, b->rec.extension, &facts)) {
		/* the call owns the strings now */
		c->call_id = facts.call_id;
		c->from = facts.from;
		c->from_name = facts.from_name;
		c->to = facts.to;
	}
	c->contact = edge_strdup(b->rec.contact);
	c->app = edge_strdup(edge->cfg->sip.app ? edge->cfg->sip.app : b->rec.app);
	c->provider = b->has_push ? b->provider : 0;
	c->irq = nta_incoming_create(edge->agent, NULL, msg, sip, TAG_END());
	c->next = edge->calls;
	edge->calls = c;
	edge->n_calls++;
	if (!c->irq) {
		msg_destroy(msg);
		call_free(edge, c);
		return;
	}
	nta_incoming_bind(c->irq, call_cancel, c);
	nta_incoming_treply(c->irq, SIP_100_TRYING, TAG_END());
	c->invite = nta_incoming_getrequest(c->irq);
	if (!c->call_id || !c->contact || !c->invite) {
		nta_incoming_treply(c->irq, SIP_500_INTERNAL_SERVER_ERROR, TAG_END());
		call_free(edge, c);
		return;
	}
	if (b->has_push)
		c->pushed = send_push(edge, c, PGW_PUSH_CALL, NULL);
	if (edge_binding_flow_usable(b))
		send_invite(edge, c, b);
	c->ring_timer = su_timer_create(su_root_task(edge->root),
					(su_duration_t)edge->cfg->sip.ring_timeout_s * 1000);
	if (c->ring_timer)
		su_timer_set(c->ring_timer, ring_timeout, c);
	edge_update_gauges(edge);
}

void edge_binding_reachable(sipedge *edge, edge_binding *b)
{
	edge_call *c, *next;
	int64_t now = b->registered_ms ? b->registered_ms : pgw_now_ms();
	char labels[48];

	if (b->missed_at_ms && now - b->missed_at_ms < EDGE_WOKE_LATE_WINDOW_MS) {
		count_outcome("woke_late");
		pgw_log(PGW_LOG_INFO, "sip: phone registered after its call had ended", "binding",
			b->rec.id, NULL);
	}
	b->missed_at_ms = 0;
	for (c = edge->calls; c; c = next) {
		next = c->next;
		if (strcmp(c->binding_id, b->rec.id) != 0 || c->state == CALL_DONE ||
		    c->phone_answered_1xx)
			continue;
		if (!c->woke) {
			c->woke = true;
			c->woke_ms = now;
			if (c->pushed) {
				snprintf(labels, sizeof labels, "provider=\"%s\"", provider_name(c->provider));
				metrics_observe("pushgw_wake_to_register_seconds", labels,
						(double)(now - c->started_ms) / 1000.0);
			}
		}
		if (c->orq) {
			/* sent on the old flow and never answered there */
			nta_outgoing_destroy(c->orq);
			c->orq = NULL;
		}
		send_invite(edge, c, b);
	}
}

void edge_calls_fail_all(sipedge *edge, int status, const char *phrase)
{
	while (edge->calls) {
		edge_call *c = edge->calls;
		cancel_phone_invite(c);
		nta_incoming_treply(c->irq, status, phrase, TAG_END());
		call_end(edge, c, "no_answer", status, NULL);
	}
}

void edge_calls_teardown(sipedge *edge)
{
	while (edge->calls)
		call_free(edge, edge->calls);
	edge_update_gauges(edge);
}
