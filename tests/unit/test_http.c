/*
 * test_http.c - the HTTP server (src/http) driven by libcurl and raw sockets, no database.
 *
 * Covers the router on its own (matching, decoding, query strings), then a live server on
 * 127.0.0.1 and a free port: parameters and URL decoding, query strings, JSON echo, 404/405
 * with Allow, OPTIONS preflight, 413 by Content-Length and by chunked upload, a handler that
 * does not respond (500) or responds twice, the error envelope, x-request-id and CORS
 * headers, keep-alive reuse over 1000 requests (median round trip printed), a slow handler
 * that does not delay others, stop() waiting for an in-flight request, an idle timeout that
 * does not cut a long handler, the request log line, and garbage from raw sockets.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "common/clock.h"
#include "common/uuid.h"
#include "http/http.h"
#include "http/router.h"
#include "tasker/log.h"

#define MAX_BODY 1024

/* ---- handlers ---------------------------------------------------------------------------- */

static void h_hello(tk_http_request_t *req)
{
    tk_http_respond(req, 200, "text/plain", "hello", 5);
}

/* Echo route parameters as JSON (built with jansson so values are escaped). */
static void h_params(tk_http_request_t *req)
{
    json_t *o = json_object();
    const char *names[] = {"task_uuid", "step_uuid", "id"};
    for (size_t i = 0; i < 3; i++) {
        const char *v = tk_http_param(req, names[i]);
        if (v != NULL)
            json_object_set_new(o, names[i], json_string(v));
    }
    json_object_set_new(o, "pattern", json_string(tk_http_route_pattern(req)));
    json_object_set_new(o, "method", json_string(tk_http_method(req)));
    json_object_set_new(o, "path", json_string(tk_http_path(req)));
    char *s = json_dumps(o, JSON_COMPACT);
    tk_http_respond_json(req, 200, s);
    free(s);
    json_decref(o);
}

static void h_dlq_stats(tk_http_request_t *req)
{
    tk_http_respond_json(req, 200, "{\"stats\":true}");
}

static void h_query(tk_http_request_t *req)
{
    json_t *o = json_object();
    const char *names[] = {"wait_ms", "a", "flag", "missing", "sp ace"};
    for (size_t i = 0; i < 5; i++) {
        const char *v = tk_http_query(req, names[i]);
        json_object_set_new(o, names[i], v ? json_string(v) : json_null());
    }
    char *s = json_dumps(o, JSON_COMPACT);
    tk_http_respond_json(req, 200, s);
    free(s);
    json_decref(o);
}

static void h_echo(tk_http_request_t *req)
{
    size_t len = 0;
    const char *body = tk_http_body(req, &len);
    assert_int_equal(body[len], '\0');
    const char *ct = tk_http_header(req, "content-TYPE");
    tk_http_respond(req, 200, ct ? ct : "application/octet-stream", body, len);
}

static void h_body_len(tk_http_request_t *req)
{
    char out[32];
    size_t len = 0;
    tk_http_body(req, &len);
    snprintf(out, sizeof(out), "%zu", len);
    tk_http_respond(req, 200, "text/plain", out, strlen(out));
}

static void h_noresp(tk_http_request_t *req)
{
    (void)req;
}

static int twice_rc = 1;
static void h_twice(tk_http_request_t *req)
{
    tk_http_respond(req, 200, "text/plain", "first", 5);
    twice_rc = tk_http_respond_json(req, 201, "{}");
}

#define ERROR_TEXT "a \"quoted\" thing\nwith newline, tab\t, backslash \\ and caf\xc3\xa9"
static void h_error(tk_http_request_t *req)
{
    tk_http_respond_error(req, 409, "CONFLICT", "%s", ERROR_TEXT);
}

static int64_t slow_ms = 500;
static void h_slow(tk_http_request_t *req)
{
    tk_sleep_ms(slow_ms);
    tk_http_respond(req, 200, "text/plain", "slow", 4);
}

static int header_rc[3];
static void h_headers(tk_http_request_t *req)
{
    header_rc[0] = tk_http_add_header(req, "Retry-After", "5");
    tk_http_respond_error(req, 503, "BACKPRESSURE", "busy");
    header_rc[1] = tk_http_add_header(req, "Location", "/v1/tasks/x"); /* after responding */
    header_rc[2] = tk_http_add_header(req, "X-Evil", "a\r\nSet-Cookie: x=1");
}

static void h_ctx(tk_http_request_t *req)
{
    char out[128];
    snprintf(out, sizeof(out), "%s %s", (const char *)tk_http_context(req),
             tk_http_request_id(req));
    tk_http_respond(req, 200, "text/plain", out, strlen(out));
}

static const tk_http_route_t routes[] = {
    {"GET", "/hello", h_hello},
    {"GET", "/v1/tasks/{task_uuid}", h_params},
    {"DELETE", "/v1/tasks/{task_uuid}", h_params},
    {"GET", "/v1/tasks/{task_uuid}/workflow_steps/{step_uuid}", h_params},
    {"GET", "/v1/dlq/{id}", h_params}, /* listed first: the literal below must still win */
    {"GET", "/v1/dlq/stats", h_dlq_stats},
    {"GET", "/query", h_query},
    {"POST", "/echo", h_echo},
    {"GET", "/body_len", h_body_len},
    {"GET", "/noresp", h_noresp},
    {"GET", "/twice", h_twice},
    {"GET", "/error", h_error},
    {"GET", "/slow", h_slow},
    {"GET", "/headers", h_headers},
    {"GET", "/ctx", h_ctx},
    {"GET", "/", h_hello},
};

/* ---- client helpers ---------------------------------------------------------------------- */

