/* wqueue-internal.h -- a stream's write queue and the transport it is
 * written through.
 *
 * One ordered queue per stream holds memory chunks, shared (referenced)
 * memory and file ranges (nginx's chain with in-file buffers, libuv's
 * write queue); one function decides what goes out next and what EAGAIN
 * means.  Writes made while the stream's own I/O callback runs are staged
 * in the loop's write stage instead (no allocation: bytes still in the
 * loop's read scratch are referenced, others copied to the write scratch)
 * and leave with the queue in one system call when the callback ends.
 *
 * A transport is the table of functions the bytes go through (recv, send,
 * sendfile, shutdown): plain sockets here; TLS swaps the table per stream
 * and nothing else changes (nginx's c->recv / c->send_chain, HAProxy's
 * xprt).
 *
 * Threads: everything here runs on the loop that owns the queue.
 */
#ifndef PANTS_WQUEUE_INTERNAL_H
#define PANTS_WQUEUE_INTERNAL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "engine-internal.h"

/* ---- Transports --------------------------------------------------------- */

typedef struct pants__transport_s {
    const char *name; /* "plain", "tls" */
    /* Read up to len bytes: > 0 bytes, 0 at EOF, or -errno (-EAGAIN: none now). */
    ssize_t (*recv)(void *io, void *buf, size_t len);
    /* Send iov[0..n): bytes taken (> 0), or -errno (-EAGAIN: no room now). */
    ssize_t (*send)(void *io, const struct iovec *iov, int n);
    /* Send up to len bytes of fd from *off (advanced): bytes, 0 if the file
     * ended first, or -errno.  NULL: the queue reads the file and sends it. */
    ssize_t (*sendfile)(void *io, int fd, off_t *off, size_t len);
    /* No more bytes will be sent: 0 or -errno. */
    int (*shutdown)(void *io);
} pants__transport_t;

/* Plain sockets; io points to the socket's int descriptor. */
extern const pants__transport_t pants__plain_transport;

/* ---- The queue ---------------------------------------------------------- */

typedef struct pants__wchunk_s pants__wchunk_t;

typedef struct pants__wq_s {
    pants__wchunk_t *tail; /* circular list: tail->next is the head; NULL = empty */
    size_t bytes;          /* bytes queued, file ranges included */
    size_t mem;            /* of which held in memory (copied or shared) */
} pants__wq_t;

/* The loop's write stage: the writes of the one stream whose I/O callback
 * runs, while its queue is empty. */
#define PANTS__STAGE_IOV 64 /* iovecs staged at most; then they go to the queue */

typedef struct pants__wstage_s {
    const pants__wq_t *owner;           /* the queue staging now, or NULL */
    int n;                              /* iovecs used */
    size_t len;                         /* bytes staged */
    size_t copied;                      /* bytes of the loop's write scratch used */
    struct iovec iov[PANTS__STAGE_IOV]; /* what to send, in order */
} pants__wstage_t;

/* Results of pants__wq_flush besides a negative errno. */
enum { PANTS__WQ_EMPTY = 0, PANTS__WQ_BLOCKED = 1, PANTS__WQ_MORE = 2 };

static inline void pants__wq_init(pants__wq_t *q)
{
    q->tail = NULL;
    q->bytes = q->mem = 0;
}

/* Bytes waiting: queued and staged. */
static inline size_t pants__wq_pending(const pants__wq_t *q, const pants_loop_t *l)
{
    const pants__wstage_t *st = l->wstage;

    return q->bytes + (st != NULL && st->owner == q ? st->len : 0);
}

#define PANTS__WQ_REF_MIN 256 /* staged bytes in the read scratch from this size are not copied */

/* The loop's stage, made on first use.  NULL if out of memory. */
pants__wstage_t *pants__wq_stage_new(pants_loop_t *l);

/* Move what st stages into q, as owned copies, in order.  0 or -ENOMEM. */
int pants__wq_stage_spill(pants__wq_t *q, pants__wstage_t *st);

/* Record len bytes of a write in the stage, or queue them.  0 or -ENOMEM. */
int pants__wq_write_slow(pants__wq_t *q, pants_loop_t *l, const void *data, size_t len);

/* Bytes waiting in memory (the write limit counts these, not files). */
static inline size_t pants__wq_memory(const pants__wq_t *q, const pants_loop_t *l)
{
    return pants__wq_pending(q, l) - (q->bytes - q->mem);
}

