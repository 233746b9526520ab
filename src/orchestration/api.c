/*
 * api.c - handlers of the orchestration REST API (see api.h).
 *
 * Each handler validates its input, makes one SQL call through the pool, and sends the JSON
 * text the database built. wait_ms requests register with the task watch before they read
 * the task (before they create it, under a uuid made here, for POST /v1/tasks), ask the
 * database to announce the task's finish (tasks.notify_on_finish: only tasks someone waits
 * for are announced, sql/0025), then block on it (no polling loop) until the task is
 * terminal, answering with the task the notice carried (sql/0037), or time is up. POST
 * /v1/tasks/batch creates many tasks in one transaction (tasker.create_tasks), all or nothing,
 * without wait_ms.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/json_util.h"
#include "common/parse.h"
#include "common/uuid.h"
#include "orchestration/api.h"
#include "tasker/state.h"
#include "tasker/log.h"

#define POOL_WAIT_MS 5000

/* the answer, and the fields the API needs from it, read by the server: the full answer of a
 * caller that does not wait is a few kB, which parsing again here cost more instructions than
 * the rest of the request (callgrind, `make profile WORKLOAD=throughput`) */
static const tk_stmt_t create_stmt = {
    "api_create",
    "SELECT r, r->>'task_uuid', r->>'correlation_id', r->>'namespace', r->>'name', "
    "r->>'status' FROM tasker.create_task($1::jsonb, $2::boolean, $3::uuid, $4::boolean) r",
    4, false};
/* the body {"tasks": [...]} as sent (numbers keep their text); the answer and, for the log
 * line, the first task's ids */
static const tk_stmt_t create_batch_stmt = {
    "api_create_batch",
    "SELECT jsonb_build_object('tasks', r), r->0->>'task_uuid', r->0->>'correlation_id', "
    "jsonb_array_length(r) FROM tasker.create_tasks($1::jsonb->'tasks') r",
    1, false};
static const tk_stmt_t task_stmt = {
    "api_task",
    "SELECT terminal, response FROM tasker.task_response_if_done($1::uuid, $2::boolean)", 2, true};
/* the same look, which first asks for the task's finish notice (tasks.notify_on_finish) */
static const tk_stmt_t task_notice_stmt = {
    "api_task_notice",
    "SELECT terminal, response FROM tasker.task_response_if_done($1::uuid, $2::boolean, true)", 2,
    true};
static const tk_stmt_t list_stmt = {
    "api_list", "SELECT tasker.list_tasks($1, $2, $3, $4, $5::int, $6::int)", 6, true};
static const tk_stmt_t cancel_stmt = {"api_cancel", "SELECT tasker.cancel_task($1::uuid)", 1,
                                      false};
static const tk_stmt_t steps_stmt = {
    "api_steps",
    "SELECT CASE WHEN EXISTS (SELECT 1 FROM tasker.tasks WHERE task_uuid = $1::uuid) "
    "THEN tasker.task_steps_response($1::uuid) END",
    1, true};
static const tk_stmt_t step_stmt = {"api_step", "SELECT tasker.step_response($1::uuid, $2::uuid)",
                                    2, true};
static const tk_stmt_t step_action_stmt = {
    "api_step_action",
    "SELECT tasker.step_manual_action($1::uuid, $2::uuid, $3, $4, $5, $6::jsonb)", 6, false};
static const tk_stmt_t templates_stmt = {
    "api_templates",
    "WITH t AS ("
    "  SELECT nt.name, ns.name AS namespace, nt.version, nt.description,"
    "         jsonb_array_length(nt.configuration->'steps') AS step_count"
    "  FROM tasker.named_tasks nt"
    "  JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid"
    "  WHERE $1::text IS NULL OR ns.name = $1)"
    "SELECT jsonb_build_object("
    "  'namespaces', coalesce((SELECT jsonb_agg(jsonb_build_object('name', ns.name,"
    "      'description', ns.description, 'template_count',"
    "      (SELECT count(*) FROM t WHERE t.namespace = ns.name)) ORDER BY ns.name)"
    "    FROM tasker.task_namespaces ns WHERE EXISTS (SELECT 1 FROM t WHERE t.namespace = "
    "ns.name)),"
    "    '[]'),"
    "  'templates', coalesce((SELECT jsonb_agg(to_jsonb(t) ORDER BY t.namespace, t.name, t.version)"
    "    FROM t), '[]'),"
    "  'total_count', (SELECT count(*) FROM t))",
    1, true};
