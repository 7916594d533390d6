/* The simulated APNs provider API: POST /3/device/<token> with Apple's checks,
 * status codes and reason strings, and scripted answers per token. Event
 * loop thread only. */
#ifndef SIM_APNS_H
#define SIM_APNS_H

#include "sim_route.h"

#define SIM_APNS_PATH_PREFIX "/3/device/"

struct sim;

/* A request whose path starts with SIM_APNS_PATH_PREFIX. */
void sim_apns_handle(struct sim *sim, const struct sim_request *req, struct sim_reply *reply);
/* Any path no service claims: 405 for a wrong method, else 404 BadPath. */
void sim_apns_bad_path(struct sim *sim, const struct sim_request *req, struct sim_reply *reply);

#endif
