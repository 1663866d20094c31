"""The splice with StringTransport and MemoryReactorClock: pause-until-connected, producers,
half-close each way, resets, connect and idle timeouts, limits, drain then abort, observers."""

from __future__ import annotations

import pytest
from twisted.internet import error
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from playground.common.limits import Refusal
from playground.proxy import splice
from playground.proxy.observer import CLIENT_TO_SERVER, SERVER_TO_CLIENT
from playground.proxy.service import Options
from playground.proxy.splice import ClientSide, ProxyFactory, ServerSide
from tests.support.splice import Endpoint, Transport
from tests.support.waiting import reactor_turn


class Recorder:
    def __init__(self):
        self.calls = []

    def pair_opened(self, pair, now):
        self.calls.append(("open", pair.id, now))

    def data(self, pair_id, direction, data, now):
        self.calls.append(("data", pair_id, direction, data, now))

    def half_closed(self, pair_id, direction, now):
        self.calls.append(("half", pair_id, direction))

    def pair_closed(self, pair_id, summary, now):
        self.calls.append(("close", pair_id, summary))


def texts(events):
    from twisted.logger import formatEvent

    return [formatEvent(e) for e in events]


def make(observer=None, **kw):
    clock = MemoryReactorClock()
    endpoint = Endpoint()
    factory = ProxyFactory(endpoint, observer=observer, reactor=clock, **kw)
    return clock, endpoint, factory


def accept(factory, peer=("127.0.0.1", 50000)):
    proto = factory.buildProtocol(IPv4Address("TCP", *peer))
    transport = Transport(peer=peer)
    proto.makeConnection(transport)
    return proto, transport


def connected(observer=None, **kw):
    clock, endpoint, factory = make(observer, **kw)
    client, ct = accept(factory)
    server, st = endpoint.succeed()
    return clock, factory, client, ct, server, st


@pytest.mark.memory
def test_client_paused_until_upstream_connects():
    clock, endpoint, factory = make()
    client, ct = accept(factory)
    assert ct.producerState == "paused"
    assert len(endpoint.attempts) == 1
    assert ct.producer is None
    server, st = endpoint.succeed()
    assert ct.producerState == "producing"
    assert ct.producer is st and ct.streaming is True
    assert st.producer is ct and st.streaming is True
    assert ct.nodelay and st.nodelay


@pytest.mark.memory
def test_bytes_forwarded_both_ways_and_counted():
    clock, factory, client, ct, server, st = connected()
    client.dataReceived(b"*1\r\n$4\r\nPING\r\n")
    assert st.value() == b"*1\r\n$4\r\nPING\r\n"
    server.dataReceived(b"+PONG\r\n")
    assert ct.value() == b"+PONG\r\n"
    assert client.nbytes == 14 and server.nbytes == 7


@pytest.mark.memory
def test_no_observer_means_plain_forwarder():
    clock, factory, client, ct, server, st = connected()
    assert type(client) is ClientSide and type(server) is ServerSide


@pytest.mark.memory
def test_client_half_close_passed_on_and_reverse_keeps_flowing():
    clock, factory, client, ct, server, st = connected()
    client.dataReceived(b"PING\r\n")
    client.readConnectionLost()
    assert st.write_closed and st.producer is None
    assert not ct.disconnecting and not st.disconnecting
    server.dataReceived(b"+PONG\r\n")
    assert ct.value() == b"+PONG\r\n"
    server.readConnectionLost()
    assert ct.write_closed
    assert ct.disconnecting and st.disconnecting and not ct.aborted and not st.aborted


@pytest.mark.memory
def test_server_half_close_passed_on_and_client_keeps_sending(logged):
    clock, factory, client, ct, server, st = connected()
    server.dataReceived(b"220 hello\r\n")
    server.readConnectionLost()
    assert ct.write_closed and not ct.disconnecting
    client.dataReceived(b"more")
    assert st.value() == b"more"
    client.readConnectionLost()
    assert ct.disconnecting and st.disconnecting
    client.connectionLost(Failure(error.ConnectionDone()))
    server.connectionLost(Failure(error.ConnectionDone()))
    line = [t for t in texts(logged) if "close" in t and "proxy #1" in t][-1]
    assert "first=server how=fin" in line and "c2s=4 s2c=11" in line
    assert not factory.pairs


