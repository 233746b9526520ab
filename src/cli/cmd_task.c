/*
 * cmd_task.c - `tasker task`: create, inspect and cancel tasks and act on their steps through
 * the orchestration server's REST API (Tasker's routes and payloads, see
 * src/orchestration/api.h), like Tasker's `tasker-ctl task ...`.
 *
 * Each subcommand checks its arguments (UUIDs, numbers, JSON) before any request, makes one
 * or a few requests with http_client.c and prints a compact summary, or with --json the
 * server's JSON pretty-printed. `create --count N` sends N copies of the request in one
 * POST /v1/tasks/batch (all or none). Exit status: 0 done, 1 the server refused or could not
 * be reached (or a waited-for task did not complete), 2 usage error.
 */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/http_client.h"
#include "cli/task_format.h"
#include "common/clock.h"
#include "common/parse.h"
#include "common/uuid.h"

#define DEFAULT_TIMEOUT_MS 60000
#define REQUEST_TIMEOUT_MS 30000L /* a request without wait_ms */
#define WAIT_CHUNK_MS      60000  /* wait_ms of one request: the server's default bound */
#define MAX_TAGS           64
#define MAX_COPIES         100000 /* create --count: the largest server.max_batch_tasks */
#define PROCEED            (-1)   /* parse_args: arguments are fine, run the subcommand */

/* Default reasons recorded with a new task and with the step actions. */
#define REASON_CREATE   "submitted with tasker task create"
#define REASON_RESET    "reset with tasker task reset-step"
#define REASON_RESOLVE  "resolved with tasker task resolve-step"
#define REASON_COMPLETE "completed with tasker task complete-step"

/* --- options ------------------------------------------------------------------------- */

enum {
    OPT_URL,
    OPT_CONFIG,
    OPT_JSON,
    OPT_NAMESPACE,
    OPT_NAME,
    OPT_VERSION,
    OPT_CONTEXT,
    OPT_PRIORITY,
    OPT_INITIATOR,
    OPT_SOURCE_SYSTEM,
    OPT_REASON,
    OPT_TAG,
    OPT_CORRELATION_ID,
    OPT_IDEMPOTENCY_KEY,
    OPT_WAIT,
    OPT_TIMEOUT_MS,
    OPT_STATUS,
    OPT_PAGE,
    OPT_PER_PAGE,
    OPT_BY,
    OPT_RESULT,
    OPT_METADATA,
    OPT_COPIES,
    OPT_COUNT
};

#define OPT_VAL(id) (1000 + (id)) /* getopt_long value of a long option */
#define BIT(id)     (1u << (id))
#define COMMON      (BIT(OPT_URL) | BIT(OPT_CONFIG) | BIT(OPT_JSON))

static const struct option all_options[OPT_COUNT] = {
    [OPT_URL] = {"url", required_argument, NULL, OPT_VAL(OPT_URL)},
    [OPT_CONFIG] = {"config", required_argument, NULL, OPT_VAL(OPT_CONFIG)},
    [OPT_JSON] = {"json", no_argument, NULL, OPT_VAL(OPT_JSON)},
    [OPT_NAMESPACE] = {"namespace", required_argument, NULL, OPT_VAL(OPT_NAMESPACE)},
    [OPT_NAME] = {"name", required_argument, NULL, OPT_VAL(OPT_NAME)},
    [OPT_VERSION] = {"version", required_argument, NULL, OPT_VAL(OPT_VERSION)},
    [OPT_CONTEXT] = {"context", required_argument, NULL, OPT_VAL(OPT_CONTEXT)},
    [OPT_PRIORITY] = {"priority", required_argument, NULL, OPT_VAL(OPT_PRIORITY)},
    [OPT_INITIATOR] = {"initiator", required_argument, NULL, OPT_VAL(OPT_INITIATOR)},
    [OPT_SOURCE_SYSTEM] = {"source-system", required_argument, NULL, OPT_VAL(OPT_SOURCE_SYSTEM)},
    [OPT_REASON] = {"reason", required_argument, NULL, OPT_VAL(OPT_REASON)},
    [OPT_TAG] = {"tag", required_argument, NULL, OPT_VAL(OPT_TAG)},
    [OPT_CORRELATION_ID] = {"correlation-id", required_argument, NULL, OPT_VAL(OPT_CORRELATION_ID)},
    [OPT_IDEMPOTENCY_KEY] = {"idempotency-key", required_argument, NULL,
                             OPT_VAL(OPT_IDEMPOTENCY_KEY)},
    [OPT_WAIT] = {"wait", no_argument, NULL, OPT_VAL(OPT_WAIT)},
    [OPT_TIMEOUT_MS] = {"timeout-ms", required_argument, NULL, OPT_VAL(OPT_TIMEOUT_MS)},
    [OPT_STATUS] = {"status", required_argument, NULL, OPT_VAL(OPT_STATUS)},
    [OPT_PAGE] = {"page", required_argument, NULL, OPT_VAL(OPT_PAGE)},
    [OPT_PER_PAGE] = {"per-page", required_argument, NULL, OPT_VAL(OPT_PER_PAGE)},
    [OPT_BY] = {"by", required_argument, NULL, OPT_VAL(OPT_BY)},
    [OPT_RESULT] = {"result", required_argument, NULL, OPT_VAL(OPT_RESULT)},
    [OPT_METADATA] = {"metadata", required_argument, NULL, OPT_VAL(OPT_METADATA)},
    [OPT_COPIES] = {"count", required_argument, NULL, OPT_VAL(OPT_COPIES)},
};

