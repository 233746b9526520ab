/*
 * suite_floor.c - `tasker bench floor`: what this machine and its PostgreSQL cost at the
 * least, measured in the same run as everything else so that other figures can be given as
 * multiples of it (and compared across machines):
 *
 *   select1     a prepared `SELECT 1` on one connection: one client/server round trip
 *   commit      a prepared single-row `UPDATE ... WHERE id = 1` in autocommit: one round trip
 *               plus a durable commit (WAL write and flush when fsync/synchronous_commit are on)
 *   notify_raw  `NOTIFY bench_floor` on one connection, woken listener on another: from the
 *               moment the NOTIFY is sent to the moment the listening thread, blocked in
 *               poll() on its socket, has the notification in hand. The NOTIFY transaction
 *               writes no WAL before its commit record, so PostgreSQL does not wait for a
 *               flush: this floor holds no fsync (a queue send, which INSERTs, does).
 *
 * The full suite also times SELECT 1 with the client thread and its backend pinned to one CPU,
 * then to two different CPUs (sched_setaffinity; a local server over a Unix socket only, and
 * both pinnings undone after). On a VM whose idle vCPUs halt, waking the other vCPU costs far
 * more than the round trip itself, and the plain SELECT 1 line follows wherever the scheduler
 * put the two processes; these lines show both values.
 */
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench.h"
#include "common/clock.h"
#include "common/error_int.h"

/* ---- a listening connection woken in its own thread ---------------------------------------- */

typedef struct raw_listener_s {
    PGconn *pg;
    int stop_pipe[2];
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t wakes;
    int64_t wake_us;
    bool failed;
} raw_listener_t;

static void *raw_listener_main(void *arg)
{
    raw_listener_t *l = arg;
    for (;;) {
        struct pollfd fds[2] = {{PQsocket(l->pg), POLLIN, 0}, {l->stop_pipe[0], POLLIN, 0}};
        if (poll(fds, 2, -1) < 0)
            continue;
        if (fds[1].revents != 0)
            break;
        if (PQconsumeInput(l->pg) == 0) {
            pthread_mutex_lock(&l->mu);
            l->failed = true;
            pthread_cond_broadcast(&l->cv);
            pthread_mutex_unlock(&l->mu);
            break;
        }
        PGnotify *n;
        while ((n = PQnotifies(l->pg)) != NULL) {
            int64_t now = tk_clock_us();
            PQfreemem(n);
            pthread_mutex_lock(&l->mu);
            l->wake_us = now;
            l->wakes++;
            pthread_cond_broadcast(&l->cv);
            pthread_mutex_unlock(&l->mu);
        }
    }
    return NULL;
}

/* Wait until the listener has seen more than `before` wake-ups (up to 5 s); the time of the
 * latest, or -1 on timeout or failure. */
static int64_t raw_listener_wait(raw_listener_t *l, uint64_t before)
{
    int64_t deadline = tk_clock_ms() + 5000;
    int64_t t = -1;
    pthread_mutex_lock(&l->mu);
    while (l->wakes == before && !l->failed && tk_clock_ms() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&l->cv, &l->mu, &ts);
    }
    if (l->wakes != before)
        t = l->wake_us;
    pthread_mutex_unlock(&l->mu);
    return t;
}

static uint64_t raw_listener_count(raw_listener_t *l)
{
    pthread_mutex_lock(&l->mu);
    uint64_t n = l->wakes;
    pthread_mutex_unlock(&l->mu);
    return n;
}

/* ---- measurements -----------------------------------------------------------------------------
 */

/* Time `n` executions of prepared statement `name` (after `warm` untimed ones) into v. */
static int time_prepared(tk_bench_t *b, PGconn *pg, const char *name, const char *label, int warm,
                         int n, double *v, tk_error_t *err)
{
    for (int i = 0; i < warm + n; i++) {
        int64_t t0 = tk_clock_us();
        PGresult *res = PQexecPrepared(pg, name, 0, NULL, NULL, NULL, 0);
        int64_t t1 = tk_clock_us();
        ExecStatusType st = PQresultStatus(res);
        if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
            int rc = tk_conn_error_from_result(pg, res, err);
            PQclear(res);
            return rc;
        }
        PQclear(res);
        if (i >= warm)
            v[i - warm] = (double)(t1 - t0);
        tk_bench_progress(b, label, i + 1, warm + n);
    }
    return TK_OK;
}

