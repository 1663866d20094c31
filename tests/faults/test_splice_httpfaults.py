"""HTTP-aware faults in the splice, with StringTransport and MemoryReactorClock: an injected
status reaches the client in response order and never the server, a delayed response waits for
the clock, a slow body follows the clock, a cut closes the pair naming the toxic, one log line
per fault acting, and a pair with resp and http toxics takes the resp core."""

from __future__ import annotations

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import formatEvent

from playground.faults.httpfaults import HttpFaults
from playground.faults.model import ToxicSet, parse_fault
from playground.faults.respfaults import RespFaults
from playground.proxy.splice import FaultedServerSide, ProxyFactory
from tests.support.faults import connected
from tests.support.splice import Endpoint, Transport

pytestmark = pytest.mark.memory


def get(path: bytes) -> bytes:
    return b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n"


def ok(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body


def test_status_is_answered_in_order_and_the_server_never_sees_the_request(logged):
    clock, factory, client, ct, server, st = connected("http:GET /api/*:status=503,retry_after=5")
    assert type(server) is FaultedServerSide
    assert type(client.pair.faults) is HttpFaults
    client.dataReceived(get(b"/a") + get(b"/api/x") + get(b"/b"))
    assert st.value() == get(b"/a") + get(b"/b")
    server.dataReceived(ok(b"A") + ok(b"B"))
    answer = ct.value()
    assert answer.startswith(ok(b"A") + b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"Retry-After: 5\r\n" in answer and answer.endswith(ok(b"B"))
    text = "\n".join(formatEvent(e) for e in logged)
    assert "fault http_downstream answered 503 for GET /api/x on pair 1" in text


def test_delay_waits_for_the_clock():
    clock, factory, client, ct, server, st = connected("http:GET /slow:delay=200ms")
    client.dataReceived(get(b"/slow"))
    server.dataReceived(ok(b"S"))
    assert ct.value() == b""
    clock.advance(0.19)
    assert ct.value() == b""
    clock.advance(0.02)
    assert ct.value() == ok(b"S")


def test_slow_body_follows_the_clock():
    clock, factory, client, ct, server, st = connected("http:GET /f:slow_body=100")
    client.dataReceived(get(b"/f"))
    response = ok(b"b" * 50)
    server.dataReceived(response)
    assert ct.value() == response[:-40]  # the head and a first piece of 10 bytes
    clock.pump([0.1] * 3)
    assert ct.value() == response[:-10]
    clock.pump([0.1] * 2)
    assert ct.value() == response


def test_cut_closes_the_pair_naming_the_toxic(logged):
    clock, factory, client, ct, server, st = connected("http:GET /c:cut=5")
    client.dataReceived(get(b"/c"))
    server.dataReceived(ok(b"0123456789"))
    assert ct.value() == ok(b"0123456789")[:-5]
    assert ct.disconnecting and st.disconnecting
    text = "\n".join(formatEvent(e) for e in logged)
    assert "fault http_downstream cuts the response of GET /c after 5 body bytes on pair 1" in text
    assert "toxic http_downstream (http, downstream) closes the pair" in text


def test_resp_wins_when_both_kinds_exist(logged):
    clock, factory, client, ct, server, st = connected("resp:GET:delay=1s",
                                                       "http:GET /:status=503")
    assert type(client.pair.faults) is RespFaults
    text = "\n".join(formatEvent(e) for e in logged)
    assert "toxic http_downstream (http) does not act on this pair: it has resp faults" in text


class FaultedRecorder:
    """An observer with ``faulted``: what it was told, by kind."""

    def __init__(self):
        self.calls = []

    def pair_opened(self, pair, now):
        pass

    def data(self, pair_id, direction, data, now):
        self.calls.append(("data", direction, data))

    def faulted(self, pair_id, direction, data, now, fault, injected):
        self.calls.append(("faulted", direction, data, fault, injected))

    def half_closed(self, pair_id, direction, now):
        pass

    def pair_closed(self, pair_id, summary, now):
        pass


def test_the_observer_is_told_which_bytes_a_fault_injected_or_held():
    clock = MemoryReactorClock()
    endpoint = Endpoint()
    observer = FaultedRecorder()
    toxics = ToxicSet([parse_fault("http:GET /api/*:status=503"),
                       parse_fault("http:GET /slow:delay=100ms,name=slow")])
    factory = ProxyFactory(endpoint, observer=observer, reactor=clock, toxics=toxics,
                           fault_seed=1)
    client = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 50000))
    ct = Transport()
    client.makeConnection(ct)
    server, st = endpoint.succeed()
    client.dataReceived(get(b"/api/x") + get(b"/slow") + get(b"/b"))
    server.dataReceived(ok(b"S") + ok(b"B"))
    clock.advance(0.2)
    clock.advance(0)
    told = [c for c in observer.calls if c[1] == "s2c"]
    assert [(c[0], c[-2:] if c[0] == "faulted" else None) for c in told] == [
        ("faulted", ("http_downstream", True)), ("faulted", ("slow", False)), ("data", None)]
    assert told[1][2] == ok(b"S") and told[2][2] == ok(b"B")
    assert ct.value().endswith(ok(b"S") + ok(b"B"))


def test_removing_the_toxic_lets_go_of_the_response_it_paces():
    # the toxiproxy API's DELETE left the response at 1 B/s to its end
    toxics = ToxicSet([parse_fault("http:GET /f:slow_body=1")])
    clock, factory, client, ct, server, st = connected(toxics=toxics)
    client.dataReceived(get(b"/f"))
    response = ok(b"b" * 50)
    server.dataReceived(response)
    assert ct.value() != response
    toxics.remove("http_downstream")
    assert ct.value() == response  # at once, not on the next tick
