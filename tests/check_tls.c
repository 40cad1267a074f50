/* check_tls.c -- TLS streams over real loopback sockets.
 *
 * Certificates are made when the suite starts, with the openssl command,
 * in a temporary directory (nothing secret is committed): a test CA, a
 * server certificate for "localhost" and 127.0.0.1 signed by it, a client
 * certificate, and a second CA nobody trusts.  Peers are pants streams,
 * blocking OpenSSL clients written here on the test thread, and the
 * openssl command's s_client and s_server, which nobody here wrote.
 *
 * Covered: echo over TLS with every delimiter, also fed one byte per TLS
 * record; 8 MiB then end() arrives whole and ends with close_notify;
 * write_file over TLS; verification failures (wrong name, unknown CA)
 * reaching on_connect_error(PANTS_ETLS) with a reason; insecure; client
 * certificates required and missing; a plain-text client at a TLS server;
 * a stalled handshake closed by the bound; ALPN; STARTTLS on both sides;
 * session resumption; an engine stop with TLS data queued.  Built without
 * OpenSSL, the suite checks that every TLS call says ENOTSUP.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "testutil.h"

Suite *tls_suite(void);

#ifdef HAVE_OPENSSL

#include <openssl/err.h>
#include <openssl/ssl.h>

#define WAIT_MS 10000

#define GET(x)    __atomic_load_n(&(x), __ATOMIC_SEQ_CST)
#define SET(x, v) __atomic_store_n(&(x), (v), __ATOMIC_SEQ_CST)
#define INC(x)    __atomic_add_fetch(&(x), 1, __ATOMIC_SEQ_CST)

/* ---- Certificates ---------------------------------------------------------- */

static char dir[64];           /* where the certificates are */
static char ca[128], ca2[128]; /* the test CA, and one nobody trusts */
static char srv_cert[128], srv_key[128], cli_cert[128], cli_key[128];
static int certs_ok; /* they were made */

static int run(const char *cmd)
{
    char full[2048];

    snprintf(full, sizeof(full), "cd %s && (%s) >/dev/null 2>&1", dir, cmd);
    return system(full);
}

/* A certificate name.pem / name.key for cn, signed by the CA. */
static int make_signed(const char *name, const char *cn, const char *san)
{
    char cmd[1024];

    snprintf(cmd, sizeof(cmd),
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout %s.key -out %s.csr "
             "-subj /CN=%s && printf 'subjectAltName=%s\\n' > %s.ext && "
             "openssl x509 -req -in %s.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out %s.pem -days 2 "
             "-extfile %s.ext",
             name, name, cn, san, name, name, name, name);
    return run(cmd);
}

/* A self-signed CA name.pem / name.key. */
static int make_ca(const char *name, const char *cn)
{
    char cmd[512];

    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout %s.key "
             "-out %s.pem -days 2 -subj /CN=%s",
             name, name, cn);
    return run(cmd);
}

static void make_certs(void)
{
    int rc;

    snprintf(dir, sizeof(dir), "/tmp/pants-tls-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    rc = make_ca("ca", "pants-test-ca");
    rc |= make_ca("ca2", "nobody-trusts-me");
    rc |= make_signed("srv", "localhost", "DNS:localhost,IP:127.0.0.1");
    rc |= make_signed("cli", "pants-client", "DNS:pants-client");
    snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
    snprintf(ca2, sizeof(ca2), "%s/ca2.pem", dir);
    snprintf(srv_cert, sizeof(srv_cert), "%s/srv.pem", dir);
    snprintf(srv_key, sizeof(srv_key), "%s/srv.key", dir);
    snprintf(cli_cert, sizeof(cli_cert), "%s/cli.pem", dir);
    snprintf(cli_key, sizeof(cli_key), "%s/cli.key", dir);
    certs_ok = rc == 0;
}

static void remove_certs(void)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (dir[0])
        (void)!system(cmd);
}

static void setup(void)
{
    make_certs();
    ck_assert_msg(certs_ok, "the openssl command could not make test certificates");
}

/* ---- Engine and servers ------------------------------------------------------ */

struct ctx {
    int connected;            /* on_connect calls */
    int closed;               /* on_close calls */
    int error;                /* on_error's code */
    int errors;               /* on_error calls */
    int addr_rc;              /* pants_stream_remote_address inside on_error */
    int connect_error;        /* on_connect_error's code */
    char reason[256];         /* pants_strerror inside the error callback */
    int reused;               /* SSL_session_reused at on_connect */
    char alpn[32];            /* the protocol selected */
    size_t got;               /* bytes read */
    unsigned char buf[65536]; /* what was read (the first 64 KiB) */
    int lines;                /* frames read */
    int phase;                /* STARTTLS: 0 plain, 1 TLS asked, 2 TLS up */
    struct ssl_ctx_st *tls;   /* STARTTLS: the context to switch to */
};

static struct ctx *ctx_of(pants_stream_t *s)
{
    pants_server_t *srv = pants_stream_server(s);

    return srv ? pants_server_data(srv) : pants_stream_data(s);
}

static void on_close(pants_stream_t *s)
{
    INC(ctx_of(s)->closed);
}

static void on_error(pants_stream_t *s, int err)
{
    struct ctx *c = ctx_of(s);

    pants_addr_t a;

    snprintf(c->reason, sizeof(c->reason), "%s", pants_strerror(err));
    SET(c->addr_rc, pants_stream_remote_address(s, &a));
    SET(c->error, err);
    INC(c->errors);
}

static void on_connect(pants_stream_t *s)
{
    struct ctx *c = ctx_of(s);
    SSL *ssl = pants_stream_ssl(s);
    const unsigned char *p = NULL;
    unsigned len = 0;

    if (ssl != NULL) {
        SET(c->reused, SSL_session_reused(ssl));
        SSL_get0_alpn_selected(ssl, &p, &len);
        if (p != NULL && len < sizeof(c->alpn)) {
            memcpy(c->alpn, p, len);
            c->alpn[len] = 0;
        }
    }
    INC(c->connected);
}

static void on_connect_error(pants_stream_t *s, int err)
{
    struct ctx *c = ctx_of(s);

    snprintf(c->reason, sizeof(c->reason), "%s", pants_strerror(err));
    SET(c->connect_error, err);
    pants_stream_close(s);
}

