/* check_limits.c -- flow control, time limits and admission, over real
 * loopback sockets.
 *
 * A pants server on 127.0.0.1, peers as plain blocking sockets on the test
 * thread (or a sender thread), so a peer can stop reading, trickle or go
 * silent.  Covered: a peer that sends without reading holds the server to
 * about its high watermark (the process's VmRSS) and still gets every byte
 * once it reads; the watermark callbacks fire once each way; the write
 * limit refuses whole writes and broadcast drops only the connection over
 * it; each timeout kind runs out never early, is pushed back by activity,
 * starts over when on_timeout leaves the stream open, and costs nothing
 * measurable with thousands of idle timed streams; a trickling sender is
 * caught by FRAME but not by READ; the connection cap holds the backlog and
 * accepts again below it; server-wide stream options and on_accept
 * overriding them.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "testutil.h"

Suite *limits_suite(void);

#define WAIT_MS 10000

#define GET(x)    __atomic_load_n(&(x), __ATOMIC_SEQ_CST)
#define SET(x, v) __atomic_store_n(&(x), (v), __ATOMIC_SEQ_CST)
#define INC(x)    __atomic_add_fetch(&(x), 1, __ATOMIC_SEQ_CST)

/* ---- Helpers ------------------------------------------------------------ */

struct ctx {
    int accepted;                           /* on_accept calls */
    int closed;                             /* on_close calls */
    int highs;                              /* on_write_high calls */
    int lows;                               /* on_write_low calls */
    int error;                              /* on_error's code */
    int timeouts;                           /* on_timeout calls */
    int timeout_kind;                       /* its last kind */
    int keep_open;                          /* on_timeout leaves the stream open */
    int64_t timeout_ms[8];                  /* when on_timeout ran, ms since start */
    int64_t closed_ms;                      /* when on_close ran, ms since start */
    int64_t start_ms;                       /* reference time */
    int rc[4];                              /* results of writes made by the server */
    const pants_stream_callbacks_t *odd_cb; /* given to every second connection by on_accept */
    int odd_idle_off;                       /* on_accept turns IDLE off for every second connection */
};

static struct ctx *ctx_of(pants_stream_t *s)
{
    return pants_server_data(pants_stream_server(s));
}

static void on_close(pants_stream_t *s)
{
    struct ctx *c = ctx_of(s);

    SET(c->closed_ms, pt_now_ms() - c->start_ms);
    INC(c->closed);
}

static void on_error(pants_stream_t *s, int err)
{
    SET(ctx_of(s)->error, err);
}

static void count_accept(pants_server_t *srv, pants_stream_t *s)
{
    struct ctx *c = pants_server_data(srv);
    int n = INC(c->accepted);

    if (n % 2 == 0 && c->odd_idle_off)
        pants_stream_set_timeout(s, PANTS_TIMEOUT_IDLE, 0);
}

static const pants_server_callbacks_t count_scb = {.on_accept = count_accept};

static pants_server_t *serve(pants_engine_t *e, const pants_stream_callbacks_t *cb,
                             const pants_stream_options_t *o, struct ctx *c, char *addr, size_t len)
{
    pants_server_t *srv = pants_server_new(e, &count_scb, cb, c);
    pants_addr_t a;

    ck_assert_ptr_nonnull(srv);
    if (o != NULL)
        ck_assert_int_eq(pants_server_set_stream_options(srv, o), 0);
    ck_assert_int_eq(pants_server_listen(srv, "127.0.0.1:0", 0), 0);
    ck_assert_int_eq(pants_server_local_address(srv, &a), 0);
    ck_assert_int_eq(pants_addr_format(&a, addr, len), 0);
    return srv;
}

/* A blocking socket to addr (receive buffer rcvbuf if > 0), 10 s timeouts. */
static int peer_connect(const char *addr, int rcvbuf)
{
    struct timeval tv = {10, 0};
    pants_addr_t a;
    int fd;

    if (pants_addr_parse(&a, addr) < 0)
        return -1;
    fd = socket(a.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (const struct sockaddr *)&a.ss, a.len) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Does the peer see the end (EOF or reset) within ms?  Bytes are skipped. */
static bool sees_end(int fd, unsigned ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    char buf[4096];

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return true;
        if (n < 0)
            return false;
    }
}

/* The process's resident memory, bytes. */
static long vm_rss(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;

    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb * 1024;
}

