/* check_delimiter.c -- read delimiters on live connections.
 *
 * A pants server picks the delimiter of each connection in on_accept and
 * records every frame ("frame|frame|"); a plain blocking socket on the test
 * thread sends the input all at once or one byte per write (TCP_NODELAY,
 * a short pause between bytes, so the frames straddle reads), then shuts
 * its sending side: the connection delivers its complete frames, drops a
 * partial one and closes, so each test compares one final record.  Covered:
 * any, until (one byte and "\r\n"), exact, regex and a length-prefix framer
 * with skip; changing the delimiter inside on_read with bytes already
 * buffered, and from outside on_read; invalid arguments leaving the old
 * delimiter in place; a framer rejecting the bytes; a regex whose matching
 * runs past its limits (-E2BIG); the read limit with and without
 * on_overflow; read_exact beyond the default limit.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "testutil.h"

Suite *delimiter_suite(void);

#define WAIT_MS 10000 /* generous: the machine is small and busy */

#define GET(x)    __atomic_load_n(&(x), __ATOMIC_SEQ_CST)
#define SET(x, v) __atomic_store_n(&(x), (v), __ATOMIC_SEQ_CST)
#define INC(x)    __atomic_add_fetch(&(x), 1, __ATOMIC_SEQ_CST)

/* ---- The recording server ---------------------------------------------- */

enum overflow_action { OV_NONE, OV_RAISE, OV_CLOSE };

struct drec;
typedef void (*setup_fn)(pants_stream_t *conn, struct drec *d);
typedef void (*frame_fn)(pants_stream_t *s, struct drec *d, const char *p, size_t n);

struct drec {
    setup_fn setup;                /* on_accept: choose the delimiter */
    frame_fn on_frame;             /* after each frame is recorded, or NULL */
    bool bulk;                     /* frames are pattern bytes: check, count */
    bool no_error_cb;              /* the connection has no on_error */
    bool overflow_cb;              /* the connection has an on_overflow */
    enum overflow_action overflow; /* what on_overflow does */
    int rc[8];                     /* results the setup / frame hooks record */
    pants_stream_t *conn;          /* the connection (valid until closed) */
    char frames[4096];             /* frames, each followed by '|' */
    size_t flen;                   /* bytes used in frames */
    size_t bulk_bytes;             /* bulk: bytes of pattern seen so far */
    int bulk_bad;                  /* bulk: frames not matching the pattern */
    size_t bulk_len;               /* bulk: the expected frame length */
    int nframes;                   /* on_read calls (atomic) */
    int overflows;                 /* on_overflow calls */
    int errors;                    /* on_error calls */
    int err;                       /* the last on_error's err */
    int seq;                       /* event order */
    int error_seq;                 /* when on_error ran */
    int close_seq;                 /* when on_close ran */
    int accepted;                  /* on_accept ran: conn is set */
    int closes;                    /* on_close calls (atomic) */
    int closed;                    /* on_close ran (set last) */
};

/* The bulk test pattern: every byte value but '\n', so lines can hold it. */
static unsigned char pattern_at(size_t i)
{
    unsigned char c = (unsigned char)((i * 13 + i / 253) & 0xff);

    return c == '\n' ? 'N' : c;
}

static void d_on_read(pants_stream_t *s, const void *data, size_t len)
{
    struct drec *d = pants_stream_data(s);
    const unsigned char *p = data;

    if (d->bulk) {
        bool ok = len == d->bulk_len;
        for (size_t i = 0; ok && i < len; i++)
            ok = p[i] == pattern_at(d->bulk_bytes + i);
        d->bulk_bytes += len;
        if (!ok)
            d->bulk_bad++;
    } else if (d->flen + len + 1 < sizeof(d->frames)) {
        memcpy(d->frames + d->flen, data, len);
        d->frames[d->flen + len] = '|';
        d->flen += len + 1;
    }
    INC(d->nframes);
    if (d->on_frame)
        d->on_frame(s, d, data, len);
}

