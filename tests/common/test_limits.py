"""Connection limits: admission rules, peer naming, refusals, and the limits on a real socket."""

from __future__ import annotations

import select
import socket
import time
from itertools import chain, repeat

import pytest
import pytest_twisted
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import error, protocol
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python import failure

from playground.common.addresstext import address_text, format_address
from playground.common.limits import (
    ConnectionLimits,
    Deadlines,
    LimitedFactory,
    Refusal,
    peer_host,
)
from playground.examples import echo
from playground.proxy.observer import Endpoint
from tests.support.net import read_to_close
from tests.support.processes import need
from tests.support.waiting import until

# --- ConnectionLimits -----------------------------------------------------------------------


@pytest.mark.pure
def test_unlimited_by_default():
    limits = ConnectionLimits()
    for _ in range(500):
        assert limits.admit("10.0.0.1") is None
    assert (limits.open, limits.total, limits.refused) == (500, 500, 0)


@pytest.mark.pure
def test_total_limit_and_release():
    limits = ConnectionLimits(max_connections=2)
    assert limits.admit("a") is None
    assert limits.admit("b") is None
    assert limits.admit("c") == "max-connections (2) reached"
    assert limits.refused == 1
    limits.release("a")
    assert limits.admit("c") is None
    assert (limits.open, limits.total, limits.refused) == (2, 3, 1)


@pytest.mark.pure
def test_per_peer_limit():
    limits = ConnectionLimits(max_per_peer=2)
    assert limits.admit("a") is None
    assert limits.admit("a") is None
    assert limits.admit("a") == "max-connections-per-peer (2) reached for a"
    assert limits.admit("b") is None
    limits.release("a")
    assert limits.admit("a") is None
    assert limits.refused == 1


@pytest.mark.pure
def test_total_limit_is_checked_before_per_peer():
    limits = ConnectionLimits(max_connections=1, max_per_peer=1)
    assert limits.admit("a") is None
    assert limits.admit("a") == "max-connections (1) reached"


@pytest.mark.pure
@given(
    max_connections=st.integers(0, 4),
    max_per_peer=st.integers(0, 3),
    ops=st.lists(st.tuples(st.booleans(), st.sampled_from("abc")), max_size=60),
)
def test_limits_invariants(max_connections, max_per_peer, ops):
    """Any sequence of connects and closes: counts stay consistent and caps are never exceeded."""
    limits = ConnectionLimits(max_connections, max_per_peer)
    open_by_peer = {p: 0 for p in "abc"}
    refused = 0
    for connect, peer in ops:
        if connect:
            reason = limits.admit(peer)
            if reason is None:
                open_by_peer[peer] += 1
            else:
                refused += 1
                full = max_connections and sum(open_by_peer.values()) >= max_connections
                assert full or (max_per_peer and open_by_peer[peer] >= max_per_peer)
        elif open_by_peer[peer]:
            limits.release(peer)
            open_by_peer[peer] -= 1
        assert limits.open == sum(open_by_peer.values())
        assert limits.refused == refused
        assert not max_connections or limits.open <= max_connections
        assert not max_per_peer or max(open_by_peer.values()) <= max_per_peer
    for peer, n in open_by_peer.items():
        for _ in range(n):
            limits.release(peer)
    assert limits.open == 0 and not limits._by_peer  # nothing left behind for closed peers


# --- peer naming ----------------------------------------------------------------------------


@pytest.mark.pure
@pytest.mark.parametrize(
    "addr, host, text",
    [
        (IPv4Address("TCP", "127.0.0.1", 5000), "127.0.0.1", "127.0.0.1:5000"),
        (IPv6Address("TCP", "::1", 5000), "::1", "[::1]:5000"),
        (UNIXAddress(b"/tmp/s.sock"), b"/tmp/s.sock", "unix:/tmp/s.sock"),
        (UNIXAddress(None), None, "unix:(unnamed)"),
    ],
)
def test_peer_names(addr, host, text):
    if host is None:  # unnamed UNIX clients: one stable key, so they share a per-peer budget
        assert peer_host(addr) == peer_host(UNIXAddress(None))
    else:
        assert peer_host(addr) == host
    assert address_text(addr) == text


@pytest.mark.pure
@pytest.mark.parametrize(
    "name, text",
    [
        (b"", "unix:(unnamed)"),
        (b"rel.sock", "unix:rel.sock"),
        (b"/tmp/\xff.sock", "unix:/tmp/\ufffd.sock"),
        ("/tmp/s.sock", "unix:/tmp/s.sock"),
        ("/tmp/caf\u00e9.sock", "unix:/tmp/caf\u00e9.sock"),  # printable: as it is
        # a name the client chose (a path or an abstract name: any bytes), terminal-safe and
        # UTF-8: controls, C1 (CSI), bidi overrides and line separators escaped
        (b"/tmp/\x1b]0;pwn\x07\xc2\x9b2J\xe2\x80\xae\xe2\x80\xa8",
         "unix:/tmp/\\x1b]0;pwn\\x07\\x9b2J\\u202e\\u2028"),
        (b"\x00abstract\n", "unix:\\x00abstract\\n"),
    ],
)
def test_unix_socket_names(name, text):
    assert address_text(UNIXAddress(name)) == text


