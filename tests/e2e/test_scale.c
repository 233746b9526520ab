/*
 * test_scale.c - two orchestration servers and two workers on one database run 200 linear
 * tasks (800 steps) submitted to both servers at once: every task completes, every step is
 * claimed exactly once and completed exactly once, both workers and both servers took part.
 * Then 100 trees and 100 diamonds at once, so that sibling steps finish together on both
 * workers and their reports meet at the task's lock (sql/0031): every join starts once.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "e2e.h"
#include "harness.h"

#define TASKS  200
#define LINEAR "mathematical_sequence"

static char uuids[TASKS][40];

typedef struct submitter_s {
    pthread_t thread;
    int port;
    int first; /* submits tasks first, first + 2, ... */
    const char *ns, *name;
} submitter_t;

static void *submit(void *arg)
{
    submitter_t *s = arg;
    for (int i = s->first; i < TASKS; i += 2) {
        char context[64];
        snprintf(context, sizeof(context), "{\"even_number\": 2, \"n\": %d}", i);
        json_t *t = e2e_create_task(s->port, s->ns, s->name, context, 0, 201);
        snprintf(uuids[i], sizeof(uuids[i]), "%s",
                 json_string_value(json_object_get(t, "task_uuid")));
        json_decref(t);
    }
    return NULL;
}

/* Two orchestration servers and two workers (examples/templates) on a new database. */
typedef struct stack_s {
    char *db_url;
    e2e_proc_t servers[2], workers[2];
} stack_t;

static void stack_start(stack_t *st, const char *db_name)
{
    st->db_url = tk_test_db_create(db_name);
    st->servers[0] = e2e_start_server(st->db_url, "server-a", NULL);
    st->servers[1] = e2e_start_server(st->db_url, "server-b", NULL);
    const char *templates = e2e_source_path("examples/templates");
    st->workers[0] = e2e_start_worker(st->db_url, templates, "worker-a", NULL);
    st->workers[1] = e2e_start_worker(st->db_url, templates, "worker-b", NULL);
}

static void stack_stop(stack_t *st)
{
    for (int i = 0; i < 2; i++)
        e2e_stop(&st->workers[i]);
    for (int i = 0; i < 2; i++)
        e2e_stop(&st->servers[i]);
    free(st->db_url);
}

