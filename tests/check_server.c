/* check_server.c -- listening sockets and how they hand out connections.
 *
 * Servers listen on 127.0.0.1, [::1], ":0" (dual-stack) and Unix paths;
 * plain blocking sockets on the test thread connect to them, so what is
 * under test is only the pants side.  Covered: bind errors (EADDRINUSE on
 * TCP and on a live Unix path, malformed and host-name addresses), stale
 * Unix socket files replaced and our own removed on close, on_listen on the
 * acceptor, on_accept then on_connect on the connection's loop, round-robin
 * over four loops, one thread per stream, the connection count, broadcast
 * from a foreign thread, and closing: pants_server_close closes its
 * connections before its own on_close, and engine stop closes everything.
 * Callbacks record with atomics; the test thread waits with pt_wait.
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>

#include "testutil.h"

Suite *server_suite(void);

#define WAIT_MS 10000 /* generous: the machine is small and busy */

#define GET(x)    __atomic_load_n(&(x), __ATOMIC_SEQ_CST)
#define SET(x, v) __atomic_store_n(&(x), (v), __ATOMIC_SEQ_CST)
#define INC(x)    __atomic_add_fetch(&(x), 1, __ATOMIC_SEQ_CST)

/* ---- Engine and plain-socket helpers ----------------------------------- */

