/* common.c -- helpers shared by the benchmark programs of bench/.
 *
 * Addresses, descriptor limits, clocks and the CPU burner that stands for
 * per-message work.  Every program of bench/ links this file, so the three
 * servers and the load generator agree on what "127.0.0.1:9000" means and on
 * how long 20 microseconds of work takes.
 */
/* As in the programs (AM_CPPFLAGS sets it too; this is for hand builds). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Fill a sockaddr_un from path. */
static int parse_unix(const char *path, struct sockaddr_storage *ss, socklen_t *len)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)ss;
    size_t n = strlen(path);

    if (n == 0 || n >= sizeof(sun->sun_path))
        return -EINVAL;
    memset(ss, 0, sizeof(*ss));
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, path, n + 1);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    return 0;
}

/* Resolve host (may be empty: the wildcard address) and a numeric port. */
static int resolve(const char *host, const char *port, struct sockaddr_storage *ss, socklen_t *len)
{
    struct addrinfo hints, *res;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (*host ? 0 : AI_PASSIVE);
    if (getaddrinfo(*host ? host : NULL, port, &hints, &res) != 0)
        return -EINVAL;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

int bench_addr_parse(const char *text, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[256];
    const char *colon;
    size_t hlen;

    if (strncmp(text, "unix:", 5) == 0)
        return parse_unix(text + 5, ss, len);
    colon = strrchr(text, ':');
    if (colon == NULL || colon[1] == '\0')
        return -EINVAL;
    hlen = (size_t)(colon - text);
    if (hlen >= 2 && text[0] == '[' && text[hlen - 1] == ']') {
        text++;
        hlen -= 2;
    }
    if (hlen >= sizeof(host))
        return -EINVAL;
    memcpy(host, text, hlen);
    host[hlen] = '\0';
    return resolve(host, colon + 1, ss, len);
}

void bench_addr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t size)
{
    char host[INET6_ADDRSTRLEN];

    if (sa->sa_family == AF_UNIX) {
        const struct sockaddr_un *sun = (const struct sockaddr_un *)sa;
        snprintf(buf, size, "unix:%s", sun->sun_path);
    } else if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
        snprintf(buf, size, "%s:%u", host, ntohs(sin->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
        snprintf(buf, size, "[%s]:%u", host, ntohs(sin6->sin6_port));
    } else {
        snprintf(buf, size, "(family %d, %u bytes)", sa->sa_family, (unsigned)len);
    }
}

void bench_unlink_unix(const struct sockaddr_storage *ss)
{
    const struct sockaddr_un *sun = (const struct sockaddr_un *)ss;

    if (ss->ss_family == AF_UNIX && sun->sun_path[0] != '\0')
        unlink(sun->sun_path);
}

int bench_listen(const struct sockaddr_storage *ss, socklen_t len, int backlog)
{
    int one = 1, err;
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -errno;
    if (ss->ss_family != AF_UNIX)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    bench_unlink_unix(ss);
    if (bind(fd, (const struct sockaddr *)ss, len) < 0 || listen(fd, backlog) < 0)
        goto fail_close;
    return fd;

fail_close:
    err = -errno;
    close(fd);
    return err;
}

void bench_set_nodelay(int fd)
{
    int one = 1;

    /* Fails harmlessly (EOPNOTSUPP) on Unix sockets. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

long bench_raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -1;
    if (rl.rlim_cur != rl.rlim_max) {
        rlim_t old = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            rl.rlim_cur = old;
    }
    return rl.rlim_cur == RLIM_INFINITY ? -1 : (long)rl.rlim_cur;
}

uint64_t bench_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void bench_burn_us(unsigned us)
{
    uint64_t end;

    if (us == 0)
        return;
    end = bench_now_ns() + (uint64_t)us * 1000u;
    while (bench_now_ns() < end)
        ;
}

unsigned long bench_parse_ulong(const char *opt, const char *text, unsigned long max)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || v > max) {
        fprintf(stderr, "bad value for %s: '%s' (0..%lu)\n", opt, text, max);
        exit(2);
    }
    return v;
}
