/* resolve.c -- host names to addresses without blocking a loop.
 *
 * Each loop gets one evdns_base the first time it resolves something: the
 * hosts file is read first, then the name servers of /etc/resolv.conf (or
 * the one the engine options name) are asked, with a bounded timeout so a
 * silent server ends in PANTS_EAI_TIMEOUT.  The resolver is an inactive
 * handle of the loop, freed when the loop ends.  Names under ".invalid"
 * (RFC 6761) fail at once, without a query.
 *
 * Results are always delivered from the loop, never inside the call that
 * asked, even when evdns answers at once (hosts file).
 *
 * Cancelling is asynchronous in evdns: its callback still comes once, later,
 * with EVUTIL_EAI_CANCEL.  So a cancelled lookup stays allocated until then,
 * as an active handle of its loop (a stopping loop waits for that call),
 * and is freed there.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/dns.h>
#include <event2/util.h>

#include "channels-internal.h"

#define MAX_ADDRS 8 /* candidates kept from one answer */

typedef struct resolver_s {
    pants__handle_t handle;   /* inactive handle of the loop */
    struct evdns_base *dns;   /* this loop's evdns */
} resolver_t;

struct pants__resolve_s {
    pants__handle_t handle;            /* active once cancelled, until evdns' last call */
    pants_loop_t *loop;                /* where cb runs */
    struct evdns_getaddrinfo_request *req; /* in flight, or NULL */
    struct event done_ev;              /* delivers the result from the loop */
    pants__resolve_cb cb;              /* whom to tell; NULL once cancelled */
    void *arg;                         /* its argument */
    int err;                           /* result: 0 or PANTS_EAI_* */
    pants_addr_t addrs[MAX_ADDRS];     /* result addresses */
    size_t naddrs;                     /* how many */
    struct timeval started;            /* when the query went out */
};

static void resolver_release(pants__handle_t *h)
{
    resolver_t *r = (resolver_t *)h;

    h->loop->resolver = NULL;
    evdns_base_free(r->dns, 1);
    free(r);
}

static const pants__handle_ops_t resolver_ops = {"resolver", NULL, NULL, resolver_release};

static void configure(struct evdns_base *dns, const pants_engine_options_t *o)
{
    char timeout[32];

    if (o->dns_server != NULL) {
        evdns_base_nameserver_ip_add(dns, o->dns_server);
        evdns_base_load_hosts(dns, NULL);
    } else {
        evdns_base_resolv_conf_parse(dns, DNS_OPTIONS_ALL, "/etc/resolv.conf");
    }
    snprintf(timeout, sizeof(timeout), "%u.%03u", o->dns_timeout_ms / 1000, o->dns_timeout_ms % 1000);
    evdns_base_set_option(dns, "timeout:", timeout);
    evdns_base_set_option(dns, "attempts:", "2");
}

static struct evdns_base *loop_dns(pants_loop_t *l)
{
    resolver_t *r = l->resolver;

    if (r != NULL)
        return r->dns;
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->dns = evdns_base_new(l->base, 0);
    if (r->dns == NULL) {
        free(r);
        return NULL;
    }
    configure(r->dns, &l->engine->opts);
    pants__handle_start(&r->handle, l, &resolver_ops, false);
    l->resolver = r;
    return r->dns;
}

static int map_eai(int e)
{
    static const struct {
        int evutil; /* EVUTIL_EAI_* */
        int pants;  /* PANTS_EAI_* */
    } map[] = {
        {EVUTIL_EAI_ADDRFAMILY, PANTS_EAI_ADDRFAMILY}, {EVUTIL_EAI_AGAIN, PANTS_EAI_AGAIN},
        {EVUTIL_EAI_BADFLAGS, PANTS_EAI_BADFLAGS},     {EVUTIL_EAI_FAIL, PANTS_EAI_FAIL},
        {EVUTIL_EAI_FAMILY, PANTS_EAI_FAMILY},         {EVUTIL_EAI_MEMORY, PANTS_EAI_MEMORY},
        {EVUTIL_EAI_NODATA, PANTS_EAI_NODATA},         {EVUTIL_EAI_NONAME, PANTS_EAI_NONAME},
        {EVUTIL_EAI_SERVICE, PANTS_EAI_SERVICE},       {EVUTIL_EAI_SOCKTYPE, PANTS_EAI_SOCKTYPE},
        {EVUTIL_EAI_CANCEL, PANTS_EAI_CANCELED},
    };

    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (map[i].evutil == e)
            return map[i].pants;
    return PANTS_EAI_FAIL;
}

