/* http.c -- an HTTP/1.1 server on pants: the TechEmpower routes and files.
 *
 *   examples/http [--threads N] [--listen ADDR]... [--root DIR]
 *                 [--max-conns N] [--max-body BYTES] [--max-head BYTES]
 *                 [--header-timeout MS] [--keepalive-timeout MS] [--drain-timeout MS]
 *                 [--tls-cert FILE --tls-key FILE] [--reuseport] [--proxy-protocol]
 *                 [--access-log] [--no-openat2]
 *
 * GET /plaintext answers "Hello, World!" and GET /json
 * {"message":"Hello, World!"}, as the TechEmpower plaintext and JSON tests
 * ask (Server, Date, Content-Type, Content-Length); POST /echo sends the
 * request body back; with --root, every other path is a file under DIR
 * (http-file.c).  Keep-alive, pipelining, HEAD, chunked request bodies
 * and HTTP/1.0 work as RFC 9112 says; http-conn.c has the connection and
 * its error statuses, http-parse.c the parser.
 *
 * Each worker loop keeps the Date of the current second and the whole
 * replies of /plaintext and /json made with it: a timer of the loop looks
 * at the clock ten times a second and makes them again when the second
 * changed, so a request costs no clock read, no formatting and no
 * allocation.
 *
 * SIGTERM (or SIGINT) drains: the listening sockets close (new clients
 * are refused, or go to another process on the port; one accepted in
 * between is closed), each reply from then on says "Connection: close"
 * and ends its connection, idle keep-alive connections close once nothing
 * has arrived for a second, and a request in flight (a head or body still
 * arriving) is finished and answered.  Once no connection is left -- or after
 * --drain-timeout -- the engine stops and the program exits 0.  A second
 * signal stops at once.  The handler only sets a flag (and, the second
 * time, calls pants_engine_stop, which is async-signal-safe); each loop's
 * timer sees the flag and drains its own connections.
 *
 * --tls-cert and --tls-key serve HTTPS (ALPN "http/1.1"); --reuseport
 * gives every loop its own listening socket; --proxy-protocol expects a
 * PROXY protocol header (v1 or v2) first on every connection, and the
 * address it names is the one --access-log prints.  --no-openat2 resolves
 * file paths one component at a time, as on kernels without openat2.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "http-internal.h"

#define MAX_LISTEN     16   /* --listen, at most this often */
#define TICK_MS        100  /* how often each loop looks at the clock and the drain flag */
#define DRAIN_IDLE_MS  1000 /* draining: an idle connection closes after this much silence */
#define DEFAULT_PORT   "127.0.0.1:8080"
#define DEFAULT_BODY   (1024 * 1024)
#define DEFAULT_HEAD   (16 * 1024)
#define DEFAULT_HEADER 10000 /* ms */
#define DEFAULT_IDLE   60000 /* ms */
#define DEFAULT_DRAIN  10000 /* ms */

http_config_t http_config = {.root_fd = -1};

static pants_engine_t *engine;   /* for the signal handler */
static http_worker_t *workers;   /* one per loop */
static unsigned nworkers;        /* how many */
static atomic_int stop_signal;   /* a SIGTERM or SIGINT came */
static atomic_int drain_started; /* a loop has armed the drain's time bound */
static atomic_size_t open_conns; /* connections accepted and not yet closed */
static uint64_t drain_ms;        /* --drain-timeout */
static pants_tls_options_t tls;  /* --tls-cert, --tls-key; no cert_file: no TLS */
static bool reuseport;           /* --reuseport */
static bool proxy_protocol;      /* --proxy-protocol */
static pants_server_t *servers[MAX_LISTEN]; /* one per --listen, listening */
static unsigned nservers;                   /* how many */

/* ---- Loops, connections, draining ----------------------------------------- */

http_worker_t *http_worker_of(pants_loop_t *l)
{
    return &workers[pants_loop_index(l)];
}

bool http_is_stopping(void)
{
    return atomic_load_explicit(&stop_signal, memory_order_relaxed) != 0;
}

void http_conn_counted(void)
{
    atomic_fetch_add(&open_conns, 1);
}

/* The last connection of a drain closed: stop. */
void http_conn_uncounted(void)
{
    if (atomic_fetch_sub(&open_conns, 1) == 1 && http_is_stopping())
        pants_engine_stop(engine);
}

static void drain_expired(void *arg)
{
    (void)arg;
    fprintf(stderr, "http: connections still open after the drain timeout, stopping\n");
    pants_engine_stop(engine);
}

/* This loop's part of a drain; the first loop also arms its bound. */
static void start_drain(http_worker_t *w)
{
    uint64_t idle = DRAIN_IDLE_MS;

    if (http_config.keepalive_ms != 0 && http_config.keepalive_ms < idle)
        idle = http_config.keepalive_ms;
    if (atomic_exchange(&drain_started, 1) == 0) {
        for (unsigned i = 0; i < nservers; i++) /* new clients: refused, or another process's */
            pants_server_stop_listening(servers[i]);
        if (pants_timer_defer(w->loop, drain_ms, drain_expired, NULL) == NULL)
            pants_engine_stop(engine); /* no bound to rely on: stop now */
    }
    http_worker_drain(w, idle);
    if (atomic_load(&open_conns) == 0)
        pants_engine_stop(engine);
}

