/*
 * test_host_worker.c - the embedding API of tasker/worker.h, as the Ruby and Python bindings
 * use it: a host thread takes steps with tk_host_worker_next, ends them with the JSON-text
 * functions (and tk_step_set_error_code) and hands them back with tk_host_worker_done, which
 * reports the result on that thread and makes the step it readied that thread's next. Also:
 * tk_host_worker_port reports the health port chosen for worker.port=0, and
 * tk_host_worker_wake ends waits in progress at once; tk_host_worker_close ends every wait;
 * a host handler's timeout is reported without it, and stopping fails what the host never took.
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

/* A host worker serving host.first and host.second with the templates beside this file, on
 * the database `url`, with up to two more settings (NULL: none) and /health if asked. */
static tk_host_worker_t *start_worker(const char *url, const char *extra1, const char *extra2,
                                      bool health)
{
    char db_setting[512], tpl_setting[1100];
    snprintf(db_setting, sizeof(db_setting), "database.url=%s", url);
    snprintf(tpl_setting, sizeof(tpl_setting), "worker.templates=%s", templates_dir());
    const char *settings[] = {db_setting, tpl_setting, extra1, extra2, NULL};
    const char *handlers[] = {"host.first", "host.second", NULL};
    tk_host_worker_opts_t opts = {
        .settings = settings, .host_handlers = handlers, .serve_health = health};
    tk_host_worker_t *w;
    tk_error_t err;
    if (tk_host_worker_start(&opts, &w, &err) != TK_OK)
        fail_msg("start: %s", err.message);
    return w;
}

static void test_host_runs_steps(void **state)
{
    (void)state;
    char *url = tk_test_db_create("it_host_worker");
    tk_host_worker_t *w = start_worker(url, "worker.poll_interval_ms=50", NULL, false);
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

    /* done() reported the result on this thread and took the child it made ready: the child
     * is already this thread's next step, with no wait, and the result is stored (once the
     * report's commit, perhaps still under way, is through) */
    assert_int_equal(tk_host_worker_next(w, 0, &step), TK_OK);
    for (int waited = 0;
         strcmp(tk_test_value(pg, "SELECT string_agg(state, ',' ORDER BY state) FROM "
                                  "workflow_steps"),
                "complete,in_progress") != 0;
         waited += 10) {
        if (waited > 5000)
            fail_msg("the first result was not stored within 5 s");
        usleep(10000);
    }
    assert_string_equal(tk_step_name(step), "second");
    assert_string_equal(tk_step_dependencies_json(step), "{\"first\":{\"value\":49}}");
    assert_string_equal(tk_step_parents_json(step), "[\"first\"]");
    tk_step_set_error_code(step, "TOO_EARLY"); /* no failure yet: ignored */
    tk_step_fail(step, "RuntimeError", "host exception", false);
    assert_int_equal(tk_step_set_backtrace_json(step, "[\"a.rb:1\",\"b.rb:2\"]"), TK_OK);
    tk_step_set_error_code(step, "FIRST");
    tk_step_set_error_code(step, "CARD_DECLINED"); /* the last one wins */
    tk_host_worker_done(w, step);

    /* the permanent failure was applied as it was reported: the task ended in error */
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
    tk_host_worker_t *w = start_worker(url, "worker.port=0", "worker.bind=127.0.0.1", true);

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

/* Poll `sql` (a count) until it equals `want`, for up to 10 s. */
static long await_count(PGconn *pg, const char *sql, long want)
{
    long n = -1;
    for (int i = 0; i < 400 && (n = tk_test_count(pg, sql)) != want; i++)
        tk_sleep_ms(25);
    return n;
}

/* A host handler past its timeout is reported as handler_timeout by the runtime, and the
 * result handed back late is dropped. Stopping fails the steps queued for the host as
 * retryable worker_stopping at once instead of leaving them to their leases. */
static void test_timeout_and_stop(void **state)
{
    (void)state;
    char *url = tk_test_db_create("it_host_worker_stop");
    tk_host_worker_t *w = start_worker(url, "worker.handler_timeout_ms=300", NULL, false);
    PGconn *pg = tk_test_connect(url);
    for (int n = 1; n <= 2; n++) {
        char sql[256];
        snprintf(sql, sizeof(sql),
                 "SELECT tasker.create_task('{\"namespace\":\"host_test\",\"name\":"
                 "\"host_flow\",\"version\":\"1.0.0\",\"context\":{\"n\":%d}}')",
                 n);
        PQclear(tk_test_query(pg, sql));
    }
    /* both first steps claimed: one for this thread, one left queued for the host */
    const char *running = "SELECT count(*) FROM workflow_steps WHERE state = 'in_progress'";
    assert_int_equal(await_count(pg, running, 2), 2);
    tk_step_t *slow;
    assert_int_equal(tk_host_worker_next(w, 10000, &slow), TK_OK);

    const char *timed_out = "SELECT count(*) FROM workflow_steps WHERE "
                            "results->'error'->>'error_type' = 'handler_timeout'";
    assert_int_equal(await_count(pg, timed_out, 1), 1);
    assert_int_equal(tk_step_succeed_json(slow, "{\"late\": true}"), TK_OK);
    tk_host_worker_done(w, slow); /* dropped: the timeout was reported */
    assert_int_equal(tk_test_count(pg, "SELECT count(*) FROM workflow_steps WHERE "
                                       "results->'result' ? 'late'"),
                     0);
    assert_int_equal(tk_test_count(pg, running), 1);

    int64_t start = tk_clock_ms();
    tk_host_worker_close(w);
    tk_host_worker_stop(w);
    assert_true(tk_clock_ms() - start < 5000);
    assert_int_equal(tk_test_count(pg, running), 0);
    assert_int_equal(tk_test_count(pg, "SELECT count(*) FROM workflow_steps WHERE "
                                       "results->'error'->>'error_type' = 'worker_stopping' AND "
                                       "(results->'error'->>'retryable')::boolean"),
                     1);
    PQfinish(pg);
    free(url);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host_runs_steps),
        cmocka_unit_test(test_port_and_wake),
        cmocka_unit_test(test_timeout_and_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
