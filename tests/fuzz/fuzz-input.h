/* fuzz-input.h -- what the libFuzzer targets of tests/fuzz/ share: reading
 * the fuzz input as a little program, and failing loudly.
 *
 * A target reads its input front to back as opcodes and operands.  Past the
 * end every read gives zeros (and fuzz_done says so), so any input is a
 * valid program and the fuzzer may cut it anywhere; FUZZ_TRACE=1 in the
 * environment prints what a program does.  A broken invariant
 * prints what broke and aborts: libFuzzer then saves the input as a crash.
 */
#ifndef PANTS_FUZZ_INPUT_H
#define PANTS_FUZZ_INPUT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* libFuzzer's entry point, defined by each target. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The program still to read. */
struct fuzz_input {
    const uint8_t *p; /* next byte */
    size_t n;         /* bytes left */
};

/* Has the whole program been read? */
static inline bool fuzz_done(const struct fuzz_input *in)
{
    return in->n == 0;
}

/* The next byte, or 0 past the end. */
static inline uint8_t fuzz_u8(struct fuzz_input *in)
{
    if (in->n == 0)
        return 0;
    in->n--;
    return *in->p++;
}

/* The next two bytes, big-endian. */
static inline uint16_t fuzz_u16(struct fuzz_input *in)
{
    uint16_t hi = fuzz_u8(in);

    return (uint16_t)(hi << 8 | fuzz_u8(in));
}

/* Up to want bytes in place: *out points at them; returns how many (fewer
 * at the end of the program). */
static inline size_t fuzz_bytes(struct fuzz_input *in, size_t want, const uint8_t **out)
{
    size_t n = want < in->n ? want : in->n;

    *out = in->p;
    in->p += n;
    in->n -= n;
    return n;
}

/* With FUZZ_TRACE set in the environment, say what the program does (to
 * read a failing input): printf-like, one line to stderr. */
__attribute__((format(printf, 1, 2))) static inline void fuzz_trace(const char *fmt, ...)
{
    static int on = -1;
    va_list ap;

    if (on < 0)
        on = getenv("FUZZ_TRACE") != NULL;
    if (!on)
        return;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* For checking code the fuzzer need not learn from (model scans, naive
 * references): no coverage hooks, which would cost more than the code
 * (and not inlined, or the caller's hooks would come back). */
#define FUZZ_UNTRACED __attribute__((no_sanitize("coverage"), noinline))

/* Abort with a message when cond is false: the fuzzer keeps the input. */
#define FUZZ_CHECK(cond, ...)                                                                                \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);                         \
            fprintf(stderr, __VA_ARGS__);                                                                    \
            fputc('\n', stderr);                                                                             \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

#endif /* PANTS_FUZZ_INPUT_H */
