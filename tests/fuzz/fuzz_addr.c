/* fuzz_addr.c -- libFuzzer target: address strings, parsed and formatted.
 *
 * The input, cut at its first NUL (the parsers take C strings) and copied
 * into an allocation of exactly its size, goes to pants__addr_split under
 * every combination of flags and to pants_addr_parse.  Checked: only the
 * documented codes come back; a name to resolve is the text before the
 * last colon, a valid host name, and its port the digits after it; a
 * filled address has its family's length; a flag only adds what it names
 * (an address, once accepted, is the same under more flags); parse is
 * split with the "any" forms.  Whatever parses must format, and the text
 * must parse again to the same address and format to the same text;
 * formatting into a buffer one byte short gives -ENOSPC and a terminated
 * prefix.
 *
 * An input that starts with 0xff is instead a raw pants_addr_t (family
 * chosen by its next byte): formatting it gives a documented code and a
 * terminated string, and an IP address's text parses back to the same IP
 * and port.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "channels-internal.h"
#include "fuzz-input.h"

#define RAW_MODE 0xff /* first byte of an input that is a raw address */
#define TEXT_MAX 512  /* longer than any formatted address */

/* The result of pants__addr_split under one set of flags. */
struct split {
    int rc;                     /* 0, 1 or -EINVAL */
    pants_addr_t a;             /* the address, when rc is 0 */
    char host[PANTS__HOST_MAX]; /* the name, when rc is 1 */
    uint16_t port;              /* its port, when rc is 1 */
};

/* Do a and b hold the same address? */
static bool same_addr(const pants_addr_t *a, const pants_addr_t *b)
{
    return a->len == b->len && memcmp(&a->ss, &b->ss, sizeof(a->ss)) == 0;
}

/* A filled address has the length of its family. */
static void check_shape(const pants_addr_t *a)
{
    size_t path = offsetof(struct sockaddr_un, sun_path);

    switch (a->ss.ss_family) {
    case AF_INET:
        FUZZ_CHECK(a->len == sizeof(struct sockaddr_in), "IPv4 length %u", (unsigned)a->len);
        break;
    case AF_INET6:
        FUZZ_CHECK(a->len == sizeof(struct sockaddr_in6), "IPv6 length %u", (unsigned)a->len);
        break;
    case AF_UNIX:
        FUZZ_CHECK(a->len > path && a->len <= sizeof(struct sockaddr_un), "Unix length %u", (unsigned)a->len);
        break;
    default:
        FUZZ_CHECK(false, "family %d", a->ss.ss_family);
    }
}

/* A host name: letters, digits, '-', '.', '_'; not starting with '.' or '-'. */
static bool is_host_name(const char *h)
{
    size_t n = strlen(h);

    if (n == 0 || n >= PANTS__HOST_MAX || h[0] == '.' || h[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)h[i]) && strchr("-._", h[i]) == NULL)
            return false;
    return true;
}

/* A name to resolve is the text before the port, and the port its digits. */
static void check_name(const char *s, const struct split *r, unsigned flags)
{
    size_t n = strnlen(r->host, sizeof(r->host));
    unsigned long port;
    char *end;

    FUZZ_CHECK(n < sizeof(r->host) && is_host_name(r->host), "bad host name for \"%s\"", s);
    FUZZ_CHECK(strncmp(s, r->host, n) == 0 && s[n] == ':', "host \"%s\" is not the front of \"%s\"", r->host,
               s);
    FUZZ_CHECK(isdigit((unsigned char)s[n + 1]) && strlen(s + n + 1) <= 5, "port text of \"%s\"", s);
    port = strtoul(s + n + 1, &end, 10);
    FUZZ_CHECK(*end == '\0' && port == r->port, "port %u for \"%s\"", r->port, s);
    FUZZ_CHECK(!(flags & PANTS__ADDR_LOCALHOST) || strcasecmp(r->host, "localhost") != 0,
               "localhost as a name");
}

/* pants__addr_split(s, flags), its codes and results checked. */
static void split(const char *s, unsigned flags, struct split *r)
{
    memset(r, 0xa5, sizeof(*r)); /* nothing left over may pass for a result */
    r->rc = pants__addr_split(s, flags, &r->a, r->host, &r->port);
    FUZZ_CHECK(r->rc == 0 || r->rc == 1 || r->rc == -EINVAL, "split returned %d for \"%s\"", r->rc, s);
    if (r->rc == 0)
        check_shape(&r->a);
    else if (r->rc == 1)
        check_name(s, r, flags);
}

/* Flags only add: what fewer flags accept, more accept the same way. */
static void check_monotone(const struct split *less, const struct split *more)
{
    if (less->rc == 0)
        FUZZ_CHECK(more->rc == 0 && same_addr(&less->a, &more->a), "a flag changed an address");
    if (less->rc == 1)
        FUZZ_CHECK(more->rc == 0 ||
                       (more->rc == 1 && strcmp(less->host, more->host) == 0 && less->port == more->port),
                   "a flag changed a name");
    if (more->rc == -EINVAL)
        FUZZ_CHECK(less->rc == -EINVAL, "a flag rejected an address");
}

/* Formatting a into shorter buffers: len - 1 bytes (one short) gives
 * -ENOSPC and a terminated prefix of full; 0 bytes -ENOSPC. */