/* Stop, join, free; nothing of pants may be left. */
/* A blocking socket connected to a, 10 s timeouts; -1 if refused. */
static int plain_connect_addr(const pants_addr_t *a)
{
    struct timeval tv = {10, 0};
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int plain_connect(const char *addr)
{
    pants_addr_t a;

    ck_assert_int_eq(pants_addr_parse(&a, addr), 0);
    return plain_connect_addr(&a);
}

static void plain_send(int fd, const char *s)
{
    size_t len = strlen(s);

    ck_assert_int_eq(send(fd, s, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* Read exactly strlen(want) bytes and compare. */
static void plain_expect(int fd, const char *want)
{
    size_t len = strlen(want), got = 0;
    char buf[256];

    ck_assert_uint_lt(len, sizeof(buf));
    while (got < len) {
        ssize_t n = recv(fd, buf + got, len - got, 0);
        ck_assert_msg(n > 0, "expected '%s', recv gave %zd after %zu bytes", want, n, got);
        got += (size_t)n;
    }
    ck_assert_mem_eq(buf, want, len);
}

/* The peer closed: recv gives EOF (or a reset). */
static void plain_expect_eof(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, 0);

    ck_assert_msg(n == 0 || (n < 0 && errno == ECONNRESET), "expected EOF, recv gave %zd", n);
}

static void local_addr_str(pants_server_t *srv, char *buf, size_t len)
{
    pants_addr_t a;

    ck_assert_int_eq(pants_server_local_address(srv, &a), 0);
    ck_assert_int_eq(pants_addr_format(&a, buf, len), 0);
}

/* Wait until srv counts n open connections (its count drops just after
 * the connection's on_close has returned). */
static bool wait_connections(const pants_server_t *srv, size_t n)
{
    for (int waited = 0; waited < WAIT_MS; waited++) {
        if (pants_server_connections(srv) == n)
            return true;
        pt_sleep_ms(1);
    }
    return false;
}

/* ---- What a test server records ---------------------------------------- */

#define MAX_CONNS 16

struct conn_rec {
    pants_stream_t *s; /* the connection */
    pthread_t thread;  /* the thread of its first callback */
    int loop_index;    /* its loop */
    int wrong_thread;  /* callbacks seen on another thread */
    int wrong_loop;    /* callbacks where pants_loop_current() was not its loop */
    int accepted_seq;  /* order: on_accept ... */
    int connected_seq; /* ... on_connect ... */
    int closed_seq;    /* ... on_close */
    int reads;         /* on_read calls */
    int family;        /* pants_stream_family in on_accept */
};

struct srv_rec {
    pants_server_t *srv;    /* the server */
    int seq;                /* event sequence (atomic) */
    int listened;           /* on_listen calls */
    int listen_on_acceptor; /* on_listen ran on the acceptor loop */
    unsigned threads;       /* the engine's worker count */
    int listen_seq;         /* when on_listen ran */
    int closed;             /* server on_close calls */
    int closed_seq;         /* when */
    int late_broadcast;     /* pants_server_broadcast inside on_close */
    size_t conns_at_close;  /* pants_server_connections inside on_close */
    int server_errors;      /* server on_error calls */
    int last_error;         /* the last one's err */
    int accepted;           /* on_accept calls */
    int connected;          /* on_connect calls */
    int conn_closed;        /* connection on_close calls */
    int nconns;             /* entries used in conns (atomic) */
    struct conn_rec conns[MAX_CONNS];
    bool echo;            /* connections echo what they read */
    bool close_in_accept; /* on_accept closes the connection */
};

static struct conn_rec *rec_of(pants_stream_t *s)
{
    return pants_stream_data(s);
}

/* Every connection callback: on its loop's thread, always the same one. */
static void check_thread(struct conn_rec *c)
{
    if (!pthread_equal(c->thread, pthread_self()))
        INC(c->wrong_thread);
    if (pants_loop_current() != pants_stream_loop(c->s))
        INC(c->wrong_loop);
}

static void on_listen(pants_server_t *srv)
{
    struct srv_rec *r = pants_server_data(srv);
    pants_loop_t *l = pants_loop_current();

    r->listen_seq = INC(r->seq);
    r->listen_on_acceptor = l != NULL && pants_loop_index(l) == r->threads;
    INC(r->listened);
}

static void on_accept(pants_server_t *srv, pants_stream_t *conn)
{
    struct srv_rec *r = pants_server_data(srv);
    int i = __atomic_fetch_add(&r->nconns, 1, __ATOMIC_SEQ_CST);
    struct conn_rec *c = &r->conns[i < MAX_CONNS ? i : MAX_CONNS - 1];

    c->s = conn;
    c->thread = pthread_self();
    c->loop_index = (int)pants_loop_index(pants_stream_loop(conn));
    c->family = pants_stream_family(conn);
    c->accepted_seq = INC(r->seq);
    check_thread(c);
    if (pants_stream_server(conn) != srv)
        INC(c->wrong_loop);
    pants_stream_set_data(conn, c);
    INC(r->accepted);
    if (r->close_in_accept)
        pants_stream_close(conn);
}

static void on_server_close(pants_server_t *srv)
{
    struct srv_rec *r = pants_server_data(srv);

    r->closed_seq = INC(r->seq);
    r->late_broadcast = pants_server_broadcast(srv, "late\n", 5); /* srv is valid until we return */
    r->conns_at_close = pants_server_connections(srv);
    INC(r->closed);
}

static void on_server_error(pants_server_t *srv, int err)
{
    struct srv_rec *r = pants_server_data(srv);

    r->last_error = err;
    INC(r->server_errors);
}

static const pants_server_callbacks_t srv_cb = {
    .on_listen = on_listen, .on_accept = on_accept, .on_close = on_server_close, .on_error = on_server_error};

static void conn_on_connect(pants_stream_t *s)
{
    struct conn_rec *c = rec_of(s);
    struct srv_rec *r = pants_server_data(pants_stream_server(s));

    check_thread(c);
    c->connected_seq = INC(r->seq);
    INC(r->connected);
}

static void conn_on_read(pants_stream_t *s, const void *data, size_t len)
{
    struct conn_rec *c = rec_of(s);
    struct srv_rec *r = pants_server_data(pants_stream_server(s));

    check_thread(c);
    INC(c->reads);
    if (r->echo)
        pants_stream_write(s, data, len);
}

static void conn_on_write(pants_stream_t *s)
{
    check_thread(rec_of(s));
}

static void conn_on_close(pants_stream_t *s)
{
    struct conn_rec *c = rec_of(s);
    struct srv_rec *r = pants_server_data(pants_stream_server(s));

    check_thread(c);
    c->closed_seq = INC(r->seq);
    INC(r->conn_closed);
}

static const pants_stream_callbacks_t conn_cb = {.on_connect = conn_on_connect,
                                                 .on_read = conn_on_read,
                                                 .on_write = conn_on_write,
                                                 .on_close = conn_on_close};

/* A recording server of e listening on address; its bound address in addr. */
static pants_server_t *rec_server(pants_engine_t *e, struct srv_rec *r, const char *address, char *addr,
                                  size_t addrlen)
{
    r->threads = pants_engine_threads(e);
    r->srv = pants_server_new(e, &srv_cb, &conn_cb, r);
    ck_assert_ptr_nonnull(r->srv);
    ck_assert_int_eq(pants_server_listen(r->srv, address, 0), 0);
    if (addr)
        local_addr_str(r->srv, addr, addrlen);
    return r->srv;
}

/* ---- Bind errors and Unix socket files --------------------------------- */

START_TEST(tcp_port_in_use)
{
    pants_engine_t *e = pt_engine_up(2);
    struct srv_rec a = {.echo = true}, b = {0};
    char addr[128];
    int fd;

    rec_server(e, &a, "127.0.0.1:0", addr, sizeof(addr));
    b.srv = pants_server_new(e, &srv_cb, &conn_cb, &b);
    ck_assert_int_eq(pants_server_listen(b.srv, addr, 0), -EADDRINUSE);
    ck_assert_int_eq(pants_server_local_address(b.srv, &(pants_addr_t){0}), -ENOTCONN);
    pants_server_close(b.srv);
    ck_assert(pt_wait(&b.closed, WAIT_MS));
    ck_assert_int_eq(GET(b.listened), 0); /* the failed listen never led to on_listen */
    fd = plain_connect(addr);             /* the first still serves */
    ck_assert_int_ge(fd, 0);
    plain_send(fd, "still here");
    plain_expect(fd, "still here");
    close(fd);
    pt_engine_down(e);
}
END_TEST

START_TEST(unix_path_in_use)
{
    pants_engine_t *e = pt_engine_up(2);
    struct srv_rec a = {.echo = true}, b = {0};
    char where[200];
    struct stat st;
    int fd;

    pt_unix_addr(where, sizeof(where), "busy.sock");
    rec_server(e, &a, where, NULL, 0);
    b.srv = pants_server_new(e, &srv_cb, &conn_cb, &b);
    ck_assert_int_eq(pants_server_listen(b.srv, where, 0), -EADDRINUSE);
    pants_server_close(b.srv); /* must not remove a's socket file */
    ck_assert(pt_wait(&b.closed, WAIT_MS));
    ck_assert_int_eq(stat(where + 5, &st), 0);
    pt_sleep_ms(50);
    ck_assert_int_eq(GET(a.accepted), 0); /* finding it busy was no connection to a */
    fd = plain_connect(where);
    ck_assert_int_ge(fd, 0);
    plain_send(fd, "ping");
    plain_expect(fd, "ping");
    close(fd);
    ck_assert_int_eq(GET(a.accepted), 1);
    pt_engine_down(e);
}
END_TEST

START_TEST(unix_stale_file_replaced)
{
    pants_engine_t *e = pt_engine_up(2);
    struct srv_rec r = {.echo = true};
    pants_addr_t sun;
    char where[200];
    struct stat st;
    int fd;

    /* A socket file whose owner died: bound, closed, never unlinked. */
    pt_unix_addr(where, sizeof(where), "stale.sock");
    ck_assert_int_eq(pants_addr_parse(&sun, where), 0);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun.ss, sun.len), 0);
    close(fd);
    ck_assert_int_eq(stat(where + 5, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));

    rec_server(e, &r, where, NULL, 0);
    fd = plain_connect(where);
    ck_assert_int_ge(fd, 0);
    plain_send(fd, "fresh");
    plain_expect(fd, "fresh");
    close(fd);
    pt_engine_down(e);
}
END_TEST

/* A regular file at the path is not a stale socket: never removed. */
START_TEST(unix_path_regular_file_kept)
{
    pants_engine_t *e = pt_engine_up(1);
    struct srv_rec r = {0};
    pants_server_t *srv = pants_server_new(e, &srv_cb, &conn_cb, &r);
    char where[200];
    struct stat st;
    FILE *f;

    pt_unix_addr(where, sizeof(where), "precious.txt");
    f = fopen(where + 5, "w");
    ck_assert_ptr_nonnull(f);
    fputs("keep me", f);
    fclose(f);
    ck_assert_int_eq(pants_server_listen(srv, where, 0), -EADDRINUSE);
    ck_assert_int_eq(stat(where + 5, &st), 0);
    ck_assert(S_ISREG(st.st_mode));
    ck_assert_int_eq(st.st_size, 7);
    pants_server_close(srv);
    pt_engine_down(e);
}
END_TEST

START_TEST(unix_file_removed_on_close)
{
    pants_engine_t *e = pt_engine_up(2);
    struct srv_rec r = {0};
    char where[200], addr[200];
    struct stat st;

    pt_unix_addr(where, sizeof(where), "removed.sock");
    rec_server(e, &r, where, addr, sizeof(addr));
    ck_assert_str_eq(addr, where);
    ck_assert_int_eq(stat(where + 5, &st), 0);
    ck_assert(pt_wait(&r.listened, WAIT_MS));
    pants_server_close(r.srv);
    ck_assert(pt_wait(&r.closed, WAIT_MS));
    ck_assert_int_eq(stat(where + 5, &st), -1);
    ck_assert_int_eq(errno, ENOENT);
    pt_engine_down(e);
}
END_TEST

START_TEST(unix_abstract)
{
    pants_engine_t *e = pt_engine_up(2);
    struct srv_rec r = {.echo = true};
    char where[64], addr[128];
    int fd;

    snprintf(where, sizeof(where), "unix:@pants-check-server-%d", (int)getpid());
    rec_server(e, &r, where, addr, sizeof(addr));
    ck_assert_str_eq(addr, where);
    fd = plain_connect(where);
    ck_assert_int_ge(fd, 0);
    plain_send(fd, "abstract");
    plain_expect(fd, "abstract");
    ck_assert_int_eq(r.conns[0].family, AF_UNIX);
    close(fd);
    pt_engine_down(e);
}
END_TEST

/* "localhost", the one name listening knows, is the IPv4 loopback. */
START_TEST(listen_on_localhost)
{
    pants_engine_t *e = pt_engine_up(1);
    struct srv_rec r = {.echo = true};
    pants_server_t *srv = pants_server_new(e, &srv_cb, &conn_cb, &r);
    char addr[128];
    int fd;

    ck_assert_ptr_nonnull(srv);
    ck_assert_int_eq(pants_server_listen(srv, "localhost:0", 0), 0);
    local_addr_str(srv, addr, sizeof(addr));
    ck_assert_msg(strncmp(addr, "127.0.0.1:", 10) == 0, "bound to %s", addr);
    fd = plain_connect(addr);
    ck_assert_int_ge(fd, 0);
    plain_send(fd, "lo");
    plain_expect(fd, "lo");
    ck_assert_int_eq(r.conns[0].family, AF_INET);
    close(fd);
    pt_engine_down(e);
}
END_TEST

START_TEST(listen_errors)
{
    pants_engine_t *e = pt_engine_up(1);
    struct srv_rec r = {0};
    pants_server_t *srv = pants_server_new(e, &srv_cb, &conn_cb, &r);
    char long_path[300];
    pants_addr_t a;

    ck_assert_ptr_nonnull(srv);
    memset(long_path, 'x', sizeof(long_path) - 1);
    memcpy(long_path, "unix:/", 6);
    long_path[sizeof(long_path) - 1] = '\0';
    ck_assert_int_eq(pants_server_local_address(srv, &a), -ENOTCONN);
    ck_assert_int_eq(pants_server_listen(srv, "example.invalid:0", 0), -EINVAL); /* names are not resolved */
    ck_assert_int_eq(pants_server_listen(srv, "nope", 0), -EINVAL);
    ck_assert_int_eq(pants_server_listen(srv, "1.2.3.4:99999", 0), -EINVAL);
    ck_assert_int_eq(pants_server_listen(srv, "unix:", 0), -EINVAL);
    ck_assert_int_eq(pants_server_listen(srv, long_path, 0), -EINVAL);
    ck_assert_int_eq(pants_server_listen(srv, NULL, 0), -EINVAL);
    ck_assert_int_eq(pants_server_listen(srv, "127.0.0.1:0", -1), -EINVAL);
    ck_assert_int_eq(pants_server_listen(NULL, "127.0.0.1:0", 0), -EINVAL);
    ck_assert_int_eq(pants_server_listen(srv, "127.0.0.1:0", 0), 0);
    ck_assert_int_eq(pants_server_listen(srv, "127.0.0.1:0", 0), -EALREADY);
    ck_assert_int_eq(pants_server_local_address(srv, &a), 0);
    ck_assert_int_eq(a.ss.ss_family, AF_INET);
    ck_assert_ptr_eq(pants_server_data(srv), &r);
    ck_assert_ptr_eq(pants_server_engine(srv), e);
    ck_assert(pt_wait(&r.listened, WAIT_MS));
    pants_server_close(srv);
    ck_assert(pt_wait(&r.closed, WAIT_MS));
    ck_assert_int_eq(GET(r.listened), 1);
    ck_assert_int_eq(GET(r.closed), 1);
    pt_engine_down(e);
}
END_TEST

/* ---- Dual stack, on_listen --------------------------------------------- */

START_TEST(dual_stack_any)
{
    pants_engine_t *e = pt_engine_up(2);
    struct srv_rec r = {.echo = true};
    char addr[128], v4[64], v6[64];
    const char *port;
    int fd4, fd6;

    rec_server(e, &r, _i == 0 ? ":0" : "*:0", addr, sizeof(addr));
    port = strrchr(addr, ':');
    snprintf(v4, sizeof(v4), "127.0.0.1%s", port);
    snprintf(v6, sizeof(v6), "[::1]%s", port);
    fd4 = plain_connect(v4);
    fd6 = plain_connect(v6);
    ck_assert_int_ge(fd4, 0);
    ck_assert_int_ge(fd6, 0);
    plain_send(fd4, "over v4");
    plain_send(fd6, "over v6");
    plain_expect(fd4, "over v4");
    plain_expect(fd6, "over v6");
    ck_assert_int_eq(r.conns[0].family, AF_INET6); /* v4 peers are v4-mapped */
    ck_assert_int_eq(r.conns[1].family, AF_INET6);
    close(fd4);
    close(fd6);
    ck_assert(pt_wait_count(&r.conn_closed, 2, WAIT_MS));
    pt_engine_down(e);
}
END_TEST

START_TEST(on_listen_runs_on_acceptor)
{
    pants_engine_options_t o = {.threads = 3};
    pants_engine_t *e = pants_engine_new(&o);
    struct srv_rec before = {0}, after = {0};

    ck_assert_ptr_nonnull(e);
    rec_server(e, &before, "127.0.0.1:0", NULL, 0); /* before run: on_listen once it runs */
    pt_sleep_ms(20);
    ck_assert_int_eq(GET(before.listened), 0);
    ck_assert_int_eq(pants_engine_start(e), 0);
    rec_server(e, &after, "[::1]:0", NULL, 0); /* from a foreign thread while it runs */
    ck_assert(pt_wait(&before.listened, WAIT_MS));
    ck_assert(pt_wait(&after.listened, WAIT_MS));
    ck_assert_int_eq(before.listen_on_acceptor, 1);
    ck_assert_int_eq(after.listen_on_acceptor, 1);
    pt_sleep_ms(20);
    ck_assert_int_eq(GET(before.listened), 1);
    ck_assert_int_eq(GET(after.listened), 1);
    pt_engine_down(e);
    ck_assert_int_eq(GET(before.closed), 1); /* stop closed them */
    ck_assert_int_eq(GET(after.closed), 1);
}
END_TEST

/* ---- Accepting --------------------------------------------------------- */

START_TEST(accept_then_connect_on_conn_loop)
{
    pants_engine_t *e = pt_engine_up(2);
    struct srv_rec r = {.echo = true};
    char addr[128];
    int fd;

    rec_server(e, &r, "127.0.0.1:0", addr, sizeof(addr));
    fd = plain_connect(addr);
    ck_assert_int_ge(fd, 0);
    ck_assert(pt_wait(&r.connected, WAIT_MS));
    plain_send(fd, "hi");
    plain_expect(fd, "hi");
    close(fd);
    ck_assert(pt_wait(&r.conn_closed, WAIT_MS));
    ck_assert_int_eq(GET(r.accepted), 1);
    ck_assert_int_eq(r.conns[0].wrong_loop, 0);
    ck_assert_int_eq(r.conns[0].wrong_thread, 0);
    ck_assert_int_lt(r.conns[0].loop_index, 2);
    ck_assert_int_lt(r.conns[0].accepted_seq, r.conns[0].connected_seq);
    ck_assert_int_lt(r.conns[0].connected_seq, r.conns[0].closed_seq);
    ck_assert_int_eq(GET(r.conns[0].reads), 1);
    pt_engine_down(e);
}
END_TEST

/* on_accept may give the connection its own data, callbacks, delimiter. */
struct own {
    int lines;      /* on_read calls */
    char last[32];  /* the last line */
    int connect_ok; /* its on_connect saw its own data */
    int closed;     /* its on_close ran */
};

static void own_on_connect(pants_stream_t *s)
{
    struct own *o = pants_stream_data(s);

    SET(o->connect_ok, 1);
}

static void own_on_read(pants_stream_t *s, const void *data, size_t len)
{
    struct own *o = pants_stream_data(s);

    snprintf(o->last, sizeof(o->last), "%.*s", (int)len, (const char *)data);
    pants_stream_write(s, "ok\n", 3);
    INC(o->lines);
}

static void own_on_close(pants_stream_t *s)
{
    struct own *o = pants_stream_data(s);

    INC(o->closed);
}

static void own_on_accept(pants_server_t *srv, pants_stream_t *conn)
{
    static const pants_stream_callbacks_t cb = {
        .on_connect = own_on_connect, .on_read = own_on_read, .on_close = own_on_close};

    pants_stream_set_data(conn, pants_server_data(srv));
    pants_stream_set_callbacks(conn, &cb);
    pants_stream_read_until(conn, "\n", 1);
}

START_TEST(accept_sets_callbacks)
{
    pants_engine_t *e = pt_engine_up(2);
    pants_server_callbacks_t scb = {.on_accept = own_on_accept};
    struct own o = {0};
    pants_server_t *srv = pants_server_new(e, &scb, &conn_cb, &o); /* conn_cb replaced in on_accept */
    char addr[128];
    int fd;

    ck_assert_int_eq(pants_server_listen(srv, "127.0.0.1:0", 0), 0);
    local_addr_str(srv, addr, sizeof(addr));
    fd = plain_connect(addr);
    ck_assert_int_ge(fd, 0);
    plain_send(fd, "one\ntwo\n");
    plain_expect(fd, "ok\nok\n");
    close(fd);
    ck_assert(pt_wait(&o.closed, WAIT_MS));
    ck_assert_int_eq(GET(o.connect_ok), 1);
    ck_assert_int_eq(GET(o.lines), 2);
    ck_assert_str_eq(o.last, "two");
    pt_engine_down(e);
}
END_TEST

START_TEST(close_in_on_accept)
{
    pants_engine_t *e = pt_engine_up(2);
    struct srv_rec r = {.close_in_accept = true};
    char addr[128];
    int fd;

    rec_server(e, &r, "127.0.0.1:0", addr, sizeof(addr));
    fd = plain_connect(addr);
    ck_assert_int_ge(fd, 0);
    plain_expect_eof(fd);
    close(fd);
    ck_assert(pt_wait(&r.conn_closed, WAIT_MS));
    ck_assert_int_eq(GET(r.accepted), 1);
    ck_assert_int_eq(GET(r.connected), 0); /* closed in on_accept: no on_connect */
    ck_assert(wait_connections(r.srv, 0));
    pt_engine_down(e);
}
END_TEST

#define RR_LOOPS 4
#define RR_CONNS 8

START_TEST(round_robin_over_loops)
{
    pants_engine_t *e = pt_engine_up(RR_LOOPS);
    struct srv_rec r = {0};
    int per_loop[RR_LOOPS] = {0}, fds[RR_CONNS];
    char addr[128];

    rec_server(e, &r, "127.0.0.1:0", addr, sizeof(addr));
    for (int i = 0; i < RR_CONNS; i++) {
        fds[i] = plain_connect(addr);
        ck_assert_int_ge(fds[i], 0);
    }
    ck_assert(pt_wait_count(&r.connected, RR_CONNS, WAIT_MS));
    for (int i = 0; i < RR_CONNS; i++) {
        ck_assert_int_ge(r.conns[i].loop_index, 0);
        ck_assert_int_lt(r.conns[i].loop_index, RR_LOOPS);
        per_loop[r.conns[i].loop_index]++;
    }
    for (int l = 0; l < RR_LOOPS; l++)
        ck_assert_msg(per_loop[l] == RR_CONNS / RR_LOOPS, "loop %d got %d connections", l, per_loop[l]);
    for (int i = 0; i < RR_CONNS; i++)
        close(fds[i]);
    ck_assert(pt_wait_count(&r.conn_closed, RR_CONNS, WAIT_MS));
    pt_engine_down(e);
}
END_TEST

static void connect_posted(pants_stream_t *s, void *addr)
{
    ck_assert_int_eq(pants_stream_connect(s, addr), 0);
}

/* The application's own pants_engine_next_loop calls do not skew how the
 * acceptor spreads connections: pants clients placed with it, on the same
 * engine, still leave two server connections on every loop. */
START_TEST(round_robin_beside_next_loop)
{
    pants_engine_options_t o = {.threads = RR_LOOPS};
    pants_engine_t *e = pants_engine_new(&o);
    struct srv_rec r = {0};
    int per_loop[RR_LOOPS] = {0};
    char addr[128];

    ck_assert_ptr_nonnull(e);
    rec_server(e, &r, "127.0.0.1:0", addr, sizeof(addr));
    ck_assert_int_eq(pants_engine_start(e), 0);
    for (int i = 0; i < RR_CONNS; i++) { /* a client, its accept, the next client... */
        pants_stream_t *c = pants_stream_new(pants_engine_next_loop(e), NULL, NULL);
        ck_assert_ptr_nonnull(c);
        ck_assert_int_eq(pants_stream_post(c, connect_posted, addr), 0);
        ck_assert(pt_wait_count(&r.connected, i + 1, WAIT_MS));
    }
    for (int i = 0; i < RR_CONNS; i++)
        per_loop[r.conns[i].loop_index]++;
    for (int l = 0; l < RR_LOOPS; l++)
        ck_assert_msg(per_loop[l] == RR_CONNS / RR_LOOPS, "loop %d got %d connections", l, per_loop[l]);
    pt_engine_down(e);
}
END_TEST

START_TEST(one_thread_per_stream)
{
    pants_engine_t *e = pt_engine_up(RR_LOOPS);
    struct srv_rec r = {.echo = true};
    int fds[RR_CONNS];
    char addr[128], msg[32];

    rec_server(e, &r, "127.0.0.1:0", addr, sizeof(addr));
    for (int i = 0; i < RR_CONNS; i++) {
        fds[i] = plain_connect(addr);
        ck_assert_int_ge(fds[i], 0);
    }
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < RR_CONNS; i++) {
            snprintf(msg, sizeof(msg), "c%d r%d.", i, round);
            plain_send(fds[i], msg);
        }
        for (int i = 0; i < RR_CONNS; i++) {
            snprintf(msg, sizeof(msg), "c%d r%d.", i, round);
            plain_expect(fds[i], msg);
        }
    }
    for (int i = 0; i < RR_CONNS; i++)
        close(fds[i]);
    ck_assert(pt_wait_count(&r.conn_closed, RR_CONNS, WAIT_MS));
    for (int i = 0; i < RR_CONNS; i++) {
        struct conn_rec *c = &r.conns[i];
        ck_assert_msg(c->wrong_thread == 0, "connection %d: %d callbacks on another thread", i,
                      c->wrong_thread);
        ck_assert_msg(c->wrong_loop == 0, "connection %d: %d callbacks off its loop", i, c->wrong_loop);
        ck_assert_int_ge(GET(c->reads), 1);
        for (int j = 0; j < i; j++)
            if (c->loop_index != r.conns[j].loop_index)
                ck_assert(!pthread_equal(c->thread, r.conns[j].thread)); /* one thread per loop */
    }
    pt_engine_down(e);
}
END_TEST

