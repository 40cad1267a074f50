/* check_datagram.c -- datagram channels over real loopback sockets.
 *
 * Each test runs an engine with one worker loop in the background, sets
 * its datagrams up before starting it (allowed from any thread), and then
 * drives them through pt_on_loop.  The other end is usually a plain socket
 * of the test thread, so what pants puts on the wire is checked by the
 * kernel's own view: two packets stay two, replies reach their sender, the
 * order holds.  Back-pressure is tested over Unix datagram sockets, where
 * a receiver that does not read really blocks the sender (its queue holds
 * net.unix.max_dgram_qlen packets): over UDP loopback the kernel never
 * says EAGAIN, it drops at the receiver instead.  Names are resolved by a
 * fake name server on 127.0.0.1 (engine option dns_server) or end in
 * ".invalid", so no real DNS query is ever made.  Every test ends with
 * pants_live_objects() == 0.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <check.h>

#include "testutil.h"

#define MAXPKT 512 /* packets a recorder keeps */

Suite *datagram_suite(void);

/* ---- Recording callbacks ------------------------------------------------ */

struct pkt {
    size_t len;          /* payload bytes */
    unsigned char *data; /* copy of the payload */
    pants_addr_t from;   /* sender */
};

/* What one datagram's callbacks saw; counters are read by the test thread. */
struct rec {
    pants_datagram_t *d;     /* the datagram */
    bool echo;               /* reply every packet to its sender */
    int echo_rc;             /* first failed reply, or 0 */
    int listens;             /* on_listen calls */
    int reads;               /* on_read calls */
    int writes;              /* on_write calls */
    int errors;              /* on_error calls */
    int closes;              /* on_close calls */
    int after_close;         /* callbacks after on_close: must stay 0 */
    int errs[64];            /* the first errors */
    struct pkt pkts[MAXPKT]; /* the first packets */
};

static void bump(int *counter)
{
    __atomic_add_fetch(counter, 1, __ATOMIC_SEQ_CST);
}

static int get(const int *counter)
{
    return __atomic_load_n(counter, __ATOMIC_SEQ_CST);
}

static struct rec *rec_of(pants_datagram_t *d)
{
    struct rec *r = pants_datagram_data(d);

    if (get(&r->closes) > 0)
        bump(&r->after_close);
    return r;
}

static void cb_listen(pants_datagram_t *d)
{
    bump(&rec_of(d)->listens);
}

static void cb_read(pants_datagram_t *d, const void *data, size_t len, const pants_addr_t *from)
{
    struct rec *r = rec_of(d);
    int i = get(&r->reads);

    if (i < MAXPKT) {
        r->pkts[i].len = len;
        r->pkts[i].data = malloc(len + 1);
        memcpy(r->pkts[i].data, data, len);
        r->pkts[i].data[len] = '\0';
        r->pkts[i].from = *from;
    }
    if (r->echo) {
        int rc = pants_datagram_write_to(d, data, len, from);
        if (rc != 0 && r->echo_rc == 0)
            r->echo_rc = rc;
    }
    bump(&r->reads);
}

static void cb_write(pants_datagram_t *d)
{
    bump(&rec_of(d)->writes);
}

static void cb_error(pants_datagram_t *d, int err)
{
    struct rec *r = rec_of(d);
    int i = get(&r->errors);

    if (i < 64)
        r->errs[i] = err;
    bump(&r->errors);
}

static void cb_close(pants_datagram_t *d)
{
    struct rec *r = rec_of(d);

    bump(&r->closes);
}

static const pants_datagram_callbacks_t rec_cb = {cb_listen, cb_read, cb_write, cb_close, cb_error};

static void rec_free(struct rec *r)
{
    for (int i = 0; i < MAXPKT; i++)
        free(r->pkts[i].data);
    free(r);
}

/* ---- Engine and datagrams ----------------------------------------------- */

static pants_engine_t *engine_with(const pants_engine_options_t *opts)
{
    pants_engine_options_t o = opts ? *opts : (pants_engine_options_t){0};
    pants_engine_t *e;

    o.threads = 1;
    e = pants_engine_new(&o);
    ck_assert_ptr_nonnull(e);
    return e;
}

static pants_loop_t *loop0(pants_engine_t *e)
{
    return pants_engine_loop(e, 0);
}

/* A recorder and its datagram (before the engine runs); listens on address
 * unless it is NULL. */
static struct rec *dgram(pants_engine_t *e, const char *address)
{
    struct rec *r = calloc(1, sizeof(*r));

    ck_assert_ptr_nonnull(r);
    r->d = pants_datagram_new(loop0(e), &rec_cb, r);
    ck_assert_ptr_nonnull(r->d);
    if (address != NULL)
        ck_assert_int_eq(pants_datagram_listen(r->d, address), 0);
    return r;
}

static void start(pants_engine_t *e)
{
    ck_assert_int_eq(pants_engine_start(e), 0);
}

/* Stop, join, free; nothing may be left. */
static void finish(pants_engine_t *e)
{
    pants_engine_stop(e);
    ck_assert_int_eq(pants_engine_join(e), 0);
    pants_engine_free(e);
    ck_assert_int_eq(pants_live_objects(), 0);
}

static void fmt(const pants_addr_t *a, char *buf, size_t len)
{
    ck_assert_int_eq(pants_addr_format(a, buf, len), 0);
}

/* ---- Calls made on the loop --------------------------------------------- */

struct call {
    struct rec *r;       /* whose datagram */
    const char *address; /* for write / listen */
    const void *data;    /* for write */
    size_t len;
    const pants_addr_t *to; /* for write_to */
    pants_addr_t addr;      /* local_address result */
    size_t n;               /* pending result / limit */
    int rc;                 /* what the call returned */
};

static void do_write(void *arg)
{
    struct call *c = arg;

    c->rc = c->to ? pants_datagram_write_to(c->r->d, c->data, c->len, c->to)
                  : pants_datagram_write(c->r->d, c->data, c->len, c->address);
}

static int loop_write(struct rec *r, const char *address, const void *data, size_t len)
{
    struct call c = {.r = r, .address = address, .data = data, .len = len};

    pt_on_loop(pants_datagram_loop(r->d), do_write, &c);
    return c.rc;
}

static int loop_write_to(struct rec *r, const pants_addr_t *to, const void *data, size_t len)
{
    struct call c = {.r = r, .to = to, .data = data, .len = len};

    pt_on_loop(pants_datagram_loop(r->d), do_write, &c);
    return c.rc;
}

static void do_local(void *arg)
{
    struct call *c = arg;

    c->rc = pants_datagram_local_address(c->r->d, &c->addr);
}

static pants_addr_t loop_local(struct rec *r)
{
    struct call c = {.r = r};

    pt_on_loop(pants_datagram_loop(r->d), do_local, &c);
    ck_assert_int_eq(c.rc, 0);
    return c.addr;
}

static void do_fd(void *arg)
{
    struct call *c = arg;

    c->rc = pants_datagram_fd(c->r->d);
}

/* pants_datagram_fd, on the loop. */
static int loop_fd(struct rec *r)
{
    struct call c = {.r = r};

    pt_on_loop(pants_datagram_loop(r->d), do_fd, &c);
    return c.rc;
}

/* pants_datagram_local_address's result, on the loop. */
static int loop_local_rc(struct rec *r)
{
    struct call c = {.r = r};

    pt_on_loop(pants_datagram_loop(r->d), do_local, &c);
    return c.rc;
}

static void do_close(void *arg)
{
    struct call *c = arg;
    int before = get(&c->r->closes);

    pants_datagram_close(c->r->d);
    c->rc = get(&c->r->closes) - before; /* must stay 0: on_close comes later */
}

/* Close r's datagram and wait for on_close. */
static void loop_close(struct rec *r)
{
    struct call c = {.r = r};

    pt_on_loop(pants_datagram_loop(r->d), do_close, &c);
    ck_assert_int_eq(c.rc, 0);
    ck_assert(pt_wait(&r->closes, 5000));
}

static void do_end(void *arg)
{
    struct call *c = arg;

    c->rc = pants_datagram_end(c->r->d);
}

static int loop_end(struct rec *r)
{
    struct call c = {.r = r};

    pt_on_loop(pants_datagram_loop(r->d), do_end, &c);
    return c.rc;
}

