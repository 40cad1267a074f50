/* framer.c -- cutting a byte stream into frames (see framer-internal.h).
 *
 * Each delimiter kind has a scan function that looks at the pending bytes
 * and either names the front frame or records how far it searched, so that
 * the next call, with the same bytes plus more, starts where this one
 * stopped.  "until" resumes dlen-1 bytes before the end of what it searched
 * (a delimiter may straddle two feeds); "regex" resumes at the start of the
 * partial match PCRE2 reports, or at the end when there was none.  Setting a
 * delimiter builds the new state completely before releasing the old one,
 * so a failed set leaves the framer as it was.
 *
 * A regex delimiter is a backtracking matcher fed by the peer, so its cost
 * is bounded: every frame may take at most REGEX_STEPS_BASE steps plus
 * REGEX_STEPS_PER_BYTE per pending byte, counted by PCRE2 auto-callouts
 * across all the matches made for that frame -- the re-matches as bytes
 * arrive included -- since PCRE2's own match limit restarts at every start
 * position and so allows (pending bytes) x (limit) per call.  The match
 * context also caps nesting (depth) and the interpreter's heap; with JIT,
 * its 32 KiB stack does that.  At the default 64 KiB read limit a frame
 * costs at most about 1.2 million steps (of the order of 10 ms with JIT,
 * a few times that without), however its bytes arrive; ordinary delimiters
 * take one or two steps a byte.  The count costs a callout per pattern
 * item tried: a few ns per step.
 *
 * Beyond the user framer's errors, a regex match can fail at run time: any
 * of those limits gives PANTS__FRAME_ERROR with -E2BIG, PCRE2 failing to
 * get memory -ENOMEM, bytes that are not UTF-8 under a (*UTF) pattern
 * -EILSEQ, anything else -EPROTO.  -E2BIG ("too big a job") as the Linux
 * BPF verifier uses it for a program past its complexity or call-depth
 * limit: the work the input asks for exceeds a fixed budget.  It is none
 * of ENOMEM (no allocation failed), EILSEQ or EPROTO (the bytes may be
 * well formed) or ELOOP (a path's symbolic links; connect can give it).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem; the build also sets it */
#endif
#define PCRE2_CODE_UNIT_WIDTH 8

#include "framer-internal.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <pcre2.h>

#define REGEX_STEPS_BASE     ((size_t)1 << 17) /* match steps any frame may take */
#define REGEX_STEPS_PER_BYTE 16                /* and more per pending byte */
#define REGEX_DEPTH_LIMIT    10000             /* nested backtracking points (interpreter) */
#define REGEX_HEAP_KIB       256               /* the interpreter's backtracking memory */

/* ---- Per-kind state --------------------------------------------------- */

/* Free what the current kind owns; f keeps its kind until reassigned. */
static void release(pants__framer_t *f)
{
    switch (f->kind) {
    case PANTS__FRAME_UNTIL:
        if (f->u.until.delim != f->u.until.small)
            free(f->u.until.delim);
        break;
    case PANTS__FRAME_REGEX:
        pcre2_match_context_free(f->u.regex.match_context);
        pcre2_match_data_free(f->u.regex.match_data);
        pcre2_code_free(f->u.regex.code);
        break;
    default:
        break;
    }
    memset(&f->u, 0, sizeof(f->u));
}

/* Drop the old kind's state and make f a fresh framer of kind k. */
static void switch_kind(pants__framer_t *f, enum pants__frame_kind k)
{
    release(f);
    f->kind = k;
    f->scanned = 0;
}

void pants__framer_init(pants__framer_t *f)
{
    memset(f, 0, sizeof(*f));
    f->kind = PANTS__FRAME_ANY;
}

void pants__framer_deinit(pants__framer_t *f)
{
    switch_kind(f, PANTS__FRAME_ANY);
}

/* ---- Setting a delimiter ---------------------------------------------- */

