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
 * Beyond the user framer's errors, a regex match can fail at run time: a
 * PCRE2 resource limit gives PANTS__FRAME_ERROR with -ENOMEM, bytes that are
 * not UTF-8 under a (*UTF) pattern give -EILSEQ, anything else -EPROTO.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem; the build also sets it */
#endif
#define PCRE2_CODE_UNIT_WIDTH 8

#include "framer-internal.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <pcre2.h>

/* ---- Per-kind state --------------------------------------------------- */

/* Free what the current kind owns; f keeps its kind until reassigned. */
static void release(pants__framer_t *f)
{
    switch (f->kind) {
    case PANTS__FRAME_UNTIL:
        free(f->u.until.delim);
        break;
    case PANTS__FRAME_REGEX:
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
    unsigned char *copy;

    if (f == NULL || delim == NULL || len == 0)
        return -EINVAL;
    copy = malloc(len);
    if (copy == NULL)
        return -ENOMEM;
    memcpy(copy, delim, len); /* before release: delim may be f's own copy */
    switch_kind(f, PANTS__FRAME_UNTIL);
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

/* Compile pattern (JIT where possible) and reject one that matches the
 * empty subject.  0 with *codep and *mdp set, or -EINVAL / -ENOMEM. */
static int regex_compile(const char *pattern, pcre2_code **codep, pcre2_match_data **mdp)
{
    pcre2_code *code;
    pcre2_match_data *md;
    PCRE2_SIZE erroff;
    int errcode, rc;

    code = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, 0, &errcode, &erroff, NULL);
    if (code == NULL)
        return errcode == PCRE2_ERROR_HEAP_FAILED ? -ENOMEM : -EINVAL;
    (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE | PCRE2_JIT_PARTIAL_SOFT); /* else interpreter */
    md = pcre2_match_data_create_from_pattern(code, NULL);
    if (md == NULL) {
        rc = -ENOMEM;
        goto free_code;
    }
    rc = pcre2_match(code, (PCRE2_SPTR) "", 0, 0, 0, md, NULL);
    if (rc != PCRE2_ERROR_NOMATCH) {
        rc = rc == PCRE2_ERROR_NOMEMORY ? -ENOMEM : -EINVAL;
        goto free_match_data;
    }
    *codep = code;
    *mdp = md;
    return 0;

free_match_data:
    pcre2_match_data_free(md);
free_code:
    pcre2_code_free(code);
    return rc;
}

int pants__framer_set_regex(pants__framer_t *f, const char *pattern)
{
    pcre2_code *code;
    pcre2_match_data *md;
    int rc;

    if (f == NULL || pattern == NULL)
        return -EINVAL;
    rc = regex_compile(pattern, &code, &md);
    if (rc < 0)
        return rc;
    switch_kind(f, PANTS__FRAME_REGEX);
    f->u.regex.code = code;
    f->u.regex.match_data = md;
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

/* The errno for a PCRE2 match failure other than "no match" / "partial". */
static int regex_errno(int rc)
{
    switch (rc) {
    case PCRE2_ERROR_NOMEMORY:
    case PCRE2_ERROR_HEAPLIMIT:
    case PCRE2_ERROR_JIT_STACKLIMIT:
    case PCRE2_ERROR_MATCHLIMIT:
    case PCRE2_ERROR_DEPTHLIMIT:
        return -ENOMEM;
    default:
        if (rc <= PCRE2_ERROR_UTF8_ERR1 && rc >= PCRE2_ERROR_UTF8_ERR21)
            return -EILSEQ;
        return -EPROTO;
    }
}

/* One PCRE2 search of buf[0..len) from the search position. */
static int regex_match(const pants__framer_t *f, const unsigned char *buf, size_t len)
{
    return pcre2_match(f->u.regex.code, buf, len, f->scanned, PCRE2_PARTIAL_SOFT | PCRE2_NOTEMPTY,
                       f->u.regex.match_data, NULL);
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
