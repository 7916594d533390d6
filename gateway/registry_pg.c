/* Registry backend on PostgreSQL (registry.url), shared by every replica,
 * with the SQLite file's rows and rules. Any thread but the event loop's may
 * call in; each call borrows a pooled session, reopened after an outage. */
#include "pushgw/registry_backend.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pushgw/log.h"
#include "pushgw/util.h"

/* One per registry queue thread (the callback thread shares them); every
 * replica holds at most this many server connections. */
#define POOL_SIZE 4
/* A call that finds every connection busy this long answers ETIMEOUT. */
#define ACQUIRE_TIMEOUT_MS 5000
/* A pool with no session free and no call finished for this long is stuck. */
#define BUSY_STUCK_MS 2000
/* After a failed connection attempt, calls fail at once for this long
 * instead of each waiting for a server that is not there. */
#define RECONNECT_PAUSE_MS 500
/* Group commit: at most this many puts share one transaction, and at most
 * PUT_LEADERS transactions of puts run at once (the other sessions stay
 * free for reads and prunes). */
#define PUT_BATCH_MAX 32
#define PUT_LEADERS (POOL_SIZE / 2)
/* Attempts of a write that lost a race (deadlock, serialization, unique). */
#define CONFLICT_ATTEMPTS 4
/* Replicas starting together migrate one at a time under this lock. */
#define MIGRATION_LOCK "7075736867770001"

/* Defaults that a URL may override (it comes later in the list). Timeouts
 * bound how long a dead server or a stuck lock holds a registry thread
 * (a server that stops answering on an open session is bounded by nothing
 * here: the HTTP API gives up on the call at its own deadline). */
static const char *const conn_keys[] = {
	"connect_timeout", "application_name", "keepalives_idle", "keepalives_interval",
	"keepalives_count", "tcp_user_timeout", "options", "dbname", NULL,
};
static const char *const conn_defaults[] = {
	"3", "pushgw", "30", "10", "3", "15000",
	"-c statement_timeout=15000 -c lock_timeout=10000",
};

/* Schema history: entry i upgrades version i to i + 1. Append only — a
 * released step is never edited. As in the SQLite file, a device's identity
 * (VoIP token, else alert token) is unique per (provider, app), and so is an
 * alert token; here both are unique indexes, so no race can break them.
 * Puts and prunes lock the tokens (and the extension/device id) they touch,
 * in one global order, before reading: a move on one replica then sees what
 * another replica committed a moment before, instead of failing on the
 * index. Times come from the server's clock, one clock for all replicas. */
