/* wqueue.c -- a stream's ordered write queue, and the plain transport.
 *
 * The queue is a circular list of chunks: owned memory (small writes
 * coalesce into the tail chunk), shared memory (a broadcast's one copy,
 * released once sent) and file ranges (a duplicated descriptor, sent with
 * sendfile).  pants__wq_flush is the one place that decides what goes out
 * next: the stage first, then runs of memory chunks with one vectored send,
 * a file range with sendfile; a transport that takes nothing (EAGAIN) or
 * only part means "wait until writable", a file that ended early has the
 * rest of its range skipped, and a fair share per call lets the loop's
 * other streams run before a bulk sender continues.
 *
 * The stage keeps the hot path of a request/response stream free of
 * allocation: while a stream's I/O callback runs and its queue is empty,
 * writes are recorded as iovecs -- pointing into the loop's read scratch
 * when that is where the bytes are (an echo sends what it just read
 * without a copy), else copied into the loop's write scratch -- and leave
 * with one system call when the callback ends.  Anything that cannot wait
 * there (the scratch is read into again, the stage is full, the send was
 * short) moves into the queue as owned copies, in order.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "wqueue-internal.h"

#define CHUNK_MIN    1024          /* first owned chunk of a queue */
#define CHUNK_MAX    (16 * 1024)   /* owned chunks grow up to this, unless one write is larger */
#define FLUSH_BUDGET (1024 * 1024) /* bytes per flush before the other streams run */
#define FILE_STEP    (1024 * 1024) /* bytes asked of one sendfile */
#define SEND_IOV     64            /* iovecs per vectored send */

enum chunk_kind {
    CHUNK_MEM,  /* owned bytes */
    CHUNK_REF,  /* shared bytes, released when done */
    CHUNK_FILE, /* a range of a file */
};

struct pants__wchunk_s {
    pants__wchunk_t *next; /* the next chunk (circular) */
    enum chunk_kind kind;  /* what follows the header */
    size_t off;            /* bytes of the chunk already sent */
    size_t len;            /* bytes in the chunk */
};

typedef struct mem_chunk_s {
    pants__wchunk_t h;    /* h.len bytes used of cap */
    size_t cap;           /* bytes allocated in data */
    unsigned char data[]; /* the copy */
} mem_chunk_t;

typedef struct ref_chunk_s {
    pants__wchunk_t h;                             /* h.len bytes at data */
    const unsigned char *data;                     /* not ours */
    void (*release)(const void *, size_t, void *); /* gives it back */
    void *arg;                                     /* release's argument */
} ref_chunk_t;

typedef struct file_chunk_s {
    pants__wchunk_t h; /* h.len bytes of the file from start */
    int fd;            /* our duplicate of the file */
    off_t start;       /* offset of the range's first byte */
} file_chunk_t;

/* iovecs and sendmsg take non-const pointers to bytes they only read. */
static void *unconst(const void *p)
{
    return (void *)(uintptr_t)p;
}

/* ---- The plain transport ----------------------------------------------- */

/* read, send and sendmsg are made as direct system calls: in a threaded
 * process libc wraps each in cancellation bookkeeping that costs more than
 * the rest of an echo's user-space path, and loop threads are never
 * cancelled.  ThreadSanitizer builds keep libc's calls, which it watches:
 * bytes through a socket order what two threads do. */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define __SANITIZE_THREAD__ 1 /* clang says it this way */
#endif
#endif
#ifdef __SANITIZE_THREAD__
#define sys_read(fd, buf, len)        read(fd, buf, len)
#define sys_send(fd, buf, len, flags) send(fd, buf, len, flags)
#define sys_sendmsg(fd, msg, flags)   sendmsg(fd, msg, flags)
#else
#define sys_read(fd, buf, len)        syscall(SYS_read, fd, buf, len)
#define sys_send(fd, buf, len, flags) syscall(SYS_sendto, fd, buf, len, flags, NULL, 0)
#define sys_sendmsg(fd, msg, flags)   syscall(SYS_sendmsg, fd, msg, flags)
#endif