@pytest.mark.memory
@pytest.mark.parametrize("who", ["client", "server"])
def test_reset_aborts_the_other_side(who, logged):
    clock, factory, client, ct, server, st = connected()
    lost, other_t = (client, st) if who == "client" else (server, ct)
    lost.connectionLost(Failure(error.ConnectionLost()))
    assert other_t.aborted
    (client if who == "server" else server).connectionLost(Failure(error.ConnectionAborted()))
    line = [t for t in texts(logged) if "proxy #1 close" in t][-1]
    assert f"first={who} how=reset" in line


@pytest.mark.memory
def test_clean_close_lets_queued_bytes_out():
    clock, factory, client, ct, server, st = connected()
    server.dataReceived(b"last words")
    server.connectionLost(Failure(error.ConnectionDone()))
    assert ct.disconnecting and not ct.aborted
    assert ct.value() == b"last words"


@pytest.mark.memory
def test_connect_timeout_closes_client(logged):
    clock, endpoint, factory = make(connect_timeout=5.0)
    client, ct = accept(factory)
    clock.advance(4.9)
    assert not ct.disconnecting
    clock.advance(0.2)
    assert ct.disconnecting
    assert any("--connect-timeout 5s" in t for t in texts(logged))
    client.connectionLost(Failure(error.ConnectionDone()))
    assert not factory.pairs and factory.connect_failures == 1
    assert any("first=server how=connect-failed" in t for t in texts(logged))


# --connect-timeout: N seconds on every kind of target; 0: no timeout of ours on any.


def plain(target="tcp:host=127.0.0.1:port=6379", **kw):
    """A client of a proxy whose target the splice connects with connectTCP itself."""
    clock = MemoryReactorClock()
    factory = ProxyFactory(target, reactor=clock, **kw)
    client, ct = accept(factory)
    return clock, factory, client, ct


@pytest.mark.memory
@pytest.mark.parametrize("target", ["6379", "tcp:host=127.0.0.1:port=6379"])
def test_plain_tcp_target_connects_with_connect_timeout(logged, target):
    clock, factory, client, ct = plain(target, connect_timeout=5.0)
    host, port, upstream, timeout, _ = clock.tcpClients[-1]
    assert (host, port, timeout) == ("127.0.0.1", 6379, 5.0)
    # connectTCP's timeout firing, as the real connector reports it
    upstream.clientConnectionFailed(clock.connectors[-1], Failure(error.TimeoutError()))
    assert ct.disconnecting
    assert any("no answer within --connect-timeout 5s" in t for t in texts(logged))


@pytest.mark.memory
def test_plain_tcp_target_with_connect_timeout_0_sets_no_timeout(logged):
    clock, factory, client, ct = plain(connect_timeout=0)
    assert clock.tcpClients[-1][3] is None  # connectTCP's default would be 30 s
    assert not clock.getDelayedCalls()
    # only the system gives up (Linux: about two minutes of SYN retries)
    upstream = clock.tcpClients[-1][2]
    upstream.clientConnectionFailed(clock.connectors[-1], Failure(error.TCPTimedOutError()))
    assert ct.disconnecting
    assert not any("--connect-timeout" in t for t in texts(logged))


@pytest.mark.memory
def test_endpoint_target_with_connect_timeout_0_sets_no_timeout(logged):
    clock, endpoint, factory = make(connect_timeout=0)
    client, ct = accept(factory)
    assert not clock.getDelayedCalls()
    clock.advance(3600)
    assert not ct.disconnecting and len(factory.pairs) == 1
    # the endpoint's own timeout (an endpoint string's timeout=) still ends it
    endpoint.attempts[0][1].errback(Failure(error.TimeoutError()))
    assert ct.disconnecting
    logs = texts(logged)
    assert any("the target endpoint's own timeout=" in t for t in logs)
    assert not any("--connect-timeout" in t for t in logs)


