/** @file pants.h
 * The public API of pants, a multi-reactor network library.
 *
 * A channel wraps one socket; the application gives it callbacks; incoming
 * bytes are cut into on_read calls by a read delimiter.  An engine runs N
 * worker loops (one libevent event_base per thread) plus an acceptor loop
 * that owns every listening socket and hands new connections to the workers
 * round-robin.  Every channel is pinned to one loop, so all callbacks of one
 * channel run on one thread, one at a time.
 *
 * Threads, in short (see README for the whole story):
 *   - Before its engine runs, any thread may create and set up channels;
 *     what they ask for happens once their loop runs.
 *   - After that, a channel's functions are called on its loop's thread
 *     (from its callbacks, or through pants_loop_post/pants_stream_post).
 *     Such a call from another thread fails with -EPERM (debug builds also
 *     print a loud message), also after the loop has finished.  Plain
 *     accessors, marked "not checked" below, do not look: from another
 *     thread they race.  pants_stream_close hands the close to the loop.
 *   - Safe from anywhere: pants_engine_stop, pants_loop_post,
 *     pants_stream_new, pants_stream_post, pants_stream_ref/unref,
 *     pants_server_new, pants_server_broadcast, pants_server_connections,
 *     pants_server_listen, pants_server_close, pants_datagram_new and
 *     pants_datagram_close; also every other call whose "Thread" paragraph
 *     below says "Any thread" (the server setters, the accessors of the
 *     engine and its loops, addresses, errors).
 *
 * Each function's documentation ends with a "Thread" paragraph.  "s's loop
 * thread (or before run)" there means: the thread that runs the loop s is
 * pinned to, or any thread before the engine runs (pants_engine_run or
 * pants_engine_start); another thread gets -EPERM, unless the paragraph
 * adds "not checked".
 *
 * Errors: calls that act return 0 or a negative errno; constructors return
 * NULL and set errno.  A call that fails never runs the callback it would
 * have led to.  Callbacks never run from inside the call that caused them:
 * they run from the loop.
 *
 * Ownership: pants copies what it is given (callback tables, bytes to
 * send, option structs, addresses) unless a function says otherwise, and
 * never frees the application's own pointers (the data of a channel, the
 * argument of a posted function).  Streams, datagrams and timers are
 * freed by pants once they are done (a channel after its on_close
 * returns); a server's memory stays until its engine goes; an engine is
 * freed by the application, with pants_engine_free.
 */
#ifndef PANTS_H
#define PANTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Marks the functions libpants exports (default visibility while the
 * library itself is built, nothing for applications).  Not for
 * applications to use. */
#if defined(PANTS_BUILDING) && defined(__GNUC__)
#define PANTS_EXTERN __attribute__((visibility("default")))
#else
#define PANTS_EXTERN
#endif

/** An engine: N worker loops plus the acceptor (opaque).
 * Made by pants_engine_new, freed by pants_engine_free.
 * @ingroup pants_engine */
typedef struct pants_engine_s pants_engine_t;
/** One loop: a libevent event_base run by one thread (opaque).
 * Owned by its engine; valid until pants_engine_free.
 * @ingroup pants_engine */
typedef struct pants_loop_s pants_loop_t;
/** A byte stream over TCP or a Unix stream socket (opaque).
 * Made by pants_stream_new or by a server's accept; freed by pants after
 * its on_close returns (or after the last pants_stream_unref).
 * @ingroup pants_streams */
typedef struct pants_stream_s pants_stream_t;
/** A listening stream socket and its connections (opaque).
 * Made by pants_server_new; its memory stays until pants_engine_free.
 * @ingroup pants_servers */
typedef struct pants_server_s pants_server_t;
/** A packet socket: UDP or a Unix datagram socket (opaque).
 * Made by pants_datagram_new; freed by pants after its on_close returns.
 * @ingroup pants_datagrams */
typedef struct pants_datagram_s pants_datagram_t;
/** A scheduled call on one loop (opaque).
 * Made by the pants_timer_* functions; freed by pants once it has
 * finished or was cancelled.
 * @ingroup pants_timers */
typedef struct pants_timer_s pants_timer_t;

/** A socket address of any family.
 * A plain value: copy it freely.  pants_addr_parse and
 * pants_addr_format convert it from and to a string.
 * @ingroup pants_addresses */
typedef struct pants_addr_s {
    struct sockaddr_storage ss; /**< the address itself */
    socklen_t len;              /**< how many bytes of ss are meaningful */
} pants_addr_t;

/* ---- Errors ----------------------------------------------------------- */

/** @defgroup pants_errors Errors
 * Error codes and their names.
 *
 * Calls that act return 0 or a negative errno (-EINVAL, -EADDRINUSE, ...);
 * constructors return NULL and set errno.  Name-resolution failures have
 * codes of their own, PANTS_EAI_*, below every errno value, and so does a
 * TLS failure, PANTS_ETLS.  pants_strerror names every code.  A call that
 * fails never runs the callback it would have led to.  The library never
 * calls exit() or abort() on a runtime condition and never raises SIGPIPE.
 * @{
 */

/* Name-resolution failures: below every errno value. */
#define PANTS_EAI_ADDRFAMILY (-3001) /**< no address of the wanted family */
#define PANTS_EAI_AGAIN      (-3002) /**< temporary failure: try again later */
#define PANTS_EAI_BADFLAGS   (-3003) /**< invalid resolver flags */
#define PANTS_EAI_FAIL       (-3004) /**< permanent failure of the name server */
#define PANTS_EAI_FAMILY     (-3005) /**< address family not supported */
#define PANTS_EAI_MEMORY     (-3006) /**< out of memory while resolving */
#define PANTS_EAI_NODATA     (-3007) /**< the name has no address */
#define PANTS_EAI_NONAME     (-3008) /**< the name does not exist */
#define PANTS_EAI_SERVICE    (-3009) /**< invalid port / service */
#define PANTS_EAI_SOCKTYPE   (-3010) /**< socket type not supported */
#define PANTS_EAI_CANCELED   (-3011) /**< the lookup was cancelled */
#define PANTS_EAI_TIMEOUT    (-3012) /**< no answer from the name servers in time */

/** A TLS handshake, certificate check or record failed.
 * pants_strerror names the reason (OpenSSL's, or the verify result) of the
 * last such failure on the calling thread -- inside on_error /
 * on_connect_error, the one at hand. */
#define PANTS_ETLS (-3100)

/** The name of an error code.
 *
 * -E2BIG, which pants gives only for a regex delimiter that reached its
 * matching limits, is named for that.  A positive errno is named as its
 * negative.
 *
 * @param err  a negative errno, a PANTS_EAI_* code, PANTS_ETLS, or 0
 * @return the name ("success" for 0, "unknown error" for a code no one
 *         knows); never NULL.  A constant string the caller must not free
 *         or change -- except for PANTS_ETLS, whose text lives in a
 *         per-thread buffer that the next TLS failure on the same thread
 *         overwrites (copy it to keep it).
 * @par Thread
 * Any thread.
 */
PANTS_EXTERN const char *pants_strerror(int err);

/** @} */

/* ---- Addresses -------------------------------------------------------- */

/** @defgroup pants_addresses Addresses
 * One string names an address; the family follows from it.
 *
 * - `"1.2.3.4:80"`: IPv4; `"[::1]:80"`: IPv6.
 * - `":80"` or `"*:80"`: every interface, IPv6 dual-stack where
 *   available (listening only).
 * - `"unix:/run/app.sock"`: a Unix socket path; `"unix:@name"`: a Linux
 *   abstract Unix socket (not padded: len covers the name only).
 * - `"example.com:80"`: a host name, resolved without blocking the loop
 *   by pants_stream_connect and pants_datagram_write (never by parse).
 *
 * A malformed string is rejected by the call itself with -EINVAL; no
 * callback runs for it.
 * @{
 */

/** Parse a numeric or Unix address.
 *
 * Accepted: `"1.2.3.4:80"`, `"[::1]:80"`, `":80"` or `"*:80"` (every
 * interface, IPv6 any), `"unix:/path"`, `"unix:@abstract"`.  Host names
 * are not resolved here: they give -EINVAL.
 *
 * @param a        where the address goes (the caller's); left undefined
 *                 on failure
 * @param address  the string (NUL-terminated; not kept)
 * @retval 0        parsed
 * @retval -EINVAL  a or address NULL, a malformed string, or a host name
 * @par Thread
 * Any thread.
 */
PANTS_EXTERN int pants_addr_parse(pants_addr_t *a, const char *address);

/** Write an address as a string.
 *
 * The forms are those pants_addr_parse reads: `"1.2.3.4:80"`,
 * `"[::1]:80"`, `"unix:/p"`, `"unix:@name"`.  The result is always
 * NUL-terminated when len > 0, also on failure.
 *
 * @param a    the address
 * @param buf  the caller's buffer
 * @param len  its size in bytes (INET6_ADDRSTRLEN + 8 fits any IP
 *             address; a Unix one needs up to 6 + 108 + 1)
 * @retval 0             written
 * @retval -ENOSPC       buf is too small (it holds a cut string)
 * @retval -EAFNOSUPPORT a family other than AF_INET, AF_INET6, AF_UNIX
 * @retval -EINVAL       a or buf NULL
 * @par Thread
 * Any thread.
 */
PANTS_EXTERN int pants_addr_format(const pants_addr_t *a, char *buf, size_t len);

/** @} */

/* ---- Engine and loops ------------------------------------------------- */

/** @defgroup pants_engine Engine and loops
 * The worker loops, the acceptor, and running functions on a loop.
 *
 * pants_engine_new makes the worker loops (one per CPU by default) and
 * the acceptor; nothing runs yet, but channels can be set up on its loops.
 * pants_engine_run runs the acceptor on the calling thread and each worker
 * on a thread of its own; pants_engine_start runs all of them in the
 * background, and pants_engine_join waits.  pants_engine_stop, from any
 * thread or a signal handler, ends every channel, and then run / join
 * return.  pants_loop_post runs a function on a loop's thread: the way
 * other threads reach a channel.
 * @{
 */

