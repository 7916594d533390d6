/* Unit tests for the HTTP/2 pool against real TLS servers: nghttpd with
 * certificates made by the openssl CLI, plain sockets and the project's APNs
 * simulator. The pool runs on an evloop thread driven through posted calls. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "pushgw/evloop.h"
#include "pushgw/h2pool.h"
#include "pushgw/log.h"
#include "pushgw/util.h"

extern char **environ;

static char tmpdir[256];
static evloop *loop;

/* ---- fixtures: certificates, servers, ports ---- */

/* Run a shell command made of fmt with one %s. */
static bool sh(const char *fmt, const char *arg)
{
	char cmd[2048];
	snprintf(cmd, sizeof cmd, fmt, arg);
	return system(cmd) == 0;
}

/* A CA, a server certificate for 127.0.0.1/localhost and one that names
 * only wrong.example, all signed by that CA. */
static bool make_certs(void)
{
	return sh("cd %s && "
		  "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
		  "-keyout ca.key -out ca.pem -days 2 -subj /CN=pushgw-test-ca >/dev/null 2>&1 && "
		  "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > good.ext && "
		  "printf 'subjectAltName=DNS:wrong.example\\n' > wrong.ext && "
		  "for n in good wrong; do "
		  "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $n.key "
		  "-out $n.csr -subj /CN=test >/dev/null 2>&1 && "
		  "openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
		  "-out $n.pem -days 2 -extfile $n.ext >/dev/null 2>&1 || exit 1; done",
		  tmpdir);
}

static bool make_htdocs(void)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof path, "%s/htdocs", tmpdir);
	if (mkdir(path, 0700) != 0)
		return false;
	snprintf(path, sizeof path, "%s/htdocs/hello.txt", tmpdir);
	f = fopen(path, "w");
	if (!f)
		return false;
	fputs("hello from nghttpd\n", f);
	fclose(f);
	snprintf(path, sizeof path, "%s/htdocs/big.bin", tmpdir);
	f = fopen(path, "w");
	if (!f)
		return false;
	for (int i = 0; i < 100000; i++)
		fputc('a' + i % 26, f);
	fclose(f);
	return true;
}

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int port = -1;

	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static bool port_accepts(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
	close(fd);
	return ok;
}

/* A listening socket nobody accepts from: TCP completes, TLS never does. */
static int blackhole_listen(int *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 64) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) != 0)
		return -1;
	*port = ntohs(a.sin_port);
	return fd;
}

typedef struct server {
	pid_t pid;
	int port;
	const char *cert; /* "good" or "wrong" */
	int max_streams;
} server;

static bool server_start(server *s)
{
	char port[16], key[512], pem[512], htdocs[512], streams[16];
	char *argv[16];
	int n = 0;
	posix_spawn_file_actions_t fa;

	snprintf(port, sizeof port, "%d", s->port);
	snprintf(key, sizeof key, "%s/%s.key", tmpdir, s->cert);
	snprintf(pem, sizeof pem, "%s/%s.pem", tmpdir, s->cert);
	snprintf(htdocs, sizeof htdocs, "%s/htdocs", tmpdir);
	snprintf(streams, sizeof streams, "%d", s->max_streams);
	argv[n++] = getenv("NGHTTPD") ? getenv("NGHTTPD") : "nghttpd";
	argv[n++] = "-a";
	argv[n++] = "127.0.0.1";
	argv[n++] = "-d";
	argv[n++] = htdocs;
	argv[n++] = "--echo-upload";
	argv[n++] = "-m";
	argv[n++] = streams;
	argv[n++] = port;
	argv[n++] = key;
	argv[n++] = pem;
	argv[n] = NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	if (posix_spawnp(&s->pid, argv[0], &fa, NULL, argv, environ) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		s->pid = 0;
		return false;
	}
	posix_spawn_file_actions_destroy(&fa);
	for (int i = 0; i < 250; i++) {
		if (port_accepts(s->port))
			return true;
		usleep(20 * 1000);
	}
	return false;
}

static void server_stop(server *s)
{
	if (s->pid <= 0)
		return;
	kill(s->pid, SIGKILL); /* also ends a stopped process, without letting it run */
	waitpid(s->pid, NULL, 0);
	s->pid = 0;
}

/* Freeze the server and return only once it is really stopped. */
static void server_pause(server *s)
{
	int status;

	kill(s->pid, SIGSTOP);
	waitpid(s->pid, &status, WUNTRACED);
}

static void server_resume(server *s)
{
	kill(s->pid, SIGCONT);
}

/* ---- running things on the loop ---- */

typedef struct sync_call {
	void (*fn)(void *);
	void *arg;
	sem_t done;
} sync_call;

static void sync_call_run(void *arg)
{
	sync_call *sc = arg;
	sc->fn(sc->arg);
	sem_post(&sc->done);
}

static void on_loop(void (*fn)(void *), void *arg)
{
	sync_call sc = {.fn = fn, .arg = arg};
	sem_init(&sc.done, 0, 0);
	evloop_post(loop, sync_call_run, &sc);
	sem_wait(&sc.done);
	sem_destroy(&sc.done);
}

typedef struct pool_call {
	h2pool_opts opts;
	h2pool *pool;
	pgw_err err;
} pool_call;

static void pool_new_fn(void *arg)
{
	pool_call *pc = arg;
	pc->err = h2pool_new(loop, &pc->opts, &pc->pool);
}

static void pool_free_fn(void *arg)
{
	h2pool_free(arg);
}