typedef struct resp_s {
    long status;
    char body[16384];
    size_t body_len;
    char headers[8192];
    size_t headers_len;
} resp_t;

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    resp_t *r = ud;
    size_t len = size * n;
    size_t room = sizeof(r->body) - 1 - r->body_len;
    memcpy(r->body + r->body_len, p, len < room ? len : room);
    r->body_len += len < room ? len : room;
    r->body[r->body_len] = '\0';
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    resp_t *r = ud;
    size_t len = size * n;
    if (len >= 5 && strncmp(p, "HTTP/", 5) == 0)
        r->headers_len = 0; /* a 100 Continue came first: keep the final header block */
    size_t room = sizeof(r->headers) - 1 - r->headers_len;
    memcpy(r->headers + r->headers_len, p, len < room ? len : room);
    r->headers_len += len < room ? len : room;
    r->headers[r->headers_len] = '\0';
    return len;
}

/* Value of response header `name` copied into out (trimmed), or false if absent. */
static bool resp_header(const resp_t *r, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *line = r->headers; *line;) {
        const char *end = strstr(line, "\r\n");
        if (end == NULL)
            end = line + strlen(line);
        if ((size_t)(end - line) > nl && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ')
                v++;
            size_t vl = (size_t)(end - v);
            if (vl >= cap)
                vl = cap - 1;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return true;
        }
        line = *end ? end + 2 : end;
    }
    return false;
}

static tk_http_server_t *server;
static uint16_t port;

static void url_for(char *url, size_t cap, uint16_t p, const char *path)
{
    snprintf(url, cap, "http://127.0.0.1:%u%s", (unsigned)p, path);
}

/* One request on handle h (a new one if NULL). Returns the status (0 on transport error). */
static long request_on(CURL *h, uint16_t p, const char *method, const char *path, const char *body,
                       long body_len, struct curl_slist *hdrs, resp_t *r)
{
    bool own = h == NULL;
    if (own)
        h = curl_easy_init();
    else
        curl_easy_reset(h);
    char url[4096];
    url_for(url, sizeof(url), p, path);
    memset(r, 0, sizeof(*r));
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
    if (hdrs != NULL)
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    if (body != NULL) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, body_len);
    }
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    else if (strcmp(method, "GET") != 0 || body != NULL)
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    CURLcode rc = curl_easy_perform(h);
    r->status = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    else
        print_message("curl: %s %s: %s\n", method, path, curl_easy_strerror(rc));
    if (own)
        curl_easy_cleanup(h);
    return r->status;
}

static long request(const char *method, const char *path, resp_t *r)
{
    return request_on(NULL, port, method, path, NULL, 0, NULL, r);
}

/* Parse an error envelope and check its code; returns the message (owned by *root). */
static const char *check_envelope(const resp_t *r, const char *code, json_t **root)
{
    json_error_t jerr;
    *root = json_loads(r->body, 0, &jerr);
    if (*root == NULL)
        fail_msg("error body is not JSON (%s): %s", jerr.text, r->body);
    json_t *e = json_object_get(*root, "error");
    assert_non_null(e);
    assert_int_equal(json_object_size(*root), 1);
    assert_int_equal(json_object_size(e), 2);
    assert_string_equal(json_string_value(json_object_get(e, "code")), code);
    const char *msg = json_string_value(json_object_get(e, "message"));
    assert_non_null(msg);
    char ct[128];
    assert_true(resp_header(r, "Content-Type", ct, sizeof(ct)));
    assert_string_equal(ct, "application/json");
    return msg;
}

static void expect_error(const resp_t *r, long status, const char *code)
{
    json_t *root;
    assert_int_equal(r->status, status);
    check_envelope(r, code, &root);
    json_decref(root);
}

/* ---- router, without a server ------------------------------------------------------------ */

static void test_router(void **state)
{
    (void)state;
    tk_http_router_t *r = NULL;
    assert_int_equal(tk_http_router_new(routes, sizeof(routes) / sizeof(routes[0]), &r, NULL),
                     TK_OK);
    char scratch[256];
    tk_http_match_t m;
    const char *p = "/v1/tasks/a%2Fb%20c/workflow_steps/s1/";
    assert_int_equal(tk_http_router_match(r, "GET", p, strlen(p), scratch, &m),
                     TK_HTTP_ROUTE_FOUND);
    assert_string_equal(m.route->pattern, "/v1/tasks/{task_uuid}/workflow_steps/{step_uuid}");
    assert_int_equal(m.nparams, 2);
    assert_string_equal(m.params[0].name, "task_uuid");
    assert_string_equal(m.params[0].value, "a/b c");
    assert_string_equal(m.params[1].value, "s1");

    p = "/v1/dlq/stats";
    assert_int_equal(tk_http_router_match(r, "GET", p, strlen(p), scratch, &m),
                     TK_HTTP_ROUTE_FOUND);
    assert_string_equal(m.route->pattern, "/v1/dlq/stats");
    p = "/v1/dlq/%73tats"; /* decoded before comparing with literals */
    assert_int_equal(tk_http_router_match(r, "GET", p, strlen(p), scratch, &m),
                     TK_HTTP_ROUTE_FOUND);
    assert_string_equal(m.route->pattern, "/v1/dlq/stats");
    p = "/v1/dlq/other";
    assert_int_equal(tk_http_router_match(r, "HEAD", p, strlen(p), scratch, &m),
                     TK_HTTP_ROUTE_FOUND);
    assert_string_equal(m.route->pattern, "/v1/dlq/{id}");

    p = "/v1/tasks/x";
    assert_int_equal(tk_http_router_match(r, "POST", p, strlen(p), scratch, &m),
                     TK_HTTP_ROUTE_METHOD_NOT_ALLOWED);
    char allow[128];
    tk_http_allow_format(m.allowed, allow, sizeof(allow));
    assert_string_equal(allow, "GET, HEAD, DELETE, OPTIONS");
    assert_int_equal(tk_http_router_match(r, "BREW", p, strlen(p), scratch, &m),
                     TK_HTTP_ROUTE_METHOD_NOT_ALLOWED);

    const char *nf[] = {"/v1/tasks",
                        "/v1/tasks//",
                        "/v1//tasks/x",
                        "/hello/x",
                        "/v1/tasks/x/y",
                        "relative",
                        "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s"};
    for (size_t i = 0; i < sizeof(nf) / sizeof(nf[0]); i++)
        assert_int_equal(tk_http_router_match(r, "GET", nf[i], strlen(nf[i]), scratch, &m),
                         TK_HTTP_ROUTE_NOT_FOUND);
    const char *bad[] = {"/v1/tasks/%zz", "/v1/tasks/%2", "/v1/tasks/%", "/v1/tasks/a%00b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(tk_http_router_match(r, "GET", bad[i], strlen(bad[i]), scratch, &m),
                         TK_HTTP_ROUTE_BAD_PATH);
    p = "/";
    assert_int_equal(tk_http_router_match(r, "GET", p, 1, scratch, &m), TK_HTTP_ROUTE_FOUND);
    assert_string_equal(m.route->pattern, "/");
    tk_http_router_free(r);
    tk_http_router_free(NULL);

    /* Invalid tables. */
    tk_error_t err;
    const tk_http_route_t bad_routes[][1] = {
        {{"GET", "no-slash", h_hello}},
        {{"GET", "/a//b", h_hello}},
        {{"GET", "/a/{}", h_hello}},
        {{"GET", "/a/{x}/{x}", h_hello}},
        {{"GET", "/a/{x", h_hello}},
        {{"GET", "/a/b{x}", h_hello}},
        {{"FETCH", "/a", h_hello}},
        {{"GET", "/a", NULL}},
        {{"GET", "/a/b c", h_hello}},
        {{"GET", "/a/%20", h_hello}},
        {{"GET", "/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16/17", h_hello}},
    };
    for (size_t i = 0; i < sizeof(bad_routes) / sizeof(bad_routes[0]); i++) {
        r = (tk_http_router_t *)&err; /* must be reset to NULL */
        assert_int_equal(tk_http_router_new(bad_routes[i], 1, &r, &err), TK_EINVAL);
        assert_null(r);
        assert_int_equal(err.code, TK_EINVAL);
        assert_non_null(strstr(err.message, "invalid route"));
    }
}

