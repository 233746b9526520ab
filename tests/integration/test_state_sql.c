/*
 * test_state_sql.c - the state machines in C (tasker/state.h) and in SQL
 * (sql/0002_state_machines.sql) are the same, and the database enforces them.
 *
 * For every ordered pair of states (12 x 12 for tasks, 10 x 10 for steps) an entity is put in
 * the first state and moved to the second with transition_*_state_atomic: the move must
 * succeed exactly when C lists the pair, and be refused with TK_ETRANSITION (SQLSTATE
 * TK001/TK002) otherwise. A plain UPDATE that skips the function is refused the same way.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "db/conn.h"
#include "harness.h"
#include "tasker/state.h"

typedef struct fixture_s {
    char *url;
    tk_conn_t *conn;
    PGconn *pg;
    char named_task[40];
    char named_step[40];
} fixture_t;

static const tk_stmt_t task_cas = {
    "t_task_cas", "SELECT tasker.transition_task_state_atomic($1, $2, $3, NULL, '{}')", 3, false};
static const tk_stmt_t step_cas = {
    "t_step_cas", "SELECT tasker.transition_step_state_atomic($1, $2, $3, '{}')", 3, false};

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    f->url = tk_test_db_create("it_state_sql");
    tk_error_t err;
    if (tk_conn_open(f->url, "test", &f->conn, &err) != TK_OK)
        fail_msg("connect: %s", err.message);
    f->pg = tk_conn_pg(f->conn);
    tk_test_exec(f->pg, "INSERT INTO task_namespaces (name) VALUES ('state_test')");
    snprintf(f->named_task, sizeof(f->named_task), "%s",
             tk_test_value(f->pg, "INSERT INTO named_tasks (task_namespace_uuid, name) "
                                  "SELECT task_namespace_uuid, 'machine' FROM task_namespaces "
                                  "RETURNING named_task_uuid"));
    snprintf(f->named_step, sizeof(f->named_step), "%s",
             tk_test_value(f->pg, "INSERT INTO named_steps (name) VALUES ('only_step') "
                                  "RETURNING named_step_uuid"));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    tk_conn_close(f->conn);
    free(f->url);
    free(f);
    return 0;
}

/* The SQL tables list exactly the C states (with the same flags) and transitions. */
static void test_tables_agree(void **state)
{
    fixture_t *f = *state;
    int n;
    char sql[512];

    assert_int_equal(tk_test_count(f->pg, "SELECT count(*) FROM task_states"), TK_TASK_STATE_COUNT);
    for (int s = 0; s < TK_TASK_STATE_COUNT; s++) {
        snprintf(sql, sizeof(sql), "SELECT terminal FROM task_states WHERE name = '%s'",
                 tk_task_state_name(s));
        assert_string_equal(tk_test_value(f->pg, sql), tk_task_state_is_terminal(s) ? "t" : "f");
    }
    assert_int_equal(tk_test_count(f->pg, "SELECT count(*) FROM step_states"), TK_STEP_STATE_COUNT);
    for (int s = 0; s < TK_STEP_STATE_COUNT; s++) {
        snprintf(sql, sizeof(sql),
                 "SELECT terminal::text || satisfies_dependents::text FROM step_states "
                 "WHERE name = '%s'",
                 tk_step_state_name(s));
        char expect[16];
        snprintf(expect, sizeof(expect), "%s%s", tk_step_state_is_terminal(s) ? "true" : "false",
                 tk_step_state_satisfies_dependents(s) ? "true" : "false");
        assert_string_equal(tk_test_value(f->pg, sql), expect);
    }

    const tk_transition_t *rows = tk_task_transitions(&n);
    assert_int_equal(tk_test_count(f->pg, "SELECT count(*) FROM task_state_transitions"), n);
    for (int i = 0; i < n; i++) {
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM task_state_transitions WHERE from_state = '%s' "
                 "AND to_state = '%s' AND event = '%s'",
                 tk_task_state_name(rows[i].from), tk_task_state_name(rows[i].to), rows[i].event);
        assert_int_equal(tk_test_count(f->pg, sql), 1);
    }
    rows = tk_step_transitions(&n);
    assert_int_equal(tk_test_count(f->pg, "SELECT count(*) FROM step_state_transitions"), n);
    for (int i = 0; i < n; i++) {
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM step_state_transitions WHERE from_state = '%s' "
                 "AND to_state = '%s' AND event = '%s'",
                 tk_step_state_name(rows[i].from), tk_step_state_name(rows[i].to), rows[i].event);
        assert_int_equal(tk_test_count(f->pg, sql), 1);
    }
}

/* Insert a task (or a step of a new task) directly in `state`; INSERT is not guarded. */
static const char *insert_task(fixture_t *f, const char *state)
{
    const char *params[] = {f->named_task, state};
    return tk_test_valuep(f->pg,
                          "INSERT INTO tasks (named_task_uuid, state, identity_hash, "
                          "correlation_id) VALUES ($1, $2, gen_random_uuid()::text, "
                          "gen_random_uuid()) RETURNING task_uuid",
                          2, params);
}

