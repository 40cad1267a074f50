/* check_resp.c -- unit tests of examples/resp.c, the RESP parser and reply
 * builders of examples/kv (a Check program of its own: tests/check_resp).
 *
 * The parser must not care how its input is cut: every sample, alone and
 * all of them pipelined, is fed whole, cut at every byte boundary, a byte
 * at a time and in odd steps, and must give the same requests, the same
 * error, the same unfinished tail.  Between calls the test moves the
 * unfinished request to a fresh allocation, as kv.c may, so an argument
 * pointing at old bytes shows up under AddressSanitizer.  Then every bound
 * and malformation gives its error code; random and mutated input (a
 * fixed seed, a bounded loop) must give the same result however it is
 * cut; and input a byte at a time must take linear time.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "resp.h"

/* What a parse produced, as text: "argc:len=bytes,len=bytes|" per request,
 * then "E<code>" for an error or "+<n>" for n unparsed bytes. */
struct out {
    char *s;    /* the text */
    size_t len; /* its length */
    size_t cap; /* its room */
};

static void out_add(struct out *o, const void *p, size_t n)
{
    if (o->len + n + 1 > o->cap) {
        o->cap = (o->len + n + 1) * 2;
        o->s = realloc(o->s, o->cap);
        ck_assert_ptr_nonnull(o->s);
    }
    memcpy(o->s + o->len, p, n);
    o->len += n;
    o->s[o->len] = '\0';
}

/* A number with a one-character prefix ("E", "+") or suffix (":", "="). */
static void out_num(struct out *o, const char *pre, size_t v, const char *post)
{
    char buf[48];
    int n = snprintf(buf, sizeof(buf), "%s%zu%s", pre, v, post);
    out_add(o, buf, (size_t)n);
}

static void out_request(struct out *o, const resp_parser_t *p)
{
    out_num(o, "", p->argc, ":");
    for (size_t i = 0; i < p->argc; i++) {
        out_num(o, "", p->argv[i].len, "=");
        out_add(o, p->argv[i].ptr, p->argv[i].len);
        out_add(o, ",", 1);
    }
    out_add(o, "|", 1);
}

/* Parse data[0..len) arriving in pieces that end at cuts[] (ascending),
 * then the rest, into o.  The unfinished request moves to a new buffer
 * before each call. */
static void feed(const char *data, size_t len, const size_t *cuts, size_t ncuts, const resp_limits_t *lim,
                 struct out *o)
{
    resp_parser_t p;
    size_t done = 0;

    resp_parser_init(&p, lim);
    o->len = 0;
    out_add(o, "", 0);
    for (size_t c = 0; c <= ncuts; c++) {
        size_t arrived = c < ncuts ? cuts[c] : len;
        for (;;) {
            size_t n = arrived - done;
            char *copy = malloc(n ? n : 1);
            memcpy(copy, data + done, n);
            ssize_t r = resp_parse(&p, copy, n);
            if (r > 0)
                out_request(o, &p);
            free(copy);
            if (r == RESP_ERROR) {
                out_num(o, "E", (size_t)p.err, "");
                resp_parser_deinit(&p);
                return;
            }
            if (r == RESP_NEED_MORE)
                break;
            ck_assert_int_gt(r, 0);
            done += (size_t)r;
        }
    }
    out_num(o, "+", len - done, "");
    resp_parser_deinit(&p);
}

static void parse_whole(const char *data, size_t len, const resp_limits_t *lim, struct out *o)
{
    feed(data, len, NULL, 0, lim, o);
}

/* Cut in two at every boundary, a byte at a time, and in steps of 2, 3, 5
 * and 7: each gives what the whole does. */
static void check_every_cut(const char *data, size_t len, const resp_limits_t *lim)
{
    static const size_t steps[] = {1, 2, 3, 5, 7};
    struct out whole = {0}, cut = {0};
    size_t *cuts = malloc((len + 1) * sizeof(*cuts));

    parse_whole(data, len, lim, &whole);
    for (size_t k = 0; k <= len; k++) {
        feed(data, len, &k, 1, lim, &cut);
        ck_assert_msg(strcmp(whole.s, cut.s) == 0, "cut at %zu: %s, whole: %s", k, cut.s, whole.s);
    }
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        size_t n = 0;
        for (size_t at = steps[i]; at < len; at += steps[i])
            cuts[n++] = at;
        feed(data, len, cuts, n, lim, &cut);
        ck_assert_msg(strcmp(whole.s, cut.s) == 0, "steps of %zu: %s, whole: %s", steps[i], cut.s, whole.s);
    }
    free(cuts);
    free(whole.s);
    free(cut.s);
}

