"""An observed pair forwarded by copy in the zero-copy dispatcher (``zerocopy._CopyDirection``):
its bytes go through Python (read, written on at once, then handed to the observer), its
sockets out of the reactor as a spliced pair's are.

Real sockets on 127.0.0.1, on the reactor pytest-twisted runs: the proxy is a ``ProxyFactory``
of the test's own with a recording observer; its peers are plain blocking sockets in threads
(the upstream's accept and the client), so the test's reactor thread only waits (``until``).
"""

from __future__ import annotations

import hashlib
import os
import socket
import struct
import threading
import time

import pytest
import pytest_twisted
from twisted.internet import defer

from playground.proxy import zerocopy
from playground.proxy.observer import CLIENT_TO_SERVER as C2S
from playground.proxy.observer import SERVER_TO_CLIENT as S2C
from playground.proxy.splice import ProxyFactory
from tests.support.net import recv_exactly, wait_closed
from tests.support.waiting import until

pytestmark = pytest.mark.real


class Recorder:
    """A ``PairObserver`` that keeps what it is told: the events in order, and per direction
    the bytes (``keep``) or their count and sha256. ``slow``: seconds each ``data`` takes.
    ``check``: called on each ``data`` (on the reactor thread)."""

    def __init__(self, keep: bool = True, slow: float = 0.0, check=None):
        self.keep = keep
        self.slow = slow
        self.check = check
        self.events: list[tuple] = []
        self.bytes = {C2S: bytearray(), S2C: bytearray()}
        self.count = {C2S: 0, S2C: 0}
        self.sha = {C2S: hashlib.sha256(), S2C: hashlib.sha256()}
        self.infos = []

    def pair_opened(self, pair, now):
        self.infos.append(pair)
        self.events.append(("opened",))

    def data(self, pair_id, direction, data, now):
        if self.slow:
            time.sleep(self.slow)
        if self.check is not None:
            self.check()
        if self.keep:
            self.bytes[direction] += data
        self.count[direction] += len(data)
        self.sha[direction].update(data)
        if not self.events or self.events[-1] != ("data", direction):
            self.events.append(("data", direction))

    def half_closed(self, pair_id, direction, now):
        self.events.append(("half_closed", direction))

    def pair_closed(self, pair_id, summary, now):
        self.events.append(("closed", summary["closed_by"], summary["how"],
                            summary["bytes_c2s"], summary["bytes_s2c"]))

    def closed(self) -> bool:
        """Whether the close record came (the last event)."""
        return bool(self.events) and self.events[-1][0] == "closed"

    def outline(self) -> list[tuple]:
        """The events without the data's interleaving (which depends on timing): opened, the
        half-closes in order, the close record."""
        return [e for e in self.events if e[0] != "data"]


class Peer(threading.Thread):
    """``target(*args)`` on a thread; its result or exception kept for ``result()``."""

    def __init__(self, target, *args):
        super().__init__(daemon=True)
        self.fn, self.args = target, args
        self.value = self.error = None

    def run(self):
        try:
            self.value = self.fn(*self.args)
        except BaseException as e:  # reported by result()
            self.error = e

    def result(self):
        if self.error is not None:
            raise self.error
        return self.value


