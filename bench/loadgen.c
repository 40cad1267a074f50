/* loadgen.c -- the load generator of the pants benchmarks.
 *
 * Drives an echo server over many connections and reports what a user of
 * the server would feel: messages per second, MB per second, latency
 * percentiles and every error.  It is written on plain epoll, one loop per
 * thread, so that it measures the server and not a second copy of the thing
 * being measured (it uses neither pants nor libevent).
 *
 * Six modes:
 *   closed loop (default)  each connection keeps --pipeline messages in
 *                          flight; latency runs from the actual send.
 *   open loop (--rate R)   R messages per second in total, each due at a
 *                          fixed time; latency runs from that intended time,
 *                          so a stalled server cannot hide its stall by
 *                          slowing the sender down (coordinated omission).
 *   churn (--churn)        connect, send one message, read the echo, close,
 *                          again; reports connections per second.
 *   idle (--idle N)        open N connections, send nothing, hold them; says
 *                          on stderr once all are open, reports how many
 *                          stayed open (bench/run reads server memory then).
 *   datagrams (--udp)      closed loop over UDP (or Unix datagram) sockets:
 *                          each of the --connections sockets keeps
 *                          --pipeline datagrams in flight; one that is not
 *                          answered within --timeout is counted lost and a
 *                          new one takes its place, so loss never stalls it.
 *   handshakes             --churn over TLS (--handshakes): connect, full
 *   (--handshakes)         TLS handshake (or a resumed one, --tls-resume),
 *                          one message, close, again: handshakes per second.
 *   burst (--burst N)      open N connections back to back, each with a
 *                          blocking connect (or, with --burst-parallel, all
 *                          N nonblocking connects at once, then wait for
 *                          them), send nothing, hold them until all are
 *                          open; reports the time it took, connections per
 *                          second and how many SYNs the kernel dropped at a
 *                          full listen queue meanwhile (ListenDrops and
 *                          ListenOverflows of /proc/net/netstat, read before
 *                          and after: counters of the whole machine).
 *
 * Every echoed byte is checked.  Byte o of a connection's stream is a pure
 * function of the connection, the message and the offset in it (a printable
 * pattern, rotated per message), so nothing is stored to verify it and a
 * server that mixes up, drops, repeats or reorders bytes is caught.  With
 * --line the pattern holds no '\n' and every message ends in one.  A
 * datagram starts with its sequence number (the socket's send count and the
 * in-flight slot it was sent from), then the pattern of that number: an
 * answer is matched to its slot at once, and a datagram echoed wrong, twice,
 * late (after it was given up as lost) or out of order is told apart.
 *
 * Latency goes into a log-bucketed histogram written here (the HdrHistogram
 * layout: 128 linear sub-buckets per power of two, under 1% error), one per
 * thread, merged at the end.  Figures count only the measured window, after
 * --warmup.  The loadgen shares the machine with the server, so it reads
 * into a big buffer, once per readiness, and writes each connection's due
 * messages with one send.
 *
 * With --tls every TCP mode but --burst speaks TLS, its own OpenSSL client
 * on the same epoll loops (the context of bench/tls.c, one per thread): a
 * connection counts as open once its handshake is done; what is due goes
 * out in one SSL_write (records of up to 16 KiB); each readiness reads with
 * SSL_read, and on while OpenSSL holds more (read-ahead).  WANT_READ and
 * WANT_WRITE decide what a connection waits for; a write that stopped is
 * retried with the same bytes and length.  Every echoed byte is verified as
 * in plain TCP.  The certificate is not checked (the signature of the
 * handshake is).  With --tls-resume each new connection offers a session
 * its thread was given and has not offered yet, the newest first: TLS 1.3
 * tickets are single-use (OpenSSL offers none twice), and every handshake
 * brings new ones (two after a full handshake, one after a resumed one);
 * with none left a connection does a full handshake.  The handshakes that
 * resumed are counted.  A connection ends with a close_notify.
 */
/* epoll_pwait2 (AM_CPPFLAGS sets it too; this is for hand builds). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifdef BENCH_TLS
#include "tls.h"

#include <openssl/err.h>
#include <openssl/objects.h>
#endif

#define RBUF_SIZE      (256 * 1024) /* bytes per read */
#define WBUF_SIZE      (256 * 1024) /* bytes per send */
#define MAX_EVENTS     256          /* events per epoll wait */
#define MAX_CONNECTING 64           /* connects in flight per thread */
#define TICK_NS        10000000u    /* longest sleep: how soon the end is noticed */
#define PAT_PERIOD     4093u        /* distinct message start offsets (prime) */
#define PAT_STEP       977u         /* rotation of the pattern per message */
#define MAX_SIZE       (16u << 20)  /* largest --size */
#define MAX_REPORTED   5            /* mismatches described on stderr */

#define UDP_HDR       8                /* --udp: sequence number heading a datagram */
#define UDP_SLOT_BITS 16               /* its low bits: the slot (--pipeline <= 65536) */
#define UDP_MAX       65507            /* largest --size with --udp (UDP over IPv4) */
#define UDP_BATCH     64               /* datagrams per recvmmsg / sendmmsg */
#define UDP_IDLE      UINT64_MAX       /* a slot whose datagram is settled */
#define UDP_UNSENT    (UINT64_MAX - 1) /* a slot waiting for room in the kernel */

#define HIST_SUB_BITS 7
#define HIST_SUB      (1u << HIST_SUB_BITS)
#define HIST_BUCKETS  ((64 - HIST_SUB_BITS + 1) * HIST_SUB)

enum mode { MODE_CLOSED, MODE_OPEN, MODE_CHURN, MODE_IDLE, MODE_UDP, MODE_BURST };

/* CS_HANDSHAKE: --tls, connected and in the TLS handshake. */
enum conn_state { CS_NEW, CS_CONNECTING, CS_HANDSHAKE, CS_ACTIVE, CS_DEAD };

struct ssl_st;         /* SSL, with --tls */
struct ssl_ctx_st;     /* SSL_CTX */
struct ssl_session_st; /* SSL_SESSION */

/* Latencies in nanoseconds, log-bucketed. */
struct hist {
    uint64_t count;                /* values recorded */
    uint64_t sum;                  /* their sum, for the mean */
    uint64_t max;                  /* the largest, exactly */
    uint64_t bucket[HIST_BUCKETS]; /* values per bucket */
};

/* What one thread counted in the measured window (errors: always). */
struct stats {
    uint64_t msgs;         /* messages echoed and verified */
    uint64_t conns;        /* --churn: connect/echo/close cycles done */
    uint64_t open;         /* connections open at the end */
    uint64_t err_connect;  /* connects that failed */
    uint64_t err_mismatch; /* echoed bytes that were wrong or unasked for */
    uint64_t err_closed;   /* connections the server closed */
    uint64_t err_io;       /* other socket errors */
    uint64_t lost;         /* --udp: datagrams unanswered within --timeout */
    uint64_t late;         /* --udp: answers to datagrams already given up */
    uint64_t reordered;    /* --udp: answers overtaken by a later datagram's */
    uint64_t handshakes;   /* --tls: handshakes completed */
    uint64_t resumed;      /* --tls: of those, the ones that resumed a session */
    struct hist hist;      /* latency of the messages counted */
};

/* One connection (in --churn, one slot that reconnects). */
struct conn {
    int fd;                /* the socket, -1 when none */
    enum conn_state state; /* where it is in its life */
    uint32_t index;        /* its place in its thread's array */
    uint32_t gen;          /* bumped per socket: spots stale events */
    uint32_t events;       /* epoll events registered, 0 when not added */
    uint32_t id;           /* global number: picks its byte pattern */
    uint32_t seed;         /* pattern offset derived from id */
    bool counted;          /* its first connect has been settled */
    bool dirty;            /* --rate: on the thread's list to flush */
    uint64_t due;          /* messages that should be sent by now */
    uint64_t sent;         /* bytes sent (--udp: datagrams) */
    uint64_t rcvd;         /* bytes received and verified */
    uint64_t top;          /* --udp: latest send number answered */
    uint64_t t_start;      /* when its current connect began */
    uint64_t *stamp;       /* closed loop, --udp: send time per in-flight slot */
    uint64_t *seq;         /* --udp: datagram in flight per slot, or UDP_* */
    struct ssl_st *ssl;    /* --tls: its TLS, on fd; NULL without */
    size_t retry_len;      /* --tls: length a stopped SSL_write must retry with; 0 = none */
    bool read_wants_write; /* --tls: SSL_read stopped on WANT_WRITE */
    bool write_wants_read; /* --tls: SSL_write stopped on WANT_READ */
};

