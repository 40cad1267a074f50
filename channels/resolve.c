/* resolve.c -- host names to addresses without blocking a loop.
 *
 * Each loop gets one resolver the first time it resolves something: the
 * hosts file (read then, once), and an evdns_base asking the name servers
 * of /etc/resolv.conf (or the one the engine options name), with a bounded
 * timeout so a silent server ends in PANTS_EAI_TIMEOUT.  The resolver is an
 * inactive handle of the loop, freed when the loop ends.
 *
 * A name is looked up, in this order: names under ".invalid" (RFC 6761)
 * fail at once; the hosts file; "localhost" and names under ".localhost"
 * are the loopback addresses (RFC 6761); else an A and an AAAA query go
 * out together (search domains as resolv.conf says), and the answer is
 * every address they gave, IPv4 first, with the smaller of their TTLs, so
 * a caller may cache it for exactly that long.  Hosts file and localhost
 * answers carry PANTS__RESOLVE_LOCAL_TTL.
 *
 * Every answer found (hosts file and localhost ones too) is kept in the
 * loop's name cache for its TTL, at most CACHE_MAX names (when full, the
 * one closest to expiry goes), so every channel of the loop -- stream
 * connects and datagram writes alike -- asks a name server once per name
 * and TTL.  A lookup of a cached name sends no query.  Failures are not
 * kept.  The cache is freed with the resolver.
 *
 * Results are always delivered from the loop, never inside the call that
 * asked, even when they are known at once (the hosts file, the cache).
 *
 * Cancelling is asynchronous in evdns: each query's callback still comes
 * once, later.  So a cancelled lookup stays allocated until both came, as
 * an active handle of its loop (a stopping loop waits for those calls),
 * and is freed there.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/dns.h>
#include <event2/util.h>

#include "channels-internal.h"

#define MAX_ADDRS   (PANTS__RESOLVE_MAX_ADDRS / 2) /* addresses kept from one family's answer */
#define HOSTS_FILE  "/etc/hosts"
#define MAX_TTL_S   86400                    /* a day: longer TTLs are cut to it */
#define CACHE_MAX   PANTS__RESOLVE_CACHE_MAX /* names cached per loop */
#define CACHE_SLOTS 64                       /* hash chains of the cache */

typedef struct host_entry_s {
    char *name;            /* as written in the hosts file */
    int family;            /* AF_INET or AF_INET6 */
    unsigned char raw[16]; /* its address (4 or 16 bytes) */
} host_entry_t;

typedef struct ip_s {
    unsigned char family;  /* AF_INET or AF_INET6 */
    unsigned char raw[16]; /* the address (4 or 16 bytes) */
} ip_t;

/* One cached answer: addresses without a port, so name:80 and name:443
 * share it. */
typedef struct cache_entry_s {
    struct cache_entry_s *next; /* the rest of its hash chain */
    uint64_t expires_ms;        /* CLOCK_MONOTONIC deadline */
    uint32_t hash;              /* of name, case folded */
    unsigned naddrs;            /* entries of ips, IPv4 first */
    char *name;                 /* the key, as asked (after ips, same block) */
    ip_t ips[];                 /* the answer, in preference order */
} cache_entry_t;

typedef struct resolver_s {
    pants__handle_t handle;            /* inactive handle of the loop */
    struct evdns_base *dns;            /* this loop's evdns */
    host_entry_t *hosts;               /* the hosts file, read once */
    size_t nhosts;                     /* entries */
    cache_entry_t *cache[CACHE_SLOTS]; /* answers by name hash, chained */
    unsigned ncache;                   /* entries in cache */
} resolver_t;

enum { Q_A, Q_AAAA, Q_COUNT };

struct pants__resolve_s {
    pants__handle_t handle;             /* active once cancelled, until evdns' last call */
    pants_loop_t *loop;                 /* where cb runs */
    struct evdns_request *req[Q_COUNT]; /* queries in flight, or NULL */
    int waiting;                        /* query callbacks still to come */
    int dns_err[Q_COUNT];               /* each query's DNS_ERR_* */
    struct event done_ev;               /* delivers the result from the loop */
    pants__resolve_cb cb;               /* whom to tell; NULL once cancelled */
    void *arg;                          /* its argument */
    uint16_t port;                      /* put into every address */
    int err;                            /* result: 0 or PANTS_EAI_* */
    uint32_t ttl;                       /* seconds the answer may be kept */
    ip_t ips[Q_COUNT * MAX_ADDRS];      /* result, MAX_ADDRS slots per family */
    size_t n[Q_COUNT];                  /* how many of each family */
    char host[];                        /* asked for: the cache's key */
};

