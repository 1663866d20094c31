"""Echo server: adapter tests on StringTransport + MemoryReactorClock, then real sockets on loopback."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import threading
import time

import pytest
import pytest_twisted
from twisted.internet import defer, error
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import formatEvent
from twisted.python import failure, usage

from playground.common.limits import Refusal
from playground.common.listening import ListeningService
from playground.examples import echo
from tests.support.processes import need
from tests.support.waiting import until

PEER = IPv4Address("TCP", "127.0.0.1", 40001)


# --- helpers ---------------------------------------------------------------------------------


def events_like(events, prefix: str) -> list[dict]:
    return [e for e in events if (e.get("log_format") or "").startswith(prefix)]


def make_factory(**kw):
    clock = MemoryReactorClock()
    return echo.EchoFactory(reactor=clock, **kw), clock


def connect(factory, addr=PEER):
    proto = factory.buildProtocol(addr)
    transport = StringTransport(peerAddress=addr)
    proto.makeConnection(transport)
    return proto, transport


def close(proto, exc=None):
    proto.connectionLost(failure.Failure(exc or error.ConnectionDone()))


# --- adapter: bytes, producer, half-close ---------------------------------------------------


@pytest.mark.memory
def test_bytes_are_echoed_and_counted():
    factory, _ = make_factory()
    proto, transport = connect(factory)
    for chunk in (b"hello ", b"", b"world\n", bytes(range(256))):
        proto.dataReceived(chunk)
    expected = b"hello world\n" + bytes(range(256))
    assert transport.value() == expected
    assert proto.bytes_in == proto.bytes_out == len(expected)
    assert not transport.disconnecting


@pytest.mark.memory
def test_transport_is_its_own_streaming_producer():
    factory, _ = make_factory()
    proto, transport = connect(factory)
    assert transport.producer is transport
    assert transport.streaming is True


@pytest.mark.memory
def test_half_close_writes_everything_then_closes():
    factory, _ = make_factory()
    proto, transport = connect(factory)
    proto.dataReceived(b"first ")
    proto.dataReceived(b"second")
    proto.readConnectionLost()
    assert transport.value() == b"first second"
    assert transport.disconnecting  # loseConnection: closes once the buffer drains
    assert not transport.disconnected  # ... and did not abort (no RST, nothing dropped)
    assert transport.producer is None  # else loseConnection would wait for the producer
    proto.writeConnectionLost()  # a second close path must not unregister twice
    close(proto)
    assert proto.close_reason == "client finished sending (half-close)"
    assert factory.limits.open == 0


@pytest.mark.memory
def test_half_closed_client_that_never_reads_is_still_timed_out():
    factory, clock = make_factory(idle_timeout=5)
    proto, transport = connect(factory)
    proto.dataReceived(b"x" * 1000)
    proto.readConnectionLost()
    clock.advance(5.1)
    assert transport.disconnected
    assert proto.close_reason == "idle timeout (5s)"


@pytest.mark.memory
def test_client_closing_and_reset_reasons(logged):
    factory, _ = make_factory()
    proto, _ = connect(factory)
    close(proto)
    proto2, _ = connect(factory)
    close(proto2, error.ConnectionLost("Connection to the other side was lost"))
    reasons = [e["reason"] for e in events_like(logged, "echo close")]
    assert reasons[0] == "client closed"
    assert "Connection to the other side was lost" in reasons[1]
    assert factory.limits.open == 0


# --- adapter: idle timeout ------------------------------------------------------------------


@pytest.mark.memory
def test_idle_timeout_aborts_and_data_resets_it(logged):
    factory, clock = make_factory(idle_timeout=5)
    proto, transport = connect(factory)
    clock.advance(4)
    assert not transport.disconnecting
    proto.dataReceived(b"still here")  # resets the timer: the deadline is now t=9
    clock.advance(4.9)
    assert not transport.disconnecting
    clock.advance(0.2)
    assert transport.disconnected  # abortConnection (StringTransport marks it disconnected)
    close(proto, error.ConnectionAborted())
    [closed] = events_like(logged, "echo close")
    assert closed["reason"] == "idle timeout (5s)"
    assert closed["duration"] == pytest.approx(9.1)
    assert clock.getDelayedCalls() == []


@pytest.mark.memory
def test_no_idle_timeout_by_default():
    factory, clock = make_factory()
    proto, transport = connect(factory)
    assert clock.getDelayedCalls() == []
    clock.advance(10**6)
    assert not transport.disconnecting


@pytest.mark.memory
def test_closing_cancels_the_idle_timer():
    factory, clock = make_factory(idle_timeout=30)
    proto, _ = connect(factory)
    assert len(clock.getDelayedCalls()) == 1
    close(proto)
    assert clock.getDelayedCalls() == []


# --- adapter: limits ------------------------------------------------------------------------


@pytest.mark.memory
def test_max_connections_refuses_and_logs_reason(logged):
    factory, _ = make_factory(max_connections=2)
    first, _ = connect(factory)
    connect(factory, IPv4Address("TCP", "127.0.0.2", 40002))
    refused = factory.buildProtocol(IPv4Address("TCP", "127.0.0.3", 40003))
    assert isinstance(refused, Refusal)
    transport = StringTransport()
    refused.makeConnection(transport)
    assert transport.disconnecting and transport.value() == b""
    assert factory.limits.refused == 1
    [warning] = events_like(logged, "{service} refused")
    assert warning["reason"] == "max-connections (2) reached"
    assert warning["peer"] == "127.0.0.3:40003"
    assert warning["refused"] == 1
    assert "echo refused 127.0.0.3:40003: max-connections (2) reached" in formatEvent(warning)
    # a closed connection frees its slot
    close(first)
    again, _ = connect(factory, IPv4Address("TCP", "127.0.0.3", 40004))
    assert isinstance(again, echo.EchoProtocol)
    assert factory.limits.refused == 1


@pytest.mark.memory
def test_max_connections_per_peer(logged):
    factory, _ = make_factory(max_per_peer=1)
    connect(factory, IPv4Address("TCP", "10.0.0.1", 1000))
    same_host = factory.buildProtocol(IPv4Address("TCP", "10.0.0.1", 1001))
    assert isinstance(same_host, Refusal)
    other, _ = connect(factory, IPv4Address("TCP", "10.0.0.2", 1000))
    assert isinstance(other, echo.EchoProtocol)
    v6, _ = connect(factory, IPv6Address("TCP", "::1", 1000))
    assert v6.peer == "[::1]:1000"
    assert factory.limits.refused == 1
    [warning] = events_like(logged, "{service} refused")
    assert warning["reason"] == "max-connections-per-peer (1) reached for 10.0.0.1"


# --- adapter: structured log lines ----------------------------------------------------------


@pytest.mark.memory
def test_open_and_close_log_lines_carry_fields(logged):
    factory, clock = make_factory()
    proto, _ = connect(factory)
    proto.dataReceived(b"12345")
    clock.advance(2.5)
    proto.readConnectionLost()
    close(proto)
    [opened] = events_like(logged, "echo open")
    assert opened["peer"] == "127.0.0.1:40001"
    assert formatEvent(opened) == "echo open 127.0.0.1:40001"
    [closed] = events_like(logged, "echo close")
    assert closed["peer"] == "127.0.0.1:40001"
    assert closed["bytes_in"] == 5 and closed["bytes_out"] == 5
    assert closed["duration"] == pytest.approx(2.5)
    assert closed["reason"] == "client finished sending (half-close)"
    assert closed["log_level"].name == "info"
    assert formatEvent(closed) == (
        "echo close 127.0.0.1:40001 in=5 out=5 duration=2.500s "
        "reason=client finished sending (half-close)"
    )


# --- options and service --------------------------------------------------------------------


@pytest.mark.memory
def test_options_build_a_limited_listening_service(logged):
    opts = echo.Options()
    opts.parseOptions(
        [
            "--listen",
            "7123",
            "--idle-timeout",
            "2.5",
            "--max-connections",
            "3",
            "--max-connections-per-peer",
            "1",
        ]
    )
    clock = MemoryReactorClock()
    svc = echo.make_service(opts, reactor=clock)
    assert isinstance(svc, ListeningService)
    factory = svc.factory
    assert (factory.idle_timeout, factory.limits.max_connections, factory.limits.max_per_peer) == (
        2.5,
        3,
        1,
    )
    svc.startService()
    [(port, listened, backlog, interface)] = clock.tcpServers
    assert (port, backlog, interface) == (7123, 1024, "127.0.0.1")
    assert listened is factory
    assert any("echo listening on" in formatEvent(e) for e in logged)
    svc.stopService()


@pytest.mark.pure
def test_option_defaults():
    opts = echo.Options()
    opts.parseOptions([])
    assert opts["listen"] == "tcp:7000:interface=127.0.0.1:backlog=1024"
    assert opts["idle-timeout"] == 0
    assert opts["max-connections"] == 1000
    assert opts["max-connections-per-peer"] == 0


@pytest.mark.pure
@pytest.mark.parametrize(
    "args, flag",
    [
        (["--idle-timeout", "-1"], "--idle-timeout"),
        (["--idle-timeout", "soon"], "--idle-timeout"),
        (["--idle-timeout", "nan"], "--idle-timeout"),
        (["--max-connections", "many"], "--max-connections"),
        (["--max-connections", "-3"], "--max-connections"),
        (["--max-connections-per-peer", "1.5"], "--max-connections-per-peer"),
        (["--listen", "abc"], "--listen"),
    ],
)
def test_bad_options_name_the_flag(args, flag):
    with pytest.raises(usage.UsageError) as e:
        echo.Options().parseOptions(args)
    assert str(e.value).startswith(flag)


# --- real sockets on 127.0.0.1 --------------------------------------------------------------


def start_echo(*args):
    """Parse options as twistd would, listen on a free loopback port (port 0), return service."""
    opts = echo.Options()
    opts.parseOptions(["--listen", "0", *args])
    svc = echo.make_service(opts)
    svc.startService()
    assert svc.address is not None, "TCP listens synchronously"
    return svc


def roundtrip(port: int, data: bytes, timeout: float = 60.0) -> tuple[int, str]:
    """Send ``data`` and read the echo concurrently; half-close, read to EOF; (count, sha256)."""
    digest = hashlib.sha256()
    received = 0
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        send_error: list[BaseException] = []

        def send():
            try:
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
            except BaseException as e:  # reported by the reader below
                send_error.append(e)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        while time.monotonic() < deadline:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            digest.update(chunk)
            received += len(chunk)
        sender.join(10)
        if send_error:
            raise send_error[0]
    return received, digest.hexdigest()


@pytest.mark.real
@pytest_twisted.inlineCallbacks
def test_ten_megabytes_byte_exact(logged):
    from twisted.internet import threads

    data = os.urandom(10 * 1024 * 1024)
    svc = start_echo()
    try:
        received, digest = yield threads.deferToThread(roundtrip, svc.address.port, data)
        assert received == len(data)
        assert digest == hashlib.sha256(data).hexdigest()
        yield until(lambda: events_like(logged, "echo close"), "the close log line")
        [closed] = events_like(logged, "echo close")
        assert closed["bytes_in"] == closed["bytes_out"] == len(data)
        assert closed["reason"] == "client finished sending (half-close)"
        assert svc.factory.limits.open == 0
    finally:
        yield svc.stopService()


@pytest.mark.real
@pytest_twisted.inlineCallbacks
def test_nc_half_close_gets_the_echo(logged):
    from twisted.internet import threads

    nc = need("nc")
    svc = start_echo()
    try:
        result = yield threads.deferToThread(
            subprocess.run,
            [nc, "-N", "127.0.0.1", str(svc.address.port)],
            input=b"hi\n",
            capture_output=True,
            timeout=20,
        )
        assert result.stdout == b"hi\n", result.stderr
        assert result.returncode == 0
        yield until(lambda: events_like(logged, "echo close"), "the close log line")
        [closed] = events_like(logged, "echo close")
        assert (closed["bytes_in"], closed["reason"]) == (3, "client finished sending (half-close)")
    finally:
        yield svc.stopService()


FLOOD_LIMIT = 64 * 1024 * 1024  # far more than loopback socket buffers can hold


class Flood:
    """A client that sends as fast as it can and reads nothing until told to drain."""

    def __init__(self, port: int):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
        self.sock.connect(("127.0.0.1", port))
        self.sock.settimeout(0.05)
        self.sent = 0
        self.last_progress = time.monotonic()
        self.stop = threading.Event()

    def send_until_stopped(self, timeout: float = 30.0) -> int:
        chunk = b"\xab" * (1 << 16)
        deadline = time.monotonic() + timeout
        while not self.stop.is_set() and self.sent < FLOOD_LIMIT and time.monotonic() < deadline:
            try:
                self.sent += self.sock.send(chunk)
                self.last_progress = time.monotonic()
            except TimeoutError:
                pass  # the server has stopped taking data: keep trying until told to stop
        return self.sent

    def drain(self, timeout: float = 30.0) -> int:
        """Half-close, then read the whole echo back; the byte count."""
        self.sock.shutdown(socket.SHUT_WR)
        self.sock.settimeout(10)
        received = 0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = self.sock.recv(1 << 18)
            if not chunk:
                break
            assert chunk == b"\xab" * len(chunk)
            received += len(chunk)
        return received


@pytest.mark.real
@pytest_twisted.inlineCallbacks
def test_client_that_does_not_read_cannot_grow_server_memory():
    from twisted.internet import threads

    svc = start_echo()
    protocols = []
    build = svc.factory.buildProtocol

    def record(addr):
        p = build(addr)
        protocols.append(p)
        return p

    svc.factory.buildProtocol = record
    flood = Flood(svc.address.port)
    sending = threads.deferToThread(flood.send_until_stopped)
    try:
        yield until(lambda: protocols, "the connection")
        t = protocols[0].transport

        def pending() -> int:
            return len(t.dataBuffer) + t._tempDataLen

        def backpressure() -> bool:
            assert flood.sent < FLOOD_LIMIT, "the server read everything: no back-pressure"
            # paused by its own write buffer, and the client has been stuck for a while
            return t.producerPaused and time.monotonic() - flood.last_progress > 0.5

        yield until(backpressure, "the server to stop reading", timeout=25)
        assert pending() <= 4 * t.bufferSize  # a few 64 KiB reads at most, not megabytes
        assert protocols[0].bytes_in < FLOOD_LIMIT
        flood.stop.set()
        sent = yield sending
        assert sent < FLOOD_LIMIT
        # once the client reads, the server resumes and every byte comes back
        received = yield threads.deferToThread(flood.drain)
        assert received == sent
        yield until(lambda: svc.factory.limits.open == 0, "the server to close")
        assert protocols[0].bytes_in == protocols[0].bytes_out == sent
    finally:
        flood.stop.set()
        yield sending
        flood.sock.close()
        yield svc.stopService()


# --- the listening service ------------------------------------------------------------------


@pytest.mark.real
def test_bind_failure_is_one_line_system_exit():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        opts = echo.Options()
        opts.parseOptions(["--listen", str(busy.getsockname()[1])])
        svc = echo.make_service(opts)
        with pytest.raises(SystemExit) as e:
            svc.privilegedStartService()
    message = str(e.value.code)
    assert message.startswith("tcpplay echo: cannot listen on --listen tcp:")
    assert "\n" not in message and "in use" in message


class _LateEndpoint:
    """An endpoint whose listen() answers later, as asynchronous endpoints do."""

    def __init__(self):
        self.result = defer.Deferred()

    def listen(self, factory):
        return self.result


def _start_pending(monkeypatch) -> tuple[_LateEndpoint, ListeningService]:
    """A started echo ListeningService whose listen() has not answered yet."""
    endpoint = _LateEndpoint()
    monkeypatch.setattr("playground.common.listening.server_endpoint", lambda *a: endpoint)
    svc = ListeningService(
        "echo",
        "onion:80",
        echo.EchoFactory(reactor=MemoryReactorClock()),
        reactor=MemoryReactorClock(),
    )
    svc.startService()
    return endpoint, svc


def _errors(logged: list[dict]) -> list[dict]:
    return [e for e in logged if e.get("log_level") and e["log_level"].name == "error"]


@pytest.mark.memory
def test_late_listen_failure_is_logged_not_lost(monkeypatch, logged):
    endpoint, svc = _start_pending(monkeypatch)
    assert svc.port is None
    endpoint.result.errback(error.CannotListenError("", 80, "no tor"))
    [event] = _errors(logged)
    assert "tcpplay echo: cannot listen on --listen onion:80" in formatEvent(event)
    svc.stopService()  # nothing left waiting to cancel


@pytest.mark.memory
def test_stopping_while_listen_is_pending_cancels_quietly(monkeypatch, logged):
    endpoint, svc = _start_pending(monkeypatch)
    svc.stopService()
    assert endpoint.result.called  # cancelled
    assert not _errors(logged)
