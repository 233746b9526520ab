/*
 * test_uuid.c - UUIDv7: version and variant bits, time prefix, strict ordering within one
 * process, and format/parse round trips.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "common/uuid.h"
#include "tasker/error.h"

static void test_bits_and_time(void **state)
{
    (void)state;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    tk_uuid_t u;
    assert_int_equal(tk_uuid_v7(&u), TK_OK);
    assert_int_equal(u.b[6] >> 4, 7); /* version */
    assert_int_equal(u.b[8] >> 6, 2); /* RFC 4122 variant */
    uint64_t ms = tk_uuid_v7_millis(&u);
    assert_true(ms + 1000 >= now_ms && ms <= now_ms + 1000);
}

static void test_strictly_increasing(void **state)
{
    (void)state;
    tk_uuid_t prev, next;
    tk_uuid_v7(&prev);
    for (int i = 0; i < 20000; i++) {
        tk_uuid_v7(&next);
        assert_true(memcmp(prev.b, next.b, 16) < 0);
        prev = next;
    }
}

static void test_format_parse(void **state)
{
    (void)state;
    tk_uuid_t u, back;
    char text[TK_UUID_STR_LEN];
    tk_uuid_v7(&u);
    tk_uuid_format(&u, text);
    assert_int_equal(strlen(text), 36);
    assert_true(text[8] == '-' && text[13] == '-' && text[18] == '-' && text[23] == '-');
    assert_int_equal(tk_uuid_parse(text, &back), TK_OK);
    assert_memory_equal(u.b, back.b, 16);
    assert_int_equal(tk_uuid_parse("01A216D0-D8F2-713F-A64F-23EB7E08886A", &back), TK_OK);
    tk_uuid_format(&back, text);
    assert_string_equal(text, "01a216d0-d8f2-713f-a64f-23eb7e08886a");
    assert_int_equal(tk_uuid_parse("01a216d0-d8f2-713f-a64f-23eb7e08886", &back), TK_EINVAL);
    assert_int_equal(tk_uuid_parse("01a216d0xd8f2-713f-a64f-23eb7e08886a", &back), TK_EINVAL);
    assert_int_equal(tk_uuid_parse("01a216d0-d8f2-713f-a64f-23eb7e08886g", &back), TK_EINVAL);
    assert_int_equal(tk_uuid_parse(NULL, &back), TK_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bits_and_time),
        cmocka_unit_test(test_strictly_increasing),
        cmocka_unit_test(test_format_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
