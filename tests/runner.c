/* runner.c -- the one Check runner: every suite of tests/suites.def.
 *
 * CK_RUN_SUITE / CK_RUN_CASE select a part, CK_FORK=no runs in-process
 * (for gdb), as with any Check runner.
 */
#include <stdlib.h>

#include <check.h>

#include "testutil.h"

#define SUITE(name) Suite *name##_suite(void);
#include "suites.def"
#undef SUITE

int main(void)
{
    SRunner *sr = srunner_create(NULL);
#define SUITE(name) srunner_add_suite(sr, name##_suite());
#include "suites.def"
#undef SUITE
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
