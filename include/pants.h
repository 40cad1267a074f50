/* pants.h -- the public API of pants, a multi-reactor network library.
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
 *     print a loud message).
 *   - Safe from anywhere: pants_engine_stop, pants_loop_post,
 *     pants_stream_new, pants_stream_post, pants_stream_ref/unref,
 *     pants_server_new, pants_server_broadcast, pants_server_connections,
 *     pants_server_listen, pants_server_close, pants_datagram_new and
 *     pants_datagram_close.
 *
 * Errors: calls that act return 0 or a negative errno; constructors return
 * NULL and set errno.  A call that fails never runs the callback it would
 * have led to.  Callbacks never run from inside the call that caused them:
 * they run from the loop.
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

#if defined(PANTS_BUILDING) && defined(__GNUC__)
#define PANTS_EXTERN __attribute__((visibility("default")))
#else
#define PANTS_EXTERN
#endif

typedef struct pants_engine_s pants_engine_t;
typedef struct pants_loop_s pants_loop_t;
typedef struct pants_stream_s pants_stream_t;
typedef struct pants_server_s pants_server_t;
typedef struct pants_datagram_s pants_datagram_t;
typedef struct pants_timer_s pants_timer_t;

/* A socket address of any family. */
typedef struct pants_addr_s {
    struct sockaddr_storage ss; /* the address itself */
    socklen_t len;              /* how many bytes of ss are meaningful */
} pants_addr_t;

/* ---- Errors ----------------------------------------------------------- */

/* Name-resolution failures: below every errno value. */
#define PANTS_EAI_ADDRFAMILY (-3001) /* no address of the wanted family */
#define PANTS_EAI_AGAIN      (-3002) /* temporary failure: try again later */
#define PANTS_EAI_BADFLAGS   (-3003) /* invalid resolver flags */
#define PANTS_EAI_FAIL       (-3004) /* permanent failure of the name server */
#define PANTS_EAI_FAMILY     (-3005) /* address family not supported */
#define PANTS_EAI_MEMORY     (-3006) /* out of memory while resolving */
#define PANTS_EAI_NODATA     (-3007) /* the name has no address */
#define PANTS_EAI_NONAME     (-3008) /* the name does not exist */
#define PANTS_EAI_SERVICE    (-3009) /* invalid port / service */
#define PANTS_EAI_SOCKTYPE   (-3010) /* socket type not supported */
#define PANTS_EAI_CANCELED   (-3011) /* the lookup was cancelled */
#define PANTS_EAI_TIMEOUT    (-3012) /* no answer from the name servers in time */

/* A TLS handshake, certificate check or record failed; pants_strerror
 * names the reason (OpenSSL's, or the verify result) of the last such
 * failure on the calling thread -- inside on_error / on_connect_error, the
 * one at hand. */
#define PANTS_ETLS (-3100)

/* The name of err: a negative errno, a PANTS_EAI_* code, or 0 ("success").
 * Never NULL; unknown codes give "unknown error".  Any thread. */
PANTS_EXTERN const char *pants_strerror(int err);

/* ---- Addresses -------------------------------------------------------- */

/* Parse a numeric or Unix address: "1.2.3.4:80", "[::1]:80", ":80" or
 * "*:80" (every interface, IPv6 any), "unix:/path", "unix:@abstract".
 * Host names are not resolved here: they give -EINVAL.
 * Returns 0, or -EINVAL for a NULL or malformed string.  Any thread. */
PANTS_EXTERN int pants_addr_parse(pants_addr_t *a, const char *address);

/* Write a as a string into buf ("1.2.3.4:80", "[::1]:80", "unix:/p",
 * "unix:@name"); the result is always NUL-terminated when len > 0.
 * Returns 0, -ENOSPC if buf is too small, -EAFNOSUPPORT for an unknown
 * family, -EINVAL for NULL arguments.  Any thread. */
PANTS_EXTERN int pants_addr_format(const pants_addr_t *a, char *buf, size_t len);

/* ---- Engine and loops ------------------------------------------------- */

typedef struct pants_engine_options_s {
    unsigned threads;             /* worker loops; 0 = the number of online CPUs */
    unsigned shutdown_timeout_ms; /* how long stop lets streams flush; 0 = 5000 */
    const char *dns_server;       /* "ip:port" of the one name server to ask;
                                     NULL = those of /etc/resolv.conf */
    unsigned dns_timeout_ms;      /* per name-server query; 0 = 2000 */
    /* more options may follow; zero always means "the default" */
} pants_engine_options_t;

/* Create an engine; starts no thread.  opts NULL = every default.  Its loops
 * exist at once (pants_engine_loop), so channels can be set up before run.
 * Returns NULL and sets errno (ENOMEM, EMFILE, ...) on failure.  Any thread. */
PANTS_EXTERN pants_engine_t *pants_engine_new(const pants_engine_options_t *opts);