@pytest.mark.pure
@pytest.mark.parametrize(
    "host, port, text",
    [
        ("127.0.0.1", 6379, "127.0.0.1:6379"),
        ("::1", 6379, "[::1]:6379"),
        ("fe80::1%eth0", 80, "[fe80::1%eth0]:80"),
        ("db.local", 6379, "db.local:6379"),
        ("/tmp/redis.sock", 0, "unix:/tmp/redis.sock"),
        ("redis.sock", 0, "unix:redis.sock"),
        ("", 0, "unix:(unnamed)"),
    ],
)
def test_one_text_for_an_address_in_logs_and_records(host, port, text):
    """The observer's Endpoint (port 0: a unix socket) reads as the logs write addresses."""
    assert str(Endpoint(host, port)) == text
    assert format_address(host, port or None) == text


# --- LimitedFactory -------------------------------------------------------------------------


class Closing(protocol.Protocol):
    def connectionLost(self, reason):
        self.factory.connectionClosed(self)


class RedisLike(LimitedFactory):
    protocol = Closing
    service_name = "redis"
    refusal_message = b"-ERR max number of clients reached\r\n"


@pytest.mark.memory
def test_refusal_sends_the_protocol_goodbye_and_closes():
    factory = RedisLike(max_connections=1, reactor=MemoryReactorClock())
    admitted = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
    admitted.makeConnection(StringTransport())
    refused = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 2))
    assert isinstance(refused, Refusal)
    transport = StringTransport()
    refused.makeConnection(transport)
    assert transport.value() == b"-ERR max number of clients reached\r\n"
    assert transport.disconnecting
    # a refused connection closing does not release a slot it never had
    refused.connectionLost(failure.Failure(error.ConnectionDone()))
    assert factory.limits.open == 1
    admitted.connectionLost(failure.Failure(error.ConnectionDone()))
    assert factory.limits.open == 0


@pytest.mark.memory
def test_a_flood_over_the_limit_is_logged_at_its_first_refusal_and_each_thousandth(logged):
    """A client over the limit again and again (thousands of short connections) is not a log
    line per connection: the first refusal since a connection was admitted says so, then every
    thousandth; an admission in between starts over."""
    from twisted.logger import formatEvent

    factory = RedisLike(max_connections=1, reactor=MemoryReactorClock())
    admitted = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
    for _ in range(2000):
        factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 2))
    admitted.connectionLost(failure.Failure(error.ConnectionDone()))
    assert not isinstance(factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 3)), Refusal)
    factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 4))
    lines = [formatEvent(e) for e in logged if "refused" in formatEvent(e)]
    assert lines == [f"redis refused 127.0.0.1:{port}: max-connections (1) reached "
                     f"(refused so far: {n})" for port, n in ((2, 1), (2, 1000), (2, 2000),
                                                              (4, 2001))]
    assert factory.limits.refused == 2001


@pytest.mark.memory
def test_admitted_protocol_knows_its_peer():
    factory = RedisLike(reactor=MemoryReactorClock())
    p = factory.buildProtocol(IPv6Address("TCP", "::1", 7))
    assert (p.peer, p.peer_host, p.factory) == ("[::1]:7", "::1", factory)


@pytest.mark.real
def test_default_reactor_is_the_global_one():
    from twisted.internet import reactor

    assert LimitedFactory().reactor is reactor


# --- real sockets ---------------------------------------------------------------------------


def _talk(sock: socket.socket, data: bytes) -> bytes:
    sock.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = sock.recv(4096)
        if not chunk:
            break
        got += chunk
    return got


def _closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


@pytest.mark.real
@pytest_twisted.inlineCallbacks
def test_max_connections_on_a_real_socket():
    from twisted.internet import threads

    opts = echo.Options()
    opts.parseOptions(["--listen", "0", "--max-connections", "1"])
    svc = echo.make_service(opts)
    svc.startService()
    port = svc.address.port
    factory = svc.factory
    socks = []

    def connect() -> socket.socket:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        socks.append(s)
        return s

    try:
        first = yield threads.deferToThread(connect)
        assert (yield threads.deferToThread(_talk, first, b"one")) == b"one"
        second = yield threads.deferToThread(connect)
        assert (yield threads.deferToThread(_closed_by_server, second))
        assert factory.limits.refused == 1
        assert (yield threads.deferToThread(_talk, first, b"still")) == b"still"
        first.close()
        yield until(lambda: factory.limits.open == 0, "the first connection to be released",
                    timeout=10.0)
        third = yield threads.deferToThread(connect)
        assert (yield threads.deferToThread(_talk, third, b"three")) == b"three"
        assert factory.limits.refused == 1
    finally:
        for s in socks:
            s.close()
        yield svc.stopService()