/* One load thread with its own epoll loop. */
struct thread {
    pthread_t tid;                   /* the thread */
    int epfd;                        /* its epoll set */
    struct conn *conns;              /* its connections */
    uint32_t nconns;                 /* how many */
    uint32_t next_conn;              /* next one to connect at start-up */
    uint32_t connecting;             /* connects in flight */
    char *rbuf;                      /* read buffer */
    char *wbuf;                      /* send buffer, filled from the pattern */
    struct conn **dirty;             /* --rate: connections with newly due messages */
    uint32_t ndirty;                 /* entries in dirty */
    struct conn **retry;             /* --churn: failed slots to reconnect */
    uint32_t nretry;                 /* entries in retry */
    uint32_t *resend;                /* --udp: slots of one socket to send anew */
    uint32_t nresend;                /* entries in resend */
    uint64_t next_sweep;             /* --udp: when to look for lost datagrams next */
    struct mmsghdr *mm;              /* --udp: recvmmsg / sendmmsg vector */
    struct iovec *iov;               /* --udp: one buffer per entry of mm */
    double ns_per_msg;               /* --rate: this thread's interval between messages */
    uint64_t sched_next;             /* --rate: the next message of its schedule */
    struct ssl_ctx_st *tls;          /* --tls: its client context */
    struct ssl_session_st **tickets; /* --tls-resume: sessions given and not offered yet, newest last */
    uint32_t ntickets;               /* entries in tickets */
    uint32_t max_tickets;            /* its capacity */
    struct stats st;                 /* what it measured */
};

/* Options and shared run state. */
static struct {
    struct sockaddr_storage addr; /* --connect */
    socklen_t addr_len;           /* bytes of addr in use */
    const char *target;           /* --connect as given */
    enum mode mode;               /* what to do */
    uint32_t conns;               /* --connections, or --idle N */
    uint32_t idle;                /* --idle N */
    uint32_t burst;               /* --burst N */
    bool burst_parallel;          /* --burst-parallel: all connects at once */
    int64_t listen_drops;         /* --burst: ListenDrops during it, -1 unknown */
    int64_t listen_overflows;     /* --burst: ListenOverflows during it, -1 unknown */
    uint32_t threads;             /* --threads */
    uint32_t size;                /* --size: bytes per message */
    uint32_t pipeline;            /* --pipeline: messages in flight */
    double rate;                  /* --rate: messages per second, all told */
    double duration;              /* --duration, seconds */
    double warmup;                /* --warmup, seconds */
    uint64_t timeout_ns;          /* --timeout: when a datagram is lost */
    uint32_t batch;               /* --udp: datagrams per recvmmsg/sendmmsg */
    bool line;                    /* --line: messages end in '\n' */
    bool tls;                     /* --tls: over TLS */
    bool tls_resume;              /* --tls-resume: offer session tickets again */
    bool handshakes;              /* --handshakes: --churn over TLS, so named */
    atomic_int tls_told;          /* tls_what has been filled in */
    char tls_what[128];           /* --tls: version, cipher, group of a handshake */
    bool json;                    /* --json: one JSON object on stdout */
    char *pattern;                /* PAT_PERIOD + size printable bytes */
    uint64_t t_begin;             /* when the threads started */
    uint64_t t_measure;           /* start of the measured window */
    uint64_t t_end;               /* planned end of the window */
    uint64_t t_stop;              /* actual end (earlier on a signal) */
    atomic_int stop;              /* set by SIGINT/SIGTERM or at the end */
    atomic_uint settled;          /* first connects finished, either way */
    atomic_uint opened;           /* first connects that succeeded */
    atomic_uint reported;         /* mismatches described so far */
} g = {.conns = 50, .threads = 1, .size = 64, .pipeline = 1, .duration = 10, .timeout_ns = 200000000u};

/* ---- Histogram -------------------------------------------------------- */

static unsigned hist_index(uint64_t v)
{
    unsigned shift;

    if (v < 2 * HIST_SUB)
        return (unsigned)v;
    shift = (unsigned)(63 - __builtin_clzll(v)) - HIST_SUB_BITS;
    return shift * HIST_SUB + (unsigned)(v >> shift);
}

/* The highest value that lands in bucket i. */
static uint64_t hist_top(unsigned i)
{
    unsigned shift;
    uint64_t sub;

    if (i < 2 * HIST_SUB)
        return i;
    shift = i / HIST_SUB - 1;
    sub = i - shift * HIST_SUB;
    return ((sub + 1) << shift) - 1;
}

static void hist_add(struct hist *h, uint64_t v)
{
    h->bucket[hist_index(v)]++;
    h->count++;
    h->sum += v;
    if (v > h->max)
        h->max = v;
}

static void hist_merge(struct hist *into, const struct hist *h)
{
    unsigned i;

    for (i = 0; i < HIST_BUCKETS; i++)
        into->bucket[i] += h->bucket[i];
    into->count += h->count;
    into->sum += h->sum;
    if (h->max > into->max)
        into->max = h->max;
}

/* The value below which pct percent of the recorded values fall. */
static uint64_t hist_percentile(const struct hist *h, double pct)
{
    uint64_t want = (uint64_t)ceil(pct / 100.0 * (double)h->count), seen = 0;
    unsigned i;

    if (want == 0)
        want = 1;
    for (i = 0; i < HIST_BUCKETS; i++) {
        seen += h->bucket[i];
        if (seen >= want)
            return hist_top(i) < h->max ? hist_top(i) : h->max;
    }
    return h->max;
}

/* ---- Payload ---------------------------------------------------------- */

/* Printable bytes, never '\n', from a fixed generator: same in every run. */
static int pattern_init(void)
{
    size_t i, n = PAT_PERIOD + g.size;
    uint32_t x = 2463534242u;

    g.pattern = malloc(n);
    if (g.pattern == NULL)
        return -ENOMEM;
    for (i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        g.pattern[i] = (char)('!' + x % 94);
    }
    return 0;
}

/* The bytes of message m of c (its last byte is '\n' with --line). */
static const char *msg_bytes(const struct conn *c, uint64_t m)
{
    return g.pattern + (c->seed + m * PAT_STEP) % PAT_PERIOD;
}

/* Write the n stream bytes of c from offset off into dst. */
static void fill(char *dst, const struct conn *c, uint64_t off, size_t n)
{
    while (n > 0) {
        uint64_t m = off / g.size;
        size_t i = (size_t)(off % g.size);
        size_t len = g.size - i < n ? g.size - i : n;

        memcpy(dst, msg_bytes(c, m) + i, len);
        if (g.line && i + len == g.size)
            dst[len - 1] = '\n';
        dst += len;
        off += len;
        n -= len;
    }
}

/* Whether the n bytes at src are the stream of c from offset off. */
static bool verify(const struct conn *c, uint64_t off, const char *src, size_t n)
{
    while (n > 0) {
        uint64_t m = off / g.size;
        size_t i = (size_t)(off % g.size);
        size_t len = g.size - i < n ? g.size - i : n;
        size_t body = len;

        if (g.line && i + len == g.size) {
            if (src[len - 1] != '\n')
                return false;
            body--;
        }
        if (memcmp(src, msg_bytes(c, m) + i, body) != 0)
            return false;
        src += len;
        off += len;
        n -= len;
    }
    return true;
}

/* ---- Connections ------------------------------------------------------ */

static bool measuring(uint64_t now)
{
    return now >= g.t_measure && now < g.t_end;
}

static uint64_t epoll_tag(const struct conn *c)
{
    return (uint64_t)c->gen << 32 | c->index;
}

/* Register exactly events (EPOLLIN, EPOLLOUT) for c. */
static void conn_watch(struct thread *th, struct conn *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.u64 = epoll_tag(c)};

    if (events == c->events)
        return;
    epoll_ctl(th->epfd, c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev);
    c->events = events;
}

/* ---- TLS records (--tls) ---------------------------------------------- */

#ifdef BENCH_TLS

/* End c's TLS: a close_notify once the handshake is done (not waited for). */
static void tls_close(struct conn *c)
{
    ERR_clear_error();
    if (c->state == CS_ACTIVE)
        SSL_shutdown(c->ssl);
    SSL_free(c->ssl);
    ERR_clear_error();
    c->ssl = NULL;
    c->retry_len = 0;
    c->read_wants_write = c->write_wants_read = false;
}

/* Say why an OpenSSL call on c failed (the first few times). */
static void tls_report(const struct conn *c, const char *what)
{
    char why[160];

    if (atomic_fetch_add(&g.reported, 1) >= MAX_REPORTED) {
        ERR_clear_error();
        return;
    }
    snprintf(why, sizeof(why), "connection %u: %s", c->id, what);
    bench_tls_print_error("loadgen", why);
}

/* One SSL_write of n bytes at buf: bytes written (a record with partial
 * writes on); 0 when it stopped, to be retried with the same length once
 * the socket is ready (retry_len, write_wants_read); -1 when the server
 * closed, -2 on another failure. */
static ssize_t tls_write(struct conn *c, const char *buf, size_t n)
{
    size_t done = 0;
    int rc, e;

    ERR_clear_error();
    rc = SSL_write_ex(c->ssl, buf, n, &done);
    if (rc == 1) {
        c->retry_len = 0;
        c->write_wants_read = false;
        return (ssize_t)done;
    }
    e = SSL_get_error(c->ssl, rc);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
        c->retry_len = n;
        c->write_wants_read = e == SSL_ERROR_WANT_READ;
        return 0;
    }
    if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
        return -1;
    tls_report(c, "TLS write failed");
    return -2;
}

/* Encrypt and send the n bytes at buf, record by record, until OpenSSL
 * waits for the socket.  Bytes taken, or tls_write's -1 or -2. */
