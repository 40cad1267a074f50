/* check_framer.c -- unit tests of buffer/framer.c.
 *
 * The framer is pure: bytes in, frame boundaries out.  Arrival in pieces is
 * simulated by scanning a growing prefix of one buffer, as the stream code
 * does with its pending bytes; every frame found is cut (the offset moves
 * past it and its skip) and pants__framer_consumed is called.  The "perf"
 * case feeds 1 MiB one byte at a time: with a rescanning search that takes
 * minutes and trips the Check timeout.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <check.h>
#include <event2/buffer.h>

#include "framer-internal.h"

#define MIB (1024u * 1024u)

/* ---- Helpers ---------------------------------------------------------- */

/* pants__framer_scan over a C string's first len bytes. */
static ssize_t scan(pants__framer_t *f, const char *s, size_t len, size_t *skip, int *err)
{
    return pants__framer_scan(f, (const unsigned char *)s, len, skip, err);
}

/* Frames cut so far, each followed by '|' (frames may hold NUL bytes). */
struct cut {
    char buf[512]; /* the frames */
    size_t len;    /* bytes used in buf */
};

static void append_frame(struct cut *out, const char *p, size_t n)
{
    ck_assert_uint_lt(out->len + n + 1, sizeof(out->buf));
    memcpy(out->buf + out->len, p, n);
    out->buf[out->len + n] = '|';
    out->len += n + 1;
}

/* Feed data[0..len) step bytes at a time, cutting every frame found into
 * out.  Returns how many bytes were left uncut. */
static size_t feed(pants__framer_t *f, const char *data, size_t len, size_t step, struct cut *out)
{
    size_t off = 0, avail = 0, skip;
    int err = 0;

    out->len = 0;
    while (avail < len) {
        avail = avail + step < len ? avail + step : len;
        for (;;) {
            ssize_t n = scan(f, data + off, avail - off, &skip, &err);
            if (n == PANTS__FRAME_NEED_MORE)
                break;
            ck_assert_int_ge(n, 0);
            append_frame(out, data + off, (size_t)n);
            off += (size_t)n + skip;
            ck_assert_uint_le(off, avail);
            pants__framer_consumed(f);
        }
    }
    return len - off;
}

/* Feeding data in steps of 1, 2, 3, 5, 7 and all at once cuts the frames
 * of want ("frame|frame|") and leaves left bytes uncut. */
static void check_all_steps(pants__framer_t *f, const char *data, size_t len, const char *want,
                            size_t want_len, size_t left)
{
    static const size_t steps[] = {1, 2, 3, 5, 7, 0};
    struct cut out;

    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        size_t step = steps[i] ? steps[i] : len;
        ck_assert_uint_eq(feed(f, data, len, step, &out), left);
        ck_assert_uint_eq(out.len, want_len);
        ck_assert_mem_eq(out.buf, want, want_len);
        pants__framer_consumed(f);
    }
}

/* check_all_steps over string literals (which may hold NUL bytes). */
#define CHECK_STEPS(f, data, want, left)                                                                     \
    check_all_steps((f), (data), sizeof(data) - 1, (want), sizeof(want) - 1, (left))

/* A user framer: "<digit><payload>" -- one length byte then that many. */
static ssize_t digit_framer(const void *buf, size_t len, size_t *skip, void *arg)
{
    const unsigned char *p = buf;
    int *calls = arg;
    size_t n;

    ck_assert_uint_gt(len, 0);
    ck_assert_uint_eq(*skip, 0);
    if (calls != NULL)
        (*calls)++;
    if (p[0] < '0' || p[0] > '9')
        return -EBADMSG;
    n = (size_t)(p[0] - '0');
    if (len < 1 + n)
        return 0;
    return (ssize_t)(1 + n);
}

/* A user framer: up to ';', which is skipped.  (A return of 0 means "need
 * more", so a user framer cannot cut an empty frame.) */
static ssize_t semicolon_framer(const void *buf, size_t len, size_t *skip, void *arg)
{
    const char *semi = memchr(buf, ';', len);

    (void)arg;
    ck_assert_uint_eq(*skip, 0);
    if (semi == NULL)
        return 0;
    *skip = 1;
    return semi - (const char *)buf;
}

/* A user framer that answers *(ssize_t *)arg with skip 1 on positive. */
static ssize_t fixed_framer(const void *buf, size_t len, size_t *skip, void *arg)
{
    (void)buf;
    (void)len;
    *skip = 1;
    return *(ssize_t *)arg;
}

/* ---- any -------------------------------------------------------------- */

START_TEST(test_any_default)
{
    pants__framer_t f;
    size_t skip = 99;
    int err = 0;

    pants__framer_init(&f);
    ck_assert_int_eq(f.kind, PANTS__FRAME_ANY);
    ck_assert_int_eq(scan(&f, "hello", 5, &skip, &err), 5);
    ck_assert_uint_eq(skip, 0);
    ck_assert_int_eq(scan(&f, "x", 1, &skip, &err), 1);
    ck_assert_int_eq(scan(&f, "", 0, &skip, &err), PANTS__FRAME_NEED_MORE);
    ck_assert_int_eq(err, 0);
    pants__framer_deinit(&f);
}
END_TEST

