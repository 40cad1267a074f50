/* server.c -- listening stream sockets, owned by the engine's acceptor.
 *
 * pants_server_listen binds on the calling thread, so its errors come back
 * from the call; the socket is then watched by the acceptor loop.  The
 * acceptor accepts until EAGAIN and hands every new socket to the next
 * worker round-robin through that worker's task queue; the stream is made
 * there (pants__stream_adopt), where on_accept and on_connect run.  Running
 * out of descriptors is reported once and accepting pauses briefly, so the
 * acceptor never spins.
 *
 * A server lives until its listener is closed and its last connection has
 * closed; then on_close runs on the acceptor and its memory goes with the
 * last reference (connections and tasks in flight hold one each).
 */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "channels-internal.h"
#include "tls-internal.h"

#define DEFAULT_BACKLOG    1024
#define ACCEPTS_PER_WAKEUP 256
#define EMFILE_BACKOFF_MS  100

enum server_pending {
    P_LISTENED = 1, /* run on_listen */
    P_FINISH = 2,   /* run on_close; the memory stays until the engine goes */
};

struct pants_server_s {
    pants__handle_t handle;             /* on the acceptor's list (active); refs, pending work */
    pants_engine_t *engine;             /* owner */
    pants_server_callbacks_t cb;        /* the application's callbacks */
    pants_stream_callbacks_t conn_cb;   /* given to every connection */
    void *data;                         /* the application's pointer */
    pthread_mutex_t mu;                 /* guards fd, bound, closing between threads */
    int fd;                             /* listening socket, or -1 */
    int family;                         /* its family: that of every connection */
    bool bound;                         /* listen succeeded once */
    bool closing;                       /* close asked: no more accepts */
    bool finished;                      /* on_close ran or is about to (atomic) */
    bool armed;                         /* listen_ev is added */
    bool emfile_reported;               /* on_error told of this shortage */
    bool full;                          /* at max_conns: not accepting (atomic) */
    bool reuseport;                     /* a listener per worker loop (set before listen) */
    bool proxy_protocol;                /* connections start with a PROXY header (set before listen) */
    pants__bound_path_t unix_path;      /* socket file to remove on close */
    struct event listen_ev;             /* fd readable: accept */
    struct event backoff_ev;            /* resume accepting after EMFILE */
    size_t conns;                       /* open connections (atomic) */
    size_t max_conns;                   /* accept no more than this; 0 = no cap (atomic) */
    pants_stream_t **heads;             /* per worker: its connections */
    const pants_stream_options_t *opts; /* new connections' settings, resolved (atomic) */
    struct opts_node_s *old_opts;       /* every version given, freed with srv (mu) */
    struct ssl_ctx_st *tls;             /* connections do a TLS handshake on it, or NULL (referenced) */
};

static void server_close_on_acceptor(pants_server_t *srv, bool with_conns);
static void close_listener(pants_server_t *srv);
static void unlisten(pants_server_t *srv);

/* pants__loop_enter for the server calls that are legal from any thread: a
 * running acceptor is reached by a post, without the misuse warning. */
static int acceptor_enter(pants_loop_t *acceptor)
{
    if (!pants__loop_is_current(acceptor) && pants__loop_has_started(acceptor))
        return -EPERM;
    return pants__loop_enter(acceptor, "a pants_server call");
}

/* A version of the stream options: kept until the server goes, because
 * connections accepted under it point to it. */
typedef struct opts_node_s {
    struct opts_node_s *next;    /* the older versions */
    pants_stream_options_t opts; /* resolved */
} opts_node_t;

/* ---- References --------------------------------------------------------- */

static void server_free(pants__handle_t *h)
{
    pants_server_t *srv = (pants_server_t *)h;

    while (srv->old_opts != NULL) {
        opts_node_t *n = srv->old_opts;
        srv->old_opts = n->next;
        free(n);
    }
    if (srv->tls != NULL)
        pants__tls_ctx_release(srv->tls);
    pthread_mutex_destroy(&srv->mu);
    free(srv->heads);
    free(srv);
}

static void server_unref(pants_server_t *srv)
{
    pants__handle_unref(&srv->handle);
}

/* Post fn(srv, b, c) to l holding a reference for the task. */
static int post_with_ref(pants_loop_t *l, pants__task_fn fn, pants_server_t *srv, void *b, uintptr_t c)
{
    return pants__handle_post(&srv->handle, l, fn, b, c);
}

