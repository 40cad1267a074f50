/* check_stream.c -- streams over real loopback sockets.
 *
 * Every test runs an engine in the background and talks to it over
 * 127.0.0.1, [::1] or a Unix path: pants clients against a pants server,
 * and plain blocking sockets (on the test thread or client threads) where
 * the other side must not be pants.  Callbacks only record what happened,
 * with atomics; the test thread waits for it with pt_wait and asserts.  It
 * covers echo in every family, the write queue (end versus close, pending,
 * on_write, writes before connect, write_file), closing inside on_read,
 * half-close, connect failures and name resolution (only the hosts file,
 * ".invalid" names and a silent local name server: never real DNS), posts
 * and references across threads, a stop with megabytes still queued, and
 * the -EPERM guard for calls from a thread that does not own the loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "testutil.h"

Suite *stream_suite(void);

#define WAIT_MS 10000 /* generous: the machine is small and busy */

#define GET(x)    __atomic_load_n(&(x), __ATOMIC_SEQ_CST)
#define SET(x, v) __atomic_store_n(&(x), (v), __ATOMIC_SEQ_CST)
#define INC(x)    __atomic_add_fetch(&(x), 1, __ATOMIC_SEQ_CST)

/* ---- Engine, server and plain-socket helpers --------------------------- */

static pants_engine_t *engine_up(const pants_engine_options_t *opts)
{
    pants_engine_t *e = pants_engine_new(opts);

    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(pants_engine_start(e), 0);
    return e;
}

static pants_engine_t *engine_up2(void)
{
    pants_engine_options_t o = {.threads = 2};

    return engine_up(&o);
}

/* Stop, join, free; nothing of pants may be left. */
enum family { F_INET, F_INET6, F_UNIX, F_COUNT };

static const char *const family_name[F_COUNT] = {"tcp4", "tcp6", "unix"};

/* A server of e on a fresh address of family f, with server callbacks scb
 * (NULL: none); its bound address as a string in addr.  data:
 * pants_server_data, reachable from its connections. */
static pants_server_t *serve_cb(pants_engine_t *e, enum family f, const pants_server_callbacks_t *scb,
                                const pants_stream_callbacks_t *conn_cb, void *data, char *addr,
                                size_t addrlen)
{
    static int serial;
    char where[200], name[64];
    pants_server_t *srv = pants_server_new(e, scb, conn_cb, data);
    pants_addr_t a;

    ck_assert_ptr_nonnull(srv);
    if (f == F_UNIX) {
        snprintf(name, sizeof(name), "stream-%d.sock", serial++);
        pt_unix_addr(where, sizeof(where), name);
    } else {
        snprintf(where, sizeof(where), "%s", f == F_INET ? "127.0.0.1:0" : "[::1]:0");
    }
    ck_assert_int_eq(pants_server_listen(srv, where, 0), 0);
    ck_assert_int_eq(pants_server_local_address(srv, &a), 0);
    ck_assert_int_eq(pants_addr_format(&a, addr, addrlen), 0);
    return srv;
}

static pants_server_t *serve(pants_engine_t *e, enum family f, const pants_stream_callbacks_t *conn_cb,
                             void *data, char *addr, size_t addrlen)
{
    return serve_cb(e, f, NULL, conn_cb, data, addr, addrlen);
}

/* The test context of a server's connection. */
static void *conn_ctx(pants_stream_t *s)
{
    return pants_server_data(pants_stream_server(s));
}

/* A blocking socket connected to addr with 10 s send/receive timeouts, or
 * -1.  Safe on any thread (no Check assertion). */
static int plain_connect(const char *addr)
{
    struct timeval tv = {10, 0};
    pants_addr_t a;
    int fd;

    if (pants_addr_parse(&a, addr) < 0)
        return -1;
    fd = socket(a.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (const struct sockaddr *)&a.ss, a.len) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool plain_send(int fd, const void *data, size_t len)
{
    const char *p = data;

    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* Read exactly len bytes; false on EOF, error or timeout. */
static bool plain_recv_n(int fd, void *buf, size_t len)
{
    char *p = buf;

    while (len > 0) {
        ssize_t n = recv(fd, p, len, 0);
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* Read until EOF into buf (at most cap bytes kept, the rest counted).
 * Returns the bytes read, or -1 on error or timeout. */
static long plain_recv_eof(int fd, void *buf, size_t cap)
{
    char sink[16384];
    size_t total = 0;

    for (;;) {
        char *dst = total < cap ? (char *)buf + total : sink;
        size_t room = total < cap ? cap - total : sizeof(sink);
        ssize_t n = recv(fd, dst, room, 0);
        if (n == 0)
            return (long)total;
        if (n < 0)
            return errno == ECONNRESET ? (long)total : -1;
        total += (size_t)n;
    }
}

/* A byte of the test pattern at offset i. */
static unsigned char pattern_at(size_t i)
{
    return (unsigned char)((i * 7 + i / 251) & 0xff);
}

static void fill_pattern(unsigned char *p, size_t off, size_t len)
{
    for (size_t i = 0; i < len; i++)
        p[i] = pattern_at(off + i);
}

static bool is_pattern(const unsigned char *p, size_t off, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != pattern_at(off + i))
            return false;
    return true;
}

static void nothing(void *arg)
{
    (void)arg;
}

struct client_spec {
    pants_engine_t *e;                  /* whose loop 0 runs the client */
    const pants_stream_callbacks_t *cb; /* its callbacks */
    void *data;                         /* its data */
    const char *addr;                   /* where to connect */
    pants_stream_t *s;                  /* the stream made */
    int rc;                             /* connect's result */
};

static void client_start(void *arg)
{
    struct client_spec *c = arg;

    c->s = pants_stream_new(pants_loop_current(), c->cb, c->data);
    c->rc = c->s ? pants_stream_connect(c->s, c->addr) : -errno;
}

/* A pants client on loop 0 of e; returns the stream. */
static pants_stream_t *client(pants_engine_t *e, const pants_stream_callbacks_t *cb, void *data,
                              const char *addr)
{
    struct client_spec c = {e, cb, data, addr, NULL, 0};

    pt_on_loop(pants_engine_loop(e, 0), client_start, &c);
    ck_assert_ptr_nonnull(c.s);
    ck_assert_int_eq(c.rc, 0);
    return c.s;
}

static void close_task(void *arg)
{
    pants_stream_close(arg);
}

/* ---- The echo server --------------------------------------------------- */

static void echo_on_read(pants_stream_t *s, const void *data, size_t len)
{
    pants_stream_write(s, data, len);
}

static const pants_stream_callbacks_t echo_cb = {.on_read = echo_on_read};

/* ---- Echo with pants clients ------------------------------------------- */

struct echo_client {
    char addr[128];  /* where to connect */
    char msg[64];    /* what to send */
    size_t len;      /* its length */
    char got[64];    /* what came back */
    size_t got_len;  /* bytes in got */
    int ok;          /* the echo matched */
    int closed;      /* on_close ran (count) */
    int connect_err; /* on_connect_error's err */
    int *all_closed; /* shared counter, or NULL */
};

static void ec_on_connect(pants_stream_t *s)
{
    struct echo_client *c = pants_stream_data(s);

    pants_stream_write(s, c->msg, c->len);
}

static void ec_on_read(pants_stream_t *s, const void *data, size_t len)
{
    struct echo_client *c = pants_stream_data(s);
    size_t n = len < sizeof(c->got) - c->got_len ? len : sizeof(c->got) - c->got_len;

    memcpy(c->got + c->got_len, data, n);
    c->got_len += n;
    if (c->got_len >= c->len) {
        SET(c->ok, c->got_len == c->len && memcmp(c->got, c->msg, c->len) == 0);
        pants_stream_close(s);
    }
}

static void ec_on_connect_error(pants_stream_t *s, int err)
{
    struct echo_client *c = pants_stream_data(s);

    SET(c->connect_err, err);
    pants_stream_close(s);
}

static void ec_on_close(pants_stream_t *s)
{
    struct echo_client *c = pants_stream_data(s);
    int *all_closed = c->all_closed; /* c may be reused once closed is set */

    INC(c->closed);
    if (all_closed)
        INC(*all_closed);
}

static const pants_stream_callbacks_t ec_cb = {
    .on_connect = ec_on_connect,
    .on_read = ec_on_read,
    .on_connect_error = ec_on_connect_error,
    .on_close = ec_on_close,
};

/* On the loop: a client stream that sends its message and waits for it. */
static void ec_start(void *arg)
{
    struct echo_client *c = arg;
    pants_stream_t *s = pants_stream_new(pants_loop_current(), &ec_cb, c);

    if (s == NULL || pants_stream_connect(s, c->addr) != 0)
        SET(c->connect_err, -EINVAL);
}

static void ec_init(struct echo_client *c, const char *addr, int id, int *all_closed)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->addr, sizeof(c->addr), "%s", addr);
    c->len = (size_t)snprintf(c->msg, sizeof(c->msg), "hello from client %d", id);
    c->all_closed = all_closed;
}

static void check_echoed(struct echo_client *c)
{
    ck_assert_int_eq(GET(c->connect_err), 0);
    ck_assert_int_eq(GET(c->closed), 1);
    ck_assert_msg(GET(c->ok), "echo mismatch: sent '%s', got %zu bytes", c->msg, c->got_len);
}

START_TEST(echo_pants_one)
{
    pants_engine_t *e = engine_up2();
    struct echo_client c;
    char addr[128];

    serve(e, (enum family)_i, &echo_cb, NULL, addr, sizeof(addr));
    ec_init(&c, addr, 0, NULL);
    pt_on_loop(pants_engine_loop(e, 0), ec_start, &c);
    ck_assert_msg(pt_wait(&c.closed, WAIT_MS), "%s: no echo", family_name[_i]);
    check_echoed(&c);
    pt_engine_down(e);
}
END_TEST

START_TEST(echo_pants_sequential)
{
    pants_engine_t *e = engine_up2();
    struct echo_client c;
    char addr[128];

    serve(e, (enum family)_i, &echo_cb, NULL, addr, sizeof(addr));
    for (int i = 0; i < 5; i++) {
        ec_init(&c, addr, i, NULL);
        pt_on_loop(pants_engine_loop(e, (unsigned)i % 2), ec_start, &c);
        ck_assert_msg(pt_wait(&c.closed, WAIT_MS), "%s: client %d got no echo", family_name[_i], i);
        check_echoed(&c);
    }
    pt_engine_down(e);
}
END_TEST

#define CONCURRENT 20

START_TEST(echo_pants_concurrent)
{
    pants_engine_t *e = engine_up2();
    struct echo_client c[CONCURRENT];
    int all_closed = 0;
    char addr[128];

    serve(e, (enum family)_i, &echo_cb, NULL, addr, sizeof(addr));
    for (int i = 0; i < CONCURRENT; i++) {
        ec_init(&c[i], addr, i, &all_closed);
        ck_assert_int_eq(pants_loop_post(pants_engine_loop(e, (unsigned)i % 2), ec_start, &c[i]), 0);
    }
    ck_assert_msg(pt_wait_count(&all_closed, CONCURRENT, WAIT_MS), "%s: %d of %d clients done",
                  family_name[_i], GET(all_closed), CONCURRENT);
    for (int i = 0; i < CONCURRENT; i++)
        check_echoed(&c[i]);
    pt_engine_down(e);
}
END_TEST

/* Megabytes both ways through a pants client and a pants echo server, so
 * both sides meet a full socket and resume on the next edge. */
#define LARGE (4 * 1024 * 1024)

struct large_echo {
    size_t sent; /* bytes the client queued */
    size_t got;  /* bytes echoed back so far */
    int bad;     /* echoed bytes that differ */
    int writes;  /* on_write calls */
    int closed;  /* on_close ran */
};

/* The client queues 4 MiB at once and reads the echo meanwhile, so it must
 * not let its high watermark pause its own reading: the echo server's
 * reading pauses too once the client's echo piles up, and the two would
 * wait for each other (API.md: a NULL on_write_high pauses reading). */
static void le_on_connect(pants_stream_t *s)
{
    struct large_echo *x = pants_stream_data(s);
    unsigned char *chunk = malloc(256 * 1024);

    ck_assert_int_eq(pants_stream_set_write_watermarks(s, 0, 0), 0);
    for (x->sent = 0; x->sent < LARGE; x->sent += 256 * 1024) {
        fill_pattern(chunk, x->sent, 256 * 1024);
        pants_stream_write(s, chunk, 256 * 1024);
    }
    free(chunk);
}

static void le_on_read(pants_stream_t *s, const void *data, size_t len)
{
    struct large_echo *x = pants_stream_data(s);

    if (!is_pattern(data, x->got, len))
        x->bad++;
    x->got += len;
    if (x->got >= LARGE)
        pants_stream_close(s);
}

static void le_on_write(pants_stream_t *s)
{
    struct large_echo *x = pants_stream_data(s);

    x->writes++;
}

static void le_on_close(pants_stream_t *s)
{
    struct large_echo *x = pants_stream_data(s);

    SET(x->closed, 1);
}

static const pants_stream_callbacks_t le_cb = {
    .on_connect = le_on_connect, .on_read = le_on_read, .on_write = le_on_write, .on_close = le_on_close};

START_TEST(echo_pants_large)
{
    pants_engine_t *e = engine_up2();
    struct large_echo x = {0};
    char addr[128];

    serve(e, (enum family)_i, &echo_cb, NULL, addr, sizeof(addr));
    client(e, &le_cb, &x, addr);
    ck_assert_msg(pt_wait(&x.closed, 20000), "%s: echo of %d bytes did not complete", family_name[_i], LARGE);
    ck_assert_uint_eq(x.got, LARGE);
    ck_assert_int_eq(x.bad, 0);
    ck_assert_int_ge(x.writes, 1);
    pt_engine_down(e);
}
END_TEST

START_TEST(echo_pants_abstract)
{
    pants_engine_t *e = engine_up2();
    pants_server_t *srv = pants_server_new(e, NULL, &echo_cb, NULL);
    struct echo_client c;
    char where[64];

    snprintf(where, sizeof(where), "unix:@pants-check-stream-%d", (int)getpid());
    ck_assert_int_eq(pants_server_listen(srv, where, 0), 0);
    ec_init(&c, where, 1, NULL);
    pt_on_loop(pants_engine_loop(e, 1), ec_start, &c);
    ck_assert(pt_wait(&c.closed, WAIT_MS));
    check_echoed(&c);
    pt_engine_down(e);
}
END_TEST

/* ---- Echo with plain blocking clients on threads ----------------------- */

struct plain_client {
    const char *addr; /* where to connect */
    int id;           /* makes the message unique */
    int rounds;       /* connections one after another */
    int ok;           /* rounds that echoed correctly */
};

static bool plain_echo_once(const char *addr, int id)
{
    char msg[64], got[64];
    int len = snprintf(msg, sizeof(msg), "plain client %d says hello", id);
    int fd = plain_connect(addr);
    bool ok;

    if (fd < 0)
        return false;
    ok = plain_send(fd, msg, (size_t)len) && plain_recv_n(fd, got, (size_t)len) &&
         memcmp(got, msg, (size_t)len) == 0;
    close(fd);
    return ok;
}

static void *plain_client_thread(void *arg)
{
    struct plain_client *c = arg;

    for (int r = 0; r < c->rounds; r++)
        if (plain_echo_once(c->addr, c->id * 100 + r))
            INC(c->ok);
    return NULL;
}

/* n threads, each echoing rounds times in sequence. */
static void run_plain_clients(enum family f, int n, int rounds)
{
    pants_engine_t *e = engine_up2();
    struct plain_client c[CONCURRENT];
    pthread_t t[CONCURRENT];
    char addr[128];

    ck_assert_int_le(n, CONCURRENT);
    serve(e, f, &echo_cb, NULL, addr, sizeof(addr));
    for (int i = 0; i < n; i++) {
        c[i] = (struct plain_client){addr, i, rounds, 0};
        ck_assert_int_eq(pthread_create(&t[i], NULL, plain_client_thread, &c[i]), 0);
    }
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < n; i++)
        ck_assert_msg(c[i].ok == rounds, "%s: client %d echoed %d of %d", family_name[f], i, c[i].ok, rounds);
    pt_engine_down(e);
}

