/* kv-cmd.c -- the commands of examples/kv (see kv-cmd.h).
 *
 * One table names every command with its arity (Redis's convention: n
 * exactly, -n at least) and what COMMAND tells about it; kv_exec looks the
 * name up, checks the arity and runs it.  Commands over keys lock the
 * shards of their keys for the whole command (a bitmap of shards, locked
 * in index order, so two commands never wait on each other in a circle),
 * and build their reply while the lock is held: a value is copied
 * straight from the store into the reply buffer.
 *
 * Wording: every error is the one redis-server 7 sends for the same
 * request, checked byte for byte (tests/kv.sh compares against it when it
 * is installed).
 */
#include <ctype.h>
#include <malloc.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "kv-cmd.h"

#define E_SYNTAX  "ERR syntax error"
#define E_NOT_INT "ERR value is not an integer or out of range"
#define E_NOMEM   "ERR out of memory"

/* One command. */
typedef struct cmd_s {
    const char *name;                                            /* lower case */
    int arity;                                                   /* n: exactly n; -n: at least n */
    int (*fn)(kv_ctx_t *c, const resp_arg_t *argv, size_t argc); /* runs it */
    const char *flags;                                           /* COMMAND INFO flags */
    int first_key, last_key, key_step;                           /* COMMAND INFO key positions */
    const char *summary;                                         /* COMMAND DOCS */
    const char *group;                                           /* COMMAND DOCS */
} cmd_t;

/* Shards to lock, one bit each (bit i: shard i). */
typedef uint64_t shard_set_t;
_Static_assert(KV_SHARDS <= 64, "a shard set is one 64-bit word");

/* A key, hashed, and its shard. */
typedef struct key_s {
    const char *ptr; /* its bytes */
    size_t len;      /* how many */
    uint64_t hash;   /* kv_hash */
    kv_shard_t *sh;  /* its shard */
} keyref_t;

static int cmd_command(kv_ctx_t *c, const resp_arg_t *argv, size_t argc);

/* ---- Helpers ---------------------------------------------------------- */

/* Is a the word w (lower-case letters only), ignoring case?  A byte ORed
 * with 0x20 equals a lower-case letter only if it is that letter in
 * either case, so this is exact, and quicker than strncasecmp. */
static bool is(const resp_arg_t *a, const char *w)
{
    size_t i;

    for (i = 0; i < a->len; i++)
        if (w[i] == '\0' || ((unsigned char)a->ptr[i] | 0x20) != (unsigned char)w[i])
            return false;
    return w[i] == '\0';
}

/* The length of a as a C string (Redis prints arguments with %s), at most
 * max. */
static int c_len(const resp_arg_t *a, size_t max)
{
    return (int)strnlen(a->ptr, a->len < max ? a->len : max);
}

static bool arg_ll(const resp_arg_t *a, long long *v)
{
    return resp_parse_ll(a->ptr, a->len, v);
}

static void error_arity(kv_ctx_t *c, const char *fullname)
{
    char msg[160];

    snprintf(msg, sizeof(msg), "ERR wrong number of arguments for '%s' command", fullname);
    resp_add_error(c->out, msg);
}

static void error_subcommand(kv_ctx_t *c, const resp_arg_t *sub, const char *cmd)
{
    char msg[256];

    snprintf(msg, sizeof(msg), "ERR unknown subcommand '%.*s'. Try %s HELP.", c_len(sub, 128), sub->ptr, cmd);
    resp_add_error(c->out, msg);
}

static void error_expire_time(kv_ctx_t *c, const char *cmd)
{
    char msg[80];

    snprintf(msg, sizeof(msg), "ERR invalid expire time in '%s' command", cmd);
    resp_add_error(c->out, msg);
}

static keyref_t key_of(kv_ctx_t *c, const resp_arg_t *a)
{
    keyref_t k = {.ptr = a->ptr, .len = a->len, .hash = kv_hash(c->store, a->ptr, a->len)};

    k.sh = kv_shard(c->store, kv_shard_index(k.hash));
    return k;
}

static kv_entry_t **find(kv_ctx_t *c, const keyref_t *k)
{
    return kv_find(k->sh, k->hash, k->ptr, k->len, &c->now);
}

/* Set the key to val, keeping its expiry only when keep_ttl.  The entry,
 * or NULL when out of memory. */