/* ---- Accessors ---------------------------------------------------------- */

size_t pants_server_connections(const pants_server_t *srv)
{
    return srv ? __atomic_load_n(&srv->conns, __ATOMIC_RELAXED) : 0;
}

void *pants_server_data(const pants_server_t *srv)
{
    return srv ? srv->data : NULL;
}

pants_engine_t *pants_server_engine(const pants_server_t *srv)
{
    return srv ? srv->engine : NULL;
}

const pants_stream_options_t *pants__server_stream_options(const pants_server_t *srv)
{
    return __atomic_load_n(&srv->opts, __ATOMIC_ACQUIRE);
}

int pants_server_set_stream_options(pants_server_t *srv, const pants_stream_options_t *o)
{
    opts_node_t *n;
    int rc;

    if (srv == NULL)
        return -EINVAL;
    n = malloc(sizeof(*n));
    if (n == NULL)
        return -ENOMEM;
    rc = pants__stream_options_resolve(o, &n->opts);
    if (rc < 0) {
        free(n);
        return rc;
    }
    pthread_mutex_lock(&srv->mu);
    n->next = srv->old_opts;
    srv->old_opts = n;
    __atomic_store_n(&srv->opts, &n->opts, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&srv->mu);
    return 0;
}

struct ssl_ctx_st *pants__server_tls(const pants_server_t *srv)
{
    return srv->tls; /* set before listen, read after: the listen's post orders them */
}

int pants_server_set_tls(pants_server_t *srv, struct ssl_ctx_st *ctx)
{
    int rc;

    if (srv == NULL || ctx == NULL)
        return -EINVAL;
    pthread_mutex_lock(&srv->mu);
    rc = srv->bound ? -EALREADY : srv->tls != NULL ? -EALREADY : pants__tls_ctx_hold(ctx);
    if (rc == 0)
        srv->tls = ctx;
    pthread_mutex_unlock(&srv->mu);
    return rc;
}

int pants__server_family(const pants_server_t *srv)
{
    return srv->family;
}

const pants_stream_callbacks_t *pants__server_conn_callbacks(const pants_server_t *srv)
{
    return &srv->conn_cb;
}

int pants_server_local_address(pants_server_t *srv, pants_addr_t *a)
{
    int rc;

    if (srv == NULL || a == NULL)
        return -EINVAL;
    pthread_mutex_lock(&srv->mu);
    rc = srv->fd >= 0 ? pants__addr_of_fd(srv->fd, false, a) : -ENOTCONN;
    pthread_mutex_unlock(&srv->mu);
    return rc;
}

/* ---- Connections -------------------------------------------------------- */

void pants__server_conn_opened(pants_server_t *srv, pants_stream_t *s)
{
    unsigned i = pants_loop_index(pants_stream_loop(s));
    pants_stream_t *head = srv->heads[i];

    *pants__stream_srv_prev(s) = NULL;
    *pants__stream_srv_next(s) = head;
    if (head)
        *pants__stream_srv_prev(head) = s;
    srv->heads[i] = s;
}

static void check_finish_task(void *a, void *b, uintptr_t c);
static void resume_task(void *a, void *b, uintptr_t c);

void pants__server_conn_closed(pants_server_t *srv, pants_stream_t *s)
{
    if (s != NULL) {
        unsigned i = pants_loop_index(pants_stream_loop(s));
        pants_stream_t *prev = *pants__stream_srv_prev(s), *next = *pants__stream_srv_next(s);
        if (prev)
            *pants__stream_srv_next(prev) = next;
        else
            srv->heads[i] = next;
        if (next)
            *pants__stream_srv_prev(next) = prev;
    }
    size_t left = __atomic_sub_fetch(&srv->conns, 1, __ATOMIC_ACQ_REL);
    if (left == 0)
        post_with_ref(srv->engine->acceptor, check_finish_task, srv, NULL, 0);
    if (__atomic_load_n(&srv->full, __ATOMIC_ACQUIRE) &&
        left < __atomic_load_n(&srv->max_conns, __ATOMIC_RELAXED))
        post_with_ref(srv->engine->acceptor, resume_task, srv, NULL, 0);
    server_unref(srv);
}

