/* Registry backend on a SQLite file (WAL, synchronous=FULL): a write returns
 * only after its transaction is on disk. Any thread may call any function.
 * Writes queue up and one caller at a time commits the whole queue on the
 * single writer connection (group commit: one fsync for many registrations);
 * reads take one of a few reader connections and run in parallel. */
#include "pushgw/registry_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pushgw/log.h"
#include "pushgw/util.h"

#define READERS 4
#define BUSY_TIMEOUT_MS 5000
/* Caps one transaction, so the caller committing a burst is not held for
 * all of it. */
#define BATCH_MAX 256
/* A burst may grow the WAL; give the space back after checkpoints. */
#define WAL_SIZE_LIMIT (64 * 1024 * 1024)

/* Schema history: entry i upgrades user_version i to i + 1. Append only —
 * a released step is never edited, so any older file upgrades in place.
 * A device's identity (VoIP token, else remote token) is unique per
 * (provider, app): a device lives under one extension and device id.
 * Alert tokens are indexed too, for moves, pruning and environment fixes. */
static const char *const migrations[] = {
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
	/* count(*) walks a whole index (~50 ms at a million rows); metrics ask
	 * for it often, so keep the number as the rows change. */
	"CREATE TABLE device_count (n INTEGER NOT NULL);"
	"INSERT INTO device_count VALUES (0);"
	"CREATE TRIGGER device_added AFTER INSERT ON device"
	"  BEGIN UPDATE device_count SET n = n + 1; END;"
	"CREATE TRIGGER device_removed AFTER DELETE ON device"
	"  BEGIN UPDATE device_count SET n = n - 1; END;",
	/* SIP-edge bindings. A binding's push target is the device row
	 * (extension, device_id = id); a refresh finds its binding by
	 * instance, or through that row by token. Each edge loads and expires
	 * only its own bindings. */
	"CREATE TABLE sip_binding ("
	"  id TEXT PRIMARY KEY,"
	"  edge TEXT NOT NULL,"
	"  aor TEXT NOT NULL,"
	"  extension TEXT NOT NULL,"
	"  contact TEXT NOT NULL,"
	"  instance TEXT,"
	"  app TEXT,"
	"  expires_at INTEGER NOT NULL,"
	"  updated_at INTEGER NOT NULL);"
	"CREATE INDEX sip_binding_by_instance ON sip_binding(edge, aor, instance);"
	"CREATE INDEX sip_binding_by_expiry ON sip_binding(edge, expires_at);",
};
#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

#define DEVICE_COLUMNS                                                     \
	"extension, device_id, provider, app, token, remote_token, "       \
	"environment, call_str, call_snd, silent, created_at, updated_at"

#define BINDING_COLUMNS                                                    \
	"id, edge, aor, extension, contact, instance, app, expires_at, updated_at"
#define BINDING_COLUMNS_B                                                  \
	"b.id, b.edge, b.aor, b.extension, b.contact, b.instance, b.app, "  \
	"b.expires_at, b.updated_at"
/* The device row of binding ?1, when the binding is not under extension
 * ?2 (NULL: whatever its extension). */
#define BINDING_DEVICE                                                     \
	"device_id = ?1 AND extension = (SELECT extension FROM sip_binding"  \
	" WHERE id = ?1 AND (?2 IS NULL OR extension <> ?2))"
#define BINDING_EXPIRED "edge = ?1 AND expires_at <= ?2"

/* The identity expression must match the index text for the planner. */
#define SAME_TOKEN "provider = ?1 AND app = ?2 AND coalesce(token, remote_token) = ?3"
/* A device with this alert token. */
#define SAME_REMOTE "provider = ?1 AND app = ?2 AND remote_token = ?3"
#define ELSEWHERE " AND NOT (extension = ?4 AND device_id = ?5)"

enum stmt_id {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_SAVEPOINT,
	ST_RELEASE,
	ST_ROLLBACK_TO,
	ST_MOVE_AWAY,
	ST_MOVE_AWAY_REMOTE,
	ST_UPDATE,
	ST_INSERT,
	ST_OWNER,
	ST_DELETE_DEVICE,
	ST_DELETE_EXTENSION,
	ST_DELETE_EXTENSION_APP,
	ST_PRUNE,
	ST_PRUNE_REMOTE,
	ST_SET_ENV,
	ST_SET_ENV_REMOTE,
	ST_LIST,
	ST_GET,
	ST_CREATED_AT,
	ST_COUNT,
	ST_BINDING_UPDATE,
	ST_BINDING_INSERT,
	ST_BINDING_DELETE_DEVICE,
	ST_BINDING_DELETE,
	ST_BINDING_EXPIRE_DEVICES,
	ST_BINDING_EXPIRE,
	ST_BINDING_GET,
	ST_BINDING_BY_INSTANCE,
	ST_BINDING_BY_TOKEN,
	ST_BINDING_LIST,
	ST_N_STATEMENTS,
};