START_TEST(test_any_after_other_kind)
{
    pants__framer_t f;
    size_t skip;
    int err = 0;

    pants__framer_init(&f);
    ck_assert_int_eq(pants__framer_set_until(&f, "\n", 1), 0);
    ck_assert_int_eq(scan(&f, "abc", 3, &skip, &err), PANTS__FRAME_NEED_MORE);
    ck_assert_int_eq(pants__framer_set_any(&f), 0);
    ck_assert_uint_eq(f.scanned, 0);
    ck_assert_int_eq(scan(&f, "abc", 3, &skip, &err), 3);
    ck_assert_uint_eq(pants__framer_min_limit(&f), 1);
    pants__framer_deinit(&f);
}
END_TEST

/* ---- until ------------------------------------------------------------ */

START_TEST(test_until_whole)
{
    pants__framer_t f;
    size_t skip;
    int err = 0;

    pants__framer_init(&f);
    ck_assert_int_eq(pants__framer_set_until(&f, "\n", 1), 0);
    ck_assert_int_eq(scan(&f, "abc\ndef", 7, &skip, &err), 3);
    ck_assert_uint_eq(skip, 1);
    pants__framer_consumed(&f);
    ck_assert_int_eq(scan(&f, "def", 3, &skip, &err), PANTS__FRAME_NEED_MORE);
    ck_assert_uint_eq(f.scanned, 3);
    pants__framer_deinit(&f);
}
END_TEST

START_TEST(test_until_many_frames)
{
    static const char data[] = "a\nbb\n\nccc\ndd";
    pants__framer_t f;

    pants__framer_init(&f);
    ck_assert_int_eq(pants__framer_set_until(&f, "\n", 1), 0);
    CHECK_STEPS(&f, data, "a|bb||ccc|", 2);
    pants__framer_deinit(&f);
}
END_TEST

START_TEST(test_until_bytewise_scanned)
{
    static const char data[] = "hello\r\n";
    pants__framer_t f;
    size_t skip;
    int err = 0;

    pants__framer_init(&f);
    ck_assert_int_eq(pants__framer_set_until(&f, "\r\n", 2), 0);
    for (size_t i = 1; i < 7; i++) {
        ck_assert_int_eq(scan(&f, data, i, &skip, &err), PANTS__FRAME_NEED_MORE);
        ck_assert_uint_eq(f.scanned, i);
    }
    ck_assert_int_eq(scan(&f, data, 7, &skip, &err), 5);
    ck_assert_uint_eq(skip, 2);
    pants__framer_deinit(&f);
}
END_TEST

START_TEST(test_until_crlf_split)
{
    static const char data[] = "abc\r\nxyz\r\n";
    pants__framer_t f;
    size_t skip;
    int err = 0;

    pants__framer_init(&f);
    ck_assert_int_eq(pants__framer_set_until(&f, "\r\n", 2), 0);
    ck_assert_int_eq(scan(&f, data, 4, &skip, &err), PANTS__FRAME_NEED_MORE); /* "abc\r" */
    ck_assert_uint_eq(f.scanned, 4);
    ck_assert_int_eq(scan(&f, data, 5, &skip, &err), 3);
    ck_assert_uint_eq(skip, 2);
    pants__framer_consumed(&f);
    ck_assert_uint_eq(f.scanned, 0);
    CHECK_STEPS(&f, data, "abc|xyz|", 0);
    pants__framer_deinit(&f);
}
END_TEST

START_TEST(test_until_overlapping_delimiter)
{
    /* "aab" inside "aaab": a naive resume after "aa" would miss it. */
    static const char data[] = "xaaaabyaab";
    pants__framer_t f;

    pants__framer_init(&f);
    ck_assert_int_eq(pants__framer_set_until(&f, "aab", 3), 0);
    CHECK_STEPS(&f, data, "xaa|y|", 0);
    pants__framer_deinit(&f);
}
END_TEST

START_TEST(test_until_binary_delimiter)
{
    static const char data[] = "ab\0c\0\0de\0\0";
    pants__framer_t f;

    pants__framer_init(&f);
    ck_assert_int_eq(pants__framer_set_until(&f, "\0\0", 2), 0);
    CHECK_STEPS(&f, data, "ab\0c|de|", 0);
    pants__framer_deinit(&f);
}
END_TEST

START_TEST(test_until_delimiter_is_copied)
{
    char delim[] = "--";
    pants__framer_t f;
    size_t skip;
    int err = 0;

    pants__framer_init(&f);
    ck_assert_int_eq(pants__framer_set_until(&f, delim, 2), 0);
    delim[0] = delim[1] = 'x'; /* the framer must not see this */
    ck_assert_int_eq(scan(&f, "ab--cd", 6, &skip, &err), 2);
    /* Setting it again from its own copy works too. */
    ck_assert_int_eq(pants__framer_set_until(&f, f.u.until.delim, f.u.until.len), 0);
    ck_assert_int_eq(scan(&f, "abc--", 5, &skip, &err), 3);
    ck_assert_uint_eq(skip, 2);
    pants__framer_deinit(&f);
}
END_TEST

/* ---- exact ------------------------------------------------------------ */

