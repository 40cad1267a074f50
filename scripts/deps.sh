#!/bin/sh
# deps.sh -- install what building and testing pants needs, if missing.
# Debian/Ubuntu: uses apt-get (as root, or through sudo when available).
#
#   scripts/deps.sh [--fuzz] [--peers] [--docs] [--charts]
#
# --fuzz, or PANTS_FUZZ=1 in the environment (so that
# `PANTS_FUZZ=1 CC=clang scripts/build --dir build-fuzz --enable-fuzz`
# passes it on), adds clang and its runtimes (libclang-rt-dev: libFuzzer
# and the sanitizers) for the fuzz targets (tests/fuzz/README).
#
# --peers, or PANTS_PEERS=1, adds the servers and clients that tests and
# the bench run pants against: nginx-light, redis-server, redis-tools,
# wrk, haproxy, curl, python3-redis, and gnuplot for the bench charts.
# Their packages may start them as services; nothing here relies on that
# (tests and the bench start their own, on ports the kernel picks).
#
# --docs, or PANTS_DOCS=1, adds doxygen and man-db (make docs).
#
# --charts adds gnuplot-nox alone (bench/run draws its charts with it).
set -eu

pkgs="gcc make autoconf automake libtool pkg-config libevent-dev check libpcre2-dev libssl-dev openssl"
fuzz=${PANTS_FUZZ:-0}
peers=${PANTS_PEERS:-0}
docs=${PANTS_DOCS:-0}
charts=0
for a in "$@"; do
    case $a in
    --fuzz) fuzz=1 ;;
    --peers) peers=1 ;;
    --docs) docs=1 ;;
    --charts) charts=1 ;;
    *) echo "usage: deps.sh [--fuzz] [--peers] [--docs] [--charts]" >&2; exit 2 ;;
    esac
done
[ "$fuzz" = 0 ] || pkgs="$pkgs clang libclang-rt-dev"
[ "$peers" = 0 ] || pkgs="$pkgs nginx-light redis-server redis-tools wrk haproxy curl python3 python3-redis gnuplot-nox"
[ "$docs" = 0 ] || pkgs="$pkgs doxygen man-db"
[ "$charts" = 0 ] || pkgs="$pkgs gnuplot-nox"

need=""
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }
for p in $pkgs; do
    have_pkg "$p" || need="$need $p"
done
[ -z "$need" ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "deps.sh: missing:$need -- install them with your package manager" >&2
    exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "deps.sh: installing:$need"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $need >/dev/null
