/* testutil.c -- helpers shared by the Check suites (see testutil.h). */
#include "testutil.h"

#include <arpa/inet.h>
#include <check.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char tmpdir[256];

static void remove_tmpdir(void)
{
    char cmd[300];

    if (tmpdir[0] == '\0')
        return;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "testutil: could not remove %s\n", tmpdir);
}

pants_engine_t *pt_engine_up(unsigned threads)
{
    pants_engine_options_t o = {.threads = threads};
    pants_engine_t *e = pants_engine_new(&o);

    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(pants_engine_start(e), 0);
    return e;
}

void pt_engine_down(pants_engine_t *e)
{
    pants_engine_stop(e);
    ck_assert_int_eq(pants_engine_join(e), 0);
    pants_engine_free(e);
    ck_assert_int_eq(pants_live_objects(), 0);
}

int64_t pt_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void pt_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0)
        ;
}

bool pt_wait_count(const volatile int *counter, int target, unsigned ms)
{
    for (unsigned waited = 0;; waited++) {
        if (__atomic_load_n(counter, __ATOMIC_SEQ_CST) >= target)
            return true;
        if (waited >= ms)
            return false;
        pt_sleep_ms(1);
    }
}

bool pt_wait(const volatile int *flag, unsigned ms)
{
    return pt_wait_count(flag, 1, ms);
}

void pt_unix_addr(char *buf, size_t len, const char *name)
{
    if (tmpdir[0] == '\0') {
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/pants-test-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(tmpdir));
        atexit(remove_tmpdir);
    }
    snprintf(buf, len, "unix:%s/%s", tmpdir, name);
}

struct on_loop_call {
    pants_fn_t fn; /* what to run */
    void *arg;     /* its argument */
    int done;      /* set once fn returned */
};

static void on_loop_trampoline(void *arg)
{
    struct on_loop_call *c = arg;

    c->fn(c->arg);
    __atomic_store_n(&c->done, 1, __ATOMIC_SEQ_CST);
}

void pt_on_loop(pants_loop_t *l, pants_fn_t fn, void *arg)
{
    struct on_loop_call c = {fn, arg, 0};

    ck_assert_int_eq(pants_loop_post(l, on_loop_trampoline, &c), 0);
    ck_assert(pt_wait(&c.done, 5000));
}

int pt_lowest_free_fd(void)
{
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

    if (fd >= 0)
        close(fd);
    return fd;
}

/* ---- A fake name server ------------------------------------------------ */

static size_t dns_answer(const unsigned char *q, size_t n, uint32_t ttl, unsigned char *out, bool *is_a)
{
    unsigned char rr[] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 127, 0, 0, 1};
    size_t end = 12;
    bool nx;

    while (end < n && q[end] != 0)
        end += q[end] + 1u;
    end += 5; /* the root label, type, class */
    if (n < 12 || end > n)
        return 0;
    *is_a = q[end - 4] == 0 && q[end - 3] == 1;
    nx = q[12] >= 2 && (q[13] | 0x20) == 'n' && (q[14] | 0x20) == 'x'; /* evdns randomizes case */
    memcpy(out, q, end);
    out[2] = 0x81;                 /* response, recursion desired */
    out[3] = nx ? 0x83 : 0x80;     /* recursion available; NXDOMAIN or no error */
    out[6] = 0;
    out[7] = *is_a && !nx ? 1 : 0; /* answers */
    memset(out + 8, 0, 4);         /* no authority or additional records */
    if (out[7] == 0)
        return end;
    rr[6] = (unsigned char)(ttl >> 24);
    rr[7] = (unsigned char)(ttl >> 16);
    rr[8] = (unsigned char)(ttl >> 8);
    rr[9] = (unsigned char)ttl;
    memcpy(out + end, rr, sizeof(rr));
    return end + sizeof(rr);
}

static void *dns_run(void *arg)
{
    struct pt_dns *f = arg;

    while (!__atomic_load_n(&f->stop, __ATOMIC_SEQ_CST)) {
        unsigned char q[512], out[600];
        struct sockaddr_storage from;
        socklen_t flen = sizeof(from);
        struct pollfd p = {f->fd, POLLIN, 0};
        bool is_a = false;
        if (poll(&p, 1, 20) != 1)
            continue;
        ssize_t n = recvfrom(f->fd, q, sizeof(q), MSG_DONTWAIT, (struct sockaddr *)&from, &flen);
        size_t len = n > 0 ? dns_answer(q, (size_t)n, __atomic_load_n(&f->ttl, __ATOMIC_SEQ_CST), out, &is_a) : 0;
        if (len == 0)
            continue;
        __atomic_add_fetch(&f->queries, 1, __ATOMIC_SEQ_CST);
        if (is_a)
            __atomic_add_fetch(&f->queries_a, 1, __ATOMIC_SEQ_CST);
        pt_sleep_ms(f->delay_ms);
        sendto(f->fd, out, len, 0, (struct sockaddr *)&from, flen);
    }
    return NULL;
}

void pt_dns_start(struct pt_dns *f, unsigned delay_ms, char *server, size_t len)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t slen = sizeof(sin);

    memset(f, 0, sizeof(*f));
    f->delay_ms = delay_ms;
    f->ttl = 300;
    f->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(f->fd, 0);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(f->fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    ck_assert_int_eq(getsockname(f->fd, (struct sockaddr *)&sin, &slen), 0);
    snprintf(server, len, "127.0.0.1:%u", ntohs(sin.sin_port));
    ck_assert_int_eq(pthread_create(&f->thread, NULL, dns_run, f), 0);
}

void pt_dns_stop(struct pt_dns *f)
{
    __atomic_store_n(&f->stop, 1, __ATOMIC_SEQ_CST);
    pthread_join(f->thread, NULL);
    close(f->fd);
}