START_TEST(test_exact_frames)
{
    static const char data[] = "abcdefghij";
    pants__framer_t f;
    size_t skip;
    int err = 0;

    pants__framer_init(&f);
    ck_assert_int_eq(pants__framer_set_exact(&f, 4), 0);
    ck_assert_int_eq(scan(&f, data, 3, &skip, &err), PANTS__FRAME_NEED_MORE);
    ck_assert_int_eq(scan(&f, data, 4, &skip, &err), 4);
    ck_assert_uint_eq(skip, 0);
    ck_assert_int_eq(scan(&f, data, 10, &skip, &err), 4);
    CHECK_STEPS(&f, data, "abcd|efgh|", 2);
    pants__framer_deinit(&f);
}
END_TEST

START_TEST(test_exact_one)
{
    pants__framer_t f;

    pants__framer_init(&f);
    ck_assert_int_eq(pants__framer_set_exact(&f, 1), 0);
    CHECK_STEPS(&f, "xyz", "x|y|z|", 0);
    pants__framer_deinit(&f);
}
END_TEST

/* ---- regex ------------------------------------------------------------ */

START_TEST(test_regex_alternation)
{
    static const char data[] = "ab\ncd\r\n\nef";
    pants__framer_t f;
    size_t skip;
    int err = 0;

    pants__framer_init(&f);
    ck_assert_int_eq(pants__framer_set_regex(&f, "\\r\\n|\\n"), 0);
    ck_assert_int_eq(scan(&f, data, sizeof(data) - 1, &skip, &err), 2);
    ck_assert_uint_eq(skip, 1);
    ck_assert_int_eq(scan(&f, data + 3, 4, &skip, &err), 2);
    ck_assert_uint_eq(skip, 2);
    CHECK_STEPS(&f, data, "ab|cd||", 2);
    pants__framer_deinit(&f);
}
END_TEST

START_TEST(test_regex_partial_crlf)
{
    static const char data[] = "abc\r\n";
    pants__framer_t f;
    size_t skip;
    int err = 0;

    pants__framer_init(&f);
    ck_assert_int_eq(pants__framer_set_regex(&f, "\\r\\n|\\n"), 0);
    ck_assert_int_eq(scan(&f, data, 3, &skip, &err), PANTS__FRAME_NEED_MORE);
    ck_assert_uint_eq(f.scanned, 3);
    ck_assert_int_eq(scan(&f, data, 4, &skip, &err), PANTS__FRAME_NEED_MORE);
    ck_assert_uint_eq(f.scanned, 3); /* the partial "\r" starts there */
    ck_assert_int_eq(scan(&f, data, 5, &skip, &err), 3);
    ck_assert_uint_eq(skip, 2);
    pants__framer_deinit(&f);
}
END_TEST

START_TEST(test_regex_partial_then_cut_at_once)
{
    static const char data[] = "xxENDDD";
    pants__framer_t f;
    size_t skip;
    int err = 0;

    pants__framer_init(&f);
    ck_assert_int_eq(pants__framer_set_regex(&f, "END+"), 0);
    ck_assert_int_eq(scan(&f, data, 3, &skip, &err), PANTS__FRAME_NEED_MORE);
    ck_assert_uint_eq(f.scanned, 2);
    ck_assert_int_eq(scan(&f, data, 4, &skip, &err), PANTS__FRAME_NEED_MORE);
    ck_assert_uint_eq(f.scanned, 2);
    /* The first complete match cuts, though more D's may follow. */
    ck_assert_int_eq(scan(&f, data, 5, &skip, &err), 2);
    ck_assert_uint_eq(skip, 3);
    /* Given all at once, the match takes every D there is. */
    pants__framer_consumed(&f);
    ck_assert_int_eq(scan(&f, data, 7, &skip, &err), 2);
    ck_assert_uint_eq(skip, 5);
    pants__framer_deinit(&f);
}
END_TEST

START_TEST(test_regex_no_rescan)
{
    static const char data[] = "abc12x3;rest";
    pants__framer_t f;
    size_t skip;
    int err = 0;

    pants__framer_init(&f);
    ck_assert_int_eq(pants__framer_set_regex(&f, "\\d+;"), 0);
    ck_assert_int_eq(scan(&f, data, 3, &skip, &err), PANTS__FRAME_NEED_MORE);
    ck_assert_uint_eq(f.scanned, 3); /* nothing matched: all searched */
    ck_assert_int_eq(scan(&f, data, 5, &skip, &err), PANTS__FRAME_NEED_MORE);
    ck_assert_uint_eq(f.scanned, 3); /* "12" may become "12;" */
    ck_assert_int_eq(scan(&f, data, 6, &skip, &err), PANTS__FRAME_NEED_MORE);
    ck_assert_uint_eq(f.scanned, 6); /* "12x" cannot */
    ck_assert_int_eq(scan(&f, data, 7, &skip, &err), PANTS__FRAME_NEED_MORE);
    ck_assert_uint_eq(f.scanned, 6);
    ck_assert_int_eq(scan(&f, data, 8, &skip, &err), 6);
    ck_assert_uint_eq(skip, 2);
    CHECK_STEPS(&f, data, "abc12x|", 4);
    pants__framer_deinit(&f);
}
END_TEST

