"""The web view's store (playground.web.capture): what it keeps, its bounds, its marks of what it
evicted, its change log; pure (no Twisted)."""

from __future__ import annotations

import gc
from collections import deque

import pytest
from hypothesis import given
from hypothesis import strategies as st

from playground.web.capture import (
    BLOCK,
    C2S,
    CHUNK_COST,
    ENTRY_COST,
    MAX_ROWS,
    MIB,
    ROW_COST,
    ROWS_COST,
    S2C,
    Capture,
    TupleLog,
    encoded_rows,
    is_encoded,
)

pytestmark = pytest.mark.pure


def _open(cap: Capture, pair: int, now: float = 1.0):
    return cap.opened(pair, now, f"127.0.0.1:{40000 + pair}", "127.0.0.1:6479",
                      "tcp:host=127.0.0.1:port=6379", "127.0.0.1:6379")


def _stream_bytes(cap: Capture, pair: int, direction: str) -> bytes:
    return b"".join(bytes(ch.data) for ch in cap.stream(pair)
                    if ch.direction == direction and ch.mark is None)


def test_a_connection_its_bytes_state_and_exchanges():
    cap = Capture()
    _open(cap, 1, now=10.0)
    cap.detected(1, "resp")
    cap.data(1, C2S, b"*1\r\n$4\r\nPING\r\n", 10.1)
    cap.data(1, S2C, b"+PONG\r\n", 10.2)
    cap.add_exchanges(1, 10.2, "redis", "PING -> +PONG", cost=13)
    cap.add_exchanges(1, 10.3, "redis", "a run of three", count=3, errors=1, cost=14)
    cap.half_closed(1, C2S, 10.4)
    row = cap.get(1).summary(10.5)
    assert row["state"] == "half-closed c2s"
    assert (row["bytes_c2s"], row["bytes_s2c"]) == (14, 7)
    assert (row["exchanges"], row["errors"], row["protocol"]) == (4, 1, "resp")
    assert row["duration"] == 0.5
    cap.half_closed(1, S2C, 10.5)
    assert cap.get(1).state == "half-closed c2s, s2c"
    cap.closed(1, 10.6, "client", "fin", 14, 7)
    row = cap.get(1).summary(99.0)
    assert (row["state"], row["how"], row["closed_by"]) == ("closed", "fin", "client")
    assert abs(row["duration"] - 0.6) < 1e-9  # ended: the clock no longer counts
    chunks = cap.stream(1)
    assert [(c.direction, c.offset, bytes(c.data), c.mark) for c in chunks] == [
        (C2S, 0, b"*1\r\n$4\r\nPING\r\n", None), (S2C, 0, b"+PONG\r\n", None),
        (C2S, 14, b"", "fin"), (S2C, 7, b"", "fin"), (C2S, 14, b"", "close")]
    assert [c.n for c in chunks] == [1, 2, 3, 4, 5]
    assert [c.n for c in cap.stream(1, after=3)] == [4, 5]
    assert [(e.first, e.count, e.data) for e in cap.get(1).exchanges] == [
        (1, 1, "PING -> +PONG"), (2, 3, "a run of three")]
    assert cap.bytes == sum(ch.cost for ch in chunks) + 2 * ENTRY_COST + 13 + 14


def test_a_reset_is_marked_rst():
    cap = Capture()
    _open(cap, 1)
    cap.closed(1, 2.0, "server", "reset")
    assert [(c.direction, c.mark) for c in cap.stream(1)] == [(S2C, "rst")]


def test_same_direction_reads_join_one_chunk_in_arrival_order():
    cap = Capture()
    _open(cap, 1)
    cap.data(1, C2S, b"ab", 1.0)
    cap.data(1, C2S, b"cd", 1.1)
    cap.data(1, S2C, b"xy", 1.2)
    cap.data(1, C2S, b"ef", 1.3)
    assert [(c.direction, c.offset, bytes(c.data)) for c in cap.stream(1)] == [
        (C2S, 0, b"abcd"), (S2C, 0, b"xy"), (C2S, 4, b"ef")]


