/* Internals shared by the SIP edge's files (docs/sip-edge.md): the edge,
 * its in-memory bindings and held calls, the mailbox into the SIP thread
 * and the registry jobs. Everything here is touched only on the SIP thread
 * unless a comment says otherwise. */
#ifndef PUSHGW_SIPEDGE_INT_H
#define PUSHGW_SIPEDGE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define SU_ROOT_MAGIC_T struct sipedge
#define SU_WAKEUP_ARG_T void
#define SU_TIMER_ARG_T void
#define NTA_AGENT_MAGIC_T struct sipedge
#define NTA_OUTGOING_MAGIC_T void
#define NTA_INCOMING_MAGIC_T void

#include <sofia-sip/msg_addr.h>
#include <sofia-sip/nta.h>
#include <sofia-sip/nta_stateless.h>
#include <sofia-sip/nta_tport.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/sip_util.h>
#include <sofia-sip/su_wait.h>
#include <sofia-sip/tport.h>

#include "pushgw/config.h"
#include "pushgw/http_api.h"
#include "pushgw/registry.h"
#include "pushgw/registry_queue.h"
#include "pushgw/sipedge.h"
#include "pushgw/sipmsg.h"
#include "pushgw/target.h"

/* Limits (docs/sip-edge.md "Limits"). */
#define EDGE_MAX_BINDINGS 20000
#define EDGE_BINDING_BUCKETS 32768 /* the id hash: a power of 2 above the limit */
#define EDGE_MAX_CALLS 2000
#define EDGE_MAX_PENDING_REGISTERS 2000
#define EDGE_MAX_PROXIED 4000
#define EDGE_MAX_MESSAGE_BYTES SIPMSG_MAX_BYTES
#define EDGE_REGISTRY_DEADLINE_MS 5000
/* Threads of the edge's registry queue. Each REGISTER holds one through a
 * durable write; the backends commit the writes waiting together (group
 * commit), so the REGISTERs in flight share an fsync only as far as there
 * are threads to wait in it: with 2, relaying was bound to ~2 per fsync. */
#define EDGE_REGISTRY_THREADS 16
#define EDGE_REGISTRY_WAITING_MAX 2048
#define EDGE_WOKE_LATE_WINDOW_MS 120000
#define EDGE_SWEEP_INTERVAL_MS 60000
#define EDGE_ID_PREFIX SIPMSG_ID_PREFIX

/* ---- mailbox: other threads hand work to the SIP thread ----
 * A mutex-guarded FIFO plus an eventfd the SIP thread's su_root polls.
 * Posting never blocks. Refcounted: push completions may arrive after the
 * edge is gone; once closed, posts are dropped (drop(arg) is called). */
typedef struct edge_mailbox edge_mailbox;
typedef void (*edge_job_run_fn)(struct sipedge *edge, void *arg);
typedef void (*edge_job_drop_fn)(void *arg);

edge_mailbox *edge_mailbox_new(void);
void edge_mailbox_ref(edge_mailbox *mb);
void edge_mailbox_unref(edge_mailbox *mb);
/* Any thread. PGW_ESTATE (and drop(arg) called) once closed. */
pgw_err edge_mailbox_post(edge_mailbox *mb, edge_job_run_fn run, edge_job_drop_fn drop, void *arg);

/* ---- one phone registered through the edge ---- */
typedef struct edge_binding {
	struct edge_binding *next, *prev; /* every binding: sweep, teardown */
	struct edge_binding *hnext;        /* its id's hash chain */
	registry_binding rec; /* strings malloc'd, owned */
	bool has_push;        /* its Contact resolved to a push target */
	pgw_provider provider;
	/* its current flow: where a request to it goes */
	tport_t *tp;      /* referenced; the connection for TCP/TLS; NULL: none */
	char route[200];  /* "sip:IP:PORT;transport=…", "" when none */
	bool flow_open;   /* false: closed, lost, or never seen since start-up */
	int64_t registered_ms; /* when its last REGISTER arrived (pgw_now_ms) */
	int64_t missed_at_ms; /* a call it was not woken for ended then; 0 none */
} edge_binding;

/* ---- an INVITE to a binding, from the PBX ---- */
typedef enum edge_call_state {
	CALL_WAITING = 0, /* held: no usable flow yet */
	CALL_SENT,        /* forwarded to the phone */
	CALL_DONE,
} edge_call_state;

typedef struct edge_call {
	struct edge_call *next;
	uint64_t serial;
	struct sipedge *edge;
	nta_incoming_t *irq; /* the PBX's INVITE */
	msg_t *invite;       /* reference to it, forwarded on each flow */
	nta_outgoing_t *orq; /* to the phone, or NULL */
	bool phone_answered_1xx; /* the phone sent a provisional response */
	char binding_id[64];
	char *call_id, *from, *from_name, *to;
	char *contact, *app; /* for the pushes */
	bool pushed;
	pgw_provider provider;
	bool woke;     /* the phone registered again during the call */
	int64_t started_ms, woke_ms;
	su_timer_t *ring_timer;
	edge_call_state state;
} edge_call;