/* Run the acceptor on the calling thread and each worker on a thread of its
 * own; returns 0 once stopped and every channel closed, -EALREADY if the
 * engine ran before, or a negative errno if a thread could not start. */
PANTS_EXTERN int pants_engine_run(pants_engine_t *e);

/* The same as run, with the acceptor on a background thread too; returns as
 * soon as the threads run.  Pair with pants_engine_join. */
PANTS_EXTERN int pants_engine_start(pants_engine_t *e);

/* After start: wait until the engine has stopped and every channel closed.
 * Returns 0, -EINVAL if it was not started, -EDEADLK from one of its own
 * loop threads. */
PANTS_EXTERN int pants_engine_join(pants_engine_t *e);

/* Stop: stop accepting, end() every stream and datagram (queued data is
 * still sent, for at most shutdown_timeout_ms), close servers, cancel
 * timers.  Any thread, also a signal handler (async-signal-safe).  Calling
 * it before run makes the next run return at once after closing. */
PANTS_EXTERN void pants_engine_stop(pants_engine_t *e);

/* Free the engine after run/join returned, or one that never ran (its
 * channels are then freed without callbacks, and functions posted to its
 * loops run here, on the calling thread, so what they own is not lost).
 * Drop stream references (pants_stream_unref) before.  NULL is a no-op. */
PANTS_EXTERN void pants_engine_free(pants_engine_t *e);

/* The number of worker loops.  Any thread. */
PANTS_EXTERN unsigned pants_engine_threads(const pants_engine_t *e);

/* Worker loop number index (0 .. threads-1), or NULL.  Any thread. */
PANTS_EXTERN pants_loop_t *pants_engine_loop(pants_engine_t *e, unsigned index);

/* The next worker loop, round-robin.  Any thread. */
PANTS_EXTERN pants_loop_t *pants_engine_next_loop(pants_engine_t *e);

/* The loop the calling thread runs (a worker, or the acceptor while it runs
 * server callbacks), or NULL on any other thread. */
PANTS_EXTERN pants_loop_t *pants_loop_current(void);

/* A worker's index; the acceptor's index is pants_engine_threads(). */
PANTS_EXTERN unsigned pants_loop_index(const pants_loop_t *l);

/* The engine a loop belongs to.  Any thread. */
PANTS_EXTERN pants_engine_t *pants_loop_engine(const pants_loop_t *l);

typedef void (*pants_fn_t)(void *arg);

/* Run fn(arg) on loop l's thread, after everything posted to l before it
 * (FIFO).  Any thread, also l's own (fn then runs later, never inside this
 * call).  Returns 0, -EINVAL for NULL arguments, -ENOMEM, or -ESHUTDOWN once
 * l has finished (fn then never runs). */
PANTS_EXTERN int pants_loop_post(pants_loop_t *l, pants_fn_t fn, void *arg);

/* ---- Timers ----------------------------------------------------------- */

/* Each returns a handle that stays valid until the timer has finished (for
 * callback and defer: once fn has returned) or was cancelled; NULL with
 * errno set on failure (EINVAL, ENOMEM, EPERM from another thread once the
 * loop runs, ESHUTDOWN once it stopped).  Call on l's thread, or on any
 * thread before the engine runs.  Delays count from the moment of the call. */
PANTS_EXTERN pants_timer_t *pants_timer_callback(pants_loop_t *l, pants_fn_t fn,
                                                 void *arg); /* once, next iteration */
PANTS_EXTERN pants_timer_t *pants_timer_loop(pants_loop_t *l, pants_fn_t fn, void *arg); /* every iteration */
PANTS_EXTERN pants_timer_t *pants_timer_defer(pants_loop_t *l, uint64_t delay_ms, pants_fn_t fn,
                                              void *arg); /* once, after delay_ms */
PANTS_EXTERN pants_timer_t *pants_timer_cycle(pants_loop_t *l, uint64_t interval_ms, pants_fn_t fn,
                                              void *arg); /* every interval_ms */

/* Cancel t: fn will not start again, and t is freed.  NULL is a no-op.
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
 * freed by pants_engine_free. */
PANTS_EXTERN void pants_timer_cancel(pants_timer_t *t);

/* ---- Streams ---------------------------------------------------------- */

typedef struct pants_stream_callbacks_s {
    void (*on_connect)(pants_stream_t *s);
    void (*on_connect_error)(pants_stream_t *s,
                             int err); /* stays usable: connect again or close; NULL = close */
    void (*on_read)(pants_stream_t *s, const void *data, size_t len);
    void (*on_write)(pants_stream_t *s);          /* everything queued has been handed to the kernel */
    void (*on_close)(pants_stream_t *s);          /* exactly once, always last; s is freed after it returns */
    void (*on_overflow)(pants_stream_t *s);       /* read buffer passed its limit; NULL = close */
    void (*on_error)(pants_stream_t *s, int err); /* I/O error other than EOF or reset; NULL = close */
    void (*on_write_high)(
        pants_stream_t *s); /* pending() rose past the high watermark; NULL = pause reading s */
    void (*on_write_low)(pants_stream_t *s);         /* pending() fell to the low watermark after a high */
    void (*on_timeout)(pants_stream_t *s, int kind); /* a PANTS_TIMEOUT_* ran out; NULL = close */
} pants_stream_callbacks_t;

