/* stream.c -- a connected byte stream, TCP or Unix, pinned to one loop.
 *
 * One edge-triggered libevent event per socket covers reading, writing and
 * the end of a non-blocking connect, so no epoll_ctl is made per message.
 * A wake-up reads as much as is there into the loop's scratch buffer and
 * cuts frames straight out of it; only the bytes of an incomplete frame are
 * copied into the stream's own input buffer (buffer/inbuf.c).  Writes made while the stream's
 * own callbacks run are staged in the loop's write scratch and sent with
 * one send() when the wake-up ends; what the kernel does not take waits in
 * an evbuffer (which also carries sendfile segments) until the socket is
 * writable again.  So the hot path of an echo allocates nothing and makes
 * one read and one write per wake-up.
 *
 * Life cycle: new -> (resolving) -> connecting -> open -> closed.  Closing
 * releases the socket at once; on_close runs from the loop afterwards,
 * exactly once and last, and the memory goes when the last reference does.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "channels-internal.h"
#include "inbuf-internal.h"

#define DEFAULT_READ_LIMIT (64 * 1024)
#define READS_PER_WAKEUP   16 /* then let the other streams run */
#define STAGE_MAX          PANTS__SCRATCH_SIZE

enum stream_state {
    S_NEW,        /* not connected yet */
    S_RESOLVING,  /* waiting for the resolver */
    S_CONNECTING, /* connect() in progress (or failed, error pending) */
    S_OPEN,       /* connected */
    S_CLOSED,     /* closed; on_close pending or done */
};

enum deferred {
    D_CONNECT_ERROR = 1, /* deliver connect_err */
    D_CLOSE = 2,         /* run on_close, release */
    D_RESOLVE = 4,       /* ask the loop's resolver for host */
};

struct pants_stream_s {
    pants__handle_t handle;      /* on the loop's list (active) */
    pants_loop_t *loop;          /* its loop; set once, read from any thread */
    int refs;                    /* references (atomic); the open stream holds one */
    enum stream_state state;     /* life cycle */
    int fd;                      /* the socket, or -1 */
    int family;                  /* AF_INET/AF_INET6/AF_UNIX, or AF_UNSPEC */
    struct event ev;             /* fd: read | write | edge-triggered */
    struct event defer_ev;       /* runs deferred callbacks from the loop */
    unsigned deferred;           /* enum deferred bits pending on defer_ev */
    int connect_err;             /* error for D_CONNECT_ERROR */
    pants_stream_callbacks_t cb; /* the application's callbacks */
    void *data;                  /* the application's pointer */
    pants_server_t *server;      /* accepting server, or NULL */
    pants_stream_t *srv_prev;    /* the server's list of connections on this loop */
    pants_stream_t *srv_next;
    pants__inbuf_t in;         /* bytes of an incomplete frame */
    struct evbuffer *out;      /* bytes the kernel did not take yet (lazy) */
    size_t staged;             /* bytes in the loop's write scratch (in_io only) */
    pants__framer_t framer;    /* the read delimiter */
    size_t read_limit;         /* most bytes that may wait for a frame */
    char *host;                /* name to look up (D_RESOLVE pending), or NULL */
    uint16_t port;             /* its port */
    pants__resolve_t *resolve; /* lookup in flight */
    pants_addr_t *candidates;  /* addresses left to try after a failure */
    size_t ncandidates;        /* how many */
    bool in_io;                /* its own I/O callback runs: writes are staged */
    bool ending;               /* end(): close once everything is sent */
    bool want_on_write;        /* something was written since the last on_write */
    bool hup_seen;             /* the peer's FIN was signalled: a short read is not the end */
    bool paused;               /* pause_reading: no read, no on_read until resume */
    uint64_t connect_timeout_ms;  /* bound on a connect, lookup included; 0 = none */
    struct event *connect_timer;  /* armed while connecting (lazy), or NULL */
};

static void stream_on_io(evutil_socket_t fd, short what, void *arg);
static void stream_flush(pants_stream_t *s);
static void stream_close_now(pants_stream_t *s);
static int stream_end(pants_stream_t *s);
static void start_lookup(pants_stream_t *s);

