/* baseline-epoll.c -- the one-core floor: an echo server on plain epoll.
 *
 * One thread, one epoll set, level-triggered, one read per readiness into a
 * shared buffer and the bytes written straight back.  Nothing is allocated per
 * connection but a small record, and buffers only while the kernel refuses
 * output (then reading stops until it drains: back-pressure).  With --line
 * each line is cut with memchr and handled on its own (its own --work-us);
 * the lines of one read go back in one writev, as any event loop that
 * flushes once per wake-up would do.  Without --line, one read is one
 * message.  No framework can beat this on one core by much; bench/run uses
 * it as the yardstick for pants with one worker.
 *
 * With --tls it is the TLS floor: the same loop with OpenSSL on each
 * connection's socket (SSL_set_fd, the context of bench/tls.c, which has
 * pants' settings), non-blocking SSL_do_handshake, then one SSL_read per
 * readiness (one record) written back with one SSL_write.  OpenSSL's
 * WANT_READ and WANT_WRITE decide what the connection waits for: EPOLLIN
 * or EPOLLOUT for a handshake step as OpenSSL asks, EPOLLOUT for a read that
 * must write first, EPOLLIN for a write that must read first; a write that
 * could not finish is retried with the same length (its bytes kept in the
 * connection's output, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER), and reading
 * stops meanwhile.  A connection ends with one SSL_shutdown (a close_notify,
 * not waited for).
 *
 * Usage: baseline-epoll --listen ADDR [--line] [--work-us US]
 *                       [--tls --tls-cert FILE [--tls-key FILE]]
 * Prints "listening on ADDR" once ready; SIGINT/SIGTERM end it cleanly.
 */
/* accept4 (AM_CPPFLAGS sets it too; this is for hand builds). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "common.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/uio.h>
#include <unistd.h>

#ifdef BENCH_TLS
#include "tls.h"

#include <openssl/err.h>
#endif

#define READ_SIZE  (256 * 1024) /* one read at most */
#define MAX_EVENTS 256          /* events per epoll_wait */
#define IOV_BATCH  64           /* lines per writev */

struct ssl_st;     /* SSL, when built with OpenSSL */
struct ssl_ctx_st; /* SSL_CTX */

/* One client connection. */
struct conn {
    int fd;                   /* the socket */
    uint32_t events;          /* epoll events registered */
    struct ssl_st *ssl;       /* --tls: its TLS, on fd; NULL without */
    bool handshaking;         /* --tls: the handshake has not finished */
    bool read_wants_write;    /* --tls: SSL_read stopped on WANT_WRITE */
    bool write_wants_read;    /* --tls: SSL_write stopped on WANT_READ */
    size_t retry_len;         /* --tls: the length a stopped SSL_write must retry with; 0 = none */
    char *out;                /* bytes the kernel has not taken yet, or NULL */
    size_t out_len;           /* bytes held in out */
    size_t out_off;           /* bytes of out already written */
    size_t out_cap;           /* capacity of out */
    char *line;               /* --line: a line whose '\n' has not come yet */
    size_t line_len;          /* bytes held in line */
    size_t line_cap;          /* capacity of line */
    struct conn *prev, *next; /* every connection, to free them at exit */
};

/* The whole server. */
struct server {
    int epfd;                     /* the epoll set */
    int lfd;                      /* the listening socket */
    int sigfd;                    /* SIGINT/SIGTERM as a descriptor */
    bool line;                    /* --line: one message per line */
    unsigned work_us;             /* --work-us: CPU burned per message */
    char *rbuf;                   /* the shared read buffer */
    struct ssl_ctx_st *tls;       /* --tls: the server context, or NULL */
    const char *tls_cert;         /* --tls-cert: PEM certificate chain */
    const char *tls_key;          /* --tls-key: PEM private key (NULL: in tls_cert) */
    struct conn *conns;           /* list head of every connection */
    struct sockaddr_storage addr; /* the listening address */
    socklen_t addr_len;           /* bytes of addr in use */
};

