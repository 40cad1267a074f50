/* fuzz_proxy.c -- libFuzzer target: the PROXY protocol header parser.
 *
 * The input is the first bytes of a connection.  The parser must never
 * read past them (ASan, on an exact-size copy), must give a length no
 * longer than the input, and must agree with itself: a header it accepts
 * parses to the same length and addresses from exactly its own bytes,
 * every shorter prefix of it "needs more", and nothing is ever "need more"
 * once PANTS__PROXY_MAX bytes are there.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz-input.h"
#include "proxy-internal.h"

static void check_accepted(const uint8_t *data, int len, const pants__proxy_hdr_t *h)
{
    pants__proxy_hdr_t again;
    uint8_t *exact = malloc((size_t)len);

    FUZZ_CHECK(exact != NULL, "out of memory");
    memcpy(exact, data, (size_t)len);
    FUZZ_CHECK(pants__proxy_parse(exact, (size_t)len, &again) == len, "its own bytes parse differently");
    FUZZ_CHECK(again.ip_version == h->ip_version, "a different family from its own bytes");
    FUZZ_CHECK(h->ip_version == 0 || h->ip_version == 4 || h->ip_version == 6, "family %d", h->ip_version);
    if (h->ip_version != 0)
        FUZZ_CHECK(memcmp(again.src, h->src, 16) == 0 && again.src_port == h->src_port &&
                       again.dst_port == h->dst_port,
                   "different addresses from its own bytes");
    for (int k = 0; k < len; k += 1 + k / 8) /* prefixes: all the short ones, then sampled */
        FUZZ_CHECK(pants__proxy_parse(exact, (size_t)k, &again) == -2, "a %d-byte prefix of a %d-byte header", k, len);
    free(exact);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pants__proxy_hdr_t h;
    uint8_t *copy = malloc(size ? size : 1);
    int rc;

    FUZZ_CHECK(copy != NULL, "out of memory");
    memcpy(copy, data, size);
    memset(&h, 0, sizeof(h));
    rc = pants__proxy_parse(copy, size, &h);
    FUZZ_CHECK(rc == -1 || rc == -2 || (rc > 0 && (size_t)rc <= size), "rc %d for %zu bytes", rc, size);
    FUZZ_CHECK(rc != -2 || size < PANTS__PROXY_MAX, "needs more after %zu bytes", size);
    if (rc > 0)
        check_accepted(copy, rc, &h);
    free(copy);
    return 0;
}
