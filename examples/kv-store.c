/* kv-store.c -- the sharded key space of examples/kv (see kv-store.h).
 *
 * Each shard is a chained hash table whose bucket count is a power of two,
 * behind a pthread mutex, on a cache line of its own so that two threads
 * working on neighbouring shards do not slow each other down.  Resizing is
 * incremental: a second table is allocated and kv_find / kv_insert (and
 * the sweep) move a bucket or so from the old one at each call, as Redis's
 * dict does; lookups search both tables meanwhile.  A table doubles when
 * it holds more entries than buckets and halves (or more) when it holds
 * fewer than one per eight.
 */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "kv-store.h"

#define MIN_BUCKETS  8                /* a shard's smallest table */
#define STEP_BUCKETS 1                /* buckets moved per kv_find / kv_insert while resizing */
#define SWEEP_SLICE  64               /* buckets a sweep looks at per slice */
#define SWEEP_SLICES 16               /* at most this many slices per kv_sweep */
#define ALIGN        16               /* entries are allocated in steps of this */
#define MAX_PART     (UINT32_MAX / 4) /* longest key or value an entry holds */

/* One hash table: a power of two of bucket chains. */
typedef struct table_s {
    kv_entry_t **b; /* the buckets; NULL while size is 0 */
    size_t size;    /* how many; 0 = no table */
} table_t;

struct kv_shard_s {
    pthread_mutex_t lock; /* held for every call on the shard */
    table_t t[2];         /* t[0], and t[1] while moving into it */
    size_t moved;         /* buckets of t[0] moved so far, while t[1] exists */
    size_t count;         /* entries in both tables */
    size_t nexpire;       /* entries with an expiry */
    size_t cursor;        /* the next bucket of t[0] the sweep looks at */
} __attribute__((aligned(64)));

struct kv_store_s {
    kv_shard_t shards[KV_SHARDS]; /* the key space */
    uint64_t seed;                /* of kv_hash */
};

/* ---- The store -------------------------------------------------------- */

static uint64_t random_seed(void)
{
    uint64_t seed;
    struct timespec ts;

    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) == (ssize_t)sizeof(seed))
        return seed;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid();
}

kv_store_t *kv_store_new(void)
{
    kv_store_t *st;

    if (posix_memalign((void **)&st, 64, sizeof(*st)) != 0) {
        errno = ENOMEM;
        return NULL;
    }
    memset(st, 0, sizeof(*st));
    for (unsigned i = 0; i < KV_SHARDS; i++)
        pthread_mutex_init(&st->shards[i].lock, NULL);
    st->seed = random_seed();
    return st;
}

void kv_store_free(kv_store_t *st)
{
    if (st == NULL)
        return;
    for (unsigned i = 0; i < KV_SHARDS; i++) {
        kv_clear(&st->shards[i]);
        pthread_mutex_destroy(&st->shards[i].lock);
    }
    free(st);
}

/* The high and low halves of a * b folded together: a fast, good mix
 * (without 128-bit integers: a multiply and a shift-xor, nearly as good). */
static inline uint64_t mix(uint64_t a, uint64_t b)
{
#ifdef __SIZEOF_INT128__
    __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
#else
    uint64_t r = a * (b | 1);
    return r ^ (r >> 29);
#endif
}

uint64_t kv_hash(const kv_store_t *st, const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = st->seed ^ ((uint64_t)len * 0x9E3779B97F4A7C15ull), w;

    for (; len >= 8; p += 8, len -= 8) {
        memcpy(&w, p, 8);
        h = mix(h ^ w, 0xBF58476D1CE4E5B9ull);
    }
    w = 0;
    memcpy(&w, p, len);
    h = mix(h ^ w, 0x94D049BB133111EBull);
    return mix(h, 0x2545F4914F6CDD1Dull);
}

unsigned kv_shard_index(uint64_t hash)
{
    return (unsigned)(hash >> 56) & (KV_SHARDS - 1);
}

kv_shard_t *kv_shard(kv_store_t *st, unsigned index)
{
    return &st->shards[index];
}

