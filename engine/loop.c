/* loop.c -- one reactor: an event_base, its task queue and its handles.
 *
 * Other threads reach a loop only by posting tasks: the poster appends to a
 * locked vector and, if no wake-up is on its way yet, writes the loop's
 * eventfd; the loop swaps the vector out under the lock and runs the batch
 * (memcached's cq_push / notify_worker, one wake-up per batch).  A stop
 * request only sets a flag and writes the eventfd, so it is safe from a
 * signal handler.
 *
 * The handle list lets a stopping loop end() everything it owns, wait until
 * the active handles have closed (at most the shutdown timeout, after which
 * the rest is killed), and free what is left when it is torn down.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
/* glibc's malloc_trim, unless a sanitizer has replaced malloc: its
 * allocator leaves glibc's arenas unset, and malloc_trim then crashes. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define PANTS__SANITIZED_MALLOC 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define PANTS__SANITIZED_MALLOC 1
#endif
#if defined(HAVE_MALLOC_TRIM) && !defined(PANTS__SANITIZED_MALLOC)
#define TRIM_MALLOC 1
#include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "engine-internal.h"

__thread pants_loop_t *pants__current_loop; /* the loop this thread runs */
static long live_objects;                   /* pants_live_objects (atomic) */

void pants__live_add(long delta)
{
    __atomic_add_fetch(&live_objects, delta, __ATOMIC_RELAXED);
}

long pants_live_objects(void)
{
    return __atomic_load_n(&live_objects, __ATOMIC_RELAXED);
}

pants_loop_t *pants_loop_current(void)
{
    return pants__current_loop;
}

unsigned pants_loop_index(const pants_loop_t *l)
{
    return l ? l->index : 0;
}

pants_engine_t *pants_loop_engine(const pants_loop_t *l)
{
    return l ? l->engine : NULL;
}

bool pants__loop_is_current(const pants_loop_t *l)
{
    return pants__current_loop == l;
}

bool pants__loop_has_started(pants_loop_t *l)
{
    pthread_mutex_lock(&l->setup_mu);
    bool started = l->running;
    pthread_mutex_unlock(&l->setup_mu);
    return started;
}

bool pants__loop_has_finished(pants_loop_t *l)
{
    if (pants__current_loop == l) /* only this thread sets it while l runs */
        return l->finished;
    pthread_mutex_lock(&l->queue_mu);
    bool finished = l->finished;
    pthread_mutex_unlock(&l->queue_mu);
    return finished;
}

void pants__loop_wait_running(pants_loop_t *l)
{
    pthread_mutex_lock(&l->setup_mu);
    while (!l->running)
        pthread_cond_wait(&l->running_cv, &l->setup_mu);
    pthread_mutex_unlock(&l->setup_mu);
}

int pants__loop_enter_slow(pants_loop_t *l, const char *what)
{
    if (pants__current_loop == l)
        return 0;
    pthread_mutex_lock(&l->setup_mu);
    if (!l->running)
        return 1;
    pthread_mutex_unlock(&l->setup_mu);
#ifdef PANTS_DEBUG
    if (what != NULL) /* NULL: a call that may come from any thread */
        fprintf(stderr,
                "pants: THREAD MISUSE: %s called on a thread that does not run "
                "loop %u; post it with pants_loop_post or pants_stream_post\n",
                what, l->index);
#else
    (void)what;
#endif
    return -EPERM;
}

void pants__loop_leave_slow(pants_loop_t *l)
{
    pthread_mutex_unlock(&l->setup_mu);
}

/* ---- Task queue --------------------------------------------------------- */

static int taskq_push(pants__taskq_t *q, const pants__task_t *t)
{
    if (q->len == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 64;
        pants__task_t *items = realloc(q->items, cap * sizeof(*items));
        if (items == NULL)
            return -ENOMEM;
        q->items = items;
        q->cap = cap;
    }
    q->items[q->len++] = *t;
    return 0;
}

void pants__loop_wake(pants_loop_t *l)
{
    uint64_t one = 1;
    ssize_t n;

    do
        n = write(l->wake_fd, &one, sizeof(one));
    while (n < 0 && errno == EINTR);
}