int pants__framer_set_any(pants__framer_t *f)
{
    if (f == NULL)
        return -EINVAL;
    switch_kind(f, PANTS__FRAME_ANY);
    return 0;
}

int pants__framer_set_until(pants__framer_t *f, const void *delim, size_t len)
{
    unsigned char small[PANTS__DELIM_INLINE], *copy = small;

    if (f == NULL || delim == NULL || len == 0)
        return -EINVAL;
    if (len > sizeof(small) && (copy = malloc(len)) == NULL)
        return -ENOMEM;
    memcpy(copy, delim, len); /* before release: delim may be f's own copy */
    switch_kind(f, PANTS__FRAME_UNTIL);
    if (copy == small) { /* the usual "\r\n" or "\r\n\r\n": no allocation per frame kind change */
        memcpy(f->u.until.small, small, len);
        copy = f->u.until.small;
    }
    f->u.until.delim = copy;
    f->u.until.len = len;
    return 0;
}

int pants__framer_set_exact(pants__framer_t *f, size_t n)
{
    if (f == NULL || n == 0 || n > SSIZE_MAX)
        return -EINVAL;
    switch_kind(f, PANTS__FRAME_EXACT);
    f->u.exact = n;
    return 0;
}

/* A step of a match (an auto-callout before each pattern item): one less
 * left in *data, or the match stops with PCRE2_ERROR_MATCHLIMIT. */
static int count_step(pcre2_callout_block *cb, void *data)
{
    size_t *left = data;

    (void)cb;
    if (*left == 0)
        return PCRE2_ERROR_MATCHLIMIT;
    --*left;
    return 0;
}

/* How many steps the matches for one frame may take, len bytes pending. */
static size_t regex_allowed(size_t len)
{
    if (len > (SIZE_MAX - REGEX_STEPS_BASE) / REGEX_STEPS_PER_BYTE)
        return SIZE_MAX;
    return REGEX_STEPS_BASE + REGEX_STEPS_PER_BYTE * len;
}

/* One search of buf[0..len) from start, at most *left steps (less what it
 * took on return), with the limits of mc. */
static int regex_run(pcre2_code *code, pcre2_match_data *md, pcre2_match_context *mc,
                     const unsigned char *buf, size_t len, size_t start, uint32_t options, size_t *left)
{
    pcre2_set_callout(mc, count_step, left);
    pcre2_set_match_limit(mc, *left < UINT32_MAX ? (uint32_t)*left : UINT32_MAX); /* per start position */
    return pcre2_match(code, buf, len, start, options, md, mc);
}

/* The match context every search of a regex delimiter uses: its limits. */
static pcre2_match_context *regex_context(void)
{
    pcre2_match_context *mc = pcre2_match_context_create(NULL);

    if (mc == NULL)
        return NULL;
    pcre2_set_depth_limit(mc, REGEX_DEPTH_LIMIT);
    pcre2_set_heap_limit(mc, REGEX_HEAP_KIB);
    return mc;
}

/* Compile pattern (JIT where possible, with a step count) and reject one
 * that matches the empty subject.  0 with *codep, *mdp and *mcp set, or
 * -EINVAL / -ENOMEM. */
static int regex_compile(const char *pattern, pcre2_code **codep, pcre2_match_data **mdp,
                         pcre2_match_context **mcp)
{
    pcre2_code *code;
    pcre2_match_data *md;
    pcre2_match_context *mc;
    PCRE2_SIZE erroff;
    size_t left = REGEX_STEPS_BASE;
    int errcode, rc;

    code = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_AUTO_CALLOUT, &errcode, &erroff,
                         NULL);
    if (code == NULL)
        return errcode == PCRE2_ERROR_HEAP_FAILED ? -ENOMEM : -EINVAL;
    (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE | PCRE2_JIT_PARTIAL_SOFT); /* else interpreter */
    md = pcre2_match_data_create_from_pattern(code, NULL);
    mc = regex_context();
    if (md == NULL || mc == NULL) {
        rc = -ENOMEM;
        goto free_compiled;
    }
    rc = regex_run(code, md, mc, (const unsigned char *)"", 0, 0, 0, &left);
    if (rc != PCRE2_ERROR_NOMATCH) {
        rc = rc == PCRE2_ERROR_NOMEMORY ? -ENOMEM : -EINVAL;
        goto free_compiled;
    }
    *codep = code;
    *mdp = md;
    *mcp = mc;
    return 0;

