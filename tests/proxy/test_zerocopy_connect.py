"""The spliced pair's own upstream connect (``playground.proxy.zerocopy.Connector``): a target
given as an IP literal is connected in the splice's epoll, not with ``connectTCP``; success,
refusal, no answer and a client leaving are reported as ``connectTCP`` reports them.

Real sockets on 127.0.0.1. The ``Connector`` tests run under a ``MemoryReactorClock`` (the
timeout is the clock's; the dispatcher's ``doRead`` is called by hand); the ``ProxyFactory``
tests run on the reactor pytest-twisted runs.
"""

from __future__ import annotations

import errno
import os
import select
import socket

import pytest
import pytest_twisted
from twisted.internet import defer, endpoints, error, protocol, tcp
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import formatEvent

from playground.proxy import zerocopy
from playground.proxy.splice import ProxyFactory
from tests.support.net import free_port, unanswering_listener
from tests.support.waiting import until


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class Recorder(protocol.ClientFactory):
    """What ``connectTCP`` would tell a client factory: the protocol built, or the failure."""

    def __init__(self):
        self.addr = None
        self.protocol = None
        self.failed = None

    def buildProtocol(self, addr):
        self.addr = addr
        self.protocol = protocol.Protocol()
        return self.protocol

    def clientConnectionFailed(self, connector, reason):
        self.failed = reason


@pytest.fixture
def clock():
    clock = MemoryReactorClock()
    zerocopy._dispatcher(clock)  # its epoll open before a test counts fds
    yield clock
    zerocopy._dispatchers.pop(clock).epoll.close()


def connector(clock) -> zerocopy.Connector:
    return zerocopy.Connector(clock, socket.AF_INET, zerocopy._pipes())


def watched(clock) -> int:
    return len(zerocopy._dispatchers[clock].legs)


@pytest.mark.pure
@pytest.mark.parametrize("host, family", [
    ("127.0.0.1", socket.AF_INET), ("::1", socket.AF_INET6), ("localhost", None),
    ("redis.example", None), (None, None), ("fe80::1%eth0", None),
])
@pytest.mark.real
def test_only_an_ip_literal_is_connected_here(host, family):
    assert zerocopy.ip_family(host) == family


