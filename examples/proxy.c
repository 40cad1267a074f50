/* proxy.c -- a multi-threaded TCP/Unix proxy with back-pressure.
 *
 *   examples/proxy --to ADDR [--listen ADDR] [--threads N]
 *                  [--connect-timeout MS] [--high BYTES] [--low BYTES]
 *
 * Every accepted connection gets its own connection to --to, made on the
 * same loop, so both ends of a pair run on one thread and call each other
 * directly, without locks or posts.  Bytes read on one side are written to
 * the other.  Both streams of a pair have write watermarks (--high, and
 * --low, by default a quarter of --high): when one side's queue rises past
 * the high one (its peer reads slowly), its on_write_high pauses reading on
 * the side that feeds it, and its on_write_low resumes that side once the
 * queue has fallen to the low one.  So memory stays bounded per direction
 * (by --high, plus what the feeding side reads in the loop iteration before
 * on_write_high runs), and TCP slows the fast peer down.
 *
 * The client's bytes wait (reading paused) until the upstream connect
 * succeeded; a connect that fails or takes longer than --connect-timeout
 * closes the client.  When either side closes, the other is ended: what is
 * queued for it still goes out.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "pants.h"

typedef struct pair_s {
    pants_stream_t *down; /* the accepted client, or NULL once closed */
    pants_stream_t *up;   /* the connection to --to, or NULL once closed */
} pair_t;

static pants_engine_t *engine;             /* for the signal handler */
static const char *upstream;               /* --to */
static uint64_t connect_timeout_ms = 5000; /* --connect-timeout */
static size_t high_water = 256 * 1024;     /* --high */
static size_t low_water;                   /* --low; 0 = high_water / 4 */

static pants_stream_t *other_side(pants_stream_t *s)
{
    pair_t *p = pants_stream_data(s);

    return s == p->down ? p->up : p->down;
}

static void on_read(pants_stream_t *s, const void *data, size_t len)
{
    pants_stream_t *to = other_side(s);

    if (to == NULL || pants_stream_write(to, data, len) < 0)
        pants_stream_close(s);
}

/* s's queue passed --high: stop reading the side that feeds it. */
static void on_write_high(pants_stream_t *s)
{
    pants_stream_t *from = other_side(s);

    if (from != NULL)
        pants_stream_pause_reading(from);
}

/* s's queue fell to --low: the side that feeds it may read again. */
static void on_write_low(pants_stream_t *s)
{
    pants_stream_t *from = other_side(s);

    if (from != NULL)
        pants_stream_resume_reading(from);
}

static void on_close(pants_stream_t *s)
{
    pair_t *p = pants_stream_data(s);
    pants_stream_t *other = other_side(s);

    if (s == p->down)
        p->down = NULL;
    else
        p->up = NULL;
    if (other != NULL)
        pants_stream_end(other); /* what is queued for it still goes out */
    else
        free(p);
}

static void up_on_connect(pants_stream_t *up)
{
    pair_t *p = pants_stream_data(up);

    if (p->down != NULL)
        pants_stream_resume_reading(p->down);
}

static void up_on_connect_error(pants_stream_t *up, int err)
{
    fprintf(stderr, "proxy: connect to %s: %s\n", upstream, pants_strerror(err));
    pants_stream_close(up); /* on_close then closes the client */
}

static const pants_stream_callbacks_t up_cb = {
    .on_connect = up_on_connect,
    .on_connect_error = up_on_connect_error,
    .on_read = on_read,
    .on_close = on_close,
    .on_write_high = on_write_high,
    .on_write_low = on_write_low,
};

static void on_accept(pants_server_t *srv, pants_stream_t *down)
{
    pair_t *p = calloc(1, sizeof(*p));
    int rc = -ENOMEM;

    (void)srv;
    if (p != NULL) {
        p->down = down;
        pants_stream_set_data(down, p);
        pants_stream_pause_reading(down); /* until upstream is there */
        p->up = pants_stream_new(pants_stream_loop(down), &up_cb, p);
        rc = p->up ? 0 : -errno;
    }
    if (rc == 0)
        rc = pants_stream_set_write_watermarks(p->up, low_water, high_water);
    if (rc == 0)
        rc = pants_stream_set_connect_timeout(p->up, connect_timeout_ms);
    if (rc == 0)
        rc = pants_stream_connect(p->up, upstream);
    if (rc == 0)
        return;
    fprintf(stderr, "proxy: %s: %s\n", upstream, pants_strerror(rc));
    if (p != NULL && p->up != NULL)
        pants_stream_close(p->up); /* its on_close ends down */
    else
        pants_stream_close(down); /* its on_close frees p, if any */
}

