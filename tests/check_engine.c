/* check_engine.c -- the engine, its loops, posts, timers and error names.
 *
 * Engines run in the background (pants_engine_start, or pants_engine_run on
 * a thread of the test's own) and are driven from the test thread through
 * pants_loop_post; what runs on a loop records its findings in static
 * state (atomics or data published before an atomic flag), and the test
 * thread asserts on them after waiting, so no assertion runs on a loop
 * thread.  Waits are generous and timing checks only have lower bounds
 * (plus a loose upper one): the machines running this are small and busy.
 * Every test ends with zero live objects.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "testutil.h"

#define WAIT_MS 5000 /* the most any test waits for one thing */

/* ---- Helpers ---------------------------------------------------------- */

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int load(const int *p)
{
    return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

static void store(int *p, int v)
{
    __atomic_store_n(p, v, __ATOMIC_SEQ_CST);
}

static int bump(int *p)
{
    return __atomic_add_fetch(p, 1, __ATOMIC_SEQ_CST);
}

/* libevent's clock is CLOCK_MONOTONIC_COARSE: a cycle may run up to one of
 * its ticks before its time by CLOCK_MONOTONIC (a defer never does). */
static double coarse_tick_ms(void)
{
    struct timespec res;

    if (clock_getres(CLOCK_MONOTONIC_COARSE, &res) != 0)
        return 10.0;
    return (double)res.tv_sec * 1e3 + (double)res.tv_nsec / 1e6;
}

static pants_engine_t *engine_new(unsigned threads)
{
    pants_engine_options_t opts = {.threads = threads, .shutdown_timeout_ms = 2000};
    pants_engine_t *e = pants_engine_new(&opts);

    ck_assert_ptr_nonnull(e);
    return e;
}

static pants_engine_t *engine_started(unsigned threads)
{
    pants_engine_t *e = engine_new(threads);

    ck_assert_int_eq(pants_engine_start(e), 0);
    return e;
}

/* Stop, join and free e; nothing may be left alive. */
static void engine_finish(pants_engine_t *e)
{
    pants_engine_stop(e);
    ck_assert_int_eq(pants_engine_join(e), 0);
    pants_engine_free(e);
    ck_assert_int_eq(pants_live_objects(), 0);
}

static void noop(void *arg)
{
    (void)arg;
}

static void count_call(void *arg)
{
    bump(arg);
}

/* ---- Engine life cycle ------------------------------------------------ */

START_TEST(test_new_free_without_run)
{
    pants_engine_t *e = engine_new(2);

    ck_assert_int_eq(pants_live_objects(), 1);
    ck_assert_uint_eq(pants_engine_threads(e), 2);
    pants_engine_free(e);
    ck_assert_int_eq(pants_live_objects(), 0);
    pants_engine_free(NULL); /* a no-op */
}
END_TEST

static int never_called;

static void never_srv(pants_server_t *srv)
{
    (void)srv;
    bump(&never_called);
}

static void never_srv_err(pants_server_t *srv, int err)
{
    (void)srv;
    (void)err;
    bump(&never_called);
}

static void never_stream(pants_stream_t *s)
{
    (void)s;
    bump(&never_called);
}

static void never_stream_err(pants_stream_t *s, int err)
{
    (void)s;
    (void)err;
    bump(&never_called);
}

static const pants_server_callbacks_t never_srv_cb = {never_srv, NULL, never_srv, never_srv_err};
static const pants_stream_callbacks_t never_stream_cb = {
    .on_connect = never_stream,
    .on_connect_error = never_stream_err,
    .on_write = never_stream,
    .on_close = never_stream,
    .on_error = never_stream_err,
};

/* Channels set up on an engine that never runs are freed silently. */
START_TEST(test_free_never_run_with_channels)
{
    pants_engine_t *e = engine_new(2);
    pants_server_t *srv;
    pants_stream_t *s1, *s2, *s3;
    pants_addr_t a;
    char addr[64];

    store(&never_called, 0);
    srv = pants_server_new(e, &never_srv_cb, &never_stream_cb, NULL);
    ck_assert_ptr_nonnull(srv);
    ck_assert_int_eq(pants_server_listen(srv, "127.0.0.1:0", 0), 0);
    ck_assert_int_eq(pants_server_local_address(srv, &a), 0);
    ck_assert_int_eq(pants_addr_format(&a, addr, sizeof(addr)), 0);

    s1 = pants_stream_new(pants_engine_loop(e, 0), &never_stream_cb, NULL);
    s2 = pants_stream_new(pants_engine_loop(e, 1), &never_stream_cb, NULL);
    s3 = pants_stream_new(pants_engine_loop(e, 1), NULL, NULL);
    ck_assert_ptr_nonnull(s1);
    ck_assert_ptr_nonnull(s2);
    ck_assert_ptr_nonnull(s3);
    ck_assert_int_eq(pants_stream_connect(s1, addr), 0);
    ck_assert_int_eq(pants_stream_write(s1, "hello", 5), 0);
    ck_assert_int_eq(pants_stream_connect(s2, "127.0.0.1:1"), 0);
    ck_assert_ptr_nonnull(pants_timer_defer(pants_engine_loop(e, 0), 10, count_call, &never_called));
    ck_assert_int_eq(pants_live_objects(), 6); /* engine, server, 3 streams, timer */

    pants_engine_free(e);
    ck_assert_int_eq(load(&never_called), 0);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

START_TEST(test_threads_default_is_online_cpus)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    pants_engine_options_t opts = {0};
    pants_engine_t *e1 = pants_engine_new(NULL);
    pants_engine_t *e2 = pants_engine_new(&opts);

    ck_assert_ptr_nonnull(e1);
    ck_assert_ptr_nonnull(e2);
    ck_assert_int_eq(pants_live_objects(), 2);
    ck_assert_uint_eq(pants_engine_threads(e1), (unsigned)(cpus > 0 ? cpus : 1));
    ck_assert_uint_eq(pants_engine_threads(e2), (unsigned)(cpus > 0 ? cpus : 1));
    pants_engine_free(e1);
    pants_engine_free(e2);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

START_TEST(test_threads_option_and_loop_bounds)
{
    pants_engine_t *e = engine_new(3);
    pants_loop_t *l[3];

    ck_assert_uint_eq(pants_engine_threads(e), 3);
    for (unsigned i = 0; i < 3; i++) {
        l[i] = pants_engine_loop(e, i);
        ck_assert_ptr_nonnull(l[i]);
        ck_assert_uint_eq(pants_loop_index(l[i]), i);
        ck_assert_ptr_eq(pants_loop_engine(l[i]), e);
        for (unsigned j = 0; j < i; j++)
            ck_assert_ptr_ne(l[i], l[j]);
    }
    ck_assert_ptr_null(pants_engine_loop(e, 3));
    ck_assert_ptr_null(pants_engine_loop(e, 4));
    ck_assert_ptr_null(pants_engine_loop(e, UINT_MAX));
    ck_assert_ptr_null(pants_engine_loop(NULL, 0));
    ck_assert_ptr_null(pants_engine_next_loop(NULL));
    ck_assert_uint_eq(pants_engine_threads(NULL), 0);
    ck_assert_ptr_null(pants_loop_engine(NULL));
    pants_engine_free(e);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

START_TEST(test_next_loop_round_robin)
{
    enum { N = 3, ROUNDS = 5 };
    pants_engine_t *e = engine_new(N);
    pants_loop_t *seq[N * ROUNDS];
    int seen[N] = {0};

    for (int i = 0; i < N * ROUNDS; i++) {
        seq[i] = pants_engine_next_loop(e);
        ck_assert_ptr_nonnull(seq[i]);
        seen[pants_loop_index(seq[i])]++;
    }
    /* Every loop equally often, in one fixed cycle. */
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(seen[i], ROUNDS);
    for (int i = 0; i + N < N * ROUNDS; i++)
        ck_assert_ptr_eq(seq[i], seq[i + N]);
    for (int i = 1; i < N; i++)
        ck_assert_ptr_ne(seq[i], seq[0]);
    pants_engine_free(e);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

START_TEST(test_start_stop_join)
{
    pants_engine_t *e = engine_started(2);

    ck_assert_int_eq(pants_live_objects(), 1);
    pants_engine_stop(e);
    ck_assert_int_eq(pants_engine_join(e), 0);
    ck_assert_int_eq(pants_engine_join(e), -EINVAL); /* joined already */
    pants_engine_free(e);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

/* The caller's signal mask is the same after start/join and after run. */
START_TEST(test_caller_signal_mask_kept)
{
    sigset_t before, after;
    pants_engine_t *e;

    pthread_sigmask(SIG_SETMASK, NULL, &before);
    ck_assert_int_eq(sigismember(&before, SIGPIPE), 0);
    e = engine_started(1);
    pthread_sigmask(SIG_SETMASK, NULL, &after);
    ck_assert_int_eq(sigismember(&after, SIGPIPE), 0);
    engine_finish(e);

    e = engine_new(1);
    pants_engine_stop(e);
    ck_assert_int_eq(pants_engine_run(e), 0);
    pthread_sigmask(SIG_SETMASK, NULL, &after);
    ck_assert_int_eq(sigismember(&after, SIGPIPE), 0);
    pants_engine_free(e);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

struct runner {
    pants_engine_t *e; /* what to run */
    int rc;            /* pants_engine_run's result */
    int done;          /* set once run returned */
};

static void *run_engine(void *arg)
{
    struct runner *r = arg;

    r->rc = pants_engine_run(r->e);
    store(&r->done, 1);
    return NULL;
}

START_TEST(test_run_on_thread_stop_from_another)
{
    struct runner r = {engine_new(2), -1, 0};
    pthread_t t;

    ck_assert_int_eq(pthread_create(&t, NULL, run_engine, &r), 0);
    for (unsigned i = 0; i < 2; i++)
        pt_on_loop(pants_engine_loop(r.e, i), noop, NULL); /* every worker runs */
    pt_sleep_ms(20);
    ck_assert_int_eq(load(&r.done), 0); /* runs until stopped */
    pants_engine_stop(r.e);
    ck_assert(pt_wait(&r.done, WAIT_MS));
    pthread_join(t, NULL);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_int_eq(pants_engine_join(r.e), -EINVAL); /* it was run, not started */
    pants_engine_free(r.e);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

START_TEST(test_stop_before_run)
{
    pants_engine_t *e = engine_new(2);
    double t0;

    pants_engine_stop(e);
    pants_engine_stop(e); /* twice is harmless */
    t0 = now_ms();
    ck_assert_int_eq(pants_engine_run(e), 0);
    ck_assert_double_lt(now_ms() - t0, 2000.0);
    pants_engine_free(e);

    e = engine_new(2);
    pants_engine_stop(e);
    t0 = now_ms();
    ck_assert_int_eq(pants_engine_start(e), 0);
    ck_assert_int_eq(pants_engine_join(e), 0);
    ck_assert_double_lt(now_ms() - t0, 2000.0);
    pants_engine_free(e);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

static pants_engine_t *signal_engine; /* the engine the handler stops */

static void on_stop_signal(int sig)
{
    (void)sig;
    pants_engine_stop(signal_engine);
}

static void install_stop_handler(int sig)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    ck_assert_int_eq(sigaction(sig, &sa, NULL), 0);
}

static void restore_default(int sig)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
}

/* A handler on the thread that runs the acceptor stops the engine. */
START_TEST(test_stop_from_signal_handler_pthread_kill)
{
    struct runner r = {engine_new(2), -1, 0};
    pthread_t t;

    signal_engine = r.e;
    install_stop_handler(SIGUSR1);
    ck_assert_int_eq(pthread_create(&t, NULL, run_engine, &r), 0);
    pt_on_loop(pants_engine_loop(r.e, 0), noop, NULL);
    /* ThreadSanitizer may hold a signal back until the thread leaves
     * epoll_wait, which an idle acceptor never does: send it again until
     * the handler has stopped the engine (stopping twice is harmless). */
    for (int i = 0; i < 20 && !__atomic_load_n(&r.done, __ATOMIC_SEQ_CST); i++) {
        ck_assert_int_eq(pthread_kill(t, SIGUSR1), 0);
        pt_wait(&r.done, WAIT_MS / 20);
    }
    ck_assert(pt_wait(&r.done, WAIT_MS));
    pthread_join(t, NULL);
    ck_assert_int_eq(r.rc, 0);
    restore_default(SIGUSR1);
    pants_engine_free(r.e);
    signal_engine = NULL;
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

/* alarm: the process-wide signal lands on whichever thread; run, on the
 * test thread itself, returns. */
START_TEST(test_stop_from_signal_handler_alarm)
{
    pants_engine_t *e = engine_new(2);
    double t0 = now_ms();

    signal_engine = e;
    install_stop_handler(SIGALRM);
    alarm(1);
    ck_assert_int_eq(pants_engine_run(e), 0);
    ck_assert_double_ge(now_ms() - t0, 900.0);
    alarm(0);
    restore_default(SIGALRM);
    pants_engine_free(e);
    signal_engine = NULL;
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

START_TEST(test_run_twice_is_ealready)
{
    pants_engine_t *e = engine_started(1);

    ck_assert_int_eq(pants_engine_start(e), -EALREADY); /* while running */
    ck_assert_int_eq(pants_engine_run(e), -EALREADY);
    pants_engine_stop(e);
    ck_assert_int_eq(pants_engine_join(e), 0);
    ck_assert_int_eq(pants_engine_run(e), -EALREADY); /* after it ended */
    ck_assert_int_eq(pants_engine_start(e), -EALREADY);
    pants_engine_free(e);

    e = engine_new(1);
    pants_engine_stop(e);
    ck_assert_int_eq(pants_engine_run(e), 0);
    ck_assert_int_eq(pants_engine_run(e), -EALREADY);
    ck_assert_int_eq(pants_engine_start(e), -EALREADY);
    pants_engine_free(e);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

START_TEST(test_null_and_unstarted_arguments)
{
    pants_engine_t *e = engine_new(1);

    ck_assert_int_eq(pants_engine_run(NULL), -EINVAL);
    ck_assert_int_eq(pants_engine_start(NULL), -EINVAL);
    ck_assert_int_eq(pants_engine_join(NULL), -EINVAL);
    ck_assert_int_eq(pants_engine_join(e), -EINVAL); /* never started */
    pants_engine_stop(NULL);                         /* no-ops */
    pants_engine_free(NULL);
    pants_engine_free(e);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

/* Running out of descriptors: NULL with the system's errno, nothing left,
 * wherever in the engine's creation the shortage strikes (libevent would
 * exit() on a few of those places if the engine let it reach them). */
START_TEST(test_new_fails_cleanly_without_fds)
{
    struct rlimit old, low;
    pants_engine_t *e;
    int lowest, failed = 0, made = 0;

    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    lowest = pt_lowest_free_fd(); /* the lowest free descriptor */
    ck_assert_int_ge(lowest, 0);
    close(lowest);
    for (int extra = 0; extra <= 24; extra++) {
        int saved;

        low = old;
        low.rlim_cur = (rlim_t)lowest + (rlim_t)extra;
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
        errno = 0;
        e = pants_engine_new(&(pants_engine_options_t){.threads = 3});
        saved = errno;
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
        if (e == NULL) {
            ck_assert_msg(saved == EMFILE, "%d spare descriptors: errno %d", extra, saved);
            failed++;
        } else {
            made++;
            pants_engine_free(e);
        }
        ck_assert_int_eq(pants_live_objects(), 0);
    }
    ck_assert_int_gt(failed, 4); /* a shortage at each loop of the four */
    ck_assert_int_gt(made, 0);   /* and enough descriptors make an engine */

    e = engine_new(2); /* and the descriptors came back */
    pants_engine_free(e);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

/* ---- Loops ------------------------------------------------------------ */

static struct {
    pants_loop_t *current[4]; /* pants_loop_current() seen on loop i */
    unsigned index[4];        /* pants_loop_index() of it */
    pthread_t thread[4];      /* pthread_self() there */
    int done;                 /* how many loops answered */
} where;

static void record_where(void *arg)
{
    unsigned i = (unsigned)(uintptr_t)arg;

    where.current[i] = pants_loop_current();
    where.index[i] = pants_loop_index(where.current[i]);
    where.thread[i] = pthread_self();
    bump(&where.done);
}

START_TEST(test_loop_current_and_index)
{
    pants_engine_t *e;

    memset(&where, 0, sizeof(where));
    ck_assert_ptr_null(pants_loop_current());
    e = engine_started(3);
    ck_assert_ptr_null(pants_loop_current());
    for (unsigned i = 0; i < 3; i++)
        ck_assert_int_eq(pants_loop_post(pants_engine_loop(e, i), record_where, (void *)(uintptr_t)i), 0);
    ck_assert(pt_wait_count(&where.done, 3, WAIT_MS));
    for (unsigned i = 0; i < 3; i++) {
        ck_assert_ptr_eq(where.current[i], pants_engine_loop(e, i));
        ck_assert_uint_eq(where.index[i], i);
        ck_assert(!pthread_equal(where.thread[i], pthread_self()));
        for (unsigned j = 0; j < i; j++)
            ck_assert(!pthread_equal(where.thread[i], where.thread[j]));
    }
    ck_assert_ptr_null(pants_loop_current());
    engine_finish(e);
    ck_assert_ptr_null(pants_loop_current());
}
END_TEST

/* pants_loop_current stays NULL on the thread that ran the acceptor once
 * run returned, and on a thread that freed an engine. */
START_TEST(test_loop_current_after_run)
{
    pants_engine_t *e = engine_new(1);

    pants_engine_stop(e);
    ck_assert_int_eq(pants_engine_run(e), 0);
    ck_assert_ptr_null(pants_loop_current());
    pants_engine_free(e);
    ck_assert_ptr_null(pants_loop_current());
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

static int join_rc;
static int join_done;

static void join_from_loop(void *arg)
{
    join_rc = pants_engine_join(arg);
    store(&join_done, 1);
}

/* join from a loop thread would wait for itself: it must refuse. */
START_TEST(test_join_from_loop_refused)
{
    pants_engine_t *e = engine_started(1);

    join_rc = 0;
    store(&join_done, 0);
    ck_assert_int_eq(pants_loop_post(pants_engine_loop(e, 0), join_from_loop, e), 0);
    ck_assert(pt_wait(&join_done, WAIT_MS));
    ck_assert_int_lt(join_rc, 0);
    engine_finish(e);
}
END_TEST

static void stop_own_engine(void *arg)
{
    (void)arg;
    pants_engine_stop(pants_loop_engine(pants_loop_current()));
}

START_TEST(test_stop_from_inside_a_loop)
{
    pants_engine_t *e = engine_started(2);

    ck_assert_int_eq(pants_loop_post(pants_engine_loop(e, 1), stop_own_engine, NULL), 0);
    ck_assert_int_eq(pants_engine_join(e), 0);
    pants_engine_free(e);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

/* A stream writing to a peer that no longer reads (EPIPE) must not kill
 * the process with SIGPIPE, whose disposition stays the default here.  A
 * write from a posted function is queued and sent with writev, which,
 * unlike send, has no MSG_NOSIGNAL. */
static struct {
    pants_stream_t *s; /* the client stream */
    int connected;     /* on_connect ran */
    int error;         /* what on_error got */
    int closed;        /* on_close ran */
    int write_rc;      /* pants_stream_write's result */
    int wrote;         /* the write was made */
} pipe_test;

static void pipe_on_connect(pants_stream_t *s)
{
    (void)s;
    store(&pipe_test.connected, 1);
}

static void pipe_on_error(pants_stream_t *s, int err)
{
    (void)s;
    store(&pipe_test.error, err);
}

static void pipe_on_close(pants_stream_t *s)
{
    (void)s;
    store(&pipe_test.closed, 1);
}

static const pants_stream_callbacks_t pipe_cb = {
    .on_connect = pipe_on_connect,
    .on_error = pipe_on_error,
    .on_close = pipe_on_close,
};

static void pipe_connect(void *arg)
{
    pipe_test.s = pants_stream_new(pants_loop_current(), &pipe_cb, NULL);
    if (pipe_test.s == NULL || pants_stream_connect(pipe_test.s, arg) != 0)
        store(&pipe_test.error, -9999);
}

static void pipe_write(void *arg)
{
    static char junk[4096];

    (void)arg;
    pipe_test.write_rc = pants_stream_write(pipe_test.s, junk, sizeof(junk));
    store(&pipe_test.wrote, 1);
}

START_TEST(test_no_sigpipe_on_closed_peer)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    char addr[200];
    pants_engine_t *e;
    int lfd, cfd;

    memset(&pipe_test, 0, sizeof(pipe_test));
    restore_default(SIGPIPE);
    pt_unix_addr(addr, sizeof(addr), "sigpipe.sock");
    ck_assert_uint_lt(strlen(addr + 5), sizeof(sun.sun_path));
    strcpy(sun.sun_path, addr + 5);
    lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    ck_assert_int_ge(lfd, 0);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    ck_assert_int_eq(listen(lfd, 4), 0);

    e = engine_started(1);
    ck_assert_int_eq(pants_loop_post(pants_engine_loop(e, 0), pipe_connect, addr), 0);
    cfd = accept(lfd, NULL, NULL); /* the stream connects at once */
    ck_assert_int_ge(cfd, 0);
    ck_assert(pt_wait(&pipe_test.connected, WAIT_MS));
    /* The peer stops reading: the stream's next write fails with EPIPE. */
    ck_assert_int_eq(shutdown(cfd, SHUT_RD), 0);
    pt_sleep_ms(20);
    ck_assert_int_eq(pants_loop_post(pants_engine_loop(e, 0), pipe_write, NULL), 0);
    ck_assert(pt_wait(&pipe_test.closed, WAIT_MS));
    ck_assert_int_eq(pipe_test.write_rc, 0);
    /* EPIPE counts as a reset: closed, with or without on_error. */
    ck_assert(load(&pipe_test.error) == 0 || load(&pipe_test.error) == -EPIPE);
    engine_finish(e);
    close(cfd);
    close(lfd);
}
END_TEST

/* The same on the acceptor, which pants_engine_run runs on the caller's
 * thread: the SIGPIPE its stream's write raised must not reach the caller
 * once run returns and the caller's signal mask is back. */
static pants_loop_t *acceptor_seen; /* pants_loop_current() in on_listen */

static void acceptor_on_listen(pants_server_t *srv)
{
    acceptor_seen = pants_loop_current();
    pipe_connect(pants_server_data(srv));
}

static const pants_server_callbacks_t acceptor_srv_cb = {.on_listen = acceptor_on_listen};

START_TEST(test_no_sigpipe_after_run_on_acceptor)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    char addr[200], srv_addr[200];
    struct runner r = {engine_new(1), -1, 0};
    pants_server_t *srv;
    pthread_t t;
    int lfd, cfd;

    memset(&pipe_test, 0, sizeof(pipe_test));
    acceptor_seen = NULL;
    restore_default(SIGPIPE);
    pt_unix_addr(addr, sizeof(addr), "sigpipe2.sock");
    pt_unix_addr(srv_addr, sizeof(srv_addr), "server.sock");
    strcpy(sun.sun_path, addr + 5);
    lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    ck_assert_int_ge(lfd, 0);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    ck_assert_int_eq(listen(lfd, 4), 0);
    srv = pants_server_new(r.e, &acceptor_srv_cb, NULL, addr);
    ck_assert_ptr_nonnull(srv);
    ck_assert_int_eq(pants_server_listen(srv, srv_addr, 0), 0);

    ck_assert_int_eq(pthread_create(&t, NULL, run_engine, &r), 0);
    cfd = accept(lfd, NULL, NULL);
    ck_assert_int_ge(cfd, 0);
    ck_assert(pt_wait(&pipe_test.connected, WAIT_MS));
    ck_assert_ptr_nonnull(acceptor_seen);
    ck_assert_uint_eq(pants_loop_index(acceptor_seen), pants_engine_threads(r.e));
    ck_assert_int_eq(shutdown(cfd, SHUT_RD), 0);
    pt_sleep_ms(20);
    ck_assert_int_eq(pants_loop_post(acceptor_seen, pipe_write, NULL), 0);
    ck_assert(pt_wait(&pipe_test.closed, WAIT_MS));
    ck_assert_int_eq(pipe_test.write_rc, 0);
    pants_engine_stop(r.e);
    ck_assert(pt_wait(&r.done, WAIT_MS));
    pthread_join(t, NULL);
    ck_assert_int_eq(r.rc, 0);
    pants_engine_free(r.e);
    ck_assert_int_eq(pants_live_objects(), 0);
    close(cfd);
    close(lfd);
}
END_TEST

/* A unix listener the test thread accepts on by hand; its path in addr. */
static int raw_unix_listener(char *addr, size_t len, const char *name)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd;

    pt_unix_addr(addr, len, name);
    ck_assert_uint_lt(strlen(addr + 5), sizeof(sun.sun_path));
    strcpy(sun.sun_path, addr + 5);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    ck_assert_int_eq(listen(fd, 4), 0);
    return fd;
}

/* Stop lets a stream flush for shutdown_timeout_ms at most: one whose
 * peer never reads is then closed, and join returns. */
static struct {
    int connected;  /* on_connect ran */
    int closed;     /* on_close ran */
    int write_rc;   /* writing the big block */
    size_t pending; /* pants_stream_pending() in on_close */
} stuck;

static void stuck_on_connect(pants_stream_t *s)
{
    size_t n = 32u << 20;
    char *big = calloc(1, n);

    stuck.write_rc = big ? pants_stream_write(s, big, n) : -ENOMEM;
    free(big);
    store(&stuck.connected, 1);
}

static void stuck_on_close(pants_stream_t *s)
{
    stuck.pending = pants_stream_pending(s);
    store(&stuck.closed, 1);
}

static const pants_stream_callbacks_t stuck_cb = {.on_connect = stuck_on_connect, .on_close = stuck_on_close};

START_TEST(test_stop_kills_stuck_stream_after_timeout)
{
    pants_engine_options_t opts = {.threads = 1, .shutdown_timeout_ms = 300};
    pants_engine_t *e = pants_engine_new(&opts);
    char addr[200];
    pants_stream_t *s;
    int lfd, cfd;
    double t0, took;

    memset(&stuck, 0, sizeof(stuck));
    ck_assert_ptr_nonnull(e);
    lfd = raw_unix_listener(addr, sizeof(addr), "stuck.sock");
    s = pants_stream_new(pants_engine_loop(e, 0), &stuck_cb, NULL); /* set up before start */
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(pants_stream_connect(s, addr), 0);
    ck_assert_int_eq(pants_engine_start(e), 0);
    cfd = accept(lfd, NULL, NULL);
    ck_assert_int_ge(cfd, 0);
    ck_assert(pt_wait(&stuck.connected, WAIT_MS));
    ck_assert_int_eq(stuck.write_rc, 0);
    pt_sleep_ms(50);
    ck_assert_int_eq(load(&stuck.closed), 0); /* still trying to send */

    t0 = now_ms();
    pants_engine_stop(e);
    ck_assert_int_eq(pants_engine_join(e), 0);
    took = now_ms() - t0;
    ck_assert_int_eq(load(&stuck.closed), 1);
    ck_assert_uint_eq(stuck.pending, 0); /* dropped when killed */
    ck_assert_double_ge(took, 300.0 - coarse_tick_ms());
    ck_assert_double_lt(took, 4000.0);
    pants_engine_free(e);
    ck_assert_int_eq(pants_live_objects(), 0);
    close(cfd);
    close(lfd);
}
END_TEST

/* A handle added to a loop that is already stopping is stopped at once:
 * a stream made then is closed (on_close runs) and the engine ends. */
static struct {
    pants_stream_t *s; /* made while stopping */
    int closed;        /* its on_close ran */
    int made;          /* the posted fn ran */
} late;

static void late_on_close(pants_stream_t *s)
{
    (void)s;
    store(&late.closed, 1);
}

static const pants_stream_callbacks_t late_cb = {.on_close = late_on_close};

static void make_late_stream(void *arg)
{
    (void)arg;
    late.s = pants_stream_new(pants_loop_current(), &late_cb, NULL);
    store(&late.made, 1);
}

/* The loop begins stopping right after this task's batch; the task it
 * posts runs in the next one, on a stopping loop. */
static void stop_then_post_stream(void *arg)
{
    pants_loop_t *l = pants_loop_current();

    (void)arg;
    pants_engine_stop(pants_loop_engine(l));
    pants_loop_post(l, make_late_stream, NULL);
}

START_TEST(test_handle_added_while_stopping)
{
    pants_engine_t *e = engine_started(1);

    memset(&late, 0, sizeof(late));
    ck_assert_int_eq(pants_loop_post(pants_engine_loop(e, 0), stop_then_post_stream, NULL), 0);
    ck_assert_int_eq(pants_engine_join(e), 0);
    ck_assert_int_eq(load(&late.made), 1);
    ck_assert_ptr_nonnull(late.s);
    ck_assert_int_eq(load(&late.closed), 1);
    pants_engine_free(e);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

/* ---- Posts ------------------------------------------------------------ */

START_TEST(test_post_runs_on_loop_thread)
{
    pants_engine_t *e = engine_started(2);
    pthread_t first;

    memset(&where, 0, sizeof(where));
    ck_assert_int_eq(pants_loop_post(pants_engine_loop(e, 0), record_where, (void *)(uintptr_t)0), 0);
    ck_assert(pt_wait_count(&where.done, 1, WAIT_MS));
    first = where.thread[0];
    ck_assert(!pthread_equal(first, pthread_self()));
    /* Again on loop 0: the same thread.  On loop 1: another one. */
    ck_assert_int_eq(pants_loop_post(pants_engine_loop(e, 0), record_where, (void *)(uintptr_t)0), 0);
    ck_assert_int_eq(pants_loop_post(pants_engine_loop(e, 1), record_where, (void *)(uintptr_t)1), 0);
    ck_assert(pt_wait_count(&where.done, 3, WAIT_MS));
    ck_assert(pthread_equal(where.thread[0], first));
    ck_assert(!pthread_equal(where.thread[1], first));
    ck_assert(!pthread_equal(where.thread[1], pthread_self()));
    ck_assert_ptr_eq(where.current[0], pants_engine_loop(e, 0));
    ck_assert_ptr_eq(where.current[1], pants_engine_loop(e, 1));
    engine_finish(e);
}
END_TEST

/* Posts made before the engine runs run on the loop once it does, in
 * order with those made afterwards. */
static struct {
    int next;  /* the sequence number expected next */
    int bad;   /* ones out of order or on the wrong thread */
    int count; /* how many ran */
} seq;

static void in_sequence(void *arg)
{
    int n = (int)(intptr_t)arg;

    if (n != seq.next || pants_loop_current() == NULL)
        bump(&seq.bad);
    seq.next = n + 1;
    bump(&seq.count);
}

START_TEST(test_post_before_run)
{
    pants_engine_t *e = engine_new(1);

    memset(&seq, 0, sizeof(seq));
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(pants_loop_post(pants_engine_loop(e, 0), in_sequence, (void *)(intptr_t)i), 0);
    pt_sleep_ms(20);
    ck_assert_int_eq(load(&seq.count), 0);
    ck_assert_int_eq(pants_engine_start(e), 0);
    for (int i = 10; i < 20; i++)
        ck_assert_int_eq(pants_loop_post(pants_engine_loop(e, 0), in_sequence, (void *)(intptr_t)i), 0);
    ck_assert(pt_wait_count(&seq.count, 20, WAIT_MS));
    ck_assert_int_eq(load(&seq.bad), 0);
    engine_finish(e);
}
END_TEST

START_TEST(test_post_fifo_10000)
{
    enum { N = 10000 };
    pants_engine_t *e = engine_started(2);
    pants_loop_t *l = pants_engine_loop(e, 1);

    memset(&seq, 0, sizeof(seq));
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(pants_loop_post(l, in_sequence, (void *)(intptr_t)i), 0);
    ck_assert(pt_wait_count(&seq.count, N, 10000));
    ck_assert_int_eq(load(&seq.bad), 0);
    pt_sleep_ms(20);
    ck_assert_int_eq(load(&seq.count), N); /* each exactly once */
    engine_finish(e);
}
END_TEST

enum { POSTERS = 4, PER_POSTER = 2500 };

struct post_item {
    int poster; /* which thread posted it */
    int n;      /* its number among that thread's posts */
    int loop;   /* the loop it was posted to */
};

static struct {
    pants_engine_t *e; /* the engine posted to */
    struct post_item items[POSTERS * PER_POSTER];
    int hits[POSTERS * PER_POSTER]; /* runs of each item */
    int last[POSTERS][2];           /* per poster and loop: last n run */
    int wrong_loop;                 /* ran elsewhere */
    int disorder;                   /* out of order per poster and loop */
    int failed;                     /* posts that did not return 0 */
    int ready;                      /* posters at the start line */
    int total;                      /* runs so far */
} many;

static void run_item(void *arg)
{
    struct post_item *it = arg;

    if (pants_loop_current() != pants_engine_loop(many.e, (unsigned)it->loop))
        bump(&many.wrong_loop);
    if (it->n <= many.last[it->poster][it->loop])
        bump(&many.disorder);
    many.last[it->poster][it->loop] = it->n;
    bump(&many.hits[it - many.items]);
    bump(&many.total);
}

static void *poster(void *arg)
{
    int p = (int)(intptr_t)arg;

    bump(&many.ready);
    while (load(&many.ready) < POSTERS)
        ;
    for (int i = 0; i < PER_POSTER; i++) {
        struct post_item *it = &many.items[p * PER_POSTER + i];
        if (pants_loop_post(pants_engine_loop(many.e, (unsigned)it->loop), run_item, it) != 0)
            bump(&many.failed);
    }
    return NULL;
}

START_TEST(test_post_from_four_threads)
{
    pthread_t t[POSTERS];

    memset(&many, 0, sizeof(many));
    many.e = engine_started(2);
    for (int p = 0; p < POSTERS; p++) {
        many.last[p][0] = many.last[p][1] = -1;
        for (int i = 0; i < PER_POSTER; i++)
            many.items[p * PER_POSTER + i] = (struct post_item){p, i, (i + p) % 2};
    }
    for (int p = 0; p < POSTERS; p++)
        ck_assert_int_eq(pthread_create(&t[p], NULL, poster, (void *)(intptr_t)p), 0);
    for (int p = 0; p < POSTERS; p++)
        pthread_join(t[p], NULL);
    ck_assert_int_eq(load(&many.failed), 0);
    ck_assert(pt_wait_count(&many.total, POSTERS * PER_POSTER, 10000));
    pt_sleep_ms(20);
    ck_assert_int_eq(load(&many.total), POSTERS * PER_POSTER);
    for (int i = 0; i < POSTERS * PER_POSTER; i++)
        ck_assert_int_eq(load(&many.hits[i]), 1);
    ck_assert_int_eq(load(&many.wrong_loop), 0);
    ck_assert_int_eq(load(&many.disorder), 0);
    engine_finish(many.e);
}
END_TEST

static struct {
    int in_call;          /* set around pants_loop_post inside a loop */
    int post_rc;          /* what it returned */
    int ran;              /* the posted fn ran */
    int nested;           /* the posted fn ran inside the post call */
    int same_loop;        /* it ran on the posting loop */
    pants_loop_t *target; /* where the second post went */
} self_post;

static void posted_later(void *arg)
{
    if (load(&self_post.in_call))
        store(&self_post.nested, 1);
    store(&self_post.same_loop, pants_loop_current() == arg);
    store(&self_post.ran, 1);
}

static void post_to_target(void *arg)
{
    (void)arg;
    store(&self_post.in_call, 1);
    self_post.post_rc = pants_loop_post(self_post.target, posted_later, self_post.target);
    store(&self_post.in_call, 0);
}

START_TEST(test_post_to_own_loop_runs_later)
{
    pants_engine_t *e = engine_started(1);

    memset(&self_post, 0, sizeof(self_post));
    self_post.target = pants_engine_loop(e, 0);
    pt_on_loop(self_post.target, post_to_target, NULL);
    ck_assert_int_eq(self_post.post_rc, 0);
    ck_assert(pt_wait(&self_post.ran, WAIT_MS));
    ck_assert_int_eq(load(&self_post.nested), 0);
    ck_assert_int_eq(load(&self_post.same_loop), 1);
    engine_finish(e);
}
END_TEST

START_TEST(test_post_to_other_loop_from_loop)
{
    pants_engine_t *e = engine_started(2);

    memset(&self_post, 0, sizeof(self_post));
    self_post.target = pants_engine_loop(e, 1);
    pt_on_loop(pants_engine_loop(e, 0), post_to_target, NULL);
    ck_assert_int_eq(self_post.post_rc, 0);
    ck_assert(pt_wait(&self_post.ran, WAIT_MS));
    ck_assert_int_eq(load(&self_post.same_loop), 1); /* ran on loop 1 */
    engine_finish(e);
}
END_TEST

START_TEST(test_post_after_finish_is_eshutdown)
{
    pants_engine_t *e = engine_started(2);
    int ran = 0;

    pants_engine_stop(e);
    ck_assert_int_eq(pants_engine_join(e), 0);
    for (unsigned i = 0; i < 2; i++)
        ck_assert_int_eq(pants_loop_post(pants_engine_loop(e, i), count_call, &ran), -ESHUTDOWN);
    pants_engine_free(e);
    ck_assert_int_eq(ran, 0);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

START_TEST(test_post_null_arguments)
{
    pants_engine_t *e = engine_new(1);
    int ran = 0;

    ck_assert_int_eq(pants_loop_post(NULL, count_call, &ran), -EINVAL);
    ck_assert_int_eq(pants_loop_post(pants_engine_loop(e, 0), NULL, &ran), -EINVAL);
    pants_engine_free(e);
    ck_assert_int_eq(ran, 0);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

/* Posts keep being accepted and run while the engine is stopping. */
static void post_while_stopping(void *arg)
{
    pants_engine_t *e = pants_loop_engine(pants_loop_current());

    pants_engine_stop(e);
    if (pants_loop_post(pants_loop_current(), count_call, arg) != 0)
        store(arg, -100);
}

START_TEST(test_post_during_stop_still_runs)
{
    pants_engine_t *e = engine_started(1);
    int ran = 0;

    ck_assert_int_eq(pants_loop_post(pants_engine_loop(e, 0), post_while_stopping, &ran), 0);
    ck_assert_int_eq(pants_engine_join(e), 0);
    ck_assert_int_eq(load(&ran), 1);
    pants_engine_free(e);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

/* ---- Timers ----------------------------------------------------------- */

static struct {
    pants_timer_t *t;     /* the timer under test */
    pants_timer_t *other; /* a second one */
    int calls;            /* its fn ran this often */
    int other_calls;      /* the second one's fn */
    int limit;            /* cancel itself after this many calls */
    int in_setup;         /* set while the creating function runs */
    int ran_inside;       /* fn ran inside the creating function */
    int wrong_loop;       /* fn ran on another thread */
    pants_loop_t *loop;   /* where it was created */
    int err;              /* errno of a failed creation */
    double armed_at;      /* ms when it was created */
    double fired_at[16];  /* ms of its first calls */
    int stop_asked;       /* the test asks the fn to cancel itself */
} tm;

static void tm_reset(void)
{
    memset(&tm, 0, sizeof(tm));
}

static void tm_fn(void *arg)
{
    int n = tm.calls;

    (void)arg;
    if (load(&tm.in_setup))
        store(&tm.ran_inside, 1);
    if (pants_loop_current() != tm.loop)
        bump(&tm.wrong_loop);
    if (n < 16)
        tm.fired_at[n] = now_ms();
    if ((tm.limit > 0 && n + 1 == tm.limit) || load(&tm.stop_asked))
        pants_timer_cancel(tm.t);
    bump(&tm.calls);
}

static void make_callback(void *arg)
{
    (void)arg;
    tm.loop = pants_loop_current();
    store(&tm.in_setup, 1);
    tm.t = pants_timer_callback(tm.loop, tm_fn, NULL);
    store(&tm.in_setup, 0);
}

START_TEST(test_timer_callback_once_later)
{
    pants_engine_t *e = engine_started(1);

    tm_reset();
    pt_on_loop(pants_engine_loop(e, 0), make_callback, NULL);
    ck_assert_ptr_nonnull(tm.t);
    ck_assert(pt_wait(&tm.calls, WAIT_MS));
    pt_sleep_ms(50);
    ck_assert_int_eq(load(&tm.calls), 1);
    ck_assert_int_eq(load(&tm.ran_inside), 0);
    ck_assert_int_eq(load(&tm.wrong_loop), 0);
    engine_finish(e);
}
END_TEST

static void make_loop_timer(void *arg)
{
    tm.loop = pants_loop_current();
    tm.limit = (int)(intptr_t)arg;
    store(&tm.in_setup, 1);
    tm.t = pants_timer_loop(tm.loop, tm_fn, NULL);
    store(&tm.in_setup, 0);
}

START_TEST(test_timer_loop_until_cancelled)
{
    pants_engine_t *e = engine_started(1);

    tm_reset();
    pt_on_loop(pants_engine_loop(e, 0), make_loop_timer, (void *)(intptr_t)100);
    ck_assert_ptr_nonnull(tm.t);
    ck_assert(pt_wait_count(&tm.calls, 100, WAIT_MS));
    pt_sleep_ms(50);
    ck_assert_int_eq(load(&tm.calls), 100);
    ck_assert_int_eq(load(&tm.ran_inside), 0);
    ck_assert_int_eq(load(&tm.wrong_loop), 0);
    engine_finish(e);
}
END_TEST

static void ask_stop(void *arg)
{
    (void)arg;
    store(&tm.stop_asked, 1);
}

/* A timer running every iteration does not starve the loop's posts. */
START_TEST(test_timer_loop_lets_posts_run)
{
    pants_engine_t *e = engine_started(1);
    int before;

    tm_reset();
    pt_on_loop(pants_engine_loop(e, 0), make_loop_timer, (void *)(intptr_t)0);
    ck_assert(pt_wait_count(&tm.calls, 10, WAIT_MS));
    pt_on_loop(pants_engine_loop(e, 0), ask_stop, NULL); /* returns only if posts run */
    ck_assert(pt_wait_count(&tm.calls, 11, WAIT_MS));
    before = load(&tm.calls);
    pt_sleep_ms(50);
    ck_assert_int_eq(load(&tm.calls), before);
    engine_finish(e);
}
END_TEST

static void make_defer(void *arg)
{
    tm.loop = pants_loop_current();
    tm.armed_at = now_ms();
    tm.t = pants_timer_defer(tm.loop, (uint64_t)(uintptr_t)arg, tm_fn, NULL);
}

START_TEST(test_timer_defer_waits)
{
    pants_engine_t *e = engine_started(1);
    double elapsed;

    tm_reset();
    pt_on_loop(pants_engine_loop(e, 0), make_defer, (void *)(uintptr_t)100);
    ck_assert_ptr_nonnull(tm.t);
    pt_sleep_ms(30);
    ck_assert_int_eq(load(&tm.calls), 0);
    ck_assert(pt_wait(&tm.calls, WAIT_MS));
    elapsed = tm.fired_at[0] - tm.armed_at;
    ck_assert_double_ge(elapsed, 100.0);
    ck_assert_double_lt(elapsed, 3000.0);
    pt_sleep_ms(50);
    ck_assert_int_eq(load(&tm.calls), 1);
    engine_finish(e);
}
END_TEST

/* The loop is busy for 100 ms inside one callback before deferring: the
 * delay counts from the defer call, not from when the iteration began. */
static void busy_then_defer(void *arg)
{
    double t0 = now_ms();

    while (now_ms() - t0 < 100.0)
        ;
    make_defer(arg);
}

START_TEST(test_timer_defer_counts_from_call)
{
    pants_engine_t *e = engine_started(1);
    double elapsed;

    tm_reset();
    pt_on_loop(pants_engine_loop(e, 0), busy_then_defer, (void *)(uintptr_t)100);
    ck_assert_ptr_nonnull(tm.t);
    ck_assert(pt_wait(&tm.calls, WAIT_MS));
    elapsed = tm.fired_at[0] - tm.armed_at;
    ck_assert_double_ge(elapsed, 100.0);
    ck_assert_double_lt(elapsed, 3000.0);
    engine_finish(e);
}
END_TEST

static void make_cycle(void *arg)
{
    tm.loop = pants_loop_current();
    tm.armed_at = now_ms();
    tm.t = pants_timer_cycle(tm.loop, (uint64_t)(uintptr_t)arg, tm_fn, NULL);
}

START_TEST(test_timer_cycle_repeats_then_cancels_itself)
{
    pants_engine_t *e = engine_started(1);

    tm_reset();
    tm.limit = 5;
    pt_on_loop(pants_engine_loop(e, 0), make_cycle, (void *)(uintptr_t)40);
    ck_assert_ptr_nonnull(tm.t);
    ck_assert(pt_wait_count(&tm.calls, 5, WAIT_MS));
    pt_sleep_ms(150);
    ck_assert_int_eq(load(&tm.calls), 5);
    /* About the interval apart: not early by more than a clock tick. */
    ck_assert_double_ge(tm.fired_at[0] - tm.armed_at, 40.0 - coarse_tick_ms());
    ck_assert_double_ge(tm.fired_at[4] - tm.armed_at, 5 * 40.0 - coarse_tick_ms());
    for (int i = 1; i < 5; i++)
        ck_assert_double_gt(tm.fired_at[i], tm.fired_at[i - 1]);
    ck_assert_double_lt(tm.fired_at[4] - tm.armed_at, 5000.0);
    ck_assert_int_eq(load(&tm.wrong_loop), 0);
    engine_finish(e);
}
END_TEST

static void cancel_tm(void *arg)
{
    (void)arg;
    pants_timer_cancel(tm.t);
    tm.t = NULL;
}

START_TEST(test_timer_cycle_cancel_stops_it)
{
    pants_engine_t *e = engine_started(1);
    int seen;

    tm_reset();
    pt_on_loop(pants_engine_loop(e, 0), make_cycle, (void *)(uintptr_t)20);
    ck_assert(pt_wait_count(&tm.calls, 3, WAIT_MS));
    ck_assert_int_eq(pants_live_objects(), 2); /* engine and timer */
    pt_on_loop(pants_engine_loop(e, 0), cancel_tm, NULL);
    ck_assert_int_eq(pants_live_objects(), 1); /* freed by cancel */
    seen = load(&tm.calls);
    pt_sleep_ms(150);
    ck_assert_int_eq(load(&tm.calls), seen);
    engine_finish(e);
}
END_TEST

/* Cancelled before firing: fn never runs, for every kind of timer. */
static void make_and_cancel_all(void *arg)
{
    pants_loop_t *l = pants_loop_current();

    (void)arg;
    tm.loop = l;
    pants_timer_cancel(pants_timer_callback(l, tm_fn, NULL));
    pants_timer_cancel(pants_timer_loop(l, tm_fn, NULL));
    pants_timer_cancel(pants_timer_defer(l, 0, tm_fn, NULL));
    pants_timer_cancel(pants_timer_defer(l, 30, tm_fn, NULL));
    pants_timer_cancel(pants_timer_cycle(l, 10, tm_fn, NULL));
    pants_timer_cancel(NULL); /* a no-op */
    tm.other_calls = (int)pants_live_objects();
}

START_TEST(test_timer_cancel_before_firing)
{
    pants_engine_t *e = engine_started(1);

    tm_reset();
    pt_on_loop(pants_engine_loop(e, 0), make_and_cancel_all, NULL);
    ck_assert_int_eq(tm.other_calls, 1); /* only the engine */
    pt_sleep_ms(150);
    ck_assert_int_eq(load(&tm.calls), 0);
    engine_finish(e);
}
END_TEST

/* One-shot timers cancelling themselves from inside fn. */
static void make_self_cancelling(void *arg)
{
    tm.loop = pants_loop_current();
    tm.limit = 1;
    if (arg == NULL)
        tm.t = pants_timer_callback(tm.loop, tm_fn, NULL);
    else
        tm.t = pants_timer_defer(tm.loop, 20, tm_fn, NULL);
}

START_TEST(test_timer_one_shot_cancels_itself)
{
    pants_engine_t *e = engine_started(1);

    for (int i = 0; i < 2; i++) {
        tm_reset();
        pt_on_loop(pants_engine_loop(e, 0), make_self_cancelling, i ? e : NULL);
        ck_assert_ptr_nonnull(tm.t);
        ck_assert(pt_wait(&tm.calls, WAIT_MS));
        pt_sleep_ms(50);
        ck_assert_int_eq(load(&tm.calls), 1);
        ck_assert_int_eq(pants_live_objects(), 1);
    }
    engine_finish(e);
}
END_TEST

static void other_fn(void *arg)
{
    (void)arg;
    bump(&tm.other_calls);
}

static void cancel_other(void *arg)
{
    (void)arg;
    pants_timer_cancel(tm.other);
    bump(&tm.calls);
}

static void make_canceller_pair(void *arg)
{
    pants_loop_t *l = pants_loop_current();

    (void)arg;
    tm.other = pants_timer_defer(l, 300, other_fn, NULL);
    tm.t = pants_timer_defer(l, 20, cancel_other, NULL);
}

START_TEST(test_timer_cancelled_by_another)
{
    pants_engine_t *e = engine_started(1);

    tm_reset();
    pt_on_loop(pants_engine_loop(e, 0), make_canceller_pair, NULL);
    ck_assert_ptr_nonnull(tm.t);
    ck_assert_ptr_nonnull(tm.other);
    ck_assert(pt_wait(&tm.calls, WAIT_MS));
    ck_assert_int_eq(pants_live_objects(), 1); /* both gone */
    pt_sleep_ms(400);
    ck_assert_int_eq(load(&tm.other_calls), 0);
    engine_finish(e);
}
END_TEST

/* A cycle timer cancelling another cycle timer due in the same iteration,
 * and itself, stops both. */
static void cancel_both(void *arg)
{
    (void)arg;
    pants_timer_cancel(tm.other);
    pants_timer_cancel(tm.t);
    bump(&tm.calls);
}

static void make_cycle_pair(void *arg)
{
    pants_loop_t *l = pants_loop_current();

    (void)arg;
    tm.t = pants_timer_cycle(l, 10, cancel_both, NULL);
    tm.other = pants_timer_cycle(l, 10, cancel_both, NULL);
}

START_TEST(test_timer_cycle_pair_cancel)
{
    pants_engine_t *e = engine_started(1);

    tm_reset();
    pt_on_loop(pants_engine_loop(e, 0), make_cycle_pair, NULL);
    ck_assert(pt_wait(&tm.calls, WAIT_MS));
    pt_sleep_ms(100);
    ck_assert_int_eq(load(&tm.calls), 1);
    ck_assert_int_eq(pants_live_objects(), 1);
    engine_finish(e);
}
END_TEST

START_TEST(test_timer_from_foreign_thread_eperm)
{
    pants_engine_t *e = engine_started(1);
    pants_loop_t *l = pants_engine_loop(e, 0);
    int ran = 0;

    /* Right after start returns the loop counts as running. */
    errno = 0;
    ck_assert_ptr_null(pants_timer_callback(l, count_call, &ran));
    ck_assert_int_eq(errno, EPERM);
    pt_on_loop(l, noop, NULL);
    errno = 0;
    ck_assert_ptr_null(pants_timer_loop(l, count_call, &ran));
    ck_assert_int_eq(errno, EPERM);
    errno = 0;
    ck_assert_ptr_null(pants_timer_defer(l, 1, count_call, &ran));
    ck_assert_int_eq(errno, EPERM);
    errno = 0;
    ck_assert_ptr_null(pants_timer_cycle(l, 1, count_call, &ran));
    ck_assert_int_eq(errno, EPERM);
    ck_assert_int_eq(pants_live_objects(), 1);
    pt_sleep_ms(30);
    ck_assert_int_eq(load(&ran), 0);
    engine_finish(e);
}
END_TEST

START_TEST(test_timer_null_arguments)
{
    pants_engine_t *e = engine_new(1);
    pants_loop_t *l = pants_engine_loop(e, 0);

    errno = 0;
    ck_assert_ptr_null(pants_timer_callback(NULL, noop, NULL));
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_ptr_null(pants_timer_loop(l, NULL, NULL));
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_ptr_null(pants_timer_defer(NULL, 5, noop, NULL));
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_ptr_null(pants_timer_cycle(l, 5, NULL, NULL));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(pants_live_objects(), 1);
    pants_engine_free(e);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

static struct {
    int callback, defer, cycle; /* calls of each */
} early;

START_TEST(test_timers_made_before_run_fire)
{
    pants_engine_t *e = engine_new(2);
    pants_loop_t *l0 = pants_engine_loop(e, 0), *l1 = pants_engine_loop(e, 1);
    pants_timer_t *cycle;

    memset(&early, 0, sizeof(early));
    ck_assert_ptr_nonnull(pants_timer_callback(l0, count_call, &early.callback));
    ck_assert_ptr_nonnull(pants_timer_defer(l1, 30, count_call, &early.defer));
    cycle = pants_timer_cycle(l1, 10, count_call, &early.cycle);
    ck_assert_ptr_nonnull(cycle);
    ck_assert_int_eq(pants_live_objects(), 4);
    pt_sleep_ms(50);
    ck_assert_int_eq(load(&early.callback) + load(&early.defer) + load(&early.cycle), 0);
    ck_assert_int_eq(pants_engine_start(e), 0);
    ck_assert(pt_wait(&early.callback, WAIT_MS));
    ck_assert(pt_wait(&early.defer, WAIT_MS));
    ck_assert(pt_wait_count(&early.cycle, 3, WAIT_MS));
    pt_sleep_ms(30);
    ck_assert_int_eq(load(&early.callback), 1);
    ck_assert_int_eq(load(&early.defer), 1);
    ck_assert_int_eq(pants_live_objects(), 2); /* engine and the cycle */
    engine_finish(e);                          /* frees the cycle */
}
END_TEST

/* Before the engine runs, the test thread may cancel what it made. */
START_TEST(test_timer_cancel_before_run)
{
    pants_engine_t *e = engine_new(1);
    pants_loop_t *l = pants_engine_loop(e, 0);
    int ran = 0, kept = 0;

    pants_timer_cancel(pants_timer_callback(l, count_call, &ran));
    pants_timer_cancel(pants_timer_defer(l, 1, count_call, &ran));
    pants_timer_cancel(pants_timer_cycle(l, 1, count_call, &ran));
    ck_assert_ptr_nonnull(pants_timer_callback(l, count_call, &kept));
    ck_assert_int_eq(pants_live_objects(), 2);
    ck_assert_int_eq(pants_engine_start(e), 0);
    ck_assert(pt_wait(&kept, WAIT_MS));
    pt_sleep_ms(30);
    ck_assert_int_eq(load(&ran), 0);
    engine_finish(e);
}
END_TEST

static void make_pending_timers(void *arg)
{
    pants_loop_t *l = pants_loop_current();

    pants_timer_defer(l, 60000, count_call, arg);
    pants_timer_cycle(l, 30000, count_call, arg);
    pants_timer_loop(l, noop, NULL);
    pants_timer_callback(l, noop, NULL);
}

START_TEST(test_timers_pending_at_stop_freed)
{
    pants_engine_t *e = engine_started(2);
    int ran = 0;

    pt_on_loop(pants_engine_loop(e, 0), make_pending_timers, &ran);
    pt_on_loop(pants_engine_loop(e, 1), make_pending_timers, &ran);
    ck_assert_int_ge(pants_live_objects(), 5);
    engine_finish(e);
    ck_assert_int_eq(ran, 0);
}
END_TEST

/* Once the loop has finished, timers are refused with ESHUTDOWN. */
START_TEST(test_timer_after_finish_eshutdown)
{
    pants_engine_t *e = engine_started(1);
    pants_loop_t *l = pants_engine_loop(e, 0);
    int ran = 0;

    pants_engine_stop(e);
    ck_assert_int_eq(pants_engine_join(e), 0);
    errno = 0;
    ck_assert_ptr_null(pants_timer_defer(l, 1, count_call, &ran));
    ck_assert_int_eq(errno, ESHUTDOWN);
    errno = 0;
    ck_assert_ptr_null(pants_timer_callback(l, count_call, &ran));
    ck_assert_int_eq(errno, ESHUTDOWN);
    pants_engine_free(e);
    ck_assert_int_eq(ran, 0);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

/* Delays too long to ever end do not wrap around into "now". */
static void make_endless(void *arg)
{
    pants_loop_t *l = pants_loop_current();

    tm.t = pants_timer_defer(l, UINT64_MAX, count_call, arg);
    tm.other = pants_timer_cycle(l, UINT64_MAX - 1, count_call, arg);
    pants_timer_defer(l, (uint64_t)INT64_MAX + 7, count_call, arg);
}

START_TEST(test_timer_huge_delays_never_fire)
{
    pants_engine_t *e = engine_started(1);
    int ran = 0;

    tm_reset();
    pt_on_loop(pants_engine_loop(e, 0), make_endless, &ran);
    ck_assert_ptr_nonnull(tm.t);
    ck_assert_ptr_nonnull(tm.other);
    pt_sleep_ms(100);
    ck_assert_int_eq(load(&ran), 0);
    ck_assert_int_eq(pants_live_objects(), 4);
    engine_finish(e);
}
END_TEST

/* cycle(0) runs every iteration, like loop. */
START_TEST(test_timer_cycle_zero_is_every_iteration)
{
    pants_engine_t *e = engine_started(1);

    tm_reset();
    tm.limit = 50;
    pt_on_loop(pants_engine_loop(e, 0), make_cycle, (void *)(uintptr_t)0);
    ck_assert_ptr_nonnull(tm.t);
    ck_assert(pt_wait_count(&tm.calls, 50, WAIT_MS));
    ck_assert_double_lt(tm.fired_at[15] - tm.armed_at, 3000.0);
    pt_sleep_ms(30);
    ck_assert_int_eq(load(&tm.calls), 50);
    engine_finish(e);
}
END_TEST

/* ---- Timers cancelled from another thread ----------------------------- */

static struct {
    pants_timer_t *t;  /* the timer under test */
    int calls;         /* its fn ran this often (atomic) */
    int started;       /* a slow fn began (atomic) */
    int finished;      /* a slow fn is about to return (atomic) */
    int finished_seen; /* finished, read right after cancel returned */
    unsigned slow_ms;  /* how long fn sleeps; 0 = not at all */
} xc;

static void xc_fn(void *arg)
{
    (void)arg;
    bump(&xc.calls);
    if (xc.slow_ms == 0)
        return;
    store(&xc.started, 1);
    pt_sleep_ms(xc.slow_ms);
    store(&xc.finished, 1); /* the last thing fn does */
}

/* Make the timer of kind arg on the calling loop: 'c' a 1 ms cycle, 'l'
 * every iteration, 'o' once (callback). */
static void xc_make(void *arg)
{
    pants_loop_t *l = pants_loop_current();

    switch ((int)(intptr_t)arg) {
    case 'c':
        xc.t = pants_timer_cycle(l, 1, xc_fn, NULL);
        break;
    case 'l':
        xc.t = pants_timer_loop(l, xc_fn, NULL);
        break;
    default:
        xc.t = pants_timer_callback(l, xc_fn, NULL);
        break;
    }
}

static void xc_cancel(void *arg)
{
    (void)arg;
    pants_timer_cancel(xc.t);
    xc.finished_seen = load(&xc.finished);
}

/* Wait until exactly n objects are alive (the loop frees a timer cancelled
 * from elsewhere a moment later). */
static bool live_becomes(long n)
{
    for (int i = 0; i < WAIT_MS; i++) {
        if (pants_live_objects() == n)
            return true;
        pt_sleep_ms(1);
    }
    return false;
}

/* The calls counter does not move for about 100 ms. */
static void assert_calls_stay(int seen)
{
    for (int i = 0; i < 20; i++) {
        pt_sleep_ms(5);
        ck_assert_int_eq(load(&xc.calls), seen);
    }
}

/* A 1 ms cycle, and a timer running every iteration, cancelled while the
 * engine runs, from the test thread (_i 0) or from another loop's thread
 * (_i 1): once cancel has returned, fn never runs again, and the loop frees
 * the timer.  Twenty rounds, the two kinds in turn, so that some cancels
 * land while fn runs. */
START_TEST(test_timer_cancel_from_another_thread)
{
    pants_engine_t *e = engine_started(2);
    pants_loop_t *l0 = pants_engine_loop(e, 0), *l1 = pants_engine_loop(e, 1);

    for (int round = 0; round < 20; round++) {
        int seen;

        memset(&xc, 0, sizeof(xc));
        pt_on_loop(l0, xc_make, (void *)(intptr_t)(round % 2 ? 'l' : 'c'));
        ck_assert_ptr_nonnull(xc.t);
        ck_assert(pt_wait_count(&xc.calls, 3 + round % 5, WAIT_MS));
        if (_i == 0)
            xc_cancel(NULL);
        else
            pt_on_loop(l1, xc_cancel, NULL);
        seen = load(&xc.calls);
        assert_calls_stay(seen);
        ck_assert(live_becomes(1)); /* only the engine */
    }
    engine_finish(e);
}
END_TEST

/* fn sleeps 50 ms; cancelled from the test thread while it runs, cancel
 * returns only after fn has returned, so fn's argument could be freed at
 * once.  For a 1 ms cycle (_i 0) and a one-shot callback (_i 1). */
START_TEST(test_timer_cancel_waits_for_running_fn)
{
    pants_engine_t *e = engine_started(1);
    double t0;

    memset(&xc, 0, sizeof(xc));
    xc.slow_ms = 50;
    pt_on_loop(pants_engine_loop(e, 0), xc_make, (void *)(intptr_t)(_i == 0 ? 'c' : 'o'));
    ck_assert_ptr_nonnull(xc.t);
    ck_assert(pt_wait(&xc.started, WAIT_MS));
    t0 = now_ms();
    xc_cancel(NULL);
    ck_assert_int_eq(xc.finished_seen, 1);
    ck_assert_int_eq(load(&xc.calls), 1);
    ck_assert_double_lt(now_ms() - t0, 3000.0);
    assert_calls_stay(1);
    ck_assert(live_becomes(1));
    engine_finish(e);
}
END_TEST

/* Cancelled from the test thread after the engine stopped: nothing runs,
 * and pants_engine_free frees the timer (once). */
START_TEST(test_timer_cancel_after_engine_stopped)
{
    pants_engine_t *e = engine_started(1);
    int seen;

    memset(&xc, 0, sizeof(xc));
    pt_on_loop(pants_engine_loop(e, 0), xc_make, (void *)(intptr_t)'c');
    ck_assert(pt_wait_count(&xc.calls, 2, WAIT_MS));
    pants_engine_stop(e);
    ck_assert_int_eq(pants_engine_join(e), 0);
    seen = load(&xc.calls);
    ck_assert_int_eq(pants_live_objects(), 2); /* engine and timer */
    pants_timer_cancel(xc.t);
    ck_assert_int_eq(pants_live_objects(), 2); /* left to the loop's teardown */
    pants_engine_free(e);
    ck_assert_int_eq(load(&xc.calls), seen);
    ck_assert_int_eq(pants_live_objects(), 0);
}
END_TEST

/* ---- Error names ------------------------------------------------------ */

/* Checked teardown: naming errors leaves nothing alive. */
static void no_live_objects(void)
{
    ck_assert_int_eq(pants_live_objects(), 0);
}

START_TEST(test_strerror_eai_codes)
{
    const char *names[12];

    for (int i = 0; i < 12; i++) {
        names[i] = pants_strerror(PANTS_EAI_ADDRFAMILY - i);
        ck_assert_ptr_nonnull(names[i]);
        ck_assert_uint_gt(strlen(names[i]), 0);
        ck_assert_str_ne(names[i], "unknown error");
        for (int j = 0; j < i; j++)
            ck_assert_str_ne(names[i], names[j]);
    }
    ck_assert_int_eq(PANTS_EAI_ADDRFAMILY - 11, PANTS_EAI_TIMEOUT);
    ck_assert_str_eq(pants_strerror(PANTS_EAI_NONAME), "host name not known");
    ck_assert_str_eq(pants_strerror(PANTS_EAI_TIMEOUT), "name resolution timed out");
}
END_TEST

START_TEST(test_strerror_errno_and_unknown)
{
    static const int unknown[] = {
        PANTS_EAI_ADDRFAMILY + 1, PANTS_EAI_TIMEOUT - 1, -2999, -100000, INT_MIN, INT_MIN + 1, -4096};

    ck_assert_str_eq(pants_strerror(0), "success");
    ck_assert_str_eq(pants_strerror(-EINVAL), strerror(EINVAL));
    ck_assert_str_eq(pants_strerror(-EADDRINUSE), strerror(EADDRINUSE));
    ck_assert_str_eq(pants_strerror(-ECONNREFUSED), strerror(ECONNREFUSED));
    ck_assert_str_eq(pants_strerror(-ESHUTDOWN), strerror(ESHUTDOWN));
    ck_assert_str_ne(pants_strerror(-EINVAL), pants_strerror(-EPIPE));
    /* -E2BIG is a regex delimiter past its limits, not an argument list. */
    ck_assert_str_eq(pants_strerror(-E2BIG), "too costly to match: a regex delimiter reached its limits");
    ck_assert_str_eq(pants_strerror(E2BIG), pants_strerror(-E2BIG));
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        const char *s = pants_strerror(unknown[i]);
        ck_assert_ptr_nonnull(s);
        ck_assert_str_eq(s, "unknown error");
    }
    ck_assert_ptr_nonnull(pants_strerror(INT_MAX));
}
END_TEST

/* ---- Suite ------------------------------------------------------------ */

Suite *engine_suite(void);

Suite *engine_suite(void)
{
    Suite *s = suite_create("engine");
    TCase *tc;

    tc = tcase_create("lifecycle");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_new_free_without_run);
    tcase_add_test(tc, test_free_never_run_with_channels);
    tcase_add_test(tc, test_threads_default_is_online_cpus);
    tcase_add_test(tc, test_threads_option_and_loop_bounds);
    tcase_add_test(tc, test_next_loop_round_robin);
    tcase_add_test(tc, test_start_stop_join);
    tcase_add_test(tc, test_caller_signal_mask_kept);
    tcase_add_test(tc, test_run_on_thread_stop_from_another);
    tcase_add_test(tc, test_stop_before_run);
    tcase_add_test(tc, test_stop_from_signal_handler_pthread_kill);
    tcase_add_test(tc, test_stop_from_signal_handler_alarm);
    tcase_add_test(tc, test_run_twice_is_ealready);
    tcase_add_test(tc, test_null_and_unstarted_arguments);
    tcase_add_test(tc, test_new_fails_cleanly_without_fds);
    suite_add_tcase(s, tc);

    tc = tcase_create("loops");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_loop_current_and_index);
    tcase_add_test(tc, test_loop_current_after_run);
    tcase_add_test(tc, test_join_from_loop_refused);
    tcase_add_test(tc, test_stop_from_inside_a_loop);
    tcase_add_test(tc, test_no_sigpipe_on_closed_peer);
    tcase_add_test(tc, test_no_sigpipe_after_run_on_acceptor);
    tcase_add_test(tc, test_stop_kills_stuck_stream_after_timeout);
    tcase_add_test(tc, test_handle_added_while_stopping);
    suite_add_tcase(s, tc);

    tc = tcase_create("posts");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_post_runs_on_loop_thread);
    tcase_add_test(tc, test_post_before_run);
    tcase_add_test(tc, test_post_fifo_10000);
    tcase_add_test(tc, test_post_from_four_threads);
    tcase_add_test(tc, test_post_to_own_loop_runs_later);
    tcase_add_test(tc, test_post_to_other_loop_from_loop);
    tcase_add_test(tc, test_post_after_finish_is_eshutdown);
    tcase_add_test(tc, test_post_null_arguments);
    tcase_add_test(tc, test_post_during_stop_still_runs);
    suite_add_tcase(s, tc);

    tc = tcase_create("timers");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_timer_callback_once_later);
    tcase_add_test(tc, test_timer_loop_until_cancelled);
    tcase_add_test(tc, test_timer_loop_lets_posts_run);
    tcase_add_test(tc, test_timer_defer_waits);
    tcase_add_test(tc, test_timer_defer_counts_from_call);
    tcase_add_test(tc, test_timer_cycle_repeats_then_cancels_itself);
    tcase_add_test(tc, test_timer_cycle_cancel_stops_it);
    tcase_add_test(tc, test_timer_cancel_before_firing);
    tcase_add_test(tc, test_timer_one_shot_cancels_itself);
    tcase_add_test(tc, test_timer_cancelled_by_another);
    tcase_add_test(tc, test_timer_cycle_pair_cancel);
    tcase_add_test(tc, test_timer_from_foreign_thread_eperm);
    tcase_add_test(tc, test_timer_null_arguments);
    tcase_add_test(tc, test_timers_made_before_run_fire);
    tcase_add_test(tc, test_timer_cancel_before_run);
    tcase_add_test(tc, test_timers_pending_at_stop_freed);
    tcase_add_test(tc, test_timer_after_finish_eshutdown);
    tcase_add_test(tc, test_timer_cycle_zero_is_every_iteration);
    tcase_add_test(tc, test_timer_huge_delays_never_fire);
    suite_add_tcase(s, tc);

    tc = tcase_create("timer_cancel_elsewhere");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_timer_cancel_from_another_thread, 0, 2);
    tcase_add_loop_test(tc, test_timer_cancel_waits_for_running_fn, 0, 2);
    tcase_add_test(tc, test_timer_cancel_after_engine_stopped);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_checked_fixture(tc, NULL, no_live_objects);
    tcase_add_test(tc, test_strerror_eai_codes);
    tcase_add_test(tc, test_strerror_errno_and_unknown);
    suite_add_tcase(s, tc);

    return s;
}