static void collect(void *cls, const char *key, const char *value)
{
    char *out = cls;
    size_t n = strlen(out);
    snprintf(out + n, 256 - n, "[%s=%s]", key, value);
}

static void test_decoding(void **state)
{
    (void)state;
    char buf[64];
    assert_int_equal(tk_http_pct_decode(buf, "a%41+b%2f", 9, false), 5);
    assert_string_equal(buf, "aA+b/");
    assert_int_equal(tk_http_pct_decode(buf, "a+b", 3, true), 3);
    assert_string_equal(buf, "a b");
    assert_int_equal(tk_http_pct_decode(buf, "%4", 2, false), -1);
    assert_int_equal(tk_http_pct_decode(buf, "%00", 3, false), -1);
    assert_int_equal(tk_http_pct_decode(buf, "%g0", 3, false), -1);
    assert_true(tk_http_pct_valid("a%20b", 5));
    assert_false(tk_http_pct_valid("a%2", 3));
    assert_false(tk_http_pct_valid("%00", 3));

    char q[] = "a=1&b=x+y%26z&&c&=skip&d=&a=2&e%3D=f%3D";
    char out[256] = "";
    assert_int_equal(tk_http_query_decode(q, strlen(q), collect, out), 6);
    assert_string_equal(out, "[a=1][b=x y&z][c=][d=][a=2][e==f=]");
    char bad[] = "a=%zz";
    assert_int_equal(tk_http_query_decode(bad, strlen(bad), NULL, NULL), -1);

    char allow[16];
    size_t n = tk_http_allow_format(TK_HTTP_M_GET | TK_HTTP_M_POST, allow, sizeof(allow));
    assert_true(n < sizeof(allow));
    assert_string_equal(allow, "GET, HEAD, POST"); /* cut at a method boundary */
}

/* ---- live server ------------------------------------------------------------------------- */

static char context_text[] = "the-context";

static int start_server(tk_http_server_t **srv, uint16_t *out_port, unsigned timeout_s)
{
    tk_http_options_t o = {.bind_address = "127.0.0.1",
                           .port = 0,
                           .max_body_bytes = MAX_BODY,
                           .routes = routes,
                           .nroutes = sizeof(routes) / sizeof(routes[0]),
                           .context = context_text,
                           .request_timeout_s = timeout_s,
                           .name = "http.test"};
    tk_error_t err;
    int rc = tk_http_server_start(&o, srv, &err);
    if (rc != TK_OK) {
        print_error("start failed: %s\n", err.message);
        return -1;
    }
    *out_port = tk_http_server_port(*srv);
    return *out_port != 0 ? 0 : -1;
}

static int group_setup(void **state)
{
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return start_server(&server, &port, 5);
}

static int group_teardown(void **state)
{
    (void)state;
    tk_http_server_stop(server);
    curl_global_cleanup();
    return 0;
}

static json_t *body_json(const resp_t *r)
{
    json_error_t jerr;
    json_t *o = json_loads(r->body, 0, &jerr);
    if (o == NULL)
        fail_msg("body is not JSON (%s): %s", jerr.text, r->body);
    return o;
}

