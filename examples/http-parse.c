/* http-parse.c -- what an HTTP/1.1 client sends, parsed without any I/O.
 *
 * A request head arrives as one frame (the bytes before "\r\n\r\n") and
 * is parsed strictly, since a lenient parser is how request smuggling
 * starts: lines end in CRLF (a bare CR or LF is a 400), a field name is a
 * token directly followed by ':' (no space before the colon, no folded
 * lines), values hold no control characters, Content-Length is digits
 * only and at most one value, Content-Length with Transfer-Encoding is a
 * 400, a transfer coding other than chunked a 501, a version other than
 * 1.0 and 1.1 a 505, an HTTP/1.1 request without exactly one Host a 400.
 * The request keeps pointers into the head (http_span_t), so nothing is
 * copied or allocated.
 *
 * Also here: chunk-size lines, trailer fields, Range (one range), the
 * IMF-fixdate of Date, Last-Modified and If-Modified-Since, and the path
 * of a file request, percent-decoded and checked so it cannot leave the
 * root (no "..", no encoded '/', no NUL).
 */
#include <string.h>
#include <strings.h>
#include <time.h>

#include "http-internal.h"

static const char *const months = "JanFebMarAprMayJunJulAugSepOctNovDec";

/* A token character (RFC 9110 tchar). */
static bool is_tchar(unsigned char ch)
{
    if (((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z') || (ch >= '0' && ch <= '9'))
        return true;
    return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* A byte a field value may hold: HTAB, SP, visible ASCII, obs-text. */
static bool is_value_char(unsigned char ch)
{
    return ch == '\t' || (ch >= 0x20 && ch != 0x7f);
}

/* A byte a request-target may hold: visible ASCII. */
static bool is_target_char(unsigned char ch)
{
    return ch > 0x20 && ch < 0x7f;
}

static int hex_value(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch |= 0x20;
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

static http_span_t span(const char *from, const char *to)
{
    return (http_span_t){from, (size_t)(to - from)};
}

bool http_span_is(http_span_t v, const char *lit)
{
    return v.len == strlen(lit) && memcmp(v.p, lit, v.len) == 0;
}

bool http_span_ieq(http_span_t v, const char *lit)
{
    return v.len == strlen(lit) && strncasecmp(v.p, lit, v.len) == 0;
}

/* v without optional white space (SP, HTAB) at either end. */
static http_span_t trim(http_span_t v)
{
    while (v.len > 0 && (v.p[0] == ' ' || v.p[0] == '\t'))
        v.p++, v.len--;
    while (v.len > 0 && (v.p[v.len - 1] == ' ' || v.p[v.len - 1] == '\t'))
        v.len--;
    return v;
}

/* ---- The request line ---------------------------------------------------- */

/* "HTTP/1.1" or "HTTP/1.0"; another version 505, anything else 400. */
static int parse_version(http_span_t v, http_request_t *r)
{
    const char *p = v.p;

    if (v.len != 8 || memcmp(p, "HTTP/", 5) != 0 || p[5] < '0' || p[5] > '9' || p[6] != '.' || p[7] < '0' ||
        p[7] > '9')
        return 400;
    if (p[5] != '1' || (p[7] != '0' && p[7] != '1'))
        return 505;
    r->minor = (unsigned char)(p[7] - '0');
    return 0;
}

/* The length of "http://" or "https://" at p, or 0. */
static size_t scheme_len(const char *p, const char *end)
{
    if (end - p >= 7 && strncasecmp(p, "http://", 7) == 0)
        return 7;
    if (end - p >= 8 && strncasecmp(p, "https://", 8) == 0)
        return 8;
    return 0;
}

/* The path of the target: origin-form "/p?q", or absolute-form
 * "http://host/p?q" (whose host is ignored: there is one site). */
static int parse_target(http_request_t *r)
{
    const char *p = r->target.p, *end = p + r->target.len, *q;

    if (*p != '/') {
        size_t skip = scheme_len(p, end);
        if (skip == 0)
            return 400;
        p += skip;
        q = p;
        while (q < end && *q != '/' && *q != '?')
            q++;
        if (q == p)
            return 400; /* no host */
        p = q;
        if (p == end || *p == '?') {
            r->path = (http_span_t){"/", 1};
            return 0;
        }
    }
    q = memchr(p, '?', (size_t)(end - p));
    r->path = span(p, q ? q : end);
    return memchr(r->path.p, '#', r->path.len) ? 400 : 0;
}

/* METHOD SP request-target SP HTTP-version, single spaces. */
static int parse_request_line(const char *p, const char *end, http_request_t *r)
{
    const char *q = p;

    while (q < end && is_tchar((unsigned char)*q))
        q++;
    if (q == p || q == end || *q != ' ')
        return 400;
    r->method = span(p, q);
    r->head = http_span_is(r->method, "HEAD");
    p = ++q;
    while (q < end && is_target_char((unsigned char)*q))
        q++;
    if (q == p || q == end || *q != ' ')
        return 400;
    r->target = span(p, q);
    int status = parse_version(span(q + 1, end), r);
    return status != 0 ? status : parse_target(r);
}

/* ---- Header fields ------------------------------------------------------- */

static int set_length(http_request_t *r, http_span_t v)
{
    uint64_t n = 0;

    if (v.len == 0 || v.len > 18) /* 18 digits never overflow */
        return 400;
    for (size_t i = 0; i < v.len; i++) {
        if (v.p[i] < '0' || v.p[i] > '9')
            return 400;
        n = n * 10 + (uint64_t)(v.p[i] - '0');
    }
    if (r->has_length && r->length != n)
        return 400;
    r->has_length = true;
    r->length = n;
    return 0;
}

static int set_transfer_encoding(http_request_t *r, http_span_t v)
{
    if (r->te_seen)
        return 400; /* one Transfer-Encoding, one coding */
    r->te_seen = true;
    if (http_span_ieq(v, "chunked"))
        r->chunked = true;
    else
        r->te_other = true;
    return 0;
}

/* Connection: a comma-separated list of options. */
static void set_connection(http_request_t *r, http_span_t v)
{
    const char *p = v.p, *end = v.p + v.len;

    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        http_span_t opt = trim(span(p, comma ? comma : end));
        if (http_span_ieq(opt, "close"))
            r->conn_close = true;
        else if (http_span_ieq(opt, "keep-alive"))
            r->conn_keep = true;
        p = comma ? comma + 1 : end;
    }
}

/* The fields this server looks at; the rest are checked and ignored. */
static int apply_field(http_request_t *r, http_span_t name, http_span_t v)
{
    if (http_span_ieq(name, "host")) {
        if (r->has_host)
            return 400;
        r->has_host = true;
    } else if (http_span_ieq(name, "content-length"))
        return set_length(r, v);
    else if (http_span_ieq(name, "transfer-encoding"))
        return set_transfer_encoding(r, v);
    else if (http_span_ieq(name, "connection"))
        set_connection(r, v);
    else if (http_span_ieq(name, "expect"))
        r->expect_continue = http_span_ieq(v, "100-continue");
    else if (http_span_ieq(name, "range"))
        r->range = v;
    else if (http_span_ieq(name, "if-range"))
        r->if_range = v;
    else if (http_span_ieq(name, "if-modified-since"))
        r->ims = v;
    return 0;
}

/* name ":" OWS value OWS, the name a token right before the colon. */
static int split_field(const char *p, const char *end, http_span_t *name, http_span_t *value)
{
    const char *q = p;

    while (q < end && is_tchar((unsigned char)*q))
        q++;
    if (q == p || q == end || *q != ':')
        return 400; /* no name, no colon, space before it, folded line */
    *name = span(p, q);
    for (const char *v = q + 1; v < end; v++)
        if (!is_value_char((unsigned char)*v))
            return 400;
    *value = trim(span(q + 1, end));
    return 0;
}

int http_check_field(const char *p, size_t len)
{
    http_span_t name, value;

    return split_field(p, p + len, &name, &value);
}

/* The end of the line at p (its CR), or end; NULL for a bare LF. */
static const char *line_end(const char *p, const char *end)
{
    const char *lf = memchr(p, '\n', (size_t)(end - p));

    if (lf == NULL)
        return end;
    return lf > p && lf[-1] == '\r' ? lf - 1 : NULL;
}

/* What the fields say about framing and the connection, together. */
static int check_request(http_request_t *r)
{
    if (r->te_seen && r->has_length)
        return 400;
    if (r->te_other)
        return 501;
    if (r->minor == 1 && !r->has_host)
        return 400;
    r->keep_alive = r->minor == 1 ? !r->conn_close : r->conn_keep && !r->conn_close;
    return 0;
}

int http_parse_head(const char *p, size_t len, http_request_t *r)
{
    const char *end = p + len, *eol;
    http_span_t name, value;
    int status;

    memset(r, 0, sizeof(*r));
    while (end - p >= 2 && p[0] == '\r' && p[1] == '\n')
        p += 2; /* blank lines before a request are allowed */
    if (p == end)
        return HTTP_EMPTY;
    if ((eol = line_end(p, end)) == NULL)
        return 400;
    if ((status = parse_request_line(p, eol, r)) != 0)
        return status;
    for (p = eol; p < end; p = eol) {
        p += 2; /* the CRLF before this line */
        if ((eol = line_end(p, end)) == NULL)
            return 400;
        if ((status = split_field(p, eol, &name, &value)) != 0 || (status = apply_field(r, name, value)) != 0)
            return status;
    }
    return check_request(r);
}

/* v points into from[0..len): make it point at the same place in to. */
static void rebase(http_span_t *v, const char *from, size_t len, const char *to)
{
    uintptr_t at = (uintptr_t)v->p, start = (uintptr_t)from;

    if (v->p != NULL && at >= start && at - start < len)
        v->p = to + (at - start);
}

void http_request_rebase(http_request_t *r, const char *from, size_t len, const char *to)
{
    rebase(&r->method, from, len, to);
    rebase(&r->target, from, len, to);
    rebase(&r->path, from, len, to);
    rebase(&r->range, from, len, to);
    rebase(&r->if_range, from, len, to);
    rebase(&r->ims, from, len, to);
}

/* ---- Chunks ----------------------------------------------------------------- */

/* chunk-size [ BWS ";" chunk-ext ], the line without its CRLF. */
int http_parse_chunk_size(const char *p, size_t len, uint64_t *size)
{
    uint64_t n = 0;
    size_t i = 0;
    int d;

    for (; i < len && (d = hex_value((unsigned char)p[i])) >= 0; i++) {
        if (i == 15)
            return 400; /* past any body we accept */
        n = n * 16 + (uint64_t)d;
    }
    if (i == 0)
        return 400;
    while (i < len && (p[i] == ' ' || p[i] == '\t'))
        i++;
    if (i < len && p[i] != ';')
        return 400;
    for (; i < len; i++)
        if (!is_value_char((unsigned char)p[i]))
            return 400;
    *size = n;
    return 0;
}

/* ---- Paths ------------------------------------------------------------------- */

/* One segment of out[seg..*n) is complete: drop it if empty or ".", refuse
 * "..", else keep it with a '/' after it.  0, 400 or 414. */
static int end_segment(char *out, size_t cap, size_t seg, size_t *n)
{
    size_t len = *n - seg;

    if (len == 0 || (len == 1 && out[seg] == '.')) {
        *n = seg;
        return 0;
    }
    if (len == 2 && out[seg] == '.' && out[seg + 1] == '.')
        return 400;
    if (*n + 1 >= cap)
        return 414;
    out[(*n)++] = '/';
    return 0;
}

/* The next byte of the path at *p, percent-decoded; -1 for a bad escape,
 * an encoded NUL or an encoded '/'. */
static int path_byte(const char **p, const char *end)
{
    unsigned char ch = (unsigned char)*(*p)++;
    int hi, lo;

    if (ch != '%')
        return ch;
    if (end - *p < 2 || (hi = hex_value((unsigned char)(*p)[0])) < 0 ||
        (lo = hex_value((unsigned char)(*p)[1])) < 0)
        return -1;
    *p += 2;
    ch = (unsigned char)(hi * 16 + lo);
    return ch == '\0' || ch == '/' ? -1 : ch;
}

int http_decode_path(http_span_t path, char *out, size_t cap)
{
    const char *p = path.p, *end = path.p + path.len;
    size_t n = 0, seg = 0;
    int status, ch;

    while (p < end) {
        if (*p == '/') {
            p++;
            if ((status = end_segment(out, cap, seg, &n)) != 0)
                return status;
            seg = n;
            continue;
        }
        if ((ch = path_byte(&p, end)) < 0)
            return 400;
        if (n + 2 >= cap)
            return 414;
        out[n++] = (char)ch;
    }
    if ((status = end_segment(out, cap, seg, &n)) != 0)
        return status;
    if (n == 0)
        out[n++] = '.'; /* the root itself */
    else
        n--; /* the last '/' */
    out[n] = '\0';
    return 0;
}

/* ---- Range ----------------------------------------------------------------- */

/* Digits at *p, at most 18; false if none or too many. */
static bool range_number(const char **p, const char *end, uint64_t *out)
{
    const char *start = *p;
    uint64_t n = 0;

    while (*p < end && **p >= '0' && **p <= '9' && *p - start < 18)
        n = n * 10 + (uint64_t)(*(*p)++ - '0');
    *out = n;
    return *p > start && (*p == end || **p < '0' || **p > '9');
}

/* "bytes=a-b", "bytes=a-" or "bytes=-n" against a file of size bytes:
 * 1 with [first, last], -1 when it cannot be satisfied (416), 0 to
 * ignore it (malformed, or several ranges: the whole file is sent). */
int http_parse_range(http_span_t v, uint64_t size, uint64_t *first, uint64_t *last)
{
    const char *p = v.p + 6, *end = v.p + v.len;
    uint64_t a = 0, b = 0;
    bool has_a, has_b;

    if (v.len < 7 || strncasecmp(v.p, "bytes=", 6) != 0 || memchr(p, ',', (size_t)(end - p)))
        return 0;
    has_a = p < end && *p != '-';
    if (has_a && !range_number(&p, end, &a))
        return 0;
    if (p == end || *p++ != '-')
        return 0;
    has_b = p < end;
    if ((has_b && !range_number(&p, end, &b)) || p != end || (!has_a && !has_b) || (has_b && has_a && b < a))
        return 0;
    if (!has_a) { /* the last b bytes */
        if (b == 0 || size == 0)
            return -1;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return 1;
    }
    if (a >= size)
        return -1;
    *first = a;
    *last = has_b && b < size - 1 ? b : size - 1;
    return 1;
}

/* ---- Dates -------------------------------------------------------------- */

void http_format_date(time_t t, char out[HTTP_DATE_LEN + 1])
{
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(out, HTTP_DATE_LEN + 1, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* n digits at p, or -1. */
static int digits(const char *p, int n)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

/* An IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT"; false for anything
 * else (the obsolete formats too: such a condition is then ignored). */
bool http_parse_date(http_span_t v, time_t *t)
{
    const char *p = v.p, *m;
    struct tm tm = {0};

    if (v.len != HTTP_DATE_LEN || p[3] != ',' || p[4] != ' ' || p[7] != ' ' || p[11] != ' ' || p[16] != ' ' ||
        p[19] != ':' || p[22] != ':' || memcmp(p + 25, " GMT", 4) != 0)
        return false;
    m = strstr(months, (char[]){p[8], p[9], p[10], '\0'});
    if (m == NULL || (m - months) % 3 != 0)
        return false;
    tm.tm_mon = (int)(m - months) / 3;
    tm.tm_mday = digits(p + 5, 2);
    tm.tm_year = digits(p + 12, 4) - 1900;
    tm.tm_hour = digits(p + 17, 2);
    tm.tm_min = digits(p + 20, 2);
    tm.tm_sec = digits(p + 23, 2);
    if (tm.tm_mday < 1 || tm.tm_year < 0 || tm.tm_hour < 0 || tm.tm_min < 0 || tm.tm_sec < 0)
        return false;
    *t = timegm(&tm);
    return *t != (time_t)-1;
}
