"""The splicing proxy on real sockets: ``twistd tcpplay proxy`` in front of a real redis-server.

Clients are the real ones (redis-cli, redis-py, redis-benchmark, nc) plus raw sockets where the
test needs to see exactly when a connection ends. Every wait has a deadline; no fixed sleeps.
"""

from __future__ import annotations

import json
import os
import re
import resource
import selectors
import signal
import socket
import subprocess
import threading
import time
import urllib.request

import dpkt
import pytest
import redis

from playground.codec.encoder import encode_command
from tests.support.net import (
    PING,
    PONG,
    connecting_to,
    free_port,
    recv_exactly,
    unanswering_listener,
    wait_closed,
)
from tests.support.processes import Twistd, need, start_proxy, start_redis, stop_process
from tests.support.waiting import wait_until

# --- helpers ---------------------------------------------------------------------------------


def close_lines(proc: Twistd) -> list[str]:
    """The console's close lines (``#3 close CLIENT c2s ... (fin by client)``)."""
    return [line for line in proc.output().splitlines() if re.search(r"#\d+ close ", line)]


def close_line_for(proc: Twistd, sock_or_port, timeout: float = 10.0) -> str:
    """The close line for the client bound to ``sock_or_port`` (its local port): the console's,
    or with ``--quiet`` the log's."""
    port = sock_or_port if isinstance(sock_or_port, int) else sock_or_port.getsockname()[1]
    return proc.wait_for(f"close 127.0.0.1:{port} ", timeout=timeout)


def exit_code(proc: Twistd, timeout: float) -> int:
    """Wait for a process already sent SIGTERM to exit on its own (a second signal would race
    with its shutdown); collect the rest of its output."""
    code = proc.proc.wait(timeout)
    proc.terminate()
    return code


def blocked_clients(r: redis.Redis) -> int:
    return int(r.info("clients")["blocked_clients"])


@pytest.fixture(scope="module")
def proxy(redis_server):
    """One proxy in front of the session redis-server, shared by the module's read-only tests."""
    started: list[Twistd] = []

    def start(args):
        started.append(Twistd(args))
        return started[-1]

    try:
        proc, port = start_proxy(start, redis_server.port)
        yield proc, port
        code = proc.terminate()
        assert code == 0, proc.output()[-2000:]
    finally:
        for t in started:
            if t.proc.poll() is None:
                t.proc.kill()
                t.proc.wait(5)


@pytest.fixture
def client(proxy):
    r = redis.Redis(host="127.0.0.1", port=proxy[1], socket_timeout=20)
    yield r
    r.close()


@pytest.fixture
def direct(redis_server):
    r = redis.Redis(host="127.0.0.1", port=redis_server.port, socket_timeout=20)
    yield r
    r.close()


@pytest.fixture
def tmp_redis(tmp_path):
    """A redis-server of the test's own (it may be killed)."""
    server = start_redis(str(tmp_path))
    yield server
    stop_process(server.proc)


# --- real clients through the proxy ----------------------------------------------------------


@pytest.mark.twistd
def test_redis_cli_ping_info_set_get(proxy):
    cli = need("redis-cli")
    port = str(proxy[1])

    def run(*args):
        p = subprocess.run([cli, "-h", "127.0.0.1", "-p", port, *args],
                           capture_output=True, text=True, timeout=20)
        assert p.returncode == 0, p.stderr
        return p.stdout

    assert run("ping").strip() == "PONG"
    info = run("info", "server")
    assert "redis_version:" in info and "tcp_port:" in info
    assert run("set", "proxy-real:cli", "hello world").strip() == "OK"
    assert run("get", "proxy-real:cli").strip() == "hello world"


@pytest.mark.real
def test_pipeline_of_10000_commands(client):
    n = 5000
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        pipe.set(f"proxy-real:pipe:{i}", i)
    for i in range(n):
        pipe.get(f"proxy-real:pipe:{i}")
    results = pipe.execute()
    assert len(results) == 2 * n
    assert results[:n] == [True] * n
    assert results[n:] == [str(i).encode() for i in range(n)]