static h2pool *pool_new(const char *ca_file, int ping_interval_ms, int ping_timeout_ms,
			int max_queue)
{
	pool_call pc = {.opts = {.ca_file = ca_file, .ping_interval_ms = ping_interval_ms,
				 .ping_timeout_ms = ping_timeout_ms, .connect_timeout_ms = 0,
				 .max_queue = max_queue}};
	on_loop(pool_new_fn, &pc);
	CHECK(pc.err == PGW_OK);
	return pc.pool;
}

typedef struct origin_call {
	h2pool *pool;
	h2_origin_opts opts;
	h2_origin *origin;
	pgw_err err;
} origin_call;

static void origin_open_fn(void *arg)
{
	origin_call *oc = arg;
	oc->err = h2pool_origin_open(oc->pool, &oc->opts, &oc->origin);
}

static h2_origin *origin_open(h2pool *pool, const char *url, int conns, int max_conns)
{
	origin_call oc = {.pool = pool,
			  .opts = {.url = url, .connections = conns, .max_connections = max_conns}};
	on_loop(origin_open_fn, &oc);
	CHECK(oc.err == PGW_OK);
	return oc.origin;
}

typedef struct stats_call {
	h2_origin *origin;
	h2_origin_stats st;
} stats_call;

static void stats_fn(void *arg)
{
	stats_call *sc = arg;
	h2pool_origin_stats(sc->origin, &sc->st);
}

static h2_origin_stats stats(h2_origin *o)
{
	stats_call sc = {.origin = o};
	on_loop(stats_fn, &sc);
	return sc.st;
}

/* Poll until the origin has `want` ready connections. */
static bool wait_ready(h2_origin *o, int want, int ms)
{
	for (int waited = 0; waited < ms; waited += 20) {
		if (stats(o).connections_open == want)
			return true;
		usleep(20 * 1000);
	}
	return false;
}

typedef struct recycle_call {
	h2_origin *origin;
	uint64_t conn_id;
} recycle_call;

static void recycle_fn(void *arg)
{
	recycle_call *rc = arg;
	h2pool_conn_recycle(rc->origin, rc->conn_id);
}

static void recycle(h2_origin *o, uint64_t conn_id)
{
	recycle_call rc = {o, conn_id};
	on_loop(recycle_fn, &rc);
}

/* ---- requests and their outcomes ---- */

typedef struct outcome {
	int calls;
	h2_result result;
	int status;
	char body[128];
	size_t body_len;
	char content_length[24];
	char server[64];
	char echo_header[64];
	bool upper_case_name;
	int64_t at_ms;
	uint64_t conn_id;
	char error[160];
} outcome;

typedef struct batch {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	h2_origin *origin;
	outcome *outs;
	int n;
	int finished;
	int by_result[8];
	int max_streams_seen;
	int sync_calls;        /* callbacks that ran inside h2pool_send */
	bool in_send;
	int chain_left;        /* re-send from the callback this many times */
	bool chained;          /* one request that re-sends itself: one finish */
	const char *method, *path, *body;
	const char **paths;        /* per request, when set */
	const h2_header *hdrs;     /* replaces the default test header when set */
	size_t n_hdrs;
	int64_t deadline_rel;
	int send_failures;
} batch;

typedef struct slot {
	batch *b;
	int i;
} slot;

static void batch_init(batch *b, h2_origin *o, int n)
{
	memset(b, 0, sizeof *b);
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->cv, NULL);
	b->origin = o;
	b->n = n;
	b->outs = calloc((size_t)n, sizeof *b->outs);
	b->method = "GET";
	b->path = "/hello.txt";
}

static void batch_clear(batch *b)
{
	free(b->outs);
	pthread_mutex_destroy(&b->mu);
	pthread_cond_destroy(&b->cv);
}

static const char *header_of(const h2_response *r, const char *name)
{
	for (size_t i = 0; i < r->n_headers; i++)
		if (strcmp(r->headers[i].name, name) == 0)
			return r->headers[i].value;
	return NULL;
}

static void send_one(batch *b, slot *s);

static void on_response(void *arg, const h2_response *resp)
{
	slot *s = arg;
	batch *b = s->b;
	outcome *o = &b->outs[s->i];
	const char *v;
	h2_origin_stats st;

	if (b->in_send)
		b->sync_calls++;
	o->calls++;
	o->result = resp->result;
	o->status = resp->status;
	o->conn_id = resp->conn_id;
	o->at_ms = pgw_now_ms();
	o->body_len = resp->body_len;
	snprintf(o->body, sizeof o->body, "%s", resp->body);
	snprintf(o->error, sizeof o->error, "%s", resp->error ? resp->error : "");
	if ((v = header_of(resp, "content-length")))
		snprintf(o->content_length, sizeof o->content_length, "%s", v);
	if ((v = header_of(resp, "server")))
		snprintf(o->server, sizeof o->server, "%s", v);
	for (size_t i = 0; i < resp->n_headers; i++)
		for (const char *c = resp->headers[i].name; *c; c++)
			if (*c >= 'A' && *c <= 'Z')
				o->upper_case_name = true;
	if (b->origin) {
		h2pool_origin_stats(b->origin, &st);
		if (st.streams_active > b->max_streams_seen)
			b->max_streams_seen = st.streams_active;
	}
	if (b->chain_left > 0 && resp->result == H2_OK) {
		b->chain_left--;
		s->i++;
		send_one(b, s);
		return;
	}
	free(s);
	pthread_mutex_lock(&b->mu);
	b->by_result[resp->result]++;
	b->finished++;
	pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->mu);
}

