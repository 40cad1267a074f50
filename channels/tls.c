/* tls.c -- TLS contexts, and the TLS transport of a stream (OpenSSL).
 *
 * Contexts are OpenSSL's own SSL_CTX, reference-counted by OpenSSL and
 * shared by every loop.  The helpers give the defaults a server on the
 * internet wants: TLS 1.2 and later, no renegotiation, an EOF without
 * close_notify taken as an EOF (quietly, as a reset is), buffers released
 * while a connection is idle, a session cache (server) or the last session
 * per server name (client, for resumption), ALPN from a comma list, and
 * peer verification (client; a server with ca_file requires client
 * certificates).
 *
 * The SSL object sits on the stream's socket itself (SSL_set_fd), so
 * kernel TLS can take the records over.  The transport functions keep the
 * rules of non-blocking OpenSSL: the error is taken with SSL_get_error
 * straight after the call that failed, the error queue is cleared first;
 * a read that must write first (a KeyUpdate to answer) or a write that
 * must read first is retried when the socket turns the other way; a write
 * that wanted a retry is retried with the same bytes and length (the
 * buffer may move: SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER); writes go out as
 * records of at most 16 KiB, so a 16 KiB write is one record.
 *
 * Without OpenSSL (configure --without-openssl) every entry point here
 * fails with -ENOTSUP.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "channels-internal.h"
#include "tls-internal.h"

#ifdef HAVE_OPENSSL

#include <pthread.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define RECORD_MAX   16384 /* plaintext bytes of one TLS record */
#define SESSIONS_MAX 64    /* server names a client context remembers a session for */
#define ALPN_MAX     255   /* bytes of a wire-format ALPN list */

/* What pants keeps with a context it made. */
typedef struct ctx_info_s {
    bool server;                      /* made by pants_tls_server_ctx */
    unsigned char alpn[ALPN_MAX + 1]; /* protocols, wire format (length-prefixed) */
    size_t alpn_len;                  /* bytes in alpn; 0 = none */
    pthread_mutex_t mu;               /* guards the sessions (every loop uses them) */
    struct {
        char *name;           /* server name */
        SSL_SESSION *session; /* its last session, referenced */
    } sessions[SESSIONS_MAX]; /* client: for resumption */
    unsigned next;            /* the slot to reuse when all are taken */
} ctx_info_t;

struct pants__tls_s {
    SSL *ssl;              /* on the stream's socket */
    bool server;           /* the server side */
    bool done;             /* the handshake completed */
    bool read_wants_write; /* SSL_read stopped on WANT_WRITE */
    bool write_wants_read; /* SSL_write stopped on WANT_READ */
    bool ktls;             /* kernel TLS sends the records */
    bool watched;          /* bio_watch sees the socket's reads (read-ahead on) */
    bool sock_drained;     /* the socket's last read got less than asked: it is empty */
    size_t retry_len;      /* a write that wanted a retry: its length; 0 = none */
    char *name;            /* client: the server name (session cache key), or NULL */
};

static int ctx_index = -1; /* ex_data slot of ctx_info_t */
static int ssl_index = -1; /* ex_data slot of pants__tls_t */
static pthread_once_t index_once = PTHREAD_ONCE_INIT;

/* ---- Errors --------------------------------------------------------------- */

/* Before a call whose failure SSL_get_error must read: the thread's error
 * queue must be empty.  Every failure path here clears it, so it usually
 * is, and a peek costs a tenth of ERR_clear_error (which wipes all 16
 * slots of the queue whatever they hold). */
static inline void errors_cleared(void)
{
    if (ERR_peek_error() != 0)
        ERR_clear_error();
}

void pants__tls_note_error(const char *why)
{
    pants__error_detail(PANTS_ETLS, why);
}

/* Why the last OpenSSL call failed: its error queue, or the verify result. */
static void note_ssl_failure(SSL *ssl, const char *what)
{
    char buf[256], reason[200];
    unsigned long e = ERR_peek_last_error();
    long verify = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;

    if (verify != X509_V_OK)
        snprintf(reason, sizeof(reason), "certificate verify failed: %s",
                 X509_verify_cert_error_string(verify));
    else if (e != 0)
        ERR_error_string_n(e, reason, sizeof(reason));
    else
        snprintf(reason, sizeof(reason), "no reason given");
    snprintf(buf, sizeof(buf), "%s: %s", what, reason);
    pants__tls_note_error(buf);
    ERR_clear_error();
}

