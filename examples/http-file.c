/* http-file.c -- GET and HEAD of the files under --root.
 *
 * The path is percent-decoded and checked first (http_decode_path: no
 * "..", no encoded '/', no NUL), then opened relative to the root's
 * descriptor so that nothing outside it can be reached, even through a
 * symlink and even while the tree changes: openat2 with RESOLVE_BENEATH
 * (a symlink may point elsewhere inside the root, never out of it), or,
 * where the kernel lacks openat2 (before Linux 5.6, or --no-openat2), one
 * openat per component with O_NOFOLLOW (no symlink is followed at all).
 * Either way there is no check-then-open race.  A directory serves its
 * index.html.
 *
 * The file goes out with pants_stream_write_file (sendfile) after a head
 * with Content-Type (by extension), Content-Length, Last-Modified and
 * Accept-Ranges.  If-Modified-Since gives a 304, a single Range
 * ("bytes=a-b", "bytes=a-", "bytes=-n") a 206 with Content-Range, one
 * that cannot be satisfied a 416; several ranges, or a Range whose
 * If-Range does not match, get the whole file.  Anything that cannot be
 * opened is a 404, so the tree's shape does not leak.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#ifdef SYS_openat2
#include <linux/openat2.h>
#endif

#include "http-internal.h"

/* What a file is, by extension; the rest is application/octet-stream. */
static const struct {
    const char *ext;  /* without the dot */
    const char *type; /* Content-Type */
} types[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"txt", "text/plain; charset=utf-8"},
    {"xml", "application/xml"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"ico", "image/x-icon"},
    {"wasm", "application/wasm"},
    {"pdf", "application/pdf"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"mp4", "video/mp4"},
    {"gz", "application/gzip"},
};

static const char *type_of(const char *name)
{
    const char *slash = strrchr(name, '/'), *dot = strrchr(name, '.');

    if (dot != NULL && (slash == NULL || dot > slash))
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
            if (strcasecmp(dot + 1, types[i].ext) == 0)
                return types[i].type;
    return "application/octet-stream";
}

/* ---- Opening beneath the root ---------------------------------------------- */

#define OPEN_FLAGS (O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK) /* a FIFO must not block */

/* rel (no "..", no empty component) under dirfd, one component at a
 * time, following no symlink. */
static int open_walk(int dirfd, const char *rel)
{
    char name[NAME_MAX + 1];
    int fd = dirfd, next;

    for (;;) {
        const char *slash = strchr(rel, '/');
        size_t n = slash ? (size_t)(slash - rel) : strlen(rel);
        if (n > NAME_MAX) {
            next = -1;
            errno = ENAMETOOLONG;
        } else {
            memcpy(name, rel, n);
            name[n] = '\0';
            next = openat(fd, name,
                          slash ? O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC : OPEN_FLAGS | O_NOFOLLOW);
        }
        if (fd != dirfd)
            close(fd);
        if (next < 0 || slash == NULL)
            return next;
        fd = next;
        rel = slash + 1;
    }
}

static int open_beneath(int dirfd, const char *rel)
{
#ifdef SYS_openat2
    if (http_config.openat2) {
        struct open_how how = {.flags = OPEN_FLAGS, .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
        return (int)syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
    }
#endif
    return open_walk(dirfd, rel);
}

/* The root, and whether openat2 works here.  0 or a negative errno. */
int http_files_open(const char *dir, bool use_openat2)
{
    int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0)
        return -errno;
    http_config.root_fd = fd;
    http_config.openat2 = use_openat2;
    if (use_openat2) { /* ENOSYS, or a sandbox that refuses it: fall back */
        int probe = open_beneath(fd, ".");
        http_config.openat2 = probe >= 0;
        if (probe >= 0)
            close(probe);
    }
    return 0;
}

/* A regular file at rel, or a directory's index.html: its descriptor,
 * *st and *type, or -1. */
