/* stream.c -- a connected byte stream, TCP or Unix, pinned to one loop.
 *
 * A stream is a handle of its loop (engine/: references, pending work,
 * the close that runs on_close exactly once and last) with one
 * edge-triggered libevent event on its socket for reading, writing and the
 * end of a non-blocking connect, so no epoll_ctl is made per message.
 *
 * Reading: a wake-up reads what is there into the loop's scratch buffer
 * and cuts frames straight out of it; only the bytes of an incomplete frame
 * are copied into the stream's own input buffer (buffer/inbuf.c).
 * Writing: everything goes through the stream's one write queue
 * (wqueue.c) and its transport; writes made while the stream's own I/O
 * callback runs are staged and leave in one system call when it ends, so
 * the hot path of an echo allocates nothing, copies nothing and makes one
 * read and one write per wake-up.
 *
 * Life cycle: new -> (resolving) -> connecting -> open -> closed.  Closing
 * releases the socket at once; on_close runs from the loop afterwards, and
 * the memory goes when the last reference does.  What only a client needs
 * (the name, the addresses left to try, the connect timer) lives in a
 * dial record made by connect, so an accepted connection does not carry it.
 */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "channels-internal.h"
#include "inbuf-internal.h"
#include "proxy-internal.h"
#include "tls-internal.h"
#include "wqueue-internal.h"

#define DEFAULT_READ_LIMIT (64 * 1024)
#define DEFAULT_WRITE_LOW  (256 * 1024)
#define DEFAULT_WRITE_HIGH (1024 * 1024)
#define MAX_TIMEOUT_MS     ((uint64_t)INT32_MAX * 1000)
#define TIMEOUT_KINDS      4  /* PANTS_TIMEOUT_IDLE .. PANTS_TIMEOUT_FRAME */
#define READS_PER_WAKEUP   16 /* then let the other streams run */
#define FLUSH_ROUNDS       4  /* on_write may write again: flush that too, this often */
#define PROXY_HEADER_MS    5000 /* a PROXY header must come this soon (no frame timeout set) */

enum stream_state {
    S_NEW,        /* not connected yet */
    S_RESOLVING,  /* waiting for the resolver */
    S_CONNECTING, /* connect() in progress (or failed, error pending) */
    S_PROXY,      /* accepted, waiting for the PROXY protocol header */
    S_HANDSHAKE,  /* connected, a TLS handshake under way */
    S_OPEN,       /* connected */
    S_CLOSED,     /* closed; on_close pending or done */
};

enum tls_phase {
    TLS_NONE,     /* plain */
    TLS_AT_OPEN,  /* start_tls before connect: a handshake once connected */
    TLS_AT_DRAIN, /* STARTTLS: a handshake once the queue is sent (reading held) */
    TLS_ON,       /* handshaking (S_HANDSHAKE) or done */
};

enum pending {
    P_CONNECT_ERROR = 1, /* deliver the dial's error */
    P_RESOLVE = 2,       /* ask the loop's resolver for the dial's host */
    P_READ = 4,          /* read (and deliver what is buffered) again */
    P_WRITE = 8,         /* flush what was written outside the I/O callback */
    P_HIGH = 16,         /* run on_write_high */
    P_LOW = 32,          /* run on_write_low */
};

#define IO_EVENTS (PANTS__IO_READ | PANTS__IO_WRITE | PANTS__IO_CLOSED)

/* What a connect needs while it is under way (client streams only). */
typedef struct dial_s {
    char *host;                /* name to look up (P_RESOLVE pending), or NULL */
    uint16_t port;             /* its port */
    pants__resolve_t *resolve; /* lookup in flight */
    pants_addr_t *candidates;  /* addresses left to try after a failure */
    size_t ncandidates;        /* how many */
    int err;                   /* error for P_CONNECT_ERROR */
    uint64_t timeout_ms;       /* bound on a connect, lookup included; 0 = none */
    struct event timer;        /* that bound, armed while connecting */
} dial_t;

/* What a PROXY protocol header said, for pants_stream_remote_address / _local_address. */
typedef struct proxied_s {
    pants_addr_t remote; /* the client, as the balancer saw it */
    pants_addr_t local;  /* the address the client reached */
} proxied_t;

struct pants_stream_s {
    pants__handle_t handle;             /* life cycle; handle.loop is set once, read anywhere */
    pants__io_t io;                     /* the socket's watcher: read | write | closed, edge-triggered */
    int fd;                             /* the socket, or -1 */
    unsigned char state;                /* enum stream_state */
    unsigned char family;               /* AF_INET/AF_INET6/AF_UNIX, or AF_UNSPEC */
    bool in_io : 1;                     /* its own I/O callback runs: writes are staged */
    bool ending : 1;                    /* end(): close once everything is sent */
    bool want_on_write : 1;             /* something was written since the last on_write */
    bool hup_seen : 1;                  /* the peer's FIN was signalled: a short read is not the end */
    bool paused : 1;                    /* pause_reading: no read, no on_read until resume */
    bool owns_cb : 1;                   /* cb is our own copy (else the server's table) */
    bool auto_paused : 1;               /* the high watermark holds reading */
    bool above_high : 1;                /* pending() passed high: on_write_low due at low */
    bool owns_opt : 1;                  /* opt is our own copy */
    bool timed : 1;                     /* a timeout is set: activity is timed */
    bool write_waiting : 1;             /* the last flush left bytes queued */
    const pants_stream_callbacks_t *cb; /* the application's callbacks */
    void *data;                         /* the application's pointer */
    pants_server_t *server;             /* accepting server, or NULL */
    pants_stream_t *srv_prev;           /* the server's list of connections on this loop */
    pants_stream_t *srv_next;
    pants__inbuf_t in;                 /* bytes of an incomplete frame */
    pants__wq_t wq;                    /* bytes and files not yet sent, in order */
    const pants__transport_t *tp;      /* how bytes go in and out */
    void *tio;                         /* tp's state: &fd, or the TLS state */
    pants__tls_t *tls;                 /* TLS state, or NULL */
    unsigned char tls_phase;           /* enum tls_phase */
    pants__framer_t framer;            /* the read delimiter */
    size_t read_limit;                 /* most bytes that may wait for a frame */
    dial_t *dial;                      /* connect state, or NULL */
    const pants_stream_options_t *opt; /* limits, resolved: defaults, the server's, or our own */
    struct proxied_s *proxied;         /* addresses a PROXY header named, or NULL */
    pants__deadline_t dl;              /* when to look at the timeouts next */
    uint64_t since[TIMEOUT_KINDS];     /* loop ms each timeout kind counts from */
};

static const pants_stream_callbacks_t no_callbacks; /* cb of a stream given none */

static const pants_stream_options_t default_options = {
    .read_limit = DEFAULT_READ_LIMIT, .write_low = DEFAULT_WRITE_LOW, .write_high = DEFAULT_WRITE_HIGH};

static void stream_on_io(pants__io_t *w, unsigned events);
static void stream_due(pants__deadline_t *d);
static void schedule_timeouts(pants_stream_t *s);
static void watermarks_moved(pants_stream_t *s);
static void reading_resumed(pants_stream_t *s);
static void start_timing(pants_stream_t *s);
static void flushed(pants_stream_t *s, size_t before, int rc);
static void touch(pants_stream_t *s, int kind);

/* Bytes queued and staged. */
static inline size_t pending_of(const pants_stream_t *s)
{
    return pants__wq_pending(&s->wq, s->handle.loop);
}

/* pending() may have crossed a watermark: the common case (below high, no
 * high seen) costs a compare. */
static inline void watermarks(pants_stream_t *s)
{
    if (s->above_high || pending_of(s) > s->opt->write_high)
        watermarks_moved(s);
}

/* Is reading held, by the application or by the high watermark? */
static inline bool held(const pants_stream_t *s)
{
    return s->paused || s->auto_paused || s->tls_phase == TLS_AT_DRAIN;
}
static void stream_io(pants_stream_t *s, unsigned events);
static void stream_close_now(pants_stream_t *s);
static int stream_end(pants_stream_t *s);
static void start_lookup(pants_stream_t *s);
static void connect_error(pants_stream_t *s, int err);
static void tls_begin(pants_stream_t *s);
static void proxy_begin(pants_stream_t *s);
static bool proxy_step(pants_stream_t *s);
static void tls_accept(pants_stream_t *s, struct ssl_ctx_st *ctx);
static bool tls_step(pants_stream_t *s);

