/* The SIP edge's other requests (docs/sip-edge.md "Dialogs" and "Not a
 * relay"): in-dialog requests routed through pushgw by its Record-Route
 * (to the phone on its current flow, or on to the PBX), and every request
 * a phone starts, which goes only to the backend. Stateful (NTA
 * transactions) except ACK to 2xx, which is forwarded as it comes.
 * Threading: SIP thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pushgw/log.h"
#include "sipedge_int.h"

typedef struct edge_proxy {
	struct edge_proxy *next;
	sipedge *edge;
	nta_incoming_t *irq;
	nta_outgoing_t *orq;
} edge_proxy;

static void proxy_free(edge_proxy *px)
{
	edge_proxy **p;

	for (p = &px->edge->proxies; *p; p = &(*p)->next) {
		if (*p == px) {
			*p = px->next;
			px->edge->n_proxies--;
			break;
		}
	}
	if (px->orq)
		nta_outgoing_destroy(px->orq);
	if (px->irq) {
		nta_incoming_bind(px->irq, NULL, NULL);
		nta_incoming_destroy(px->irq);
	}
	free(px);
}

/* ---- Route and Record-Route ---- */

static bool route_is_ours(sipedge *edge, const sip_route_t *r)
{
	return sipmsg_binding_id(r->r_url, edge->cfg->sip.public_host) != NULL;
}

bool edge_pop_own_routes(sipedge *edge, msg_t *msg, sip_t *sip, char *id, size_t n)
{
	bool any = false;

	id[0] = '\0';
	while (sip->sip_route && route_is_ours(edge, sip->sip_route)) {
		if (!id[0])
			snprintf(id, n, "%s", sip->sip_route->r_url->url_user);
		msg_header_remove(msg, (msg_pub_t *)sip, (msg_header_t *)sip->sip_route);
		any = true;
	}
	return any;
}

static void add_rr(sipedge *edge, msg_t *msg, sip_t *sip, const char *id, const char *transport)
{
	char buf[300];
	sip_record_route_t *rr;

	snprintf(buf, sizeof buf, "<sip:%s@%s:%s;transport=%s;lr>", id, edge->cfg->sip.public_host,
		 edge_port_for(edge, transport), transport);
	rr = sip_record_route_make(msg_home(msg), buf);
	if (rr)
		msg_header_insert(msg, (msg_pub_t *)sip, (msg_header_t *)rr);
}

void edge_add_record_route(sipedge *edge, msg_t *msg, sip_t *sip, const char *id,
			   const char *from_transport, const char *to_transport)
{
	/* the entry facing the sender goes in first, the one facing the next
	 * hop on top of it: each side then reaches pushgw on its own transport */
	add_rr(edge, msg, sip, id, from_transport);
	if (strcasecmp(from_transport, to_transport) != 0 ||
	    strcmp(edge_port_for(edge, from_transport), edge_port_for(edge, to_transport)) != 0)
		add_rr(edge, msg, sip, id, to_transport);
}

/* The binding whose current flow msg arrived on, or NULL. */
static edge_binding *binding_by_flow(sipedge *edge, msg_t *msg, tport_t *tp)
{
	char route[200];
	edge_binding *b;

	if (!edge_source_route(msg, tp, route, sizeof route))
		return NULL;
	for (b = edge->bindings; b; b = b->next)
		if (b->flow_open && strcmp(b->route, route) == 0)
			return b;
	return NULL;
}

/* ---- responses ---- */

static int proxy_response(void *magic, nta_outgoing_t *orq, sip_t const *sip)
{
	edge_proxy *px = magic;
	int status = nta_outgoing_status(orq);
	const char *why;
	msg_t *resp;

	if (status <= 100 && nta_outgoing_method(orq) == sip_method_invite)
		return 0; /* we sent our own 100 */
	resp = nta_outgoing_getresponse(orq);
	if (resp && sipmsg_check_limits(resp, sip_object(resp), &why) != 0) {
		/* out of bounds (docs/sip-edge.md "Limits"): not relayed */
		msg_destroy(resp);
		resp = NULL;
		if (status < 200)
			return 0;
		status = 502;
		sip = NULL;
	}
	if (resp && sip_object(resp)->sip_via && sip_object(resp)->sip_via->v_next) {
		edge_pop_via(resp, sip_object(resp));
		nta_incoming_mreply(px->irq, resp);
	} else {
		if (resp)
			msg_destroy(resp);
		nta_incoming_treply(px->irq, status >= 200 ? status : 500,
				    sip && sip->sip_status ? sip->sip_status->st_phrase : "Error",
				    TAG_END());
	}
	if (status >= 200)
		proxy_free(px);
	return 0;
}