START_TEST(echo_plain_one)
{
    run_plain_clients((enum family)_i, 1, 1);
}
END_TEST

START_TEST(echo_plain_sequential)
{
    run_plain_clients((enum family)_i, 1, 5);
}
END_TEST

START_TEST(echo_plain_concurrent)
{
    run_plain_clients((enum family)_i, CONCURRENT, 1);
}
END_TEST

/* ---- The write queue: end, close, pending ------------------------------ */

#define BIG (256 * 1024)

struct queue_test {
    bool use_end;         /* end (else close) after queueing */
    int done;             /* the connection's on_close ran */
    size_t pending_write; /* pending() after the write */
    size_t pending_after; /* pending() after end/close */
    int rc_end;           /* end's result */
    int rc_write_after;   /* a write after end/close */
    int connected_after;  /* is_connected after end/close */
};

static void queue_on_connect(pants_stream_t *s)
{
    struct queue_test *q = conn_ctx(s);
    unsigned char *big = malloc(BIG);

    fill_pattern(big, 0, BIG);
    pants_stream_write(s, big, BIG);
    free(big);
    q->pending_write = pants_stream_pending(s);
    if (q->use_end) {
        q->rc_end = pants_stream_end(s);
        q->rc_write_after = pants_stream_write(s, "x", 1);
        q->rc_end = q->rc_end == 0 ? pants_stream_end(s) : q->rc_end; /* again: harmless */
    } else {
        pants_stream_close(s);
        pants_stream_close(s); /* again: harmless */
        q->rc_write_after = pants_stream_write(s, "x", 1);
    }
    q->pending_after = pants_stream_pending(s);
    q->connected_after = pants_stream_is_connected(s);
}

static void queue_on_close(pants_stream_t *s)
{
    struct queue_test *q = conn_ctx(s);

    INC(q->done);
}

static const pants_stream_callbacks_t queue_cb = {.on_connect = queue_on_connect, .on_close = queue_on_close};

START_TEST(end_delivers_queued)
{
    pants_engine_t *e = engine_up2();
    struct queue_test q = {.use_end = true};
    unsigned char *got = malloc(BIG + 16);
    char addr[128];
    int fd;

    serve(e, F_INET, &queue_cb, &q, addr, sizeof(addr));
    fd = plain_connect(addr);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(plain_recv_eof(fd, got, BIG + 16), BIG);
    ck_assert(is_pattern(got, 0, BIG));
    close(fd);
    ck_assert(pt_wait(&q.done, WAIT_MS));
    ck_assert_uint_eq(q.pending_write, BIG);
    ck_assert_uint_eq(q.pending_after, BIG);
    ck_assert_int_eq(q.rc_end, 0);
    ck_assert_int_eq(q.rc_write_after, -EPIPE);
    ck_assert_int_eq(q.connected_after, 0);
    ck_assert_int_eq(GET(q.done), 1);
    free(got);
    pt_engine_down(e);
}
END_TEST

START_TEST(close_drops_queued)
{
    pants_engine_t *e = engine_up2();
    struct queue_test q = {.use_end = false};
    unsigned char *got = malloc(BIG);
    char addr[128];
    int fd;

    serve(e, F_INET, &queue_cb, &q, addr, sizeof(addr));
    fd = plain_connect(addr);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(plain_recv_eof(fd, got, BIG), 0);
    close(fd);
    ck_assert(pt_wait(&q.done, WAIT_MS));
    ck_assert_uint_eq(q.pending_write, BIG);
    ck_assert_uint_eq(q.pending_after, 0);
    ck_assert_int_eq(q.rc_write_after, -EPIPE);
    ck_assert_int_eq(q.connected_after, 0);
    ck_assert_int_eq(GET(q.done), 1);
    free(got);
    pt_engine_down(e);
}
END_TEST

/* ---- on_write ---------------------------------------------------------- */

#define MIB (1024 * 1024)

struct write_test {
    int on_write;         /* on_write calls */
    size_t pending_in_cb; /* pending() inside on_write */
    int closed;           /* on_close ran */
    int received;         /* bytes the server read (atomic) */
};

static void wt_on_connect(pants_stream_t *s)
{
    unsigned char *chunk = malloc(64 * 1024);

    for (size_t off = 0; off < MIB; off += 64 * 1024) {
        fill_pattern(chunk, off, 64 * 1024);
        pants_stream_write(s, chunk, 64 * 1024);
    }
    free(chunk);
}

static void wt_on_write(pants_stream_t *s)
{
    struct write_test *w = pants_stream_data(s);

    w->pending_in_cb = pants_stream_pending(s);
    INC(w->on_write);
}

static void wt_on_close(pants_stream_t *s)
{
    struct write_test *w = pants_stream_data(s);

    INC(w->closed);
}

static const pants_stream_callbacks_t wt_cb = {
    .on_connect = wt_on_connect, .on_write = wt_on_write, .on_close = wt_on_close};

static void count_on_read(pants_stream_t *s, const void *data, size_t len)
{
    struct write_test *w = conn_ctx(s);

    (void)data;
    __atomic_add_fetch(&w->received, (int)len, __ATOMIC_SEQ_CST);
}

static const pants_stream_callbacks_t count_cb = {.on_read = count_on_read};

START_TEST(on_write_after_drain)
{
    pants_engine_t *e = engine_up2();
    struct write_test w = {0};
    char addr[128];
    pants_stream_t *s;

    serve(e, (enum family)_i, &count_cb, &w, addr, sizeof(addr));
    s = client(e, &wt_cb, &w, addr);
    ck_assert(pt_wait(&w.on_write, WAIT_MS));
    ck_assert_uint_eq(w.pending_in_cb, 0);
    ck_assert(pt_wait_count(&w.received, MIB, WAIT_MS));
    pt_sleep_ms(50);
    ck_assert_int_eq(GET(w.on_write), 1); /* one drain, one on_write */
    ck_assert_int_eq(GET(w.received), MIB);
    pt_on_loop(pants_engine_loop(e, 0), close_task, s);
    ck_assert(pt_wait(&w.closed, WAIT_MS));
    pt_engine_down(e);
}
END_TEST

/* ---- Writes before the connection is up -------------------------------- */

struct collect {
    char buf[256]; /* bytes the connection read */
    int len;       /* how many (atomic) */
};

static void collect_on_read(pants_stream_t *s, const void *data, size_t len)
{
    struct collect *c = conn_ctx(s);
    int have = GET(c->len);
    size_t n = len < sizeof(c->buf) - (size_t)have ? len : sizeof(c->buf) - (size_t)have;

    memcpy(c->buf + have, data, n);
    SET(c->len, have + (int)n);
}

static const pants_stream_callbacks_t collect_cb = {.on_read = collect_on_read};

struct closed_flag {
    int closed; /* on_close ran (count) */
    int errors; /* on_error / on_connect_error calls */
};

static void flag_on_close(pants_stream_t *s)
{
    struct closed_flag *f = pants_stream_data(s);

    INC(f->closed);
}

static void flag_on_error(pants_stream_t *s, int err)
{
    struct closed_flag *f = pants_stream_data(s);

    (void)err;
    INC(f->errors);
}

static const pants_stream_callbacks_t flag_cb = {
    .on_close = flag_on_close, .on_error = flag_on_error, .on_connect_error = flag_on_error};

START_TEST(write_before_connect_before_run)
{
    pants_engine_options_t o = {.threads = 2};
    pants_engine_t *e = pants_engine_new(&o);
    struct collect got = {.len = 0};
    struct closed_flag f = {0};
    pants_stream_t *s;
    char addr[128];

    ck_assert_ptr_nonnull(e);
    serve(e, (enum family)_i, &collect_cb, &got, addr, sizeof(addr));
    s = pants_stream_new(pants_engine_loop(e, 1), &flag_cb, &f);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(pants_stream_write(s, "early-", 6), 0);
    ck_assert_int_eq(pants_stream_connect(s, addr), 0);
    ck_assert_int_eq(pants_stream_write(s, "bird", 4), 0);
    ck_assert_uint_eq(pants_stream_pending(s), 10);
    ck_assert_int_eq(pants_engine_start(e), 0);
    ck_assert(pt_wait_count(&got.len, 10, WAIT_MS));
    ck_assert_mem_eq(got.buf, "early-bird", 10);
    pt_on_loop(pants_engine_loop(e, 1), close_task, s);
    ck_assert(pt_wait(&f.closed, WAIT_MS));
    ck_assert_int_eq(GET(f.errors), 0);
    pt_engine_down(e);
}
END_TEST

