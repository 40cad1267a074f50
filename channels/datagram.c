/* datagram.c -- packet channels: UDP and Unix datagram sockets.
 * (Placeholder until the datagram issue: every call fails with -ENOSYS.) */
#include "config.h"

#include <errno.h>

#include "channels-internal.h"

pants_datagram_t *pants_datagram_new(pants_loop_t *l, const pants_datagram_callbacks_t *cb, void *data)
{
    (void)l;
    (void)cb;
    (void)data;
    errno = ENOSYS;
    return NULL;
}
