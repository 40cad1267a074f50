#!/bin/sh
# deploy/check.sh -- make check: HAProxy in front of two examples/http,
# one drained with SIGTERM and restarted under wrk, then one killed.
#
# deploy/run --check, shortened: 8 s of wrk with SIGTERM at 2 s and the
# restart at 4 s, then 4 s with SIGKILL at 2 s; about 15 s in all (longer
# under TSan, bounded at 120).  Any failed request fails it; slowness does
# not.  Skipped (77) without haproxy, wrk, python3 or bash.  Runs in the
# build directory: the server is ./examples/http (or $PANTS_HTTP), the
# scripts are found through $srcdir.
set -u

for tool in haproxy wrk python3 bash; do
    if ! command -v $tool >/dev/null 2>&1; then
        echo "skip: deploy: no $tool"
        exit 77
    fi
done
srcdir=${srcdir:-$(dirname "$0")/..}
if [ -z "${PANTS_HTTP:-}" ] && [ ! -x ./examples/http ]; then
    echo "deploy: no ./examples/http here (run from the build directory, or set PANTS_HTTP)"
    exit 99
fi
run="bash $srcdir/deploy/run --check --duration 8 --term-at 2 --restart-at 4 \
    --kill-duration 4 --kill-at 2"
if command -v timeout >/dev/null 2>&1; then
    exec timeout -k 5 120 $run
fi
exec $run