/* ---- References and accessors ------------------------------------------ */

static void stream_free(pants_stream_t *s)
{
    free(s);
    pants__live_add(-1);
}

static void free_task(void *a, void *b, uintptr_t c)
{
    (void)b;
    (void)c;
    stream_free(a);
}

void pants_stream_ref(pants_stream_t *s)
{
    if (s)
        __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
}

void pants_stream_unref(pants_stream_t *s)
{
    if (s == NULL || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    /* Free on the owning loop; if it is gone, nobody else can race us. */
    if (pants__loop_is_current(s->loop) || pants__loop_post(s->loop, free_task, s, NULL, 0) < 0)
        stream_free(s);
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

void pants_stream_set_callbacks(pants_stream_t *s, const pants_stream_callbacks_t *cb)
{
    if (s == NULL)
        return;
    if (cb)
        s->cb = *cb;
    else
        memset(&s->cb, 0, sizeof(s->cb));
}

pants_loop_t *pants_stream_loop(const pants_stream_t *s)
{
    return s ? s->loop : NULL;
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
    if (s == NULL)
        return 0;
    return s->staged + (s->out ? evbuffer_get_length(s->out) : 0);
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

static void defer(pants_stream_t *s, unsigned what)
{
    s->deferred |= what;
    event_active(&s->defer_ev, 0, 0);
}

static void disarm_connect_timer(pants_stream_t *s)
{
    if (s->connect_timer)
        event_del(s->connect_timer);
}

static void release_io(pants_stream_t *s)
{
    disarm_connect_timer(s);
    if (s->resolve) {
        pants__resolve_cancel(s->resolve);
        s->resolve = NULL;
    }
    if (s->fd >= 0) {
        event_del(&s->ev);
        close(s->fd);
        s->fd = -1;
    }
    free(s->candidates);
    s->candidates = NULL;
    s->ncandidates = 0;
    free(s->host);
    s->host = NULL;
}

static void free_buffers(pants_stream_t *s)
{
    if (s->connect_timer)
        event_free(s->connect_timer);
    s->connect_timer = NULL;
    pants__inbuf_deinit(&s->in);
    if (s->out)
        evbuffer_free(s->out);
    s->out = NULL;
    pants__framer_deinit(&s->framer);
}

/* The last step: on_close, then the stream leaves its loop and server. */
static void finish_close(pants_stream_t *s)
{
    if (s->cb.on_close)
        s->cb.on_close(s);
    free_buffers(s);
    if (s->server)
        pants__server_conn_closed(s->server, s);
    pants__handle_finish(&s->handle);
    pants_stream_unref(s);
}

static void stream_close_now(pants_stream_t *s)
{
    if (s->state == S_CLOSED)
        return;
    s->state = S_CLOSED;
    s->staged = 0;
    s->deferred = 0;
    if (s->out)
        evbuffer_drain(s->out, evbuffer_get_length(s->out)); /* queued data is dropped */
    release_io(s);
    defer(s, D_CLOSE);
}

/* The connect failed for good: on_connect_error, after which the stream
 * may connect again; without one it closes, and so does a stream that was
 * ended meanwhile (end promised on_close). */
static void connect_error(pants_stream_t *s, int err)
{
    bool keep = s->cb.on_connect_error != NULL && !s->ending;

    disarm_connect_timer(s);
    s->state = S_NEW;
    if (s->cb.on_connect_error)
        s->cb.on_connect_error(s, err);
    if (!keep)
        stream_close_now(s);
}

static void stream_on_deferred(evutil_socket_t fd, short what, void *arg)
{
    pants_stream_t *s = arg;
    unsigned d = s->deferred;

    (void)fd;
    (void)what;
    s->deferred = 0;
    if (d & D_CLOSE) {
        finish_close(s);
        return;
    }
    if ((d & D_CONNECT_ERROR) && s->state == S_CONNECTING)
        connect_error(s, s->connect_err);
    if ((d & D_RESOLVE) && s->state == S_RESOLVING)
        start_lookup(s);
}

/* An I/O error other than EOF or reset: tell the application, then close. */
static void stream_fail(pants_stream_t *s, int err)
{
    if (s->cb.on_error)
        s->cb.on_error(s, err);
    stream_close_now(s);
}

static bool is_reset(int err)
{
    return err == ECONNRESET || err == EPIPE || err == ENOTCONN;
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
    entered = pants__loop_enter(s->loop, "pants_stream_close");
    if (entered < 0) {
        /* Misuse, but closing must not be lost: hand it to the owner. */
        pants_stream_post(s, close_posted, NULL);
        return;
    }
    stream_close_now(s);
    pants__loop_leave(s->loop, entered);
}

/* ---- Handle operations (engine stop) ------------------------------------ */

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
    event_del(&s->defer_ev);
    free_buffers(s);
    if (s->server) /* still a handle: finish_close has not told the server */
        pants__server_conn_closed(s->server, s);
    stream_free(s);
}

static const pants__handle_ops_t stream_ops = {"stream", stream_stop, stream_kill, stream_release};

/* ---- Creation ----------------------------------------------------------- */

static void stream_init(pants_stream_t *s, pants_loop_t *l, const pants_stream_callbacks_t *cb, void *data)
{
    s->refs = 1;
    s->state = S_NEW;
    s->fd = -1;
    s->family = AF_UNSPEC;
    if (cb)
        s->cb = *cb;
    s->data = data;
    s->read_limit = DEFAULT_READ_LIMIT;
    pants__framer_init(&s->framer);
    pants__inbuf_init(&s->in);
    event_assign(&s->defer_ev, l->base, -1, 0, stream_on_deferred, s);
    pants__live_add(1);
}

static void register_task(void *a, void *b, uintptr_t c)
{
    pants_stream_t *s = a;

    (void)b;
    (void)c;
    pants__handle_start(&s->handle, s->loop, &stream_ops, true);
}

pants_stream_t *pants_stream_new(pants_loop_t *l, const pants_stream_callbacks_t *cb, void *data)
{
    pants_stream_t *s;
    int entered, rc;

    if (l == NULL) {
        errno = EINVAL;
        return NULL;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->loop = l;
    stream_init(s, l, cb, data);
    /* Legal from any thread: a running loop is reached by a post, without
     * pants__loop_enter's misuse warning. */
    if (!pants__loop_is_current(l) && pants__loop_has_started(l))
        entered = -EPERM;
    else
        entered = pants__loop_enter(l, "pants_stream_new");
    if (entered >= 0) {
        pants__handle_start(&s->handle, l, &stream_ops, true);
        pants__loop_leave(l, entered);
        return s;
    }
    /* Another thread while l runs: l registers it, in order with posts. */
    rc = pants__loop_post(l, register_task, s, NULL, 0);
    if (rc < 0) {
        pants__framer_deinit(&s->framer);
        stream_free(s);
        errno = -rc;
        return NULL;
    }
    return s;
}

/* Start the I/O event of a socket that is connecting or connected. */
static void watch_fd(pants_stream_t *s, int fd)
{
    short what = EV_READ | EV_WRITE | EV_PERSIST | EV_ET | EV_CLOSED;

    s->fd = fd;
    event_assign(&s->ev, s->loop->base, fd, what, stream_on_io, s);
    event_add(&s->ev, NULL);
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

    if (s == NULL) {
        close(fd);
        pants__server_conn_closed(srv, NULL);
        return;
    }
    s->loop = l;
    stream_init(s, l, pants__server_conn_callbacks(srv), NULL);
    s->server = srv;
    s->state = S_OPEN;
    s->family = pants__server_family(srv); /* no getsockname per connection */
    pants__server_conn_opened(srv, s);
    pants__handle_start(&s->handle, l, &stream_ops, true);
    watch_fd(s, fd);
    pants__server_accepted(srv, s);
    if (s->state == S_OPEN && s->cb.on_connect)
        s->cb.on_connect(s);
}

/* ---- Connecting --------------------------------------------------------- */

static void try_next_or_fail(pants_stream_t *s, int err);

static void connect_failed(pants_stream_t *s, int err)
{
    if (s->ncandidates > 0) { /* from the loop: a resolved name's next address */
        try_next_or_fail(s, err);
        return;
    }
    s->state = S_CONNECTING;
    s->connect_err = err;
    defer(s, D_CONNECT_ERROR);
}

/* Start a non-blocking connect to a; its end shows as the socket becoming
 * writable.  Errors are delivered from the loop, never from here. */
static void connect_to(pants_stream_t *s, const pants_addr_t *a)
{
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    s->family = a->ss.ss_family;
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
    watch_fd(s, fd);
}

/* A lookup or connect failed: try the next address, or report err. */
static void try_next_or_fail(pants_stream_t *s, int err)
{
    if (s->ncandidates > 0) {
        pants_addr_t a = s->candidates[0];
        memmove(s->candidates, s->candidates + 1, --s->ncandidates * sizeof(a));
        connect_to(s, &a);
        return;
    }
    connect_error(s, err);
}

static void on_resolved(int err, const pants_addr_t *addrs, size_t n, uint32_t ttl_s, void *arg)
{
    pants_stream_t *s = arg;

    (void)ttl_s; /* a connect uses its answer once */
    s->resolve = NULL;
    if (err != 0) {
        try_next_or_fail(s, err);
        return;
    }
    free(s->candidates);
    s->candidates = malloc(n * sizeof(*addrs));
    s->ncandidates = s->candidates ? n : 0;
    if (s->candidates)
        memcpy(s->candidates, addrs, n * sizeof(*addrs));
    try_next_or_fail(s, PANTS_EAI_MEMORY);
}

static void start_lookup(pants_stream_t *s)
{
    s->resolve = pants__resolve_start(s->loop, s->host, s->port, on_resolved, s);
    free(s->host);
    s->host = NULL;
    if (s->resolve == NULL)
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
        event_del(&s->ev);
        close(s->fd);
        s->fd = -1;
        try_next_or_fail(s, -err);
        return false;
    }
    free(s->candidates);
    s->candidates = NULL;
    s->ncandidates = 0;
    disarm_connect_timer(s);
    s->state = S_OPEN;
    if (s->cb.on_connect)
        s->cb.on_connect(s);
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
    s->deferred &= ~(unsigned)(D_CONNECT_ERROR | D_RESOLVE);
    connect_error(s, -ETIMEDOUT);
}

/* The timer a connect bound needs, made before the connect starts, so a
 * connect call never fails after it set anything in motion. */
static int ensure_connect_timer(pants_stream_t *s)
{
    if (s->connect_timeout_ms == 0 || s->connect_timer != NULL)
        return 0;
    s->connect_timer = evtimer_new(s->loop->base, on_connect_timeout, s);
    return s->connect_timer ? 0 : -ENOMEM;
}

/* (Re)start the connect bound, counted from now, if one is set and a
 * connect is under way (ensure_connect_timer ran). */
static void arm_connect_timer(pants_stream_t *s)
{
    struct timeval tv;

    if (s->connect_timeout_ms == 0 || s->connect_timer == NULL ||
        (s->state != S_RESOLVING && s->state != S_CONNECTING)) {
        disarm_connect_timer(s);
        return;
    }
    tv.tv_sec = (time_t)(s->connect_timeout_ms / 1000);
    tv.tv_usec = (suseconds_t)(s->connect_timeout_ms % 1000) * 1000;
    event_base_update_cache_time(s->loop->base);
    evtimer_add(s->connect_timer, &tv);
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
    int rc = connect_state_error(s);

    if (rc < 0)
        return rc;
    rc = pants__addr_split(address, 0, &a, host, &port);
    if (rc < 0)
        return rc;
    if (ensure_connect_timer(s) < 0)
        return -ENOMEM;
    if (rc == 0) {
        connect_to(s, &a);
        arm_connect_timer(s);
        return 0;
    }
    /* The resolver is the loop's: it is asked from the loop once that runs
     * (a lookup started before would stay in evdns if it never runs). */
    s->host = strdup(host);
    if (s->host == NULL)
        return -ENOMEM;
    s->port = port;
    s->state = S_RESOLVING;
    defer(s, D_RESOLVE);
    arm_connect_timer(s);
    return 0;
}

static int set_connect_timeout(pants_stream_t *s, uint64_t ms)
{
    if (ms > (uint64_t)INT32_MAX * 1000)
        return -EINVAL;
    s->connect_timeout_ms = ms;
    if (s->state != S_RESOLVING && s->state != S_CONNECTING)
        return 0; /* the next connect makes and arms the timer */
    if (ensure_connect_timer(s) < 0)
        return -ENOMEM;
    arm_connect_timer(s);
    return 0;
}

int pants_stream_set_connect_timeout(pants_stream_t *s, uint64_t ms)
{
    int entered, rc;

    if (s == NULL)
        return -EINVAL;
    entered = pants__loop_enter(s->loop, "pants_stream_set_connect_timeout");
    if (entered < 0)
        return entered;
    rc = set_connect_timeout(s, ms);
    pants__loop_leave(s->loop, entered);
    return rc;
}

int pants_stream_connect(pants_stream_t *s, const char *address)
{
    int entered, rc;

    if (s == NULL || address == NULL)
        return -EINVAL;
    entered = pants__loop_enter(s->loop, "pants_stream_connect");
    if (entered < 0)
        return entered;
    rc = stream_connect(s, address);
    pants__loop_leave(s->loop, entered);
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
        ssize_t len = pants__framer_scan(&s->framer, p + used, n - used, &skip, &err);
        if (len == PANTS__FRAME_NEED_MORE)
            return used;
        if (len < 0) {
            stream_fail(s, err);
            return SIZE_MAX;
        }
        pants__framer_consumed(&s->framer);
        if (s->cb.on_read)
            s->cb.on_read(s, p + used, (size_t)len);
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
        if (warned || s->cb.on_overflow == NULL) {
            stream_close_now(s);
            return;
        }
        warned = true;
        s->cb.on_overflow(s);
    }
}

/* Fresh bytes in the scratch buffer: frames straight from it, the rest
 * into the stream's buffer. */
static void deliver_fresh(pants_stream_t *s, const unsigned char *p, size_t n)
{
    size_t used = deliver_span(s, p, n);

    if (used == SIZE_MAX || used == n)
        return;
    if (pants__inbuf_append(&s->in, p + used, n - used) < 0) {
        stream_fail(s, -ENOMEM);
        return;
    }
    if (n - used > effective_limit(s))
        deliver_buffered(s);
}

/* The peer closed its side: deliver nothing more, send what is queued,
 * then close (a partial frame is dropped). */
static void peer_closed(pants_stream_t *s)
{
    s->ending = true;
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
        n = read(s->fd, s->loop->scratch, *asked);
        return n < 0 ? -errno : n;
    }
    to = pants__inbuf_space(&s->in, 4096, asked);
    if (to == NULL)
        return -ENOMEM;
    n = read(s->fd, to, *asked);
    if (n <= 0)
        return n < 0 ? -errno : 0;
    pants__inbuf_commit(&s->in, (size_t)n);
    return n;
}

