/* check_addr.c -- pants_addr_parse and pants_addr_format.
 *
 * Parsing is numeric only: IPv4 "a.b.c.d:port", IPv6 "[v6]:port", the
 * every-interface forms ":port" and "*:port" (IPv6 any), Unix paths and
 * Linux abstract names, whose length is exact (not padded).  Anything else,
 * host names included, is -EINVAL.  Formatting is the inverse for every
 * form, reports a short buffer with -ENOSPC (leaving a NUL-terminated
 * string) and an unknown family with -EAFNOSUPPORT.  No sockets, no
 * engine: these are pure functions.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/un.h>

#include <check.h>

#include "testutil.h"

#define SUN_OFF offsetof(struct sockaddr_un, sun_path)

static const struct sockaddr_in *v4(const pants_addr_t *a)
{
    return (const struct sockaddr_in *)&a->ss;
}

static const struct sockaddr_in6 *v6(const pants_addr_t *a)
{
    return (const struct sockaddr_in6 *)&a->ss;
}

static const struct sockaddr_un *un(const pants_addr_t *a)
{
    return (const struct sockaddr_un *)&a->ss;
}

/* A string of n copies of c. */
static char *repeat(char *buf, char c, size_t n)
{
    memset(buf, c, n);
    buf[n] = '\0';
    return buf;
}

/* Checked teardown: pure functions leave nothing alive. */
static void no_live_objects(void)
{
    ck_assert_int_eq(pants_live_objects(), 0);
}

/* ---- Parsing ---------------------------------------------------------- */

START_TEST(test_parse_ipv4)
{
    pants_addr_t a;

    ck_assert_int_eq(pants_addr_parse(&a, "127.0.0.1:80"), 0);
    ck_assert_int_eq(a.ss.ss_family, AF_INET);
    ck_assert_uint_eq(a.len, sizeof(struct sockaddr_in));
    ck_assert_uint_eq(ntohs(v4(&a)->sin_port), 80);
    ck_assert_uint_eq(ntohl(v4(&a)->sin_addr.s_addr), INADDR_LOOPBACK);

    ck_assert_int_eq(pants_addr_parse(&a, "0.0.0.0:0"), 0);
    ck_assert_uint_eq(ntohs(v4(&a)->sin_port), 0);
    ck_assert_uint_eq(v4(&a)->sin_addr.s_addr, htonl(INADDR_ANY));

    ck_assert_int_eq(pants_addr_parse(&a, "255.255.255.255:65535"), 0);
    ck_assert_uint_eq(ntohs(v4(&a)->sin_port), 65535);
    ck_assert_uint_eq(v4(&a)->sin_addr.s_addr, 0xffffffffu);
}
END_TEST

START_TEST(test_parse_ipv6)
{
    pants_addr_t a;
    struct in6_addr want;

    ck_assert_int_eq(pants_addr_parse(&a, "[::1]:8080"), 0);
    ck_assert_int_eq(a.ss.ss_family, AF_INET6);
    ck_assert_uint_eq(a.len, sizeof(struct sockaddr_in6));
    ck_assert_uint_eq(ntohs(v6(&a)->sin6_port), 8080);
    ck_assert(IN6_IS_ADDR_LOOPBACK(&v6(&a)->sin6_addr));

    ck_assert_int_eq(pants_addr_parse(&a, "[2001:db8::7]:1"), 0);
    ck_assert_int_eq(inet_pton(AF_INET6, "2001:db8::7", &want), 1);
    ck_assert_mem_eq(&v6(&a)->sin6_addr, &want, sizeof(want));
    ck_assert_uint_eq(ntohs(v6(&a)->sin6_port), 1);

    ck_assert_int_eq(pants_addr_parse(&a, "[::ffff:10.1.2.3]:443"), 0);
    ck_assert(IN6_IS_ADDR_V4MAPPED(&v6(&a)->sin6_addr));
}
END_TEST

START_TEST(test_parse_any)
{
    static const char *const forms[] = {":8080", "*:8080"};
    pants_addr_t a;

    for (int i = 0; i < 2; i++) {
        memset(&a, 0xa5, sizeof(a));
        ck_assert_int_eq(pants_addr_parse(&a, forms[i]), 0);
        ck_assert_int_eq(a.ss.ss_family, AF_INET6);
        ck_assert_uint_eq(a.len, sizeof(struct sockaddr_in6));
        ck_assert_uint_eq(ntohs(v6(&a)->sin6_port), 8080);
        ck_assert(IN6_IS_ADDR_UNSPECIFIED(&v6(&a)->sin6_addr));
        ck_assert_uint_eq(v6(&a)->sin6_scope_id, 0);
        ck_assert_uint_eq(v6(&a)->sin6_flowinfo, 0);
    }
}
END_TEST

