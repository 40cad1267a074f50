/* kv.c -- a Redis-protocol key-value server on pants: every core serves
 * connections, and all of them share one sharded key space.
 *
 *   examples/kv [--threads N] [--listen ADDR]... [--reuseport] [--max-conns N]
 *
 * redis-cli, redis-benchmark and Redis client libraries talk to it as to a
 * redis-server holding strings only (kv-cmd.h lists the commands).  Each
 * connection is pinned to a worker loop; a request runs right there, on
 * that loop's thread, under the lock of its key's shard (kv-store.h), so
 * replies leave in request order and INCR from many connections loses no
 * update.  Expired keys go lazily, when a request finds them, and through
 * a sweep each worker runs over its share of the shards ten times a second.
 *
 * Reading: the stream delivers bytes as they arrive (read_any) and the
 * incremental parser of resp.c cuts requests out of them in place; only a
 * request split across reads is copied, into the connection's buffer.
 * Replies go into the loop's reply buffer and leave with one write per
 * read, so a pipeline of 16 requests costs one read and one send.
 * A malformed or oversized request gets Redis's "-ERR Protocol error: ..."
 * and the connection is ended once the replies before it are out.  A
 * client that sends and does not read stops being read once more than
 * 1 MiB of replies wait for it.
 *
 * Ctrl-C or SIGTERM stops the engine: replies queued still go out, and the
 * program exits 0.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "kv-cmd.h"
#include "kv-store.h"
#include "pants.h"
#include "resp.h"

#define MAX_LISTEN   16                 /* --listen at most this often */
#define SWEEP_MS     100                /* the expiry sweep runs this often */
#define OUT_FLUSH    (64u << 10)        /* hand replies to the stream once this many wait */
#define OUT_HIGH     (1u << 20)         /* stop reading a client with this much unsent */
#define OUT_KEEP     (1u << 20)         /* a reply buffer grown past this is given back */
#define MAX_BULK     ((size_t)64 << 20) /* the parser's bound on one value */
#define DEFAULT_ADDR "127.0.0.1:6379"

/* One worker loop's own state. */
typedef struct worker_s {
    resp_buf_t out;     /* replies of the on_read at hand */
    unsigned index;     /* the loop's index */
    pants_loop_t *loop; /* the loop */
} worker_t;

/* One client connection. */
typedef struct conn_s {
    resp_parser_t parser; /* its requests */
    char *buf;            /* bytes of a request split across reads, and those after it */
    size_t len;           /* bytes in buf */
    size_t cap;           /* room in buf */
    bool stalled;         /* reading paused until its replies drain */
    bool closing;         /* QUIT or a protocol error: read no more */
} conn_t;

static pants_engine_t *engine; /* for the signal handler */
static kv_store_t *store;      /* the key space */
static worker_t *workers;      /* one per worker loop */
static kv_settings_t settings; /* what CONFIG GET reports */

/* ---- Buffering -------------------------------------------------------- */

/* Room for n bytes in c->buf; false when out of memory. */
static bool conn_reserve(conn_t *c, size_t n)
{
    size_t cap = c->cap ? c->cap : 4096;
    char *buf;

    if (n <= c->cap)
        return true;
    while (cap < n)
        cap *= 2;
    buf = realloc(c->buf, cap);
    if (buf == NULL)
        return false;
    c->buf = buf;
    c->cap = cap;
    return true;
}

/* Keep bytes for later, with room for the rest of the request under way. */
static bool conn_keep(conn_t *c, const char *data, size_t len)
{
    size_t need = resp_needed(&c->parser);

    if (!conn_reserve(c, c->len + len > need ? c->len + len : need))
        return false;
    memcpy(c->buf + c->len, data, len);
    c->len += len;
    return true;
}

/* Drop the first n bytes of c->buf; give back a large buffer once empty. */
static void conn_consume(conn_t *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
    if (c->len == 0 && c->cap > OUT_KEEP) {
        free(c->buf);
        c->buf = NULL;
        c->cap = 0;
    }
}

/* Hand the replies built so far to the stream.  false: out of memory. */
static bool flush(pants_stream_t *s, worker_t *w)
{
    bool ok = !w->out.oom;

    if (ok && w->out.len > 0 && pants_stream_write(s, w->out.data, w->out.len) == -ENOMEM)
        ok = false;
    w->out.len = 0;
    w->out.oom = false;
    if (w->out.cap > OUT_KEEP)
        resp_buf_deinit(&w->out);
    return ok;
}

/* ---- Requests --------------------------------------------------------- */

static void protocol_error(pants_stream_t *s, conn_t *c, worker_t *w)
{
    char msg[128] = "ERR ";

    resp_strerror(&c->parser, msg + 4, sizeof(msg) - 4);
    resp_add_error(&w->out, msg);
    c->closing = true;
}

/* A reply could not be kept (out of memory): the client must not go on,
 * its replies would no longer match its requests. */