static const tk_stmt_t template_stmt = {
    "api_template",
    "SELECT jsonb_build_object('name', nt.name, 'namespace', ns.name, 'version', nt.version,"
    "  'description', nt.description, 'configuration', nt.configuration,"
    "  'steps', (SELECT jsonb_agg(jsonb_build_object('name', s->>'name',"
    "      'description', s->'description',"
    "      'default_retryable', coalesce((s->'retry'->>'retryable')::boolean, true),"
    "      'default_max_attempts', coalesce((s->'retry'->>'max_attempts')::int, 3)))"
    "    FROM jsonb_array_elements(nt.configuration->'steps') s))"
    "FROM tasker.named_tasks nt"
    " JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid"
    " WHERE ns.name = $1 AND nt.name = $2 AND nt.version = $3",
    3, true};
static const tk_stmt_t ready_stmt = {"api_ready", "SELECT 1", 0, true};
static const tk_stmt_t metrics_stmt = {
    "api_metrics",
    "SELECT 'tasks', s.name, (SELECT count(*) FROM tasker.tasks t WHERE t.state = s.name)"
    "  FROM tasker.task_states s "
    "UNION ALL SELECT 'steps', s.name,"
    "  (SELECT count(*) FROM tasker.workflow_steps w WHERE w.state = s.name)"
    "  FROM tasker.step_states s "
    "UNION ALL SELECT 'queue', m.queue_name, m.queue_length FROM tasker_mq.metrics_all() m",
    0, true};

static tk_api_t *api_of(tk_http_request_t *req)
{
    return tk_http_context(req);
}

#define CONFLICT_MESSAGE "A task with this identity already exists"

/* The HTTP status and Tasker code of a failed database call's TK_E* code. */
static int db_error_status(int rc, const char **code)
{
    switch (rc) {
    case TK_ENOTFOUND:
        *code = "NOT_FOUND";
        return 404;
    case TK_ECONFLICT:
        *code = "CONFLICT";
        return 409;
    case TK_EINVAL:
    case TK_ETRANSITION:
        *code = "BAD_REQUEST";
        return 400;
    case TK_ECONN:
    case TK_ETIMEDOUT:
        *code = "SERVICE_UNAVAILABLE";
        return 503;
    default:
        *code = "DATABASE_ERROR";
        return 500;
    }
}

/* Answer a failed database call with the right status and Tasker code. */
static void respond_db_error(tk_http_request_t *req, int rc, const tk_error_t *err)
{
    const char *code;
    int status = db_error_status(rc, &code);
    if (status == 503) {
        tk_http_add_header(req, "Retry-After", "1");
        tk_http_respond_error(req, status, code, "database unavailable: %s", err->message);
    } else if (status == 409) {
        tk_http_respond_error(req, status, code, CONFLICT_MESSAGE);
    } else {
        tk_http_respond_error(req, status, code, "%s", err->message);
    }
}

/* Run a statement whose first column is the JSON answer. On success returns the result
 * (caller PQclears); on failure responds and returns NULL. */
static PGresult *query(tk_http_request_t *req, const tk_stmt_t *stmt, const char *const *params)
{
    PGresult *res;
    tk_error_t err;
    int rc = tk_pool_query(api_of(req)->pool, stmt, params, &res, &err);
    if (rc != TK_OK) {
        respond_db_error(req, rc, &err);
        return NULL;
    }
    return res;
}

/* Column `c` of a result's first row as text; NULL when it is SQL NULL. */
static const char *column(const PGresult *res, int c)
{
    return PQgetisnull(res, 0, c) ? NULL : PQgetvalue(res, 0, c);
}

/* Run `stmt` and send its JSON with `status`; 404 with `missing` when it is NULL. */
static void answer(tk_http_request_t *req, const tk_stmt_t *stmt, const char *const *params,
                   int status, const char *missing)
{
    PGresult *res = query(req, stmt, params);
    if (res == NULL)
        return;
    if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0))
        tk_http_respond_error(req, 404, "NOT_FOUND", "%s", missing);
    else
        tk_http_respond_json(req, status, PQgetvalue(res, 0, 0));
    PQclear(res);
}