/** Options of pants_engine_new.  Zero always means "the default". */
typedef struct pants_engine_options_s {
    unsigned threads;             /**< worker loops; 0 = the number of online CPUs */
    unsigned shutdown_timeout_ms; /**< how long stop lets streams flush; 0 = 5000 */
    const char *dns_server;       /**< "ip:port" of the one name server to ask;
                                     NULL = those of /etc/resolv.conf (copied) */
    unsigned dns_timeout_ms;      /**< per name-server query; 0 = 2000 */
    /* more options may follow; zero always means "the default" */
} pants_engine_options_t;

/** Create an engine; starts no thread.
 *
 * Its loops exist at once (pants_engine_loop), so channels can be set up
 * before run.
 *
 * @param opts  the options (copied, dns_server too), or NULL for every
 *              default
 * @return the engine, which the caller frees with pants_engine_free; NULL
 *         on failure, with errno ENOMEM, or the errno of the descriptors a
 *         loop needs (EMFILE, ENFILE, ...)
 * @par Thread
 * Any thread.
 */
PANTS_EXTERN pants_engine_t *pants_engine_new(const pants_engine_options_t *opts);

/** Run the engine until it stops.
 *
 * Runs the acceptor on the calling thread and each worker on a thread of
 * its own, and returns once pants_engine_stop was called and every
 * channel has closed.  SIGPIPE is blocked on the loop threads; the
 * caller's signal mask is restored on return.
 *
 * @param e  the engine
 * @retval 0          stopped, every channel closed
 * @retval -EINVAL    e is NULL
 * @retval -EALREADY  e ran (or was started) before
 * @retval -errno     the negative errno of a thread that could not start
 *                    (-EAGAIN, ...): the threads that did are stopped
 * @par Thread
 * Any thread that runs no pants loop; it becomes e's acceptor until run
 * returns.
 */
PANTS_EXTERN int pants_engine_run(pants_engine_t *e);

/** Run the engine in the background.
 *
 * The same as pants_engine_run, with the acceptor on a background thread
 * too; returns as soon as every loop runs (from then on, the thread rule
 * holds).  Pair with pants_engine_join.
 *
 * @param e  the engine
 * @retval 0          every loop runs
 * @retval -EINVAL    e is NULL
 * @retval -EALREADY  e ran (or was started) before
 * @retval -errno     the negative errno of a thread that could not start:
 *                    the threads that did are stopped
 * @par Thread
 * Any thread.
 */
PANTS_EXTERN int pants_engine_start(pants_engine_t *e);

/** Wait for an engine started with pants_engine_start.
 *
 * Returns once the engine has stopped (pants_engine_stop) and every
 * channel has closed.
 *
 * @param e  the engine
 * @retval 0         stopped
 * @retval -EINVAL   e is NULL, was not started, or was joined already
 * @retval -EDEADLK  called on a thread that runs a pants loop (of e or of
 *                   another engine)
 * @par Thread
 * Any thread that runs no pants loop.
 */
PANTS_EXTERN int pants_engine_join(pants_engine_t *e);

/** Stop the engine.
 *
 * Stops accepting, ends every stream and datagram (queued data is still
 * sent, for at most shutdown_timeout_ms; then they close) and closes
 * servers.  Timers keep firing while the streams flush (a timer may be
 * what finishes their work) and are cancelled, without running again,
 * when their loop ends.  Calling it before run makes the next run return
 * at once after closing.
 *
 * @param e  the engine; NULL is a no-op
 * @par Thread
 * Any thread, also a signal handler (async-signal-safe; errno is kept).
 */
PANTS_EXTERN void pants_engine_stop(pants_engine_t *e);

/** Free an engine.
 *
 * Call after run / join returned, or on one that never ran: its channels
 * are then freed without callbacks, and functions posted to its loops run
 * here, on the calling thread, so what they own is not lost.  An engine
 * started and not joined is joined first (so this waits until it has
 * stopped).  Drop stream references (pants_stream_unref) before.  Every
 * loop, server, stream, datagram and timer pointer of e is invalid
 * afterwards.
 *
 * @param e  the engine; NULL is a no-op
 * @par Thread
 * Any thread that runs none of e's loops.
 */
PANTS_EXTERN void pants_engine_free(pants_engine_t *e);

/** The number of worker loops.
 * @param e  the engine
 * @return the number of worker loops; 0 for NULL
 * @par Thread
 * Any thread.
 */
PANTS_EXTERN unsigned pants_engine_threads(const pants_engine_t *e);

/** A worker loop by number.
 * @param e      the engine
 * @param index  0 .. pants_engine_threads(e) - 1
 * @return the loop (owned by e), or NULL for a NULL e or an index out of
 *         range
 * @par Thread
 * Any thread.
 */
PANTS_EXTERN pants_loop_t *pants_engine_loop(pants_engine_t *e, unsigned index);

/** The next worker loop, round-robin.
 * @param e  the engine
 * @return the loop (owned by e), or NULL for a NULL e
 * @par Thread
 * Any thread.
 */
PANTS_EXTERN pants_loop_t *pants_engine_next_loop(pants_engine_t *e);

/** The loop the calling thread runs.
 * @return the loop: a worker, or the acceptor while it runs server
 *         callbacks; NULL on any other thread
 * @par Thread
 * Any thread (the answer is about the calling one).
 */
PANTS_EXTERN pants_loop_t *pants_loop_current(void);

/** A loop's index.
 * @param l  the loop
 * @return a worker's index, 0 .. pants_engine_threads() - 1; the
 *         acceptor's is pants_engine_threads(); 0 for NULL
 * @par Thread
 * Any thread.
 */
PANTS_EXTERN unsigned pants_loop_index(const pants_loop_t *l);

/** The engine a loop belongs to.
 * @param l  the loop
 * @return the engine, or NULL for NULL
 * @par Thread
 * Any thread.
 */
PANTS_EXTERN pants_engine_t *pants_loop_engine(const pants_loop_t *l);

/** A function for a loop or timer to run.
 * @param arg  the argument given with it (the application's) */
typedef void (*pants_fn_t)(void *arg);

/** Run a function on a loop's thread.
 *
 * fn(arg) runs on l's thread, after everything posted to l before it
 * (FIFO), never inside this call.  Functions still queued when the engine
 * is freed run in pants_engine_free, on its caller's thread.
 *
 * @param l    the loop
 * @param fn   the function
 * @param arg  its argument: the caller's, untouched by pants (fn frees it
 *             if it must; when the post fails, fn never runs)
 * @retval 0           queued
 * @retval -EINVAL     l or fn NULL
 * @retval -ENOMEM     out of memory
 * @retval -ESHUTDOWN  l has finished: fn never runs
 * @par Thread
 * Any thread, also l's own.
 */
PANTS_EXTERN int pants_loop_post(pants_loop_t *l, pants_fn_t fn, void *arg);

/** @} */

/* ---- Timers ----------------------------------------------------------- */

/** @defgroup pants_timers Timers
 * Scheduled calls on one loop: callback, loop, defer, cycle.
 *
 * Each constructor returns a handle that stays valid until the timer has
 * finished (for callback and defer: once fn has returned) or was
 * cancelled; NULL with errno set on failure.  The handle is owned by
 * pants: never free it, cancel it.  Call them on l's thread, or on any
 * thread before the engine runs.  fn runs on l's thread.  Delays count
 * from the moment of the call, and never run out early.  Timers keep
 * firing while a stopping engine flushes its streams, and are freed,
 * without a call, when the loop ends.
 * @{
 */

/** Run fn(arg) once, at the loop's next iteration.
 * @param l    the loop
 * @param fn   the function
 * @param arg  its argument (the caller's)
 * @return the timer (valid until fn has returned, or cancelled); NULL
 *         with errno EINVAL (l or fn NULL), ENOMEM, EPERM (another thread
 *         than l's once the loop runs) or ESHUTDOWN (l has finished)
 * @par Thread
 * l's thread (or before run).
 */
PANTS_EXTERN pants_timer_t *pants_timer_callback(pants_loop_t *l, pants_fn_t fn,
                                                 void *arg); /* once, next iteration */
/** Run fn(arg) at every iteration of the loop, until cancelled.
 * The loop still polls between two runs.
 * @param l    the loop
 * @param fn   the function
 * @param arg  its argument (the caller's)
 * @return the timer (valid until cancelled); NULL with errno as for
 *         pants_timer_callback
 * @par Thread
 * l's thread (or before run).
 */
PANTS_EXTERN pants_timer_t *pants_timer_loop(pants_loop_t *l, pants_fn_t fn, void *arg); /* every iteration */
/** Run fn(arg) once, delay_ms from now.
 * @param l         the loop
 * @param delay_ms  the delay; 0 = the next iteration
 * @param fn        the function
 * @param arg       its argument (the caller's)
 * @return the timer (valid until fn has returned, or cancelled); NULL with
 *         errno as for pants_timer_callback
 * @par Thread
 * l's thread (or before run).
 */
PANTS_EXTERN pants_timer_t *pants_timer_defer(pants_loop_t *l, uint64_t delay_ms, pants_fn_t fn,
                                              void *arg); /* once, after delay_ms */
/** Run fn(arg) every interval_ms, until cancelled.
 * The k-th run is due k intervals after the call; a run that fell a whole
 * interval behind (a busy loop) goes on an interval from its late run
 * instead of running in a burst.
 * @param l            the loop
 * @param interval_ms  the interval; 0 = every iteration (as
 *                     pants_timer_loop)
 * @param fn           the function
 * @param arg          its argument (the caller's)
 * @return the timer (valid until cancelled); NULL with errno as for
 *         pants_timer_callback
 * @par Thread
 * l's thread (or before run).
 */
