/*
 * bench.c - the frame of a `tasker bench` run: statistics, progress, databases, the machine
 * description and the JSON document (see bench.h).
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench.h"
#include "common/clock.h"
#include "common/error_int.h"
#include "db/migrate.h"
#include "tasker/version.h"

/* ---- statistics ----------------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double tk_bench_percentile(const double *sorted, size_t n, double p)
{
    if (n == 0)
        return 0;
    double rank = p / 100.0 * (double)(n - 1);
    size_t lo = (size_t)floor(rank);
    if (lo + 1 >= n)
        return sorted[n - 1];
    return sorted[lo] + (sorted[lo + 1] - sorted[lo]) * (rank - (double)lo);
}

void tk_bench_stats(double *v, size_t n, tk_bench_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    if (n == 0)
        return;
    qsort(v, n, sizeof(double), cmp_double);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    out->n = n;
    out->mean = sum / (double)n;
    out->p50 = tk_bench_percentile(v, n, 50);
    out->p95 = tk_bench_percentile(v, n, 95);
    out->p99 = tk_bench_percentile(v, n, 99);
    out->min = v[0];
    out->max = v[n - 1];
}

void tk_bench_multiple(char *buf, size_t size, double value, double floor_value)
{
    if (floor_value <= 0)
        snprintf(buf, size, "-");
    else
        snprintf(buf, size, "%.1fx", value / floor_value);
}

int tk_bench_count(const tk_bench_t *b, int given, int full, int quick)
{
    return given > 0 ? given : (b->opts.quick ? quick : full);
}

/* ---- progress ------------------------------------------------------------------------------- */

void tk_bench_progress(tk_bench_t *b, const char *label, int done, int total)
{
    if (!b->tty)
        return;
    int64_t now = tk_clock_us();
    if (done != 0 && done != total && now - b->progress_last_us < 100000)
        return;
    b->progress_last_us = now;
    fprintf(stderr, "\r\033[K%s: %d/%d", label, done, total);
    fflush(stderr);
    b->progress_shown = true;
}

void tk_bench_progress_done(tk_bench_t *b)
{
    if (b->tty && b->progress_shown) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
    b->progress_shown = false;
}

void tk_bench_note(tk_bench_t *b, const char *fmt, ...)
{
    tk_bench_progress_done(b);
    va_list ap;
    va_start(ap, fmt);
    fputs("bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
}

/* ---- load ------------------------------------------------------------------------------------ */

/* utime + stime (+ cutime + cstime: reaped children) of a process, in clock ticks; *ppid
 * gets its parent. 0 when it cannot be read. */
static uint64_t proc_ticks(const char *stat_path, bool children, long *ppid)
{
    char buf[1024];
    FILE *f = fopen(stat_path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (p == NULL)
        return 0;
    unsigned long long v[15] = {0};
    /* fields 3..17: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
     * utime stime cutime cstime */
    char state;
    if (sscanf(p + 1, " %c %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu",
               &state, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9], &v[10],
               &v[11], &v[12], &v[13]) != 15)
        return 0;
    if (ppid != NULL)
        *ppid = (long)v[0];
    return v[10] + v[11] + (children ? v[12] + v[13] : 0);
}

/* CPU ticks of this process and of the private cluster (postmaster, with the backends it
 * reaped, and its live children). */
static uint64_t bench_ticks(const tk_bench_t *b)
{
    uint64_t t = proc_ticks("/proc/self/stat", true, NULL);
    if (b->opts.pg_data_dir == NULL)
        return t;
    char path[4200];
    snprintf(path, sizeof(path), "%s/postmaster.pid", b->opts.pg_data_dir);
    FILE *f = fopen(path, "r");
    long postmaster = 0;
    if (f == NULL)
        return t;
    if (fscanf(f, "%ld", &postmaster) != 1)
        postmaster = 0;
    fclose(f);
    if (postmaster <= 0)
        return t;
    snprintf(path, sizeof(path), "/proc/%ld/stat", postmaster);
    t += proc_ticks(path, true, NULL);
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        long ppid = 0;
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        uint64_t ticks = proc_ticks(path, false, &ppid);
        if (ppid == postmaster)
            t += ticks;
    }
    if (d != NULL)
        closedir(d);
    return t;
}

