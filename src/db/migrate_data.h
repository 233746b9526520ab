/*
 * migrate_data.h - the migrations compiled into libtasker from sql/NNNN_name.sql.
 *
 * The array is generated at build time by cmake/embed_sql.cmake, sorted by version.
 */
#ifndef TK_DB_MIGRATE_DATA_H
#define TK_DB_MIGRATE_DATA_H

typedef struct tk_migration_s {
    int version;      /* NNNN of the file name */
    const char *name; /* the rest of the file name, without .sql */
    const char *sql;
} tk_migration_t;

extern const tk_migration_t tk__migrations[];
extern const int tk__migration_count;

#endif