static double cpu_seconds(void)
{
    struct rusage ru;

    ck_assert_int_eq(getrusage(RUSAGE_SELF, &ru), 0);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static unsigned char pattern_at(size_t i)
{
    return (unsigned char)((i * 31 + i / 1021) & 0xff);
}

/* ---- A peer that sends and does not read --------------------------------- */

static void echo_on_read(pants_stream_t *s, const void *data, size_t len)
{
    pants_stream_write(s, data, len);
}

#define FLOOD (64u * 1024 * 1024)

struct sender {
    int fd;      /* where to send */
    size_t sent; /* bytes sent (atomic) */
    int ok;      /* all of them went */
};

static void *send_flood(void *arg)
{
    struct sender *sd = arg;
    unsigned char buf[65536];

    while (GET(sd->sent) < FLOOD) {
        size_t at = GET(sd->sent), n = FLOOD - at < sizeof(buf) ? FLOOD - at : sizeof(buf);
        for (size_t i = 0; i < n; i++)
            buf[i] = pattern_at(at + i);
        ssize_t k = send(sd->fd, buf, n, MSG_NOSIGNAL);
        if (k <= 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return NULL;
        if (k > 0)
            __atomic_add_fetch(&sd->sent, (size_t)k, __ATOMIC_SEQ_CST);
    }
    SET(sd->ok, 1);
    return NULL;
}

START_TEST(non_reader_is_bounded)
{
    static const pants_stream_callbacks_t cb = {.on_read = echo_on_read, .on_close = on_close};
    pants_engine_t *e = pt_engine_up(1);
    struct ctx c = {0};
    struct sender sd = {0};
    unsigned char *buf = malloc(65536);
    char addr[64];
    pthread_t th;
    size_t got = 0;
    long before, grown;
    bool same = true;

    serve(e, &cb, NULL, &c, addr, sizeof(addr));
    sd.fd = peer_connect(addr, 0);
    ck_assert_int_ge(sd.fd, 0);
    before = vm_rss();
    ck_assert_int_eq(pthread_create(&th, NULL, send_flood, &sd), 0);
    pt_sleep_ms(1500); /* the server pauses its reading; the sender blocks */
    grown = vm_rss() - before;
    ck_assert_msg(GET(sd.sent) < FLOOD / 2, "the server read %zu bytes from a peer that does not read",
                  (size_t)GET(sd.sent));
    ck_assert_msg(grown < 16L * 1024 * 1024, "memory grew by %ld bytes", grown);
    while (got < FLOOD) { /* now read everything back */
        ssize_t n = recv(sd.fd, buf, 65536, 0);
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n && same; i++)
            same = buf[i] == pattern_at(got + (size_t)i);
        got += (size_t)n;
    }
    pthread_join(th, NULL);
    ck_assert(GET(sd.ok));
    ck_assert_uint_eq(got, FLOOD);
    ck_assert(same);
    close(sd.fd);
    free(buf);
    pt_engine_down(e);
}
END_TEST

/* ---- Watermark callbacks -------------------------------------------------- */

static void count_high(pants_stream_t *s)
{
    INC(ctx_of(s)->highs);
}

static void count_low(pants_stream_t *s)
{
    INC(ctx_of(s)->lows);
}

#define BIG_WRITE (16u << 20) /* more than the kernel's buffers take */

/* Small watermarks, then 16 MiB written at once. */
static void big_on_connect(pants_stream_t *s)
{
    struct ctx *c = ctx_of(s);
    char *block = calloc(1, BIG_WRITE);

    c->rc[0] = pants_stream_set_write_watermarks(s, 16384, 65536);
    c->rc[1] = pants_stream_set_write_watermarks(s, 65536, 65536); /* low >= high */
    c->rc[2] = pants_stream_write(s, block, BIG_WRITE);
    c->rc[3] = pants_stream_is_writable(s);
    free(block);
}

START_TEST(watermarks_fire_once_each_way)
{
    static const pants_stream_callbacks_t cb = {.on_connect = big_on_connect,
                                                .on_write_high = count_high,
                                                .on_write_low = count_low,
                                                .on_close = on_close};
    pants_engine_t *e = pt_engine_up(1);
    struct ctx c = {0};
    unsigned char buf[65536];
    char addr[64];
    size_t got = 0;
    int fd;

    serve(e, &cb, NULL, &c, addr, sizeof(addr));
    fd = peer_connect(addr, 4096);
    ck_assert_int_ge(fd, 0);
    ck_assert(pt_wait(&c.highs, WAIT_MS));
    pt_sleep_ms(200);
    ck_assert_int_eq(GET(c.lows), 0);
    while (got < BIG_WRITE) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        ck_assert_int_gt(n, 0);
        got += (size_t)n;
    }
    ck_assert(pt_wait(&c.lows, WAIT_MS));
    pt_sleep_ms(100);
    ck_assert_int_eq(GET(c.highs), 1);
    ck_assert_int_eq(GET(c.lows), 1);
    ck_assert_int_eq(c.rc[0], 0);
    ck_assert_int_eq(c.rc[1], -EINVAL);
    ck_assert_int_eq(c.rc[2], 0);
    ck_assert_int_eq(c.rc[3], 0); /* 16 MiB is above 64 KiB */
    close(fd);
    pt_engine_down(e);
}
END_TEST

