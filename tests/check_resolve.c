/* check_resolve.c -- the resolver's per-loop name cache.
 *
 * Names are answered by the fake name server of testutil (every A query:
 * 127.0.0.1 with the TTL the test sets; AAAA: no records; "nx..." names:
 * NXDOMAIN), which counts the queries it gets, so a test sees exactly when
 * a lookup was served from the cache instead.  Through the public API: a
 * stream connect to a name a stream of the same loop resolved before makes
 * no query, one after the TTL does, and the loop's datagrams and streams
 * share answers.  Through the internal one (pants__resolve_start,
 * pants__resolve_cached, pants__resolve_cancel, on the loop's thread): a
 * cached answer still comes from the loop, never inside the call, with the
 * port asked and the rest of its TTL; it can be cancelled; failures and
 * TTL 0 answers are not kept; the cache holds at most
 * PANTS__RESOLVE_CACHE_MAX names and gives up the one closest to expiry.
 * Every test ends with pants_live_objects() == 0 (and, under ASan, with
 * the cache's memory freed with its loop).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <check.h>

#include "channels-internal.h"
#include "testutil.h"

Suite *resolve_suite(void);

#define WAIT_MS 10000 /* generous: the machine is small and busy */

#define GET(x)    __atomic_load_n(&(x), __ATOMIC_SEQ_CST)
#define SET(x, v) __atomic_store_n(&(x), (v), __ATOMIC_SEQ_CST)
#define INC(x)    __atomic_add_fetch(&(x), 1, __ATOMIC_SEQ_CST)

/* ---- Engine and name server --------------------------------------------- */

/* A started engine of threads loops asking only dns_server. */
static pants_engine_t *engine_up(const char *dns_server, unsigned threads)
{
    pants_engine_options_t o = {.threads = threads, .dns_server = dns_server, .dns_timeout_ms = 3000};
    pants_engine_t *e = pants_engine_new(&o);

    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(pants_engine_start(e), 0);
    return e;
}

/* Stop, join, free; nothing of pants may be left. */
static pants_loop_t *loop0(pants_engine_t *e)
{
    return pants_engine_loop(e, 0);
}

/* A pants server of e on 127.0.0.1; returns its port. */
static uint16_t serve(pants_engine_t *e)
{
    static const pants_stream_callbacks_t none = {0};
    pants_server_t *srv = pants_server_new(e, NULL, &none, NULL);
    pants_addr_t a;

    ck_assert_ptr_nonnull(srv);
    ck_assert_int_eq(pants_server_listen(srv, "127.0.0.1:0", 0), 0);
    ck_assert_int_eq(pants_server_local_address(srv, &a), 0);
    return ntohs(((struct sockaddr_in *)&a.ss)->sin_port);
}

/* ---- Stream connects ---------------------------------------------------- */

struct conn {
    int connects;  /* on_connect calls */
    int errs;      /* on_connect_error calls */
    int first_err; /* the first one's err */
    int closes;    /* on_close calls */
};

static void conn_on_connect(pants_stream_t *s)
{
    INC(((struct conn *)pants_stream_data(s))->connects);
    pants_stream_close(s);
}

static void conn_on_connect_error(pants_stream_t *s, int err)
{
    struct conn *c = pants_stream_data(s);

    if (INC(c->errs) == 1)
        SET(c->first_err, err);
    pants_stream_close(s);
}

static void conn_on_close(pants_stream_t *s)
{
    INC(((struct conn *)pants_stream_data(s))->closes);
}

static const pants_stream_callbacks_t conn_cb = {
    .on_connect = conn_on_connect, .on_connect_error = conn_on_connect_error, .on_close = conn_on_close};

struct connect_call {
    pants_loop_t *loop;  /* where the stream lives */
    struct conn *c;      /* what its callbacks saw */
    const char *address; /* where to */
    int rc;              /* pants_stream_connect's result */
};

static void connect_task(void *arg)
{
    struct connect_call *call = arg;
    pants_stream_t *s = pants_stream_new(call->loop, &conn_cb, call->c);

    call->rc = s != NULL ? pants_stream_connect(s, call->address) : -errno;
    if (s != NULL && call->rc < 0)
        pants_stream_close(s);
}

/* A new stream of l connects to address; wait until it connected and
 * closed (on_connect closes it). */
