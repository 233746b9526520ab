/*
 * error_int.h - library-internal helpers to fill a tk_error_t.
 */
#ifndef TK_COMMON_ERROR_INT_H
#define TK_COMMON_ERROR_INT_H

#include "tasker/error.h"

/* Fill `err` (if not NULL) with `code` and a printf-formatted message; returns `code`, so a
 * caller can write `return tk_error_set(err, TK_EINVAL, "...")`. */
int tk_error_set(tk_error_t *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Set the SQLSTATE (NULL clears it) and the detail line of an already filled `err`. */
void tk_error_set_sqlstate(tk_error_t *err, const char *sqlstate);
void tk_error_set_detail(tk_error_t *err, const char *detail);

#endif
