/*
 * bench.h - `tasker bench`: the benchmark suites that reproduce the seed's tables
 * (../shared/seed/lifecycle-performance-baseline.md) for tasker, on the machine at hand.
 *
 * A run (tk_bench_t) holds the options, the database server to use, the floor measured on it
 * and the JSON document every suite fills. Each suite measures, prints its table (our
 * figures beside the seed's and as multiples of the floor) and stores its rows in the
 * document; a suite that is not run leaves its key null or empty. bench/README.md describes
 * what each suite measures and how.
 *
 * Databases: every suite works in databases of its own on the given server (tasker_bench for
 * floor, notify and e2e, recreated per run; tasker_bench_tp for throughput; one
 * tasker_bench_sql_<N> per dataset size, kept and reused). The role needs CREATEDB.
 *
 * Nothing here is thread-safe: a run belongs to the thread that created it (the suites start
 * their own threads and join them before they return).
 */
#ifndef TK_BENCH_BENCH_H
#define TK_BENCH_BENCH_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cli/cli.h"
#include "db/conn.h"
#include "tasker/error.h"

#define TK_BENCH_MAX_SIZES 8

/* Options of a run; zero / NULL fields take the defaults (which depend on `quick`). */
typedef struct tk_bench_opts_s {
    bool quick;                    /* fewer samples: every suite in a few minutes */
    int samples;                   /* e2e samples per workflow and handler row */
    int warmup;                    /* e2e warm-up tasks per workflow and row (-1: default) */
    int iterations;                /* floor, sql and notify iterations per case */
    int tasks[TK_BENCH_MAX_SIZES]; /* sql dataset sizes */
    int ntasks;
    int tp_tasks;               /* throughput: tasks submitted */
    int workers;                /* throughput: workers (each with its own handler pool) */
    int clients;                /* throughput: client threads submitting */
    int submit_batch;           /* throughput: tasks per POST (>1: POST /v1/tasks/batch) */
    const char *tp_workflow;    /* throughput: "linear" or "noop" */
    const char *templates;      /* templates of the C handler rows (examples/templates) */
    const char *handlers;       /* e2e handler rows to run, "c,ruby,python"; NULL: all */
    const char *config_path;    /* configuration file for server and workers */
    const tk_cli_sets_t *sets;  /* --set KEY=VALUE for server and workers */
    const char *database_label; /* where the server is, for the JSON settings */
    const char *log_dir;        /* logs of child workers (the JSON file's directory) */
    const char *note;           /* free text for the JSON settings (e.g. what was measured) */
    const char *pg_data_dir;    /* the private cluster's directory (NULL: a server by URL) */
} tk_bench_opts_t;

/* One line of the closing summary of the targets. */
typedef struct tk_bench_target_s {
    char what[96];  /* e.g. "E2E linear p50 (C)" */
    char value[48]; /* our figure, formatted */
    char limit[48]; /* the target, formatted */
    bool met;
} tk_bench_target_t;

typedef struct tk_bench_s {
    tk_bench_opts_t opts;
    const char *server_url; /* any database of the server (the given URL, or "tasker") */
    char *run_url;          /* tasker_bench, created by tk_bench_prepare_run_db() */
    bool tty;               /* stderr is a terminal: progress is redrawn in place */
    bool progress_shown;
    int64_t progress_last_us;
    json_t *doc; /* {"machine", "settings", "floor", "e2e", "sql", "notify", "throughput"} */
    struct {
        bool measured;
        bool full; /* by the floor suite itself (else the short pre-measurement) */
        double select1_us, commit_us, notify_us;
    } floor;
    tk_bench_target_t targets[64];
    int ntargets;
    struct {
        double loadavg;
        uint64_t busy, total, bench; /* clock ticks */
    } mark;
} tk_bench_t;

/* ---- the run -------------------------------------------------------------------------------- */

/* Set up a run on the server at `server_url` (kept, not copied). TK_OK or TK_ENOMEM. */
int tk_bench_init(tk_bench_t *b, const tk_bench_opts_t *opts, const char *server_url);

/* Release everything the run holds. */
void tk_bench_free(tk_bench_t *b);

/* (Re)create and migrate the tasker_bench database, fill "machine" and "settings". */
int tk_bench_prepare_run_db(tk_bench_t *b, const char *const *suites, int nsuites);

/* Write the document to `path`, creating its directory. TK_OK or TK_EIO (printed). */
int tk_bench_write_json(tk_bench_t *b, const char *path);

/* Print the summary of the targets (stdout). */
void tk_bench_print_targets(tk_bench_t *b);

/* Mark the start (start = true) or the end of a suite: at the end machine.load.<suite> gets
 * the 1-minute load averages and how the CPU time went meanwhile: busy in all, used by the
 * bench process and its private PostgreSQL, and by other processes (the machine's other
 * work, which shows in every figure). Printed with the summary. */
