/*
 * test_host_worker.c - the embedding API of tasker/worker.h, as the Ruby and Python bindings
 * use it: a host thread takes steps with tk_host_worker_next, ends them with the JSON-text
 * functions (and tk_step_set_error_code), hands them back; the C runtime reports results.
 * The orchestrator's side is driven through SQL (tasker.process_step_results). Also:
 * tk_host_worker_port reports the health port chosen for worker.port=0, and
 * tk_host_worker_wake ends waits in progress at once; tk_host_worker_close ends every wait.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/clock.h"
#include "harness.h"
#include "tasker/worker.h"

static const char *templates_dir(void)
{
    static char dir[1024];
    snprintf(dir, sizeof(dir), "%s", __FILE__);
    char *slash = strrchr(dir, '/');
    snprintf(slash, sizeof(dir) - (size_t)(slash - dir), "/templates");
    return dir;
}

static void process_results(PGconn *pg)
{
    PQclear(tk_test_query(pg, "SELECT * FROM tasker.process_step_results(10, "
                              "ROW(0, 2, 60, 0)::tasker.backoff_policy)"));
}

static void test_host_runs_steps(void **state)
{
    (void)state;
    char *url = tk_test_db_create("it_host_worker");
    char db_setting[512], tpl_setting[1100];
    snprintf(db_setting, sizeof(db_setting), "database.url=%s", url);
    snprintf(tpl_setting, sizeof(tpl_setting), "worker.templates=%s", templates_dir());
    const char *settings[] = {db_setting, tpl_setting, "worker.poll_interval_ms=50", NULL};
    const char *handlers[] = {"host.first", "host.second", NULL};
    tk_host_worker_opts_t opts = {.settings = settings, .host_handlers = handlers};
    tk_host_worker_t *w;
    tk_error_t err;
    if (tk_host_worker_start(&opts, &w, &err) != TK_OK)
        fail_msg("start: %s", err.message);
    assert_non_null(tk_host_worker_id(w));
    assert_int_equal(tk_host_worker_port(w), 0); /* no health endpoint */

    PGconn *pg = tk_test_connect(url);
    const char *task = tk_test_value(
        pg, "SELECT tasker.create_task('{\"namespace\":\"host_test\",\"name\":\"host_flow\","
            "\"version\":\"1.0.0\",\"context\":{\"n\":7}}')->>'task_uuid'");
    char task_uuid[40];
    snprintf(task_uuid, sizeof(task_uuid), "%s", task);

    tk_step_t *step;
    assert_int_equal(tk_host_worker_next(w, 10000, &step), TK_OK);
    assert_string_equal(tk_step_name(step), "first");
    assert_string_equal(tk_step_handler_name(step), "host.first");
    assert_string_equal(tk_step_context_json(step), "{\"n\":7}");
    assert_string_equal(tk_step_config_json(step), "{\"greeting\":\"hi\"}");
    assert_string_equal(tk_step_parents_json(step), "[]");
    assert_int_equal(tk_step_succeed_json(step, "not json"), TK_EINVAL);
    assert_int_equal(tk_step_succeed_json(step, "{\"value\": 49}"), TK_OK);
    assert_int_equal(tk_step_set_metadata_json(step, "{\"lang\":\"test\"}"), TK_OK);
    tk_host_worker_done(w, step);

    /* wait for the result to be reported, then let orchestration queue the child */
    for (int i = 0; i < 200 && tk_test_count(pg, "SELECT count(*) FROM workflow_steps WHERE "
                                                 "state = 'enqueued_for_orchestration'") == 0;
         i++)
        tk_sleep_ms(25);
    process_results(pg);
    assert_int_equal(tk_host_worker_next(w, 10000, &step), TK_OK);
    assert_string_equal(tk_step_name(step), "second");
    assert_string_equal(tk_step_dependencies_json(step), "{\"first\":{\"value\":49}}");
    assert_string_equal(tk_step_parents_json(step), "[\"first\"]");
    tk_step_set_error_code(step, "TOO_EARLY"); /* no failure yet: ignored */
    tk_step_fail(step, "RuntimeError", "host exception", false);
    assert_int_equal(tk_step_set_backtrace_json(step, "[\"a.rb:1\",\"b.rb:2\"]"), TK_OK);
    tk_step_set_error_code(step, "FIRST");
    tk_step_set_error_code(step, "CARD_DECLINED"); /* the last one wins */
    tk_host_worker_done(w, step);
    for (int i = 0;
         i < 200 && tk_test_count(pg, "SELECT count(*) FROM workflow_steps WHERE "
                                      "state = 'enqueued_as_error_for_orchestration'") == 0;
         i++)
        tk_sleep_ms(25);
    process_results(pg);

    const char *p[] = {task_uuid};
    assert_string_equal(tk_test_valuep(pg, "SELECT state FROM tasks WHERE task_uuid = $1", 1, p),
                        "error");
    assert_string_equal(tk_test_value(pg,
                                      "SELECT results->'metadata'->'custom'->>'lang' FROM "
                                      "workflow_steps WHERE results->'result'->>'value' = '49'"),
                        "test");
    assert_string_equal(tk_test_value(pg, "SELECT results->'error'->>'error_type' || ' ' || "
                                          "(results->'error'->'backtrace'->>1) FROM "
                                          "workflow_steps WHERE state = 'error'"),
                        "RuntimeError b.rb:2");
    /* Tasker's place for the code: metadata.error_code, not custom metadata */
    assert_string_equal(tk_test_value(pg, "SELECT (results->'metadata'->>'error_code') || ' ' || "
                                          "coalesce(results->'metadata'->'custom'->>'error_code', "
                                          "'-') FROM workflow_steps WHERE state = 'error'"),
                        "CARD_DECLINED -");
    assert_string_equal(tk_test_value(pg, "SELECT coalesce(results->'metadata'->>'error_code', "
                                          "'none') FROM workflow_steps WHERE "
                                          "results->'result'->>'value' = '49'"),
                        "none");

    /* nothing else queued: next() times out; after stop it reports shutdown */
    assert_int_equal(tk_host_worker_next(w, 100, &step), TK_ETIMEDOUT);
    tk_host_worker_stop(w);
    PQfinish(pg);
    free(url);
}

