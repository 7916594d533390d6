/* Unit tests for the registry, run twice: against a SQLite file in a temp
 * folder and against a throw-away PostgreSQL server (scripts/
 * pg-test-cluster.sh; skipped, saying why, only when it cannot start).
 * Both get the same suite — round trips, moves, pruning rules, SIP-edge
 * bindings and their device rows, concurrency across two handles, kill -9
 * of a registering child — plus what only one has: SQLite file modes and
 * migrations; PostgreSQL migrations, an outage with recovery in the same
 * process, and no connection leak. */
#include <dirent.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "pushgw/log.h"
#include "pushgw/registry.h"
#include "pushgw/util.h"

#define V1 "4f7a0123456789abcdef0123456789abcdef0123456789abcdef0123456789c2"
#define V2 "5e6b0123456789abcdef0123456789abcdef0123456789abcdef0123456789d3"
#define V3 "6d7c0123456789abcdef0123456789abcdef0123456789abcdef0123456789e4"
#define V4 "7c8d0123456789abcdef0123456789abcdef0123456789abcdef0123456789f5"
#define R1 "9c00aaaabbbbccccddddeeeeffff000011112222333344445555666677778801"
#define R2 "8d11aaaabbbbccccddddeeeeffff000011112222333344445555666677778802"
#define R3 "7e22aaaabbbbccccddddeeeeffff000011112222333344445555666677778803"
#define V5 "8b9e0123456789abcdef0123456789abcdef0123456789abcdef0123456789a6"
#define R4 "6f33aaaabbbbccccddddeeeeffff000011112222333344445555666677778804"
/* Tokens of SIP-edge bindings: no other test uses them (a put would move them). */
#define BV1 "b1b10123456789abcdef0123456789abcdef0123456789abcdef0123456789b1"
#define BV2 "b2b20123456789abcdef0123456789abcdef0123456789abcdef0123456789b2"
#define BV3 "b3b30123456789abcdef0123456789abcdef0123456789abcdef0123456789b3"
#define BR1 "b4b4aaaabbbbccccddddeeeeffff000011112222333344445555666677778804"
#define BFCM "dGVzdA:APA91bH-x_y9Zz_binding"
#define EDGE "push.example.com"
#define EDGE2 "push2.example.com"
#define FCM1 "dGVzdA:APA91bH-x_y9Zz_first"
#define FCM2 "dGVzdA:APA91bH-x_y9Zz_second"

#define THREADS 4
#define PER_THREAD 1000
/* Conflicting registrations: two handles ("replicas"), each this many puts
 * spread over a few threads, all drawn from small pools of names. */
#define RACE_PUTS 500
#define RACE_THREADS 4
#define RACE_TOKENS 8
#define RACE_EXTS 2
#define RACE_IDS 4

static pgw_app_conf apps[2];
static pgw_config cfg;
static char tmpdir[] = "/tmp/pgw-registry-XXXXXX";
static char db_path[256];

/* The store under test: a SQLite file or a PostgreSQL database. */
typedef struct store_fixture {
	const char *name;
	void (*point_main)(void);          /* cfg at the main store */
	long long (*raw_count)(void);      /* rows, counted behind the registry */
} store_fixture;
static const store_fixture *fx;

static void setup_apps(void)
{
	apps[0] = (pgw_app_conf){
		.name = "phone",
		.apns = { .enabled = true, .team_id = "TEAM123456",
			  .bundle_id = "com.example.phone",
			  .environment = PGW_ENV_PRODUCTION },
		.fcm = { .enabled = true, .project_id = "example-phone" },
	};
	apps[1] = (pgw_app_conf){
		.name = "droid",
		.fcm = { .enabled = true, .project_id = "droid-proj" },
	};
	cfg.path = "pushgw.json";
	cfg.apps = apps;
	cfg.n_apps = 2;
}

static void use_file(const char *path)
{
	cfg.registry_path = (char *)path;
	cfg.registry_url = NULL;
}

static void use_url(const char *url)
{
	cfg.registry_path = NULL;
	cfg.registry_url = (char *)url;
}

static pgw_target apns_target(const char *voip, const char *remote)
{
	return (pgw_target){ .provider = PGW_PROVIDER_APNS, .app = &apps[0],
			     .token = (char *)voip, .remote_token = (char *)remote };
}

static pgw_target fcm_target(const pgw_app_conf *app, const char *token)
{
	return (pgw_target){ .provider = PGW_PROVIDER_FCM, .app = app,
			     .token = (char *)token };
}

static registry *open_or_die(void)
{
	char err[512] = "";
	registry *reg = NULL;
	pgw_err rc = registry_open(&cfg, &reg, err, sizeof err);

	if (rc != PGW_OK) {
		fprintf(stderr, "registry_open: %s (%s)\n", pgw_strerror(rc), err);
		exit(1);
	}
	return reg;
}

static uint64_t count_of(registry *reg)
{
	uint64_t n = UINT64_MAX;

	CHECK(registry_count(reg, &n) == PGW_OK);
	return n;
}

static size_t list_len(registry *reg, const char *ext)
{
	registry_device *d = NULL;
	size_t n = 0;

	CHECK(registry_list(reg, ext, &d, &n) == PGW_OK);
	registry_devices_free(d, n);
	return n;
}

static bool has_device(registry *reg, const char *ext, const char *id)
{
	registry_device *d = NULL;
	pgw_err rc = registry_get(reg, ext, id, &d);

	registry_devices_free(d, d ? 1 : 0);
	return rc == PGW_OK;
}

static bool has_binding(registry *reg, const char *id);

/* ---- SQLite helpers ---- */

/* One integer from a query run through a separate connection. */
static long long query_int(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	long long v = -1;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* Run SQL through a separate connection (creating the file). */
static bool run_sql(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	bool ok = sqlite3_open(path, &db) == SQLITE_OK &&
		  sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK;

	sqlite3_close(db);
	return ok;
}

/* True when a PRAGMA's text value is want. */
static bool pragma_is(const char *path, const char *pragma, const char *want)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	bool same = false;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, pragma, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		same = strcmp((const char *)sqlite3_column_text(st, 0), want) == 0;
	sqlite3_finalize(st);
	sqlite3_close(db);
	return same;
}

static void sqlite_point_main(void)
{
	use_file(db_path);
}

static long long sqlite_raw_count(void)
{
	return query_int(db_path, "SELECT count(*) FROM device");
}

static const store_fixture sqlite_fixture = { "sqlite", sqlite_point_main, sqlite_raw_count };

static void test_ids(void)
{
	char long_id[200];

	TEST("ids: 1..128 chars of [A-Za-z0-9._~+@:=-]");
	CHECK(registry_valid_extension("1001"));
	CHECK(registry_valid_extension("alice@example.com"));
	CHECK(registry_valid_device_id("urn:uuid:6f1c-aa.b_c~d+e=f"));
	CHECK(!registry_valid_extension(""));
	CHECK(!registry_valid_extension(NULL));
	CHECK(!registry_valid_device_id("a/b"));
	CHECK(!registry_valid_device_id("a b"));
	CHECK(!registry_valid_device_id("caf\xc3\xa9"));
	CHECK(!registry_valid_extension("100%1"));
	memset(long_id, 'x', sizeof long_id);
	long_id[128] = '\0';
	CHECK(registry_valid_device_id(long_id));
	long_id[128] = 'x';
	long_id[129] = '\0';
	CHECK(!registry_valid_device_id(long_id));
}

static void test_sqlite_migration(void)
{
	char path[300], err[512] = "";
	registry *reg = NULL;
	long long schema;
	struct stat st;
	FILE *f;

	TEST("sqlite migration: an empty file gets the schema; an up-to-date one is left alone");
	snprintf(path, sizeof path, "%s/empty.db", tmpdir);
	f = fopen(path, "w");
	CHECK(f != NULL);
	if (f)
		fclose(f);
	use_file(path);
	reg = open_or_die();
	registry_close(reg);
	CHECK(query_int(path, "PRAGMA user_version") == 2);
	schema = query_int(path, "PRAGMA schema_version");
	CHECK(schema > 0);
	CHECK(pragma_is(path, "PRAGMA journal_mode", "wal"));
	reg = open_or_die();
	registry_close(reg);
	CHECK(query_int(path, "PRAGMA schema_version") == schema);
	CHECK(query_int(path, "PRAGMA user_version") == 2);

	TEST("sqlite migration: a new file is private to its owner");
	snprintf(path, sizeof path, "%s/fresh.db", tmpdir);
	use_file(path);
	reg = open_or_die();
	CHECK(stat(path, &st) == 0 && (st.st_mode & 077) == 0);
	registry_close(reg);

	TEST("sqlite migration: a file from a newer release is refused, naming the field");
	CHECK(run_sql(path, "PRAGMA user_version = 99"));
	CHECK(query_int(path, "PRAGMA user_version") == 99);
	CHECK(registry_open(&cfg, &reg, err, sizeof err) == PGW_ECONFIG);
	CHECK(reg == NULL);
	CHECK(strstr(err, "pushgw.json: registry.path:") == err);
	CHECK(strstr(err, "newer") != NULL);

	TEST("sqlite migration: a file that is not a database is refused");
	snprintf(path, sizeof path, "%s/junk.db", tmpdir);
	f = fopen(path, "w");
	if (f) {
		fputs("this is not an sqlite database, just some text padding it out\n", f);
		fclose(f);
	}
	use_file(path);
	CHECK(registry_open(&cfg, &reg, err, sizeof err) != PGW_OK);
	CHECK(reg == NULL);
	CHECK(strstr(err, "registry.path") != NULL);

	TEST("sqlite migration: a failing step leaves the file as it was");
	snprintf(path, sizeof path, "%s/foreign.db", tmpdir);
	CHECK(run_sql(path, "CREATE TABLE device (x)"));
	use_file(path);
	CHECK(registry_open(&cfg, &reg, err, sizeof err) != PGW_OK);
	CHECK(strstr(err, "schema upgrade to version 1 failed") != NULL);
	CHECK(query_int(path, "PRAGMA user_version") == 0);
	CHECK(query_int(path, "SELECT count(*) FROM sqlite_master") == 1);

	TEST("open: a folder that does not exist is named in the error");
	snprintf(path, sizeof path, "%s/missing/reg.db", tmpdir);
	use_file(path);
	CHECK(registry_open(&cfg, &reg, err, sizeof err) == PGW_EIO);
	CHECK(strstr(err, path) != NULL);
}

/* A file as the release before SIP-edge bindings left it: schema version
 * 1, word for word, holding one device. */