/* Everything a subcommand was given. Strings point into argv. */
typedef struct task_args_s {
    char cmd[32]; /* "task create", for messages */
    const char *url, *config;
    bool json, wait;
    const char *namespace_name, *name, *version, *context, *initiator, *source_system;
    const char *reason, *correlation_id, *idempotency_key, *status, *by, *result, *metadata;
    const char *tags[MAX_TAGS];
    int ntags;
    bool has_priority;
    int priority;
    int timeout_ms; /* 0: not given */
    int page, per_page;
    int copies;         /* create --count N; 0: not given */
    const char *pos[2]; /* positional arguments: TASK_UUID [STEP_UUID] */
    char *base;         /* server URL in use (owned) */
    json_t *context_doc, *result_doc, *metadata_doc; /* the JSON options, parsed (owned) */
} task_args_t;

typedef struct sub_s {
    const char *name;
    const char *args; /* positional arguments, for the usage line */
    int nargs;
    unsigned options; /* BIT(OPT_*) accepted besides the common ones */
    const char *help; /* description and the subcommand's own options */
    int (*run)(task_args_t *a);
} sub_t;

static const char common_help[] =
    "      --url URL              tasker server (default: client.url of the configuration,\n"
    "                             i.e. $TASKER_URL, or http://localhost:8080)\n"
    "  -c, --config FILE          YAML configuration to read client.url from (default:\n"
    "                             $TASKER_CONFIG_PATH)\n"
    "      --json                 print the server's JSON answer instead of a summary\n"
    "  -h, --help                 show this help\n";

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: tasker task <subcommand> [options]\n"
            "\n"
            "Create, inspect and cancel tasks, and act on their steps, through the REST API of\n"
            "a tasker server.\n"
            "\n"
            "Subcommands:\n"
            "  create --namespace NS --name NAME   create a task from a registered template\n"
            "                                      (--count N: N copies in one batch)\n"
            "  get TASK_UUID                       show a task and its steps\n"
            "  list                                list tasks, newest first\n"
            "  cancel TASK_UUID                    cancel a task that has not finished\n"
            "  steps TASK_UUID                     list the steps of a task with their UUIDs\n"
            "  step TASK_UUID STEP_UUID            show one step, its result or error\n"
            "  reset-step TASK_UUID STEP_UUID      retry a failed step from scratch\n"
            "  resolve-step TASK_UUID STEP_UUID    mark a step resolved by hand\n"
            "  complete-step TASK_UUID STEP_UUID   complete a step with a result given by hand\n"
            "\n"
            "Options of every subcommand:\n"
            "%s"
            "\n"
            "Run 'tasker task <subcommand> --help' for the options of a subcommand.\n"
            "Exit status: 0 done, 1 the server refused or could not be reached, 2 usage error.\n",
            common_help);
}

static void sub_usage(const sub_t *s, FILE *out)
{
    fprintf(out, "Usage: tasker task %s%s%s [options]\n\n%s%s", s->name, s->args[0] ? " " : "",
            s->args, s->help, common_help);
}

/* --- JSON arguments and output ------------------------------------------------------- */

/* A JSON option value: the text itself, @FILE or - (standard input). Returns the value, or
 * NULL after printing a usage error. */
static json_t *json_arg(const task_args_t *a, const char *option, const char *text)
{
    json_error_t jerr;
    json_t *v;
    char what[300]; /* how the value was given, for messages */
    if (strcmp(text, "-") == 0) {
        v = json_loadf(stdin, JSON_DECODE_ANY, &jerr);
        snprintf(what, sizeof(what), "--%s - (standard input)", option);
    } else if (text[0] == '@') {
        v = json_load_file(text + 1, JSON_DECODE_ANY, &jerr);
        snprintf(what, sizeof(what), "--%s %.250s", option, text);
    } else {
        v = json_loads(text, JSON_DECODE_ANY, &jerr);
        snprintf(what, sizeof(what), "--%s", option);
    }
    if (v != NULL)
        return v;
    if (jerr.line < 1) /* e.g. the file cannot be read */
        tk_cli_usage_error(a->cmd, "%s: %s", what, jerr.text);
    else
        tk_cli_usage_error(a->cmd, "%s is not valid JSON: line %d column %d: %s", what, jerr.line,
                           jerr.column, jerr.text);
    return NULL;
}

/* True if every real number in `v` prints exactly with `precision` significant digits. */
static bool reals_exact(const json_t *v, int precision)
{
    if (json_is_real(v)) {
        char text[40];
        double d = json_real_value(v);
        snprintf(text, sizeof(text), "%.*g", precision, d);
        return !isfinite(d) || strtod(text, NULL) == d;
    }
    const char *key;
    const json_t *child;
    size_t i;
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, key, child)
        {
            if (!reals_exact(child, precision))
                return false;
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, child)
        {
            if (!reals_exact(child, precision))
                return false;
        }
    }
    return true;
}

/* Print the server's answer pretty-printed; the raw text when jansson could not parse it.
 * Real numbers get the fewest digits that keep them exact (33.33, not 33.329999999999998). */
static void print_json(const json_t *doc, const char *raw)
{
    char *text = NULL;
    if (doc != NULL) {
        int precision = 15;
        while (precision < 17 && !reals_exact(doc, precision))
            precision++;
        text = json_dumps(doc, JSON_INDENT(2) | JSON_ENCODE_ANY | JSON_REAL_PRECISION(precision));
    }
    printf("%s\n", text != NULL ? text : raw);
    free(text);
}

/* --- requests ------------------------------------------------------------------------ */

/* Send one request. On a 2xx answer returns TK_CLI_EXIT_OK with *doc the parsed body (NULL
 * when it is not JSON jansson can read) and *raw the body text (free both). Otherwise prints
 * the problem and returns TK_CLI_EXIT_FAIL. */
