/* framer-internal.h -- cutting a byte stream into frames.
 *
 * A framer knows one read delimiter (any, until(bytes), exact(n), regex,
 * or a user function) and finds the next frame at the front of a run of
 * buffered bytes.  It knows nothing of sockets, threads or loops: the stream
 * code feeds it contiguous bytes (a loop's scratch buffer, or an evbuffer
 * pulled up) and delivers what it cuts.
 *
 * Searches never rescan: the framer remembers how far into the pending
 * (not yet cut) bytes it has searched without a match, so a 1 MiB line
 * arriving one byte at a time costs O(n), not O(n^2).  (A regex resumes at
 * the start of a partial match, so it may search some bytes again; the
 * steps of all its searches for one frame are bounded, see framer.c.)  The
 * memory is reset whenever a frame is cut (pants__framer_consumed) or the
 * delimiter changes.
 *
 * Thread: a framer is used by one thread at a time (its stream's loop).
 */
#ifndef PANTS_FRAMER_INTERNAL_H
#define PANTS_FRAMER_INTERNAL_H

#include <stddef.h>
#include <sys/types.h>

#include "pants.h"

struct evbuffer;

enum pants__frame_kind {
    PANTS__FRAME_ANY = 0, /* everything buffered is one frame */
    PANTS__FRAME_UNTIL,   /* up to a byte-string delimiter */
    PANTS__FRAME_EXACT,   /* a fixed byte count */
    PANTS__FRAME_REGEX,   /* up to the first match of a PCRE2 pattern */
    PANTS__FRAME_FRAMED,  /* a user function decides */
};

/* Return codes of pants__framer_scan, as picohttpparser's. */
#define PANTS__FRAME_ERROR (-1)     /* the bytes are rejected (*err says why) */
#define PANTS__FRAME_NEED_MORE (-2) /* no complete frame yet */

#define PANTS__DELIM_INLINE 16 /* delimiters this short live inside the framer */

/* Never copied by value once a delimiter is set (until.delim may point
 * into the struct itself). */
typedef struct pants__framer_s {
    enum pants__frame_kind kind; /* which delimiter */
    size_t scanned;              /* pending bytes already searched without a match */
    union {
        struct {
            unsigned char *delim; /* the delimiter: small, or an owned copy */
            size_t len;           /* its length, >= 1 */
            unsigned char small[PANTS__DELIM_INLINE]; /* a short one, kept here (no malloc) */
        } until;                                      /* PANTS__FRAME_UNTIL */
        size_t exact;             /* PANTS__FRAME_EXACT: frame size, >= 1 */
        struct {
            void *code;          /* pcre2_code_8 *, compiled once (JIT if possible) */
            void *match_data;    /* pcre2_match_data_8 *, reused for every match */
            void *match_context; /* pcre2_match_context_8 *: the limits */
            size_t spent;        /* match steps taken for the front frame so far */
        } regex;                 /* PANTS__FRAME_REGEX */
        struct {
            pants_framer_t fn; /* the user's framer */
            void *arg;         /* its argument */
        } framed;              /* PANTS__FRAME_FRAMED */
    } u;                       /* per-kind state */
} pants__framer_t;

/* Set f up as "any".  Never fails. */
void pants__framer_init(pants__framer_t *f);

/* Release what f owns (delimiter copy, compiled regex).  f is "any" after. */
void pants__framer_deinit(pants__framer_t *f);

/* Switch f to a new delimiter.  Each returns 0, or -EINVAL (len 0 / n 0 /
 * NULL / a pattern that does not compile or matches the empty string) or
 * -ENOMEM, and then leaves f exactly as it was. */
int pants__framer_set_any(pants__framer_t *f);
int pants__framer_set_until(pants__framer_t *f, const void *delim, size_t len);
int pants__framer_set_exact(pants__framer_t *f, size_t n);
int pants__framer_set_regex(pants__framer_t *f, const char *pattern);
int pants__framer_set_framed(pants__framer_t *f, pants_framer_t fn, void *arg);

/* Find the next frame at the front of buf[0..len), the pending bytes.
 * Returns the frame's length (>= 0; "any" with len 0 gives NEED_MORE) and
 * sets *skip to the bytes after it to drop (the delimiter or match);
 * PANTS__FRAME_NEED_MORE when no frame is complete (f remembers how far it
 * searched, so call again with the same bytes plus more);
 * PANTS__FRAME_ERROR when a user framer rejects the bytes (*err is its
 * negative errno) or returns a length past len (*err = -EPROTO), or a
 * regex fails: -E2BIG when the matches for this frame ran past their
 * limits (steps: 2^17 plus 16 per pending byte, summed over every call
 * since the last frame; nesting depth; memory), -EILSEQ for bytes that are
 * not UTF-8 under (*UTF), -ENOMEM, else -EPROTO.
 * The caller must call pants__framer_consumed after cutting a frame. */
ssize_t pants__framer_scan(pants__framer_t *f, const unsigned char *buf, size_t len, size_t *skip, int *err);

/* The same over an evbuffer: pulls up the bytes it needs, never drains.
 * *data is set to the contiguous front of buf when a frame is found. */
ssize_t pants__framer_scan_evbuffer(pants__framer_t *f, struct evbuffer *buf, const unsigned char **data,
                                    size_t *skip, int *err);

/* The front frame and its skip were cut: forget the search position (and
 * the regex steps taken: the next frame has its own). */
void pants__framer_consumed(pants__framer_t *f);

/* The fewest pending bytes the read limit must allow for this delimiter to
 * ever cut a frame (exact: n; until: the delimiter's length; else 1). */
size_t pants__framer_min_limit(const pants__framer_t *f);

#endif /* PANTS_FRAMER_INTERNAL_H */