static kv_entry_t *store(const keyref_t *k, kv_entry_t **link, const void *val, size_t vlen, bool keep_ttl)
{
    kv_entry_t *e;

    if (link == NULL)
        return kv_insert(k->sh, k->hash, k->ptr, k->len, val, vlen);
    e = kv_update(k->sh, link, val, vlen);
    if (e != NULL && !keep_ttl)
        kv_set_expire(k->sh, e, 0);
    return e;
}

/* ---- Locking several shards ------------------------------------------ */

/* The shards of argv[first], argv[first + step], ... */
static void shards_of(kv_ctx_t *c, const resp_arg_t *argv, size_t argc, size_t first, size_t step,
                      shard_set_t *set)
{
    *set = 0;
    for (size_t i = first; i < argc; i += step)
        *set |= (uint64_t)1 << kv_shard_index(kv_hash(c->store, argv[i].ptr, argv[i].len));
}

static void lock_set(kv_ctx_t *c, const shard_set_t *set)
{
    for (unsigned s = 0; s < KV_SHARDS; s++)
        if (*set & ((uint64_t)1 << s))
            kv_shard_lock(kv_shard(c->store, s));
}

static void unlock_set(kv_ctx_t *c, const shard_set_t *set)
{
    for (unsigned s = 0; s < KV_SHARDS; s++)
        if (*set & ((uint64_t)1 << s))
            kv_shard_unlock(kv_shard(c->store, s));
}

static void all_shards(shard_set_t *set)
{
    *set = KV_SHARDS == 64 ? ~(uint64_t)0 : ((uint64_t)1 << (KV_SHARDS % 64)) - 1;
}

/* ---- Connection and server commands ----------------------------------- */

static int cmd_ping(kv_ctx_t *c, const resp_arg_t *argv, size_t argc)
{
    if (argc > 2)
        error_arity(c, "ping");
    else if (argc == 2)
        resp_add_bulk(c->out, argv[1].ptr, argv[1].len);
    else
        resp_add_status(c->out, "PONG");
    return 0;
}

static int cmd_echo(kv_ctx_t *c, const resp_arg_t *argv, size_t argc)
{
    resp_add_bulk(c->out, argv[1].ptr, argv[1].len);
    return 0;
}

static int cmd_select(kv_ctx_t *c, const resp_arg_t *argv, size_t argc)
{
    long long id;

    if (!arg_ll(&argv[1], &id) || id < INT_MIN || id > INT_MAX)
        resp_add_error(c->out, E_NOT_INT);
    else if (id != 0)
        resp_add_error(c->out, "ERR DB index is out of range");
    else
        resp_add_status(c->out, "OK");
    return 0;
}

static int cmd_quit(kv_ctx_t *c, const resp_arg_t *argv, size_t argc)
{
    resp_add_status(c->out, "OK");
    return KV_QUIT;
}

static int cmd_dbsize(kv_ctx_t *c, const resp_arg_t *argv, size_t argc)
{
    long long n = 0;

    for (unsigned s = 0; s < KV_SHARDS; s++) {
        kv_shard_t *sh = kv_shard(c->store, s);
        kv_shard_lock(sh);
        n += (long long)kv_count(sh);
        kv_shard_unlock(sh);
    }
    resp_add_int(c->out, n);
    return 0;
}

static int cmd_flushall(kv_ctx_t *c, const resp_arg_t *argv, size_t argc)
{
    shard_set_t all;

    if (argc > 2 || (argc == 2 && !is(&argv[1], "sync") && !is(&argv[1], "async"))) {
        resp_add_error(c->out, E_SYNTAX);
        return 0;
    }
    all_shards(&all);
    lock_set(c, &all);
    for (unsigned s = 0; s < KV_SHARDS; s++)
        kv_clear(kv_shard(c->store, s));
    unlock_set(c, &all);
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    malloc_trim(0); /* give the memory back to the system, as jemalloc would (not under a sanitizer's malloc) */
#endif
    resp_add_status(c->out, "OK");
    return 0;
}

/* ---- Strings ---------------------------------------------------------- */