static ssize_t tls_send(struct conn *c, const char *buf, size_t n)
{
    size_t off = 0;

    while (off < n) {
        ssize_t w = tls_write(c, buf + off, n - off);
        if (w < 0)
            return w;
        if (w == 0)
            break;
        off += (size_t)w;
    }
    return (ssize_t)off;
}

#else /* !BENCH_TLS: --tls is refused, c->ssl is always NULL */

static void tls_close(struct conn *c)
{
    (void)c;
}

static ssize_t tls_send(struct conn *c, const char *buf, size_t n)
{
    (void)c, (void)buf, (void)n;
    return -2;
}

#endif /* BENCH_TLS */

static void conn_close(struct conn *c)
{
    if (c->ssl)
        tls_close(c);
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->events = 0;
    c->gen++;
}

/* Count the end of c's first connect attempt; with --idle, say once on
 * stderr when every connection has got that far. */
static void conn_settle(struct conn *c, bool ok)
{
    unsigned n;

    if (c->counted)
        return;
    c->counted = true;
    if (ok)
        atomic_fetch_add(&g.opened, 1);
    n = atomic_fetch_add(&g.settled, 1) + 1;
    if (g.mode == MODE_IDLE && n == g.conns)
        fprintf(stderr, "loadgen: idle: %u of %u connections open\n", atomic_load(&g.opened), g.conns);
}

/* c failed; count it in *counter.  Churn slots start over from the thread
 * loop (never from here: a connect that fails at once would recurse). */
static void conn_fail(struct thread *th, struct conn *c, uint64_t *counter)
{
    (*counter)++;
    if (c->state == CS_CONNECTING || c->state == CS_HANDSHAKE)
        th->connecting--;
    conn_settle(c, false);
    conn_close(c);
    c->state = CS_DEAD;
    if (g.mode == MODE_CHURN)
        th->retry[th->nretry++] = c;
}

/* The events c waits for, want bytes being due: readable always (the
 * echo); writable while due bytes wait for room, or while OpenSSL must
 * write before it reads (a write that must read waits for readable). */
static uint32_t conn_want(const struct conn *c, uint64_t want)
{
    bool more = c->sent < want && !c->write_wants_read;

    return EPOLLIN | (more || c->read_wants_write ? EPOLLOUT : 0);
}

/* Send what is due and not sent yet.  0, or -1 when c failed. */
static int conn_flush(struct thread *th, struct conn *c)
{
    uint64_t want = c->due * g.size;

    while (c->sent < want) {
        size_t n = want - c->sent < WBUF_SIZE ? (size_t)(want - c->sent) : WBUF_SIZE;
        ssize_t w;

        if (c->retry_len) /* TLS: a stopped write, the same bytes again */
            n = c->retry_len;
        fill(th->wbuf, c, c->sent, n);
        if (c->ssl) {
            w = tls_send(c, th->wbuf, n);
            if (w < 0) {
                conn_fail(th, c, w == -1 ? &th->st.err_closed : &th->st.err_io);
                return -1;
            }
            c->sent += (uint64_t)w;
            if ((size_t)w < n)
                break;
            continue;
        }
        w = send(c->fd, th->wbuf, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN)
            break;
        if (w < 0) {
            conn_fail(th, c, errno == EPIPE || errno == ECONNRESET ? &th->st.err_closed : &th->st.err_io);
            return -1;
        }
        c->sent += (uint64_t)w;
        if ((size_t)w < n)
            break;
    }
    conn_watch(th, c, conn_want(c, want));
    return 0;
}

/* When message m of c was sent (closed loop, churn) or due (open loop). */
static uint64_t msg_time(const struct thread *th, const struct conn *c, uint64_t m)
{
    if (g.mode == MODE_OPEN)
        return g.t_begin + (uint64_t)((double)(m * th->nconns + c->index) * th->ns_per_msg);
    if (g.mode == MODE_CHURN)
        return c->t_start;
    return c->stamp[m % g.pipeline];
}

static void conn_connect(struct thread *th, struct conn *c);

/* --churn: one cycle done; count it and start the next. */
static void churn_next(struct thread *th, struct conn *c, bool counted)
{
    if (counted)
        th->st.conns++;
    conn_close(c);
    c->state = CS_DEAD;
    c->id += g.conns;
    conn_connect(th, c);
}

/* Messages [from, to) of c came back whole. */
static void conn_complete(struct thread *th, struct conn *c, uint64_t from, uint64_t to)
{
    uint64_t now = bench_now_ns(), m;
    bool on = measuring(now);

    for (m = from; m < to; m++) {
        uint64_t t = msg_time(th, c, m);
        if (on) {
            hist_add(&th->st.hist, now > t ? now - t : 0);
            th->st.msgs++;
        }
        if (g.mode == MODE_CLOSED)
            c->stamp[m % g.pipeline] = now;
    }
    if (g.mode == MODE_CLOSED) {
        c->due += to - from;
        conn_flush(th, c);
    } else if (g.mode == MODE_CHURN) {
        churn_next(th, c, on);
    }
}

static void report_mismatch(const struct conn *c, uint64_t off, ssize_t n)
{
    if (atomic_fetch_add(&g.reported, 1) >= MAX_REPORTED)
        return;
    if (c->rcvd + (uint64_t)n > c->sent)
        fprintf(stderr, "loadgen: connection %u: %zd bytes at offset %llu, only %llu sent\n", c->id, n,
                (unsigned long long)off, (unsigned long long)c->sent);
    else
        fprintf(stderr, "loadgen: connection %u: wrong bytes within offsets %llu..%llu\n", c->id,
                (unsigned long long)off, (unsigned long long)(off + (uint64_t)n));
}

/* n bytes of c's echo at buf: verify them, complete the messages. */
static void conn_got(struct thread *th, struct conn *c, const char *buf, size_t n)
{
    uint64_t before, after;

    if (c->rcvd + n > c->sent || !verify(c, c->rcvd, buf, n)) {
        report_mismatch(c, c->rcvd, (ssize_t)n);
        conn_fail(th, c, &th->st.err_mismatch);
        return;
    }
    before = c->rcvd / g.size;
    c->rcvd += n;
    after = c->rcvd / g.size;
    if (after > before)
        conn_complete(th, c, before, after);
}

/* One read of c's echo, verified. */
static void conn_read(struct thread *th, struct conn *c)
{
    ssize_t r = read(c->fd, th->rbuf, RBUF_SIZE);

    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (r <= 0) {
        conn_fail(th, c, r == 0 || errno == ECONNRESET ? &th->st.err_closed : &th->st.err_io);
        return;
    }
    conn_got(th, c, th->rbuf, (size_t)r);
}

/* ---- Datagrams (--udp) ------------------------------------------------ */

/* Datagram seq of c into dst (g.size bytes): the number, in host order (it
 * comes back to this process), then the pattern of its send number. */
static void udp_fill(char *dst, const struct conn *c, uint64_t seq)
{
    memcpy(dst, &seq, UDP_HDR);
    memcpy(dst + UDP_HDR, msg_bytes(c, seq >> UDP_SLOT_BITS) + UDP_HDR, g.size - UDP_HDR);
}

static void udp_report(const struct conn *c, uint64_t seq, size_t len, const char *why)
{
    if (atomic_fetch_add(&g.reported, 1) >= MAX_REPORTED)
        return;
    fprintf(stderr, "loadgen: socket %u: datagram %llu (slot %u, %zu bytes): %s\n", c->id,
            (unsigned long long)(seq >> UDP_SLOT_BITS), (unsigned)(seq & ((1u << UDP_SLOT_BITS) - 1)), len,
            why);
}

/* Hand the n datagrams prepared in th->mm to the kernel.  Returns how many
 * it took or refused for good; it had no room for the others (EAGAIN: a
 * full send buffer, or a Unix server's full queue).  A refused one stays in
 * flight unanswered: the sweep counts it lost and sends another. */
static uint32_t udp_sendmmsg(struct thread *th, struct conn *c, uint32_t n)
{
    uint32_t i = 0;

    while (i < n) {
        int w = sendmmsg(c->fd, th->mm + i, n - i, MSG_NOSIGNAL);
        if (w > 0) {
            i += (uint32_t)w;
        } else if (errno == EAGAIN || errno == ENOBUFS) {
            break;
        } else if (errno != EINTR) {
            /* ECONNREFUSED: an ICMP error of an earlier datagram, no one
             * listens (yet). */
            if (errno == ECONNREFUSED)
                th->st.err_closed++;
            else
                th->st.err_io++;
            i++;
        }
    }
    return i;
}

/* The kernel has no room for the datagrams of th->resend from index from
 * on: they wait, unnumbered, until c is writable. */
static void udp_block(struct thread *th, struct conn *c, uint32_t from)
{
    uint32_t i;

    for (i = from; i < th->nresend; i++)
        c->seq[th->resend[i]] = UDP_UNSENT;
    th->nresend = 0;
    conn_watch(th, c, EPOLLIN | EPOLLOUT);
}