static size_t loop_pending(struct rec *r)
{
    return pants_datagram_pending(r->d); /* any thread */
}

/* ---- Plain sockets on the test thread ----------------------------------- */

/* A plain datagram socket bound to address ("127.0.0.1:0", "unix:/p"). */
static int raw_socket(const char *address)
{
    pants_addr_t a;
    int fd;

    ck_assert_int_eq(pants_addr_parse(&a, address), 0);
    if (strncmp(address, "unix:/", 6) == 0)
        unlink(address + 5); /* left by an earlier test of this process (CK_FORK=no) */
    fd = socket(a.ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a.ss, a.len), 0);
    return fd;
}

static pants_addr_t raw_addr(int fd)
{
    pants_addr_t a;

    memset(&a, 0, sizeof(a));
    a.len = sizeof(a.ss);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a.ss, &a.len), 0);
    return a;
}

static void raw_send(int fd, const void *data, size_t len, const pants_addr_t *to)
{
    ck_assert_int_eq(sendto(fd, data, len, 0, (const struct sockaddr *)&to->ss, to->len), (ssize_t)len);
}

/* One packet within ms, or -1. */
static ssize_t raw_recv(int fd, void *buf, size_t cap, pants_addr_t *from, int ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    pants_addr_t ignored;

    if (from == NULL)
        from = &ignored;
    if (poll(&p, 1, ms) != 1)
        return -1;
    from->len = sizeof(from->ss);
    return recvfrom(fd, buf, cap, MSG_DONTWAIT, (struct sockaddr *)&from->ss, &from->len);
}

/* Receive exactly the string want within 3 s. */
static void raw_expect(int fd, const char *want)
{
    char buf[256];
    ssize_t n = raw_recv(fd, buf, sizeof(buf) - 1, NULL, 3000);

    ck_assert_int_eq(n, (ssize_t)strlen(want));
    buf[n] = '\0';
    ck_assert_str_eq(buf, want);
}

static const char *unix_path(const char *address)
{
    return address + strlen("unix:");
}

/* ---- Life cycle --------------------------------------------------------- */

START_TEST(test_new_close)
{
    pants_engine_t *e = engine_with(NULL);
    struct rec *r = dgram(e, NULL);

    pants_datagram_close(r->d); /* before run: on_close once it runs */
    ck_assert_int_eq(get(&r->closes), 0);
    start(e);
    ck_assert(pt_wait(&r->closes, 5000));
    pt_sleep_ms(20);
    ck_assert_int_eq(get(&r->closes), 1);
    ck_assert_int_eq(get(&r->listens) + get(&r->errors) + get(&r->after_close), 0);
    finish(e);
    rec_free(r);
}
END_TEST

START_TEST(test_listen_and_local_address)
{
    pants_engine_t *e = engine_with(NULL);
    struct rec *r = dgram(e, "127.0.0.1:0");
    pants_addr_t a;
    char buf[64];

    pants_addr_t by_fd = {.len = sizeof(by_fd.ss)};
    struct rec *unbound = dgram(e, NULL);

    ck_assert_int_eq(get(&r->listens), 0); /* never inside the call */
    ck_assert_int_eq(pants_datagram_local_address(r->d, &a), 0);
    ck_assert_int_eq(a.ss.ss_family, AF_INET);
    ck_assert_uint_ne(ntohs(((struct sockaddr_in *)&a.ss)->sin_port), 0);
    ck_assert_int_ge(pants_datagram_fd(r->d), 0); /* the socket, for options */
    ck_assert_int_eq(getsockname(pants_datagram_fd(r->d), (struct sockaddr *)&by_fd.ss, &by_fd.len), 0);
    ck_assert_int_eq(memcmp(&by_fd.ss, &a.ss, a.len), 0);
    ck_assert_int_eq(pants_datagram_fd(unbound->d), -1); /* none yet */
    ck_assert_int_eq(pants_datagram_fd(NULL), -1);
    ck_assert_int_eq(pants_datagram_listen(r->d, "127.0.0.1:0"), -EALREADY);
    start(e);
    ck_assert(pt_wait(&r->listens, 5000));
    a = loop_local(r);
    fmt(&a, buf, sizeof(buf));
    ck_assert_int_eq(strncmp(buf, "127.0.0.1:", 10), 0);
    loop_close(r);
    ck_assert_int_eq(get(&r->closes), 1);
    ck_assert_int_eq(get(&r->listens), 1);
    ck_assert_int_eq(get(&r->after_close), 0);
    finish(e);
    rec_free(r);
    rec_free(unbound);
}
END_TEST

/* ---- Packets ------------------------------------------------------------ */

START_TEST(test_two_packets_stay_two)
{
    pants_engine_t *e = engine_with(NULL);
    struct rec *r = dgram(e, "127.0.0.1:0");
    int fd = raw_socket("127.0.0.1:0");
    pants_addr_t to, me = raw_addr(fd);
    char want[64], got[64];

    start(e);
    to = loop_local(r);
    raw_send(fd, "hello", 5, &to);
    raw_send(fd, "world!!", 7, &to);
    ck_assert(pt_wait_count(&r->reads, 2, 5000));
    pt_sleep_ms(20);
    ck_assert_int_eq(get(&r->reads), 2);
    ck_assert_uint_eq(r->pkts[0].len, 5);
    ck_assert_mem_eq(r->pkts[0].data, "hello", 5);
    ck_assert_uint_eq(r->pkts[1].len, 7);
    ck_assert_mem_eq(r->pkts[1].data, "world!!", 7);
    fmt(&me, want, sizeof(want));
    fmt(&r->pkts[1].from, got, sizeof(got));
    ck_assert_str_eq(got, want);
    close(fd);
    finish(e);
    ck_assert_int_eq(get(&r->closes), 1);
    rec_free(r);
}
END_TEST

START_TEST(test_reply_reaches_sender)
{
    pants_engine_t *e = engine_with(NULL);
    struct rec *r = dgram(e, "127.0.0.1:0");
    int fd = raw_socket("127.0.0.1:0");
    pants_addr_t to, from;
    char buf[16], a1[64], a2[64];

    r->echo = true;
    start(e);
    to = loop_local(r);
    raw_send(fd, "ping", 4, &to);
    ck_assert_int_eq(raw_recv(fd, buf, sizeof(buf), &from, 3000), 4);
    ck_assert_mem_eq(buf, "ping", 4);
    fmt(&to, a1, sizeof(a1));
    fmt(&from, a2, sizeof(a2));
    ck_assert_str_eq(a1, a2);
    ck_assert(pt_wait(&r->reads, 5000));
    ck_assert_int_eq(r->echo_rc, 0);
    close(fd);
    finish(e);
    rec_free(r);
}
END_TEST

START_TEST(test_zero_length_packet)
{
    pants_engine_t *e = engine_with(NULL);
    struct rec *r = dgram(e, "127.0.0.1:0");
    int fd = raw_socket("127.0.0.1:0");
    pants_addr_t to, me = raw_addr(fd);
    char buf[8];

    start(e);
    to = loop_local(r);
    raw_send(fd, "", 0, &to);
    ck_assert(pt_wait(&r->reads, 5000));
    ck_assert_uint_eq(r->pkts[0].len, 0);
    ck_assert_int_eq(loop_write_to(r, &me, NULL, 0), 0);
    ck_assert_int_eq(raw_recv(fd, buf, sizeof(buf), NULL, 3000), 0);
    close(fd);
    finish(e);
    rec_free(r);
}
END_TEST

/* Writes made before the engine runs go out once it does, in order. */
START_TEST(test_write_before_run)
{
    pants_engine_t *e = engine_with(NULL);
    struct rec *cli = dgram(e, NULL);
    int fd = raw_socket("127.0.0.1:0");
    pants_addr_t to = raw_addr(fd);

    ck_assert_int_eq(pants_datagram_write_to(cli->d, "early", 5, &to), 0);
    ck_assert_int_eq(pants_datagram_write_to(cli->d, "bird", 4, &to), 0);
    ck_assert_uint_eq(pants_datagram_pending(cli->d), 9);
    start(e);
    raw_expect(fd, "early");
    raw_expect(fd, "bird");
    ck_assert(pt_wait(&cli->writes, 5000));
    ck_assert_int_eq(get(&cli->writes), 1); /* once for both */
    close(fd);
    finish(e);
    rec_free(cli);
}
END_TEST