START_TEST(test_parse_unix_path)
{
    pants_addr_t a;

    ck_assert_int_eq(pants_addr_parse(&a, "unix:/tmp/x.sock"), 0);
    ck_assert_int_eq(a.ss.ss_family, AF_UNIX);
    ck_assert_str_eq(un(&a)->sun_path, "/tmp/x.sock");
    ck_assert_uint_eq(a.len, SUN_OFF + strlen("/tmp/x.sock") + 1);

    ck_assert_int_eq(pants_addr_parse(&a, "unix:rel/y"), 0); /* relative */
    ck_assert_str_eq(un(&a)->sun_path, "rel/y");
}
END_TEST

START_TEST(test_parse_unix_abstract)
{
    pants_addr_t a;

    memset(&a, 0xa5, sizeof(a));
    ck_assert_int_eq(pants_addr_parse(&a, "unix:@name"), 0);
    ck_assert_int_eq(a.ss.ss_family, AF_UNIX);
    ck_assert_uint_eq(a.len, SUN_OFF + 1 + strlen("name"));
    ck_assert_int_eq(un(&a)->sun_path[0], '\0');
    ck_assert_mem_eq(un(&a)->sun_path + 1, "name", 4);

    ck_assert_int_eq(pants_addr_parse(&a, "unix:@x"), 0);
    ck_assert_uint_eq(a.len, SUN_OFF + 2);
}
END_TEST

/* The longest paths that fit sun_path, and one byte more. */
START_TEST(test_parse_unix_length_limits)
{
    char s[300], name[200];
    size_t max = sizeof(((struct sockaddr_un *)0)->sun_path);
    pants_addr_t a;

    /* A path needs its NUL: max - 1 characters. */
    strcpy(s, "unix:/");
    repeat(name, 'p', max - 2);
    strcat(s, name);
    ck_assert_int_eq(pants_addr_parse(&a, s), 0);
    ck_assert_uint_eq(a.len, SUN_OFF + max);
    strcat(s, "p");
    ck_assert_int_eq(pants_addr_parse(&a, s), -EINVAL);

    /* An abstract name has no NUL: max - 1 characters after the leading 0. */
    strcpy(s, "unix:@");
    strcat(s, repeat(name, 'n', max - 1));
    ck_assert_int_eq(pants_addr_parse(&a, s), 0);
    ck_assert_uint_eq(a.len, SUN_OFF + max);
    ck_assert_int_eq(un(&a)->sun_path[0], '\0');
    ck_assert_int_eq(un(&a)->sun_path[max - 1], 'n');
    strcat(s, "n");
    ck_assert_int_eq(pants_addr_parse(&a, s), -EINVAL);
}
END_TEST

START_TEST(test_parse_malformed)
{
    static const char *const bad[] = {
        "",
        "nope",
        "1.2.3.4",
        "1.2.3.4:",
        ":",
        "*:",
        "*",
        "1.2.3.4:65536",
        "1.2.3.4:99999",
        "1.2.3.4:123456",
        "1.2.3.4:-1",
        "1.2.3.4:+80",
        "1.2.3.4: 80",
        "1.2.3.4:80 ",
        "1.2.3.4:8o",
        "1.2.3.4:80:90",
        " 1.2.3.4:80",
        "1.2.3:80",
        "256.1.1.1:80",
        "1.2.3.4.5:80",
        "::1:80",
        "[::1",
        "[::1]",
        "[::1]:",
        "[::1]80",
        "[::1]:65536",
        "[]:80",
        "[zz::1]:80",
        "[1.2.3.4]:80",
        "[::1]]:80",
        "**:80",
        "unix:",
        "unix:@",
        "example.com:80",
        "localhost:80",
        "a.invalid:1",
        "example.com",
    };
    pants_addr_t a;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(pants_addr_parse(&a, bad[i]) == -EINVAL, "\"%s\" was accepted", bad[i]);
}
END_TEST

START_TEST(test_parse_null)
{
    pants_addr_t a;

    ck_assert_int_eq(pants_addr_parse(&a, NULL), -EINVAL);
    ck_assert_int_eq(pants_addr_parse(NULL, "1.2.3.4:80"), -EINVAL);
    ck_assert_int_eq(pants_addr_parse(NULL, "unix:/x"), -EINVAL);
    ck_assert_int_eq(pants_addr_parse(NULL, "[::1]:80"), -EINVAL);
}
END_TEST

/* ---- Formatting ------------------------------------------------------- */

START_TEST(test_format_round_trips)
{
    static const char *const forms[] = {
        "1.2.3.4:80", "127.0.0.1:0",     "255.255.255.255:65535",
        "[::1]:80",   "[2001:db8::7]:1", "[::ffff:10.1.2.3]:443",
        "[::]:8080",  "unix:/p",         "unix:/tmp/some dir/x.sock",
        "unix:@name", "unix:@a",         "unix:rel",
    };
    char buf[200];
    pants_addr_t a;

    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        ck_assert_msg(pants_addr_parse(&a, forms[i]) == 0, "\"%s\" rejected", forms[i]);
        ck_assert_int_eq(pants_addr_format(&a, buf, sizeof(buf)), 0);
        ck_assert_str_eq(buf, forms[i]);
    }
    ck_assert_int_eq(pants_addr_parse(&a, ":8080"), 0);
    ck_assert_int_eq(pants_addr_format(&a, buf, sizeof(buf)), 0);
    ck_assert_str_eq(buf, "[::]:8080");
}
END_TEST