/* Busy and total ticks of all CPUs (/proc/stat). */
static void cpu_ticks(uint64_t *busy, uint64_t *total)
{
    *busy = *total = 0;
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL)
        return;
    unsigned long long v[8] = {0};
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
               &v[5], &v[6], &v[7]) == 8) {
        *busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
        *total = *busy + v[3] + v[4];
    }
    fclose(f);
}

void tk_bench_load_mark(tk_bench_t *b, const char *suite, bool start)
{
    double la[1] = {0};
    if (getloadavg(la, 1) != 1)
        la[0] = -1;
    uint64_t busy, total;
    cpu_ticks(&busy, &total);
    uint64_t bench = bench_ticks(b);
    if (start) {
        b->mark.loadavg = la[0];
        b->mark.busy = busy;
        b->mark.total = total;
        b->mark.bench = bench;
        return;
    }
    json_t *machine = json_object_get(b->doc, "machine");
    if (!json_is_object(machine))
        return;
    json_t *load = json_object_get(machine, "load");
    if (load == NULL) {
        load = json_object();
        json_object_set_new(machine, "load", load);
    }
    double dt = total > b->mark.total ? (double)(total - b->mark.total) : 1;
    double busy_pct = (double)(busy - b->mark.busy) * 100 / dt;
    double bench_pct = bench >= b->mark.bench ? (double)(bench - b->mark.bench) * 100 / dt : 0;
    double other = busy_pct - bench_pct;
    json_object_set_new(load, suite,
                        json_pack("{s:[f,f], s:f, s:f, s:f}", "loadavg",
                                  round(b->mark.loadavg * 100) / 100, round(la[0] * 100) / 100,
                                  "cpu_busy_pct", round(busy_pct * 10) / 10, "cpu_bench_pct",
                                  round(bench_pct * 10) / 10, "cpu_other_pct",
                                  round((other > 0 ? other : 0) * 10) / 10));
}

static void print_load(tk_bench_t *b)
{
    json_t *load = json_object_get(json_object_get(b->doc, "machine"), "load");
    if (!json_is_object(load))
        return;
    printf("\nMachine load during each suite (share of all CPU time; 2 cores)\n");
    printf("  %-12s %14s %8s %12s %12s\n", "Suite", "load avg", "busy", "bench + PG", "other work");
    const char *suite;
    json_t *v;
    json_object_foreach(load, suite, v)
    {
        json_t *la = json_object_get(v, "loadavg");
        printf("  %-12s %6.2f->%-6.2f %7.1f%% %11.1f%% %11.1f%%\n", suite,
               json_real_value(json_array_get(la, 0)), json_real_value(json_array_get(la, 1)),
               json_real_value(json_object_get(v, "cpu_busy_pct")),
               json_real_value(json_object_get(v, "cpu_bench_pct")),
               json_real_value(json_object_get(v, "cpu_other_pct")));
    }
    if (b->opts.pg_data_dir == NULL)
        printf("  (the database server is not the bench's own: its CPU counts as other work)\n");
}

/* ---- targets -------------------------------------------------------------------------------- */

void tk_bench_target(tk_bench_t *b, bool met, const char *value, const char *limit, const char *fmt,
                     ...)
{
    if (b->ntargets == (int)(sizeof(b->targets) / sizeof(b->targets[0])))
        return;
    tk_bench_target_t *t = &b->targets[b->ntargets++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->what, sizeof(t->what), fmt, ap);
    va_end(ap);
    snprintf(t->value, sizeof(t->value), "%s", value);
    snprintf(t->limit, sizeof(t->limit), "%s", limit);
    t->met = met;
}

