/* kv-cmd.h -- the commands of examples/kv: one parsed request in, its
 * reply appended to a buffer.  No sockets: kv.c hands requests in.
 *
 * Commands: PING, ECHO, SELECT, SET (EX, PX, EXAT, PXAT, NX, XX, KEEPTTL,
 * GET), GET, DEL, EXISTS, INCR, DECR, INCRBY, DECRBY, MGET, MSET, EXPIRE
 * (NX, XX, GT, LT), PEXPIRE, TTL, PTTL, PERSIST, DBSIZE, FLUSHALL,
 * FLUSHDB, QUIT, CONFIG GET and COMMAND (COUNT, DOCS, INFO, LIST).
 * Replies and errors are worded as Redis 7 words them.
 *
 * Threads: kv_exec may run on any number of threads at once over one
 * store; every key is read and written under its shard's lock, and a
 * command over several keys (MSET, MGET, DEL, EXISTS, FLUSHALL) holds the
 * locks of all their shards at once, taken in shard order, so it is atomic.
 */
#ifndef KV_CMD_H
#define KV_CMD_H

#include <stdint.h>

#include "kv-store.h"
#include "resp.h"

#define KV_QUIT 1 /* kv_exec: the reply is written, close the connection after it */

/* What CONFIG GET says about the server. */
typedef struct kv_settings_s {
    unsigned threads;   /* worker threads ("io-threads") */
    size_t max_clients; /* --max-conns, 0 = none ("maxclients") */
    size_t max_bulk;    /* the parser's bound ("proto-max-bulk-len") */
} kv_settings_t;

/* Where a command runs. */
typedef struct kv_ctx_s {
    kv_store_t *store;             /* the key space */
    resp_buf_t *out;               /* replies are appended here */
    const kv_settings_t *settings; /* for CONFIG GET */
    int64_t now;                   /* the clock for this command, 0 = not read yet */
} kv_ctx_t;

/* Run the request argv[0..argc) (argc >= 1) and append its reply to
 * c->out.  Returns 0, or KV_QUIT after QUIT. */
int kv_exec(kv_ctx_t *c, const resp_arg_t *argv, size_t argc);

#endif /* KV_CMD_H */