static void echo_on_read(pants_stream_t *s, const void *data, size_t len)
{
    pants_stream_write(s, data, len);
}

static struct ssl_ctx_st *server_ctx(const char *client_ca, const char *alpn)
{
    pants_tls_options_t o = {.cert_file = srv_cert, .key_file = srv_key, .ca_file = client_ca, .alpn = alpn};
    struct ssl_ctx_st *ctx = pants_tls_server_ctx(&o);

    ck_assert_ptr_nonnull(ctx);
    return ctx;
}

/* A TLS server on 127.0.0.1 (ctx: its own reference, dropped here). */
static pants_server_t *serve_tls(pants_engine_t *e, struct ssl_ctx_st *ctx,
                                 const pants_stream_callbacks_t *cb, const pants_stream_options_t *o,
                                 struct ctx *c, char *addr, size_t len)
{
    pants_server_t *srv = pants_server_new(e, NULL, cb, c);
    pants_addr_t a;

    ck_assert_ptr_nonnull(srv);
    if (ctx != NULL) {
        ck_assert_int_eq(pants_server_set_tls(srv, ctx), 0);
        pants_tls_ctx_free(ctx);
    }
    if (o != NULL)
        ck_assert_int_eq(pants_server_set_stream_options(srv, o), 0);
    ck_assert_int_eq(pants_server_listen(srv, "127.0.0.1:0", 0), 0);
    ck_assert_int_eq(pants_server_local_address(srv, &a), 0);
    ck_assert_int_eq(pants_addr_format(&a, addr, len), 0);
    return srv;
}

/* ---- Blocking OpenSSL peers on the test thread ------------------------------- */

static int tcp_connect(const char *addr)
{
    struct timeval tv = {10, 0};
    pants_addr_t a;
    int fd;

    if (pants_addr_parse(&a, addr) < 0)
        return -1;
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (const struct sockaddr *)&a.ss, a.len) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

struct peer {
    SSL_CTX *ctx; /* verifies the server with the test CA */
    SSL *ssl;     /* on fd */
    int fd;       /* the socket */
};

static void peer_open(struct peer *p, const char *addr)
{
    p->ctx = SSL_CTX_new(TLS_client_method());
    ck_assert_ptr_nonnull(p->ctx);
    ck_assert_int_eq(SSL_CTX_load_verify_locations(p->ctx, ca, NULL), 1);
    SSL_CTX_set_verify(p->ctx, SSL_VERIFY_PEER, NULL);
    p->fd = tcp_connect(addr);
    ck_assert_int_ge(p->fd, 0);
    p->ssl = SSL_new(p->ctx);
    SSL_set_fd(p->ssl, p->fd);
    SSL_set_tlsext_host_name(p->ssl, "localhost");
    SSL_set1_host(p->ssl, "localhost");
    ck_assert_int_eq(SSL_connect(p->ssl), 1);
}

static void peer_close(struct peer *p)
{
    SSL_free(p->ssl);
    SSL_CTX_free(p->ctx);
    close(p->fd);
}

/* Read until the peer's close: the bytes, and whether it was a close_notify. */
static size_t peer_read_all(struct peer *p, unsigned char *buf, size_t cap, bool *notify)
{
    size_t total = 0, n;
    unsigned char sink[16384];

    for (;;) {
        unsigned char *dst = total < cap ? buf + total : sink;
        size_t room = total < cap ? cap - total : sizeof(sink);
        if (SSL_read_ex(p->ssl, dst, room, &n) != 1)
            break;
        total += n;
    }
    *notify = SSL_get_error(p->ssl, 0) == SSL_ERROR_ZERO_RETURN ||
              (SSL_get_shutdown(p->ssl) & SSL_RECEIVED_SHUTDOWN) != 0;
    ERR_clear_error();
    return total;
}

static unsigned char pattern_at(size_t i)
{
    return (unsigned char)((i * 7 + i / 253) & 0xff);
}

/* ---- pants clients ------------------------------------------------------------ */

struct client_spec {
    struct ctx *c;                      /* its context */
    const pants_stream_callbacks_t *cb; /* its callbacks */
    pants_tls_options_t o;              /* its TLS */
    const char *name;                   /* server name */
    const char *addr;                   /* where */
    struct ssl_ctx_st *shared;          /* a context to use instead of o (kept by the test) */
    int rc;                             /* connect's result */
};

static void client_start(void *arg)
{
    struct client_spec *cs = arg;
    pants_stream_t *s = pants_stream_new(pants_loop_current(), cs->cb, cs->c);
    struct ssl_ctx_st *ctx = cs->shared ? cs->shared : pants_tls_client_ctx(&cs->o);

    cs->rc = ctx ? pants_stream_start_tls(s, ctx, cs->name) : -errno;
    if (cs->rc == 0)
        cs->rc = pants_stream_connect(s, cs->addr);
    if (!cs->shared)
        pants_tls_ctx_free(ctx);
    if (cs->rc < 0)
        pants_stream_close(s);
}

/* The same without TLS (STARTTLS turns it on later). */
static void client_start_plain(void *arg)
{
    struct client_spec *cs = arg;
    pants_stream_t *s = pants_stream_new(pants_loop_current(), cs->cb, cs->c);

    cs->rc = pants_stream_connect(s, cs->addr);
    if (cs->rc < 0)
        pants_stream_close(s);
}

static void client(pants_engine_t *e, struct client_spec *cs)
{
    pt_on_loop(pants_engine_loop(e, 0), client_start, cs);
    ck_assert_int_eq(cs->rc, 0);
}

/* ---- Echo with every delimiter --------------------------------------------------- */

static const char *const delim_names[] = {"any", "until", "exact", "regex"};

static void set_delim(pants_stream_t *s, int kind)
{
    if (kind == 1)
        pants_stream_read_until(s, "\n", 1);
    else if (kind == 2)
        pants_stream_read_exact(s, 10);
    else if (kind == 3)
        pants_stream_read_regex(s, "\r?\n");
}

static int delim_kind; /* the loop test's kind, read by the server's callbacks */

static void frame_on_connect(pants_stream_t *s)
{
    set_delim(s, delim_kind);
}

