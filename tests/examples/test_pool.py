"""The pool's Twisted adapter and its RESP client: over MemoryReactorClock and StringTransport
(connects, replies, health checks, timeouts, lost and half-closed connections, the drain), then
against the RESP example server and a real redis-server (restarts mid-run, idle connections
closed by the server's timeout, requests timed out on a server that never answers or sleeps)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest
import pytest_twisted
import redis
from twisted.internet import defer, error, protocol
from twisted.internet.address import IPv4Address
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.testing import MemoryReactorClock, StringTransportWithDisconnection
from twisted.python import failure

from playground.codec.values import Simple
from playground.examples.pool import cli
from playground.examples.pool.pool import (
    AcquireTimeout,
    ConnectFailed,
    ConnectionPool,
    PoolClosed,
    Unpooled,
)
from playground.examples.pool.respclient import (
    ConnectionClosed,
    ReplyError,
    RequestLost,
    RequestTimeout,
    RespClientProtocol,
)
from playground.examples.resp.server import RespFactory
from tests.support.net import free_port
from tests.support.paths import ROOT
from tests.support.processes import start_redis, stop_process
from tests.support.waiting import until, wait_until

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


def connected(pool: ConnectionPool, clock: MemoryReactorClock,
              index: int = 0) -> tuple[RespClientProtocol, FakeServer]:
    """Acquire from ``pool`` and accept the connection it opens (the ``index``-th on ``clock``):
    the pool's client and the far end."""
    d = pool.acquire()
    server = FakeServer(clock, index)
    return result(d), server


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
    client, server = connected(pool, clock)
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
    client, server = connected(pool, clock)
    pool.release(client)
    clock.advance(6)
    d = pool.acquire()
    assert pending(d) and server.take() == PING
    server.reply(b"+PONG\r\n")
    assert result(d) is client and pool.checks == 1


@pytest.mark.memory
def test_a_connection_that_fails_its_check_is_replaced():
    pool, clock = make_pool(check_after=5)
    client, old = connected(pool, clock)
    pool.release(client)
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
    client, old = connected(pool, clock)
    pool.release(client)
    clock.advance(6)
    d = pool.acquire()
    clock.advance(2)
    assert old.closed and len(clock.tcpClients) == 2
    FakeServer(clock, 1)
    assert isinstance(result(d), RespClientProtocol)


@pytest.mark.memory
def test_a_waiter_times_out_when_the_pool_stays_full():
    pool, clock = make_pool(max_size=1, acquire_timeout=3)
    held, _ = connected(pool, clock)
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
    client, server = connected(pool, clock)
    reply = client.request("BLPOP", "q", 0)
    server.protocol.readConnectionLost()
    assert result(reply).check(RequestLost)
    assert server.closed and pool.core.size == 0
    assert result(client.request("PING")).check(ConnectionClosed)


@pytest.mark.memory
def test_an_idle_connection_is_closed_after_the_idle_timeout():
    pool, clock = make_pool(idle_timeout=30)
    client, server = connected(pool, clock)
    pool.release(client)
    clock.advance(29)
    assert not server.closed
    clock.advance(1)
    assert server.closed and pool.core.size == 0 and not clock.getDelayedCalls()


@pytest.mark.memory
def test_reuse_moves_the_idle_deadline_and_one_timer_follows_it():
    pool, clock = make_pool(idle_timeout=30, check_after=None)
    client, server = connected(pool, clock)
    pool.release(client)
    clock.advance(10)
    pool.release(result(pool.acquire()))  # idle again from t=10: closed at t=40, not 30
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(20)
    assert not server.closed and len(clock.getDelayedCalls()) == 1
    clock.advance(10)
    assert server.closed and not clock.getDelayedCalls()


@pytest.mark.memory
def test_a_connection_the_server_closes_while_idle_is_forgotten():
    pool, clock = make_pool()
    client, server = connected(pool, clock)
    pool.release(client)
    server.protocol.readConnectionLost()
    assert server.closed and pool.core.size == 0
    pool.acquire()
    assert len(clock.tcpClients) == 2


@pytest.mark.memory
def test_a_cancelled_acquire_gives_up_its_place():
    pool, clock = make_pool(max_size=1)
    held, _ = connected(pool, clock)
    waiting = pool.acquire()
    waiting.cancel()
    assert result(waiting).check(defer.CancelledError)
    pool.release(held)
    assert pool.core.count("idle") == 1