static void keep_answer(pants__resolve_t *r, int result, struct evutil_addrinfo *res)
{
    for (struct evutil_addrinfo *ai = res; ai != NULL && r->naddrs < MAX_ADDRS; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof(r->addrs[0].ss))
            continue;
        memcpy(&r->addrs[r->naddrs].ss, ai->ai_addr, ai->ai_addrlen);
        r->addrs[r->naddrs++].len = (socklen_t)ai->ai_addrlen;
    }
    if (result != 0)
        r->err = map_eai(result);
    else if (r->naddrs == 0)
        r->err = PANTS_EAI_NODATA;
}

/* evdns reports a silent name server as EAI_FAIL: call it a timeout when
 * the answer took at least the configured timeout. */
static bool timed_out(pants__resolve_t *r)
{
    struct timeval now, d;

    event_base_gettimeofday_cached(r->loop->base, &now);
    evutil_timersub(&now, &r->started, &d);
    return (unsigned long)d.tv_sec * 1000 + (unsigned long)d.tv_usec / 1000 >= r->loop->engine->opts.dns_timeout_ms;
}

static void on_answer(int result, struct evutil_addrinfo *res, void *arg)
{
    pants__resolve_t *r = arg;

    r->req = NULL;
    if (r->cb == NULL) { /* cancelled: this was evdns' last word */
        if (res)
            evutil_freeaddrinfo(res);
        pants__handle_finish(&r->handle);
        free(r);
        return;
    }
    keep_answer(r, result, res);
    if (result == EVUTIL_EAI_FAIL && timed_out(r))
        r->err = PANTS_EAI_TIMEOUT;
    if (res)
        evutil_freeaddrinfo(res);
    event_active(&r->done_ev, 0, 0);
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
    pants__resolve_t *r = arg;

    (void)fd;
    (void)what;
    r->cb(r->err, r->addrs, r->naddrs, r->arg);
    free(r);
}

static bool is_invalid_tld(const char *host)
{
    size_t n = strlen(host);

    if (n > 0 && host[n - 1] == '.')
        n--;
    return (n == 7 && strncasecmp(host, "invalid", 7) == 0) ||
           (n > 8 && strncasecmp(host + n - 8, ".invalid", 8) == 0);
}

pants__resolve_t *pants__resolve_start(pants_loop_t *l, const char *host, uint16_t port, int socktype,
                                       pants__resolve_cb cb, void *arg)
{
    struct evutil_addrinfo hints;
    char service[8];
    struct evdns_base *dns = loop_dns(l);
    pants__resolve_t *r = dns ? calloc(1, sizeof(*r)) : NULL;

    if (r == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    r->loop = l;
    r->cb = cb;
    r->arg = arg;
    event_assign(&r->done_ev, l->base, -1, 0, on_done, r);
    if (is_invalid_tld(host)) {
        r->err = PANTS_EAI_NONAME;
        event_active(&r->done_ev, 0, 0);
        return r;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = socktype;
    hints.ai_flags = EVUTIL_AI_ADDRCONFIG;
    snprintf(service, sizeof(service), "%u", port);
    event_base_update_cache_time(l->base);
    event_base_gettimeofday_cached(l->base, &r->started);
    r->req = evdns_getaddrinfo(dns, host, service, &hints, on_answer, r);
    return r;
}

/* Loop teardown before evdns' last call came: free without a call. */
static void cancelled_release(pants__handle_t *h)
{
    free(h);
}

static const pants__handle_ops_t cancelled_ops = {"resolve", NULL, NULL, cancelled_release};

void pants__resolve_cancel(pants__resolve_t *r)
{
    if (r == NULL)
        return;
    if (r->req == NULL) { /* answered (or never asked): evdns is done with r */
        event_del(&r->done_ev);
        free(r);
        return;
    }
    r->cb = NULL;
    pants__handle_start(&r->handle, r->loop, &cancelled_ops, true);
    evdns_getaddrinfo_cancel(r->req);
}