int pants__loop_post(pants_loop_t *l, pants__task_fn fn, void *a, void *b, uintptr_t c)
{
    pants__task_t t = {fn, a, b, c};
    bool wake;
    int rc;

    pthread_mutex_lock(&l->queue_mu);
    if (l->finished) {
        pthread_mutex_unlock(&l->queue_mu);
        return -ESHUTDOWN;
    }
    rc = taskq_push(&l->queue, &t);
    wake = rc == 0 && !l->wake_pending;
    if (wake)
        l->wake_pending = true;
    pthread_mutex_unlock(&l->queue_mu);
    if (!wake)
        return rc;
    if (pants__current_loop == l)
        event_active(&l->wake_ev, EV_READ, 0); /* no syscall for our own loop */
    else
        pants__loop_wake(l);
    return 0;
}

static void run_public_task(void *a, void *b, uintptr_t c)
{
    union {
        void *p;
        pants_fn_t fn;
    } u = {.p = b};
    (void)c;
    u.fn(a);
}

int pants_loop_post(pants_loop_t *l, pants_fn_t fn, void *arg)
{
    union {
        void *p;
        pants_fn_t fn;
    } u = {.fn = fn};

    if (l == NULL || fn == NULL)
        return -EINVAL;
    return pants__loop_post(l, run_public_task, arg, u.p, 0);
}

/* Run the tasks queued so far; those they post run on the next wake-up. */
static void run_tasks(pants_loop_t *l)
{
    pants__taskq_t batch;

    PANTS__ASSERT(pants__current_loop == l);
    pthread_mutex_lock(&l->queue_mu);
    batch = l->queue;
    l->queue = l->running_q;
    l->queue.len = 0;
    l->wake_pending = false;
    pthread_mutex_unlock(&l->queue_mu);
    l->in_batch = true; /* the loop is not done before the batch is */
    for (size_t i = 0; i < batch.len; i++)
        batch.items[i].fn(batch.items[i].a, batch.items[i].b, batch.items[i].c);
    l->in_batch = false;
    batch.len = 0;
    l->running_q = batch;
}

/* The eventfd is watched edge-triggered: every write is a new edge, so it
 * is never read back -- one system call less per wake-up.  (Its counter
 * would need 2^64 writes to fill.) */
static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    pants_loop_t *l = arg;

    (void)fd;
    (void)what;
    run_tasks(l);
    if (__atomic_load_n(&l->engine->stop, __ATOMIC_SEQ_CST) && !l->stopping)
        pants__loop_begin_stop(l);
    pants__loop_check_done(l);
}

/* ---- Socket watchers ---------------------------------------------------- */

#define IO_BATCH 128 /* ready sockets per dispatch; the rest on the next round */

int pants__io_start(pants_loop_t *l, pants__io_t *w, int fd, unsigned events)
{
    struct epoll_event ev = {.events = events | EPOLLET, .data.ptr = w};

    PANTS__ASSERT(pants__loop_owned(l));
    if (__atomic_load_n(&pants__fail_event_add, __ATOMIC_RELAXED) >= 0 &&
        __atomic_fetch_sub(&pants__fail_event_add, 1, __ATOMIC_RELAXED) == 0)
        return -ENOMEM;
    return epoll_ctl(l->io_fd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

void pants__io_stop(pants_loop_t *l, int fd)
{
    PANTS__ASSERT(pants__loop_owned(l));
    epoll_ctl(l->io_fd, EPOLL_CTL_DEL, fd, NULL);
}

/* io_fd is readable (level-triggered): run the sockets that are ready.
 * The direct system call skips libc's cancellation bookkeeping: loop
 * threads are never cancelled. */
static void on_io_ready(evutil_socket_t fd, short what, void *arg)
{
    struct epoll_event evs[IO_BATCH];
    long n = syscall(SYS_epoll_wait, fd, evs, IO_BATCH, 0);
    pants_loop_t *l = arg;

    (void)what;
    l->now_stale = true; /* read once, if a stream of this round asks */
    l->in_round = true;
    for (long i = 0; i < n; i++) {
        pants__io_t *w = evs[i].data.ptr;
        w->cb(w, evs[i].events);
    }
    l->in_round = false;
}

/* ---- Time and deadlines ------------------------------------------------- */

void pants__loop_update_time(pants_loop_t *l)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    l->now_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    l->now_stale = false;
}

/* Arm the loop's timer for the earliest deadline, if it is not armed for
 * that time or earlier already.  0 or a negative errno. */
static int arm_deadlines(pants_loop_t *l)
{
    pants__deadline_t *min = pants__dheap_min(&l->deadlines);
    struct timeval tv;
    uint64_t now, ms;
    int rc;

    if (min == NULL || (l->deadline_armed != 0 && l->deadline_armed <= min->at))
        return 0;
    now = pants__loop_now_ms(l);
    ms = min->at > now ? min->at - now : 0;
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)(ms % 1000) * 1000 + 999; /* libevent's clock lags: never early */
    event_base_update_cache_time(l->base);
    rc = pants__event_add(&l->deadline_ev, &tv);
    l->deadline_armed = rc == 0 ? min->at : 0;
    return rc;
}

