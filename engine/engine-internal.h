/* engine-internal.h -- loops, handles, cross-thread posts and the engine.
 *
 * A loop is one libevent event_base run by one thread.  Other threads reach
 * it only through its task queue (a locked vector plus an eventfd wake-up,
 * one wake-up per batch).  Everything a loop owns -- streams, datagrams,
 * servers, timers, the resolver -- is a handle on the loop's list, so the
 * engine can stop them all without knowing what they are (libuv's handle
 * queue and uv_walk).
 *
 * Threads: every function here runs on the loop's own thread unless its
 * comment says otherwise.  Before a loop runs, other threads may act on it
 * while holding its setup lock (pants__loop_enter).
 */
#ifndef PANTS_ENGINE_INTERNAL_H
#define PANTS_ENGINE_INTERNAL_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/epoll.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "deadline-internal.h"
#include "pants.h"

#ifdef PANTS_DEBUG
#include <assert.h>
#define PANTS__ASSERT(x) assert(x)
#else
#define PANTS__ASSERT(x) ((void)0)
#endif

#define PANTS__SCRATCH_SIZE (64 * 1024) /* per-loop read and write scratch */

/* ---- Tasks -------------------------------------------------------------- */

typedef void (*pants__task_fn)(void *a, void *b, uintptr_t c);

typedef struct pants__task_s {
    pants__task_fn fn; /* what to run on the loop */
    void *a;           /* its arguments */
    void *b;
    uintptr_t c;
} pants__task_t;

typedef struct pants__taskq_s {
    pants__task_t *items; /* FIFO of posted tasks */
    size_t len;           /* tasks queued */
    size_t cap;           /* slots allocated */
} pants__taskq_t;

/* ---- Handles ------------------------------------------------------------ */

/* Every object a loop owns is a handle: one life cycle for all of them
 * (libuv's handle queue and closing list).  A handle is on its loop's list
 * while it lives (so a stopping loop can end it), holds references (the
 * last one frees it on its loop), and queues work for later with pending
 * bits: one per-loop queue of handles with pending work, run from the loop
 * after the current callback, instead of one libevent event per object.
 * Closing is one of those bits: its kind's closed() runs (the application's
 * on_close), then the handle leaves the list and drops the reference it
 * was created with. */
typedef struct pants__handle_s pants__handle_t;

#define PANTS__PENDING_CLOSE 0x8000u /* the generic close: closed(), unlink, unref */

typedef struct pants__handle_ops_s {
    const char *name;                                       /* "stream", "timer", ... for messages */
    void (*stop)(pants__handle_t *h);                       /* engine stop: finish gracefully */
    void (*kill)(pants__handle_t *h);                       /* stop took too long: close now */
    void (*release)(pants__handle_t *h);                    /* loop teardown: free, no callbacks */
    void (*run_pending)(pants__handle_t *h, unsigned bits); /* deferred work (kind's own bits) */
    void (*closed)(pants__handle_t *h);                     /* PANTS__PENDING_CLOSE: last callback */
    void (*free)(pants__handle_t *h);                       /* the last reference went: free memory */
    bool part;                                              /* part of another object: not counted alone */
} pants__handle_ops_t;

struct pants__handle_s {
    pants__handle_t *prev; /* the loop's handle list */
    pants__handle_t *next;
    pants__handle_t *pending_next;  /* the loop's queue of handles with pending work */
    const pants__handle_ops_t *ops; /* what kind of handle */
    pants_loop_t *loop;             /* the loop it is pinned to; set once */
    int refs;                       /* references (atomic); the live handle holds one */
    uint16_t pending;               /* bits waiting for the pending queue */
    bool queued : 1;                /* on the pending queue (holds a reference) */
    bool closing : 1;               /* pants__handle_close ran */
    bool active : 1;                /* keeps a stopping loop alive until closed */
    bool linked : 1;                /* on the loop's list */
};

/* ---- Socket watchers ---------------------------------------------------- */

/* The sockets of streams are watched by an edge-triggered epoll set of the
 * loop's own, which the loop's event_base watches as one descriptor: a
 * ready socket costs one direct call, not libevent's dispatch of an event
 * per descriptor, and a watcher is one pointer, not a struct event. */