START_TEST(test_regex_lookbehind_across_feeds)
{
    static const char data[] = "xab;ab";
    pants__framer_t f;
    size_t skip;
    int err = 0;

    pants__framer_init(&f);
    ck_assert_int_eq(pants__framer_set_regex(&f, "(?<=a)b"), 0);
    ck_assert_int_eq(scan(&f, data, 2, &skip, &err), PANTS__FRAME_NEED_MORE);
    ck_assert_uint_eq(f.scanned, 2);
    ck_assert_int_eq(scan(&f, data, 3, &skip, &err), 2); /* sees the 'a' before */
    ck_assert_uint_eq(skip, 1);
    CHECK_STEPS(&f, data, "xa|;a|", 0);
    pants__framer_deinit(&f);
}
END_TEST

START_TEST(test_regex_first_complete_match)
{
    pants__framer_t f;
    size_t skip;
    int err = 0;

    pants__framer_init(&f);
    ck_assert_int_eq(pants__framer_set_regex(&f, "abc|b"), 0);
    /* "ab" could still become "abc", but "b" is a complete match. */
    ck_assert_int_eq(scan(&f, "xab", 3, &skip, &err), 2);
    ck_assert_uint_eq(skip, 1);
    pants__framer_consumed(&f);
    ck_assert_int_eq(scan(&f, "xabc", 4, &skip, &err), 1);
    ck_assert_uint_eq(skip, 3);
    pants__framer_deinit(&f);
}
END_TEST

START_TEST(test_regex_utf8_split)
{
    static const char data[] = "ab\xc3\xa9"
                               "cd\xc3\xa9";
    pants__framer_t f;
    size_t skip;
    int err = 0;

    pants__framer_init(&f);
    ck_assert_int_eq(pants__framer_set_regex(&f, "(*UTF)\xc3\xa9"), 0);
    ck_assert_int_eq(scan(&f, data, 3, &skip, &err), PANTS__FRAME_NEED_MORE);
    ck_assert_uint_eq(f.scanned, 2); /* the half character is not searched yet */
    ck_assert_int_eq(scan(&f, data, 4, &skip, &err), 2);
    ck_assert_uint_eq(skip, 2);
    CHECK_STEPS(&f, data, "ab|cd|", 0);
    /* Bytes that are not UTF-8 are rejected. */
    pants__framer_consumed(&f);
    ck_assert_int_eq(scan(&f, "a\xff\xc3\xa9", 4, &skip, &err), PANTS__FRAME_ERROR);
    ck_assert_int_eq(err, -EILSEQ);
    pants__framer_deinit(&f);
}
END_TEST

/* ---- regex: hostile input meets bounded limits ------------------------- */

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* n bytes of c (not NUL-terminated). */
static char *filled(char c, size_t n)
{
    char *p = malloc(n);

    ck_assert_ptr_nonnull(p);
    memset(p, c, n);
    return p;
}

/* (a+)+b backtracks exponentially over a run of a's without a b: the scan
 * stops at its limit with -E2BIG, at once (not in minutes), whether the
 * run comes at once or in pieces (each piece re-matches from the run's
 * start, and all those matches share one budget). */
START_TEST(test_regex_limit_is_e2big)
{
    static const size_t steps[] = {4000, 500, 64, 1};
    char *run = filled('a', 4000);

    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        pants__framer_t f;
        ssize_t n = PANTS__FRAME_NEED_MORE;
        size_t skip, avail = 0;
        int err = 0;
        double t0 = now_ms();

        pants__framer_init(&f);
        ck_assert_int_eq(pants__framer_set_regex(&f, "(a+)+b"), 0);
        while (n == PANTS__FRAME_NEED_MORE && avail < 4000) {
            avail += steps[i];
            n = scan(&f, run, avail, &skip, &err);
        }
        ck_assert_msg(n == PANTS__FRAME_ERROR, "step %zu: %zd after %zu bytes", steps[i], n, avail);
        ck_assert_int_eq(err, -E2BIG);
        ck_assert_double_lt(now_ms() - t0, 2000.0); /* some ms; generous for sanitizers */
        pants__framer_deinit(&f);
    }
    free(run);
}
END_TEST

/* Nesting that would need deep backtracking memory is -E2BIG as well. */
START_TEST(test_regex_depth_is_e2big)
{
    char *run = filled('a', 64 * 1024);
    pants__framer_t f;
    size_t skip;
    int err = 0;

    pants__framer_init(&f);
    ck_assert_int_eq(pants__framer_set_regex(&f, "(a|b)*c"), 0);
    ck_assert_int_eq(scan(&f, run, 64 * 1024, &skip, &err), PANTS__FRAME_ERROR);
    ck_assert_int_eq(err, -E2BIG);
    pants__framer_deinit(&f);
    free(run);
}
END_TEST

/* Each frame has a budget of its own: six frames, each costing (a+)+b
 * some 25,000 steps before its "ab" (more than 2^17 together), all cut
 * from one buffer or as they come in pieces; and ordinary searches of a
 * full 64 KiB buffer stay far below the limit, also searched again and
 * again from a partial match at its front. */