@pytest.mark.memory
def test_a_capped_site_counts_with_connection_limits_and_logs_the_first_refusal_of_a_thousand(
        logged):
    from twisted.logger import formatEvent
    from twisted.web import resource

    from playground.common.limits import CappedSite

    site = CappedSite(resource.Resource(), max_open=2, reactor=MemoryReactorClock())
    assert site.max_open == site.limits.max_connections == 2
    addr = IPv4Address("TCP", "10.0.0.1", 5000)
    held = [site.buildProtocol(addr) for _ in range(2)]
    assert None not in held and site.open_connections == 2
    assert [site.buildProtocol(addr) for _ in range(1000)] == [None] * 1000
    assert site.refused == 1000 and site.open_connections == 2
    lines = [formatEvent(e) for e in logged if "refused a connection" in formatEvent(e)]
    assert lines == [f"web: refused a connection from 10.0.0.1:5000: 2 open already "
                     f"(refused so far: {n})" for n in (1, 1000)]
    held[0].connectionLost(failure.Failure(error.ConnectionDone()))
    assert site.open_connections == 1 and site.limits.total == 2
    assert site.buildProtocol(addr) is not None and site.open_connections == 2
    site.max_open = 3
    assert site.buildProtocol(addr) is not None and site.open_connections == 3