struct connecting_write {
    const char *addr;     /* where to connect */
    struct closed_flag f; /* the client's flags */
    pants_stream_t *s;    /* the client */
    int rc[3];            /* write, connect, write */
    int is_connected;     /* right after connect */
};

static void connecting_write_task(void *arg)
{
    struct connecting_write *w = arg;

    w->s = pants_stream_new(pants_loop_current(), &flag_cb, &w->f);
    w->rc[0] = pants_stream_write(w->s, "before ", 7);
    w->rc[1] = pants_stream_connect(w->s, w->addr);
    w->is_connected = pants_stream_is_connected(w->s);
    w->rc[2] = pants_stream_write(w->s, "during", 6);
}

START_TEST(write_while_connecting)
{
    pants_engine_t *e = engine_up2();
    struct collect got = {.len = 0};
    char addr[128];
    struct connecting_write w = {.addr = addr};

    serve(e, (enum family)_i, &collect_cb, &got, addr, sizeof(addr));
    pt_on_loop(pants_engine_loop(e, 0), connecting_write_task, &w);
    ck_assert_int_eq(w.rc[0], 0);
    ck_assert_int_eq(w.rc[1], 0);
    ck_assert_int_eq(w.rc[2], 0);
    ck_assert_int_eq(w.is_connected, 0);
    ck_assert(pt_wait_count(&got.len, 13, WAIT_MS));
    ck_assert_int_eq(GET(got.len), 13);
    ck_assert_mem_eq(got.buf, "before during", 13);
    pt_on_loop(pants_engine_loop(e, 0), close_task, w.s);
    ck_assert(pt_wait(&w.f.closed, WAIT_MS));
    pt_engine_down(e);
}
END_TEST

/* ---- write_file -------------------------------------------------------- */

#define FILE_SIZE 100000

static const struct file_case {
    off_t offset;    /* asked */
    size_t nbytes;   /* asked */
    size_t want_off; /* expected span of the file */
    size_t want_len;
} file_cases[] = {
    {0, 0, 0, FILE_SIZE},                          /* the whole file */
    {1000, 5000, 1000, 5000},                      /* offset and count */
    {90000, 0, 90000, FILE_SIZE - 90000},          /* to the end */
    {FILE_SIZE - 100, 5000, FILE_SIZE - 100, 100}, /* count cut at the end */
    {FILE_SIZE, 0, 0, 0},                          /* at the end: nothing */
    {FILE_SIZE + 10, 100, 0, 0},                   /* past the end: nothing */
};

struct file_test {
    char path[256];             /* the file */
    const struct file_case *fc; /* what to send */
    int rc;                     /* write_file's result */
    int close_rc;               /* close(fd) right after */
};

/* HEAD, the span of the file (its fd closed at once), TAIL, then end. */
static void file_on_connect(pants_stream_t *s)
{
    struct file_test *t = conn_ctx(s);
    int fd = open(t->path, O_RDONLY | O_CLOEXEC);

    pants_stream_write(s, "HEAD", 4);
    t->rc = pants_stream_write_file(s, fd, t->fc->offset, t->fc->nbytes);
    t->close_rc = close(fd);
    pants_stream_write(s, "TAIL", 4);
    pants_stream_end(s);
}

static const pants_stream_callbacks_t file_cb = {.on_connect = file_on_connect};

static void make_pattern_file(char *path, size_t len)
{
    unsigned char *buf = malloc(FILE_SIZE);
    int fd;

    snprintf(path, len, "/tmp/pants-stream-file-XXXXXX");
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    fill_pattern(buf, 0, FILE_SIZE);
    ck_assert_int_eq(write(fd, buf, FILE_SIZE), FILE_SIZE);
    close(fd);
    free(buf);
}

START_TEST(write_file_spans)
{
    pants_engine_t *e = engine_up2();
    struct file_test t = {.fc = &file_cases[_i]};
    unsigned char *got = malloc(FILE_SIZE + 64);
    char addr[128];
    long n;
    int fd;

    make_pattern_file(t.path, sizeof(t.path));
    serve(e, F_INET, &file_cb, &t, addr, sizeof(addr));
    fd = plain_connect(addr);
    ck_assert_int_ge(fd, 0);
    n = plain_recv_eof(fd, got, FILE_SIZE + 64);
    close(fd);
    unlink(t.path);
    ck_assert_int_eq(t.rc, 0);
    ck_assert_int_eq(t.close_rc, 0);
    ck_assert_int_eq(n, (long)(8 + t.fc->want_len));
    ck_assert_mem_eq(got, "HEAD", 4);
    ck_assert_msg(is_pattern(got + 4, t.fc->want_off, t.fc->want_len), "file bytes differ (case %d)", _i);
    ck_assert_mem_eq(got + 4 + t.fc->want_len, "TAIL", 4);
    free(got);
    pt_engine_down(e);
}
END_TEST

START_TEST(write_file_errors)
{
    pants_engine_options_t o = {.threads = 1};
    pants_engine_t *e = pants_engine_new(&o);
    struct closed_flag f = {0};
    pants_stream_t *s;
    char path[256];
    int fd, pipefd[2];

    ck_assert_ptr_nonnull(e);
    make_pattern_file(path, sizeof(path));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pipe(pipefd), 0);
    s = pants_stream_new(pants_engine_loop(e, 0), &flag_cb, &f);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(pants_stream_write_file(s, -1, 0, 0), -EBADF);
    ck_assert_int_eq(pants_stream_write_file(s, fd, -1, 0), -EINVAL);
    ck_assert_int_eq(pants_stream_write_file(s, pipefd[0], 0, 0), -EINVAL);
    ck_assert_int_eq(pants_stream_write(s, NULL, 1), -EINVAL);
    ck_assert_int_eq(pants_stream_write(s, NULL, 0), 0);
    ck_assert_uint_eq(pants_stream_pending(s), 0);
    ck_assert_int_eq(pants_stream_write_file(s, fd, 0, 10), 0); /* queued before connect */
    ck_assert_uint_eq(pants_stream_pending(s), 10);
    ck_assert_int_eq(pants_stream_end(s), 0); /* never connected: closes */
    ck_assert_int_eq(pants_stream_write_file(s, fd, 0, 0), -EPIPE);
    ck_assert_int_eq(pants_stream_write(s, "x", 1), -EPIPE);
    ck_assert_int_eq(pants_stream_end(s), -EPIPE);
    close(fd);
    close(pipefd[0]);
    close(pipefd[1]);
    unlink(path);
    ck_assert_int_eq(pants_engine_start(e), 0);
    ck_assert(pt_wait(&f.closed, WAIT_MS));
    ck_assert_int_eq(GET(f.closed), 1);
    ck_assert_int_eq(GET(f.errors), 0);
    pt_engine_down(e);
}
END_TEST

static int count_fds(void)
{
    int n = 0;
    char path[64];

    for (int fd = 0; fd < 1024; fd++) {
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        n += access(path, F_OK) == 0;
    }
    return n;
}

struct file_drop {
    const char *path; /* the file */
    int rc;           /* write_file's result */
    size_t pending;   /* pending() after it */
    int done;         /* closed */
};

static void file_drop_task(void *arg)
{
    struct file_drop *f = arg;
    pants_stream_t *s = pants_stream_new(pants_loop_current(), NULL, NULL);
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);

    f->rc = pants_stream_write_file(s, fd, 0, 0); /* queued: never connected */
    f->pending = pants_stream_pending(s);
    close(fd);
    pants_stream_close(s); /* drops it, and with it the duplicated fd */
    SET(f->done, 1);
}

START_TEST(write_file_dropped_frees_fd)
{
    pants_engine_t *e = engine_up2();
    char path[256];
    struct file_drop f = {.path = path};
    int before;

    make_pattern_file(path, sizeof(path));
    pt_on_loop(pants_engine_loop(e, 0), nothing, NULL);
    before = count_fds();
    pt_on_loop(pants_engine_loop(e, 0), file_drop_task, &f);
    pt_on_loop(pants_engine_loop(e, 0), nothing, NULL); /* after on_close */
    ck_assert_int_eq(f.rc, 0);
    ck_assert_uint_eq(f.pending, FILE_SIZE);
    ck_assert_int_eq(count_fds(), before);
    unlink(path);
    pt_engine_down(e);
}
END_TEST

/* ---- Closing and ending inside on_read --------------------------------- */

struct reader {
    bool end_instead; /* end (reply delivered) rather than close */
    int reads;        /* on_read calls */
    int closes;       /* on_close calls */
    int errors;       /* on_error calls */
    int rc_after;     /* a write after close/end inside on_read */
    char last[64];    /* the last frame */
};

static void rd_on_accept(pants_server_t *srv, pants_stream_t *conn)
{
    (void)srv;
    pants_stream_read_until(conn, "\n", 1);
}

static void rd_on_read(pants_stream_t *s, const void *data, size_t len)
{
    struct reader *r = conn_ctx(s);

    snprintf(r->last, sizeof(r->last), "%.*s", (int)len, (const char *)data);
    pants_stream_write(s, "bye\n", 4);
    if (r->end_instead) {
        pants_stream_end(s);
    } else {
        pants_stream_close(s);
        pants_stream_close(s);
    }
    r->rc_after = pants_stream_write(s, "more\n", 5);
    INC(r->reads);
}

static void rd_on_close(pants_stream_t *s)
{
    struct reader *r = conn_ctx(s);

    INC(r->closes);
}

static void rd_on_error(pants_stream_t *s, int err)
{
    struct reader *r = conn_ctx(s);

    (void)err;
    INC(r->errors);
}

static const pants_stream_callbacks_t rd_cb = {
    .on_read = rd_on_read, .on_close = rd_on_close, .on_error = rd_on_error};

static void run_stop_inside_on_read(bool end_instead, const char *want_reply)
{
    pants_engine_t *e = engine_up2();
    pants_server_callbacks_t scb = {.on_accept = rd_on_accept};
    struct reader r = {.end_instead = end_instead};
    char addr[128], got[64] = "";
    long n;
    int fd;

    serve_cb(e, F_INET, &scb, &rd_cb, &r, addr, sizeof(addr));
    fd = plain_connect(addr);
    ck_assert_int_ge(fd, 0);
    ck_assert(plain_send(fd, "first\nsecond\nthird\n", 19));
    n = plain_recv_eof(fd, got, sizeof(got) - 1);
    close(fd);
    ck_assert(pt_wait(&r.closes, WAIT_MS));
    pt_sleep_ms(50);
    ck_assert_int_eq(GET(r.reads), 1);
    ck_assert_int_eq(GET(r.closes), 1);
    ck_assert_int_eq(GET(r.errors), 0);
    ck_assert_str_eq(r.last, "first");
    ck_assert_int_eq(r.rc_after, -EPIPE);
    ck_assert_int_eq(n, (long)strlen(want_reply));
    ck_assert_mem_eq(got, want_reply, strlen(want_reply));
    pt_engine_down(e);
}

START_TEST(close_inside_on_read)
{
    run_stop_inside_on_read(false, ""); /* the reply is dropped with the queue */
}
END_TEST

START_TEST(end_inside_on_read)
{
    run_stop_inside_on_read(true, "bye\n");
}
END_TEST

/* ---- Half-close: the peer shuts its sending side ------------------------ */

struct half {
    size_t reply_size; /* bytes each frame gets back */
    int reads;         /* on_read calls */
    int closes;        /* on_close calls */
    char frames[128];  /* the frames, each followed by '|' */
    size_t flen;       /* bytes in frames */
};

