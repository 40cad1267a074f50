/* datagram.c -- packet channels: UDP over IPv4/IPv6 and Unix datagrams.
 *
 * Receiving: a level-triggered read event per socket; a wake-up drains up
 * to RECV_ROUNDS batches with recvmmsg into the loop's one receive batch
 * (RECV_BATCH slots of 64 KiB in one lazily-backed mapping, so a slot
 * costs memory only as deep as the packets written into it) and runs
 * on_read straight from it, one call per packet.  A packet cut by the
 * kernel (MSG_TRUNC) goes to on_error as -EMSGSIZE instead.
 *
 * Sending: every write is copied into the datagram's FIFO queue; the queue
 * goes out with sendmmsg, SEND_BATCH packets per call, once per wake-up
 * (replies made in on_read leave together when the batch is done) or from
 * the loop's pending work for writes made elsewhere.  What the kernel refuses
 * with EAGAIN waits for write readiness.  That is watched edge-triggered
 * on a dup() of the socket while blocked, because libevent cannot mix
 * edge- and level-triggered events on one fd, and level-triggered write
 * readiness would spin on an unconnected Unix sender whose receiver's
 * queue is full (poll says writable, sendto says EAGAIN).  The edge comes
 * when the receiver consumes one of our packets; a timer retries as a
 * safety net when none comes (the queue was full of others' packets).
 *
 * The queue is bounded by what it costs in memory, not by payload: a
 * packet counts as its node (header and payload room, at least
 * SPARE_PAYLOAD), so a flood of tiny packets is held to the limit too.
 *
 * Names: a name the loop's resolver (resolve.c) has cached goes out like
 * a numeric address.  Else the packet waits in the queue, in order
 * (packets behind it wait too), for a lookup asked from the loop's pending
 * work, so nothing goes out before the loop runs; the resolver keeps the
 * answer for its TTL, for every channel of the loop.
 * Errors: IP sockets set IP_RECVERR so ICMP errors (ECONNREFUSED...) reach
 * unconnected sockets too; they are read from the error queue and reported
 * one per ICMP message, and the datagram keeps working.
 *
 * Life cycle: new (no socket) -> open (socket) -> closed, as a handle of
 * the loop (engine/: references, pending work bits, the generic close that
 * runs on_close last).  Like streams, callbacks never run inside the API
 * call that caused them: on_listen, on_write, on_error from a send and
 * on_close are pending work, run from the loop.  A registration that fails
 * gives on_error, then the datagram closes.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "channels-internal.h"

#define SPARE_PAYLOAD       2048          /* packets up to this size reuse queue nodes */
#define SPARE_MAX           64            /* reusable nodes kept per datagram */
#define RECV_BATCH          32            /* packets per recvmmsg */
#define RECV_ROUNDS         4             /* recvmmsg calls per wake-up, then the others run */
#define SLOT_SIZE           65536         /* receive room per packet: any UDP payload fits */
#define SEND_BATCH          64            /* packets per sendmmsg */
#define DEFAULT_QUEUE_LIMIT (1024 * 1024) /* bytes of memory the send queue may hold */
#define MAX_UDP4            65507         /* 65535 - 20 (IPv4 header) - 8 (UDP header) */
#define MAX_UDP6            65527         /* 65535 - 8: no jumbograms */
#define MAX_UNIX            SLOT_SIZE     /* what a receiving datagram takes whole */
#define MAX_ADDRS           4             /* addresses a lookup keeps for its packets */
#define ERRS_MAX            16            /* errors waiting for on_error; more are dropped */
#define RETRY_MS            20            /* a blocked queue is retried at least this often */
#define REFUSED_RETRIES     8             /* late ICMP errors met by one flush, at most */

enum dgram_state {
    G_NEW,    /* no socket yet */
    G_OPEN,   /* has a socket */
    G_CLOSED, /* closed; on_close pending or done */
};

enum deferred {
    D_LISTENED = 1, /* run on_listen */
    D_FLUSH = 2,    /* send the queue */
    D_NOTIFY = 4,   /* run on_error for errs, on_write if due */
    D_LOOKUP = 16,  /* start the lookups asked for */
    D_FAIL = 32,    /* a registration failed: after on_error, close */
};

typedef struct lookup_s lookup_t;

typedef struct packet_s {
    struct packet_s *next; /* the send queue */
    lookup_t *lookup;      /* name still to turn into to, or NULL */
    size_t len;            /* payload bytes */
    size_t cap;            /* payload bytes allocated */
    pants_addr_t to;       /* destination (once known) */
    unsigned char data[];  /* payload */
} packet_t;

struct lookup_s {
    lookup_t *next;                /* the datagram's lookups */
    pants_datagram_t *d;           /* owner */
    pants__resolve_t *resolve;     /* in flight, or NULL (not started yet, or answered) */
    bool answered;                 /* the answer (or failure) is in */
    int err;                       /* 0 or the PANTS_EAI_* it failed with */
    size_t waiting;                /* queued packets that need it */
    uint16_t port;                 /* asked for */
    size_t naddrs;                 /* addresses in the answer */
    pants_addr_t addrs[MAX_ADDRS]; /* the answer, in preference order */
    char host[];                   /* asked for */
};

