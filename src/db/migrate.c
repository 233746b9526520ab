/*
 * migrate.c - the migration runner (see migrate.h).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/error_int.h"
#include "common/parse.h"
#include "db/migrate.h"
#include "db/migrate_data.h"
#include "tasker/log.h"

/* Arbitrary constant key for the session advisory lock held while migrating. */
#define MIGRATE_LOCK_SQL   "SELECT pg_advisory_lock(7461736)"
#define MIGRATE_UNLOCK_SQL "SELECT pg_advisory_unlock(7461736)"

static const char *const bootstrap_sql = "SET client_min_messages = warning;"
                                         "CREATE SCHEMA IF NOT EXISTS tasker;"
                                         "CREATE TABLE IF NOT EXISTS tasker.schema_migrations ("
                                         "  version integer PRIMARY KEY,"
                                         "  name text NOT NULL,"
                                         "  checksum text NOT NULL,"
                                         "  applied_at timestamptz NOT NULL DEFAULT now())";

int tk_migrate_latest(void)
{
    return tk__migration_count > 0 ? tk__migrations[tk__migration_count - 1].version : 0;
}

/* FNV-1a 64-bit of the migration text, as 16 hex digits. */
static void checksum(const char *sql, char out[17])
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)sql; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ULL;
    }
    snprintf(out, 17, "%016" PRIx64, h);
}

/* Run a query and keep its result; TK_OK or the mapped error. */
static int query(tk_conn_t *c, const char *sql, PGresult **out, tk_error_t *err)
{
    *out = PQexec(tk_conn_pg(c), sql);
    ExecStatusType st = PQresultStatus(*out);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
        return TK_OK;
    int rc = tk_conn_error_from_result(tk_conn_pg(c), *out, err);
    PQclear(*out);
    *out = NULL;
    return rc;
}

/* Highest applied version, or 0 when the schema_migrations table does not exist. */
static int db_version(tk_conn_t *c, int *version, tk_error_t *err)
{
    PGresult *res;
    *version = 0;
    int rc = query(c, "SELECT to_regclass('tasker.schema_migrations') IS NOT NULL", &res, err);
    if (rc != TK_OK)
        return rc;
    int exists = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    if (!exists)
        return TK_OK;
    rc = query(c, "SELECT coalesce(max(version), 0) FROM tasker.schema_migrations", &res, err);
    if (rc != TK_OK)
        return rc;
    *version = tk_parse_int_or(PQgetvalue(res, 0, 0), 0);
    PQclear(res);
    return TK_OK;
}

/* Warn about applied migrations whose text changed since they were applied. */
static void check_checksums(tk_conn_t *c)
{
    PGresult *res;
    tk_error_t err;
    if (query(c, "SELECT version, checksum FROM tasker.schema_migrations", &res, &err) != TK_OK)
        return;
    for (int row = 0; row < PQntuples(res); row++) {
        int version = tk_parse_int_or(PQgetvalue(res, row, 0), -1);
        for (int i = 0; i < tk__migration_count; i++) {
            char sum[17];
            if (tk__migrations[i].version != version)
                continue;
            checksum(tk__migrations[i].sql, sum);
            if (strcmp(sum, PQgetvalue(res, row, 1)) != 0)
                TK_LOG(TK_LOG_WARN, "migrate",
                       "migration %04d_%s changed after it was applied to this database", version,
                       tk__migrations[i].name);
        }
    }
    PQclear(res);
}

/* Apply one migration in its own transaction. */
static int apply_one(tk_conn_t *c, const tk_migration_t *m, tk_error_t *err)
{
    char version[16], sum[17];
    snprintf(version, sizeof(version), "%d", m->version);
    checksum(m->sql, sum);

    int rc = tk_conn_exec(c, "BEGIN", err);
    if (rc == TK_OK)
        rc = tk_conn_exec(c, m->sql, err);
    if (rc == TK_OK) {
        const char *params[] = {version, m->name, sum};
        PGresult *res =
            PQexecParams(tk_conn_pg(c),
                         "INSERT INTO tasker.schema_migrations (version, name, checksum)"
                         " VALUES ($1, $2, $3)",
                         3, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            rc = tk_conn_error_from_result(tk_conn_pg(c), res, err);
        PQclear(res);
    }
    if (rc == TK_OK)
        rc = tk_conn_exec(c, "COMMIT", err);
    if (rc != TK_OK) {
        tk_error_t ignored;
        tk_conn_exec(c, "ROLLBACK", &ignored);
        if (err != NULL) {
            char reason[sizeof(err->message)];
            snprintf(reason, sizeof(reason), "%s", err->message);
            snprintf(err->message, sizeof(err->message), "could not apply migration %04d_%.40s: %s",
                     m->version, m->name, reason);
        }
    }
    return rc;
}

int tk_migrate_run(tk_conn_t *c, int *applied, tk_migrate_progress_fn progress, void *arg,
                   tk_error_t *err)
{
    int count = 0, current = 0;
    if (applied != NULL)
        *applied = 0;
    int rc = tk_conn_exec(c, MIGRATE_LOCK_SQL, err);
    if (rc != TK_OK)
        return rc;
    rc = tk_conn_exec(c, bootstrap_sql, err);
    if (rc == TK_OK)
        rc = db_version(c, &current, err);
    if (rc == TK_OK && current > tk_migrate_latest())
        rc = tk_error_set(err, TK_ESCHEMA,
                          "cannot migrate: the database is at schema version %d, newer than the "
                          "%d this tasker %s knows; upgrade tasker",
                          current, tk_migrate_latest(), TK_VERSION_STRING);
    if (rc == TK_OK)
        check_checksums(c);
    for (int i = 0; rc == TK_OK && i < tk__migration_count; i++) {
        const tk_migration_t *m = &tk__migrations[i];
        if (m->version <= current)
            continue;
        if (progress != NULL)
            progress(m->version, m->name, arg);
        rc = apply_one(c, m, err);
        if (rc == TK_OK)
            count++;
    }
    tk_error_t ignored;
    tk_conn_exec(c, MIGRATE_UNLOCK_SQL, &ignored);
    if (applied != NULL)
        *applied = count;
    return rc;
}

int tk_migrate_status(tk_conn_t *c, int *db_ver, int *known_version, tk_error_t *err)
{
    *known_version = tk_migrate_latest();
    return db_version(c, db_ver, err);
}
