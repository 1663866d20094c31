"""One client must not stall the others: bounded work per reactor turn in the proxy's observer
queue, the chain's held records, the sinks' formatting and the metrics endpoint (driven with
StringTransport and MemoryReactorClock, one reactor turn at a time: ``reactor_turn``)."""

from __future__ import annotations

import pytest
from twisted.internet import error
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure

from playground.decode import records as R
from playground.decode.chain import Chain
from playground.proxy.splice import ProxyFactory
from playground.sinks import batching, blockwriter, console
from tests.support.splice import Endpoint, Transport
from tests.support.waiting import reactor_turn

PING = b"*1\r\n$4\r\nPING\r\n"  # an echo upstream answers it with itself


class TurnSink:
    """Counts what reaches it per reactor turn (a run counts as its exchanges)."""

    takes_runs = True

    def __init__(self):
        self.turn = 0
        self.per_turn: dict[int, int] = {}
        self.biggest_call = 0
        self.records: list = []

    def _count(self, records):
        n = sum(len(r.commands) if type(r) is R.RedisExchanges else 1 for r in records)
        self.per_turn[self.turn] = self.per_turn.get(self.turn, 0) + n
        self.biggest_call = max(self.biggest_call, len(records))
        self.records.extend(records)

    def emit(self, record):
        self._count([record])

    def emit_many(self, records):
        self._count(records)


def _decoding_proxy(sink):
    clock = MemoryReactorClock()
    endpoint = Endpoint()
    chain = Chain([sink], decode="resp")
    factory = ProxyFactory(endpoint, observer=chain, reactor=clock)
    client = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 50000))
    ct = Transport()
    client.makeConnection(ct)
    server, st = endpoint.succeed()
    return clock, factory, chain, client, server


def _run_turns(clock, sink, limit=10_000) -> int:
    turns = 0
    while clock.getDelayedCalls() and turns < limit:
        sink.turn += 1
        reactor_turn(clock)
        turns += 1
    assert not clock.getDelayedCalls(), "work still scheduled after the turn limit"
    return turns


@pytest.mark.memory
def test_100k_pipelined_pings_reach_the_sinks_in_bounded_slices_per_turn():
    """100,000 pipelined PINGs in one write, half answered by an echo, then the client closes:
    every reactor turn hands the sink a bounded amount (the 50,000 unanswered at close too),
    the rest is scheduled with callLater, and every command is accounted for, in order."""
    sink = TurnSink()
    clock, factory, chain, client, server = _decoding_proxy(sink)
    data = PING * 100_000
    for i in range(0, len(data), 65536):  # the reads of one burst
        client.dataReceived(data[i:i + 65536])
    answered = data[:len(data) // 2]
    for i in range(0, len(answered), 65536):
        server.dataReceived(answered[i:i + 65536])
    client.connectionLost(Failure(error.ConnectionDone()))
    server.connectionLost(Failure(error.ConnectionDone()))
    turns = _run_turns(clock, sink)
    # a turn: one slice of held records, then up to OBSERVER_SLICE bytes of decoding (whose own
    # output is at most a slice more, the rest held)
    bound = 2 * chain.SLICE + factory.OBSERVER_SLICE // len(PING) + 16
    assert max(sink.per_turn.values()) <= bound, sorted(sink.per_turn.values())[-5:]
    assert sink.biggest_call <= chain.SLICE
    assert turns > 50_000 // chain.SLICE  # the unanswered ones took many turns
    exchanges = sum(len(r.commands) for r in sink.records if type(r) is R.RedisExchanges)
    exchanges += sum(1 for r in sink.records if type(r) is R.RedisExchange)
    unanswered = [r for r in sink.records if type(r) is R.RedisUnanswered]
    assert exchanges == 50_000 and len(unanswered) == 50_000
    assert type(sink.records[-1]) is R.Close  # after everything of its pair
    assert not chain.held and not chain.pairs


class _Pieces:
    """An observer that keeps every piece of bytes it is handed, per direction."""

    def __init__(self):
        self.pieces = {"c2s": [], "s2c": []}

    def pair_opened(self, pair, now):
        pass

    def data(self, pair_id, direction, data, now):
        self.pieces[direction].append(data)

    def half_closed(self, pair_id, direction, now):
        pass

    def pair_closed(self, pair_id, summary, now):
        pass


@pytest.mark.memory
def test_big_reads_reach_the_observer_whole_in_order_in_pieces():
    """Reads larger than a piece come out as pieces of at most OBSERVER_PIECE bytes, over as
    many turns as the slice needs, and joined they are exactly the bytes read, in order."""
    observer = _Pieces()
    clock = MemoryReactorClock()
    endpoint = Endpoint()
    factory = ProxyFactory(endpoint, observer=observer, reactor=clock)
    client = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 50000))
    client.makeConnection(Transport())
    server, _ = endpoint.succeed()
    reads = [bytes([65 + i % 26]) * n for i, n in enumerate((70_000, 3, 4096, 4097, 65_536, 1))]
    for chunk in reads:
        client.dataReceived(chunk)
    server.dataReceived(b"+OK\r\n")
    turns = 0
    while clock.getDelayedCalls() and turns < 100:
        reactor_turn(clock)
        turns += 1
    got = observer.pieces["c2s"]
    assert b"".join(got) == b"".join(reads)
    assert max(map(len, got)) <= factory.OBSERVER_PIECE
    assert turns > 1  # more than one slice's worth: the head read was handed over in part
    assert observer.pieces["s2c"] == [b"+OK\r\n"]


