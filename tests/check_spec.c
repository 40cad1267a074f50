/* check_spec.c -- whole programs written the way the API contract reads.
 *
 * Each test is a small application in the Pants channel style, built only
 * from include/pants.h as ../shared/spec/API.md describes it: channels set
 * up before the engine runs, pants_engine_run on the test's own thread, and
 * the application stopping the engine from a callback.  They check that the
 * pieces the other suites test one by one fit together: the seed's
 * LineOriented protocol, a header-then-body protocol that switches
 * delimiters, a timer ending the run, and a datagram ping-pong.
 *
 * The "contract" case goes further: its tests use only the names API.md
 * lists (no pants extras), as an application written from the contract
 * alone would, to catch any place where the library does something else.
 * They cover round-robin acceptance over the worker loops and the pinning
 * of every connection's callbacks to one thread; the four timers (callback,
 * loop, defer, cycle; cancelling, also from inside); loop indices,
 * next_loop and FIFO posts from foreign threads; read delimiters changed
 * inside on_read (exact, a multi-byte until split across reads, regex, a
 * netstring framer with *skip) and the refusal of bad ones; end() sending
 * what is queued against close() dropping it, with on_close once and last
 * and a partial frame dropped at EOF; write_file ranges in order with
 * writes; broadcast and connection counts from outside the engine;
 * address parsing, formatting, error names and malformed addresses; and
 * cycles that never run before their time.
 *
 * The "contract2" case, under the same rules (ports found with plain
 * sockets, misbehaving peers played by plain sockets), covers the rest:
 * pants_engine_stop from a signal handler while megabytes are queued to a
 * slow reader (all of it still arrives, then on_close, and run returns 0),
 * with the stream connected and written to before the engine ran; the NULL
 * defaults of on_connect_error, on_error (a framer's rejection) and
 * on_overflow, and a connect again from inside on_connect_error; a peer's
 * half-close (complete frames, then the replies queued for them, then
 * on_close, the partial frame dropped); pants_stream_post and ref/unref
 * from foreign threads, and a post to a closed stream dropped;
 * pants_server_close from a foreign thread (no more connects, its
 * connections closed, then on_close, its Unix file gone); -EADDRINUSE for a
 * port or a live Unix path, a stale Unix file replaced, on_listen only after
 * a listen that worked; datagrams, one on_read per packet with its sender,
 * write_to replies over UDP and Unix sockets, end() sending what is queued,
 * malformed addresses refused without callbacks; and an echo over [::1].
 *
 * The "contract3" case, same rules: until (multi-byte), exact, regex and
 * framed delimiters fed one byte per write give the frames of the whole
 * input; a regex cuts at its first complete match without waiting for more;
 * the read limit (64 KiB by default, never below what read_exact needs);
 * a server and a client set up on the main thread before
 * pants_engine_start; what on_accept sees (server, its data, family,
 * addresses, pending) and changes (data, callbacks); and datagrams of 0 and
 * 65507 bytes and from four senders, one on_read each with its sender.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "testutil.h"

Suite *spec_suite(void);

/* ---- The seed's LineOriented, with a pants client ---------------------- */

struct line_app {
    pants_engine_t *e; /* to stop from a callback */
    char got[256];     /* lines the client read back, '|'-separated */
    size_t len;        /* bytes in got */
    int server_closed; /* the server's on_close ran */
    int client_closed; /* the client's on_close ran */
    int accepts;       /* on_accept calls */
    int connects;      /* the client's on_connect calls */
};

static struct line_app *app_of(pants_stream_t *s)
{
    return pants_stream_data(s);
}

/* Server side: a line in, the line upper-cased and "\r\n" out. */
static void srv_line(pants_stream_t *s, const void *data, size_t len)
{
    char out[128];

    ck_assert_uint_lt(len, sizeof(out) - 2);
    for (size_t i = 0; i < len; i++)
        out[i] = (char)(((const char *)data)[i] & ~0x20);
    memcpy(out + len, "\r\n", 2);
    pants_stream_write(s, out, len + 2);
}

static void srv_accept(pants_server_t *srv, pants_stream_t *conn)
{
    struct line_app *a = pants_server_data(srv);

    a->accepts++;
    pants_stream_set_data(conn, a);
    ck_assert_int_eq(pants_stream_read_until(conn, "\r\n", 2), 0);
}

static void srv_close(pants_server_t *srv)
{
    struct line_app *a = pants_server_data(srv);

    a->server_closed = 1;
}

/* Client side: send three lines at once, read them back one by one. */
static void cli_connect(pants_stream_t *s)
{
    app_of(s)->connects++;
    pants_stream_read_until(s, "\r\n", 2);
    pants_stream_write(s, "one\r\ntwo\r\nthree\r\n", 17);
}

static void cli_line(pants_stream_t *s, const void *data, size_t len)
{
    struct line_app *a = app_of(s);

    memcpy(a->got + a->len, data, len);
    a->got[a->len + len] = '|';
    a->len += len + 1;
    if (a->len >= strlen("ONE|TWO|THREE|")) {
        pants_stream_close(s);
        pants_engine_stop(a->e);
    }
}

static void cli_close(pants_stream_t *s)
{
    app_of(s)->client_closed = 1;
}