/* The loop's receive batch: one for all the datagrams of a loop. */
typedef struct rbatch_s {
    pants__handle_t handle;          /* inactive handle: freed with the loop */
    struct mmsghdr msgs[RECV_BATCH]; /* recvmmsg vector */
    struct iovec iov[RECV_BATCH];    /* one slot each */
    pants_addr_t from[RECV_BATCH];   /* senders */
    unsigned char *slots;            /* RECV_BATCH * SLOT_SIZE bytes, mmap'ed */
} rbatch_t;

struct pants_datagram_s {
    pants__handle_t handle;        /* on the loop's list (active); refs, pending work */
    enum dgram_state state;        /* life cycle */
    int fd;                        /* the socket, or -1 */
    int wfd;                       /* dup of fd watched for write readiness, or -1 */
    int family;                    /* of fd; AF_UNSPEC before */
    bool dual;                     /* IPv6 socket that reaches IPv4 too (v4-mapped) */
    bool in_io;                    /* on_read runs: a flush follows, writes wait for it */
    bool ending;                   /* end(): close once the queue is empty */
    bool blocked;                  /* the kernel said EAGAIN: wev and retry_ev armed */
    bool want_on_write;            /* written since on_write was last due */
    bool write_due;                /* on_write to run (D_NOTIFY) */
    struct event rev;              /* fd readable, level-triggered */
    struct event wev;              /* wfd writable, edge-triggered, while blocked */
    struct event retry_ev;         /* retries a blocked queue without an edge */
    int errs[ERRS_MAX];            /* errors for on_error, oldest first */
    unsigned nerrs;                /* how many */
    pants_datagram_callbacks_t cb; /* the application's callbacks */
    void *data;                    /* the application's pointer */
    packet_t *head;                /* send queue, FIFO */
    packet_t *tail;                /* its last packet */
    packet_t *spare;               /* emptied small nodes, reused by the queue */
    unsigned nspare;               /* how many */
    size_t queued;                 /* payload bytes queued (atomic store, any-thread load) */
    size_t cost;                   /* memory the queued nodes take (packet_cost) */
    size_t queue_limit;            /* most cost queued */
    lookup_t *lookups;             /* names being resolved or still needed */
    pants__bound_path_t unix_path; /* socket file bound by listen, removed on close */
};

static void flush(pants_datagram_t *d);
static int dgram_end(pants_datagram_t *d);

/* ---- References and accessors ------------------------------------------ */

static void dgram_free(pants__handle_t *h)
{
    free(h);
}

void *pants_datagram_data(const pants_datagram_t *d)
{
    return d ? d->data : NULL;
}

void pants_datagram_set_data(pants_datagram_t *d, void *data)
{
    if (d)
        d->data = data;
}

pants_loop_t *pants_datagram_loop(const pants_datagram_t *d)
{
    return d ? d->handle.loop : NULL;
}

int pants_datagram_fd(const pants_datagram_t *d)
{
    return d ? d->fd : -1;
}

size_t pants_datagram_pending(const pants_datagram_t *d)
{
    return d ? __atomic_load_n(&d->queued, __ATOMIC_RELAXED) : 0;
}

/* A packet of p_len payload bytes (re)enters or leaves the queue. */
static void queued_add(pants_datagram_t *d, size_t p_len, size_t p_cost, bool add)
{
    __atomic_store_n(&d->queued, add ? d->queued + p_len : d->queued - p_len, __ATOMIC_RELAXED);
    d->cost = add ? d->cost + p_cost : d->cost - p_cost;
}

/* ---- Addresses ---------------------------------------------------------- */

/* A destination a packet can be sent to. */
static int check_dest(const pants_addr_t *to)
{
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&to->ss;
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&to->ss;

    if (to->len > sizeof(to->ss))
        return -EINVAL;
    switch (to->ss.ss_family) {
    case AF_INET:
        return to->len >= sizeof(*sin) && sin->sin_port != 0 ? 0 : -EINVAL;
    case AF_INET6:
        return to->len >= sizeof(*s6) && s6->sin6_port != 0 ? 0 : -EINVAL;
    case AF_UNIX:
        return to->len > offsetof(struct sockaddr_un, sun_path) ? 0 : -EINVAL;
    default:
        return -EINVAL;
    }
}

static size_t max_packet(pants_addr_t *to)
{
    if (to->ss.ss_family == AF_UNIX)
        return MAX_UNIX;
    if (to->ss.ss_family == AF_INET || pants__addr_is_v4_mapped(to))
        return MAX_UDP4;
    return MAX_UDP6;
}

/* Make a fit d's socket: map or unmap IPv4, or -EAFNOSUPPORT. */
static int fit_family(const pants_datagram_t *d, pants_addr_t *a)
{
    return pants__addr_fit_family(a, d->family, d->dual);
}

/* The first of a name's addresses d can reach (any, before d has a socket). */
static int pick(const pants_datagram_t *d, const pants_addr_t *addrs, size_t n, pants_addr_t *out)
{
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            *out = addrs[i];
            if (d->family == AF_UNSPEC ||
                (pass == 0 ? out->ss.ss_family == d->family : fit_family(d, out) == 0))
                return 0;
        }
    }
    return -EAFNOSUPPORT;
}

/* ---- The loop's receive batch ------------------------------------------- */