static const char *const migrations[] = {
	"CREATE TABLE pushgw_device ("
	"  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
	"  extension text NOT NULL,"
	"  device_id text NOT NULL,"
	"  provider smallint NOT NULL,"
	"  app text NOT NULL,"
	"  token text,"
	"  remote_token text,"
	"  environment smallint NOT NULL DEFAULT 0,"
	"  call_str bytea," /* Contact parameters: any bytes, as the SQLite file keeps them */
	"  call_snd bytea,"
	"  silent boolean NOT NULL DEFAULT false,"
	"  created_at bigint NOT NULL,"
	"  updated_at bigint NOT NULL,"
	"  CHECK (token IS NOT NULL OR remote_token IS NOT NULL));"
	"CREATE UNIQUE INDEX pushgw_device_by_extension ON pushgw_device (extension, device_id);"
	"CREATE UNIQUE INDEX pushgw_device_by_token"
	"  ON pushgw_device (provider, app, (coalesce(token, remote_token)));"
	"CREATE UNIQUE INDEX pushgw_device_by_remote_token"
	"  ON pushgw_device (provider, app, remote_token) WHERE remote_token IS NOT NULL;"
	"CREATE FUNCTION pushgw_now_ms() RETURNS bigint LANGUAGE sql VOLATILE"
	"  AS $$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint $$;"
	"CREATE FUNCTION pushgw_token_key(p_provider smallint, p_app text, p_token text)"
	"  RETURNS bigint LANGUAGE sql IMMUTABLE STRICT"
	"  AS $$ SELECT hashtextextended(format('t/%s/%s/%s', p_provider, p_app, p_token), 0) $$;"
	/* A put limited to the apps of the caller's key (p_apps; NULL = every
	 * app): a row at (ext, device id) of another app is left alone and
	 * the call says forbidden. The check runs under the same lock as the
	 * write, so no other put can change the row's app in between. */
	"CREATE FUNCTION pushgw_put(p_ext text, p_device_id text, p_provider smallint,"
	"    p_app text, p_token text, p_remote text, p_env smallint, p_call_str bytea,"
	"    p_call_snd bytea, p_silent boolean, p_apps text[], OUT forbidden boolean,"
	"    OUT created boolean, OUT moved integer, OUT created_at bigint,"
	"    OUT updated_at bigint)"
	"  LANGUAGE plpgsql AS $$"
	"DECLARE"
	"  id_token text := coalesce(p_token, p_remote);"
	"  row_app text;"
	"  now_ms bigint;"
	"  k bigint;"
	"  n integer;"
	"BEGIN"
	"  FOR k IN SELECT DISTINCT key FROM unnest(ARRAY["
	"      pushgw_token_key(p_provider, p_app, id_token),"
	"      pushgw_token_key(p_provider, p_app, p_remote),"
	"      hashtextextended(format('d/%s/%s', p_ext, p_device_id), 0)]) AS key"
	"    WHERE key IS NOT NULL ORDER BY key LOOP"
	"    PERFORM pg_advisory_xact_lock(k);"
	"  END LOOP;"
	"  SELECT d.app INTO row_app FROM pushgw_device d"
	"    WHERE d.extension = p_ext AND d.device_id = p_device_id FOR UPDATE;"
	"  created := NOT FOUND;"
	"  forbidden := NOT created AND p_apps IS NOT NULL AND NOT (row_app = ANY (p_apps));"
	"  moved := 0;"
	"  IF forbidden THEN"
	"    created := false;"
	"    RETURN;"
	"  END IF;"
	"  now_ms := pushgw_now_ms();"
	"  DELETE FROM pushgw_device WHERE provider = p_provider AND app = p_app"
	"    AND coalesce(token, remote_token) = id_token"
	"    AND NOT (extension = p_ext AND device_id = p_device_id);"
	"  GET DIAGNOSTICS moved = ROW_COUNT;"
	"  IF p_remote IS NOT NULL THEN"
	"    DELETE FROM pushgw_device WHERE provider = p_provider AND app = p_app"
	"      AND remote_token = p_remote"
	"      AND NOT (extension = p_ext AND device_id = p_device_id);"
	"    GET DIAGNOSTICS n = ROW_COUNT;"
	"    moved := moved + n;"
	"  END IF;"
	"  INSERT INTO pushgw_device (extension, device_id, provider, app, token, remote_token,"
	"      environment, call_str, call_snd, silent, created_at, updated_at)"
	"    VALUES (p_ext, p_device_id, p_provider, p_app, p_token, p_remote, p_env,"
	"      p_call_str, p_call_snd, p_silent, now_ms, now_ms)"
	"    ON CONFLICT (extension, device_id) DO UPDATE SET provider = EXCLUDED.provider,"
	"      app = EXCLUDED.app, token = EXCLUDED.token, remote_token = EXCLUDED.remote_token,"
	"      environment = EXCLUDED.environment, call_str = EXCLUDED.call_str,"
	"      call_snd = EXCLUDED.call_snd, silent = EXCLUDED.silent,"
	"      updated_at = EXCLUDED.updated_at"
	"    RETURNING pushgw_device.created_at, pushgw_device.updated_at"
	"    INTO created_at, updated_at;"
	"END $$;"
	/* p_alert: the token may be the alert token of a device that keeps its
	 * VoIP token (APNs); then only that token goes. */
	"CREATE FUNCTION pushgw_prune(p_provider smallint, p_app text, p_token text,"
	"    p_not_after bigint, p_alert boolean, OUT removed integer, OUT changed integer)"
	"  LANGUAGE plpgsql AS $$"
	"BEGIN"
	"  PERFORM pg_advisory_xact_lock(pushgw_token_key(p_provider, p_app, p_token));"
	"  DELETE FROM pushgw_device WHERE provider = p_provider AND app = p_app"
	"    AND coalesce(token, remote_token) = p_token"
	"    AND (p_not_after = 0 OR updated_at < p_not_after);"
	"  GET DIAGNOSTICS removed = ROW_COUNT;"
	"  changed := 0;"
	"  IF removed = 0 AND p_alert THEN"
	"    UPDATE pushgw_device SET remote_token = NULL"
	"      WHERE provider = p_provider AND app = p_app AND remote_token = p_token"
	"      AND token IS NOT NULL AND (p_not_after = 0 OR updated_at < p_not_after);"
	"    GET DIAGNOSTICS changed = ROW_COUNT;"
	"  END IF;"
	"END $$;",
	/* SIP-edge bindings, as in the SQLite file: a binding's push target is
	 * the device row (extension, device_id = id). A binding put takes the
	 * locks pushgw_put() takes and the binding's own, in the one global
	 * order, then writes its device row through pushgw_put() itself (the
	 * locks are already held) and the binding row, all in one transaction.
	 * Removals delete the binding row first (its row lock orders them
	 * against a put of the same binding), then in a later statement, which
	 * sees what such a put committed, the device row it names. */
	"CREATE TABLE pushgw_sip_binding ("
	"  id text PRIMARY KEY,"
	"  edge text NOT NULL,"
	"  aor text NOT NULL,"
	"  extension text NOT NULL,"
	"  contact text NOT NULL,"
	"  instance text,"
	"  app text,"
	"  expires_at bigint NOT NULL,"
	"  updated_at bigint NOT NULL);"
	"CREATE INDEX pushgw_sip_binding_by_instance ON pushgw_sip_binding (edge, aor, instance);"
	"CREATE INDEX pushgw_sip_binding_by_expiry ON pushgw_sip_binding (edge, expires_at);"
	/* p_provider NULL: no push target, so no device row. */
	"CREATE FUNCTION pushgw_binding_put(p_id text, p_edge text, p_aor text, p_ext text,"
	"    p_contact text, p_instance text, p_expires bigint, p_provider smallint,"
	"    p_app text, p_token text, p_remote text, p_env smallint, p_call_str bytea,"
	"    p_call_snd bytea, p_silent boolean, OUT created boolean, OUT moved integer)"
	"  LANGUAGE plpgsql AS $$"
	"DECLARE"
	"  old_ext text;"
	"  k bigint;"
	"BEGIN"
	"  FOR k IN SELECT DISTINCT key FROM unnest(ARRAY["
	"      pushgw_token_key(p_provider, p_app, coalesce(p_token, p_remote)),"
	"      pushgw_token_key(p_provider, p_app, p_remote),"
	"      hashtextextended(format('d/%s/%s', p_ext, p_id), 0),"
	"      hashtextextended(format('b/%s', p_id), 0)]) AS key"
	"    WHERE key IS NOT NULL ORDER BY key LOOP"
	"    PERFORM pg_advisory_xact_lock(k);"
	"  END LOOP;"
	"  SELECT b.extension INTO old_ext FROM pushgw_sip_binding b WHERE b.id = p_id FOR UPDATE;"
	"  created := NOT FOUND;"
	"  moved := 0;"
	"  IF old_ext <> p_ext THEN"
	"    DELETE FROM pushgw_device WHERE extension = old_ext AND device_id = p_id;"
	"  END IF;"
	"  IF p_provider IS NULL THEN"
	"    DELETE FROM pushgw_device WHERE extension = p_ext AND device_id = p_id;"
	"  ELSE"
	"    SELECT r.moved INTO moved FROM pushgw_put(p_ext, p_id, p_provider, p_app, p_token,"
	"      p_remote, p_env, p_call_str, p_call_snd, p_silent, NULL) r;"
	"  END IF;"
	"  INSERT INTO pushgw_sip_binding (id, edge, aor, extension, contact, instance, app,"
	"      expires_at, updated_at)"
	"    VALUES (p_id, p_edge, p_aor, p_ext, p_contact, p_instance,"
	"      CASE WHEN p_provider IS NULL THEN NULL ELSE p_app END, p_expires, pushgw_now_ms())"
	"    ON CONFLICT (id) DO UPDATE SET edge = EXCLUDED.edge, aor = EXCLUDED.aor,"
	"      extension = EXCLUDED.extension, contact = EXCLUDED.contact,"
	"      instance = EXCLUDED.instance, app = EXCLUDED.app,"
	"      expires_at = EXCLUDED.expires_at, updated_at = EXCLUDED.updated_at;"
	"END $$;"
	/* p_id: that binding; else p_edge's bindings expired at p_now. */
	"CREATE FUNCTION pushgw_binding_remove(p_id text, p_edge text, p_now bigint,"
	"    OUT removed integer)"
	"  LANGUAGE plpgsql AS $$"
	"DECLARE"
	"  exts text[];"
	"  ids text[];"
	"BEGIN"
	"  IF p_id IS NOT NULL THEN"
	"    WITH gone AS (DELETE FROM pushgw_sip_binding b WHERE b.id = p_id"
	"        RETURNING b.extension, b.id)"
	"      SELECT array_agg(g.extension), array_agg(g.id) INTO exts, ids FROM gone g;"
	"  ELSE"
	"    WITH gone AS (DELETE FROM pushgw_sip_binding b"
	"        WHERE b.edge = p_edge AND b.expires_at <= p_now RETURNING b.extension, b.id)"
	"      SELECT array_agg(g.extension), array_agg(g.id) INTO exts, ids FROM gone g;"
	"  END IF;"
	"  removed := coalesce(cardinality(ids), 0);"
	"  DELETE FROM pushgw_device d USING unnest(exts, ids) AS g(extension, id)"
	"    WHERE d.extension = g.extension AND d.device_id = g.id;"
	"END $$;",
};
#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

/* Override strings come back hex-encoded, whatever bytea_output says. */
#define DEVICE_COLUMNS                                                         \
	"extension, device_id, provider, app, token, remote_token, environment, " \
	"encode(call_str, 'hex'), encode(call_snd, 'hex'), silent, created_at, updated_at"

#define BINDING_COLUMNS "id, edge, aor, extension, contact, instance, app, expires_at, updated_at"
#define BINDING_COLUMNS_B                                                     \
	"b.id, b.edge, b.aor, b.extension, b.contact, b.instance, b.app, b.expires_at, " \
	"b.updated_at"

enum stmt_id {
	PS_PUT,
	PS_LIST,
	PS_GET,
	PS_DELETE_DEVICE,
	PS_DELETE_EXTENSION,
	PS_PRUNE,
	PS_SET_ENV,
	PS_COUNT,
	PS_PING,
	PS_BINDING_PUT,
	PS_BINDING_REMOVE,
	PS_BINDING_GET,
	PS_BINDING_BY_INSTANCE,
	PS_BINDING_BY_TOKEN,
	PS_BINDING_LIST,
	PS_N_STATEMENTS,
};

