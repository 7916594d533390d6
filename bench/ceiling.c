/* Inbound ceiling for the benchmark: a libmicrohttpd server started with the
 * daemon flags, daemons (one thread each, sharing the port with
 * SO_REUSEPORT), connection limits and callbacks pushgw's http_api uses, that reads each POST body and answers every request with
 * one fixed, wake-sized JSON document. Whatever it serves per second is the
 * most pushgw's inbound side could serve on this machine. Threading: the
 * handlers run on the daemons' threads; main() only waits.
 *
 *   ceiling -r RESPONSE_FILE [-p PORT]   (prints {"listen":PORT} once bound) */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Mirrors of gateway/http_api.c: keep them equal so the ceiling is fair. */
#define CEIL_WORKER_THREADS 2
#define CEIL_CONNECTION_LIMIT 4096
#define CEIL_IDLE_TIMEOUT_S 30
#define CEIL_HEADER_MEMORY (8 * 1024)
#define CEIL_PER_IP_CONNECTION_LIMIT 256

typedef struct ceil_request {
	size_t body_len;
} ceil_request;

typedef struct ceil_server {
	struct MHD_Response *answer; /* shared by every request (refcounted) */
} ceil_server;

static enum MHD_Result ceil_on_request(void *cls, struct MHD_Connection *c, const char *url,
				       const char *method, const char *version,
				       const char *upload, size_t *upload_size, void **ctx)
{
	ceil_server *srv = cls;
	ceil_request *r = *ctx;

	if (!r) {
		r = calloc(1, sizeof *r);
		if (!r)
			return MHD_NO;
		*ctx = r;
		return MHD_YES;
	}
	if (*upload_size > 0) {
		r->body_len += *upload_size; /* read, like pushgw, then dropped */
		*upload_size = 0;
		return MHD_YES;
	}
	return MHD_queue_response(c, MHD_HTTP_OK, srv->answer);
}

static void ceil_on_completed(void *cls, struct MHD_Connection *c, void **ctx,
			      enum MHD_RequestTerminationCode toe)
{
	free(*ctx);
	*ctx = NULL;
}

static size_t ceil_keep_escapes(void *cls, struct MHD_Connection *c, char *s)
{
	return strlen(s);
}

static char *ceil_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char buf[65536];
	size_t n;

	if (!f)
		return NULL;
	n = fread(buf, 1, sizeof buf, f);
	fclose(f);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	*len = n;
	return n ? strndup(buf, n) : NULL;
}

int main(int argc, char **argv)
{
	const char *file = NULL;
	struct sockaddr_in sin = {.sin_family = AF_INET};
	const union MHD_DaemonInfo *info;
	struct MHD_Daemon *d[CEIL_WORKER_THREADS];
	ceil_server srv = {0};
	sigset_t set;
	size_t len = 0;
	char *body;
	int opt, sig, i, port = 0;

	while ((opt = getopt(argc, argv, "r:p:")) != -1) {
		if (opt == 'r')
			file = optarg;
		else if (opt == 'p')
			port = atoi(optarg);
		else
			file = NULL;
	}
	body = file ? ceil_read_file(file, &len) : NULL;
	if (!body) {
		fprintf(stderr, "usage: ceiling -r RESPONSE_FILE [-p PORT]\n");
		return 2;
	}
	srv.answer = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	MHD_add_response_header(srv.answer, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)port);
	for (i = 0; i < CEIL_WORKER_THREADS; i++) {
		d[i] = MHD_start_daemon(
			MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
				MHD_USE_ERROR_LOG,
			0, NULL, NULL, ceil_on_request, &srv,
			MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin,
			MHD_OPTION_CONNECTION_LIMIT, (unsigned)(CEIL_CONNECTION_LIMIT / CEIL_WORKER_THREADS),
			MHD_OPTION_PER_IP_CONNECTION_LIMIT,
			(unsigned)(CEIL_PER_IP_CONNECTION_LIMIT / CEIL_WORKER_THREADS),
			MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CEIL_IDLE_TIMEOUT_S,
			MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CEIL_HEADER_MEMORY,
			MHD_OPTION_NOTIFY_COMPLETED, ceil_on_completed, NULL,
			MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
			MHD_OPTION_UNESCAPE_CALLBACK, ceil_keep_escapes, NULL,
			MHD_OPTION_END);
		if (!d[i]) {
			fprintf(stderr, "ceiling: cannot listen\n");
			return 1;
		}
		/* the others share the first one's port */
		info = MHD_get_daemon_info(d[i], MHD_DAEMON_INFO_BIND_PORT);
		sin.sin_port = htons(info ? info->port : (uint16_t)port);
	}
	printf("{\"listen\":%u}\n", (unsigned)ntohs(sin.sin_port));
	fflush(stdout);
	sigwait(&set, &sig);
	for (i = 0; i < CEIL_WORKER_THREADS; i++)
		MHD_stop_daemon(d[i]);
	MHD_destroy_response(srv.answer);
	return 0;
}