static void rbatch_release(pants__handle_t *h)
{
    rbatch_t *b = (rbatch_t *)h;

    h->loop->dgram = NULL;
    munmap(b->slots, (size_t)RECV_BATCH * SLOT_SIZE);
    free(b);
}

static const pants__handle_ops_t rbatch_ops = {.name = "datagram batch", .release = rbatch_release};

/* l's receive batch, made the first time a datagram of l gets a socket. */
static rbatch_t *loop_batch(pants_loop_t *l)
{
    rbatch_t *b = l->dgram;

    if (b != NULL)
        return b;
    b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    /* Anonymous pages are backed on first touch: a slot holding small
     * packets costs a page, not 64 KiB. */
    b->slots = mmap(NULL, (size_t)RECV_BATCH * SLOT_SIZE, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (b->slots == MAP_FAILED) {
        free(b);
        return NULL;
    }
    for (int i = 0; i < RECV_BATCH; i++) {
        b->iov[i].iov_base = b->slots + (size_t)i * SLOT_SIZE;
        b->iov[i].iov_len = SLOT_SIZE;
        b->msgs[i].msg_hdr.msg_name = &b->from[i].ss;
        b->msgs[i].msg_hdr.msg_iov = &b->iov[i];
        b->msgs[i].msg_hdr.msg_iovlen = 1;
    }
    pants__handle_start(&b->handle, l, &rbatch_ops, false);
    l->dgram = b;
    return b;
}

/* ---- Deferred callbacks, errors ----------------------------------------- */

static void defer(pants_datagram_t *d, unsigned what)
{
    pants__handle_defer(&d->handle, what);
}

/* An error for on_error, reported from the loop (never inside a call). */
static void note_error(pants_datagram_t *d, int err)
{
    if (d->nerrs < ERRS_MAX)
        d->errs[d->nerrs++] = err;
    defer(d, D_NOTIFY);
}

/* Read the ICMP errors queued on an IP socket (IP_RECVERR), one note each.
 * Reading the last one also clears the socket's pending error.  Returns
 * how many there were. */
static int drain_errqueue(pants_datagram_t *d)
{
    int count = 0;

    for (int i = 0; i < 64 && d->fd >= 0 && pants__family_is_ip(d->family); i++) {
        union {
            char buf[512];
            struct cmsghdr align;
        } ctrl;
        char byte;
        struct iovec iov = {&byte, 1};
        struct msghdr m = {
            .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl.buf, .msg_controllen = sizeof(ctrl)};
        if (recvmsg(d->fd, &m, MSG_ERRQUEUE | MSG_DONTWAIT) < 0)
            break;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c != NULL; c = CMSG_NXTHDR(&m, c)) {
            struct sock_extended_err ee;
            if (!((c->cmsg_level == SOL_IP && c->cmsg_type == IP_RECVERR) ||
                  (c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_RECVERR)))
                continue;
            memcpy(&ee, CMSG_DATA(c), sizeof(ee));
            if (ee.ee_errno != 0) {
                note_error(d, -(int)ee.ee_errno);
                count++;
            }
        }
    }
    return count;
}

/* The socket reported err (a late ICMP error, most often). */
static void socket_error(pants_datagram_t *d, int err)
{
    if (drain_errqueue(d) == 0)
        note_error(d, err);
}

/* Run on_error for the noted errors, then on_write if due. */
static void notify(pants_datagram_t *d)
{
    while (d->state != G_CLOSED && d->nerrs > 0) {
        int err = d->errs[0];
        memmove(d->errs, d->errs + 1, --d->nerrs * sizeof(d->errs[0]));
        if (d->cb.on_error)
            d->cb.on_error(d, err);
    }
    if (d->state != G_CLOSED && d->write_due) {
        d->write_due = false;
        if (d->cb.on_write)
            d->cb.on_write(d);
    }
}

/* ---- Names -------------------------------------------------------------- */

static void lookup_free(pants_datagram_t *d, lookup_t *lk)
{
    for (lookup_t **pp = &d->lookups; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == lk) {
            *pp = lk->next;
            break;
        }
    }
    pants__resolve_cancel(lk->resolve);
    free(lk);
}

/* A packet no longer needs lk: the last one frees it (cancelling it if
 * it is still resolving). */
static void lookup_unref(pants_datagram_t *d, lookup_t *lk)
{
    if (--lk->waiting == 0)
        lookup_free(d, lk);
}

static void schedule_flush(pants_datagram_t *d)
{
    if (!d->in_io && !d->blocked)
        defer(d, D_FLUSH);
}

static void on_resolved(int err, const pants_addr_t *addrs, size_t n, uint32_t ttl_s, void *arg)
{
    lookup_t *lk = arg;
    pants_datagram_t *d = lk->d;

    lk->resolve = NULL;
    lk->answered = true;
    lk->err = err;
    lk->naddrs = 0;
    /* Half the room for each family: an IPv6-only socket must still find
     * an AAAA answer behind many A ones. */
    for (size_t i = 0, per[2] = {0, 0}; i < n && lk->naddrs < MAX_ADDRS; i++) {
        size_t *count = &per[addrs[i].ss.ss_family == AF_INET6];
        if (*count < MAX_ADDRS / 2) {
            lk->addrs[lk->naddrs++] = addrs[i];
            ++*count;
        }
    }
    (void)ttl_s; /* the loop's resolver caches the answer */
    if (err != 0 || n == 0)
        note_error(d, err ? err : PANTS_EAI_NODATA);
    schedule_flush(d);
}

