/*
 * test_state.c - the C state machines (tasker/state.h) are well formed: names round-trip,
 * terminal states are final, every active state can still finish, and the lookup functions
 * agree with the tables.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "tasker/state.h"

static void test_task_names_round_trip(void **state)
{
    (void)state;
    for (int s = 0; s < TK_TASK_STATE_COUNT; s++) {
        tk_task_state_t parsed;
        const char *name = tk_task_state_name((tk_task_state_t)s);
        assert_non_null(name);
        assert_int_equal(tk_task_state_parse(name, &parsed), TK_OK);
        assert_int_equal(parsed, s);
    }
    tk_task_state_t parsed;
    assert_int_equal(tk_task_state_parse("in_progress", &parsed), TK_OK); /* Tasker legacy */
    assert_int_equal(parsed, TK_TASK_STEPS_IN_PROCESS);
    assert_int_equal(tk_task_state_parse("bogus", &parsed), TK_EINVAL);
    assert_int_equal(tk_task_state_parse(NULL, &parsed), TK_EINVAL);
    assert_null(tk_task_state_name(TK_TASK_STATE_COUNT));
    assert_int_equal(TK_TASK_STATE_COUNT, 12);
}

static void test_step_names_round_trip(void **state)
{
    (void)state;
    for (int s = 0; s < TK_STEP_STATE_COUNT; s++) {
        tk_step_state_t parsed;
        const char *name = tk_step_state_name((tk_step_state_t)s);
        assert_non_null(name);
        assert_int_equal(tk_step_state_parse(name, &parsed), TK_OK);
        assert_int_equal(parsed, s);
    }
    tk_step_state_t parsed;
    assert_int_equal(tk_step_state_parse("running", &parsed), TK_EINVAL);
    assert_int_equal(TK_STEP_STATE_COUNT, 10);
}

static void test_terminal_sets(void **state)
{
    (void)state;
    assert_true(tk_task_state_is_terminal(TK_TASK_COMPLETE));
    assert_true(tk_task_state_is_terminal(TK_TASK_ERROR));
    assert_true(tk_task_state_is_terminal(TK_TASK_CANCELLED));
    assert_true(tk_task_state_is_terminal(TK_TASK_RESOLVED_MANUALLY));
    assert_false(tk_task_state_is_terminal(TK_TASK_BLOCKED_BY_FAILURES));
    assert_true(tk_step_state_is_terminal(TK_STEP_COMPLETE));
    assert_false(tk_step_state_is_terminal(TK_STEP_ERROR)); /* operators may reset it */
    assert_true(tk_step_state_satisfies_dependents(TK_STEP_COMPLETE));
    assert_true(tk_step_state_satisfies_dependents(TK_STEP_RESOLVED_MANUALLY));
    assert_false(tk_step_state_satisfies_dependents(TK_STEP_CANCELLED));
    assert_false(tk_step_state_satisfies_dependents(TK_STEP_ERROR));
}

/* Rows are distinct, never loop on one state, and the lookup finds each pair. */
static void check_rows(const tk_transition_t *rows, int n, bool task)
{
    for (int i = 0; i < n; i++) {
        assert_int_not_equal(rows[i].from, rows[i].to);
        assert_true(strlen(rows[i].event) > 0);
        for (int j = i + 1; j < n; j++)
            assert_false(rows[i].from == rows[j].from && rows[i].to == rows[j].to &&
                         strcmp(rows[i].event, rows[j].event) == 0);
        const char *ev = task ? tk_task_transition_event(rows[i].from, rows[i].to)
                              : tk_step_transition_event(rows[i].from, rows[i].to);
        assert_non_null(ev);
    }
}

static void test_rows_well_formed(void **state)
{
    (void)state;
    int n;
    const tk_transition_t *rows = tk_task_transitions(&n);
    assert_true(n > 20);
    check_rows(rows, n, true);
    rows = tk_step_transitions(&n);
    assert_true(n > 10);
    check_rows(rows, n, false);
}

/* No task transition leaves complete, cancelled or resolved_manually; error only by the
 * operator's reset. No step transition leaves complete, cancelled or resolved_manually. */
static void test_terminal_states_are_final(void **state)
{
    (void)state;
    for (int to = 0; to < TK_TASK_STATE_COUNT; to++) {
        assert_null(tk_task_transition_event(TK_TASK_COMPLETE, to));
        assert_null(tk_task_transition_event(TK_TASK_CANCELLED, to));
        assert_null(tk_task_transition_event(TK_TASK_RESOLVED_MANUALLY, to));
        if (to != TK_TASK_EVALUATING_RESULTS)
            assert_null(tk_task_transition_event(TK_TASK_ERROR, to));
    }
    assert_string_equal(tk_task_transition_event(TK_TASK_ERROR, TK_TASK_EVALUATING_RESULTS),
                        "reset");
    for (int to = 0; to < TK_STEP_STATE_COUNT; to++) {
        assert_null(tk_step_transition_event(TK_STEP_COMPLETE, to));
        assert_null(tk_step_transition_event(TK_STEP_CANCELLED, to));
        assert_null(tk_step_transition_event(TK_STEP_RESOLVED_MANUALLY, to));
    }
}

/* From every non-terminal task state some path reaches complete and some reaches error:
 * no state is a dead end (Tasker's blocked_by_failures was one). */
static void test_no_dead_ends(void **state)
{
    (void)state;
    int n;
    const tk_transition_t *rows = tk_task_transitions(&n);
    for (int target = 0; target < 2; target++) {
        int goal = target == 0 ? TK_TASK_COMPLETE : TK_TASK_ERROR;
        bool reaches[TK_TASK_STATE_COUNT] = {false};
        reaches[goal] = true;
        for (bool changed = true; changed;) {
            changed = false;
            for (int i = 0; i < n; i++)
                if (reaches[rows[i].to] && !reaches[rows[i].from] && rows[i].from != goal) {
                    reaches[rows[i].from] = true;
                    changed = true;
                }
        }
        for (int s = 0; s < TK_TASK_STATE_COUNT; s++)
            if (!tk_task_state_is_terminal(s))
                assert_true(reaches[s]);
    }
    /* Every active state can be cancelled and resolved by an operator. */
    for (int s = 0; s < TK_TASK_STATE_COUNT; s++) {
        if (tk_task_state_is_terminal(s))
            continue;
        assert_string_equal(tk_task_transition_event(s, TK_TASK_CANCELLED), "cancel");
        assert_string_equal(tk_task_transition_event(s, TK_TASK_RESOLVED_MANUALLY),
                            "resolve_manually");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_task_names_round_trip),
        cmocka_unit_test(test_step_names_round_trip),
        cmocka_unit_test(test_terminal_sets),
        cmocka_unit_test(test_rows_well_formed),
        cmocka_unit_test(test_terminal_states_are_final),
        cmocka_unit_test(test_no_dead_ends),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
