/* check_deploy.c -- the deployment options: a listener per loop
 * (SO_REUSEPORT) and the PROXY protocol, over real loopback sockets.
 *
 * Reuseport: connections are accepted on the loop that owns the listener
 * (on_accept runs there), every loop gets some, a second server (a second
 * process, as far as the kernel knows) shares the port, the connection cap
 * and closing work as with the acceptor, and misuse gets its error.
 *
 * PROXY protocol: the parser on its own (versions 1 and 2, every split
 * point, malformed headers), then a server that reads the header before
 * on_accept: the addresses it names are what pants_stream_remote_address
 * and _local_address give, the bytes after it arrive as data, a LOCAL or
 * UNKNOWN header leaves the socket's own addresses, and a malformed,
 * missing or stalled header closes the connection with no callback at all.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "proxy-internal.h"
#include "testutil.h"

Suite *deploy_suite(void);

#define WAIT_MS 10000
#define NCONNS  64

#define GET(x)    __atomic_load_n(&(x), __ATOMIC_SEQ_CST)
#define SET(x, v) __atomic_store_n(&(x), (v), __ATOMIC_SEQ_CST)
#define INC(x)    __atomic_add_fetch(&(x), 1, __ATOMIC_SEQ_CST)

/* ---- Helpers ------------------------------------------------------------ */

struct ctx {
    int accepted;         /* on_accept calls */
    int on_own_loop;      /* of which ran on the connection's own loop */
    int per_loop[4];      /* accepted connections, by loop index */
    int closed;           /* on_close calls */
    int errors;           /* on_error calls (streams) */
    int srv_closed;       /* the server's on_close calls */
    int reads;            /* on_read calls */
    char remote[64];      /* the last accepted connection's remote address */
    char local[64];       /* and its local address */
    char data[64];        /* what it read first */
    int64_t closed_ms;    /* when the last on_close ran, ms since start */
    int64_t start_ms;     /* reference time */
};

static pthread_mutex_t record_mu = PTHREAD_MUTEX_INITIALIZER; /* guards ctx's strings */

static struct ctx *ctx_of(pants_stream_t *s)
{
    return pants_server_data(pants_stream_server(s));
}

static void on_accept(pants_server_t *srv, pants_stream_t *s)
{
    struct ctx *c = pants_server_data(srv);
    unsigned i = pants_loop_index(pants_stream_loop(s));
    pants_addr_t a;

    if (pants_loop_current() == pants_stream_loop(s))
        INC(c->on_own_loop);
    if (i < 4)
        INC(c->per_loop[i]);
    pthread_mutex_lock(&record_mu); /* loops accept at the same time */
    if (pants_stream_remote_address(s, &a) == 0)
        pants_addr_format(&a, c->remote, sizeof(c->remote));
    if (pants_stream_local_address(s, &a) == 0)
        pants_addr_format(&a, c->local, sizeof(c->local));
    pthread_mutex_unlock(&record_mu);
    INC(c->accepted);
}

static void on_close(pants_stream_t *s)
{
    struct ctx *c = ctx_of(s);

    SET(c->closed_ms, pt_now_ms() - c->start_ms);
    INC(c->closed);
}

static void on_error(pants_stream_t *s, int err)
{
    (void)err;
    INC(ctx_of(s)->errors);
}

static void on_read(pants_stream_t *s, const void *data, size_t len)
{
    struct ctx *c = ctx_of(s);

    if (INC(c->reads) == 1) {
        size_t n = len < sizeof(c->data) - 1 ? len : sizeof(c->data) - 1;
        memcpy(c->data, data, n);
        c->data[n] = '\0';
    }
    pants_stream_write(s, data, len); /* echo */
}

static void srv_on_close(pants_server_t *srv)
{
    INC(((struct ctx *)pants_server_data(srv))->srv_closed);
}

static const pants_server_callbacks_t scb = {.on_accept = on_accept, .on_close = srv_on_close};
static const pants_stream_callbacks_t conn_cb = {.on_read = on_read, .on_close = on_close, .on_error = on_error};

enum { PLAIN = 0, REUSEPORT = 1, PROXY = 2 };

