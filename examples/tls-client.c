/* tls-client.c -- a TLS client on pants: a small `openssl s_client -quiet`.
 *
 *   examples/tls-client ADDR [--servername NAME] [--ca FILE] [--insecure]
 *                       [--alpn LIST] [--cert FILE [--key FILE]] [--ktls]
 *
 * Connects to ADDR with TLS from the first byte (pants_stream_start_tls
 * before pants_stream_connect), says on stderr what the handshake agreed
 * on (version, cipher, ALPN), then copies stdin to the server and what
 * the server sends to stdout.  The server's certificate is verified
 * against --ca (default: the system's store) and must match --servername
 * (default: the host in ADDR), which is also sent as SNI; --insecure
 * skips the check (tests only).  A handshake that fails or a certificate
 * that does not verify is reported with pants' reason, and the exit
 * status is 1.  The end of stdin ends the connection (what is queued goes
 * out, then a close_notify; replies still on their way are not waited
 * for); the server closing ends the program.
 *
 * stdin is read by a thread of its own, since read(2) on it blocks: the
 * thread fills one buffer under a mutex and posts a drain to the stream's
 * loop (pants_stream_post), the only way another thread may reach a
 * stream.  The loop drains the buffer only while the stream is writable,
 * and the thread waits while the buffer is full, so a server that does
 * not read slows stdin down instead of growing the queue.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "pants.h"

#define CHUNK              16384 /* bytes of stdin handed over at a time */
#define CONNECT_TIMEOUT_MS 10000 /* bounds the connect and the handshake */

/* stdin on its way from the reader thread to the stream's loop. */
static struct {
    pthread_mutex_t mu;  /* guards the rest */
    pthread_cond_t room; /* buf was drained, or the stream closed */
    char buf[CHUNK];     /* bytes read, not yet written to the stream */
    size_t len;          /* bytes in buf */
    bool eof;            /* stdin ended (or failed) */
    bool posted;         /* a drain is on its way to the loop */
    bool closed;         /* the stream closed: post nothing more */
} in = {.mu = PTHREAD_MUTEX_INITIALIZER, .room = PTHREAD_COND_INITIALIZER};

static pants_engine_t *engine; /* stopped when the stream closes */
static const char *address;    /* ADDR, for messages */
static bool show_ktls;         /* --ktls: say whether the kernel took over */
static int exit_status;        /* 1 after a failure */

/* The loop's side: hand what stdin gave to the stream, and end it after
 * stdin's EOF.  Not while the stream is above its high watermark: then
 * on_write_low calls again. */
static void drain(pants_stream_t *s, void *arg)
{
    char chunk[CHUNK];
    size_t len;
    bool eof;

    (void)arg;
    if (!pants_stream_is_writable(s))
        return; /* in.posted stays set: on_write_low drains */
    pthread_mutex_lock(&in.mu);
    len = in.len;
    memcpy(chunk, in.buf, len);
    in.len = 0;
    eof = in.eof;
    in.posted = false;
    pthread_cond_signal(&in.room);
    pthread_mutex_unlock(&in.mu);
    if (len > 0)
        pants_stream_write(s, chunk, len);
    if (eof)
        pants_stream_end(s);
}

/* The reader thread: read stdin into in.buf while there is room, and post
 * a drain when none is on its way.  s is touched only under in.mu and
 * before the stream's on_close has taken it. */
static void *read_stdin(void *arg)
{
    pants_stream_t *s = arg;
    char chunk[CHUNK];
    bool more = true;

    while (more) {
        size_t room;
        ssize_t n;

        pthread_mutex_lock(&in.mu);
        while (in.len == CHUNK && !in.closed)
            pthread_cond_wait(&in.room, &in.mu);
        room = CHUNK - in.len;
        pthread_mutex_unlock(&in.mu);
        do
            n = read(STDIN_FILENO, chunk, room);
        while (n < 0 && errno == EINTR);
        pthread_mutex_lock(&in.mu);
        if (n > 0) {
            memcpy(in.buf + in.len, chunk, (size_t)n);
            in.len += (size_t)n;
        } else {
            in.eof = true;
            more = false;
        }
        if (in.closed)
            more = false;
        else if (!in.posted) {
            in.posted = pants_stream_post(s, drain, NULL) == 0;
            more = more && in.posted; /* a post fails once the engine stops */
        }
        pthread_mutex_unlock(&in.mu);
    }
    return NULL;
}