@pytest.mark.memory
def test_releasing_with_replies_outstanding_closes_the_connection():
    pool, clock = make_pool()
    client, server = connected(pool, clock)
    reply = client.request("GET", "k")
    pool.release(client)
    assert server.closed and result(reply).check(RequestLost) and pool.core.size == 0


@pytest.mark.memory
@pytest.mark.parametrize("data", [b"?garbage\r\n", b"+PONG\r\n"])
def test_an_unreadable_or_unasked_reply_aborts_the_connection(data):
    pool, clock = make_pool()
    client, server = connected(pool, clock)
    pool.release(client)
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


@pytest.mark.memory
def test_unpooled_opens_a_connection_per_acquire_and_closes_it_at_release():
    clock = MemoryReactorClock()
    source = Unpooled(TCP4ClientEndpoint(clock, "127.0.0.1", 6379), reactor=clock)
    first, second = source.acquire(), source.acquire()
    a, b = FakeServer(clock, 0), FakeServer(clock, 1)
    assert result(first) is a.client and result(second) is b.client
    closed = source.close()
    source.release(a.client)
    assert a.closed and pending(closed)
    source.release(b.client)
    assert b.closed and result(closed) is None and source.connections_made == 2


@pytest.mark.memory
def test_unpooled_gives_up_a_connect_after_the_connect_timeout():
    clock = MemoryReactorClock()
    source = Unpooled(TCP4ClientEndpoint(clock, "127.0.0.1", 6379), connect_timeout=2,
                      reactor=clock)
    d = source.acquire()
    clock.advance(2)
    assert result(d).check(ConnectFailed) and clock.connectors[0].stoppedConnecting


@pytest.mark.memory
def test_a_request_without_a_reply_times_out_closes_its_connection_and_the_pool_refills():
    pool, clock = make_pool(max_size=1, request_timeout=2, acquire_timeout=10)
    get = pool.execute("GET", "k", idempotent=True)
    waiting = pool.execute("GET", "j")
    silent = FakeServer(clock, 0)
    assert silent.take() == b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
    clock.advance(1.9)
    assert pending(get)
    clock.advance(0.1)
    f = result(get)
    assert f.check(RequestTimeout) and "GET got no reply within 2s" in str(f.value)
    assert silent.closed and silent.transport.disconnected  # aborted, not sent again
    late = silent.client
    silent.reply(b"$4\r\nlate\r\n")  # a reply after the timeout: read by nobody
    fresh = FakeServer(clock, 1)  # the waiter's new connection
    assert fresh.take() == b"*2\r\n$3\r\nGET\r\n$1\r\nj\r\n"
    fresh.reply(b"$1\r\nv\r\n")
    assert result(waiting) == b"v" and fresh.client is not late
    assert pool.core.size == 1 and len(clock.tcpClients) == 2


@pytest.mark.memory
def test_each_pipelined_request_has_its_own_deadline_and_those_behind_are_lost():
    pool, clock = make_pool(request_timeout=2)
    client, server = connected(pool, clock)
    first = client.request("GET", "a")
    clock.advance(1)
    second, third = client.request("GET", "b"), client.request("GET", "c")
    server.reply(b"$1\r\n1\r\n")  # the first answered at t+1: the second is due at t+3
    assert result(first) == b"1"
    clock.advance(1.9)
    assert pending(second) and not server.closed
    clock.advance(0.1)
    assert result(second).check(RequestTimeout) and result(third).check(RequestLost)
    assert server.closed and pool.core.size == 0


@pytest.mark.memory
def test_answered_requests_leave_no_timer_behind_and_no_timeout_means_none():
    for timeout in (2, None):
        pool, clock = make_pool(request_timeout=timeout, idle_timeout=None, check_after=None)
        client, server = connected(pool, clock)
        reply = client.request("PING")
        clock.advance(1)
        server.reply(b"+PONG\r\n")
        assert result(reply) == Simple(b"PONG")
        clock.advance(100)
        assert not server.closed and not clock.getDelayedCalls()
        if timeout is None:
            slow = client.request("BLPOP", "q", 0)
            clock.advance(1000)
            assert pending(slow) and not server.closed