static const char v1_file[] =
	"CREATE TABLE device ("
	"  id INTEGER PRIMARY KEY,"
	"  extension TEXT NOT NULL,"
	"  device_id TEXT NOT NULL,"
	"  provider INTEGER NOT NULL,"
	"  app TEXT NOT NULL,"
	"  token TEXT,"
	"  remote_token TEXT,"
	"  environment INTEGER NOT NULL DEFAULT 0,"
	"  call_str TEXT,"
	"  call_snd TEXT,"
	"  silent INTEGER NOT NULL DEFAULT 0,"
	"  created_at INTEGER NOT NULL,"
	"  updated_at INTEGER NOT NULL);"
	"CREATE UNIQUE INDEX device_by_extension ON device(extension, device_id);"
	"CREATE UNIQUE INDEX device_by_token"
	"  ON device(provider, app, coalesce(token, remote_token));"
	"CREATE INDEX device_by_remote_token ON device(provider, app, remote_token)"
	"  WHERE remote_token IS NOT NULL;"
	"CREATE TABLE device_count (n INTEGER NOT NULL);"
	"INSERT INTO device_count VALUES (0);"
	"CREATE TRIGGER device_added AFTER INSERT ON device"
	"  BEGIN UPDATE device_count SET n = n + 1; END;"
	"CREATE TRIGGER device_removed AFTER DELETE ON device"
	"  BEGIN UPDATE device_count SET n = n - 1; END;"
	"PRAGMA user_version = 1;"
	"PRAGMA journal_mode = WAL;"
	"INSERT INTO device (extension, device_id, provider, app, token, created_at, updated_at)"
	"  VALUES ('8901', 'old-phone', 2, 'droid', 'v1-token', 1000, 1000);";

static void test_sqlite_migration_v1(void)
{
	registry_binding b = { .id = "bM-1", .edge = "push.example.com",
			       .aor = "sip:8901@pbx.example.com", .extension = "8901",
			       .contact = "<sip:8901@203.0.113.5>",
			       .expires_at_ms = pgw_wall_ms() + 60000 };
	pgw_target t = fcm_target(&apps[1], "v1-token");
	char path[300], err[512] = "";
	registry *reg = NULL;
	long long schema;

	TEST("sqlite migration: a version 1 file gains the bindings, its devices intact");
	snprintf(path, sizeof path, "%s/v1.db", tmpdir);
	CHECK(run_sql(path, v1_file));
	CHECK(query_int(path, "PRAGMA user_version") == 1);
	use_file(path);
	reg = open_or_die();
	CHECK(query_int(path, "PRAGMA user_version") == 2);
	CHECK(count_of(reg) == 1);
	CHECK(has_device(reg, "8901", "old-phone"));
	CHECK(registry_binding_put(reg, &b, &t, NULL) == PGW_OK);
	CHECK(!has_device(reg, "8901", "old-phone")); /* the token moved to the binding */
	CHECK(has_device(reg, "8901", "bM-1") && count_of(reg) == 1);
	registry_close(reg);
	schema = query_int(path, "PRAGMA schema_version");
	reg = open_or_die();
	CHECK(has_binding(reg, "bM-1"));
	registry_close(reg);
	CHECK(query_int(path, "PRAGMA schema_version") == schema);
	CHECK(query_int(path, "SELECT n FROM device_count") == 1);

	TEST("sqlite migration: a failing step 2 leaves a version 1 file as it was");
	snprintf(path, sizeof path, "%s/v1-foreign.db", tmpdir);
	CHECK(run_sql(path, v1_file));
	CHECK(run_sql(path, "CREATE TABLE sip_binding (x)"));
	use_file(path);
	CHECK(registry_open(&cfg, &reg, err, sizeof err) != PGW_OK);
	CHECK(strstr(err, "schema upgrade to version 2 failed") != NULL);
	CHECK(query_int(path, "PRAGMA user_version") == 1);
	CHECK(query_int(path, "SELECT count(*) FROM device WHERE device_id = 'old-phone'") == 1);
	CHECK(query_int(path, "SELECT count(*) FROM sqlite_master WHERE name LIKE 'sip_binding%'") ==
	      1);
}

/* ---- SQLite: a batch whose transaction is lost ---- */

typedef struct batch_putter {
	registry *reg;
	const char *id;
	char token[32];
	pgw_err rc;
} batch_putter;

static void *batch_put_run(void *arg)
{
	batch_putter *b = arg;
	pgw_target t = fcm_target(&apps[1], b->token);

	b->rc = registry_put(b->reg, "batch", b->id, &t, NULL);
	return NULL;
}

static void batch_start(batch_putter *b, pthread_t *th, registry *reg, const char *id)
{
	*b = (batch_putter){ .reg = reg, .id = id, .rc = PGW_ESTATE };
	snprintf(b->token, sizeof b->token, "batch-%s", id);
	pthread_create(th, NULL, batch_put_run, b);
	/* Only to queue them in this order; the checks hold in any order. */
	usleep(50000);
}