/* A datagram that never listened gets a socket from its first write, and
 * replies reach it. */
START_TEST(test_writer_gets_replies)
{
    pants_engine_t *e = engine_with(NULL);
    struct rec *srv = dgram(e, "127.0.0.1:0");
    struct rec *cli = dgram(e, NULL);
    pants_addr_t to, local;
    char buf[64];

    srv->echo = true;
    start(e);
    to = loop_local(srv);
    ck_assert_int_eq(loop_write_to(cli, &to, "marco", 5), 0);
    ck_assert(pt_wait(&cli->reads, 5000));
    ck_assert_mem_eq(cli->pkts[0].data, "marco", 5);
    local = loop_local(cli);
    ck_assert_int_eq(local.ss.ss_family, AF_INET);
    ck_assert_uint_ne(ntohs(((struct sockaddr_in *)&local.ss)->sin_port), 0);
    fmt(&to, buf, sizeof(buf));
    ck_assert_int_eq(loop_write(cli, buf, "polo", 4), 0); /* the string form */
    ck_assert(pt_wait_count(&cli->reads, 2, 5000));
    ck_assert_mem_eq(cli->pkts[1].data, "polo", 4);
    ck_assert(pt_wait(&cli->writes, 5000)); /* the queue emptied */
    finish(e);
    ck_assert_int_eq(get(&cli->closes) + get(&srv->closes), 2);
    rec_free(srv);
    rec_free(cli);
}
END_TEST

struct sender {
    pants_addr_t to; /* the echo datagram */
    int id;          /* thread number */
    int ok;          /* replies that matched */
};