@pytest.mark.memory
def test_unpooled_times_out_a_request_without_a_reply():
    clock = MemoryReactorClock()
    source = Unpooled(TCP4ClientEndpoint(clock, "127.0.0.1", 6379), request_timeout=1.5,
                      reactor=clock)
    d = source.execute("GET", "k")
    server = FakeServer(clock, 0)
    clock.advance(1.4)
    assert pending(d)
    clock.advance(0.1)
    f = result(d)
    assert f.check(RequestTimeout) and "within 1.5s" in str(f.value)
    assert server.closed and source.open_connections == 0 and not clock.getDelayedCalls()
    answered = source.execute("GET", "k")
    FakeServer(clock, 1).reply(b"$1\r\nv\r\n")
    assert result(answered) == b"v" and not clock.getDelayedCalls()


# ============================================================== the command line


@pytest.mark.pure
@pytest.mark.parametrize("argv, flag", [
    (["--target", "6379", "--requests", "0"], "--requests"),
    (["--target", "6379", "-c", "many"], "--concurrency"),
    (["--target", "6379", "--pool-size", "3", "--no-pool"], "--no-pool"),
    (["--target", "6379", "--acquire-timeout", "0"], "--acquire-timeout"),
    (["--target", "6379", "--check-after", "-1"], "--check-after"),
    (["--target", "6379", "--idle-timeout", "nan"], "--idle-timeout"),
    (["--target", "db:port"], "--target"),
    (["--requests", "5"], "--target"),
    (["--target", "8080", "--http", "--check-after", "1"], "--check-after"),
    (["--target", "6379", "--timeout", "-1"], "--timeout"),
    (["--target", "8080", "--http", "--timeout", "1"], "--timeout"),
    # digits 0-9 only, as every command's numbers: int() and float() read these
    (["--target", "6379", "--requests", " 5"], "--requests/-n: expected a whole number"),
    (["--target", "6379", "--rounds", "+2"], "--rounds: expected a whole number"),
    (["--target", "6379", "--pool-size", "1_0"], "--pool-size: expected a whole number"),
    (["--target", "6379", "--pause", "1e3"], "--pause: expected a number of seconds"),
    (["--target", "6379", "--timeout", "inf"], "--timeout: expected a number of seconds"),
])
def test_a_bad_flag_is_named(argv, flag, capsys):
    with pytest.raises(SystemExit) as e:
        cli.parse_args(argv, "tcpplay-pool")
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("tcpplay-pool: error:") and flag in err, err


@pytest.mark.pure
def test_the_report_gives_rate_percentiles_connections_and_errors():
    latencies = tuple(i / 1000 for i in range(1, 101))  # 1..100 ms
    report = cli.Report("pool", 102, 4, 8, 0.5, latencies, (("ConnectFailed: refused", 2),), 8)
    assert report.percentile(50) == 0.050 and report.percentile(99) == 0.099
    # the rate is of the 100 that succeeded (it counted the 2 failed: 204/s), the failed beside
    assert report.as_dict()["requests_per_second"] == 200.0 and report.failed == 2
    assert report.as_dict()["failed_per_second"] == 4.0
    text = report.text("6379")
    assert "  200 requests/s succeeded, 4/s failed (0.50 s)\n" in text
    assert "p50 50.00 ms, p99 99.00 ms" in text
    assert "8 TCP connection(s) opened" in text and "2 x ConnectFailed: refused" in text
    assert "0 health check(s) (PING)" in text
    # every request failed: no latency to give (it read "p50 0.00 ms" as if they were instant)
    failed = cli.Report("pool", 3, 1, 1, 0.5, (), (("ConnectFailed: refused", 3),), 3)
    assert "latency: none (no request succeeded)" in failed.text("6379")
    assert "0.00 ms" not in failed.text("6379")
    assert [failed.as_dict()[k] for k in ("p50_ms", "p99_ms", "max_ms")] == [None] * 3
    assert failed.as_dict()["requests_per_second"] == 0.0  # it said 6/s
    assert "  0 requests/s succeeded, 6/s failed (0.50 s)" in failed.text("6379")
    # none failed: the line as it always read
    ok = cli.Report("pool", 100, 4, 8, 0.5, latencies, (), 8)
    assert "  200 requests/s (0.50 s)\n" in ok.text("6379")
    assert ok.as_dict()["failed_per_second"] == 0.0
    assert cli.Report("no pool", 1, 1, None, 1.0, (0.001,), (), 1, round=2).text(
        "6379", "round 2: ").startswith("round 2: 1 requests to 6379, 1 at a time, a new conn")


