"""kv_clients.py -- examples/kv through redis-py (Debian's python3-redis).

    python3 tests/kv_clients.py HOST:PORT

Every command through the client's own methods, the errors it raises,
a pipeline of 1000 commands (transaction=False: kv has no MULTI), and
4 threads on 4 connections doing 10,000 INCR each on one key, which must
end at exactly 40,000.  Prints what it checked; exits 1 on a failure.
"""
import sys
import threading
import time

import redis

THREADS = 4
INCRS = 10000


def expect(what, got, want):
    if got != want:
        raise AssertionError("%s: got %r, want %r" % (what, got, want))


def expect_error(what, fn, words):
    try:
        fn()
    except redis.exceptions.ResponseError as e:
        if words not in str(e):
            raise AssertionError("%s: error %r, want %r" % (what, str(e), words))
        return
    raise AssertionError("%s: no error" % what)


def commands(r):
    expect("flushall", r.flushall(), True)
    expect("ping", r.ping(), True)
    expect("echo", r.echo("héllo"), "héllo".encode())
    expect("select 0", r.execute_command("SELECT", 0), True)
    expect_error("select 1", lambda: r.execute_command("SELECT", 1), "DB index is out of range")
    expect("set", r.set("k", "v"), True)
    expect("get", r.get("k"), b"v")
    expect("get missing", r.get("missing"), None)
    expect("set nx existing", r.set("k", "w", nx=True), None)
    expect("set xx existing", r.set("k", "w", xx=True), True)
    expect("set xx missing", r.set("k2", "w", xx=True), None)
    expect("set nx missing", r.set("k2", "w", nx=True), True)
    expect("set ex", r.set("t", "v", ex=100), True)
    expect("ttl", r.ttl("t"), 100)
    expect("set px", r.set("t", "v", px=50000), True)
    expect("ttl px", r.ttl("t"), 50)
    expect("ttl no expiry", r.ttl("k"), -1)
    expect("ttl missing", r.ttl("missing"), -2)
    expect("expire", r.expire("k", 30), True)
    expect("ttl after expire", r.ttl("k"), 30)
    expect("expire missing", r.expire("missing", 30), False)
    expect("exists", r.exists("k", "k2", "missing"), 2)
    expect("delete", r.delete("k", "missing"), 1)
    expect("incr new", r.incr("n"), 1)
    expect("incrby", r.incrby("n", 41), 42)
    expect("decr", r.decr("n"), 41)
    expect("decrby", r.decrby("n", 50), -9)
    expect_error("incr text", lambda: r.incr("k2"), "value is not an integer or out of range")
    expect("mset", r.mset({"a": "1", "b": "2"}), True)
    expect("mget", r.mget("a", "nope", "b"), [b"1", None, b"2"])
    expect("dbsize", r.dbsize(), 5)
    expect("config get save", r.config_get("save"), {"save": ""})
    expect("config get appendonly", r.config_get("appendonly"), {"appendonly": "no"})
    expect_error("unknown", lambda: r.execute_command("NOSUCH", "x"), "unknown command 'NOSUCH'")
    expect_error("arity", lambda: r.execute_command("GET"), "wrong number of arguments for 'get' command")
    expect_error("syntax", lambda: r.execute_command("SET", "a", "b", "XX", "NX"), "syntax error")
    big = bytes(range(256)) * 1000
    expect("set binary", r.set("bin", big), True)
    expect("get binary", r.get("bin"), big)
    expect("set short px", r.set("short", "v", px=100), True)
    time.sleep(0.3)
    expect("expired", r.get("short"), None)
    expect("flushall", r.flushall(), True)
    expect("dbsize after flushall", r.dbsize(), 0)


def pipeline(r):
    p = r.pipeline(transaction=False)
    for i in range(500):
        p.set("p%d" % i, i)
        p.incr("p%d" % i)
    out = p.execute()
    expect("pipeline replies", out, [x for i in range(500) for x in (True, i + 1)])
    p = r.pipeline(transaction=False)
    for i in range(500):
        p.get("p%d" % i)
    expect("pipeline gets", p.execute(), [str(i + 1).encode() for i in range(500)])


def concurrent_incr(addr):
    host, port = addr.rsplit(":", 1)
    clients = [redis.Redis(host=host, port=int(port), socket_timeout=20) for _ in range(THREADS)]
    clients[0].delete("counter")
    errors = []

    def work(c):
        try:
            for _ in range(INCRS):
                c.incr("counter")
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(c,)) for c in clients]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    if errors:
        raise AssertionError("concurrent INCR: %r" % errors[0])
    total = int(clients[0].get("counter"))
    expect("counter after %d x %d INCR" % (THREADS, INCRS), total, THREADS * INCRS)
    return time.monotonic() - start


def main():
    addr = sys.argv[1]
    host, port = addr.rsplit(":", 1)
    r = redis.Redis(host=host, port=int(port), socket_timeout=10)
    try:
        commands(r)
        pipeline(r)
        secs = concurrent_incr(addr)
    except (AssertionError, redis.exceptions.RedisError) as e:
        print("FAIL:", e)
        sys.exit(1)
    print("redis-py %s: every command, a pipeline of 1000, %d x %d concurrent INCR = %d in %.1f s" %
          (redis.__version__, THREADS, INCRS, THREADS * INCRS, secs))


if __name__ == "__main__":
    main()