static void d_on_overflow(pants_stream_t *s)
{
    struct drec *d = pants_stream_data(s);

    if (d->overflow == OV_RAISE)
        d->rc[7] = pants_stream_set_read_limit(s, 1024 * 1024);
    else if (d->overflow == OV_CLOSE)
        pants_stream_close(s);
    INC(d->overflows);
}

static void d_on_error(pants_stream_t *s, int err)
{
    struct drec *d = pants_stream_data(s);

    d->err = err;
    d->error_seq = ++d->seq;
    INC(d->errors);
}

static void d_on_close(pants_stream_t *s)
{
    struct drec *d = pants_stream_data(s);

    d->close_seq = ++d->seq;
    d->conn = NULL;
    INC(d->closes);
    SET(d->closed, 1);
}

static void d_on_accept(pants_server_t *srv, pants_stream_t *conn)
{
    struct drec *d = pants_server_data(srv);
    pants_stream_callbacks_t cb = {.on_read = d_on_read, .on_close = d_on_close};

    if (!d->no_error_cb)
        cb.on_error = d_on_error;
    if (d->overflow_cb)
        cb.on_overflow = d_on_overflow;
    pants_stream_set_callbacks(conn, &cb);
    pants_stream_set_data(conn, d);
    d->conn = conn;
    if (d->setup)
        d->setup(conn, d);
    SET(d->accepted, 1);
}

struct harness {
    pants_engine_t *e; /* the engine */
    int fd;            /* the plain client, connected */
};

/* An engine, a recording server for d, and a plain client connected. */
static struct harness up(struct drec *d)
{
    pants_engine_options_t o = {.threads = 2};
    pants_server_callbacks_t scb = {.on_accept = d_on_accept};
    struct timeval tv = {10, 0};
    struct harness h;
    pants_server_t *srv;
    pants_addr_t a;
    int one = 1;

