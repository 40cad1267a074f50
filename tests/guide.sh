#!/bin/sh
# tests/guide.sh -- the C code of docs/guide.md compiles, and runs.
#
# The convention.  In docs/guide.md, the line right before every ```c
# fence is an HTML comment (invisible when the Markdown is rendered) that
# says what the block is:
#
#   <!-- program: NAME [run] [serve=tcp|proxy] [client=SERVER] [cert] [openssl] -->
#       A complete program.  It is compiled as NAME with -Wall -Wextra
#       -Werror (and the library's own warning, sanitizer and thread
#       flags) against the library just built.  Then, if a word says so:
#       run          it is run, and must end by itself and exit 0.
#       serve=KIND   a server: it is run with "127.0.0.1:0" as argv[1] and
#                    must print "listening on ADDRESS"; a python3 client
#                    talks to it (tcp: a line goes out and must come back
#                    within a reply; proxy: the same after a PROXY v1
#                    header, which the reply must name, then SIGTERM must
#                    drain it: new connections refused, the open one still
#                    served); then SIGTERM, and it must exit 0.
#       client=SERVER  run with the address that a fresh SERVER (a serve=
#                    program earlier in the guide) prints as argv[1]; it
#                    must end by itself and exit 0, and SERVER must then
#                    exit 0 on SIGTERM.
#       cert         a certificate and key for localhost are made at test
#                    time (scripts/make-cert) and given as the last two
#                    arguments; it runs only in a build with OpenSSL and
#                    where the openssl command is there.
#       openssl      it includes OpenSSL's headers: compiled with OpenSSL's
#                    flags, and only in a build with OpenSSL.
#   <!-- fragment: NAME -->
#       A piece of program NAME, which must be the program before it: to
#       read, not to build.  Every pants_/PANTS_ name in it must be
#       declared in include/pants.h.
#
# A ```c block without such a line fails, and so does a program that does
# not compile or a run that fails or outlasts its time limit (20 s).
# Programs use loopback addresses, ports the kernel picks and Unix
# sockets in temporary directories only.  One line per program:
# "ok: NAME compiled[, ran]", "FAIL: ...", or why it was not run.
#
# Make check passes what it builds with (docs/guide.am, through
# AM_TESTS_ENVIRONMENT): GUIDE_LIBTOOL, GUIDE_CC, GUIDE_CFLAGS,
# GUIDE_LDFLAGS, GUIDE_LIB (libpants.la), GUIDE_INCLUDE, GUIDE_TLS (yes or
# no), GUIDE_OPENSSL_CFLAGS, GUIDE_OPENSSL_LIBS.  By hand, from the build
# directory: sh ../tests/guide.sh (defaults: ./libtool, cc, ./libpants.la).
# GUIDE_KEEP=1 keeps the programs and their output in the temporary
# directory, and says where.
set -u

srcdir=${srcdir:-$(dirname "$0")/..}
guide=$srcdir/docs/guide.md
libtool=${GUIDE_LIBTOOL:-$(command -v bash || echo sh) ./libtool}
cc=${GUIDE_CC:-cc}
cflags=${GUIDE_CFLAGS:--g -O2 -pthread}
ldflags=${GUIDE_LDFLAGS:--pthread}
lib=${GUIDE_LIB:-./libpants.la}
include=${GUIDE_INCLUDE:-$srcdir/include}
have_tls=${GUIDE_TLS:-yes}
openssl_cflags=${GUIDE_OPENSSL_CFLAGS:-}
openssl_libs=${GUIDE_OPENSSL_LIBS:--lssl -lcrypto}
run_limit=20

if [ ! -f "$lib" ]; then
    echo "guide: no $lib here (run from the build directory, after make)"
    exit 99
fi
dir=$(mktemp -d "${TMPDIR:-/tmp}/pants-guide.XXXXXX")
pids=""
status=0

cleanup() {
    for p in $pids; do kill -9 "$p" 2>/dev/null; done
    if [ -n "${GUIDE_KEEP:-}" ]; then
        echo "guide: the programs and what they printed are in $dir"
    else
        rm -rf "$dir"
    fi
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*"
    status=1
}

# ---- Extract -------------------------------------------------------------
# Writes $dir/NAME.c for each program, $dir/fragment-N.c for each fragment,
# and $dir/manifest: "program NAME WORDS..." or "fragment N OF" per block.