@pytest.mark.real
@pytest.mark.timeout(60)
@pytest_twisted.inlineCallbacks
def test_rounds_reuse_the_pool_and_ping_connections_that_idled(resp_example):
    from twisted.internet import reactor

    args = cli.parse_args(["--target", str(resp_example.port), "-n", "20", "-c", "2",
                           "--pool-size", "2", "--rounds", "3", "--pause", "0.3",
                           "--check-after", "0.2"])
    shown = []
    reports = yield defer.ensureDeferred(cli.measure(reactor, args, shown.append))
    assert shown == reports and [r.round for r in reports] == [1, 2, 3]
    assert [(r.connections, r.checks, r.failed) for r in reports] == [(2, 0, 0), (0, 2, 0),
                                                                     (0, 2, 0)]


@pytest.mark.pure
def test_python_m_playground_lists_pool(capsys):
    from playground.__main__ import main

    assert main(["--help"]) == 0
    assert "pool" in capsys.readouterr().out


# ============================================================== real servers


def tcp_pool(port: int, **kw) -> ConnectionPool:
    from twisted.internet import reactor

    return ConnectionPool(TCP4ClientEndpoint(reactor, "127.0.0.1", port), **kw)


class InProcessResp:
    """The RESP example server on the test's reactor, restartable on its port (its keys kept:
    a restart drops every connection and stops listening for a moment)."""

    def __init__(self, **kw):
        from twisted.internet import reactor

        self.factory = RespFactory(reactor=reactor, **kw)
        self.port = 0
        self.listening = None

    @defer.inlineCallbacks
    def start(self):
        from twisted.internet import endpoints, reactor

        ep = endpoints.TCP4ServerEndpoint(reactor, self.port, interface="127.0.0.1")
        self.listening = yield ep.listen(self.factory)
        self.port = self.listening.getHost().port

    @defer.inlineCallbacks
    def stop(self):
        yield self.listening.stopListening()
        for client in list(self.factory.clients.values()):
            client.transport.abortConnection()

    def executed(self, name: bytes) -> int:
        """The integer stored at key ``name``, read inside the server."""
        engine = self.factory.engine
        session = engine.connect(0.0)
        try:
            return int(engine.execute(session, [b"GET", name], 0.0)[0].value or 0)
        finally:
            engine.disconnect(session)


@pytest.fixture
def resp_example():
    server = InProcessResp()
    pytest_twisted.blockon(server.start())
    yield server
    pytest_twisted.blockon(server.stop())


@pytest.mark.real
@pytest.mark.timeout(60)
@pytest_twisted.inlineCallbacks
def test_many_concurrent_requests_share_max_size_connections(redis_server):
    pool = tcp_pool(redis_server.port, max_size=4)
    ids = [b"r%d" % i for i in range(400)]
    replies = yield defer.gatherResults([pool.execute("ECHO", i) for i in ids])
    assert replies == ids
    assert pool.connections_made == 4
    yield pool.close()
    assert pool.open_connections == 0


@pytest.mark.real
@pytest.mark.timeout(60)
@pytest_twisted.inlineCallbacks
def test_a_restart_mid_run_loses_no_request_and_runs_none_twice(resp_example):
    """INCR is not idempotent: the pool never sends it twice. Each request ends exactly once:
    a reply (a count no other request got) or an error; the server ran every answered INCR, and
    of the lost ones (RequestLost: sent, no reply) some, none or all."""
    pool = tcp_pool(resp_example.port, max_size=4, acquire_timeout=10)
    outcomes = {}

    def record(result, i):
        assert i not in outcomes, f"request {i} ended twice"
        outcomes[i] = result

    def send(i):
        d = pool.execute("INCR", "hits")
        d.addBoth(record, i)
        return d.addErrback(lambda _: None)

    first = [send(i) for i in range(200)]
    yield until(lambda: len(outcomes) >= 50, "the first replies")
    before = pool.connections_made  # all of them dropped by the restart
    yield resp_example.stop()
    yield resp_example.start()  # on the same port
    # The rest once the first have all ended and the pool has seen every connection the restart
    # dropped close (under a full suite's load, a request went out on an idle one whose reset
    # was not read yet, and one queued behind a connect the restart refused failed with it):
    # the claim is about requests sent after the pool saw the restart.
    yield defer.gatherResults(first)
    yield until(lambda: pool.open_connections <= pool.connections_made - before,
                "the pool to see the dropped connections close")
    rest = [send(i) for i in range(200, 400)]
    yield defer.gatherResults(rest)
    assert len(outcomes) == 400
    counts = [r for r in outcomes.values() if not isinstance(r, failure.Failure)]
    errors = [r for r in outcomes.values() if isinstance(r, failure.Failure)]
    assert len(set(counts)) == len(counts), "a reply reached two requests"
    assert all(f.check(RequestLost, ConnectFailed) for f in errors), errors
    failed = {i: outcomes[i] for i in range(200, 400) if isinstance(outcomes[i], failure.Failure)}
    assert not failed, failed
    ran = resp_example.executed(b"hits")
    lost = sum(1 for f in errors if f.check(RequestLost))
    assert len(counts) <= ran <= len(counts) + lost
    assert pool.connections_made > 4  # the dropped ones were replaced
    yield pool.close()


