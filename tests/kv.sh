#!/bin/sh
# tests/kv.sh -- examples/kv, the Redis-protocol server, with real clients.
#
# kv runs with 2 worker threads on a port the kernel picks (it prints the
# address), so connections land on different loops.  Then:
#   - redis-cli (Debian's redis-tools): each command and its reply, and
#     the interactive mode fed from a pipe (it asks COMMAND DOCS first);
#   - tests/kv_raw.py over raw sockets: exact reply bytes of every command,
#     inline requests, pipelines, protocol errors (answered, then the
#     connection closed), 1 MiB values, expiry; with a redis-server 7 at
#     hand, its replies must be the very same bytes;
#   - tests/kv_clients.py through redis-py (python3-redis): every command,
#     a pipeline, and 4 threads x 10,000 INCR on 4 connections = 40,000;
#   - redis-benchmark, unmodified, -n 2000, plain and pipelined: no error;
#   - --max-conns (a second client waits until the first leaves),
#     --reuseport, --help, and SIGTERM (exit 0).
# A part whose tool is missing says "skip: ..."; every wait is bounded.
set -u

dir=$(mktemp -d "${TMPDIR:-/tmp}/pants-kv.XXXXXX")
pids=""
status=0
srcdir=${srcdir:-.}

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
# address it prints ("listening on A").
start() {
    name=$1
    shift
    : >"$dir/$name.out"
    "$@" >"$dir/$name.out" 2>"$dir/$name.err" &
    eval "pid_$name=$!"
    pids="$pids $!"
    addr=""
    for _ in $(seq 1 200); do
        addr=$(sed -n 's/^listening on //p' "$dir/$name.out" | head -n 1)
        [ -n "$addr" ] && return 0
        sleep 0.05
    done
    fail "$name printed no address: $(cat "$dir/$name.err")"
    return 1
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
    if [ "$rc" -eq 0 ]; then
        echo "ok: $1 exited 0 on SIGTERM"
    else
        fail "$1 exited $rc: $(cat "$dir/$1.err")"
    fi
}

# A python3 that has redis-py (pyenv's python3 may not; Debian's does).
python=""
redis_python=""
for p in python3 /usr/bin/python3; do
    command -v "$p" >/dev/null 2>&1 || continue
    [ -n "$python" ] || python=$p
    if "$p" -c "import redis" 2>/dev/null; then
        redis_python=$p
        break
    fi
done

# cli WANT ARGS...: redis-cli ARGS must print WANT (newlines as \n).
cli() {
    want=$1
    shift
    got=$(timeout 10 redis-cli -h "$host" -p "$port" "$@" 2>&1)
    if [ "$got" = "$(printf '%b' "$want")" ]; then
        cli_ok=$((cli_ok + 1))
    else
        fail "redis-cli $*: got '$got', want '$want'"
    fi
}

redis_cli() {
    if ! command -v redis-cli >/dev/null; then
        echo "skip: redis-cli: not installed (redis-tools)"
        return
    fi
    cli_ok=0
    cli "OK" flushall
    cli "PONG" ping
    cli "hi there" echo "hi there"
    cli "OK" select 0
    cli "ERR DB index is out of range\n" select 3
    cli "OK" set k v
    cli "v" get k
    cli "" get missing
    cli "" set k w nx
    cli "OK" set k w xx
    cli "OK" set t v ex 100
    cli "100" ttl t
    cli "-1" ttl k
    cli "-2" ttl missing
    cli "1" expire k 50
    cli "50" ttl k
    cli "1" incr n
    cli "11" incrby n 10
    cli "10" decr n
    cli "ERR value is not an integer or out of range\n" incr k
    cli "OK" mset a 1 b 2
    cli "1\n\n2" mget a none b
    cli "2" exists a b missing
    cli "2" del a b
    cli "3" dbsize
    cli "save\n" config get save
    cli "appendonly\nno" config get appendonly
    cli "ERR wrong number of arguments for 'get' command\n" get
    cli "ERR syntax error\n" set k v nx xx
    cli "ERR unknown command 'nosuch', with args beginning with: 'x' \n" nosuch x
    cli "OK" flushall
    cli "0" dbsize
    got=$(printf 'SET p 1\nINCR p\nGET p\nDEL p\n' | timeout 10 redis-cli -h "$host" -p "$port" 2>&1)
    if [ "$got" = "$(printf 'OK\n2\n2\n1')" ]; then
        echo "ok: redis-cli: $cli_ok commands, and 4 more through its interactive mode"
    else
        fail "redis-cli interactive mode: got '$got'"
    fi
}