static ssize_t plain_recv(void *io, void *buf, size_t len)
{
    long n = sys_read(*(int *)io, buf, len);

    return n < 0 ? -errno : n;
}

static ssize_t plain_send(void *io, const struct iovec *iov, int n)
{
    struct msghdr msg = {.msg_iov = unconst(iov), .msg_iovlen = (size_t)n};
    long sent;

    if (n == 1) /* the common case: one buffer */
        sent = sys_send(*(int *)io, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL);
    else
        sent = sys_sendmsg(*(int *)io, &msg, MSG_NOSIGNAL);
    return sent < 0 ? -errno : sent;
}

static ssize_t plain_sendfile(void *io, int fd, off_t *off, size_t len)
{
    ssize_t n = sendfile(*(int *)io, fd, off, len);

    return n < 0 ? -errno : n;
}

static int plain_shutdown(void *io)
{
    return shutdown(*(int *)io, SHUT_WR) < 0 ? -errno : 0;
}

const pants__transport_t pants__plain_transport = {"plain", plain_recv, plain_send, plain_sendfile,
                                                   plain_shutdown};

/* ---- Chunks ------------------------------------------------------------- */

static pants__wchunk_t *head_of(const pants__wq_t *q)
{
    return q->tail ? q->tail->next : NULL;
}

static void link_chunk(pants__wq_t *q, pants__wchunk_t *c)
{
    if (q->tail == NULL) {
        c->next = c;
    } else {
        c->next = q->tail->next;
        q->tail->next = c;
    }
    q->tail = c;
    q->bytes += c->len - c->off;
    if (c->kind != CHUNK_FILE)
        q->mem += c->len - c->off;
}

static void unlink_head(pants__wq_t *q)
{
    pants__wchunk_t *head = q->tail->next;

    if (head == q->tail)
        q->tail = NULL;
    else
        q->tail->next = head->next;
}

static void chunk_free(pants__wchunk_t *c, pants_loop_t *l)
{
    if (c->kind == CHUNK_MEM) {
        pants__loop_freed(l, ((mem_chunk_t *)c)->cap);
    } else if (c->kind == CHUNK_REF) {
        ref_chunk_t *r = (ref_chunk_t *)c;
        r->release(r->data, c->len, r->arg);
    } else if (c->kind == CHUNK_FILE) {
        close(((file_chunk_t *)c)->fd);
    }
    free(c);
}

/* Capacity of a new owned chunk for len more bytes: small queues stay
 * small, a growing one gets larger chunks. */
static size_t chunk_cap(const pants__wq_t *q, size_t len)
{
    size_t cap = q->mem < CHUNK_MIN ? CHUNK_MIN : q->mem > CHUNK_MAX ? CHUNK_MAX : q->mem;

    cap -= sizeof(mem_chunk_t);
    return len > cap ? len : cap;
}

/* Append a copy: fill the tail's room, then one new chunk for the rest,
 * allocated before anything is copied (nothing half-queued). */
static int append_copy(pants__wq_t *q, const unsigned char *p, size_t len)
{
    mem_chunk_t *t = q->tail && q->tail->kind == CHUNK_MEM ? (mem_chunk_t *)q->tail : NULL;
    size_t room = t ? t->cap - t->h.len : 0, first = len < room ? len : room;
    mem_chunk_t *c = NULL;

    if (len > first) {
        size_t cap = chunk_cap(q, len - first);
        c = malloc(sizeof(*c) + cap);
        if (c == NULL)
            return -ENOMEM;
        c->h.kind = CHUNK_MEM;
        c->h.off = 0;
        c->h.len = len - first;
        c->cap = cap;
        memcpy(c->data, p + first, len - first);
    }
    if (first > 0) {
        memcpy(t->data + t->h.len, p, first);
        t->h.len += first;
        q->bytes += first;
        q->mem += first;
    }
    if (c != NULL)
        link_chunk(q, &c->h);
    return 0;
}