static inline pants_loop_t *loop_of(const pants_stream_t *s)
{
    return s->handle.loop;
}

/* Run expr (an int) on s's loop thread, or before run; a closed stream
 * gives -EPIPE (its framer and limits are gone). */
#define WITH_OPEN_STREAM(s, what, expr)                                                                      \
    do {                                                                                                     \
        int entered_, rc_;                                                                                   \
        if ((s) == NULL)                                                                                     \
            return -EINVAL;                                                                                  \
        entered_ = pants__loop_enter(loop_of(s), what);                                                      \
        if (entered_ < 0)                                                                                    \
            return entered_;                                                                                 \
        rc_ = (s)->state == S_CLOSED ? -EPIPE : (expr);                                                      \
        pants__loop_leave(loop_of(s), entered_);                                                             \
        return rc_;                                                                                          \
    } while (0)

/* ---- References and accessors ------------------------------------------ */

void pants_stream_ref(pants_stream_t *s)
{
    if (s)
        pants__handle_ref(&s->handle);
}

void pants_stream_unref(pants_stream_t *s)
{
    if (s)
        pants__handle_unref(&s->handle);
}

void pants_stream_set_data(pants_stream_t *s, void *data)
{
    if (s)
        s->data = data;
}

void *pants_stream_data(const pants_stream_t *s)
{
    return s ? s->data : NULL;
}

/* The callbacks as our own copy, when owns_cb says they are. */
static pants_stream_callbacks_t *own_callbacks(const pants_stream_t *s)
{
    return (pants_stream_callbacks_t *)(uintptr_t)s->cb;
}

/* Our own copy of the callbacks (a connection shares its server's table
 * until it is given others).  0 or -ENOMEM (the old ones stay). */
static int set_callbacks(pants_stream_t *s, const pants_stream_callbacks_t *cb)
{
    pants_stream_callbacks_t *own;

    if (cb == NULL) {
        if (s->owns_cb)
            free(own_callbacks(s));
        s->owns_cb = false;
        s->cb = &no_callbacks;
        return 0;
    }
    if (s->owns_cb) {
        *own_callbacks(s) = *cb;
        return 0;
    }
    own = malloc(sizeof(*own));
    if (own == NULL)
        return -ENOMEM;
    *own = *cb;
    s->cb = own;
    s->owns_cb = true;
    return 0;
}

void pants_stream_set_callbacks(pants_stream_t *s, const pants_stream_callbacks_t *cb)
{
    if (s != NULL)
        set_callbacks(s, cb);
}

pants_loop_t *pants_stream_loop(const pants_stream_t *s)
{
    return s ? loop_of(s) : NULL;
}

pants_server_t *pants_stream_server(const pants_stream_t *s)
{
    return s ? s->server : NULL;
}

int pants_stream_family(const pants_stream_t *s)
{
    return s ? s->family : AF_UNSPEC;
}

/* Connected: open, or in its TLS handshake (a failed one's on_error may
 * still ask who the peer was). */
static bool has_peer(const pants_stream_t *s)
{
    return (s->state == S_OPEN || s->state == S_HANDSHAKE) && s->fd >= 0;
}

int pants_stream_remote_address(const pants_stream_t *s, pants_addr_t *a)
{
    if (s == NULL || a == NULL || !has_peer(s))
        return s && a ? -ENOTCONN : -EINVAL;
    if (s->proxied != NULL) {
        *a = s->proxied->remote;
        return 0;
    }
    return pants__addr_of_fd(s->fd, true, a);
}

int pants_stream_local_address(const pants_stream_t *s, pants_addr_t *a)
{
    if (s == NULL || a == NULL || !has_peer(s))
        return s && a ? -ENOTCONN : -EINVAL;
    if (s->proxied != NULL) {
        *a = s->proxied->local;
        return 0;
    }
    return pants__addr_of_fd(s->fd, false, a);
}

size_t pants_stream_pending(const pants_stream_t *s)
{
    return s ? pending_of(s) : 0;
}

bool pants_stream_is_connected(const pants_stream_t *s)
{
    return s && s->state == S_OPEN && !s->ending;
}

int pants_stream_fd(const pants_stream_t *s)
{
    return s ? s->fd : -1;
}

bool pants__stream_is_open(const pants_stream_t *s)
{
    return s->state != S_CLOSED;
}

pants_stream_t **pants__stream_srv_next(pants_stream_t *s)
{
    return &s->srv_next;
}

pants_stream_t **pants__stream_srv_prev(pants_stream_t *s)
{
    return &s->srv_prev;
}

/* ---- Closing ------------------------------------------------------------ */

static void disarm_connect_timer(pants_stream_t *s)
{
    if (s->dial)
        event_del(&s->dial->timer);
}

/* Forget what a connect under way holds: lookup, addresses, name. */
static void dial_reset(dial_t *d)
{
    if (d->resolve) {
        pants__resolve_cancel(d->resolve);
        d->resolve = NULL;
    }
    free(d->candidates);
    d->candidates = NULL;
    d->ncandidates = 0;
    free(d->host);
    d->host = NULL;
}

static void dial_free(pants_stream_t *s)
{
    if (s->dial == NULL)
        return;
    dial_reset(s->dial);
    event_del(&s->dial->timer);
    free(s->dial);
    s->dial = NULL;
}

static void close_socket(pants_stream_t *s)
{
    if (s->fd >= 0) {
        pants__io_stop(loop_of(s), s->fd);
        close(s->fd);
        s->fd = -1;
    }
}

/* Drop TLS (a close_notify first, if it was up) and go back to plain. */
static void tls_drop(pants_stream_t *s)
{
    pants__tls_free(s->tls);
    s->tls = NULL;
    s->tls_phase = TLS_NONE;
    s->tp = &pants__plain_transport;
    s->tio = &s->fd;
}

static void release_io(pants_stream_t *s)
{
    pants__deadline_clear(loop_of(s), &s->dl);
    disarm_connect_timer(s);
    if (s->dial)
        dial_reset(s->dial);
    tls_drop(s);
    close_socket(s);
}

static void free_buffers(pants_stream_t *s)
{
    dial_free(s);
    pants__inbuf_deinit(&s->in);
    pants__wq_clear(&s->wq, loop_of(s));
    pants__framer_deinit(&s->framer);
}

static void stream_close_now(pants_stream_t *s)
{
    if (s->state == S_CLOSED)
        return;
    s->state = S_CLOSED;
    pants__wq_clear(&s->wq, loop_of(s)); /* queued data is dropped */
    release_io(s);
    pants__handle_close(&s->handle);
}

/* An I/O error other than EOF or reset: tell the application, then close. */
void pants__stream_fail(pants_stream_t *s, int err)
{
    if (s->state == S_CLOSED)
        return;
    if (s->cb->on_error)
        s->cb->on_error(s, err);
    stream_close_now(s);
}

static bool is_reset(int err)
{
    return err == ECONNRESET || err == EPIPE || err == ENOTCONN;
}

/* A socket error: a reset closes quietly, anything else is an error. */
static void io_error(pants_stream_t *s, int err)
{
    if (is_reset(-err))
        stream_close_now(s);
    else
        pants__stream_fail(s, err);
}

static void close_posted(pants_stream_t *s, void *arg)
{
    (void)arg;
    stream_close_now(s);
}

void pants_stream_close(pants_stream_t *s)
{
    int entered;

    if (s == NULL)
        return;
    entered = pants__loop_enter(loop_of(s), "pants_stream_close");
    if (entered < 0) {
        /* Misuse, but closing must not be lost: hand it to the owner. */
        pants_stream_post(s, close_posted, NULL);
        return;
    }
    stream_close_now(s);
    pants__loop_leave(loop_of(s), entered);
}

/* ---- Handle operations -------------------------------------------------- */

static void stream_run_pending(pants__handle_t *h, unsigned bits)
{
    pants_stream_t *s = (pants_stream_t *)h;

    if ((bits & P_CONNECT_ERROR) && s->state == S_CONNECTING)
        connect_error(s, s->dial->err);
    if ((bits & P_RESOLVE) && s->state == S_RESOLVING)
        start_lookup(s);
    if ((bits & (P_READ | P_WRITE)) && (s->state == S_OPEN || s->state == S_HANDSHAKE))
        stream_io(s, (bits & P_READ ? PANTS__IO_READ : 0) | (bits & P_WRITE ? PANTS__IO_WRITE : 0));
    if ((bits & P_HIGH) && s->state == S_OPEN && s->cb->on_write_high)
        s->cb->on_write_high(s);
    if ((bits & P_LOW) && s->state == S_OPEN && s->cb->on_write_low)
        s->cb->on_write_low(s);
}