static void test_sqlite_batch_rollback(void)
{
	static const char *const ids[] = { "first", "a", "b", "boom", "c", "d" };
	enum { N = sizeof ids / sizeof ids[0] };
	batch_putter b[N];
	pthread_t th[N];
	char path[300];
	sqlite3 *hold = NULL;
	registry *reg;
	int i, wrong = 0;

	TEST("sqlite batch: an op that loses the transaction fails alone; its batch-mates "
	     "run again and report what really happened");
	snprintf(path, sizeof path, "%s/batch.db", tmpdir);
	use_file(path);
	reg = open_or_die();
	/* RAISE(ROLLBACK) ends the whole transaction, as a full disk can. */
	CHECK(run_sql(path, "CREATE TRIGGER boom BEFORE INSERT ON device"
			    " WHEN NEW.device_id = 'boom' BEGIN SELECT RAISE(ROLLBACK, 'boom'); END"));
	/* Hold the write lock: the first put waits for it while committing,
	 * the others queue up behind it and go as one batch. */
	CHECK(sqlite3_open(path, &hold) == SQLITE_OK &&
	      sqlite3_exec(hold, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK);
	for (i = 0; i < N; i++)
		batch_start(&b[i], &th[i], reg, ids[i]);
	CHECK(sqlite3_exec(hold, "COMMIT", NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(hold);
	for (i = 0; i < N; i++)
		pthread_join(th[i], NULL);
	for (i = 0; i < N; i++) {
		bool stored = has_device(reg, "batch", ids[i]);

		/* the bug: an op after the lost one committed on its own but
		 * was reported failed */
		wrong += (b[i].rc == PGW_OK) != stored;
		if (strcmp(ids[i], "boom") == 0)
			CHECK(b[i].rc != PGW_OK && !stored);
		else
			CHECK(b[i].rc == PGW_OK && stored);
	}
	CHECK(wrong == 0);
	CHECK(list_len(reg, "batch") == N - 1);
	CHECK(query_int(path, "SELECT n FROM device_count") == N - 1);

	TEST("sqlite batch: after a lost transaction the next writes commit as usual");
	{
		pgw_target t = fcm_target(&apps[1], "batch-after");

		CHECK(registry_put(reg, "batch", "after", &t, NULL) == PGW_OK);
		CHECK(registry_delete_extension(reg, "batch", NULL) == PGW_OK);
		CHECK(list_len(reg, "batch") == 0);
	}
	registry_close(reg);
}

static void test_open_errors(void)
{
	char err[512] = "";
	registry *reg = NULL;

	TEST("open: registry.path and registry.url together are a config error");
	cfg.registry_path = db_path;
	cfg.registry_url = "postgresql://db/pushgw";
	CHECK(registry_open(&cfg, &reg, err, sizeof err) == PGW_ECONFIG);
	CHECK(reg == NULL);
	CHECK(strstr(err, "not both") != NULL);

	TEST("open: an unreachable registry.url names the field, never the password");
	use_url("postgresql://pushgw:s3cr3t-pw@127.0.0.1:1/pushgw?connect_timeout=2");
	CHECK(registry_open(&cfg, &reg, err, sizeof err) == PGW_ECONNECT);
	CHECK(reg == NULL);
	CHECK(strstr(err, "pushgw.json: registry.url: cannot connect") == err);
	CHECK(strstr(err, "s3cr3t-pw") == NULL);
	CHECK(strchr(err, '\n') == NULL);

	TEST("open: a malformed registry.url is refused with libpq's reason");
	use_url("postgresql://host:notaport/db");
	CHECK(registry_open(&cfg, &reg, err, sizeof err) != PGW_OK);
	CHECK(strstr(err, "registry.url:") != NULL);
	CHECK(registry_healthy(NULL) == false);
}

static void test_apns_round_trip(registry *reg)
{
	pgw_target t = apns_target(V1, R1);
	registry_device *d = NULL, *list = NULL;
	int64_t created_at;
	bool created = false;
	size_t n = 0;

	TEST("put/get: an APNs device with both tokens and Linphone overrides");
	t.environment = PGW_ENV_SANDBOX;
	t.call_str = "IC_CUSTOM";
	t.call_snd = "ring.caf";
	t.silent = true;
	CHECK(registry_put(reg, "1001", "iphone-a", &t, &created) == PGW_OK);
	CHECK(created);
	CHECK(registry_get(reg, "1001", "iphone-a", &d) == PGW_OK);
	if (!d)
		return;
	CHECK_STR(d->extension, "1001");
	CHECK_STR(d->device_id, "iphone-a");
	CHECK(d->provider == PGW_PROVIDER_APNS);
	CHECK_STR(d->app, "phone");
	CHECK_STR(d->token, V1);
	CHECK_STR(d->remote_token, R1);
	CHECK(d->environment == PGW_ENV_SANDBOX);
	CHECK_STR(d->call_str, "IC_CUSTOM");
	CHECK_STR(d->call_snd, "ring.caf");
	CHECK(d->silent);
	CHECK(d->created_at_ms > 0 && d->updated_at_ms == d->created_at_ms);
	created_at = d->created_at_ms;
	registry_devices_free(d, 1);

	TEST("put: the same (ext, device id) again replaces it and says so");
	usleep(3000);
	t = apns_target(V1, NULL);
	CHECK(registry_put(reg, "1001", "iphone-a", &t, &created) == PGW_OK);
	CHECK(!created);
	CHECK(registry_get(reg, "1001", "iphone-a", &d) == PGW_OK);
	if (!d)
		return;
	CHECK(d->remote_token == NULL);
	CHECK(d->call_str == NULL && d->call_snd == NULL && !d->silent);
	CHECK(d->environment == PGW_ENV_UNSET);
	CHECK(d->created_at_ms == created_at);
	CHECK(d->updated_at_ms > created_at);
	registry_devices_free(d, 1);

	TEST("put: an alert-only APNs device is stored by its remote token");
	t = apns_target(NULL, R2);
	CHECK(registry_put(reg, "1001", "ipad-b", &t, &created) == PGW_OK);
	CHECK(created);
	CHECK(registry_list(reg, "1001", &list, &n) == PGW_OK);
	CHECK(n == 2);
	if (n == 2) {
		CHECK_STR(list[0].device_id, "iphone-a"); /* oldest first */
		CHECK_STR(list[1].device_id, "ipad-b");
		CHECK(list[1].token == NULL);
		CHECK_STR(list[1].remote_token, R2);
	}
	registry_devices_free(list, n);
}

static void test_fcm_round_trip(registry *reg)
{
	pgw_target t = fcm_target(&apps[1], FCM1);
	registry_device *d = NULL;
	bool created = false;

	TEST("put/get: an FCM device");
	CHECK(registry_put(reg, "2002", "pixel", &t, &created) == PGW_OK);
	CHECK(created);
	CHECK(registry_get(reg, "2002", "pixel", &d) == PGW_OK);
	if (d) {
		CHECK(d->provider == PGW_PROVIDER_FCM);
		CHECK_STR(d->app, "droid");
		CHECK_STR(d->token, FCM1);
		CHECK(d->remote_token == NULL);
		CHECK(d->environment == PGW_ENV_UNSET);
	}
	registry_devices_free(d, 1);

	TEST("put: the same token in another app is another device");
	t = fcm_target(&apps[0], FCM1);
	CHECK(registry_put(reg, "2002", "pixel-phone-app", &t, &created) == PGW_OK);
	CHECK(created);
	CHECK(list_len(reg, "2002") == 2);

	TEST("get/list: unknown names are not found / empty, bad ids are EINVAL");
	CHECK(registry_get(reg, "2002", "nope", &d) == PGW_ENOTFOUND);
	CHECK(d == NULL);
	CHECK(list_len(reg, "9999") == 0);
	CHECK(registry_get(reg, "20 02", "pixel", &d) == PGW_EINVAL);
}

static void test_bad_puts(registry *reg)
{
	pgw_target t = fcm_target(&apps[1], FCM2);
	uint64_t before = count_of(reg);
	bool created = false;

	TEST("put: bad ids or targets change nothing");
	CHECK(registry_put(reg, "", "x", &t, &created) == PGW_EINVAL);
	CHECK(registry_put(reg, "1001", "a/b", &t, &created) == PGW_EINVAL);
	t.token = NULL;
	CHECK(registry_put(reg, "1001", "x", &t, &created) == PGW_EINVAL);
	t = apns_target(NULL, NULL);
	CHECK(registry_put(reg, "1001", "x", &t, &created) == PGW_EINVAL);
	t.app = NULL;
	CHECK(registry_put(reg, "1001", "x", &t, &created) == PGW_EINVAL);
	CHECK(count_of(reg) == before);
}

static void test_moves(registry *reg)
{
	pgw_target t = fcm_target(&apps[1], FCM2);
	bool created = false;
	uint64_t before;

	TEST("move: the same token under another device id replaces the old row");
	CHECK(registry_put(reg, "3003", "old-id", &t, &created) == PGW_OK);
	before = count_of(reg);
	CHECK(registry_put(reg, "3003", "new-id", &t, &created) == PGW_OK);
	CHECK(created);
	CHECK(!has_device(reg, "3003", "old-id"));
	CHECK(has_device(reg, "3003", "new-id"));
	CHECK(count_of(reg) == before);

	TEST("move: the same token under another extension leaves the old one");
	CHECK(registry_put(reg, "3004", "new-id", &t, &created) == PGW_OK);
	CHECK(created);
	CHECK(list_len(reg, "3003") == 0);
	CHECK(has_device(reg, "3004", "new-id"));
	CHECK(count_of(reg) == before);

	TEST("move: an iPhone that gains a VoIP token keeps one registration");
	t = apns_target(NULL, R1);
	CHECK(registry_put(reg, "3005", "ios", &t, &created) == PGW_OK);
	t = apns_target(V2, R1);
	CHECK(registry_put(reg, "3006", "ios", &t, &created) == PGW_OK);
	CHECK(list_len(reg, "3005") == 0);
	CHECK(list_len(reg, "3006") == 1);
}

static void test_prune(registry *reg)
{
	pgw_target t = fcm_target(&apps[0], FCM2);
	registry_device *d = NULL;
	registry_pruned what = REGISTRY_PRUNED_DEVICE;
	int64_t stamp;

	TEST("prune: removes only the row with that provider, app and token");
	CHECK(registry_put(reg, "4004", "droid-a", &t, NULL) == PGW_OK);
	t = fcm_target(&apps[1], FCM2);
	CHECK(registry_put(reg, "4004", "droid-b", &t, NULL) == PGW_OK);
	CHECK(registry_prune(reg, PGW_PROVIDER_APNS, "phone", FCM2, 0, &what) == PGW_OK);
	CHECK(what == REGISTRY_PRUNED_NOTHING);
	CHECK(registry_prune(reg, PGW_PROVIDER_FCM, "phone", FCM2, 0, &what) == PGW_OK);
	CHECK(what == REGISTRY_PRUNED_DEVICE);
	CHECK(!has_device(reg, "4004", "droid-a"));
	CHECK(has_device(reg, "4004", "droid-b"));
	CHECK(registry_prune(reg, PGW_PROVIDER_FCM, "phone", FCM2, 0, &what) == PGW_OK);
	CHECK(what == REGISTRY_PRUNED_NOTHING);

	TEST("prune: a token registered before the 410 time goes, not one after");
	t = apns_target(V3, NULL);
	CHECK(registry_put(reg, "4005", "iphone", &t, NULL) == PGW_OK);
	CHECK(registry_get(reg, "4005", "iphone", &d) == PGW_OK);
	stamp = d ? d->updated_at_ms : 0;
	registry_devices_free(d, 1);
	CHECK(registry_prune(reg, PGW_PROVIDER_APNS, "phone", V3, stamp, &what) == PGW_OK);
	CHECK(what == REGISTRY_PRUNED_NOTHING);
	usleep(5000);
	/* Re-registered after the token "died" at stamp + 1: it survives. */
	CHECK(registry_put(reg, "4005", "iphone", &t, NULL) == PGW_OK);
	CHECK(registry_prune(reg, PGW_PROVIDER_APNS, "phone", V3, stamp + 1, &what) == PGW_OK);
	CHECK(what == REGISTRY_PRUNED_NOTHING);
	CHECK(has_device(reg, "4005", "iphone"));
	CHECK(registry_prune(reg, PGW_PROVIDER_APNS, "phone", V3, pgw_wall_ms() + 1000,
			     &what) == PGW_OK);
	CHECK(what == REGISTRY_PRUNED_DEVICE);
	CHECK(!has_device(reg, "4005", "iphone"));

	TEST("prune: a dead alert token of a VoIP device drops only that token, and says so");
	t = apns_target(V4, R3);
	CHECK(registry_put(reg, "4006", "iphone", &t, NULL) == PGW_OK);
	CHECK(registry_prune(reg, PGW_PROVIDER_APNS, "phone", R3, 0, &what) == PGW_OK);
	CHECK(what == REGISTRY_PRUNED_REMOTE_TOKEN);
	CHECK(registry_get(reg, "4006", "iphone", &d) == PGW_OK);
	if (d) {
		CHECK_STR(d->token, V4);
		CHECK(d->remote_token == NULL);
	}
	registry_devices_free(d, 1);
	CHECK(registry_prune(reg, PGW_PROVIDER_APNS, "phone", R3, 0, &what) == PGW_OK);
	CHECK(what == REGISTRY_PRUNED_NOTHING);
	CHECK(registry_prune(reg, PGW_PROVIDER_APNS, "phone", R3, 0, NULL) == PGW_OK);
}

static void test_environment(registry *reg)
{
	registry_device *d = NULL;

	TEST("set_environment: remembered by VoIP or alert token, no-op otherwise");
	CHECK(registry_set_environment(reg, "phone", V4, PGW_ENV_SANDBOX) == PGW_OK);
	CHECK(registry_get(reg, "4006", "iphone", &d) == PGW_OK);
	CHECK(d && d->environment == PGW_ENV_SANDBOX);
	registry_devices_free(d, 1);
	CHECK(registry_set_environment(reg, "phone", R1, PGW_ENV_PRODUCTION) == PGW_OK);
	CHECK(registry_get(reg, "3006", "ios", &d) == PGW_OK);
	CHECK(d && d->environment == PGW_ENV_PRODUCTION);
	registry_devices_free(d, 1);
	CHECK(registry_set_environment(reg, "phone", "00ff00ff00ff", PGW_ENV_SANDBOX) == PGW_OK);
}

static void test_deletes(registry *reg)
{
	pgw_target t = fcm_target(&apps[1], "tok-del-1");
	uint64_t before;

	TEST("delete: one device, then a whole extension; count follows");
	CHECK(registry_put(reg, "5005", "a", &t, NULL) == PGW_OK);
	t.token = "tok-del-2";
	CHECK(registry_put(reg, "5005", "b", &t, NULL) == PGW_OK);
	t.token = "tok-del-3";
	CHECK(registry_put(reg, "5005", "c", &t, NULL) == PGW_OK);
	before = count_of(reg);
	CHECK(registry_delete_device(reg, "5005", "a", NULL) == PGW_OK);
	CHECK(registry_delete_device(reg, "5005", "a", NULL) == PGW_ENOTFOUND);
	CHECK(count_of(reg) == before - 1);
	CHECK(list_len(reg, "5005") == 2);
	CHECK(registry_delete_extension(reg, "5005", NULL) == PGW_OK);
	CHECK(registry_delete_extension(reg, "5005", NULL) == PGW_ENOTFOUND);
	CHECK(list_len(reg, "5005") == 0);
	CHECK(count_of(reg) == before - 3);
	CHECK(registry_delete_device(reg, "50 05", "a", NULL) == PGW_EINVAL);
}

static void test_app_scope(registry *reg)
{
	char *droid_names[] = { "droid" }, *both_names[] = { "droid", "phone" };
	registry_apps droid = { droid_names, 1 }, both = { both_names, 2 }, all = { NULL, 0 };
	pgw_target phone_dev = apns_target(V2, NULL), droid_dev = fcm_target(&apps[1], "scope-tok-1");
	registry_device *stored = NULL, *d = NULL;
	bool created = true;

	TEST("apps: a put over another app's device is refused and changes nothing");
	CHECK(registry_put(reg, "6006", "shared", &phone_dev, NULL) == PGW_OK);
	CHECK(registry_put_stored(reg, "6006", "shared", &droid_dev, &droid, &created, &stored) ==
	      PGW_EAUTH);
	CHECK(stored == NULL);
	CHECK(registry_get(reg, "6006", "shared", &d) == PGW_OK);
	CHECK(d && strcmp(d->app, "phone") == 0 && d->token && strcmp(d->token, V2) == 0);
	registry_devices_free(d, d ? 1 : 0);
	d = NULL;

	TEST("apps: its own app's device, new or replaced, is stored");
	CHECK(registry_put_stored(reg, "6006", "droid-1", &droid_dev, &droid, &created, &stored) ==
	      PGW_OK);
	CHECK(created && stored && strcmp(stored->app, "droid") == 0);
	registry_devices_free(stored, stored ? 1 : 0);
	stored = NULL;
	droid_dev.token = "scope-tok-2";
	CHECK(registry_put_stored(reg, "6006", "droid-1", &droid_dev, &droid, &created, &stored) ==
	      PGW_OK);
	CHECK(!created && stored && strcmp(stored->token, "scope-tok-2") == 0);
	registry_devices_free(stored, stored ? 1 : 0);
	stored = NULL;

	TEST("apps: a target of an app outside the list is refused before the store");
	CHECK(registry_put_stored(reg, "6006", "p2", &phone_dev, &droid, &created, &stored) ==
	      PGW_EAUTH);
	CHECK(!has_device(reg, "6006", "p2"));
	CHECK(has_device(reg, "6006", "shared"));

	TEST("apps: deleting another app's device is refused; a missing one is not found");
	CHECK(registry_delete_device(reg, "6006", "shared", &droid) == PGW_EAUTH);
	CHECK(has_device(reg, "6006", "shared"));
	CHECK(registry_delete_device(reg, "6006", "nope", &droid) == PGW_ENOTFOUND);

	TEST("apps: deleting an extension removes only the allowed apps' devices");
	CHECK(registry_delete_extension(reg, "6006", &droid) == PGW_OK);
	CHECK(!has_device(reg, "6006", "droid-1"));
	CHECK(has_device(reg, "6006", "shared"));
	CHECK(registry_delete_extension(reg, "6006", &droid) == PGW_ENOTFOUND);
	CHECK(list_len(reg, "6006") == 1);

	TEST("apps: an empty list allows every app");
	CHECK(registry_put_stored(reg, "6006", "shared", &droid_dev, &all, &created, &stored) ==
	      PGW_OK);
	CHECK(!created && stored && strcmp(stored->app, "droid") == 0);
	registry_devices_free(stored, stored ? 1 : 0);
	CHECK(registry_put(reg, "6006", "p3", &phone_dev, NULL) == PGW_OK);
	CHECK(registry_delete_device(reg, "6006", "shared", &both) == PGW_OK);
	CHECK(registry_delete_extension(reg, "6006", &all) == PGW_OK);
	CHECK(list_len(reg, "6006") == 0);
	CHECK(registry_apps_allow(NULL, "x") && registry_apps_allow(&all, "x"));
	CHECK(!registry_apps_allow(&droid, "phone") && !registry_apps_allow(&droid, NULL));
}

static void test_device_target(registry *reg)
{
	registry_device *d = NULL;
	pgw_target t;

	TEST("device_target: a record becomes a target of the current config");
	CHECK(registry_get(reg, "4006", "iphone", &d) == PGW_OK);
	if (!d)
		return;
	CHECK(registry_device_target(d, &cfg, &t) == PGW_OK);
	CHECK(t.app == &apps[0]);
	CHECK(t.provider == PGW_PROVIDER_APNS);
	CHECK_STR(t.token, V4);
	CHECK(t.environment == PGW_ENV_SANDBOX);
	target_clear(&t);

	TEST("device_target: an app that left the config is not found");
	cfg.n_apps = 0;
	CHECK(registry_device_target(d, &cfg, &t) == PGW_ENOTFOUND);
	CHECK(t.token == NULL);
	cfg.n_apps = 2;
	registry_devices_free(d, 1);
}

static void test_bytes_round_trip(registry *reg)
{
	pgw_target t = apns_target(V3, NULL);
	registry_device *d = NULL;

	TEST("put/get: Contact overrides keep their bytes, even when not UTF-8");
	t.call_str = "IC_\xff\xfe caf\xc3\xa9";
	t.call_snd = "ring\x01.caf";
	CHECK(registry_put(reg, "1100", "bytes", &t, NULL) == PGW_OK);
	CHECK(registry_get(reg, "1100", "bytes", &d) == PGW_OK);
	if (d) {
		CHECK_STR(d->call_str, "IC_\xff\xfe caf\xc3\xa9");
		CHECK_STR(d->call_snd, "ring\x01.caf");
	}
	registry_devices_free(d, 1);
	CHECK(registry_delete_extension(reg, "1100", NULL) == PGW_OK);
}

static void test_put_stored(registry *reg)
{
	pgw_target t = apns_target(V5, R4);
	registry_device *stored = NULL, *d = NULL;
	bool created = false;
	int64_t created_at;

	TEST("put_stored: hands back the row as stored, created or replaced");
	t.environment = PGW_ENV_SANDBOX;
	CHECK(registry_put_stored(reg, "1200", "ios", &t, NULL, &created, &stored) == PGW_OK);
	CHECK(created);
	CHECK(registry_get(reg, "1200", "ios", &d) == PGW_OK);
	if (!stored || !d)
		goto out;
	CHECK_STR(stored->extension, "1200");
	CHECK_STR(stored->device_id, "ios");
	CHECK_STR(stored->app, "phone");
	CHECK_STR(stored->token, V5);
	CHECK_STR(stored->remote_token, R4);
	CHECK(stored->provider == PGW_PROVIDER_APNS && stored->environment == PGW_ENV_SANDBOX);
	CHECK(stored->created_at_ms == d->created_at_ms);
	CHECK(stored->updated_at_ms == d->updated_at_ms);
	created_at = d->created_at_ms;
	registry_devices_free(stored, 1);
	registry_devices_free(d, 1);
	stored = d = NULL;
	usleep(3000);
	t = apns_target(V5, NULL);
	CHECK(registry_put_stored(reg, "1200", "ios", &t, NULL, &created, &stored) == PGW_OK);
	CHECK(!created);
	CHECK(stored && stored->created_at_ms == created_at);
	CHECK(stored && stored->updated_at_ms > created_at && stored->remote_token == NULL);

	TEST("put_stored: the record survives a move that follows at once");
	registry_devices_free(stored, 1);
	stored = NULL;
	CHECK(registry_put_stored(reg, "1200", "ios2", &t, NULL, &created, &stored) == PGW_OK);
	CHECK(registry_put(reg, "1201", "ios2", &t, NULL) == PGW_OK);
	CHECK(stored && strcmp(stored->device_id, "ios2") == 0 && strcmp(stored->token, V5) == 0);
	CHECK(!has_device(reg, "1200", "ios2"));
	registry_devices_free(stored, stored ? 1 : 0);
	CHECK(registry_put_stored(reg, "1200", "x", NULL, NULL, &created, &stored) == PGW_EINVAL);
	CHECK(stored == NULL);
out:
	registry_devices_free(stored, stored ? 1 : 0);
	registry_devices_free(d, d ? 1 : 0);
	registry_delete_extension(reg, "1200", NULL);
	registry_delete_extension(reg, "1201", NULL);
}

static void test_reopen(registry **reg)
{
	uint64_t before = count_of(*reg);
	registry_device *d = NULL;

	TEST("durability: close and reopen finds everything");
	registry_close(*reg);
	*reg = open_or_die();
	CHECK(count_of(*reg) == before);
	CHECK(registry_get(*reg, "1001", "ipad-b", &d) == PGW_OK);
	CHECK(d && d->remote_token && strcmp(d->remote_token, R2) == 0);
	registry_devices_free(d, 1);
	CHECK(list_len(*reg, "2002") == 2);

	TEST("count: agrees with the rows after moves and deletes");
	CHECK(fx->raw_count() == (long long)before);
}

/* ---- SIP-edge bindings ---- */

/* A binding of EDGE for extension ext, expiring in_ms from now. */
static registry_binding binding_of(const char *id, const char *ext, const char *instance,
				   int64_t in_ms)
{
	static char aors[8][64];
	static int next;
	char *aor = aors[next++ % 8];

	snprintf(aor, sizeof aors[0], "sip:%s@pbx.example.com", ext);
	return (registry_binding){ .id = (char *)id, .edge = EDGE, .aor = aor,
				   .extension = (char *)ext,
				   .contact = "<sip:phone@203.0.113.5:5060;transport=tcp>"
					      ";+sip.instance=\"<urn:uuid:1>\"",
				   .instance = (char *)instance,
				   .expires_at_ms = pgw_wall_ms() + in_ms };
}

static bool has_binding(registry *reg, const char *id)
{
	registry_binding *b = NULL;
	pgw_err rc = registry_binding_get(reg, id, &b);

	registry_binding_free(b);
	return rc == PGW_OK;
}

/* The id of the binding find() returns, into out ("" when none). */
static pgw_err found_id(registry *reg, const char *edge, const char *aor, const char *instance,
			const pgw_target *t, char *out, size_t n)
{
	registry_binding *b = NULL;
	pgw_err rc = registry_binding_find(reg, edge, aor, instance, t, &b);

	snprintf(out, n, "%s", b ? b->id : "");
	registry_binding_free(b);
	return rc;
}

static void test_binding_round_trip(registry *reg)
{
	registry_binding b = binding_of("bA-1_x", "8001", "<urn:uuid:aaaa>", 3600000);
	pgw_target t = apns_target(BV1, NULL);
	registry_binding *got = NULL;
	registry_device *d = NULL;
	int64_t device_created, updated;
	uint64_t before = count_of(reg);
	bool created = false;

	TEST("binding put/get: the binding and its push target's device row, stored together");
	CHECK(registry_binding_put(reg, &b, &t, &created) == PGW_OK);
	CHECK(created);
	CHECK(registry_binding_get(reg, "bA-1_x", &got) == PGW_OK);
	if (!got)
		return;
	CHECK_STR(got->id, "bA-1_x");
	CHECK_STR(got->edge, EDGE);
	CHECK_STR(got->aor, "sip:8001@pbx.example.com");
	CHECK_STR(got->extension, "8001");
	CHECK_STR(got->contact, b.contact);
	CHECK_STR(got->instance, "<urn:uuid:aaaa>");
	CHECK_STR(got->app, "phone");
	CHECK(got->expires_at_ms == b.expires_at_ms);
	CHECK(got->updated_at_ms > 0);
	updated = got->updated_at_ms;
	registry_binding_free(got);
	got = NULL;
	CHECK(count_of(reg) == before + 1);
	CHECK(list_len(reg, "8001") == 1);
	CHECK(registry_get(reg, "8001", "bA-1_x", &d) == PGW_OK);
	if (!d)
		return;
	CHECK(d->provider == PGW_PROVIDER_APNS);
	CHECK_STR(d->app, "phone");
	CHECK_STR(d->token, BV1);
	device_created = d->created_at_ms;
	registry_devices_free(d, 1);

	TEST("binding put: a refresh replaces the binding, keeps the device row's creation time");
	usleep(3000);
	b.expires_at_ms += 1000;
	b.instance = NULL;
	CHECK(registry_binding_put(reg, &b, &t, &created) == PGW_OK);
	CHECK(!created);
	CHECK(registry_binding_put(reg, &b, &t, NULL) == PGW_OK);
	CHECK(registry_binding_get(reg, "bA-1_x", &got) == PGW_OK);
	CHECK(got && got->instance == NULL && got->expires_at_ms == b.expires_at_ms);
	CHECK(got && got->updated_at_ms > updated);
	registry_binding_free(got);
	CHECK(registry_get(reg, "8001", "bA-1_x", &d) == PGW_OK);
	CHECK(d && d->created_at_ms == device_created && d->updated_at_ms > device_created);
	registry_devices_free(d, d ? 1 : 0);
	CHECK(count_of(reg) == before + 1);

	TEST("binding get: an unknown id is not found");
	got = NULL;
	CHECK(registry_binding_get(reg, "no-such-binding", &got) == PGW_ENOTFOUND);
	CHECK(got == NULL);
	registry_binding_free(NULL);
	registry_bindings_free(NULL, 3);
	CHECK(registry_binding_delete(reg, "bA-1_x") == PGW_OK);
}

static void test_binding_find(registry *reg)
{
	registry_binding a = binding_of("bF-a", "8011", "<urn:uuid:f1>", 3600000);
	registry_binding n = binding_of("bF-n", "8012", NULL, 3600000);
	registry_binding c = binding_of("bF-c", "8013", NULL, 3600000);
	pgw_target ta = apns_target(BV2, NULL), tn = fcm_target(&apps[1], BFCM);
	pgw_target tc = apns_target(NULL, BR1), other;
	char id[80];

	CHECK(registry_binding_put(reg, &a, &ta, NULL) == PGW_OK);
	CHECK(registry_binding_put(reg, &n, &tn, NULL) == PGW_OK);
	CHECK(registry_binding_put(reg, &c, &tc, NULL) == PGW_OK);

	TEST("binding find: by edge, AOR and instance");
	CHECK(found_id(reg, EDGE, a.aor, "<urn:uuid:f1>", NULL, id, sizeof id) == PGW_OK);
	CHECK_STR(id, "bF-a");
	CHECK(found_id(reg, EDGE2, a.aor, "<urn:uuid:f1>", NULL, id, sizeof id) == PGW_ENOTFOUND);
	CHECK(found_id(reg, EDGE, n.aor, "<urn:uuid:f1>", NULL, id, sizeof id) == PGW_ENOTFOUND);
	CHECK(found_id(reg, EDGE, a.aor, "<urn:uuid:f2>", &ta, id, sizeof id) == PGW_ENOTFOUND);

	TEST("binding find: without an instance, by the token of the binding's device row");
	CHECK(found_id(reg, EDGE, n.aor, NULL, &tn, id, sizeof id) == PGW_OK);
	CHECK_STR(id, "bF-n");
	CHECK(found_id(reg, EDGE, a.aor, NULL, &ta, id, sizeof id) == PGW_OK);
	CHECK_STR(id, "bF-a");
	CHECK(found_id(reg, EDGE2, n.aor, NULL, &tn, id, sizeof id) == PGW_ENOTFOUND);
	CHECK(found_id(reg, EDGE, a.aor, NULL, &tn, id, sizeof id) == PGW_ENOTFOUND);
	other = fcm_target(&apps[0], BFCM); /* same token, another app */
	CHECK(found_id(reg, EDGE, n.aor, NULL, &other, id, sizeof id) == PGW_ENOTFOUND);
	other = fcm_target(&apps[1], "dGVzdA:APA91bH-x_y9Zz_unknown");
	CHECK(found_id(reg, EDGE, n.aor, NULL, &other, id, sizeof id) == PGW_ENOTFOUND);
	CHECK(found_id(reg, EDGE, n.aor, NULL, NULL, id, sizeof id) == PGW_ENOTFOUND);

	TEST("binding find: an iPhone that gained a VoIP token finds its alert-token binding");
	other = apns_target(BV3, BR1);
	CHECK(found_id(reg, EDGE, c.aor, NULL, &other, id, sizeof id) == PGW_OK);
	CHECK_STR(id, "bF-c");

	TEST("binding find: a token held by a plain device (not a binding's) finds nothing");
	CHECK(registry_put(reg, "8012", "plain", &tn, NULL) == PGW_OK);
	CHECK(!has_device(reg, "8012", "bF-n"));
	CHECK(found_id(reg, EDGE, n.aor, NULL, &tn, id, sizeof id) == PGW_ENOTFOUND);
	CHECK(registry_delete_device(reg, "8012", "plain", NULL) == PGW_OK);

	CHECK(registry_binding_delete(reg, "bF-a") == PGW_OK);
	CHECK(registry_binding_delete(reg, "bF-n") == PGW_OK);
	CHECK(registry_binding_delete(reg, "bF-c") == PGW_OK);
}

static void test_binding_targets(registry *reg)
{
	registry_binding b = binding_of("bT-1", "8021", NULL, 3600000);
	registry_binding b2 = binding_of("bT-2", "8022", NULL, 3600000);
	pgw_target t = fcm_target(&apps[1], BFCM);
	registry_binding *got = NULL;
	uint64_t before = count_of(reg);
	bool created = true;

	TEST("binding put: without a push target, no device row (and any old one goes)");
	CHECK(registry_binding_put(reg, &b, NULL, &created) == PGW_OK);
	CHECK(created);
	CHECK(!has_device(reg, "8021", "bT-1"));
	CHECK(registry_binding_get(reg, "bT-1", &got) == PGW_OK);
	CHECK(got && got->app == NULL);
	registry_binding_free(got);
	got = NULL;
	CHECK(registry_binding_put(reg, &b, &t, &created) == PGW_OK);
	CHECK(!created);
	CHECK(has_device(reg, "8021", "bT-1"));
	CHECK(registry_binding_put(reg, &b, NULL, NULL) == PGW_OK);
	CHECK(!has_device(reg, "8021", "bT-1"));
	CHECK(list_len(reg, "8021") == 0);
	CHECK(count_of(reg) == before);

	TEST("binding put: the token moves from another binding's row and from a plain device");
	CHECK(registry_binding_put(reg, &b, &t, NULL) == PGW_OK);
	CHECK(registry_binding_put(reg, &b2, &t, NULL) == PGW_OK);
	CHECK(!has_device(reg, "8021", "bT-1"));
	CHECK(has_device(reg, "8022", "bT-2"));
	CHECK(has_binding(reg, "bT-1")); /* the binding stays, without push */
	CHECK(registry_put(reg, "8029", "android", &t, NULL) == PGW_OK);
	CHECK(!has_device(reg, "8022", "bT-2"));
	CHECK(registry_binding_put(reg, &b, &t, NULL) == PGW_OK);
	CHECK(!has_device(reg, "8029", "android"));
	CHECK(has_device(reg, "8021", "bT-1"));
	CHECK(count_of(reg) == before + 1);

	TEST("binding put: under another extension, the old device row goes");
	b.extension = "8023";
	b.aor = "sip:8023@pbx.example.com";
	CHECK(registry_binding_put(reg, &b, &t, &created) == PGW_OK);
	CHECK(!created);
	CHECK(!has_device(reg, "8021", "bT-1"));
	CHECK(has_device(reg, "8023", "bT-1"));
	b.extension = "8024";
	CHECK(registry_binding_put(reg, &b, NULL, NULL) == PGW_OK);
	CHECK(list_len(reg, "8023") == 0 && list_len(reg, "8024") == 0);
	CHECK(count_of(reg) == before);

	TEST("binding delete: the binding and its device row go; twice is not found");
	b.extension = "8021";
	CHECK(registry_binding_put(reg, &b, &t, NULL) == PGW_OK);
	CHECK(has_device(reg, "8021", "bT-1"));
	CHECK(registry_binding_delete(reg, "bT-1") == PGW_OK);
	CHECK(!has_binding(reg, "bT-1"));
	CHECK(!has_device(reg, "8021", "bT-1"));
	CHECK(registry_binding_delete(reg, "bT-1") == PGW_ENOTFOUND);
	CHECK(registry_binding_delete(reg, "bT-2") == PGW_OK);
	CHECK(count_of(reg) == before);
	CHECK(fx->raw_count() == (long long)count_of(reg));
}

/* The ids of a list, comma-separated, into out. */
static void list_ids(registry *reg, const char *edge, int64_t now_ms, char *out, size_t n)
{
	registry_binding *all = NULL;
	size_t count = 0, i, used = 0;

	out[0] = '\0';
	CHECK(registry_binding_list(reg, edge, now_ms, &all, &count) == PGW_OK);
	for (i = 0; i < count && used < n; i++)
		used += (size_t)snprintf(out + used, n - used, "%s%s", i ? "," : "", all[i].id);
	registry_bindings_free(all, count);
}

static void test_binding_list_expire(registry *reg)
{
	registry_binding live = binding_of("bL-live", "8031", NULL, 3600000);
	registry_binding later = binding_of("bL-later", "8032", NULL, 7200000);
	registry_binding gone = binding_of("bL-gone", "8033", NULL, -1000);
	registry_binding other = binding_of("bL-other", "8034", NULL, -1000);
	pgw_target t1 = fcm_target(&apps[1], "bl-token-1"), t3 = fcm_target(&apps[1], "bl-token-3");
	pgw_target t4 = fcm_target(&apps[1], "bl-token-4");
	registry_binding *all = (registry_binding *)1;
	int64_t now = pgw_wall_ms();
	char ids[256];
	size_t n = 7;
	int removed = -1;

	other.edge = EDGE2;
	CHECK(registry_binding_put(reg, &live, &t1, NULL) == PGW_OK);
	CHECK(registry_binding_put(reg, &later, NULL, NULL) == PGW_OK);
	CHECK(registry_binding_put(reg, &gone, &t3, NULL) == PGW_OK);
	CHECK(registry_binding_put(reg, &other, &t4, NULL) == PGW_OK);

	TEST("binding list: only the edge's bindings, only those not yet expired");
	list_ids(reg, EDGE, now, ids, sizeof ids);
	CHECK_STR(ids, "bL-live,bL-later");
	list_ids(reg, EDGE, now + 3600000 + 60000, ids, sizeof ids);
	CHECK_STR(ids, "bL-later");
	list_ids(reg, EDGE2, now - 60000, ids, sizeof ids);
	CHECK_STR(ids, "bL-other");
	CHECK(registry_binding_list(reg, "nowhere.example.com", now, &all, &n) == PGW_OK);
	CHECK(all == NULL && n == 0);

	TEST("binding expire: the edge's expired bindings and their device rows go, no others");
	CHECK(has_device(reg, "8033", "bL-gone"));
	CHECK(registry_binding_expire(reg, EDGE, now, &removed) == PGW_OK);
	CHECK(removed == 1);
	CHECK(!has_binding(reg, "bL-gone") && !has_device(reg, "8033", "bL-gone"));
	CHECK(has_binding(reg, "bL-live") && has_device(reg, "8031", "bL-live"));
	CHECK(has_binding(reg, "bL-other") && has_device(reg, "8034", "bL-other"));
	CHECK(registry_binding_expire(reg, EDGE, now, NULL) == PGW_OK);

	TEST("binding expire: a binding expiring exactly now is expired (and not listed)");
	list_ids(reg, EDGE, later.expires_at_ms, ids, sizeof ids);
	CHECK_STR(ids, "");
	CHECK(registry_binding_expire(reg, EDGE, later.expires_at_ms, &removed) == PGW_OK);
	CHECK(removed == 2);
	CHECK(!has_device(reg, "8031", "bL-live"));
	CHECK(registry_binding_expire(reg, EDGE2, now, &removed) == PGW_OK);
	CHECK(removed == 1 && !has_device(reg, "8034", "bL-other"));
	CHECK(fx->raw_count() == (long long)count_of(reg));
}

static void test_binding_bad_args(registry *reg)
{
	char long_id[80], long_aor[2100];
	registry_binding b = binding_of("bB-1", "8041", NULL, 3600000), bad;
	pgw_target t = fcm_target(&apps[1], "bb-token-1"), bad_t = fcm_target(&apps[1], NULL);
	registry_binding *got = (registry_binding *)1, *all = (registry_binding *)1;
	uint64_t before = count_of(reg);
	size_t n = 5;
	int removed = 5;

	memset(long_id, 'x', sizeof long_id);
	long_id[65] = '\0';
	memset(long_aor, 'a', sizeof long_aor);
	memcpy(long_aor, "sip:", 4);
	long_aor[2049] = '\0';

	TEST("binding put: bad ids, strings or targets are refused, nothing stored");
#define REFUSED(field, value)                                                        \
	do {                                                                         \
		bad = b;                                                             \
		bad.field = value;                                                   \
		CHECK(registry_binding_put(reg, &bad, &t, NULL) == PGW_EINVAL);      \
	} while (0)
	REFUSED(id, "");
	REFUSED(id, NULL);
	REFUSED(id, "a.b");
	REFUSED(id, "a b");
	REFUSED(id, long_id);
	REFUSED(edge, "");
	REFUSED(edge, NULL);
	REFUSED(aor, "");
	REFUSED(aor, long_aor);
	REFUSED(aor, "sip:8041@pbx\r\nVia: x");
	REFUSED(extension, "a/b");
	REFUSED(extension, NULL);
	REFUSED(contact, "<sip:x@\xff\xfe>");
	REFUSED(contact, long_aor);
	REFUSED(contact, NULL);
	REFUSED(instance, "");
	REFUSED(app, "phone"); /* t is of app droid */
	REFUSED(expires_at_ms, 0);
#undef REFUSED
	CHECK(registry_binding_put(reg, &b, &bad_t, NULL) == PGW_EINVAL);
	bad = b;
	bad.app = "droid";
	CHECK(registry_binding_put(reg, &bad, NULL, NULL) == PGW_EINVAL);
	CHECK(registry_binding_put(reg, NULL, &t, NULL) == PGW_EINVAL);
	CHECK(registry_binding_put(NULL, &b, &t, NULL) == PGW_EINVAL);
	CHECK(count_of(reg) == before);
	CHECK(!has_binding(reg, "bB-1"));
	long_id[64] = '\0';
	bad = b;
	bad.id = long_id; /* 64 chars: the longest allowed */
	bad.app = "droid";
	CHECK(registry_binding_put(reg, &bad, &t, NULL) == PGW_OK);
	CHECK(registry_binding_delete(reg, long_id) == PGW_OK);
	CHECK(count_of(reg) == before);

	TEST("binding reads and removals: bad arguments are refused");
	CHECK(registry_binding_get(reg, "a.b", &got) == PGW_EINVAL && got == NULL);
	got = (registry_binding *)1;
	CHECK(registry_binding_find(reg, "", b.aor, "x", NULL, &got) == PGW_EINVAL && got == NULL);
	CHECK(registry_binding_find(reg, EDGE, b.aor, NULL, &bad_t, &got) == PGW_EINVAL);
	CHECK(registry_binding_find(reg, EDGE, long_aor, "x", NULL, &got) == PGW_EINVAL);
	CHECK(registry_binding_list(reg, NULL, 0, &all, &n) == PGW_EINVAL && all == NULL && n == 0);
	CHECK(registry_binding_delete(reg, "") == PGW_EINVAL);
	CHECK(registry_binding_expire(reg, "bad\nedge", 0, &removed) == PGW_EINVAL && removed == 0);
}

/* ---- concurrency ---- */

typedef struct worker {
	registry *reg;
	int index;
	int failures;
} worker;

static void *worker_run(void *arg)
{
	worker *w = arg;
	char ext[32], id[32], token[64];
	pgw_target t = fcm_target(&apps[1], token);
	bool created;
	int j;

	for (j = 0; j < PER_THREAD; j++) {
		snprintf(ext, sizeof ext, "t%d-%d", w->index, j % 10);
		snprintf(id, sizeof id, "dev%d", j);
		snprintf(token, sizeof token, "conc-%d-%d", w->index, j);
		if (registry_put(w->reg, ext, id, &t, &created) != PGW_OK || !created)
			w->failures++;
		if (j % 50 == 0 && !has_device(w->reg, ext, id))
			w->failures++;
	}
	return NULL;
}

static void test_concurrent(registry *reg)
{
	pthread_t th[THREADS];
	worker w[THREADS];
	uint64_t before = count_of(reg);
	char ext[32];
	int i, j, failures = 0;
	size_t per_ext_ok = 0;

	TEST("concurrency: 4 threads x 1000 puts end with exactly those rows");
	for (i = 0; i < THREADS; i++) {
		w[i] = (worker){ .reg = reg, .index = i };
		pthread_create(&th[i], NULL, worker_run, &w[i]);
	}
	for (i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		failures += w[i].failures;
	}
	CHECK(failures == 0);
	CHECK(count_of(reg) == before + THREADS * PER_THREAD);
	for (i = 0; i < THREADS; i++) {
		for (j = 0; j < 10; j++) {
			snprintf(ext, sizeof ext, "t%d-%d", i, j);
			per_ext_ok += list_len(reg, ext) == PER_THREAD / 10;
		}
	}
	CHECK(per_ext_ok == THREADS * 10);
}

/* ---- two handles racing on the same names ---- */

typedef struct racer {
	registry *reg;
	unsigned seed;
	int puts, failures;
} racer;

/* FCM tokens, APNs VoIP tokens and APNs alert tokens: three pools, as a
 * VoIP token never equals an alert token in real life. */
enum race_kind { RACE_FCM, RACE_VOIP, RACE_ALERT };

static void race_token(char *out, size_t n, enum race_kind kind, int i)
{
	if (kind == RACE_FCM)
		snprintf(out, n, "race-token-%d", i);
	else
		snprintf(out, n, "%060x%04x", kind == RACE_VOIP ? 0xabc : 0xdef, i);
}

/* One random op: mostly puts (FCM, or APNs with VoIP and alert tokens that
 * can each move on their own), some prunes and deletes. */
static void race_step(racer *r)
{
	char ext[16], id[16], voip[80], remote[80];
	int pick = (int)(rand_r(&r->seed) % 100);
	bool apns = rand_r(&r->seed) % 3 == 0;
	pgw_target t;
	pgw_err rc;

	snprintf(ext, sizeof ext, "race%u", rand_r(&r->seed) % RACE_EXTS);
	snprintf(id, sizeof id, "d%u", rand_r(&r->seed) % RACE_IDS);
	race_token(voip, sizeof voip, apns ? RACE_VOIP : RACE_FCM,
		   (int)(rand_r(&r->seed) % RACE_TOKENS));
	race_token(remote, sizeof remote, RACE_ALERT, (int)(rand_r(&r->seed) % RACE_TOKENS));
	if (pick < 8) {
		rc = registry_prune(r->reg, apns ? PGW_PROVIDER_APNS : PGW_PROVIDER_FCM,
				    apns ? "phone" : "droid", pick < 4 ? remote : voip, 0, NULL);
	} else if (pick < 12) {
		rc = registry_delete_device(r->reg, ext, id, NULL);
		rc = rc == PGW_ENOTFOUND ? PGW_OK : rc;
	} else {
		t = apns ? apns_target(voip, pick % 2 ? remote : NULL) : fcm_target(&apps[1], voip);
		rc = registry_put(r->reg, ext, id, &t, NULL);
	}
	r->failures += rc != PGW_OK;
}

static void *racer_run(void *arg)
{
	racer *r = arg;
	int i;

	for (i = 0; i < r->puts; i++)
		race_step(r);
	return NULL;
}

/* Every device of the race extensions, as one handle sees it. */
static size_t race_rows(registry *reg, registry_device **all)
{
	registry_device *d;
	size_t total = 0, n, i;
	char ext[16];
	int e;

	*all = calloc(RACE_EXTS * RACE_IDS + 1, sizeof **all);
	for (e = 0; e < RACE_EXTS; e++) {
		snprintf(ext, sizeof ext, "race%d", e);
		d = NULL;
		n = 0;
		CHECK(registry_list(reg, ext, &d, &n) == PGW_OK);
		for (i = 0; i < n && total < RACE_EXTS * RACE_IDS; i++) {
			(*all)[total++] = d[i];
			memset(&d[i], 0, sizeof d[i]);
		}
		registry_devices_free(d, n);
	}
	return total;
}

/* How many rows hold token (as VoIP or alert token) for provider p. */
static int holders(const registry_device *all, size_t n, pgw_provider p, const char *token)
{
	int count = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		if (all[i].provider != p)
			continue;
		count += all[i].token && strcmp(all[i].token, token) == 0;
		count += all[i].remote_token && strcmp(all[i].remote_token, token) == 0;
	}
	return count;
}

static bool same_rows(const registry_device *a, const registry_device *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (strcmp(a[i].extension, b[i].extension) || strcmp(a[i].device_id, b[i].device_id) ||
		    a[i].updated_at_ms != b[i].updated_at_ms)
			return false;
	}
	return true;
}

static void test_race(void)
{
	registry *handles[2] = { open_or_die(), open_or_die() };
	pthread_t th[2 * RACE_THREADS];
	racer r[2 * RACE_THREADS];
	registry_device *all_a = NULL, *all_b = NULL;
	uint64_t before = count_of(handles[0]);
	char token[80];
	int i, failures = 0, doubles = 0;
	size_t n_a, n_b;

	TEST("race: two handles x 500 conflicting puts, moves, prunes end in one consistent state");
	for (i = 0; i < 2 * RACE_THREADS; i++) {
		r[i] = (racer){ .reg = handles[i % 2], .seed = 7919u * (unsigned)i + 1,
				.puts = RACE_PUTS / RACE_THREADS };
		pthread_create(&th[i], NULL, racer_run, &r[i]);
	}
	for (i = 0; i < 2 * RACE_THREADS; i++) {
		pthread_join(th[i], NULL);
		failures += r[i].failures;
	}
	CHECK(failures == 0);
	n_a = race_rows(handles[0], &all_a);
	n_b = race_rows(handles[1], &all_b);
	CHECK(n_a > 0 && n_a == n_b);
	CHECK(same_rows(all_a, all_b, n_a < n_b ? n_a : n_b));
	for (i = 0; i < RACE_TOKENS; i++) {
		race_token(token, sizeof token, RACE_FCM, i);
		doubles += holders(all_a, n_a, PGW_PROVIDER_FCM, token) > 1;
		race_token(token, sizeof token, RACE_VOIP, i);
		doubles += holders(all_a, n_a, PGW_PROVIDER_APNS, token) > 1;
		race_token(token, sizeof token, RACE_ALERT, i);
		doubles += holders(all_a, n_a, PGW_PROVIDER_APNS, token) > 1;
	}
	CHECK(doubles == 0);
	CHECK(count_of(handles[1]) - before == n_a);
	CHECK(fx->raw_count() == (long long)count_of(handles[0]));
	registry_devices_free(all_a, n_a);
	registry_devices_free(all_b, n_b);
	for (i = 0; i < RACE_EXTS; i++) {
		snprintf(token, sizeof token, "race%d", i);
		registry_delete_extension(handles[0], token, NULL);
	}
	registry_close(handles[0]);
	registry_close(handles[1]);
}

/* Binding puts (with a target, without, expired at birth), removals and
 * expiries on a few ids, extensions and tokens, from two handles. */
#define BRACE_IDS 4
#define BRACE_EXTS 3
#define BRACE_TOKENS 3
#define BRACE_EDGE "race.example.com"

static void binding_race_step(racer *r)
{
	char id[16], ext[24], aor[64], token[48];
	int pick = (int)(rand_r(&r->seed) % 100);
	registry_binding b;
	pgw_target t;
	pgw_err rc;

	snprintf(id, sizeof id, "br%u", rand_r(&r->seed) % BRACE_IDS);
	snprintf(ext, sizeof ext, "brace%u", rand_r(&r->seed) % BRACE_EXTS);
	snprintf(aor, sizeof aor, "sip:%s@pbx.example.com", ext);
	snprintf(token, sizeof token, "brace-token-%u", rand_r(&r->seed) % BRACE_TOKENS);
	b = (registry_binding){ .id = id, .edge = BRACE_EDGE, .aor = aor, .extension = ext,
				.contact = "<sip:phone@203.0.113.9>",
				.expires_at_ms = pgw_wall_ms() + (pick < 25 ? -1 : 60000) };
	t = fcm_target(&apps[1], token);
	if (pick < 10) {
		rc = registry_binding_delete(r->reg, id);
		rc = rc == PGW_ENOTFOUND ? PGW_OK : rc;
	} else if (pick < 15) {
		rc = registry_binding_expire(r->reg, BRACE_EDGE, pgw_wall_ms(), NULL);
	} else {
		rc = registry_binding_put(r->reg, &b, pick < 35 ? NULL : &t, NULL);
	}
	r->failures += rc != PGW_OK;
}

static void *binding_racer_run(void *arg)
{
	racer *r = arg;
	int i;

	for (i = 0; i < r->puts; i++)
		binding_race_step(r);
	return NULL;
}

/* Device rows of the race extensions that no binding with a push target
 * stands for (under that extension); rows holding a token twice. */
static void binding_race_orphans(registry *reg, int *orphans, int *doubles)
{
	char ext[24], token[48];
	int e, k, holders_of[BRACE_TOKENS] = { 0 };
	size_t i, n;

	*orphans = *doubles = 0;
	for (e = 0; e < BRACE_EXTS; e++) {
		registry_device *d = NULL;

		snprintf(ext, sizeof ext, "brace%d", e);
		n = 0;
		CHECK(registry_list(reg, ext, &d, &n) == PGW_OK);
		for (i = 0; i < n; i++) {
			registry_binding *b = NULL;

			if (registry_binding_get(reg, d[i].device_id, &b) != PGW_OK ||
			    strcmp(b->extension, ext) != 0 || !b->app)
				(*orphans)++;
			registry_binding_free(b);
			for (k = 0; k < BRACE_TOKENS; k++) {
				snprintf(token, sizeof token, "brace-token-%d", k);
				holders_of[k] += strcmp(d[i].token, token) == 0;
			}
		}
		registry_devices_free(d, n);
	}
	for (k = 0; k < BRACE_TOKENS; k++)
		*doubles += holders_of[k] > 1;
}

static void test_binding_race(void)
{
	registry *handles[2] = { open_or_die(), open_or_die() };
	pthread_t th[2 * RACE_THREADS];
	racer r[2 * RACE_THREADS];
	int i, failures = 0, orphans, doubles, removed = 0;

	TEST("binding race: two handles x 500 binding puts, moves, removals, expiries leave no "
	     "device row without its binding");
	for (i = 0; i < 2 * RACE_THREADS; i++) {
		r[i] = (racer){ .reg = handles[i % 2], .seed = 104729u * (unsigned)i + 3,
				.puts = RACE_PUTS / RACE_THREADS };
		pthread_create(&th[i], NULL, binding_racer_run, &r[i]);
	}
	for (i = 0; i < 2 * RACE_THREADS; i++) {
		pthread_join(th[i], NULL);
		failures += r[i].failures;
	}
	CHECK(failures == 0);
	binding_race_orphans(handles[1], &orphans, &doubles);
	CHECK(orphans == 0);
	CHECK(doubles == 0);
	CHECK(fx->raw_count() == (long long)count_of(handles[0]));
	CHECK(registry_binding_expire(handles[0], BRACE_EDGE, INT64_MAX, &removed) == PGW_OK);
	for (i = 0; i < BRACE_EXTS; i++) {
		char ext[24];

		snprintf(ext, sizeof ext, "brace%d", i);
		CHECK(list_len(handles[0], ext) == 0);
	}
	registry_close(handles[0]);
	registry_close(handles[1]);
}

/* ---- crash safety ---- */

static void crash_child(int fd)
{
	char id[32], token[64];
	pgw_target t = fcm_target(&apps[1], token);
	registry *reg;
	int i;

	reg = open_or_die();
	for (i = 0; i < 1000000; i++) {
		snprintf(id, sizeof id, "d%d", i);
		snprintf(token, sizeof token, "crash-%d", i);
		if (registry_put(reg, "crash", id, &t, NULL) != PGW_OK)
			_exit(3);
		/* Only now is it acknowledged. */
		if (write(fd, &i, sizeof i) != (ssize_t)sizeof i)
			_exit(4);
	}
	_exit(0);
}

static void test_crash(void)
{
	char id[32];
	int fds[2], idx, acked = 0, missing = 0, status = 0, i;
	size_t total;
	registry *reg;
	pid_t pid;

	TEST("crash: after kill -9 every acknowledged registration is stored");
	CHECK(pipe(fds) == 0);
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		close(fds[0]);
		crash_child(fds[1]);
	}
	close(fds[1]);
	while (acked < 300 && read(fds[0], &idx, sizeof idx) == (ssize_t)sizeof idx)
		acked++;
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	/* Acknowledgements already in the pipe count too. */
	while (read(fds[0], &idx, sizeof idx) == (ssize_t)sizeof idx)
		acked = idx + 1;
	close(fds[0]);
	CHECK(acked >= 300);

	reg = open_or_die();
	for (i = 0; i < acked; i++) {
		snprintf(id, sizeof id, "d%d", i);
		missing += !has_device(reg, "crash", id);
	}
	CHECK(missing == 0);
	/* At most the one put in flight at the kill went in unacknowledged. */
	total = list_len(reg, "crash");
	CHECK(total == (size_t)acked || total == (size_t)acked + 1);
	CHECK(registry_delete_extension(reg, "crash", NULL) == PGW_OK);
	registry_close(reg);
}