/* ---- The stage ---------------------------------------------------------- */

static pants__wstage_t *stage_of(const pants__wq_t *q, pants_loop_t *l)
{
    pants__wstage_t *st = l->wstage;

    return st != NULL && st->owner == q ? st : NULL;
}

static void stage_reset(pants__wstage_t *st)
{
    st->n = 0;
    st->len = 0;
    st->copied = 0;
}

pants__wstage_t *pants__wq_stage_new(pants_loop_t *l)
{
    pants__wstage_t *st = calloc(1, sizeof(*st));

    l->wstage = st;
    return st;
}

int pants__wq_stage_spill(pants__wq_t *q, pants__wstage_t *st)
{
    int rc = 0;

    for (int i = 0; i < st->n && rc == 0; i++)
        rc = append_copy(q, st->iov[i].iov_base, st->iov[i].iov_len);
    stage_reset(st);
    return rc;
}

static bool in_scratch(const pants_loop_t *l, const unsigned char *p, size_t len)
{
    uintptr_t a = (uintptr_t)p, s = (uintptr_t)l->scratch;

    return a >= s && a - s + len <= PANTS__SCRATCH_SIZE;
}

int pants__wq_stage_pin(pants__wq_t *q, pants_loop_t *l)
{
    pants__wstage_t *st = stage_of(q, l);

    for (int i = 0; st != NULL && i < st->n; i++) {
        struct iovec *v = &st->iov[i];
        if (!in_scratch(l, v->iov_base, v->iov_len))
            continue;
        if (st->copied + v->iov_len > PANTS__SCRATCH_SIZE)
            return pants__wq_stage_spill(q, st);
        v->iov_base = memcpy(l->wscratch + st->copied, v->iov_base, v->iov_len);
        st->copied += v->iov_len;
    }
    return 0;
}

/* Record len bytes in the stage.  false: no room left there. */
static bool stage_add(pants__wstage_t *st, pants_loop_t *l, const unsigned char *p, size_t len)
{
    struct iovec *last = st->n > 0 ? &st->iov[st->n - 1] : NULL;
    bool copy = len < PANTS__WQ_REF_MIN || !in_scratch(l, p, len);

    if (copy && st->copied + len > PANTS__SCRATCH_SIZE)
        return false;
    if (copy && last != NULL && (unsigned char *)last->iov_base + last->iov_len == l->wscratch + st->copied) {
        memcpy(l->wscratch + st->copied, p, len); /* grows the last copy */
        st->copied += len;
        last->iov_len += len;
        st->len += len;
        return true;
    }
    if (!copy && last != NULL && (const unsigned char *)last->iov_base + last->iov_len == p) {
        last->iov_len += len; /* the next bytes of the same read */
        st->len += len;
        return true;
    }
    if (st->n == PANTS__STAGE_IOV)
        return false;
    if (copy) {
        p = memcpy(l->wscratch + st->copied, p, len);
        st->copied += len;
    }
    st->iov[st->n].iov_base = unconst(p);
    st->iov[st->n].iov_len = len;
    st->n++;
    st->len += len;
    return true;
}

/* ---- Writing into the queue -------------------------------------------- */

int pants__wq_write_slow(pants__wq_t *q, pants_loop_t *l, const void *data, size_t len)
{
    pants__wstage_t *st = stage_of(q, l);

    if (st != NULL && q->tail == NULL) {
        if (stage_add(st, l, data, len))
            return 0;
        if (pants__wq_stage_spill(q, st) < 0)
            return -ENOMEM;
    }
    return append_copy(q, data, len);
}