/* Grow *buf (capacity *cap) to hold need bytes.  0 or -ENOMEM. */
static int reserve(char **buf, size_t *cap, size_t need)
{
    size_t n = *cap ? *cap : 256;
    char *p;

    if (need <= *cap)
        return 0;
    while (n < need)
        n *= 2;
    p = realloc(*buf, n);
    if (p == NULL)
        return -ENOMEM;
    *buf = p;
    *cap = n;
    return 0;
}

/* Append len bytes to the pending output of c. */
static int out_append(struct conn *c, const char *data, size_t len)
{
    if (reserve(&c->out, &c->out_cap, c->out_len + len) < 0)
        return -ENOMEM;
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
    return 0;
}

/* Register exactly events (EPOLLIN or EPOLLOUT) for c. */
static void conn_watch(struct server *s, struct conn *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};

    if (events == c->events)
        return;
    epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->events = events;
}

/* The output pending on c has all been written. */
static void out_done(struct conn *c)
{
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_off = c->out_cap = 0;
}

#ifdef BENCH_TLS

/* What an established TLS connection waits for: to write out what is
 * pending (reading stops meanwhile), else to read; turned round when
 * OpenSSL must read to write or write to read. */
static uint32_t conn_want(const struct conn *c)
{
    if (c->out_len > 0)
        return c->write_wants_read ? EPOLLIN : EPOLLOUT;
    return c->read_wants_write ? EPOLLOUT : EPOLLIN;
}

/* TLS on c's socket, server side. */
static int tls_start(struct server *s, struct conn *c)
{
    c->handshaking = true;
    c->ssl = SSL_new(s->tls);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
        ERR_clear_error();
        return -1;
    }
    SSL_set_accept_state(c->ssl);
    return 0;
}

/* A close_notify once the handshake is done (not waited for), then free. */
static void tls_end(struct conn *c)
{
    ERR_clear_error();
    if (!c->handshaking)
        SSL_shutdown(c->ssl);
    SSL_free(c->ssl);
    ERR_clear_error();
    c->ssl = NULL;
}

/* SSL_write of len bytes returned rc: 0 when it must be retried with the
 * same length (after the socket turns writable, or readable), or -1. */
static int tls_write_stopped(struct conn *c, int rc, size_t len)
{
    int e = SSL_get_error(c->ssl, rc);

    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
        return -1;
    c->retry_len = len;
    c->write_wants_read = e == SSL_ERROR_WANT_READ;
    return 0;
}

/* Write out c's pending output, a stopped write first.  0 (all written, or
 * stopped again: see retry_len) or -1. */
static int tls_flush(struct conn *c)
{
    while (c->out_off < c->out_len) {
        size_t len = c->retry_len ? c->retry_len : c->out_len - c->out_off, done = 0;
        int rc;

        ERR_clear_error();
        rc = SSL_write_ex(c->ssl, c->out + c->out_off, len, &done);
        if (rc != 1)
            return tls_write_stopped(c, rc, len);
        c->out_off += done;
        c->retry_len = 0;
        c->write_wants_read = false;
    }
    out_done(c);
    return 0;
}

/* Encrypt and send iov, or queue it behind a write that has to be retried.
 * A single buffer goes straight to SSL_write; if that stops, its bytes are
 * kept in c->out to be retried from there (the moving write buffer). */
static int tls_send(struct conn *c, struct iovec *iov, int cnt)
{
    int i;

    if (c->out_len == 0 && cnt == 1) {
        size_t done = 0;
        int rc;

        ERR_clear_error();
        rc = SSL_write_ex(c->ssl, iov[0].iov_base, iov[0].iov_len, &done);
        if (rc == 1)
            return 0;
        if (tls_write_stopped(c, rc, iov[0].iov_len) < 0)
            return -1;
        return out_append(c, iov[0].iov_base, iov[0].iov_len);
    }
    for (i = 0; i < cnt; i++)
        if (out_append(c, iov[i].iov_base, iov[i].iov_len) < 0)
            return -1;
    return c->retry_len ? 0 : tls_flush(c);
}