/* The suite both backends pass, on a store that starts empty. */
static void run_shared_suite(const store_fixture *f)
{
	registry *reg;

	fx = f;
	f->point_main();
	test_crash();
	reg = open_or_die();
	test_apns_round_trip(reg);
	test_fcm_round_trip(reg);
	test_bad_puts(reg);
	test_moves(reg);
	test_prune(reg);
	test_environment(reg);
	test_deletes(reg);
	test_app_scope(reg);
	test_device_target(reg);
	test_bytes_round_trip(reg);
	test_put_stored(reg);
	test_binding_round_trip(reg);
	test_binding_find(reg);
	test_binding_targets(reg);
	test_binding_list_expire(reg);
	test_binding_bad_args(reg);
	test_reopen(&reg);
	test_concurrent(reg);
	registry_close(reg);
	test_race();
	test_binding_race();
}

/* ---- PostgreSQL ---- */

static char pg_dir[] = "/tmp/pgw-pg-XXXXXX";
static char pg_base[512]; /* URL of the server's "pushgw" database */
static char pg_main[640]; /* the database the shared suite uses */

/* scripts/pg-test-cluster.sh VERB; for start, the URL into pg_base. */
static bool pg_cluster(const char *verb)
{
	char cmd[300], line[512] = "";
	FILE *p;
	size_t len;

	snprintf(cmd, sizeof cmd, "scripts/pg-test-cluster.sh %s %s", verb, pg_dir);
	fflush(NULL);
	p = popen(cmd, "r");
	if (!p)
		return false;
	if (!fgets(line, sizeof line, p))
		line[0] = '\0';
	if (pclose(p) != 0)
		return false;
	len = strcspn(line, "\n");
	line[len] = '\0';
	if (strcmp(verb, "start") == 0) {
		if (strncmp(line, "postgresql://", 13) != 0)
			return false;
		snprintf(pg_base, sizeof pg_base, "%s", line);
	}
	return true;
}