/* Each frame comes back with a "|" so the client sees where cuts were. */
static void frame_on_read(pants_stream_t *s, const void *data, size_t len)
{
    INC(ctx_of(s)->lines);
    pants_stream_write(s, data, len);
    pants_stream_write(s, "|", 1);
}

static void collect(pants_stream_t *s, const void *data, size_t len)
{
    struct ctx *c = ctx_of(s);
    size_t room = sizeof(c->buf) - c->got;

    memcpy(c->buf + c->got, data, len < room ? len : room);
    __atomic_add_fetch(&c->got, len, __ATOMIC_SEQ_CST);
}

struct bytewise {
    pants_stream_t *s; /* the client */
    const char *text;  /* what to send */
    size_t at;         /* sent so far */
};

/* One byte per call: each leaves as its own TLS record. */
static void send_one(void *arg)
{
    struct bytewise *b = arg;

    pants_stream_write(b->s, b->text + b->at, 1);
    b->at++;
}

static void grab_client(pants_stream_t *s)
{
    struct ctx *c = ctx_of(s);

    c->tls = (struct ssl_ctx_st *)s; /* the test thread posts bytes to it */
    INC(c->connected);
}

START_TEST(echo_every_delimiter_bytewise)
{
    static const pants_stream_callbacks_t scb = {.on_connect = frame_on_connect, .on_read = frame_on_read};
    static const pants_stream_callbacks_t ccb = {.on_connect = grab_client,
                                                 .on_read = collect,
                                                 .on_connect_error = on_connect_error,
                                                 .on_close = on_close};
    static const char text[] = "0123456789abcdefghij\nKLMNOPQRST\r\nuvwxyz0123\n";
    static const char *const want[] = {
        "0123456789abcdefghij\nKLMNOPQRST\r\nuvwxyz0123\n", /* any: whatever arrived, cut anywhere */
        "0123456789abcdefghij|KLMNOPQRST\r|uvwxyz0123|",
        "0123456789|abcdefghij|\nKLMNOPQRS|T\r\nuvwxyz0|",
        "0123456789abcdefghij|KLMNOPQRST|uvwxyz0123|",
    };
    pants_engine_t *e = pt_engine_up(2);
    struct ctx sc = {0}, cc = {0};
    char addr[64];
    struct client_spec cs = {.c = &cc, .cb = &ccb, .o = {.ca_file = ca}, .name = "localhost", .addr = addr};
    struct bytewise b = {.text = text};

    delim_kind = _i;
    serve_tls(e, server_ctx(NULL, NULL), &scb, NULL, &sc, addr, sizeof(addr));
    client(e, &cs);
    ck_assert(pt_wait(&cc.connected, WAIT_MS));
    b.s = (pants_stream_t *)cc.tls;
    for (size_t i = 0; i < strlen(text); i++) {
        pt_on_loop(pants_engine_loop(e, 0), send_one, &b);
        pt_sleep_ms(2);
    }
    if (_i == 0) { /* any: every byte back, with a "|" after each frame */
        size_t plain = 0;
        for (int t = 0; t < 500 && plain < strlen(text); t++) {
            plain = 0;
            for (size_t k = 0; k < GET(cc.got); k++)
                plain += cc.buf[k] != '|';
            pt_sleep_ms(10);
        }
        ck_assert_uint_eq(plain, strlen(text));
    } else {
        for (int t = 0; t < 500 && GET(cc.got) < strlen(want[_i]); t++)
            pt_sleep_ms(10);
        ck_assert_msg(GET(cc.got) == strlen(want[_i]) && memcmp(cc.buf, want[_i], cc.got) == 0,
                      "%s: got %zu bytes \"%.*s\"", delim_names[_i], cc.got, (int)cc.got, cc.buf);
    }
    pt_engine_down(e);
}
END_TEST

/* ---- Bulk, end, files --------------------------------------------------------------- */

#define BULK (8u << 20)

static void bulk_on_connect(pants_stream_t *s)
{
    unsigned char *p = malloc(BULK);

    for (size_t i = 0; i < BULK; i++)
        p[i] = pattern_at(i);
    pants_stream_write(s, p, BULK);
    free(p);
    pants_stream_end(s);
}

START_TEST(bulk_then_end_sends_close_notify)
{
    static const pants_stream_callbacks_t cb = {.on_connect = bulk_on_connect, .on_close = on_close};
    pants_engine_t *e = pt_engine_up(1);
    struct ctx c = {0};
    struct peer p;
    unsigned char *got = malloc(BULK + 16);
    char addr[64];
    bool notify = false;
    size_t n;

    serve_tls(e, server_ctx(NULL, NULL), &cb, NULL, &c, addr, sizeof(addr));
    peer_open(&p, addr);
    n = peer_read_all(&p, got, BULK + 16, &notify);
    ck_assert_uint_eq(n, BULK);
    for (size_t i = 0; i < BULK; i++)
        if (got[i] != pattern_at(i))
            ck_abort_msg("byte %zu differs", i);
    ck_assert_msg(notify, "the stream ended without a close_notify");
    ck_assert(pt_wait(&c.closed, WAIT_MS));
    peer_close(&p);
    free(got);
    pt_engine_down(e);
}
END_TEST

static char file_path[128];

static void file_on_connect(pants_stream_t *s)
{
    int fd = open(file_path, O_RDONLY | O_CLOEXEC);

    pants_stream_write(s, "HEAD", 4);
    pants_stream_write_file(s, fd, 0, 0);
    close(fd);
    pants_stream_write(s, "TAIL", 4);
    pants_stream_end(s);
}

