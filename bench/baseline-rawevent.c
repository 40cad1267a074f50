/* baseline-rawevent.c -- the echo server a libevent user writes with raw events.
 *
 * One event_base; the listening socket is watched by one struct event and
 * drained with accept4 until EAGAIN; every connection has exactly one struct
 * event on its fd, EV_READ|EV_PERSIST.  On readiness one read() into a shared
 * buffer, and the bytes go straight back with write().  When the kernel takes
 * only part of them, the rest is kept and the connection's one event is
 * switched to EV_WRITE until it drains (reading stops meanwhile: back-pressure,
 * and every byte still goes back in order).  No bufferevent, no evbuffer: this
 * is libevent's dispatch and nothing else on top of the system calls, the
 * yardstick for what pants adds per message over libevent itself.  Accepted
 * TCP sockets get TCP_NODELAY, as in the other servers.
 *
 * Usage: baseline-rawevent --listen ADDR
 * Prints "listening on ADDR" once ready; SIGINT/SIGTERM end it cleanly.
 */
/* accept4 (AM_CPPFLAGS sets it too; this is for hand builds). */
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
#include <unistd.h>

#include <event2/event.h>

#define READ_SIZE (256 * 1024) /* one read at most */

struct server;

/* One client connection. */
struct conn {
    int fd;                   /* the socket */
    struct event *ev;         /* its one event: EV_READ, or EV_WRITE while out holds bytes */
    struct server *srv;       /* the server it belongs to */
    char *out;                /* bytes the kernel has not taken yet, or NULL */
    size_t out_len;           /* bytes held in out */
    size_t out_off;           /* bytes of out already written */
    struct conn *prev, *next; /* every connection, to free them at exit */
};

/* The whole server. */
struct server {
    struct event_base *base;      /* the one event loop */
    int lfd;                      /* the listening socket */
    struct event *lev;            /* readiness of lfd */
    struct event *sigint;         /* SIGINT: stop */
    struct event *sigterm;        /* SIGTERM: stop */
    char *rbuf;                   /* the shared read buffer */
    struct conn *conns;           /* list head of every connection */
    struct sockaddr_storage addr; /* the listening address */
    socklen_t addr_len;           /* bytes of addr in use */
};

static void conn_on_event(evutil_socket_t fd, short what, void *arg);

static void conn_close(struct conn *c)
{
    struct server *s = c->srv;

    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    event_free(c->ev);
    close(c->fd);
    free(c->out);
    free(c);
}

/* Point the connection's one event at readable (true) or writable (false).
 * 0, or -1 when libevent refused. */
static int conn_watch(struct conn *c, bool readable)
{
    short what = (short)((readable ? EV_READ : EV_WRITE) | EV_PERSIST);

    event_del(c->ev);
    if (event_assign(c->ev, c->srv->base, c->fd, what, conn_on_event, c) < 0)
        return -1;
    return event_add(c->ev, NULL);
}

/* Keep the n bytes at data the kernel refused and wait until it takes
 * more.  0 or -1. */
static int conn_keep(struct conn *c, const char *data, size_t n)
{
    c->out = malloc(n);
    if (c->out == NULL)
        return -1;
    memcpy(c->out, data, n);
    c->out_len = n;
    c->out_off = 0;
    return conn_watch(c, false);
}

