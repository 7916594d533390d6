/* Unit tests for what the SIP edge reads from parsed messages
 * (gateway/sipmsg.c, docs/sip-edge.md): the Contact rewritten to a binding
 * id and the phone's own Contact given back, +sip.instance, reg-id and the
 * expiry, the binding id in a Request-URI or Route, the call facts for the
 * wake push, the RFC 3326 cancel reason, and the bounds on every message.
 * Messages are parsed by sofia-sip as the edge's NTA agent parses them. */
#include <stdlib.h>
#include <string.h>

#include <sofia-sip/msg_header.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_parser.h>

#include "check.h"
#include "pushgw/sipmsg.h"

static msg_t *parse(const char *text)
{
	msg_t *msg = msg_make(sip_default_mclass(), 0, text, strlen(text));

	return msg;
}

#define REGISTER_HEAD                                                              \
	"REGISTER sip:127.0.0.1 SIP/2.0\r\n"                                      \
	"Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKr1;rport\r\n"              \
	"Max-Forwards: 70\r\n"                                                    \
	"From: <sip:1001@127.0.0.1>;tag=a1\r\n"                                   \
	"To: <sip:1001@127.0.0.1>\r\n"                                            \
	"Call-ID: reg-1@phone\r\n"                                                \
	"CSeq: 1 REGISTER\r\n"

static const char rfc8599_register[] =
	REGISTER_HEAD
	"Contact: \"Bob\" <sip:1001@192.0.2.7:5999;transport=tcp;pn-provider=apns;"
	"pn-param=TEAM123456.com.example.phone.voip;pn-prid=abcd>;"
	"+sip.instance=\"<urn:uuid:00000000-0000-4000-8000-000000001001>\";reg-id=1;expires=600\r\n"
	"Expires: 3600\r\n"
	"Content-Length: 0\r\n\r\n";

static const char linphone_register[] =
	REGISTER_HEAD
	"Contact: <sip:1001@192.0.2.7:5999;app-id=com.example.phone.voip.prod;"
	"pn-type=apple;pn-tok=abcd;pn-msg-str=IM_MSG;pn-call-str=IC_MSG>;"
	"+sip.instance=\"<urn:uuid:abc>\"\r\n"
	"Content-Length: 0\r\n\r\n";

static void test_rewrite_contact(void)
{
	msg_t *msg = parse(rfc8599_register);
	sip_t *sip = sip_object(msg);
	char buf[512];
	su_home_t home[1] = { SU_HOME_INIT(home) };
	sip_contact_t *m;
	char *value, *inst;

	TEST("the Contact for the PBX names the binding; only +sip.instance, reg-id, expires go on");
	CHECK(msg && sip && sip->sip_contact);
	CHECK(sipmsg_rewrite_contact(sip->sip_contact, "pgw-0123", "push.example.com", "5070", "udp",
				     buf, sizeof buf));
	CHECK_STR(buf, "<sip:pgw-0123@push.example.com:5070;transport=udp>"
		       ";+sip.instance=\"<urn:uuid:00000000-0000-4000-8000-000000001001>\";reg-id=1;expires=600");
	CHECK(strstr(buf, "pn-") == NULL);
	m = sip_contact_make(home, buf);
	CHECK(m && m->m_url->url_user && strcmp(m->m_url->url_user, "pgw-0123") == 0);

	TEST("a rewritten Contact that does not fit is refused, never cut");
	CHECK(!sipmsg_rewrite_contact(sip->sip_contact, "pgw-0123", "push.example.com", "5070", "udp",
				      buf, 60));
	CHECK(!sipmsg_rewrite_contact(sip->sip_contact, "pgw-0123", "push.example.com", "5070", "udp",
				      buf, 20));

	TEST("the phone's Contact is kept whole, pn-* and display name included");
	value = sipmsg_contact_value(home, sip->sip_contact);
	CHECK(value && strstr(value, "\"Bob\" <sip:1001@192.0.2.7:5999;transport=tcp;pn-provider=apns;") == value);
	CHECK(value && strstr(value, ";reg-id=1;expires=600"));
	m = value ? sip_contact_make(home, value) : NULL;
	CHECK(m && url_cmp(m->m_url, sip->sip_contact->m_url) == 0);
	free(value);

	TEST("+sip.instance without its quotes");
	inst = sipmsg_contact_instance(sip->sip_contact);
	CHECK_STR(inst, "<urn:uuid:00000000-0000-4000-8000-000000001001>");
	free(inst);

	TEST("the 2xx gives the phone its own Contact back with the granted expiry");
	m = sipmsg_phone_contact(home, sip->sip_contact, 120);
	CHECK(m && m->m_expires && strcmp(m->m_expires, "120") == 0);
	CHECK(m && url_cmp(m->m_url, sip->sip_contact->m_url) == 0);
	CHECK(m && msg_header_find_param(m->m_common, "+sip.instance") != NULL);
	msg_destroy(msg);

	TEST("a Linphone-dialect Contact (pn-type, app-id, pn-tok) the same way");
	msg = parse(linphone_register);
	sip = sip_object(msg);
	if (!sip || !sip->sip_contact) {
		CHECK(!"the Linphone REGISTER parses");
		su_home_deinit(home);
		return;
	}
	inst = sip && sip->sip_contact ? sipmsg_contact_instance(sip->sip_contact) : NULL;
	CHECK_STR(inst, "<urn:uuid:abc>");
	free(inst);
	CHECK(sipmsg_rewrite_contact(sip->sip_contact, "pgw-1", "h", "5060", "tcp", buf, sizeof buf));
	CHECK_STR(buf, "<sip:pgw-1@h:5060;transport=tcp>;+sip.instance=\"<urn:uuid:abc>\"");
	value = sipmsg_contact_value(home, sip->sip_contact);
	CHECK(value && strstr(value, "pn-tok=abcd") && strstr(value, "app-id=com.example.phone.voip.prod"));
	free(value);
	msg_destroy(msg);
	su_home_deinit(home);
}