/* A new, unconnected stream pinned to loop l; cb is copied (NULL = no
 * callbacks).  Any thread.  NULL with errno (EINVAL, ENOMEM) on failure.
 * The stream lives until on_close has returned: close or end it. */
PANTS_EXTERN pants_stream_t *pants_stream_new(pants_loop_t *l, const pants_stream_callbacks_t *cb,
                                              void *data);

/* Connect to "host:port", "[v6]:port" or "unix:/path".  Numeric addresses
 * connect at once, names are resolved without blocking: ".invalid" names
 * fail at once, then the hosts file, "localhost" and "*.localhost" are the
 * loopback, else A and AAAA queries (IPv4 addresses are tried first).
 * on_connect or on_connect_error (-ECONNREFUSED, -ETIMEDOUT, PANTS_EAI_*)
 * follows.  Returns 0; -EINVAL for a malformed address (no callback);
 * -EISCONN/-EALREADY if connected or connecting; -EPIPE once closed. */
PANTS_EXTERN int pants_stream_connect(pants_stream_t *s, const char *address);

/* Queue len bytes (copied) to send; writes made in one callback go out
 * together.  Before the connection is up, they wait for it.  on_write runs
 * once the queue is empty again.  Returns 0, -EPIPE after end/close,
 * -EINVAL for NULL data with len > 0, -ENOMEM. */
PANTS_EXTERN int pants_stream_write(pants_stream_t *s, const void *data, size_t len);

/* Queue nbytes of file fd from offset (nbytes 0 = to the end of the file),
 * sent with sendfile in order with the other writes.  fd stays the caller's
 * (it is duplicated) and may be closed at once.  An offset at or past the end
 * queues nothing; nbytes past the end is cut at the end.  Returns 0, -EBADF,
 * -EINVAL (negative offset, not a regular file), -EPIPE after end/close. */
PANTS_EXTERN int pants_stream_write_file(pants_stream_t *s, int fd, off_t offset, size_t nbytes);

/* Bound the next connects (and one under way, counted from now): when the
 * lookup plus the connect take longer than ms, the attempt is given up
 * and on_connect_error gets -ETIMEDOUT.  0 (the default) = no bound but the
 * kernel's.  Returns 0, -EINVAL (s NULL, ms beyond 2^31 s), -ENOMEM. */
PANTS_EXTERN int pants_stream_set_connect_timeout(pants_stream_t *s, uint64_t ms);

/* Stop reading: no on_read runs and the socket is not read until resume,
 * so the kernel's buffers fill and TCP slows the peer down (back-pressure,
 * e.g. while a proxy's other side drains its queue: see pending()).
 * Frames already buffered wait too; a pause inside on_read takes effect
 * before the next frame.  Writing goes on.  A reset peer still closes the
 * stream; a peer's orderly close is seen after resume, once the bytes
 * before it were delivered.  Returns 0, -EPIPE once closed. */
PANTS_EXTERN int pants_stream_pause_reading(pants_stream_t *s);
/* Read again: what waited is cut and delivered from the loop. */
PANTS_EXTERN int pants_stream_resume_reading(pants_stream_t *s);
/* Is reading held, by pause_reading or by the high watermark?  s's loop
 * thread. */
PANTS_EXTERN bool pants_stream_is_reading_paused(const pants_stream_t *s);

/* ---- Flow control and time limits ------------------------------------- */

/* No peer may make a server hold memory or a connection without bound.
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
 * high 0 = no watermarks.  Returns 0, -EINVAL (low >= high with high > 0),
 * -EPIPE once closed, -ENOMEM.  s's loop thread (or before run). */
PANTS_EXTERN int pants_stream_set_write_watermarks(pants_stream_t *s, size_t low, size_t high);

/* The most bytes the queue may hold in memory: a write that would take it
 * past max_bytes returns -ENOBUFS and queues nothing (file ranges take no
 * memory and do not count).  0 (the default) = no limit.
 * pants_server_broadcast closes a connection it cannot queue to with
 * on_error(-ENOBUFS).  Returns 0, -EPIPE once closed, -ENOMEM.  s's loop
 * thread (or before run). */
PANTS_EXTERN int pants_stream_set_write_limit(pants_stream_t *s, size_t max_bytes);

/* pending() is not above the high watermark.  s's loop thread. */
PANTS_EXTERN bool pants_stream_is_writable(const pants_stream_t *s);

