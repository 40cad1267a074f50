/* addr.c -- one address string, the family follows from it.
 *
 * "1.2.3.4:80" and "[::1]:80" are numeric; ":80" and "*:80" mean every
 * interface (IPv6 any, dual-stack where the system allows); "unix:/path"
 * is a Unix path and "unix:@name" a Linux abstract socket, whose length is
 * exactly offsetof(sun_path) + 1 + strlen(name), as ss -x and others expect.
 * Anything else with a port is a host name for the resolver (listening
 * knows only "localhost", the loopback address).  Malformed
 * strings are -EINVAL, decided here once for every channel kind.
 *
 * Also here, for every socket kind: dual-stack sockets (an IPv6 socket
 * with IPV6_V6ONLY off reaches IPv4 peers as v4-mapped addresses, so
 * IPv4 addresses are mapped for it and unmapped for the application),
 * the any6 -> IPv4 any fallback where the system has no IPv6, and
 * binding, with stale Unix socket files replaced.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "channels-internal.h"

static int parse_unix(pants_addr_t *a, const char *path)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)&a->ss;
    size_t n = strlen(path);
    bool abstract = path[0] == '@';

    /* A path needs room for its NUL; an abstract name has none. */
    if (n == 0 || (abstract && n == 1) || n + (abstract ? 0 : 1) > sizeof(sun->sun_path))
        return -EINVAL;
    memset(a, 0, sizeof(*a));
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, path, n);
    if (abstract)
        sun->sun_path[0] = '\0';
    a->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (abstract ? 0 : 1));
    return 0;
}

/* "0".."65535", digits only. */
static int parse_port(const char *s, uint16_t *port)
{
    unsigned long v = 0;

    if (*s == '\0' || strlen(s) > 5)
        return -EINVAL;
    for (const char *p = s; *p; p++) {
        if (!isdigit((unsigned char)*p))
            return -EINVAL;
        v = v * 10 + (unsigned long)(*p - '0');
    }
    if (v > 65535)
        return -EINVAL;
    *port = (uint16_t)v;
    return 0;
}

static void set_inet(pants_addr_t *a, const struct in_addr *ip, uint16_t port)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;

    memset(a, 0, sizeof(*a));
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    sin->sin_addr = *ip;
    a->len = sizeof(*sin);
}

static void set_inet6(pants_addr_t *a, const struct in6_addr *ip, uint16_t port)
{
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->ss;

    memset(a, 0, sizeof(*a));
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    sin6->sin6_addr = *ip;
    a->len = sizeof(*sin6);
}

void pants__addr_set_ip(pants_addr_t *a, int family, const void *raw, uint16_t port)
{
    if (family == AF_INET) {
        struct in_addr ip;
        memcpy(&ip, raw, sizeof(ip));
        set_inet(a, &ip, port);
    } else {
        struct in6_addr ip6;
        memcpy(&ip6, raw, sizeof(ip6));
        set_inet6(a, &ip6, port);
    }
}

/* A host name: letters, digits, '-', '.', '_', at most 253 characters. */
static bool is_host_name(const char *h, size_t n)
{
    if (n == 0 || n > 253 || h[0] == '.' || h[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];
        if (!isalnum(c) && c != '-' && c != '.' && c != '_')
            return false;
    }
    return true;
}

/* "[v6]:port" */
static int split_bracketed(const char *address, pants_addr_t *a)
{
    const char *close = strchr(address, ']');
    char ip[INET6_ADDRSTRLEN + 1];
    struct in6_addr in6;
    uint16_t port;
    size_t n;

    if (close == NULL || close[1] != ':')
        return -EINVAL;
    n = (size_t)(close - address - 1);
    if (n == 0 || n >= sizeof(ip))
        return -EINVAL;
    memcpy(ip, address + 1, n);
    ip[n] = '\0';
    if (inet_pton(AF_INET6, ip, &in6) != 1 || parse_port(close + 2, &port) < 0)
        return -EINVAL;
    set_inet6(a, &in6, port);
    return 0;
}

int pants__addr_split(const char *address, unsigned flags, pants_addr_t *a, char host[PANTS__HOST_MAX],
                      uint16_t *port)
{
    const char *colon;
    struct in_addr in4;
    size_t n;

    if (address == NULL || a == NULL)
        return -EINVAL;
    if (strncmp(address, "unix:", 5) == 0)
        return parse_unix(a, address + 5);
    if (address[0] == '[')
        return split_bracketed(address, a);
    colon = strrchr(address, ':');
    if (colon == NULL || strchr(address, ':') != colon || parse_port(colon + 1, port) < 0)
        return -EINVAL;
    n = (size_t)(colon - address);
    if (n == 0 || (n == 1 && address[0] == '*')) {
        if (!(flags & PANTS__ADDR_ANY))
            return -EINVAL;
        set_inet6(a, &in6addr_any, *port);
        return 0;
    }
    if (n >= PANTS__HOST_MAX || !is_host_name(address, n))
        return -EINVAL;
    memcpy(host, address, n);
    host[n] = '\0';
    if (inet_pton(AF_INET, host, &in4) == 1) {
        set_inet(a, &in4, *port);
        return 0;
    }
    /* All digits and dots but not an IPv4 address: malformed, not a name. */
    if (strspn(host, "0123456789.") == n)
        return -EINVAL;
    /* Listening binds at once, without a resolver: "localhost" is the one
     * name it knows, as the loopback address. */
    if ((flags & PANTS__ADDR_LOCALHOST) && strcasecmp(host, "localhost") == 0) {
        in4.s_addr = htonl(INADDR_LOOPBACK);
        set_inet(a, &in4, *port);
        return 0;
    }
    return 1;
}