START_TEST(connection_count)
{
    pants_engine_t *e = pt_engine_up(2);
    struct srv_rec r = {0};
    char addr[128];
    int fds[3];

    rec_server(e, &r, "127.0.0.1:0", addr, sizeof(addr));
    ck_assert_uint_eq(pants_server_connections(r.srv), 0);
    for (int i = 0; i < 3; i++) {
        fds[i] = plain_connect(addr);
        ck_assert_int_ge(fds[i], 0);
    }
    ck_assert(pt_wait_count(&r.connected, 3, WAIT_MS));
    ck_assert_uint_eq(pants_server_connections(r.srv), 3);
    close(fds[0]);
    ck_assert(pt_wait_count(&r.conn_closed, 1, WAIT_MS));
    ck_assert(wait_connections(r.srv, 2));
    close(fds[1]);
    close(fds[2]);
    ck_assert(pt_wait_count(&r.conn_closed, 3, WAIT_MS));
    ck_assert(wait_connections(r.srv, 0));
    pt_sleep_ms(20);
    ck_assert_uint_eq(pants_server_connections(r.srv), 0);
    ck_assert_uint_eq(pants_server_connections(NULL), 0);
    pt_engine_down(e);
}
END_TEST

/* User + system CPU time of the whole process so far, in ms. */
static long process_cpu_ms(void)
{
    struct rusage ru;

    ck_assert_int_eq(getrusage(RUSAGE_SELF, &ru), 0);
    return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000L + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000L;
}