/* ---- Samples ---------------------------------------------------------- */

static const struct {
    const char *in;   /* a request (or a few) */
    const char *want; /* what parse_whole gives */
} samples[] = {
    {"*1\r\n$4\r\nPING\r\n", "1:4=PING,|+0"},
    {"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n", "3:3=SET,3=key,5=value,|+0"},
    {"*2\r\n$3\r\nGET\r\n$0\r\n\r\n", "2:3=GET,0=,|+0"},
    {"*2\r\n$4\r\nECHO\r\n$8\r\n*1\r\n$1\r\n\r\n", "2:4=ECHO,8=*1\r\n$1\r\n,|+0"},
    {"*0\r\n", "0:|+0"},
    {"*-1\r\n", "0:|+0"},
    {"PING\r\n", "1:4=PING,|+0"},
    {"PING\n", "1:4=PING,|+0"},
    {"\r\n", "0:|+0"},
    {"  SET   k  v  \r\n", "3:3=SET,1=k,1=v,|+0"},
    {"SET k \"a b\\x41\\n\\\"\"\r\n", "3:3=SET,1=k,6=a bA\n\",|+0"},
    {"ECHO 'it\\'s'\r\n", "2:4=ECHO,4=it's,|+0"},
    {"ECHO \"\"\r\n", "2:4=ECHO,0=,|+0"},
    {"ECHO a\"b c\"\r\n", "2:4=ECHO,4=ab c,|+0"},
    {"GET k\r\nGET", "2:3=GET,1=k,|+3"},
    {"*2\r\n$3\r\nGET\r\n$1\r\nk", "+18"},
};

START_TEST(test_samples)
{
    struct out o = {0};
    const char *in = samples[_i].in, *want = samples[_i].want;

    parse_whole(in, strlen(in), NULL, &o);
    ck_assert_msg(o.len == strlen(want) && memcmp(o.s, want, o.len) == 0, "%s: got %s, want %s", in, o.s,
                  want);
    check_every_cut(in, strlen(in), NULL);
    free(o.s);
}
END_TEST

/* Every sample but the last (unfinished) one, in one pipeline. */
START_TEST(test_pipelined)
{
    size_t n = sizeof(samples) / sizeof(samples[0]) - 2, len = 0;
    char buf[1024];
    struct out o = {0};

    for (size_t i = 0; i < n; i++) {
        memcpy(buf + len, samples[i].in, strlen(samples[i].in));
        len += strlen(samples[i].in);
    }
    parse_whole(buf, len, NULL, &o);
    ck_assert_str_eq(o.s + o.len - 2, "+0");
    ck_assert_int_eq(strstr(o.s, "3:3=SET,3=key,5=value,|") != NULL, 1);
    check_every_cut(buf, len, NULL);
    free(o.s);
}
END_TEST

/* Binary bulk strings: NUL, CR, LF inside. */
START_TEST(test_binary)
{
    static const char in[] = "*2\r\n$4\r\nECHO\r\n$5\r\na\0\r\nb\r\n";
    resp_parser_t p;

    resp_parser_init(&p, NULL);
    ck_assert_int_eq(resp_parse(&p, in, sizeof(in) - 1), sizeof(in) - 1);
    ck_assert_uint_eq(p.argc, 2);
    ck_assert_uint_eq(p.argv[1].len, 5);
    ck_assert_mem_eq(p.argv[1].ptr, "a\0\r\nb", 5);
    check_every_cut(in, sizeof(in) - 1, NULL);
    resp_parser_deinit(&p);
}
END_TEST

/* ---- Errors ----------------------------------------------------------- */

static const resp_limits_t small = {.max_bulk = 10, .max_args = 3, .max_inline = 16, .max_request = 48};

