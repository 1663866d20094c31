"""The pool's Twisted adapter and its RESP client: over MemoryReactorClock and StringTransport
(connects, replies, health checks, timeouts, lost and half-closed connections, the drain), then
against the RESP example server and a real redis-server (restarts mid-run, idle connections
closed by the server's timeout)."""

from __future__ import annotations

import pytest
from twisted.internet import defer, error
from twisted.internet.address import IPv4Address
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.testing import MemoryReactorClock, StringTransportWithDisconnection
from twisted.python import failure

from playground.codec.values import Simple
from playground.examples.pool.pool import (
    AcquireTimeout,
    ConnectFailed,
    ConnectionPool,
    PoolClosed,
)
from playground.examples.pool.respclient import (
    ConnectionClosed,
    ReplyError,
    RequestLost,
    RespClientProtocol,
)

PING = b"*1\r\n$4\r\nPING\r\n"

# ============================================================== in memory


class FakeServer:
    """The far end of one connection the pool opened on a MemoryReactorClock."""

    def __init__(self, clock: MemoryReactorClock, index: int):
        host, port, factory, _, _ = clock.tcpClients[index]
        self.connector = clock.connectors[index]
        self.factory = factory
        self.protocol = factory.buildProtocol(IPv4Address("TCP", host, port))
        self.transport = StringTransportWithDisconnection()
        self.transport.protocol = self.protocol
        self.protocol.makeConnection(self.transport)

    def take(self) -> bytes:
        data = self.transport.value()
        self.transport.clear()
        return data

    def reply(self, data: bytes) -> None:
        self.protocol.dataReceived(data)

    def reset(self) -> None:
        self.transport.connected = False
        self.protocol.connectionLost(failure.Failure(error.ConnectionLost("reset by peer")))

    @property
    def client(self) -> RespClientProtocol:
        """The pool's end of this connection (inside the endpoint's wrapper)."""
        return self.protocol._wrappedProtocol

    @property
    def closed(self) -> bool:
        return not self.transport.connected


def make_pool(**kw) -> tuple[ConnectionPool, MemoryReactorClock]:
    clock = MemoryReactorClock()
    clock.advance(100)
    endpoint = TCP4ClientEndpoint(clock, "127.0.0.1", 6379)
    kw.setdefault("max_size", 2)
    return ConnectionPool(endpoint, reactor=clock, **kw), clock


def result(d: defer.Deferred):
    """What a Deferred fired with (a Failure for an error); fails if it has not fired."""
    out = []
    d.addBoth(out.append)
    assert out, "the Deferred has not fired"
    return out[0]


def pending(d: defer.Deferred) -> bool:
    return not d.called


@pytest.mark.memory
def test_acquire_connects_and_a_released_connection_is_reused():
    pool, clock = make_pool()
    d = pool.acquire()
    assert len(clock.tcpClients) == 1 and pending(d)
    server = FakeServer(clock, 0)
    client = result(d)
    assert isinstance(client, RespClientProtocol)
    reply = client.request("SET", "k", b"v")
    assert server.take() == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"
    server.reply(b"+OK\r\n")
    assert result(reply) == Simple(b"OK")
    pool.release(client)
    assert result(pool.acquire()) is client
    assert len(clock.tcpClients) == 1 and pool.connections_made == 1


@pytest.mark.memory
def test_pipelined_replies_split_anywhere_reach_their_requests_in_order():
    pool, clock = make_pool()
    d = pool.acquire()
    server = FakeServer(clock, 0)
    client = result(d)
    replies = [client.request("GET", "a"), client.request("GET", "b"), client.request("INCR", "c")]
    data = b"$1\r\n1\r\n$-1\r\n-ERR value is not an integer or out of range\r\n"
    for i in range(len(data)):
        server.reply(data[i:i + 1])
    assert result(replies[0]) == b"1" and result(replies[1]) is None
    err = result(replies[2])
    assert err.check(ReplyError) and "not an integer" in str(err.value)
    assert client.pending == 0 and not server.closed  # an error reply keeps the connection


@pytest.mark.memory
def test_an_idle_connection_is_pinged_before_it_is_handed_out():
    pool, clock = make_pool(check_after=5)
    d = pool.acquire()
    server = FakeServer(clock, 0)
    client = result(d)
    pool.release(client)
    clock.advance(6)
    d = pool.acquire()
    assert pending(d) and server.take() == PING
    server.reply(b"+PONG\r\n")
    assert result(d) is client and pool.checks == 1


@pytest.mark.memory
def test_a_connection_that_fails_its_check_is_replaced():
    pool, clock = make_pool(check_after=5)
    d = pool.acquire()
    old = FakeServer(clock, 0)
    pool.release(result(d))
    clock.advance(6)
    d = pool.acquire()
    assert old.take() == PING
    old.reply(b"-LOADING Redis is loading the dataset in memory\r\n")
    assert old.closed and pending(d) and len(clock.tcpClients) == 2
    new = FakeServer(clock, 1)
    assert result(d) is new.client


@pytest.mark.memory
def test_a_check_that_gets_no_answer_is_aborted_and_replaced():
    pool, clock = make_pool(check_after=5, connect_timeout=2, acquire_timeout=10)
    d = pool.acquire()
    old = FakeServer(clock, 0)
    pool.release(result(d))
    clock.advance(6)
    d = pool.acquire()
    clock.advance(2)
    assert old.closed and len(clock.tcpClients) == 2
    FakeServer(clock, 1)
    assert isinstance(result(d), RespClientProtocol)