START_TEST(write_file_over_tls)
{
    static const pants_stream_callbacks_t cb = {.on_connect = file_on_connect, .on_close = on_close};
    const size_t len = 300000;
    pants_engine_t *e = pt_engine_up(1);
    struct ctx c = {0};
    unsigned char *buf = malloc(len), *got = malloc(len + 64);
    struct peer p;
    char addr[64];
    bool notify;
    size_t n;
    int fd;

    for (size_t i = 0; i < len; i++)
        buf[i] = pattern_at(i);
    snprintf(file_path, sizeof(file_path), "%s/file.bin", dir);
    fd = open(file_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
    close(fd);
    serve_tls(e, server_ctx(NULL, NULL), &cb, NULL, &c, addr, sizeof(addr));
    peer_open(&p, addr);
    n = peer_read_all(&p, got, len + 64, &notify);
    ck_assert_uint_eq(n, len + 8);
    ck_assert_mem_eq(got, "HEAD", 4);
    ck_assert_mem_eq(got + 4, buf, len);
    ck_assert_mem_eq(got + 4 + len, "TAIL", 4);
    ck_assert(notify);
    peer_close(&p);
    free(buf);
    free(got);
    pt_engine_down(e);
}
END_TEST

/* ---- Verification --------------------------------------------------------------------- */

static const pants_stream_callbacks_t plain_client_cb = {
    .on_connect = on_connect, .on_connect_error = on_connect_error, .on_close = on_close};

/* _i: 0 a wrong name, 1 an unknown CA. */
START_TEST(verification_failures)
{
    pants_engine_t *e = pt_engine_up(1);
    struct ctx sc = {0}, cc = {0};
    char addr[64];
    struct client_spec cs = {.c = &cc,
                             .cb = &plain_client_cb,
                             .o = {.ca_file = _i ? ca2 : ca},
                             .name = _i ? "localhost" : "wrong.example",
                             .addr = addr};

    serve_tls(e, server_ctx(NULL, NULL), NULL, NULL, &sc, addr, sizeof(addr));
    client(e, &cs);
    ck_assert(pt_wait(&cc.closed, WAIT_MS));
    ck_assert_int_eq(GET(cc.connect_error), PANTS_ETLS);
    ck_assert_int_eq(GET(cc.connected), 0);
    ck_assert_msg(strstr(cc.reason, "verify") != NULL, "reason: %s", cc.reason);
    pt_engine_down(e);
}
END_TEST

START_TEST(insecure_accepts_any_server)
{
    pants_engine_t *e = pt_engine_up(1);
    struct ctx sc = {0}, cc = {0};
    char addr[64];
    struct client_spec cs = {
        .c = &cc, .cb = &plain_client_cb, .o = {.insecure = true}, .name = NULL, .addr = addr};

    serve_tls(e, server_ctx(NULL, NULL), NULL, NULL, &sc, addr, sizeof(addr));
    client(e, &cs);
    ck_assert(pt_wait(&cc.connected, WAIT_MS));
    ck_assert_int_eq(GET(cc.connect_error), 0);
    pt_engine_down(e);
}
END_TEST

/* _i: 0 the client shows no certificate, 1 it shows one signed by the CA. */
START_TEST(client_certificates)
{
    static const pants_stream_callbacks_t scb = {
        .on_connect = on_connect, .on_error = on_error, .on_close = on_close};
    static const pants_stream_callbacks_t ccb = {.on_connect = on_connect,
                                                 .on_connect_error = on_connect_error,
                                                 .on_close = on_close,
                                                 .on_read = collect};
    pants_engine_t *e = pt_engine_up(1);
    struct ctx sc = {0}, cc = {0};
    char addr[64];
    struct client_spec cs = {.c = &cc, .cb = &ccb, .name = "localhost", .addr = addr};

    cs.o.ca_file = ca;
    if (_i) {
        cs.o.cert_file = cli_cert;
        cs.o.key_file = cli_key;
    }
    serve_tls(e, server_ctx(ca, NULL), &scb, NULL, &sc, addr, sizeof(addr));
    client(e, &cs);
    if (_i) {
        ck_assert(pt_wait(&sc.connected, WAIT_MS));
        ck_assert_int_eq(GET(sc.errors), 0);
    } else {
        ck_assert(pt_wait(&sc.closed, WAIT_MS));
        ck_assert_int_eq(GET(sc.error), PANTS_ETLS);
        ck_assert_int_eq(GET(sc.connected), 0);
        ck_assert(pt_wait(&cc.closed, WAIT_MS)); /* the client hears the alert, one way or another */
    }
    pt_engine_down(e);
}
END_TEST

/* ---- Bad peers -------------------------------------------------------------------------- */

START_TEST(plain_text_client_at_tls_server)
{
    static const pants_stream_callbacks_t cb = {
        .on_connect = on_connect, .on_error = on_error, .on_close = on_close};
    pants_engine_t *e = pt_engine_up(1);
    struct ctx c = {0};
    char addr[64], buf[256];
    int fd;

    serve_tls(e, server_ctx(NULL, NULL), &cb, NULL, &c, addr, sizeof(addr));
    fd = tcp_connect(addr);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(send(fd, "GET / HTTP/1.0\r\n\r\n", 18, 0), 18);
    ck_assert(pt_wait(&c.closed, WAIT_MS));
    ck_assert_int_eq(GET(c.error), PANTS_ETLS);
    ck_assert_int_eq(GET(c.addr_rc), 0); /* the peer is still known there */
    ck_assert_int_eq(GET(c.connected), 0);
    while (recv(fd, buf, sizeof(buf), 0) > 0)
        ;
    close(fd);
    pt_sleep_ms(50);
    ck_assert_int_eq(GET(c.closed), 1);
    pt_engine_down(e);
}
END_TEST

START_TEST(stalled_handshake_is_bounded)
{
    static const pants_stream_callbacks_t cb = {
        .on_connect = on_connect, .on_error = on_error, .on_close = on_close};
    pants_stream_options_t o = {.frame_timeout_ms = 300};
    pants_engine_t *e = pt_engine_up(1);
    struct ctx c = {0};
    char addr[64];
    int fd;

    serve_tls(e, server_ctx(NULL, NULL), &cb, &o, &c, addr, sizeof(addr));
    fd = tcp_connect(addr); /* and says nothing */
    ck_assert_int_ge(fd, 0);
    ck_assert(pt_wait(&c.closed, WAIT_MS));
    ck_assert_int_eq(GET(c.error), -ETIMEDOUT);
    ck_assert_int_eq(GET(c.connected), 0);
    close(fd);
    pt_engine_down(e);
}
END_TEST

/* ---- ALPN, resumption ------------------------------------------------------------------- */

START_TEST(alpn_is_negotiated)
{
    static const pants_stream_callbacks_t scb = {.on_connect = on_connect};
    pants_engine_t *e = pt_engine_up(1);
    struct ctx sc = {0}, cc = {0};
    char addr[64];
    struct client_spec cs = {.c = &cc,
                             .cb = &plain_client_cb,
                             .o = {.ca_file = ca, .alpn = "spdy/1,http/1.1"},
                             .name = "localhost",
                             .addr = addr};

    serve_tls(e, server_ctx(NULL, "h2,http/1.1"), &scb, NULL, &sc, addr, sizeof(addr));
    client(e, &cs);
    ck_assert(pt_wait(&cc.connected, WAIT_MS));
    ck_assert(pt_wait(&sc.connected, WAIT_MS));
    ck_assert_str_eq(cc.alpn, "http/1.1");
    ck_assert_str_eq(sc.alpn, "http/1.1");
    pt_engine_down(e);
}
END_TEST

static void read_then_close(pants_stream_t *s, const void *data, size_t len)
{
    (void)data;
    (void)len;
    pants_stream_close(s);
}

START_TEST(session_resumption)
{
    static const pants_stream_callbacks_t scb = {.on_connect = bulk_on_connect};
    static const pants_stream_callbacks_t ccb = {.on_connect = on_connect,
                                                 .on_connect_error = on_connect_error,
                                                 .on_read = read_then_close,
                                                 .on_close = on_close};
    pants_tls_options_t o = {.ca_file = ca};
    pants_engine_t *e = pt_engine_up(1);
    struct ctx sc = {0}, c1 = {0}, c2 = {0};
    char addr[64];
    struct ssl_ctx_st *ctx = pants_tls_client_ctx(&o);
    struct client_spec cs = {.c = &c1, .cb = &ccb, .name = "localhost", .addr = addr, .shared = ctx};

    serve_tls(e, server_ctx(NULL, NULL), &scb, NULL, &sc, addr, sizeof(addr));
    client(e, &cs);
    ck_assert(pt_wait(&c1.closed, WAIT_MS)); /* it read data: the TLS 1.3 ticket came before */
    ck_assert_int_eq(GET(c1.reused), 0);
    cs.c = &c2;
    client(e, &cs);
    ck_assert(pt_wait(&c2.connected, WAIT_MS));
    ck_assert_int_eq(GET(c2.reused), 1);
    ck_assert(pt_wait(&c2.closed, WAIT_MS));
    pants_tls_ctx_free(ctx);
    pt_engine_down(e);
}
END_TEST

/* ---- STARTTLS ------------------------------------------------------------------------------ */

/* Server: "STARTTLS\n" -> "OK\n", then TLS; then an echo. */
static void starttls_server_read(pants_stream_t *s, const void *data, size_t len)
{
    struct ctx *c = ctx_of(s);

    if (c->phase == 0 && len == 8 && memcmp(data, "STARTTLS", 8) == 0) {
        pants_stream_write(s, "OK\n", 3);
        c->phase = 1;
        ck_assert_int_eq(pants_stream_start_tls(s, c->tls, NULL), 0);
        return;
    }
    pants_stream_write(s, data, len);
    pants_stream_write(s, "\n", 1);
}

static void starttls_server_connect(pants_stream_t *s)
{
    struct ctx *c = ctx_of(s);

    if (INC(c->connected) == 1)
        pants_stream_read_until(s, "\n", 1);
}

/* Client: STARTTLS, TLS after "OK", then "hello" over TLS. */
static void starttls_client_connect(pants_stream_t *s)
{
    struct ctx *c = ctx_of(s);
    int n = INC(c->connected);

    if (n == 1) {
        pants_stream_read_until(s, "\n", 1);
        pants_stream_write(s, "STARTTLS\n", 9);
    } else {
        c->reused = pants_stream_ssl(s) != NULL;
        pants_stream_write(s, "hello\n", 6);
    }
}

static void starttls_client_read(pants_stream_t *s, const void *data, size_t len)
{
    struct ctx *c = ctx_of(s);

    if (c->phase == 0 && len == 2 && memcmp(data, "OK", 2) == 0) {
        c->phase = 1;
        ck_assert_int_eq(pants_stream_start_tls(s, c->tls, "localhost"), 0);
        return;
    }
    collect(s, data, len);
    pants_stream_close(s);
}

START_TEST(starttls_both_sides)
{
    static const pants_stream_callbacks_t scb = {.on_connect = starttls_server_connect,
                                                 .on_read = starttls_server_read};
    static const pants_stream_callbacks_t ccb = {.on_connect = starttls_client_connect,
                                                 .on_read = starttls_client_read,
                                                 .on_connect_error = on_connect_error,
                                                 .on_close = on_close};
    pants_tls_options_t co = {.ca_file = ca};
    pants_engine_t *e = pt_engine_up(2);
    struct ctx sc = {0}, cc = {0};
    char addr[64];
    pants_server_t *srv = pants_server_new(e, NULL, &scb, &sc);
    pants_addr_t a;

    sc.tls = server_ctx(NULL, NULL);
    cc.tls = pants_tls_client_ctx(&co);
    ck_assert_int_eq(pants_server_listen(srv, "127.0.0.1:0", 0), 0);
    ck_assert_int_eq(pants_server_local_address(srv, &a), 0);
    ck_assert_int_eq(pants_addr_format(&a, addr, sizeof(addr)), 0);
    struct client_spec cs = {.c = &cc, .cb = &ccb, .name = NULL, .addr = addr};
    pt_on_loop(pants_engine_loop(e, 0), client_start_plain, &cs);
    ck_assert(pt_wait(&cc.closed, WAIT_MS));
    ck_assert_int_eq(GET(cc.connected), 2);
    ck_assert_int_eq(GET(sc.connected), 2);
    ck_assert_int_eq(cc.reused, 1); /* the second on_connect had TLS */
    ck_assert_uint_eq(cc.got, 5);
    ck_assert_mem_eq(cc.buf, "hello", 5);
    pants_tls_ctx_free(sc.tls);
    pants_tls_ctx_free(cc.tls);
    pt_engine_down(e);
}
END_TEST

/* ---- The PROXY protocol before TLS --------------------------------------------------------- */

static void proxied_server_connect(pants_stream_t *s)
{
    struct ctx *c = ctx_of(s);
    pants_addr_t a;

    if (pants_stream_remote_address(s, &a) == 0)
        pants_addr_format(&a, c->alpn, sizeof(c->alpn)); /* (the field is only a string here) */
    c->reused = pants_stream_ssl(s) != NULL;
    INC(c->connected); /* then an echo of whatever comes */
}

/* Client: the header in plain text, then TLS, then a line. */
static void proxied_client_connect(pants_stream_t *s)
{
    static const char hdr[] = "PROXY TCP4 192.0.2.9 192.0.2.10 4000 443\r\n";
    struct ctx *c = ctx_of(s);

    if (INC(c->connected) == 1) {
        pants_stream_write(s, hdr, sizeof(hdr) - 1);
        ck_assert_int_eq(pants_stream_start_tls(s, c->tls, "localhost"), 0);
        return;
    }
    pants_stream_read_until(s, "\n", 1);
    pants_stream_write(s, "hello\n", 6);
}

static void proxied_client_read(pants_stream_t *s, const void *data, size_t len)
{
    collect(s, data, len);
    pants_stream_close(s);
}

/* A TLS server behind a balancer: the PROXY header comes first, in plain
 * text, then the handshake; the stream has the header's addresses. */
START_TEST(proxy_header_then_tls)
{
    static const pants_stream_callbacks_t scb = {.on_connect = proxied_server_connect, .on_read = echo_on_read};
    static const pants_stream_callbacks_t ccb = {.on_connect = proxied_client_connect,
                                                 .on_read = proxied_client_read,
                                                 .on_connect_error = on_connect_error,
                                                 .on_close = on_close};
    pants_tls_options_t co = {.ca_file = ca};
    pants_engine_t *e = pt_engine_up(2);
    struct ctx sc = {0}, cc = {0};
    char addr[64];
    pants_server_t *srv = pants_server_new(e, NULL, &scb, &sc);
    struct ssl_ctx_st *sctx = server_ctx(NULL, NULL);
    pants_addr_t a;

    ck_assert_int_eq(pants_server_set_tls(srv, sctx), 0);
    pants_tls_ctx_free(sctx);
    ck_assert_int_eq(pants_server_set_proxy_protocol(srv, true), 0);
    ck_assert_int_eq(pants_server_listen(srv, "127.0.0.1:0", 0), 0);
    ck_assert_int_eq(pants_server_local_address(srv, &a), 0);
    ck_assert_int_eq(pants_addr_format(&a, addr, sizeof(addr)), 0);
    cc.tls = pants_tls_client_ctx(&co);
    struct client_spec cs = {.c = &cc, .cb = &ccb, .name = NULL, .addr = addr};
    pt_on_loop(pants_engine_loop(e, 0), client_start_plain, &cs);
    ck_assert(pt_wait(&cc.closed, WAIT_MS));
    ck_assert_int_eq(GET(cc.connected), 2);
    ck_assert_int_eq(GET(sc.connected), 1); /* once, after the handshake */
    ck_assert_int_eq(sc.reused, 1);         /* it had TLS by then */
    ck_assert_str_eq(sc.alpn, "192.0.2.9:4000");
    ck_assert_uint_eq(cc.got, 5);
    ck_assert_mem_eq(cc.buf, "hello", 5);
    pants_tls_ctx_free(cc.tls);
    pt_engine_down(e);
}
END_TEST

/* ---- A bulk sender does not starve its loop's other streams ----------------------------- */

/* The talker's "ping" comes back; the flood (all 'x') is dropped after
 * 200 us of work per read, so the server falls behind it and its socket
 * never runs dry: only the read budget makes the loop turn to others. */
static void sink_or_echo(pants_stream_t *s, const void *data, size_t len)
{
    struct timespec t0, t;

    if (len > 0 && ((const char *)data)[0] == 'p') {
        pants_stream_write(s, data, len);
        return;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do
        clock_gettime(CLOCK_MONOTONIC, &t);
    while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < 200000);
}

struct flood {
    struct peer p; /* its connection, used by its thread only once started */
    int stop;      /* set: stop sending (atomic) */
    size_t sent;   /* bytes sent so far (atomic) */
};

static void *flood_main(void *arg)
{
    struct flood *f = arg;
    unsigned char buf[16384];
    size_t n;

    memset(buf, 'x', sizeof(buf));
    while (!GET(f->stop) && SSL_write_ex(f->p.ssl, buf, sizeof(buf), &n) == 1)
        __atomic_add_fetch(&f->sent, n, __ATOMIC_SEQ_CST);
    ERR_clear_error();
    return NULL;
}

/* One worker loop, two TLS connections: one sends records faster than the
 * server gets through them, the other pings.  The
 * per-wake-up read budget lets the pings through while the flood goes on:
 * every one is answered, and the flood kept flowing meanwhile. */
START_TEST(bulk_sender_does_not_starve_others)
{
    static const pants_stream_callbacks_t cb = {.on_read = sink_or_echo};
    pants_engine_t *e = pt_engine_up(1);
    struct ctx c = {0};
    struct flood f = {0};
    struct peer talker;
    char addr[64], buf[4];
    size_t before, n;
    pthread_t th;

    serve_tls(e, server_ctx(NULL, NULL), &cb, NULL, &c, addr, sizeof(addr));
    peer_open(&f.p, addr);
    ck_assert_int_eq(pthread_create(&th, NULL, flood_main, &f), 0);
    pt_sleep_ms(200);
    peer_open(&talker, addr);
    before = GET(f.sent);
    ck_assert_uint_gt(before, 0);
    for (int i = 0; i < 100; i++) {
        ck_assert_int_eq(SSL_write_ex(talker.ssl, "ping", 4, &n), 1);
        ck_assert_int_eq(SSL_read_ex(talker.ssl, buf, 4, &n), 1); /* 10 s receive timeout */
        ck_assert(n == 4 && memcmp(buf, "ping", 4) == 0);
    }
    ck_assert_uint_gt(GET(f.sent), before); /* the flood went on meanwhile */
    SET(f.stop, 1);
    pthread_join(th, NULL);
    peer_close(&talker);
    peer_close(&f.p);
    pt_engine_down(e);
}
END_TEST

/* ---- Engine stop with TLS data queued ----------------------------------------------------- */

START_TEST(engine_stop_flushes_tls)
{
    static const pants_stream_callbacks_t cb = {.on_connect = bulk_on_connect, .on_close = on_close};
    pants_engine_t *e = pt_engine_up(1);
    struct ctx c = {0};
    unsigned char *got = malloc(BULK + 16);
    struct peer p;
    char addr[64];
    bool notify = false;

    serve_tls(e, server_ctx(NULL, NULL), &cb, NULL, &c, addr, sizeof(addr));
    peer_open(&p, addr);
    pt_sleep_ms(100); /* megabytes wait in the server's queue */
    pants_engine_stop(e);
    ck_assert_uint_eq(peer_read_all(&p, got, BULK + 16, &notify), BULK);
    ck_assert(notify);
    ck_assert_int_eq(pants_engine_join(e), 0);
    pants_engine_free(e);
    ck_assert_int_eq(pants_live_objects(), 0);
    peer_close(&p);
    free(got);
}
END_TEST

/* ---- OpenSSL's corner cases ------------------------------------------------------------- */

/* The peer asks for a KeyUpdate, which pants must answer from inside a
 * read, then sends data: the echo still comes back, in both directions. */
START_TEST(key_update_is_answered)
{
    static const pants_stream_callbacks_t cb = {.on_read = echo_on_read, .on_close = on_close};
    pants_engine_t *e = pt_engine_up(1);
    struct ctx c = {0};
    struct peer p;
    char addr[64], buf[64];
    size_t n;

    serve_tls(e, server_ctx(NULL, NULL), &cb, NULL, &c, addr, sizeof(addr));
    peer_open(&p, addr);
    ck_assert_str_eq(SSL_get_version(p.ssl), "TLSv1.3");
    for (int round = 0; round < 3; round++) {
        ck_assert_int_eq(SSL_key_update(p.ssl, SSL_KEY_UPDATE_REQUESTED), 1);
        ck_assert_int_eq(SSL_write_ex(p.ssl, "ping", 4, &n), 1);
        ck_assert_int_eq(SSL_read_ex(p.ssl, buf, sizeof(buf), &n), 1);
        ck_assert_uint_eq(n, 4);
        ck_assert_mem_eq(buf, "ping", 4);
    }
    peer_close(&p);
    ck_assert(pt_wait(&c.closed, WAIT_MS));
    pt_engine_down(e);
}
END_TEST

/* A peer that goes away without a close_notify: closed quietly, as a
 * reset is -- on_close, no on_error. */
START_TEST(eof_without_close_notify_is_quiet)
{
    static const pants_stream_callbacks_t cb = {
        .on_connect = on_connect, .on_error = on_error, .on_close = on_close};
    pants_engine_t *e = pt_engine_up(1);
    struct ctx c = {0};
    struct peer p;
    char addr[64];

    serve_tls(e, server_ctx(NULL, NULL), &cb, NULL, &c, addr, sizeof(addr));
    peer_open(&p, addr);
    ck_assert(pt_wait(&c.connected, WAIT_MS));
    close(p.fd); /* no SSL_shutdown */
    ck_assert(pt_wait(&c.closed, WAIT_MS));
    ck_assert_int_eq(GET(c.errors), 0);
    SSL_free(p.ssl);
    SSL_CTX_free(p.ctx);
    pt_engine_down(e);
}
END_TEST

static void write_16k(pants_stream_t *s)
{
    static char block[16384];

    memset(block, 'r', sizeof(block));
    pants_stream_write(s, block, sizeof(block));
}

/* A 16 KiB write leaves as one record: the peer's first read gets it all. */
START_TEST(write_of_16k_is_one_record)
{
    static const pants_stream_callbacks_t cb = {.on_connect = write_16k};
    pants_engine_t *e = pt_engine_up(1);
    struct ctx c = {0};
    struct peer p;
    char addr[64];
    static unsigned char buf[65536];
    size_t n;

    serve_tls(e, server_ctx(NULL, NULL), &cb, NULL, &c, addr, sizeof(addr));
    peer_open(&p, addr);
    ck_assert_int_eq(SSL_read_ex(p.ssl, buf, sizeof(buf), &n), 1);
    ck_assert_uint_eq(n, 16384);
    peer_close(&p);
    pt_engine_down(e);
}
END_TEST

/* TLS 1.2 resumes by session id: the server must have said goodbye with
 * a close_notify before freeing the connection, or OpenSSL drops the
 * session from its cache. */
START_TEST(session_resumption_tls12)
{
    static const pants_stream_callbacks_t scb = {.on_connect = bulk_on_connect};
    static const pants_stream_callbacks_t ccb = {.on_connect = on_connect,
                                                 .on_connect_error = on_connect_error,
                                                 .on_read = read_then_close,
                                                 .on_close = on_close};
    pants_tls_options_t o = {.ca_file = ca};
    pants_engine_t *e = pt_engine_up(1);
    struct ctx sc = {0}, c1 = {0}, c2 = {0};
    char addr[64];
    struct ssl_ctx_st *sctx = server_ctx(NULL, NULL), *ctx = pants_tls_client_ctx(&o);
    struct client_spec cs = {.c = &c1, .cb = &ccb, .name = "localhost", .addr = addr, .shared = ctx};

    ck_assert_int_eq(SSL_CTX_set_max_proto_version(sctx, TLS1_2_VERSION), 1);
    serve_tls(e, sctx, &scb, NULL, &sc, addr, sizeof(addr));
    client(e, &cs);
    ck_assert(pt_wait(&c1.closed, WAIT_MS));
    ck_assert_int_eq(GET(c1.reused), 0);
    cs.c = &c2;
    client(e, &cs);
    ck_assert(pt_wait(&c2.connected, WAIT_MS));
    ck_assert_int_eq(GET(c2.reused), 1);
    ck_assert(pt_wait(&c2.closed, WAIT_MS));
    pants_tls_ctx_free(ctx);
    pt_engine_down(e);
}
END_TEST

/* ---- openssl s_server and s_client as peers ------------------------------------------------ */

START_TEST(openssl_s_client_against_pants)
{
    static const pants_stream_callbacks_t cb = {.on_connect = frame_on_connect, .on_read = echo_on_read};
    pants_engine_t *e = pt_engine_up(1);
    struct ctx c = {0};
    char addr[64], cmd[1024], out[256] = {0};
    FILE *f;

    delim_kind = 1;
    serve_tls(e, server_ctx(NULL, NULL), &cb, NULL, &c, addr, sizeof(addr));
    snprintf(cmd, sizeof(cmd),
             "(echo hello-over-tls; sleep 1) | timeout 10 openssl s_client -quiet -connect %s "
             "-servername localhost -CAfile %s -verify_return_error 2>/dev/null",
             addr, ca);
    f = popen(cmd, "r");
    ck_assert_ptr_nonnull(f);
    (void)!fread(out, 1, sizeof(out) - 1, f);
    pclose(f);
    ck_assert_msg(strstr(out, "hello-over-tls") != NULL, "s_client got \"%s\"", out);
    pt_engine_down(e);
}
END_TEST

/* A port nobody listens on now (the kernel's pick for a bind to port 0). */
static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void send_line(void *arg)
{
    pants_stream_write(arg, "pants-line\n", 11);
}

/* openssl s_server -rev sends each line back reversed. */
START_TEST(pants_client_against_openssl_s_server)
{
    static const pants_stream_callbacks_t ccb = {.on_connect = grab_client,
                                                 .on_read = collect,
                                                 .on_connect_error = on_connect_error,
                                                 .on_close = on_close};
    pants_engine_t *e = pt_engine_up(1);
    struct ctx cc = {0};
    char cmd[1024], addr[64];
    int port = free_port();
    struct client_spec cs = {.c = &cc, .cb = &ccb, .o = {.ca_file = ca}, .name = "localhost", .addr = addr};
    FILE *srv;

    snprintf(cmd, sizeof(cmd),
             "sleep 8 | timeout 15 openssl s_server -quiet -rev -accept 127.0.0.1:%d "
             "-cert %s -key %s -naccept 2 >/dev/null 2>&1", /* the probe below is one */
             port, srv_cert, srv_key);
    srv = popen(cmd, "w");
    ck_assert_ptr_nonnull(srv);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    for (int t = 0; t < 50; t++) { /* s_server takes a moment to listen */
        int fd = tcp_connect(addr);
        if (fd >= 0) {
            close(fd);
            break;
        }
        pt_sleep_ms(100);
    }
    client(e, &cs);
    ck_assert(pt_wait(&cc.connected, WAIT_MS));
    pt_on_loop(pants_engine_loop(e, 0), send_line, cc.tls);
    for (int t = 0; t < 500 && GET(cc.got) < 10; t++)
        pt_sleep_ms(10);
    ck_assert_int_eq(GET(cc.connect_error), 0);
    ck_assert_msg(GET(cc.got) >= 10 && memcmp(cc.buf, "enil-stnap", 10) == 0, "got %zu bytes: %.*s", cc.got,
                  (int)cc.got, cc.buf);
    pclose(srv);
    pt_engine_down(e);
}
END_TEST

#else /* !HAVE_OPENSSL */

START_TEST(tls_calls_say_enotsup)
{
    pants_tls_options_t o = {.cert_file = "x.pem"};
    pants_engine_options_t eo = {.threads = 1};
    pants_engine_t *e = pants_engine_new(&eo);
    pants_server_t *srv = pants_server_new(e, NULL, NULL, NULL);
    pants_stream_t *st = pants_stream_new(pants_engine_loop(e, 0), NULL, NULL);

    errno = 0;
    ck_assert_ptr_null(pants_tls_server_ctx(&o));
    ck_assert_int_eq(errno, ENOTSUP);
    errno = 0;
    ck_assert_ptr_null(pants_tls_client_ctx(NULL));
    ck_assert_int_eq(errno, ENOTSUP);
    ck_assert_int_eq(pants_server_set_tls(srv, (struct ssl_ctx_st *)&o), -ENOTSUP);
    ck_assert_int_eq(pants_stream_start_tls(st, (struct ssl_ctx_st *)&o, NULL), -ENOTSUP);
    ck_assert_ptr_null(pants_stream_ssl(st));
    pants_tls_ctx_free(NULL);
    pants_stream_close(st);
    ck_assert_int_eq(pants_engine_start(e), 0);
    pants_engine_stop(e);
    ck_assert_int_eq(pants_engine_join(e), 0);
    pants_engine_free(e);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

Suite *tls_suite(void)
{
    Suite *s = suite_create("tls");
    TCase *tc = tcase_create("without");

    tcase_add_test(tc, tls_calls_say_enotsup);
    suite_add_tcase(s, tc);
    return s;
}

#endif /* HAVE_OPENSSL */

#ifdef HAVE_OPENSSL
Suite *tls_suite(void)
{
    Suite *s = suite_create("tls");
    TCase *tc = tcase_create("tls");

    tcase_add_unchecked_fixture(tc, setup, remove_certs);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, echo_every_delimiter_bytewise, 0, 4);
    tcase_add_test(tc, bulk_then_end_sends_close_notify);
    tcase_add_test(tc, write_file_over_tls);
    tcase_add_loop_test(tc, verification_failures, 0, 2);
    tcase_add_test(tc, insecure_accepts_any_server);
    tcase_add_loop_test(tc, client_certificates, 0, 2);
    tcase_add_test(tc, plain_text_client_at_tls_server);
    tcase_add_test(tc, stalled_handshake_is_bounded);
    tcase_add_test(tc, alpn_is_negotiated);
    tcase_add_test(tc, session_resumption);
    tcase_add_test(tc, starttls_both_sides);
    tcase_add_test(tc, proxy_header_then_tls);
    tcase_add_test(tc, bulk_sender_does_not_starve_others);
    tcase_add_test(tc, engine_stop_flushes_tls);
    tcase_add_test(tc, key_update_is_answered);
    tcase_add_test(tc, eof_without_close_notify_is_quiet);
    tcase_add_test(tc, write_of_16k_is_one_record);
    tcase_add_test(tc, session_resumption_tls12);
    tcase_add_test(tc, openssl_s_client_against_pants);
    tcase_add_test(tc, pants_client_against_openssl_s_server);
    suite_add_tcase(s, tc);
    return s;
}
#endif /* HAVE_OPENSSL */