static msg_t *register_with(const char *contact_and_more)
{
	char text[2048];

	snprintf(text, sizeof text, "%s%sContent-Length: 0\r\n\r\n", REGISTER_HEAD, contact_and_more);
	return parse(text);
}

static void test_expires(void)
{
	msg_t *msg;
	unsigned v = 0;
	const char *why;

	TEST("delta-seconds: digits only, capped at 2^32-1");
	CHECK(sipmsg_delta_seconds("0", &v) && v == 0);
	CHECK(sipmsg_delta_seconds("3600", &v) && v == 3600);
	CHECK(sipmsg_delta_seconds("4294967295", &v) && v == 4294967295u);
	CHECK(sipmsg_delta_seconds("4294967296", &v) && v == 4294967295u);
	CHECK(sipmsg_delta_seconds("99999999999999999999999999", &v) && v == 4294967295u);
	CHECK(!sipmsg_delta_seconds("", &v));
	CHECK(!sipmsg_delta_seconds("-1", &v));
	CHECK(!sipmsg_delta_seconds("12a", &v));
	CHECK(!sipmsg_delta_seconds(" 1", &v));
	CHECK(!sipmsg_delta_seconds(NULL, &v));

	TEST("requested: the Contact's expires, else Expires, else 3600");
	msg = register_with("Contact: <sip:1001@h>;expires=60\r\nExpires: 30\r\n");
	CHECK(sipmsg_requested_expires(sip_object(msg)) == 60);
	msg_destroy(msg);
	msg = register_with("Contact: <sip:1001@h>\r\nExpires: 30\r\n");
	CHECK(sipmsg_requested_expires(sip_object(msg)) == 30);
	msg_destroy(msg);
	msg = register_with("Contact: <sip:1001@h>\r\n");
	CHECK(sipmsg_requested_expires(sip_object(msg)) == 3600);
	msg_destroy(msg);

	TEST("a Contact expires that is no number is refused: it never means 0 (removal)");
	msg = register_with("Contact: <sip:1001@h>;expires=abc\r\n");
	CHECK(sipmsg_requested_expires(sip_object(msg)) == -1);
	CHECK(sipmsg_check_register(sip_object(msg), &why) == 400 && why);
	msg_destroy(msg);
	msg = register_with("Contact: <sip:1001@h>;expires=4294967296\r\n");
	CHECK(sipmsg_requested_expires(sip_object(msg)) == 4294967295L);
	msg_destroy(msg);

	TEST("an Expires header beyond 32 bits is the largest delta, never wrapped to 0 (removal)");
	msg = register_with("Contact: <sip:1001@h>\r\nExpires: 4294967296\r\n");
	CHECK(sipmsg_requested_expires(sip_object(msg)) == 4294967295L);
	msg_destroy(msg);

	TEST("granted: the PBX's Contact for our binding, else Expires, else what was asked");
	msg = parse("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\n"
		    "To: <sip:a@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\n"
		    "Contact: <sip:other@h>;expires=10, <sip:pgw-1@p>;expires=300\r\nExpires: 20\r\n"
		    "Content-Length: 0\r\n\r\n");
	CHECK(sipmsg_granted_expires(sip_object(msg), "pgw-1", 99) == 300);
	CHECK(sipmsg_granted_expires(sip_object(msg), "pgw-2", 99) == 20);
	msg_destroy(msg);
	msg = parse("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\n"
		    "To: <sip:a@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\n"
		    "Contact: <sip:pgw-1@p>;expires=xyz\r\nContent-Length: 0\r\n\r\n");
	CHECK(sipmsg_granted_expires(sip_object(msg), "pgw-1", 99) == 99);
	msg_destroy(msg);
}