/* A path parameter that must be a UUID; responds 400 INVALID_UUID and returns NULL if not. */
static const char *uuid_param(tk_http_request_t *req, const char *name)
{
    const char *v = tk_http_param(req, name);
    tk_uuid_t u;
    if (v == NULL || tk_uuid_parse(v, &u) != TK_OK) {
        tk_http_respond_error(req, 400, "INVALID_UUID", "%s \"%.64s\" is not a UUID", name,
                              v ? v : "");
        return NULL;
    }
    return v;
}

/* Integer query parameter in [min, max]; `fallback` when absent. Responds 400 and returns
 * false when it is malformed. */
static bool int_query(tk_http_request_t *req, const char *name, int min, int max, int fallback,
                      int *out)
{
    const char *v = tk_http_query(req, name);
    int64_t n;
    if (v == NULL) {
        *out = fallback;
        return true;
    }
    if (tk_parse_i64(v, min, max, &n) != TK_OK) {
        tk_http_respond_error(req, 400, "BAD_REQUEST", "%s must be an integer from %d to %d", name,
                              min, max);
        return false;
    }
    *out = (int)n;
    return true;
}

/* Send the task, waiting first (up to wait_ms) for it to reach a terminal state. The full
 * response is built only once: when the task is done (at its finishing commit, carried by the
 * finish notice when it fits: sql/0037) or the wait is over. `waiter`: the
 * caller's registration for this task, made before the task could finish and known not to
 * be finished yet (the first look is then skipped), or NULL (registered and looked at here:
 * that first look also asks for the task's finish notice, sql/0025). It is unregistered. */
static void send_task(tk_http_request_t *req, const char *task_uuid, int wait_ms, int status,
                      tk_task_waiter_t *waiter)
{
    tk_api_t *api = api_of(req);
    int64_t deadline = tk_clock_ms() + wait_ms;
    bool ask_notice = false; /* a caller's waiter is for a task created with its notice asked */
    if (waiter != NULL) {
        tk_task_watch_wait(api->watch, waiter, deadline);
    } else if (wait_ms > 0 && api->watch != NULL) {
        waiter = tk_task_watch_register(api->watch, task_uuid);
        ask_notice = true;
    }
    for (;;) {
        char *announced = waiter != NULL ? tk_task_watch_take_response(api->watch, waiter) : NULL;
        if (announced != NULL) { /* the finish notice carried the task (sql/0037) */
            tk_http_respond_json(req, status, announced);
            free(announced);
            break;
        }
        bool last =
            waiter == NULL || tk_clock_ms() >= deadline || tk_task_watch_stopping(api->watch);
        /* the first look that may be followed by a wait asks for the finish notice */
        const char *params[] = {task_uuid, last ? "true" : "false"};
        PGresult *res = query(req, ask_notice && !last ? &task_notice_stmt : &task_stmt, params);
        ask_notice = false;
        if (res == NULL)
            break;
        if (PQgetisnull(res, 0, 0)) {
            tk_http_respond_error(req, 404, "NOT_FOUND", "task %s not found", task_uuid);
            PQclear(res);
            break;
        }
        if (!PQgetisnull(res, 0, 1)) { /* terminal, or the last look */
            tk_http_respond_json(req, status, PQgetvalue(res, 0, 1));
            PQclear(res);
            break;
        }
        PQclear(res);
        tk_task_watch_wait(api->watch, waiter, deadline); /* then look again */
    }
    tk_task_watch_unregister(api->watch, waiter);
}

/* --- /v1/tasks ------------------------------------------------------------------------------ */

/* Parse the request body; responds 400 JSON_ERROR and returns NULL when it is not JSON.
 * Integers beyond 64 bits are valid JSON: they are then read as reals (the body itself goes
 * to SQL as sent, so numbers keep their exact text). */
static json_t *parse_body(tk_http_request_t *req)
{
    size_t len;
    const char *body = tk_http_body(req, &len);
    json_error_t jerr;
    json_t *doc = json_loadb(body, len, 0, &jerr);
    if (doc == NULL && json_error_code(&jerr) == json_error_numeric_overflow)
        doc = json_loadb(body, len, JSON_DECODE_INT_AS_REAL, &jerr);
    if (doc == NULL)
        tk_http_respond_error(req, 400, "JSON_ERROR", "malformed JSON at line %d column %d: %s",
                              jerr.line, jerr.column, jerr.text);
    return doc;
}

