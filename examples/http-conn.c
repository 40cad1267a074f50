/* http-conn.c -- one HTTP/1.1 connection, built from read delimiters.
 *
 * A connection is a small state machine whose states are the stream's
 * read delimiters: the head is the frame before "\r\n\r\n"; a
 * Content-Length body one read_exact frame; a chunked body alternates a
 * chunk-size line (the frame before "\r\n") and read_exact(size + 2) for
 * the chunk and its CRLF, then trailer lines up to a blank one.  Each
 * on_read gets one complete frame, so nothing here buffers or rescans, and
 * a request without a body never changes the delimiter at all.
 *
 * Replies are written from on_read, in request order: several requests
 * that arrive in one read (pipelining) are all answered before the stream
 * flushes, and pants sends everything written inside one I/O callback
 * with one system call.  The keep-alive replies to GET /plaintext and
 * GET /json are made whole once a second per loop (http_worker_refresh,
 * with that second's Date) and cost one copy each; other replies get their
 * head built into the worker's scratch from constant pieces, without
 * printf.  Nothing is allocated per request unless it has a body.
 *
 * Errors: a malformed head is a 400, a body over --max-body a 413, a head
 * over the read limit a 431 (on_overflow), a head not complete within
 * --header-timeout a 408 (the FRAME timeout; a body may take longer but
 * not pause that long: the READ timeout while it is read), an unknown
 * transfer coding a 501, another HTTP version a 505; after any of them
 * the reply says "Connection: close" and the stream ends.  An idle
 * connection closes silently after --keepalive-timeout (the IDLE
 * timeout).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http-internal.h"

enum conn_state {
    ST_HEAD,       /* read_until "\r\n\r\n": the next request's head */
    ST_BODY,       /* read_exact(Content-Length): the body */
    ST_CHUNK_SIZE, /* read_until "\r\n": a chunk-size line */
    ST_CHUNK_DATA, /* read_exact(size + 2): a chunk and its CRLF */
    ST_TRAILER,    /* read_until "\r\n": a trailer field, or the blank line that ends them */
    ST_DONE,       /* the last reply is queued (or the stream failed): reads are ignored */
};

static const char head_delim[] = "\r\n\r\n";
static const char line_delim[] = "\r\n";
static const char plaintext_body[] = "Hello, World!";
static const char json_body[] = "{\"message\":\"Hello, World!\"}";
static const char continue_reply[] = "HTTP/1.1 100 Continue\r\n\r\n";

const char *http_status_text(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 206:
        return "Partial Content";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 416:
        return "Range Not Satisfiable";
    case 431:
        return "Request Header Fields Too Large";
    case 501:
        return "Not Implemented";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Internal Server Error";
    }
}

/* ---- Building replies ----------------------------------------------------- */

char *http_put(char *p, const char *s)
{
    size_t n = strlen(s);

    memcpy(p, s, n);
    return p + n;
}

char *http_put_u64(char *p, uint64_t n)
{
    char digits[20];
    int i = 0;

    do
        digits[i++] = (char)('0' + n % 10);
    while ((n /= 10) != 0);
    while (i > 0)
        *p++ = digits[--i];
    return p;
}

char *http_reply_start(http_worker_t *w, int status)
{
    char *p = http_put(w->head, "HTTP/1.1 ");

    p = http_put_u64(p, (uint64_t)status);
    *p++ = ' ';
    p = http_put(p, http_status_text(status));
    p = http_put(p, "\r\nServer: pants\r\nDate: ");
    memcpy(p, w->date, HTTP_DATE_LEN);
    return http_put(p + HTTP_DATE_LEN, "\r\n");
}

size_t http_reply_end(http_conn_t *c, char *p)
{
    if (!c->req.keep_alive)
        p = http_put(p, "Connection: close\r\n");
    else if (c->req.minor == 0)
        p = http_put(p, "Connection: keep-alive\r\n");
    p = http_put(p, "\r\n");
    return (size_t)(p - c->w->head);
}

/* Queue bytes; a stream that cannot take them is closed. */
static bool send_bytes(http_conn_t *c, const void *data, size_t len)
{
    if (pants_stream_write(c->s, data, len) == 0)
        return true;
    pants_stream_close(c->s);
    c->state = ST_DONE;
    return false;
}

void http_reply(http_conn_t *c, int status, const char *ctype, const char *extra, const void *body,
                size_t len)
{
    char *p = http_reply_start(c->w, status);
    bool with_body = !c->req.head && len > 0;

    if (ctype != NULL) {
        p = http_put(p, "Content-Type: ");
        p = http_put(p, ctype);
        p = http_put(p, "\r\n");
    }
    if (extra != NULL)
        p = http_put(p, extra);
    p = http_put(p, "Content-Length: ");
    p = http_put(http_put_u64(p, len), "\r\n");
    if (send_bytes(c, c->w->head, http_reply_end(c, p)) && with_body)
        send_bytes(c, body, len);
    http_reply_done(c, status, with_body ? len : 0);
}