/* Edge-triggered: a short read means the socket is drained, except that a
 * FIN which came with the data gives no edge of its own.  So once the
 * backend signalled it (EV_CLOSED), or if it cannot, read on until the
 * kernel says EAGAIN or EOF. */
static bool must_drain(const pants_stream_t *s)
{
    return s->hup_seen || !s->loop->early_close;
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
    if (is_reset(err))
        stream_close_now(s);
    else
        stream_fail(s, -err);
}

static void stream_read(pants_stream_t *s)
{
    if (s->paused) {
        paused_check(s);
        return;
    }
    if (s->in.len > 0 && !s->ending)
        deliver_buffered(s); /* the delimiter may have changed meanwhile */
    for (int i = 0; i < READS_PER_WAKEUP; i++) {
        bool direct;
        size_t asked;
        if (s->paused || s->state != S_OPEN)
            return; /* resume reads again */
        ssize_t n = read_some(s, &direct, &asked);
        if (n == -EINTR)
            continue;
        if (n == -EAGAIN)
            return;
        if (n == 0) {
            peer_closed(s);
            return;
        }
        if (n < 0) {
            if (is_reset((int)-n))
                stream_close_now(s);
            else
                stream_fail(s, (int)n);
            return;
        }
        if (s->ending)
            ; /* ending: what arrives now is dropped */
        else if (direct)
            deliver_fresh(s, s->loop->scratch, (size_t)n);
        else
            deliver_buffered(s);
        if (s->state != S_OPEN || ((size_t)n < asked && !must_drain(s)))
            return;
    }
    event_active(&s->ev, EV_READ, 0); /* more is there: after the others */
}

