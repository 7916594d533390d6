/* libFuzzer target: SIP messages as the edge reads them (docs/sip-edge.md).
 * The bytes are parsed by sofia-sip's SIP parser (as the edge's NTA agent
 * parses what its transports receive) and every pure reader of
 * gateway/sipmsg.c runs on the result: bounds, mandatory headers, the
 * REGISTER checks, the Contact rewritten to a binding id and the phone's
 * own Contact given back, +sip.instance and the expiry, the push target the
 * stored Contact resolves to, the binding id of a Request-URI or Route, the
 * call facts, the RFC 3326 reason, Max-Forwards. What the edge would send
 * on (the REGISTER to the PBX, the 2xx to the phone) is built the same way
 * and encoded, and must parse back.
 * Single-threaded; the config is loaded once, before the first input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sofia-sip/msg_header.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_parser.h>
#include <sofia-sip/su_alloc.h>

#include "fuzzcheck.h"
#include "fuzzenv.h"
#include "pushgw/registry.h"
#include "pushgw/sipmsg.h"
#include "pushgw/target.h"

#define PUBLIC_HOST "push.example.com"
#define BINDING_ID "pgw-0123456789abcdef01234567"

static fuzzenv *env;
static pgw_config *cfg;

static void cleanup(void)
{
	config_free(cfg);
	fuzzenv_free(env);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char phone[72], json[2048];

	env = fuzzenv_new();
	fuzzenv_key_hash("key-phone", phone);
	snprintf(json, sizeof json,
		 "{\"api_keys\": [{\"name\": \"phone\", \"key\": \"%s\"}],"
		 " \"apps\": {"
		 "  \"phone\": {\"apns\": {\"team_id\": \"TEAM123456\", \"key_id\": \"KEY1234567\","
		 "    \"key_file\": \"" FUZZENV_P8 "\", \"bundle_id\": \"com.example.phone\"},"
		 "   \"fcm\": {\"service_account_file\": \"" FUZZENV_SERVICE_ACCOUNT "\","
		 "    \"sender_id\": \"123456789012\"}}}}",
		 phone);
	cfg = fuzzenv_load_config(env, "sip.json", json);
	atexit(cleanup);
	return 0;
}

/* Encode msg as it would go on the wire and parse it again; NULL when it
 * does not come back (the caller decides whether that may happen). */
static msg_t *reparse(su_home_t *home, msg_t *msg)
{
	size_t len = 0;
	char *text;

	if (msg_serialize(msg, (msg_pub_t *)sip_object(msg)) < 0)
		return NULL;
	text = msg_as_string(home, msg, (msg_pub_t *)sip_object(msg), 0, &len);
	if (!text)
		return NULL;
	return msg_make(sip_default_mclass(), 0, text, len);
}

/* The Contact pushgw registers for the phone: our binding, at our host,
 * with nothing of the phone's URI (pn-* stays with pushgw). */
static void check_rewritten(su_home_t *home, const char *text)
{
	sip_contact_t *m = sip_contact_make(home, text);
	size_t i;

	FUZZ_ASSERT(m && !m->m_next);
	FUZZ_ASSERT(m->m_url->url_user && strcmp(m->m_url->url_user, BINDING_ID) == 0);
	FUZZ_ASSERT(m->m_url->url_host && strcmp(m->m_url->url_host, PUBLIC_HOST) == 0);
	FUZZ_ASSERT(m->m_url->url_params && strcmp(m->m_url->url_params, "transport=udp") == 0);
	FUZZ_ASSERT(!m->m_url->url_headers);
	for (i = 0; m->m_params && m->m_params[i]; i++) {
		const char *p = m->m_params[i];
		FUZZ_ASSERT(strncasecmp(p, "+sip.instance=", 14) == 0 || strncasecmp(p, "reg-id=", 7) == 0 ||
			    strncasecmp(p, "expires=", 8) == 0);
	}
}

static const char ok_2xx[] =
	"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\n"
	"From: <sip:a@h>;tag=1\r\nTo: <sip:a@h>;tag=2\r\nCall-ID: c\r\n"
	"CSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n";