static void send_one(batch *b, slot *s)
{
	h2_header hdrs[] = {{"X-Pushgw-Test", "Mixed-Case-Value"}};
	h2_request req = {
		.method = b->method,
		.path = b->paths ? b->paths[s->i] : b->path,
		.headers = b->hdrs ? b->hdrs : hdrs,
		.n_headers = b->hdrs ? b->n_hdrs : 1,
		.body = b->body,
		.body_len = b->body ? strlen(b->body) : 0,
		.deadline_ms = b->deadline_rel ? pgw_now_ms() + b->deadline_rel : 0,
		.cb = on_response,
		.arg = s,
	};

	b->in_send = true;
	if (h2pool_send(b->origin, &req) != PGW_OK) {
		b->send_failures++;
		free(s);
	}
	b->in_send = false;
}

static void batch_send_fn(void *arg)
{
	batch *b = arg;
	int n = b->chained ? 1 : b->n;

	for (int i = 0; i < n; i++) {
		slot *s = malloc(sizeof *s);
		*s = (slot){b, i};
		send_one(b, s);
	}
}

static int batch_expected(const batch *b)
{
	return b->chained ? 1 : b->n;
}

static bool batch_wait(batch *b, int ms)
{
	struct timespec ts;
	bool ok = true;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&b->mu);
	while (b->finished < batch_expected(b) && ok)
		ok = pthread_cond_timedwait(&b->cv, &b->mu, &ts) == 0;
	ok = b->finished >= batch_expected(b);
	pthread_mutex_unlock(&b->mu);
	return ok;
}

/* Send the batch on the loop and wait for every callback. */
static bool batch_run(batch *b, int ms)
{
	on_loop(batch_send_fn, b);
	return batch_wait(b, ms);
}

static int batch_count(batch *b, h2_result r)
{
	int n;

	pthread_mutex_lock(&b->mu);
	n = b->by_result[r];
	pthread_mutex_unlock(&b->mu);
	return n;
}

static bool all_calls_once(const batch *b)
{
	for (int i = 0; i < b->n; i++)
		if (b->outs[i].calls != 1)
			return false;
	return true;
}

/* ---- the tests ---- */

static server srv_main = {.cert = "good", .max_streams = 100};
static server srv_ten = {.cert = "good", .max_streams = 10};
static server srv_wrong = {.cert = "wrong", .max_streams = 100};
static server srv_stop = {.cert = "good", .max_streams = 100};

static char url_main[64], url_main_name[64], url_ten[64], url_wrong_ip[64],
	url_wrong_name[64], url_stop[64];

static void test_round_trips(h2pool *pool)
{
	h2_origin *o = origin_open(pool, url_main, 1, 1);
	h2_origin *by_name = origin_open(pool, url_main_name, 1, 1);
	batch b;

	TEST("GET over verified TLS: status, lower-case headers, body; never called from inside send");
	batch_init(&b, o, 1);
	CHECK(batch_run(&b, 5000));
	CHECK(b.outs[0].result == H2_OK);
	CHECK(b.outs[0].status == 200);
	CHECK_STR(b.outs[0].body, "hello from nghttpd\n");
	CHECK(b.outs[0].body_len == strlen("hello from nghttpd\n"));
	CHECK_STR(b.outs[0].content_length, "19");
	CHECK(strncmp(b.outs[0].server, "nghttpd", 7) == 0);
	CHECK(!b.outs[0].upper_case_name);
	CHECK(b.sync_calls == 0);
	batch_clear(&b);

	TEST("POST body reaches the server (echoed back)");
	batch_init(&b, o, 1);
	b.method = "POST";
	b.path = "/echo";
	b.body = "{\"aps\":{},\"type\":\"call\"}";
	CHECK(batch_run(&b, 5000));
	CHECK(b.outs[0].result == H2_OK);
	CHECK(b.outs[0].status == 200);
	CHECK_STR(b.outs[0].body, "{\"aps\":{},\"type\":\"call\"}");
	batch_clear(&b);

	TEST("a 404 is a complete response (H2_OK with status 404)");
	batch_init(&b, o, 1);
	b.path = "/missing";
	CHECK(batch_run(&b, 5000));
	CHECK(b.outs[0].result == H2_OK);
	CHECK(b.outs[0].status == 404);
	batch_clear(&b);

	TEST("a body over 64 KiB is cut at 64 KiB");
	batch_init(&b, o, 1);
	b.path = "/big.bin";
	CHECK(batch_run(&b, 5000));
	CHECK(b.outs[0].result == H2_OK);
	CHECK(b.outs[0].body_len == 64 * 1024);
	CHECK(strncmp(b.outs[0].body, "abcdefghijklmnopqrstuvwxyzabc", 29) == 0);
	CHECK_STR(b.outs[0].content_length, "100000");
	batch_clear(&b);

	TEST("a host name is resolved off the loop and verified (SNI + name check)");
	batch_init(&b, by_name, 1);
	CHECK(batch_run(&b, 5000));
	CHECK(b.outs[0].result == H2_OK);
	CHECK(b.outs[0].status == 200);
	batch_clear(&b);

	TEST("callbacks may send again: a chain of 20 requests sent from callbacks");
	batch_init(&b, o, 21);
	b.chain_left = 20;
	b.chained = true;
	CHECK(batch_run(&b, 5000));
	CHECK(b.by_result[H2_OK] == 1);
	CHECK(b.outs[20].calls == 1 && b.outs[20].status == 200);
	CHECK(b.sync_calls == 0);
	batch_clear(&b);

	CHECK(stats(o).handshakes == 1);
	CHECK(stats(o).connect_failures == 0);
}