void pants__server_accepted(pants_server_t *srv, pants_stream_t *s)
{
    if (srv->cb.on_accept)
        srv->cb.on_accept(srv, s);
}

/* ---- Pending callbacks, finishing -------------------------------------- */

/* A closed server waiting for the engine's end: only its memory is left. */
static void closed_server_release(pants__handle_t *h)
{
    server_unref((pants_server_t *)h);
}

static const pants__handle_ops_t closed_server_ops = {
    .name = "closed server",
    .release = closed_server_release,
    .free = server_free,
};

static void server_run_pending(pants__handle_t *h, unsigned bits)
{
    pants_server_t *srv = (pants_server_t *)h;

    if ((bits & P_LISTENED) && !srv->closing && srv->cb.on_listen)
        srv->cb.on_listen(srv);
    if (bits & P_FINISH) {
        if (srv->cb.on_close)
            srv->cb.on_close(srv);
        /* Closed for good, but the memory stays until the engine is freed,
         * so the any-thread calls (broadcast, connections, close) made by
         * a thread that has not heard of on_close yet stay harmless. */
        pants__handle_finish(&srv->handle);
        pants__handle_start(&srv->handle, srv->engine->acceptor, &closed_server_ops, false);
    }
}

/* Closed and no connection left: on_close, from the acceptor's loop. */
static void maybe_finish(pants_server_t *srv)
{
    if (!srv->closing || __atomic_load_n(&srv->finished, __ATOMIC_ACQUIRE) ||
        __atomic_load_n(&srv->conns, __ATOMIC_ACQUIRE) != 0)
        return;
    __atomic_store_n(&srv->finished, true, __ATOMIC_RELEASE);
    srv->handle.pending &= (uint16_t)~P_LISTENED;
    pants__handle_defer(&srv->handle, P_FINISH);
}

static void check_finish_task(void *a, void *b, uintptr_t c)
{
    (void)b;
    (void)c;
    maybe_finish(a);
    server_unref(a);
}

/* ---- Accepting ---------------------------------------------------------- */

/* Watching the listener failed: say so, and close the server (it could
 * never accept again). */
static void watch_failed(pants_server_t *srv, int err)
{
    if (srv->cb.on_error)
        srv->cb.on_error(srv, err);
    server_close_on_acceptor(srv, true);
}

static void on_backoff_over(evutil_socket_t fd, short what, void *arg)
{
    pants_server_t *srv = arg;
    int rc;

    (void)fd;
    (void)what;
    if (srv->closing || !srv->armed || __atomic_load_n(&srv->full, __ATOMIC_ACQUIRE))
        return;
    rc = pants__event_add(&srv->listen_ev, NULL);
    if (rc < 0)
        watch_failed(srv, rc);
}

/* Out of descriptors or memory: tell once, pause accepting briefly. */
static void accept_backoff(pants_server_t *srv, int err)
{
    struct timeval tv = {0, EMFILE_BACKOFF_MS * 1000};
    int rc;

    event_del(&srv->listen_ev);
    rc = pants__event_add(&srv->backoff_ev, &tv);
    if (rc < 0) {
        watch_failed(srv, rc);
        return;
    }
    if (srv->emfile_reported)
        return;
    srv->emfile_reported = true;
    if (srv->cb.on_error)
        srv->cb.on_error(srv, err);
}

static void adopt_task(void *a, void *b, uintptr_t c)
{
    pants__stream_adopt(b, a, (int)c);
}

/* Give fd to the next worker; the connection holds a server reference. */
static void hand_off(pants_server_t *srv, int fd)
{
    pants_loop_t *l = pants__engine_accept_loop(srv->engine);

    __atomic_add_fetch(&srv->conns, 1, __ATOMIC_ACQ_REL);
    pants__handle_ref(&srv->handle);
    if (pants__loop_post(l, adopt_task, srv, l, (uintptr_t)fd) < 0) {
        close(fd);
        pants__server_conn_closed(srv, NULL);
    }
}

/* At the cap?  Then stop watching the listener: new clients wait in the
 * backlog until a connection closes (resume_task). */
static bool at_cap(pants_server_t *srv)
{
    size_t max = __atomic_load_n(&srv->max_conns, __ATOMIC_RELAXED);

    if (max == 0)
        return false;
    __atomic_store_n(&srv->full, true, __ATOMIC_RELEASE); /* before the count: no resume is missed */
    if (__atomic_load_n(&srv->conns, __ATOMIC_ACQUIRE) < max) {
        __atomic_store_n(&srv->full, false, __ATOMIC_RELEASE);
        return false;
    }
    event_del(&srv->listen_ev);
    return true;
}