@pytest.mark.real
def test_pubsub_through_proxy_gets_direct_and_proxied_publishes(client, direct):
    sub = client.pubsub()
    try:
        sub.subscribe("proxy-real:chan")
        msg = wait_until(lambda: sub.get_message(timeout=0.2), 10, "subscribe confirmation")
        assert msg["type"] == "subscribe"
        assert direct.publish("proxy-real:chan", b"from-direct") == 1
        assert client.publish("proxy-real:chan", b"from-proxy") == 1
        got = []

        def two_messages():
            m = sub.get_message(timeout=0.2)
            if m and m["type"] == "message":
                got.append(m["data"])
            return len(got) == 2

        wait_until(two_messages, 10, "two published messages")
        assert got == [b"from-direct", b"from-proxy"]
    finally:
        sub.close()


@pytest.mark.real
def test_multi_exec(client):
    client.delete("proxy-real:tx")
    pipe = client.pipeline(transaction=True)
    pipe.incr("proxy-real:tx").incr("proxy-real:tx").get("proxy-real:tx")
    assert pipe.execute() == [1, 2, b"2"]
    # And the raw form, so the MULTI/QUEUED/EXEC bytes are seen as sent.
    with socket.create_connection(("127.0.0.1", client.connection_pool.connection_kwargs["port"]),
                                  timeout=10) as s:
        s.sendall(encode_command("MULTI") + encode_command("INCR", "proxy-real:tx")
                  + encode_command("EXEC"))
        expected = b"+OK\r\n+QUEUED\r\n*1\r\n:3\r\n"
        assert recv_exactly(s, len(expected)) == expected


@pytest.mark.real
def test_5mb_value_round_trip_is_byte_exact(client, direct):
    value = os.urandom(5 * 1024 * 1024)
    assert client.set("proxy-real:big", value)
    assert client.get("proxy-real:big") == value
    assert direct.get("proxy-real:big") == value  # what reached redis is what was sent
    client.delete("proxy-real:big")


@pytest.mark.real
def test_nc_half_close_still_gets_the_reply(proxy):
    nc = need("nc")
    p = subprocess.run(f"printf 'PING\\r\\n' | {nc} -N 127.0.0.1 {proxy[1]}", shell=True,
                       capture_output=True, timeout=20)
    assert p.returncode == 0, p.stderr
    assert p.stdout == PONG


@pytest.mark.real
def test_redis_benchmark_through_proxy(proxy):
    bench = need("redis-benchmark")
    p = subprocess.run([bench, "-h", "127.0.0.1", "-p", str(proxy[1]), "-q", "-n", "20000",
                        "-P", "16", "-t", "set,get"], capture_output=True, text=True, timeout=120)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert re.search(r"SET: [\d.]+ requests per second", out), out
    assert re.search(r"GET: [\d.]+ requests per second", out), out
    assert "error" not in out.lower(), out
    print(re.findall(r"(?:SET|GET): [\d.]+ requests per second", out))


@pytest.mark.real
def test_1000_concurrent_connections_all_answered(proxy):
    n = 1000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 200:
        new = n + 1000 if hard == resource.RLIM_INFINITY else min(hard, n + 1000)
        assert new >= n + 200, f"fd limit too low: soft={soft} hard={hard}"
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    socks: list[socket.socket] = []
    sel = selectors.DefaultSelector()
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", proxy[1]), timeout=10)
            socks.append(s)
        for s in socks:
            s.sendall(PING)
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, b"")
        answered = 0
        deadline = time.monotonic() + 60
        while answered < n and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=1.0):
                chunk = key.fileobj.recv(64)
                assert chunk, "a connection was closed before answering"
                buf = key.data + chunk
                if len(buf) >= len(PONG):
                    assert buf == PONG
                    sel.unregister(key.fileobj)
                    answered += 1
                else:
                    sel.modify(key.fileobj, selectors.EVENT_READ, buf)
        assert answered == n
    finally:
        sel.close()
        for s in socks:
            s.close()


# --- upstream trouble -----------------------------------------------------------------------


@pytest.mark.twistd
def test_upstream_killed_mid_stream_closes_client(twistd, tmp_redis):
    proc, port = start_proxy(twistd, tmp_redis.port)
    direct = redis.Redis(host="127.0.0.1", port=tmp_redis.port, socket_timeout=5)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            me = s.getsockname()[1]
            s.sendall(encode_command("BLPOP", "proxy-real:never", 60))
            wait_until(lambda: blocked_clients(direct) == 1, 10, "the BLPOP to block in redis")
            tmp_redis.proc.send_signal(signal.SIGKILL)
            tmp_redis.proc.wait(10)
            wait_closed(s, timeout=3)
        # A client that saw EOF closes its side; the pair is then complete and logged.
        line = close_line_for(proc, me)
        assert re.search(r"\((fin|reset) by server\)$", line), line
    finally:
        direct.close()


