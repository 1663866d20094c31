"""The contract of ``playground.common.twistedprivate`` on real ``tcp.Server`` and ``tcp.Client``
connections (real sockets on 127.0.0.1, the real reactor): every private name it reads is there
and means what it assumes, direct writes keep their place among buffered writes, a peer that stops
reading pauses the producer as ``write`` does, and after ``loseWriteConnection``,
``loseConnection``, ``abortConnection`` or a lost connection a direct write does what ``write``
does. A Twisted release that renames or changes one of these fails here."""

from __future__ import annotations

import signal
import socket
import struct

import pytest
import pytest_twisted
from twisted.internet import defer, endpoints, protocol, task, tcp
from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer
from twisted.internet.testing import MemoryReactorClock, StringTransport
from zope.interface import implementer

from playground.common import twistedprivate
from playground.common.addresses import client_target
from playground.common.twistedprivate import direct_write, pending_write_bytes, producer_paused
from tests.support.waiting import until

# real tcp.Server/tcp.Client pairs on the real reactor
pytestmark = [pytest.mark.real, pytest.mark.timeout(60)]

KINDS = ["server", "client"]  # the side of the connection the reactor holds: tcp.Server/Client


def buffered_write(transport, data):
    transport.write(data)


WRITERS = {"direct_write": direct_write, "write": buffered_write}


@implementer(IHalfCloseableProtocol)
class Leg(protocol.Protocol):
    """The reactor's side of the connection: records what it reads and how it ends."""

    def __init__(self):
        self.received = b""
        self.read_closed = False
        self.lost = None

    def dataReceived(self, data):
        self.received += data

    def readConnectionLost(self):
        self.read_closed = True

    def writeConnectionLost(self):
        pass

    def connectionLost(self, reason):
        self.lost = reason


@implementer(IPushProducer)
class Producer:
    def __init__(self):
        self.calls = []

    def pauseProducing(self):
        self.calls.append("pause")

    def resumeProducing(self):
        self.calls.append("resume")

    def stopProducing(self):
        self.calls.append("stop")


async def connect(kind: str):
    """A real connection: (the reactor's protocol, its transport, the peer's plain socket)."""
    from twisted.internet import reactor

    leg = Leg()
    if kind == "server":
        factory = protocol.Factory.forProtocol(lambda: leg)
        port = await endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        peer = socket.create_connection(("127.0.0.1", port.getHost().port), timeout=10)
        await until(lambda: leg.transport is not None, "the accept", timeout=10)
        await defer.maybeDeferred(port.stopListening)
    else:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", listener.getsockname()[1])
        await endpoints.connectProtocol(endpoint, leg)
        peer, _ = listener.accept()
        listener.close()
    peer.setblocking(False)
    return leg, leg.transport, peer


async def read(peer: socket.socket, want: int, timeout: float = 10.0) -> tuple[bytes, str | None]:
    """Read until ``want`` bytes arrived or the connection ended: (bytes, None|"eof"|"reset")."""
    from twisted.internet import reactor

    got = []
    n = 0
    end = None
    loops = int(timeout / 0.005)
    for _ in range(loops):
        try:
            chunk = peer.recv(1 << 20)
        except BlockingIOError:
            if n >= want:
                break
            await task.deferLater(reactor, 0.005, lambda: None)
            continue
        except ConnectionResetError:
            end = "reset"
            break
        if not chunk:
            end = "eof"
            break
        got.append(chunk)
        n += len(chunk)
    return b"".join(got), end


def small_buffers(transport, peer):
    """Small kernel buffers both ways, so a peer that stops reading fills them fast."""
    transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)


def close(transport, peer):
    if transport.connected:
        transport.abortConnection()
    peer.close()