int pants_addr_parse(pants_addr_t *a, const char *address)
{
    char host[PANTS__HOST_MAX];
    uint16_t port;
    int rc = pants__addr_split(address, PANTS__ADDR_ANY, a, host, &port);

    return rc == 1 ? -EINVAL : rc;
}

static int format_unix(const pants_addr_t *a, char *buf, size_t len)
{
    const struct sockaddr_un *sun = (const struct sockaddr_un *)&a->ss;
    size_t off = offsetof(struct sockaddr_un, sun_path);
    size_t n = a->len > off ? a->len - off : 0;
    int w;

    if (n > 0 && sun->sun_path[0] == '\0')
        w = snprintf(buf, len, "unix:@%.*s", (int)(n - 1), sun->sun_path + 1);
    else
        w = snprintf(buf, len, "unix:%.*s", (int)strnlen(sun->sun_path, n), sun->sun_path);
    return w < 0 || (size_t)w >= len ? -ENOSPC : 0;
}

int pants_addr_format(const pants_addr_t *a, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN];
    int w;

    if (a == NULL || buf == NULL)
        return -EINVAL;
    if (len > 0)
        buf[0] = '\0';
    switch (a->ss.ss_family) {
    case AF_INET: {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->ss;
        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
        w = snprintf(buf, len, "%s:%u", ip, ntohs(sin->sin_port));
        break;
    }
    case AF_INET6: {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a->ss;
        inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
        w = snprintf(buf, len, "[%s]:%u", ip, ntohs(sin6->sin6_port));
        break;
    }
    case AF_UNIX:
        return format_unix(a, buf, len);
    default:
        return -EAFNOSUPPORT;
    }
    return w < 0 || (size_t)w >= len ? -ENOSPC : 0;
}

int pants__addr_of_fd(int fd, bool peer, pants_addr_t *a)
{
    int rc;

    if (a == NULL)
        return -EINVAL;
    if (fd < 0)
        return -ENOTCONN;
    memset(a, 0, sizeof(*a));
    a->len = sizeof(a->ss);
    if (peer)
        rc = getpeername(fd, (struct sockaddr *)&a->ss, &a->len);
    else
        rc = getsockname(fd, (struct sockaddr *)&a->ss, &a->len);
    return rc == 0 ? 0 : -errno;
}

/* ---- Families and dual-stack sockets ------------------------------------ */

bool pants__family_is_ip(int family)
{
    return family == AF_INET || family == AF_INET6;
}

bool pants__addr_is_v4_mapped(const pants_addr_t *a)
{
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a->ss;

    return a->ss.ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr);
}

void pants__addr_map_v4(pants_addr_t *a)
{
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->ss;
    uint16_t port = ntohs(sin->sin_port);
    unsigned char raw[16] = {[10] = 0xff, [11] = 0xff};

    memcpy(raw + 12, &sin->sin_addr, 4);
    pants__addr_set_ip(a, AF_INET6, raw, port);
}

void pants__addr_unmap_v4(pants_addr_t *a)
{
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a->ss;
    struct in_addr ip;

    if (!pants__addr_is_v4_mapped(a))
        return;
    memcpy(&ip, &sin6->sin6_addr.s6_addr[12], sizeof(ip));
    set_inet(a, &ip, ntohs(sin6->sin6_port));
}

int pants__addr_fit_family(pants_addr_t *a, int family, bool dual)
{
    if (a->ss.ss_family == family)
        return 0;
    if (family == AF_INET6 && dual && a->ss.ss_family == AF_INET) {
        pants__addr_map_v4(a);
        return 0;
    }
    if (family == AF_INET && pants__addr_is_v4_mapped(a)) {
        pants__addr_unmap_v4(a);
        return 0;
    }
    return -EAFNOSUPPORT;
}

void pants__addr_set_any(pants_addr_t *a, int family)
{
    struct in_addr any = {htonl(INADDR_ANY)};

    if (family == AF_INET) {
        set_inet(a, &any, 0);
    } else if (family == AF_INET6) {
        set_inet6(a, &in6addr_any, 0);
    } else {
        memset(a, 0, sizeof(*a));
        a->ss.ss_family = (sa_family_t)family;
        a->len = sizeof(sa_family_t); /* Unix: bind autobinds an abstract name */
    }
}

bool pants__addr_is_any6(const pants_addr_t *a)
{
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a->ss;

    return a->ss.ss_family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr);
}

