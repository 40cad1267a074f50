/* server.c -- listening stream sockets and their connections.
 *
 * pants_server_listen binds on the calling thread, so its errors come back
 * from the call.  Each listening socket is a listener, a handle pinned to
 * the loop that accepts on it.  By default there is one, on the acceptor,
 * which accepts until EAGAIN and hands every new socket to the next worker
 * round-robin through that worker's task queue; the stream is made there
 * (pants__stream_adopt), where on_accept and on_connect run.  With
 * reuseport every worker has a listener of its own on the same port
 * (SO_REUSEPORT), and adopts what it accepts on the spot.  Running out of
 * descriptors is reported once and accepting pauses briefly, so no
 * listener spins.
 *
 * A server lives until its listeners are closed and its last connection
 * has closed; then on_close runs on the acceptor and its memory goes with
 * the last reference (listeners, connections and tasks in flight hold one
 * each).  Server callbacks other than on_accept run on the acceptor.
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
    pthread_mutex_t mu;                 /* guards ls, bound, closing between threads */
    struct listener_s **ls;             /* the listening sockets (set under mu at listen) */
    unsigned nls;                       /* how many: 1, or one per worker with reuseport */
    unsigned open_ls;                   /* listeners not yet closed (atomic) */
    int family;                         /* their family: that of every connection */
    pants_addr_t local;                 /* the bound address */
    bool bound;                         /* listen succeeded once */
    bool closing;                       /* close asked: no more accepts (atomic reads) */
    bool finished;                      /* on_close ran or is about to (atomic) */
    bool full;                          /* a listener paused at max_conns (atomic) */
    bool conns_closed;                  /* close asked for the connections too (acceptor) */
    bool reuseport;                     /* a listener per worker loop (set before listen) */
    bool proxy_protocol;                /* connections start with a PROXY header (set before listen) */
    pants__bound_path_t unix_path;      /* socket file to remove on close */
    size_t conns;                       /* open connections (atomic) */
    size_t max_conns;                   /* accept no more than this; 0 = no cap (atomic) */
    pants_stream_t **heads;             /* per worker: its connections */
    const pants_stream_options_t *opts; /* new connections' settings, resolved (atomic) */
    struct opts_node_s *old_opts;       /* every version given, freed with srv (mu) */
    struct ssl_ctx_st *tls;             /* connections do a TLS handshake on it, or NULL (referenced) */
};

static void server_close_on_acceptor(pants_server_t *srv, bool with_conns);
static void close_listeners(pants_server_t *srv);

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
    for (unsigned i = 0; i < srv->nls; i++)
        free(srv->ls[i]);
    free(srv->ls);
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
    rc = srv->bound && !srv->closing ? 0 : -ENOTCONN;
    if (rc == 0)
        *a = srv->local;
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
static void resume_listeners(pants_server_t *srv);
static bool srv_closing(const pants_server_t *srv);

/* A connection slot is free again (its connection closed, or an accept
 * that took it got nothing): the last one lets a closing server finish,
 * one below the cap lets paused listeners accept again. */
static void release_slot(pants_server_t *srv)
{
    size_t left = __atomic_sub_fetch(&srv->conns, 1, __ATOMIC_SEQ_CST);

    if (left == 0 && srv_closing(srv)) /* (closing is set before maybe_finish reads the count) */
        post_with_ref(srv->engine->acceptor, check_finish_task, srv, NULL, 0);
    if (__atomic_load_n(&srv->full, __ATOMIC_SEQ_CST) &&
        left < __atomic_load_n(&srv->max_conns, __ATOMIC_RELAXED))
        resume_listeners(srv);
}

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
    release_slot(srv);
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
        __atomic_load_n(&srv->open_ls, __ATOMIC_ACQUIRE) != 0 ||
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

/* ---- Listeners ------------------------------------------------------------ */

/* A listening socket, pinned to the loop that accepts on it: the acceptor,
 * or with reuseport a worker. */