int pants__deadline_set(pants_loop_t *l, pants__deadline_t *d, uint64_t at)
{
    int rc;

    PANTS__ASSERT(pants__loop_owned(l));
    rc = pants__dheap_set(&l->deadlines, d, at);
    if (rc == 0)
        rc = arm_deadlines(l);
    if (rc < 0)
        pants__dheap_remove(&l->deadlines, d);
    return rc;
}

void pants__deadline_clear(pants_loop_t *l, pants__deadline_t *d)
{
    PANTS__ASSERT(pants__loop_owned(l));
    pants__dheap_remove(&l->deadlines, d);
}

/* The earliest deadline came (or nearly: the clock decides): run every
 * entry that is due, then arm for the next. */
static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    pants_loop_t *l = arg;
    pants__deadline_t *min;

    (void)fd;
    (void)what;
    l->deadline_armed = 0;
    pants__loop_update_time(l);
    while ((min = pants__dheap_min(&l->deadlines)) != NULL && min->at <= l->now_ms) {
        pants__dheap_remove(&l->deadlines, min);
        min->due(min);
    }
    arm_deadlines(l); /* a failure: the next deadline_set tries again */
}

/* ---- Memory ------------------------------------------------------------- */

#define TRIM_AFTER    (4u << 20) /* bytes freed before the allocator is asked to trim */
#define TRIM_DELAY_MS 1000       /* and how long after the first of them */

static void on_trim(evutil_socket_t fd, short what, void *arg)
{
    pants_loop_t *l = arg;

    (void)fd;
    (void)what;
    l->freed = 0;
#ifdef TRIM_MALLOC
    malloc_trim(0);
#endif
}

void pants__loop_freed(pants_loop_t *l, size_t bytes)
{
    static const struct timeval delay = {TRIM_DELAY_MS / 1000, (TRIM_DELAY_MS % 1000) * 1000};

    if (l->freed >= TRIM_AFTER)
        return; /* a trim is on its way */
    l->freed += bytes;
    if (l->freed >= TRIM_AFTER && pants__event_add(&l->trim_ev, &delay) < 0)
        l->freed = 0; /* no timer: try again with the next frees */
}

/* ---- Handles ------------------------------------------------------------ */

int pants__fail_event_add = -1; /* tests: calls to let through before one fails */

int pants__event_add(struct event *ev, const struct timeval *tv)
{
    if (__atomic_load_n(&pants__fail_event_add, __ATOMIC_RELAXED) >= 0 &&
        __atomic_fetch_sub(&pants__fail_event_add, 1, __ATOMIC_RELAXED) == 0)
        return -ENOMEM;
    if (event_add(ev, tv) < 0)
        return errno > 0 ? -errno : -ENOMEM;
    return 0;
}

void pants__handle_init(pants__handle_t *h, pants_loop_t *l, const pants__handle_ops_t *ops)
{
    h->ops = ops;
    h->loop = l;
    h->refs = 1;
    if (!ops->part)
        pants__live_add(1);
}

void pants__handle_start(pants__handle_t *h, pants_loop_t *l, const pants__handle_ops_t *ops, bool active)
{
    PANTS__ASSERT(pants__loop_owned(l));
    h->ops = ops;
    if (h->loop != l) /* set already by a channel other threads may read */
        h->loop = l;
    h->active = active;
    h->linked = true;
    h->next = &l->handles;
    h->prev = l->handles.prev;
    l->handles.prev->next = h;
    l->handles.prev = h;
    if (active)
        l->nactive++;
    if (l->stopping && ops->stop)
        ops->stop(h);
}

static void register_task(void *a, void *b, uintptr_t c)
{
    pants__handle_t *h = a;

    (void)b;
    pants__handle_start(h, h->loop, h->ops, c != 0);
}