/* Out of descriptors: on_error(-EMFILE) once, the server keeps listening,
 * without spinning, and the waiting connections are accepted once
 * descriptors are back. */
START_TEST(accept_emfile_keeps_listening)
{
    pants_engine_t *e = pt_engine_up(2);
    struct srv_rec r = {.echo = true};
    struct rlimit old, low;
    pants_addr_t a;
    char addr[128];
    int fds[4], probe;

    rec_server(e, &r, "127.0.0.1:0", addr, sizeof(addr));
    ck_assert(pt_wait(&r.listened, WAIT_MS));
    ck_assert_int_eq(pants_addr_parse(&a, addr), 0);
    for (int i = 0; i < 4; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fds[i], 0);
    }
    probe = pt_lowest_free_fd(); /* the lowest free descriptor: the only one accept may take */
    ck_assert_int_ge(probe, 0);
    close(probe);
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = (rlim_t)probe + 1;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(connect(fds[i], (const struct sockaddr *)&a.ss, a.len), 0); /* into the backlog */
    ck_assert(pt_wait(&r.server_errors, WAIT_MS));
    ck_assert(pt_wait(&r.connected, WAIT_MS));
    long cpu_ms = process_cpu_ms();
    pt_sleep_ms(300); /* three backoffs: the acceptor must not spin meanwhile */
    cpu_ms = process_cpu_ms() - cpu_ms;
    ck_assert_msg(cpu_ms < 100, "%ld ms of CPU in 300 ms while out of descriptors", cpu_ms);
    ck_assert_int_eq(GET(r.connected), 1);
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
    ck_assert(pt_wait_count(&r.connected, 4, WAIT_MS));
    ck_assert_int_eq(GET(r.server_errors), 1); /* one shortage, told once */
    ck_assert_int_eq(r.last_error, -EMFILE);
    for (int i = 0; i < 4; i++) {
        plain_send(fds[i], "back");
        plain_expect(fds[i], "back");
        close(fds[i]);
    }
    pt_engine_down(e);
}
END_TEST

