/*
 * test_orchestrator_cadence.c - when the orchestrator's two loops query.
 *
 * The results loop looks for result messages (tasker.process_step_results) every
 * orchestration.poll_interval_ms when polling, and in hybrid mode at once on a notification,
 * at the moment a delayed message becomes visible, and otherwise only at the polling period.
 * It wakes every 250 ms to notice a stop request; those wake-ups must not query (they used
 * to: four rounds a second whatever the interval).
 *
 * The sweeper runs tasker.sweep every sweep_interval_ms, but its two parts whose cost grows
 * with a backlog (stuck tasks, lost messages: sql/0033) only every tenth of
 * stuck_task_seconds; those parts still run, so a lost message is sent again by the sweeper
 * thread itself.
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
    db_url = tk_test_db_create("it_orchestrator_cadence");
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

static tk_orchestrator_t *start_with(tk_config_mode_t mode, int poll_interval_ms,
                                     int sweep_interval_ms, int stuck_task_seconds)
{
    tk_orchestrator_opts_t opts = {
        .database_url = db_url,
        .mode = mode,
        .poll_interval_ms = poll_interval_ms,
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

/* The results loop alone: no sweeper. */
static tk_orchestrator_t *start(tk_config_mode_t mode, int poll_interval_ms)
{
    return start_with(mode, poll_interval_ms, 0, 60);
}

/* The sweeper, with a results loop that polls once a minute. */
static tk_orchestrator_t *start_sweeper(int sweep_interval_ms, int stuck_task_seconds)
{
    return start_with(TK_CONFIG_MODE_POLLING, 60000, sweep_interval_ms, stuck_task_seconds);
}

static uint64_t rounds(tk_orchestrator_t *o)
{
    tk_orchestrator_stats_t st;
    tk_orchestrator_stats(o, &st);
    return st.result_rounds;
}

/* Wait up to `ms` for at least `n` rounds; returns the count then. */
static uint64_t await_rounds(tk_orchestrator_t *o, uint64_t n, int ms)
{
    int64_t deadline = tk_clock_ms() + ms;
    while (rounds(o) < n && tk_clock_ms() < deadline)
        tk_sleep_ms(10);
    return rounds(o);
}

/* A notification on the orchestration queue's channel, as tasker_mq.send makes it. */
static void notify(const char *payload)
{
    const char *params[] = {payload};
    PQclear(
        tk_test_queryp(pg,
                       "SELECT pg_notify(tasker_mq.queue_channel('orchestration_step_results'), "
                       "$1)",
                       1, params));
}

static void test_polling_keeps_its_interval(void **state)
{
    (void)state;
    tk_orchestrator_t *o = start(TK_CONFIG_MODE_POLLING, 1000);
    tk_sleep_ms(2300);
    uint64_t n = rounds(o);
    tk_orchestrator_stop(o);
    /* rounds at about 0, 1 and 2 s; four a second would give about 10 */
    if (n < 2 || n > 4)
        fail_msg("%llu rounds in 2.3 s with a 1 s polling period", (unsigned long long)n);
}

static void test_hybrid_rounds_on_notifications_and_due_retries(void **state)
{
    (void)state;
    tk_orchestrator_t *o = start(TK_CONFIG_MODE_HYBRID, 60000);
    assert_int_equal(await_rounds(o, 1, 5000), 1); /* the first round, at start */
    tk_sleep_ms(700);                              /* listening by now; idle: no round */
    assert_int_equal(rounds(o), 1);

    notify("{\"queue_name\": \"orchestration_step_results\"}");
    assert_int_equal(await_rounds(o, 2, 5000), 2);

    /* a message that becomes visible in 1 s (a retry): a round then, not now */
    notify("{\"queue_name\": \"orchestration_step_results\", \"delay_seconds\": 1}");
    tk_sleep_ms(400);
    assert_int_equal(rounds(o), 2);
    assert_int_equal(await_rounds(o, 3, 3000), 3);
    tk_sleep_ms(400);
    assert_int_equal(rounds(o), 3);
    tk_orchestrator_stop(o);
}

/* Sweeps every 20 ms; the full sweep every 500 ms (a tenth of 5 s): at most 5 in 2 s, which
 * stays under a third of the sweeps unless each takes over 130 ms. */
static void test_full_sweeps_every_tenth_of_the_stuck_period(void **state)
{
    (void)state;
    tk_orchestrator_t *o = start_sweeper(20, 5);
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
    tk_orchestrator_t *o = start_sweeper(100, 1);
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
        cmocka_unit_test(test_polling_keeps_its_interval),
        cmocka_unit_test(test_hybrid_rounds_on_notifications_and_due_retries),
        cmocka_unit_test(test_full_sweeps_every_tenth_of_the_stuck_period),
        cmocka_unit_test(test_a_lost_message_is_sent_again),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