static const char *const stmt_sql[PS_N_STATEMENTS] = {
	[PS_PUT] = "SELECT forbidden, created, moved, created_at, updated_at"
		   " FROM pushgw_put($1::text, $2::text, $3::smallint, $4::text, $5::text,"
		   " $6::text, $7::smallint, $8::bytea, $9::bytea, $10::boolean, $11::text[])",
	[PS_LIST] = "SELECT " DEVICE_COLUMNS " FROM pushgw_device WHERE extension = $1"
		    " ORDER BY created_at, id",
	[PS_GET] = "SELECT " DEVICE_COLUMNS " FROM pushgw_device"
		   " WHERE extension = $1 AND device_id = $2",
	/* The app test sits in the DELETE itself: a row another call changes
	 * meanwhile is tested again as it then is. The second count (the
	 * statement's snapshot) tells "not there" from "another app's". */
	[PS_DELETE_DEVICE] = "WITH gone AS (DELETE FROM pushgw_device WHERE extension = $1"
			     " AND device_id = $2 AND ($3::text[] IS NULL OR app = ANY ($3::text[]))"
			     " RETURNING 1)"
			     " SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM pushgw_device"
			     " WHERE extension = $1 AND device_id = $2"
			     " AND NOT ($3::text[] IS NULL OR app = ANY ($3::text[])))",
	[PS_DELETE_EXTENSION] = "WITH gone AS (DELETE FROM pushgw_device WHERE extension = $1"
				" AND ($2::text[] IS NULL OR app = ANY ($2::text[])) RETURNING 1)"
				" SELECT count(*) FROM gone",
	[PS_PRUNE] = "SELECT removed, changed FROM pushgw_prune($1::smallint, $2::text, $3::text,"
		     " $4::bigint, $5::boolean)",
	[PS_SET_ENV] = "UPDATE pushgw_device SET environment = $4::smallint"
		       " WHERE provider = $1::smallint AND app = $2"
		       " AND (coalesce(token, remote_token) = $3 OR remote_token = $3)",
	[PS_COUNT] = "SELECT count(*) FROM pushgw_device",
	[PS_PING] = "SELECT 1",
	[PS_BINDING_PUT] = "SELECT created, moved FROM pushgw_binding_put($1::text, $2::text,"
			   " $3::text, $4::text, $5::text, $6::text, $7::bigint, $8::smallint,"
			   " $9::text, $10::text, $11::text, $12::smallint, $13::bytea, $14::bytea,"
			   " $15::boolean)",
	[PS_BINDING_REMOVE] = "SELECT removed FROM pushgw_binding_remove($1::text, $2::text,"
			      " $3::bigint)",
	[PS_BINDING_GET] = "SELECT " BINDING_COLUMNS " FROM pushgw_sip_binding WHERE id = $1",
	[PS_BINDING_BY_INSTANCE] = "SELECT " BINDING_COLUMNS " FROM pushgw_sip_binding"
				   " WHERE edge = $1 AND aor = $2 AND instance = $3"
				   " ORDER BY updated_at DESC, id LIMIT 1",
	/* Either token, as a put's move takes either: an iPhone that gained a
	 * VoIP token is still the phone of its alert token. */
	[PS_BINDING_BY_TOKEN] = "SELECT " BINDING_COLUMNS_B " FROM pushgw_device d"
				" JOIN pushgw_sip_binding b"
				" ON b.id = d.device_id AND b.extension = d.extension"
				" WHERE b.edge = $1 AND b.aor = $2 AND d.provider = $3::smallint"
				" AND d.app = $4 AND (coalesce(d.token, d.remote_token) = $5::text"
				" OR d.remote_token = $6::text)"
				" ORDER BY b.updated_at DESC, b.id LIMIT 1",
	[PS_BINDING_LIST] = "SELECT " BINDING_COLUMNS " FROM pushgw_sip_binding"
			    " WHERE edge = $1 AND expires_at > $2::bigint ORDER BY expires_at, id",
};

static const char *const stmt_name[PS_N_STATEMENTS] = {
	"put", "list", "get", "delete_device", "delete_extension", "prune", "set_env",
	"count", "ping", "binding_put", "binding_remove", "binding_get", "binding_by_instance",
	"binding_by_token", "binding_list",
};

/* One pooled connection; used by one thread at a time. Statements are
 * prepared on first use and live as long as the connection. */
typedef struct pg_conn {
	PGconn *pg;
	bool prepared[PS_N_STATEMENTS];
	bool reused; /* served a call before this one */
	bool gone;   /* the last call found the connection dead */
	bool conflict; /* the last call lost a race worth another attempt */
	struct pg_conn *next_idle;
} pg_conn;

struct registry_store {
	char *url;
	pthread_mutex_t lock;
	pthread_cond_t freed; /* CLOCK_MONOTONIC */
	pg_conn conns[POOL_SIZE];
	pg_conn *idle;
	/* Under lock: the server could not be reached, when to try again, and
	 * whether one caller is trying now (the others fail at once instead of
	 * all waiting for a server that may not answer). */
	bool down;
	bool probing;
	int64_t retry_at_ms;
	/* When a call last succeeded: a pool too busy to lend a session is
	 * working if calls still finish, stuck if none did for a while. */
	_Atomic int64_t last_ok_ms;
	/* Under lock: puts waiting for a batch, and batches running. */
	struct put_waiter *put_head, *put_tail;
	int put_leaders;
	pthread_cond_t put_done;
};

/* ---- connections ---- */

/* libpq's text ends in a newline and may span lines; logs and errors want
 * one line. */
static void one_line(const char *in, char *out, size_t n)
{
	size_t o = 0;

	for (; in && *in && o + 1 < n; in++) {
		char ch = *in == '\n' || *in == '\t' ? ' ' : *in;

		if (ch == ' ' && (o == 0 || out[o - 1] == ' '))
			continue;
		out[o++] = ch;
	}
	while (o && out[o - 1] == ' ')
		o--;
	out[o] = '\0';
}

/* Notices ("relation already exists, skipping") are not errors; keep them
 * off stderr. */
static void drop_notice(void *arg, const PGresult *res)
{
	char line[256];

	if (!pgw_log_enabled(PGW_LOG_DEBUG))
		return;
	one_line(PQresultErrorMessage(res), line, sizeof line);
	pgw_log(PGW_LOG_DEBUG, "registry: database notice", "notice", line, NULL);
}

/* A new session, or NULL with why set. */
static PGconn *session_open(const char *url, char *why, size_t whylen)
{
	const char *vals[sizeof conn_keys / sizeof conn_keys[0]];
	size_t i, n_defaults = sizeof conn_defaults / sizeof conn_defaults[0];
	char msg[512];
	PGconn *pg;

	for (i = 0; i < n_defaults; i++)
		vals[i] = conn_defaults[i];
	vals[n_defaults] = url;
	vals[n_defaults + 1] = NULL;
	pg = PQconnectdbParams(conn_keys, vals, 1);
	if (!pg) {
		snprintf(why, whylen, "cannot connect: out of memory");
		return NULL;
	}
	if (PQstatus(pg) != CONNECTION_OK) {
		one_line(PQerrorMessage(pg), msg, sizeof msg);
		snprintf(why, whylen, "cannot connect: %s", msg);
		PQfinish(pg);
		return NULL;
	}
	PQsetNoticeReceiver(pg, drop_notice, NULL);
	return pg;
}

static void conn_reset(pg_conn *c)
{
	PQfinish(c->pg);
	c->pg = NULL;
	memset(c->prepared, 0, sizeof c->prepared);
	c->reused = false;
}

/* A pooled session the server closed (restart, failover, idle kill) has its
 * goodbye waiting in the socket: reading it now spares the call a failure. */
static bool conn_usable(pg_conn *c)
{
	if (!c->pg)
		return false;
	if (PQconsumeInput(c->pg) == 0 || PQstatus(c->pg) != CONNECTION_OK)
		return false;
	return PQtransactionStatus(c->pg) == PQTRANS_IDLE;
}

/* SQLSTATEs that mean the session is over. */
static bool state_is_gone(const char *state)
{
	return state && (strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
			 strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0);
}

/* A race another attempt wins: deadlock, serialization failure, or a
 * unique index beaten by a concurrent insert. */
