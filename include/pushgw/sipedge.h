/* The SIP edge (docs/sip-edge.md): pushgw in front of an unchanged PBX.
 * Phones register through it; it wakes them by push and holds a call's
 * INVITE until they are back. Built on sofia-sip's NTA transaction engine.
 * Threading: sipedge_start/stop/free from the main thread; all SIP state
 * lives on the edge's own SIP thread; registry calls run on the edge's
 * registry queue and push results arrive from the HTTP API's threads, both
 * handed back to the SIP thread through one mailbox. */
#ifndef PUSHGW_SIPEDGE_H
#define PUSHGW_SIPEDGE_H

#include <stddef.h>

#include "pushgw/config.h"
#include "pushgw/err.h"
#include "pushgw/http_api.h"
#include "pushgw/registry.h"

typedef struct sipedge sipedge;

/* What the edge works with; api and reg must outlive the edge (stop it
 * before http_api_stop()). cfg is only read during sipedge_start(): the
 * edge loads its own copy of cfg->path and keeps it (sip changes apply at
 * restart). */
typedef struct sipedge_deps {
	const pgw_config *cfg;
	http_api *api;
	registry *reg;
} sipedge_deps;

/* Bind the cfg->sip.listen transports, load the edge's bindings from the
 * registry and start the SIP thread. Logs one "sip listening" line with
 * the bound addresses. Caller stops with sipedge_stop() and frees with
 * sipedge_free(). */
pgw_err sipedge_start(const sipedge_deps *deps, sipedge **out, char *errbuf, size_t errlen);

/* Answer every held INVITE (503), end the SIP thread and the edge's
 * registry queue. Idempotent; accepts NULL. */
void sipedge_stop(sipedge *edge);

/* sipedge_stop() if not yet, then free. Accepts NULL. */
void sipedge_free(sipedge *edge);

#endif
