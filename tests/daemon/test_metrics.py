"""Stats and metrics: the pure counters, the stats sink, the log line, and /metrics end to end."""

from __future__ import annotations

import json
import math
import re
import socket
import urllib.request

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import globalLogPublisher
from twisted.python import usage

from playground.codec import values as resp
from playground.daemon import metrics
from playground.daemon import stats as S
from playground.decode import records as R
from playground.sinks.statssink import StatsSink
from playground.tap import SUBCOMMANDS
from tests.support.net import PING, PONG, free_port, recv_exactly

# -- a tiny Prometheus text-format parser ------------------------------------------------------

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def parse_prometheus(text: str) -> tuple[dict, dict]:
    """(samples {(name, frozenset(labels)): value}, types {name: type}); strict on syntax."""
    samples, types, helps = {}, {}, set()
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert name not in helps, f"HELP twice for {name}"
            helps.add(name)
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge", "summary", "histogram", "untyped")
            assert name in helps and name not in types
            types[name] = kind
            continue
        m = _SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        name, _, raw_labels, value = m.groups()
        labels = {}
        if raw_labels:
            pos = 0
            while pos < len(raw_labels):
                lm = _LABEL.match(raw_labels, pos)
                assert lm, f"bad labels in {line!r}"
                labels[lm.group(1)] = re.sub(r"\\(.)", lambda x: {"n": "\n"}.get(
                    x.group(1), x.group(1)), lm.group(2))
                pos = lm.end()
        family = re.sub(r"_(sum|count)$", "", name)
        assert family in types or name in types, f"sample {name} before its TYPE"
        if types.get(name) == "counter" or types.get(family) == "counter":
            assert name.endswith("_total"), name
        key = (name, frozenset(labels.items()))
        assert key not in samples, f"duplicate sample {line!r}"
        samples[key] = float(value)
    return samples, types


def value(samples, name, **labels):
    return samples[(name, frozenset((k, str(v)) for k, v in labels.items()))]


# -- pure: histogram, command stats, text format --------------------------------------------


@pytest.mark.pure
@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(min_value=2e-6, max_value=100.0), min_size=1, max_size=300))
def test_histogram_quantiles_within_bucket_error(values):
    h = S.Histogram()
    for v in values:
        h.observe(v)
    ordered = sorted(values)
    assert h.count == len(values)
    assert math.isclose(h.sum, sum(values), rel_tol=1e-9)
    for q in S.QUANTILES:
        true = ordered[max(0, math.ceil(q * len(values)) - 1)]
        est = h.quantile(q)
        assert abs(est - true) <= true * 0.0905 + 1e-12, (q, est, true)
    assert h.quantile(1.0) <= max(values) and h.quantile(0.0) >= min(values)


@pytest.mark.pure
def test_histogram_edges_and_bounded_size():
    h = S.Histogram()
    assert h.quantile(0.5) is None
    for v in (0.0, -1.0, float("nan"), 1e-9, 1e9):
        h.observe(v)
    assert h.count == 5 and len(h.counts) == 216
    assert h.quantile(0.99) == 1e9  # clamped to the largest observed


@pytest.mark.pure
def test_command_names_are_bounded_and_sanitised():
    c = S.CommandStats(max_names=3)
    for name in (b"get", b"SET", b"del", b"XADD", b"\x00\xff", b"A" * 40):
        c.record("resp", S.command_name(name), False, 0.001)
    snap = c.snapshot()
    names = [e["command"] for e in snap["commands"]]
    assert names == ["DEL", "GET", "OTHER", "SET"]
    assert snap["count"] == 6
    assert S.command_name(b"\x00\xff") == S.UNKNOWN
    assert S.error_code(b"WRONGTYPE Operation against a key") == "WRONGTYPE"


@pytest.mark.pure
def test_prometheus_text_escapes_and_parses():
    snap = {"service": 'we"ird\\na\nme', "kind": "echo",
            "connections": {"open": 1, "total": 2, "refused": 3}}
    text = S.prometheus_text([snap], start_time=1.5)
    samples, types = parse_prometheus(text)
    assert value(samples, "tcpplay_connections_refused_total", service='we"ird\\na\nme') == 3
    assert types["tcpplay_connections_open"] == "gauge"
    assert value(samples, "tcpplay_start_time_seconds") == 1.5


