/* The simulated FCM HTTP v1 send endpoint: POST
 * /v1/projects/<project>/messages:send with Google's checks (OAuth bearer
 * token, project, message), status codes and error documents, and scripted
 * answers per registration token. Event loop thread only. */
#ifndef SIM_FCM_H
#define SIM_FCM_H

#include "sim_route.h"

#define SIM_FCM_PATH_PREFIX "/v1/projects/"

struct sim;

/* A request whose path starts with SIM_FCM_PATH_PREFIX. */
void sim_fcm_handle(struct sim *sim, const struct sim_request *req, struct sim_reply *reply);

#endif