void tk_bench_print_targets(tk_bench_t *b)
{
    print_load(b);
    if (b->ntargets == 0)
        return;
    int met = 0;
    printf("\nTargets of issue 4 (this machine, durable commits)\n");
    printf("  %-66s %11s  %-10s %s\n", "Target", "Measured", "Limit", "");
    for (int i = 0; i < b->ntargets; i++) {
        const tk_bench_target_t *t = &b->targets[i];
        met += t->met;
        printf("  %-66s %11s  %-10s %s\n", t->what, t->value, t->limit, t->met ? "met" : "MISSED");
    }
    printf("  %d of %d met\n", met, b->ntargets);
}

/* ---- databases ------------------------------------------------------------------------------ */

/* Append key='value' (quoted as libpq wants) to buf. False when it does not fit. */
static bool append_kv(char *buf, size_t size, size_t *len, const char *key, const char *value)
{
    int n = snprintf(buf + *len, size - *len, "%s%s='", *len ? " " : "", key);
    if (n < 0 || (size_t)n >= size - *len)
        return false;
    *len += (size_t)n;
    for (const char *p = value; *p; p++) {
        if (*len + 3 >= size)
            return false;
        if (*p == '\'' || *p == '\\')
            buf[(*len)++] = '\\';
        buf[(*len)++] = *p;
    }
    if (*len + 2 >= size)
        return false;
    buf[(*len)++] = '\'';
    buf[*len] = '\0';
    return true;
}

char *tk_bench_url_for(const char *url, const char *dbname)
{
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &errmsg);
    if (opts == NULL) {
        PQfreemem(errmsg);
        return NULL;
    }
    char buf[4096];
    size_t len = 0;
    bool ok = true;
    buf[0] = '\0';
    for (PQconninfoOption *o = opts; ok && o->keyword != NULL; o++)
        if (o->val != NULL && o->val[0] != '\0' && strcmp(o->keyword, "dbname") != 0)
            ok = append_kv(buf, sizeof(buf), &len, o->keyword, o->val);
    if (ok)
        ok = append_kv(buf, sizeof(buf), &len, "dbname", dbname);
    PQconninfoFree(opts);
    return ok ? strdup(buf) : NULL;
}

/* The dbname of `url`, or "" (static buffer). */
static const char *url_dbname(const char *url)
{
    static char name[128];
    name[0] = '\0';
    PQconninfoOption *opts = PQconninfoParse(url, NULL);
    for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++)
        if (strcmp(o->keyword, "dbname") == 0 && o->val != NULL)
            snprintf(name, sizeof(name), "%s", o->val);
    PQconninfoFree(opts);
    return name;
}

int tk_bench_exec(PGconn *pg, const char *sql, tk_error_t *err)
{
    PGresult *res = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(res);
    int rc = TK_OK;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        rc = tk_conn_error_from_result(pg, res, err);
    PQclear(res);
    return rc;
}

int tk_bench_scalar(PGconn *pg, const char *sql, char **out, tk_error_t *err)
{
    *out = NULL;
    PGresult *res = PQexec(pg, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        int rc = tk_conn_error_from_result(pg, res, err);
        PQclear(res);
        return rc;
    }
    int rc = TK_OK;
    if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0) &&
        (*out = strdup(PQgetvalue(res, 0, 0))) == NULL)
        rc = tk_error_set(err, TK_ENOMEM, "out of memory");
    PQclear(res);
    return rc;
}

int tk_bench_db_drop(tk_bench_t *b, const char *dbname, tk_error_t *err)
{
    tk_conn_t *admin;
    int rc = tk_conn_open(b->server_url, "tasker-bench", &admin, err);
    if (rc != TK_OK)
        return rc;
    char sql[256];
    PQclear(PQexec(tk_conn_pg(admin), "SET client_min_messages = warning"));
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", dbname);
    rc = tk_bench_exec(tk_conn_pg(admin), sql, err);
    tk_conn_close(admin);
    return rc;
}