/* Ask the resolver for the names written to.  This runs from the loop,
 * not inside pants_datagram_write, so nothing is sent before the loop
 * runs (a setup before run only queues). */
static void start_lookups(pants_datagram_t *d)
{
    for (lookup_t *lk = d->lookups; lk != NULL; lk = lk->next) {
        if (lk->answered || lk->resolve != NULL)
            continue;
        lk->resolve = pants__resolve_start(d->handle.loop, lk->host, lk->port, on_resolved, lk);
        if (lk->resolve == NULL)
            on_resolved(PANTS_EAI_MEMORY, NULL, 0, 0, lk);
    }
}

/* The lookup of host:port still to be answered, or a new one (started
 * from the loop by D_LOOKUP). */
static lookup_t *lookup_get(pants_datagram_t *d, const char *host, uint16_t port)
{
    size_t hlen = strlen(host) + 1;
    lookup_t *lk;

    for (lk = d->lookups; lk != NULL; lk = lk->next)
        if (!lk->answered && lk->port == port && strcmp(lk->host, host) == 0)
            return lk;
    lk = calloc(1, sizeof(*lk) + hlen);
    if (lk == NULL)
        return NULL;
    lk->d = d;
    lk->port = port;
    memcpy(lk->host, host, hlen);
    lk->next = d->lookups;
    d->lookups = lk;
    defer(d, D_LOOKUP);
    return lk;
}

/* ---- Sockets ------------------------------------------------------------ */

/* ICMP errors reach unconnected IP sockets too (IP_RECVERR): on_error. */
static void want_icmp_errors(int fd, int family)
{
    int one = 1;

    if (pants__family_is_ip(family))
        setsockopt(fd, SOL_IP, IP_RECVERR, &one, sizeof(one));
    if (family == AF_INET6)
        setsockopt(fd, SOL_IPV6, IPV6_RECVERR, &one, sizeof(one));
}

static void dgram_on_read(evutil_socket_t fd, short what, void *arg);
static void dgram_on_writable(evutil_socket_t fd, short what, void *arg);

/* fd becomes d's socket: watch it.  On failure fd stays the caller's. */
static int attach(pants_datagram_t *d, int fd, int family)
{
    pants_loop_t *l = d->handle.loop;
    int wfd;

    if (loop_batch(l) == NULL)
        return -ENOMEM;
    wfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (wfd < 0)
        return -errno;
    want_icmp_errors(fd, family);
    d->fd = fd;
    d->wfd = wfd;
    d->family = family;
    d->dual = pants__socket_is_dual(fd);
    event_assign(&d->rev, l->base, fd, EV_READ | EV_PERSIST, dgram_on_read, d);
    event_assign(&d->wev, l->base, wfd, EV_WRITE | EV_PERSIST | EV_ET, dgram_on_writable, d);
    if (!d->ending) {
        int rc = pants__event_add(&d->rev, NULL);
        if (rc < 0) {
            close(wfd);
            d->fd = d->wfd = -1;
            d->family = AF_UNSPEC;
            return rc;
        }
    }
    d->state = G_OPEN;
    return 0;
}

/* A socket for a datagram that writes before (or without) listening:
 * bound to any address, so replies reach it (Unix: an autobound abstract
 * name, as bind with just the family gives). */
static int open_writer(pants_datagram_t *d, int family)
{
    pants_addr_t a;
    int rc, fd = pants__socket(family, SOCK_DGRAM, true);

    if (fd < 0)
        return fd;
    pants__addr_set_any(&a, family);
    rc = bind(fd, (const struct sockaddr *)&a.ss, a.len) == 0 ? attach(d, fd, family) : -errno;
    if (rc < 0)
        close(fd);
    return rc;
}

static int open_listener(pants_datagram_t *d, pants_addr_t *a)
{
    int rc, fd = pants__socket_for_bind(a, SOCK_DGRAM);

    if (fd < 0)
        return fd;
    rc = pants__bind(fd, a, SOCK_DGRAM);
    if (rc == 0)
        rc = pants__bound_path_remember(&d->unix_path, a);
    if (rc == 0)
        rc = attach(d, fd, a->ss.ss_family);
    if (rc < 0) {
        pants__bound_path_remove(&d->unix_path);
        close(fd);
    }
    return rc;
}

/* ---- Closing ------------------------------------------------------------ */

static void drop_queue(pants_datagram_t *d)
{
    while (d->head != NULL) {
        packet_t *p = d->head;
        d->head = p->next;
        free(p);
    }
    while (d->spare != NULL) {
        packet_t *p = d->spare;
        d->spare = p->next;
        free(p);
    }
    d->nspare = 0;
    d->tail = NULL;
    __atomic_store_n(&d->queued, 0, __ATOMIC_RELAXED);
    d->cost = 0;
}

static void drop_names(pants_datagram_t *d)
{
    while (d->lookups != NULL) {
        lookup_t *lk = d->lookups;
        d->lookups = lk->next;
        pants__resolve_cancel(lk->resolve);
        free(lk);
    }
}