/* What the handshake agreed on, on stderr. */
static void say_connected(pants_stream_t *s)
{
    SSL *ssl = pants_stream_ssl(s);
    const unsigned char *alpn = NULL;
    unsigned alpn_len = 0;

    SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
    fprintf(stderr, "tls-client: connected to %s: %s, %s, ALPN %.*s, certificate %s\n", address,
            SSL_get_version(ssl), SSL_get_cipher_name(ssl), alpn_len ? (int)alpn_len : 4,
            alpn_len ? (const char *)alpn : "none",
            SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER ? "verified" : "NOT verified (--insecure)");
#if defined(BIO_get_ktls_send) && defined(BIO_get_ktls_recv)
    if (show_ktls)
        fprintf(stderr, "tls-client: kernel TLS: send %s, receive %s\n",
                BIO_get_ktls_send(SSL_get_wbio(ssl)) > 0 ? "on" : "off",
                BIO_get_ktls_recv(SSL_get_rbio(ssl)) > 0 ? "on" : "off");
#else
    if (show_ktls)
        fprintf(stderr, "tls-client: kernel TLS: not in this OpenSSL\n");
#endif
}

static void on_connect(pants_stream_t *s)
{
    pthread_t reader;
    int rc;

    say_connected(s);
    rc = pthread_create(&reader, NULL, read_stdin, s);
    if (rc != 0) {
        fprintf(stderr, "tls-client: reading stdin: %s\n", strerror(rc));
        exit_status = 1;
        pants_stream_close(s);
        return;
    }
    pthread_detach(reader); /* blocked in read(2) at exit, at worst */
}

/* A connect, handshake or verification that failed; pants_strerror names
 * a TLS failure's reason on this thread, inside this callback. */
static void on_connect_error(pants_stream_t *s, int err)
{
    fprintf(stderr, "tls-client: %s: %s\n", address, pants_strerror(err));
    exit_status = 1;
    pants_stream_close(s);
}

static void on_error(pants_stream_t *s, int err)
{
    fprintf(stderr, "tls-client: %s: %s\n", address, pants_strerror(err));
    exit_status = 1;
    pants_stream_close(s);
}

static void on_read(pants_stream_t *s, const void *data, size_t len)
{
    if (fwrite(data, 1, len, stdout) != len || fflush(stdout) != 0) {
        fprintf(stderr, "tls-client: stdout: %s\n", strerror(errno));
        exit_status = 1;
        pants_stream_close(s);
    }
}

/* Nothing to do but keep reading the server while stdin waits: without
 * this, the stream would stop reading, and a server that echoes would
 * stop too, each waiting for the other. */
static void on_write_high(pants_stream_t *s)
{
    (void)s;
}

static void on_write_low(pants_stream_t *s)
{
    drain(s, NULL);
}

static void on_close(pants_stream_t *s)
{
    (void)s;
    pthread_mutex_lock(&in.mu);
    in.closed = true;
    pthread_cond_signal(&in.room);
    pthread_mutex_unlock(&in.mu);
    pants_engine_stop(engine);
}

static int usage(const char *prog, int status)
{
    fprintf(status ? stderr : stdout,
            "usage: %s ADDR [options]\n"
            "  ADDR                 host:port, [v6]:port or unix:/path\n"
            "  --servername NAME    SNI, and the name the certificate must match\n"
            "                       (default: the host in ADDR)\n"
            "  --ca FILE            verify the server against these PEM CAs\n"
            "                       (default: the system's store)\n"
            "  --insecure           do not verify the server (tests only)\n"
            "  --alpn LIST          offer these ALPN protocols, e.g. h2,http/1.1\n"
            "  --cert FILE          a client certificate (PEM), for servers that ask\n"
            "  --key FILE           its private key (default: in --cert)\n"
            "  --ktls               let the kernel encrypt where it can; say if it does\n"
            "  --help               this text\n"
            "stdin goes to the server, what it sends to stdout; the handshake's\n"
            "outcome goes to stderr.  Exit status 1 if the connection failed.\n",
            prog);
    return status;
}