@pytest.mark.memory
@pytest.mark.parametrize("connect_timeout, ours", [(5.0, True), (0, False)])
def test_endpoint_string_target_keeps_its_own_timeout_beside_ours(logged, connect_timeout, ours):
    """A target string with more than host and port goes through clientFromString: the endpoint's
    own timeout= (30 s unless given) is passed to connectTCP; --connect-timeout is ours."""
    clock, factory, client, ct = plain("tcp:host=127.0.0.1:port=6379:timeout=60",
                                       connect_timeout=connect_timeout)
    assert clock.tcpClients[-1][3] == 60
    assert bool(clock.getDelayedCalls()) is ours
    clock.advance(5.0)
    assert ct.disconnecting is ours
    if ours:
        assert any("no answer within --connect-timeout 5s" in t for t in texts(logged))


@pytest.mark.memory
def test_connect_refused_closes_client(logged):
    clock, endpoint, factory = make()
    client, ct = accept(factory)
    endpoint.attempts[0][1].errback(Failure(error.ConnectionRefusedError()))
    assert ct.disconnecting
    assert any("cannot reach" in t and "refused" in t.lower() for t in texts(logged))


@pytest.mark.memory
def test_client_gone_while_connecting_cancels_attempt():
    clock, endpoint, factory = make()
    client, ct = accept(factory)
    d = endpoint.attempts[0][1]
    client.connectionLost(Failure(error.ConnectionLost()))
    assert d.called  # cancelled
    assert not factory.pairs


@pytest.mark.memory
def test_idle_timeout_aborts_both_and_activity_defers_it():
    clock, factory, client, ct, server, st = connected(idle_timeout=10.0)
    for _ in range(50):  # traffic every 0.5 s for 25 s keeps the pair alive
        clock.advance(0.5)
        client.dataReceived(b"x")
    assert not ct.aborted
    idle = 0.0
    while not ct.aborted and idle < 30:
        clock.advance(0.5)
        idle += 0.5
    assert ct.aborted and st.aborted
    assert 10.0 <= idle <= 12.5 + 0.5  # detected between 1x and 1.25x the timeout


@pytest.mark.memory
def test_max_connections_refuses_extra_clients(logged):
    clock, endpoint, factory = make(max_connections=1)
    accept(factory)
    extra = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 50001))
    assert isinstance(extra, Refusal)
    assert factory.limits.refused == 1
    assert any("max-connections (1) reached" in t for t in texts(logged))


@pytest.mark.memory
def test_max_connections_per_peer():
    clock, endpoint, factory = make(max_per_peer=1)
    accept(factory, ("127.0.0.5", 1))
    assert isinstance(factory.buildProtocol(IPv4Address("TCP", "127.0.0.5", 2)), Refusal)
    assert isinstance(factory.buildProtocol(IPv4Address("TCP", "127.0.0.6", 2)), ClientSide)


@pytest.mark.memory
def test_drain_waits_for_open_pairs_then_aborts_the_rest():
    clock, factory, client, ct, server, st = connected()
    d = factory.drain(10)
    assert not d.called
    clock.advance(9)
    assert not ct.aborted
    client.dataReceived(b"still flowing")
    assert st.value() == b"still flowing"
    clock.advance(1.1)
    assert ct.aborted and st.aborted
    client.connectionLost(Failure(error.ConnectionAborted()))
    server.connectionLost(Failure(error.ConnectionAborted()))
    assert d.called


@pytest.mark.memory
def test_drain_finishes_early_when_pairs_close():
    clock, factory, client, ct, server, st = connected()
    d = factory.drain(10)
    client.readConnectionLost()
    server.readConnectionLost()
    client.connectionLost(Failure(error.ConnectionDone()))
    server.connectionLost(Failure(error.ConnectionDone()))
    assert d.called and not clock.getDelayedCalls()