static int prepare(PGconn *pg, const char *name, const char *sql, tk_error_t *err)
{
    PGresult *res = PQprepare(pg, name, sql, 0, NULL);
    int rc =
        PQresultStatus(res) == PGRES_COMMAND_OK ? TK_OK : tk_conn_error_from_result(pg, res, err);
    PQclear(res);
    return rc;
}

static int time_notify(tk_bench_t *b, tk_conn_t *sender, const char *url, const char *label,
                       int warm, int n, double *v, tk_error_t *err)
{
    raw_listener_t l;
    memset(&l, 0, sizeof(l));
    tk_conn_t *lc;
    int rc = tk_conn_open(url, "tasker-bench-listener", &lc, err);
    if (rc != TK_OK)
        return rc;
    l.pg = tk_conn_pg(lc);
    rc = tk_bench_exec(l.pg, "LISTEN bench_floor", err);
    if (rc == TK_OK && pipe(l.stop_pipe) != 0)
        rc = tk_error_set(err, TK_ESYS, "pipe failed");
    if (rc != TK_OK) {
        tk_conn_close(lc);
        return rc;
    }
    pthread_mutex_init(&l.mu, NULL);
    pthread_cond_init(&l.cv, NULL);
    PQsetnonblocking(l.pg, 1);
    if (pthread_create(&l.thread, NULL, raw_listener_main, &l) != 0) {
        rc = tk_error_set(err, TK_ESYS, "could not start the listener thread");
    } else {
        PGconn *pg = tk_conn_pg(sender);
        for (int i = 0; rc == TK_OK && i < warm + n; i++) {
            uint64_t before = raw_listener_count(&l);
            int64_t t0 = tk_clock_us();
            rc = tk_bench_exec(pg, "NOTIFY bench_floor", err);
            int64_t woke = rc == TK_OK ? raw_listener_wait(&l, before) : -1;
            if (rc == TK_OK && woke < 0)
                rc = tk_error_set(err, TK_ETIMEDOUT, "the listener was not woken within 5 s");
            if (rc == TK_OK && i >= warm)
                v[i - warm] = (double)(woke - t0);
            tk_bench_progress(b, label, i + 1, warm + n);
        }
        if (write(l.stop_pipe[1], "x", 1) < 0) {
            /* the thread then ends with the connection below */
        }
        pthread_join(l.thread, NULL);
    }
    close(l.stop_pipe[0]);
    close(l.stop_pipe[1]);
    pthread_mutex_destroy(&l.mu);
    pthread_cond_destroy(&l.cv);
    tk_conn_close(lc);
    return rc;
}

/* ---- SELECT 1 by CPU placement --------------------------------------------------------------- */

/* The pid of pg's backend when it runs on this machine (a Unix-socket connection to a
 * process named postgres), else 0. */
static pid_t local_backend(PGconn *pg)
{
    const char *host = PQhost(pg);
    pid_t pid = PQbackendPID(pg);
    if (host == NULL || host[0] != '/' || pid <= 0)
        return 0;
    char path[64], comm[32] = "";
    snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    bool named = fgets(comm, sizeof(comm), f) != NULL && strncmp(comm, "postgres", 8) == 0;
    fclose(f);
    return named ? pid : 0;
}

/* SELECT 1 (n samples after warm) with this thread and the backend on one CPU (placed[0])
 * and on two (placed[1]). False, with the reason in why, when they cannot be pinned; every
 * pinning is undone. */