/* ---- Writing ------------------------------------------------------------ */

static int ensure_out(pants_stream_t *s)
{
    if (s->out != NULL)
        return 0;
    s->out = evbuffer_new();
    if (s->out == NULL)
        return -ENOMEM;
    evbuffer_set_flags(s->out, EVBUFFER_FLAG_DRAINS_TO_FD);
    return 0;
}

/* Move staged bytes into out, ahead of anything written after them. */
static int unstage(pants_stream_t *s)
{
    int rc = ensure_out(s);

    if (rc == 0 && s->staged > 0) {
        rc = evbuffer_add(s->out, s->loop->wscratch, s->staged) < 0 ? -ENOMEM : 0;
        s->staged = 0;
    }
    return rc;
}

/* Writes from outside the stream's own callbacks: flush later in this
 * iteration, once, whatever else is written meanwhile. */
static void schedule_flush(pants_stream_t *s)
{
    if (!s->in_io && s->state == S_OPEN)
        event_active(&s->ev, EV_WRITE, 0);
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
    s->want_on_write = true;
    if (s->in_io && s->state == S_OPEN && (s->out == NULL || evbuffer_get_length(s->out) == 0) &&
        s->staged + len <= STAGE_MAX) {
        memcpy(s->loop->wscratch + s->staged, data, len);
        s->staged += len;
        return 0;
    }
    rc = unstage(s);
    if (rc == 0 && evbuffer_add(s->out, data, len) < 0)
        rc = -ENOMEM;
    schedule_flush(s);
    return rc;
}

