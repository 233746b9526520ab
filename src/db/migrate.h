/*
 * migrate.h - apply tasker's forward-only schema migrations.
 *
 * Migrations are the sql/NNNN_name.sql files compiled into the library. Applying is
 * idempotent: each version is recorded in tasker.schema_migrations (with a checksum of its
 * text) and applied at most once, each in its own transaction, under an advisory lock so
 * concurrent `tasker db migrate` runs are safe. A database already migrated by a newer tasker
 * (a version this build does not know) is refused with TK_ESCHEMA.
 */
#ifndef TK_DB_MIGRATE_H
#define TK_DB_MIGRATE_H

#include "db/conn.h"

/* Progress callback: called before each migration is applied. May be NULL. */
typedef void (*tk_migrate_progress_fn)(int version, const char *name, void *arg);

/* Bring the schema up to date. *applied (if not NULL) receives the number of migrations
 * applied by this call. TK_OK, TK_ESCHEMA, or a database error. */
int tk_migrate_run(tk_conn_t *c, int *applied, tk_migrate_progress_fn progress, void *arg,
                   tk_error_t *err);

/* The newest version applied to the database (0 when none) and the newest this build knows. */
int tk_migrate_status(tk_conn_t *c, int *db_version, int *known_version, tk_error_t *err);

/* The newest version this build knows. */
int tk_migrate_latest(void);

#endif