/* An abstract name may hold NUL bytes: the length, not a NUL, ends it. */
START_TEST(test_format_abstract_uses_length)
{
    pants_addr_t a;
    char buf[64];

    ck_assert_int_eq(pants_addr_parse(&a, "unix:@abcdef"), 0);
    a.len = (socklen_t)(SUN_OFF + 1 + 3); /* "abc" only */
    ck_assert_int_eq(pants_addr_format(&a, buf, sizeof(buf)), 0);
    ck_assert_str_eq(buf, "unix:@abc");
}
END_TEST

/* The longest forms of each family fit, one byte less does not. */
START_TEST(test_format_exact_fit)
{
    static const char *const forms[] = {
        "255.255.255.255:65535", "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535", "unix:/abc", "unix:@abc"};
    pants_addr_t a;
    char buf[128];

    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        size_t n = strlen(forms[i]);
        ck_assert_int_eq(pants_addr_parse(&a, forms[i]), 0);
        ck_assert_int_eq(pants_addr_format(&a, buf, n + 1), 0);
        ck_assert_str_eq(buf, forms[i]);
        memset(buf, 'x', sizeof(buf));
        ck_assert_int_eq(pants_addr_format(&a, buf, n), -ENOSPC);
        ck_assert_uint_lt(strnlen(buf, n), n); /* NUL-terminated inside it */
    }
}
END_TEST

START_TEST(test_format_enospc)
{
    static const char *const forms[] = {"1.2.3.4:80", "[::1]:80", "unix:/p", "unix:@name"};
    pants_addr_t a;
    char buf[16];

    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        ck_assert_int_eq(pants_addr_parse(&a, forms[i]), 0);
        for (size_t len = 1; len < 4; len++) {
            memset(buf, 'x', sizeof(buf));
            ck_assert_int_eq(pants_addr_format(&a, buf, len), -ENOSPC);
            ck_assert_int_eq(buf[len - 1], '\0');
            ck_assert_int_eq(buf[len], 'x'); /* nothing past len */
            ck_assert_uint_eq(strlen(buf), len - 1);
        }
        memset(buf, 'x', sizeof(buf));
        ck_assert_int_eq(pants_addr_format(&a, buf, 0), -ENOSPC);
        ck_assert_int_eq(buf[0], 'x'); /* len 0: untouched */
    }
}
END_TEST

START_TEST(test_format_bad_family_and_null)
{
    pants_addr_t a;
    char buf[64];

    memset(&a, 0, sizeof(a));
    a.ss.ss_family = AF_UNSPEC;
    memset(buf, 'x', sizeof(buf));
    ck_assert_int_eq(pants_addr_format(&a, buf, sizeof(buf)), -EAFNOSUPPORT);
    ck_assert_str_eq(buf, ""); /* still a string */
    a.ss.ss_family = AF_PACKET;
    ck_assert_int_eq(pants_addr_format(&a, buf, sizeof(buf)), -EAFNOSUPPORT);
    ck_assert_int_eq(pants_addr_format(NULL, buf, sizeof(buf)), -EINVAL);
    ck_assert_int_eq(pants_addr_parse(&a, "1.2.3.4:80"), 0);
    ck_assert_int_eq(pants_addr_format(&a, NULL, 10), -EINVAL);
}
END_TEST

Suite *addr_suite(void);

Suite *addr_suite(void)
{
    Suite *s = suite_create("addr");
    TCase *tc;

    tc = tcase_create("parse");
    tcase_add_checked_fixture(tc, NULL, no_live_objects);
    tcase_add_test(tc, test_parse_ipv4);
    tcase_add_test(tc, test_parse_ipv6);
    tcase_add_test(tc, test_parse_any);
    tcase_add_test(tc, test_parse_unix_path);
    tcase_add_test(tc, test_parse_unix_abstract);
    tcase_add_test(tc, test_parse_unix_length_limits);
    tcase_add_test(tc, test_parse_malformed);
    tcase_add_test(tc, test_parse_null);
    suite_add_tcase(s, tc);

    tc = tcase_create("format");
    tcase_add_checked_fixture(tc, NULL, no_live_objects);
    tcase_add_test(tc, test_format_round_trips);
    tcase_add_test(tc, test_format_abstract_uses_length);
    tcase_add_test(tc, test_format_exact_fit);
    tcase_add_test(tc, test_format_enospc);
    tcase_add_test(tc, test_format_bad_family_and_null);
    suite_add_tcase(s, tc);

    return s;
}
