/* chat.c -- a line chat: every line a client sends goes to every client.
 *
 *   examples/chat [--threads N] [--listen ADDR] [--help]
 *
 * Connections are spread over the worker threads; pants_server_broadcast
 * hands each line to every worker, which writes it to its own connections,
 * so no lock is taken in the application.  Try it with two terminals
 * running `nc 127.0.0.1 7100`.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pants.h"

static pants_engine_t *engine; /* for the signal handler */

static void on_read(pants_stream_t *s, const void *line, size_t len)
{
    char msg[1100];
    int n = snprintf(msg, sizeof(msg), "[%p] %.*s\n", (void *)s, (int)(len < 1024 ? len : 1024),
                     (const char *)line);

    pants_server_broadcast(pants_stream_server(s), msg,
                           (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
}

static void on_overflow(pants_stream_t *s)
{
    pants_stream_write(s, "line too long, bye\n", 19);
    pants_stream_end(s);
}

static void on_accept(pants_server_t *srv, pants_stream_t *conn)
{
    (void)srv;
    pants_stream_read_until(conn, "\n", 1);
    pants_stream_set_read_limit(conn, 4096);
    pants_stream_write(conn, "welcome\n", 8);
}

static void on_listen(pants_server_t *srv)
{
    pants_addr_t a;
    char buf[128];

    if (pants_server_local_address(srv, &a) == 0 && pants_addr_format(&a, buf, sizeof(buf)) == 0)
        printf("listening on %s\n", buf);
    fflush(stdout);
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
            "  --threads N      worker threads (default: one per CPU)\n"
            "  --listen ADDR    address to listen on (default 127.0.0.1:7100)\n"
            "  --help           this text\n"
            "every line a client sends (nc 127.0.0.1 7100) goes to every client\n",
            prog);
    return status;
}

int main(int argc, char **argv)
{
    pants_engine_options_t opts = {0};
    const char *addr = "127.0.0.1:7100";
    pants_server_callbacks_t scb = {.on_listen = on_listen, .on_accept = on_accept};
    pants_stream_callbacks_t ccb = {.on_read = on_read, .on_overflow = on_overflow};
    int rc;

    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0)
            return usage(argv[0], 0);
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--threads") == 0)
            opts.threads = (unsigned)strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--listen") == 0)
            addr = argv[i + 1];
    }
    engine = pants_engine_new(&opts);
    if (engine == NULL) {
        perror("chat: pants_engine_new");
        return 1;
    }
    pants_server_t *srv = pants_server_new(engine, &scb, &ccb, NULL);
    rc = srv ? pants_server_listen(srv, addr, 0) : -1;
    if (rc < 0) {
        fprintf(stderr, "chat: listen on %s: %s\n", addr, pants_strerror(rc));
        pants_engine_free(engine);
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    rc = pants_engine_run(engine);
    pants_engine_free(engine);
    return rc == 0 ? 0 : 1;
}