    h.e = pants_engine_new(&o);
    ck_assert_ptr_nonnull(h.e);
    ck_assert_int_eq(pants_engine_start(h.e), 0);
    srv = pants_server_new(h.e, &scb, NULL, d);
    ck_assert_ptr_nonnull(srv);
    ck_assert_int_eq(pants_server_listen(srv, "127.0.0.1:0", 0), 0);
    ck_assert_int_eq(pants_server_local_address(srv, &a), 0);
    h.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(h.fd, 0);
    setsockopt(h.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(h.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(h.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    ck_assert_int_eq(connect(h.fd, (const struct sockaddr *)&a.ss, a.len), 0);
    return h;
}

static void down(struct harness *h)
{
    close(h->fd);
    pants_engine_stop(h->e);
    ck_assert_int_eq(pants_engine_join(h->e), 0);
    pants_engine_free(h->e);
    ck_assert_int_eq(pants_live_objects(), 0);
}

/* Send len bytes: at once, or one byte per write with a pause. */
static void send_bytes(int fd, const void *data, size_t len, bool bytewise)
{
    const char *p = data;

    if (!bytewise) {
        while (len > 0) {
            ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
            ck_assert_int_gt(n, 0);
            p += n;
            len -= (size_t)n;
        }
        return;
    }
    for (size_t i = 0; i < len; i++) {
        ck_assert_int_eq(send(fd, p + i, 1, MSG_NOSIGNAL), 1);
        pt_sleep_ms(1);
    }
}

static void send_str(int fd, const char *s, bool bytewise)
{
    send_bytes(fd, s, strlen(s), bytewise);
}

/* Shut the sending side and wait until the connection has closed. */
static void finish(struct harness *h, struct drec *d)
{
    ck_assert_int_eq(shutdown(h->fd, SHUT_WR), 0);
    ck_assert_msg(pt_wait(&d->closed, WAIT_MS), "the connection did not close");
}

/* The server closed the connection: EOF, or a reset if it closed with
 * bytes unread. */
static void expect_closed(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, 0);

    ck_assert_msg(n == 0 || (n < 0 && errno == ECONNRESET), "recv gave %zd", n);
}

static void expect_frames(const struct drec *d, const char *want)
{
    ck_assert_msg(d->flen == strlen(want) && memcmp(d->frames, want, d->flen) == 0,
                  "frames '%.*s', want '%s'", (int)d->flen, d->frames, want);
}

/* Input, delimiter and expected frames; run at once (_i 0) and bytewise. */
static void run_simple(setup_fn setup, const char *input, const char *want, bool bytewise)
{
    struct drec d = {.setup = setup};
    struct harness h = up(&d);

    send_str(h.fd, input, bytewise);
    finish(&h, &d);
    expect_frames(&d, want);
    ck_assert_int_eq(d.errors, 0);
    ck_assert_int_eq(d.overflows, 0);
    down(&h);
}

/* ---- Each kind --------------------------------------------------------- */

static void set_any(pants_stream_t *s, struct drec *d)
{
    d->rc[0] = pants_stream_read_until(s, "\n", 1);
    d->rc[1] = pants_stream_read_any(s); /* back to the default */
}

START_TEST(any_delivers_everything)
{
    static const char input[] = "any bytes\nat all\r\n, in any chunks";
    struct drec d = {.setup = set_any};
    struct harness h = up(&d);
    size_t off = 0;

    send_str(h.fd, input, _i == 1);
    finish(&h, &d);
    ck_assert_int_eq(d.rc[0], 0);
    ck_assert_int_eq(d.rc[1], 0);
    ck_assert_int_ge(d.nframes, 1);
    for (size_t i = 0; i < d.flen; i++) { /* concatenated, the frames are the input */
        if (d.frames[i] == '|')
            continue;
        ck_assert_uint_lt(off, strlen(input));
        ck_assert_int_eq(d.frames[i], input[off++]);
    }
    ck_assert_uint_eq(off, strlen(input));
    ck_assert_uint_eq(d.flen, strlen(input) + (size_t)d.nframes); /* no empty frame */
    down(&h);
}
END_TEST

static void set_until_nl(pants_stream_t *s, struct drec *d)
{
    d->rc[0] = pants_stream_read_until(s, "\n", 1);
}

START_TEST(until_one_byte)
{
    run_simple(set_until_nl, "alpha\nbeta\n\ngamma\ntail", "alpha|beta||gamma|", _i == 1);
}
END_TEST

static void set_until_crlf(pants_stream_t *s, struct drec *d)
{
    d->rc[0] = pants_stream_read_until(s, "\r\n", 2);
}

START_TEST(until_crlf)
{
    run_simple(set_until_crlf, "GET / HTTP/1.1\r\nHost: x\r\na\rb\nc\r\n\r\nbody",
               "GET / HTTP/1.1|Host: x|a\rb\nc||", _i == 1);
}
END_TEST

static void set_exact4(pants_stream_t *s, struct drec *d)
{
    d->rc[0] = pants_stream_read_exact(s, 4);
}

START_TEST(exact_n)
{
    run_simple(set_exact4, "abcdefghijklmn", "abcd|efgh|ijkl|", _i == 1);
}
END_TEST

static void set_regex_eol(pants_stream_t *s, struct drec *d)
{
    d->rc[0] = pants_stream_read_regex(s, "\r?\n");
}

START_TEST(regex_line_ends)
{
    run_simple(set_regex_eol, "one\r\ntwo\nthree\r\n\nfour", "one|two|three||", _i == 1);
}
END_TEST

static void set_regex_tag(pants_stream_t *s, struct drec *d)
{
    d->rc[0] = pants_stream_read_regex(s, "<[0-9]+>");
}

START_TEST(regex_tags)
{
    run_simple(set_regex_tag, "x<12>yy<3><45>z<7", "x|yy||", _i == 1);
}
END_TEST

/* "<digit><payload of that many bytes>\n": the frame is digit and payload,
 * the newline is skipped; anything else is rejected with -EBADMSG. */
static ssize_t digit_framer(const void *buf, size_t len, size_t *skip, void *arg)
{
    const unsigned char *p = buf;
    size_t n;

    (void)arg;
    if (p[0] < '0' || p[0] > '9')
        return -EBADMSG;
    n = (size_t)(p[0] - '0');
    if (len < n + 2)
        return 0;
    if (p[n + 1] != '\n')
        return -EBADMSG;
    *skip = 1;
    return (ssize_t)(n + 1);
}

static void set_framed(pants_stream_t *s, struct drec *d)
{
    d->rc[0] = pants_stream_read_framed(s, digit_framer, NULL);
}

START_TEST(framed_length_prefix)
{
    run_simple(set_framed, "5hello\n0\n3abc\n9123456789\n4ab", "5hello|0|3abc|9123456789|", _i == 1);
}
END_TEST

/* ---- A framer rejecting the stream ------------------------------------- */

START_TEST(framer_error_closes)
{
    struct drec d = {.setup = set_framed, .no_error_cb = _i == 1};
    struct harness h = up(&d);

    send_str(h.fd, "5hello\nXjunk\n3abc\n", false);
    ck_assert(pt_wait(&d.closed, WAIT_MS)); /* closed by the library, not by EOF */
    expect_frames(&d, "5hello|");
    if (_i == 0) {
        ck_assert_int_eq(d.errors, 1);
        ck_assert_int_eq(d.err, -EBADMSG);
        ck_assert_int_lt(d.error_seq, d.close_seq);
    } else {
        ck_assert_int_eq(d.errors, 0);
    }
    expect_closed(h.fd); /* the client sees the close */
    down(&h);
}
END_TEST

static ssize_t lying_framer(const void *buf, size_t len, size_t *skip, void *arg)
{
    (void)buf;
    (void)skip;
    (void)arg;
    return (ssize_t)len + 10; /* more than there is */
}

static void set_lying(pants_stream_t *s, struct drec *d)
{
    d->rc[0] = pants_stream_read_framed(s, lying_framer, NULL);
}

START_TEST(framer_overreach_is_eproto)
{
    struct drec d = {.setup = set_lying};
    struct harness h = up(&d);

    send_str(h.fd, "abc", false);
    ck_assert(pt_wait(&d.closed, WAIT_MS));
    ck_assert_int_eq(d.nframes, 0);
    ck_assert_int_eq(d.errors, 1);
    ck_assert_int_eq(d.err, -EPROTO);
    down(&h);
}
END_TEST

/* ---- Changing the delimiter -------------------------------------------- */

/* "LEN n" lines announce an n-byte body; after it, lines again. */
static void header_then_body(pants_stream_t *s, struct drec *d, const char *p, size_t n)
{
    unsigned len;

    if (n > 4 && memcmp(p, "LEN ", 4) == 0 && sscanf(p + 4, "%u", &len) == 1)
        d->rc[1] = pants_stream_read_exact(s, len);
    else if (n > 0 && p[0] == 'B')
        d->rc[2] = pants_stream_read_until(s, "\n", 1);
}

static void set_header_body(pants_stream_t *s, struct drec *d)
{
    d->on_frame = header_then_body;
    d->rc[0] = pants_stream_read_until(s, "\n", 1);
}

START_TEST(change_inside_on_read)
{
    struct drec d = {.setup = set_header_body};
    struct harness h = up(&d);

    /* One write: every switch happens with the rest already buffered. */
    send_str(h.fd, "LEN 5\nBody!NEXT\nLEN 12\nB\nwith\nlinesLAST\n", _i == 1);
    finish(&h, &d);
    expect_frames(&d, "LEN 5|Body!|NEXT|LEN 12|B\nwith\nlines|LAST|");
    ck_assert_int_eq(d.rc[0], 0);
    ck_assert_int_eq(d.rc[1], 0);
    ck_assert_int_eq(d.rc[2], 0);
    down(&h);
}
END_TEST

static void first_line_then_any(pants_stream_t *s, struct drec *d, const char *p, size_t n)
{
    (void)p;
    (void)n;
    if (d->nframes == 1)
        d->rc[1] = pants_stream_read_any(s);
}

static void set_line_then_any(pants_stream_t *s, struct drec *d)
{
    d->on_frame = first_line_then_any;
    d->rc[0] = pants_stream_read_until(s, "\r\n", 2);
}

START_TEST(change_to_any_inside_on_read)
{
    run_simple(set_line_then_any, "HELLO\r\nraw bytes\r\nand more", "HELLO|raw bytes\r\nand more|", false);
}
END_TEST

static void regex_then_exact(pants_stream_t *s, struct drec *d, const char *p, size_t n)
{
    (void)p;
    (void)n;
    if (d->nframes == 1)
        d->rc[1] = pants_stream_read_exact(s, 3);
    else if (d->nframes == 3)
        d->rc[2] = pants_stream_read_regex(s, ";+");
}

static void set_regex_then_exact(pants_stream_t *s, struct drec *d)
{
    d->on_frame = regex_then_exact;
    d->rc[0] = pants_stream_read_regex(s, ";+");
}

START_TEST(change_regex_exact_regex)
{
    /* At once only: ";+" cuts at the first ';' when they come one by one. */
    run_simple(set_regex_then_exact, "head;;abcdefx;;y;z", "head|abc|def|x|y|", false);
}
END_TEST

static void set_regex_semis(pants_stream_t *s, struct drec *d)
{
    d->rc[0] = pants_stream_read_regex(s, ";+");
}

/* The first complete match over the bytes that have arrived cuts at once,
 * even if later bytes would have made it longer: "a;;b;" in one write is
 * "a|b|"; "a;" first (its frame delivered) and then ";b;" is "a||b|". */
START_TEST(regex_first_complete_match)
{
    struct drec d = {.setup = set_regex_semis};
    struct harness h = up(&d);

    if (_i == 0) {
        send_str(h.fd, "a;;b;", false);
    } else {
        send_str(h.fd, "a;", false);
        ck_assert(pt_wait(&d.nframes, WAIT_MS));
        send_str(h.fd, ";b;", false);
    }
    finish(&h, &d);
    expect_frames(&d, _i == 0 ? "a|b|" : "a||b|");
    ck_assert_int_eq(d.errors, 0);
    down(&h);
}
END_TEST

struct change_outside {
    struct drec *d; /* whose connection */
    int rc;         /* read_exact's result */
};

static void set_exact3_task(void *arg)
{
    struct change_outside *c = arg;

    c->rc = pants_stream_read_exact(c->d->conn, 3);
}

START_TEST(change_outside_on_read)
{
    struct drec d = {.setup = set_until_nl};
    struct harness h = up(&d);
    struct change_outside c = {&d, -1};

    ck_assert(pt_wait(&d.accepted, WAIT_MS));
    send_str(h.fd, "abcdefg", false); /* no newline: all of it waits */
    pt_sleep_ms(200);
    ck_assert_int_eq(GET(d.nframes), 0);
    pt_on_loop(pants_stream_loop(d.conn), set_exact3_task, &c);
    ck_assert_int_eq(c.rc, 0);
    ck_assert(pt_wait_count(&d.nframes, 2, WAIT_MS)); /* cut from the buffer, no new byte */
    send_str(h.fd, "hi", false);
    ck_assert(pt_wait_count(&d.nframes, 3, WAIT_MS));
    finish(&h, &d);
    expect_frames(&d, "abc|def|ghi|");
    down(&h);
}
END_TEST

/* ---- Invalid arguments ------------------------------------------------- */

static void set_invalid(pants_stream_t *s, struct drec *d)
{
    pants_stream_read_until(s, "\n", 1);
    d->rc[0] = pants_stream_read_exact(s, 0);
    d->rc[1] = pants_stream_read_until(s, "x", 0);
    d->rc[2] = pants_stream_read_until(s, NULL, 1);
    d->rc[3] = pants_stream_read_regex(s, "(unclosed");
    d->rc[4] = pants_stream_read_regex(s, "a*"); /* matches the empty string */
    d->rc[5] = pants_stream_read_framed(s, NULL, NULL);
    d->rc[6] = pants_stream_set_read_limit(s, 0);
    d->rc[7] = pants_stream_read_regex(s, NULL);
}

START_TEST(invalid_arguments_keep_delimiter)
{
    struct drec d = {.setup = set_invalid};
    struct harness h = up(&d);

    send_str(h.fd, "x\nyy\nzzz", false);
    finish(&h, &d);
    for (int i = 0; i < 8; i++)
        ck_assert_msg(d.rc[i] == -EINVAL, "call %d gave %d", i, d.rc[i]);
    expect_frames(&d, "x|yy|"); /* still until "\n" */
    ck_assert_int_eq(pants_stream_read_exact(NULL, 1), -EINVAL);
    ck_assert_int_eq(pants_stream_read_any(NULL), -EINVAL);
    down(&h);
}
END_TEST

/* ---- The read limit ---------------------------------------------------- */

static void set_small_limit(pants_stream_t *s, struct drec *d)
{
    d->rc[0] = pants_stream_read_until(s, "\n", 1);
    d->rc[1] = pants_stream_set_read_limit(s, 100);
}

static char *repeat(char c, size_t n)
{
    char *p = malloc(n + 1);

    memset(p, c, n);
    p[n] = '\0';
    return p;
}

START_TEST(overflow_without_handler_closes)
{
    struct drec d = {.setup = set_small_limit};
    struct harness h = up(&d);
    char *big = repeat('a', 1000);

    send_str(h.fd, "short\n", false);
    send_str(h.fd, big, false);
    ck_assert(pt_wait(&d.closed, WAIT_MS)); /* no EOF was sent: the limit closed it */
    expect_frames(&d, "short|");
    ck_assert_int_eq(d.rc[1], 0);
    ck_assert_int_eq(d.errors, 0);
    expect_closed(h.fd);
    free(big);
    down(&h);
}
END_TEST

START_TEST(overflow_handler_then_close)
{
    struct drec d = {.setup = set_small_limit, .overflow_cb = true, .overflow = _i == 0 ? OV_NONE : OV_CLOSE};
    struct harness h = up(&d);
    char *big = repeat('a', 1000);

    send_str(h.fd, big, false);
    ck_assert(pt_wait(&d.closed, WAIT_MS));
    ck_assert_int_eq(d.overflows, 1); /* told once; still over afterwards: closed */
    ck_assert_int_eq(d.nframes, 0);
    ck_assert_int_eq(d.errors, 0);
    free(big);
    down(&h);
}
END_TEST

START_TEST(overflow_handler_raises_limit)
{
    struct drec d = {.setup = set_small_limit, .overflow_cb = true, .overflow = OV_RAISE};
    struct harness h = up(&d);
    char *big = repeat('b', 1000);

    send_str(h.fd, big, false);
    ck_assert(pt_wait(&d.overflows, WAIT_MS));
    pt_sleep_ms(100);
    ck_assert_int_eq(GET(d.closed), 0); /* the raised limit kept it open */
    ck_assert_int_eq(d.rc[7], 0);
    send_str(h.fd, "\nend\n", false);
    finish(&h, &d);
    ck_assert_int_eq(d.overflows, 1);
    ck_assert_int_eq(d.nframes, 2);
    ck_assert_uint_eq(d.flen, 1000 + 1 + 4);
    ck_assert_mem_eq(d.frames, big, 1000);
    ck_assert_mem_eq(d.frames + 1000, "|end|", 5);
    free(big);
    down(&h);
}
END_TEST

static void set_until_nl_bulk(pants_stream_t *s, struct drec *d)
{
    d->rc[0] = pants_stream_read_until(s, "\n", 1);
    if (d->bulk_len > 64 * 1024)
        d->rc[1] = pants_stream_set_read_limit(s, d->bulk_len + 1);
}

START_TEST(default_limit_is_64k)
{
    struct drec d = {.setup = set_until_nl, .bulk = true, .bulk_len = 60000};
    struct harness h = up(&d);
    unsigned char *line = malloc(70000);

    /* 60000 bytes and a newline: within the default limit. */
    for (size_t i = 0; i < 60000; i++)
        line[i] = pattern_at(i);
    line[60000] = '\n';
    send_bytes(h.fd, line, 60001, false);
    ck_assert(pt_wait(&d.nframes, WAIT_MS));
    /* Then 70000 bytes without one: past 64 KiB, no handler: closed. */
    memset(line, 'z', 70000);
    send_bytes(h.fd, line, 70000, false);
    ck_assert(pt_wait(&d.closed, WAIT_MS));
    ck_assert_int_eq(d.nframes, 1);
    ck_assert_int_eq(d.bulk_bad, 0);
    free(line);
    down(&h);
}
END_TEST

START_TEST(raised_limit_long_line)
{
    struct drec d = {.setup = set_until_nl_bulk, .bulk = true, .bulk_len = 500000};
    struct harness h = up(&d);
    unsigned char *line = malloc(500001);

    for (size_t i = 0; i < 500000; i++)
        line[i] = pattern_at(i);
    ck_assert_ptr_null(memchr(line, '\n', 500000));
    line[500000] = '\n';
    send_bytes(h.fd, line, 500001, false);
    finish(&h, &d);
    ck_assert_int_eq(d.rc[1], 0);
    ck_assert_int_eq(d.nframes, 1);
    ck_assert_int_eq(d.bulk_bad, 0);
    free(line);
    down(&h);
}
END_TEST

/* A 1 MiB line in 16,384 sends of 64 bytes: cut whole, in O(n). */
START_TEST(long_line_in_small_pieces)
{
    const size_t n = 1024 * 1024;
    struct drec d = {.setup = set_until_nl_bulk, .bulk = true, .bulk_len = n};
    struct harness h = up(&d);
    unsigned char *line = malloc(n + 1);

    for (size_t i = 0; i < n; i++)
        line[i] = pattern_at(i);
    line[n] = '\n';
    for (size_t off = 0; off < n + 1; off += 64)
        send_bytes(h.fd, line + off, off + 64 <= n + 1 ? 64 : n + 1 - off, false);
    finish(&h, &d);
    ck_assert_int_eq(d.rc[1], 0);
    ck_assert_int_eq(d.nframes, 1);
    ck_assert_int_eq(d.bulk_bad, 0);
    free(line);
    down(&h);
}
END_TEST

#define BIG_EXACT (200 * 1000)

static void set_big_exact(pants_stream_t *s, struct drec *d)
{
    d->rc[0] = pants_stream_read_exact(s, BIG_EXACT);
}

START_TEST(exact_beyond_default_limit)
{
    struct drec d = {.setup = set_big_exact, .bulk = true, .bulk_len = BIG_EXACT};
    struct harness h = up(&d);
    size_t total = 2 * BIG_EXACT + 5;
    unsigned char *buf = malloc(total);

    for (size_t i = 0; i < total; i++)
        buf[i] = pattern_at(i);
    send_bytes(h.fd, buf, BIG_EXACT / 2, false); /* in pieces, with pauses */
    pt_sleep_ms(50);
    send_bytes(h.fd, buf + BIG_EXACT / 2, total - BIG_EXACT / 2, false);
    finish(&h, &d);
    ck_assert_int_eq(d.rc[0], 0);
    ck_assert_int_eq(d.nframes, 2); /* the last 5 bytes were a partial frame */
    ck_assert_int_eq(d.bulk_bad, 0);
    ck_assert_int_eq(d.overflows, 0);
    ck_assert_int_eq(d.errors, 0);
    free(buf);
    down(&h);
}
END_TEST

/* ---- A regex past its limits ------------------------------------------ */

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void set_regex_catastrophic(pants_stream_t *s, struct drec *d)
{
    d->rc[0] = pants_stream_read_regex(s, "(a+)+b");
}

/* (a+)+b over a few thousand a's backtracks without end: the library closes
 * the stream by itself, on_error(-E2BIG) first (_i 0; _i 1 has no
 * on_error), then on_close once, within moments; the frame before it is
 * delivered. */
START_TEST(regex_limit_closes_with_e2big)
{
    struct drec d = {.setup = set_regex_catastrophic, .no_error_cb = _i == 1};
    struct harness h = up(&d);
    char *run = repeat('a', 4000);
    double t0;

    ck_assert(pt_wait(&d.accepted, WAIT_MS));
    t0 = now_ms();
    send_str(h.fd, "xyzab", false);
    send_str(h.fd, run, false);
    ck_assert(pt_wait(&d.closed, WAIT_MS)); /* no EOF was sent: the limit closed it */
    ck_assert_double_lt(now_ms() - t0, 3000.0);
    expect_closed(h.fd);
    pt_sleep_ms(50);
    ck_assert_int_eq(d.rc[0], 0);
    expect_frames(&d, "xyz|");
    if (_i == 0) {
        ck_assert_int_eq(d.errors, 1);
        ck_assert_int_eq(d.err, -E2BIG);
        ck_assert_int_lt(d.error_seq, d.close_seq);
    } else {
        ck_assert_int_eq(d.errors, 0);
    }
    ck_assert_int_eq(GET(d.closes), 1);
    free(run);
    down(&h);
}
END_TEST

/* ---- The suite --------------------------------------------------------- */

Suite *delimiter_suite(void)
{
    Suite *s = suite_create("delimiter");
    TCase *tc;

    tc = tcase_create("kinds");
    tcase_set_timeout(tc, 20);
    tcase_add_loop_test(tc, any_delivers_everything, 0, 2);
    tcase_add_loop_test(tc, until_one_byte, 0, 2);
    tcase_add_loop_test(tc, until_crlf, 0, 2);
    tcase_add_loop_test(tc, exact_n, 0, 2);
    tcase_add_loop_test(tc, regex_line_ends, 0, 2);
    tcase_add_loop_test(tc, regex_tags, 0, 2);
    tcase_add_loop_test(tc, regex_first_complete_match, 0, 2);
    tcase_add_loop_test(tc, framed_length_prefix, 0, 2);
    tcase_add_loop_test(tc, framer_error_closes, 0, 2);
    tcase_add_test(tc, framer_overreach_is_eproto);
    tcase_add_loop_test(tc, regex_limit_closes_with_e2big, 0, 2);
    suite_add_tcase(s, tc);

    tc = tcase_create("change");
    tcase_set_timeout(tc, 20);
    tcase_add_loop_test(tc, change_inside_on_read, 0, 2);
    tcase_add_test(tc, change_to_any_inside_on_read);
    tcase_add_test(tc, change_regex_exact_regex);
    tcase_add_test(tc, change_outside_on_read);
    tcase_add_test(tc, invalid_arguments_keep_delimiter);
    suite_add_tcase(s, tc);

    tc = tcase_create("limit");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, overflow_without_handler_closes);
    tcase_add_loop_test(tc, overflow_handler_then_close, 0, 2);
    tcase_add_test(tc, overflow_handler_raises_limit);
    tcase_add_test(tc, default_limit_is_64k);
    tcase_add_test(tc, raised_limit_long_line);
    tcase_add_test(tc, long_line_in_small_pieces);
    tcase_add_test(tc, exact_beyond_default_limit);
    suite_add_tcase(s, tc);
    return s;
}