def test_mask_overwrites_stored_bytes_and_bytes_still_to_come():
    cap = Capture()
    _open(cap, 1)
    cap.data(1, C2S, b"AUTH hunter2", 1.0)
    assert cap.mask(1, C2S, 5, 12) == 0
    assert _stream_bytes(cap, 1, C2S) == b"AUTH *******"
    # registered ahead of its bytes, split across two reads
    cap.mask(1, C2S, 19, 27)  # "secretpw"
    cap.data(1, C2S, b"\r\nAUTH sec", 1.1)
    cap.data(1, S2C, b"+OK\r\n", 1.2)  # another direction is not touched
    cap.data(1, C2S, b"retpw\r\n", 1.3)
    assert _stream_bytes(cap, 1, C2S) == b"AUTH *******\r\nAUTH ********\r\n"
    assert _stream_bytes(cap, 1, S2C) == b"+OK\r\n"


def test_too_many_connections_evicts_the_oldest_and_counts_them():
    cap = Capture(max_connections=3)
    for pair in range(1, 6):
        _open(cap, pair)
        cap.data(pair, C2S, b"x" * 10, 1.0)
    assert list(cap.connections) == [3, 4, 5]
    assert cap.evicted_connections == 2
    # late records for an evicted connection are counted, not stored
    cap.add_exchanges(1, 2.0, "redis", "PING", count=2)
    assert cap.dropped_records == 2
    assert cap.bytes == sum(c.cost for c in cap.connections.values())


def test_memory_bound_evicts_oldest_stream_bytes_then_exchanges_and_marks_them():
    cap = Capture(max_bytes=3 * (CHUNK_COST + 100))
    _open(cap, 1)
    cap.data(1, C2S, b"a" * 100, 1.0)
    cap.data(1, S2C, b"b" * 100, 1.1)
    _open(cap, 2)
    cap.data(2, C2S, b"c" * 100, 1.2)
    assert cap.bytes <= cap.max_bytes and cap.connections[1].stream_evicted == {C2S: 0, S2C: 0}
    cap.data(2, S2C, b"d" * 100, 1.3)  # over: connection 1's oldest chunk goes
    one = cap.connections[1]
    assert one.stream_evicted == {C2S: 100, S2C: 0}
    assert [bytes(c.data)[:1] for c in one.chunks] == [b"b"]
    assert cap.evicted_bytes == 100
    assert cap.bytes <= cap.max_bytes
    cap.add_exchanges(2, 1.4, "redis", "x" * 100, cost=100)
    assert cap.connections[1].stream_evicted == {C2S: 100, S2C: 100}
    assert one.cost == 0 and cap.bytes <= cap.max_bytes
    assert cap.evicted_connections == 0  # the rows stay, only their contents went


def test_exchanges_are_evicted_with_a_count():
    cap = Capture(max_bytes=2 * (ENTRY_COST + 10))
    _open(cap, 1)
    for i in range(5):
        cap.add_exchanges(1, 1.0 + i, "redis", f"run {i}", count=2, cost=10)
    c = cap.get(1)
    assert c.exchange_count == 10 and len(c.exchanges) == 2 and c.exchanges_evicted == 6
    assert [e.first for e in c.exchanges] == [7, 9]


def test_changes_since_a_seq_and_resync():
    cap = Capture(max_connections=2)
    _open(cap, 1)
    _open(cap, 2)
    first = cap.changes(0, 5.0)
    assert first["resync"] and [r["id"] for r in first["connections"]] == [1, 2]
    seq = first["seq"]
    assert cap.changes(seq, 5.0)["connections"] == []
    cap.data(1, C2S, b"x", 5.0)
    later = cap.changes(seq, 5.0)
    assert not later["resync"] and [r["id"] for r in later["connections"]] == [1]
    seq = later["seq"]
    _open(cap, 3)  # evicts 1
    batch = cap.changes(seq, 5.0)
    assert batch["evicted"] == [1] and [r["id"] for r in batch["connections"]] == [3]
    assert batch["evicted_total"] == 1
    assert cap.changes(cap.seq + 10, 5.0)["resync"]  # a seq from another run: start over


