/* tls.c -- the OpenSSL contexts of the benchmark programs of bench/.
 *
 * One place makes the server context of both TLS baselines, with the
 * settings pants_tls_server_ctx gives its own (see tls.h), and the client
 * context of the load generator.  The handshakes, records and session
 * tickets of pants and of the baselines then cost the same; what differs is
 * only what each server does around SSL_read and SSL_write.
 */
#include "tls.h"

#include <stdio.h>

#include <openssl/err.h>

void bench_tls_print_error(const char *who, const char *what)
{
    char reason[256];
    unsigned long e = ERR_peek_last_error();

    if (e != 0)
        ERR_error_string_n(e, reason, sizeof(reason));
    else
        snprintf(reason, sizeof(reason), "no reason given");
    fprintf(stderr, "%s: %s: %s\n", who, what, reason);
    ERR_clear_error();
}

/* What both sides share: versions and options. */
static SSL_CTX *ctx_new(const char *who, const SSL_METHOD *method)
{
    SSL_CTX *ctx = SSL_CTX_new(method);

    if (ctx == NULL) {
        bench_tls_print_error(who, "SSL_CTX_new");
        return NULL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    return ctx;
}

SSL_CTX *bench_tls_server_ctx(const char *who, const char *cert_file, const char *key_file)
{
    static const unsigned char sid_ctx[] = "bench";
    SSL_CTX *ctx = ctx_new(who, TLS_server_method());

    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key_file ? key_file : cert_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        bench_tls_print_error(who, "loading the certificate or key");
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

SSL_CTX *bench_tls_client_ctx(bool resume, int (*new_session)(SSL *, SSL_SESSION *))
{
    SSL_CTX *ctx = ctx_new("loadgen", TLS_client_method());

    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (resume) {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(ctx, new_session);
    } else {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    }
    return ctx;
}
