#!/bin/sh
# tests/examples.sh -- the examples a user runs first do what they say.
#
# Each server listens on a port the kernel picks (it prints the address),
# and bench/loadgen, which checks every echoed byte, drives it for a
# moment: echo (raw and line mode, 2 workers), proxy in front of echo
# (with a small high-water mark, so reads pause and resume all the time),
# and udp-echo.  A run passes when messages went through and loadgen saw
# no error at all.  Then each server gets SIGTERM and must exit 0.
#
# The limits of echo are driven by small python3 clients: --max-conns (5
# loadgen connections work, a 6th client waits until one closes),
# --idle-timeout (a silent client is closed, not before the timeout, a
# talking one is not) and --frame-timeout (a client that trickles a line
# it never finishes is closed, one that finishes its lines is not).
#
# TLS: scripts/make-cert makes a certificate into the temporary directory
# (nothing secret is kept in the tree), echo serves with it, and a line
# must come back through `openssl s_client` and through tls-client (with
# the ALPN protocol they agreed on); tls-client must refuse the same
# server when it does not know the CA (exit 1, and why on stderr).  With
# --tls-ca, echo serves a tls-client that shows a certificate and
# refuses one that does not.  Skipped without the openssl command or
# when built --without-openssl.
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
    : >"$dir/$name.out" # there before the background shell opens it, for sed
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

# client WHAT ADDR: run the python3 program on stdin against ADDR, for at
# most 30 s; it prints what it saw and exits 0 if that was right.
client() {
    what=$1
    if ! command -v python3 >/dev/null; then
        echo "skip: $what: no python3"
        return
    fi
    if out=$(timeout 30 python3 - "$2" 2>&1); then
        echo "ok: $what: $out"
    else
        fail "$what: $out"
    fi
}

# tls_line WHAT CMD...: a TLS client CMD gets a line on stdin, which must
# come back on its stdout within 10 s; then its stdin ends, and it must
# exit 0 (it is killed after 20 s in all).
tls_line() {
    what=$1
    shift
    line="a line over TLS, $$"
    rm -f "$dir/in"
    mkfifo "$dir/in"
    timeout 20 "$@" <"$dir/in" >"$dir/client.out" 2>"$dir/client.err" &
    client_pid=$!
    pids="$pids $client_pid"
    exec 3>"$dir/in" # stdin stays open until the line is back
    echo "$line" >&3
    for _ in $(seq 1 200); do
        grep -qxF "$line" "$dir/client.out" && break
        sleep 0.05
    done
    exec 3>&-
    wait "$client_pid"
    rc=$?
    if ! grep -qxF "$line" "$dir/client.out"; then
        fail "$what: the line did not come back: $(cat "$dir/client.err")"
    elif [ "$rc" -ne 0 ]; then
        fail "$what: exited $rc after its stdin ended: $(cat "$dir/client.err")"
    else
        echo "ok: $what"
    fi
}