/* Send a new datagram from every slot listed in th->resend. */
static void udp_send(struct thread *th, struct conn *c)
{
    uint64_t now = bench_now_ns();
    uint32_t done = 0, i;

    while (done < th->nresend) {
        uint32_t n = th->nresend - done < g.batch ? th->nresend - done : g.batch;
        for (i = 0; i < n; i++) {
            uint32_t slot = th->resend[done + i];
            uint64_t seq = ((c->sent + i) << UDP_SLOT_BITS) | slot;
            char *p = th->wbuf + (size_t)i * g.size;

            c->seq[slot] = seq;
            c->stamp[slot] = now;
            udp_fill(p, c, seq);
            th->iov[i] = (struct iovec){.iov_base = p, .iov_len = g.size};
            th->mm[i].msg_hdr = (struct msghdr){.msg_iov = &th->iov[i], .msg_iovlen = 1};
        }
        i = udp_sendmmsg(th, c, n);
        c->sent += i;
        if (i < n) {
            udp_block(th, c, done + i);
            return;
        }
        done += n;
    }
    th->nresend = 0;
}

/* c is writable again: send what it had no room for. */
static void udp_unblock(struct thread *th, struct conn *c)
{
    uint32_t slot;

    for (slot = 0; slot < g.pipeline; slot++)
        if (c->seq[slot] == UDP_UNSENT)
            th->resend[th->nresend++] = slot;
    conn_watch(th, c, EPOLLIN);
    udp_send(th, c);
}

/* Settle slot of c (answered or lost) and queue a new datagram for it. */
static void udp_settle(struct thread *th, struct conn *c, uint32_t slot)
{
    c->seq[slot] = UDP_IDLE;
    th->resend[th->nresend++] = slot;
}

/* One echoed datagram of c: len bytes at p (flags: its msg_flags). */
static void udp_answer(struct thread *th, struct conn *c, const char *p, size_t len, int flags, uint64_t now)
{
    uint64_t seq = 0, n;
    uint32_t slot;

    if (len >= UDP_HDR)
        memcpy(&seq, p, UDP_HDR);
    n = seq >> UDP_SLOT_BITS;
    slot = (uint32_t)(seq & ((1u << UDP_SLOT_BITS) - 1));
    if (len < UDP_HDR || slot >= g.pipeline || n >= c->sent) {
        udp_report(c, seq, len, "never sent");
        th->st.err_mismatch++;
        return;
    }
    if (c->seq[slot] != seq) {
        th->st.late++; /* given up as lost already, or echoed twice */
        return;
    }
    if (n < c->top)
        th->st.reordered++;
    else
        c->top = n;
    if (len != g.size || (flags & MSG_TRUNC) ||
        memcmp(p + UDP_HDR, msg_bytes(c, n) + UDP_HDR, len - UDP_HDR)) {
        udp_report(c, seq, len, "wrong bytes");
        th->st.err_mismatch++;
    } else if (measuring(now)) {
        hist_add(&th->st.hist, now - c->stamp[slot]);
        th->st.msgs++;
    }
    udp_settle(th, c, slot);
}

/* c is readable: take a batch of echoes, send their successors in one go. */
static void udp_read(struct thread *th, struct conn *c)
{
    uint64_t now;
    uint32_t i;
    int n;

    for (i = 0; i < g.batch; i++) {
        th->iov[i] = (struct iovec){.iov_base = th->rbuf + (size_t)i * g.size, .iov_len = g.size};
        th->mm[i].msg_hdr = (struct msghdr){.msg_iov = &th->iov[i], .msg_iovlen = 1};
    }
    n = recvmmsg(c->fd, th->mm, g.batch, MSG_DONTWAIT, NULL);
    if (n < 0) {
        if (errno == ECONNREFUSED)
            th->st.err_closed++;
        else if (errno != EAGAIN && errno != EINTR)
            th->st.err_io++;
        return;
    }
    now = bench_now_ns();
    for (i = 0; i < (uint32_t)n; i++)
        udp_answer(th, c, th->rbuf + (size_t)i * g.size, th->mm[i].msg_len, th->mm[i].msg_hdr.msg_flags, now);
    udp_send(th, c);
}

/* c is ready: fill every slot. */
static void udp_start(struct thread *th, struct conn *c)
{
    uint32_t i;

    conn_watch(th, c, EPOLLIN);
    for (i = 0; i < g.pipeline; i++)
        udp_settle(th, c, i);
    udp_send(th, c);
}

/* Count the datagrams older than --timeout lost and send new ones. */
static void udp_sweep(struct thread *th, uint64_t now)
{
    uint32_t i, slot;

    for (i = 0; i < th->nconns; i++) {
        struct conn *c = &th->conns[i];
        if (c->state != CS_ACTIVE)
            continue;
        for (slot = 0; slot < g.pipeline; slot++) {
            if (c->seq[slot] < UDP_UNSENT && now - c->stamp[slot] >= g.timeout_ns) {
                th->st.lost++;
                udp_settle(th, c, slot);
            }
        }
        if (th->nresend > 0)
            udp_send(th, c);
    }
    th->next_sweep = now + (g.timeout_ns / 4 > 1000000u ? g.timeout_ns / 4 : 1000000u);
}

/* c's connect succeeded: start its traffic. */
static void conn_established(struct thread *th, struct conn *c)
{
    uint32_t i;

    c->state = CS_ACTIVE;
    conn_settle(c, true);
    if (g.mode == MODE_IDLE) {
        conn_watch(th, c, EPOLLIN);
        return;
    }
    if (g.mode == MODE_UDP) {
        udp_start(th, c);
        return;
    }
    if (g.mode == MODE_CLOSED) {
        uint64_t now = bench_now_ns();
        for (i = 0; i < g.pipeline; i++)
            c->stamp[i] = now;
        c->due = g.pipeline;
    } else if (g.mode == MODE_CHURN) {
        c->due = 1;
    }
    conn_flush(th, c);
}

/* ---- TLS connections (--tls) ------------------------------------------ */

static void thread_connect_more(struct thread *th);

#ifdef BENCH_TLS

/* Note what the first handshake agreed on: version, cipher, group. */
static void tls_tell(SSL *ssl)
{
    const char *group = "";

    if (atomic_exchange(&g.tls_told, 1))
        return;
#ifdef SSL_get_negotiated_group
    group = OBJ_nid2sn(SSL_get_negotiated_group(ssl));
#endif
    snprintf(g.tls_what, sizeof(g.tls_what), "%s %s %s", SSL_get_version(ssl), SSL_get_cipher_name(ssl),
             group ? group : "");
}

/* One SSL_read of c into buf: bytes read; 0 when OpenSSL waits for the
 * socket (see read_wants_write); -1 at the server's close (close_notify,
 * EOF or reset), -2 on another failure. */
static ssize_t tls_read_once(struct conn *c, char *buf, size_t n)
{
    size_t got = 0;
    int rc, e;

    ERR_clear_error();
    rc = SSL_read_ex(c->ssl, buf, n, &got);
    c->read_wants_write = false;
    if (rc == 1)
        return (ssize_t)got;
    e = SSL_get_error(c->ssl, rc);
    if (e == SSL_ERROR_WANT_READ)
        return 0;
    if (e == SSL_ERROR_WANT_WRITE) {
        c->read_wants_write = true;
        return 0;
    }
    if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
        ERR_clear_error();
        return -1;
    }
    tls_report(c, "TLS read failed");
    return -2;
}

/* c is readable (or writable, for a read that must write): SSL_read its
 * echo, verified, and on while OpenSSL holds more of it. */
static void tls_read(struct thread *th, struct conn *c)
{
    uint32_t gen = c->gen;

    do {
        ssize_t r = tls_read_once(c, th->rbuf, RBUF_SIZE);
        if (r < 0) {
            conn_fail(th, c, r == -1 ? &th->st.err_closed : &th->st.err_io);
            return;
        }
        if (r == 0)
            break;
        conn_got(th, c, th->rbuf, (size_t)r);
    } while (c->gen == gen && c->state == CS_ACTIVE && SSL_has_pending(c->ssl));
    if (c->gen == gen && c->state == CS_ACTIVE)
        conn_watch(th, c, conn_want(c, c->due * g.size));
}

/* c's handshake is done: count it, start the traffic. */
static void tls_done(struct thread *th, struct conn *c)
{
    if (measuring(bench_now_ns())) {
        th->st.handshakes++;
        if (SSL_session_reused(c->ssl))
            th->st.resumed++;
    }
    tls_tell(c->ssl);
    th->connecting--;
    conn_established(th, c);
    thread_connect_more(th);
}

/* One step of c's handshake, as far as the socket lets it go. */
static void tls_handshake(struct thread *th, struct conn *c)
{
    int rc, e;

    ERR_clear_error();
    rc = SSL_do_handshake(c->ssl);
    if (rc == 1) {
        tls_done(th, c);
        return;
    }
    e = SSL_get_error(c->ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        conn_watch(th, c, e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT);
        return;
    }
    tls_report(c, "TLS handshake failed");
    conn_fail(th, c, &th->st.err_connect);
    thread_connect_more(th);
}

/* c is connected: its client handshake starts, offering the newest unused
 * session of its thread if it has one (--tls-resume). */