/* ---- Broadcast --------------------------------------------------------- */

static void *broadcast_thread(void *arg)
{
    pants_server_t *srv = arg;
    intptr_t rc = pants_server_broadcast(srv, "news\n", 5);

    return (void *)rc;
}

/* A large message is shared by the connections' queues, not copied into
 * each; every client still gets every byte, in order with small ones. */
START_TEST(broadcast_large_shared)
{
    pants_engine_t *e = pt_engine_up(2);
    struct srv_rec r = {0};
    const size_t big = 300 * 1000;
    unsigned char *msg = malloc(big), *got = malloc(big);
    char addr[128];
    int fds[4];

    for (size_t i = 0; i < big; i++)
        msg[i] = (unsigned char)(i * 31 + i / 7);
    rec_server(e, &r, "127.0.0.1:0", addr, sizeof(addr));
    for (int i = 0; i < 4; i++) {
        fds[i] = plain_connect(addr);
        ck_assert_int_ge(fds[i], 0);
    }
    ck_assert(pt_wait_count(&r.connected, 4, WAIT_MS));
    ck_assert_int_eq(pants_server_broadcast(r.srv, "head\n", 5), 0);
    ck_assert_int_eq(pants_server_broadcast(r.srv, msg, big), 0);
    ck_assert_int_eq(pants_server_broadcast(r.srv, "tail\n", 5), 0);
    for (int i = 0; i < 4; i++) {
        size_t have = 0;
        plain_expect(fds[i], "head\n");
        while (have < big) {
            ssize_t n = recv(fds[i], got + have, big - have, 0);
            ck_assert_int_gt(n, 0);
            have += (size_t)n;
        }
        ck_assert_int_eq(memcmp(got, msg, big), 0);
        plain_expect(fds[i], "tail\n");
        close(fds[i]);
    }
    ck_assert(pt_wait_count(&r.conn_closed, 4, WAIT_MS));
    free(msg);
    free(got);
    pt_engine_down(e);
}
END_TEST

