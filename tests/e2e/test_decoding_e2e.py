"""The decoder chain behind the real proxy, with real peers: curl, redis-cli, redis-py, tshark.

The proxy runs in-process (``ProxyFactory`` + the chain + real sinks on real sockets); blocking
clients run in threads. Targets are real servers: the project's ``twistd tcpplay http`` and
``echo``, and redis-server. The last test runs the whole ``twistd tcpplay proxy`` command line.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import socket
import struct
import subprocess
import threading
import time

import pytest
import pytest_twisted
from twisted.internet import defer, task, threads

from playground.decode.chain import Chain
from playground.sinks.console import ConsoleSink
from playground.sinks.jsonlines import JsonSink
from tests.support.capture import redis_commands, tshark
from tests.support.net import free_port
from tests.support.processes import need, start_redis, stop_process


class Proxied:
    """An in-process proxy to ``target_port`` observed by a chain with JSON, console and pcap."""

    def __init__(self, target_port: int, tmp_path, pcap: bool = False, **chain_kw):
        from twisted.internet import reactor

        from playground.proxy.splice import ProxyFactory

        self.reactor = reactor
        self.json_path = tmp_path / "out.jsonl"
        self.pcap_path = tmp_path / "out.pcap"
        self.console = io.BytesIO()
        self.services = [
            JsonSink(str(self.json_path), reactor=reactor),
            ConsoleSink(out=self.console, color="never", reactor=reactor),
        ]
        pcap_sink = None
        if pcap:
            from playground.sinks.pcapsink import PcapSink

            pcap_sink = PcapSink(str(self.pcap_path), reactor=reactor)
        self.chain = Chain(self.services, pcap=pcap_sink, **chain_kw)
        if pcap_sink is not None:
            self.services.append(pcap_sink)
        self.factory = ProxyFactory(
            f"tcp:host=127.0.0.1:port={target_port}", observer=self.chain, reactor=reactor
        )
        self.port = None

    @defer.inlineCallbacks
    def start(self):
        from twisted.internet.endpoints import serverFromString

        for s in self.services:
            s.startService()
        self.port = yield serverFromString(self.reactor, "tcp:0:interface=127.0.0.1").listen(
            self.factory
        )
        return self.port.getHost().port

    @defer.inlineCallbacks
    def stop(self):
        for _ in range(250):  # pairs finish shortly after the client is gone: at most 5 s
            if not self.factory.pairs:
                break
            yield task.deferLater(self.reactor, 0.02, lambda: None)
        assert not self.factory.pairs, "pairs still open"
        yield self.port.stopListening()
        # as ProxyService.stopService does: the observer's queue and held records, all of them
        # (decoding runs in slices on later reactor turns; a pair can be gone before its bytes
        # are decoded)
        self.factory.flush_observer(everything=True)
        for s in self.services:
            s.stopService()
        assert self.factory.observer is self.chain, "the chain was detached (it raised)"
        assert self.chain.failures == 0

    def records(self, kind=None):
        objs = [json.loads(line) for line in self.json_path.read_text().splitlines()]
        return [o for o in objs if kind is None or o["type"] == kind]

    def text(self) -> str:
        return self.console.getvalue().decode()


def _run(args, **kw):
    return subprocess.run(args, capture_output=True, timeout=30, check=True, **kw)


def _serving(twistd, service: str) -> int:
    """The port of ``twistd tcpplay <service>``, once it says it is listening."""
    port = free_port()
    twistd([service, "--listen", str(port)]).wait_for("listening on")
    return port


@pytest.fixture
def http_port(twistd):
    return _serving(twistd, "http")


@pytest.fixture
def echo_port(twistd):
    return _serving(twistd, "echo")


@pytest.mark.twistd
@pytest_twisted.inlineCallbacks
def test_curl_keepalive_chunked_head_and_big_post(http_port, tmp_path):
    curl = need("curl")
    p = Proxied(http_port, tmp_path, pcap=True)
    port = yield p.start()
    base = f"http://127.0.0.1:{port}"
    big = tmp_path / "big"
    big.write_bytes(b"b" * 1_000_000)
    yield threads.deferToThread(
        _run, [curl, "-sS", "-o", "/dev/null", "-o", "/dev/null", f"{base}/get", f"{base}/stream/3"]
    )
    # HEAD: no body that could echo the credentials back (/get echoes request headers)
    yield threads.deferToThread(_run, [curl, "-sS", "-I", "-u", "alice:pa55-s3cret", f"{base}/get"])
    yield threads.deferToThread(
        _run, [curl, "-sS", "-o", "/dev/null", "--data-binary", f"@{big}", f"{base}/post"]
    )
    yield p.stop()
    http = p.records("http")
    assert [(h["method"], h["target"], h["status"]) for h in http] == [
        ("GET", "/get", 200),
        ("GET", "/stream/3", 200),
        ("HEAD", "/get", 200),
        ("POST", "/post", 200),
    ]
    assert http[0]["pair"] == http[1]["pair"] != http[2]["pair"]  # keep-alive: one connection
    assert any(
        k.lower() == "transfer-encoding" and v == "chunked" for k, v in http[1]["response_headers"]
    )
    assert http[1]["response_body_size"] > 0
    assert http[2]["response_body_size"] == 0
    assert http[3]["request_body_size"] == 1_000_000
    assert all(h["latency"] is not None and h["latency"] >= 0 for h in http)
    secret = "pa55-s3cret"
    b64 = base64.b64encode(f"alice:{secret}".encode()).decode()
    out = p.json_path.read_text() + p.text()
    assert secret not in out and b64 not in out
    assert "GET /get -> 200 OK application/json" in p.text()
    pcap = p.pcap_path.read_bytes()
    assert b64.encode() not in pcap
    # tshark sees the same requests as the JSON sink
    out = yield threads.deferToThread(
        tshark,
        p.pcap_path,
        # the file keeps the target's real port; tshark guesses a dissector by port, and a
        # random client port can name another protocol first: say which port is HTTP
        "-d",
        f"tcp.port=={http_port},http",
        "-Y",
        "http.request",
        "-T",
        "fields",
        "-e",
        "http.request.method",
        "-e",
        "http.request.uri",
        "-e",
        "http.authorization",
    )
    rows = [line.split("\t") for line in out.splitlines()]
    assert [(m, u) for m, u, *_ in rows] == [(h["method"], h["target"]) for h in http]
    assert set(rows[2][2]) <= set("*")  # masked with filler, same length
    assert len(rows[2][2]) == len("Basic " + b64)


@pytest.mark.twistd
@pytest_twisted.inlineCallbacks
def test_binary_and_garbage_forwarded_exactly_and_shown_as_hex(echo_port, tmp_path):
    p = Proxied(echo_port, tmp_path)
    port = yield p.start()
    payload = bytes(range(256)) * 64 + os.urandom(4096)

    def exchange():
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            got = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return got
                got += chunk

    got = yield threads.deferToThread(exchange)
    yield p.stop()
    assert got == payload
    assert [r["protocol"] for r in p.records("protocol")] == ["hex"]
    c2s = [r for r in p.records("bytes") if r["direction"] == "c2s"]
    assert sum(
        r["data"].get("length", 0) or len(base64.b64decode(r["data"]["base64"])) for r in c2s
    ) == len(payload)
    assert "00000000  00 01 02 03" in p.text()


@pytest.mark.twistd
@pytest_twisted.inlineCallbacks
def test_http_garbage_reply_falls_back_to_hex(echo_port, tmp_path):
    """An 'HTTP' client talking to an echo server: the answer is not HTTP; no traceback."""
    p = Proxied(echo_port, tmp_path)
    port = yield p.start()

    def talk():
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\x00\xff garbage")
            s.shutdown(socket.SHUT_WR)
            while s.recv(65536):
                pass

    yield threads.deferToThread(talk)
    yield p.stop()
    undecodable = p.records("undecodable")
    assert undecodable and undecodable[0]["direction"] == "s2c"
    assert p.records("bytes")


# -- Redis ------------------------------------------------------------------------------------


@pytest.fixture
def redis_pw(tmp_path):
    server = start_redis(str(tmp_path), "hunter2-secret")
    yield server
    stop_process(server.proc)


@pytest.mark.real
@pytest_twisted.inlineCallbacks
def test_redis_cli_and_redis_py_through_the_chain(redis_pw, tmp_path):
    cli = need("redis-cli")
    import redis

    pw = redis_pw.password
    p = Proxied(redis_pw.port, tmp_path, pcap=True)
    port = yield p.start()

    def clients():
        _run([cli, "-p", str(port), "-a", pw, "--no-auth-warning", "SET", "foo", "bar"])
        _run([cli, "-p", str(port), "-a", pw, "--no-auth-warning", "GET", "foo"])
        for proto in (2, 3):
            r = redis.Redis(port=port, password=pw, protocol=proto)
            r.set("k", "v" * 500)
            pipe = r.pipeline(transaction=True)
            pipe.incr("n").incr("n").get("k")
            pipe.execute()
            r.config_set("masterauth", "other-s3cret")
            ps = r.pubsub()
            ps.subscribe("news")
            deadline = time.monotonic() + 5
            while ps.get_message(timeout=0.5) is None and time.monotonic() < deadline:
                pass
            r.publish("news", "hello")
            msg = None
            while msg is None and time.monotonic() < deadline:
                msg = ps.get_message(timeout=0.5)
            assert msg and msg["data"] == b"hello"
            ps.close()
            r.close()

    yield threads.deferToThread(clients)
    yield p.stop()
    out = p.json_path.read_text() + p.text()
    assert pw not in out and "other-s3cret" not in out
    assert pw.encode() not in p.pcap_path.read_bytes()
    cmds = [
        r["command"][0].upper() if isinstance(r["command"][0], str) else "?"
        for r in p.records("redis")
    ]
    assert cmds.count("AUTH") + cmds.count("HELLO") >= 3
    for name in ("SET", "GET", "MULTI", "EXEC", "INCRBY", "SUBSCRIBE", "PUBLISH", "HELLO"):
        assert name in cmds, (name, " ".join(cmds))
    assert 'SET foo "bar" -> +OK' in p.text()
    pushes = p.records("redis_push")
    assert len([x for x in pushes if "hello" in json.dumps(x["value"])]) == 2  # RESP2 and RESP3
    assert '<- message news "hello"' in p.text()
    assert any(r["latency"] is not None for r in p.records("redis"))
    # tshark's RESP dissector counts the same commands (the pcap keeps the target's real port)
    total = yield threads.deferToThread(
        redis_commands, p.pcap_path, redis_pw.port, "-d", f"tcp.port=={redis_pw.port},resp"
    )
    assert total == len(p.records("redis")) + len(p.records("redis_unanswered"))


@pytest.mark.real
@pytest_twisted.inlineCallbacks
def test_only_and_skip_filters(redis_server, tmp_path):
    cli = need("redis-cli")
    p = Proxied(redis_server.port, tmp_path, only=frozenset({b"SET"}))
    port = yield p.start()
    yield threads.deferToThread(_run, [cli, "-p", str(port), "SET", "a", "1"])
    yield threads.deferToThread(_run, [cli, "-p", str(port), "GET", "a"])
    yield p.stop()
    assert {r["command"][0].upper() for r in p.records("redis")} == {"SET"}


# -- the command line ---------------------------------------------------------------------------


@pytest.mark.twistd
def test_twistd_proxy_json_and_console(twistd, echo_port, tmp_path):
    port = free_port()
    out = tmp_path / "events.jsonl"
    t = twistd(
        [
            "proxy",
            "--listen",
            str(port),
            "--target",
            str(echo_port),
            "--json",
            str(out),
            "--color",
            "never",
        ]
    )
    t.wait_for("listening on")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"hello world\n\x1b[31mred\n")
        s.shutdown(socket.SHUT_WR)
        while s.recv(65536):
            pass
    t.wait_for("close")
    assert t.terminate() == 0
    objs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [o["type"] for o in objs][:2] == ["open", "protocol"]
    assert any(o["type"] == "text" and o["line"] == "\x1b[31mred\n" for o in objs)
    assert "\\x1b[31mred\\n" in t.output()
    assert "\x1b[31m" not in t.output()
    assert "Traceback" not in t.output()


@pytest.mark.twistd
def test_a_unix_client_s_own_name_cannot_drive_the_terminal(twistd, echo_port, tmp_path):
    """A client of a unix-socket listener names its own end: any bytes (terminal escapes
    included) in the console's and the log's open/close lines, and the JSON's ``client``,
    unless escaped."""
    listen = tmp_path / "proxy.sock"
    out = tmp_path / "events.jsonl"
    t = twistd(["proxy", "--listen", f"unix:{listen}", "--target", str(echo_port), "--json",
                str(out), "--color", "never"])
    t.wait_for("listening on")
    name = str(tmp_path / "\x1b]0;pwned\x07\x1b[2J\u202e").encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.bind(name)
        s.connect(str(listen))
        s.sendall(b"hello\n")
        s.shutdown(socket.SHUT_WR)
        while s.recv(65536):
            pass
    t.wait_for("close unix:")
    assert t.terminate() == 0
    shown = t.output()
    assert "\\x1b]0;pwned\\x07\\x1b[2J\\u202e" in shown  # the name, escaped
    assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown
    [opened] = [o for o in map(json.loads, out.read_text().splitlines()) if o["type"] == "open"]
    assert opened["client"].endswith("\\x1b]0;pwned\\x07\\x1b[2J\\u202e")


@pytest.mark.pure
def test_tools_present():
    for tool in ("curl", "tshark"):
        assert shutil.which(tool), tool


def _close_delimited_server(reset: bool, sent: threading.Event):
    """A one-shot server on 127.0.0.1 (port 0) that reads a request head, answers HTTP/1.0 with
    no Content-Length (the body ends at the close) and, once ``sent`` is set (the client has
    the body), closes: by RST (SO_LINGER 0) when ``reset``, else by FIN. ``(port, thread)``."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def serve():
        with listener:
            conn, _ = listener.accept()
            conn.settimeout(10)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                head += chunk
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" + b"x" * 1000)
            sent.wait(10)
            if reset:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread


@pytest.mark.real
@pytest.mark.parametrize("reset", [True, False])
@pytest_twisted.inlineCallbacks
def test_a_close_delimited_response_cut_by_a_reset_is_reported_cut(tmp_path, reset):
    """The server sends its body and resets the connection instead of closing it: the JSON
    record says ``complete: false`` (the end of the body was never seen), as for a
    Content-Length body cut short; a FIN ends the body, ``complete: true``."""
    sent = threading.Event()
    server_port, server = _close_delimited_server(reset, sent)
    p = Proxied(server_port, tmp_path)
    port = yield p.start()

    def talk():
        got = b""
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                while not got.endswith(b"x" * 1000):
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    got += chunk
                sent.set()  # the proxy has forwarded (and decoded) the body: now close
                while s.recv(65536):
                    pass
            except ConnectionResetError:
                pass  # the proxy passes the server's reset on
        return got

    got = yield threads.deferToThread(talk)
    yield threads.deferToThread(server.join, 10)
    yield p.stop()
    assert got.endswith(b"x" * 1000)
    [record] = p.records("http")
    assert (record["status"], record["response_body_size"]) == (200, 1000)
    assert record["complete"] is not reset
    if reset:
        [close] = p.records("close")
        assert (close["closed_by"], close["how"]) == ("server", "reset")