static void tls_begin(struct thread *th, struct conn *c)
{
    c->state = CS_HANDSHAKE;
    c->ssl = SSL_new(th->tls);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
        tls_report(c, "SSL_new");
        conn_fail(th, c, &th->st.err_connect);
        return;
    }
    SSL_set_connect_state(c->ssl);
    while (th->ntickets > 0) { /* the newest ticket still good */
        SSL_SESSION *ticket = th->tickets[--th->ntickets];
        bool offered = SSL_SESSION_is_resumable(ticket) && SSL_set_session(c->ssl, ticket) == 1;
        SSL_SESSION_free(ticket);
        if (offered)
            break;
    }
    tls_handshake(th, c);
}

#else

static void tls_read(struct thread *th, struct conn *c)
{
    conn_fail(th, c, &th->st.err_io);
}

static void tls_handshake(struct thread *th, struct conn *c)
{
    conn_fail(th, c, &th->st.err_connect);
}

static void tls_begin(struct thread *th, struct conn *c)
{
    conn_fail(th, c, &th->st.err_connect);
}

#endif /* BENCH_TLS */

/* c's socket is connected: its TLS handshake begins, or its traffic. */
static void conn_open(struct thread *th, struct conn *c)
{
    if (g.tls) {
        tls_begin(th, c);
        return;
    }
    th->connecting--;
    conn_established(th, c);
}

/* --udp: a datagram socket; a Unix one is bound to an autobind name, or the
 * server could not answer it. */
static int udp_socket(void)
{
    struct sockaddr_un any = {.sun_family = AF_UNIX};
    int fd = socket(g.addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd >= 0 && g.addr.ss_family == AF_UNIX &&
        bind(fd, (struct sockaddr *)&any, sizeof(sa_family_t)) < 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static int conn_socket(void)
{
    int fd, flags = SOCK_CLOEXEC;

    if (g.mode == MODE_UDP)
        return udp_socket();
    /* A Unix connect does not wait for the server: make it blocking. */
    if (g.addr.ss_family != AF_UNIX)
        flags |= SOCK_NONBLOCK;
    fd = socket(g.addr.ss_family, SOCK_STREAM | flags, 0);
    if (fd >= 0 && g.addr.ss_family != AF_UNIX)
        bench_set_nodelay(fd);
    return fd;
}

static void conn_connect(struct thread *th, struct conn *c)
{
    if (atomic_load(&g.stop))
        return;
    c->fd = conn_socket();
    /* With --rate, due already counts the schedule from the start. */
    if (g.mode != MODE_OPEN)
        c->due = 0;
    c->sent = c->rcvd = 0;
    c->seed = (uint32_t)(((uint64_t)c->id * 2654435761u) % PAT_PERIOD);
    c->t_start = bench_now_ns();
    c->state = CS_CONNECTING;
    th->connecting++;
    if (c->fd < 0) {
        conn_fail(th, c, &th->st.err_connect);
        return;
    }
    if (connect(c->fd, (struct sockaddr *)&g.addr, g.addr_len) == 0) {
        if (g.addr.ss_family == AF_UNIX)
            fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
        conn_open(th, c);
    } else if (errno == EINPROGRESS) {
        conn_watch(th, c, EPOLLOUT);
    } else {
        conn_fail(th, c, &th->st.err_connect);
    }
}

/* Start connects until MAX_CONNECTING are in flight. */
static void thread_connect_more(struct thread *th)
{
    while (th->next_conn < th->nconns && th->connecting < MAX_CONNECTING && !atomic_load(&g.stop))
        conn_connect(th, &th->conns[th->next_conn++]);
}

/* A connect in progress finished, one way or the other. */
static void conn_connected(struct thread *th, struct conn *c)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err != 0)
        conn_fail(th, c, &th->st.err_connect);
    else
        conn_open(th, c);
    thread_connect_more(th);
}

/* An established TLS connection is ready: read what the readiness allows
 * (a read that must write goes on when writable), then write (a write that
 * must read goes on when readable). */
static void tls_event(struct thread *th, struct conn *c, uint32_t events)
{
    uint32_t gen = c->gen;
    bool in = events & (EPOLLIN | EPOLLERR | EPOLLHUP), out = events & (EPOLLOUT | EPOLLERR | EPOLLHUP);

    if (c->state == CS_ACTIVE && (c->read_wants_write ? out : in))
        tls_read(th, c);
    if (c->gen == gen && c->state == CS_ACTIVE && (c->write_wants_read ? in : out))
        conn_flush(th, c);
}

static void conn_event(struct thread *th, uint64_t tag, uint32_t events)
{
    struct conn *c = &th->conns[(uint32_t)tag];
    uint32_t gen = (uint32_t)(tag >> 32);

    if (c->gen != gen)
        return;
    if (c->state == CS_CONNECTING) {
        conn_connected(th, c);
        return;
    }
    if (c->state == CS_HANDSHAKE) {
        tls_handshake(th, c);
        return;
    }
    if (c->state == CS_ACTIVE && g.mode == MODE_UDP) {
        if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
            udp_read(th, c);
        if (events & EPOLLOUT)
            udp_unblock(th, c);
        return;
    }
    if (c->ssl) {
        tls_event(th, c, events);
        return;
    }
    if (c->state == CS_ACTIVE && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
        conn_read(th, c);
    if (c->gen == gen && c->state == CS_ACTIVE && (events & EPOLLOUT))
        conn_flush(th, c);
}

/* ---- Threads ---------------------------------------------------------- */

/* --rate: hand out the messages due by now; returns when the next is due. */
static uint64_t thread_schedule(struct thread *th, uint64_t now)
{
    uint64_t kdue = (uint64_t)((double)(now - g.t_begin) / th->ns_per_msg) + 1;
    uint32_t i;

    for (; th->sched_next < kdue; th->sched_next++) {
        struct conn *c = &th->conns[th->sched_next % th->nconns];
        c->due++;
        if (!c->dirty && c->state == CS_ACTIVE) {
            c->dirty = true;
            th->dirty[th->ndirty++] = c;
        }
    }
    for (i = 0; i < th->ndirty; i++) {
        th->dirty[i]->dirty = false;
        if (th->dirty[i]->state == CS_ACTIVE)
            conn_flush(th, th->dirty[i]);
    }
    th->ndirty = 0;
    return g.t_begin + (uint64_t)((double)th->sched_next * th->ns_per_msg);
}

/* How long to sleep in epoll: until the next due message, the end, or a
 * tick at most. */
static struct timespec thread_timeout(struct thread *th, uint64_t now)
{
    uint64_t wake = now + TICK_NS, ns;

    if (g.t_end < wake)
        wake = g.t_end;
    if (g.mode == MODE_UDP && th->next_sweep < wake)
        wake = th->next_sweep;
    if (g.mode == MODE_OPEN) {
        uint64_t next = thread_schedule(th, now);
        if (next < wake)
            wake = next;
    }
    ns = wake > now ? wake - now : 0;
    return (struct timespec){.tv_sec = (time_t)(ns / 1000000000u), .tv_nsec = (long)(ns % 1000000000u)};
}

/* --churn: reconnect the slots that failed.  Returns whether any did. */
static bool thread_retry(struct thread *th)
{
    uint32_t i, n = th->nretry;

    /* A slot that fails again is queued at an index already consumed. */
    th->nretry = 0;
    for (i = 0; i < n; i++)
        conn_connect(th, th->retry[i]);
    return n > 0;
}

/* Count the open connections and close all.  --idle and --burst reset them
 * instead of closing them gracefully: thousands of TIME_WAIT sockets left behind would
 * tie up ports for a minute. */
static void thread_finish(struct thread *th)
{
    struct linger abort_close = {.l_onoff = 1, .l_linger = 0};
    uint32_t i;

    for (i = 0; i < th->nconns; i++) {
        struct conn *c = &th->conns[i];
        if (c->state == CS_ACTIVE)
            th->st.open++;
        if ((g.mode == MODE_IDLE || g.mode == MODE_BURST) && c->fd >= 0)
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &abort_close, sizeof(abort_close));
        conn_close(c);
    }
}

static void *thread_main(void *arg)
{
    struct thread *th = arg;
    struct epoll_event evs[MAX_EVENTS];

    thread_connect_more(th);
    for (;;) {
        uint64_t now = bench_now_ns();
        struct timespec ts;
        int i, n;

        if (now >= g.t_end || atomic_load(&g.stop))
            break;
        if (g.mode == MODE_UDP && now >= th->next_sweep)
            udp_sweep(th, now);
        ts = thread_timeout(th, now);
        if (thread_retry(th))
            ts = (struct timespec){0, 0};
        n = epoll_pwait2(th->epfd, evs, MAX_EVENTS, &ts, NULL);
        for (i = 0; i < n; i++)
            conn_event(th, evs[i].data.u64, evs[i].events);
    }
    thread_finish(th);
    return NULL;
}

#ifdef BENCH_TLS

/* --tls-resume: a session the server gave (a TLS 1.3 ticket), kept by the
 * thread whose context it came through; when it holds as many as it can,
 * the oldest goes. */