static int call(const task_args_t *a, const char *method, const char *path, const json_t *body,
                long timeout_ms, json_t **doc, char **raw)
{
    *doc = NULL;
    *raw = NULL;
    char *text = NULL;
    if (body != NULL && (text = json_dumps(body, JSON_COMPACT)) == NULL)
        return tk_cli_fail("could not encode the request: out of memory");
    tk_http_reply_t reply;
    tk_error_t err;
    int rc = tk_http_request(a->base, method, path, text, timeout_ms, &reply, &err);
    free(text);
    if (rc != TK_OK)
        return tk_cli_fail("%s", err.message);
    if (reply.status < 200 || reply.status > 299) {
        const char *msg = tk_http_error_message(reply.body);
        if (msg[0] == '\0')
            tk_cli_fail("the server answered %s %s with HTTP %ld", method, path, reply.status);
        else
            tk_cli_fail("%s (HTTP %ld)", msg, reply.status);
        tk_http_reply_free(&reply);
        return TK_CLI_EXIT_FAIL;
    }
    *doc = json_loads(reply.body, JSON_DECODE_ANY, NULL);
    *raw = reply.body; /* handed over */
    return TK_CLI_EXIT_OK;
}

/* call() for a human-readable answer: also fails when the answer is not JSON. */
static int call_doc(const task_args_t *a, const char *method, const char *path, const json_t *body,
                    long timeout_ms, json_t **doc, char **raw)
{
    int rc = call(a, method, path, body, timeout_ms, doc, raw);
    if (rc == TK_CLI_EXIT_OK && *doc == NULL) {
        tk_cli_fail("the server's answer to %s %s is not JSON: %.200s", method, path, *raw);
        free(*raw);
        *raw = NULL;
        return TK_CLI_EXIT_FAIL;
    }
    return rc;
}

/* The steps of a task (StepResponse array) or NULL when they cannot be read; quiet. */
static json_t *fetch_steps(const task_args_t *a, const char *task_uuid)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/tasks/%s/workflow_steps", task_uuid);
    tk_http_reply_t reply;
    tk_error_t err;
    if (tk_http_request(a->base, "GET", path, NULL, REQUEST_TIMEOUT_MS, &reply, &err) != TK_OK)
        return NULL;
    json_t *steps = reply.status == 200 ? json_loads(reply.body, 0, NULL) : NULL;
    tk_http_reply_free(&reply);
    if (!json_is_array(steps)) {
        json_decref(steps);
        return NULL;
    }
    return steps;
}

static const char *task_status(const json_t *task)
{
    return json_string_value(json_object_get(task, "status"));
}

/* Read the task again until it is terminal or `deadline` (tk_clock_ms) passes; *task is
 * replaced by each newer answer. */
static int wait_task(const task_args_t *a, const char *uuid, int64_t deadline, json_t **task,
                     char **raw)
{
    while (!tk_task_status_terminal(task_status(*task))) {
        int64_t now = tk_clock_ms();
        if (now >= deadline)
            break;
        int64_t wait = deadline - now < WAIT_CHUNK_MS ? deadline - now : WAIT_CHUNK_MS;
        char path[128];
        snprintf(path, sizeof(path), "/v1/tasks/%s?wait_ms=%lld", uuid, (long long)wait);
        json_t *doc;
        char *text;
        int rc = call_doc(a, "GET", path, NULL, REQUEST_TIMEOUT_MS + (long)wait, &doc, &text);
        if (rc != TK_CLI_EXIT_OK)
            return rc;
        json_decref(*task);
        free(*raw);
        *task = doc;
        *raw = text;
        /* A server that answered early without a final state is not waiting: do not spin. */
        if (!tk_task_status_terminal(task_status(doc)) && tk_clock_ms() - now < wait / 2)
            tk_sleep_ms(200);
    }
    return TK_CLI_EXIT_OK;
}

/* Print a task (summary or JSON). With `waited`, exit 0 only for a complete task and name
 * the failed steps otherwise. */
static int finish_task(const task_args_t *a, const json_t *task, const char *raw, bool waited)
{
    const char *uuid = json_string_value(json_object_get(task, "task_uuid"));
    const char *status = task_status(task);
    bool complete = status != NULL && strcmp(status, "complete") == 0;
    json_t *steps = NULL;
    if (uuid != NULL && (!a->json || (waited && !complete)))
        steps = fetch_steps(a, uuid);
    if (a->json)
        print_json(task, raw);
    else
        tk_task_print(stdout, task, steps);
    fflush(stdout);
    int rc = TK_CLI_EXIT_OK;
    if (waited && !complete) {
        char failed[1024] = "";
        size_t len = 0, nfailed = 0;
        size_t i;
        const json_t *s;
        const json_t *list = steps != NULL ? steps : json_object_get(task, "steps");
        json_array_foreach(list, i, s)
        {
            const char *state = json_string_value(json_object_get(s, "current_state"));
            if (state == NULL || strcmp(state, "error") != 0 || len >= sizeof(failed))
                continue;
            const char *error = tk_task_step_error(s);
            int n = snprintf(failed + len, sizeof(failed) - len, "%s%s%s%s%s",
                             nfailed > 0 ? ", " : "", json_string_value(json_object_get(s, "name")),
                             error ? " (" : "", error ? error : "", error ? ")" : "");
            len = n < 0 ? sizeof(failed) : len + (size_t)n;
            nfailed++;
        }
        if (!tk_task_status_terminal(status))
            tk_cli_fail("task %s did not finish within %d ms (status %s)", uuid ? uuid : "?",
                        a->timeout_ms, status ? status : "unknown");
        else if (nfailed > 0)
            tk_cli_fail("task %s ended in state %s; failed step%s: %s", uuid ? uuid : "?", status,
                        nfailed == 1 ? "" : "s", failed);
        else
            tk_cli_fail("task %s ended in state %s", uuid ? uuid : "?",
                        status ? status : "unknown");
        rc = TK_CLI_EXIT_FAIL;
    }
    json_decref(steps);
    return rc;
}

/* --- subcommands --------------------------------------------------------------------- */