int pants__stream_write_shared(pants_stream_t *s, const void *data, size_t len,
                               void (*release)(const void *, size_t, void *), void *arg)
{
    int rc = write_state_error(s);

    if (rc == 0 && len > 0)
        rc = unstage(s);
    if (rc == 0 && len > 0) {
        if (evbuffer_add_reference(s->out, data, len, release, arg) == 0) {
            s->want_on_write = true;
            schedule_flush(s);
            return 0;
        }
        rc = -ENOMEM;
    }
    release(data, len, arg);
    return rc;
}

int pants_stream_write(pants_stream_t *s, const void *data, size_t len)
{
    int entered, rc;

    if (s == NULL || (data == NULL && len > 0))
        return -EINVAL;
    entered = pants__loop_enter(s->loop, "pants_stream_write");
    if (entered < 0)
        return entered;
    rc = stream_write(s, data, len);
    pants__loop_leave(s->loop, entered);
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
    rc = unstage(s);
    if (rc < 0)
        return rc;
    int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0)
        return -errno;
    if (evbuffer_add_file(s->out, dup_fd, offset, (ev_off_t)span) < 0) {
        close(dup_fd);
        return -ENOMEM;
    }
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
    entered = pants__loop_enter(s->loop, "pants_stream_write_file");
    if (entered < 0)
        return entered;
    rc = stream_write_file(s, fd, offset, nbytes);
    pants__loop_leave(s->loop, entered);
    return rc;
}

