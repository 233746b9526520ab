/*
 * seed.c - the figures of the seed (lifecycle-performance-baseline.md, Tasker, 2025-10-09) and
 * the targets of issue 4, printed beside tasker's own.
 *
 * The seed has E2E means for linear and diamond only (Rust and Ruby handlers); for the
 * complex DAG and the tree the closest figures are Tasker's TAS-71 cluster run
 * (reference/tasker-user-surface.md 7.4), marked as such. Its SQL "0-4 deps / parents" rows
 * were five sampled tasks; tasker's cases are tasks whose steps have 0-4 parents.
 */
#include <string.h>

#include "bench/bench.h"

typedef struct {
    const char *workflow, *handler;
    double mean_ms;
    const char *source;
} seed_e2e_t;

static const seed_e2e_t seed_e2e[] = {
    {"linear", "c", 130.12, "seed (Rust)"},
    {"diamond", "c", 132.25, "seed (Rust)"},
    {"linear", "ruby", 127.04, "seed"},
    {"diamond", "ruby", 127.46, "seed"},
    {"complex_dag", "c", 181.02, "TAS-71 (Rust)"},
    {"tree", "c", 190.82, "TAS-71 (Rust)"},
    {"linear", "python", 186.30, "TAS-71"},
    {"diamond", "python", 182.27, "TAS-71"},
};

double tk_bench_seed_e2e(const char *workflow, const char *handler, const char **source)
{
    for (size_t i = 0; i < sizeof(seed_e2e) / sizeof(seed_e2e[0]); i++) {
        if (strcmp(seed_e2e[i].workflow, workflow) == 0 &&
            strcmp(seed_e2e[i].handler, handler) == 0) {
            if (source != NULL)
                *source = seed_e2e[i].source;
            return seed_e2e[i].mean_ms;
        }
    }
    if (source != NULL)
        *source = "";
    return -1;
}

typedef struct {
    const char *function;
    double mean_us[8];
    int n;
} seed_sql_t;

static const seed_sql_t seed_sql[] = {
    {"get_next_ready_tasks", {747.72, 768.86, 786.68, 779.00}, 4},
    {"get_step_readiness_status", {567.82, 456.88, 475.07, 532.02, 467.97}, 5},
    {"transition_task_state_atomic", {400.58, 409.63, 390.72, 392.79, 401.50}, 5},
    {"get_task_execution_context", {586.04, 495.18, 485.30, 490, 500}, 5},
    {"get_step_transitive_dependencies", {350, 355, 360, 365, 370, 375, 380, 385}, 8},
};

double tk_bench_seed_sql(const char *function, int index)
{
    for (size_t i = 0; i < sizeof(seed_sql) / sizeof(seed_sql[0]); i++)
        if (strcmp(seed_sql[i].function, function) == 0)
            return index >= 0 && index < seed_sql[i].n ? seed_sql[i].mean_us[index] : -1;
    return -1;
}

double tk_bench_target_e2e_ms(const char *workflow)
{
    if (strcmp(workflow, "linear") == 0 || strcmp(workflow, "diamond") == 0)
        return 10;
    if (strcmp(workflow, "complex_dag") == 0 || strcmp(workflow, "tree") == 0)
        return 15;
    return -1;
}