/* The URL of another database on the same server. */
static void pg_url_for(const char *db, char *out, size_t n)
{
	PQconninfoOption *opts = PQconninfoParse(pg_base, NULL), *o;
	const char *host = "", *port = "5432", *user = "pushgw";

	for (o = opts; o && o->keyword; o++) {
		if (!o->val)
			continue;
		if (strcmp(o->keyword, "host") == 0)
			host = o->val;
		else if (strcmp(o->keyword, "port") == 0)
			port = o->val;
		else if (strcmp(o->keyword, "user") == 0)
			user = o->val;
	}
	snprintf(out, n, "postgresql:///%s?host=%s&port=%s&user=%s", db, host, port, user);
	PQconninfoFree(opts);
}

/* One value (as a number) from a query on the database at url; -1 when it
 * fails, -2 when it returns no row. */
static long long pg_query_int(const char *url, const char *sql)
{
	PGconn *c = PQconnectdb(url);
	PGresult *res = NULL;
	long long v = -1;

	if (PQstatus(c) == CONNECTION_OK) {
		res = PQexec(c, sql);
		if (PQresultStatus(res) == PGRES_TUPLES_OK)
			v = PQntuples(res) ? atoll(PQgetvalue(res, 0, 0)) : -2;
		else if (PQresultStatus(res) == PGRES_COMMAND_OK)
			v = 0;
	}
	PQclear(res);
	PQfinish(c);
	return v;
}

