"""Fakes for driving the splice in memory: a StringTransport with the half-close and abort
bookkeeping the proxy uses, and a client endpoint whose connection attempts a test completes."""

from __future__ import annotations

from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport


class Transport(StringTransport):
    """StringTransport plus the half-close and abort bookkeeping the proxy uses."""

    def __init__(self, peer=("127.0.0.1", 50000), host=("127.0.0.1", 6479)):
        super().__init__(IPv4Address("TCP", *host), IPv4Address("TCP", *peer), lenient=True)
        self.write_closed = False
        self.aborted = False
        self.nodelay = False

    def loseWriteConnection(self):
        self.write_closed = True

    def abortConnection(self):
        self.aborted = True
        super().abortConnection()

    def setTcpNoDelay(self, enabled):
        self.nodelay = enabled


class Endpoint:
    """A client endpoint whose connection attempts the test completes by hand."""

    def __init__(self):
        self.attempts: list[tuple[object, defer.Deferred]] = []

    def connect(self, factory):
        d = defer.Deferred(lambda d: None)
        self.attempts.append((factory, d))
        return d

    def succeed(self, index=-1):
        factory, d = self.attempts[index]
        proto = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 6379))
        transport = Transport(peer=("127.0.0.1", 6379), host=("127.0.0.1", 40000))
        proto.makeConnection(transport)
        d.callback(proto)
        return proto, transport
