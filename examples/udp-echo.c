/* udp-echo.c -- a datagram echo server: every packet goes back to its sender.
 *
 *   examples/udp-echo [--listen ADDR] [--help]
 *
 * ADDR is "127.0.0.1:7001" by default; ":7001" listens on every interface
 * (IPv6 and IPv4), "unix:/tmp/echo.sock" on a Unix datagram socket (its
 * clients must be bound to a path or autobound to get replies).  Packets
 * are received in batches with recvmmsg and the replies of one batch leave
 * together with sendmmsg.  A reply the queue has no room for is dropped and
 * counted, as UDP would drop it anyway; so are the ICMP errors of clients
 * that left before their echo came.  Ctrl-C stops the engine: queued
 * replies still go out, then the program exits.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "pants.h"

static pants_engine_t *engine; /* for the signal handler */
static unsigned long dropped;  /* replies refused by a full queue */
static unsigned long refused;  /* ICMP port unreachable: a client left */

static void on_read(pants_datagram_t *d, const void *data, size_t len, const pants_addr_t *from)
{
    if (pants_datagram_write_to(d, data, len, from) < 0)
        dropped++;
}

static void on_listen(pants_datagram_t *d)
{
    pants_addr_t a;
    char buf[128];

    if (pants_datagram_local_address(d, &a) == 0 && pants_addr_format(&a, buf, sizeof(buf)) == 0)
        printf("listening on %s\n", buf);
    fflush(stdout);
}

static void on_error(pants_datagram_t *d, int err)
{
    (void)d;
    if (err == -ECONNREFUSED) /* a client closed before its echo came: normal */
        refused++;
    else
        fprintf(stderr, "udp-echo: %s\n", pants_strerror(err));
}

static void on_close(pants_datagram_t *d)
{
    (void)d;
    if (dropped > 0)
        fprintf(stderr, "udp-echo: %lu replies dropped (queue full)\n", dropped);
    if (refused > 0)
        fprintf(stderr, "udp-echo: %lu replies refused (clients gone)\n", refused);
}

static void on_signal(int sig)
{
    (void)sig;
    pants_engine_stop(engine);
}

static int usage(const char *prog, int status)
{
    fprintf(status ? stderr : stdout,
            "usage: %s [options]\n"
            "  --listen ADDR    address to listen on (default 127.0.0.1:7001; \":7001\" every\n"
            "                   interface, \"unix:/tmp/echo.sock\" a Unix datagram socket)\n"
            "  --help           this text\n",
            prog);
    return status;
}

int main(int argc, char **argv)
{
    pants_engine_options_t opts = {.threads = 1}; /* a datagram lives on one loop */
    pants_datagram_callbacks_t cb = {
        .on_listen = on_listen, .on_read = on_read, .on_close = on_close, .on_error = on_error};
    const char *listen_addr = "127.0.0.1:7001";
    pants_datagram_t *d;
    int rc;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
            listen_addr = argv[++i];
        else
            return usage(argv[0], strcmp(argv[i], "--help") == 0 ? 0 : 2);
    }
    engine = pants_engine_new(&opts);
    if (engine == NULL) {
        perror("udp-echo: pants_engine_new");
        return 1;
    }
    d = pants_datagram_new(pants_engine_loop(engine, 0), &cb, NULL);
    rc = d ? pants_datagram_listen(d, listen_addr) : -1;
    if (rc < 0) {
        fprintf(stderr, "udp-echo: listen on %s: %s\n", listen_addr,
                d ? pants_strerror(rc) : "out of memory");
        pants_engine_free(engine);
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    rc = pants_engine_run(engine);
    pants_engine_free(engine);
    return rc == 0 ? 0 : 1;
}