START_TEST(broadcast_from_foreign_thread)
{
    pants_engine_t *e = pt_engine_up(2);
    struct srv_rec r = {0};
    char addr[128], unix_where[200];
    struct srv_rec u = {0};
    pants_server_t *usrv;
    pthread_t t;
    void *rc;
    int fds[4];

    rec_server(e, &r, "127.0.0.1:0", addr, sizeof(addr));
    pt_unix_addr(unix_where, sizeof(unix_where), "bcast.sock");
    usrv = rec_server(e, &u, unix_where, NULL, 0); /* a bystander: gets nothing */
    for (int i = 0; i < 3; i++) {
        fds[i] = plain_connect(addr);
        ck_assert_int_ge(fds[i], 0);
    }
    fds[3] = plain_connect(unix_where);
    ck_assert_int_ge(fds[3], 0);
    ck_assert(pt_wait_count(&r.connected, 3, WAIT_MS));
    ck_assert(pt_wait_count(&u.connected, 1, WAIT_MS));
    ck_assert_int_eq(pthread_create(&t, NULL, broadcast_thread, r.srv), 0);
    pthread_join(t, &rc);
    ck_assert_int_eq((int)(intptr_t)rc, 0);
    ck_assert_int_eq(pants_server_broadcast(r.srv, "more\n", 5), 0); /* the test thread is foreign too */
    ck_assert_int_eq(pants_server_broadcast(r.srv, NULL, 0), 0);
    ck_assert_int_eq(pants_server_broadcast(r.srv, NULL, 3), -EINVAL);
    ck_assert_int_eq(pants_server_broadcast(NULL, "x", 1), -EINVAL);
    for (int i = 0; i < 3; i++)
        plain_expect(fds[i], "news\nmore\n");
    ck_assert_int_eq(recv(fds[3], &(char){0}, 1, MSG_DONTWAIT), -1); /* another server's client */
    ck_assert_int_eq(errno, EAGAIN);
    close(fds[3]);
    ck_assert(pt_wait(&u.conn_closed, WAIT_MS));
    pants_server_close(r.srv);
    ck_assert(pt_wait(&r.closed, WAIT_MS));
    ck_assert_int_eq(r.late_broadcast, -EPIPE);
    for (int i = 0; i < 3; i++) {
        plain_expect_eof(fds[i]);
        close(fds[i]);
    }
    pants_server_close(usrv);
    ck_assert(pt_wait(&u.closed, WAIT_MS));
    pt_engine_down(e);
}
END_TEST

