/* proxy-internal.h -- the PROXY protocol header (HAProxy's, versions 1 and 2).
 *
 * A load balancer that speaks it starts every connection it opens to a
 * backend with a header naming the client's address and port and the one
 * it was accepted on.  This parses one from bytes: no sockets.
 */
#ifndef PANTS_PROXY_INTERNAL_H
#define PANTS_PROXY_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#define PANTS__PROXY_V1_MAX  107               /* the longest version 1 line, CRLF included */
#define PANTS__PROXY_V2_BODY 4096              /* the most bytes a version 2 header may add to its 16 */
#define PANTS__PROXY_MAX     (16 + PANTS__PROXY_V2_BODY) /* the longest header accepted */

typedef struct pants__proxy_hdr_s {
    int ip_version;    /* 4 or 6; 0: no addresses (v2 LOCAL, v1 UNKNOWN, other families) */
    unsigned char src[16]; /* the client's address, network order (4 or 16 bytes used) */
    unsigned char dst[16]; /* the address the balancer accepted it on */
    uint16_t src_port;     /* host order */
    uint16_t dst_port;
} pants__proxy_hdr_t;

/* Parse the header at the start of p[0..n).  Returns its length (the
 * bytes to consume), -1 if p does not start with a valid header, -2 if
 * it may be one but more bytes are needed (never once n >=
 * PANTS__PROXY_MAX).  h is filled on success. */
int pants__proxy_parse(const unsigned char *p, size_t n, pants__proxy_hdr_t *h);

#endif