static void test_register_checks(void)
{
	msg_t *msg;
	const char *why;
	char *aor;

	TEST("one Contact with a host; no wildcard, two Contacts or none");
	msg = register_with("Contact: <sip:1001@h>\r\n");
	CHECK(sipmsg_check_register(sip_object(msg), &why) == 0);
	aor = sipmsg_aor(sip_object(msg));
	CHECK_STR(aor, "sip:1001@127.0.0.1");
	free(aor);
	msg_destroy(msg);
	msg = register_with("Contact: *\r\nExpires: 0\r\n");
	CHECK(sipmsg_check_register(sip_object(msg), &why) == 400);
	msg_destroy(msg);
	msg = register_with("Contact: <sip:1001@h>, <sip:1001@i>\r\n");
	CHECK(sipmsg_check_register(sip_object(msg), &why) == 400);
	msg_destroy(msg);
	msg = register_with("");
	CHECK(sipmsg_check_register(sip_object(msg), &why) == 400);
	CHECK_STR(why, "One Contact Per REGISTER Through Pushgw");
	msg_destroy(msg);

	TEST("the To user must be an extension");
	msg = parse("REGISTER sip:h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
		    "From: <sip:h>;tag=1\r\nTo: <sip:h>\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\n"
		    "Contact: <sip:1001@h>\r\nContent-Length: 0\r\n\r\n");
	CHECK(sipmsg_check_register(sip_object(msg), &why) == 400);
	CHECK_STR(why, "Bad To User");
	msg_destroy(msg);
}

static void test_binding_id(void)
{
	su_home_t home[1] = { SU_HOME_INIT(home) };

	TEST("a binding id is a pgw- user at our public host, in any case of the host");
	CHECK_STR(sipmsg_binding_id(url_make(home, "sip:pgw-abc@push.example.com:5060"),
				    "push.example.com"), "pgw-abc");
	CHECK_STR(sipmsg_binding_id(url_make(home, "sip:pgw-abc@PUSH.example.com;lr"),
				    "push.example.com"), "pgw-abc");
	CHECK(sipmsg_binding_id(url_make(home, "sip:pgw-abc@other.example.com"), "push.example.com") == NULL);
	CHECK(sipmsg_binding_id(url_make(home, "sip:1001@push.example.com"), "push.example.com") == NULL);
	CHECK(sipmsg_binding_id(url_make(home, "sip:push.example.com"), "push.example.com") == NULL);
	CHECK(sipmsg_binding_id(NULL, "push.example.com") == NULL);
	su_home_deinit(home);
}

static void test_call_facts(void)
{
	msg_t *msg;
	sipmsg_call_facts f;
	char *d;

	TEST("the call facts: Call-ID, From user and display name, To user");
	msg = parse("INVITE sip:pgw-1@p SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
		    "From: \"Alice \\\"A\\\" Smith\" <sip:+15551234567@pbx>;tag=1\r\n"
		    "To: <sip:1001@pbx>\r\nCall-ID: abc@pbx\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n");
	CHECK(sipmsg_call_facts_get(sip_object(msg), "9999", &f));
	CHECK_STR(f.call_id, "abc@pbx");
	CHECK_STR(f.from, "+15551234567");
	CHECK_STR(f.from_name, "Alice \"A\" Smith");
	CHECK_STR(f.to, "1001");
	sipmsg_call_facts_clear(&f);
	CHECK(f.call_id == NULL);
	msg_destroy(msg);

	TEST("no display name, no To user: the binding's extension");
	msg = parse("INVITE sip:pgw-1@p SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
		    "From: sip:anonymous@anonymous.invalid;tag=1\r\n"
		    "To: <sip:pbx>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n");
	CHECK(sipmsg_call_facts_get(sip_object(msg), "1001", &f));
	CHECK(f.from_name == NULL);
	CHECK_STR(f.from, "anonymous");
	CHECK_STR(f.to, "1001");
	sipmsg_call_facts_clear(&f);
	msg_destroy(msg);

	TEST("display names: unquoted as is, quoted without quotes and escapes");
	d = sipmsg_display_name("Bob");
	CHECK_STR(d, "Bob");
	free(d);
	d = sipmsg_display_name("\"\"");
	CHECK_STR(d, "");
	free(d);
	d = sipmsg_display_name("\"a\\\\b\"");
	CHECK_STR(d, "a\\b");
	free(d);
	d = sipmsg_display_name("\"trailing\\\"");
	CHECK_STR(d, "trailing\\");
	free(d);
	CHECK(sipmsg_display_name("") == NULL && sipmsg_display_name(NULL) == NULL);
}