/* Run both submitters at once, then wait for every task: each must complete. */
static void submit_all(submitter_t subs[2], const e2e_proc_t servers[2])
{
    for (int i = 0; i < 2; i++)
        pthread_create(&subs[i].thread, NULL, submit, &subs[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(subs[i].thread, NULL);
    for (int i = 0; i < TASKS; i++) {
        json_t *t = e2e_get_task(servers[i % 2].port, uuids[i], 60000);
        const char *status = json_string_value(json_object_get(t, "status"));
        if (status == NULL || strcmp(status, "complete") != 0)
            fail_msg("task %d ended %s", i, status ? status : "?");
        json_decref(t);
    }
}

static void test_two_servers_two_workers(void **state)
{
    (void)state;
    stack_t st;
    stack_start(&st, "e2e_scale");

    submitter_t subs[2] = {
        {.port = st.servers[0].port, .first = 0, .ns = "linear_workflow", .name = LINEAR},
        {.port = st.servers[1].port, .first = 1, .ns = "linear_workflow", .name = LINEAR}};
    submit_all(subs, st.servers);

    PGconn *pg = tk_test_connect(st.db_url);
    assert_int_equal(tk_test_count(pg, "SELECT count(*) FROM tasks WHERE state = 'complete'"),
                     TASKS);
    assert_int_equal(tk_test_count(pg, "SELECT count(*) FROM workflow_steps"), TASKS * 4);
    /* each step claimed once, completed once, on its first attempt */
    assert_int_equal(tk_test_count(pg, "SELECT count(*) FROM workflow_steps WHERE attempts <> 1"),
                     0);
    assert_int_equal(tk_test_count(pg, "SELECT count(*) FROM (SELECT workflow_step_uuid FROM "
                                       "workflow_step_transitions WHERE event = 'start' GROUP BY "
                                       "1 HAVING count(*) <> 1) x"),
                     0);
    assert_int_equal(tk_test_count(pg, "SELECT count(*) FROM workflow_step_transitions WHERE "
                                       "to_state = 'complete'"),
                     TASKS * 4);
    assert_int_equal(tk_test_count(pg, "SELECT count(*) FROM tasker_mq.messages"), 0);
    /* both workers ran steps */
    assert_int_equal(tk_test_count(pg, "SELECT count(DISTINCT metadata->>'worker_id') FROM "
                                       "workflow_step_transitions WHERE event = 'start'"),
                     2);
    /* the linear result is right everywhere: 2 -> 4 -> 16 -> 256 -> 65536 */
    assert_int_equal(tk_test_count(pg, "SELECT count(*) FROM workflow_steps ws JOIN named_steps n "
                                       "USING (named_step_uuid) WHERE n.name = 'linear_step_4' "
                                       "AND (results->'result'->>'value')::bigint = 65536"),
                     TASKS);
    PQfinish(pg);

    stack_stop(&st);
}

/* Trees (a 4-way join) and diamonds at once on two workers: sibling reports meet at their
 * task's lock, the later ones stored without it and followed up; every join starts once. */
static void test_parallel_joins(void **state)
{
    (void)state;
    stack_t st;
    stack_start(&st, "e2e_scale_joins");

    submitter_t subs[2] = {{.port = st.servers[0].port,
                            .first = 0,
                            .ns = "tree_workflow",
                            .name = "hierarchical_tree"},
                           {.port = st.servers[1].port,
                            .first = 1,
                            .ns = "diamond_workflow",
                            .name = "diamond_pattern"}};
    submit_all(subs, st.servers);

    PGconn *pg = tk_test_connect(st.db_url);
    assert_int_equal(tk_test_count(pg, "SELECT count(*) FROM workflow_steps"),
                     TASKS / 2 * 8 + TASKS / 2 * 4);
    assert_int_equal(tk_test_count(pg, "SELECT count(*) FROM workflow_steps WHERE attempts <> 1 "
                                       "OR state <> 'complete'"),
                     0);
    /* each step queued (or taken as continuation) once, started once, completed once */
    assert_int_equal(tk_test_count(pg, "SELECT count(*) FROM (SELECT workflow_step_uuid, to_state "
                                       "FROM workflow_step_transitions GROUP BY 1, 2 "
                                       "HAVING count(*) <> 1) x"),
                     0);
    assert_int_equal(tk_test_count(pg, "SELECT count(*) FROM tasker_mq.messages"), 0);
    /* diamond: 2 -> 4 -> 16, 16 -> (16 * 16)^2 */
    assert_int_equal(tk_test_count(pg, "SELECT count(*) FROM workflow_steps ws JOIN named_steps n "
                                       "USING (named_step_uuid) WHERE n.name = 'diamond_end' "
                                       "AND (results->'result'->>'value')::bigint = 65536"),
                     TASKS / 2);
    /* how many joins a follow-up started (varies with timing: reported, not asserted) */
    long joins = tk_test_count(pg, "SELECT count(*) FROM workflow_steps ws WHERE (SELECT count(*) "
                                   "FROM workflow_step_edges e WHERE e.to_step_uuid = "
                                   "ws.workflow_step_uuid) > 1");
    long followed = tk_test_count(
        pg, "SELECT count(*) FROM workflow_steps ws JOIN workflow_step_transitions j ON "
            "j.workflow_step_uuid = ws.workflow_step_uuid AND j.to_state = 'enqueued' WHERE "
            "(SELECT count(*) FROM workflow_step_edges e WHERE e.to_step_uuid = "
            "ws.workflow_step_uuid) > 1 AND NOT EXISTS (SELECT 1 FROM workflow_step_edges e "
            "JOIN workflow_step_transitions p ON p.workflow_step_uuid = e.from_step_uuid AND "
            "p.to_state = 'complete' WHERE e.to_step_uuid = ws.workflow_step_uuid AND p.xmin = "
            "j.xmin)");
    print_message("joins started by a follow-up: %ld of %ld\n", followed, joins);
    PQfinish(pg);

    stack_stop(&st);
}

int main(void)
{
    e2e_init("scale");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_servers_two_workers),
        cmocka_unit_test(test_parallel_joins),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
