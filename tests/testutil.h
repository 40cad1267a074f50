/* testutil.h -- helpers shared by the Check suites.
 *
 * Network tests run an engine in the background (pants_engine_start), drive
 * it from the test thread through pants_loop_post, and wait on flags with
 * pt_wait, which gives up after a bounded time so no test hangs.
 */
#ifndef PANTS_TESTUTIL_H
#define PANTS_TESTUTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pants.h"

/* Wait until *flag becomes nonzero (read atomically), at most ms.
 * Returns true if it did. */
bool pt_wait(const volatile int *flag, unsigned ms);

/* Wait until *counter >= target, at most ms.  Returns true if it did. */
bool pt_wait_count(const volatile int *counter, int target, unsigned ms);

/* Sleep ms milliseconds. */
void pt_sleep_ms(unsigned ms);

/* A fresh "unix:<tmpdir>/<name>" address in buf (a per-process temp dir,
 * removed at exit). */
void pt_unix_addr(char *buf, size_t len, const char *name);

/* The lowest descriptor number not in use now (what the next socket or
 * accept would get); independent of whether stdin is open. */
int pt_lowest_free_fd(void);

/* Run fn(arg) on loop l and wait until it returned (at most 5 s). */
void pt_on_loop(pants_loop_t *l, pants_fn_t fn, void *arg);

/* An engine of threads workers, started in the background (asserts). */
pants_engine_t *pt_engine_up(unsigned threads);

/* Stop, join and free e; then no pants object may be left (asserts). */
void pt_engine_down(pants_engine_t *e);

/* CLOCK_MONOTONIC in milliseconds. */
int64_t pt_now_ms(void);

/* A name server on 127.0.0.1 for the engine option dns_server: it answers
 * every A query with 127.0.0.1 and a TTL of ttl seconds (300 unless
 * changed), every other query with no records, and names whose first label
 * starts with "nx" with NXDOMAIN; each answer after delay_ms.  So tests
 * resolve names without any real DNS. */
struct pt_dns {
    int fd;            /* its socket */
    pthread_t thread;  /* answers */
    int stop;          /* set to end the thread */
    unsigned delay_ms; /* before each answer */
    uint32_t ttl;      /* of the A records (atomic) */
    int queries_a;     /* A queries seen (atomic) */
    int queries;       /* all queries seen (atomic) */
};

/* Start it; its address ("127.0.0.1:port") goes to server. */
void pt_dns_start(struct pt_dns *f, unsigned delay_ms, char *server, size_t len);
void pt_dns_stop(struct pt_dns *f);

#endif