def recv_all(sock: socket.socket, timeout: float = 30.0) -> bytes:
    sock.settimeout(timeout)
    chunks = []
    while chunk := sock.recv(1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def outcome(sock: socket.socket) -> str:
    """How the peer ended the connection: "eof" or "reset" (bytes before are read and dropped)."""
    return wait_closed(sock, 10)[0]


def rst(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class EveryPair(dict):
    """``factory.pairs`` that also keeps every pair it was given (``all``), closed ones too."""

    def __init__(self):
        super().__init__()
        self.all = []

    def __setitem__(self, key, pair):
        self.all.append(pair)
        super().__setitem__(key, pair)


class Proxied:
    """An upstream listener and a proxy (``ProxyFactory`` with ``observer``) before it."""

    def __init__(self, observer, zero_copy: bool = True, **options):
        from twisted.internet import reactor

        self.upstream = socket.create_server(("127.0.0.1", 0))
        self.upstream.settimeout(10)
        self.factory = ProxyFactory(f"127.0.0.1:{self.upstream.getsockname()[1]}",
                                    observer=observer, zero_copy=zero_copy, **options)
        self.factory.pairs = EveryPair()
        self.port = reactor.listenTCP(0, self.factory, interface="127.0.0.1")

    def connect(self, rcvbuf: int = 0) -> tuple[socket.socket, Peer]:
        """A client socket connected to the proxy (``rcvbuf``: its receive buffer, set before
        anything arrives), and a thread accepting the upstream leg."""
        accepting = Peer(lambda: self.upstream.accept()[0])
        accepting.start()
        client = socket.create_connection(("127.0.0.1", self.port.getHost().port), timeout=10)
        if rcvbuf:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        return client, accepting

    def connected(self, rcvbuf: int = 0) -> tuple[socket.socket, socket.socket]:
        """``connect``, then the upstream leg accepted: (client, server). From a peer thread:
        the proxy's reactor must run meanwhile."""
        client, accepting = self.connect(rcvbuf)
        accepting.join(10)
        return client, accepting.result()

    @defer.inlineCallbacks
    def copy_pair(self, accepting):
        """Once the first pair forwards by copy, its upstream leg accepted (``accepting``, from
        ``connect``): the server's socket."""
        yield until(lambda: self.pair() is not None and self.pair().splicer is not None,
                    "the copy pair")
        accepting.join(10)
        assert copy_directions(self.pair())
        return accepting.result()

    def pair(self):
        """The first pair, open or closed."""
        return self.factory.pairs.all[0] if self.factory.pairs.all else None

    def close(self):
        self.upstream.close()
        return self.port.stopListening()


def ping_then_outcomes(proxied: Proxied, sent: threading.Event | None = None
                       ) -> tuple[str, str]:
    """A pair's client sends ``ping`` to its server (``sent`` set once it arrived), then how
    each side's socket ended (``outcome``) once the proxy closes the pair."""
    client, server = proxied.connected()
    client.sendall(b"ping")
    assert recv_exactly(server, 4) == b"ping"
    if sent is not None:
        sent.set()
    got = outcome(client), outcome(server)
    client.close()
    server.close()
    return got


def copy_directions(pair):
    return pair.splicer is not None and all(
        type(d) is zerocopy._CopyDirection for d in pair.splicer.directions)


def exchange(proxied: Proxied, up: bytes, down: bytes):
    """Client sends ``up`` then shuts down its write side, while the server sends ``down``; the
    server reads to EOF, then shuts down too. Returns a thread giving (server got, client got)."""

    def run():
        client, server = proxied.connected()
        server.settimeout(30)
        sender = Peer(server.sendall, down)
        sender.start()
        writer = Peer(lambda: (client.sendall(up), client.shutdown(socket.SHUT_WR)))
        writer.start()
        got_up = recv_all(server)
        sender.join(30)
        sender.result()
        server.shutdown(socket.SHUT_WR)
        got_down = recv_all(client)
        writer.join(30)
        writer.result()
        client.close()
        server.close()
        return got_up, got_down

    peer = Peer(run)
    peer.start()
    return peer


@pytest_twisted.inlineCallbacks
def run_exchange(zero_copy: bool, up: bytes, down: bytes):
    recorder = Recorder()
    proxied = Proxied(recorder, zero_copy=zero_copy)
    seen = []
    try:
        peer = exchange(proxied, up, down)
        yield until(lambda: proxied.pair() is not None or not peer.is_alive(), "the pair")
        seen.append(proxied.pair())
        yield until(lambda: not peer.is_alive(), "the exchange", timeout=60)
        got_up, got_down = peer.result()
        yield until(recorder.closed, "the close record")
    finally:
        yield proxied.close()
    return recorder, seen[0], got_up, got_down


@pytest_twisted.inlineCallbacks
def test_bytes_both_ways_intact_and_observed_in_order_as_on_twisteds_path():
    up, down = os.urandom(1_500_000), os.urandom(2_000_000)
    runs = {}
    for zero_copy in (True, False):
        recorder, pair, got_up, got_down = yield run_exchange(zero_copy, up, down)
        assert hashlib.sha256(got_up).digest() == hashlib.sha256(up).digest()
        assert hashlib.sha256(got_down).digest() == hashlib.sha256(down).digest()
        assert bytes(recorder.bytes[C2S]) == up and bytes(recorder.bytes[S2C]) == down
        assert copy_directions(pair) is zero_copy
        assert pair.client.nbytes == len(up) and pair.server.nbytes == len(down)
        runs[zero_copy] = recorder
    assert runs[True].outline() == runs[False].outline() == [
        ("opened",), ("half_closed", C2S), ("half_closed", S2C),
        ("closed", "client", "fin", len(up), len(down))]
    info = runs[True].infos[0]  # made for a copy pair as for one on Twisted's path
    assert info.server.host == info.client.host == info.upstream_local.host == "127.0.0.1"
    assert info.listen.port > 0 and info.server.port > 0


@pytest_twisted.inlineCallbacks
def test_half_close_the_server_still_replies_then_eof():
    recorder = Recorder()
    proxied = Proxied(recorder)

    def run():
        client, server = proxied.connected()
        client.sendall(b"question")
        client.shutdown(socket.SHUT_WR)
        asked = recv_all(server, 10)  # up to the client's FIN, passed on
        server.sendall(b"answer to " + asked)
        server.close()
        reply = recv_all(client, 10)
        client.close()
        return asked, reply

    peer = Peer(run)
    try:
        peer.start()
        yield until(lambda: proxied.pair() is not None or not peer.is_alive(), "the pair")
        assert copy_directions(proxied.pair())
        yield until(lambda: not peer.is_alive(), "the exchange")
        assert peer.result() == (b"question", b"answer to question")
        yield until(recorder.closed, "the close record")
        assert recorder.outline() == [("opened",), ("half_closed", C2S), ("half_closed", S2C),
                                      ("closed", "client", "fin", 8, 18)]
        assert bytes(recorder.bytes[C2S]) == b"question"
        assert bytes(recorder.bytes[S2C]) == b"answer to question"
    finally:
        yield proxied.close()


@pytest.mark.parametrize("who", ["client", "server"])
@pytest_twisted.inlineCallbacks
def test_a_reset_from_either_side_resets_the_other(who):
    recorder = Recorder()
    proxied = Proxied(recorder)

    def run():
        client, server = proxied.connected()
        client.sendall(b"ping")
        assert recv_exactly(server, 4) == b"ping"
        server.sendall(b"pong")
        assert recv_exactly(client, 4) == b"pong"
        resetter, other = (client, server) if who == "client" else (server, client)
        rst(resetter)
        how = outcome(other)
        other.close()
        return how

    peer = Peer(run)
    try:
        peer.start()
        yield until(lambda: proxied.pair() is not None or not peer.is_alive(), "the pair")
        assert copy_directions(proxied.pair())
        yield until(lambda: not peer.is_alive(), "the reset")
        assert peer.result() == "reset"
        yield until(recorder.closed, "the close record")
        assert recorder.events[-1] == ("closed", who, "reset", 4, 4)
        assert not proxied.factory.pairs
    finally:
        yield proxied.close()


def kept(pair) -> int:
    """Bytes the pair's copy directions hold in Python (read, not yet written on)."""
    return sum(len(d.buf) - d.off for d in pair.splicer.directions if d.buf is not None)


@pytest_twisted.inlineCallbacks
def test_a_slow_reader_holds_at_most_one_read_in_the_proxy_then_gets_everything():
    total = 64 << 20
    block = os.urandom(1 << 20)
    recorder = Recorder(keep=False)
    proxied = Proxied(recorder)
    sent = [0]
    go = threading.Event()

    def run():
        client, server = proxied.connected(rcvbuf=1 << 16)

        def send():
            for _ in range(total // len(block)):
                server.sendall(block)
                sent[0] += len(block)
            server.close()

        sender = Peer(send)
        sender.start()
        go.wait(30)  # the client reads nothing until the test has looked
        sha, n = hashlib.sha256(), 0
        client.settimeout(30)
        while chunk := client.recv(1 << 16):
            sha.update(chunk)
            n += len(chunk)
        sender.join(30)
        sender.result()
        client.close()
        return n, sha.digest()

    peer = Peer(run)
    try:
        peer.start()
        yield until(lambda: proxied.pair() is not None, "the pair")
        pair = proxied.pair()
        assert copy_directions(pair)
        # the client's socket full: the proxy keeps a read for it and stops reading the server
        legs = pair.splicer.legs
        yield until(lambda: not legs[1].reading and legs[0].writing, "the server's leg held")
        assert sent[0] < total // 2, "the sender was not held back"
        assert kept(pair) <= zerocopy.COPY_READ
        assert proxied.factory._queued_bytes <= proxied.factory.OBSERVER_BACKLOG
        go.set()
        yield until(lambda: not peer.is_alive(), "the whole stream", timeout=90)
        n, digest = peer.result()
        assert n == total
        expected = hashlib.sha256()
        for _ in range(total // len(block)):
            expected.update(block)
        assert digest == expected.digest()
        yield until(recorder.closed, "the close record")
        assert recorder.count[S2C] == total
        assert recorder.sha[S2C].digest() == expected.digest()
    finally:
        go.set()
        yield proxied.close()


@pytest_twisted.inlineCallbacks
def test_observer_backpressure_pauses_the_leg_never_the_reactor():
    from twisted.internet import reactor

    total = 8 << 20
    up = os.urandom(total)
    seen = {"paused": 0, "in_reactor": 0}
    holder = []

    def check():
        pair = holder[0] if holder else None
        if pair is None or pair.splicer is None:
            return
        transports = {pair.client.transport, pair.server.transport}
        if transports & set(reactor.getReaders()):
            seen["in_reactor"] += 1
        if pair.splicer.directions[0].held:
            seen["paused"] += 1
            assert not pair.splicer.legs[0].reading

    recorder = Recorder(keep=True, slow=0.0005, check=check)
    proxied = Proxied(recorder)
    proxied.factory.SIDE_BACKLOG = 256 * 1024  # a quicker test: the same code path
    proxied.factory.OBSERVER_BACKLOG = 512 * 1024

    def run():
        client, server = proxied.connected()
        writer = Peer(lambda: (client.sendall(up), client.shutdown(socket.SHUT_WR)))
        writer.start()
        got = recv_all(server, 60)
        server.close()
        writer.join(30)
        writer.result()
        client.close()
        return got

    peer = Peer(run)
    try:
        peer.start()
        yield until(lambda: proxied.pair() is not None, "the pair")
        holder.append(proxied.pair())
        assert copy_directions(holder[0])
        yield until(lambda: not peer.is_alive(), "the stream", timeout=90)
        assert peer.result() == up
        yield until(recorder.closed, "the close record", timeout=60)
        assert bytes(recorder.bytes[C2S]) == up
        assert seen["paused"] > 0, "the observer's backlog never paused the client's reads"
        assert seen["in_reactor"] == 0
        assert not proxied.factory._paused
    finally:
        yield proxied.close()


@pytest.mark.parametrize("how, expected", [("fin", "eof"), ("rst", "reset")])
@pytest_twisted.inlineCallbacks
def test_the_web_views_force_close_gives_the_client_fin_or_rst(how, expected):
    recorder = Recorder()
    proxied = Proxied(recorder)
    asked = threading.Event()

    peer = Peer(lambda: ping_then_outcomes(proxied, asked))
    try:
        peer.start()
        yield until(lambda: asked.is_set() or not peer.is_alive(), "the first bytes")
        pair = proxied.pair()
        assert copy_directions(pair)
        assert proxied.factory.close_pair(pair.id, how, "web")
        yield until(lambda: not peer.is_alive(), "the close")
        assert peer.result() == (expected, expected)
        yield until(recorder.closed, "the close record")
        assert recorder.events[-1] == ("closed", "web", "fin" if how == "fin" else "reset", 4, 0)
    finally:
        yield proxied.close()


class Raising(Recorder):
    def data(self, pair_id, direction, data, now):
        super().data(pair_id, direction, data, now)
        raise RuntimeError("observer bug")


@pytest_twisted.inlineCallbacks
def test_an_observer_detached_after_raising_leaves_the_pair_forwarding(logged):
    recorder = Raising()
    proxied = Proxied(recorder)
    step = threading.Event()

    def run():
        client, server = proxied.connected()
        client.sendall(b"first")
        assert recv_exactly(server, 5) == b"first"
        step.wait(10)
        client.sendall(b"second")
        assert recv_exactly(server, 6) == b"second"
        server.sendall(b"reply")
        assert recv_exactly(client, 5) == b"reply"
        client.close()
        server.close()

    peer = Peer(run)
    try:
        peer.start()
        yield until(lambda: proxied.factory.observer is None, "the observer detached")
        pair = proxied.pair()
        assert copy_directions(pair)
        step.set()
        yield until(lambda: not peer.is_alive(), "the rest of the exchange")
        peer.result()
        yield until(lambda: not proxied.factory.pairs, "the pair's close")
        assert pair.client.nbytes == 11 and pair.server.nbytes == 5
        assert bytes(recorder.bytes[C2S]) == b"first"
    finally:
        step.set()
        yield proxied.close()


@pytest_twisted.inlineCallbacks
def test_no_zero_copy_keeps_observed_pairs_on_twisteds_path():
    recorder = Recorder()
    proxied = Proxied(recorder, zero_copy=False)
    try:
        peer = exchange(proxied, b"x" * 10, b"y" * 20)
        yield until(lambda: proxied.pair() is not None or not peer.is_alive(), "the pair")
        pair = proxied.pair()
        assert pair is not None and pair.splicer is None
        yield until(lambda: not peer.is_alive(), "the exchange")
        assert peer.result() == (b"x" * 10, b"y" * 20)
    finally:
        yield proxied.close()


@pytest_twisted.inlineCallbacks
def test_small_reads_are_copied_in_the_dispatchers_loop(monkeypatch):
    """A read shorter than ``COPY_READ`` that the destination takes whole is read, written and
    observed in ``_Dispatcher.doRead`` itself, not through ``_CopyDirection.read``."""
    called = []
    read = zerocopy._CopyDirection.read
    monkeypatch.setattr(zerocopy._CopyDirection, "read",
                        lambda self: (called.append(self), read(self)))
    recorder = Recorder()
    proxied = Proxied(recorder)
    exchanging = []  # the calls while the 20 exchanges ran

    def run():
        client, server = proxied.connected()
        for i in range(20):
            client.sendall(b"ping %d" % i)
            assert recv_exactly(server, len(b"ping %d" % i)) == b"ping %d" % i
            server.sendall(b"pong %d" % i)
            assert recv_exactly(client, len(b"pong %d" % i)) == b"pong %d" % i
        # (each read came before its bytes got here.) Not the closes: a FIN met with a hang-up
        # (EPOLLIN|EPOLLHUP once the other FIN went out first, as a loaded machine orders them)
        # takes the general way, _CopyDirection.read, as it should
        exchanging.extend(called)
        client.close()
        server.close()

    peer = Peer(run)
    try:
        peer.start()
        yield until(lambda: not peer.is_alive(), "the exchanges")
        peer.result()
        assert copy_directions(proxied.pair())
        yield until(recorder.closed, "the close record")
        assert bytes(recorder.bytes[C2S]) == b"".join(b"ping %d" % i for i in range(20))
        assert bytes(recorder.bytes[S2C]) == b"".join(b"pong %d" % i for i in range(20))
        assert exchanging == []
    finally:
        yield proxied.close()


@pytest_twisted.inlineCallbacks
def test_an_idle_copy_pair_is_closed_at_the_idle_timeout():
    recorder = Recorder()
    proxied = Proxied(recorder, idle_timeout=0.4)

    peer = Peer(lambda: ping_then_outcomes(proxied))
    try:
        peer.start()
        yield until(lambda: not peer.is_alive(), "the idle timeout")
        assert peer.result() == ("reset", "reset")
        assert copy_directions(proxied.pair())
        yield until(recorder.closed, "the close record")
        assert recorder.events[-1] == ("closed", "proxy", "idle-timeout", 4, 0)
    finally:
        yield proxied.close()


@pytest_twisted.inlineCallbacks
def test_the_web_views_fin_passes_on_what_the_proxy_kept_first():
    """A slow reader's direction keeps a read its socket did not take; ``Pair.close("fin")``
    hands it to the transport before the FIN: the client gets every byte the proxy read from
    the server, then EOF."""
    recorder = Recorder(keep=False)
    proxied = Proxied(recorder)
    go = threading.Event()
    block = os.urandom(1 << 20)

    def run():
        client, server = proxied.connected(rcvbuf=1 << 16)
        server.settimeout(10)

        def send():
            try:
                while True:
                    server.sendall(block)
            except OSError:
                pass  # the proxy closed the server's leg

        sender = Peer(send)
        sender.start()
        go.wait(30)
        got = recv_all(client, 30)
        sender.join(30)
        client.close()
        server.close()
        return got

    peer = Peer(run)
    try:
        peer.start()
        yield until(lambda: proxied.pair() is not None and proxied.pair().splicer is not None
                    and kept(proxied.pair()) > 0, "a read the client's socket did not take")
        pair = proxied.pair()
        assert copy_directions(pair)
        assert proxied.factory.close_pair(pair.id, "fin", "web")
        go.set()
        yield until(lambda: not peer.is_alive(), "the client's EOF")
        got = peer.result()
        assert len(got) == pair.server.nbytes > 0
        assert got == (block * (len(got) // len(block) + 1))[:len(got)]
    finally:
        go.set()
        yield proxied.close()


@pytest_twisted.inlineCallbacks
def test_a_flooding_client_has_one_full_read_a_reactor_turn_as_on_twisteds_path(monkeypatch):
    """A copy leg's full read (``COPY_READ``: its socket has more) is its last in a reactor
    turn, as Twisted's ``doRead`` reads once a turn: a client flooding pipelined commands gets
    no more of a turn than on Twisted's path (short reads, requests and replies, go on in the
    turn's polls: redis-benchmark -P 1 keeps its latency). Up to five reads an event and the dispatcher's polls again within the turn
    let it take a megabyte at once (its observer's bound): the server's replies then came in
    bursts of thousands, whose records the observer hands on in one piece, and another
    client's PING waited behind them (redis-cli --pipe x3 through --decode resp --json:
    its p99 13 ms, 5.5 ms with --no-zero-copy)."""
    per_turn = []
    proxied = None
    do_read = zerocopy._Dispatcher.doRead

    def counted(self):
        pair = proxied.pair() if proxied is not None else None
        before = pair.client.nbytes if pair is not None else 0
        do_read(self)
        if pair is not None:
            per_turn.append(pair.client.nbytes - before)

    monkeypatch.setattr(zerocopy._Dispatcher, "doRead", counted)
    recorder = Recorder(keep=False)
    proxied = Proxied(recorder)
    up = os.urandom(8 << 20)
    try:
        peer = exchange(proxied, up, b"")
        yield until(lambda: not peer.is_alive(), "the exchange", timeout=60)
        got_up, got_down = peer.result()
        assert got_up == up and got_down == b""
        assert copy_directions(proxied.pair())
        yield until(recorder.closed, "the close record")
        assert recorder.sha[C2S].digest() == hashlib.sha256(up).digest()
        # short reads (the socket emptied) may come before a turn's full read: a few at most
        assert max(per_turn) <= 4 * zerocopy.COPY_READ, sorted(per_turn)[-5:]
    finally:
        yield proxied.close()


@pytest_twisted.inlineCallbacks
def test_a_read_whose_write_fails_is_still_observed_as_the_close_record_counts_it():
    """The write of a read to the other socket fails (the proxy's own upstream socket shut for
    writing: EPIPE): the pair is reset, and the read, counted in the close record, reaches the
    observer too, as on Twisted's path (the pcap and the decoders hold every byte counted)."""
    recorder = Recorder()
    proxied = Proxied(recorder)
    client, accepting = proxied.connect()
    try:
        server = yield proxied.copy_pair(accepting)
        pair = proxied.pair()
        pair.server.transport.getHandle().shutdown(socket.SHUT_WR)  # its writes fail now
        client.sendall(b"SET k v\r\n")
        yield until(recorder.closed, "the close record")
        assert recorder.events[-1][2:] == ("reset", 9, 0), recorder.events
        assert bytes(recorder.bytes[C2S]) == b"SET k v\r\n"
        server.close()
    finally:
        client.close()
        yield proxied.close()


@pytest.mark.parametrize("size", [4, zerocopy.COPY_READ], ids=["in-line", "full-read"])
@pytest_twisted.inlineCallbacks
def test_observed_bytes_are_dated_when_read_not_after_their_write(monkeypatch, size):
    """The write of a read to a loopback peer may hand it the CPU, and it answers before the
    proxy goes on: the time the observer gets must be taken before that write (after it, a
    request looked read as late as its answer: HTTP latencies of 0.01 ms). The proxy's write
    of the marked bytes is made to take 0.2 s (the real write, then a sleep): the bytes are
    dated before it, in the dispatcher's own loop (a short read) and in
    ``_CopyDirection.forward`` (a full read, when the 64 KiB arrive in one)."""
    mark = b"dated" + b"x" * (size - 5)
    real_write = os.write
    before = []

    def write(fd, data):
        if bytes(data[:5]) != b"dated":
            return real_write(fd, data)
        before.append(time.time())
        n = real_write(fd, data)
        time.sleep(0.2)  # the peer runs first
        return n

    dated = []
    recorder = Recorder(check=None)
    record = recorder.data
    recorder.data = lambda pair_id, direction, data, now: (
        dated.append((direction, bytes(data[:5]), now)), record(pair_id, direction, data, now))
    proxied = Proxied(recorder)
    client, accepting = proxied.connect()
    try:
        server = yield proxied.copy_pair(accepting)
        monkeypatch.setattr(os, "write", write)
        client.sendall(mark)
        yield until(lambda: len(recorder.bytes[C2S]) >= len(mark), "the bytes observed")
        monkeypatch.undo()
        first = [now for direction, head, now in dated if direction == C2S and head == b"dated"]
        assert before and first and first[0] <= before[0], (before, dated)
        client.close()
        server.close()
    finally:
        monkeypatch.undo()
        client.close()
        yield proxied.close()
