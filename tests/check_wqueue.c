/* check_wqueue.c -- the I/O core: the write queue, its EAGAIN path, files,
 * and registrations that fail.
 *
 * Each test runs an engine in the background, a pants server on 127.0.0.1
 * and a plain blocking socket as its peer on the test thread, so the peer
 * can stop reading (the server's queue then meets EAGAIN) and read later.
 * It checks that a file queued for a peer that does not read costs no CPU
 * while it waits and arrives whole once the peer reads; that a file cut
 * short after it was queued neither spins nor holds back the writes behind
 * it; that writes inside on_read keep their order however they are mixed
 * (staged, spilled to the queue, shared, files); and that an event
 * registration that fails (injected with pants__fail_event_add) reaches
 * the object's error callback and closes it, never a silent stall.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <check.h>

#include "testutil.h"

Suite *wqueue_suite(void);

extern int pants__fail_event_add; /* engine/loop.c: the next N registrations succeed, then one fails */

#define WAIT_MS 10000

#define GET(x)    __atomic_load_n(&(x), __ATOMIC_SEQ_CST)
#define SET(x, v) __atomic_store_n(&(x), (v), __ATOMIC_SEQ_CST)
#define INC(x)    __atomic_add_fetch(&(x), 1, __ATOMIC_SEQ_CST)

/* ---- Helpers ------------------------------------------------------------ */

struct ctx {
    char path[64];     /* a test file */
    size_t file_len;   /* its length */
    int write_rc;      /* results of the writes made by the server */
    int error;         /* on_error's code */
    int errors;        /* on_error calls */
    int closed;        /* on_close calls */
    int accepted;      /* on_accept calls */
    int connected;     /* on_connect calls */
    int connect_error; /* on_connect_error's code */
    size_t pending;    /* pending() seen inside on_read */
    int srv_error;     /* the server's on_error code */
    int srv_closed;    /* the server's on_close calls */
};

static void engine_down(pants_engine_t *e)
{
    SET(pants__fail_event_add, -1);
    pants_engine_stop(e);
    ck_assert_int_eq(pants_engine_join(e), 0);
    pants_engine_free(e);
    ck_assert_int_eq(pants_live_objects(), 0);
}

static struct ctx *ctx_of(pants_stream_t *s)
{
    return pants_server_data(pants_stream_server(s));
}

static void on_error(pants_stream_t *s, int err)
{
    struct ctx *c = ctx_of(s);

    SET(c->error, err);
    INC(c->errors);
}

static void on_close(pants_stream_t *s)
{
    INC(ctx_of(s)->closed);
}

/* A server on 127.0.0.1 with conn_cb; its address into addr. */
static pants_server_t *serve(pants_engine_t *e, const pants_server_callbacks_t *scb,
                             const pants_stream_callbacks_t *conn_cb, struct ctx *c, char *addr, size_t len)
{
    pants_server_t *srv = pants_server_new(e, scb, conn_cb, c);
    pants_addr_t a;

    ck_assert_ptr_nonnull(srv);
    ck_assert_int_eq(pants_server_listen(srv, "127.0.0.1:0", 0), 0);
    ck_assert_int_eq(pants_server_local_address(srv, &a), 0);
    ck_assert_int_eq(pants_addr_format(&a, addr, len), 0);
    return srv;
}

/* A blocking socket to addr, with a small receive buffer (so the server
 * meets EAGAIN soon) and 10 s timeouts; -1 on failure. */
static int peer_connect(const char *addr)
{
    struct timeval tv = {10, 0};
    int small = 4096, fd;
    pants_addr_t a;

    if (pants_addr_parse(&a, addr) < 0)
        return -1;
    fd = socket(a.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (const struct sockaddr *)&a.ss, a.len) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Read until EOF (at most cap bytes kept); the count, or -1. */
static long recv_eof(int fd, unsigned char *buf, size_t cap)
{
    size_t total = 0;

    for (;;) {
        ssize_t n = recv(fd, buf + total, cap - total, 0);
        if (n == 0)
            return (long)total;
        if (n < 0)
            return -1;
        total += (size_t)n;
        if (total == cap)
            return (long)total;
    }
}

static unsigned char pattern_at(size_t i)
{
    return (unsigned char)((i * 13 + i / 509) & 0xff);
}

static bool is_pattern(const unsigned char *p, size_t off, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != pattern_at(off + i))
            return false;
    return true;
}

