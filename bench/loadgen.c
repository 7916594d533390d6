/* Open-loop HTTP/1.1 load client for the benchmark: POSTs one fixed request at
 * a constant rate over keep-alive connections and reports latency percentiles
 * measured from each request's *scheduled* send time, so a server that stalls
 * cannot slow the client down and hide it (no coordinated omission). A hold
 * mode puts N requests in flight at once (one per connection) for memory
 * figures. Single-threaded: epoll plus a timerfd; nothing else.
 *
 *   loadgen -u http://HOST:PORT/PATH -b BODY_FILE [-H 'Name: value']...
 *           [-r RATE -d SECONDS [-w WARMUP_S] [-c CONNECTIONS]] | [-i IN_FLIGHT]
 *           [-a PER_ADDRESS]
 *
 * -a spreads the connections over loopback source addresses (127.0.0.2,
 * 127.0.0.3, ...), at most PER_ADDRESS each, as several PBXs would: servers
 * limit connections per client address.
 *
 * Prints one JSON object on stdout. A response counts as ok when it is a 200;
 * "pushes_sent" counts "status":"sent" entries in the ok bodies, so a gateway
 * that answers without pushing shows up. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define LG_MAX_HEADERS 16
#define LG_BUF_MAX (1024 * 1024)
#define LG_DRAIN_S 10
#define LG_TIMER_TAG UINT64_MAX

typedef struct lg_opts {
	const char *url;
	const char *body_file;
	const char *headers[LG_MAX_HEADERS];
	int n_headers;
	double rate;
	double duration_s;
	double warmup_s;
	int connections;
	int in_flight; /* hold mode when > 0 */
	int per_address; /* connections per loopback source address; 0 = any */
} lg_opts;

typedef struct lg_conn {
	int fd;
	int idx;
	bool busy;
	int64_t scheduled_ns; /* of the request on this connection */
	size_t out_off;
	char *in;
	size_t in_len, in_cap;
	struct lg_conn *next_free;
} lg_conn;

/* Scheduled times of requests that found every connection busy. */
typedef struct lg_backlog {
	int64_t *t;
	size_t head, len, cap;
} lg_backlog;

typedef struct lg_stats {
	double *lat_ms; /* measured requests only */
	size_t n_lat, cap_lat;
	uint64_t ok, errors, pushes_sent, conn_errors;
	uint64_t scheduled; /* measured requests scheduled */
} lg_stats;

typedef struct lg {
	lg_opts o;
	struct sockaddr_in addr;
	char *req;
	size_t req_len;
	int epfd, tfd;
	lg_conn *conns;
	int n_conns;
	lg_conn *free_list;
	int busy;
	lg_backlog backlog;
	int64_t t0_ns, measure_from_ns, stop_sched_ns;
	uint64_t next_k; /* index of the next request to schedule */
	lg_stats st;
} lg;

static int64_t lg_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void lg_die(const char *what)
{
	fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* ---- set-up ---- */

static int lg_parse_url(lg *g)
{
	char host[64];
	const char *p, *colon, *slash;
	size_t hlen;

	if (strncmp(g->o.url, "http://", 7) != 0)
		return -1;
	p = g->o.url + 7;
	colon = strchr(p, ':');
	slash = strchr(p, '/');
	if (!colon || !slash || colon > slash)
		return -1;
	hlen = (size_t)(colon - p);
	if (hlen >= sizeof host)
		return -1;
	memcpy(host, p, hlen);
	host[hlen] = '\0';
	g->addr.sin_family = AF_INET;
	g->addr.sin_port = htons((uint16_t)atoi(colon + 1));
	return inet_pton(AF_INET, host, &g->addr.sin_addr) == 1 ? 0 : -1;
}

static char *lg_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		fclose(f);
		free(buf);
		return NULL;
	}
	fclose(f);
	buf[n] = '\0';
	*len = (size_t)n;
	return buf;
}

