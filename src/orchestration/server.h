/*
 * server.h - the orchestration server (`tasker server`, and half of `tasker dev`): the REST
 * API, the results loop and the sweeper, over one connection pool.
 */
#ifndef TK_ORCHESTRATION_SERVER_H
#define TK_ORCHESTRATION_SERVER_H

#include <stdint.h>

#include "common/config.h"

typedef struct tk_server_s tk_server_t;

/* Start everything from `cfg` (database.*, server.*, orchestration.*, backoff.*). The
 * database must be migrated. TK_ECONN / TK_ESCHEMA / TK_EIO (port in use) with a message. */
int tk_server_start(const tk_config_t *cfg, tk_server_t **out, tk_error_t *err);

/* The port the REST API listens on. */
uint16_t tk_server_port(const tk_server_t *s);

/* Stop the API (in-flight requests finish; long polls end at once), the loops, free.
 * Accepts NULL. */
void tk_server_stop(tk_server_t *s);

#endif
