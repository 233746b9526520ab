/*
 * test_template.c - task templates (src/template): the example workflows, the normalized
 * JSON, every validation rule with its message, YAML typing, aliases and limits, template
 * directories and sets. No database.
 *
 * Fixtures: tests/unit/templates/{valid,invalid,dir,dup} and examples/templates, found from
 * this file's path (__FILE__ is absolute in CMake builds), so the test runs from any CWD.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "template/template.h"

/* --- helpers --- */

/* Absolute path of `rel`, relative to the repository root (static buffer, one at a time). */
static const char *repo_path(const char *rel)
{
    static char buf[4096];
    const char *file = __FILE__;
    const char *cut = strstr(file, "tests/unit/test_template.c");
    int root = cut != NULL ? (int)(cut - file) : 0;
    snprintf(buf, sizeof(buf), "%.*s%s", root, file, rel);
    return buf;
}

static tk_template_t *load_ok(const char *rel)
{
    tk_template_t *t = NULL;
    tk_error_t err;
    if (tk_template_load_file(repo_path(rel), &t, &err) != TK_OK)
        fail_msg("%s: %s", rel, err.message);
    return t;
}

static tk_template_t *load_str_ok(const char *yaml)
{
    tk_template_t *t = NULL;
    tk_error_t err;
    if (tk_template_load_string(yaml, strlen(yaml), "mem.yaml", NULL, NULL, &t, &err) != TK_OK)
        fail_msg("%s\n---\n%s", err.message, yaml);
    return t;
}

/* Load `yaml`, expect failure with `code` and a message containing `needle`. */
static void expect_str_error(const char *yaml, int code, const char *needle)
{
    tk_template_t *t = (tk_template_t *)1;
    tk_error_t err;
    int rc = tk_template_load_string(yaml, strlen(yaml), "mem.yaml", NULL, NULL, &t, &err);
    if (rc != code || strstr(err.message, needle) == NULL)
        fail_msg("expected %s containing '%s', got %s: '%s'\n---\n%s", tk_err_name(code), needle,
                 tk_err_name(rc), rc ? err.message : "(ok)", yaml);
    assert_null(t);
    assert_int_equal(err.code, code);
}