/* The REGISTER the edge sends to the PBX (forward_register) and the 2xx it
 * relays back (relay_ok), built from this one. */
static void fuzz_register(su_home_t *home, msg_t *msg, sip_t *sip)
{
	const sip_contact_t *m = sip->sip_contact;
	char contact[1100], *value, *inst, *aor;
	const char *why;
	long req;
	msg_t *fwd, *back;
	sip_contact_t *pc;
	pgw_target t;
	pgw_field_error fe;
	pgw_err rc;

	if (sipmsg_check_register(sip, &why) != 0) {
		FUZZ_ASSERT(why && *why);
		return;
	}
	FUZZ_ASSERT(m && !m->m_next && m->m_url->url_host);
	req = sipmsg_requested_expires(sip);
	FUZZ_ASSERT(req >= 0 && (unsigned long)req <= SIPMSG_MAX_DELTA);

	aor = sipmsg_aor(sip);
	if (aor)
		FUZZ_ASSERT(strncasecmp(aor, "sip:", 4) == 0 || strncasecmp(aor, "sips:", 5) == 0);
	inst = sipmsg_contact_instance(m);
	if (inst)
		FUZZ_ASSERT(*inst || msg_header_find_param(m->m_common, "+sip.instance"));

	/* the phone's Contact as stored: it must parse back to the same URI,
	 * or the edge could not call the phone on it later (send_invite) */
	value = sipmsg_contact_value(home, m);
	if (!value) {
		free(aor);
		free(inst);
		return; /* the edge answers 400 */
	}
	{
		sip_contact_t *again = sip_contact_make(home, value);
		FUZZ_ASSERT(again && url_cmp(again->m_url, m->m_url) == 0);
	}
	rc = target_from_contact(value, cfg, NULL, &t, &fe);
	fuzzcheck_target_result(rc, &t, &fe, NULL);
	{
		/* what the edge checks before the PBX sees the REGISTER */
		registry_binding b = {
			.id = BINDING_ID, .edge = PUBLIC_HOST, .aor = aor,
			.extension = (char *)sip->sip_to->a_url->url_user, .contact = value,
			.instance = inst, .app = rc == PGW_OK ? (char *)t.app->name : NULL,
			.expires_at_ms = 1, .updated_at_ms = 1,
		};
		bool storable = aor && registry_binding_storable(&b, rc == PGW_OK ? &t : NULL);
		target_clear(&t);
		free(aor);
		free(inst);
		if (!storable) {
			free(value);
			return; /* the edge answers 400 */
		}
	}

	if (!sipmsg_rewrite_contact(m, BINDING_ID, PUBLIC_HOST, "5060", "udp", contact,
				    sizeof contact)) {
		free(value);
		return;
	}
	check_rewritten(home, contact);

	/* forward_register: the phone's Contact out, ours in, Max-Forwards down */
	fwd = msg_dup(msg);
	FUZZ_ASSERT(fwd);
	{
		sip_t *fs = sip_object(fwd);
		while (fs->sip_contact)
			msg_header_remove(fwd, (msg_pub_t *)fs, (msg_header_t *)fs->sip_contact);
		FUZZ_ASSERT(sip_add_make(fwd, fs, sip_contact_class, contact) == 0);
		if (sipmsg_decrement_max_forwards(fwd, fs)) {
			msg_t *out = reparse(home, fwd);
			FUZZ_ASSERT(out);
			{
				sip_t *os = sip_object(out);
				FUZZ_ASSERT(os && os->sip_request && os->sip_contact && !os->sip_contact->m_next);
				FUZZ_ASSERT(os->sip_contact->m_url->url_user &&
					    strcmp(os->sip_contact->m_url->url_user, BINDING_ID) == 0);
				msg_destroy(out);
			}
		}
	}
	msg_destroy(fwd);

	/* relay_ok: a 2xx carrying the phone's own Contact and the expiry */
	back = msg_make(sip_default_mclass(), 0, ok_2xx, strlen(ok_2xx));
	FUZZ_ASSERT(back);
	pc = sipmsg_phone_contact(msg_home(back), m, (unsigned)req);
	FUZZ_ASSERT(pc && pc->m_expires);
	FUZZ_ASSERT(msg_header_insert(back, (msg_pub_t *)sip_object(back), (msg_header_t *)pc) == 0);
	{
		msg_t *out = reparse(home, back);
		FUZZ_ASSERT(out);
		FUZZ_ASSERT(sip_object(out)->sip_contact);
		msg_destroy(out);
	}
	msg_destroy(back);
	free(value);
}