static const char *jstr(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static void test_params(void **state)
{
    (void)state;
    resp_t r;
    assert_int_equal(request("GET", "/v1/tasks/abc%20def%2Fx%C3%A9", &r), 200);
    json_t *o = body_json(&r);
    assert_string_equal(jstr(o, "task_uuid"), "abc def/x\xc3\xa9");
    assert_string_equal(jstr(o, "pattern"), "/v1/tasks/{task_uuid}");
    assert_string_equal(jstr(o, "path"), "/v1/tasks/abc%20def%2Fx%C3%A9");
    assert_string_equal(jstr(o, "method"), "GET");
    json_decref(o);

    assert_int_equal(request("GET", "/v1/tasks/T1/workflow_steps/S1/", &r), 200);
    o = body_json(&r);
    assert_string_equal(jstr(o, "task_uuid"), "T1");
    assert_string_equal(jstr(o, "step_uuid"), "S1");
    json_decref(o);

    assert_int_equal(request("DELETE", "/v1/tasks/T2", &r), 200);
    o = body_json(&r);
    assert_string_equal(jstr(o, "method"), "DELETE");
    json_decref(o);

    assert_int_equal(request("GET", "/v1/dlq/stats", &r), 200);
    assert_string_equal(r.body, "{\"stats\":true}");
    assert_int_equal(request("GET", "/v1/dlq/0191", &r), 200);
    o = body_json(&r);
    assert_string_equal(jstr(o, "id"), "0191");
    json_decref(o);

    assert_int_equal(request("GET", "/", &r), 200);
    assert_string_equal(r.body, "hello");
    assert_int_equal(request("HEAD", "/hello", &r), 200);
    assert_int_equal(r.body_len, 0);

    /* Query string next to the path, and absolute-form targets are routed by their path. */
    assert_int_equal(request("GET", "/hello?x=1", &r), 200);
    assert_int_equal(request("GET", "/hello/?x=1#frag", &r), 200);

    assert_int_equal(request("GET", "/ctx", &r), 200);
    char ctx[64], id[TK_UUID_STR_LEN + 8];
    assert_int_equal(sscanf(r.body, "%63s %40s", ctx, id), 2);
    assert_string_equal(ctx, "the-context");
    char hid[64];
    assert_true(resp_header(&r, "x-request-id", hid, sizeof(hid)));
    assert_string_equal(id, hid);
}

static void test_query(void **state)
{
    (void)state;
    resp_t r;
    assert_int_equal(request("GET", "/query?wait_ms=250&a=x+y%21&a=second&flag&sp%20ace=1", &r),
                     200);
    json_t *o = body_json(&r);
    assert_string_equal(jstr(o, "wait_ms"), "250");
    assert_string_equal(jstr(o, "a"), "x y!");
    assert_string_equal(jstr(o, "flag"), "");
    assert_string_equal(jstr(o, "sp ace"), "1");
    assert_true(json_is_null(json_object_get(o, "missing")));
    json_decref(o);

    assert_int_equal(request("GET", "/query", &r), 200);
    o = body_json(&r);
    assert_true(json_is_null(json_object_get(o, "wait_ms")));
    json_decref(o);

    request("GET", "/query?a=%zz", &r);
    expect_error(&r, 400, "BAD_REQUEST");
    request("GET", "/query?a=%00", &r);
    expect_error(&r, 400, "BAD_REQUEST");
}

static void test_json_echo(void **state)
{
    (void)state;
    resp_t r;
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    const char *json = "{\"name\":\"linear\",\"context\":{\"n\":[1,2,3],\"s\":\"\\u00e9\\\"\"}}";
    assert_int_equal(request_on(NULL, port, "POST", "/echo", json, (long)strlen(json), h, &r), 200);
    assert_string_equal(r.body, json);
    char ct[64];
    assert_true(resp_header(&r, "Content-Type", ct, sizeof(ct)));
    assert_string_equal(ct, "application/json");

    /* Exactly at the limit is fine; an empty body too. */
    char big[MAX_BODY + 1];
    memset(big, 'x', MAX_BODY);
    big[MAX_BODY] = '\0';
    assert_int_equal(request_on(NULL, port, "POST", "/echo", big, MAX_BODY, h, &r), 200);
    assert_int_equal(r.body_len, MAX_BODY);
    assert_int_equal(request_on(NULL, port, "POST", "/echo", "", 0, h, &r), 200);
    assert_int_equal(r.body_len, 0);
    curl_slist_free_all(h);

    /* A body on GET is read and handed over. */
    assert_int_equal(request_on(NULL, port, "GET", "/body_len", "abc", 3, NULL, &r), 200);
    assert_string_equal(r.body, "3");
    assert_int_equal(request("GET", "/body_len", &r), 200);
    assert_string_equal(r.body, "0");
}

static void test_not_found_and_methods(void **state)
{
    (void)state;
    resp_t r;
    char allow[128];
    request("GET", "/nope", &r);
    expect_error(&r, 404, "NOT_FOUND");
    request("GET", "/v1/tasks", &r);
    expect_error(&r, 404, "NOT_FOUND");
    request("POST", "/nope", &r); /* body-less POST to an unknown path */
    expect_error(&r, 404, "NOT_FOUND");

    /* An early answer drains the body and keeps the connection. */
    CURL *h1 = curl_easy_init();
    long connects = -1;
    assert_int_equal(request_on(h1, port, "POST", "/nope", "{\"a\":1}", 7, NULL, &r), 404);
    assert_int_equal(request_on(h1, port, "GET", "/hello", NULL, 0, NULL, &r), 200);
    curl_easy_getinfo(h1, CURLINFO_NUM_CONNECTS, &connects);
    assert_int_equal(connects, 0);
    curl_easy_cleanup(h1);

    request("POST", "/v1/tasks/x", &r);
    expect_error(&r, 405, "METHOD_NOT_ALLOWED");
    assert_true(resp_header(&r, "Allow", allow, sizeof(allow)));
    assert_string_equal(allow, "GET, HEAD, DELETE, OPTIONS");
    request("PUT", "/echo", &r);
    expect_error(&r, 405, "METHOD_NOT_ALLOWED");
    assert_true(resp_header(&r, "Allow", allow, sizeof(allow)));
    assert_string_equal(allow, "POST, OPTIONS");

    /* Preflight. */
    struct curl_slist *h = curl_slist_append(NULL, "Origin: http://example.com");
    h = curl_slist_append(h, "Access-Control-Request-Method: DELETE");
    h = curl_slist_append(h, "Access-Control-Request-Headers: content-type, x-api-key");
    assert_int_equal(request_on(NULL, port, "OPTIONS", "/v1/tasks/x", NULL, 0, h, &r), 204);
    curl_slist_free_all(h);
    assert_true(resp_header(&r, "Access-Control-Allow-Methods", allow, sizeof(allow)));
    assert_string_equal(allow, "GET, HEAD, DELETE, OPTIONS");
    assert_true(resp_header(&r, "Access-Control-Allow-Headers", allow, sizeof(allow)));
    assert_string_equal(allow, "content-type, x-api-key");
    assert_true(resp_header(&r, "Access-Control-Allow-Origin", allow, sizeof(allow)));
    assert_string_equal(allow, "*");
    assert_int_equal(r.body_len, 0);
    request("OPTIONS", "/nope", &r);
    expect_error(&r, 404, "NOT_FOUND");

    request("GET", "/v1/tasks/%zz", &r);
    expect_error(&r, 400, "BAD_REQUEST");
    request("GET", "/v1/tasks/a%00b", &r);
    expect_error(&r, 400, "BAD_REQUEST");
}

static const char *chunk_src;
static size_t chunk_left;
static size_t read_chunks(char *buf, size_t size, size_t n, void *ud)
{
    (void)ud;
    size_t want = size * n;
    if (want > 300)
        want = 300; /* several chunks */
    if (want > chunk_left)
        want = chunk_left;
    memcpy(buf, chunk_src, want);
    chunk_src += want;
    chunk_left -= want;
    return want;
}

static long post_chunked(const char *data, size_t len, resp_t *r)
{
    CURL *c = curl_easy_init();
    char url[128];
    url_for(url, sizeof(url), port, "/echo");
    memset(r, 0, sizeof(*r));
    chunk_src = data;
    chunk_left = len;
    struct curl_slist *h = curl_slist_append(NULL, "Transfer-Encoding: chunked");
    h = curl_slist_append(h, "Content-Type: text/plain");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, read_chunks);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    else
        print_message("curl chunked: %s\n", curl_easy_strerror(rc));
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return r->status;
}

