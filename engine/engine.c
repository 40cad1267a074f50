/* engine.c -- the engine: N worker loops plus the acceptor loop.
 *
 * pants_engine_new creates every loop (so channels can be set up before
 * anything runs) but starts no thread.  run/start create one thread per
 * worker and run the acceptor on the caller's thread (run) or a thread of
 * its own (start).  Stopping is a flag plus a wake-up of every loop, so it
 * is safe from a signal handler; each loop then ends what it owns and
 * finishes, and run/join return once every thread has.
 *
 * SIGPIPE never reaches the process: loop threads block it in their own
 * signal mask (a write to a closed peer then just fails with EPIPE); the
 * process-wide disposition is never changed.  run gives the caller's thread
 * its mask back without the SIGPIPEs the acceptor left pending there.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "engine-internal.h"

#define DEFAULT_SHUTDOWN_MS    5000
#define FD_TABLE_MAX           65536 /* descriptors the table is grown to up front, at most */
#define DEFAULT_DNS_TIMEOUT_MS 2000

static void fill_defaults(pants_engine_t *e, const pants_engine_options_t *opts)
{
    if (opts != NULL)
        e->opts = *opts;
    if (e->opts.threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        e->opts.threads = n > 0 ? (unsigned)n : 1;
    }
    if (e->opts.shutdown_timeout_ms == 0)
        e->opts.shutdown_timeout_ms = DEFAULT_SHUTDOWN_MS;
    if (e->opts.dns_timeout_ms == 0)
        e->opts.dns_timeout_ms = DEFAULT_DNS_TIMEOUT_MS;
}

pants_engine_t *pants_engine_new(const pants_engine_options_t *opts)
{
    pants_engine_t *e = calloc(1, sizeof(*e));
    int err = ENOMEM;

    if (e == NULL)
        return NULL;
    fill_defaults(e, opts);
    if (e->opts.dns_server != NULL) {
        e->dns_server = strdup(e->opts.dns_server);
        if (e->dns_server == NULL)
            goto free_engine;
        e->opts.dns_server = e->dns_server;
    }
    e->loops = calloc(e->opts.threads, sizeof(*e->loops));
    e->threads = calloc(e->opts.threads, sizeof(*e->threads));
    if (e->loops == NULL || e->threads == NULL)
        goto free_engine;
    for (e->nloops = 0; e->nloops < e->opts.threads; e->nloops++) {
        e->loops[e->nloops] = pants__loop_new(e, e->nloops);
        if (e->loops[e->nloops] == NULL)
            goto free_loops;
    }
    e->acceptor = pants__loop_new(e, e->nloops);
    if (e->acceptor == NULL)
        goto free_loops;
    pants__live_add(1);
    return e;

free_loops:
    err = errno ? errno : ENOMEM; /* EMFILE, ... from the loop that failed */
    for (unsigned i = 0; i < e->nloops; i++)
        pants__loop_free(e->loops[i]);
free_engine:
    free(e->loops);
    free(e->threads);
    free(e->dns_server);
    free(e);
    errno = err;
    return NULL;
}

unsigned pants_engine_threads(const pants_engine_t *e)
{
    return e ? e->nloops : 0;
}

pants_loop_t *pants_engine_loop(pants_engine_t *e, unsigned index)
{
    if (e == NULL || index >= e->nloops)
        return NULL;
    return e->loops[index];
}

pants_loop_t *pants_engine_next_loop(pants_engine_t *e)
{
    if (e == NULL)
        return NULL;
    unsigned n = __atomic_fetch_add(&e->next, 1, __ATOMIC_RELAXED);
    return e->loops[n % e->nloops];
}

pants_loop_t *pants__engine_accept_loop(pants_engine_t *e)
{
    return e->loops[e->accept_next++ % e->nloops];
}

static void *loop_thread(void *arg)
{
    pants__loop_run(arg);
    return NULL;
}

/* Block SIGPIPE on the calling thread; threads it creates inherit that. */
static void block_sigpipe(sigset_t *old)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, old);
}

/* Restore the caller's mask.  A SIGPIPE that the acceptor's writes left
 * pending on this thread is dropped first: unblocking would deliver it. */
static void unblock_sigpipe(const sigset_t *old)
{
    static const struct timespec zero = {0, 0};
    sigset_t set, pending;

    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    if (!sigismember(old, SIGPIPE) && sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE))
        while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR)
            ;
    pthread_sigmask(SIG_SETMASK, old, NULL);
}

