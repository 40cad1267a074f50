/* resp.c -- the Redis protocol (RESP2) for examples/kv: an incremental,
 * bounded request parser and the reply builders.
 *
 * The parser works on one request at a time, from its first byte.  It keeps
 * how far it got (pos) and where the search for the next line end stopped
 * (scan), so a request that arrives a byte at a time is parsed in linear
 * time.  Multibulk arguments are recorded as offsets into the request and
 * turned into pointers once it is complete, so the caller may move the
 * bytes between calls (copy a partial request into its own buffer).
 * Inline arguments are unquoted into the parser's own buffer with the rules
 * of Redis's sdssplitargs.
 *
 * Bounds are checked against lengths, never against how much happens to
 * have arrived, so a request gives the same result however it is split.
 * Messages are Redis's own (networking.c) where Redis has one.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resp.h"

#define DEFAULT_MAX_BULK    ((size_t)64 << 20)
#define DEFAULT_MAX_ARGS    ((size_t)1 << 20)
#define DEFAULT_MAX_INLINE  ((size_t)64 << 10)
#define DEFAULT_MAX_REQUEST ((size_t)128 << 20)
#define ARGV_KEEP           256        /* argv slots kept between requests */
#define INLINE_KEEP         (4u << 10) /* inline bytes kept between requests */
#define LONG_STR_SIZE       21         /* Redis's bound on an integer's characters */

/* Where the parser is within a request. */
enum { ST_START, ST_COUNT, ST_BULKLEN, ST_BULK, ST_INLINE };

/* A line end search: found, not yet, too long, or "\r" without "\n". */
enum { LINE_MORE, LINE_FOUND, LINE_LONG, LINE_BAD };

void resp_parser_init(resp_parser_t *p, const resp_limits_t *lim)
{
    memset(p, 0, sizeof(*p));
    if (lim != NULL)
        p->lim = *lim;
    if (p->lim.max_bulk == 0)
        p->lim.max_bulk = DEFAULT_MAX_BULK;
    if (p->lim.max_args == 0)
        p->lim.max_args = DEFAULT_MAX_ARGS;
    if (p->lim.max_inline == 0)
        p->lim.max_inline = DEFAULT_MAX_INLINE;
    if (p->lim.max_request == 0)
        p->lim.max_request = DEFAULT_MAX_REQUEST;
}

void resp_parser_deinit(resp_parser_t *p)
{
    free(p->argv);
    free(p->inl);
    p->argv = NULL;
    p->inl = NULL;
    p->cap = p->inl_cap = 0;
}

/* Back to the start of a request. */
static void reset(resp_parser_t *p)
{
    p->state = ST_START;
    p->pos = p->scan = p->left = p->bulk = 0;
}

/* A new request starts: forget the last one's arguments, and give back
 * what an unusually large one made the parser hold. */
static void begin(resp_parser_t *p)
{
    p->argc = 0;
    if (p->cap > ARGV_KEEP) {
        free(p->argv);
        p->argv = NULL;
        p->cap = 0;
    }
    if (p->inl_cap > INLINE_KEEP) {
        free(p->inl);
        p->inl = NULL;
        p->inl_cap = 0;
    }
}

static ssize_t fail(resp_parser_t *p, enum resp_err err)
{
    reset(p);
    p->argc = 0;
    p->err = err;
    return RESP_ERROR;
}

/* One more argument; false when out of memory. */
static bool push(resp_parser_t *p, const char *ptr, size_t off, size_t len)
{
    if (p->argc == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 8;
        resp_arg_t *argv = realloc(p->argv, cap * sizeof(*argv));
        if (argv == NULL)
            return false;
        p->argv = argv;
        p->cap = cap;
    }
    p->argv[p->argc++] = (resp_arg_t){.ptr = ptr, .len = len, .off = off};
    return true;
}

/* The request is complete: its length, its arguments as pointers. */
static ssize_t finish(resp_parser_t *p, const char *buf)
{
    size_t len = p->pos;

    if (p->state != ST_INLINE)
        for (size_t i = 0; i < p->argc; i++)
            p->argv[i].ptr = buf + p->argv[i].off;
    reset(p);
    return (ssize_t)len;
}

/* The "\r\n"-terminated line at p->pos; *n its length without "\r\n". */
static int count_line(resp_parser_t *p, const char *buf, size_t len, size_t *n)
{
    size_t from = p->scan > p->pos ? p->scan : p->pos;
    const char *cr = memchr(buf + from, '\r', len - from);
    size_t at;

    if (cr == NULL) {
        p->scan = len;
        return len - p->pos > p->lim.max_inline ? LINE_LONG : LINE_MORE;
    }
    at = (size_t)(cr - buf);
    p->scan = at;
    if (at - p->pos > p->lim.max_inline)
        return LINE_LONG;
    if (at + 1 >= len)
        return LINE_MORE;
    *n = at - p->pos;
    return buf[at + 1] == '\n' ? LINE_FOUND : LINE_BAD;
}