@pytest.mark.twistd
def test_upstream_refusing_closes_client_and_logs(twistd):
    dead = free_port()  # nothing listens there
    proc, port = start_proxy(twistd, dead, "--quiet")  # no console: the log has the close line
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        me = s.getsockname()[1]
        s.sendall(PING)
        wait_closed(s, timeout=3)
        line = proc.wait_for("cannot reach")
    assert f"port={dead}" in line and "refused" in line.lower(), line
    assert "first=server how=connect-failed" in close_line_for(proc, me)


def http_json(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
        return json.load(answer)


def json_records(path, pair: int) -> list[dict]:
    with open(path) as f:
        return [r for r in map(json.loads, f) if r.get("pair") == pair]


@pytest.mark.twistd
def test_a_refused_connect_is_a_pair_in_the_records_but_not_in_the_pcap(twistd, tmp_path):
    """The observer sees the attempt: the JSON lines and the web view have the pair, opened
    and closed (connect-failed, and why); the pcap has no conversation for it (none happened)."""
    dead = free_port()
    web = free_port()
    proc, port = start_proxy(twistd, dead, "--json", tmp_path / "x.jsonl", "--pcap",
                             tmp_path / "x.pcap", "--web", web)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        me = s.getsockname()[1]
        s.sendall(PING)
        wait_closed(s, timeout=3)
    assert f"close 127.0.0.1:{me} " in proc.wait_for(f"close 127.0.0.1:{me} ")
    listed = wait_until(lambda: [c for c in http_json(web, "/api/connections")["connections"]
                                 if c["client"] == f"127.0.0.1:{me}" and c["state"] == "closed"],
                        10, "the web view to list the closed pair")
    (c,) = listed
    stream = http_json(web, f"/api/connections/{c['id']}/stream")
    assert [ch.get("mark") for ch in stream["chunks"]] == ["unreached"], stream
    with urllib.request.urlopen(f"http://127.0.0.1:{web}/api/connections/{c['id']}.pcap",
                                timeout=10) as answer:
        assert list(dpkt.pcap.Reader(answer)) == []  # nothing crossed: no conversation drawn
    with urllib.request.urlopen(f"http://127.0.0.1:{web}/api/connections/{c['id']}.jsonl",
                                timeout=10) as answer:
        exported = [json.loads(line) for line in answer]
    assert proc.terminate() == 0
    assert (c["how"], c["closed_by"], c["server"]) == ("connect-failed", "server", "")
    assert "refused" in c["reason"].lower(), c
    assert [r["type"] for r in exported] == ["open", "close"], exported
    assert exported[1]["reason"] == c["reason"]
    records = json_records(tmp_path / "x.jsonl", c["id"])
    assert [r["type"] for r in records] == ["open", "close"], records
    assert records[0]["client"] == f"127.0.0.1:{me}"
    close = records[1]
    assert (close["how"], close["closed_by"], close["bytes_c2s"]) == ("connect-failed", "server", 0)
    assert "refused" in close["reason"].lower(), close
    with open(tmp_path / "x.pcap", "rb") as f:
        assert list(dpkt.pcap.Reader(f)) == []


@pytest.mark.twistd
def test_upstream_not_answering_hits_connect_timeout(twistd):
    listener, fillers = unanswering_listener()
    try:
        target = listener.getsockname()[1]
        proc, port = start_proxy(twistd, target, "--connect-timeout", "1", "--quiet")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            me = s.getsockname()[1]
            s.sendall(PING)
            _, took = wait_closed(s, timeout=6)
            assert 0.8 <= took < 4, f"closed after {took:.2f}s with --connect-timeout 1"
            line = proc.wait_for("cannot reach")
        assert "no answer within --connect-timeout 1s" in line, line
        assert "first=server how=connect-failed" in close_line_for(proc, me)
    finally:
        for f in fillers:
            f.close()
        listener.close()


@pytest.mark.twistd
@pytest.mark.parametrize("endpoint", [False, True])
def test_a_connect_the_drain_aborts_is_the_proxys_shutdown_not_a_failed_connect(
        twistd, tmp_path, endpoint):
    """SIGTERM while a connect hangs: after --drain-timeout the pair closes as the proxy's
    shutdown. Before, the cancelled connect read as the target's failure: 'connect-failed by
    server' with the reason 'no answer within --connect-timeout 30s' (after 1.5 s) or 'User
    aborted connection.', and a 'cannot reach' warning."""
    listener, fillers = unanswering_listener()
    try:
        dead = listener.getsockname()[1]
        target = f"tcp:127.0.0.1:{dead}" if endpoint else dead
        proc, port = start_proxy(twistd, target, "--json", tmp_path / "x.jsonl",
                                 "--drain-timeout", "1", "--connect-timeout", "30")
        waiting = connecting_to(dead)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            me = s.getsockname()[1]
            s.sendall(PING)
            wait_until(lambda: connecting_to(dead) > waiting, 10, "the proxy's connect")
            proc.proc.send_signal(signal.SIGTERM)
            wait_closed(s, timeout=6)
            assert exit_code(proc, timeout=10) == 0, proc.output()[-3000:]
    finally:
        for f in fillers:
            f.close()
        listener.close()
    assert "cannot reach" not in proc.output()
    line = close_line_for(proc, me)
    assert line.endswith("(shutdown by proxy: stopped while connecting)"), line
    (close,) = [r for r in json_records(tmp_path / "x.jsonl", 1) if r["type"] == "close"]
    assert (close["how"], close["closed_by"], close["reason"]) == (
        "shutdown", "proxy", "stopped while connecting"), close


@pytest.mark.twistd
def test_max_connections_refuses_the_third_client(twistd, redis_server):
    proc, port = start_proxy(twistd, redis_server.port, "--max-connections", "2")
    a = socket.create_connection(("127.0.0.1", port), timeout=10)
    b = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        for s in (a, b):
            s.sendall(PING)
            assert recv_exactly(s, len(PONG)) == PONG
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            me = c.getsockname()[1]
            wait_closed(c, timeout=2)
            line = proc.wait_for("refused")
            assert f"refused 127.0.0.1:{me}:" in line, line
        assert "max-connections (2) reached" in line and "refused so far: 1" in line, line
        a_port = a.getsockname()[1]
        a.close()
        close_line_for(proc, a_port)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as d:  # a slot is free
            d.sendall(PING)
            assert recv_exactly(d, len(PONG)) == PONG
    finally:
        a.close()
        b.close()


# --- end to end: SIGTERM drains, then aborts ----------------------------------------------


@pytest.mark.twistd
def test_sigterm_under_load_drains_and_exits_0(twistd, redis_server, direct):
    """Open pairs go on being served after SIGTERM; a command sent before it gets its reply."""
    proc, port = start_proxy(twistd, redis_server.port, "--drain-timeout", "10")
    key, counter = "proxy-real:blpop", "proxy-real:load"
    direct.delete(key, counter)
    errors: list[BaseException] = []
    done_after_sigterm: list[int] = []
    sigterm_seen = threading.Event()
    stop = threading.Event()

    def load():
        r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=10)
        after = 0
        try:
            for i in range(200_000):  # bounded; normally ended by `stop` within a second or two
                if stop.is_set():
                    break
                assert r.incr(counter) == i + 1
                if sigterm_seen.is_set():
                    after += 1
        except BaseException as e:  # noqa: BLE001 - reported by the test thread
            errors.append(e)
        finally:
            done_after_sigterm.append(after)
            r.close()

    base_blocked = blocked_clients(direct)
    worker = threading.Thread(target=load, daemon=True)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as waiter:
            waiter.sendall(encode_command("BLPOP", key, 20))
            wait_until(lambda: blocked_clients(direct) == base_blocked + 1, 10, "BLPOP to block")
            worker.start()
            wait_until(lambda: int(direct.get(counter) or 0) >= 100, 10, "the load to be running")
            t0 = time.monotonic()
            proc.proc.send_signal(signal.SIGTERM)
            assert "draining 2 open pair(s)" in proc.wait_for("proxy draining")
            sigterm_seen.set()
            proc.wait_for("proxy stopped listening")
            with pytest.raises(ConnectionRefusedError):  # no new clients while draining
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
            direct.rpush(key, b"late")  # the command sent before SIGTERM now gets its reply
            expected = encode_command(key, "late")
            assert recv_exactly(waiter, len(expected)) == expected
            # The load is still being served through the draining proxy.
            mark = int(direct.get(counter))
            wait_until(lambda: int(direct.get(counter)) >= mark + 100, 10, "load during drain")
    finally:
        stop.set()
        worker.join(30)
    assert not worker.is_alive(), "the load thread did not finish"
    assert not errors, errors
    assert done_after_sigterm and done_after_sigterm[0] >= 100
    code = exit_code(proc, timeout=15)
    took = time.monotonic() - t0
    assert code == 0, proc.output()[-3000:]
    assert took < 10, f"exit took {took:.2f}s, past the drain time"
    out = proc.output()
    assert "drain time over" not in out and "shutdown by proxy" not in out, out[-3000:]
    assert len(close_lines(proc)) == 2