# -- the private names -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest_twisted.ensureDeferred
async def test_the_private_names_are_there_and_mean_what_twistedprivate_assumes(kind):
    leg, t, peer = await connect(kind)
    try:
        assert type(t) is (tcp.Server if kind == "server" else tcp.Client)
        assert twistedprivate.direct_write_supported(t)
        for name in twistedprivate._WRITE_STATE:
            assert hasattr(t, name), f"Twisted's {type(t).__name__} has no {name} any more"
        # a fresh open connection
        assert t.connected and not t.disconnecting
        assert t._writeDisconnecting is False and t._writeDisconnected is False
        assert t._aborting is False
        assert (t.dataBuffer, t.offset, t._tempDataLen) == (b"", 0, 0)
        assert t.producerPaused is False and not producer_paused(t)
        assert not t.TLS
        # write() queues until a later reactor turn; the buffer counts it, then is emptied
        t.write(b"abc")
        t.write(b"de")
        assert t._tempDataLen == 5 and pending_write_bytes(t) == 5
        assert await read(peer, 5) == (b"abcde", None)
        assert pending_write_bytes(t) == 0 and t.dataBuffer == b""
        # writeSomeData sends at once and says how much the kernel took
        assert t.writeSomeData(b"now") == 3
        assert await read(peer, 3) == (b"now", None)
        # loseWriteConnection: _writeDisconnecting at once; the FIN after the buffer drained
        t.loseWriteConnection()
        assert t._writeDisconnecting is True and t.connected
        assert await read(peer, 1) == (b"", "eof")
        assert t._writeDisconnected is True
    finally:
        close(t, peer)


@pytest.mark.parametrize("kind", KINDS)
@pytest_twisted.ensureDeferred
async def test_abort_and_lose_connection_set_the_flags_direct_write_reads(kind):
    leg, t, peer = await connect(kind)
    try:
        t.loseConnection()
        assert t.disconnecting and t.connected
    finally:
        close(t, peer)
    leg, t, peer = await connect(kind)
    try:
        t.abortConnection()
        assert t._aborting is True and t.connected  # connectionLost comes on a later turn
        await until(lambda: leg.lost is not None, "the abort", timeout=10)
        assert not t.connected
    finally:
        close(t, peer)


def test_direct_write_is_only_for_plain_tcp_transports():
    assert not twistedprivate.direct_write_supported(StringTransport())


def test_the_reactor_flags():
    """``_stopped`` before run and after stop; the signal that stopped it in ``_exitSignal``."""
    from twisted.internet import reactor as running
    from twisted.internet.selectreactor import SelectReactor

    assert twistedprivate.reactor_stopped(running) is False  # pytest-twisted runs it
    assert twistedprivate.reactor_stopped(MemoryReactorClock()) is False
    fresh = SelectReactor()  # never run, so no signal handler is installed
    try:
        assert fresh._stopped is True and twistedprivate.reactor_stopped(fresh)
        assert fresh._exitSignal is None
        assert not twistedprivate.forget_exit_signal(fresh, (signal.SIGTERM, signal.SIGINT))
        fresh.sigTerm(signal.SIGTERM, None)  # what the SIGTERM handler of a running one does
        assert fresh._exitSignal == signal.SIGTERM
        assert not twistedprivate.forget_exit_signal(fresh, (signal.SIGINT,))
        assert twistedprivate.forget_exit_signal(fresh, (signal.SIGTERM, signal.SIGINT))
        assert fresh._exitSignal is None
    finally:
        if fresh.waker is not None:
            fresh.waker.connectionLost(None)  # its pipe


@pytest.mark.parametrize("desc, host, port, timeout", [
    ("tcp:host=db.local:port=6380", "db.local", 6380, 30),
    ("tcp:db.local:6380", "db.local", 6380, 30),
    ("tcp:host=\\:\\:1:port=6380:timeout=7", "::1", 6380, 7),
    ("TCP:host=10.0.0.1:port=1", "10.0.0.1", 1, 30),
])
def test_endpoint_args_read_a_string_as_clientFromString_does(desc, host, port, timeout):
    """What ``client_target`` reads (through ``endpoints._parse``) is where Twisted's public
    ``clientFromString`` connects."""
    clock = MemoryReactorClock()
    endpoints.clientFromString(clock, desc).connect(protocol.Factory.forProtocol(Leg))
    got_host, got_port, _, got_timeout, _ = clock.tcpClients[0]
    target = client_target(desc)
    assert (target.host, target.port) == (got_host, got_port) == (host, port)
    assert got_timeout == timeout  # an endpoint string's own timeout= (30 unless given)


def test_unix_path_is_read_as_clientFromString_does():
    clock = MemoryReactorClock()
    endpoints.clientFromString(clock, "unix:path=/tmp/r\\:1.sock").connect(
        protocol.Factory.forProtocol(Leg))
    assert client_target("unix:path=/tmp/r\\:1.sock").path == clock.unixClients[0][0] == "/tmp/r:1.sock"


def test_check_server_endpoint_raises_what_serverFromString_raises():
    twistedprivate.check_server_endpoint("tcp:0:interface=127.0.0.1:backlog=5")
    for desc in ("tcp:abc", "ssl:443:privateKey=/nonexistent", "tls:0:privateKey=/k.pem",
                 "tcp6:port=abc"):
        with pytest.raises(Exception) as ours:
            twistedprivate.check_server_endpoint(desc)
        with pytest.raises(Exception) as public:
            endpoints.serverFromString(MemoryReactorClock(), desc)
        assert type(ours.value) is type(public.value)