void http_reply_error(http_conn_t *c, int status)
{
    char body[64];
    char *p = http_put(body, http_status_text(status));

    *p++ = '\n';
    c->req.keep_alive = false;
    http_reply(c, status, "text/plain", NULL, body, (size_t)(p - body));
}

/* ---- After a reply ------------------------------------------------------ */

/* A span for the log: "-" when empty. */
static http_span_t or_dash(http_span_t v)
{
    return v.len > 0 ? v : (http_span_t){"-", 1};
}

/* --access-log: the common log format, the remote address first (the one
 * the PROXY protocol header named, with --proxy-protocol). */
static void log_request(const http_conn_t *c, int status, uint64_t bytes)
{
    const http_request_t *r = &c->req;
    http_span_t m = or_dash(r->method), t = or_dash(r->target);

    if (r->method.len == 0)
        printf("%s - - [%s] \"-\" %d %llu\n", c->peer, c->w->log_time, status, (unsigned long long)bytes);
    else
        printf("%s - - [%s] \"%.*s %.*s HTTP/1.%u\" %d %llu\n", c->peer, c->w->log_time, (int)m.len, m.p,
               (int)t.len, t.p, r->minor, status, (unsigned long long)bytes);
}

/* Go to state, whose delimiter call returned rc; a failed call closes. */
static void expect(http_conn_t *c, int state, int rc)
{
    if (rc < 0) {
        pants_stream_close(c->s);
        state = ST_DONE;
    }
    c->state = (unsigned char)state;
}

/* A head must be whole within --header-timeout (the FRAME timeout); a
 * body may take longer, but not pause for that long (READ), so a slow
 * upload is not mistaken for a slow head.  false if a limit cannot be set. */
static bool body_timeouts(http_conn_t *c, bool body)
{
    uint64_t ms = http_config.header_ms;

    return pants_stream_set_timeout(c->s, PANTS_TIMEOUT_FRAME, body ? 0 : ms) == 0 &&
           pants_stream_set_timeout(c->s, PANTS_TIMEOUT_READ, body ? ms : 0) == 0;
}

static void forget_request(http_conn_t *c)
{
    if (c->head_copy != NULL || c->body != NULL) { /* only a request that had a body */
        free(c->head_copy);
        free(c->body);
        c->head_copy = NULL;
        c->body = NULL;
        c->body_len = c->body_cap = 0;
    }
    memset(&c->req, 0, sizeof(c->req));
}

void http_reply_done(http_conn_t *c, int status, uint64_t bytes)
{
    bool keep_alive = c->req.keep_alive;

    if (http_config.access_log)
        log_request(c, status, bytes);
    forget_request(c);
    if (c->state == ST_DONE)
        return; /* a write failed: closed */
    if (!keep_alive) {
        c->state = ST_DONE;
        pants_stream_end(c->s);
    } else if (c->state != ST_HEAD)
        expect(c, ST_HEAD, body_timeouts(c, false) ? pants_stream_read_until(c->s, head_delim, 4) : -ENOMEM);
}

/* ---- Routes -------------------------------------------------------------- */

static enum http_route route_of(http_span_t path)
{
    if (http_span_is(path, "/plaintext"))
        return HTTP_ROUTE_PLAINTEXT;
    if (http_span_is(path, "/json"))
        return HTTP_ROUTE_JSON;
    if (http_span_is(path, "/echo"))
        return HTTP_ROUTE_ECHO;
    return http_config.root_fd >= 0 ? HTTP_ROUTE_FILE : HTTP_ROUTE_NONE;
}

static void reply_not_allowed(http_conn_t *c, const char *allow)
{
    char extra[64];

    *http_put(http_put(http_put(extra, "Allow: "), allow), "\r\n") = '\0';
    http_reply(c, 405, "text/plain", extra, "Method Not Allowed\n", 19);
}

/* /plaintext and /json: the ready-made reply when it fits the request. */
static void reply_hello(http_conn_t *c, const char *fixed, size_t fixed_len, const char *ctype,
                        const char *body, size_t len)
{
    const http_request_t *r = &c->req;

    if (!r->head && !http_span_is(r->method, "GET"))
        reply_not_allowed(c, "GET, HEAD");
    else if (r->keep_alive && r->minor == 1 && !r->head) {
        send_bytes(c, fixed, fixed_len);
        http_reply_done(c, 200, len);
    } else
        http_reply(c, 200, ctype, NULL, body, len);
}

