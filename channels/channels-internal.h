/* channels-internal.h -- what the channel files share: address parsing,
 * the per-loop resolver, and the hooks between servers and their
 * connections.
 *
 * Threads: functions here run on the loop that owns the object they are
 * given, unless their comment says otherwise.
 */
#ifndef PANTS_CHANNELS_INTERNAL_H
#define PANTS_CHANNELS_INTERNAL_H

#include <stdint.h>
#include <sys/types.h>

#include "engine-internal.h"
#include "framer-internal.h"

#define PANTS__HOST_MAX 256 /* longest host name plus NUL */

/* ---- addr.c ------------------------------------------------------------- */

#define PANTS__ADDR_ANY       1u /* accept ":port" and "*:port" (every interface) */
#define PANTS__ADDR_LOCALHOST 2u /* "localhost" means 127.0.0.1, no resolver */
#define PANTS__ADDR_LISTEN    (PANTS__ADDR_ANY | PANTS__ADDR_LOCALHOST)

/* Split "host:port", "[v6]:port", ":port", "*:port", "unix:..." (flags: which
 * of the listening forms are accepted).  Returns 0 with *a filled for a
 * numeric or Unix address, 1 with host/port filled for a name to resolve,
 * -EINVAL for a malformed string.  Any thread. */
int pants__addr_split(const char *address, unsigned flags, pants_addr_t *a, char host[PANTS__HOST_MAX],
                      uint16_t *port);

/* Is a the IPv6 any address (":port")?  Where the system has no IPv6,
 * pants__addr_to_inet_any turns it into the IPv4 any address, same port. */
bool pants__addr_is_any6(const pants_addr_t *a);
void pants__addr_to_inet_any(pants_addr_t *a);

/* Families and dual-stack sockets.  Any thread. */

/* Is family AF_INET or AF_INET6? */
bool pants__family_is_ip(int family);

/* Is a an IPv4-mapped IPv6 address, [::ffff:1.2.3.4]:port? */
bool pants__addr_is_v4_mapped(const pants_addr_t *a);

/* An AF_INET a, 1.2.3.4:port, becomes [::ffff:1.2.3.4]:port: the form a
 * dual-stack IPv6 socket sends to. */
void pants__addr_map_v4(pants_addr_t *a);

/* [::ffff:1.2.3.4]:port becomes 1.2.3.4:port, so a dual-stack socket's
 * IPv4 peers show as what they are; any other a is left as it is. */
void pants__addr_unmap_v4(pants_addr_t *a);

/* Make a reachable from a socket of family (dual: an IPv6 socket that
 * reaches IPv4 too, see pants__socket_is_dual): IPv4 mapped or unmapped
 * as needed.  0, or -EAFNOSUPPORT (a unchanged). */
int pants__addr_fit_family(pants_addr_t *a, int family, bool dual);

/* a = the any address of family with port 0 (bind picks a port); for
 * AF_UNIX just the family, which bind turns into an autobound abstract
 * name. */
void pants__addr_set_any(pants_addr_t *a, int family);

/* A nonblocking, close-on-exec socket(family, type); dual makes an IPv6
 * one dual-stack (IPV6_V6ONLY off, whatever net.ipv6.bindv6only says).
 * The descriptor, or a negative errno. */
int pants__socket(int family, int type, bool dual);

/* The socket a listener (stream or datagram) binds *a with: dual-stack
 * for the IPv6 any address, and where the system has no IPv6, *a becomes
 * the IPv4 any address (same port) and the socket IPv4.  Options of its
 * own kind are the caller's.  The descriptor, or a negative errno. */
int pants__socket_for_bind(pants_addr_t *a, int type);

/* Does the socket fd reach IPv4 and IPv6 alike: IPv6, not v6-only, bound
 * to the any address? */
bool pants__socket_is_dual(int fd);

/* bind(fd, a); a Unix path held by a stale socket file (a connect of
 * socktype is refused: nobody serves it) is replaced, anything else there
 * gives -EADDRINUSE.  0 or a negative errno. */
int pants__bind(int fd, const pants_addr_t *a, int socktype);

/* The socket file a listener bound, removed when it closes -- only if the
 * path still names that same file. */
typedef struct pants__bound_path_s {
    char *path; /* the file, or NULL (IP, abstract, nothing bound) */
    dev_t dev;  /* its identity when bound */
    ino_t ino;
} pants__bound_path_t;

/* Remember the file binding a created (nothing for IP or abstract).
 * 0 or -ENOMEM. */
int pants__bound_path_remember(pants__bound_path_t *p, const pants_addr_t *a);

/* Remove the file if it is still ours, and forget it. */
void pants__bound_path_remove(pants__bound_path_t *p);

/* a = the IPv4 (4 bytes) or IPv6 (16 bytes) address raw of family, port. */
void pants__addr_set_ip(pants_addr_t *a, int family, const void *raw, uint16_t port);

