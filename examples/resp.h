/* resp.h -- the Redis protocol (RESP2) for examples/kv: requests in,
 * replies out.  Pure code: no sockets, no threads, so it is unit tested
 * byte by byte (tests/check_resp.c).
 *
 * A request is a multibulk ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n") or an
 * inline line ("GET k\r\n", split as redis-cli's quoting rules say).  The
 * parser is incremental: the caller hands it the bytes of one request from
 * its first byte, as many as have arrived; it remembers how far it got, so
 * bytes arriving one at a time cost no more than all at once.  Every part
 * is bounded (resp_limits_t); a request past a bound, or malformed, is an
 * error with the message Redis gives for it.
 *
 * Replies are built into a growable buffer (resp_buf_t) by the resp_add_*
 * functions, so a whole pipeline of replies leaves in one write.
 */
#ifndef KV_RESP_H
#define KV_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define RESP_NEED_MORE (-2) /* resp_parse: the request is not complete yet */
#define RESP_ERROR     (-1) /* resp_parse: a protocol error, see p->err */

/* Protocol errors, named by resp_strerror. */
enum resp_err {
    RESP_OK = 0,
    RESP_EMBULK_LEN,   /* "*" line: not a number, or too many elements */
    RESP_EMBULK_LINE,  /* "*" line longer than max_inline */
    RESP_EDOLLAR,      /* an element does not start with '$' */
    RESP_EBULK_LEN,    /* "$" line: not a number, negative, or over max_bulk */
    RESP_EBULK_LINE,   /* "$" line longer than max_inline */
    RESP_EBULK_CRLF,   /* bulk data not followed by "\r\n" */
    RESP_EINLINE_LEN,  /* inline line longer than max_inline */
    RESP_EQUOTES,      /* inline line with unbalanced quotes */
    RESP_EREQUEST_LEN, /* the whole request would pass max_request */
    RESP_ENOMEM        /* out of memory */
};

/* Bounds of one request; zero fields take the defaults below. */
typedef struct resp_limits_s {
    size_t max_bulk;    /* longest bulk string (64 MiB) */
    size_t max_args;    /* most elements of a multibulk (1 Mi) */
    size_t max_inline;  /* longest inline line or count line (64 KiB) */
    size_t max_request; /* most bytes of one request (128 MiB) */
} resp_limits_t;

/* One argument of a parsed request. */
typedef struct resp_arg_s {
    const char *ptr; /* its bytes: inside the caller's buffer or the parser's */
    size_t len;      /* how many */
    size_t off;      /* while parsing a multibulk: offset of ptr from the request */
} resp_arg_t;

/* The state of one connection's parser. */
typedef struct resp_parser_s {
    resp_limits_t lim; /* bounds (defaults filled in) */
    int state;         /* where in the request it is (resp.c) */
    size_t pos;        /* bytes of the request parsed so far */
    size_t scan;       /* where the search for a line end resumes */
    size_t left;       /* elements of the multibulk still to read */
    size_t bulk;       /* length of the bulk string being read */
    size_t argc;       /* arguments so far, all of them once complete */
    size_t cap;        /* room in argv */
    resp_arg_t *argv;  /* the arguments */
    char *inl;         /* an inline request's arguments, unquoted */
    size_t inl_cap;    /* room in inl */
    enum resp_err err; /* the last error */
    char got;          /* RESP_EDOLLAR: the byte found instead of '$' */
} resp_parser_t;

/* A reply buffer. */
typedef struct resp_buf_s {
    char *data; /* the bytes */
    size_t len; /* bytes used */
    size_t cap; /* bytes allocated */
    bool oom;   /* an append failed for want of memory (and was dropped) */
} resp_buf_t;

/* Set up p with lim (NULL = the defaults).  Allocates nothing. */
void resp_parser_init(resp_parser_t *p, const resp_limits_t *lim);

/* Free what p holds.  Then p may be initialised again. */
void resp_parser_deinit(resp_parser_t *p);

/* Parse the request that starts at buf[0]; buf holds len bytes of it (and
 * maybe of the requests after it).  After RESP_NEED_MORE, call again with
 * the same bytes and more.  Returns the length of the complete request
 * (> 0): p->argc arguments in p->argv, valid until the next call and while
 * buf is (p->argc 0: an empty request, "\r\n" or "*0\r\n", to skip).
 * RESP_NEED_MORE, or RESP_ERROR with p->err set (the parser is then
 * reset: the connection should be closed). */
ssize_t resp_parse(resp_parser_t *p, const char *buf, size_t len);

/* How many bytes the request under way is known to need at least (its
 * bulk string included): for reserving room before it arrives. */
size_t resp_needed(const resp_parser_t *p);

/* Has p started on a request (some bytes of it parsed)? */
bool resp_is_partial(const resp_parser_t *p);

/* Write p's error as Redis words it ("Protocol error: ...", no "-ERR")
 * into buf (always NUL-terminated).  Returns buf. */
const char *resp_strerror(const resp_parser_t *p, char *buf, size_t len);

/* Parse s[0..len) as a signed 64-bit decimal the way Redis does
 * (string2ll): no sign but '-', no leading zeros, no spaces, at most 20
 * characters.  true and *v, or false. */
bool resp_parse_ll(const char *s, size_t len, long long *v);

/* Format v in decimal into buf (21 bytes are enough); returns the length. */
size_t resp_ll_to_str(long long v, char *buf);

/* ---- Replies ---------------------------------------------------------- */

void resp_buf_init(resp_buf_t *b);
void resp_buf_deinit(resp_buf_t *b);

/* Room for n more bytes; false (and b->oom) if it cannot grow. */
bool resp_buf_reserve(resp_buf_t *b, size_t n);

void resp_add_raw(resp_buf_t *b, const void *p, size_t n);  /* the bytes as they are */
void resp_add_status(resp_buf_t *b, const char *s);         /* "+s\r\n" */
void resp_add_error(resp_buf_t *b, const char *msg);        /* "-msg\r\n", CR/LF made spaces */
void resp_add_int(resp_buf_t *b, long long v);              /* ":v\r\n" */
void resp_add_bulk(resp_buf_t *b, const void *p, size_t n); /* "$n\r\n...\r\n" */
void resp_add_bulk_str(resp_buf_t *b, const char *s);       /* a C string as a bulk */
void resp_add_nil(resp_buf_t *b);                           /* "$-1\r\n" */
void resp_add_array(resp_buf_t *b, size_t n);               /* "*n\r\n", then n replies */

#endif /* KV_RESP_H */
