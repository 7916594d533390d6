/* The control port: plain HTTP/1.1, one request per connection, JSON bodies.
 * Tests use it to script answers, read counters and the request log, and to
 * make the simulator send GOAWAY, drop connections or change its limits.
 * Event loop thread only. */
#ifndef SIM_CONTROL_H
#define SIM_CONTROL_H

#include <stddef.h>

struct sim;
struct sim_control;

/* Listens on addr ("HOST:PORT"). Caller frees with sim_control_free(); NULL on
 * error with a message in err. */
struct sim_control *sim_control_new(struct sim *sim, const char *addr, char *err, size_t errlen);
/* Accepts NULL. */
void sim_control_free(struct sim_control *ctl);

int sim_control_port(const struct sim_control *ctl);

#endif