/* ---- Closing ----------------------------------------------------------- */

START_TEST(close_closes_connections_first)
{
    pants_engine_t *e = pt_engine_up(2);
    struct srv_rec r = {0};
    char addr[128];
    int fds[3], fd;

    rec_server(e, &r, "127.0.0.1:0", addr, sizeof(addr));
    for (int i = 0; i < 3; i++) {
        fds[i] = plain_connect(addr);
        ck_assert_int_ge(fds[i], 0);
    }
    ck_assert(pt_wait_count(&r.connected, 3, WAIT_MS));
    pants_server_close(r.srv); /* from the test thread: handed to the acceptor */
    ck_assert(pt_wait(&r.closed, WAIT_MS));
    ck_assert_int_eq(GET(r.conn_closed), 3);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_lt(r.conns[i].closed_seq, r.closed_seq);
        plain_expect_eof(fds[i]);
        close(fds[i]);
    }
    ck_assert_uint_eq(r.conns_at_close, 0);
    fd = plain_connect(addr); /* nobody listens any more */
    ck_assert_int_eq(fd, -1);
    pt_sleep_ms(20);
    ck_assert_int_eq(GET(r.closed), 1);
    pt_engine_down(e);
}
END_TEST

START_TEST(close_before_listen)
{
    pants_engine_t *e = pt_engine_up(1);
    struct srv_rec r = {0};

    r.srv = pants_server_new(e, &srv_cb, &conn_cb, &r);
    ck_assert_ptr_nonnull(r.srv);
    pants_server_close(r.srv);
    ck_assert(pt_wait(&r.closed, WAIT_MS));
    ck_assert_int_eq(GET(r.listened), 0);
    pt_engine_down(e);
}
END_TEST

