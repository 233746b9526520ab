/*
 * orchestrator.h - the orchestration loops: apply step results and move tasks
 * (tasker.process_step_results), and recover what crashes leave behind (tasker.sweep).
 *
 * Any number of orchestrators may run against one database: all coordination is in SQL
 * (row locks, SKIP LOCKED). See README.md beside this file.
 */
#ifndef TK_ORCHESTRATION_ORCHESTRATOR_H
#define TK_ORCHESTRATION_ORCHESTRATOR_H

#include <stdbool.h>
#include <stdint.h>

#include "common/backoff.h"
#include "common/config.h"
#include "tasker/error.h"

typedef struct tk_orchestrator_opts_s {
    const char *database_url;
    tk_config_mode_t mode;
    int poll_interval_ms;   /* results polling: the fallback in hybrid, the source in polling */
    int result_batch_size;  /* results applied per round trip */
    int sweep_interval_ms;  /* period of tasker.sweep; 0 disables the sweeper */
    int stuck_task_seconds; /* sweep: a task unchanged this long is evaluated again; the
                             * stuck and lost-message checks run every tenth of it */
    tk_backoff_t backoff;
} tk_orchestrator_opts_t;

/* Step latency histogram buckets, in milliseconds (upper bounds; the last is +Inf). */
#define TK_LATENCY_BUCKETS 12
extern const double tk_latency_bounds_ms[TK_LATENCY_BUCKETS];

typedef struct tk_orchestrator_stats_s {
    uint64_t result_rounds;  /* process_step_results calls */
    uint64_t results;        /* step results applied */
    uint64_t tasks_complete; /* tasks this orchestrator finished, by outcome */
    uint64_t tasks_error;
    uint64_t sweeps, recovered; /* sweep runs, and items they acted on */
    uint64_t full_sweeps;       /* sweeps that also looked for stuck tasks and lost messages */
    uint64_t latency_count;
    double latency_sum_ms;
    uint64_t latency_buckets[TK_LATENCY_BUCKETS]; /* cumulative counts as in Prometheus */
    bool database_ok;
} tk_orchestrator_stats_t;

typedef struct tk_orchestrator_s tk_orchestrator_t;

/* Check the options, connect, start the loops. TK_ECONN if the database cannot be reached. */
int tk_orchestrator_start(const tk_orchestrator_opts_t *opts, tk_orchestrator_t **out,
                          tk_error_t *err);

/* Stop the loops (a round in progress finishes) and free. Accepts NULL. */
void tk_orchestrator_stop(tk_orchestrator_t *o);

/* Counters since start. Thread-safe. */
void tk_orchestrator_stats(tk_orchestrator_t *o, tk_orchestrator_stats_t *out);

#endif