static void release_io(pants_datagram_t *d)
{
    if (d->fd >= 0) {
        event_del(&d->rev);
        event_del(&d->wev);
        close(d->wfd);
        close(d->fd);
        d->fd = d->wfd = -1;
    }
    event_del(&d->retry_ev);
    d->blocked = false;
    pants__bound_path_remove(&d->unix_path);
    drop_queue(d);
    drop_names(d);
}

static void close_now(pants_datagram_t *d)
{
    if (d->state == G_CLOSED)
        return;
    d->state = G_CLOSED;
    release_io(d);
    d->nerrs = 0;
    pants__handle_close(&d->handle);
}

/* The last step: on_close (then d leaves its loop). */
static void dgram_closed(pants__handle_t *h)
{
    pants_datagram_t *d = (pants_datagram_t *)h;

    if (d->cb.on_close)
        d->cb.on_close(d);
}

static void dgram_run_pending(pants__handle_t *h, unsigned bits)
{
    pants_datagram_t *d = (pants_datagram_t *)h;

    if ((bits & D_LISTENED) && d->cb.on_listen)
        d->cb.on_listen(d);
    if ((bits & D_LOOKUP) && d->state != G_CLOSED)
        start_lookups(d);
    if ((bits & D_FLUSH) && d->state != G_CLOSED && !d->blocked)
        flush(d);
    notify(d);
    if (bits & D_FAIL)
        close_now(d);
}

/* Watching the socket failed: on_error from the loop, then close (d could
 * never send or receive again). */
static void fail_later(pants_datagram_t *d, int err)
{
    note_error(d, err);
    defer(d, D_FAIL);
}

static void close_task(void *a, void *b, uintptr_t c)
{
    (void)b;
    (void)c;
    close_now(a);
    pants__handle_unref(a);
}

void pants_datagram_close(pants_datagram_t *d)
{
    int entered;

    if (d == NULL)
        return;
    entered = pants__loop_enter(d->handle.loop, NULL); /* any thread: posted, no warning */
    if (entered < 0) {
        /* Any thread, but closing must not be lost: hand it to the owner. */
        pants__handle_post(&d->handle, d->handle.loop, close_task, NULL, 0);
        return;
    }
    close_now(d);
    pants__loop_leave(d->handle.loop, entered);
}

/* ---- Handle operations (engine stop) ------------------------------------ */

static void dgram_stop(pants__handle_t *h)
{
    dgram_end((pants_datagram_t *)h);
}

static void dgram_kill(pants__handle_t *h)
{
    close_now((pants_datagram_t *)h);
}

/* Loop teardown without callbacks (the engine never ran, or is freed). */
static void dgram_release(pants__handle_t *h)
{
    pants_datagram_t *d = (pants_datagram_t *)h;

    release_io(d);
    pants__handle_unref(h);
}

static const pants__handle_ops_t dgram_ops = {
    .name = "datagram",
    .stop = dgram_stop,
    .kill = dgram_kill,
    .release = dgram_release,
    .run_pending = dgram_run_pending,
    .closed = dgram_closed,
    .free = dgram_free,
};

/* ---- Creation ----------------------------------------------------------- */

static void dgram_on_retry(evutil_socket_t fd, short what, void *arg);

static void dgram_init(pants_datagram_t *d, pants_loop_t *l, const pants_datagram_callbacks_t *cb, void *data)
{
    pants__handle_init(&d->handle, l, &dgram_ops);
    d->state = G_NEW;
    d->fd = d->wfd = -1;
    d->family = AF_UNSPEC;
    if (cb)
        d->cb = *cb;
    d->data = data;
    d->queue_limit = DEFAULT_QUEUE_LIMIT;
    evtimer_assign(&d->retry_ev, l->base, dgram_on_retry, d);
}

pants_datagram_t *pants_datagram_new(pants_loop_t *l, const pants_datagram_callbacks_t *cb, void *data)
{
    pants_datagram_t *d;
    int rc;

    if (l == NULL) {
        errno = EINVAL;
        return NULL;
    }
    d = calloc(1, sizeof(*d));
    if (d == NULL)
        return NULL;
    dgram_init(d, l, cb, data);
    rc = pants__handle_register(&d->handle, true);
    if (rc < 0) {
        dgram_free(&d->handle);
        pants__live_add(-1);
        errno = -rc;
        return NULL;
    }
    return d;
}

/* ---- Listening ---------------------------------------------------------- */

static int dgram_listen(pants_datagram_t *d, const char *address)
{
    char host[PANTS__HOST_MAX];
    pants_addr_t a;
    uint16_t port;
    int rc;

    if (d->state == G_CLOSED || d->ending)
        return -EPIPE;
    if (d->fd >= 0)
        return -EALREADY;
    rc = pants__addr_split(address, PANTS__ADDR_LISTEN, &a, host, &port);
    if (rc != 0)
        return rc < 0 ? rc : -EINVAL; /* listening needs a numeric address */
    rc = open_listener(d, &a);
    if (rc < 0)
        return rc;
    defer(d, D_LISTENED);
    return 0;
}

int pants_datagram_listen(pants_datagram_t *d, const char *address)
{
    int entered, rc;

    if (d == NULL || address == NULL)
        return -EINVAL;
    entered = pants__loop_enter(d->handle.loop, "pants_datagram_listen");
    if (entered < 0)
        return entered;
    rc = dgram_listen(d, address);
    pants__loop_leave(d->handle.loop, entered);
    return rc;
}