/* create --count N: N copies of `req` in one POST /v1/tasks/batch, each with its own
 * idempotency key KEY/i (i from 0; KEY: --idempotency-key, else a new UUID), so that copies
 * of one context are distinct tasks; the server creates all or none. Prints each task (with
 * --wait, once every task finished or the time is up). */
static int create_copies(task_args_t *a, const json_t *req)
{
    char fresh[TK_UUID_STR_LEN];
    const char *key = a->idempotency_key;
    if (key == NULL) {
        tk_uuid_t u;
        if (tk_uuid_v7(&u) != TK_OK)
            return tk_cli_fail("could not make an idempotency key");
        tk_uuid_format(&u, fresh);
        key = fresh;
    }
    json_t *tasks = json_array();
    for (int i = 0; tasks != NULL && i < a->copies; i++) {
        char k[320];
        snprintf(k, sizeof(k), "%.300s/%d", key, i);
        json_t *copy = json_copy((json_t *)req); /* shallow: shares context and tags */
        if (copy == NULL || json_object_set_new(copy, "idempotency_key", json_string(k)) != 0 ||
            json_array_append_new(tasks, copy) != 0) {
            json_decref(tasks);
            tasks = NULL;
        }
    }
    json_t *body = tasks != NULL ? json_pack("{s:o}", "tasks", tasks) : NULL;
    if (body == NULL)
        return tk_cli_fail("could not build the request: out of memory");
    json_t *doc;
    char *raw;
    int rc = (a->json && !a->wait ? call : call_doc)(a, "POST", "/v1/tasks/batch", body,
                                                     REQUEST_TIMEOUT_MS, &doc, &raw);
    json_decref(body);
    if (rc != TK_CLI_EXIT_OK)
        return rc;
    json_t *created = json_object_get(doc, "tasks");
    size_t n = json_array_size(created), i;
    json_t *item;
    if (a->wait) { /* each answer is replaced by its task at the end */
        int timeout = a->timeout_ms > 0 ? a->timeout_ms : DEFAULT_TIMEOUT_MS;
        int64_t deadline = tk_clock_ms() + timeout;
        for (i = 0; i < n && rc == TK_CLI_EXIT_OK; i++) {
            json_t *task = json_incref(json_array_get(created, i));
            char *text = NULL, *uuid = NULL;
            const char *u = json_string_value(json_object_get(task, "task_uuid"));
            if (u == NULL || (uuid = strdup(u)) == NULL)
                rc = tk_cli_fail("the server's answer names no task_uuid for task %zu", i);
            else
                rc = wait_task(a, uuid, deadline, &task, &text);
            if (rc == TK_CLI_EXIT_OK)
                json_array_set(created, i, task);
            json_decref(task);
            free(text);
            free(uuid);
        }
        a->timeout_ms = timeout;
    }
    if (rc == TK_CLI_EXIT_OK && a->json) {
        print_json(doc, raw);
    } else if (rc == TK_CLI_EXIT_OK) {
        printf("created %zu task%s (%s/%s %s) in one batch:\n", n, n == 1 ? "" : "s",
               a->namespace_name, a->name, a->version ? a->version : "1.0.0");
        json_array_foreach(created, i, item)
        {
            const char *uuid = json_string_value(json_object_get(item, "task_uuid"));
            printf("  %s  %s\n", uuid ? uuid : "?", task_status(item) ? task_status(item) : "?");
        }
    }
    fflush(stdout);
    if (rc == TK_CLI_EXIT_OK && a->wait) {
        size_t unfinished = 0, failed = 0;
        json_array_foreach(created, i, item)
        {
            const char *status = task_status(item);
            if (!tk_task_status_terminal(status))
                unfinished++;
            else if (strcmp(status, "complete") != 0)
                failed++;
        }
        if (unfinished > 0)
            rc = tk_cli_fail("%zu of %zu tasks did not finish within %d ms", unfinished, n,
                             a->timeout_ms);
        else if (failed > 0)
            rc = tk_cli_fail("%zu of %zu tasks did not complete", failed, n);
    }
    json_decref(doc);
    free(raw);
    return rc;
}

static int task_create(task_args_t *a)
{
    json_t *context = a->context_doc != NULL ? json_incref(a->context_doc) : json_object();
    json_t *tags = json_array();
    for (int i = 0; i < a->ntags; i++)
        json_array_append_new(tags, json_string(a->tags[i]));
    json_t *req =
        json_pack("{s:s, s:s, s:s, s:o, s:s, s:s, s:s, s:o}", "namespace", a->namespace_name,
                  "name", a->name, "version", a->version ? a->version : "1.0.0", "context", context,
                  "initiator", a->initiator ? a->initiator : "tasker-cli", "source_system",
                  a->source_system ? a->source_system : "cli", "reason",
                  a->reason ? a->reason : REASON_CREATE, "tags", tags);
    if (req == NULL)
        return tk_cli_fail("could not build the request (strings must be UTF-8)");
    if (a->has_priority)
        json_object_set_new(req, "priority", json_integer(a->priority));
    if (a->correlation_id != NULL)
        json_object_set_new(req, "correlation_id", json_string(a->correlation_id));
    if (a->copies > 0) {
        int rc = create_copies(a, req);
        json_decref(req);
        return rc;
    }
    if (a->idempotency_key != NULL)
        json_object_set_new(req, "idempotency_key", json_string(a->idempotency_key));

    int timeout = a->timeout_ms > 0 ? a->timeout_ms : DEFAULT_TIMEOUT_MS;
    int64_t deadline = tk_clock_ms() + timeout;
    int wait = a->wait ? (timeout < WAIT_CHUNK_MS ? timeout : WAIT_CHUNK_MS) : 0;
    char path[64] = "/v1/tasks";
    if (wait > 0)
        snprintf(path, sizeof(path), "/v1/tasks?wait_ms=%d", wait);
    json_t *task;
    char *raw;
    int rc = (a->json && !a->wait ? call : call_doc)(a, "POST", path, req,
                                                     REQUEST_TIMEOUT_MS + wait, &task, &raw);
    json_decref(req);
    if (rc != TK_CLI_EXIT_OK)
        return rc;
    const char *uuid = json_string_value(json_object_get(task, "task_uuid"));
    if (a->wait) {
        if (uuid == NULL) {
            rc = tk_cli_fail("the server's answer names no task_uuid");
        } else {
            char *uuid_copy = strdup(uuid); /* *task is replaced while waiting */
            a->timeout_ms = timeout;
            rc = uuid_copy ? wait_task(a, uuid_copy, deadline, &task, &raw)
                           : tk_cli_fail("out of memory");
            if (rc == TK_CLI_EXIT_OK)
                rc = finish_task(a, task, raw, true);
            free(uuid_copy);
        }
    } else if (a->json) {
        print_json(task, raw);
    } else {
        const char *ns = json_string_value(json_object_get(task, "namespace"));
        const char *name = json_string_value(json_object_get(task, "name"));
        const char *version = json_string_value(json_object_get(task, "version"));
        printf("created task %s (%s/%s %s): %s\n", uuid ? uuid : "?", ns ? ns : "?",
               name ? name : "?", version ? version : "?",
               task_status(task) ? task_status(task) : "unknown");
    }
    json_decref(task);
    free(raw);
    return rc;
}

