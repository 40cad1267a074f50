/* timer.c -- the seed engine's callback, loop, defer and cycle.
 *
 * A timer is a libevent timer event on one loop.  "Next iteration" is a
 * zero timeout, so a timer that re-arms itself every iteration lets the
 * loop poll in between instead of starving it.  Delays count from the call:
 * the base's cached time is refreshed before arming.  libevent's clock is
 * the coarse one, which lags by up to a tick (4 ms here), so defer and cycle
 * also keep when they are due by CLOCK_MONOTONIC and wait out what a tick
 * took off: they never run early.  A cycle's k-th run is due k intervals
 * after the call; one that fell a whole interval behind (a busy loop) goes
 * on an interval from its late run instead of running in a burst.  A timer may cancel
 * itself from inside its function; it is then freed once that returns.
 * Timers are inactive handles of the loop (engine/'s one life cycle): they
 * keep firing while a stopping loop flushes its streams and are freed,
 * without a call, when the loop ends.  A timer libevent cannot arm (out of
 * memory) is not called; cancelling it still frees it.
 *
 * Another thread may cancel a timer while its loop runs, so each timer has
 * an atomic state: the loop claims it (idle -> running) before calling fn
 * and releases it after; a foreign cancel marks it cancelled, which makes
 * every later claim fail, waits (yielding) while fn runs, and then posts
 * the free to the loop -- the base and the handle list are the loop's.
 * If the loop has finished, its teardown frees the timer instead.
 */
#include "config.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>

#include "engine-internal.h"

enum timer_kind {
    TIMER_ONCE,  /* callback, defer: run once */
    TIMER_EVERY, /* loop: every iteration */
    TIMER_CYCLE, /* cycle: every interval */
};

enum timer_state_bits {
    TIMER_RUNNING = 1,   /* the loop is calling fn */
    TIMER_CANCELLED = 2, /* cancelled from another thread: fn never starts again */
};

struct pants_timer_s {
    pants__handle_t handle; /* on the loop's list (inactive); refs */
    struct event ev;        /* the libevent timer */
    pants_fn_t fn;          /* what to call */
    void *arg;              /* its argument */
    enum timer_kind kind;   /* once, every iteration or every interval */
    uint64_t due_ns;        /* defer, cycle: CLOCK_MONOTONIC time it is due; 0 = any */
    uint64_t interval_ns;   /* cycle: its period */
    unsigned state;         /* TIMER_* bits (atomic: other threads cancel) */
    bool cancelled;         /* cancelled on the loop from inside fn: free after it */
};

/* Off the loop: the creation reference goes (a post to free t holds one). */
static void timer_free(pants_timer_t *t)
{
    event_del(&t->ev);
    pants__handle_finish(&t->handle);
    pants__handle_unref(&t->handle);
}

static void timer_release(pants__handle_t *h)
{
    timer_free((pants_timer_t *)h);
}

static void timer_memory_free(pants__handle_t *h)
{
    free(h);
}

static const pants__handle_ops_t timer_ops = {
    .name = "timer", .release = timer_release, .free = timer_memory_free};

static uint64_t monotonic_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ms in nanoseconds, saturated at ~292 years (forever), so that adding it
 * to a monotonic time cannot overflow. */
static uint64_t ms_to_ns(uint64_t ms)
{
    return ms < UINT64_MAX / 2000000u ? ms * 1000000u : UINT64_MAX / 2;
}

/* Arm t to fire once its due time has come, counted from now. */
static void arm_until_due(pants_timer_t *t, uint64_t now)
{
    uint64_t us = now < t->due_ns ? (t->due_ns - now + 999) / 1000 : 0;
    struct timeval tv = {(time_t)(us / 1000000), (suseconds_t)(us % 1000000)};

    event_base_update_cache_time(t->handle.loop->base);
    pants__event_add(&t->ev, &tv); /* a failure: not called (see the top) */
}

/* A defer or cycle fired before it was due: arm it again for the rest. */
static bool rearmed_early(pants_timer_t *t)
{
    uint64_t now = t->due_ns ? monotonic_ns() : 0;

    if (now >= t->due_ns)
        return false;
    arm_until_due(t, now);
    return true;
}

/* A cycle ran: its next run is one interval after the one due now. */
static void next_cycle(pants_timer_t *t)
{
    uint64_t now = monotonic_ns();

    if (t->due_ns > UINT64_MAX - t->interval_ns)
        t->due_ns = UINT64_MAX;
    else
        t->due_ns += t->interval_ns;
    if (t->due_ns <= now) /* a whole interval behind: no burst */
        t->due_ns = now + t->interval_ns;
    arm_until_due(t, now);
}

/* May fn run now?  Marks t running unless another thread cancelled it. */
static bool timer_claim(pants_timer_t *t)
{
    unsigned idle = 0;

    return __atomic_compare_exchange_n(&t->state, &idle, TIMER_RUNNING, false, __ATOMIC_ACQUIRE,
                                       __ATOMIC_RELAXED);
}

/* fn returned: a waiting canceller may go on.  False if another thread
 * cancelled t meanwhile (its task frees t). */
