/*
 * sql_dataset.c - the generated dataset of `tasker bench sql`: N tasks in a realistic mix of
 * shapes and states, written with a few set-based statements (no per-task round trips), in a
 * database of its own (tasker_bench_sql_<N>) that later runs reuse.
 *
 * Shapes (share of tasks; most parents of one step): linear 4 steps (30 %; 1), diamond 4
 * (25 %; 2), tree 8 (15 %; 4), complex_dag 7 (10 %; 3), parallel 4 independent steps (15 %; 0),
 * chain8 8 steps (5 %; 1, ancestors up to depth 7).
 * Task states: complete 70 %, steps_in_process 7 %, error 5 %, waiting_for_retry 4 % (half of
 * them with the backoff elapsed), pending 3 %, waiting_for_dependencies 3 % (with ready steps),
 * cancelled 3 %, blocked_by_failures 2 %, initializing, enqueuing_steps and evaluating_results
 * 1 % each. Steps are consistent with their task: the first p steps (in topological order)
 * complete, the steps whose parents are all complete are in flight / failed / waiting as the
 * task state says, the rest pending. Every task has a creation and a current-state history
 * row, every step likewise. No queue messages are generated (the five functions do not read
 * them).
 *
 * The first 11 tasks are anchors with fixed shape and state (marked in their context as
 * "bench_anchor"), so that every dataset size has the same cases to measure.
 *
 * Generation runs with session_replication_role = replica when the role may set it (no
 * foreign-key and guard triggers: the data is consistent by construction) and with
 * synchronous_commit off; VACUUM ANALYZE follows.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "bench/sql_dataset.h"
#include "common/clock.h"
#include "common/error_int.h"
#include "common/parse.h"
#include "db/migrate_data.h"

/* Bump when the generator changes: older datasets are then regenerated. */
#define GENERATOR_VERSION 1

static const char shapes_sql[] =
    "CREATE TEMP TABLE bs (shape text, idx integer, name text, parents integer[]);"
    "INSERT INTO bs VALUES"
    " ('linear', 0, 'bench_linear_1', '{}'), ('linear', 1, 'bench_linear_2', '{0}'),"
    " ('linear', 2, 'bench_linear_3', '{1}'), ('linear', 3, 'bench_linear_4', '{2}'),"
    " ('diamond', 0, 'bench_diamond_start', '{}'), ('diamond', 1, 'bench_diamond_b', '{0}'),"
    " ('diamond', 2, 'bench_diamond_c', '{0}'), ('diamond', 3, 'bench_diamond_end', '{1,2}'),"
    " ('complex_dag', 0, 'bench_dag_init', '{}'), ('complex_dag', 1, 'bench_dag_left', '{0}'),"
    " ('complex_dag', 2, 'bench_dag_right', '{0}'),"
    " ('complex_dag', 3, 'bench_dag_validate', '{1,2}'),"
    " ('complex_dag', 4, 'bench_dag_transform', '{1}'),"
    " ('complex_dag', 5, 'bench_dag_analyze', '{2}'),"
    " ('complex_dag', 6, 'bench_dag_finalize', '{3,4,5}'),"
    " ('tree', 0, 'bench_tree_root', '{}'), ('tree', 1, 'bench_tree_left', '{0}'),"
    " ('tree', 2, 'bench_tree_right', '{0}'), ('tree', 3, 'bench_tree_d', '{1}'),"
    " ('tree', 4, 'bench_tree_e', '{1}'), ('tree', 5, 'bench_tree_f', '{2}'),"
    " ('tree', 6, 'bench_tree_g', '{2}'), ('tree', 7, 'bench_tree_final', '{3,4,5,6}'),"
    " ('parallel', 0, 'bench_parallel_1', '{}'), ('parallel', 1, 'bench_parallel_2', '{}'),"
    " ('parallel', 2, 'bench_parallel_3', '{}'), ('parallel', 3, 'bench_parallel_4', '{}');"
    "INSERT INTO bs SELECT 'chain8', g, 'bench_chain_' || (g + 1),"
    " CASE WHEN g = 0 THEN '{}'::integer[] ELSE ARRAY[g - 1] END FROM generate_series(0, 7) g;"
    /* share of each shape: sb in [lo, hi) of 0..99 */
    "CREATE TEMP TABLE bshape (shape text PRIMARY KEY, ns text, tname text, lo integer,"
    " hi integer);"
    "INSERT INTO bshape VALUES ('linear', 'bench_linear', 'linear4', 0, 30),"
    " ('diamond', 'bench_diamond', 'diamond4', 30, 55), ('tree', 'bench_tree', 'tree8', 55, 70),"
    " ('complex_dag', 'bench_dag', 'complex_dag7', 70, 80),"
    " ('parallel', 'bench_parallel', 'parallel4', 80, 95),"
    " ('chain8', 'bench_chain', 'chain8', 95, 100);"
    /* register the templates (namespaces, named tasks, step names, queues) */
    "SELECT tasker.register_template(jsonb_build_object('name', s.tname, 'namespace_name', s.ns,"
    " 'version', '1.0.0', 'description', 'tasker bench dataset', 'steps',"
    " (SELECT jsonb_agg(jsonb_build_object('name', x.name, 'description', NULL,"
    "   'handler', jsonb_build_object('callable', 'builtin.square', 'initialization',"
    "   '{}'::jsonb), 'dependencies', (SELECT coalesce(jsonb_agg(p.name ORDER BY p.idx),"
    "   '[]'::jsonb) FROM bs p WHERE p.shape = x.shape AND p.idx = ANY (x.parents)),"
    "   'retry', jsonb_build_object('retryable', true, 'max_attempts', 3)) ORDER BY x.idx)"
    "  FROM bs x WHERE x.shape = s.shape))) FROM bshape s;"
    /* per shape and progress p (steps 0..p-1 complete): which steps are done, which are on
     * the frontier (not done, every parent done), which is the first of the frontier */
    "CREATE TEMP TABLE bf AS SELECT shape, p, idx, done, frontier,"
    " frontier AND idx = min(idx) FILTER (WHERE frontier) OVER (PARTITION BY shape, p)"
    "  AS first_frontier"
    " FROM (SELECT x.shape, p.p, x.idx, x.idx < p.p AS done,"
    "  x.idx >= p.p AND NOT EXISTS (SELECT 1 FROM unnest(x.parents) q WHERE q >= p.p)"
    "   AS frontier"
    "  FROM bs x JOIN (SELECT shape, count(*)::integer AS n FROM bs GROUP BY shape) c"
    "   ON c.shape = x.shape CROSS JOIN LATERAL generate_series(0, c.n) p(p)) z;";

