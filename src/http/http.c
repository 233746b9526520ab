/*
 * http.c - the HTTP server behind http.h, on GNU libmicrohttpd (0.9.75).
 *
 * Threading: MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL,
 * plus MHD_USE_ITC (needed by MHD_quiesce_daemon) and MHD_USE_ERROR_LOG (routed to tk_log).
 * MHD's listening thread accepts connections; each connection then runs on its own thread,
 * which reads a request, calls its handler and writes the response, and loops for the next
 * request of a keep-alive connection. A handler that blocks holds only its own connection,
 * and a request costs no hand-off between threads (the lowest latency MHD offers).
 *
 * Memory: one conn_t (struct tk_http_request_s) per TCP connection, allocated when MHD
 * reports the connection and freed when it reports it closed, is reused by every request on
 * that connection: the raw URI, decoded path parameters, query pairs, body, response body
 * and extra response headers live in growable buffers of the conn_t, so a stream of requests
 * on a keep-alive connection allocates nothing of ours (MHD itself allocates the response
 * object and its header entries). Buffers that grew past 64 KiB are released when their
 * request ends, so idle connections stay small. The response body is handed to MHD with
 * MHD_RESPMEM_PERSISTENT, pointing into the conn_t: MHD finishes sending a response before
 * it parses the connection's next request, and the conn_t outlives the connection.
 *
 * Request lifecycle (MHD callbacks; all but the connection notifications run on the
 * connection's thread):
 *   uri_cb        request line parsed: reset the conn_t, copy the raw URI (MHD decodes its
 *                 own copy in place, losing the difference between "/" and "%2F"), new id
 *   access_cb #1  headers complete: decide early answers (503 while stopping, 413 from
 *                 Content-Length, 400 bad target or encoding, 404, 405, OPTIONS preflight).
 *                 Only 413 is queued at once, so MHD skips the body (and sends no
 *                 "100 Continue"); other early answers wait for the body to be drained so
 *                 the connection can stay alive
 *   access_cb #k  body chunks: buffered up to max_body_bytes; past it (no Content-Length)
 *                 or after an early answer they are discarded, and more than
 *                 DISCARD_CAP_BYTES beyond the limit drops the connection
 *   access_cb end run the handler unless answered already, queue the response
 *   completed_cb  response sent or request aborted: log line, in-flight count goes down
 * "In flight" runs from access_cb #1 to completed_cb; tk_http_server_stop() waits for it
 * to reach zero after closing the listening socket. A request aborted before its headers
 * were complete was never counted, and owns nothing beyond the reused conn_t.
 */
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "common/clock.h"
#include "common/error_int.h"
#include "common/json_esc.h"
#include "common/uuid.h"
#include "http/http.h"
#include "http/router.h"
#include "tasker/log.h"

#define DEFAULT_MAX_BODY_BYTES  (1024 * 1024)
#define DEFAULT_TIMEOUT_S       30
#define DEFAULT_MAX_CONNECTIONS 1024
#define CONN_MEMORY_LIMIT       (64 * 1024) /* MHD's per-connection pool: headers + buffers */
#define DISCARD_CAP_BYTES       (1024 * 1024)
#define KEEP_BUFFER_BYTES       (64 * 1024)
#define ERROR_MESSAGE_MAX       2048
#define EXPOSED_HEADERS         "x-request-id, Retry-After, Location"
#define PREFLIGHT_HEADERS       "Content-Type, Authorization, X-API-Key"

typedef struct buf_s {
    char *p;
    size_t len;
    size_t cap;
} buf_t;

typedef struct qpair_s {
    const char *key;
    const char *value;
} qpair_t;

typedef enum {
    PH_IDLE,   /* between requests */
    PH_URI,    /* request line seen, headers being read */
    PH_BODY,   /* headers processed, body being read */
    PH_QUEUED, /* response queued */
} phase_t;

struct tk_http_server_s {
    struct MHD_Daemon *daemon;
    tk_http_router_t *router;
    void *context;
    size_t max_body;
    uint16_t port;
    char *name;
    atomic_int stopping;
    atomic_int starting;
    pthread_mutex_t lock;
    pthread_cond_t idle;
    long inflight;         /* requests between access_cb #1 and completed_cb */
    char start_error[256]; /* last MHD message while starting */
};