/* Check one TaskRequest. True when it is valid; otherwise writes what is wrong to msg. */
static bool check_task_request(const json_t *doc, char *msg, size_t cap)
{
    msg[0] = '\0';
    const char *problem = NULL;
    static const char *const required[] = {"name", "namespace", "version"};
    for (size_t i = 0; i < 3 && problem == NULL; i++) {
        const char *v = json_string_value(json_object_get(doc, required[i]));
        if (v == NULL || v[0] == '\0')
            problem = required[i];
    }
    if (!json_is_object(doc))
        snprintf(msg, cap, "the body must be a JSON object (a TaskRequest)");
    else if (problem != NULL)
        snprintf(msg, cap, "\"%s\" is required and must be a non-empty string", problem);
    else if (json_object_get(doc, "context") && !json_is_object(json_object_get(doc, "context")))
        snprintf(msg, cap, "\"context\" must be a JSON object");
    else if (json_object_get(doc, "priority") &&
             (!json_is_integer(json_object_get(doc, "priority")) ||
              json_integer_value(json_object_get(doc, "priority")) < -100 ||
              json_integer_value(json_object_get(doc, "priority")) > 100))
        snprintf(msg, cap, "\"priority\" must be an integer from -100 to 100");
    if (msg[0] == '\0') {
        const json_t *tags = json_object_get(doc, "tags");
        size_t i;
        const json_t *tag;
        if (tags != NULL && !json_is_array(tags))
            snprintf(msg, cap, "\"tags\" must be an array of strings");
        json_array_foreach(tags, i, tag) if (!json_is_string(tag))
            snprintf(msg, cap, "\"tags\" must be an array of strings");
    }
    static const char *const uuids[] = {"correlation_id", "parent_correlation_id"};
    for (size_t i = 0; i < 2 && msg[0] == '\0'; i++) {
        const json_t *v = json_object_get(doc, uuids[i]);
        tk_uuid_t u;
        if (v != NULL && !json_is_null(v) &&
            (!json_is_string(v) || tk_uuid_parse(json_string_value(v), &u) != TK_OK))
            snprintf(msg, cap, "\"%s\" must be a UUID", uuids[i]);
    }
    static const char *const texts[] = {"initiator", "source_system", "reason", "idempotency_key"};
    for (size_t i = 0; i < 4 && msg[0] == '\0'; i++) {
        const json_t *v = json_object_get(doc, texts[i]);
        if (v != NULL && !json_is_null(v) &&
            (!json_is_string(v) || json_string_length(v) > (i == 2 ? 500u : 255u)))
            snprintf(msg, cap, "\"%s\" must be a string of at most %d characters", texts[i],
                     i == 2 ? 500 : 255);
    }
    return msg[0] == '\0';
}

/* Check the body of POST /v1/tasks: a TaskRequest. True when it is valid (the body then goes
 * to SQL as sent); otherwise responds 400 and returns false. */
static bool valid_task_request(tk_http_request_t *req)
{
    json_t *doc = parse_body(req);
    if (doc == NULL)
        return false;
    char msg[200];
    bool ok = check_task_request(doc, msg, sizeof(msg));
    json_decref(doc);
    if (!ok)
        tk_http_respond_error(req, 400, "BAD_REQUEST", "%s", msg);
    return ok;
}

/* For a request that waits: a new task uuid, with the watch's registration for it made before
 * the task exists, so that its end cannot be announced unseen. NULL (the database chooses the
 * uuid, send_task registers later and looks first) without a watch or memory. */
static tk_task_waiter_t *register_new_task(tk_api_t *api, char uuid[TK_UUID_STR_LEN])
{
    tk_uuid_t u;
    if (api->watch == NULL || tk_uuid_v7(&u) != TK_OK)
        return NULL;
    tk_uuid_format(&u, uuid);
    return tk_task_watch_register(api->watch, uuid);
}