@pytest.mark.real
@pytest.mark.timeout(90)
@pytest_twisted.inlineCallbacks
def test_redis_server_restarted_mid_run_idempotent_requests_are_answered(tmp_path):
    from twisted.internet import threads

    server = start_redis(str(tmp_path))
    pool = tcp_pool(server.port, max_size=4, acquire_timeout=10)
    outcomes = {}

    def send(i):
        d = pool.execute("ECHO", b"r%d" % i, idempotent=True)
        d.addBoth(lambda r: outcomes.setdefault(i, []).append(r))
        return d

    def restart():
        stop_process(server.proc)
        return start_redis(str(tmp_path), port=server.port)

    try:
        first = [send(i) for i in range(300)]
        yield until(lambda: len(outcomes) >= 50, "the first replies")
        server = yield threads.deferToThread(restart)  # the load goes on meanwhile
        rest = [send(i) for i in range(300, 400)]
        yield defer.DeferredList(first + rest, consumeErrors=True)
        assert sorted(outcomes) == list(range(400))
        assert all(len(r) == 1 for r in outcomes.values()), "a request ended twice"
        for i, [r] in outcomes.items():
            if isinstance(r, failure.Failure):  # only while the server was down
                assert r.check(ConnectFailed, RequestLost) and i < 300, (i, r)
            else:
                assert r == b"r%d" % i
        assert all(outcomes[i] == [b"r%d" % i] for i in range(300, 400))
        yield pool.close()
    finally:
        stop_process(server.proc)


@pytest.mark.real
@pytest.mark.timeout(60)
@pytest_twisted.inlineCallbacks
def test_connections_the_servers_idle_timeout_closed_are_replaced(tmp_path):
    """redis-server's ``timeout 1`` closes the pooled connections while they idle; the pool
    sees each close (a FIN) and forgets it; the next requests get new connections."""
    server = start_redis(str(tmp_path), extra=("--timeout", "1"))
    try:
        pool = tcp_pool(server.port, max_size=3, check_after=0.5)
        replies = yield defer.gatherResults([pool.execute("PING") for _ in range(6)])
        assert replies == [Simple(b"PONG")] * 6 and pool.connections_made == 3
        yield until(lambda: pool.core.size == 0, "the server's idle timeout", timeout=20)
        replies = yield defer.gatherResults([pool.execute("PING") for _ in range(6)])
        assert replies == [Simple(b"PONG")] * 6 and pool.connections_made == 6
        yield pool.close()
    finally:
        stop_process(server.proc)


@pytest.mark.real
@pytest.mark.timeout(90)
@pytest_twisted.inlineCallbacks
def test_the_health_check_catches_a_close_the_pool_has_not_read_yet(tmp_path):
    """A busy client (its reactor blocked) has not read the FIN of a connection that the
    server's ``timeout`` closed. With the check, the PING before reuse finds it dead and the
    request goes out on a new connection; without it, the request is sent on the dead one and
    lost (INCR: not sent again)."""
    import redis as redispy

    server = start_redis(str(tmp_path), extra=("--timeout", "1"))
    admin = redispy.Redis(port=server.port)
    try:
        for check_after in (0.5, None):
            pool = tcp_pool(server.port, max_size=1, check_after=check_after)
            yield pool.execute("PING")
            # Blocks the reactor on purpose: the pool reads nothing until the server has
            # closed its connection (only the admin connection is left).
            wait_until(lambda: len(admin.client_list()) == 1, timeout=20,
                       what="the server's idle timeout")
            d = pool.execute("INCR", "n")
            if check_after is None:
                with pytest.raises(RequestLost):
                    yield d
                assert pool.checks == 0
            else:
                assert (yield d) == 1
                assert pool.checks == 1 and pool.connections_made == 2
            yield pool.close()
    finally:
        admin.close()
        stop_process(server.proc)