/* ---- Contexts -------------------------------------------------------------- */

static void info_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    ctx_info_t *info = ptr;

    (void)parent;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    if (info == NULL)
        return;
    for (int i = 0; i < SESSIONS_MAX; i++) {
        free(info->sessions[i].name);
        SSL_SESSION_free(info->sessions[i].session);
    }
    pthread_mutex_destroy(&info->mu);
    free(info);
}

static void make_indexes(void)
{
    ctx_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, info_free);
    ssl_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static ctx_info_t *info_of(SSL_CTX *ctx)
{
    pthread_once(&index_once, make_indexes);
    return ctx_index >= 0 ? SSL_CTX_get_ex_data(ctx, ctx_index) : NULL;
}

/* "h2,http/1.1" -> wire format.  0 or -EINVAL. */
static int alpn_wire(const char *list, unsigned char *out, size_t *len)
{
    size_t n = 0;

    while (list != NULL && *list != '\0') {
        const char *end = strchr(list, ',');
        size_t item = end ? (size_t)(end - list) : strlen(list);
        if (item == 0 || item > 255 || n + 1 + item > ALPN_MAX)
            return -EINVAL;
        out[n++] = (unsigned char)item;
        memcpy(out + n, list, item);
        n += item;
        list = end ? end + 1 : NULL;
    }
    *len = n;
    return 0;
}

