/* tls-internal.h -- TLS inside a stream's I/O path (OpenSSL).
 *
 * A stream with TLS keeps one pants__tls_t: the SSL object on the stream's
 * own socket (SSL_set_fd, so kernel TLS can take over), the handshake's
 * progress, and what a retried read or write needs.  Once the handshake is
 * done the stream reads and writes through pants__tls_transport (or the
 * kernel-TLS one with SSL_sendfile), and nothing else in the stream
 * changes: delimiters, the write queue, watermarks and timeouts all see
 * plaintext.
 *
 * Threads: a TLS state belongs to its stream's loop.  Contexts (SSL_CTX)
 * are shared by every loop; OpenSSL locks what they share.
 */
#ifndef PANTS_TLS_INTERNAL_H
#define PANTS_TLS_INTERNAL_H

#include <stdbool.h>

#include "wqueue-internal.h"

typedef struct pants__tls_s pants__tls_t;

#define PANTS__TLS_HANDSHAKE_MS 10000 /* a server handshake's bound without a frame timeout */

/* TLS state on ctx, server or client side.  server_name: SNI and the
 * name to verify (client; NULL: none).  NULL with *err set (-ENOMEM,
 * -ENOTSUP without OpenSSL). */
pants__tls_t *pants__tls_new(struct ssl_ctx_st *ctx, bool server, const char *server_name, int *err);

/* Put t on the socket fd (before the handshake).  0 or -ENOMEM. */
int pants__tls_attach(pants__tls_t *t, int fd);

/* Say goodbye (one non-blocking close_notify, so the session stays
 * resumable) and free.  NULL is a no-op. */
void pants__tls_free(pants__tls_t *t);

/* Drive the handshake: 0 done, -EAGAIN (waits for the socket), or
 * PANTS_ETLS / a negative errno. */
int pants__tls_handshake(pants__tls_t *t);

/* The transport to use once the handshake is done (kernel TLS or not). */
const pants__transport_t *pants__tls_transport(const pants__tls_t *t);

/* May another read give data without a new readiness edge: bytes held
 * inside OpenSSL (a record, or plaintext), or a socket not known to be
 * empty?  (Known with read-ahead, when the socket's last read was short.) */
bool pants__tls_may_have_more(const pants__tls_t *t);

/* Did the last read stop because OpenSSL must write first (a handshake
 * message after the handshake: answer a KeyUpdate), or the last write
 * because it must read first?  Then that call is retried when the socket
 * turns writable / readable. */
bool pants__tls_read_wants_write(const pants__tls_t *t);
bool pants__tls_write_wants_read(const pants__tls_t *t);

/* The SSL object (for pants_stream_ssl). */
struct ssl_st *pants__tls_ssl(const pants__tls_t *t);

/* Is t the server side? */
bool pants__tls_is_server(const pants__tls_t *t);

/* Should a stream made on ctx by pants_stream_start_tls take the server
 * side (a context made by pants_tls_server_ctx)? */
bool pants__tls_ctx_is_server(struct ssl_ctx_st *ctx);

/* Take / drop a reference on ctx (a server keeps one).  hold: 0, or
 * -ENOTSUP without OpenSSL. */
int pants__tls_ctx_hold(struct ssl_ctx_st *ctx);
void pants__tls_ctx_release(struct ssl_ctx_st *ctx);

/* Remember why TLS failed, for pants_strerror(PANTS_ETLS) on this thread. */
void pants__tls_note_error(const char *why);

#endif /* PANTS_TLS_INTERNAL_H */