static bool time_select1_placement(tk_bench_t *b, PGconn *pg, int warm, int n,
                                   tk_bench_stats_t placed[2], char *why, size_t cap)
{
    pid_t backend = local_backend(pg);
    cpu_set_t mine, theirs, allowed;
    if (backend == 0) {
        snprintf(why, cap, "the server is not a local process reached over a Unix socket");
        return false;
    }
    if (sched_getaffinity(0, sizeof(mine), &mine) != 0 ||
        sched_getaffinity(backend, sizeof(theirs), &theirs) != 0) {
        snprintf(why, cap, "cannot read the CPU affinities");
        return false;
    }
    CPU_AND(&allowed, &mine, &theirs);
    int cpus[2], found = 0;
    for (int c = 0; c < CPU_SETSIZE && found < 2; c++)
        if (CPU_ISSET(c, &allowed))
            cpus[found++] = c;
    if (found < 2) {
        snprintf(why, cap, "fewer than two CPUs are open to both processes");
        return false;
    }
    double *v = calloc((size_t)n, sizeof(double));
    bool ok = v != NULL;
    if (!ok)
        snprintf(why, cap, "out of memory");
    tk_error_t err;
    for (int k = 0; ok && k < 2; k++) {
        cpu_set_t me_set, backend_set;
        CPU_ZERO(&me_set);
        CPU_ZERO(&backend_set);
        CPU_SET(cpus[0], &me_set);
        CPU_SET(cpus[k], &backend_set);
        if (sched_setaffinity(0, sizeof(me_set), &me_set) != 0 ||
            sched_setaffinity(backend, sizeof(backend_set), &backend_set) != 0) {
            snprintf(why, cap, "cannot pin the processes to CPUs");
            ok = false;
            break;
        }
        if (time_prepared(b, pg, "floor_select1",
                          k == 0 ? "floor SELECT 1, one CPU" : "floor SELECT 1, two CPUs", warm, n,
                          v, &err) != TK_OK) {
            snprintf(why, cap, "%s", err.message);
            ok = false;
            break;
        }
        tk_bench_stats(v, (size_t)n, &placed[k]);
    }
    sched_setaffinity(backend, sizeof(theirs), &theirs);
    sched_setaffinity(0, sizeof(mine), &mine);
    free(v);
    return ok;
}