int pants__handle_register(pants__handle_t *h, bool active)
{
    pants_loop_t *l = h->loop;
    int entered;

    /* A running loop is reached by a post, without the misuse warning. */
    if (!pants__loop_is_current(l) && pants__loop_has_started(l))
        return pants__loop_post(l, register_task, h, NULL, active);
    entered = pants__loop_enter(l, NULL);
    if (entered < 0) /* it started meanwhile */
        return pants__loop_post(l, register_task, h, NULL, active);
    pants__handle_start(h, l, h->ops, active);
    pants__loop_leave(l, entered);
    return 0;
}

void pants__handle_finish(pants__handle_t *h)
{
    pants_loop_t *l = h->loop;

    if (!h->linked)
        return;
    PANTS__ASSERT(pants__loop_owned(l));
    h->linked = false;
    h->prev->next = h->next;
    h->next->prev = h->prev;
    h->next = h->prev = NULL;
    if (h->active) {
        l->nactive--;
        pants__loop_check_done(l);
    }
}

void pants__handle_ref(pants__handle_t *h)
{
    __atomic_add_fetch(&h->refs, 1, __ATOMIC_RELAXED);
}

static void handle_free(pants__handle_t *h)
{
    bool part = h->ops->part;

    h->ops->free(h);
    if (!part)
        pants__live_add(-1);
}

static void free_task(void *a, void *b, uintptr_t c)
{
    (void)b;
    (void)c;
    handle_free(a);
}