static void test_verification(void)
{
	h2pool *untrusting = pool_new(NULL, 0, 0, 0);
	h2pool *pool;
	char ca[512];
	h2_origin *o;
	batch b;
	int64_t t0;

	TEST("a certificate from an unknown CA fails fast with H2_ERR_CONNECT");
	o = origin_open(untrusting, url_main, 1, 1);
	batch_init(&b, o, 1);
	t0 = pgw_now_ms();
	CHECK(batch_run(&b, 5000));
	CHECK(b.outs[0].result == H2_ERR_CONNECT);
	CHECK(strstr(b.outs[0].error, "verify") != NULL);
	CHECK(b.outs[0].at_ms - t0 < 1000);
	CHECK(stats(o).handshakes == 0);
	CHECK(stats(o).connect_failures >= 1);
	batch_clear(&b);
	on_loop(pool_free_fn, untrusting);

	snprintf(ca, sizeof ca, "%s/ca.pem", tmpdir);
	pool = pool_new(ca, 0, 0, 0);

	TEST("a trusted certificate for another IP fails with H2_ERR_CONNECT");
	o = origin_open(pool, url_wrong_ip, 1, 1);
	batch_init(&b, o, 1);
	CHECK(batch_run(&b, 5000));
	CHECK(b.outs[0].result == H2_ERR_CONNECT);
	CHECK(strstr(b.outs[0].error, "mismatch") != NULL);
	batch_clear(&b);

	TEST("a trusted certificate for another host name fails with H2_ERR_CONNECT");
	o = origin_open(pool, url_wrong_name, 1, 1);
	batch_init(&b, o, 1);
	CHECK(batch_run(&b, 5000));
	CHECK(b.outs[0].result == H2_ERR_CONNECT);
	CHECK(strstr(b.outs[0].error, "mismatch") != NULL);
	batch_clear(&b);

	TEST("bad URLs and unreadable CA or client certificate files are refused at open");
	{
		origin_call oc = {.pool = pool, .opts = {.url = "http://127.0.0.1:1", .connections = 1}};
		on_loop(origin_open_fn, &oc);
		CHECK(oc.err == PGW_EINVAL);
		oc.opts.url = "https://127.0.0.1:99999";
		on_loop(origin_open_fn, &oc);
		CHECK(oc.err == PGW_EINVAL);
		oc.opts.url = "https://[::1]:8443/path";
		on_loop(origin_open_fn, &oc);
		CHECK(oc.err == PGW_OK);
		oc.opts.url = url_main;
		oc.opts.client_cert_file = "no-such-cert.pem";
		on_loop(origin_open_fn, &oc);
		CHECK(oc.err == PGW_ETLS);
	}
	on_loop(pool_free_fn, pool);
	{
		h2pool *bad_ca = pool_new("no-such-ca.pem", 0, 0, 0);
		origin_call oc = {.pool = bad_ca, .opts = {.url = url_main, .connections = 1}};
		on_loop(origin_open_fn, &oc);
		CHECK(oc.err == PGW_ETLS);
		on_loop(pool_free_fn, bad_ca);
	}
}

static void test_multiplexing(h2pool *pool)
{
	h2_origin *o = origin_open(pool, url_main, 1, 1);
	h2_origin *ten = origin_open(pool, url_ten, 1, 1);
	h2_origin *grow = origin_open(pool, url_ten, 1, 3);
	h2_origin *pair;
	h2_origin_stats st;
	uint64_t conn_id, other = 0;
	bool seen_recycled, seen_other;
	batch b;
	int64_t t0;

	CHECK(wait_ready(o, 1, 5000));
	TEST("500 concurrent requests share one connection, up to the server's 100 streams");
	batch_init(&b, o, 500);
	b.method = "POST";
	b.path = "/echo";
	b.body = "0123456789";
	t0 = pgw_now_us();
	CHECK(batch_run(&b, 20000));
	fprintf(stderr, "   500 requests: %lld us\n", (long long)(pgw_now_us() - t0));
	CHECK(b.by_result[H2_OK] == 500);
	CHECK(all_calls_once(&b));
	CHECK(b.max_streams_seen > 1);
	CHECK(b.max_streams_seen <= 100);
	st = stats(o);
	CHECK(st.handshakes == 1);
	CHECK(st.requests_sent == 500);
	CHECK(st.connections_open == 1);
	CHECK(st.streams_active == 0);
	CHECK(st.queued == 0);
	batch_clear(&b);

	CHECK(wait_ready(ten, 1, 5000));
	TEST("the peer's SETTINGS_MAX_CONCURRENT_STREAMS (10) is never exceeded");
	batch_init(&b, ten, 200);
	CHECK(batch_run(&b, 20000));
	CHECK(b.by_result[H2_OK] == 200);
	CHECK(b.max_streams_seen <= 10);
	CHECK(b.max_streams_seen >= 2);
	CHECK(stats(ten).handshakes == 1);
	batch_clear(&b);

	CHECK(wait_ready(grow, 1, 5000));
	TEST("when every stream is busy the origin grows up to max_connections");
	batch_init(&b, grow, 300);
	CHECK(batch_run(&b, 20000));
	CHECK(b.by_result[H2_OK] == 300);
	st = stats(grow);
	CHECK(st.handshakes >= 2 && st.handshakes <= 3);
	CHECK(b.max_streams_seen > 10);
	CHECK(b.max_streams_seen <= 30);
	batch_clear(&b);

	TEST("recycle: in-flight requests finish, a fresh connection replaces the old one");
	batch_init(&b, o, 1);
	CHECK(batch_run(&b, 5000));
	CHECK(b.outs[0].status == 200);
	conn_id = b.outs[0].conn_id;
	CHECK(conn_id != 0);
	batch_clear(&b);
	batch_init(&b, o, 50);
	on_loop(batch_send_fn, &b);
	recycle(o, conn_id);
	CHECK(batch_wait(&b, 10000));
	CHECK(b.by_result[H2_OK] == 50);
	batch_clear(&b);
	for (int i = 0; i < 100 && stats(o).handshakes < 2; i++)
		usleep(20 * 1000);
	CHECK(wait_ready(o, 1, 5000));
	st = stats(o);
	CHECK(st.handshakes == 2);
	batch_init(&b, o, 1);
	CHECK(batch_run(&b, 5000));
	CHECK(b.outs[0].status == 200);
	CHECK(b.outs[0].conn_id != conn_id);
	TEST("recycling a connection that is already gone does nothing");
	recycle(o, conn_id);
	usleep(200 * 1000);
	CHECK(stats(o).handshakes == 2);
	batch_clear(&b);

	pair = origin_open(pool, url_main, 2, 2);
	CHECK(wait_ready(pair, 2, 5000));
	TEST("recycle replaces only the connection named; the origin's others stay");
	batch_init(&b, pair, 20);
	CHECK(batch_run(&b, 5000));
	CHECK(b.by_result[H2_OK] == 20);
	conn_id = b.outs[0].conn_id;
	for (int i = 1; i < 20 && other == 0; i++)
		if (b.outs[i].conn_id != conn_id)
			other = b.outs[i].conn_id;
	batch_clear(&b);
	recycle(pair, conn_id);
	for (int i = 0; i < 250 && stats(pair).handshakes < 3; i++)
		usleep(20 * 1000);
	CHECK(wait_ready(pair, 2, 5000));
	usleep(300 * 1000); /* time for a wrong second replacement to show */
	st = stats(pair);
	CHECK(st.handshakes == 3);
	CHECK(st.connections_open == 2);
	batch_init(&b, pair, 40);
	CHECK(batch_run(&b, 5000));
	CHECK(b.by_result[H2_OK] == 40);
	seen_recycled = seen_other = false;
	for (int i = 0; i < 40; i++) {
		seen_recycled |= b.outs[i].conn_id == conn_id;
		seen_other |= other != 0 && b.outs[i].conn_id == other;
	}
	CHECK(!seen_recycled);
	/* when the first batch used both, the untouched one still serves */
	CHECK(other == 0 || seen_other);
	batch_clear(&b);
}

