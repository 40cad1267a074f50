/* kv-store.h -- the key space of examples/kv: string keys to string
 * values, split into KV_SHARDS shards, each a chained hash table behind its
 * own mutex.
 *
 * A key's hash picks its shard (the top bits) and its bucket (the low
 * bits), so worker threads meet on one lock only when they touch keys of
 * the same shard.  An entry is one allocation: the key, then the value,
 * with a little room to spare, so overwriting a value of about the same
 * size (SET, INCR) allocates nothing.  A table grows and shrinks
 * incrementally (Redis's dict): while a new table fills, every locked
 * operation moves a few buckets, so no request waits for a whole rehash.
 *
 * Expiry: an entry carries its deadline (Unix time in ms); a lookup that
 * finds it past is the lookup of a missing key, and removes it (lazy).
 * kv_sweep walks a shard's buckets a slice at a time and removes what has
 * expired, so keys nobody asks for again do not hold memory for ever.
 *
 * Threads: every kv_* call that takes a shard is made with that shard
 * locked (kv_shard_lock), from any thread; the others are any thread.
 */
#ifndef KV_STORE_H
#define KV_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Shards of a store: a power of two.  32 locks are more than the threads
 * of a large machine collide on, and FLUSHALL, which holds all of them at
 * once, stays below the 64 locks ThreadSanitizer lets one thread hold. */
#define KV_SHARDS 32

/* One key and its value. */
typedef struct kv_entry_s {
    struct kv_entry_s *next; /* the next entry of its bucket */
    uint64_t hash;           /* kv_hash of the key */
    int64_t expire;          /* when it expires, Unix ms; 0 = never */
    uint32_t klen;           /* key bytes, at data */
    uint32_t vlen;           /* value bytes, at data + klen */
    uint32_t vcap;           /* room for the value in this allocation */
    char data[];             /* the key, then the value */
} kv_entry_t;

typedef struct kv_store_s kv_store_t;
typedef struct kv_shard_s kv_shard_t;

static inline const char *kv_entry_key(const kv_entry_t *e)
{
    return e->data;
}

static inline char *kv_entry_value(kv_entry_t *e)
{
    return e->data + e->klen;
}

/* A store with no keys; NULL with errno on failure. */
kv_store_t *kv_store_new(void);

/* Free st and every entry.  No thread may use it any more.  NULL: no-op. */
void kv_store_free(kv_store_t *st);

/* The hash of a key (seeded per store, so peers cannot aim at a bucket). */
uint64_t kv_hash(const kv_store_t *st, const void *key, size_t len);

/* The shard a hash belongs to, and its index (0 .. KV_SHARDS-1). */
unsigned kv_shard_index(uint64_t hash);
kv_shard_t *kv_shard(kv_store_t *st, unsigned index);

void kv_shard_lock(kv_shard_t *sh);
void kv_shard_unlock(kv_shard_t *sh);

/* The current time in Unix ms, read once per *now (0 = not read yet), so a
 * batch of requests reads the clock at most once. */
int64_t kv_now(int64_t *now);

/* With the shard locked, all of them. */

/* The link that points at key's entry (so it can be replaced or removed),
 * or NULL if there is none; an expired entry is removed and not found. */
kv_entry_t **kv_find(kv_shard_t *sh, uint64_t hash, const void *key, size_t klen, int64_t *now);

/* A new entry for a key that kv_find did not find, without expiry.
 * Returns it, or NULL when out of memory. */
kv_entry_t *kv_insert(kv_shard_t *sh, uint64_t hash, const void *key, size_t klen, const void *val,
                      size_t vlen);

/* Replace the value of the entry at *link (which may move: *link is
 * updated).  The expiry is kept.  Returns the entry, or NULL when out of
 * memory (the old value is then kept). */
kv_entry_t *kv_update(kv_shard_t *sh, kv_entry_t **link, const void *val, size_t vlen);

/* Remove and free the entry at *link. */
void kv_remove(kv_shard_t *sh, kv_entry_t **link);

/* Set e's expiry (Unix ms; 0 = never). */
void kv_set_expire(kv_shard_t *sh, kv_entry_t *e, int64_t when);

/* How many entries the shard holds (expired ones not yet removed too). */
size_t kv_count(const kv_shard_t *sh);

/* Remove every entry. */
void kv_clear(kv_shard_t *sh);

/* Walk a slice of the shard's buckets and remove what expired by now; on
 * while most of what it saw had expired, for at most a few slices.
 * Returns how many entries were removed. */
size_t kv_sweep(kv_shard_t *sh, int64_t now);

#endif /* KV_STORE_H */
