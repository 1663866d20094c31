"""Console and JSON on one queue (sharedbatch): together they write exactly what each writes
alone, with one timer and one look per batch."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.testing import MemoryReactorClock

from playground.codec import values as resp
from playground.decode import records as R
from playground.sinks import sharedbatch
from playground.sinks.batching import FLUSH_DELAY, MAX_BACKLOG
from playground.sinks.console import ConsoleSink
from playground.sinks.jsonlines import JsonSink
from playground.sinks.sharedbatch import SharedBatch, shared

pytestmark = pytest.mark.memory

CLIENT = "127.0.0.1:51234"


class Out(io.BytesIO):
    """A console's output that stays readable after the sink closes it."""

    def close(self):
        pass


def _sinks(clock, tmp_path, name, limit=200):
    json = JsonSink(str(tmp_path / f"{name}.jsonl"), max_value=limit, reactor=clock)
    console = ConsoleSink(out=Out(), color="never", max_value=limit, reactor=clock)
    return json, console


def _run(records, clock, tmp_path, name, together, limit=200):
    """Write ``records`` through the JSON and console sinks (on one queue when ``together``),
    as the chain hands them over: one emit_many per chunk of 7, a reactor turn now and then."""
    json, console = _sinks(clock, tmp_path, name, limit)
    for s in (json, console):
        s.startService()
    # members started before or after they share: both as the chain's builders may do it
    targets = shared([json, console]) if together else [json, console]
    for i in range(0, len(records), 7):
        for t in targets:
            t.emit_many(records[i:i + 7])
        if i % 35 == 0:
            clock.advance(FLUSH_DELAY)
    for s in (json, console):
        s.stopService()
    return (tmp_path / f"{name}.jsonl").read_bytes(), console._target.getvalue()


def _traffic(n):
    records = [R.Open(3, 1.0, CLIENT, "127.0.0.1:6479", "127.0.0.1:6379", "tcp:host=127.0.0.1:port=6379")]
    for i in range(n):
        ts = 1.7e9 + i / 1000
        if i % 5 == 0:
            records.append(R.RedisExchanges(
                3, ts, CLIENT, [(b"SET", b"key:%d" % j, b"xxx") for j in range(16)],
                [resp.Simple(b"OK")] * 16, [0.0002] * 8 + [0.0125] * 8))
        elif i % 5 == 1:
            records.append(R.RedisExchange(3, ts, CLIENT, (b"GET", b"key:%d" % i), b"xxx",
                                           0.00021, False))
        elif i % 5 == 2:
            records.append(R.RedisExchange(3, ts, CLIENT, (b"AUTH", b"\x1b[31m"),
                                           resp.Error(b"ERR \xff"), None, True))
        elif i % 5 == 3:
            records.append(R.RedisExchange(4, ts, '[::1]:5"', (b"LRANGE", b"k", b"0", b"-1"),
                                           [b"a", 1, None], 2e-05, False))
        else:
            records.append(R.RedisExchange(3, ts, CLIENT, (b"SET", b"k", b"x" * 300),
                                           resp.Simple(b"OK"), 1.5, False))
    records.append(R.Close(3, 9.0, CLIENT, 120, 300, 1.234, "client", "fin"))
    return records


def test_together_each_sink_writes_what_it_writes_alone(tmp_path):
    n = 3 * MAX_BACKLOG
    records = _traffic(n)  # several bounded flushes, runs and slow paths
    alone = _run(records, MemoryReactorClock(), tmp_path, "alone", together=False)
    together = _run(records, MemoryReactorClock(), tmp_path, "together", together=True)
    assert together == alone
    runs = len(range(0, n, 5))  # of 16 exchanges each
    exchanges = runs * 16 + n - runs
    assert alone[0].count(b"\n") == 2 + exchanges  # and the open and close records


@given(st.lists(st.sampled_from(_traffic(10)), max_size=60), st.sampled_from([0, 4, 200]))
@settings(max_examples=60, deadline=None)
def test_together_equals_alone_for_any_mix(tmp_path_factory, records, limit):
    tmp_path = tmp_path_factory.mktemp("mix")
    alone = _run(records, MemoryReactorClock(), tmp_path, "alone", False, limit)
    assert _run(records, MemoryReactorClock(), tmp_path, "together", True, limit) == alone


def test_one_queue_one_timer_one_look_per_batch(tmp_path, monkeypatch):
    clock = MemoryReactorClock()
    json, console = _sinks(clock, tmp_path, "one")
    [batch] = shared([json, console])
    assert isinstance(batch, SharedBatch) and json.shared is batch is console.shared
    looks = []
    real = sharedbatch.plain_batch
    monkeypatch.setattr(sharedbatch, "plain_batch", lambda b, lim: looks.append(1) or real(b, lim))
    json.startService()
    console.startService()
    batch.emit_many(_traffic(4))
    assert len(clock.getDelayedCalls()) == 1 and not json._queue and not console._queue
    clock.advance(FLUSH_DELAY)
    assert looks == [1] and json.written == console.written == 1 + 16 + 3 + 1
    assert console._target.getvalue().count(b"\n") == 1 + 16 + 3 + 1  # open, the run, 3 more, close


def test_stopping_one_member_writes_what_is_queued_to_both(tmp_path):
    clock = MemoryReactorClock()
    json, console = _sinks(clock, tmp_path, "stop")
    [batch] = shared([json, console])
    json.startService()
    console.startService()
    batch.emit(R.RedisExchange(3, 1.7e9, CLIENT, (b"GET", b"k"), None, 0.00021, False))
    console.stopService()  # the JSON file gets the record too, before it is closed
    assert console._target.getvalue() == b"#3 127.0.0.1:51234 GET k -> (nil) (0.21 ms)\n"
    assert (tmp_path / "stop.jsonl").read_bytes().count(b"\n") == 1
    batch.emit(R.RedisExchange(3, 1.7e9, CLIENT, (b"GET", b"k"), None, 0.00021, False))
    json.stopService()
    assert (tmp_path / "stop.jsonl").read_bytes().count(b"\n") == 2
    assert not clock.getDelayedCalls()
    batch.emit(R.Notice(3, 1.0, "after"))  # both stopped: nothing is queued
    assert not batch._queue


def test_only_two_buffered_sinks_share_and_the_others_keep_their_place(tmp_path):
    clock = MemoryReactorClock()
    json, console = _sinks(clock, tmp_path, "place")
    other = object()
    assert shared([json, other]) == [json, other]
    batch, rest = shared([json, other, console])
    assert isinstance(batch, SharedBatch) and batch.members == [json, console] and rest is other
    assert SharedBatch([json, ConsoleSink(out=Out(), max_value=4)]).max_value is None