@pytest.mark.pure
def test_held_records_keep_their_order_and_later_records_queue_behind():
    sink = TurnSink()
    chain = Chain([sink], decode="resp")
    big = [R.Notice(1, float(i), f"n{i}") for i in range(chain.SLICE * 3 + 5)]
    chain.emit_many(big)
    assert len(sink.records) == chain.SLICE
    chain.emit(R.Notice(2, 0.0, "after"))  # queued behind, not handed on before the rest
    assert len(sink.records) == chain.SLICE
    steps = 0
    while chain.work() and steps < 10:
        steps += 1
    assert [r.message for r in sink.records] == [r.message for r in big] + ["after"]
    assert chain.emit_many == chain._emit_bounded  # straight on again


class _Slices(console.ConsoleSink):
    def __init__(self, out):
        super().__init__(out=out, color="never")
        self.batches: list[int] = []

    def format_batch(self, batch):
        self.batches.append(sum(len(r.commands) if type(r) is R.RedisExchanges else 1
                                for r in batch))
        return super().format_batch(batch)


@pytest.mark.memory
def test_sink_formats_a_50k_emit_many_in_slices(tmp_path):
    out = open(tmp_path / "console.txt", "wb")
    sink = _Slices(out)
    sink.reactor = MemoryReactorClock()
    sink.startService()
    records = [R.RedisUnanswered(1, 0.0, "127.0.0.1:1", (b"PING",), False)
               for _ in range(50_000)]
    sink.emit(records[0])
    sink.emit_many(records[1:])
    assert max(sink.batches) <= batching.MAX_BACKLOG
    run = R.RedisExchanges(1, 0.0, "127.0.0.1:1", [(b"GET", b"k")] * 5000, [b"v"] * 5000,
                           [0.001] * 5000)
    sink.batches.clear()
    for _ in range(3):  # runs count as their exchanges: a flush per turn, not per 512 runs
        sink.emit_many([run])
    assert sink.batches == [5000, 5000, 5000]
    sink.stopService()
    out.close()
    lines = (tmp_path / "console.txt").read_bytes().splitlines()
    assert len(lines) == 50_000 + 15_000


class _CountingRegistry:
    def __init__(self):
        self.renders = 0

    def json(self):
        self.renders += 1
        return b'{"services":[]}'

    prometheus = json


@pytest.mark.memory
def test_metrics_pipelined_flood_is_answered_a_few_per_turn_and_rendered_once_per_turn():
    from twisted.internet.testing import StringTransport

    from playground.common import limits
    from playground.daemon import metrics

    clock = MemoryReactorClock()
    registry = _CountingRegistry()
    site = metrics.site(registry, reactor=clock)
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 50000))
    transport = StringTransport()
    channel.makeConnection(transport)
    request = b"GET /metrics.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    channel.dataReceived(request * 1000)

    def answered():
        return transport.value().count(b"HTTP/1.1 200 OK")

    assert answered() == limits.MAX_PER_TURN  # not 1,000 in the turn that read them
    turns = 0
    while answered() < 1000 and turns < 1000:
        before = answered()
        reactor_turn(clock)
        turns += 1
        assert answered() - before <= limits.MAX_PER_TURN
    assert answered() == 1000
    assert turns >= 1000 // limits.MAX_PER_TURN - 1
    assert registry.renders <= turns + 1  # once per turn at most, not once per request
    assert transport.value().count(b'{"services":[]}') == 1000
    channel.connectionLost(Failure(error.ConnectionDone()))
    for _ in range(5):
        reactor_turn(clock)  # nothing left to run on a closed channel


