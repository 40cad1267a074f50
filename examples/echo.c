/* echo.c -- a multi-threaded echo server: the first thing to run.
 *
 *   examples/echo [--threads N] [--listen ADDR] [--line] [--work-us US]
 *                 [--idle-timeout MS] [--frame-timeout MS] [--max-conns N] [--reuseport]
 *                 [--tls-cert FILE --tls-key FILE [--tls-ca FILE] [--alpn LIST] [--ktls]]
 *                 [--verbose]
 *
 * Every connection gets back what it sends.  With --line, input is cut at
 * "\n" and each line is echoed by its own on_read and write (the line mode
 * of the benchmark).  --work-us burns that much CPU per message, to show
 * how the worker threads share a CPU-bound load.  Ctrl-C stops the engine:
 * queued replies still go out, then the program exits.
 *
 * No peer can make it hold memory or a connection without bound.  A peer
 * that sends and never reads fills its reply queue up to the library's
 * default high watermark (1 MiB); then its reading pauses and TCP stops
 * it, with no code here.  --idle-timeout closes a connection that neither
 * sent nor received anything for MS, --frame-timeout (with --line) one
 * whose unfinished line has waited MS since its first byte, however
 * slowly it trickles; both are the stream options every accepted
 * connection starts with.  --max-conns caps the open connections: more
 * clients wait in the listen backlog until one closes.  --reuseport gives
 * every worker a listening socket of its own (SO_REUSEPORT) instead of the
 * acceptor's hand-off (bench/run compares the two).  --verbose says on
 * stderr which connection timed out.
 *
 * --tls-cert and --tls-key make it a TLS server (scripts/make-cert makes
 * a pair to try): every connection does a handshake first, then echoes
 * as before.  --tls-ca requires clients to show a certificate signed by
 * one of its CAs, --alpn picks the first protocol of LIST that a client
 * offers, --ktls lets the kernel encrypt where it can.  --verbose also
 * says which handshake failed and why.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "pants.h"

static pants_engine_t *engine;  /* for the signal handler */
static bool line_mode;          /* --line */
static long work_ns;            /* --work-us, in nanoseconds */
static pants_tls_options_t tls; /* --tls-cert and the rest; no cert_file: no TLS */

static void burn(void)
{
    struct timespec start, now;

    clock_gettime(CLOCK_MONOTONIC, &start);
    do
        clock_gettime(CLOCK_MONOTONIC, &now);
    while ((now.tv_sec - start.tv_sec) * 1000000000L + (now.tv_nsec - start.tv_nsec) < work_ns);
}

static void on_read(pants_stream_t *s, const void *data, size_t len)
{
    static const char nl = '\n';

    if (work_ns > 0)
        burn();
    pants_stream_write(s, data, len);
    if (line_mode)
        pants_stream_write(s, &nl, 1);
}

/* --verbose: one line per connection that ran out of time, then close it
 * (what a NULL on_timeout would have done). */
static void on_timeout(pants_stream_t *s, int kind)
{
    static const char *const kinds[] = {"?", "idle", "read", "write", "frame"};
    pants_addr_t a;
    char peer[128] = "?";

    if (pants_stream_remote_address(s, &a) == 0)
        pants_addr_format(&a, peer, sizeof(peer));
    fprintf(stderr, "echo: %s: %s timeout, closing\n", peer, kinds[kind >= 1 && kind <= 4 ? kind : 0]);
    pants_stream_close(s);
}

/* --verbose: a connection's I/O error, or its failed TLS handshake
 * (pants_strerror names the reason on this thread), then close it. */
static void on_conn_error(pants_stream_t *s, int err)
{
    pants_addr_t a;
    char peer[128] = "?";

    if (pants_stream_remote_address(s, &a) == 0)
        pants_addr_format(&a, peer, sizeof(peer));
    fprintf(stderr, "echo: %s: %s, closing\n", peer, pants_strerror(err));
    pants_stream_close(s);
}

static void on_accept(pants_server_t *srv, pants_stream_t *conn)
{
    (void)srv;
    if (line_mode)
        pants_stream_read_until(conn, "\n", 1);
}

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
    fprintf(stderr, "echo: accept: %s\n", pants_strerror(err));
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
            "  --listen ADDR        address to listen on (default 127.0.0.1:7000)\n"
            "  --line               echo line by line (cut at \"\\n\")\n"
            "  --work-us US         burn US microseconds of CPU per message\n"
            "  --idle-timeout MS    close a connection idle (nothing read or sent) for MS\n"
            "  --frame-timeout MS   close a connection whose unfinished line waited MS\n"
            "  --max-conns N        hold at most N connections; more wait to be accepted\n"
            "  --reuseport          a listening socket per worker (SO_REUSEPORT)\n"
            "  --tls-cert FILE      speak TLS with this PEM certificate (chain)\n"
            "  --tls-key FILE       and this PEM private key (default: in --tls-cert)\n"
            "  --tls-ca FILE        require client certificates signed by these CAs\n"
            "  --alpn LIST          accept these ALPN protocols, e.g. h2,http/1.1\n"
            "  --ktls               let the kernel encrypt where it can (kernel TLS)\n"
            "  --verbose            say on stderr which connection timed out or failed\n"
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