/* /echo: the request body back. */
static void reply_echo(http_conn_t *c, const char *body, size_t len)
{
    const http_request_t *r = &c->req;

    if (!http_span_is(r->method, "POST") && !http_span_is(r->method, "PUT"))
        reply_not_allowed(c, "POST, PUT");
    else
        http_reply(c, 200, "application/octet-stream", NULL, body, len);
}

/* The request is complete (its body, if any, is body[0..len)). */
static void respond(http_conn_t *c, const char *body, size_t len)
{
    http_worker_t *w = c->w;

    if (w->draining)
        c->req.keep_alive = false;
    switch (c->req.route) {
    case HTTP_ROUTE_PLAINTEXT:
        reply_hello(c, w->plaintext, w->plaintext_len, "text/plain", plaintext_body,
                    sizeof(plaintext_body) - 1);
        break;
    case HTTP_ROUTE_JSON:
        reply_hello(c, w->json, w->json_len, "application/json", json_body, sizeof(json_body) - 1);
        break;
    case HTTP_ROUTE_ECHO:
        reply_echo(c, body, len);
        break;
    case HTTP_ROUTE_FILE:
        http_serve_file(c);
        break;
    default:
        http_reply(c, 404, "text/plain", NULL, "Not Found\n", 10);
    }
}

/* ---- Reading, state by state ------------------------------------------------ */

/* A head with a body to read: keep a copy of the head (the request points
 * into it), say 100 Continue if asked, and switch the delimiter. */
static void start_body(http_conn_t *c, const char *head, size_t len)
{
    http_request_t *r = &c->req;

    if ((c->head_copy = malloc(len)) == NULL) {
        http_reply_error(c, 500);
        return;
    }
    memcpy(c->head_copy, head, len);
    http_request_rebase(r, head, len, c->head_copy);
    if (r->expect_continue && r->minor == 1 && !send_bytes(c, continue_reply, sizeof(continue_reply) - 1))
        return;
    c->body_seen = 0;
    c->trailer_bytes = 0;
    if (!body_timeouts(c, true))
        expect(c, ST_DONE, -ENOMEM);
    else if (r->chunked)
        expect(c, ST_CHUNK_SIZE, pants_stream_read_until(c->s, line_delim, 2));
    else
        expect(c, ST_BODY, pants_stream_read_exact(c->s, (size_t)r->length));
}

static void on_head(http_conn_t *c, const char *data, size_t len)
{
    http_request_t *r = &c->req;
    int status = http_parse_head(data, len, r);

    if (status == HTTP_EMPTY)
        return;
    if (len > http_config.max_head) /* it came whole: the read limit only bounds what waits */
        http_reply_error(c, 431);
    else if (status != 0)
        http_reply_error(c, status);
    else if (r->has_length && r->length > http_config.max_body)
        http_reply_error(c, 413);
    else {
        r->route = (unsigned char)route_of(r->path);
        if (r->chunked || r->length > 0)
            start_body(c, data, len);
        else
            respond(c, NULL, 0);
    }
}

static void on_chunk_size(http_conn_t *c, const char *line, size_t len)
{
    uint64_t size = 0;
    int status = http_parse_chunk_size(line, len, &size);

    if (status != 0)
        http_reply_error(c, status);
    else if (size == 0)
        c->state = ST_TRAILER; /* the same delimiter: lines */
    else if (size > http_config.max_body - c->body_seen)
        http_reply_error(c, 413);
    else
        expect(c, ST_CHUNK_DATA, pants_stream_read_exact(c->s, (size_t)size + 2));
}

/* Keep a chunk of an /echo body. */
static bool append_body(http_conn_t *c, const char *data, size_t len)
{
    if (c->body_len + len > c->body_cap) {
        size_t cap = c->body_cap ? c->body_cap : 4096;
        while (cap < c->body_len + len)
            cap *= 2;
        char *grown = realloc(c->body, cap);
        if (grown == NULL)
            return false;
        c->body = grown;
        c->body_cap = cap;
    }
    memcpy(c->body + c->body_len, data, len);
    c->body_len += len;
    return true;
}

static void on_chunk_data(http_conn_t *c, const char *data, size_t len)
{
    size_t n = len - 2;

    if (data[n] != '\r' || data[n + 1] != '\n')
        http_reply_error(c, 400);
    else if (c->req.route == HTTP_ROUTE_ECHO && !append_body(c, data, n))
        http_reply_error(c, 500);
    else {
        c->body_seen += n;
        expect(c, ST_CHUNK_SIZE, pants_stream_read_until(c->s, line_delim, 2));
    }
}

static void on_trailer(http_conn_t *c, const char *line, size_t len)
{
    if (len == 0)
        respond(c, c->body, c->body_len);
    else if ((c->trailer_bytes += len + 2) > http_config.max_head)
        http_reply_error(c, 431);
    else if (http_check_field(line, len) != 0)
        http_reply_error(c, 400);
}