def test_changes_limit_sends_the_oldest_changes_first_and_resumes():
    cap = Capture()
    for pair in range(1, 6):
        _open(cap, pair)
    part = cap.changes(0, 1.0, limit=2)
    assert [r["id"] for r in part["connections"]] == [1, 2]
    rest = cap.changes(part["seq"], 1.0)
    assert [r["id"] for r in rest["connections"]] == [3, 4, 5]


_ops = st.lists(st.one_of(
    st.tuples(st.just("open"), st.integers(1, 12)),
    st.tuples(st.just("data"), st.integers(1, 12), st.sampled_from([C2S, S2C]),
              st.binary(min_size=1, max_size=300)),
    st.tuples(st.just("exchange"), st.integers(1, 12), st.integers(1, 20), st.integers(0, 300),
              st.integers(0, 20)),
    st.tuples(st.just("mask"), st.integers(1, 12), st.sampled_from([C2S, S2C]),
              st.integers(0, 400), st.integers(0, 60)),
    st.tuples(st.just("row"), st.integers(1, 12), st.binary(max_size=200), st.integers(0, 1),
              st.integers(1, 3)),
    st.tuples(st.just("reads"), st.integers(1, 12),
              st.lists(st.tuples(st.integers(1, 12), st.sampled_from([C2S, S2C]),
                                 st.binary(max_size=300)), max_size=8)),
    st.tuples(st.just("fin"), st.integers(1, 12), st.sampled_from([C2S, S2C])),
    st.tuples(st.just("close"), st.integers(1, 12), st.sampled_from(["fin", "reset"])),
), max_size=80)


@given(ops=_ops, max_connections=st.integers(1, 6), max_bytes=st.integers(0, 2000))
def test_bounds_hold_for_any_sequence_of_events(ops, max_connections, max_bytes):
    cap = Capture(max_connections=max_connections, max_bytes=max_bytes)
    opened: set[int] = set()
    sent: dict[tuple[int, str], int] = {}
    seq = cap.seq
    for i, op in enumerate(ops):
        now = float(i)
        kind, pair = op[0], op[1]
        if kind == "open":
            if pair in opened:
                continue
            opened.add(pair)
            _open(cap, pair, now)
        elif kind == "data":
            if pair in cap.connections:
                sent[pair, op[2]] = sent.get((pair, op[2]), 0) + len(op[3])
            cap.data(pair, op[2], op[3], now)
        elif kind == "reads":  # a batch, as the web sink hands them over
            for p, direction, data in op[2]:
                if p in cap.connections:
                    sent[p, direction] = sent.get((p, direction), 0) + len(data)
            cap.add_reads([(p, direction, data, now) for p, direction, data in op[2]])
        elif kind == "exchange":
            cap.add_exchanges(pair, now, "redis", None, count=op[2], cost=op[3],
                              errors=min(op[4], op[2]))
        elif kind == "row":
            cap.add_rows(pair, now, "redis", op[2], op[4], op[3])
        elif kind == "mask":
            cap.mask(pair, op[2], op[3], op[3] + op[4])
        elif kind == "fin":
            cap.half_closed(pair, op[2], now)
        else:
            cap.closed(pair, now, "client", op[2])
        assert cap.seq >= seq
        seq = cap.seq
        # the bounds
        assert len(cap.connections) <= max_connections
        assert cap.bytes <= max_bytes
        assert cap.bytes == sum(c.cost for c in cap.connections.values())
        for c in cap.connections.values():
            assert c.cost == sum(ch.cost for ch in c.chunks) + sum(e.cost for e in c.exchanges)
            assert c.exchanges_evicted + sum(e.count for e in c.exchanges) == c.exchange_count
            # entries are numbered on: each starts where the one before it ended
            entries = c.exchanges
            assert all(a.first + a.count == b.first for a, b in zip(entries, entries[1:], strict=False))
            assert all(0 < len(encoded_rows(e.data)) <= e.count for e in entries
                       if is_encoded(e.data))
            for direction in (C2S, S2C):
                # what is kept of a direction is its tail from the evicted mark on, in order
                kept = [ch for ch in c.chunks if ch.direction == direction and ch.mark is None]
                at = c.stream_evicted[direction]
                for ch in kept:
                    assert ch.offset >= at
                    at = ch.offset + len(ch.data)
                assert at <= sent.get((c.id, direction), 0)
            assert [ch.n for ch in c.chunks] == sorted(ch.n for ch in c.chunks)
    # nothing silently missing: every connection opened is kept or counted as evicted
    assert len(cap.connections) + cap.evicted_connections == len(opened)