typedef struct listener_s {
    pants__handle_t handle;  /* on its loop's list (active until closed) */
    pants_server_t *srv;     /* owner; the listener holds a reference */
    int fd;                  /* the socket, or -1 once closed */
    bool armed;              /* ev is added (or was, until paused) */
    bool paused;             /* at max_conns: ev deleted until a resume */
    bool emfile_reported;    /* on_error heard of this shortage */
    struct event ev;         /* fd readable: accept */
    struct event backoff_ev; /* resume accepting after EMFILE */
} listener_t;

static bool srv_closing(const pants_server_t *srv)
{
    return __atomic_load_n(&srv->closing, __ATOMIC_SEQ_CST);
}

static void report_task(void *a, void *b, uintptr_t c)
{
    pants_server_t *srv = a;

    (void)b;
    if (!__atomic_load_n(&srv->finished, __ATOMIC_ACQUIRE) && srv->cb.on_error)
        srv->cb.on_error(srv, (int)(intptr_t)c);
    server_unref(srv);
}

/* on_error(err), on the acceptor. */
static void report_error(pants_server_t *srv, int err)
{
    if (pants__loop_is_current(srv->engine->acceptor)) {
        if (srv->cb.on_error)
            srv->cb.on_error(srv, err);
        return;
    }
    post_with_ref(srv->engine->acceptor, report_task, srv, NULL, (uintptr_t)(intptr_t)err);
}

/* Watching a listener failed: say so, and close the server (that listener
 * could never accept again). */
static void watch_failed(listener_t *ls, int err)
{
    report_error(ls->srv, err);
    if (pants__loop_is_current(ls->srv->engine->acceptor))
        server_close_on_acceptor(ls->srv, true);
    else
        pants_server_close(ls->srv);
}

/* Close ls's socket and, from the loop, its handle.  Loop thread. */
static void listener_close(listener_t *ls)
{
    if (ls->fd < 0)
        return;
    if (ls->armed)
        event_del(&ls->ev);
    event_del(&ls->backoff_ev);
    close(ls->fd);
    ls->fd = -1;
    pants__handle_close(&ls->handle);
}

static void listener_gone(pants_server_t *srv)
{
    if (__atomic_sub_fetch(&srv->open_ls, 1, __ATOMIC_ACQ_REL) == 0)
        post_with_ref(srv->engine->acceptor, check_finish_task, srv, NULL, 0);
}

static void listener_closed(pants__handle_t *h)
{
    listener_gone(((listener_t *)h)->srv);
}

static void listener_stop(pants__handle_t *h)
{
    listener_close((listener_t *)h);
}

/* Loop teardown: no callbacks, the socket just goes. */
static void listener_release(pants__handle_t *h)
{
    listener_t *ls = (listener_t *)h;

    if (ls->fd >= 0) {
        close(ls->fd);
        ls->fd = -1;
        __atomic_sub_fetch(&ls->srv->open_ls, 1, __ATOMIC_ACQ_REL);
    }
    pants__handle_unref(h);
}

/* The memory stays with the server (server_free), so tasks posted with a
 * server reference may look at a listener that has closed. */
static void listener_free(pants__handle_t *h)
{
    server_unref(((listener_t *)h)->srv);
}

static const pants__handle_ops_t listener_ops = {
    .name = "listener",
    .stop = listener_stop,
    .kill = listener_stop,
    .release = listener_release,
    .closed = listener_closed,
    .free = listener_free,
    .part = true, /* of its server */
};

/* ---- Accepting ---------------------------------------------------------- */

static void on_backoff_over(evutil_socket_t fd, short what, void *arg)
{
    listener_t *ls = arg;
    int rc;

    (void)fd;
    (void)what;
    if (ls->fd < 0 || srv_closing(ls->srv) || ls->paused)
        return;
    rc = pants__event_add(&ls->ev, NULL);
    if (rc < 0)
        watch_failed(ls, rc);
}

