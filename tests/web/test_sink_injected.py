"""The web view's rows of exchanges a fault injected: the mark and the fault's name on the reply,
for resp and http, and none on the rows around them."""

from __future__ import annotations

import pytest

from playground.decode.chain import Chain
from playground.web.capture import Capture
from playground.web.sink import WebSink, rows
from tests.support.chain import SUMMARY, pair

pytestmark = pytest.mark.pure

C2S, S2C = "c2s", "s2c"


def _resp(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def replies(calls) -> list[tuple[str, str]]:
    web = WebSink(Capture())
    chain = Chain([web], pcap=web)
    chain.pair_opened(pair(), 0.0)
    for i, (d, data, fault) in enumerate(calls):
        if fault is None:
            chain.data(1, d, data, float(i + 1))
        else:
            chain.faulted(1, d, data, float(i + 1), fault)
    chain.pair_closed(1, SUMMARY, 100.0)
    return [(row["request"], row["reply"]) for e in web.capture.get(1).exchanges
            for row in rows(e)]


def test_an_injected_resp_error_is_marked_on_its_row():
    assert replies([(C2S, _resp(b"GET", b"user:1") + _resp(b"GET", b"a"), None),
                    (S2C, b"-LOADING\r\n", "resp_downstream"), (S2C, b"$1\r\nA\r\n", None)]) == [
        ('GET user:1', "-LOADING [injected: resp_downstream]"), ('GET a', '"A"')]


def test_an_injected_http_response_is_marked_on_its_row():
    got = replies([(C2S, b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n", None),
                   (S2C, b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n",
                    "http_downstream")])
    assert got == [("GET /x", "503 Service Unavailable [injected: http_downstream]")]
