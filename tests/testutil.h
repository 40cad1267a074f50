/* testutil.h -- helpers shared by the Check suites.
 *
 * Network tests run an engine in the background (pants_engine_start), drive
 * it from the test thread through pants_loop_post, and wait on flags with
 * pt_wait, which gives up after a bounded time so no test hangs.
 */
#ifndef PANTS_TESTUTIL_H
#define PANTS_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>

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

#endif