free_compiled:
    pcre2_match_context_free(mc);
    pcre2_match_data_free(md);
    pcre2_code_free(code);
    return rc;
}

int pants__framer_set_regex(pants__framer_t *f, const char *pattern)
{
    pcre2_code *code;
    pcre2_match_data *md;
    pcre2_match_context *mc;
    int rc;

    if (f == NULL || pattern == NULL)
        return -EINVAL;
    rc = regex_compile(pattern, &code, &md, &mc);
    if (rc < 0)
        return rc;
    switch_kind(f, PANTS__FRAME_REGEX);
    f->u.regex.code = code;
    f->u.regex.match_data = md;
    f->u.regex.match_context = mc;
    return 0;
}

int pants__framer_set_framed(pants__framer_t *f, pants_framer_t fn, void *arg)
{
    if (f == NULL || fn == NULL)
        return -EINVAL;
    switch_kind(f, PANTS__FRAME_FRAMED);
    f->u.framed.fn = fn;
    f->u.framed.arg = arg;
    return 0;
}

/* ---- Scanning --------------------------------------------------------- */

/* "until": search only from dlen-1 bytes before where the last search
 * stopped, so each byte is examined a bounded number of times. */
static ssize_t scan_until(pants__framer_t *f, const unsigned char *buf, size_t len, size_t *skip)
{
    const unsigned char *delim = f->u.until.delim;
    size_t dlen = f->u.until.len;
    size_t from = f->scanned >= dlen - 1 ? f->scanned - (dlen - 1) : 0;
    const unsigned char *hit;

    if (dlen == 1)
        hit = memchr(buf + from, delim[0], len - from);
    else
        hit = memmem(buf + from, len - from, delim, dlen);
    if (hit == NULL) {
        f->scanned = len;
        return PANTS__FRAME_NEED_MORE;
    }
    *skip = dlen;
    return hit - buf;
}

static ssize_t scan_exact(const pants__framer_t *f, size_t len)
{
    if (len < f->u.exact)
        return PANTS__FRAME_NEED_MORE;
    return (ssize_t)f->u.exact;
}

/* The errno for a PCRE2 match failure other than "no match" / "partial":
 * every resource limit (steps, depth, heap, JIT stack) is -E2BIG. */
static int regex_errno(int rc)
{
    switch (rc) {
    case PCRE2_ERROR_NOMEMORY:
        return -ENOMEM;
    case PCRE2_ERROR_HEAPLIMIT:
    case PCRE2_ERROR_JIT_STACKLIMIT:
    case PCRE2_ERROR_MATCHLIMIT:
    case PCRE2_ERROR_DEPTHLIMIT:
        return -E2BIG;
    default:
        if (rc <= PCRE2_ERROR_UTF8_ERR1 && rc >= PCRE2_ERROR_UTF8_ERR21)
            return -EILSEQ;
        return -EPROTO;
    }
}

/* One PCRE2 search of buf[0..len) from the search position, within what
 * is left of the frame's steps. */
static int regex_match(pants__framer_t *f, const unsigned char *buf, size_t len)
{
    size_t allowed = regex_allowed(len), left;
    int rc;

    if (f->u.regex.spent >= allowed)
        return PCRE2_ERROR_MATCHLIMIT;
    left = allowed - f->u.regex.spent;
    rc = regex_run(f->u.regex.code, f->u.regex.match_data, f->u.regex.match_context, buf, len, f->scanned,
                   PCRE2_PARTIAL_SOFT | PCRE2_NOTEMPTY, &left);
    f->u.regex.spent = allowed - left;
    return rc;
}

