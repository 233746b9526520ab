/*
 * error.c - descriptions of the TK_E* codes and helpers that fill a tk_error_t.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/error_int.h"

const char *tk_strerror(int code)
{
    switch (code) {
#define X(name, value, desc)                                                                       \
    case value:                                                                                    \
        return desc;
        TK_ERRNO_MAP(X)
#undef X
    }
    return "unknown error";
}

const char *tk_err_name(int code)
{
    switch (code) {
#define X(name, value, desc)                                                                       \
    case value:                                                                                    \
        return "TK_" #name;
        TK_ERRNO_MAP(X)
#undef X
    }
    return "TK_UNKNOWN";
}

void tk_error_clear(tk_error_t *err)
{
    if (err == NULL)
        return;
    err->code = TK_OK;
    err->sqlstate[0] = '\0';
    err->message[0] = '\0';
    err->detail[0] = '\0';
}

int tk_error_set(tk_error_t *err, int code, const char *fmt, ...)
{
    if (err == NULL)
        return code;
    tk_error_clear(err);
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return code;
}

void tk_error_set_sqlstate(tk_error_t *err, const char *sqlstate)
{
    if (err == NULL)
        return;
    snprintf(err->sqlstate, sizeof(err->sqlstate), "%s", sqlstate ? sqlstate : "");
}

void tk_error_set_detail(tk_error_t *err, const char *detail)
{
    if (err == NULL || detail == NULL)
        return;
    snprintf(err->detail, sizeof(err->detail), "%s", detail);
}
