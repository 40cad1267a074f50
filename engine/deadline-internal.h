/* deadline-internal.h -- lazy deadlines: a min-heap of "look at me at time
 * T" entries, one per object that has time limits, and one timer per loop.
 *
 * Objects with time limits (a stream's idle, read, write and frame
 * timeouts) do not move a timer per message: they remember when their last
 * activity happened, and sit in the heap at the time they must next be
 * looked at.  When that time comes, the owner computes its true deadline
 * from its timestamps; if it has not passed, the entry goes back in the
 * heap at the new time -- one heap operation per timeout period, not per
 * message (nginx's lazy timers, libuv's timer heap).
 *
 * The heap itself (pants__dheap_*) is pure: no clock, no loop, no memory
 * but its own array, so it can be tested and fuzzed alone.  The loop part
 * (pants__deadline_*) arms the loop's one timer for the earliest entry.
 *
 * Threads: the loop's own, or before it runs under pants__loop_enter.
 */
#ifndef PANTS_DEADLINE_INTERNAL_H
#define PANTS_DEADLINE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PANTS__DEADLINE_NONE UINT32_MAX /* heap index of an entry not in the heap */

typedef struct pants__deadline_s pants__deadline_t;

struct pants__deadline_s {
    uint64_t at;                       /* when to look, in ms of the loop's clock */
    uint32_t index;                    /* place in the heap, or PANTS__DEADLINE_NONE */
    void (*due)(pants__deadline_t *d); /* at has come: look (may re-add d) */
};

typedef struct pants__dheap_s {
    pants__deadline_t **items; /* the heap: items[0] is the earliest */
    uint32_t len;              /* entries */
    uint32_t cap;              /* slots allocated */
} pants__dheap_t;

static inline void pants__deadline_init(pants__deadline_t *d, void (*due)(pants__deadline_t *))
{
    d->at = 0;
    d->index = PANTS__DEADLINE_NONE;
    d->due = due;
}

static inline bool pants__deadline_is_set(const pants__deadline_t *d)
{
    return d->index != PANTS__DEADLINE_NONE;
}

/* Put d in h at time at, or move it there.  0 or -ENOMEM (d unchanged). */
int pants__dheap_set(pants__dheap_t *h, pants__deadline_t *d, uint64_t at);

/* Take d out of h (no-op if it is not in). */
void pants__dheap_remove(pants__dheap_t *h, pants__deadline_t *d);

/* The earliest entry, or NULL. */
static inline pants__deadline_t *pants__dheap_min(const pants__dheap_t *h)
{
    return h->len > 0 ? h->items[0] : NULL;
}

/* Free the array (the entries are the owners'). */
void pants__dheap_deinit(pants__dheap_t *h);

/* Is h a valid heap whose entries know their places?  For tests. */
bool pants__dheap_check(const pants__dheap_t *h);

#endif /* PANTS_DEADLINE_INTERNAL_H */
