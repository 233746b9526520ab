/*
 * task_format.c - human-readable tasks, task lists and steps for `tasker task` (see
 * task_format.h). Tables size their columns to the widest value; missing members print "-".
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "cli/task_format.h"

static const char *const task_states[] = {
    "pending",
    "initializing",
    "enqueuing_steps",
    "steps_in_process",
    "evaluating_results",
    "waiting_for_dependencies",
    "waiting_for_retry",
    "blocked_by_failures",
    "complete",
    "error",
    "cancelled",
    "resolved_manually",
};

bool tk_task_status_terminal(const char *status)
{
    return status != NULL &&
           (strcmp(status, "complete") == 0 || strcmp(status, "error") == 0 ||
            strcmp(status, "cancelled") == 0 || strcmp(status, "resolved_manually") == 0);
}

bool tk_task_status_known(const char *status)
{
    for (size_t i = 0; i < sizeof(task_states) / sizeof(task_states[0]); i++)
        if (strcmp(status, task_states[i]) == 0)
            return true;
    return false;
}

const char *tk_task_status_names(void)
{
    return "pending, initializing, enqueuing_steps, steps_in_process, evaluating_results, "
           "waiting_for_dependencies, waiting_for_retry, blocked_by_failures, complete, error, "
           "cancelled, resolved_manually";
}

/* Member `key` of `obj` as a string, or `fallback`. */
static const char *str(const json_t *obj, const char *key, const char *fallback)
{
    const char *v = json_string_value(json_object_get(obj, key));
    return v != NULL ? v : fallback;
}

static long long num(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? (long long)json_integer_value(v) : (long long)json_number_value(v);
}

/* Display width of `s`, at least `w`. */
static int widen(int w, const char *s)
{
    size_t n = strlen(s);
    return n > (size_t)w && n < 4096 ? (int)n : w;
}

void tk_task_format_time(const json_t *ts, char out[40])
{
    const char *s = json_string_value(ts);
    if (s == NULL) {
        snprintf(out, 40, "-");
        return;
    }
    if (strlen(s) < 19 || s[10] != 'T') {
        snprintf(out, 40, "%.39s", s);
        return;
    }
    const char *zone = s + 19;
    if (*zone == '.')
        for (zone++; isdigit((unsigned char)*zone); zone++)
            ;
    if (*zone == '\0')
        snprintf(out, 40, "%.10s %.8s", s, s + 11);
    else if (strcmp(zone, "Z") == 0 || strcmp(zone, "+00:00") == 0 || strcmp(zone, "+00") == 0)
        snprintf(out, 40, "%.10s %.8s UTC", s, s + 11);
    else
        snprintf(out, 40, "%.10s %.8s %.10s", s, s + 11, zone);
}

const char *tk_task_step_error(const json_t *step)
{
    static const char *const not_failed[] = {
        "pending",  "enqueued",          "in_progress", "enqueued_for_orchestration",
        "complete", "resolved_manually",
    };
    const char *state = str(step, "current_state", "");
    for (size_t i = 0; i < sizeof(not_failed) / sizeof(not_failed[0]); i++)
        if (strcmp(state, not_failed[i]) == 0)
            return NULL;
    const json_t *results = json_object_get(step, "results");
    if (json_is_true(json_object_get(results, "success")))
        return NULL;
    return json_string_value(json_object_get(json_object_get(results, "error"), "message"));
}

static void attempts_text(const json_t *step, char out[48])
{
    snprintf(out, 48, "%lld/%lld", num(step, "attempts"), num(step, "max_attempts"));
}

/* The steps of a task: NAME STATE ATTEMPTS [ERROR], or with the step UUID first. The ERROR
 * column is there only when a step failed. */
static void print_step_table(FILE *out, const json_t *steps, bool with_uuid, const char *indent)
{
    if (json_array_size(steps) == 0) {
        fprintf(out, "%sno steps\n", indent);
        return;
    }
    int wname = 4, wstate = 5;
    bool errors = false;
    size_t i;
    const json_t *s;
    json_array_foreach(steps, i, s)
    {
        wname = widen(wname, str(s, "name", "-"));
        wstate = widen(wstate, str(s, "current_state", "-"));
        errors = errors || tk_task_step_error(s) != NULL;
    }
    fputs(indent, out);
    if (with_uuid)
        fprintf(out, "%-36s  ", "STEP_UUID");
    fprintf(out, "%-*s  %-*s  %s\n", wname, with_uuid ? "NAME" : "STEP", wstate, "STATE",
            errors ? "ATTEMPTS  ERROR" : "ATTEMPTS");
    json_array_foreach(steps, i, s)
    {
        char attempts[48];
        attempts_text(s, attempts);
        const char *error = tk_task_step_error(s);
        fputs(indent, out);
        if (with_uuid)
            fprintf(out, "%-36s  ", str(s, "step_uuid", str(s, "workflow_step_uuid", "-")));
        fprintf(out, "%-*s  %-*s  ", wname, str(s, "name", "-"), wstate,
                str(s, "current_state", "-"));
        if (error != NULL)
            fprintf(out, "%-8s  %s\n", attempts, error);
        else
            fprintf(out, "%s\n", attempts);
    }
}