static int cmd_get(kv_ctx_t *c, const resp_arg_t *argv, size_t argc)
{
    keyref_t k = key_of(c, &argv[1]);
    kv_entry_t **link;

    kv_shard_lock(k.sh);
    link = find(c, &k);
    if (link != NULL)
        resp_add_bulk(c->out, kv_entry_value(*link), (*link)->vlen);
    else
        resp_add_nil(c->out);
    kv_shard_unlock(k.sh);
    return 0;
}

enum {
    SET_NX = 1,
    SET_XX = 2,
    SET_GET = 4,
    SET_KEEPTTL = 8,
    SET_EX = 16,
    SET_PX = 32,
    SET_EXAT = 64,
    SET_PXAT = 128,
    SET_EXPIRY = SET_EX | SET_PX | SET_EXAT | SET_PXAT
};

/* One SET option at argv[*j] (an expiry takes the next argument too, into
 * *when_arg).  false: a syntax error. */
static bool set_option(const resp_arg_t *argv, size_t argc, size_t *j, int *flags,
                       const resp_arg_t **when_arg)
{
    static const struct {
        const char *word; /* the option */
        int flag;         /* its flag */
        int excludes;     /* flags it cannot come with */
    } opts[] = {
        {"nx", SET_NX, SET_XX},
        {"xx", SET_XX, SET_NX},
        {"get", SET_GET, 0},
        {"keepttl", SET_KEEPTTL, SET_EXPIRY},
        {"ex", SET_EX, SET_KEEPTTL | (SET_EXPIRY & ~SET_EX)},
        {"px", SET_PX, SET_KEEPTTL | (SET_EXPIRY & ~SET_PX)},
        {"exat", SET_EXAT, SET_KEEPTTL | (SET_EXPIRY & ~SET_EXAT)},
        {"pxat", SET_PXAT, SET_KEEPTTL | (SET_EXPIRY & ~SET_PXAT)},
    };

    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
        if (!is(&argv[*j], opts[i].word) || (*flags & opts[i].excludes))
            continue;
        if (opts[i].flag & SET_EXPIRY) {
            if (*j + 1 == argc)
                return false;
            *when_arg = &argv[++*j];
        }
        *flags |= opts[i].flag;
        return true;
    }
    return false;
}

/* The absolute expiry of SET's EX/PX/EXAT/PXAT argument; false after
 * replying with the error. */
static bool set_when(kv_ctx_t *c, const resp_arg_t *a, int flags, int64_t *when)
{
    long long ms;

    if (!arg_ll(a, &ms)) {
        resp_add_error(c->out, E_NOT_INT);
        return false;
    }
    if (ms <= 0 || ((flags & (SET_EX | SET_EXAT)) && ms > LLONG_MAX / 1000)) {
        error_expire_time(c, "set");
        return false;
    }
    if (flags & (SET_EX | SET_EXAT))
        ms *= 1000;
    if ((flags & (SET_EX | SET_PX)) && ms > LLONG_MAX - kv_now(&c->now)) {
        error_expire_time(c, "set");
        return false;
    }
    *when = (flags & (SET_EX | SET_PX)) ? ms + kv_now(&c->now) : ms;
    return true;
}

/* SET with its options parsed, under the key's lock. */
static void set_locked(kv_ctx_t *c, const keyref_t *k, const resp_arg_t *val, int flags, int64_t when)
{
    kv_entry_t **link = find(c, k), *e;

    if (flags & SET_GET) {
        if (link != NULL)
            resp_add_bulk(c->out, kv_entry_value(*link), (*link)->vlen);
        else
            resp_add_nil(c->out);
    }
    if (((flags & SET_NX) && link != NULL) || ((flags & SET_XX) && link == NULL)) {
        if (!(flags & SET_GET))
            resp_add_nil(c->out);
        return;
    }
    e = store(k, link, val->ptr, val->len, flags & SET_KEEPTTL);
    if (e != NULL && when != 0)
        kv_set_expire(k->sh, e, when);
    if (e == NULL && !(flags & SET_GET))
        resp_add_error(c->out, E_NOMEM);
    else if (!(flags & SET_GET))
        resp_add_status(c->out, "OK");
}

