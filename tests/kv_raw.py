"""kv_raw.py -- examples/kv over raw sockets: exact reply bytes.

    python3 tests/kv_raw.py HOST:PORT [REDIS_ADDRESS]

Each case sends request bytes and checks the reply bytes: every command
in its array and its inline form, the errors as Redis words them,
pipelines cut at odd places, and protocol errors (each of which must get
its "-ERR Protocol error: ..." and then the connection closed), a
pipeline sent a byte at a time, 1 MiB values, and expiry (lazy, and the
sweep).  With a second address (a real redis-server 7 started with
--databases 1, as HOST:PORT or unix:PATH), each case also runs against
it and the bytes must be the same.  Prints what it checked; exits 1 on a
mismatch.  Every socket operation times out after 5 s.
"""
import socket
import sys
import time

TIMEOUT = 5


def connect(addr):
    """HOST:PORT, or unix:PATH."""
    if addr.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(TIMEOUT)
        s.connect(addr[5:])
        return s
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=TIMEOUT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


class Replies:
    """Reads whole RESP2 replies off a socket, bytes as they came."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def line(self, at):
        while True:
            end = self.buf.find(b"\r\n", at)
            if end >= 0:
                return end
            self.fill()

    def reply_end(self, at):
        end = self.line(at)
        kind, head = self.buf[at:at + 1], self.buf[at + 1:end]
        at = end + 2
        if kind == b"$" and int(head) >= 0:
            while len(self.buf) < at + int(head) + 2:
                self.fill()
            return at + int(head) + 2
        if kind == b"*":
            for _ in range(max(int(head), 0)):
                at = self.reply_end(at)
        return at

    def one(self):
        end = self.reply_end(0)
        reply, self.buf = self.buf[:end], self.buf[end:]
        return reply

    def closed(self):
        """True once the peer has closed (after what it sent)."""
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self.buf += data
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False


def cmd(*args):
    """A request in the multibulk form."""
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


# (request, expected reply)
CASES = [
    (cmd("FLUSHALL"), b"+OK\r\n"),
    (cmd("PING"), b"+PONG\r\n"),
    (cmd("ping", "hi"), b"$2\r\nhi\r\n"),
    (cmd("PING", "a", "b"), b"-ERR wrong number of arguments for 'ping' command\r\n"),
    (cmd("ECHO", "hello world"), b"$11\r\nhello world\r\n"),
    (cmd("ECHO"), b"-ERR wrong number of arguments for 'echo' command\r\n"),
    (cmd("SELECT", "0"), b"+OK\r\n"),
    (cmd("SELECT", "1"), b"-ERR DB index is out of range\r\n"),
    (cmd("SELECT", "x"), b"-ERR value is not an integer or out of range\r\n"),
    (cmd("GET", "k"), b"$-1\r\n"),
    (cmd("GET"), b"-ERR wrong number of arguments for 'get' command\r\n"),
    (cmd("GET", "a", "b"), b"-ERR wrong number of arguments for 'get' command\r\n"),
    (cmd("SET", "k", "v"), b"+OK\r\n"),
    (cmd("GET", "k"), b"$1\r\nv\r\n"),
    (cmd("SET", "k", ""), b"+OK\r\n"),
    (cmd("GET", "k"), b"$0\r\n\r\n"),
    (cmd("SET", "k"), b"-ERR wrong number of arguments for 'set' command\r\n"),
    (cmd("SET", "k", "v", "NX"), b"$-1\r\n"),
    (cmd("SET", "k", "v2", "XX"), b"+OK\r\n"),
    (cmd("SET", "nk", "v", "XX"), b"$-1\r\n"),
    (cmd("SET", "nk", "v", "nx"), b"+OK\r\n"),
    (cmd("SET", "k", "v", "NX", "XX"), b"-ERR syntax error\r\n"),
    (cmd("SET", "k", "v", "EX"), b"-ERR syntax error\r\n"),
    (cmd("SET", "k", "v", "EX", "10", "PX", "100"), b"-ERR syntax error\r\n"),
    (cmd("SET", "k", "v", "FOO"), b"-ERR syntax error\r\n"),
    (cmd("SET", "k", "v", "EX", "abc"), b"-ERR value is not an integer or out of range\r\n"),
    (cmd("SET", "k", "v", "EX", "0"), b"-ERR invalid expire time in 'set' command\r\n"),
    (cmd("SET", "k", "v", "PX", "-5"), b"-ERR invalid expire time in 'set' command\r\n"),
    (cmd("SET", "k", "v", "EX", "9223372036854775807"),
     b"-ERR invalid expire time in 'set' command\r\n"),
    (cmd("SET", "k", "v", "EX", "100"), b"+OK\r\n"),
    (cmd("TTL", "k"), b":100\r\n"),
    (cmd("SET", "k", "v2", "KEEPTTL"), b"+OK\r\n"),
    (cmd("TTL", "k"), b":100\r\n"),
    (cmd("SET", "k", "v3"), b"+OK\r\n"),
    (cmd("TTL", "k"), b":-1\r\n"),
    (cmd("SET", "k", "v4", "GET"), b"$2\r\nv3\r\n"),
    (cmd("SET", "k", "v", "PX", "100000"), b"+OK\r\n"),
    (cmd("TTL", "k"), b":100\r\n"),
    (cmd("TTL", "nokey"), b":-2\r\n"),
    (cmd("TTL"), b"-ERR wrong number of arguments for 'ttl' command\r\n"),
    (cmd("DEL", "k", "nk", "none"), b":2\r\n"),
    (cmd("DEL"), b"-ERR wrong number of arguments for 'del' command\r\n"),
    (cmd("EXISTS", "k"), b":0\r\n"),
    (cmd("SET", "n", "10"), b"+OK\r\n"),
    (cmd("EXISTS", "n", "n", "x"), b":2\r\n"),
    (cmd("INCR", "n"), b":11\r\n"),
    (cmd("DECR", "n"), b":10\r\n"),
    (cmd("INCRBY", "n", "-15"), b":-5\r\n"),
    (cmd("DECRBY", "n", "5"), b":-10\r\n"),
    (cmd("INCRBY", "n", "x"), b"-ERR value is not an integer or out of range\r\n"),
    (cmd("INCR", "new"), b":1\r\n"),
    (cmd("SET", "s", "abc"), b"+OK\r\n"),
    (cmd("INCR", "s"), b"-ERR value is not an integer or out of range\r\n"),
    (cmd("SET", "s", " 1"), b"+OK\r\n"),
    (cmd("INCR", "s"), b"-ERR value is not an integer or out of range\r\n"),
    (cmd("SET", "s", "9223372036854775807"), b"+OK\r\n"),
    (cmd("INCR", "s"), b"-ERR increment or decrement would overflow\r\n"),
    (cmd("INCR"), b"-ERR wrong number of arguments for 'incr' command\r\n"),
    (cmd("INCRBY", "s"), b"-ERR wrong number of arguments for 'incrby' command\r\n"),
    (cmd("MSET", "a", "1", "b", "2"), b"+OK\r\n"),
    (cmd("MSET", "a", "1", "b"), b"-ERR wrong number of arguments for 'mset' command\r\n"),
    (cmd("MGET", "a", "zz", "b"), b"*3\r\n$1\r\n1\r\n$-1\r\n$1\r\n2\r\n"),
    (cmd("MGET"), b"-ERR wrong number of arguments for 'mget' command\r\n"),
    (cmd("EXPIRE", "a", "100"), b":1\r\n"),
    (cmd("TTL", "a"), b":100\r\n"),
    (cmd("EXPIRE", "a", "200", "NX"), b":0\r\n"),
    (cmd("EXPIRE", "a", "200", "GT"), b":1\r\n"),
    (cmd("EXPIRE", "a", "50", "LT"), b":1\r\n"),
    (cmd("EXPIRE", "a", "50", "NX", "XX"),
     b"-ERR NX and XX, GT or LT options at the same time are not compatible\r\n"),
    (cmd("EXPIRE", "a", "50", "GT", "LT"),
     b"-ERR GT and LT options at the same time are not compatible\r\n"),
    (cmd("EXPIRE", "a", "50", "YY"), b"-ERR Unsupported option YY\r\n"),
    (cmd("EXPIRE", "a", "x"), b"-ERR value is not an integer or out of range\r\n"),
    (cmd("EXPIRE", "nokey", "10"), b":0\r\n"),
    (cmd("EXPIRE", "a", "-1"), b":1\r\n"),
    (cmd("EXISTS", "a"), b":0\r\n"),
    (cmd("EXPIRE", "b"), b"-ERR wrong number of arguments for 'expire' command\r\n"),
    (cmd("EXPIRE", "b", "9223372036854775807"),
     b"-ERR invalid expire time in 'expire' command\r\n"),
    (cmd("DBSIZE"), b":4\r\n"),
    (cmd("DBSIZE", "x"), b"-ERR wrong number of arguments for 'dbsize' command\r\n"),
    (cmd("FLUSHALL", "x"), b"-ERR syntax error\r\n"),
    (cmd("FLUSHALL", "ASYNC"), b"+OK\r\n"),
    (cmd("DBSIZE"), b":0\r\n"),
    (cmd("CONFIG", "GET", "save"), b"*2\r\n$4\r\nsave\r\n$0\r\n\r\n"),
    (cmd("CONFIG", "GET", "appendonly"), b"*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n"),
    (cmd("CONFIG", "GET", "nosuchparam"), b"*0\r\n"),
    (cmd("CONFIG"), b"-ERR wrong number of arguments for 'config' command\r\n"),
    (cmd("CONFIG", "GET"), b"-ERR wrong number of arguments for 'config|get' command\r\n"),
    (cmd("CONFIG", "FOO"), b"-ERR unknown subcommand 'FOO'. Try CONFIG HELP.\r\n"),
    (cmd("COMMAND", "FOO"), b"-ERR unknown subcommand 'FOO'. Try COMMAND HELP.\r\n"),
    (cmd("COMMAND", "COUNT", "x"),
     b"-ERR wrong number of arguments for 'command|count' command\r\n"),
    (cmd("FOO"), b"-ERR unknown command 'FOO', with args beginning with: \r\n"),
    (cmd("foo", "a", "b c"), b"-ERR unknown command 'foo', with args beginning with: 'a' 'b c' \r\n"),
    (cmd("foo", "x" * 200), b"-ERR unknown command 'foo', with args beginning with: '" + b"x" * 128 +
     b"' \r\n"),
    (cmd("foo", "a\r\nb"), b"-ERR unknown command 'foo', with args beginning with: 'a  b' \r\n"),
    # inline commands
    (b"PING\r\n", b"+PONG\r\n"),
    (b"SET il \"a b\\x41\\n\"\r\n", b"+OK\r\n"),
    (b"GET il\n", b"$5\r\na bA\n\r\n"),
    (b"  SET  il2   'it\\'s'\r\n", b"+OK\r\n"),
    (b"GET il2\r\n", b"$4\r\nit's\r\n"),
    (b"\r\n\r\nECHO 'x y'\r\n", b"$3\r\nx y\r\n"),
    (b"*0\r\n*-1\r\nPING\r\n", b"+PONG\r\n"),
    # pipelines, bulk strings holding protocol bytes
    (cmd("SET", "p", "*1\r\n$4\r\n") + cmd("GET", "p") + cmd("DEL", "p"),
     b"+OK\r\n$8\r\n*1\r\n$4\r\n\r\n:1\r\n"),
    (b"".join(cmd("INCR", "pc") for _ in range(100)), b"".join(b":%d\r\n" % i for i in range(1, 101))),
    (cmd("QUIT"), b"+OK\r\n"),
]

# (request, expected reply before the connection closes)
PROTOCOL_ERRORS = [
    (b"*abc\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
    (b"*1048577\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
    (b"*1\r\n$-1\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
    (b"*1\r\n$abc\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
    (b"*1\r\n$999999999999\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
    (b"*1\r\n$67108865\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
    (b"*1\r\nPING\r\n", b"-ERR Protocol error: expected '$', got 'P'\r\n"),
    (b"*1\r\n$4\r\nPINGxx", b"-ERR Protocol error: bulk data not followed by CRLF\r\n"),
    (b"*1" + b"1" * 70000, b"-ERR Protocol error: too big mbulk count string\r\n"),
    (b"*1\r\n$" + b"1" * 70000, b"-ERR Protocol error: too big bulk count string\r\n"),
    (b"PING " + b"x" * 70000, b"-ERR Protocol error: too big inline request\r\n"),
    (b"ECHO \"abc\r\n", b"-ERR Protocol error: unbalanced quotes in request\r\n"),
    (cmd("PING") + b"*x\r\n" + cmd("PING"), b"+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n"),
]


def run_cases(addr, cases, compare=None):
    """Each case on one connection, in order; returns the failures."""
    fails = []
    socks = [Replies(connect(a)) for a in [addr] + ([compare] if compare else [])]
    for req, want in cases:
        got = []
        for r in socks:
            r.sock.sendall(req)
            got.append(read_like(r, want))
        if got[0] != want:
            fails.append("%r: got %r, want %r" % (req[:80], got[0], want))
        if compare and got[1] != got[0]:
            fails.append("%r: kv %r, redis-server %r" % (req[:80], got[0], got[1]))
    return fails


def read_like(r, want):
    """As many whole replies as want holds."""
    probe = Replies(None)
    probe.buf = want
    count = 0
    while probe.buf:
        probe.one()
        count += 1
    return b"".join(r.one() for _ in range(count))


def check_error(addr, req, want):
    """req gets want, then the connection is closed; "" or what went wrong."""
    r = Replies(connect(addr))
    r.sock.sendall(req)
    got = read_like(r, want)
    if got != want:
        return "%r: got %r, want %r" % (req[:40], got, want)
    if not r.closed():
        return "%r: the connection stayed open" % req[:40]
    return ""


def check_split(addr):
    """A pipeline sent a byte at a time gets the same replies."""
    req = cmd("SET", "sp", "x" * 300) + b"GET sp\r\n" + cmd("APPEND?") + cmd("DEL", "sp")
    want = (b"+OK\r\n$300\r\n" + b"x" * 300 + b"\r\n" +
            b"-ERR unknown command 'APPEND?', with args beginning with: \r\n:1\r\n")
    r = Replies(connect(addr))
    for i in range(len(req)):
        r.sock.sendall(req[i:i + 1])
        if i % 97 == 0:
            time.sleep(0.001)
    got = read_like(r, want)
    return "" if got == want else "split pipeline: got %r" % got[:100]


def check_large(addr):
    """A 1 MiB value in and out; then 64 pipelined GETs of it and a DEL,
    read only after a pause: kv stops reading the client while its replies
    pile up, and serves the rest, in order, once they drain."""
    val = bytes(range(256)) * 4096
    r = Replies(connect(addr))
    r.sock.sendall(cmd("SET", "big", val))
    if r.one() != b"+OK\r\n":
        return "SET of 1 MiB failed"
    r.sock.sendall(cmd("GET", "big") * 64 + cmd("DEL", "big"))
    time.sleep(0.3)
    want = b"$%d\r\n%s\r\n" % (len(val), val)
    for i in range(64):
        if r.one() != want:
            return "GET %d of 1 MiB came back wrong" % i
    return "" if r.one() == b":1\r\n" else "DEL big failed"


def check_expiry(addr):
    """A PX 400 key is there at once and gone 700 ms later; 500 PX 1 keys
    nobody asks for again are removed by the sweep (DBSIZE 0)."""
    r = Replies(connect(addr))
    r.sock.sendall(cmd("FLUSHALL") + cmd("SET", "e1", "v", "PX", "400") + cmd("GET", "e1") +
                   b"".join(cmd("SET", "sw%d" % i, "v", "PX", "1") for i in range(500)))
    replies = [r.one() for _ in range(503)]
    if replies[2] != b"$1\r\nv\r\n":
        return "e1 expired too early: %r" % replies[2]
    time.sleep(0.7)
    r.sock.sendall(cmd("DBSIZE") + cmd("GET", "e1") + cmd("PTTL", "e1"))
    size, got, pttl = r.one(), r.one(), r.one()
    if got != b"$-1\r\n" or pttl != b":-2\r\n":
        return "e1 did not expire: %r %r" % (got, pttl)
    return "" if size == b":0\r\n" else "the sweep left keys: DBSIZE %r" % size


def guarded(what, fn, *args):
    """fn(*args) as a list of failures; an exception is one too."""
    try:
        out = fn(*args)
        return out if isinstance(out, list) else [out]
    except (OSError, EOFError, ValueError) as e:
        return ["%s: %s: %s" % (what, type(e).__name__, e)]


def main():
    addr = sys.argv[1]
    compare = sys.argv[2] if len(sys.argv) > 2 else None
    fails = guarded("cases", run_cases, addr, CASES, compare)
    for req, want in PROTOCOL_ERRORS:
        fails += guarded(repr(req[:40]), check_error, addr, req, want)
    for check in (check_split, check_large, check_expiry):
        fails += guarded(check.__name__, check, addr)
    fails = [f for f in fails if f]
    for f in fails:
        print("FAIL:", f)
    if fails:
        sys.exit(1)
    print("%d cases%s, %d protocol errors, a split pipeline, 1 MiB values, expiry" %
          (len(CASES), " (same bytes as redis-server)" if compare else "", len(PROTOCOL_ERRORS)))


if __name__ == "__main__":
    main()