static void test_failures_fast(h2pool *pool)
{
	char url[64];
	int port = free_port();
	h2_origin *o;
	batch b;
	int64_t t0;

	TEST("a refused port answers H2_ERR_CONNECT fast, and again while it stays down");
	snprintf(url, sizeof url, "https://127.0.0.1:%d", port);
	o = origin_open(pool, url, 1, 1);
	batch_init(&b, o, 1);
	t0 = pgw_now_ms();
	CHECK(batch_run(&b, 5000));
	CHECK(b.outs[0].result == H2_ERR_CONNECT);
	CHECK(pgw_now_ms() - t0 < 1000);
	batch_clear(&b);
	batch_init(&b, o, 3);
	t0 = pgw_now_ms();
	CHECK(batch_run(&b, 5000));
	CHECK(b.by_result[H2_ERR_CONNECT] == 3);
	CHECK(pgw_now_ms() - t0 < 1000);
	CHECK(stats(o).connect_failures >= 1);
	batch_clear(&b);
}

static void test_deadlines(h2pool *pool, int blackhole_port)
{
	char url[64];
	h2_origin *o;
	batch b;
	int64_t t0;

	TEST("a queued request whose connection never completes TLS times out at its deadline");
	snprintf(url, sizeof url, "https://127.0.0.1:%d", blackhole_port);
	o = origin_open(pool, url, 1, 1);
	batch_init(&b, o, 2);
	b.deadline_rel = 300;
	t0 = pgw_now_ms();
	CHECK(batch_run(&b, 5000));
	CHECK(b.by_result[H2_ERR_TIMEOUT] == 2);
	CHECK(b.outs[0].at_ms - t0 >= 295);
	CHECK(b.outs[0].at_ms - t0 < 1200);
	CHECK(stats(o).queued == 0);
	batch_clear(&b);

	TEST("a deadline already passed is reported as a timeout, not from inside send");
	batch_init(&b, o, 1);
	b.deadline_rel = -5;
	CHECK(batch_run(&b, 2000));
	CHECK(b.outs[0].result == H2_ERR_TIMEOUT);
	CHECK(b.sync_calls == 0);
	batch_clear(&b);

	TEST("a sent request past its deadline is reset: timeout once, late answer ignored, connection kept");
	o = origin_open(pool, url_stop, 1, 1);
	CHECK(wait_ready(o, 1, 5000));
	server_pause(&srv_stop);
	batch_init(&b, o, 1);
	b.deadline_rel = 300;
	t0 = pgw_now_ms();
	CHECK(batch_run(&b, 5000));
	CHECK(b.outs[0].result == H2_ERR_TIMEOUT);
	CHECK(b.outs[0].at_ms - t0 >= 295 && b.outs[0].at_ms - t0 < 1200);
	CHECK(stats(o).requests_sent == 1);
	server_resume(&srv_stop);
	usleep(200 * 1000);
	CHECK(b.outs[0].calls == 1);
	batch_clear(&b);
	batch_init(&b, o, 1);
	CHECK(batch_run(&b, 5000));
	CHECK(b.outs[0].status == 200);
	CHECK(stats(o).handshakes == 1);
	CHECK(stats(o).streams_active == 0);
	batch_clear(&b);
}