@pytest.mark.twistd
def test_short_drain_aborts_what_is_left_and_exits_0(twistd, redis_server):
    proc, port = start_proxy(twistd, redis_server.port, "--drain-timeout", "1")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as idle:
        me = idle.getsockname()[1]
        idle.sendall(PING)
        assert recv_exactly(idle, len(PONG)) == PONG
        t0 = time.monotonic()
        proc.proc.send_signal(signal.SIGTERM)
        how, _ = wait_closed(idle, timeout=6)
        code = exit_code(proc, timeout=10)
        took = time.monotonic() - t0
    assert code == 0, proc.output()[-3000:]
    assert 0.9 <= took < 4, f"exit after {took:.2f}s with --drain-timeout 1"
    assert how == "reset", "an aborted connection ends with RST"
    assert "drain time over: aborting 1 pair(s)" in proc.output()
    line = close_line_for(proc, me)
    assert line.endswith("(shutdown by proxy)"), line


@pytest.mark.twistd
@pytest.mark.parametrize("extra, console", [((), True), (("--quiet", "--json", "{tmp}/x.json"), False),
                                           (("--json", "-"), False), (("--decode", "none"), False)])
def test_each_pair_is_shown_once(twistd, redis_server, tmp_path, extra, console):
    """The console's open/close lines, or (no console) the log's: never both."""
    extra = [a.format(tmp=tmp_path) for a in extra]
    proc, port = start_proxy(twistd, redis_server.port, *extra)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        me = s.getsockname()[1]
        s.sendall(PING)
        assert recv_exactly(s, len(PONG)) == PONG
    line = proc.wait_for(f"close 127.0.0.1:{me} ")
    assert proc.terminate() == 0
    lines = proc.output().splitlines()
    logged = [t for t in lines if re.search(r"proxy #\d+ (open|close) ", t)]
    shown = [t for t in lines if re.match(r"#\d+ (open|close) ", t)]
    if console:
        assert line.startswith("#1 close ") and len(shown) == 2 and logged == [], lines
    else:
        assert "proxy #1 close" in line and len(logged) == 2 and shown == [], lines