struct tk_http_request_s {
    tk_http_server_t *srv;
    struct MHD_Connection *mc;

    /* Per request; reset by request_reset(). */
    phase_t phase;
    bool counted;       /* included in srv->inflight */
    bool responded;     /* a response is ready in status/resp/hdrs */
    bool too_large;     /* body exceeded max_body */
    bool close_after;   /* send Connection: close */
    bool query_decoded; /* qpairs filled from query */
    bool query_oom;
    bool uri_oom;
    int status;
    int64_t start_us;
    const char *method; /* MHD's copy, valid until the request ends */
    const char *path;   /* into uri (or a literal "/"), NUL-terminated */
    size_t path_len;
    char *query; /* into uri, NULL without '?' */
    size_t query_len;
    size_t body_seen; /* body bytes received, buffered or not */
    tk_http_match_t match;
    char request_id[TK_UUID_STR_LEN];

    /* Reused across the requests of the connection. */
    buf_t uri;     /* raw request target: path NUL query NUL */
    buf_t scratch; /* decoded path segments */
    buf_t qpairs;  /* qpair_t[], len counts bytes */
    buf_t body;    /* request body, NUL-terminated */
    buf_t resp;    /* response body */
    buf_t hdrs;    /* extra response headers: "name\0value\0"... */
};

/* ---- buffers ----------------------------------------------------------------------------- */

/* Make room for `need` bytes in total; grows geometrically but never beyond `limit` (0: no
 * limit), so a buffer is never larger than what it may hold. */
static int buf_reserve(buf_t *b, size_t need, size_t limit)
{
    if (need <= b->cap)
        return TK_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (limit != 0 && cap > limit)
        cap = need > limit ? need : limit;
    char *p = realloc(b->p, cap);
    if (p == NULL)
        return TK_ENOMEM;
    b->p = p;
    b->cap = cap;
    return TK_OK;
}

static int buf_append(buf_t *b, const void *data, size_t n)
{
    if (buf_reserve(b, b->len + n, 0) != TK_OK)
        return TK_ENOMEM;
    memcpy(b->p + b->len, data, n);
    b->len += n;
    return TK_OK;
}

static void buf_trim(buf_t *b)
{
    b->len = 0;
    if (b->cap > KEEP_BUFFER_BYTES) {
        free(b->p);
        b->p = NULL;
        b->cap = 0;
    }
}

static void buf_free(buf_t *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* ---- in-flight accounting ------------------------------------------------------------------ */

static void inflight_add(tk_http_server_t *srv)
{
    pthread_mutex_lock(&srv->lock);
    srv->inflight++;
    pthread_mutex_unlock(&srv->lock);
}

static void inflight_done(tk_http_server_t *srv)
{
    pthread_mutex_lock(&srv->lock);
    if (--srv->inflight == 0)
        pthread_cond_broadcast(&srv->idle);
    pthread_mutex_unlock(&srv->lock);
}

/* ---- responses --------------------------------------------------------------------------- */

static bool valid_header_name(const char *s)
{
    if (s == NULL || *s == '\0')
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 0x20 || c >= 0x7F || strchr("()<>@,;:\\\"/[]?={}", c) != NULL)
            return false;
    }
    return true;
}

static bool valid_header_value(const char *s)
{
    if (s == NULL)
        return false;
    for (; *s; s++)
        if (*s == '\r' || *s == '\n')
            return false;
    return true;
}

int tk_http_add_header(tk_http_request_t *req, const char *name, const char *value)
{
    if (!valid_header_name(name) || !valid_header_value(value))
        return TK_EINVAL;
    size_t nl = strlen(name) + 1, vl = strlen(value) + 1;
    if (buf_reserve(&req->hdrs, req->hdrs.len + nl + vl, 0) != TK_OK)
        return TK_ENOMEM;
    buf_append(&req->hdrs, name, nl);
    buf_append(&req->hdrs, value, vl);
    return TK_OK;
}

static int check_respond(tk_http_request_t *req, int status)
{
    if (req->responded) {
        TK_LOG(TK_LOG_ERROR, req->srv->name,
               "second response (%d) to %s %s ignored: a request gets one response (request %s)",
               status, req->method ? req->method : "?", req->path ? req->path : "?",
               req->request_id);
        return TK_EINVAL;
    }
    if (status < 200 || status > 599)
        return TK_EINVAL; /* 1xx is MHD's business (100 Continue) */
    return TK_OK;
}

