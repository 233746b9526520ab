/*
 * template.c - load a task template: YAML tree -> checks -> normalized JSON -> step model
 * (see template.h for the format, the rules and the JSON shape).
 *
 * Checking and normalizing are one pass over the YAML tree that builds the JSON document
 * while it reports problems; the JSON is kept only if there were none. The step model is
 * then read back from the JSON, so the C view and the stored document cannot disagree.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error_int.h"
#include "template/template.h"
#include "template/yaml_tree.h"

struct tk_template_s {
    char *origin;
    json_t *json;
    const char *name;
    const char *namespace_name;
    const char *version;
    const char *description;
    const char *identity_strategy;
    tk_template_step_t *steps;
    size_t step_count;
    const char **deps; /* every step's dependency names, back to back */
};

/* State of one check: where problems go. */
typedef struct check_s {
    const char *origin;
    tk_template_problem_fn *report;
    void *arg;
    tk_error_t *err; /* receives the first problem */
    size_t nproblems;
    bool oom;
} check_t;

/* What a step looks like while the template is checked. */
typedef struct step_info_s {
    const tk_yaml_node_t *node;
    const char *name;           /* NULL when missing, invalid or a duplicate */
    char label[1100];           /* `step "name": ` or `step 3: ` */
    const tk_yaml_node_t *deps; /* the list of parent names, or NULL */
    json_t *dep_array;          /* the step's "dependencies" (borrowed) */
    size_t *parents;            /* indexes of the resolved parents */
    size_t nparents;
} step_info_t;

enum { FIELD_ABSENT, FIELD_OK, FIELD_BAD };

static void problem(check_t *c, const tk_yaml_node_t *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Report one problem: "<origin>: <message>[ (line N)]". */
static void problem(check_t *c, const tk_yaml_node_t *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *body = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (body == NULL) {
        c->oom = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(body, (size_t)n + 1, fmt, ap);
    va_end(ap);
    char where[32] = "";
    if (at != NULL)
        snprintf(where, sizeof(where), " (line %zu)", at->line);
    size_t len = strlen(c->origin) + 2 + (size_t)n + strlen(where) + 1;
    char *msg = malloc(len);
    if (msg == NULL) {
        free(body);
        c->oom = true;
        return;
    }
    snprintf(msg, len, "%s: %s%s", c->origin, body, where);
    free(body);
    if (c->nproblems++ == 0)
        tk_error_set(c->err, TK_EINVAL, "%s", msg);
    if (c->report != NULL)
        c->report(msg, c->arg);
    free(msg);
}

/* Set obj[key] = v (stolen); out of memory is remembered. */
static void put(check_t *c, json_t *obj, const char *key, json_t *v)
{
    if (v == NULL || json_object_set_new(obj, key, v) != 0)
        c->oom = true;
}

static void append(check_t *c, json_t *arr, json_t *v)
{
    if (v == NULL || json_array_append_new(arr, v) != 0)
        c->oom = true;
}

/* Number of characters (UTF-8 code points) in s. */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p & 0xC0) != 0x80)
            n++;
    return n;
}

/* At most 60 characters of s, cut at a character boundary, "..." appended when cut. */
static const char *clip(char buf[256], const char *s)
{
    size_t i = 0, chars = 0;
    while (s[i] != '\0' && chars < 60) {
        i++;
        while ((((unsigned char)s[i]) & 0xC0) == 0x80)
            i++;
        chars++;
    }
    snprintf(buf, 256, "%.*s%s", (int)i, s, s[i] != '\0' ? "..." : "");
    return buf;
}

/* How a value reads in "got ..." messages: "text" for strings, the text for other scalars,
 * "a list" / "a mapping" otherwise. */
static const char *got(char buf[256], const tk_yaml_node_t *n)
{
    char tmp[256];
    if (n == NULL)
        return "nothing";
    if (n->kind != TK_YAML_SCALAR)
        return tk_yaml_describe(n);
    if (n->type == TK_YAML_NULL)
        return "null";
    if (n->type == TK_YAML_STRING) {
        snprintf(buf, 256, "\"%s\"", clip(tmp, n->text));
        return buf;
    }
    return clip(buf, n->text);
}

/* --- typed fields --- */

