/* check_spec.c -- whole programs written the way the API contract reads.
 *
 * Each test is a small application in the Pants channel style, built only
 * from include/pants.h as ../shared/spec/API.md describes it: channels set
 * up before the engine runs, pants_engine_run on the test's own thread, and
 * the application stopping the engine from a callback.  They check that the
 * pieces the other suites test one by one fit together: the seed's
 * LineOriented protocol, a header-then-body protocol that switches
 * delimiters, a timer ending the run, and a datagram ping-pong.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

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
    return s;
}