/* A connection closed below the cap, or the cap changed: accept again. */
static void resume_task(void *a, void *b, uintptr_t c)
{
    pants_server_t *srv = a;
    size_t max = __atomic_load_n(&srv->max_conns, __ATOMIC_RELAXED);
    int rc = 0;

    (void)b;
    (void)c;
    if (__atomic_load_n(&srv->full, __ATOMIC_ACQUIRE) && !srv->closing && srv->armed &&
        (max == 0 || __atomic_load_n(&srv->conns, __ATOMIC_ACQUIRE) < max)) {
        __atomic_store_n(&srv->full, false, __ATOMIC_RELEASE);
        rc = pants__event_add(&srv->listen_ev, NULL);
    }
    if (rc < 0)
        watch_failed(srv, rc);
    server_unref(srv);
}

int pants_server_set_max_connections(pants_server_t *srv, size_t max)
{
    if (srv == NULL)
        return -EINVAL;
    __atomic_store_n(&srv->max_conns, max, __ATOMIC_RELAXED);
    if (__atomic_load_n(&srv->full, __ATOMIC_ACQUIRE)) /* a raised cap may let it accept again */
        post_with_ref(srv->engine->acceptor, resume_task, srv, NULL, 0);
    return 0;
}

int pants_server_set_reuseport(pants_server_t *srv, bool on)
{
    int rc = 0;

    if (srv == NULL)
        return -EINVAL;
#ifndef SO_REUSEPORT
    if (on)
        return -ENOTSUP;
#endif
    pthread_mutex_lock(&srv->mu);
    if (srv->bound)
        rc = -EALREADY;
    else
        srv->reuseport = on;
    pthread_mutex_unlock(&srv->mu);
    return rc;
}

int pants_server_set_proxy_protocol(pants_server_t *srv, bool on)
{
    int rc = 0;

    if (srv == NULL)
        return -EINVAL;
    pthread_mutex_lock(&srv->mu);
    if (srv->bound)
        rc = -EALREADY;
    else
        srv->proxy_protocol = on;
    pthread_mutex_unlock(&srv->mu);
    return rc;
}

static void on_acceptable(evutil_socket_t lfd, short what, void *arg)
{
    pants_server_t *srv = arg;

    (void)what;
    for (int i = 0; i < ACCEPTS_PER_WAKEUP && !srv->closing && !at_cap(srv); i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            srv->emfile_reported = false;
            hand_off(srv, fd);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
            continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
            accept_backoff(srv, -errno);
        else if (errno != EAGAIN && srv->cb.on_error)
            srv->cb.on_error(srv, -errno);
        return;
    }
}

/* ---- Listening ---------------------------------------------------------- */

/* Start watching the bound socket (acceptor thread, or before it runs).
 * 0 or a negative errno. */
static int arm(pants_server_t *srv)
{
    pants_loop_t *acceptor = srv->engine->acceptor;
    int rc;

    if (srv->closing || srv->armed)
        return 0;
    event_assign(&srv->listen_ev, acceptor->base, srv->fd, EV_READ | EV_PERSIST, on_acceptable, srv);
    rc = pants__event_add(&srv->listen_ev, NULL);
    if (rc < 0)
        return rc;
    srv->armed = true;
    pants__handle_defer(&srv->handle, P_LISTENED);
    return 0;
}

static void arm_task(void *a, void *b, uintptr_t c)
{
    pants_server_t *srv = a;
    int rc = arm(srv);

    (void)b;
    (void)c;
    if (rc < 0)
        watch_failed(srv, rc);
    server_unref(srv);
}

/* A stream socket for a: dual-stack for the IPv6 any address (addr.c). */
static int listen_socket(pants_addr_t *a)
{
    int one = 1;
    int fd = pants__socket_for_bind(a, SOCK_STREAM);

    if (fd >= 0 && a->ss.ss_family != AF_UNIX) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* accepted sockets inherit it */
    }
    return fd;
}