static void create_task(tk_http_request_t *req)
{
    tk_api_t *api = api_of(req);
    int wait_ms;
    if (!int_query(req, "wait_ms", 0, api->max_wait_ms, 0, &wait_ms))
        return;
    if (!valid_task_request(req))
        return;
    char new_uuid[TK_UUID_STR_LEN];
    tk_task_waiter_t *waiter = wait_ms > 0 ? register_new_task(api, new_uuid) : NULL;
    /* a caller that waits gets the full task at the end: skip building it now; and it is
     * told when the task finishes (notify_on_finish) */
    const char *params[] = {tk_http_body(req, NULL), wait_ms > 0 ? "false" : "true",
                            waiter != NULL ? new_uuid : NULL, waiter != NULL ? "true" : "false"};
    PGresult *res = query(req, &create_stmt, params);
    if (res == NULL) {
        tk_task_watch_unregister(api->watch, waiter);
        return;
    }
    const char *uuid = column(res, 1), *correlation = column(res, 2);
    tk_log_ids_t ids = {correlation, uuid, NULL};
    TK_LOG_IDS(TK_LOG_INFO, "api", &ids, "task %s/%s created", column(res, 3), column(res, 4));
    if (uuid != NULL) {
        char location[80];
        snprintf(location, sizeof(location), "/v1/tasks/%s", uuid);
        tk_http_add_header(req, "Location", location);
    }
    tk_task_state_t state;
    const char *status = column(res, 5);
    if (waiter != NULL && (status == NULL || tk_task_state_parse(status, &state) != TK_OK ||
                           tk_task_state_is_terminal(state))) {
        tk_task_watch_unregister(api->watch, waiter); /* done already: look at it at once */
        waiter = NULL;
    }
    if (wait_ms > 0 && uuid != NULL) {
        send_task(req, uuid, wait_ms, 201, waiter);
    } else {
        tk_task_watch_unregister(api->watch, waiter);
        tk_http_respond_json(req, 201, PQgetvalue(res, 0, 0));
    }
    PQclear(res);
}

/* Answer an error about item `index` of a batch: Tasker's envelope with the item's index,
 * {"error": {"code": ..., "message": "tasks[<index>]: ...", "index": <index>}}. */
static void respond_item_error(tk_http_request_t *req, int status, const char *code, long index,
                               const char *message)
{
    char text[600];
    snprintf(text, sizeof(text), "tasks[%ld]: %s", index, message);
    json_t *doc = json_pack("{s:{s:s, s:s, s:I}}", "error", "code", code, "message", text, "index",
                            (json_int_t)index);
    char *body = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    if (body != NULL)
        tk_http_respond_json(req, status, body);
    else
        tk_http_respond_error(req, status, code, "%s", text); /* out of memory: no index */
    free(body);
    json_decref(doc);
}

/* A failed create_tasks: the item named by the error's "tasks[i]: " prefix gets its status
 * (404 unknown template, 409 duplicate, ...) with its index; other errors as for one task. */
static void respond_batch_db_error(tk_http_request_t *req, int rc, const tk_error_t *err)
{
    const char *msg = err->message;
    const char *close = strncmp(msg, "tasks[", 6) == 0 ? strstr(msg, "]: ") : NULL;
    int64_t index;
    char digits[24];
    size_t ndigits = close != NULL ? (size_t)(close - (msg + 6)) : 0;
    const char *code;
    int status = db_error_status(rc, &code);
    if (close == NULL || status == 503 || ndigits == 0 || ndigits >= sizeof(digits)) {
        respond_db_error(req, rc, err);
        return;
    }
    memcpy(digits, msg + 6, ndigits);
    digits[ndigits] = '\0';
    if (tk_parse_i64(digits, 0, INT32_MAX, &index) != TK_OK) {
        respond_db_error(req, rc, err);
        return;
    }
    respond_item_error(req, status, code, (long)index,
                       status == 409 ? CONFLICT_MESSAGE : close + 3);
}

/* POST /v1/tasks/batch: {"tasks": [TaskRequest, ...]}, 1 to max_batch_tasks of them, all
 * created in one transaction (all or nothing). 201 {"tasks": [short answers, in order]}. No
 * wait_ms: wait on each task with GET /v1/tasks/{task_uuid}?wait_ms=N. */
