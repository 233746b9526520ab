/*
 * json_esc.h - append text and JSON-escaped strings into a fixed, caller-owned buffer.
 *
 * Used where allocation is unwelcome (the logger). Writes stop at `cap` and set `truncated`;
 * the buffer is never NUL-terminated by these functions.
 */
#ifndef TK_COMMON_JSON_ESC_H
#define TK_COMMON_JSON_ESC_H

#include <stdbool.h>
#include <stddef.h>

typedef struct tk_json_esc_s {
    char *buf;
    size_t len;
    size_t cap;
    bool truncated;
} tk_json_esc_t;

void tk_json_esc_init(tk_json_esc_t *w, char *buf, size_t cap);

/* Append bytes as they are. */
void tk_json_esc_rawn(tk_json_esc_t *w, const char *s, size_t n);
void tk_json_esc_raw(tk_json_esc_t *w, const char *s);

/* Append the contents of a JSON string literal for `s` (quotes not included): escapes
 * quote, backslash and control characters; invalid UTF-8 bytes become U+FFFD. */
void tk_json_esc_str(tk_json_esc_t *w, const char *s);

#endif