@pytest.mark.memory
def test_observer_sees_bytes_after_forwarding():
    rec = Recorder()
    clock, factory, client, ct, server, st = connected(observer=rec)
    client.dataReceived(b"GET / HTTP/1.1\r\n\r\n")
    server.dataReceived(b"HTTP/1.1 200 OK\r\n\r\n")
    client.readConnectionLost()
    server.readConnectionLost()
    client.connectionLost(Failure(error.ConnectionDone()))
    server.connectionLost(Failure(error.ConnectionDone()))
    assert rec.calls == []  # observers hear on the next reactor turn, after the forwarding
    clock.advance(0)
    kinds = [c[0] for c in rec.calls]
    assert kinds == ["open", "data", "data", "half", "half", "close"]
    assert rec.calls[1][2:4] == (CLIENT_TO_SERVER, b"GET / HTTP/1.1\r\n\r\n")
    assert rec.calls[2][2] == SERVER_TO_CLIENT
    assert rec.calls[-1][2]["bytes_c2s"] == 18 and rec.calls[-1][2]["how"] == "fin"


@pytest.mark.memory
def test_observer_runs_after_the_write():
    seen_at_write = []

    class Spy(Recorder):
        def data(self, pair_id, direction, data, now):
            seen_at_write.append(transports[0].value())

    transports = []
    clock, factory, client, ct, server, st = connected(observer=Spy())
    transports.append(st)
    client.dataReceived(b"abc")
    clock.advance(0)
    assert seen_at_write == [b"abc"]


@pytest.mark.memory
def test_observer_gets_bounded_slices_per_turn_and_the_rest_later():
    """A big read is handed to the observer in pieces, at most OBSERVER_SLICE bytes per reactor
    turn; the rest is scheduled with callLater(0), in order, nothing lost."""
    rec = Recorder()
    clock, factory, client, ct, server, st = connected(observer=rec)
    clock.advance(0)
    sent = bytes(range(256)) * 1024  # 256 KiB, one read
    client.dataReceived(sent)
    assert st.value() == sent  # forwarded at once
    turns = 0
    while clock.getDelayedCalls() and turns < 100:
        before = len(rec.calls)
        reactor_turn(clock)
        turns += 1
        chunks = [c[3] for c in rec.calls[before:] if c[0] == "data"]
        assert sum(map(len, chunks)) <= factory.OBSERVER_SLICE
        assert all(len(c) <= factory.OBSERVER_PIECE for c in chunks)
    assert turns >= len(sent) // factory.OBSERVER_SLICE
    assert b"".join(c[3] for c in rec.calls if c[0] == "data") == sent
    assert factory._queued_bytes == 0 and not factory._queued