/* Time limits of an open stream (0 = off, the default):
 *   PANTS_TIMEOUT_IDLE   no byte was read and none was sent for ms;
 *   PANTS_TIMEOUT_READ   reading is on (not paused) and no byte arrived for ms;
 *   PANTS_TIMEOUT_WRITE  bytes are queued and none of them was sent for ms;
 *   PANTS_TIMEOUT_FRAME  the bytes of an unfinished frame have waited ms
 *                        since the first of them arrived (a trickling sender
 *                        cannot hold a frame open).
 * A timeout never runs early (it may run late by up to a few ms, more on a
 * busy loop), and runs on the stream's loop: on_timeout(s, kind), or when
 * that is NULL the stream is closed (queued data dropped).  If the stream
 * is still open after on_timeout returns, that timeout starts over; setting
 * a timeout again restarts it.  They count while the stream is connected
 * (a connect is bounded by pants_stream_set_connect_timeout).  Timeouts
 * cost no system call, allocation or timer change per message.
 * Returns 0, -EINVAL (unknown kind, or ms beyond 2^31 s), -EPIPE once
 * closed, -ENOMEM.  s's loop thread (or before run). */
enum { PANTS_TIMEOUT_IDLE = 1, PANTS_TIMEOUT_READ, PANTS_TIMEOUT_WRITE, PANTS_TIMEOUT_FRAME };
PANTS_EXTERN int pants_stream_set_timeout(pants_stream_t *s, int kind, uint64_t ms);

/* The starting settings of every connection a server accepts (see
 * pants_server_set_stream_options).  Zero = the default, field by field. */
typedef struct pants_stream_options_s {
    size_t read_limit;        /* 64 KiB */
    size_t write_low;         /* 256 KiB */
    size_t write_high;        /* 1 MiB; SIZE_MAX = no watermarks */
    size_t write_limit;       /* none */
    uint64_t idle_timeout_ms; /* none, and so on for the others */
    uint64_t read_timeout_ms;
    uint64_t write_timeout_ms;
    uint64_t frame_timeout_ms;
} pants_stream_options_t;

/* Send what is queued, then close (on_close follows).  Reading stops.
 * Returns 0 (also when already ending), -EPIPE once closed. */
PANTS_EXTERN int pants_stream_end(pants_stream_t *s);

/* Close now; queued data is dropped; on_close follows from the loop.
 * Calling it again, or after end, is harmless. */
PANTS_EXTERN void pants_stream_close(pants_stream_t *s);

PANTS_EXTERN void pants_stream_set_data(pants_stream_t *s, void *data);
PANTS_EXTERN void *pants_stream_data(const pants_stream_t *s);
/* Replace the callbacks (copied); NULL = none. */
PANTS_EXTERN void pants_stream_set_callbacks(pants_stream_t *s, const pants_stream_callbacks_t *cb);
PANTS_EXTERN pants_loop_t *pants_stream_loop(const pants_stream_t *s);
/* The server that accepted s; NULL for clients. */
PANTS_EXTERN pants_server_t *pants_stream_server(const pants_stream_t *s);
/* AF_INET, AF_INET6 or AF_UNIX once connecting or connected; AF_UNSPEC before. */
PANTS_EXTERN int pants_stream_family(const pants_stream_t *s);
/* The peer's / the local address.  Returns 0 or -ENOTCONN. */
PANTS_EXTERN int pants_stream_remote_address(const pants_stream_t *s, pants_addr_t *a);
PANTS_EXTERN int pants_stream_local_address(const pants_stream_t *s, pants_addr_t *a);
/* Bytes queued, not yet handed to the kernel. */
PANTS_EXTERN size_t pants_stream_pending(const pants_stream_t *s);
/* True once the connection is up and until end/close. */
PANTS_EXTERN bool pants_stream_is_connected(const pants_stream_t *s);
/* s's socket, or -1 before it has one and once closed: for socket options
 * (SO_KEEPALIVE, SO_SNDBUF, TCP_NODELAY, which pants turns on) only;
 * reading, writing or closing it breaks s.  s's loop thread. */
PANTS_EXTERN int pants_stream_fd(const pants_stream_t *s);

/* Keep the memory of s (not the connection) alive past on_close, so another
 * thread may hold a pointer; the last unref frees it on its loop.  Any
 * thread, until pants_engine_free. */
PANTS_EXTERN void pants_stream_ref(pants_stream_t *s);
PANTS_EXTERN void pants_stream_unref(pants_stream_t *s);

/* Run fn(s, arg) on s's loop if s is still open by then; dropped otherwise.
 * Any thread.  Returns 0, -EINVAL, -ENOMEM or -ESHUTDOWN. */
PANTS_EXTERN int pants_stream_post(pants_stream_t *s, void (*fn)(pants_stream_t *, void *), void *arg);

/* Read delimiters: how incoming bytes are cut into on_read calls.  They may
 * change at any time, inside on_read too: bytes already buffered are then cut
 * with the new delimiter before any new byte is read.  Invalid arguments
 * return -EINVAL and leave the old delimiter in place; a closed stream
 * (from on_close on) gives -EPIPE. */