typedef struct sipedge {
	pgw_config *cfg; /* the edge's own snapshot */
	http_api *api;
	registry *reg;
	registry_queue *rq;
	edge_mailbox *mb;

	pthread_t thread;
	bool thread_started;
	bool stopped;
	pthread_mutex_t start_lock;
	pthread_cond_t start_cv;
	int start_state; /* 0 starting, 1 running, -1 failed */
	char start_err[512];

	/* SIP thread only */
	su_home_t home[1];
	su_root_t *root;
	nta_agent_t *agent;
	int mb_index; /* su_root registration of the mailbox */
	url_t *backend;
	char backend_transport[8];
	struct sockaddr_storage backend_addrs[8];
	size_t n_backend_addrs;
	char listen_port[3][8];   /* bound port per transport (udp,tcp,tls), "" none */
	char listen_host[3][64];
	edge_binding *bindings;
	edge_binding **by_id; /* EDGE_BINDING_BUCKETS chains, by binding id */
	size_t n_bindings;
	edge_call *calls;
	size_t n_calls;
	struct edge_reg *registers; /* REGISTERs in flight */
	size_t n_pending_registers;
	struct edge_proxy *proxies; /* other proxied transactions in flight */
	size_t n_proxies;
	uint64_t next_serial;
	su_timer_t *sweep_timer; /* drops expired bindings */
} sipedge;

/* ---- registry jobs: blocking calls off the SIP thread ---- */
typedef struct edge_rjob edge_rjob;
typedef void (*edge_rjob_work_fn)(edge_rjob *j);              /* queue thread */
typedef void (*edge_rjob_done_fn)(sipedge *edge, edge_rjob *j); /* SIP thread */
struct edge_rjob {
	atomic_int refs;
	registry *reg;
	edge_rjob_work_fn work;
	edge_rjob_done_fn done;
	edge_mailbox *mb;
	bool timed_out;
	pgw_err rc;
	void *ctx; /* the SIP-thread object waiting for it */
	/* inputs and outputs, by job */
	registry_binding in;     /* strings owned */
	pgw_target target;       /* valid when has_target */
	bool has_target;
	registry_binding *found; /* find/get */
	bool created;
};
edge_rjob *edge_rjob_new(sipedge *edge, edge_rjob_work_fn work, edge_rjob_done_fn done, void *ctx);
/* Queue it; on failure (or with j->rc already set: its inputs could not
 * be built) j->done runs at once with rc set. Never blocks. */
void edge_rjob_submit(sipedge *edge, edge_rjob *j);
pgw_err edge_binding_rec_copy(registry_binding *dst, const registry_binding *src);

/* ---- sipedge.c helpers ---- */
edge_binding *edge_binding_find(sipedge *edge, const char *id);
/* Takes b (b->rec.id set) into the edge's bindings. */
void edge_binding_add(sipedge *edge, edge_binding *b);
/* Removes b from the edge's bindings (if it was added) and frees it. */
void edge_binding_drop(sipedge *edge, edge_binding *b);
void edge_binding_set_flow(edge_binding *b, tport_t *tp, const char *route);
/* True when the binding's flow may carry a request now. */
bool edge_binding_flow_usable(edge_binding *b);
void edge_update_gauges(sipedge *edge);
/* The message came from the PBX (its resolved addresses or backend_sources). */
bool edge_from_backend(sipedge *edge, msg_t *msg);
/* host[:port] (port NULL or "": 5060) is the backend: its host as
 * configured, or one of its resolved addresses (literal IPs only, no
 * lookup). */
bool edge_names_backend(sipedge *edge, const char *host, const char *port);
/* "sip:IP:PORT;transport=udp" for where msg came from; false if unknown. */
bool edge_source_route(msg_t *msg, tport_t *tp, char *out, size_t n);
/* Our Contact/Record-Route host:port for a transport ("udp"…). */
const char *edge_port_for(sipedge *edge, const char *transport);
/* A random, unguessable binding id. */
void edge_new_binding_id(char out[64]);
/* Remove the top Via (ours) from a response we relay. */
void edge_pop_via(msg_t *msg, sip_t *sip);
char *edge_strdup(const char *s);

/* ---- sipedge_register.c ---- */
void edge_register_request(sipedge *edge, msg_t *msg, sip_t *sip);
void edge_register_teardown(sipedge *edge);

/* ---- sipedge_invite.c ---- */
void edge_invite_to_binding(sipedge *edge, msg_t *msg, sip_t *sip, edge_binding *b);
/* A binding got a new flow: send it the calls held for it. */
void edge_binding_reachable(sipedge *edge, edge_binding *b);
void edge_calls_fail_all(sipedge *edge, int status, const char *phrase);
void edge_calls_teardown(sipedge *edge);

/* ---- sipedge_proxy.c ---- */
/* Every request that is not a REGISTER or an initial INVITE to a binding. */
void edge_proxy_request(sipedge *edge, msg_t *msg, sip_t *sip, bool from_backend);
void edge_proxy_response(sipedge *edge, msg_t *msg, sip_t *sip, bool from_backend);
/* Double Record-Route for a request forwarded from `from_tp` side to
 * `to_tp` side ("udp"…), naming binding id (or NULL). */
void edge_add_record_route(sipedge *edge, msg_t *msg, sip_t *sip, const char *id,
			   const char *from_transport, const char *to_transport);
/* The top Route entries that name this edge are removed; *id gets the
 * binding id of the first one ("" when it named none). Returns true when
 * there was at least one. */
bool edge_pop_own_routes(sipedge *edge, msg_t *msg, sip_t *sip, char *id, size_t n);
void edge_proxy_teardown(sipedge *edge);

#endif