START_TEST(test_regex_budget_per_frame)
{
    static const char costly[] = "aaaaaaaaaaaacab"
                                 "aaaaaaaaaaaacab"
                                 "aaaaaaaaaaaacab"
                                 "aaaaaaaaaaaacab"
                                 "aaaaaaaaaaaacab"
                                 "aaaaaaaaaaaacab";
    size_t big = 64 * 1024, skip;
    char *text = malloc(big);
    pants__framer_t f;
    int err = 0;

    pants__framer_init(&f);
    ck_assert_int_eq(pants__framer_set_regex(&f, "(a+)+b"), 0);
    CHECK_STEPS(&f, costly,
                "aaaaaaaaaaaac|aaaaaaaaaaaac|aaaaaaaaaaaac|aaaaaaaaaaaac|aaaaaaaaaaaac|aaaaaaaaaaaac|", 0);
    ck_assert_ptr_nonnull(text);
    for (size_t i = 0; i < big; i++)
        text[i] = "GET /index.html HTTP/1.1 Host: example.com, 3.14 x"[i % 50];
    ck_assert_int_eq(pants__framer_set_regex(&f, "(?i)\\b(?:post|put|delete|head|options)\\b|\\d+;"), 0);
    ck_assert_int_eq(scan(&f, text, big, &skip, &err), PANTS__FRAME_NEED_MORE);
    ck_assert_uint_eq(f.scanned, big);
    ck_assert_int_eq(pants__framer_set_regex(&f, "<[^>]*>"), 0);
    text[0] = '<'; /* a partial match from the front, searched again per piece */
    for (size_t avail = 1460; avail < big; avail += 1460)
        ck_assert_int_eq(scan(&f, text, avail, &skip, &err), PANTS__FRAME_NEED_MORE);
    ck_assert_uint_eq(f.scanned, 0);
    pants__framer_deinit(&f);
    free(text);
}
END_TEST

/* ---- framed ----------------------------------------------------------- */

START_TEST(test_framed_length_prefix)
{
    static const char data[] = "3abc0"
                               "1x2y";
    pants__framer_t f;
    size_t skip;
    int err = 0, calls = 0;

    pants__framer_init(&f);
    ck_assert_int_eq(pants__framer_set_framed(&f, digit_framer, &calls), 0);
    ck_assert_int_eq(scan(&f, data, 0, &skip, &err), PANTS__FRAME_NEED_MORE);
    ck_assert_int_eq(calls, 0); /* never asked about nothing */
    ck_assert_int_eq(scan(&f, data, 3, &skip, &err), PANTS__FRAME_NEED_MORE);
    ck_assert_int_eq(calls, 1);
    ck_assert_int_eq(scan(&f, data, 4, &skip, &err), 4);
    ck_assert_uint_eq(skip, 0);
    ck_assert_int_eq(calls, 2);
    CHECK_STEPS(&f, data, "3abc|0|1x|", 2);
    pants__framer_deinit(&f);
}
END_TEST

START_TEST(test_framed_skip)
{
    static const char data[] = "ab;cde;f";
    pants__framer_t f;
    size_t skip;
    int err = 0;

    pants__framer_init(&f);
    ck_assert_int_eq(pants__framer_set_framed(&f, semicolon_framer, NULL), 0);
    ck_assert_int_eq(scan(&f, data, 3, &skip, &err), 2);
    ck_assert_uint_eq(skip, 1);
    CHECK_STEPS(&f, data, "ab|cde|", 1);
    pants__framer_deinit(&f);
}
END_TEST

START_TEST(test_framed_error)
{
    pants__framer_t f;
    size_t skip;
    int err = 0, calls = 0;

    pants__framer_init(&f);
    ck_assert_int_eq(pants__framer_set_framed(&f, digit_framer, &calls), 0);
    ck_assert_int_eq(scan(&f, "x", 1, &skip, &err), PANTS__FRAME_ERROR);
    ck_assert_int_eq(err, -EBADMSG);
    pants__framer_deinit(&f);
}
END_TEST

START_TEST(test_framed_too_long)
{
    pants__framer_t f;
    ssize_t answer;
    size_t skip;
    int err;

    pants__framer_init(&f);
    ck_assert_int_eq(pants__framer_set_framed(&f, fixed_framer, &answer), 0);
    answer = 4; /* 4 + skip 1 > 4 */
    err = 0;
    ck_assert_int_eq(scan(&f, "abcd", 4, &skip, &err), PANTS__FRAME_ERROR);
    ck_assert_int_eq(err, -EPROTO);
    answer = 5; /* past len */
    err = 0;
    ck_assert_int_eq(scan(&f, "abcd", 4, &skip, &err), PANTS__FRAME_ERROR);
    ck_assert_int_eq(err, -EPROTO);
    answer = 3; /* 3 + skip 1 == 4: fits */
    ck_assert_int_eq(scan(&f, "abcd", 4, &skip, &err), 3);
    ck_assert_uint_eq(skip, 1);
    answer = 0; /* need more: its skip is ignored */
    ck_assert_int_eq(scan(&f, "abcd", 4, &skip, &err), PANTS__FRAME_NEED_MORE);
    ck_assert_uint_eq(skip, 0);
    pants__framer_deinit(&f);
}
END_TEST

/* ---- invalid arguments ------------------------------------------------ */