static bool state_is_conflict(const char *state)
{
	return state && (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
			 strcmp(state, "23505") == 0);
}

static pgw_err map_state(const char *state)
{
	if (!state)
		return PGW_EIO;
	if (strcmp(state, "57014") == 0 || strcmp(state, "55P03") == 0)
		return PGW_ETIMEOUT; /* statement or lock timeout */
	if (strncmp(state, "22", 2) == 0)
		return PGW_EINVAL;
	return PGW_EIO;
}

/* Classify a failed result (and clear it), marking the connection. */
static pgw_err result_failure(pg_conn *c, PGresult *res, const char *what)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	char msg[512];
	pgw_err err;

	one_line(res ? PQresultErrorMessage(res) : PQerrorMessage(c->pg), msg, sizeof msg);
	if (!msg[0])
		one_line(PQerrorMessage(c->pg), msg, sizeof msg);
	if (PQstatus(c->pg) != CONNECTION_OK || state_is_gone(state)) {
		c->gone = true;
		pgw_log(PGW_LOG_DEBUG, "registry: database session lost", "op", what,
			"error", msg, NULL);
		PQclear(res);
		return PGW_ECONNECT;
	}
	c->conflict = state_is_conflict(state);
	err = c->conflict ? PGW_ETIMEOUT : map_state(state);
	pgw_log(c->conflict ? PGW_LOG_DEBUG : PGW_LOG_ERROR, "registry: database call failed",
		"op", what, "sqlstate", state ? state : "-", "error", msg, NULL);
	PQclear(res);
	return err;
}

static pgw_err conn_prepare(pg_conn *c, enum stmt_id id)
{
	PGresult *res;

	if (c->prepared[id])
		return PGW_OK;
	res = PQprepare(c->pg, stmt_name[id], stmt_sql[id], 0, NULL);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		return result_failure(c, res, stmt_name[id]);
	PQclear(res);
	c->prepared[id] = true;
	return PGW_OK;
}

/* Parameters of one call: text, or raw bytes where len[i] > 0 (bytea). */
typedef struct call_params {
	const char *val[16];
	int len[16];
	int fmt[16];
	int n;
} call_params;

static void param_text(call_params *p, const char *v)
{
	p->val[p->n] = v;
	p->len[p->n] = 0;
	p->fmt[p->n] = 0;
	p->n++;
}

static void param_bytes(call_params *p, const char *v)
{
	p->val[p->n] = v;
	p->len[p->n] = v ? (int)strlen(v) : 0;
	p->fmt[p->n] = 1;
	p->n++;
}

/* apps as a text[] literal ({"a","b"}) in *out (caller frees), or NULL
 * for every app (apps NULL). */
static pgw_err apps_array(const registry_apps *apps, char **out)
{
	size_t i, len = 3;
	const char *p;
	char *o;

	*out = NULL;
	if (!apps)
		return PGW_OK;
	for (i = 0; i < apps->n; i++)
		len += 2 * strlen(apps->names[i]) + 3;
	*out = o = malloc(len);
	if (!o)
		return PGW_ENOMEM;
	*o++ = '{';
	for (i = 0; i < apps->n; i++) {
		if (i)
			*o++ = ',';
		*o++ = '"';
		for (p = apps->names[i]; *p; p++) {
			if (*p == '"' || *p == '\\')
				*o++ = '\\';
			*o++ = *p;
		}
		*o++ = '"';
	}
	*o++ = '}';
	*o = '\0';
	return PGW_OK;
}

/* Run a prepared statement; *out gets a result of status want. */
static pgw_err conn_run(pg_conn *c, enum stmt_id id, const call_params *p,
			ExecStatusType want, PGresult **out)
{
	pgw_err err = conn_prepare(c, id);
	PGresult *res;

	*out = NULL;
	if (err != PGW_OK)
		return err;
	res = PQexecPrepared(c->pg, stmt_name[id], p->n, p->val, p->len, p->fmt, 0);
	if (PQresultStatus(res) != want)
		return result_failure(c, res, stmt_name[id]);
	*out = res;
	return PGW_OK;
}

/* ---- the pool ---- */

static void pool_put_back(registry_store *s, pg_conn *c)
{
	c->next_idle = s->idle;
	s->idle = c;
	pthread_cond_signal(&s->freed);
}

/* Called with the lock held; logs the edges only, not every failed call. */
static void note_reachable(registry_store *s, bool ok, const char *why)
{
	s->probing = false;
	if (ok && s->down)
		pgw_log(PGW_LOG_INFO, "registry: database reachable again", NULL);
	else if (!ok && !s->down)
		pgw_log(PGW_LOG_WARN, "registry: database unreachable", "error", why, NULL);
	s->down = !ok;
	if (!ok)
		s->retry_at_ms = pgw_now_ms() + RECONNECT_PAUSE_MS;
}

/* Open a session for c (lock not held). */
static pgw_err pool_connect(registry_store *s, pg_conn *c)
{
	char why[512];

	c->pg = session_open(s->url, why, sizeof why);
	pthread_mutex_lock(&s->lock);
	note_reachable(s, c->pg != NULL, why);
	pthread_mutex_unlock(&s->lock);
	return c->pg ? PGW_OK : PGW_ECONNECT;
}

/* A connection with a live session, for one call; fresh: a new session
 * even if the pooled one looks alive. wait_ms bounds the wait for a free
 * connection (PGW_ETIMEOUT). While the server is known to be down, one
 * caller at a time (at most every RECONNECT_PAUSE_MS) tries a session; the
 * others get PGW_ECONNECT at once. */
static pgw_err pool_acquire(registry_store *s, int wait_ms, bool fresh, pg_conn **out)
{
	struct timespec until;
	pg_conn *c;
	bool paused;

	pgw_timespec_in(&until, CLOCK_MONOTONIC, wait_ms);
	pthread_mutex_lock(&s->lock);
	while (!s->idle) {
		if (pthread_cond_timedwait(&s->freed, &s->lock, &until) != 0 && !s->idle) {
			pthread_mutex_unlock(&s->lock);
			return PGW_ETIMEOUT;
		}
	}
	c = s->idle;
	s->idle = c->next_idle;
	pthread_mutex_unlock(&s->lock);
	c->gone = c->conflict = false;
	if (!fresh && conn_usable(c)) {
		*out = c;
		return PGW_OK;
	}
	conn_reset(c);
	pthread_mutex_lock(&s->lock);
	paused = s->down && (s->probing || pgw_now_ms() < s->retry_at_ms);
	if (s->down && !paused)
		s->probing = true;
	pthread_mutex_unlock(&s->lock);
	if (paused || pool_connect(s, c) != PGW_OK) {
		pthread_mutex_lock(&s->lock);
		pool_put_back(s, c);
		pthread_mutex_unlock(&s->lock);
		return PGW_ECONNECT;
	}
	*out = c;
	return PGW_OK;
}

/* A call that got an answer proves the server is back, even before a new
 * session does. */
static void pool_release(registry_store *s, pg_conn *c)
{
	if (c->gone)
		conn_reset(c);
	else
		c->reused = true;
	pthread_mutex_lock(&s->lock);
	if (!c->gone && s->down)
		note_reachable(s, true, NULL);
	pool_put_back(s, c);
	pthread_mutex_unlock(&s->lock);
}

/* One registry operation on a borrowed connection. */
typedef pgw_err (*conn_op)(pg_conn *c, void *arg);

/* Run op, once more on a new session when a pooled one turns out dead
 * (each op is one atomic statement: it either ran or it did not; the other
 * pooled sessions may be as dead, so the retry does not take one), and
 * again when it lost a race to another replica. */
