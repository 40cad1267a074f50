/* baseline-libevent.c -- the echo server a libevent user writes by hand.
 *
 * One event_base, an evconnlistener and one bufferevent per connection, with
 * libevent's defaults: this is what pants has to beat to be worth its layer.
 * Without --line each read callback is one message and the input buffer is
 * moved to the output; with --line every evbuffer_readln(EVBUFFER_EOL_LF)
 * line is one message, written back with its '\n'.  --work-us burns CPU per
 * message.  Accepted TCP sockets get TCP_NODELAY, as in the other servers, so
 * that Nagle's algorithm plays no part in any comparison.
 *
 * With --tls each connection is a bufferevent_openssl on the socket
 * (bufferevent_openssl_socket_new, BUFFEREVENT_SSL_ACCEPTING), over the
 * server context of bench/tls.c (pants' settings), with libevent's defaults
 * otherwise and a dirty shutdown (an EOF without close_notify) allowed:
 * what a libevent user writes for a TLS server by hand.  Freeing it frees
 * the SSL and closes the socket.
 *
 * Usage: baseline-libevent --listen ADDR [--line] [--work-us US]
 *                          [--tls --tls-cert FILE [--tls-key FILE]] | --version
 * Prints "listening on ADDR" once ready; SIGINT/SIGTERM end it cleanly.
 */
/* As in the other programs (AM_CPPFLAGS sets it too). */
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

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#ifdef BENCH_TLS
#include "tls.h"

#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#endif

/* One client connection. */
struct conn {
    struct bufferevent *bev;  /* the socket and its two buffers */
    struct server *srv;       /* the server it belongs to */
    struct conn *prev, *next; /* every connection, to free them at exit */
};

struct ssl_ctx_st; /* SSL_CTX, when built with OpenSSL */

/* The whole server. */
struct server {
    struct event_base *base;      /* the one event loop */
    struct evconnlistener *lev;   /* the listening socket */
    struct event *sigint;         /* SIGINT: stop */
    struct event *sigterm;        /* SIGTERM: stop */
    bool line;                    /* --line: one message per line */
    unsigned work_us;             /* --work-us: CPU burned per message */
    struct ssl_ctx_st *tls;       /* --tls: the server context, or NULL */
    const char *tls_cert;         /* --tls-cert: PEM certificate chain */
    const char *tls_key;          /* --tls-key: PEM private key (NULL: in tls_cert) */
    struct conn *conns;           /* list head of every connection */
    struct sockaddr_storage addr; /* the listening address */
    socklen_t addr_len;           /* bytes of addr in use */
};

static void conn_free(struct conn *c)
{
    struct server *s = c->srv;

    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    bufferevent_free(c->bev);
    free(c);
}

