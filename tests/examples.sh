#!/bin/sh
# tests/examples.sh -- the examples a user runs first do what they say.
#
# Each server listens on a port the kernel picks (it prints the address),
# and bench/loadgen, which checks every echoed byte, drives it for a
# moment: echo (raw and line mode, 2 workers), proxy in front of echo
# (with a small high-water mark, so reads pause and resume all the time),
# and udp-echo.  A run passes when messages went through and loadgen saw
# no error at all.  Then each server gets SIGTERM and must exit 0.
set -u

dir=$(mktemp -d "${TMPDIR:-/tmp}/pants-examples.XXXXXX")
pids=""
status=0

cleanup() {
    for p in $pids; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$dir"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*"
    status=1
}

# start NAME CMD...: run a server in the background; sets $addr to the
# address it prints ("listening on A" or "proxying A to B").
start() {
    name=$1
    shift
    "$@" >"$dir/$name.out" 2>"$dir/$name.err" &
    eval "pid_$name=$!"
    pids="$pids $!"
    addr=""
    for _ in $(seq 1 100); do
        addr=$(sed -n 's/^listening on //p; s/^proxying \([^ ]*\) to .*/\1/p' "$dir/$name.out" | head -n 1)
        [ -n "$addr" ] && return 0
        sleep 0.05
    done
    fail "$name printed no address: $(cat "$dir/$name.err")"
    return 1
}

# drive WHAT LOADGEN-ARGS...: run loadgen; no error and some messages.
drive() {
    what=$1
    shift
    out=$(bench/loadgen --duration 1 --json "$@" 2>&1)
    msgs=$(echo "$out" | sed -n 's/.*"msgs":\([0-9]*\).*/\1/p')
    errs=$(echo "$out" | sed -n 's/.*"errors_total":\([0-9]*\).*/\1/p')
    if [ -z "$msgs" ] || [ "$msgs" -eq 0 ] || [ "$errs" != 0 ]; then
        fail "$what: $out"
    else
        echo "ok: $what: $msgs messages, no errors"
    fi
}

# stop NAME: SIGTERM, and the server must exit 0 within 10 s.
stop() {
    eval "p=\$pid_$1"
    kill -TERM "$p" 2>/dev/null
    for _ in $(seq 1 200); do
        kill -0 "$p" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$p" 2>/dev/null; then
        fail "$1 did not stop on SIGTERM"
        return
    fi
    wait "$p"
    rc=$?
    [ "$rc" -eq 0 ] || fail "$1 exited $rc: $(cat "$dir/$1.err")"
}

if start echo examples/echo --threads 2 --listen 127.0.0.1:0; then
    echo_addr=$addr
    drive "echo, ping-pong" --connect "$echo_addr" --connections 20
    drive "echo, 64 KiB messages" --connect "$echo_addr" --connections 8 --size 65536 --pipeline 2
    if start proxy examples/proxy --threads 2 --listen 127.0.0.1:0 --to "$echo_addr" --high 4096; then
        drive "proxy, pipelined" --connect "$addr" --connections 20 --pipeline 16
        drive "proxy, 64 KiB messages" --connect "$addr" --connections 8 --size 65536 --pipeline 4
        drive "proxy, churn" --connect "$addr" --churn
        stop proxy
    fi
    stop echo
fi

if start line examples/echo --threads 1 --line --listen 127.0.0.1:0; then
    drive "echo --line, pipelined" --connect "$addr" --line --connections 10 --pipeline 16
    stop line
fi

if start udp examples/udp-echo --listen 127.0.0.1:0; then
    drive "udp-echo" --connect "$addr" --udp --connections 4 --pipeline 4
    stop udp
fi

exit $status