static void assert_deps(const tk_template_step_t *s, size_t n, ...)
{
    assert_non_null(s);
    assert_int_equal(s->dependency_count, n);
    va_list ap;
    va_start(ap, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(s->dependencies[i], va_arg(ap, const char *));
    va_end(ap);
}

static const tk_template_step_t *step(const tk_template_t *t, const char *name)
{
    const tk_template_step_t *s = tk_template_step_find(t, name);
    if (s == NULL)
        fail_msg("no step %s in %s", name, tk_template_name(t));
    return s;
}

/* The step's JSON object in the normalized document. */
static const json_t *step_json(const tk_template_t *t, size_t i)
{
    return json_array_get(json_object_get(tk_template_json(t), "steps"), i);
}

#define HDR    "name: t\nnamespace_name: ns\nversion: 1.0.0\n"
#define STEP_A "  - name: a\n    handler: {callable: builtin.noop}\n"

/* --- the example workflows --- */

static void test_example_linear(void **state)
{
    (void)state;
    tk_template_t *t = load_ok("examples/templates/linear.yaml");
    assert_string_equal(tk_template_namespace(t), "linear_workflow");
    assert_string_equal(tk_template_name(t), "mathematical_sequence");
    assert_string_equal(tk_template_version(t), "1.0.0");
    assert_non_null(tk_template_description(t));
    assert_null(tk_template_identity_strategy(t));
    assert_int_equal(tk_template_step_count(t), 4);
    const char *names[] = {"linear_step_1", "linear_step_2", "linear_step_3", "linear_step_4"};
    for (size_t i = 0; i < 4; i++) {
        const tk_template_step_t *s = tk_template_step(t, i);
        assert_string_equal(s->name, names[i]);
        assert_string_equal(s->callable, "builtin.square");
        assert_true(s->retryable);
        assert_int_equal(s->max_attempts, 3);
        assert_int_equal(s->timeout_seconds, 0);
        assert_null(s->method);
        assert_true(json_is_object(s->initialization));
        assert_int_equal(json_object_size(s->initialization), 0);
        if (i == 0)
            assert_deps(s, 0);
        else
            assert_deps(s, 1, names[i - 1]);
    }
    assert_null(tk_template_step(t, 4));
    tk_template_free(t);
}

static void test_example_shapes(void **state)
{
    (void)state;
    tk_template_t *t = load_ok("examples/templates/diamond.yaml");
    assert_string_equal(tk_template_namespace(t), "diamond_workflow");
    assert_string_equal(tk_template_name(t), "diamond_pattern");
    assert_int_equal(tk_template_step_count(t), 4);
    assert_deps(step(t, "diamond_start"), 0);
    assert_deps(step(t, "diamond_branch_b"), 1, "diamond_start");
    assert_deps(step(t, "diamond_branch_c"), 1, "diamond_start");
    assert_deps(step(t, "diamond_end"), 2, "diamond_branch_b", "diamond_branch_c");
    tk_template_free(t);

    t = load_ok("examples/templates/complex_dag.yaml");
    assert_string_equal(tk_template_namespace(t), "complex_dag_workflow");
    assert_string_equal(tk_template_name(t), "complex_dag");
    assert_int_equal(tk_template_step_count(t), 7);
    assert_deps(step(t, "dag_init"), 0);
    assert_deps(step(t, "dag_process_left"), 1, "dag_init");
    assert_deps(step(t, "dag_process_right"), 1, "dag_init");
    assert_deps(step(t, "dag_validate"), 2, "dag_process_left", "dag_process_right");
    assert_deps(step(t, "dag_transform"), 1, "dag_process_left");
    assert_deps(step(t, "dag_analyze"), 1, "dag_process_right");
    assert_deps(step(t, "dag_finalize"), 3, "dag_validate", "dag_transform", "dag_analyze");
    tk_template_free(t);

    t = load_ok("examples/templates/tree.yaml");
    assert_string_equal(tk_template_namespace(t), "tree_workflow");
    assert_string_equal(tk_template_name(t), "hierarchical_tree");
    assert_int_equal(tk_template_step_count(t), 8);
    assert_deps(step(t, "tree_root"), 0);
    assert_deps(step(t, "tree_branch_left"), 1, "tree_root");
    assert_deps(step(t, "tree_branch_right"), 1, "tree_root");
    assert_deps(step(t, "tree_leaf_d"), 1, "tree_branch_left");
    assert_deps(step(t, "tree_leaf_e"), 1, "tree_branch_left");
    assert_deps(step(t, "tree_leaf_f"), 1, "tree_branch_right");
    assert_deps(step(t, "tree_leaf_g"), 1, "tree_branch_right");
    assert_deps(step(t, "tree_final_convergence"), 4, "tree_leaf_d", "tree_leaf_e", "tree_leaf_f",
                "tree_leaf_g");
    tk_template_free(t);

    t = load_ok("examples/templates/order_fulfillment.yaml");
    assert_string_equal(tk_template_namespace(t), "order_fulfillment");
    assert_string_equal(tk_template_name(t), "business_workflow");
    assert_int_equal(tk_template_step_count(t), 4);
    assert_deps(step(t, "validate_order"), 0);
    assert_deps(step(t, "reserve_inventory"), 1, "validate_order");
    assert_deps(step(t, "process_payment"), 2, "validate_order", "reserve_inventory");
    assert_deps(step(t, "ship_order"), 3, "validate_order", "reserve_inventory", "process_payment");
    assert_int_equal(step(t, "process_payment")->max_attempts, 2);
    assert_int_equal(step(t, "ship_order")->max_attempts, 3);
    for (size_t i = 0; i < 4; i++)
        assert_string_equal(tk_template_step(t, i)->callable, "builtin.echo");
    tk_template_free(t);

    t = load_ok("examples/templates/multi_root.yaml");
    assert_string_equal(tk_template_namespace(t), "data_pipeline");
    assert_string_equal(tk_template_name(t), "analytics_pipeline");
    assert_int_equal(tk_template_step_count(t), 8);
    const char *src[] = {"sales", "inventory", "customers"};
    char ex[64], tr[64];
    for (size_t i = 0; i < 3; i++) {
        snprintf(ex, sizeof(ex), "extract_%s", src[i]);
        snprintf(tr, sizeof(tr), "transform_%s", src[i]);
        assert_deps(step(t, ex), 0);
        assert_deps(step(t, tr), 1, ex);
    }
    assert_deps(step(t, "aggregate_metrics"), 3, "transform_sales", "transform_inventory",
                "transform_customers");
    assert_deps(step(t, "generate_insights"), 1, "aggregate_metrics");
    assert_int_equal(step(t, "generate_insights")->max_attempts, 3); /* default */
    assert_true(step(t, "generate_insights")->retryable);
    tk_template_free(t);
}

static void test_example_retry(void **state)
{
    (void)state;
    tk_template_t *t = load_ok("examples/templates/retry_success.yaml");
    assert_string_equal(tk_template_namespace(t), "retry_workflow");
    assert_string_equal(tk_template_name(t), "retry_mechanics_test");
    assert_int_equal(tk_template_step_count(t), 1);
    const tk_template_step_t *s = tk_template_step(t, 0);
    assert_string_equal(s->name, "fail_twice_then_succeed");
    assert_string_equal(s->callable, "builtin.fail");
    assert_int_equal(s->max_attempts, 5);
    const json_t *ft = json_object_get(s->initialization, "fail_times");
    assert_true(json_is_integer(ft));
    assert_int_equal(json_integer_value(ft), 2);
    tk_template_free(t);

    t = load_ok("examples/templates/retry_exhaustion.yaml");
    assert_string_equal(tk_template_name(t), "retry_exhaustion_test");
    s = tk_template_step(t, 0);
    assert_string_equal(s->name, "always_fail");
    assert_int_equal(s->max_attempts, 3);
    assert_true(s->retryable);
    ft = json_object_get(s->initialization, "fail_times");
    assert_true(json_is_integer(ft)); /* an integer, not the string "-1" */
    assert_int_equal(json_integer_value(ft), -1);
    /* The model and the JSON agree. */
    assert_ptr_equal(s->initialization, json_object_get(json_object_get(step_json(t, 0), "handler"),
                                                        "initialization"));
    tk_template_free(t);
}

static void test_example_dir(void **state)
{
    (void)state;
    tk_template_set_t *set;
    tk_error_t err;
    if (tk_template_load_dir(repo_path("examples/templates"), &set, &err) != TK_OK)
        fail_msg("%s", err.message);
    assert_int_equal(tk_template_set_count(set), 8);
    size_t n;
    const char *const *ns = tk_template_set_namespaces(set, &n);
    const char *want[] = {"complex_dag_workflow", "data_pipeline",     "diamond_workflow",
                          "linear_workflow",      "order_fulfillment", "retry_workflow",
                          "tree_workflow"};
    assert_int_equal(n, 7);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(ns[i], want[i]);
    assert_non_null(tk_template_set_find(set, "retry_workflow", "retry_exhaustion_test", "1.0.0"));
    assert_null(tk_template_set_find(set, "retry_workflow", "retry_exhaustion_test", "9.9.9"));
    tk_template_set_free(set);
}

/* --- the normalized JSON --- */

static void test_json_minimal(void **state)
{
    (void)state;
    tk_template_t *t = load_ok("tests/unit/templates/valid/minimal.yaml");
    json_error_t jerr;
    json_t *want = json_loads("{\"name\": \"minimal\", \"namespace_name\": \"tests\","
                              " \"version\": \"0.1.0\", \"description\": null,"
                              " \"steps\": [{\"name\": \"only\", \"description\": null,"
                              "   \"handler\": {\"callable\": \"builtin.noop\","
                              "                 \"initialization\": {}},"
                              "   \"dependencies\": [],"
                              "   \"retry\": {\"retryable\": true, \"max_attempts\": 3}}]}",
                              0, &jerr);
    assert_non_null(want);
    if (!json_equal(want, tk_template_json(t))) {
        char *got = json_dumps(tk_template_json(t), JSON_INDENT(2));
        fail_msg("normalized JSON differs:\n%s", got);
    }
    json_decref(want);
    /* Key order as documented. */
    char *text = json_dumps(tk_template_json(t), JSON_COMPACT);
    assert_non_null(strstr(text, "{\"name\":\"minimal\",\"namespace_name\":\"tests\","
                                 "\"version\":\"0.1.0\",\"description\":null,\"steps\":["));
    free(text);
    tk_template_free(t);
}

static void test_json_full(void **state)
{
    (void)state;
    tk_template_t *t = load_ok("tests/unit/templates/valid/full.yaml");
    const json_t *doc = tk_template_json(t);
    assert_string_equal(tk_template_version(t), "2.0");
    assert_string_equal(tk_template_namespace(t), "Full_Tests_2");
    assert_string_equal(tk_template_identity_strategy(t), "always_unique");
    assert_string_equal(json_string_value(json_object_get(doc, "identity_strategy")),
                        "always_unique");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(doc, "metadata"), "created_at")),
        "2026-01-01T00:00:00Z");
    assert_int_equal(
        json_array_size(json_object_get(json_object_get(doc, "input_schema"), "required")), 1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "lifecycle"),
                                                        "max_duration_minutes")),
                     60);
    /* Ignored keys are not stored. */
    assert_null(json_object_get(doc, "environments"));
    assert_null(json_object_get(doc, "defaults"));
    assert_null(json_object_get(step_json(t, 0), "publishes_events"));
    assert_null(json_object_get(step_json(t, 0), "type"));

    const tk_template_step_t *s = tk_template_step(t, 0);
    assert_string_equal(s->callable, "Full::First");
    assert_string_equal(s->method, "process");
    assert_string_equal(s->resolver, "explicit_mapping");
    assert_string_equal(s->description, "The root");
    assert_int_equal(s->timeout_seconds, 30);
    assert_true(s->retryable); /* defaults, with backoff settings given */
    assert_int_equal(s->max_attempts, 3);
    const json_t *retry = json_object_get(step_json(t, 0), "retry");
    assert_string_equal(json_string_value(json_object_get(retry, "backoff")), "exponential");
    assert_int_equal(json_integer_value(json_object_get(retry, "backoff_base_ms")), 500);
    assert_int_equal(json_integer_value(json_object_get(retry, "max_backoff_ms")), 10000);
    assert_int_equal(json_integer_value(json_object_get(step_json(t, 0), "timeout_seconds")), 30);

    /* YAML scalars become JSON types (YAML 1.2 core schema). */
    const json_t *init = s->initialization;
    assert_true(json_is_integer(json_object_get(init, "fail_times")));
    assert_int_equal(json_integer_value(json_object_get(init, "fail_times")), -1);
    assert_string_equal(json_string_value(json_object_get(init, "quoted_yes")), "yes");
    assert_string_equal(json_string_value(json_object_get(init, "plain_yes")), "yes");
    assert_true(json_is_real(json_object_get(init, "ratio")));
    assert_true(json_real_value(json_object_get(init, "ratio")) == 0.25);
    assert_true(json_is_true(json_object_get(init, "enabled")));
    assert_true(json_is_null(json_object_get(init, "nothing")));
    assert_int_equal(json_integer_value(json_object_get(init, "big")), 12345678901234LL);
    assert_int_equal(json_integer_value(json_object_get(init, "hex")), 31);
    assert_string_equal(json_string_value(json_object_get(init, "version_like")), "1.10.3");
    assert_string_equal(json_string_value(json_object_get(init, "quoted_number")), "42");
    const json_t *list = json_object_get(init, "list");
    assert_int_equal(json_array_size(list), 4);
    assert_true(json_is_integer(json_array_get(list, 0)));
    assert_true(json_is_string(json_array_get(list, 1)));
    assert_true(json_is_real(json_array_get(list, 2)));
    assert_true(json_is_false(json_array_get(list, 3)));
    assert_string_equal(
        json_string_value(json_array_get(
            json_object_get(json_object_get(json_object_get(init, "nested"), "deep"), "deeper"),
            0)),
        "x");

    /* dependencies from either key; retry from an alias and from a merge key. */
    s = tk_template_step(t, 1);
    assert_deps(s, 1, "first");
    assert_false(s->retryable);
    assert_int_equal(s->max_attempts, 1);
    assert_null(s->description);
    assert_true(json_is_null(json_object_get(step_json(t, 1), "description")));
    assert_null(json_object_get(step_json(t, 1), "timeout_seconds"));
    s = tk_template_step(t, 2);
    assert_deps(s, 2, "first", "second");
    assert_false(s->retryable);           /* from the merged defaults */
    assert_int_equal(s->max_attempts, 0); /* own key wins over the merge */
    const json_t *deps = json_object_get(step_json(t, 2), "dependencies");
    assert_string_equal(json_string_value(json_array_get(deps, 0)), "first");
    assert_string_equal(json_string_value(json_array_get(deps, 1)), "second");
    tk_template_free(t);
}