/* "regex": the first complete match from the search position cuts a frame;
 * a partial match at the end means resume at its start.  Under a (*UTF)
 * pattern a character split between feeds is left out of the search until
 * its last byte arrives. */
static ssize_t scan_regex(pants__framer_t *f, const unsigned char *buf, size_t len, size_t *skip, int *err)
{
    pcre2_match_data *md = f->u.regex.match_data;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    int rc = regex_match(f, buf, len);

    if (rc <= PCRE2_ERROR_UTF8_ERR1 && rc >= PCRE2_ERROR_UTF8_ERR5) { /* truncated at the end */
        len = pcre2_get_startchar(md);
        rc = regex_match(f, buf, len);
    }
    if (rc >= 0) {
        *skip = ov[1] - ov[0];
        return (ssize_t)ov[0];
    }
    if (rc == PCRE2_ERROR_PARTIAL || rc == PCRE2_ERROR_NOMATCH) {
        f->scanned = rc == PCRE2_ERROR_PARTIAL ? ov[0] : len;
        return PANTS__FRAME_NEED_MORE;
    }
    *err = regex_errno(rc);
    return PANTS__FRAME_ERROR;
}

/* "framed": the user's function decides; its answer is checked to fit. */
static ssize_t scan_framed(pants__framer_t *f, const unsigned char *buf, size_t len, size_t *skip, int *err)
{
    ssize_t n = f->u.framed.fn(buf, len, skip, f->u.framed.arg);

    if (n < 0) {
        *err = n >= INT_MIN ? (int)n : -EPROTO;
        return PANTS__FRAME_ERROR;
    }
    if (n == 0) {
        *skip = 0;
        return PANTS__FRAME_NEED_MORE;
    }
    if ((size_t)n > len || *skip > len - (size_t)n) {
        *err = -EPROTO;
        return PANTS__FRAME_ERROR;
    }
    return n;
}

ssize_t pants__framer_scan(pants__framer_t *f, const unsigned char *buf, size_t len, size_t *skip, int *err)
{
    *skip = 0;
    if (len == 0) /* no kind cuts a frame out of nothing */
        return PANTS__FRAME_NEED_MORE;
    if (f->scanned > len) /* fewer bytes than last time: search afresh */
        f->scanned = 0;
    switch (f->kind) {
    case PANTS__FRAME_UNTIL:
        return scan_until(f, buf, len, skip);
    case PANTS__FRAME_EXACT:
        return scan_exact(f, len);
    case PANTS__FRAME_REGEX:
        return scan_regex(f, buf, len, skip, err);
    case PANTS__FRAME_FRAMED:
        return scan_framed(f, buf, len, skip, err);
    default:
        return (ssize_t)len;
    }
}

ssize_t pants__framer_scan_evbuffer(pants__framer_t *f, struct evbuffer *buf, const unsigned char **data,
                                    size_t *skip, int *err)
{
    size_t len = evbuffer_get_length(buf);

    *skip = 0;
    *data = NULL;
    if (len == 0)
        return PANTS__FRAME_NEED_MORE;
    *data = evbuffer_pullup(buf, -1);
    if (*data == NULL) {
        *err = -ENOMEM;
        return PANTS__FRAME_ERROR;
    }
    return pants__framer_scan(f, *data, len, skip, err);
}

void pants__framer_consumed(pants__framer_t *f)
{
    f->scanned = 0;
    if (f->kind == PANTS__FRAME_REGEX)
        f->u.regex.spent = 0; /* the next frame's steps start afresh */
}

size_t pants__framer_min_limit(const pants__framer_t *f)
{
    switch (f->kind) {
    case PANTS__FRAME_UNTIL:
        return f->u.until.len;
    case PANTS__FRAME_EXACT:
        return f->u.exact;
    default:
        return 1;
    }
}