#define PANTS__IO_READ   EPOLLIN               /* readable */
#define PANTS__IO_WRITE  EPOLLOUT              /* writable */
#define PANTS__IO_CLOSED EPOLLRDHUP            /* the peer closed its side */
#define PANTS__IO_ERROR  (EPOLLERR | EPOLLHUP) /* an error or hang-up: read and write tell */

typedef struct pants__io_s pants__io_t;

struct pants__io_s {
    void (*cb)(pants__io_t *w, unsigned events); /* PANTS__IO_* bits that came */
};

/* Watch fd for events (PANTS__IO_*, edge-triggered) on l, calling w->cb.
 * 0 or a negative errno (nothing is watched then).  l's thread. */
int pants__io_start(pants_loop_t *l, pants__io_t *w, int fd, unsigned events);

/* Stop watching fd (before closing it: a duplicate would keep it watched).
 * A callback already collected for w in this round may still run: the
 * owner keeps w's memory until the loop's pending work runs, and ignores
 * events once it has stopped. */
void pants__io_stop(pants_loop_t *l, int fd);

/* ---- Errors ------------------------------------------------------------- */

/* Remember text as the reason of the last err (PANTS_ETLS) on the calling
 * thread: pants_strerror(err) gives it there.  Any thread. */
void pants__error_detail(int err, const char *text);

/* ---- Memory ------------------------------------------------------------- */

/* bytes of buffer memory were freed on l.  Once a few MiB add up, the
 * allocator is asked (at most once a second per loop) to give free pages
 * back to the system: glibc keeps them in each thread's arena otherwise,
 * and a server would stay at the peak its slowest peers made it reach.
 * Loop thread. */
void pants__loop_freed(pants_loop_t *l, size_t bytes);

/* ---- Loops and the engine ---------------------------------------------- */

struct pants_loop_s {
    pants_engine_t *engine;         /* owner */
    unsigned index;                 /* worker index; nloops for the acceptor */
    struct event_base *base;        /* touched by this loop's thread only */
    pthread_t thread;               /* the thread running it, once running */
    pthread_mutex_t queue_mu;       /* guards queue, wake_pending, finished */
    pants__taskq_t queue;           /* tasks posted, not yet run */
    pants__taskq_t running_q;       /* the batch being run (swapped with queue) */
    bool wake_pending;              /* a wake-up is on its way for queue */
    bool in_batch;                  /* run_tasks is running a batch (loop thread) */
    bool finished;                  /* posts are refused from now on */
    int wake_fd;                    /* eventfd the posters write to */
    struct event wake_ev;           /* reads wake_fd, runs the queue */
    pthread_mutex_t setup_mu;       /* held by other threads acting before run */
    pthread_cond_t running_cv;      /* signalled once running is set */
    bool running;                   /* the thread started (under setup_mu) */
    bool stopping;                  /* shutdown began (loop thread) */
    pants__handle_t handles;        /* sentinel of the handle list */
    size_t nactive;                 /* active handles on the list */
    struct event shutdown_ev;       /* forces the rest closed after the timeout */
    unsigned char *scratch;         /* PANTS__SCRATCH_SIZE bytes for reads */
    unsigned char *wscratch;        /* PANTS__SCRATCH_SIZE bytes for writes */
    void *resolver;                 /* channels' per-loop DNS state, or NULL */
    void *dgram;                    /* datagrams' per-loop receive batch, or NULL */
    pants__handle_t *pending_head;  /* handles with pending work, FIFO */
    pants__handle_t **pending_tail; /* where the next one is linked */
    bool urgent;                    /* pending work must run before more input is read */
    bool in_pending;                /* on_pending runs the queue */
    bool pending_later;             /* pending_ev is armed as a 0 s timer: after the next poll */
    struct event pending_ev;        /* runs the pending queue */
    int io_fd;                      /* the epoll set of stream sockets */
    struct event io_ev;             /* io_fd is ready: dispatch its sockets */
    uint64_t now_ms;                /* the loop's clock (CLOCK_MONOTONIC ms), cached */
    bool now_stale;                 /* now_ms must be read again before use */
    bool in_round;                  /* a round of ready sockets is being run */
    pants__dheap_t deadlines;       /* lazy deadlines of this loop's objects */
    struct event deadline_ev;       /* fires for the earliest of them */
    uint64_t deadline_armed;        /* when deadline_ev fires; 0 = not armed */
    size_t freed;                   /* bytes of buffers freed since the last trim */
    struct event trim_ev;           /* gives freed memory back to the system, later */
    void *wstage;                   /* channels' write stage (plain memory, freed with the loop) */
};