static void connect_once(pants_loop_t *l, const char *address)
{
    struct conn c = {0};
    struct connect_call call = {l, &c, address, 0};

    pt_on_loop(l, connect_task, &call);
    ck_assert_int_eq(call.rc, 0);
    ck_assert(pt_wait(&c.closes, WAIT_MS));
    ck_assert_msg(GET(c.connects) == 1, "connect error %d (%s)", GET(c.first_err),
                  pants_strerror(c.first_err));
}

/* Two connects to one name on one loop: one query; after the TTL, one
 * more.  Another loop has a cache of its own. */
START_TEST(test_stream_connect_from_cache)
{
    struct pt_dns dns;
    char server[64], name[64];
    pants_engine_t *e;
    int queries;

    pt_dns_start(&dns, 0, server, sizeof(server));
    SET(dns.ttl, 2);
    e = engine_up(server, 2);
    snprintf(name, sizeof(name), "cache.test:%u", serve(e));
    connect_once(loop0(e), name);
    ck_assert_int_eq(GET(dns.queries_a), 1);
    queries = GET(dns.queries);
    connect_once(loop0(e), name); /* the same loop: from its cache */
    ck_assert_int_eq(GET(dns.queries), queries);
    connect_once(pants_engine_loop(e, 1), name); /* another loop asks */
    ck_assert_int_eq(GET(dns.queries_a), 2);
    pt_sleep_ms(2300); /* past the TTL */
    queries = GET(dns.queries);
    connect_once(loop0(e), name);
    ck_assert_int_eq(GET(dns.queries_a), 3);
    ck_assert_int_gt(GET(dns.queries), queries);
    pt_engine_down(e);
    pt_dns_stop(&dns);
}
END_TEST

/* ---- Datagrams ---------------------------------------------------------- */

struct dg {
    pants_datagram_t *d; /* the datagram */
    int errors;          /* on_error calls */
    int closes;          /* on_close calls */
};

static void dg_on_error(pants_datagram_t *d, int err)
{
    (void)err;
    INC(((struct dg *)pants_datagram_data(d))->errors);
}

static void dg_on_close(pants_datagram_t *d)
{
    INC(((struct dg *)pants_datagram_data(d))->closes);
}

static const pants_datagram_callbacks_t dg_cb = {.on_error = dg_on_error, .on_close = dg_on_close};

struct burst {
    struct dg *g;        /* the writer */
    const char *address; /* where to */
    int first, count;    /* packets "<first>" .. "<first + count - 1>" */
    int rc;              /* the first failed write, or 0 */
};

static void burst_task(void *arg)
{
    struct burst *b = arg;

    b->rc = 0;
    for (int i = b->first; i < b->first + b->count && b->rc == 0; i++) {
        char msg[16];
        int n = snprintf(msg, sizeof(msg), "%d", i);
        b->rc = pants_datagram_write(b->g->d, msg, (size_t)n, b->address);
    }
}

/* Write packets first .. first + count - 1 from g to address, on its loop. */
static void burst(struct dg *g, const char *address, int first, int count)
{
    struct burst b = {g, address, first, count, 0};

    pt_on_loop(pants_datagram_loop(g->d), burst_task, &b);
    ck_assert_int_eq(b.rc, 0);
}

/* Read packets first .. first + count - 1 from fd, in order. */
static void expect_numbered(int fd, int first, int count)
{
    for (int i = first; i < first + count; i++) {
        struct pollfd p = {fd, POLLIN, 0};
        char buf[32];
        ssize_t n;
        ck_assert_int_eq(poll(&p, 1, 5000), 1);
        n = recv(fd, buf, sizeof(buf) - 1, 0);
        ck_assert_int_gt(n, 0);
        buf[n] = '\0';
        ck_assert_int_eq(atoi(buf), i);
    }
}

/* A plain UDP socket on 127.0.0.1 (a big receive buffer: it reads late);
 * its port in *port. */
static int udp_receiver(uint16_t *port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), size = 1 << 20;

    ck_assert_int_ge(fd, 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    *port = ntohs(sin.sin_port);
    return fd;
}

static struct dg *dg_new(pants_loop_t *l)
{
    struct dg *g = calloc(1, sizeof(*g));

    ck_assert_ptr_nonnull(g);
    g->d = pants_datagram_new(l, &dg_cb, g);
    ck_assert_ptr_nonnull(g->d);
    return g;
}

