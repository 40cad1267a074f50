/* inbuf.c -- a contiguous, doubling buffer for pending input bytes.
 *
 * See inbuf-internal.h.  Growth moves the pending bytes into an allocation
 * at least twice as large; compaction slides them to the front only when
 * the consumed prefix is at least as long as they are, so every byte is
 * moved a bounded number of times on average.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "inbuf-internal.h"

#define MIN_CAP         4096  /* first allocation */
#define KEEP_WHEN_EMPTY 16384 /* larger allocations go back once drained */

void pants__inbuf_init(pants__inbuf_t *b)
{
    memset(b, 0, sizeof(*b));
}

void pants__inbuf_deinit(pants__inbuf_t *b)
{
    free(b->data);
    pants__inbuf_init(b);
}

static int grow(pants__inbuf_t *b, size_t want)
{
    size_t cap = b->cap > MIN_CAP ? b->cap : MIN_CAP;
    unsigned char *data;

    while (cap < b->len + want || cap < b->cap * 2) {
        if (cap > (size_t)-1 / 2)
            return -ENOMEM;
        cap *= 2;
    }
    data = malloc(cap);
    if (data == NULL)
        return -ENOMEM;
    if (b->len > 0)
        memcpy(data, b->data + b->start, b->len);
    free(b->data);
    b->data = data;
    b->start = 0;
    b->cap = cap;
    return 0;
}

unsigned char *pants__inbuf_space(pants__inbuf_t *b, size_t want, size_t *avail)
{
    if (b->cap - b->start - b->len < want) {
        if (b->start >= b->len && b->cap - b->len >= want) {
            memmove(b->data, b->data + b->start, b->len);
            b->start = 0;
        } else if (grow(b, want) < 0) {
            return NULL;
        }
    }
    *avail = b->cap - b->start - b->len;
    return b->data + b->start + b->len;
}

void pants__inbuf_commit(pants__inbuf_t *b, size_t n)
{
    b->len += n;
}

int pants__inbuf_append(pants__inbuf_t *b, const void *p, size_t n)
{
    size_t avail;
    unsigned char *to = pants__inbuf_space(b, n, &avail);

    if (to == NULL)
        return -ENOMEM;
    memcpy(to, p, n);
    b->len += n;
    return 0;
}

void pants__inbuf_consume(pants__inbuf_t *b, size_t n)
{
    b->start += n;
    b->len -= n;
    if (b->len > 0)
        return;
    b->start = 0;
    if (b->cap > KEEP_WHEN_EMPTY)
        pants__inbuf_deinit(b);
}