/* Out of descriptors or memory: tell once, pause accepting briefly. */
static void accept_backoff(listener_t *ls, int err)
{
    struct timeval tv = {0, EMFILE_BACKOFF_MS * 1000};
    int rc;

    event_del(&ls->ev);
    rc = pants__event_add(&ls->backoff_ev, &tv);
    if (rc < 0) {
        watch_failed(ls, rc);
        return;
    }
    if (ls->emfile_reported)
        return;
    ls->emfile_reported = true;
    report_error(ls->srv, err);
}

static void adopt_task(void *a, void *b, uintptr_t c)
{
    pants__stream_adopt(b, a, (int)c);
}

/* A new connection, its slot taken: the listener's own loop adopts it
 * (reuseport), or the next worker does.  It holds a server reference. */
static void hand_off(listener_t *ls, int fd)
{
    pants_server_t *srv = ls->srv;
    pants_loop_t *l;

    pants__handle_ref(&srv->handle);
    if (srv->reuseport) {
        pants__stream_adopt(ls->handle.loop, srv, fd);
        return;
    }
    l = pants__engine_accept_loop(srv->engine);
    if (pants__loop_post(l, adopt_task, srv, l, (uintptr_t)fd) < 0) {
        close(fd);
        pants__server_conn_closed(srv, NULL);
    }
}

/* Take a connection slot before accepting: with reuseport, listeners on
 * several loops accept at once, so the count is raised first, under the
 * cap.  false: at the cap, and the listener stops watching its socket --
 * new clients wait in the backlog -- until a slot is released
 * (resume_listeners).  The flag is set before the count is read again,
 * and a release lowers the count before it reads the flag, so one of the
 * two sees the other. */
static bool take_slot(listener_t *ls)
{
    pants_server_t *srv = ls->srv;
    size_t max = __atomic_load_n(&srv->max_conns, __ATOMIC_RELAXED);
    size_t n = __atomic_load_n(&srv->conns, __ATOMIC_SEQ_CST);

    if (max == 0) {
        __atomic_add_fetch(&srv->conns, 1, __ATOMIC_SEQ_CST);
        return true;
    }
    for (;;) {
        while (n < max)
            if (__atomic_compare_exchange_n(&srv->conns, &n, n + 1, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
                return true;
        __atomic_store_n(&srv->full, true, __ATOMIC_SEQ_CST);
        n = __atomic_load_n(&srv->conns, __ATOMIC_SEQ_CST);
        if (n >= max)
            break;
    }
    event_del(&ls->ev);
    ls->paused = true;
    return false;
}

/* A connection closed below the cap, or the cap changed: ls accepts again
 * (and pauses again at once if the cap was reached meanwhile). */
static void resume_task(void *a, void *b, uintptr_t c)
{
    listener_t *ls = b;
    int rc = 0;

    (void)c;
    if (ls->paused && ls->fd >= 0 && !srv_closing(ls->srv)) {
        ls->paused = false;
        rc = pants__event_add(&ls->ev, NULL);
    }
    if (rc < 0)
        watch_failed(ls, rc);
    server_unref(a);
}

static void resume_listeners(pants_server_t *srv)
{
    if (!__atomic_exchange_n(&srv->full, false, __ATOMIC_SEQ_CST))
        return; /* another thread is already at it */
    pthread_mutex_lock(&srv->mu);
    for (unsigned i = 0; i < srv->nls; i++)
        post_with_ref(srv->ls[i]->handle.loop, resume_task, srv, srv->ls[i], 0);
    pthread_mutex_unlock(&srv->mu);
}

int pants_server_set_max_connections(pants_server_t *srv, size_t max)
{
    if (srv == NULL)
        return -EINVAL;
    __atomic_store_n(&srv->max_conns, max, __ATOMIC_RELAXED);
    resume_listeners(srv); /* a raised cap may let it accept again */
    return 0;
}

static void on_acceptable(evutil_socket_t lfd, short what, void *arg)
{
    listener_t *ls = arg;

    (void)what;
    for (int i = 0; i < ACCEPTS_PER_WAKEUP && !srv_closing(ls->srv) && take_slot(ls); i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            ls->emfile_reported = false;
            hand_off(ls, fd);
            if (ls->fd < 0)
                return; /* on_accept closed the server */
            continue;
        }
        int err = errno;
        release_slot(ls->srv);
        if (err == EINTR || err == ECONNABORTED || err == EPROTO)
            continue;
        if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM)
            accept_backoff(ls, -err);
        else if (err != EAGAIN)
            report_error(ls->srv, -err);
        return;
    }
}