int tk_http_respond(tk_http_request_t *req, int status, const char *content_type, const char *body,
                    size_t len)
{
    int rc = check_respond(req, status);
    if (rc != TK_OK)
        return rc;
    if (len > 0 && body == NULL)
        return TK_EINVAL;
    if (buf_reserve(&req->resp, len + 1, 0) != TK_OK)
        return TK_ENOMEM;
    if (len > 0)
        memcpy(req->resp.p, body, len);
    req->resp.len = len;
    if (content_type != NULL && (rc = tk_http_add_header(req, "Content-Type", content_type)) != 0)
        return rc;
    req->status = status;
    req->responded = true;
    return TK_OK;
}

int tk_http_respond_json(tk_http_request_t *req, int status, const char *json)
{
    if (json == NULL)
        return TK_EINVAL;
    return tk_http_respond(req, status, "application/json", json, strlen(json));
}

int tk_http_respond_error(tk_http_request_t *req, int status, const char *code, const char *fmt,
                          ...)
{
    int rc = check_respond(req, status);
    if (rc != TK_OK)
        return rc;
    if (code == NULL || fmt == NULL)
        return TK_EINVAL;
    char msg[ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    /* Escaping turns one byte into at most six ("\u001f"). */
    size_t need = 64 + 6 * (strlen(code) + strlen(msg));
    if (buf_reserve(&req->resp, need, 0) != TK_OK)
        return TK_ENOMEM;
    tk_json_esc_t w;
    tk_json_esc_init(&w, req->resp.p, req->resp.cap);
    tk_json_esc_raw(&w, "{\"error\":{\"code\":\"");
    tk_json_esc_str(&w, code);
    tk_json_esc_raw(&w, "\",\"message\":\"");
    tk_json_esc_str(&w, msg);
    tk_json_esc_raw(&w, "\"}}");
    req->resp.len = w.len;
    if ((rc = tk_http_add_header(req, "Content-Type", "application/json")) != TK_OK)
        return rc;
    req->status = status;
    req->responded = true;
    return TK_OK;
}

bool tk_http_responded(const tk_http_request_t *req)
{
    return req->responded;
}

/* Forget a prepared response (used when a 413 overrides an early answer). */
static void reset_response(tk_http_request_t *req)
{
    req->responded = false;
    req->status = 0;
    req->resp.len = 0;
    req->hdrs.len = 0;
}

static enum MHD_Result queue_response(tk_http_request_t *req)
{
    req->phase = PH_QUEUED;
    struct MHD_Response *r = MHD_create_response_from_buffer(
        req->resp.len, req->resp.p ? req->resp.p : (char *)"", MHD_RESPMEM_PERSISTENT);
    if (r == NULL)
        return MHD_NO;
    bool ok =
        MHD_add_response_header(r, "x-request-id", req->request_id) == MHD_YES &&
        MHD_add_response_header(r, "Access-Control-Allow-Origin", "*") == MHD_YES &&
        MHD_add_response_header(r, "Access-Control-Expose-Headers", EXPOSED_HEADERS) == MHD_YES;
    for (size_t off = 0; ok && off < req->hdrs.len;) {
        const char *name = req->hdrs.p + off;
        const char *value = name + strlen(name) + 1;
        off = (size_t)(value - req->hdrs.p) + strlen(value) + 1;
        if (MHD_add_response_header(r, name, value) != MHD_YES)
            TK_LOG(TK_LOG_WARN, req->srv->name, "could not add response header %s (request %s)",
                   name, req->request_id);
    }
    if (ok && req->close_after)
        ok = MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close") == MHD_YES;
    enum MHD_Result ret = ok ? MHD_queue_response(req->mc, (unsigned)req->status, r) : MHD_NO;
    MHD_destroy_response(r);
    return ret;
}

/* ---- request accessors --------------------------------------------------------------------- */

const char *tk_http_method(const tk_http_request_t *req)
{
    return req->method;
}

const char *tk_http_path(const tk_http_request_t *req)
{
    return req->path;
}

const char *tk_http_route_pattern(const tk_http_request_t *req)
{
    return req->match.route ? req->match.route->pattern : NULL;
}

const char *tk_http_param(const tk_http_request_t *req, const char *name)
{
    if (name == NULL)
        return NULL;
    for (int i = 0; i < req->match.nparams; i++)
        if (strcmp(req->match.params[i].name, name) == 0)
            return req->match.params[i].value;
    return NULL;
}

static void collect_pair(void *cls, const char *key, const char *value)
{
    tk_http_request_t *req = cls;
    qpair_t pair = {key, value};
    if (buf_append(&req->qpairs, &pair, sizeof(pair)) != TK_OK)
        req->query_oom = true; /* later pairs are dropped; nothing better to do */
}

const char *tk_http_query(tk_http_request_t *req, const char *name)
{
    if (name == NULL)
        return NULL;
    if (!req->query_decoded) {
        req->query_decoded = true;
        req->qpairs.len = 0;
        if (req->query != NULL) /* validated before the handler ran */
            tk_http_query_decode(req->query, req->query_len, collect_pair, req);
    }
    const qpair_t *pairs = (const qpair_t *)(void *)req->qpairs.p;
    size_t n = req->qpairs.len / sizeof(qpair_t);
    for (size_t i = 0; i < n; i++)
        if (strcmp(pairs[i].key, name) == 0)
            return pairs[i].value;
    return NULL;
}

const char *tk_http_header(const tk_http_request_t *req, const char *name)
{
    if (name == NULL || req->mc == NULL)
        return NULL;
    return MHD_lookup_connection_value(req->mc, MHD_HEADER_KIND, name);
}

const char *tk_http_body(const tk_http_request_t *req, size_t *len)
{
    if (len != NULL)
        *len = req->body.p ? req->body.len : 0;
    return req->body.p ? req->body.p : "";
}

const char *tk_http_request_id(const tk_http_request_t *req)
{
    return req->request_id;
}

void *tk_http_context(const tk_http_request_t *req)
{
    return req->srv->context;
}

/* ---- logging ----------------------------------------------------------------------------- */

static const char *termination_name(enum MHD_RequestTerminationCode toe)
{
    switch (toe) {
    case MHD_REQUEST_TERMINATED_COMPLETED_OK:
        return NULL;
    case MHD_REQUEST_TERMINATED_TIMEOUT_REACHED:
        return "timeout";
    case MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN:
        return "shutdown";
    case MHD_REQUEST_TERMINATED_CLIENT_ABORT:
    case MHD_REQUEST_TERMINATED_READ_ERROR:
        return "client_abort";
    default:
        return "error";
    }
}

/* Append `s` cut to `max` bytes, JSON-escaped. */
static void esc_cut(tk_json_esc_t *w, const char *s, size_t max)
{
    char tmp[512];
    size_t n = strlen(s);
    if (n > max)
        n = max;
    if (n >= sizeof(tmp))
        n = sizeof(tmp) - 1;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    tk_json_esc_str(w, tmp);
}

static void log_request(const tk_http_request_t *req, enum MHD_RequestTerminationCode toe)
{
    const char *aborted = termination_name(toe);
    tk_log_level_t level = req->status >= 500 && aborted == NULL ? TK_LOG_WARN : TK_LOG_DEBUG;
    if ((int)level > tk_log_threshold)
        return;
    char buf[4096], num[64];
    tk_json_esc_t w;
    tk_json_esc_init(&w, buf, sizeof(buf) - 1);
    tk_json_esc_raw(&w, "{\"method\":\"");
    esc_cut(&w, req->method ? req->method : "", 32);
    tk_json_esc_raw(&w, "\",\"path\":\"");
    esc_cut(&w, req->path ? req->path : "", 256);
    snprintf(num, sizeof(num), "\",\"status\":%d,\"duration_us\":%lld,\"request_id\":\"",
             req->responded ? req->status : 0, (long long)(tk_clock_us() - req->start_us));
    tk_json_esc_raw(&w, num);
    tk_json_esc_raw(&w, req->request_id);
    tk_json_esc_raw(&w, "\"");
    if (aborted != NULL) {
        tk_json_esc_raw(&w, ",\"aborted\":\"");
        tk_json_esc_raw(&w, aborted);
        tk_json_esc_raw(&w, "\"");
    }
    tk_json_esc_raw(&w, "}");
    buf[w.len] = '\0';
    tk_log_write(level, req->srv->name, NULL, w.truncated ? NULL : buf,
                 aborted ? "request aborted" : "request");
}

/* ---- MHD callbacks ------------------------------------------------------------------------ */

static void request_reset(tk_http_request_t *req)
{
    req->phase = PH_IDLE;
    req->counted = req->responded = req->too_large = req->close_after = false;
    req->query_decoded = req->query_oom = req->uri_oom = false;
    req->status = 0;
    req->method = NULL;
    req->path = NULL;
    req->path_len = 0;
    req->query = NULL;
    req->query_len = 0;
    req->body_seen = 0;
    req->match.route = NULL;
    req->match.nparams = 0;
    req->match.allowed = 0;
    req->uri.len = req->scratch.len = req->qpairs.len = 0;
    req->body.len = req->resp.len = req->hdrs.len = 0;
}

/* Release what a large request left behind, keeping small buffers for the next one. */
static void request_trim(tk_http_request_t *req)
{
    buf_trim(&req->uri);
    buf_trim(&req->scratch);
    buf_trim(&req->qpairs);
    buf_trim(&req->body);
    buf_trim(&req->resp);
    buf_trim(&req->hdrs);
}

static void connection_cb(void *cls, struct MHD_Connection *mc, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    tk_http_server_t *srv = cls;
    (void)mc;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        tk_http_request_t *req = calloc(1, sizeof(*req));
        if (req != NULL)
            req->srv = srv; /* NULL: access_cb refuses the connection's requests */
        *socket_context = req;
        return;
    }
    tk_http_request_t *req = *socket_context;
    *socket_context = NULL;
    if (req == NULL)
        return;
    if (req->counted) /* not expected: completed_cb comes first */
        inflight_done(srv);
    buf_free(&req->uri);
    buf_free(&req->scratch);
    buf_free(&req->qpairs);
    buf_free(&req->body);
    buf_free(&req->resp);
    buf_free(&req->hdrs);
    free(req);
}

