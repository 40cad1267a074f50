#!/bin/sh
# tests/http.sh -- examples/http speaks HTTP/1.1, keeps to its root, drains.
#
# The server listens on a port the kernel picks (it prints the address).
# tests/http_test.py drives it over raw python3 sockets, so nothing is
# normalised on the way: every error status (400 in many shapes, 413 for
# a Content-Length and for chunks, 431, 408 not before --header-timeout,
# 501, 505, 404, 405), pipelining (mixed requests, bodies and chunks in
# one send, answered in order), Connection: close, HTTP/1.0 with and
# without keep-alive, HEAD, chunked bodies through http.client and
# Expect: 100-continue, files under --root (Range, 416, If-Modified-Since
# and 304, index.html) and path traversal: a secret file beside the root
# must never come back, whatever the path ("..", %2e%2e, encoded slashes,
# NUL, symlinks out of the root, absolute-form), with openat2 and with
# --no-openat2.  curl checks keep-alive (one connection for two URLs),
# HEAD, Range, HTTP/1.0 and HTTPS with a certificate made by
# scripts/make-cert; the access log must show each request with the
# client's address, and with --proxy-protocol the address a PROXY header
# (v1, v2) named.  --max-conns 2 holds a third client back, --reuseport
# serves.  Last, SIGTERM with a half-sent head and a half-sent body in
# flight: both are answered, an idle connection is closed, and the
# server exits 0.
#
# Skipped without python3 (exit 77); the curl and HTTPS parts are skipped
# without curl, openssl, or a build with OpenSSL.  Every wait is bounded.
set -u

if ! command -v python3 >/dev/null; then
    echo "skip: http: no python3"
    exit 77
fi

srcdir=${srcdir:-.}
helper=$srcdir/tests/http_test.py
dir=$(mktemp -d "${TMPDIR:-/tmp}/pants-http.XXXXXX")
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
# address it prints ("listening on A") and $pid to its process.
start() {
    name=$1
    shift
    : >"$dir/$name.out"
    "$@" >"$dir/$name.out" 2>"$dir/$name.err" &
    pid=$!
    eval "pid_$name=$pid"
    pids="$pids $pid"
    addr=""
    for _ in $(seq 1 200); do
        addr=$(sed -n 's/^listening on //p' "$dir/$name.out" | head -n 1)
        [ -n "$addr" ] && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    fail "$name printed no address: $(cat "$dir/$name.err")"
    return 1
}

# py WHAT CASE ARGS...: a case of http_test.py, for at most 60 s.
py() {
    what=$1
    shift
    if out=$(timeout 60 python3 "$helper" "$@" 2>&1); then
        echo "ok: $what: $out"
    else
        fail "$what: $out"
    fi
}

# exited NAME: the server must exit within 15 s, with status 0.
exited() {
    eval "p=\$pid_$1"
    for _ in $(seq 1 300); do
        kill -0 "$p" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$p" 2>/dev/null; then
        fail "$1 did not exit"
        return
    fi
    wait "$p"
    rc=$?
    [ "$rc" -eq 0 ] || fail "$1 exited $rc: $(cat "$dir/$1.err")"
}

# stop NAME: SIGTERM, then as exited.
stop() {
    eval "kill -TERM \$pid_$1" 2>/dev/null
    exited "$1"
}

# check WHAT CONDITION-COMMAND...: ok or FAIL.
check() {
    what=$1
    shift
    if "$@"; then echo "ok: $what"; else fail "$what"; fi
}

# The tree: a root with files and symlinks, a secret beside it.
secret="the secret outside the root $$"
mkdir -p "$dir/root/sub" "$dir/root/empty"
echo "$secret" >"$dir/secret.txt"
printf 'Hello, files! 0123456789\n' >"$dir/root/hello.txt"
printf '\001\002\003' >"$dir/root/data.bin"
printf '<p>index</p>\n' >"$dir/root/sub/index.html"
ln -s ../secret.txt "$dir/root/link-out"
ln -s .. "$dir/root/link-dir"
ln -s "$dir/secret.txt" "$dir/root/link-abs"
ln -s ../.. "$dir/root/sub/link-up"
ln -s hello.txt "$dir/root/link-in"

if examples/http --help | grep -q -- --keepalive-timeout && examples/http --help | grep -q -- --proxy-protocol; then
    echo "ok: http --help"
else
    fail "http --help does not list its options"
fi