static bool pg_exec(const char *url, const char *sql)
{
	return pg_query_int(url, sql) >= 0;
}

static bool pg_create_db(const char *name, char *url, size_t n)
{
	char sql[128];

	snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
	pg_url_for(name, url, n);
	return pg_exec(pg_base, sql);
}

static void pg_point_main(void)
{
	use_url(pg_main);
}

static long long pg_raw_count(void)
{
	return pg_query_int(pg_main, "SELECT count(*) FROM pushgw_device");
}

static const store_fixture pg_fixture = { "postgresql", pg_point_main, pg_raw_count };

static void test_pg_migration(void)
{
	char url[640], err[512] = "";
	registry *reg = NULL;
	long long xmin;

	TEST("pg migration: an empty database gets the schema; an up-to-date one is left alone");
	CHECK(pg_create_db("pgw_mig_fresh", url, sizeof url));
	use_url(url);
	reg = open_or_die();
	registry_close(reg);
	CHECK(pg_query_int(url, "SELECT version FROM pushgw_schema") == 2);
	CHECK(pg_query_int(url, "SELECT count(*) FROM pushgw_schema") == 1);
	xmin = pg_query_int(url, "SELECT xmin::text::bigint FROM pushgw_schema");
	CHECK(xmin > 0);
	reg = open_or_die();
	registry_close(reg);
	CHECK(pg_query_int(url, "SELECT xmin::text::bigint FROM pushgw_schema") == xmin);

	TEST("pg migration: a database from a newer release is refused, naming the field");
	CHECK(pg_exec(url, "UPDATE pushgw_schema SET version = 99"));
	CHECK(registry_open(&cfg, &reg, err, sizeof err) == PGW_ECONFIG);
	CHECK(reg == NULL);
	CHECK(strstr(err, "pushgw.json: registry.url:") == err);
	CHECK(strstr(err, "newer") != NULL);

	TEST("pg migration: a failing step leaves the database as it was");
	CHECK(pg_create_db("pgw_mig_foreign", url, sizeof url));
	CHECK(pg_exec(url, "CREATE TABLE pushgw_device (x integer)"));
	use_url(url);
	CHECK(registry_open(&cfg, &reg, err, sizeof err) != PGW_OK);
	CHECK(strstr(err, "schema upgrade to version 1 failed") != NULL);
	CHECK(pg_query_int(url, "SELECT count(*) FROM pg_class WHERE relname = 'pushgw_schema'") == 0);
	CHECK(pg_query_int(url, "SELECT count(*) FROM pg_proc WHERE proname = 'pushgw_put'") == 0);

	TEST("pg migration: replicas starting together migrate once");
	CHECK(pg_create_db("pgw_mig_together", url, sizeof url));
	use_url(url);
	{
		registry *regs[4] = { NULL };
		int i, opened = 0;

		/* Opening four handles back to back from threads would be
		 * nicer; sequential opens still prove the version check and
		 * the lock do not trip over an existing schema. */
		for (i = 0; i < 4; i++)
			opened += registry_open(&cfg, &regs[i], err, sizeof err) == PGW_OK;
		CHECK(opened == 4);
		for (i = 0; i < 4; i++)
			registry_close(regs[i]);
	}
	CHECK(pg_query_int(url, "SELECT version FROM pushgw_schema") == 2);
}