@pytest.mark.real
@pytest_twisted.inlineCallbacks
def test_a_site_holds_at_most_max_open_connections():
    # the web view (and the toxiproxy API, the metrics) kept every idle connection until the
    # site's timeout: 600 sockets opened to --web were 600 held, with no bound but the fd limit
    from twisted.internet import endpoints, reactor, threads

    from playground.web.capture import Capture
    from playground.web.site import make_site

    site = make_site(Capture())
    site.max_open = 3
    port = yield endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(site)
    socks = []

    def connect() -> socket.socket:
        s = socket.create_connection(("127.0.0.1", port.getHost().port), timeout=10)
        socks.append(s)
        return s

    def get(s: socket.socket) -> bytes:
        s.sendall(b"GET /favicon.ico HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        return s.recv(100)

    try:
        held = []
        for _ in range(3):
            held.append((yield threads.deferToThread(connect)))
        yield until(lambda: site.open_connections == 3, "three held")
        over = yield threads.deferToThread(connect)
        assert (yield threads.deferToThread(_closed_by_server, over))
        assert site.refused == 1
        assert (yield threads.deferToThread(get, held[0])).startswith(b"HTTP/1.1 204")
        held[1].close()
        yield until(lambda: site.open_connections == 2, "one released")
        again = yield threads.deferToThread(connect)
        assert (yield threads.deferToThread(get, again)).startswith(b"HTTP/1.1 204")
    finally:
        for s in socks:
            s.close()
        site.feed.stop()
        yield port.stopListening()


@pytest.mark.real
@pytest_twisted.inlineCallbacks
def test_a_site_keeps_a_bounded_request_body():
    # a POST of 100 MiB to the web view's /close went whole to a temporary file in /tmp
    # (twisted.web keeps a body before any resource sees it), token or not; one declaring more
    # than the bound is now refused (413) before any of it is kept
    from twisted.internet import endpoints, reactor, threads

    from playground.web.capture import Capture
    from playground.web.site import make_site

    site = make_site(Capture())
    kept = []

    class Spy(site.requestFactory):
        def process(self):
            self.content.seek(0, 2)
            kept.append(self.content.tell())
            self.content.seek(0)
            super().process()

    site.requestFactory = Spy
    port = yield endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(site)
    size = 4 << 20

    def post() -> bytes:
        s = socket.create_connection(("127.0.0.1", port.getHost().port), timeout=10)
        try:
            s.sendall(b"POST /api/connections/1/close HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"X-Tcpplay-Action: close\r\nContent-Length: %d\r\n\r\n" % size)
            s.sendall(b"x" * size)
            return s.recv(100)
        finally:
            s.close()

    try:
        answer = yield threads.deferToThread(post)
        assert answer.startswith(b"HTTP/1.1 413"), answer
        assert kept == []
    finally:
        site.feed.stop()
        yield port.stopListening()


def _listen_capped(**site_args):
    """A ``CappedSite`` (made with ``site_args``) on a free loopback port, its access log off,
    answering ``GET`` with ``hello`` (``GET /big``: 4 MiB, through a 64 KiB socket send buffer)
    and ``POST`` with how many body bytes it read: a Deferred of the port."""
    from twisted.internet import endpoints, reactor
    from twisted.web import resource

    from playground.common.limits import CappedSite

    class Leaf(resource.Resource):
        isLeaf = True

        def render_GET(self, request):
            if request.path != b"/big":
                return b"hello"
            request.channel.transport.getHandle().setsockopt(socket.SOL_SOCKET,
                                                             socket.SO_SNDBUF, 64 << 10)
            return b"x" * (4 << 20)

        def render_POST(self, request):
            return b"read %d" % len(request.content.read())

    site = CappedSite(Leaf(), **site_args)
    site.log = lambda request: None
    return endpoints.serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(site)


@pytest.mark.real
@pytest_twisted.inlineCallbacks
def test_a_capped_site_answers_an_over_long_head_with_414_or_431():
    # Twisted closed without a word on a line over 16 KiB and sent a bare 400 on a head over
    # 16 KiB (the web view, the toxiproxy API and the metrics are such sites)
    from twisted.internet import threads

    port = yield _listen_capped()
    try:
        n = port.getHost().port
        ok = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        cases = [
            (b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", b"414 URI Too Long"),
            (b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 20000 + b"\r\n\r\n",
             b"431 Request Header Fields Too Large"),
            (b"GET / HTTP/1.1\r\nHost: x\r\n" + (b"X-Many: " + b"9" * 90 + b"\r\n") * 200
             + b"\r\n",
             b"431 Request Header Fields Too Large"),
            # the second request's line is a request line again
            (ok + b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n", b"414 URI Too Long"),
        ]
        for data, status in cases:
            got = yield threads.deferToThread(read_to_close, n, data)
            head = got.rpartition(b"HTTP/1.1 ")[2]
            assert head.startswith(status) and b"Connection: close" in head, got[:300]
        got = yield threads.deferToThread(read_to_close, n, ok.replace(b"\r\n\r\n",
                                                                b"\r\nConnection: close\r\n\r\n"))
        assert got.startswith(b"HTTP/1.1 200 OK") and got.endswith(b"hello")
    finally:
        yield port.stopListening()


@pytest.mark.real
@pytest_twisted.inlineCallbacks
def test_a_capped_site_refuses_a_head_request_with_a_head_alone():
    """414, 431 and 413 answered to HEAD carry no body (RFC 9110 9.3.2), to a raw socket and
    to ``curl -I``; the refusal's text came after the head, bytes that are no response."""
    from twisted.internet import threads, utils

    port = yield _listen_capped()
    try:
        n = port.getHost().port
        bound = port.factory.requestFactory.max_body
        long_target = b"/" + b"a" * 20000
        cases = [
            (b"HEAD %s HTTP/1.1\r\nHost: x\r\n\r\n" % long_target, b"414 URI Too Long"),
            (b"HEAD / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 20000 + b"\r\n\r\n",
             b"431 Request Header Fields Too Large"),
            (b"HEAD / HTTP/1.1\r\nHost: x\r\n" + b"X-N: 1\r\n" * 600 + b"\r\n",
             b"431 Request Header Fields Too Large"),
            (b"HEAD / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (bound + 1),
             b"413 Content Too Large"),
            # the second request of a connection, after a GET
            (b"GET / HTTP/1.1\r\nHost: x\r\n\r\nHEAD %s HTTP/1.1\r\n\r\n" % long_target,
             b"414 URI Too Long"),
        ]
        for data, status in cases:
            got = yield threads.deferToThread(read_to_close, n, data)
            refusal = b"HTTP/1.1 " + got.rpartition(b"HTTP/1.1 ")[2]
            assert refusal.startswith(b"HTTP/1.1 " + status), got[:300]
            assert refusal.endswith(b"\r\nConnection: close\r\n\r\n"), got[-300:]
        out, err, code = yield utils.getProcessOutputAndValue(
            need("curl"), ["-sS", "-I", "-v", "--max-time", "20",
                           f"http://127.0.0.1:{n}{long_target.decode()}"])
        assert code == 0, err
        assert out.startswith(b"HTTP/1.1 414 URI Too Long") and out.endswith(b"\r\n\r\n"), out
        assert b"Excess found" not in err, err
    finally:
        yield port.stopListening()


def _sites():
    """The three twisted.web sites, as their modules make them: the web view, the
    toxiproxy-compatible API, the metrics."""
    from twisted.internet import reactor

    from playground.daemon import metrics
    from playground.faults import api
    from playground.faults.registry import Registry
    from playground.web.capture import Capture
    from playground.web.site import make_site

    web = make_site(Capture())
    return {"web view": (web, web.feed.stop), "toxiproxy API": (api.make_site(Registry()), None),
            "metrics": (metrics.site(metrics.Registry(start_time=reactor.seconds())), None)}


@pytest.mark.real
@pytest.mark.parametrize("name", ["web view", "toxiproxy API", "metrics"])
@pytest_twisted.inlineCallbacks
def test_every_site_answers_too_many_small_headers_with_431(name):
    # more than Twisted's maxHeaders (500) fields in a head far below totalHeadersSize got
    # Twisted's bare 400, while an over-long head got 431
    from twisted.internet import endpoints, reactor, threads

    site, stop = _sites()[name]
    port = yield endpoints.serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(site)
    try:
        n = port.getHost().port
        many = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-N: 1\r\n" * 600 + b"\r\n"
        assert len(many) < site.protocol.totalHeadersSize
        got = yield threads.deferToThread(read_to_close, n, many)
        assert got.startswith(b"HTTP/1.1 431 Request Header Fields Too Large"), got[:300]
        assert b"Connection: close" in got
        # at the bound (500 fields) it is still a request: what the site says to it, not a
        # refusal
        at_bound = (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-N: 1\r\n" * 498
                    + b"Connection: close\r\n\r\n")
        got = yield threads.deferToThread(read_to_close, n, at_bound)
        assert got.startswith(b"HTTP/1.1 ") and got[9:12] not in (b"400", b"431"), got[:300]
    finally:
        if stop is not None:
            stop()
        yield port.stopListening()


def _send_and_read(port: int, head: bytes, body: bytes = b"") -> bytes:
    """``head``, then ``body``, and what comes back until the server's FIN (at most 5 s)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(head)
        if body:
            s.sendall(body)
        got = b""
        try:
            while chunk := s.recv(65536):
                got += chunk
        except TimeoutError:
            pass
        return got


@pytest.mark.real
@pytest_twisted.inlineCallbacks
def test_a_declared_body_over_the_bound_is_refused_with_413_at_once():
    # the site read (and dropped) the declared bytes before anything answered: a client that
    # declared 10**20 got no answer and kept its connection for as long as it sent
    from twisted.internet import threads

    port = yield _listen_capped()
    try:
        n = port.getHost().port
        bound = port.factory.requestFactory.max_body
        post = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
        for length, body in ((10**20, b""), (bound + 1, b"x" * (bound + 1))):
            got = yield threads.deferToThread(_send_and_read, n, post % length, body)
            assert got.startswith(b"HTTP/1.1 413 Content Too Large"), (length, got[:200])
            assert b"Connection: close" in got and got.endswith(b"request body over %d bytes\n"
                                                               % bound)
        got = yield threads.deferToThread(_send_and_read, n, post % bound
                                          + b"x" * bound)
        assert b"read %d" % bound in got  # at the bound it is a request
    finally:
        yield port.stopListening()


# --- deadlines (Slowloris) ------------------------------------------------------------------

_HEAD = b"GET / HTTP/1.1\r\nHost: x\r\n"
_SLOWLORIS = chain(_HEAD + b"X-Slow: ", repeat(b"a"))  # a head that never ends, byte by byte


def _trickle(port: int, pieces, every: float = 0.05, bound: float = 10.0) -> tuple[bytes, bool]:
    """Send ``pieces`` (an iterable of bytes, each byte of a ``bytes`` a piece) one every
    ``every`` seconds, reading all the while; when they run out, read on. Returns what came
    back and whether the server closed, at the server's close or after ``bound`` seconds."""
    end = time.monotonic() + bound
    got = b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        pieces = iter(pieces)
        while time.monotonic() < end:
            piece = next(pieces, None)
            if piece is not None:
                try:
                    s.sendall(bytes([piece]) if isinstance(piece, int) else piece)
                except OSError:  # closed or reset: what it said is still to be read
                    pieces = iter(())
            if select.select([s], [], [], every)[0]:
                try:
                    chunk = s.recv(65536)
                except ConnectionResetError:
                    return got, True
                if not chunk:
                    return got, True
                got += chunk
    return got, False


@pytest.mark.real
@pytest_twisted.inlineCallbacks
def test_a_trickled_head_is_answered_408_at_its_deadline_while_a_normal_client_is_served():
    # a client trickling its head a byte at a time kept its connection, and its slot, as long
    # as it trickled: Twisted's only timer is an idle timeout (12 hours) that each byte resets
    from twisted.internet import defer, threads

    port = yield _listen_capped(max_open=3, deadlines=Deadlines(head=0.5))
    try:
        n = port.getHost().port
        slow = [threads.deferToThread(_trickle, n, _SLOWLORIS) for _ in range(2)]
        yield until(lambda: port.factory.open_connections == 2, "both tricklers connected")
        got = yield threads.deferToThread(read_to_close, n, _HEAD + b"Connection: close\r\n\r\n")
        assert got.startswith(b"HTTP/1.1 200 OK") and got.endswith(b"hello")
        for got, closed in (yield defer.gatherResults(slow)):
            assert got.startswith(b"HTTP/1.1 408 Request Timeout"), got
            assert closed and got.endswith(b"request head not complete within 0.5s\n")
    finally:
        yield port.stopListening()


@pytest.mark.real
@pytest_twisted.inlineCallbacks
def test_tricklers_holding_every_slot_let_go_of_them_at_the_deadline():
    # with the site's cap reached by tricklers, every other client was refused for as long as
    # they trickled
    from twisted.internet import threads

    # the deadlines on a clock of the test's: the refusal below is asked before them however
    # loaded the machine (a trickler not yet past its request line is at its idle deadline)
    clock = MemoryReactorClock()
    port = yield _listen_capped(max_open=2, deadlines=Deadlines(idle=1, head=1), reactor=clock)
    site = port.factory
    try:
        n = port.getHost().port
        slow = [threads.deferToThread(_trickle, n, _SLOWLORIS) for _ in range(2)]
        yield until(lambda: site.open_connections == 2, "both tricklers connected")
        assert (yield threads.deferToThread(read_to_close, n, _HEAD + b"\r\n")) == b""  # refused
        clock.advance(1)
        for d in slow:
            assert (yield d)[1]
        yield until(lambda: site.open_connections == 0, "the slots released")
        got = yield threads.deferToThread(read_to_close, n, _HEAD + b"Connection: close\r\n\r\n")
        assert got.startswith(b"HTTP/1.1 200 OK") and got.endswith(b"hello")
    finally:
        yield port.stopListening()


@pytest.mark.real
@pytest_twisted.inlineCallbacks
def test_a_slow_but_complete_body_is_not_cut_by_the_head_deadline():
    from twisted.internet import threads

    port = yield _listen_capped(deadlines=Deadlines(head=0.3, body=10))
    try:
        head = b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 20\r\n\r\n"
        # 20 bytes, one each 0.05 s: a second, more than three head deadlines
        got, closed = yield threads.deferToThread(_trickle, port.getHost().port,
                                                  chain([head], b"b" * 20))
        assert got.startswith(b"HTTP/1.1 200 OK") and got.endswith(b"read 20") and closed
    finally:
        yield port.stopListening()


@pytest.mark.real
@pytest_twisted.inlineCallbacks
def test_a_trickled_body_is_answered_408_at_its_deadline():
    from twisted.internet import threads

    port = yield _listen_capped(deadlines=Deadlines(body=0.5))
    try:
        head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n"
        got, closed = yield threads.deferToThread(_trickle, port.getHost().port,
                                                  chain([head], repeat(b"b")))
        assert got.startswith(b"HTTP/1.1 408 Request Timeout"), got
        assert closed and got.endswith(b"request body not complete within 0.5s\n")
    finally:
        yield port.stopListening()


@pytest.mark.real
@pytest_twisted.inlineCallbacks
def test_a_head_pipelined_behind_a_request_has_its_deadline_from_that_request_s_end():
    from twisted.internet import threads

    port = yield _listen_capped(deadlines=Deadlines(head=0.5))
    try:
        got, closed = yield threads.deferToThread(
            _trickle, port.getHost().port, chain([_HEAD + b"\r\n" + _HEAD], repeat(b"a")))
        first, _, second = got.partition(b"hello")
        assert first.startswith(b"HTTP/1.1 200 OK"), got
        assert second.startswith(b"HTTP/1.1 408 Request Timeout") and closed, got
    finally:
        yield port.stopListening()


def _silence(port: int, request: bytes = b"") -> tuple[bytes, bool]:
    """Send ``request`` (if any), then nothing: what came back and whether the server closed
    (within 5 s)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request)
        got = b""
        try:
            while chunk := s.recv(65536):
                got += chunk
        except TimeoutError:
            return got, False
        except ConnectionResetError:
            pass
        return got, True


@pytest.mark.real
@pytest_twisted.inlineCallbacks
def test_a_connection_idle_past_its_deadline_is_closed_without_a_word():
    # a connection that sent nothing, or nothing after its answer, was kept for 12 hours
    from twisted.internet import threads

    port = yield _listen_capped(deadlines=Deadlines(idle=0.3))
    try:
        n = port.getHost().port
        assert (yield threads.deferToThread(_silence, n)) == (b"", True)
        got, closed = yield threads.deferToThread(_silence, n, _HEAD + b"\r\n")
        assert got.startswith(b"HTTP/1.1 200 OK") and got.endswith(b"hello") and closed
    finally:
        yield port.stopListening()


def _read_slowly(port: int, request: bytes, then: bytes = b"") -> bytes:
    """Send ``request`` and read the answer 16 KiB at a time, one read every 10 ms, through a
    64 KiB receive buffer, until the server closes (or 30 s of silence): the bytes read. Once
    the first bytes came, send ``then`` (a request pipelined behind it, in a write of its own)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
        s.settimeout(30)
        s.connect(("127.0.0.1", port))
        s.sendall(request)
        got = []
        try:
            while chunk := s.recv(16 << 10):
                if not got and then:
                    s.sendall(then)
                got.append(chunk)
                time.sleep(0.01)
        except (ConnectionResetError, TimeoutError):
            pass
        return b"".join(got)


@pytest.mark.real
@pytest.mark.parametrize("close", [False, True], ids=["keep-alive", "connection-close"])
@pytest_twisted.inlineCallbacks
def test_a_client_reading_its_answer_slowly_is_not_cut_by_the_idle_deadline(monkeypatch, close):
    # the idle wait begins as the answer is written: a client still taking a 4 MiB answer at
    # the idle deadline was closed (reset at once if the answer closed the connection, LINGER
    # later if not), its answer cut
    from twisted.internet import threads

    from playground.common import limits

    monkeypatch.setattr(limits, "LINGER", 0.1)
    port = yield _listen_capped(deadlines=Deadlines(idle=1))
    try:
        request = b"GET /big HTTP/1.1\r\nHost: x\r\n" + (b"Connection: close\r\n" * close)
        got = yield threads.deferToThread(_read_slowly, port.getHost().port, request + b"\r\n")
        assert len(got) > 4 << 20  # the head, and every byte of the body
    finally:
        yield port.stopListening()


@pytest.mark.real
@pytest_twisted.inlineCallbacks
def test_a_request_sent_while_a_slow_reader_takes_its_answer_waits_for_it_without_a_408():
    # the next request of a client that has not taken the last answer is held (not read) under
    # the idle deadline; its bytes, come in a write of their own meanwhile, started the head
    # deadline, whose 408 (after 0.5 s) cut a client still reading its 4 MiB answer (2.6 s)
    from twisted.internet import threads

    port = yield _listen_capped(deadlines=Deadlines(idle=1, head=0.5))
    try:
        got = yield threads.deferToThread(
            _read_slowly, port.getHost().port, b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n",
            _HEAD + b"Connection: close\r\n\r\n")
        first, _, second = got.partition(b"x" * (4 << 20))
        assert first.startswith(b"HTTP/1.1 200 OK"), (len(got), got[-300:])
        assert second.startswith(b"HTTP/1.1 200 OK") and second.endswith(b"hello"), (
            len(got), got[-300:])
    finally:
        yield port.stopListening()


@pytest.mark.real
@pytest_twisted.inlineCallbacks
def test_a_client_that_does_not_read_its_answer_is_reset_at_the_idle_deadline():
    from twisted.internet import threads

    port = yield _listen_capped(deadlines=Deadlines(idle=0.3))
    site = port.factory
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
        yield threads.deferToThread(s.connect, ("127.0.0.1", port.getHost().port))
        s.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        yield until(lambda: site.limits.total == 1, "the connection")
        yield until(lambda: site.open_connections == 0, "the non-reader to be reset", timeout=10)
    finally:
        s.close()
        yield port.stopListening()


@pytest.mark.real
@pytest.mark.parametrize("name", ["web view", "toxiproxy API", "metrics"])
@pytest_twisted.inlineCallbacks
def test_every_site_answers_a_trickled_head_408_at_its_deadline(name):
    from twisted.internet import endpoints, reactor, threads

    site, stop = _sites()[name]
    assert site.deadlines == Deadlines()  # the defaults, unless told otherwise
    site.deadlines = Deadlines(head=0.3)
    port = yield endpoints.serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(site)
    try:
        got, closed = yield threads.deferToThread(_trickle, port.getHost().port, _SLOWLORIS)
        assert got.startswith(b"HTTP/1.1 408 Request Timeout") and closed, got
    finally:
        if stop is not None:
            stop()
        yield port.stopListening()


@pytest.mark.memory
def test_the_head_deadline_counts_from_the_first_byte_and_no_byte_moves_it():
    from twisted.web import resource

    from playground.common.limits import CappedSite

    clock = MemoryReactorClock()
    site = CappedSite(resource.Resource(), reactor=clock, deadlines=Deadlines(idle=5, head=10))
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5000))
    transport = StringTransport()
    channel.makeConnection(transport)
    clock.advance(4)  # idle, within its 5 s
    for byte in _HEAD[:9]:  # a byte a second from t=4: the head is due at t=14
        channel.dataReceived(bytes([byte]))
        clock.advance(1)
    clock.advance(0.5)
    assert transport.value() == b"" and not transport.disconnecting
    clock.advance(0.5)
    assert transport.value().startswith(b"HTTP/1.1 408 Request Timeout")
    assert transport.value().endswith(b"request head not complete within 10s\n")


@pytest.mark.memory
def test_a_refusal_after_a_head_request_answered_is_whole_unless_it_refuses_a_head_request():
    # whether the request refused began "HEAD " was left from the last request line read: a
    # GET whose line was not whole at its head deadline, after a HEAD answered on the same
    # connection, got a 408 that said Content-Length: 37 and sent no body
    from twisted.web import resource

    from playground.common.limits import CappedSite

    clock = MemoryReactorClock()
    site = CappedSite(resource.Resource(), reactor=clock, deadlines=Deadlines(head=10))
    site.log = lambda request: None
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5000))
    transport = StringTransport()
    channel.makeConnection(transport)
    channel.dataReceived(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 404 ")
    transport.clear()
    channel.dataReceived(b"GET /not-whole")
    clock.advance(10)
    assert transport.value().startswith(b"HTTP/1.1 408 Request Timeout")
    assert transport.value().endswith(b"\r\n\r\nrequest head not complete within 10s\n")


@pytest.mark.memory
def test_a_held_request_released_as_the_idle_deadline_passes_is_answered():
    # a request held while the client had not taken the last answer is released on the turn
    # after the transport drained; when the idle deadline passed meanwhile (the drain came in
    # the reactor's wait for I/O, past it), its timer ran first and closed the connection: the
    # client took all of its answer, and its next request was never answered
    from twisted.web import resource

    from playground.common.limits import CappedSite

    class Hello(resource.Resource):
        isLeaf = True

        def render_GET(self, request):
            return b"hello"

    clock = MemoryReactorClock()
    site = CappedSite(Hello(), reactor=clock, deadlines=Deadlines(idle=5))
    site.log = lambda request: None
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5000))
    transport = StringTransport()
    channel.makeConnection(transport)
    channel.pauseProducing()  # the transport's write buffer is full
    channel.dataReceived(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert transport.value().count(b"hello") == 1  # the second is held
    clock.rightNow += 5.001  # the reactor waited for I/O past the idle deadline...
    channel.resumeProducing()  # ... and the client took the answer meanwhile
    clock.advance(0)
    assert transport.value().count(b"hello") == 2 and not transport.disconnecting


@pytest.mark.memory
@pytest.mark.parametrize("name", ["web view", "toxiproxy API", "metrics"])
def test_every_site_times_its_connections_on_its_own_reactor(name):
    # the web view's make_site and the API's took a reactor (the API's through its registry)
    # and left the site on the global one: their deadlines would not follow a test's clock
    from playground.daemon import metrics
    from playground.faults import api
    from playground.faults.registry import Registry
    from playground.web.capture import Capture
    from playground.web.site import make_site

    clock = MemoryReactorClock()
    make = {"web view": lambda: make_site(Capture(), reactor=clock),
            "toxiproxy API": lambda: api.make_site(Registry(reactor=clock)),
            "metrics": lambda: metrics.site(metrics.Registry(start_time=0.0), reactor=clock)}
    site = make[name]()
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5000))
    transport = StringTransport()
    channel.makeConnection(transport)
    clock.advance(Deadlines().idle)
    assert transport.disconnecting and transport.value() == b""
    channel.connectionLost(failure.Failure(error.ConnectionDone()))
    if name == "web view":
        site.feed.stop()