PANTS_EXTERN pants_timer_t *pants_timer_cycle(pants_loop_t *l, uint64_t interval_ms, pants_fn_t fn,
                                              void *arg); /* every interval_ms */

/** Cancel a timer: fn will not start again, and t is freed.
 *
 * Cancel a timer at most once, and only while its handle is valid.
 *
 * On t's loop thread, also from inside t's own fn (t is then freed once fn
 * returns), or on any thread before the engine runs: t is freed at once.
 *
 * From any other thread while the engine runs: the cancel is handed to the
 * loop, which frees t, with this promise: once pants_timer_cancel has
 * returned, fn does not start again; and if fn is running on the loop at
 * that moment, the call waits until fn has returned -- so the caller may
 * free fn's argument right after.  fn must therefore never wait on the
 * cancelling thread (on a lock the canceller holds, on a task posted to the
 * canceller's loop, or by cancelling a timer whose fn runs there), or both
 * wait forever.  A callback or defer timer is freed as soon as its fn
 * returns, so another thread may cancel one only while it knows that fn
 * has not returned yet.  After the loop has finished, a cancelled timer is
 * freed by pants_engine_free.
 *
 * @param t  the timer; NULL is a no-op
 * @par Thread
 * Any thread, as described above.
 */
PANTS_EXTERN void pants_timer_cancel(pants_timer_t *t);

/** @} */

/* ---- Streams ---------------------------------------------------------- */

/** @defgroup pants_streams Streams
 * Connected byte streams, TCP or Unix: connect, write, read, end, close.
 *
 * pants_stream_new makes a stream pinned to one loop;
 * pants_stream_connect connects it (a server's accepted connections are
 * streams too).  Incoming bytes are cut into on_read calls by the read
 * delimiter (@ref pants_delimiters); pants_stream_write queues bytes, and
 * everything written in one callback leaves in one system call.
 * pants_stream_end sends what is queued, then closes; pants_stream_close
 * drops it.  on_close runs exactly once, always last, and then pants
 * frees the stream.
 *
 * Threads: every callback of s runs on s's loop thread, never inside the
 * call that caused it.  The stream calls are made on that thread (from
 * s's callbacks, a timer or a function posted there), or on any thread
 * before the engine runs; from another thread they fail with -EPERM once
 * the loop runs.  Any thread may call pants_stream_new, pants_stream_post,
 * pants_stream_ref and pants_stream_unref.
 * @{
 */

/** The callbacks of a stream.
 *
 * Copied by pants_stream_new, pants_stream_set_callbacks and
 * pants_server_new (for its connections).  Every member may be NULL: it is
 * then not called, and where a member says "NULL = ...", that happens
 * instead.  Each runs on s's loop thread, never inside the call that
 * caused it; each may call any function on s, pants_stream_close and
 * pants_stream_end included.
 */
typedef struct pants_stream_callbacks_s {
    /** The connection is up (after the TLS handshake, with TLS); for an
     * accepted connection, after the server's on_accept.
     * @param s  the stream */
    void (*on_connect)(pants_stream_t *s);
    /** A connect failed: -ECONNREFUSED, -ETIMEDOUT (the connect timeout),
     * a PANTS_EAI_* code, PANTS_ETLS, or another connect errno.  s stays
     * usable: connect again or close it.  NULL = close.
     * @param s    the stream
     * @param err  the negative error code */
    void (*on_connect_error)(pants_stream_t *s,
                             int err); /* stays usable (connect again or close), but after
                                          PANTS_ETLS it closes once this returns; NULL = close */
    /** One frame, cut by the read delimiter.
     *
     * data belongs to pants and is valid only during the call: copy what
     * you keep.  len may be 0 for an empty frame (read_until or read_regex
     * with a delimiter right at the start, such as an empty line).  After
     * s is closed or ended inside on_read, no further on_read follows.
     * @param s     the stream
     * @param data  the frame's bytes (without the delimiter)
     * @param len   how many */
    void (*on_read)(pants_stream_t *s, const void *data, size_t len);
    /** Everything queued has been handed to the kernel.
     * @param s  the stream */
    void (*on_write)(pants_stream_t *s); /* everything queued has been handed to the kernel */
    /** Exactly once, always last; s is freed after it returns (unless a
     * reference from pants_stream_ref keeps its memory).
     * @param s  the stream */
    void (*on_close)(pants_stream_t *s); /* exactly once, always last; s is freed after it returns */
    /** More bytes wait for a frame than the read limit allows.  NULL =
     * close; a stream still over the limit and open after it is closed.
     * @param s  the stream */
    void (*on_overflow)(pants_stream_t *s); /* read buffer passed its limit; NULL = close */
    /** An I/O error other than EOF or reset (those close quietly): the
     * socket's errno, PANTS_ETLS, -ETIMEDOUT (a server's TLS handshake),
     * -E2BIG or -EILSEQ (a regex delimiter), a framer's error or -EPROTO,
     * -ENOBUFS (a broadcast past the write limit).  s closes after it
     * returns, and on_close follows.  NULL = close.
     * @param s    the stream
     * @param err  the negative error code */
    void (*on_error)(pants_stream_t *s, int err); /* I/O error other than EOF or reset; NULL = close */
    /** pants_stream_pending() rose past the high watermark.  NULL = pause
     * reading s until it falls to the low watermark.
     * @param s  the stream */
    void (*on_write_high)(
        pants_stream_t *s); /* pending() rose past the high watermark; NULL = pause reading s */
    /** pants_stream_pending() fell to the low watermark after a high.
     * @param s  the stream */
    void (*on_write_low)(pants_stream_t *s); /* pending() fell to the low watermark after a high */
    /** A time limit ran out; s stays open unless this closes it, and that
     * limit then starts over.  NULL = close (queued data dropped).
     * @param s     the stream
     * @param kind  the PANTS_TIMEOUT_* that ran out */
    void (*on_timeout)(pants_stream_t *s, int kind); /* a PANTS_TIMEOUT_* ran out; NULL = close */
} pants_stream_callbacks_t;

/** A new, unconnected stream pinned to a loop.
 *
 * The stream lives until on_close has returned: close or end it (or
 * connect it, and let the peer or an error close it).
 *
 * @param l     the loop s is pinned to
 * @param cb    the callbacks (copied); NULL = no callbacks
 * @param data  the application's pointer, returned by pants_stream_data;
 *              pants never touches or frees it
 * @return the stream, owned by pants (freed after its on_close); NULL on
 *         failure, with errno EINVAL (l NULL), ENOMEM, or ESHUTDOWN (l has
 *         finished)
 * @par Thread
 * Any thread.
 */
PANTS_EXTERN pants_stream_t *pants_stream_new(pants_loop_t *l, const pants_stream_callbacks_t *cb,
                                              void *data);

/** Connect to an address.
 *
 * `"host:port"`, `"[v6]:port"`, `"unix:/path"` or `"unix:@name"`.
 * Numeric addresses connect at once, names are resolved without blocking:
 * ".invalid" names fail at once, then the hosts file, "localhost" and
 * "*.localhost" are the loopback, else A and AAAA queries (IPv4 addresses
 * are tried first).  on_connect or on_connect_error (-ECONNREFUSED,
 * -ETIMEDOUT, PANTS_EAI_*) follows.
 *
 * @param s        the stream
 * @param address  where to (not kept)
 * @retval 0          connecting: a callback follows
 * @retval -EINVAL    s or address NULL, or a malformed address (no
 *                    callback)
 * @retval -EISCONN   s is connected
 * @retval -EALREADY  s is connecting
 * @retval -EPIPE     s is closed
 * @retval -ENOMEM    out of memory
 * @retval -EPERM     another thread than s's loop's, once it runs
 * @par Thread
 * s's loop thread (or before run).
 */
PANTS_EXTERN int pants_stream_connect(pants_stream_t *s, const char *address);

/** Queue bytes to send.
 *
 * Writes made in one callback go out together.  Before the connection is
 * up, they wait for it.  on_write runs once the queue is empty again.
 *
 * @param s     the stream
 * @param data  the bytes (copied: the caller keeps them)
 * @param len   how many; 0 queues nothing
 * @retval 0         queued
 * @retval -EPIPE    after end/close
 * @retval -EINVAL   s NULL, or data NULL with len > 0
 * @retval -ENOBUFS  the bytes would take the queue past the write limit
 *                   (pants_stream_set_write_limit): nothing is queued
 * @retval -ENOMEM   out of memory
 * @retval -EPERM    another thread than s's loop's, once it runs
 * @par Thread
 * s's loop thread (or before run).
 */
PANTS_EXTERN int pants_stream_write(pants_stream_t *s, const void *data, size_t len);

/** Queue a range of a file to send, with sendfile.
 *
 * Sent in order with the other writes.  An offset at or past the end
 * queues nothing; nbytes past the end is cut at the end.  File ranges
 * count toward the watermarks, not toward the write limit.
 *
 * @param s       the stream
 * @param fd      a regular file open for reading; it stays the caller's
 *                (pants duplicates it) and may be closed at once
 * @param offset  where to start
 * @param nbytes  how many bytes; 0 = to the end of the file
 * @retval 0        queued (or nothing to send)
 * @retval -EBADF   fd is not an open descriptor
 * @retval -EINVAL  s NULL, a negative offset, or fd is not a regular file
 * @retval -EPIPE   after end/close
 * @retval -ENOMEM  out of memory
 * @retval -EMFILE  no descriptor left to duplicate fd
 * @retval -EPERM   another thread than s's loop's, once it runs
 * @par Thread
 * s's loop thread (or before run).
 */
PANTS_EXTERN int pants_stream_write_file(pants_stream_t *s, int fd, off_t offset, size_t nbytes);