/* A client closed before its pair was made has no pair. */
static void down_on_close(pants_stream_t *s)
{
    if (pants_stream_data(s) != NULL)
        on_close(s);
}

static void on_listen(pants_server_t *srv)
{
    pants_addr_t a;
    char buf[128];

    if (pants_server_local_address(srv, &a) == 0 && pants_addr_format(&a, buf, sizeof(buf)) == 0)
        printf("proxying %s to %s\n", buf, upstream);
    fflush(stdout);
}

static void on_server_error(pants_server_t *srv, int err)
{
    (void)srv;
    fprintf(stderr, "proxy: accept: %s\n", pants_strerror(err));
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
            "usage: %s --to ADDR [options]\n"
            "  --to ADDR              where to connect each client (required)\n"
            "  --listen ADDR          address to listen on (default 127.0.0.1:7100)\n"
            "  --threads N            worker threads (default: one per CPU)\n"
            "  --connect-timeout MS   give up an upstream connect after MS (default 5000)\n"
            "  --high BYTES           a side's queue past this pauses the other side (default 262144)\n"
            "  --low BYTES            ... and at this it resumes it (default: --high / 4)\n"
            "  --help                 this text\n",
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

int main(int argc, char **argv)
{
    pants_engine_options_t opts = {0};
    pants_stream_options_t down_opts = {0}; /* the accepted side's watermarks */
    unsigned long long n;
    const char *listen_addr = "127.0.0.1:7100";
    pants_server_callbacks_t scb = {
        .on_listen = on_listen, .on_accept = on_accept, .on_error = on_server_error};
    pants_stream_callbacks_t down_cb = {
        .on_read = on_read,
        .on_close = down_on_close,
        .on_write_high = on_write_high,
        .on_write_low = on_write_low,
    };

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return usage(argv[0], 0);
        else if (i + 1 == argc)
            return usage(argv[0], 2);
        else if (strcmp(arg, "--to") == 0)
            upstream = argv[++i];
        else if (strcmp(arg, "--listen") == 0)
            listen_addr = argv[++i];
        else if (!number(argv[++i], &n)) /* the rest take a number */
            return usage(argv[0], 2);
        else if (strcmp(arg, "--threads") == 0)
            opts.threads = (unsigned)n;
        else if (strcmp(arg, "--connect-timeout") == 0)
            connect_timeout_ms = n;
        else if (strcmp(arg, "--high") == 0)
            high_water = (size_t)n;
        else if (strcmp(arg, "--low") == 0)
            low_water = (size_t)n;
        else
            return usage(argv[0], 2);
    }
    if (low_water == 0)
        low_water = high_water / 4;
    if (upstream == NULL || high_water == 0 || low_water >= high_water) {
        fprintf(stderr, "proxy: --to is required, and 0 < --low < --high\n");
        return usage(argv[0], 2);
    }
    down_opts.write_low = low_water;
    down_opts.write_high = high_water;
    raise_fd_limit();
    engine = pants_engine_new(&opts);
    if (engine == NULL) {
        perror("proxy: pants_engine_new");
        return 1;
    }
    pants_server_t *srv = pants_server_new(engine, &scb, &down_cb, NULL);
    int rc = srv ? pants_server_set_stream_options(srv, &down_opts) : -errno;
    if (rc == 0)
        rc = pants_server_listen(srv, listen_addr, 0);
    if (rc < 0) {
        fprintf(stderr, "proxy: listen on %s: %s\n", listen_addr, pants_strerror(rc));
        pants_engine_free(engine);
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    rc = pants_engine_run(engine);
    pants_engine_free(engine);
    return rc == 0 ? 0 : 1;
}
