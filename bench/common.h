/* common.h -- small helpers shared by the benchmark programs of bench/.
 *
 * The load generator and the two baseline servers all parse the same address
 * syntax ("host:port", "[v6]:port", "unix:/path"), raise their descriptor
 * limit the same way and burn CPU for --work-us the same way.  Keeping those
 * in one place keeps the baselines comparable: a difference in numbers must
 * come from the event handling, never from a different helper.  These
 * programs are tools, not part of libpants, so they use the bench_ prefix.
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* The listen backlog of the baseline servers. */
#define BENCH_BACKLOG 1024

/* Parse text ("1.2.3.4:80", "[::1]:80", "localhost:80", "unix:/path") into
 * ss/len.  Returns 0, or -EINVAL when text is not an address. */
int bench_addr_parse(const char *text, struct sockaddr_storage *ss, socklen_t *len);

/* Write a printable form of sa into buf (always NUL-terminated). */
void bench_addr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t size);

/* A nonblocking, close-on-exec socket listening on ss (SO_REUSEADDR; a
 * stale Unix socket file is removed first).  Returns the fd or -errno. */
int bench_listen(const struct sockaddr_storage *ss, socklen_t len, int backlog);

/* Remove the socket file of a Unix address; other families: nothing. */
void bench_unlink_unix(const struct sockaddr_storage *ss);

/* Turn Nagle off on a TCP socket; other sockets: nothing. */
void bench_set_nodelay(int fd);

/* Raise the soft RLIMIT_NOFILE to the hard limit; returns the new soft
 * limit (or the old one when it could not be raised). */
long bench_raise_nofile(void);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_now_ns(void);

/* Spin on the CPU for us microseconds: the work of one message. */
void bench_burn_us(unsigned us);

/* Parse a non-negative integer option value; exits with a message naming
 * opt when text is not one or exceeds max. */
unsigned long bench_parse_ulong(const char *opt, const char *text, unsigned long max);

#endif /* BENCH_COMMON_H */