/* The stream of q begins its I/O callback: its writes are staged until
 * pants__wq_stage_end.  0 or -ENOMEM (then they just queue). */
static inline int pants__wq_stage_begin(pants__wq_t *q, pants_loop_t *l)
{
    pants__wstage_t *st = l->wstage;

    if (st == NULL && (st = pants__wq_stage_new(l)) == NULL)
        return -ENOMEM;
    st->owner = q;
    st->n = 0;
    st->len = 0;
    st->copied = 0;
    return 0;
}

/* The I/O callback ends: what is still staged moves into q.  0 or -ENOMEM. */
static inline int pants__wq_stage_end(pants__wq_t *q, pants_loop_t *l)
{
    pants__wstage_t *st = l->wstage;

    if (st == NULL || st->owner != q)
        return 0;
    st->owner = NULL;
    return st->n > 0 ? pants__wq_stage_spill(q, st) : 0;
}

/* The loop's read scratch is about to be reused: copy what the stage
 * references there.  0 or -ENOMEM. */
int pants__wq_stage_pin(pants__wq_t *q, pants_loop_t *l);

/* Queue a copy of data[0..len) (staged: see above).  0 or -ENOMEM
 * (nothing queued).  The first write of an I/O callback that sends bytes
 * it just read -- an echo, a proxy -- is recorded here without a call. */
static inline int pants__wq_write(pants__wq_t *q, pants_loop_t *l, const void *data, size_t len)
{
    pants__wstage_t *st = l->wstage;
    uintptr_t a = (uintptr_t)data, s = (uintptr_t)l->scratch;

    if (st != NULL && st->owner == q && st->n == 0 && q->tail == NULL && len >= PANTS__WQ_REF_MIN && a >= s &&
        a - s + len <= PANTS__SCRATCH_SIZE) {
        st->iov[0].iov_base = (void *)a;
        st->iov[0].iov_len = len;
        st->n = 1;
        st->len = len;
        return 0;
    }
    return pants__wq_write_slow(q, l, data, len);
}

/* Queue data[0..len) without copying; release(data, len, arg) runs once
 * when it has been sent or dropped, also when this fails (-ENOMEM). */
int pants__wq_write_ref(pants__wq_t *q, pants_loop_t *l, const void *data, size_t len,
                        void (*release)(const void *, size_t, void *), void *arg);

/* Queue len bytes of fd from offset (fd is duplicated; the caller keeps
 * its own).  0, -ENOMEM or the errno of dup. */
int pants__wq_write_file(pants__wq_t *q, pants_loop_t *l, int fd, off_t offset, size_t len);

/* Send what is staged and queued through t.  PANTS__WQ_EMPTY: all of it
 * went; PANTS__WQ_BLOCKED: the transport is full (wait for writable);
 * PANTS__WQ_MORE: a fair share went and more is left (let the loop's other
 * streams run first); or a negative errno from the transport.  A file that
 * became shorter than its queued range is sent up to its end and the rest
 * of the range skipped. */
int pants__wq_flush_slow(pants__wq_t *q, pants_loop_t *l, const pants__transport_t *t, void *io);

/* The stage sent `sent` bytes (or -errno) of its st->len: keep the rest in
 * q.  What pants__wq_flush returns. */
int pants__wq_stage_sent(pants__wq_t *q, pants__wstage_t *st, ssize_t sent);

static inline int pants__wq_flush(pants__wq_t *q, pants_loop_t *l, const pants__transport_t *t, void *io)
{
    pants__wstage_t *st = l->wstage;

    if (q->tail == NULL && st != NULL && st->owner == q && st->n > 0) { /* the writes of one callback */
        ssize_t sent = t->send(io, st->iov, st->n);
        if (sent >= 0 && (size_t)sent == st->len) {
            st->n = 0;
            st->len = 0;
            st->copied = 0;
            return PANTS__WQ_EMPTY;
        }
        return pants__wq_stage_sent(q, st, sent);
    }
    return pants__wq_flush_slow(q, l, t, io);
}

/* Drop everything queued and staged (shares released, files closed). */
void pants__wq_clear(pants__wq_t *q, pants_loop_t *l);

#endif /* PANTS_WQUEUE_INTERNAL_H */