/** Bound the time a connect may take.
 *
 * Applies to the next connects, and to one under way (counted from now):
 * when the lookup plus the connect (plus a client's TLS handshake) take
 * longer than ms, the attempt is given up and on_connect_error gets
 * -ETIMEDOUT.  A connected or closed stream ignores it.
 *
 * @param s   the stream
 * @param ms  the bound; 0 (the default) = no bound but the kernel's
 * @retval 0        set
 * @retval -EINVAL  s NULL, or ms beyond 2^31 s
 * @retval -ENOMEM  out of memory
 * @retval -EPERM   another thread than s's loop's, once it runs
 * @par Thread
 * s's loop thread (or before run).
 */
PANTS_EXTERN int pants_stream_set_connect_timeout(pants_stream_t *s, uint64_t ms);

/** Stop reading.
 *
 * No on_read runs and the socket is not read until resume, so the
 * kernel's buffers fill and TCP slows the peer down (back-pressure, such
 * as while a proxy's other side drains its queue: see
 * pants_stream_pending).  Frames already buffered wait too; a pause inside
 * on_read takes effect before the next frame.  Writing goes on.  A reset
 * peer still closes the stream; a peer's orderly close is seen after
 * resume, once the bytes before it were delivered.
 *
 * @param s  the stream
 * @retval 0        paused (also when it was)
 * @retval -EINVAL  s NULL
 * @retval -EPIPE   s is closed
 * @retval -EPERM   another thread than s's loop's, once it runs
 * @par Thread
 * s's loop thread (or before run).
 */
PANTS_EXTERN int pants_stream_pause_reading(pants_stream_t *s);
/** Read again after pants_stream_pause_reading.
 *
 * What waited is cut and delivered from the loop.  Reading stays held
 * while the high watermark holds it.
 *
 * @param s  the stream
 * @retval 0        resumed (also when it was not paused)
 * @retval -EINVAL  s NULL
 * @retval -EPIPE   s is closed
 * @retval -EPERM   another thread than s's loop's, once it runs
 * @par Thread
 * s's loop thread (or before run).
 */
PANTS_EXTERN int pants_stream_resume_reading(pants_stream_t *s);
/** Is reading held, by pause_reading or by the high watermark?
 * @param s  the stream
 * @return true while held; false for NULL
 * @par Thread
 * s's loop thread (or before run); not checked.
 */
PANTS_EXTERN bool pants_stream_is_reading_paused(const pants_stream_t *s);

/** @} */

/* ---- Flow control and time limits ------------------------------------- */

/** @defgroup pants_flow Flow control and time limits
 * No peer may make a server hold memory or a connection without bound.
 *
 * Watermarks: when pending() rises past high, on_write_high runs (from the
 * loop); when that callback is NULL the stream's own reading pauses (no
 * on_read, the socket is not read, TCP slows the peer down) until pending()
 * falls to low.  When pending() falls to low after a high, on_write_low
 * runs (and an automatic pause ends).  An automatic pause and
 * pants_stream_pause_reading are independent: reading runs only when
 * neither holds it.  Defaults: low 256 KiB, high 1 MiB; file ranges queued
 * with write_file count.  So a request/response server is bounded out of
 * the box: a peer that sends without reading costs at most about the high
 * watermark (plus what its callbacks write in one go).
 *
 * Time limits (pants_stream_set_timeout) close a stream that stalls, and
 * a server gives every connection it accepts the same starting settings
 * (pants_server_set_stream_options, pants_server_set_max_connections).
 * @{
 */

/** Set the write watermarks of a stream.
 *
 * See the group's description for what they do.
 *
 * @param s     the stream
 * @param low   the low watermark, in bytes of pending()
 * @param high  the high watermark; 0 = no watermarks
 * @retval 0        set
 * @retval -EINVAL  s NULL, or low >= high with high > 0
 * @retval -EPIPE   s is closed
 * @retval -ENOMEM  out of memory
 * @retval -EPERM   another thread than s's loop's, once it runs
 * @par Thread
 * s's loop thread (or before run).
 */
PANTS_EXTERN int pants_stream_set_write_watermarks(pants_stream_t *s, size_t low, size_t high);

/** Bound the bytes the write queue may hold in memory.
 *
 * A write that would take the queue past max_bytes returns -ENOBUFS and
 * queues nothing (file ranges take no memory and do not count).
 * pants_server_broadcast closes a connection it cannot queue to with
 * on_error(-ENOBUFS).
 *
 * @param s          the stream
 * @param max_bytes  the limit; 0 (the default) = no limit
 * @retval 0        set
 * @retval -EINVAL  s NULL
 * @retval -EPIPE   s is closed
 * @retval -ENOMEM  out of memory
 * @retval -EPERM   another thread than s's loop's, once it runs
 * @par Thread
 * s's loop thread (or before run).
 */
PANTS_EXTERN int pants_stream_set_write_limit(pants_stream_t *s, size_t max_bytes);

/** Is pending() not above the high watermark?
 *
 * A false answer on s's loop thread counts as the high: on_write_low
 * (with an on_write_high before it) follows once pending() is back at the
 * low watermark, also when what the callback wrote is sent as it returns.
 * A producer may write while this says true and wait for on_write_low.
 * @param s  the stream
 * @return true if there is room (also without watermarks); false for NULL
 * @par Thread
 * s's loop thread; not checked.
 */
PANTS_EXTERN bool pants_stream_is_writable(const pants_stream_t *s);

/** The time limits of a stream: the kind argument of
 * pants_stream_set_timeout and on_timeout. */
enum {
    PANTS_TIMEOUT_IDLE = 1, /**< no byte was read and none was sent for ms */
    PANTS_TIMEOUT_READ,     /**< reading is on (not paused) and no byte arrived for ms */
    PANTS_TIMEOUT_WRITE,    /**< bytes are queued and none of them was sent for ms */
    PANTS_TIMEOUT_FRAME     /**< the bytes of an unfinished frame have waited ms since the
                                 first of them arrived (a trickling sender cannot hold a
                                 frame open) */
};

/** Set one time limit of a stream.
 *
 * A timeout never runs early (it may run late by up to a few ms, more on
 * a busy loop), and runs on the stream's loop: on_timeout(s, kind), or
 * when that is NULL the stream is closed (queued data dropped).  If the
 * stream is still open after on_timeout returns, that timeout starts
 * over; setting a timeout again restarts it.  They count while the stream
 * is connected (a connect is bounded by pants_stream_set_connect_timeout).
 * Timeouts cost no system call, allocation or timer change per message.
 *
 * @param s     the stream
 * @param kind  a PANTS_TIMEOUT_* value
 * @param ms    the limit in milliseconds; 0 = off (the default)
 * @retval 0        set
 * @retval -EINVAL  s NULL, an unknown kind, or ms beyond 2^31 s
 * @retval -EPIPE   s is closed
 * @retval -ENOMEM  out of memory
 * @retval -EPERM   another thread than s's loop's, once it runs
 * @par Thread
 * s's loop thread (or before run).
 */
PANTS_EXTERN int pants_stream_set_timeout(pants_stream_t *s, int kind, uint64_t ms);

/** The starting settings of every connection a server accepts.
 * See pants_server_set_stream_options.  Zero = the default, field by
 * field. */
typedef struct pants_stream_options_s {
    size_t read_limit;         /**< the read limit; 0 = 64 KiB */
    size_t write_low;          /**< the low watermark; 0 = 256 KiB (a quarter of a smaller write_high) */
    size_t write_high;         /**< the high watermark; 0 = 1 MiB; SIZE_MAX = no watermarks */
    size_t write_limit;        /**< the write limit; 0 = none */
    uint64_t idle_timeout_ms;  /**< PANTS_TIMEOUT_IDLE; 0 = none, and so on for the others */
    uint64_t read_timeout_ms;  /**< PANTS_TIMEOUT_READ */
    uint64_t write_timeout_ms; /**< PANTS_TIMEOUT_WRITE */
    uint64_t frame_timeout_ms; /**< PANTS_TIMEOUT_FRAME; also bounds a TLS handshake and a PROXY
                                    header (default 10 s and 5 s) */
} pants_stream_options_t;

/** @} */

/** @addtogroup pants_streams
 * @{
 */

/** Send what is queued, then close.
 *
 * Reading stops at once; on_close follows once the queue has gone out
 * (at once if nothing is queued, or if connect was never called).  With
 * TLS, a close_notify goes last.
 *
 * @param s  the stream
 * @retval 0        ending (also when already ending)
 * @retval -EINVAL  s NULL
 * @retval -EPIPE   s is closed
 * @retval -EPERM   another thread than s's loop's, once it runs
 * @par Thread
 * s's loop thread (or before run).
 */
PANTS_EXTERN int pants_stream_end(pants_stream_t *s);

/** Close now.
 *
 * Queued data is dropped; on_close follows from the loop.  Calling it
 * again, or after end, is harmless.
 *
 * @param s  the stream; NULL is a no-op
 * @par Thread
 * s's loop thread (or before run).  From another thread while the loop
 * runs, the close is handed to the loop (as pants_stream_post would), so
 * it is not lost; debug builds report the misuse.
 */
PANTS_EXTERN void pants_stream_close(pants_stream_t *s);

/** Set the application's pointer of a stream.
 * @param s     the stream; NULL is a no-op
 * @param data  the pointer (the application's: pants never touches or
 *              frees it)
 * @par Thread
 * s's loop thread (or before run); not checked.
 */
PANTS_EXTERN void pants_stream_set_data(pants_stream_t *s, void *data);
/** The application's pointer of a stream.
 * @param s  the stream
 * @return what pants_stream_new or pants_stream_set_data gave; NULL for
 *         NULL
 * @par Thread
 * s's loop thread (or before run); not checked.
 */
PANTS_EXTERN void *pants_stream_data(const pants_stream_t *s);
/** Replace the callbacks of a stream.
 * For an accepted connection, the server's table is replaced for this
 * connection only.  Out of memory, the old callbacks stay (this call
 * cannot say so).
 * @param s   the stream; NULL is a no-op
 * @param cb  the new callbacks (copied); NULL = none
 * @par Thread
 * s's loop thread (or before run); not checked.
 */