# tls_refused WHAT CMD...: a TLS client CMD (its stdin left open) must
# exit 1 within 10 s and say "TLS failure" on stderr.
tls_refused() {
    what=$1
    shift
    rm -f "$dir/in"
    mkfifo "$dir/in"
    timeout 10 "$@" <"$dir/in" >"$dir/client.out" 2>"$dir/client.err" &
    client_pid=$!
    pids="$pids $client_pid"
    exec 3>"$dir/in"
    wait "$client_pid"
    rc=$?
    exec 3>&-
    if [ "$rc" -ne 1 ] || ! grep -q "TLS failure" "$dir/client.err"; then
        fail "$what: exited $rc: $(cat "$dir/client.err")"
    else
        echo "ok: $what: $(grep "TLS failure" "$dir/client.err" | head -n 1)"
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

if start limits examples/echo --threads 2 --max-conns 5 --listen 127.0.0.1:0; then
    drive "echo --max-conns 5, 5 connections" --connect "$addr" --connections 5 --pipeline 4
    client "echo --max-conns 5, a 6th client" "$addr" <<'EOF'
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
five = [socket.create_connection((host, int(port)), timeout=10) for _ in range(5)]
for s in five:
    s.sendall(b"x")
    assert s.recv(1) == b"x", "one of the first 5 got no echo"
sixth = socket.create_connection((host, int(port)), timeout=0.5)
sixth.sendall(b"6")
try:
    sys.exit("the 6th was served while 5 were open: %r" % sixth.recv(1))
except socket.timeout:
    pass
five.pop().close()
sixth.settimeout(10)
t = time.monotonic()
assert sixth.recv(1) == b"6", "the 6th got no echo"
print("no echo while 5 were open, served %.0f ms after one closed" % ((time.monotonic() - t) * 1000))
EOF
    stop limits
fi

if start idle examples/echo --threads 2 --idle-timeout 300 --listen 127.0.0.1:0; then
    client "echo --idle-timeout 300" "$addr" <<'EOF'
import select, socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
start = time.monotonic()
silent = socket.create_connection((host, int(port)), timeout=10)
talker = socket.create_connection((host, int(port)), timeout=10)
closed = None
for _ in range(10):                     # the talker sends a byte every 100 ms
    talker.sendall(b"t")
    assert talker.recv(1) == b"t", "the talking client was closed"
    tick = time.monotonic() + 0.1
    while closed is None and time.monotonic() < tick:
        if select.select([silent], [], [], tick - time.monotonic())[0]:
            assert silent.recv(1) == b"", "the silent client got bytes"
            closed = (time.monotonic() - start) * 1000
    time.sleep(max(0, tick - time.monotonic()))
if closed is None:
    sys.exit("the silent client was not closed within 1 s")
# not before 300 ms (give or take the clock's millisecond)
if closed < 295:
    sys.exit("the silent client was closed after %.0f ms" % closed)
print("silent client closed after %.0f ms, the talking one served for 1 s" % closed)
EOF
    stop idle
fi

if start frame examples/echo --threads 1 --line --frame-timeout 500 --listen 127.0.0.1:0; then
    client "echo --line --frame-timeout 500" "$addr" <<'EOF'
import select, socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
trickler = socket.create_connection((host, int(port)), timeout=10)
liner = socket.create_connection((host, int(port)), timeout=10)
first = time.monotonic()
closed = None
for i in range(1, 21):                  # 2 s: a byte every 100 ms each
    if closed is None:
        trickler.sendall(b"a")          # a line it never ends
    liner.sendall(b"\n" if i % 3 == 0 else b"b")
    if i % 3 == 0:                      # a line every 300 ms: never timed out
        assert liner.recv(3) == b"bb\n", "the client that ends its lines was closed"
    tick = time.monotonic() + 0.1
    while closed is None and time.monotonic() < tick:
        if select.select([trickler], [], [], tick - time.monotonic())[0]:
            try:
                assert trickler.recv(1) == b"", "the trickling client got bytes"
            except ConnectionError:
                pass
            closed = (time.monotonic() - first) * 1000
    time.sleep(max(0, tick - time.monotonic()))
if closed is None:
    sys.exit("the trickling client was not closed within 2 s")
if closed < 495:
    sys.exit("the trickling client was closed after %.0f ms" % closed)
print("trickling client closed after %.0f ms, the one that ends its lines served for 2 s" % closed)
EOF
    stop frame
fi

if examples/echo --help | grep -q -- --max-conns && examples/echo --help | grep -q -- --tls-cert; then
    echo "ok: echo --help"
else
    fail "echo --help does not list its options"
fi

if ! command -v openssl >/dev/null; then
    echo "skip: TLS: no openssl command"
elif [ ! -x examples/tls-client ]; then
    echo "skip: TLS: built without OpenSSL"
elif ! "${srcdir:-.}/scripts/make-cert" "$dir/cert" >"$dir/make-cert.out" 2>&1; then
    fail "scripts/make-cert: $(cat "$dir/make-cert.out")"
else
    cert=$dir/cert/cert.pem
    key=$dir/cert/key.pem
    if start tls examples/echo --threads 2 --line --alpn h2,http/1.1 --listen 127.0.0.1:0 \
        --tls-cert "$cert" --tls-key "$key"; then
        tls_line "echo --tls-cert, openssl s_client" openssl s_client -quiet -no_ign_eof \
            -verify_return_error -connect "$addr" -servername localhost -CAfile "$cert"
        tls_line "echo --tls-cert, tls-client --ca" examples/tls-client "$addr" \
            --servername localhost --ca "$cert" --alpn http/1.1
        grep -q "ALPN http/1.1" "$dir/client.err" || fail "tls-client: no ALPN: $(cat "$dir/client.err")"
        tls_refused "echo --tls-cert, tls-client without --ca" examples/tls-client "$addr" \
            --servername localhost
        stop tls
    fi
    if start mtls examples/echo --threads 1 --line --listen 127.0.0.1:0 \
        --tls-cert "$cert" --tls-key "$key" --tls-ca "$cert"; then
        tls_line "echo --tls-ca, tls-client --cert" examples/tls-client "$addr" \
            --ca "$cert" --cert "$cert" --key "$key"
        tls_refused "echo --tls-ca, tls-client without --cert" examples/tls-client "$addr" \
            --ca "$cert"
        stop mtls
    fi
fi

if start udp examples/udp-echo --listen 127.0.0.1:0; then
    drive "udp-echo" --connect "$addr" --udp --connections 4 --pipeline 4
    stop udp
fi

exit $status
