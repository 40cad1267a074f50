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
#include "wqueue-internal.h"

#define DEFAULT_READ_LIMIT (64 * 1024)
#define READS_PER_WAKEUP   16 /* then let the other streams run */
#define FLUSH_ROUNDS       4  /* on_write may write again: flush that too, this often */

enum stream_state {
    S_NEW,        /* not connected yet */
    S_RESOLVING,  /* waiting for the resolver */
    S_CONNECTING, /* connect() in progress (or failed, error pending) */
    S_OPEN,       /* connected */
    S_CLOSED,     /* closed; on_close pending or done */
};

enum pending {
    P_CONNECT_ERROR = 1, /* deliver the dial's error */
    P_RESOLVE = 2,       /* ask the loop's resolver for the dial's host */
    P_READ = 4,          /* read (and deliver what is buffered) again */
    P_WRITE = 8,         /* flush what was written outside the I/O callback */
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

struct pants_stream_s {
    pants__handle_t handle;              /* life cycle; handle.loop is set once, read anywhere */
    pants__io_t io;                      /* the socket's watcher: read | write | closed, edge-triggered */
    int fd;                              /* the socket, or -1 */
    unsigned char state;                 /* enum stream_state */
    unsigned char family;                /* AF_INET/AF_INET6/AF_UNIX, or AF_UNSPEC */
    bool in_io : 1;                      /* its own I/O callback runs: writes are staged */
    bool ending : 1;                     /* end(): close once everything is sent */
    bool want_on_write : 1;              /* something was written since the last on_write */
    bool hup_seen : 1;                   /* the peer's FIN was signalled: a short read is not the end */
    bool paused : 1;                     /* pause_reading: no read, no on_read until resume */
    bool owns_cb : 1;                    /* cb is our own copy (else the server's table) */
    const pants_stream_callbacks_t *cb;  /* the application's callbacks */
    void *data;                          /* the application's pointer */
    pants_server_t *server;              /* accepting server, or NULL */
    pants_stream_t *srv_prev;            /* the server's list of connections on this loop */
    pants_stream_t *srv_next;
    pants__inbuf_t in;                   /* bytes of an incomplete frame */
    pants__wq_t wq;                      /* bytes and files not yet sent, in order */
    const pants__transport_t *tp;        /* how bytes go in and out */
    pants__framer_t framer;              /* the read delimiter */
    size_t read_limit;                   /* most bytes that may wait for a frame */
    dial_t *dial;                        /* connect state, or NULL */
};

static const pants_stream_callbacks_t no_callbacks; /* cb of a stream given none */

static void stream_on_io(pants__io_t *w, unsigned events);
static void stream_io(pants_stream_t *s, unsigned events);
static void stream_close_now(pants_stream_t *s);
static int stream_end(pants_stream_t *s);
static void start_lookup(pants_stream_t *s);
static void connect_error(pants_stream_t *s, int err);

static inline pants_loop_t *loop_of(const pants_stream_t *s)
{
    return s->handle.loop;
}

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

int pants_stream_remote_address(const pants_stream_t *s, pants_addr_t *a)
{
    if (s == NULL || s->state != S_OPEN)
        return s ? -ENOTCONN : -EINVAL;
    return pants__addr_of_fd(s->fd, true, a);
}

int pants_stream_local_address(const pants_stream_t *s, pants_addr_t *a)
{
    if (s == NULL || s->state != S_OPEN)
        return s ? -ENOTCONN : -EINVAL;
    return pants__addr_of_fd(s->fd, false, a);
}

size_t pants_stream_pending(const pants_stream_t *s)
{
    return s ? pants__wq_pending(&s->wq, loop_of(s)) : 0;
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

static void release_io(pants_stream_t *s)
{
    disarm_connect_timer(s);
    if (s->dial)
        dial_reset(s->dial);
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
static void stream_fail(pants_stream_t *s, int err)
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
        stream_fail(s, err);
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
    if ((bits & (P_READ | P_WRITE)) && s->state == S_OPEN)
        stream_io(s, (bits & P_READ ? PANTS__IO_READ : 0) | (bits & P_WRITE ? PANTS__IO_WRITE : 0));
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
    s->tp = &pants__plain_transport;
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
    s->state = S_OPEN;
    s->family = (unsigned char)pants__server_family(srv); /* no getsockname per connection */
    pants__server_conn_opened(srv, s);
    pants__handle_start(&s->handle, l, &stream_ops, true);
    s->fd = fd;
    pants__server_accepted(srv, s);
    if (s->state != S_OPEN)
        return;
    rc = pants__io_start(l, &s->io, fd, IO_EVENTS);
    if (rc < 0)
        stream_fail(s, rc);
    else if (s->cb->on_connect)
        s->cb->on_connect(s);
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
    bool keep = s->cb->on_connect_error != NULL && !s->ending;

    disarm_connect_timer(s);
    s->state = S_NEW;
    if (s->cb->on_connect_error)
        s->cb->on_connect_error(s, err);
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
    dial_free(s); /* an open stream never connects again */
    s->state = S_OPEN;
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
    if (s->state != S_RESOLVING && s->state != S_CONNECTING)
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
        if (s->paused)
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
            stream_fail(s, err);
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

    while (s->state == S_OPEN && !s->ending && !s->paused) {
        size_t len = s->in.len;
        size_t used = len ? deliver_span(s, pants__inbuf_data(&s->in), len) : 0;
        if (used == SIZE_MAX)
            return;
        if (used > 0) {
            pants__inbuf_consume(&s->in, used);
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

    if (s->framer.kind == PANTS__FRAME_ANY && !s->paused) { /* the default: all of it, at once */
        if (s->cb->on_read)
            s->cb->on_read(s, p, n);
        return;
    }
    used = deliver_span(s, p, n);

    if (used == SIZE_MAX || used == n)
        return;
    if (pants__inbuf_append(&s->in, p + used, n - used) < 0) {
        stream_fail(s, -ENOMEM);
        return;
    }
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
        return s->tp->recv(&s->fd, loop_of(s)->scratch, *asked);
    }
    to = pants__inbuf_space(&s->in, 4096, asked);
    if (to == NULL)
        return -ENOMEM;
    n = s->tp->recv(&s->fd, to, *asked);
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
    return s->hup_seen;
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
        stream_fail(s, -ENOMEM);
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
    if (s->paused) {
        paused_check(s);
        return;
    }
    if (s->in.len > 0 && !s->ending)
        deliver_buffered(s); /* the delimiter may have changed meanwhile */
    for (int i = 0; i < READS_PER_WAKEUP; i++)
        if (s->paused || s->state != S_OPEN || !read_once(s, i))
            return; /* resume reads again */
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

static int stream_write(pants_stream_t *s, const void *data, size_t len)
{
    int rc = write_state_error(s);

    if (rc < 0 || len == 0)
        return rc;
    rc = pants__wq_write(&s->wq, loop_of(s), data, len);
    if (rc < 0)
        return rc;
    s->want_on_write = true;
    schedule_flush(s);
    return 0;
}

int pants__stream_write_shared(pants_stream_t *s, const void *data, size_t len,
                               void (*release)(const void *, size_t, void *), void *arg)
{
    int rc = write_state_error(s);

    if (rc < 0 || len == 0) {
        release(data, len, arg);
        return rc;
    }
    rc = pants__wq_write_ref(&s->wq, loop_of(s), data, len, release, arg);
    if (rc < 0)
        return rc;
    s->want_on_write = true;
    schedule_flush(s);
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
    s->want_on_write = true;
    schedule_flush(s);
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
    if (pants_stream_pending(s) > 0)
        return true;
    if (s->ending)
        stream_close_now(s);
    return false;
}

/* Send what the queue holds, as far as the transport takes it. */
static void stream_flush(pants_stream_t *s)
{
    for (int round = 0; round < FLUSH_ROUNDS && s->state == S_OPEN; round++) {
        int rc = pants__wq_flush(&s->wq, loop_of(s), s->tp, &s->fd);
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
    if (events & PANTS__IO_CLOSED)
        s->hup_seen = true;
    if (events & (PANTS__IO_READ | PANTS__IO_CLOSED | PANTS__IO_ERROR))
        stream_read(s);
    if (s->state == S_OPEN)
        stream_flush(s);
done:
    if (pants__wq_stage_end(&s->wq, l) < 0) /* the stage is the loop's: free it */
        stream_fail(s, -ENOMEM);
    s->in_io = false;
}

static void stream_on_io(pants__io_t *w, unsigned events)
{
    pants_stream_t *s = (pants_stream_t *)((char *)w - offsetof(pants_stream_t, io));

    if (s->fd >= 0) /* closed earlier in this round: nothing more */
        stream_io(s, events);
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
        if (pants_stream_pending(s) == 0)
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

#define WITH_STREAM(s, what, expr)                                                                           \
    do {                                                                                                     \
        int entered_, rc_;                                                                                   \
        if ((s) == NULL)                                                                                     \
            return -EINVAL;                                                                                  \
        entered_ = pants__loop_enter(loop_of(s), what);                                                       \
        if (entered_ < 0)                                                                                    \
            return entered_;                                                                                 \
        rc_ = (s)->state == S_CLOSED ? -EPIPE : (expr); /* its framer is gone */                             \
        if (rc_ == 0)                                                                                        \
            delimiter_changed(s);                                                                            \
        pants__loop_leave(loop_of(s), entered_);                                                              \
        return rc_;                                                                                          \
    } while (0)

int pants_stream_read_any(pants_stream_t *s)
{
    WITH_STREAM(s, "pants_stream_read_any", pants__framer_set_any(&s->framer));
}

int pants_stream_read_until(pants_stream_t *s, const void *delim, size_t len)
{
    WITH_STREAM(s, "pants_stream_read_until", pants__framer_set_until(&s->framer, delim, len));
}

int pants_stream_read_exact(pants_stream_t *s, size_t n)
{
    WITH_STREAM(s, "pants_stream_read_exact", pants__framer_set_exact(&s->framer, n));
}

int pants_stream_read_regex(pants_stream_t *s, const char *pattern)
{
    WITH_STREAM(s, "pants_stream_read_regex", pants__framer_set_regex(&s->framer, pattern));
}

int pants_stream_read_framed(pants_stream_t *s, pants_framer_t fn, void *arg)
{
    WITH_STREAM(s, "pants_stream_read_framed", pants__framer_set_framed(&s->framer, fn, arg));
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
    WITH_STREAM(s, "pants_stream_set_read_limit", set_limit(s, max_bytes));
}

/* ---- Pausing reads ------------------------------------------------------ */

static int set_paused(pants_stream_t *s, bool paused)
{
    if (s->state == S_CLOSED)
        return -EPIPE;
    if (s->paused == paused)
        return 0;
    s->paused = paused;
    /* The edge that announced the waiting bytes may be gone: look again. */
    if (!paused && s->state == S_OPEN)
        pants__handle_defer(&s->handle, P_READ);
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
    return s != NULL && s->paused;
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