static const char *const stmt_sql[ST_N_STATEMENTS] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_SAVEPOINT] = "SAVEPOINT op",
	[ST_RELEASE] = "RELEASE op",
	[ST_ROLLBACK_TO] = "ROLLBACK TO op",
	[ST_MOVE_AWAY] = "DELETE FROM device WHERE " SAME_TOKEN ELSEWHERE,
	[ST_MOVE_AWAY_REMOTE] = "DELETE FROM device WHERE " SAME_REMOTE ELSEWHERE,
	[ST_UPDATE] = "UPDATE device SET provider = ?3, app = ?4, token = ?5,"
		      " remote_token = ?6, environment = ?7, call_str = ?8,"
		      " call_snd = ?9, silent = ?10, updated_at = ?11"
		      " WHERE extension = ?1 AND device_id = ?2",
	[ST_INSERT] = "INSERT INTO device (" DEVICE_COLUMNS ")"
		      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)",
	[ST_OWNER] = "SELECT app FROM device WHERE extension = ?1 AND device_id = ?2",
	[ST_DELETE_DEVICE] = "DELETE FROM device WHERE extension = ?1 AND device_id = ?2",
	[ST_DELETE_EXTENSION] = "DELETE FROM device WHERE extension = ?1",
	[ST_DELETE_EXTENSION_APP] = "DELETE FROM device WHERE extension = ?1 AND app = ?2",
	[ST_PRUNE] = "DELETE FROM device WHERE " SAME_TOKEN
		     " AND (?4 = 0 OR updated_at < ?4)",
	[ST_PRUNE_REMOTE] = "UPDATE device SET remote_token = NULL WHERE " SAME_REMOTE
			    " AND token IS NOT NULL AND (?4 = 0 OR updated_at < ?4)",
	[ST_SET_ENV] = "UPDATE device SET environment = ?4 WHERE " SAME_TOKEN,
	[ST_SET_ENV_REMOTE] = "UPDATE device SET environment = ?4 WHERE " SAME_REMOTE,
	[ST_LIST] = "SELECT " DEVICE_COLUMNS " FROM device WHERE extension = ?1"
		    " ORDER BY created_at, id",
	[ST_GET] = "SELECT " DEVICE_COLUMNS " FROM device"
		   " WHERE extension = ?1 AND device_id = ?2",
	[ST_CREATED_AT] = "SELECT created_at FROM device WHERE extension = ?1 AND device_id = ?2",
	[ST_COUNT] = "SELECT n FROM device_count",
	[ST_BINDING_UPDATE] = "UPDATE sip_binding SET edge = ?2, aor = ?3, extension = ?4,"
			      " contact = ?5, instance = ?6, app = ?7, expires_at = ?8,"
			      " updated_at = ?9 WHERE id = ?1",
	[ST_BINDING_INSERT] = "INSERT INTO sip_binding (" BINDING_COLUMNS ")"
			      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
	[ST_BINDING_DELETE_DEVICE] = "DELETE FROM device WHERE " BINDING_DEVICE,
	[ST_BINDING_DELETE] = "DELETE FROM sip_binding WHERE id = ?1",
	[ST_BINDING_EXPIRE_DEVICES] = "DELETE FROM device WHERE id IN (SELECT d.id"
				      " FROM sip_binding b JOIN device d"
				      " ON d.extension = b.extension AND d.device_id = b.id"
				      " WHERE b." BINDING_EXPIRED ")",
	[ST_BINDING_EXPIRE] = "DELETE FROM sip_binding WHERE " BINDING_EXPIRED,
	[ST_BINDING_GET] = "SELECT " BINDING_COLUMNS " FROM sip_binding WHERE id = ?1",
	[ST_BINDING_BY_INSTANCE] = "SELECT " BINDING_COLUMNS " FROM sip_binding"
				   " WHERE edge = ?1 AND aor = ?2 AND instance = ?3"
				   " ORDER BY updated_at DESC, id LIMIT 1",
	/* Either token, as a put's move takes either: an iPhone that gained a
	 * VoIP token is still the phone of its alert token. One index each
	 * (an OR would walk the app's every device). */
	[ST_BINDING_BY_TOKEN] = "SELECT " BINDING_COLUMNS_B " FROM device d JOIN sip_binding b"
				" ON b.id = d.device_id AND b.extension = d.extension"
				" WHERE b.edge = ?1 AND b.aor = ?2 AND d.id IN ("
				"SELECT id FROM device WHERE provider = ?3 AND app = ?4"
				" AND coalesce(token, remote_token) = ?5 UNION ALL"
				" SELECT id FROM device WHERE provider = ?3 AND app = ?4"
				" AND remote_token = ?6)"
				" ORDER BY b.updated_at DESC, b.id LIMIT 1",
	[ST_BINDING_LIST] = "SELECT " BINDING_COLUMNS " FROM sip_binding"
			    " WHERE edge = ?1 AND expires_at > ?2 ORDER BY expires_at, id",
};

/* One SQLite connection and its prepared statements (made on first use and
 * kept for the life of the connection). Used by one thread at a time. */
typedef struct reg_conn {
	sqlite3 *db;
	sqlite3_stmt *stmt[ST_N_STATEMENTS];
	struct reg_conn *next_idle;
} reg_conn;

/* A queued write. run() executes inside the batch transaction; its result
 * counts only once the batch has committed. run() sets every output it
 * has from scratch: an op may run again in a later batch (again). */
typedef struct write_op {
	pgw_err (*run)(reg_conn *c, struct write_op *op);
	pgw_err rc;
	bool done;
	bool again; /* its batch was lost through no fault of its own */
	struct write_op *next;
} write_op;

struct registry_store {
	char *path;

	/* Writes: the queue, and whether some caller is committing a batch. */
	pthread_mutex_t write_lock;
	pthread_cond_t write_done;
	write_op *queue_head, *queue_tail;
	bool committing;
	reg_conn writer;

	/* Reads: idle reader connections. */
	pthread_mutex_t read_lock;
	pthread_cond_t reader_free;
	reg_conn *idle;
	reg_conn readers[READERS];
};

/* ---- connections ---- */

static pgw_err map_sqlite(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return PGW_OK;
	case SQLITE_NOMEM:
		return PGW_ENOMEM;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return PGW_ETIMEOUT;
	case SQLITE_CONSTRAINT:
	case SQLITE_MISMATCH:
	case SQLITE_RANGE:
	case SQLITE_TOOBIG:
		return PGW_EINVAL;
	default:
		return PGW_EIO;
	}
}

static pgw_err log_failure(reg_conn *c, const char *what, int rc)
{
	char code[16];

	snprintf(code, sizeof code, "%d", rc);
	pgw_log(PGW_LOG_ERROR, "registry: sqlite call failed", "op", what,
		"sqlite_code", code, "error", c->db ? sqlite3_errmsg(c->db) : "-",
		NULL);
	return map_sqlite(rc);
}

/* The cached statement, reset and unbound, or NULL (logged). */
static sqlite3_stmt *conn_stmt(reg_conn *c, enum stmt_id id)
{
	int rc;

	if (c->stmt[id])
		return c->stmt[id];
	rc = sqlite3_prepare_v3(c->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
				&c->stmt[id], NULL);
	if (rc != SQLITE_OK) {
		log_failure(c, stmt_sql[id], rc);
		c->stmt[id] = NULL;
	}
	return c->stmt[id];
}

static void stmt_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* Step a statement that returns no rows and reset it. */
static pgw_err conn_exec(reg_conn *c, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	stmt_done(st);
	if (rc != SQLITE_DONE)
		return log_failure(c, what, rc);
	return PGW_OK;
}

static pgw_err conn_simple(reg_conn *c, enum stmt_id id)
{
	sqlite3_stmt *st = conn_stmt(c, id);

	if (!st)
		return PGW_EIO;
	return conn_exec(c, st, stmt_sql[id]);
}

static void conn_close(reg_conn *c)
{
	int i;

	for (i = 0; i < ST_N_STATEMENTS; i++)
		sqlite3_finalize(c->stmt[i]);
	memset(c->stmt, 0, sizeof c->stmt);
	sqlite3_close(c->db);
	c->db = NULL;
}