@given(st.lists(st.one_of(st.integers(0, 200), st.none()), max_size=60))
def test_a_tuple_log_is_a_queue(ops):
    # an integer: append that many items; None: take the oldest (if any)
    log, model = TupleLog(), deque()
    n = 0
    for op in ops:
        if op is None:
            if model:
                assert log.popleft() == model.popleft()
        else:
            for _ in range(op):
                n += 1
                log.append((n, b"x"))
                model.append((n, b"x"))
        assert list(log) == list(model)
        assert [log[i] for i in range(len(model))] == list(model)  # by position too
        assert len(log) == len(model) and bool(log) == bool(model)
        assert log.last() == (model[-1] if model else None)


def test_a_tuple_log_is_left_alone_by_the_cyclic_gc():
    log = TupleLog()
    for n in range(10 * BLOCK + 3):
        log.append((n, 1.5, "c2s", bytearray(b"x")))
    for _ in range(2):
        gc.collect()
    assert len(log.blocks) == 10 and not [b for b in log.blocks if gc.is_tracked(b)]
    taken = log.popleft()
    assert taken == (0, 1.5, "c2s", bytearray(b"x")) and log.head[0] is None  # freed at once


def test_a_large_capture_evicts_a_slack_at_once_then_nothing_until_full_again():
    cap = Capture(max_bytes=MIB)
    _open(cap, 1)
    chunk = 4096 - CHUNK_COST  # each read a new chunk: directions alternate
    for i in range(256):
        cap.data(1, C2S if i % 2 else S2C, b"x" * chunk, 1.0 + i)
    assert cap.bytes == cap.max_bytes and cap.evicted_bytes == 0  # full, not over
    cap.data(1, S2C, b"x" * chunk, 300.0)  # over: down to 1/64 under the bound
    assert cap.max_bytes - cap.bytes >= MIB // 64 > cap.max_bytes - cap.bytes - 4096
    evicted = cap.evicted_bytes
    assert evicted == 5 * chunk and cap.get(1).stream_evicted == {C2S: 2 * chunk, S2C: 3 * chunk}
    for i in range(3):  # the slack takes them without evicting
        cap.data(1, C2S if i % 2 else S2C, b"x" * chunk, 301.0 + i)
    assert cap.evicted_bytes == evicted


@given(st.lists(st.one_of(
    st.tuples(st.sampled_from([C2S, S2C]), st.binary(min_size=1, max_size=300)),
    st.tuples(st.just("big"), st.sampled_from([C2S, S2C]), st.integers(1, 3)),
    st.tuples(st.just("fin"), st.sampled_from([C2S, S2C]))), max_size=60),
    st.integers(0, 40_000))
