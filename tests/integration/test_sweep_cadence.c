/*
 * test_sweep_cadence.c - the orchestrator's sweeper runs tasker.sweep every sweep_interval_ms,
 * but its two parts whose cost grows with a backlog (stuck tasks, lost messages: sql/0033)
 * only every tenth of stuck_task_seconds; and those parts still run, so a lost message is
 * sent again by the sweeper thread itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/clock.h"
#include "harness.h"
#include "orchestration/orchestrator.h"

static char *db_url;
static PGconn *pg;

static int setup(void **state)
{
    (void)state;
    db_url = tk_test_db_create("it_sweep_cadence");
    pg = tk_test_connect(db_url);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    PQfinish(pg);
    free(db_url);
    return 0;
}

static tk_orchestrator_t *start(int sweep_interval_ms, int stuck_task_seconds)
{
    tk_orchestrator_opts_t opts = {
        .database_url = db_url,
        .mode = TK_CONFIG_MODE_POLLING,
        .poll_interval_ms = 60000,
        .result_batch_size = 20,
        .sweep_interval_ms = sweep_interval_ms,
        .stuck_task_seconds = stuck_task_seconds,
        .backoff = {1, 2, 30, 0},
    };
    tk_orchestrator_t *o;
    tk_error_t err;
    if (tk_orchestrator_start(&opts, &o, &err) != TK_OK)
        fail_msg("orchestrator: %s", err.message);
    return o;
}

/* Sweeps every 20 ms; the full sweep every 500 ms (a tenth of 5 s): at most 5 in 2 s, which
 * stays under a third of the sweeps unless each takes over 130 ms. */
static void test_full_sweeps_every_tenth_of_the_stuck_period(void **state)
{
    (void)state;
    tk_orchestrator_t *o = start(20, 5);
    tk_sleep_ms(2000);
    tk_orchestrator_stats_t st;
    tk_orchestrator_stats(o, &st);
    tk_orchestrator_stop(o);
    print_message("%llu full sweeps of %llu in 2 s\n", (unsigned long long)st.full_sweeps,
                  (unsigned long long)st.sweeps);
    /* before sql/0033 every sweep was full */
    if (st.full_sweeps < 2 || st.full_sweeps * 3 > st.sweeps)
        fail_msg("%llu full sweeps of %llu in 2 s", (unsigned long long)st.full_sweeps,
                 (unsigned long long)st.sweeps);
}

/* A one-step task whose queue message was purged: the full sweep sends it again. */
static void test_a_lost_message_is_sent_again(void **state)
{
    (void)state;
    tk_test_exec(pg, "SELECT tasker.register_template('{\"name\": \"one\", \"namespace_name\": "
                     "\"cadence\", \"version\": \"1.0.0\", \"steps\": [{\"name\": \"a\", "
                     "\"handler\": {\"callable\": \"test.a\"}}]}')");
    tk_test_exec(pg, "SELECT tasker.create_task('{\"namespace\": \"cadence\", \"name\": \"one\", "
                     "\"version\": \"1.0.0\", \"context\": {}}')");
    tk_test_exec(pg, "DELETE FROM tasker_mq.messages WHERE queue_name = 'worker_cadence_queue'");
    tk_test_exec(pg, "UPDATE tasker.workflow_steps SET state_entered_at = now() - interval '1 h'");
    tk_orchestrator_t *o = start(100, 1);
    int64_t deadline = tk_clock_ms() + 5000;
    long n = 0;
    while (n == 0 && tk_clock_ms() < deadline) {
        tk_sleep_ms(50);
        n = tk_test_count(pg, "SELECT count(*) FROM tasker_mq.messages "
                              "WHERE queue_name = 'worker_cadence_queue'");
    }
    tk_orchestrator_stop(o);
    assert_int_equal(n, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_sweeps_every_tenth_of_the_stuck_period),
        cmocka_unit_test(test_a_lost_message_is_sent_again),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