/* Fill a from getsockname/getpeername of fd.  0 or a negative errno. */
int pants__addr_of_fd(int fd, bool peer, pants_addr_t *a);

/* ---- resolve.c ---------------------------------------------------------- */

typedef struct pants__resolve_s pants__resolve_t;

/* err 0: addrs[0..n) in preference order (IPv4 first; the array is the
 * callee's, valid during the call), which may be kept for ttl_s seconds;
 * else a PANTS_EAI_* code. */
typedef void (*pants__resolve_cb)(int err, const pants_addr_t *addrs, size_t n, uint32_t ttl_s, void *arg);

/* How long answers from the hosts file or for "localhost" may be kept. */
#define PANTS__RESOLVE_LOCAL_TTL 60

/* The most addresses one answer gives (half of them per family). */
#define PANTS__RESOLVE_MAX_ADDRS 16

/* Names each loop's cache keeps at most. */
#define PANTS__RESOLVE_CACHE_MAX 128

/* Resolve host for port on loop l without blocking: the loop's name cache
 * first (an answer found within its TTL is kept there, per loop, for
 * every channel of l), then the hosts file, then a name server.  cb runs
 * later from l, never inside this call -- a cached answer too -- and the
 * lookup is over (freed) by then: forget it, never cancel it from cb.
 * NULL with errno on failure.  l's thread. */
pants__resolve_t *pants__resolve_start(pants_loop_t *l, const char *host, uint16_t port, pants__resolve_cb cb,
                                       void *arg);

/* The answer l's name cache holds for host, now: addrs[0..*n) (at most
 * max, preference order, IPv4 first) with port.  0, or -ENOENT when host
 * is not cached (never asked, failed, or its TTL has run out): then ask
 * with pants__resolve_start.  No callback, no query.  l's thread, or
 * another before l runs (nothing is cached then). */
int pants__resolve_cached(pants_loop_t *l, const char *host, uint16_t port, pants_addr_t *addrs, size_t max,
                          size_t *n);

/* Cancel a lookup in flight: cb will not run. */
void pants__resolve_cancel(pants__resolve_t *r);

/* ---- stream.c / server.c ------------------------------------------------ */

/* Make a stream for an accepted connection fd on l, on l's thread; runs
 * on_accept and on_connect.  Closes fd on failure. */
void pants__stream_adopt(pants_loop_t *l, pants_server_t *srv, int fd);

/* Run srv's on_accept for the new connection s (on s's loop). */
void pants__server_accepted(pants_server_t *srv, pants_stream_t *s);

/* Queue len bytes of data without copying them; release(data, len, arg)
 * runs exactly once, when they have been sent or dropped, or before this
 * returns if it fails.  On s's loop.  0, -EPIPE, -ENOMEM. */
/* s failed with err: on_error (NULL: nothing), then close.  On s's loop. */
void pants__stream_fail(pants_stream_t *s, int err);

/* o with its zero fields filled with the defaults (write_high SIZE_MAX =
 * no watermarks).  0, or -EINVAL (write_low >= write_high, a timeout
 * beyond 2^31 s).  Any thread. */
int pants__stream_options_resolve(const pants_stream_options_t *o, pants_stream_options_t *out);

/* The TLS context srv's connections handshake on, or NULL.  Any thread. */
struct ssl_ctx_st *pants__server_tls(const pants_server_t *srv);

/* Do srv's connections start with a PROXY protocol header?  Any thread
 * after listen. */
bool pants__server_has_proxy_protocol(const pants_server_t *srv);

/* The resolved starting settings of srv's new connections (valid while srv
 * lives).  Any thread. */
const pants_stream_options_t *pants__server_stream_options(const pants_server_t *srv);

int pants__stream_write_shared(pants_stream_t *s, const void *data, size_t len,
                               void (*release)(const void *, size_t, void *), void *arg);

/* A connection of srv closed for good (on its loop): srv's bookkeeping. */
void pants__server_conn_closed(pants_server_t *srv, pants_stream_t *s);

/* Link s into srv's list of connections on s's loop. */
void pants__server_conn_opened(pants_server_t *srv, pants_stream_t *s);

/* The family of srv's listening socket, and so of its connections (a
 * dual-stack listener's IPv4 peers are v4-mapped AF_INET6). */
int pants__server_family(const pants_server_t *srv);

/* The server's per-connection callbacks (copied at pants_server_new). */
const pants_stream_callbacks_t *pants__server_conn_callbacks(const pants_server_t *srv);

/* Stream list links used by server.c (stream.c keeps them opaque). */
pants_stream_t **pants__stream_srv_next(pants_stream_t *s);
pants_stream_t **pants__stream_srv_prev(pants_stream_t *s);
bool pants__stream_is_open(const pants_stream_t *s);

#endif /* PANTS_CHANNELS_INTERNAL_H */
