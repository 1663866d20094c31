"""The zero-copy splice's dispatch (``playground.proxy.zerocopy._Dispatcher``): one private epoll
per reactor for every spliced socket, one reader of the reactor's, bounded work per turn.

Real TCP sockets on 127.0.0.1 (``splice(2)`` needs sockets on the legs; pipes cannot stand for a
socket read and written both ways) under a reactor that never runs (``MemoryReactorClock``):
each test calls the dispatcher's ``doRead`` itself, turn by turn, as the reactor would.
"""

from __future__ import annotations

import select
import socket
import time

import pytest
from twisted.internet import error
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure

from playground.proxy import zerocopy
from tests.support.net import recv_exactly

pytestmark = pytest.mark.real


class SocketTransport:
    """What the splicer uses of a ``twisted.internet.tcp`` transport, over a real socket."""

    def __init__(self, sock: socket.socket, reactor):
        sock.setblocking(False)
        self.sock = sock
        self.reactor = reactor
        self.lost = None  # "fin", "closed" (connectionLost called, as at the end) or "abort"
        self.connected = True
        self.disconnecting = False

    def fileno(self) -> int:
        return self.sock.fileno()

    def getHandle(self) -> socket.socket:
        return self.sock

    def stopReading(self):
        pass

    def stopWriting(self):
        pass

    def loseConnection(self):
        self.lost = self.lost or "fin"

    def abortConnection(self):
        self.lost = self.lost or "abort"

    def connectionLost(self, reason):
        assert reason.check(error.ConnectionDone)
        self.connected = False
        self.lost = self.lost or "closed"
        self.sock.close()  # as a transport's connectionLost does


class Side:
    def __init__(self, role: str, transport: SocketTransport):
        self.role = role
        self.transport = transport
        self.nbytes = 0


class Pair:
    """What the splicer uses of ``playground.proxy.splice.Pair``."""

    def __init__(self, client: SocketTransport, server: SocketTransport):
        self.client = Side("client", client)
        self.server = Side("server", server)
        self.read_closed = 0
        self.closed_first = None


def connected() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        a = socket.create_connection(listener.getsockname(), timeout=5)
        b, _ = listener.accept()
    b.settimeout(5)
    return a, b


class Spliced:
    """A client and a server socket of the test's, and the proxy's two sockets between them,
    spliced: ``client`` <-> proxy <-> ``server``."""

    def __init__(self, reactor):
        self.client, proxy_client = connected()
        proxy_server, self.server = connected()
        self.pair = Pair(SocketTransport(proxy_client, reactor),
                         SocketTransport(proxy_server, reactor))
        self.splicer = zerocopy.Splicer(self.pair, zerocopy._pipes())
        self.socks = (self.client, self.server, proxy_client, proxy_server)

    def close(self):
        self.splicer.stop()
        for s in self.socks:
            s.close()


@pytest.fixture
def reactor():
    clock = MemoryReactorClock()
    yield clock
    dispatcher = zerocopy._dispatchers.pop(clock, None)
    if dispatcher is not None:
        dispatcher.epoll.close()


@pytest.fixture
def spliced(reactor):
    made: list[Spliced] = []

    def make(n: int = 1) -> list[Spliced]:
        made.extend(Spliced(reactor) for _ in range(n))
        return made[-n:]

    yield make
    for s in made:
        s.close()


def dispatcher(reactor) -> zerocopy._Dispatcher:
    return zerocopy._dispatchers[reactor]


def ready(d: zerocopy._Dispatcher, timeout: float = 5.0) -> bool:
    """Whether the dispatcher's fd is readable (the reactor would call its doRead)."""
    return bool(select.select([d], [], [], timeout)[0])


def turns(d: zerocopy._Dispatcher, until, limit: int = 100) -> int:
    """Run the dispatcher as the reactor would (a doRead whenever its fd is readable) until
    ``until()``; how many turns it took."""
    for n in range(1, limit + 1):
        if until():
            return n - 1
        if ready(d, 0.2):
            d.doRead()
    raise AssertionError(f"not done after {limit} turns")


def received(p: Spliced, d: zerocopy._Dispatcher, size: int, bufsize: int = 1 << 16,
             limit: float = 30.0) -> bytearray:
    """The first ``size`` bytes the test's server socket receives, the dispatcher run as the
    reactor would while they come; at most ``limit`` seconds."""
    got = bytearray()
    deadline = time.monotonic() + limit
    while len(got) < size:
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(got)} of {size} bytes after {limit} s")
        try:
            got += p.server.recv(bufsize)
        except TimeoutError:
            pass
        if ready(d, 0.01):
            d.doRead()
    return got


