/*
 * parse.h - strict number parsing (the safe replacement for atoi).
 */
#ifndef TK_COMMON_PARSE_H
#define TK_COMMON_PARSE_H

#include <stdint.h>

/* Parse a whole decimal integer in [min, max] (leading/trailing blanks not allowed).
 * TK_OK, or TK_EINVAL for empty input, junk or an out-of-range value (*out unchanged). */
int tk_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);

/* Like tk_parse_i64 for int, returning `fallback` on any error. */
int tk_parse_int_or(const char *s, int fallback);

#endif