static int cmd_set(kv_ctx_t *c, const resp_arg_t *argv, size_t argc)
{
    const resp_arg_t *when_arg = NULL;
    int flags = 0;
    int64_t when = 0;
    keyref_t k;

    for (size_t j = 3; j < argc; j++) {
        if (!set_option(argv, argc, &j, &flags, &when_arg)) {
            resp_add_error(c->out, E_SYNTAX);
            return 0;
        }
    }
    if (when_arg != NULL && !set_when(c, when_arg, flags, &when))
        return 0;
    k = key_of(c, &argv[1]);
    kv_shard_lock(k.sh);
    set_locked(c, &k, &argv[2], flags, when);
    kv_shard_unlock(k.sh);
    return 0;
}

/* INCR, DECR, INCRBY, DECRBY: add by to the key's integer. */
static void incr_by(kv_ctx_t *c, const resp_arg_t *key, long long by)
{
    keyref_t k = key_of(c, key);
    kv_entry_t **link;
    long long v = 0;
    char buf[24];

    kv_shard_lock(k.sh);
    link = find(c, &k);
    if (link != NULL && !resp_parse_ll(kv_entry_value(*link), (*link)->vlen, &v))
        resp_add_error(c->out, E_NOT_INT);
    else if ((by < 0 && v < 0 && by < LLONG_MIN - v) || (by > 0 && v > 0 && by > LLONG_MAX - v))
        resp_add_error(c->out, "ERR increment or decrement would overflow");
    else if (store(&k, link, buf, resp_ll_to_str(v + by, buf), true) == NULL)
        resp_add_error(c->out, E_NOMEM);
    else
        resp_add_int(c->out, v + by);
    kv_shard_unlock(k.sh);
}

static int cmd_incr(kv_ctx_t *c, const resp_arg_t *argv, size_t argc)
{
    incr_by(c, &argv[1], 1);
    return 0;
}

static int cmd_decr(kv_ctx_t *c, const resp_arg_t *argv, size_t argc)
{
    incr_by(c, &argv[1], -1);
    return 0;
}

static int cmd_incrby(kv_ctx_t *c, const resp_arg_t *argv, size_t argc)
{
    long long by;

    if (!arg_ll(&argv[2], &by))
        resp_add_error(c->out, E_NOT_INT);
    else
        incr_by(c, &argv[1], by);
    return 0;
}

static int cmd_decrby(kv_ctx_t *c, const resp_arg_t *argv, size_t argc)
{
    long long by;

    if (!arg_ll(&argv[2], &by))
        resp_add_error(c->out, E_NOT_INT);
    else if (by == LLONG_MIN)
        resp_add_error(c->out, "ERR decrement would overflow");
    else
        incr_by(c, &argv[1], -by);
    return 0;
}

static int cmd_mget(kv_ctx_t *c, const resp_arg_t *argv, size_t argc)
{
    shard_set_t set;

    shards_of(c, argv, argc, 1, 1, &set);
    lock_set(c, &set);
    resp_add_array(c->out, argc - 1);
    for (size_t i = 1; i < argc; i++) {
        keyref_t k = key_of(c, &argv[i]);
        kv_entry_t **link = find(c, &k);
        if (link != NULL)
            resp_add_bulk(c->out, kv_entry_value(*link), (*link)->vlen);
        else
            resp_add_nil(c->out);
    }
    unlock_set(c, &set);
    return 0;
}

static int cmd_mset(kv_ctx_t *c, const resp_arg_t *argv, size_t argc)
{
    shard_set_t set;
    bool ok = true;

    if (argc % 2 == 0) {
        error_arity(c, "mset");
        return 0;
    }
    shards_of(c, argv, argc, 1, 2, &set);
    lock_set(c, &set);
    for (size_t i = 1; i < argc; i += 2) {
        keyref_t k = key_of(c, &argv[i]);
        ok &= store(&k, find(c, &k), argv[i + 1].ptr, argv[i + 1].len, false) != NULL;
    }
    unlock_set(c, &set);
    if (ok)
        resp_add_status(c->out, "OK");
    else
        resp_add_error(c->out, E_NOMEM);
    return 0;
}

/* DEL (remove) and EXISTS (count only). */
static void count_keys(kv_ctx_t *c, const resp_arg_t *argv, size_t argc, bool remove)
{
    shard_set_t set;
    long long n = 0;

    shards_of(c, argv, argc, 1, 1, &set);
    lock_set(c, &set);
    for (size_t i = 1; i < argc; i++) {
        keyref_t k = key_of(c, &argv[i]);
        kv_entry_t **link = find(c, &k);
        if (link != NULL && remove)
            kv_remove(k.sh, link);
        n += link != NULL;
    }
    unlock_set(c, &set);
    resp_add_int(c->out, n);
}