static int tls_new_session(SSL *ssl, SSL_SESSION *session)
{
    struct thread *th = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));

    if (th->ntickets == th->max_tickets) {
        SSL_SESSION_free(th->tickets[0]);
        memmove(th->tickets, th->tickets + 1, (th->ntickets - 1) * sizeof(*th->tickets));
        th->ntickets--;
    }
    th->tickets[th->ntickets++] = session;
    return 1; /* the reference is the thread's now */
}

/* --tls: the thread's own client context. */
static int tls_thread_init(struct thread *th)
{
    if (!g.tls)
        return 0;
    th->max_tickets = 2 * th->nconns + 16;
    th->tickets = calloc(th->max_tickets, sizeof(*th->tickets));
    th->tls = bench_tls_client_ctx(g.tls_resume, tls_new_session);
    if (th->tls == NULL || th->tickets == NULL)
        return -1;
    SSL_CTX_set_app_data(th->tls, th);
    return 0;
}

static void tls_thread_deinit(struct thread *th)
{
    while (th->ntickets > 0)
        SSL_SESSION_free(th->tickets[--th->ntickets]);
    free(th->tickets);
    SSL_CTX_free(th->tls);
}

#else

static int tls_thread_init(struct thread *th)
{
    (void)th;
    return 0;
}

static void tls_thread_deinit(struct thread *th)
{
    (void)th;
}

#endif /* BENCH_TLS */

/* Give thread t its share of connections: global ids t, t+T, t+2T... */
static int thread_init(struct thread *th, uint32_t t)
{
    uint32_t i, stamps = g.mode == MODE_CLOSED || g.mode == MODE_UDP ? g.pipeline : 0;
    uint32_t seqs = g.mode == MODE_UDP ? g.pipeline : 0;
    uint64_t *stamp, *seq;

    th->nconns = (g.conns - t + g.threads - 1) / g.threads;
    th->epfd = epoll_create1(EPOLL_CLOEXEC);
    th->conns = calloc(th->nconns, sizeof(*th->conns));
    th->dirty = calloc(th->nconns, sizeof(*th->dirty));
    th->retry = calloc(th->nconns, sizeof(*th->retry));
    stamp = calloc((size_t)th->nconns * stamps + 1, sizeof(*stamp));
    seq = calloc((size_t)th->nconns * seqs + 1, sizeof(*seq));
    th->resend = calloc(seqs + 1, sizeof(*th->resend));
    th->mm = calloc(UDP_BATCH, sizeof(*th->mm));
    th->iov = calloc(UDP_BATCH, sizeof(*th->iov));
    th->rbuf = malloc(RBUF_SIZE);
    th->wbuf = malloc(WBUF_SIZE);
    if (th->conns) {
        th->conns[0].stamp = stamp;
        th->conns[0].seq = seq;
    }
    if (th->epfd < 0 || !th->conns || !th->dirty || !th->retry || !stamp || !seq || !th->resend || !th->mm ||
        !th->iov || !th->rbuf || !th->wbuf || tls_thread_init(th) < 0)
        return -ENOMEM;
    for (i = 0; i < th->nconns; i++) {
        th->conns[i] = (struct conn){.fd = -1, .index = i, .id = t + i * g.threads};
        th->conns[i].stamp = stamp + (size_t)i * stamps;
        th->conns[i].seq = seq + (size_t)i * seqs;
    }
    if (g.mode == MODE_OPEN)
        th->ns_per_msg = 1e9 * g.threads / g.rate;
    return 0;
}

static void thread_deinit(struct thread *th)
{
    tls_thread_deinit(th);
    if (th->epfd >= 0)
        close(th->epfd);
    if (th->conns) {
        free(th->conns[0].stamp);
        free(th->conns[0].seq);
    }
    free(th->conns);
    free(th->dirty);
    free(th->retry);
    free(th->resend);
    free(th->mm);
    free(th->iov);
    free(th->rbuf);
    free(th->wbuf);
}

/* ---- Bursts (--burst) ------------------------------------------------ */

/* Take ListenDrops and ListenOverflows from the TcpExt lines: names then
 * values, in the same order. */
static void netstat_pick(char *names, char *values, int64_t *drops, int64_t *overflows)
{
    char *sn, *sv;
    char *n = strtok_r(names, " \n", &sn), *v = strtok_r(values, " \n", &sv);

    while (n != NULL && v != NULL) {
        if (strcmp(n, "ListenDrops") == 0)
            *drops = strtoll(v, NULL, 10);
        else if (strcmp(n, "ListenOverflows") == 0)
            *overflows = strtoll(v, NULL, 10);
        n = strtok_r(NULL, " \n", &sn);
        v = strtok_r(NULL, " \n", &sv);
    }
}

/* The machine's ListenDrops and ListenOverflows counters (this network
 * namespace).  0, or -1 when /proc/net/netstat does not have them. */
static int netstat_read(int64_t *drops, int64_t *overflows)
{
    static char names[16384], values[16384];
    FILE *f = fopen("/proc/net/netstat", "r");

    *drops = *overflows = -1;
    if (f == NULL)
        return -1;
    while (fgets(names, sizeof(names), f) != NULL && fgets(values, sizeof(values), f) != NULL) {
        if (strncmp(names, "TcpExt:", 7) == 0 && strncmp(values, "TcpExt:", 7) == 0) {
            netstat_pick(names, values, drops, overflows);
            break;
        }
    }
    fclose(f);
    return *drops >= 0 && *overflows >= 0 ? 0 : -1;
}

/* A socket for one connect of the burst.  A blocking one gives up at the
 * end of --duration (SO_SNDTIMEO bounds a blocking connect). */
static int burst_socket(bool blocking, uint64_t now)
{
    int fd = socket(g.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | (blocking ? 0 : SOCK_NONBLOCK), 0);
    uint64_t left = g.t_end > now ? g.t_end - now : 1000;
    struct timeval tv = {.tv_sec = (time_t)(left / 1000000000u),
                         .tv_usec = (long)(left % 1000000000u / 1000u)};

    if (tv.tv_sec == 0 && tv.tv_usec == 0)
        tv.tv_usec = 1;
    if (fd >= 0 && blocking)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return fd;
}

/* c's connect, begun at t0, ended with err (0: open, and held). */
static void burst_settle(struct thread *th, struct conn *c, int err, uint64_t t0)
{
    if (err != 0) {
        th->st.err_connect++;
        conn_close(c);
        c->state = CS_DEAD;
        return;
    }
    c->state = CS_ACTIVE;
    th->st.conns++;
    hist_add(&th->st.hist, bench_now_ns() - t0);
}

/* Back to back: each blocking connect returns before the next begins. */
static void burst_serial(struct thread *th)
{
    uint32_t i;

    for (i = 0; i < th->nconns && !atomic_load(&g.stop); i++) {
        struct conn *c = &th->conns[i];
        uint64_t t0 = bench_now_ns();

        if (t0 >= g.t_end)
            break;
        c->fd = burst_socket(true, t0);
        if (c->fd < 0)
            break;
        if (connect(c->fd, (struct sockaddr *)&g.addr, g.addr_len) == 0)
            burst_settle(th, c, 0, t0);
        else
            burst_settle(th, c, errno, t0);
    }
    th->st.err_connect += th->nconns - i;
}

/* --burst-parallel: start every connect now, without waiting. */
static uint32_t burst_start_all(struct thread *th)
{
    uint32_t i, pending = 0;

    for (i = 0; i < th->nconns; i++) {
        struct conn *c = &th->conns[i];

        c->t_start = bench_now_ns();
        c->fd = burst_socket(false, c->t_start);
        if (c->fd < 0) {
            th->st.err_connect += th->nconns - i;
            break;
        }
        if (connect(c->fd, (struct sockaddr *)&g.addr, g.addr_len) == 0) {
            burst_settle(th, c, 0, c->t_start);
        } else if (errno == EINPROGRESS) {
            c->state = CS_CONNECTING;
            conn_watch(th, c, EPOLLOUT);
            pending++;
        } else {
            burst_settle(th, c, errno, c->t_start);
        }
    }
    return pending;
}

