/*
 * test_recovery.c - nothing is lost when processes or the database die.
 *
 * 1. A worker is killed with SIGKILL while it runs a step: once the step's lease expires the
 *    sweeper puts it back in its queue, another worker runs it, and the task completes.
 * 2. The database restarts while tasks are in flight (on a private cluster of this test, so
 *    the shared one is not disturbed): the server and the worker reconnect and every task
 *    completes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "db/conn.h"
#include "db/migrate.h"
#include "db/pgembed.h"
#include "e2e.h"
#include "harness.h"

/* Poll until step `name` is in_progress and return its lease owner (static buffer). */
static const char *wait_running(int port, const char *uuid, const char *name)
{
    static char owner[128];
    char path[128];
    snprintf(path, sizeof(path), "/v1/tasks/%s/workflow_steps", uuid);
    for (int i = 0; i < 400; i++) {
        long status;
        json_t *steps = e2e_http(port, "GET", path, NULL, &status);
        size_t j;
        json_t *s;
        json_array_foreach(steps, j, s)
        {
            const char *n = json_string_value(json_object_get(s, "name"));
            const char *st = json_string_value(json_object_get(s, "current_state"));
            if (n && st && strcmp(n, name) == 0 && strcmp(st, "in_progress") == 0) {
                snprintf(owner, sizeof(owner), "%s",
                         json_string_value(json_object_get(s, "lease_owner")));
                json_decref(steps);
                return owner;
            }
        }
        json_decref(steps);
        e2e_sleep_ms(25);
    }
    fail_msg("step %s never started", name);
    return NULL;
}

static void test_killed_worker_step_runs_again(void **state)
{
    (void)state;
    char *db_url = tk_test_db_create("e2e_recovery_kill");
    const char *server_extra[] = {"--set", "orchestration.sweep_interval_ms=250", NULL};
    e2e_proc_t server = e2e_start_server(db_url, "kill-server", server_extra);
    const char *short_lease[] = {"--set", "worker.lease_seconds=2", "--set",
                                 "worker.heartbeat_interval_ms=400", NULL};
    const char *templates = e2e_source_path("tests/e2e/templates");
    e2e_proc_t victim = e2e_start_worker(db_url, templates, "victim", short_lease);

    json_t *t =
        e2e_create_task(server.port, "e2e_slow", "one_slow_step", "{\"case\": \"kill\"}", 0, 201);
    const char *uuid = json_string_value(json_object_get(t, "task_uuid"));
    assert_string_equal(wait_running(server.port, uuid, "slow"), "victim");
    e2e_kill(&victim);

    /* another worker takes over once the dead one's lease runs out */
    e2e_proc_t rescuer = e2e_start_worker(db_url, templates, "rescuer", short_lease);
    json_t *done = e2e_get_task(server.port, uuid, 30000);
    assert_string_equal(json_string_value(json_object_get(done, "status")), "complete");
    json_t *step = e2e_task_step(done, "slow");
    assert_int_equal(json_integer_value(json_object_get(step, "attempts")), 2);

    PGconn *pg = tk_test_connect(db_url);
    const char *p[] = {uuid};
    assert_string_equal(tk_test_valuep(pg,
                                       "SELECT string_agg(event, ',' ORDER BY st.created_at) FROM "
                                       "workflow_step_transitions st JOIN workflow_steps ws USING "
                                       "(workflow_step_uuid) WHERE ws.task_uuid = $1",
                                       1, p),
                        "create,enqueue,start,lease_expired,start,enqueue_for_orchestration,"
                        "complete");
    assert_string_equal(tk_test_valuep(pg,
                                       "SELECT metadata->>'worker_id' FROM "
                                       "workflow_step_transitions st JOIN workflow_steps ws USING "
                                       "(workflow_step_uuid) WHERE ws.task_uuid = $1 AND event = "
                                       "'enqueue_for_orchestration'",
                                       1, p),
                        "rescuer");
    PQfinish(pg);
    json_decref(done);
    json_decref(t);
    e2e_stop(&rescuer);
    e2e_stop(&server);
    free(db_url);
}

static void test_database_restart_mid_run(void **state)
{
    (void)state;
    char data_dir[1024];
    snprintf(data_dir, sizeof(data_dir), "%s-e2e-restart/data", getenv("TK_TEST_PG_DIR"));
    tk_error_t err;
    tk_pgembed_remove(data_dir, &err);
    tk_pgembed_opts_t opts = {.data_dir = data_dir, .durable = false};
    tk_pgembed_t *pg;
    if (tk_pgembed_start(&opts, &pg, &err) != TK_OK)
        fail_msg("start: %s", err.message);
    tk_conn_t *conn;
    assert_int_equal(tk_conn_open(tk_pgembed_url(pg), "test", &conn, &err), TK_OK);
    assert_int_equal(tk_migrate_run(conn, NULL, NULL, NULL, &err), TK_OK);
    tk_conn_close(conn);
    char url[256];
    snprintf(url, sizeof(url), "%s", tk_pgembed_url(pg));

    e2e_proc_t server = e2e_start_server(url, "restart-server", NULL);
    e2e_proc_t worker =
        e2e_start_worker(url, e2e_source_path("tests/e2e/templates"), "restart-worker", NULL);
    enum { TASKS = 20 };
    char uuids[TASKS][40];
    for (int i = 0; i < TASKS; i++) {
        char context[64];
        snprintf(context, sizeof(context), "{\"n\": %d}", i);
        json_t *t = e2e_create_task(server.port, "e2e_chain", "short_chain", context, 0, 201);
        snprintf(uuids[i], sizeof(uuids[i]), "%s",
                 json_string_value(json_object_get(t, "task_uuid")));
        json_decref(t);
    }
    e2e_sleep_ms(300); /* steps are running and results are being applied */

    /* restart on the same port: connections break, the processes must reconnect */
    int port = tk_pgembed_port(pg);
    assert_int_equal(tk_pgembed_stop(pg, &err), TK_OK);
    tk_pgembed_free(pg);
    e2e_sleep_ms(1000);
    opts.port = port;
    if (tk_pgembed_start(&opts, &pg, &err) != TK_OK)
        fail_msg("restart: %s", err.message);

    for (int i = 0; i < TASKS; i++) {
        json_t *done = e2e_get_task(server.port, uuids[i], 60000);
        const char *status = json_string_value(json_object_get(done, "status"));
        if (status == NULL || strcmp(status, "complete") != 0)
            fail_msg("task %d ended %s after the restart", i, status ? status : "?");
        json_decref(done);
    }
    e2e_stop(&worker);
    e2e_stop(&server);
    assert_int_equal(tk_pgembed_stop(pg, &err), TK_OK);
    tk_pgembed_free(pg);
    assert_int_equal(tk_pgembed_remove(data_dir, &err), TK_OK);
}

int main(void)
{
    e2e_init("recovery");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_killed_worker_step_runs_again),
        cmocka_unit_test(test_database_restart_mid_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