PANTS_EXTERN void pants_stream_set_callbacks(pants_stream_t *s, const pants_stream_callbacks_t *cb);
/** The loop a stream is pinned to.
 * @param s  the stream
 * @return the loop; NULL for NULL
 * @par Thread
 * Any thread, while s's memory is alive (it never changes).
 */
PANTS_EXTERN pants_loop_t *pants_stream_loop(const pants_stream_t *s);
/** The server that accepted a stream.
 * @param s  the stream
 * @return the server; NULL for clients (and for NULL)
 * @par Thread
 * Any thread, while s's memory is alive (it never changes).
 */
PANTS_EXTERN pants_server_t *pants_stream_server(const pants_stream_t *s);
/** The address family of a stream.
 * @param s  the stream
 * @return AF_INET, AF_INET6 or AF_UNIX once connecting or connected;
 *         AF_UNSPEC before (and for NULL)
 * @par Thread
 * s's loop thread (or before run); not checked.
 */
PANTS_EXTERN int pants_stream_family(const pants_stream_t *s);
/** The peer's address.
 * Behind a PROXY protocol header (pants_server_set_proxy_protocol): the
 * client's address it names.
 * @param s  the stream
 * @param a  where the address goes (the caller's)
 * @retval 0          written
 * @retval -EINVAL    s or a NULL
 * @retval -ENOTCONN  s is not connected (not yet, or no more)
 * @retval -errno     the socket's (getpeername)
 * @par Thread
 * s's loop thread (or before run); not checked.
 */
PANTS_EXTERN int pants_stream_remote_address(const pants_stream_t *s, pants_addr_t *a);
/** The local address.
 * Behind a PROXY protocol header: the address it names.
 * @param s  the stream
 * @param a  where the address goes (the caller's)
 * @retval 0          written
 * @retval -EINVAL    s or a NULL
 * @retval -ENOTCONN  s is not connected (not yet, or no more)
 * @retval -errno     the socket's (getsockname)
 * @par Thread
 * s's loop thread (or before run); not checked.
 */
PANTS_EXTERN int pants_stream_local_address(const pants_stream_t *s, pants_addr_t *a);
/** Bytes queued, not yet handed to the kernel.
 * File ranges count; with TLS, plaintext bytes.
 * @param s  the stream
 * @return the bytes; 0 for NULL
 * @par Thread
 * s's loop thread (or before run); not checked.
 */
PANTS_EXTERN size_t pants_stream_pending(const pants_stream_t *s);
/** Is the stream connected?
 * @param s  the stream
 * @return true once the connection is up (after the TLS handshake, with
 *         TLS) and until end/close; false for NULL
 * @par Thread
 * s's loop thread (or before run); not checked.
 */
PANTS_EXTERN bool pants_stream_is_connected(const pants_stream_t *s);
/** The socket of a stream, for socket options only.
 * SO_KEEPALIVE, SO_SNDBUF, TCP_NODELAY (which pants turns on), ...;
 * reading, writing or closing it breaks s.
 * @param s  the stream
 * @return the descriptor, owned by s; -1 before it has one, once closed,
 *         and for NULL
 * @par Thread
 * s's loop thread (or before run); not checked.
 */
PANTS_EXTERN int pants_stream_fd(const pants_stream_t *s);

/** Keep the memory of a stream alive past on_close.
 * Not the connection: a referenced stream closes as any other, but its
 * pointer stays valid, so another thread may hold it; the last unref
 * frees it, on its loop.
 * @param s  the stream; NULL is a no-op
 * @par Thread
 * Any thread, until pants_engine_free.
 */
PANTS_EXTERN void pants_stream_ref(pants_stream_t *s);
/** Drop a reference taken with pants_stream_ref.
 * @param s  the stream; NULL is a no-op
 * @par Thread
 * Any thread, until pants_engine_free.
 */
PANTS_EXTERN void pants_stream_unref(pants_stream_t *s);

/** Run a function on a stream's loop if the stream is still open by then.
 *
 * fn(s, arg) runs on s's loop thread, in order with what else was posted
 * to that loop; if s has closed by then, fn is not called (so an arg that
 * must be freed needs another owner, or use pants_loop_post, which always
 * runs its function).  s's memory is kept until then.
 *
 * @param s    the stream
 * @param fn   the function
 * @param arg  its argument (the caller's; pants never frees it)
 * @retval 0           queued
 * @retval -EINVAL     s or fn NULL
 * @retval -ENOMEM     out of memory
 * @retval -ESHUTDOWN  s's loop has finished: fn never runs
 * @par Thread
 * Any thread.
 */
PANTS_EXTERN int pants_stream_post(pants_stream_t *s, void (*fn)(pants_stream_t *, void *), void *arg);

/** @} */

/** @defgroup pants_delimiters Read delimiters
 * How incoming bytes are cut into on_read calls.
 *
 * A delimiter may change at any time, inside on_read too: bytes already
 * buffered are then cut with the new delimiter before any new byte is
 * read.  Invalid arguments return -EINVAL and leave the old delimiter in
 * place; a closed stream (from on_close on) gives -EPIPE.  When the peer
 * closes its side, the frames already complete are delivered first; what
 * the application queued (in those on_read calls too) is still sent, as
 * with pants_stream_end; then on_close.  A partial frame left at that
 * point is dropped.
 *
 * Thread: as every stream call, s's loop thread (or before run); another
 * thread gets -EPERM once the loop runs.
 * @{
 */

/** Deliver everything, as it arrives (the default).
 * @param s  the stream
 * @retval 0        set
 * @retval -EINVAL  s NULL
 * @retval -EPIPE   s is closed
 * @retval -EPERM   another thread than s's loop's, once it runs
 * @par Thread
 * s's loop thread (or before run).
 */
PANTS_EXTERN int pants_stream_read_any(pants_stream_t *s); /* everything, as it arrives (default) */
/** Cut at a delimiter: each frame is the bytes up to (not including) it.
 * The delimiter is dropped; two in a row give an empty frame (len 0).
 * @param s      the stream
 * @param delim  the delimiter's bytes (copied)
 * @param len    its length, >= 1
 * @retval 0        set
 * @retval -EINVAL  s or delim NULL, or len 0
 * @retval -EPIPE   s is closed
 * @retval -ENOMEM  out of memory
 * @retval -EPERM   another thread than s's loop's, once it runs
 * @par Thread
 * s's loop thread (or before run).
 */
PANTS_EXTERN int pants_stream_read_until(pants_stream_t *s, const void *delim, size_t len);
/** Cut frames of exactly n bytes.
 * @param s  the stream
 * @param n  the frame length, >= 1 (at most SSIZE_MAX)
 * @retval 0        set
 * @retval -EINVAL  s NULL, n 0 or beyond SSIZE_MAX
 * @retval -EPIPE   s is closed
 * @retval -EPERM   another thread than s's loop's, once it runs
 * @par Thread
 * s's loop thread (or before run).
 */
PANTS_EXTERN int pants_stream_read_exact(pants_stream_t *s, size_t n);
/** Cut at the first match of a PCRE2 pattern.
 *
 * Each frame is the bytes before the first match; the match is dropped.
 * The first complete match over the bytes that have arrived cuts a frame
 * at once, even if later bytes could have made it longer.
 *
 * Matching is bounded, since the peer chooses the bytes: the searches for
 * one frame may take at most 2^17 steps plus 16 per pending byte together
 * (about 1.2 million at the default 64 KiB read limit: of the order of
 * 10 ms of CPU), nest backtracking only so deep, and use little memory.  A
 * partial match is searched again from its start as more bytes arrive, and
 * those searches count toward the same frame.  Ordinary delimiters take a
 * step or two per byte; a pattern that backtracks without end, such as
 * `(a+)+b` over a run of a's, or whose work grows with the square of a
 * run, such as `(a|b)*c`, reaches a limit, and the stream is then closed
 * with on_error(-E2BIG) (pants_strerror names it), then on_close.  Bytes
 * that are not UTF-8 under a `(*UTF)` pattern close it with -EILSEQ.
 *
 * @param s        the stream
 * @param pattern  the pattern, NUL-terminated (compiled here; not kept)
 * @retval 0        set
 * @retval -EINVAL  s or pattern NULL, a pattern that does not compile, or
 *                  one that can match the empty string
 * @retval -EPIPE   s is closed
 * @retval -ENOMEM  out of memory
 * @retval -EPERM   another thread than s's loop's, once it runs
 * @par Thread
 * s's loop thread (or before run).
 */
PANTS_EXTERN int pants_stream_read_regex(pants_stream_t *s, const char *pattern);

/** A user framer: finds the next frame in the bytes that wait.
 *
 * Called on the stream's loop thread, whenever bytes wait for a frame.
 * A length or skip that does not fit in len closes the stream with
 * on_error(-EPROTO).
 *
 * @param buf   the bytes that wait (pants'; valid during the call only)
 * @param len   how many, > 0
 * @param skip  how many bytes after the frame to drop, such as its
 *              delimiter; preset to 0
 * @param arg   the argument given to pants_stream_read_framed
 * @return the length of the next frame (> 0), 0 for "need more bytes",
 *         or a negative errno to reject the stream (it is then closed with
 *         on_error)
 */
typedef ssize_t (*pants_framer_t)(const void *buf, size_t len, size_t *skip, void *arg);
/** Cut frames with a user framer.
 * @param s    the stream
 * @param fn   the framer
 * @param arg  its argument (the caller's; pants never frees it)
 * @retval 0        set
 * @retval -EINVAL  s or fn NULL
 * @retval -EPIPE   s is closed
 * @retval -EPERM   another thread than s's loop's, once it runs
 * @par Thread
 * s's loop thread (or before run).
 */
PANTS_EXTERN int pants_stream_read_framed(pants_stream_t *s, pants_framer_t fn, void *arg);