static int proxy_cancel(void *magic, nta_incoming_t *irq, sip_t const *sip)
{
	edge_proxy *px = magic;

	if (sip && sip->sip_request && sip->sip_request->rq_method == sip_method_cancel && px->orq)
		nta_outgoing_tcancel(px->orq, NULL, NULL, TAG_END());
	return 0;
}

/* A response no transaction of ours matches (a 2xx retransmission to an
 * INVITE, typically): forwarded along its Via, ours removed. From a phone
 * it may only go to the backend: anyone can send a response, and its next
 * Via would otherwise send pushgw's copy anywhere (docs/sip-edge.md "Not
 * a relay"). */
void edge_proxy_response(sipedge *edge, msg_t *msg, sip_t *sip, bool from_backend)
{
	sip_via_t *v = sip->sip_via;
	bool ours = false;
	int k;

	for (k = 0; v && v->v_host && k < 3; k++)
		ours |= edge->listen_host[k][0] && strcasecmp(v->v_host, edge->listen_host[k]) == 0 &&
			v->v_port && strcmp(v->v_port, edge->listen_port[k]) == 0;
	/* only a 2xx to an INVITE outlives its transaction (RFC 3261 16.7) */
	if (!ours || !v->v_next || sip->sip_status->st_status < 200 ||
	    sip->sip_status->st_status >= 300 || !sip->sip_cseq ||
	    sip->sip_cseq->cs_method != sip_method_invite ||
	    (!from_backend && !edge_names_backend(edge, v->v_next->v_host, v->v_next->v_port))) {
		msg_destroy(msg);
		return;
	}
	edge_pop_via(msg, sip);
	nta_msg_tsend(edge->agent, msg, NULL, TAG_END());
}

/* ---- requests ---- */

/* Where a request goes; route NULL: by its Route or Request-URI. */
typedef struct hop {
	const char *route;
	tport_t *tp;
	bool to_phone;
	edge_binding *b;
} hop;

/* Returns the status to answer with when the request goes nowhere, 0 when
 * h says where. */
static int choose_hop(sipedge *edge, msg_t *msg, sip_t *sip, bool from_backend, hop *h)
{
	char id[64];
	edge_binding *b;
	bool routed = edge_pop_own_routes(edge, msg, sip, id, sizeof id);
	const url_t *ru = sip->sip_request->rq_url;

	memset(h, 0, sizeof *h);
	if (!from_backend) {
		/* a phone's request: only ever to the backend */
		h->route = edge->cfg->sip.backend;
		return 0;
	}
	if (!routed && sipmsg_binding_id(ru, edge->cfg->sip.public_host))
		snprintf(id, sizeof id, "%s", ru->url_user);
	else if (!routed)
		return 403; /* the PBX asks us to relay elsewhere: no */
	if (id[0] && (b = edge_binding_find(edge, id))) {
		if (!edge_binding_flow_usable(b))
			return 480;
		h->route = b->route;
		h->tp = b->tp && tport_is_reliable(b->tp) ? b->tp : NULL;
		h->to_phone = true;
		h->b = b;
		if (!routed) {
			/* out of dialog to a binding: the phone's own Contact URI */
			sip_contact_t *m = sip_contact_make(msg_home(msg), b->rec.contact);
			sip_request_t *rq = m ? sip_request_create(msg_home(msg), sip->sip_request->rq_method,
								   sip->sip_request->rq_method_name,
								   (url_string_t *)m->m_url, NULL)
					      : NULL;
			if (!rq || msg_header_replace(msg, (msg_pub_t *)sip,
						      (msg_header_t *)sip->sip_request,
						      (msg_header_t *)rq) < 0)
				return 500;
		}
		return 0;
	}
	if (id[0] && !sip->sip_route)
		return 404; /* the binding is gone */
	/* on by the remaining Route, or the Request-URI: never back to the
	 * backend it came from (a loop) */
	{
		const url_t *next = sip->sip_route ? sip->sip_route->r_url : ru;
		if (edge_names_backend(edge, next->url_host, next->url_port))
			return 482;
	}
	return 0;
}