static void test_keepalive_and_reconnect(void)
{
	h2pool *pool;
	char ca[512];
	h2_origin *o;
	batch b;
	int64_t t0;

	snprintf(ca, sizeof ca, "%s/ca.pem", tmpdir);
	pool = pool_new(ca, 150, 300, 0);
	o = origin_open(pool, url_stop, 1, 1);
	CHECK(wait_ready(o, 1, 5000));

	TEST("PING keeps an idle healthy connection open");
	usleep(800 * 1000);
	CHECK(stats(o).connections_open == 1);
	CHECK(stats(o).handshakes == 1);

	TEST("no PING ACK: the connection is replaced and its sent request is H2_ERR_LOST");
	server_pause(&srv_stop);
	batch_init(&b, o, 1);
	b.deadline_rel = 8000;
	t0 = pgw_now_ms();
	CHECK(batch_run(&b, 8000));
	CHECK(b.outs[0].result == H2_ERR_LOST);
	CHECK(b.outs[0].at_ms - t0 < 2000);
	batch_clear(&b);
	server_resume(&srv_stop);
	CHECK(wait_ready(o, 1, 15000));
	CHECK(stats(o).handshakes == 2);

	TEST("server killed: in-flight request lost, requests fail fast while it is down");
	server_pause(&srv_stop);
	batch_init(&b, o, 1);
	on_loop(batch_send_fn, &b);
	usleep(50 * 1000);
	server_stop(&srv_stop);
	CHECK(batch_wait(&b, 5000));
	CHECK(b.outs[0].result == H2_ERR_LOST);
	batch_clear(&b);
	for (int i = 0; i < 100 && stats(o).connect_failures == 0; i++)
		usleep(20 * 1000);
	batch_init(&b, o, 1);
	t0 = pgw_now_ms();
	CHECK(batch_run(&b, 5000));
	CHECK(b.outs[0].result == H2_ERR_CONNECT);
	CHECK(pgw_now_ms() - t0 < 1000);
	batch_clear(&b);

	TEST("server back on the same port: the pool reconnects by itself");
	CHECK(server_start(&srv_stop));
	CHECK(wait_ready(o, 1, 15000));
	CHECK(stats(o).handshakes == 3);
	batch_init(&b, o, 1);
	CHECK(batch_run(&b, 5000));
	CHECK(b.outs[0].result == H2_OK && b.outs[0].status == 200);
	batch_clear(&b);
	on_loop(pool_free_fn, pool);
}

static void test_shutdown_and_overflow(int blackhole_port)
{
	h2pool *pool;
	char ca[512], url[64];
	h2_origin *queued, *sent;
	batch bq, bs;

	snprintf(ca, sizeof ca, "%s/ca.pem", tmpdir);
	snprintf(url, sizeof url, "https://127.0.0.1:%d", blackhole_port);
	pool = pool_new(ca, 0, 0, 5);
	queued = origin_open(pool, url, 1, 1);
	sent = origin_open(pool, url_stop, 1, 1);
	CHECK(wait_ready(sent, 1, 5000));

	TEST("beyond max_queue a request gets H2_ERR_OVERFLOW");
	batch_init(&bq, queued, 8);
	on_loop(batch_send_fn, &bq);
	usleep(100 * 1000);
	CHECK(batch_count(&bq, H2_ERR_OVERFLOW) == 3);
	CHECK(stats(queued).queued == 5);

	TEST("h2pool_free: queued and sent requests get H2_ERR_SHUTDOWN exactly once");
	server_pause(&srv_stop);
	batch_init(&bs, sent, 4);
	on_loop(batch_send_fn, &bs);
	usleep(50 * 1000);
	CHECK(stats(sent).streams_active == 4);
	bq.origin = NULL; /* the pool is gone when these callbacks run */
	bs.origin = NULL;
	on_loop(pool_free_fn, pool);
	server_resume(&srv_stop);
	CHECK(batch_wait(&bq, 1000));
	CHECK(batch_wait(&bs, 1000));
	CHECK(bq.by_result[H2_ERR_SHUTDOWN] == 5);
	CHECK(bs.by_result[H2_ERR_SHUTDOWN] == 4);
	CHECK(all_calls_once(&bq));
	CHECK(all_calls_once(&bs));
	batch_clear(&bq);
	batch_clear(&bs);
}

/* ---- GOAWAY and REFUSED_STREAM against the project's APNs simulator ---- */

typedef struct pushsim {
	pid_t pid;
	int port;
	int control;
} pushsim;

static const char *pushsim_path(void)
{
	const char *p = getenv("PUSHSIM");
	return p ? p : "build/pushsim";
}

/* Starts pushsim on free ports with up to 6 extra options; it prints
 * {"listen":N,"control":M} first. */
static bool pushsim_start(pushsim *ps, const char *const *extra)
{
	char out[512], cert[512], key[512], line[256] = "";
	char *argv[16] = {(char *)pushsim_path(), "--listen", "127.0.0.1:0", "--control",
			  "127.0.0.1:0", "--cert", cert, "--key", key};
	posix_spawn_file_actions_t fa;
	const char *p;

	for (int i = 0; extra && extra[i] && i < 6; i++)
		argv[9 + i] = (char *)extra[i];

	snprintf(out, sizeof out, "%s/pushsim.out", tmpdir);
	snprintf(cert, sizeof cert, "%s/good.pem", tmpdir);
	snprintf(key, sizeof key, "%s/good.key", tmpdir);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	if (posix_spawn(&ps->pid, argv[0], &fa, NULL, argv, environ) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		ps->pid = 0;
		return false;
	}
	posix_spawn_file_actions_destroy(&fa);
	for (int i = 0; i < 250 && !strchr(line, '\n'); i++) {
		FILE *f = fopen(out, "r");
		if (f) {
			if (!fgets(line, sizeof line, f))
				line[0] = '\0';
			fclose(f);
		}
		if (!strchr(line, '\n'))
			usleep(20 * 1000);
	}
	p = strstr(line, "\"listen\"");
	if (p)
		ps->port = atoi(p + 9);
	p = strstr(line, "\"control\"");
	if (p)
		ps->control = atoi(p + 10);
	return ps->port > 0 && ps->control > 0;
}