/* Server: the first of our protocols the client offers. */
static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned inlen, void *arg)
{
    ctx_info_t *info = arg;
    unsigned char *sel;

    (void)ssl;
    if (SSL_select_next_proto(&sel, outlen, info->alpn, (unsigned)info->alpn_len, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL; /* no protocol in common */
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* Client: a new session for a server name (TLS 1.3 sends them after the
 * handshake): keep it for the next connect to that name. */
static int keep_session(SSL *ssl, SSL_SESSION *session)
{
    pants__tls_t *t = ssl_index >= 0 ? SSL_get_ex_data(ssl, ssl_index) : NULL;
    ctx_info_t *info = info_of(SSL_get_SSL_CTX(ssl));
    int slot = -1;

    if (t == NULL || t->name == NULL || info == NULL)
        return 0;
    pthread_mutex_lock(&info->mu);
    for (int i = 0; i < SESSIONS_MAX && slot < 0; i++)
        if (info->sessions[i].name != NULL && strcmp(info->sessions[i].name, t->name) == 0)
            slot = i;
    for (int i = 0; i < SESSIONS_MAX && slot < 0; i++)
        if (info->sessions[i].name == NULL)
            slot = i;
    if (slot < 0)
        slot = (int)(info->next++ % SESSIONS_MAX);
    if (info->sessions[slot].name == NULL || strcmp(info->sessions[slot].name, t->name) != 0) {
        free(info->sessions[slot].name);
        info->sessions[slot].name = strdup(t->name);
    }
    SSL_SESSION_free(info->sessions[slot].session);
    info->sessions[slot].session = info->sessions[slot].name ? session : NULL;
    pthread_mutex_unlock(&info->mu);
    return info->sessions[slot].name ? 1 : 0; /* 1: we keep the reference */
}

/* The session kept for name, referenced, or NULL. */
static SSL_SESSION *kept_session(ctx_info_t *info, const char *name)
{
    SSL_SESSION *s = NULL;

    pthread_mutex_lock(&info->mu);
    for (int i = 0; i < SESSIONS_MAX && s == NULL; i++)
        if (info->sessions[i].name != NULL && strcmp(info->sessions[i].name, name) == 0 &&
            info->sessions[i].session != NULL && SSL_SESSION_is_resumable(info->sessions[i].session)) {
            s = info->sessions[i].session;
            SSL_SESSION_up_ref(s);
        }
    pthread_mutex_unlock(&info->mu);
    return s;
}

/* What both sides share: versions, options, modes, pants' info. */
static SSL_CTX *ctx_new(const SSL_METHOD *method, const pants_tls_options_t *o, bool server)
{
    SSL_CTX *ctx = SSL_CTX_new(method);
    ctx_info_t *info = calloc(1, sizeof(*info));
    uint64_t opts = SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION;

    if (ctx == NULL || info == NULL || info_of(ctx) != NULL /* sets up the index */ || ctx_index < 0)
        goto fail;
    pthread_mutex_init(&info->mu, NULL);
    info->server = server;
    if (SSL_CTX_set_ex_data(ctx, ctx_index, info) != 1) {
        pthread_mutex_destroy(&info->mu);
        goto fail;
    }
    info = NULL; /* the context owns it now */
#ifdef SSL_OP_ENABLE_KTLS
    if (o->ktls)
        opts |= SSL_OP_ENABLE_KTLS;
#endif
    SSL_CTX_set_options(ctx, opts);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return ctx;
fail:
    free(info);
    SSL_CTX_free(ctx);
    return NULL;
}

static int load_identity(SSL_CTX *ctx, const pants_tls_options_t *o)
{
    if (o->cert_file == NULL)
        return 0;
    if (SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, o->key_file ? o->key_file : o->cert_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        note_ssl_failure(NULL, "loading the certificate or key");
        return -EINVAL;
    }
    return 0;
}

static int set_alpn(SSL_CTX *ctx, const pants_tls_options_t *o, bool server)
{
    ctx_info_t *info = info_of(ctx);

    if (o->alpn == NULL)
        return 0;
    if (alpn_wire(o->alpn, info->alpn, &info->alpn_len) < 0 || info->alpn_len == 0) {
        pants__tls_note_error("bad ALPN list (comma-separated names of 1 to 255 bytes)");
        return -EINVAL;
    }
    if (server)
        SSL_CTX_set_alpn_select_cb(ctx, select_alpn, info);
    else if (SSL_CTX_set_alpn_protos(ctx, info->alpn, (unsigned)info->alpn_len) != 0)
        return -ENOMEM;
    return 0;
}

static SSL_CTX *finish_ctx(SSL_CTX *ctx, int rc)
{
    if (rc == 0)
        return ctx;
    SSL_CTX_free(ctx);
    errno = -rc;
    return NULL;
}

SSL_CTX *pants_tls_server_ctx(const pants_tls_options_t *o)
{
    static const unsigned char sid_ctx[] = "pants";
    SSL_CTX *ctx;
    int rc = 0;

    if (o == NULL || o->cert_file == NULL) {
        errno = EINVAL;
        return NULL;
    }
    ctx = ctx_new(TLS_server_method(), o, true);
    if (ctx == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
    rc = load_identity(ctx, o);
    if (rc == 0 && o->ca_file != NULL) { /* clients must show a certificate it verifies */
        if (SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL) != 1) {
            note_ssl_failure(NULL, "loading the CA file");
            rc = -EINVAL;
        } else {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
            SSL_CTX_set_client_CA_list(ctx, SSL_load_client_CA_file(o->ca_file));
        }
    }
    if (rc == 0)
        rc = set_alpn(ctx, o, true);
    return finish_ctx(ctx, rc);
}

SSL_CTX *pants_tls_client_ctx(const pants_tls_options_t *o)
{
    static const pants_tls_options_t defaults;
    SSL_CTX *ctx;
    int rc;

    o = o ? o : &defaults;
    ctx = ctx_new(TLS_client_method(), o, false);
    if (ctx == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, keep_session);
    SSL_CTX_set_verify(ctx, o->insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    rc = load_identity(ctx, o);
    if (rc == 0 && !o->insecure) {
        int ok = o->ca_file ? SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL)
                            : SSL_CTX_set_default_verify_paths(ctx);
        if (ok != 1) {
            note_ssl_failure(NULL, "loading the CA file");
            rc = -EINVAL;
        }
    }
    if (rc == 0)
        rc = set_alpn(ctx, o, false);
    return finish_ctx(ctx, rc);
}

void pants_tls_ctx_free(SSL_CTX *ctx)
{
    SSL_CTX_free(ctx);
}

int pants__tls_ctx_hold(SSL_CTX *ctx)
{
    return SSL_CTX_up_ref(ctx) == 1 ? 0 : -ENOMEM;
}

void pants__tls_ctx_release(SSL_CTX *ctx)
{
    SSL_CTX_free(ctx);
}

bool pants__tls_ctx_is_server(SSL_CTX *ctx)
{
    ctx_info_t *info = info_of(ctx);

    return info != NULL && info->server;
}

/* ---- A stream's TLS --------------------------------------------------------- */

/* The client side: SNI, the name to verify, a session to resume. */
static int setup_client(pants__tls_t *t, const char *server_name)
{
    ctx_info_t *info = info_of(SSL_get_SSL_CTX(t->ssl));

    SSL_set_connect_state(t->ssl);
    if (server_name == NULL)
        return 0;
    t->name = strdup(server_name);
    if (t->name == NULL)
        return -ENOMEM;
    if (SSL_set_tlsext_host_name(t->ssl, server_name) != 1 || SSL_set1_host(t->ssl, server_name) != 1)
        return -ENOMEM;
    if (info != NULL) {
        SSL_SESSION *s = kept_session(info, server_name);
        if (s != NULL) {
            SSL_set_session(t->ssl, s);
            SSL_SESSION_free(s);
        }
    }
    return 0;
}

pants__tls_t *pants__tls_new(SSL_CTX *ctx, bool server, const char *server_name, int *err)
{
    pants__tls_t *t = calloc(1, sizeof(*t));

    pthread_once(&index_once, make_indexes);
    *err = -ENOMEM;
    if (t == NULL || (t->ssl = SSL_new(ctx)) == NULL)
        goto fail;
    t->server = server;
    SSL_set_mode(t->ssl, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* A record in one read() instead of two (header, then body); kernel
     * TLS receives without it. */
#ifdef SSL_OP_ENABLE_KTLS
    if (!(SSL_get_options(t->ssl) & SSL_OP_ENABLE_KTLS))
#endif
        SSL_set_read_ahead(t->ssl, 1);
    if (ssl_index >= 0)
        SSL_set_ex_data(t->ssl, ssl_index, t);
    if (server)
        SSL_set_accept_state(t->ssl);
    else if ((*err = setup_client(t, server_name)) < 0)
        goto fail;
    *err = 0;
    return t;
fail:
    ERR_clear_error();
    pants__tls_free(t);
    return NULL;
}

/* The socket BIO's reads, watched (with read-ahead, OpenSSL asks for a
 * whole buffer at once): one that got less than it asked for, or nothing,
 * left the socket empty.  With nothing left inside OpenSSL either, another
 * SSL_read could only hear EAGAIN, and the edge-triggered watcher will
 * tell when more comes. */
static long bio_watch(BIO *b, int oper, const char *argp, size_t len, int argi, long argl, int ret,
                      size_t *processed)
{
    (void)argp;
    (void)argi;
    (void)argl;
    if (oper == (BIO_CB_READ | BIO_CB_RETURN)) {
        pants__tls_t *t = (pants__tls_t *)BIO_get_callback_arg(b);
        t->sock_drained = ret <= 0 || processed == NULL || *processed < len;
    }
    return ret;
}

int pants__tls_attach(pants__tls_t *t, int fd)
{
    BIO *rbio;

    if (SSL_set_fd(t->ssl, fd) != 1) {
        ERR_clear_error();
        return -ENOMEM;
    }
    rbio = SSL_get_rbio(t->ssl);
    if (SSL_get_read_ahead(t->ssl) && rbio != NULL) {
        BIO_set_callback_arg(rbio, (char *)t);
        BIO_set_callback_ex(rbio, bio_watch);
        t->watched = true;
    }
    return 0;
}

void pants__tls_free(pants__tls_t *t)
{
    if (t == NULL)
        return;
    if (t->ssl != NULL && t->done) { /* close_notify, once, without waiting */
        ERR_clear_error();
        SSL_shutdown(t->ssl);
        ERR_clear_error();
    }
    SSL_free(t->ssl);
    free(t->name);
    free(t);
}

/* After a failed call: -EAGAIN (wait for the socket) or the failure. */
static int failed(pants__tls_t *t, int rc, const char *what)
{
    int e = SSL_get_error(t->ssl, rc);

    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return -EAGAIN;
    if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) { /* the socket said no */
        int err = errno ? -errno : -ECONNRESET;
        ERR_clear_error();
        return err == -EAGAIN ? -ECONNRESET : err;
    }
    note_ssl_failure(t->ssl, what);
    return PANTS_ETLS;
}

int pants__tls_handshake(pants__tls_t *t)
{
    int rc;

    ERR_clear_error();
    errno = 0;
    rc = SSL_do_handshake(t->ssl);
    if (rc == 1) {
#ifdef SSL_OP_ENABLE_KTLS
        t->ktls = BIO_get_ktls_send(SSL_get_wbio(t->ssl)) > 0;
#endif
        t->done = true;
        return 0;
    }
    return failed(t, rc, "TLS handshake failed");
}

bool pants__tls_may_have_more(const pants__tls_t *t)
{
    return !t->watched || !t->sock_drained || SSL_has_pending(t->ssl) == 1;
}

bool pants__tls_read_wants_write(const pants__tls_t *t)
{
    return t->read_wants_write;
}

bool pants__tls_write_wants_read(const pants__tls_t *t)
{
    return t->write_wants_read;
}

struct ssl_st *pants__tls_ssl(const pants__tls_t *t)
{
    return t ? t->ssl : NULL;
}

bool pants__tls_is_server(const pants__tls_t *t)
{
    return t->server;
}

/* ---- The transport ------------------------------------------------------------ */

static ssize_t tls_recv(void *io, void *buf, size_t len)
{
    pants__tls_t *t = io;
    size_t got = 0;
    int rc, e;

    errors_cleared();
    errno = 0;
    rc = SSL_read_ex(t->ssl, buf, len, &got);
    t->read_wants_write = false;
    if (rc == 1)
        return (ssize_t)got;
    e = SSL_get_error(t->ssl, rc);
    if (e == SSL_ERROR_ZERO_RETURN) /* close_notify, or an EOF without one */
        return 0;
    if (e == SSL_ERROR_WANT_WRITE)
        t->read_wants_write = true;
    return failed(t, rc, "TLS read failed");
}

/* The next record's plaintext: iov's first bytes, copied into rec when
 * they are spread over several iovecs.  Its length: at most RECORD_MAX, or
 * exactly what a retried write had. */
static size_t gather_record(pants__tls_t *t, const struct iovec *iov, int n, unsigned char *rec,
                            const void **out)
{
    size_t want = t->retry_len ? t->retry_len : RECORD_MAX, have = 0;

    if (iov[0].iov_len >= want || n == 1) {
        *out = iov[0].iov_base;
        return iov[0].iov_len < want ? iov[0].iov_len : want;
    }
    for (int i = 0; i < n && have < want; i++) {
        size_t take = iov[i].iov_len < want - have ? iov[i].iov_len : want - have;
        memcpy(rec + have, iov[i].iov_base, take);
        have += take;
    }
    *out = rec;
    return have;
}

/* Skip done bytes of iov (a local copy of the caller's). */
static void advance(struct iovec **iov, int *n, size_t done)
{
    while (*n > 0 && done >= (*iov)->iov_len) {
        done -= (*iov)->iov_len;
        (*iov)++;
        (*n)--;
    }
    if (*n > 0) {
        (*iov)->iov_base = (unsigned char *)(*iov)->iov_base + done;
        (*iov)->iov_len -= done;
    }
}

/* Records of at most 16 KiB until the iovecs are sent or OpenSSL waits. */
static ssize_t tls_send(void *io, const struct iovec *iov, int n)
{
    pants__tls_t *t = io;
    unsigned char rec[RECORD_MAX];
    struct iovec local[64], *cur = local;
    size_t total = 0;

    n = n < 64 ? n : 64;
    memcpy(local, iov, (size_t)n * sizeof(*iov));
    while (n > 0) {
        const void *p;
        size_t len = gather_record(t, cur, n, rec, &p), wrote = 0;
        errors_cleared();
        errno = 0;
        int rc = SSL_write_ex(t->ssl, p, len, &wrote);
        if (rc != 1) {
            int e = SSL_get_error(t->ssl, rc);
            t->write_wants_read = e == SSL_ERROR_WANT_READ;
            t->retry_len = (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) ? len : 0;
            if (total > 0 && t->retry_len)
                return (ssize_t)total;
            return failed(t, rc, "TLS write failed");
        }
        t->retry_len = 0;
        t->write_wants_read = false;
        total += wrote;
        advance(&cur, &n, wrote);
    }
    return (ssize_t)total;
}

#ifdef SSL_OP_ENABLE_KTLS
static ssize_t tls_sendfile(void *io, int fd, off_t *off, size_t len)
{
    pants__tls_t *t = io;
    ossl_ssize_t n;

    ERR_clear_error();
    errno = 0;
    n = SSL_sendfile(t->ssl, fd, *off, len, 0);
    if (n > 0) {
        *off += n;
        return n;
    }
    if (BIO_should_retry(SSL_get_wbio(t->ssl)) || errno == EAGAIN) {
        ERR_clear_error();
        return -EAGAIN;
    }
    return failed(t, (int)n, "TLS sendfile failed");
}
#endif

static int tls_shutdown(void *io)
{
    pants__tls_t *t = io;
    int rc;

    ERR_clear_error();
    rc = SSL_shutdown(t->ssl);
    ERR_clear_error();
    return rc >= 0 ? 0 : -EAGAIN;
}

static const pants__transport_t tls_plain_records = {"tls", tls_recv, tls_send, NULL, tls_shutdown};

#ifdef SSL_OP_ENABLE_KTLS
static const pants__transport_t tls_kernel_records = {"ktls", tls_recv, tls_send, tls_sendfile, tls_shutdown};
#endif

const pants__transport_t *pants__tls_transport(const pants__tls_t *t)
{
#ifdef SSL_OP_ENABLE_KTLS
    if (t->ktls)
        return &tls_kernel_records;
#endif
    (void)t;
    return &tls_plain_records;
}

#else /* !HAVE_OPENSSL: the calls exist and say so */

void pants__tls_note_error(const char *why)
{
    pants__error_detail(PANTS_ETLS, why);
}

struct ssl_ctx_st *pants_tls_server_ctx(const pants_tls_options_t *o)
{
    (void)o;
    errno = ENOTSUP;
    return NULL;
}

struct ssl_ctx_st *pants_tls_client_ctx(const pants_tls_options_t *o)
{
    (void)o;
    errno = ENOTSUP;
    return NULL;
}

void pants_tls_ctx_free(struct ssl_ctx_st *ctx)
{
    (void)ctx;
}

bool pants__tls_ctx_is_server(struct ssl_ctx_st *ctx)
{
    (void)ctx;
    return false;
}

int pants__tls_ctx_hold(struct ssl_ctx_st *ctx)
{
    (void)ctx;
    return -ENOTSUP;
}

void pants__tls_ctx_release(struct ssl_ctx_st *ctx)
{
    (void)ctx;
}

pants__tls_t *pants__tls_new(struct ssl_ctx_st *ctx, bool server, const char *server_name, int *err)
{
    (void)ctx;
    (void)server;
    (void)server_name;
    *err = -ENOTSUP;
    return NULL;
}

int pants__tls_attach(pants__tls_t *t, int fd)
{
    (void)t;
    (void)fd;
    return -ENOTSUP;
}

void pants__tls_free(pants__tls_t *t)
{
    (void)t;
}

int pants__tls_handshake(pants__tls_t *t)
{
    (void)t;
    return -ENOTSUP;
}

const pants__transport_t *pants__tls_transport(const pants__tls_t *t)
{
    (void)t;
    return &pants__plain_transport;
}

bool pants__tls_may_have_more(const pants__tls_t *t)
{
    (void)t;
    return false;
}

bool pants__tls_read_wants_write(const pants__tls_t *t)
{
    (void)t;
    return false;
}

bool pants__tls_write_wants_read(const pants__tls_t *t)
{
    (void)t;
    return false;
}

struct ssl_st *pants__tls_ssl(const pants__tls_t *t)
{
    (void)t;
    return NULL;
}

bool pants__tls_is_server(const pants__tls_t *t)
{
    (void)t;
    return false;
}

#endif /* HAVE_OPENSSL */