static void fuzz_request(su_home_t *home, msg_t *msg, sip_t *sip)
{
	const char *why, *id, *reason;
	const sip_route_t *r;
	sipmsg_call_facts f;
	int status;

	status = sipmsg_check_request(sip, &why);
	FUZZ_ASSERT(status == 0 || ((status == 400 || status == 416) && why && *why));
	if (status != 0)
		return;
	FUZZ_ASSERT(sip->sip_from && sip->sip_to && sip->sip_call_id && sip->sip_cseq && sip->sip_via);

	id = sipmsg_binding_id(sip->sip_request->rq_url, PUBLIC_HOST);
	if (id)
		FUZZ_ASSERT(id == sip->sip_request->rq_url->url_user &&
			    strncmp(id, SIPMSG_ID_PREFIX, 4) == 0);
	for (r = sip->sip_route; r; r = r->r_next) {
		id = sipmsg_binding_id(r->r_url, PUBLIC_HOST);
		if (id)
			FUZZ_ASSERT(strcasecmp(r->r_url->url_host, PUBLIC_HOST) == 0);
	}

	reason = sipmsg_cancel_reason(sip);
	FUZZ_ASSERT(strcmp(reason, "answered_elsewhere") == 0 || strcmp(reason, "declined") == 0 ||
		    strcmp(reason, "caller_cancelled") == 0);

	if (sipmsg_call_facts_get(sip, "1001", &f)) {
		FUZZ_ASSERT(f.call_id && strcmp(f.call_id, sip->sip_call_id->i_id) == 0);
		FUZZ_ASSERT(f.to);
		if (f.from_name)
			FUZZ_ASSERT(strlen(f.from_name) <= strlen(sip->sip_from->a_display));
		sipmsg_call_facts_clear(&f);
	}

	if (sip->sip_request->rq_method == sip_method_register)
		fuzz_register(home, msg, sip);
}

static void fuzz_response(sip_t *sip)
{
	unsigned g = sipmsg_granted_expires(sip, BINDING_ID, 77);

	FUZZ_ASSERT(g <= SIPMSG_MAX_DELTA);
	if (!sip->sip_contact && !sip->sip_expires)
		FUZZ_ASSERT(g == 77);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	su_home_t home[1] = { SU_HOME_INIT(home) };
	msg_t *msg = msg_make(sip_default_mclass(), 0, data, size);
	sip_t *sip;
	const char *why;
	int status;
	char tb[16], *text = malloc(size + 1);

	/* a flow's route is ours, but its transport is read the same way */
	if (text) {
		memcpy(text, data, size);
		text[size] = '\0';
		sipmsg_route_transport(text, tb, sizeof tb);
		FUZZ_ASSERT(strlen(tb) < sizeof tb);
		free(text);
	}
	if (!msg)
		return 0;
	sip = sip_object(msg);
	status = sipmsg_check_limits(msg, sip, &why);
	FUZZ_ASSERT(status == 0 || ((status == 400 || status == 413) && why && *why));
	FUZZ_ASSERT(sipmsg_header_count(msg) <= size);
	if (sip && status == 0) {
		if (sip->sip_request)
			fuzz_request(home, msg, sip);
		else if (sip->sip_status)
			fuzz_response(sip);
		if (sip->sip_request && sipmsg_decrement_max_forwards(msg, sip))
			FUZZ_ASSERT(sip->sip_max_forwards);
	}
	msg_destroy(msg);
	su_home_deinit(home);
	return 0;
}