/* A file of len pattern bytes; its path into c->path. */
static void make_file(struct ctx *c, size_t len)
{
    unsigned char *buf = malloc(len);
    int fd;

    ck_assert_ptr_nonnull(buf);
    for (size_t i = 0; i < len; i++)
        buf[i] = pattern_at(i);
    snprintf(c->path, sizeof(c->path), "/tmp/pants-wqueue-XXXXXX");
    fd = mkstemp(c->path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
    close(fd);
    free(buf);
    c->file_len = len;
}

/* CPU seconds (user + system) the process used so far. */
static double cpu_seconds(void)
{
    struct rusage ru;

    ck_assert_int_eq(getrusage(RUSAGE_SELF, &ru), 0);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* ---- A file to a peer that does not read --------------------------------- */

#define BIG_FILE (16u * 1024 * 1024)

/* Send the whole file, then end. */
static void file_on_connect(pants_stream_t *s)
{
    struct ctx *c = ctx_of(s);
    int fd = open(c->path, O_RDONLY | O_CLOEXEC);

    SET(c->write_rc, pants_stream_write_file(s, fd, 0, 0));
    close(fd);
    pants_stream_end(s);
}

START_TEST(write_file_to_non_reader_costs_no_cpu)
{
    static const pants_stream_callbacks_t cb = {.on_connect = file_on_connect, .on_close = on_close};
    pants_engine_t *e = pt_engine_up(1);
    struct ctx c = {0};
    unsigned char *got = malloc(BIG_FILE + 1);
    char addr[64];
    double before, used;
    long n;
    int fd;

    make_file(&c, BIG_FILE);
    serve(e, NULL, &cb, &c, addr, sizeof(addr));
    fd = peer_connect(addr);
    ck_assert_int_ge(fd, 0);
    pt_sleep_ms(200); /* the server fills the socket and meets EAGAIN */
    before = cpu_seconds();
    pt_sleep_ms(1000); /* the peer reads nothing meanwhile */
    used = cpu_seconds() - before;
    ck_assert_msg(used < 0.1, "waiting on a full socket used %.3f s of CPU in 1 s", used);
    n = recv_eof(fd, got, BIG_FILE + 1);
    close(fd);
    unlink(c.path);
    ck_assert_int_eq(GET(c.write_rc), 0);
    ck_assert_int_eq(n, (long)BIG_FILE);
    ck_assert(is_pattern(got, 0, BIG_FILE));
    ck_assert(pt_wait(&c.closed, WAIT_MS));
    free(got);
    engine_down(e);
}
END_TEST

/* ---- A file cut short after it was queued -------------------------------- */

#define SHORT_FILE 300000 /* more than the socket takes at once */
#define CUT_TO     1000   /* what is left of it when it is sent */

/* Queue the file, cut it, queue more behind it, end. */
static void cut_on_connect(pants_stream_t *s)
{
    struct ctx *c = ctx_of(s);
    int fd = open(c->path, O_RDWR | O_CLOEXEC);
    int rc = pants_stream_write(s, "HEAD", 4);

    if (rc == 0)
        rc = pants_stream_write_file(s, fd, 0, 0);
    if (rc == 0)
        rc = ftruncate(fd, CUT_TO) < 0 ? -errno : 0;
    if (rc == 0)
        rc = pants_stream_write(s, "TAIL", 4);
    SET(c->write_rc, rc);
    close(fd);
    pants_stream_end(s);
}

START_TEST(write_file_truncated_after_queueing)
{
    static const pants_stream_callbacks_t cb = {.on_connect = cut_on_connect, .on_close = on_close};
    pants_engine_t *e = pt_engine_up(1);
    struct ctx c = {0};
    unsigned char got[SHORT_FILE + 16];
    char addr[64];
    double before = cpu_seconds();
    long n;
    int fd;

    make_file(&c, SHORT_FILE);
    serve(e, NULL, &cb, &c, addr, sizeof(addr));
    fd = peer_connect(addr);
    ck_assert_int_ge(fd, 0);
    n = recv_eof(fd, got, sizeof(got));
    close(fd);
    unlink(c.path);
    ck_assert_int_eq(GET(c.write_rc), 0);
    ck_assert_int_eq(n, 4 + CUT_TO + 4);
    ck_assert_mem_eq(got, "HEAD", 4);
    ck_assert(is_pattern(got + 4, 0, CUT_TO));
    ck_assert_mem_eq(got + 4 + CUT_TO, "TAIL", 4);
    ck_assert(pt_wait(&c.closed, WAIT_MS));
    ck_assert_msg(cpu_seconds() - before < 2.0, "a cut file spun");
    engine_down(e);
}
END_TEST

/* ---- Order of writes inside on_read -------------------------------------- */

#define MIX_BIG (200 * 1024) /* larger than the stage's scratch */

static unsigned char mix_big[MIX_BIG];

/* For each request byte: 100 small writes (more than the stage holds),
 * the request itself (bytes of the read scratch), a large copy, the file,
 * and a marker; pending() must count all of it at once. */
static void mix_on_read(pants_stream_t *s, const void *data, size_t len)
{
    struct ctx *c = ctx_of(s);
    int fd = open(c->path, O_RDONLY | O_CLOEXEC), rc = 0;
    char small[8];

    for (int i = 0; i < 100 && rc == 0; i++) {
        snprintf(small, sizeof(small), "%03d", i);
        rc = pants_stream_write(s, small, 3);
    }
    if (rc == 0)
        rc = pants_stream_write(s, data, len);
    if (rc == 0)
        rc = pants_stream_write(s, mix_big, sizeof(mix_big));
    if (rc == 0)
        rc = pants_stream_write_file(s, fd, 0, 0);
    if (rc == 0)
        rc = pants_stream_write(s, "END", 3);
    close(fd);
    SET(c->pending, pants_stream_pending(s));
    SET(c->write_rc, rc);
    pants_stream_end(s);
}

START_TEST(writes_keep_their_order)
{
    static const pants_stream_callbacks_t cb = {.on_read = mix_on_read, .on_close = on_close};
    const size_t file_len = 70000, req_len = 512;
    const size_t total = 300 + req_len + MIX_BIG + file_len + 3;
    pants_engine_t *e = pt_engine_up(1);
    struct ctx c = {0};
    unsigned char *got = malloc(total + 16), req[512];
    char addr[64], small[8];
    size_t at = 0;
    long n;
    int fd;

    for (size_t i = 0; i < sizeof(mix_big); i++)
        mix_big[i] = (unsigned char)(i % 251);
    for (size_t i = 0; i < sizeof(req); i++)
        req[i] = (unsigned char)('a' + i % 26);
    make_file(&c, file_len);
    serve(e, NULL, &cb, &c, addr, sizeof(addr));
    fd = peer_connect(addr);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(send(fd, req, sizeof(req), 0), (ssize_t)sizeof(req));
    n = recv_eof(fd, got, total + 16);
    close(fd);
    unlink(c.path);
    ck_assert_int_eq(GET(c.write_rc), 0);
    ck_assert_int_eq(n, (long)total);
    for (int i = 0; i < 100; i++, at += 3) {
        snprintf(small, sizeof(small), "%03d", i);
        ck_assert_mem_eq(got + at, small, 3);
    }
    ck_assert_mem_eq(got + at, req, req_len);
    at += req_len;
    ck_assert_mem_eq(got + at, mix_big, MIX_BIG);
    at += MIX_BIG;
    ck_assert(is_pattern(got + at, 0, file_len));
    at += file_len;
    ck_assert_mem_eq(got + at, "END", 3);
    ck_assert_uint_eq(GET(c.pending), total);
    ck_assert(pt_wait(&c.closed, WAIT_MS));
    free(got);
    engine_down(e);
}
END_TEST

/* ---- Failed registrations ------------------------------------------------ */

static void count_accept(pants_server_t *srv, pants_stream_t *s)
{
    (void)s;
    INC(((struct ctx *)pants_server_data(srv))->accepted);
}

static void count_connect(pants_stream_t *s)
{
    INC(ctx_of(s)->connected);
}

/* An accepted connection whose socket cannot be watched: on_error with the
 * code, on_close once, no on_connect, and the peer sees the end. */
START_TEST(accepted_watch_fails)
{
    static const pants_server_callbacks_t scb = {.on_accept = count_accept};
    static const pants_stream_callbacks_t cb = {
        .on_connect = count_connect, .on_error = on_error, .on_close = on_close};
    pants_engine_t *e = pt_engine_up(1);
    struct ctx c = {0};
    char addr[64], byte;
    int fd;

    serve(e, &scb, &cb, &c, addr, sizeof(addr));
    pt_sleep_ms(100); /* the listener is watched */
    SET(pants__fail_event_add, 0);
    fd = peer_connect(addr);
    ck_assert_int_ge(fd, 0);
    ck_assert(pt_wait(&c.closed, WAIT_MS));
    ck_assert_int_eq(recv(fd, &byte, 1, 0), 0);
    close(fd);
    ck_assert_int_eq(GET(c.accepted), 1);
    ck_assert_int_eq(GET(c.errors), 1);
    ck_assert_int_eq(GET(c.error), -ENOMEM);
    ck_assert_int_eq(GET(c.connected), 0);
    pt_sleep_ms(50);
    ck_assert_int_eq(GET(c.closed), 1);
    engine_down(e);
}
END_TEST

struct client_ctx {
    struct ctx *c; /* where to record */
    const char *addr;
    int rc; /* connect's result */
    uint64_t timeout_ms;
};

static void client_connect_error(pants_stream_t *s, int err)
{
    struct ctx *c = pants_stream_data(s);

    SET(c->connect_error, err);
    pants_stream_close(s);
}

static void client_close(pants_stream_t *s)
{
    INC(((struct ctx *)pants_stream_data(s))->closed);
}

static void client_connected(pants_stream_t *s)
{
    INC(((struct ctx *)pants_stream_data(s))->connected);
}

static void client_start(void *arg)
{
    static const pants_stream_callbacks_t cb = {
        .on_connect = client_connected, .on_connect_error = client_connect_error, .on_close = client_close};
    struct client_ctx *cc = arg;
    pants_stream_t *s = pants_stream_new(pants_loop_current(), &cb, cc->c);

    if (cc->timeout_ms)
        pants_stream_set_connect_timeout(s, cc->timeout_ms);
    SET(pants__fail_event_add, 0);
    cc->rc = pants_stream_connect(s, cc->addr);
    SET(pants__fail_event_add, -1);
    if (cc->rc < 0)
        pants_stream_close(s);
}

/* A client whose socket cannot be watched: on_connect_error with the code. */
START_TEST(connect_watch_fails)
{
    pants_engine_t *e = pt_engine_up(1);
    struct ctx c = {0}, srv_ctx = {0};
    char addr[64];
    struct client_ctx cc = {&c, addr, 1, 0};

    serve(e, NULL, NULL, &srv_ctx, addr, sizeof(addr));
    pt_on_loop(pants_engine_loop(e, 0), client_start, &cc);
    ck_assert_int_eq(cc.rc, 0);
    ck_assert(pt_wait(&c.closed, WAIT_MS));
    ck_assert_int_eq(GET(c.connect_error), -ENOMEM);
    ck_assert_int_eq(GET(c.connected), 0);
    engine_down(e);
}
END_TEST

/* A connect bound whose timer cannot be armed: the connect call fails and
 * nothing was set in motion (no callback but the close that follows). */
START_TEST(connect_timer_fails)
{
    pants_engine_t *e = pt_engine_up(1);
    struct ctx c = {0}, srv_ctx = {0};
    char addr[64];
    struct client_ctx cc = {&c, addr, 1, 5000};

    serve(e, NULL, NULL, &srv_ctx, addr, sizeof(addr));
    pt_on_loop(pants_engine_loop(e, 0), client_start, &cc);
    ck_assert_int_eq(cc.rc, -ENOMEM);
    ck_assert(pt_wait(&c.closed, WAIT_MS));
    ck_assert_int_eq(GET(c.connect_error), 0);
    ck_assert_int_eq(GET(c.connected), 0);
    engine_down(e);
}
END_TEST

static void srv_on_error(pants_server_t *srv, int err)
{
    SET(((struct ctx *)pants_server_data(srv))->srv_error, err);
}

static void srv_on_close(pants_server_t *srv)
{
    INC(((struct ctx *)pants_server_data(srv))->srv_closed);
}

/* A listener that cannot be watched: before the engine runs, listen
 * fails with the code; once it runs, on_error gets it and the server
 * closes (on_close). */
START_TEST(listen_watch_fails)
{
    static const pants_server_callbacks_t scb = {.on_error = srv_on_error, .on_close = srv_on_close};
    pants_engine_options_t o = {.threads = 1};
    pants_engine_t *e = pants_engine_new(&o);
    struct ctx before = {0}, after = {0};
    pants_server_t *srv;

    ck_assert_ptr_nonnull(e);
    srv = pants_server_new(e, &scb, NULL, &before);
    SET(pants__fail_event_add, 0);
    ck_assert_int_eq(pants_server_listen(srv, "127.0.0.1:0", 0), -ENOMEM);
    SET(pants__fail_event_add, -1);
    ck_assert_int_eq(pants_server_local_address(srv, &(pants_addr_t){0}), -ENOTCONN);
    ck_assert_int_eq(pants_engine_start(e), 0);
    srv = pants_server_new(e, &scb, NULL, &after);
    ck_assert_ptr_nonnull(srv);
    pt_sleep_ms(50); /* registered on the acceptor */
    SET(pants__fail_event_add, 0);
    ck_assert_int_eq(pants_server_listen(srv, "127.0.0.1:0", 0), 0);
    ck_assert(pt_wait(&after.srv_closed, WAIT_MS));
    ck_assert_int_eq(GET(after.srv_error), -ENOMEM);
    engine_down(e);
}
END_TEST

Suite *wqueue_suite(void)
{
    Suite *s = suite_create("wqueue");
    TCase *tc = tcase_create("queue");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, write_file_to_non_reader_costs_no_cpu);
    tcase_add_test(tc, write_file_truncated_after_queueing);
    tcase_add_test(tc, writes_keep_their_order);
    suite_add_tcase(s, tc);
    tc = tcase_create("register");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, accepted_watch_fails);
    tcase_add_test(tc, connect_watch_fails);
    tcase_add_test(tc, connect_timer_fails);
    tcase_add_test(tc, listen_watch_fails);
    suite_add_tcase(s, tc);
    return s;
}