static int start_workers(pants_engine_t *e)
{
    for (; e->nthreads_started < e->nloops; e->nthreads_started++) {
        int rc = pthread_create(&e->threads[e->nthreads_started], NULL, loop_thread,
                                e->loops[e->nthreads_started]);
        if (rc != 0)
            return -rc;
    }
    return 0;
}

static void join_workers(pants_engine_t *e)
{
    for (unsigned i = 0; i < e->nthreads_started; i++)
        pthread_join(e->threads[i], NULL);
    e->nthreads_started = 0;
    e->state = PANTS__ENGINE_DONE;
}

/* A thread failed to start: stop those that did and wait for them. */
static int abort_start(pants_engine_t *e, int rc)
{
    pants_engine_stop(e);
    join_workers(e);
    return rc;
}

/* Grow the process's descriptor table to what the limit allows (at most
 * FD_TABLE_MAX) before the loops run.  The kernel grows it by doubling as
 * descriptors are opened, and in a threaded process each growth waits for
 * an RCU grace period (milliseconds) inside accept(): during a burst of
 * connections the acceptor stalls there and the listen queue overflows,
 * each dropped SYN costing its client a one-second retransmit.  The table
 * never shrinks, so growing it once here costs one dup. */
static void grow_fd_table(const pants_engine_t *e)
{
    struct rlimit rl;
    int fd;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < 2)
        return;
    rlim_t want = rl.rlim_cur > FD_TABLE_MAX ? FD_TABLE_MAX : rl.rlim_cur;
    fd = fcntl(e->acceptor->wake_fd, F_DUPFD_CLOEXEC, (int)(want - 1));
    if (fd >= 0)
        close(fd);
}

static int begin_run(pants_engine_t *e)
{
    if (e == NULL)
        return -EINVAL;
    if (e->state != PANTS__ENGINE_NEW)
        return -EALREADY;
    e->state = PANTS__ENGINE_RUNNING;
    grow_fd_table(e);
    return 0;
}

int pants_engine_run(pants_engine_t *e)
{
    sigset_t old;
    int rc = begin_run(e);

    if (rc < 0)
        return rc;
    block_sigpipe(&old);
    rc = start_workers(e);
    if (rc < 0) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        return abort_start(e, rc);
    }
    pants__loop_run(e->acceptor);
    join_workers(e);
    unblock_sigpipe(&old);
    return 0;
}

int pants_engine_start(pants_engine_t *e)
{
    sigset_t old;
    int rc = begin_run(e);

    if (rc < 0)
        return rc;
    block_sigpipe(&old);
    rc = start_workers(e);
    if (rc == 0) {
        rc = -pthread_create(&e->acceptor_thread, NULL, loop_thread, e->acceptor);
        e->background = rc == 0;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc < 0)
        return abort_start(e, rc);
    /* From now on the thread rule holds: other threads get -EPERM. */
    for (unsigned i = 0; i < e->nloops; i++)
        pants__loop_wait_running(e->loops[i]);
    pants__loop_wait_running(e->acceptor);
    return 0;
}

int pants_engine_join(pants_engine_t *e)
{
    if (e == NULL || !e->background)
        return -EINVAL;
    if (pants_loop_current() != NULL)
        return -EDEADLK;
    pthread_join(e->acceptor_thread, NULL);
    e->background = false;
    join_workers(e);
    return 0;
}

void pants_engine_stop(pants_engine_t *e)
{
    int saved = errno; /* a signal handler must leave errno as it was */

    if (e == NULL)
        return;
    __atomic_store_n(&e->stop, 1, __ATOMIC_SEQ_CST);
    for (unsigned i = 0; i < e->nloops; i++)
        pants__loop_wake(e->loops[i]);
    pants__loop_wake(e->acceptor);
    errno = saved;
}

void pants_engine_free(pants_engine_t *e)
{
    if (e == NULL)
        return;
    if (e->background)
        pants_engine_join(e);
    /* Workers first: their last tasks may still post to the acceptor. */
    for (unsigned i = 0; i < e->nloops; i++)
        pants__loop_free(e->loops[i]);
    pants__loop_free(e->acceptor);
    free(e->loops);
    free(e->threads);
    free(e->dns_server);
    free(e);
    pants__live_add(-1);
}
