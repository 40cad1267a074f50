/* error.c -- names for every error code pants returns.
 *
 * Negative errno values are named by the C library (without touching a
 * shared buffer, so any thread may ask); PANTS_EAI_* codes, the resolver's,
 * are named here, and so is -E2BIG, which pants gives for one thing only:
 * a regex delimiter that reached its matching limits (the C library's
 * "argument list too long" would mislead).
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "engine-internal.h"

static const char *const eai_names[] = {
    [-(PANTS_EAI_ADDRFAMILY)-3001] = "no address of the requested family for this host",
    [-(PANTS_EAI_AGAIN)-3001] = "temporary failure in name resolution",
    [-(PANTS_EAI_BADFLAGS)-3001] = "invalid flags for name resolution",
    [-(PANTS_EAI_FAIL)-3001] = "non-recoverable failure in name resolution",
    [-(PANTS_EAI_FAMILY)-3001] = "address family not supported",
    [-(PANTS_EAI_MEMORY)-3001] = "out of memory in name resolution",
    [-(PANTS_EAI_NODATA)-3001] = "no address associated with host name",
    [-(PANTS_EAI_NONAME)-3001] = "host name not known",
    [-(PANTS_EAI_SERVICE)-3001] = "service not supported for this socket type",
    [-(PANTS_EAI_SOCKTYPE)-3001] = "socket type not supported",
    [-(PANTS_EAI_CANCELED)-3001] = "name resolution cancelled",
    [-(PANTS_EAI_TIMEOUT)-3001] = "name resolution timed out",
};

#define DETAIL_MAX 256 /* bytes of a failure's detail */

static __thread char tls_detail[DETAIL_MAX]; /* the last PANTS_ETLS's reason on this thread */

void pants__error_detail(int err, const char *text)
{
    if (err == PANTS_ETLS)
        snprintf(tls_detail, sizeof(tls_detail), "TLS failure: %s", text);
}

const char *pants_strerror(int err)
{
    const char *name;

    if (err == 0)
        return "success";
    if (err == PANTS_ETLS)
        return tls_detail[0] ? tls_detail : "TLS failure";
    if (err <= PANTS_EAI_ADDRFAMILY && err >= PANTS_EAI_TIMEOUT)
        return eai_names[-err - 3001];
    if (err == INT_MIN)
        return "unknown error"; /* -INT_MIN does not exist */
    if (err > 0)
        err = -err;
    if (err == -E2BIG)
        return "too costly to match: a regex delimiter reached its limits";
    name = strerrordesc_np(-err);
    return name ? name : "unknown error";
}