static int task_get(task_args_t *a)
{
    int timeout = a->timeout_ms > 0 ? a->timeout_ms : DEFAULT_TIMEOUT_MS;
    int64_t deadline = tk_clock_ms() + timeout;
    char path[128];
    snprintf(path, sizeof(path), "/v1/tasks/%s", a->pos[0]);
    json_t *task;
    char *raw;
    int rc = (a->json && !a->wait ? call : call_doc)(a, "GET", path, NULL, REQUEST_TIMEOUT_MS,
                                                     &task, &raw);
    if (rc == TK_CLI_EXIT_OK && a->wait)
        rc = wait_task(a, a->pos[0], deadline, &task, &raw);
    a->timeout_ms = timeout;
    if (rc == TK_CLI_EXIT_OK)
        rc = finish_task(a, task, raw, a->wait);
    json_decref(task);
    free(raw);
    return rc;
}

static int task_list(task_args_t *a)
{
    char path[1024];
    int len = snprintf(path, sizeof(path), "/v1/tasks?page=%d&per_page=%d",
                       a->page > 0 ? a->page : 1, a->per_page > 0 ? a->per_page : 25);
    const struct {
        const char *key, *value;
    } filters[] = {{"namespace", a->namespace_name}, {"status", a->status}};
    for (size_t i = 0; i < 2; i++) {
        if (filters[i].value == NULL)
            continue;
        char *v = tk_http_escape(filters[i].value);
        if (v == NULL)
            return tk_cli_fail("out of memory");
        len += snprintf(path + len, sizeof(path) - (size_t)len, "&%s=%s", filters[i].key, v);
        free(v);
        if ((size_t)len >= sizeof(path))
            return tk_cli_usage_error(a->cmd, "--%s is too long", filters[i].key);
    }
    json_t *doc;
    char *raw;
    int rc = (a->json ? call : call_doc)(a, "GET", path, NULL, REQUEST_TIMEOUT_MS, &doc, &raw);
    if (rc != TK_CLI_EXIT_OK)
        return rc;
    if (a->json)
        print_json(doc, raw);
    else
        tk_task_print_list(stdout, doc);
    json_decref(doc);
    free(raw);
    return TK_CLI_EXIT_OK;
}

static int task_cancel(task_args_t *a)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/tasks/%s", a->pos[0]);
    json_t *task;
    char *raw;
    int rc = (a->json ? call : call_doc)(a, "DELETE", path, NULL, REQUEST_TIMEOUT_MS, &task, &raw);
    if (rc != TK_CLI_EXIT_OK)
        return rc;
    if (!a->json)
        printf("cancelled task %s\n\n", a->pos[0]);
    rc = finish_task(a, task, raw, false);
    json_decref(task);
    free(raw);
    return rc;
}

static int task_steps(task_args_t *a)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/tasks/%s/workflow_steps", a->pos[0]);
    json_t *doc;
    char *raw;
    int rc = (a->json ? call : call_doc)(a, "GET", path, NULL, REQUEST_TIMEOUT_MS, &doc, &raw);
    if (rc != TK_CLI_EXIT_OK)
        return rc;
    if (a->json)
        print_json(doc, raw);
    else
        tk_task_print_steps(stdout, doc);
    json_decref(doc);
    free(raw);
    return TK_CLI_EXIT_OK;
}

/* GET or PATCH one step and print it; `done` is the summary line of an action. */
static int step_request(task_args_t *a, const char *method, const json_t *body, const char *done)
{
    char path[160];
    snprintf(path, sizeof(path), "/v1/tasks/%s/workflow_steps/%s", a->pos[0], a->pos[1]);
    json_t *doc;
    char *raw;
    int rc = (a->json ? call : call_doc)(a, method, path, body, REQUEST_TIMEOUT_MS, &doc, &raw);
    if (rc != TK_CLI_EXIT_OK)
        return rc;
    if (a->json) {
        print_json(doc, raw);
    } else {
        const char *name = json_string_value(json_object_get(doc, "name"));
        const char *state = json_string_value(json_object_get(doc, "current_state"));
        if (done != NULL)
            printf("%s step %s; it is now %s\n\n", done, name ? name : "?",
                   state ? state : "unknown");
        tk_task_print_step(stdout, doc);
    }
    json_decref(doc);
    free(raw);
    return TK_CLI_EXIT_OK;
}