/* --tls-cert: a server context, handed to srv (which keeps its own
 * reference).  0 or a negative errno, said on stderr. */
static int set_tls(pants_server_t *srv)
{
    struct ssl_ctx_st *ctx;
    int rc;

    ctx = pants_tls_server_ctx(&tls);
    if (ctx == NULL) {
        rc = -errno;
        fprintf(stderr, "echo: --tls-cert/--tls-key/--tls-ca/--alpn: %s\n",
                rc == -EINVAL ? pants_strerror(PANTS_ETLS) : pants_strerror(rc));
        return rc;
    }
    rc = pants_server_set_tls(srv, ctx);
    if (rc < 0)
        fprintf(stderr, "echo: TLS: %s\n", pants_strerror(rc));
    pants_tls_ctx_free(ctx);
    return rc;
}

/* One listener per worker or not, the limits every connection starts with, TLS,
 * then listen.  0 or a negative errno, said on stderr. */
static int start_server(pants_server_t *srv, const char *addr, const pants_stream_options_t *o,
                        size_t max_conns, bool reuseport)
{
    int rc;

    if (reuseport && (rc = pants_server_set_reuseport(srv, true)) < 0)
        fprintf(stderr, "echo: --reuseport: %s\n", pants_strerror(rc));
    else if ((rc = pants_server_set_stream_options(srv, o)) < 0)
        fprintf(stderr, "echo: --idle-timeout/--frame-timeout: %s\n", pants_strerror(rc));
    else if ((rc = pants_server_set_max_connections(srv, max_conns)) < 0)
        fprintf(stderr, "echo: --max-conns: %s\n", pants_strerror(rc));
    else if (tls.cert_file != NULL && (rc = set_tls(srv)) < 0)
        return rc; /* set_tls said why */
    else if ((rc = pants_server_listen(srv, addr, 0)) < 0)
        fprintf(stderr, "echo: listen on %s: %s\n", addr, pants_strerror(rc));
    return rc;
}

int main(int argc, char **argv)
{
    pants_engine_options_t opts = {0};
    pants_stream_options_t conn_opts = {0}; /* zero: the library's defaults */
    unsigned long long n, max_conns = 0;
    bool reuseport = false;
    const char *listen_addr = "127.0.0.1:7000";
    pants_server_callbacks_t scb = {.on_listen = on_listen, .on_accept = on_accept, .on_error = on_error};
    pants_stream_callbacks_t ccb = {.on_read = on_read}; /* on_timeout NULL: close */

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return usage(argv[0], 0);
        else if (strcmp(arg, "--line") == 0)
            line_mode = true;
        else if (strcmp(arg, "--verbose") == 0 || strcmp(arg, "-v") == 0) {
            ccb.on_timeout = on_timeout;
            ccb.on_error = on_conn_error;
        } else if (strcmp(arg, "--ktls") == 0)
            tls.ktls = true;
        else if (strcmp(arg, "--reuseport") == 0)
            reuseport = true;
        else if (i + 1 == argc)
            return usage(argv[0], 2);
        else if (strcmp(arg, "--listen") == 0)
            listen_addr = argv[++i];
        else if (strcmp(arg, "--tls-cert") == 0)
            tls.cert_file = argv[++i];
        else if (strcmp(arg, "--tls-key") == 0)
            tls.key_file = argv[++i];
        else if (strcmp(arg, "--tls-ca") == 0)
            tls.ca_file = argv[++i];
        else if (strcmp(arg, "--alpn") == 0)
            tls.alpn = argv[++i];
        else if (!number(argv[++i], &n)) /* the rest take a number */
            return usage(argv[0], 2);
        else if (strcmp(arg, "--threads") == 0)
            opts.threads = (unsigned)n;
        else if (strcmp(arg, "--work-us") == 0)
            work_ns = (long)n * 1000L;
        else if (strcmp(arg, "--idle-timeout") == 0)
            conn_opts.idle_timeout_ms = n;
        else if (strcmp(arg, "--frame-timeout") == 0)
            conn_opts.frame_timeout_ms = n;
        else if (strcmp(arg, "--max-conns") == 0)
            max_conns = n;
        else
            return usage(argv[0], 2);
    }
    if (tls.cert_file == NULL && (tls.key_file || tls.ca_file || tls.alpn || tls.ktls))
        return usage(argv[0], 2); /* TLS options without a certificate */
    raise_fd_limit();
    engine = pants_engine_new(&opts);
    if (engine == NULL) {
        perror("echo: pants_engine_new");
        return 1;
    }
    pants_server_t *srv = pants_server_new(engine, &scb, &ccb, NULL);
    if (srv == NULL)
        perror("echo: pants_server_new");
    if (srv == NULL || start_server(srv, listen_addr, &conn_opts, (size_t)max_conns, reuseport) < 0) {
        pants_engine_free(engine);
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    int rc = pants_engine_run(engine);
    pants_engine_free(engine);
    return rc == 0 ? 0 : 1;
}