static void half_on_read(pants_stream_t *s, const void *data, size_t len)
{
    struct half *h = conn_ctx(s);
    unsigned char *reply;
    size_t n = 0;

    if (h->flen + len + 1 < sizeof(h->frames)) {
        memcpy(h->frames + h->flen, data, len);
        h->frames[h->flen + len] = '|';
        h->flen += len + 1;
    }
    if (h->reply_size == 0) {
        char line[80];
        n = (size_t)snprintf(line, sizeof(line), "got:%.*s\n", (int)len, (const char *)data);
        pants_stream_write(s, line, n);
    } else {
        reply = malloc(h->reply_size);
        fill_pattern(reply, 0, h->reply_size);
        pants_stream_write(s, reply, h->reply_size);
        free(reply);
    }
    INC(h->reads);
}

static void half_on_close(pants_stream_t *s)
{
    struct half *h = conn_ctx(s);

    INC(h->closes);
}

static const pants_stream_callbacks_t half_cb = {.on_read = half_on_read, .on_close = half_on_close};

START_TEST(half_close_lines)
{
    pants_engine_t *e = engine_up2();
    pants_server_callbacks_t scb = {.on_accept = rd_on_accept};
    struct half h = {0};
    static const char want[] = "got:one\ngot:two\n";
    char addr[128], got[128];
    long n;
    int fd;

    serve_cb(e, (enum family)_i, &scb, &half_cb, &h, addr, sizeof(addr));
    fd = plain_connect(addr);
    ck_assert_int_ge(fd, 0);
    ck_assert(plain_send(fd, "one\ntwo\nthr", 11));
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    n = plain_recv_eof(fd, got, sizeof(got));
    close(fd);
    ck_assert_int_eq(n, (long)strlen(want));
    ck_assert_mem_eq(got, want, strlen(want));
    ck_assert(pt_wait(&h.closes, WAIT_MS));
    ck_assert_int_eq(GET(h.reads), 2); /* "thr" had no newline: dropped */
    ck_assert_int_eq(GET(h.closes), 1);
    ck_assert_uint_eq(h.flen, 8);
    ck_assert_mem_eq(h.frames, "one|two|", 8);
    pt_engine_down(e);
}
END_TEST

START_TEST(half_close_big_reply)
{
    pants_engine_t *e = engine_up2();
    pants_server_callbacks_t scb = {.on_accept = rd_on_accept};
    struct half h = {.reply_size = 2 * MIB};
    unsigned char *got = malloc(2 * MIB + 16);
    char addr[128];
    long n;
    int fd;

    serve_cb(e, (enum family)_i, &scb, &half_cb, &h, addr, sizeof(addr));
    fd = plain_connect(addr);
    ck_assert_int_ge(fd, 0);
    ck_assert(plain_send(fd, "x\n", 2));
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    pt_sleep_ms(100); /* let the EOF arrive while the reply is still queued */
    n = plain_recv_eof(fd, got, 2 * MIB + 16);
    close(fd);
    ck_assert_int_eq(n, 2 * MIB);
    ck_assert(is_pattern(got, 0, 2 * MIB));
    ck_assert(pt_wait(&h.closes, WAIT_MS));
    ck_assert_int_eq(GET(h.reads), 1);
    free(got);
    pt_engine_down(e);
}
END_TEST

/* The peer resets the connection while a big reply is queued: the stream
 * closes, and a reset is not an error (no on_error). */
struct reset_test {
    int queued; /* the reply is queued */
    int errors; /* on_error calls */
    int closes; /* on_close calls */
};

static void reset_on_connect(pants_stream_t *s)
{
    struct reset_test *t = conn_ctx(s);
    unsigned char *big = calloc(1, 4 * MIB);

    pants_stream_write(s, big, 4 * MIB);
    free(big);
    SET(t->queued, 1);
}

static void reset_on_error(pants_stream_t *s, int err)
{
    struct reset_test *t = conn_ctx(s);

    (void)err;
    INC(t->errors);
}

static void reset_on_close(pants_stream_t *s)
{
    struct reset_test *t = conn_ctx(s);

    INC(t->closes);
}

static const pants_stream_callbacks_t reset_cb = {
    .on_connect = reset_on_connect, .on_error = reset_on_error, .on_close = reset_on_close};

START_TEST(peer_reset_is_not_an_error)
{
    pants_engine_t *e = engine_up2();
    struct reset_test t = {0};
    struct linger lg = {1, 0};
    char addr[128], buf[1024];
    int fd;

    serve(e, (enum family)_i, &reset_cb, &t, addr, sizeof(addr));
    fd = plain_connect(addr);
    ck_assert_int_ge(fd, 0);
    ck_assert(pt_wait(&t.queued, WAIT_MS));
    ck_assert_int_gt(recv(fd, buf, sizeof(buf), 0), 0);
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)); /* close with RST (TCP) */
    close(fd);
    ck_assert(pt_wait(&t.closes, WAIT_MS));
    pt_sleep_ms(20);
    ck_assert_int_eq(GET(t.closes), 1);
    ck_assert_int_eq(GET(t.errors), 0);
    pt_engine_down(e);
}
END_TEST

/* ---- Connecting: refused, malformed, names ----------------------------- */

struct conn_test {
    char retry_addr[128]; /* connect here after the first failure ("" = close) */
    int connect_errs;     /* on_connect_error calls */
    int first_err;        /* its err */
    int errors;           /* on_error calls */
    int connects;         /* on_connect calls */
    int closes;           /* on_close calls */
    int retry_rc;         /* the second connect's result */
    int in_call;          /* set while connect runs: callbacks must not see it */
    int saw_in_call;      /* a callback ran inside the call */
    long long err_at_ms;  /* when on_connect_error ran (monotonic) */
};

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void ct_on_connect(pants_stream_t *s)
{
    struct conn_test *t = pants_stream_data(s);

    if (GET(t->in_call))
        SET(t->saw_in_call, 1);
    INC(t->connects);
    pants_stream_close(s);
}

static void ct_on_connect_error(pants_stream_t *s, int err)
{
    struct conn_test *t = pants_stream_data(s);

    if (GET(t->in_call))
        SET(t->saw_in_call, 1);
    t->err_at_ms = now_ms();
    if (INC(t->connect_errs) == 1)
        SET(t->first_err, err);
    if (t->retry_addr[0] != '\0' && GET(t->connect_errs) == 1)
        t->retry_rc = pants_stream_connect(s, t->retry_addr);
    else
        pants_stream_close(s);
}

static void ct_on_error(pants_stream_t *s, int err)
{
    struct conn_test *t = pants_stream_data(s);

    (void)err;
    INC(t->errors);
}

static void ct_on_close(pants_stream_t *s)
{
    struct conn_test *t = pants_stream_data(s);

    INC(t->closes);
}

static const pants_stream_callbacks_t ct_cb = {
    .on_connect = ct_on_connect,
    .on_connect_error = ct_on_connect_error,
    .on_error = ct_on_error,
    .on_close = ct_on_close,
};

struct ct_start {
    struct conn_test *t;                /* shared with the callbacks */
    const pants_stream_callbacks_t *cb; /* the client's callbacks */
    const char *addr;                   /* where to connect */
    pants_stream_t *s;                  /* the client */
    int rc;                             /* connect's result */
};

static void ct_start_task(void *arg)
{
    struct ct_start *c = arg;

    c->s = pants_stream_new(pants_loop_current(), c->cb, c->t);
    SET(c->t->in_call, 1);
    c->rc = pants_stream_connect(c->s, c->addr);
    SET(c->t->in_call, 0);
}

static int ct_connect(pants_engine_t *e, const pants_stream_callbacks_t *cb, struct conn_test *t,
                      const char *addr)
{
    struct ct_start c = {t, cb, addr, NULL, 0};

    pt_on_loop(pants_engine_loop(e, 0), ct_start_task, &c);
    ck_assert_ptr_nonnull(c.s);
    return c.rc;
}

/* A TCP port on 127.0.0.1 that is bound but not listening: connecting to
 * it is refused.  Keep *holder open while the port is needed. */
static void dead_addr(char *addr, size_t len, int *holder)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t slen = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &slen), 0);
    snprintf(addr, len, "127.0.0.1:%u", ntohs(sin.sin_port));
    *holder = fd;
}

START_TEST(connect_refused_then_retry)
{
    pants_engine_t *e = engine_up2();
    struct conn_test t = {0};
    char dead[64];
    int holder;

    dead_addr(dead, sizeof(dead), &holder);
    serve(e, F_INET, &echo_cb, NULL, t.retry_addr, sizeof(t.retry_addr));
    ck_assert_int_eq(ct_connect(e, &ct_cb, &t, dead), 0);
    ck_assert(pt_wait(&t.closes, WAIT_MS));
    ck_assert_int_eq(GET(t.connect_errs), 1);
    ck_assert_int_eq(GET(t.first_err), -ECONNREFUSED);
    ck_assert_int_eq(t.retry_rc, 0);
    ck_assert_int_eq(GET(t.connects), 1); /* the stream stayed usable */
    ck_assert_int_eq(GET(t.errors), 0);
    ck_assert_int_eq(GET(t.closes), 1);
    ck_assert_int_eq(GET(t.saw_in_call), 0);
    close(holder);
    pt_engine_down(e);
}
END_TEST

START_TEST(connect_refused_without_handler_closes)
{
    pants_engine_t *e = engine_up2();
    pants_stream_callbacks_t cb = ct_cb;
    struct conn_test t = {0};
    char dead[64];
    int holder;

    cb.on_connect_error = NULL;
    dead_addr(dead, sizeof(dead), &holder);
    ck_assert_int_eq(ct_connect(e, &cb, &t, dead), 0);
    ck_assert(pt_wait(&t.closes, WAIT_MS));
    ck_assert_int_eq(GET(t.connects), 0);
    ck_assert_int_eq(GET(t.errors), 0);
    ck_assert_int_eq(GET(t.closes), 1);
    close(holder);
    pt_engine_down(e);
}
END_TEST

static const char *const malformed[] = {
    "nope",  "1.2.3.4",  "1.2.3.4:99999", "[::1", "unix:",        "256.0.0.1:80",
    "[::1]", "1.2.3.4:", ":80",           "*:80", "host name:80", "",
};

struct malformed_test {
    struct conn_test t; /* callbacks' record */
    pants_stream_t *s;  /* the client */
    int rc[sizeof(malformed) / sizeof(malformed[0])];
    int family_after; /* still AF_UNSPEC */
    int rc_live;      /* connect to the live server afterwards */
    char live[128];   /* its address */
};

static void malformed_task(void *arg)
{
    struct malformed_test *m = arg;

    m->s = pants_stream_new(pants_loop_current(), &ct_cb, &m->t);
    for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++)
        m->rc[i] = pants_stream_connect(m->s, malformed[i]);
    m->family_after = pants_stream_family(m->s);
    m->rc_live = pants_stream_connect(m->s, m->live);
}

START_TEST(connect_unix_missing)
{
    pants_engine_t *e = engine_up2();
    struct conn_test t = {0};
    char where[200];

    pt_unix_addr(where, sizeof(where), "nobody-here.sock");
    ck_assert_int_eq(ct_connect(e, &ct_cb, &t, where), 0);
    ck_assert(pt_wait(&t.closes, WAIT_MS));
    ck_assert_int_eq(GET(t.connect_errs), 1);
    ck_assert_msg(GET(t.first_err) == -ENOENT || GET(t.first_err) == -ECONNREFUSED, "err %d",
                  GET(t.first_err));
    ck_assert_int_eq(GET(t.errors), 0);
    ck_assert_int_eq(GET(t.saw_in_call), 0);
    pt_engine_down(e);
}
END_TEST

START_TEST(connect_malformed)
{
    pants_engine_t *e = engine_up2();
    struct malformed_test m = {0};

    serve(e, F_INET, &echo_cb, NULL, m.live, sizeof(m.live));
    pt_on_loop(pants_engine_loop(e, 0), malformed_task, &m);
    for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++)
        ck_assert_msg(m.rc[i] == -EINVAL, "connect(\"%s\") gave %d", malformed[i], m.rc[i]);
    ck_assert_int_eq(m.family_after, AF_UNSPEC);
    ck_assert_int_eq(m.rc_live, 0);
    ck_assert(pt_wait(&m.t.closes, WAIT_MS));
    ck_assert_int_eq(GET(m.t.connect_errs), 0); /* no callback for -EINVAL */
    ck_assert_int_eq(GET(m.t.connects), 1);
    ck_assert_int_eq(GET(m.t.errors), 0);
    pt_engine_down(e);
}
END_TEST