# -- --slow-sink -------------------------------------------------------------------------------


@pytest.mark.pure
def test_slow_sink_option_is_checked_and_named():
    import pytest
    from twisted.python import usage

    from playground.proxy.service import Options

    o = Options()
    o.parseOptions(["--target", "6379", "--slow-sink", "DROP"])
    assert o["slow-sink"] == "drop"
    o = Options()
    o.parseOptions(["--target", "6379"])
    assert o["slow-sink"] is None  # decided by what stdout is
    with pytest.raises(usage.UsageError, match="--slow-sink: choose block or drop"):
        Options().parseOptions(["--target", "6379", "--slow-sink", "wait"])


@pytest.mark.pure
def test_slow_sink_from_a_config_file(tmp_path):
    from playground.daemon import config

    cfg = config.loads('[proxy.r]\ntarget = "6379"\nslow-sink = "block"\n')
    (spec,) = cfg.services
    assert spec.options["slow-sink"] == "block"
    import pytest

    with pytest.raises(config.ConfigError, match="slow-sink"):
        config.loads('[proxy.r]\ntarget = "6379"\nslow-sink = "later"\n')


def _fill(writer, line=b"x" * 99 + b"\n", limit=100_000):
    """Write lines until the writer is full; return the bytes it accepted."""
    n = 0
    while not writer.full() and n < limit:
        writer.write(line)
        n += 1
    return n * len(line)


@pytest.mark.memory
def test_drop_writer_drops_whole_batches_and_says_so_when_drained():
    import os

    from playground.sinks import dropwriter

    clock = MemoryReactorClock()
    r, w = os.pipe()
    try:
        writer = dropwriter.DropWriter(w, clock, limit=64 * 1024)
        accepted = _fill(writer)
        assert writer.full() and writer in clock.getWriters()
        writer.drop(7)  # the sink drops batches while full
        writer.drop(5)
        got = bytearray()
        for _ in range(1000):  # the reader comes back: read, let the reactor write more
            try:
                os.set_blocking(r, False)
                got += os.read(r, 1 << 16)
            except BlockingIOError:
                pass
            if writer not in clock.getWriters():
                break
            writer.doWrite()
        assert writer not in clock.getWriters()
        os.set_blocking(r, False)
        try:
            got += os.read(r, 1 << 16)
        except BlockingIOError:
            pass
        assert len(got) == accepted + len(dropwriter.notice(12))
        assert got.endswith(b"... 12 records dropped (console could not keep up)\n")
        assert writer.dropped == 12
        assert writer.close() is None  # nothing waits: closed at once
        assert os.get_blocking(w)  # our own description was non-blocking, stdout's is not
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.memory
def test_drop_writer_reports_drops_at_close_and_gives_up_on_a_reader_that_never_comes():
    import os

    from playground.sinks import dropwriter

    clock = MemoryReactorClock()
    r, w = os.pipe()
    try:
        writer = dropwriter.DropWriter(w, clock, limit=64 * 1024, close_grace=2.0)
        _fill(writer)
        writer.drop(3)
        d = writer.close()
        assert d is not None and not d.called
        assert writer._pending.endswith(dropwriter.notice(3))
        clock.advance(2.0)
        assert d.called and writer.fd == -1 and writer not in clock.getWriters()
    finally:
        os.close(r)
        os.close(w)


def _proxy_with_stdout(tmp_path, stdout, target: int, *extra):
    import subprocess

    from tests.support.net import free_port
    from tests.support.paths import TWISTD
    from tests.support.waiting import wait_until

    port = free_port()
    log = tmp_path / "twistd.log"
    proc = subprocess.Popen(
        [TWISTD, "-n", "--pidfile=", f"--logfile={log}", "tcpplay", "proxy", "--listen",
         str(port), "--target", str(target), "--decode", "resp", "--color", "never",
         "--decode-inline", *extra],  # the console in this process: its write stalls the proxy
        stdout=stdout, stderr=subprocess.DEVNULL, cwd=str(tmp_path))
    wait_until(lambda: log.exists() and "proxy listening on" in log.read_text(), 20,
               "the proxy's listening line")
    return proc, port, log