@pytest.mark.real
@pytest.mark.timeout(60)
@pytest_twisted.inlineCallbacks
def test_the_resp_example_servers_idle_timeout_likewise():
    server = InProcessResp(idle_timeout=0.5)
    yield server.start()
    try:
        pool = tcp_pool(server.port, max_size=2, check_after=0.2)
        yield defer.gatherResults([pool.execute("SET", "k", "v") for _ in range(4)])
        assert pool.connections_made == 2
        yield until(lambda: pool.core.size == 0, "the server's idle timeout")
        assert (yield pool.execute("GET", "k")) == b"v"
        assert pool.connections_made == 3
        yield pool.close()
    finally:
        yield server.stop()


@pytest.mark.real
@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", [[], ["--no-pool"]])
def test_the_command_line_against_redis_server(redis_server, mode):
    sizing = mode or ["--pool-size", "3"]
    out = subprocess.run(
        [sys.executable, "-m", "playground", "pool", "--target", str(redis_server.port),
         "--requests", "300", "--concurrency", "6", *sizing, "--json"],
        capture_output=True, text=True, timeout=100, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["requests"] == 300 and report["failed"] == 0 and report["p99_ms"] > 0
    assert report["connections"] == (300 if mode else 3)


@pytest.mark.real
@pytest.mark.timeout(60)
def test_the_command_line_exits_1_when_requests_fail():
    out = subprocess.run(
        [sys.executable, "-m", "playground", "pool", "--target", str(free_port()),
         "--requests", "3"], capture_output=True, text=True, timeout=50, cwd=ROOT)
    assert out.returncode == 1
    assert "3 request(s) failed" in out.stdout and "ConnectFailed" in out.stdout


@pytest.fixture
def http_example():
    """The example HTTP responder in this process on a free loopback port."""
    from twisted.internet import endpoints, reactor

    from playground.examples.http.server import HttpFactory

    factory = HttpFactory(reactor, max_connections=2000, access_log=False)
    ep = endpoints.serverFromString(reactor, "tcp:0:interface=127.0.0.1:backlog=1024")
    port = pytest_twisted.blockon(ep.listen(factory))
    factory.port = port.getHost().port
    yield factory
    pytest_twisted.blockon(defer.maybeDeferred(port.stopListening))


@pytest.mark.real
@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", [[], ["--no-pool"]])
@pytest_twisted.inlineCallbacks
def test_http_through_twisteds_pool_and_without(http_example, mode):
    """The connections the client counts are those the server saw."""
    from twisted.internet import reactor

    before = http_example.limits.total
    args = cli.parse_args(["--http", "--target", str(http_example.port), "-n", "200", "-c", "4",
                           *(mode or ["--pool-size", "2"])])
    [report] = yield defer.ensureDeferred(cli.measure(reactor, args))
    assert report.failed == 0 and len(report.latencies) == 200
    yield until(lambda: http_example.limits.open == 0, "the connections to close")
    assert report.connections == http_example.limits.total - before
    if mode:
        assert report.connections == 200 and report.mode == "http no pool"
    else:
        assert 2 <= report.connections <= 4 and report.mode == "http pool"


@pytest.mark.real
@pytest.mark.timeout(120)
@pytest_twisted.inlineCallbacks
def test_resp_connections_counted_are_those_the_server_saw(resp_example):
    from twisted.internet import reactor

    for mode, expected in ((["--pool-size", "3"], 3), (["--no-pool"], 150)):
        before = resp_example.factory.limits.total
        args = cli.parse_args(["--target", str(resp_example.port), "-n", "150", "-c", "5", *mode])
        [report] = yield defer.ensureDeferred(cli.measure(reactor, args))
        assert report.failed == 0 and report.connections == expected
        yield until(lambda: resp_example.factory.limits.open == 0, "the connections to close")
        assert resp_example.factory.limits.total - before == expected


class SilentFirst(protocol.Factory):
    """Its first connection accepts and never answers; the later ones are the RESP example."""

    def __init__(self):
        from twisted.internet import reactor

        self.resp = RespFactory(reactor=reactor)
        self.accepted = 0

    def buildProtocol(self, addr):
        self.accepted += 1
        if self.accepted == 1:
            return protocol.Protocol()  # reads, never writes
        return self.resp.buildProtocol(addr)


@pytest.mark.real
@pytest.mark.timeout(60)
@pytest_twisted.inlineCallbacks
def test_a_server_that_never_answers_times_out_and_the_next_request_gets_a_good_connection():
    from twisted.internet import endpoints, reactor

    listening = yield endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
        SilentFirst())
    pool = tcp_pool(listening.getHost().port, max_size=1, request_timeout=0.5)
    try:
        start = reactor.seconds()
        with pytest.raises(RequestTimeout, match="SET got no reply within 0.5s"):
            yield pool.execute("SET", "k", "v", idempotent=True)
        assert 0.5 <= reactor.seconds() - start < 2.0
        assert (yield pool.execute("SET", "k", "v")) == Simple(b"OK")
        assert (yield pool.execute("GET", "k")) == b"v"
        assert pool.connections_made == 2
    finally:
        yield pool.close()
        yield listening.stopListening()