static void *uri_cb(void *cls, const char *uri, struct MHD_Connection *mc)
{
    (void)cls;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    tk_http_request_t *req = ci ? ci->socket_context : NULL;
    if (req == NULL)
        return NULL;
    if (req->counted) { /* completed_cb missed for the previous request: never seen */
        req->counted = false;
        inflight_done(req->srv);
    }
    request_reset(req);
    req->mc = mc;
    req->start_us = tk_clock_us();
    req->phase = PH_URI;
    tk_uuid_t id;
    if (tk_uuid_v7(&id) != TK_OK)
        memset(&id, 0, sizeof(id));
    tk_uuid_format(&id, req->request_id);

    size_t n = strlen(uri);
    if (buf_reserve(&req->uri, n + 1, 0) != TK_OK) {
        req->uri_oom = true;
        return req;
    }
    memcpy(req->uri.p, uri, n + 1);
    req->uri.len = n;
    char *p = req->uri.p;
    char *q = strchr(p, '?');
    char *frag = strchr(q ? q : p, '#');
    if (frag != NULL)
        *frag = '\0';
    if (q != NULL) {
        *q++ = '\0';
        req->query = q;
        req->query_len = strlen(q);
    }
    /* Absolute form ("http://host/path"): keep the path. */
    if (strncasecmp(p, "http://", 7) == 0 || strncasecmp(p, "https://", 8) == 0) {
        char *slash = strchr(strstr(p, "://") + 3, '/');
        p = slash ? slash : (char *)"/";
    }
    req->path = p;
    req->path_len = strlen(p);
    return req;
}