/* The last step: on_close, then the stream leaves its server. */
static void stream_closed(pants__handle_t *h)
{
    pants_stream_t *s = (pants_stream_t *)h;

    if (s->cb->on_close)
        s->cb->on_close(s);
    free_buffers(s);
    if (s->server)
        pants__server_conn_closed(s->server, s);
}

static void stream_free(pants__handle_t *h)
{
    pants_stream_t *s = (pants_stream_t *)h;

    if (s->owns_cb)
        free(own_callbacks(s));
    if (s->owns_opt)
        free((void *)(uintptr_t)s->opt);
    free(s->proxied);
    free(s);
}

static void stream_stop(pants__handle_t *h)
{
    pants_stream_t *s = (pants_stream_t *)h;

    if (s->state == S_OPEN)
        stream_end(s);
    else
        stream_close_now(s);
}

static void stream_kill(pants__handle_t *h)
{
    stream_close_now((pants_stream_t *)h);
}

/* Loop teardown without callbacks (the engine never ran, or is freed). */
static void stream_release(pants__handle_t *h)
{
    pants_stream_t *s = (pants_stream_t *)h;

    release_io(s);
    free_buffers(s);
    if (s->server) /* still a handle: stream_closed has not told the server */
        pants__server_conn_closed(s->server, s);
    pants__handle_unref(h);
}

static const pants__handle_ops_t stream_ops = {
    .name = "stream",
    .stop = stream_stop,
    .kill = stream_kill,
    .release = stream_release,
    .run_pending = stream_run_pending,
    .closed = stream_closed,
    .free = stream_free,
};

/* ---- Creation ----------------------------------------------------------- */

static void stream_init(pants_stream_t *s, pants_loop_t *l, void *data)
{
    pants__handle_init(&s->handle, l, &stream_ops);
    s->state = S_NEW;
    s->fd = -1;
    s->family = AF_UNSPEC;
    s->cb = &no_callbacks;
    s->data = data;
    s->read_limit = DEFAULT_READ_LIMIT;
    s->opt = &default_options;
    pants__deadline_init(&s->dl, stream_due);
    s->tp = &pants__plain_transport;
    s->tio = &s->fd;
    s->io.cb = stream_on_io;
    pants__framer_init(&s->framer);
    pants__inbuf_init(&s->in);
    pants__wq_init(&s->wq);
}

pants_stream_t *pants_stream_new(pants_loop_t *l, const pants_stream_callbacks_t *cb, void *data)
{
    pants_stream_t *s;
    int rc;

    if (l == NULL) {
        errno = EINVAL;
        return NULL;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    stream_init(s, l, data);
    rc = set_callbacks(s, cb);
    if (rc == 0)
        rc = pants__handle_register(&s->handle, true);
    if (rc < 0) {
        pants__framer_deinit(&s->framer);
        stream_free(&s->handle);
        pants__live_add(-1);
        errno = -rc;
        return NULL;
    }
    return s;
}

/* Watch the socket of a stream that is connecting or connected. */
static int watch_fd(pants_stream_t *s, int fd)
{
    s->fd = fd;
    return pants__io_start(loop_of(s), &s->io, fd, IO_EVENTS);
}

static void set_nodelay(int fd, int family)
{
    int one = 1;

    if (family == AF_INET || family == AF_INET6)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* An accepted connection whose on_accept ran: its TLS handshake, or
 * on_connect at once. */
static void serve(pants_stream_t *s)
{
    if (pants__server_tls(s->server) != NULL) {
        tls_accept(s, pants__server_tls(s->server));
        return;
    }
    start_timing(s);
    if (s->state == S_OPEN && s->cb->on_connect)
        s->cb->on_connect(s);
}

/* ---- The PROXY protocol ------------------------------------------------- */

/* Until its header has come, a connection has no callbacks: whatever goes
 * wrong closes it unheard of.  Bounded by the frame timeout, or 5 s. */
static void proxy_begin(pants_stream_t *s)
{
    pants_loop_t *l = loop_of(s);
    uint64_t ms = s->opt->frame_timeout_ms ? s->opt->frame_timeout_ms : PROXY_HEADER_MS;
    int rc;

    s->cb = &no_callbacks;
    s->state = S_PROXY;
    rc = pants__io_start(l, &s->io, s->fd, IO_EVENTS);
    if (rc == 0)
        rc = pants__deadline_set(l, &s->dl, pants__loop_now_ms(l) + ms);
    if (rc < 0)
        stream_close_now(s);
}

static int proxy_addresses(pants_stream_t *s, const pants__proxy_hdr_t *h)
{
    int family = h->ip_version == 4 ? AF_INET : AF_INET6;

    if (h->ip_version == 0)
        return 0; /* the socket's own addresses stand */
    s->proxied = malloc(sizeof(*s->proxied));
    if (s->proxied == NULL)
        return -ENOMEM;
    pants__addr_set_ip(&s->proxied->remote, family, h->src, h->src_port);
    pants__addr_set_ip(&s->proxied->local, family, h->dst, h->dst_port);
    return 0;
}

/* Peek at what has come; once a whole header has, take exactly its bytes
 * (what follows, a TLS ClientHello say, stays in the socket).  -EAGAIN:
 * not all there yet; another negative errno: close. */
static int proxy_read(pants_stream_t *s)
{
    unsigned char *buf = loop_of(s)->scratch;
    pants__proxy_hdr_t h;
    ssize_t n = recv(s->fd, buf, PANTS__PROXY_MAX, MSG_PEEK);
    int len;

    if (n <= 0)
        return n == 0 ? -ECONNRESET : errno == EINTR ? -EAGAIN : -errno;
    len = pants__proxy_parse(buf, (size_t)n, &h);
    if (len == -2)
        return -EAGAIN;
    if (len < 0)
        return -EPROTO;
    if (recv(s->fd, buf, (size_t)len, 0) != len)
        return -EPROTO;
    return proxy_addresses(s, &h);
}

/* The header, then the connection as any other: on_accept, TLS or
 * on_connect.  true: go on to read what follows. */
static bool proxy_step(pants_stream_t *s)
{
    int rc = proxy_read(s);

    if (rc == -EAGAIN)
        return false;
    if (rc < 0) {
        stream_close_now(s);
        return false;
    }
    pants__deadline_clear(loop_of(s), &s->dl);
    s->state = S_OPEN;
    s->cb = pants__server_conn_callbacks(s->server);
    pants__server_accepted(s->server, s);
    if (s->state != S_OPEN)
        return false;
    serve(s);
    return s->state == S_OPEN;
}

void pants__stream_adopt(pants_loop_t *l, pants_server_t *srv, int fd)
{
    pants_stream_t *s = l->stopping ? NULL : calloc(1, sizeof(*s));
    int rc;

    if (s == NULL) {
        close(fd);
        pants__server_conn_closed(srv, NULL);
        return;
    }
    stream_init(s, l, NULL);
    s->server = srv;
    s->cb = pants__server_conn_callbacks(srv);
    s->opt = pants__server_stream_options(srv);
    s->read_limit = s->opt->read_limit;
    s->state = S_OPEN;
    s->family = (unsigned char)pants__server_family(srv); /* no getsockname per connection */
    pants__server_conn_opened(srv, s);
    pants__handle_start(&s->handle, l, &stream_ops, true);
    s->fd = fd;
    if (pants__server_has_proxy_protocol(srv)) {
        proxy_begin(s);
        return;
    }
    pants__server_accepted(srv, s);
    if (s->state != S_OPEN)
        return;
    rc = pants__io_start(l, &s->io, fd, IO_EVENTS);
    if (rc < 0) {
        pants__stream_fail(s, rc);
        return;
    }
    serve(s);
}

/* ---- Connecting --------------------------------------------------------- */

static void on_connect_timeout(evutil_socket_t fd, short what, void *arg);

/* The dial record, made before a connect sets anything in motion. */
static dial_t *ensure_dial(pants_stream_t *s)
{
    if (s->dial == NULL) {
        s->dial = calloc(1, sizeof(*s->dial));
        if (s->dial != NULL)
            evtimer_assign(&s->dial->timer, loop_of(s)->base, on_connect_timeout, s);
    }
    return s->dial;
}

static void try_next_or_fail(pants_stream_t *s, int err);

static void connect_failed(pants_stream_t *s, int err)
{
    if (s->dial->ncandidates > 0) { /* from the loop: a resolved name's next address */
        try_next_or_fail(s, err);
        return;
    }
    s->state = S_CONNECTING;
    s->dial->err = err;
    pants__handle_defer(&s->handle, P_CONNECT_ERROR);
}

/* Start a non-blocking connect to a; its end shows as the socket becoming
 * writable.  Errors are delivered from the loop, never from here. */
static void connect_to(pants_stream_t *s, const pants_addr_t *a)
{
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), rc;

    s->family = (unsigned char)a->ss.ss_family;
    if (fd < 0) {
        connect_failed(s, -errno);
        return;
    }
    set_nodelay(fd, s->family);
    if (connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0 && errno != EINPROGRESS) {
        int err = -errno;
        close(fd);
        if (err == -EAGAIN && s->family == AF_UNIX)
            err = -ECONNREFUSED; /* a Unix listener with a full backlog */
        connect_failed(s, err);
        return;
    }
    s->state = S_CONNECTING;
    rc = watch_fd(s, fd);
    if (rc < 0) {
        close(fd);
        s->fd = -1;
        connect_failed(s, rc);
    }
}

/* A lookup or connect failed: try the next address, or report err. */
static void try_next_or_fail(pants_stream_t *s, int err)
{
    dial_t *d = s->dial;

    if (d->ncandidates > 0) {
        pants_addr_t a = d->candidates[0];
        memmove(d->candidates, d->candidates + 1, --d->ncandidates * sizeof(a));
        connect_to(s, &a);
        return;
    }
    connect_error(s, err);
}

/* The connect failed for good: on_connect_error, after which the stream
 * may connect again; without one it closes, and so does a stream that was
 * ended meanwhile (end promised on_close). */
static void connect_error(pants_stream_t *s, int err)
{
    bool keep = s->cb->on_connect_error != NULL && !s->ending && s->tls_phase != TLS_ON;

    disarm_connect_timer(s);
    if (s->state == S_HANDSHAKE) { /* the socket goes; pants_stream_ssl still answers inside the callback */
        pants__io_stop(loop_of(s), s->fd);
        close(s->fd);
        s->fd = -1;
    }
    s->state = S_NEW;
    if (s->cb->on_connect_error)
        s->cb->on_connect_error(s, err);
    if (s->tls_phase == TLS_ON) /* a new connect needs start_tls again */
        tls_drop(s);
    if (!keep)
        stream_close_now(s);
}

static void on_resolved(int err, const pants_addr_t *addrs, size_t n, uint32_t ttl_s, void *arg)
{
    pants_stream_t *s = arg;
    dial_t *d = s->dial;

    (void)ttl_s; /* the resolver keeps the answer for its TTL */
    d->resolve = NULL;
    if (err != 0) {
        try_next_or_fail(s, err);
        return;
    }
    free(d->candidates);
    d->candidates = malloc(n * sizeof(*addrs));
    d->ncandidates = d->candidates ? n : 0;
    if (d->candidates)
        memcpy(d->candidates, addrs, n * sizeof(*addrs));
    try_next_or_fail(s, PANTS_EAI_MEMORY);
}

static void start_lookup(pants_stream_t *s)
{
    dial_t *d = s->dial;

    d->resolve = pants__resolve_start(loop_of(s), d->host, d->port, on_resolved, s);
    free(d->host);
    d->host = NULL;
    if (d->resolve == NULL)
        connect_error(s, PANTS_EAI_MEMORY);
}

/* The socket of a connecting stream became ready: did the connect work? */
static bool connect_finished(pants_stream_t *s)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err == EINPROGRESS || err == EALREADY)
        return false;
    if (err != 0) {
        close_socket(s);
        try_next_or_fail(s, -err);
        return false;
    }
    if (s->tls_phase == TLS_AT_OPEN) { /* the handshake now, under the connect timeout */
        tls_begin(s);
        return false;
    }
    dial_free(s); /* an open stream never connects again */
    s->state = S_OPEN;
    start_timing(s);
    if (s->cb->on_connect)
        s->cb->on_connect(s);
    return s->state == S_OPEN;
}