static void *ping_pong(void *arg)
{
    struct sender *s = arg;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    for (int i = 0; i < 50 && fd >= 0; i++) {
        char msg[32], buf[64];
        int n = snprintf(msg, sizeof(msg), "t%d-%d", s->id, i);
        struct pollfd p = {fd, POLLIN, 0};
        if (sendto(fd, msg, (size_t)n, 0, (struct sockaddr *)&s->to.ss, s->to.len) != n ||
            poll(&p, 1, 3000) != 1)
            break;
        if (recv(fd, buf, sizeof(buf), 0) == n && memcmp(buf, msg, (size_t)n) == 0)
            s->ok++;
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

START_TEST(test_many_senders)
{
    enum { NSENDERS = 8 };
    pants_engine_t *e = engine_with(NULL);
    struct rec *r = dgram(e, "127.0.0.1:0");
    struct sender s[NSENDERS];
    pthread_t th[NSENDERS];

    r->echo = true;
    start(e);
    for (int i = 0; i < NSENDERS; i++) {
        s[i] = (struct sender){.to = loop_local(r), .id = i};
        ck_assert_int_eq(pthread_create(&th[i], NULL, ping_pong, &s[i]), 0);
    }
    for (int i = 0; i < NSENDERS; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(s[i].ok, 50);
    }
    ck_assert_int_eq(get(&r->reads), NSENDERS * 50);
    ck_assert_int_eq(r->echo_rc, 0);
    finish(e);
    rec_free(r);
}
END_TEST

static void fill_pattern(unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 7 + 3);
}

START_TEST(test_largest_udp4_packet)
{
    enum { BIG = 65507 };
    pants_engine_t *e = engine_with(NULL);
    struct rec *r = dgram(e, "127.0.0.1:0");
    int fd = raw_socket("127.0.0.1:0");
    unsigned char *out = malloc(BIG + 1), *in = malloc(BIG + 16);
    pants_addr_t to;

    r->echo = true;
    fill_pattern(out, BIG + 1);
    start(e);
    to = loop_local(r);
    raw_send(fd, out, BIG, &to);
    ck_assert(pt_wait(&r->reads, 5000));
    ck_assert_uint_eq(r->pkts[0].len, BIG);
    ck_assert_mem_eq(r->pkts[0].data, out, BIG);
    ck_assert_int_eq(raw_recv(fd, in, BIG + 16, NULL, 3000), BIG); /* the echo, whole */
    ck_assert_mem_eq(in, out, BIG);
    ck_assert_int_eq(r->echo_rc, 0);
    ck_assert_int_eq(loop_write_to(r, &r->pkts[0].from, out, BIG + 1), -EMSGSIZE);
    close(fd);
    finish(e);
    free(out);
    free(in);
    rec_free(r);
}
END_TEST

START_TEST(test_packet_size_limits)
{
    pants_engine_t *e = engine_with(NULL);
    struct rec *r6 = dgram(e, "[::1]:0");
    struct rec *cli = dgram(e, NULL);
    unsigned char *big = calloc(1, 70000);
    char unix_addr[128];
    pants_addr_t to;

    pt_unix_addr(unix_addr, sizeof(unix_addr), "limits");
    start(e);
    to = loop_local(r6);
    ck_assert_int_eq(loop_write(cli, "127.0.0.1:9", big, 65508), -EMSGSIZE);
    ck_assert_int_eq(loop_write_to(cli, &to, big, 65528), -EMSGSIZE);
    ck_assert_int_eq(loop_write(cli, unix_addr, big, 65537), -EMSGSIZE);
    ck_assert_int_eq(loop_write(cli, "name.invalid:9", big, 65528), -EMSGSIZE);
    ck_assert_int_eq(pants_datagram_pending(cli->d), 0);
    ck_assert_int_eq(loop_write_to(cli, &to, big, 65527), 0); /* IPv6 allows 20 bytes more */
    ck_assert(pt_wait(&r6->reads, 5000));
    ck_assert_uint_eq(r6->pkts[0].len, 65527);
    finish(e);
    ck_assert_int_eq(get(&cli->errors), 0);
    free(big);
    rec_free(r6);
    rec_free(cli);
}
END_TEST

START_TEST(test_ipv6)
{
    pants_engine_t *e = engine_with(NULL);
    struct rec *r = dgram(e, "[::1]:0");
    int fd = raw_socket("[::1]:0");
    pants_addr_t to, me = raw_addr(fd);
    char want[64], got[64];

    r->echo = true;
    start(e);
    to = loop_local(r);
    ck_assert_int_eq(to.ss.ss_family, AF_INET6);
    raw_send(fd, "six", 3, &to);
    raw_expect(fd, "six");
    ck_assert(pt_wait(&r->reads, 5000)); /* orders the recorded packet before us */
    fmt(&me, want, sizeof(want));
    fmt(&r->pkts[0].from, got, sizeof(got));
    ck_assert_str_eq(got, want);
    ck_assert_int_eq(strncmp(got, "[::1]:", 6), 0);
    close(fd);
    finish(e);
    rec_free(r);
}
END_TEST

/* ":0" is dual-stack: IPv4 senders show as plain IPv4 and get replies. */
START_TEST(test_dual_stack_listen)
{
    pants_engine_t *e = engine_with(NULL);
    struct rec *r = dgram(e, ":0");
    int fd4 = raw_socket("127.0.0.1:0"), fd6 = raw_socket("[::1]:0");
    pants_addr_t local, to4, to6, me4 = raw_addr(fd4);
    char want[64], got[64];

    r->echo = true;
    start(e);
    local = loop_local(r);
    ck_assert_int_eq(local.ss.ss_family, AF_INET6);
    snprintf(want, sizeof(want), "127.0.0.1:%u", ntohs(((struct sockaddr_in6 *)&local.ss)->sin6_port));
    ck_assert_int_eq(pants_addr_parse(&to4, want), 0);
    snprintf(want, sizeof(want), "[::1]:%u", ntohs(((struct sockaddr_in6 *)&local.ss)->sin6_port));
    ck_assert_int_eq(pants_addr_parse(&to6, want), 0);
    raw_send(fd4, "four", 4, &to4);
    raw_expect(fd4, "four");
    raw_send(fd6, "six", 3, &to6);
    raw_expect(fd6, "six");
    ck_assert(pt_wait_count(&r->reads, 2, 5000));
    ck_assert_int_eq(r->pkts[0].from.ss.ss_family, AF_INET);
    fmt(&me4, want, sizeof(want));
    fmt(&r->pkts[0].from, got, sizeof(got));
    ck_assert_str_eq(got, want);
    ck_assert_int_eq(loop_write_to(r, &me4, "again", 5), 0); /* IPv4 from an IPv6 socket */
    raw_expect(fd4, "again");
    close(fd4);
    close(fd6);
    finish(e);
    rec_free(r);
}
END_TEST

START_TEST(test_family_mismatch)
{
    pants_engine_t *e = engine_with(NULL);
    struct rec *cli = dgram(e, NULL);
    int fd = raw_socket("127.0.0.1:0");
    pants_addr_t to = raw_addr(fd);
    char unix_addr[128];

    pt_unix_addr(unix_addr, sizeof(unix_addr), "nobody");
    start(e);
    ck_assert_int_eq(loop_write_to(cli, &to, "v4", 2), 0);
    raw_expect(fd, "v4");
    ck_assert_int_eq(loop_write(cli, "[::1]:9", "v6", 2), -EAFNOSUPPORT);
    ck_assert_int_eq(loop_write(cli, unix_addr, "u", 1), -EAFNOSUPPORT);
    ck_assert_int_eq(loop_write(cli, "[::ffff:127.0.0.1]:9", "m", 1), 0); /* v4-mapped is IPv4 */
    close(fd);
    finish(e);
    rec_free(cli);
}
END_TEST

/* ---- Unix datagrams ----------------------------------------------------- */

START_TEST(test_unix_reply_to_bound_client)
{
    pants_engine_t *e = engine_with(NULL);
    char sa[128], ca[128], got[160];
    struct rec *srv, *cli;

    pt_unix_addr(sa, sizeof(sa), "srv");
    pt_unix_addr(ca, sizeof(ca), "cli");
    srv = dgram(e, sa);
    cli = dgram(e, ca);
    srv->echo = true;
    start(e);
    ck_assert_int_eq(loop_write(cli, sa, "hi there", 8), 0);
    ck_assert(pt_wait(&cli->reads, 5000));
    ck_assert_mem_eq(cli->pkts[0].data, "hi there", 8);
    ck_assert(pt_wait(&srv->reads, 5000));
    fmt(&srv->pkts[0].from, got, sizeof(got));
    ck_assert_str_eq(got, ca);
    fmt(&cli->pkts[0].from, got, sizeof(got));
    ck_assert_str_eq(got, sa);
    finish(e);
    ck_assert_int_eq(access(unix_path(sa), F_OK), -1); /* removed on close */
    ck_assert_int_eq(access(unix_path(ca), F_OK), -1);
    rec_free(srv);
    rec_free(cli);
}
END_TEST

/* A Unix writer that never listened is autobound, so replies reach it. */
START_TEST(test_unix_autobound_writer)
{
    pants_engine_t *e = engine_with(NULL);
    char sa[128], got[160];
    struct rec *srv, *cli;
    pants_addr_t local;

    pt_unix_addr(sa, sizeof(sa), "srv");
    srv = dgram(e, sa);
    cli = dgram(e, NULL);
    srv->echo = true;
    start(e);
    ck_assert_int_eq(loop_write(cli, sa, "anon", 4), 0);
    ck_assert(pt_wait(&cli->reads, 5000));
    ck_assert_mem_eq(cli->pkts[0].data, "anon", 4);
    local = loop_local(cli);
    fmt(&local, got, sizeof(got));
    ck_assert_int_eq(strncmp(got, "unix:@", 6), 0);
    finish(e);
    rec_free(srv);
    rec_free(cli);
}
END_TEST

/* Linux abstract names: no file, replies work the same. */
START_TEST(test_unix_abstract)
{
    pants_engine_t *e = engine_with(NULL);
    char sa[64], got[96];
    struct rec *srv, *cli;

    snprintf(sa, sizeof(sa), "unix:@pants-dgram-test-%d", (int)getpid());
    srv = dgram(e, sa);
    cli = dgram(e, NULL);
    srv->echo = true;
    start(e);
    ck_assert_int_eq(loop_write(cli, sa, "abstract", 8), 0);
    ck_assert(pt_wait(&cli->reads, 5000));
    ck_assert_mem_eq(cli->pkts[0].data, "abstract", 8);
    fmt(&cli->pkts[0].from, got, sizeof(got));
    ck_assert_str_eq(got, sa);
    finish(e);
    rec_free(srv);
    rec_free(cli);
}
END_TEST

START_TEST(test_unix_stale_file_and_in_use)
{
    pants_engine_t *e = engine_with(NULL);
    char sa[128], fa[128];
    struct rec *a, *b, *c;
    int fd;
    FILE *f;

    pt_unix_addr(sa, sizeof(sa), "stale");
    fd = raw_socket(sa); /* bound, then closed: the file stays, stale */
    close(fd);
    ck_assert_int_eq(access(unix_path(sa), F_OK), 0);
    a = dgram(e, sa); /* replaced */
    b = dgram(e, NULL);
    ck_assert_int_eq(pants_datagram_listen(b->d, sa), -EADDRINUSE); /* a is alive */
    pt_unix_addr(fa, sizeof(fa), "regular");
    f = fopen(unix_path(fa), "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    c = dgram(e, NULL);
    ck_assert_int_eq(pants_datagram_listen(c->d, fa), -EADDRINUSE); /* not a socket: kept */
    ck_assert_int_eq(access(unix_path(fa), F_OK), 0);
    start(e);
    ck_assert(pt_wait(&a->listens, 5000));
    loop_close(a);
    ck_assert_int_eq(access(unix_path(sa), F_OK), -1);
    finish(e);
    ck_assert_int_eq(get(&b->listens) + get(&c->listens), 0);
    rec_free(a);
    rec_free(b);
    rec_free(c);
}
END_TEST

/* A packet larger than the receive room is reported, never passed on cut. */
START_TEST(test_truncated_packet_reported)
{
    pants_engine_t *e = engine_with(NULL);
    char sa[128], ra[128];
    struct rec *srv;
    unsigned char *big = calloc(1, 70000);
    pants_addr_t to;
    int fd;

    pt_unix_addr(sa, sizeof(sa), "srv");
    pt_unix_addr(ra, sizeof(ra), "raw");
    srv = dgram(e, sa);
    fd = raw_socket(ra);
    ck_assert_int_eq(pants_addr_parse(&to, sa), 0);
    start(e);
    ck_assert(pt_wait(&srv->listens, 5000));
    raw_send(fd, big, 70000, &to);
    raw_send(fd, "ok", 2, &to);
    ck_assert(pt_wait(&srv->reads, 5000));
    ck_assert(pt_wait(&srv->errors, 5000));
    ck_assert_int_eq(srv->errs[0], -EMSGSIZE);
    ck_assert_uint_eq(srv->pkts[0].len, 2);
    pt_sleep_ms(20);
    ck_assert_int_eq(get(&srv->reads), 1);
    close(fd);
    finish(e);
    free(big);
    rec_free(srv);
}
END_TEST

/* ---- Queueing and back-pressure ----------------------------------------- */

struct burst {
    struct rec *r;         /* the writer */
    const char *address;   /* where to */
    int count;             /* packets to write; -1 = until refused */
    size_t size;           /* bytes each */
    int written;           /* accepted */
    int rc;                /* the refusal */
    size_t pending_before; /* pending before the refused write */
    size_t pending_after;  /* and after it */
    int on_write_inside;   /* on_write calls seen inside the burst: must be 0 */
};

/* Numbered packets: "<n>" then padding up to size. */
static void do_burst(void *arg)
{
    struct burst *b = arg;
    char *buf = calloc(1, b->size);
    int before = get(&b->r->writes);

    for (b->written = 0; b->count < 0 || b->written < b->count; b->written++) {
        snprintf(buf, b->size, "%d", b->written);
        b->pending_before = pants_datagram_pending(b->r->d);
        b->rc = pants_datagram_write(b->r->d, buf, b->size, b->address);
        b->pending_after = pants_datagram_pending(b->r->d);
        if (b->rc != 0)
            break;
    }
    b->on_write_inside = get(&b->r->writes) - before;
    free(buf);
}

/* Read n numbered packets of size bytes from fd, in order. */
static void expect_numbered(int fd, int n, size_t size)
{
    char *buf = malloc(size + 1);

    for (int i = 0; i < n; i++) {
        ssize_t got = raw_recv(fd, buf, size + 1, NULL, 3000);
        ck_assert_int_eq(got, (ssize_t)size);
        ck_assert_int_eq(atoi(buf), i);
        if (i % 16 == 0)
            pt_sleep_ms(1); /* a slow receiver */
    }
    free(buf);
}

START_TEST(test_eagain_queues_in_order)
{
    pants_engine_t *e = engine_with(NULL);
    char ra[128];
    struct rec *cli = dgram(e, NULL);
    int fd;
    struct burst b;

    pt_unix_addr(ra, sizeof(ra), "slow");
    fd = raw_socket(ra); /* does not read yet: its queue fills */
    b = (struct burst){.r = cli, .address = ra, .count = 300, .size = 1000};
    start(e);
    pt_on_loop(loop0(e), do_burst, &b);
    ck_assert_int_eq(b.rc, 0);
    ck_assert_int_eq(b.on_write_inside, 0);
    pt_sleep_ms(50);
    ck_assert_uint_gt(loop_pending(cli), 0); /* the kernel said EAGAIN: queued */
    ck_assert_int_eq(get(&cli->writes), 0);
    expect_numbered(fd, 300, 1000);
    ck_assert(pt_wait(&cli->writes, 5000)); /* on_write once the queue emptied */
    ck_assert_uint_eq(loop_pending(cli), 0);
    ck_assert_int_eq(get(&cli->errors), 0);
    close(fd);
    finish(e);
    rec_free(cli);
}
END_TEST

static void do_limit(void *arg)
{
    struct call *c = arg;

    c->rc = pants_datagram_set_queue_limit(c->r->d, c->n);
}

START_TEST(test_queue_limit_enobufs)
{
    pants_engine_t *e = engine_with(NULL);
    static char buf[10001];
    char ra[128];
    struct rec *cli = dgram(e, NULL);
    struct call c = {.r = cli, .n = 0};
    struct burst b;
    int fd;

    pt_unix_addr(ra, sizeof(ra), "slow");
    fd = raw_socket(ra);
    start(e);
    pt_on_loop(loop0(e), do_limit, &c);
    ck_assert_int_eq(c.rc, -EINVAL);
    c.n = 10000;
    pt_on_loop(loop0(e), do_limit, &c);
    ck_assert_int_eq(c.rc, 0);
    ck_assert_int_eq(loop_write(cli, ra, buf, 10001), -ENOBUFS); /* larger than the limit */
    b = (struct burst){.r = cli, .address = ra, .count = -1, .size = 1000};
    pt_on_loop(loop0(e), do_burst, &b);
    ck_assert_int_eq(b.rc, -ENOBUFS);
    ck_assert_uint_eq(b.pending_after, b.pending_before); /* nothing half-queued */
    ck_assert_uint_le(b.pending_after, 10000);
    ck_assert_int_gt(b.written, 10);
    expect_numbered(fd, b.written, 1000); /* every accepted packet, in order */
    ck_assert_int_eq(raw_recv(fd, buf, sizeof(buf), NULL, 100), -1);
    ck_assert(pt_wait(&cli->writes, 5000));
    close(fd);
    finish(e);
    rec_free(cli);
}
END_TEST

/* The process's resident memory, in KiB. */
static long rss_kib(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "re");

    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fscanf(f, "%ld %ld", &pages, &resident), 2);
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Fill the queue of the Unix receiver at address from a plain socket of
 * our own until the kernel says EAGAIN; returns how many packets that
 * took.  A sender then gets EAGAIN at once: nothing of it can drain. */
static int fill_receiver(const char *address)
{
    pants_addr_t to;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), n = 0;

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pants_addr_parse(&to, address), 0);
    while (sendto(fd, "f", 1, 0, (const struct sockaddr *)&to.ss, to.len) == 1)
        n++;
    ck_assert_int_eq(errno, EAGAIN);
    close(fd);
    return n;
}