/** Bound the bytes that may wait for a frame.
 *
 * Never below what the delimiter needs (read_exact(n) always allows n).
 * Past it, on_overflow runs (NULL: close); if the stream is still over the
 * limit and open afterwards, it is closed.
 *
 * @param s          the stream
 * @param max_bytes  the limit; default 64 KiB
 * @retval 0        set
 * @retval -EINVAL  s NULL, or max_bytes 0
 * @retval -EPIPE   s is closed
 * @retval -EPERM   another thread than s's loop's, once it runs
 * @par Thread
 * s's loop thread (or before run).
 */
PANTS_EXTERN int pants_stream_set_read_limit(pants_stream_t *s, size_t max_bytes);

/** @} */

/* ---- Servers ---------------------------------------------------------- */

/** @defgroup pants_servers Servers
 * Listening stream sockets and the connections they accept.
 *
 * A server belongs to the engine's acceptor, not to a worker: each
 * connection it accepts is a pants_stream_t with the server's connection
 * callbacks, pinned to the worker loop the acceptor chose (round-robin);
 * on_accept runs there and may set per-connection data or other
 * callbacks; on_connect follows.  The other server callbacks run on the
 * acceptor.  Every server call may be made from any thread: from another
 * thread while the engine runs, listen's and close's work is handed to
 * the acceptor.  A server's memory stays until pants_engine_free, so these
 * calls stay harmless after on_close.
 * @{
 */

/** The callbacks of a server.  Copied by pants_server_new; every member
 * may be NULL. */
typedef struct pants_server_callbacks_s {
    /** The server listens (on the acceptor).
     * @param srv  the server */
    void (*on_listen)(pants_server_t *srv);
    /** A new connection, on conn's loop, before its first read (and, with
     * TLS, before the handshake); it may set conn's data, callbacks,
     * delimiter and limits.  conn belongs to pants as any stream.
     * @param srv   the server
     * @param conn  the connection */
    void (*on_accept)(pants_server_t *srv,
                      pants_stream_t *conn); /* runs on conn's loop, before its first read */
    /** Once, on the acceptor, when the server has stopped listening
     * (close or stop_listening) and its last connection has closed.
     * @param srv  the server */
    void (*on_close)(pants_server_t *srv); /* once, after its connections closed */
    /** An accept failed (-EMFILE, -ENFILE, ...: reported once, accepting
     * pauses briefly and goes on; the server keeps listening), or a
     * listening socket could no longer be watched (the server then closes).
     * On the acceptor.
     * @param srv  the server
     * @param err  the negative errno */
    void (*on_error)(pants_server_t *srv, int err); /* accept failed (EMFILE, ...); still listening */
} pants_server_callbacks_t;

/** A server of an engine.
 *
 * @param e        the engine
 * @param cb       the server's callbacks (copied); NULL = none
 * @param conn_cb  the callbacks every accepted connection starts with
 *                 (copied); NULL = none
 * @param data     the application's pointer, returned by
 *                 pants_server_data; pants never touches or frees it
 * @return the server, owned by pants (its memory stays until
 *         pants_engine_free); NULL on failure, with errno EINVAL (e NULL),
 *         ENOMEM, or ESHUTDOWN (the acceptor has finished)
 * @par Thread
 * Any thread.
 */
PANTS_EXTERN pants_server_t *pants_server_new(pants_engine_t *e, const pants_server_callbacks_t *cb,
                                              const pants_stream_callbacks_t *conn_cb, void *data);

/** Bind and listen.
 *
 * The socket is bound at once, so errors come back here; on_listen then
 * runs on the acceptor.  A Unix socket file left by a dead process is
 * replaced; the file is removed on close.
 *
 * @param srv      the server
 * @param address  `"1.2.3.4:80"`, `"[::1]:80"`, `":port"` or `"*:port"`
 *                 (every interface, dual-stack; port 0 = any free port,
 *                 see pants_server_local_address), `"localhost:port"` (the
 *                 IPv4 loopback: the one name known here), `"unix:/path"`
 *                 or `"unix:@name"` (not kept)
 * @param backlog  the listen backlog; 0 = 1024
 * @retval 0             listening
 * @retval -EINVAL       srv or address NULL, backlog < 0, a malformed
 *                       address or a host name, a Unix address with
 *                       reuseport
 * @retval -EADDRINUSE   the address is taken (also by a live Unix socket)
 * @retval -EACCES       no permission (a port below 1024, a path)
 * @retval -EALREADY     srv listens already
 * @retval -EPIPE        srv was closed (or stopped listening)
 * @retval -ENOMEM       out of memory
 * @retval -ENOTSUP      reuseport where the kernel lacks SO_REUSEPORT
 * @retval -errno        another error of socket, bind or listen (-EMFILE,
 *                       -EADDRNOTAVAIL, ...)
 * @par Thread
 * Any thread.
 */
PANTS_EXTERN int pants_server_listen(pants_server_t *srv, const char *address, int backlog);

/** Stop listening and close every connection.
 *
 * Queued data of the connections is dropped; its Unix socket file is
 * removed; on_close follows once they are closed.  The server's memory
 * stays until pants_engine_free, so the any-thread calls stay harmless
 * after on_close (broadcast then returns -EPIPE).
 *
 * @param srv  the server; NULL is a no-op
 * @par Thread
 * Any thread.
 */
PANTS_EXTERN void pants_server_close(pants_server_t *srv);

/** Stop accepting but keep the open connections.
 *
 * The listening socket(s) close (a Unix socket's file is removed), so new
 * clients are refused or go to another process on the port, while the
 * application finishes what its connections are doing and ends them.
 * on_close follows once the last has closed; pants_server_close still
 * closes them all.  The first step of a graceful drain (SIGTERM behind a
 * load balancer).
 *
 * @param srv  the server
 * @retval 0        stopping
 * @retval -EINVAL  srv NULL
 * @par Thread
 * Any thread.
 */
PANTS_EXTERN int pants_server_stop_listening(pants_server_t *srv);

/** The number of open connections.
 * @param srv  the server
 * @return the connections open now (a snapshot); 0 for NULL
 * @par Thread
 * Any thread.
 */
PANTS_EXTERN size_t pants_server_connections(const pants_server_t *srv);

/** Write to every open connection, each on its own loop.
 *
 * The data is copied once and queued on each connection as
 * pants_stream_write would.  A connection that cannot queue it (past its
 * write limit) is closed with on_error(-ENOBUFS).
 *
 * @param srv   the server
 * @param data  the bytes (copied: the caller keeps them)
 * @param len   how many
 * @retval 0        handed to the loops
 * @retval -EINVAL  srv NULL, or data NULL with len > 0
 * @retval -ENOMEM  out of memory
 * @retval -EPIPE   srv has closed (on_close ran)
 * @par Thread
 * Any thread.
 */
PANTS_EXTERN int pants_server_broadcast(pants_server_t *srv, const void *data, size_t len);

/** The application's pointer of a server.
 * @param srv  the server
 * @return what pants_server_new was given; NULL for NULL
 * @par Thread
 * Any thread.
 */
PANTS_EXTERN void *pants_server_data(const pants_server_t *srv);
/** The engine of a server.
 * @param srv  the server
 * @return the engine; NULL for NULL
 * @par Thread
 * Any thread.
 */
PANTS_EXTERN pants_engine_t *pants_server_engine(const pants_server_t *srv);

/** The bound address, useful after listening on port 0.
 * @param srv  the server
 * @param a    where the address goes (the caller's)
 * @retval 0          written
 * @retval -EINVAL    srv or a NULL
 * @retval -ENOTCONN  srv does not listen (not yet, or no more)
 * @par Thread
 * Any thread.
 */
PANTS_EXTERN int pants_server_local_address(pants_server_t *srv, pants_addr_t *a);

/** Give the connections accepted from now on these starting settings.
 *
 * They apply before on_accept runs (which may change them per stream).
 *
 * @param srv  the server
 * @param o    the settings (copied); NULL = the defaults
 * @retval 0        set
 * @retval -EINVAL  srv NULL, write_low >= write_high (write_high not
 *                  SIZE_MAX), a timeout beyond 2^31 s
 * @retval -ENOMEM  out of memory
 * @par Thread
 * Any thread, before or after listen.
 */
PANTS_EXTERN int pants_server_set_stream_options(pants_server_t *srv, const pants_stream_options_t *o);

/** Hold at most max connections open.
 *
 * With max open the server stops accepting -- new clients wait in the
 * listen backlog, nothing is accepted and closed -- and accepts again once
 * one has closed.  Applies from the next accepted connection.
 *
 * @param srv  the server
 * @param max  the cap; 0 (the default) = no cap
 * @retval 0        set
 * @retval -EINVAL  srv NULL
 * @par Thread
 * Any thread, before or after listen.
 */
PANTS_EXTERN int pants_server_set_max_connections(pants_server_t *srv, size_t max);

/** @} */

/* ---- Deployment: several loops on one port, behind a load balancer ----- */

/** @defgroup pants_deployment Deployment
 * Several loops on one port, behind a load balancer.
 *
 * Both settings are made before the server listens, from any thread.
 * @{
 */

/** Give every worker loop a listening socket of its own (SO_REUSEPORT).
 *
 * On: one listening socket per worker loop, each accepting on its own loop
 * with no acceptor hand-off; the kernel spreads connections by a hash of
 * their addresses instead of round-robin, and other processes may listen
 * on the same port.  Off (the default): one socket, accepted by the
 * acceptor and handed round-robin.  A Unix address then fails listen with
 * -EINVAL.
 *
 * @param srv  the server
 * @param on   on or off
 * @retval 0          set
 * @retval -EINVAL    srv NULL
 * @retval -EALREADY  srv listens already
 * @retval -ENOTSUP   the kernel lacks SO_REUSEPORT
 * @par Thread
 * Any thread, before listen.
 */
PANTS_EXTERN int pants_server_set_reuseport(pants_server_t *srv, bool on);