/* The connect (or the lookup before it) took too long: give up on it as
 * if it had failed with -ETIMEDOUT. */
static void on_connect_timeout(evutil_socket_t fd, short what, void *arg)
{
    pants_stream_t *s = arg;

    (void)fd;
    (void)what;
    if (s->state != S_RESOLVING && s->state != S_CONNECTING && s->state != S_HANDSHAKE)
        return;
    release_io(s); /* the lookup, the socket, the addresses left */
    s->handle.pending &= (uint16_t) ~(P_CONNECT_ERROR | P_RESOLVE);
    connect_error(s, -ETIMEDOUT);
}

/* (Re)start the connect bound, counted from now.  0 or a negative errno. */
static int arm_connect_timer(pants_stream_t *s)
{
    dial_t *d = s->dial;
    struct timeval tv;

    if (d->timeout_ms == 0) {
        event_del(&d->timer);
        return 0;
    }
    tv.tv_sec = (time_t)(d->timeout_ms / 1000);
    tv.tv_usec = (suseconds_t)(d->timeout_ms % 1000) * 1000;
    event_base_update_cache_time(loop_of(s)->base);
    return pants__event_add(&d->timer, &tv);
}

static int connect_state_error(const pants_stream_t *s)
{
    switch (s->state) {
    case S_NEW:
        return 0;
    case S_OPEN:
        return -EISCONN;
    case S_CLOSED:
        return -EPIPE;
    default:
        return -EALREADY;
    }
}

static int stream_connect(pants_stream_t *s, const char *address)
{
    char host[PANTS__HOST_MAX];
    pants_addr_t a;
    uint16_t port;
    int rc = connect_state_error(s), numeric;

    if (rc < 0)
        return rc;
    numeric = pants__addr_split(address, 0, &a, host, &port);
    if (numeric < 0)
        return numeric;
    if (ensure_dial(s) == NULL)
        return -ENOMEM;
    if (numeric == 1 && (s->dial->host = strdup(host)) == NULL)
        return -ENOMEM;
    rc = arm_connect_timer(s); /* before the connect: a failure sets nothing in motion */
    if (rc < 0) {
        dial_reset(s->dial);
        return rc;
    }
    if (numeric == 0) {
        connect_to(s, &a);
        return 0;
    }
    /* The resolver is the loop's: it is asked from the loop once that runs
     * (a lookup started before would stay in evdns if it never runs). */
    s->dial->port = port;
    s->state = S_RESOLVING;
    pants__handle_defer(&s->handle, P_RESOLVE);
    return 0;
}

static int set_connect_timeout(pants_stream_t *s, uint64_t ms)
{
    if (ms > (uint64_t)INT32_MAX * 1000)
        return -EINVAL;
    if (s->state == S_OPEN || s->state == S_CLOSED)
        return 0; /* it will never connect again */
    if (ensure_dial(s) == NULL)
        return -ENOMEM;
    s->dial->timeout_ms = ms;
    if (s->state != S_RESOLVING && s->state != S_CONNECTING)
        return 0; /* the next connect arms it */
    return arm_connect_timer(s);
}

int pants_stream_set_connect_timeout(pants_stream_t *s, uint64_t ms)
{
    int entered, rc;

    if (s == NULL)
        return -EINVAL;
    entered = pants__loop_enter(loop_of(s), "pants_stream_set_connect_timeout");
    if (entered < 0)
        return entered;
    rc = set_connect_timeout(s, ms);
    pants__loop_leave(loop_of(s), entered);
    return rc;
}

int pants_stream_connect(pants_stream_t *s, const char *address)
{
    int entered, rc;

    if (s == NULL || address == NULL)
        return -EINVAL;
    entered = pants__loop_enter(loop_of(s), "pants_stream_connect");
    if (entered < 0)
        return entered;
    rc = stream_connect(s, address);
    pants__loop_leave(loop_of(s), entered);
    return rc;
}

/* ---- Reading ------------------------------------------------------------ */

static size_t effective_limit(const pants_stream_t *s)
{
    size_t need = pants__framer_min_limit(&s->framer);
    return s->read_limit > need ? s->read_limit : need;
}