static int cmd_del(kv_ctx_t *c, const resp_arg_t *argv, size_t argc)
{
    count_keys(c, argv, argc, true);
    return 0;
}

static int cmd_exists(kv_ctx_t *c, const resp_arg_t *argv, size_t argc)
{
    count_keys(c, argv, argc, false);
    return 0;
}

/* ---- Expiry ----------------------------------------------------------- */

enum { EXP_NX = 1, EXP_XX = 2, EXP_GT = 4, EXP_LT = 8 };

/* EXPIRE's options from argv[3]; false after replying with the error. */
static bool expire_options(kv_ctx_t *c, const resp_arg_t *argv, size_t argc, int *flags)
{
    char msg[160];

    for (size_t j = 3; j < argc; j++) {
        if (is(&argv[j], "nx"))
            *flags |= EXP_NX;
        else if (is(&argv[j], "xx"))
            *flags |= EXP_XX;
        else if (is(&argv[j], "gt"))
            *flags |= EXP_GT;
        else if (is(&argv[j], "lt"))
            *flags |= EXP_LT;
        else {
            snprintf(msg, sizeof(msg), "ERR Unsupported option %.*s", c_len(&argv[j], 128), argv[j].ptr);
            resp_add_error(c->out, msg);
            return false;
        }
    }
    if ((*flags & EXP_NX) && (*flags & (EXP_XX | EXP_GT | EXP_LT)))
        resp_add_error(c->out, "ERR NX and XX, GT or LT options at the same time are not compatible");
    else if ((*flags & EXP_GT) && (*flags & EXP_LT))
        resp_add_error(c->out, "ERR GT and LT options at the same time are not compatible");
    else
        return true;
    return false;
}

/* Do EXPIRE's NX/XX/GT/LT allow when over the current expiry (0: none)? */
static bool expire_allowed(int flags, int64_t current, int64_t when)
{
    if ((flags & EXP_NX) && current != 0)
        return false;
    if ((flags & EXP_XX) && current == 0)
        return false;
    if ((flags & EXP_GT) && (current == 0 || when <= current))
        return false;
    if ((flags & EXP_LT) && current != 0 && when >= current)
        return false;
    return true;
}

/* EXPIRE and PEXPIRE: unit is 1000 or 1. */
static void expire_generic(kv_ctx_t *c, const resp_arg_t *argv, size_t argc, long long unit, const char *name)
{
    keyref_t k;
    kv_entry_t **link;
    long long when;
    int flags = 0;

    if (!expire_options(c, argv, argc, &flags))
        return;
    if (!arg_ll(&argv[2], &when)) {
        resp_add_error(c->out, E_NOT_INT);
        return;
    }
    if (when > LLONG_MAX / unit || when < LLONG_MIN / unit || when * unit > LLONG_MAX - kv_now(&c->now)) {
        error_expire_time(c, name);
        return;
    }
    when = when * unit + kv_now(&c->now);
    k = key_of(c, &argv[1]);
    kv_shard_lock(k.sh);
    link = find(c, &k);
    if (link == NULL || !expire_allowed(flags, (*link)->expire, when))
        resp_add_int(c->out, 0);
    else {
        if (when <= kv_now(&c->now))
            kv_remove(k.sh, link);
        else
            kv_set_expire(k.sh, *link, when);
        resp_add_int(c->out, 1);
    }
    kv_shard_unlock(k.sh);
}

static int cmd_expire(kv_ctx_t *c, const resp_arg_t *argv, size_t argc)
{
    expire_generic(c, argv, argc, 1000, "expire");
    return 0;
}

static int cmd_pexpire(kv_ctx_t *c, const resp_arg_t *argv, size_t argc)
{
    expire_generic(c, argv, argc, 1, "pexpire");
    return 0;
}