START_TEST(test_invalid_keeps_until)
{
    pants__framer_t f;
    size_t skip;
    int err = 0;

    pants__framer_init(&f);
    ck_assert_int_eq(pants__framer_set_until(&f, "\r\n", 2), 0);
    ck_assert_int_eq(scan(&f, "abc\r", 4, &skip, &err), PANTS__FRAME_NEED_MORE);
    ck_assert_int_eq(pants__framer_set_until(&f, "x", 0), -EINVAL);
    ck_assert_int_eq(pants__framer_set_until(&f, NULL, 1), -EINVAL);
    ck_assert_int_eq(pants__framer_set_exact(&f, 0), -EINVAL);
    ck_assert_int_eq(pants__framer_set_regex(&f, "("), -EINVAL);
    ck_assert_int_eq(pants__framer_set_regex(&f, "a*"), -EINVAL);
    ck_assert_int_eq(pants__framer_set_regex(&f, ""), -EINVAL);
    ck_assert_int_eq(pants__framer_set_regex(&f, "x|$"), -EINVAL);
    ck_assert_int_eq(pants__framer_set_regex(&f, NULL), -EINVAL);
    ck_assert_int_eq(pants__framer_set_framed(&f, NULL, NULL), -EINVAL);
    /* Exactly as it was, search position included. */
    ck_assert_int_eq(f.kind, PANTS__FRAME_UNTIL);
    ck_assert_uint_eq(f.scanned, 4);
    ck_assert_int_eq(scan(&f, "abc\r\n", 5, &skip, &err), 3);
    ck_assert_uint_eq(skip, 2);
    pants__framer_deinit(&f);
}
END_TEST

START_TEST(test_invalid_keeps_regex)
{
    pants__framer_t f;
    size_t skip;
    int err = 0;

    pants__framer_init(&f);
    ck_assert_int_eq(pants__framer_set_regex(&f, "E+ND"), 0);
    void *code = f.u.regex.code;
    ck_assert_int_eq(pants__framer_set_regex(&f, "[a-"), -EINVAL);
    ck_assert_int_eq(pants__framer_set_regex(&f, "(?:)"), -EINVAL);
    ck_assert_int_eq(pants__framer_set_until(&f, "", 0), -EINVAL);
    ck_assert_int_eq(f.kind, PANTS__FRAME_REGEX);
    ck_assert_ptr_eq(f.u.regex.code, code);
    ck_assert_int_eq(scan(&f, "abEEND", 6, &skip, &err), 2);
    ck_assert_uint_eq(skip, 4);
    pants__framer_deinit(&f);
}
END_TEST

START_TEST(test_invalid_keeps_exact)
{
    pants__framer_t f;
    size_t skip;
    int err = 0;

    pants__framer_init(&f);
    ck_assert_int_eq(pants__framer_set_exact(&f, 2), 0);
    ck_assert_int_eq(pants__framer_set_exact(&f, 0), -EINVAL);
    ck_assert_int_eq(pants__framer_set_regex(&f, "b?"), -EINVAL);
    ck_assert_int_eq(f.kind, PANTS__FRAME_EXACT);
    ck_assert_uint_eq(f.u.exact, 2);
    ck_assert_int_eq(scan(&f, "abc", 3, &skip, &err), 2);
    pants__framer_deinit(&f);
}
END_TEST

/* ---- switching and limits --------------------------------------------- */

START_TEST(test_switch_kinds)
{
    pants__framer_t f;
    size_t skip;
    int err = 0;

    pants__framer_init(&f);
    ck_assert_int_eq(pants__framer_set_until(&f, "--", 2), 0);
    ck_assert_int_eq(scan(&f, "abc", 3, &skip, &err), PANTS__FRAME_NEED_MORE);
    ck_assert_int_eq(pants__framer_set_regex(&f, "-+"), 0); /* frees the delimiter */
    ck_assert_uint_eq(f.scanned, 0);
    ck_assert_int_eq(scan(&f, "ab-c", 4, &skip, &err), 2);
    ck_assert_int_eq(pants__framer_set_regex(&f, ";"), 0); /* frees the old regex */
    ck_assert_int_eq(scan(&f, "ab-c", 4, &skip, &err), PANTS__FRAME_NEED_MORE);
    ck_assert_uint_eq(f.scanned, 4);
    ck_assert_int_eq(pants__framer_set_exact(&f, 3), 0); /* frees the regex */
    ck_assert_uint_eq(f.scanned, 0);
    ck_assert_int_eq(scan(&f, "ab-c", 4, &skip, &err), 3);
    ck_assert_int_eq(pants__framer_set_framed(&f, semicolon_framer, NULL), 0);
    ck_assert_int_eq(scan(&f, "a;", 2, &skip, &err), 1);
    ck_assert_int_eq(pants__framer_set_until(&f, "\n", 1), 0);
    ck_assert_int_eq(pants__framer_set_until(&f, "\r\n", 2), 0); /* frees "\n" */
    ck_assert_int_eq(scan(&f, "a\nb\r\n", 5, &skip, &err), 3);
    ck_assert_int_eq(pants__framer_set_any(&f), 0);
    ck_assert_int_eq(scan(&f, "a\nb\r\n", 5, &skip, &err), 5);
    ck_assert_int_eq(pants__framer_set_regex(&f, "x"), 0);
    pants__framer_deinit(&f); /* frees the regex */
    ck_assert_int_eq(f.kind, PANTS__FRAME_ANY);
    pants__framer_deinit(&f); /* twice is harmless */
}
END_TEST