static const char *insert_step(fixture_t *f, const char *state)
{
    char task[40];
    snprintf(task, sizeof(task), "%s", insert_task(f, "steps_in_process"));
    const char *params[] = {task, f->named_step, state};
    return tk_test_valuep(f->pg,
                          "INSERT INTO workflow_steps (task_uuid, named_step_uuid, state) "
                          "VALUES ($1, $2, $3) RETURNING workflow_step_uuid",
                          3, params);
}

/* Move one entity from -> to inside a rolled-back transaction, through the CAS function and
 * through a plain UPDATE, and check both against `allowed`. */
static void check_pair(fixture_t *f, const tk_stmt_t *cas, const char *table, const char *key,
                       const char *uuid, const char *from, const char *to, bool allowed,
                       const char *sqlstate)
{
    tk_error_t err;
    PGresult *res;
    const char *params[] = {uuid, from, to};

    tk_test_exec(f->pg, "BEGIN");
    int rc = tk_conn_query(f->conn, cas, params, &res, &err);
    if (allowed) {
        if (rc != TK_OK)
            fail_msg("%s %s -> %s should be allowed: %s", table, from, to, err.message);
        assert_string_equal(PQgetvalue(res, 0, 0), "t");
        PQclear(res);
    } else {
        if (rc != TK_ETRANSITION)
            fail_msg("%s %s -> %s should be refused, got %s", table, from, to, tk_err_name(rc));
        assert_string_equal(err.sqlstate, sqlstate);
    }
    tk_test_exec(f->pg, "ROLLBACK");

    char sql[256];
    snprintf(sql, sizeof(sql), "UPDATE %s SET state = '%s' WHERE %s = '%s'", table, to, key, uuid);
    if (allowed) {
        tk_test_exec(f->pg, "BEGIN");
        tk_test_exec(f->pg, sql);
        tk_test_exec(f->pg, "ROLLBACK");
    } else if (strcmp(from, to) != 0) { /* same-state UPDATEs are not changes */
        assert_string_equal(tk_test_sqlstate_of(f->pg, sql), sqlstate);
    }
}

static void test_task_matrix(void **state)
{
    fixture_t *f = *state;
    int allowed_count = 0, refused_count = 0;
    for (int from = 0; from < TK_TASK_STATE_COUNT; from++) {
        char uuid[40];
        snprintf(uuid, sizeof(uuid), "%s", insert_task(f, tk_task_state_name(from)));
        for (int to = 0; to < TK_TASK_STATE_COUNT; to++) {
            bool allowed = tk_task_transition_event(from, to) != NULL;
            check_pair(f, &task_cas, "tasks", "task_uuid", uuid, tk_task_state_name(from),
                       tk_task_state_name(to), allowed, "TK001");
            allowed ? allowed_count++ : refused_count++;
        }
    }
    assert_int_equal(allowed_count + refused_count, 144);
    assert_true(allowed_count > 20 && refused_count > 80);
}

static void test_step_matrix(void **state)
{
    fixture_t *f = *state;
    int allowed_count = 0;
    for (int from = 0; from < TK_STEP_STATE_COUNT; from++) {
        char uuid[40];
        snprintf(uuid, sizeof(uuid), "%s", insert_step(f, tk_step_state_name(from)));
        for (int to = 0; to < TK_STEP_STATE_COUNT; to++) {
            bool allowed = tk_step_transition_event(from, to) != NULL;
            check_pair(f, &step_cas, "workflow_steps", "workflow_step_uuid", uuid,
                       tk_step_state_name(from), tk_step_state_name(to), allowed, "TK002");
            allowed_count += allowed;
        }
    }
    int n;
    tk_step_transitions(&n);
    assert_true(allowed_count > 10 && allowed_count <= n);
}

/* A CAS whose expected state is stale moves nothing and records nothing. */
static void test_cas_loses_quietly(void **state)
{
    fixture_t *f = *state;
    char uuid[40];
    snprintf(uuid, sizeof(uuid), "%s", insert_task(f, "steps_in_process"));
    const char *params[] = {uuid, "pending", "initializing"};
    PGresult *res;
    tk_error_t err;
    assert_int_equal(tk_conn_query(f->conn, &task_cas, params, &res, &err), TK_OK);
    assert_string_equal(PQgetvalue(res, 0, 0), "f");
    PQclear(res);
    const char *p1[] = {uuid};
    assert_string_equal(
        tk_test_valuep(f->pg, "SELECT state FROM tasks WHERE task_uuid = $1", 1, p1),
        "steps_in_process");
    assert_string_equal(
        tk_test_valuep(f->pg, "SELECT count(*) FROM task_transitions WHERE task_uuid = $1", 1, p1),
        "0");

    /* The winning move records exactly one history row with its event. */
    const char *win[] = {uuid, "steps_in_process", "evaluating_results"};
    assert_int_equal(tk_conn_query(f->conn, &task_cas, win, &res, &err), TK_OK);
    assert_string_equal(PQgetvalue(res, 0, 0), "t");
    PQclear(res);
    assert_string_equal(tk_test_valuep(f->pg,
                                       "SELECT from_state || '>' || to_state || ':' || event "
                                       "FROM task_transitions WHERE task_uuid = $1",
                                       1, p1),
                        "steps_in_process>evaluating_results:step_completed");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tables_agree),
        cmocka_unit_test(test_task_matrix),
        cmocka_unit_test(test_step_matrix),
        cmocka_unit_test(test_cas_loses_quietly),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