awk -v dir="$dir" '
function die(msg) { print "guide.md:" NR ": " msg > "/dev/stderr"; bad = 1 }
/^```c[ \t]*$/ {
    if (prev ~ /^<!-- program: [A-Za-z0-9_-]+( [^>]*)? -->$/) {
        spec = prev
        sub(/^<!-- program: /, "", spec)
        sub(/ -->$/, "", spec)
        split(spec, w, " ")
        name = w[1]
        if (name in seen)
            die("program " name " defined twice")
        seen[name] = 1
        last = name
        out = dir "/" name ".c"
        print "program " spec > (dir "/manifest")
    } else if (prev ~ /^<!-- fragment: [A-Za-z0-9_-]+ -->$/) {
        of = prev
        sub(/^<!-- fragment: /, "", of)
        sub(/ -->$/, "", of)
        if (of != last)
            die("fragment of " of ", but the program before it is " (last == "" ? "none" : last))
        nfrag++
        out = dir "/fragment-" nfrag ".c"
        print "fragment " nfrag " " of > (dir "/manifest")
    } else {
        die("a ```c block without <!-- program: NAME ... --> or <!-- fragment: NAME --> before it")
        out = "/dev/null"
    }
    inblock = 1
    printf "" > out
    next
}
inblock && /^```[ \t]*$/ { inblock = 0; close(out); prev = $0; next }
inblock { print > out; prev = $0; next }
{ prev = $0 }
END {
    if (inblock)
        die("a ```c block that never ends")
    exit bad
}' "$guide" || {
    echo "FAIL: guide: docs/guide.md does not follow the convention above"
    exit 1
}
[ -f "$dir/manifest" ] || {
    echo "FAIL: guide: no C program in docs/guide.md"
    exit 1
}

# ---- Compile ------------------------------------------------------------

# Every pants_/PANTS_ name in file $1 that include/pants.h does not declare.
unknown_names() {
    grep -oE '\b(pants|PANTS)_[A-Za-z0-9_]*' "$1" | sort -u | while read -r n; do
        grep -qE "\\b$n\\b" "$include/pants.h" || echo "$n"
    done
}

# compile NAME [openssl]: 0 if $dir/NAME builds.
compile() {
    extra_c="" extra_l=""
    if [ "${2:-}" = openssl ]; then
        extra_c=$openssl_cflags
        extra_l=$openssl_libs
    fi
    # shellcheck disable=SC2086 # the flags are lists
    $libtool --quiet --tag=CC --mode=link $cc -I"$include" $cflags $extra_c \
        -Wall -Wextra -Wunused-parameter -Werror -o "$dir/$1" "$dir/$1.c" \
        "$lib" $ldflags $extra_l -no-install >"$dir/$1.build" 2>&1
}

# ---- Run ----------------------------------------------------------------

cert_dir=""
# A certificate for localhost in $dir/cert, once; 1 if it cannot be made.
make_cert() {
    [ -n "$cert_dir" ] && return 0
    command -v openssl >/dev/null 2>&1 || return 1
    sh "$srcdir/scripts/make-cert" "$dir/cert" >/dev/null 2>&1 || return 1
    cert_dir=$dir/cert
}

# The python3 clients of serve=KIND: python3 - KIND ADDRESS PID
cat >"$dir/drive.py" <<'EOF'
import os, signal, socket, sys, time

kind, address, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
host, port = address.rsplit(":", 1)
host = host.strip("[]")
port = int(port)


def line(f, what):
    got = f.readline()
    if not got.endswith(b"\n"):
        sys.exit("%s: no reply line (got %r)" % (what, got))
    return got


c = socket.create_connection((host, port), timeout=10)
f = c.makefile("rb")
if kind == "proxy":
    c.sendall(b"PROXY TCP4 192.0.2.1 127.0.0.1 56324 443\r\n")
    hello = line(f, "greeting")
    if b"192.0.2.1:56324" not in hello:
        sys.exit("the greeting does not name the PROXY header's client: %r" % hello)
c.sendall(b"hello pants\n")
deadline = time.time() + 10
while b"hello pants" not in line(f, "echo"):
    if time.time() > deadline:
        sys.exit("hello pants never came back")
if kind == "proxy":
    os.kill(pid, signal.SIGTERM)
    deadline = time.time() + 10
    while True:  # new clients are refused once it stopped listening
        try:
            n = socket.create_connection((host, port), timeout=2)
            n.close()
        except ConnectionRefusedError:
            break
        except ConnectionResetError:
            pass  # queued on a listener as it closed: the kernel resets those
        if time.time() > deadline:
            sys.exit("still accepting connections 10 s after SIGTERM")
        time.sleep(0.05)
    c.sendall(b"still there\n")
    if b"still there" not in line(f, "echo while draining"):
        sys.exit("the open connection was not served while draining")
c.close()
EOF