@pytest.mark.pure
def test_stats_sink_counts_exchanges():
    sink = StatsSink()
    ok, err = b"+OK", resp.Error(b"WRONGTYPE no")
    for i in range(10):
        sink.emit(R.RedisExchange(1, 0.0, "c", (b"set", b"k", b"v"), ok, 0.001 * (i + 1)))
    sink.emit(R.RedisExchange(1, 0.0, "c", (b"INCR", b"k"), err, 0.002))
    sink.emit(R.RedisExchange(1, 0.0, "c", (), ok, None))
    sink.emit(R.RedisUnanswered(1, 0.0, "c", (b"GET", b"k")))
    sink.emit(R.HexChunk(1, 0.0, "c2s", b"xx", 0))
    http = dict(version=b"HTTP/1.1", reason=b"", request_headers=(), response_headers=(),
                request_body_size=0, response_body_size=0, content_type=None,
                request_preview=b"", response_preview=b"")
    sink.emit(R.HttpExchange(2, 0.0, "c", b"GET", b"/", status=200, latency=0.01, **http))
    sink.emit(R.HttpExchange(2, 0.0, "c", b"GET", b"/x", status=404, latency=0.02, **http))
    sink.emit(R.HttpExchange(2, 0.0, "c", b"POST", b"/", status=None, latency=None, **http))
    snap = sink.stats.snapshot()
    by = {(e["protocol"], e["command"]): e for e in snap["commands"]}
    assert by[("resp", "SET")]["count"] == 10 and by[("resp", "SET")]["errors"] == 0
    assert by[("resp", "SET")]["latency"]["count"] == 10
    assert by[("resp", "INCR")]["errors"] == 1
    assert by[("resp", "UNKNOWN")]["latency"]["count"] == 0
    assert by[("http", "GET")]["count"] == 2 and by[("http", "GET")]["errors"] == 1
    assert snap["error_replies"] == [{"protocol": "resp", "error": "WRONGTYPE", "count": 1}]
    assert snap["http_responses"] == [{"method": "GET", "status": 200, "count": 1},
                                      {"method": "GET", "status": 404, "count": 1}]
    assert snap["unanswered"] == 2
    q = by[("resp", "SET")]["latency"]["quantiles"]
    assert q["0.5"] == pytest.approx(0.005, rel=0.05)
    assert q["0.99"] == pytest.approx(0.010, rel=0.05)


@pytest.mark.pure
def test_stats_sink_cache_holds_no_long_command_names():
    """The raw-name cache keeps only names that can be labels (32 bytes at most): 1024
    distinct 64 KiB command words (what the decoder keeps of one with --max-value 0) must not
    stay in memory for the life of the process."""
    sink = StatsSink()
    for i in range(1100):
        name = b"%04d" % i + b"x" * (64 * 1024)
        sink.emit(R.RedisExchange(1, 0.0, "c", (name, b"k"), b"+OK", 0.001))
        sink.emit(R.RedisExchange(1, 0.0, "c", (b"GET", b"k"), b"+OK", 0.001))
    assert sum(map(len, sink._resp)) < 1024 * 64
    by = {e["command"]: e["count"] for e in sink.stats.snapshot()["commands"]}
    assert by == {"UNKNOWN": 1100, "GET": 1100}


@pytest.mark.memory
def test_stats_log_line_every_interval():
    from playground.common.limits import LimitedFactory

    clock = MemoryReactorClock()
    factory = LimitedFactory()
    factory.limits.admit("h")
    registry = metrics.Registry(start_time=0)
    registry.add(metrics.ServiceSource("main", "echo", [factory]))
    events = []
    globalLogPublisher.addObserver(events.append)
    svc = metrics.StatsLogService(registry, 60, reactor=clock)
    try:
        svc.startService()
        clock.advance(59)
        assert not [e for e in events if e.get("service") == "main"]
        clock.advance(1)
        clock.advance(60)
    finally:
        svc.stopService()
        globalLogPublisher.removeObserver(events.append)
    lines = [e for e in events if e.get("log_namespace", "").endswith("StatsLogService")]
    assert len(lines) == 2
    assert lines[0]["summary"] == "conns open=1 total=1 refused=0"
    assert lines[0]["stats"]["connections"]["open"] == 1
    assert not clock.getDelayedCalls()