typedef struct waiter_s {
    tk_host_worker_t *w;
    int rc;
    int64_t waited_ms;
} waiter_t;

static void *wait_for_step(void *arg)
{
    waiter_t *wt = arg;
    tk_step_t *step = NULL;
    int64_t start = tk_clock_ms();
    wt->rc = tk_host_worker_next(wt->w, 20000, &step);
    wt->waited_ms = tk_clock_ms() - start;
    return NULL;
}

/* worker.port=0: the port the system chose, and /health answers there. wake: three threads
 * waiting 20 s each return TK_ETIMEDOUT at once; later waits are not affected. close: waits
 * in progress and later ones return TK_ESHUTDOWN at once. */
static void test_port_and_wake(void **state)
{
    (void)state;
    char *url = tk_test_db_create("it_host_worker_wake");
    char db_setting[512], tpl_setting[1100];
    snprintf(db_setting, sizeof(db_setting), "database.url=%s", url);
    snprintf(tpl_setting, sizeof(tpl_setting), "worker.templates=%s", templates_dir());
    const char *settings[] = {db_setting, tpl_setting, "worker.port=0", "worker.bind=127.0.0.1",
                              NULL};
    const char *handlers[] = {"host.first", "host.second", NULL};
    tk_host_worker_opts_t opts = {
        .settings = settings, .host_handlers = handlers, .serve_health = true};
    tk_host_worker_t *w;
    tk_error_t err;
    if (tk_host_worker_start(&opts, &w, &err) != TK_OK)
        fail_msg("start: %s", err.message);

    int port = tk_host_worker_port(w);
    assert_true(port > 0 && port < 65536);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    const char req[] = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert_int_equal(write(fd, req, sizeof(req) - 1), (ssize_t)(sizeof(req) - 1));
    char reply[64] = "";
    assert_true(read(fd, reply, sizeof(reply) - 1) > 12);
    close(fd);
    assert_memory_equal(reply, "HTTP/1.1 200", 12);

    waiter_t wt[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        wt[i] = (waiter_t){.w = w, .rc = 1};
        assert_int_equal(pthread_create(&th[i], NULL, wait_for_step, &wt[i]), 0);
    }
    tk_sleep_ms(300); /* let them wait */
    int64_t woke = tk_clock_ms();
    tk_host_worker_wake(w);
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(wt[i].rc, TK_ETIMEDOUT);
        assert_true(wt[i].waited_ms < 10000);
    }
    int64_t took = tk_clock_ms() - woke;
    if (took > 2000)
        fail_msg("the waits ended %lld ms after the wake", (long long)took);
    /* a wait that begins after the wake is a normal wait */
    tk_step_t *step;
    int64_t start = tk_clock_ms();
    assert_int_equal(tk_host_worker_next(w, 200, &step), TK_ETIMEDOUT);
    assert_true(tk_clock_ms() - start >= 190);
    tk_host_worker_wake(NULL); /* accepted */

    /* close: the waits in progress end with TK_ESHUTDOWN, and so does every later one, at once */
    for (int i = 0; i < 2; i++) {
        wt[i] = (waiter_t){.w = w, .rc = 1};
        assert_int_equal(pthread_create(&th[i], NULL, wait_for_step, &wt[i]), 0);
    }
    tk_sleep_ms(300);
    tk_host_worker_close(w);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(wt[i].rc, TK_ESHUTDOWN);
        assert_true(wt[i].waited_ms < 10000);
    }
    start = tk_clock_ms();
    assert_int_equal(tk_host_worker_next(w, 20000, &step), TK_ESHUTDOWN);
    assert_true(tk_clock_ms() - start < 10000);
    tk_host_worker_close(w); /* idempotent */
    tk_host_worker_close(NULL);
    tk_host_worker_stop(w);
    free(url);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host_runs_steps),
        cmocka_unit_test(test_port_and_wake),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
