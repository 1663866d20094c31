"""The chain's ``injected``: the exchanges completed by bytes a fault injected carry its name
(resp: an ``FaultedRedisExchange``; http: ``HttpExchange.fault``), in the console and JSON
renderings; the exchanges around them do not."""

from __future__ import annotations

import json

import pytest

from playground.decode import records as R
from playground.decode.chain import Chain
from tests.support.chain import C2S, S2C, ListSink, pair, rendered

pytestmark = pytest.mark.pure


def cmd(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def test_an_injected_resp_reply_is_marked_and_the_others_not():
    sink = ListSink()
    chain = Chain([sink])
    chain.pair_opened(pair(), 0.0)
    chain.data(1, C2S, cmd(b"GET", b"a") + cmd(b"GET", b"user:1") + cmd(b"GET", b"b"), 0.0)
    chain.data(1, S2C, b"$1\r\nA\r\n", 0.1)
    chain.faulted(1, S2C, b"-LOADING\r\n", 0.2, "resp_downstream")
    chain.data(1, S2C, b"$1\r\nB\r\n", 0.3)
    exchanges = [r for r in sink.records if isinstance(r, R.RedisExchange)]
    assert [type(r) for r in exchanges] == [R.RedisExchange, R.FaultedRedisExchange,
                                           R.RedisExchange]
    assert exchanges[1].fault == "resp_downstream"
    text, js = rendered(sink)
    assert "GET user:1 -> -LOADING" in text
    [line] = [x for x in text.splitlines() if "user:1" in x]
    assert line.endswith("[injected: resp_downstream]")
    assert text.count("[injected") == 1
    records = [json.loads(x) for x in js.splitlines()]
    marked = [r for r in records if r.get("fault")]
    assert [(r["command"], r["injected"]) for r in marked] == [(["GET", "user:1"], True)]


def test_an_injected_http_response_is_marked():
    sink = ListSink()
    chain = Chain([sink])
    chain.pair_opened(pair(), 0.0)
    chain.data(1, C2S, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
               0.0)
    chain.faulted(1, S2C, b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n",
                   0.1, "http_downstream")
    chain.data(1, S2C, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0.2)
    a, b = [r for r in sink.records if isinstance(r, R.HttpExchange)]
    assert (a.target, a.status, a.fault) == (b"/a", 503, "http_downstream")
    assert (b.target, b.status, b.fault) == (b"/b", 200, None)
    text, js = rendered(sink)
    assert text.count("[injected: http_downstream]") == 1
    records = [r for r in map(json.loads, js.splitlines()) if r["type"] == "http"]
    assert [(r["target"], r.get("fault"), r.get("injected")) for r in records] == [
        ("/a", "http_downstream", True), ("/b", None, None)]


def test_a_held_back_reply_names_the_fault_without_the_injected_flag():
    sink = ListSink()
    chain = Chain([sink])
    chain.pair_opened(pair(), 0.0)
    chain.data(1, C2S, cmd(b"GET", b"a"), 0.0)
    chain.faulted(1, S2C, b"$1\r\nA\r\n", 0.2, "resp_downstream", False)
    [exchange] = [r for r in sink.records if isinstance(r, R.RedisExchange)]
    assert type(exchange) is R.FaultedRedisExchange and not exchange.injected
    text, js = rendered(sink)
    assert text.splitlines()[-1].endswith("[fault: resp_downstream]")
    [record] = [r for r in map(json.loads, js.splitlines()) if r["type"] == "redis"]
    assert record["fault"] == "resp_downstream" and "injected" not in record


def test_a_delayed_http_response_names_the_fault():
    sink = ListSink()
    chain = Chain([sink])
    chain.pair_opened(pair(), 0.0)
    chain.data(1, C2S, b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n", 0.0)
    chain.faulted(1, S2C, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0.2,
                  "http_downstream", False)
    text, js = rendered(sink)
    assert text.count("[fault: http_downstream]") == 1 and "[injected" not in text
    [record] = [r for r in map(json.loads, js.splitlines()) if r["type"] == "http"]
    assert record["fault"] == "http_downstream" and "injected" not in record