PANTS_EXTERN int pants_stream_read_any(pants_stream_t *s); /* everything, as it arrives (default) */
/* Up to (not including) delim; the delimiter is dropped.  len >= 1. */
PANTS_EXTERN int pants_stream_read_until(pants_stream_t *s, const void *delim, size_t len);
/* Exactly n >= 1 bytes per on_read. */
PANTS_EXTERN int pants_stream_read_exact(pants_stream_t *s, size_t n);
/* The bytes before the first match of a PCRE2 pattern; the match is dropped.
 * The first complete match over the bytes that have arrived cuts a frame at
 * once, even if later bytes could have made it longer.  A pattern that does
 * not compile, or that can match the empty string, gives -EINVAL.
 *
 * Matching is bounded, since the peer chooses the bytes: the searches for
 * one frame may take at most 2^17 steps plus 16 per pending byte together
 * (about 1.2 million at the default 64 KiB read limit: of the order of
 * 10 ms of CPU), nest backtracking only so deep, and use little memory.  A
 * partial match is searched again from its start as more bytes arrive, and
 * those searches count toward the same frame.  Ordinary delimiters take a
 * step or two per byte; a pattern that backtracks without end, such as
 * (a+)+b over a run of a's, or whose work grows with the square of a run,
 * such as (a|b)*c, reaches a limit, and the stream is then closed with
 * on_error(-E2BIG) (pants_strerror names it), then on_close.  Bytes that
 * are not UTF-8 under a (*UTF) pattern close it with -EILSEQ. */
PANTS_EXTERN int pants_stream_read_regex(pants_stream_t *s, const char *pattern);

/* A user framer: returns the length of the next frame (> 0), 0 for "need
 * more bytes", or a negative errno to reject the stream (it is then closed
 * with on_error).  *skip (preset 0) is how many bytes after the frame to
 * drop, e.g. its delimiter. */
typedef ssize_t (*pants_framer_t)(const void *buf, size_t len, size_t *skip, void *arg);
PANTS_EXTERN int pants_stream_read_framed(pants_stream_t *s, pants_framer_t fn, void *arg);

/* The most bytes that may wait for a frame; default 64 KiB, never below
 * what the delimiter needs (read_exact(n) always allows n).  Past it,
 * on_overflow runs (NULL: close); if the stream is still over the limit
 * and open afterwards, it is closed.  max_bytes 0 gives -EINVAL. */
PANTS_EXTERN int pants_stream_set_read_limit(pants_stream_t *s, size_t max_bytes);

/* ---- Servers ---------------------------------------------------------- */

typedef struct pants_server_callbacks_s {
    void (*on_listen)(pants_server_t *srv);
    void (*on_accept)(pants_server_t *srv,
                      pants_stream_t *conn);        /* runs on conn's loop, before its first read */
    void (*on_close)(pants_server_t *srv);          /* once, after its connections closed */
    void (*on_error)(pants_server_t *srv, int err); /* accept failed (EMFILE, ...); still listening */
} pants_server_callbacks_t;

/* A server of engine e; cb and conn_cb are copied.  Any thread.  NULL with
 * errno on failure. */
PANTS_EXTERN pants_server_t *pants_server_new(pants_engine_t *e, const pants_server_callbacks_t *cb,
                                              const pants_stream_callbacks_t *conn_cb, void *data);

/* Bind and listen on address (":port" = every interface, dual-stack);
 * backlog 0 = 1024.  The socket is bound at once, so errors come back here:
 * -EINVAL (malformed, or a host name), -EADDRINUSE (also a live Unix
 * socket; a stale one is replaced), -EACCES, -EALREADY if listening.
 * on_listen then runs on the acceptor.  Any thread. */
PANTS_EXTERN int pants_server_listen(pants_server_t *srv, const char *address, int backlog);

/* Stop listening, close its connections (queued data dropped), remove its
 * Unix socket file; on_close follows once they are closed.  Any thread.
 * A server's memory stays until pants_engine_free, so the any-thread calls
 * stay harmless after on_close (broadcast then returns -EPIPE). */
PANTS_EXTERN void pants_server_close(pants_server_t *srv);

/* Stop accepting but keep the open connections: the listening socket(s)
 * close (a Unix socket's file is removed), so new clients are refused or
 * go to another process on the port, while the application finishes what
 * its connections are doing and ends them.  on_close follows once the
 * last has closed; pants_server_close still closes them all.  The first
 * step of a graceful drain (SIGTERM behind a load balancer).  Returns 0,
 * -EINVAL for NULL.  Any thread. */
PANTS_EXTERN int pants_server_stop_listening(pants_server_t *srv);

/* Open connections.  Any thread. */
PANTS_EXTERN size_t pants_server_connections(const pants_server_t *srv);

/* Write data (copied once) to every open connection, each on its own loop.
 * Any thread.  Returns 0, -EINVAL, -ENOMEM, -EPIPE once closed. */
PANTS_EXTERN int pants_server_broadcast(pants_server_t *srv, const void *data, size_t len);