/* Cut and deliver every complete frame at the front of p[0..n); returns
 * how many bytes were used, or SIZE_MAX once the stream stopped reading. */
static size_t deliver_span(pants_stream_t *s, const unsigned char *p, size_t n)
{
    size_t used = 0;

    while (s->state == S_OPEN && !s->ending) {
        if (held(s))
            return used; /* the rest waits in the buffer */
        size_t skip = 0;
        int err = 0;
        ssize_t len;
        if (s->framer.kind == PANTS__FRAME_ANY) /* everything is one frame */
            len = used < n ? (ssize_t)(n - used) : PANTS__FRAME_NEED_MORE;
        else
            len = pants__framer_scan(&s->framer, p + used, n - used, &skip, &err);
        if (len == PANTS__FRAME_NEED_MORE)
            return used;
        if (len < 0) {
            pants__stream_fail(s, err);
            return SIZE_MAX;
        }
        pants__framer_consumed(&s->framer);
        if (s->cb->on_read)
            s->cb->on_read(s, p + used, (size_t)len);
        used += (size_t)len + skip;
    }
    return SIZE_MAX;
}

/* Frames from the buffered bytes; then the read limit. */
static void deliver_buffered(pants_stream_t *s)
{
    bool warned = false;

    while (s->state == S_OPEN && !s->ending && !held(s)) {
        size_t len = s->in.len;
        size_t used = len ? deliver_span(s, pants__inbuf_data(&s->in), len) : 0;
        if (used == SIZE_MAX)
            return;
        if (used > 0) {
            pants__inbuf_consume(&s->in, used);
            if (s->timed && s->in.len > 0) /* the next frame's first bytes came now */
                s->since[PANTS_TIMEOUT_FRAME - 1] = pants__loop_now_ms(loop_of(s));
            warned = false;
            continue;
        }
        if (len <= effective_limit(s))
            return;
        if (warned || s->cb->on_overflow == NULL) {
            stream_close_now(s);
            return;
        }
        warned = true;
        s->cb->on_overflow(s);
    }
}

/* Fresh bytes in the scratch buffer: frames straight from it, the rest
 * into the stream's buffer. */
static void deliver_fresh(pants_stream_t *s, const unsigned char *p, size_t n)
{
    size_t used;

    if (s->framer.kind == PANTS__FRAME_ANY && !held(s)) { /* the default: all of it, at once */
        if (s->cb->on_read)
            s->cb->on_read(s, p, n);
        return;
    }
    used = deliver_span(s, p, n);

    if (used == SIZE_MAX || used == n)
        return;
    if (pants__inbuf_append(&s->in, p + used, n - used) < 0) {
        pants__stream_fail(s, -ENOMEM);
        return;
    }
    if (s->timed) /* an unfinished frame starts */
        s->since[PANTS_TIMEOUT_FRAME - 1] = pants__loop_now_ms(loop_of(s));
    if (n - used > effective_limit(s))
        deliver_buffered(s);
}

/* Read into the scratch buffer when nothing is buffered, else append to
 * the buffer.  Returns bytes read, 0 at EOF, or -errno. */
static ssize_t read_some(pants_stream_t *s, bool *direct, size_t *asked)
{
    unsigned char *to;
    ssize_t n;

    *direct = s->in.len == 0 || s->ending;
    if (*direct) {
        *asked = PANTS__SCRATCH_SIZE;
        return s->tp->recv(s->tio, loop_of(s)->scratch, *asked);
    }
    to = pants__inbuf_space(&s->in, 4096, asked);
    if (to == NULL)
        return -ENOMEM;
    n = s->tp->recv(s->tio, to, *asked);
    if (n > 0)
        pants__inbuf_commit(&s->in, (size_t)n);
    return n;
}

/* Edge-triggered: a short read means the socket is drained, except that a
 * FIN which came with the data gives no edge of its own.  So once epoll
 * signalled it (PANTS__IO_CLOSED), read on until the kernel says EAGAIN or
 * EOF. */
static bool must_drain(const pants_stream_t *s)
{
    return s->hup_seen || (s->tls != NULL && pants__tls_may_have_more(s->tls)); /* a record read may leave more */
}

/* Paused, the socket is not read, so a reset shows only as a pending
 * socket error (a plain FIN leaves none; epoll flags a reset as an error,
 * without the peer-closed flag). */
static void paused_check(pants_stream_t *s)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err == 0)
        return;
    io_error(s, -err);
}

/* One read and what it delivers.  false: stop reading for this wake-up. */
static bool read_once(pants_stream_t *s, int round)
{
    bool direct;
    size_t asked;
    ssize_t n;

    if (round > 0 && pants__wq_stage_pin(&s->wq, loop_of(s)) < 0) { /* the scratch is read into again */
        pants__stream_fail(s, -ENOMEM);
        return false;
    }
    n = read_some(s, &direct, &asked);
    if (n == -EINTR)
        return true;
    if (n == 0)
        s->ending = true; /* the peer closed: send what is queued, then close */
    if (n == -EAGAIN || n == 0)
        return false;
    if (n < 0) {
        io_error(s, (int)n);
        return false;
    }
    if (s->timed)
        touch(s, PANTS_TIMEOUT_READ);
    if (s->ending)
        ; /* ending: what arrives now is dropped */
    else if (direct)
        deliver_fresh(s, loop_of(s)->scratch, (size_t)n);
    else
        deliver_buffered(s);
    return s->state == S_OPEN && ((size_t)n == asked || must_drain(s));
}

static void stream_read(pants_stream_t *s)
{
    if (held(s)) {
        paused_check(s);
        return;
    }
    if (s->in.len > 0 && !s->ending)
        deliver_buffered(s); /* the delimiter may have changed meanwhile */
    for (int i = 0; i < READS_PER_WAKEUP; i++) {
        if (i > 0)
            watermarks(s);                 /* what the reads so far made us write */
        if (i > 0 && loop_of(s)->urgent) { /* a callback is due first (on_write_high) */
            pants__handle_defer(&s->handle, P_READ);
            return;
        }
        if (held(s) || s->state != S_OPEN || !read_once(s, i))
            return; /* resume reads again */
    }
    pants__handle_defer(&s->handle, P_READ); /* more is there: after the others */
}

/* ---- Writing ------------------------------------------------------------ */

/* Writes from outside the stream's own callbacks: flush later in this
 * iteration, once, whatever else is written meanwhile. */
static void schedule_flush(pants_stream_t *s)
{
    if (!s->in_io && s->state == S_OPEN)
        pants__handle_defer(&s->handle, P_WRITE);
}

static int write_state_error(const pants_stream_t *s)
{
    if (s->state == S_CLOSED || s->ending)
        return -EPIPE;
    return 0;
}

/* Would len more bytes in memory pass the write limit? */
static bool over_limit(const pants_stream_t *s, size_t len)
{
    size_t limit = s->opt->write_limit, mem;

    if (limit == 0)
        return false;
    mem = pants__wq_memory(&s->wq, loop_of(s));
    return mem > limit || len > limit - mem;
}

/* Something was queued: flush it, and see whether pending passed high. */
static void queued(pants_stream_t *s)
{
    s->want_on_write = true;
    if (!s->in_io) { /* inside, the end of the I/O callback looks */
        schedule_flush(s);
        watermarks(s);
    }
}

static int stream_write(pants_stream_t *s, const void *data, size_t len)
{
    int rc = write_state_error(s);

    if (rc < 0 || len == 0)
        return rc;
    if (over_limit(s, len))
        return -ENOBUFS;
    rc = pants__wq_write(&s->wq, loop_of(s), data, len);
    if (rc < 0)
        return rc;
    queued(s);
    return 0;
}

int pants__stream_write_shared(pants_stream_t *s, const void *data, size_t len,
                               void (*release)(const void *, size_t, void *), void *arg)
{
    int rc = write_state_error(s);

    if (rc == 0 && over_limit(s, len))
        rc = -ENOBUFS;
    if (rc < 0 || len == 0) {
        release(data, len, arg);
        return rc;
    }
    rc = pants__wq_write_ref(&s->wq, loop_of(s), data, len, release, arg);
    if (rc < 0)
        return rc;
    queued(s);
    return 0;
}

int pants_stream_write(pants_stream_t *s, const void *data, size_t len)
{
    int entered, rc;

    if (s == NULL || (data == NULL && len > 0))
        return -EINVAL;
    entered = pants__loop_enter(loop_of(s), "pants_stream_write");
    if (entered < 0)
        return entered;
    rc = stream_write(s, data, len);
    pants__loop_leave(loop_of(s), entered);
    return rc;
}