void pants__addr_to_inet_any(pants_addr_t *a)
{
    struct in_addr any = {htonl(INADDR_ANY)};

    set_inet(a, &any, ntohs(((struct sockaddr_in6 *)&a->ss)->sin6_port));
}

int pants__socket(int family, int type, bool dual)
{
    int zero = 0;
    int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -errno;
    /* Explicitly off: the default follows net.ipv6.bindv6only. */
    if (family == AF_INET6 && dual && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

int pants__socket_for_bind(pants_addr_t *a, int type)
{
    bool any = pants__addr_is_any6(a);
    int fd = pants__socket(a->ss.ss_family, type, any);

    if (fd == -EAFNOSUPPORT && any) { /* no IPv6 here: every IPv4 interface */
        pants__addr_to_inet_any(a);
        fd = pants__socket(AF_INET, type, false);
    }
    return fd;
}

bool pants__socket_is_dual(int fd)
{
    int v6only = 1;
    socklen_t len = sizeof(v6only);
    pants_addr_t a;

    if (pants__addr_of_fd(fd, false, &a) < 0 || !pants__addr_is_any6(&a))
        return false;
    return getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &len) == 0 && !v6only;
}

/* ---- Binding ------------------------------------------------------------ */

#define UNIX_ACCEPTCON 0x10000 /* /proc/net/unix flag of a listening socket */

/* Does /proc/net/unix list a listening stream socket bound to path?  Asked
 * before probing with a connect, which a live server would accept: its
 * application would see a client that sends nothing and leaves.  (A socket
 * of another network namespace is not listed: the probe still decides.) */
static bool unix_path_listed_listening(const char *path)
{
    FILE *f = fopen("/proc/net/unix", "re");
    char line[PATH_MAX + 128];
    bool found = false;

    if (f == NULL)
        return false;
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        unsigned long flags, type;
        int at = 0;
        if (sscanf(line, "%*s %*s %*s %lx %lx %*s %*s %n", &flags, &type, &at) < 2 || at == 0)
            continue;
        line[strcspn(line, "\n")] = '\0';
        found = (flags & UNIX_ACCEPTCON) && type == SOCK_STREAM && strcmp(line + at, path) == 0;
    }
    fclose(f);
    return found;
}

/* A socket file nobody serves any more (a connect is refused); a path that
 * is not a socket is never stale: it is not ours to remove.  *st gets the
 * file's identity.  The probe does not block: a listener with a full
 * backlog (EAGAIN) is alive. */
static bool unix_path_is_stale(const pants_addr_t *a, int socktype, struct stat *st)
{
    const struct sockaddr_un *sun = (const struct sockaddr_un *)&a->ss;
    bool stale;
    int probe;

    if (lstat(sun->sun_path, st) < 0 || !S_ISSOCK(st->st_mode))
        return false;
    if (socktype == SOCK_STREAM && unix_path_listed_listening(sun->sun_path))
        return false;
    probe = socket(AF_UNIX, socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (probe < 0)
        return false;
    stale = connect(probe, (const struct sockaddr *)&a->ss, a->len) < 0 && errno == ECONNREFUSED;
    close(probe);
    return stale;
}

/* Remove a stale socket file, unless another process replaced it since
 * it was judged (same device and inode as then). */
static bool unlink_same(const char *path, const struct stat *then)
{
    struct stat now;

    return lstat(path, &now) == 0 && now.st_dev == then->st_dev && now.st_ino == then->st_ino &&
           unlink(path) == 0;
}

int pants__bind(int fd, const pants_addr_t *a, int socktype)
{
    const struct sockaddr_un *sun = (const struct sockaddr_un *)&a->ss;

    if (bind(fd, (const struct sockaddr *)&a->ss, a->len) == 0)
        return 0;
    if (errno != EADDRINUSE || a->ss.ss_family != AF_UNIX || sun->sun_path[0] == '\0')
        return -errno;
    struct stat st;

    if (!unix_path_is_stale(a, socktype, &st) || !unlink_same(sun->sun_path, &st))
        return -EADDRINUSE;
    return bind(fd, (const struct sockaddr *)&a->ss, a->len) == 0 ? 0 : -errno;
}

int pants__bound_path_remember(pants__bound_path_t *p, const pants_addr_t *a)
{
    const struct sockaddr_un *sun = (const struct sockaddr_un *)&a->ss;
    struct stat st;

    if (a->ss.ss_family != AF_UNIX || sun->sun_path[0] == '\0')
        return 0;
    p->path = strdup(sun->sun_path);
    if (p->path == NULL)
        return -ENOMEM;
    if (stat(sun->sun_path, &st) == 0) {
        p->dev = st.st_dev;
        p->ino = st.st_ino;
    }
    return 0;
}

void pants__bound_path_remove(pants__bound_path_t *p)
{
    struct stat st;

    if (p->path == NULL)
        return;
    if (stat(p->path, &st) == 0 && st.st_dev == p->dev && st.st_ino == p->ino)
        unlink(p->path);
    free(p->path);
    p->path = NULL;
}