static const struct {
    const char *in;           /* the input */
    int err;                  /* the error, or RESP_OK when it parses */
    const resp_limits_t *lim; /* bounds; NULL = the defaults */
} errors[] = {
    {"*abc\r\n", RESP_EMBULK_LEN, NULL},
    {"*\r\n", RESP_EMBULK_LEN, NULL},
    {"*01\r\n", RESP_EMBULK_LEN, NULL},
    {"*+1\r\n", RESP_EMBULK_LEN, NULL},
    {"* 1\r\n", RESP_EMBULK_LEN, NULL},
    {"*1\rx", RESP_EMBULK_LEN, NULL},
    {"*99999999999999999999999\r\n", RESP_EMBULK_LEN, NULL},
    {"*1048577\r\n", RESP_EMBULK_LEN, NULL},
    {"*4\r\n", RESP_EMBULK_LEN, &small},
    {"*1\r\n$-1\r\n", RESP_EBULK_LEN, NULL},
    {"*1\r\n$-0\r\n", RESP_EBULK_LEN, NULL},
    {"*1\r\n$\r\n", RESP_EBULK_LEN, NULL},
    {"*1\r\n$x\r\n", RESP_EBULK_LEN, NULL},
    {"*1\r\n$1\rx", RESP_EBULK_LEN, NULL},
    {"*1\r\n$67108865\r\n", RESP_EBULK_LEN, NULL},
    {"*1\r\n$11\r\n", RESP_EBULK_LEN, &small},
    {"*1\r\n$9223372036854775808\r\n", RESP_EBULK_LEN, NULL},
    {"*1\r\nPING\r\n", RESP_EDOLLAR, NULL},
    {"*1\r\n\r\n", RESP_EDOLLAR, NULL},
    {"*1\r\n$4\r\nPINGxx", RESP_EBULK_CRLF, NULL},
    {"*1\r\n$4\r\nPING\rx", RESP_EBULK_CRLF, NULL},
    {"*1\r\n$4\r\nPING\n\r", RESP_EBULK_CRLF, NULL},
    {"*100000000000000000", RESP_EMBULK_LINE, &small},
    {"*1\r\n$000000000000000005", RESP_EBULK_LINE, &small},
    {"PING xxxxxxxxxxxxxxxxxxxxxxxxxxxx", RESP_EINLINE_LEN, &small},
    {"PING xxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n", RESP_EINLINE_LEN, &small},
    {"ECHO \"abc\r\n", RESP_EQUOTES, NULL},
    {"ECHO 'abc\r\n", RESP_EQUOTES, NULL},
    {"ECHO \"abc\"x\r\n", RESP_EQUOTES, NULL},
    {"*3\r\n$10\r\n0123456789\r\n$10\r\n0123456789\r\n$10\r\n0123456789\r\n", RESP_EREQUEST_LEN, &small},
    /* just within the bounds */
    {"*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n", RESP_OK, &small},
    {"*1\r\n$10\r\n0123456789\r\n", RESP_OK, &small},
    {"PING xxxxxxxxxx\r\n", RESP_OK, &small},
    {"*1\r\n$0000000000000001\r\nx\r\n", RESP_EBULK_LEN, NULL},
};

START_TEST(test_errors)
{
    const char *in = errors[_i].in;
    resp_parser_t p;
    ssize_t r;

    resp_parser_init(&p, errors[_i].lim);
    r = resp_parse(&p, in, strlen(in));
    if (errors[_i].err == RESP_OK) {
        ck_assert_msg(r == (ssize_t)strlen(in), "%s: %zd", in, r);
    } else {
        ck_assert_msg(r == RESP_ERROR, "%s: %zd", in, r);
        ck_assert_msg((int)p.err == errors[_i].err, "%s: error %d, want %d", in, p.err, errors[_i].err);
    }
    check_every_cut(in, strlen(in), errors[_i].lim);
    resp_parser_deinit(&p);
}
END_TEST

/* The parser can be used again after an error. */
START_TEST(test_reset_after_error)
{
    resp_parser_t p;

    resp_parser_init(&p, NULL);
    ck_assert_int_eq(resp_parse(&p, "*1\r\n$x\r\n", 8), RESP_ERROR);
    ck_assert_int_eq(resp_is_partial(&p), 0);
    ck_assert_int_eq(resp_parse(&p, "PING\r\n", 6), 6);
    ck_assert_uint_eq(p.argc, 1);
    resp_parser_deinit(&p);
}
END_TEST