def test_one_reactor_reader_for_every_spliced_socket(reactor, spliced):
    """Three pairs, six sockets: the reactor watches one fd (the dispatcher's), not six; once
    the last pair stops, still that one (idle, never readable: not added and removed per pair)."""
    pairs = spliced(3)
    d = dispatcher(reactor)
    assert reactor.getReaders() == [d]
    assert reactor.getWriters() == []
    assert len(d.legs) == 6
    for p in pairs:
        p.splicer.stop()
    assert reactor.getReaders() == [d]
    assert d.legs == {}
    assert not ready(d, 0)


def test_bytes_both_ways_counted(reactor, spliced):
    (p,) = spliced()
    d = dispatcher(reactor)
    p.client.sendall(b"PING\r\n")
    turns(d, lambda: p.pair.client.nbytes == 6)
    assert recv_exactly(p.server, 6) == b"PING\r\n"
    p.server.sendall(b"+PONG\r\n")
    turns(d, lambda: p.pair.server.nbytes == 7)
    assert recv_exactly(p.client, 7) == b"+PONG\r\n"
    # small messages never fill a pipe: both keep a new pipe's size
    assert [x.size for x in p.splicer.directions] == [zerocopy.PIPE_CHUNK] * 2
    assert [x.pending for x in p.splicer.directions] == [0, 0]


def test_at_most_events_per_turn_the_rest_next_turn(reactor, spliced, monkeypatch):
    """Four pairs with bytes waiting, two events a turn: one doRead serves two sockets, the
    dispatcher's fd stays readable, and the next turn serves the other two."""
    monkeypatch.setattr(zerocopy, "EVENTS_PER_TURN", 2)
    pairs = spliced(4)
    d = dispatcher(reactor)
    for p in pairs:
        p.client.sendall(b"x" * 100)
    waiting = select.epoll()
    for p in pairs:  # every proxy-side client socket has its bytes before the first turn
        waiting.register(p.pair.client.transport.fileno(), select.EPOLLIN)
    for _ in range(100):
        if len(waiting.poll(5)) == 4:
            break
    else:
        raise AssertionError("the proxy's client sockets never all had their bytes")
    waiting.close()
    assert ready(d)
    d.doRead()
    assert sorted(p.pair.client.nbytes for p in pairs) == [0, 0, 100, 100]
    assert ready(d, 0)  # the rest wait, and the reactor sees that
    d.doRead()
    assert [p.pair.client.nbytes for p in pairs] == [100] * 4
    for p in pairs:
        assert recv_exactly(p.server, 100) == b"x" * 100