/* Many packets to one name: one query (the packets written while it is
 * out wait for it, the later ones go from the cache); a second datagram
 * and a stream connect of the same loop (to another port of that name)
 * ask nothing either. */
START_TEST(test_datagram_writes_from_cache)
{
    struct pt_dns dns;
    char server[64], name[64];
    pants_engine_t *e;
    struct dg *g1, *g2;
    uint16_t port;
    int fd = udp_receiver(&port), queries;

    pt_dns_start(&dns, 50, server, sizeof(server));
    e = engine_up(server, 1);
    g1 = dg_new(loop0(e));
    g2 = dg_new(loop0(e));
    snprintf(name, sizeof(name), "dgram.test:%u", port);
    burst(g1, name, 0, 100); /* one lookup for all */
    expect_numbered(fd, 0, 100);
    ck_assert_int_eq(GET(dns.queries_a), 1);
    queries = GET(dns.queries);
    burst(g1, name, 100, 100); /* from the cache */
    expect_numbered(fd, 100, 100);
    burst(g2, name, 200, 1); /* another datagram of the loop */
    expect_numbered(fd, 200, 1);
    snprintf(name, sizeof(name), "dgram.test:%u", serve(e));
    connect_once(loop0(e), name); /* a stream, another port */
    ck_assert_int_eq(GET(dns.queries), queries);
    ck_assert_int_eq(GET(g1->errors) + GET(g2->errors), 0);
    pt_engine_down(e);
    ck_assert_int_eq(GET(g1->closes) + GET(g2->closes), 2);
    pt_dns_stop(&dns);
    close(fd);
    free(g1);
    free(g2);
}
END_TEST

/* ---- The internal API --------------------------------------------------- */

struct lookup {
    pants_loop_t *loop;                           /* where to resolve */
    const char *host;                             /* what */
    uint16_t port;                                /* the port the addresses get */
    bool cancel;                                  /* cancel at once, in the same loop turn */
    pants__resolve_t *r;                          /* the lookup */
    int in_call;                                  /* callbacks run inside pants__resolve_start */
    int calls;                                    /* callbacks */
    int err;                                      /* their result */
    size_t n;                                     /* addresses */
    uint32_t ttl;                                 /* seconds they may be kept */
    pants_addr_t addrs[PANTS__RESOLVE_MAX_ADDRS]; /* copies */
};

static void lookup_cb(int err, const pants_addr_t *addrs, size_t n, uint32_t ttl_s, void *arg)
{
    struct lookup *lk = arg;

    lk->err = err;
    lk->n = n;
    lk->ttl = ttl_s;
    if (n > 0)
        memcpy(lk->addrs, addrs, n * sizeof(*addrs));
    INC(lk->calls);
}

static void lookup_task(void *arg)
{
    struct lookup *lk = arg;
    int before = GET(lk->calls);

    lk->r = pants__resolve_start(lk->loop, lk->host, lk->port, lookup_cb, lk);
    SET(lk->in_call, GET(lk->calls) - before);
    if (lk->cancel)
        pants__resolve_cancel(lk->r);
}

/* Resolve host for port on l and wait for the answer (or, cancelling,
 * check that none comes). */
static void resolve(struct lookup *lk, pants_loop_t *l, const char *host, uint16_t port, bool cancel)
{
    memset(lk, 0, sizeof(*lk));
    lk->loop = l;
    lk->host = host;
    lk->port = port;
    lk->cancel = cancel;
    pt_on_loop(l, lookup_task, lk);
    ck_assert_ptr_nonnull(lk->r);
    ck_assert_int_eq(GET(lk->in_call), 0); /* never inside the call */
    if (cancel) {
        pt_sleep_ms(200);
        ck_assert_int_eq(GET(lk->calls), 0);
        return;
    }
    ck_assert(pt_wait(&lk->calls, WAIT_MS));
    pt_sleep_ms(10);
    ck_assert_int_eq(GET(lk->calls), 1);
}

struct cached_call {
    pants_loop_t *loop;                           /* whose cache */
    const char *host;                             /* what */
    uint16_t port;                                /* for the addresses */
    size_t max;                                   /* room */
    int rc;                                       /* pants__resolve_cached's result */
    size_t n;                                     /* addresses given */
    pants_addr_t addrs[PANTS__RESOLVE_MAX_ADDRS]; /* them */
};