static int task_step(task_args_t *a)
{
    return step_request(a, "GET", NULL, NULL);
}

static const char *actor(const task_args_t *a)
{
    if (a->by != NULL)
        return a->by;
    const char *user = getenv("USER");
    return user != NULL && user[0] != '\0' ? user : "tasker-cli";
}

static int step_action(task_args_t *a, const char *action, const char *actor_key,
                       const char *default_reason, json_t *completion, const char *done)
{
    json_t *body = json_pack("{s:s, s:s, s:s}", "action_type", action, "reason",
                             a->reason ? a->reason : default_reason, actor_key, actor(a));
    if (body == NULL) {
        json_decref(completion);
        return tk_cli_fail("could not build the request (strings must be UTF-8)");
    }
    if (completion != NULL)
        json_object_set_new(body, "completion_data", completion);
    int rc = step_request(a, "PATCH", body, done);
    json_decref(body);
    return rc;
}

static int task_reset_step(task_args_t *a)
{
    return step_action(a, "reset_for_retry", "reset_by", REASON_RESET, NULL, "reset");
}

static int task_resolve_step(task_args_t *a)
{
    return step_action(a, "resolve_manually", "resolved_by", REASON_RESOLVE, NULL, "resolved");
}

static int task_complete_step(task_args_t *a)
{
    json_t *completion = json_pack("{s:O}", "result", a->result_doc);
    if (completion == NULL)
        return tk_cli_fail("out of memory");
    if (a->metadata_doc != NULL)
        json_object_set(completion, "metadata", a->metadata_doc);
    return step_action(a, "complete_manually", "completed_by", REASON_COMPLETE, completion,
                       "completed");
}

/* --- the table of subcommands -------------------------------------------------------- */

/* Help lines of --reason and --by for a step action with that default reason. */
#define REASON_BY_HELP(default_reason)                                                             \
    "      --reason TEXT          why, recorded with the step's transition\n"                      \
    "                             (default \"" default_reason "\")\n"                              \
    "      --by NAME              who, recorded with the transition (default: $USER)\n"

static const sub_t subs[] = {
    {"create", "--namespace NS --name NAME", 0,
     BIT(OPT_NAMESPACE) | BIT(OPT_NAME) | BIT(OPT_VERSION) | BIT(OPT_CONTEXT) | BIT(OPT_PRIORITY) |
         BIT(OPT_INITIATOR) | BIT(OPT_SOURCE_SYSTEM) | BIT(OPT_REASON) | BIT(OPT_TAG) |
         BIT(OPT_CORRELATION_ID) | BIT(OPT_IDEMPOTENCY_KEY) | BIT(OPT_COPIES) | BIT(OPT_WAIT) |
         BIT(OPT_TIMEOUT_MS),
     "Create a task from the registered template NS/NAME/VERSION (POST /v1/tasks) and print\n"
     "its UUID and status; with --wait, wait for it to finish and print it.\n"
     "A second task with the same template and context is refused (\"already exists\")\n"
     "unless --idempotency-key tells them apart.\n"
     "With --count N, N copies of the request are created in one batch (POST\n"
     "/v1/tasks/batch): all of them or, if one is refused, none. Each copy gets its own\n"
     "idempotency key, KEY/0 to KEY/N-1 (KEY: --idempotency-key, else a new UUID), so\n"
     "copies of one context are distinct tasks and running the same command with the same\n"
     "--idempotency-key again is refused as a whole.\n"
     "\n"
     "Options:\n"
     "      --namespace NS         namespace of the template (required)\n"
     "      --name NAME            name of the template (required)\n"
     "      --version V            version of the template (default 1.0.0)\n"
     "      --context JSON         the task's context: a JSON object, @FILE to read it from\n"
     "                             a file, or - for standard input (default {})\n"
     "      --priority N           priority from -100 to 100 (default 0)\n"
     "      --initiator TEXT       who asks (default \"tasker-cli\")\n"
     "      --source-system TEXT   where the request comes from (default \"cli\")\n"
     "      --reason TEXT          why (default \"" REASON_CREATE "\")\n"
     "      --tag TAG              a tag for the task; repeat for more\n"
     "      --correlation-id UUID  correlation id (default: a new one)\n"
     "      --idempotency-key KEY  the task's identity instead of its context\n"
     "      --count N              create N copies in one batch (at most the server's\n"
     "                             server.max_batch_tasks, default 1000)\n"
     "      --wait                 wait until the task finishes (with --count: every task);\n"
     "                             exit 0 only if it (every one) completed\n"
     "      --timeout-ms N         with --wait: give up after N ms (default 60000)\n",
     task_create},
    {"get", "TASK_UUID", 1, BIT(OPT_WAIT) | BIT(OPT_TIMEOUT_MS),
     "Show a task (GET /v1/tasks/TASK_UUID): template, status, progress, times and a table\n"
     "of its steps with the error of each failed step.\n"
     "\n"
     "Options:\n"
     "      --wait                 wait until the task finishes; exit 0 only if it completed\n"
     "      --timeout-ms N         with --wait: give up after N ms (default 60000)\n",
     task_get},
    {"list", "", 0, BIT(OPT_NAMESPACE) | BIT(OPT_STATUS) | BIT(OPT_PAGE) | BIT(OPT_PER_PAGE),
     "List tasks, newest first, one page at a time (GET /v1/tasks).\n"
     "\n"
     "Options:\n"
     "      --namespace NS         only tasks of templates in namespace NS\n"
     "      --status S             only tasks in state S (pending, steps_in_process,\n"
     "                             waiting_for_retry, complete, error, cancelled, ...)\n"
     "      --page N               page to show (default 1)\n"
     "      --per-page N           tasks per page, 1 to 100 (default 25)\n",
     task_list},
    {"cancel", "TASK_UUID", 1, 0,
     "Cancel a task that has not finished (DELETE /v1/tasks/TASK_UUID): its unfinished steps\n"
     "are cancelled and no new ones start. A finished task cannot be cancelled (exit 1).\n"
     "\n"
     "Options:\n",
     task_cancel},
    {"steps", "TASK_UUID", 1, 0,
     "List the steps of a task with their UUIDs, states, attempts and errors\n"
     "(GET /v1/tasks/TASK_UUID/workflow_steps).\n"
     "\n"
     "Options:\n",
     task_steps},
    {"step", "TASK_UUID STEP_UUID", 2, 0,
     "Show one step of a task: state, attempts, handler, its result or its error\n"
     "(GET /v1/tasks/TASK_UUID/workflow_steps/STEP_UUID).\n"
     "\n"
     "Options:\n",
     task_step},
    {"reset-step", "TASK_UUID STEP_UUID", 2, BIT(OPT_REASON) | BIT(OPT_BY),
     "Retry a failed step (state error) from scratch: it goes back to pending with its\n"
     "attempts reset, and the task runs again (PATCH action reset_for_retry).\n"
     "\n"
     "Options:\n" REASON_BY_HELP(REASON_RESET),
     task_reset_step},
    {"resolve-step", "TASK_UUID STEP_UUID", 2, BIT(OPT_REASON) | BIT(OPT_BY),
     "Mark a step resolved by hand: it counts as done for the steps that depend on it, and\n"
     "the task goes on (PATCH action resolve_manually).\n"
     "\n"
     "Options:\n" REASON_BY_HELP(REASON_RESOLVE),
     task_resolve_step},
    {"complete-step", "TASK_UUID STEP_UUID --result JSON", 2,
     BIT(OPT_RESULT) | BIT(OPT_METADATA) | BIT(OPT_REASON) | BIT(OPT_BY),
     "Complete a step with a result given by hand, which the steps that depend on it see as\n"
     "its result (PATCH action complete_manually).\n"
     "\n"
     "Options:\n"
     "      --result JSON          the step's result (required): JSON, @FILE or -\n"
     "      --metadata JSON        metadata stored with the result: a JSON object, @FILE\n"
     "                             or -\n" REASON_BY_HELP(REASON_COMPLETE),
     task_complete_step},
};