int pants_datagram_local_address(pants_datagram_t *d, pants_addr_t *a)
{
    int entered, rc;

    if (d == NULL || a == NULL)
        return -EINVAL;
    entered = pants__loop_enter(d->handle.loop, "pants_datagram_local_address");
    if (entered < 0)
        return entered;
    rc = pants__addr_of_fd(d->fd, false, a);
    pants__loop_leave(d->handle.loop, entered);
    return rc;
}

int pants_datagram_set_queue_limit(pants_datagram_t *d, size_t bytes)
{
    int entered;

    if (d == NULL || bytes == 0)
        return -EINVAL;
    entered = pants__loop_enter(d->handle.loop, "pants_datagram_set_queue_limit");
    if (entered < 0)
        return entered;
    d->queue_limit = bytes;
    pants__loop_leave(d->handle.loop, entered);
    return 0;
}

/* ---- Receiving ---------------------------------------------------------- */

static void deliver_batch(pants_datagram_t *d, rbatch_t *b, int n)
{
    for (int i = 0; i < n && d->state == G_OPEN && !d->ending; i++) {
        const struct msghdr *h = &b->msgs[i].msg_hdr;
        pants_addr_t *from = &b->from[i];
        if (h->msg_flags & MSG_TRUNC) {
            if (d->cb.on_error) /* cut to SLOT_SIZE: never passed on as whole */
                d->cb.on_error(d, -EMSGSIZE);
            continue;
        }
        from->len = h->msg_namelen;
        if (from->len == 0) /* an unbound Unix sender: the slot holds an older address */
            from->ss.ss_family = AF_UNSPEC;
        pants__addr_unmap_v4(from);
        if (d->cb.on_read)
            d->cb.on_read(d, b->slots + (size_t)i * SLOT_SIZE, b->msgs[i].msg_len, from);
    }
}

/* After on_read calls: what they wrote leaves together. */
static void after_io(pants_datagram_t *d)
{
    d->in_io = false;
    if (d->state == G_OPEN && d->head != NULL && !d->blocked)
        flush(d);
}

static void dgram_on_read(evutil_socket_t fd, short what, void *arg)
{
    pants_datagram_t *d = arg;
    rbatch_t *b = d->handle.loop->dgram;

    (void)what;
    d->in_io = true;
    for (int round = 0; round < RECV_ROUNDS && d->state == G_OPEN && !d->ending; round++) {
        for (int i = 0; i < RECV_BATCH; i++)
            b->msgs[i].msg_hdr.msg_namelen = sizeof(b->from[i].ss);
        int n = recvmmsg(fd, b->msgs, RECV_BATCH, MSG_DONTWAIT, NULL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            if (round == 0) /* woken for nothing: an error queued (EPOLLERR)? */
                drain_errqueue(d);
            break;
        }
        if (n < 0) {
            socket_error(d, -errno);
            continue;
        }
        deliver_batch(d, b, n);
        if (n < RECV_BATCH)
            break; /* recvmmsg stopped early: the socket is drained */
    }
    after_io(d);
}

/* ---- Sending ------------------------------------------------------------ */

/* The kernel takes no more: wait for an edge, or retry after RETRY_MS. */
static void block(pants_datagram_t *d)
{
    struct timeval tv = {RETRY_MS / 1000, (RETRY_MS % 1000) * 1000};

    int rc = 0;

    if (!d->blocked) {
        d->blocked = true;
        rc = pants__event_add(&d->wev, NULL);
    }
    if (rc == 0)
        rc = pants__event_add(&d->retry_ev, &tv);
    if (rc < 0)
        fail_later(d, rc);
}

static void unblock(pants_datagram_t *d)
{
    if (!d->blocked)
        return;
    d->blocked = false;
    event_del(&d->wev);
    event_del(&d->retry_ev);
}

/* Queue nodes: packets up to SPARE_PAYLOAD bytes get nodes of that size,
 * and an emptied one is kept for the next, so a steady stream of replies
 * allocates nothing per packet. */
static size_t node_cap(size_t len)
{
    return len <= SPARE_PAYLOAD ? SPARE_PAYLOAD : len;
}

/* What a packet of len bytes costs while queued: its node, header and
 * payload room.  The queue limit counts this, not the payload, so tiny
 * packets cannot hold memory far beyond it. */
static size_t packet_cost(size_t len)
{
    return sizeof(packet_t) + node_cap(len);
}

static packet_t *packet_alloc(pants_datagram_t *d, size_t len)
{
    size_t cap = node_cap(len);
    packet_t *p = d->spare;

    if (cap == SPARE_PAYLOAD && p != NULL) {
        d->spare = p->next;
        d->nspare--;
        return p;
    }
    p = malloc(sizeof(*p) + cap);
    if (p != NULL)
        p->cap = cap;
    return p;
}

static void packet_free(pants_datagram_t *d, packet_t *p)
{
    if (p->cap != SPARE_PAYLOAD || d->nspare >= SPARE_MAX || d->state == G_CLOSED) {
        free(p);
        return;
    }
    p->next = d->spare;
    d->spare = p;
    d->nspare++;
}

