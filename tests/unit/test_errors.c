/*
 * test_errors.c - the error table and strict number parsing.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/error_int.h"
#include "common/parse.h"

static void test_error_table(void **state)
{
    (void)state;
    assert_string_equal(tk_strerror(TK_OK), "success");
    assert_string_equal(tk_err_name(TK_ENOTFOUND), "TK_ENOTFOUND");
    assert_string_equal(tk_strerror(-999), "unknown error");
    assert_string_equal(tk_err_name(-999), "TK_UNKNOWN");
    tk_error_t err;
    assert_int_equal(tk_error_set(&err, TK_EINVAL, "cannot use \"%s\"", "x"), TK_EINVAL);
    assert_int_equal(err.code, TK_EINVAL);
    assert_string_equal(err.message, "cannot use \"x\"");
    assert_string_equal(err.sqlstate, "");
    tk_error_set_sqlstate(&err, "23505");
    assert_string_equal(err.sqlstate, "23505");
    tk_error_clear(&err);
    assert_int_equal(err.code, TK_OK);
    assert_int_equal(tk_error_set(NULL, TK_EIO, "ignored"), TK_EIO); /* NULL err is allowed */
}

static void test_parse(void **state)
{
    (void)state;
    int64_t v = 0;
    assert_int_equal(tk_parse_i64("42", 0, 100, &v), TK_OK);
    assert_int_equal(v, 42);
    assert_int_equal(tk_parse_i64("-5", -10, 10, &v), TK_OK);
    assert_int_equal(v, -5);
    assert_int_equal(tk_parse_i64("101", 0, 100, &v), TK_EINVAL);
    assert_int_equal(tk_parse_i64("4x", 0, 100, &v), TK_EINVAL);
    assert_int_equal(tk_parse_i64("", 0, 100, &v), TK_EINVAL);
    assert_int_equal(tk_parse_i64(" 4", 0, 100, &v), TK_EINVAL);
    assert_int_equal(tk_parse_i64("99999999999999999999", INT64_MIN, INT64_MAX, &v), TK_EINVAL);
    assert_int_equal(v, -5); /* unchanged on error */
    assert_int_equal(tk_parse_int_or("17", 3), 17);
    assert_int_equal(tk_parse_int_or("x", 3), 3);
    assert_int_equal(tk_parse_int_or(NULL, 3), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_table),
        cmocka_unit_test(test_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