/* The number of tasks is the setting bench.tasks. */
static const char tasks_sql[] =
    "CREATE TEMP TABLE anchors (i integer PRIMARY KEY, shape text, state text, anchor text);"
    "INSERT INTO anchors VALUES"
    " (1, 'parallel', 'steps_in_process', 'parents_0'),"
    " (2, 'linear', 'steps_in_process', 'parents_1'),"
    " (3, 'diamond', 'steps_in_process', 'parents_2'),"
    " (4, 'complex_dag', 'steps_in_process', 'parents_3'),"
    " (5, 'tree', 'steps_in_process', 'parents_4'),"
    " (6, 'chain8', 'complete', 'chain'),"
    " (7, 'linear', 'pending', 'scenario_0'),"
    " (8, 'linear', 'initializing', 'scenario_1'),"
    " (9, 'linear', 'enqueuing_steps', 'scenario_2'),"
    " (10, 'linear', 'steps_in_process', 'scenario_3'),"
    " (11, 'linear', 'evaluating_results', 'scenario_4');"
    "CREATE TEMP TABLE gt AS"
    " WITH g AS (SELECT i, (hashint4(i) & 2147483647) % 100 AS sb,"
    "   (hashint8extended(i::bigint, 7) & 9223372036854775807) % 1000 AS sv"
    "  FROM generate_series(1, current_setting('bench.tasks')::integer) i),"
    " h AS (SELECT g.i, coalesce(a.shape, s.shape) AS shape, a.anchor,"
    "   coalesce(a.state, CASE WHEN g.sv < 700 THEN 'complete'"
    "    WHEN g.sv < 770 THEN 'steps_in_process' WHEN g.sv < 800 THEN 'pending'"
    "    WHEN g.sv < 830 THEN 'waiting_for_dependencies' WHEN g.sv < 870 THEN 'waiting_for_retry'"
    "    WHEN g.sv < 920 THEN 'error' WHEN g.sv < 940 THEN 'blocked_by_failures'"
    "    WHEN g.sv < 970 THEN 'cancelled' WHEN g.sv < 980 THEN 'initializing'"
    "    WHEN g.sv < 990 THEN 'enqueuing_steps' ELSE 'evaluating_results' END) AS state"
    "  FROM g JOIN bshape s ON g.sb >= s.lo AND g.sb < s.hi LEFT JOIN anchors a ON a.i = g.i)"
    " SELECT h.i, h.shape, h.anchor, h.state, c.n,"
    "  CASE WHEN h.anchor IS NOT NULL THEN c.n / 2 ELSE 1 + h.i % (c.n - 1) END AS p,"
    "  nt.named_task_uuid, tasker.uuid_generate_v7() AS task_uuid,"
    "  now() - make_interval(hours => h.i % 720, secs => h.i % 3600) AS created_at,"
    "  CASE WHEN h.i % 20 = 0 THEN 10 WHEN h.i % 7 = 0 THEN 5 ELSE 0 END AS priority"
    " FROM h JOIN bshape s ON s.shape = h.shape"
    " JOIN (SELECT shape, count(*)::integer AS n FROM bs GROUP BY shape) c ON c.shape = h.shape"
    " JOIN tasker.task_namespaces tn ON tn.name = s.ns"
    " JOIN tasker.named_tasks nt ON nt.task_namespace_uuid = tn.task_namespace_uuid"
    "  AND nt.name = s.tname AND nt.version = '1.0.0';"
    "INSERT INTO tasker.tasks (task_uuid, named_task_uuid, state, state_entered_at, requested_at,"
    " completed_at, initiator, source_system, tags, context, identity_hash, priority,"
    " correlation_id, created_at, updated_at)"
    " SELECT task_uuid, named_task_uuid, state, created_at + interval '1 minute', created_at,"
    "  CASE WHEN state IN ('complete', 'error', 'cancelled')"
    "   THEN created_at + interval '2 minutes' END,"
    "  'tasker-bench', 'bench-dataset', '[\"bench\"]',"
    "  jsonb_build_object('even_number', 6, 'i', i) || CASE WHEN anchor IS NULL THEN '{}'::jsonb"
    "   ELSE jsonb_build_object('bench_anchor', anchor) END,"
    "  'bench-' || i, priority, gen_random_uuid(), created_at, created_at + interval '2 minutes'"
    " FROM gt;"
    "CREATE TEMP TABLE gs AS"
    " SELECT t.task_uuid, t.i, x.idx, x.shape, x.name, t.created_at,"
    "  tasker.uuid_generate_v7() AS step_uuid,"
    "  CASE WHEN t.state = 'complete' THEN 'complete'"
    "   WHEN t.state IN ('pending', 'initializing') THEN 'pending'"
    "   WHEN f.done THEN 'complete'"
    "   WHEN t.state = 'cancelled' THEN 'cancelled'"
    "   WHEN NOT f.frontier THEN 'pending'"
    "   WHEN t.state = 'steps_in_process'"
    "    THEN CASE WHEN x.idx % 2 = 0 THEN 'in_progress' ELSE 'enqueued' END"
    "   WHEN t.state = 'enqueuing_steps' THEN 'enqueued'"
    "   WHEN t.state = 'evaluating_results' THEN 'enqueued_for_orchestration'"
    "   WHEN t.state = 'waiting_for_retry' THEN 'waiting_for_retry'"
    "   WHEN t.state = 'error' AND f.first_frontier THEN 'error'"
    "   WHEN t.state = 'blocked_by_failures'"
    "    THEN CASE WHEN f.first_frontier THEN 'error' ELSE 'in_progress' END"
    "   ELSE 'pending' END AS state"
    " FROM gt t JOIN bs x ON x.shape = t.shape"
    " JOIN bf f ON f.shape = t.shape AND f.p = t.p AND f.idx = x.idx;"
    "CREATE INDEX ON gs (task_uuid, idx);"
    "ANALYZE gs;"
    "INSERT INTO tasker.workflow_steps (workflow_step_uuid, task_uuid, named_step_uuid, state,"
    " state_entered_at, retryable, max_attempts, attempts, last_attempted_at, last_failure_at,"
    " backoff_request_seconds, lease_owner, lease_expires_at, processed_at, inputs, results,"
    " handler_callable, created_at, updated_at)"
    " SELECT s.step_uuid, s.task_uuid, ns.named_step_uuid, s.state,"
    "  s.created_at + interval '1 minute', true, 3,"
    "  CASE s.state WHEN 'pending' THEN 0 WHEN 'enqueued' THEN 0 WHEN 'cancelled' THEN 0"
    "   WHEN 'error' THEN 3 ELSE 1 END,"
    "  CASE WHEN s.state IN ('pending', 'enqueued', 'cancelled') THEN NULL"
    "   ELSE s.created_at + interval '30 seconds' END,"
    "  CASE WHEN s.state IN ('waiting_for_retry', 'error')"
    "   THEN s.created_at + interval '40 seconds' END,"
    "  CASE WHEN s.state = 'waiting_for_retry'"
    "   THEN CASE WHEN s.i % 2 = 0 THEN 1 ELSE 315360000 END END,"
    "  CASE WHEN s.state = 'in_progress' THEN 'bench-worker' END,"
    "  CASE WHEN s.state = 'in_progress' THEN now() + interval '1 day' END,"
    "  CASE WHEN s.state IN ('complete', 'cancelled') THEN s.created_at + interval '1 minute' END,"
    "  '{}'::jsonb,"
    "  CASE WHEN s.state IN ('complete', 'enqueued_for_orchestration')"
    "   THEN jsonb_build_object('step_uuid', s.step_uuid, 'success', true, 'status', 'completed',"
    "    'result', jsonb_build_object('value', 36), 'metadata',"
    "    jsonb_build_object('execution_time_ms', 1))"
    "   WHEN s.state IN ('error', 'waiting_for_retry')"
    "   THEN jsonb_build_object('step_uuid', s.step_uuid, 'success', false, 'status', 'error',"
    "    'result', '{}'::jsonb, 'error', jsonb_build_object('message', 'bench failure',"
    "    'error_type', 'handler_error', 'retryable', true)) END,"
    "  'builtin.square', s.created_at, s.created_at + interval '1 minute'"
    " FROM gs s JOIN tasker.named_steps ns ON ns.name = s.name;"
    "INSERT INTO tasker.workflow_step_edges (from_step_uuid, to_step_uuid, created_at,"
    " updated_at)"
    " SELECT p.step_uuid, c.step_uuid, c.created_at, c.created_at"
    " FROM gs c JOIN bs x ON x.shape = c.shape AND x.idx = c.idx"
    " CROSS JOIN LATERAL unnest(x.parents) AS q(pidx)"
    " JOIN gs p ON p.task_uuid = c.task_uuid AND p.idx = q.pidx;"
    "INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, event, created_at)"
    " SELECT task_uuid, NULL, 'pending', 'create', created_at FROM gt"
    " UNION ALL SELECT task_uuid, 'pending', state, 'bench_dataset',"
    "  created_at + interval '1 minute' FROM gt WHERE state <> 'pending';"
    "INSERT INTO tasker.workflow_step_transitions (workflow_step_uuid, from_state, to_state,"
    " event, created_at)"
    " SELECT step_uuid, NULL, 'pending', 'create', created_at FROM gs"
    " UNION ALL SELECT step_uuid, 'pending', state, 'bench_dataset',"
    "  created_at + interval '1 minute' FROM gs WHERE state <> 'pending';";

