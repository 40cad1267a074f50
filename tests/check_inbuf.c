/* check_inbuf.c -- the contiguous input buffer of buffer/inbuf.c.
 *
 * What streams rely on: the pending bytes stay contiguous and in order
 * through appends, reads into reserved space and partial consumption; the
 * buffer grows by doubling, so a long frame arriving a byte at a time is
 * moved O(log n) times, not once per byte; an emptied large buffer gives
 * its memory back.
 */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "inbuf-internal.h"
#include "testutil.h"

Suite *inbuf_suite(void);

START_TEST(append_and_consume_keep_order)
{
    pants__inbuf_t b;
    unsigned char expect[10000];
    size_t have = 0, gone = 0;

    pants__inbuf_init(&b);
    for (size_t i = 0; i < sizeof(expect); i++)
        expect[i] = (unsigned char)(i * 7 + 3);
    while (have < sizeof(expect)) {
        size_t n = (have % 13) + 1;
        if (have + n > sizeof(expect))
            n = sizeof(expect) - have;
        ck_assert_int_eq(pants__inbuf_append(&b, expect + have, n), 0);
        have += n;
        if (have % 3 == 0 && b.len > 5) { /* consume part of what is pending */
            pants__inbuf_consume(&b, b.len / 2);
            gone = have - b.len;
        }
        ck_assert_uint_eq(b.len, have - gone);
        ck_assert_mem_eq(pants__inbuf_data(&b), expect + gone, b.len);
    }
    pants__inbuf_deinit(&b);
    ck_assert_ptr_null(b.data);
}
END_TEST

START_TEST(space_then_commit)
{
    pants__inbuf_t b;
    size_t avail;
    unsigned char *to;

    pants__inbuf_init(&b);
    ck_assert_int_eq(pants__inbuf_append(&b, "ab", 2), 0);
    to = pants__inbuf_space(&b, 5000, &avail);
    ck_assert_ptr_nonnull(to);
    ck_assert_uint_ge(avail, 5000);
    memcpy(to, "cd", 2);
    pants__inbuf_commit(&b, 2);
    ck_assert_uint_eq(b.len, 4);
    ck_assert_mem_eq(pants__inbuf_data(&b), "abcd", 4);
    pants__inbuf_consume(&b, 4);
    ck_assert_uint_eq(b.len, 0);
    pants__inbuf_deinit(&b);
}
END_TEST

/* 1 MiB one byte at a time: the allocation moves O(log n) times. */
START_TEST(byte_at_a_time_is_linear)
{
    pants__inbuf_t b;
    const unsigned char *last = NULL;
    unsigned moves = 0;

    pants__inbuf_init(&b);
    int failed = 0;

    for (size_t i = 0; i < (1u << 20); i++) {
        unsigned char c = (unsigned char)i;
        failed |= pants__inbuf_append(&b, &c, 1);
        if (b.data != last) {
            moves++;
            last = b.data;
        }
    }
    ck_assert_int_eq(failed, 0);
    ck_assert_uint_eq(b.len, 1u << 20);
    ck_assert_uint_le(moves, 12); /* 4 KiB .. 1 MiB by doubling */
    ck_assert_uint_eq(pants__inbuf_data(&b)[12345], (unsigned char)12345);
    pants__inbuf_deinit(&b);
}
END_TEST

/* A mostly consumed buffer slides its rest to the front instead of growing. */
START_TEST(compacts_before_growing)
{
    pants__inbuf_t b;
    unsigned char junk[3000] = {0};
    size_t avail, cap;

    pants__inbuf_init(&b);
    ck_assert_int_eq(pants__inbuf_append(&b, junk, sizeof(junk)), 0);
    cap = b.cap;
    pants__inbuf_consume(&b, 2990);
    ck_assert_ptr_nonnull(pants__inbuf_space(&b, cap - 100, &avail));
    ck_assert_uint_eq(b.cap, cap);
    ck_assert_uint_eq(b.start, 0);
    ck_assert_uint_eq(b.len, 10);
    pants__inbuf_deinit(&b);
}
END_TEST

/* Drained, a large allocation goes back; a small one is kept. */
START_TEST(large_memory_returned_when_empty)
{
    pants__inbuf_t b;
    static unsigned char big[100000];

    pants__inbuf_init(&b);
    ck_assert_int_eq(pants__inbuf_append(&b, "x", 1), 0);
    pants__inbuf_consume(&b, 1);
    ck_assert_ptr_nonnull(b.data);
    ck_assert_int_eq(pants__inbuf_append(&b, big, sizeof(big)), 0);
    pants__inbuf_consume(&b, sizeof(big));
    ck_assert_ptr_null(b.data);
    ck_assert_uint_eq(b.cap, 0);
    pants__inbuf_deinit(&b);
}
END_TEST

Suite *inbuf_suite(void)
{
    Suite *s = suite_create("inbuf");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 30); /* sanitizer builds are several times slower */
    tcase_add_test(tc, append_and_consume_keep_order);
    tcase_add_test(tc, space_then_commit);
    tcase_add_test(tc, byte_at_a_time_is_linear);
    tcase_add_test(tc, compacts_before_growing);
    tcase_add_test(tc, large_memory_returned_when_empty);
    suite_add_tcase(s, tc);
    return s;
}