/* ---- The hosts file ----------------------------------------------------- */

/* The family of the numeric address s, its bytes in raw; 0 if s is none. */
static int parse_ip(const char *s, unsigned char raw[16])
{
    if (inet_pton(AF_INET, s, raw) == 1)
        return AF_INET;
    if (inet_pton(AF_INET6, s, raw) == 1)
        return AF_INET6;
    return 0;
}

static int add_host(resolver_t *r, const char *name, int family, const unsigned char raw[16])
{
    host_entry_t *grown = realloc(r->hosts, (r->nhosts + 1) * sizeof(*grown));

    if (grown == NULL)
        return -ENOMEM;
    r->hosts = grown;
    grown[r->nhosts].name = strdup(name);
    if (grown[r->nhosts].name == NULL)
        return -ENOMEM;
    grown[r->nhosts].family = family;
    memcpy(grown[r->nhosts++].raw, raw, 16);
    return 0;
}

/* "address name alias..." per line, '#' to the end of a line is a comment.
 * A missing file is an empty one. */
static void load_hosts(resolver_t *r, const char *path)
{
    FILE *f = fopen(path, "re");
    char line[1024];

    if (f == NULL)
        return;
    while (fgets(line, sizeof(line), f) != NULL) {
        char *save = NULL, *hash = strchr(line, '#');
        unsigned char raw[16];
        int family;
        if (hash != NULL)
            *hash = '\0';
        char *tok = strtok_r(line, " \t\r\n", &save);
        if (tok == NULL || (family = parse_ip(tok, raw)) == 0)
            continue;
        while ((tok = strtok_r(NULL, " \t\r\n", &save)) != NULL)
            if (add_host(r, tok, family, raw) < 0)
                break;
    }
    fclose(f);
}

/* Does name (perhaps with a final dot) equal entry, ignoring case? */
static bool same_name(const char *name, size_t n, const char *entry)
{
    return strlen(entry) == n && strncasecmp(name, entry, n) == 0;
}

static size_t name_len(const char *host)
{
    size_t n = strlen(host);

    return n > 0 && host[n - 1] == '.' ? n - 1 : n;
}

static bool has_suffix(const char *host, const char *label)
{
    size_t n = name_len(host), k = strlen(label);

    return (n == k && strncasecmp(host, label, k) == 0) ||
           (n > k && host[n - k - 1] == '.' && strncasecmp(host + n - k, label, k) == 0);
}

/* ---- The name cache ----------------------------------------------------- */

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* FNV-1a of name, case folded (names are equal ignoring case). */
static uint32_t name_hash(const char *name)
{
    uint32_t h = 2166136261u;

    for (const char *p = name; *p != '\0'; p++)
        h = (h ^ (uint32_t)tolower((unsigned char)*p)) * 16777619u;
    return h;
}

/* Unlink *pp from its chain and free it. */
static void cache_drop(resolver_t *r, cache_entry_t **pp)
{
    cache_entry_t *e = *pp;

    *pp = e->next;
    r->ncache--;
    free(e);
}

/* The link to name's live entry, or NULL; expired entries met on the
 * way are dropped. */
static cache_entry_t **cache_find(resolver_t *r, const char *name)
{
    uint32_t hash = name_hash(name);
    uint64_t now = now_ms();

    for (cache_entry_t **pp = &r->cache[hash % CACHE_SLOTS]; *pp != NULL;) {
        cache_entry_t *e = *pp;
        if (e->expires_ms <= now) {
            cache_drop(r, pp);
            continue;
        }
        if (e->hash == hash && strcasecmp(e->name, name) == 0)
            return pp;
        pp = &e->next;
    }
    return NULL;
}

/* Room for one more: the entry closest to expiry goes (an expired one
 * first of all). */