START_TEST(connect_state_errors)
{
    pants_engine_options_t o = {.threads = 1};
    pants_engine_t *e = pants_engine_new(&o);
    struct closed_flag f = {0};
    pants_stream_t *s;
    char addr[128];

    ck_assert_ptr_nonnull(e);
    serve(e, F_INET, &echo_cb, NULL, addr, sizeof(addr));
    s = pants_stream_new(pants_engine_loop(e, 0), &flag_cb, &f);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(pants_stream_family(s), AF_UNSPEC);
    ck_assert_int_eq(pants_stream_connect(s, NULL), -EINVAL);
    ck_assert_int_eq(pants_stream_connect(s, addr), 0);
    ck_assert_int_eq(pants_stream_family(s), AF_INET);
    ck_assert_int_eq(pants_stream_connect(s, addr), -EALREADY);
    pants_stream_close(s);
    ck_assert_int_eq(pants_stream_connect(s, addr), -EPIPE);
    ck_assert_int_eq(pants_engine_start(e), 0);
    ck_assert(pt_wait(&f.closed, WAIT_MS));
    ck_assert_int_eq(GET(f.closed), 1);
    ck_assert_int_eq(GET(f.errors), 0);
    pt_engine_down(e);
}
END_TEST

START_TEST(connect_invalid_name)
{
    pants_engine_t *e = engine_up2();
    struct conn_test t = {0};

    ck_assert_int_eq(ct_connect(e, &ct_cb, &t, "no-such-host.invalid:80"), 0);
    ck_assert(pt_wait(&t.closes, WAIT_MS));
    ck_assert_int_eq(GET(t.connect_errs), 1);
    ck_assert_int_eq(GET(t.first_err), PANTS_EAI_NONAME);
    ck_assert_int_eq(GET(t.errors), 0);
    ck_assert_int_eq(GET(t.saw_in_call), 0);
    pt_engine_down(e);
}
END_TEST

/* A UDP socket on 127.0.0.1 that never answers: a silent name server. */
static int silent_dns(char *addr, size_t len)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t slen = sizeof(sin);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &slen), 0);
    snprintf(addr, len, "127.0.0.1:%u", ntohs(sin.sin_port));
    return fd;
}

START_TEST(connect_dns_timeout)
{
    char dns[64];
    int udp = silent_dns(dns, sizeof(dns));
    pants_engine_options_t o = {.threads = 1, .dns_server = dns, .dns_timeout_ms = 200};
    pants_engine_t *e = engine_up(&o);
    struct conn_test t = {0};
    char query[512];
    long long start = now_ms();

    ck_assert_int_eq(ct_connect(e, &ct_cb, &t, "pants-test.example:80"), 0);
    ck_assert(pt_wait(&t.closes, WAIT_MS));
    ck_assert_int_eq(GET(t.connect_errs), 1);
    ck_assert_msg(GET(t.first_err) == PANTS_EAI_TIMEOUT, "got %d (%s)", GET(t.first_err),
                  pants_strerror(GET(t.first_err)));
    ck_assert_msg(t.err_at_ms - start >= 150 && t.err_at_ms - start < 8000, "took %lld ms",
                  t.err_at_ms - start);
    ck_assert_int_eq(GET(t.errors), 0);
    /* The question did go to our silent server (and nowhere else). */
    ck_assert_int_gt(recv(udp, query, sizeof(query), MSG_DONTWAIT), 12);
    close(udp);
    pt_engine_down(e);
}
END_TEST

/* A name the (fake, local) name server knows: resolved, connected. */
START_TEST(connect_by_dns_name)
{
    struct pt_dns dns;
    char server[64], addr[128], name[160];
    pants_engine_options_t o = {.threads = 1, .dns_server = server, .dns_timeout_ms = 3000};
    pants_engine_t *e;
    struct conn_test t = {0};

    pt_dns_start(&dns, 0, server, sizeof(server));
    e = engine_up(&o);
    serve(e, F_INET, &echo_cb, NULL, addr, sizeof(addr));
    snprintf(name, sizeof(name), "%s%s", _i == 0 ? "svc.test" : "nx.test", strrchr(addr, ':'));
    ck_assert_int_eq(ct_connect(e, &ct_cb, &t, name), 0);
    ck_assert(pt_wait(&t.closes, WAIT_MS));
    if (_i == 0) {
        ck_assert_int_eq(GET(t.connects), 1);
        ck_assert_int_eq(GET(t.connect_errs), 0);
    } else { /* NXDOMAIN */
        ck_assert_int_eq(GET(t.connects), 0);
        ck_assert_msg(GET(t.first_err) == PANTS_EAI_NONAME, "got %d (%s)", GET(t.first_err),
                      pants_strerror(GET(t.first_err)));
    }
    ck_assert_int_ge(__atomic_load_n(&dns.queries_a, __ATOMIC_SEQ_CST), 1);
    pt_engine_down(e);
    pt_dns_stop(&dns);
}
END_TEST

/* A name server option that is no address leaves evdns with no server: a
 * lookup fails at once instead of waiting forever. */
START_TEST(connect_without_name_server)
{
    pants_engine_options_t o = {.threads = 1, .dns_server = "not-an-address", .dns_timeout_ms = 3000};
    pants_engine_t *e = engine_up(&o);
    struct conn_test t = {0};
    long long start = now_ms();

    ck_assert_int_eq(ct_connect(e, &ct_cb, &t, "pants-test.example:80"), 0);
    ck_assert(pt_wait(&t.closes, WAIT_MS));
    ck_assert_int_eq(GET(t.first_err), PANTS_EAI_FAIL);
    ck_assert_msg(t.err_at_ms - start < 2000, "took %lld ms", t.err_at_ms - start);
    pt_engine_down(e);
}
END_TEST

/* Names under .localhost are the loopback (RFC 6761): no query goes out. */
START_TEST(connect_dot_localhost)
{
    char dns[64], addr[128], name[160], query[512];
    int udp = silent_dns(dns, sizeof(dns));
    pants_engine_options_t o = {.threads = 1, .dns_server = dns, .dns_timeout_ms = 3000};
    pants_engine_t *e = engine_up(&o);
    struct conn_test t = {0};

    serve(e, F_INET, &echo_cb, NULL, addr, sizeof(addr));
    snprintf(name, sizeof(name), "app.localhost%s", strrchr(addr, ':'));
    ck_assert_int_eq(ct_connect(e, &ct_cb, &t, name), 0);
    ck_assert(pt_wait(&t.closes, WAIT_MS));
    ck_assert_int_eq(GET(t.connects), 1);
    ck_assert_int_eq(recv(udp, query, sizeof(query), MSG_DONTWAIT), -1);
    close(udp);
    pt_engine_down(e);
}
END_TEST

static void connect_and_close_task(void *arg)
{
    struct ct_start *c = arg;

    ct_start_task(c);
    pants_stream_close(c->s); /* before the lookup even started */
}

START_TEST(connect_close_while_resolving)
{
    char dns[64];
    int udp = silent_dns(dns, sizeof(dns));
    pants_engine_options_t o = {.threads = 1, .dns_server = dns, .dns_timeout_ms = 5000};
    pants_engine_t *e = engine_up(&o);
    struct conn_test t = {0};
    struct ct_start c = {&t, &ct_cb, "pants-test.example:80", NULL, 0};
    char query[512];

    if (_i == 0) {
        pt_on_loop(pants_engine_loop(e, 0), ct_start_task, &c);
        ck_assert_int_eq(c.rc, 0);
        ck_assert_int_eq(pants_stream_family(c.s), AF_UNSPEC);
        for (int i = 0; i < 500 && recv(udp, query, sizeof(query), MSG_DONTWAIT) <= 0; i++)
            pt_sleep_ms(10); /* the query is out: the lookup is in flight */
        pt_on_loop(pants_engine_loop(e, 0), close_task, c.s);
    } else {
        pt_on_loop(pants_engine_loop(e, 0), connect_and_close_task, &c);
        ck_assert_int_eq(c.rc, 0);
    }
    ck_assert(pt_wait(&t.closes, WAIT_MS));
    pt_sleep_ms(50);
    ck_assert_int_eq(GET(t.connect_errs), 0);
    ck_assert_int_eq(GET(t.closes), 1);
    close(udp);
    pt_engine_down(e);
}
END_TEST

