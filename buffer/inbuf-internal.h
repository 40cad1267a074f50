/* inbuf-internal.h -- the bytes of a frame that has not arrived whole.
 *
 * One contiguous run of pending bytes, so the framer can search it in
 * place and on_read can be given a pointer into it.  It grows by doubling
 * and compacts only when the consumed prefix is at least as long as what
 * is left, so bytes are copied O(1) times each on average: a 1 MiB line
 * arriving a byte at a time costs O(n), not O(n^2).  Empty, it keeps at
 * most a small allocation, so idle connections stay small.
 *
 * Thread: used by one thread at a time (its stream's loop).
 */
#ifndef PANTS_INBUF_INTERNAL_H
#define PANTS_INBUF_INTERNAL_H

#include <stddef.h>

typedef struct pants__inbuf_s {
    unsigned char *data; /* the allocation, or NULL */
    size_t start;        /* offset of the first pending byte */
    size_t len;          /* pending bytes */
    size_t cap;          /* bytes allocated */
} pants__inbuf_t;

/* An empty buffer; owns nothing. */
void pants__inbuf_init(pants__inbuf_t *b);

/* Free what b owns; b is empty after. */
void pants__inbuf_deinit(pants__inbuf_t *b);

/* The pending bytes: pants__inbuf_data(b)[0 .. b->len). */
static inline unsigned char *pants__inbuf_data(const pants__inbuf_t *b)
{
    return b->data + b->start;
}

/* Room for at least want more bytes after the pending ones.  Returns where
 * to put them, with *avail (>= want) bytes there; NULL if out of memory
 * (b unchanged). */
unsigned char *pants__inbuf_space(pants__inbuf_t *b, size_t want, size_t *avail);

/* n bytes were written at the space returned by pants__inbuf_space. */
void pants__inbuf_commit(pants__inbuf_t *b, size_t n);

/* Append a copy of p[0..n).  0 or -ENOMEM. */
int pants__inbuf_append(pants__inbuf_t *b, const void *p, size_t n);

/* Drop the first n pending bytes (n <= b->len). */
void pants__inbuf_consume(pants__inbuf_t *b, size_t n);

#endif /* PANTS_INBUF_INTERNAL_H */