def _pings(port: int, n: int) -> None:
    import socket

    from tests.support.net import recv_exactly

    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(PING * n)
        assert recv_exactly(s, 7 * n, timeout=30) == b"+PONG\r\n" * n


def _one_ping(port: int) -> float:
    import socket
    import time

    from tests.support.net import recv_exactly

    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        start = time.monotonic()
        s.sendall(PING)
        assert recv_exactly(s, 7, timeout=10) == b"+PONG\r\n"
        return time.monotonic() - start


@pytest.mark.twistd
def test_console_on_a_pipe_nobody_reads_drops_and_traffic_flows(tmp_path, redis_server):
    """stdout a pipe the reader has stopped reading (a paused ``less``): the default policy for
    a pipe is drop, so a second client's PING still gets +PONG at once; when the pipe is read
    again, a line says how many records were dropped."""
    import os
    import time

    from tests.support.processes import stop_process

    r, w = os.pipe()
    proc, port, log = _proxy_with_stdout(tmp_path, w, redis_server.port)
    os.close(w)
    try:
        for _ in range(3):  # ~60,000 console lines: far more than the pipe and the buffer hold
            _pings(port, 20_000)
        assert _one_ping(port) < 5.0  # answered while nobody reads stdout (block: never)
        os.set_blocking(r, False)
        got = bytearray()
        deadline = time.monotonic() + 20
        while b"records dropped (console could not keep up)" not in got:
            assert time.monotonic() < deadline, bytes(got[-300:])
            try:
                chunk = os.read(r, 1 << 16)
            except BlockingIOError:
                time.sleep(0.01)
                continue
            assert chunk, "stdout closed before the dropped-count line"
            got += chunk
        line = [x for x in bytes(got).splitlines() if b"records dropped" in x][0]
        assert int(line.split()[1]) > 1000
        assert b"PING -> +PONG" in got  # what fitted was written, whole lines
    finally:
        stop_process(proc)
        os.close(r)
    assert "records dropped in all" in log.read_text()


def _answered_within(port: int, seconds: float) -> bool:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=seconds) as s:
        s.sendall(PING)
        try:
            return s.recv(7) != b""
        except TimeoutError:
            return False


@pytest.mark.twistd
@pytest.mark.parametrize("signum", ["SIGTERM", "SIGINT"])
def test_a_signal_ends_a_proxy_blocked_on_a_console_pipe_nobody_reads(tmp_path, redis_server,
                                                                      signum):
    """``--slow-sink block``, stdout a pipe nobody reads: once the console's write() blocks,
    traffic stops (a PING is not answered); SIGTERM (SIGINT) still ends the process, status 0,
    about the drain timeout later, and the log says how many records were dropped."""
    import os
    import signal
    import socket
    import subprocess
    import time

    from tests.support.processes import stop_process
    from tests.support.waiting import wait_until

    r, w = os.pipe()
    proc, port, log = _proxy_with_stdout(tmp_path, w, redis_server.port, "--slow-sink", "block",
                                         "--drain-timeout", "1")
    os.close(w)
    flood = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        try:
            flood.sendall(PING * 20_000)  # far more console lines than the pipe holds
        except TimeoutError:
            pass  # the proxy stopped reading: blocked already
        wait_until(lambda: not _answered_within(port, 1.0), 20, "the console to block")
        start = time.monotonic()
        proc.send_signal(getattr(signal, signum))
        try:
            status = proc.wait(10)
        except subprocess.TimeoutExpired:
            status = f"still running 10 s after {signum}"
        elapsed = time.monotonic() - start
    finally:
        flood.close()
        stop_process(proc)
        os.close(r)
    assert status == 0, log.read_text()[-2000:]
    assert elapsed < 6  # drain timeout 1 s + at most 2 s for the dropped-count line
    text = log.read_text()
    assert "a stop was asked for during a write to stdout" in text
    assert "records dropped in all" in text and "(--slow-sink block)" in text