static pants_server_t *serve(pants_engine_t *e, unsigned flags, const char *at, struct ctx *c, char *addr,
                             size_t len)
{
    pants_server_t *srv = pants_server_new(e, &scb, &conn_cb, c);
    pants_addr_t a;

    ck_assert_ptr_nonnull(srv);
    ck_assert_int_eq(pants_server_set_reuseport(srv, flags & REUSEPORT), 0);
    ck_assert_int_eq(pants_server_set_proxy_protocol(srv, flags & PROXY), 0);
    ck_assert_int_eq(pants_server_listen(srv, at, 0), 0);
    ck_assert_int_eq(pants_server_local_address(srv, &a), 0);
    ck_assert_int_eq(pants_addr_format(&a, addr, len), 0);
    c->start_ms = pt_now_ms();
    return srv;
}

static int port_of(const char *addr)
{
    const char *colon = strrchr(addr, ':');
    return colon ? atoi(colon + 1) : -1;
}

/* A blocking client socket connected to 127.0.0.1:port, with a 5 s
 * receive timeout. */
static int peer_connect(int port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct timeval tv = {5, 0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    ck_assert_int_ge(fd, 0);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    return fd;
}

static void send_all(int fd, const void *p, size_t n)
{
    ck_assert_int_eq(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Read exactly n bytes (bounded by the socket's receive timeout). */
static void recv_exact(int fd, char *buf, size_t n)
{
    size_t got = 0;

    while (got < n) {
        ssize_t r = recv(fd, buf + got, n - got, 0);
        ck_assert_int_gt(r, 0);
        got += (size_t)r;
    }
}

/* The peer sees the server close: EOF (or a reset), within the timeout. */
static bool closed_by_server(int fd)
{
    char b;
    ssize_t r = recv(fd, &b, 1, 0);

    return r == 0 || (r < 0 && errno == ECONNRESET);
}

/* ---- Reuseport ------------------------------------------------------------ */

/* Every loop accepts on its own listener, and on_accept runs there. */
START_TEST(reuseport_accepts_on_every_loop)
{
    pants_engine_t *e = pt_engine_up(2);
    struct ctx c = {0};
    char addr[64];
    int fds[NCONNS], port;

    serve(e, REUSEPORT, "127.0.0.1:0", &c, addr, sizeof(addr));
    port = port_of(addr);
    pt_sleep_ms(50); /* both listeners are watched */
    for (int i = 0; i < NCONNS; i++)
        fds[i] = peer_connect(port);
    ck_assert(pt_wait_count(&c.accepted, NCONNS, WAIT_MS));
    ck_assert_int_eq(GET(c.on_own_loop), NCONNS);
    /* The kernel hashes source ports: all 64 on one loop has odds 2^-63. */
    ck_assert_int_gt(GET(c.per_loop[0]), 0);
    ck_assert_int_gt(GET(c.per_loop[1]), 0);
    for (int i = 0; i < NCONNS; i++) {
        char buf[4];
        send_all(fds[i], "abc", 3);
        recv_exact(fds[i], buf, 3);
        ck_assert(memcmp(buf, "abc", 3) == 0);
        close(fds[i]);
    }
    ck_assert(pt_wait_count(&c.closed, NCONNS, WAIT_MS));
    pt_engine_down(e);
}
END_TEST

/* Two servers (two processes, as far as the kernel knows) share a port
 * with reuseport; without it, the second gets -EADDRINUSE. */
START_TEST(reuseport_shares_the_port)
{
    pants_engine_t *e = pt_engine_up(2);
    struct ctx c1 = {0}, c2 = {0};
    char addr[64], addr2[64];
    pants_server_t *plain;

    serve(e, REUSEPORT, "127.0.0.1:0", &c1, addr, sizeof(addr));
    serve(e, REUSEPORT, addr, &c2, addr2, sizeof(addr2));
    ck_assert_str_eq(addr, addr2);
    plain = pants_server_new(e, NULL, NULL, NULL);
    ck_assert_int_eq(pants_server_listen(plain, addr, 0), -EADDRINUSE);
    pt_sleep_ms(50);
    for (int i = 0; i < NCONNS; i++)
        close(peer_connect(port_of(addr)));
    ck_assert(pt_wait_count(&c1.closed, 1, WAIT_MS));
    ck_assert(pt_wait_count(&c2.closed, 1, WAIT_MS)); /* both took some */
    for (int i = 0; i < 500 && GET(c1.closed) + GET(c2.closed) < NCONNS; i++)
        pt_sleep_ms(10);
    ck_assert_int_eq(GET(c1.closed) + GET(c2.closed), NCONNS);
    pt_engine_down(e);
}
END_TEST

START_TEST(reuseport_misuse)
{
    pants_engine_t *e = pt_engine_up(1);
    pants_server_t *srv = pants_server_new(e, NULL, NULL, NULL);
    char path[108];

    ck_assert_int_eq(pants_server_set_reuseport(NULL, true), -EINVAL);
    ck_assert_int_eq(pants_server_set_proxy_protocol(NULL, true), -EINVAL);
    ck_assert_int_eq(pants_server_set_reuseport(srv, true), 0);
    pt_unix_addr(path, sizeof(path), "reuseport");
    ck_assert_int_eq(pants_server_listen(srv, path, 0), -EINVAL);
    ck_assert_int_eq(pants_server_listen(srv, "127.0.0.1:0", 0), 0); /* the failure left nothing */
    ck_assert_int_eq(pants_server_set_reuseport(srv, false), -EALREADY);
    ck_assert_int_eq(pants_server_set_proxy_protocol(srv, true), -EALREADY);
    pt_engine_down(e);
}
END_TEST

/* The cap holds across listeners: at max, the next client waits in the
 * backlog until one closes. */
START_TEST(reuseport_connection_cap)
{
    pants_engine_t *e = pt_engine_up(2);
    struct ctx c = {0};
    char addr[64], buf[2];
    pants_server_t *srv = pants_server_new(e, &scb, &conn_cb, &c);
    pants_addr_t a;
    int fds[3];

    ck_assert_int_eq(pants_server_set_reuseport(srv, true), 0);
    ck_assert_int_eq(pants_server_set_max_connections(srv, 2), 0);
    ck_assert_int_eq(pants_server_listen(srv, "127.0.0.1:0", 0), 0);
    ck_assert_int_eq(pants_server_local_address(srv, &a), 0);
    ck_assert_int_eq(pants_addr_format(&a, addr, sizeof(addr)), 0);
    pt_sleep_ms(50);
    for (int i = 0; i < 3; i++) {
        fds[i] = peer_connect(port_of(addr));
        send_all(fds[i], "x", 1);
    }
    ck_assert(pt_wait_count(&c.accepted, 2, WAIT_MS));
    pt_sleep_ms(300);
    ck_assert_int_eq(GET(c.accepted), 2);
    ck_assert_uint_eq(pants_server_connections(srv), 2);
    for (int i = 0; i < 3; i++) { /* close one that was accepted: its echo came */
        struct timeval tv = {0, 100000};
        setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        if (recv(fds[i], buf, 1, 0) == 1) {
            close(fds[i]);
            fds[i] = -1;
            break;
        }
    }
    ck_assert(pt_wait_count(&c.accepted, 3, WAIT_MS));
    for (int i = 0; i < 3; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    pt_engine_down(e);
}
END_TEST

/* Closing a reuseport server closes every listener and connection, then
 * on_close once; nobody accepts on the port after. */
START_TEST(reuseport_close)
{
    pants_engine_t *e = pt_engine_up(2);
    struct ctx c = {0};
    char addr[64];
    pants_server_t *srv = serve(e, REUSEPORT, "127.0.0.1:0", &c, addr, sizeof(addr));
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port_of(addr))};
    int fd, s;

    pt_sleep_ms(50);
    fd = peer_connect(port_of(addr));
    ck_assert(pt_wait_count(&c.accepted, 1, WAIT_MS));
    pants_server_close(srv);
    ck_assert(pt_wait(&c.srv_closed, WAIT_MS));
    ck_assert(closed_by_server(fd));
    close(fd);
    ck_assert_int_eq(GET(c.srv_closed), 1);
    ck_assert_int_eq(GET(c.closed), 1);
    s = socket(AF_INET, SOCK_STREAM, 0);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(s, (struct sockaddr *)&sin, sizeof(sin)), -1);
    ck_assert_int_eq(errno, ECONNREFUSED);
    close(s);
    pt_engine_down(e);
}
END_TEST

/* Listening before the engine runs, then stopping it: listeners on every
 * loop start with it and go with it. */
START_TEST(reuseport_before_run)
{
    pants_engine_options_t o = {.threads = 2};
    pants_engine_t *e = pants_engine_new(&o);
    struct ctx c = {0};
    char addr[64];
    int fd;

    ck_assert_ptr_nonnull(e);
    serve(e, REUSEPORT | PROXY, "127.0.0.1:0", &c, addr, sizeof(addr));
    ck_assert_int_eq(pants_engine_start(e), 0);
    fd = peer_connect(port_of(addr));
    send_all(fd, "PROXY UNKNOWN\r\nhi", 17);
    ck_assert(pt_wait(&c.accepted, WAIT_MS));
    close(fd);
    pt_engine_down(e);
}
END_TEST

/* ---- Draining ------------------------------------------------------------ */

/* A new connect to 127.0.0.1:port is refused. */
static bool refused(int port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int s = socket(AF_INET, SOCK_STREAM, 0), rc;

    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    rc = connect(s, (struct sockaddr *)&sin, sizeof(sin));
    close(s);
    return rc == -1 && errno == ECONNREFUSED;
}

/* Stop listening, keep serving: open connections still echo, new ones
 * are refused (with reuseport too), on_close waits for the last one; a
 * close afterwards closes what is left. */
START_TEST(stop_listening_keeps_connections)
{
    for (unsigned flags = PLAIN; flags <= REUSEPORT; flags++) {
        pants_engine_t *e = pt_engine_up(2);
        struct ctx c = {0};
        char addr[64], buf[3];
        pants_server_t *srv = serve(e, flags, "127.0.0.1:0", &c, addr, sizeof(addr));
        int a, b;

        pt_sleep_ms(50);
        a = peer_connect(port_of(addr));
        b = peer_connect(port_of(addr));
        ck_assert(pt_wait_count(&c.accepted, 2, WAIT_MS));
        ck_assert_int_eq(pants_server_stop_listening(srv), 0);
        ck_assert_int_eq(pants_server_stop_listening(srv), 0); /* again: harmless */
        for (int i = 0; i < 100 && !refused(port_of(addr)); i++)
            pt_sleep_ms(10);
        ck_assert(refused(port_of(addr)));
        send_all(a, "abc", 3);
        recv_exact(a, buf, 3);
        ck_assert(memcmp(buf, "abc", 3) == 0);
        close(a);
        ck_assert(pt_wait_count(&c.closed, 1, WAIT_MS));
        pt_sleep_ms(100);
        ck_assert_int_eq(GET(c.srv_closed), 0); /* b is still open */
        pants_server_close(srv);
        ck_assert(closed_by_server(b));
        close(b);
        ck_assert(pt_wait(&c.srv_closed, WAIT_MS));
        ck_assert_int_eq(GET(c.srv_closed), 1);
        ck_assert_int_eq(pants_server_stop_listening(NULL), -EINVAL);
        pt_engine_down(e);
    }
}
END_TEST

/* ---- The PROXY header parser ---------------------------------------------- */

static const char v1_tcp4[] = "PROXY TCP4 192.0.2.1 198.51.100.2 5555 80\r\n";
static const char v1_tcp6[] = "PROXY TCP6 2001:db8::1 2001:db8::2 65535 443\r\n";

/* A version 2 header for IPv4 (PROXY command) or LOCAL; n bytes of TLVs. */
static size_t v2_header(unsigned char *p, bool local, int family, size_t tlv)
{
    static const unsigned char sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
    size_t alen = family == 6 ? 36 : family == 4 ? 12 : 0, len = alen + tlv;

    memcpy(p, sig, 12);
    p[12] = local ? 0x20 : 0x21;
    p[13] = family == 6 ? 0x21 : family == 4 ? 0x11 : 0x00;
    p[14] = (unsigned char)(len >> 8);
    p[15] = (unsigned char)len;
    memset(p + 16, 0, len);
    if (family == 4) {
        static const unsigned char a[12] = {203, 0, 113, 7, 127, 0, 0, 1, 0x30, 0x39, 0x1F, 0x90};
        memcpy(p + 16, a, 12); /* 203.0.113.7:12345 -> 127.0.0.1:8080 */
    } else if (family == 6) {
        p[16] = 0x20, p[17] = 0x01, p[18] = 0x0d, p[19] = 0xb8, p[31] = 7; /* 2001:db8::7 */
        p[32] = 0x20, p[33] = 0x01, p[34] = 0x0d, p[35] = 0xb8, p[47] = 8; /* 2001:db8::8 */
        p[48] = 0x04, p[49] = 0xD2;                                      /* 1234 */
        p[50] = 0x00, p[51] = 0x50;                                      /* 80 */
    }
    return 16 + len;
}

/* Whole headers parse to their length with what they say; every prefix
 * of one needs more. */
START_TEST(proxy_parse_samples)
{
    unsigned char buf[600];
    pants__proxy_hdr_t h;
    size_t n;

    ck_assert_int_eq(pants__proxy_parse((const unsigned char *)v1_tcp4, strlen(v1_tcp4), &h), strlen(v1_tcp4));
    ck_assert_int_eq(h.ip_version, 4);
    ck_assert_int_eq(h.src_port, 5555);
    ck_assert_int_eq(h.dst_port, 80);
    ck_assert_int_eq(h.src[0], 192);
    ck_assert_int_eq(h.dst[3], 2);
    ck_assert_int_eq(pants__proxy_parse((const unsigned char *)v1_tcp6, strlen(v1_tcp6), &h), strlen(v1_tcp6));
    ck_assert_int_eq(h.ip_version, 6);
    ck_assert_int_eq(h.src_port, 65535);
    ck_assert_int_eq(h.src[15], 1);
    ck_assert_int_eq(pants__proxy_parse((const unsigned char *)"PROXY UNKNOWN\r\n", 15, &h), 15);
    ck_assert_int_eq(h.ip_version, 0);
    ck_assert_int_eq(pants__proxy_parse((const unsigned char *)"PROXY UNKNOWN ::1 ::2 1 2\r\nxx", 29, &h), 27);
    ck_assert_int_eq(h.ip_version, 0);

    n = v2_header(buf, false, 4, 0);
    ck_assert_int_eq(pants__proxy_parse(buf, n + 5, &h), n); /* bytes after it are not its */
    ck_assert_int_eq(h.ip_version, 4);
    ck_assert_int_eq(h.src[0], 203);
    ck_assert_int_eq(h.src_port, 12345);
    ck_assert_int_eq(h.dst_port, 8080);
    n = v2_header(buf, false, 6, 40); /* TLVs are skipped */
    ck_assert_int_eq(pants__proxy_parse(buf, n, &h), n);
    ck_assert_int_eq(h.ip_version, 6);
    ck_assert_int_eq(h.dst[15], 8);
    ck_assert_int_eq(h.src_port, 1234);
    n = v2_header(buf, true, 4, 0);
    ck_assert_int_eq(pants__proxy_parse(buf, n, &h), n);
    ck_assert_int_eq(h.ip_version, 0); /* LOCAL */
    n = v2_header(buf, false, 0, 0);
    ck_assert_int_eq(pants__proxy_parse(buf, n, &h), n);
    ck_assert_int_eq(h.ip_version, 0); /* UNSPEC */

    for (size_t k = 0; k < strlen(v1_tcp6); k++)
        ck_assert_int_eq(pants__proxy_parse((const unsigned char *)v1_tcp6, k, &h), -2);
    n = v2_header(buf, false, 6, 40);
    for (size_t k = 0; k < n; k++)
        ck_assert_int_eq(pants__proxy_parse(buf, k, &h), -2);
}
END_TEST

START_TEST(proxy_parse_malformed)
{
    static const char *bad[] = {
        "GET / HTTP/1.1\r\n\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 5555 80\n",       /* LF alone */
        "PROXY TCP4 192.0.2.1 198.51.100.2 5555 80\r\r",     /* CR not followed by LF */
        "PROXY TCP4  192.0.2.1 198.51.100.2 5555 80\r\n",    /* two spaces */
        "PROXY TCP4 192.0.2.1 198.51.100.2 5555 080\r\n",    /* leading zero */
        "PROXY TCP4 192.0.2.1 198.51.100.2 5555 65536\r\n",  /* port out of range */
        "PROXY TCP4 2001:db8::1 198.51.100.2 5555 80\r\n",   /* family mismatch */
        "PROXY TCP6 192.0.2.1 2001:db8::2 5555 80\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 5555\r\n",        /* a field short */
        "PROXY TCP4 192.0.2.1 198.51.100.2 5555 80 9\r\n",   /* a field more */
        "PROXY UDP4 192.0.2.1 198.51.100.2 5555 80\r\n",     /* not TCP */
        "PROXY UNKNOWNX\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 5555 8\0000\r\n", /* NUL inside */
        "proxy TCP4 192.0.2.1 198.51.100.2 5555 80\r\n",
    };
    unsigned char buf[PANTS__PROXY_MAX + 64];
    pants__proxy_hdr_t h;
    size_t n;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t len = strlen(bad[i]) + (i == 12 ? 4 : 0);
        ck_assert_msg(pants__proxy_parse((const unsigned char *)bad[i], len, &h) == -1, "accepted: %s", bad[i]);
    }
    /* A version 1 line that never ends within 107 bytes. */
    memset(buf, 'a', sizeof(buf));
    memcpy(buf, "PROXY TCP4 ", 11);
    ck_assert_int_eq(pants__proxy_parse(buf, 106, &h), -2);
    ck_assert_int_eq(pants__proxy_parse(buf, 107, &h), -1);
    /* Version 2: bad version, bad command, bad family, short addresses, too long. */
    n = v2_header(buf, false, 4, 0);
    buf[12] = 0x11;
    ck_assert_int_eq(pants__proxy_parse(buf, n, &h), -1);
    buf[12] = 0x22;
    ck_assert_int_eq(pants__proxy_parse(buf, n, &h), -1);
    v2_header(buf, false, 4, 0);
    buf[13] = 0x41;
    ck_assert_int_eq(pants__proxy_parse(buf, n, &h), -1);
    v2_header(buf, false, 4, 0);
    buf[15] = 8; /* IPv4 needs 12 */
    ck_assert_int_eq(pants__proxy_parse(buf, 24, &h), -1);
    v2_header(buf, false, 4, 0);
    buf[14] = 0x20, buf[15] = 0x01; /* 8193 > the 4096 accepted */
    ck_assert_int_eq(pants__proxy_parse(buf, sizeof(buf), &h), -1);
    /* Random bytes: never a crash, never a length past the input. */
    srand(7);
    for (int round = 0; round < 20000; round++) {
        size_t len = (size_t)(rand() % 120);
        for (size_t k = 0; k < len; k++)
            buf[k] = (unsigned char)(round % 3 == 0 && k < 6 ? "PROXY "[k] : rand() % 256);
        int rc = pants__proxy_parse(buf, len, &h);
        ck_assert(rc == -1 || rc == -2 || (rc > 0 && (size_t)rc <= len));
    }
}
END_TEST

/* ---- A server that reads the PROXY header --------------------------------- */

/* The addresses in a version 1 header are the stream's; the bytes after
 * it arrive as data (sent in the same segment). */
START_TEST(proxy_v1_addresses)
{
    pants_engine_t *e = pt_engine_up(2);
    struct ctx c = {0};
    char addr[64], msg[128], buf[5];
    int fd;

    serve(e, PROXY, "127.0.0.1:0", &c, addr, sizeof(addr));
    fd = peer_connect(port_of(addr));
    snprintf(msg, sizeof(msg), "%shello", v1_tcp4);
    send_all(fd, msg, strlen(msg));
    recv_exact(fd, buf, 5);
    ck_assert(memcmp(buf, "hello", 5) == 0);
    ck_assert_int_eq(GET(c.accepted), 1);
    ck_assert_str_eq(c.remote, "192.0.2.1:5555");
    ck_assert_str_eq(c.local, "198.51.100.2:80");
    ck_assert_str_eq(c.data, "hello");
    close(fd);
    ck_assert(pt_wait(&c.closed, WAIT_MS));
    pt_engine_down(e);
}
END_TEST

/* Version 2 over IPv6, one byte at a time; LOCAL keeps the socket's own. */
START_TEST(proxy_v2_trickled_and_local)
{
    pants_engine_t *e = pt_engine_up(1);
    struct ctx c = {0};
    char addr[64], buf[3];
    unsigned char hdr[128];
    size_t n = v2_header(hdr, false, 6, 7);
    int fd;

    serve(e, PROXY, "127.0.0.1:0", &c, addr, sizeof(addr));
    fd = peer_connect(port_of(addr));
    for (size_t i = 0; i < n; i++) {
        send_all(fd, hdr + i, 1);
        if (i % 8 == 0)
            pt_sleep_ms(2);
    }
    send_all(fd, "v2!", 3);
    recv_exact(fd, buf, 3);
    ck_assert(memcmp(buf, "v2!", 3) == 0);
    ck_assert_str_eq(c.remote, "[2001:db8::7]:1234");
    ck_assert_str_eq(c.local, "[2001:db8::8]:80");
    close(fd);
    ck_assert(pt_wait_count(&c.closed, 1, WAIT_MS));

    n = v2_header(hdr, true, 4, 0);
    fd = peer_connect(port_of(addr));
    send_all(fd, hdr, n);
    send_all(fd, "abc", 3);
    recv_exact(fd, buf, 3);
    ck_assert(strncmp(c.remote, "127.0.0.1:", 10) == 0);
    ck_assert_str_eq(c.local, addr);
    close(fd);
    ck_assert(pt_wait_count(&c.closed, 2, WAIT_MS));
    pt_engine_down(e);
}
END_TEST

/* No header, a malformed one, a peer that leaves: closed, and the
 * application never hears of them. */
START_TEST(proxy_bad_header_is_unheard)
{
    pants_engine_t *e = pt_engine_up(1);
    struct ctx c = {0};
    char addr[64];
    pants_server_t *srv = serve(e, PROXY, "127.0.0.1:0", &c, addr, sizeof(addr));
    static const char *bad[] = {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
                                "\r\n\r\n\0\r\nQUIT\n\x13\x11\x00\x0c"};
    int fd;

    for (size_t i = 0; i < 3; i++) {
        fd = peer_connect(port_of(addr));
        send_all(fd, bad[i], i == 2 ? 16 : strlen(bad[i]));
        ck_assert(closed_by_server(fd));
        close(fd);
    }
    fd = peer_connect(port_of(addr));
    send_all(fd, "PROXY TCP4 1.2.3", 16);
    close(fd); /* gone before finishing it */
    for (int i = 0; i < 500 && pants_server_connections(srv) > 0; i++)
        pt_sleep_ms(10);
    ck_assert_uint_eq(pants_server_connections(srv), 0);
    ck_assert_int_eq(GET(c.accepted), 0);
    ck_assert_int_eq(GET(c.closed), 0);
    ck_assert_int_eq(GET(c.errors), 0);
    pt_engine_down(e);
}
END_TEST

/* A header that stalls is closed by the frame timeout (the server's
 * stream options), never before it. */
START_TEST(proxy_header_stall_is_bounded)
{
    pants_engine_t *e = pt_engine_up(1);
    struct ctx c = {0};
    pants_stream_options_t o = {.frame_timeout_ms = 300};
    pants_server_t *srv = pants_server_new(e, &scb, &conn_cb, &c);
    pants_addr_t a;
    char addr[64];
    int64_t t0, waited;
    int fd;

    ck_assert_int_eq(pants_server_set_stream_options(srv, &o), 0);
    ck_assert_int_eq(pants_server_set_proxy_protocol(srv, true), 0);
    ck_assert_int_eq(pants_server_listen(srv, "127.0.0.1:0", 0), 0);
    ck_assert_int_eq(pants_server_local_address(srv, &a), 0);
    ck_assert_int_eq(pants_addr_format(&a, addr, sizeof(addr)), 0);
    fd = peer_connect(port_of(addr));
    t0 = pt_now_ms();
    send_all(fd, "PROXY TCP4 ", 11);
    ck_assert(closed_by_server(fd));
    waited = pt_now_ms() - t0;
    ck_assert_int_ge(waited, 290);
    ck_assert_int_lt(waited, 5000);
    close(fd);
    ck_assert_int_eq(GET(c.accepted), 0);
    ck_assert_int_eq(GET(c.closed), 0);
    pt_engine_down(e);
}
END_TEST

Suite *deploy_suite(void)
{
    Suite *s = suite_create("deploy");
    TCase *tc = tcase_create("reuseport");
    TCase *tp = tcase_create("proxy");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, reuseport_accepts_on_every_loop);
    tcase_add_test(tc, reuseport_shares_the_port);
    tcase_add_test(tc, reuseport_misuse);
    tcase_add_test(tc, reuseport_connection_cap);
    tcase_add_test(tc, reuseport_close);
    tcase_add_test(tc, reuseport_before_run);
    tcase_add_test(tc, stop_listening_keeps_connections);
    suite_add_tcase(s, tc);
    tcase_set_timeout(tp, 60);
    tcase_add_test(tp, proxy_parse_samples);
    tcase_add_test(tp, proxy_parse_malformed);
    tcase_add_test(tp, proxy_v1_addresses);
    tcase_add_test(tp, proxy_v2_trickled_and_local);
    tcase_add_test(tp, proxy_bad_header_is_unheard);
    tcase_add_test(tp, proxy_header_stall_is_bounded);
    suite_add_tcase(s, tp);
    return s;
}
