/*
 * test_template_db.c - registering templates (tk_template_register) against PostgreSQL: the
 * stored configuration is exactly the normalized JSON, registering again changes nothing,
 * a changed template is updated, and tasker.create_task builds tasks from what was stored
 * (steps, handlers, retry settings, initialization, edges, the first queued step).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"
#include "template/template.h"

static char *db_url;
static tk_template_set_t *examples;

/* Absolute path of `rel` in the repository (see test_template.c). */
static const char *repo_path(const char *rel)
{
    static char buf[4096];
    const char *file = __FILE__;
    const char *cut = strstr(file, "tests/integration/test_template_db.c");
    int root = cut != NULL ? (int)(cut - file) : 0;
    snprintf(buf, sizeof(buf), "%.*s%s", root, file, rel);
    return buf;
}

static int setup(void **state)
{
    (void)state;
    db_url = tk_test_db_create("it_template");
    tk_error_t err;
    if (tk_template_load_dir(repo_path("examples/templates"), &examples, &err) != TK_OK) {
        fprintf(stderr, "%s\n", err.message);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tk_template_set_free(examples);
    free(db_url);
    return 0;
}

static tk_conn_t *open_conn(void)
{
    tk_conn_t *c;
    tk_error_t err;
    if (tk_conn_open(db_url, "it_template", &c, &err) != TK_OK)
        fail_msg("connect: %s", err.message);
    return c;
}

static void register_ok(tk_conn_t *c, const tk_template_t *t)
{
    tk_error_t err;
    if (tk_template_register(c, t, &err) != TK_OK)
        fail_msg("register %s: %s", tk_template_name(t), err.message);
}

/* configuration of the named task with t's identity equals t's JSON ("t"/"f"). */
static const char *stored_equals(PGconn *pg, const tk_template_t *t)
{
    char *json = json_dumps(tk_template_json(t), JSON_COMPACT);
    const char *params[] = {tk_template_namespace(t), tk_template_name(t), tk_template_version(t),
                            json};
    const char *v = tk_test_valuep(pg,
                                   "SELECT nt.configuration = $4::jsonb FROM named_tasks nt"
                                   " JOIN task_namespaces ns USING (task_namespace_uuid)"
                                   " WHERE ns.name = $1 AND nt.name = $2 AND nt.version = $3",
                                   4, params);
    free(json);
    return v;
}

static void test_register_examples(void **state)
{
    (void)state;
    tk_conn_t *c = open_conn();
    PGconn *pg = tk_test_connect(db_url);
    tk_error_t err;
    assert_int_equal(tk_template_set_register(c, examples, &err), TK_OK);
    assert_int_equal(tk_test_count(pg, "SELECT count(*) FROM named_tasks"), 8);
    assert_int_equal(tk_test_count(pg, "SELECT count(*) FROM task_namespaces"), 7);
    for (size_t i = 0; i < tk_template_set_count(examples); i++)
        assert_string_equal(stored_equals(pg, tk_template_set_get(examples, i)), "t");
    /* Every step name, and a worker queue per namespace. */
    assert_int_equal(tk_test_count(pg, "SELECT count(*) FROM named_steps WHERE name IN"
                                       " ('linear_step_1', 'diamond_end', 'always_fail',"
                                       "  'fail_twice_then_succeed', 'tree_final_convergence')"),
                     5);
    size_t n;
    const char *const *ns = tk_template_set_namespaces(examples, &n);
    for (size_t i = 0; i < n; i++) {
        char queue[64];
        snprintf(queue, sizeof(queue), "worker_%s_queue", ns[i]);
        const char *params[] = {queue};
        assert_string_equal(
            tk_test_valuep(pg, "SELECT count(*) FROM tasker_mq.queues WHERE queue_name = $1", 1,
                           params),
            "1");
    }
    assert_int_equal(tk_test_count(pg, "SELECT count(*) FROM named_tasks"
                                       " WHERE identity_strategy <> 'strict'"),
                     0);

    /* Again: idempotent, nothing rewritten. */
    tk_test_exec(pg, "CREATE TEMP TABLE before AS SELECT named_task_uuid, updated_at FROM "
                     "named_tasks");
    assert_int_equal(tk_template_set_register(c, examples, &err), TK_OK);
    assert_int_equal(tk_test_count(pg, "SELECT count(*) FROM named_tasks"), 8);
    assert_int_equal(tk_test_count(pg, "SELECT count(*) FROM named_tasks nt JOIN before b"
                                       " USING (named_task_uuid)"
                                       " WHERE nt.updated_at = b.updated_at"),
                     8);
    PQfinish(pg);
    tk_conn_close(c);
}

static void test_register_update(void **state)
{
    (void)state;
    tk_conn_t *c = open_conn();
    PGconn *pg = tk_test_connect(db_url);
    const char *yaml = "name: changing\nnamespace_name: updates\nversion: 1.0.0\n"
                       "description: first\nsteps:\n"
                       "  - {name: only, handler: {callable: builtin.noop}}\n";
    const char *yaml2 = "name: changing\nnamespace_name: updates\nversion: 1.0.0\n"
                        "description: second\nidentity_strategy: always_unique\nsteps:\n"
                        "  - {name: only, handler: {callable: builtin.echo},"
                        "     retry: {max_attempts: 7}}\n";
    tk_template_t *t1, *t2;
    tk_error_t err;
    assert_int_equal(tk_template_load_string(yaml, strlen(yaml), "a", NULL, NULL, &t1, &err),
                     TK_OK);
    assert_int_equal(tk_template_load_string(yaml2, strlen(yaml2), "b", NULL, NULL, &t2, &err),
                     TK_OK);
    register_ok(c, t1);
    assert_string_equal(stored_equals(pg, t1), "t");
    register_ok(c, t2);
    assert_string_equal(stored_equals(pg, t2), "t");
    assert_string_equal(tk_test_value(pg, "SELECT description || ' ' || identity_strategy"
                                          " FROM named_tasks WHERE name = 'changing'"),
                        "second always_unique");
    assert_int_equal(tk_test_count(pg, "SELECT count(*) FROM named_tasks WHERE name = 'changing'"),
                     1);
    tk_template_free(t1);
    tk_template_free(t2);

    /* A database error keeps its SQLSTATE and names the template. */
    tk_test_exec(pg, "ALTER TABLE named_tasks ADD CONSTRAINT no_x CHECK (name <> 'x_forbidden')");
    const char *bad = "name: x_forbidden\nnamespace_name: updates\nversion: 1\nsteps:\n"
                      "  - {name: only, handler: {callable: builtin.noop}}\n";
    tk_template_t *t3;
    assert_int_equal(tk_template_load_string(bad, strlen(bad), "c", NULL, NULL, &t3, &err), TK_OK);
    assert_int_equal(tk_template_register(c, t3, &err), TK_EDB);
    assert_string_equal(err.sqlstate, "23514");
    assert_non_null(strstr(err.message, "could not register template updates/x_forbidden 1: "));
    tk_template_free(t3);
    tk_test_exec(pg, "ALTER TABLE named_tasks DROP CONSTRAINT no_x");
    PQfinish(pg);
    tk_conn_close(c);
}

/* tasker.create_task reads the stored JSON: check what it builds from it. */
static void test_create_task_from_template(void **state)
{
    (void)state;
    tk_conn_t *c = open_conn();
    PGconn *pg = tk_test_connect(db_url);
    tk_error_t err;
    assert_int_equal(tk_template_set_register(c, examples, &err), TK_OK);

    tk_test_exec(pg, "CREATE TEMP TABLE t1 AS SELECT tasker.create_task('{\"namespace\":"
                     " \"linear_workflow\", \"name\": \"mathematical_sequence\", \"version\":"
                     " \"1.0.0\", \"context\": {\"even_number\": 6}}') AS r");
    char task[64], sql[512];
    snprintf(task, sizeof(task), "%s", tk_test_value(pg, "SELECT r->>'task_uuid' FROM t1"));
    assert_true(strlen(task) == 36);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM workflow_steps WHERE task_uuid = '%s'"
             " AND handler_callable = 'builtin.square' AND max_attempts = 3 AND retryable"
             " AND inputs = '{}' AND timeout_seconds IS NULL",
             task);
    assert_int_equal(tk_test_count(pg, sql), 4);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM workflow_step_edges e JOIN workflow_steps s"
             " ON s.workflow_step_uuid = e.to_step_uuid WHERE s.task_uuid = '%s'",
             task);
    assert_int_equal(tk_test_count(pg, sql), 3);
    snprintf(sql, sizeof(sql),
             "SELECT n.name FROM workflow_steps s JOIN named_steps n USING (named_step_uuid)"
             " WHERE s.task_uuid = '%s' AND s.state = 'enqueued'",
             task);
    assert_string_equal(tk_test_value(pg, sql), "linear_step_1");

    /* order_fulfillment: redundant edges are all created; process_payment has 2 attempts. */
    tk_test_exec(pg, "CREATE TEMP TABLE t2 AS SELECT tasker.create_task('{\"namespace\":"
                     " \"order_fulfillment\", \"name\": \"business_workflow\", \"version\":"
                     " \"1.0.0\", \"context\": {\"order_id\": \"A-1\"}}') AS r");
    snprintf(task, sizeof(task), "%s", tk_test_value(pg, "SELECT r->>'task_uuid' FROM t2"));
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM workflow_step_edges e JOIN workflow_steps s"
             " ON s.workflow_step_uuid = e.to_step_uuid WHERE s.task_uuid = '%s'",
             task);
    assert_int_equal(tk_test_count(pg, sql), 6);
    snprintf(sql, sizeof(sql),
             "SELECT s.max_attempts FROM workflow_steps s JOIN named_steps n"
             " USING (named_step_uuid) WHERE s.task_uuid = '%s' AND n.name = 'process_payment'",
             task);
    assert_string_equal(tk_test_value(pg, sql), "2");

    /* retry_exhaustion: the initialization becomes the step's inputs, typed. */
    tk_test_exec(pg, "CREATE TEMP TABLE t3 AS SELECT tasker.create_task('{\"namespace\":"
                     " \"retry_workflow\", \"name\": \"retry_exhaustion_test\", \"version\":"
                     " \"1.0.0\", \"context\": {}}') AS r");
    snprintf(task, sizeof(task), "%s", tk_test_value(pg, "SELECT r->>'task_uuid' FROM t3"));
    snprintf(sql, sizeof(sql),
             "SELECT jsonb_typeof(inputs->'fail_times') || ' ' || (inputs->>'fail_times')"
             " || ' ' || max_attempts FROM workflow_steps WHERE task_uuid = '%s'",
             task);
    assert_string_equal(tk_test_value(pg, sql), "number -1 3");
    PQfinish(pg);
    tk_conn_close(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_examples),
        cmocka_unit_test(test_register_update),
        cmocka_unit_test(test_create_task_from_template),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