/* Tiny packets to a destination that cannot drain, until -ENOBUFS: the
 * limit counts each packet's real cost (a node of at least 2 KiB), so the
 * default 1 MiB holds at most 512 of them (not a million 1-byte packets,
 * or any number of empty ones), memory stays bounded, pending() still
 * counts payload bytes, and every accepted packet goes out once the
 * receiver reads.  _i: the packet size (0, 1, 100). */
START_TEST(test_queue_limit_counts_packet_cost)
{
    static const size_t sizes[] = {0, 1, 100};
    pants_engine_t *e = engine_with(NULL);
    size_t size = sizes[_i];
    char ra[128], buf[256];
    struct rec *cli = dgram(e, NULL);
    struct burst b;
    int fd, filled, got = 0;
    long rss;

    pt_unix_addr(ra, sizeof(ra), "full");
    fd = raw_socket(ra);
    filled = fill_receiver(ra);
    b = (struct burst){.r = cli, .address = ra, .count = 20000, .size = size};
    start(e);
    rss = rss_kib();
    pt_on_loop(loop0(e), do_burst, &b);
    ck_assert_int_eq(b.rc, -ENOBUFS);
    ck_assert_int_le(b.written, (1 << 20) / 2048);                /* each costs more than 2 KiB */
    ck_assert_int_ge(b.written, (1 << 20) / 4096);                /* but not much more */
    ck_assert_uint_eq(b.pending_after, (size_t)b.written * size); /* payload, all of it queued */
    ck_assert_int_lt(rss_kib() - rss, 16 * 1024);
    while (raw_recv(fd, buf, sizeof(buf), NULL, 3000) >= 0 && ++got < filled + b.written)
        ;
    ck_assert_int_eq(got, filled + b.written);
    ck_assert(pt_wait(&cli->writes, 5000));
    ck_assert_uint_eq(loop_pending(cli), 0);
    ck_assert_int_eq(get(&cli->errors), 0);
    close(fd);
    finish(e);
    rec_free(cli);
}
END_TEST

/* d has no socket, and no descriptor was left open (lowest: the lowest
 * free one before). */
static void assert_no_socket(pants_datagram_t *d, int lowest)
{
    pants_addr_t a;

    ck_assert_int_eq(pants_datagram_fd(d), -1);
    ck_assert_int_eq(pants_datagram_local_address(d, &a), -ENOTCONN);
    ck_assert_int_eq(pt_lowest_free_fd(), lowest);
}

/* A first write refused for room or size leaves no socket behind: the
 * datagram is as before it, and a later write still makes one. */
START_TEST(test_refused_first_write_leaves_no_socket)
{
    static unsigned char big[65508];
    pants_engine_t *e = engine_with(NULL);
    struct rec *cli = dgram(e, NULL);
    int fd = raw_socket("127.0.0.1:0"), lowest = pt_lowest_free_fd();
    pants_addr_t to = raw_addr(fd);
    char la[64];

    fmt(&to, la, sizeof(la));
    ck_assert_int_eq(pants_datagram_set_queue_limit(cli->d, 1000), 0);
    ck_assert_int_eq(pants_datagram_write(cli->d, big, 1500, la), -ENOBUFS); /* larger than the limit */
    assert_no_socket(cli->d, lowest);
    ck_assert_int_eq(pants_datagram_write_to(cli->d, big, 1500, &to), -ENOBUFS);
    assert_no_socket(cli->d, lowest);
    ck_assert_int_eq(pants_datagram_write(cli->d, "x", 1, la), -ENOBUFS); /* its cost is too */
    assert_no_socket(cli->d, lowest);
    ck_assert_int_eq(pants_datagram_set_queue_limit(cli->d, 1 << 20), 0);
    ck_assert_int_eq(pants_datagram_write(cli->d, big, sizeof(big), la), -EMSGSIZE);
    assert_no_socket(cli->d, lowest);
    ck_assert_uint_eq(pants_datagram_pending(cli->d), 0);
    start(e);
    ck_assert_int_eq(loop_write(cli, la, "ok", 2), 0);
    raw_expect(fd, "ok");
    ck_assert_int_ge(loop_fd(cli), 0);
    ck_assert_int_eq(get(&cli->errors), 0);
    close(fd);
    finish(e);
    rec_free(cli);
}
END_TEST

