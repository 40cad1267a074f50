#!/usr/bin/env python3
"""deploy/probe.py -- the small network chores of deploy/run.

  probe.py ports N                  N free TCP ports on 127.0.0.1, below 32768
  probe.py stat SOCK                one line per server: name status 2xx retries redispatches
  probe.py wait-up SOCK N SECONDS   until N servers are UP (exit 1 if not in time)
  probe.py watch-down SOCK SERVER SECONDS READY
                                    polls every 5 ms; once SERVER is seen UP, makes the
                                    file READY; when it leaves UP, prints the time (epoch
                                    microseconds) of that poll; exit 1 if it never does
  probe.py client ADDR PORT COUNT   COUNT GETs of /plaintext on one keep-alive
                                    connection from 127.0.0.1:PORT; exit 1 unless all 200

SOCK is HAProxy's stats socket (the "show stat" CSV).  The ports are taken
below Linux's ephemeral range (32768-60999): no outgoing connection of
HAProxy or wrk can ever have one as its source port, and a backend that
restarts finds its port still free.
"""
import random
import socket
import sys
import time


def ports(n):
    """n distinct ports that were free for a listener a moment ago."""
    got = []
    while len(got) < n:
        p = random.randint(20000, 32767)
        if p in got:
            continue
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
            got.append(p)
        except OSError:
            pass
        finally:
            s.close()
    print(" ".join(map(str, got)))


def show_stat(sock):
    """{server name: {column: value}} for every server of every backend."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(sock)
    s.sendall(b"show stat\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    lines = data.decode().splitlines()
    cols = lines[0].lstrip("# ").split(",")
    out = {}
    for line in lines[1:]:
        row = dict(zip(cols, line.split(",")))
        if row.get("svname") not in (None, "FRONTEND", "BACKEND"):
            out[row["svname"]] = row
    return out


def stat(sock):
    for name, r in show_stat(sock).items():
        print(name, r["status"], r["hrsp_2xx"], r["wretr"], r["wredis"])


def wait_up(sock, n, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            if sum(r["status"] == "UP" for r in show_stat(sock).values()) >= n:
                return 0
        except OSError:
            pass  # HAProxy not listening yet
        time.sleep(0.05)
    return 1


def watch_down(sock, server, seconds, ready):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        status = show_stat(sock)[server]["status"]
        if not status.startswith("UP"):  # "UP", or "UP 1/2" after one failed check
            print(time.time_ns() // 1000)
            return 0
        if ready is not None:
            open(ready, "w").close()
            ready = None
        time.sleep(0.005)
    return 1


def client(addr, port, count):
    host, _, hport = addr.rpartition(":")
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.settimeout(10)
    s.connect((host, int(hport)))
    f = s.makefile("rb")
    for _ in range(count):
        s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: deploy\r\n\r\n")
        status = f.readline().split()[1]
        length = 0
        while True:
            line = f.readline()
            if line in (b"\r\n", b""):
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        f.read(length)
        if status != b"200":
            print("probe: got", status.decode(), file=sys.stderr)
            return 1
    s.close()
    return 0


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "ports":
        return ports(int(args[0]))
    if cmd == "stat":
        return stat(args[0])
    if cmd == "wait-up":
        return wait_up(args[0], int(args[1]), float(args[2]))
    if cmd == "watch-down":
        return watch_down(args[0], args[1], float(args[2]), args[3])
    if cmd == "client":
        return client(args[0], int(args[1]), int(args[2]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv) or 0)