START_TEST(stop_while_resolving)
{
    char dns[64];
    int udp = silent_dns(dns, sizeof(dns));
    pants_engine_options_t o = {.threads = 1, .dns_server = dns, .dns_timeout_ms = 5000};
    pants_engine_t *e = engine_up(&o);
    struct conn_test t = {0};
    long long start;

    ck_assert_int_eq(ct_connect(e, &ct_cb, &t, "pants-test.example:80"), 0);
    start = now_ms();
    pants_engine_stop(e);
    ck_assert_int_eq(pants_engine_join(e), 0);
    ck_assert_int_lt(now_ms() - start, 4000); /* not the 5 s of the lookup */
    ck_assert_int_eq(GET(t.closes), 1);
    ck_assert_int_eq(GET(t.connect_errs), 0);
    pants_engine_free(e);
    close(udp);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

/* Lookups in flight when an engine that never ran is freed: no callback,
 * nothing left behind, whichever goes first, stream or resolver. */
START_TEST(resolving_when_never_run)
{
    char dns[64];
    int udp = silent_dns(dns, sizeof(dns));
    pants_engine_options_t o = {.threads = 1, .dns_server = dns, .dns_timeout_ms = 5000};
    pants_engine_t *e = pants_engine_new(&o);
    struct conn_test t = {0};
    pants_stream_t *s[3];

    ck_assert_ptr_nonnull(e);
    for (int i = 0; i < 2; i++) {
        s[i] = pants_stream_new(pants_engine_loop(e, 0), &ct_cb, &t);
        ck_assert_ptr_nonnull(s[i]);
    }
    ck_assert_int_eq(pants_stream_connect(s[0], "first.example:80"), 0); /* the resolver starts here */
    ck_assert_int_eq(pants_stream_connect(s[1], "second.example:80"), 0);
    pants_stream_close(s[1]);                                     /* cancelled before run */
    s[2] = pants_stream_new(pants_engine_loop(e, 0), &ct_cb, &t); /* after the resolver */
    ck_assert_int_eq(pants_stream_connect(s[2], "third.example:80"), 0);
    pants_engine_free(e);
    ck_assert_int_eq(GET(t.connect_errs), 0);
    ck_assert_int_eq(GET(t.closes), 0);
    close(udp);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

START_TEST(connect_localhost)
{
    char dns[64];
    int udp = silent_dns(dns, sizeof(dns)); /* should the hosts file miss */
    pants_engine_options_t o = {.threads = 2, .dns_server = dns, .dns_timeout_ms = 500};
    pants_engine_t *e = engine_up(&o);
    struct echo_client c;
    char addr[128], name[64];

    serve(e, F_INET, &echo_cb, NULL, addr, sizeof(addr));
    snprintf(name, sizeof(name), "localhost%s", strrchr(addr, ':'));
    ec_init(&c, name, 7, NULL);
    pt_on_loop(pants_engine_loop(e, 1), ec_start, &c);
    ck_assert(pt_wait(&c.closed, WAIT_MS));
    check_echoed(&c);
    close(udp);
    pt_engine_down(e);
}
END_TEST

/* end() while the connection is not up yet: queued data goes out once it
 * is, and if it never comes up, on_close must follow all the same. */
struct end_early {
    struct conn_test t; /* callbacks' record */
    const char *addr;   /* where to connect */
    int rc[3];          /* write, connect, end */
};

static void et_on_connect(pants_stream_t *s)
{
    struct conn_test *t = pants_stream_data(s);

    INC(t->connects);
}

static void et_on_connect_error(pants_stream_t *s, int err)
{
    struct conn_test *t = pants_stream_data(s);

    SET(t->first_err, err);
    INC(t->connect_errs); /* and nothing else: end() was asked already */
}

static void end_early_task(void *arg)
{
    struct end_early *x = arg;
    pants_stream_callbacks_t cb = ct_cb;
    pants_stream_t *s;

    cb.on_connect = et_on_connect; /* ct_cb's would close: the end must do it */
    cb.on_connect_error = et_on_connect_error;
    s = pants_stream_new(pants_loop_current(), &cb, &x->t);
    x->rc[0] = pants_stream_write(s, "queued", 6);
    x->rc[1] = pants_stream_connect(s, x->addr);
    x->rc[2] = pants_stream_end(s);
}

START_TEST(end_while_connecting_delivers)
{
    pants_engine_t *e = engine_up2();
    struct collect got = {.len = 0};
    struct end_early x = {.addr = NULL};
    char addr[128];

    serve(e, (enum family)_i, &collect_cb, &got, addr, sizeof(addr));
    x.addr = addr;
    pt_on_loop(pants_engine_loop(e, 0), end_early_task, &x);
    ck_assert_int_eq(x.rc[0], 0);
    ck_assert_int_eq(x.rc[1], 0);
    ck_assert_int_eq(x.rc[2], 0);
    ck_assert(pt_wait(&x.t.closes, WAIT_MS));
    ck_assert(pt_wait_count(&got.len, 6, WAIT_MS));
    ck_assert_mem_eq(got.buf, "queued", 6);
    ck_assert_int_eq(GET(x.t.connect_errs), 0);
    ck_assert_int_eq(GET(x.t.errors), 0);
    pt_engine_down(e);
}
END_TEST

START_TEST(end_while_connecting_fails)
{
    pants_engine_t *e = engine_up2();
    struct end_early x = {.addr = NULL};
    char dead[64];
    int holder = -1;

    if (_i == 0)
        dead_addr(dead, sizeof(dead), &holder);
    else
        snprintf(dead, sizeof(dead), "no-such-host.invalid:80");
    x.addr = dead;
    pt_on_loop(pants_engine_loop(e, 0), end_early_task, &x);
    ck_assert_int_eq(x.rc[1], 0);
    ck_assert_int_eq(x.rc[2], 0);
    ck_assert_msg(pt_wait(&x.t.closes, WAIT_MS), "ended, the connect failed, and it never closed");
    ck_assert_int_eq(GET(x.t.connects), 0);
    ck_assert_int_le(GET(x.t.connect_errs), 1);
    ck_assert_int_eq(GET(x.t.errors), 0);
    if (holder >= 0)
        close(holder);
    pt_engine_down(e);
}
END_TEST

/* ---- Addresses of a connected stream ----------------------------------- */

struct addr_test {
    int rc_before[2];    /* remote/local before connecting */
    int rc[2];           /* remote/local once connected */
    pants_addr_t remote; /* the peer */
    int family;          /* pants_stream_family */
    int connected;       /* is_connected in on_connect */
    int done;            /* recorded */
};

static void at_on_connect(pants_stream_t *s)
{
    struct addr_test *t = pants_stream_data(s);
    pants_addr_t local;

    t->rc[0] = pants_stream_remote_address(s, &t->remote);
    t->rc[1] = pants_stream_local_address(s, &local);
    t->family = pants_stream_family(s);
    t->connected = pants_stream_is_connected(s);
    SET(t->done, 1);
    pants_stream_close(s);
}

static const pants_stream_callbacks_t at_cb = {.on_connect = at_on_connect};

static void at_before_task(void *arg)
{
    struct addr_test *t = arg;
    pants_stream_t *s = pants_stream_new(pants_loop_current(), NULL, NULL);
    pants_addr_t a;

    t->rc_before[0] = pants_stream_remote_address(s, &a);
    t->rc_before[1] = pants_stream_local_address(s, &a);
    pants_stream_close(s);
}

START_TEST(stream_addresses)
{
    static const int families[F_COUNT] = {AF_INET, AF_INET6, AF_UNIX};
    pants_engine_t *e = engine_up2();
    struct addr_test t = {0};
    char addr[128], remote[128];

    serve(e, (enum family)_i, &echo_cb, NULL, addr, sizeof(addr));
    pt_on_loop(pants_engine_loop(e, 0), at_before_task, &t);
    ck_assert_int_eq(t.rc_before[0], -ENOTCONN);
    ck_assert_int_eq(t.rc_before[1], -ENOTCONN);
    client(e, &at_cb, &t, addr);
    ck_assert(pt_wait(&t.done, WAIT_MS));
    ck_assert_int_eq(t.rc[0], 0);
    ck_assert_int_eq(t.rc[1], 0);
    ck_assert_int_eq(t.family, families[_i]);
    ck_assert_int_eq(t.connected, 1);
    ck_assert_int_eq(pants_addr_format(&t.remote, remote, sizeof(remote)), 0);
    ck_assert_str_eq(remote, addr);
    pt_engine_down(e);
}
END_TEST

/* ---- Posting, references ----------------------------------------------- */

struct post_test {
    struct echo_client c; /* an echo client, also the stream's data */
    int connected;        /* on_connect ran */
    int ran;              /* the posted function ran */
    int on_own_loop;      /* ... on the stream's loop */
    int write_rc;         /* a write from it */
};

static void ping_fn(pants_stream_t *s, void *arg)
{
    struct post_test *p = arg;

    p->on_own_loop = pants_loop_current() == pants_stream_loop(s);
    p->write_rc = pants_stream_write(s, p->c.msg, p->c.len);
    INC(p->ran);
}

static void quiet_on_connect(pants_stream_t *s)
{
    struct post_test *p = pants_stream_data(s);

    SET(p->connected, 1); /* the test posts the message */
}

START_TEST(post_runs_on_loop)
{
    pants_engine_t *e = engine_up2();
    pants_stream_callbacks_t cb = ec_cb;
    struct post_test p;
    pants_stream_t *s;
    char addr[128];

    serve(e, (enum family)_i, &echo_cb, NULL, addr, sizeof(addr));
    ec_init(&p.c, addr, 3, NULL);
    p.connected = p.ran = p.on_own_loop = p.write_rc = 0;
    cb.on_connect = quiet_on_connect;
    s = client(e, &cb, &p, addr);
    ck_assert(pt_wait(&p.connected, WAIT_MS));
    ck_assert_int_eq(pants_stream_post(s, ping_fn, &p), 0);
    ck_assert(pt_wait(&p.c.closed, WAIT_MS)); /* the echo came back, the client closed */
    ck_assert_int_eq(GET(p.ran), 1);
    ck_assert_int_eq(p.on_own_loop, 1);
    ck_assert_int_eq(p.write_rc, 0);
    check_echoed(&p.c);
    ck_assert_int_eq(pants_stream_post(NULL, ping_fn, &p), -EINVAL);
    pt_engine_down(e);
}
END_TEST

static void count_fn(pants_stream_t *s, void *arg)
{
    (void)s;
    INC(*(int *)arg);
}

START_TEST(post_after_close_dropped)
{
    pants_engine_t *e = engine_up2();
    struct closed_flag f = {0};
    int ran = 0, before_ran = 0;
    pants_stream_t *s = pants_stream_new(pants_engine_loop(e, 0), &flag_cb, &f);

    ck_assert_ptr_nonnull(s);
    pants_stream_ref(s);
    ck_assert_int_eq(pants_stream_post(s, count_fn, &before_ran), 0);
    ck_assert(pt_wait(&before_ran, WAIT_MS)); /* open: it runs */
    pt_on_loop(pants_engine_loop(e, 0), close_task, s);
    ck_assert(pt_wait(&f.closed, WAIT_MS));
    ck_assert_int_eq(pants_stream_post(s, count_fn, &ran), 0);
    ck_assert_ptr_eq(pants_stream_loop(s), pants_engine_loop(e, 0)); /* the memory is still there */
    pt_on_loop(pants_engine_loop(e, 0), nothing, NULL);              /* after the post */
    pt_sleep_ms(50);
    ck_assert_int_eq(GET(ran), 0);
    ck_assert_int_eq(GET(f.closed), 1);
    ck_assert_int_eq(pants_live_objects(), 2); /* the engine and s */
    pants_stream_unref(s);
    pt_engine_down(e);
}
END_TEST

struct ref_test {
    pants_stream_t *s; /* published in on_close */
    int closed;        /* on_close ran */
    int data_ok;       /* after on_close: data still readable */
    int connected;     /* ... is_connected */
    size_t pending;    /* ... pending */
};

static void ref_on_close(pants_stream_t *s)
{
    struct ref_test *r = pants_stream_data(s);

    pants_stream_ref(s); /* keep it past on_close */
    r->s = s;
    SET(r->closed, 1);
}

static const pants_stream_callbacks_t ref_cb = {.on_close = ref_on_close};

/* On the loop, after on_close has returned: the memory is still there. */
static void ref_inspect(void *arg)
{
    struct ref_test *r = arg;

    r->data_ok = pants_stream_data(r->s) == r;
    r->connected = pants_stream_is_connected(r->s);
    r->pending = pants_stream_pending(r->s);
}

START_TEST(ref_keeps_memory_after_close)
{
    pants_engine_t *e = engine_up2();
    struct ref_test r = {0};
    char addr[128];

    serve(e, F_INET, &echo_cb, NULL, addr, sizeof(addr));
    pt_on_loop(pants_engine_loop(e, 0), close_task, client(e, &ref_cb, &r, addr));
    ck_assert(pt_wait(&r.closed, WAIT_MS));
    pt_on_loop(pants_engine_loop(e, 0), ref_inspect, &r);
    ck_assert_int_eq(r.data_ok, 1);
    ck_assert_int_eq(r.connected, 0);
    ck_assert_uint_eq(r.pending, 0);
    ck_assert_int_eq(pants_live_objects(), 3); /* engine, server, r.s */
    pants_stream_unref(r.s);
    pt_engine_down(e);
}
END_TEST

/* ---- Thread misuse ----------------------------------------------------- */

START_TEST(wrong_thread_is_eperm)
{
    pants_engine_t *e = engine_up2();
    struct closed_flag f = {0};
    char addr[128];
    pants_stream_t *s;

    serve(e, F_INET, &echo_cb, NULL, addr, sizeof(addr));
    pt_on_loop(pants_engine_loop(e, 0), nothing, NULL);          /* loop 0 surely runs now */
    s = pants_stream_new(pants_engine_loop(e, 0), &flag_cb, &f); /* any thread may */
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(pants_stream_connect(s, addr), -EPERM);
    ck_assert_int_eq(pants_stream_write(s, "x", 1), -EPERM);
    ck_assert_int_eq(pants_stream_write_file(s, 0, 0, 0), -EPERM);
    ck_assert_int_eq(pants_stream_end(s), -EPERM);
    ck_assert_int_eq(pants_stream_read_any(s), -EPERM);
    ck_assert_int_eq(pants_stream_read_until(s, "\n", 1), -EPERM);
    ck_assert_int_eq(pants_stream_read_exact(s, 4), -EPERM);
    ck_assert_int_eq(pants_stream_read_regex(s, "x"), -EPERM);
    ck_assert_int_eq(pants_stream_set_read_limit(s, 10), -EPERM);
    ck_assert_int_eq(pants_stream_set_connect_timeout(s, 10), -EPERM);
    ck_assert_int_eq(pants_stream_pause_reading(s), -EPERM);
    ck_assert_int_eq(pants_stream_resume_reading(s), -EPERM);
    pt_sleep_ms(50);
    ck_assert_int_eq(GET(f.closed), 0); /* none of it acted */
    pants_stream_close(s);              /* handed to the loop, not lost */
    ck_assert(pt_wait(&f.closed, WAIT_MS));
    ck_assert_int_eq(GET(f.errors), 0);
    pt_engine_down(e);
}
END_TEST

/* ---- Engine stop with megabytes queued --------------------------------- */

#define STOP_BYTES (8 * MIB)

struct stop_test {
    int queued;       /* the server queued everything */
    size_t pending;   /* pending() right after */
    int closes;       /* the connection's on_close */
    const char *addr; /* for the reader */
    long got;         /* bytes the reader read before EOF */
    int pattern_ok;   /* and they were the pattern */
};

static void stop_on_connect(pants_stream_t *s)
{
    struct stop_test *t = conn_ctx(s);
    unsigned char *chunk = malloc(MIB);

    for (size_t off = 0; off < STOP_BYTES; off += MIB) {
        fill_pattern(chunk, off, MIB);
        pants_stream_write(s, chunk, MIB);
    }
    free(chunk);
    t->pending = pants_stream_pending(s);
    SET(t->queued, 1);
}

static void stop_on_close(pants_stream_t *s)
{
    struct stop_test *t = conn_ctx(s);

    INC(t->closes);
}

static const pants_stream_callbacks_t stop_cb = {.on_connect = stop_on_connect, .on_close = stop_on_close};

/* Reads slowly: small reads with pauses, checking the pattern. */
static void *slow_reader(void *arg)
{
    struct stop_test *t = arg;
    unsigned char buf[32768];
    int fd = plain_connect(t->addr);
    long total = 0;
    int ok = fd >= 0;

    while (fd >= 0) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n <= 0) {
            ok = ok && n == 0;
            break;
        }
        ok = ok && is_pattern(buf, (size_t)total, (size_t)n);
        total += n;
        if ((total / (long)sizeof(buf)) % 16 == 0)
            pt_sleep_ms(2);
    }
    if (fd >= 0)
        close(fd);
    t->got = total;
    SET(t->pattern_ok, ok);
    return NULL;
}