def test_backpressure_holds_at_most_a_pipe_then_delivers_everything(reactor, spliced):
    """The server does not read: the proxy stops reading the client once the server's socket
    and the pipe are full (the client is held back by TCP); the pipe grew to PIPE_SIZE on the
    way. Then the server reads, and every byte arrives in order."""
    (p,) = spliced()
    d = dispatcher(reactor)
    p.server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    p.client.setblocking(False)
    block = bytes(range(256)) * 4096  # 1 MiB
    sent = 0
    for _ in range(2000):  # push until the client is held back by TCP, turning the proxy
        try:
            sent += p.client.send(block)
        except BlockingIOError:
            if not ready(d, 0.05):
                break
        if ready(d, 0):
            d.doRead()
    c2s = p.splicer.directions[0]
    cleg, sleg = p.splicer.legs
    assert not cleg.reading and sleg.writing, "held back: the client not read, the server watched"
    assert c2s.size == zerocopy._pipe_size
    assert 0 < c2s.pending <= c2s.size
    assert sent < 64 << 20
    got = received(p, d, sent, 1 << 20)
    assert len(got) == sent == p.pair.client.nbytes
    assert got == (block * (sent // len(block) + 1))[:sent]
    assert cleg.reading and not sleg.writing


def test_a_pipe_full_of_small_reads_stops_the_reads_without_spinning(reactor, spliced):
    """The server does not read and the client sends small messages one at a time: each read
    takes a slot of the pipe, so its slots run out long before its bytes. The client is then
    no longer read (and the dispatcher not woken for it: no busy loop), until the server reads;
    then every byte arrives, in order."""
    (p,) = spliced()
    d = dispatcher(reactor)
    p.server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    p.pair.server.transport.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    cleg, sleg = p.splicer.legs
    c2s = p.splicer.directions[0]
    sent = bytearray()
    for i in range(2000):
        message = b"%05d" % i + b"." * 95
        p.client.sendall(message)
        sent += message
        if ready(d, 0.05):
            d.doRead()
        if not cleg.reading:
            break
    assert not cleg.reading and sleg.writing
    assert 0 < c2s.pending < c2s.size == zerocopy.PIPE_CHUNK  # full by its slots, not bytes
    p.client.sendall(b"!" * 100)  # bytes waiting in the client's socket wake nothing while
    sent += b"!" * 100  # the pipe is full: the dispatcher goes quiet (the server's socket
    for _ in range(100):  # may still take a little, so a few turns may move some)
        if not ready(d, 0.05):
            break
        d.doRead()
    else:
        raise AssertionError("the dispatcher never went quiet: reading a full pipe's source")
    got = received(p, d, len(sent))
    assert got == sent


def test_a_refused_grow_keeps_the_pipe_and_loses_nothing(reactor, spliced, monkeypatch):
    """The kernel refuses F_SETPIPE_SZ (here: a command it does not know): asked once, quietly;
    the pipe keeps its size, and 8 MiB pass through it intact."""
    monkeypatch.setattr(zerocopy, "_F_SETPIPE_SZ", 0x7FFF)
    (p,) = spliced()
    d = dispatcher(reactor)
    block = bytes(range(256)) * 4096
    got = bytearray()
    p.client.setblocking(False)
    sent = 0
    deadline = time.monotonic() + 30
    while len(got) < 8 << 20:
        assert time.monotonic() < deadline, f"{len(got)} bytes after 30 s"
        if sent < 8 << 20:
            try:
                sent += p.client.send(block[: min(len(block), (8 << 20) - sent)])
            except BlockingIOError:
                pass
        if ready(d, 0.01):
            d.doRead()
        try:
            got += p.server.recv(1 << 20, socket.MSG_DONTWAIT)
        except BlockingIOError:
            pass
        assert p.splicer.directions[0].pending <= zerocopy._pipe_size
    assert got == block * 8
    assert p.splicer.directions[0].size == zerocopy._pipe_size  # not asked again
    assert not p.splicer.stopped


def test_fin_half_closes_the_other_side_and_the_other_way_goes_on(reactor, spliced):
    (p,) = spliced()
    d = dispatcher(reactor)
    p.client.sendall(b"last")
    p.client.shutdown(socket.SHUT_WR)
    turns(d, lambda: p.pair.read_closed == 1)
    assert recv_exactly(p.server, 4) == b"last"
    assert p.server.recv(10) == b""  # the FIN passed on
    assert p.pair.closed_first == ("client", "fin")
    p.server.sendall(b"reply")
    turns(d, lambda: p.pair.server.nbytes == 5)
    assert recv_exactly(p.client, 5) == b"reply"
    p.server.shutdown(socket.SHUT_WR)
    turns(d, lambda: p.pair.read_closed == 3)
    # both ways done: both closed at once, not on a later turn (loseConnection)
    assert p.pair.client.transport.lost == p.pair.server.transport.lost == "closed"
    assert p.splicer.stopped
    # forgotten, not unregistered: their close took them out of the epoll
    assert d.legs == {} and d.epoll.poll(0) == []


def test_reset_aborts_both_sides(reactor, spliced):
    (p,) = spliced()
    d = dispatcher(reactor)
    p.client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
    p.client.close()  # RST
    turns(d, lambda: p.splicer.stopped)
    assert p.pair.closed_first == ("client", "reset")
    assert p.pair.client.transport.lost == p.pair.server.transport.lost == "abort"


def test_a_failing_handler_ends_its_pair_only(reactor, spliced):
    """An exception in one pair's handler aborts that pair; the others go on being served."""
    bad, good = spliced(2)
    d = dispatcher(reactor)

    class Broken:
        def read(self):
            raise RuntimeError("broken on purpose")

    bad.splicer.legs[0].out = Broken()
    bad.client.sendall(b"x")
    good.client.sendall(b"y")
    turns(d, lambda: bad.splicer.stopped and good.pair.client.nbytes == 1)
    assert bad.pair.client.transport.lost == bad.pair.server.transport.lost == "abort"
    assert recv_exactly(good.server, 1) == b"y"
    assert not good.splicer.stopped
    assert reactor.getReaders() == [d]


def test_reactor_letting_go_aborts_every_pair(reactor, spliced):
    """The reactor's shutdown (``disconnectAll``) calls the dispatcher's connectionLost: every
    pair in it is aborted, its pipes closed; the next pair gets a new dispatcher."""
    pairs = spliced(2)
    d = dispatcher(reactor)
    d.connectionLost(Failure(ConnectionError("reactor shutdown")))
    assert all(p.splicer.stopped for p in pairs)
    assert all(p.pair.client.transport.lost == "abort" for p in pairs)
    assert d.epoll.closed and reactor not in zerocopy._dispatchers
    (later,) = spliced()
    assert dispatcher(reactor) is not d
    later.client.sendall(b"z")
    turns(dispatcher(reactor), lambda: later.pair.client.nbytes == 1)


def test_a_close_that_ends_the_reactor_inside_the_dispatchers_loop(reactor, spliced):
    """The last pair's close during a drain fires the drain, and the reactor's shutdown lets go
    of the dispatcher (``connectionLost``: its epoll closed) inside ``doRead``: the loop ends
    there quietly, nothing polled on the closed epoll; its ``fileno`` is then -1."""
    (p,) = spliced()
    d = dispatcher(reactor)
    closed = p.pair.server.transport.connectionLost

    def and_shutdown(reason):
        closed(reason)
        d.connectionLost(Failure(ConnectionError("reactor shutdown")))

    p.pair.server.transport.connectionLost = and_shutdown
    p.client.shutdown(socket.SHUT_WR)
    p.server.shutdown(socket.SHUT_WR)
    assert ready(d)
    assert d.doRead() is None
    assert p.pair.read_closed == 3 and d.epoll.closed and d.fileno() == -1


def test_the_common_event_is_handled_in_the_dispatchers_loop(reactor, spliced, monkeypatch):
    """A socket readable, its pipe empty and its destination taking everything: the
    dispatcher's loop moves the bytes itself (one read into the pipe, one drain), counted and
    in order, without ``_Direction.read`` (made to fail here: it is not called)."""
    pairs = spliced(3)
    d = dispatcher(reactor)

    def not_called(self):
        raise AssertionError("the common event went through _Direction.read")

    monkeypatch.setattr(zerocopy._Direction, "read", not_called)
    for round_ in range(3):
        for i, p in enumerate(pairs):
            p.client.sendall(b"SET k%d %d\r\n" % (i, round_))  # 10 bytes
        turns(d, lambda n=10 * (round_ + 1): all(p.pair.client.nbytes == n for p in pairs))
        for i, p in enumerate(pairs):
            assert recv_exactly(p.server, 10) == b"SET k%d %d\r\n" % (i, round_)
            p.server.sendall(b"+OK\r\n")
        turns(d, lambda n=5 * (round_ + 1): all(p.pair.server.nbytes == n for p in pairs))
        for p in pairs:
            assert recv_exactly(p.client, 5) == b"+OK\r\n"
    assert not any(p.splicer.stopped for p in pairs)
    assert all(x.pending == 0 for p in pairs for x in p.splicer.directions)


def test_a_destination_full_in_the_loop_keeps_the_rest_in_the_pipe(reactor, spliced):
    """The in-line drain moves only part of a read (the server's socket is full): the rest
    waits in the pipe, the server is watched for writability and the client's further bytes
    go through ``_Direction.read``; once the server reads, every byte arrives in order."""
    (p,) = spliced()
    d = dispatcher(reactor)
    p.server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    p.pair.server.transport.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    cleg, sleg = p.splicer.legs
    c2s = p.splicer.directions[0]
    sent = bytearray()
    for i in range(200):  # messages of 40 KiB: each fits a new pipe, not the server's socket
        message = (b"%06d" % i) * (40 * 1024 // 6)
        p.client.sendall(message)
        sent += message
        total = len(sent)
        turns(d, lambda n=total: p.pair.client.nbytes == n or c2s.pending)
        if c2s.pending:
            break
    assert c2s.pending and sleg.writing, "part of a read left in the pipe, the server watched"
    got = received(p, d, len(sent))
    assert got == sent
    assert not sleg.writing and cleg.reading and c2s.pending == 0


def test_a_fin_read_in_the_loop_half_closes_once_the_pipe_is_drained(reactor, spliced):
    (p,) = spliced()
    d = dispatcher(reactor)
    p.server.sendall(b"+PONG\r\n")
    turns(d, lambda: p.pair.server.nbytes == 7)
    p.server.shutdown(socket.SHUT_WR)
    turns(d, lambda: p.pair.read_closed == 2)
    assert recv_exactly(p.client, 7) == b"+PONG\r\n"
    assert p.client.recv(10) == b""  # the server's FIN passed on to the client
    assert p.pair.closed_first == ("server", "fin")
    assert not p.splicer.stopped  # the client's way goes on


def test_the_server_socket_closes_even_if_the_client_close_raises(reactor, spliced):
    """Both ways done: the two sockets are closed in the dispatcher's call; an exception from
    the first close's handlers does not leave the second open (it is logged, as any handler's)."""
    (p,) = spliced()
    d = dispatcher(reactor)

    def broken(reason):
        p.pair.client.transport.lost = "closed"
        raise RuntimeError("a close handler broken on purpose")

    p.pair.client.transport.connectionLost = broken
    p.client.shutdown(socket.SHUT_WR)
    p.server.shutdown(socket.SHUT_WR)
    turns(d, lambda: p.pair.read_closed == 3)
    assert p.pair.client.transport.lost == p.pair.server.transport.lost == "closed"
    assert p.splicer.stopped