static void cached_task(void *arg)
{
    struct cached_call *c = arg;

    c->rc = pants__resolve_cached(c->loop, c->host, c->port, c->addrs, c->max, &c->n);
}

/* pants__resolve_cached on l's thread: its result, addresses in c. */
static int cached(struct cached_call *c, pants_loop_t *l, const char *host, uint16_t port, size_t max)
{
    memset(c, 0, sizeof(*c));
    c->loop = l;
    c->host = host;
    c->port = port;
    c->max = max;
    pt_on_loop(l, cached_task, c);
    return c->rc;
}

static void assert_addr(const pants_addr_t *a, const char *want)
{
    char got[64];

    ck_assert_int_eq(pants_addr_format(a, got, sizeof(got)), 0);
    ck_assert_str_eq(got, want);
}

/* A cached answer: no query, still from the loop, the port asked, what is
 * left of the TTL; the synchronous lookup gives the same (any case, any
 * room); cancelling one means no callback. */
START_TEST(test_cached_lookup_comes_from_the_loop)
{
    struct pt_dns dns;
    char server[64];
    pants_engine_t *e;
    struct lookup lk;
    struct cached_call c;
    int queries;

    pt_dns_start(&dns, 0, server, sizeof(server));
    e = engine_up(server, 1);
    ck_assert_int_eq(cached(&c, loop0(e), "unit.test", 80, 4), -ENOENT); /* no resolver yet */
    resolve(&lk, loop0(e), "unit.test", 80, false);
    ck_assert_int_eq(lk.err, 0);
    ck_assert_uint_eq(lk.n, 1);
    ck_assert_uint_eq(lk.ttl, 300);
    assert_addr(&lk.addrs[0], "127.0.0.1:80");
    queries = GET(dns.queries);
    resolve(&lk, loop0(e), "unit.test", 443, false);
    ck_assert_int_eq(GET(dns.queries), queries);
    ck_assert_int_eq(lk.err, 0);
    ck_assert_uint_eq(lk.n, 1);
    ck_assert(lk.ttl >= 298 && lk.ttl <= 300);
    assert_addr(&lk.addrs[0], "127.0.0.1:443");
    ck_assert_int_eq(cached(&c, loop0(e), "UNIT.Test", 53, 4), 0);
    ck_assert_uint_eq(c.n, 1);
    assert_addr(&c.addrs[0], "127.0.0.1:53");
    ck_assert_int_eq(cached(&c, loop0(e), "unit.test", 53, 0), 0);
    ck_assert_uint_eq(c.n, 0);
    ck_assert_int_eq(cached(&c, loop0(e), "other.test", 53, 4), -ENOENT);
    resolve(&lk, loop0(e), "unit.test", 80, true); /* cancelled: no callback */
    ck_assert_int_eq(GET(dns.queries), queries);
    pt_engine_down(e);
    pt_dns_stop(&dns);
}
END_TEST

/* Failures and TTL 0 answers are not kept: the next lookup asks again. */
START_TEST(test_failures_and_ttl0_not_cached)
{
    struct pt_dns dns;
    char server[64];
    pants_engine_t *e;
    struct lookup lk;
    struct cached_call c;
    int queries;

    pt_dns_start(&dns, 0, server, sizeof(server));
    e = engine_up(server, 1);
    resolve(&lk, loop0(e), "nx-name.test", 80, false);
    ck_assert_int_eq(lk.err, PANTS_EAI_NONAME);
    ck_assert_int_eq(cached(&c, loop0(e), "nx-name.test", 80, 4), -ENOENT);
    queries = GET(dns.queries);
    resolve(&lk, loop0(e), "nx-name.test", 80, false);
    ck_assert_int_gt(GET(dns.queries), queries);
    SET(dns.ttl, 0);
    resolve(&lk, loop0(e), "zero.test", 80, false);
    ck_assert_int_eq(lk.err, 0);
    ck_assert_uint_eq(lk.ttl, 0);
    ck_assert_int_eq(cached(&c, loop0(e), "zero.test", 80, 4), -ENOENT);
    queries = GET(dns.queries_a);
    resolve(&lk, loop0(e), "zero.test", 80, false);
    ck_assert_int_eq(GET(dns.queries_a), queries + 1);
    pt_engine_down(e);
    pt_dns_stop(&dns);
}
END_TEST

