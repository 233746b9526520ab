/*
 * testpg.c - the test suite's throwaway PostgreSQL: `tk_testpg start DIR` / `tk_testpg stop DIR`.
 *
 * start: creates (or reuses) a non-durable cluster in DIR/data with its log in
 * DIR/postgres.log, creates the database "tasker_template" with every migration applied, and
 * writes the server's URL (database "postgres") to DIR/server_url. Tests clone the template
 * into their own database (see harness.h), so they can run in parallel.
 * stop: stops the server and removes DIR/data; the log is kept for inspection.
 * Registered with ctest as the fixtures pg_start / pg_stop.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/conn.h"
#include "db/migrate.h"
#include "db/pgembed.h"

static int fail(const char *what, const tk_error_t *err)
{
    fprintf(stderr, "tk_testpg: %s: %s\n", what, err->message);
    return 1;
}

static int create_template(const tk_pgembed_t *pg)
{
    tk_error_t err;
    tk_conn_t *c;
    char *admin_url = tk_pgembed_url_for(pg, "postgres");
    int rc = tk_conn_open(admin_url, "tk_testpg", &c, &err);
    free(admin_url);
    if (rc != TK_OK)
        return fail("could not connect", &err);
    rc = tk_conn_exec(c, "DROP DATABASE IF EXISTS tasker_template WITH (FORCE)", &err);
    if (rc == TK_OK)
        rc = tk_conn_exec(c, "CREATE DATABASE tasker_template", &err);
    tk_conn_close(c);
    if (rc != TK_OK)
        return fail("could not create tasker_template", &err);

    char *url = tk_pgembed_url_for(pg, "tasker_template");
    rc = tk_conn_open(url, "tk_testpg", &c, &err);
    free(url);
    if (rc == TK_OK)
        rc = tk_migrate_run(c, NULL, NULL, NULL, &err);
    tk_conn_close(c);
    return rc == TK_OK ? 0 : fail("could not migrate tasker_template", &err);
}

static int start(const char *dir)
{
    char data[4096], log[4096], url_file[4096];
    snprintf(data, sizeof(data), "%s/data", dir);
    snprintf(log, sizeof(log), "%s/postgres.log", dir);
    snprintf(url_file, sizeof(url_file), "%s/server_url", dir);
    tk_pgembed_opts_t opts = {.data_dir = data, .log_path = log, .durable = false};
    tk_pgembed_t *pg;
    tk_error_t err;
    if (tk_pgembed_start(&opts, &pg, &err) != TK_OK)
        return fail("could not start PostgreSQL", &err);
    if (create_template(pg) != 0) {
        tk_pgembed_free(pg);
        return 1;
    }
    char *server_url = tk_pgembed_url_for(pg, "postgres");
    FILE *f = fopen(url_file, "w");
    if (f == NULL || fprintf(f, "%s\n", server_url) < 0 || fclose(f) != 0) {
        fprintf(stderr, "tk_testpg: could not write %s\n", url_file);
        return 1;
    }
    printf("test PostgreSQL ready: %s (log %s)\n", server_url, log);
    free(server_url);
    tk_pgembed_free(pg);
    return 0;
}

static int stop(const char *dir)
{
    char data[4096];
    snprintf(data, sizeof(data), "%s/data", dir);
    tk_pgembed_opts_t opts = {.data_dir = data, .attach_only = true};
    tk_pgembed_t *pg;
    tk_error_t err;
    if (tk_pgembed_start(&opts, &pg, &err) == TK_OK) {
        int rc = tk_pgembed_stop(pg, &err);
        tk_pgembed_free(pg);
        if (rc != TK_OK)
            return fail("could not stop PostgreSQL", &err);
    }
    if (tk_pgembed_remove(data, &err) != TK_OK)
        return fail("could not remove the cluster", &err);
    printf("test PostgreSQL stopped; log kept in %s/postgres.log\n", dir);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "start") == 0)
        return start(argv[2]);
    if (argc == 3 && strcmp(argv[1], "stop") == 0)
        return stop(argv[2]);
    fprintf(stderr, "usage: tk_testpg start|stop DIR\n");
    return 2;
}