@pytest.mark.pure
def test_no_stats_no_wrapping():
    from playground.examples import echo

    o = echo.Options()
    o.parseOptions(["--listen", "7000"])
    svc = echo.make_service(o)
    assert metrics.attach(svc, o, "echo") is svc
    o = echo.Options()
    with pytest.raises(usage.UsageError, match=r"^--stats-interval: must be 0 \(never\) or at "
                       r"least 0\.1 seconds, got '0\.0001'$"):  # a log line every turn
        o.parseOptions(["--stats-interval", "0.0001"])
    o = echo.Options()
    o.parseOptions(["--stats-interval", "0.1"])
    assert o["stats-interval"] == 0.1
    o = echo.Options()
    o.parseOptions(["--metrics", "9100", "--stats-interval", "5"])
    top = metrics.attach(echo.make_service(o), o, "echo")
    kinds = [type(s).__name__ for s in top]
    assert kinds == ["MetricsService", "ListeningService", "StatsLogService"]


@pytest.mark.pure
def test_the_proxy_service_is_wrapped_once_by_its_caller_with_its_command_stats():
    from playground.proxy import service

    o = service.Options()
    o.parseOptions(["--target", "6379", "--metrics", "9100", "--quiet"])
    svc = service.make_service(o)
    assert isinstance(svc, service.ProxyService)  # make_service wraps nothing: its caller attaches
    assert svc.command_stats is not None
    top = metrics.attach(svc, o, "proxy")
    assert [type(s).__name__ for s in top][0] == "MetricsService" and svc in list(top)
    registry = next(s for s in top if type(s).__name__ == "MetricsService").registry
    [source] = registry.sources
    assert source.commands is svc.command_stats


# -- end to end: the proxy in front of a real redis-server ------------------------------------


def _set(i: int) -> bytes:
    key, val = b"key:%d" % i, b"value-%d" % i
    return b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, len(val), val)


def _scrape(port: int):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        text = r.read().decode()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics.json", timeout=10) as r:
        data = json.load(r)
    return text, data


@pytest.mark.twistd
def test_metrics_after_100_sets_through_the_proxy(twistd, redis_server, tmp_path):
    port, mport = free_port(), free_port()
    t = twistd(["proxy", "--listen", port, "--target", redis_server.port, "--quiet",
                "--metrics", mport], cwd=str(tmp_path))
    t.wait_for("proxy listening on")
    t.wait_for("metrics listening on")
    request = b"".join(_set(i) for i in range(100))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        assert recv_exactly(s, 500) == b"+OK\r\n" * 100
        # live: the pair is still open, its bytes are counted already
        text, data = _scrape(mport)
        samples, _ = parse_prometheus(text)
        assert value(samples, "tcpplay_connections_open", service="proxy") == 1
        assert value(samples, "tcpplay_bytes_total", service="proxy", direction="c2s") == len(
            request)
        assert value(samples, "tcpplay_bytes_total", service="proxy", direction="s2c") == 500
    t.wait_for("proxy #1 close")
    # a second connection: one error reply
    bad = b"*2\r\n$3\r\nSET\r\n$1\r\nk\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(bad)
        err = s.recv(1000)
        assert err.startswith(b"-ERR")
    t.wait_for("proxy #2 close")
    text, data = _scrape(mport)
    samples, types = parse_prometheus(text)
    lab = {"service": "proxy", "protocol": "resp", "command": "SET"}
    assert value(samples, "tcpplay_commands_total", **lab) == 101
    assert value(samples, "tcpplay_command_errors_total", **lab) == 1
    assert value(samples, "tcpplay_error_replies_total", service="proxy", protocol="resp",
                 error="ERR") == 1
    assert value(samples, "tcpplay_connections_total", service="proxy") == 2
    assert value(samples, "tcpplay_connections_open", service="proxy") == 0
    assert value(samples, "tcpplay_connections_refused_total", service="proxy") == 0
    c2s = len(request) + len(bad)
    assert value(samples, "tcpplay_bytes_total", service="proxy", direction="c2s") == c2s
    assert value(samples, "tcpplay_bytes_total", service="proxy", direction="s2c") == 500 + len(err)
    assert types["tcpplay_command_duration_seconds"] == "summary"
    assert value(samples, "tcpplay_command_duration_seconds_count", **lab) == 101
    p50 = value(samples, "tcpplay_command_duration_seconds", quantile="0.5", **lab)
    p99 = value(samples, "tcpplay_command_duration_seconds", quantile="0.99", **lab)
    assert 0 < p50 <= p99 < 5
    # the JSON has the same figures
    (svc,) = data["services"]
    assert svc["connections"] == {"open": 0, "total": 2, "refused": 0}
    assert svc["bytes"] == {"c2s": c2s, "s2c": 500 + len(err)}
    (entry,) = [e for e in svc["commands"]["commands"] if e["command"] == "SET"]
    assert entry["count"] == 101 and entry["errors"] == 1
    assert entry["latency"]["quantiles"]["0.5"] == p50
    assert entry["latency"]["quantiles"]["0.99"] == p99
    assert value(samples, "tcpplay_command_duration_seconds_sum", **lab) == entry["latency"]["sum"]
    assert t.terminate() == 0


