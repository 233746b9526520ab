/*
 * harness.c - test helpers for databases on the fixture's PostgreSQL (see harness.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

static _Thread_local char value_buf[8192];
static _Thread_local char state_buf[8];

/* The server URL written by tk_testpg (database "postgres"). */
static const char *server_url(void)
{
    static char url[1024];
    if (url[0] != '\0')
        return url;
    const char *dir = getenv("TK_TEST_PG_DIR");
    if (dir == NULL)
        fail_msg("TK_TEST_PG_DIR is not set: run this test through ctest");
    char path[1024];
    snprintf(path, sizeof(path), "%s/server_url", dir);
    FILE *f = fopen(path, "r");
    if (f == NULL || fgets(url, sizeof(url), f) == NULL)
        fail_msg("cannot read %s: is the pg_start fixture running?", path);
    fclose(f);
    url[strcspn(url, "\n")] = '\0';
    return url;
}

char *tk_test_db_url(const char *name)
{
    /* server_url is postgresql:///postgres?... : swap the database name. */
    const char *url = server_url();
    const char *q = strchr(url, '?');
    char *out;
    if (asprintf(&out, "postgresql:///%s%s", name, q ? q : "") < 0)
        fail_msg("out of memory");
    return out;
}

static char *create(const char *name, const char *template_db)
{
    PGconn *admin = tk_test_connect(server_url());
    char sql[512];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", name);
    tk_test_exec(admin, sql);
    snprintf(sql, sizeof(sql), "CREATE DATABASE \"%s\" TEMPLATE %s", name, template_db);
    tk_test_exec(admin, sql);
    PQfinish(admin);
    return tk_test_db_url(name);
}

char *tk_test_db_create(const char *name)
{
    return create(name, "tasker_template");
}

char *tk_test_db_create_empty(const char *name)
{
    return create(name, "template0");
}

PGconn *tk_test_connect(const char *url)
{
    const char *keys[] = {"dbname", "options", NULL};
    const char *vals[] = {url, "-c search_path=tasker,tasker_mq,public", NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("cannot connect to %s: %s", url, PQerrorMessage(c));
    return c;
}

static PGresult *checked(PGconn *conn, PGresult *res, const char *sql)
{
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
        fail_msg("query failed: %s\n  %s", PQerrorMessage(conn), sql);
    return res;
}

PGresult *tk_test_query(PGconn *conn, const char *sql)
{
    return checked(conn, PQexec(conn, sql), sql);
}

void tk_test_exec(PGconn *conn, const char *sql)
{
    PQclear(tk_test_query(conn, sql));
}

PGresult *tk_test_queryp(PGconn *conn, const char *sql, int n, const char *const *params)
{
    return checked(conn, PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0), sql);
}

static const char *first_value(PGresult *res, const char *sql)
{
    if (PQntuples(res) < 1 || PQnfields(res) < 1) {
        PQclear(res);
        fail_msg("query returned no row: %s", sql);
    }
    snprintf(value_buf, sizeof(value_buf), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return value_buf;
}

const char *tk_test_value(PGconn *conn, const char *sql)
{
    return first_value(tk_test_query(conn, sql), sql);
}

const char *tk_test_valuep(PGconn *conn, const char *sql, int n, const char *const *params)
{
    return first_value(tk_test_queryp(conn, sql, n, params), sql);
}

long tk_test_count(PGconn *conn, const char *sql)
{
    const char *v = tk_test_value(conn, sql);
    char *end;
    long n = strtol(v, &end, 10);
    if (*v == '\0' || *end != '\0')
        fail_msg("not a number (%s): %s", v, sql);
    return n;
}

const char *tk_test_sqlstate_of(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        PQclear(res);
        fail_msg("query should have failed: %s", sql);
    }
    const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    snprintf(state_buf, sizeof(state_buf), "%s", s ? s : "");
    PQclear(res);
    return state_buf;
}