/* Send the staged bytes with one send(); what is left waits in out. */
static int send_staged(pants_stream_t *s)
{
    ssize_t n = send(s->fd, s->loop->wscratch, s->staged, MSG_NOSIGNAL);

    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            return -errno;
        n = 0;
    }
    if ((size_t)n == s->staged) {
        s->staged = 0;
        return 0;
    }
    memmove(s->loop->wscratch, s->loop->wscratch + n, s->staged - (size_t)n);
    s->staged -= (size_t)n;
    return unstage(s);
}

/* Write out as much as the kernel takes.  0 when everything went, 1 when
 * the socket is full, or -errno. */
static int write_out(pants_stream_t *s)
{
    int rc = s->staged > 0 ? send_staged(s) : 0;

    while (rc == 0 && s->out != NULL && evbuffer_get_length(s->out) > 0) {
        if (evbuffer_write(s->out, s->fd) < 0) {
            if (errno == EAGAIN)
                return 1;
            if (errno != EINTR)
                return -errno;
        }
    }
    if (rc == 0 && s->out != NULL && evbuffer_get_length(s->out) > 0)
        return 1;
    return rc;
}

static void stream_flush(pants_stream_t *s)
{
    for (int round = 0; round < 4 && s->state == S_OPEN; round++) {
        int rc = write_out(s);
        if (rc > 0)
            return;
        if (rc < 0) {
            if (is_reset(-rc))
                stream_close_now(s);
            else
                stream_fail(s, rc);
            return;
        }
        if (s->want_on_write) {
            s->want_on_write = false;
            if (s->cb.on_write)
                s->cb.on_write(s);
        }
        if (pants_stream_pending(s) == 0) {
            if (s->ending)
                stream_close_now(s);
            return;
        }
    }
    if (s->state == S_OPEN)
        event_active(&s->ev, EV_WRITE, 0);
}