@pytest.mark.twistd
def test_http_through_forced_resp_decoding_hides_credentials(twistd, redis_server, tmp_path):
    """curl's request through ``--decode resp`` in front of redis-server: each header line is an
    inline command (redis-server drops the connection at ``Host:``); the Authorization and
    Cookie values are in no sink: console, JSON lines, pcap."""
    curl = need("curl")
    json_path, pcap_path = tmp_path / "x.jsonl", tmp_path / "x.pcap"
    proc, port = start_proxy(twistd, redis_server.port, "--decode", "resp", "--color", "never",
                             "--json", str(json_path), "--pcap", str(pcap_path))
    subprocess.run([curl, "-sS", "--max-time", "5", "-H", "Authorization: Basic dXNlcjpwYXNz",
                    "-H", "Cookie:sid=c00kie-s3cret", f"http://127.0.0.1:{port}/x"],
                   capture_output=True, timeout=15)
    proc.wait_for("close 127.0.0.1:")
    assert proc.terminate() == 0
    console = proc.output()
    assert "Authorization: " in console and "Cookie:(redacted)" in console, console[-2000:]
    dumped = json_path.read_bytes() + pcap_path.read_bytes()
    assert b"Authorization:" in dumped  # the header lines are there, their values are not
    for secret in ("dXNlcjpwYXNz", "c00kie-s3cret"):
        assert secret not in console
        assert secret.encode() not in dumped