/* "*<count>\r\n": how many elements follow. */
static ssize_t parse_count(resp_parser_t *p, const char *buf, size_t len)
{
    size_t n = 0;
    long long ll;
    int r = count_line(p, buf, len, &n);

    if (r == LINE_MORE)
        return RESP_NEED_MORE;
    if (r == LINE_LONG)
        return fail(p, RESP_EMBULK_LINE);
    if (r == LINE_BAD || !resp_parse_ll(buf + 1, n - 1, &ll) || ll > (long long)p->lim.max_args)
        return fail(p, RESP_EMBULK_LEN);
    p->pos = n + 2;
    if (ll <= 0)
        return finish(p, buf); /* an empty request: no reply */
    p->left = (size_t)ll;
    p->state = ST_BULKLEN;
    return 0;
}

/* "$<length>\r\n": the length of the next element. */
static ssize_t parse_bulk_len(resp_parser_t *p, const char *buf, size_t len)
{
    size_t n = 0;
    long long ll;
    int r = count_line(p, buf, len, &n);

    if (r == LINE_MORE)
        return RESP_NEED_MORE;
    if (r == LINE_LONG)
        return fail(p, RESP_EBULK_LINE);
    if (buf[p->pos] != '$') {
        p->got = buf[p->pos];
        return fail(p, RESP_EDOLLAR);
    }
    if (r == LINE_BAD || !resp_parse_ll(buf + p->pos + 1, n - 1, &ll) || ll < 0 ||
        (unsigned long long)ll > p->lim.max_bulk)
        return fail(p, RESP_EBULK_LEN);
    p->pos += n + 2;
    p->bulk = (size_t)ll;
    if (p->pos + p->bulk + 2 > p->lim.max_request)
        return fail(p, RESP_EREQUEST_LEN);
    p->state = ST_BULK;
    return 0;
}

/* The bytes of one element and their "\r\n". */
static ssize_t parse_bulk(resp_parser_t *p, const char *buf, size_t len)
{
    const char *data = buf + p->pos;

    if (len - p->pos < p->bulk + 2)
        return RESP_NEED_MORE;
    if (data[p->bulk] != '\r' || data[p->bulk + 1] != '\n')
        return fail(p, RESP_EBULK_CRLF);
    if (!push(p, NULL, p->pos, p->bulk))
        return fail(p, RESP_ENOMEM);
    p->pos += p->bulk + 2;
    if (--p->left == 0)
        return finish(p, buf);
    p->state = ST_BULKLEN;
    return 0;
}

/* ---- Inline requests -------------------------------------------------- */

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The byte at i of a line of n bytes, '\0' past its end (as in a C string). */
static char at(const char *s, size_t n, size_t i)
{
    return i < n ? s[i] : '\0';
}

/* Inside "double quotes" at s[*i]: append the byte(s) it stands for.
 * 1 at the closing quote, 0 to go on, -1 for an unbalanced quote. */
static int dquoted(const char *s, size_t n, size_t *i, char *out, size_t *o)
{
    char c = at(s, n, *i), c1 = at(s, n, *i + 1);
    static const char from[] = "nrtba", to[] = "\n\r\t\b\a";

    if (c == '\\' && c1 == 'x' && hex_value(at(s, n, *i + 2)) >= 0 && hex_value(at(s, n, *i + 3)) >= 0) {
        out[(*o)++] = (char)(hex_value(s[*i + 2]) * 16 + hex_value(s[*i + 3]));
        *i += 3;
    } else if (c == '\\' && c1 != '\0') {
        const char *e = strchr(from, c1);
        out[(*o)++] = e != NULL ? to[e - from] : c1;
        (*i)++;
    } else if (c == '"') {
        return c1 != '\0' && !is_space(c1) ? -1 : 1;
    } else if (c == '\0') {
        return -1;
    } else {
        out[(*o)++] = c;
    }
    return 0;
}

/* Inside 'single quotes': the same, with \' as the only escape. */
static int squoted(const char *s, size_t n, size_t *i, char *out, size_t *o)
{
    char c = at(s, n, *i), c1 = at(s, n, *i + 1);

    if (c == '\\' && c1 == '\'') {
        out[(*o)++] = '\'';
        (*i)++;
    } else if (c == '\'') {
        return c1 != '\0' && !is_space(c1) ? -1 : 1;
    } else if (c == '\0') {
        return -1;
    } else {
        out[(*o)++] = c;
    }
    return 0;
}