/* Every TICK_MS on each loop: a new second, and the drain flag. */
static void tick(void *arg)
{
    http_worker_t *w = arg;

    http_worker_refresh(w, time(NULL));
    if (!w->draining && http_is_stopping())
        start_drain(w);
}

static void on_signal(int sig)
{
    (void)sig;
    if (atomic_exchange(&stop_signal, 1) != 0)
        pants_engine_stop(engine); /* the second one: now */
}

/* The per-loop state and its timer, before the engine runs. */
static int make_workers(void)
{
    nworkers = pants_engine_threads(engine);
    workers = aligned_alloc(64, nworkers * sizeof(*workers));
    if (workers == NULL)
        return -ENOMEM;
    memset(workers, 0, nworkers * sizeof(*workers));
    for (unsigned i = 0; i < nworkers; i++) {
        workers[i].loop = pants_engine_loop(engine, i);
        http_worker_refresh(&workers[i], time(NULL));
        if (pants_timer_cycle(workers[i].loop, TICK_MS, tick, &workers[i]) == NULL)
            return -errno;
    }
    return 0;
}

/* ---- Servers ------------------------------------------------------------------ */

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
    fprintf(stderr, "http: accept: %s\n", pants_strerror(err));
}

/* --tls-cert: a server context for srv (which keeps its own reference). */
static int set_tls(pants_server_t *srv)
{
    struct ssl_ctx_st *ctx = pants_tls_server_ctx(&tls);
    int rc;

    if (ctx == NULL) {
        rc = -errno;
        fprintf(stderr, "http: --tls-cert/--tls-key: %s\n",
                rc == -EINVAL ? pants_strerror(PANTS_ETLS) : pants_strerror(rc));
        return rc;
    }
    rc = pants_server_set_tls(srv, ctx);
    if (rc < 0)
        fprintf(stderr, "http: TLS: %s\n", pants_strerror(rc));
    pants_tls_ctx_free(ctx);
    return rc;
}

/* Settings, then listen on addr.  0 or a negative errno, said on stderr. */
static int start_server(const char *addr, size_t max_conns)
{
    static const pants_server_callbacks_t scb = {
        .on_listen = on_listen, .on_accept = http_on_accept, .on_error = on_error};
    pants_stream_options_t o = {.read_limit = http_config.max_head,
                                .idle_timeout_ms = http_config.keepalive_ms,
                                .frame_timeout_ms = http_config.header_ms};
    pants_server_t *srv = pants_server_new(engine, &scb, &http_conn_callbacks, NULL);
    int rc;

    if (srv == NULL) {
        perror("http: pants_server_new");
        return -errno;
    }
    if ((rc = pants_server_set_stream_options(srv, &o)) < 0)
        fprintf(stderr, "http: --max-head/--header-timeout/--keepalive-timeout: %s\n", pants_strerror(rc));
    else if ((rc = pants_server_set_max_connections(srv, max_conns)) < 0)
        fprintf(stderr, "http: --max-conns: %s\n", pants_strerror(rc));
    else if (reuseport && (rc = pants_server_set_reuseport(srv, true)) < 0)
        fprintf(stderr, "http: --reuseport: %s\n", pants_strerror(rc));
    else if (proxy_protocol && (rc = pants_server_set_proxy_protocol(srv, true)) < 0)
        fprintf(stderr, "http: --proxy-protocol: %s\n", pants_strerror(rc));
    else if (tls.cert_file != NULL && (rc = set_tls(srv)) < 0)
        return rc; /* set_tls said why */
    else if ((rc = pants_server_listen(srv, addr, 0)) < 0)
        fprintf(stderr, "http: listen on %s: %s\n", addr, pants_strerror(rc));
    else
        servers[nservers++] = srv;
    return rc;
}

/* ---- The command line ------------------------------------------------------ */

typedef struct options_s {
    pants_engine_options_t engine;  /* --threads */
    const char *listen[MAX_LISTEN]; /* --listen */
    unsigned nlisten;               /* how many */
    unsigned long long max_conns;   /* --max-conns */
    const char *root;               /* --root */
    bool no_openat2;                /* --no-openat2 */
} options_t;