START_TEST(close_right_after_listen)
{
    pants_engine_t *e = pt_engine_up(1);
    struct srv_rec r = {0};
    char addr[128];

    rec_server(e, &r, "127.0.0.1:0", addr, sizeof(addr));
    pants_server_close(r.srv);
    ck_assert(pt_wait(&r.closed, WAIT_MS));
    ck_assert_int_eq(plain_connect(addr), -1);
    pt_sleep_ms(20);
    ck_assert_int_eq(GET(r.closed), 1);
    ck_assert_int_le(GET(r.listened), 1);
    if (GET(r.listened))
        ck_assert_int_lt(r.listen_seq, r.closed_seq);
    pt_engine_down(e);
}
END_TEST

START_TEST(stop_closes_servers_and_connections)
{
    pants_engine_t *e = pt_engine_up(2);
    struct srv_rec r = {0};
    char addr[128];
    int fds[2];

    rec_server(e, &r, "127.0.0.1:0", addr, sizeof(addr));
    for (int i = 0; i < 2; i++) {
        fds[i] = plain_connect(addr);
        ck_assert_int_ge(fds[i], 0);
    }
    ck_assert(pt_wait_count(&r.connected, 2, WAIT_MS));
    pants_engine_stop(e);
    ck_assert_int_eq(pants_engine_join(e), 0);
    ck_assert_int_eq(GET(r.conn_closed), 2);
    ck_assert_int_eq(GET(r.closed), 1);
    for (int i = 0; i < 2; i++) {
        plain_expect_eof(fds[i]);
        close(fds[i]);
    }
    ck_assert_int_eq(plain_connect(addr), -1);
    pants_engine_free(e);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

START_TEST(server_never_run_is_freed)
{
    pants_engine_options_t o = {.threads = 2};
    pants_engine_t *e = pants_engine_new(&o);
    struct srv_rec r = {0};
    char where[200];
    struct stat st;

    ck_assert_ptr_nonnull(e);
    pt_unix_addr(where, sizeof(where), "never.sock");
    rec_server(e, &r, where, NULL, 0);
    pants_engine_free(e); /* never ran: freed without callbacks */
    ck_assert_int_eq(GET(r.listened), 0);
    ck_assert_int_eq(GET(r.closed), 0);
    ck_assert_int_eq(stat(where + 5, &st), -1); /* its socket file is gone too */
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

/* ---- The suite --------------------------------------------------------- */

Suite *server_suite(void)
{
    Suite *s = suite_create("server");
    TCase *tc;

    tc = tcase_create("listen");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, tcp_port_in_use);
    tcase_add_test(tc, unix_path_in_use);
    tcase_add_test(tc, unix_stale_file_replaced);
    tcase_add_test(tc, unix_path_regular_file_kept);
    tcase_add_test(tc, unix_file_removed_on_close);
    tcase_add_test(tc, unix_abstract);
    tcase_add_test(tc, listen_errors);
    tcase_add_test(tc, listen_on_localhost);
    tcase_add_loop_test(tc, dual_stack_any, 0, 2);
    tcase_add_test(tc, on_listen_runs_on_acceptor);
    suite_add_tcase(s, tc);

    tc = tcase_create("accept");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, accept_then_connect_on_conn_loop);
    tcase_add_test(tc, accept_sets_callbacks);
    tcase_add_test(tc, close_in_on_accept);
    tcase_add_test(tc, round_robin_over_loops);
    tcase_add_test(tc, round_robin_beside_next_loop);
    tcase_add_test(tc, one_thread_per_stream);
    tcase_add_test(tc, connection_count);
    tcase_add_test(tc, accept_emfile_keeps_listening);
    tcase_add_test(tc, broadcast_from_foreign_thread);
    tcase_add_test(tc, broadcast_large_shared);
    suite_add_tcase(s, tc);

    tc = tcase_create("close");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, close_closes_connections_first);
    tcase_add_test(tc, close_before_listen);
    tcase_add_test(tc, close_right_after_listen);
    tcase_add_test(tc, stop_closes_servers_and_connections);
    tcase_add_test(tc, server_never_run_is_freed);
    suite_add_tcase(s, tc);
    return s;
}