/* The whole request is built once: every send is the same bytes. */
static int lg_build_request(lg *g)
{
	const char *path = strchr(g->o.url + 7, '/');
	size_t body_len = 0, cap;
	char *body = lg_read_file(g->o.body_file, &body_len);
	int n, i;

	if (!body)
		return -1;
	cap = body_len + 4096;
	g->req = malloc(cap);
	if (!g->req)
		return -1;
	n = snprintf(g->req, cap, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
		     "Content-Length: %zu\r\n", path, "localhost", body_len);
	for (i = 0; i < g->o.n_headers; i++)
		n += snprintf(g->req + n, cap - (size_t)n, "%s\r\n", g->o.headers[i]);
	n += snprintf(g->req + n, cap - (size_t)n, "\r\n");
	memcpy(g->req + n, body, body_len);
	g->req_len = (size_t)n + body_len;
	free(body);
	return 0;
}

static void lg_epoll(lg *g, int op, int fd, uint32_t events, uint64_t tag)
{
	struct epoll_event ev = {.events = events, .data.u64 = tag};

	if (epoll_ctl(g->epfd, op, fd, &ev) < 0 && op != EPOLL_CTL_DEL)
		lg_die("epoll_ctl");
}

/* Connection i's source: 127.0.0.2 + i / per_address (wrapping in 127/8). */
static int lg_bind_source(const lg *g, int fd, int i)
{
	struct sockaddr_in src = {.sin_family = AF_INET};
	uint32_t host = (uint32_t)(i / g->o.per_address);

	src.sin_addr.s_addr = htonl(0x7f000002u + host % 0xfffff0u);
	return bind(fd, (struct sockaddr *)&src, sizeof src);
}

