/* http-internal.h -- what the parts of examples/http share.
 *
 * http.c reads the command line, runs the engine, keeps the per-loop state
 * (the Date of this second, the ready-made replies) and drains on SIGTERM;
 * http-conn.c is a connection's state machine (head, body, chunks,
 * trailers) and the replies; http-parse.c parses what a client sends
 * (request head, chunk sizes, Range, dates, paths) without any I/O;
 * http-file.c serves --root.  Everything a loop touches is its own: a
 * worker, its connections and their requests belong to one loop thread.
 */
#ifndef HTTP_INTERNAL_H
#define HTTP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "pants.h"

#define HTTP_DATE_LEN  29   /* "Sun, 06 Nov 1994 08:49:37 GMT" */
#define HTTP_HEAD_MAX  1024 /* room for the longest reply head built */
#define HTTP_FIXED_MAX 256  /* room for a whole ready-made reply */
#define HTTP_EMPTY     (-1) /* http_parse_head: only blank lines, nothing to answer */

/* ---- Configuration: set by main before the engine runs, then read-only - */

typedef struct http_config_s {
    uint64_t max_body;     /* --max-body: largest request body, bytes */
    size_t max_head;       /* --max-head: the read limit a head must fit in */
    uint64_t header_ms;    /* --header-timeout: the FRAME timeout */
    uint64_t keepalive_ms; /* --keepalive-timeout: the IDLE timeout; 0 = none */
    int root_fd;           /* --root as an O_PATH directory; -1 = no files */
    bool openat2;          /* resolve paths with openat2(RESOLVE_BENEATH) */
    bool access_log;       /* --access-log: a line per request on stdout */
} http_config_t;

extern http_config_t http_config;

/* ---- Requests ------------------------------------------------------------ */

/* Bytes of a head: valid while the head is (on_read's data, or a copy). */
typedef struct http_span_s {
    const char *p; /* first byte */
    size_t len;    /* how many */
} http_span_t;

enum http_route {
    HTTP_ROUTE_NONE,      /* nothing here: 404 */
    HTTP_ROUTE_PLAINTEXT, /* /plaintext */
    HTTP_ROUTE_JSON,      /* /json */
    HTTP_ROUTE_ECHO,      /* /echo: the body back */
    HTTP_ROUTE_FILE,      /* a file under --root */
};

typedef struct http_request_s {
    http_span_t method;   /* "GET" */
    http_span_t target;   /* the request-target as sent (for the log) */
    http_span_t path;     /* its path, before '?'; absolute-form without scheme and host */
    http_span_t range;    /* Range, or empty */
    http_span_t if_range; /* If-Range, or empty */
    http_span_t ims;      /* If-Modified-Since, or empty */
    uint64_t length;      /* Content-Length, when has_length */
    unsigned char minor;  /* HTTP/1.minor: 0 or 1 */
    unsigned char route;  /* enum http_route, set by the connection */
    bool head;            /* the method is HEAD: no body in the reply */
    bool has_length;      /* a Content-Length came */
    bool chunked;         /* Transfer-Encoding: chunked */
    bool te_other;        /* a transfer coding other than chunked: 501 */
    bool te_seen;         /* a Transfer-Encoding came */
    bool has_host;        /* a Host came */
    bool conn_close;      /* Connection: close */
    bool conn_keep;       /* Connection: keep-alive */
    bool keep_alive;      /* the connection stays open after the reply */
    bool expect_continue; /* Expect: 100-continue */
} http_request_t;

/* ---- Loops and connections ------------------------------------------------ */

typedef struct http_conn_s http_conn_t;

/* One per worker loop, touched by that loop's thread only. */
typedef struct http_worker_s {
    _Alignas(64) pants_loop_t *loop; /* the loop (own cache lines: no false sharing) */
    http_conn_t *conns;              /* its open connections */
    bool draining;                   /* SIGTERM seen: every reply closes its connection */
    time_t second;                   /* the second date and the replies were made for */
    char date[HTTP_DATE_LEN + 1];    /* that second as an IMF-fixdate */
    char log_time[32];               /* and for the access log: "06/Nov/1994:08:49:37 +0000" */
    char plaintext[HTTP_FIXED_MAX];  /* the whole keep-alive reply to GET /plaintext */
    size_t plaintext_len;            /* its length */
    char json[HTTP_FIXED_MAX];       /* the whole keep-alive reply to GET /json */
    size_t json_len;                 /* its length */
    char head[HTTP_HEAD_MAX];        /* scratch: a reply head being built */
} http_worker_t;

struct http_conn_s {
    http_conn_t *prev;    /* the worker's list */
    http_conn_t *next;    /* the worker's list */
    http_worker_t *w;     /* the loop it is pinned to */
    pants_stream_t *s;    /* the connection */
    unsigned char state;  /* what the next on_read brings (http-conn.c) */
    http_request_t req;   /* the request being read or answered */
    char *head_copy;      /* req's head, kept while its body is read; or NULL */
    char *body;           /* a chunked /echo body so far, or NULL */
    size_t body_len;      /* bytes in body */
    size_t body_cap;      /* bytes allocated for body */
    uint64_t body_seen;   /* chunked: data bytes so far (against --max-body) */
    size_t trailer_bytes; /* chunked: trailer bytes so far (against --max-head) */
    char peer[64];        /* the remote address, for the access log */
};

/* http.c: the worker of a loop; connections counted for the drain. */
http_worker_t *http_worker_of(pants_loop_t *l);
bool http_is_stopping(void);
void http_conn_counted(void);
void http_conn_uncounted(void);

/* http-conn.c */
extern const pants_stream_callbacks_t http_conn_callbacks;
void http_on_accept(pants_server_t *srv, pants_stream_t *s);
void http_worker_drain(http_worker_t *w, uint64_t idle_ms);
void http_worker_refresh(http_worker_t *w, time_t now);

/* Reply building (http-conn.c): start writes the status line, Server and
 * Date into w->head and returns where the next header goes; end adds the
 * Connection header the request calls for and the blank line, and returns
 * the head's length; done logs the request and readies the next (or ends
 * the connection). */
char *http_reply_start(http_worker_t *w, int status);
size_t http_reply_end(http_conn_t *c, char *p);
void http_reply_done(http_conn_t *c, int status, uint64_t bytes);
void http_reply(http_conn_t *c, int status, const char *ctype, const char *extra, const void *body,
                size_t len);
void http_reply_error(http_conn_t *c, int status);
char *http_put(char *p, const char *s);
char *http_put_u64(char *p, uint64_t n);
const char *http_status_text(int status);

/* http-parse.c: 0 or the status to reply (400, 413, 414, 501, 505). */
int http_parse_head(const char *p, size_t len, http_request_t *r);
void http_request_rebase(http_request_t *r, const char *from, size_t len, const char *to);
int http_parse_chunk_size(const char *p, size_t len, uint64_t *size);
int http_check_field(const char *p, size_t len);
int http_decode_path(http_span_t path, char *out, size_t cap);
int http_parse_range(http_span_t v, uint64_t size, uint64_t *first, uint64_t *last);
bool http_parse_date(http_span_t v, time_t *t);
void http_format_date(time_t t, char out[HTTP_DATE_LEN + 1]);
bool http_span_is(http_span_t v, const char *lit);
bool http_span_ieq(http_span_t v, const char *lit);

/* http-file.c */
int http_files_open(const char *dir, bool use_openat2);
void http_serve_file(http_conn_t *c);

#endif /* HTTP_INTERNAL_H */