@pytest.mark.memory
def test_observer_backlog_pauses_the_side_that_fills_it_until_it_drains():
    """A side with more than SIDE_BACKLOG bytes queued for the observer is paused (TCP pushes
    back on it), not decoded at once; its peer is not paused for it; it is resumed when its
    queue is down to half. Nothing is dropped."""
    rec = Recorder()
    clock, factory, client, ct, server, st = connected(observer=rec)
    clock.advance(0)
    chunk = b"x" * 65536
    for _ in range(factory.SIDE_BACKLOG // len(chunk)):
        client.dataReceived(chunk)
    assert ct.producerState == "producing"
    client.dataReceived(chunk)  # over the bound: paused, and nothing decoded in this turn
    assert ct.producerState == "paused"
    assert [c[0] for c in rec.calls] == ["open"]
    server.dataReceived(b"+PONG\r\n")  # the other side has next to nothing queued
    assert st.producerState == "producing"
    turns = 0
    while ct.producerState == "paused" and turns < 1000:
        reactor_turn(clock)
        turns += 1
    assert ct.producerState == "producing"
    assert client.queued <= factory.SIDE_BACKLOG // 2
    for _ in range(1000):
        if not clock.getDelayedCalls():
            break
        reactor_turn(clock)
    got = b"".join(c[3] for c in rec.calls if c[0] == "data" and c[2] == CLIENT_TO_SERVER)
    assert got == chunk * (factory.SIDE_BACKLOG // 65536 + 1)
    assert client.queued == 0 and factory._queued_bytes == 0


@pytest.mark.memory
def test_whole_backlog_pauses_the_busy_sides_but_not_a_quiet_one():
    """Past OBSERVER_BACKLOG in all, a side that adds more than a piece of its own is paused;
    a client with a PING queued is not."""
    rec = Recorder()
    clock, endpoint, factory = make(rec)
    sides = []
    for port in range(50001, 50007):
        client, ct = accept(factory, peer=("127.0.0.1", port))
        endpoint.succeed()
        sides.append((client, ct))
    clock.advance(0)
    chunk = b"x" * 65536
    per_side = factory.SIDE_BACKLOG - len(chunk)  # each under its own bound
    for client, _ in sides[:-1]:
        for _ in range(per_side // len(chunk)):
            client.dataReceived(chunk)
    assert factory._queued_bytes > factory.OBSERVER_BACKLOG
    quiet, quiet_t = sides[-1]
    quiet.dataReceived(b"*1\r\n$4\r\nPING\r\n")
    assert quiet_t.producerState == "producing"
    busy, busy_t = sides[0]
    busy.dataReceived(chunk)
    assert busy_t.producerState == "paused"
    for _ in range(5000):
        if not clock.getDelayedCalls():
            break
        reactor_turn(clock)
    assert busy_t.producerState == "producing" and not factory._paused


@pytest.mark.memory
def test_backlog_resume_leaves_a_side_its_peer_paused():
    """A side paused by its peer's full buffer (the splice's producer) is left for the peer to
    resume: the backlog drain must not undo the splice's back-pressure."""
    rec = Recorder()
    clock, factory, client, ct, server, st = connected(observer=rec)
    clock.advance(0)
    chunk = b"x" * 65536
    for _ in range(factory.OBSERVER_BACKLOG // len(chunk) + 1):
        client.dataReceived(chunk)
    assert ct.producerState == "paused"
    st.producerPaused = True  # the server leg's write buffer is full
    for _ in range(1000):
        if not clock.getDelayedCalls():
            break
        clock.advance(0)
    assert ct.producerState == "paused"


@pytest.mark.memory
def test_raising_observer_is_detached_and_forwarding_goes_on(logged):
    class Broken(Recorder):
        def data(self, *a):
            raise ValueError("decoder bug")

    clock, factory, client, ct, server, st = connected(observer=Broken())
    client.dataReceived(b"one")
    clock.advance(0)
    client.dataReceived(b"two")
    clock.advance(0)
    assert st.value() == b"onetwo"
    assert factory.observer is None
    assert type(client) is ClientSide
    failures = [e for e in logged if e.get("log_failure") is not None]
    assert len(failures) == 1


class Opened:
    """An observer that keeps the PairInfo of each pair."""

    def __init__(self):
        self.pairs = []

    def pair_opened(self, pair, now):
        self.pairs.append(pair)

    def data(self, *a):
        pass

    def half_closed(self, *a):
        pass

    def pair_closed(self, *a):
        pass


@pytest.mark.memory
@pytest.mark.parametrize(
    "client, server, client_text, server_text",
    [
        (IPv4Address("TCP", "127.0.0.1", 50000), IPv4Address("TCP", "127.0.0.1", 6379),
         "127.0.0.1:50000", "127.0.0.1:6379"),
        (IPv6Address("TCP", "::1", 50000), IPv6Address("TCP", "::1", 6379), "[::1]:50000",
         "[::1]:6379"),
        (UNIXAddress(None), UNIXAddress(b"/tmp/redis.sock"), "unix:(unnamed)",
         "unix:/tmp/redis.sock"),
        (UNIXAddress(b"client.sock"), UNIXAddress(b""), "unix:client.sock", "unix:(unnamed)"),
    ],
)
def test_logs_and_records_name_an_address_alike(client, server, client_text, server_text,
                                                 logged):
    observer = Opened()
    clock, endpoint, factory = make(observer)
    proto = factory.buildProtocol(client)
    ct = StringTransport(IPv4Address("TCP", "127.0.0.1", 6479), client)
    ct.setTcpNoDelay = lambda on: None
    proto.makeConnection(ct)
    factory_, d = endpoint.attempts[-1]
    upstream = factory_.buildProtocol(server)
    st = StringTransport(IPv4Address("TCP", "127.0.0.1", 40000), server)
    st.setTcpNoDelay = lambda on: None
    upstream.makeConnection(st)
    d.callback(upstream)
    clock.advance(0)  # observers hear of it on a later turn
    (pair,) = observer.pairs
    assert (str(pair.client), str(pair.server)) == (client_text, server_text)
    assert any(f"proxy #1 open {client_text} -> " in t for t in texts(logged))


@pytest.mark.pure
def test_options_require_target_and_name_flags():
    from twisted.python import usage

    with pytest.raises(usage.UsageError, match="--target"):
        Options().parseOptions([])
    with pytest.raises(usage.UsageError, match="--target"):
        Options().parseOptions(["--target", "nowhere"])
    with pytest.raises(usage.UsageError, match="--connect-timeout"):
        Options().parseOptions(["--target", "6379", "--connect-timeout", "soon"])
    with pytest.raises(usage.UsageError, match="--target-ca"):
        Options().parseOptions(["--target", "6379", "--target-ca", "/nonexistent.pem"])
    o = Options()
    o.parseOptions(["--target", "6379"])
    assert o["target"] == "tcp:host=127.0.0.1:port=6379"
    assert o["listen"] == "tcp:6479:interface=127.0.0.1:backlog=1024"


@pytest.mark.memory
def test_open_and_close_lines_formatted_once_with_their_fields(logged):
    """The two lines' text comes formatted (``log_format`` holds it, no field to look up), and
    the event keeps every field for structured observers (the JSON log)."""
    clock, factory, client, ct, server, st = connected()
    client.dataReceived(b"PING\r\n")
    server.dataReceived(b"+PONG\r\n")
    clock.advance(1.25)
    client.readConnectionLost()
    server.readConnectionLost()
    client.connectionLost(Failure(error.ConnectionDone()))
    server.connectionLost(Failure(error.ConnectionDone()))
    opened = [e for e in logged if e["log_format"].startswith("proxy #1 open ")]
    closed = [e for e in logged if e["log_format"].startswith("proxy #1 close ")]
    assert len(opened) == len(closed) == 1
    assert opened[0]["log_format"] == f"proxy #1 open 127.0.0.1:50000 -> {factory.target_desc}"
    assert opened[0]["pair"] == 1 and opened[0]["client"] == "127.0.0.1:50000"
    assert closed[0]["log_format"] == ("proxy #1 close 127.0.0.1:50000 c2s=6 s2c=7 "
                                       "duration=1.250s first=client how=fin")
    assert {k: closed[0][k] for k in ("pair", "bytes_c2s", "bytes_s2c", "duration",
                                      "closed_by", "how")} == {
        "pair": 1, "bytes_c2s": 6, "bytes_s2c": 7, "duration": 1.25, "closed_by": "client",
        "how": "fin"}
    assert texts(opened + closed) == [opened[0]["log_format"], closed[0]["log_format"]]


@pytest.mark.pure
def test_a_formatted_line_keeps_braces_from_its_fields():
    from twisted.logger import Logger, formatEvent

    events = []
    splice._log_formatted(Logger(observer=events.append), splice._OPEN, pair=1,
                          client="{peer}", target="tls:host={x}")
    assert formatEvent(events[0]) == "proxy #1 open {peer} -> tls:host={x}"
    assert events[0]["client"] == "{peer}" and events[0]["target"] == "tls:host={x}"


@pytest.mark.memory
def test_observed_bytes_carry_the_time_they_were_read_not_after_the_write():
    """A write to a loopback peer can hand the CPU to that peer (it wakes and answers) before
    the proxy goes on: a time taken after the write made a request look read as late as its
    answer (HTTP exchanges of 0.01 ms through a Python server). Here the write takes 0.5 s of
    the clock: the bytes are still dated when they were read."""
    rec = Recorder()
    clock, factory, client, ct, server, st = connected(observer=rec)
    clock.advance(10)
    write = st.write

    def slow_write(data):
        write(data)
        clock.advance(0.5)  # the peer ran meanwhile

    st.write = slow_write
    client.dataReceived(b"PING\r\n")
    clock.advance(0)
    [(_, _, direction, data, now)] = [c for c in rec.calls if c[0] == "data"]
    assert (direction, data, now) == (CLIENT_TO_SERVER, b"PING\r\n", 10.0)