@pytest.mark.real
@pytest_twisted.inlineCallbacks
def test_a_pipelining_client_that_does_not_read_gets_no_further_answer_made():
    # Twisted answered every pipelined request it had read while the transport's write buffer
    # was full: 200 requests of a 1.4 MB answer each, in one 12 KB write from a client that read
    # nothing, made the web view's process hold 300 MB of answers. The next is made once the
    # client took the last: reading, it gets every one
    from twisted.internet import endpoints, reactor, task, threads
    from twisted.web import resource

    from playground.common.limits import CappedSite

    body = b"x" * (1 << 20)
    made = []

    class Big(resource.Resource):
        isLeaf = True

        def render_GET(self, request):
            made.append(request)
            return body

    site = CappedSite(Big())
    site.log = lambda request: None
    port = yield endpoints.serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(site)
    asked = 64
    get = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    pipeline = get * (asked - 1) + get.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.settimeout(10)

    def read_to_the_end() -> bytes:
        got = []
        while chunk := client.recv(1 << 20):
            got.append(chunk)
        return b"".join(got)

    try:
        yield threads.deferToThread(client.connect, ("127.0.0.1", port.getHost().port))
        yield threads.deferToThread(client.sendall, pipeline)
        yield until(lambda: made, "the first answer")
        for _ in range(4 * asked):  # reactor turns: before, 8 answers were made a turn
            yield task.deferLater(reactor, 0, lambda: None)
        # what the kernel's buffers took, and the one answer the transport holds
        assert len(made) < 16, f"{len(made)} answers made for a client that read none"
        got = yield threads.deferToThread(read_to_the_end)
        assert got.count(b"HTTP/1.1 200 OK") == asked and got.count(body) == asked
        assert len(made) == asked
    finally:
        client.close()
        yield port.stopListening()