/* FNV-1a 64 over every embedded migration: a dataset is reused only by the same schema. */
static void schema_fingerprint(char out[17])
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int i = 0; i < tk__migration_count; i++)
        for (const unsigned char *p = (const unsigned char *)tk__migrations[i].sql; *p; p++) {
            h ^= *p;
            h *= 0x100000001b3ULL;
        }
    snprintf(out, 17, "%016" PRIx64, h);
}

/* True when the database at url holds a finished dataset of `tasks` tasks for this schema. */
static bool dataset_matches(const char *url, int tasks, const char *fingerprint)
{
    tk_conn_t *c;
    tk_error_t err;
    if (tk_conn_open(url, "tasker-bench", &c, &err) != TK_OK)
        return false;
    PGresult *res = PQexec(tk_conn_pg(c), "SELECT tasks, generator, fingerprint FROM "
                                          "public.bench_meta WHERE finished");
    bool ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
              tk_parse_int_or(PQgetvalue(res, 0, 0), -1) == tasks &&
              tk_parse_int_or(PQgetvalue(res, 0, 1), -1) == GENERATOR_VERSION &&
              strcmp(PQgetvalue(res, 0, 2), fingerprint) == 0;
    PQclear(res);
    tk_conn_close(c);
    return ok;
}

static int generate(PGconn *pg, int tasks, const char *fingerprint, tk_error_t *err)
{
    /* Without superuser rights this fails and the triggers simply run. */
    PGresult *res = PQexec(pg, "SET session_replication_role = replica");
    PQclear(res);
    int rc = tk_bench_exec(pg,
                           "SET client_min_messages = warning; SET synchronous_commit = off;"
                           "SET work_mem = '64MB'; SET maintenance_work_mem = '256MB'",
                           err);
    if (rc == TK_OK)
        rc = tk_bench_exec(pg, "BEGIN", err);
    if (rc == TK_OK)
        rc = tk_bench_exec(pg, shapes_sql, err);
    if (rc == TK_OK) {
        char set[64];
        snprintf(set, sizeof(set), "SET bench.tasks = %d", tasks);
        rc = tk_bench_exec(pg, set, err);
    }
    if (rc == TK_OK)
        rc = tk_bench_exec(pg, tasks_sql, err);
    if (rc == TK_OK) {
        char meta[512];
        snprintf(meta, sizeof(meta),
                 "CREATE TABLE public.bench_meta (tasks integer NOT NULL, generator integer NOT "
                 "NULL, fingerprint text NOT NULL, finished boolean NOT NULL DEFAULT true, "
                 "generated_at timestamptz NOT NULL DEFAULT now());"
                 "INSERT INTO public.bench_meta (tasks, generator, fingerprint) "
                 "VALUES (%d, %d, '%s');"
                 "DROP TABLE bs, bshape, bf, anchors, gt, gs;",
                 tasks, GENERATOR_VERSION, fingerprint);
        rc = tk_bench_exec(pg, meta, err);
    }
    if (rc == TK_OK)
        rc = tk_bench_exec(pg, "COMMIT", err);
    else
        PQclear(PQexec(pg, "ROLLBACK"));
    res = PQexec(pg, "RESET session_replication_role");
    PQclear(res);
    if (rc == TK_OK)
        rc = tk_bench_exec(pg,
                           "VACUUM (ANALYZE) tasker.tasks, tasker.workflow_steps, "
                           "tasker.workflow_step_edges, tasker.task_transitions, "
                           "tasker.workflow_step_transitions, tasker.named_tasks, "
                           "tasker.named_steps, tasker.task_namespaces",
                           err);
    return rc;
}