START_TEST(test_strerror)
{
    resp_parser_t p;
    char buf[128];

    resp_parser_init(&p, NULL);
    ck_assert_int_eq(resp_parse(&p, "*1\r\nx\r\n", 7), RESP_ERROR);
    ck_assert_str_eq(resp_strerror(&p, buf, sizeof(buf)), "Protocol error: expected '$', got 'x'");
    ck_assert_int_eq(resp_parse(&p, "*x\r\n", 4), RESP_ERROR);
    ck_assert_str_eq(resp_strerror(&p, buf, sizeof(buf)), "Protocol error: invalid multibulk length");
    ck_assert_int_eq(resp_parse(&p, "*1\r\n$-5\r\n", 9), RESP_ERROR);
    ck_assert_str_eq(resp_strerror(&p, buf, sizeof(buf)), "Protocol error: invalid bulk length");
    ck_assert_int_eq(resp_parse(&p, "'\r\n", 3), RESP_ERROR);
    ck_assert_str_eq(resp_strerror(&p, buf, sizeof(buf)), "Protocol error: unbalanced quotes in request");
    for (int e = RESP_OK; e <= RESP_ENOMEM; e++) {
        p.err = (enum resp_err)e;
        ck_assert_int_eq(strncmp(resp_strerror(&p, buf, sizeof(buf)), "Protocol error: ", 16), 0);
        ck_assert_ptr_null(strstr(buf, "unknown"));
    }
    resp_parser_deinit(&p);
}
END_TEST

/* ---- Random input ----------------------------------------------------- */

static uint64_t rng = 0x9E3779B97F4A7C15ull; /* fixed seed: a failure repeats */