/* socket, bind, listen; srv->mu held. */
static int open_listener(pants_server_t *srv, pants_addr_t *a, int backlog)
{
    int rc, fd = listen_socket(a);

    if (fd < 0)
        return fd;
    rc = pants__bind(fd, a, SOCK_STREAM);
    if (rc == 0 && listen(fd, backlog > 0 ? backlog : DEFAULT_BACKLOG) < 0)
        rc = -errno;
    if (rc == 0)
        rc = pants__bound_path_remember(&srv->unix_path, a);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    srv->fd = fd;
    srv->family = a->ss.ss_family;
    srv->bound = true;
    return 0;
}

static int bind_locked(pants_server_t *srv, const char *address, int backlog)
{
    char host[PANTS__HOST_MAX];
    pants_addr_t a;
    uint16_t port;
    int rc;

    if (srv->closing)
        return -EPIPE;
    if (srv->bound)
        return -EALREADY;
    rc = pants__addr_split(address, PANTS__ADDR_LISTEN, &a, host, &port);
    if (rc != 0)
        return rc < 0 ? rc : -EINVAL; /* listening needs a numeric address */
    return open_listener(srv, &a, backlog);
}

int pants_server_listen(pants_server_t *srv, const char *address, int backlog)
{
    pants_loop_t *acceptor;
    int rc, entered;

    if (srv == NULL || address == NULL || backlog < 0)
        return -EINVAL;
    acceptor = srv->engine->acceptor;
    pthread_mutex_lock(&srv->mu);
    rc = bind_locked(srv, address, backlog);
    pthread_mutex_unlock(&srv->mu);
    if (rc < 0)
        return rc;
    entered = acceptor_enter(acceptor);
    if (entered < 0) { /* the acceptor runs: it arms srv */
        rc = post_with_ref(acceptor, arm_task, srv, NULL, 0);
        if (rc < 0)
            unlisten(srv);
        return rc;
    }
    rc = arm(srv);
    if (rc < 0)
        unlisten(srv); /* it never listened: the call fails, nothing follows */
    pants__loop_leave(acceptor, entered);
    return rc;
}

/* ---- Closing ------------------------------------------------------------ */

static void close_conns_task(void *a, void *b, uintptr_t c)
{
    pants_server_t *srv = a;

    (void)b;
    for (pants_stream_t *s = srv->heads[c]; s != NULL; s = *pants__stream_srv_next(s))
        pants_stream_close(s);
    server_unref(srv);
}

/* Close the listening socket and its file; srv->mu held. */
static void drop_listener_locked(pants_server_t *srv)
{
    if (srv->fd >= 0) {
        if (srv->armed)
            event_del(&srv->listen_ev);
        event_del(&srv->backoff_ev);
        close(srv->fd);
        srv->fd = -1;
    }
    pants__bound_path_remove(&srv->unix_path);
}

static void close_listener(pants_server_t *srv)
{
    pthread_mutex_lock(&srv->mu);
    srv->closing = true;
    drop_listener_locked(srv);
    pthread_mutex_unlock(&srv->mu);
}

/* A listen whose socket could not be watched: as if it never happened,
 * so the server may listen again. */
static void unlisten(pants_server_t *srv)
{
    pthread_mutex_lock(&srv->mu);
    drop_listener_locked(srv);
    srv->bound = false;
    pthread_mutex_unlock(&srv->mu);
}

static void server_close_on_acceptor(pants_server_t *srv, bool with_conns)
{
    if (srv->closing)
        return;
    close_listener(srv);
    for (unsigned i = 0; with_conns && i < srv->engine->nloops; i++)
        post_with_ref(srv->engine->loops[i], close_conns_task, srv, NULL, i);
    maybe_finish(srv);
}

static void close_task(void *a, void *b, uintptr_t c)
{
    (void)b;
    (void)c;
    server_close_on_acceptor(a, true);
    server_unref(a);
}

void pants_server_close(pants_server_t *srv)
{
    pants_loop_t *acceptor;
    int entered;

    if (srv == NULL)
        return;
    acceptor = srv->engine->acceptor;
    entered = acceptor_enter(acceptor);
    if (entered >= 0) {
        server_close_on_acceptor(srv, true);
        pants__loop_leave(acceptor, entered);
    } else {
        post_with_ref(acceptor, close_task, srv, NULL, 0);
    }
}

/* ---- Broadcast ---------------------------------------------------------- */