struct pants_engine_s {
    pants_engine_options_t opts; /* copied, defaults filled in */
    char *dns_server;            /* owned copy of opts.dns_server */
    unsigned nloops;             /* worker loops */
    pants_loop_t **loops;        /* the workers */
    pants_loop_t *acceptor;      /* owns the listening sockets */
    unsigned next;               /* pants_engine_next_loop's cursor (atomic) */
    unsigned accept_next;        /* the acceptor's own cursor (acceptor thread) */
    volatile sig_atomic_t stop;  /* stop was requested (atomic) */
    int state;                   /* PANTS__ENGINE_NEW / RUNNING / DONE */
    bool background;             /* started with pants_engine_start */
    pthread_t acceptor_thread;   /* after start */
    pthread_t *threads;          /* worker threads */
    unsigned nthreads_started;   /* how many of threads exist */
};

enum { PANTS__ENGINE_NEW, PANTS__ENGINE_RUNNING, PANTS__ENGINE_DONE };

/* ---- Time and deadlines ------------------------------------------------- */

/* Read the clock into l->now_ms.  Loop thread. */
void pants__loop_update_time(pants_loop_t *l);

/* The loop's clock in milliseconds (CLOCK_MONOTONIC): read at most once
 * per round of ready sockets (activity timestamps cost no clock read per
 * message), afresh everywhere else. */
static inline uint64_t pants__loop_now_ms(pants_loop_t *l)
{
    if (l->now_stale || !l->in_round)
        pants__loop_update_time(l);
    return l->now_ms;
}

/* Look at d at time at (loop ms) or later, never earlier: d->due(d) runs
 * from the loop then, with d out of the heap.  0 or a negative errno (out
 * of memory, or the loop's timer could not be armed; d is then unset). */
int pants__deadline_set(pants_loop_t *l, pants__deadline_t *d, uint64_t at);

/* Forget d (no-op if unset). */
void pants__deadline_clear(pants_loop_t *l, pants__deadline_t *d);

/* Post fn(a, b, c) to l.  Any thread.  0, -ENOMEM, or -ESHUTDOWN once l
 * finished (fn then never runs). */
int pants__loop_post(pants_loop_t *l, pants__task_fn fn, void *a, void *b, uintptr_t c);

/* May the calling thread act on l now?  0: it is l's thread.  1: another
 * thread before l runs; l's setup lock is now held, release it with
 * pants__loop_leave.  -EPERM: another thread while l runs (debug builds say
 * so loudly, naming what; what NULL: the caller may be any thread and will
 * post instead, so nothing is said).  Any thread. */
int pants__loop_enter_slow(pants_loop_t *l, const char *what);

/* The loop the calling thread runs, or NULL (initial-exec: one load, no
 * __tls_get_addr call on the hot path). */
extern __thread pants_loop_t *pants__current_loop __attribute__((tls_model("initial-exec")));

static inline int pants__loop_enter(pants_loop_t *l, const char *what)
{
    return pants__current_loop == l ? 0 : pants__loop_enter_slow(l, what);
}

/* May the calling thread touch l's base and lists?  Its own thread, or any
 * thread before l runs (then holding l's setup lock).  For debug asserts. */
static inline bool pants__loop_owned(const pants_loop_t *l)
{
    return pants__current_loop == l || !l->running;
}

void pants__loop_leave_slow(pants_loop_t *l);

/* Undo what pants__loop_enter gave (entered 1: release the setup lock). */
static inline void pants__loop_leave(pants_loop_t *l, int entered)
{
    if (entered == 1)
        pants__loop_leave_slow(l);
}