void pants__handle_unref(pants__handle_t *h)
{
    if (__atomic_sub_fetch(&h->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    /* Free on the owning loop; before it runs or once it is gone, nobody
     * else can race us. */
    if (pants__loop_is_current(h->loop) || !__atomic_load_n(&h->loop->running, __ATOMIC_ACQUIRE) ||
        pants__loop_post(h->loop, free_task, h, NULL, 0) < 0)
        handle_free(h);
}

/* Have on_pending run (from inside it, on_pending goes on by itself). */
#define PENDING_ROUNDS 8 /* batches of pending work per pass before the loop polls again */

static void schedule_pending(pants_loop_t *l)
{
    if (!l->in_pending)
        event_active(&l->pending_ev, 0, 0);
}

/* Work queued by pending work itself (a stream that used up its reads
 * for this wake-up, say) after PENDING_ROUNDS batches: it waits until the
 * loop has polled its sockets once more.  libevent would run an event
 * activated from inside its own callback in the same pass, so a stream
 * that always has more would hold the loop and never let another socket,
 * a post or a timer in.  Urgent work (before more input is read) runs at
 * once. */
static void schedule_pending_later(pants_loop_t *l)
{
    static const struct timeval now = {0, 0};

    if (!l->urgent && (l->pending_later || pants__event_add(&l->pending_ev, &now) == 0)) {
        l->pending_later = true;
        return;
    }
    event_active(&l->pending_ev, 0, 0);
}

void pants__handle_defer(pants__handle_t *h, unsigned bits)
{
    pants_loop_t *l = h->loop;

    PANTS__ASSERT(pants__loop_owned(l));
    h->pending |= (uint16_t)bits;
    if (h->queued)
        return;
    h->queued = true;
    pants__handle_ref(h);
    h->pending_next = NULL;
    if (l->pending_head == NULL)
        schedule_pending(l);
    *l->pending_tail = h;
    l->pending_tail = &h->pending_next;
}

void pants__loop_urgent(pants_loop_t *l)
{
    l->urgent = true;
    if (l->pending_later) /* queued for after the poll: now instead */
        event_active(&l->pending_ev, 0, 0);
}

void pants__handle_close(pants__handle_t *h)
{
    if (h->closing)
        return;
    h->closing = true;
    h->pending = 0;
    pants__handle_defer(h, PANTS__PENDING_CLOSE);
}

static void run_pending(pants__handle_t *h)
{
    unsigned bits = h->pending;

    h->queued = false;
    h->pending = 0;
    if (bits & PANTS__PENDING_CLOSE) {
        if (h->ops->closed)
            h->ops->closed(h);
        pants__handle_finish(h);
        pants__handle_unref(h); /* the live object's reference */
    } else if (bits && h->ops->run_pending) {
        h->ops->run_pending(h, bits);
    }
}

/* Run the handles queued so far, then those they queued, for at most
 * PENDING_ROUNDS batches; what is left runs after the loop's next poll. */
static void on_pending(evutil_socket_t fd, short what, void *arg)
{
    pants_loop_t *l = arg;

    (void)fd;
    (void)what;
    if (l->pending_later) {
        event_del(&l->pending_ev); /* run now */
        l->pending_later = false;
    }
    l->in_pending = true;
    for (int round = 0; round < PENDING_ROUNDS && l->pending_head != NULL; round++) {
        pants__handle_t *h = l->pending_head;
        l->pending_head = NULL;
        l->pending_tail = &l->pending_head;
        l->urgent = false;
        while (h != NULL) {
            pants__handle_t *next = h->pending_next;
            run_pending(h);
            pants__handle_unref(h); /* the queue's reference */
            h = next;
        }
    }
    l->in_pending = false;
    if (l->pending_head != NULL)
        schedule_pending_later(l);
}

/* Loop teardown: forget the queued work and the queue's references. */
static void drop_pending(pants_loop_t *l)
{
    pants__handle_t *h = l->pending_head;

    l->pending_head = NULL;
    l->pending_tail = &l->pending_head;
    while (h != NULL) {
        pants__handle_t *next = h->pending_next;
        h->queued = false;
        h->pending = 0;
        pants__handle_unref(h);
        h = next;
    }
}

int pants__handle_post(pants__handle_t *h, pants_loop_t *l, pants__task_fn fn, void *b, uintptr_t c)
{
    int rc;

    pants__handle_ref(h);
    rc = pants__loop_post(l, fn, h, b, c);
    if (rc < 0)
        pants__handle_unref(h);
    return rc;
}

/* Call stop (or kill) on every handle; each may unlink itself (and only
 * itself) meanwhile, and handles added meanwhile are stopped as added. */
static void walk_handles(pants_loop_t *l, bool kill)
{
    pants__handle_t *h = l->handles.next;

    while (h != &l->handles) {
        pants__handle_t *next = h->next;
        void (*fn)(pants__handle_t *) = kill ? h->ops->kill : h->ops->stop;
        if (fn)
            fn(h);
        h = next;
    }
}

static void on_shutdown_timeout(evutil_socket_t fd, short what, void *arg)
{
    pants_loop_t *l = arg;

    (void)fd;
    (void)what;
    walk_handles(l, true);
    pants__loop_check_done(l);
}

void pants__loop_begin_stop(pants_loop_t *l)
{
    struct timeval tv;
    unsigned ms = l->engine->opts.shutdown_timeout_ms;

    l->stopping = true;
    walk_handles(l, false);
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    evtimer_add(&l->shutdown_ev, &tv);
}

void pants__loop_check_done(pants_loop_t *l)
{
    if (!l->stopping || l->nactive > 0 || l->in_batch) /* on_wake checks again after it */
        return;
    pthread_mutex_lock(&l->queue_mu);
    if (l->queue.len == 0)
        l->finished = true;
    pthread_mutex_unlock(&l->queue_mu);
    if (l->finished)
        event_base_loopbreak(l->base);
}

/* ---- Life cycle --------------------------------------------------------- */

/* libevent calls exit() when the signal socketpair of a new base cannot be
 * made (evsig_init_), so a process short of descriptors would die inside
 * event_base_new. Make sure the base's three (epoll, socketpair) are there
 * first; a shortage then is an ordinary EMFILE. */
static int reserve_base_fds(int fd)
{
    int spare[3], n, rc = 0, saved;

    for (n = 0; n < 3; n++) {
        spare[n] = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (spare[n] < 0) {
            rc = -1;
            break;
        }
    }
    saved = errno;
    while (n-- > 0)
        close(spare[n]);
    errno = saved;
    return rc;
}

pants_loop_t *pants__loop_new(pants_engine_t *e, unsigned index)
{
    struct event_config *cfg;
    pants_loop_t *l = calloc(1, sizeof(*l));
    int saved;

    if (l == NULL)
        return NULL;
    l->engine = e;
    l->index = index;
    l->handles.next = l->handles.prev = &l->handles;
    l->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (l->wake_fd < 0)
        goto free_loop;
    l->io_fd = epoll_create1(EPOLL_CLOEXEC);
    if (l->io_fd < 0)
        goto close_wake;
    if (reserve_base_fds(l->wake_fd) < 0)
        goto close_io;
    cfg = event_config_new();
    if (cfg == NULL)
        goto close_io;
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
    event_config_set_flag(cfg, EVENT_BASE_FLAG_IGNORE_ENV); /* EVENT_NOEPOLL must not win */
    event_config_require_features(cfg, EV_FEATURE_ET);      /* epoll, never poll or select */
    errno = 0;
    l->base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (l->base == NULL) {
        errno = errno ? errno : ENOSYS;
        goto close_io;
    }
    l->scratch = malloc(PANTS__SCRATCH_SIZE);
    l->wscratch = malloc(PANTS__SCRATCH_SIZE);
    if (l->scratch == NULL || l->wscratch == NULL)
        goto free_base;
    event_assign(&l->wake_ev, l->base, l->wake_fd, EV_READ | EV_PERSIST | EV_ET, on_wake, l);
    if (event_add(&l->wake_ev, NULL) < 0) /* without it, no post or stop is seen */
        goto free_base;
    event_assign(&l->io_ev, l->base, l->io_fd, EV_READ | EV_PERSIST, on_io_ready, l);
    if (event_add(&l->io_ev, NULL) < 0) /* without it, no stream is ever served */
        goto free_base;
    evtimer_assign(&l->shutdown_ev, l->base, on_shutdown_timeout, l);
    event_assign(&l->pending_ev, l->base, -1, 0, on_pending, l);
    evtimer_assign(&l->deadline_ev, l->base, on_deadline, l);
    evtimer_assign(&l->trim_ev, l->base, on_trim, l);
    l->now_stale = true;
    l->pending_tail = &l->pending_head;
    pthread_mutex_init(&l->queue_mu, NULL);
    pthread_mutex_init(&l->setup_mu, NULL);
    pthread_cond_init(&l->running_cv, NULL);
    return l;

free_base:
    free(l->scratch);
    free(l->wscratch);
    event_base_free(l->base);
close_io:
    saved = errno;
    close(l->io_fd);
    errno = saved;
close_wake:
    saved = errno;
    close(l->wake_fd);
    errno = saved;
free_loop:
    free(l);
    errno = errno ? errno : ENOMEM;
    return NULL;
}

/* Run what is still queued (its functions may free what they hold), then
 * free every handle left (timers, the resolver, or everything if the loop
 * never ran) without callbacks. */
void pants__loop_free(pants_loop_t *l)
{
    if (l == NULL)
        return;
    pants_loop_t *saved = pants__current_loop;
    pants__current_loop = l;
    pthread_mutex_lock(&l->queue_mu);
    l->finished = true;
    pthread_mutex_unlock(&l->queue_mu);
    while (l->queue.len > 0)
        run_tasks(l);
    drop_pending(l);
    while (l->handles.next != &l->handles) {
        pants__handle_t *h = l->handles.next;
        pants__handle_finish(h);
        h->ops->release(h);
    }
    pants__current_loop = saved;
    event_del(&l->wake_ev);
    event_del(&l->shutdown_ev);
    event_del(&l->pending_ev);
    event_del(&l->deadline_ev);
    event_del(&l->trim_ev);
    pants__dheap_deinit(&l->deadlines);
    event_del(&l->io_ev);
    close(l->io_fd);
    close(l->wake_fd);
    event_base_free(l->base);
    pthread_mutex_destroy(&l->queue_mu);
    pthread_mutex_destroy(&l->setup_mu);
    pthread_cond_destroy(&l->running_cv);
    free(l->queue.items);
    free(l->running_q.items);
    free(l->scratch);
    free(l->wscratch);
    free(l->wstage);
    free(l);
}

void pants__loop_run(pants_loop_t *l)
{
    pants__current_loop = l;
    pthread_mutex_lock(&l->setup_mu);
    __atomic_store_n(&l->running, true, __ATOMIC_RELEASE); /* pants__handle_unref reads it unlocked */
    l->thread = pthread_self();
    pthread_cond_broadcast(&l->running_cv);
    pthread_mutex_unlock(&l->setup_mu);
    event_active(&l->wake_ev, EV_READ, 0); /* run early posts, see a stop */
    while (!l->finished)
        if (event_base_loop(l->base, 0) < 0)
            break;
    pants__current_loop = NULL;
}
