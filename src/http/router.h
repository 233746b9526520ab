/*
 * router.h - route table, path matching and percent-decoding for the HTTP server.
 *
 * Pure functions over strings: no libmicrohttpd, no allocation while matching, so the code
 * that sees every byte a client sends can be unit-tested and fuzzed on its own
 * (fuzz/http_request/). http.c is the only user in the library.
 *
 * Matching rules:
 *   - a pattern is "/" or a sequence of "/segment" where a segment is a literal or a
 *     "{name}" parameter; a path matches when it has as many segments and each literal is
 *     equal (after percent-decoding the path segment) and each parameter is non-empty;
 *   - one trailing slash in the path is ignored; empty segments ("//") match nothing;
 *   - segments are split before decoding, so "%2F" inside a parameter stays in it;
 *   - a literal segment beats a parameter in the same position, whatever the table order
 *     ("/v1/dlq/stats" wins over "/v1/dlq/{id}"); among equals the first route wins;
 *   - HEAD is served by a GET route unless the table has its own HEAD route.
 */
#ifndef TK_HTTP_ROUTER_H
#define TK_HTTP_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include "http/http.h"

/* Most segments a pattern (and hence a matching path) may have. */
#define TK_HTTP_MAX_SEGMENTS 16

/* Method bits, for the set of methods a path accepts. */
enum {
    TK_HTTP_M_GET = 1u << 0,
    TK_HTTP_M_HEAD = 1u << 1,
    TK_HTTP_M_POST = 1u << 2,
    TK_HTTP_M_PUT = 1u << 3,
    TK_HTTP_M_PATCH = 1u << 4,
    TK_HTTP_M_DELETE = 1u << 5,
    TK_HTTP_M_OPTIONS = 1u << 6
};

/* Outcome of tk_http_router_match(). */
typedef enum {
    TK_HTTP_ROUTE_FOUND = 0,          /* m->route is set */
    TK_HTTP_ROUTE_NOT_FOUND,          /* no route has this path */
    TK_HTTP_ROUTE_METHOD_NOT_ALLOWED, /* the path exists for the methods in m->allowed */
    TK_HTTP_ROUTE_BAD_PATH            /* invalid percent-encoding, or %00, in the path */
} tk_http_route_result_t;

typedef struct tk_http_router_s tk_http_router_t;

/* A route parameter found in the path: `name` points into the router, `value` into the
 * caller's scratch buffer (decoded, NUL-terminated). */
typedef struct tk_http_param_s {
    const char *name;
    const char *value;
} tk_http_param_t;

typedef struct tk_http_match_s {
    const tk_http_route_t *route; /* the router's copy of the matched route, or NULL */
    unsigned allowed;             /* TK_HTTP_M_* accepted by the path (HEAD with GET) */
    int nparams;
    tk_http_param_t params[TK_HTTP_MAX_SEGMENTS];
} tk_http_match_t;

/* Validate and compile `n` routes. The table is copied (patterns included), so it need not
 * outlive the router. TK_OK, TK_EINVAL (bad method or pattern; err says which) or
 * TK_ENOMEM. Free with tk_http_router_free(). */
int tk_http_router_new(const tk_http_route_t *routes, size_t n, tk_http_router_t **out,
                       tk_error_t *err);

/* Free a router. Accepts NULL. */
void tk_http_router_free(tk_http_router_t *r);

/* Match `method` and the raw (still percent-encoded) `path` of `path_len` bytes, without
 * query string. `scratch` must hold at least path_len + 1 bytes; decoded parameter values
 * live there. Thread-safe: the router is read-only after tk_http_router_new(). */
tk_http_route_result_t tk_http_router_match(const tk_http_router_t *r, const char *method,
                                            const char *path, size_t path_len, char *scratch,
                                            tk_http_match_t *m);

/* TK_HTTP_M_* bit of an upper-case method name, 0 for any other method. */
unsigned tk_http_method_bit(const char *method);

/* Write an Allow header value for `allowed` ("GET, HEAD, POST, OPTIONS"; OPTIONS is always
 * listed since the server answers preflights) into buf. Returns the length (< cap). */
size_t tk_http_allow_format(unsigned allowed, char *buf, size_t cap);

/* Percent-decode `n` bytes of `src` into `dst` (which may equal src: decoding never grows);
 * with `plus_is_space`, '+' becomes ' ' (query strings). Writes a NUL after the result.
 * Returns the decoded length, or -1 for a '%' not followed by two hex digits or for %00. */
long tk_http_pct_decode(char *dst, const char *src, size_t n, bool plus_is_space);

/* true if every '%' in the n bytes of `s` starts a valid escape other than %00. */
bool tk_http_pct_valid(const char *s, size_t n);

/* Decode a query string ("a=1&b=x%20y", no '?') in place: each pair becomes "key\0value\0"
 * within the same bytes and is reported through `emit` (called for every non-empty pair, in
 * order; a key without '=' has the value ""). Returns the number of pairs, or -1 for an
 * invalid escape (the buffer is then partly decoded). */
int tk_http_query_decode(char *q, size_t n,
                         void (*emit)(void *cls, const char *key, const char *value), void *cls);

#endif