START_TEST(stop_flushes_queued)
{
    pants_engine_options_t o = {.threads = 2, .shutdown_timeout_ms = 20000};
    pants_engine_t *e = engine_up(&o);
    struct stop_test t = {0};
    char addr[128];
    pthread_t reader;

    serve(e, (enum family)_i, &stop_cb, &t, addr, sizeof(addr));
    t.addr = addr;
    ck_assert_int_eq(pthread_create(&reader, NULL, slow_reader, &t), 0);
    ck_assert(pt_wait(&t.queued, WAIT_MS));
    pants_engine_stop(e);
    ck_assert_int_eq(pants_engine_join(e), 0);
    ck_assert_int_eq(GET(t.closes), 1);
    pthread_join(reader, NULL);
    ck_assert_msg(t.pending > 0, "nothing was left queued: the test proves nothing");
    ck_assert_int_eq(t.got, STOP_BYTES);
    ck_assert(GET(t.pattern_ok));
    pants_engine_free(e);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

/* A peer that never reads: stop flushes for shutdown_timeout_ms, then the
 * stream is closed anyway and run/join still return. */
START_TEST(stop_gives_up_after_timeout)
{
    pants_engine_options_t o = {.threads = 2, .shutdown_timeout_ms = 300};
    pants_engine_t *e = engine_up(&o);
    struct stop_test t = {0};
    char addr[128];
    long long start;
    int fd;

    serve(e, (enum family)_i, &stop_cb, &t, addr, sizeof(addr));
    fd = plain_connect(addr);
    ck_assert_int_ge(fd, 0);
    ck_assert(pt_wait(&t.queued, WAIT_MS));
    start = now_ms();
    pants_engine_stop(e);
    ck_assert_int_eq(pants_engine_join(e), 0);
    ck_assert_int_lt(now_ms() - start, 5000);
    ck_assert_int_eq(GET(t.closes), 1);
    ck_assert_uint_gt(t.pending, 0);
    close(fd);
    pants_engine_free(e);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

/* ---- The socket, for options ------------------------------------------ */

struct fd_test {
    int fd_ok[2];   /* server connection / client: pants_stream_fd was a socket */
    int nodelay[2]; /* TCP_NODELAY as read through it (-1: not TCP) */
    int seen[2];    /* on_connect ran */
    int before;     /* pants_stream_fd before connect */
};

static void record_fd(pants_stream_t *s, struct fd_test *t, int side)
{
    int fd = pants_stream_fd(s), type = 0, on = -1;
    socklen_t len = sizeof(type);

    t->fd_ok[side] = fd >= 0 && getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
    len = sizeof(on);
    if (pants_stream_family(s) == AF_UNIX || getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &len) < 0)
        on = -1;
    t->nodelay[side] = on;
    SET(t->seen[side], 1);
}

static void fd_server_on_connect(pants_stream_t *s)
{
    record_fd(s, conn_ctx(s), 0);
}

static void fd_client_on_connect(pants_stream_t *s)
{
    record_fd(s, pants_stream_data(s), 1);
}

static void fd_client_start(void *arg)
{
    struct client_spec *c = arg;
    struct fd_test *t = c->data;

    c->s = pants_stream_new(pants_loop_current(), c->cb, c->data);
    t->before = pants_stream_fd(c->s);
    c->rc = pants_stream_connect(c->s, c->addr);
}

/* pants_stream_fd gives both ends' sockets, with TCP_NODELAY on for TCP. */
START_TEST(stream_fd_for_options)
{
    pants_engine_t *e = engine_up2();
    pants_stream_callbacks_t scb = {.on_connect = fd_server_on_connect};
    pants_stream_callbacks_t ccb = {.on_connect = fd_client_on_connect};
    struct fd_test t = {.before = 0};
    struct client_spec c = {e, &ccb, &t, NULL, NULL, 0};
    char addr[128];

    serve(e, (enum family)_i, &scb, &t, addr, sizeof(addr));
    c.addr = addr;
    pt_on_loop(pants_engine_loop(e, 0), fd_client_start, &c);
    ck_assert_int_eq(c.rc, 0);
    ck_assert(pt_wait(&t.seen[0], WAIT_MS));
    ck_assert(pt_wait(&t.seen[1], WAIT_MS));
    ck_assert_int_eq(t.before, -1); /* no socket before connect */
    for (int side = 0; side < 2; side++) {
        ck_assert_int_eq(t.fd_ok[side], 1);
        ck_assert_int_eq(t.nodelay[side], _i == F_UNIX ? -1 : 1);
    }
    ck_assert_int_eq(pants_stream_fd(NULL), -1);
    pants_loop_post(pants_stream_loop(c.s), close_task, c.s);
    pt_engine_down(e);
}
END_TEST

/* ---- Connect timeout ---------------------------------------------------- */

/* A TCP listener on 127.0.0.1 whose accept queue is full, so the kernel
 * drops every further SYN: a connect to it neither succeeds nor fails.
 * Keep *holder open (and fills[] connected) while it is needed. */
static void full_listener(char *addr, size_t len, int *holder, int fills[8], int *nfills)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t slen = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    ck_assert_int_eq(listen(fd, 0), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &slen), 0);
    snprintf(addr, len, "127.0.0.1:%u", ntohs(sin.sin_port));
    *holder = fd;
    *nfills = 0;
    for (int i = 0; i < 8; i++) {
        struct pollfd p = {.events = POLLOUT};
        int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        ck_assert_int_ge(c, 0);
        if (connect(c, (struct sockaddr *)&sin, sizeof(sin)) < 0)
            ck_assert_int_eq(errno, EINPROGRESS);
        p.fd = c;
        if (poll(&p, 1, 200) == 0) { /* this SYN was dropped: the queue is full */
            close(c);
            return;
        }
        fills[(*nfills)++] = c;
    }
    ck_abort_msg("the accept queue of a backlog-0 listener never filled");
}

struct timeout_start {
    struct conn_test *t; /* the callbacks' record */
    const pants_stream_callbacks_t *cb; /* the client's callbacks */
    const char *addr;    /* where to connect */
    uint64_t ms;         /* the bound */
    bool after;          /* set the bound after connect (else before) */
    pants_stream_t *s;   /* the client */
    int rc[2];           /* set_connect_timeout, connect */
};

static void timeout_start_task(void *arg)
{
    struct timeout_start *c = arg;

    c->s = pants_stream_new(pants_loop_current(), c->cb, c->t);
    c->t->err_at_ms = 0;
    if (!c->after)
        c->rc[0] = pants_stream_set_connect_timeout(c->s, c->ms);
    c->rc[1] = pants_stream_connect(c->s, c->addr);
    if (c->after)
        c->rc[0] = pants_stream_set_connect_timeout(c->s, c->ms);
}

/* A connect that hangs gives on_connect_error(-ETIMEDOUT) after the bound,
 * and the stream can connect again (to a live server) afterwards; set
 * before the connect or while it is under way. */
START_TEST(connect_timeout_silent_peer)
{
    pants_engine_t *e = engine_up2();
    struct conn_test t = {0};
    char hung[64];
    int holder, fills[8], nfills;
    struct timeout_start c = {&t, &ct_cb, hung, 300, _i == 1, NULL, {1, 1}};
    long long start;

    full_listener(hung, sizeof(hung), &holder, fills, &nfills);
    serve(e, F_INET, &echo_cb, NULL, t.retry_addr, sizeof(t.retry_addr));
    start = now_ms();
    pt_on_loop(pants_engine_loop(e, 0), timeout_start_task, &c);
    ck_assert_int_eq(c.rc[0], 0);
    ck_assert_int_eq(c.rc[1], 0);
    ck_assert(pt_wait(&t.closes, WAIT_MS));
    ck_assert_int_eq(GET(t.connect_errs), 1);
    ck_assert_msg(GET(t.first_err) == -ETIMEDOUT, "got %d (%s)", GET(t.first_err),
                  pants_strerror(GET(t.first_err)));
    ck_assert_msg(t.err_at_ms - start >= 250 && t.err_at_ms - start < 5000, "took %lld ms",
                  t.err_at_ms - start);
    ck_assert_int_eq(t.retry_rc, 0);
    ck_assert_int_eq(GET(t.connects), 1); /* the retry, under the same bound, worked */
    ck_assert_int_eq(GET(t.errors), 0);
    for (int i = 0; i < nfills; i++)
        close(fills[i]);
    close(holder);
    pt_engine_down(e);
}
END_TEST

/* The bound covers the name lookup too. */
START_TEST(connect_timeout_while_resolving)
{
    char dns[64];
    int udp = silent_dns(dns, sizeof(dns));
    pants_engine_options_t o = {.threads = 1, .dns_server = dns, .dns_timeout_ms = 5000};
    pants_engine_t *e = engine_up(&o);
    struct conn_test t = {0};
    struct timeout_start c = {&t, &ct_cb, "pants-test.example:80", 200, false, NULL, {1, 1}};
    long long start = now_ms();

    pt_on_loop(pants_engine_loop(e, 0), timeout_start_task, &c);
    ck_assert_int_eq(c.rc[0], 0);
    ck_assert_int_eq(c.rc[1], 0);
    ck_assert(pt_wait(&t.closes, WAIT_MS));
    ck_assert_int_eq(GET(t.first_err), -ETIMEDOUT);
    ck_assert_msg(t.err_at_ms - start >= 150 && t.err_at_ms - start < 4000, "took %lld ms",
                  t.err_at_ms - start);
    ck_assert_int_eq(GET(t.connect_errs), 1);
    close(udp);
    pt_engine_down(e);
}
END_TEST

static void stay_on_connect(pants_stream_t *s)
{
    struct conn_test *t = pants_stream_data(s);

    INC(t->connects);
}

/* A connect that succeeds in time disarms the bound: the stream stays. */
START_TEST(connect_timeout_not_reached)
{
    pants_engine_t *e = engine_up2();
    pants_stream_callbacks_t cb = ct_cb;
    struct conn_test t = {0};
    char addr[128];
    pants_stream_t *s;

    cb.on_connect = stay_on_connect;
    serve(e, F_INET, &echo_cb, NULL, addr, sizeof(addr));
    struct timeout_start c = {&t, &cb, addr, 100, false, NULL, {1, 1}};
    pt_on_loop(pants_engine_loop(e, 0), timeout_start_task, &c);
    s = c.s;
    ck_assert_int_eq(c.rc[0], 0);
    ck_assert_int_eq(c.rc[1], 0);
    ck_assert(pt_wait(&t.connects, WAIT_MS));
    pt_sleep_ms(300);
    ck_assert_int_eq(GET(t.connect_errs), 0);
    ck_assert_int_eq(GET(t.closes), 0);
    pants_loop_post(pants_stream_loop(s), close_task, s);
    ck_assert(pt_wait(&t.closes, WAIT_MS));
    ck_assert_int_eq(pants_stream_set_connect_timeout(NULL, 10), -EINVAL);
    pt_engine_down(e);
}
END_TEST

/* ---- Pausing reads ------------------------------------------------------ */