START_TEST(line_oriented_run_on_this_thread)
{
    struct line_app a = {0};
    pants_engine_options_t o = {.threads = 2};
    pants_server_callbacks_t scb = {.on_accept = srv_accept, .on_close = srv_close};
    pants_stream_callbacks_t conn = {.on_read = srv_line};
    pants_stream_callbacks_t ccb = {.on_connect = cli_connect, .on_read = cli_line, .on_close = cli_close};
    pants_server_t *srv;
    pants_stream_t *cli;
    pants_addr_t bound;
    char addr[64];

    a.e = pants_engine_new(&o);
    ck_assert_ptr_nonnull(a.e);
    srv = pants_server_new(a.e, &scb, &conn, &a);
    ck_assert_int_eq(pants_server_listen(srv, "127.0.0.1:0", 0), 0);
    ck_assert_int_eq(pants_server_local_address(srv, &bound), 0);
    ck_assert_int_eq(pants_addr_format(&bound, addr, sizeof(addr)), 0);
    cli = pants_stream_new(pants_engine_loop(a.e, 1), &ccb, &a);
    ck_assert_ptr_nonnull(cli);
    ck_assert_int_eq(pants_stream_connect(cli, addr), 0);

    ck_assert_int_eq(pants_engine_run(a.e), 0);
    pants_engine_free(a.e);

    ck_assert_int_eq((int)a.len, (int)strlen("ONE|TWO|THREE|"));
    ck_assert_mem_eq(a.got, "ONE|TWO|THREE|", a.len);
    ck_assert_int_eq(a.accepts, 1);
    ck_assert_int_eq(a.connects, 1);
    ck_assert_int_eq(a.client_closed, 1);
    ck_assert_int_eq(a.server_closed, 1);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

/* ---- A header line, then a body of the length it names ----------------- */

struct msg_app {
    pants_engine_t *e; /* to stop */
    char body[64];     /* the body the server read */
    size_t body_len;   /* its length */
    char reply[64];    /* what the client read back */
    int frames;        /* server on_read calls */
};

static void hb_read(pants_stream_t *s, const void *data, size_t len)
{
    struct msg_app *m = pants_stream_data(s);
    unsigned n;

    if (m->frames++ == 0) { /* "LEN 5" */
        ck_assert_int_eq(sscanf(data, "LEN %u", &n), 1);
        ck_assert_int_eq(pants_stream_read_exact(s, n), 0);
        return;
    }
    memcpy(m->body, data, len);
    m->body_len = len;
    pants_stream_write(s, "got it", 6);
    pants_stream_end(s); /* the reply still goes out */
}

static void hb_accept(pants_server_t *srv, pants_stream_t *conn)
{
    pants_stream_set_data(conn, pants_server_data(srv));
    pants_stream_read_until(conn, "\n", 1);
}

static void hb_cli_connect(pants_stream_t *s)
{
    /* Header and body in one write: the body is already buffered when the
     * header's on_read switches the delimiter. */
    pants_stream_write(s, "LEN 5\nhello", 11);
}

static void hb_cli_read(pants_stream_t *s, const void *data, size_t len)
{
    struct msg_app *m = pants_stream_data(s);

    strncat(m->reply, data, len);
}

static void hb_cli_close(pants_stream_t *s)
{
    struct msg_app *m = pants_stream_data(s);

    pants_engine_stop(m->e);
}

START_TEST(header_then_body)
{
    struct msg_app m = {0};
    pants_engine_options_t o = {.threads = 1};
    pants_server_callbacks_t scb = {.on_accept = hb_accept};
    pants_stream_callbacks_t conn = {.on_read = hb_read};
    pants_stream_callbacks_t ccb = {
        .on_connect = hb_cli_connect, .on_read = hb_cli_read, .on_close = hb_cli_close};
    char path[200];

    pt_unix_addr(path, sizeof(path), "spec-hb.sock");
    m.e = pants_engine_new(&o);
    ck_assert_ptr_nonnull(m.e);
    ck_assert_int_eq(pants_server_listen(pants_server_new(m.e, &scb, &conn, &m), path, 0), 0);
    ck_assert_int_eq(pants_stream_connect(pants_stream_new(pants_engine_loop(m.e, 0), &ccb, &m), path), 0);
    ck_assert_int_eq(pants_engine_run(m.e), 0);
    pants_engine_free(m.e);

    ck_assert_int_eq(m.frames, 2);
    ck_assert_uint_eq(m.body_len, 5);
    ck_assert_mem_eq(m.body, "hello", 5);
    ck_assert_str_eq(m.reply, "got it");
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

/* ---- A timer ends the run; a refused connect is on_connect_error ------- */

struct refuse_app {
    pants_engine_t *e; /* to stop */
    int err;           /* on_connect_error's err */
    int errors;        /* on_error calls (must stay 0) */
    int closed;        /* on_close calls */
};

static void rf_connect_error(pants_stream_t *s, int err)
{
    struct refuse_app *r = pants_stream_data(s);

    r->err = err;
    pants_stream_close(s);
}

static void rf_error(pants_stream_t *s, int err)
{
    struct refuse_app *r = pants_stream_data(s);

    (void)err;
    r->errors++;
}

static void rf_close(pants_stream_t *s)
{
    struct refuse_app *r = pants_stream_data(s);

    r->closed++;
}

static void rf_stop(void *arg)
{
    struct refuse_app *r = arg;

    pants_engine_stop(r->e);
}

START_TEST(refused_then_timer_stops)
{
    struct refuse_app r = {0};
    pants_engine_options_t o = {.threads = 1};
    pants_stream_callbacks_t cb = {
        .on_connect_error = rf_connect_error, .on_error = rf_error, .on_close = rf_close};
    pants_server_t *srv;
    pants_addr_t a;
    char addr[64];

    r.e = pants_engine_new(&o);
    ck_assert_ptr_nonnull(r.e);
    /* A port that was just free: bind it, note it, close it. */
    srv = pants_server_new(r.e, NULL, NULL, NULL);
    ck_assert_int_eq(pants_server_listen(srv, "127.0.0.1:0", 0), 0);
    ck_assert_int_eq(pants_server_local_address(srv, &a), 0);
    ck_assert_int_eq(pants_addr_format(&a, addr, sizeof(addr)), 0);
    pants_server_close(srv);
    ck_assert_int_eq(pants_stream_connect(pants_stream_new(pants_engine_loop(r.e, 0), &cb, &r), addr), 0);
    ck_assert_ptr_nonnull(pants_timer_defer(pants_engine_loop(r.e, 0), 300, rf_stop, &r));
    ck_assert_int_eq(pants_engine_run(r.e), 0);
    pants_engine_free(r.e);

    ck_assert_int_eq(r.err, -ECONNREFUSED);
    ck_assert_int_eq(r.errors, 0);
    ck_assert_int_eq(r.closed, 1);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

/* ---- The seed's Datagram: write to an address, reply to the sender ----- */

struct dg_app {
    pants_engine_t *e;     /* to stop */
    pants_datagram_t *srv; /* the listening one */
    char reply[32];        /* what the client got */
    int listened;          /* on_listen ran */
};

static void dg_srv_read(pants_datagram_t *d, const void *data, size_t len, const pants_addr_t *from)
{
    char out[32];

    ck_assert_uint_lt(len, sizeof(out) - 4);
    memcpy(out, "re: ", 4);
    memcpy(out + 4, data, len);
    ck_assert_int_eq(pants_datagram_write_to(d, out, len + 4, from), 0);
}

static void dg_srv_listen(pants_datagram_t *d)
{
    struct dg_app *a = pants_datagram_data(d);

    a->listened = 1;
}

static void dg_cli_read(pants_datagram_t *d, const void *data, size_t len, const pants_addr_t *from)
{
    struct dg_app *a = pants_datagram_data(d);

    (void)from;
    memcpy(a->reply, data, len);
    pants_datagram_close(d);
    pants_datagram_close(a->srv);
    pants_engine_stop(a->e);
}

START_TEST(datagram_reply_to_sender)
{
    struct dg_app a = {0};
    pants_engine_options_t o = {.threads = 2};
    pants_datagram_callbacks_t scb = {.on_listen = dg_srv_listen, .on_read = dg_srv_read};
    pants_datagram_callbacks_t ccb = {.on_read = dg_cli_read};
    pants_datagram_t *cli;
    pants_addr_t bound;
    char addr[64];

    a.e = pants_engine_new(&o);
    ck_assert_ptr_nonnull(a.e);
    a.srv = pants_datagram_new(pants_engine_loop(a.e, 0), &scb, &a);
    ck_assert_int_eq(pants_datagram_listen(a.srv, "127.0.0.1:0"), 0);
    ck_assert_int_eq(pants_datagram_local_address(a.srv, &bound), 0);
    ck_assert_int_eq(pants_addr_format(&bound, addr, sizeof(addr)), 0);
    cli = pants_datagram_new(pants_engine_loop(a.e, 1), &ccb, &a);
    ck_assert_int_eq(pants_datagram_write(cli, "foo", 3, addr), 0);
    ck_assert_int_eq(pants_engine_run(a.e), 0);
    pants_engine_free(a.e);

    ck_assert_int_eq(a.listened, 1);
    ck_assert_str_eq(a.reply, "re: foo");
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

/* ==== Tests written from API.md's names alone ============================
 *
 * The tests below use only what API.md names (plus pants_live_objects at the
 * end and the testutil helpers), so they see the library the way an
 * application written from the contract does.  Results from loop threads
 * are recorded (atomically where several threads write) and asserted on the
 * test thread once the engine has returned.
 */

static uint64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void bump(int *counter)
{
    __atomic_add_fetch(counter, 1, __ATOMIC_SEQ_CST);
}

/* Stops a run that would otherwise hang until the tcase timeout; each test
 * asserts that it never had to. */
struct watchdog {
    pants_engine_t *e; /* to stop */
    int fired;         /* it stopped the engine (atomic) */
};

static void wd_fire(void *arg)
{
    struct watchdog *w = arg;

    __atomic_store_n(&w->fired, 1, __ATOMIC_SEQ_CST);
    pants_engine_stop(w->e);
}

static void wd_arm(void *arg)
{
    pants_timer_defer(pants_loop_current(), 8000, wd_fire, arg);
}

/* Arm it on loop l (a post made before the engine runs). */
static void wd_start(struct watchdog *w, pants_engine_t *e, pants_loop_t *l)
{
    w->e = e;
    w->fired = 0;
    ck_assert_int_eq(pants_loop_post(l, wd_arm, w), 0);
}

/* ---- Round-robin acceptance and per-channel pinning -------------------- */

#define RR_LOOPS   4
#define RR_CLIENTS 8

struct rr_app;

struct rr_conn {
    struct rr_app *app; /* back pointer */
    pthread_t thread;   /* the thread on_accept ran on */
    pants_loop_t *loop; /* pants_stream_loop(conn) in on_accept */
    int connects;       /* on_connect calls */
    int reads;          /* on_read calls */
    int closes;         /* on_close calls */
};

struct rr_app {
    struct watchdog wd;               /* bounds the run */
    pants_server_t *srv;              /* the server */
    int per_loop[RR_LOOPS];           /* accepts per loop index (atomic) */
    int accepts;                      /* on_accept calls (atomic) */
    int replies;                      /* echoes the clients read (atomic) */
    int cli_closes;                   /* client on_close calls (atomic) */
    int bad;                          /* wrong thread, loop or answer (atomic) */
    struct rr_conn conns[RR_CLIENTS]; /* one per accepted connection */
};

/* Every callback of a connection: on on_accept's thread, on its own loop. */
static void rr_check_here(struct rr_conn *c, pants_stream_t *s)
{
    if (!pthread_equal(c->thread, pthread_self()) || pants_loop_current() != c->loop ||
        pants_stream_loop(s) != c->loop)
        bump(&c->app->bad);
}

static void rr_accept(pants_server_t *srv, pants_stream_t *conn)
{
    struct rr_app *a = pants_server_data(srv);
    int slot = __atomic_fetch_add(&a->accepts, 1, __ATOMIC_SEQ_CST);
    pants_loop_t *here = pants_loop_current();
    struct rr_conn *c;

    if (slot >= RR_CLIENTS || here == NULL || pants_loop_index(here) >= RR_LOOPS) {
        bump(&a->bad);
        pants_stream_close(conn);
        return;
    }
    bump(&a->per_loop[pants_loop_index(here)]);
    c = &a->conns[slot];
    c->app = a;
    c->thread = pthread_self();
    c->loop = pants_stream_loop(conn);
    if (c->loop != here || pants_stream_server(conn) != srv || pants_stream_family(conn) != AF_UNIX)
        bump(&a->bad);
    pants_stream_set_data(conn, c);
    if (pants_stream_read_exact(conn, 4) != 0)
        bump(&a->bad);
}

static void rr_conn_connect(pants_stream_t *s)
{
    struct rr_conn *c = pants_stream_data(s);

    if (c == NULL)
        return;
    c->connects++;
    rr_check_here(c, s);
}

static void rr_conn_read(pants_stream_t *s, const void *data, size_t len)
{
    struct rr_conn *c = pants_stream_data(s);

    if (c == NULL)
        return;
    c->reads++;
    rr_check_here(c, s);
    if (pants_stream_write(s, data, len) != 0)
        bump(&c->app->bad);
}

static void rr_conn_close(pants_stream_t *s)
{
    struct rr_conn *c = pants_stream_data(s);

    if (c == NULL)
        return;
    c->closes++;
    rr_check_here(c, s);
}

static void rr_cli_connect(pants_stream_t *s)
{
    struct rr_app *a = pants_stream_data(s);

    if (pants_stream_server(s) != NULL || pants_loop_current() != pants_stream_loop(s) ||
        pants_stream_read_exact(s, 4) != 0 || pants_stream_write(s, "ping", 4) != 0)
        bump(&a->bad);
}

static void rr_cli_read(pants_stream_t *s, const void *data, size_t len)
{
    struct rr_app *a = pants_stream_data(s);

    if (len != 4 || memcmp(data, "ping", 4) != 0)
        bump(&a->bad);
    pants_stream_close(s);
    if (__atomic_add_fetch(&a->replies, 1, __ATOMIC_SEQ_CST) == RR_CLIENTS)
        pants_engine_stop(a->wd.e);
}

static void rr_cli_close(pants_stream_t *s)
{
    struct rr_app *a = pants_stream_data(s);

    bump(&a->cli_closes);
}

START_TEST(round_robin_accept_and_pinning)
{
    static struct rr_app a;
    pants_engine_options_t o = {.threads = RR_LOOPS};
    pants_server_callbacks_t scb = {.on_accept = rr_accept};
    pants_stream_callbacks_t conn = {
        .on_connect = rr_conn_connect, .on_read = rr_conn_read, .on_close = rr_conn_close};
    pants_stream_callbacks_t ccb = {
        .on_connect = rr_cli_connect, .on_read = rr_cli_read, .on_close = rr_cli_close};
    pants_engine_t *e;
    char path[200];

    memset(&a, 0, sizeof(a));
    pt_unix_addr(path, sizeof(path), "spec-rr.sock");
    e = pants_engine_new(&o);
    ck_assert_ptr_nonnull(e);
    ck_assert_uint_eq(pants_engine_threads(e), RR_LOOPS);
    wd_start(&a.wd, e, pants_engine_loop(e, 0));
    a.srv = pants_server_new(e, &scb, &conn, &a);
    ck_assert_ptr_nonnull(a.srv);
    ck_assert_int_eq(pants_server_listen(a.srv, path, 0), 0);
    for (int i = 0; i < RR_CLIENTS; i++) {
        pants_stream_t *c = pants_stream_new(pants_engine_next_loop(e), &ccb, &a);

        ck_assert_ptr_nonnull(c);
        ck_assert_int_eq(pants_stream_connect(c, path), 0);
    }
    ck_assert_int_eq(pants_engine_run(e), 0);
    pants_engine_free(e);

    ck_assert_int_eq(a.wd.fired, 0);
    ck_assert_int_eq(a.accepts, RR_CLIENTS);
    for (int i = 0; i < RR_LOOPS; i++)
        ck_assert_msg(a.per_loop[i] == RR_CLIENTS / RR_LOOPS, "loop %d accepted %d connections, not %d", i,
                      a.per_loop[i], RR_CLIENTS / RR_LOOPS);
    ck_assert_int_eq(a.bad, 0);
    ck_assert_int_eq(a.replies, RR_CLIENTS);
    ck_assert_int_eq(a.cli_closes, RR_CLIENTS);
    for (int i = 0; i < RR_CLIENTS; i++) {
        ck_assert_int_eq(a.conns[i].connects, 1);
        ck_assert_int_eq(a.conns[i].reads, 1);
        ck_assert_int_eq(a.conns[i].closes, 1);
    }
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

/* ---- The four timers, as the seed engine's callback/loop/defer/cycle ---- */

#define TM_CYCLES 5

struct tm_app {
    pants_engine_t *e;            /* to stop */
    pants_loop_t *l;              /* the one loop */
    int wrong_thread;             /* fns run off l's thread */
    int null_handles;             /* timer calls that returned NULL */
    int cb_runs;                  /* pants_timer_callback's fn */
    int cb_runs_in_call;          /* cb_runs right after the call returned */
    int cb_seen_by_loop3;         /* cb_runs when the loop timer ran a 3rd time */
    pants_timer_t *loop_t;        /* cancels itself after 10 runs */
    int loop_runs;                /* its runs */
    pants_timer_t *spin_t;        /* every iteration until the defer cancels it */
    int spin_runs;                /* its runs */
    int spin_at_cancel;           /* spin_runs when cancelled */
    uint64_t defer_t0;            /* when defer(50) was called (us) */
    uint64_t defer_at;            /* when it ran (us) */
    int defer_runs;               /* its runs */
    pants_timer_t *cycle_t;       /* cycle(20): cancels itself */
    uint64_t cycle_t0;            /* when it was made (us) */
    uint64_t cycle_at[TM_CYCLES]; /* when it ran (us) */
    int cycle_runs;               /* its runs */
    int never_runs;               /* runs of timers cancelled before their time */
    int stopped;                  /* the stop timer ran */
};

static void tm_here(struct tm_app *a)
{
    if (pants_loop_current() != a->l)
        a->wrong_thread++;
}

static void tm_cb(void *arg)
{
    struct tm_app *a = arg;

    tm_here(a);
    a->cb_runs++;
}

static void tm_loop(void *arg)
{
    struct tm_app *a = arg;

    tm_here(a);
    if (++a->loop_runs == 3)
        a->cb_seen_by_loop3 = a->cb_runs;
    if (a->loop_runs == 10) {
        pants_timer_cancel(a->loop_t); /* from inside its own fn */
        a->loop_t = NULL;
    }
}

static void tm_spin(void *arg)
{
    struct tm_app *a = arg;

    tm_here(a);
    a->spin_runs++;
}

static void tm_defer(void *arg)
{
    struct tm_app *a = arg;

    tm_here(a);
    a->defer_at = now_us();
    a->defer_runs++;
    a->spin_at_cancel = a->spin_runs;
    pants_timer_cancel(a->spin_t); /* another timer, same loop */
    a->spin_t = NULL;
}

static void tm_cycle(void *arg)
{
    struct tm_app *a = arg;

    tm_here(a);
    if (a->cycle_runs < TM_CYCLES)
        a->cycle_at[a->cycle_runs] = now_us();
    if (++a->cycle_runs == TM_CYCLES) {
        pants_timer_cancel(a->cycle_t);
        a->cycle_t = NULL;
    }
}

static void tm_never(void *arg)
{
    struct tm_app *a = arg;

    a->never_runs++;
}

static void tm_stop(void *arg)
{
    struct tm_app *a = arg;

    tm_here(a);
    a->stopped = 1;
    pants_engine_stop(a->e);
}

static void tm_count(struct tm_app *a, const pants_timer_t *t)
{
    if (t == NULL)
        a->null_handles++;
}

/* Runs on the loop (posted before the engine runs): makes every timer. */
static void tm_setup(void *arg)
{
    struct tm_app *a = arg;

    tm_here(a);
    tm_count(a, pants_timer_callback(a->l, tm_cb, a));
    a->cb_runs_in_call = a->cb_runs;
    tm_count(a, a->loop_t = pants_timer_loop(a->l, tm_loop, a));
    tm_count(a, a->spin_t = pants_timer_loop(a->l, tm_spin, a));
    /* Busy for a while, so a loop whose idea of "now" dates from before
     * this function would fire the next timers early. */
    pt_sleep_ms(30);
    a->defer_t0 = now_us();
    tm_count(a, pants_timer_defer(a->l, 50, tm_defer, a));
    a->cycle_t0 = now_us();
    tm_count(a, a->cycle_t = pants_timer_cycle(a->l, 20, tm_cycle, a));
    /* Cancelled before they are due: they never run. */
    pants_timer_cancel(pants_timer_callback(a->l, tm_never, a));
    pants_timer_cancel(pants_timer_loop(a->l, tm_never, a));
    pants_timer_cancel(pants_timer_defer(a->l, 10, tm_never, a));
    pants_timer_cancel(pants_timer_cycle(a->l, 5, tm_never, a));
    tm_count(a, pants_timer_defer(a->l, 400, tm_stop, a));
}

START_TEST(timers_callback_loop_defer_cycle)
{
    struct tm_app a = {0};
    pants_engine_options_t o = {.threads = 1};

    a.e = pants_engine_new(&o);
    ck_assert_ptr_nonnull(a.e);
    a.l = pants_engine_loop(a.e, 0);
    ck_assert_ptr_nonnull(a.l);
    ck_assert_int_eq(pants_loop_post(a.l, tm_setup, &a), 0);
    ck_assert_int_eq(pants_engine_run(a.e), 0);
    pants_engine_free(a.e);

    ck_assert_int_eq(a.stopped, 1);
    ck_assert_int_eq(a.wrong_thread, 0);
    ck_assert_int_eq(a.null_handles, 0);
    /* callback: once, not inside the call, by the next iteration */
    ck_assert_int_eq(a.cb_runs_in_call, 0);
    ck_assert_int_eq(a.cb_runs, 1);
    ck_assert_int_eq(a.cb_seen_by_loop3, 1);
    /* loop: every iteration until cancelled, from inside or outside */
    ck_assert_int_eq(a.loop_runs, 10);
    ck_assert_int_gt(a.spin_at_cancel, 10);
    ck_assert_int_eq(a.spin_runs, a.spin_at_cancel);
    /* defer: once, no earlier than its delay counted from the call */
    ck_assert_int_eq(a.defer_runs, 1);
    ck_assert_msg(a.defer_at - a.defer_t0 >= 50000, "defer(50) ran after %.1f ms",
                  (double)(a.defer_at - a.defer_t0) / 1000.0);
    /* cycle: repeats until it cancels itself (its timing: the next test) */
    ck_assert_int_eq(a.cycle_runs, TM_CYCLES);
    ck_assert_uint_ge(a.cycle_at[TM_CYCLES - 1] - a.cycle_t0, 20000u * (TM_CYCLES - 1));
    ck_assert_int_eq(a.never_runs, 0);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

/* ---- cycle(n): "delays count from the moment of the call" -------------- */

#define CY_TIMERS 3
#define CY_RUNS   5

struct cy_timer {
    struct cy_app *app;   /* back pointer */
    uint64_t interval_ms; /* its interval */
    pants_timer_t *t;     /* its handle */
    uint64_t t0;          /* when it was made (us) */
    uint64_t at[CY_RUNS]; /* when it ran (us) */
    int runs;             /* its runs */
};

struct cy_app {
    pants_engine_t *e;             /* to stop */
    int done;                      /* timers that ran CY_RUNS times */
    struct cy_timer tm[CY_TIMERS]; /* the cycles */
};

static void cy_run(void *arg)
{
    struct cy_timer *c = arg;

    c->at[c->runs] = now_us();
    if (++c->runs < CY_RUNS)
        return;
    pants_timer_cancel(c->t);
    if (++c->app->done == CY_TIMERS)
        pants_engine_stop(c->app->e);
}

static void cy_setup(void *arg)
{
    struct cy_app *a = arg;

    for (int i = 0; i < CY_TIMERS; i++) {
        pt_sleep_ms(3); /* land at different points of a clock tick */
        a->tm[i].t0 = now_us();
        a->tm[i].t = pants_timer_cycle(pants_loop_current(), a->tm[i].interval_ms, cy_run, &a->tm[i]);
    }
}

/* "Delays count from the moment of the call": the k-th run of cycle(n)
 * comes no earlier than k * n ms after the call, though libevent's coarse
 * clock would fire it up to a tick (4 ms) early. */
START_TEST(cycle_never_runs_early)
{
    static const uint64_t interval[CY_TIMERS] = {20, 13, 7};
    struct cy_app a = {0};
    pants_engine_options_t o = {.threads = 1};
    struct watchdog wd;

    a.e = pants_engine_new(&o);
    ck_assert_ptr_nonnull(a.e);
    for (int i = 0; i < CY_TIMERS; i++)
        a.tm[i] = (struct cy_timer){.app = &a, .interval_ms = interval[i]};
    wd_start(&wd, a.e, pants_engine_loop(a.e, 0));
    ck_assert_int_eq(pants_loop_post(pants_engine_loop(a.e, 0), cy_setup, &a), 0);
    ck_assert_int_eq(pants_engine_run(a.e), 0);
    pants_engine_free(a.e);

    ck_assert_int_eq(wd.fired, 0);
    ck_assert_int_eq(a.done, CY_TIMERS);
    for (int i = 0; i < CY_TIMERS; i++)
        for (int k = 0; k < CY_RUNS; k++) {
            uint64_t due = a.tm[i].interval_ms * 1000u * (uint64_t)(k + 1);
            uint64_t took = a.tm[i].at[k] - a.tm[i].t0;

            ck_assert_msg(took >= due, "cycle(%d) ran the %d. time %.1f ms after the call, not >= %d",
                          (int)a.tm[i].interval_ms, k + 1, (double)took / 1000.0, (int)(due / 1000));
        }
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

/* ---- Loops: indices, round-robin, posts from foreign threads ----------- */

#define PO_POSTERS 2
#define PO_TASKS   1000

struct po_app;

struct po_task {
    struct po_app *app; /* back pointer */
    int who;            /* which poster */
    int seq;            /* its number in that poster's order */
};

struct po_app {
    pants_loop_t *target;                       /* where the tasks go */
    int next[PO_POSTERS];                       /* next seq expected per poster (target's thread) */
    int out_of_order;                           /* tasks that came out of order (target's thread) */
    int wrong_loop;                             /* tasks run elsewhere (target's thread) */
    int runs;                                   /* tasks run (atomic) */
    int post_errors;                            /* posts that did not return 0 (atomic) */
    struct po_task tasks[PO_POSTERS][PO_TASKS]; /* their arguments */
};

static void po_run(void *arg)
{
    struct po_task *t = arg;
    struct po_app *a = t->app;

    if (pants_loop_current() != a->target || pants_loop_index(pants_loop_current()) != 1)
        a->wrong_loop++;
    if (t->seq != a->next[t->who])
        a->out_of_order++;
    a->next[t->who] = t->seq + 1;
    bump(&a->runs);
}

static void *po_poster(void *arg)
{
    struct po_task *mine = arg;
    struct po_app *a = mine[0].app;

    for (int i = 0; i < PO_TASKS; i++)
        if (pants_loop_post(a->target, po_run, &mine[i]) != 0)
            bump(&a->post_errors);
    return NULL;
}

START_TEST(loops_round_robin_and_foreign_posts)
{
    static struct po_app a;
    pants_engine_options_t o = {.threads = 3};
    pants_engine_t *e;
    pthread_t th[PO_POSTERS];
    int seen[3] = {0};

    memset(&a, 0, sizeof(a));
    e = pants_engine_new(&o);
    ck_assert_ptr_nonnull(e);
    ck_assert_uint_eq(pants_engine_threads(e), 3);
    ck_assert_ptr_null(pants_engine_loop(e, 3));
    for (unsigned i = 0; i < 3; i++) {
        ck_assert_ptr_nonnull(pants_engine_loop(e, i));
        ck_assert_uint_eq(pants_loop_index(pants_engine_loop(e, i)), i);
        for (unsigned j = 0; j < i; j++)
            ck_assert_ptr_ne(pants_engine_loop(e, i), pants_engine_loop(e, j));
    }
    /* next_loop: every loop once per round */
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 3; i++) {
            pants_loop_t *l = pants_engine_next_loop(e);

            ck_assert_ptr_nonnull(l);
            ck_assert_uint_lt(pants_loop_index(l), 3);
            ck_assert_ptr_eq(l, pants_engine_loop(e, pants_loop_index(l)));
            seen[pants_loop_index(l)]++;
        }
        for (int i = 0; i < 3; i++)
            ck_assert_int_eq(seen[i], round + 1);
    }
    ck_assert_ptr_null(pants_loop_current());

    a.target = pants_engine_loop(e, 1);
    ck_assert_int_eq(pants_engine_start(e), 0);
    ck_assert_ptr_null(pants_loop_current());
    for (int w = 0; w < PO_POSTERS; w++) {
        for (int i = 0; i < PO_TASKS; i++)
            a.tasks[w][i] = (struct po_task){&a, w, i};
        ck_assert_int_eq(pthread_create(&th[w], NULL, po_poster, a.tasks[w]), 0);
    }
    for (int w = 0; w < PO_POSTERS; w++)
        pthread_join(th[w], NULL);
    ck_assert(pt_wait_count(&a.runs, PO_POSTERS * PO_TASKS, 10000));
    pants_engine_stop(e);
    ck_assert_int_eq(pants_engine_join(e), 0);
    pants_engine_free(e);

    ck_assert_int_eq(a.post_errors, 0);
    ck_assert_int_eq(a.runs, PO_POSTERS * PO_TASKS);
    ck_assert_int_eq(a.wrong_loop, 0);
    ck_assert_int_eq(a.out_of_order, 0);
    for (int w = 0; w < PO_POSTERS; w++)
        ck_assert_int_eq(a.next[w], PO_TASKS);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

START_TEST(threads_zero_is_online_cpus)
{
    pants_engine_options_t o = {.threads = 0};
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    pants_engine_t *e = pants_engine_new(&o);

    ck_assert_ptr_nonnull(e);
    ck_assert_int_gt(cpus, 0);
    ck_assert_uint_eq(pants_engine_threads(e), (unsigned)cpus);
    ck_assert_ptr_nonnull(pants_engine_loop(e, (unsigned)cpus - 1));
    ck_assert_ptr_null(pants_engine_loop(e, (unsigned)cpus));
    ck_assert_int_eq(pants_engine_start(e), 0);
    pants_engine_stop(e);
    ck_assert_int_eq(pants_engine_join(e), 0);
    pants_engine_free(e);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

/* ---- Read delimiters, changed inside on_read ---------------------------- */

#define DL_FRAMES    12
#define DL_APP_MAGIC 0x5eed

struct dl_app {
    struct watchdog wd;         /* bounds the run; wd.e stops it */
    int magic;                  /* DL_APP_MAGIC: the framer got its arg */
    int einval_at_accept;       /* bad delimiter calls refused in on_accept */
    int einval_in_read;         /* bad delimiter calls refused in on_read */
    int good_calls_failed;      /* valid delimiter calls that did not return 0 */
    char frames[DL_FRAMES][32]; /* what the server's on_read got */
    size_t nframes;             /* on_read calls */
    int framer_bad;             /* framer saw a wrong arg or *skip not preset 0 */
    int conn_closes;            /* the server side's on_close calls */
    char reply[16];             /* what the client read */
    pants_stream_t *cli;        /* the client */
    pants_timer_t *parts[2];    /* the client's pending writes */
};

/* Netstrings, "5:hello,": the frame is "5:hello" and the ',' is skipped. */
static ssize_t dl_netstring(const void *buf, size_t len, size_t *skip, void *arg)
{
    struct dl_app *a = arg;
    const char *p = buf;
    size_t n = 0, i = 0;

    if (a->magic != DL_APP_MAGIC || *skip != 0)
        a->framer_bad++;
    for (; i < len && p[i] >= '0' && p[i] <= '9'; i++)
        n = n * 10 + (size_t)(p[i] - '0');
    if (i == len)
        return 0;
    if (i == 0 || p[i] != ':')
        return -EPROTO;
    if (len < i + 1 + n + 1)
        return 0;
    if (p[i + 1 + n] != ',')
        return -EPROTO;
    *skip = 1;
    return (ssize_t)(i + 1 + n);
}

static void dl_good(struct dl_app *a, int rc)
{
    if (rc != 0)
        a->good_calls_failed++;
}

static void dl_accept(pants_server_t *srv, pants_stream_t *conn)
{
    struct dl_app *a = pants_server_data(srv);

    pants_stream_set_data(conn, a);
    a->einval_at_accept += pants_stream_read_exact(conn, 0) == -EINVAL;
    dl_good(a, pants_stream_read_exact(conn, 4));
    /* refused, and exact(4) stays */
    a->einval_at_accept += pants_stream_read_exact(conn, 0) == -EINVAL;
    a->einval_at_accept += pants_stream_read_until(conn, "", 0) == -EINVAL;
    a->einval_at_accept += pants_stream_read_regex(conn, "(unclosed") == -EINVAL;
}

static void dl_read(pants_stream_t *s, const void *data, size_t len)
{
    struct dl_app *a = pants_stream_data(s);
    size_t n = a->nframes++;

    if (n >= DL_FRAMES)
        return;
    memcpy(a->frames[n], data, len < 31 ? len : 31);
    switch (n) {
    case 0: /* "ABCD" */
        dl_good(a, pants_stream_read_until(s, "\r\n\r\n", 4));
        break;
    case 1: /* "first\r\nline" */
        dl_good(a, pants_stream_read_regex(s, "[0-9]+;"));
        break;
    case 2: /* "xyz" */
        dl_good(a, pants_stream_read_framed(s, dl_netstring, a));
        a->einval_in_read += pants_stream_read_exact(s, 0) == -EINVAL;
        a->einval_in_read += pants_stream_read_regex(s, "[") == -EINVAL;
        break;
    case 5: /* "3:abc" */
        dl_good(a, pants_stream_read_until(s, "\n", 1));
        break;
    case 7: /* "bye" */
        dl_good(a, pants_stream_write(s, "ok", 2));
        dl_good(a, pants_stream_end(s));
        break;
    default:
        break;
    }
}

static void dl_conn_close(pants_stream_t *s)
{
    struct dl_app *a = pants_stream_data(s);

    a->conn_closes++;
}

static void dl_part(struct dl_app *a, int i, const char *bytes)
{
    a->parts[i] = NULL; /* finished once this returns */
    dl_good(a, pants_stream_write(a->cli, bytes, strlen(bytes)));
}

static void dl_part_b(void *arg)
{
    dl_part(arg, 0, "\r\nxyz42;5:hel");
}

static void dl_part_c(void *arg)
{
    dl_part(arg, 1, "lo,0:,3:abc,tail\nbye\n");
}

static void dl_cli_connect(pants_stream_t *s)
{
    struct dl_app *a = pants_stream_data(s);

    /* The rest comes later, so a delimiter and a frame span two reads. */
    dl_good(a, pants_stream_write(s, "ABCDfirst\r\nline\r\n", 17));
    a->parts[0] = pants_timer_defer(pants_loop_current(), 40, dl_part_b, a);
    a->parts[1] = pants_timer_defer(pants_loop_current(), 80, dl_part_c, a);
}

static void dl_cli_read(pants_stream_t *s, const void *data, size_t len)
{
    struct dl_app *a = pants_stream_data(s);
    size_t have = strlen(a->reply);

    if (have + len < sizeof(a->reply))
        memcpy(a->reply + have, data, len);
}

static void dl_cli_close(pants_stream_t *s)
{
    struct dl_app *a = pants_stream_data(s);

    for (int i = 0; i < 2; i++)
        pants_timer_cancel(a->parts[i]);
    pants_engine_stop(a->wd.e);
}

START_TEST(delimiters_change_inside_on_read)
{
    static struct dl_app a;
    static const char *want[] = {"ABCD", "first\r\nline", "xyz", "5:hello", "0:", "3:abc", "tail", "bye"};
    pants_engine_options_t o = {.threads = 2};
    pants_server_callbacks_t scb = {.on_accept = dl_accept};
    pants_stream_callbacks_t conn = {.on_read = dl_read, .on_close = dl_conn_close};
    pants_stream_callbacks_t ccb = {
        .on_connect = dl_cli_connect, .on_read = dl_cli_read, .on_close = dl_cli_close};
    pants_engine_t *e;
    char path[200];

    memset(&a, 0, sizeof(a));
    a.magic = DL_APP_MAGIC;
    pt_unix_addr(path, sizeof(path), "spec-dl.sock");
    e = pants_engine_new(&o);
    ck_assert_ptr_nonnull(e);
    wd_start(&a.wd, e, pants_engine_loop(e, 0));
    ck_assert_int_eq(pants_server_listen(pants_server_new(e, &scb, &conn, &a), path, 0), 0);
    a.cli = pants_stream_new(pants_engine_loop(e, 1), &ccb, &a);
    ck_assert_ptr_nonnull(a.cli);
    ck_assert_int_eq(pants_stream_connect(a.cli, path), 0);
    ck_assert_int_eq(pants_engine_run(e), 0);
    pants_engine_free(e);

    ck_assert_int_eq(a.wd.fired, 0);
    ck_assert_int_eq(a.einval_at_accept, 4);
    ck_assert_int_eq(a.einval_in_read, 2);
    ck_assert_int_eq(a.good_calls_failed, 0);
    ck_assert_int_eq(a.framer_bad, 0);
    ck_assert_uint_eq(a.nframes, sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < a.nframes; i++)
        ck_assert_str_eq(a.frames[i], want[i]);
    ck_assert_str_eq(a.reply, "ok");
    ck_assert_int_eq(a.conn_closes, 1);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

/* ---- end() sends what is queued, close() drops it ---------------------- */

#define EC_BIG (4u << 20) /* far more than a Unix socket buffers */

enum ec_mode { EC_NONE, EC_END, EC_CLOSE, EC_REC };

struct ec_app;

struct ec_side {
    struct ec_app *app; /* back pointer */
    enum ec_mode mode;  /* what this connection does */
    size_t received;    /* bytes read (clients) */
    int mismatches;     /* bytes not as written (clients) */
    size_t pending;     /* pants_stream_pending right after the big write */
    int reads_after;    /* on_read after close was called in on_read */
    char frames[64];    /* frames recorded in EC_REC mode, '|'-terminated */
    int closes;         /* on_close calls */
    int after_close;    /* callbacks after on_close */
    int errors;         /* calls that should have returned 0 and did not */
};

struct ec_app {
    struct watchdog wd;      /* bounds the run; wd.e stops it */
    int closes;              /* on_close calls of all six streams (atomic) */
    int accepts;             /* (atomic) */
    int extra;               /* unexpected accepts or commands (atomic) */
    struct ec_side conns[3]; /* the server's side */
    struct ec_side clis[3];  /* the clients: end, close, rec */
};

static unsigned char ec_big[EC_BIG];

static void ec_closed(struct ec_side *d)
{
    if (++d->closes > 1)
        d->after_close++;
    if (__atomic_add_fetch(&d->app->closes, 1, __ATOMIC_SEQ_CST) == 6)
        pants_engine_stop(d->app->wd.e);
}

static void ec_accept(pants_server_t *srv, pants_stream_t *conn)
{
    struct ec_app *a = pants_server_data(srv);
    int slot = __atomic_fetch_add(&a->accepts, 1, __ATOMIC_SEQ_CST);

    if (slot >= 3) {
        bump(&a->extra);
        pants_stream_close(conn);
        return;
    }
    a->conns[slot].app = a;
    pants_stream_set_data(conn, &a->conns[slot]);
    if (pants_stream_read_until(conn, "\n", 1) != 0)
        a->conns[slot].errors++;
}

static void ec_conn_command(struct ec_side *c, pants_stream_t *s, const void *data, size_t len)
{
    if (len == 3 && memcmp(data, "rec", 3) == 0) {
        c->mode = EC_REC;
        return;
    }
    if (len == 3 && memcmp(data, "end", 3) == 0)
        c->mode = EC_END;
    else if (len == 5 && memcmp(data, "close", 5) == 0)
        c->mode = EC_CLOSE;
    else {
        bump(&c->app->extra);
        pants_stream_close(s);
        return;
    }
    if (pants_stream_write(s, ec_big, EC_BIG) != 0)
        c->errors++;
    c->pending = pants_stream_pending(s);
    if (c->mode == EC_END && pants_stream_end(s) != 0)
        c->errors++;
    if (c->mode == EC_CLOSE)
        pants_stream_close(s);
}

static void ec_conn_read(pants_stream_t *s, const void *data, size_t len)
{
    struct ec_side *c = pants_stream_data(s);
    size_t have = strlen(c->frames);

    if (c->closes)
        c->after_close++;
    if (c->mode == EC_NONE) {
        ec_conn_command(c, s, data, len);
    } else if (c->mode == EC_REC) {
        if (have + len + 1 < sizeof(c->frames)) {
            memcpy(c->frames + have, data, len);
            c->frames[have + len] = '|';
        }
    } else {
        c->reads_after++;
    }
}

static void ec_conn_close(pants_stream_t *s)
{
    ec_closed(pants_stream_data(s));
}

static void ec_cli_connect(pants_stream_t *s)
{
    struct ec_side *c = pants_stream_data(s);
    static const char *cmd[] = {"", "end\n", "close\nmore\nmore\n", "rec\na\nb\npart"};

    if (pants_stream_write(s, cmd[c->mode], strlen(cmd[c->mode])) != 0)
        c->errors++;
    if (c->mode == EC_REC && pants_stream_end(s) != 0) /* "part" never completes */
        c->errors++;
}

static void ec_cli_read(pants_stream_t *s, const void *data, size_t len)
{
    struct ec_side *c = pants_stream_data(s);
    const unsigned char *p = data;

    if (c->closes)
        c->after_close++;
    for (size_t i = 0; i < len; i++, c->received++)
        if (c->received >= EC_BIG || p[i] != ec_big[c->received])
            c->mismatches++;
}

static void ec_cli_close(pants_stream_t *s)
{
    ec_closed(pants_stream_data(s));
}

START_TEST(end_sends_queued_close_drops)
{
    static struct ec_app a;
    pants_engine_options_t o = {.threads = 2};
    pants_server_callbacks_t scb = {.on_accept = ec_accept};
    pants_stream_callbacks_t conn = {.on_read = ec_conn_read, .on_close = ec_conn_close};
    pants_stream_callbacks_t ccb = {
        .on_connect = ec_cli_connect, .on_read = ec_cli_read, .on_close = ec_cli_close};
    pants_engine_t *e;
    char path[200];

    memset(&a, 0, sizeof(a));
    for (size_t i = 0; i < EC_BIG; i++)
        ec_big[i] = (unsigned char)(i * 7 + i / 251);
    pt_unix_addr(path, sizeof(path), "spec-ec.sock");
    e = pants_engine_new(&o);
    ck_assert_ptr_nonnull(e);
    wd_start(&a.wd, e, pants_engine_loop(e, 0));
    ck_assert_int_eq(pants_server_listen(pants_server_new(e, &scb, &conn, &a), path, 0), 0);
    for (int i = 0; i < 3; i++) {
        pants_stream_t *c;

        a.clis[i].app = &a;
        a.clis[i].mode = (enum ec_mode)(EC_END + i);
        c = pants_stream_new(pants_engine_loop(e, (unsigned)i % 2), &ccb, &a.clis[i]);
        ck_assert_ptr_nonnull(c);
        ck_assert_int_eq(pants_stream_connect(c, path), 0);
    }
    ck_assert_int_eq(pants_engine_run(e), 0);
    pants_engine_free(e);

    ck_assert_int_eq(a.wd.fired, 0);
    ck_assert_int_eq(a.extra, 0);
    ck_assert_int_eq(a.accepts, 3);
    for (int i = 0; i < 3; i++) {
        const struct ec_side *c = &a.conns[i];

        ck_assert_int_eq(c->closes, 1);
        ck_assert_int_eq(c->after_close, 0);
        ck_assert_int_eq(c->errors, 0);
        if (c->mode == EC_REC)
            ck_assert_str_eq(c->frames, "a|b|"); /* the partial "part" is dropped */
        else
            ck_assert_uint_gt(c->pending, 0);
        if (c->mode == EC_CLOSE)
            ck_assert_int_eq(c->reads_after, 0); /* closed inside on_read: no more */
    }
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(a.clis[i].closes, 1);
        ck_assert_int_eq(a.clis[i].after_close, 0);
        ck_assert_int_eq(a.clis[i].errors, 0);
        ck_assert_int_eq(a.clis[i].mismatches, 0);
    }
    ck_assert_uint_eq(a.clis[0].received, EC_BIG); /* end: all of it */
    ck_assert_uint_lt(a.clis[1].received, EC_BIG); /* close: not all of it */
    ck_assert_uint_eq(a.clis[2].received, 0);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

/* ---- write_file: ranges of a file, in order with write() --------------- */

#define WF_SIZE 100000u

struct wf_app {
    struct watchdog wd;             /* bounds the run; wd.e stops it */
    int fd;                         /* the file */
    int rc[5];                      /* write_file results */
    int write_errors;               /* write/end results other than 0 */
    unsigned char got[3 * WF_SIZE]; /* what the client read */
    size_t len;                     /* bytes in got */
    int overflow;                   /* more than got holds */
    int closes;                     /* client on_close calls */
};

static void wf_conn_connect(pants_stream_t *s)
{
    struct wf_app *a = pants_stream_data(s);

    a->write_errors += pants_stream_write(s, "<", 1) != 0;
    a->rc[0] = pants_stream_write_file(s, a->fd, 10, 100);
    a->write_errors += pants_stream_write(s, "|", 1) != 0;
    a->rc[1] = pants_stream_write_file(s, a->fd, WF_SIZE - 1000, 0); /* to EOF */
    a->write_errors += pants_stream_write(s, "|", 1) != 0;
    a->rc[2] = pants_stream_write_file(s, a->fd, 2 * WF_SIZE, 0); /* past EOF: nothing */
    a->write_errors += pants_stream_write(s, "|", 1) != 0;
    a->rc[3] = pants_stream_write_file(s, a->fd, 0, 0);           /* all of it */
    a->rc[4] = pants_stream_write_file(s, a->fd, WF_SIZE - 5, 5); /* the last bytes */
    a->write_errors += pants_stream_write(s, ">", 1) != 0;
    a->write_errors += pants_stream_end(s) != 0;
}

static void wf_accept(pants_server_t *srv, pants_stream_t *conn)
{
    pants_stream_set_data(conn, pants_server_data(srv));
}

static void wf_cli_read(pants_stream_t *s, const void *data, size_t len)
{
    struct wf_app *a = pants_stream_data(s);

    if (a->len + len > sizeof(a->got)) {
        a->overflow = 1;
        return;
    }
    memcpy(a->got + a->len, data, len);
    a->len += len;
}

static void wf_cli_close(pants_stream_t *s)
{
    struct wf_app *a = pants_stream_data(s);

    a->closes++;
    pants_engine_stop(a->wd.e);
}

START_TEST(write_file_ranges_in_order)
{
    static struct wf_app a;
    static unsigned char file[WF_SIZE], want[3 * WF_SIZE];
    char tmpl[] = "/tmp/pants-spec-wf-XXXXXX";
    pants_engine_options_t o = {.threads = 2};
    pants_server_callbacks_t scb = {.on_accept = wf_accept};
    pants_stream_callbacks_t conn = {.on_connect = wf_conn_connect};
    pants_stream_callbacks_t ccb = {.on_read = wf_cli_read, .on_close = wf_cli_close};
    pants_engine_t *e;
    size_t n = 0;
    char path[200];

    memset(&a, 0, sizeof(a));
    for (size_t i = 0; i < WF_SIZE; i++)
        file[i] = (unsigned char)(i * 13 + i / 256);
    a.fd = mkstemp(tmpl);
    ck_assert_int_ge(a.fd, 0);
    unlink(tmpl);
    ck_assert_int_eq(write(a.fd, file, WF_SIZE), (ssize_t)WF_SIZE);

#define WF_PUT(p, k) (memcpy(want + n, (p), (k)), n += (k))
    WF_PUT("<", 1);
    WF_PUT(file + 10, 100);
    WF_PUT("|", 1);
    WF_PUT(file + WF_SIZE - 1000, 1000);
    WF_PUT("||", 2);
    WF_PUT(file, WF_SIZE);
    WF_PUT(file + WF_SIZE - 5, 5);
    WF_PUT(">", 1);
#undef WF_PUT

    pt_unix_addr(path, sizeof(path), "spec-wf.sock");
    e = pants_engine_new(&o);
    ck_assert_ptr_nonnull(e);
    wd_start(&a.wd, e, pants_engine_loop(e, 0));
    ck_assert_int_eq(pants_server_listen(pants_server_new(e, &scb, &conn, &a), path, 0), 0);
    ck_assert_int_eq(pants_stream_connect(pants_stream_new(pants_engine_loop(e, 1), &ccb, &a), path), 0);
    ck_assert_int_eq(pants_engine_run(e), 0);
    pants_engine_free(e);
    close(a.fd);

    ck_assert_int_eq(a.wd.fired, 0);
    ck_assert_int_eq(a.rc[0], 0);
    ck_assert_int_eq(a.rc[1], 0);
    ck_assert_int_eq(a.rc[3], 0);
    ck_assert_int_eq(a.rc[4], 0);
    ck_assert_int_eq(a.write_errors, 0);
    ck_assert_int_eq(a.overflow, 0);
    ck_assert_int_eq(a.closes, 1);
    ck_assert_uint_eq(a.len, n);
    ck_assert(memcmp(a.got, want, n) == 0);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

/* ---- broadcast and connections from a thread outside the engine -------- */

#define BC_CLIENTS 6

struct bc_cli {
    pants_stream_t *s; /* the stream */
    int news;          /* "news" frames (its loop's thread) */
    int more;          /* "more" frames */
    int other;         /* anything else */
};

struct bc_app {
    int accepts;   /* (atomic) */
    int connected; /* client on_connect calls (atomic) */
    int frames;    /* frames the clients read (atomic) */
    int closes;    /* client on_close calls (atomic) */
    struct bc_cli clis[BC_CLIENTS];
};

static struct bc_app bc_app; /* the one instance (the clients' data is their slot) */

static void bc_accept(pants_server_t *srv, pants_stream_t *conn)
{
    struct bc_app *a = pants_server_data(srv);

    (void)conn;
    bump(&a->accepts);
}

static void bc_cli_connect(pants_stream_t *s)
{
    pants_stream_read_until(s, "\n", 1);
    bump(&bc_app.connected);
}

static void bc_cli_read(pants_stream_t *s, const void *data, size_t len)
{
    struct bc_cli *c = pants_stream_data(s);

    if (len == 4 && memcmp(data, "news", 4) == 0)
        c->news++;
    else if (len == 4 && memcmp(data, "more", 4) == 0)
        c->more++;
    else
        c->other++;
    bump(&bc_app.frames);
}

static void bc_cli_close(pants_stream_t *s)
{
    bump(&bc_app.closes);
}

static void bc_close(pants_stream_t *s, void *arg)
{
    (void)arg;
    pants_stream_close(s);
}

/* Wait (bounded) until the server counts n connections. */
static bool bc_wait_connections(pants_server_t *srv, size_t n)
{
    for (int i = 0; i < 5000; i++) {
        if (pants_server_connections(srv) == n)
            return true;
        pt_sleep_ms(1);
    }
    return false;
}

START_TEST(broadcast_and_connections_from_outside)
{
    struct bc_app *a = &bc_app;
    pants_engine_options_t o = {.threads = 3};
    pants_server_callbacks_t scb = {.on_accept = bc_accept};
    pants_stream_callbacks_t conn = {0};
    pants_stream_callbacks_t ccb = {
        .on_connect = bc_cli_connect, .on_read = bc_cli_read, .on_close = bc_cli_close};
    pants_engine_t *e;
    pants_server_t *srv;
    char path[200];

    memset(a, 0, sizeof(*a));
    pt_unix_addr(path, sizeof(path), "spec-bc.sock");
    e = pants_engine_new(&o);
    ck_assert_ptr_nonnull(e);
    srv = pants_server_new(e, &scb, &conn, a);
    ck_assert_ptr_nonnull(srv);
    ck_assert_int_eq(pants_server_listen(srv, path, 0), 0);
    for (int i = 0; i < BC_CLIENTS; i++) {
        a->clis[i].s = pants_stream_new(pants_engine_next_loop(e), &ccb, &a->clis[i]);
        ck_assert_ptr_nonnull(a->clis[i].s);
        ck_assert_int_eq(pants_stream_connect(a->clis[i].s, path), 0);
    }
    ck_assert_int_eq(pants_engine_start(e), 0);
    ck_assert(pt_wait_count(&a->accepts, BC_CLIENTS, 5000));
    ck_assert(pt_wait_count(&a->connected, BC_CLIENTS, 5000));
    ck_assert(bc_wait_connections(srv, BC_CLIENTS));

    ck_assert_int_eq(pants_server_broadcast(srv, "news\n", 5), 0);
    ck_assert(pt_wait_count(&a->frames, BC_CLIENTS, 5000));

    /* One client leaves; the server stops counting it. */
    ck_assert_int_eq(pants_stream_post(a->clis[0].s, bc_close, NULL), 0);
    ck_assert(pt_wait(&a->closes, 5000));
    ck_assert(bc_wait_connections(srv, BC_CLIENTS - 1));
    ck_assert_int_eq(pants_server_broadcast(srv, "more\n", 5), 0);
    ck_assert(pt_wait_count(&a->frames, 2 * BC_CLIENTS - 1, 5000));
    pt_sleep_ms(50); /* a stray extra frame would show now */

    pants_engine_stop(e);
    ck_assert_int_eq(pants_engine_join(e), 0);
    pants_engine_free(e);

    ck_assert_int_eq(a->accepts, BC_CLIENTS);
    ck_assert_int_eq(a->closes, BC_CLIENTS);
    ck_assert_int_eq(a->frames, 2 * BC_CLIENTS - 1);
    for (int i = 0; i < BC_CLIENTS; i++) {
        ck_assert_int_eq(a->clis[i].news, 1);
        ck_assert_int_eq(a->clis[i].more, i == 0 ? 0 : 1);
        ck_assert_int_eq(a->clis[i].other, 0);
    }
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

/* ---- Addresses and error names ----------------------------------------- */

static void addr_round_trip(const char *text, int family)
{
    pants_addr_t a;
    char back[128];

    memset(&a, 0xa5, sizeof(a));
    ck_assert_msg(pants_addr_parse(&a, text) == 0, "parse \"%s\"", text);
    ck_assert_int_eq(a.ss.ss_family, family);
    ck_assert_int_eq(pants_addr_format(&a, back, sizeof(back)), 0);
    ck_assert_str_eq(back, text);
}

struct mf_app {
    int connect_cbs; /* on_connect / on_connect_error calls: must stay 0 */
    int closes;      /* on_close calls */
    int listens;     /* server on_listen calls: must stay 0 */
    pants_engine_t *e;
    pants_stream_t *s;
    pants_server_t *srv;
};

static void mf_connect(pants_stream_t *s)
{
    struct mf_app *m = pants_stream_data(s);

    m->connect_cbs++;
}

static void mf_connect_error(pants_stream_t *s, int err)
{
    struct mf_app *m = pants_stream_data(s);

    (void)err;
    m->connect_cbs++;
}

static void mf_close(pants_stream_t *s)
{
    struct mf_app *m = pants_stream_data(s);

    m->closes++;
}

static void mf_listen(pants_server_t *srv)
{
    struct mf_app *m = pants_server_data(srv);

    m->listens++;
}

/* On the stream's loop, after a few iterations: close up and stop. */
static void mf_finish(void *arg)
{
    struct mf_app *m = arg;

    pants_stream_close(m->s);
    pants_server_close(m->srv);
    pants_engine_stop(m->e);
}

static void mf_later(void *arg)
{
    pants_timer_defer(pants_loop_current(), 50, mf_finish, arg);
}

START_TEST(addresses_errors_and_malformed)
{
    static const char *malformed[] = {
        "", "127.0.0.1", "127.0.0.1:", "127.0.0.1:99999", "[::1:80", "[::1]", "::1:80x", "[::1]:-1", "unix",
    };
    static const int eai[] = {
        PANTS_EAI_ADDRFAMILY, PANTS_EAI_AGAIN,    PANTS_EAI_BADFLAGS, PANTS_EAI_FAIL,
        PANTS_EAI_FAMILY,     PANTS_EAI_MEMORY,   PANTS_EAI_NODATA,   PANTS_EAI_NONAME,
        PANTS_EAI_SERVICE,    PANTS_EAI_SOCKTYPE, PANTS_EAI_CANCELED, PANTS_EAI_TIMEOUT,
    };
    static const int errs[] = {-EINVAL, -EADDRINUSE, -ECONNREFUSED, -EPIPE, -ETIMEDOUT, -ENOMEM};
    const size_t n_eai = sizeof(eai) / sizeof(eai[0]), n_errs = sizeof(errs) / sizeof(errs[0]);
    const char *names[sizeof(eai) / sizeof(eai[0]) + sizeof(errs) / sizeof(errs[0])];
    pants_engine_options_t o = {.threads = 1};
    pants_stream_callbacks_t cb = {
        .on_connect = mf_connect, .on_connect_error = mf_connect_error, .on_close = mf_close};
    pants_server_callbacks_t scb = {.on_listen = mf_listen};
    struct mf_app m = {0};
    pants_addr_t a;

    addr_round_trip("127.0.0.1:80", AF_INET);
    addr_round_trip("[::1]:80", AF_INET6);
    addr_round_trip("unix:/tmp/x", AF_UNIX);
    addr_round_trip("unix:@name", AF_UNIX);
    ck_assert_int_eq(pants_addr_parse(&a, "unix:@name"), 0);
    ck_assert_uint_eq(a.len, offsetof(struct sockaddr_un, sun_path) + 1 + strlen("name"));
    ck_assert_int_eq(((const struct sockaddr_un *)&a.ss)->sun_path[0], '\0');
    ck_assert_mem_eq(((const struct sockaddr_un *)&a.ss)->sun_path + 1, "name", 4);
    ck_assert_int_eq(pants_addr_parse(&a, "127.0.0.1:8080"), 0);
    ck_assert_uint_eq(a.len, sizeof(struct sockaddr_in));
    ck_assert_uint_eq(ntohs(((const struct sockaddr_in *)&a.ss)->sin_port), 8080);
    ck_assert_uint_eq(ntohl(((const struct sockaddr_in *)&a.ss)->sin_addr.s_addr), INADDR_LOOPBACK);
    ck_assert_int_eq(pants_addr_parse(&a, "[::1]:8080"), 0);
    ck_assert_uint_eq(a.len, sizeof(struct sockaddr_in6));
    ck_assert_uint_eq(ntohs(((const struct sockaddr_in6 *)&a.ss)->sin6_port), 8080);
    for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++)
        ck_assert_msg(pants_addr_parse(&a, malformed[i]) == -EINVAL, "parse \"%s\" gave %d", malformed[i],
                      pants_addr_parse(&a, malformed[i]));
    /* numeric only: a name is not looked up here */
    ck_assert_int_lt(pants_addr_parse(&a, "name.invalid:80"), 0);

    /* Every code has a name of its own. */
    for (size_t i = 0; i < n_eai; i++) {
        ck_assert_int_lt(eai[i], -EHWPOISON); /* below every errno value */
        names[i] = pants_strerror(eai[i]);
    }
    for (size_t i = 0; i < n_errs; i++)
        names[n_eai + i] = pants_strerror(errs[i]);
    for (size_t i = 0; i < n_eai + n_errs; i++) {
        ck_assert_ptr_nonnull(names[i]);
        ck_assert_uint_gt(strlen(names[i]), 0);
        for (size_t j = 0; j < i; j++)
            ck_assert_msg(strcmp(names[i], names[j]) != 0, "two codes are both \"%s\"", names[i]);
    }

    /* Malformed addresses are refused by the call; no callback follows. */
    m.e = pants_engine_new(&o);
    ck_assert_ptr_nonnull(m.e);
    m.s = pants_stream_new(pants_engine_loop(m.e, 0), &cb, &m);
    ck_assert_ptr_nonnull(m.s);
    m.srv = pants_server_new(m.e, &scb, NULL, &m);
    ck_assert_ptr_nonnull(m.srv);
    for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
        ck_assert_msg(pants_stream_connect(m.s, malformed[i]) == -EINVAL, "connect \"%s\"", malformed[i]);
        ck_assert_msg(pants_server_listen(m.srv, malformed[i], 0) == -EINVAL, "listen \"%s\"", malformed[i]);
    }
    ck_assert_int_eq(pants_loop_post(pants_engine_loop(m.e, 0), mf_later, &m), 0);
    ck_assert_int_eq(pants_engine_run(m.e), 0);
    pants_engine_free(m.e);

    ck_assert_int_eq(m.connect_cbs, 0);
    ck_assert_int_eq(m.listens, 0);
    ck_assert_int_eq(m.closes, 1);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

/* ==== contract2: more of API.md, again from its names alone ==============
 *
 * The same rules as "contract": only API.md's names (plus pants_live_objects
 * at the end and the testutil helpers); ports are found with plain sockets
 * (bind port 0, read it, close), never with pants extras.  The peers that
 * must misbehave (half-close, read slowly, send raw packets) are plain
 * sockets on the test's own threads.
 */

/* 127.0.0.1 or ::1, port port, in ss. */
static void c2_loopback(struct sockaddr_storage *ss, socklen_t *len, int family, int port)
{
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET6) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;

        a6->sin6_family = AF_INET6;
        a6->sin6_addr = in6addr_loopback;
        a6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*a6);
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)ss;

        a4->sin_family = AF_INET;
        a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a4->sin_port = htons((uint16_t)port);
        *len = sizeof(*a4);
    }
}

static int c2_port_of(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

/* A port of 127.0.0.1 (or ::1) that was free a moment ago: a plain socket
 * of type binds port 0, reads the port back and closes.  0 if the family
 * cannot be bound there. */
static int c2_free_port(int family, int type)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd = socket(family, type | SOCK_CLOEXEC, 0), port = 0;

    if (fd < 0)
        return 0;
    c2_loopback(&ss, &len, family, 0);
    if (bind(fd, (struct sockaddr *)&ss, len) == 0 && getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        port = c2_port_of(&ss);
    close(fd);
    return port;
}

/* A blocking TCP connect to 127.0.0.1:port: the fd, or -errno. */
static int c2_tcp_connect(int port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), err;

    if (fd < 0)
        return -errno;
    c2_loopback(&ss, &len, AF_INET, port);
    if (connect(fd, (struct sockaddr *)&ss, len) == 0)
        return fd;
    err = errno;
    close(fd);
    return -err;
}

/* A plain Unix socket of type at address ("unix:/path"), bound and (for
 * streams) listening, or only connected: the fd, or -errno. */
static int c2_unix(const char *address, int type, bool bind_it)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0), err, rc;

    if (fd < 0)
        return -errno;
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", address + strlen("unix:"));
    if (bind_it)
        rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
    else
        rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
    if (rc == 0 && bind_it && type == SOCK_STREAM)
        rc = listen(fd, 8);
    if (rc == 0)
        return fd;
    err = errno;
    close(fd);
    return -err;
}

/* Does the file of a "unix:/path" address exist? */
static bool c2_file_exists(const char *address)
{
    struct stat st;

    return stat(address + strlen("unix:"), &st) == 0;
}

/* Wait at most ms for fd to be readable, then read: bytes, 0 at EOF,
 * -ETIMEDOUT, or -errno. */
static ssize_t c2_recv(int fd, void *buf, size_t len, int ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    ssize_t n;

    if (poll(&p, 1, ms) != 1)
        return -ETIMEDOUT;
    n = recv(fd, buf, len, 0);
    return n < 0 ? -errno : n;
}

static int c2_load(const int *v)
{
    return __atomic_load_n(v, __ATOMIC_SEQ_CST);
}

/* ---- pants_engine_stop from a signal handler flushes what is queued ---- */

#define SG_BIG  (4u << 20)   /* queued before the run: far more than a socket buffers */
#define SG_KICK (256u << 10) /* the peer raises SIGUSR1 once it has read this much */

struct sg_app {
    struct watchdog wd; /* bounds the run; wd.e is what the handler stops */
    pthread_t runner;   /* the thread inside pants_engine_run */
    int lfd;            /* the peer's plain listening socket */
    size_t received;    /* bytes the peer read (peer thread) */
    size_t mismatches;  /* bytes not as written (peer thread) */
    int eof;            /* the peer read EOF (peer thread) */
    int peer_failed;    /* the peer timed out or got an error (peer thread) */
    int signalled;      /* SIGUSR1 was sent (atomic) */
    int handled;        /* the handler ran (atomic) */
    int connects;       /* the stream's on_connect calls */
    int closes;         /* its on_close calls */
    int after_close;    /* its callbacks after on_close */
};

static struct sg_app sg_app;
static unsigned char sg_big[SG_BIG];

static void sg_on_signal(int sig)
{
    (void)sig;
    __atomic_store_n(&sg_app.handled, 1, __ATOMIC_SEQ_CST);
    pants_engine_stop(sg_app.wd.e);
}

/* The peer: accept, then read slowly (but steadily) until EOF. */
static void *sg_peer(void *arg)
{
    struct sg_app *a = arg;
    static unsigned char buf[32768];
    struct pollfd p = {a->lfd, POLLIN, 0};
    int fd;

    if (poll(&p, 1, 10000) != 1 || (fd = accept(a->lfd, NULL, NULL)) < 0) {
        a->peer_failed = 1;
        return NULL;
    }
    for (int idle_ms = 0;;) {
        ssize_t n = c2_recv(fd, buf, sizeof(buf), 200);

        if (n == -ETIMEDOUT) {
            /* ThreadSanitizer may hold a signal back until the runner
             * leaves epoll_wait, which an idle loop never does: send it
             * again until the handler ran. */
            if (c2_load(&a->signalled) && !c2_load(&a->handled))
                pthread_kill(a->runner, SIGUSR1);
            if ((idle_ms += 200) < 10000)
                continue;
        }
        idle_ms = 0;
        if (n <= 0) {
            a->eof = n == 0;
            a->peer_failed = n < 0;
            break;
        }
        for (size_t i = 0; i < (size_t)n; i++)
            if (a->received + i >= SG_BIG || buf[i] != sg_big[a->received + i])
                a->mismatches++;
        a->received += (size_t)n;
        if (a->received >= SG_KICK && !c2_load(&a->signalled)) {
            __atomic_store_n(&a->signalled, 1, __ATOMIC_SEQ_CST);
            pthread_kill(a->runner, SIGUSR1);
        }
        if (a->received / 65536 != (a->received - (size_t)n) / 65536)
            pt_sleep_ms(2); /* slow, but reading: 2 ms a 64 KiB */
    }
    close(fd);
    return NULL;
}

static void sg_connect(pants_stream_t *s)
{
    struct sg_app *a = pants_stream_data(s);

    a->after_close += a->closes;
    a->connects++;
}

static void sg_close(pants_stream_t *s)
{
    struct sg_app *a = pants_stream_data(s);

    a->after_close += a->closes;
    a->closes++;
}

/* "any thread, also a signal handler: stop accepting, end() every stream
 * (queued data is still sent), then close"; run "returns 0 once stopped
 * and every channel closed".  The stream is set up (connect, then a write
 * that waits for the connection) on this thread before the engine runs. */
START_TEST(stop_from_signal_handler_flushes_queued)
{
    struct sg_app *a = &sg_app;
    pants_engine_options_t o = {.threads = 2};
    pants_stream_callbacks_t cb = {.on_connect = sg_connect, .on_close = sg_close};
    struct sigaction sa = {.sa_handler = sg_on_signal, .sa_flags = SA_RESTART}, old;
    pants_engine_t *e;
    pants_stream_t *s;
    pthread_t peer;
    char path[200];
    int rc;

    memset(a, 0, sizeof(*a));
    for (size_t i = 0; i < SG_BIG; i++)
        sg_big[i] = (unsigned char)(i * 11 + i / 509);
    pt_unix_addr(path, sizeof(path), "spec-sg.sock");
    a->lfd = c2_unix(path, SOCK_STREAM, true);
    ck_assert_int_ge(a->lfd, 0);
    e = pants_engine_new(&o);
    ck_assert_ptr_nonnull(e);
    wd_start(&a->wd, e, pants_engine_loop(e, 0));
    s = pants_stream_new(pants_engine_loop(e, 1), &cb, a);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(pants_stream_connect(s, path), 0);
    ck_assert_int_eq(pants_stream_write(s, sg_big, SG_BIG), 0);

    sigemptyset(&sa.sa_mask);
    ck_assert_int_eq(sigaction(SIGUSR1, &sa, &old), 0);
    a->runner = pthread_self();
    ck_assert_int_eq(pthread_create(&peer, NULL, sg_peer, a), 0);
    rc = pants_engine_run(e);
    pthread_join(peer, NULL);
    sigaction(SIGUSR1, &old, NULL);
    pants_engine_free(e);
    close(a->lfd);

    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(a->wd.fired, 0);
    ck_assert_int_eq(a->signalled, 1);
    ck_assert_int_eq(a->handled, 1);
    ck_assert_int_eq(a->peer_failed, 0);
    ck_assert_int_eq(a->eof, 1);
    ck_assert_uint_eq(a->received, SG_BIG); /* all of it, though stopped early */
    ck_assert_uint_eq(a->mismatches, 0);
    ck_assert_int_eq(a->connects, 1);
    ck_assert_int_eq(a->closes, 1);
    ck_assert_int_eq(a->after_close, 0);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

/* ---- on_connect_error: NULL closes; set, the stream stays usable ------- */

struct ce_app {
    struct watchdog wd; /* bounds the run; wd.e stops it */
    char live[200];     /* the server's address */
    char refused[64];   /* a port no one listens on */
    int closes;         /* both streams' on_close calls (atomic) */
    int d_connects;     /* default stream: on_connect calls */
    int d_closes;       /* default stream: on_close calls */
    int r_errors;       /* retrying stream: on_connect_error calls */
    int r_err;          /* its err */
    int r_retry_rc;     /* pants_stream_connect inside on_connect_error */
    int r_connects;     /* on_connect calls */
    char r_line[32];    /* the line it read back */
    int r_closes;       /* on_close calls */
    int r_after_close;  /* callbacks after on_close */
};

static void ce_closed(struct ce_app *a)
{
    if (__atomic_add_fetch(&a->closes, 1, __ATOMIC_SEQ_CST) == 2)
        pants_engine_stop(a->wd.e);
}

static void ce_d_connect(pants_stream_t *s)
{
    struct ce_app *a = pants_stream_data(s);

    a->d_connects++;
}

static void ce_d_close(pants_stream_t *s)
{
    struct ce_app *a = pants_stream_data(s);

    a->d_closes++;
    ce_closed(a);
}

static void ce_r_error(pants_stream_t *s, int err)
{
    struct ce_app *a = pants_stream_data(s);

    a->r_after_close += a->r_closes;
    a->r_errors++;
    a->r_err = err;
    a->r_retry_rc = pants_stream_connect(s, a->live);
}

static void ce_r_connect(pants_stream_t *s)
{
    struct ce_app *a = pants_stream_data(s);

    a->r_after_close += a->r_closes;
    a->r_connects++;
    pants_stream_read_until(s, "\n", 1);
    pants_stream_write(s, "hello\n", 6);
}

static void ce_r_read(pants_stream_t *s, const void *data, size_t len)
{
    struct ce_app *a = pants_stream_data(s);

    a->r_after_close += a->r_closes;
    memcpy(a->r_line, data, len < sizeof(a->r_line) - 1 ? len : sizeof(a->r_line) - 1);
    pants_stream_close(s);
}

static void ce_r_close(pants_stream_t *s)
{
    struct ce_app *a = pants_stream_data(s);

    a->r_closes++;
    ce_closed(a);
}

/* The server: a line in, the same line out. */
static void ce_echo_accept(pants_server_t *srv, pants_stream_t *conn)
{
    (void)srv;
    pants_stream_read_until(conn, "\n", 1);
}

static void ce_echo_read(pants_stream_t *s, const void *data, size_t len)
{
    pants_stream_write(s, data, len);
    pants_stream_write(s, "\n", 1);
}

/* on_connect_error: "stays usable: connect again or close; NULL = close". */
START_TEST(connect_error_default_closes_or_retries)
{
    static struct ce_app a;
    pants_engine_options_t o = {.threads = 2};
    pants_server_callbacks_t scb = {.on_accept = ce_echo_accept};
    pants_stream_callbacks_t conn = {.on_read = ce_echo_read};
    pants_stream_callbacks_t dcb = {.on_connect = ce_d_connect, .on_close = ce_d_close};
    pants_stream_callbacks_t rcb = {.on_connect = ce_r_connect,
                                    .on_connect_error = ce_r_error,
                                    .on_read = ce_r_read,
                                    .on_close = ce_r_close};
    pants_engine_t *e;
    int port = c2_free_port(AF_INET, SOCK_STREAM);

    memset(&a, 0, sizeof(a));
    ck_assert_int_gt(port, 0);
    snprintf(a.refused, sizeof(a.refused), "127.0.0.1:%d", port);
    pt_unix_addr(a.live, sizeof(a.live), "spec-ce.sock");
    e = pants_engine_new(&o);
    ck_assert_ptr_nonnull(e);
    wd_start(&a.wd, e, pants_engine_loop(e, 0));
    ck_assert_int_eq(pants_server_listen(pants_server_new(e, &scb, &conn, NULL), a.live, 0), 0);
    ck_assert_int_eq(pants_stream_connect(pants_stream_new(pants_engine_loop(e, 0), &dcb, &a), a.refused), 0);
    ck_assert_int_eq(pants_stream_connect(pants_stream_new(pants_engine_loop(e, 1), &rcb, &a), a.refused), 0);
    ck_assert_int_eq(pants_engine_run(e), 0);
    pants_engine_free(e);

    ck_assert_int_eq(a.wd.fired, 0);
    /* NULL on_connect_error: closed, on_close once */
    ck_assert_int_eq(a.d_connects, 0);
    ck_assert_int_eq(a.d_closes, 1);
    /* set: it ran once, and a connect from inside it worked */
    ck_assert_int_eq(a.r_errors, 1);
    ck_assert_int_eq(a.r_err, -ECONNREFUSED);
    ck_assert_int_eq(a.r_retry_rc, 0);
    ck_assert_int_eq(a.r_connects, 1);
    ck_assert_str_eq(a.r_line, "hello");
    ck_assert_int_eq(a.r_closes, 1);
    ck_assert_int_eq(a.r_after_close, 0);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

/* ---- on_error and on_overflow: NULL closes, set they are called -------- */

enum df_mode { DF_ERROR, DF_ERROR_NULL, DF_OVERFLOW, DF_OVERFLOW_NULL, DF_MODES };

struct df_app;

struct df_side {
    struct df_app *app; /* back pointer */
    int setup_errors;   /* delimiter/limit/write calls that did not return 0 */
    int reads;          /* on_read calls after the set-up frame */
    int errors;         /* on_error calls */
    int err;            /* its err */
    int overflows;      /* on_overflow calls */
    int closes;         /* on_close calls */
    int after_close;    /* callbacks after on_close */
};

struct df_app {
    struct watchdog wd;             /* bounds the run; wd.e stops it */
    int closes;                     /* on_close calls of all eight streams (atomic) */
    int unknown;                    /* a mode line no client sends (atomic) */
    struct df_side conns[DF_MODES]; /* the server's side, by mode */
    struct df_cli {
        struct df_app *app; /* back pointer */
        int mode;           /* which enum df_mode it asks for */
        int go;             /* "go" lines read */
        int closes;         /* on_close calls */
    } clis[DF_MODES];       /* the clients, by mode */
};

static const char df_names[DF_MODES] = {'E', 'e', 'O', 'o'};

static void df_closed(struct df_app *a)
{
    if (__atomic_add_fetch(&a->closes, 1, __ATOMIC_SEQ_CST) == 2 * DF_MODES)
        pants_engine_stop(a->wd.e);
}

/* Rejects the stream at the first 'X'. */
static ssize_t df_framer(const void *buf, size_t len, size_t *skip, void *arg)
{
    (void)skip;
    (void)arg;
    return memchr(buf, 'X', len) != NULL ? -EPROTO : 0;
}

static void df_read(pants_stream_t *s, const void *data, size_t len)
{
    struct df_side *c = pants_stream_data(s);

    (void)data;
    (void)len;
    c->after_close += c->closes;
    c->reads++;
}

static void df_error(pants_stream_t *s, int err)
{
    struct df_side *c = pants_stream_data(s);

    c->after_close += c->closes;
    c->errors++;
    c->err = err; /* and no close: the library closes it */
}

static void df_overflow(pants_stream_t *s)
{
    struct df_side *c = pants_stream_data(s);

    c->after_close += c->closes;
    c->overflows++;
    pants_stream_close(s);
}

static void df_close(pants_stream_t *s)
{
    struct df_side *c = pants_stream_data(s);

    c->after_close += c->closes;
    c->closes++;
    df_closed(c->app);
}

/* The first line names the mode; set the stream up for it, say "go". */
static void df_mode_read(pants_stream_t *s, const void *data, size_t len)
{
    static const pants_stream_callbacks_t cbs[DF_MODES] = {
        {.on_read = df_read, .on_error = df_error, .on_close = df_close},
        {.on_read = df_read, .on_close = df_close},
        {.on_read = df_read, .on_overflow = df_overflow, .on_close = df_close},
        {.on_read = df_read, .on_close = df_close},
    };
    struct df_app *a = pants_stream_data(s);
    const char *hit = len == 1 ? memchr(df_names, *(const char *)data, DF_MODES) : NULL;
    struct df_side *c;
    int m;

    if (hit == NULL) {
        bump(&a->unknown);
        pants_stream_close(s);
        return;
    }
    m = (int)(hit - df_names);
    c = &a->conns[m];
    c->app = a;
    pants_stream_set_data(s, c);
    pants_stream_set_callbacks(s, &cbs[m]);
    if (m == DF_ERROR || m == DF_ERROR_NULL) {
        c->setup_errors += pants_stream_read_framed(s, df_framer, NULL) != 0;
    } else {
        c->setup_errors += pants_stream_set_read_limit(s, 1024) != 0;
        c->setup_errors += pants_stream_read_until(s, "\n", 1) != 0;
    }
    c->setup_errors += pants_stream_write(s, "go\n", 3) != 0;
}

static void df_accept(pants_server_t *srv, pants_stream_t *conn)
{
    pants_stream_set_data(conn, pants_server_data(srv));
    pants_stream_read_until(conn, "\n", 1);
}

static void df_cli_connect(pants_stream_t *s)
{
    struct df_cli *c = pants_stream_data(s);
    char line[2] = {df_names[c->mode], '\n'};

    pants_stream_read_until(s, "\n", 1);
    pants_stream_write(s, line, 2);
}

static void df_cli_read(pants_stream_t *s, const void *data, size_t len)
{
    static char flood[8192];
    struct df_cli *c = pants_stream_data(s);

    if (len != 2 || memcmp(data, "go", 2) != 0)
        return;
    c->go++;
    if (c->mode == DF_ERROR || c->mode == DF_ERROR_NULL) {
        pants_stream_write(s, "12345X", 6);
    } else {
        memset(flood, 'a', sizeof(flood)); /* no "\n": never a frame */
        pants_stream_write(s, flood, sizeof(flood));
    }
}

static void df_cli_close(pants_stream_t *s)
{
    struct df_cli *c = pants_stream_data(s);

    c->closes++;
    df_closed(c->app);
}

/* on_error "NULL = close" (a framer's negative errno: "closed with
 * on_error"); on_overflow "read buffer passed its limit; NULL = close". */
START_TEST(error_and_overflow_defaults_close)
{
    static struct df_app a;
    pants_engine_options_t o = {.threads = 2};
    pants_server_callbacks_t scb = {.on_accept = df_accept};
    pants_stream_callbacks_t conn = {.on_read = df_mode_read};
    pants_stream_callbacks_t ccb = {
        .on_connect = df_cli_connect, .on_read = df_cli_read, .on_close = df_cli_close};
    pants_engine_t *e;
    char path[200];

    memset(&a, 0, sizeof(a));
    pt_unix_addr(path, sizeof(path), "spec-df.sock");
    e = pants_engine_new(&o);
    ck_assert_ptr_nonnull(e);
    wd_start(&a.wd, e, pants_engine_loop(e, 0));
    ck_assert_int_eq(pants_server_listen(pants_server_new(e, &scb, &conn, &a), path, 0), 0);
    for (int m = 0; m < DF_MODES; m++) {
        pants_stream_t *c;

        a.clis[m] = (struct df_cli){.app = &a, .mode = m};
        c = pants_stream_new(pants_engine_next_loop(e), &ccb, &a.clis[m]);
        ck_assert_ptr_nonnull(c);
        ck_assert_int_eq(pants_stream_connect(c, path), 0);
    }
    ck_assert_int_eq(pants_engine_run(e), 0);
    pants_engine_free(e);

    ck_assert_int_eq(a.wd.fired, 0);
    ck_assert_int_eq(a.unknown, 0);
    for (int m = 0; m < DF_MODES; m++) {
        const struct df_side *c = &a.conns[m];

        ck_assert_int_eq(a.clis[m].go, 1);
        ck_assert_int_eq(a.clis[m].closes, 1);
        ck_assert_msg(c->setup_errors == 0, "mode %c: set-up calls failed", df_names[m]);
        ck_assert_msg(c->reads == 0, "mode %c: %d on_read calls without a frame", df_names[m], c->reads);
        ck_assert_msg(c->closes == 1, "mode %c: %d on_close calls", df_names[m], c->closes);
        ck_assert_int_eq(c->after_close, 0);
    }
    ck_assert_int_eq(a.conns[DF_ERROR].errors, 1);
    ck_assert_int_eq(a.conns[DF_ERROR].err, -EPROTO);
    ck_assert_int_eq(a.conns[DF_OVERFLOW].overflows, 1);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

/* ---- The peer half-closes: complete frames, then replies, then close --- */

#define HC_REPLY (1u << 20) /* each reply: far more than a socket buffers */

struct hc_app {
    char frames[64];     /* frames read, '|'-terminated (the conn's loop) */
    int accepts;         /* on_accept calls */
    int write_errors;    /* writes that did not return 0 */
    int closes;          /* the conn's on_close calls */
    int frames_at_close; /* frames read when on_close ran */
    int after_close;     /* callbacks after on_close */
};

static unsigned char hc_big[HC_REPLY];

static void hc_accept(pants_server_t *srv, pants_stream_t *conn)
{
    struct hc_app *a = pants_server_data(srv);

    a->accepts++;
    pants_stream_set_data(conn, a);
    pants_stream_read_until(conn, "\n", 1);
}

/* Each line: its first byte, then a megabyte, queued in on_read. */
static void hc_read(pants_stream_t *s, const void *data, size_t len)
{
    struct hc_app *a = pants_stream_data(s);
    size_t have = strlen(a->frames);

    a->after_close += a->closes;
    if (have + len + 1 < sizeof(a->frames)) {
        memcpy(a->frames + have, data, len);
        a->frames[have + len] = '|';
    }
    a->write_errors += pants_stream_write(s, data, 1) != 0;
    a->write_errors += pants_stream_write(s, hc_big, HC_REPLY) != 0;
}

static void hc_close(pants_stream_t *s)
{
    struct hc_app *a = pants_stream_data(s);

    a->after_close += a->closes;
    a->closes++;
    a->frames_at_close = (int)strlen(a->frames);
}

/* "When the peer closes its side, the frames already complete are delivered
 * first; what the application queued (in those on_read calls too) is still
 * sent, as with pants_stream_end; then on_close.  A partial frame left at
 * that point is dropped."  The peer is a plain TCP socket that sends three
 * lines and a partial one, shuts down its writing side, and only then
 * reads. */
START_TEST(peer_half_close_flushes_replies)
{
    static struct hc_app a;
    static unsigned char got[3 * (HC_REPLY + 1) + 16];
    pants_engine_options_t o = {.threads = 2};
    pants_server_callbacks_t scb = {.on_accept = hc_accept};
    pants_stream_callbacks_t conn = {.on_read = hc_read, .on_close = hc_close};
    pants_engine_t *e;
    size_t len = 0, bad = 0;
    int port = c2_free_port(AF_INET, SOCK_STREAM), fd, eof = 0;
    char addr[64];

    memset(&a, 0, sizeof(a));
    for (size_t i = 0; i < HC_REPLY; i++)
        hc_big[i] = (unsigned char)(i * 5 + i / 1021);
    ck_assert_int_gt(port, 0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    e = pants_engine_new(&o);
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(pants_server_listen(pants_server_new(e, &scb, &conn, &a), addr, 0), 0);
    ck_assert_int_eq(pants_engine_start(e), 0);

    fd = c2_tcp_connect(port);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(send(fd, "a\nb\nc\npart", 10, MSG_NOSIGNAL), 10);
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    for (;;) {
        ssize_t n = c2_recv(fd, got + len, sizeof(got) - len, 10000);

        ck_assert_msg(n >= 0, "the peer's read failed: %s", strerror((int)-n));
        if (n == 0) {
            eof = 1;
            break;
        }
        len += (size_t)n;
        if (len == sizeof(got))
            break;
    }
    close(fd);
    pants_engine_stop(e);
    ck_assert_int_eq(pants_engine_join(e), 0);
    pants_engine_free(e);

    ck_assert_int_eq(eof, 1);
    ck_assert_uint_eq(len, 3 * (HC_REPLY + 1));
    for (int k = 0; k < 3; k++) {
        const unsigned char *r = got + (size_t)k * (HC_REPLY + 1);

        ck_assert_int_eq(r[0], "abc"[k]);
        for (size_t i = 0; i < HC_REPLY; i++)
            bad += r[1 + i] != hc_big[i];
    }
    ck_assert_uint_eq(bad, 0);
    ck_assert_int_eq(a.accepts, 1);
    ck_assert_int_eq(a.write_errors, 0);
    ck_assert_str_eq(a.frames, "a|b|c|"); /* no "part" */
    ck_assert_int_eq(a.closes, 1);
    ck_assert_int_eq(a.frames_at_close, 6);
    ck_assert_int_eq(a.after_close, 0);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

/* ---- pants_stream_post and ref/unref from foreign threads --------------- */

#define SP_POSTERS 2
#define SP_POSTS   300
#define SP_REFS    2000

struct sp_app {
    pants_stream_t *cli; /* referenced by the test thread */
    pants_loop_t *loop;  /* the client's loop */
    int connected;       /* the client's on_connect ran (atomic) */
    int runs;            /* counting posts that ran (atomic) */
    int wrong_loop;      /* posts run off the client's loop (atomic) */
    int wrong_stream;    /* posts run with another stream (atomic) */
    int post_errors;     /* posts made while open that did not return 0 (atomic) */
    int pong;            /* the client read "pong" (atomic) */
    int closed;          /* the client's on_close calls (atomic) */
    int late_runs;       /* posts run after on_close (atomic) */
    int after_close;     /* client callbacks after on_close (atomic) */
};

static void sp_count(pants_stream_t *s, void *arg)
{
    struct sp_app *a = arg;

    if (pants_loop_current() != a->loop)
        bump(&a->wrong_loop);
    if (s != a->cli)
        bump(&a->wrong_stream);
    bump(&a->runs);
}

static void sp_ping(pants_stream_t *s, void *arg)
{
    (void)arg;
    pants_stream_write(s, "ping\n", 5);
}

static void sp_close_it(pants_stream_t *s, void *arg)
{
    (void)arg;
    pants_stream_close(s);
}

static void sp_late(pants_stream_t *s, void *arg)
{
    struct sp_app *a = arg;

    (void)s;
    bump(&a->late_runs);
}

static void *sp_poster(void *arg)
{
    struct sp_app *a = arg;

    for (int i = 0; i < SP_REFS; i++) {
        pants_stream_ref(a->cli);
        if (i < SP_POSTS && pants_stream_post(a->cli, sp_count, a) != 0)
            bump(&a->post_errors);
        pants_stream_unref(a->cli);
    }
    return NULL;
}

static void sp_connect(pants_stream_t *s)
{
    struct sp_app *a = pants_stream_data(s);

    if (c2_load(&a->closed))
        bump(&a->after_close);
    pants_stream_read_until(s, "\n", 1);
    bump(&a->connected);
}

static void sp_read(pants_stream_t *s, const void *data, size_t len)
{
    struct sp_app *a = pants_stream_data(s);

    if (c2_load(&a->closed))
        bump(&a->after_close);
    if (len == 4 && memcmp(data, "pong", 4) == 0)
        bump(&a->pong);
}

static void sp_closed(pants_stream_t *s)
{
    struct sp_app *a = pants_stream_data(s);

    if (c2_load(&a->closed))
        bump(&a->after_close);
    bump(&a->closed);
}

static void sp_srv_read(pants_stream_t *s, const void *data, size_t len)
{
    if (len == 4 && memcmp(data, "ping", 4) == 0)
        pants_stream_write(s, "pong\n", 5);
}

/* "pants_stream_post: any thread: fn runs on s's loop if s is still open";
 * ref/unref "keeps the memory (not the connection) alive", from any
 * thread. */
START_TEST(stream_post_and_ref_from_foreign_threads)
{
    static struct sp_app a;
    pants_engine_options_t o = {.threads = 2};
    pants_server_callbacks_t scb = {.on_accept = ce_echo_accept};
    pants_stream_callbacks_t conn = {.on_read = sp_srv_read};
    pants_stream_callbacks_t ccb = {.on_connect = sp_connect, .on_read = sp_read, .on_close = sp_closed};
    pants_engine_t *e;
    pthread_t th[SP_POSTERS];
    char path[200];

    memset(&a, 0, sizeof(a));
    pt_unix_addr(path, sizeof(path), "spec-sp.sock");
    e = pants_engine_new(&o);
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(pants_server_listen(pants_server_new(e, &scb, &conn, NULL), path, 0), 0);
    a.loop = pants_engine_loop(e, 1);
    a.cli = pants_stream_new(a.loop, &ccb, &a);
    ck_assert_ptr_nonnull(a.cli);
    pants_stream_ref(a.cli); /* the test thread holds it past on_close */
    ck_assert_int_eq(pants_stream_connect(a.cli, path), 0);
    ck_assert_int_eq(pants_engine_start(e), 0);
    ck_assert(pt_wait(&a.connected, 5000));

    for (int i = 0; i < SP_POSTERS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, sp_poster, &a), 0);
    for (int i = 0; i < SP_POSTERS; i++)
        pthread_join(th[i], NULL);
    ck_assert(pt_wait_count(&a.runs, SP_POSTERS * SP_POSTS, 5000));
    ck_assert_int_eq(pants_stream_post(a.cli, sp_ping, NULL), 0);
    ck_assert(pt_wait(&a.pong, 5000));
    ck_assert_int_eq(pants_stream_post(a.cli, sp_close_it, NULL), 0);
    ck_assert(pt_wait(&a.closed, 5000));

    /* Closed now: a post is dropped (whatever it returns), and the
     * reference keeps the pointer valid for it. */
    (void)pants_stream_post(a.cli, sp_late, &a);
    pt_sleep_ms(200);
    pants_stream_unref(a.cli);
    pants_engine_stop(e);
    ck_assert_int_eq(pants_engine_join(e), 0);
    pants_engine_free(e);

    ck_assert_int_eq(a.post_errors, 0);
    ck_assert_int_eq(a.runs, SP_POSTERS * SP_POSTS);
    ck_assert_int_eq(a.wrong_loop, 0);
    ck_assert_int_eq(a.wrong_stream, 0);
    ck_assert_int_eq(a.pong, 1);
    ck_assert_int_eq(a.closed, 1);
    ck_assert_int_eq(a.late_runs, 0);
    ck_assert_int_eq(a.after_close, 0);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

/* ---- pants_server_close from a foreign thread --------------------------- */

#define SC_CLIENTS 3

struct sc_srv {
    int listens;          /* on_listen calls (atomic) */
    int accepts;          /* on_accept calls (atomic) */
    int accepts_early;    /* on_accept before on_listen (atomic) */
    int conn_closes;      /* its connections' on_close calls (atomic) */
    int closes;           /* its on_close calls (atomic) */
    int conn_closes_seen; /* conn_closes when on_close ran (atomic) */
};

struct sc_app {
    struct sc_srv tcp; /* the TCP server, SC_CLIENTS clients */
    struct sc_srv unx; /* the Unix server, one client */
    int connected;     /* client on_connect calls (atomic) */
    int cli_closes;    /* client on_close calls (atomic) */
};

static void sc_listen(pants_server_t *srv)
{
    struct sc_srv *v = pants_server_data(srv);

    bump(&v->listens);
}

static void sc_accept(pants_server_t *srv, pants_stream_t *conn)
{
    struct sc_srv *v = pants_server_data(srv);

    if (c2_load(&v->listens) == 0)
        bump(&v->accepts_early);
    pants_stream_set_data(conn, v);
    bump(&v->accepts);
}

static void sc_conn_close(pants_stream_t *s)
{
    struct sc_srv *v = pants_stream_data(s);

    bump(&v->conn_closes);
}

static void sc_close(pants_server_t *srv)
{
    struct sc_srv *v = pants_server_data(srv);

    __atomic_store_n(&v->conn_closes_seen, c2_load(&v->conn_closes), __ATOMIC_SEQ_CST);
    bump(&v->closes);
}

static void sc_cli_connect(pants_stream_t *s)
{
    struct sc_app *a = pants_stream_data(s);

    bump(&a->connected);
}

static void sc_cli_close(pants_stream_t *s)
{
    struct sc_app *a = pants_stream_data(s);

    bump(&a->cli_closes);
}

/* pants_server_close (any thread): "stop listening and close its
 * connections"; its on_close then runs once (pants.h: after they closed),
 * and a Unix server's file is removed (pants.h). */
START_TEST(server_close_from_foreign_thread)
{
    static struct sc_app a;
    pants_engine_options_t o = {.threads = 2};
    pants_server_callbacks_t scb = {.on_listen = sc_listen, .on_accept = sc_accept, .on_close = sc_close};
    pants_stream_callbacks_t conn = {.on_close = sc_conn_close};
    pants_stream_callbacks_t ccb = {.on_connect = sc_cli_connect, .on_close = sc_cli_close};
    pants_server_t *tcp, *unx;
    pants_engine_t *e;
    int port = c2_free_port(AF_INET, SOCK_STREAM), fd;
    char addr[64], path[200];

    memset(&a, 0, sizeof(a));
    ck_assert_int_gt(port, 0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    pt_unix_addr(path, sizeof(path), "spec-sc.sock");
    e = pants_engine_new(&o);
    ck_assert_ptr_nonnull(e);
    tcp = pants_server_new(e, &scb, &conn, &a.tcp);
    unx = pants_server_new(e, &scb, &conn, &a.unx);
    ck_assert_ptr_nonnull(tcp);
    ck_assert_ptr_nonnull(unx);
    ck_assert_int_eq(pants_server_listen(tcp, addr, 0), 0);
    ck_assert_int_eq(pants_server_listen(unx, path, 5), 0);
    for (int i = 0; i <= SC_CLIENTS; i++)
        ck_assert_int_eq(pants_stream_connect(pants_stream_new(pants_engine_next_loop(e), &ccb, &a),
                                              i < SC_CLIENTS ? addr : path),
                         0);
    ck_assert_int_eq(pants_engine_start(e), 0);
    ck_assert(pt_wait_count(&a.connected, SC_CLIENTS + 1, 5000));
    ck_assert(pt_wait_count(&a.tcp.accepts, SC_CLIENTS, 5000));
    ck_assert(pt_wait(&a.unx.accepts, 5000));

    pants_server_close(tcp);
    ck_assert(pt_wait(&a.tcp.closes, 5000));
    fd = c2_tcp_connect(port);
    ck_assert_msg(fd == -ECONNREFUSED, "connect after close gave %d", fd);
    ck_assert(pt_wait_count(&a.cli_closes, SC_CLIENTS, 5000));
    ck_assert_uint_eq(pants_server_connections(tcp), 0);
    ck_assert_int_eq(c2_load(&a.unx.conn_closes), 0); /* the other server is untouched */

    pants_server_close(unx);
    ck_assert(pt_wait(&a.unx.closes, 5000));
    ck_assert(pt_wait_count(&a.cli_closes, SC_CLIENTS + 1, 5000));
    ck_assert(!c2_file_exists(path));
    fd = c2_unix(path, SOCK_STREAM, false);
    ck_assert_msg(fd < 0, "a Unix connect after close worked");

    pt_sleep_ms(50); /* a second on_close would show now */
    pants_engine_stop(e);
    ck_assert_int_eq(pants_engine_join(e), 0);
    pants_engine_free(e);

    ck_assert_int_eq(a.tcp.listens, 1);
    ck_assert_int_eq(a.unx.listens, 1);
    ck_assert_int_eq(a.tcp.accepts_early + a.unx.accepts_early, 0);
    ck_assert_int_eq(a.tcp.accepts, SC_CLIENTS);
    ck_assert_int_eq(a.unx.accepts, 1);
    ck_assert_int_eq(a.tcp.conn_closes, SC_CLIENTS);
    ck_assert_int_eq(a.unx.conn_closes, 1);
    ck_assert_int_eq(a.tcp.closes, 1);
    ck_assert_int_eq(a.unx.closes, 1);
    ck_assert_int_eq(a.tcp.conn_closes_seen, SC_CLIENTS);
    ck_assert_int_eq(a.unx.conn_closes_seen, 1);
    ck_assert_int_eq(a.cli_closes, SC_CLIENTS + 1);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

/* ---- Listening: address in use, a stale Unix file, on_listen ------------ */

enum { LC_TCP, LC_TCP2, LC_UNIX, LC_UNIX2, LC_STALE, LC_SERVERS };

struct lc_srv {
    int listens; /* on_listen calls (atomic) */
    int accepts; /* on_accept calls (atomic) */
    int clients; /* bit i: client i's byte arrived here (atomic) */
};

struct lc_app {
    struct watchdog wd;              /* bounds the run; wd.e stops it */
    pants_server_t *srv[LC_SERVERS]; /* the servers */
    struct lc_srv v[LC_SERVERS];     /* what each saw */
    int rc[LC_SERVERS];              /* their listen results */
    int done;                        /* client bytes arrived + clients refused (atomic) */
    int cli_errors;                  /* client on_connect_error calls (atomic) */
};

static struct lc_app lc_app;
static char lc_ids[3] = {'0', '1', '2'}; /* the clients' data: the byte they send */

static void lc_listen(pants_server_t *srv)
{
    struct lc_srv *v = pants_server_data(srv);

    bump(&v->listens);
}

static void lc_accept(pants_server_t *srv, pants_stream_t *conn)
{
    struct lc_srv *v = pants_server_data(srv);

    bump(&v->accepts);
    pants_stream_set_data(conn, v);
}

static void lc_done(void)
{
    struct lc_app *a = &lc_app;

    if (__atomic_add_fetch(&a->done, 1, __ATOMIC_SEQ_CST) != 3)
        return;
    pants_server_close(a->srv[LC_TCP]);
    pants_server_close(a->srv[LC_UNIX]);
    pants_server_close(a->srv[LC_STALE]);
    pants_engine_stop(a->wd.e);
}

static void lc_conn_read(pants_stream_t *s, const void *data, size_t len)
{
    struct lc_srv *v = pants_stream_data(s);

    for (size_t i = 0; i < len; i++) {
        int id = ((const char *)data)[i] - '0';

        if (id >= 0 && id < 3) {
            __atomic_or_fetch(&v->clients, 1 << id, __ATOMIC_SEQ_CST);
            lc_done();
        }
    }
}

static void lc_cli_connect(pants_stream_t *s)
{
    pants_stream_write(s, pants_stream_data(s), 1);
}

static void lc_cli_error(pants_stream_t *s, int err)
{
    (void)err;
    bump(&lc_app.cli_errors);
    pants_stream_close(s);
    lc_done();
}

/* pants_server_listen: -EADDRINUSE for a port or a live Unix socket in use
 * (pants.h: "a stale one is replaced"); on_listen runs after a successful
 * listen only.  A server whose listen failed is closed before the run: that
 * must not take the live server's Unix file with it.  Each client sends its
 * number, so each server's share is known. */
START_TEST(listen_in_use_and_stale_unix_file)
{
    struct lc_app *a = &lc_app;
    pants_engine_options_t o = {.threads = 2};
    pants_server_callbacks_t scb = {.on_listen = lc_listen, .on_accept = lc_accept};
    pants_stream_callbacks_t conn = {.on_read = lc_conn_read};
    pants_stream_callbacks_t ccb = {.on_connect = lc_cli_connect, .on_connect_error = lc_cli_error};
    pants_engine_t *e;
    int port = c2_free_port(AF_INET, SOCK_STREAM), fd;
    char addr[64], live[200], stale[200];
    const char *where[LC_SERVERS] = {addr, addr, live, live, stale};

    memset(a, 0, sizeof(*a));
    ck_assert_int_gt(port, 0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    pt_unix_addr(live, sizeof(live), "spec-lc-live.sock");
    pt_unix_addr(stale, sizeof(stale), "spec-lc-stale.sock");
    fd = c2_unix(stale, SOCK_STREAM, true); /* bound, then closed without unlink */
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert(c2_file_exists(stale));

    e = pants_engine_new(&o);
    ck_assert_ptr_nonnull(e);
    wd_start(&a->wd, e, pants_engine_loop(e, 0));
    for (int i = 0; i < LC_SERVERS; i++) {
        a->srv[i] = pants_server_new(e, &scb, &conn, &a->v[i]);
        ck_assert_ptr_nonnull(a->srv[i]);
        a->rc[i] = pants_server_listen(a->srv[i], where[i], i == LC_STALE ? 3 : 0);
    }
    pants_server_close(a->srv[LC_TCP2]);
    pants_server_close(a->srv[LC_UNIX2]);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(pants_stream_connect(pants_stream_new(pants_engine_next_loop(e), &ccb, &lc_ids[i]),
                                              i == 0   ? addr
                                              : i == 1 ? live
                                                       : stale),
                         0);
    ck_assert_int_eq(pants_engine_run(e), 0);
    pants_engine_free(e);

    ck_assert_int_eq(a->wd.fired, 0);
    ck_assert_int_eq(a->rc[LC_TCP], 0);
    ck_assert_int_eq(a->rc[LC_TCP2], -EADDRINUSE);
    ck_assert_int_eq(a->rc[LC_UNIX], 0);
    ck_assert_int_eq(a->rc[LC_UNIX2], -EADDRINUSE);
    ck_assert_int_eq(a->rc[LC_STALE], 0);
    ck_assert_int_eq(a->cli_errors, 0);
    ck_assert_int_eq(a->v[LC_TCP].clients, 1 << 0);
    ck_assert_int_eq(a->v[LC_UNIX].clients, 1 << 1);
    ck_assert_int_eq(a->v[LC_STALE].clients, 1 << 2);
    for (int i = 0; i < LC_SERVERS; i++) {
        bool ok = i == LC_TCP || i == LC_UNIX || i == LC_STALE;

        ck_assert_msg(a->v[i].listens == (ok ? 1 : 0), "server %d: %d on_listen calls", i, a->v[i].listens);
        /* The live Unix server may also see the connection with which the
         * failed listen found the path in use: >= 1 there. */
        ck_assert_msg(ok ? a->v[i].accepts >= 1 && (i == LC_UNIX || a->v[i].accepts == 1)
                         : a->v[i].accepts == 0,
                      "server %d: %d on_accept calls", i, a->v[i].accepts);
    }
    ck_assert(!c2_file_exists(live)); /* removed when the servers closed (pants.h) */
    ck_assert(!c2_file_exists(stale));
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

/* ---- UDP: one on_read per packet, with the sender; replies reach it ----- */

#define DU_PACKETS 3

struct du_app {
    pants_loop_t *loop;         /* the datagram's loop */
    pants_datagram_t *d;        /* the listening one */
    pants_datagram_t *bad;      /* only given malformed addresses */
    int listens;                /* d's on_listen calls (atomic) */
    int reads;                  /* d's on_read calls (atomic) */
    char got[DU_PACKETS][1100]; /* what they carried (d's loop) */
    size_t got_len[DU_PACKETS]; /* their lengths */
    char from[DU_PACKETS][64];  /* their senders, formatted */
    int reply_errors;           /* write_to results other than 0 */
    int errors;                 /* d's on_error calls (atomic) */
    int closes;                 /* d's on_close calls (atomic) */
    int after_close;            /* d's callbacks after on_close (atomic) */
    int bad_cbs;                /* bad's on_listen/on_read/on_write/on_error calls (atomic) */
    int bad_closes;             /* bad's on_close calls (atomic) */
};

static void du_read(pants_datagram_t *d, const void *data, size_t len, const pants_addr_t *from)
{
    struct du_app *a = pants_datagram_data(d);
    int n = c2_load(&a->reads);
    char out[1200];

    if (c2_load(&a->closes))
        bump(&a->after_close);
    if (n < DU_PACKETS && len <= sizeof(a->got[n])) {
        memcpy(a->got[n], data, len);
        a->got_len[n] = len;
        pants_addr_format(from, a->from[n], sizeof(a->from[n]));
    }
    memcpy(out, "re:", 3);
    memcpy(out + 3, data, len < sizeof(out) - 3 ? len : sizeof(out) - 3);
    a->reply_errors += pants_datagram_write_to(d, out, len + 3, from) != 0;
    bump(&a->reads);
}

static void du_listen(pants_datagram_t *d)
{
    struct du_app *a = pants_datagram_data(d);

    bump(&a->listens);
}

static void du_error(pants_datagram_t *d, int err)
{
    struct du_app *a = pants_datagram_data(d);

    (void)err;
    bump(&a->errors);
}

static void du_close(pants_datagram_t *d)
{
    struct du_app *a = pants_datagram_data(d);

    if (c2_load(&a->closes))
        bump(&a->after_close);
    bump(&a->closes);
}

static void du_bad_listen(pants_datagram_t *d)
{
    bump(&((struct du_app *)pants_datagram_data(d))->bad_cbs);
}

static void du_bad_read(pants_datagram_t *d, const void *data, size_t len, const pants_addr_t *from)
{
    (void)data;
    (void)len;
    (void)from;
    du_bad_listen(d);
}

static void du_bad_error(pants_datagram_t *d, int err)
{
    (void)err;
    du_bad_listen(d);
}

static void du_bad_close(pants_datagram_t *d)
{
    bump(&((struct du_app *)pants_datagram_data(d))->bad_closes);
}

/* On the loops: close them (the loop thread's call). */
static void du_close_d(void *arg)
{
    struct du_app *a = arg;

    pants_datagram_close(a->d);
}

static void du_close_bad(void *arg)
{
    struct du_app *a = arg;

    pants_datagram_close(a->bad);
}

/* "One on_read per packet: packet boundaries are kept"; from goes to
 * pants_datagram_write_to to reply.  The sender is a plain UDP socket that
 * sends its packets back to back. */
START_TEST(datagram_udp_packets_and_replies)
{
    static struct du_app a;
    static char big[1000];
    pants_engine_options_t o = {.threads = 2};
    pants_datagram_callbacks_t cb = {
        .on_listen = du_listen, .on_read = du_read, .on_error = du_error, .on_close = du_close};
    pants_datagram_callbacks_t bcb = {.on_listen = du_bad_listen,
                                      .on_read = du_bad_read,
                                      .on_write = du_bad_listen,
                                      .on_error = du_bad_error,
                                      .on_close = du_bad_close};
    const char *pkt[DU_PACKETS] = {"first", "the second packet", big};
    size_t pkt_len[DU_PACKETS] = {5, 17, sizeof(big)};
    int seen[DU_PACKETS] = {0};
    struct sockaddr_storage ss;
    socklen_t sl;
    pants_engine_t *e;
    int port = c2_free_port(AF_INET, SOCK_DGRAM), u;
    char addr[64], me[64];

    memset(&a, 0, sizeof(a));
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)('A' + i % 26);
    ck_assert_int_gt(port, 0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    e = pants_engine_new(&o);
    ck_assert_ptr_nonnull(e);
    a.loop = pants_engine_loop(e, 0);
    a.d = pants_datagram_new(a.loop, &cb, &a);
    ck_assert_ptr_nonnull(a.d);
    ck_assert_int_eq(pants_datagram_listen(a.d, addr), 0);
    /* Malformed addresses: -EINVAL from the call, no callback after. */
    a.bad = pants_datagram_new(pants_engine_loop(e, 1), &bcb, &a);
    ck_assert_ptr_nonnull(a.bad);
    ck_assert_int_eq(pants_datagram_listen(a.bad, "127.0.0.1"), -EINVAL);
    ck_assert_int_eq(pants_datagram_listen(a.bad, "[::1:80"), -EINVAL);
    ck_assert_int_eq(pants_datagram_write(a.bad, "x", 1, "127.0.0.1:"), -EINVAL);
    ck_assert_int_eq(pants_datagram_write(a.bad, "x", 1, "127.0.0.1:99999"), -EINVAL);
    ck_assert_int_eq(pants_engine_start(e), 0);
    ck_assert(pt_wait(&a.listens, 5000));

    u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(u, 0);
    c2_loopback(&ss, &sl, AF_INET, 0);
    ck_assert_int_eq(bind(u, (struct sockaddr *)&ss, sl), 0);
    ck_assert_int_eq(getsockname(u, (struct sockaddr *)&ss, &sl), 0);
    snprintf(me, sizeof(me), "127.0.0.1:%d", c2_port_of(&ss));
    c2_loopback(&ss, &sl, AF_INET, port);
    for (int i = 0; i < DU_PACKETS; i++)
        ck_assert_int_eq(sendto(u, pkt[i], pkt_len[i], 0, (struct sockaddr *)&ss, sl), (ssize_t)pkt_len[i]);
    /* The replies, one packet each, in any order. */
    for (int i = 0; i < DU_PACKETS; i++) {
        char r[1200];
        ssize_t n = c2_recv(u, r, sizeof(r), 5000);
        int k;

        ck_assert_msg(n > 3, "reply %d: %d", i, (int)n);
        for (k = 0; k < DU_PACKETS; k++)
            if ((size_t)n == pkt_len[k] + 3 && memcmp(r, "re:", 3) == 0 &&
                memcmp(r + 3, pkt[k], pkt_len[k]) == 0)
                break;
        ck_assert_msg(k < DU_PACKETS, "reply %d (%d bytes) is none of the packets", i, (int)n);
        seen[k]++;
    }
    close(u);
    ck_assert_int_eq(pants_loop_post(a.loop, du_close_d, &a), 0);
    ck_assert_int_eq(pants_loop_post(pants_engine_loop(e, 1), du_close_bad, &a), 0);
    ck_assert(pt_wait(&a.closes, 5000));
    ck_assert(pt_wait(&a.bad_closes, 5000));
    pt_sleep_ms(50);
    pants_engine_stop(e);
    ck_assert_int_eq(pants_engine_join(e), 0);
    pants_engine_free(e);

    ck_assert_int_eq(a.listens, 1);
    ck_assert_int_eq(a.reads, DU_PACKETS);
    for (int k = 0; k < DU_PACKETS; k++) {
        int found = 0;

        ck_assert_int_eq(seen[k], 1);
        for (int i = 0; i < DU_PACKETS; i++)
            found += a.got_len[i] == pkt_len[k] && memcmp(a.got[i], pkt[k], pkt_len[k]) == 0;
        ck_assert_msg(found == 1, "packet %d arrived %d times as sent", k, found);
        ck_assert_str_eq(a.from[k], me);
    }
    ck_assert_int_eq(a.reply_errors, 0);
    ck_assert_int_eq(a.errors, 0);
    ck_assert_int_eq(a.closes, 1);
    ck_assert_int_eq(a.after_close, 0);
    ck_assert_int_eq(a.bad_cbs, 0);
    ck_assert_int_eq(a.bad_closes, 1);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

/* ---- Unix datagrams: replies to a bound client; end() sends the queue --- */

#define DX_FIRST 3 /* packets answered */
#define DX_ALL   5 /* with the two sent right before end() */

struct dx_app;

struct dx_side {
    struct dx_app *app; /* back pointer */
    int who;            /* 0 the server, 1 the client */
};

struct dx_app {
    struct watchdog wd;         /* bounds the run; wd.e stops it */
    struct dx_side sides[2];    /* the datagrams' data */
    char cli_addr[200];         /* the client's own path */
    char srv_addr[200];         /* the server's */
    char got[DX_ALL + 1][16];   /* packets the server read (its loop) */
    int ngot;                   /* their count */
    int wrong_from;             /* packets not from cli_addr */
    char replies[DX_FIRST][16]; /* what the client read (its loop) */
    int nreplies;               /* their count */
    int rc_errors;              /* calls that should have returned 0 and did not (atomic) */
    int listens[2];             /* on_listen calls: server, client */
    int closes[2];              /* on_close calls: server, client */
    int after_close[2];         /* callbacks after on_close */
    int errors[2];              /* on_error calls */
    int closed;                 /* both (atomic) */
};

static struct dx_app *dx_of(pants_datagram_t *d, int *who)
{
    struct dx_side *side = pants_datagram_data(d);

    *who = side->who;
    return side->app;
}

static void dx_rc(struct dx_app *a, int rc)
{
    if (rc != 0)
        bump(&a->rc_errors);
}

static void dx_listen(pants_datagram_t *d)
{
    int w;
    struct dx_app *a = dx_of(d, &w);

    a->after_close[w] += a->closes[w];
    a->listens[w]++;
}

static void dx_error(pants_datagram_t *d, int err)
{
    int w;
    struct dx_app *a = dx_of(d, &w);

    (void)err;
    a->errors[w]++;
}

static void dx_close(pants_datagram_t *d)
{
    int w;
    struct dx_app *a = dx_of(d, &w);

    a->after_close[w] += a->closes[w];
    a->closes[w]++;
    if (__atomic_add_fetch(&a->closed, 1, __ATOMIC_SEQ_CST) == 2)
        pants_engine_stop(a->wd.e);
}

static void dx_srv_read(pants_datagram_t *d, const void *data, size_t len, const pants_addr_t *from)
{
    int w;
    struct dx_app *a = dx_of(d, &w);
    char who[200], out[32];

    a->after_close[0] += a->closes[0];
    if (pants_addr_format(from, who, sizeof(who)) != 0 || strcmp(who, a->cli_addr) != 0)
        a->wrong_from++;
    if (a->ngot <= DX_ALL && len < sizeof(a->got[0]))
        memcpy(a->got[a->ngot], data, len);
    if (++a->ngot == DX_ALL) {
        pants_datagram_close(d);
        return;
    }
    if (len >= sizeof(out) - 3 || (len >= 4 && memcmp(data, "last", 4) == 0))
        return;
    memcpy(out, "re:", 3);
    memcpy(out + 3, data, len);
    dx_rc(a, pants_datagram_write_to(d, out, len + 3, from));
}

static void dx_cli_read(pants_datagram_t *d, const void *data, size_t len, const pants_addr_t *from)
{
    int w;
    struct dx_app *a = dx_of(d, &w);

    (void)from;
    a->after_close[1] += a->closes[1];
    if (a->nreplies < DX_FIRST && len < sizeof(a->replies[0]))
        memcpy(a->replies[a->nreplies], data, len);
    if (++a->nreplies != DX_FIRST)
        return;
    dx_rc(a, pants_datagram_write(d, "last-a", 6, a->srv_addr));
    dx_rc(a, pants_datagram_write(d, "last-b", 6, a->srv_addr));
    dx_rc(a, pants_datagram_end(d)); /* both still go out, then on_close */
}

static int dx_has(char (*list)[16], int n, const char *s)
{
    int hits = 0;

    for (int i = 0; i < n; i++)
        hits += strcmp(list[i], s) == 0;
    return hits;
}

/* A Unix datagram client bound to its own path (pants_datagram_listen) gets
 * the server's write_to(from) replies; pants_datagram_end sends what is
 * queued, then on_close, once and last. */
START_TEST(datagram_unix_replies_and_end)
{
    static struct dx_app a;
    static const char *sent[DX_ALL] = {"one", "two", "three", "last-a", "last-b"};
    pants_engine_options_t o = {.threads = 2};
    pants_datagram_callbacks_t scb = {
        .on_listen = dx_listen, .on_read = dx_srv_read, .on_error = dx_error, .on_close = dx_close};
    pants_datagram_callbacks_t ccb = {
        .on_listen = dx_listen, .on_read = dx_cli_read, .on_error = dx_error, .on_close = dx_close};
    pants_datagram_t *srv, *cli;
    pants_engine_t *e;

    memset(&a, 0, sizeof(a));
    pt_unix_addr(a.srv_addr, sizeof(a.srv_addr), "spec-dx-srv.sock");
    pt_unix_addr(a.cli_addr, sizeof(a.cli_addr), "spec-dx-cli.sock");
    e = pants_engine_new(&o);
    ck_assert_ptr_nonnull(e);
    wd_start(&a.wd, e, pants_engine_loop(e, 0));
    a.sides[0] = (struct dx_side){&a, 0};
    a.sides[1] = (struct dx_side){&a, 1};
    srv = pants_datagram_new(pants_engine_loop(e, 0), &scb, &a.sides[0]);
    cli = pants_datagram_new(pants_engine_loop(e, 1), &ccb, &a.sides[1]);
    ck_assert_ptr_nonnull(srv);
    ck_assert_ptr_nonnull(cli);
    ck_assert_int_eq(pants_datagram_listen(srv, a.srv_addr), 0);
    ck_assert_int_eq(pants_datagram_listen(cli, a.cli_addr), 0);
    for (int i = 0; i < DX_FIRST; i++)
        ck_assert_int_eq(pants_datagram_write(cli, sent[i], strlen(sent[i]), a.srv_addr), 0);
    ck_assert_int_eq(pants_engine_run(e), 0);
    pants_engine_free(e);

    ck_assert_int_eq(a.wd.fired, 0);
    ck_assert_int_eq(a.rc_errors, 0);
    ck_assert_int_eq(a.ngot, DX_ALL);
    for (int i = 0; i < DX_ALL; i++)
        ck_assert_msg(dx_has(a.got, DX_ALL, sent[i]) == 1, "the server got \"%s\" %d times", sent[i],
                      dx_has(a.got, DX_ALL, sent[i]));
    ck_assert_int_eq(a.wrong_from, 0);
    ck_assert_int_eq(a.nreplies, DX_FIRST);
    ck_assert_int_eq(dx_has(a.replies, DX_FIRST, "re:one"), 1);
    ck_assert_int_eq(dx_has(a.replies, DX_FIRST, "re:two"), 1);
    ck_assert_int_eq(dx_has(a.replies, DX_FIRST, "re:three"), 1);
    for (int w = 0; w < 2; w++) {
        ck_assert_int_eq(a.listens[w], 1);
        ck_assert_int_eq(a.closes[w], 1);
        ck_assert_int_eq(a.after_close[w], 0);
        ck_assert_int_eq(a.errors[w], 0);
    }
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

/* ---- IPv6: a stream echo over [::1] ------------------------------------- */

struct v6_app {
    pants_engine_t *e;   /* to stop */
    char addr[64];       /* "[::1]:port" */
    int cli_family;      /* pants_stream_family in the client's on_connect */
    char cli_remote[64]; /* its remote address, formatted */
    int conn_family;     /* the same on the server's side, in on_read */
    char conn_local[64]; /* the server side's local address, formatted */
    char reply[32];      /* what the client read */
    int closes;          /* the client's on_close calls */
};

static void v6_cli_connect(pants_stream_t *s)
{
    struct v6_app *a = pants_stream_data(s);
    pants_addr_t r;

    a->cli_family = pants_stream_family(s);
    if (pants_stream_remote_address(s, &r) == 0)
        pants_addr_format(&r, a->cli_remote, sizeof(a->cli_remote));
    pants_stream_read_until(s, "\n", 1);
    pants_stream_write(s, "hello over six\n", 15);
}

static void v6_cli_read(pants_stream_t *s, const void *data, size_t len)
{
    struct v6_app *a = pants_stream_data(s);

    memcpy(a->reply, data, len < sizeof(a->reply) - 1 ? len : sizeof(a->reply) - 1);
}

static void v6_cli_close(pants_stream_t *s)
{
    struct v6_app *a = pants_stream_data(s);

    a->closes++;
    pants_engine_stop(a->e);
}

static void v6_accept(pants_server_t *srv, pants_stream_t *conn)
{
    pants_stream_set_data(conn, pants_server_data(srv));
    pants_stream_read_until(conn, "\n", 1);
}

static void v6_conn_read(pants_stream_t *s, const void *data, size_t len)
{
    struct v6_app *a = pants_stream_data(s);
    pants_addr_t l;

    a->conn_family = pants_stream_family(s);
    if (pants_stream_local_address(s, &l) == 0)
        pants_addr_format(&l, a->conn_local, sizeof(a->conn_local));
    pants_stream_write(s, data, len);
    pants_stream_write(s, "\n", 1);
    pants_stream_end(s);
}

START_TEST(ipv6_stream_echo)
{
    struct v6_app a = {0};
    pants_engine_options_t o = {.threads = 2};
    pants_server_callbacks_t scb = {.on_accept = v6_accept};
    pants_stream_callbacks_t conn = {.on_read = v6_conn_read};
    pants_stream_callbacks_t ccb = {
        .on_connect = v6_cli_connect, .on_read = v6_cli_read, .on_close = v6_cli_close};
    struct watchdog wd;
    int port = c2_free_port(AF_INET6, SOCK_STREAM);

    if (port == 0) {
        fprintf(stderr, "ipv6_stream_echo: skipped, ::1 cannot be bound here\n");
        return;
    }
    snprintf(a.addr, sizeof(a.addr), "[::1]:%d", port);
    a.e = pants_engine_new(&o);
    ck_assert_ptr_nonnull(a.e);
    wd_start(&wd, a.e, pants_engine_loop(a.e, 0));
    ck_assert_int_eq(pants_server_listen(pants_server_new(a.e, &scb, &conn, &a), a.addr, 0), 0);
    ck_assert_int_eq(pants_stream_connect(pants_stream_new(pants_engine_loop(a.e, 1), &ccb, &a), a.addr), 0);
    ck_assert_int_eq(pants_engine_run(a.e), 0);
    pants_engine_free(a.e);

    ck_assert_int_eq(wd.fired, 0);
    ck_assert_int_eq(a.cli_family, AF_INET6);
    ck_assert_int_eq(a.conn_family, AF_INET6);
    ck_assert_str_eq(a.cli_remote, a.addr);
    ck_assert_str_eq(a.conn_local, a.addr);
    ck_assert_str_eq(a.reply, "hello over six");
    ck_assert_int_eq(a.closes, 1);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

/* ---- contract3: shared pieces ------------------------------------------ *
 *
 * Servers set up on the test's thread before pants_engine_start; the peers
 * are plain sockets on the test's thread; the test thread stops the engine
 * and asserts after pants_engine_join.  Each server's data says how its
 * one connection is cut (the mode letter), and every frame is recorded as
 * "bytes|" (or "#len|" when longer than 32 bytes, all one byte).
 */

#define C3_MAX_SRV 4

struct c3_srv {
    char mode;           /* how on_accept sets the connection up */
    char addr[64];       /* "127.0.0.1:port" */
    pants_server_t *srv; /* the server */
    int listening;       /* on_listen ran (atomic) */
    char frames[512];    /* the frames, '|'-terminated */
    size_t len;          /* bytes in frames */
    int nframes;         /* on_read calls (atomic) */
    int setup_bad;       /* a delimiter call in on_accept failed */
    int skip_bad;        /* the framer found *skip not preset 0 */
    int content_bad;     /* a long frame not all one byte */
    int overflows;       /* on_overflow calls */
    int errors;          /* on_error calls */
    int closes;          /* on_close calls (atomic) */
    int after_close;     /* callbacks after on_close */
};

/* "<digit n><n bytes>." : the frame is the digit and its bytes, the '.'
 * is skipped. */
static ssize_t c3_framer(const void *buf, size_t len, size_t *skip, void *arg)
{
    struct c3_srv *c = arg;
    const char *p = buf;
    size_t n;

    if (*skip != 0)
        c->skip_bad++;
    if (len < 1)
        return 0;
    if (p[0] < '1' || p[0] > '9')
        return -EPROTO;
    n = (size_t)(p[0] - '0');
    if (len < 1 + n + 1)
        return 0;
    *skip = 1;
    return (ssize_t)(1 + n);
}

static void c3_accept(pants_server_t *srv, pants_stream_t *conn)
{
    struct c3_srv *c = pants_server_data(srv);
    int rc = 0;

    pants_stream_set_data(conn, c);
    switch (c->mode) {
    case 'U': rc = pants_stream_read_until(conn, "\r\n", 2); break;
    case 'E': rc = pants_stream_read_exact(conn, 3); break;
    case 'R': rc = pants_stream_read_regex(conn, "[,;]"); break;
    case 'F': rc = pants_stream_read_framed(conn, c3_framer, c); break;
    case 'A': rc = pants_stream_read_regex(conn, "a+"); break;
    case 'L':
        rc = pants_stream_read_exact(conn, 64);
        (void)pants_stream_set_read_limit(conn, 16); /* refused or raised: 64 still fits */
        break;
    case 'D':
    case 'O': rc = pants_stream_read_until(conn, "\n", 1); break;
    default: rc = -1;
    }
    c->setup_bad += rc != 0;
}

static void c3_listen(pants_server_t *srv)
{
    struct c3_srv *c = pants_server_data(srv);

    __atomic_store_n(&c->listening, 1, __ATOMIC_SEQ_CST);
}

static void c3_read(pants_stream_t *s, const void *data, size_t len)
{
    struct c3_srv *c = pants_stream_data(s);
    const char *p = data;
    char note[32];

    c->after_close += c->closes;
    if (len > 32) {
        for (size_t i = 1; i < len; i++)
            if (p[i] != p[0])
                c->content_bad++;
        snprintf(note, sizeof(note), "#%zu", len);
        p = note;
        len = strlen(note);
    }
    if (c->len + len + 1 < sizeof(c->frames)) {
        memcpy(c->frames + c->len, p, len);
        c->len += len;
        c->frames[c->len++] = '|';
    }
    bump(&c->nframes);
}

static void c3_overflow(pants_stream_t *s)
{
    struct c3_srv *c = pants_stream_data(s);

    c->after_close += c->closes;
    c->overflows++;
    pants_stream_close(s);
}

static void c3_error(pants_stream_t *s, int err)
{
    struct c3_srv *c = pants_stream_data(s);

    (void)err;
    c->after_close += c->closes;
    c->errors++;
}

static void c3_close(pants_stream_t *s)
{
    struct c3_srv *c = pants_stream_data(s);

    c->after_close += c->closes;
    bump(&c->closes);
}

/* An engine of two loops with one server per mode listening (set up before
 * it runs), started in the background; waits for every on_listen. */
static pants_engine_t *c3_start(struct c3_srv *srv, const char *modes)
{
    static const pants_server_callbacks_t scb = {.on_listen = c3_listen, .on_accept = c3_accept};
    static const pants_stream_callbacks_t conn = {.on_read = c3_read,
                                                  .on_close = c3_close,
                                                  .on_overflow = c3_overflow,
                                                  .on_error = c3_error};
    pants_engine_options_t o = {.threads = 2};
    pants_engine_t *e = pants_engine_new(&o);
    size_t n = strlen(modes);

    ck_assert_ptr_nonnull(e);
    ck_assert_uint_le(n, C3_MAX_SRV);
    for (size_t i = 0; i < n; i++) {
        struct c3_srv *c = &srv[i];
        int port = c2_free_port(AF_INET, SOCK_STREAM);

        memset(c, 0, sizeof(*c));
        ck_assert_int_ne(port, 0);
        c->mode = modes[i];
        snprintf(c->addr, sizeof(c->addr), "127.0.0.1:%d", port);
        c->srv = pants_server_new(e, &scb, &conn, c);
        ck_assert_ptr_nonnull(c->srv);
        ck_assert_int_eq(pants_server_listen(c->srv, c->addr, 0), 0);
    }
    ck_assert_int_eq(pants_engine_start(e), 0);
    for (size_t i = 0; i < n; i++)
        ck_assert(pt_wait(&srv[i].listening, 5000));
    return e;
}

/* Stop, join (which must return 0) and free. */
static void c3_finish(pants_engine_t *e)
{
    pants_engine_stop(e);
    ck_assert_int_eq(pants_engine_join(e), 0);
    pants_engine_free(e);
}

/* A plain TCP client of a "127.0.0.1:port" address, TCP_NODELAY, sends
 * time out after 5 s. */
static int c3_client(const char *addr)
{
    struct timeval tv = {5, 0};
    int one = 1, fd = c2_tcp_connect(atoi(strchr(addr, ':') + 1));

    ck_assert_int_ge(fd, 0);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return fd;
}

/* ---- Delimiters fed one byte per write --------------------------------- */

/* Until (multi-byte, with a false start), exact, regex and framed, each
 * peer writing one byte at a time: the frames are those of the whole
 * input, the delimiters are not passed on, and the partial frame left at
 * EOF is dropped.  The framer always finds *skip preset 0. */
START_TEST(delimiters_one_byte_per_write)
{
    static struct c3_srv srv[4];
    static const char *const in[4] = {
        "ab\r\ncd\r\r\n\ne\r\nzz\r", "abcdefgh", "ab,cd;ef,g", "3abc.2de.1f.4gh"};
    static const char *const want[4] = {"ab|cd\r|\ne|", "abc|def|", "ab|cd|ef|", "3abc|2de|1f|"};
    pants_engine_t *e = c3_start(srv, "UERF");
    int fd[4];
    size_t longest = 0;

    for (int i = 0; i < 4; i++) {
        fd[i] = c3_client(srv[i].addr);
        if (strlen(in[i]) > longest)
            longest = strlen(in[i]);
    }
    for (size_t k = 0; k < longest; k++) {
        for (int i = 0; i < 4; i++)
            if (k < strlen(in[i]))
                ck_assert_int_eq(send(fd[i], in[i] + k, 1, MSG_NOSIGNAL), 1);
        pt_sleep_ms(2);
    }
    for (int i = 0; i < 4; i++)
        close(fd[i]);
    for (int i = 0; i < 4; i++)
        ck_assert(pt_wait_count(&srv[i].closes, 1, 5000));
    c3_finish(e);

    for (int i = 0; i < 4; i++) {
        srv[i].frames[srv[i].len] = '\0';
        ck_assert_msg(strcmp(srv[i].frames, want[i]) == 0, "mode %c: got \"%s\", want \"%s\"",
                      srv[i].mode, srv[i].frames, want[i]);
        ck_assert_int_eq(srv[i].setup_bad, 0);
        ck_assert_int_eq(srv[i].errors, 0);
        ck_assert_int_eq(srv[i].overflows, 0);
        ck_assert_int_eq(srv[i].closes, 1);
        ck_assert_int_eq(srv[i].after_close, 0);
    }
    ck_assert_int_eq(srv[3].skip_bad, 0);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

/* ---- A regex match cuts at once ---------------------------------------- */

/* "the first complete match cuts a frame at once ..., even if bytes still
 * to come could have made the match longer": with "a+", "xa" gives "x"
 * while the peer sends nothing more; the match is not passed on. */
START_TEST(regex_cuts_at_first_complete_match)
{
    static struct c3_srv srv[1];
    pants_engine_t *e = c3_start(srv, "A");
    int fd = c3_client(srv[0].addr), at_once;
    char first[16] = "";

    ck_assert_int_eq(send(fd, "x", 1, MSG_NOSIGNAL), 1);
    pt_sleep_ms(20);
    ck_assert_int_eq(send(fd, "a", 1, MSG_NOSIGNAL), 1);
    at_once = pt_wait_count(&srv[0].nframes, 1, 3000);
    if (at_once)
        memcpy(first, srv[0].frames, srv[0].len < sizeof(first) - 1 ? srv[0].len : sizeof(first) - 1);
    ck_assert_int_eq(send(fd, "y", 1, MSG_NOSIGNAL), 1);
    pt_sleep_ms(20);
    ck_assert_int_eq(send(fd, "a", 1, MSG_NOSIGNAL), 1);
    ck_assert(pt_wait_count(&srv[0].nframes, 2, 3000) || !at_once);
    close(fd);
    ck_assert(pt_wait_count(&srv[0].closes, 1, 5000));
    c3_finish(e);

    srv[0].frames[srv[0].len] = '\0';
    ck_assert_msg(at_once, "no frame within 3 s of \"xa\" (got \"%s\" in the end)", srv[0].frames);
    ck_assert_str_eq(first, "x|");
    ck_assert_str_eq(srv[0].frames, "x|y|");
    ck_assert_int_eq(srv[0].setup_bad, 0);
    ck_assert_int_eq(srv[0].closes, 1);
    ck_assert_int_eq(srv[0].after_close, 0);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

/* ---- The read limit ---------------------------------------------------- */

#define C3_LINE_OK  (60u << 10) /* under the default 64 KiB */
#define C3_LINE_BIG (70u << 10) /* over it */

/* "default 64 KiB; never below what the delimiter needs": exact(64) with
 * a limit of 16 asked for still gives 64-byte frames; a 60 KiB line is
 * delivered whole; 70 KiB without a "\n" calls on_overflow. */
START_TEST(read_limit_default_and_floor)
{
    static struct c3_srv srv[3];
    static char buf[C3_LINE_BIG];
    pants_engine_t *e = c3_start(srv, "LDO");
    int fl = c3_client(srv[0].addr), fd = c3_client(srv[1].addr), fo = c3_client(srv[2].addr);
    size_t sent = 0;

    memset(buf, 'l', 128);
    ck_assert_int_eq(send(fl, buf, 128, MSG_NOSIGNAL), 128);
    close(fl);
    memset(buf, 'd', C3_LINE_OK);
    buf[C3_LINE_OK] = '\n';
    ck_assert_int_eq(send(fd, buf, C3_LINE_OK + 1, MSG_NOSIGNAL), (ssize_t)C3_LINE_OK + 1);
    close(fd);
    memset(buf, 'o', C3_LINE_BIG);
    while (sent < C3_LINE_BIG) {
        ssize_t n = send(fo, buf + sent, C3_LINE_BIG - sent, MSG_NOSIGNAL);

        if (n <= 0)
            break; /* closed on us: fine */
        sent += (size_t)n;
    }
    for (int i = 0; i < 3; i++)
        ck_assert(pt_wait_count(&srv[i].closes, 1, 5000));
    close(fo);
    c3_finish(e);

    for (int i = 0; i < 3; i++) {
        srv[i].frames[srv[i].len] = '\0';
        ck_assert_int_eq(srv[i].setup_bad, 0);
        ck_assert_int_eq(srv[i].content_bad, 0);
        ck_assert_int_eq(srv[i].closes, 1);
        ck_assert_int_eq(srv[i].after_close, 0);
    }
    ck_assert_str_eq(srv[0].frames, "#64|#64|");
    ck_assert_int_eq(srv[0].overflows, 0);
    ck_assert_str_eq(srv[1].frames, "#61440|");
    ck_assert_int_eq(srv[1].overflows, 0);
    ck_assert_str_eq(srv[2].frames, "");
    ck_assert_int_eq(srv[2].overflows, 1);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

/* ---- Channels set up on the main thread before pants_engine_start ------ */

struct bs_app {
    int listens;       /* server on_listen calls */
    int accepts;       /* on_accept calls */
    int connects;      /* client on_connect calls */
    char line[32];     /* what the client read */
    int reads;         /* client on_read calls */
    int closes;        /* client on_close calls (atomic) */
    int after_close;   /* client callbacks after on_close */
    pants_loop_t *cli; /* the client's loop */
    int wrong_loop;    /* a client callback off that loop */
};

static void bs_listen(pants_server_t *srv)
{
    struct bs_app *a = pants_server_data(srv);

    a->listens++;
}

static void bs_accept(pants_server_t *srv, pants_stream_t *conn)
{
    struct bs_app *a = pants_server_data(srv);

    a->accepts++;
    pants_stream_read_until(conn, "\n", 1);
}

static void bs_echo(pants_stream_t *s, const void *data, size_t len)
{
    pants_stream_write(s, "re:", 3);
    pants_stream_write(s, data, len);
    pants_stream_write(s, "\n", 1);
}

static void bs_cli_connect(pants_stream_t *s)
{
    struct bs_app *a = pants_stream_data(s);

    a->after_close += a->closes;
    a->wrong_loop += pants_loop_current() != a->cli;
    a->connects++;
}

static void bs_cli_read(pants_stream_t *s, const void *data, size_t len)
{
    struct bs_app *a = pants_stream_data(s);

    a->after_close += a->closes;
    a->wrong_loop += pants_loop_current() != a->cli;
    a->reads++;
    memcpy(a->line, data, len < sizeof(a->line) - 1 ? len : sizeof(a->line) - 1);
    pants_stream_close(s);
}

static void bs_cli_close(pants_stream_t *s)
{
    struct bs_app *a = pants_stream_data(s);

    a->after_close += a->closes;
    bump(&a->closes);
}

/* "Before its engine runs, any thread may create and set up channels;
 * what they ask for (connect, listen) happens once their loop runs": a
 * server listens, a client connects, writes a line and sets read_until,
 * all on this thread before pants_engine_start. */
START_TEST(setup_before_start_on_main_thread)
{
    static struct bs_app a;
    pants_engine_options_t o = {.threads = 2};
    pants_server_callbacks_t scb = {.on_listen = bs_listen, .on_accept = bs_accept};
    pants_stream_callbacks_t conn = {.on_read = bs_echo};
    pants_stream_callbacks_t ccb = {
        .on_connect = bs_cli_connect, .on_read = bs_cli_read, .on_close = bs_cli_close};
    pants_engine_t *e;
    pants_stream_t *s;
    char addr[200];

    memset(&a, 0, sizeof(a));
    pt_unix_addr(addr, sizeof(addr), "spec-bs.sock");
    e = pants_engine_new(&o);
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(pants_server_listen(pants_server_new(e, &scb, &conn, &a), addr, 0), 0);
    a.cli = pants_engine_loop(e, 1);
    s = pants_stream_new(a.cli, &ccb, &a);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(pants_stream_connect(s, addr), 0);
    ck_assert_int_eq(pants_stream_write(s, "early bird\n", 11), 0);
    ck_assert_int_eq(pants_stream_read_until(s, "\n", 1), 0);
    ck_assert_int_eq(pants_engine_start(e), 0);
    ck_assert(pt_wait_count(&a.closes, 1, 5000));
    c3_finish(e);
    pants_engine_free(NULL); /* a no-op */

    ck_assert_int_eq(a.listens, 1);
    ck_assert_int_eq(a.accepts, 1);
    ck_assert_int_eq(a.connects, 1);
    ck_assert_int_eq(a.reads, 1);
    ck_assert_str_eq(a.line, "re:early bird");
    ck_assert_int_eq(a.closes, 1);
    ck_assert_int_eq(a.after_close, 0);
    ck_assert_int_eq(a.wrong_loop, 0);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

/* ---- What on_accept can see and change --------------------------------- */

#define AI_BIG (8u << 20) /* far more than a socket buffers */

struct ai_app {
    pants_server_t *srv;  /* the server */
    int listening;        /* on_listen ran (atomic) */
    int accepts;          /* on_accept calls */
    int wrong;            /* a server, data or family not as expected */
    size_t pending0;      /* pants_stream_pending in on_accept */
    char remote[64];      /* the connection's remote address, formatted */
    char local[64];       /* its local address, formatted */
    int conn_data;        /* the per-connection data (its address is set) */
    int old_reads;        /* on_read of the server's conn_cb (replaced) */
    int new_reads;        /* on_read of the replacement */
    char line[16];        /* the line it read */
    size_t pending_after; /* pants_stream_pending after the big write */
    int closes;           /* on_close calls (atomic) */
};

static unsigned char ai_big[AI_BIG];

static void ai_listen(pants_server_t *srv)
{
    struct ai_app *a = pants_server_data(srv);

    __atomic_store_n(&a->listening, 1, __ATOMIC_SEQ_CST);
}

static void ai_old_read(pants_stream_t *s, const void *data, size_t len)
{
    struct ai_app *a = pants_stream_data(s);

    (void)data;
    (void)len;
    a->old_reads++;
}

static void ai_close(pants_stream_t *s)
{
    struct ai_app *a = pants_stream_data(s);

    bump(&a->closes);
}

static void ai_new_read(pants_stream_t *s, const void *data, size_t len)
{
    struct ai_app *a = pants_stream_data(s);

    a->new_reads++;
    memcpy(a->line, data, len < sizeof(a->line) - 1 ? len : sizeof(a->line) - 1);
    pants_stream_write(s, "alt:", 4);
    pants_stream_write(s, data, len);
    pants_stream_write(s, "\n", 1);
    pants_stream_write(s, ai_big, AI_BIG);
    a->pending_after = pants_stream_pending(s);
    pants_stream_end(s);
}

static void ai_accept(pants_server_t *srv, pants_stream_t *conn)
{
    static const pants_stream_callbacks_t alt = {.on_read = ai_new_read, .on_close = ai_close};
    struct ai_app *a = pants_server_data(srv);
    pants_addr_t r, l;

    a->accepts++;
    a->wrong += pants_stream_server(conn) != srv || srv != a->srv;
    a->wrong += pants_stream_family(conn) != AF_INET;
    a->wrong += pants_stream_remote_address(conn, &r) != 0 ||
                pants_addr_format(&r, a->remote, sizeof(a->remote)) < 0;
    a->wrong += pants_stream_local_address(conn, &l) != 0 ||
                pants_addr_format(&l, a->local, sizeof(a->local)) < 0;
    a->pending0 = pants_stream_pending(conn);
    pants_stream_set_data(conn, a);
    a->conn_data = pants_stream_data(conn) == a;
    pants_stream_set_callbacks(conn, &alt);
    pants_stream_read_until(conn, "\n", 1);
}

/* pants_server_data, pants_stream_server, family, remote and local
 * addresses and pending inside on_accept; set_data and set_callbacks there
 * take effect for that connection ("on_accept ... may set per-connection
 * data or other callbacks"); pending counts what is queued and end()
 * still sends all of it. */
START_TEST(accept_sees_and_replaces)
{
    static struct ai_app a;
    pants_engine_options_t o = {.threads = 2};
    pants_server_callbacks_t scb = {.on_listen = ai_listen, .on_accept = ai_accept};
    pants_stream_callbacks_t conn = {.on_read = ai_old_read, .on_close = ai_close};
    static unsigned char got[4096];
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char addr[64], mine[64], head[16] = "";
    size_t total = 0, mismatches = 0;
    int port = c2_free_port(AF_INET, SOCK_STREAM), fd;
    pants_engine_t *e;

    memset(&a, 0, sizeof(a));
    for (size_t i = 0; i < AI_BIG; i++)
        ai_big[i] = (unsigned char)(i * 7 + i / 1021);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    e = pants_engine_new(&o);
    ck_assert_ptr_nonnull(e);
    a.srv = pants_server_new(e, &scb, &conn, &a);
    ck_assert_ptr_nonnull(a.srv);
    ck_assert_ptr_eq(pants_server_data(a.srv), &a);
    ck_assert_int_eq(pants_server_listen(a.srv, addr, 0), 0);
    ck_assert_int_eq(pants_engine_start(e), 0);
    ck_assert(pt_wait(&a.listening, 5000));
    fd = c3_client(addr);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&ss, &sl), 0);
    snprintf(mine, sizeof(mine), "127.0.0.1:%d", c2_port_of(&ss));
    ck_assert_int_eq(send(fd, "hi\n", 3, MSG_NOSIGNAL), 3);
    for (;;) {
        ssize_t n = c2_recv(fd, got, sizeof(got), 5000);

        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++, total++) {
            if (total < 7)
                head[total] = (char)got[i];
            else if (total - 7 >= AI_BIG || got[i] != ai_big[total - 7])
                mismatches++;
        }
    }
    close(fd);
    ck_assert(pt_wait_count(&a.closes, 1, 5000));
    c3_finish(e);

    ck_assert_int_eq(a.accepts, 1);
    ck_assert_int_eq(a.wrong, 0);
    ck_assert_str_eq(a.remote, mine);
    ck_assert_str_eq(a.local, addr);
    ck_assert_uint_eq(a.pending0, 0);
    ck_assert_int_eq(a.conn_data, 1);
    ck_assert_int_eq(a.old_reads, 0);
    ck_assert_int_eq(a.new_reads, 1);
    ck_assert_str_eq(a.line, "hi");
    ck_assert_uint_gt(a.pending_after, 0);
    ck_assert_uint_le(a.pending_after, AI_BIG + 7);
    ck_assert_str_eq(head, "alt:hi\n");
    ck_assert_uint_eq(total, AI_BIG + 7);
    ck_assert_uint_eq(mismatches, 0);
    ck_assert_int_eq(a.closes, 1);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

/* ---- Datagrams: empty, largest, many senders --------------------------- */

#define DM_SENDERS 4
#define DM_EACH    50
#define DM_LARGEST 65507 /* the largest UDP payload over IPv4 */

struct dm_app {
    int listening;            /* on_listen ran (atomic) */
    int ports[DM_SENDERS];    /* the plain senders' ports */
    int reads;                /* on_read calls (atomic) */
    size_t first_len[2];      /* lengths of the first two packets */
    int largest_bad;          /* bytes of the largest packet not as sent */
    int from[DM_SENDERS];     /* packets per sender, by the from address */
    int next[DM_SENDERS];     /* the sequence number expected next per sender */
    int bad;                  /* unknown sender, wrong content or order */
    int closes;               /* on_close calls */
};

static void dm_listen(pants_datagram_t *d)
{
    struct dm_app *a = pants_datagram_data(d);

    __atomic_store_n(&a->listening, 1, __ATOMIC_SEQ_CST);
}

static void dm_read(pants_datagram_t *d, const void *data, size_t len, const pants_addr_t *from)
{
    struct dm_app *a = pants_datagram_data(d);
    int n = c2_load(&a->reads), i;
    const unsigned char *p = data;
    char want[32];

    if (n < 2) {
        a->first_len[n] = len;
        for (size_t k = 0; n == 1 && k < len; k++)
            a->largest_bad += p[k] != (unsigned char)(k % 251);
    } else {
        for (i = 0; i < DM_SENDERS; i++)
            if (from->ss.ss_family == AF_INET && c2_port_of(&from->ss) == a->ports[i])
                break;
        if (i == DM_SENDERS) {
            a->bad++;
        } else {
            snprintf(want, sizeof(want), "s%d:%d", i, a->next[i]++);
            a->bad += len != strlen(want) || memcmp(data, want, len) != 0;
            a->from[i]++;
        }
    }
    bump(&a->reads);
}

static void dm_close(pants_datagram_t *d)
{
    struct dm_app *a = pants_datagram_data(d);

    a->closes++;
}

/* "One on_read per packet": a 0-byte packet and a 65507-byte one each
 * arrive whole; 4 plain senders x 50 packets give exactly 200 on_reads,
 * each with its sender's address. */
START_TEST(datagram_empty_largest_many_senders)
{
    static struct dm_app a;
    static unsigned char big[DM_LARGEST];
    pants_engine_options_t o = {.threads = 2};
    pants_datagram_callbacks_t cb = {.on_listen = dm_listen, .on_read = dm_read, .on_close = dm_close};
    struct sockaddr_storage to, ss;
    socklen_t tl, sl;
    char addr[64];
    int port = c2_free_port(AF_INET, SOCK_DGRAM), fd[DM_SENDERS];
    pants_engine_t *e;

    memset(&a, 0, sizeof(a));
    for (size_t k = 0; k < DM_LARGEST; k++)
        big[k] = (unsigned char)(k % 251);
    c2_loopback(&to, &tl, AF_INET, port);
    for (int i = 0; i < DM_SENDERS; i++) {
        int sz = 1 << 20;

        fd[i] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fd[i], 0);
        setsockopt(fd[i], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
        c2_loopback(&ss, &sl, AF_INET, 0);
        ck_assert_int_eq(bind(fd[i], (struct sockaddr *)&ss, sl), 0);
        sl = sizeof(ss);
        ck_assert_int_eq(getsockname(fd[i], (struct sockaddr *)&ss, &sl), 0);
        a.ports[i] = c2_port_of(&ss);
    }
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    e = pants_engine_new(&o);
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(pants_datagram_listen(pants_datagram_new(pants_engine_loop(e, 1), &cb, &a), addr), 0);
    ck_assert_int_eq(pants_engine_start(e), 0);
    ck_assert(pt_wait(&a.listening, 5000));

    ck_assert_int_eq(sendto(fd[0], "", 0, 0, (struct sockaddr *)&to, tl), 0);
    ck_assert(pt_wait_count(&a.reads, 1, 5000));
    ck_assert_int_eq(sendto(fd[1], big, DM_LARGEST, 0, (struct sockaddr *)&to, tl), DM_LARGEST);
    ck_assert(pt_wait_count(&a.reads, 2, 5000));
    for (int k = 0; k < DM_EACH; k++) {
        for (int i = 0; i < DM_SENDERS; i++) {
            char msg[32];
            int n = snprintf(msg, sizeof(msg), "s%d:%d", i, k);

            ck_assert_int_eq(sendto(fd[i], msg, (size_t)n, 0, (struct sockaddr *)&to, tl), n);
        }
        /* paced, so no packet is lost to a full receive buffer */
        ck_assert(pt_wait_count(&a.reads, 2 + (k + 1) * DM_SENDERS, 5000));
    }
    pt_sleep_ms(50); /* room for any extra on_read */
    c3_finish(e);
    for (int i = 0; i < DM_SENDERS; i++)
        close(fd[i]);

    ck_assert_int_eq(a.reads, 2 + DM_SENDERS * DM_EACH);
    ck_assert_uint_eq(a.first_len[0], 0);
    ck_assert_uint_eq(a.first_len[1], DM_LARGEST);
    ck_assert_int_eq(a.largest_bad, 0);
    for (int i = 0; i < DM_SENDERS; i++)
        ck_assert_int_eq(a.from[i], DM_EACH);
    ck_assert_int_eq(a.bad, 0);
    ck_assert_int_eq(a.closes, 1);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

Suite *spec_suite(void)
{
    Suite *s = suite_create("spec");
    TCase *tc = tcase_create("programs");

    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, line_oriented_run_on_this_thread);
    tcase_add_test(tc, header_then_body);
    tcase_add_test(tc, refused_then_timer_stops);
    tcase_add_test(tc, datagram_reply_to_sender);
    suite_add_tcase(s, tc);

    tc = tcase_create("contract");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, round_robin_accept_and_pinning);
    tcase_add_test(tc, timers_callback_loop_defer_cycle);
    tcase_add_test(tc, loops_round_robin_and_foreign_posts);
    tcase_add_test(tc, threads_zero_is_online_cpus);
    tcase_add_test(tc, delimiters_change_inside_on_read);
    tcase_add_test(tc, end_sends_queued_close_drops);
    tcase_add_test(tc, write_file_ranges_in_order);
    tcase_add_test(tc, broadcast_and_connections_from_outside);
    tcase_add_test(tc, addresses_errors_and_malformed);
    tcase_add_test(tc, cycle_never_runs_early);
    suite_add_tcase(s, tc);

    tc = tcase_create("contract2");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, stop_from_signal_handler_flushes_queued);
    tcase_add_test(tc, connect_error_default_closes_or_retries);
    tcase_add_test(tc, error_and_overflow_defaults_close);
    tcase_add_test(tc, peer_half_close_flushes_replies);
    tcase_add_test(tc, stream_post_and_ref_from_foreign_threads);
    tcase_add_test(tc, server_close_from_foreign_thread);
    tcase_add_test(tc, listen_in_use_and_stale_unix_file);
    tcase_add_test(tc, datagram_udp_packets_and_replies);
    tcase_add_test(tc, datagram_unix_replies_and_end);
    tcase_add_test(tc, ipv6_stream_echo);
    suite_add_tcase(s, tc);

    tc = tcase_create("contract3");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, delimiters_one_byte_per_write);
    tcase_add_test(tc, regex_cuts_at_first_complete_match);
    tcase_add_test(tc, read_limit_default_and_floor);
    tcase_add_test(tc, setup_before_start_on_main_thread);
    tcase_add_test(tc, accept_sees_and_replaces);
    tcase_add_test(tc, datagram_empty_largest_many_senders);
    suite_add_tcase(s, tc);
    return s;
}
