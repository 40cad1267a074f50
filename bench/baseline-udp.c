/* baseline-udp.c -- the datagram echo a user writes without a framework.
 *
 * One thread, one blocking socket, and the loop every UDP tutorial shows:
 * recvfrom one packet, sendto it back to its sender, again.  Two system calls
 * per packet and nothing else: no event loop, no batching (no recvmmsg or
 * sendmmsg), no queue.  bench/run drives it and the pants UDP echo example
 * with the same load to see what pants' layer costs, or saves, per packet.
 *
 * The receive timeout (SO_RCVTIMEO, a tenth of a second) only bounds how
 * long a SIGINT or SIGTERM that lands between two recvfrom calls can go
 * unnoticed; under load a packet is always waiting and it never fires.
 *
 * Usage: baseline-udp --listen ADDR   (host:port, [v6]:port or unix:/path)
 * Prints "listening on ADDR" once ready; SIGINT/SIGTERM end it cleanly.
 */
/* As in the other programs (AM_CPPFLAGS sets it too; this is for hand builds). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "common.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define PACKET_MAX 65536  /* the largest datagram taken whole */
#define WAKE_US    100000 /* longest recvfrom: how soon a signal is seen */

static volatile sig_atomic_t stopping; /* set by SIGINT/SIGTERM */

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

/* Without SA_RESTART, so that a blocked recvfrom returns EINTR at once. */
static void signals_catch(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* A blocking datagram socket bound to ss (a stale Unix socket file is
 * removed first).  Returns the fd or -errno. */
static int bind_socket(const struct sockaddr_storage *ss, socklen_t len)
{
    struct timeval wake = {.tv_sec = 0, .tv_usec = WAKE_US};
    int err, fd = socket(ss->ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -errno;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wake, sizeof(wake));
    bench_unlink_unix(ss);
    if (bind(fd, (const struct sockaddr *)ss, len) < 0)
        goto fail_close;
    return fd;

fail_close:
    err = -errno;
    close(fd);
    return err;
}

/* Whether a reply can reach from: an unbound Unix sender has no name. */
static bool can_reply(const struct sockaddr_storage *from, socklen_t len)
{
    return from->ss_family != AF_UNIX || len > offsetof(struct sockaddr_un, sun_path);
}

/* The loop: each packet straight back to its sender.  A reply the kernel
 * refuses (a client gone, a full buffer) is dropped, as UDP would. */
static void serve(int fd, char *buf)
{
    while (!stopping) {
        struct sockaddr_storage from;
        socklen_t len = sizeof(from);
        ssize_t n = recvfrom(fd, buf, PACKET_MAX, 0, (struct sockaddr *)&from, &len);

        if (n < 0)
            continue; /* EINTR, the wake-up timeout, an ICMP error of a client gone */
        if (can_reply(&from, len))
            sendto(fd, buf, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&from, len);
    }
}

static void say_listening(int fd)
{
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    char text[160];

    getsockname(fd, (struct sockaddr *)&bound, &blen);
    bench_addr_format((struct sockaddr *)&bound, blen, text, sizeof(text));
    printf("listening on %s\n", text);
    fflush(stdout);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: baseline-udp --listen ADDR\n"
               "  --listen ADDR   host:port, [v6]:port or unix:/path\n");
}

static void parse_args(int argc, char **argv, struct sockaddr_storage *ss, socklen_t *len)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    const char *listen_at = NULL;
    int o;

    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o == 'l') {
            listen_at = optarg;
        } else {
            usage(o == 'h' ? stdout : stderr);
            exit(o == 'h' ? 0 : 2);
        }
    }
    if (listen_at == NULL || optind != argc) {
        usage(stderr);
        exit(2);
    }
    if (bench_addr_parse(listen_at, ss, len) < 0) {
        fprintf(stderr, "baseline-udp: bad address '%s'\n", listen_at);
        exit(2);
    }
}

int main(int argc, char **argv)
{
    struct sockaddr_storage addr;
    socklen_t addr_len;
    char *buf;
    int fd;

    parse_args(argc, argv, &addr, &addr_len);
    signals_catch();
    buf = malloc(PACKET_MAX);
    fd = bind_socket(&addr, addr_len);
    if (buf == NULL || fd < 0) {
        fprintf(stderr, "baseline-udp: cannot bind: %s\n", strerror(fd < 0 ? -fd : ENOMEM));
        if (fd >= 0)
            close(fd);
        free(buf);
        return 1;
    }
    say_listening(fd);
    serve(fd, buf);
    close(fd);
    bench_unlink_unix(&addr);
    free(buf);
    return 0;
}
