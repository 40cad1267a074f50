/* fuzz_deadline.c -- libFuzzer target: the heap of lazy deadlines.
 *
 * The input is a program of heap operations on a fixed set of entries:
 * set an entry to a time (inserting or moving it), move one relative to
 * its time, remove one (in the heap or not), pop the earliest (removing it,
 * or putting it back later, as a due callback does), drain the heap, and
 * deinit it (and then use it again).  A model keeps each entry's time and
 * whether it is in; after every step pants__dheap_check must hold, every
 * entry must agree with the model, and the heap's min must have the
 * model's earliest time.  A drain must pop the model's times sorted.  Times
 * are small (so many tie) or anywhere up to UINT64_MAX.
 */
#include <stdlib.h>
#include <string.h>

#include "deadline-internal.h"
#include "fuzz-input.h"

#define NENT 256 /* entries: enough for the heap to grow (64, 128, 256) */

/* One run: the heap, its entries, and the model. */
struct fz {
    struct fuzz_input prog;    /* what is left of the program */
    pants__dheap_t h;          /* the heap under test */
    pants__deadline_t e[NENT]; /* the entries */
    bool in[NENT];             /* model: is entry i in the heap? */
    uint64_t at[NENT];         /* model: its time, when in */
};

static void never_due(pants__deadline_t *d)
{
    FUZZ_CHECK(false, "the heap called due on %p", (void *)d);
}

/* A time: mostly small (ties), sometimes anywhere, sometimes the edges. */
static uint64_t fuzz_time(struct fuzz_input *in)
{
    static const uint64_t edges[] = {0, 1, UINT64_MAX, UINT64_MAX - 1, (uint64_t)1 << 63, UINT32_MAX};
    uint8_t b = fuzz_u8(in);
    uint64_t t = 0;

    if (b < 128)
        return b % 16;
    if (b < 192)
        return fuzz_u16(in);
    if (b < 250) {
        for (int i = 0; i < 8; i++)
            t = t << 8 | fuzz_u8(in);
        return t;
    }
    return edges[(b - 250) % (sizeof(edges) / sizeof(edges[0]))];
}

/* t moved by a signed small delta, saturating at 0 and UINT64_MAX. */
static uint64_t nudge(uint64_t t, uint8_t b)
{
    int delta = (int)(b % 33) - 16;

    if (delta < 0)
        return t < (uint64_t)-delta ? 0 : t - (uint64_t)-delta;
    return t > UINT64_MAX - (uint64_t)delta ? UINT64_MAX : t + (uint64_t)delta;
}

/* The earliest time of the model, and how many entries are in. */
FUZZ_UNTRACED static size_t model_min(const struct fz *z, uint64_t *min)
{
    size_t count = 0;

    *min = UINT64_MAX;
    for (size_t i = 0; i < NENT; i++) {
        if (!z->in[i])
            continue;
        count++;
        if (z->at[i] < *min)
            *min = z->at[i];
    }
    return count;
}

/* The heap agrees with the model, entry by entry, and at its top. */
FUZZ_UNTRACED static void check_all(const struct fz *z)
{
    const pants__deadline_t *m = pants__dheap_min(&z->h);
    uint64_t min;
    size_t count = model_min(z, &min);

    FUZZ_CHECK(pants__dheap_check(&z->h), "not a heap (%u entries)", z->h.len);
    FUZZ_CHECK(z->h.len == count && z->h.len <= z->h.cap, "len %u cap %u, model %zu", z->h.len, z->h.cap,
               count);
    for (size_t i = 0; i < NENT; i++) {
        const pants__deadline_t *d = &z->e[i];
        FUZZ_CHECK(pants__deadline_is_set(d) == z->in[i], "entry %zu in: %d, model %d", i,
                   pants__deadline_is_set(d), z->in[i]);
        if (z->in[i])
            FUZZ_CHECK(d->at == z->at[i] && d->index < z->h.len && z->h.items[d->index] == d,
                       "entry %zu: at %llu index %u, model at %llu", i, (unsigned long long)d->at, d->index,
                       (unsigned long long)z->at[i]);
    }
    FUZZ_CHECK((m == NULL) == (count == 0), "min %p with %zu entries", (const void *)m, count);
    if (m != NULL)
        FUZZ_CHECK(m->at == min, "min at %llu, model %llu", (unsigned long long)m->at,
                   (unsigned long long)min);
}