# start NAME ARGS...: run server NAME in the background; sets $pid and
# $addr (what it printed after "listening on "), or fails.
start() {
    s_name=$1
    shift
    : >"$dir/$s_name.out"
    "$dir/$s_name" "$@" >"$dir/$s_name.out" 2>"$dir/$s_name.err" &
    pid=$!
    pids="$pids $pid"
    addr=""
    for _ in $(seq 1 200); do
        addr=$(sed -n 's/^listening on //p' "$dir/$s_name.out" | head -n 1)
        [ -n "$addr" ] && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "$s_name printed no address: $(cat "$dir/$s_name.err")"
    return 1
}

# finish NAME: SIGTERM to $pid (unless it is gone), wait at most
# $run_limit s; 0 if it exited 0.
finish() {
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 $((run_limit * 10))); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -9 "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        echo "$1 did not exit within ${run_limit} s of SIGTERM"
        return 1
    fi
    wait "$pid"
    rc=$?
    [ "$rc" -eq 0 ] && return 0
    echo "$1 exited $rc: $(cat "$dir/$1.err")"
    return 1
}

# run_alone NAME ARGS...: 0 if it exits 0 within the limit.
run_alone() {
    a_name=$1
    shift
    timeout -k 5 "$run_limit" "$dir/$a_name" "$@" >"$dir/$a_name.out" 2>"$dir/$a_name.err"
    rc=$?
    [ "$rc" -eq 0 ] && return 0
    [ "$rc" -eq 124 ] && echo "$a_name did not end within ${run_limit} s" && return 1
    echo "$a_name exited $rc: $(cat "$dir/$a_name.out" "$dir/$a_name.err")"
    return 1
}

# run_served NAME KIND: serve NAME, drive it, SIGTERM it.
run_served() {
    start "$1" 127.0.0.1:0 || return 1
    if ! out=$(timeout 60 python3 "$dir/drive.py" "$2" "$addr" "$pid" 2>&1); then
        echo "$1 ($2 client): $out"
        kill -9 "$pid" 2>/dev/null
        return 1
    fi
    finish "$1"
}

# run_client NAME SERVER ARGS...: NAME against a fresh SERVER.
run_client() {
    c_name=$1 c_server=$2
    shift 2
    start "$c_server" 127.0.0.1:0 || return 1
    c_pid=$pid
    run_alone "$c_name" "$addr" "$@"
    c_rc=$?
    pid=$c_pid
    finish "$c_server" || c_rc=1
    return $c_rc
}

# ---- Each block -----------------------------------------------------------

while read -r kind name rest; do
    if [ "$kind" = fragment ]; then
        names=$(unknown_names "$dir/fragment-$name.c" | tr '\n' ' ')
        [ -z "$names" ] || fail "guide: the fragment of $rest uses names pants.h does not declare: $names"
        continue
    fi
    run="" serve="" client="" cert="" openssl=""
    for word in $rest; do
        case $word in
        run) run=yes ;;
        serve=tcp | serve=proxy) serve=${word#serve=} ;;
        client=*) client=${word#client=} ;;
        cert) cert=yes ;;
        openssl) openssl=openssl ;;
        *) fail "guide: $name: unknown word '$word'" && continue 2 ;;
        esac
    done
    if [ -n "$openssl" ] && [ "$have_tls" != yes ]; then
        echo "ok: $name not compiled (a build without OpenSSL)"
        continue
    fi
    if ! compile "$name" $openssl; then
        fail "$name does not compile:"
        sed 's/^/    /' "$dir/$name.build"
        continue
    fi
    args=""
    if [ -n "$cert" ]; then
        if [ "$have_tls" != yes ]; then
            echo "ok: $name compiled (not run: a build without OpenSSL)"
            continue
        fi
        if ! make_cert; then
            echo "ok: $name compiled (not run: no openssl command to make a certificate)"
            continue
        fi
        args="$cert_dir/cert.pem $cert_dir/key.pem"
    fi
    if [ -n "$serve" ] && ! command -v python3 >/dev/null 2>&1; then
        echo "ok: $name compiled (not run: no python3 to drive it)"
        continue
    fi
    if [ -n "$client" ] && [ ! -x "$dir/$client" ]; then
        fail "$name: its server $client is not a program built before it"
        continue
    fi
    # shellcheck disable=SC2086 # args is a list of paths without spaces
    if [ -n "$serve" ]; then
        run_served "$name" "$serve"
    elif [ -n "$client" ]; then
        run_client "$name" "$client" $args
    elif [ -n "$run" ]; then
        run_alone "$name" $args
    else
        true
    fi >"$dir/$name.why" 2>&1
    if [ $? -ne 0 ]; then
        fail "$name compiled but its run failed:"
        sed 's/^/    /' "$dir/$name.why"
    elif [ -n "$serve$client$run" ]; then
        echo "ok: $name compiled, ran"
    else
        echo "ok: $name compiled"
    fi
done <"$dir/manifest"

exit $status