static void create_tasks(tk_http_request_t *req)
{
    tk_api_t *api = api_of(req);
    if (tk_http_query(req, "wait_ms") != NULL) {
        tk_http_respond_error(req, 400, "BAD_REQUEST",
                              "wait_ms is not supported by POST /v1/tasks/batch: wait for each "
                              "task with GET /v1/tasks/{task_uuid}?wait_ms=N");
        return;
    }
    json_t *doc = parse_body(req);
    if (doc == NULL)
        return;
    const json_t *tasks = json_object_get(doc, "tasks");
    size_t n = json_array_size(tasks);
    int max = api->max_batch_tasks > 0 ? api->max_batch_tasks : 1000;
    bool ok = false;
    if (!json_is_object(doc) || !json_is_array(tasks)) {
        tk_http_respond_error(req, 400, "BAD_REQUEST",
                              "the body must be a JSON object {\"tasks\": [TaskRequest, ...]}");
    } else if (n == 0) {
        tk_http_respond_error(req, 400, "BAD_REQUEST",
                              "\"tasks\" must hold at least one TaskRequest");
    } else if (n > (size_t)max) {
        tk_http_respond_error(req, 400, "BAD_REQUEST",
                              "\"tasks\" holds %zu TaskRequests; at most %d are accepted in one "
                              "batch (server.max_batch_tasks)",
                              n, max);
    } else {
        ok = true;
        char msg[200];
        for (size_t i = 0; i < n && ok; i++) {
            if (!check_task_request(json_array_get(tasks, i), msg, sizeof(msg))) {
                respond_item_error(req, 400, "BAD_REQUEST", (long)i, msg);
                ok = false;
            }
        }
    }
    json_decref(doc);
    if (!ok)
        return;
    const char *params[] = {tk_http_body(req, NULL)};
    PGresult *res;
    tk_error_t err;
    int rc = tk_pool_query(api->pool, &create_batch_stmt, params, &res, &err);
    if (rc != TK_OK) {
        respond_batch_db_error(req, rc, &err);
        return;
    }
    const char *first = column(res, 1);
    tk_log_ids_t ids = {column(res, 2), first, NULL};
    const char *count = PQgetvalue(res, 0, 3);
    TK_LOG_IDS(TK_LOG_INFO, "api", &ids, "batch of %s task%s created (first %s)", count,
               strcmp(count, "1") == 0 ? "" : "s", first ? first : "none");
    tk_http_respond_json(req, 201, PQgetvalue(res, 0, 0));
    PQclear(res);
}

static void list_tasks(tk_http_request_t *req)
{
    int page, per_page;
    if (!int_query(req, "page", 1, 1000000, 1, &page) ||
        !int_query(req, "per_page", 1, 100, 25, &per_page))
        return;
    const char *status = tk_http_query(req, "status");
    tk_task_state_t state;
    if (status != NULL && status[0] == '\0')
        status = NULL;
    if (status != NULL && tk_task_state_parse(status, &state) != TK_OK) {
        tk_http_respond_error(req, 400, "BAD_REQUEST", "unknown task status \"%.64s\"", status);
        return;
    }
    char page_s[16], per_page_s[16];
    snprintf(page_s, sizeof(page_s), "%d", page);
    snprintf(per_page_s, sizeof(per_page_s), "%d", per_page);
    const char *params[] = {
        tk_http_query(req, "namespace"),     status, tk_http_query(req, "initiator"),
        tk_http_query(req, "source_system"), page_s, per_page_s};
    answer(req, &list_stmt, params, 200, "no tasks");
}

static void get_task(tk_http_request_t *req)
{
    int wait_ms;
    const char *uuid = uuid_param(req, "task_uuid");
    if (uuid != NULL && int_query(req, "wait_ms", 0, api_of(req)->max_wait_ms, 0, &wait_ms))
        send_task(req, uuid, wait_ms, 200, NULL);
}

static void cancel_task(tk_http_request_t *req)
{
    const char *uuid = uuid_param(req, "task_uuid");
    if (uuid == NULL)
        return;
    const char *params[] = {uuid};
    answer(req, &cancel_stmt, params, 200, "task not found");
}

static void list_steps(tk_http_request_t *req)
{
    const char *uuid = uuid_param(req, "task_uuid");
    if (uuid == NULL)
        return;
    const char *params[] = {uuid};
    answer(req, &steps_stmt, params, 200, "task not found");
}

static void get_step(tk_http_request_t *req)
{
    const char *task = uuid_param(req, "task_uuid");
    const char *step = task ? uuid_param(req, "step_uuid") : NULL;
    if (step == NULL)
        return;
    const char *params[] = {task, step};
    answer(req, &step_stmt, params, 200, "step not found in this task");
}