/** Read a PROXY protocol header at the start of every connection.
 *
 * On: every connection starts with a PROXY protocol header, version 1
 * (text) or 2 (binary), as HAProxy, nginx and AWS NLB send it;
 * pants_stream_remote_address and pants_stream_local_address then give the
 * addresses it names (a v2 LOCAL or v1 UNKNOWN header: the socket's own).
 * The header is read before TLS and before on_accept; a missing, malformed
 * or incomplete one (within the frame timeout, or 5 s) closes the
 * connection without on_accept, and the server's on_error is not called.
 *
 * @param srv  the server
 * @param on   on or off
 * @retval 0          set
 * @retval -EINVAL    srv NULL
 * @retval -EALREADY  srv listens already
 * @par Thread
 * Any thread, before listen.
 */
PANTS_EXTERN int pants_server_set_proxy_protocol(pants_server_t *srv, bool on);

/** @} */

/* ---- Datagrams -------------------------------------------------------- */

/** @defgroup pants_datagrams Datagrams
 * Packet sockets: UDP over IPv4 or IPv6, or Unix datagram sockets.
 *
 * A datagram wraps one packet socket.  Packet boundaries are kept both
 * ways: one write is one packet, one packet received is one on_read, never
 * merged or split.  Like a stream, a datagram is pinned to one loop and its
 * callbacks run there, never from inside the call that caused them.
 *
 * A datagram gets its socket from pants_datagram_listen, or else from its
 * first write: an unbound socket of the destination's family (UDP: an
 * ephemeral port; Unix: an autobound abstract name), so replies reach it.
 * Writes are queued (copied) and handed to the kernel in batches; what the
 * kernel does not take yet (EAGAIN) waits, in order, until the socket is
 * writable.  The queue is bounded by the memory it takes, 1 MiB by
 * default, each packet counted at its real cost, not its payload
 * (pants_datagram_set_queue_limit).
 *
 * Largest packets: 65507 bytes over IPv4, 65527 over IPv6, 65536 over Unix
 * datagram sockets (larger incoming Unix packets are reported to on_error
 * as -EMSGSIZE, never delivered cut).
 *
 * Threads: as for streams.  pants_datagram_new, pants_datagram_close,
 * pants_datagram_data, pants_datagram_loop and pants_datagram_pending may
 * be called from any thread; every other datagram call from another thread
 * than d's loop fails with -EPERM once that loop runs (before the engine
 * runs, any thread may set up datagrams: they act once the loop runs).
 * @{
 */

/** The callbacks of a datagram.  Copied by pants_datagram_new; every
 * member may be NULL.  Each runs on d's loop thread. */
typedef struct pants_datagram_callbacks_s {
    /** Bound by pants_datagram_listen; packets may now arrive.
     * @param d  the datagram */
    void (*on_listen)(pants_datagram_t *d);
    /** One packet of len bytes from from.  data and from belong to pants
     * and are valid during the call only; pass from to
     * pants_datagram_write_to to reply.
     * @param d     the datagram
     * @param data  the packet's bytes
     * @param len   how many (0 for an empty packet)
     * @param from  the sender's address */
    void (*on_read)(pants_datagram_t *d, const void *data, size_t len, const pants_addr_t *from);
    /** Every packet queued so far has been handed to the kernel.
     * @param d  the datagram */
    void (*on_write)(pants_datagram_t *d);
    /** Exactly once, always last; d is freed after it returns.
     * @param d  the datagram */
    void (*on_close)(pants_datagram_t *d);
    /** Something failed and d keeps working: -ECONNREFUSED (and other ICMP
     * errors) after packets to a port no one reads; -EMSGSIZE for a packet
     * that arrived too large (dropped); PANTS_EAI_* for a name that did not
     * resolve (the packets written to it are dropped); the errno of a packet
     * the kernel refused (-ENOENT for a Unix path that does not exist, ...;
     * that packet is dropped).
     * @param d    the datagram
     * @param err  the negative error code */
    void (*on_error)(pants_datagram_t *d, int err);
} pants_datagram_callbacks_t;

/** A new datagram pinned to a loop, without a socket yet.
 *
 * It lives until on_close has returned: close or end it.
 *
 * @param l     the loop d is pinned to
 * @param cb    the callbacks (copied); NULL = no callbacks
 * @param data  the application's pointer, returned by
 *              pants_datagram_data; pants never touches or frees it
 * @return the datagram, owned by pants (freed after its on_close); NULL on
 *         failure, with errno EINVAL (l NULL), ENOMEM, or ESHUTDOWN (l has
 *         finished)
 * @par Thread
 * Any thread.
 */
PANTS_EXTERN pants_datagram_t *pants_datagram_new(pants_loop_t *l, const pants_datagram_callbacks_t *cb,
                                                  void *data);

/** Bind to an address and receive packets.
 *
 * The socket is bound at once, so errors come back here; on_listen then
 * runs from the loop.
 *
 * @param d        the datagram
 * @param address  `"1.2.3.4:53"`, `"[::1]:53"`, `":53"` or `"*:53"` (every
 *                 interface, IPv6 dual-stack where available; port 0 = any
 *                 free port, see pants_datagram_local_address),
 *                 `"localhost:53"` (the IPv4 loopback), `"unix:/path"` (a
 *                 stale socket file is replaced; the file is removed on
 *                 close) or `"unix:@name"` (not kept)
 * @retval 0             bound
 * @retval -EINVAL       d or address NULL, a malformed address, or a host
 *                       name
 * @retval -EADDRINUSE   the address is taken
 * @retval -EACCES       no permission
 * @retval -EALREADY     d has a socket already (listening, or written from)
 * @retval -EPIPE        after end/close
 * @retval -errno        another error of socket or bind (-EMFILE, ...)
 * @retval -EPERM        another thread than d's loop's, once it runs
 * @par Thread
 * d's loop thread (or before run).
 */
PANTS_EXTERN int pants_datagram_listen(pants_datagram_t *d, const char *address);

/** Queue one packet to an address.
 *
 * The address is numeric as for listen but without the "every interface"
 * forms, or `"host:port"`, resolved without blocking the loop (the hosts
 * file first; the lookup starts once the loop runs).  Answers are kept by
 * d's loop for their DNS TTL (those of the hosts file or "localhost" for
 * 60 s) and serve every datagram and stream connect of that loop: a name
 * it knows goes out without a query.  Otherwise a packet to a name waits
 * in the queue, in order with the others (also those written after it),
 * until the name has resolved; if it does not, on_error gets the
 * PANTS_EAI_* code and those packets are dropped.  A refused write
 * changes nothing: a first write that fails leaves d without a socket, as
 * before it (so does a first packet to a name that on_error reports as
 * too large).
 *
 * @param d        the datagram
 * @param data     the payload (copied: the caller keeps it)
 * @param len      its length; 0 sends an empty packet
 * @param address  the destination (not kept)
 * @retval 0              queued
 * @retval -EINVAL        d, address NULL, data NULL with len > 0, or a
 *                        malformed address (no callback follows)
 * @retval -EMSGSIZE      a packet larger than the protocol allows
 * @retval -ENOBUFS       the queue would pass its limit (nothing is
 *                        queued; see pants_datagram_set_queue_limit for
 *                        what a packet counts as)
 * @retval -EAFNOSUPPORT  a destination d's socket cannot reach (an IPv6
 *                        address from an IPv4 socket, Unix from IP...)
 * @retval -EPIPE         after end/close
 * @retval -ENOMEM        out of memory
 * @retval -errno         the errno of creating d's socket
 * @retval -EPERM         another thread than d's loop's, once it runs
 * @par Thread
 * d's loop thread (or before run).
 */
PANTS_EXTERN int pants_datagram_write(pants_datagram_t *d, const void *data, size_t len, const char *address);

/** Queue one packet to an address already parsed, such as on_read's from.
 *
 * As pants_datagram_write, without a name to resolve.
 *
 * @param d     the datagram
 * @param data  the payload (copied: the caller keeps it)
 * @param len   its length; 0 sends an empty packet
 * @param to    the destination (copied)
 * @return as pants_datagram_write; -EINVAL also for to NULL, port 0 or an
 *         unbound Unix sender (it cannot be replied to)
 * @par Thread
 * d's loop thread (or before run).
 */
PANTS_EXTERN int pants_datagram_write_to(pants_datagram_t *d, const void *data, size_t len,
                                         const pants_addr_t *to);

/** Stop receiving, send every packet queued, then close.
 *
 * Packets arriving now are dropped; those queued (also those waiting for a
 * name) are sent; on_close follows.
 *
 * @param d  the datagram
 * @retval 0        ending (also when already ending)
 * @retval -EINVAL  d NULL
 * @retval -EPIPE   d is closed
 * @retval -EPERM   another thread than d's loop's, once it runs
 * @par Thread
 * d's loop thread (or before run).
 */
PANTS_EXTERN int pants_datagram_end(pants_datagram_t *d);

/** Close now.
 *
 * Queued packets are dropped, lookups cancelled, a Unix socket file it
 * bound is removed; on_close follows from the loop.  Again, or after end,
 * is harmless.
 *
 * @param d  the datagram; NULL is a no-op
 * @par Thread
 * Any thread (from another one while the loop runs, the close is posted
 * to it).
 */
PANTS_EXTERN void pants_datagram_close(pants_datagram_t *d);

/** The application's pointer of a datagram.
 * @param d  the datagram
 * @return what pants_datagram_new or pants_datagram_set_data gave; NULL
 *         for NULL
 * @par Thread
 * Any thread.
 */
PANTS_EXTERN void *pants_datagram_data(const pants_datagram_t *d);
/** Set the application's pointer of a datagram.
 * @param d     the datagram; NULL is a no-op
 * @param data  the pointer (the application's: pants never touches or
 *              frees it)
 * @par Thread
 * d's loop thread (or before run); not checked.
 */
PANTS_EXTERN void pants_datagram_set_data(pants_datagram_t *d, void *data);