static void on_read(pants_stream_t *s, const void *data, size_t len)
{
    http_conn_t *c = pants_stream_data(s);

    switch (c->state) {
    case ST_HEAD:
        on_head(c, data, len);
        break;
    case ST_BODY:
        respond(c, data, len);
        break;
    case ST_CHUNK_SIZE:
        on_chunk_size(c, data, len);
        break;
    case ST_CHUNK_DATA:
        on_chunk_data(c, data, len);
        break;
    case ST_TRAILER:
        on_trailer(c, data, len);
        break;
    default:
        break; /* ending: the rest is not read */
    }
}

/* The read limit passed: a head (or trailers) too large is a 431, a
 * chunk-size line that long a 400. */
static void on_overflow(pants_stream_t *s)
{
    http_conn_t *c = pants_stream_data(s);

    if (c->state == ST_HEAD || c->state == ST_TRAILER)
        http_reply_error(c, 431);
    else if (c->state != ST_DONE)
        http_reply_error(c, 400);
}

/* FRAME: a head begun and not finished in time; READ: a body that
 * stalled: 408.  IDLE (keep-alive, or a drain): close quietly. */
static void on_timeout(pants_stream_t *s, int kind)
{
    http_conn_t *c = pants_stream_data(s);

    if ((kind == PANTS_TIMEOUT_FRAME || kind == PANTS_TIMEOUT_READ) && c != NULL && c->state != ST_DONE)
        http_reply_error(c, 408);
    else
        pants_stream_close(s);
}

static void on_close(pants_stream_t *s)
{
    http_conn_t *c = pants_stream_data(s);

    if (c == NULL)
        return; /* never accepted (draining, or out of memory) */
    if (c->prev)
        c->prev->next = c->next;
    else
        c->w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    forget_request(c);
    free(c);
    http_conn_uncounted();
}

const pants_stream_callbacks_t http_conn_callbacks = {
    .on_read = on_read,
    .on_close = on_close,
    .on_overflow = on_overflow,
    .on_timeout = on_timeout,
};

/* ---- Connections and loops ----------------------------------------------------- */

void http_on_accept(pants_server_t *srv, pants_stream_t *s)
{
    http_conn_t *c = NULL;
    pants_addr_t a;

    (void)srv;
    if (http_is_stopping() || (c = calloc(1, sizeof(*c))) == NULL) {
        pants_stream_close(s); /* draining: no new clients */
        return;
    }
    c->w = http_worker_of(pants_stream_loop(s));
    c->s = s;
    c->next = c->w->conns;
    if (c->next)
        c->next->prev = c;
    c->w->conns = c;
    strcpy(c->peer, "-");
    if (http_config.access_log && pants_stream_remote_address(s, &a) == 0)
        pants_addr_format(&a, c->peer, sizeof(c->peer));
    pants_stream_set_data(s, c);
    http_conn_counted();
    if (pants_stream_read_until(s, head_delim, 4) < 0)
        pants_stream_close(s);
}

/* SIGTERM: from now on every reply closes its connection.  A connection
 * waiting for a head may have part of one buffered (the stream does not
 * say), so it is not cut at once: it closes when nothing arrives for
 * idle_ms, and a request that does arrive is answered first. */
void http_worker_drain(http_worker_t *w, uint64_t idle_ms)
{
    w->draining = true;
    for (http_conn_t *c = w->conns; c != NULL; c = c->next)
        if (c->state == ST_HEAD && pants_stream_set_timeout(c->s, PANTS_TIMEOUT_IDLE, idle_ms) < 0)
            pants_stream_close(c->s);
}

/* A whole keep-alive 200 reply into out, with w's Date; its length. */
static size_t build_fixed(http_worker_t *w, char *out, const char *ctype, const char *body, size_t len)
{
    char *p = http_reply_start(w, 200);

    p = http_put(http_put(http_put(p, "Content-Type: "), ctype), "\r\nContent-Length: ");
    p = http_put(http_put_u64(p, len), "\r\n\r\n");
    memcpy(p, body, len);
    p += len;
    memcpy(out, w->head, (size_t)(p - w->head));
    return (size_t)(p - w->head);
}

/* A new second: Date, the log's time and the ready-made replies. */
void http_worker_refresh(http_worker_t *w, time_t now)
{
    struct tm tm;

    if (now == w->second)
        return;
    w->second = now;
    http_format_date(now, w->date);
    gmtime_r(&now, &tm);
    strftime(w->log_time, sizeof(w->log_time), "%d/%b/%Y:%H:%M:%S +0000", &tm);
    w->plaintext_len = build_fixed(w, w->plaintext, "text/plain", plaintext_body, sizeof(plaintext_body) - 1);
    w->json_len = build_fixed(w, w->json, "application/json", json_body, sizeof(json_body) - 1);
}