/* How many bytes of fd from offset to send: cut at the end of the file. */
static int file_span(int fd, off_t offset, size_t nbytes, size_t *span)
{
    struct stat st;

    if (offset < 0)
        return -EINVAL;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EINVAL;
    *span = offset >= st.st_size ? 0 : (size_t)(st.st_size - offset);
    if (nbytes != 0 && nbytes < *span)
        *span = nbytes;
    return 0;
}

static int stream_write_file(pants_stream_t *s, int fd, off_t offset, size_t nbytes)
{
    size_t span = 0;
    int rc = write_state_error(s);

    if (rc == 0)
        rc = file_span(fd, offset, nbytes, &span);
    if (rc < 0 || span == 0)
        return rc;
    rc = pants__wq_write_file(&s->wq, loop_of(s), fd, offset, span);
    if (rc < 0)
        return rc;
    queued(s);
    return 0;
}

int pants_stream_write_file(pants_stream_t *s, int fd, off_t offset, size_t nbytes)
{
    int entered, rc;

    if (s == NULL)
        return -EINVAL;
    if (fd < 0)
        return -EBADF;
    entered = pants__loop_enter(loop_of(s), "pants_stream_write_file");
    if (entered < 0)
        return entered;
    rc = stream_write_file(s, fd, offset, nbytes);
    pants__loop_leave(loop_of(s), entered);
    return rc;
}

/* The queue is empty: on_write if something was written since the last
 * one, and an ending stream closes.  true: on_write wrote again. */
static bool drained(pants_stream_t *s)
{
    if (s->want_on_write) {
        s->want_on_write = false;
        if (s->cb->on_write)
            s->cb->on_write(s);
    }
    if (s->state != S_OPEN)
        return false;
    if (pending_of(s) > 0)
        return true;
    if (s->ending)
        stream_close_now(s);
    else if (s->tls_phase == TLS_AT_DRAIN) /* STARTTLS: what was queued before is out */
        tls_begin(s);
    return false;
}

/* Send what the queue holds, as far as the transport takes it. */
static void stream_flush(pants_stream_t *s)
{
    for (int round = 0; round < FLUSH_ROUNDS && s->state == S_OPEN; round++) {
        size_t before = s->timed ? pending_of(s) : 0;
        int rc = pants__wq_flush(&s->wq, loop_of(s), s->tp, s->tio);
        if (s->timed)
            flushed(s, before, rc);
        if (rc < 0) {
            io_error(s, rc);
            return;
        }
        if (rc == PANTS__WQ_BLOCKED)
            return; /* the socket's next writable edge brings us back */
        if (rc == PANTS__WQ_MORE)
            break;
        if (!drained(s))
            return;
    }
    if (s->state == S_OPEN)
        pants__handle_defer(&s->handle, P_WRITE); /* the rest after the other streams */
}

/* The socket is ready (or the stream asked to run again): read, deliver,
 * then send what is queued, the writes of its callbacks with it. */
static void stream_io(pants_stream_t *s, unsigned events)
{
    pants_loop_t *l = loop_of(s);

    s->in_io = true;
    pants__wq_stage_begin(&s->wq, l); /* without a stage, writes just queue */
    if (s->state == S_CONNECTING && !connect_finished(s))
        goto done;
    if (s->state == S_PROXY) {
        if (!proxy_step(s))
            goto done;
        events |= PANTS__IO_READ; /* what came after the header is in the socket */
    }
    if (s->state == S_HANDSHAKE) {
        if (!tls_step(s))
            goto done;
        events |= PANTS__IO_READ; /* records may have come with the last handshake message */
    }
    if (events & PANTS__IO_CLOSED)
        s->hup_seen = true;
    if ((events & (PANTS__IO_READ | PANTS__IO_CLOSED | PANTS__IO_ERROR)) ||
        (s->tls != NULL && pants__tls_read_wants_write(s->tls)))
        stream_read(s);
    if (s->state == S_OPEN)
        stream_flush(s);
    watermarks(s);
done:
    if (pants__wq_stage_end(&s->wq, l) < 0) /* the stage is the loop's: free it */
        pants__stream_fail(s, -ENOMEM);
    s->in_io = false;
}

static void stream_on_io(pants__io_t *w, unsigned events)
{
    pants_stream_t *s = (pants_stream_t *)((char *)w - offsetof(pants_stream_t, io));

    if (s->fd >= 0) /* closed earlier in this round: nothing more */
        stream_io(s, events);
}

/* ---- Flow control -------------------------------------------------------- */

/* on_write_high is due: it runs from the loop, before the stream whose
 * callback wrote this reads any more (a proxy pauses that one in it). */
static void high_due(pants_stream_t *s)
{
    pants__loop_urgent(loop_of(s));
    pants__handle_defer(&s->handle, P_HIGH);
}

/* pending() moved: past high, on_write_high (or, without one, reading
 * pauses); back to low after a high, on_write_low (and the pause ends). */
static void watermarks_moved(pants_stream_t *s)
{
    const pants_stream_options_t *o = s->opt;
    size_t pending;

    if (s->state != S_OPEN)
        return;
    pending = pending_of(s);
    if (!s->above_high && pending > o->write_high) {
        s->above_high = true;
        if (s->handle.pending & P_LOW) /* low, then high again, before it heard of the low: neither */
            s->handle.pending &= (uint16_t)~P_LOW;
        else if (s->cb->on_write_high)
            high_due(s);
        else
            s->auto_paused = true;
    } else if (s->above_high && (pending <= o->write_low || o->write_high == SIZE_MAX)) {
        s->above_high = false;
        if (s->auto_paused) {
            s->auto_paused = false;
            if (!s->paused)
                reading_resumed(s);
        }
        /* Also after a high it has not heard of yet: it may have seen
         * pants_stream_is_writable() turn false and wait for the low, so
         * it hears both, high first (stream_run_pending's order). */
        if (s->cb->on_write_low)
            pants__handle_defer(&s->handle, P_LOW);
    }
}

/* Reading runs again: the edge that announced the waiting bytes may be
 * gone, so look again; READ and FRAME count from now. */
static void reading_resumed(pants_stream_t *s)
{
    if (s->state != S_OPEN)
        return;
    pants__handle_defer(&s->handle, P_READ);
    if (s->timed) {
        uint64_t now = pants__loop_now_ms(loop_of(s));
        s->since[PANTS_TIMEOUT_READ - 1] = s->since[PANTS_TIMEOUT_FRAME - 1] = now;
        schedule_timeouts(s);
    }
}

int pants__stream_options_resolve(const pants_stream_options_t *in, pants_stream_options_t *out)
{
    static const pants_stream_options_t none;

    *out = in ? *in : none;
    if (out->read_limit == 0)
        out->read_limit = DEFAULT_READ_LIMIT;
    if (out->write_high == 0)
        out->write_high = DEFAULT_WRITE_HIGH;
    if (out->write_low == 0) /* the default, or a quarter of a smaller high */
        out->write_low = out->write_high > DEFAULT_WRITE_LOW ? DEFAULT_WRITE_LOW : out->write_high / 4;
    if (out->write_high != SIZE_MAX && out->write_low >= out->write_high)
        return -EINVAL;
    if (out->idle_timeout_ms > MAX_TIMEOUT_MS || out->read_timeout_ms > MAX_TIMEOUT_MS ||
        out->write_timeout_ms > MAX_TIMEOUT_MS || out->frame_timeout_ms > MAX_TIMEOUT_MS)
        return -EINVAL;
    return 0;
}

/* Our own copy of the limits, to change (a connection shares its server's
 * until then).  NULL if out of memory. */
static pants_stream_options_t *own_options(pants_stream_t *s)
{
    pants_stream_options_t *o;

    if (s->owns_opt)
        return (pants_stream_options_t *)(uintptr_t)s->opt;
    o = malloc(sizeof(*o));
    if (o == NULL)
        return NULL;
    *o = *s->opt;
    s->opt = o;
    s->owns_opt = true;
    return o;
}

static int set_watermarks(pants_stream_t *s, size_t low, size_t high)
{
    pants_stream_options_t *o;

    if (high > 0 && low >= high)
        return -EINVAL;
    if ((o = own_options(s)) == NULL)
        return -ENOMEM;
    o->write_low = high > 0 ? low : 0;
    o->write_high = high > 0 ? high : SIZE_MAX;
    watermarks(s);
    return 0;
}