/* PATCH a step with Tasker's StepManualAction body. */
static void step_action(tk_http_request_t *req)
{
    const char *task = uuid_param(req, "task_uuid");
    const char *step = task ? uuid_param(req, "step_uuid") : NULL;
    if (step == NULL)
        return;
    size_t len;
    const char *body = tk_http_body(req, &len);
    json_error_t jerr;
    json_t *doc = json_loadb(body, len, 0, &jerr);
    if (doc == NULL) {
        tk_http_respond_error(req, 400, "JSON_ERROR", "malformed JSON: %s", jerr.text);
        return;
    }
    const char *action = json_string_value(json_object_get(doc, "action_type"));
    const char *actor = NULL;
    static const char *const actor_keys[] = {"reset_by", "resolved_by", "completed_by"};
    for (size_t i = 0; i < 3 && actor == NULL; i++)
        actor = json_string_value(json_object_get(doc, actor_keys[i]));
    const char *reason = json_string_value(json_object_get(doc, "reason"));
    json_t *data = json_object_get(doc, "completion_data");
    char *data_text = data ? json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (action == NULL) {
        tk_http_respond_error(req, 400, "BAD_REQUEST",
                              "\"action_type\" is required: reset_for_retry, resolve_manually or "
                              "complete_manually");
    } else {
        const char *params[] = {task, step, action, actor, reason, data_text};
        answer(req, &step_action_stmt, params, 200, "step not found in this task");
    }
    free(data_text);
    json_decref(doc);
}

/* --- templates, health, metrics -------------------------------------------------------------- */

static void list_templates(tk_http_request_t *req)
{
    const char *params[] = {tk_http_query(req, "namespace")};
    answer(req, &templates_stmt, params, 200, "no templates");
}

static void get_template(tk_http_request_t *req)
{
    const char *params[] = {tk_http_param(req, "namespace"), tk_http_param(req, "name"),
                            tk_http_param(req, "version")};
    answer(req, &template_stmt, params, 200, "template not registered");
}