/* Set entry i to t, in the heap and the model. */
static void set(struct fz *z, size_t i, uint64_t t)
{
    FUZZ_CHECK(pants__dheap_set(&z->h, &z->e[i], t) == 0, "set failed");
    z->in[i] = true;
    z->at[i] = t;
}

/* Move entry i, if it is in, a little earlier or later. */
static void op_move(struct fz *z, size_t i)
{
    if (z->in[i])
        set(z, i, nudge(z->at[i], fuzz_u8(&z->prog)));
}

static void op_remove(struct fz *z, size_t i)
{
    pants__dheap_remove(&z->h, &z->e[i]);
    z->in[i] = false;
}

/* The earliest is due: its owner removes it, or puts it back later. */
static void op_pop(struct fz *z)
{
    pants__deadline_t *d = pants__dheap_min(&z->h);
    uint8_t b = fuzz_u8(&z->prog);
    size_t i;

    if (d == NULL)
        return;
    i = (size_t)(d - z->e);
    FUZZ_CHECK(i < NENT && z->in[i], "min is entry %zu, not in the model", i);
    if (b % 2)
        op_remove(z, i);
    else
        set(z, i, nudge(d->at, (uint8_t)(16 + b / 2 % 17))); /* now, or up to 16 ms later */
}

FUZZ_UNTRACED static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* Pop everything: the times come out as the model's, sorted. */
FUZZ_UNTRACED static void op_drain(struct fz *z)
{
    uint64_t sorted[NENT];
    size_t n = 0;

    for (size_t i = 0; i < NENT; i++)
        if (z->in[i])
            sorted[n++] = z->at[i];
    qsort(sorted, n, sizeof(sorted[0]), cmp_u64);
    for (size_t k = 0; k < n; k++) {
        pants__deadline_t *d = pants__dheap_min(&z->h);
        FUZZ_CHECK(d != NULL && d->at == sorted[k], "pop %zu of %zu: not the model's time", k, n);
        op_remove(z, (size_t)(d - z->e));
        FUZZ_CHECK(pants__dheap_check(&z->h), "not a heap after pop %zu", k);
    }
    FUZZ_CHECK(pants__dheap_min(&z->h) == NULL, "entries left after a drain");
}

/* Free the array; every entry is out, and the heap is usable again. */
static void op_deinit(struct fz *z)
{
    pants__dheap_deinit(&z->h);
    FUZZ_CHECK(z->h.items == NULL && z->h.len == 0 && z->h.cap == 0, "deinit left an array");
    memset(z->in, 0, sizeof(z->in));
}

/* One operation of the program. */
static void step(struct fz *z)
{
    uint8_t op = fuzz_u8(&z->prog);
    size_t i = fuzz_u8(&z->prog) % NENT;
    unsigned kind = op % 16u;

    fuzz_trace("op %u on entry %zu (%u in the heap)", kind, i, z->h.len);
    if (kind < 6)
        set(z, i, fuzz_time(&z->prog));
    else if (kind < 9)
        op_move(z, i);
    else if (kind < 12)
        op_remove(z, i); /* in the heap or not */
    else if (kind < 14)
        op_pop(z);
    else if (kind == 14)
        op_drain(z);
    else if (op == 255)
        op_deinit(z);
    check_all(z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz *z = calloc(1, sizeof(*z));

    FUZZ_CHECK(z != NULL, "out of memory");
    z->prog.p = data;
    z->prog.n = size;
    for (size_t i = 0; i < NENT; i++)
        pants__deadline_init(&z->e[i], never_due);
    while (!fuzz_done(&z->prog))
        step(z);
    pants__dheap_deinit(&z->h);
    free(z);
    return 0;
}