static void forward_ack(sipedge *edge, msg_t *msg, sip_t *sip, bool from_backend)
{
	hop h;

	if (choose_hop(edge, msg, sip, from_backend, &h) != 0 || !sipmsg_decrement_max_forwards(msg, sip)) {
		msg_destroy(msg);
		return;
	}
	nta_msg_tsend(edge->agent, msg, (url_string_t const *)h.route,
		      TAG_IF(h.tp, NTATAG_TPORT(h.tp)), TAG_END());
}

void edge_proxy_request(sipedge *edge, msg_t *msg, sip_t *sip, bool from_backend)
{
	sip_method_t method = sip->sip_request->rq_method;
	edge_proxy *px;
	msg_t *fwd;
	sip_t *fsip;
	hop h;
	int status;
	tport_t *tp;
	char transport[16], from_transport[16];

	if (method == sip_method_ack) {
		forward_ack(edge, msg, sip, from_backend);
		return;
	}
	if (method == sip_method_cancel) {
		nta_msg_treply(edge->agent, msg, SIP_481_NO_TRANSACTION, TAG_END());
		return;
	}
	px = edge->n_proxies < EDGE_MAX_PROXIED ? calloc(1, sizeof *px) : NULL;
	if (!px) {
		nta_msg_treply(edge->agent, msg, SIP_503_SERVICE_UNAVAILABLE, TAG_END());
		return;
	}
	px->edge = edge;
	px->next = edge->proxies;
	edge->proxies = px;
	edge->n_proxies++;
	px->irq = nta_incoming_create(edge->agent, NULL, msg, sip, TAG_END());
	if (!px->irq) {
		msg_destroy(msg);
		proxy_free(px);
		return;
	}
	tp = nta_incoming_transport(edge->agent, px->irq, NULL);
	snprintf(from_transport, sizeof from_transport, "%s", tp ? tport_name(tp)->tpn_proto : "udp");
	fwd = msg_dup(msg);
	fsip = fwd ? sip_object(fwd) : NULL;
	status = fwd ? choose_hop(edge, fwd, fsip, from_backend, &h) : 500;
	if (status == 0 && !sipmsg_decrement_max_forwards(fwd, fsip))
		status = 483;
	if (status != 0) {
		if (fwd)
			msg_destroy(fwd);
		if (tp)
			tport_unref(tp);
		nta_incoming_treply(px->irq, status, NULL, TAG_END());
		proxy_free(px);
		return;
	}
	if (method == sip_method_invite) {
		nta_incoming_bind(px->irq, proxy_cancel, px);
		nta_incoming_treply(px->irq, SIP_100_TRYING, TAG_END());
	}
	if (method == sip_method_invite && !fsip->sip_to->a_tag) {
		/* a dialog starts: stay on its path */
		edge_binding *b = h.to_phone ? h.b : binding_by_flow(edge, msg, tp);
		const char *to = h.to_phone ? strstr(h.route, "transport=") : NULL;
		snprintf(transport, sizeof transport, "%s",
			 h.to_phone ? (to ? to + 10 : "udp") : edge->backend_transport);
		edge_add_record_route(edge, fwd, fsip, b ? b->rec.id : EDGE_ID_PREFIX "0",
				      from_transport, transport);
	}
	if (tp)
		tport_unref(tp);
	px->orq = nta_outgoing_mcreate(edge->agent, proxy_response, px, (url_string_t const *)h.route,
				       fwd, TAG_IF(h.tp, NTATAG_TPORT(h.tp)), TAG_END());
	if (!px->orq) {
		msg_destroy(fwd);
		nta_incoming_treply(px->irq, SIP_503_SERVICE_UNAVAILABLE, TAG_END());
		proxy_free(px);
	}
}

void edge_proxy_teardown(sipedge *edge)
{
	while (edge->proxies)
		proxy_free(edge->proxies);
}