/* Loopback connects complete at once; blocking keeps this simple. */
static int lg_connect(lg *g, lg_conn *c)
{
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if ((g->o.per_address > 0 && lg_bind_source(g, fd, c->idx) < 0) ||
	    connect(fd, (struct sockaddr *)&g->addr, sizeof g->addr) < 0) {
		close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	c->fd = fd;
	c->in_len = 0;
	c->out_off = 0;
	lg_epoll(g, EPOLL_CTL_ADD, fd, EPOLLIN, (uint64_t)c->idx);
	return 0;
}

static void lg_open_connections(lg *g, int n)
{
	g->conns = calloc((size_t)n, sizeof *g->conns);
	if (!g->conns)
		lg_die("calloc");
	g->n_conns = n;
	for (int i = n - 1; i >= 0; i--) {
		lg_conn *c = &g->conns[i];
		c->idx = i;
		c->in_cap = 16384;
		c->in = malloc(c->in_cap);
		if (!c->in || lg_connect(g, c) < 0)
			lg_die("connect");
		c->next_free = g->free_list;
		g->free_list = c;
	}
}

/* ---- recording ---- */

static void lg_record(lg *g, int64_t scheduled_ns, int64_t done_ns, bool ok, unsigned sent)
{
	lg_stats *st = &g->st;

	if (scheduled_ns < g->measure_from_ns)
		return;
	if (!ok) {
		st->errors++;
		return;
	}
	st->ok++;
	st->pushes_sent += sent;
	if (st->n_lat == st->cap_lat) {
		st->cap_lat = st->cap_lat ? st->cap_lat * 2 : 65536;
		st->lat_ms = realloc(st->lat_ms, st->cap_lat * sizeof *st->lat_ms);
		if (!st->lat_ms)
			lg_die("realloc");
	}
	st->lat_ms[st->n_lat++] = (double)(done_ns - scheduled_ns) / 1e6;
}

static unsigned lg_count_sent(const char *body, size_t len)
{
	static const char needle[] = "\"status\":\"sent\"";
	unsigned n = 0;
	const char *p = body, *end = body + len;

	while ((p = memmem(p, (size_t)(end - p), needle, sizeof needle - 1))) {
		n++;
		p += sizeof needle - 1;
	}
	return n;
}

/* ---- sending ---- */

static void lg_release(lg *g, lg_conn *c)
{
	c->busy = false;
	c->next_free = g->free_list;
	g->free_list = c;
	g->busy--;
}

static void lg_send(lg *g, lg_conn *c, int64_t scheduled_ns);

/* A dead connection: its request is an error; a fresh one takes its place. */
static void lg_conn_failed(lg *g, lg_conn *c)
{
	bool was_busy = c->busy;

	g->st.conn_errors++;
	lg_epoll(g, EPOLL_CTL_DEL, c->fd, 0, 0);
	close(c->fd);
	c->fd = -1;
	if (was_busy) {
		lg_record(g, c->scheduled_ns, lg_now_ns(), false, 0);
		c->busy = false;
		g->busy--;
	}
	if (lg_connect(g, c) < 0) {
		/* an idle one stays listed: its next send fails and counts */
		fprintf(stderr, "loadgen: reconnect failed: %s\n", strerror(errno));
		return;
	}
	if (was_busy) { /* an idle one is on the free list already */
		c->next_free = g->free_list;
		g->free_list = c;
	}
}

static void lg_write(lg *g, lg_conn *c)
{
	while (c->out_off < g->req_len) {
		ssize_t n = send(c->fd, g->req + c->out_off, g->req_len - c->out_off, MSG_NOSIGNAL);
		if (n > 0) {
			c->out_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			lg_epoll(g, EPOLL_CTL_MOD, c->fd, EPOLLIN | EPOLLOUT, (uint64_t)c->idx);
			return;
		}
		lg_conn_failed(g, c);
		return;
	}
}

static void lg_send(lg *g, lg_conn *c, int64_t scheduled_ns)
{
	c->busy = true;
	c->scheduled_ns = scheduled_ns;
	c->out_off = 0;
	c->in_len = 0;
	g->busy++;
	lg_write(g, c);
}

static void lg_backlog_push(lg_backlog *b, int64_t t)
{
	if (b->len == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 1024;
		int64_t *n = malloc(cap * sizeof *n);
		if (!n)
			lg_die("malloc");
		for (size_t i = 0; i < b->len; i++)
			n[i] = b->t[(b->head + i) % b->cap];
		free(b->t);
		b->t = n;
		b->head = 0;
		b->cap = cap;
	}
	b->t[(b->head + b->len) % b->cap] = t;
	b->len++;
}

static int64_t lg_backlog_pop(lg_backlog *b)
{
	int64_t t = b->t[b->head];

	b->head = (b->head + 1) % b->cap;
	b->len--;
	return t;
}

/* Give a free connection the oldest waiting request. */
static void lg_dispatch(lg *g)
{
	while (g->backlog.len > 0 && g->free_list) {
		lg_conn *c = g->free_list;
		g->free_list = c->next_free;
		lg_send(g, c, lg_backlog_pop(&g->backlog));
	}
}

static int64_t lg_scheduled_at(const lg *g, uint64_t k)
{
	return g->t0_ns + (int64_t)((double)k * 1e9 / g->o.rate);
}

/* Queue every request whose time has come, then arm the timer for the next. */
static void lg_schedule_due(lg *g)
{
	int64_t now = lg_now_ns();
	struct itimerspec its = {0};
	int64_t next;

	for (;;) {
		int64_t t = lg_scheduled_at(g, g->next_k);
		if (t > now || t >= g->stop_sched_ns)
			break;
		if (t >= g->measure_from_ns)
			g->st.scheduled++;
		lg_backlog_push(&g->backlog, t);
		g->next_k++;
	}
	lg_dispatch(g);
	next = lg_scheduled_at(g, g->next_k);
	if (next >= g->stop_sched_ns)
		return;
	its.it_value.tv_sec = next / 1000000000;
	its.it_value.tv_nsec = next % 1000000000;
	timerfd_settime(g->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* ---- receiving ---- */

/* Length of a complete response at the front of c->in, 0 if incomplete, -1
 * if it cannot be parsed. */
static long lg_response_len(lg_conn *c, int *status, size_t *hdr_len)
{
	char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
	const char *p;
	long cl = -1;

	if (!end)
		return c->in_len > 65536 ? -1 : 0;
	*hdr_len = (size_t)(end - c->in) + 4;
	if (c->in_len < 12 || strncmp(c->in, "HTTP/1.", 7) != 0)
		return -1;
	*status = atoi(c->in + 9);
	for (p = c->in; p && p < end; p = memchr(p, '\n', (size_t)(end - p))) {
		if (*p == '\n')
			p++;
		if (strncasecmp(p, "content-length:", 15) == 0)
			cl = strtol(p + 15, NULL, 10);
	}
	if (cl < 0)
		return -1; /* chunked or close-delimited: not used by the servers we drive */
	if (c->in_len < *hdr_len + (size_t)cl)
		return 0;
	return (long)(*hdr_len + (size_t)cl);
}

/* Record the response once it is complete; the connection is free again. */
static void lg_take_response(lg *g, lg_conn *c)
{
	int status = 0;
	size_t hdr_len = 0;
	long len = lg_response_len(c, &status, &hdr_len);

	if (len == 0)
		return;
	if (len < 0) {
		lg_conn_failed(g, c);
		return;
	}
	lg_record(g, c->scheduled_ns, lg_now_ns(), status == 200,
		  status == 200 ? lg_count_sent(c->in + hdr_len, (size_t)len - hdr_len) : 0);
	c->in_len = 0;
	lg_release(g, c);
}

static void lg_read(lg *g, lg_conn *c)
{
	for (;;) {
		ssize_t n;
		if (c->in_len == c->in_cap) {
			if (c->in_cap >= LG_BUF_MAX) {
				lg_conn_failed(g, c);
				return;
			}
			c->in_cap *= 2;
			c->in = realloc(c->in, c->in_cap);
			if (!c->in)
				lg_die("realloc");
		}
		n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
		if (n > 0) {
			c->in_len += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		lg_conn_failed(g, c);
		return;
	}
	if (!c->busy) {
		c->in_len = 0; /* nothing asked: ignore */
		return;
	}
	lg_take_response(g, c);
}

static void lg_on_event(lg *g, const struct epoll_event *ev)
{
	lg_conn *c;

	if (ev->data.u64 == LG_TIMER_TAG) {
		uint64_t expirations;
		if (read(g->tfd, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
			lg_die("timerfd read");
		lg_schedule_due(g);
		return;
	}
	c = &g->conns[ev->data.u64];
	if (c->fd < 0)
		return;
	if (ev->events & EPOLLOUT) {
		lg_epoll(g, EPOLL_CTL_MOD, c->fd, EPOLLIN, (uint64_t)c->idx);
		lg_write(g, c);
	}
	if (c->fd >= 0 && (ev->events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
		lg_read(g, c);
	lg_dispatch(g);
}

static void lg_run_until(lg *g, int64_t until_ns, bool (*done)(const lg *))
{
	struct epoll_event evs[256];

	while (!done(g)) {
		int64_t left = until_ns - lg_now_ns();
		int n;
		if (left <= 0)
			break;
		n = epoll_wait(g->epfd, evs, 256, (int)(left / 1000000) + 1);
		if (n < 0 && errno != EINTR)
			lg_die("epoll_wait");
		for (int i = 0; i < n; i++)
			lg_on_event(g, &evs[i]);
	}
}

static bool lg_all_answered(const lg *g)
{
	return g->busy == 0 && g->backlog.len == 0 && lg_now_ns() >= g->stop_sched_ns;
}

/* ---- report ---- */

static int lg_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double lg_pct(const lg_stats *st, double p)
{
	size_t i;

	if (st->n_lat == 0)
		return 0;
	i = (size_t)(p / 100.0 * (double)st->n_lat);
	if (i >= st->n_lat)
		i = st->n_lat - 1;
	return st->lat_ms[i];
}

static void lg_report(lg *g, double measured_s)
{
	lg_stats *st = &g->st;
	uint64_t unanswered = st->scheduled - st->ok - st->errors;

	qsort(st->lat_ms, st->n_lat, sizeof *st->lat_ms, lg_cmp_double);
	printf("{\"mode\":\"%s\",\"rate\":%.0f,\"measured_s\":%.2f,\"requests\":%llu,\"ok\":%llu,"
	       "\"errors\":%llu,\"unanswered\":%llu,\"conn_errors\":%llu,\"pushes_sent\":%llu,"
	       "\"achieved_rps\":%.1f,\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,"
	       "\"p999_ms\":%.3f,\"max_ms\":%.3f}\n",
	       g->o.in_flight > 0 ? "hold" : "rate", g->o.rate, measured_s,
	       (unsigned long long)st->scheduled, (unsigned long long)st->ok,
	       (unsigned long long)st->errors, (unsigned long long)unanswered,
	       (unsigned long long)st->conn_errors, (unsigned long long)st->pushes_sent,
	       measured_s > 0 ? (double)st->ok / measured_s : 0.0, lg_pct(st, 50), lg_pct(st, 90),
	       lg_pct(st, 99), lg_pct(st, 99.9), st->n_lat ? st->lat_ms[st->n_lat - 1] : 0.0);
}

/* ---- modes ---- */

static void lg_run_rate(lg *g)
{
	lg_open_connections(g, g->o.connections);
	g->t0_ns = lg_now_ns() + 1000000;
	g->measure_from_ns = g->t0_ns + (int64_t)(g->o.warmup_s * 1e9);
	g->stop_sched_ns = g->measure_from_ns + (int64_t)(g->o.duration_s * 1e9);
	lg_schedule_due(g);
	lg_run_until(g, g->stop_sched_ns + (int64_t)LG_DRAIN_S * 1000000000, lg_all_answered);
	lg_report(g, g->o.duration_s);
}

/* Every connection gets its request at the same scheduled instant; the
 * caller samples the server while they are in flight. */
static void lg_run_hold(lg *g)
{
	int64_t start;

	lg_open_connections(g, g->o.in_flight);
	start = lg_now_ns();
	g->t0_ns = g->measure_from_ns = start;
	g->stop_sched_ns = start;
	for (int i = 0; i < g->n_conns; i++) {
		lg_conn *c = g->free_list;
		g->free_list = c->next_free;
		g->st.scheduled++;
		lg_send(g, c, start);
	}
	fprintf(stderr, "loadgen: %d requests in flight\n", g->n_conns);
	lg_run_until(g, start + (int64_t)120 * 1000000000, lg_all_answered);
	lg_report(g, (double)(lg_now_ns() - start) / 1e9);
}

static void lg_usage(void)
{
	fprintf(stderr, "usage: loadgen -u http://HOST:PORT/PATH -b BODY_FILE [-H 'Name: value']...\n"
			"               [-r RATE -d SECONDS [-w WARMUP_S] [-c CONNECTIONS]] | [-i IN_FLIGHT]\n"
			"               [-a PER_ADDRESS]\n");
	exit(2);
}

static void lg_parse_args(lg *g, int argc, char **argv)
{
	int opt;

	g->o.connections = 128;
	g->o.duration_s = 10;
	g->o.warmup_s = 1;
	while ((opt = getopt(argc, argv, "u:b:H:r:d:w:c:i:a:")) != -1) {
		switch (opt) {
		case 'u': g->o.url = optarg; break;
		case 'b': g->o.body_file = optarg; break;
		case 'H':
			if (g->o.n_headers == LG_MAX_HEADERS)
				lg_usage();
			g->o.headers[g->o.n_headers++] = optarg;
			break;
		case 'r': g->o.rate = atof(optarg); break;
		case 'd': g->o.duration_s = atof(optarg); break;
		case 'w': g->o.warmup_s = atof(optarg); break;
		case 'c': g->o.connections = atoi(optarg); break;
		case 'i': g->o.in_flight = atoi(optarg); break;
		case 'a': g->o.per_address = atoi(optarg); break;
		default: lg_usage();
		}
	}
	if (!g->o.url || !g->o.body_file || (g->o.in_flight <= 0 && g->o.rate <= 0) ||
	    g->o.connections < 1 || g->o.per_address < 0)
		lg_usage();
}

int main(int argc, char **argv)
{
	static lg g;
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = LG_TIMER_TAG};

	lg_parse_args(&g, argc, argv);
	if (lg_parse_url(&g) < 0) {
		fprintf(stderr, "loadgen: -u: expected http://IPv4:PORT/PATH\n");
		return 2;
	}
	if (lg_build_request(&g) < 0)
		lg_die(g.o.body_file);
	g.epfd = epoll_create1(EPOLL_CLOEXEC);
	g.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (g.epfd < 0 || g.tfd < 0)
		lg_die("epoll/timerfd");
	if (epoll_ctl(g.epfd, EPOLL_CTL_ADD, g.tfd, &ev) < 0)
		lg_die("epoll_ctl");
	if (g.o.in_flight > 0)
		lg_run_hold(&g);
	else
		lg_run_rate(&g);
	return 0;
}