/* Parse a Content-Length value; false if it is not a plain decimal number. */
static bool parse_length(const char *s, unsigned long long *out)
{
    unsigned long long v = 0;
    if (s == NULL || *s == '\0')
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (ULLONG_MAX - 9) / 10)
            return false;
        v = v * 10 + (unsigned)(*s - '0');
    }
    *out = v;
    return true;
}

static void answer_preflight(tk_http_request_t *req, unsigned allowed)
{
    char allow[128];
    tk_http_allow_format(allowed, allow, sizeof(allow));
    const char *asked = tk_http_header(req, "Access-Control-Request-Headers");
    tk_http_add_header(req, "Allow", allow);
    tk_http_add_header(req, "Access-Control-Allow-Methods", allow);
    if (tk_http_add_header(req, "Access-Control-Allow-Headers",
                           asked && *asked ? asked : PREFLIGHT_HEADERS) != TK_OK)
        tk_http_add_header(req, "Access-Control-Allow-Headers", PREFLIGHT_HEADERS);
    tk_http_add_header(req, "Access-Control-Max-Age", "86400");
    tk_http_respond(req, 204, NULL, NULL, 0);
}

typedef enum { BEGIN_CONTINUE, BEGIN_QUEUE_NOW, BEGIN_FAIL } begin_t;