/* One token from s[*i] (not a blank) into out[*o..]: 0, or -1 for
 * unbalanced quotes. */
static int token(const char *s, size_t n, size_t *i, char *out, size_t *o)
{
    int quote = 0, done = 0; /* quote: '"', '\'' or 0 */

    while (!done) {
        char c = at(s, n, *i);
        if (quote == '"')
            done = dquoted(s, n, i, out, o);
        else if (quote == '\'')
            done = squoted(s, n, i, out, o);
        else if (c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\0')
            done = 1;
        else if (c == '"' || c == '\'')
            quote = c;
        else
            out[(*o)++] = c;
        if (done < 0)
            return -1;
        if (*i < n)
            (*i)++;
    }
    return 0;
}

/* Split an inline line into arguments as Redis's sdssplitargs does (a
 * NUL byte ends the line).  0, or a resp_err. */
static int split_inline(resp_parser_t *p, const char *line, size_t n)
{
    size_t i = 0, o = 0;

    n = strnlen(line, n);
    if (n > p->inl_cap) {
        char *inl = realloc(p->inl, n);
        if (inl == NULL)
            return RESP_ENOMEM;
        p->inl = inl;
        p->inl_cap = n;
    }
    for (;;) {
        while (i < n && is_space(line[i]))
            i++;
        if (i == n)
            return RESP_OK;
        size_t start = o;
        if (token(line, n, &i, p->inl, &o) < 0)
            return RESP_EQUOTES;
        if (!push(p, p->inl + start, 0, o - start))
            return RESP_ENOMEM;
    }
}

/* A line up to "\n" (a "\r" before it is dropped), split into arguments. */
static ssize_t parse_inline(resp_parser_t *p, const char *buf, size_t len)
{
    const char *nl = memchr(buf + p->scan, '\n', len - p->scan);
    size_t at_nl, n;
    int err;

    if (nl == NULL) {
        p->scan = len;
        return len > p->lim.max_inline ? fail(p, RESP_EINLINE_LEN) : RESP_NEED_MORE;
    }
    at_nl = (size_t)(nl - buf);
    if (at_nl > p->lim.max_inline)
        return fail(p, RESP_EINLINE_LEN);
    n = at_nl > 0 && buf[at_nl - 1] == '\r' ? at_nl - 1 : at_nl;
    err = split_inline(p, buf, n);
    if (err != RESP_OK)
        return fail(p, err);
    p->pos = at_nl + 1;
    return finish(p, buf);
}

/* ---- The parser ------------------------------------------------------- */

ssize_t resp_parse(resp_parser_t *p, const char *buf, size_t len)
{
    ssize_t r = 0;

    if (p->state == ST_START) {
        begin(p);
        if (len == 0)
            return RESP_NEED_MORE;
        p->state = buf[0] == '*' ? ST_COUNT : ST_INLINE;
    }
    while (r == 0) {
        switch (p->state) {
        case ST_COUNT:
            r = parse_count(p, buf, len);
            break;
        case ST_BULKLEN:
            r = parse_bulk_len(p, buf, len);
            break;
        case ST_BULK:
            r = parse_bulk(p, buf, len);
            break;
        default:
            r = parse_inline(p, buf, len);
            break;
        }
    }
    return r;
}

size_t resp_needed(const resp_parser_t *p)
{
    return p->state == ST_BULK ? p->pos + p->bulk + 2 : 0;
}

bool resp_is_partial(const resp_parser_t *p)
{
    return p->state != ST_START;
}

const char *resp_strerror(const resp_parser_t *p, char *buf, size_t len)
{
    static const char *const msgs[] = {
        [RESP_OK] = "no error",
        [RESP_EMBULK_LEN] = "invalid multibulk length",
        [RESP_EMBULK_LINE] = "too big mbulk count string",
        [RESP_EDOLLAR] = NULL,
        [RESP_EBULK_LEN] = "invalid bulk length",
        [RESP_EBULK_LINE] = "too big bulk count string",
        [RESP_EBULK_CRLF] = "bulk data not followed by CRLF",
        [RESP_EINLINE_LEN] = "too big inline request",
        [RESP_EQUOTES] = "unbalanced quotes in request",
        [RESP_EREQUEST_LEN] = "request too big",
        [RESP_ENOMEM] = "out of memory",
    };

    if (p->err == RESP_EDOLLAR)
        snprintf(buf, len, "Protocol error: expected '$', got '%c'", p->got);
    else if ((size_t)p->err < sizeof(msgs) / sizeof(msgs[0]) && msgs[p->err] != NULL)
        snprintf(buf, len, "Protocol error: %s", msgs[p->err]);
    else
        snprintf(buf, len, "Protocol error: unknown");
    return buf;
}

/* ---- Numbers ---------------------------------------------------------- */

bool resp_parse_ll(const char *s, size_t len, long long *v)
{
    unsigned long long u = 0;
    size_t i = 0;
    bool negative = false;

    if (len == 0 || len >= LONG_STR_SIZE)
        return false;
    if (len == 1 && s[0] == '0') {
        *v = 0;
        return true;
    }
    if (s[0] == '-') {
        negative = true;
        if (++i == len)
            return false;
    }
    if (s[i] < '1' || s[i] > '9')
        return false;
    for (; i < len; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (s[i] < '0' || s[i] > '9' || u > (ULLONG_MAX - d) / 10)
            return false;
        u = u * 10 + d;
    }
    if (negative ? u > (unsigned long long)LLONG_MAX + 1 : u > (unsigned long long)LLONG_MAX)
        return false;
    *v = negative ? (long long)(0 - u) : (long long)u;
    return true;
}

size_t resp_ll_to_str(long long v, char *buf)
{
    char tmp[24];
    size_t n = 0, len = 0;
    unsigned long long u = v < 0 ? 0 - (unsigned long long)v : (unsigned long long)v;

    do
        tmp[n++] = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (v < 0)
        buf[len++] = '-';
    while (n > 0)
        buf[len++] = tmp[--n];
    return len;
}

/* ---- Replies ---------------------------------------------------------- */

void resp_buf_init(resp_buf_t *b)
{
    memset(b, 0, sizeof(*b));
}

void resp_buf_deinit(resp_buf_t *b)
{
    free(b->data);
    resp_buf_init(b);
}

bool resp_buf_reserve(resp_buf_t *b, size_t n)
{
    size_t cap;
    char *data;

    if (b->cap - b->len >= n)
        return true;
    cap = b->cap ? b->cap : 4096;
    while (cap - b->len < n)
        cap *= 2;
    data = realloc(b->data, cap);
    if (data == NULL) {
        b->oom = true;
        return false;
    }
    b->data = data;
    b->cap = cap;
    return true;
}

void resp_add_raw(resp_buf_t *b, const void *p, size_t n)
{
    if (resp_buf_reserve(b, n)) {
        memcpy(b->data + b->len, p, n);
        b->len += n;
    }
}

/* A type byte, a number and "\r\n": the head of integers, bulks, arrays. */
static void add_number_line(resp_buf_t *b, char type, long long v)
{
    if (!resp_buf_reserve(b, 24))
        return;
    b->data[b->len++] = type;
    b->len += resp_ll_to_str(v, b->data + b->len);
    b->data[b->len++] = '\r';
    b->data[b->len++] = '\n';
}

void resp_add_status(resp_buf_t *b, const char *s)
{
    size_t n = strlen(s);

    if (resp_buf_reserve(b, n + 3)) {
        b->data[b->len++] = '+';
        memcpy(b->data + b->len, s, n);
        memcpy(b->data + b->len + n, "\r\n", 2);
        b->len += n + 2;
    }
}

void resp_add_error(resp_buf_t *b, const char *msg)
{
    size_t n = strlen(msg);

    if (!resp_buf_reserve(b, n + 3))
        return;
    b->data[b->len++] = '-';
    for (size_t i = 0; i < n; i++)
        b->data[b->len++] = msg[i] == '\r' || msg[i] == '\n' ? ' ' : msg[i];
    b->data[b->len++] = '\r';
    b->data[b->len++] = '\n';
}

void resp_add_int(resp_buf_t *b, long long v)
{
    add_number_line(b, ':', v);
}

void resp_add_bulk(resp_buf_t *b, const void *p, size_t n)
{
    if (!resp_buf_reserve(b, n + 26))
        return;
    add_number_line(b, '$', (long long)n);
    memcpy(b->data + b->len, p, n);
    memcpy(b->data + b->len + n, "\r\n", 2);
    b->len += n + 2;
}

void resp_add_bulk_str(resp_buf_t *b, const char *s)
{
    resp_add_bulk(b, s, strlen(s));
}

void resp_add_nil(resp_buf_t *b)
{
    resp_add_raw(b, "$-1\r\n", 5);
}

void resp_add_array(resp_buf_t *b, size_t n)
{
    add_number_line(b, '*', (long long)n);
}