static int set_write_limit(pants_stream_t *s, size_t max_bytes)
{
    pants_stream_options_t *o = own_options(s);

    if (o == NULL)
        return -ENOMEM;
    o->write_limit = max_bytes;
    return 0;
}

int pants_stream_set_write_watermarks(pants_stream_t *s, size_t low, size_t high)
{
    WITH_OPEN_STREAM(s, "pants_stream_set_write_watermarks", set_watermarks(s, low, high));
}

int pants_stream_set_write_limit(pants_stream_t *s, size_t max_bytes)
{
    WITH_OPEN_STREAM(s, "pants_stream_set_write_limit", set_write_limit(s, max_bytes));
}

bool pants_stream_is_writable(const pants_stream_t *s)
{
    if (s == NULL)
        return false;
    if (s->opt->write_high == SIZE_MAX || pending_of(s) <= s->opt->write_high)
        return true;
    /* Inside a callback the watermarks are looked at once it returns, when
     * what it wrote may be sent already: the caller has seen the high, so
     * it is one now, and a low will follow. */
    if (!s->above_high && pants__loop_is_current(s->handle.loop))
        watermarks_moved((pants_stream_t *)(uintptr_t)s);
    return false;
}

/* ---- Time limits -------------------------------------------------------- */

static uint64_t timeout_of(const pants_stream_options_t *o, int kind)
{
    switch (kind) {
    case PANTS_TIMEOUT_IDLE:
        return o->idle_timeout_ms;
    case PANTS_TIMEOUT_READ:
        return o->read_timeout_ms;
    case PANTS_TIMEOUT_WRITE:
        return o->write_timeout_ms;
    default:
        return o->frame_timeout_ms;
    }
}

static bool any_timeout(const pants_stream_options_t *o)
{
    return o->idle_timeout_ms || o->read_timeout_ms || o->write_timeout_ms || o->frame_timeout_ms;
}

/* Does kind count now?  READ while reading; WRITE while bytes wait; FRAME
 * while an unfinished frame waits and reading runs. */
static bool timeout_counts(const pants_stream_t *s, int kind)
{
    switch (kind) {
    case PANTS_TIMEOUT_READ:
        return !held(s) && !s->ending;
    case PANTS_TIMEOUT_WRITE:
        return pending_of(s) > 0;
    case PANTS_TIMEOUT_FRAME:
        return s->in.len > 0 && !held(s) && !s->ending;
    default:
        return true;
    }
}

/* Activity of kind (READ: bytes arrived; WRITE: bytes went out). */
static void touch(pants_stream_t *s, int kind)
{
    uint64_t now = pants__loop_now_ms(loop_of(s));

    s->since[PANTS_TIMEOUT_IDLE - 1] = now;
    s->since[kind - 1] = now;
}

/* A flush ran: bytes went out (activity), or bytes are left waiting
 * where none waited before (WRITE counts from now). */
static void flushed(pants_stream_t *s, size_t before, int rc)
{
    size_t after = pending_of(s);

    if (rc < 0)
        return;
    if (after < before)
        touch(s, PANTS_TIMEOUT_WRITE);
    else if (after > 0 && !s->write_waiting)
        s->since[PANTS_TIMEOUT_WRITE - 1] = pants__loop_now_ms(loop_of(s));
    s->write_waiting = after > 0;
}

/* When to look next: the earliest deadline of the kinds that count, and
 * no later than the shortest timeout set from now, so a kind that starts
 * counting later is never looked at late. */
static void schedule_timeouts(pants_stream_t *s)
{
    pants_loop_t *l = loop_of(s);
    uint64_t now, next = UINT64_MAX, shortest = UINT64_MAX;
    int rc;

    if (!s->timed || s->state != S_OPEN) {
        pants__deadline_clear(l, &s->dl);
        return;
    }
    now = pants__loop_now_ms(l);
    for (int kind = PANTS_TIMEOUT_IDLE; kind <= PANTS_TIMEOUT_FRAME; kind++) {
        uint64_t ms = timeout_of(s->opt, kind);
        if (ms == 0)
            continue;
        shortest = ms < shortest ? ms : shortest;
        if (timeout_counts(s, kind) && s->since[kind - 1] + ms + 1 < next)
            next = s->since[kind - 1] + ms + 1;
    }
    if (now + shortest + 1 < next)
        next = now + shortest + 1;
    rc = pants__deadline_set(l, &s->dl, next);
    if (rc < 0)
        pants__stream_fail(s, rc); /* a time limit that cannot be kept: not silently */
}

/* Every timeout counts from now (a connection came up, or they changed). */
static void start_timing(pants_stream_t *s)
{
    s->timed = any_timeout(s->opt);
    if (s->timed) {
        uint64_t now = pants__loop_now_ms(loop_of(s));
        for (int i = 0; i < TIMEOUT_KINDS; i++)
            s->since[i] = now;
        s->write_waiting = pending_of(s) > 0;
    }
    schedule_timeouts(s);
}

/* kind ran out: on_timeout, or close; still open, it starts over. */
static void timed_out(pants_stream_t *s, int kind)
{
    if (s->cb->on_timeout)
        s->cb->on_timeout(s, kind);
    else
        stream_close_now(s);
    if (s->state == S_OPEN)
        s->since[kind - 1] = pants__loop_now_ms(loop_of(s));
}

static void stream_due(pants__deadline_t *d)
{
    pants_stream_t *s = (pants_stream_t *)((char *)d - offsetof(pants_stream_t, dl));
    uint64_t now = pants__loop_now_ms(loop_of(s));

    if (s->state == S_PROXY) { /* no PROXY header in time */
        stream_close_now(s);
        return;
    }
    if (s->state == S_HANDSHAKE) { /* a server handshake that took too long */
        pants__stream_fail(s, -ETIMEDOUT);
        return;
    }
    for (int kind = PANTS_TIMEOUT_IDLE; kind <= PANTS_TIMEOUT_FRAME && s->state == S_OPEN; kind++) {
        uint64_t ms = timeout_of(s->opt, kind);
        if (ms != 0 && timeout_counts(s, kind) && now - s->since[kind - 1] > ms) /* stamps are whole ms, */
            timed_out(s, kind); /* so > keeps it never early */
    }
    schedule_timeouts(s);
}

static int set_timeout(pants_stream_t *s, int kind, uint64_t ms)
{
    pants_stream_options_t *o;

    if (kind < PANTS_TIMEOUT_IDLE || kind > PANTS_TIMEOUT_FRAME || ms > MAX_TIMEOUT_MS)
        return -EINVAL;
    if ((o = own_options(s)) == NULL)
        return -ENOMEM;
    if (kind == PANTS_TIMEOUT_IDLE)
        o->idle_timeout_ms = ms;
    else if (kind == PANTS_TIMEOUT_READ)
        o->read_timeout_ms = ms;
    else if (kind == PANTS_TIMEOUT_WRITE)
        o->write_timeout_ms = ms;
    else
        o->frame_timeout_ms = ms;
    s->timed = any_timeout(o);
    s->since[kind - 1] = pants__loop_now_ms(loop_of(s));
    schedule_timeouts(s);
    return 0;
}

int pants_stream_set_timeout(pants_stream_t *s, int kind, uint64_t ms)
{
    WITH_OPEN_STREAM(s, "pants_stream_set_timeout", set_timeout(s, kind, ms));
}

/* ---- TLS ------------------------------------------------------------------ */

/* The handshake starts on the socket: state S_HANDSHAKE until it is done.
 * A server's is bounded by its frame timeout (or 10 s); a client's by the
 * connect timeout, still armed. */
static void tls_begin(pants_stream_t *s)
{
    int rc = pants__tls_attach(s->tls, s->fd);
    bool server = pants__tls_is_server(s->tls);

    s->tls_phase = TLS_ON;
    s->state = S_HANDSHAKE;
    if (rc == 0 && server) {
        uint64_t ms = s->opt->frame_timeout_ms ? s->opt->frame_timeout_ms : PANTS__TLS_HANDSHAKE_MS;
        pants__deadline_clear(loop_of(s), &s->dl);
        rc = pants__deadline_set(loop_of(s), &s->dl, pants__loop_now_ms(loop_of(s)) + ms);
    }
    if (rc < 0) {
        pants__stream_fail(s, rc);
        return;
    }
    pants__handle_defer(&s->handle, P_WRITE); /* the first step, from the loop */
}