@pytest.mark.twistd
def test_refused_connections_are_counted(twistd, redis_server, tmp_path):
    port, mport = free_port(), free_port()
    t = twistd(["proxy", "--listen", port, "--target", redis_server.port, "--quiet",
                "--max-connections", "1", "--metrics", mport, "--stats-interval", "0.2"],
               cwd=str(tmp_path))
    t.wait_for("proxy listening on")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as first:
        first.sendall(PING)
        assert recv_exactly(first, len(PONG)) == PONG
        with socket.create_connection(("127.0.0.1", port), timeout=10) as second:
            assert second.recv(100) == b""  # refused: closed at once
        t.wait_for("refused")
    _, data = _scrape(mport)
    assert data["services"][0]["connections"]["refused"] == 1
    line = t.wait_for("stats proxy: conns open=0 total=1 refused=1")
    assert "PING=1" in line
    assert t.terminate() == 0


@pytest.mark.twistd
def test_metrics_listen_failure_is_one_line(twistd, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        taken = busy.getsockname()[1]
        t = twistd(["proxy", "--listen", free_port(), "--target", "6379", "--metrics", taken],
                   cwd=str(tmp_path))
        t.wait_for(f"cannot listen on --metrics tcp:{taken}")
        assert t.terminate() != 0


@pytest.mark.pure
def test_stats_sink_counts_runs_as_their_exchanges():
    from playground.codec.values import Error, Simple
    from playground.decode import records as R
    from playground.sinks.statssink import StatsSink

    run = R.RedisExchanges(1, 5.0, "127.0.0.1:1", [(b"SET", b"k", b"v"), (b"GET", b"k"),
                                                   (b"INCR", b"k")],
                           [Simple(b"OK"), b"v", Error(b"ERR not an integer")],
                           [0.001, 0.002, 0.003])
    ran, one_by_one = StatsSink(), StatsSink()
    ran.emit_many([run])
    one_by_one.emit_many(run.exchanges())
    assert ran.stats.snapshot() == one_by_one.stats.snapshot()
    assert ran.stats.snapshot() != StatsSink().stats.snapshot()


@pytest.mark.pure
@pytest.mark.parametrize("module, extra", [("echo", []), ("proxy", ["--target", "6379"])])
def test_metrics_on_the_listen_address_is_a_usage_error(module, extra):
    """Not a start-up failure ("address already in use") after the first port is bound."""
    import importlib

    from twisted.python import usage

    opts = importlib.import_module(dict((n, m) for n, m, _ in SUBCOMMANDS)[module]).Options()
    with pytest.raises(usage.UsageError, match="--metrics: needs an address of its own"):
        opts.parseOptions(["--listen", "7100", "--metrics", "127.0.0.1:7100", *extra])


@pytest.mark.twistd
def test_the_index_page_names_the_pages(twistd, tmp_path):
    """``GET /`` was 404 Not Found: the index was the root resource, whose own page twisted.web
    never renders (``/`` is the root's child ``b""``)."""
    mport = free_port()
    t = twistd(["echo", "--listen", free_port(), "--metrics", mport], cwd=str(tmp_path))
    t.wait_for("metrics listening on")
    with urllib.request.urlopen(f"http://127.0.0.1:{mport}/", timeout=10) as r:
        assert r.status == 200
        assert r.read() == b"tcpplay metrics: /metrics (Prometheus text format), /metrics.json\n"
    assert t.terminate() == 0