static pgw_err store_call(registry_store *s, int wait_ms, conn_op op, void *arg)
{
	int conflicts = 0;
	bool retried_gone = false;

	for (;;) {
		pg_conn *c = NULL;
		pgw_err err = pool_acquire(s, wait_ms, retried_gone, &c);
		bool reused, gone, conflict;

		if (err != PGW_OK)
			return err;
		reused = c->reused;
		err = op(c, arg);
		gone = c->gone;
		conflict = c->conflict;
		pool_release(s, c);
		if (err == PGW_OK) {
			atomic_store(&s->last_ok_ms, pgw_now_ms());
			return PGW_OK;
		}
		if (gone && reused && !retried_gone) {
			retried_gone = true;
			continue;
		}
		if (conflict && ++conflicts < CONFLICT_ATTEMPTS)
			continue;
		return err;
	}
}

/* ---- schema ---- */

static pgw_err exec_sql(PGconn *pg, const char *sql, PGresult **out, char *why, size_t whylen)
{
	PGresult *res = PQexec(pg, sql);
	ExecStatusType st = PQresultStatus(res);
	char msg[400];

	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
		if (out)
			*out = res;
		else
			PQclear(res);
		return PGW_OK;
	}
	one_line(res ? PQresultErrorMessage(res) : PQerrorMessage(pg), msg, sizeof msg);
	snprintf(why, whylen, "%s", msg);
	PQclear(res);
	return PQstatus(pg) == CONNECTION_OK ? PGW_EIO : PGW_ECONNECT;
}

/* The stored schema version; 0 for a database pushgw never used. */
static pgw_err schema_version(PGconn *pg, int *version, char *why, size_t whylen)
{
	PGresult *res = NULL;
	pgw_err err;

	err = exec_sql(pg, "CREATE TABLE IF NOT EXISTS pushgw_schema (version integer NOT NULL)",
		       NULL, why, whylen);
	if (err == PGW_OK)
		err = exec_sql(pg, "SELECT version FROM pushgw_schema", &res, why, whylen);
	if (err != PGW_OK)
		return err;
	*version = PQntuples(res) > 0 ? atoi(PQgetvalue(res, 0, 0)) : 0;
	if (PQntuples(res) == 0)
		err = exec_sql(pg, "INSERT INTO pushgw_schema VALUES (0)", NULL, why, whylen);
	PQclear(res);
	return err;
}

static pgw_err migrate_steps(PGconn *pg, int from, char *why, size_t whylen)
{
	char msg[400], sql[64];
	int v;

	for (v = from; v < SCHEMA_VERSION; v++) {
		if (exec_sql(pg, migrations[v], NULL, msg, sizeof msg) != PGW_OK) {
			snprintf(why, whylen, "schema upgrade to version %d failed: %s", v + 1, msg);
			return PGW_EIO;
		}
	}
	snprintf(sql, sizeof sql, "UPDATE pushgw_schema SET version = %d", SCHEMA_VERSION);
	return exec_sql(pg, sql, NULL, why, whylen);
}

/* Bring the database to SCHEMA_VERSION in one transaction (PostgreSQL DDL
 * is transactional): a failure leaves the old version intact. */
static pgw_err migrate(PGconn *pg, char *why, size_t whylen)
{
	char from[24], to[24];
	int version = 0;
	pgw_err err;

	err = exec_sql(pg, "BEGIN", NULL, why, whylen);
	if (err != PGW_OK)
		return err;
	err = exec_sql(pg, "SELECT pg_advisory_xact_lock(" MIGRATION_LOCK ")", NULL, why, whylen);
	if (err == PGW_OK)
		err = schema_version(pg, &version, why, whylen);
	if (err != PGW_OK)
		goto fail;
	if (version > SCHEMA_VERSION) {
		snprintf(why, whylen, "schema version %d is newer than this pushgw supports (%d)",
			 version, SCHEMA_VERSION);
		err = PGW_ECONFIG;
		goto fail;
	}
	if (version < SCHEMA_VERSION)
		err = migrate_steps(pg, version, why, whylen);
	if (err == PGW_OK)
		err = exec_sql(pg, "COMMIT", NULL, why, whylen);
	if (err != PGW_OK)
		goto fail;
	if (version < SCHEMA_VERSION) {
		snprintf(from, sizeof from, "%d", version);
		snprintf(to, sizeof to, "%d", SCHEMA_VERSION);
		pgw_log(PGW_LOG_INFO, "registry: schema migrated", "from_version", from,
			"to_version", to, NULL);
	}
	return PGW_OK;
fail:
	PQclear(PQexec(pg, "ROLLBACK"));
	return err;
}

/* ---- open / close ---- */

static void pg_close(registry_store *s)
{
	int i;

	if (!s)
		return;
	for (i = 0; i < POOL_SIZE; i++)
		conn_reset(&s->conns[i]);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->freed);
	pthread_cond_destroy(&s->put_done);
	free(s->url);
	free(s);
}

static pgw_err store_alloc(const char *url, registry_store **out)
{
	registry_store *s = calloc(1, sizeof *s);
	pthread_condattr_t attr;
	int i;

	if (!s)
		return PGW_ENOMEM;
	s->url = strdup(url);
	if (!s->url) {
		free(s);
		return PGW_ENOMEM;
	}
	pthread_mutex_init(&s->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&s->freed, &attr);
	pthread_condattr_destroy(&attr);
	pthread_cond_init(&s->put_done, NULL);
	for (i = POOL_SIZE - 1; i >= 0; i--)
		pool_put_back(s, &s->conns[i]);
	*out = s;
	return PGW_OK;
}

/* The server must answer at start-up: a wrong URL or password is a
 * configuration error to report now, not a 503 later. The first session
 * migrates and then joins the pool; the others open on demand. */
static pgw_err pg_open(const pgw_config *cfg, registry_store **out, char *why, size_t whylen)
{
	registry_store *s = NULL;
	pg_conn *first;
	pgw_err err;

	*out = NULL;
	if (!PQisthreadsafe()) {
		snprintf(why, whylen, "this libpq is not thread-safe");
		return PGW_ECONFIG;
	}
	err = store_alloc(cfg->registry_url, &s);
	if (err != PGW_OK) {
		snprintf(why, whylen, "out of memory");
		return err;
	}
	first = s->idle;
	first->pg = session_open(s->url, why, whylen);
	if (!first->pg) {
		pg_close(s);
		return PGW_ECONNECT;
	}
	err = migrate(first->pg, why, whylen);
	if (err != PGW_OK) {
		pg_close(s);
		return err;
	}
	first->reused = true;
	atomic_store(&s->last_ok_ms, pgw_now_ms());
	*out = s;
	return PGW_OK;
}

/* ---- writes ---- */

typedef struct put_call {
	const char *ext, *device_id;
	const pgw_target *t;
	const char *apps; /* text[] literal, NULL = every app */
	registry_put_outcome *out;
	bool forbidden;
} put_call;

static pgw_err put_op(pg_conn *c, void *arg)
{
	put_call *p = arg;
	const pgw_target *t = p->t;
	call_params params = { .n = 0 };
	char provider[8], env[8];
	PGresult *res;
	pgw_err err;

	snprintf(provider, sizeof provider, "%d", (int)t->provider);
	snprintf(env, sizeof env, "%d", (int)t->environment);
	param_text(&params, p->ext);
	param_text(&params, p->device_id);
	param_text(&params, provider);
	param_text(&params, t->app->name);
	param_text(&params, t->token);
	param_text(&params, t->remote_token);
	param_text(&params, env);
	param_bytes(&params, t->call_str);
	param_bytes(&params, t->call_snd);
	param_text(&params, t->silent ? "true" : "false");
	param_text(&params, p->apps);
	err = conn_run(c, PS_PUT, &params, PGRES_TUPLES_OK, &res);
	if (err != PGW_OK)
		return err;
	if (PQntuples(res) == 1) {
		p->forbidden = PQgetvalue(res, 0, 0)[0] == 't';
		p->out->created = PQgetvalue(res, 0, 1)[0] == 't';
		p->out->moved = atoi(PQgetvalue(res, 0, 2));
		p->out->created_at_ms = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
		p->out->updated_at_ms = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
	} else {
		err = PGW_EIO;
	}
	PQclear(res);
	return err;
}

