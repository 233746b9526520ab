/*
 * demo.c - run each template of the dev worker once and tabulate the results (see demo.h).
 *
 * Every task is created with POST /v1/tasks?wait_ms=..., so the table's milliseconds are the
 * real time from the request to the task's end, as the server saw it finish.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/demo.h"
#include "cli/http_client.h"
#include "common/clock.h"
#include "common/json_util.h"
#include "common/uuid.h"

#define WAIT_MS 30000

/* The demo settings of a template: metadata.demo {context, expect}. */
static void demo_settings(const char *base_url, const char *ns, const char *name,
                          const char *version, json_t **context, const char **expect,
                          json_t **holder)
{
    char path[512];
    snprintf(path, sizeof(path), "/v1/templates/%s/%s/%s", ns, name, version);
    tk_http_reply_t reply;
    tk_error_t err;
    *holder = NULL;
    *context = NULL;
    *expect = "complete";
    if (tk_http_request(base_url, "GET", path, NULL, 5000, &reply, &err) == TK_OK &&
        reply.status == 200) {
        *holder = tk_json_parse(reply.body, reply.len);
        json_t *demo = json_object_get(
            json_object_get(json_object_get(*holder, "configuration"), "metadata"), "demo");
        if (json_is_object(json_object_get(demo, "context")))
            *context = json_deep_copy(json_object_get(demo, "context"));
        if (json_is_string(json_object_get(demo, "expect")))
            *expect = json_string_value(json_object_get(demo, "expect"));
    }
    tk_http_reply_free(&reply);
    if (*context == NULL)
        *context = json_pack("{s:i}", "even_number", 6);
}

int tk_demo_run(const char *base_url, const tk_template_set_t *served, FILE *out)
{
    if (served == NULL || tk_template_set_count(served) == 0) {
        fprintf(out, "demo: the worker has no templates to run (pass --templates DIR)\n");
        return -1;
    }
    tk_http_reply_t reply;
    tk_error_t err;
    if (tk_http_request(base_url, "GET", "/v1/templates", NULL, 5000, &reply, &err) != TK_OK) {
        fprintf(out, "demo: %s\n", err.message);
        return -1;
    }
    json_t *list = tk_json_parse(reply.body, reply.len);
    tk_http_reply_free(&reply);
    json_t *templates = json_object_get(list, "templates");
    if (json_array_size(templates) == 0) {
        fprintf(out, "demo: no templates are registered (pass --templates DIR)\n");
        json_decref(list);
        return -1;
    }

    fprintf(out, "\nRunning each workflow once (POST /v1/tasks?wait_ms=%d):\n\n", WAIT_MS);
    fprintf(out, "  %-50s %-10s %-9s %7s  %s\n", "workflow", "state", "steps", "ms", "");
    int failures = 0, skipped = 0;
    char skipped_names[512] = "";
    char example_uuid[64] = "";
    char example_ns[64] = "", example_name[256] = "", example_version[64] = "";
    size_t i;
    json_t *t;
    json_array_foreach(templates, i, t)
    {
        const char *ns = json_string_value(json_object_get(t, "namespace"));
        const char *name = json_string_value(json_object_get(t, "name"));
        const char *version = json_string_value(json_object_get(t, "version"));
        if (tk_template_set_find(served, ns, name, version) == NULL) {
            /* registered earlier by someone else: no worker of this process runs it */
            size_t used = strlen(skipped_names);
            snprintf(skipped_names + used, sizeof(skipped_names) - used, "%s%s/%s %s",
                     skipped ? ", " : "", ns, name, version);
            skipped++;
            continue;
        }
        json_t *context, *holder;
        const char *expect;
        demo_settings(base_url, ns, name, version, &context, &expect, &holder);
        /* a fresh field keeps repeated demos from colliding on the task identity */
        tk_uuid_t run;
        char run_text[TK_UUID_STR_LEN];
        tk_uuid_v7(&run);
        tk_uuid_format(&run, run_text);
        json_object_set_new(context, "_demo_run", json_string(run_text));
        json_t *request =
            json_pack("{s:s, s:s, s:s, s:o, s:s, s:s, s:s}", "namespace", ns, "name", name,
                      "version", version, "context", context, "initiator", "tasker-dev",
                      "source_system", "demo", "reason", "tasker dev --demo");
        char *body = json_dumps(request, JSON_COMPACT);
        json_decref(request);
        char path[64];
        snprintf(path, sizeof(path), "/v1/tasks?wait_ms=%d", WAIT_MS);
        int64_t start = tk_clock_us();
        int rc = tk_http_request(base_url, "POST", path, body, WAIT_MS + 5000, &reply, &err);
        double ms = (double)(tk_clock_us() - start) / 1000.0;
        free(body);
        char label[320];
        snprintf(label, sizeof(label), "%s/%s", ns, name);
        if (rc != TK_OK || reply.status != 201) {
            fprintf(out, "  %-50s %-10s %-9s %7s  FAILED: %s\n", label, "-", "-", "-",
                    rc != TK_OK ? err.message : tk_http_error_message(reply.body));
            failures++;
        } else {
            json_t *task = tk_json_parse(reply.body, reply.len);
            const char *state = json_string_value(json_object_get(task, "status"));
            char steps[32];
            snprintf(steps, sizeof(steps), "%lld/%lld",
                     (long long)json_integer_value(json_object_get(task, "completed_steps")),
                     (long long)json_integer_value(json_object_get(task, "total_steps")));
            bool as_expected = state != NULL && strcmp(state, expect) == 0;
            failures += !as_expected;
            fprintf(out, "  %-50s %-10s %-9s %7.1f  %s\n", label, state ? state : "?", steps, ms,
                    as_expected ? (strcmp(expect, "complete") == 0 ? "" : "(expected)")
                                : "UNEXPECTED");
            if (example_uuid[0] == '\0') {
                snprintf(example_uuid, sizeof(example_uuid), "%s",
                         json_string_value(json_object_get(task, "task_uuid")));
                snprintf(example_ns, sizeof(example_ns), "%s", ns);
                snprintf(example_name, sizeof(example_name), "%s", name);
                snprintf(example_version, sizeof(example_version), "%s", version);
            }
            json_decref(task);
        }
        tk_http_reply_free(&reply);
        json_decref(holder);
    }
    json_decref(list);

    fprintf(out, "\n%s\n",
            failures == 0 ? "All workflows ended as expected."
                          : "Some workflows did not end as expected.");
    if (skipped > 0)
        fprintf(out,
                "Not run: %d template(s) registered in this database that this worker does not "
                "serve (%s).\n",
                skipped, skipped_names);
    if (example_uuid[0] != '\0')
        fprintf(
            out,
            "\nTry it by hand:\n"
            "  curl -s -X POST '%s/v1/tasks?wait_ms=5000' -H 'Content-Type: application/json' \\\n"
            "       -d "
            "'{\"namespace\":\"%s\",\"name\":\"%s\",\"version\":\"%s\",\"context\":{\"even_"
            "number\":8}}'\n"
            "  curl -s %s/v1/tasks/%s\n"
            "  curl -s %s/v1/tasks/%s/workflow_steps\n"
            "  curl -s %s/v1/templates\n",
            base_url, example_ns, example_name, example_version, base_url, example_uuid, base_url,
            example_uuid, base_url);
    return failures;
}