void tk_task_print(FILE *out, const json_t *task, const json_t *steps)
{
    char created[40], completed[40];
    tk_task_format_time(json_object_get(task, "created_at"), created);
    tk_task_format_time(json_object_get(task, "completed_at"), completed);
    fprintf(out, "Task %s\n", str(task, "task_uuid", "-"));
    fprintf(out, "  template:   %s/%s %s\n", str(task, "namespace", "-"), str(task, "name", "-"),
            str(task, "version", "-"));
    fprintf(out, "  status:     %s (execution status: %s)\n", str(task, "status", "-"),
            str(task, "execution_status", "-"));
    fprintf(out, "  progress:   %lld/%lld steps done", num(task, "completed_steps"),
            num(task, "total_steps"));
    if (num(task, "in_progress_steps") > 0)
        fprintf(out, ", %lld in progress", num(task, "in_progress_steps"));
    if (num(task, "failed_steps") > 0)
        fprintf(out, ", %lld failed", num(task, "failed_steps"));
    fputc('\n', out);
    fprintf(out, "  created:    %s\n", created);
    if (!json_is_null(json_object_get(task, "completed_at")) &&
        json_object_get(task, "completed_at") != NULL)
        fprintf(out, "  completed:  %s\n", completed);
    fputc('\n', out);
    print_step_table(out, steps != NULL ? steps : json_object_get(task, "steps"), false, "  ");
}

void tk_task_print_list(FILE *out, const json_t *list)
{
    const json_t *tasks = json_object_get(list, "tasks");
    const json_t *pg = json_object_get(list, "pagination");
    long long total = num(pg, "total_count");
    if (json_array_size(tasks) == 0) {
        if (total > 0)
            fprintf(out, "no tasks on page %lld (%lld task%s, %lld page%s)\n", num(pg, "page"),
                    total, total == 1 ? "" : "s", num(pg, "total_pages"),
                    num(pg, "total_pages") == 1 ? "" : "s");
        else
            fprintf(out, "no tasks\n");
        return;
    }
    int wflow = 8, wver = 7, wstatus = 6;
    size_t i;
    const json_t *t;
    json_array_foreach(tasks, i, t)
    {
        size_t n = strlen(str(t, "namespace", "-")) + 1 + strlen(str(t, "name", "-"));
        if (n > (size_t)wflow && n < 4096)
            wflow = (int)n;
        wver = widen(wver, str(t, "version", "-"));
        wstatus = widen(wstatus, str(t, "status", "-"));
    }
    fprintf(out, "%-36s  %-*s  %-*s  %-*s  %-7s  %s\n", "TASK_UUID", wflow, "TEMPLATE", wver,
            "VERSION", wstatus, "STATUS", "STEPS", "CREATED");
    json_array_foreach(tasks, i, t)
    {
        char created[40], steps[48];
        tk_task_format_time(json_object_get(t, "created_at"), created);
        snprintf(steps, sizeof(steps), "%lld/%lld", num(t, "completed_steps"),
                 num(t, "total_steps"));
        const char *ns = str(t, "namespace", "-"), *name = str(t, "name", "-");
        int pad = wflow - (int)(strlen(ns) + 1 + strlen(name));
        fprintf(out, "%-36s  %s/%s%*s  %-*s  %-*s  %-7s  %s\n", str(t, "task_uuid", "-"), ns, name,
                pad > 0 ? pad : 0, "", wver, str(t, "version", "-"), wstatus, str(t, "status", "-"),
                steps, created);
    }
    fprintf(out, "page %lld of %lld (%lld task%s)", num(pg, "page"), num(pg, "total_pages"), total,
            total == 1 ? "" : "s");
    if (json_is_true(json_object_get(pg, "has_next")))
        fprintf(out, "; next: --page %lld", num(pg, "page") + 1);
    fputc('\n', out);
}

void tk_task_print_steps(FILE *out, const json_t *steps)
{
    print_step_table(out, steps, true, "");
}

void tk_task_print_step(FILE *out, const json_t *step)
{
    char attempts[48], t[40];
    attempts_text(step, attempts);
    fprintf(out, "Step %s (%s)\n", str(step, "step_uuid", "-"), str(step, "name", "-"));
    fprintf(out, "  task:          %s\n", str(step, "task_uuid", "-"));
    fprintf(out, "  state:         %s\n", str(step, "current_state", "-"));
    fprintf(out, "  attempts:      %s%s\n", attempts,
            json_is_false(json_object_get(step, "retryable")) ? " (not retryable)" : "");
    if (json_object_get(step, "handler") != NULL)
        fprintf(out, "  handler:       %s\n", str(step, "handler", "-"));
    fprintf(out, "  parents done:  %lld/%lld\n", num(step, "completed_parents"),
            num(step, "total_parents"));
    const json_t *results = json_object_get(step, "results");
    const char *error = tk_task_step_error(step);
    if (error != NULL) {
        const char *type =
            json_string_value(json_object_get(json_object_get(results, "error"), "error_type"));
        if (type != NULL)
            fprintf(out, "  error:         %s: %s\n", type, error);
        else
            fprintf(out, "  error:         %s\n", error);
    }
    const json_t *result = json_object_get(results, "result");
    if (json_is_true(json_object_get(results, "success")) && result != NULL) {
        char *text = json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY);
        if (text != NULL)
            fprintf(out, "  result:        %s\n", text);
        free(text);
    }
    static const struct {
        const char *label, *key;
    } times[] = {
        {"created:", "created_at"},
        {"last attempt:", "last_attempted_at"},
        {"next retry:", "next_retry_at"},
        {"completed:", "completed_at"},
    };
    for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
        const json_t *v = json_object_get(step, times[i].key);
        if (v == NULL || json_is_null(v))
            continue;
        if (strcmp(times[i].key, "next_retry_at") == 0 &&
            strcmp(str(step, "current_state", ""), "waiting_for_retry") != 0)
            continue; /* only a step waiting for its retry has one */
        tk_task_format_time(v, t);
        fprintf(out, "  %-14s %s\n", times[i].label, t);
    }
}
