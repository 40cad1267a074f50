"""http_test.py -- raw-socket checks of examples/http, run by tests/http.sh.

    python3 http_test.py CASE ADDR [ARGS...]

Each case talks to the server at ADDR ("127.0.0.1:PORT") over plain
sockets, so that nothing is normalised on the way (a client library would
fix "/../" or refuse a malformed head), checks every reply, prints one
line on success and exits 0; a failed check exits 1 with the reason.
Every socket has a timeout, so no case waits forever.
"""

import http.client
import os
import signal
import socket
import sys
import time

TIMEOUT = 10


def connect(addr, timeout=TIMEOUT):
    host, port = addr.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=timeout)


class Conn:
    """A connection and the bytes received on it but not parsed yet."""

    def __init__(self, addr, timeout=TIMEOUT):
        self.sock = connect(addr, timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def _more(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def _take(self, n):
        while len(self.buf) < n:
            self._more()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def response(self, head=False):
        """(status, headers with lower-case names, body) of the next reply."""
        while b"\r\n\r\n" not in self.buf:
            self._more()
        raw, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = raw.decode("latin-1").split("\r\n")
        version, status = lines[0].split(" ")[:2]
        assert version == "HTTP/1.1", "status line %r" % lines[0]
        headers = {}
        for line in lines[1:]:
            name, value = line.split(":", 1)
            assert name.lower() not in headers, "header %s twice" % name
            headers[name.lower()] = value.strip()
        status = int(status)
        if status == 100:
            return self.response(head)
        length = 0 if head or status == 304 else int(headers.get("content-length", "0"))
        return status, headers, self._take(length)

    def closed(self, wait=5.0):
        """True if the server closes the connection within wait seconds
        (with no more bytes before that)."""
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True
        finally:
            self.sock.settimeout(TIMEOUT)
        assert not data, "bytes after the reply: %r" % data[:200]
        return True

    def close(self):
        self.sock.close()


def get(path, extra=b"", method=b"GET", version=b"HTTP/1.1"):
    return method + b" " + path + b" " + version + b"\r\nHost: test\r\n" + extra + b"\r\n"


def expect_status(addr, request, status, close=True, head=False):
    """Send request on a new connection: the reply has this status, says
    Connection: close and the connection ends (close), or stays open."""
    c = Conn(addr)
    c.send(request)
    got, headers, body = c.response(head)
    assert got == status, "%r: status %d, wanted %d (%r)" % (request[:80], got, status, body[:100])
    if close:
        assert headers.get("connection") == "close", "%r: no Connection: close" % request[:80]
        assert c.closed(), "%r: the connection stayed open after %d" % (request[:80], status)
    else:
        c.send(get(b"/plaintext"))
        assert c.response()[0] == 200, "%r: the connection broke after %d" % (request[:80], status)
    c.close()
    return headers, body


# ---- The cases -----------------------------------------------------------


def case_statuses(addr, max_body, max_head):
    """400, 413, 431, 501, 505, 404, 405 over raw sockets."""
    max_body, max_head = int(max_body), int(max_head)
    bad = [
        b"GET / HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\nX-Bare: lf\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",  # no Host
        b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
        b"GET /\r\n\r\n",  # HTTP/0.9
        b"GET / FTP/1.1\r\nHost: x\r\n\r\n",
        b"GET \x01 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY",
    ]
    for request in bad:
        expect_status(addr, request, 400)
    expect_status(addr, b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501)
    expect_status(addr, b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505)
    expect_status(addr, b"GET / HTTP/1.2\r\nHost: x\r\n\r\n", 505)
    big = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (max_body + 1)
    expect_status(addr, big, 413)
    chunked = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunk = b"%x\r\n%s\r\n" % (max_body // 2 + 1, b"a" * (max_body // 2 + 1))
    expect_status(addr, chunked + chunk + chunk, 413)
    huge = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (2 * max_head) + b"\r\n\r\n"
    expect_status(addr, huge, 431)  # whole in one read
    expect_status(addr, huge[:-4], 431)  # never finished: the read limit
    expect_status(addr, get(b"/nope"), 404, close=False)
    expect_status(addr, get(b"/plaintext", method=b"POST"), 405, close=False)
    headers, _ = expect_status(addr, get(b"/plaintext", method=b"DELETE"), 405, close=False)
    assert headers.get("allow") == "GET, HEAD", headers
    # a body that fits is read and the connection goes on
    body = b"x" * max_body
    c = Conn(addr)
    c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    status, _, got = c.response()
    assert status == 200 and got == body, "a body of --max-body bytes: %d" % status
    c.send(get(b"/json"))
    assert c.response()[0] == 200
    c.close()
    print("%d kinds of 400, 501, two 505, 413 (length and chunks), 431, 404, 405" % len(bad))


def case_timeout(addr, header_ms):
    """408: a head not finished within --header-timeout; not before it."""
    header_ms = int(header_ms)
    c = Conn(addr)
    start = time.monotonic()
    c.send(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n")
    status, headers, _ = c.response()
    took = (time.monotonic() - start) * 1000
    assert status == 408, "status %d" % status
    assert headers.get("connection") == "close"
    assert c.closed(), "still open after 408"
    assert took >= header_ms - 5, "408 after %.0f ms, before the %d ms timeout" % (took, header_ms)
    # a whole head sent slowly but in time is answered
    c = Conn(addr)
    for piece in (b"GET /plain", b"text HTTP/1.1\r\n", b"Host: x\r\n\r\n"):
        c.send(piece)
        time.sleep(header_ms / 5000)
    assert c.response()[0] == 200
    # a body may take longer than the timeout as long as it keeps coming
    c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n")
    for piece in (b"sl", b"ow", b"ly"):
        time.sleep(header_ms / 2000)
        c.send(piece)
    assert c.response()[2] == b"slowly", "a slow body"
    c.send(get(b"/plaintext"))
    assert c.response()[0] == 200
    # one that stalls gets a 408
    c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nst")
    start = time.monotonic()
    status, headers, _ = c.response()
    stalled = (time.monotonic() - start) * 1000
    assert status == 408 and c.closed(), "a stalled body: %d" % status
    print("408 after %.0f ms (timeout %d ms), a slow head in time and a slow body served, "
          "a stalled body 408 after %.0f ms" % (took, header_ms, stalled))


def case_pipeline(addr):
    """Several requests in one send: every reply, in order."""
    reqs = [
        (get(b"/plaintext"), 200, b"Hello, World!", False),
        (get(b"/json"), 200, b'{"message":"Hello, World!"}', False),
        (get(b"/nope"), 404, b"Not Found\n", False),
        (get(b"/plaintext", method=b"HEAD"), 200, b"", True),
        (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nfirst", 200, b"first", False),
        (
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nsec\r\n3;ext=1\r\nond\r\n0\r\nX-Trailer: t\r\n\r\n",
            200,
            b"second",
            False,
        ),
        (get(b"/json"), 200, b'{"message":"Hello, World!"}', False),
    ]
    batch = b"".join(r[0] for r in reqs) * 3
    c = Conn(addr)
    c.send(batch)
    for i, (req, status, body, head) in enumerate(reqs * 3):
        got = c.response(head)
        assert got[0] == status and got[2] == body, "reply %d: %r, wanted %d %r" % (i, got, status, body)
    # 100 small requests in one send: all answered, in one go
    c.send(get(b"/plaintext") * 100)
    for i in range(100):
        assert c.response()[2] == b"Hello, World!", "reply %d" % i
    c.close()
    print("%d mixed requests (HEAD, bodies, chunks) and 100 plaintext in single sends, in order"
          % (3 * len(reqs)))


def case_connection(addr):
    """Connection: close, HTTP/1.0 with and without keep-alive, HEAD."""
    c = Conn(addr)
    c.send(get(b"/plaintext", extra=b"Connection: close\r\n"))
    status, headers, body = c.response()
    assert status == 200 and headers.get("connection") == "close" and c.closed(), headers
    c = Conn(addr)
    c.send(b"GET /plaintext HTTP/1.0\r\n\r\n")
    status, headers, body = c.response()
    assert status == 200 and body == b"Hello, World!" and c.closed(), "HTTP/1.0 not closed"
    c = Conn(addr)
    c.send(b"GET /json HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    status, headers, body = c.response()
    assert headers.get("connection") == "keep-alive", headers
    c.send(b"GET /plaintext HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
    assert c.response()[0] == 200
    c.send(b"HEAD /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body = c.response(head=True)
    assert headers["content-length"] == "13" and body == b"", headers
    assert headers["content-type"] == "text/plain" and headers["server"] and headers["date"]
    assert not c.closed(0.2), "closed after a keep-alive HEAD"
    print("Connection: close, HTTP/1.0 closes, HTTP/1.0 keep-alive stays, HEAD has the length")


def case_chunked(addr, max_body):
    """A chunked body with http.client and by hand; Expect: 100-continue."""
    host, port = addr.rsplit(":", 1)
    hc = http.client.HTTPConnection(host, int(port), timeout=TIMEOUT)
    parts = [b"a" * 1000, b"b" * 10, b"c" * 3000]
    hc.request("POST", "/echo", body=iter(parts), encode_chunked=True,
               headers={"Transfer-Encoding": "chunked"})
    r = hc.getresponse()
    got = r.read()
    assert r.status == 200 and got == b"".join(parts), (r.status, len(got))
    hc.request("POST", "/echo", body=b"plain body")
    r = hc.getresponse()
    assert r.read() == b"plain body"
    hc.close()
    c = Conn(addr)
    c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
    c.sock.settimeout(5)
    interim = c.sock.recv(100)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n", interim
    c.send(b"ping")
    assert c.response()[2] == b"ping"
    print("chunked body through http.client, Content-Length body, 100 Continue")


def case_files(addr, root):
    """GET, HEAD, Range, If-Modified-Since, index.html, 404 under --root."""
    content = open(os.path.join(root, "hello.txt"), "rb").read()
    size = len(content)
    c = Conn(addr)
    c.send(get(b"/hello.txt"))
    status, h, body = c.response()
    assert status == 200 and body == content, (status, body)
    assert h["content-type"].startswith("text/plain") and h["accept-ranges"] == "bytes", h
    modified = h["last-modified"]
    c.send(get(b"/hello.txt", method=b"HEAD"))
    status, h2, body = c.response(head=True)
    assert status == 200 and h2["content-length"] == str(size) and body == b"", h2
    ranges = [
        (b"bytes=0-4", content[0:5], "bytes 0-4/%d" % size),
        (b"bytes=6-", content[6:], "bytes 6-%d/%d" % (size - 1, size)),
        (b"bytes=-3", content[-3:], "bytes %d-%d/%d" % (size - 3, size - 1, size)),
        (b"bytes=2-100000", content[2:], "bytes 2-%d/%d" % (size - 1, size)),
    ]
    for spec, want, crange in ranges:
        c.send(get(b"/hello.txt", b"Range: " + spec + b"\r\n"))
        status, h, body = c.response()
        assert status == 206 and body == want and h["content-range"] == crange, (spec, status, h, body)
    for spec in (b"bytes=%d-" % size, b"bytes=-0"):
        c.send(get(b"/hello.txt", b"Range: " + spec + b"\r\n"))
        status, h, body = c.response()
        assert status == 416 and h["content-range"] == "bytes */%d" % size, (spec, status, h)
    c.send(get(b"/hello.txt", b"Range: bytes=0-1,3-4\r\n"))  # several: the whole file
    assert c.response()[2] == content
    c.send(get(b"/hello.txt", b"Range: bytes=0-1\r\nIf-Range: Mon, 01 Jan 2001 00:00:00 GMT\r\n"))
    assert c.response()[0] == 200, "a stale If-Range must get the whole file"
    c.send(get(b"/hello.txt", b"If-Modified-Since: " + modified.encode() + b"\r\n"))
    status, h, body = c.response()
    assert status == 304 and body == b"" and h["last-modified"] == modified, (status, h)
    c.send(get(b"/hello.txt", b"If-Modified-Since: Mon, 01 Jan 2001 00:00:00 GMT\r\n"))
    assert c.response()[0] == 200
    c.send(get(b"/sub/"))
    status, h, body = c.response()
    assert status == 200 and body == b"<p>index</p>\n" and h["content-type"].startswith("text/html"), (h, body)
    c.send(get(b"/sub"))
    assert c.response()[2] == b"<p>index</p>\n"
    c.send(get(b"/"))  # no index.html at the top
    assert c.response()[0] == 404
    c.send(get(b"/missing.txt"))
    assert c.response()[0] == 404
    c.send(get(b"/hello%2etxt?query=1"))
    assert c.response()[2] == content, "percent-decoding or the query"
    c.send(get(b"/data.bin"))
    assert c.response()[1]["content-type"] == "application/octet-stream"
    c.close()
    print("200, HEAD, 206 x4, 416 x2, multi-range 200, If-Range, 304, index.html, 404")


def case_traversal(addr, secret):
    """No request reaches a file outside --root."""
    secret = secret.encode()
    attempts = [
        b"/../secret.txt",
        b"/%2e%2e/secret.txt",
        b"/%2E%2E/secret.txt",
        b"/.%2e/secret.txt",
        b"/..%2fsecret.txt",
        b"/%2e%2e%2fsecret.txt",
        b"/sub/../../secret.txt",
        b"/sub/%2e%2e/%2e%2e/secret.txt",
        b"/..",
        b"/../",
        b"//../secret.txt",
        b"/%252e%252e/secret.txt",
        b"/hello.txt%00.html",
        b"/%00",
        b"/..%5csecret.txt",
        b"/link-out",
        b"/link-dir/secret.txt",
        b"/link-abs",
        b"/sub/link-up/secret.txt",
        b"http://test/../secret.txt",
        b"http://test/%2e%2e/secret.txt",
        b"http://../secret.txt",
        b"http://test/..%2fsecret.txt",
        b"../secret.txt",
        b"secret.txt",
        b"*",
    ]
    statuses = {}
    for path in attempts:
        c = Conn(addr)
        c.send(get(path))
        status, h, body = c.response()
        c.close()
        assert 400 <= status < 500, "%r: status %d" % (path, status)
        assert secret not in body, "%r: the secret came back" % path
        statuses[status] = statuses.get(status, 0) + 1
    # the inside of the root still works through a symlink that stays inside
    c = Conn(addr)
    c.send(get(b"/link-in"))
    status, h, body = c.response()
    assert secret not in body
    print("%d attempts, all 4xx (%s), secret never sent; /link-in (inside) gave %d"
          % (len(attempts), ", ".join("%d x%d" % kv for kv in sorted(statuses.items())), status))


def case_idle(addr, keepalive_ms):
    """An idle keep-alive connection closes after --keepalive-timeout."""
    keepalive_ms = int(keepalive_ms)
    c = Conn(addr)
    c.send(get(b"/plaintext"))
    assert c.response()[0] == 200
    start = time.monotonic()
    assert c.closed(keepalive_ms / 1000 + 5), "not closed"
    took = (time.monotonic() - start) * 1000
    assert took >= keepalive_ms - 5, "closed after %.0f ms" % took
    print("idle connection closed after %.0f ms (timeout %d ms)" % (took, keepalive_ms))


def case_drain(addr, pid):
    """SIGTERM with a request in flight: it is answered, idle ones close."""
    pid = int(pid)
    idle = Conn(addr)
    idle.send(get(b"/plaintext"))
    assert idle.response()[0] == 200
    slow = Conn(addr)
    slow.send(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n")  # half a head
    body = Conn(addr)
    body.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhalf ")
    time.sleep(0.1)
    os.kill(pid, signal.SIGTERM)
    time.sleep(0.3)
    slow.send(b"\r\n")
    body.send(b"done!")
    status, headers, reply = slow.response()
    assert status == 200 and reply == b"Hello, World!", (status, reply)
    assert headers.get("connection") == "close", headers
    assert slow.closed(), "not closed after its reply"
    status, headers, reply = body.response()
    assert status == 200 and reply == b"half done!", (status, reply)
    assert headers.get("connection") == "close" and body.closed()
    assert idle.closed(5), "the idle connection was not closed"
    print("the half head and the half body were answered with Connection: close, the idle one closed")


def case_proxy(addr):
    """--proxy-protocol: v1 and v2 headers before the request; none, no reply.
    Exits 77 when the library does not read PROXY headers (yet)."""
    c = Conn(addr)
    c.send(b"PROXY TCP4 203.0.113.7 127.0.0.1 56324 80\r\n" + get(b"/plaintext"))
    status = c.response()[0]
    if status == 400:
        print("the PROXY header was read as a request (400)")
        sys.exit(77)
    assert status == 200, "v1: status %d" % status
    c.close()
    v2 = (b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11, 0, 12]) + bytes([198, 51, 100, 9, 127, 0, 0, 1])
          + (41000).to_bytes(2, "big") + (80).to_bytes(2, "big"))
    c = Conn(addr)
    c.send(v2 + get(b"/json"))
    assert c.response()[0] == 200, "v2"
    c.close()
    c = Conn(addr)
    c.send(get(b"/plaintext"))
    assert c.closed(), "no PROXY header: still open"
    print("v1 and v2 served, a connection without a header closed without a reply")


def case_max_conns(addr):
    """--max-conns 2: a third client waits until one of two closes."""
    two = [Conn(addr) for _ in range(2)]
    for c in two:
        c.send(get(b"/plaintext"))
        assert c.response()[0] == 200
    third = Conn(addr, timeout=0.5)
    third.send(get(b"/json"))
    try:
        third._more()
        raise AssertionError("the third was served while two were open")
    except socket.timeout:
        pass
    two.pop().close()
    third.sock.settimeout(TIMEOUT)
    assert third.response()[0] == 200, "the third was not served"
    print("a third client waited while two were open, served once one closed")


def main():
    case = globals()["case_" + sys.argv[1]]
    case(*sys.argv[2:])


if __name__ == "__main__":
    main()