/* Run a PRAGMA (or other one-off SQL) on an open connection. */
static pgw_err conn_pragma(reg_conn *c, const char *sql, char *why, size_t whylen)
{
	char *msg = NULL;
	int rc = sqlite3_exec(c->db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		snprintf(why, whylen, "%s: %s", sql, msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return map_sqlite(rc);
	}
	return PGW_OK;
}

/* One integer from a single-row query. */
static pgw_err conn_query_int(reg_conn *c, const char *sql, int64_t *out)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);

	if (rc != SQLITE_OK)
		return log_failure(c, sql, rc);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? PGW_OK : log_failure(c, sql, rc);
}

static pgw_err conn_open(reg_conn *c, const char *path, char *why, size_t whylen)
{
	int rc = sqlite3_open_v2(path, &c->db,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);

	if (rc != SQLITE_OK) {
		snprintf(why, whylen, "cannot open: %s",
			 c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
		return map_sqlite(rc);
	}
	sqlite3_extended_result_codes(c->db, 1);
	sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
	return PGW_OK;
}

/* WAL so readers never wait for the writer; FULL so a commit is on disk
 * (not only in the OS cache) before the caller hears "ok". */
static pgw_err writer_configure(reg_conn *c, char *why, size_t whylen)
{
	char sql[64];
	sqlite3_stmt *st;
	bool wal = false;
	int rc;

	rc = sqlite3_prepare_v2(c->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		wal = strcmp((const char *)sqlite3_column_text(st, 0), "wal") == 0;
	rc = rc == SQLITE_OK ? sqlite3_finalize(st) : rc;
	if (!wal) {
		snprintf(why, whylen, "cannot switch to WAL mode: %s",
			 rc != SQLITE_OK ? sqlite3_errmsg(c->db) : "not supported here");
		return rc != SQLITE_OK ? map_sqlite(rc) : PGW_EIO;
	}
	snprintf(sql, sizeof sql, "PRAGMA journal_size_limit = %d", WAL_SIZE_LIMIT);
	if (conn_pragma(c, "PRAGMA synchronous = FULL", why, whylen) != PGW_OK ||
	    conn_pragma(c, sql, why, whylen) != PGW_OK)
		return PGW_EIO;
	return PGW_OK;
}

/* ---- schema ---- */

static pgw_err migrate_steps(reg_conn *c, int from, char *why, size_t whylen)
{
	char sql[64];
	int v;

	for (v = from; v < SCHEMA_VERSION; v++) {
		char *msg = NULL;
		int rc = sqlite3_exec(c->db, migrations[v], NULL, NULL, &msg);

		if (rc != SQLITE_OK) {
			snprintf(why, whylen, "schema upgrade to version %d failed: %s",
				 v + 1, msg ? msg : sqlite3_errstr(rc));
			sqlite3_free(msg);
			return map_sqlite(rc);
		}
	}
	/* PRAGMA takes no parameters; the value is our own constant. */
	snprintf(sql, sizeof sql, "PRAGMA user_version = %d", SCHEMA_VERSION);
	return conn_pragma(c, sql, why, whylen);
}

/* Bring the file to SCHEMA_VERSION in one transaction: a crash mid-way
 * leaves the old version intact. An up-to-date file is left untouched. */
static pgw_err migrate(reg_conn *c, char *why, size_t whylen)
{
	char from[24], to[24];
	int64_t version = 0;
	pgw_err err;

	err = conn_pragma(c, "BEGIN IMMEDIATE", why, whylen);
	if (err != PGW_OK)
		return err;
	err = conn_query_int(c, "PRAGMA user_version", &version);
	if (err != PGW_OK) {
		snprintf(why, whylen, "cannot read the schema version: %s",
			 sqlite3_errmsg(c->db));
		goto fail;
	}
	if (version > SCHEMA_VERSION) {
		snprintf(why, whylen,
			 "schema version %lld is newer than this pushgw supports (%d)",
			 (long long)version, SCHEMA_VERSION);
		err = PGW_ECONFIG;
		goto fail;
	}
	if (version == SCHEMA_VERSION)
		return conn_pragma(c, "COMMIT", why, whylen);
	err = migrate_steps(c, (int)version, why, whylen);
	if (err != PGW_OK)
		goto fail;
	err = conn_pragma(c, "COMMIT", why, whylen);
	if (err != PGW_OK)
		goto fail;
	snprintf(from, sizeof from, "%lld", (long long)version);
	snprintf(to, sizeof to, "%d", SCHEMA_VERSION);
	pgw_log(PGW_LOG_INFO, "registry: schema migrated", "from_version", from,
		"to_version", to, NULL);
	return PGW_OK;
fail:
	sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
	return err;
}

/* Tokens live here: a new file is private to the owner (SQLite gives its
 * -wal and -shm files the same mode). The folder is synced so the new
 * directory entry itself survives a power cut. */
static pgw_err create_private_file(const char *path, char *why, size_t whylen)
{
	char *dir_copy;
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	if (fd < 0 && errno == EEXIST)
		return PGW_OK;
	if (fd < 0) {
		snprintf(why, whylen, "cannot create: %s", strerror(errno));
		return PGW_EIO;
	}
	close(fd);
	dir_copy = strdup(path);
	if (!dir_copy)
		return PGW_ENOMEM;
	fd = open(dirname(dir_copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	free(dir_copy);
	return PGW_OK;
}

/* ---- open / close ---- */

static pgw_err open_readers(registry_store *reg, char *why, size_t whylen)
{
	int i;

	for (i = 0; i < READERS; i++) {
		reg_conn *c = &reg->readers[i];

		if (conn_open(c, reg->path, why, whylen) != PGW_OK ||
		    conn_pragma(c, "PRAGMA query_only = ON", why, whylen) != PGW_OK)
			return PGW_EIO;
		c->next_idle = reg->idle;
		reg->idle = c;
	}
	return PGW_OK;
}

static pgw_err store_alloc(const char *path, registry_store **out)
{
	registry_store *reg = calloc(1, sizeof *reg);

	if (!reg)
		return PGW_ENOMEM;
	reg->path = strdup(path);
	if (!reg->path) {
		free(reg);
		return PGW_ENOMEM;
	}
	pthread_mutex_init(&reg->write_lock, NULL);
	pthread_cond_init(&reg->write_done, NULL);
	pthread_mutex_init(&reg->read_lock, NULL);
	pthread_cond_init(&reg->reader_free, NULL);
	*out = reg;
	return PGW_OK;
}

static void sqlite_close(registry_store *reg)
{
	int i;

	if (!reg)
		return;
	for (i = 0; i < READERS; i++)
		conn_close(&reg->readers[i]);
	/* The writer goes last: the last connection checkpoints the WAL. */
	conn_close(&reg->writer);
	pthread_mutex_destroy(&reg->write_lock);
	pthread_cond_destroy(&reg->write_done);
	pthread_mutex_destroy(&reg->read_lock);
	pthread_cond_destroy(&reg->reader_free);
	free(reg->path);
	free(reg);
}

static pgw_err sqlite_open(const pgw_config *cfg, registry_store **out, char *why, size_t whylen)
{
	registry_store *reg = NULL;
	pgw_err err;

	*out = NULL;
	err = create_private_file(cfg->registry_path, why, whylen);
	if (err != PGW_OK)
		return err;
	err = store_alloc(cfg->registry_path, &reg);
	if (err != PGW_OK) {
		snprintf(why, whylen, "out of memory");
		return err;
	}
	err = conn_open(&reg->writer, reg->path, why, whylen);
	if (err == PGW_OK)
		err = writer_configure(&reg->writer, why, whylen);
	if (err == PGW_OK)
		err = migrate(&reg->writer, why, whylen);
	if (err == PGW_OK)
		err = open_readers(reg, why, whylen);
	if (err != PGW_OK) {
		sqlite_close(reg);
		return err;
	}
	*out = reg;
	return PGW_OK;
}

/* A local file has no outage of its own to report: a broken disk shows as
 * failed calls, which answer 503 one by one. */
static bool sqlite_healthy(registry_store *reg)
{
	return reg != NULL;
}

/* ---- group commit ---- */

/* Run one op inside the batch, undoing only its own changes on failure.
 * False when the op's failure took the whole transaction with it: SQLite
 * rolls back everything, not just the statement, after some errors (a full
 * disk, an I/O error, a trigger's RAISE(ROLLBACK)). */
static bool batch_run_op(reg_conn *c, write_op *op)
{
	pgw_err err = conn_simple(c, ST_SAVEPOINT);

	if (err == PGW_OK) {
		op->rc = op->run(c, op);
		if (sqlite3_get_autocommit(c->db)) {
			if (op->rc == PGW_OK)
				op->rc = PGW_EIO;
			return false;
		}
		if (op->rc != PGW_OK)
			conn_simple(c, ST_ROLLBACK_TO);
		err = conn_simple(c, ST_RELEASE);
	}
	if (err != PGW_OK)
		op->rc = err;
	return !sqlite3_get_autocommit(c->db);
}

/* One transaction for the whole batch: the single fsync at COMMIT makes
 * every op in it durable at once. If the commit fails, nothing of the batch
 * happened and every op reports the failure. If one op loses the
 * transaction, the batch stops there: carrying on would run each later op
 * in a transaction of its own (SAVEPOINT opens one, RELEASE commits it)
 * while the batch reports failure. That op fails; the others, undone or
 * never run, are marked to run again in the next batch. */
static void batch_commit(reg_conn *c, write_op *batch)
{
	pgw_err err = conn_simple(c, ST_BEGIN);
	write_op *op, *lost = NULL;

	for (op = batch; err == PGW_OK && op && !lost; op = op->next)
		if (!batch_run_op(c, op))
			lost = op;
	if (lost) {
		for (op = batch; op; op = op->next)
			op->again = op != lost;
		return;
	}
	if (err == PGW_OK)
		err = conn_simple(c, ST_COMMIT);
	if (err == PGW_OK)
		return;
	if (!sqlite3_get_autocommit(c->db))
		conn_simple(c, ST_ROLLBACK);
	for (op = batch; op; op = op->next)
		op->rc = err;
}

/* Detach up to BATCH_MAX queued ops. Called with write_lock held. */
static write_op *queue_take(registry_store *reg)
{
	write_op *head = reg->queue_head, *last = head;
	int n = 1;

	while (last->next && n < BATCH_MAX) {
		last = last->next;
		n++;
	}
	reg->queue_head = last->next;
	if (!reg->queue_head)
		reg->queue_tail = NULL;
	last->next = NULL;
	return head;
}

/* Mark a finished batch's ops done, and put those to run again back at the
 * head of the queue, in their order. Called with write_lock held. */
static void batch_settle(registry_store *reg, write_op *batch)
{
	write_op *o, *next, *again = NULL, **tail = &again, *last = NULL;

	for (o = batch; o; o = next) {
		next = o->next;
		if (!o->again) {
			o->done = true;
			continue;
		}
		o->again = false;
		*tail = last = o;
		tail = &o->next;
	}
	if (!again)
		return;
	last->next = reg->queue_head;
	reg->queue_head = again;
	if (!reg->queue_tail)
		reg->queue_tail = last;
}

/* Queue op and return once a committed batch (or a failed one) holds it.
 * Whoever finds no batch in progress commits what is queued, its own op
 * included; the others sleep until their op is done. */
static pgw_err store_write(registry_store *reg, write_op *op)
{
	write_op *batch;

	op->done = false;
	op->again = false;
	op->next = NULL;
	pthread_mutex_lock(&reg->write_lock);
	if (reg->queue_tail)
		reg->queue_tail->next = op;
	else
		reg->queue_head = op;
	reg->queue_tail = op;
	while (!op->done) {
		if (reg->committing) {
			pthread_cond_wait(&reg->write_done, &reg->write_lock);
			continue;
		}
		reg->committing = true;
		batch = queue_take(reg);
		pthread_mutex_unlock(&reg->write_lock);
		batch_commit(&reg->writer, batch);
		pthread_mutex_lock(&reg->write_lock);
		batch_settle(reg, batch);
		reg->committing = false;
		pthread_cond_broadcast(&reg->write_done);
	}
	pthread_mutex_unlock(&reg->write_lock);
	return op->rc;
}

/* ---- binding helpers ---- */

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

static pgw_err step_changes(reg_conn *c, sqlite3_stmt *st, const char *what,
			    int *changes)
{
	pgw_err err = conn_exec(c, st, what);

	*changes = err == PGW_OK ? sqlite3_changes(c->db) : 0;
	return err;
}

/* ---- put ---- */

/* PGW_OK when (ext, device_id) is free or holds a device of an app that
 * apps allows; PGW_EAUTH otherwise. Inside the write transaction (the
 * single writer's), so the answer still holds when the write follows. */
static pgw_err check_owner(reg_conn *c, const char *ext, const char *device_id,
			   const registry_apps *apps, bool *exists)
{
	sqlite3_stmt *st = conn_stmt(c, ST_OWNER);
	bool allowed = true;
	int rc;

	*exists = false;
	if (!st)
		return PGW_EIO;
	bind_text(st, 1, ext);
	bind_text(st, 2, device_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*exists = true;
		allowed = registry_apps_allow(apps, (const char *)sqlite3_column_text(st, 0));
	}
	stmt_done(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return log_failure(c, "read device app", rc);
	return allowed ? PGW_OK : PGW_EAUTH;
}

typedef struct put_op {
	write_op op;
	const char *ext, *device_id;
	const pgw_target *t;
	const registry_apps *apps;
	int64_t now_ms;
	bool created;
	int moved; /* rows taken from another extension or device id */
	int64_t created_at_ms; /* of the row as this put left it */
} put_op;

static pgw_err move_away_by(reg_conn *c, put_op *p, enum stmt_id id, const char *token)
{
	sqlite3_stmt *st = conn_stmt(c, id);
	pgw_err err;
	int n;

	if (!st)
		return PGW_EIO;
	sqlite3_bind_int(st, 1, (int)p->t->provider);
	bind_text(st, 2, p->t->app->name);
	bind_text(st, 3, token);
	bind_text(st, 4, p->ext);
	bind_text(st, 5, p->device_id);
	err = step_changes(c, st, "move device", &n);
	p->moved += n;
	return err;
}

/* A token names one app install, so a row elsewhere holding either of this
 * device's tokens is this device's old registration. */
static pgw_err put_move_away(reg_conn *c, put_op *p)
{
	const pgw_target *t = p->t;
	pgw_err err = move_away_by(c, p, ST_MOVE_AWAY, registry_identity_token(t));

	if (err != PGW_OK || !t->remote_token)
		return err;
	return move_away_by(c, p, ST_MOVE_AWAY_REMOTE, t->remote_token);
}

/* Binds ?1..?11 in the order both ST_UPDATE and ST_INSERT use. */
static void put_bind(sqlite3_stmt *st, const put_op *p)
{
	const pgw_target *t = p->t;

	bind_text(st, 1, p->ext);
	bind_text(st, 2, p->device_id);
	sqlite3_bind_int(st, 3, (int)t->provider);
	bind_text(st, 4, t->app->name);
	bind_text(st, 5, t->token);
	bind_text(st, 6, t->remote_token);
	sqlite3_bind_int(st, 7, (int)t->environment);
	bind_text(st, 8, t->call_str);
	bind_text(st, 9, t->call_snd);
	sqlite3_bind_int(st, 10, t->silent ? 1 : 0);
	sqlite3_bind_int64(st, 11, p->now_ms);
}

/* A replaced row keeps its creation time; read it inside the transaction,
 * so the caller's record is the row as this put left it. */
static pgw_err put_read_created(reg_conn *c, put_op *p)
{
	sqlite3_stmt *st = conn_stmt(c, ST_CREATED_AT);
	int rc;

	if (!st)
		return PGW_EIO;
	bind_text(st, 1, p->ext);
	bind_text(st, 2, p->device_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		p->created_at_ms = sqlite3_column_int64(st, 0);
	stmt_done(st);
	return rc == SQLITE_ROW ? PGW_OK : log_failure(c, "read created_at", rc);
}

static pgw_err put_run(reg_conn *c, write_op *op)
{
	put_op *p = (put_op *)op;
	sqlite3_stmt *st;
	bool exists;
	int changed;
	pgw_err err;

	p->moved = 0;
	err = check_owner(c, p->ext, p->device_id, p->apps, &exists);
	if (err != PGW_OK)
		return err;
	err = put_move_away(c, p);
	if (err != PGW_OK)
		return err;
	st = conn_stmt(c, ST_UPDATE);
	if (!st)
		return PGW_EIO;
	put_bind(st, p);
	err = step_changes(c, st, "update device", &changed);
	if (err != PGW_OK)
		return err;
	p->created = changed == 0;
	if (!p->created)
		return put_read_created(c, p);
	p->created_at_ms = p->now_ms;
	st = conn_stmt(c, ST_INSERT);
	if (!st)
		return PGW_EIO;
	put_bind(st, p);
	return conn_exec(c, st, "insert device");
}

static pgw_err sqlite_put(registry_store *reg, const char *ext, const char *device_id,
			  const pgw_target *t, const registry_apps *apps, int64_t now_ms,
			  registry_put_outcome *out)
{
	put_op p = { .op.run = put_run, .ext = ext, .device_id = device_id, .t = t,
		     .apps = apps, .now_ms = now_ms };
	pgw_err err = store_write(reg, &p.op);

	if (err != PGW_OK)
		return err;
	out->created = p.created;
	out->moved = p.moved;
	out->created_at_ms = p.created_at_ms;
	out->updated_at_ms = now_ms;
	return PGW_OK;
}

/* ---- deletes ---- */

typedef struct delete_op {
	write_op op;
	const char *ext, *device_id; /* device_id NULL = whole extension */
	const registry_apps *apps;   /* NULL = every app */
	int deleted;
} delete_op;

static pgw_err delete_device_run(reg_conn *c, delete_op *d)
{
	sqlite3_stmt *st;
	bool exists;
	pgw_err err = check_owner(c, d->ext, d->device_id, d->apps, &exists);

	if (err != PGW_OK || !exists)
		return err;
	st = conn_stmt(c, ST_DELETE_DEVICE);
	if (!st)
		return PGW_EIO;
	bind_text(st, 1, d->ext);
	bind_text(st, 2, d->device_id);
	return step_changes(c, st, "delete", &d->deleted);
}

/* Every device of the extension, or those of each allowed app in turn:
 * all inside the one transaction. */
static pgw_err delete_extension_run(reg_conn *c, delete_op *d)
{
	size_t i, n = d->apps ? d->apps->n : 1;
	pgw_err err = PGW_OK;
	int changed;

	for (i = 0; err == PGW_OK && i < n; i++) {
		sqlite3_stmt *st = conn_stmt(c, d->apps ? ST_DELETE_EXTENSION_APP : ST_DELETE_EXTENSION);

		if (!st)
			return PGW_EIO;
		bind_text(st, 1, d->ext);
		if (d->apps)
			bind_text(st, 2, d->apps->names[i]);
		err = step_changes(c, st, "delete extension", &changed);
		d->deleted += changed;
	}
	return err;
}

static pgw_err delete_run(reg_conn *c, write_op *op)
{
	delete_op *d = (delete_op *)op;

	d->deleted = 0;
	return d->device_id ? delete_device_run(c, d) : delete_extension_run(c, d);
}

static pgw_err sqlite_remove(registry_store *reg, const char *ext, const char *device_id,
			     const registry_apps *apps, int *deleted)
{
	delete_op d = { .op.run = delete_run, .ext = ext, .device_id = device_id, .apps = apps };
	pgw_err err = store_write(reg, &d.op);

	*deleted = err == PGW_OK ? d.deleted : 0;
	return err;
}

/* ---- prune and environment ---- */

typedef struct token_op {
	write_op op;
	pgw_provider provider;
	const char *app, *token;
	int64_t not_after_ms;
	pgw_apns_env env;
	int removed, changed;
} token_op;

static void token_bind(sqlite3_stmt *st, const token_op *k)
{
	sqlite3_bind_int(st, 1, (int)k->provider);
	bind_text(st, 2, k->app);
	bind_text(st, 3, k->token);
}

/* The row this token identifies goes. When it is the alert token of a
 * device that also has a VoIP token, only that dead token is dropped: the
 * device still rings through PushKit. */
static pgw_err prune_run(reg_conn *c, write_op *op)
{
	token_op *k = (token_op *)op;
	sqlite3_stmt *st = conn_stmt(c, ST_PRUNE);
	pgw_err err;

	k->removed = k->changed = 0;
	if (!st)
		return PGW_EIO;
	token_bind(st, k);
	sqlite3_bind_int64(st, 4, k->not_after_ms);
	err = step_changes(c, st, "prune", &k->removed);
	if (err != PGW_OK || k->removed || k->provider != PGW_PROVIDER_APNS)
		return err;
	st = conn_stmt(c, ST_PRUNE_REMOTE);
	if (!st)
		return PGW_EIO;
	token_bind(st, k);
	sqlite3_bind_int64(st, 4, k->not_after_ms);
	return step_changes(c, st, "prune remote token", &k->changed);
}

static pgw_err sqlite_prune(registry_store *reg, pgw_provider provider, const char *app,
			    const char *token, int64_t not_after_ms, registry_prune_outcome *out)
{
	token_op k = { .op.run = prune_run, .provider = provider, .app = app,
		       .token = token, .not_after_ms = not_after_ms };
	pgw_err err = store_write(reg, &k.op);

	if (err != PGW_OK)
		return err;
	out->removed = k.removed;
	out->changed = k.changed;
	return PGW_OK;
}

static pgw_err set_env_run(reg_conn *c, write_op *op)
{
	token_op *k = (token_op *)op;
	enum stmt_id ids[2] = { ST_SET_ENV, ST_SET_ENV_REMOTE };
	pgw_err err = PGW_OK;
	int i;

	for (i = 0; err == PGW_OK && i < 2; i++) {
		sqlite3_stmt *st = conn_stmt(c, ids[i]);

		if (!st)
			return PGW_EIO;
		token_bind(st, k);
		sqlite3_bind_int(st, 4, (int)k->env);
		err = conn_exec(c, st, "set environment");
	}
	return err;
}

static pgw_err sqlite_set_environment(registry_store *reg, const char *app, const char *token,
				      pgw_apns_env env)
{
	token_op k = { .op.run = set_env_run, .provider = PGW_PROVIDER_APNS,
		       .app = app, .token = token, .env = env };

	return store_write(reg, &k.op);
}

/* ---- reads ---- */

static reg_conn *reader_acquire(registry_store *reg)
{
	reg_conn *c;

	pthread_mutex_lock(&reg->read_lock);
	while (!reg->idle)
		pthread_cond_wait(&reg->reader_free, &reg->read_lock);
	c = reg->idle;
	reg->idle = c->next_idle;
	pthread_mutex_unlock(&reg->read_lock);
	return c;
}

static void reader_release(registry_store *reg, reg_conn *c)
{
	pthread_mutex_lock(&reg->read_lock);
	c->next_idle = reg->idle;
	reg->idle = c;
	pthread_cond_signal(&reg->reader_free);
	pthread_mutex_unlock(&reg->read_lock);
}

static pgw_err column_dup(sqlite3_stmt *st, int col, char **out)
{
	const unsigned char *s = sqlite3_column_text(st, col);

	*out = NULL;
	if (!s)
		return sqlite3_column_type(st, col) == SQLITE_NULL ? PGW_OK : PGW_ENOMEM;
	*out = strdup((const char *)s);
	return *out ? PGW_OK : PGW_ENOMEM;
}

/* Columns in DEVICE_COLUMNS order, into a zeroed record (which keeps
 * what was copied when this fails: the caller frees the lot). */
static pgw_err device_from_row(sqlite3_stmt *st, registry_device *d)
{
	if (column_dup(st, 0, &d->extension) != PGW_OK ||
	    column_dup(st, 1, &d->device_id) != PGW_OK ||
	    column_dup(st, 3, &d->app) != PGW_OK ||
	    column_dup(st, 4, &d->token) != PGW_OK ||
	    column_dup(st, 5, &d->remote_token) != PGW_OK ||
	    column_dup(st, 7, &d->call_str) != PGW_OK ||
	    column_dup(st, 8, &d->call_snd) != PGW_OK)
		return PGW_ENOMEM;
	d->provider = (pgw_provider)sqlite3_column_int(st, 2);
	d->environment = (pgw_apns_env)sqlite3_column_int(st, 6);
	d->silent = sqlite3_column_int(st, 9) != 0;
	d->created_at_ms = sqlite3_column_int64(st, 10);
	d->updated_at_ms = sqlite3_column_int64(st, 11);
	return PGW_OK;
}

/* Collect every row a bound read statement yields, then reset it. */
static pgw_err read_rows(reg_conn *c, sqlite3_stmt *st, registry_device **out, size_t *n)
{
	registry_device *arr = NULL;
	size_t count = 0, cap = 0;
	pgw_err err = PGW_OK;
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		registry_device *d = registry_devices_push(&arr, &count, &cap);

		err = d ? device_from_row(st, d) : PGW_ENOMEM;
		if (err != PGW_OK)
			break;
	}
	if (err == PGW_OK && rc != SQLITE_DONE)
		err = log_failure(c, "read devices", rc);
	stmt_done(st);
	if (err != PGW_OK) {
		registry_devices_free(arr, count);
		return err;
	}
	*out = arr;
	*n = count;
	return PGW_OK;
}

static pgw_err sqlite_list(registry_store *reg, const char *ext, registry_device **out,
			   size_t *n)
{
	reg_conn *c = reader_acquire(reg);
	sqlite3_stmt *st = conn_stmt(c, ST_LIST);
	pgw_err err = PGW_EIO;

	if (st) {
		bind_text(st, 1, ext);
		err = read_rows(c, st, out, n);
	}
	reader_release(reg, c);
	return err;
}

static pgw_err sqlite_get(registry_store *reg, const char *ext, const char *device_id,
			  registry_device **out)
{
	reg_conn *c = reader_acquire(reg);
	sqlite3_stmt *st = conn_stmt(c, ST_GET);
	pgw_err err = PGW_EIO;
	size_t n = 0;

	if (st) {
		bind_text(st, 1, ext);
		bind_text(st, 2, device_id);
		err = read_rows(c, st, out, &n);
	}
	reader_release(reg, c);
	if (err == PGW_OK && n == 0)
		return PGW_ENOTFOUND;
	return err;
}

static pgw_err sqlite_count(registry_store *reg, uint64_t *n)
{
	reg_conn *c = reader_acquire(reg);
	sqlite3_stmt *st = conn_stmt(c, ST_COUNT);
	pgw_err err = PGW_EIO;
	int rc;

	if (st) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			*n = (uint64_t)sqlite3_column_int64(st, 0);
		stmt_done(st);
		err = rc == SQLITE_ROW ? PGW_OK : log_failure(c, "count", rc);
	}
	reader_release(reg, c);
	return err;
}

/* ---- SIP-edge bindings ---- */

typedef struct binding_put_op {
	write_op op;
	const registry_binding *b;
	const pgw_target *t;
	int64_t now_ms;
	bool created;
	int moved;
} binding_put_op;

/* The device row of binding id: only when the binding is under another
 * extension than other_than (it is moving there), or wherever it is
 * (other_than NULL, for a removal). */
static pgw_err binding_device_delete(reg_conn *c, const char *id, const char *other_than)
{
	sqlite3_stmt *st = conn_stmt(c, ST_BINDING_DELETE_DEVICE);

	if (!st)
		return PGW_EIO;
	bind_text(st, 1, id);
	bind_text(st, 2, other_than);
	return conn_exec(c, st, "delete binding device");
}

/* The device row (b->extension, b->id): t written exactly as a put with
 * every app allowed writes it (moves included), or no row at all. */
static pgw_err binding_device_write(reg_conn *c, binding_put_op *p)
{
	put_op dev = { .op.run = put_run, .ext = p->b->extension, .device_id = p->b->id,
		       .t = p->t, .now_ms = p->now_ms };
	sqlite3_stmt *st;
	pgw_err err;

	if (p->t) {
		err = put_run(c, &dev.op);
		p->moved = dev.moved;
		return err;
	}
	st = conn_stmt(c, ST_DELETE_DEVICE);
	if (!st)
		return PGW_EIO;
	bind_text(st, 1, p->b->extension);
	bind_text(st, 2, p->b->id);
	return conn_exec(c, st, "delete device");
}

/* Binds ?1..?9 in the order both ST_BINDING_UPDATE and ST_BINDING_INSERT use. */
static void binding_bind(sqlite3_stmt *st, const binding_put_op *p)
{
	const registry_binding *b = p->b;

	bind_text(st, 1, b->id);
	bind_text(st, 2, b->edge);
	bind_text(st, 3, b->aor);
	bind_text(st, 4, b->extension);
	bind_text(st, 5, b->contact);
	bind_text(st, 6, b->instance);
	bind_text(st, 7, p->t ? p->t->app->name : NULL);
	sqlite3_bind_int64(st, 8, b->expires_at_ms);
	sqlite3_bind_int64(st, 9, p->now_ms);
}

/* The old device row goes first (while the binding still says where it
 * was), then the new one, then the binding row itself. */
static pgw_err binding_put_run(reg_conn *c, write_op *op)
{
	binding_put_op *p = (binding_put_op *)op;
	sqlite3_stmt *st;
	int changed;
	pgw_err err;

	p->moved = 0;
	err = binding_device_delete(c, p->b->id, p->b->extension);
	if (err == PGW_OK)
		err = binding_device_write(c, p);
	if (err != PGW_OK)
		return err;
	st = conn_stmt(c, ST_BINDING_UPDATE);
	if (!st)
		return PGW_EIO;
	binding_bind(st, p);
	err = step_changes(c, st, "update binding", &changed);
	if (err != PGW_OK)
		return err;
	p->created = changed == 0;
	if (!p->created)
		return PGW_OK;
	st = conn_stmt(c, ST_BINDING_INSERT);
	if (!st)
		return PGW_EIO;
	binding_bind(st, p);
	return conn_exec(c, st, "insert binding");
}

static pgw_err sqlite_binding_put(registry_store *reg, const registry_binding *b,
				  const pgw_target *t, int64_t now_ms,
				  registry_binding_outcome *out)
{
	binding_put_op p = { .op.run = binding_put_run, .b = b, .t = t, .now_ms = now_ms };
	pgw_err err = store_write(reg, &p.op);

	if (err != PGW_OK)
		return err;
	out->created = p.created;
	out->moved = p.moved;
	return PGW_OK;
}

typedef struct binding_remove_op {
	write_op op;
	const char *id;   /* a removal: this binding */
	const char *edge; /* an expiry: the edge's bindings expired at now_ms */
	int64_t now_ms;
	int removed;
} binding_remove_op;

/* Device rows first: they are found through their bindings. */
static pgw_err binding_delete_run(reg_conn *c, write_op *op)
{
	binding_remove_op *r = (binding_remove_op *)op;
	sqlite3_stmt *st;
	pgw_err err;

	r->removed = 0;
	err = binding_device_delete(c, r->id, NULL);
	if (err != PGW_OK)
		return err;
	st = conn_stmt(c, ST_BINDING_DELETE);
	if (!st)
		return PGW_EIO;
	bind_text(st, 1, r->id);
	return step_changes(c, st, "delete binding", &r->removed);
}

static pgw_err binding_expire_run(reg_conn *c, write_op *op)
{
	binding_remove_op *r = (binding_remove_op *)op;
	sqlite3_stmt *st = conn_stmt(c, ST_BINDING_EXPIRE_DEVICES);
	pgw_err err;

	r->removed = 0;
	if (!st)
		return PGW_EIO;
	bind_text(st, 1, r->edge);
	sqlite3_bind_int64(st, 2, r->now_ms);
	err = conn_exec(c, st, "expire binding devices");
	if (err != PGW_OK)
		return err;
	st = conn_stmt(c, ST_BINDING_EXPIRE);
	if (!st)
		return PGW_EIO;
	bind_text(st, 1, r->edge);
	sqlite3_bind_int64(st, 2, r->now_ms);
	return step_changes(c, st, "expire bindings", &r->removed);
}

static pgw_err sqlite_binding_remove(registry_store *reg, const char *id, int *removed)
{
	binding_remove_op r = { .op.run = binding_delete_run, .id = id };
	pgw_err err = store_write(reg, &r.op);

	*removed = err == PGW_OK ? r.removed : 0;
	return err;
}

static pgw_err sqlite_binding_expire(registry_store *reg, const char *edge, int64_t now_ms,
				     int *removed)
{
	binding_remove_op r = { .op.run = binding_expire_run, .edge = edge, .now_ms = now_ms };
	pgw_err err = store_write(reg, &r.op);

	*removed = err == PGW_OK ? r.removed : 0;
	return err;
}

/* Columns in BINDING_COLUMNS order, into a zeroed record (which keeps
 * what was copied when this fails: the caller frees the lot). */
static pgw_err binding_from_row(sqlite3_stmt *st, registry_binding *b)
{
	if (column_dup(st, 0, &b->id) != PGW_OK || column_dup(st, 1, &b->edge) != PGW_OK ||
	    column_dup(st, 2, &b->aor) != PGW_OK || column_dup(st, 3, &b->extension) != PGW_OK ||
	    column_dup(st, 4, &b->contact) != PGW_OK ||
	    column_dup(st, 5, &b->instance) != PGW_OK || column_dup(st, 6, &b->app) != PGW_OK)
		return PGW_ENOMEM;
	b->expires_at_ms = sqlite3_column_int64(st, 7);
	b->updated_at_ms = sqlite3_column_int64(st, 8);
	return PGW_OK;
}

/* Collect every row a bound binding read yields, then reset it. */
static pgw_err read_binding_rows(reg_conn *c, sqlite3_stmt *st, registry_binding **out,
				 size_t *n)
{
	registry_binding *arr = NULL;
	size_t count = 0, cap = 0;
	pgw_err err = PGW_OK;
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		registry_binding *b = registry_bindings_push(&arr, &count, &cap);

		err = b ? binding_from_row(st, b) : PGW_ENOMEM;
		if (err != PGW_OK)
			break;
	}
	if (err == PGW_OK && rc != SQLITE_DONE)
		err = log_failure(c, "read bindings", rc);
	stmt_done(st);
	if (err != PGW_OK) {
		registry_bindings_free(arr, count);
		return err;
	}
	*out = arr;
	*n = count;
	return PGW_OK;
}

/* One binding read: stmt says which of the other fields count. */
typedef struct binding_query {
	enum stmt_id stmt;
	const char *id, *edge, *aor, *instance;
	const pgw_target *t;
	int64_t now_ms;
} binding_query;

static void binding_query_bind(sqlite3_stmt *st, const binding_query *q)
{
	switch (q->stmt) {
	case ST_BINDING_GET:
		bind_text(st, 1, q->id);
		break;
	case ST_BINDING_LIST:
		bind_text(st, 1, q->edge);
		sqlite3_bind_int64(st, 2, q->now_ms);
		break;
	case ST_BINDING_BY_INSTANCE:
		bind_text(st, 1, q->edge);
		bind_text(st, 2, q->aor);
		bind_text(st, 3, q->instance);
		break;
	default: /* ST_BINDING_BY_TOKEN */
		bind_text(st, 1, q->edge);
		bind_text(st, 2, q->aor);
		sqlite3_bind_int(st, 3, (int)q->t->provider);
		bind_text(st, 4, q->t->app->name);
		bind_text(st, 5, registry_identity_token(q->t));
		bind_text(st, 6, q->t->remote_token);
		break;
	}
}

static pgw_err binding_read(registry_store *reg, const binding_query *q,
			    registry_binding **out, size_t *n)
{
	reg_conn *c = reader_acquire(reg);
	sqlite3_stmt *st = conn_stmt(c, q->stmt);
	pgw_err err = PGW_EIO;

	if (st) {
		binding_query_bind(st, q);
		err = read_binding_rows(c, st, out, n);
	}
	reader_release(reg, c);
	return err;
}

/* A read of at most one binding; PGW_ENOTFOUND when there is none. */
static pgw_err binding_read_one(registry_store *reg, const binding_query *q,
				registry_binding **out)
{
	size_t n = 0;
	pgw_err err = binding_read(reg, q, out, &n);

	if (err == PGW_OK && n == 0)
		return PGW_ENOTFOUND;
	return err;
}

static pgw_err sqlite_binding_get(registry_store *reg, const char *id, registry_binding **out)
{
	binding_query q = { .stmt = ST_BINDING_GET, .id = id };

	return binding_read_one(reg, &q, out);
}

static pgw_err sqlite_binding_find(registry_store *reg, const char *edge, const char *aor,
				   const char *instance, const pgw_target *t,
				   registry_binding **out)
{
	binding_query q = { .stmt = instance ? ST_BINDING_BY_INSTANCE : ST_BINDING_BY_TOKEN,
			    .edge = edge, .aor = aor, .instance = instance, .t = t };

	return binding_read_one(reg, &q, out);
}

static pgw_err sqlite_binding_list(registry_store *reg, const char *edge, int64_t now_ms,
				   registry_binding **out, size_t *n)
{
	binding_query q = { .stmt = ST_BINDING_LIST, .edge = edge, .now_ms = now_ms };

	return binding_read(reg, &q, out, n);
}

const registry_backend registry_sqlite_backend = {
	.name = "sqlite",
	.open = sqlite_open,
	.close = sqlite_close,
	.put = sqlite_put,
	.list = sqlite_list,
	.get = sqlite_get,
	.remove = sqlite_remove,
	.prune = sqlite_prune,
	.set_environment = sqlite_set_environment,
	.count = sqlite_count,
	.healthy = sqlite_healthy,
	.binding_put = sqlite_binding_put,
	.binding_get = sqlite_binding_get,
	.binding_find = sqlite_binding_find,
	.binding_list = sqlite_binding_list,
	.binding_remove = sqlite_binding_remove,
	.binding_expire = sqlite_binding_expire,
};