void kv_shard_lock(kv_shard_t *sh)
{
    pthread_mutex_lock(&sh->lock);
}

void kv_shard_unlock(kv_shard_t *sh)
{
    pthread_mutex_unlock(&sh->lock);
}

int64_t kv_now(int64_t *now)
{
    struct timespec ts;

    if (*now == 0) {
        clock_gettime(CLOCK_REALTIME, &ts);
        *now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    }
    return *now;
}

/* ---- Resizing --------------------------------------------------------- */

static bool resizing(const kv_shard_t *sh)
{
    return sh->t[1].size != 0;
}

/* Start moving into a table of size buckets (the first table is just
 * made).  Nothing moves yet, so links stay valid.  Out of memory: the
 * chains just grow longer. */
static void start_resize(kv_shard_t *sh, size_t size)
{
    kv_entry_t **b;

    if (resizing(sh) || size == sh->t[0].size)
        return;
    b = calloc(size, sizeof(*b));
    if (b == NULL)
        return;
    sh->t[sh->t[0].size ? 1 : 0] = (table_t){.b = b, .size = size};
    sh->moved = 0;
}

/* Move bucket i of t[0] into t[1]. */
static void move_bucket(kv_shard_t *sh, size_t i)
{
    kv_entry_t *e = sh->t[0].b[i], *next;
    table_t *to = &sh->t[1];

    for (; e != NULL; e = next) {
        size_t j = e->hash & (to->size - 1);
        next = e->next;
        e->next = to->b[j];
        to->b[j] = e;
    }
    sh->t[0].b[i] = NULL;
}

/* Move up to n non-empty buckets (looking at ten times as many empty ones
 * at most); once t[0] is empty, t[1] takes its place. */
static void step(kv_shard_t *sh, size_t n)
{
    size_t empty = n * 10;

    while (n > 0 && sh->moved < sh->t[0].size) {
        if (sh->t[0].b[sh->moved] != NULL) {
            move_bucket(sh, sh->moved);
            n--;
        } else if (empty-- == 0) {
            break;
        }
        sh->moved++;
    }
    if (sh->moved == sh->t[0].size) {
        free(sh->t[0].b);
        sh->t[0] = sh->t[1];
        sh->t[1] = (table_t){0};
        sh->moved = 0;
        sh->cursor = 0;
    }
}

/* The smallest power of two of buckets for n entries. */
static size_t buckets_for(size_t n)
{
    size_t size = MIN_BUCKETS;

    while (size < n)
        size *= 2;
    return size;
}

/* ---- Entries ---------------------------------------------------------- */