/* Appending anything but a copy: what is staged goes first. */
static int before_append(pants__wq_t *q, pants_loop_t *l)
{
    pants__wstage_t *st = stage_of(q, l);

    return st != NULL && st->n > 0 ? pants__wq_stage_spill(q, st) : 0;
}

int pants__wq_write_ref(pants__wq_t *q, pants_loop_t *l, const void *data, size_t len,
                        void (*release)(const void *, size_t, void *), void *arg)
{
    ref_chunk_t *c = malloc(sizeof(*c));

    if (c == NULL || before_append(q, l) < 0) {
        free(c);
        release(data, len, arg);
        return -ENOMEM;
    }
    c->h.kind = CHUNK_REF;
    c->h.off = 0;
    c->h.len = len;
    c->data = data;
    c->release = release;
    c->arg = arg;
    link_chunk(q, &c->h);
    return 0;
}

int pants__wq_write_file(pants__wq_t *q, pants_loop_t *l, int fd, off_t offset, size_t len)
{
    file_chunk_t *c = malloc(sizeof(*c));

    if (c == NULL || before_append(q, l) < 0) {
        free(c);
        return -ENOMEM;
    }
    c->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (c->fd < 0) {
        int err = -errno;
        free(c);
        return err;
    }
    c->h.kind = CHUNK_FILE;
    c->h.off = 0;
    c->h.len = len;
    c->start = offset;
    link_chunk(q, &c->h);
    return 0;
}

/* ---- Sending ------------------------------------------------------------ */

/* n bytes of the memory chunks at the head went out. */
static void consume(pants__wq_t *q, pants_loop_t *l, size_t n)
{
    while (n > 0) {
        pants__wchunk_t *head = q->tail->next;
        size_t avail = head->len - head->off, used = n < avail ? n : avail;
        head->off += used;
        q->bytes -= used;
        q->mem -= used;
        n -= used;
        if (head->off < head->len)
            return;
        unlink_head(q);
        chunk_free(head, l);
    }
}

/* Drop the head chunk with what is left of it (a file that ended early). */
static void skip_head(pants__wq_t *q, pants_loop_t *l)
{
    pants__wchunk_t *head = q->tail->next;

    q->bytes -= head->len - head->off;
    unlink_head(q);
    chunk_free(head, l);
}

/* The memory chunks from the head, up to the first file range, as one
 * vectored send.  Bytes sent or -errno; *offered what was asked. */
static ssize_t send_memory(pants__wq_t *q, pants_loop_t *l, const pants__transport_t *t, void *io,
                           size_t *offered)
{
    struct iovec iov[SEND_IOV];
    pants__wchunk_t *c = q->tail->next;
    int n = 0;

    *offered = 0;
    do {
        const unsigned char *base =
            c->kind == CHUNK_MEM ? ((mem_chunk_t *)c)->data : ((ref_chunk_t *)c)->data;
        iov[n].iov_base = unconst(base + c->off);
        iov[n].iov_len = c->len - c->off;
        *offered += iov[n].iov_len;
        n++;
        c = c->next;
    } while (n < SEND_IOV && c != q->tail->next && c->kind != CHUNK_FILE);
    ssize_t sent = t->send(io, iov, n);
    if (sent > 0)
        consume(q, l, (size_t)sent);
    return sent;
}

/* Read a file range through the loop's write scratch, for transports
 * without sendfile (the bytes are read again if not all are taken). */
static ssize_t bounce_file(file_chunk_t *c, pants_loop_t *l, const pants__transport_t *t, void *io,
                           size_t len)
{
    off_t off = c->start + (off_t)c->h.off;
    ssize_t n = pread(c->fd, l->wscratch, len < PANTS__SCRATCH_SIZE ? len : PANTS__SCRATCH_SIZE, off);
    struct iovec v = {l->wscratch, (size_t)n};

    if (n <= 0)
        return n < 0 ? -errno : 0;
    return t->send(io, &v, 1);
}