/* First call of a request: everything that can be decided from the request line and the
 * headers. */
static begin_t begin_request(tk_http_request_t *req)
{
    tk_http_server_t *srv = req->srv;
    if (req->uri_oom)
        return BEGIN_FAIL;
    if (atomic_load(&srv->stopping)) {
        req->close_after = true;
        tk_http_respond_error(req, 503, "SERVICE_UNAVAILABLE", "server is shutting down");
        return BEGIN_CONTINUE;
    }
    unsigned long long clen = 0;
    if (parse_length(tk_http_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH), &clen)) {
        if (clen > srv->max_body) {
            req->too_large = true;
            tk_http_respond_error(req, 413, "PAYLOAD_TOO_LARGE",
                                  "request body of %llu bytes exceeds the limit of %zu bytes", clen,
                                  srv->max_body);
            return BEGIN_QUEUE_NOW;
        }
        if (clen > 0 && buf_reserve(&req->body, (size_t)clen + 1, 0) != TK_OK)
            return BEGIN_FAIL;
    }
    if (req->path_len == 0 || req->path[0] != '/') {
        tk_http_respond_error(req, 400, "BAD_REQUEST", "invalid request target");
        return BEGIN_CONTINUE;
    }
    if (buf_reserve(&req->scratch, req->path_len + 1, 0) != TK_OK)
        return BEGIN_FAIL;
    switch (tk_http_router_match(srv->router, req->method, req->path, req->path_len, req->scratch.p,
                                 &req->match)) {
    case TK_HTTP_ROUTE_FOUND:
        break;
    case TK_HTTP_ROUTE_BAD_PATH:
        tk_http_respond_error(req, 400, "BAD_REQUEST", "invalid percent-encoding in path");
        return BEGIN_CONTINUE;
    case TK_HTTP_ROUTE_NOT_FOUND:
        tk_http_respond_error(req, 404, "NOT_FOUND", "no route for %s", req->path);
        return BEGIN_CONTINUE;
    case TK_HTTP_ROUTE_METHOD_NOT_ALLOWED: {
        if (strcmp(req->method, "OPTIONS") == 0) {
            answer_preflight(req, req->match.allowed);
            return BEGIN_CONTINUE;
        }
        char allow[128];
        tk_http_allow_format(req->match.allowed, allow, sizeof(allow));
        tk_http_respond_error(req, 405, "METHOD_NOT_ALLOWED", "method %s not allowed for %s",
                              req->method, req->path);
        tk_http_add_header(req, "Allow", allow);
        return BEGIN_CONTINUE;
    }
    }
    if (req->query != NULL && !tk_http_pct_valid(req->query, req->query_len)) {
        req->match.nparams = 0;
        tk_http_respond_error(req, 400, "BAD_REQUEST", "invalid percent-encoding in query string");
        return BEGIN_CONTINUE;
    }
    return BEGIN_CONTINUE;
}

/* A chunk of body: keep it, or count and drop it. */
static enum MHD_Result take_body(tk_http_request_t *req, const char *data, size_t n)
{
    size_t limit = req->srv->max_body;
    req->body_seen += n;
    if (req->body_seen > limit && !req->too_large)
        req->too_large = true;
    if (req->too_large || req->responded) {
        if (req->body_seen > limit + DISCARD_CAP_BYTES)
            return MHD_NO; /* stop reading a body nobody wants; drops the connection */
        return MHD_YES;
    }
    if (buf_reserve(&req->body, req->body.len + n + 1, limit + 1) != TK_OK)
        return MHD_NO;
    memcpy(req->body.p + req->body.len, data, n);
    req->body.len += n;
    req->body.p[req->body.len] = '\0';
    return MHD_YES;
}