static void test_payload_too_large(void **state)
{
    (void)state;
    resp_t r;
    static char big[8 * MAX_BODY];
    memset(big, 'y', sizeof(big));

    /* Content-Length over the limit with "Expect: 100-continue": answered before the body. */
    struct curl_slist *h = curl_slist_append(NULL, "Expect: 100-continue");
    request_on(NULL, port, "POST", "/echo", big, (long)sizeof(big), h, &r);
    curl_slist_free_all(h);
    expect_error(&r, 413, "PAYLOAD_TOO_LARGE");

    /* Content-Length over the limit, body sent straight away. */
    h = curl_slist_append(NULL, "Expect:");
    request_on(NULL, port, "POST", "/echo", big, MAX_BODY + 1, h, &r);
    curl_slist_free_all(h);
    expect_error(&r, 413, "PAYLOAD_TOO_LARGE");

    /* Chunked: no Content-Length, decided while reading; the body is drained. */
    post_chunked(big, sizeof(big), &r);
    expect_error(&r, 413, "PAYLOAD_TOO_LARGE");
    assert_int_equal(post_chunked(big, 700, &r), 200);
    assert_int_equal(r.body_len, 700);

    /* The server still serves. */
    assert_int_equal(request("GET", "/hello", &r), 200);
}

static void test_handler_contract(void **state)
{
    (void)state;
    resp_t r;
    request("GET", "/noresp", &r);
    expect_error(&r, 500, "INTERNAL_ERROR");

    twice_rc = 1;
    assert_int_equal(request("GET", "/twice", &r), 200);
    assert_string_equal(r.body, "first");
    assert_int_equal(twice_rc, TK_EINVAL);

    assert_int_equal(request("GET", "/headers", &r), 503);
    assert_int_equal(header_rc[0], TK_OK);
    assert_int_equal(header_rc[1], TK_OK);
    assert_int_equal(header_rc[2], TK_EINVAL);
    char v[64];
    assert_true(resp_header(&r, "Retry-After", v, sizeof(v)));
    assert_string_equal(v, "5");
    assert_true(resp_header(&r, "Location", v, sizeof(v)));
    assert_string_equal(v, "/v1/tasks/x");
    assert_false(resp_header(&r, "Set-Cookie", v, sizeof(v)));
    assert_false(resp_header(&r, "X-Evil", v, sizeof(v)));
}

static void test_error_envelope(void **state)
{
    (void)state;
    resp_t r;
    assert_int_equal(request("GET", "/error", &r), 409);
    json_t *root;
    const char *msg = check_envelope(&r, "CONFLICT", &root);
    assert_string_equal(msg, ERROR_TEXT);
    json_decref(root);
    assert_non_null(strstr(r.body, "\\\"quoted\\\""));
    assert_non_null(strstr(r.body, "\\n"));
}