/* A connect of the parallel burst finished: settle it, stop watching it. */
static void burst_connected(struct thread *th, uint64_t tag)
{
    struct conn *c = &th->conns[(uint32_t)tag];
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    epoll_ctl(th->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    c->events = 0;
    burst_settle(th, c, err, c->t_start);
}

/* Every connect at once, then wait (until --duration at most) for all. */
static void burst_parallel(struct thread *th)
{
    struct epoll_event evs[MAX_EVENTS];
    uint32_t pending = burst_start_all(th);

    while (pending > 0 && !atomic_load(&g.stop)) {
        uint64_t now = bench_now_ns();
        struct timespec ts = {0, TICK_NS};
        int i, n;

        if (now >= g.t_end)
            break;
        n = epoll_pwait2(th->epfd, evs, MAX_EVENTS, &ts, NULL);
        for (i = 0; i < n; i++, pending--)
            burst_connected(th, evs[i].data.u64);
    }
    th->st.err_connect += pending;
}

/* The whole burst, between two readings of the listen drop counters. */
static void burst_run(struct thread *th)
{
    int64_t d0, o0, d1, o1;
    bool known = netstat_read(&d0, &o0) == 0;

    g.t_begin = g.t_measure = bench_now_ns();
    g.t_end = g.t_begin + (uint64_t)(g.duration * 1e9);
    if (g.burst_parallel)
        burst_parallel(th);
    else
        burst_serial(th);
    g.t_stop = bench_now_ns();
    known = netstat_read(&d1, &o1) == 0 && known;
    g.listen_drops = known ? d1 - d0 : -1;
    g.listen_overflows = known ? o1 - o0 : -1;
    thread_finish(th);
}

/* ---- Report ----------------------------------------------------------- */

static const char *mode_name(void)
{
    static const char *const names[] = {"closed", "open", "churn", "idle", "udp", "burst"};

    return g.handshakes ? "handshakes" : names[g.mode];
}

static double us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

/* CPU time used by the whole process, in percent of one core over the run
 * (warm-up included): near 100 per thread means the loadgen was the limit. */
static double cpu_percent(void)
{
    struct rusage ru;
    double cpu, wall = (double)(g.t_stop - g.t_begin) / 1e9;

    if (getrusage(RUSAGE_SELF, &ru) < 0 || wall <= 0)
        return 0;
    cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
          (double)ru.ru_stime.tv_usec / 1e6;
    return 100.0 * cpu / wall;
}

static void report_json(const struct stats *s, double secs)
{
    const struct hist *h = &s->hist;
    uint64_t errs = s->err_connect + s->err_mismatch + s->err_closed + s->err_io;

    printf("{\"mode\":\"%s\",\"target\":\"%s\",\"threads\":%u,\"connections\":%u,\"size\":%u,"
           "\"pipeline\":%u,\"line\":%s,\"rate\":%.0f,\"warmup_s\":%.3f,\"duration_s\":%.3f,",
           mode_name(), g.target, g.threads, g.conns, g.size, g.pipeline, g.line ? "true" : "false", g.rate,
           g.warmup, secs);
    printf("\"msgs\":%llu,\"msgs_per_s\":%.1f,\"mb_per_s\":%.3f,\"conns\":%llu,\"conns_per_s\":%.1f,"
           "\"open\":%llu,",
           (unsigned long long)s->msgs, s->msgs / secs, s->msgs * (double)g.size / 1e6 / secs,
           (unsigned long long)s->conns, s->conns / secs, (unsigned long long)s->open);
    printf("\"lost\":%llu,\"late\":%llu,\"reordered\":%llu,\"timeout_ms\":%.0f,", (unsigned long long)s->lost,
           (unsigned long long)s->late, (unsigned long long)s->reordered, (double)g.timeout_ns / 1e6);
    if (g.mode == MODE_BURST)
        printf("\"burst\":%u,\"parallel\":%s,\"listen_drops\":%lld,\"listen_overflows\":%lld,", g.conns,
               g.burst_parallel ? "true" : "false", (long long)g.listen_drops, (long long)g.listen_overflows);
    if (g.tls)
        printf("\"tls\":\"%s\",\"tls_resume\":%s,\"handshakes\":%llu,\"handshakes_per_s\":%.1f,\"resumed\":%"
               "llu,",
               g.tls_what, g.tls_resume ? "true" : "false", (unsigned long long)s->handshakes,
               s->handshakes / secs, (unsigned long long)s->resumed);
    printf(
        "\"latency_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f,\"mean\":%.1f},",
        us(hist_percentile(h, 50)), us(hist_percentile(h, 90)), us(hist_percentile(h, 99)),
        us(hist_percentile(h, 99.9)), us(h->max), h->count ? us(h->sum / h->count) : 0.0);
    printf("\"errors\":{\"connect\":%llu,\"mismatch\":%llu,\"closed\":%llu,\"io\":%llu},"
           "\"errors_total\":%llu,\"loadgen_cpu_pct\":%.0f}\n",
           (unsigned long long)s->err_connect, (unsigned long long)s->err_mismatch,
           (unsigned long long)s->err_closed, (unsigned long long)s->err_io, (unsigned long long)errs,
           cpu_percent());
}

/* --burst: what ran, how fast, and what the listen queue dropped. */
static void report_burst(const struct stats *s, double secs)
{
    printf("loadgen: burst mode, %u connections, %s, to %s\n", g.conns,
           g.burst_parallel ? "all connects at once" : "blocking connects back to back", g.target);
    printf("  burst      %llu open in %.3f s (%.0f conns/s)\n", (unsigned long long)s->conns, secs,
           s->conns / secs);
    printf("  listen     ListenDrops +%lld  ListenOverflows +%lld  (whole machine; -1: unknown)\n",
           (long long)g.listen_drops, (long long)g.listen_overflows);
}

/* The first lines of the text report: what ran, and its main figures. */
static void report_head(const struct stats *s, double secs)
{
    if (g.mode == MODE_BURST) {
        report_burst(s, secs);
        return;
    }
    printf("loadgen: %s mode, %u %s on %u thread%s, %u B messages%s, pipeline %u, to %s\n", mode_name(),
           g.conns, g.mode == MODE_UDP ? "sockets" : "connections", g.threads, g.threads == 1 ? "" : "s",
           g.size, g.line ? " (lines)" : "", g.pipeline, g.target);
    if (g.mode == MODE_OPEN)
        printf("  rate       %.0f msgs/s asked\n", g.rate);
    printf("  window     %.3f s after %.3f s warm-up\n", secs, g.warmup);
    printf("  messages   %llu  (%.0f msgs/s, %.2f MB/s)\n", (unsigned long long)s->msgs, s->msgs / secs,
           s->msgs * (double)g.size / 1e6 / secs);
    if (g.mode == MODE_CHURN)
        printf("  churn      %llu connections (%.0f conns/s)\n", (unsigned long long)s->conns,
               s->conns / secs);
    if (g.tls)
        printf("  tls        %s; %llu handshakes in the window (%.0f/s), %llu resumed\n",
               g.tls_what[0] ? g.tls_what : "no handshake", (unsigned long long)s->handshakes,
               s->handshakes / secs, (unsigned long long)s->resumed);
}

static void report_text(const struct stats *s, double secs)
{
    const struct hist *h = &s->hist;

    report_head(s, secs);
    printf("  open       %llu at the end\n", (unsigned long long)s->open);
    if (g.mode == MODE_UDP)
        printf("  datagrams  lost %llu  late %llu  reordered %llu  (lost: unanswered after %.0f ms)\n",
               (unsigned long long)s->lost, (unsigned long long)s->late, (unsigned long long)s->reordered,
               (double)g.timeout_ns / 1e6);
    printf("  latency    p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  (us%s)\n",
           us(hist_percentile(h, 50)), us(hist_percentile(h, 90)), us(hist_percentile(h, 99)),
           us(hist_percentile(h, 99.9)), us(h->max), g.mode == MODE_BURST ? ", per connect" : "");
    printf("  errors     connect %llu  mismatch %llu  closed %llu  io %llu\n",
           (unsigned long long)s->err_connect, (unsigned long long)s->err_mismatch,
           (unsigned long long)s->err_closed, (unsigned long long)s->err_io);
    printf("  cpu        %.0f%% of one core\n", cpu_percent());
}

static void report(struct thread *ths)
{
    static struct stats all;
    double secs = g.t_stop > g.t_measure ? (double)(g.t_stop - g.t_measure) / 1e9 : 0;
    uint32_t t;

    for (t = 0; t < g.threads; t++) {
        const struct stats *s = &ths[t].st;
        all.msgs += s->msgs;
        all.conns += s->conns;
        all.open += s->open;
        all.err_connect += s->err_connect;
        all.err_mismatch += s->err_mismatch;
        all.err_closed += s->err_closed;
        all.err_io += s->err_io;
        all.lost += s->lost;
        all.late += s->late;
        all.reordered += s->reordered;
        all.handshakes += s->handshakes;
        all.resumed += s->resumed;
        hist_merge(&all.hist, &s->hist);
    }
    if (secs <= 0)
        secs = 1e-9;
    if (g.json)
        report_json(&all, secs);
    else
        report_text(&all, secs);
}

/* ---- Main ------------------------------------------------------------- */

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&g.stop, 1);
}

/* Sleep until the planned end or a signal; note when the window closed. */
static void wait_for_end(void)
{
    for (;;) {
        uint64_t now = bench_now_ns();
        struct timespec ts = {0, 5000000};

        if (atomic_load(&g.stop) || now >= g.t_end) {
            g.t_stop = now < g.t_end ? now : g.t_end;
            atomic_store(&g.stop, 1);
            return;
        }
        if (g.t_end - now < 5000000u)
            ts.tv_nsec = (long)(g.t_end - now);
        nanosleep(&ts, NULL);
    }
}