/* One read, written back.  0, or -1 when the connection is over. */
static int conn_read(struct conn *c)
{
    ssize_t r = read(c->fd, c->srv->rbuf, READ_SIZE);
    ssize_t w;

    if (r < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    if (r == 0)
        return -1;
    w = write(c->fd, c->srv->rbuf, (size_t)r);
    if (w < 0 && errno != EAGAIN && errno != EINTR)
        return -1;
    if (w < 0)
        w = 0;
    if (w < r)
        return conn_keep(c, c->srv->rbuf + w, (size_t)(r - w));
    return 0;
}

/* Write out what the kernel refused before.  0, or -1 on failure. */
static int conn_drain(struct conn *c)
{
    ssize_t w = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);

    if (w < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    c->out_off += (size_t)w;
    if (c->out_off < c->out_len)
        return 0;
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_off = 0;
    return conn_watch(c, true);
}

static void conn_on_event(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    int rc;

    (void)fd, (void)what;
    rc = c->out ? conn_drain(c) : conn_read(c);
    if (rc < 0)
        conn_close(c);
}

/* Give the accepted socket fd its record and its event. */
static void conn_open(struct server *s, int fd)
{
    struct conn *c = calloc(1, sizeof(*c));

    if (c == NULL)
        goto fail_close;
    c->fd = fd;
    c->srv = s;
    c->ev = event_new(s->base, fd, EV_READ | EV_PERSIST, conn_on_event, c);
    if (c->ev == NULL)
        goto fail_free;
    if (event_add(c->ev, NULL) < 0)
        goto fail_event;
    bench_set_nodelay(fd);
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    return;

fail_event:
    event_free(c->ev);
fail_free:
    free(c);
fail_close:
    close(fd);
}

/* The listening socket is readable: take every pending connection. */
static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
    int fd;

    (void)what;
    for (;;) {
        fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0)
            conn_open(arg, fd);
        else if (errno != EINTR && errno != ECONNABORTED)
            return;
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig, (void)what;
    event_base_loopbreak(arg);
}

static void print_bound(struct server *s)
{
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    char text[160];

    getsockname(s->lfd, (struct sockaddr *)&bound, &blen);
    bench_addr_format((struct sockaddr *)&bound, blen, text, sizeof(text));
    printf("listening on %s\n", text);
    fflush(stdout);
}

static int server_open(struct server *s)
{
    signal(SIGPIPE, SIG_IGN);
    s->rbuf = malloc(READ_SIZE);
    s->base = event_base_new();
    if (s->rbuf == NULL || s->base == NULL)
        return -1;
    s->sigint = evsignal_new(s->base, SIGINT, on_signal, s->base);
    s->sigterm = evsignal_new(s->base, SIGTERM, on_signal, s->base);
    if (s->sigint == NULL || s->sigterm == NULL || event_add(s->sigint, NULL) < 0 ||
        event_add(s->sigterm, NULL) < 0)
        return -1;
    s->lfd = bench_listen(&s->addr, s->addr_len, BENCH_BACKLOG);
    if (s->lfd < 0) {
        fprintf(stderr, "baseline-rawevent: cannot listen: %s\n", strerror(-s->lfd));
        return -1;
    }
    s->lev = event_new(s->base, s->lfd, EV_READ | EV_PERSIST, on_accept, s);
    if (s->lev == NULL || event_add(s->lev, NULL) < 0)
        return -1;
    print_bound(s);
    return 0;
}

static void server_close(struct server *s)
{
    while (s->conns)
        conn_close(s->conns);
    if (s->lev)
        event_free(s->lev);
    if (s->lfd >= 0) {
        close(s->lfd);
        bench_unlink_unix(&s->addr);
    }
    if (s->sigint)
        event_free(s->sigint);
    if (s->sigterm)
        event_free(s->sigterm);
    if (s->base)
        event_base_free(s->base);
    free(s->rbuf);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: baseline-rawevent --listen ADDR\n"
               "  --listen ADDR   host:port, [v6]:port or unix:/path\n");
}

static void parse_args(struct server *s, int argc, char **argv)
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
    if (bench_addr_parse(listen_at, &s->addr, &s->addr_len) < 0) {
        fprintf(stderr, "baseline-rawevent: bad address '%s'\n", listen_at);
        exit(2);
    }
}

int main(int argc, char **argv)
{
    struct server s;
    int rc = 1;

    memset(&s, 0, sizeof(s));
    s.lfd = -1;
    parse_args(&s, argc, argv);
    bench_raise_nofile();
    if (server_open(&s) == 0) {
        event_base_dispatch(s.base);
        rc = 0;
    }
    server_close(&s);
    return rc;
}