START_TEST(test_min_limit)
{
    pants__framer_t f;

    pants__framer_init(&f);
    ck_assert_uint_eq(pants__framer_min_limit(&f), 1);
    ck_assert_int_eq(pants__framer_set_until(&f, "\r\n\r\n", 4), 0);
    ck_assert_uint_eq(pants__framer_min_limit(&f), 4);
    ck_assert_int_eq(pants__framer_set_exact(&f, 100000), 0);
    ck_assert_uint_eq(pants__framer_min_limit(&f), 100000);
    ck_assert_int_eq(pants__framer_set_regex(&f, "abcdef"), 0);
    ck_assert_uint_eq(pants__framer_min_limit(&f), 1);
    ck_assert_int_eq(pants__framer_set_framed(&f, semicolon_framer, NULL), 0);
    ck_assert_uint_eq(pants__framer_min_limit(&f), 1);
    pants__framer_deinit(&f);
}
END_TEST

/* ---- evbuffer --------------------------------------------------------- */

/* An evbuffer holding each piece in its own chain. */
static struct evbuffer *chained(const char *const *pieces, size_t n)
{
    struct evbuffer *b = evbuffer_new();

    ck_assert_ptr_nonnull(b);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(evbuffer_add_reference(b, pieces[i], strlen(pieces[i]), NULL, NULL), 0);
    ck_assert_int_eq(evbuffer_peek(b, -1, NULL, NULL, 0), (int)n);
    return b;
}

START_TEST(test_evbuffer_multichain)
{
    static const char *const pieces[] = {"hel", "lo\r", "\nwor", "ld"};
    struct evbuffer *b = chained(pieces, 4);
    const unsigned char *data = NULL;
    pants__framer_t f;
    size_t skip;
    int err = 0;

    pants__framer_init(&f);
    ck_assert_int_eq(pants__framer_set_until(&f, "\r\n", 2), 0);
    ck_assert_int_eq(pants__framer_scan_evbuffer(&f, b, &data, &skip, &err), 5);
    ck_assert_uint_eq(skip, 2);
    ck_assert_mem_eq(data, "hello", 5);
    ck_assert_uint_eq(evbuffer_get_length(b), 12); /* never drains */
    ck_assert_int_eq(evbuffer_drain(b, 7), 0);
    pants__framer_consumed(&f);
    ck_assert_int_eq(pants__framer_scan_evbuffer(&f, b, &data, &skip, &err), PANTS__FRAME_NEED_MORE);
    ck_assert_uint_eq(f.scanned, 5);
    ck_assert_int_eq(evbuffer_add_reference(b, "\r", 1, NULL, NULL), 0);
    ck_assert_int_eq(pants__framer_scan_evbuffer(&f, b, &data, &skip, &err), PANTS__FRAME_NEED_MORE);
    ck_assert_int_eq(evbuffer_add_reference(b, "\n", 1, NULL, NULL), 0);
    ck_assert_int_eq(pants__framer_scan_evbuffer(&f, b, &data, &skip, &err), 5);
    ck_assert_mem_eq(data, "world", 5);
    pants__framer_deinit(&f);
    evbuffer_free(b);
}
END_TEST

START_TEST(test_evbuffer_regex_and_empty)
{
    static const char *const pieces[] = {"12", "3x", "y;", "z"};
    struct evbuffer *b = evbuffer_new();
    const unsigned char *data = NULL;
    pants__framer_t f;
    size_t skip;
    int err = 0;

    ck_assert_ptr_nonnull(b);
    pants__framer_init(&f);
    ck_assert_int_eq(pants__framer_set_regex(&f, "x+y+;"), 0);
    ck_assert_int_eq(pants__framer_scan_evbuffer(&f, b, &data, &skip, &err), PANTS__FRAME_NEED_MORE);
    evbuffer_free(b);
    b = chained(pieces, 4);
    ck_assert_int_eq(pants__framer_scan_evbuffer(&f, b, &data, &skip, &err), 3);
    ck_assert_uint_eq(skip, 3);
    ck_assert_mem_eq(data, "123", 3);
    pants__framer_deinit(&f);
    evbuffer_free(b);
}
END_TEST

START_TEST(test_evbuffer_exact_and_framed)
{
    static const char *const pieces[] = {"2a", "b1", "c3"};
    struct evbuffer *b = chained(pieces, 3);
    const unsigned char *data = NULL;
    pants__framer_t f;
    size_t skip;
    int err = 0;

    pants__framer_init(&f);
    ck_assert_int_eq(pants__framer_set_framed(&f, digit_framer, NULL), 0);
    ck_assert_int_eq(pants__framer_scan_evbuffer(&f, b, &data, &skip, &err), 3);
    ck_assert_mem_eq(data, "2ab", 3);
    ck_assert_int_eq(evbuffer_drain(b, 3), 0);
    ck_assert_int_eq(pants__framer_scan_evbuffer(&f, b, &data, &skip, &err), 2);
    ck_assert_mem_eq(data, "1c", 2);
    ck_assert_int_eq(evbuffer_drain(b, 2), 0);
    ck_assert_int_eq(pants__framer_scan_evbuffer(&f, b, &data, &skip, &err), PANTS__FRAME_NEED_MORE);
    ck_assert_int_eq(pants__framer_set_exact(&f, 1), 0);
    ck_assert_int_eq(pants__framer_scan_evbuffer(&f, b, &data, &skip, &err), 1);
    ck_assert_mem_eq(data, "3", 1);
    pants__framer_deinit(&f);
    evbuffer_free(b);
}
END_TEST

