/*
 * http.h - embedded HTTP/1.1 server for the REST API (:8080) and worker health (:8081).
 *
 * A server is a static route table ({method, pattern, handler}) served by GNU
 * libmicrohttpd in thread-per-connection mode: every TCP connection has its own thread, so a
 * handler may block (long polls with wait_ms, database calls) without delaying requests on
 * other connections. Keep-alive connections are reused for any number of requests.
 *
 * The server answers by itself:
 *   404 NOT_FOUND            no route has the path
 *   405 METHOD_NOT_ALLOWED   the path exists for other methods (with an Allow header)
 *   204                      OPTIONS preflight for a known path (CORS allow-methods/headers)
 *   400 BAD_REQUEST          invalid percent-encoding (or %00) in the path or query string
 *   413 PAYLOAD_TOO_LARGE    body larger than max_body_bytes (decided from Content-Length
 *                            before reading when present, while reading otherwise)
 *   500 INTERNAL_ERROR       the handler returned without responding
 *   503 SERVICE_UNAVAILABLE  a request arrived while the server is stopping
 * Errors use Tasker's envelope {"error":{"code":"<CODE>","message":"<text>"}}. Every
 * response carries "x-request-id" (a fresh UUIDv7 per request; ids from clients are not
 * used) and "Access-Control-Allow-Origin: *". Malformed HTTP (bad request line, oversized
 * headers) is answered by libmicrohttpd itself with a plain 4xx and no such headers.
 *
 * Each request is logged on completion at debug level (warn for 5xx) with the fields
 * method, path, status, duration_us and request_id.
 */
#ifndef TK_HTTP_HTTP_H
#define TK_HTTP_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tasker/error.h"

typedef struct tk_http_server_s tk_http_server_t;
typedef struct tk_http_request_s tk_http_request_t;

/* A request handler. Runs on the connection's thread; must call one of the tk_http_respond*
 * functions exactly once (returning without a response sends 500 INTERNAL_ERROR). It may
 * block; stop() waits for it. */
typedef void (*tk_http_handler_fn)(tk_http_request_t *req);

/* One route. `method` is upper case: GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS.
 * `pattern` is "/" or "/seg/seg..." where a segment is literal text or a "{name}"
 * parameter, e.g. "/v1/tasks/{task_uuid}/workflow_steps/{step_uuid}" (at most 16 segments).
 * A literal segment is preferred to a parameter in the same position; otherwise the first
 * matching route wins. A HEAD request is served by the GET route unless the table has a HEAD
 * route (tk_http_method() then says "HEAD" and the body is not sent). An OPTIONS request is
 * answered by the server (CORS preflight) unless the table has an OPTIONS route. */
typedef struct tk_http_route_s {
    const char *method;
    const char *pattern;
    tk_http_handler_fn handler;
} tk_http_route_t;

typedef struct tk_http_options_s {
    const char *bind_address; /* numeric IPv4/IPv6 address, "localhost" or "*"; NULL: "0.0.0.0" */
    uint16_t port;            /* 0: any free port (see tk_http_server_port()) */
    size_t max_body_bytes;    /* 0: 1 MiB */
    const tk_http_route_t *routes; /* copied at start: need not outlive the call */
    size_t nroutes;
    void *context;              /* handed to handlers through tk_http_context() */
    unsigned request_timeout_s; /* idle timeout of a connection; 0: 30 s */
    unsigned max_connections;   /* simultaneous connections; 0: 1024 */
    const char *name;           /* log component, e.g. "http.api"; NULL: "http" (copied) */
} tk_http_options_t;

/* Start a server: bind, listen and serve on background threads until tk_http_server_stop().
 * TK_OK; TK_EINVAL for a bad option or route (err says which); TK_EIO when the socket cannot
 * be bound or the daemon cannot start (err carries the reason); TK_ENOMEM.
 * *out is set only on success. */
int tk_http_server_start(const tk_http_options_t *opts, tk_http_server_t **out, tk_error_t *err);

/* Stop a server: stop accepting connections, answer new requests on open connections with
 * 503, wait until every request already being handled has been answered (a blocking handler
 * delays this: long polls should watch their own shutdown signal), then close all
 * connections and free everything. Accepts NULL. Call once, not from a handler. */
void tk_http_server_stop(tk_http_server_t *srv);

/* The TCP port the server listens on (the chosen one when started with port 0). */
uint16_t tk_http_server_port(const tk_http_server_t *srv);

/*
 * Request accessors. The request and every string returned below are valid only during the
 * handler call. A request is handled by one thread; do not share it with others.
 */

/* Method as sent ("GET", "POST", ...). */
const char *tk_http_method(const tk_http_request_t *req);

/* Path as sent, still percent-encoded, without the query string. */
const char *tk_http_path(const tk_http_request_t *req);

/* Pattern of the matched route, e.g. "/v1/tasks/{task_uuid}" (handy as a metrics label). */
const char *tk_http_route_pattern(const tk_http_request_t *req);

/* Value of the route parameter `name` (percent-decoded), or NULL if the route has none. */
const char *tk_http_param(const tk_http_request_t *req, const char *name);

/* Value of query parameter `name` (percent-decoded, '+' as space), or NULL when absent; ""
 * for "?name" or "?name=". With repeated keys the first wins. Keys are case-sensitive. */
const char *tk_http_query(tk_http_request_t *req, const char *name);

/* Value of request header `name` (case-insensitive), or NULL. */
const char *tk_http_header(const tk_http_request_t *req, const char *name);

/* The request body (NUL-terminated for convenience; may contain NULs) and its length in
 * *len (if len is not NULL). "" with length 0 when there is none. */
const char *tk_http_body(const tk_http_request_t *req, size_t *len);

/* The request id sent back in x-request-id (36 characters). */
const char *tk_http_request_id(const tk_http_request_t *req);

/* The opaque pointer given as tk_http_options_t.context. */
void *tk_http_context(const tk_http_request_t *req);

/*
 * Responding. Exactly one response per request: the first tk_http_respond* call wins; a
 * second one is a programming error, is logged and returns TK_EINVAL. The body is copied,
 * so the caller may free it as soon as the call returns.
 */

/* Respond with `status` and `len` bytes of `body` (may be NULL when len is 0). A NULL
 * content_type sends no Content-Type header. TK_OK, TK_EINVAL (already responded, a status
 * outside 200..599, or a content type with CR/LF), TK_ENOMEM. */
int tk_http_respond(tk_http_request_t *req, int status, const char *content_type, const char *body,
                    size_t len);

/* Respond with a NUL-terminated JSON text as application/json. */
int tk_http_respond_json(tk_http_request_t *req, int status, const char *json);

/* Respond with Tasker's error envelope {"error":{"code":code,"message":<formatted>}}; the
 * message is JSON-escaped (and cut at 2 KiB). `code` is e.g. "NOT_FOUND". */
int tk_http_respond_error(tk_http_request_t *req, int status, const char *code, const char *fmt,
                          ...) __attribute__((format(printf, 4, 5)));

/* Add a response header (e.g. "Retry-After", "Location"); may be called before or after
 * responding, during the handler. Both strings are copied. TK_EINVAL for an empty or
 * malformed name or a value with CR or LF (header injection); TK_ENOMEM. */
int tk_http_add_header(tk_http_request_t *req, const char *name, const char *value);

/* true once a response has been given. */
bool tk_http_responded(const tk_http_request_t *req);

#endif