/* The file range at the head.  Bytes sent, 0 if the file ended first, or
 * -errno; *offered what was asked. */
static ssize_t send_file(pants__wq_t *q, pants_loop_t *l, const pants__transport_t *t, void *io,
                         size_t *offered)
{
    file_chunk_t *c = (file_chunk_t *)q->tail->next;
    size_t left = c->h.len - c->h.off;
    ssize_t n;

    *offered = left < FILE_STEP ? left : FILE_STEP;
    if (t->sendfile != NULL) {
        off_t off = c->start + (off_t)c->h.off;
        n = t->sendfile(io, c->fd, &off, *offered);
    } else {
        n = bounce_file(c, l, t, io, *offered);
    }
    if (n > 0) {
        c->h.off += (size_t)n;
        q->bytes -= (size_t)n;
        if (c->h.off == c->h.len) {
            unlink_head(q);
            chunk_free(&c->h, l);
        }
    }
    return n;
}

/* Send the stage; what the transport does not take moves into the queue. */
static int flush_stage(pants__wq_t *q, pants__wstage_t *st, const pants__transport_t *t, void *io)
{
    return pants__wq_stage_sent(q, st, t->send(io, st->iov, st->n));
}

int pants__wq_stage_sent(pants__wq_t *q, pants__wstage_t *st, ssize_t sent)
{
    if (sent < 0 && sent != -EAGAIN)
        return (int)sent;
    if (sent > 0 && (size_t)sent == st->len) {
        stage_reset(st);
        return PANTS__WQ_EMPTY;
    }
    for (size_t skip = sent > 0 ? (size_t)sent : 0; skip > 0;) { /* drop what went */
        size_t used = skip < st->iov[0].iov_len ? skip : st->iov[0].iov_len;
        st->iov[0].iov_base = (unsigned char *)st->iov[0].iov_base + used;
        st->iov[0].iov_len -= used;
        skip -= used;
        if (st->iov[0].iov_len == 0)
            memmove(st->iov, st->iov + 1, (size_t)--st->n * sizeof(st->iov[0]));
    }
    return pants__wq_stage_spill(q, st) < 0 ? -ENOMEM : PANTS__WQ_BLOCKED;
}

int pants__wq_flush_slow(pants__wq_t *q, pants_loop_t *l, const pants__transport_t *t, void *io)
{
    pants__wstage_t *st = stage_of(q, l);
    size_t budget = FLUSH_BUDGET;

    if (st != NULL && st->n > 0) {
        int rc = flush_stage(q, st, t, io);
        if (rc != PANTS__WQ_EMPTY)
            return rc;
    }
    while (q->tail != NULL) {
        size_t offered;
        bool file = head_of(q)->kind == CHUNK_FILE;
        ssize_t n = file ? send_file(q, l, t, io, &offered) : send_memory(q, l, t, io, &offered);
        if (n == -EAGAIN || n == -EINTR)
            return n == -EAGAIN ? PANTS__WQ_BLOCKED : PANTS__WQ_MORE;
        if (n < 0)
            return (int)n;
        if (n == 0 && file) { /* the file is shorter than its range now */
            skip_head(q, l);
            continue;
        }
        if ((size_t)n < offered && !file)
            return PANTS__WQ_BLOCKED;
        if ((size_t)n >= budget)
            return q->tail != NULL ? PANTS__WQ_MORE : PANTS__WQ_EMPTY;
        budget -= (size_t)n;
    }
    return PANTS__WQ_EMPTY;
}

void pants__wq_clear(pants__wq_t *q, pants_loop_t *l)
{
    pants__wstage_t *st = stage_of(q, l);

    if (st != NULL)
        stage_reset(st);
    while (q->tail != NULL) {
        pants__wchunk_t *head = q->tail->next;
        unlink_head(q);
        chunk_free(head, l);
    }
    q->bytes = q->mem = 0;
}