/* An entry with room for the value: whole ALIGN steps. */
static kv_entry_t *entry_new(uint64_t hash, const void *key, size_t klen, size_t vlen)
{
    size_t head = offsetof(kv_entry_t, data);
    size_t bytes = (head + klen + vlen + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    kv_entry_t *e;

    if (klen > MAX_PART || vlen > MAX_PART || (e = malloc(bytes)) == NULL)
        return NULL;
    e->next = NULL;
    e->hash = hash;
    e->expire = 0;
    e->klen = (uint32_t)klen;
    e->vlen = (uint32_t)vlen;
    e->vcap = (uint32_t)(bytes - head - klen);
    memcpy(e->data, key, klen);
    return e;
}

kv_entry_t **kv_find(kv_shard_t *sh, uint64_t hash, const void *key, size_t klen, int64_t *now)
{
    if (resizing(sh))
        step(sh, STEP_BUCKETS);
    for (int t = 0; t < 2 && sh->t[t].size != 0; t++) {
        kv_entry_t **link = &sh->t[t].b[hash & (sh->t[t].size - 1)];
        for (kv_entry_t *e; (e = *link) != NULL; link = &e->next) {
            if (e->hash != hash || e->klen != klen || memcmp(e->data, key, klen) != 0)
                continue;
            if (e->expire != 0 && kv_now(now) > e->expire) {
                kv_remove(sh, link);
                return NULL;
            }
            return link;
        }
    }
    return NULL;
}

kv_entry_t *kv_insert(kv_shard_t *sh, uint64_t hash, const void *key, size_t klen, const void *val,
                      size_t vlen)
{
    kv_entry_t *e = entry_new(hash, key, klen, vlen);
    table_t *t;

    if (e == NULL)
        return NULL;
    memcpy(kv_entry_value(e), val, vlen);
    if (resizing(sh))
        step(sh, STEP_BUCKETS);
    else if (sh->t[0].size == 0 || sh->count >= sh->t[0].size)
        start_resize(sh, sh->t[0].size ? sh->t[0].size * 2 : MIN_BUCKETS);
    if (sh->t[0].size == 0) { /* no first table: out of memory */
        free(e);
        return NULL;
    }
    t = &sh->t[resizing(sh) ? 1 : 0];
    e->next = t->b[hash & (t->size - 1)];
    t->b[hash & (t->size - 1)] = e;
    sh->count++;
    return e;
}

kv_entry_t *kv_update(kv_shard_t *sh, kv_entry_t **link, const void *val, size_t vlen)
{
    kv_entry_t *e = *link, *n;

    (void)sh;
    if (vlen <= e->vcap && e->vcap - vlen < 4096 + vlen) { /* fits, and not far too big */
        memcpy(kv_entry_value(e), val, vlen);
        e->vlen = (uint32_t)vlen;
        return e;
    }
    n = entry_new(e->hash, e->data, e->klen, vlen);
    if (n == NULL)
        return NULL;
    memcpy(kv_entry_value(n), val, vlen);
    n->next = e->next;
    n->expire = e->expire;
    *link = n;
    free(e);
    return n;
}

void kv_remove(kv_shard_t *sh, kv_entry_t **link)
{
    kv_entry_t *e = *link;

    *link = e->next;
    if (e->expire != 0)
        sh->nexpire--;
    sh->count--;
    free(e);
    if (sh->t[0].size > MIN_BUCKETS && sh->count < sh->t[0].size / 8)
        start_resize(sh, buckets_for(sh->count));
}

void kv_set_expire(kv_shard_t *sh, kv_entry_t *e, int64_t when)
{
    if (e->expire == 0 && when != 0)
        sh->nexpire++;
    else if (e->expire != 0 && when == 0)
        sh->nexpire--;
    e->expire = when;
}

size_t kv_count(const kv_shard_t *sh)
{
    return sh->count;
}

void kv_clear(kv_shard_t *sh)
{
    for (int t = 0; t < 2; t++) {
        for (size_t i = 0; i < sh->t[t].size; i++) {
            for (kv_entry_t *e = sh->t[t].b[i], *next; e != NULL; e = next) {
                next = e->next;
                free(e);
            }
        }
        free(sh->t[t].b);
        sh->t[t] = (table_t){0};
    }
    sh->moved = sh->count = sh->nexpire = sh->cursor = 0;
}

/* ---- The sweep -------------------------------------------------------- */

/* One slice of buckets from the cursor: *seen entries with an expiry,
 * how many of them were removed. */
static size_t sweep_slice(kv_shard_t *sh, int64_t now, size_t *seen)
{
    table_t *t = &sh->t[0];
    size_t removed = 0;

    for (size_t i = 0; i < SWEEP_SLICE && t->size != 0; i++) {
        kv_entry_t **link = &t->b[sh->cursor++ & (t->size - 1)];
        for (kv_entry_t *e; (e = *link) != NULL;) {
            if (e->expire != 0 && ++*seen && now > e->expire) {
                kv_remove(sh, link);
                removed++;
            } else {
                link = &e->next;
            }
        }
    }
    return removed;
}

size_t kv_sweep(kv_shard_t *sh, int64_t now)
{
    size_t removed = 0;

    if (resizing(sh))
        step(sh, SWEEP_SLICE); /* a resize ends even without writes */
    for (int i = 0; i < SWEEP_SLICES && sh->nexpire != 0; i++) {
        size_t seen = 0, r = sweep_slice(sh, now, &seen);
        removed += r;
        if (seen == 0 || r * 4 < seen) /* few expired here: enough for now */
            break;
    }
    return removed;
}