static void broken(pants_stream_t *s, conn_t *c, worker_t *w)
{
    w->out.len = 0; /* nothing of it may reach the next connection */
    c->closing = true;
    pants_stream_close(s);
}

/* Replies are piling up unsent: stop reading until they drain (on_write). */
static bool must_stall(pants_stream_t *s, conn_t *c, worker_t *w)
{
    if (w->out.len < OUT_FLUSH)
        return false;
    if (!flush(s, w)) {
        broken(s, c, w);
        return true;
    }
    if (pants_stream_pending(s) <= OUT_HIGH)
        return false;
    pants_stream_pause_reading(s);
    c->stalled = true;
    return true;
}

/* Run the requests in base[0..n); returns how many bytes they took (the
 * rest is an unfinished request, or waits for a stall to end). */
static size_t run(pants_stream_t *s, conn_t *c, worker_t *w, const char *base, size_t n)
{
    kv_ctx_t ctx = {.store = store, .out = &w->out, .settings = &settings};
    size_t used = 0;

    while (used < n && !c->closing && !c->stalled) {
        ssize_t r = resp_parse(&c->parser, base + used, n - used);
        if (r == RESP_NEED_MORE)
            break;
        if (r == RESP_ERROR) {
            protocol_error(s, c, w);
            break;
        }
        used += (size_t)r;
        if (c->parser.argc > 0 && kv_exec(&ctx, c->parser.argv, c->parser.argc) == KV_QUIT)
            c->closing = true;
        else if (must_stall(s, c, w))
            break;
    }
    return used;
}

/* Run what c->buf holds. */
static void run_buffered(pants_stream_t *s, conn_t *c, worker_t *w)
{
    conn_consume(c, run(s, c, w, c->buf, c->len));
}

/* The replies of this round out; the end after QUIT or an error. */
static void finish(pants_stream_t *s, conn_t *c, worker_t *w)
{
    if (!flush(s, w))
        broken(s, c, w);
    else if (c->closing)
        pants_stream_end(s);
}

static void on_read(pants_stream_t *s, const void *data, size_t len)
{
    conn_t *c = pants_stream_data(s);
    worker_t *w = &workers[pants_loop_index(pants_stream_loop(s))];
    size_t used = 0;

    if (c->closing)
        return;
    if (c->len == 0 && !c->stalled) /* the usual case: requests straight from the read */
        used = run(s, c, w, data, len);
    if (used < len && !c->closing && !conn_keep(c, (const char *)data + used, len - used)) {
        broken(s, c, w);
        return;
    }
    if (used == 0 && c->len > len && !c->stalled) /* what waited, then these bytes */
        run_buffered(s, c, w);
    finish(s, c, w);
}

/* The replies drained: a stalled client is served again. */
static void on_write(pants_stream_t *s)
{
    conn_t *c = pants_stream_data(s);
    worker_t *w = &workers[pants_loop_index(pants_stream_loop(s))];

    if (!c->stalled || c->closing)
        return;
    c->stalled = false;
    run_buffered(s, c, w);
    finish(s, c, w);
    if (!c->stalled && !c->closing)
        pants_stream_resume_reading(s);
}

static void on_close(pants_stream_t *s)
{
    conn_t *c = pants_stream_data(s);

    if (c == NULL)
        return;
    resp_parser_deinit(&c->parser);
    free(c->buf);
    free(c);
}

static void on_accept(pants_server_t *srv, pants_stream_t *conn)
{
    resp_limits_t lim = {.max_bulk = MAX_BULK};
    conn_t *c = calloc(1, sizeof(*c));

    (void)srv;
    if (c == NULL) {
        pants_stream_close(conn);
        return;
    }
    resp_parser_init(&c->parser, &lim);
    pants_stream_set_data(conn, c);
}

/* ---- Expiry sweep ----------------------------------------------------- */

/* Every SWEEP_MS on each worker: its share of the shards. */
static void sweep(void *arg)
{
    worker_t *w = arg;
    unsigned n = pants_engine_threads(engine);
    int64_t now = 0;

    for (unsigned i = w->index; i < KV_SHARDS; i += n) {
        kv_shard_t *sh = kv_shard(store, i);
        kv_shard_lock(sh);
        kv_sweep(sh, kv_now(&now));
        kv_shard_unlock(sh);
    }
}

/* ---- Setting up ------------------------------------------------------- */

static void on_listen(pants_server_t *srv)
{
    pants_addr_t a;
    char buf[128];

    if (pants_server_local_address(srv, &a) == 0 && pants_addr_format(&a, buf, sizeof(buf)) == 0)
        printf("listening on %s\n", buf);
    fflush(stdout);
}

static void on_error(pants_server_t *srv, int err)
{
    (void)srv;
    fprintf(stderr, "kv: accept: %s\n", pants_strerror(err));
}

static void on_signal(int sig)
{
    (void)sig;
    pants_engine_stop(engine);
}