@pytest.mark.real
@pytest.mark.timeout(60)
@pytest_twisted.inlineCallbacks
def test_redis_debug_sleep_times_out_and_the_late_reply_reaches_nobody(tmp_path):
    """``DEBUG SLEEP 1`` outlasts a 0.5 s request timeout: it fails at 0.5 s and its connection
    is aborted; the GET sent right after waits on a new connection for redis-server to wake,
    and gets its own reply, not the sleep's late ``+OK``."""
    from twisted.internet import reactor

    server = start_redis(str(tmp_path), extra=("--enable-debug-command", "local"))
    try:
        pool = tcp_pool(server.port, max_size=1, request_timeout=0.8)
        yield pool.execute("SET", "k", "v")
        start = reactor.seconds()
        with pytest.raises(RequestTimeout, match="DEBUG got no reply within 0.8s"):
            yield pool.execute("DEBUG", "SLEEP", "1.2")
        assert 0.8 <= reactor.seconds() - start < 2.0
        assert (yield pool.execute("GET", "k")) == b"v"
        assert pool.connections_made == 2 and pool.core.size == 1
        yield pool.close()
    finally:
        stop_process(server.proc)


@pytest.mark.real
@pytest.mark.timeout(60)
def test_the_command_line_counts_timed_out_requests(tmp_path):
    server = start_redis(str(tmp_path), extra=("--enable-debug-command", "local"))
    try:
        sleeper = subprocess.Popen(["redis-cli", "-p", str(server.port), "DEBUG", "SLEEP", "3"],
                                   stdout=subprocess.DEVNULL)
        out = subprocess.run(
            [sys.executable, "-m", "playground", "pool", "--target", str(server.port),
             "--requests", "4", "--concurrency", "2", "--timeout", "0.5"],
            capture_output=True, text=True, timeout=50, cwd=ROOT)
        sleeper.wait(timeout=10)
    finally:
        stop_process(server.proc)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "RequestTimeout" in out.stdout and "within 0.5s" in out.stdout


@pytest.mark.real
@pytest.mark.timeout(60)
def test_the_command_line_interrupted_says_so(redis_server):
    # Ctrl-C mid-run printed nothing and exited 0, as a run with nothing to report
    before = redis.Redis(port=redis_server.port).info("stats")["total_commands_processed"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "playground", "pool", "--target", str(redis_server.port),
         "--requests", "100000000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=ROOT)
    try:
        wait_until(lambda: redis.Redis(port=redis_server.port).info("stats")[
            "total_commands_processed"] > before + 100, what="requests under way")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        stop_process(proc)
    assert proc.returncode == 1, err
    assert out == "" and err.endswith("pool: interrupted: round 1 of 1 did not finish (no "
                                      "figures for it)\n") and err.count("\n") == 1


@pytest.mark.pure
def test_the_help_shows_each_default_as_every_command_does():
    """``[default: X]`` at the end of an option's text, as the twistd subcommands' and
    tcpplay-replay's help; argparse's ``(default: None)`` on the required --target and
    ``(default: False)`` on the flags were shown before, beside ``[default: 5; ...]``."""
    text = " ".join(cli.build_parser().format_help().split())
    assert "(default:" not in text
    assert "how many requests [default: 10000]" in text
    assert "close connections idle this long (0: never) [default: 60]" in text
    assert "seconds a request waits for a free connection [default: 5; not with --http]" in text
    assert "tls:...) --requests" in text  # the required --target: no default
    assert "closed after it --http" in text  # a flag: none
