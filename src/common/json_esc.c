/*
 * json_esc.c - fixed-buffer JSON string escaping (see json_esc.h).
 */
#include <stdio.h>
#include <string.h>

#include "common/json_esc.h"

void tk_json_esc_init(tk_json_esc_t *w, char *buf, size_t cap)
{
    w->buf = buf;
    w->len = 0;
    w->cap = cap;
    w->truncated = false;
}

void tk_json_esc_rawn(tk_json_esc_t *w, const char *s, size_t n)
{
    if (w->truncated)
        return;
    if (n > w->cap - w->len) {
        w->truncated = true;
        return;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

void tk_json_esc_raw(tk_json_esc_t *w, const char *s)
{
    tk_json_esc_rawn(w, s, strlen(s));
}

/* Length of the valid UTF-8 sequence starting at s, or 0 if it is not valid. */
static size_t utf8_seq_len(const unsigned char *s)
{
    size_t n;
    if (s[0] < 0x80)
        return 1;
    if ((s[0] & 0xE0) == 0xC0 && s[0] >= 0xC2)
        n = 2;
    else if ((s[0] & 0xF0) == 0xE0)
        n = 3;
    else if ((s[0] & 0xF8) == 0xF0 && s[0] <= 0xF4)
        n = 4;
    else
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return n;
}

void tk_json_esc_str(tk_json_esc_t *w, const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    while (*s && !w->truncated) {
        char esc[8];
        switch (*s) {
        case '"':
            tk_json_esc_raw(w, "\\\"");
            s++;
            continue;
        case '\\':
            tk_json_esc_raw(w, "\\\\");
            s++;
            continue;
        case '\n':
            tk_json_esc_raw(w, "\\n");
            s++;
            continue;
        case '\r':
            tk_json_esc_raw(w, "\\r");
            s++;
            continue;
        case '\t':
            tk_json_esc_raw(w, "\\t");
            s++;
            continue;
        default:
            break;
        }
        if (*s < 0x20) {
            snprintf(esc, sizeof(esc), "\\u%04x", *s);
            tk_json_esc_raw(w, esc);
            s++;
            continue;
        }
        size_t n = utf8_seq_len(s);
        if (n == 0) {
            tk_json_esc_raw(w, "\\ufffd");
            s++;
            continue;
        }
        tk_json_esc_rawn(w, (const char *)s, n);
        s += n;
    }
}