/* --line: every complete line is one message. */
static void echo_lines(struct server *s, struct evbuffer *in, struct evbuffer *out)
{
    size_t len;
    char *line;

    while ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF)) != NULL) {
        bench_burn_us(s->work_us);
        evbuffer_add(out, line, len);
        evbuffer_add(out, "\n", 1);
        free(line);
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer *out = bufferevent_get_output(bev);

    if (c->srv->line) {
        echo_lines(c->srv, in, out);
    } else {
        bench_burn_us(c->srv->work_us);
        evbuffer_add_buffer(out, in);
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        conn_free(arg);
}

#ifdef BENCH_TLS

/* --tls: a bufferevent_openssl doing the server side on fd, or NULL (fd
 * is then still open). */
static struct bufferevent *tls_bufferevent(struct server *s, evutil_socket_t fd)
{
    struct bufferevent *bev;
    SSL *ssl = SSL_new(s->tls);

    if (ssl == NULL) {
        ERR_clear_error();
        return NULL;
    }
    bev = bufferevent_openssl_socket_new(s->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        SSL_free(ssl);
        return NULL;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

#else

static struct bufferevent *tls_bufferevent(struct server *s, evutil_socket_t fd)
{
    (void)s, (void)fd;
    return NULL;
}

#endif /* BENCH_TLS */

static void on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    struct server *s = arg;
    struct conn *c = calloc(1, sizeof(*c));

    (void)lev, (void)sa, (void)salen;
    if (c == NULL)
        goto fail_close;
    if (s->tls)
        c->bev = tls_bufferevent(s, fd);
    else
        c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL)
        goto fail_free;
    bench_set_nodelay(fd);
    c->srv = s;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    return;

fail_free:
    free(c);
fail_close:
    evutil_closesocket(fd);
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

    getsockname(evconnlistener_get_fd(s->lev), (struct sockaddr *)&bound, &blen);
    bench_addr_format((struct sockaddr *)&bound, blen, text, sizeof(text));
    printf("listening on %s\n", text);
    fflush(stdout);
}

static int server_open(struct server *s)
{
    unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE;

    signal(SIGPIPE, SIG_IGN);
#ifdef BENCH_TLS
    if (s->tls_cert && (s->tls = bench_tls_server_ctx("baseline-libevent", s->tls_cert, s->tls_key)) == NULL)
        return -1;
#endif
    s->base = event_base_new();
    if (s->base == NULL)
        return -1;
    s->sigint = evsignal_new(s->base, SIGINT, on_signal, s->base);
    s->sigterm = evsignal_new(s->base, SIGTERM, on_signal, s->base);
    if (s->sigint == NULL || s->sigterm == NULL)
        return -1;
    event_add(s->sigint, NULL);
    event_add(s->sigterm, NULL);
    bench_unlink_unix(&s->addr);
    s->lev = evconnlistener_new_bind(s->base, on_accept, s, flags, BENCH_BACKLOG, (struct sockaddr *)&s->addr,
                                     (int)s->addr_len);
    if (s->lev == NULL) {
        fprintf(stderr, "baseline-libevent: cannot listen: %s\n", strerror(errno));
        return -1;
    }
    print_bound(s);
    return 0;
}

static void server_close(struct server *s)
{
    while (s->conns)
        conn_free(s->conns);
    if (s->lev) {
        evconnlistener_free(s->lev);
        bench_unlink_unix(&s->addr);
    }
    if (s->sigint)
        event_free(s->sigint);
    if (s->sigterm)
        event_free(s->sigterm);
    if (s->base)
        event_base_free(s->base);
#ifdef BENCH_TLS
    SSL_CTX_free(s->tls);
#endif
}

/* The TLS options are listed only when built with them (bench/run looks). */
static void usage(FILE *f)
{
    fprintf(f, "usage: baseline-libevent --listen ADDR [--line] [--work-us US]\n"
               "       baseline-libevent --version\n"
               "  --listen ADDR     host:port, [v6]:port or unix:/path\n"
               "  --line            one message per '\\n'-terminated line (evbuffer_readln)\n"
               "  --work-us US      burn US microseconds of CPU per message\n"
               "  --version         print the libevent version in use and exit\n");
#ifdef BENCH_TLS
    fprintf(f, "  --tls             speak TLS: a bufferevent_openssl per connection\n"
               "  --tls-cert FILE   its PEM certificate chain\n"
               "  --tls-key FILE    its PEM private key (default: in --tls-cert)\n");
#endif
}

/* --tls wants a certificate, the certificate wants --tls, both OpenSSL. */
static void check_tls(const struct server *s, bool tls)
{
    const char *why = NULL;

#ifndef BENCH_TLS
    if (tls)
        why = "built without OpenSSL or libevent_openssl: no --tls";
#endif
    if (why == NULL && tls && s->tls_cert == NULL)
        why = "--tls needs --tls-cert FILE";
    else if (why == NULL && !tls && (s->tls_cert || s->tls_key))
        why = "--tls-cert and --tls-key need --tls";
    if (why) {
        fprintf(stderr, "baseline-libevent: %s\n", why);
        exit(2);
    }
}

static void parse_args(struct server *s, int argc, char **argv)
{
    static const struct option opts[] = {{"listen", required_argument, NULL, 'l'},
                                         {"line", no_argument, NULL, 'L'},
                                         {"work-us", required_argument, NULL, 'w'},
                                         {"version", no_argument, NULL, 'V'},
                                         {"tls", no_argument, NULL, 't'},
                                         {"tls-cert", required_argument, NULL, 'c'},
                                         {"tls-key", required_argument, NULL, 'k'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *listen_at = NULL;
    bool tls = false;
    int o;

    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o == 'l') {
            listen_at = optarg;
        } else if (o == 'L') {
            s->line = true;
        } else if (o == 'w') {
            s->work_us = (unsigned)bench_parse_ulong("--work-us", optarg, 10000000);
        } else if (o == 't') {
            tls = true;
        } else if (o == 'c') {
            s->tls_cert = optarg;
        } else if (o == 'k') {
            s->tls_key = optarg;
        } else if (o == 'V') {
            printf("%s\n", event_get_version());
            exit(0);
        } else {
            usage(o == 'h' ? stdout : stderr);
            exit(o == 'h' ? 0 : 2);
        }
    }
    if (listen_at == NULL || optind != argc) {
        usage(stderr);
        exit(2);
    }
    check_tls(s, tls);
    if (bench_addr_parse(listen_at, &s->addr, &s->addr_len) < 0) {
        fprintf(stderr, "baseline-libevent: bad address '%s'\n", listen_at);
        exit(2);
    }
}

int main(int argc, char **argv)
{
    struct server s;
    int rc = 1;

    memset(&s, 0, sizeof(s));
    parse_args(&s, argc, argv);
    bench_raise_nofile();
    if (server_open(&s) == 0) {
        event_base_dispatch(s.base);
        rc = 0;
    }
    server_close(&s);
    return rc;
}