PANTS_EXTERN void *pants_server_data(const pants_server_t *srv);
PANTS_EXTERN pants_engine_t *pants_server_engine(const pants_server_t *srv);

/* The bound address (useful after listening on port 0).  0 or -ENOTCONN. */
PANTS_EXTERN int pants_server_local_address(pants_server_t *srv, pants_addr_t *a);

/* Give the connections accepted from now on these starting settings
 * (copied), before on_accept runs (which may change them per stream).
 * NULL = the defaults.  Returns 0, -EINVAL (NULL srv, write_low >=
 * write_high, a timeout beyond 2^31 s), -ENOMEM.  Any thread, before or
 * after listen. */
PANTS_EXTERN int pants_server_set_stream_options(pants_server_t *srv, const pants_stream_options_t *o);

/* Hold at most max connections open (0, the default = no cap): with max
 * open the server stops accepting -- new clients wait in the listen
 * backlog, nothing is accepted and closed -- and accepts again once one
 * has closed.  Returns 0, -EINVAL for NULL.  Any thread, before or after
 * listen; applies from the next accepted connection. */
PANTS_EXTERN int pants_server_set_max_connections(pants_server_t *srv, size_t max);

/* ---- Deployment: several loops on one port, behind a load balancer ----- */

/* Before listen.  On: one listening socket per worker loop (SO_REUSEPORT),
 * each accepting on its own loop with no acceptor hand-off; the kernel
 * spreads connections by a hash of their addresses instead of round-robin,
 * and other processes may listen on the same port.  Off (the default): one
 * socket, accepted by the acceptor and handed round-robin.  Returns 0,
 * -EINVAL (NULL srv), -EALREADY once listening, -ENOTSUP where the kernel
 * lacks SO_REUSEPORT; a Unix address then fails listen with -EINVAL.  Any
 * thread. */
PANTS_EXTERN int pants_server_set_reuseport(pants_server_t *srv, bool on);

/* Before listen.  On: every connection starts with a PROXY protocol header,
 * version 1 (text) or 2 (binary), as HAProxy, nginx and AWS NLB send it;
 * pants_stream_remote_address and pants_stream_local_address then give the
 * addresses it names (a v2 LOCAL or v1 UNKNOWN header: the socket's own).
 * The header is read before TLS and before on_accept; a missing, malformed
 * or incomplete one (within the frame timeout, or 5 s) closes the
 * connection without on_accept, and the server's on_error is not called.
 * Returns 0, -EINVAL (NULL srv), -EALREADY once listening.  Any thread. */
PANTS_EXTERN int pants_server_set_proxy_protocol(pants_server_t *srv, bool on);

/* ---- Datagrams -------------------------------------------------------- */

/* A datagram wraps one packet socket: UDP over IPv4 or IPv6, or a Unix
 * datagram socket.  Packet boundaries are kept both ways: one write is one
 * packet, one packet received is one on_read, never merged or split.  Like
 * a stream, a datagram is pinned to one loop and its callbacks run there,
 * never from inside the call that caused them.
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
 * runs, any thread may set up datagrams: they act once the loop runs). */
typedef struct pants_datagram_callbacks_s {
    /* Bound by pants_datagram_listen; packets may now arrive. */
    void (*on_listen)(pants_datagram_t *d);
    /* One packet of len bytes from from.  data and from are valid during the
     * call only; pass from to pants_datagram_write_to to reply. */
    void (*on_read)(pants_datagram_t *d, const void *data, size_t len, const pants_addr_t *from);
    /* Every packet queued so far has been handed to the kernel. */
    void (*on_write)(pants_datagram_t *d);
    /* Exactly once, always last; d is freed after it returns. */
    void (*on_close)(pants_datagram_t *d);
    /* Something failed and d keeps working: -ECONNREFUSED (and other ICMP
     * errors) after packets to a port no one reads; -EMSGSIZE for a packet
     * that arrived too large (dropped); PANTS_EAI_* for a name that did not
     * resolve (the packets written to it are dropped); the errno of a packet
     * the kernel refused (-ENOENT for a Unix path that does not exist, ...;
     * that packet is dropped). */
    void (*on_error)(pants_datagram_t *d, int err);
} pants_datagram_callbacks_t;

/* A new datagram pinned to loop l, without a socket yet; cb is copied (NULL
 * = no callbacks), data is the application's pointer.  Any thread.  NULL
 * with errno (EINVAL, ENOMEM) on failure.  It lives until on_close has
 * returned: close or end it. */
PANTS_EXTERN pants_datagram_t *pants_datagram_new(pants_loop_t *l, const pants_datagram_callbacks_t *cb,
                                                  void *data);

/* Bind to address and receive packets: "1.2.3.4:53", "[::1]:53", ":53" or
 * "*:53" (every interface, IPv6 dual-stack where available; port 0 = any
 * free port, see pants_datagram_local_address), "unix:/path" (a stale
 * socket file is replaced; the file is removed on close) or "unix:@name".
 * The socket is bound at once, so errors come back here: -EINVAL (NULL,
 * malformed, or a host name), -EADDRINUSE, -EACCES, -EALREADY if d has a
 * socket already (listening, or written from), -EPIPE after end/close.
 * on_listen then runs from the loop.  d's loop thread (or before run). */