/* An accepted connection of a TLS server: its handshake, server side. */
static void tls_accept(pants_stream_t *s, struct ssl_ctx_st *ctx)
{
    int err;

    s->tls = pants__tls_new(ctx, true, NULL, &err);
    if (s->tls == NULL) {
        pants__stream_fail(s, err);
        return;
    }
    s->state = S_HANDSHAKE;
    tls_begin(s);
}

/* The handshake failed: a client hears on_connect_error, a server side
 * on_error (a reset closes quietly); then it closes. */
static void handshake_failed(pants_stream_t *s, int err)
{
    if (!pants__tls_is_server(s->tls)) {
        connect_error(s, err == PANTS_ETLS ? err : PANTS_ETLS);
        return;
    }
    io_error(s, err);
}

/* A step of the handshake.  true: done, the stream is open (on_connect
 * ran); false: it waits for the socket, or failed. */
static bool tls_step(pants_stream_t *s)
{
    int rc = pants__tls_handshake(s->tls);

    if (rc == -EAGAIN)
        return false;
    if (rc < 0) {
        handshake_failed(s, rc);
        return false;
    }
    s->tp = pants__tls_transport(s->tls);
    s->tio = s->tls;
    s->state = S_OPEN;
    dial_free(s);
    pants__deadline_clear(loop_of(s), &s->dl);
    start_timing(s);
    if (s->cb->on_connect)
        s->cb->on_connect(s);
    if (s->state == S_OPEN && pending_of(s) > 0)
        pants__handle_defer(&s->handle, P_WRITE); /* what waited for the handshake */
    return s->state == S_OPEN;
}

static int start_tls(pants_stream_t *s, struct ssl_ctx_st *ctx, const char *server_name)
{
    bool server = s->server != NULL || pants__tls_ctx_is_server(ctx);
    int err;

    if (ctx == NULL)
        return -EINVAL;
    if (s->tls != NULL)
        return -EALREADY;
    if (s->state == S_CLOSED || s->ending)
        return -EPIPE;
    if (s->state != S_NEW && s->state != S_OPEN)
        return -EALREADY; /* a connect is under way: TLS goes before it */
    s->tls = pants__tls_new(ctx, server, server_name, &err);
    if (s->tls == NULL)
        return err;
    if (s->state == S_NEW) {
        s->tls_phase = TLS_AT_OPEN;
        return 0;
    }
    s->tls_phase = TLS_AT_DRAIN; /* reading waits: the peer's handshake must stay in the socket */
    if (!s->in_io && pending_of(s) == 0)
        tls_begin(s);
    else
        pants__handle_defer(&s->handle, P_WRITE);
    return 0;
}

int pants_stream_start_tls(pants_stream_t *s, struct ssl_ctx_st *ctx, const char *server_name)
{
    int entered, rc;

    if (s == NULL)
        return -EINVAL;
    entered = pants__loop_enter(loop_of(s), "pants_stream_start_tls");
    if (entered < 0)
        return entered;
    rc = start_tls(s, ctx, server_name);
    pants__loop_leave(loop_of(s), entered);
    return rc;
}

struct ssl_st *pants_stream_ssl(const pants_stream_t *s)
{
    return s ? pants__tls_ssl(s->tls) : NULL;
}

/* ---- Ending ------------------------------------------------------------- */

static int stream_end(pants_stream_t *s)
{
    if (s->state == S_CLOSED)
        return -EPIPE;
    s->ending = true;
    if (s->state == S_NEW) {
        stream_close_now(s);
    } else if (s->state == S_OPEN && !s->in_io) {
        if (pending_of(s) == 0)
            stream_close_now(s);
        else
            pants__handle_defer(&s->handle, P_WRITE);
    }
    return 0;
}

int pants_stream_end(pants_stream_t *s)
{
    int entered, rc;

    if (s == NULL)
        return -EINVAL;
    entered = pants__loop_enter(loop_of(s), "pants_stream_end");
    if (entered < 0)
        return entered;
    rc = stream_end(s);
    pants__loop_leave(loop_of(s), entered);
    return rc;
}

/* ---- Read delimiters ---------------------------------------------------- */

/* After a delimiter change outside on_read, bytes already buffered are cut
 * with the new one at once (from the loop, not inside this call). */
static void delimiter_changed(pants_stream_t *s)
{
    if (!s->in_io && s->state == S_OPEN && s->in.len > 0)
        pants__handle_defer(&s->handle, P_READ);
}

/* A delimiter call's result: a change takes effect from the loop. */
static int delimiter_set(pants_stream_t *s, int rc)
{
    if (rc == 0)
        delimiter_changed(s);
    return rc;
}

int pants_stream_read_any(pants_stream_t *s)
{
    WITH_OPEN_STREAM(s, "pants_stream_read_any", delimiter_set(s, pants__framer_set_any(&s->framer)));
}

int pants_stream_read_until(pants_stream_t *s, const void *delim, size_t len)
{
    WITH_OPEN_STREAM(s, "pants_stream_read_until",
                     delimiter_set(s, pants__framer_set_until(&s->framer, delim, len)));
}

int pants_stream_read_exact(pants_stream_t *s, size_t n)
{
    WITH_OPEN_STREAM(s, "pants_stream_read_exact", delimiter_set(s, pants__framer_set_exact(&s->framer, n)));
}

int pants_stream_read_regex(pants_stream_t *s, const char *pattern)
{
    WITH_OPEN_STREAM(s, "pants_stream_read_regex",
                     delimiter_set(s, pants__framer_set_regex(&s->framer, pattern)));
}

int pants_stream_read_framed(pants_stream_t *s, pants_framer_t fn, void *arg)
{
    WITH_OPEN_STREAM(s, "pants_stream_read_framed",
                     delimiter_set(s, pants__framer_set_framed(&s->framer, fn, arg)));
}

static int set_limit(pants_stream_t *s, size_t max_bytes)
{
    if (max_bytes == 0)
        return -EINVAL;
    s->read_limit = max_bytes;
    return 0;
}

int pants_stream_set_read_limit(pants_stream_t *s, size_t max_bytes)
{
    WITH_OPEN_STREAM(s, "pants_stream_set_read_limit", delimiter_set(s, set_limit(s, max_bytes)));
}

/* ---- Pausing reads ------------------------------------------------------ */

static int set_paused(pants_stream_t *s, bool paused)
{
    if (s->state == S_CLOSED)
        return -EPIPE;
    if (s->paused == paused)
        return 0;
    s->paused = paused;
    if (!held(s))
        reading_resumed(s);
    else if (s->timed)
        schedule_timeouts(s); /* READ and FRAME stop counting */
    return 0;
}

static int paused_call(pants_stream_t *s, const char *what, bool paused)
{
    int entered, rc;

    if (s == NULL)
        return -EINVAL;
    entered = pants__loop_enter(loop_of(s), what);
    if (entered < 0)
        return entered;
    rc = set_paused(s, paused);
    pants__loop_leave(loop_of(s), entered);
    return rc;
}

int pants_stream_pause_reading(pants_stream_t *s)
{
    return paused_call(s, "pants_stream_pause_reading", true);
}

int pants_stream_resume_reading(pants_stream_t *s)
{
    return paused_call(s, "pants_stream_resume_reading", false);
}

bool pants_stream_is_reading_paused(const pants_stream_t *s)
{
    return s != NULL && held(s);
}

/* ---- Posting to a stream ------------------------------------------------ */

typedef void (*stream_fn_t)(pants_stream_t *, void *);

static void stream_post_task(void *a, void *b, uintptr_t c)
{
    pants_stream_t *s = a;
    union {
        void *p;
        stream_fn_t fn;
    } u = {.p = b};

    if (s->state != S_CLOSED)
        u.fn(s, (void *)c);
    pants_stream_unref(s);
}

int pants_stream_post(pants_stream_t *s, void (*fn)(pants_stream_t *, void *), void *arg)
{
    union {
        void *p;
        stream_fn_t fn;
    } u = {.fn = fn};
    int rc;

    if (s == NULL || fn == NULL)
        return -EINVAL;
    pants_stream_ref(s);
    rc = pants__loop_post(loop_of(s), stream_post_task, s, u.p, (uintptr_t)arg);
    if (rc < 0)
        pants_stream_unref(s);
    return rc;
}