struct pause_test {
    pants_stream_t *conn;   /* the server's connection (atomic) */
    int pause_at_connect;   /* pause in on_connect */
    int pause_after;        /* pause in the on_read that brings the count here (0: never) */
    int reads;              /* on_read calls */
    char got[256];          /* their frames, each followed by '|' */
    size_t total;           /* bytes read */
    int closes, errors;     /* on_close / on_error calls */
    int rc_closed[2];       /* pause/resume inside on_close */
};

static void pause_on_connect(pants_stream_t *s)
{
    struct pause_test *t = conn_ctx(s);

    pants_stream_read_until(s, "\n", 1);
    if (t->pause_at_connect)
        ck_assert_int_eq(pants_stream_pause_reading(s), 0);
    __atomic_store_n(&t->conn, s, __ATOMIC_SEQ_CST);
}

static void pause_on_read(pants_stream_t *s, const void *data, size_t len)
{
    struct pause_test *t = conn_ctx(s);
    size_t have = strlen(t->got);

    if (have + len + 2 < sizeof(t->got)) {
        memcpy(t->got + have, data, len);
        t->got[have + len] = '|';
        t->got[have + len + 1] = '\0';
    }
    __atomic_add_fetch(&t->total, len, __ATOMIC_SEQ_CST);
    if (INC(t->reads) == t->pause_after)
        pants_stream_pause_reading(s);
}

static void pause_on_error(pants_stream_t *s, int err)
{
    struct pause_test *t = conn_ctx(s);

    (void)err;
    INC(t->errors);
}

static void pause_on_close(pants_stream_t *s)
{
    struct pause_test *t = conn_ctx(s);

    t->rc_closed[0] = pants_stream_pause_reading(s);
    t->rc_closed[1] = pants_stream_resume_reading(s);
    INC(t->closes);
}

static const pants_stream_callbacks_t pause_cb = {
    .on_connect = pause_on_connect,
    .on_read = pause_on_read,
    .on_error = pause_on_error,
    .on_close = pause_on_close,
};

static void resume_fn(pants_stream_t *s, void *arg)
{
    (void)arg;
    pants_stream_resume_reading(s);
}

static pants_stream_t *pause_conn(struct pause_test *t)
{
    for (int i = 0; i < WAIT_MS / 5 && __atomic_load_n(&t->conn, __ATOMIC_SEQ_CST) == NULL; i++)
        pt_sleep_ms(5);
    ck_assert_ptr_nonnull(__atomic_load_n(&t->conn, __ATOMIC_SEQ_CST));
    return t->conn;
}

/* Paused from on_connect: nothing is read until resume, then every line in
 * order; pause and resume after close say -EPIPE. */
START_TEST(pause_then_resume)
{
    pants_engine_t *e = engine_up2();
    struct pause_test t = {.pause_at_connect = 1};
    char addr[128];
    int fd;

    serve(e, (enum family)_i, &pause_cb, &t, addr, sizeof(addr));
    fd = plain_connect(addr);
    ck_assert_int_ge(fd, 0);
    pause_conn(&t);
    ck_assert(plain_send(fd, "a\nbb\nccc\n", 9));
    pt_sleep_ms(200);
    ck_assert_int_eq(GET(t.reads), 0);
    ck_assert_int_eq(pants_stream_post(t.conn, resume_fn, NULL), 0);
    ck_assert(pt_wait_count(&t.reads, 3, WAIT_MS));
    ck_assert_str_eq(t.got, "a|bb|ccc|");
    close(fd);
    ck_assert(pt_wait(&t.closes, WAIT_MS));
    ck_assert_int_eq(t.rc_closed[0], -EPIPE);
    ck_assert_int_eq(t.rc_closed[1], -EPIPE);
    ck_assert_int_eq(GET(t.errors), 0);
    pt_engine_down(e);
}
END_TEST

/* A pause inside on_read holds the frames already buffered behind it. */
START_TEST(pause_inside_on_read)
{
    pants_engine_t *e = engine_up2();
    struct pause_test t = {.pause_after = 1};
    char addr[128];
    int fd;

    serve(e, (enum family)_i, &pause_cb, &t, addr, sizeof(addr));
    fd = plain_connect(addr);
    ck_assert_int_ge(fd, 0);
    pause_conn(&t);
    ck_assert(plain_send(fd, "1\n2\n3\n", 6)); /* one segment: all buffered at once */
    ck_assert(pt_wait(&t.reads, WAIT_MS));
    pt_sleep_ms(200);
    ck_assert_int_eq(GET(t.reads), 1);
    ck_assert_int_eq(pants_stream_post(t.conn, resume_fn, NULL), 0);
    ck_assert(pt_wait_count(&t.reads, 3, WAIT_MS));
    ck_assert_str_eq(t.got, "1|2|3|");
    close(fd);
    ck_assert(pt_wait(&t.closes, WAIT_MS));
    pt_engine_down(e);
}
END_TEST

/* Paused, the server does not read: the peer's sends stop at the kernel's
 * buffers (back-pressure).  Resumed, every byte arrives. */
START_TEST(pause_pushes_back)
{
    pants_engine_t *e = engine_up2();
    struct pause_test t = {.pause_at_connect = 1};
    char addr[128], chunk[4096];
    size_t sent = 0, off = 0;
    int fd;

    memset(chunk, 'x', sizeof(chunk));
    chunk[sizeof(chunk) - 1] = '\n';
    serve(e, (enum family)_i, &pause_cb, &t, addr, sizeof(addr));
    fd = plain_connect(addr);
    ck_assert_int_ge(fd, 0);
    pause_conn(&t);
    for (int idle = 0; idle < 20 && sent < 256u * 1024 * 1024;) {
        ssize_t n = send(fd, chunk + off, sizeof(chunk) - off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            sent += (size_t)n;
            off = (off + (size_t)n) % sizeof(chunk);
            idle = 0;
            continue;
        }
        ck_assert_int_eq(errno, EAGAIN);
        idle++;
        pt_sleep_ms(10);
    }
    ck_assert_msg(sent < 256u * 1024 * 1024, "the paused stream kept reading");
    ck_assert_int_eq(GET(t.reads), 0);
    ck_assert_int_eq(pants_stream_post(t.conn, resume_fn, NULL), 0);
    if (off != 0) { /* finish the last line, now that the server reads */
        ck_assert(plain_send(fd, chunk + off, sizeof(chunk) - off));
        sent += sizeof(chunk) - off;
    }
    ck_assert(pt_wait_count(&t.reads, (int)(sent / sizeof(chunk)), WAIT_MS));
    ck_assert_uint_eq(__atomic_load_n(&t.total, __ATOMIC_SEQ_CST), sent - sent / sizeof(chunk));
    close(fd);
    ck_assert(pt_wait(&t.closes, WAIT_MS));
    pt_engine_down(e);
}
END_TEST

/* The peer's orderly close is seen only after resume, once the lines
 * before it were delivered; a reset closes a paused stream at once. */
START_TEST(pause_and_peer_close)
{
    pants_engine_t *e = engine_up2();
    struct pause_test t = {.pause_at_connect = 1};
    char addr[128];
    int fd;

    serve(e, F_INET, &pause_cb, &t, addr, sizeof(addr));
    fd = plain_connect(addr);
    ck_assert_int_ge(fd, 0);
    pause_conn(&t);
    ck_assert(plain_send(fd, "last\n", 5));
    if (_i == 0) {
        ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
        pt_sleep_ms(200);
        ck_assert_int_eq(GET(t.closes), 0);
        ck_assert_int_eq(pants_stream_post(t.conn, resume_fn, NULL), 0);
        ck_assert(pt_wait(&t.closes, WAIT_MS));
        ck_assert_int_eq(GET(t.reads), 1);
        ck_assert_str_eq(t.got, "last|");
    } else {
        struct linger lg = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        close(fd);
        fd = -1;
        ck_assert(pt_wait(&t.closes, WAIT_MS)); /* without a resume */
        ck_assert_int_eq(GET(t.reads), 0);
    }
    ck_assert_int_eq(GET(t.errors), 0);
    if (fd >= 0)
        close(fd);
    pt_engine_down(e);
}
END_TEST

/* ---- The suite --------------------------------------------------------- */

Suite *stream_suite(void)
{
    Suite *s = suite_create("stream");
    TCase *tc;

    tc = tcase_create("echo");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, echo_pants_one, 0, F_COUNT);
    tcase_add_loop_test(tc, echo_pants_sequential, 0, F_COUNT);
    tcase_add_loop_test(tc, echo_pants_concurrent, 0, F_COUNT);
    tcase_add_loop_test(tc, echo_plain_one, 0, F_COUNT);
    tcase_add_loop_test(tc, echo_plain_sequential, 0, F_COUNT);
    tcase_add_loop_test(tc, echo_plain_concurrent, 0, F_COUNT);
    tcase_add_loop_test(tc, stream_addresses, 0, F_COUNT);
    tcase_add_loop_test(tc, echo_pants_large, 0, F_COUNT);
    tcase_add_test(tc, echo_pants_abstract);
    tcase_add_loop_test(tc, stream_fd_for_options, 0, F_COUNT);
    suite_add_tcase(s, tc);

    tc = tcase_create("write");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, end_delivers_queued);
    tcase_add_test(tc, close_drops_queued);
    tcase_add_loop_test(tc, on_write_after_drain, 0, F_COUNT);
    tcase_add_loop_test(tc, write_before_connect_before_run, 0, F_COUNT);
    tcase_add_loop_test(tc, write_while_connecting, 0, F_COUNT);
    tcase_add_loop_test(tc, write_file_spans, 0, sizeof(file_cases) / sizeof(file_cases[0]));
    tcase_add_test(tc, write_file_errors);
    tcase_add_test(tc, write_file_dropped_frees_fd);
    suite_add_tcase(s, tc);

    tc = tcase_create("close");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, close_inside_on_read);
    tcase_add_test(tc, end_inside_on_read);
    tcase_add_loop_test(tc, half_close_lines, 0, F_COUNT);
    tcase_add_loop_test(tc, half_close_big_reply, 0, F_COUNT);
    tcase_add_loop_test(tc, peer_reset_is_not_an_error, 0, F_COUNT);
    suite_add_tcase(s, tc);

    tc = tcase_create("connect");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, connect_refused_then_retry);
    tcase_add_test(tc, connect_refused_without_handler_closes);
    tcase_add_test(tc, connect_unix_missing);
    tcase_add_test(tc, connect_malformed);
    tcase_add_test(tc, connect_state_errors);
    tcase_add_test(tc, connect_invalid_name);
    tcase_add_test(tc, connect_dns_timeout);
    tcase_add_loop_test(tc, connect_close_while_resolving, 0, 2);
    tcase_add_test(tc, stop_while_resolving);
    tcase_add_test(tc, connect_localhost);
    tcase_add_loop_test(tc, connect_by_dns_name, 0, 2);
    tcase_add_test(tc, connect_dot_localhost);
    tcase_add_test(tc, connect_without_name_server);
    tcase_add_test(tc, resolving_when_never_run);
    tcase_add_loop_test(tc, end_while_connecting_delivers, 0, F_COUNT);
    tcase_add_loop_test(tc, end_while_connecting_fails, 0, 2);
    tcase_add_loop_test(tc, connect_timeout_silent_peer, 0, 2);
    tcase_add_test(tc, connect_timeout_while_resolving);
    tcase_add_test(tc, connect_timeout_not_reached);
    suite_add_tcase(s, tc);

    tc = tcase_create("pause");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, pause_then_resume, 0, F_COUNT);
    tcase_add_loop_test(tc, pause_inside_on_read, 0, F_COUNT);
    tcase_add_loop_test(tc, pause_pushes_back, 0, F_COUNT);
    tcase_add_loop_test(tc, pause_and_peer_close, 0, 2);
    suite_add_tcase(s, tc);

    tc = tcase_create("threads");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, post_runs_on_loop, 0, F_COUNT);
    tcase_add_test(tc, post_after_close_dropped);
    tcase_add_test(tc, ref_keeps_memory_after_close);
    tcase_add_test(tc, wrong_thread_is_eperm);
    tcase_add_loop_test(tc, stop_flushes_queued, 0, F_COUNT);
    tcase_add_loop_test(tc, stop_gives_up_after_timeout, 0, F_COUNT);
    suite_add_tcase(s, tc);
    return s;
}