static bool timer_unclaim(pants_timer_t *t)
{
    return !(__atomic_fetch_and(&t->state, ~(unsigned)TIMER_RUNNING, __ATOMIC_RELEASE) & TIMER_CANCELLED);
}

static bool cancelled_elsewhere(pants_timer_t *t)
{
    return (__atomic_load_n(&t->state, __ATOMIC_ACQUIRE) & TIMER_CANCELLED) != 0;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    static const struct timeval zero = {0, 0};
    pants_timer_t *t = arg;

    (void)fd;
    (void)what;
    if (cancelled_elsewhere(t) || rearmed_early(t) || !timer_claim(t))
        return; /* a foreign cancel's task frees t */
    t->fn(t->arg);
    if (!timer_unclaim(t))
        return;
    if (t->cancelled || t->kind == TIMER_ONCE)
        timer_free(t);
    else if (t->kind == TIMER_EVERY)
        pants__event_add(&t->ev, &zero);
    else
        next_cycle(t);
}

static pants_timer_t *timer_new(pants_loop_t *l, enum timer_kind kind, uint64_t ms, pants_fn_t fn, void *arg)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    pants_timer_t *t;
    int entered, rc;

    if (l == NULL || fn == NULL) {
        errno = EINVAL;
        return NULL;
    }
    if (pants__loop_has_finished(l)) {
        errno = ESHUTDOWN;
        return NULL;
    }
    entered = pants__loop_enter(l, "pants_timer_*");
    if (entered < 0) {
        errno = -entered;
        return NULL;
    }
    t = calloc(1, sizeof(*t));
    if (t == NULL) {
        pants__loop_leave(l, entered);
        errno = ENOMEM;
        return NULL;
    }
    t->fn = fn;
    t->arg = arg;
    t->kind = kind;
    if (ms > 0)
        t->due_ns = monotonic_ns() + ms_to_ns(ms);
    if (kind == TIMER_CYCLE)
        t->interval_ns = ms_to_ns(ms);
    event_assign(&t->ev, l->base, -1, 0, on_timer, t);
    event_base_update_cache_time(l->base);
    rc = pants__event_add(&t->ev, &tv);
    if (rc < 0) {
        pants__loop_leave(l, entered);
        free(t);
        errno = -rc;
        return NULL;
    }
    pants__handle_init(&t->handle, l, &timer_ops);
    pants__handle_start(&t->handle, l, &timer_ops, false);
    pants__loop_leave(l, entered);
    return t;
}

pants_timer_t *pants_timer_callback(pants_loop_t *l, pants_fn_t fn, void *arg)
{
    return timer_new(l, TIMER_ONCE, 0, fn, arg);
}

pants_timer_t *pants_timer_loop(pants_loop_t *l, pants_fn_t fn, void *arg)
{
    return timer_new(l, TIMER_EVERY, 0, fn, arg);
}

pants_timer_t *pants_timer_defer(pants_loop_t *l, uint64_t delay_ms, pants_fn_t fn, void *arg)
{
    return timer_new(l, TIMER_ONCE, delay_ms, fn, arg);
}

pants_timer_t *pants_timer_cycle(pants_loop_t *l, uint64_t interval_ms, pants_fn_t fn, void *arg)
{
    if (interval_ms == 0)
        return timer_new(l, TIMER_EVERY, 0, fn, arg);
    return timer_new(l, TIMER_CYCLE, interval_ms, fn, arg);
}

static void free_task(void *a, void *b, uintptr_t c)
{
    (void)b;
    (void)c;
    timer_free(a);
    pants__handle_unref(a); /* the post's */
}

/* Cancel t from a thread other than its running loop's: no fn starts from
 * now on; wait while one runs; then the loop frees t.  If the post fails
 * (the loop has finished, or no memory), t stays on the loop's handle list,
 * never called, and the loop's teardown frees it. */
static void cancel_elsewhere(pants_timer_t *t, pants_loop_t *l)
{
    unsigned old = __atomic_fetch_or(&t->state, TIMER_CANCELLED, __ATOMIC_ACQ_REL);

    if (old & TIMER_CANCELLED)
        return; /* cancelled twice: the first one frees it */
    while (old & TIMER_RUNNING) {
        sched_yield();
        old = __atomic_load_n(&t->state, __ATOMIC_ACQUIRE);
    }
    (void)pants__handle_post(&t->handle, l, free_task, NULL, 0); /* t is not touched after */
}

void pants_timer_cancel(pants_timer_t *t)
{
    pants_loop_t *l;
    unsigned state;
    int entered;

    if (t == NULL)
        return;
    l = t->handle.loop; /* t may be freed below */
    entered = pants__loop_enter(l, NULL);
    if (entered < 0) {
        cancel_elsewhere(t, l);
        return;
    }
    state = __atomic_load_n(&t->state, __ATOMIC_RELAXED);
    if (state & TIMER_CANCELLED) {
        /* cancelled by another thread already: its task frees t */
    } else if (state & TIMER_RUNNING) {
        t->cancelled = true; /* from inside fn: on_timer frees t after it */
        event_del(&t->ev);
    } else {
        timer_free(t);
    }
    pants__loop_leave(l, entered);
}