def test_the_stream_kept_is_the_tail_of_what_was_sent_whatever_is_evicted(ops, max_bytes):
    """One bytearray per direction and a chunk table: what a read of the stream gives, joined
    per direction, is exactly the bytes sent from the evicted mark on; chunks keep their
    numbers and arrival order; a direction's chunks join up to MAX_CHUNK."""
    cap = Capture(max_bytes=max_bytes)
    _open(cap, 1)
    sent = {C2S: b"", S2C: b""}
    order = []  # (direction, mark) of every chunk made, in arrival order
    started = 0  # where the last chunk started in its direction
    for i, op in enumerate(ops):
        if op[0] == "fin":
            cap.half_closed(1, op[1], float(i))
            order.append((op[1], "fin"))
            continue
        if op[0] == "big":  # reads that fill chunks to their bound
            direction, data = op[1], bytes([i % 251]) * (op[2] * 30_000)
        else:
            direction, data = op
        # a read joins the last chunk: same direction, still kept (an evicted one does not
        # grow), within the bound
        joins = order and order[-1] == (direction, None) and cap.get(1).chunk_rows and (
            len(sent[direction]) - started + len(data) <= 64 * 1024)
        if not joins:
            order.append((direction, None))
            started = len(sent[direction])
        sent[direction] += data
        cap.data(1, direction, data, float(i))
        assert cap.bytes <= cap.max_bytes
    c = cap.get(1)
    chunks = cap.stream(1)
    for direction in (C2S, S2C):
        kept = b"".join(ch.data for ch in chunks if ch.direction == direction and not ch.mark)
        assert kept == sent[direction][c.stream_evicted[direction]:]
    assert [ch.n for ch in chunks] == list(range(len(order) - len(chunks) + 1, len(order) + 1))
    assert [(ch.direction, ch.mark) for ch in chunks] == order[len(order) - len(chunks):]
    assert c.cost == sum(ch.cost for ch in chunks)
    if len(chunks) > 1:
        assert cap.stream(1, after=len(order) - 1) == chunks[-1:]
        assert cap.stream(1, after=len(order) - 2, limit=1) == chunks[-2:-1]


def test_rows_grow_one_entry_sealed_when_full_or_followed_and_read_back():
    cap = Capture()
    _open(cap, 1)
    for i in range(MAX_ROWS + 2):
        cap.add_rows(1, 1.0 + i, "redis", b"row %d" % i, errors=int(i == 3))
    c = cap.get(1)
    # the first MAX_ROWS rows are a sealed entry (plain bytes, left alone by the GC), the
    # rest the growing one, read as it is now
    assert [(e.first, e.count, e.ts) for e in c.exchanges] == [
        (1, MAX_ROWS, 1.0), (MAX_ROWS + 1, 2, 1.0 + MAX_ROWS)]
    sealed, growing = c.exchanges
    assert encoded_rows(sealed.data) == [b"row %d" % i for i in range(MAX_ROWS)]
    assert encoded_rows(growing.data) == [b"row %d" % i for i in (MAX_ROWS, MAX_ROWS + 1)]
    assert (sealed.errors, growing.errors, c.error_count) == (1, 0, 1)
    for _ in range(3):  # a pass untracks a tuple whose items are untracked
        gc.collect()
    assert not [e for e in c.kept_exchanges if gc.is_tracked(e)]
    # counted: each row's bytes, an eighth of them and ROW_COST; each entry ROWS_COST and
    # ENTRY_COST
    size = sum(len(b"row %d" % i) for i in range(MAX_ROWS + 2))
    assert cap.bytes == c.cost == sealed.cost + growing.cost == (
        size + sum(len(b"row %d" % i) >> 3 for i in range(MAX_ROWS + 2))
        + (MAX_ROWS + 2) * ROW_COST + 2 * (ROWS_COST + ENTRY_COST))
    # another kind of entry seals the growing one first, and rows go on after it
    cap.add_exchanges(1, 500.0, "notice", "hello", cost=5)
    cap.add_rows(1, 501.0, "redis", b"after")
    assert [(e.first, e.count, e.kind) for e in c.exchanges] == [
        (1, MAX_ROWS, "redis"), (MAX_ROWS + 1, 2, "redis"), (MAX_ROWS + 3, 1, "notice"),
        (MAX_ROWS + 4, 1, "redis")]
    assert encoded_rows(c.exchanges[-1].data) == [b"after"]
    cap.closed(1, 502.0)  # and the close seals it
    assert c.open_rows is None and c.exchange_count == MAX_ROWS + 4
    assert encoded_rows(c.exchanges[-1].data) == [b"after"]


