/* Unit tests for registry.c against a real SQLite file in a temp folder:
 * round trips, moves, pruning rules, migrations, concurrency, and a
 * kill -9 of a registering child that must lose no acknowledged write. */
#include <dirent.h>
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
#define FCM1 "dGVzdA:APA91bH-x_y9Zz_first"
#define FCM2 "dGVzdA:APA91bH-x_y9Zz_second"

#define THREADS 4
#define PER_THREAD 1000

static pgw_app_conf apps[2];
static pgw_config cfg;
static char tmpdir[] = "/tmp/pgw-registry-XXXXXX";
static char db_path[256];

static void setup_config(const char *path)
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
	cfg.registry_path = (char *)path;
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

static void test_migration(void)
{
	char path[300], err[512] = "";
	registry *reg = NULL;
	long long schema;
	struct stat st;
	FILE *f;

	TEST("migration: an empty file gets the schema; an up-to-date one is left alone");
	snprintf(path, sizeof path, "%s/empty.db", tmpdir);
	f = fopen(path, "w");
	CHECK(f != NULL);
	if (f)
		fclose(f);
	setup_config(path);
	reg = open_or_die();
	registry_close(reg);
	CHECK(query_int(path, "PRAGMA user_version") == 1);
	schema = query_int(path, "PRAGMA schema_version");
	CHECK(schema > 0);
	CHECK(pragma_is(path, "PRAGMA journal_mode", "wal"));
	reg = open_or_die();
	registry_close(reg);
	CHECK(query_int(path, "PRAGMA schema_version") == schema);
	CHECK(query_int(path, "PRAGMA user_version") == 1);

	TEST("migration: a new file is private to its owner");
	snprintf(path, sizeof path, "%s/fresh.db", tmpdir);
	setup_config(path);
	reg = open_or_die();
	CHECK(stat(path, &st) == 0 && (st.st_mode & 077) == 0);
	registry_close(reg);

	TEST("migration: a file from a newer release is refused, naming the field");
	CHECK(run_sql(path, "PRAGMA user_version = 99"));
	CHECK(query_int(path, "PRAGMA user_version") == 99);
	CHECK(registry_open(&cfg, &reg, err, sizeof err) == PGW_ECONFIG);
	CHECK(reg == NULL);
	CHECK(strstr(err, "pushgw.json: registry.path:") == err);
	CHECK(strstr(err, "newer") != NULL);

	TEST("migration: a file that is not a database is refused");
	snprintf(path, sizeof path, "%s/junk.db", tmpdir);
	f = fopen(path, "w");
	if (f) {
		fputs("this is not an sqlite database, just some text padding it out\n", f);
		fclose(f);
	}
	setup_config(path);
	CHECK(registry_open(&cfg, &reg, err, sizeof err) != PGW_OK);
	CHECK(reg == NULL);
	CHECK(strstr(err, "registry.path") != NULL);

	TEST("migration: a failing step leaves the file as it was");
	snprintf(path, sizeof path, "%s/foreign.db", tmpdir);
	CHECK(run_sql(path, "CREATE TABLE device (x)"));
	setup_config(path);
	CHECK(registry_open(&cfg, &reg, err, sizeof err) != PGW_OK);
	CHECK(strstr(err, "schema upgrade to version 1 failed") != NULL);
	CHECK(query_int(path, "PRAGMA user_version") == 0);
	CHECK(query_int(path, "SELECT count(*) FROM sqlite_master") == 1);

	TEST("open: registry.url alone is a config error");
	cfg.registry_path = NULL;
	cfg.registry_url = "postgresql://db/pushgw";
	CHECK(registry_open(&cfg, &reg, err, sizeof err) == PGW_ECONFIG);
	CHECK(strstr(err, "pushgw.json: registry.url:") == err);
	cfg.registry_url = NULL;

	TEST("open: a folder that does not exist is named in the error");
	snprintf(path, sizeof path, "%s/missing/reg.db", tmpdir);
	setup_config(path);
	CHECK(registry_open(&cfg, &reg, err, sizeof err) == PGW_EIO);
	CHECK(strstr(err, path) != NULL);
	setup_config(db_path);
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
	bool removed = true;
	int64_t stamp;

	TEST("prune: removes only the row with that provider, app and token");
	CHECK(registry_put(reg, "4004", "droid-a", &t, NULL) == PGW_OK);
	t = fcm_target(&apps[1], FCM2);
	CHECK(registry_put(reg, "4004", "droid-b", &t, NULL) == PGW_OK);
	CHECK(registry_prune(reg, PGW_PROVIDER_APNS, "phone", FCM2, 0, &removed) == PGW_OK);
	CHECK(!removed);
	CHECK(registry_prune(reg, PGW_PROVIDER_FCM, "phone", FCM2, 0, &removed) == PGW_OK);
	CHECK(removed);
	CHECK(!has_device(reg, "4004", "droid-a"));
	CHECK(has_device(reg, "4004", "droid-b"));
	CHECK(registry_prune(reg, PGW_PROVIDER_FCM, "phone", FCM2, 0, &removed) == PGW_OK);
	CHECK(!removed);

	TEST("prune: a token registered before the 410 time goes, not one after");
	t = apns_target(V3, NULL);
	CHECK(registry_put(reg, "4005", "iphone", &t, NULL) == PGW_OK);
	CHECK(registry_get(reg, "4005", "iphone", &d) == PGW_OK);
	stamp = d ? d->updated_at_ms : 0;
	registry_devices_free(d, 1);
	CHECK(registry_prune(reg, PGW_PROVIDER_APNS, "phone", V3, stamp, &removed) == PGW_OK);
	CHECK(!removed);
	usleep(5000);
	/* Re-registered after the token "died" at stamp + 1: it survives. */
	CHECK(registry_put(reg, "4005", "iphone", &t, NULL) == PGW_OK);
	CHECK(registry_prune(reg, PGW_PROVIDER_APNS, "phone", V3, stamp + 1, &removed) == PGW_OK);
	CHECK(!removed);
	CHECK(has_device(reg, "4005", "iphone"));
	CHECK(registry_prune(reg, PGW_PROVIDER_APNS, "phone", V3, pgw_wall_ms() + 1000,
			     &removed) == PGW_OK);
	CHECK(removed);
	CHECK(!has_device(reg, "4005", "iphone"));

	TEST("prune: a dead alert token of a VoIP device drops only that token");
	t = apns_target(V4, R3);
	CHECK(registry_put(reg, "4006", "iphone", &t, NULL) == PGW_OK);
	CHECK(registry_prune(reg, PGW_PROVIDER_APNS, "phone", R3, 0, &removed) == PGW_OK);
	CHECK(!removed);
	CHECK(registry_get(reg, "4006", "iphone", &d) == PGW_OK);
	if (d) {
		CHECK_STR(d->token, V4);
		CHECK(d->remote_token == NULL);
	}
	registry_devices_free(d, 1);
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
	CHECK(registry_delete_device(reg, "5005", "a") == PGW_OK);
	CHECK(registry_delete_device(reg, "5005", "a") == PGW_ENOTFOUND);
	CHECK(count_of(reg) == before - 1);
	CHECK(list_len(reg, "5005") == 2);
	CHECK(registry_delete_extension(reg, "5005") == PGW_OK);
	CHECK(registry_delete_extension(reg, "5005") == PGW_ENOTFOUND);
	CHECK(list_len(reg, "5005") == 0);
	CHECK(count_of(reg) == before - 3);
	CHECK(registry_delete_device(reg, "50 05", "a") == PGW_EINVAL);
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

	TEST("count: the kept counter agrees with the rows after moves and deletes");
	CHECK(query_int(db_path, "SELECT count(*) FROM device") == (long long)before);
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

/* ---- crash safety ---- */

static void crash_child(const char *path, int fd)
{
	char id[32], token[64];
	pgw_target t = fcm_target(&apps[1], token);
	registry *reg;
	int i;

	setup_config(path);
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
	char path[300], id[32];
	int fds[2], idx, acked = 0, missing = 0, status = 0, i;
	uint64_t total = 0;
	registry *reg;
	pid_t pid;

	TEST("crash: after kill -9 every acknowledged registration is on disk");
	snprintf(path, sizeof path, "%s/crash.db", tmpdir);
	CHECK(pipe(fds) == 0);
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		close(fds[0]);
		crash_child(path, fds[1]);
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

	setup_config(path);
	reg = open_or_die();
	for (i = 0; i < acked; i++) {
		snprintf(id, sizeof id, "d%d", i);
		missing += !has_device(reg, "crash", id);
	}
	CHECK(missing == 0);
	/* At most the one put in flight at the kill went in unacknowledged. */
	CHECK(registry_count(reg, &total) == PGW_OK);
	CHECK(total == (uint64_t)acked || total == (uint64_t)acked + 1);
	registry_close(reg);
	setup_config(db_path);
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
	registry *reg;

	pgw_log_set_level(PGW_LOG_WARN);
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(db_path, sizeof db_path, "%s/registry.db", tmpdir);
	setup_config(db_path);

	test_ids();
	test_crash();
	test_migration();
	reg = open_or_die();
	test_apns_round_trip(reg);
	test_fcm_round_trip(reg);
	test_bad_puts(reg);
	test_moves(reg);
	test_prune(reg);
	test_environment(reg);
	test_deletes(reg);
	test_device_target(reg);
	test_reopen(&reg);
	test_concurrent(reg);
	registry_close(reg);
	remove_tree(tmpdir);
	return check_summary("registry");
}
