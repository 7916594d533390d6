/* What the SIP edge reads from a parsed SIP message (docs/sip-edge.md):
 * the Contact it registers for a phone and the phone's own Contact it keeps,
 * +sip.instance and the expiry, the binding id a Request-URI or Route
 * names, the call facts for the wake push, the RFC 3326 cancel reason, and
 * the bounds every message must keep. Pure functions on sofia-sip's parsed
 * messages: no network, no edge state, so they are unit-tested and fuzzed
 * (tests/unit/test_sipedge.c, tests/fuzz/fuzz_sip.c). Thread-safe as long
 * as each message (and su_home) is used by one thread at a time. */
#ifndef PUSHGW_SIPMSG_H
#define PUSHGW_SIPMSG_H

#include <stdbool.h>
#include <stddef.h>

#include <sofia-sip/msg.h>
#include <sofia-sip/sip.h>
#include <sofia-sip/su_alloc.h>
#include <sofia-sip/url.h>

/* Bounds on every message (docs/sip-edge.md "Limits"). */
#define SIPMSG_MAX_BYTES 65536  /* NTA's maxsize: larger messages are refused (413) or dropped */
#define SIPMSG_MAX_HEADERS 256  /* header fields (each Via, Route… counts once per value) */
#define SIPMSG_MAX_VIAS 32      /* a longer Via chain is a loop, or an attack */
#define SIPMSG_MAX_ROUTES 32    /* Route and Record-Route entries, each */

/* Binding ids start with this (a random 96-bit id in hex follows). */
#define SIPMSG_ID_PREFIX "pgw-"

/* Everything a delta-seconds value may be (RFC 3261 expires): at most
 * 2^32-1; larger values are taken as this. */
#define SIPMSG_MAX_DELTA 4294967295u

/* ---- limits ---- */

/* The number of header fields in msg (sofia's parsed list: each Via or
 * Route value is one, as are unknown and unparsable headers). */
size_t sipmsg_header_count(msg_t *msg);

/* 0 when msg keeps the bounds above, else the status to answer a request
 * with (413 too large, 400 too many headers / Vias / Routes) and *why a
 * static phrase for it. A response that breaks them is dropped. */
int sipmsg_check_limits(msg_t *msg, const sip_t *sip, const char **why);

/* 0 when a request carries what every request must (From, To, Call-ID,
 * CSeq and a Via, CSeq's method matching the request line's, a sip:,
 * sips: or tel: Request-URI that sofia encodes as it came), else 400 (416
 * for another scheme) with *why a static phrase for it. */
int sipmsg_check_request(const sip_t *sip, const char **why);

/* ---- numbers ---- */

/* Parse a delta-seconds value (digits only, at least one; a value beyond
 * SIPMSG_MAX_DELTA is SIPMSG_MAX_DELTA). False when s is not one. */
bool sipmsg_delta_seconds(const char *s, unsigned *out);

/* The expiry a REGISTER asks for: the Contact's expires parameter, else the
 * Expires header, else 3600. -1 when the Contact's expires parameter is
 * not delta-seconds (the REGISTER gets 400). */
long sipmsg_requested_expires(const sip_t *sip);

/* The expiry the PBX's 2xx grants the Contact whose user part is id: that
 * Contact's expires parameter, else the Expires header, else requested. */
unsigned sipmsg_granted_expires(const sip_t *resp, const char *id, unsigned requested);

/* ---- REGISTER ---- */

/* 0 when a REGISTER may go through the edge: one sip: or sips: Contact
 * with a host (no wildcard, no fetch), a To URI with a user part that is a valid extension
 * and a valid expiry; else 400 with *why a static phrase for it. */
int sipmsg_check_register(const sip_t *sip, const char **why);

/* The AOR: the To URI without port, parameters or headers (malloc'd), or
 * NULL when it is too long (over 511 bytes) or memory runs out. */
char *sipmsg_aor(const sip_t *sip);

/* The phone's Contact as text with every URI and header parameter it sent
 * (malloc'd; sofia's own encoding of a parsed Contact can drop one). home
 * is scratch. NULL when it would not parse back to the same URI (the edge
 * calls the phone on it later: such a REGISTER gets 400) or out of memory. */
char *sipmsg_contact_value(su_home_t *home, const sip_contact_t *m);

/* +sip.instance without its quotes (malloc'd), or NULL when absent/empty. */
char *sipmsg_contact_instance(const sip_contact_t *m);

/* The Contact pushgw registers for the phone:
 * <sip:ID@HOST:PORT;transport=T> plus, of the phone's Contact parameters,
 * only +sip.instance, reg-id and expires (its URI parameters, pn-*
 * included, stay with pushgw). False when it does not fit in n bytes. */
bool sipmsg_rewrite_contact(const sip_contact_t *m, const char *id, const char *host,
			    const char *port, const char *transport, char *buf, size_t n);

/* The phone's own Contact for the 2xx relayed back to it, with
 * expires=<granted>; allocated in home. NULL when out of memory. */
sip_contact_t *sipmsg_phone_contact(su_home_t *home, const sip_contact_t *phone,
				    unsigned granted);

/* ---- requests to bindings ---- */

/* The binding id u names (its user part, when that starts with
 * SIPMSG_ID_PREFIX and u's host is public_host), or NULL. Points into u. */
const char *sipmsg_binding_id(const url_t *u, const char *public_host);

/* ---- calls ---- */

/* The facts of an INVITE that the wake push carries; strings malloc'd
 * (free with sipmsg_call_facts_clear). */
typedef struct sipmsg_call_facts {
	char *call_id;   /* Call-ID */
	char *from;      /* From URI's user part, NULL if none */
	char *from_name; /* From display name, quotes and escapes removed, NULL if none */
	char *to;        /* To URI's user part, else fallback_to */
} sipmsg_call_facts;

/* False when the INVITE has no Call-ID or From/To, or memory runs out
 * (then out is cleared). */
bool sipmsg_call_facts_get(const sip_t *sip, const char *fallback_to, sipmsg_call_facts *out);
void sipmsg_call_facts_clear(sipmsg_call_facts *f);

/* A display name without its quotes and backslash escapes (malloc'd), or
 * NULL when there is none. */
char *sipmsg_display_name(const char *display);

/* RFC 3326 Reason on a CANCEL: "SIP ;cause=200" → "answered_elsewhere",
 * cause=603 → "declined", anything else (or none) → "caller_cancelled". */
const char *sipmsg_cancel_reason(const sip_t *sip);

/* The transport named by a flow's route ("sip:IP:PORT;transport=tcp") into
 * buf: "udp" when it names none. */
const char *sipmsg_route_transport(const char *route, char *buf, size_t n);

/* ---- forwarding ---- */

/* Decrement Max-Forwards (add 70 when missing). False when it is 0: the
 * request gets 483. */
bool sipmsg_decrement_max_forwards(msg_t *msg, sip_t *sip);

#endif