START_TEST(test_end_sends_queue_then_closes)
{
    pants_engine_t *e = engine_with(NULL);
    char ra[128];
    struct rec *cli = dgram(e, NULL);
    struct burst b;
    int fd;

    pt_unix_addr(ra, sizeof(ra), "slow");
    fd = raw_socket(ra);
    b = (struct burst){.r = cli, .address = ra, .count = 50, .size = 500};
    start(e);
    pt_on_loop(loop0(e), do_burst, &b);
    ck_assert_int_eq(loop_end(cli), 0);
    ck_assert_int_eq(loop_end(cli), 0); /* again: harmless */
    ck_assert_int_eq(loop_write(cli, ra, "late", 4), -EPIPE);
    pt_sleep_ms(50);
    ck_assert_int_eq(get(&cli->closes), 0); /* still sending */
    expect_numbered(fd, 50, 500);
    ck_assert(pt_wait(&cli->closes, 5000));
    close(fd);
    finish(e);
    ck_assert_int_eq(get(&cli->after_close), 0);
    rec_free(cli);
}
END_TEST

START_TEST(test_close_drops_queue)
{
    pants_engine_t *e = engine_with(NULL);
    char ra[128], buf[600];
    struct rec *cli = dgram(e, NULL);
    struct burst b;
    int fd, got = 0;

    pt_unix_addr(ra, sizeof(ra), "slow");
    fd = raw_socket(ra);
    b = (struct burst){.r = cli, .address = ra, .count = 50, .size = 500};
    start(e);
    pt_on_loop(loop0(e), do_burst, &b);
    pt_sleep_ms(20);
    loop_close(cli);
    while (raw_recv(fd, buf, sizeof(buf), NULL, 100) > 0)
        got++;
    ck_assert_int_lt(got, 50); /* only what the kernel had taken */
    ck_assert_int_eq(get(&cli->closes), 1);
    ck_assert_int_eq(get(&cli->writes), 0);
    close(fd);
    finish(e);
    rec_free(cli);
}
END_TEST

/* ---- Errors ------------------------------------------------------------- */

static pants_addr_t dead_port(void)
{
    int fd = raw_socket("127.0.0.1:0");
    pants_addr_t a = raw_addr(fd);

    close(fd);
    return a;
}

/* An ICMP port unreachable reaches on_error; the datagram goes on. */
START_TEST(test_refused_keeps_working)
{
    pants_engine_t *e = engine_with(NULL);
    struct rec *cli = dgram(e, NULL);
    pants_addr_t dead = dead_port();
    int fd = raw_socket("127.0.0.1:0");
    pants_addr_t live = raw_addr(fd);

    start(e);
    ck_assert_int_eq(loop_write_to(cli, &dead, "x", 1), 0);
    ck_assert(pt_wait(&cli->errors, 5000));
    ck_assert_int_eq(cli->errs[0], -ECONNREFUSED);
    ck_assert_int_eq(loop_write_to(cli, &live, "still", 5), 0);
    raw_expect(fd, "still");
    ck_assert_int_eq(loop_write_to(cli, &dead, "y", 1), 0);
    ck_assert(pt_wait_count(&cli->errors, 2, 5000));
    ck_assert_int_eq(loop_write_to(cli, &live, "alive", 5), 0);
    raw_expect(fd, "alive");
    ck_assert_int_eq(get(&cli->closes), 0);
    close(fd);
    finish(e);
    rec_free(cli);
}
END_TEST

/* A server replies to a sender that has gone away. */
START_TEST(test_replied_to_gone_sender)
{
    pants_engine_t *e = engine_with(NULL);
    struct rec *srv = dgram(e, "127.0.0.1:0");
    int fd = raw_socket("127.0.0.1:0");
    pants_addr_t to;

    srv->echo = true;
    start(e);
    to = loop_local(srv);
    raw_send(fd, "bye", 3, &to);
    ck_assert(pt_wait(&srv->reads, 5000));
    close(fd);
    ck_assert_int_eq(loop_write_to(srv, &srv->pkts[0].from, "too late", 8), 0);
    ck_assert(pt_wait(&srv->errors, 5000));
    ck_assert_int_eq(srv->errs[0], -ECONNREFUSED);
    fd = raw_socket("127.0.0.1:0");
    raw_send(fd, "next", 4, &to);
    raw_expect(fd, "next");
    close(fd);
    finish(e);
    rec_free(srv);
}
END_TEST

/* Unix: a destination no one reads is refused per packet, reported, and
 * the packets behind it still go. */
START_TEST(test_unix_missing_destination)
{
    pants_engine_t *e = engine_with(NULL);
    char ra[128], gone[128];
    struct rec *cli = dgram(e, NULL);
    int fd;

    pt_unix_addr(ra, sizeof(ra), "live");
    pt_unix_addr(gone, sizeof(gone), "gone");
    fd = raw_socket(ra);
    start(e);
    ck_assert_int_eq(loop_write(cli, ra, "a", 1), 0); /* makes the socket */
    raw_expect(fd, "a");
    ck_assert_int_eq(loop_write(cli, gone, "b", 1), 0);
    ck_assert_int_eq(loop_write(cli, ra, "c", 1), 0);
    raw_expect(fd, "c");
    ck_assert(pt_wait(&cli->errors, 5000));
    ck_assert_int_eq(cli->errs[0], -ENOENT);
    close(fd);
    finish(e);
    rec_free(cli);
}
END_TEST

START_TEST(test_malformed_addresses)
{
    static const char *bad[] = {"nonsense", "1.2.3:80", "[::1",          "[::1]80",     "host",   "unix:",
                                ":80",      "*:80",     "1.2.3.4:99999", "127.0.0.1:0", "a b:80", "unix:@"};
    pants_engine_t *e = engine_with(NULL);
    struct rec *r = dgram(e, NULL);

    ck_assert_int_eq(pants_datagram_listen(r->d, "nonsense"), -EINVAL);
    ck_assert_int_eq(pants_datagram_listen(r->d, "example.com:80"), -EINVAL); /* names: no */
    ck_assert_int_eq(pants_datagram_listen(r->d, NULL), -EINVAL);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(pants_datagram_write(r->d, "x", 1, bad[i]) == -EINVAL, "%s", bad[i]);
    ck_assert_int_eq(pants_datagram_write(r->d, NULL, 1, "127.0.0.1:9"), -EINVAL);
    ck_assert_int_eq(pants_datagram_write_to(r->d, "x", 1, NULL), -EINVAL);
    ck_assert_int_eq(pants_datagram_pending(r->d), 0);
    start(e);
    pt_sleep_ms(50);
    ck_assert_int_eq(get(&r->errors) + get(&r->listens) + get(&r->reads), 0);
    finish(e);
    rec_free(r);
}
END_TEST

/* ---- Names -------------------------------------------------------------- */

static void write_bad_name(void *arg)
{
    struct rec *r = arg;
    int before = get(&r->errors);

    r->echo_rc = pants_datagram_write(r->d, "b", 1, "no-such-host.invalid:9");
    if (r->echo_rc == 0 && get(&r->errors) != before)
        r->echo_rc = -1000;
}

START_TEST(test_name_that_does_not_resolve)
{
    pants_engine_t *e = engine_with(NULL);
    struct rec *cli = dgram(e, NULL);
    int fd = raw_socket("127.0.0.1:0");
    pants_addr_t live = raw_addr(fd);
    char la[64];

    fmt(&live, la, sizeof(la));
    start(e);
    ck_assert_int_eq(loop_write(cli, la, "a", 1), 0);
    pt_on_loop(loop0(e), write_bad_name, cli);
    ck_assert_int_eq(cli->echo_rc, 0); /* queued, and on_error not inside the call */
    ck_assert_int_eq(loop_write(cli, la, "c", 1), 0);
    raw_expect(fd, "a");
    raw_expect(fd, "c");
    ck_assert(pt_wait(&cli->errors, 5000));
    ck_assert_int_eq(cli->errs[0], PANTS_EAI_NONAME);
    ck_assert_uint_eq(loop_pending(cli), 0);
    ck_assert_int_eq(loop_write(cli, la, "d", 1), 0); /* still working */
    raw_expect(fd, "d");
    pt_sleep_ms(20);
    ck_assert_int_eq(get(&cli->errors), 1);
    close(fd);
    finish(e);
    rec_free(cli);
}
END_TEST