@pytest.mark.twistd
def test_console_to_a_regular_file_keeps_every_record(tmp_path, redis_server):
    from tests.support.processes import stop_process
    from tests.support.waiting import wait_until

    out = open(tmp_path / "console.txt", "wb")
    proc, port, log = _proxy_with_stdout(tmp_path, out, redis_server.port)
    out.close()
    try:
        _pings(port, 20_000)
        path = tmp_path / "console.txt"
        wait_until(lambda: path.read_bytes().count(b"PING -> +PONG") >= 20_000, 30,
                   "every exchange in the file")
    finally:
        stop_process(proc)
    text = (tmp_path / "console.txt").read_bytes()
    assert text.count(b"PING -> +PONG") == 20_000
    assert b"records dropped" not in text


@pytest.mark.real
def test_console_keeps_blocking_writes_when_stdout_cannot_be_reopened():
    """A socket on stdout cannot be reopened through /proc: the console says so and blocks
    (it never sets O_NONBLOCK on a description twistd's log shares)."""
    import io
    import socket

    a, b = socket.socketpair()
    try:
        out = io.BufferedWriter(io.FileIO(a.fileno(), "w", closefd=False))
        sink = console.ConsoleSink(color="never", reactor=MemoryReactorClock())
        writer = sink._slow_sink_policy(out)
        assert isinstance(writer, blockwriter.BlockWriter) and writer.fd == a.fileno()
        assert sink.slow_sink == "block" and sink._dropper is None
        assert a.getblocking()
    finally:
        a.close()
        b.close()


# -- the metrics figures: cheap to render again --------------------------------------------


def _fresh_total(cs):
    from playground.daemon.stats import Histogram

    h = Histogram()
    for c in cs.commands.values():
        h.merge(c.latency)
    return h


@pytest.mark.pure
def test_scrape_renders_only_what_changed_and_says_the_same():
    """The all-commands histogram is kept up to date from what changed, the per-command lines
    are re-used while their figures stay the same: the output is what a full render gives."""
    import random

    from playground.daemon import stats as S

    rnd = random.Random(7)
    cs = S.CommandStats(max_names=50)
    for round_ in range(30):
        for _ in range(rnd.randrange(0, 40)):
            cs.record("resp", f"C{rnd.randrange(60)}", rnd.random() < 0.1,
                      rnd.choice([None, rnd.random() / 50, 0.0, 300.0]), "ERR")
        snap = {"service": "p", "kind": "proxy",
                "connections": {"open": 0, "total": 0, "refused": 0},
                "commands": cs.snapshot()}
        total = _fresh_total(cs)
        assert cs._all.counts == total.counts and cs._all.count == total.count
        assert snap["commands"]["latency"] == total.summary()
        cached = S.prometheus_text([snap], 1.0)
        S._LINES.clear()
        assert cached == S.prometheus_text([snap], 1.0), round_


@pytest.mark.pure
def test_quantiles_in_one_pass_match_one_at_a_time():
    import random

    from playground.daemon import stats as S
    from playground.daemon.stats import Histogram

    rnd = random.Random(3)
    for _ in range(50):
        h = Histogram()
        for _ in range(rnd.randrange(0, 300)):
            h.observe(rnd.choice([rnd.random(), rnd.random() / 1000, 500.0, 0.0]))
        qs = sorted(rnd.random() for _ in range(4))
        one_by_one = []
        for q in qs:  # the former single-quantile walk
            if not h.count:
                one_by_one.append(None)
                continue
            rank, seen, found = q * h.count, 0, h.max
            for i, n in enumerate(h.counts):
                seen += n
                if n and seen >= rank:
                    found = h.max if i == len(h.counts) - 1 else min(
                        max(S._MIN * S._GROWTH ** (i + 0.5) if i else S._MIN / 2, h.min), h.max)
                    break
            one_by_one.append(found)
        assert h.quantiles(qs) == one_by_one


@pytest.mark.pure
def test_the_root_service_moves_start_up_objects_out_of_the_cyclic_gcs_sight():
    """A full collection during a flood must not scan the whole program (30 ms a time)."""
    import gc

    from playground.tap import TcpplayService

    gc.unfreeze()
    root = TcpplayService()
    try:
        root.startService()
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
        root.running = False