#else /* !BENCH_TLS: --tls is refused, c->ssl is always NULL */

static void tls_end(struct conn *c)
{
    (void)c;
}

static int tls_send(struct conn *c, struct iovec *iov, int cnt)
{
    (void)c, (void)iov, (void)cnt;
    return -1;
}

#endif /* BENCH_TLS */

static void conn_close(struct server *s, struct conn *c)
{
    if (c->ssl)
        tls_end(c);
    close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c->out);
    free(c->line);
    free(c);
}

/* Send iov (cnt entries), or queue it behind output already pending.
 * Returns 0 or -1 when the connection failed. */
static int conn_send(struct conn *c, struct iovec *iov, int cnt)
{
    ssize_t w = 0;
    int i;

    if (cnt == 0)
        return 0;
    if (c->ssl)
        return tls_send(c, iov, cnt);
    if (c->out_len == 0) {
        w = writev(c->fd, iov, cnt);
        if (w < 0 && errno != EAGAIN && errno != EINTR)
            return -1;
        if (w < 0)
            w = 0;
    }
    for (i = 0; i < cnt; i++) {
        size_t skip = (size_t)w < iov[i].iov_len ? (size_t)w : iov[i].iov_len;
        w -= (ssize_t)skip;
        if (skip < iov[i].iov_len && out_append(c, (char *)iov[i].iov_base + skip, iov[i].iov_len - skip) < 0)
            return -1;
    }
    return 0;
}

/* Write out what the kernel refused before.  0 or -1 on failure. */
static int conn_drain(struct server *s, struct conn *c)
{
    ssize_t w = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);

    if (w < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    c->out_off += (size_t)w;
    if (c->out_off < c->out_len)
        return 0;
    out_done(c);
    conn_watch(s, c, EPOLLIN);
    return 0;
}

/* Finish the carried partial line with the head of buf, if buf has its
 * '\n'.  Returns bytes of buf used (all of them when still no '\n'), or -1. */
static ssize_t line_carry(struct conn *c, const char *buf, size_t n, struct iovec *iov, int *cnt,
                          unsigned work_us)
{
    const char *nl = memchr(buf, '\n', n);
    size_t take = nl ? (size_t)(nl - buf) + 1 : n;

    if (reserve(&c->line, &c->line_cap, c->line_len + take) < 0)
        return -1;
    memcpy(c->line + c->line_len, buf, take);
    c->line_len += take;
    if (nl) {
        bench_burn_us(work_us);
        iov[(*cnt)++] = (struct iovec){c->line, c->line_len};
    }
    return (ssize_t)take;
}