/** The loop a datagram is pinned to.
 * @param d  the datagram
 * @return the loop; NULL for NULL
 * @par Thread
 * Any thread.
 */
PANTS_EXTERN pants_loop_t *pants_datagram_loop(const pants_datagram_t *d);

/** Bound the memory the send queue may take.
 *
 * A queued packet counts as what it really costs, not as its payload: its
 * payload room -- at least 2048 bytes, since small packets get nodes of
 * that size, which are reused -- plus a header of under 200 bytes.  So any
 * packet of up to 2 KiB counts as about 2.2 KiB, and the default holds some
 * 470 small packets, or 15 of 64 KiB.  A write that would pass the limit
 * returns -ENOBUFS and queues nothing, so a packet whose cost alone passes
 * it is always refused.  Lowering it below what is queued drops nothing.
 *
 * @param d      the datagram
 * @param bytes  the limit in bytes (default 1 MiB)
 * @retval 0        set
 * @retval -EINVAL  d NULL, or bytes 0
 * @retval -EPERM   another thread than d's loop's, once it runs
 * @par Thread
 * d's loop thread (or before run).
 */
PANTS_EXTERN int pants_datagram_set_queue_limit(pants_datagram_t *d, size_t bytes);

/** Payload bytes queued, not yet handed to the kernel.
 *
 * Also those waiting for a name: what was written, not the memory the
 * queue takes, which is what the queue limit counts -- so -ENOBUFS may
 * come while pending() is far below the limit (tiny packets).
 *
 * @param d  the datagram
 * @return the bytes (a snapshot); 0 for NULL
 * @par Thread
 * Any thread.
 */
PANTS_EXTERN size_t pants_datagram_pending(const pants_datagram_t *d);

/** The address a datagram's socket is bound to.
 *
 * The port chosen after listening on port 0, the ephemeral port or
 * autobound Unix name of a writer.
 *
 * @param d  the datagram
 * @param a  where the address goes (the caller's)
 * @retval 0          written
 * @retval -ENOTCONN  d has no socket (yet, or any more)
 * @retval -EINVAL    d or a NULL
 * @retval -EPERM     another thread than d's loop's, once it runs
 * @par Thread
 * d's loop thread (or before run).
 */
PANTS_EXTERN int pants_datagram_local_address(pants_datagram_t *d, pants_addr_t *a);

/** The socket of a datagram, for socket options only.
 * SO_RCVBUF, IP_TOS, ...; reading, writing or closing it breaks d.
 * @param d  the datagram
 * @return the descriptor, owned by d; -1 while it has none (and for NULL)
 * @par Thread
 * d's loop thread (or before run); not checked.
 */
PANTS_EXTERN int pants_datagram_fd(const pants_datagram_t *d);

/** @} */

/* ---- TLS (OpenSSL) ---------------------------------------------------- */

/** @defgroup pants_tls TLS
 * TLS on streams, through OpenSSL (1.1.1 or 3.x).
 *
 * A stream can speak TLS through OpenSSL.  Contexts are OpenSSL's own
 * SSL_CTX, so everything OpenSSL offers stays reachable; pants adds safe
 * defaults.  This header does not include OpenSSL's: it names its types
 * by their struct tags (struct ssl_ctx_st is SSL_CTX, struct ssl_st is
 * SSL).  Built without OpenSSL (configure --without-openssl), these calls
 * fail with -ENOTSUP (NULL and ENOTSUP for the context helpers).
 * @{
 */
struct ssl_ctx_st; /* SSL_CTX */
struct ssl_st;     /* SSL */

/** Options of pants_tls_server_ctx and pants_tls_client_ctx.  Zero = the
 * default, field by field. */
typedef struct pants_tls_options_s { /* zero = the default, field by field */
    const char *cert_file;           /**< PEM certificate chain: a server's (required), or a client's own */
    const char *key_file;            /**< its private key, PEM (NULL: in cert_file) */
    const char *ca_file;             /**< PEM CAs to verify the peer with.  Client: NULL = the system's
                                        store.  Server: set = clients must present a certificate it verifies */
    const char *alpn;                /**< protocols offered / accepted, such as "h2,http/1.1"; NULL = none */
    bool insecure;                   /**< client: do not verify the server (tests only) */
    bool ktls;                       /**< use kernel TLS where the kernel and the cipher allow */
} pants_tls_options_t;

/** A server-side TLS context with pants' defaults.
 *
 * TLS 1.2 and later, no renegotiation, buffers released while idle, an EOF
 * without close_notify read as an EOF, a session cache, client
 * certificates required when ca_file is set, ALPN picks the first of its
 * protocols the client offers.  The files are read here.
 *
 * @param o  the options (read during the call only); cert_file required
 * @return the context, with one reference for the caller; NULL with errno
 *         EINVAL (o or cert_file NULL, a file that does not load --
 *         pants_strerror(PANTS_ETLS) says why, a bad alpn list), ENOMEM,
 *         or ENOTSUP (built without OpenSSL)
 * @par Ownership
 * The context is reference-counted: servers and streams keep their own
 * reference, so free yours (pants_tls_ctx_free) whenever you are done with
 * it.
 * @par Thread
 * Any thread.
 */
PANTS_EXTERN struct ssl_ctx_st *pants_tls_server_ctx(const pants_tls_options_t *o);
/** A client-side TLS context with pants' defaults.
 *
 * TLS 1.2 and later, no renegotiation, buffers released while idle, an EOF
 * without close_notify read as an EOF; the server verified (unless
 * insecure) against the server_name of pants_stream_start_tls, the last
 * session per server name kept for resumption.
 *
 * @param o  the options (read during the call only); NULL = every default
 * @return the context, with one reference for the caller; NULL with errno
 *         EINVAL (a file that does not load -- pants_strerror(PANTS_ETLS)
 *         says why, a bad alpn list), ENOMEM, or ENOTSUP (built without
 *         OpenSSL)
 * @par Ownership
 * As for pants_tls_server_ctx.
 * @par Thread
 * Any thread.
 */
PANTS_EXTERN struct ssl_ctx_st *pants_tls_client_ctx(const pants_tls_options_t *o);
/** Drop the caller's reference to a context (SSL_CTX_free).
 * @param ctx  the context; NULL is a no-op
 * @par Thread
 * Any thread.
 */
PANTS_EXTERN void pants_tls_ctx_free(struct ssl_ctx_st *ctx);

/** Make every connection a server accepts speak TLS.
 *
 * Every connection srv accepts does the server side of a handshake on
 * ctx: on_accept runs first, on_connect after the handshake; a handshake
 * that fails gives on_error(s, PANTS_ETLS) (NULL: the stream just closes)
 * and on_close, never on_connect.  A handshake is bounded by the frame
 * timeout, or 10 s when none is set (then on_error(s, -ETIMEDOUT)).
 *
 * @param srv  the server
 * @param ctx  a server context; srv takes a reference of its own
 * @retval 0          set
 * @retval -EINVAL    srv or ctx NULL
 * @retval -EALREADY  srv listens already, or has a context already
 * @retval -ENOTSUP   built without OpenSSL
 * @retval -ENOMEM    out of memory
 * @par Thread
 * Any thread, before listen.
 */
PANTS_EXTERN int pants_server_set_tls(pants_server_t *srv, struct ssl_ctx_st *ctx);

/** Speak TLS on a stream.
 *
 * Before connect: TLS from the first byte, on_connect after the handshake
 * (bounded by the connect timeout).  On a connected stream (STARTTLS): the
 * handshake starts once what is queued has been sent, and on_connect runs
 * again when it completes.  A client context (or a client stream) does the
 * client side, a server context (or an accepted stream) the server side.
 * A client handshake that fails, or a certificate that does not verify,
 * gives on_connect_error(s, PANTS_ETLS); pants_stream_ssl still shows
 * OpenSSL's verify result inside that callback, and the stream closes
 * after it (its connection carried a failed handshake): a new attempt
 * takes a new stream.  Everything else works as
 * without TLS: delimiters, watermarks and pending() count plaintext bytes;
 * write_file sends the file (SSL_sendfile with kernel TLS, else read and
 * encrypted in pieces); end() sends what is queued, then a close_notify;
 * the peer's close_notify is an EOF.
 *
 * @param s            the stream
 * @param ctx          the context; s takes a reference of its own
 * @param server_name  sent as SNI, and the name the certificate must
 *                     match (copied); NULL sends no SNI (and verification
 *                     then fails unless insecure)
 * @retval 0          set
 * @retval -EINVAL    s or ctx NULL
 * @retval -EALREADY  TLS already on, or a connect under way
 * @retval -EPIPE     after end/close
 * @retval -ENOMEM    out of memory
 * @retval -ENOTSUP   built without OpenSSL
 * @retval -EPERM     another thread than s's loop's, once it runs
 * @par Thread
 * s's loop thread (or before run).
 */
PANTS_EXTERN int pants_stream_start_tls(pants_stream_t *s, struct ssl_ctx_st *ctx, const char *server_name);

/** The OpenSSL object of a stream.
 * For the negotiated version, cipher, ALPN, peer certificate...
 * @param s  the stream
 * @return the SSL object, owned by s (do not free it or keep it past the
 *         current callback: it goes when s closes); NULL without TLS (and
 *         for NULL)
 * @par Thread
 * s's loop thread; not checked.
 */
PANTS_EXTERN struct ssl_st *pants_stream_ssl(const pants_stream_t *s);

/** @} */

/* ---- Diagnostics ------------------------------------------------------ */

/** @defgroup pants_diagnostics Diagnostics
 * What a test can ask of the library as a whole.
 * @{
 */

/** How many pants objects are alive in this process.
 * Engines, streams, servers, datagrams, timers.
 * @return the count: 0 after a clean teardown
 * @par Thread
 * Any thread.
 */
PANTS_EXTERN long pants_live_objects(void);

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* PANTS_H */
