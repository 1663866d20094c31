"""Decoding cost is linear in the bytes seen, through the whole chain (Chain + RespConversation +
sinks), whatever the shape of the traffic: one huge bulk string fed in 16 KiB chunks, replies
nested up to the depth cap, a million tiny frames cut at odd places.

Each case is run at N and 4N and the CPU time (``time.process_time``, best of two) compared: a
linear decoder takes about 4 times as long, one that copies or rescans its buffer per chunk 16
times (N chunks of work each costing up to N). The margin is generous (< 8) so a loaded machine
cannot fail it, while a quadratic cost cannot pass it. Where the outcome can be checked exactly,
it is: the records and the bytes they hold.
"""

from __future__ import annotations

import json
import time

import pytest
from twisted.internet.testing import MemoryReactorClock

from playground.codec.values import Truncated
from playground.decode import records as R
from playground.decode.chain import Chain
from playground.proxy.observer import Endpoint, PairInfo
from playground.sinks.console import ConsoleSink
from playground.sinks.jsonlines import JsonSink

pytestmark = pytest.mark.memory

CHUNK = 16 * 1024
MAX_RATIO = 8.0  # linear: ~4; quadratic: ~16


class Discard:
    """An in-memory output that keeps only a count (the console sink's ``out``)."""

    def __init__(self):
        self.nbytes = 0
        self.lines = 0

    def write(self, data):
        self.nbytes += len(data)
        self.lines += data.count(b"\n")

    def flush(self):
        pass


class Records:
    """A plain sink: the records, for exact checks."""

    def __init__(self):
        self.records = []

    def emit(self, r):
        self.records.append(r)

    def of(self, kind):
        return [r for r in self.records if type(r) is kind]


def _chain(tmp_path, keep=False):
    clock = MemoryReactorClock()
    console = Discard()
    sinks = [JsonSink(str(tmp_path / "out.jsonl"), reactor=clock),
             ConsoleSink(out=console, color="never", reactor=clock)]
    for s in sinks:
        s.startService()
    records = Records()
    chain = Chain(sinks + ([records] if keep else []), decode="resp")
    chain.pair_opened(PairInfo(1, Endpoint("127.0.0.1", 50000), Endpoint("127.0.0.1", 6479),
                               "tcp:host=127.0.0.1:port=6379", Endpoint("127.0.0.1", 6379)), 0.0)
    return chain, sinks, console, records


def _close(chain, sinks):
    chain.pair_closed(1, {"bytes_c2s": 0, "bytes_s2c": 0, "duration": 1.0,
                          "closed_by": "client", "how": "fin"}, 9.0)
    for s in sinks:
        s.stopService()


def _cpu(run, n, tmp_path) -> float:
    best = None
    for i in range(2):
        d = tmp_path / f"{n}-{i}"
        d.mkdir()
        t0 = time.process_time()
        run(n, d)
        dt = time.process_time() - t0
        best = dt if best is None else min(best, dt)
    return best


def _assert_linear(run, n, tmp_path):
    small = _cpu(run, n, tmp_path)
    large = _cpu(run, 4 * n, tmp_path)
    ratio = large / max(small, 1e-3)
    assert ratio < MAX_RATIO, f"4x the input took {ratio:.1f}x the CPU ({small:.3f}s -> {large:.3f}s)"


# -- one huge bulk string ------------------------------------------------------------------------

def _feed_bulk(chain, direction, header: bytes, size: int, now: float):
    """``header``, then ``size`` bytes of body and CRLF, in 16 KiB chunks (the same block object
    each time; the parser keeps only the first bytes of such a long value)."""
    block = b"v" * CHUNK
    chain.data(1, direction, header, now)
    left = size
    while left >= CHUNK:
        chain.data(1, direction, block, now)
        left -= CHUNK
    chain.data(1, direction, b"v" * left + b"\r\n", now)