/* --line: handle each complete line of buf on its own, echo them all. */
static int echo_lines(struct server *s, struct conn *c, char *buf, size_t n)
{
    struct iovec iov[IOV_BATCH];
    char *p = buf, *end = buf + n, *nl;
    int cnt = 0;

    if (c->line_len > 0) {
        ssize_t used = line_carry(c, p, n, iov, &cnt, s->work_us);
        if (used < 0)
            return -1;
        p += used;
        if (cnt == 0)
            return 0;
    }
    while (p < end && (nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        bench_burn_us(s->work_us);
        iov[cnt++] = (struct iovec){p, (size_t)(nl - p) + 1};
        p = nl + 1;
        if (cnt == IOV_BATCH) {
            if (conn_send(c, iov, cnt) < 0)
                return -1;
            cnt = 0;
        }
    }
    if (conn_send(c, iov, cnt) < 0)
        return -1;
    c->line_len = 0;
    if (p < end && reserve(&c->line, &c->line_cap, (size_t)(end - p)) < 0)
        return -1;
    if (p < end)
        memcpy(c->line, p, (size_t)(end - p));
    c->line_len = (size_t)(end - p);
    return 0;
}

/* n bytes read from c, echoed: one message, or its lines with --line. */
static int echo(struct server *s, struct conn *c, char *buf, size_t n)
{
    struct iovec iov = {buf, n};

    if (s->line)
        return echo_lines(s, c, buf, n);
    bench_burn_us(s->work_us);
    return conn_send(c, &iov, 1);
}

/* One read, echoed.  0, or -1 when the connection is over. */
static int conn_read(struct server *s, struct conn *c)
{
    ssize_t r = read(c->fd, s->rbuf, READ_SIZE);

    if (r < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    if (r == 0)
        return -1;
    if (echo(s, c, s->rbuf, (size_t)r) < 0)
        return -1;
    if (c->out_len > 0)
        conn_watch(s, c, EPOLLOUT);
    return 0;
}

#ifdef BENCH_TLS

/* One SSL_read (one record), echoed.  0, or -1 when the connection is over
 * (a close_notify, an EOF, a reset, a bad record). */
static int tls_read(struct server *s, struct conn *c)
{
    size_t got = 0;
    int rc;

    ERR_clear_error();
    rc = SSL_read_ex(c->ssl, s->rbuf, READ_SIZE, &got);
    c->read_wants_write = false;
    if (rc == 1)
        return echo(s, c, s->rbuf, got);
    switch (SSL_get_error(c->ssl, rc)) {
    case SSL_ERROR_WANT_READ:
        return 0;
    case SSL_ERROR_WANT_WRITE:
        c->read_wants_write = true;
        return 0;
    default:
        return -1;
    }
}

static int tls_event(struct server *s, struct conn *c);

/* One step of the server side of the handshake. */
static int tls_handshake(struct server *s, struct conn *c)
{
    int rc;

    ERR_clear_error();
    rc = SSL_do_handshake(c->ssl);
    if (rc == 1) {
        c->handshaking = false;
        if (SSL_has_pending(c->ssl))
            return tls_event(s, c);
        conn_watch(s, c, EPOLLIN);
        return 0;
    }
    switch (SSL_get_error(c->ssl, rc)) {
    case SSL_ERROR_WANT_READ:
        conn_watch(s, c, EPOLLIN);
        return 0;
    case SSL_ERROR_WANT_WRITE:
        conn_watch(s, c, EPOLLOUT);
        return 0;
    default:
        return -1;
    }
}

/* c's socket is ready for what c waits for (one direction at a time). */
static int tls_event(struct server *s, struct conn *c)
{
    int rc;

    if (c->handshaking)
        return tls_handshake(s, c);
    rc = c->out_len > 0 ? tls_flush(c) : tls_read(s, c);
    if (rc == 0)
        conn_watch(s, c, conn_want(c));
    return rc;
}

#else

static int tls_start(struct server *s, struct conn *c)
{
    (void)s, (void)c;
    return -1;
}

static int tls_event(struct server *s, struct conn *c)
{
    (void)s, (void)c;
    return -1;
}

#endif /* BENCH_TLS */

static void conn_event(struct server *s, struct conn *c, uint32_t events)
{
    int rc = 0;

    if (c->ssl)
        rc = tls_event(s, c);
    else if (c->out_len > 0 && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
        rc = conn_drain(s, c);
    else if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        rc = conn_read(s, c);
    if (rc < 0)
        conn_close(s, c);
}

/* Take one pending connection.  Returns false when none is left. */
static bool accept_one(struct server *s)
{
    struct epoll_event ev = {.events = EPOLLIN};
    struct conn *c;
    int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

    if (fd < 0)
        return errno == EINTR || errno == ECONNABORTED;
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        return true;
    }
    c->fd = fd;
    c->events = EPOLLIN;
    bench_set_nodelay(fd);
    ev.data.ptr = c;
    epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev);
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    if (s->tls && tls_start(s, c) < 0)
        conn_close(s, c);
    return true;
}

static void serve(struct server *s)
{
    struct epoll_event evs[MAX_EVENTS];

    for (;;) {
        int i, n = epoll_wait(s->epfd, evs, MAX_EVENTS, -1);
        if (n < 0 && errno != EINTR)
            return;
        for (i = 0; i < n; i++) {
            if (evs[i].data.ptr == &s->sigfd)
                return;
            if (evs[i].data.ptr == &s->lfd) {
                while (accept_one(s))
                    ;
                continue;
            }
            conn_event(s, evs[i].data.ptr, evs[i].events);
        }
    }
}

/* SIGINT and SIGTERM arrive through sigfd. */
static int signals_open(void)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

static void watch(struct server *s, int fd, void *tag)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = tag};

    epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev);
}

