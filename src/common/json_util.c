/*
 * json_util.c - lenient decoding of database JSON (see json_util.h).
 */
#include "common/json_util.h"

json_t *tk_json_parse(const char *text, size_t len)
{
    if (text == NULL)
        return NULL;
    json_error_t err;
    json_t *doc = json_loadb(text, len, JSON_DECODE_ANY, &err);
    if (doc == NULL && json_error_code(&err) == json_error_numeric_overflow)
        doc = json_loadb(text, len, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, NULL);
    return doc;
}