@pytest.mark.real
def test_a_loopback_connect_is_done_in_the_call(clock):
    """On loopback the handshake is over when ``connect`` returns: connected at once, nothing
    watched, no timer; the protocol gets an ``UpstreamSocket`` over the connected socket."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        factory = Recorder()
        connector(clock).connect("127.0.0.1", port, factory, 5.0)
        assert factory.failed is None
        assert factory.addr == IPv4Address("TCP", "127.0.0.1", port)
        transport = factory.protocol.transport
        assert type(transport) is zerocopy.UpstreamSocket and transport.connected
        assert watched(clock) == 0 and clock.getDelayedCalls() == []
        server, _ = listener.accept()
        with server:
            transport.getHandle().sendall(b"hello")
            server.settimeout(5)
            assert server.recv(16) == b"hello"
            transport.connectionLost(None)  # closes the socket (and the unused pipes)
            assert server.recv(16) == b""


@pytest.mark.real
def test_an_ipv6_literal_is_connected_too(clock):
    try:
        listener = socket.create_server(("::1", 0), family=socket.AF_INET6)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with listener:
        port = listener.getsockname()[1]
        factory = Recorder()
        zerocopy.Connector(clock, socket.AF_INET6, zerocopy._pipes()).connect(
            "::1", port, factory, 5.0)
        assert factory.addr == IPv6Address("TCP", "::1", port)
        transport = factory.protocol.transport
        server, _ = listener.accept()
        with server:
            assert server.getpeername()[:2] == transport.getHandle().getsockname()[:2]
        transport.connectionLost(None)


@pytest.mark.real
def test_refused_is_reported_as_connectTCP_reports_it(clock):
    dead = free_port()  # its holding socket open before the count
    before = open_fds()
    factory = Recorder()
    connector(clock).connect("127.0.0.1", dead, factory, 5.0)
    assert factory.protocol is None
    assert factory.failed.check(error.ConnectionRefusedError)
    twisted_says = error.getConnectError((errno.ECONNREFUSED, os.strerror(errno.ECONNREFUSED)))
    assert factory.failed.getErrorMessage() == str(twisted_says)
    assert open_fds() == before  # the socket and both pipes closed
    assert watched(clock) == 0


@pytest.mark.real
def test_no_answer_times_out_and_closes_everything(clock):
    listener, fillers = unanswering_listener()
    try:
        before = open_fds()
        factory = Recorder()
        connector(clock).connect("127.0.0.1", listener.getsockname()[1], factory, 2.0)
        assert factory.protocol is None and factory.failed is None
        assert watched(clock) == 1 and len(clock.getDelayedCalls()) == 1
        clock.advance(1.9)
        assert factory.failed is None
        clock.advance(0.2)
        assert factory.failed.check(error.TimeoutError)
        assert watched(clock) == 0 and open_fds() == before  # socket and pipes closed
    finally:
        for f in fillers:
            f.close()
        listener.close()


@pytest.mark.real
def test_stop_connecting_closes_quietly(clock):
    listener, fillers = unanswering_listener()
    try:
        before = open_fds()
        factory = Recorder()
        c = connector(clock)
        c.connect("127.0.0.1", listener.getsockname()[1], factory, 2.0)
        c.stopConnecting()
        assert watched(clock) == 0 and clock.getDelayedCalls() == []
        assert open_fds() == before
        clock.advance(5)
        assert factory.protocol is None and factory.failed is None
    finally:
        for f in fillers:
            f.close()
        listener.close()


@pytest.mark.real
def test_a_late_answer_is_taken_from_the_dispatcher(clock):
    """A connect not done in the call is watched for writability; once the target answers
    (here: its accept queue emptied, the SYN sent again), the dispatcher's turn connects it."""
    listener, fillers = unanswering_listener()
    try:
        factory = Recorder()
        connector(clock).connect("127.0.0.1", listener.getsockname()[1], factory, 30.0)
        assert factory.protocol is None and watched(clock) == 1
        listener.setblocking(False)
        accepted = []
        try:
            while True:
                accepted.append(listener.accept()[0])
        except BlockingIOError:
            pass
        dispatcher = zerocopy._dispatchers[clock]
        assert select.select([dispatcher], [], [], 10)[0], "the SYN was not sent again in 10s"
        dispatcher.doRead()
        assert factory.failed is None
        assert type(factory.protocol.transport) is zerocopy.UpstreamSocket
        assert watched(clock) == 0 and clock.getDelayedCalls() == []
        factory.protocol.transport.connectionLost(None)
        for s in accepted:
            s.close()
    finally:
        for f in fillers:
            f.close()
        listener.close()


# --- the proxy on the real reactor --------------------------------------------------------------


class Client(protocol.Protocol):
    def __init__(self):
        self.received = b""
        self.closed = defer.Deferred()

    def dataReceived(self, data):
        self.received += data

    def connectionLost(self, reason):
        self.closed.callback(None)


class Echo(protocol.Protocol):
    def dataReceived(self, data):
        self.transport.write(data)


def texts(events) -> list[str]:
    return [formatEvent(e) for e in events]


@defer.inlineCallbacks
def through(factory: ProxyFactory, data: bytes = b""):
    """A client connected through ``factory`` (listening on loopback): it sends ``data``; the
    client protocol, the listening port and the pair once the proxy has one."""
    from twisted.internet import reactor

    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    client = Client()
    yield endpoints.connectProtocol(
        endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port), client)
    if data:
        client.transport.write(data)
    yield until(lambda: factory.pairs or client.closed.called, "the proxy's pair")
    pair = next(iter(factory.pairs.values()), None)
    return client, port, pair


@pytest.mark.parametrize("host, transport_type", [
    ("127.0.0.1", zerocopy.UpstreamSocket),  # connected in the splice's epoll
    ("localhost", tcp.Client),  # a host name: connectTCP resolves it, as before
])
@pytest.mark.real
@pytest_twisted.inlineCallbacks
def test_which_pairs_connect_in_the_splices_epoll(host, transport_type, logged):
    from twisted.internet import reactor

    upstream = reactor.listenTCP(0, protocol.Factory.forProtocol(Echo), interface="127.0.0.1")
    factory = ProxyFactory(f"tcp:host={host}:port={upstream.getHost().port}")
    try:
        client, port, pair = yield through(factory, b"PING\r\n")
        yield until(lambda: client.received == b"PING\r\n", "the echo through the proxy")
        assert type(pair.server.transport) is transport_type
        assert pair.splicer is not None
        client.transport.loseConnection()
        yield client.closed
        yield until(lambda: pair.finished, "the pair's close")
        assert (pair.client.nbytes, pair.server.nbytes) == (6, 6)
        assert factory.connect_failures == 0
        assert any(f"#{pair.id} close" in t and "c2s=6 s2c=6" in t for t in texts(logged))
    finally:
        yield port.stopListening()
        yield upstream.stopListening()


