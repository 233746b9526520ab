/*
 * error.h - tasker's error model: one table of negative codes plus an optional detail record.
 *
 * Every libtasker function that can fail returns int: TK_OK (0) or a negative TK_E* code.
 * Functions that talk to PostgreSQL or the operating system also take an optional
 * `tk_error_t *err` out-parameter, filled only on failure, that carries the SQLSTATE and a
 * human-readable message. Callers branch on `code` or `sqlstate`, never on message text.
 * Codes are append-only: never renumbered or removed.
 */
#ifndef TASKER_ERROR_H
#define TASKER_ERROR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TK_API __attribute__((visibility("default")))

/* X(name, value, description) */
#define TK_ERRNO_MAP(X)                                                                            \
    X(OK, 0, "success")                                                                            \
    X(ENOMEM, -1, "out of memory")                                                                 \
    X(EINVAL, -2, "invalid argument")                                                              \
    X(ENOTFOUND, -3, "not found")                                                                  \
    X(ECONFLICT, -4, "already exists")                                                             \
    X(ETRANSITION, -5, "state transition not allowed")                                             \
    X(ESTALE, -6, "state changed concurrently")                                                    \
    X(EDB, -7, "database error")                                                                   \
    X(ECONN, -8, "database connection failed")                                                     \
    X(ETIMEDOUT, -9, "timed out")                                                                  \
    X(EIO, -10, "input/output error")                                                              \
    X(ESCHEMA, -11, "database schema version not supported")                                       \
    X(ESYS, -12, "system call failed")                                                             \
    X(EPARSE, -13, "could not parse input")                                                        \
    X(ESHUTDOWN, -14, "shutting down")

typedef enum {
#define TK_ERRNO_ENUM(name, value, desc) TK_##name = value,
    TK_ERRNO_MAP(TK_ERRNO_ENUM)
#undef TK_ERRNO_ENUM
} tk_errno_t;

/* Detail of a failure. Plain data: no allocation, safe to copy. */
typedef struct tk_error_s {
    int code;         /* TK_E* code, same as the function's return value */
    char sqlstate[6]; /* PostgreSQL SQLSTATE ("" when the failure did not come from SQL) */
    char message[512];
    char detail[256];
} tk_error_t;

/* Static description of `code` ("unknown error" for codes not in the table). Thread-safe. */
TK_API const char *tk_strerror(int code);

/* Static symbolic name of `code`, e.g. "TK_ENOTFOUND". Thread-safe. */
TK_API const char *tk_err_name(int code);

/* Reset `err` to "no error". Accepts NULL. */
TK_API void tk_error_clear(tk_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
