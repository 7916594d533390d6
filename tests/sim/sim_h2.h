/* The simulator's HTTP/2 server: TLS listener, one nghttp2 server session per
 * connection, request collection, delayed answers, GOAWAY/drop/SETTINGS on
 * demand. Requests go to sim_route_dispatch(). Event loop thread only. */
#ifndef SIM_H2_H
#define SIM_H2_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

struct sim;
struct sim_h2;

/* Listens on addr ("HOST:PORT"). ctx stays owned by the caller and must
 * outlive the server. Caller frees with sim_h2_free(); NULL on error with a
 * message in err. */
struct sim_h2 *sim_h2_new(struct sim *sim, SSL_CTX *ctx, const char *addr, char *err,
			  size_t errlen);
/* Closes every connection at once. Accepts NULL. */
void sim_h2_free(struct sim_h2 *h2);

int sim_h2_port(const struct sim_h2 *h2);

/* GOAWAY(NO_ERROR, last-stream-id = highest stream answered) on every
 * connection; streams above it are refused, the connection closes when the
 * rest are done. Returns the number of connections. */
size_t sim_h2_goaway_all(struct sim_h2 *h2);
/* Closes every connection without a word. Returns how many. */
size_t sim_h2_drop_all(struct sim_h2 *h2);
/* Sends SETTINGS_MAX_CONCURRENT_STREAMS=n everywhere (sim->max_streams must
 * already be n for new connections). Returns the number of connections. */
size_t sim_h2_set_max_streams(struct sim_h2 *h2, uint32_t n);

#endif