/* TTL and PTTL: -2 missing, -1 no expiry, else what is left. */
static void ttl_generic(kv_ctx_t *c, const resp_arg_t *key, bool ms)
{
    keyref_t k = key_of(c, key);
    kv_entry_t **link;
    long long ttl = -2;

    kv_shard_lock(k.sh);
    link = find(c, &k);
    if (link != NULL && (*link)->expire == 0)
        ttl = -1;
    else if (link != NULL) {
        ttl = (*link)->expire - kv_now(&c->now);
        ttl = ttl < 0 ? 0 : ms ? ttl : (ttl + 500) / 1000;
    }
    kv_shard_unlock(k.sh);
    resp_add_int(c->out, ttl);
}

static int cmd_ttl(kv_ctx_t *c, const resp_arg_t *argv, size_t argc)
{
    ttl_generic(c, &argv[1], false);
    return 0;
}

static int cmd_pttl(kv_ctx_t *c, const resp_arg_t *argv, size_t argc)
{
    ttl_generic(c, &argv[1], true);
    return 0;
}

static int cmd_persist(kv_ctx_t *c, const resp_arg_t *argv, size_t argc)
{
    keyref_t k = key_of(c, &argv[1]);
    kv_entry_t **link;
    bool had = false;

    kv_shard_lock(k.sh);
    link = find(c, &k);
    if (link != NULL && (*link)->expire != 0) {
        kv_set_expire(k.sh, *link, 0);
        had = true;
    }
    kv_shard_unlock(k.sh);
    resp_add_int(c->out, had);
    return 0;
}

/* ---- CONFIG ----------------------------------------------------------- */

/* Does s match the glob pattern p (*, ?), ignoring case? */
static bool glob_match(const char *p, size_t plen, const char *s)
{
    size_t slen = strlen(s), pi = 0, si = 0, star_p = SIZE_MAX, star_s = 0;

    while (si < slen) {
        if (pi < plen && p[pi] == '*') {
            star_p = pi++;
            star_s = si;
        } else if (pi < plen && (p[pi] == '?' || tolower((unsigned char)p[pi]) == s[si])) {
            pi++;
            si++;
        } else if (star_p != SIZE_MAX) {
            pi = star_p + 1;
            si = ++star_s;
        } else {
            return false;
        }
    }
    while (pi < plen && p[pi] == '*')
        pi++;
    return pi == plen;
}

/* The parameters CONFIG GET knows, and their values. */
static size_t config_values(const kv_settings_t *s, const char *names[], char values[][24])
{
    static const char *const fixed[][2] = {
        {"save", ""},       {"appendonly", "no"}, {"databases", "1"},
        {"maxmemory", "0"}, {"timeout", "0"},     {"cluster-enabled", "no"},
    };
    size_t n = 0;

    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++, n++) {
        names[n] = fixed[i][0];
        snprintf(values[n], 24, "%s", fixed[i][1]);
    }
    names[n] = "maxclients";
    snprintf(values[n++], 24, "%zu", s->max_clients ? s->max_clients : (size_t)10000);
    names[n] = "io-threads";
    snprintf(values[n++], 24, "%u", s->threads);
    names[n] = "proto-max-bulk-len";
    snprintf(values[n++], 24, "%zu", s->max_bulk);
    return n;
}

/* CONFIG GET pattern...: name, value, for every parameter one matches. */
static void config_get(kv_ctx_t *c, const resp_arg_t *argv, size_t argc)
{
    const char *names[16];
    char values[16][24];
    size_t n = config_values(c->settings, names, values), hits = 0;
    bool hit[16] = {false};

    for (size_t i = 0; i < n; i++) {
        for (size_t j = 2; j < argc && !hit[i]; j++)
            hit[i] = glob_match(argv[j].ptr, argv[j].len, names[i]);
        hits += hit[i];
    }
    resp_add_array(c->out, hits * 2);
    for (size_t i = 0; i < n; i++) {
        if (hit[i]) {
            resp_add_bulk_str(c->out, names[i]);
            resp_add_bulk_str(c->out, values[i]);
        }
    }
}

static int cmd_config(kv_ctx_t *c, const resp_arg_t *argv, size_t argc)
{
    if (!is(&argv[1], "get"))
        error_subcommand(c, &argv[1], "CONFIG");
    else if (argc < 3)
        error_arity(c, "config|get");
    else
        config_get(c, argv, argc);
    return 0;
}

/* ---- The table -------------------------------------------------------- */