/* A string field of mapping `map`. Any non-null scalar counts, as its text (`version: 1.0`
 * is "1.0"). Absent: FIELD_ABSENT (a problem if `required`). Present but null or empty when
 * required, or longer than `max` characters: FIELD_BAD. */
static int string_field(check_t *c, const tk_yaml_node_t *map, const char *key, const char *label,
                        const char *where, bool required, size_t max, const char **out,
                        const tk_yaml_node_t **node)
{
    const tk_yaml_node_t *v = tk_yaml_get(map, key);
    *out = NULL;
    if (node != NULL)
        *node = v;
    if (v == NULL || (!required && tk_yaml_is_null(v))) {
        if (required)
            problem(c, map, "%smissing required key \"%s\"", where, label);
        return FIELD_ABSENT;
    }
    if (v->kind != TK_YAML_SCALAR) {
        problem(c, v, "%s%s must be a string, not %s", where, label, tk_yaml_describe(v));
        return FIELD_BAD;
    }
    if (required && (tk_yaml_is_null(v) || v->len == 0)) {
        problem(c, v, "%s%s must not be empty", where, label);
        return FIELD_BAD;
    }
    if (utf8_chars(v->text) > max) {
        problem(c, v, "%s%s is longer than %zu characters", where, label, max);
        return FIELD_BAD;
    }
    *out = v->text;
    return FIELD_OK;
}

/* An integer field in [min, max]; `expect` describes the valid values ("an integer >= 0"). */
static int int_field(check_t *c, const tk_yaml_node_t *map, const char *key, const char *where,
                     const char *label, int64_t min, int64_t max, const char *expect, int64_t *out)
{
    char buf[256];
    const tk_yaml_node_t *v = tk_yaml_get(map, key);
    if (tk_yaml_is_null(v))
        return FIELD_ABSENT;
    if (v->kind != TK_YAML_SCALAR || v->type != TK_YAML_INT || v->integer < min) {
        problem(c, v, "%s%s must be %s, got %s", where, label, expect, got(buf, v));
        return FIELD_BAD;
    }
    if (v->integer > max) {
        problem(c, v, "%s%s must be at most %lld, got %s", where, label, (long long)max,
                got(buf, v));
        return FIELD_BAD;
    }
    *out = v->integer;
    return FIELD_OK;
}

static int bool_field(check_t *c, const tk_yaml_node_t *map, const char *key, const char *where,
                      const char *label, bool *out)
{
    char buf[256];
    const tk_yaml_node_t *v = tk_yaml_get(map, key);
    if (tk_yaml_is_null(v))
        return FIELD_ABSENT;
    if (v->kind != TK_YAML_SCALAR || v->type != TK_YAML_BOOL) {
        problem(c, v, "%s%s must be true or false, got %s", where, label, got(buf, v));
        return FIELD_BAD;
    }
    *out = v->boolean;
    return FIELD_OK;
}

/* A string field that must be one of the NULL-terminated `choices`; `list` spells them. */
static int enum_field(check_t *c, const tk_yaml_node_t *map, const char *key, const char *where,
                      const char *label, const char *const *choices, const char *list,
                      const char **out)
{
    char buf[256];
    const tk_yaml_node_t *v = tk_yaml_get(map, key);
    *out = NULL;
    if (tk_yaml_is_null(v))
        return FIELD_ABSENT;
    if (v->kind == TK_YAML_SCALAR) {
        for (size_t i = 0; choices[i] != NULL; i++) {
            if (strcmp(v->text, choices[i]) == 0) {
                *out = choices[i];
                return FIELD_OK;
            }
        }
    }
    problem(c, v, "%s%s must be one of %s, got %s", where, label, list, got(buf, v));
    return FIELD_BAD;
}

/* A mapping field converted to JSON (NULL when absent or null, or not a mapping: then a
 * problem). */
static json_t *mapping_field(check_t *c, const tk_yaml_node_t *map, const char *key,
                             const char *where, const char *label)
{
    const tk_yaml_node_t *v = tk_yaml_get(map, key);
    if (tk_yaml_is_null(v))
        return NULL;
    if (v->kind != TK_YAML_MAPPING) {
        problem(c, v, "%s%s must be a mapping, not %s", where, label, tk_yaml_describe(v));
        return NULL;
    }
    json_t *j = tk_yaml_to_json(v);
    if (j == NULL)
        c->oom = true;
    return j;
}

