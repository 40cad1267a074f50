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
 * Results are always delivered from the loop, never inside the call that
 * asked, even when they are known at once.
 *
 * Cancelling is asynchronous in evdns: each query's callback still comes
 * once, later.  So a cancelled lookup stays allocated until both came, as
 * an active handle of its loop (a stopping loop waits for those calls),
 * and is freed there.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/dns.h>
#include <event2/util.h>

#include "channels-internal.h"

#define MAX_ADDRS    8          /* addresses kept from one family's answer */
#define HOSTS_FILE   "/etc/hosts"
#define MAX_TTL_S    86400      /* a day: longer TTLs are cut to it */

typedef struct host_entry_s {
    char *name;              /* as written in the hosts file */
    int family;              /* AF_INET or AF_INET6 */
    unsigned char raw[16];   /* its address (4 or 16 bytes) */
} host_entry_t;

typedef struct resolver_s {
    pants__handle_t handle; /* inactive handle of the loop */
    struct evdns_base *dns; /* this loop's evdns */
    host_entry_t *hosts;    /* the hosts file, read once */
    size_t nhosts;          /* entries */
} resolver_t;

enum { Q_A, Q_AAAA, Q_COUNT };

struct pants__resolve_s {
    pants__handle_t handle;              /* active once cancelled, until evdns' last call */
    pants_loop_t *loop;                  /* where cb runs */
    struct evdns_request *req[Q_COUNT];  /* queries in flight, or NULL */
    int waiting;                         /* query callbacks still to come */
    int dns_err[Q_COUNT];                /* each query's DNS_ERR_* */
    struct event done_ev;                /* delivers the result from the loop */
    pants__resolve_cb cb;                /* whom to tell; NULL once cancelled */
    void *arg;                           /* its argument */
    uint16_t port;                       /* put into every address */
    int err;                             /* result: 0 or PANTS_EAI_* */
    uint32_t ttl;                        /* seconds the answer may be kept */
    pants_addr_t addrs[Q_COUNT * MAX_ADDRS]; /* result addresses, IPv4 first */
    size_t n[Q_COUNT];                   /* how many of each family */
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

/* ---- The resolver of a loop --------------------------------------------- */

static void resolver_release(pants__handle_t *h)
{
    resolver_t *r = (resolver_t *)h;

    h->loop->resolver = NULL;
    evdns_base_free(r->dns, 0); /* no callbacks: their lookups are gone */
    for (size_t i = 0; i < r->nhosts; i++)
        free(r->hosts[i].name);
    free(r->hosts);
    free(r);
}

static const pants__handle_ops_t resolver_ops = {"resolver", NULL, NULL, resolver_release};

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

/* One more address of the answer (port and all), if there is room. */
static void keep(pants__resolve_t *q, int family, const void *raw)
{
    int fam = family == AF_INET ? Q_A : Q_AAAA;

    if (q->n[fam] == MAX_ADDRS)
        return;
    pants__addr_set_ip(&q->addrs[fam * MAX_ADDRS + q->n[fam]++], family, raw, q->port);
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
    size_t n = q->err ? 0 : q->n[Q_A] + q->n[Q_AAAA];
    pants__resolve_cb cb = q->cb;
    void *cb_arg = q->arg;
    int err = q->err;
    uint32_t ttl = q->err ? 0 : q->ttl;

    (void)fd;
    (void)what;
    /* IPv4 first, then IPv6; q is gone before the call, whatever it does. */
    memcpy(addrs, q->addrs, q->n[Q_A] * sizeof(addrs[0]));
    memcpy(addrs + q->n[Q_A], q->addrs + MAX_ADDRS, q->n[Q_AAAA] * sizeof(addrs[0]));
    free(q);
    cb(err, err ? NULL : addrs, n, ttl, cb_arg);
}

/* Known without asking a server: .invalid, the hosts file, localhost. */
static bool answer_locally(pants__resolve_t *q, resolver_t *r, const char *host)
{
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
    return true;
}

pants__resolve_t *pants__resolve_start(pants_loop_t *l, const char *host, uint16_t port, pants__resolve_cb cb,
                                       void *arg)
{
    resolver_t *r = loop_resolver(l);
    pants__resolve_t *q = r ? calloc(1, sizeof(*q)) : NULL;

    if (q == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    q->loop = l;
    q->cb = cb;
    q->arg = arg;
    q->port = port;
    q->ttl = MAX_TTL_S;
    event_assign(&q->done_ev, l->base, -1, 0, on_done, q);
    if (answer_locally(q, r, host)) {
        event_active(&q->done_ev, 0, 0);
        return q;
    }
    if (evdns_base_count_nameservers(r->dns) == 0) {
        /* (a dns_server that is no address): a query would wait forever */
        q->err = PANTS_EAI_FAIL;
        event_active(&q->done_ev, 0, 0);
        return q;
    }
    q->waiting = Q_COUNT;
    q->req[Q_A] = evdns_base_resolve_ipv4(r->dns, host, 0, on_a, q);
    if (q->req[Q_A] == NULL)
        answered(q, Q_A, DNS_ERR_UNKNOWN, 0, 0, NULL);
    q->req[Q_AAAA] = evdns_base_resolve_ipv6(r->dns, host, 0, on_aaaa, q);
    if (q->req[Q_AAAA] == NULL)
        answered(q, Q_AAAA, DNS_ERR_UNKNOWN, 0, 0, NULL);
    return q;
}

/* Loop teardown before evdns' last call came: free without a call. */
static void cancelled_release(pants__handle_t *h)
{
    free(h);
}

static const pants__handle_ops_t cancelled_ops = {"resolve", NULL, NULL, cancelled_release};

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