@pytest.mark.memory
def test_a_waiter_times_out_when_the_pool_stays_full():
    pool, clock = make_pool(max_size=1, acquire_timeout=3)
    d = pool.acquire()
    FakeServer(clock, 0)
    held = result(d)
    second = pool.acquire()
    clock.advance(2.9)
    assert pending(second)
    clock.advance(0.1)
    assert result(second).check(AcquireTimeout)
    pool.release(held)
    assert pool.core.count("idle") == 1


@pytest.mark.memory
def test_a_refused_connect_fails_the_waiter_at_once():
    pool, clock = make_pool()
    d = pool.acquire()
    factory = clock.tcpClients[0][2]
    factory.clientConnectionFailed(clock.connectors[0],
                                   failure.Failure(error.ConnectionRefusedError()))
    f = result(d)
    assert f.check(ConnectFailed) and "refused" in str(f.value)
    assert pool.core.size == 0


@pytest.mark.memory
def test_a_connect_that_takes_too_long_is_stopped():
    pool, clock = make_pool(connect_timeout=2, acquire_timeout=10)
    d = pool.acquire()
    clock.advance(2)
    assert clock.connectors[0].stoppedConnecting
    assert result(d).check(ConnectFailed)


@pytest.mark.memory
def test_requests_in_flight_on_a_lost_connection_fail_and_idempotent_ones_are_sent_again():
    pool, clock = make_pool(max_size=1)
    get = pool.execute("GET", "k", idempotent=True)
    incr = pool.execute("INCR", "n")
    first = FakeServer(clock, 0)
    assert first.take() == b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
    first.reset()
    # INCR waited first: the next connection is its own; the GET waits behind it
    second = FakeServer(clock, 1)
    assert second.take() == b"*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n"
    second.reset()
    f = result(incr)
    assert f.check(RequestLost) and "INCR got no reply" in str(f.value)
    third = FakeServer(clock, 2)
    assert third.take() == b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
    third.reply(b"$1\r\nv\r\n")
    assert result(get) == b"v"
    assert len(clock.tcpClients) == 3


@pytest.mark.memory
def test_a_server_half_close_fails_what_is_in_flight_and_closes_the_connection():
    pool, clock = make_pool()
    d = pool.acquire()
    server = FakeServer(clock, 0)
    client = result(d)
    reply = client.request("BLPOP", "q", 0)
    server.protocol.readConnectionLost()
    assert result(reply).check(RequestLost)
    assert server.closed and pool.core.size == 0
    assert result(client.request("PING")).check(ConnectionClosed)


@pytest.mark.memory
def test_an_idle_connection_is_closed_after_the_idle_timeout():
    pool, clock = make_pool(idle_timeout=30)
    d = pool.acquire()
    server = FakeServer(clock, 0)
    pool.release(result(d))
    clock.advance(29)
    assert not server.closed
    clock.advance(1)
    assert server.closed and pool.core.size == 0 and not clock.getDelayedCalls()


@pytest.mark.memory
def test_a_connection_the_server_closes_while_idle_is_forgotten():
    pool, clock = make_pool()
    d = pool.acquire()
    server = FakeServer(clock, 0)
    pool.release(result(d))
    server.protocol.readConnectionLost()
    assert server.closed and pool.core.size == 0
    pool.acquire()
    assert len(clock.tcpClients) == 2


@pytest.mark.memory
def test_a_cancelled_acquire_gives_up_its_place():
    pool, clock = make_pool(max_size=1)
    d = pool.acquire()
    FakeServer(clock, 0)
    held = result(d)
    waiting = pool.acquire()
    waiting.cancel()
    assert result(waiting).check(defer.CancelledError)
    pool.release(held)
    assert pool.core.count("idle") == 1


@pytest.mark.memory
def test_releasing_with_replies_outstanding_closes_the_connection():
    pool, clock = make_pool()
    d = pool.acquire()
    server = FakeServer(clock, 0)
    client = result(d)
    reply = client.request("GET", "k")
    pool.release(client)
    assert server.closed and result(reply).check(RequestLost) and pool.core.size == 0


@pytest.mark.memory
@pytest.mark.parametrize("data", [b"?garbage\r\n", b"+PONG\r\n"])
def test_an_unreadable_or_unasked_reply_aborts_the_connection(data):
    pool, clock = make_pool()
    d = pool.acquire()
    server = FakeServer(clock, 0)
    pool.release(result(d))
    server.reply(data)
    assert server.closed and pool.core.size == 0


@pytest.mark.memory
def test_close_closes_idle_connections_now_and_those_in_use_at_release():
    pool, clock = make_pool(max_size=2)
    first, second = pool.acquire(), pool.acquire()
    a, b = FakeServer(clock, 0), FakeServer(clock, 1)
    held = result(first)
    pool.release(result(second))
    closed = pool.close()
    assert b.closed and not a.closed and pending(closed)
    assert result(pool.acquire()).check(PoolClosed)
    pool.release(held)
    assert a.closed and result(closed) is None
    assert not clock.getDelayedCalls()


@pytest.mark.memory
def test_close_fails_the_waiters_and_stops_connects_under_way():
    pool, clock = make_pool(max_size=2)
    first, second = pool.acquire(), pool.acquire()
    a = FakeServer(clock, 0)
    held = result(first)
    waiter = pool.acquire()
    closed = pool.close()
    assert result(second).check(PoolClosed) and result(waiter).check(PoolClosed)
    assert clock.connectors[1].stoppedConnecting
    pool.release(held)
    assert a.closed and result(closed) is None