# -- ordering ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest_twisted.ensureDeferred
async def test_direct_writes_keep_their_place_among_buffered_writes(kind):
    leg, t, peer = await connect(kind)
    try:
        # Nothing queued: sent at once. Then queued behind a buffered write, in call order.
        direct_write(t, b"1")
        assert pending_write_bytes(t) == 0
        t.write(b"2")
        direct_write(t, b"3")
        assert pending_write_bytes(t) == 2  # "3" waits behind "2"
        t.write(b"4")
        assert await read(peer, 4) == (b"1234", None)
        # A send the kernel takes only in part: the rest is queued, later writes behind it.
        small_buffers(t, peer)
        big = bytes(range(256)) * 4096  # 1 MiB
        direct_write(t, big)
        assert 0 < pending_write_bytes(t) < len(big)
        direct_write(t, b"tail")
        t.write(b"end")
        expected = big + b"tail" + b"end"
        assert pending_write_bytes(t) > len(b"tail" + b"end")
        data, end = await read(peer, len(expected), timeout=30)
        assert end is None and len(data) == len(expected) and data == expected
        # Drained: sent at once again.
        await until(lambda: pending_write_bytes(t) == 0, "the buffer to drain", timeout=10)
        direct_write(t, b"again")
        assert pending_write_bytes(t) == 0
        assert await read(peer, 5) == (b"again", None)
    finally:
        close(t, peer)


# -- backpressure ------------------------------------------------------------------------------