static void cache_evict(resolver_t *r)
{
    cache_entry_t **victim = NULL;

    for (size_t i = 0; i < CACHE_SLOTS; i++)
        for (cache_entry_t **pp = &r->cache[i]; *pp != NULL; pp = &(*pp)->next)
            if (victim == NULL || (*pp)->expires_ms < (*victim)->expires_ms)
                victim = pp;
    if (victim != NULL)
        cache_drop(r, victim);
}

/* Keep q's answer for q->ttl seconds, in place of an older one for the
 * same name (an answer with TTL 0 is not kept). */
static void cache_put(resolver_t *r, const pants__resolve_t *q)
{
    size_t n = q->n[Q_A] + q->n[Q_AAAA], hlen = strlen(q->host) + 1;
    cache_entry_t **old = cache_find(r, q->host), *e;

    if (old != NULL)
        cache_drop(r, old);
    if (q->ttl == 0 || n == 0)
        return;
    e = malloc(sizeof(*e) + n * sizeof(ip_t) + hlen);
    if (e == NULL)
        return; /* uncached: the next lookup asks again */
    if (r->ncache >= CACHE_MAX)
        cache_evict(r);
    e->expires_ms = now_ms() + (uint64_t)q->ttl * 1000;
    e->hash = name_hash(q->host);
    e->naddrs = (unsigned)n;
    memcpy(e->ips, q->ips, q->n[Q_A] * sizeof(ip_t));
    memcpy(e->ips + q->n[Q_A], q->ips + MAX_ADDRS, q->n[Q_AAAA] * sizeof(ip_t));
    e->name = (char *)(e->ips + n);
    memcpy(e->name, q->host, hlen);
    e->next = r->cache[e->hash % CACHE_SLOTS];
    r->cache[e->hash % CACHE_SLOTS] = e;
    r->ncache++;
}

static void cache_free(resolver_t *r)
{
    for (size_t i = 0; i < CACHE_SLOTS; i++)
        while (r->cache[i] != NULL)
            cache_drop(r, &r->cache[i]);
}

/* ---- The resolver of a loop --------------------------------------------- */

static void resolver_release(pants__handle_t *h)
{
    resolver_t *r = (resolver_t *)h;

    h->loop->resolver = NULL;
    evdns_base_free(r->dns, 0); /* no callbacks: their lookups are gone */
    for (size_t i = 0; i < r->nhosts; i++)
        free(r->hosts[i].name);
    free(r->hosts);
    cache_free(r);
    free(r);
}

static const pants__handle_ops_t resolver_ops = {.name = "resolver", .release = resolver_release};

static void configure(struct evdns_base *dns, const pants_engine_options_t *o)
{
    char timeout[32];

    if (o->dns_server != NULL)
        evdns_base_nameserver_ip_add(dns, o->dns_server);
    else
        evdns_base_resolv_conf_parse(dns, DNS_OPTIONS_ALL & ~DNS_OPTION_HOSTSFILE, "/etc/resolv.conf");
    snprintf(timeout, sizeof(timeout), "%u.%03u", o->dns_timeout_ms / 1000, o->dns_timeout_ms % 1000);
    evdns_base_set_option(dns, "timeout:", timeout);
    evdns_base_set_option(dns, "attempts:", "2");
}

static resolver_t *loop_resolver(pants_loop_t *l)
{
    resolver_t *r = l->resolver;

    if (r != NULL)
        return r;
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->dns = evdns_base_new(l->base, 0);
    if (r->dns == NULL) {
        free(r);
        return NULL;
    }
    configure(r->dns, &l->engine->opts);
    load_hosts(r, HOSTS_FILE);
    pants__handle_start(&r->handle, l, &resolver_ops, false);
    l->resolver = r;
    return r;
}

/* ---- One lookup --------------------------------------------------------- */

/* One more address of the answer, if there is room. */
static void keep(pants__resolve_t *q, int family, const void *raw)
{
    int fam = family == AF_INET ? Q_A : Q_AAAA;
    ip_t *ip;

    if (q->n[fam] == MAX_ADDRS)
        return;
    ip = &q->ips[fam * MAX_ADDRS + q->n[fam]];
    ip->family = (unsigned char)family;
    memcpy(ip->raw, raw, family == AF_INET ? 4 : 16);
    q->n[fam]++;
}