static void run_handler(tk_http_request_t *req)
{
    req->match.route->handler(req);
    if (!req->responded) {
        reset_response(req); /* drop headers the handler may have added */
        TK_LOG(TK_LOG_ERROR, req->srv->name,
               "handler of %s %s returned without responding (request %s)", req->method,
               req->match.route->pattern, req->request_id);
        tk_http_respond_error(req, 500, "INTERNAL_ERROR", "the request handler did not respond");
    }
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *mc, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **req_cls)
{
    tk_http_server_t *srv = cls;
    tk_http_request_t *req = *req_cls;
    (void)url;
    (void)version;
    if (req == NULL || req->mc != mc)
        return MHD_NO; /* no per-connection state: allocation failed */

    if (req->phase == PH_URI) {
        req->phase = PH_BODY;
        req->method = method;
        req->counted = true;
        inflight_add(srv);
        switch (begin_request(req)) {
        case BEGIN_QUEUE_NOW:
            return queue_response(req);
        case BEGIN_FAIL:
            return MHD_NO;
        case BEGIN_CONTINUE:
            return MHD_YES;
        }
    }
    if (req->phase != PH_BODY)
        return MHD_NO;
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        return take_body(req, upload_data, n);
    }

    /* The whole request is in. */
    if (req->too_large) {
        reset_response(req);
        tk_http_respond_error(req, 413, "PAYLOAD_TOO_LARGE",
                              "request body exceeds the limit of %zu bytes", srv->max_body);
    } else if (!req->responded) {
        if (req->body.p == NULL && buf_reserve(&req->body, 1, 0) != TK_OK)
            return MHD_NO;
        req->body.p[req->body.len] = '\0';
        run_handler(req);
    }
    return queue_response(req);
}

static void completed_cb(void *cls, struct MHD_Connection *mc, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    tk_http_server_t *srv = cls;
    tk_http_request_t *req = *req_cls;
    (void)mc;
    *req_cls = NULL;
    if (req == NULL)
        return;
    if (req->counted) {
        log_request(req, toe);
        req->counted = false;
        inflight_done(srv);
    }
    req->phase = PH_IDLE;
    request_trim(req);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    tk_http_server_t *srv = cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    if (atomic_load(&srv->starting)) {
        pthread_mutex_lock(&srv->lock);
        snprintf(srv->start_error, sizeof(srv->start_error), "%s", msg);
        pthread_mutex_unlock(&srv->lock);
        TK_LOG(TK_LOG_WARN, srv->name, "libmicrohttpd: %s", msg);
        return;
    }
    /* Once running, MHD mostly reports misbehaving clients (closed mid-request, malformed
     * requests): debug. What points at the server itself (limits, threads, memory, the
     * poll loop) is a warning. */
    static const char *const serious[] = {"limit", "thread", "memory", "accept",  "Fatal",
                                          "mutex", "poll",   "select", "resource"};
    tk_log_level_t level = TK_LOG_DEBUG;
    bool client_error = strncmp(msg, "Error processing request", 24) == 0;
    for (size_t i = 0; !client_error && i < sizeof(serious) / sizeof(serious[0]); i++)
        if (strstr(msg, serious[i]) != NULL)
            level = TK_LOG_WARN;
    TK_LOG(level, srv->name, "libmicrohttpd: %s", msg);
}

/* ---- start / stop -------------------------------------------------------------------------- */

static void server_free(tk_http_server_t *srv)
{
    tk_http_router_free(srv->router);
    free(srv->name);
    pthread_cond_destroy(&srv->idle);
    pthread_mutex_destroy(&srv->lock);
    free(srv);
}