@pytest.mark.parametrize("writer", list(WRITERS))
@pytest.mark.parametrize("kind", KINDS)
@pytest_twisted.ensureDeferred
async def test_a_peer_that_stops_reading_pauses_the_producer_as_write_does(kind, writer):
    write = WRITERS[writer]
    leg, t, peer = await connect(kind)
    producer = Producer()
    try:
        small_buffers(t, peer)
        t.registerProducer(producer, True)
        chunk = b"x" * 16384
        sent = 0
        for _ in range(1000):  # the peer reads nothing: the kernel, then the buffer, fill up
            write(t, chunk)
            sent += len(chunk)
            if producer.calls:
                break
        assert producer.calls == ["pause"] and producer_paused(t)
        assert pending_write_bytes(t) > t.bufferSize  # paused when the buffer passed its size
        data, end = await read(peer, sent, timeout=30)  # the peer reads again
        assert end is None and data == chunk * (sent // len(chunk))
        await until(lambda: producer.calls == ["pause", "resume"], "the resume", timeout=10)
        assert not producer_paused(t) and pending_write_bytes(t) == 0
        t.unregisterProducer()
    finally:
        close(t, peer)


# -- after loseWriteConnection, loseConnection, abortConnection, connectionLost ----------------


@pytest.mark.parametrize("writer", list(WRITERS))
@pytest.mark.parametrize("kind", KINDS)
@pytest_twisted.ensureDeferred
async def test_after_lose_write_connection_a_direct_write_does_what_write_does(kind, writer):
    write = WRITERS[writer]
    leg, t, peer = await connect(kind)
    try:
        t.loseWriteConnection()
        write(t, b"late")  # before the FIN has gone: queued, and sent before it (both)
        assert pending_write_bytes(t) == 4
        assert await read(peer, 5) == (b"late", "eof")
        assert t._writeDisconnected
        write(t, b"refused")  # after the FIN: refused, nothing queued, the reads go on
        assert pending_write_bytes(t) == 0
        peer.sendall(b"still reading")
        await until(lambda: leg.received == b"still reading", "the read", timeout=10)
        assert leg.lost is None and t.connected
        peer.shutdown(socket.SHUT_WR)
        await until(lambda: leg.read_closed, "the peer's FIN", timeout=10)
    finally:
        close(t, peer)


@pytest.mark.parametrize("writer", list(WRITERS))
@pytest.mark.parametrize("kind", KINDS)
@pytest_twisted.ensureDeferred
async def test_after_lose_connection_a_direct_write_does_what_write_does(kind, writer):
    write = WRITERS[writer]
    leg, t, peer = await connect(kind)
    try:
        t.loseConnection()
        write(t, b"late")  # queued, and sent before the close (both)
        assert pending_write_bytes(t) == 4
        assert await read(peer, 5) == (b"late", "eof")
        await until(lambda: leg.lost is not None, "the close", timeout=10)
    finally:
        close(t, peer)


@pytest.mark.parametrize("writer", list(WRITERS))
@pytest.mark.parametrize("kind", KINDS)
@pytest_twisted.ensureDeferred
async def test_after_abort_a_direct_write_sends_nothing(kind, writer):
    write = WRITERS[writer]
    leg, t, peer = await connect(kind)
    try:
        t.abortConnection()
        write(t, b"late")
        data, end = await read(peer, 1)
        assert data == b"" and end in ("eof", "reset")
        assert leg.lost is not None
    finally:
        close(t, peer)


@pytest.mark.parametrize("writer", list(WRITERS))
@pytest.mark.parametrize("kind", KINDS)
@pytest_twisted.ensureDeferred
async def test_after_the_connection_is_lost_a_direct_write_is_refused(kind, writer):
    """A reset from the peer: the transport's socket is gone; the write is refused, no error."""
    write = WRITERS[writer]
    leg, t, peer = await connect(kind)
    try:
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()  # SO_LINGER 0: a reset
        await until(lambda: leg.lost is not None, "the reset", timeout=10)
        assert not t.connected
        write(t, b"late")
        assert pending_write_bytes(t) == 0
    finally:
        close(t, peer)


@pytest.mark.memory
def test_the_request_head_counters_count_what_the_channel_read_and_reset_per_request():
    """``head_size``/``head_fields`` (``HTTPChannel._receivedHeaderSize``/``Count``): the bytes
    of the head's lines so far (the request line's too, line ends not counted) and its stored
    fields, 0 again once the request (its body included) is complete."""
    from twisted.web import http, resource, server

    from playground.common.twistedprivate import head_fields, head_size

    channel = http.HTTPChannel()
    channel.requestFactory = server.Request
    channel.site = server.Site(resource.Resource())
    transport = StringTransport()
    channel.makeConnection(transport)
    assert (head_size(channel), head_fields(channel)) == (0, 0)
    channel.dataReceived(b"POST / HTTP/1.1\r\n")
    assert (head_size(channel), head_fields(channel)) == (len(b"POST / HTTP/1.1"), 0)
    channel.dataReceived(b"Host: x\r\nContent-Length: 3\r\nX-A: 1\r\n")
    # a field is stored when the next line shows it is not folded: two so far
    assert head_size(channel) == len(b"POST / HTTP/1.1Host: xContent-Length: 3X-A: 1")
    assert head_fields(channel) == 2
    channel.dataReceived(b"\r\nab")  # the head ends; the body is not complete
    assert head_fields(channel) == 3
    channel.dataReceived(b"c")  # the request is complete: counted from 0 again
    assert (head_size(channel), head_fields(channel)) == (0, 0)
    assert transport.value().startswith(b"HTTP/1.1 404 ")  # it was a request
    channel.connectionLost(None)


def test_prepare_tls_contexts_prepares_an_ssl_listeners_context_at_once(tmp_path):
    from OpenSSL import SSL

    from tests.support.tls import CA

    cert, key = CA(tmp_path).issue("localhost", ["localhost"])
    reactor = MemoryReactorClock()
    endpoint = endpoints.serverFromString(reactor, f"ssl:0:privateKey={key}:certKey={cert}")
    prepared = []
    twistedprivate.prepare_tls_contexts(endpoint, prepared.append)
    assert len(prepared) == 1 and isinstance(prepared[0], SSL.Context)
    assert prepared[0] is endpoint._sslContextFactory.getContext()  # cached: what is set stays
    assert not twistedprivate.prepare_tls_contexts(endpoints.serverFromString(reactor, "tcp:0"),
                                                   prepared.append)
    assert len(prepared) == 1


@pytest_twisted.ensureDeferred
async def test_prepare_tls_contexts_reaches_the_context_of_each_name_of_a_tls_listener(tmp_path):
    """A ``tls:`` listener of two names: each context a handshake uses (the default one, the
    one the client's server name switches to) is prepared once, before ALPN is answered."""
    pytest.importorskip("twisted.protocols._sni", reason="Twisted 26's tls: server endpoint")
    import ssl

    from twisted.internet import reactor, threads

    from tests.support.tls import CA

    ca = CA(tmp_path)
    pems = tmp_path / "pems"
    pems.mkdir()
    for name in ("localhost", "other.example"):
        cert, key = ca.issue(name, [name])
        (pems / f"{name}.pem").write_bytes(cert.read_bytes() + key.read_bytes())
    endpoint = endpoints.serverFromString(reactor, f"tls:{pems}:port=0:interface=127.0.0.1")
    prepared = []

    def prepare(context):
        prepared.append(context)
        context.set_alpn_select_callback(lambda connection, offered: b"prepared")

    assert twistedprivate.prepare_tls_contexts(endpoint, prepare)
    port = await endpoint.listen(protocol.Factory.forProtocol(protocol.Protocol))
    chosen = []

    def handshake(server_name):
        ctx = ssl.create_default_context(cafile=str(ca.pem))
        ctx.set_alpn_protocols(["h2", "prepared"])
        with socket.create_connection(("127.0.0.1", port.getHost().port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname=server_name) as tls:
                chosen.append((server_name, tls.selected_alpn_protocol()))

    try:
        for server_name in ("localhost", "other.example", "localhost", "other.example"):
            await threads.deferToThread(handshake, server_name)
    finally:
        await port.stopListening()
    assert [alpn for _, alpn in chosen] == ["prepared"] * 4
    assert len(prepared) == len({id(c) for c in prepared}) == 2  # a context per name, once
    assert not twistedprivate.prepare_tls_contexts(
        endpoints.serverFromString(MemoryReactorClock(), "tcp:0"), prepare)


@pytest.mark.parametrize("kind", ["ssl", "tls"])
@pytest.mark.parametrize("negotiating", [False, True])
@pytest_twisted.ensureDeferred
async def test_a_tls_server_endpoint_answers_alpn_with_its_factorys_protocol_or_none(
        tmp_path, kind, negotiating):
    """A client offering ``h2, http/1.1``: a factory that negotiates (``Site``: ``http/1.1``)
    gets its protocol, one that does not (the proxy's) none, and the handshake completes
    (Twisted's own answer, an empty protocol, failed it with an ``internal error`` alert). On
    an ``ssl:`` listener, and on a ``tls:`` one (Twisted 26's directory of PEMs, a context per
    server name chosen by SNI, as ``--help`` offers it beside ``ssl:``)."""
    if kind == "tls":
        pytest.importorskip("twisted.protocols._sni", reason="Twisted 26's tls: server endpoint")
    import ssl

    from twisted.internet import reactor, threads
    from twisted.web import resource, server

    from playground.common.addresses import server_endpoint
    from tests.support.tls import CA

    (tmp_path / "ca").mkdir()
    ca = CA(tmp_path / "ca")
    cert, key = ca.issue("localhost", ["localhost"], ["127.0.0.1"])
    if kind == "ssl":
        desc = f"ssl:0:privateKey={key}:certKey={cert}:interface=127.0.0.1"
    else:
        (tmp_path / "pems").mkdir()
        (tmp_path / "pems" / "localhost.pem").write_bytes(key.read_bytes() + cert.read_bytes())
        desc = f"tls:{tmp_path / 'pems'}:port=0:interface=127.0.0.1"
    endpoint = server_endpoint(reactor, desc)
    factory = server.Site(resource.Resource()) if negotiating else protocol.Factory.forProtocol(
        protocol.Protocol)
    port = await endpoint.listen(factory)
    chosen = []

    def handshake():
        ctx = ssl.create_default_context(cafile=str(ca.pem))
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        with socket.create_connection(("127.0.0.1", port.getHost().port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                chosen.append(tls.selected_alpn_protocol())

    try:
        await threads.deferToThread(handshake)
    finally:
        await port.stopListening()
    assert chosen == ["http/1.1" if negotiating else None]


def test_quiet_no_subject_alt_name_drops_that_traceback_alone():
    """Twisted's TLS check logs service-identity's ``CertificateError`` through its module's
    ``_log``: once quietened (twice: idempotent), that event is dropped, any other passes."""
    from service_identity import CertificateError
    from twisted.internet import _sslverify
    from twisted.logger import globalLogPublisher
    from twisted.python.failure import Failure

    seen = []
    globalLogPublisher.addObserver(seen.append)
    try:
        twistedprivate.quiet_no_subject_alt_name()
        twistedprivate.quiet_no_subject_alt_name()
        for error in (CertificateError("no subjectAltName"), ValueError("other")):
            _sslverify._log.failure("while verifying certificate", Failure(error))
    finally:
        globalLogPublisher.removeObserver(seen.append)
    failures = [e["log_failure"].value for e in seen if "log_failure" in e]
    assert [type(f) for f in failures] == [ValueError]