def _tls_read_to_close(port: int, data: bytes) -> bytes:
    """Send ``data`` over TLS (the server's certificate unchecked) and read to the close, which
    must be a TLS close (close_notify): an EOF without it raises ``ssl.SSLEOFError``."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, suppress_ragged_eofs=False) as s:
        s.sendall(data)
        got = b""
        try:
            while chunk := s.recv(65536):
                got += chunk
        except OSError as e:  # SSLEOFError, a reset, 10 s of silence: what came before it
            raise AssertionError(got) from e
        return got


@pytest.mark.real
@pytest_twisted.inlineCallbacks
def test_a_tls_site_s_refusal_ends_with_a_tls_close_and_lingers_bounded(tmp_path):
    # a refusal half-closed the TCP connection under the TLS layer (the TLS transport hands
    # loseWriteConnection to its TCP one): the client read its 414 and then an EOF without
    # close_notify, a truncation attack as far as TLS can tell
    from twisted.internet import endpoints, reactor, threads
    from twisted.web import resource

    from playground.common.limits import CappedSite
    from tests.support.tls import CA

    cert, key = CA(tmp_path).issue("web", ["localhost"], ["127.0.0.1"])
    site = CappedSite(resource.Resource())
    site.log = lambda request: None
    port = yield endpoints.serverFromString(
        reactor, f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}").listen(site)
    try:
        got = yield threads.deferToThread(
            _tls_read_to_close, port.getHost().port,
            b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert got.startswith(b"HTTP/1.1 414 URI Too Long"), got
        yield until(lambda: site.open_connections == 0, "the connection closed")
    finally:
        yield port.stopListening()