typedef struct opener {
	registry *reg;
	pgw_err rc;
} opener;

static void *open_run(void *arg)
{
	opener *o = arg;
	char err[512];

	o->rc = registry_open(&cfg, &o->reg, err, sizeof err);
	return NULL;
}

/* A database as the release before SIP-edge bindings left it. Schema step
 * 1 is append-only history, never edited: a database migrated to 2 and
 * stripped of step 2's objects is exactly what that release made. */
static void test_pg_migration_v1(void)
{
	registry_binding b = { .id = "bM-1", .edge = "push.example.com",
			       .aor = "sip:8901@pbx.example.com", .extension = "8901",
			       .contact = "<sip:8901@203.0.113.5>",
			       .expires_at_ms = pgw_wall_ms() + 60000 };
	pgw_target t = fcm_target(&apps[1], "v1-token");
	pthread_t th[4];
	opener o[4];
	registry *reg;
	char url[640];
	int i, opened = 0;

	TEST("pg migration: a version 1 database gains the bindings, replicas starting together");
	CHECK(pg_create_db("pgw_mig_v1", url, sizeof url));
	use_url(url);
	reg = open_or_die();
	CHECK(registry_put(reg, "8901", "old-phone", &t, NULL) == PGW_OK);
	registry_close(reg);
	CHECK(pg_exec(url, "DROP FUNCTION pushgw_binding_put; DROP FUNCTION pushgw_binding_remove;"
			   " DROP TABLE pushgw_sip_binding; UPDATE pushgw_schema SET version = 1"));
	CHECK(pg_query_int(url, "SELECT version FROM pushgw_schema") == 1);
	for (i = 0; i < 4; i++) {
		o[i] = (opener){ .reg = NULL, .rc = PGW_ESTATE };
		pthread_create(&th[i], NULL, open_run, &o[i]);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		opened += o[i].rc == PGW_OK;
	}
	CHECK(opened == 4);
	CHECK(pg_query_int(url, "SELECT version FROM pushgw_schema") == 2);
	CHECK(pg_query_int(url, "SELECT count(*) FROM pg_proc WHERE proname = 'pushgw_binding_put'") ==
	      1);
	reg = o[0].reg;
	CHECK(reg && has_device(reg, "8901", "old-phone"));
	CHECK(reg && registry_binding_put(reg, &b, &t, NULL) == PGW_OK);
	CHECK(reg && !has_device(reg, "8901", "old-phone") && has_device(reg, "8901", "bM-1"));
	CHECK(o[1].reg && has_binding(o[1].reg, "bM-1"));
	for (i = 0; i < 4; i++)
		registry_close(o[i].reg);
}