static void stream_on_io(evutil_socket_t fd, short what, void *arg)
{
    pants_stream_t *s = arg;

    (void)fd;
    if (s->state == S_CONNECTING && !connect_finished(s))
        return;
    s->in_io = true;
    if (what & EV_CLOSED)
        s->hup_seen = true;
    if (what & (EV_READ | EV_CLOSED))
        stream_read(s);
    if (s->state == S_OPEN)
        stream_flush(s);
    if (s->staged > 0)
        unstage(s); /* the write scratch is the loop's: free it for others */
    s->in_io = false;
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
            event_active(&s->ev, EV_WRITE, 0);
    }
    return 0;
}

int pants_stream_end(pants_stream_t *s)
{
    int entered, rc;

    if (s == NULL)
        return -EINVAL;
    entered = pants__loop_enter(s->loop, "pants_stream_end");
    if (entered < 0)
        return entered;
    rc = stream_end(s);
    pants__loop_leave(s->loop, entered);
    return rc;
}

/* ---- Read delimiters ---------------------------------------------------- */

/* After a delimiter change outside on_read, bytes already buffered are cut
 * with the new one at once (from the loop, not inside this call). */
static void delimiter_changed(pants_stream_t *s)
{
    if (!s->in_io && s->state == S_OPEN && s->in.len > 0)
        event_active(&s->ev, EV_READ, 0);
}

#define WITH_STREAM(s, what, expr)                                                                           \
    do {                                                                                                     \
        int entered_, rc_;                                                                                   \
        if ((s) == NULL)                                                                                     \
            return -EINVAL;                                                                                  \
        entered_ = pants__loop_enter((s)->loop, what);                                                       \
        if (entered_ < 0)                                                                                    \
            return entered_;                                                                                 \
        rc_ = (s)->state == S_CLOSED ? -EPIPE : (expr); /* its framer is gone */                             \
        if (rc_ == 0)                                                                                        \
            delimiter_changed(s);                                                                            \
        pants__loop_leave((s)->loop, entered_);                                                              \
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
        event_active(&s->ev, EV_READ, 0);
    return 0;
}

static int paused_call(pants_stream_t *s, const char *what, bool paused)
{
    int entered, rc;

    if (s == NULL)
        return -EINVAL;
    entered = pants__loop_enter(s->loop, what);
    if (entered < 0)
        return entered;
    rc = set_paused(s, paused);
    pants__loop_leave(s->loop, entered);
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
    rc = pants__loop_post(s->loop, stream_post_task, s, u.p, (uintptr_t)arg);
    if (rc < 0)
        pants_stream_unref(s);
    return rc;
}