static int open_file(const char *rel, struct stat *st, const char **type)
{
    int fd = open_beneath(http_config.root_fd, rel);

    *type = type_of(rel);
    if (fd >= 0 && fstat(fd, st) == 0 && S_ISDIR(st->st_mode)) {
        int index = open_beneath(fd, "index.html");
        close(fd);
        fd = index;
        *type = type_of("index.html");
        if (fd >= 0 && fstat(fd, st) < 0)
            st->st_mode = 0;
    }
    if (fd >= 0 && !S_ISREG(st->st_mode)) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* ---- Replies ----------------------------------------------------------------- */

static void reply_not_modified(http_conn_t *c, const char *modified)
{
    char *p = http_reply_start(c->w, 304);

    p = http_put(http_put(http_put(p, "Last-Modified: "), modified), "\r\n");
    if (pants_stream_write(c->s, c->w->head, http_reply_end(c, p)) < 0) {
        pants_stream_close(c->s);
        c->req.keep_alive = false;
    }
    http_reply_done(c, 304, 0);
}

static void reply_unsatisfiable(http_conn_t *c, uint64_t size)
{
    char extra[64];
    char *p = http_put_u64(http_put(extra, "Content-Range: bytes */"), size);

    *http_put(p, "\r\n") = '\0';
    http_reply(c, 416, "text/plain", extra, "Range Not Satisfiable\n", 22);
}

/* Not modified since If-Modified-Since? */
static bool not_modified(const http_request_t *r, const struct stat *st)
{
    time_t since;

    return r->ims.len > 0 && http_parse_date(r->ims, &since) && st->st_mtime <= since;
}

/* The head of a 200 or 206, then the bytes [first, first + count). */
static void send_range(http_conn_t *c, int fd, const char *type, const char *modified, int status,
                       uint64_t first, uint64_t count, uint64_t size)
{
    char *p = http_reply_start(c->w, status);
    bool with_body = !c->req.head && count > 0;

    p = http_put(http_put(http_put(p, "Content-Type: "), type), "\r\nContent-Length: ");
    p = http_put(http_put_u64(p, count), "\r\nLast-Modified: ");
    p = http_put(http_put(p, modified), "\r\nAccept-Ranges: bytes\r\n");
    if (status == 206) {
        p = http_put_u64(http_put(p, "Content-Range: bytes "), first);
        p = http_put_u64(http_put(p, "-"), first + count - 1);
        p = http_put(http_put_u64(http_put(p, "/"), size), "\r\n");
    }
    if (pants_stream_write(c->s, c->w->head, http_reply_end(c, p)) < 0 ||
        (with_body && pants_stream_write_file(c->s, fd, (off_t)first, (size_t)count) < 0)) {
        pants_stream_close(c->s); /* the head promised bytes that cannot follow */
        c->req.keep_alive = false;
    }
    http_reply_done(c, status, with_body ? count : 0);
}

/* An open file: 304, 416, 206 or 200. */
static void send_file(http_conn_t *c, int fd, const char *type, const struct stat *st)
{
    const http_request_t *r = &c->req;
    char modified[HTTP_DATE_LEN + 1];
    uint64_t size = (uint64_t)st->st_size, first = 0, last = 0;
    int ranged = 0;

    http_format_date(st->st_mtime, modified);
    if (not_modified(r, st)) {
        reply_not_modified(c, modified);
        return;
    }
    if (r->range.len > 0 && (r->if_range.len == 0 || http_span_is(r->if_range, modified)))
        ranged = http_parse_range(r->range, size, &first, &last);
    if (ranged < 0)
        reply_unsatisfiable(c, size);
    else if (ranged > 0)
        send_range(c, fd, type, modified, 206, first, last - first + 1, size);
    else
        send_range(c, fd, type, modified, 200, 0, size, size);
}

void http_serve_file(http_conn_t *c)
{
    const http_request_t *r = &c->req;
    char rel[PATH_MAX];
    const char *type;
    struct stat st;
    int status, fd;

    if (!r->head && !http_span_is(r->method, "GET")) {
        http_reply(c, 405, "text/plain", "Allow: GET, HEAD\r\n", "Method Not Allowed\n", 19);
        return;
    }
    if ((status = http_decode_path(r->path, rel, sizeof(rel))) != 0) {
        http_reply_error(c, status);
        return;
    }
    if ((fd = open_file(rel, &st, &type)) < 0) {
        http_reply(c, 404, "text/plain", NULL, "Not Found\n", 10);
        return;
    }
    send_file(c, fd, type, &st);
    close(fd); /* the stream has its own duplicate */
}