def test_eviction_takes_a_growing_rows_entry_whole_and_rows_start_again():
    cap = Capture(max_bytes=ROWS_COST + ENTRY_COST + 10 * (ROW_COST + 100))
    _open(cap, 1)
    for i in range(12):  # the 10th goes over the bound: the whole entry goes, counted
        cap.add_rows(1, float(i), "redis", bytes([65 + i]) * 90)
        assert cap.bytes <= cap.max_bytes
    c = cap.get(1)
    assert c.exchanges_evicted == 10 and c.exchange_count == 12
    assert [(e.first, e.count) for e in c.exchanges] == [(11, 2)]
    assert encoded_rows(c.exchanges[0].data) == [b"K" * 90, b"L" * 90]
    assert cap.bytes == c.cost == c.exchanges[0].cost


def test_rows_for_a_connection_not_here_are_counted_as_dropped():
    cap = Capture()
    cap.add_rows(7, 1.0, "redis", b"x")
    assert cap.dropped_records == 1 and cap.bytes == 0


def _state(cap: Capture) -> list:
    """Everything a reader sees of each connection's stream, and the store's counts."""
    return [(c.id, c.bytes_c2s, c.bytes_s2c, c.cost, dict(c.stream_evicted),
             [(ch.n, ch.ts, ch.direction, ch.offset, bytes(ch.data), ch.mark)
              for ch in cap.stream(c.id)]) for c in cap.connections.values()] + [
        cap.bytes, cap.evicted_bytes]


_read = st.one_of(
    st.tuples(st.integers(1, 4), st.sampled_from([C2S, S2C]), st.binary(max_size=300)),
    st.tuples(st.integers(1, 4), st.sampled_from([C2S, S2C]), st.integers(1, 3)))  # big
_mask = st.tuples(st.integers(1, 4), st.sampled_from([C2S, S2C]), st.integers(0, 2000),
                  st.integers(1, 50))
# batches of reads (small ones are stored one by one, larger ones grouped), each handed over
# at its end or by a mask registered after it
_batches = st.lists(st.tuples(st.lists(_read, max_size=20), st.one_of(st.none(), _mask)),
                    max_size=6)


@given(batches=_batches, max_bytes=st.sampled_from([200, 5_000, 100_000, 64 * MIB]))
def test_reads_handed_over_in_batches_are_stored_as_one_by_one(batches, max_bytes):
    """``add_reads`` (the web sink's batches, any cut) keeps exactly what ``data`` read by read
    keeps without eviction: the same chunks (numbers, times, offsets, bytes), counts, costs
    and masks; with eviction the bounds hold and what is kept is the tail of what was sent."""
    one, batched = Capture(max_bytes=max_bytes), Capture(max_bytes=max_bytes)
    for cap in (one, batched):
        for pair in range(1, 4):  # pair 4 is never opened: its reads go nowhere
            _open(cap, pair)
    sent: dict = {}
    masks = []
    i = 0
    for reads, mask in batches:
        queue = []
        for pair, direction, data in reads:
            i += 1
            if type(data) is int:
                data = bytes([i % 251]) * (data * 30_000)
            sent[pair, direction] = sent.get((pair, direction), b"") + data
            one.data(pair, direction, data, 2.0 + i)
            queue.append((pair, direction, data, 2.0 + i))
        batched.add_reads(queue)
        assert queue == []
        if mask is not None:
            pair, direction, start, length = mask
            masks.append((pair, direction, start, start + length))
            one.mask(pair, direction, start, start + length)
            batched.mask(pair, direction, start, start + length)
        assert batched.bytes <= batched.max_bytes
    if one.evicted_bytes == 0 and batched.evicted_bytes == 0:
        assert _state(batched) == _state(one)
    for c in batched.connections.values():
        for direction in (C2S, S2C):
            kept = b"".join(ch.data for ch in batched.stream(c.id)
                            if ch.direction == direction and not ch.mark)
            whole = bytearray(sent.get((c.id, direction), b""))
            for pair, d, start, end in masks:
                if (pair, d) == (c.id, direction):
                    whole[start:end] = b"*" * len(whole[start:end])
            assert kept == whole[c.stream_evicted[direction]:]


