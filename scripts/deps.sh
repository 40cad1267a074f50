#!/bin/sh
# deps.sh -- install what building and testing pants needs, if missing.
# Debian/Ubuntu: uses apt-get (as root, or through sudo when available).
set -eu

need=""
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }
for p in gcc make autoconf automake libtool pkg-config libevent-dev check libpcre2-dev libssl-dev openssl; do
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