/* ---- perf: 1 MiB one byte at a time ----------------------------------- */

/* A MiB of 'x' followed by delim. */
static char *big_line(const char *delim, size_t *len)
{
    size_t dlen = strlen(delim);
    char *p = malloc(MIB + dlen);

    ck_assert_ptr_nonnull(p);
    memset(p, 'x', MIB);
    memcpy(p + MIB, delim, dlen);
    *len = MIB + dlen;
    return p;
}

/* Feed the line a byte at a time: NEED_MORE, each searched byte counted
 * once, until the delimiter completes a 1 MiB frame. */
static void feed_big_line(pants__framer_t *f, const char *delim)
{
    size_t len, skip;
    char *line = big_line(delim, &len);
    int err = 0;

    for (size_t i = 1; i <= MIB; i++) {
        ssize_t n = scan(f, line, i, &skip, &err);
        if (n != PANTS__FRAME_NEED_MORE || f->scanned != i)
            ck_abort_msg("byte %zu: %zd, scanned %zu", i, n, f->scanned);
    }
    for (size_t i = MIB + 1; i < len; i++)
        ck_assert_int_eq(scan(f, line, i, &skip, &err), PANTS__FRAME_NEED_MORE);
    ck_assert_int_eq(scan(f, line, len, &skip, &err), (ssize_t)MIB);
    ck_assert_uint_eq(skip, strlen(delim));
    free(line);
}

START_TEST(test_perf_until_byte)
{
    pants__framer_t f;

    pants__framer_init(&f);
    ck_assert_int_eq(pants__framer_set_until(&f, "\n", 1), 0);
    feed_big_line(&f, "\n");
    pants__framer_deinit(&f);
}
END_TEST

START_TEST(test_perf_until_crlf)
{
    pants__framer_t f;

    pants__framer_init(&f);
    ck_assert_int_eq(pants__framer_set_until(&f, "\r\n\r\n", 4), 0);
    feed_big_line(&f, "\r\n\r\n");
    pants__framer_deinit(&f);
}
END_TEST

START_TEST(test_perf_regex)
{
    pants__framer_t f;

    pants__framer_init(&f);
    ck_assert_int_eq(pants__framer_set_regex(&f, "\\r\\n|\\n"), 0);
    feed_big_line(&f, "\n");
    pants__framer_consumed(&f);
    ck_assert_int_eq(pants__framer_set_regex(&f, "END+"), 0);
    feed_big_line(&f, "END");
    pants__framer_deinit(&f);
}
END_TEST

Suite *framer_suite(void);

Suite *framer_suite(void)
{
    Suite *s = suite_create("framer");
    TCase *core = tcase_create("core");
    TCase *perf = tcase_create("perf");

    tcase_add_test(core, test_any_default);
    tcase_add_test(core, test_any_after_other_kind);
    tcase_add_test(core, test_until_whole);
    tcase_add_test(core, test_until_many_frames);
    tcase_add_test(core, test_until_bytewise_scanned);
    tcase_add_test(core, test_until_crlf_split);
    tcase_add_test(core, test_until_overlapping_delimiter);
    tcase_add_test(core, test_until_binary_delimiter);
    tcase_add_test(core, test_until_delimiter_is_copied);
    tcase_add_test(core, test_exact_frames);
    tcase_add_test(core, test_exact_one);
    tcase_add_test(core, test_regex_alternation);
    tcase_add_test(core, test_regex_partial_crlf);
    tcase_add_test(core, test_regex_partial_then_cut_at_once);
    tcase_add_test(core, test_regex_no_rescan);
    tcase_add_test(core, test_regex_lookbehind_across_feeds);
    tcase_add_test(core, test_regex_first_complete_match);
    tcase_add_test(core, test_regex_utf8_split);
    tcase_add_test(core, test_regex_limit_is_e2big);
    tcase_add_test(core, test_regex_depth_is_e2big);
    tcase_add_test(core, test_regex_budget_per_frame);
    tcase_add_test(core, test_framed_length_prefix);
    tcase_add_test(core, test_framed_skip);
    tcase_add_test(core, test_framed_error);
    tcase_add_test(core, test_framed_too_long);
    tcase_add_test(core, test_invalid_keeps_until);
    tcase_add_test(core, test_invalid_keeps_regex);
    tcase_add_test(core, test_invalid_keeps_exact);
    tcase_add_test(core, test_switch_kinds);
    tcase_add_test(core, test_min_limit);
    tcase_add_test(core, test_evbuffer_multichain);
    tcase_add_test(core, test_evbuffer_regex_and_empty);
    tcase_add_test(core, test_evbuffer_exact_and_framed);
    suite_add_tcase(s, core);

    tcase_add_test(perf, test_perf_until_byte);
    tcase_add_test(perf, test_perf_until_crlf);
    tcase_add_test(perf, test_perf_regex);
    suite_add_tcase(s, perf);
    return s;
}
