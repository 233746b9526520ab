/*
 * fuzz_router.c - libFuzzer harness for the HTTP router, percent-decoding and query parsing
 * (src/http/router.c), i.e. everything the server does with a request target before a
 * handler runs. Not built by CMake nor run by ctest; build and run by hand:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Iinclude -Isrc \
 *       fuzz/http_request/fuzz_router.c src/http/router.c src/common/error.c \
 *       -o build/fuzz_router
 *   build/fuzz_router -max_total_time=60 fuzz/http_request/corpus
 *
 * Input: the first byte picks the method, the rest is the request target ("/path?query").
 * Besides memory errors the harness checks the invariants the server relies on.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/router.h"

static void h(tk_http_request_t *req)
{
    (void)req;
}

static const tk_http_route_t routes[] = {
    {"GET", "/", h},
    {"GET", "/health", h},
    {"POST", "/v1/tasks", h},
    {"GET", "/v1/tasks", h},
    {"GET", "/v1/tasks/{task_uuid}", h},
    {"DELETE", "/v1/tasks/{task_uuid}", h},
    {"GET", "/v1/tasks/{task_uuid}/workflow_steps", h},
    {"GET", "/v1/tasks/{task_uuid}/workflow_steps/{step_uuid}", h},
    {"PATCH", "/v1/tasks/{task_uuid}/workflow_steps/{step_uuid}", h},
    {"GET", "/v1/templates/{namespace}/{name}/{version}", h},
    {"GET", "/v1/dlq/{id}", h},
    {"GET", "/v1/dlq/stats", h},
    {"OPTIONS", "/v1/opt", h},
};

static const char *const methods[] = {"GET",    "HEAD",    "POST", "PUT", "PATCH",
                                      "DELETE", "OPTIONS", "BREW", ""};

static tk_http_router_t *router;

static void on_pair(void *cls, const char *key, const char *value)
{
    size_t *total = cls;
    if (key[0] == '\0')
        abort(); /* empty keys are skipped */
    *total += strlen(key) + strlen(value);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (router == NULL &&
        tk_http_router_new(routes, sizeof(routes) / sizeof(routes[0]), &router, NULL) != 0)
        abort();
    if (size == 0)
        return 0;
    const char *method = methods[data[0] % (sizeof(methods) / sizeof(methods[0]))];
    size_t n = size - 1;
    char *target = malloc(n + 1);
    char *scratch = malloc(n + 1);
    memcpy(target, data + 1, n);
    target[n] = '\0';

    /* The server sees C strings: cut at an embedded NUL as MHD would. */
    n = strlen(target);
    char *q = strchr(target, '?');
    size_t path_len = q ? (size_t)(q - target) : n;

    tk_http_match_t m;
    tk_http_route_result_t r = tk_http_router_match(router, method, target, path_len, scratch, &m);
    if (r == TK_HTTP_ROUTE_FOUND) {
        if (m.route == NULL || m.nparams > TK_HTTP_MAX_SEGMENTS)
            abort();
        for (int i = 0; i < m.nparams; i++)
            if (m.params[i].value[0] == '\0' || m.params[i].value < scratch ||
                m.params[i].value + strlen(m.params[i].value) > scratch + path_len)
                abort();
    } else if (m.route != NULL || m.nparams != 0) {
        abort();
    }
    if (r == TK_HTTP_ROUTE_METHOD_NOT_ALLOWED && m.allowed == 0)
        abort();
    if (path_len > 0 && target[0] == '/' &&
        (r == TK_HTTP_ROUTE_BAD_PATH) == tk_http_pct_valid(target, path_len))
        abort(); /* a bad path exactly when the encoding is invalid */

    char allow[128];
    if (tk_http_allow_format(m.allowed, allow, sizeof(allow)) >= sizeof(allow))
        abort();

    if (q != NULL) {
        size_t qlen = strlen(q + 1);
        bool valid = tk_http_pct_valid(q + 1, qlen);
        size_t total = 0;
        int pairs = tk_http_query_decode(q + 1, qlen, on_pair, &total);
        if ((pairs >= 0) != valid || total > qlen)
            abort();
    }

    /* Decoding in place and into a separate buffer agree. */
    char *copy = malloc(n + 1);
    memcpy(copy, target, n + 1);
    long a = tk_http_pct_decode(scratch, target, path_len, true);
    long b = tk_http_pct_decode(copy, copy, path_len, true);
    if (a != b || (a >= 0 && memcmp(scratch, copy, (size_t)a + 1) != 0))
        abort();
    free(copy);
    free(target);
    free(scratch);
    return 0;
}