/* The hosts file and "localhost" answers are kept too, for
 * PANTS__RESOLVE_LOCAL_TTL. */
START_TEST(test_local_answers_cached)
{
    pants_engine_t *e = engine_up("127.0.0.1:9", 1); /* never asked */
    struct lookup lk;
    struct cached_call c;

    resolve(&lk, loop0(e), "pants-test.localhost", 7, false);
    ck_assert_int_eq(lk.err, 0);
    ck_assert_uint_eq(lk.ttl, PANTS__RESOLVE_LOCAL_TTL);
    assert_addr(&lk.addrs[0], "127.0.0.1:7");
    ck_assert_int_eq(cached(&c, loop0(e), "pants-test.localhost", 8, PANTS__RESOLVE_MAX_ADDRS), 0);
    ck_assert_uint_eq(c.n, lk.n);
    assert_addr(&c.addrs[0], "127.0.0.1:8");
    pt_engine_down(e);
}
END_TEST

/* Resolve "n<from>.test" .. "n<to - 1>.test" on l, one after the other. */
static void resolve_names(pants_loop_t *l, int from, int to)
{
    struct lookup lk;
    char name[64];

    for (int i = from; i < to; i++) {
        snprintf(name, sizeof(name), "n%d.test", i);
        resolve(&lk, l, name, 1, false);
        ck_assert_int_eq(lk.err, 0);
    }
}

/* How many of "n<from>.test" .. "n<to - 1>.test" l's cache holds. */
static int count_cached(pants_loop_t *l, int from, int to)
{
    struct cached_call c;
    char name[64];
    int kept = 0;

    for (int i = from; i < to; i++) {
        snprintf(name, sizeof(name), "n%d.test", i);
        kept += cached(&c, l, name, 1, 4) == 0;
    }
    return kept;
}

/* At most PANTS__RESOLVE_CACHE_MAX names; a full cache gives up the one
 * closest to expiry (here a newer name with a shorter TTL, not the
 * oldest), and keeps the newest. */
START_TEST(test_cache_is_bounded)
{
    enum { MAX = PANTS__RESOLVE_CACHE_MAX, MORE = 8 };
    struct pt_dns dns;
    char server[64];
    pants_engine_t *e;
    struct lookup lk;
    struct cached_call c;

    pt_dns_start(&dns, 0, server, sizeof(server));
    e = engine_up(server, 1);
    resolve(&lk, loop0(e), "first.test", 1, false); /* TTL 300: the oldest */
    SET(dns.ttl, 100);
    resolve(&lk, loop0(e), "short.test", 1, false); /* expires first */
    SET(dns.ttl, 300);
    resolve_names(loop0(e), 0, MAX - 1); /* one more than fits */
    ck_assert_int_eq(cached(&c, loop0(e), "short.test", 1, 4), -ENOENT);
    ck_assert_int_eq(cached(&c, loop0(e), "first.test", 1, 4), 0);
    ck_assert_int_eq(count_cached(loop0(e), 0, MAX - 1), MAX - 1);
    resolve_names(loop0(e), MAX - 1, MAX - 1 + MORE);
    ck_assert_int_eq(
        count_cached(loop0(e), 0, MAX - 1 + MORE) + (cached(&c, loop0(e), "first.test", 1, 4) == 0), MAX);
    ck_assert_int_eq(count_cached(loop0(e), MAX - 1, MAX - 1 + MORE), MORE); /* the newest stay */
    pt_engine_down(e);
    pt_dns_stop(&dns);
}
END_TEST

/* ---- The suite ---------------------------------------------------------- */

Suite *resolve_suite(void)
{
    Suite *s = suite_create("resolve");
    TCase *pub = tcase_create("cache"), *internal = tcase_create("internal");

    tcase_set_timeout(pub, 30);
    tcase_set_timeout(internal, 30);
    tcase_add_test(pub, test_stream_connect_from_cache);
    tcase_add_test(pub, test_datagram_writes_from_cache);
    tcase_add_test(internal, test_cached_lookup_comes_from_the_loop);
    tcase_add_test(internal, test_failures_and_ttl0_not_cached);
    tcase_add_test(internal, test_local_answers_cached);
    tcase_add_test(internal, test_cache_is_bounded);
    suite_add_tcase(s, pub);
    suite_add_tcase(s, internal);
    return s;
}
