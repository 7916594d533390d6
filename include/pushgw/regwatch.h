/* Cached registry figures for the unauthenticated probes and scrapes: a
 * thread of its own asks the registry, a few times a second, whether it
 * serves, and now and then how many devices it holds, so /readyz and
 * /metrics read cached values and never queue work on the registry threads
 * that wakes need, however often they are called.
 * Threading: regwatch_new() and regwatch_free() on one controlling thread;
 * regwatch_ready() from any thread. */
#ifndef PUSHGW_REGWATCH_H
#define PUSHGW_REGWATCH_H

#include <stdbool.h>

#include "pushgw/err.h"
#include "pushgw/registry.h"

typedef struct regwatch regwatch;

/* Start watching reg (which must outlive the watch): one health check runs
 * before this returns, so readiness is known from the start. The registry
 * size goes to the gauge pushgw_registry_devices. Caller frees with
 * regwatch_free(). */
pgw_err regwatch_new(registry *reg, regwatch **out);

/* Stops and joins the thread; a registry call it is blocked in is waited
 * for (the registry's own timeouts bound it). Accepts NULL. */
void regwatch_free(regwatch *w);

/* The last health check said the registry serves, and no check has been
 * stuck for longer than a moment (a database that stopped answering shows
 * as not ready while the check still waits). */
bool regwatch_ready(regwatch *w);

#endif