PANTS_EXTERN int pants_datagram_listen(pants_datagram_t *d, const char *address);

/* Queue one packet of len bytes (copied; len 0 sends an empty packet) to
 * address: numeric as for listen but without the "every interface" forms,
 * or "host:port", resolved without blocking the loop (the hosts file first;
 * the lookup starts once the loop runs).  Answers are kept by d's loop for
 * their DNS TTL (those of the hosts file or "localhost" for 60 s) and serve
 * every datagram and stream connect of that loop: a name it knows goes
 * out without a query.  Otherwise a
 * packet to a name waits in the queue, in order with the others (also those
 * written after it), until the name has resolved; if it does not,
 * on_error gets the PANTS_EAI_* code and those packets are dropped.
 * Returns 0 once queued; -EINVAL for NULL arguments or a malformed address
 * (no callback follows); -EMSGSIZE for a packet larger than the protocol
 * allows; -ENOBUFS if the queue would pass its limit (nothing is queued;
 * see pants_datagram_set_queue_limit for what a packet counts as);
 * -EAFNOSUPPORT for a destination d's socket cannot reach (an IPv6 address
 * from an IPv4 socket, Unix from IP...); -EPIPE after end/close; -ENOMEM,
 * or the errno of creating d's socket.  A refused write changes nothing: a
 * first write that fails leaves d without a socket, as before it (so does
 * a first packet to a name that on_error reports as too large).  d's loop
 * thread (or before run). */
PANTS_EXTERN int pants_datagram_write(pants_datagram_t *d, const void *data, size_t len, const char *address);

/* The same to an address already parsed, such as on_read's from.  Returns
 * as pants_datagram_write; -EINVAL also for port 0 or an unbound Unix
 * sender (it cannot be replied to). */
PANTS_EXTERN int pants_datagram_write_to(pants_datagram_t *d, const void *data, size_t len,
                                         const pants_addr_t *to);

/* Stop receiving (packets arriving now are dropped), send every packet
 * queued (also those waiting for a name), then close: on_close follows.
 * Returns 0 (also when already ending), -EINVAL for NULL, -EPIPE once
 * closed.  d's loop thread (or before run). */
PANTS_EXTERN int pants_datagram_end(pants_datagram_t *d);

/* Close now: queued packets are dropped, lookups cancelled, a Unix socket
 * file it bound is removed; on_close follows from the loop.  Again, or after
 * end, is harmless; NULL is a no-op.  Any thread (from another one while
 * the loop runs, the close is posted to it). */
PANTS_EXTERN void pants_datagram_close(pants_datagram_t *d);

/* The application's pointer given to pants_datagram_new / set_data.  Any
 * thread (set_data: d's loop thread). */
PANTS_EXTERN void *pants_datagram_data(const pants_datagram_t *d);
PANTS_EXTERN void pants_datagram_set_data(pants_datagram_t *d, void *data);

/* The loop d is pinned to.  Any thread. */
PANTS_EXTERN pants_loop_t *pants_datagram_loop(const pants_datagram_t *d);

/* The most memory the send queue may take, in bytes (default 1 MiB).  A
 * queued packet counts as what it really costs, not as its payload: its
 * payload room -- at least 2048 bytes, since small packets get nodes of
 * that size, which are reused -- plus a header of under 200 bytes.  So any
 * packet of up to 2 KiB counts as about 2.2 KiB, and the default holds some
 * 470 small packets, or 15 of 64 KiB.  A write that would pass the limit
 * returns -ENOBUFS and queues nothing, so a packet whose cost alone passes
 * it is always refused.  Lowering it below what is queued drops nothing.
 * Returns 0, -EINVAL for NULL or 0 bytes.  d's loop thread (or before
 * run). */
PANTS_EXTERN int pants_datagram_set_queue_limit(pants_datagram_t *d, size_t bytes);

/* Payload bytes queued, not yet handed to the kernel (also those waiting
 * for a name): what was written, not the memory the queue takes, which
 * is what the queue limit counts -- so -ENOBUFS may come while pending()
 * is far below the limit (tiny packets).  Any thread (a snapshot). */
PANTS_EXTERN size_t pants_datagram_pending(const pants_datagram_t *d);

/* The address d's socket is bound to (the port chosen after listening on
 * port 0, the ephemeral port or autobound Unix name of a writer).  Returns
 * 0, -ENOTCONN if d has no socket (yet, or any more), -EINVAL for NULL.
 * d's loop thread (or before run). */
PANTS_EXTERN int pants_datagram_local_address(pants_datagram_t *d, pants_addr_t *a);