/* A burst over the high watermark that the socket takes at once, inside
 * on_read: the stream went above high (is_writable false) and back to
 * low before the loop ran any callback.  A producer that saw "not
 * writable" waits for on_write_low: it must hear high, then low. */
static void quick_high(pants_stream_t *s)
{
    struct ctx *c = ctx_of(s);

    c->timeout_kind = GET(c->lows) == 0; /* (reused: high came before any low) */
    INC(c->highs);
}

static void burst_on_connect(pants_stream_t *s)
{
    ctx_of(s)->rc[0] = pants_stream_set_write_watermarks(s, 10, 100);
}

/* Inside the stream's I/O callback: the write is staged and flushed as
 * the callback returns, before the loop runs on_write_high. */
static void burst_on_read(pants_stream_t *s, const void *data, size_t len)
{
    struct ctx *c = ctx_of(s);
    char block[300] = {0};

    (void)data;
    (void)len;
    c->rc[1] = pants_stream_write(s, block, sizeof(block));
    c->rc[2] = pants_stream_is_writable(s);
}

START_TEST(watermarks_high_then_low_before_either_ran)
{
    static const pants_stream_callbacks_t cb = {.on_connect = burst_on_connect,
                                                .on_read = burst_on_read,
                                                .on_write_high = quick_high,
                                                .on_write_low = count_low,
                                                .on_close = on_close};
    pants_engine_t *e = pt_engine_up(1);
    struct ctx c = {0};
    char addr[64], buf[300];
    size_t got = 0;
    int fd;

    serve(e, &cb, NULL, &c, addr, sizeof(addr));
    fd = peer_connect(addr, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(send(fd, "x", 1, 0), 1);
    ck_assert(pt_wait(&c.lows, WAIT_MS));
    while (got < sizeof(buf)) {
        ssize_t n = recv(fd, buf, sizeof(buf) - got, 0);
        ck_assert_int_gt(n, 0);
        got += (size_t)n;
    }
    pt_sleep_ms(100);
    ck_assert_int_eq(c.rc[0], 0);
    ck_assert_int_eq(c.rc[1], 0);
    ck_assert_int_eq(c.rc[2], 0); /* the producer saw "not writable" */
    ck_assert_int_eq(GET(c.highs), 1);
    ck_assert_int_eq(GET(c.lows), 1);
    ck_assert_int_eq(c.timeout_kind, 1); /* high first */
    close(fd);
    pt_engine_down(e);
}
END_TEST

/* ---- Write limit and broadcast -------------------------------------------- */

static void limit_on_connect(pants_stream_t *s)
{
    struct ctx *c = ctx_of(s);
    char block[600] = {0};
    size_t before;

    pants_stream_set_write_limit(s, 1000);
    c->rc[0] = pants_stream_write(s, block, sizeof(block));
    before = pants_stream_pending(s);
    c->rc[1] = pants_stream_write(s, block, sizeof(block));
    c->rc[2] = pants_stream_pending(s) == before;
    c->rc[3] = pants_stream_write(s, block, 400);
    pants_stream_end(s);
}

START_TEST(write_limit_refuses_whole_writes)
{
    static const pants_stream_callbacks_t cb = {.on_connect = limit_on_connect, .on_close = on_close};
    pants_engine_t *e = pt_engine_up(1);
    struct ctx c = {0};
    char addr[64], buf[2000];
    long total = 0;
    ssize_t n;
    int fd;

    serve(e, &cb, NULL, &c, addr, sizeof(addr));
    fd = peer_connect(addr, 0);
    ck_assert_int_ge(fd, 0);
    while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
        total += n;
    close(fd);
    ck_assert(pt_wait(&c.closed, WAIT_MS));
    ck_assert_int_eq(c.rc[0], 0);
    ck_assert_int_eq(c.rc[1], -ENOBUFS);
    ck_assert_int_eq(c.rc[2], 1);
    ck_assert_int_eq(c.rc[3], 0);
    ck_assert_int_eq(total, 1000);
    pt_engine_down(e);
}
END_TEST

/* The second connection accepted gets a small write limit. */
static void limited_accept(pants_server_t *srv, pants_stream_t *s)
{
    struct ctx *c = pants_server_data(srv);

    int small = 4096;

    if (INC(c->accepted) != 2)
        return;
    pants_stream_set_write_limit(s, 150000);
    setsockopt(pants_stream_fd(s), SOL_SOCKET, SO_SNDBUF, &small,
               sizeof(small)); /* the kernel holds little */
}

START_TEST(broadcast_drops_only_the_one_over_its_limit)
{
    static const pants_server_callbacks_t scb = {.on_accept = limited_accept};
    static const pants_stream_callbacks_t cb = {.on_error = on_error, .on_close = on_close};
    pants_engine_t *e = pt_engine_up(2);
    struct ctx c = {0};
    pants_server_t *srv = pants_server_new(e, &scb, &cb, &c);
    static char msg[100000];
    char addr[64], buf[65536];
    int fd[3];
    pants_addr_t a;

    ck_assert_int_eq(pants_server_listen(srv, "127.0.0.1:0", 0), 0);
    ck_assert_int_eq(pants_server_local_address(srv, &a), 0);
    ck_assert_int_eq(pants_addr_format(&a, addr, sizeof(addr)), 0);
    for (int i = 0; i < 3; i++) {
        fd[i] = peer_connect(addr, 4096);
        ck_assert_int_ge(fd[i], 0);
        ck_assert(pt_wait_count(&c.accepted, i + 1, WAIT_MS));
    }
    for (int i = 0; i < 4; i++) /* 400 KB to each: over 150 KB for the one that reads nothing */
        ck_assert_int_eq(pants_server_broadcast(srv, msg, sizeof(msg)), 0);
    ck_assert(pt_wait(&c.closed, WAIT_MS));
    ck_assert_int_eq(GET(c.error), -ENOBUFS);
    for (int i = 0; i < 3; i += 2) { /* the others get all of it */
        size_t got = 0;
        while (got < 4 * sizeof(msg)) {
            ssize_t n = recv(fd[i], buf, sizeof(buf), 0);
            ck_assert_int_gt(n, 0);
            got += (size_t)n;
        }
    }
    ck_assert(sees_end(fd[1], 5000));
    ck_assert_int_eq(GET(c.closed), 1);
    for (int i = 0; i < 3; i++)
        close(fd[i]);
    pt_engine_down(e);
}
END_TEST

/* ---- Timeouts ------------------------------------------------------------- */

static void note_timeout(pants_stream_t *s, int kind)
{
    struct ctx *c = ctx_of(s);
    int n = INC(c->timeouts);

    if (n <= 8)
        c->timeout_ms[n - 1] = pt_now_ms() - c->start_ms;
    SET(c->timeout_kind, kind);
    if (!GET(c->keep_open))
        pants_stream_close(s);
}

/* A silent peer: closed by IDLE, never before it ran out. */
START_TEST(idle_closes_a_silent_peer)
{
    static const pants_stream_callbacks_t cb = {.on_close = on_close};
    pants_stream_options_t o = {.idle_timeout_ms = 300};
    pants_engine_t *e = pt_engine_up(1);
    struct ctx c = {0};
    char addr[64];
    int fd;

    serve(e, &cb, &o, &c, addr, sizeof(addr));
    c.start_ms = pt_now_ms();
    fd = peer_connect(addr, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert(sees_end(fd, 5000));
    ck_assert(pt_wait(&c.closed, WAIT_MS));
    ck_assert_int_ge(GET(c.closed_ms), 300);
    ck_assert_int_lt(GET(c.closed_ms), 3000);
    close(fd);
    pt_engine_down(e);
}
END_TEST

/* Activity pushes IDLE back: a byte every 100 ms for 1 s keeps it open. */
START_TEST(idle_restarted_by_activity)
{
    static const pants_stream_callbacks_t cb = {.on_read = echo_on_read, .on_close = on_close};
    pants_stream_options_t o = {.idle_timeout_ms = 300};
    pants_engine_t *e = pt_engine_up(1);
    struct ctx c = {0};
    char addr[64], byte = 'x';
    int64_t last = 0;
    int fd;

    serve(e, &cb, &o, &c, addr, sizeof(addr));
    c.start_ms = pt_now_ms();
    fd = peer_connect(addr, 0);
    ck_assert_int_ge(fd, 0);
    for (int i = 0; i < 10; i++) {
        ck_assert_int_eq(send(fd, &byte, 1, 0), 1);
        ck_assert_int_eq(recv(fd, &byte, 1, 0), 1);
        last = pt_now_ms() - c.start_ms;
        pt_sleep_ms(100);
    }
    ck_assert_int_eq(GET(c.closed), 0);
    ck_assert(sees_end(fd, 5000));
    ck_assert(pt_wait(&c.closed, WAIT_MS));
    ck_assert_int_ge(GET(c.closed_ms), last + 300);
    close(fd);
    pt_engine_down(e);
}
END_TEST

/* on_timeout leaves the stream open: IDLE starts over, runs again. */
START_TEST(timeout_starts_over_when_left_open)
{
    static const pants_stream_callbacks_t cb = {.on_timeout = note_timeout, .on_close = on_close};
    pants_stream_options_t o = {.idle_timeout_ms = 200};
    pants_engine_t *e = pt_engine_up(1);
    struct ctx c = {.keep_open = 1};
    char addr[64];
    int fd;

    serve(e, &cb, &o, &c, addr, sizeof(addr));
    c.start_ms = pt_now_ms();
    fd = peer_connect(addr, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert(pt_wait_count(&c.timeouts, 3, WAIT_MS));
    SET(c.keep_open, 0);
    ck_assert(pt_wait(&c.closed, WAIT_MS));
    ck_assert_int_eq(GET(c.timeout_kind), PANTS_TIMEOUT_IDLE);
    ck_assert_int_ge(c.timeout_ms[0], 200);
    for (int i = 1; i < 3; i++)
        ck_assert_msg(c.timeout_ms[i] - c.timeout_ms[i - 1] >= 200,
                      "timeout %d came %lld ms after the one before", i,
                      (long long)(c.timeout_ms[i] - c.timeout_ms[i - 1]));
    close(fd);
    pt_engine_down(e);
}
END_TEST

/* A peer that never reads what is queued for it: WRITE runs out. */
static void flood_on_connect(pants_stream_t *s)
{
    char *block = calloc(1, 8 << 20);

    pants_stream_set_write_watermarks(s, 0, 0); /* no watermarks: just the timeout */
    pants_stream_write(s, block, 8 << 20);
    free(block);
}

START_TEST(write_timeout_catches_a_non_reader)
{
    static const pants_stream_callbacks_t cb = {
        .on_connect = flood_on_connect, .on_timeout = note_timeout, .on_close = on_close};
    pants_stream_options_t o = {.write_timeout_ms = 300};
    pants_engine_t *e = pt_engine_up(1);
    struct ctx c = {0};
    char addr[64];
    int fd;

    serve(e, &cb, &o, &c, addr, sizeof(addr));
    c.start_ms = pt_now_ms();
    fd = peer_connect(addr, 4096);
    ck_assert_int_ge(fd, 0);
    ck_assert(pt_wait(&c.closed, WAIT_MS));
    ck_assert_int_eq(GET(c.timeout_kind), PANTS_TIMEOUT_WRITE);
    ck_assert_int_ge(c.timeout_ms[0], 300);
    close(fd);
    pt_engine_down(e);
}
END_TEST

static void lines_on_accept_cb(pants_stream_t *s)
{
    pants_stream_read_until(s, "\n", 1);
}

/* One byte every 100 ms of a line never finished: READ (300 ms) never
 * runs out, FRAME (700 ms) does. */
START_TEST(frame_catches_a_trickler_read_does_not)
{
    static const pants_stream_callbacks_t cb = {
        .on_connect = lines_on_accept_cb, .on_timeout = note_timeout, .on_close = on_close};
    pants_stream_options_t o = {.read_timeout_ms = 300, .frame_timeout_ms = 700};
    pants_engine_t *e = pt_engine_up(1);
    struct ctx c = {0};
    char addr[64], byte = 'x';
    int64_t first = -1;
    int fd;

    serve(e, &cb, &o, &c, addr, sizeof(addr));
    c.start_ms = pt_now_ms();
    fd = peer_connect(addr, 0);
    ck_assert_int_ge(fd, 0);
    for (int i = 0; i < 30 && GET(c.closed) == 0; i++) {
        if (send(fd, &byte, 1, MSG_NOSIGNAL) != 1)
            break;
        if (first < 0)
            first = pt_now_ms() - c.start_ms;
        pt_sleep_ms(100);
    }
    ck_assert(pt_wait(&c.closed, WAIT_MS));
    ck_assert_int_eq(GET(c.timeouts), 1);
    ck_assert_int_eq(GET(c.timeout_kind), PANTS_TIMEOUT_FRAME);
    ck_assert_int_ge(c.timeout_ms[0], first + 700);
    ck_assert_int_lt(c.timeout_ms[0], first + 2500);
    close(fd);
    pt_engine_down(e);
}
END_TEST

/* A stream whose reading is paused is not timed by READ. */
static void pause_on_connect(pants_stream_t *s)
{
    pants_stream_pause_reading(s);
}

START_TEST(read_timeout_waits_while_paused)
{
    static const pants_stream_callbacks_t cb = {
        .on_connect = pause_on_connect, .on_timeout = note_timeout, .on_close = on_close};
    pants_stream_options_t o = {.read_timeout_ms = 200};
    pants_engine_t *e = pt_engine_up(1);
    struct ctx c = {0};
    char addr[64];
    int fd;

    serve(e, &cb, &o, &c, addr, sizeof(addr));
    fd = peer_connect(addr, 0);
    ck_assert_int_ge(fd, 0);
    pt_sleep_ms(700);
    ck_assert_int_eq(GET(c.timeouts), 0);
    ck_assert_int_eq(GET(c.closed), 0);
    close(fd);
    pt_engine_down(e);
}
END_TEST

/* Thousands of idle streams with an idle timeout cost no CPU while idle. */
START_TEST(many_timed_streams_are_cheap)
{
    static const pants_stream_callbacks_t cb = {.on_close = on_close};
    pants_stream_options_t o = {.idle_timeout_ms = 60000, .read_timeout_ms = 60000};
    pants_engine_t *e;
    struct ctx c = {0};
    struct rlimit rl;
    char addr[64];
    int n, *fds;
    double before, used;

    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    n = rl.rlim_cur > 20200 ? 10000 : (int)(rl.rlim_cur - 200) / 2;
    fds = malloc(sizeof(int) * (size_t)n);
    e = pt_engine_up(1);
    serve(e, &cb, &o, &c, addr, sizeof(addr));
    for (int i = 0; i < n; i++) {
        fds[i] = peer_connect(addr, 0);
        ck_assert_int_ge(fds[i], 0);
    }
    ck_assert(pt_wait_count(&c.accepted, n, 30000));
    pt_sleep_ms(200);
    before = cpu_seconds();
    pt_sleep_ms(1000);
    used = cpu_seconds() - before;
    ck_assert_msg(used < 0.05, "%d idle timed streams used %.3f s of CPU in 1 s", n, used);
    ck_assert_int_eq(GET(c.closed), 0);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    ck_assert(pt_wait_count(&c.closed, n, 30000));
    free(fds);
    pt_engine_down(e);
}
END_TEST

/* ---- Admission and server options ---------------------------------------- */

START_TEST(max_connections_holds_the_backlog)
{
    static const pants_stream_callbacks_t cb = {.on_close = on_close};
    pants_engine_t *e = pt_engine_up(2);
    struct ctx c = {0};
    pants_server_t *srv;
    char addr[64];
    int fd[5];

    srv = serve(e, &cb, NULL, &c, addr, sizeof(addr));
    ck_assert_int_eq(pants_server_set_max_connections(srv, 3), 0);
    for (int i = 0; i < 5; i++) {
        fd[i] = peer_connect(addr, 0); /* the kernel completes them all */
        ck_assert_int_ge(fd[i], 0);
    }
    ck_assert(pt_wait_count(&c.accepted, 3, WAIT_MS));
    pt_sleep_ms(300);
    ck_assert_int_eq(GET(c.accepted), 3);
    ck_assert_uint_eq(pants_server_connections(srv), 3);
    close(fd[0]);
    ck_assert(pt_wait_count(&c.accepted, 4, WAIT_MS));
    pt_sleep_ms(200);
    ck_assert_int_eq(GET(c.accepted), 4);
    ck_assert_int_eq(pants_server_set_max_connections(srv, 0), 0); /* no cap: the last one too */
    ck_assert(pt_wait_count(&c.accepted, 5, WAIT_MS));
    for (int i = 1; i < 5; i++)
        close(fd[i]);
    pt_engine_down(e);
}
END_TEST

/* Server-wide IDLE for every connection; on_accept turns it off for every
 * second one, which then stays open. */
START_TEST(server_options_and_on_accept_override)
{
    static const pants_stream_callbacks_t cb = {.on_close = on_close};
    pants_stream_options_t o = {.idle_timeout_ms = 200};
    pants_engine_t *e = pt_engine_up(2);
    struct ctx c = {.odd_idle_off = 1};
    char addr[64];
    int fd[4];

    serve(e, &cb, &o, &c, addr, sizeof(addr));
    for (int i = 0; i < 4; i++) {
        fd[i] = peer_connect(addr, 0);
        ck_assert_int_ge(fd[i], 0);
        ck_assert(pt_wait_count(&c.accepted, i + 1, WAIT_MS));
    }
    ck_assert(pt_wait_count(&c.closed, 2, WAIT_MS));
    pt_sleep_ms(600);
    ck_assert_int_eq(GET(c.closed), 2);
    ck_assert(sees_end(fd[0], 2000));
    ck_assert(!sees_end(fd[1], 100));
    ck_assert(sees_end(fd[2], 2000));
    ck_assert(!sees_end(fd[3], 100));
    for (int i = 0; i < 4; i++)
        close(fd[i]);
    pt_engine_down(e);
}
END_TEST

START_TEST(bad_settings_are_refused)
{
    pants_engine_t *e = pt_engine_up(1);
    pants_server_t *srv = pants_server_new(e, NULL, NULL, NULL);
    pants_stream_options_t bad = {.write_low = 100, .write_high = 100};
    pants_stream_options_t far = {.idle_timeout_ms = UINT64_MAX};

    ck_assert_int_eq(pants_server_set_stream_options(srv, &bad), -EINVAL);
    ck_assert_int_eq(pants_server_set_stream_options(srv, &far), -EINVAL);
    ck_assert_int_eq(pants_server_set_stream_options(srv, NULL), 0);
    ck_assert_int_eq(pants_server_set_stream_options(NULL, NULL), -EINVAL);
    ck_assert_int_eq(pants_server_set_max_connections(NULL, 1), -EINVAL);
    ck_assert_int_eq(pants_stream_set_timeout(NULL, PANTS_TIMEOUT_IDLE, 1), -EINVAL);
    ck_assert_int_eq(pants_stream_set_write_watermarks(NULL, 1, 2), -EINVAL);
    ck_assert(!pants_stream_is_writable(NULL));
    pt_engine_down(e);
}
END_TEST

Suite *limits_suite(void)
{
    Suite *s = suite_create("limits");
    TCase *tc = tcase_create("flow");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, non_reader_is_bounded);
    tcase_add_test(tc, watermarks_fire_once_each_way);
    tcase_add_test(tc, watermarks_high_then_low_before_either_ran);
    tcase_add_test(tc, write_limit_refuses_whole_writes);
    tcase_add_test(tc, broadcast_drops_only_the_one_over_its_limit);
    suite_add_tcase(s, tc);
    tc = tcase_create("timeouts");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, idle_closes_a_silent_peer);
    tcase_add_test(tc, idle_restarted_by_activity);
    tcase_add_test(tc, timeout_starts_over_when_left_open);
    tcase_add_test(tc, write_timeout_catches_a_non_reader);
    tcase_add_test(tc, frame_catches_a_trickler_read_does_not);
    tcase_add_test(tc, read_timeout_waits_while_paused);
    tcase_add_test(tc, many_timed_streams_are_cheap);
    suite_add_tcase(s, tc);
    tc = tcase_create("admission");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, max_connections_holds_the_backlog);
    tcase_add_test(tc, server_options_and_on_accept_override);
    tcase_add_test(tc, bad_settings_are_refused);
    suite_add_tcase(s, tc);
    return s;
}