/* The host in "host:port" or "[v6]:port" into buf, or false. */
static bool host_of(const char *addr, char *buf, size_t size)
{
    const char *start = addr, *end;

    if (strncmp(addr, "unix:", 5) == 0)
        return false;
    if (addr[0] == '[') {
        start = addr + 1;
        end = strchr(start, ']');
    } else
        end = strrchr(addr, ':');
    if (end == NULL || end == start || (size_t)(end - start) >= size)
        return false;
    memcpy(buf, start, (size_t)(end - start));
    buf[end - start] = '\0';
    return true;
}

/* The stream, TLS on it, and the connect; the engine runs it after. */
static int start_client(pants_tls_options_t *o, const char *servername)
{
    static const pants_stream_callbacks_t cb = {
        .on_connect = on_connect,
        .on_connect_error = on_connect_error,
        .on_read = on_read,
        .on_error = on_error,
        .on_write_high = on_write_high,
        .on_write_low = on_write_low,
        .on_close = on_close,
    };
    struct ssl_ctx_st *ctx = pants_tls_client_ctx(o);
    pants_stream_t *s;
    int rc;

    if (ctx == NULL) {
        rc = -errno;
        fprintf(stderr, "tls-client: --ca/--cert/--key/--alpn: %s\n",
                rc == -EINVAL ? pants_strerror(PANTS_ETLS) : pants_strerror(rc));
        return rc;
    }
    s = pants_stream_new(pants_engine_loop(engine, 0), &cb, NULL);
    if (s == NULL)
        rc = -errno;
    else if ((rc = pants_stream_start_tls(s, ctx, servername)) == 0 &&
             (rc = pants_stream_set_connect_timeout(s, CONNECT_TIMEOUT_MS)) == 0)
        rc = pants_stream_connect(s, address);
    if (rc < 0) {
        fprintf(stderr, "tls-client: %s: %s\n", address, pants_strerror(rc));
        if (s != NULL)
            pants_stream_close(s);
    }
    pants_tls_ctx_free(ctx); /* the stream keeps its own reference */
    return rc;
}

int main(int argc, char **argv)
{
    pants_engine_options_t opts = {.threads = 1};
    pants_tls_options_t tls = {0};
    const char *servername = NULL;
    char host[256];

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return usage(argv[0], 0);
        else if (strcmp(arg, "--insecure") == 0)
            tls.insecure = true;
        else if (strcmp(arg, "--ktls") == 0)
            tls.ktls = show_ktls = true;
        else if (arg[0] != '-' && address == NULL)
            address = arg;
        else if (i + 1 == argc)
            return usage(argv[0], 2);
        else if (strcmp(arg, "--servername") == 0)
            servername = argv[++i];
        else if (strcmp(arg, "--ca") == 0)
            tls.ca_file = argv[++i];
        else if (strcmp(arg, "--alpn") == 0)
            tls.alpn = argv[++i];
        else if (strcmp(arg, "--cert") == 0)
            tls.cert_file = argv[++i];
        else if (strcmp(arg, "--key") == 0)
            tls.key_file = argv[++i];
        else
            return usage(argv[0], 2);
    }
    if (address == NULL)
        return usage(argv[0], 2);
    if (servername == NULL && host_of(address, host, sizeof(host)))
        servername = host;
    engine = pants_engine_new(&opts);
    if (engine == NULL) {
        perror("tls-client: pants_engine_new");
        return 1;
    }
    if (start_client(&tls, servername) < 0) {
        pants_engine_free(engine);
        return 1;
    }
    if (pants_engine_run(engine) != 0)
        exit_status = 1;
    pants_engine_free(engine);
    return exit_status;
}