/* A put waiting for, or done by, a batch. */
typedef struct put_waiter {
	put_call *call;
	pgw_err err;
	bool done;
	struct put_waiter *next;
} put_waiter;

static pgw_err conn_simple(pg_conn *c, const char *sql)
{
	PGresult *res = PQexec(c->pg, sql);

	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		return result_failure(c, res, sql);
	PQclear(res);
	return PGW_OK;
}

/* The puts of a batch (a list) in one transaction: one durable commit for
 * all of them. Any failure rolls the whole batch back, and the caller runs
 * its puts one by one instead (so a lost race is not retried here). */
static pgw_err batch_op(pg_conn *c, void *arg)
{
	put_waiter *w;
	pgw_err err = conn_simple(c, "BEGIN");

	for (w = arg; err == PGW_OK && w; w = w->next)
		err = put_op(c, w->call);
	if (err == PGW_OK)
		err = conn_simple(c, "COMMIT");
	if (err != PGW_OK && !c->gone && PQtransactionStatus(c->pg) != PQTRANS_IDLE)
		PQclear(PQexec(c->pg, "ROLLBACK"));
	c->conflict = false;
	return err;
}

static void run_batch(registry_store *s, put_waiter *batch)
{
	put_waiter *w;
	pgw_err err = PGW_EIO;

	if (batch->next)
		err = store_call(s, ACQUIRE_TIMEOUT_MS, batch_op, batch);
	for (w = batch; w; w = w->next)
		w->err = err == PGW_OK ? PGW_OK : store_call(s, ACQUIRE_TIMEOUT_MS, put_op, w->call);
}

/* Group commit. Each registration is acknowledged only once durable, and a
 * durable commit (a WAL flush) per registration was what limited them:
 * puts that arrive while PUT_LEADERS batches are running queue up, and the
 * next caller to find a free slot runs up to PUT_BATCH_MAX of them in one
 * transaction. A lone put runs at once, as before. */
static pgw_err put_grouped(registry_store *s, put_call *p)
{
	put_waiter self = { .call = p };

	pthread_mutex_lock(&s->lock);
	if (s->put_tail)
		s->put_tail->next = &self;
	else
		s->put_head = &self;
	s->put_tail = &self;
	while (!self.done) {
		put_waiter *batch, *w;
		int n;

		if (s->put_leaders >= PUT_LEADERS || !s->put_head) {
			pthread_cond_wait(&s->put_done, &s->lock);
			continue;
		}
		batch = s->put_head;
		for (w = batch, n = 1; w->next && n < PUT_BATCH_MAX; w = w->next)
			n++;
		s->put_head = w->next;
		if (!s->put_head)
			s->put_tail = NULL;
		w->next = NULL;
		s->put_leaders++;
		pthread_mutex_unlock(&s->lock);
		run_batch(s, batch);
		pthread_mutex_lock(&s->lock);
		s->put_leaders--;
		while (batch) {
			w = batch;
			batch = w->next; /* the waiter may go once it is done */
			w->done = true;
		}
		pthread_cond_broadcast(&s->put_done);
	}
	pthread_mutex_unlock(&s->lock);
	return self.err;
}

static pgw_err pg_put(registry_store *s, const char *ext, const char *device_id,
		      const pgw_target *t, const registry_apps *apps, int64_t now_ms,
		      registry_put_outcome *out)
{
	put_call p = { .ext = ext, .device_id = device_id, .t = t, .out = out };
	char *array = NULL;
	pgw_err err = apps_array(apps, &array);

	if (err != PGW_OK)
		return err;
	p.apps = array;
	err = put_grouped(s, &p);
	free(array);
	if (err == PGW_OK && p.forbidden)
		return PGW_EAUTH;
	return err;
}

typedef struct remove_call {
	const char *ext, *device_id; /* device_id NULL = whole extension */
	const char *apps;            /* text[] literal, NULL = every app */
	int deleted;
	bool elsewhere; /* the device is there, of an app not allowed */
} remove_call;

static pgw_err remove_op(pg_conn *c, void *arg)
{
	remove_call *d = arg;
	call_params params = { .n = 0 };
	PGresult *res;
	pgw_err err;

	param_text(&params, d->ext);
	if (d->device_id)
		param_text(&params, d->device_id);
	param_text(&params, d->apps);
	err = conn_run(c, d->device_id ? PS_DELETE_DEVICE : PS_DELETE_EXTENSION, &params,
		       PGRES_TUPLES_OK, &res);
	if (err != PGW_OK)
		return err;
	if (PQntuples(res) != 1) {
		PQclear(res);
		return PGW_EIO;
	}
	d->deleted = atoi(PQgetvalue(res, 0, 0));
	d->elsewhere = d->device_id && d->deleted == 0 && atoi(PQgetvalue(res, 0, 1)) > 0;
	PQclear(res);
	return PGW_OK;
}

static pgw_err pg_remove(registry_store *s, const char *ext, const char *device_id,
			 const registry_apps *apps, int *deleted)
{
	remove_call d = { .ext = ext, .device_id = device_id };
	char *array = NULL;
	pgw_err err = apps_array(apps, &array);

	*deleted = 0;
	if (err != PGW_OK)
		return err;
	d.apps = array;
	err = store_call(s, ACQUIRE_TIMEOUT_MS, remove_op, &d);
	free(array);
	if (err != PGW_OK)
		return err;
	if (d.elsewhere)
		return PGW_EAUTH;
	*deleted = d.deleted;
	return PGW_OK;
}

typedef struct token_call {
	pgw_provider provider;
	const char *app, *token;
	int64_t not_after_ms;
	pgw_apns_env env;
	registry_prune_outcome *out;
} token_call;

static pgw_err prune_op(pg_conn *c, void *arg)
{
	token_call *k = arg;
	call_params params = { .n = 0 };
	char provider[8], not_after[24];
	PGresult *res;
	pgw_err err;

	snprintf(provider, sizeof provider, "%d", (int)k->provider);
	snprintf(not_after, sizeof not_after, "%lld", (long long)k->not_after_ms);
	param_text(&params, provider);
	param_text(&params, k->app);
	param_text(&params, k->token);
	param_text(&params, not_after);
	param_text(&params, k->provider == PGW_PROVIDER_APNS ? "true" : "false");
	err = conn_run(c, PS_PRUNE, &params, PGRES_TUPLES_OK, &res);
	if (err != PGW_OK)
		return err;
	if (PQntuples(res) == 1) {
		k->out->removed = atoi(PQgetvalue(res, 0, 0));
		k->out->changed = atoi(PQgetvalue(res, 0, 1));
	} else {
		err = PGW_EIO;
	}
	PQclear(res);
	return err;
}

static pgw_err pg_prune(registry_store *s, pgw_provider provider, const char *app,
			const char *token, int64_t not_after_ms, registry_prune_outcome *out)
{
	token_call k = { .provider = provider, .app = app, .token = token,
			 .not_after_ms = not_after_ms, .out = out };

	return store_call(s, ACQUIRE_TIMEOUT_MS, prune_op, &k);
}

static pgw_err set_env_op(pg_conn *c, void *arg)
{
	token_call *k = arg;
	call_params params = { .n = 0 };
	char provider[8], env[8];
	PGresult *res;
	pgw_err err;

	snprintf(provider, sizeof provider, "%d", (int)k->provider);
	snprintf(env, sizeof env, "%d", (int)k->env);
	param_text(&params, provider);
	param_text(&params, k->app);
	param_text(&params, k->token);
	param_text(&params, env);
	err = conn_run(c, PS_SET_ENV, &params, PGRES_COMMAND_OK, &res);
	PQclear(res);
	return err;
}