#define RO   "readonly fast"
#define WR   "write denyoom"
#define WRF  "write denyoom fast"
#define ADM  "loading stale"
#define CONN "fast"

static const cmd_t commands[] = {
    {"get", 2, cmd_get, RO, 1, 1, 1, "Get the value of a key", "string"},
    {"set", -3, cmd_set, WR, 1, 1, 1, "Set the string value of a key", "string"},
    {"incr", 2, cmd_incr, WRF, 1, 1, 1, "Increment the integer value of a key by one", "string"},
    {"decr", 2, cmd_decr, WRF, 1, 1, 1, "Decrement the integer value of a key by one", "string"},
    {"incrby", 3, cmd_incrby, WRF, 1, 1, 1, "Increment the integer value of a key by the given amount",
     "string"},
    {"decrby", 3, cmd_decrby, WRF, 1, 1, 1, "Decrement the integer value of a key by the given number",
     "string"},
    {"mget", -2, cmd_mget, RO, 1, -1, 1, "Get the values of all the given keys", "string"},
    {"mset", -3, cmd_mset, WR, 1, -1, 2, "Set multiple keys to multiple values", "string"},
    {"del", -2, cmd_del, "write", 1, -1, 1, "Delete a key", "generic"},
    {"exists", -2, cmd_exists, RO, 1, -1, 1, "Determine if a key exists", "generic"},
    {"expire", -3, cmd_expire, "write fast", 1, 1, 1, "Set a key's time to live in seconds", "generic"},
    {"pexpire", -3, cmd_pexpire, "write fast", 1, 1, 1, "Set a key's time to live in milliseconds",
     "generic"},
    {"ttl", 2, cmd_ttl, RO, 1, 1, 1, "Get the time to live for a key in seconds", "generic"},
    {"pttl", 2, cmd_pttl, RO, 1, 1, 1, "Get the time to live for a key in milliseconds", "generic"},
    {"persist", 2, cmd_persist, "write fast", 1, 1, 1, "Remove the expiration from a key", "generic"},
    {"ping", -1, cmd_ping, CONN, 0, 0, 0, "Ping the server", "connection"},
    {"echo", 2, cmd_echo, CONN, 0, 0, 0, "Echo the given string", "connection"},
    {"select", 2, cmd_select, "loading stale fast", 0, 0, 0, "Change the selected database", "connection"},
    {"quit", -1, cmd_quit, "loading stale fast", 0, 0, 0, "Close the connection", "connection"},
    {"dbsize", 1, cmd_dbsize, RO, 0, 0, 0, "Return the number of keys in the selected database", "server"},
    {"flushall", -1, cmd_flushall, "write", 0, 0, 0, "Remove all keys from all databases", "server"},
    {"flushdb", -1, cmd_flushall, "write", 0, 0, 0, "Remove all keys from the current database", "server"},
    {"config", -2, cmd_config, ADM, 0, 0, 0, "A container for server configuration commands", "server"},
    {"command", -1, cmd_command, ADM, 0, 0, 0, "Get array of Redis command details", "server"},
};
#define ncommands (sizeof(commands) / sizeof(commands[0]))

/* ---- COMMAND ---------------------------------------------------------- */

/* The words of s, separated by spaces, as an array of status replies. */
static void add_words(resp_buf_t *b, const char *s)
{
    size_t n = 0;
    char word[32];

    for (const char *p = s; *p; p += strcspn(p, " "), p += strspn(p, " "))
        n++;
    resp_add_array(b, n);
    for (const char *p = s; *p; p += strspn(p, " ")) {
        size_t len = strcspn(p, " ");
        snprintf(word, sizeof(word), "%.*s", (int)len, p);
        resp_add_status(b, word);
        p += len;
    }
}

/* COMMAND INFO's entry for one command (Redis 7: ten fields). */
static void add_info(resp_buf_t *b, const cmd_t *cmd)
{
    char cats[64];

    snprintf(cats, sizeof(cats), "@%s", cmd->group);
    resp_add_array(b, 10);
    resp_add_bulk_str(b, cmd->name);
    resp_add_int(b, cmd->arity);
    add_words(b, cmd->flags);
    resp_add_int(b, cmd->first_key);
    resp_add_int(b, cmd->last_key);
    resp_add_int(b, cmd->key_step);
    add_words(b, cats);
    resp_add_array(b, 0); /* tips */
    resp_add_array(b, 0); /* key specifications */
    resp_add_array(b, 0); /* subcommands */
}