static void raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int usage(const char *prog, int status)
{
    fprintf(status ? stderr : stdout,
            "usage: %s [options]\n"
            "  --threads N          worker threads (default: one per CPU)\n"
            "  --listen ADDR        address to listen on, again for more (default " DEFAULT_ADDR ")\n"
            "  --reuseport          a listening socket per worker (SO_REUSEPORT)\n"
            "  --max-conns N        hold at most N connections per address; more wait\n"
            "  --help               this text\n",
            prog);
    return status;
}

/* A whole decimal number, or false. */
static bool number(const char *arg, unsigned long long *out)
{
    char *end;

    errno = 0;
    *out = strtoull(arg, &end, 10);
    return errno == 0 && end != arg && *end == '\0' && arg[0] != '-';
}

/* The command line (see usage). */
typedef struct options_s {
    pants_engine_options_t engine;  /* --threads */
    const char *listen[MAX_LISTEN]; /* --listen */
    unsigned nlisten;               /* how many */
    bool reuseport;                 /* --reuseport */
    unsigned long long max_conns;   /* --max-conns */
} options_t;

/* Fill o from argv.  0, the exit status of a bad command line (usage
 * shown), or -1 once --help was shown. */
static int parse_options(int argc, char **argv, options_t *o)
{
    unsigned long long n;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return usage(argv[0], 0) - 1;
        else if (strcmp(arg, "--reuseport") == 0)
            o->reuseport = true;
        else if (i + 1 == argc)
            return usage(argv[0], 2);
        else if (strcmp(arg, "--listen") == 0 && o->nlisten < MAX_LISTEN)
            o->listen[o->nlisten++] = argv[++i];
        else if (!number(argv[++i], &n))
            return usage(argv[0], 2);
        else if (strcmp(arg, "--threads") == 0 && n <= 1024)
            o->engine.threads = (unsigned)n;
        else if (strcmp(arg, "--max-conns") == 0)
            o->max_conns = n;
        else
            return usage(argv[0], 2);
    }
    if (o->nlisten == 0)
        o->listen[o->nlisten++] = DEFAULT_ADDR;
    return 0;
}

/* A server on addr, with the options.  0 or a negative errno, said on
 * stderr. */
static int start_server(const options_t *o, const char *addr)
{
    pants_server_callbacks_t scb = {.on_listen = on_listen, .on_accept = on_accept, .on_error = on_error};
    pants_stream_callbacks_t ccb = {.on_read = on_read, .on_write = on_write, .on_close = on_close};
    pants_server_t *srv = pants_server_new(engine, &scb, &ccb, NULL);
    int rc;

    if (srv == NULL) {
        perror("kv: pants_server_new");
        return -errno;
    }
    if ((rc = pants_server_set_max_connections(srv, (size_t)o->max_conns)) < 0)
        fprintf(stderr, "kv: --max-conns: %s\n", pants_strerror(rc));
    else if (o->reuseport && (rc = pants_server_set_reuseport(srv, true)) < 0)
        fprintf(stderr, "kv: --reuseport: %s\n", pants_strerror(rc));
    else if ((rc = pants_server_listen(srv, addr, 0)) < 0)
        fprintf(stderr, "kv: listen on %s: %s%s\n", addr, pants_strerror(rc),
                o->reuseport && rc == -EINVAL ? " (--reuseport takes IP addresses only)" : "");
    return rc;
}

/* The workers' state and their sweep timers.  0 or -1 (said why). */
static int start_workers(void)
{
    unsigned n = pants_engine_threads(engine);

    workers = calloc(n, sizeof(*workers));
    if (workers == NULL) {
        perror("kv");
        return -1;
    }
    for (unsigned i = 0; i < n; i++) {
        workers[i].index = i;
        workers[i].loop = pants_engine_loop(engine, i);
        if (pants_timer_cycle(workers[i].loop, SWEEP_MS, sweep, &workers[i]) == NULL) {
            perror("kv: pants_timer_cycle");
            return -1;
        }
    }
    return 0;
}

static void free_all(void)
{
    pants_engine_free(engine);
    for (unsigned i = 0; workers != NULL && i < settings.threads; i++)
        resp_buf_deinit(&workers[i].out);
    free(workers);
    kv_store_free(store);
}

int main(int argc, char **argv)
{
    options_t o = {0};
    int rc = parse_options(argc, argv, &o);

    if (rc != 0)
        return rc < 0 ? 0 : rc;
    raise_fd_limit();
    store = kv_store_new();
    engine = store != NULL ? pants_engine_new(&o.engine) : NULL;
    if (engine == NULL) {
        perror("kv: starting");
        kv_store_free(store);
        return 1;
    }
    settings = (kv_settings_t){
        .threads = pants_engine_threads(engine), .max_clients = (size_t)o.max_conns, .max_bulk = MAX_BULK};
    rc = start_workers();
    for (unsigned i = 0; rc == 0 && i < o.nlisten; i++)
        rc = start_server(&o, o.listen[i]);
    if (rc == 0) {
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        rc = pants_engine_run(engine);
    }
    free_all();
    return rc == 0 ? 0 : 1;
}