/* d's socket, or -1 while it has none: for socket options (SO_RCVBUF,
 * IP_TOS, ...) only; reading, writing or closing it breaks d.  d's loop
 * thread (or before run). */
PANTS_EXTERN int pants_datagram_fd(const pants_datagram_t *d);

/* ---- TLS (OpenSSL) ---------------------------------------------------- */

/* A stream can speak TLS through OpenSSL (1.1.1 or 3.x).  Contexts are
 * OpenSSL's own SSL_CTX, so everything OpenSSL offers stays reachable;
 * pants adds safe defaults.  This header does not include OpenSSL's. */
struct ssl_ctx_st; /* SSL_CTX */
struct ssl_st;     /* SSL */

typedef struct pants_tls_options_s { /* zero = the default, field by field */
    const char *cert_file;           /* PEM certificate chain: a server's (required), or a client's own */
    const char *key_file;            /* its private key, PEM (NULL: in cert_file) */
    const char *ca_file;             /* PEM CAs to verify the peer with.  Client: NULL = the system's
                                        store.  Server: set = clients must present a certificate it verifies */
    const char *alpn;                /* protocols offered / accepted, e.g. "h2,http/1.1"; NULL = none */
    bool insecure;                   /* client: do not verify the server (tests only) */
    bool ktls;                       /* use kernel TLS where the kernel and the cipher allow */
} pants_tls_options_t;

/* A context for the server / client side with pants' defaults: TLS 1.2
 * and later, no renegotiation, buffers released while idle, an EOF without
 * close_notify read as an EOF; server: a session cache, client
 * certificates required when ca_file is set, ALPN picks the first of its
 * protocols the client offers; client: the server verified (unless
 * insecure) against server_name, the last session per server name kept
 * for resumption.  NULL with errno (EINVAL: no cert_file for a server, a
 * file that does not load -- pants_strerror(PANTS_ETLS) says why, a bad
 * alpn list; ENOMEM; ENOTSUP built without OpenSSL).  Any thread.  The
 * context is reference-counted: servers and streams keep their own
 * reference, so free yours whenever you are done with it. */
PANTS_EXTERN struct ssl_ctx_st *pants_tls_server_ctx(const pants_tls_options_t *o);
PANTS_EXTERN struct ssl_ctx_st *pants_tls_client_ctx(const pants_tls_options_t *o);
/* Drop the caller's reference (SSL_CTX_free).  NULL is a no-op.  Any thread. */
PANTS_EXTERN void pants_tls_ctx_free(struct ssl_ctx_st *ctx);

/* Every connection srv accepts does the server side of a handshake on
 * ctx: on_accept runs first, on_connect after the handshake; a handshake
 * that fails gives on_error(s, PANTS_ETLS) (NULL: the stream just closes)
 * and on_close, never on_connect.  A handshake is bounded by the frame
 * timeout, or 10 s when none is set (then on_error(s, -ETIMEDOUT)).
 * Before listen.  Returns 0, -EINVAL (NULL), -EALREADY once listening,
 * -ENOTSUP without OpenSSL.  Any thread. */
PANTS_EXTERN int pants_server_set_tls(pants_server_t *srv, struct ssl_ctx_st *ctx);

/* TLS on s.  Before connect: TLS from the first byte, on_connect after the
 * handshake (bounded by the connect timeout).  On a connected stream
 * (STARTTLS): the handshake starts once what is queued has been sent, and
 * on_connect runs again when it completes.  A client context (or a client
 * stream) does the client side, a server context (or an accepted stream)
 * the server side.  server_name is sent as SNI and is the name the
 * certificate must match; NULL sends no SNI (and verification then fails
 * unless insecure).  A client handshake that fails, or a certificate that
 * does not verify, gives on_connect_error(s, PANTS_ETLS); pants_stream_ssl
 * still shows OpenSSL's verify result inside that callback.  Everything
 * else works as without TLS: delimiters, watermarks and pending() count
 * plaintext bytes; write_file sends the file (SSL_sendfile with kernel TLS,
 * else read and encrypted in pieces); end() sends what is queued, then a
 * close_notify; the peer's close_notify is an EOF.  Returns 0, -EINVAL,
 * -EALREADY (TLS already on), -EPIPE once closed, -ENOMEM, -ENOTSUP
 * without OpenSSL.  s's loop thread (or before run). */
PANTS_EXTERN int pants_stream_start_tls(pants_stream_t *s, struct ssl_ctx_st *ctx, const char *server_name);

/* The SSL object of s, NULL without TLS (for the negotiated version,
 * cipher, ALPN, peer certificate...).  s's loop thread. */
PANTS_EXTERN struct ssl_st *pants_stream_ssl(const pants_stream_t *s);

/* ---- Diagnostics ------------------------------------------------------ */

/* How many pants objects (engines, streams, servers, datagrams, timers) are
 * alive in this process: 0 after a clean teardown.  Any thread. */
PANTS_EXTERN long pants_live_objects(void);

#ifdef __cplusplus
}
#endif

#endif /* PANTS_H */