/* Take p (after prev, or the head) off the queue and free it. */
static void unlink_packet(pants_datagram_t *d, packet_t *prev, packet_t *p)
{
    if (prev)
        prev->next = p->next;
    else
        d->head = p->next;
    if (d->tail == p)
        d->tail = prev;
    queued_add(d, p->len, sizeof(*p) + p->cap, false);
    if (p->lookup)
        lookup_unref(d, p->lookup);
    packet_free(d, p);
}

/* Give p its address if it waited for a name.  0: ready to send; 1: its
 * name is still resolving; -1: drop it (the name failed, or no address
 * fits; that was reported). */
static int prepare(pants_datagram_t *d, packet_t *p)
{
    lookup_t *lk = p->lookup;
    int rc;

    if (lk == NULL)
        return 0;
    if (!lk->answered)
        return 1;
    if (lk->err != 0 || lk->naddrs == 0)
        return -1;
    rc = pick(d, lk->addrs, lk->naddrs, &p->to);
    if (rc == 0 && p->len > max_packet(&p->to))
        rc = -EMSGSIZE; /* before a first packet makes the socket */
    if (rc == 0 && d->fd < 0)
        rc = open_writer(d, p->to.ss.ss_family);
    if (rc < 0) {
        note_error(d, rc);
        return -1;
    }
    p->lookup = NULL;
    lookup_unref(d, lk);
    return 0;
}

/* Fill msgs from the front of the queue; returns how many. */
static int gather(pants_datagram_t *d, struct mmsghdr *msgs, struct iovec *iov)
{
    packet_t *prev = NULL, *p = d->head;
    int n = 0;

    while (p != NULL && n < SEND_BATCH) {
        int rc = prepare(d, p);
        if (rc > 0)
            break;
        if (rc < 0) {
            packet_t *next = p->next;
            unlink_packet(d, prev, p);
            p = next;
            continue;
        }
        iov[n].iov_base = p->data;
        iov[n].iov_len = p->len;
        memset(&msgs[n], 0, sizeof(msgs[n]));
        msgs[n].msg_hdr.msg_name = &p->to.ss;
        msgs[n].msg_hdr.msg_namelen = p->to.len;
        msgs[n].msg_hdr.msg_iov = &iov[n];
        msgs[n].msg_hdr.msg_iovlen = 1;
        n++;
        prev = p;
        p = p->next;
    }
    return n;
}

/* sendmmsg failed with err for the head packet.  Returns true to go on. */
static bool send_failed(pants_datagram_t *d, int err, int *refused)
{
    if (err == EINTR)
        return true;
    if (err == EAGAIN || err == ENOBUFS) { /* ENOBUFS: dropped by a full device queue */
        block(d);
        return false;
    }
    if (pants__family_is_ip(d->family) && err == ECONNREFUSED && ++*refused <= REFUSED_RETRIES) {
        socket_error(d, -err); /* a late ICMP error: this packet was not at fault */
        return true;
    }
    note_error(d, -err); /* this packet was refused: drop it */
    unlink_packet(d, NULL, d->head);
    return true;
}

/* The queue is empty (or waits for a name): on_write, end. */
static void flushed(pants_datagram_t *d)
{
    if (d->head != NULL)
        return;
    unblock(d);
    if (d->want_on_write) {
        d->want_on_write = false;
        if (d->cb.on_write) {
            d->write_due = true;
            defer(d, D_NOTIFY);
        }
    }
    if (d->ending)
        close_now(d);
}

/* Hand the queue to the kernel until it is empty, waits for a name, or the
 * socket is full.  Never runs a callback: they are deferred. */
