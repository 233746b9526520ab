/*
 * http_client.h - a small blocking HTTP client for the CLI (libcurl): one JSON request, the
 * status and body back. Used by `tasker task ...`, `tasker template list` and the demo.
 */
#ifndef TK_CLI_HTTP_CLIENT_H
#define TK_CLI_HTTP_CLIENT_H

#include <stddef.h>

#include "tasker/error.h"

typedef struct tk_http_reply_s {
    long status; /* HTTP status */
    char *body;  /* NUL-terminated response body (free with tk_http_reply_free) */
    size_t len;
} tk_http_reply_t;

/* Send `method` to base_url + path with an optional JSON body; wait up to timeout_ms.
 * TK_OK with *reply filled (any HTTP status, 4xx and 5xx included); TK_ECONN with a message
 * naming the URL when the server cannot be reached; TK_ETIMEDOUT. */
int tk_http_request(const char *base_url, const char *method, const char *path,
                    const char *json_body, long timeout_ms, tk_http_reply_t *reply,
                    tk_error_t *err);

void tk_http_reply_free(tk_http_reply_t *reply);

/* `text` percent-encoded for a URL query value (RFC 3986 unreserved characters kept).
 * Returns a malloc'd string, or NULL when out of memory. */
char *tk_http_escape(const char *text);

/* The message of Tasker's error envelope in `body`, or the body itself (static buffer). */
const char *tk_http_error_message(const char *body);

#endif
