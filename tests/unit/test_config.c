/* Unit tests for config.c: a full config and its values, the defaults of a
 * minimal one, paths relative to the config's folder, environment overrides,
 * one case per error class (file + field + what was expected), the --check
 * report, and hash-key. Keys and certificates are generated into a temporary
 * folder with the openssl command at test time. */
#include <arpa/inet.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "pushgw/config.h"
#include "pushgw/log.h"
#include "pushgw/util.h"

#define CONF "conf/pushgw.json"
#define KEY_TEST_HASH "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

static char tmpdir[256];
static char confdir[512]; /* absolute, as realpath() spells it */

static const char *base_config =
	"{"
	" \"listen\": \"0.0.0.0:8443\","
	" \"tls\": { \"cert_file\": \"server.pem\", \"key_file\": \"server.key\","
	"           \"client_ca_file\": \"ca.pem\" },"
	" \"api_keys\": ["
	"  { \"name\": \"pbx-east\", \"key\": \"" KEY_TEST_HASH "\", \"scopes\": [\"wake\"],"
	"    \"apps\": [\"phone\"], \"callback_secret\": \"s3cret\" },"
	"  { \"name\": \"pbx-west\", \"key\": \"env:PUSHGW_TEST_KEY\" } ],"
	" \"apps\": {"
	"  \"phone\": {"
	"   \"apns\": { \"team_id\": \"TEAM123456\", \"key_id\": \"KEY1234567\","
	"             \"key_file\": \"AuthKey.p8\", \"bundle_id\": \"com.example.phone\","
	"             \"environment\": \"sandbox\", \"url\": \"https://127.0.0.1:8443\" },"
	"   \"fcm\": { \"service_account_file\": \"sa.json\","
	"            \"url\": \"https://127.0.0.1:9443\", \"sender_id\": \"123456789012\" },"
	"   \"payload\": \"linphone\", \"strings\": { \"call\": \"IC_CALL\", \"sound\": \"ring.caf\" },"
	"   \"ring_repeat_s\": 5, \"voip_cancel\": true },"
	"  \"work\": { \"apns\": { \"cert_file\": \"apns.pem\", \"cert_key_file\": \"apns.key\","
	"                        \"bundle_id\": \"com.example.work\" } } },"
	" \"upstream\": { \"ca_file\": \"ca.pem\", \"connections\": 4, \"ping_interval_s\": 30,"
	"               \"request_timeout_ms\": 2000 },"
	" \"registry\": { \"path\": \"data/reg.db\" },"
	" \"limits\": { \"max_body_bytes\": 131072, \"max_devices_per_wake\": 50,"
	"             \"wakes_per_second_per_key\": 0, \"max_pending_callbacks_per_key\": 50 },"
	" \"shutdown_grace_s\": 5,"
	" \"log\": { \"level\": \"warn\", \"format\": \"text\" }"
	"}";

/* ---- fixtures ---- */

static int run(const char *cmd)
{
	char full[1024];

	snprintf(full, sizeof full, "%s >/dev/null 2>&1", cmd);
	return system(full);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	if (!f) {
		perror(path);
		exit(2);
	}
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
}

static char *slurp(const char *path)
{
	char *text = NULL;

	if (pgw_read_file(path, &text, NULL) != PGW_OK) {
		fprintf(stderr, "cannot read fixture %s\n", path);
		exit(2);
	}
	return text;
}

/* A service-account JSON whose private_key is the PEM in key_path; field
 * left out when skip names it. */
static void write_service_account(const char *path, const char *key_path,
				  const char *skip, mode_t mode)
{
	char *pem = slurp(key_path);
	json_t *sa = json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "service_account",
			       "project_id", "example-phone", "client_email",
			       "pushgw@example-phone.iam.gserviceaccount.com",
			       "private_key", pem, "token_uri", "http://127.0.0.1:9444/token");
	char *text;

	if (skip)
		json_object_del(sa, skip);
	text = json_dumps(sa, JSON_INDENT(2));
	write_file(path, text, mode);
	free(text);
	json_decref(sa);
	free(pem);
}

static void make_fixtures(void)
{
	const char *base = getenv("TMPDIR");
	char *real;

	snprintf(tmpdir, sizeof tmpdir, "%s/pushgw-test-config-XXXXXX",
		 base && *base ? base : "/tmp");
	if (!mkdtemp(tmpdir) || chdir(tmpdir) != 0 || mkdir("conf", 0700) != 0) {
		perror("fixture folder");
		exit(2);
	}
	if (run("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out conf/AuthKey.p8") ||
	    run("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out conf/p384.p8") ||
	    run("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out conf/rsa.pem") ||
	    run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2"
		" -subj /CN=apns-test -keyout conf/apns.key -out conf/apns.pem") ||
	    run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2"
		" -subj /CN=localhost -keyout conf/server.key -out conf/server.pem") ||
	    run("cp conf/server.pem conf/ca.pem && cp conf/AuthKey.p8 conf/AuthKey-open.p8"
		" && cp conf/AuthKey.p8 conf/AuthKey-group.p8 && cp conf/server.key conf/server-open.key"
		" && cp conf/apns.key conf/apns-groupw.key")) {
		fprintf(stderr, "openssl could not make the test keys\n");
		exit(2);
	}
	chmod("conf/AuthKey.p8", 0600);
	chmod("conf/p384.p8", 0600);
	chmod("conf/rsa.pem", 0600);
	chmod("conf/apns.key", 0600);
	chmod("conf/AuthKey-open.p8", 0644);
	chmod("conf/AuthKey-group.p8", 0640);
	chmod("conf/server.key", 0600);
	chmod("conf/server-open.key", 0644);
	chmod("conf/apns-groupw.key", 0620);
	write_file("conf/garbage.p8", "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n", 0600);
	write_service_account("conf/sa.json", "conf/rsa.pem", NULL, 0600);
	write_service_account("conf/sa-open.json", "conf/rsa.pem", NULL, 0644);
	write_service_account("conf/sa-group.json", "conf/rsa.pem", NULL, 0640);
	write_service_account("conf/sa-noproj.json", "conf/rsa.pem", "project_id", 0600);
	write_service_account("conf/sa-ec.json", "conf/AuthKey.p8", NULL, 0600);
	write_service_account("conf/sa-notoken.json", "conf/rsa.pem", "token_uri", 0600);
	real = realpath("conf", NULL);
	snprintf(confdir, sizeof confdir, "%s", real);
	free(real);
}