static uint32_t next_random(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

/* Random bytes, mostly the protocol's own, or a sample with a few bytes
 * changed; any of them, whatever it does, does it however it is cut. */
START_TEST(test_random)
{
    static const char alphabet[] = "*$\r\n0123456789-+ \"'\\xab";
    char buf[256];

    for (int iter = 0; iter < 1500; iter++) {
        size_t len = next_random() % sizeof(buf);
        if (iter % 2 == 0) {
            for (size_t i = 0; i < len; i++)
                buf[i] = next_random() % 8 == 0 ? (char)next_random()
                                                : alphabet[next_random() % (sizeof(alphabet) - 1)];
        } else {
            const char *s = samples[next_random() % (sizeof(samples) / sizeof(samples[0]))].in;
            len = strlen(s);
            memcpy(buf, s, len);
            for (int k = 0; k < 2; k++)
                buf[next_random() % len] = alphabet[next_random() % (sizeof(alphabet) - 1)];
        }
        size_t cuts[8], n = next_random() % 8;
        struct out whole = {0}, cut = {0};
        for (size_t i = 0; i < n; i++)
            cuts[i] = len ? next_random() % len : 0;
        for (size_t i = 1; i < n; i++) /* ascending */
            for (size_t j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
                size_t t = cuts[j];
                cuts[j] = cuts[j - 1];
                cuts[j - 1] = t;
            }
        parse_whole(buf, len, iter % 3 ? NULL : &small, &whole);
        feed(buf, len, cuts, n, iter % 3 ? NULL : &small, &cut);
        ck_assert_msg(strcmp(whole.s, cut.s) == 0, "iteration %d: %s vs %s", iter, whole.s, cut.s);
        free(whole.s);
        free(cut.s);
    }
}
END_TEST

/* ---- Linear time ------------------------------------------------------ */

/* Feed data a byte at a time without copying; the result of the last call. */
static ssize_t trickle(resp_parser_t *p, const char *data, size_t len)
{
    ssize_t r = RESP_NEED_MORE;

    for (size_t n = 1; n <= len && r == RESP_NEED_MORE; n++)
        r = resp_parse(p, data, n);
    return r;
}

/* A 4 MiB bulk string and a 60 KiB inline line, a byte at a time: with a
 * parser that looks at everything again on each call, this takes minutes
 * and trips the timeout. */
START_TEST(test_linear)
{
    size_t big = 4u << 20, len;
    char *buf = malloc(big + 64);
    resp_parser_t p;

    resp_parser_init(&p, NULL);
    len = (size_t)sprintf(buf, "*2\r\n$4\r\nECHO\r\n$%zu\r\n", big);
    memset(buf + len, 'x', big);
    memcpy(buf + len + big, "\r\n", 2);
    ck_assert_int_eq(trickle(&p, buf, len + big + 2), (ssize_t)(len + big + 2));
    ck_assert_uint_eq(p.argv[1].len, big);
    memset(buf, 'y', 60000);
    memcpy(buf + 60000, "\r\n", 2);
    ck_assert_int_eq(trickle(&p, buf, 60002), 60002);
    ck_assert_uint_eq(p.argc, 1);
    ck_assert_int_eq(trickle(&p, "*1\r\n$", 5), RESP_NEED_MORE);
    ck_assert_uint_eq(resp_needed(&p), 0);
    resp_parser_deinit(&p);
    free(buf);
}
END_TEST

/* resp_needed: the whole request's length once its bulk length is known. */
START_TEST(test_needed)
{
    resp_parser_t p;
    const char *in = "*2\r\n$3\r\nGET\r\n$100\r\nabc";

    resp_parser_init(&p, NULL);
    ck_assert_int_eq(resp_parse(&p, in, strlen(in)), RESP_NEED_MORE);
    ck_assert_int_eq(resp_is_partial(&p), 1);
    ck_assert_uint_eq(resp_needed(&p), strlen(in) - 3 + 102);
    resp_parser_deinit(&p);
}
END_TEST

/* ---- Numbers and replies --------------------------------------------- */

START_TEST(test_parse_ll)
{
    static const struct {
        const char *s; /* input */
        bool ok;       /* parses */
        long long v;   /* to this */
    } cases[] = {
        {"0", true, 0},
        {"1", true, 1},
        {"-1", true, -1},
        {"9223372036854775807", true, LLONG_MAX},
        {"-9223372036854775808", true, LLONG_MIN},
        {"9223372036854775808", false, 0},
        {"-9223372036854775809", false, 0},
        {"18446744073709551616", false, 0},
        {"", false, 0},
        {"-", false, 0},
        {"-0", false, 0},
        {"01", false, 0},
        {"+1", false, 0},
        {" 1", false, 0},
        {"1 ", false, 0},
        {"1a", false, 0},
        {"000000000000000000001", false, 0},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        long long v = 12345;
        bool ok = resp_parse_ll(cases[i].s, strlen(cases[i].s), &v);
        ck_assert_msg(ok == cases[i].ok, "%s", cases[i].s);
        if (ok)
            ck_assert_msg(v == cases[i].v, "%s: %lld", cases[i].s, v);
    }
}
END_TEST

START_TEST(test_ll_to_str)
{
    char buf[24];
    long long vs[] = {0, 7, -7, 1234567890123LL, LLONG_MAX, LLONG_MIN};

    for (size_t i = 0; i < sizeof(vs) / sizeof(vs[0]); i++) {
        char want[24];
        size_t n = resp_ll_to_str(vs[i], buf);
        snprintf(want, sizeof(want), "%lld", vs[i]);
        ck_assert_uint_eq(n, strlen(want));
        ck_assert_mem_eq(buf, want, n);
    }
}
END_TEST

START_TEST(test_replies)
{
    static const char want[] =
        "+OK\r\n-ERR a  b\r\n:-42\r\n$3\r\na\0b\r\n$0\r\n\r\n$-1\r\n*2\r\n$2\r\nhi\r\n";
    resp_buf_t b;

    resp_buf_init(&b);
    resp_add_status(&b, "OK");
    resp_add_error(&b, "ERR a\r\nb");
    resp_add_int(&b, -42);
    resp_add_bulk(&b, "a\0b", 3);
    resp_add_bulk(&b, "", 0);
    resp_add_nil(&b);
    resp_add_array(&b, 2);
    resp_add_bulk_str(&b, "hi");
    ck_assert_uint_eq(b.len, sizeof(want) - 1);
    ck_assert_mem_eq(b.data, want, b.len);
    ck_assert_int_eq(b.oom, 0);
    for (int i = 0; i < 10000; i++) /* grows */
        resp_add_bulk(&b, "0123456789", 10);
    ck_assert_uint_eq(b.len, sizeof(want) - 1 + 10000 * 17);
    resp_buf_deinit(&b);
}
END_TEST

static Suite *resp_suite(void)
{
    Suite *s = suite_create("resp");
    TCase *tc = tcase_create("parse");

    tcase_add_loop_test(tc, test_samples, 0, sizeof(samples) / sizeof(samples[0]));
    tcase_add_test(tc, test_pipelined);
    tcase_add_test(tc, test_binary);
    tcase_add_loop_test(tc, test_errors, 0, sizeof(errors) / sizeof(errors[0]));
    tcase_add_test(tc, test_reset_after_error);
    tcase_add_test(tc, test_strerror);
    tcase_add_test(tc, test_random);
    tcase_add_test(tc, test_needed);
    tcase_add_test(tc, test_linear);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);

    tc = tcase_create("build");
    tcase_add_test(tc, test_parse_ll);
    tcase_add_test(tc, test_ll_to_str);
    tcase_add_test(tc, test_replies);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(resp_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