static int server_open(struct server *s)
{
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    char text[160];

    s->rbuf = malloc(READ_SIZE);
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    s->sigfd = signals_open();
    s->lfd = bench_listen(&s->addr, s->addr_len, BENCH_BACKLOG);
    if (s->rbuf == NULL || s->epfd < 0 || s->sigfd < 0 || s->lfd < 0) {
        fprintf(stderr, "baseline-epoll: cannot listen: %s\n", strerror(s->lfd < 0 ? -s->lfd : errno));
        return -1;
    }
#ifdef BENCH_TLS
    if (s->tls_cert && (s->tls = bench_tls_server_ctx("baseline-epoll", s->tls_cert, s->tls_key)) == NULL)
        return -1;
#endif
    watch(s, s->lfd, &s->lfd);
    watch(s, s->sigfd, &s->sigfd);
    getsockname(s->lfd, (struct sockaddr *)&bound, &blen);
    bench_addr_format((struct sockaddr *)&bound, blen, text, sizeof(text));
    printf("listening on %s\n", text);
    fflush(stdout);
    return 0;
}

static void server_close(struct server *s)
{
    while (s->conns)
        conn_close(s, s->conns);
    if (s->lfd >= 0) {
        close(s->lfd);
        bench_unlink_unix(&s->addr);
    }
    if (s->sigfd >= 0)
        close(s->sigfd);
    if (s->epfd >= 0)
        close(s->epfd);
    free(s->rbuf);
#ifdef BENCH_TLS
    SSL_CTX_free(s->tls);
#endif
}

/* The TLS options are listed only when built with OpenSSL (bench/run looks). */
static void usage(FILE *f)
{
    fprintf(f, "usage: baseline-epoll --listen ADDR [--line] [--work-us US]\n"
               "  --listen ADDR     host:port, [v6]:port or unix:/path\n"
               "  --line            one message per '\\n'-terminated line\n"
               "  --work-us US      burn US microseconds of CPU per message\n");
#ifdef BENCH_TLS
    fprintf(f, "  --tls             speak TLS (OpenSSL, pants' settings), one SSL_read per readiness\n"
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
        why = "built without OpenSSL: no --tls";
#endif
    if (why == NULL && tls && s->tls_cert == NULL)
        why = "--tls needs --tls-cert FILE";
    else if (why == NULL && !tls && (s->tls_cert || s->tls_key))
        why = "--tls-cert and --tls-key need --tls";
    if (why) {
        fprintf(stderr, "baseline-epoll: %s\n", why);
        exit(2);
    }
}

static void parse_args(struct server *s, int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},   {"line", no_argument, NULL, 'L'},
        {"work-us", required_argument, NULL, 'w'},  {"tls", no_argument, NULL, 't'},
        {"tls-cert", required_argument, NULL, 'c'}, {"tls-key", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0}};
    const char *listen_at = NULL;
    bool tls = false;
    int o;

    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o == 'l')
            listen_at = optarg;
        else if (o == 'L')
            s->line = true;
        else if (o == 'w')
            s->work_us = (unsigned)bench_parse_ulong("--work-us", optarg, 10000000);
        else if (o == 't')
            tls = true;
        else if (o == 'c')
            s->tls_cert = optarg;
        else if (o == 'k')
            s->tls_key = optarg;
        else {
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
        fprintf(stderr, "baseline-epoll: bad address '%s'\n", listen_at);
        exit(2);
    }
}

int main(int argc, char **argv)
{
    struct server s = {.epfd = -1, .lfd = -1, .sigfd = -1};
    int rc = 1;

    parse_args(&s, argc, argv);
    bench_raise_nofile();
    if (server_open(&s) == 0) {
        serve(&s);
        rc = 0;
    }
    server_close(&s);
    return rc;
}