/* ---- Listening ---------------------------------------------------------- */

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

bool pants__server_has_proxy_protocol(const pants_server_t *srv)
{
    return srv->proxy_protocol; /* set before listen, read after */
}

/* Watch ls's socket from its loop (its thread, or before it runs). */
static int arm(listener_t *ls)
{
    int rc = pants__event_add(&ls->ev, NULL);

    ls->armed = rc == 0;
    return rc;
}

/* A listener of a running loop starts there. */
static void listener_start_task(void *a, void *b, uintptr_t c)
{
    listener_t *ls = a;
    int rc;

    (void)b;
    (void)c;
    pants__handle_start(&ls->handle, ls->handle.loop, &listener_ops, true); /* may stop it at once */
    if (ls->fd < 0)
        return;
    if (srv_closing(ls->srv)) {
        listener_close(ls);
        return;
    }
    rc = arm(ls);
    if (rc < 0) {
        watch_failed(ls, rc);
        listener_close(ls);
    }
}

/* A stream socket for a: dual-stack for the IPv6 any address (addr.c). */
static int listen_socket(pants_addr_t *a, bool reuseport)
{
    int one = 1;
    int fd = pants__socket_for_bind(a, SOCK_STREAM);

    if (fd < 0 || a->ss.ss_family == AF_UNIX)
        return fd;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* accepted sockets inherit it */
#ifdef SO_REUSEPORT
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
        int err = errno == ENOPROTOOPT ? ENOTSUP : errno;
        close(fd);
        return -err;
    }
#endif
    return fd;
}

/* socket, bind, listen: one listening socket on a, or -errno. */
static int open_socket(pants_addr_t *a, int backlog, bool reuseport)
{
    int rc, fd = listen_socket(a, reuseport);

    if (fd < 0)
        return fd;
    rc = pants__bind(fd, a, SOCK_STREAM);
    if (rc == 0 && listen(fd, backlog > 0 ? backlog : DEFAULT_BACKLOG) < 0)
        rc = -errno;
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return fd;
}

/* a's port = that of b (same family: both IPv4 or IPv6). */
static void same_port(pants_addr_t *a, const pants_addr_t *b)
{
    if (a->ss.ss_family == AF_INET && b->ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&a->ss)->sin_port = ((const struct sockaddr_in *)&b->ss)->sin_port;
    else if (a->ss.ss_family == AF_INET6 && b->ss.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&a->ss)->sin6_port = ((const struct sockaddr_in6 *)&b->ss)->sin6_port;
}

static void free_unstarted(pants_server_t *srv)
{
    for (unsigned i = 0; i < srv->nls; i++) {
        if (srv->ls[i]->fd >= 0)
            close(srv->ls[i]->fd);
        free(srv->ls[i]);
    }
    free(srv->ls);
    srv->ls = NULL;
    srv->nls = 0;
}

/* The listeners' sockets, bound to a: one, or one per worker (the same
 * port for each, also when a asks for port 0).  srv->mu held. */