/* Parse the options and positional arguments of `s`. Returns PROCEED, or the exit status
 * (help printed: 0; usage error printed: 2). */
static int parse_args(const sub_t *s, int argc, char **argv, task_args_t *a)
{
    struct option options[OPT_COUNT + 2];
    int n = 0;
    for (int i = 0; i < OPT_COUNT; i++)
        if ((s->options | COMMON) & BIT(i))
            options[n++] = all_options[i];
    options[n++] = (struct option){"help", no_argument, NULL, 'h'};
    options[n] = (struct option){NULL, 0, NULL, 0};

    const char *cmd = a->cmd;
    int opt;
    int64_t v;
    optind = 0;
    while ((opt = getopt_long(argc, argv, "c:h", options, NULL)) != -1) {
        switch (opt == 'c' ? OPT_VAL(OPT_CONFIG) : opt) {
        case 'h':
            sub_usage(s, stdout);
            return TK_CLI_EXIT_OK;
        case OPT_VAL(OPT_URL):
            a->url = optarg;
            break;
        case OPT_VAL(OPT_CONFIG):
            a->config = optarg;
            break;
        case OPT_VAL(OPT_JSON):
            a->json = true;
            break;
        case OPT_VAL(OPT_NAMESPACE):
            a->namespace_name = optarg;
            break;
        case OPT_VAL(OPT_NAME):
            a->name = optarg;
            break;
        case OPT_VAL(OPT_VERSION):
            a->version = optarg;
            break;
        case OPT_VAL(OPT_CONTEXT):
            a->context = optarg;
            break;
        case OPT_VAL(OPT_PRIORITY):
            if (tk_parse_i64(optarg, -100, 100, &v) != TK_OK)
                return tk_cli_usage_error(cmd, "--priority must be an integer from -100 to 100");
            a->has_priority = true;
            a->priority = (int)v;
            break;
        case OPT_VAL(OPT_INITIATOR):
            a->initiator = optarg;
            break;
        case OPT_VAL(OPT_SOURCE_SYSTEM):
            a->source_system = optarg;
            break;
        case OPT_VAL(OPT_REASON):
            a->reason = optarg;
            break;
        case OPT_VAL(OPT_TAG):
            if (a->ntags == MAX_TAGS)
                return tk_cli_usage_error(cmd, "too many --tag options (at most %d)", MAX_TAGS);
            a->tags[a->ntags++] = optarg;
            break;
        case OPT_VAL(OPT_CORRELATION_ID): {
            tk_uuid_t u;
            if (tk_uuid_parse(optarg, &u) != TK_OK)
                return tk_cli_usage_error(cmd, "--correlation-id \"%s\" is not a UUID", optarg);
            a->correlation_id = optarg;
            break;
        }
        case OPT_VAL(OPT_IDEMPOTENCY_KEY):
            a->idempotency_key = optarg;
            break;
        case OPT_VAL(OPT_WAIT):
            a->wait = true;
            break;
        case OPT_VAL(OPT_TIMEOUT_MS):
            if (tk_parse_i64(optarg, 1, 86400000, &v) != TK_OK)
                return tk_cli_usage_error(cmd,
                                          "--timeout-ms must be an integer from 1 to 86400000");
            a->timeout_ms = (int)v;
            break;
        case OPT_VAL(OPT_STATUS):
            if (!tk_task_status_known(optarg))
                return tk_cli_usage_error(cmd, "unknown task status \"%s\" (one of: %s)", optarg,
                                          tk_task_status_names());
            a->status = optarg;
            break;
        case OPT_VAL(OPT_PAGE):
            if (tk_parse_i64(optarg, 1, 1000000, &v) != TK_OK)
                return tk_cli_usage_error(cmd, "--page must be an integer from 1 to 1000000");
            a->page = (int)v;
            break;
        case OPT_VAL(OPT_PER_PAGE):
            if (tk_parse_i64(optarg, 1, 100, &v) != TK_OK)
                return tk_cli_usage_error(cmd, "--per-page must be an integer from 1 to 100");
            a->per_page = (int)v;
            break;
        case OPT_VAL(OPT_BY):
            a->by = optarg;
            break;
        case OPT_VAL(OPT_RESULT):
            a->result = optarg;
            break;
        case OPT_VAL(OPT_METADATA):
            a->metadata = optarg;
            break;
        case OPT_VAL(OPT_COPIES):
            if (tk_parse_i64(optarg, 1, MAX_COPIES, &v) != TK_OK)
                return tk_cli_usage_error(cmd, "--count must be an integer from 1 to %d",
                                          MAX_COPIES);
            a->copies = (int)v;
            break;
        default:
            return tk_cli_usage_error(cmd, "invalid option");
        }
    }
    int npos = argc - optind;
    static const char *const pos_names[] = {"TASK_UUID", "STEP_UUID"};
    if (npos < s->nargs)
        return tk_cli_usage_error(cmd, "missing %s", pos_names[npos]);
    if (npos > s->nargs)
        return tk_cli_usage_error(cmd, "unexpected argument \"%s\"", argv[optind + s->nargs]);
    for (int i = 0; i < s->nargs; i++) {
        tk_uuid_t u;
        a->pos[i] = argv[optind + i];
        if (tk_uuid_parse(a->pos[i], &u) != TK_OK)
            return tk_cli_usage_error(cmd, "%s \"%s\" is not a UUID", pos_names[i], a->pos[i]);
    }
    if (s->run == task_create) {
        if (a->namespace_name == NULL || a->namespace_name[0] == '\0')
            return tk_cli_usage_error(cmd, "missing --namespace NS");
        if (a->name == NULL || a->name[0] == '\0')
            return tk_cli_usage_error(cmd, "missing --name NAME");
        if (a->version != NULL && a->version[0] == '\0')
            return tk_cli_usage_error(cmd, "--version must not be empty");
    }
    if (s->run == task_complete_step && a->result == NULL)
        return tk_cli_usage_error(cmd, "missing --result JSON");
    if (a->timeout_ms > 0 && !a->wait)
        return tk_cli_usage_error(cmd, "--timeout-ms needs --wait");
    if (a->url != NULL && a->url[0] == '\0')
        return tk_cli_usage_error(cmd, "--url must not be empty");
    return PROCEED;
}