/* Packets to a name wait for it in order with the others; the answer is
 * cached, so later packets go without a query. */
START_TEST(test_name_resolves_in_order_and_is_cached)
{
    struct pt_dns dns;
    char server[64], name[64], la[64], buf[16];
    pants_engine_options_t o = {.dns_server = server, .dns_timeout_ms = 3000};
    pants_engine_t *e;
    struct rec *cli;
    int fd = raw_socket("127.0.0.1:0");
    pants_addr_t live = raw_addr(fd);

    pt_dns_start(&dns, 150, server, sizeof(server));
    e = engine_with(&o);
    cli = dgram(e, NULL);
    fmt(&live, la, sizeof(la));
    snprintf(name, sizeof(name), "pants-test.test:%u", ntohs(((struct sockaddr_in *)&live.ss)->sin_port));
    start(e);
    ck_assert_int_eq(loop_write(cli, name, "1", 1), 0);
    ck_assert_int_eq(loop_write(cli, la, "2", 1), 0);
    ck_assert_int_eq(loop_write(cli, name, "3", 1), 0);
    ck_assert_uint_eq(loop_pending(cli), 3);
    ck_assert_int_eq(raw_recv(fd, buf, sizeof(buf), NULL, 50), -1); /* "2" waits behind "1" */
    raw_expect(fd, "1");
    raw_expect(fd, "2");
    raw_expect(fd, "3");
    ck_assert_int_eq(get(&dns.queries_a), 1);
    ck_assert_int_eq(loop_write(cli, name, "4", 1), 0);
    raw_expect(fd, "4");
    ck_assert_int_eq(get(&dns.queries_a), 1); /* from the cache */
    ck_assert_int_eq(get(&cli->errors), 0);
    close(fd);
    finish(e);
    pt_dns_stop(&dns);
    rec_free(cli);
}
END_TEST

/* An answer is used for its TTL, then asked again; TTL 0 means every
 * write asks (once its packet went, the next one asks anew). */
START_TEST(test_name_cached_for_its_ttl)
{
    struct pt_dns dns;
    char server[64], name[64];
    pants_engine_options_t o = {.dns_server = server, .dns_timeout_ms = 3000};
    pants_engine_t *e;
    struct rec *cli;
    int fd = raw_socket("127.0.0.1:0");
    pants_addr_t live = raw_addr(fd);

    pt_dns_start(&dns, 0, server, sizeof(server));
    __atomic_store_n(&dns.ttl, _i == 0 ? 1 : 0, __ATOMIC_SEQ_CST);
    e = engine_with(&o);
    cli = dgram(e, NULL);
    snprintf(name, sizeof(name), "ttl.test:%u", ntohs(((struct sockaddr_in *)&live.ss)->sin_port));
    start(e);
    ck_assert_int_eq(loop_write(cli, name, "1", 1), 0);
    raw_expect(fd, "1");
    ck_assert_int_eq(loop_write(cli, name, "2", 1), 0);
    raw_expect(fd, "2");
    ck_assert_int_eq(get(&dns.queries_a), _i == 0 ? 1 : 2); /* TTL 1: from the cache */
    if (_i == 0) {
        pt_sleep_ms(1300); /* past the TTL */
        ck_assert_int_eq(loop_write(cli, name, "3", 1), 0);
        raw_expect(fd, "3");
        ck_assert_int_eq(get(&dns.queries_a), 2);
    }
    ck_assert_int_eq(get(&cli->errors), 0);
    close(fd);
    finish(e);
    pt_dns_stop(&dns);
    rec_free(cli);
}
END_TEST

/* A name the server says does not exist: on_error(PANTS_EAI_NONAME), the
 * packet is dropped, and the datagram goes on. */
START_TEST(test_name_nxdomain)
{
    struct pt_dns dns;
    char server[64], la[64];
    pants_engine_options_t o = {.dns_server = server, .dns_timeout_ms = 3000};
    pants_engine_t *e;
    struct rec *cli;
    int fd = raw_socket("127.0.0.1:0");
    pants_addr_t live = raw_addr(fd);

    pt_dns_start(&dns, 0, server, sizeof(server));
    e = engine_with(&o);
    cli = dgram(e, NULL);
    fmt(&live, la, sizeof(la));
    start(e);
    ck_assert_int_eq(loop_write(cli, "nx-name.test:9", "lost", 4), 0);
    ck_assert_int_eq(loop_write(cli, la, "after", 5), 0);
    raw_expect(fd, "after");
    ck_assert(pt_wait(&cli->errors, 5000));
    ck_assert_msg(cli->errs[0] == PANTS_EAI_NONAME, "got %d (%s)", cli->errs[0], pants_strerror(cli->errs[0]));
    close(fd);
    finish(e);
    pt_dns_stop(&dns);
    rec_free(cli);
}
END_TEST

/* end() waits for a name still resolving, sends, then closes. */
START_TEST(test_end_waits_for_name)
{
    struct pt_dns dns;
    char server[64], name[64];
    pants_engine_options_t o = {.dns_server = server, .dns_timeout_ms = 3000};
    pants_engine_t *e;
    struct rec *cli;
    int fd = raw_socket("127.0.0.1:0");
    pants_addr_t live = raw_addr(fd);

    pt_dns_start(&dns, 100, server, sizeof(server));
    e = engine_with(&o);
    cli = dgram(e, NULL);
    snprintf(name, sizeof(name), "later.test:%u", ntohs(((struct sockaddr_in *)&live.ss)->sin_port));
    start(e);
    ck_assert_int_eq(loop_write(cli, name, "last words", 10), 0);
    ck_assert_int_eq(loop_end(cli), 0);
    ck_assert_int_eq(get(&cli->closes), 0);
    raw_expect(fd, "last words");
    ck_assert(pt_wait(&cli->closes, 5000));
    close(fd);
    finish(e);
    pt_dns_stop(&dns);
    rec_free(cli);
}
END_TEST

/* close() while a name resolves: the packet is dropped, no on_error. */
START_TEST(test_close_cancels_lookup)
{
    struct pt_dns dns;
    char server[64];
    pants_engine_options_t o = {.dns_server = server, .dns_timeout_ms = 3000};
    pants_engine_t *e;
    struct rec *cli;

    pt_dns_start(&dns, 1000, server, sizeof(server));
    e = engine_with(&o);
    cli = dgram(e, NULL);
    start(e);
    ck_assert_int_eq(loop_write(cli, "slow.test:9", "x", 1), 0);
    ck_assert(pt_wait(&dns.queries, 2000)); /* the query is out */
    loop_close(cli);
    finish(e);
    ck_assert_int_eq(get(&cli->errors), 0);
    ck_assert_int_eq(get(&cli->closes), 1);
    pt_dns_stop(&dns);
    rec_free(cli);
}
END_TEST

/* A first packet to a name, too large for the IPv4 address the name
 * resolves to: on_error(-EMSGSIZE), and no socket was made for it. */
START_TEST(test_name_too_large_leaves_no_socket)
{
    static unsigned char big[65510]; /* fits IPv6, not IPv4 */
    struct pt_dns dns;
    char server[64], name[64];
    pants_engine_options_t o = {.dns_server = server, .dns_timeout_ms = 3000};
    pants_engine_t *e;
    struct rec *cli;
    int fd = raw_socket("127.0.0.1:0");
    pants_addr_t live = raw_addr(fd);

    pt_dns_start(&dns, 0, server, sizeof(server));
    e = engine_with(&o);
    cli = dgram(e, NULL);
    snprintf(name, sizeof(name), "big.test:%u", ntohs(((struct sockaddr_in *)&live.ss)->sin_port));
    start(e);
    ck_assert_int_eq(loop_write(cli, name, big, sizeof(big)), 0); /* queued for the name */
    ck_assert(pt_wait(&cli->errors, 5000));
    ck_assert_int_eq(cli->errs[0], -EMSGSIZE);
    ck_assert_int_eq(loop_fd(cli), -1);
    ck_assert_int_eq(loop_local_rc(cli), -ENOTCONN);
    ck_assert_int_eq(loop_write(cli, name, "small", 5), 0);
    raw_expect(fd, "small");
    ck_assert_int_ge(loop_fd(cli), 0);
    close(fd);
    finish(e);
    pt_dns_stop(&dns);
    rec_free(cli);
}
END_TEST