static int map_dns_err(int e)
{
    switch (e) {
    case DNS_ERR_NONE:
    case DNS_ERR_NODATA:
        return PANTS_EAI_NODATA;
    case DNS_ERR_NOTEXIST:
        return PANTS_EAI_NONAME;
    case DNS_ERR_SERVERFAILED:
        return PANTS_EAI_AGAIN;
    case DNS_ERR_TIMEOUT:
        return PANTS_EAI_TIMEOUT;
    case DNS_ERR_CANCEL:
    case DNS_ERR_SHUTDOWN:
        return PANTS_EAI_CANCELED;
    default:
        return PANTS_EAI_FAIL;
    }
}

/* Both queries answered: any address is success; else the most telling
 * error (a name that does not exist says so in either answer). */
static void settle(pants__resolve_t *q)
{
    if (q->n[Q_A] + q->n[Q_AAAA] > 0) {
        q->err = 0;
        return;
    }
    if (q->dns_err[Q_A] == DNS_ERR_NOTEXIST || q->dns_err[Q_AAAA] == DNS_ERR_NOTEXIST)
        q->err = PANTS_EAI_NONAME;
    else if (q->dns_err[Q_A] == DNS_ERR_NONE || q->dns_err[Q_A] == DNS_ERR_NODATA)
        q->err = map_dns_err(q->dns_err[Q_AAAA]);
    else
        q->err = map_dns_err(q->dns_err[Q_A]);
}

static void answered(pants__resolve_t *q, int which, int result, int count, int ttl, const void *addresses)
{
    q->req[which] = NULL;
    q->waiting--;
    if (q->cb == NULL) { /* cancelled: free after evdns' last word */
        if (q->waiting == 0) {
            pants__handle_finish(&q->handle);
            free(q);
        }
        return;
    }
    q->dns_err[which] = result;
    if (result == DNS_ERR_NONE) {
        size_t size = which == Q_A ? 4 : 16;
        for (int i = 0; i < count; i++)
            keep(q, which == Q_A ? AF_INET : AF_INET6, (const char *)addresses + size * (size_t)i);
        if (count > 0 && ttl >= 0 && (uint32_t)ttl < q->ttl)
            q->ttl = (uint32_t)ttl;
    }
    if (q->waiting == 0) {
        settle(q);
        if (q->err == 0)
            cache_put(q->loop->resolver, q);
        event_active(&q->done_ev, 0, 0);
    }
}

static void on_a(int result, char type, int count, int ttl, void *addresses, void *arg)
{
    (void)type;
    answered(arg, Q_A, result, count, ttl, addresses);
}

static void on_aaaa(int result, char type, int count, int ttl, void *addresses, void *arg)
{
    (void)type;
    answered(arg, Q_AAAA, result, count, ttl, addresses);
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
    pants__resolve_t *q = arg;
    pants_addr_t addrs[Q_COUNT * MAX_ADDRS];
    size_t n = 0;
    pants__resolve_cb cb = q->cb;
    void *cb_arg = q->arg;
    int err = q->err;
    uint32_t ttl = q->err ? 0 : q->ttl;

    (void)fd;
    (void)what;
    /* IPv4 first, then IPv6; q is gone before the call, whatever it does. */
    for (int fam = 0; fam < Q_COUNT && err == 0; fam++)
        for (size_t i = 0; i < q->n[fam]; i++, n++)
            pants__addr_set_ip(&addrs[n], q->ips[fam * MAX_ADDRS + i].family, q->ips[fam * MAX_ADDRS + i].raw,
                               q->port);
    free(q);
    cb(err, err ? NULL : addrs, n, ttl, cb_arg);
}

/* A live cached answer, with what is left of its TTL. */
static bool answer_from_cache(pants__resolve_t *q, resolver_t *r)
{
    cache_entry_t **pp = cache_find(r, q->host);
    uint64_t now = now_ms();

    if (pp == NULL)
        return false;
    for (unsigned i = 0; i < (*pp)->naddrs; i++)
        keep(q, (*pp)->ips[i].family, (*pp)->ips[i].raw);
    q->ttl = (uint32_t)(((*pp)->expires_ms > now ? (*pp)->expires_ms - now : 0) / 1000);
    return true;
}