static void pushsim_stop(pushsim *ps)
{
	if (ps->pid <= 0)
		return;
	kill(ps->pid, SIGKILL);
	waitpid(ps->pid, NULL, 0);
	ps->pid = 0;
}

/* One HTTP/1.1 request to the control port; the response (head and body)
 * lands in resp. */
static bool ctl_call(const pushsim *ps, const char *method, const char *path, const char *body,
		     char *resp, size_t n)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)ps->control),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	char req[2048];
	size_t got = 0;
	ssize_t r;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int len = snprintf(req, sizeof req,
			   "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
			   "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
			   method, path, body ? strlen(body) : 0, body ? body : "");

	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
	    write(fd, req, (size_t)len) != len) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	while (got + 1 < n && (r = read(fd, resp + got, n - 1 - got)) > 0)
		got += (size_t)r;
	resp[got] = '\0';
	close(fd);
	return strncmp(resp, "HTTP/1.1 200", 12) == 0;
}

#define TOK(c) "bbbb00000000000000000000000000000000000000000000000000000000000" c

static void test_goaway_and_refused(void)
{
	static const h2_header apns_hdrs[] = {
		{"apns-topic", "com.example.phone.voip"},
		{"apns-push-type", "voip"},
		{"apns-priority", "10"},
	};
	const char *paths[3] = {"/3/device/" TOK("c"), "/3/device/" TOK("a"),
				"/3/device/" TOK("b")};
	pushsim ps = {0};
	char ca[512], url[64], resp[4096];
	h2pool *pool;
	h2_origin *o;
	h2_origin_stats st;
	batch b;

	if (access(pushsim_path(), X_OK) != 0) {
		TEST("GOAWAY / REFUSED_STREAM re-sends: skipped, build/pushsim not built (or set PUSHSIM)");
		return;
	}
	TEST("GOAWAY: streams above last-stream-id are re-sent on a new connection, the rest finish");
	CHECK(pushsim_start(&ps, NULL));
	if (ps.port <= 0) {
		pushsim_stop(&ps);
		return;
	}
	snprintf(ca, sizeof ca, "%s/ca.pem", tmpdir);
	snprintf(url, sizeof url, "https://127.0.0.1:%d", ps.port);
	pool = pool_new(ca, 0, 0, 0);
	o = origin_open(pool, url, 1, 1);
	CHECK(wait_ready(o, 1, 5000));
	CHECK(ctl_call(&ps, "POST", "/script",
		       "{\"" TOK("c") "\":[{\"status\":200,\"delay_ms\":1500}],"
		       "\"" TOK("b") "\":[{\"status\":200,\"delay_ms\":1500}]}",
		       resp, sizeof resp));
	batch_init(&b, o, 3);
	b.method = "POST";
	b.paths = paths;
	b.hdrs = apns_hdrs;
	b.n_hdrs = 3;
	b.body = "{\"aps\":{},\"type\":\"call\",\"call_id\":\"c1\"}";
	on_loop(batch_send_fn, &b);
	/* a (stream 3) is answered at once; c (1) and b (5) are being delayed */
	for (int i = 0; i < 100 && batch_count(&b, H2_OK) == 0; i++)
		usleep(20 * 1000);
	CHECK(batch_count(&b, H2_OK) == 1);
	CHECK(b.outs[1].calls == 1 && b.outs[1].status == 200);
	CHECK(ctl_call(&ps, "POST", "/goaway", NULL, resp, sizeof resp));
	CHECK(strstr(resp, "\"connections\": 1") || strstr(resp, "\"connections\":1"));
	CHECK(batch_wait(&b, 5000));
	CHECK(b.by_result[H2_OK] == 3);
	CHECK(b.outs[0].status == 200 && b.outs[2].status == 200);
	CHECK(all_calls_once(&b));
	st = stats(o);
	CHECK(st.goaways == 1);
	CHECK(st.handshakes == 2);
	CHECK(st.requests_sent == 4);
	batch_clear(&b);
	CHECK(wait_ready(o, 1, 5000));

	TEST("RST_STREAM(REFUSED_STREAM) is re-sent; refused every time → H2_ERR_REFUSED");
	CHECK(ctl_call(&ps, "POST", "/script",
		       "{\"" TOK("d") "\":[{\"rst\":true},{\"status\":200}],"
		       "\"" TOK("e") "\":[{\"rst\":true}]}",
		       resp, sizeof resp));
	paths[0] = "/3/device/" TOK("d");
	paths[1] = "/3/device/" TOK("e");
	batch_init(&b, o, 2);
	b.method = "POST";
	b.paths = paths;
	b.hdrs = apns_hdrs;
	b.n_hdrs = 3;
	b.body = "{\"aps\":{},\"type\":\"call\",\"call_id\":\"c2\"}";
	CHECK(batch_run(&b, 5000));
	CHECK(b.outs[0].result == H2_OK && b.outs[0].status == 200);
	CHECK(b.outs[1].result == H2_ERR_REFUSED);
	st = stats(o);
	CHECK(st.requests_sent == 4 + 2 + 4); /* d twice, e once plus 3 re-sends */
	CHECK(st.handshakes == 2);
	batch_clear(&b);

	on_loop(pool_free_fn, pool);
	pushsim_stop(&ps);
}

