"""The pictures' numbers end to end: the web sink counts what the decoder chain decodes (one
exchange or a pipelined run) into ``playground.web.latency``, and ``GET /api/latency`` answers
them, following the view's filter; then a real proxy in front of redis-server, redis-cli as the
client and curl reading the API."""

from __future__ import annotations

import json
import subprocess

import pytest
from twisted.internet.testing import MemoryReactorClock
from twisted.web.test.requesthelper import DummyRequest

from playground.decode import records as R
from playground.decode.chain import Chain
from playground.web.capture import Capture
from playground.web.sink import WebSink
from playground.web.site import WebRoot
from tests.support.chain import SUMMARY, pair
from tests.support.processes import need, start_proxy
from tests.support.waiting import wait_until
from tests.support.web import web_url

C2S, S2C = "c2s", "s2c"


def _resp(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def _http(ts: float, method: bytes, status: int | None, latency: float | None):
    return R.HttpExchange(2, ts, "127.0.0.1:40002", method, b"/x", b"HTTP/1.1", status, b"",
                          latency, (), (), 0, 0, None, b"", b"")


def _fed() -> WebSink:
    """A sink the chain fed: SET, a pipelined run of GET, GET, an unknown command (an error);
    then two HTTP exchanges (a GET and a failing POST) as records."""
    web = WebSink(Capture())
    chain = Chain([web], pcap=web)
    chain.pair_opened(pair(), 100.0)
    chain.data(1, C2S, _resp(b"set", b"k", b"v"), 100.1)
    chain.data(1, S2C, b"+OK\r\n", 100.102)
    chain.data(1, C2S, _resp(b"get", b"k") + _resp(b"GET", b"k") + _resp(b"nosuch"), 101.0)
    chain.data(1, S2C, b"$1\r\nv\r\n$1\r\nv\r\n-ERR unknown command\r\n", 101.004)
    chain.pair_closed(1, SUMMARY, 102.0)
    web.emit(_http(102.5, b"GET", 200, 0.02))
    web.emit(_http(102.6, b"POST", 500, 0.3))
    return web


def _get(root: WebRoot, **args: str):
    request = DummyRequest([b"api", b"latency"])
    request.args = {k.encode(): [v.encode()] for k, v in args.items()}
    answer = root.render(request)
    return request.responseCode or 200, json.loads(answer)


def _root(web: WebSink, now: float = 103.2) -> WebRoot:
    reactor = MemoryReactorClock()
    reactor.advance(now)
    return WebRoot(web.capture, reactor=reactor, assets={}, latency=web.latency)


@pytest.mark.pure
def test_the_sink_counts_each_exchange_and_a_pipelined_run():
    rows = {(r["protocol"], r["name"]): r for r in _fed().latency.snapshot(103.2)["commands"]}
    assert {k: (r["count"], r["errors"]) for k, r in rows.items()} == {
        ("resp", "GET"): (2, 0), ("resp", "SET"): (1, 0), ("resp", "NOSUCH"): (1, 1),
        ("http", "GET"): (1, 0), ("http", "POST"): (1, 1)}
    assert rows["resp", "SET"]["max"] == pytest.approx(0.002)
    assert rows["resp", "GET"]["p50"] == pytest.approx(0.004, rel=1 / 32)


@pytest.mark.pure
@pytest.mark.parametrize("error", [False, True])
def test_the_sinks_batches_count_as_one_by_one(error):
    """Unpipelined exchanges stored as a batch (a segment per connection, their latencies
    counted at once, with or without an error among them, a latency beyond 16 ms among them)
    count as ``Latency.one`` per exchange does."""
    from playground.codec.values import Error, Simple
    from playground.web.latency import Latency

    web, apart = WebSink(Capture()), Latency()
    for pid in (1, 2):
        web.capture.opened(pid, 100.0, "c", "l", "t")
    for i in range(40):
        command = (b"GET", b"k") if i % 3 else (b"SET", b"k", b"v")
        reply = Error(b"ERR x") if error and i == 13 else Simple(b"OK") if i % 3 == 0 else b"v"
        took = 0.02 if i == 7 else 0.0001 * (i + 1)
        web.emit(R.RedisExchange(1 + i % 2, 100.0 + i / 100, "c", command, reply, took))
        apart.one(100.0 + i / 100, command, reply, took)
    web.flush()
    assert web.latency.snapshot(101.0) == apart.snapshot(101.0)
    rows = {r["name"]: r["errors"] for r in web.latency.snapshot(101.0)["commands"]}
    assert rows == {"GET": int(error), "SET": 0}


@pytest.mark.memory
def test_the_api_answers_rows_buckets_and_the_series():
    status, answer = _get(_root(_fed()))
    assert status == 200
    rows = answer["commands"]
    assert [(r["protocol"], r["name"]) for r in rows][:1] == [("resp", "GET")]  # busiest first
    get = rows[0]
    assert set(get) >= {"count", "errors", "p50", "p90", "p99", "max", "min", "timed", "buckets"}
    assert sum(n for _, _, n in get["buckets"]) == 2
    assert all(low <= get["max"] < high for low, high, _ in get["buckets"])
    series = answer["series"]
    assert (series["end"], series["seconds"], len(series["exchanges"])) == (103, 300, 300)
    assert series["exchanges"][-4:] == [1, 3, 2, 0]  # seconds 100, 101, 102, 103
    assert series["errors"][-4:] == [0, 1, 1, 0]
    assert answer["error_bound"] == 1 / 32 and answer["ignores"] == []


@pytest.mark.memory
def test_the_api_follows_proto_cmd_and_http_methods_and_says_what_it_ignores():
    root = _root(_fed())

    def names(**query):
        status, answer = _get(root, **query)
        assert status == 200
        return sorted((r["protocol"], r["name"]) for r in answer["commands"]), answer

    got, answer = names(proto="http")
    assert got == [("http", "GET"), ("http", "POST")]
    assert answer["series"]["exchanges"][-4:] == [0, 0, 2, 0]  # the series follows proto
    assert names(proto="resp", cmd="g*")[0] == [("resp", "GET")]
    got, answer = names(cmd="GET")
    assert got == [("resp", "GET")] and answer["series"]["exchanges"][-4:] == [1, 3, 0, 0]
    assert names(http="POST,PUT")[0] == [("http", "POST")]
    assert names(proto="text")[0] == []
    got, answer = names(proto="resp", errors="1", slow="5", client="10.*", http="/api/*")
    assert got == [] and answer["ignores"] == ["http", "errors", "slow", "client"]
    status, answer = _get(root, proto="ftp")
    assert status == 400 and answer["error"].startswith("proto:")


@pytest.mark.twistd
def test_redis_cli_through_a_proxy_shows_in_the_api(twistd, redis_server):
    proc, port = start_proxy(twistd, redis_server.port, "--web", "tcp:0:interface=127.0.0.1",
                             "--quiet")
    base = web_url(proc).split("?")[0].rstrip("/")
    commands = b"set lat:k v\nget lat:k\nget lat:k\nget lat:missing\nnosuchcmd\n"
    subprocess.run([need("redis-cli"), "-p", str(port)], input=commands, capture_output=True,
                   timeout=20, check=True)

    def latency():
        out = subprocess.run([need("curl"), "-sS", f"{base}/api/latency?proto=resp"],
                             capture_output=True, timeout=20, check=True)
        answer = json.loads(out.stdout)
        rows = {r["name"]: r for r in answer["commands"]}
        return (rows, answer) if "NOSUCHCMD" in rows else None

    rows, answer = wait_until(latency, 10, "the commands in /api/latency")
    assert (rows["GET"]["count"], rows["SET"]["count"], rows["NOSUCHCMD"]["errors"]) == (3, 1, 1)
    assert 0 < rows["GET"]["p50"] <= rows["GET"]["p99"] <= rows["GET"]["max"] < 1
    assert sum(answer["series"]["exchanges"]) >= 5  # and redis-cli's COMMAND DOCS
    assert proc.terminate() == 0