static json_t *text_or_null(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

/* --- template level --- */

static bool namespace_ok(const char *s)
{
    if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
        return false;
    size_t n = 0;
    for (; *s; s++, n++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return false;
    return n <= TK_TEMPLATE_NAMESPACE_MAX;
}

static void check_lifecycle(check_t *c, const tk_yaml_node_t *root)
{
    static const char *const minute_keys[] = {
        "max_waiting_for_dependencies_minutes",
        "max_waiting_for_retry_minutes",
        "max_steps_in_process_minutes",
    };
    static const char *const actions[] = {"dlq", "error", "none", NULL};
    const tk_yaml_node_t *lc = tk_yaml_get(root, "lifecycle");
    char label[80];
    int64_t i64;
    bool b;
    const char *s;
    if (lc == NULL || lc->kind != TK_YAML_MAPPING)
        return; /* absent, or reported by mapping_field */
    int_field(c, lc, "max_duration_minutes", "", "lifecycle.max_duration_minutes", 1, 43200,
              "an integer from 1 to 43200", &i64);
    for (size_t i = 0; i < sizeof(minute_keys) / sizeof(minute_keys[0]); i++) {
        snprintf(label, sizeof(label), "lifecycle.%s", minute_keys[i]);
        int_field(c, lc, minute_keys[i], "", label, 1, 10080, "an integer from 1 to 10080", &i64);
    }
    enum_field(c, lc, "staleness_action", "", "lifecycle.staleness_action", actions,
               "dlq, error or none", &s);
    bool_field(c, lc, "auto_fail_on_timeout", "", "lifecycle.auto_fail_on_timeout", &b);
    bool_field(c, lc, "auto_dlq_on_timeout", "", "lifecycle.auto_dlq_on_timeout", &b);
}

/* --- steps --- */

/* handler: {callable, initialization, method, resolver} */
static json_t *check_handler(check_t *c, const tk_yaml_node_t *step, const char *where)
{
    const tk_yaml_node_t *h = tk_yaml_get(step, "handler");
    json_t *out = json_object();
    const char *s;
    if (out == NULL) {
        c->oom = true;
        return NULL;
    }
    if (h == NULL) {
        problem(c, step, "%smissing required key \"handler\" (with handler.callable)", where);
        return out;
    }
    if (h->kind != TK_YAML_MAPPING) {
        problem(c, h, "%shandler must be a mapping with a callable, not %s", where,
                tk_yaml_describe(h));
        return out;
    }
    if (string_field(c, h, "callable", "handler.callable", where, true, TK_TEMPLATE_CALLABLE_MAX,
                     &s, NULL) == FIELD_OK)
        put(c, out, "callable", json_string(s));
    json_t *init = mapping_field(c, h, "initialization", where, "handler.initialization");
    put(c, out, "initialization", init != NULL ? init : json_object());
    if (string_field(c, h, "method", "handler.method", where, false, TK_TEMPLATE_NAME_MAX, &s,
                     NULL) == FIELD_OK)
        put(c, out, "method", json_string(s));
    if (string_field(c, h, "resolver", "handler.resolver", where, false, TK_TEMPLATE_NAME_MAX, &s,
                     NULL) == FIELD_OK)
        put(c, out, "resolver", json_string(s));
    return out;
}

/* retry: {retryable, max_attempts, backoff, backoff_base_ms, max_backoff_ms} with defaults */
static json_t *check_retry(check_t *c, const tk_yaml_node_t *step, const char *where)
{
    static const char *const policies[] = {"none", "linear", "exponential", "fibonacci", NULL};
    const tk_yaml_node_t *r = tk_yaml_get(step, "retry");
    bool retryable = TK_TEMPLATE_DEFAULT_RETRYABLE;
    int64_t max_attempts = TK_TEMPLATE_DEFAULT_MAX_ATTEMPTS, base = 0, cap = 0;
    const char *backoff = NULL;
    int has_base = FIELD_ABSENT, has_cap = FIELD_ABSENT;
    if (r != NULL && !tk_yaml_is_null(r) && r->kind != TK_YAML_MAPPING) {
        problem(c, r, "%sretry must be a mapping, not %s", where, tk_yaml_describe(r));
        r = NULL;
    }
    if (r != NULL) {
        bool_field(c, r, "retryable", where, "retry.retryable", &retryable);
        int_field(c, r, "max_attempts", where, "retry.max_attempts", 0, INT32_MAX,
                  "an integer >= 0", &max_attempts);
        enum_field(c, r, "backoff", where, "retry.backoff", policies,
                   "none, linear, exponential or fibonacci", &backoff);
        has_base = int_field(c, r, "backoff_base_ms", where, "retry.backoff_base_ms", 0, INT32_MAX,
                             "an integer >= 0", &base);
        has_cap = int_field(c, r, "max_backoff_ms", where, "retry.max_backoff_ms", 0, INT32_MAX,
                            "an integer >= 0", &cap);
    }
    json_t *out = json_object();
    if (out == NULL) {
        c->oom = true;
        return NULL;
    }
    put(c, out, "retryable", json_boolean(retryable));
    put(c, out, "max_attempts", json_integer(max_attempts));
    if (backoff != NULL)
        put(c, out, "backoff", json_string(backoff));
    if (has_base == FIELD_OK)
        put(c, out, "backoff_base_ms", json_integer(base));
    if (has_cap == FIELD_OK)
        put(c, out, "max_backoff_ms", json_integer(cap));
    return out;
}

static void check_step_type(check_t *c, const tk_yaml_node_t *step, const char *where)
{
    char buf[256];
    const char *key = tk_yaml_get(step, "type") != NULL ? "type" : "step_type";
    const tk_yaml_node_t *v = tk_yaml_get(step, key);
    if (tk_yaml_is_null(v))
        return;
    if (v->kind == TK_YAML_SCALAR && strcmp(v->text, "standard") == 0)
        return;
    if (v->kind == TK_YAML_SCALAR &&
        (strcmp(v->text, "decision") == 0 || strcmp(v->text, "deferred_convergence") == 0 ||
         strcmp(v->text, "batchable") == 0 || strcmp(v->text, "batch_worker") == 0)) {
        problem(c, v, "%sstep type \"%s\" is not supported yet (only \"standard\" steps are)",
                where, v->text);
        return;
    }
    problem(c, v,
            "%sunknown step type %s (expected standard, decision, deferred_convergence, "
            "batchable or batch_worker)",
            where, got(buf, v));
}

/* Check step i (0-based) and return its JSON (dependencies filled in later). `names` maps
 * the names of the steps before it to their index. */
static json_t *check_step(check_t *c, const tk_yaml_node_t *node, size_t i, step_info_t *info,
                          json_t *names)
{
    const char *s;
    info->node = node;
    snprintf(info->label, sizeof(info->label), "step %zu: ", i + 1);
    json_t *out = json_object();
    if (out == NULL) {
        c->oom = true;
        return NULL;
    }
    if (node->kind != TK_YAML_MAPPING) {
        problem(c, node, "%sa step must be a mapping, not %s", info->label, tk_yaml_describe(node));
        return out;
    }
    const tk_yaml_node_t *name_node;
    if (string_field(c, node, "name", "name", info->label, true, TK_TEMPLATE_NAME_MAX, &s,
                     &name_node) == FIELD_OK) {
        snprintf(info->label, sizeof(info->label), "step \"%s\": ", s);
        if (json_object_get(names, s) != NULL) {
            problem(c, name_node, "duplicate step name \"%s\"", s);
        } else {
            info->name = s;
            put(c, names, s, json_integer((json_int_t)i));
        }
        put(c, out, "name", json_string(s));
    }
    const char *where = info->label;
    if (string_field(c, node, "description", "description", where, false, SIZE_MAX, &s, NULL) ==
        FIELD_OK)
        put(c, out, "description", json_string(s));
    else
        put(c, out, "description", json_null());
    put(c, out, "handler", check_handler(c, node, where));

    const tk_yaml_node_t *deps = tk_yaml_get(node, "dependencies");
    const tk_yaml_node_t *alias = tk_yaml_get(node, "depends_on");
    if (deps != NULL && alias != NULL) {
        problem(c, alias, "%sgive either dependencies or depends_on, not both", where);
    } else if (deps == NULL) {
        deps = alias;
    }
    if (!tk_yaml_is_null(deps) && deps->kind != TK_YAML_SEQUENCE) {
        problem(c, deps, "%sdependencies must be a list of step names, not %s", where,
                tk_yaml_describe(deps));
        deps = NULL;
    }
    info->deps = tk_yaml_is_null(deps) ? NULL : deps;
    info->dep_array = json_array();
    put(c, out, "dependencies", info->dep_array);

    put(c, out, "retry", check_retry(c, node, where));
    int64_t timeout;
    if (int_field(c, node, "timeout_seconds", where, "timeout_seconds", 1, INT32_MAX,
                  "a positive integer", &timeout) == FIELD_OK)
        put(c, out, "timeout_seconds", json_integer(timeout));
    check_step_type(c, node, where);
    return out;
}

/* Resolve the dependency names of every step into parent indexes. */
static void resolve_dependencies(check_t *c, step_info_t *steps, size_t n, json_t *names)
{
    char buf[256];
    for (size_t i = 0; i < n; i++) {
        step_info_t *st = &steps[i];
        if (st->deps == NULL)
            continue;
        st->parents = calloc(st->deps->count ? st->deps->count : 1, sizeof(*st->parents));
        if (st->parents == NULL) {
            c->oom = true;
            return;
        }
        for (size_t d = 0; d < st->deps->count; d++) {
            const tk_yaml_node_t *dn = st->deps->items[d];
            if (dn->kind != TK_YAML_SCALAR || tk_yaml_is_null(dn)) {
                problem(c, dn, "%sdependencies must be step names, not %s", st->label,
                        tk_yaml_describe(dn));
                continue;
            }
            json_t *idx = json_object_get(names, dn->text);
            if (idx == NULL) {
                problem(c, dn, "%sunknown dependency \"%s\"", st->label, clip(buf, dn->text));
                continue;
            }
            size_t p = (size_t)json_integer_value(idx);
            if (p == i) {
                problem(c, dn, "%sdepends on itself", st->label);
                continue;
            }
            bool dup = false;
            for (size_t k = 0; k < st->nparents; k++)
                dup = dup || st->parents[k] == p;
            if (dup) {
                problem(c, dn, "%sdependency \"%s\" is listed twice", st->label, dn->text);
                continue;
            }
            st->parents[st->nparents++] = p;
            append(c, st->dep_array, json_string(dn->text));
        }
    }
}

/* Report the cycle stack[from..top] (each step depends on the next, the last on the first),
 * starting with its earliest-declared step. */
static void report_cycle(check_t *c, step_info_t *steps, const size_t *stack, size_t from,
                         size_t top)
{
    size_t len = top - from + 1, first = 0;
    for (size_t k = 1; k < len; k++)
        if (stack[from + k] < stack[from + first])
            first = k;
    size_t size = 1;
    for (size_t k = 0; k <= len; k++)
        size += strlen(steps[stack[from + (first + k) % len]].name) + 4;
    char *path = malloc(size);
    if (path == NULL) {
        c->oom = true;
        return;
    }
    size_t off = 0;
    for (size_t k = 0; k <= len; k++)
        off += (size_t)snprintf(path + off, size - off, "%s%s", k ? " -> " : "",
                                steps[stack[from + (first + k) % len]].name);
    problem(c, NULL, "steps form a cycle: %s (each step depends on the next)", path);
    free(path);
}

/* Find the cycles of the dependency graph: an iterative depth-first search from every step
 * in file order (so cycles that no root reaches are found too); each back edge is one
 * cycle. At most 5 are reported. */
static void check_cycles(check_t *c, step_info_t *steps, size_t n)
{
    unsigned char *color = calloc(n ? n : 1, 1); /* 0 new, 1 on the path, 2 done */
    size_t *stack = calloc(n ? n : 1, sizeof(*stack));
    size_t *edge = calloc(n ? n : 1, sizeof(*edge));
    size_t *pos = calloc(n ? n : 1, sizeof(*pos));
    int cycles = 0;
    if (color == NULL || stack == NULL || edge == NULL || pos == NULL) {
        c->oom = true;
        goto out;
    }
    for (size_t s = 0; s < n && cycles < 5; s++) {
        if (color[s] != 0 || steps[s].name == NULL)
            continue;
        size_t top = 0;
        stack[0] = s;
        edge[0] = 0;
        pos[s] = 0;
        color[s] = 1;
        for (;;) {
            size_t v = stack[top];
            if (edge[top] < steps[v].nparents) {
                size_t w = steps[v].parents[edge[top]++];
                if (color[w] == 0) {
                    color[w] = 1;
                    stack[++top] = w;
                    edge[top] = 0;
                    pos[w] = top;
                } else if (color[w] == 1 && cycles++ < 5) {
                    report_cycle(c, steps, stack, pos[w], top);
                }
                continue;
            }
            color[v] = 2;
            if (top == 0)
                break;
            top--;
        }
    }
out:
    free(color);
    free(stack);
    free(edge);
    free(pos);
}

static json_t *check_steps(check_t *c, const tk_yaml_node_t *root)
{
    const tk_yaml_node_t *sn = tk_yaml_get(root, "steps");
    json_t *out = json_array();
    if (out == NULL) {
        c->oom = true;
        return NULL;
    }
    if (tk_yaml_is_null(sn)) {
        problem(c, NULL, "missing required key \"steps\"");
        return out;
    }
    if (sn->kind != TK_YAML_SEQUENCE) {
        problem(c, sn, "steps must be a list of steps, not %s", tk_yaml_describe(sn));
        return out;
    }
    if (sn->count == 0) {
        problem(c, sn, "steps must list at least one step");
        return out;
    }
    step_info_t *steps = calloc(sn->count, sizeof(*steps));
    json_t *names = json_object();
    if (steps == NULL || names == NULL) {
        c->oom = true;
        free(steps);
        json_decref(names);
        return out;
    }
    for (size_t i = 0; i < sn->count; i++)
        append(c, out, check_step(c, sn->items[i], i, &steps[i], names));
    if (!c->oom)
        resolve_dependencies(c, steps, sn->count, names);
    if (!c->oom)
        check_cycles(c, steps, sn->count);
    for (size_t i = 0; i < sn->count; i++)
        free(steps[i].parents);
    free(steps);
    json_decref(names);
    return out;
}

/* Check the whole document; returns its normalized JSON (possibly partial when there were
 * problems, NULL when out of memory). */
static json_t *check_template(check_t *c, const tk_yaml_node_t *root)
{
    static const char *const strategies[] = {"strict", "caller_provided", "always_unique", NULL};
    char buf[256];
    const char *s;
    const tk_yaml_node_t *node;
    if (tk_yaml_is_null(root)) {
        problem(c, NULL,
                "the file is empty (a template is a mapping with name, namespace_name, "
                "version and steps)");
        return NULL;
    }
    if (root->kind != TK_YAML_MAPPING) {
        problem(c, root,
                "a template must be a YAML mapping (name, namespace_name, version, steps...), "
                "not %s",
                tk_yaml_describe(root));
        return NULL;
    }
    json_t *doc = json_object();
    if (doc == NULL) {
        c->oom = true;
        return NULL;
    }
    if (string_field(c, root, "name", "name", "", true, TK_TEMPLATE_NAME_MAX, &s, NULL) == FIELD_OK)
        put(c, doc, "name", json_string(s));
    if (string_field(c, root, "namespace_name", "namespace_name", "", true, SIZE_MAX, &s, &node) ==
        FIELD_OK) {
        if (namespace_ok(s))
            put(c, doc, "namespace_name", json_string(s));
        else
            problem(c, node,
                    "namespace_name \"%s\" must match [A-Za-z_][A-Za-z0-9_]* and be at most %d "
                    "characters",
                    clip(buf, s), TK_TEMPLATE_NAMESPACE_MAX);
    }
    if (string_field(c, root, "version", "version", "", true, TK_TEMPLATE_VERSION_MAX, &s, NULL) ==
        FIELD_OK)
        put(c, doc, "version", json_string(s));
    string_field(c, root, "description", "description", "", false, TK_TEMPLATE_DESCRIPTION_MAX, &s,
                 NULL);
    put(c, doc, "description", text_or_null(s));
    if (enum_field(c, root, "identity_strategy", "", "identity_strategy", strategies,
                   "strict, caller_provided or always_unique", &s) == FIELD_OK)
        put(c, doc, "identity_strategy", json_string(s));
    static const char *const maps[] = {"metadata", "input_schema", "lifecycle"};
    for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
        json_t *m = mapping_field(c, root, maps[i], "", maps[i]);
        if (m != NULL)
            put(c, doc, maps[i], m);
    }
    check_lifecycle(c, root);
    put(c, doc, "steps", check_steps(c, root));
    return doc;
}

/* --- the model, read back from the JSON --- */

static const char *str_at(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

static int build_model(tk_template_t *t)
{
    const json_t *doc = t->json;
    t->name = str_at(doc, "name");
    t->namespace_name = str_at(doc, "namespace_name");
    t->version = str_at(doc, "version");
    t->description = str_at(doc, "description");
    t->identity_strategy = str_at(doc, "identity_strategy");
    const json_t *steps = json_object_get(doc, "steps");
    size_t n = json_array_size(steps), ndeps = 0;
    for (size_t i = 0; i < n; i++)
        ndeps += json_array_size(json_object_get(json_array_get(steps, i), "dependencies"));
    t->steps = calloc(n ? n : 1, sizeof(*t->steps));
    t->deps = calloc(ndeps ? ndeps : 1, sizeof(*t->deps));
    if (t->steps == NULL || t->deps == NULL)
        return TK_ENOMEM;
    t->step_count = n;
    size_t d = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *js = json_array_get(steps, i);
        const json_t *h = json_object_get(js, "handler");
        const json_t *r = json_object_get(js, "retry");
        const json_t *deps = json_object_get(js, "dependencies");
        tk_template_step_t *s = &t->steps[i];
        s->name = str_at(js, "name");
        s->description = str_at(js, "description");
        s->callable = str_at(h, "callable");
        s->method = str_at(h, "method");
        s->resolver = str_at(h, "resolver");
        s->initialization = json_object_get(h, "initialization");
        s->dependencies = &t->deps[d];
        s->dependency_count = json_array_size(deps);
        for (size_t k = 0; k < s->dependency_count; k++)
            t->deps[d++] = json_string_value(json_array_get(deps, k));
        s->retryable = json_is_true(json_object_get(r, "retryable"));
        s->max_attempts = (int)json_integer_value(json_object_get(r, "max_attempts"));
        s->timeout_seconds = (int)json_integer_value(json_object_get(js, "timeout_seconds"));
    }
    return TK_OK;
}

void tk_template_free(tk_template_t *t)
{
    if (t == NULL)
        return;
    free(t->origin);
    json_decref(t->json);
    free(t->steps);
    free(t->deps);
    free(t);
}

int tk_template_load_string(const char *yaml, size_t len, const char *origin,
                            tk_template_problem_fn *report, void *arg, tk_template_t **out,
                            tk_error_t *err)
{
    tk_error_t local;
    tk_error_t *e = err != NULL ? err : &local;
    *out = NULL;
    if (origin == NULL)
        origin = "<string>";
    tk_yaml_doc_t *ydoc;
    int rc = tk_yaml_doc_parse(yaml, len, origin, &ydoc, e);
    if (rc != TK_OK) {
        if (report != NULL)
            report(e->message, arg);
        return rc;
    }
    check_t c = {.origin = origin, .report = report, .arg = arg, .err = e};
    json_t *doc = check_template(&c, tk_yaml_doc_root(ydoc));
    tk_yaml_doc_free(ydoc);
    if (c.oom) {
        json_decref(doc);
        return tk_error_set(e, TK_ENOMEM, "%s: could not load the template: out of memory", origin);
    }
    if (c.nproblems > 0) {
        json_decref(doc);
        if (c.nproblems > 1) {
            char detail[64];
            snprintf(detail, sizeof(detail), "and %zu more problem%s", c.nproblems - 1,
                     c.nproblems == 2 ? "" : "s");
            tk_error_set_detail(e, detail);
        }
        return TK_EINVAL;
    }
    tk_template_t *t = calloc(1, sizeof(*t));
    if (t == NULL || (t->origin = strdup(origin)) == NULL) {
        free(t);
        json_decref(doc);
        return tk_error_set(e, TK_ENOMEM, "%s: could not load the template: out of memory", origin);
    }
    t->json = doc;
    if (build_model(t) != TK_OK) {
        tk_template_free(t);
        return tk_error_set(e, TK_ENOMEM, "%s: could not load the template: out of memory", origin);
    }
    *out = t;
    return TK_OK;
}

/* Read a whole file of at most TK_TEMPLATE_FILE_MAX bytes into a malloc'ed buffer. */
static int read_file(const char *path, char **buf, size_t *len, tk_error_t *err)
{
    *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return tk_error_set(err, errno == ENOENT ? TK_ENOTFOUND : TK_EIO,
                            "%s: could not open the template file: %s", path, strerror(errno));
    size_t cap = 8192, n = 0;
    char *b = malloc(cap);
    int rc = TK_OK;
    while (b != NULL) {
        if (n == cap) {
            if (cap > TK_TEMPLATE_FILE_MAX) {
                rc = tk_error_set(err, TK_EINVAL, "%s: the file is larger than %d bytes", path,
                                  TK_TEMPLATE_FILE_MAX);
                break;
            }
            char *nb = realloc(b, cap * 2);
            if (nb == NULL) {
                free(b);
                b = NULL;
                break;
            }
            b = nb;
            cap *= 2;
        }
        size_t got_n = fread(b + n, 1, cap - n, f);
        n += got_n;
        if (got_n == 0) {
            if (ferror(f))
                rc = tk_error_set(err, TK_EIO, "%s: could not read the template file: %s", path,
                                  strerror(errno));
            break;
        }
    }
    fclose(f);
    if (b == NULL)
        return tk_error_set(err, TK_ENOMEM, "%s: could not read the template file: out of memory",
                            path);
    if (rc != TK_OK || n > TK_TEMPLATE_FILE_MAX) {
        free(b);
        return rc != TK_OK ? rc
                           : tk_error_set(err, TK_EINVAL, "%s: the file is larger than %d bytes",
                                          path, TK_TEMPLATE_FILE_MAX);
    }
    *buf = b;
    *len = n;
    return TK_OK;
}

int tk_template_load_file_ex(const char *path, tk_template_problem_fn *report, void *arg,
                             tk_template_t **out, tk_error_t *err)
{
    tk_error_t local;
    tk_error_t *e = err != NULL ? err : &local;
    char *buf;
    size_t len = 0;
    *out = NULL;
    int rc = read_file(path, &buf, &len, e);
    if (rc != TK_OK) {
        if (report != NULL)
            report(e->message, arg);
        return rc;
    }
    rc = tk_template_load_string(buf, len, path, report, arg, out, e);
    free(buf);
    return rc;
}

int tk_template_load_file(const char *path, tk_template_t **out, tk_error_t *err)
{
    return tk_template_load_file_ex(path, NULL, NULL, out, err);
}

const char *tk_template_name(const tk_template_t *t)
{
    return t->name;
}

const char *tk_template_namespace(const tk_template_t *t)
{
    return t->namespace_name;
}

const char *tk_template_version(const tk_template_t *t)
{
    return t->version;
}

const char *tk_template_description(const tk_template_t *t)
{
    return t->description;
}

const char *tk_template_identity_strategy(const tk_template_t *t)
{
    return t->identity_strategy;
}

const char *tk_template_origin(const tk_template_t *t)
{
    return t->origin;
}

size_t tk_template_step_count(const tk_template_t *t)
{
    return t->step_count;
}

const tk_template_step_t *tk_template_step(const tk_template_t *t, size_t i)
{
    return i < t->step_count ? &t->steps[i] : NULL;
}

const tk_template_step_t *tk_template_step_find(const tk_template_t *t, const char *name)
{
    for (size_t i = 0; i < t->step_count; i++)
        if (strcmp(t->steps[i].name, name) == 0)
            return &t->steps[i];
    return NULL;
}

const json_t *tk_template_json(const tk_template_t *t)
{
    return t->json;
}

int tk_template_register(tk_conn_t *c, const tk_template_t *t, tk_error_t *err)
{
    static const tk_stmt_t stmt = {
        .name = "template_register",
        .sql = "SELECT tasker.register_template($1::jsonb)",
        .nparams = 1,
        .idempotent = true,
    };
    char *text = json_dumps(t->json, JSON_COMPACT);
    if (text == NULL)
        return tk_error_set(err, TK_ENOMEM, "could not register template %s/%s %s: out of memory",
                            t->namespace_name, t->name, t->version);
    const char *params[1] = {text};
    tk_error_t local;
    int rc = tk_conn_run(c, &stmt, params, &local);
    free(text);
    if (rc != TK_OK && err != NULL) {
        tk_error_set(err, rc, "could not register template %s/%s %s: %s", t->namespace_name,
                     t->name, t->version, local.message);
        tk_error_set_sqlstate(err, local.sqlstate);
        tk_error_set_detail(err, local.detail);
    }
    return rc;
}
