/* testutil.c -- helpers shared by the Check suites (see testutil.h). */
#include "testutil.h"

#include <check.h>
#include <fcntl.h>
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