int tk_bench_floor(tk_bench_t *b, bool full)
{
    int n_select = full ? tk_bench_count(b, b->opts.iterations, 5000, 1000) : 1000;
    int n_commit = full ? tk_bench_count(b, b->opts.iterations, 2000, 300) : 300;
    int n_notify = full ? tk_bench_count(b, b->opts.iterations, 2000, 300) : 300;
    int warm = 50;
    if (!full)
        tk_bench_note(b, "measuring the floor (SELECT 1, commit, NOTIFY) for the multiples");
    else if (!b->tty)
        tk_bench_note(b, "floor: %d SELECT 1, %d commits, %d notifications", n_select, n_commit,
                      n_notify);
    tk_error_t err;
    tk_conn_t *c;
    int rc = tk_conn_open(b->run_url, "tasker-bench", &c, &err);
    if (rc != TK_OK) {
        tk_cli_fail("floor: %s", err.message);
        return rc;
    }
    PGconn *pg = tk_conn_pg(c);
    double *v[3] = {calloc((size_t)n_select, sizeof(double)),
                    calloc((size_t)n_commit, sizeof(double)),
                    calloc((size_t)n_notify, sizeof(double))};
    if (v[0] == NULL || v[1] == NULL || v[2] == NULL)
        rc = tk_error_set(&err, TK_ENOMEM, "out of memory");
    if (rc == TK_OK)
        rc = tk_bench_exec(pg,
                           "SET client_min_messages = warning;"
                           "CREATE TABLE IF NOT EXISTS public.bench_floor "
                           "(id integer PRIMARY KEY, n bigint NOT NULL);"
                           "INSERT INTO public.bench_floor VALUES (1, 0) ON CONFLICT DO NOTHING",
                           &err);
    if (rc == TK_OK)
        rc = prepare(pg, "floor_select1", "SELECT 1", &err);
    if (rc == TK_OK)
        rc = prepare(pg, "floor_commit", "UPDATE public.bench_floor SET n = n + 1 WHERE id = 1",
                     &err);
    if (rc == TK_OK)
        rc = time_prepared(b, pg, "floor_select1", "floor SELECT 1", warm, n_select, v[0], &err);
    if (rc == TK_OK)
        rc = time_prepared(b, pg, "floor_commit", "floor commit", warm, n_commit, v[1], &err);
    if (rc == TK_OK)
        rc = time_notify(b, c, b->run_url, "floor notify", warm, n_notify, v[2], &err);
    tk_bench_stats_t placed[2];
    char unplaced[96] = "";
    bool by_placement = rc == TK_OK && full &&
                        time_select1_placement(b, pg, warm, n_select < 1000 ? n_select : 1000,
                                               placed, unplaced, sizeof(unplaced));
    tk_bench_progress_done(b);
    tk_conn_close(c);
    if (rc != TK_OK) {
        for (int i = 0; i < 3; i++)
            free(v[i]);
        tk_cli_fail("floor: %s", err.message);
        return rc;
    }

    tk_bench_stats_t s[3];
    tk_bench_stats(v[0], (size_t)n_select, &s[0]);
    tk_bench_stats(v[1], (size_t)n_commit, &s[1]);
    tk_bench_stats(v[2], (size_t)n_notify, &s[2]);
    for (int i = 0; i < 3; i++)
        free(v[i]);
    b->floor.measured = true;
    b->floor.full = full;
    b->floor.select1_us = s[0].p50;
    b->floor.commit_us = s[1].p50;
    b->floor.notify_us = s[2].p50;
    json_t *floor_doc = json_pack("{s:f, s:f, s:f}", "select1_p50_us", s[0].p50, "commit_p50_us",
                                  s[1].p50, "notify_raw_p50_us", s[2].p50);
    if (floor_doc != NULL && by_placement) {
        json_object_set_new(floor_doc, "select1_one_cpu_p50_us", json_real(placed[0].p50));
        json_object_set_new(floor_doc, "select1_two_cpus_p50_us", json_real(placed[1].p50));
    }
    json_object_set_new(b->doc, "floor", floor_doc);
    json_t *settings = json_object_get(b->doc, "settings");
    if (json_is_object(settings))
        json_object_set_new(settings, "floor_iterations",
                            json_pack("{s:i, s:i, s:i, s:s}", "select1", n_select, "commit",
                                      n_commit, "notify_raw", n_notify, "measured_by",
                                      full ? "floor suite" : "short pre-measurement"));
    static const char *const names[] = {
        "SELECT 1 round trip (prepared)",
        "UPDATE 1 row + COMMIT (durable)",
        "LISTEN/NOTIFY send -> wake (raw)",
    };
    printf("\n%s (this machine; every other figure is also given as a multiple of these)\n",
           full ? "Floor" : "Floor (short pre-measurement)");
    printf("  %-36s %10s %10s %10s %10s %8s\n", "Operation", "p50 us", "p95 us", "p99 us",
           "mean us", "samples");
    for (int i = 0; i < 3; i++)
        printf("  %-36s %10.1f %10.1f %10.1f %10.1f %8zu\n", names[i], s[i].p50, s[i].p95, s[i].p99,
               s[i].mean, s[i].n);
    static const char *const placements[] = {"  SELECT 1 pinned: one CPU",
                                             "  SELECT 1 pinned: two CPUs"};
    for (int k = 0; by_placement && k < 2; k++)
        printf("  %-36s %10.1f %10.1f %10.1f %10.1f %8zu\n", placements[k], placed[k].p50,
               placed[k].p95, placed[k].p99, placed[k].mean, placed[k].n);
    if (by_placement)
        printf("  (the same SELECT 1 with both processes pinned; the line above it is wherever "
               "the scheduler put them, and the multiples use it)\n");
    else if (full)
        printf("  (SELECT 1 by CPU placement not measured: %s)\n", unplaced);
    fflush(stdout);
    return TK_OK;
}
