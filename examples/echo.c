/* echo.c -- a multi-threaded echo server: the first thing to run.
 *
 *   examples/echo [--threads N] [--listen ADDR] [--line] [--work-us US]
 *
 * Every connection gets back what it sends.  With --line, input is cut at
 * "\n" and each line is echoed by its own on_read and write (the line mode
 * of the benchmark).  --work-us burns that much CPU per message, to show
 * how the worker threads share a CPU-bound load.  Ctrl-C stops the engine:
 * queued replies still go out, then the program exits.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "pants.h"

static pants_engine_t *engine; /* for the signal handler */
static bool line_mode;         /* --line */
static long work_ns;           /* --work-us, in nanoseconds */

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

static int usage(const char *prog)
{
    fprintf(stderr, "usage: %s [--threads N] [--listen ADDR] [--line] [--work-us US]\n", prog);
    return 2;
}

int main(int argc, char **argv)
{
    pants_engine_options_t opts = {0};
    const char *listen_addr = "127.0.0.1:7000";
    pants_server_callbacks_t scb = {.on_listen = on_listen, .on_accept = on_accept, .on_error = on_error};
    pants_stream_callbacks_t ccb = {.on_read = on_read};

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            opts.threads = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
            listen_addr = argv[++i];
        else if (strcmp(argv[i], "--line") == 0)
            line_mode = true;
        else if (strcmp(argv[i], "--work-us") == 0 && i + 1 < argc)
            work_ns = strtol(argv[++i], NULL, 10) * 1000L;
        else
            return usage(argv[0]);
    }
    raise_fd_limit();
    engine = pants_engine_new(&opts);
    if (engine == NULL) {
        perror("echo: pants_engine_new");
        return 1;
    }
    pants_server_t *srv = pants_server_new(engine, &scb, &ccb, NULL);
    int rc = srv ? pants_server_listen(srv, listen_addr, 0) : -errno;
    if (rc < 0) {
        fprintf(stderr, "echo: listen on %s: %s\n", listen_addr, pants_strerror(rc));
        pants_engine_free(engine);
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    rc = pants_engine_run(engine);
    pants_engine_free(engine);
    return rc == 0 ? 0 : 1;
}