int tk_bench_sql_dataset(tk_bench_t *b, int tasks, char **url_out, bool *reused, double *seconds,
                         tk_error_t *err)
{
    char name[64], fingerprint[17];
    snprintf(name, sizeof(name), "tasker_bench_sql_%d", tasks);
    schema_fingerprint(fingerprint);
    *url_out = NULL;
    *reused = false;
    *seconds = 0;
    char *url = tk_bench_url_for(b->server_url, name);
    if (url == NULL)
        return tk_error_set(err, TK_EINVAL, "could not parse the database URL");
    if (dataset_matches(url, tasks, fingerprint)) {
        *reused = true;
        *url_out = url;
        return TK_OK;
    }
    free(url);
    tk_bench_note(b, "sql: generating a dataset of %d tasks in database %s", tasks, name);
    int64_t t0 = tk_clock_us();
    int rc = tk_bench_db_create(b, name, true, &url, err);
    if (rc != TK_OK)
        return rc;
    tk_conn_t *c;
    rc = tk_conn_open(url, "tasker-bench-generator", &c, err);
    if (rc == TK_OK) {
        rc = generate(tk_conn_pg(c), tasks, fingerprint, err);
        tk_conn_close(c);
    }
    if (rc != TK_OK) {
        char reason[sizeof(err->message)];
        snprintf(reason, sizeof(reason), "%s", err->message);
        tk_error_set(err, rc, "could not generate the dataset in %s: %s", name, reason);
        free(url);
        return rc;
    }
    *seconds = (double)(tk_clock_us() - t0) / 1e6;
    *url_out = url;
    return TK_OK;
}