/* --- invalid files --- */

typedef struct bad_file_s {
    const char *file;
    int code;
    const char *message; /* must follow "<file>: " in the message */
} bad_file_t;

static void test_invalid_files(void **state)
{
    (void)state;
    static const bad_file_t cases[] = {
        {"unknown_dependency.yaml", TK_EINVAL,
         "step \"charge\": unknown dependency \"validate_ordr\" (line 8)"},
        {"duplicate_step.yaml", TK_EINVAL, "duplicate step name \"a\" (line 9)"},
        {"self_dependency.yaml", TK_EINVAL, "step \"a\": depends on itself"},
        {"cycle2.yaml", TK_EINVAL, "steps form a cycle: a -> b -> a"},
        {"cycle3.yaml", TK_EINVAL, "steps form a cycle: a -> b -> c -> a"},
        {"cycle_unreachable.yaml", TK_EINVAL, "steps form a cycle: x -> y -> x"},
        {"missing_name.yaml", TK_EINVAL, "missing required key \"name\""},
        {"missing_namespace.yaml", TK_EINVAL, "missing required key \"namespace_name\""},
        {"missing_version.yaml", TK_EINVAL, "missing required key \"version\""},
        {"missing_steps.yaml", TK_EINVAL, "missing required key \"steps\""},
        {"missing_callable.yaml", TK_EINVAL,
         "step \"a\": missing required key \"handler.callable\""},
        {"namespace_dash.yaml", TK_EINVAL,
         "namespace_name \"has-dash\" must match [A-Za-z_][A-Za-z0-9_]* and be at most 29 "
         "characters"},
        {"namespace_too_long.yaml", TK_EINVAL,
         "namespace_name \"abcdefghijklmnopqrstuvwxyz_123\" must match"},
        {"negative_max_attempts.yaml", TK_EINVAL,
         "step \"a\": retry.max_attempts must be an integer >= 0, got -1"},
        {"max_attempts_not_integer.yaml", TK_EINVAL,
         "step \"a\": retry.max_attempts must be an integer >= 0, got \"three\""},
        {"timeout_zero.yaml", TK_EINVAL,
         "step \"a\": timeout_seconds must be a positive integer, got 0"},
        {"unsupported_type.yaml", TK_EINVAL,
         "step \"route\": step type \"decision\" is not supported yet"},
        {"syntax_error.yaml", TK_EPARSE,
         "line 8: could not parse YAML: mapping values are not allowed in this context at "
         "column 13"},
        {"list_root.yaml", TK_EINVAL, "a template must be a YAML mapping"},
        {"empty.yaml", TK_EINVAL, "the file is empty"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char rel[256], want[512];
        snprintf(rel, sizeof(rel), "tests/unit/templates/invalid/%s", cases[i].file);
        snprintf(want, sizeof(want), "%s: %s", cases[i].file, cases[i].message);
        tk_template_t *t = NULL;
        tk_error_t err;
        int rc = tk_template_load_file(repo_path(rel), &t, &err);
        if (rc != cases[i].code || strstr(err.message, want) == NULL)
            fail_msg("%s: expected %s with '%s', got %s: '%s'", cases[i].file,
                     tk_err_name(cases[i].code), want, tk_err_name(rc), err.message);
        assert_null(t);
        /* The message starts with the path as given. */
        assert_int_equal(strncmp(err.message, repo_path(rel), strlen(repo_path(rel))), 0);
        assert_string_equal(err.detail, ""); /* one problem each */
    }
}

typedef struct collected_s {
    char msgs[8][512];
    size_t n;
} collected_t;

static void collect(const char *message, void *arg)
{
    collected_t *c = arg;
    if (c->n < 8)
        snprintf(c->msgs[c->n], sizeof(c->msgs[0]), "%s", message);
    c->n++;
}

static void test_several_problems(void **state)
{
    (void)state;
    collected_t got = {0};
    tk_template_t *t;
    tk_error_t err;
    int rc = tk_template_load_file_ex(
        repo_path("tests/unit/templates/invalid/several_problems.yaml"), collect, &got, &t, &err);
    assert_int_equal(rc, TK_EINVAL);
    assert_int_equal(got.n, 4);
    assert_non_null(strstr(got.msgs[0], "namespace_name \"bad-namespace\" must match"));
    assert_non_null(strstr(got.msgs[1], "step \"a\": retry.max_attempts must be an integer >= 0, "
                                        "got -5 (line 8)"));
    assert_non_null(strstr(got.msgs[2], "step \"b\": timeout_seconds must be a positive integer"));
    assert_non_null(strstr(got.msgs[3], "step \"b\": unknown dependency \"nope\""));
    assert_string_equal(err.message, got.msgs[0]); /* err holds the first */
    assert_string_equal(err.detail, "and 3 more problems");

    /* A YAML error is reported through the callback too, and a NULL err is fine. */
    got.n = 0;
    rc = tk_template_load_file_ex(repo_path("tests/unit/templates/invalid/syntax_error.yaml"),
                                  collect, &got, &t, NULL);
    assert_int_equal(rc, TK_EPARSE);
    assert_int_equal(got.n, 1);
    assert_non_null(strstr(got.msgs[0], "syntax_error.yaml: line 8: could not parse YAML"));
}

/* --- rules, checked on in-memory documents --- */

static void test_rules(void **state)
{
    (void)state;
    /* steps */
    expect_str_error(HDR "steps: []\n", TK_EINVAL, "mem.yaml: steps must list at least one step");
    expect_str_error(HDR "steps: {a: 1}\n", TK_EINVAL,
                     "steps must be a list of steps, not a mapping");
    expect_str_error(HDR "steps:\n  - just_a_name\n", TK_EINVAL,
                     "step 1: a step must be a mapping, not a string");
    expect_str_error(HDR "steps:\n  - handler: {callable: x}\n", TK_EINVAL,
                     "step 1: missing required key \"name\"");
    expect_str_error(HDR "steps:\n  - name: \"\"\n    handler: {callable: x}\n", TK_EINVAL,
                     "step 1: name must not be empty");
    expect_str_error(HDR "steps:\n  - name: a\n", TK_EINVAL,
                     "step \"a\": missing required key \"handler\"");
    expect_str_error(HDR "steps:\n  - name: a\n    handler: builtin.noop\n", TK_EINVAL,
                     "step \"a\": handler must be a mapping with a callable, not a string");
    expect_str_error(HDR "steps:\n  - name: a\n    handler: {callable: \"\"}\n", TK_EINVAL,
                     "step \"a\": handler.callable must not be empty");
    expect_str_error(HDR "steps:\n  - name: a\n    handler: {callable: [x]}\n", TK_EINVAL,
                     "step \"a\": handler.callable must be a string, not a list");
    expect_str_error(HDR "steps:\n  - name: a\n    handler: {callable: x, initialization: [1]}\n",
                     TK_EINVAL, "step \"a\": handler.initialization must be a mapping, not a list");
    /* dependencies */
    expect_str_error(HDR "steps:\n" STEP_A "  - name: b\n    handler: {callable: x}\n"
                         "    dependencies: [a]\n    depends_on: [a]\n",
                     TK_EINVAL, "step \"b\": give either dependencies or depends_on, not both");
    expect_str_error(HDR "steps:\n" STEP_A "  - name: b\n    handler: {callable: x}\n"
                         "    depends_on: [a, a]\n",
                     TK_EINVAL, "step \"b\": dependency \"a\" is listed twice");
    expect_str_error(HDR "steps:\n" STEP_A "  - name: b\n    handler: {callable: x}\n"
                         "    depends_on: a\n",
                     TK_EINVAL,
                     "step \"b\": dependencies must be a list of step names, not a string");
    expect_str_error(HDR "steps:\n" STEP_A "  - name: b\n    handler: {callable: x}\n"
                         "    depends_on: [{a: 1}]\n",
                     TK_EINVAL, "step \"b\": dependencies must be step names, not a mapping");
    /* retry and timeout */
    expect_str_error(HDR "steps:\n" STEP_A "    retry: {retryable: yes}\n", TK_EINVAL,
                     "step \"a\": retry.retryable must be true or false, got \"yes\"");
    expect_str_error(HDR "steps:\n" STEP_A "    retry: {max_attempts: 2.5}\n", TK_EINVAL,
                     "retry.max_attempts must be an integer >= 0, got 2.5");
    expect_str_error(HDR "steps:\n" STEP_A "    retry: {max_attempts: \"3\"}\n", TK_EINVAL,
                     "retry.max_attempts must be an integer >= 0, got \"3\"");
    expect_str_error(HDR "steps:\n" STEP_A "    retry: {max_attempts: 2147483648}\n", TK_EINVAL,
                     "retry.max_attempts must be at most 2147483647, got 2147483648");
    expect_str_error(HDR "steps:\n" STEP_A "    retry: {backoff: random}\n", TK_EINVAL,
                     "retry.backoff must be one of none, linear, exponential or fibonacci, got "
                     "\"random\"");
    expect_str_error(HDR "steps:\n" STEP_A "    retry: {backoff_base_ms: -1}\n", TK_EINVAL,
                     "retry.backoff_base_ms must be an integer >= 0, got -1");
    expect_str_error(HDR "steps:\n" STEP_A "    retry: 3\n", TK_EINVAL,
                     "step \"a\": retry must be a mapping, not an integer");
    expect_str_error(HDR "steps:\n" STEP_A "    timeout_seconds: -5\n", TK_EINVAL,
                     "timeout_seconds must be a positive integer, got -5");
    expect_str_error(HDR "steps:\n" STEP_A "    timeout_seconds: 1m\n", TK_EINVAL,
                     "timeout_seconds must be a positive integer, got \"1m\"");
    /* step types */
    static const char *const unsupported[] = {"decision", "deferred_convergence", "batchable",
                                              "batch_worker"};
    for (size_t i = 0; i < 4; i++) {
        char yaml[256], want[128];
        snprintf(yaml, sizeof(yaml), HDR "steps:\n" STEP_A "    step_type: %s\n", unsupported[i]);
        snprintf(want, sizeof(want), "step \"a\": step type \"%s\" is not supported yet",
                 unsupported[i]);
        expect_str_error(yaml, TK_EINVAL, want);
    }
    expect_str_error(HDR "steps:\n" STEP_A "    type: magic\n", TK_EINVAL,
                     "step \"a\": unknown step type \"magic\"");
    /* template-level keys */
    expect_str_error("name: t\nnamespace_name: ns\nversion: \"\"\nsteps:\n" STEP_A, TK_EINVAL,
                     "mem.yaml: version must not be empty");
    expect_str_error("name:\nnamespace_name: ns\nversion: 1\nsteps:\n" STEP_A, TK_EINVAL,
                     "mem.yaml: name must not be empty");
    expect_str_error("name: t\nnamespace_name: 9lives\nversion: 1\nsteps:\n" STEP_A, TK_EINVAL,
                     "namespace_name \"9lives\" must match");
    expect_str_error("name: t\nnamespace_name: {a: 1}\nversion: 1\nsteps:\n" STEP_A, TK_EINVAL,
                     "namespace_name must be a string, not a mapping");
    expect_str_error(HDR "identity_strategy: sometimes\nsteps:\n" STEP_A, TK_EINVAL,
                     "identity_strategy must be one of strict, caller_provided or always_unique, "
                     "got \"sometimes\"");
    expect_str_error(HDR "metadata: [1, 2]\nsteps:\n" STEP_A, TK_EINVAL,
                     "metadata must be a mapping, not a list");
    expect_str_error(HDR "input_schema: true\nsteps:\n" STEP_A, TK_EINVAL,
                     "input_schema must be a mapping, not a boolean");
    expect_str_error(HDR "lifecycle: {max_duration_minutes: 0}\nsteps:\n" STEP_A, TK_EINVAL,
                     "lifecycle.max_duration_minutes must be an integer from 1 to 43200, got 0");
    expect_str_error(HDR "lifecycle: {max_steps_in_process_minutes: 10081}\nsteps:\n" STEP_A,
                     TK_EINVAL, "lifecycle.max_steps_in_process_minutes must be at most 10080");
    expect_str_error(HDR "lifecycle: {staleness_action: explode}\nsteps:\n" STEP_A, TK_EINVAL,
                     "lifecycle.staleness_action must be one of dlq, error or none");
    expect_str_error(HDR "lifecycle: {auto_dlq_on_timeout: 1}\nsteps:\n" STEP_A, TK_EINVAL,
                     "lifecycle.auto_dlq_on_timeout must be true or false, got 1");
    expect_str_error("42\n", TK_EINVAL, "a template must be a YAML mapping");
    expect_str_error("# only a comment\n", TK_EINVAL, "the file is empty");
    expect_str_error("---\n...\n", TK_EINVAL, "the file is empty");
}

static void test_lengths(void **state)
{
    (void)state;
    char name[300], yaml[2048], want[128];
    /* name: 255 characters are fine, 256 are not. */
    memset(name, 'n', 255);
    name[255] = '\0';
    snprintf(yaml, sizeof(yaml), "name: %s\nnamespace_name: ns\nversion: 1\nsteps:\n" STEP_A, name);
    tk_template_free(load_str_ok(yaml));
    snprintf(yaml, sizeof(yaml), "name: %sn\nnamespace_name: ns\nversion: 1\nsteps:\n" STEP_A,
             name);
    expect_str_error(yaml, TK_EINVAL, "mem.yaml: name is longer than 255 characters (line 1)");
    /* Characters, not bytes: 255 two-byte characters are fine. */
    size_t off = 0;
    for (int i = 0; i < 255; i++)
        off += (size_t)snprintf(yaml + off, sizeof(yaml) - off, "%s",
                                i ? "\xc3\xa9" : "name: \xc3\xa9");
    snprintf(yaml + off, sizeof(yaml) - off, "\nnamespace_name: ns\nversion: 1\nsteps:\n" STEP_A);
    tk_template_t *t = load_str_ok(yaml);
    assert_int_equal(strlen(tk_template_name(t)), 510);
    tk_template_free(t);
    /* Step names. */
    snprintf(yaml, sizeof(yaml), HDR "steps:\n  - name: %sn\n    handler: {callable: x}\n", name);
    expect_str_error(yaml, TK_EINVAL, "step 1: name is longer than 255 characters");
    /* namespace: 29 characters are fine, 30 are not. */
    snprintf(yaml, sizeof(yaml), "name: t\nnamespace_name: %.29s\nversion: 1\nsteps:\n" STEP_A,
             name);
    tk_template_free(load_str_ok(yaml));
    /* version: 50. */
    snprintf(yaml, sizeof(yaml), "name: t\nnamespace_name: ns\nversion: %.51s\nsteps:\n" STEP_A,
             name);
    expect_str_error(yaml, TK_EINVAL, "version is longer than 50 characters");
    /* description: 255 (the database column). */
    snprintf(yaml, sizeof(yaml), HDR "description: %s%s\nsteps:\n" STEP_A, name, "x");
    expect_str_error(yaml, TK_EINVAL, "description is longer than 255 characters");
    /* callable: 500. */
    char callable[600];
    memset(callable, 'c', 501);
    callable[501] = '\0';
    snprintf(yaml, sizeof(yaml), HDR "steps:\n  - name: a\n    handler: {callable: %s}\n",
             callable);
    expect_str_error(yaml, TK_EINVAL, "step \"a\": handler.callable is longer than 500 characters");
    callable[500] = '\0';
    snprintf(yaml, sizeof(yaml), HDR "steps:\n  - name: a\n    handler: {callable: %s}\n",
             callable);
    tk_template_free(load_str_ok(yaml));
    /* A long unknown dependency name is cut in the message. */
    snprintf(yaml, sizeof(yaml), HDR "steps:\n" STEP_A "    depends_on: [%s]\n", name);
    snprintf(want, sizeof(want), "unknown dependency \"%.60s...\"", name);
    expect_str_error(yaml, TK_EINVAL, want);
}

/* --- YAML --- */

static const json_t *init_of(const tk_template_t *t)
{
    return tk_template_step(t, 0)->initialization;
}

static void test_yaml_scalars(void **state)
{
    (void)state;
    tk_template_t *t = load_str_ok(
        HDR "steps:\n  - name: a\n    handler:\n      callable: x\n      initialization:\n"
            "        t1: True\n        t2: FALSE\n        n1: NULL\n        n2:\n"
            "        oct: 0o17\n        exp: 1e3\n        neg: -0.5\n        plus: +12\n"
            "        huge: 99999999999999999999\n        inf: .inf\n        nan: .NaN\n"
            "        under: 1_000\n        on: on\n        tagged_str: !!str 123\n"
            "        tagged_int: !!int \"7\"\n        single: 'true'\n"
            "        block: |\n          line one\n          line two\n"
            "        folded: >-\n          folded\n          text\n"
            "        bang: ! 12\n        '': empty key\n        5: int key\n");
    const json_t *i = init_of(t);
    assert_true(json_is_true(json_object_get(i, "t1")));
    assert_true(json_is_false(json_object_get(i, "t2")));
    assert_true(json_is_null(json_object_get(i, "n1")));
    assert_true(json_is_null(json_object_get(i, "n2")));
    assert_int_equal(json_integer_value(json_object_get(i, "oct")), 15);
    assert_true(json_is_real(json_object_get(i, "exp")));
    assert_true(json_real_value(json_object_get(i, "exp")) == 1000.0);
    assert_true(json_real_value(json_object_get(i, "neg")) == -0.5);
    assert_int_equal(json_integer_value(json_object_get(i, "plus")), 12);
    assert_true(json_is_real(json_object_get(i, "huge")));
    assert_string_equal(json_string_value(json_object_get(i, "inf")), ".inf");
    assert_string_equal(json_string_value(json_object_get(i, "nan")), ".NaN");
    assert_string_equal(json_string_value(json_object_get(i, "under")), "1_000");
    assert_string_equal(json_string_value(json_object_get(i, "on")), "on");
    assert_string_equal(json_string_value(json_object_get(i, "tagged_str")), "123");
    assert_int_equal(json_integer_value(json_object_get(i, "tagged_int")), 7);
    assert_string_equal(json_string_value(json_object_get(i, "single")), "true");
    assert_string_equal(json_string_value(json_object_get(i, "block")), "line one\nline two\n");
    assert_string_equal(json_string_value(json_object_get(i, "folded")), "folded text");
    assert_string_equal(json_string_value(json_object_get(i, "bang")), "12");
    assert_string_equal(json_string_value(json_object_get(i, "")), "empty key");
    assert_string_equal(json_string_value(json_object_get(i, "5")), "int key");
    tk_template_free(t);

    /* Scalars in string positions keep their text. */
    t = load_str_ok("name: 123\nnamespace_name: ns\nversion: 1.10\nsteps:\n" STEP_A);
    assert_string_equal(tk_template_name(t), "123");
    assert_string_equal(tk_template_version(t), "1.10");
    tk_template_free(t);

    expect_str_error(HDR "x: !!int seven\nsteps:\n" STEP_A, TK_EPARSE,
                     "mem.yaml: line 4: could not parse YAML: \"seven\" tagged !!int is not a "
                     "64-bit integer");
    expect_str_error(HDR "x: !!bool maybe\nsteps:\n" STEP_A, TK_EPARSE, "tagged !!bool");
    expect_str_error(HDR "x: \"a\\0b\"\nsteps:\n" STEP_A, TK_EPARSE,
                     "line 4: could not parse YAML: scalars must not contain NUL characters");
}

static void test_yaml_structure(void **state)
{
    (void)state;
    expect_str_error(HDR "name: again\nsteps:\n" STEP_A, TK_EPARSE,
                     "mem.yaml: line 4: could not parse YAML: duplicate key \"name\" in the "
                     "mapping that starts at line 1");
    expect_str_error(HDR "steps:\n" STEP_A "---\n" HDR "steps:\n" STEP_A, TK_EPARSE,
                     "line 7: could not parse YAML: the file holds more than one YAML document");
    expect_str_error(HDR "steps:\n  - *nope\n", TK_EPARSE,
                     "line 5: could not parse YAML: unknown alias \"*nope\"");
    expect_str_error(HDR "? [a, b]\n: 1\nsteps:\n" STEP_A, TK_EPARSE,
                     "could not parse YAML: mapping keys must be scalars, not a list");
    expect_str_error(HDR "x: &a [1, *a]\nsteps:\n" STEP_A, TK_EPARSE, "unknown alias \"*a\"");
    expect_str_error(HDR "x:\n  <<: 5\nsteps:\n" STEP_A, TK_EPARSE,
                     "the value of a merge key (<<) must be a mapping or a list of mappings");
    expect_str_error("name: [unclosed\n", TK_EPARSE, "mem.yaml: line 2: could not parse YAML: ");
    expect_str_error("a: b\n\tc: d\n", TK_EPARSE,
                     "mem.yaml: line 2: could not parse YAML: found a tab character that "
                     "violates indentation at column 1 (while scanning a plain scalar at line 1)");
    expect_str_error("a: \"\xff\"\n", TK_EPARSE,
                     "could not parse YAML: invalid leading UTF-8 "
                     "octet at byte 4");

    /* Merge keys: own keys win, then earlier sources. */
    tk_template_t *t =
        load_str_ok(HDR "base1: &b1 {x: 1, y: 1}\nbase2: &b2 {y: 2, z: 2}\nsteps:\n"
                        "  - name: a\n    handler:\n      callable: x\n      initialization:\n"
                        "        <<: [*b1, *b2]\n        x: 0\n");
    const json_t *i = init_of(t);
    assert_int_equal(json_object_size(i), 3);
    assert_int_equal(json_integer_value(json_object_get(i, "x")), 0);
    assert_int_equal(json_integer_value(json_object_get(i, "y")), 1);
    assert_int_equal(json_integer_value(json_object_get(i, "z")), 2);
    tk_template_free(t);

    /* Aliases are expanded, within limits: ten levels of ten ("billion laughs") is refused. */
    char yaml[4096];
    size_t off =
        (size_t)snprintf(yaml, sizeof(yaml), HDR "l0: &l0 [a, a, a, a, a, a, a, a, a, a]\n");
    for (int lvl = 1; lvl < 10; lvl++) {
        off += (size_t)snprintf(yaml + off, sizeof(yaml) - off, "l%d: &l%d [", lvl, lvl);
        for (int k = 0; k < 10; k++)
            off +=
                (size_t)snprintf(yaml + off, sizeof(yaml) - off, "%s*l%d", k ? ", " : "", lvl - 1);
        off += (size_t)snprintf(yaml + off, sizeof(yaml) - off, "]\n");
    }
    snprintf(yaml + off, sizeof(yaml) - off, "steps:\n" STEP_A);
    expect_str_error(yaml, TK_EPARSE, "aliases expand to more than 1000000 nodes");

    /* Deep nesting is refused, not a stack overflow. */
    char *deep = malloc(40000);
    assert_non_null(deep);
    off = (size_t)snprintf(deep, 40000, HDR "x: ");
    for (int k = 0; k < 10000; k++)
        deep[off++] = '[';
    deep[off] = '\0';
    expect_str_error(deep, TK_EPARSE, "nesting deeper than 256 levels");
    free(deep);
}

/* Big graphs: a 5000-step chain is fine (no recursion), a back edge is named. */
static void test_big_graphs(void **state)
{
    (void)state;
    size_t cap = 5000 * 80 + 256, off;
    char *yaml = malloc(cap);
    assert_non_null(yaml);
    off = (size_t)snprintf(yaml, cap, HDR "steps:\n");
    for (int i = 0; i < 5000; i++) {
        off += (size_t)snprintf(yaml + off, cap - off, "  - {name: s%d, handler: {callable: x}", i);
        if (i > 0)
            off += (size_t)snprintf(yaml + off, cap - off, ", depends_on: [s%d]", i - 1);
        off += (size_t)snprintf(yaml + off, cap - off, "}\n");
    }
    tk_template_t *t = load_str_ok(yaml);
    assert_int_equal(tk_template_step_count(t), 5000);
    assert_deps(tk_template_step(t, 4999), 1, "s4998");
    tk_template_free(t);
    /* s0 waits for s3: s0 -> s3 -> s2 -> s1 -> s0. */
    snprintf(yaml, cap,
             HDR "steps:\n"
                 "  - {name: s0, depends_on: [s3], handler: {callable: x}}\n"
                 "  - {name: s1, depends_on: [s0], handler: {callable: x}}\n"
                 "  - {name: s2, depends_on: [s1], handler: {callable: x}}\n"
                 "  - {name: s3, depends_on: [s2], handler: {callable: x}}\n"
                 "  - {name: s4, depends_on: [s3], handler: {callable: x}}\n");
    expect_str_error(yaml, TK_EINVAL,
                     "steps form a cycle: s0 -> s3 -> s2 -> s1 -> s0 (each step "
                     "depends on the next)");
    /* Two separate cycles are both named. */
    collected_t got = {0};
    snprintf(yaml, cap,
             HDR "steps:\n"
                 "  - {name: a, depends_on: [b], handler: {callable: x}}\n"
                 "  - {name: b, depends_on: [a], handler: {callable: x}}\n"
                 "  - {name: c, depends_on: [d], handler: {callable: x}}\n"
                 "  - {name: d, depends_on: [c], handler: {callable: x}}\n");
    assert_int_equal(tk_template_load_string(yaml, strlen(yaml), "m.yaml", collect, &got, &t, NULL),
                     TK_EINVAL);
    assert_int_equal(got.n, 2);
    assert_non_null(strstr(got.msgs[0], "a -> b -> a"));
    assert_non_null(strstr(got.msgs[1], "c -> d -> c"));
    free(yaml);
}

/* --- files, directories, sets --- */

static void test_file_errors(void **state)
{
    (void)state;
    tk_template_t *t;
    tk_error_t err;
    assert_int_equal(tk_template_load_file(repo_path("tests/unit/templates/nope.yaml"), &t, &err),
                     TK_ENOTFOUND);
    assert_non_null(strstr(err.message, "nope.yaml: could not open the template file: No such "
                                        "file or directory"));
    assert_null(t);
    assert_int_equal(tk_template_load_file(repo_path("tests/unit/templates/dir"), &t, &err),
                     TK_EIO);
    assert_non_null(strstr(err.message, "could not read the template file: Is a directory"));
    /* Destructors accept NULL. */
    tk_template_free(NULL);
    tk_template_set_free(NULL);
    tk_template_files_free(NULL, 0);
}

static void test_dir(void **state)
{
    (void)state;
    char **files;
    size_t n;
    tk_error_t err;
    assert_int_equal(tk_template_files(repo_path("tests/unit/templates/dir"), &files, &n, &err),
                     TK_OK);
    static const char *const want[] = {"dir/a_first.yml", "dir/b_second.yaml",
                                       "dir/nested/c_third.yaml",
                                       "dir/nested/deeper/d_fourth.yaml"};
    assert_int_equal(n, 4); /* notes.txt, README.md and .hidden.yaml are skipped */
    for (size_t i = 0; i < n; i++) {
        size_t a = strlen(files[i]), b = strlen(want[i]);
        assert_true(a > b && strcmp(files[i] + a - b, want[i]) == 0);
    }
    tk_template_files_free(files, n);

    tk_template_set_t *set;
    assert_int_equal(tk_template_load_dir(repo_path("tests/unit/templates/dir"), &set, &err),
                     TK_OK);
    assert_int_equal(tk_template_set_count(set), 4);
    static const char *const names[] = {"first", "second", "third", "fourth"};
    for (size_t i = 0; i < 4; i++)
        assert_string_equal(tk_template_name(tk_template_set_get(set, i)), names[i]);
    assert_null(tk_template_set_get(set, 4));
    const char *const *ns = tk_template_set_namespaces(set, &n);
    assert_int_equal(n, 3);
    assert_string_equal(ns[0], "alpha");
    assert_string_equal(ns[1], "beta");
    assert_string_equal(ns[2], "gamma");
    const tk_template_t *t = tk_template_set_find(set, "gamma", "fourth", "2.0.0");
    assert_non_null(t);
    assert_non_null(strstr(tk_template_origin(t), "dir/nested/deeper/d_fourth.yaml"));
    tk_template_set_free(set);
}

static void test_dir_errors(void **state)
{
    (void)state;
    tk_template_set_t *set = (tk_template_set_t *)1;
    tk_error_t err;
    assert_int_equal(tk_template_load_dir(repo_path("tests/unit/templates/dup"), &set, &err),
                     TK_ECONFLICT);
    assert_null(set);
    assert_non_null(strstr(err.message, "dup/two.yaml: template dup/same version 1.0.0 is already "
                                        "defined in "));
    assert_non_null(strstr(err.message, "dup/one.yaml"));

    /* The first invalid file (in path order) fails the load and is named. */
    assert_int_equal(tk_template_load_dir(repo_path("tests/unit/templates/invalid"), &set, &err),
                     TK_EINVAL);
    assert_non_null(strstr(err.message, "invalid/cycle2.yaml: steps form a cycle"));

    assert_int_equal(tk_template_load_dir(repo_path("tests/unit/templates/nope"), &set, &err),
                     TK_ENOTFOUND);
    assert_non_null(strstr(err.message, "could not open template directory"));
    assert_int_equal(
        tk_template_load_dir(repo_path("tests/unit/templates/valid/minimal.yaml"), &set, &err),
        TK_EINVAL);
    assert_non_null(strstr(err.message, "not a directory"));
}

static void test_set(void **state)
{
    (void)state;
    tk_template_set_t *set;
    tk_error_t err;
    size_t n;
    assert_int_equal(tk_template_set_new(&set), TK_OK);
    assert_int_equal(tk_template_set_count(set), 0);
    tk_template_set_namespaces(set, &n);
    assert_int_equal(n, 0);
    assert_int_equal(
        tk_template_set_add(set, load_ok("examples/templates/retry_success.yaml"), &err), TK_OK);
    assert_int_equal(
        tk_template_set_add(set, load_ok("examples/templates/retry_exhaustion.yaml"), &err), TK_OK);
    assert_int_equal(tk_template_set_add(set, load_ok("examples/templates/linear.yaml"), &err),
                     TK_OK);
    /* Same identity again: refused, and the set frees the rejected template. */
    assert_int_equal(tk_template_set_add(set, load_ok("examples/templates/linear.yaml"), &err),
                     TK_ECONFLICT);
    assert_non_null(strstr(err.message, "template linear_workflow/mathematical_sequence version "
                                        "1.0.0 is already defined in"));
    assert_int_equal(tk_template_set_count(set), 3);
    const char *const *ns = tk_template_set_namespaces(set, &n);
    assert_int_equal(n, 2);
    assert_string_equal(ns[0], "linear_workflow");
    assert_string_equal(ns[1], "retry_workflow");
    tk_template_set_free(set);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_linear),
        cmocka_unit_test(test_example_shapes),
        cmocka_unit_test(test_example_retry),
        cmocka_unit_test(test_example_dir),
        cmocka_unit_test(test_json_minimal),
        cmocka_unit_test(test_json_full),
        cmocka_unit_test(test_invalid_files),
        cmocka_unit_test(test_several_problems),
        cmocka_unit_test(test_rules),
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_yaml_scalars),
        cmocka_unit_test(test_yaml_structure),
        cmocka_unit_test(test_big_graphs),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_dir),
        cmocka_unit_test(test_dir_errors),
        cmocka_unit_test(test_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
