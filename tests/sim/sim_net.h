/* Listening sockets for the simulator's two ports. Called at start-up on the
 * main thread. */
#ifndef SIM_NET_H
#define SIM_NET_H

#include <stddef.h>

/* Parses "HOST:PORT" (IPv6 as "[::1]:PORT"; port 0 picks a free one) and
 * returns a non-blocking listening fd (caller closes), or -1 with a message
 * in err. */
int sim_net_listen(const char *hostport, char *err, size_t errlen);
/* The port a bound socket ended up on, or -1. */
int sim_net_local_port(int fd);
/* Makes an accepted socket send small answers at once. */
void sim_net_nodelay(int fd);

#endif