/* Parse the JSON options (before any request or configuration). Returns PROCEED or
 * TK_CLI_EXIT_USAGE (printed). */
static int parse_json_args(task_args_t *a)
{
    if (a->context != NULL) {
        if ((a->context_doc = json_arg(a, "context", a->context)) == NULL)
            return TK_CLI_EXIT_USAGE;
        if (!json_is_object(a->context_doc))
            return tk_cli_usage_error(a->cmd, "--context must be a JSON object");
    }
    if (a->result != NULL && (a->result_doc = json_arg(a, "result", a->result)) == NULL)
        return TK_CLI_EXIT_USAGE;
    if (a->metadata != NULL) {
        if ((a->metadata_doc = json_arg(a, "metadata", a->metadata)) == NULL)
            return TK_CLI_EXIT_USAGE;
        if (!json_is_object(a->metadata_doc))
            return tk_cli_usage_error(a->cmd, "--metadata must be a JSON object");
    }
    return PROCEED;
}

/* The server URL: --url, else client.url of the configuration (which honours TASKER_URL). */
static int resolve_url(task_args_t *a)
{
    if (a->url != NULL) {
        a->base = strdup(a->url);
    } else {
        tk_config_t cfg = {0};
        int rc = tk_cli_config_load(&cfg, a->config, NULL);
        if (rc == TK_OK)
            a->base = strdup(cfg.client.url != NULL ? cfg.client.url : "");
        tk_config_free(&cfg);
        if (rc != TK_OK)
            return TK_CLI_EXIT_FAIL;
    }
    if (a->base == NULL)
        return tk_cli_fail("out of memory");
    if (a->base[0] == '\0')
        return tk_cli_fail("no tasker server given: set client.url, TASKER_URL or pass --url");
    return TK_CLI_EXIT_OK;
}

int tk_cmd_task(int argc, char **argv)
{
    if (argc < 2)
        return tk_cli_usage_error("task", "missing subcommand (create, get, list, cancel, steps, "
                                          "step, reset-step, resolve-step, complete-step)");
    const char *name = argv[1];
    if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0) {
        usage(stdout);
        return TK_CLI_EXIT_OK;
    }
    const sub_t *s = NULL;
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]) && s == NULL; i++)
        if (strcmp(subs[i].name, name) == 0)
            s = &subs[i];
    if (s == NULL && name[0] == '-')
        return tk_cli_usage_error("task", "invalid option \"%s\" (options go after the subcommand)",
                                  name);
    if (s == NULL)
        return tk_cli_usage_error("task", "unknown subcommand \"%s\"", name);

    task_args_t a = {0};
    snprintf(a.cmd, sizeof(a.cmd), "task %s", s->name);
    int rc = parse_args(s, argc - 1, argv + 1, &a);
    if (rc == PROCEED)
        rc = parse_json_args(&a);
    if (rc == PROCEED) {
        rc = resolve_url(&a);
        if (rc == TK_CLI_EXIT_OK)
            rc = s->run(&a);
    }
    json_decref(a.context_doc);
    json_decref(a.result_doc);
    json_decref(a.metadata_doc);
    free(a.base);
    return rc;
}