static void check_short_format(const pants_addr_t *a, const char *full)
{
    size_t n = strlen(full);
    char *buf = malloc(n + 1); /* exact: ASan sees any write past len */

    FUZZ_CHECK(buf != NULL, "out of memory");
    FUZZ_CHECK(pants_addr_format(a, buf, n + 1) == 0 && strcmp(buf, full) == 0, "exact fit of \"%s\"", full);
    FUZZ_CHECK(pants_addr_format(a, buf, n) == -ENOSPC, "one byte short of \"%s\"", full);
    FUZZ_CHECK(n == 0 || (strlen(buf) < n && strncmp(buf, full, strlen(buf)) == 0), "truncated \"%s\"", full);
    FUZZ_CHECK(pants_addr_format(a, buf, 0) == -ENOSPC, "no room for \"%s\"", full);
    free(buf);
}

/* Whatever parses formats, and parses back to itself. */
static void check_round_trip(const pants_addr_t *a, const char *s)
{
    char text[TEXT_MAX], again[TEXT_MAX];
    pants_addr_t b;

    FUZZ_CHECK(pants_addr_format(a, text, sizeof(text)) == 0, "\"%s\" does not format", s);
    FUZZ_CHECK(pants_addr_parse(&b, text) == 0, "\"%s\" formats as \"%s\", which does not parse", s, text);
    FUZZ_CHECK(same_addr(a, &b), "\"%s\" -> \"%s\" parses to another address", s, text);
    FUZZ_CHECK(pants_addr_format(&b, again, sizeof(again)) == 0 && strcmp(text, again) == 0,
               "\"%s\" formats as \"%s\", then as \"%s\"", s, text, again);
    check_short_format(a, text);
}

static void fuzz_text(const char *s)
{
    static const unsigned flag_sets[] = {PANTS__ADDR_ANY, PANTS__ADDR_LOCALHOST, PANTS__ADDR_LISTEN};
    struct split none, with;
    pants_addr_t p;
    int rc;

    split(s, 0, &none);
    for (size_t i = 0; i < sizeof(flag_sets) / sizeof(flag_sets[0]); i++) {
        split(s, flag_sets[i], &with);
        check_monotone(&none, &with);
    }
    split(s, PANTS__ADDR_ANY, &with);
    memset(&p, 0x5a, sizeof(p));
    rc = pants_addr_parse(&p, s);
    FUZZ_CHECK(rc == (with.rc == 1 ? -EINVAL : with.rc), "parse %d, split %d for \"%s\"", rc, with.rc, s);
    if (rc == 0) {
        FUZZ_CHECK(same_addr(&p, &with.a), "parse and split differ for \"%s\"", s);
        check_round_trip(&p, s);
    }
}

/* A formatted IP address parses back to the same IP and port. */
static void check_ip_text(const pants_addr_t *a, const char *text)
{
    pants_addr_t b;

    FUZZ_CHECK(pants_addr_parse(&b, text) == 0 && b.ss.ss_family == a->ss.ss_family, "\"%s\" does not parse",
               text);
    if (a->ss.ss_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)&a->ss,
                                 *y = (const struct sockaddr_in *)&b.ss;
        FUZZ_CHECK(x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr, "\"%s\"", text);
    } else {
        const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)&a->ss;
        const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)&b.ss;
        FUZZ_CHECK(x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0, "\"%s\"",
                   text);
    }
}

/* Raw mode: any bytes as an address of a chosen family, formatted. */
static void fuzz_raw(const uint8_t *data, size_t size)
{
    static const sa_family_t families[] = {AF_INET, AF_INET6, AF_UNIX, AF_APPLETALK};
    struct fuzz_input in = {data, size};
    char text[TEXT_MAX];
    const uint8_t *bytes;
    pants_addr_t a;
    size_t n;
    int rc;

    memset(&a, 0, sizeof(a));
    a.ss.ss_family = families[fuzz_u8(&in) % 4];
    a.len = (socklen_t)(fuzz_u8(&in) % (sizeof(a.ss) + 1));
    n = fuzz_bytes(&in, sizeof(a.ss) - sizeof(a.ss.ss_family), &bytes);
    memcpy((char *)&a.ss + sizeof(a.ss.ss_family), bytes, n);
    rc = pants_addr_format(&a, text, sizeof(text));
    if (a.ss.ss_family == AF_APPLETALK) {
        FUZZ_CHECK(rc == -EAFNOSUPPORT && text[0] == '\0', "unknown family formatted: %d", rc);
        return;
    }
    FUZZ_CHECK(rc == 0 && strlen(text) < sizeof(text), "raw format: %d", rc);
    check_short_format(&a, text);
    if (a.ss.ss_family != AF_UNIX)
        check_ip_text(&a, text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n = strnlen((const char *)data, size);
    char *s;

    if (size > 0 && data[0] == RAW_MODE) {
        fuzz_raw(data + 1, size - 1);
        return 0;
    }
    s = malloc(n + 1);
    FUZZ_CHECK(s != NULL, "out of memory");
    memcpy(s, data, n);
    s[n] = '\0';
    fuzz_text(s);
    free(s);
    return 0;
}