void tk_bench_load_mark(tk_bench_t *b, const char *suite, bool start);

/* Record a target for the summary. */
void tk_bench_target(tk_bench_t *b, bool met, const char *value, const char *limit, const char *fmt,
                     ...) __attribute__((format(printf, 5, 6)));

/* ---- suites: each returns TK_OK or an error already printed --------------------------------- */

/* The floor: SELECT 1, durable UPDATE + COMMIT, raw LISTEN/NOTIFY. With full = false a short
 * measurement for the other suites' multiples (not printed as a table). */
int tk_bench_floor(tk_bench_t *b, bool full);
int tk_bench_sql(tk_bench_t *b);
int tk_bench_notify(tk_bench_t *b);
int tk_bench_e2e(tk_bench_t *b);
int tk_bench_throughput(tk_bench_t *b);

/* `tasker bench compare [--per-floor] BASE NEW`: verdict per metric printed to `out`; with
 * `by_floor` each figure is first read as a multiple of its own run's floor (compare.c).
 * Returns 0 when no metric fails, 1 when one does, 2 when a file cannot be read (message
 * printed). */
int tk_bench_compare(const char *base_path, const char *new_path, bool by_floor, FILE *out);

/* ---- helpers shared by the suites ----------------------------------------------------------- */

/* Summary statistics of n samples (v is sorted in place). Percentiles interpolate linearly
 * between the two nearest ranks; n == 0 gives zeros. */
typedef struct tk_bench_stats_s {
    size_t n;
    double mean, p50, p95, p99, min, max;
} tk_bench_stats_t;

void tk_bench_stats(double *v, size_t n, tk_bench_stats_t *out);

/* The value at percentile p (0..100) of sorted v[0..n-1]. */
double tk_bench_percentile(const double *sorted, size_t n, double p);

/* Progress on stderr, e.g. "e2e linear/c: 23/200": redrawn in place (at most every 100 ms)
 * on a terminal, nothing otherwise. tk_bench_progress_done() clears the line. */
void tk_bench_progress(tk_bench_t *b, const char *label, int done, int total);
void tk_bench_progress_done(tk_bench_t *b);

/* One line on stderr (clears the progress line first). */
void tk_bench_note(tk_bench_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Default for a count option: `given` if > 0, else quick or full. */
int tk_bench_count(const tk_bench_t *b, int given, int full, int quick);

/* URL (libpq key=value string) for database `dbname` on the server of `url`. malloc'ed, or
 * NULL when `url` cannot be parsed or out of memory. */
char *tk_bench_url_for(const char *url, const char *dbname);

/* Drop (if `drop`) and create database `dbname` on the run's server, and migrate it; *url_out
 * gets its URL (caller frees). With drop == false an existing database is kept (and
 * migrated). TK_OK or an error with the reason in err. */
int tk_bench_db_create(tk_bench_t *b, const char *dbname, bool drop, char **url_out,
                       tk_error_t *err);

/* Drop database `dbname` if it exists. */
int tk_bench_db_drop(tk_bench_t *b, const char *dbname, tk_error_t *err);

/* Run SQL text (simple protocol, any number of statements). TK_OK or the mapped error. */
int tk_bench_exec(PGconn *pg, const char *sql, tk_error_t *err);

/* The first column of the first row of `sql` as a malloc'ed string (NULL for SQL NULL or no
 * row: then *out = NULL and TK_OK). */
int tk_bench_scalar(PGconn *pg, const char *sql, char **out, tk_error_t *err);

/* Format a multiple of the floor, e.g. "3.2x" ("-" when the floor is unknown). */
void tk_bench_multiple(char *buf, size_t size, double value, double floor);

/* ---- the seed's figures (seed.c) ------------------------------------------------------------ */

/* Mean E2E latency in ms the seed reports for a workflow and handler ("c" stands for the
 * seed's native Rust handlers), or < 0 when it has none; *source says where it is from. */
double tk_bench_seed_e2e(const char *workflow, const char *handler, const char **source);

/* Mean in microseconds the seed reports for one SQL case (function and case index as in the
 * seed's tables), or < 0. */
double tk_bench_seed_sql(const char *function, int index);

/* The seed's LISTEN/NOTIFY round trip, ms. */
#define TK_BENCH_SEED_NOTIFY_MS 14.553

/* The E2E p50 target (ms) for a workflow with C handlers, or < 0. */
double tk_bench_target_e2e_ms(const char *workflow);

#define TK_BENCH_TARGET_SQL_US      150.0 /* p50 at 5,000 tasks */
#define TK_BENCH_TARGET_SQL_FLOOR_X 3.0   /* p50 <= 3x the SELECT 1 floor */
#define TK_BENCH_TARGET_SQL_SCALE_X 1.5   /* p50 at 100,000 tasks <= 1.5x p50 at 5,000 */
#define TK_BENCH_TARGET_NOTIFY_MS   0.5   /* notify p50 */

#endif
