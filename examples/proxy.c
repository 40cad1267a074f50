/* proxy.c -- a multi-threaded TCP/Unix proxy with back-pressure.
 *
 *   examples/proxy --to ADDR [--listen ADDR] [--threads N]
 *                  [--connect-timeout MS] [--high BYTES]
 *
 * Every accepted connection gets its own connection to --to, made on the
 * same loop, so both ends of a pair run on one thread and call each other
 * directly, without locks or posts.  Bytes read on one side are written to
 * the other.  When the other side has more than --high bytes waiting (its
 * peer reads slowly), this side stops reading (pants_stream_pause_reading);
 * the other side's on_write (its queue drained) resumes it.  So memory stays
 * bounded by --high per direction, and TCP slows the fast peer down.
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

static pants_engine_t *engine;           /* for the signal handler */
static const char *upstream;             /* --to */
static uint64_t connect_timeout_ms = 5000; /* --connect-timeout */
static size_t high_water = 256 * 1024;   /* --high */

static pants_stream_t *other_side(pants_stream_t *s)
{
    pair_t *p = pants_stream_data(s);

    return s == p->down ? p->up : p->down;
}

static void on_read(pants_stream_t *s, const void *data, size_t len)
{
    pants_stream_t *to = other_side(s);

    if (to == NULL || pants_stream_write(to, data, len) < 0) {
        pants_stream_close(s);
        return;
    }
    if (pants_stream_pending(to) > high_water)
        pants_stream_pause_reading(s); /* until to's on_write */
}

/* s's queue went out: the side that feeds it may read again. */
static void on_write(pants_stream_t *s)
{
    pants_stream_t *from = other_side(s);

    if (from != NULL && pants_stream_is_reading_paused(from) && pants_stream_is_connected(s))
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
    .on_write = on_write,
    .on_close = on_close,
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

static int usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s --to ADDR [--listen ADDR] [--threads N] [--connect-timeout MS] [--high BYTES]\n",
            prog);
    return 2;
}

int main(int argc, char **argv)
{
    pants_engine_options_t opts = {0};
    const char *listen_addr = "127.0.0.1:7100";
    pants_server_callbacks_t scb = {.on_listen = on_listen, .on_accept = on_accept, .on_error = on_server_error};
    pants_stream_callbacks_t down_cb = {.on_read = on_read, .on_write = on_write, .on_close = down_on_close};

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--to") == 0 && i + 1 < argc)
            upstream = argv[++i];
        else if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
            listen_addr = argv[++i];
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            opts.threads = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--connect-timeout") == 0 && i + 1 < argc)
            connect_timeout_ms = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--high") == 0 && i + 1 < argc)
            high_water = strtoul(argv[++i], NULL, 10);
        else
            return usage(argv[0]);
    }
    if (upstream == NULL)
        return usage(argv[0]);
    raise_fd_limit();
    engine = pants_engine_new(&opts);
    if (engine == NULL) {
        perror("proxy: pants_engine_new");
        return 1;
    }
    pants_server_t *srv = pants_server_new(engine, &scb, &down_cb, NULL);
    int rc = srv ? pants_server_listen(srv, listen_addr, 0) : -errno;
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