static void remove_fixtures(void)
{
	char cmd[512];

	if (chdir("/") == 0 && strstr(tmpdir, "pushgw-test-config-")) {
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
		run(cmd);
	}
}

/* ---- config building ---- */

static void delete_path(json_t *root, const char *path)
{
	char buf[256], *dot, *seg = buf;
	json_t *cur = root;

	snprintf(buf, sizeof buf, "%s", path);
	while ((dot = strchr(seg, '.')) && cur) {
		*dot = '\0';
		cur = json_object_get(cur, seg);
		seg = dot + 1;
	}
	if (cur)
		json_object_del(cur, seg);
}

/* Base config with patch merged in (objects recursively) and the dotted
 * paths in del removed, written to conf/pushgw.json. */
static void write_config(const char *patch, const char *del)
{
	json_t *root = json_loads(base_config, JSON_REJECT_DUPLICATES, NULL);
	char buf[256], *tok, *save;

	if (!root) {
		fprintf(stderr, "base config is not JSON\n");
		exit(2);
	}
	if (patch) {
		json_t *p = json_loads(patch, 0, NULL);
		if (!p) {
			fprintf(stderr, "bad patch: %s\n", patch);
			exit(2);
		}
		json_object_update_recursive(root, p);
		json_decref(p);
	}
	if (del) {
		snprintf(buf, sizeof buf, "%s", del);
		for (tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
			delete_path(root, tok);
	}
	json_dump_file(root, CONF, JSON_INDENT(1));
	json_decref(root);
}

static void clear_env(void)
{
	unsetenv("PUSHGW_LISTEN");
	unsetenv("PUSHGW_LOG_LEVEL");
	unsetenv("PUSHGW_REGISTRY_PATH");
	unsetenv("PUSHGW_REGISTRY_URL");
	setenv("PUSHGW_TEST_KEY", "west-secret", 1);
	unsetenv("PUSHGW_TEST_UNSET");
}

static bool has(const char *s, const char *part)
{
	return s && part && strstr(s, part) != NULL;
}

static void check_abs(const char *got, const char *name)
{
	char want[768];

	snprintf(want, sizeof want, "%s/%s", confdir, name);
	CHECK_STR(got, want);
}

/* ---- valid configs ---- */

static void test_full_config(void)
{
	unsigned char west[32];
	char err[512];
	pgw_config *cfg = NULL;
	const pgw_app_conf *phone, *work;

	TEST("a full config loads with every value as written");
	clear_env();
	write_config(NULL, NULL);
	CHECK(config_load(CONF, &cfg, err, sizeof err) == PGW_OK);
	if (!cfg) {
		fprintf(stderr, "   %s\n", err);
		return;
	}
	CHECK_STR(cfg->listen_host, "0.0.0.0");
	CHECK(cfg->listen_port == 8443);
	check_abs(cfg->path, "pushgw.json");
	CHECK_STR(cfg->dir, confdir);
	CHECK(cfg->tls_enabled);
	check_abs(cfg->tls_cert_file, "server.pem");
	check_abs(cfg->tls_key_file, "server.key");
	check_abs(cfg->tls_client_ca_file, "ca.pem");

	CHECK(cfg->n_keys == 2);
	CHECK_STR(cfg->keys[0].name, "pbx-east");
	CHECK(cfg->keys[0].scopes == PGW_SCOPE_WAKE);
	CHECK(cfg->keys[0].n_apps == 1);
	CHECK_STR(cfg->keys[0].callback_secret, "s3cret");
	CHECK(cfg->keys[0].hash[0] == 0x9f && cfg->keys[0].hash[31] == 0x08);
	pgw_sha256("west-secret", 11, west);
	CHECK(memcmp(cfg->keys[1].hash, west, 32) == 0);
	CHECK(cfg->keys[1].scopes == (PGW_SCOPE_WAKE | PGW_SCOPE_REGISTER));
	CHECK(cfg->keys[1].n_apps == 0);
	CHECK(cfg->keys[1].callback_secret == NULL);

	CHECK(cfg->n_apps == 2);
	phone = config_app_find(cfg, "phone");
	work = config_app_find(cfg, "work");
	CHECK(phone && work && !config_app_find(cfg, "nope"));
	if (!phone || !work)
		goto out;
	CHECK(config_key_allows_app(&cfg->keys[0], phone));
	CHECK(!config_key_allows_app(&cfg->keys[0], work));
	CHECK(config_key_allows_app(&cfg->keys[1], work));
	CHECK(phone->apns.enabled && phone->fcm.enabled);
	CHECK_STR(phone->apns.team_id, "TEAM123456");
	CHECK_STR(phone->apns.key_id, "KEY1234567");
	check_abs(phone->apns.key_file, "AuthKey.p8");
	CHECK(has(phone->apns.key_pem, "-----BEGIN PRIVATE KEY-----"));
	CHECK(phone->apns.environment == PGW_ENV_SANDBOX);
	CHECK_STR(phone->apns.url, "https://127.0.0.1:8443");
	check_abs(phone->fcm.service_account_file, "sa.json");
	CHECK_STR(phone->fcm.url, "https://127.0.0.1:9443");
	CHECK_STR(phone->fcm.sender_id, "123456789012");
	CHECK_STR(phone->fcm.project_id, "example-phone");
	CHECK_STR(phone->fcm.client_email, "pushgw@example-phone.iam.gserviceaccount.com");
	CHECK(has(phone->fcm.private_key, "PRIVATE KEY-----"));
	CHECK_STR(phone->fcm.token_uri, "http://127.0.0.1:9444/token");
	CHECK(phone->payload == PGW_PAYLOAD_LINPHONE);
	CHECK_STR(phone->strings.call, "IC_CALL");
	CHECK_STR(phone->strings.sound, "ring.caf");
	CHECK_STR(phone->strings.missed, "IC_MISSED");
	CHECK(phone->ring_repeat_s == 5);
	CHECK(phone->voip_cancel);
	CHECK(work->apns.enabled && !work->fcm.enabled);
	CHECK(work->apns.key_pem == NULL && work->apns.team_id == NULL);
	check_abs(work->apns.cert_file, "apns.pem");
	check_abs(work->apns.cert_key_file, "apns.key");
	CHECK(work->apns.environment == PGW_ENV_PRODUCTION);

	check_abs(cfg->upstream_ca_file, "ca.pem");
	CHECK(cfg->upstream_connections == 4);
	CHECK(cfg->upstream_ping_interval_s == 30);
	CHECK(cfg->upstream_request_timeout_ms == 2000);
	check_abs(cfg->registry_path, "data/reg.db");
	CHECK(cfg->registry_url == NULL);
	CHECK(cfg->max_body_bytes == 131072);
	CHECK(cfg->max_devices_per_wake == 50);
	CHECK(cfg->wakes_per_second_per_key == 0);
	CHECK(cfg->max_pending_callbacks_per_key == 50);
	CHECK(cfg->shutdown_grace_s == 5);
	CHECK(cfg->log_level == PGW_LOG_WARN);
	CHECK(cfg->log_text);
out:
	config_free(cfg);
}

static void test_defaults(void)
{
	char err[512];
	pgw_config *cfg = NULL;
	const pgw_app_conf *app;

	TEST("a minimal config gets the documented defaults");
	clear_env();
	write_file(CONF,
		   "{\"apps\": {\"droid\": {\"fcm\": {\"service_account_file\": \"sa-notoken.json\"}}}}",
		   0600);
	CHECK(config_load(CONF, &cfg, err, sizeof err) == PGW_OK);
	if (!cfg) {
		fprintf(stderr, "   %s\n", err);
		return;
	}
	CHECK_STR(cfg->listen_host, "127.0.0.1");
	CHECK(cfg->listen_port == 8080);
	CHECK(!cfg->tls_enabled && cfg->tls_cert_file == NULL);
	CHECK(cfg->n_keys == 0);
	CHECK(cfg->upstream_ca_file == NULL);
	CHECK(cfg->upstream_connections == 2);
	CHECK(cfg->upstream_ping_interval_s == 60);
	CHECK(cfg->upstream_request_timeout_ms == 5000);
	check_abs(cfg->registry_path, "pushgw.db");
	CHECK(cfg->registry_url == NULL);
	CHECK(cfg->max_body_bytes == 65536);
	CHECK(cfg->max_devices_per_wake == 100);
	CHECK(cfg->wakes_per_second_per_key == 200);
	CHECK(cfg->max_pending_callbacks_per_key == 1000);
	CHECK(cfg->shutdown_grace_s == 10);
	CHECK(cfg->log_level == PGW_LOG_INFO);
	CHECK(!cfg->log_text);
	app = config_app_find(cfg, "droid");
	CHECK(app != NULL);
	if (app) {
		CHECK(!app->apns.enabled && app->fcm.enabled);
		CHECK_STR(app->fcm.url, "https://fcm.googleapis.com");
		CHECK_STR(app->fcm.token_uri, "https://oauth2.googleapis.com/token");
		CHECK(app->fcm.sender_id == NULL);
		CHECK(app->payload == PGW_PAYLOAD_PUSHGW);
		CHECK_STR(app->strings.call, "IC_MSG");
		CHECK_STR(app->strings.missed, "IC_MISSED");
		CHECK_STR(app->strings.answered_elsewhere, "IC_ANSWERED_ELSEWHERE");
		CHECK_STR(app->strings.declined_elsewhere, "IC_DECLINED_ELSEWHERE");
		CHECK_STR(app->strings.sound, "");
		CHECK(app->ring_repeat_s == 0);
		CHECK(!app->voip_cancel); /* cancels to VoIP-only iPhones are skipped */
	}
	config_free(cfg);
}

static void test_variants(void)
{
	char err[512];
	pgw_config *cfg = NULL;

	TEST("IPv6 listen address and a postgres registry url");
	clear_env();
	write_config("{\"listen\": \"[::1]:9000\", \"registry\": {\"url\": \"postgresql://db/pushgw\"}}",
		     "registry.path tls");
	CHECK(config_load(CONF, &cfg, err, sizeof err) == PGW_OK);
	if (cfg) {
		CHECK_STR(cfg->listen_host, "::1");
		CHECK(cfg->listen_port == 9000);
		CHECK_STR(cfg->registry_url, "postgresql://db/pushgw");
		CHECK(cfg->registry_path == NULL);
		CHECK(!cfg->tls_enabled);
	}
	config_free(cfg);

	TEST("environment overrides win over the file");
	setenv("PUSHGW_LISTEN", "[::]:9090", 1);
	setenv("PUSHGW_LOG_LEVEL", "debug", 1);
	setenv("PUSHGW_REGISTRY_PATH", "/var/lib/pushgw/reg.db", 1);
	CHECK(config_load(CONF, &cfg, err, sizeof err) == PGW_OK);
	if (cfg) {
		CHECK_STR(cfg->listen_host, "::");
		CHECK(cfg->listen_port == 9090);
		CHECK(cfg->log_level == PGW_LOG_DEBUG);
		/* the file names a shared database: the image's default file
		 * path must not quietly replace it */
		CHECK_STR(cfg->registry_url, "postgresql://db/pushgw");
		CHECK(cfg->registry_path == NULL);
	}
	config_free(cfg);

	TEST("PUSHGW_REGISTRY_PATH moves a file registry");
	write_config(NULL, NULL);
	CHECK(config_load(CONF, &cfg, err, sizeof err) == PGW_OK);
	if (cfg) {
		CHECK_STR(cfg->registry_path, "/var/lib/pushgw/reg.db");
		CHECK(cfg->registry_url == NULL);
	}
	config_free(cfg);

	TEST("PUSHGW_REGISTRY_URL replaces a file registry, whatever the path says");
	setenv("PUSHGW_REGISTRY_URL", "postgres://db2/pushgw", 1);
	CHECK(config_load(CONF, &cfg, err, sizeof err) == PGW_OK);
	if (cfg) {
		CHECK_STR(cfg->registry_url, "postgres://db2/pushgw");
		CHECK(cfg->registry_path == NULL);
	}
	config_free(cfg);
	clear_env();
}

/* ---- errors: one per class ---- */

typedef struct ecase {
	const char *name;
	const char *patch; /* merged into the base config */
	const char *del;   /* space-separated dotted paths to remove */
	const char *env, *env_value;
	const char *want; /* the message after "conf/pushgw.json: " starts so */
	const char *also; /* and contains this, when set */
} ecase;

static const ecase ecases[] = {
	{ "sip listen with an unknown transport", "{\"sip\": {\"listen\": [\"sctp:0.0.0.0:5060\"], \"public_host\": \"p.example.com\", \"backend\": \"sip:pbx.example.com\"}}", NULL, NULL, NULL,
	  "sip.listen[0]: expected \"udp:HOST:PORT\"", NULL },
	{ "sip without listen", "{\"sip\": {\"public_host\": \"p.example.com\", \"backend\": \"sip:pbx.example.com\"}}", NULL, NULL, NULL,
	  "sip.listen: expected an array", NULL },
	{ "sip backend not a SIP URI", "{\"sip\": {\"listen\": [\"udp:127.0.0.1:0\"], \"public_host\": \"p.example.com\", \"backend\": \"http://pbx\"}}", NULL, NULL, NULL,
	  "sip.backend: expected the PBX's SIP URI", NULL },
	{ "sip without public_host", "{\"sip\": {\"listen\": [\"udp:127.0.0.1:0\"], \"backend\": \"sip:pbx.example.com\"}}", NULL, NULL, NULL,
	  "sip.public_host: expected the host name", NULL },
	{ "sip backend_sources not a CIDR", "{\"sip\": {\"listen\": [\"udp:127.0.0.1:0\"], \"public_host\": \"p.example.com\", \"backend\": \"sip:pbx.example.com\", \"backend_sources\": [\"10.0.0.0/33\"]}}", NULL, NULL, NULL,
	  "sip.backend_sources[0]: expected an address or CIDR", NULL },
	{ "sip app that is not configured", "{\"sip\": {\"listen\": [\"udp:127.0.0.1:0\"], \"public_host\": \"p.example.com\", \"backend\": \"sip:pbx.example.com\", \"app\": \"nope\"}}", NULL, NULL, NULL,
	  "sip.app: expected the name of an app", NULL },
	{ "sip tls listener without sip.tls", "{\"sip\": {\"listen\": [\"tls:127.0.0.1:0\"], \"public_host\": \"p.example.com\", \"backend\": \"sip:pbx.example.com\"}}", NULL, NULL, NULL,
	  "sip.tls: expected {", NULL },
	{ "sip ring_timeout_s out of range", "{\"sip\": {\"listen\": [\"udp:127.0.0.1:0\"], \"public_host\": \"p.example.com\", \"backend\": \"sip:pbx.example.com\", \"ring_timeout_s\": 0}}", NULL, NULL, NULL,
	  "sip.ring_timeout_s: expected an integer from 1 to 600", NULL },
	{ "unknown top-level field", "{\"listn\": \"x\"}", NULL, NULL, NULL,
	  "listn: unknown field", "listen" },
	{ "unknown section field", "{\"upstream\": {\"conections\": 3}}", NULL, NULL, NULL,
	  "upstream.conections: unknown field", "connections" },
	{ "listen without a port", "{\"listen\": \"localhost\"}", NULL, NULL, NULL,
	  "listen: expected \"host:port\"", NULL },
	{ "unbracketed IPv6 listen", "{\"listen\": \"::1:8080\"}", NULL, NULL, NULL,
	  "listen: an IPv6 address needs brackets", NULL },
	{ "connections out of range", "{\"upstream\": {\"connections\": 0}}", NULL, NULL, NULL,
	  "upstream.connections: expected an integer from 1 to 64", NULL },
	{ "connections as a string", "{\"upstream\": {\"connections\": \"2\"}}", NULL, NULL, NULL,
	  "upstream.connections: expected an integer from 1 to 64", NULL },
	{ "ping interval too short", "{\"upstream\": {\"ping_interval_s\": 1}}", NULL, NULL, NULL,
	  "upstream.ping_interval_s: expected an integer from 5 to 3600", NULL },
	{ "request timeout too long", "{\"upstream\": {\"request_timeout_ms\": 60001}}", NULL, NULL,
	  NULL, "upstream.request_timeout_ms: expected an integer from 100 to 60000", NULL },
	{ "missing upstream CA file", "{\"upstream\": {\"ca_file\": \"nope.pem\"}}", NULL, NULL, NULL,
	  "upstream.ca_file: cannot read ", "nope.pem: No such file or directory" },
	{ "short team id", "{\"apps\": {\"phone\": {\"apns\": {\"team_id\": \"TEAM\"}}}}", NULL,
	  NULL, NULL, "apps.phone.apns.team_id: expected a 10-character", NULL },
	{ "lower-case key id", "{\"apps\": {\"phone\": {\"apns\": {\"key_id\": \"key1234567\"}}}}",
	  NULL, NULL, NULL, "apps.phone.apns.key_id: expected a 10-character", NULL },
	{ "missing team id with token auth", NULL, "apps.phone.apns.team_id", NULL, NULL,
	  "apps.phone.apns.team_id: required for token auth", NULL },
	{ "missing .p8 file", "{\"apps\": {\"phone\": {\"apns\": {\"key_file\": \"missing.p8\"}}}}",
	  NULL, NULL, NULL, "apps.phone.apns.key_file: cannot read ",
	  "/conf/missing.p8: No such file or directory" },
	{ "world-readable .p8 refused",
	  "{\"apps\": {\"phone\": {\"apns\": {\"key_file\": \"AuthKey-open.p8\"}}}}", NULL, NULL,
	  NULL, "apps.phone.apns.key_file: ", "readable by other users" },
	/* the tests run as the files' owner (root or not): no group access */
	{ "group-readable .p8 refused, with the chmod to run",
	  "{\"apps\": {\"phone\": {\"apns\": {\"key_file\": \"AuthKey-group.p8\"}}}}", NULL, NULL,
	  NULL, "apps.phone.apns.key_file: ", "AuthKey-group.p8 is readable by its group (mode 0640): run chmod 600 " },
	{ "world-readable TLS key refused",
	  "{\"tls\": {\"key_file\": \"server-open.key\"}}", NULL, NULL,
	  NULL, "tls.key_file: ", "server-open.key is readable by other users (mode 0644): run chmod 600 " },
	{ "group-writable APNs certificate key refused",
	  "{\"apps\": {\"work\": {\"apns\": {\"cert_key_file\": \"apns-groupw.key\"}}}}", NULL, NULL,
	  NULL, "apps.work.apns.cert_key_file: ", "apns-groupw.key is writable by its group (mode 0620)" },
	{ "RSA key as .p8", "{\"apps\": {\"phone\": {\"apns\": {\"key_file\": \"rsa.pem\"}}}}",
	  NULL, NULL, NULL, "apps.phone.apns.key_file: ", "not an EC P-256 key" },
	{ "P-384 key as .p8", "{\"apps\": {\"phone\": {\"apns\": {\"key_file\": \"p384.p8\"}}}}",
	  NULL, NULL, NULL, "apps.phone.apns.key_file: ", "not an EC P-256 key" },
	{ "garbage .p8", "{\"apps\": {\"phone\": {\"apns\": {\"key_file\": \"garbage.p8\"}}}}",
	  NULL, NULL, NULL, "apps.phone.apns.key_file: ", "not a PEM private key" },
	{ "token and certificate auth together",
	  "{\"apps\": {\"phone\": {\"apns\": {\"cert_file\": \"apns.pem\", \"cert_key_file\": \"apns.key\"}}}}",
	  NULL, NULL, NULL, "apps.phone.apns: use token auth", "not both" },
	{ "neither token nor certificate auth", NULL,
	  "apps.phone.apns.team_id apps.phone.apns.key_id apps.phone.apns.key_file", NULL, NULL,
	  "apps.phone.apns: expected team_id, key_id and key_file", NULL },
	{ "certificate without its key", NULL, "apps.work.apns.cert_key_file", NULL, NULL,
	  "apps.work.apns.cert_key_file: required for certificate auth", NULL },
	{ "certificate key that does not match",
	  "{\"apps\": {\"work\": {\"apns\": {\"cert_key_file\": \"AuthKey.p8\"}}}}", NULL, NULL,
	  NULL, "apps.work.apns.cert_key_file: ", "is not the private key of" },
	{ "missing bundle id", NULL, "apps.phone.apns.bundle_id", NULL, NULL,
	  "apps.phone.apns.bundle_id: required", NULL },
	{ "bundle id with .voip",
	  "{\"apps\": {\"phone\": {\"apns\": {\"bundle_id\": \"com.example.phone.voip\"}}}}", NULL,
	  NULL, NULL, "apps.phone.apns.bundle_id: expected the bundle id without .voip", NULL },
	{ "bad APNs environment",
	  "{\"apps\": {\"phone\": {\"apns\": {\"environment\": \"development\"}}}}", NULL, NULL,
	  NULL, "apps.phone.apns.environment: expected \"production\" or \"sandbox\"", NULL },
	{ "APNs url not https",
	  "{\"apps\": {\"phone\": {\"apns\": {\"url\": \"http://127.0.0.1:8443\"}}}}", NULL, NULL,
	  NULL, "apps.phone.apns.url: expected an https:// URL", NULL },
	{ "unknown APNs field", "{\"apps\": {\"phone\": {\"apns\": {\"topic\": \"x\"}}}}", NULL,
	  NULL, NULL, "apps.phone.apns.topic: unknown field", NULL },
	{ "missing service-account file",
	  "{\"apps\": {\"phone\": {\"fcm\": {\"service_account_file\": \"nope.json\"}}}}", NULL,
	  NULL, NULL, "apps.phone.fcm.service_account_file: cannot read ", "nope.json" },
	{ "world-readable service account",
	  "{\"apps\": {\"phone\": {\"fcm\": {\"service_account_file\": \"sa-open.json\"}}}}", NULL,
	  NULL, NULL, "apps.phone.fcm.service_account_file: ", "readable by other users" },
	{ "group-readable service account",
	  "{\"apps\": {\"phone\": {\"fcm\": {\"service_account_file\": \"sa-group.json\"}}}}", NULL,
	  NULL, NULL, "apps.phone.fcm.service_account_file: ", "readable by its group (mode 0640)" },
	{ "service account without project_id",
	  "{\"apps\": {\"phone\": {\"fcm\": {\"service_account_file\": \"sa-noproj.json\"}}}}",
	  NULL, NULL, NULL, "apps.phone.fcm.service_account_file: ",
	  "sa-noproj.json: project_id: expected a non-empty string" },
	{ "service account with an EC key",
	  "{\"apps\": {\"phone\": {\"fcm\": {\"service_account_file\": \"sa-ec.json\"}}}}", NULL,
	  NULL, NULL, "apps.phone.fcm.service_account_file: ", "private_key: expected an RSA" },
	{ "non-digit sender id", "{\"apps\": {\"phone\": {\"fcm\": {\"sender_id\": \"abc\"}}}}",
	  NULL, NULL, NULL, "apps.phone.fcm.sender_id: expected the Firebase sender id", NULL },
	{ "app with neither apns nor fcm", "{\"apps\": {\"empty\": {\"payload\": \"pushgw\"}}}",
	  NULL, NULL, NULL, "apps.empty: expected an apns or fcm section", NULL },
	{ "bad app name", "{\"apps\": {\"bad name!\": {\"fcm\": {\"service_account_file\": \"sa.json\"}}}}",
	  NULL, NULL, NULL, "apps.bad name!: expected an app name", NULL },
	{ "no apps", NULL, "apps.phone apps.work", NULL, NULL,
	  "apps: expected at least one app", NULL },
	{ "unknown payload profile", "{\"apps\": {\"phone\": {\"payload\": \"flexisip\"}}}", NULL,
	  NULL, NULL, "apps.phone.payload: expected \"pushgw\" or \"linphone\"", NULL },
	{ "unknown strings field", "{\"apps\": {\"phone\": {\"strings\": {\"ringtone\": \"x\"}}}}",
	  NULL, NULL, NULL, "apps.phone.strings.ringtone: unknown field", NULL },
	{ "ring_repeat_s too large", "{\"apps\": {\"phone\": {\"ring_repeat_s\": 61}}}", NULL, NULL,
	  NULL, "apps.phone.ring_repeat_s: expected an integer from 0 to 60", NULL },
	{ "voip_cancel as a string", "{\"apps\": {\"phone\": {\"voip_cancel\": \"true\"}}}", NULL,
	  NULL, NULL, "apps.phone.voip_cancel: expected true or false", NULL },
	{ "voip_cancel as a number", "{\"apps\": {\"phone\": {\"voip_cancel\": 1}}}", NULL, NULL,
	  NULL, "apps.phone.voip_cancel: expected true or false", NULL },
	{ "misspelt voip_cancel", "{\"apps\": {\"phone\": {\"voip_cancels\": true}}}", NULL, NULL,
	  NULL, "apps.phone.voip_cancels: unknown field", "voip_cancel" },
	{ "plaintext API key", "{\"api_keys\": [{\"name\": \"a\", \"key\": \"hunter2-plaintext\"}]}",
	  NULL, NULL, NULL, "api_keys[0].key: a plaintext key is not accepted", "pushgw hash-key" },
	{ "env: key with the variable unset",
	  "{\"api_keys\": [{\"name\": \"a\", \"key\": \"env:PUSHGW_TEST_UNSET\"}]}", NULL, NULL, NULL,
	  "api_keys[0].key: environment variable PUSHGW_TEST_UNSET is not set", NULL },
	{ "short sha256 hash", "{\"api_keys\": [{\"name\": \"a\", \"key\": \"sha256:9f86\"}]}", NULL,
	  NULL, NULL, "api_keys[0].key: expected sha256: followed by 64 hex digits", NULL },
	{ "unknown scope",
	  "{\"api_keys\": [{\"name\": \"a\", \"key\": \"" KEY_TEST_HASH "\", \"scopes\": [\"wake\", \"admin\"]}]}",
	  NULL, NULL, NULL, "api_keys[0].scopes[1]: expected \"wake\" or \"register\"", NULL },
	{ "key naming an unknown app",
	  "{\"api_keys\": [{\"name\": \"a\", \"key\": \"" KEY_TEST_HASH "\", \"apps\": [\"phone\", \"nope\"]}]}",
	  NULL, NULL, NULL, "api_keys[0].apps[1]: expected the name of an app", NULL },
	{ "duplicate key names",
	  "{\"api_keys\": [{\"name\": \"a\", \"key\": \"" KEY_TEST_HASH "\"},"
	  " {\"name\": \"a\", \"key\": \"env:PUSHGW_TEST_KEY\"}]}",
	  NULL, NULL, NULL, "api_keys[1].name: duplicate key name \"a\"", NULL },
	{ "duplicate key hashes",
	  "{\"api_keys\": [{\"name\": \"a\", \"key\": \"" KEY_TEST_HASH "\"},"
	  " {\"name\": \"b\", \"key\": \"" KEY_TEST_HASH "\"}]}",
	  NULL, NULL, NULL, "api_keys[1].key: same key as api_keys[0]", NULL },
	{ "registry path and url together",
	  "{\"registry\": {\"url\": \"postgresql://db/pushgw\"}}", NULL, NULL, NULL,
	  "registry: set registry.path or registry.url, not both", NULL },
	{ "registry url not postgres", "{\"registry\": {\"url\": \"mysql://db\"}}", "registry.path",
	  NULL, NULL, "registry.url: expected a postgresql:// or postgres:// URL", NULL },
	{ "max_body_bytes too small", "{\"limits\": {\"max_body_bytes\": 100}}", NULL, NULL, NULL,
	  "limits.max_body_bytes: expected an integer from 1024 to 16777216", NULL },
	{ "max_devices_per_wake zero", "{\"limits\": {\"max_devices_per_wake\": 0}}", NULL, NULL,
	  NULL, "limits.max_devices_per_wake: expected an integer from 1 to 10000", NULL },
	{ "negative rate", "{\"limits\": {\"wakes_per_second_per_key\": -1}}", NULL, NULL, NULL,
	  "limits.wakes_per_second_per_key: expected an integer from 0", NULL },
	{ "no room for callbacks", "{\"limits\": {\"max_pending_callbacks_per_key\": 0}}", NULL, NULL,
	  NULL, "limits.max_pending_callbacks_per_key: expected an integer from 1 to 1000000", NULL },
	{ "shutdown grace too long", "{\"shutdown_grace_s\": 301}", NULL, NULL, NULL,
	  "shutdown_grace_s: expected an integer from 0 to 300", NULL },
	{ "bad log level", "{\"log\": {\"level\": \"verbose\"}}", NULL, NULL, NULL,
	  "log.level: expected debug, info, warn or error", NULL },
	{ "bad log format", "{\"log\": {\"format\": \"xml\"}}", NULL, NULL, NULL,
	  "log.format: expected \"json\" or \"text\"", NULL },
	{ "tls cert without key", NULL, "tls.key_file", NULL, NULL,
	  "tls.key_file: expected a path", NULL },
	{ "tls cert missing", "{\"tls\": {\"cert_file\": \"none.pem\"}}", NULL, NULL, NULL,
	  "tls.cert_file: cannot read ", "none.pem" },
	{ "bad PUSHGW_LISTEN", NULL, NULL, "PUSHGW_LISTEN", "8080",
	  "environment variable PUSHGW_LISTEN: expected \"host:port\"", NULL },
	{ "bad PUSHGW_LOG_LEVEL", NULL, NULL, "PUSHGW_LOG_LEVEL", "loud",
	  "environment variable PUSHGW_LOG_LEVEL: expected debug", NULL },
	{ "bad PUSHGW_REGISTRY_URL", NULL, NULL, "PUSHGW_REGISTRY_URL", "mysql://db/pushgw",
	  "environment variable PUSHGW_REGISTRY_URL: expected a postgresql://", NULL },
};

static void run_ecase(const ecase *c)
{
	char err[1024], want[512];
	pgw_config *cfg = (pgw_config *)1;
	pgw_err rc;

	TEST(c->name);
	clear_env();
	if (c->env)
		setenv(c->env, c->env_value, 1);
	write_config(c->patch, c->del);
	rc = config_load(CONF, &cfg, err, sizeof err);
	CHECK(rc == PGW_ECONFIG);
	CHECK(cfg == NULL);
	snprintf(want, sizeof want, "%s: %s", CONF, c->want);
	if (strncmp(err, want, strlen(want)) != 0 || (c->also && !has(err, c->also))) {
		CHECK(!"error names the file, the field and what was expected");
		fprintf(stderr, "   got:  %s\n   want: %s … %s\n", err, want,
			c->also ? c->also : "");
	}
	CHECK(strchr(err, '\n') == NULL);
	if (c->patch && has(c->patch, "hunter2"))
		CHECK(!has(err, "hunter2"));
	config_free(cfg == (pgw_config *)1 ? NULL : cfg);
}

/* The policy apart from the file system: who owns the key and who runs. */
static void test_secret_mode_policy(void)
{
	TEST("secret files: nothing for group or others, but root may hand a key to a service's group");
	CHECK(pgw_secret_mode_allowed(0600, 1000, 1000));
	CHECK(pgw_secret_mode_allowed(0400, 1000, 1000));
	CHECK(pgw_secret_mode_allowed(0700, 0, 0));
	CHECK(!pgw_secret_mode_allowed(0640, 1000, 1000)); /* own key, group-readable */
	CHECK(!pgw_secret_mode_allowed(0604, 1000, 1000));
	CHECK(!pgw_secret_mode_allowed(0602, 1000, 1000));
	CHECK(!pgw_secret_mode_allowed(0610, 1000, 1000));
	CHECK(!pgw_secret_mode_allowed(0640, 0, 0));       /* running as root: no group either */
	CHECK(pgw_secret_mode_allowed(0640, 0, 10001));    /* root:pushgw 0640 (systemd) */
	CHECK(pgw_secret_mode_allowed(0440, 0, 10001));    /* Kubernetes secret, fsGroup */
	CHECK(!pgw_secret_mode_allowed(0660, 0, 10001));   /* the group could rewrite it */
	CHECK(!pgw_secret_mode_allowed(0644, 0, 10001));
	CHECK(!pgw_secret_mode_allowed(0641, 0, 10001));
	CHECK(!pgw_secret_mode_allowed(0640, 2000, 10001)); /* another user's key */
}

static void test_file_level_errors(void)
{
	char err[512];
	pgw_config *cfg = NULL;

	TEST("JSON syntax error names the line");
	clear_env();
	write_file(CONF, "{\n  \"listen\": \"127.0.0.1:8080\",\n  oops\n}\n", 0600);
	CHECK(config_load(CONF, &cfg, err, sizeof err) == PGW_ECONFIG);
	CHECK(has(err, CONF ": line 3"));

	TEST("duplicate JSON keys are refused");
	write_file(CONF, "{\"listen\": \"127.0.0.1:1\", \"listen\": \"127.0.0.1:2\"}", 0600);
	CHECK(config_load(CONF, &cfg, err, sizeof err) == PGW_ECONFIG);
	CHECK(has(err, "duplicate"));

	TEST("top level must be an object");
	write_file(CONF, "[1, 2]", 0600);
	CHECK(config_load(CONF, &cfg, err, sizeof err) == PGW_ECONFIG);
	CHECK(has(err, CONF ": expected a JSON object"));

	TEST("a missing config file names the path as given");
	CHECK(config_load("conf/absent.json", &cfg, err, sizeof err) == PGW_ECONFIG);
	CHECK(has(err, "conf/absent.json: cannot read the config file: No such file"));
	CHECK(cfg == NULL);
}

static void test_check_report(void)
{
	char *report = NULL, err[512];
	pgw_config *cfg = NULL;
	int lines = 0;
	const char *p;

	TEST("check reports every independent problem, one per line");
	clear_env();
	write_config("{\"upstream\": {\"connections\": 99}, \"log\": {\"level\": \"loud\"},"
		     " \"apps\": {\"phone\": {\"apns\": {\"team_id\": \"x\"}}},"
		     " \"registry\": {\"url\": \"postgresql://x\"}}",
		     NULL);
	CHECK(config_check(CONF, &report) == PGW_ECONFIG);
	CHECK(has(report, CONF ": upstream.connections: "));
	CHECK(has(report, CONF ": log.level: "));
	CHECK(has(report, CONF ": apps.phone.apns.team_id: "));
	CHECK(has(report, CONF ": registry: set registry.path or registry.url"));
	for (p = report; p && *p; p++)
		lines += *p == '\n';
	CHECK(lines == 4);

	TEST("load stops at one line: the first problem check found");
	CHECK(config_load(CONF, &cfg, err, sizeof err) == PGW_ECONFIG);
	CHECK(strchr(err, '\n') == NULL);
	CHECK(report && strncmp(report, err, strlen(err)) == 0 &&
	      report[strlen(err)] == '\n');
	free(report);

	TEST("check of a good config is clean");
	write_config(NULL, NULL);
	CHECK(config_check(CONF, &report) == PGW_OK);
	CHECK(report && report[0] == '\0');
	free(report);
}

static void test_hash_key(void)
{
	char out[72];

	TEST("hash-key of \"test\" is the known SHA-256 vector");
	config_hash_key("test", out, sizeof out);
	CHECK_STR(out, KEY_TEST_HASH);
	config_hash_key("", out, sizeof out);
	CHECK_STR(out, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_sip_section(void)
{
	pgw_config *cfg = NULL;
	char err[512];
	unsigned char in[4] = { 203, 0, 113, 77 }, out[4] = { 203, 0, 114, 1 };

	TEST("no sip section: no SIP edge");
	clear_env();
	write_config(NULL, NULL);
	CHECK(config_load(CONF, &cfg, err, sizeof err) == PGW_OK);
	CHECK(cfg && !cfg->sip.enabled);
	config_free(cfg);

	TEST("a sip section loads with every value, ring_timeout_s defaults to 30");
	write_config("{\"sip\": {\"listen\": [\"udp:0.0.0.0:5060\", \"tcp:[::1]:0\"],"
		     " \"public_host\": \"push.example.com\","
		     " \"backend\": \"sip:pbx.example.com:5060;transport=udp\","
		     " \"backend_sources\": [\"203.0.113.0/24\", \"2001:db8::1\"], \"app\": \"phone\"}}",
		     NULL);
	cfg = NULL;
	CHECK(config_load(CONF, &cfg, err, sizeof err) == PGW_OK);
	if (!cfg) {
		fprintf(stderr, "   %s\n", err);
		return;
	}
	CHECK(cfg->sip.enabled);
	CHECK(cfg->sip.n_listen == 2);
	CHECK(cfg->sip.listen[0].transport == PGW_SIP_UDP);
	CHECK_STR(cfg->sip.listen[0].host, "0.0.0.0");
	CHECK(cfg->sip.listen[0].port == 5060);
	CHECK(cfg->sip.listen[1].transport == PGW_SIP_TCP);
	CHECK_STR(cfg->sip.listen[1].host, "::1");
	CHECK(cfg->sip.listen[1].port == 0);
	CHECK_STR(cfg->sip.public_host, "push.example.com");
	CHECK_STR(cfg->sip.backend, "sip:pbx.example.com:5060;transport=udp");
	CHECK_STR(cfg->sip.app, "phone");
	CHECK(cfg->sip.ring_timeout_s == 30);
	CHECK(cfg->sip.n_backend_sources == 2);
	CHECK(config_cidr_contains(&cfg->sip.backend_sources[0], AF_INET, in));
	CHECK(!config_cidr_contains(&cfg->sip.backend_sources[0], AF_INET, out));
	CHECK(!config_cidr_contains(&cfg->sip.backend_sources[1], AF_INET, in));
	config_free(cfg);
}

int main(void)
{
	size_t i;

	make_fixtures();
	test_hash_key();
	test_full_config();
	test_defaults();
	test_variants();
	test_sip_section();
	test_secret_mode_policy();
	for (i = 0; i < sizeof ecases / sizeof ecases[0]; i++)
		run_ecase(&ecases[i]);
	test_file_level_errors();
	test_check_report();
	config_free(NULL);
	remove_fixtures();
	return check_summary("config");
}