class Resetting(protocol.Protocol):
    def dataReceived(self, data):
        self.transport.abortConnection()  # SO_LINGER 0: RST


@pytest.mark.real
@pytest_twisted.inlineCallbacks
def test_the_target_resetting_resets_the_client(logged):
    """An ``UpstreamSocket`` leg reset by the target: both legs aborted, the close record says
    the server reset it, the client sees a reset."""
    from twisted.internet import reactor

    upstream = reactor.listenTCP(0, protocol.Factory.forProtocol(Resetting),
                                 interface="127.0.0.1")
    factory = ProxyFactory(f"127.0.0.1:{upstream.getHost().port}")
    lost = []
    try:
        client, port, pair = yield through(factory, b"PING\r\n")
        assert type(pair.server.transport) is zerocopy.UpstreamSocket
        client.connectionLost = lambda reason: (lost.append(reason), client.closed.callback(None))
        yield client.closed
        yield until(lambda: pair.finished, "the pair's close")
        assert lost[0].check(error.ConnectionLost)
        assert pair.closed_first == ("server", "reset")
        assert any(f"#{pair.id} close" in t and "first=server how=reset" in t
                   for t in texts(logged))
    finally:
        yield port.stopListening()
        yield upstream.stopListening()


@pytest.mark.real
@pytest.mark.parametrize("zero_copy", [True, False])
@pytest_twisted.inlineCallbacks
def test_refused_counts_and_logs_the_same_either_way(zero_copy, logged):
    """The Connector's refusal and connectTCP's: the same warning, count and close record."""
    dead = free_port()
    factory = ProxyFactory(f"127.0.0.1:{dead}", zero_copy=zero_copy)
    client, port, _ = yield through(factory, b"PING\r\n")
    try:
        yield client.closed
        yield until(lambda: not factory.pairs, "the pair's close")
        assert factory.connect_failures == 1
        warning = [t for t in texts(logged) if "cannot reach" in t]
        assert len(warning) == 1
        assert (f"cannot reach tcp:host=127.0.0.1:port={dead}: Connection was refused by other "
                f"side: {errno.ECONNREFUSED}: {os.strerror(errno.ECONNREFUSED)}; closing"
                in warning[0]), warning
        assert any("first=server how=connect-failed" in t for t in texts(logged))
    finally:
        yield port.stopListening()


@pytest.mark.real
@pytest_twisted.inlineCallbacks
def test_no_answer_hits_the_connect_timeout(logged):
    listener, fillers = unanswering_listener()
    factory = ProxyFactory(f"127.0.0.1:{listener.getsockname()[1]}", connect_timeout=0.5)
    try:
        client, port, pair = yield through(factory, b"PING\r\n")
        assert type(pair.connecting) is zerocopy.Connector
        yield client.closed
        yield until(lambda: not factory.pairs, "the pair's close")
        assert factory.connect_failures == 1
        assert any("no answer within --connect-timeout 0.5s" in t for t in texts(logged))
        yield port.stopListening()
    finally:
        for f in fillers:
            f.close()
        listener.close()


@pytest.mark.real
@pytest_twisted.inlineCallbacks
def test_a_pair_aborted_while_connecting_closes_the_attempt():
    """The drain's deadline (abort_all) while the target has not answered: the attempt's socket
    and pipes are closed, nothing is reported as a connect failure."""
    listener, fillers = unanswering_listener()
    factory = ProxyFactory(f"127.0.0.1:{listener.getsockname()[1]}", connect_timeout=30)
    try:
        client, port, pair = yield through(factory)
        attempt = pair.connecting
        assert type(attempt) is zerocopy.Connector and attempt.sock is not None
        factory.abort_all()
        yield client.closed
        yield until(lambda: pair.finished, "the pair's close")
        assert pair.connecting is None and attempt.sock is None and attempt.pipes is None
        assert factory.connect_failures == 0 and pair.closed_first == ("proxy", "shutdown")
        assert attempt.timer is None
        yield port.stopListening()
    finally:
        for f in fillers:
            f.close()
        listener.close()