int tk_bench_db_create(tk_bench_t *b, const char *dbname, bool drop, char **url_out,
                       tk_error_t *err)
{
    *url_out = NULL;
    if (strcmp(url_dbname(b->server_url), dbname) == 0)
        return tk_error_set(err, TK_EINVAL,
                            "the benchmark creates and drops database \"%s\": give the URL of "
                            "another database on that server",
                            dbname);
    tk_conn_t *admin;
    int rc = tk_conn_open(b->server_url, "tasker-bench", &admin, err);
    if (rc != TK_OK)
        return rc;
    PGconn *pg = tk_conn_pg(admin);
    PQclear(PQexec(pg, "SET client_min_messages = warning"));
    char sql[256];
    if (drop) {
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", dbname);
        rc = tk_bench_exec(pg, sql, err);
    }
    char *exists = NULL;
    if (rc == TK_OK) {
        const char *params[] = {dbname};
        PGresult *res = PQexecParams(pg, "SELECT 1 FROM pg_database WHERE datname = $1", 1, NULL,
                                     params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK)
            rc = tk_conn_error_from_result(pg, res, err);
        else if (PQntuples(res) > 0)
            exists = "yes";
        PQclear(res);
    }
    if (rc == TK_OK && exists == NULL) {
        snprintf(sql, sizeof(sql), "CREATE DATABASE \"%s\"", dbname);
        rc = tk_bench_exec(pg, sql, err);
        if (rc != TK_OK) {
            char reason[sizeof(err->message)];
            snprintf(reason, sizeof(reason), "%s", err->message);
            tk_error_set(err, rc,
                         "could not create database %s (the benchmark needs a role with "
                         "CREATEDB): %s",
                         dbname, reason);
        }
    }
    tk_conn_close(admin);
    if (rc != TK_OK)
        return rc;

    char *url = tk_bench_url_for(b->server_url, dbname);
    if (url == NULL)
        return tk_error_set(err, TK_EINVAL, "could not parse the database URL");
    tk_conn_t *c;
    rc = tk_conn_open(url, "tasker-bench", &c, err);
    if (rc == TK_OK) {
        PGresult *res = PQexec(tk_conn_pg(c), "SET client_min_messages = warning");
        PQclear(res);
        rc = tk_migrate_run(c, NULL, NULL, NULL, err);
        tk_conn_close(c);
    }
    if (rc != TK_OK) {
        free(url);
        return rc;
    }
    *url_out = url;
    return TK_OK;
}

/* ---- the run -------------------------------------------------------------------------------- */

int tk_bench_init(tk_bench_t *b, const tk_bench_opts_t *opts, const char *server_url)
{
    memset(b, 0, sizeof(*b));
    b->opts = *opts;
    b->server_url = server_url;
    b->tty = isatty(STDERR_FILENO) == 1;
    b->doc = json_object();
    if (b->doc == NULL)
        return TK_ENOMEM;
    json_object_set_new(b->doc, "machine", json_null());
    json_object_set_new(b->doc, "settings", json_null());
    json_object_set_new(b->doc, "floor", json_null());
    json_object_set_new(b->doc, "e2e", json_array());
    json_object_set_new(b->doc, "sql", json_array());
    json_object_set_new(b->doc, "notify", json_null());
    json_object_set_new(b->doc, "throughput", json_null());
    return TK_OK;
}

void tk_bench_free(tk_bench_t *b)
{
    json_decref(b->doc);
    b->doc = NULL;
    free(b->run_url);
    b->run_url = NULL;
}

/* First line of `path` that starts with `key`, value after the colon (trimmed) into buf. */
static void read_proc_field(const char *path, const char *key, char *buf, size_t size)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    char line[512];
    size_t klen = strlen(key);
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, key, klen) != 0)
            continue;
        const char *v = strchr(line, ':');
        if (v == NULL)
            continue;
        v++;
        while (*v == ' ' || *v == '\t')
            v++;
        snprintf(buf, size, "%s", v);
        size_t n = strlen(buf);
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
            buf[--n] = '\0';
        break;
    }
    fclose(f);
}

static json_t *loadavg_json(void)
{
    double la[3] = {0, 0, 0};
    if (getloadavg(la, 3) != 3)
        return json_null();
    return json_pack("[f,f,f]", round(la[0] * 100) / 100, round(la[1] * 100) / 100,
                     round(la[2] * 100) / 100);
}

