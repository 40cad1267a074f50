/* deadline.c -- the min-heap of lazy deadlines (see deadline-internal.h).
 *
 * A binary heap in an array that doubles as it grows; every entry keeps
 * its index, so moving or removing one is O(log n) without a search.  Ties
 * keep no particular order: owners look at their own timestamps anyway.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "deadline-internal.h"

static void place(pants__dheap_t *h, uint32_t i, pants__deadline_t *d)
{
    h->items[i] = d;
    d->index = i;
}

static void sift_up(pants__dheap_t *h, uint32_t i)
{
    pants__deadline_t *d = h->items[i];

    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (h->items[parent]->at <= d->at)
            break;
        place(h, i, h->items[parent]);
        i = parent;
    }
    place(h, i, d);
}

static void sift_down(pants__dheap_t *h, uint32_t i)
{
    pants__deadline_t *d = h->items[i];

    for (;;) {
        uint32_t child = 2 * i + 1;
        if (child >= h->len)
            break;
        if (child + 1 < h->len && h->items[child + 1]->at < h->items[child]->at)
            child++;
        if (d->at <= h->items[child]->at)
            break;
        place(h, i, h->items[child]);
        i = child;
    }
    place(h, i, d);
}

static int grow(pants__dheap_t *h)
{
    uint32_t cap = h->cap ? h->cap * 2 : 64;
    pants__deadline_t **items;

    if (cap <= h->cap)
        return -ENOMEM;
    items = realloc(h->items, cap * sizeof(*items));
    if (items == NULL)
        return -ENOMEM;
    h->items = items;
    h->cap = cap;
    return 0;
}

int pants__dheap_set(pants__dheap_t *h, pants__deadline_t *d, uint64_t at)
{
    if (d->index == PANTS__DEADLINE_NONE) {
        if (h->len == h->cap && grow(h) < 0)
            return -ENOMEM;
        d->at = at;
        place(h, h->len++, d);
        sift_up(h, d->index);
        return 0;
    }
    bool earlier = at < d->at;
    d->at = at;
    if (earlier)
        sift_up(h, d->index);
    else
        sift_down(h, d->index);
    return 0;
}

void pants__dheap_remove(pants__dheap_t *h, pants__deadline_t *d)
{
    uint32_t i = d->index;
    pants__deadline_t *last;

    if (i == PANTS__DEADLINE_NONE)
        return;
    d->index = PANTS__DEADLINE_NONE;
    last = h->items[--h->len];
    if (i == h->len)
        return;
    place(h, i, last);
    if (i > 0 && h->items[(i - 1) / 2]->at > last->at)
        sift_up(h, i);
    else
        sift_down(h, i);
}

void pants__dheap_deinit(pants__dheap_t *h)
{
    for (uint32_t i = 0; i < h->len; i++)
        h->items[i]->index = PANTS__DEADLINE_NONE;
    free(h->items);
    h->items = NULL;
    h->len = h->cap = 0;
}

bool pants__dheap_check(const pants__dheap_t *h)
{
    for (uint32_t i = 0; i < h->len; i++) {
        if (h->items[i]->index != i)
            return false;
        if (i > 0 && h->items[(i - 1) / 2]->at > h->items[i]->at)
            return false;
    }
    return true;
}