static int usage(const char *prog, int status)
{
    fprintf(status ? stderr : stdout,
            "usage: %s [options]\n"
            "  --threads N             worker threads (default: one per CPU)\n"
            "  --listen ADDR           listen on ADDR; repeatable (default " DEFAULT_PORT ")\n"
            "  --root DIR              serve the files under DIR (GET, HEAD, Range, If-Modified-Since)\n"
            "  --max-conns N           hold at most N connections (per --listen); more wait\n"
            "  --max-body BYTES        largest request body, else 413 (default 1048576)\n"
            "  --max-head BYTES        largest request head, else 431 (default 16384)\n"
            "  --header-timeout MS     a head not complete after MS gets a 408 (default 10000)\n"
            "  --keepalive-timeout MS  close a connection idle for MS; 0 = never (default 60000)\n"
            "  --drain-timeout MS      after SIGTERM, stop anyway after MS (default 10000)\n"
            "  --tls-cert FILE         serve HTTPS with this PEM certificate (chain)\n"
            "  --tls-key FILE          and this PEM private key (default: in --tls-cert)\n"
            "  --reuseport             a listening socket per worker (SO_REUSEPORT)\n"
            "  --proxy-protocol        connections start with a PROXY protocol header (v1/v2)\n"
            "  --access-log            a line per request on stdout (remote address first)\n"
            "  --no-openat2            resolve --root paths per component, without openat2\n"
            "  --help                  this text\n"
            "routes: GET /plaintext, GET /json, POST /echo (the body back), files under --root\n",
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

/* An option without a value; false if arg is none. */
static bool flag(const char *arg)
{
    if (strcmp(arg, "--reuseport") == 0)
        reuseport = true;
    else if (strcmp(arg, "--proxy-protocol") == 0)
        proxy_protocol = true;
    else if (strcmp(arg, "--access-log") == 0)
        http_config.access_log = true;
    else
        return false;
    return true;
}

/* An option with a number; false if arg is none. */
static bool numeric(const char *arg, unsigned long long n, options_t *o)
{
    if (strcmp(arg, "--threads") == 0)
        o->engine.threads = (unsigned)n;
    else if (strcmp(arg, "--max-conns") == 0)
        o->max_conns = n;
    else if (strcmp(arg, "--max-body") == 0)
        http_config.max_body = n;
    else if (strcmp(arg, "--max-head") == 0 && n > 0)
        http_config.max_head = (size_t)n;
    else if (strcmp(arg, "--header-timeout") == 0)
        http_config.header_ms = n;
    else if (strcmp(arg, "--keepalive-timeout") == 0)
        http_config.keepalive_ms = n;
    else if (strcmp(arg, "--drain-timeout") == 0)
        drain_ms = n;
    else
        return false;
    return true;
}

/* 0, or the exit status of a bad command line (after the usage). */
static int parse_args(int argc, char **argv, options_t *o)
{
    unsigned long long n;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return usage(argv[0], 0) - 1;
        else if (flag(arg))
            continue;
        else if (strcmp(arg, "--no-openat2") == 0)
            o->no_openat2 = true;
        else if (i + 1 == argc)
            return usage(argv[0], 2);
        else if (strcmp(arg, "--listen") == 0 && o->nlisten < MAX_LISTEN)
            o->listen[o->nlisten++] = argv[++i];
        else if (strcmp(arg, "--root") == 0)
            o->root = argv[++i];
        else if (strcmp(arg, "--tls-cert") == 0)
            tls.cert_file = argv[++i];
        else if (strcmp(arg, "--tls-key") == 0)
            tls.key_file = argv[++i];
        else if (!number(argv[++i], &n) || !numeric(arg, n, o))
            return usage(argv[0], 2);
    }
    if (tls.key_file != NULL && tls.cert_file == NULL)
        return usage(argv[0], 2);
    if (o->nlisten == 0)
        o->listen[o->nlisten++] = DEFAULT_PORT;
    return 0;
}

static void raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Engine, workers, servers.  0 or 1 (said on stderr). */
static int set_up(const options_t *o)
{
    int rc;

    if (o->root != NULL && (rc = http_files_open(o->root, !o->no_openat2)) < 0) {
        fprintf(stderr, "http: --root %s: %s\n", o->root, strerror(-rc));
        return 1;
    }
    if ((engine = pants_engine_new(&o->engine)) == NULL) {
        perror("http: pants_engine_new");
        return 1;
    }
    if ((rc = make_workers()) < 0) {
        fprintf(stderr, "http: the loops' timers: %s\n", pants_strerror(rc));
        return 1;
    }
    for (unsigned i = 0; i < o->nlisten; i++)
        if (start_server(o->listen[i], (size_t)o->max_conns) < 0)
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    options_t o = {0};
    int rc;

    http_config.max_body = DEFAULT_BODY;
    http_config.max_head = DEFAULT_HEAD;
    http_config.header_ms = DEFAULT_HEADER;
    http_config.keepalive_ms = DEFAULT_IDLE;
    drain_ms = DEFAULT_DRAIN;
    tls.alpn = "http/1.1";
    if ((rc = parse_args(argc, argv, &o)) != 0)
        return rc < 0 ? 0 : rc;
    if (http_config.access_log)
        setvbuf(stdout, NULL, _IOLBF, 0);
    raise_fd_limit();
    rc = set_up(&o);
    if (rc == 0) {
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        rc = pants_engine_run(engine) == 0 ? 0 : 1;
    }
    pants_engine_free(engine);
    free(workers);
    if (http_config.root_fd >= 0)
        close(http_config.root_fd);
    return rc;
}
