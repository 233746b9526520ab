/*
 * test_notified_queues.c - a claim woken by notifications walks only the queues they name
 * (src/worker/README.md, "Claim"): with a message waiting unannounced in one queue (inserted
 * without NOTIFY) and the worker in event_driven mode, tasks of another namespace run while
 * that message stays; a notification naming its queue then gets it claimed (it names no
 * step, so the claim drops it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "e2e.h"
#include "harness.h"

#define UNANNOUNCED                                                                                \
    "SELECT count(*) FROM tasker_mq.messages WHERE queue_name = 'worker_e2e_chain_queue'"

static void run_overlap_task(int port, int i)
{
    char context[32];
    snprintf(context, sizeof(context), "{\"i\": %d}", i);
    json_t *t = e2e_create_task(port, "e2e_overlap", "overlap", context, 30000, 201);
    assert_string_equal(json_string_value(json_object_get(t, "status")), "complete");
    json_decref(t);
}

static void test_claims_walk_the_notified_queues(void **state)
{
    (void)state;
    char *db_url = tk_test_db_create("e2e_notified_queues");
    const char *extra[] = {"--set", "worker.mode=event_driven", NULL};
    e2e_proc_t server = e2e_start_server(db_url, "server", NULL);
    e2e_proc_t worker =
        e2e_start_worker(db_url, e2e_source_path("tests/e2e/templates"), "worker", extra);
    PGconn *pg = tk_test_connect(db_url);
    run_overlap_task(server.port, 0); /* the worker is past its first claim of every queue */

    tk_test_exec(pg, "INSERT INTO tasker_mq.messages (queue_name, vt, message) "
                     "VALUES ('worker_e2e_chain_queue', now(), jsonb_build_object("
                     "'step_uuid', gen_random_uuid(), 'handler', 'builtin.sleep'))");
    for (int i = 1; i <= 3; i++)
        run_overlap_task(server.port, i);
    assert_int_equal(tk_test_count(pg, UNANNOUNCED), 1);

    tk_test_exec(pg,
                 "SELECT pg_notify('pgmq_message_ready.e2e_chain', "
                 "'{\"queue_name\": \"worker_e2e_chain_queue\", \"namespace\": \"e2e_chain\"}')");
    for (int waited = 0; tk_test_count(pg, UNANNOUNCED) != 0; waited += 20) {
        if (waited > 10000)
            fail_msg("the announced queue was not claimed from within 10 s");
        e2e_sleep_ms(20);
    }
    PQfinish(pg);
    e2e_stop(&worker);
    e2e_stop(&server);
    free(db_url);
}

int main(void)
{
    e2e_init("notified_queues");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_claims_walk_the_notified_queues),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
