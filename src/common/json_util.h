/*
 * json_util.h - JSON decoding for documents that come out of PostgreSQL.
 *
 * jsonb keeps numbers as numeric and prints them without an exponent, so a large floating
 * point value (say 6.3e49) comes back as a 50-digit integer literal, which jansson refuses as
 * "too big integer". tk_json_parse() accepts such documents by reading every integer as a
 * real in that case (integers that fit keep their type otherwise).
 */
#ifndef TK_COMMON_JSON_UTIL_H
#define TK_COMMON_JSON_UTIL_H

#include <jansson.h>
#include <stddef.h>

/* Decode `len` bytes of JSON (any value, not only objects). NULL when it is not JSON. The
 * caller owns the result (json_decref). */
json_t *tk_json_parse(const char *text, size_t len);

#endif