static void test_request_id_and_cors(void **state)
{
    (void)state;
    resp_t r;
    char ids[3][64], v[64];
    const char *paths[] = {"/hello", "/hello", "/nope"};
    for (int i = 0; i < 3; i++) {
        request("GET", paths[i], &r);
        assert_true(resp_header(&r, "x-request-id", ids[i], sizeof(ids[i])));
        tk_uuid_t u;
        assert_int_equal(strlen(ids[i]), 36);
        assert_int_equal(tk_uuid_parse(ids[i], &u), TK_OK);
        assert_true(resp_header(&r, "Access-Control-Allow-Origin", v, sizeof(v)));
        assert_string_equal(v, "*");
    }
    assert_string_not_equal(ids[0], ids[1]);
    assert_string_not_equal(ids[1], ids[2]);

    /* A client-provided id is not reused. */
    struct curl_slist *h = curl_slist_append(NULL, "x-request-id: client-chosen");
    request_on(NULL, port, "GET", "/hello", NULL, 0, h, &r);
    curl_slist_free_all(h);
    assert_true(resp_header(&r, "x-request-id", v, sizeof(v)));
    assert_string_not_equal(v, "client-chosen");
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_keepalive(void **state)
{
    (void)state;
    enum { N = 1000 };
    static int64_t us[N];
    CURL *h = curl_easy_init();
    resp_t r;
    long connects = 0;
    for (int i = 0; i < N; i++) {
        int64_t t0 = tk_clock_us();
        long status = request_on(h, port, "GET", "/hello", NULL, 0, NULL, &r);
        us[i] = tk_clock_us() - t0;
        assert_int_equal(status, 200);
        long c = 0;
        curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &c);
        connects += c;
    }
    curl_easy_cleanup(h);
    assert_int_equal(connects, 1);
    qsort(us, N, sizeof(us[0]), cmp_i64);
    print_message("keep-alive GET /hello round trip over %d requests: median %lld us, "
                  "p90 %lld us, p99 %lld us, min %lld us\n",
                  N, (long long)us[N / 2], (long long)us[N * 9 / 10], (long long)us[N * 99 / 100],
                  (long long)us[0]);
}

typedef struct call_s {
    uint16_t port;
    const char *path;
    long status;
    int64_t done_us;
} call_t;

static void *call_thread(void *arg)
{
    call_t *c = arg;
    resp_t *r = malloc(sizeof(*r));
    c->status = request_on(NULL, c->port, "GET", c->path, NULL, 0, NULL, r);
    c->done_us = tk_clock_us();
    free(r);
    return NULL;
}

/* 100 requests of several kinds on one keep-alive connection; *arg = number of surprises. */
static void *mixed_thread(void *arg)
{
    int *failures = arg;
    int bad = 0;
    CURL *h = curl_easy_init();
    resp_t *r = malloc(sizeof(*r));
    char body[64];
    for (int i = 0; i < 100; i++) {
        long st;
        switch (i % 5) {
        case 0:
            st = request_on(h, port, "GET", "/v1/tasks/abc/workflow_steps/def", NULL, 0, NULL, r);
            bad += st != 200 || strstr(r->body, "\"def\"") == NULL;
            break;
        case 1:
            snprintf(body, sizeof(body), "{\"i\":%d}", i);
            st = request_on(h, port, "POST", "/echo", body, (long)strlen(body), NULL, r);
            bad += st != 200 || strcmp(r->body, body) != 0;
            break;
        case 2:
            bad += request_on(h, port, "GET", "/nope/x", NULL, 0, NULL, r) != 404;
            break;
        case 3:
            bad += request_on(h, port, "GET", "/query?wait_ms=5", NULL, 0, NULL, r) != 200;
            break;
        default:
            bad += request_on(h, port, "PATCH", "/hello", NULL, 0, NULL, r) != 405;
            break;
        }
    }
    long connects = 0;
    curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &connects);
    bad += connects != 0; /* still the first connection */
    free(r);
    curl_easy_cleanup(h);
    *failures = bad;
    return NULL;
}