int tk_http_server_start(const tk_http_options_t *opts, tk_http_server_t **out, tk_error_t *err)
{
    if (out == NULL)
        return tk_error_set(err, TK_EINVAL, "could not start http server: no output pointer");
    *out = NULL;
    if (opts == NULL)
        return tk_error_set(err, TK_EINVAL, "could not start http server: no options");

    tk_http_server_t *srv = calloc(1, sizeof(*srv));
    if (srv == NULL)
        return tk_error_set(err, TK_ENOMEM, "could not allocate http server");
    pthread_mutex_init(&srv->lock, NULL);
    pthread_cond_init(&srv->idle, NULL);
    atomic_init(&srv->stopping, 0);
    atomic_init(&srv->starting, 1);
    srv->context = opts->context;
    srv->max_body = opts->max_body_bytes ? opts->max_body_bytes : DEFAULT_MAX_BODY_BYTES;
    srv->name = strdup(opts->name ? opts->name : "http");
    if (srv->name == NULL) {
        server_free(srv);
        return tk_error_set(err, TK_ENOMEM, "could not allocate http server");
    }
    int rc = tk_http_router_new(opts->routes, opts->nroutes, &srv->router, err);
    if (rc != TK_OK) {
        server_free(srv);
        return rc;
    }

    /* Numeric addresses only (no DNS lookup at start-up), plus "localhost" and "*". */
    const char *host = opts->bind_address && *opts->bind_address ? opts->bind_address : "0.0.0.0";
    const char *numeric = host;
    if (strcmp(host, "localhost") == 0)
        numeric = "127.0.0.1";
    else if (strcmp(host, "*") == 0)
        numeric = "0.0.0.0";
    char service[8];
    snprintf(service, sizeof(service), "%u", (unsigned)opts->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(numeric, service, &hints, &ai);
    if (gai != 0 || ai == NULL) {
        server_free(srv);
        return tk_error_set(err, TK_EINVAL, "could not use bind address \"%s\": %s", host,
                            gai != 0 ? gai_strerror(gai) : "no address");
    }
    struct sockaddr_storage addr;
    memset(&addr, 0, sizeof(addr));
    memcpy(&addr, ai->ai_addr, ai->ai_addrlen);
    int family = ai->ai_family;
    freeaddrinfo(ai);

    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (family == AF_INET6)
        flags |= MHD_USE_DUAL_STACK;
    unsigned timeout = opts->request_timeout_s ? opts->request_timeout_s : DEFAULT_TIMEOUT_S;
    unsigned max_conn = opts->max_connections ? opts->max_connections : DEFAULT_MAX_CONNECTIONS;
    srv->daemon = MHD_start_daemon(
        flags, opts->port, NULL, NULL, access_cb, srv, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, srv,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_TIMEOUT, timeout,
        MHD_OPTION_CONNECTION_LIMIT, max_conn, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)CONN_MEMORY_LIMIT, MHD_OPTION_URI_LOG_CALLBACK, uri_cb, srv,
        MHD_OPTION_NOTIFY_CONNECTION, connection_cb, srv, MHD_OPTION_NOTIFY_COMPLETED, completed_cb,
        srv, MHD_OPTION_END);
    int saved_errno = errno;
    atomic_store(&srv->starting, 0);
    if (srv->daemon == NULL) {
        rc = tk_error_set(err, TK_EIO, "could not start http server on %s:%u: %s", host,
                          (unsigned)opts->port,
                          srv->start_error[0] ? srv->start_error : strerror(saved_errno));
        server_free(srv);
        return rc;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info ? info->port : opts->port;
    TK_LOG(TK_LOG_INFO, srv->name, "listening on %s port %u", host, (unsigned)srv->port);
    *out = srv;
    return TK_OK;
}

uint16_t tk_http_server_port(const tk_http_server_t *srv)
{
    return srv ? srv->port : 0;
}

void tk_http_server_stop(tk_http_server_t *srv)
{
    if (srv == NULL)
        return;
    atomic_store(&srv->stopping, 1);
    /* Stop listening now: MHD hands the socket back, which must stay open until
     * MHD_stop_daemon() returns, but shutdown() on a listening socket already makes the kernel
     * refuse new connections (and reset those still in the backlog). */
    MHD_socket fd = MHD_quiesce_daemon(srv->daemon);
    if (fd != MHD_INVALID_SOCKET)
        shutdown(fd, SHUT_RDWR);
    pthread_mutex_lock(&srv->lock);
    while (srv->inflight > 0)
        pthread_cond_wait(&srv->idle, &srv->lock);
    pthread_mutex_unlock(&srv->lock);
    MHD_stop_daemon(srv->daemon);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    TK_LOG(TK_LOG_INFO, srv->name, "stopped");
    server_free(srv);
}