/* Sessions the registry holds open on the server (all handles). */
static long long pg_sessions(void)
{
	return pg_query_int(pg_base, "SELECT count(*) FROM pg_stat_activity"
				     " WHERE application_name = 'pushgw'");
}

typedef struct churner {
	registry *reg;
	int ops, index, failures;
} churner;

/* Reads and writes mixed as a gateway does them: list, get, put, delete. */
static void *churn_run(void *arg)
{
	churner *c = arg;
	char ext[32], id[32], token[48];
	pgw_target t = fcm_target(&apps[1], token);
	registry_device *d;
	size_t n;
	int i;

	for (i = 0; i < c->ops; i++) {
		snprintf(ext, sizeof ext, "churn%d", c->index);
		snprintf(id, sizeof id, "d%d", i % 16);
		snprintf(token, sizeof token, "churn-%d-%d", c->index, i % 16);
		d = NULL;
		n = 0;
		switch (i % 8) {
		case 0:
			c->failures += registry_put(c->reg, ext, id, &t, NULL) != PGW_OK;
			break;
		case 1:
			c->failures += registry_get(c->reg, ext, id, &d) == PGW_EIO;
			registry_devices_free(d, d ? 1 : 0);
			break;
		default:
			c->failures += registry_list(c->reg, ext, &d, &n) != PGW_OK;
			registry_devices_free(d, n);
		}
	}
	return NULL;
}

/* Puts from many threads at once share commits: fewer write transactions
 * (each takes one transaction id) than puts, and every put is there. */
static void test_pg_group_commit(void)
{
	registry *reg;
	pthread_t th[THREADS];
	worker w[THREADS];
	long long xid_before, xid_after;
	int i, failures = 0;

	TEST("pg group commit: 4 threads x 1000 puts take fewer transactions than puts, all stored");
	use_url(pg_main);
	reg = open_or_die();
	/* a clean slate: the shared suite used these names */
	for (i = 0; i < THREADS; i++) {
		char ext[32];
		int j;

		for (j = 0; j < 10; j++) {
			snprintf(ext, sizeof ext, "t%d-%d", i, j);
			registry_delete_extension(reg, ext, NULL);
		}
	}
	xid_before = pg_query_int(pg_main, "SELECT txid_current()");
	for (i = 0; i < THREADS; i++) {
		w[i] = (worker){ .reg = reg, .index = i };
		pthread_create(&th[i], NULL, worker_run, &w[i]);
	}
	for (i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		failures += w[i].failures;
	}
	xid_after = pg_query_int(pg_main, "SELECT txid_current()");
	CHECK(failures == 0);
	CHECK(xid_after - xid_before - 1 < (long long)THREADS * PER_THREAD * 9 / 10);
	fprintf(stderr, "   %d puts, %lld write transactions\n", THREADS * PER_THREAD,
		xid_after - xid_before - 1);
	registry_close(reg);
}

static void test_pg_no_leak(void)
{
	registry *reg;
	pthread_t th[THREADS];
	churner c[THREADS];
	int i, failures = 0;

	TEST("pg pool: 20,000 mixed calls from 4 threads use at most 4 sessions");
	use_url(pg_main);
	reg = open_or_die();
	for (i = 0; i < THREADS; i++) {
		c[i] = (churner){ .reg = reg, .ops = 5000, .index = i };
		pthread_create(&th[i], NULL, churn_run, &c[i]);
	}
	for (i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		failures += c[i].failures;
	}
	CHECK(failures == 0);
	CHECK(pg_sessions() >= 1 && pg_sessions() <= 4);
	registry_close(reg);

	TEST("pg pool: closing the registry ends its sessions");
	for (i = 0; i < 50 && pg_sessions() != 0; i++)
		usleep(20000);
	CHECK(pg_sessions() == 0);
}

/* Calls until one succeeds or ~10 s pass; true on success. */
static bool put_until_ok(registry *reg, const char *ext, const pgw_target *t)
{
	int i;

	for (i = 0; i < 200; i++) {
		if (registry_put(reg, ext, "phone", t, NULL) == PGW_OK)
			return true;
		usleep(50000);
	}
	return false;
}

static void test_pg_outage(void)
{
	pgw_target t = fcm_target(&apps[1], "outage-token-1");
	registry_device *d = NULL;
	registry *reg;
	int64_t started;
	size_t n = 0;
	pgw_err rc;
	int i;

	use_url(pg_main);
	reg = open_or_die();
	CHECK(registry_put(reg, "7001", "phone", &t, NULL) == PGW_OK);
	CHECK(registry_healthy(reg));

	TEST("pg outage: with the server stopped, calls fail fast with a connection error");
	CHECK(pg_cluster("stop"));
	started = pgw_now_ms();
	rc = registry_list(reg, "7001", &d, &n);
	CHECK(rc == PGW_ECONNECT);
	CHECK(d == NULL && n == 0);
	CHECK(registry_put(reg, "7001", "other", &t, NULL) == PGW_ECONNECT);
	for (i = 0; i < 20; i++)
		CHECK(registry_get(reg, "7001", "phone", &d) == PGW_ECONNECT);
	CHECK(pgw_now_ms() - started < 2000);
	CHECK(!registry_healthy(reg));

	TEST("pg outage: the server back, the same handle serves again, data intact");
	CHECK(pg_cluster("start"));
	t.token = "outage-token-2";
	CHECK(put_until_ok(reg, "7002", &t));
	CHECK(registry_healthy(reg));
	CHECK(list_len(reg, "7001") == 1);
	CHECK(has_device(reg, "7002", "phone"));

	TEST("pg outage: a restart under a busy pool leaves no dead sessions behind");
	CHECK(pg_cluster("stop"));
	CHECK(pg_cluster("start"));
	for (i = 0; i < 40; i++)
		CHECK(list_len(reg, "7001") == 1);
	CHECK(pg_sessions() >= 1 && pg_sessions() <= 4);
	CHECK(registry_delete_extension(reg, "7001", NULL) == PGW_OK);
	CHECK(registry_delete_extension(reg, "7002", NULL) == PGW_OK);
	registry_close(reg);
}

static void run_pg(void)
{
	char name[64];
	const char *skip = NULL;

	fprintf(stderr, "== backend: postgresql\n");
	if (!mkdtemp(pg_dir)) {
		CHECK(!"a temp folder for the PostgreSQL server");
		return;
	}
	if (!pg_cluster("start"))
		skip = "scripts/pg-test-cluster.sh could not start a server";
	snprintf(name, sizeof name, "pgw_unit_%d", (int)getpid());
	if (!skip && !pg_create_db(name, pg_main, sizeof pg_main))
		skip = "cannot create a test database";
	if (skip) {
		/* make test installs PostgreSQL: not having it is a failure */
		fprintf(stderr, "FAIL registry: PostgreSQL tests cannot run: %s\n", skip);
		CHECK(!"a throw-away PostgreSQL server");
		pg_cluster("destroy");
		rmdir(pg_dir);
		return;
	}
	test_pg_migration();
	test_pg_migration_v1();
	run_shared_suite(&pg_fixture);
	test_pg_group_commit();
	test_pg_no_leak();
	test_pg_outage();
	pg_cluster("destroy");
}

static void remove_tree(const char *dir)
{
	char path[600];
	struct dirent *e;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
			unlink(path);
		}
	}
	closedir(d);
	rmdir(dir);
}

int main(void)
{
	pgw_log_set_level(PGW_LOG_WARN);
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(db_path, sizeof db_path, "%s/registry.db", tmpdir);
	setup_apps();

	test_ids();
	fprintf(stderr, "== backend: sqlite\n");
	test_sqlite_migration();
	test_sqlite_migration_v1();
	test_sqlite_batch_rollback();
	test_open_errors();
	run_shared_suite(&sqlite_fixture);
	remove_tree(tmpdir);

	run_pg();
	return check_summary("registry");
}