def _huge_set_and_get(size: int, tmp_path, keep=False):
    chain, sinks, console, records = _chain(tmp_path, keep)
    _feed_bulk(chain, "c2s", b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%d\r\n" % size, size, 1.0)
    chain.data(1, "s2c", b"+OK\r\n", 2.0)
    chain.data(1, "c2s", b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n", 3.0)
    _feed_bulk(chain, "s2c", b"$%d\r\n" % size, size, 4.0)
    _close(chain, sinks)
    return console, records


def test_a_100_mb_bulk_in_16k_chunks_is_linear(tmp_path):
    size = 100 * 1024 * 1024
    (tmp_path / "exact").mkdir()
    console, records = _huge_set_and_get(size, tmp_path / "exact", keep=True)
    set_, get = records.of(R.RedisExchange)
    assert set_.command[:2] == (b"SET", b"big") and len(set_.command[2]) == size
    assert get.reply == set_.command[2] == Truncated(b"v" * 201, size)  # streamed, not held
    assert not records.of(R.Undecodable) and not records.of(R.HexChunk)
    lines = (tmp_path / "exact" / "out.jsonl").read_text().splitlines()
    shown = [json.loads(x) for x in lines if '"type":"redis"' in x]
    assert shown[1]["reply"] == {"text": "v" * 200, "length": size}  # cut, not copied whole
    assert console.lines == len(lines) and console.nbytes < 10_000

    _assert_linear(lambda n, d: _huge_set_and_get(n, d), size // 4, tmp_path)


def _converse(chain, c2s: bytes, s2c: bytes, rounds: int, piece: int, latency: float):
    """``rounds`` times, at t = 1, 2, ...: ``c2s`` then, ``latency`` later, ``s2c``, each cut
    every ``piece`` bytes."""
    for t in range(1, rounds + 1):
        for i in range(0, len(c2s), piece):
            chain.data(1, "c2s", c2s[i:i + piece], float(t))
        for i in range(0, len(s2c), piece):
            chain.data(1, "s2c", s2c[i:i + piece], t + latency)


# -- deep nesting ---------------------------------------------------------------------------------

def _nested(depth: int) -> bytes:
    return b"*1\r\n" * (depth - 1) + b"*2\r\n:1\r\n$1\r\nx\r\n"


def _deep_replies(count: int, tmp_path, depth=128, keep=False, piece=1000):
    chain, sinks, console, records = _chain(tmp_path, keep)
    reply = _nested(depth)
    batch = 64
    c2s = b"*1\r\n$4\r\nPING\r\n" * batch
    s2c = reply * batch
    _converse(chain, c2s, s2c, count // batch, piece, 0.5)
    _close(chain, sinks)
    return console, records


def test_replies_nested_to_the_cap_are_linear(tmp_path):
    (tmp_path / "exact").mkdir()
    _, records = _deep_replies(128, tmp_path / "exact", keep=True)
    exchanges = records.of(R.RedisExchange)
    assert len(exchanges) == 128 and not records.of(R.Undecodable)
    v = exchanges[0].reply
    for _ in range(127):
        assert type(v) is list and len(v) == 1
        v = v[0]
    assert v == [1, b"x"]
    # one level more is over the cap: undecodable, not a crash
    (tmp_path / "over").mkdir()
    chain, sinks, _, records = _chain(tmp_path / "over", keep=True)
    chain.data(1, "c2s", b"*1\r\n$4\r\nPING\r\n", 1.0)
    chain.data(1, "s2c", _nested(129), 2.0)
    _close(chain, sinks)
    assert [r.direction for r in records.of(R.Undecodable)] == ["s2c"]

    _assert_linear(lambda n, d: _deep_replies(n, d), 1024, tmp_path)


# -- a million tiny frames ------------------------------------------------------------------------

def _tiny_frames(frames: int, tmp_path, keep=False, piece=997):
    """``frames`` frames: half PING commands, half +PONG replies, cut every ``piece`` bytes."""
    chain, sinks, console, records = _chain(tmp_path, keep)
    batch = 256
    c2s = b"*1\r\n$4\r\nPING\r\n" * batch
    s2c = b"+PONG\r\n" * batch
    _converse(chain, c2s, s2c, frames // (2 * batch), piece, 0.25)
    _close(chain, sinks)
    return console, records


def test_a_million_tiny_frames_in_small_chunks_are_linear(tmp_path):
    (tmp_path / "exact").mkdir()
    _, records = _tiny_frames(2 * 4096, tmp_path / "exact", keep=True)
    exchanges = records.of(R.RedisExchange)
    assert len(exchanges) == 4096
    assert all(e.command == (b"PING",) and e.reply.value == b"PONG" and e.latency == 0.25
               for e in exchanges)

    _assert_linear(lambda n, d: _tiny_frames(n, d), 1_000_000 // 4, tmp_path)