if start main examples/http --threads 2 --listen 127.0.0.1:0 --root "$dir/root" --max-body 4096 \
    --max-head 2048 --header-timeout 400 --keepalive-timeout 800 --access-log; then
    main=$addr
    py "error statuses" statuses "$main" 4096 2048
    py "408" timeout "$main" 400
    py "pipelining" pipeline "$main"
    py "connections" connection "$main"
    py "chunked bodies" chunked "$main" 4096
    py "files" files "$main" "$dir/root"
    py "path traversal" traversal "$main" "$secret"
    py "keep-alive timeout" idle "$main" 800

    if ! command -v curl >/dev/null; then
        echo "skip: curl: not installed"
    else
        curl -sv "http://$main/plaintext" "http://$main/json" >"$dir/curl.out" 2>"$dir/curl.err"
        check "curl: two URLs, one connection" grep -qi "re-using existing" "$dir/curl.err"
        check "curl: both bodies" grep -q '"message":"Hello, World!"' "$dir/curl.out"
        check "curl -I: HEAD with the GET's length" \
            sh -c "curl -sI 'http://$main/plaintext' | tr -d '\r' | grep -qx 'Content-Length: 13'"
        got=$(curl -s -r 0-4 -w ' %{http_code}' "http://$main/hello.txt")
        check "curl -r 0-4: $got" [ "$got" = "Hello 206" ]
        got=$(curl -s --http1.0 -w ' %{http_code}' "http://$main/plaintext")
        check "curl --http1.0: $got" [ "$got" = "Hello, World! 200" ]
        got=$(curl -s --path-as-is -o "$dir/curl.out" -w '%{http_code}' "http://$main/../secret.txt")
        check "curl --path-as-is /../secret.txt: $got" sh -c "[ '$got' -ge 400 ] && [ '$got' -lt 500 ] && ! grep -q '$secret' '$dir/curl.out'"
    fi
    check "access log: client address, request, status, bytes" \
        grep -Eq '^127\.0\.0\.1:[0-9]+ - - \[[^]]+\] "GET /plaintext HTTP/1\.1" 200 13$' "$dir/main.out"
    check "no secret in the access log either" sh -c "! grep -q '$secret' '$dir/main.out'"
    stop main
fi

if start walk examples/http --threads 1 --listen 127.0.0.1:0 --root "$dir/root" --no-openat2; then
    py "files, --no-openat2" files "$addr" "$dir/root"
    py "path traversal, --no-openat2" traversal "$addr" "$secret"
    stop walk
fi

# --proxy-protocol: the address a PROXY header names is the one logged.
if start proxy examples/http --threads 2 --listen 127.0.0.1:0 --proxy-protocol --access-log; then
    out=$(timeout 60 python3 "$helper" proxy "$addr" 2>&1)
    rc=$?
    if [ "$rc" -eq 77 ]; then
        echo "skip: --proxy-protocol: $out"
    elif [ "$rc" -ne 0 ]; then
        fail "--proxy-protocol: $out"
    else
        echo "ok: --proxy-protocol: $out"
        check "access log: the PROXY v1 client" grep -q '^203\.0\.113\.7:56324 .*"GET /plaintext HTTP/1\.1" 200' "$dir/proxy.out"
        check "access log: the PROXY v2 client" grep -q '^198\.51\.100\.9:41000 .*"GET /json HTTP/1\.1" 200' "$dir/proxy.out"
    fi
    stop proxy
fi

if start cap examples/http --threads 2 --listen 127.0.0.1:0 --max-conns 2; then
    py "--max-conns 2" max_conns "$addr"
    stop cap
fi

# --reuseport: a listening socket per worker, both serve.
if start reuse examples/http --threads 2 --listen 127.0.0.1:0 --reuseport; then
    py "--reuseport" pipeline "$addr"
    stop reuse
fi

if ! command -v curl >/dev/null || ! command -v openssl >/dev/null; then
    echo "skip: HTTPS: no curl or openssl command"
elif [ ! -x examples/tls-client ]; then
    echo "skip: HTTPS: built without OpenSSL"
elif ! "$srcdir/scripts/make-cert" "$dir/cert" >"$dir/make-cert.out" 2>&1; then
    fail "scripts/make-cert: $(cat "$dir/make-cert.out")"
elif start tls examples/http --threads 2 --listen 127.0.0.1:0 --tls-cert "$dir/cert/cert.pem" \
    --tls-key "$dir/cert/key.pem" --root "$dir/root"; then
    port=${addr##*:}
    curl -sv --cacert "$dir/cert/cert.pem" "https://localhost:$port/plaintext" "https://localhost:$port/json" \
        >"$dir/tls.out" 2>"$dir/tls.err"
    check "HTTPS: curl --cacert gets /plaintext and /json" \
        sh -c "grep -q 'Hello, World!' '$dir/tls.out' && grep -q message '$dir/tls.out'"
    check "HTTPS: ALPN http/1.1" grep -qi "alpn.*accepted.*http/1.1" "$dir/tls.err"
    check "HTTPS: one connection" grep -qi "re-using existing" "$dir/tls.err"
    got=$(curl -s --cacert "$dir/cert/cert.pem" "https://localhost:$port/hello.txt")
    check "HTTPS: a file (sendfile through TLS)" [ "$got" = "Hello, files! 0123456789" ]
    got=$(curl -s --cacert "$dir/cert/cert.pem" -r -11 -o "$dir/range.out" -w '%{http_code}' \
        "https://localhost:$port/hello.txt")
    check "HTTPS: curl -r -11: $got $(cat "$dir/range.out")" [ "$got $(cat "$dir/range.out")" = "206 0123456789" ]
    stop tls
fi

if start drain examples/http --threads 2 --listen 127.0.0.1:0 --header-timeout 5000; then
    py "SIGTERM drains" drain "$addr" "$pid"
    exited drain
fi

# A sanitizer build reports on stderr; any report is a failure.
for err in "$dir"/*.err; do
    if grep -q "Sanitizer\|runtime error" "$err"; then
        fail "$(basename "$err" .err): $(cat "$err")"
    fi
done

exit $status