static json_t *machine_json(PGconn *pg)
{
    char cpu[256], mem[64];
    read_proc_field("/proc/cpuinfo", "model name", cpu, sizeof(cpu));
    read_proc_field("/proc/meminfo", "MemTotal", mem, sizeof(mem));
    long mem_kb = strtol(mem, NULL, 10);
    struct utsname u;
    char kernel[300] = "";
    if (uname(&u) == 0)
        snprintf(kernel, sizeof(kernel), "%s %s %s", u.sysname, u.release, u.machine);
    json_t *m = json_pack("{s:s, s:i, s:i, s:s}", "cpu", cpu[0] ? cpu : "unknown", "cores",
                          (int)sysconf(_SC_NPROCESSORS_ONLN), "memory_mb", (int)(mem_kb / 1024),
                          "kernel", kernel);
    static const char *const settings[] = {
        "server_version",  "fsync",          "synchronous_commit", "full_page_writes",
        "wal_sync_method", "shared_buffers", "max_connections",
    };
    for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++) {
        char sql[96];
        snprintf(sql, sizeof(sql), "SHOW %s", settings[i]);
        char *v = NULL;
        tk_error_t err;
        if (tk_bench_scalar(pg, sql, &v, &err) == TK_OK && v != NULL)
            json_object_set_new(m, i == 0 ? "postgresql" : settings[i], json_string(v));
        free(v);
    }
    json_object_set_new(m, "durable", json_boolean(false));
    const char *fs = json_string_value(json_object_get(m, "fsync"));
    const char *sc = json_string_value(json_object_get(m, "synchronous_commit"));
    if (fs && sc && strcmp(fs, "on") == 0 && strcmp(sc, "off") != 0)
        json_object_set_new(m, "durable", json_true());
    json_object_set_new(m, "loadavg_start", loadavg_json());
    return m;
}

static json_t *settings_json(tk_bench_t *b, const char *const *suites, int nsuites)
{
    const tk_bench_opts_t *o = &b->opts;
    char started[40];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(started, sizeof(started), "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_t *s =
        json_pack("{s:s, s:s, s:b, s:s}", "tasker_version", tk_version(), "started_at", started,
                  "quick", o->quick, "database", o->database_label ? o->database_label : "");
    json_t *list = json_array();
    for (int i = 0; i < nsuites; i++)
        json_array_append_new(list, json_string(suites[i]));
    json_object_set_new(s, "suites", list);
    if (o->note != NULL)
        json_object_set_new(s, "note", json_string(o->note));
    return s;
}

int tk_bench_prepare_run_db(tk_bench_t *b, const char *const *suites, int nsuites)
{
    tk_error_t err;
    int rc = tk_bench_db_create(b, "tasker_bench", true, &b->run_url, &err);
    if (rc != TK_OK) {
        tk_cli_fail("could not prepare the benchmark database: %s", err.message);
        return rc;
    }
    tk_conn_t *c;
    rc = tk_conn_open(b->run_url, "tasker-bench", &c, &err);
    if (rc != TK_OK) {
        tk_cli_fail("%s", err.message);
        return rc;
    }
    json_object_set_new(b->doc, "machine", machine_json(tk_conn_pg(c)));
    json_object_set_new(b->doc, "settings", settings_json(b, suites, nsuites));
    tk_conn_close(c);
    return TK_OK;
}

/* mkdir -p of the directory part of `path`. */
static int make_parent_dirs(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir)
        return 0;
    *slash = '\0';
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(dir, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

int tk_bench_write_json(tk_bench_t *b, const char *path)
{
    json_t *machine = json_object_get(b->doc, "machine");
    if (json_is_object(machine))
        json_object_set_new(machine, "loadavg_end", loadavg_json());
    if (make_parent_dirs(path) != 0) {
        tk_cli_fail("could not create the directory of %s: %s", path, strerror(errno));
        return TK_EIO;
    }
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (json_dump_file(b->doc, tmp, JSON_INDENT(2) | JSON_REAL_PRECISION(10)) != 0 ||
        rename(tmp, path) != 0) {
        tk_cli_fail("could not write %s: %s", path, strerror(errno));
        unlink(tmp);
        return TK_EIO;
    }
    return TK_OK;
}