def test_rows_in_segments_count_each_row_and_seal_from_max_rows_on():
    cap = Capture()
    _open(cap, 1)
    cap.add_rows(1, 1.0, "redis", b"three rows", count=3, errors=1)
    cap.add_rows(1, 2.0, "redis", b"one", count=1)
    c = cap.get(1)
    (entry,) = c.exchanges
    assert (entry.first, entry.count, entry.errors, entry.ts) == (1, 4, 1, 1.0)
    assert encoded_rows(entry.data) == [b"three rows", b"one"]
    assert cap.bytes == c.cost == (ROWS_COST + ENTRY_COST + 4 * ROW_COST
                                   + 10 + (10 >> 3) + 3 + (3 >> 3))
    cap.add_rows(1, 3.0, "redis", b"many", count=MAX_ROWS)  # over: sealed, 4 + MAX_ROWS rows
    cap.add_rows(1, 4.0, "redis", b"next", count=2)
    assert [(e.first, e.count) for e in c.exchanges] == [(1, 4 + MAX_ROWS), (5 + MAX_ROWS, 2)]
    assert c.exchange_count == 6 + MAX_ROWS and c.error_count == 1



@given(starts=st.lists(st.tuples(st.sampled_from([C2S, S2C]), st.integers(0, 12)), min_size=3,
                       max_size=3),
       sizes=st.lists(st.integers(0, 70_000), min_size=10, max_size=10),
       before=st.lists(st.tuples(st.integers(1, 3), st.sampled_from([C2S, S2C])), max_size=4),
       picks=st.lists(st.integers(0, 2), min_size=36, max_size=36))
def test_alternating_reads_batched_are_stored_as_one_by_one(starts, sizes, before, picks):
    """Request and reply (each read a chunk, as unpipelined traffic goes) after whatever
    chunk came last, empty and big reads among them: kept as ``data`` read by read keeps
    them."""
    one, batched = Capture(), Capture()
    for cap in (one, batched):
        for pair in range(1, 4):
            _open(cap, pair)
    for i, (pair, direction) in enumerate(before):  # the last chunks before the batch
        for cap in (one, batched):
            cap.data(pair, direction, b"b", 1.0 + i)
    sizes = iter(sizes)
    own = []  # each connection's reads, directions alternating
    for pair, (first, n) in enumerate(starts, 1):
        other = S2C if first == C2S else C2S
        own.append([(pair, first if k % 2 == 0 else other,
                     bytes([k]) * (next(sizes) if k % 4 == 1 else k)) for k in range(n)])
    queue = []
    for pick in picks:  # the connections interleave; each one's reads stay in order
        for mine in own[pick:] + own[:pick]:
            if mine:
                pair, direction, data = mine.pop(0)
                now = 2.0 + len(queue)
                one.data(pair, direction, data, now)
                queue.append((pair, direction, data, now))
                break
    batched.add_reads(queue)
    assert _state(batched) == _state(one)
