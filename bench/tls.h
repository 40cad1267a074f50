/* tls.h -- the OpenSSL contexts of the benchmark programs of bench/.
 *
 * The TLS servers of bench/ (baseline-epoll --tls, baseline-libevent --tls)
 * and the load generator's client make their SSL_CTX here, so that every
 * server does the same cryptographic work as pants: the server context has
 * the settings of pants_tls_server_ctx (channels/tls.c) -- TLS 1.2 and later,
 * no renegotiation, no compression, an EOF without close_notify read as an
 * EOF, buffers released while a connection is idle, the moving write buffer
 * allowed, a server session cache and stateless tickets -- and OpenSSL's
 * defaults for the rest (TLS 1.3, its cipher and group order).  A difference
 * in the numbers then comes from the event handling around OpenSSL, never
 * from a different configuration of it.
 *
 * Built only with OpenSSL (BENCH_TLS defined by bench/include.am); without
 * it the programs refuse --tls.
 */
#ifndef BENCH_TLS_H
#define BENCH_TLS_H

#include <stdbool.h>

#include <openssl/ssl.h>

/* A server context on cert_file (a PEM chain) and key_file (PEM; NULL: in
 * cert_file).  NULL after printing OpenSSL's reason, prefixed with who, on
 * stderr. */
SSL_CTX *bench_tls_server_ctx(const char *who, const char *cert_file, const char *key_file);

/* The load generator's client context: no certificate check (the server's
 * CertificateVerify signature is still checked, as the protocol wants),
 * read-ahead, partial writes and the moving write buffer allowed.  With
 * resume, new sessions reach new_session (SSL_CTX_sess_set_new_cb; it owns
 * the session when it returns 1) and nothing is kept in OpenSSL's own
 * client cache.  NULL after printing the reason on stderr. */
SSL_CTX *bench_tls_client_ctx(bool resume, int (*new_session)(SSL *, SSL_SESSION *));

/* Print OpenSSL's last error, prefixed with who and what, on stderr, and
 * clear the error queue. */
void bench_tls_print_error(const char *who, const char *what);

#endif /* BENCH_TLS_H */