static int open_listeners(pants_server_t *srv, pants_addr_t *a, int backlog)
{
    unsigned n = srv->reuseport ? srv->engine->nloops : 1;
    pants_loop_t *l;

    if (srv->reuseport && a->ss.ss_family == AF_UNIX)
        return -EINVAL;
    srv->ls = calloc(n, sizeof(*srv->ls));
    if (srv->ls == NULL)
        return -ENOMEM;
    for (srv->nls = 0; srv->nls < n; srv->nls++) {
        listener_t *ls = calloc(1, sizeof(*ls));
        if (ls == NULL)
            goto fail_nomem;
        l = srv->reuseport ? srv->engine->loops[srv->nls] : srv->engine->acceptor;
        ls->srv = srv;
        ls->handle.loop = l;
        ls->fd = open_socket(a, backlog, srv->reuseport);
        srv->ls[srv->nls] = ls;
        event_assign(&ls->ev, l->base, ls->fd, EV_READ | EV_PERSIST, on_acceptable, ls); /* not added yet */
        evtimer_assign(&ls->backoff_ev, l->base, on_backoff_over, ls);
        if (ls->fd < 0) {
            int rc = ls->fd;
            srv->nls++;
            free_unstarted(srv);
            return rc;
        }
        if (srv->nls == 0 && pants__addr_of_fd(ls->fd, false, &srv->local) == 0 && a->ss.ss_family != AF_UNIX)
            same_port(a, &srv->local); /* the port the kernel picked */
    }
    return 0;
fail_nomem:
    free_unstarted(srv);
    return -ENOMEM;
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
    rc = open_listeners(srv, &a, backlog);
    if (rc == 0)
        rc = pants__bound_path_remember(&srv->unix_path, &a);
    if (rc < 0) {
        free_unstarted(srv);
        return rc;
    }
    srv->family = a.ss.ss_family;
    srv->open_ls = srv->nls;
    srv->bound = true;
    return 0;
}

/* Every listener's loop not running yet (or the caller's own): enter them
 * all, arm and start the listeners here.  1 done, 0 some loop runs
 * elsewhere (nothing was done), or a negative errno (nothing is left). */
static int start_here(pants_server_t *srv)
{
    unsigned i, entered_n = 0;
    int rc = 1, *entered = calloc(srv->nls, sizeof(*entered));

    if (entered == NULL)
        return -ENOMEM;
    for (i = 0; i < srv->nls && rc == 1; i++, entered_n++)
        if ((entered[i] = pants__loop_enter(srv->ls[i]->handle.loop, NULL)) < 0)
            rc = 0;
    for (i = 0; i < srv->nls && rc == 1; i++)
        if (arm(srv->ls[i]) < 0)
            rc = -ENOMEM;
    if (rc < 0)
        for (i = 0; i < srv->nls; i++)
            if (srv->ls[i]->armed)
                event_del(&srv->ls[i]->ev);
    for (i = 0; i < srv->nls && rc == 1; i++) {
        listener_t *ls = srv->ls[i];
        pants__handle_init(&ls->handle, ls->handle.loop, &listener_ops);
        pants__handle_ref(&srv->handle);
        pants__handle_start(&ls->handle, ls->handle.loop, &listener_ops, true);
    }
    for (i = 0; i < entered_n; i++)
        if (entered[i] >= 0)
            pants__loop_leave(srv->ls[i]->handle.loop, entered[i]);
    free(entered);
    return rc;
}

/* Some loop runs: each listener starts by a post to its loop. */
static void start_by_posts(pants_server_t *srv)
{
    for (unsigned i = 0; i < srv->nls; i++) {
        listener_t *ls = srv->ls[i];
        pants__handle_init(&ls->handle, ls->handle.loop, &listener_ops);
        pants__handle_ref(&srv->handle);
        if (pants__loop_post(ls->handle.loop, listener_start_task, ls, NULL, 0) < 0) {
            close(ls->fd); /* the loop has finished: the engine is stopping */
            ls->fd = -1;
            __atomic_sub_fetch(&srv->open_ls, 1, __ATOMIC_ACQ_REL);
            pants__handle_unref(&ls->handle);
        }
    }
}