static void flush(pants_datagram_t *d)
{
    struct mmsghdr msgs[SEND_BATCH];
    struct iovec iov[SEND_BATCH];
    int n, refused = 0;

    while ((n = gather(d, msgs, iov)) > 0) {
        int sent = sendmmsg(d->fd, msgs, (unsigned)n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (sent < 0 && !send_failed(d, errno, &refused))
            return;
        for (int i = 0; i < sent; i++)
            unlink_packet(d, NULL, d->head);
    }
    flushed(d);
}

static void dgram_on_writable(evutil_socket_t fd, short what, void *arg)
{
    pants_datagram_t *d = arg;

    (void)fd;
    (void)what;
    if (d->state == G_OPEN)
        flush(d);
}

static void dgram_on_retry(evutil_socket_t fd, short what, void *arg)
{
    dgram_on_writable(fd, what, arg);
}

/* Room for a packet of len more bytes (counted as packet_cost): if the
 * queue is full, try to send it now. */
static int make_room(pants_datagram_t *d, size_t len)
{
    size_t cost = packet_cost(len);

    if (cost > d->queue_limit)
        return -ENOBUFS;
    if (d->cost + cost > d->queue_limit && d->head != NULL && !d->blocked && d->fd >= 0)
        flush(d);
    return d->cost + cost <= d->queue_limit ? 0 : -ENOBUFS;
}

/* A node holding a copy of data, for to (or, with lk, for a name). */
static packet_t *packet_new(pants_datagram_t *d, const void *data, size_t len, const pants_addr_t *to,
                            lookup_t *lk)
{
    packet_t *p = packet_alloc(d, len);

    if (p == NULL)
        return NULL;
    p->next = NULL;
    p->lookup = lk;
    p->len = len;
    if (to) {
        memcpy(&p->to.ss, &to->ss, to->len);
        p->to.len = to->len;
    }
    if (len > 0)
        memcpy(p->data, data, len);
    return p;
}

/* p goes to the back of the queue. */
static void push(pants_datagram_t *d, packet_t *p)
{
    if (d->tail)
        d->tail->next = p;
    else
        d->head = p;
    d->tail = p;
    queued_add(d, p->len, sizeof(*p) + p->cap, true);
    d->want_on_write = true;
    schedule_flush(d);
}

static int write_state_error(const pants_datagram_t *d)
{
    return d->state == G_CLOSED || d->ending ? -EPIPE : 0;
}

/* May a packet of len bytes go to *dst (fitted to d's socket)?  Asked in
 * full before a first write makes the socket, so a refused write leaves
 * none behind. */
static int admit(pants_datagram_t *d, size_t len, pants_addr_t *dst)
{
    int rc;

    if (len > max_packet(dst))
        return -EMSGSIZE;
    if (d->fd >= 0 && (rc = fit_family(d, dst)) < 0)
        return rc;
    return make_room(d, len);
}

static int write_addr(pants_datagram_t *d, const void *data, size_t len, const pants_addr_t *to)
{
    pants_addr_t dst;
    packet_t *p;
    int rc = write_state_error(d);

    if (rc == 0)
        rc = check_dest(to);
    if (rc < 0)
        return rc;
    memcpy(&dst.ss, &to->ss, to->len);
    dst.len = to->len;
    if ((rc = admit(d, len, &dst)) < 0)
        return rc;
    if ((p = packet_new(d, data, len, &dst, NULL)) == NULL)
        return -ENOMEM;
    if (d->fd < 0 && (rc = open_writer(d, dst.ss.ss_family)) < 0) {
        packet_free(d, p);
        return rc;
    }
    push(d, p);
    return 0;
}

/* A packet to a name waiting in the queue for its lookup. */
static int write_lookup(pants_datagram_t *d, const void *data, size_t len, const char *host, uint16_t port)
{
    lookup_t *lk;
    packet_t *p;
    int rc = make_room(d, len);

    if (rc < 0)
        return rc;
    lk = lookup_get(d, host, port);
    if (lk == NULL)
        return -ENOMEM;
    lk->waiting++;
    p = packet_new(d, data, len, NULL, lk);
    if (p == NULL) {
        lookup_unref(d, lk);
        return -ENOMEM;
    }
    push(d, p);
    return 0;
}

static int write_name(pants_datagram_t *d, const void *data, size_t len, const char *host, uint16_t port)
{
    pants_addr_t addrs[PANTS__RESOLVE_MAX_ADDRS], a;
    size_t n;
    int rc = write_state_error(d);

    if (rc < 0)
        return rc;
    if (port == 0)
        return -EINVAL;
    if (len > MAX_UDP6)
        return -EMSGSIZE;
    /* Known to the loop's name cache: goes like a numeric address (behind
     * the packets still waiting for names: the queue keeps the order). */
    if (pants__resolve_cached(d->handle.loop, host, port, addrs, PANTS__RESOLVE_MAX_ADDRS, &n) == 0) {
        rc = pick(d, addrs, n, &a);
        return rc < 0 ? rc : write_addr(d, data, len, &a);
    }
    return write_lookup(d, data, len, host, port);
}

static int dgram_write(pants_datagram_t *d, const void *data, size_t len, const char *address)
{
    char host[PANTS__HOST_MAX];
    pants_addr_t a;
    uint16_t port;
    int rc = pants__addr_split(address, 0, &a, host, &port);

    if (rc < 0)
        return rc;
    return rc == 0 ? write_addr(d, data, len, &a) : write_name(d, data, len, host, port);
}

int pants_datagram_write(pants_datagram_t *d, const void *data, size_t len, const char *address)
{
    int entered, rc;

    if (d == NULL || (data == NULL && len > 0) || address == NULL)
        return -EINVAL;
    entered = pants__loop_enter(d->handle.loop, "pants_datagram_write");
    if (entered < 0)
        return entered;
    rc = dgram_write(d, data, len, address);
    pants__loop_leave(d->handle.loop, entered);
    return rc;
}

int pants_datagram_write_to(pants_datagram_t *d, const void *data, size_t len, const pants_addr_t *to)
{
    int entered, rc;

    if (d == NULL || (data == NULL && len > 0) || to == NULL)
        return -EINVAL;
    entered = pants__loop_enter(d->handle.loop, "pants_datagram_write_to");
    if (entered < 0)
        return entered;
    rc = write_addr(d, data, len, to);
    pants__loop_leave(d->handle.loop, entered);
    return rc;
}

/* ---- Ending ------------------------------------------------------------- */

static int dgram_end(pants_datagram_t *d)
{
    if (d->state == G_CLOSED)
        return -EPIPE;
    if (d->ending)
        return 0;
    d->ending = true;
    if (d->fd >= 0)
        event_del(&d->rev);
    if (d->head == NULL)
        close_now(d);
    else
        schedule_flush(d);
    return 0;
}

int pants_datagram_end(pants_datagram_t *d)
{
    int entered, rc;

    if (d == NULL)
        return -EINVAL;
    entered = pants__loop_enter(d->handle.loop, "pants_datagram_end");
    if (entered < 0)
        return entered;
    rc = dgram_end(d);
    pants__loop_leave(d->handle.loop, entered);
    return rc;
}
