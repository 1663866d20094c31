"""Helpers for the fault tests: a proxy with toxics driven in memory (StringTransport and
MemoryReactorClock), an observer that records what it is told, and a byte string cut at chosen
points (for the cores' any-split properties)."""

from __future__ import annotations

from twisted.internet import error
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure

from playground.faults.model import ToxicSet, parse_fault
from playground.proxy.splice import ProxyFactory
from tests.support.splice import Endpoint, Transport


class Recorder:
    """An observer recording the pairs opened and closed, the data and the half-closes."""

    def __init__(self):
        self.calls = []

    def pair_opened(self, pair, now):
        self.calls.append(("open", pair.id))

    def data(self, pair_id, direction, data, now):
        self.calls.append(("data", direction, data, now))

    def half_closed(self, pair_id, direction, now):
        self.calls.append(("half", direction))

    def pair_closed(self, pair_id, summary, now):
        self.calls.append(("close", summary["closed_by"], summary["how"]))


def connected(*faults, observer=None, toxics=None, idle=0.0):
    """A proxy with ``faults`` (``--fault`` texts) or ``toxics`` (a ToxicSet), one pair connected
    both ways: ``(clock, factory, client side, its transport, server side, its transport)``."""
    clock = MemoryReactorClock()
    endpoint = Endpoint()
    toxics = toxics if toxics is not None else ToxicSet(parse_fault(f) for f in faults)
    factory = ProxyFactory(endpoint, observer=observer, reactor=clock, toxics=toxics,
                           fault_seed=1, idle_timeout=idle)
    client = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 50000))
    ct = Transport()
    client.makeConnection(ct)
    server, st = endpoint.succeed()
    return clock, factory, client, ct, server, st


def lose_both(client, server, reason=error.ConnectionDone):
    client.connectionLost(Failure(reason()))
    server.connectionLost(Failure(reason()))


def split(data: bytes, cuts) -> list[bytes]:
    """``data`` in pieces, cut at each of ``cuts`` (modulo its length); no empty piece."""
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for p in points + [len(data)]:
        pieces.append(data[last:p])
        last = p
    return [p for p in pieces if p]