# raw: exact bytes, compared with redis-server 7 when there is one.
raw() {
    if [ -z "$python" ]; then
        echo "skip: raw protocol: no python3"
        return
    fi
    ref=""
    if command -v redis-server >/dev/null && redis-server --version | grep -q ' v=7\.'; then
        redis-server --port 0 --unixsocket "$dir/redis.sock" --save "" --appendonly no \
            --databases 1 >"$dir/redis.out" 2>&1 &
        pids="$pids $!"
        for _ in $(seq 1 100); do
            [ -S "$dir/redis.sock" ] && break
            sleep 0.05
        done
        [ -S "$dir/redis.sock" ] && ref=unix:$dir/redis.sock
    else
        echo "skip: byte-for-byte comparison: no redis-server 7"
    fi
    if out=$(timeout 50 "$python" "$srcdir/tests/kv_raw.py" "$addr" $ref 2>&1); then
        echo "ok: raw protocol: $out"
    else
        fail "raw protocol: $out"
    fi
}

clients() {
    if [ -z "$redis_python" ]; then
        echo "skip: redis-py: no python3 with the redis module (python3-redis)"
        return
    fi
    if out=$(timeout 50 "$redis_python" "$srcdir/tests/kv_clients.py" "$addr" 2>&1); then
        echo "ok: $out"
    else
        fail "redis-py: $out"
    fi
}

# redis-benchmark as it comes: each test reports a rate, no error.
benchmark() {
    if ! command -v redis-benchmark >/dev/null; then
        echo "skip: redis-benchmark: not installed (redis-tools)"
        return
    fi
    for p in 1 16; do
        out=$(timeout 30 redis-benchmark -h "$host" -p "$port" -c 20 -n 2000 -P "$p" -q \
            -t ping,set,get,incr,mset 2>&1 | tr '\r' '\n')
        rates=$(echo "$out" | grep -c 'requests per second')
        if [ "$rates" -ne 6 ] || echo "$out" | grep -qi 'error\|ERR '; then
            fail "redis-benchmark -P $p: $(echo "$out" | grep -v 'rps=' | head -n 10)"
        else
            echo "ok: redis-benchmark -P $p: $(echo "$out" | sed -n 's/^ *\(.*\): \([0-9]*\).* requests per second.*/\1 \2/p' |
                tr '\n' ',' | sed 's/,$//; s/,/, /g') requests/s"
        fi
    done
}

if start kv examples/kv --threads 2 --listen 127.0.0.1:0; then
    host=${addr%:*}
    port=${addr##*:}
    redis_cli
    raw
    clients
    benchmark
    stop kv
fi

# --max-conns 1: a second client is not served until the first leaves.
if [ -z "$python" ]; then
    echo "skip: --max-conns: no python3"
elif start limits examples/kv --threads 2 --max-conns 1 --listen 127.0.0.1:0; then
    if out=$(timeout 20 "$python" - "$addr" 2>&1 <<'EOF'
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
first = socket.create_connection((host, int(port)), timeout=10)
first.sendall(b"PING\r\n")
assert first.recv(7) == b"+PONG\r\n", "the first client got no PONG"
second = socket.create_connection((host, int(port)), timeout=0.5)
second.sendall(b"PING\r\n")
try:
    sys.exit("the second client was served while the first was open: %r" % second.recv(7))
except socket.timeout:
    pass
first.sendall(b"QUIT\r\n")
assert first.recv(5) == b"+OK\r\n" and first.recv(1) == b"", "QUIT did not close"
second.settimeout(10)
assert second.recv(7) == b"+PONG\r\n", "the second client got no PONG"
print("the second client waited, and was served once the first sent QUIT")
EOF
    ); then
        echo "ok: --max-conns 1: $out"
    else
        fail "--max-conns 1: $out"
    fi
    stop limits
fi

before=$status
if start reuseport examples/kv --threads 2 --reuseport --listen 127.0.0.1:0; then
    if command -v redis-cli >/dev/null; then
        got=$(timeout 10 redis-cli -h "${addr%:*}" -p "${addr##*:}" ping 2>&1)
        [ "$got" = PONG ] && echo "ok: --reuseport: PONG" || fail "--reuseport: ping: $got"
    fi
    stop reuseport
elif grep -q "not supported" "$dir/reuseport.err"; then
    status=$before # the kernel has no SO_REUSEPORT
    echo "skip: --reuseport: $(cat "$dir/reuseport.err")"
fi

if examples/kv --help | grep -q -- --reuseport && examples/kv --help | grep -q -- --max-conns; then
    echo "ok: kv --help"
else
    fail "kv --help does not list its options"
fi

exit $status