static pgw_err pg_set_environment(registry_store *s, const char *app, const char *token,
				  pgw_apns_env env)
{
	token_call k = { .provider = PGW_PROVIDER_APNS, .app = app, .token = token, .env = env };

	return store_call(s, ACQUIRE_TIMEOUT_MS, set_env_op, &k);
}

/* ---- reads ---- */

static pgw_err value_dup(const PGresult *res, int row, int col, char **out)
{
	*out = NULL;
	if (PQgetisnull(res, row, col))
		return PGW_OK;
	*out = strdup(PQgetvalue(res, row, col));
	return *out ? PGW_OK : PGW_ENOMEM;
}

static int hex_digit(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

/* A bytea column read through encode(…, 'hex'). */
static pgw_err value_unhex(const PGresult *res, int row, int col, char **out)
{
	const char *hex = PQgetvalue(res, row, col);
	size_t i, n = strlen(hex) / 2;

	*out = NULL;
	if (PQgetisnull(res, row, col))
		return PGW_OK;
	*out = malloc(n + 1);
	if (!*out)
		return PGW_ENOMEM;
	for (i = 0; i < n; i++) {
		int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return PGW_EIO;
		(*out)[i] = (char)(hi << 4 | lo);
	}
	(*out)[n] = '\0';
	return PGW_OK;
}

/* Columns in DEVICE_COLUMNS order, into a zeroed record (which keeps what
 * was copied when this fails: the caller frees the lot). */
static pgw_err device_from_row(const PGresult *res, int row, registry_device *d)
{
	pgw_err err = PGW_OK;

	if (value_dup(res, row, 0, &d->extension) != PGW_OK ||
	    value_dup(res, row, 1, &d->device_id) != PGW_OK ||
	    value_dup(res, row, 3, &d->app) != PGW_OK ||
	    value_dup(res, row, 4, &d->token) != PGW_OK ||
	    value_dup(res, row, 5, &d->remote_token) != PGW_OK)
		return PGW_ENOMEM;
	err = value_unhex(res, row, 7, &d->call_str);
	if (err == PGW_OK)
		err = value_unhex(res, row, 8, &d->call_snd);
	if (err != PGW_OK)
		return err;
	d->provider = (pgw_provider)atoi(PQgetvalue(res, row, 2));
	d->environment = (pgw_apns_env)atoi(PQgetvalue(res, row, 6));
	d->silent = PQgetvalue(res, row, 9)[0] == 't';
	d->created_at_ms = strtoll(PQgetvalue(res, row, 10), NULL, 10);
	d->updated_at_ms = strtoll(PQgetvalue(res, row, 11), NULL, 10);
	return PGW_OK;
}

static pgw_err devices_from_result(const PGresult *res, registry_device **out, size_t *n)
{
	registry_device *arr = NULL;
	size_t count = 0, cap = 0;
	int row;

	for (row = 0; row < PQntuples(res); row++) {
		registry_device *d = registry_devices_push(&arr, &count, &cap);
		pgw_err err = d ? device_from_row(res, row, d) : PGW_ENOMEM;

		if (err != PGW_OK) {
			registry_devices_free(arr, count);
			return err;
		}
	}
	*out = arr;
	*n = count;
	return PGW_OK;
}

typedef struct read_call {
	const char *ext, *device_id; /* device_id NULL = the whole extension */
	registry_device **out;
	size_t n;
} read_call;

static pgw_err read_op(pg_conn *c, void *arg)
{
	read_call *r = arg;
	call_params params = { .n = 0 };
	PGresult *res;
	pgw_err err;

	param_text(&params, r->ext);
	if (r->device_id)
		param_text(&params, r->device_id);
	err = conn_run(c, r->device_id ? PS_GET : PS_LIST, &params, PGRES_TUPLES_OK, &res);
	if (err != PGW_OK)
		return err;
	err = devices_from_result(res, r->out, &r->n);
	PQclear(res);
	return err;
}

static pgw_err pg_list(registry_store *s, const char *ext, registry_device **out, size_t *n)
{
	read_call r = { .ext = ext, .out = out };
	pgw_err err = store_call(s, ACQUIRE_TIMEOUT_MS, read_op, &r);

	*n = err == PGW_OK ? r.n : 0;
	return err;
}

static pgw_err pg_get(registry_store *s, const char *ext, const char *device_id,
		      registry_device **out)
{
	read_call r = { .ext = ext, .device_id = device_id, .out = out };
	pgw_err err = store_call(s, ACQUIRE_TIMEOUT_MS, read_op, &r);

	if (err == PGW_OK && r.n == 0)
		return PGW_ENOTFOUND;
	return err;
}

/* An exact count walks the table (no kept counter: one hot row would
 * serialise every replica's writes); metrics ask for it rarely. */
static pgw_err count_op(pg_conn *c, void *arg)
{
	call_params params = { .n = 0 };
	PGresult *res;
	pgw_err err = conn_run(c, PS_COUNT, &params, PGRES_TUPLES_OK, &res);

	if (err != PGW_OK)
		return err;
	if (PQntuples(res) == 1)
		*(uint64_t *)arg = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	else
		err = PGW_EIO;
	PQclear(res);
	return err;
}

static pgw_err pg_count(registry_store *s, uint64_t *n)
{
	return store_call(s, ACQUIRE_TIMEOUT_MS, count_op, n);
}

static pgw_err ping_op(pg_conn *c, void *arg)
{
	call_params params = { .n = 0 };
	PGresult *res;
	pgw_err err = conn_run(c, PS_PING, &params, PGRES_TUPLES_OK, &res);

	PQclear(res);
	return err;
}

/* Readiness: false at once while the server is known to be down; a pool
 * too busy to lend a connection within a second counts as working while
 * calls still succeed, and as stuck (a server that stopped answering) when
 * none did for BUSY_STUCK_MS. */
static bool pg_healthy(registry_store *s)
{
	pgw_err err;
	bool down;

	if (!s)
		return false;
	err = store_call(s, 1000, ping_op, NULL);
	if (err != PGW_ETIMEOUT)
		return err == PGW_OK;
	pthread_mutex_lock(&s->lock);
	down = s->down;
	pthread_mutex_unlock(&s->lock);
	return !down && pgw_now_ms() - atomic_load(&s->last_ok_ms) < BUSY_STUCK_MS;
}

/* ---- SIP-edge bindings ---- */

typedef struct binding_put_call {
	const registry_binding *b;
	const pgw_target *t; /* NULL: no push target, no device row */
	registry_binding_outcome *out;
} binding_put_call;

static pgw_err binding_put_op(pg_conn *c, void *arg)
{
	binding_put_call *p = arg;
	const registry_binding *b = p->b;
	const pgw_target *t = p->t;
	call_params params = { .n = 0 };
	char expires[24], provider[8], env[8];
	PGresult *res;
	pgw_err err;

	snprintf(expires, sizeof expires, "%lld", (long long)b->expires_at_ms);
	param_text(&params, b->id);
	param_text(&params, b->edge);
	param_text(&params, b->aor);
	param_text(&params, b->extension);
	param_text(&params, b->contact);
	param_text(&params, b->instance);
	param_text(&params, expires);
	if (t) {
		snprintf(provider, sizeof provider, "%d", (int)t->provider);
		snprintf(env, sizeof env, "%d", (int)t->environment);
	}
	param_text(&params, t ? provider : NULL);
	param_text(&params, t ? t->app->name : NULL);
	param_text(&params, t ? t->token : NULL);
	param_text(&params, t ? t->remote_token : NULL);
	param_text(&params, t ? env : NULL);
	param_bytes(&params, t ? t->call_str : NULL);
	param_bytes(&params, t ? t->call_snd : NULL);
	param_text(&params, t ? (t->silent ? "true" : "false") : NULL);
	err = conn_run(c, PS_BINDING_PUT, &params, PGRES_TUPLES_OK, &res);
	if (err != PGW_OK)
		return err;
	if (PQntuples(res) == 1) {
		p->out->created = PQgetvalue(res, 0, 0)[0] == 't';
		p->out->moved = atoi(PQgetvalue(res, 0, 1));
	} else {
		err = PGW_EIO;
	}
	PQclear(res);
	return err;
}

/* One statement in its own transaction: durable once it returns, and
 * run again whole when it loses a race. */
static pgw_err pg_binding_put(registry_store *s, const registry_binding *b, const pgw_target *t,
			      int64_t now_ms, registry_binding_outcome *out)
{
	binding_put_call p = { .b = b, .t = t, .out = out };

	(void)now_ms; /* the server's clock stamps the row */
	return store_call(s, ACQUIRE_TIMEOUT_MS, binding_put_op, &p);
}

typedef struct binding_remove_call {
	const char *id;   /* a removal: this binding, or */
	const char *edge; /* an expiry: the edge's bindings expired at now_ms */
	int64_t now_ms;
	int removed;
} binding_remove_call;

static pgw_err binding_remove_op(pg_conn *c, void *arg)
{
	binding_remove_call *r = arg;
	call_params params = { .n = 0 };
	char now[24];
	PGresult *res;
	pgw_err err;

	snprintf(now, sizeof now, "%lld", (long long)r->now_ms);
	param_text(&params, r->id);
	param_text(&params, r->id ? NULL : r->edge);
	param_text(&params, r->id ? NULL : now);
	err = conn_run(c, PS_BINDING_REMOVE, &params, PGRES_TUPLES_OK, &res);
	if (err != PGW_OK)
		return err;
	if (PQntuples(res) == 1)
		r->removed = atoi(PQgetvalue(res, 0, 0));
	else
		err = PGW_EIO;
	PQclear(res);
	return err;
}

static pgw_err pg_binding_remove(registry_store *s, const char *id, int *removed)
{
	binding_remove_call r = { .id = id };
	pgw_err err = store_call(s, ACQUIRE_TIMEOUT_MS, binding_remove_op, &r);

	*removed = err == PGW_OK ? r.removed : 0;
	return err;
}

static pgw_err pg_binding_expire(registry_store *s, const char *edge, int64_t now_ms,
				 int *removed)
{
	binding_remove_call r = { .edge = edge, .now_ms = now_ms };
	pgw_err err = store_call(s, ACQUIRE_TIMEOUT_MS, binding_remove_op, &r);

	*removed = err == PGW_OK ? r.removed : 0;
	return err;
}

/* Columns in BINDING_COLUMNS order, into a zeroed record (which keeps what
 * was copied when this fails: the caller frees the lot). */
static pgw_err binding_from_row(const PGresult *res, int row, registry_binding *b)
{
	if (value_dup(res, row, 0, &b->id) != PGW_OK || value_dup(res, row, 1, &b->edge) != PGW_OK ||
	    value_dup(res, row, 2, &b->aor) != PGW_OK ||
	    value_dup(res, row, 3, &b->extension) != PGW_OK ||
	    value_dup(res, row, 4, &b->contact) != PGW_OK ||
	    value_dup(res, row, 5, &b->instance) != PGW_OK ||
	    value_dup(res, row, 6, &b->app) != PGW_OK)
		return PGW_ENOMEM;
	b->expires_at_ms = strtoll(PQgetvalue(res, row, 7), NULL, 10);
	b->updated_at_ms = strtoll(PQgetvalue(res, row, 8), NULL, 10);
	return PGW_OK;
}

/* One binding read: stmt says which of the other fields count. */
typedef struct binding_query {
	enum stmt_id stmt;
	const char *id, *edge, *aor, *instance;
	const pgw_target *t;
	int64_t now_ms;
	registry_binding **out;
	size_t n;
} binding_query;

static void binding_query_params(const binding_query *q, call_params *params, char *num,
				 size_t numlen)
{
	switch (q->stmt) {
	case PS_BINDING_GET:
		param_text(params, q->id);
		break;
	case PS_BINDING_LIST:
		snprintf(num, numlen, "%lld", (long long)q->now_ms);
		param_text(params, q->edge);
		param_text(params, num);
		break;
	case PS_BINDING_BY_INSTANCE:
		param_text(params, q->edge);
		param_text(params, q->aor);
		param_text(params, q->instance);
		break;
	default: /* PS_BINDING_BY_TOKEN */
		snprintf(num, numlen, "%d", (int)q->t->provider);
		param_text(params, q->edge);
		param_text(params, q->aor);
		param_text(params, num);
		param_text(params, q->t->app->name);
		param_text(params, registry_identity_token(q->t));
		param_text(params, q->t->remote_token);
		break;
	}
}

static pgw_err binding_read_op(pg_conn *c, void *arg)
{
	binding_query *q = arg;
	call_params params = { .n = 0 };
	registry_binding *arr = NULL;
	size_t count = 0, cap = 0;
	char num[24];
	PGresult *res;
	pgw_err err;
	int row;

	binding_query_params(q, &params, num, sizeof num);
	err = conn_run(c, q->stmt, &params, PGRES_TUPLES_OK, &res);
	if (err != PGW_OK)
		return err;
	for (row = 0; err == PGW_OK && row < PQntuples(res); row++) {
		registry_binding *b = registry_bindings_push(&arr, &count, &cap);

		err = b ? binding_from_row(res, row, b) : PGW_ENOMEM;
	}
	PQclear(res);
	if (err != PGW_OK) {
		registry_bindings_free(arr, count);
		return err;
	}
	*q->out = arr;
	q->n = count;
	return PGW_OK;
}

/* A read of at most one binding; PGW_ENOTFOUND when there is none. */
static pgw_err binding_read_one(registry_store *s, binding_query *q)
{
	pgw_err err = store_call(s, ACQUIRE_TIMEOUT_MS, binding_read_op, q);

	if (err == PGW_OK && q->n == 0)
		return PGW_ENOTFOUND;
	return err;
}

static pgw_err pg_binding_get(registry_store *s, const char *id, registry_binding **out)
{
	binding_query q = { .stmt = PS_BINDING_GET, .id = id, .out = out };

	return binding_read_one(s, &q);
}

static pgw_err pg_binding_find(registry_store *s, const char *edge, const char *aor,
			       const char *instance, const pgw_target *t, registry_binding **out)
{
	binding_query q = { .stmt = instance ? PS_BINDING_BY_INSTANCE : PS_BINDING_BY_TOKEN,
			    .edge = edge, .aor = aor, .instance = instance, .t = t, .out = out };

	return binding_read_one(s, &q);
}

static pgw_err pg_binding_list(registry_store *s, const char *edge, int64_t now_ms,
			       registry_binding **out, size_t *n)
{
	binding_query q = { .stmt = PS_BINDING_LIST, .edge = edge, .now_ms = now_ms, .out = out };
	pgw_err err = store_call(s, ACQUIRE_TIMEOUT_MS, binding_read_op, &q);

	*n = err == PGW_OK ? q.n : 0;
	return err;
}

const registry_backend registry_pg_backend = {
	.name = "postgresql",
	.open = pg_open,
	.close = pg_close,
	.put = pg_put,
	.list = pg_list,
	.get = pg_get,
	.remove = pg_remove,
	.prune = pg_prune,
	.set_environment = pg_set_environment,
	.count = pg_count,
	.healthy = pg_healthy,
	.binding_put = pg_binding_put,
	.binding_get = pg_binding_get,
	.binding_find = pg_binding_find,
	.binding_list = pg_binding_list,
	.binding_remove = pg_binding_remove,
	.binding_expire = pg_binding_expire,
};