static void test_concurrency(void **state)
{
    (void)state;
    slow_ms = 500;
    call_t slow = {port, "/slow", 0, 0};
    pthread_t t;
    int64_t t0 = tk_clock_us();
    assert_int_equal(pthread_create(&t, NULL, call_thread, &slow), 0);
    tk_sleep_ms(50);
    resp_t r;
    int64_t t1 = tk_clock_us();
    assert_int_equal(request("GET", "/hello", &r), 200);
    int64_t fast_us = tk_clock_us() - t1;
    pthread_join(t, NULL);
    assert_int_equal(slow.status, 200);
    assert_true(slow.done_us - t0 >= 500000);
    assert_true(fast_us < 250000); /* not queued behind the slow handler */

    /* Many clients at once, each on its own connection. */
    enum { THREADS = 16 };
    pthread_t ts[THREADS];
    call_t calls[THREADS];
    for (int i = 0; i < THREADS; i++) {
        calls[i] = (call_t){port, i % 4 == 0 ? "/v1/tasks/x" : "/hello", 0, 0};
        assert_int_equal(pthread_create(&ts[i], NULL, call_thread, &calls[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(ts[i], NULL);
        assert_int_equal(calls[i].status, 200);
    }

    /* Several keep-alive clients mixing routes, bodies and errors at the same time. */
    enum { MIXERS = 6 };
    pthread_t ms[MIXERS];
    int failures[MIXERS];
    for (int i = 0; i < MIXERS; i++) {
        failures[i] = -1;
        assert_int_equal(pthread_create(&ms[i], NULL, mixed_thread, &failures[i]), 0);
    }
    for (int i = 0; i < MIXERS; i++) {
        pthread_join(ms[i], NULL);
        assert_int_equal(failures[i], 0);
    }
}

static void *stop_thread(void *arg)
{
    tk_http_server_t *s = arg;
    int64_t t0 = tk_clock_us();
    tk_http_server_stop(s);
    int64_t *us = malloc(sizeof(*us));
    *us = tk_clock_us() - t0;
    return us;
}

static void test_stop_waits_for_inflight(void **state)
{
    (void)state;
    tk_http_server_t *s = NULL;
    uint16_t p = 0;
    assert_int_equal(start_server(&s, &p, 5), 0);
    resp_t r;
    CURL *ka = curl_easy_init(); /* an idle keep-alive connection during the stop */
    assert_int_equal(request_on(ka, p, "GET", "/hello", NULL, 0, NULL, &r), 200);

    slow_ms = 500;
    call_t slow = {p, "/slow", 0, 0};
    pthread_t t, st;
    assert_int_equal(pthread_create(&t, NULL, call_thread, &slow), 0);
    tk_sleep_ms(150);
    assert_int_equal(pthread_create(&st, NULL, stop_thread, s), 0);
    tk_sleep_ms(100);

    /* While stop() drains: no new connections, and a new request on an open connection is
     * turned away with 503 and Connection: close. */
    int64_t t0 = tk_clock_us();
    assert_int_equal(request_on(NULL, p, "GET", "/hello", NULL, 0, NULL, &r), 0);
    assert_true(tk_clock_us() - t0 < 1000000);
    request_on(ka, p, "GET", "/hello", NULL, 0, NULL, &r);
    expect_error(&r, 503, "SERVICE_UNAVAILABLE");
    char v[32];
    assert_true(resp_header(&r, "Connection", v, sizeof(v)));
    assert_string_equal(v, "close");
    curl_easy_cleanup(ka);

    void *ret = NULL;
    pthread_join(st, &ret);
    int64_t stop_us = *(int64_t *)ret;
    free(ret);
    pthread_join(t, NULL);
    assert_int_equal(slow.status, 200); /* answered, not cut off */
    assert_true(stop_us >= 200000);     /* waited for the slow request */
    print_message("stop() returned after %lld us with a 500 ms request in flight\n",
                  (long long)stop_us);

    /* Nothing listens any more. */
    assert_int_equal(request_on(NULL, p, "GET", "/hello", NULL, 0, NULL, &r), 0);
    tk_http_server_stop(NULL);
}

static void test_timeout_long_handler(void **state)
{
    (void)state;
    tk_http_server_t *s = NULL;
    uint16_t p = 0;
    assert_int_equal(start_server(&s, &p, 1), 0);
    slow_ms = 1500; /* longer than the 1 s idle timeout */
    resp_t r;
    CURL *h = curl_easy_init();
    assert_int_equal(request_on(h, p, "GET", "/slow", NULL, 0, NULL, &r), 200);
    assert_string_equal(r.body, "slow");
    assert_int_equal(request_on(h, p, "GET", "/hello", NULL, 0, NULL, &r), 200);
    curl_easy_cleanup(h);
    slow_ms = 500;

    /* An idle connection is closed after the timeout. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(p)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char c;
    int64_t t0 = tk_clock_us();
    assert_true(recv(fd, &c, 1, 0) <= 0);
    assert_true(tk_clock_us() - t0 < 4000000);
    close(fd);
    tk_http_server_stop(s);
}

/* ---- raw sockets ------------------------------------------------------------------------- */

static int raw_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    struct timeval tv = {.tv_sec = 8};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static void raw_send(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n <= 0)
            return; /* the server may close early: fine */
        p += n;
        len -= (size_t)n;
    }
}

/* Send `data`, half-close, read until the server closes. Returns what came back. */
static size_t raw_exchange(const void *data, size_t len, bool half_close, char *out, size_t cap)
{
    int fd = raw_connect();
    raw_send(fd, data, len);
    if (half_close)
        shutdown(fd, SHUT_WR);
    size_t got = 0;
    for (;;) {
        ssize_t n = recv(fd, out + got, cap - 1 - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
        if (got == cap - 1)
            break;
    }
    out[got] = '\0';
    close(fd);
    return got;
}

/* A 4xx (or 505 for an unknown HTTP version), or a closed connection. */
static void expect_4xx_or_closed(const char *what, const char *resp, size_t len)
{
    if (len == 0)
        return;
    if (strncmp(resp, "HTTP/1.1 4", 10) != 0 && strncmp(resp, "HTTP/1.0 4", 10) != 0 &&
        strncmp(resp, "HTTP/1.1 505", 12) != 0)
        fail_msg("%s: unexpected answer: %.80s", what, resp);
}

static void test_garbage(void **state)
{
    (void)state;
    static char out[65536];
    unsigned seed = 12345;
    for (int i = 0; i < 20; i++) {
        char junk[2048];
        for (size_t k = 0; k < sizeof(junk); k++) {
            seed = seed * 1103515245u + 12345u;
            junk[k] = (char)(seed >> 16);
        }
        size_t n = raw_exchange(junk, sizeof(junk), true, out, sizeof(out));
        expect_4xx_or_closed("random bytes", out, n);
    }
    const char *lines[] = {
        "GARBAGE\r\n\r\n",
        "GET\r\n\r\n",
        "GET / HTTP/9.9\r\nHost: x\r\n\r\n",
        "GET /hello HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        "GET /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n",
        "GET /hello HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
        "\r\n\r\n\r\n",
        "GET /v1/tasks/%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET /query?a=%4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET relative HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        size_t n = raw_exchange(lines[i], strlen(lines[i]), true, out, sizeof(out));
        expect_4xx_or_closed(lines[i], out, n);
    }
    /* Bad encodings reach our code and get our 400. */
    size_t n = raw_exchange(lines[8], strlen(lines[8]), false, out, sizeof(out));
    assert_true(n > 0);
    assert_int_equal(strncmp(out, "HTTP/1.1 400", 12), 0);
    assert_non_null(strstr(out, "BAD_REQUEST"));
    assert_non_null(strcasestr(out, "x-request-id:"));

    /* Absolute-form target. */
    const char *abs = "GET http://127.0.0.1/hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    n = raw_exchange(abs, strlen(abs), false, out, sizeof(out));
    assert_int_equal(strncmp(out, "HTTP/1.1 200", 12), 0);

    /* Huge header: refused by libmicrohttpd, connection closed. */
    size_t big_len = 200 * 1024;
    char *big = malloc(big_len + 64);
    int k = snprintf(big, 64, "GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(big + k, 'a', big_len - (size_t)k - 4);
    memcpy(big + big_len - 4, "\r\n\r\n", 4);
    n = raw_exchange(big, big_len, false, out, sizeof(out));
    expect_4xx_or_closed("huge header", out, n);
    /* Huge URL. */
    memcpy(big, "GET /", 5);
    memset(big + 5, 'b', big_len - 5);
    memcpy(big + big_len - 17, " HTTP/1.1\r\n\r\n", 13);
    n = raw_exchange(big, big_len - 4, false, out, sizeof(out));
    expect_4xx_or_closed("huge url", out, n);
    free(big);

    /* Client disconnects mid-body, and before the headers are complete. */
    const char *partial = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n0123456789";
    int fd = raw_connect();
    raw_send(fd, partial, strlen(partial));
    tk_sleep_ms(20);
    close(fd);
    fd = raw_connect();
    raw_send(fd, "GET /hello HTTP/1.1\r\nHo", 23);
    tk_sleep_ms(20);
    close(fd);
    /* Pipelined requests on one connection are answered in order. */
    const char *two = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
                      "GET /v1/dlq/stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    n = raw_exchange(two, strlen(two), false, out, sizeof(out));
    assert_non_null(strstr(out, "hello"));
    assert_non_null(strstr(out, "{\"stats\":true}"));

    /* Still alive. */
    resp_t r;
    assert_int_equal(request("GET", "/hello", &r), 200);
}

static void test_many_connections(void **state)
{
    (void)state;
    enum { CONNS = 200 };
    int fds[CONNS];
    for (int i = 0; i < CONNS; i++)
        fds[i] = raw_connect();
    /* A partial request on half of them. */
    for (int i = 0; i < CONNS; i += 2)
        raw_send(fds[i], "GET /hel", 8);
    resp_t r;
    assert_int_equal(request("GET", "/hello", &r), 200);
    for (int i = 0; i < CONNS; i++)
        close(fds[i]);
    assert_int_equal(request("GET", "/hello", &r), 200);
}

static void test_request_log(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    assert_non_null(f);
    tk_log_set_fd(fileno(f));
    tk_log_set_level(TK_LOG_DEBUG);
    resp_t r;
    request("GET", "/v1/tasks/abc?x=1", &r);
    request("GET", "/noresp", &r);
    tk_sleep_ms(50); /* the line is written when the request completes */
    tk_log_set_level(TK_LOG_INFO);
    tk_log_set_fd(2);
    char buf[8192];
    rewind(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);

    bool seen_ok = false, seen_500 = false;
    for (char *line = buf, *end; (end = strchr(line, '\n')) != NULL; line = end + 1) {
        *end = '\0';
        json_error_t jerr;
        json_t *o = json_loads(line, 0, &jerr);
        if (o == NULL)
            fail_msg("log line is not JSON: %s", line);
        const char *path = jstr(o, "path");
        if (path && strcmp(path, "/v1/tasks/abc") == 0) {
            seen_ok = true;
            assert_string_equal(jstr(o, "level"), "debug");
            assert_string_equal(jstr(o, "method"), "GET");
            assert_string_equal(jstr(o, "component"), "http.test");
            assert_int_equal(json_integer_value(json_object_get(o, "status")), 200);
            assert_true(json_is_integer(json_object_get(o, "duration_us")));
            assert_int_equal(strlen(jstr(o, "request_id")), 36);
        }
        if (path && strcmp(path, "/noresp") == 0 &&
            json_integer_value(json_object_get(o, "status")) == 500) {
            seen_500 = true;
            assert_string_equal(jstr(o, "level"), "warn");
        }
        json_decref(o);
    }
    assert_true(seen_ok);
    assert_true(seen_500);
}

static void test_start_errors(void **state)
{
    (void)state;
    tk_error_t err;
    tk_http_server_t *s = (tk_http_server_t *)&err;
    const tk_http_route_t bad[] = {{"GET", "/a/{", h_hello}};
    tk_http_options_t o = {.bind_address = "127.0.0.1", .routes = bad, .nroutes = 1};
    assert_int_equal(tk_http_server_start(&o, &s, &err), TK_EINVAL);
    assert_null(s);
    assert_non_null(strstr(err.message, "invalid route pattern"));

    /* Port already taken. */
    o.routes = routes;
    o.port = port;
    assert_int_equal(tk_http_server_start(&o, &s, &err), TK_EIO);
    assert_null(s);
    assert_non_null(strstr(err.message, "could not start http server"));

    o.port = 0;
    o.bind_address = "not an address";
    assert_int_equal(tk_http_server_start(&o, &s, &err), TK_EINVAL);
    assert_int_equal(tk_http_server_start(NULL, &s, NULL), TK_EINVAL);

    /* IPv6 loopback, when the host has it. */
    o.bind_address = "::1";
    if (tk_http_server_start(&o, &s, &err) == TK_OK) {
        char url[64];
        snprintf(url, sizeof(url), "http://[::1]:%u/hello", (unsigned)tk_http_server_port(s));
        CURL *c = curl_easy_init();
        resp_t r;
        memset(&r, 0, sizeof(r));
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        assert_int_equal(curl_easy_perform(c), CURLE_OK);
        assert_string_equal(r.body, "hello");
        curl_easy_cleanup(c);
        tk_http_server_stop(s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_router),
        cmocka_unit_test(test_decoding),
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_query),
        cmocka_unit_test(test_json_echo),
        cmocka_unit_test(test_not_found_and_methods),
        cmocka_unit_test(test_payload_too_large),
        cmocka_unit_test(test_handler_contract),
        cmocka_unit_test(test_error_envelope),
        cmocka_unit_test(test_request_id_and_cors),
        cmocka_unit_test(test_keepalive),
        cmocka_unit_test(test_concurrency),
        cmocka_unit_test(test_stop_waits_for_inflight),
        cmocka_unit_test(test_timeout_long_handler),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_many_connections),
        cmocka_unit_test(test_request_log),
        cmocka_unit_test(test_start_errors),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