#define SHARE_MIN 1024 /* from this size on, connections share one copy */

typedef struct blob_s {
    int refs;             /* loop tasks and queued shares (atomic) */
    size_t len;           /* bytes in data */
    unsigned char data[]; /* the message, copied once */
} blob_t;

static void blob_unref(blob_t *b)
{
    if (__atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0)
        free(b);
}

/* A connection's queue let go of its share (sent, or dropped). */
static void blob_released(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    blob_unref(arg);
}

/* Small messages are copied into each queue (cheaper than a reference);
 * large ones are queued by reference, so N connections cost one copy. */
static void broadcast_task(void *a, void *b, uintptr_t c)
{
    pants_server_t *srv = a;
    blob_t *blob = b;

    for (pants_stream_t *s = srv->heads[c]; s != NULL; s = *pants__stream_srv_next(s)) {
        if (!pants__stream_is_open(s))
            continue;
        int rc;
        if (blob->len < SHARE_MIN) {
            rc = pants_stream_write(s, blob->data, blob->len);
        } else {
            __atomic_add_fetch(&blob->refs, 1, __ATOMIC_RELAXED);
            rc = pants__stream_write_shared(s, blob->data, blob->len, blob_released, blob);
        }
        if (rc == -ENOBUFS) /* over its write limit: it cannot keep up */
            pants__stream_fail(s, rc);
    }
    blob_unref(blob);
    server_unref(srv);
}

int pants_server_broadcast(pants_server_t *srv, const void *data, size_t len)
{
    blob_t *blob;
    unsigned n;

    if (srv == NULL || (data == NULL && len > 0))
        return -EINVAL;
    if (__atomic_load_n(&srv->finished, __ATOMIC_ACQUIRE))
        return -EPIPE;
    blob = malloc(sizeof(*blob) + len);
    if (blob == NULL)
        return -ENOMEM;
    n = srv->engine->nloops;
    blob->refs = (int)n + 1;
    blob->len = len;
    if (len > 0)
        memcpy(blob->data, data, len);
    for (unsigned i = 0; i < n; i++)
        if (post_with_ref(srv->engine->loops[i], broadcast_task, srv, blob, i) < 0)
            blob_unref(blob);
    blob_unref(blob);
    return 0;
}

/* ---- Handle operations, creation ---------------------------------------- */

static void server_stop(pants__handle_t *h)
{
    server_close_on_acceptor((pants_server_t *)h, false);
}

static void server_release(pants__handle_t *h)
{
    pants_server_t *srv = (pants_server_t *)h;

    close_listener(srv);
    server_unref(srv);
}

static const pants__handle_ops_t server_ops = {
    .name = "server",
    .stop = server_stop,
    .kill = server_stop,
    .release = server_release,
    .run_pending = server_run_pending,
    .free = server_free,
};

pants_server_t *pants_server_new(pants_engine_t *e, const pants_server_callbacks_t *cb,
                                 const pants_stream_callbacks_t *conn_cb, void *data)
{
    pants_server_t *srv;
    int rc;

    if (e == NULL) {
        errno = EINVAL;
        return NULL;
    }
    srv = calloc(1, sizeof(*srv));
    if (srv == NULL || (srv->heads = calloc(e->nloops, sizeof(*srv->heads))) == NULL) {
        free(srv);
        errno = ENOMEM;
        return NULL;
    }
    srv->engine = e;
    srv->fd = -1;
    if (cb)
        srv->cb = *cb;
    if (conn_cb)
        srv->conn_cb = *conn_cb;
    srv->data = data;
    pthread_mutex_init(&srv->mu, NULL);
    if (pants_server_set_stream_options(srv, NULL) < 0) { /* the defaults, resolved */
        pthread_mutex_destroy(&srv->mu);
        free(srv->heads);
        free(srv);
        errno = ENOMEM;
        return NULL;
    }
    evtimer_assign(&srv->backoff_ev, e->acceptor->base, on_backoff_over, srv);
    pants__handle_init(&srv->handle, e->acceptor, &server_ops);
    /* From another thread while the acceptor runs, it registers srv; once
     * it has finished, nothing would ever close or free srv. */
    rc = pants__handle_register(&srv->handle, true);
    if (rc < 0) {
        server_free(&srv->handle);
        pants__live_add(-1);
        errno = -rc;
        return NULL;
    }
    return srv;
}