/* Start the threads with SIGINT/SIGTERM blocked: the main thread takes them. */
static int run(struct thread *ths)
{
    sigset_t set, old;
    uint32_t t;
    int rc = 0;

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    g.t_begin = bench_now_ns();
    g.t_measure = g.t_begin + (uint64_t)(g.warmup * 1e9);
    g.t_end = g.t_measure + (uint64_t)(g.duration * 1e9);
    for (t = 0; t < g.threads; t++) {
        if (pthread_create(&ths[t].tid, NULL, thread_main, &ths[t]) != 0) {
            atomic_store(&g.stop, 1);
            rc = -1;
            break;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0)
        wait_for_end();
    g.threads = t;
    for (t = 0; t < g.threads; t++)
        pthread_join(ths[t].tid, NULL);
    return rc;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: loadgen --connect ADDR [options]\n"
               "  --connect ADDR     host:port, [v6]:port or unix:/path of an echo server\n"
               "  --connections C    connections (default 50)\n"
               "  --threads T        load threads, one epoll loop each (default 1)\n"
               "  --size S           bytes per message (default 64)\n"
               "  --pipeline P       messages in flight per connection (default 1)\n"
               "  --duration SEC     measured seconds (default 10; fractions allowed)\n"
               "  --warmup SEC       seconds of load before measuring (default 0)\n"
               "  --line             messages are lines: no '\\n' inside, one at the end\n"
               "  --rate R           open loop: R messages/s in total, latency from the\n"
               "                     intended send time (--pipeline is then ignored)\n"
               "  --churn            connect, one message, echo, close, repeat: conns/s\n"
               "  --idle N           hold N silent connections for the duration\n"
               "  --udp              closed loop over datagrams: --connections sockets, each\n"
               "                     with --pipeline datagrams of --size bytes (8..65507)\n"
               "                     in flight; ADDR is a UDP server (or unix:/path)\n"
               "  --timeout MS       --udp: a datagram unanswered this long is counted lost\n"
               "                     and replaced by a new one (default 200)\n"
               "  --burst N          open N connections back to back (blocking connects, no\n"
               "                     data), hold them until all are open: conns/s and the\n"
               "                     listen queue drops of /proc/net/netstat meanwhile;\n"
               "                     --duration bounds it (connects left then fail)\n"
               "  --burst-parallel   with --burst: start all N connects at once (nonblocking),\n"
               "                     then wait for every one\n"
               "  --json             one JSON object on stdout instead of text\n");
#ifdef BENCH_TLS /* listed only when there (bench/run looks) */
    fprintf(f, "  --tls              speak TLS (OpenSSL; the certificate is not checked); a\n"
               "                     connection is open once its handshake is done\n"
               "  --tls-resume       --tls, and each new connection offers a session ticket its\n"
               "                     thread was given and has not offered yet (else: full)\n"
               "  --handshakes       --churn over TLS: connect, handshake, one message, close,\n"
               "                     repeat: handshakes/s (full, or resumed with --tls-resume)\n");
#endif
}

/* Check the option values against each other. */
static void check_args(void)
{
    const char *why = NULL;

    if (g.mode == MODE_IDLE)
        g.conns = g.idle;
    if (g.mode == MODE_BURST)
        g.conns = g.burst;
    if (g.target == NULL)
        why = "--connect is required";
    else if (bench_addr_parse(g.target, &g.addr, &g.addr_len) < 0)
        why = "--connect: not an address";
    else if (g.conns == 0 || g.threads == 0 || g.size == 0 || g.pipeline == 0)
        why = "--connections, --threads, --size and --pipeline must be at least 1";
    else if (g.mode == MODE_OPEN && !(g.rate > 0))
        why = "--rate must be positive";
    else if (!(g.duration > 0) || !(g.warmup >= 0))
        why = "--duration must be positive, --warmup not negative";
    else if (g.mode == MODE_UDP && (g.size < UDP_HDR || g.size > UDP_MAX))
        why = "--size must be 8..65507 with --udp";
    else if (g.mode == MODE_UDP && g.line)
        why = "--line does not apply to --udp";
    else if (g.timeout_ns == 0)
        why = "--timeout must be at least 1 ms";
    else if (g.burst_parallel && g.mode != MODE_BURST)
        why = "--burst-parallel needs --burst N";
    else if (g.tls && (g.mode == MODE_UDP || g.mode == MODE_BURST))
        why = "--tls does not apply to --udp or --burst";
#ifndef BENCH_TLS
    else if (g.tls)
        why = "built without OpenSSL: no --tls";
#endif
    if (why) {
        fprintf(stderr, "loadgen: %s\n", why);
        usage(stderr);
        exit(2);
    }
    if (g.threads > g.conns || g.mode == MODE_BURST)
        g.threads = g.mode == MODE_BURST ? 1 : g.conns;
    g.batch = RBUF_SIZE / g.size < UDP_BATCH ? RBUF_SIZE / g.size : UDP_BATCH;
}

static void set_mode(enum mode m)
{
    if (g.mode != MODE_CLOSED && g.mode != m) {
        fprintf(stderr, "loadgen: --rate, --churn, --idle, --udp and --burst exclude each other\n");
        exit(2);
    }
    g.mode = m;
}

static double parse_double(const char *opt, const char *text)
{
    char *end;
    double v = strtod(text, &end);

    if (end == text || *end != '\0' || !isfinite(v)) {
        fprintf(stderr, "bad value for %s: '%s'\n", opt, text);
        exit(2);
    }
    return v;
}

static void parse_option(int o, const char *arg)
{
    switch (o) {
    case 'c':
        g.target = arg;
        break;
    case 'n':
        g.conns = (uint32_t)bench_parse_ulong("--connections", arg, 1000000);
        break;
    case 't':
        g.threads = (uint32_t)bench_parse_ulong("--threads", arg, 1024);
        break;
    case 's':
        g.size = (uint32_t)bench_parse_ulong("--size", arg, MAX_SIZE);
        break;
    case 'p':
        g.pipeline = (uint32_t)bench_parse_ulong("--pipeline", arg, 65536);
        break;
    case 'd':
        g.duration = parse_double("--duration", arg);
        break;
    case 'w':
        g.warmup = parse_double("--warmup", arg);
        break;
    case 'L':
        g.line = true;
        break;
    case 'r':
        set_mode(MODE_OPEN);
        g.rate = parse_double("--rate", arg);
        break;
    case 'C':
        set_mode(MODE_CHURN);
        break;
    case 'i':
        set_mode(MODE_IDLE);
        g.idle = (uint32_t)bench_parse_ulong("--idle", arg, 1000000);
        break;
    case 'j':
        g.json = true;
        break;
    case 'u':
        set_mode(MODE_UDP);
        break;
    case 'T':
        g.timeout_ns = bench_parse_ulong("--timeout", arg, 3600000) * 1000000u;
        break;
    case 'b':
        set_mode(MODE_BURST);
        g.burst = (uint32_t)bench_parse_ulong("--burst", arg, 1000000);
        break;
    case 'B':
        g.burst_parallel = true;
        break;
    case 'S':
        g.tls = true;
        break;
    case 'R':
        g.tls = g.tls_resume = true;
        break;
    case 'H':
        set_mode(MODE_CHURN);
        g.tls = g.handshakes = true;
        break;
    case 'h':
        usage(stdout);
        exit(0);
    default:
        usage(stderr);
        exit(2);
    }
}

static void parse_args(int argc, char **argv)
{
    static const struct option opts[] = {{"connect", required_argument, NULL, 'c'},
                                         {"connections", required_argument, NULL, 'n'},
                                         {"threads", required_argument, NULL, 't'},
                                         {"size", required_argument, NULL, 's'},
                                         {"pipeline", required_argument, NULL, 'p'},
                                         {"duration", required_argument, NULL, 'd'},
                                         {"warmup", required_argument, NULL, 'w'},
                                         {"line", no_argument, NULL, 'L'},
                                         {"rate", required_argument, NULL, 'r'},
                                         {"churn", no_argument, NULL, 'C'},
                                         {"idle", required_argument, NULL, 'i'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"udp", no_argument, NULL, 'u'},
                                         {"timeout", required_argument, NULL, 'T'},
                                         {"burst", required_argument, NULL, 'b'},
                                         {"burst-parallel", no_argument, NULL, 'B'},
                                         {"tls", no_argument, NULL, 'S'},
                                         {"tls-resume", no_argument, NULL, 'R'},
                                         {"handshakes", no_argument, NULL, 'H'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int o;

    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1)
        parse_option(o, optarg);
    if (optind != argc) {
        usage(stderr);
        exit(2);
    }
    check_args();
}

int main(int argc, char **argv)
{
    struct thread *ths;
    uint32_t t;
    int rc = 1;

    parse_args(argc, argv);
    bench_raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    ths = calloc(g.threads, sizeof(*ths));
    if (ths == NULL || pattern_init() < 0)
        goto out;
    for (t = 0; t < g.threads; t++)
        ths[t].epfd = -1;
    for (t = 0; t < g.threads; t++)
        if (thread_init(&ths[t], t) < 0)
            goto out_threads;
    if (g.mode == MODE_BURST) {
        burst_run(&ths[0]);
        report(ths);
        rc = 0;
    } else if (run(ths) == 0) {
        report(ths);
        rc = 0;
    }
out_threads:
    for (t = 0; t < g.threads; t++)
        thread_deinit(&ths[t]);
out:
    free(ths);
    free(g.pattern);
    if (rc != 0)
        fprintf(stderr, "loadgen: could not start: out of memory or threads\n");
    return rc;
}