static void timestamp(char out[40])
{
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(out, 40, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void health(tk_http_request_t *req)
{
    char ts[40], body[128];
    timestamp(ts);
    const char *status = strcmp(tk_http_path(req), "/health/live") == 0 ? "alive" : "healthy";
    snprintf(body, sizeof(body), "{\"status\":\"%s\",\"timestamp\":\"%s\"}", status, ts);
    tk_http_respond_json(req, 200, body);
}

static void health_ready(tk_http_request_t *req)
{
    tk_api_t *api = api_of(req);
    int64_t start = tk_clock_us();
    PGresult *res;
    tk_error_t err;
    int rc = tk_pool_query(api->pool, &ready_stmt, NULL, &res, &err);
    PQclear(res);
    double db_ms = (double)(tk_clock_us() - start) / 1000.0;
    bool orch_ok = true;
    if (api->orchestrator != NULL) {
        tk_orchestrator_stats_t st;
        tk_orchestrator_stats(api->orchestrator, &st);
        orch_ok = st.database_ok;
    }
    bool ready = rc == TK_OK && orch_ok;
    char ts[40];
    timestamp(ts);
    json_t *doc = json_pack("{s:s, s:s, s:{s:{s:s, s:f, s:s*}, s:{s:s}}}", "status",
                            ready ? "ready" : "not_ready", "timestamp", ts, "checks", "database",
                            "status", rc == TK_OK ? "healthy" : "unhealthy", "duration_ms", db_ms,
                            "message", rc == TK_OK ? NULL : err.message, "orchestration", "status",
                            orch_ok ? "healthy" : "unhealthy");
    char *text = json_dumps(doc, JSON_COMPACT);
    if (!ready)
        tk_http_add_header(req, "Retry-After", "1");
    tk_http_respond_json(req, ready ? 200 : 503, text ? text : "{}");
    free(text);
    json_decref(doc);
}

/* Append printf output to a growing buffer; returns false when out of memory. */
static bool appendf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static bool appendf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(*buf + *len, *cap - *len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return false;
        if ((size_t)n < *cap - *len) {
            *len += (size_t)n;
            return true;
        }
        char *bigger = realloc(*buf, *cap * 2 + (size_t)n);
        if (bigger == NULL)
            return false;
        *buf = bigger;
        *cap = *cap * 2 + (size_t)n;
    }
}

static void metrics(tk_http_request_t *req)
{
    PGresult *res = query(req, &metrics_stmt, NULL);
    if (res == NULL)
        return;
    size_t len = 0, cap = 4096;
    char *out = malloc(cap);
    bool ok = out != NULL;
    static const struct {
        const char *kind, *name, *help, *label;
    } families[] = {
        {"tasks", "tasker_tasks", "Tasks by current state.", "state"},
        {"steps", "tasker_steps", "Workflow steps by current state.", "state"},
        {"queue", "tasker_queue_depth", "Messages waiting in each queue.", "queue"},
    };
    for (size_t f = 0; ok && f < 3; f++) {
        ok = appendf(&out, &len, &cap, "# HELP %s %s\n# TYPE %s gauge\n", families[f].name,
                     families[f].help, families[f].name);
        for (int i = 0; ok && i < PQntuples(res); i++)
            if (strcmp(PQgetvalue(res, i, 0), families[f].kind) == 0)
                ok = appendf(&out, &len, &cap, "%s{%s=\"%s\"} %s\n", families[f].name,
                             families[f].label, PQgetvalue(res, i, 1), PQgetvalue(res, i, 2));
    }
    PQclear(res);
    tk_api_t *api = api_of(req);
    if (ok && api->orchestrator != NULL) {
        tk_orchestrator_stats_t st;
        tk_orchestrator_stats(api->orchestrator, &st);
        ok = appendf(&out, &len, &cap,
                     "# HELP tasker_result_rounds_total Rounds of this server's result "
                     "processing (on a notification, a due retry, or the polling period).\n"
                     "# TYPE tasker_result_rounds_total counter\n"
                     "tasker_result_rounds_total %llu\n"
                     "# HELP tasker_step_results_total Result messages this server applied "
                     "(workers apply their own; tasker_steps counts all steps).\n"
                     "# TYPE tasker_step_results_total counter\n"
                     "tasker_step_results_total %llu\n"
                     "# HELP tasker_tasks_finished_total Tasks this server finished (most finish "
                     "in a worker; tasker_tasks counts all tasks).\n"
                     "# TYPE tasker_tasks_finished_total counter\n"
                     "tasker_tasks_finished_total{outcome=\"complete\"} %llu\n"
                     "tasker_tasks_finished_total{outcome=\"error\"} %llu\n"
                     "# HELP tasker_sweeps_total Sweeper runs and the items they recovered.\n"
                     "# TYPE tasker_sweeps_total counter\n"
                     "tasker_sweeps_total %llu\n"
                     "tasker_sweep_recovered_total %llu\n"
                     "# HELP tasker_step_latency_ms Time from a step's claim to its result "
                     "being applied.\n"
                     "# TYPE tasker_step_latency_ms histogram\n",
                     (unsigned long long)st.result_rounds, (unsigned long long)st.results,
                     (unsigned long long)st.tasks_complete, (unsigned long long)st.tasks_error,
                     (unsigned long long)st.sweeps, (unsigned long long)st.recovered);
        for (int b = 0; ok && b < TK_LATENCY_BUCKETS; b++) {
            if (b == TK_LATENCY_BUCKETS - 1)
                ok = appendf(&out, &len, &cap, "tasker_step_latency_ms_bucket{le=\"+Inf\"} %llu\n",
                             (unsigned long long)st.latency_buckets[b]);
            else
                ok = appendf(&out, &len, &cap, "tasker_step_latency_ms_bucket{le=\"%g\"} %llu\n",
                             tk_latency_bounds_ms[b], (unsigned long long)st.latency_buckets[b]);
        }
        if (ok)
            ok = appendf(&out, &len, &cap,
                         "tasker_step_latency_ms_sum %.3f\ntasker_step_latency_ms_count %llu\n",
                         st.latency_sum_ms, (unsigned long long)st.latency_count);
    }
    if (ok)
        tk_http_respond(req, 200, "text/plain; version=0.0.4", out, len);
    else
        tk_http_respond_error(req, 500, "INTERNAL_ERROR", "out of memory");
    free(out);
}

static const tk_http_route_t routes[] = {
    {"POST", "/v1/tasks", create_task},
    {"POST", "/v1/tasks/batch", create_tasks},
    {"GET", "/v1/tasks", list_tasks},
    {"GET", "/v1/tasks/{task_uuid}", get_task},
    {"DELETE", "/v1/tasks/{task_uuid}", cancel_task},
    {"GET", "/v1/tasks/{task_uuid}/workflow_steps", list_steps},
    {"GET", "/v1/tasks/{task_uuid}/workflow_steps/{step_uuid}", get_step},
    {"PATCH", "/v1/tasks/{task_uuid}/workflow_steps/{step_uuid}", step_action},
    {"GET", "/v1/templates", list_templates},
    {"GET", "/v1/templates/{namespace}/{name}/{version}", get_template},
    {"GET", "/health", health},
    {"GET", "/health/live", health},
    {"GET", "/health/ready", health_ready},
    {"GET", "/metrics", metrics},
};

const tk_http_route_t *tk_api_routes(size_t *count)
{
    *count = sizeof(routes) / sizeof(routes[0]);
    return routes;
}