/* Is the calling thread l's own? */
bool pants__loop_is_current(const pants_loop_t *l);

/* Has l started running (its thread exists)?  Any thread. */
bool pants__loop_has_started(pants_loop_t *l);

/* Wait until l's thread has begun running it.  Any thread but l's. */
void pants__loop_wait_running(pants_loop_t *l);

/* Has l finished (posts are refused)?  Any thread. */
bool pants__loop_has_finished(pants_loop_t *l);

/* Set up a new handle of kind ops pinned to l, with one reference (the
 * live object's) and counted in pants_live_objects.  Not yet on l's list.
 * Any thread. */
void pants__handle_init(pants__handle_t *h, pants_loop_t *l, const pants__handle_ops_t *ops);

/* Put an initialised h on its loop's list from any thread: at once on the
 * loop's thread or before the loop runs, else by a post (in order with the
 * posts made after it).  0, or -ENOMEM / -ESHUTDOWN (the loop has finished:
 * h is not registered and the caller frees it). */
int pants__handle_register(pants__handle_t *h, bool active);

/* Put h on l's list (active: it must close before a stopping l ends).  On
 * l's thread, or another thread under pants__loop_enter.  If l is stopping,
 * h->ops->stop runs at once. */
void pants__handle_start(pants__handle_t *h, pants_loop_t *l, const pants__handle_ops_t *ops, bool active);

/* Take h off its loop's list once it is closed: a stopping loop may end. */
void pants__handle_finish(pants__handle_t *h);

/* References.  Any thread.  The last unref frees h with ops->free on its
 * loop (at once there, else by a post; at once if the loop is gone). */
void pants__handle_ref(pants__handle_t *h);
void pants__handle_unref(pants__handle_t *h);

/* Queue bits of work for h: ops->run_pending(h, bits) runs from the loop
 * after the current callback, once for all bits set meanwhile.  The queue
 * holds a reference, so h stays until then.  Loop thread. */
void pants__handle_defer(pants__handle_t *h, unsigned bits);
/* The next pending work must run before any more input is read (an
 * on_write_high): at once, not after the next poll.  Loop thread. */
void pants__loop_urgent(pants_loop_t *l);

/* Close h: from the loop, later, ops->closed(h) runs (the last callback),
 * then h leaves the list and drops its creation reference.  Pending work
 * not yet run is dropped.  Again is harmless.  Loop thread. */
void pants__handle_close(pants__handle_t *h);

/* Post fn(h, b, c) to l holding a reference on h for the task; fn drops it
 * with pants__handle_unref.  Any thread.  0 or what pants__loop_post gave
 * (the reference is then dropped here). */
int pants__handle_post(pants__handle_t *h, pants_loop_t *l, pants__task_fn fn, void *b, uintptr_t c);

/* event_add with its result checked: 0 or a negative errno.  A test can make
 * calls fail (pants__fail_event_add: the number of calls to let through
 * before one fails; negative = never). */
int pants__event_add(struct event *ev, const struct timeval *tv);
extern int pants__fail_event_add;

/* A stopping loop re-checks whether it may end now (after its last active
 * handle closed, or after running posted tasks). */
void pants__loop_check_done(pants_loop_t *l);

/* The worker the acceptor gives its next connection to: round-robin on a
 * cursor of its own, so pants_engine_next_loop calls of the application
 * do not skew it.  Acceptor thread. */
pants_loop_t *pants__engine_accept_loop(pants_engine_t *e);

/* Process-wide count of live objects (pants_live_objects).  Any thread. */
void pants__live_add(long delta);

/* Create / free a loop of e (no thread yet). */
pants_loop_t *pants__loop_new(pants_engine_t *e, unsigned index);
void pants__loop_free(pants_loop_t *l);

/* Run l on the calling thread until it has stopped and is done. */
void pants__loop_run(pants_loop_t *l);

/* Wake l from any thread, also a signal handler (async-signal-safe). */
void pants__loop_wake(pants_loop_t *l);

/* Let l react to a stop request (loop thread). */
void pants__loop_begin_stop(pants_loop_t *l);

#endif /* PANTS_ENGINE_INTERNAL_H */