/* Known without asking a server: .invalid, the hosts file, localhost. */
static bool answer_locally(pants__resolve_t *q, resolver_t *r)
{
    const char *host = q->host;
    size_t n = name_len(host);

    if (has_suffix(host, "invalid")) {
        q->err = PANTS_EAI_NONAME;
        return true;
    }
    for (size_t i = 0; i < r->nhosts; i++)
        if (same_name(host, n, r->hosts[i].name))
            keep(q, r->hosts[i].family, r->hosts[i].raw);
    if (q->n[Q_A] + q->n[Q_AAAA] == 0 && has_suffix(host, "localhost")) {
        struct in_addr lo = {htonl(INADDR_LOOPBACK)};
        keep(q, AF_INET, &lo);
        keep(q, AF_INET6, &in6addr_loopback);
    }
    if (q->n[Q_A] + q->n[Q_AAAA] == 0)
        return false;
    q->ttl = PANTS__RESOLVE_LOCAL_TTL;
    cache_put(r, q);
    return true;
}

/* The A and AAAA queries, out together. */
static void ask(pants__resolve_t *q, resolver_t *r)
{
    q->waiting = Q_COUNT;
    q->req[Q_A] = evdns_base_resolve_ipv4(r->dns, q->host, 0, on_a, q);
    if (q->req[Q_A] == NULL)
        answered(q, Q_A, DNS_ERR_UNKNOWN, 0, 0, NULL);
    q->req[Q_AAAA] = evdns_base_resolve_ipv6(r->dns, q->host, 0, on_aaaa, q);
    if (q->req[Q_AAAA] == NULL)
        answered(q, Q_AAAA, DNS_ERR_UNKNOWN, 0, 0, NULL);
}

pants__resolve_t *pants__resolve_start(pants_loop_t *l, const char *host, uint16_t port, pants__resolve_cb cb,
                                       void *arg)
{
    resolver_t *r = loop_resolver(l);
    size_t hlen = strlen(host) + 1;
    pants__resolve_t *q = r ? calloc(1, sizeof(*q) + hlen) : NULL;

    if (q == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    q->loop = l;
    q->cb = cb;
    q->arg = arg;
    q->port = port;
    q->ttl = MAX_TTL_S;
    memcpy(q->host, host, hlen);
    event_assign(&q->done_ev, l->base, -1, 0, on_done, q);
    if (answer_from_cache(q, r) || answer_locally(q, r)) {
        event_active(&q->done_ev, 0, 0);
        return q;
    }
    if (evdns_base_count_nameservers(r->dns) == 0) {
        /* (a dns_server that is no address): a query would wait forever */
        q->err = PANTS_EAI_FAIL;
        event_active(&q->done_ev, 0, 0);
        return q;
    }
    ask(q, r);
    return q;
}

int pants__resolve_cached(pants_loop_t *l, const char *host, uint16_t port, pants_addr_t *addrs, size_t max,
                          size_t *n)
{
    resolver_t *r = l->resolver;
    cache_entry_t **pp = r != NULL ? cache_find(r, host) : NULL;

    *n = 0;
    if (pp == NULL)
        return -ENOENT;
    for (unsigned i = 0; i < (*pp)->naddrs && *n < max; i++, ++*n)
        pants__addr_set_ip(&addrs[*n], (*pp)->ips[i].family, (*pp)->ips[i].raw, port);
    return 0;
}

/* Loop teardown before evdns' last call came: free without a call. */
static void cancelled_release(pants__handle_t *h)
{
    free(h);
}

static const pants__handle_ops_t cancelled_ops = {.name = "resolve", .release = cancelled_release};

void pants__resolve_cancel(pants__resolve_t *q)
{
    resolver_t *r;

    if (q == NULL)
        return;
    r = q->loop->resolver;
    if (q->waiting == 0 || r == NULL) { /* answered, or evdns is gone: nothing will call */
        event_del(&q->done_ev);
        free(q);
        return;
    }
    q->cb = NULL;
    pants__handle_start(&q->handle, q->loop, &cancelled_ops, true);
    for (int i = 0; i < Q_COUNT; i++)
        if (q->req[i] != NULL)
            evdns_cancel_request(r->dns, q->req[i]);
}