/* APNs style: one stream until the first success, then more; later fewer. */
static void test_settings_changes(void)
{
	static const char *const extra[] = {"--initial-streams", "1", "--max-streams", "20",
					    "--delay-ms", "20", NULL};
	static const h2_header apns_hdrs[] = {
		{"apns-topic", "com.example.phone.voip"},
		{"apns-push-type", "voip"},
	};
	pushsim ps = {0};
	char ca[512], url[64], resp[4096];
	h2pool *pool;
	h2_origin *o;
	batch b;

	if (access(pushsim_path(), X_OK) != 0)
		return;
	TEST("stream limit 1 raised to 20 by a later SETTINGS: followed, never exceeded");
	CHECK(pushsim_start(&ps, extra));
	if (ps.port <= 0) {
		pushsim_stop(&ps);
		return;
	}
	snprintf(ca, sizeof ca, "%s/ca.pem", tmpdir);
	snprintf(url, sizeof url, "https://127.0.0.1:%d", ps.port);
	pool = pool_new(ca, 0, 0, 0);
	o = origin_open(pool, url, 1, 1);
	CHECK(wait_ready(o, 1, 5000));
	batch_init(&b, o, 100);
	b.method = "POST";
	b.path = "/3/device/" TOK("f");
	b.hdrs = apns_hdrs;
	b.n_hdrs = 2;
	b.body = "{\"aps\":{}}";
	CHECK(batch_run(&b, 10000));
	CHECK(b.by_result[H2_OK] == 100);
	CHECK(b.outs[0].status == 200);
	CHECK(b.max_streams_seen > 1);
	CHECK(b.max_streams_seen <= 20);
	batch_clear(&b);

	TEST("a SETTINGS frame lowering the limit to 3 is followed");
	CHECK(ctl_call(&ps, "POST", "/settings?max_streams=3", NULL, resp, sizeof resp));
	usleep(100 * 1000);
	batch_init(&b, o, 60);
	b.method = "POST";
	b.path = "/3/device/" TOK("f");
	b.hdrs = apns_hdrs;
	b.n_hdrs = 2;
	b.body = "{\"aps\":{}}";
	CHECK(batch_run(&b, 10000));
	CHECK(b.by_result[H2_OK] == 60);
	CHECK(b.max_streams_seen <= 3);
	CHECK(b.max_streams_seen >= 2);
	CHECK(stats(o).handshakes == 1);
	batch_clear(&b);

	on_loop(pool_free_fn, pool);
	pushsim_stop(&ps);
}

static bool setup(void)
{
	const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";

	snprintf(tmpdir, sizeof tmpdir, "%s/pgw-h2pool-XXXXXX", base);
	if (!mkdtemp(tmpdir) || !make_certs() || !make_htdocs())
		return false;
	srv_main.port = free_port();
	srv_ten.port = free_port();
	srv_wrong.port = free_port();
	srv_stop.port = free_port();
	if (!server_start(&srv_main) || !server_start(&srv_ten) || !server_start(&srv_wrong) ||
	    !server_start(&srv_stop))
		return false;
	snprintf(url_main, sizeof url_main, "https://127.0.0.1:%d", srv_main.port);
	snprintf(url_main_name, sizeof url_main_name, "https://localhost:%d/ignored", srv_main.port);
	snprintf(url_ten, sizeof url_ten, "https://127.0.0.1:%d", srv_ten.port);
	snprintf(url_wrong_ip, sizeof url_wrong_ip, "https://127.0.0.1:%d", srv_wrong.port);
	snprintf(url_wrong_name, sizeof url_wrong_name, "https://localhost:%d", srv_wrong.port);
	snprintf(url_stop, sizeof url_stop, "https://127.0.0.1:%d", srv_stop.port);
	return true;
}

static void teardown(void)
{
	server_stop(&srv_main);
	server_stop(&srv_ten);
	server_stop(&srv_wrong);
	server_stop(&srv_stop);
	if (tmpdir[0])
		sh("rm -rf '%s'", tmpdir);
}

int main(void)
{
	char ca[512];
	h2pool *pool;
	int blackhole_port = 0;
	int blackhole;

	pgw_log_set_level(getenv("H2POOL_TEST_LOG") ? PGW_LOG_DEBUG : PGW_LOG_ERROR);
	TEST("fixtures: openssl CLI certificates and nghttpd (package nghttp2-server)");
	if (!setup()) {
		CHECK(!"test servers could not be started (is nghttpd installed?)");
		teardown();
		return check_summary("h2pool");
	}
	blackhole = blackhole_listen(&blackhole_port);
	CHECK(blackhole >= 0);
	CHECK(evloop_new(&loop) == PGW_OK);
	CHECK(evloop_start(loop) == PGW_OK);

	snprintf(ca, sizeof ca, "%s/ca.pem", tmpdir);
	pool = pool_new(ca, 0, 0, 0);
	test_round_trips(pool);
	test_multiplexing(pool);
	test_failures_fast(pool);
	test_deadlines(pool, blackhole_port);
	on_loop(pool_free_fn, pool);
	test_verification();
	test_keepalive_and_reconnect();
	test_shutdown_and_overflow(blackhole_port);
	test_goaway_and_refused();
	test_settings_changes();

	evloop_stop(loop);
	evloop_free(loop);
	close(blackhole);
	teardown();
	return check_summary("h2pool");
}
