/*
 * parse.c - strict number parsing (see parse.h).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>

#include "common/parse.h"
#include "tasker/error.h"

int tk_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (s == NULL || *s == '\0' || *s == ' ' || *s == '\t')
        return TK_EINVAL;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return TK_EINVAL;
    *out = v;
    return TK_OK;
}

int tk_parse_int_or(const char *s, int fallback)
{
    int64_t v;
    return tk_parse_i64(s, INT_MIN, INT_MAX, &v) == TK_OK ? (int)v : fallback;
}