/* Before the engine runs, a write to a name only queues: no query goes
 * out until the loop runs, and an engine freed unrun frees it all. */
START_TEST(test_no_query_before_run)
{
    struct pt_dns dns;
    char server[64];
    pants_engine_options_t o = {.dns_server = server, .dns_timeout_ms = 3000};
    pants_engine_t *e;
    struct rec *cli;

    pt_dns_start(&dns, 0, server, sizeof(server));
    e = engine_with(&o);
    cli = dgram(e, NULL);
    ck_assert_int_eq(pants_datagram_write(cli->d, "x", 1, "never.test:9"), 0);
    ck_assert_uint_eq(pants_datagram_pending(cli->d), 1);
    pt_sleep_ms(100);
    ck_assert_int_eq(get(&dns.queries), 0);
    pants_engine_free(e);
    ck_assert_int_eq(pants_live_objects(), 0);
    ck_assert_int_eq(get(&cli->errors) + get(&cli->closes), 0);
    pt_dns_stop(&dns);
    rec_free(cli);
}
END_TEST

/* ---- Threads and the engine --------------------------------------------- */

START_TEST(test_wrong_thread)
{
    pants_engine_t *e = engine_with(NULL);
    struct rec *r = dgram(e, "127.0.0.1:0");
    pants_addr_t a;

    start(e);
    ck_assert(pt_wait(&r->listens, 5000));
    ck_assert_int_eq(pants_datagram_write(r->d, "x", 1, "127.0.0.1:9"), -EPERM);
    ck_assert_int_eq(pants_datagram_listen(r->d, "127.0.0.1:0"), -EPERM);
    ck_assert_int_eq(pants_datagram_end(r->d), -EPERM);
    ck_assert_int_eq(pants_datagram_local_address(r->d, &a), -EPERM);
    ck_assert_int_eq(pants_datagram_set_queue_limit(r->d, 100), -EPERM);
    pants_datagram_close(r->d); /* posted to the loop */
    ck_assert(pt_wait(&r->closes, 5000));
    finish(e);
    rec_free(r);
}
END_TEST

static void new_on_other_thread(void *arg)
{
    (void)arg;
}

START_TEST(test_new_from_other_thread_while_running)
{
    pants_engine_t *e = engine_with(NULL);
    struct rec *r = calloc(1, sizeof(*r));

    start(e);
    r->d = pants_datagram_new(loop0(e), &rec_cb, r); /* registered by the loop */
    ck_assert_ptr_nonnull(r->d);
    pt_on_loop(loop0(e), new_on_other_thread, NULL);
    ck_assert_int_eq(loop_write(r, "127.0.0.1:9", "x", 1), 0);
    finish(e); /* stop ends it */
    ck_assert_int_eq(get(&r->closes), 1);
    rec_free(r);
}
END_TEST

START_TEST(test_engine_stop_closes_datagrams)
{
    pants_engine_options_t o = {.shutdown_timeout_ms = 300};
    pants_engine_t *e = engine_with(&o);
    char ra[128];
    struct rec *a = dgram(e, "127.0.0.1:0"), *b = dgram(e, "[::1]:0"), *stuck = dgram(e, NULL);
    struct burst bu;
    int fd;

    pt_unix_addr(ra, sizeof(ra), "never-reads");
    fd = raw_socket(ra);
    bu = (struct burst){.r = stuck, .address = ra, .count = 100, .size = 100};
    start(e);
    pt_on_loop(loop0(e), do_burst, &bu);
    finish(e); /* the stuck one is closed after the shutdown timeout */
    ck_assert_int_eq(get(&a->closes) + get(&b->closes) + get(&stuck->closes), 3);
    close(fd);
    rec_free(a);
    rec_free(b);
    rec_free(stuck);
}
END_TEST

/* An engine freed without running frees its datagrams without callbacks
 * and removes their socket files. */
START_TEST(test_never_ran)
{
    pants_engine_t *e = engine_with(NULL);
    char sa[128];
    struct rec *r;

    pt_unix_addr(sa, sizeof(sa), "never");
    r = dgram(e, sa);
    ck_assert_int_eq(pants_datagram_write(r->d, "x", 1, "127.0.0.1:9"), -EAFNOSUPPORT);
    ck_assert_int_eq(pants_datagram_write(r->d, "x", 1, "nowhere.invalid:9"), 0);
    ck_assert_int_eq(pants_datagram_write(r->d, "x", 1, sa), 0);
    ck_assert_int_eq(access(unix_path(sa), F_OK), 0);
    pants_engine_free(e);
    ck_assert_int_eq(pants_live_objects(), 0);
    ck_assert_int_eq(access(unix_path(sa), F_OK), -1);
    ck_assert_int_eq(get(&r->listens) + get(&r->closes) + get(&r->errors), 0);
    rec_free(r);
}
END_TEST

/* ---- The suite ---------------------------------------------------------- */

static TCase *tcase(const char *name)
{
    TCase *tc = tcase_create(name);

    tcase_set_timeout(tc, 30);
    return tc;
}

Suite *datagram_suite(void)
{
    Suite *s = suite_create("datagram");
    TCase *life = tcase("life"), *pkts = tcase("packets"), *unx = tcase("unix");
    TCase *queue = tcase("queue"), *errs = tcase("errors"), *names = tcase("names");
    TCase *eng = tcase("engine");

    tcase_add_test(life, test_new_close);
    tcase_add_test(life, test_listen_and_local_address);
    tcase_add_test(pkts, test_two_packets_stay_two);
    tcase_add_test(pkts, test_reply_reaches_sender);
    tcase_add_test(pkts, test_zero_length_packet);
    tcase_add_test(pkts, test_write_before_run);
    tcase_add_test(pkts, test_writer_gets_replies);
    tcase_add_test(pkts, test_many_senders);
    tcase_add_test(pkts, test_largest_udp4_packet);
    tcase_add_test(pkts, test_packet_size_limits);
    tcase_add_test(pkts, test_ipv6);
    tcase_add_test(pkts, test_dual_stack_listen);
    tcase_add_test(pkts, test_family_mismatch);
    tcase_add_test(unx, test_unix_reply_to_bound_client);
    tcase_add_test(unx, test_unix_autobound_writer);
    tcase_add_test(unx, test_unix_abstract);
    tcase_add_test(unx, test_unix_stale_file_and_in_use);
    tcase_add_test(unx, test_truncated_packet_reported);
    tcase_add_test(queue, test_eagain_queues_in_order);
    tcase_add_test(queue, test_queue_limit_enobufs);
    tcase_add_loop_test(queue, test_queue_limit_counts_packet_cost, 0, 3);
    tcase_add_test(queue, test_refused_first_write_leaves_no_socket);
    tcase_add_test(queue, test_end_sends_queue_then_closes);
    tcase_add_test(queue, test_close_drops_queue);
    tcase_add_test(errs, test_refused_keeps_working);
    tcase_add_test(errs, test_replied_to_gone_sender);
    tcase_add_test(errs, test_unix_missing_destination);
    tcase_add_test(errs, test_malformed_addresses);
    tcase_add_test(names, test_name_that_does_not_resolve);
    tcase_add_test(names, test_name_resolves_in_order_and_is_cached);
    tcase_add_loop_test(names, test_name_cached_for_its_ttl, 0, 2);
    tcase_add_test(names, test_name_nxdomain);
    tcase_add_test(names, test_end_waits_for_name);
    tcase_add_test(names, test_close_cancels_lookup);
    tcase_add_test(names, test_no_query_before_run);
    tcase_add_test(names, test_name_too_large_leaves_no_socket);
    tcase_add_test(eng, test_wrong_thread);
    tcase_add_test(eng, test_new_from_other_thread_while_running);
    tcase_add_test(eng, test_engine_stop_closes_datagrams);
    tcase_add_test(eng, test_never_ran);
    suite_add_tcase(s, life);
    suite_add_tcase(s, pkts);
    suite_add_tcase(s, unx);
    suite_add_tcase(s, queue);
    suite_add_tcase(s, errs);
    suite_add_tcase(s, names);
    suite_add_tcase(s, eng);
    return s;
}