/* COMMAND DOCS's entry for one command: its name, then a map. */
static void add_docs(resp_buf_t *b, const cmd_t *cmd)
{
    resp_add_bulk_str(b, cmd->name);
    resp_add_array(b, 6);
    resp_add_bulk_str(b, "summary");
    resp_add_bulk_str(b, cmd->summary);
    resp_add_bulk_str(b, "since");
    resp_add_bulk_str(b, "1.0.0");
    resp_add_bulk_str(b, "group");
    resp_add_bulk_str(b, cmd->group);
}

static const cmd_t *lookup(const resp_arg_t *name)
{
    for (size_t i = 0; i < ncommands; i++)
        if (is(name, commands[i].name))
            return &commands[i];
    return NULL;
}

/* COMMAND DOCS [name...]: every command, or those named that exist. */
static void command_docs(kv_ctx_t *c, const resp_arg_t *argv, size_t argc)
{
    size_t n = 0;

    if (argc == 2) {
        resp_add_array(c->out, ncommands * 2);
        for (size_t i = 0; i < ncommands; i++)
            add_docs(c->out, &commands[i]);
        return;
    }
    for (size_t i = 2; i < argc; i++)
        n += lookup(&argv[i]) != NULL;
    resp_add_array(c->out, n * 2);
    for (size_t i = 2; i < argc; i++)
        if (lookup(&argv[i]) != NULL)
            add_docs(c->out, lookup(&argv[i]));
}

/* COMMAND INFO name...: an entry, or nil, per name. */
static void command_info(kv_ctx_t *c, const resp_arg_t *argv, size_t argc)
{
    resp_add_array(c->out, argc - 2);
    for (size_t i = 2; i < argc; i++) {
        const cmd_t *cmd = lookup(&argv[i]);
        if (cmd != NULL)
            add_info(c->out, cmd);
        else
            resp_add_nil(c->out);
    }
}

static int cmd_command(kv_ctx_t *c, const resp_arg_t *argv, size_t argc)
{
    if (argc == 1) {
        resp_add_array(c->out, ncommands);
        for (size_t i = 0; i < ncommands; i++)
            add_info(c->out, &commands[i]);
    } else if (is(&argv[1], "count")) {
        if (argc != 2)
            error_arity(c, "command|count");
        else
            resp_add_int(c->out, (long long)ncommands);
    } else if (is(&argv[1], "docs")) {
        command_docs(c, argv, argc);
    } else if (is(&argv[1], "info")) {
        command_info(c, argv, argc);
    } else if (is(&argv[1], "list")) {
        resp_add_array(c->out, ncommands);
        for (size_t i = 0; i < ncommands; i++)
            resp_add_bulk_str(c->out, commands[i].name);
    } else {
        error_subcommand(c, &argv[1], "COMMAND");
    }
    return 0;
}

/* ---- Dispatch --------------------------------------------------------- */

/* Redis's words for a command it does not know. */
static void error_unknown(kv_ctx_t *c, const resp_arg_t *argv, size_t argc)
{
    char msg[512];
    size_t n, args = 0;

    n = (size_t)snprintf(msg, sizeof(msg),
                         "ERR unknown command '%.*s', with args beginning with: ", c_len(&argv[0], 128),
                         argv[0].ptr);
    for (size_t i = 1; i < argc && args < 128; i++) {
        int w = snprintf(msg + n, sizeof(msg) - n, "'%.*s' ", c_len(&argv[i], 128 - args), argv[i].ptr);
        n += (size_t)w;
        args += (size_t)w;
    }
    resp_add_error(c->out, msg);
}

int kv_exec(kv_ctx_t *c, const resp_arg_t *argv, size_t argc)
{
    const cmd_t *cmd = lookup(&argv[0]);

    c->now = 0;
    if (cmd == NULL) {
        error_unknown(c, argv, argc);
        return 0;
    }
    if ((cmd->arity > 0 && (size_t)cmd->arity != argc) || argc < (size_t)(cmd->arity < 0 ? -cmd->arity : 0)) {
        error_arity(c, cmd->name);
        return 0;
    }
    return cmd->fn(c, argv, argc);
}