static const char *reason_of(const char *reason_headers)
{
	static char text[1024];
	static const char *out;
	msg_t *msg;

	snprintf(text, sizeof text,
		 "CANCEL sip:pgw-1@p SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
		 "From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c\r\nCSeq: 1 CANCEL\r\n"
		 "%sContent-Length: 0\r\n\r\n", reason_headers);
	msg = parse(text);
	out = sipmsg_cancel_reason(sip_object(msg));
	msg_destroy(msg);
	return out;
}

static void test_cancel_reason(void)
{
	TEST("RFC 3326: SIP cause=200 answered elsewhere, 603 declined, else caller_cancelled");
	CHECK_STR(reason_of("Reason: SIP;cause=200;text=\"Call completed elsewhere\"\r\n"), "answered_elsewhere");
	CHECK_STR(reason_of("Reason: sip ;cause=603\r\n"), "declined");
	CHECK_STR(reason_of("Reason: SIP;cause=487\r\n"), "caller_cancelled");
	CHECK_STR(reason_of("Reason: Q.850;cause=16\r\n"), "caller_cancelled");
	CHECK_STR(reason_of("Reason: Q.850;cause=200, SIP;cause=603\r\n"), "declined");
	CHECK_STR(reason_of("Reason: SIP;text=\"no cause\"\r\n"), "caller_cancelled");
	CHECK_STR(reason_of(""), "caller_cancelled");
	CHECK_STR(sipmsg_cancel_reason(NULL), "caller_cancelled");
}

static void test_route_transport(void)
{
	char b[16];

	TEST("a flow's transport from its route");
	CHECK_STR(sipmsg_route_transport("sip:127.0.0.1:5999;transport=tcp", b, sizeof b), "tcp");
	CHECK_STR(sipmsg_route_transport("sip:127.0.0.1:5999", b, sizeof b), "udp");
	CHECK_STR(sipmsg_route_transport("sip:h;transport=tls;lr", b, sizeof b), "tls");
	CHECK_STR(sipmsg_route_transport(NULL, b, sizeof b), "udp");
}