/* on_listen, from the acceptor. */
static void listened_task(void *a, void *b, uintptr_t c)
{
    pants_server_t *srv = a;

    (void)b;
    (void)c;
    pants__handle_defer(&srv->handle, P_LISTENED);
    server_unref(srv);
}

/* A listen that could not start: as if it never happened, so the server
 * may listen again. */
static void unlisten(pants_server_t *srv)
{
    pthread_mutex_lock(&srv->mu);
    free_unstarted(srv);
    pants__bound_path_remove(&srv->unix_path);
    srv->open_ls = 0;
    srv->bound = false;
    pthread_mutex_unlock(&srv->mu);
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
    rc = start_here(srv);
    if (rc < 0) {
        unlisten(srv); /* it never listened: the call fails, nothing follows */
        return rc;
    }
    if (rc == 0)
        start_by_posts(srv);
    entered = acceptor_enter(acceptor);
    if (entered < 0) {
        post_with_ref(acceptor, listened_task, srv, NULL, 0); /* refused: the engine is gone */
        return 0;
    }
    pants__handle_defer(&srv->handle, P_LISTENED);
    pants__loop_leave(acceptor, entered);
    return 0;
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

static void listener_close_task(void *a, void *b, uintptr_t c)
{
    (void)c;
    listener_close(b);
    server_unref(a);
}

/* Close every listener on its loop, and remove the Unix socket file.  On
 * the acceptor (or with it entered). */
static void close_listeners(pants_server_t *srv)
{
    pthread_mutex_lock(&srv->mu);
    __atomic_store_n(&srv->closing, true, __ATOMIC_SEQ_CST);
    for (unsigned i = 0; i < srv->nls; i++) {
        listener_t *ls = srv->ls[i];
        pants_loop_t *l = ls->handle.loop;
        int entered = l == srv->engine->acceptor ? 0 : pants__loop_enter(l, NULL);
        if (entered >= 0) {
            listener_close(ls);
            pants__loop_leave(l, entered);
        } else {
            post_with_ref(l, listener_close_task, srv, ls, 0);
        }
    }
    pants__bound_path_remove(&srv->unix_path);
    pthread_mutex_unlock(&srv->mu);
}

/* Stop listening; with_conns: close the connections too (once). */
static void server_close_on_acceptor(pants_server_t *srv, bool with_conns)
{
    if (!srv->closing)
        close_listeners(srv);
    if (with_conns && !srv->conns_closed) {
        srv->conns_closed = true;
        for (unsigned i = 0; i < srv->engine->nloops; i++)
            post_with_ref(srv->engine->loops[i], close_conns_task, srv, NULL, i);
    }
    maybe_finish(srv);
}

static void close_task(void *a, void *b, uintptr_t c)
{
    (void)b;
    server_close_on_acceptor(a, c != 0);
    server_unref(a);
}

static void close_from_any_thread(pants_server_t *srv, bool with_conns)
{
    pants_loop_t *acceptor = srv->engine->acceptor;
    int entered = acceptor_enter(acceptor);

    if (entered >= 0) {
        server_close_on_acceptor(srv, with_conns);
        pants__loop_leave(acceptor, entered);
    } else {
        post_with_ref(acceptor, close_task, srv, NULL, with_conns);
    }
}

void pants_server_close(pants_server_t *srv)
{
    if (srv != NULL)
        close_from_any_thread(srv, true);
}

int pants_server_stop_listening(pants_server_t *srv)
{
    if (srv == NULL)
        return -EINVAL;
    close_from_any_thread(srv, false);
    return 0;
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

/* Loop teardown: each listener is released by its own loop. */
static void server_release(pants__handle_t *h)
{
    pants_server_t *srv = (pants_server_t *)h;

    pthread_mutex_lock(&srv->mu);
    __atomic_store_n(&srv->closing, true, __ATOMIC_RELEASE);
    pants__bound_path_remove(&srv->unix_path);
    pthread_mutex_unlock(&srv->mu);
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
