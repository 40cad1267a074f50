/* proxy.c -- parsing the PROXY protocol header, versions 1 and 2.
 *
 * Version 1 is one text line, "PROXY TCP4 src dst sport dport\r\n" (or
 * TCP6, or UNKNOWN and anything up to the CRLF), at most 107 bytes.
 * Version 2 is binary: a 12-byte signature, a version/command byte, a
 * family/protocol byte, a 16-bit length, then the addresses and optional
 * TLVs (ignored here).  The parser is strict, since whatever it accepts
 * becomes the address a server logs and filters on: one space between
 * fields, decimal ports without leading zeros, addresses in the family
 * named.  See HAProxy's doc/proxy-protocol.txt.
 */
#include "config.h"

#include <arpa/inet.h>
#include <string.h>

#include "proxy-internal.h"

#define NEED_MORE (-2)
#define INVALID   (-1)

static const unsigned char v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char v1_sig[6] = "PROXY ";

/* Does p[0..n) start like sig (as far as it goes)? */
static int prefix_of(const unsigned char *p, size_t n, const void *sig, size_t len)
{
    return memcmp(p, sig, n < len ? n : len) == 0;
}

/* ---- Version 1 ---------------------------------------------------------- */

/* The next space-separated field of [*p, end): copied into out (at most
 * cap-1 bytes), *p moved past it and its one separator (sep). */
static int v1_field(const char **p, const char *end, char sep, char *out, size_t cap)
{
    const char *q = memchr(*p, sep, (size_t)(end - *p));
    size_t len;

    if (q == NULL)
        return INVALID;
    len = (size_t)(q - *p);
    if (len == 0 || len >= cap)
        return INVALID;
    memcpy(out, *p, len);
    out[len] = '\0';
    *p = q + 1;
    return 0;
}

static int v1_port(const char *s, uint16_t *port)
{
    unsigned long v = 0;

    if (s[0] == '\0' || (s[0] == '0' && s[1] != '\0'))
        return INVALID;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return INVALID;
        v = v * 10 + (unsigned long)(*s - '0');
        if (v > 65535)
            return INVALID;
    }
    *port = (uint16_t)v;
    return 0;
}

/* "TCP4 a b p q" or "TCP6 ..." or "UNKNOWN..." between the signature and CRLF. */
static int v1_body(const char *p, const char *end, pants__proxy_hdr_t *h)
{
    char proto[8], src[48], dst[48], sport[8], dport[8];
    int af;

    if ((size_t)(end - p) >= 7 && memcmp(p, "UNKNOWN", 7) == 0 && (end - p == 7 || p[7] == ' ')) {
        h->ip_version = 0;
        return 0;
    }
    if (v1_field(&p, end, ' ', proto, sizeof(proto)) < 0 || v1_field(&p, end, ' ', src, sizeof(src)) < 0 ||
        v1_field(&p, end, ' ', dst, sizeof(dst)) < 0 || v1_field(&p, end, ' ', sport, sizeof(sport)) < 0)
        return INVALID;
    if ((size_t)(end - p) == 0 || (size_t)(end - p) >= sizeof(dport) || memchr(p, ' ', (size_t)(end - p)))
        return INVALID;
    memcpy(dport, p, (size_t)(end - p));
    dport[end - p] = '\0';
    if (strcmp(proto, "TCP4") == 0)
        h->ip_version = 4, af = AF_INET;
    else if (strcmp(proto, "TCP6") == 0)
        h->ip_version = 6, af = AF_INET6;
    else
        return INVALID;
    if (inet_pton(af, src, h->src) != 1 || inet_pton(af, dst, h->dst) != 1)
        return INVALID;
    return v1_port(sport, &h->src_port) < 0 || v1_port(dport, &h->dst_port) < 0 ? INVALID : 0;
}

static int parse_v1(const unsigned char *p, size_t n, pants__proxy_hdr_t *h)
{
    size_t scan = n < PANTS__PROXY_V1_MAX ? n : PANTS__PROXY_V1_MAX;
    const unsigned char *cr = NULL;

    for (size_t i = sizeof(v1_sig); i < scan; i++) {
        if (p[i] == '\r' || p[i] == '\n' || p[i] == '\0') {
            cr = p + i;
            break;
        }
    }
    if (cr == NULL)
        return n >= PANTS__PROXY_V1_MAX ? INVALID : NEED_MORE;
    if (*cr != '\r')
        return INVALID;
    if ((size_t)(cr - p) + 1 >= n)
        return NEED_MORE;
    if (cr[1] != '\n')
        return INVALID;
    if (v1_body((const char *)p + sizeof(v1_sig), (const char *)cr, h) < 0)
        return INVALID;
    return (int)(cr - p) + 2;
}

/* ---- Version 2 ---------------------------------------------------------- */

static uint16_t be16(const unsigned char *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static int parse_v2(const unsigned char *p, size_t n, pants__proxy_hdr_t *h)
{
    size_t len, total;
    unsigned cmd, fam;

    if (n < 16)
        return NEED_MORE;
    if ((p[12] & 0xF0) != 0x20)
        return INVALID; /* version 2 only */
    cmd = p[12] & 0x0F;
    fam = p[13];
    len = be16(p + 14);
    if (cmd > 1 || len > PANTS__PROXY_V2_BODY)
        return INVALID;
    total = 16 + len;
    if (n < total)
        return NEED_MORE;
    h->ip_version = 0;
    if (cmd == 0) /* LOCAL: the balancer's own connection (a health check) */
        return (int)total;
    if (fam == 0x11 || fam == 0x12) { /* TCP or UDP over IPv4 */
        if (len < 12)
            return INVALID;
        h->ip_version = 4;
        memcpy(h->src, p + 16, 4);
        memcpy(h->dst, p + 20, 4);
        h->src_port = be16(p + 24);
        h->dst_port = be16(p + 26);
    } else if (fam == 0x21 || fam == 0x22) { /* over IPv6 */
        if (len < 36)
            return INVALID;
        h->ip_version = 6;
        memcpy(h->src, p + 16, 16);
        memcpy(h->dst, p + 32, 16);
        h->src_port = be16(p + 48);
        h->dst_port = be16(p + 50);
    } else if (fam != 0x00 && fam != 0x31 && fam != 0x32) {
        return INVALID; /* UNSPEC and Unix: no addresses we can give */
    }
    return (int)total;
}

int pants__proxy_parse(const unsigned char *p, size_t n, pants__proxy_hdr_t *h)
{
    memset(h, 0, sizeof(*h)); /* unused address bytes are zero */
    if (n == 0)
        return NEED_MORE;
    if (prefix_of(p, n, v2_sig, sizeof(v2_sig)))
        return parse_v2(p, n, h);
    if (prefix_of(p, n, v1_sig, sizeof(v1_sig)))
        return n < sizeof(v1_sig) ? NEED_MORE : parse_v1(p, n, h);
    return INVALID;
}