static void test_limits(void)
{
	char *text;
	size_t cap = 256 * 1024, n, i;
	msg_t *msg;
	const char *why;
	int status;

	TEST("a plain request keeps the bounds and has what a request must");
	msg = parse(rfc8599_register);
	CHECK(sipmsg_check_limits(msg, sip_object(msg), &why) == 0);
	CHECK(sipmsg_check_request(sip_object(msg), &why) == 0);
	CHECK(sipmsg_header_count(msg) == 9);
	msg_destroy(msg);

	TEST("more header fields than SIPMSG_MAX_HEADERS: 400");
	text = malloc(cap);
	n = (size_t)snprintf(text, cap, "%s", REGISTER_HEAD);
	for (i = 0; i < SIPMSG_MAX_HEADERS; i++)
		n += (size_t)snprintf(text + n, cap - n, "X-Pad-%zu: y\r\n", i);
	snprintf(text + n, cap - n, "Content-Length: 0\r\n\r\n");
	msg = parse(text);
	status = sipmsg_check_limits(msg, sip_object(msg), &why);
	CHECK(status == 400);
	CHECK_STR(why, "Too Many Headers");
	msg_destroy(msg);

	TEST("a Via loop (more than SIPMSG_MAX_VIAS): 400");
	n = (size_t)snprintf(text, cap, "OPTIONS sip:h SIP/2.0\r\n");
	for (i = 0; i <= SIPMSG_MAX_VIAS; i++)
		n += (size_t)snprintf(text + n, cap - n, "Via: SIP/2.0/UDP h%zu;branch=z9hG4bK%zu\r\n", i, i);
	snprintf(text + n, cap - n, "From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c\r\n"
				    "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
	msg = parse(text);
	CHECK(sipmsg_check_limits(msg, sip_object(msg), &why) == 400);
	CHECK_STR(why, "Too Many Via Headers");
	msg_destroy(msg);

	TEST("a Route list past SIPMSG_MAX_ROUTES, on one line: 400");
	n = (size_t)snprintf(text, cap, "OPTIONS sip:h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nRoute: ");
	for (i = 0; i <= SIPMSG_MAX_ROUTES; i++)
		n += (size_t)snprintf(text + n, cap - n, "%s<sip:r%zu;lr>", i ? ", " : "", i);
	snprintf(text + n, cap - n, "\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c\r\n"
				    "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
	msg = parse(text);
	CHECK(sipmsg_check_limits(msg, sip_object(msg), &why) == 400);
	CHECK_STR(why, "Too Many Route Headers");
	msg_destroy(msg);

	TEST("larger than SIPMSG_MAX_BYTES: 413");
	n = (size_t)snprintf(text, cap, "%s", REGISTER_HEAD);
	n += (size_t)snprintf(text + n, cap - n, "Subject: ");
	memset(text + n, 'a', SIPMSG_MAX_BYTES);
	n += SIPMSG_MAX_BYTES;
	snprintf(text + n, cap - n, "\r\nContent-Length: 0\r\n\r\n");
	msg = parse(text);
	CHECK(msg && sipmsg_check_limits(msg, sip_object(msg), &why) == 413);
	msg_destroy(msg);
	free(text);

	TEST("missing mandatory headers, or a CSeq of another method: 400");
	msg = parse("OPTIONS sip:h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
		    "From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
	CHECK(sipmsg_check_request(sip_object(msg), &why) == 400);
	CHECK_STR(why, "Missing Mandatory Header");
	msg_destroy(msg);
	msg = parse("ACK sip:h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
		    "From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n"
		    "Content-Length: 0\r\n\r\n");
	CHECK(sipmsg_check_request(sip_object(msg), &why) == 400);
	CHECK_STR(why, "CSeq Method Does Not Match");
	msg_destroy(msg);
	msg = parse("FOO sip:h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
		    "From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c\r\nCSeq: 1 BAR\r\n"
		    "Content-Length: 0\r\n\r\n");
	CHECK(sipmsg_check_request(sip_object(msg), &why) == 400);
	msg_destroy(msg);
	msg = parse("FOO sip:h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
		    "From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c\r\nCSeq: 1 FOO\r\n"
		    "Content-Length: 0\r\n\r\n");
	CHECK(sipmsg_check_request(sip_object(msg), &why) == 0);
	msg_destroy(msg);

	TEST("a Request-URI sofia would not send on as it came (a path), or another scheme");
	msg = parse("OPTIONS sip:127.0/x:y.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
		    "From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n"
		    "Content-Length: 0\r\n\r\n");
	CHECK(sipmsg_check_request(sip_object(msg), &why) == 400);
	CHECK_STR(why, "Bad Request-URI");
	msg_destroy(msg);
	msg = parse("OPTIONS mailto:a@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
		    "From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n"
		    "Content-Length: 0\r\n\r\n");
	CHECK(sipmsg_check_request(sip_object(msg), &why) == 416);
	msg_destroy(msg);
	msg = parse("INVITE tel:+15551234567 SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
		    "From: <sip:a@h>;tag=1\r\nTo: <tel:+15551234567>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n"
		    "Content-Length: 0\r\n\r\n");
	CHECK(sipmsg_check_request(sip_object(msg), &why) == 0);
	msg_destroy(msg);
}

static void test_max_forwards(void)
{
	msg_t *msg;
	sip_t *sip;

	TEST("Max-Forwards: decremented, added when missing, 0 refused");
	msg = parse("OPTIONS sip:h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nMax-Forwards: 1\r\n"
		    "From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n"
		    "Content-Length: 0\r\n\r\n");
	sip = sip_object(msg);
	CHECK(sipmsg_decrement_max_forwards(msg, sip) && sip->sip_max_forwards->mf_count == 0);
	CHECK(!sipmsg_decrement_max_forwards(msg, sip));
	msg_destroy(msg);
	msg = parse("OPTIONS sip:h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
		    "From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n"
		    "Content-Length: 0\r\n\r\n");
	sip = sip_object(msg);
	CHECK(sipmsg_decrement_max_forwards(msg, sip) && sip->sip_max_forwards &&
	      sip->sip_max_forwards->mf_count == 70);
	msg_destroy(msg);
}

int main(void)
{
	test_rewrite_contact();
	test_expires();
	test_register_checks();
	test_binding_id();
	test_call_facts();
	test_cancel_reason();
	test_route_transport();
	test_limits();
	test_max_forwards();
	return check_summary("test_sipedge");
}
